//! Sigstore (cosign) signatures: the first line is the base64 signature, the rest the
//! payload, verified against a fixed key (`keys/cosign.pub`); the input is also read
//! as a public key.
#![no_main]
use std::sync::OnceLock;

use berth_signature::sigstore::{verify, PublicKey};
use libfuzzer_sys::fuzz_target;

fn key() -> &'static PublicKey {
    static K: OnceLock<PublicKey> = OnceLock::new();
    K.get_or_init(|| {
        let pem =
            std::fs::read(berth_fuzz::key_path("cosign.pub")).expect("reading keys/cosign.pub");
        PublicKey::from_pem(&pem).expect("the fixed key")
    })
}

fuzz_target!(|data: &[u8]| {
    let (signature, payload) = berth_fuzz::split_once(data, b"\n");
    if let Ok(signature) = std::str::from_utf8(signature) {
        let _ = verify(std::slice::from_ref(key()), payload, signature);
    }
    if let Ok(k) = PublicKey::from_pem(data) {
        let _ = k.to_pem();
    }
});
