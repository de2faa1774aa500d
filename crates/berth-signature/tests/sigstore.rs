//! Sigstore signatures against other implementations. skopeo 1.9.3 as Debian ships it
//! cannot take part ("Debian-local change: sigstore disabled"), so: a private key the
//! cosign CLI wrote opens in berth and signs; a signature the cosign CLI made
//! (containers/image's test fixture `dir-img-cosign-valid`) verifies in berth; and
//! OpenSSL 3 verifies berth's signatures and public keys and makes ones berth verifies
//! (P-256, SHA-256, ASN.1 DER, PKIX PEM). Needs `openssl`.

use std::path::Path;
use std::process::Command;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use berth_image::Digest;
use berth_signature::sigstore::{self, PrivateKey, PublicKey, SigstoreError};
use berth_signature::Format;

/// containers/image `signature/fixtures/cosign.pub`.
const COSIGN_PUB: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEFNLqFhf4fiN6o/glAuYnq2jYUeL0\nvRuLu/z39pmbVwS9ff5AYnlwaP9sxREajdLY9ynM6G1sy6AAmb7Z63TsLg==\n-----END PUBLIC KEY-----\n";
/// `signature/fixtures/dir-img-cosign-valid/manifest.json`, the image cosign signed.
const COSIGN_MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":1512,"digest":"sha256:961769676411f082461f9ef46626dd7a2d1e2b2a38e6a44364bcbecf51e66dd4"},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":2896510,"digest":"sha256:9d16cba9fb961d1aafec9542f2bf7cb64acfc55245f9e4eb5abecd4cdc38d749"}]}"#;
/// Its `signature-1`: the payload (base64) and the signature annotation.
const COSIGN_PAYLOAD_B64: &str = "eyJjcml0aWNhbCI6eyJpZGVudGl0eSI6eyJkb2NrZXItcmVmZXJlbmNlIjoiMTkyLjE2OC42NC4yOjUwMDAvY29zaWduLXNpZ25lZC1zaW5nbGUtc2FtcGxlIn0sImltYWdlIjp7ImRvY2tlci1tYW5pZmVzdC1kaWdlc3QiOiJzaGEyNTY6NjM0YThmMzViNWYxNmRjZjRhYWEwODIyYWRjMGIxOTY0YmI3ODZmY2ExMmY2ODMxZGU4ZGRjNDVlNTk4NmEwMCJ9LCJ0eXBlIjoiY29zaWduIGNvbnRhaW5lciBpbWFnZSBzaWduYXR1cmUifSwib3B0aW9uYWwiOm51bGx9";
const COSIGN_SIGNATURE: &str =
    "MEYCIQDmtamqYPjMg81nqeBhptrPls44aA/r7PwLmspINJY4MwIhANKRpqe2E9UCBtGFdPoz/8jAbaQm4uP4h+IpwKTE6ClR";

/// A key `cosign generate-key-pair` wrote (cosign 2: scrypt N=2^16) with an empty
/// password; a test key published in conforma/cli's `internal/validate/vsa` tests.
const COSIGN_PRIVATE: &str = "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----
eyJrZGYiOnsibmFtZSI6InNjcnlwdCIsInBhcmFtcyI6eyJOIjo2NTUzNiwiciI6
OCwicCI6MX0sInNhbHQiOiJLYU9OQzduQVJLOVgxM1FoaWFucjAwTTBGYys2Sitr
dnAxN1FuanpiVk9nPSJ9LCJjaXBoZXIiOnsibmFtZSI6Im5hY2wvc2VjcmV0Ym94
Iiwibm9uY2UiOiJVOHZqWWtqMlZOUFZGdlZFZWZ3bXZ5VGloUERrelBoaCJ9LCJj
aXBoZXJ0ZXh0IjoidWNWMnQ4TTZVNFJvb29FOXc0d3dkc3E1RDYrS2RKY245dERT
KzFwRDRGN040SVJOWEgzSTBua3h1a3NackFOUHR1emIvTkVYQ201dUp3Zjh3Qzl1
VlprbXdwNU5jRUZ6b3ZNS3JCZmNvdXdjaEkrMzkrQ0NhbVZPbzBucmRnZjhvcmpK
dXdrWDBYL1phY0RUTERGaUxyc1laMWVMMmlqMGU1MVRpZmVQNTl4WXNPK1FnM1Jv
OURRVjNQMk9ndDFDaVFHeGg1VXhUZytGc3c9PSJ9
-----END ENCRYPTED SIGSTORE PRIVATE KEY-----
";

#[test]
fn cosign_cli_private_key_opens_and_signs() {
    // Go's scrypt + NaCl secretbox + PKCS#8, opened by berth.
    let key = PrivateKey::from_pem(COSIGN_PRIVATE.as_bytes(), b"").unwrap();
    assert!(matches!(
        PrivateKey::from_pem(COSIGN_PRIVATE.as_bytes(), b"not it"),
        Err(SigstoreError::Passphrase)
    ));
    let (payload, sig) = sigstore::sign_image(
        &key,
        &Digest::sha256_of(b"m"),
        "registry.example/app:v1",
        "x",
    )
    .unwrap();
    sigstore::verify(&[key.public_key()], &payload, &sig).unwrap();
}

#[test]
fn cosign_cli_signature_verifies() {
    let key = PublicKey::from_pem(COSIGN_PUB.as_bytes()).unwrap();
    let payload = BASE64.decode(COSIGN_PAYLOAD_B64).unwrap();
    let p = sigstore::verify(std::slice::from_ref(&key), &payload, COSIGN_SIGNATURE).unwrap();
    assert_eq!(
        p.docker_manifest_digest,
        Digest::sha256_of(COSIGN_MANIFEST.as_bytes())
    );
    assert_eq!(
        p.docker_reference,
        "192.168.64.2:5000/cosign-signed-single-sample"
    );
    // cosign writes `"optional": null`.
    assert_eq!((p.creator, p.timestamp), (None, None));

    let mut tampered = payload.clone();
    let i = tampered.iter().position(|&b| b == b'1').unwrap();
    tampered[i] = b'2';
    assert!(matches!(
        sigstore::verify(&[key], &tampered, COSIGN_SIGNATURE),
        Err(SigstoreError::BadSignature)
    ));
    let other = sigstore::generate_key_pair(b"").unwrap();
    let other = PublicKey::from_pem(other.public_pem.as_bytes()).unwrap();
    assert!(sigstore::verify(&[other], &payload, COSIGN_SIGNATURE).is_err());
}

fn openssl(args: &[&str], dir: &Path) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("this test needs openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn openssl_verifies_berth_and_berth_verifies_openssl() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();

    // berth's key pair and signature, checked by OpenSSL.
    let pair = sigstore::generate_key_pair(b"pw").unwrap();
    let key = PrivateKey::from_pem(pair.private_pem.as_bytes(), b"pw").unwrap();
    let (payload, sig) = sigstore::sign_image(
        &key,
        &Digest::sha256_of(b"m"),
        "registry.example/app:v1",
        "containers/image 5.23.1",
    )
    .unwrap();
    std::fs::write(d.join("berth.pub"), &pair.public_pem).unwrap();
    std::fs::write(d.join("payload"), &payload).unwrap();
    std::fs::write(d.join("berth.sig"), BASE64.decode(&sig).unwrap()).unwrap();
    let out = openssl(
        &[
            "dgst",
            "-sha256",
            "-verify",
            "berth.pub",
            "-signature",
            "berth.sig",
            "payload",
        ],
        d,
    );
    assert_eq!(out.trim(), "Verified OK");
    // The public key is a P-256 PKIX key as OpenSSL reads it.
    let text = openssl(
        &["pkey", "-pubin", "-in", "berth.pub", "-noout", "-text"],
        d,
    );
    assert!(text.contains("prime256v1"), "{text}");

    // OpenSSL's key and signature, checked by berth.
    openssl(
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "o.pem",
        ],
        d,
    );
    openssl(&["pkey", "-in", "o.pem", "-pubout", "-out", "o.pub"], d);
    openssl(
        &[
            "dgst", "-sha256", "-sign", "o.pem", "-out", "o.sig", "payload",
        ],
        d,
    );
    let public = PublicKey::from_pem(&std::fs::read(d.join("o.pub")).unwrap()).unwrap();
    let sig = BASE64.encode(std::fs::read(d.join("o.sig")).unwrap());
    let p = sigstore::verify(&[public], &payload, &sig).unwrap();
    assert_eq!(p.docker_reference, "registry.example/app:v1");
    assert_eq!(p.to_json(Format::Sigstore).unwrap(), payload);
}

/// The other public keys containers/image verifies with (its `LoadVerifier`): ECDSA
/// P-384 over SHA-256, RSA PKCS#1 v1.5 over SHA-256, Ed25519 over the payload. Keys
/// and signatures made by OpenSSL; each verifies with its own key only, and a
/// tampered payload with none.
#[test]
fn openssl_p384_rsa_and_ed25519_signatures_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let key = PrivateKey::from_pem(COSIGN_PRIVATE.as_bytes(), b"").unwrap();
    let (payload, _) = sigstore::sign_image(
        &key,
        &Digest::sha256_of(b"m"),
        "registry.example/app:v1",
        "x",
    )
    .unwrap();
    std::fs::write(d.join("payload"), &payload).unwrap();
    let make: [(&str, &[&str], &[&str]); 3] = [
        (
            "p384",
            &[
                "ecparam",
                "-name",
                "secp384r1",
                "-genkey",
                "-noout",
                "-out",
                "p384.pem",
            ],
            &[
                "dgst", "-sha256", "-sign", "p384.pem", "-out", "p384.sig", "payload",
            ],
        ),
        (
            "rsa",
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                // Over the 4,096 bits the rsa crate reads by itself.
                "rsa_keygen_bits:4608",
                "-out",
                "rsa.pem",
            ],
            &[
                "dgst", "-sha256", "-sign", "rsa.pem", "-out", "rsa.sig", "payload",
            ],
        ),
        (
            "ed25519",
            &["genpkey", "-algorithm", "ed25519", "-out", "ed25519.pem"],
            &[
                "pkeyutl",
                "-sign",
                "-rawin",
                "-inkey",
                "ed25519.pem",
                "-in",
                "payload",
                "-out",
                "ed25519.sig",
            ],
        ),
    ];
    let mut keys = Vec::new();
    for (name, genkey, sign) in make {
        openssl(genkey, d);
        let (pem, public) = (format!("{name}.pem"), format!("{name}.pub"));
        openssl(&["pkey", "-in", &pem, "-pubout", "-out", &public], d);
        openssl(sign, d);
        let key = PublicKey::from_pem(&std::fs::read(d.join(&public)).unwrap()).unwrap();
        let sig = BASE64.encode(std::fs::read(d.join(format!("{name}.sig"))).unwrap());
        keys.push((name, key, sig));
    }
    for (name, key, sig) in &keys {
        let p = sigstore::verify(std::slice::from_ref(key), &payload, sig)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(p.docker_reference, "registry.example/app:v1", "{name}");
        // The PEM written back reads as the same key.
        assert_eq!(
            &PublicKey::from_pem(key.to_pem().unwrap().as_bytes()).unwrap(),
            key
        );
        let others: Vec<PublicKey> = keys
            .iter()
            .filter(|(n, _, _)| n != name)
            .map(|(_, k, _)| k.clone())
            .collect();
        assert!(
            matches!(
                sigstore::verify(&others, &payload, sig),
                Err(SigstoreError::BadSignature)
            ),
            "{name}: another key"
        );
        let mut tampered = payload.clone();
        tampered[10] ^= 1;
        assert!(
            matches!(
                sigstore::verify(std::slice::from_ref(key), &tampered, sig),
                Err(SigstoreError::BadSignature)
            ),
            "{name}: tampered"
        );
    }
    // P-521 is refused when the key is read, not silently never verified.
    openssl(
        &[
            "ecparam",
            "-name",
            "secp521r1",
            "-genkey",
            "-noout",
            "-out",
            "p521.pem",
        ],
        d,
    );
    openssl(
        &["pkey", "-in", "p521.pem", "-pubout", "-out", "p521.pub"],
        d,
    );
    let e = PublicKey::from_pem(&std::fs::read(d.join("p521.pub")).unwrap()).unwrap_err();
    assert!(
        e.to_string().contains("P-256 or P-384, RSA or Ed25519"),
        "{e}"
    );
}
