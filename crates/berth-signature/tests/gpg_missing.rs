//! Without gpg on PATH, signing through gpg says so and how to fix it. (Its own test
//! binary: it changes PATH for the whole process.)

use berth_signature::{sign_with_gpg, GpgError};

#[test]
fn missing_gpg_is_a_clear_error() {
    let empty = tempfile::tempdir().unwrap();
    std::env::set_var("PATH", empty.path());
    let err =
        sign_with_gpg("0123456789ABCDEF0123456789ABCDEF01234567", None, b"x", None).unwrap_err();
    assert!(matches!(err, GpgError::Missing(_)), "{err}");
    assert!(err.to_string().contains("apt-get install gnupg"), "{err}");
}
