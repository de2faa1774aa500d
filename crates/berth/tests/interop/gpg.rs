//! GnuPG keys for the interop tests: a throw-away home with one signing key, and its
//! public key exported as `keyPath` and `berth registry trust set --gpg-key` take it.

use std::fs;
use std::path::Path;

use super::support::Ctx;

pub const GPG: &str = "gpg";

/// A throw-away GnuPG home with one signing key; returns its fingerprint.
pub fn gpg_key(ctx: &Ctx, home: &str, uid: &str) -> String {
    let dir = ctx.path(home);
    fs::create_dir_all(&dir).unwrap();
    set_private(&dir);
    ctx.cmd(
        GPG,
        &[
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            uid,
            "ed25519",
            "sign",
            "never",
        ],
    )
    .env("GNUPGHOME", &dir)
    .run();
    let listing = ctx
        .cmd(GPG, &["--batch", "--with-colons", "--list-secret-keys"])
        .env("GNUPGHOME", &dir)
        .run();
    listing
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("fpr:"))
        .and_then(|rest| rest.split(':').find(|f| f.len() == 40))
        .unwrap_or_else(|| panic!("no fingerprint in {}", listing.stdout))
        .to_string()
}

pub fn set_private(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).unwrap();
}

/// Exports the public key of `home` into `file` (binary, as `keyPath` takes it).
pub fn export_key(ctx: &Ctx, home: &str, file: &str) -> String {
    let out = ctx
        .cmd(GPG, &["--batch", "--export"])
        .env("GNUPGHOME", ctx.path(home))
        .run();
    assert!(!out.stdout_bytes.is_empty(), "gpg exported no key");
    fs::write(ctx.path(file), &out.stdout_bytes).unwrap();
    ctx.p(file)
}
