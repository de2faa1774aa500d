//! OpenPGP: arbitrary bytes as a simple signature verified against a fixed keyring
//! (`keys/openpgp-public-key.gpg`), and as a keyring to import.
#![no_main]
use std::sync::OnceLock;

use berth_image::Digest;
use berth_signature::{verify_simple, Keyring, ManifestCheck};
use libfuzzer_sys::fuzz_target;

fn keyring() -> &'static Keyring {
    static K: OnceLock<Keyring> = OnceLock::new();
    K.get_or_init(|| {
        let bytes = std::fs::read(berth_fuzz::key_path("openpgp-public-key.gpg"))
            .expect("reading keys/openpgp-public-key.gpg");
        Keyring::from_bytes(&bytes).expect("the fixed keyring")
    })
}

fuzz_target!(|data: &[u8]| {
    let digest = Digest::sha256_of(b"");
    let _ = verify_simple(keyring(), data, ManifestCheck::Digest(&digest), |_| true);
    let _ = berth_signature::verify(keyring(), data);
    if let Ok(ring) = Keyring::from_bytes(data) {
        let _ = (ring.fingerprints(), ring.user_ids(), ring.is_empty());
    }
});
