//! How long verifying a simple signature takes: CPU time per `openpgp::verify` (parse,
//! decompress, check) of an ed25519 signature, against the < 1 ms budget. Run with
//! `cargo run --release -p berth-signature --example verify_timing [iterations]`.
//!
//! The key and signature are made here with rpgp (gpg is not needed); the signed
//! message has the shape gpg writes (compressed, one-pass signed, payload inline).

use std::time::Instant;

use berth_image::Digest;
use berth_signature::{openpgp, simple, Keyring, ManifestCheck};

fn cpu_seconds() -> f64 {
    // /proc/self/stat fields 14 and 15: user and system time in clock ticks.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // After the ')' the fields start at 3 (state), so utime is index 11, stime 12.
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let (secret, public) = keys();
    let ring = Keyring::from_bytes(&public).expect("keyring");
    let manifest = br#"{"schemaVersion":2,"layers":[]}"#;
    let sig = simple::sign(
        &secret,
        "",
        &Digest::sha256_of(manifest),
        "registry.example/app:v1",
        "berth",
    )
    .expect("sign");

    let (cpu0, wall0) = (cpu_seconds(), Instant::now());
    for _ in 0..n {
        openpgp::verify(&ring, &sig).expect("verify");
    }
    let (cpu, wall) = (cpu_seconds() - cpu0, wall0.elapsed());
    println!(
        "openpgp::verify (ed25519): {:.1} µs CPU, {:.1} µs wall per signature ({n} runs)",
        cpu * 1e6 / f64::from(n),
        wall.as_secs_f64() * 1e6 / f64::from(n)
    );
    let t = Instant::now();
    for _ in 0..n {
        berth_signature::verify_simple(&ring, &sig, ManifestCheck::Manifest(manifest), |_| true)
            .expect("verify_simple");
    }
    println!(
        "verify_simple (with payload parse and digest): {:.1} µs wall per signature",
        t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
    );
}

/// An ed25519 key made with rpgp: (armored secret, binary public).
fn keys() -> (Vec<u8>, Vec<u8>) {
    use pgp::composed::{EncryptionCaps, KeyType, SecretKeyParamsBuilder, SignedPublicKey};
    use pgp::ser::Serialize;
    let secret = SecretKeyParamsBuilder::default()
        .key_type(KeyType::Ed25519Legacy)
        .can_certify(true)
        .can_sign(true)
        .can_encrypt(EncryptionCaps::None)
        .primary_user_id("Bench <bench@example.com>".into())
        .build()
        .expect("params")
        .generate(rand08::thread_rng())
        .expect("key");
    let armored = secret.to_armored_bytes(Default::default()).expect("armor");
    let mut public = Vec::new();
    SignedPublicKey::from(secret)
        .to_writer(&mut public)
        .expect("public");
    (armored, public)
}
