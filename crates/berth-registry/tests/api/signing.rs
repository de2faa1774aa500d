//! Keys and signatures for the content-trust tests and bench: OpenPGP keys made by gpg
//! 2.2 (signed with berth-signature, as `--sign-by-key` does), sigstore keys made by
//! berth-signature, and the two ways signatures reach a registry (the signature
//! extension, a sigstore attachment).

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use base64::Engine;
use berth_image::Digest;
use berth_signature::sigstore;
use serde_json::json;

use super::support::*;

/// A GnuPG key made by gpg in a throw-away home: its secret key (to sign with) and its
/// public key (to trust), both as gpg exports them.
pub struct GpgKey {
    pub secret: Vec<u8>,
    pub public: Vec<u8>,
}

pub fn gpg(home: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("gpg")
        .env("GNUPGHOME", home)
        .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("gpg is needed for these tests and did not start: {e}"));
    assert!(
        out.status.success(),
        "gpg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

pub fn gpg_key(uid: &str) -> GpgKey {
    let home = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    gpg(
        home.path(),
        &["--quick-gen-key", uid, "ed25519", "sign", "never"],
    );
    let key = GpgKey {
        secret: gpg(home.path(), &["--export-secret-keys"]),
        public: gpg(home.path(), &["--armor", "--export"]),
    };
    // The agent of this home goes with it.
    let _ = Command::new("gpgconf")
        .env("GNUPGHOME", home.path())
        .args(["--kill", "gpg-agent"])
        .status();
    key
}

impl GpgKey {
    /// A simple signature (what `podman push --sign-by` stores) of `digest` as `reference`.
    pub fn sign(&self, digest: &str, reference: &str) -> Vec<u8> {
        let d: Digest = digest.parse().unwrap();
        berth_signature::simple::sign(&self.secret, "", &d, reference, "atomic 2.0.0").unwrap()
    }

    pub fn public_text(&self) -> String {
        String::from_utf8(self.public.clone()).unwrap()
    }
}

pub struct SigstoreKey {
    pub private: sigstore::PrivateKey,
    pub public_pem: String,
}

pub fn sigstore_key() -> SigstoreKey {
    let pair = sigstore::generate_key_pair(b"pw").unwrap();
    SigstoreKey {
        private: sigstore::PrivateKey::from_pem(pair.private_pem.as_bytes(), b"pw").unwrap(),
        public_pem: pair.public_pem,
    }
}

/// Stores a simple signature through the signature extension (as podman does).
pub async fn put_signature(api: &Api, repo: &str, digest: &str, signature: &[u8], n: u32) {
    let body = json!({
        "schemaVersion": 2,
        "name": format!("{digest}@{n:032x}"),
        "type": "atomic",
        "content": base64::engine::general_purpose::STANDARD.encode(signature),
    });
    let resp = send(
        api.put(&format!("/extensions/v2/{repo}/signatures/{digest}"))
            .json(&body),
    )
    .await;
    expect_status(resp, 201).await;
}

/// Pushes a sigstore attachment (`sha256-<hex>.sig`) signing `digest` as `reference`.
pub async fn push_sigstore(
    api: &Api,
    repo: &str,
    key: &SigstoreKey,
    digest: &str,
    reference: &str,
) {
    let d: Digest = digest.parse().unwrap();
    let (payload, signature) =
        sigstore::sign_image(&key.private, &d, reference, "containers/image 5.23.1").unwrap();
    push_blob(api, repo, &payload).await;
    let config = b"{}".to_vec();
    push_blob(api, repo, &config).await;
    let mut layer = Desc::of(sigstore::PAYLOAD_MEDIA_TYPE, &payload).json();
    layer["annotations"] = json!({ sigstore::SIGNATURE_ANNOTATION: signature });
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": Desc::of(OCI_CONFIG, &config).json(),
        "layers": [layer],
    });
    let tag = format!("sha256-{}.sig", d.hex());
    push_manifest(api, repo, &tag, OCI_MANIFEST, &manifest_bytes(&manifest)).await;
}
