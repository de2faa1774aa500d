//! Content trust settings: per namespace or repository, whether manifests must be
//! signed before the registry serves them, and the public keys it trusts.
//!
//! A setting is access-control data (who may read what), set by an admin of the
//! namespace through a [`crate::Change`], so it is audited and reaches a running server
//! with the directory snapshot. The keys are parsed here, once per snapshot load, so
//! that the registry verifies against ready keyrings and a key that does not parse is
//! refused when it is set, not when someone pulls.
//!
//! Keys travel and are stored as text: GPG keys ASCII-armored, or base64 of the binary
//! export (`gpg --export`); sigstore keys as PEM (`PUBLIC KEY`).

use std::fmt;

use base64::Engine;
use berth_signature::sigstore::PublicKey;
use berth_signature::Keyring;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// One key's text at most. An armored RSA-4096 certificate with a few user IDs is
/// about 3 KiB; 64 KiB leaves room for many certifications.
pub const MAX_KEY_BYTES: usize = 64 * 1024;
/// Keys of each kind one setting may hold.
pub const MAX_KEYS: usize = 16;

/// What an admin sets on a namespace or repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustKeys {
    /// GPG public keys: armored, or base64 of the binary export.
    #[serde(default)]
    pub gpg_keys: Vec<String>,
    /// Sigstore public keys, PEM.
    #[serde(default)]
    pub sigstore_keys: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TrustError {
    #[error("signatures required with no key: give at least one GPG or sigstore public key")]
    NoKeys,
    #[error("a setting that does not require signatures holds no keys")]
    KeysNotRequired,
    #[error("at most {MAX_KEYS} {0} keys per setting")]
    TooMany(&'static str),
    #[error("{kind} key {index} is {len} bytes; at most {MAX_KEY_BYTES} are accepted")]
    TooLarge {
        kind: &'static str,
        index: usize,
        len: usize,
    },
    #[error("GPG key {index}: {why}")]
    Gpg { index: usize, why: String },
    #[error("sigstore key {index}: {why}")]
    Sigstore { index: usize, why: String },
}

/// A setting in force: its keys parsed, and a version that changes whenever any of it
/// does (verification results are cached under it).
#[derive(Clone)]
pub struct Trust {
    /// The namespace or repository the setting is on.
    pub target: String,
    pub required: bool,
    pub keys: TrustKeys,
    pub keyring: Keyring,
    pub sigstore: Vec<PublicKey>,
    /// sha256 of the setting's contents, as 8 bytes: equal settings, equal versions,
    /// across reloads and processes.
    pub version: u64,
}

impl fmt::Debug for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trust")
            .field("target", &self.target)
            .field("required", &self.required)
            .field("gpg_keys", &self.keys.gpg_keys.len())
            .field("sigstore_keys", &self.keys.sigstore_keys.len())
            .field("version", &self.version)
            .finish()
    }
}

fn bounded(kind: &'static str, index: usize, text: &str) -> Result<(), TrustError> {
    if text.len() > MAX_KEY_BYTES {
        return Err(TrustError::TooLarge {
            kind,
            index,
            len: text.len(),
        });
    }
    Ok(())
}

/// The bytes of a GPG key's text: armored as it is, else base64 of the binary form.
fn gpg_bytes(text: &str) -> Result<Vec<u8>, String> {
    let t = text.trim();
    if t.starts_with("-----BEGIN PGP PRIVATE KEY BLOCK-----") {
        return Err("this is a secret key; give the public key (gpg --export)".into());
    }
    if t.starts_with("-----BEGIN ") {
        return Ok(t.as_bytes().to_vec());
    }
    let compact: String = t.split_ascii_whitespace().collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| "neither an armored OpenPGP key nor base64 of a binary one".to_string())
}

/// A GPG key file's bytes as the text a setting holds (armored stays; binary becomes
/// base64), for clients that read a key file.
pub fn gpg_key_text(file: &[u8]) -> String {
    match std::str::from_utf8(file) {
        Ok(t) if t.trim_start().starts_with("-----BEGIN ") => t.to_string(),
        _ => base64::engine::general_purpose::STANDARD.encode(file),
    }
}

impl Trust {
    /// Checks and parses a setting: sizes bounded, every key parses, keys exactly when
    /// signatures are required.
    pub fn parse(target: &str, required: bool, keys: TrustKeys) -> Result<Trust, TrustError> {
        let n = keys.gpg_keys.len() + keys.sigstore_keys.len();
        match (required, n) {
            (true, 0) => return Err(TrustError::NoKeys),
            (false, 1..) => return Err(TrustError::KeysNotRequired),
            _ => {}
        }
        if keys.gpg_keys.len() > MAX_KEYS {
            return Err(TrustError::TooMany("GPG"));
        }
        if keys.sigstore_keys.len() > MAX_KEYS {
            return Err(TrustError::TooMany("sigstore"));
        }
        let mut keyring = Keyring::default();
        for (i, text) in keys.gpg_keys.iter().enumerate() {
            let index = i + 1;
            bounded("GPG", index, text)?;
            let bytes = gpg_bytes(text).map_err(|why| TrustError::Gpg { index, why })?;
            keyring.add_bytes(&bytes).map_err(|e| TrustError::Gpg {
                index,
                why: e.to_string(),
            })?;
        }
        let mut sigstore = Vec::with_capacity(keys.sigstore_keys.len());
        for (i, text) in keys.sigstore_keys.iter().enumerate() {
            let index = i + 1;
            bounded("sigstore", index, text)?;
            sigstore.push(PublicKey::from_pem(text.as_bytes()).map_err(|e| {
                TrustError::Sigstore {
                    index,
                    why: e.to_string(),
                }
            })?);
        }
        let mut h = Sha256::new();
        h.update(target.as_bytes());
        h.update([0, required as u8]);
        for list in [&keys.gpg_keys, &keys.sigstore_keys] {
            h.update((list.len() as u64).to_be_bytes());
            for k in list {
                h.update((k.len() as u64).to_be_bytes());
                h.update(k.as_bytes());
            }
        }
        let digest = h.finalize();
        let mut version = [0u8; 8];
        version.copy_from_slice(&digest[..8]);
        Ok(Trust {
            target: target.to_string(),
            required,
            keys,
            keyring,
            sigstore,
            version: u64::from_be_bytes(version),
        })
    }

    /// `trust show`'s answer: the setting, its keys as text, and the GPG fingerprints.
    pub fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.target,
            "required": self.required,
            "gpg_fingerprints": self.keyring.fingerprints(),
            "gpg_keys": self.keys.gpg_keys,
            "sigstore_keys": self.keys.sigstore_keys,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A cosign CLI public key (berth-signature's tests verify its signatures).
    pub(crate) const SIGSTORE_PUB: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEFNLqFhf4fiN6o/glAuYnq2jYUeL0\nvRuLu/z39pmbVwS9ff5AYnlwaP9sxREajdLY9ynM6G1sy6AAmb7Z63TsLg==\n-----END PUBLIC KEY-----\n";

    fn keys(gpg: &[&str], sigstore: &[&str]) -> TrustKeys {
        TrustKeys {
            gpg_keys: gpg.iter().map(|s| s.to_string()).collect(),
            sigstore_keys: sigstore.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn keys_must_parse_and_match_the_requirement() {
        let t = Trust::parse("myorg", true, keys(&[], &[SIGSTORE_PUB])).unwrap();
        assert_eq!(t.sigstore.len(), 1);
        assert_eq!(
            Trust::parse("myorg", true, keys(&[], &[])).unwrap_err(),
            TrustError::NoKeys
        );
        assert_eq!(
            Trust::parse("myorg", false, keys(&[], &[SIGSTORE_PUB])).unwrap_err(),
            TrustError::KeysNotRequired
        );
        assert!(Trust::parse("myorg", false, keys(&[], &[])).is_ok());
        let e = Trust::parse("myorg", true, keys(&[], &["not a key"])).unwrap_err();
        assert!(matches!(e, TrustError::Sigstore { index: 1, .. }), "{e}");
        let e = Trust::parse("myorg", true, keys(&["@@@"], &[])).unwrap_err();
        assert!(matches!(e, TrustError::Gpg { index: 1, .. }), "{e}");
        // base64 of something that is no key.
        let e = Trust::parse("myorg", true, keys(&["aGVsbG8="], &[])).unwrap_err();
        assert!(matches!(e, TrustError::Gpg { index: 1, .. }), "{e}");
        let e = Trust::parse(
            "myorg",
            true,
            keys(
                &["-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nxx\n-----END PGP PRIVATE KEY BLOCK-----"],
                &[],
            ),
        )
        .unwrap_err();
        assert!(e.to_string().contains("secret key"), "{e}");
        let big = "x".repeat(MAX_KEY_BYTES + 1);
        let e = Trust::parse("myorg", true, keys(&[], &[&big])).unwrap_err();
        assert!(matches!(e, TrustError::TooLarge { .. }), "{e}");
        let many = vec![SIGSTORE_PUB; MAX_KEYS + 1];
        let e = Trust::parse("myorg", true, keys(&[], &many)).unwrap_err();
        assert_eq!(e, TrustError::TooMany("sigstore"));
    }

    #[test]
    fn versions_follow_the_contents() {
        let a = Trust::parse("myorg", true, keys(&[], &[SIGSTORE_PUB])).unwrap();
        let b = Trust::parse("myorg", true, keys(&[], &[SIGSTORE_PUB])).unwrap();
        let c = Trust::parse("other", true, keys(&[], &[SIGSTORE_PUB])).unwrap();
        let d = Trust::parse("myorg", false, keys(&[], &[])).unwrap();
        assert_eq!(a.version, b.version);
        assert_ne!(a.version, c.version);
        assert_ne!(a.version, d.version);
    }

    #[test]
    fn key_files_become_text() {
        assert_eq!(gpg_key_text(b"-----BEGIN PGP x"), "-----BEGIN PGP x");
        assert_eq!(gpg_key_text(&[0x99, 0x01]), "mQE=");
        assert_eq!(gpg_bytes("mQE=").unwrap(), vec![0x99, 0x01]);
    }
}
