//! containers/image's own GnuPG fixtures (tests/fixtures/c-image): berth reaches the
//! verdicts c/image's tests expect of them.

use berth_signature::openpgp::{self, VerifyError};
use berth_signature::Keyring;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/c-image/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

const KEY: &str = "08CD26E446E2E95249B7A405E932F44B23E8DD43";

#[test]
fn gnupg1_keyring_with_trust_packets() {
    let ring = Keyring::from_bytes(&fixture("pubring.gpg")).unwrap();
    assert_eq!(ring.fingerprints().len(), 4, "{:?}", ring.fingerprints());
    let v = openpgp::verify(&ring, &fixture("image.signature")).unwrap();
    assert_eq!(v.fingerprint, KEY);
    assert!(String::from_utf8(v.payload)
        .unwrap()
        .contains("\"docker-reference\":\"testing/manifest\""));
}

#[test]
fn signing_subkey_and_revoked_subkey() {
    let ring = Keyring::from_bytes(&fixture("public-key-with-subkey.gpg")).unwrap();
    let v = openpgp::verify(&ring, &fixture("subkey.signature")).unwrap();
    assert_eq!(v.fingerprint, "B9F4CDB9FD8C475BFA340AC38D54A947EE396F36");
    assert_ne!(v.signing_fingerprint, v.fingerprint);
    assert_eq!(v.key_id, v.signing_fingerprint[24..]);

    let ring = Keyring::from_bytes(&fixture("public-key-with-revoked-subkey.gpg")).unwrap();
    let err = openpgp::verify(&ring, &fixture("subkey-revoked.signature")).unwrap_err();
    assert!(matches!(err, VerifyError::KeyRevoked { .. }), "{err}");
}

#[test]
fn expired_signature() {
    let ring = Keyring::from_bytes(&fixture("public-key.gpg")).unwrap();
    let err = openpgp::verify(&ring, &fixture("expired.signature")).unwrap_err();
    assert!(matches!(err, VerifyError::SignatureExpired { .. }), "{err}");
    assert!(openpgp::verify(&ring, &fixture("image.signature")).is_ok());
}
