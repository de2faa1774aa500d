//! Key-based sigstore (cosign) signatures, as containers/image makes and checks them:
//! ECDSA P-256 over SHA-256 of the payload, the signature base64 in the
//! `dev.cosignproject.cosign/signature` annotation. No Fulcio, no Rekor. Verifying
//! also takes the other public keys containers/image's `signature.LoadVerifier` does:
//! ECDSA P-384 (over SHA-256 too: c/image fixes the hash), RSA PKCS#1 v1.5 over
//! SHA-256, and Ed25519 over the payload itself. (P-521 over SHA-256 is refused:
//! RustCrypto's ECDSA will not verify a digest shorter than half its field.)
//!
//! Private keys use cosign's format (`skopeo generate-sigstore-key`, `cosign
//! generate-key-pair`): a PEM block `ENCRYPTED SIGSTORE PRIVATE KEY` whose body is
//! go-securesystemslib's JSON — scrypt parameters and salt, a NaCl secretbox nonce, and
//! the sealed PKCS#8 key. Public keys are PKIX `PUBLIC KEY` PEM.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use berth_image::Digest;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::XSalsa20Poly1305;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::der::pem::{self, LineEnding};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use rand08::RngCore;
use serde::{Deserialize, Serialize};

use crate::payload::{Format, Payload, PayloadError};

/// The PEM label c/image and cosign 2 write; cosign 1's is accepted too.
const PRIVATE_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
const COSIGN_PRIVATE_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";
/// The annotation holding a sigstore signature on its layer.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The media type of a sigstore signature layer (the payload).
pub const PAYLOAD_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

/// scrypt N=2^15, r=8, p=1: what skopeo 1.9.3's go-securesystemslib writes and insists
/// on reading. Newer versions write 2^16 and read 2^15..2^17; berth reads those three.
const WRITE_LOG_N: u8 = 15;
const READ_LOG_N: [u8; 3] = [15, 16, 17];
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum SigstoreError {
    #[error("invalid sigstore private key: {0}")]
    PrivateKey(String),
    #[error("decrypting the sigstore private key: wrong passphrase")]
    Passphrase,
    #[error("invalid public key: {0}")]
    PublicKey(String),
    #[error("Invalid sigstore signature: base64 decoding: {0}")]
    Base64(String),
    #[error("Invalid sigstore signature: cryptographic signature verification failed")]
    BadSignature,
    #[error("no public keys to verify with")]
    NoKeys,
    #[error(transparent)]
    Payload(#[from] PayloadError),
}

/// A generated key pair, both halves PEM.
#[derive(Debug, Clone)]
pub struct KeyPair {
    pub public_pem: String,
    pub private_pem: String,
}

/// A P-256 private key for signing.
#[derive(Clone)]
pub struct PrivateKey(SigningKey);

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey(..)")
    }
}

/// A public key for verifying: P-256 (what berth and skopeo generate), or another kind
/// containers/image verifies with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey(Key);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    P256(VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    Rsa(rsa::RsaPublicKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

#[derive(Serialize, Deserialize)]
struct Encrypted {
    kdf: Kdf,
    cipher: Cipher,
    #[serde(with = "b64")]
    ciphertext: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    #[serde(with = "b64")]
    salt: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Serialize, Deserialize)]
struct Cipher {
    name: String,
    #[serde(with = "b64")]
    nonce: Vec<u8>,
}

/// Go's `[]byte` in JSON: standard base64.
mod b64 {
    use super::{Engine, BASE64};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&BASE64.encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        BASE64.decode(s).map_err(serde::de::Error::custom)
    }
}

fn scrypt_key(passphrase: &[u8], salt: &[u8], log_n: u8) -> Result<[u8; 32], SigstoreError> {
    let params = scrypt::Params::new(log_n, SCRYPT_R, SCRYPT_P, 32)
        .map_err(|e| SigstoreError::PrivateKey(e.to_string()))?;
    let mut key = [0u8; 32];
    scrypt::scrypt(passphrase, salt, &params, &mut key)
        .map_err(|e| SigstoreError::PrivateKey(e.to_string()))?;
    Ok(key)
}

/// A new P-256 key pair in the files `skopeo generate-sigstore-key` writes
/// (`<prefix>.pub`, `<prefix>.private`), the private half sealed with `passphrase`.
pub fn generate_key_pair(passphrase: &[u8]) -> Result<KeyPair, SigstoreError> {
    let key = SigningKey::random(&mut rand08::rngs::OsRng);
    let private_pem = PrivateKey(key.clone()).to_encrypted_pem(passphrase)?;
    let public_pem = PublicKey(Key::P256(*key.verifying_key())).to_pem()?;
    Ok(KeyPair {
        public_pem,
        private_pem,
    })
}

impl PrivateKey {
    /// Opens an encrypted sigstore/cosign private key with its passphrase.
    pub fn from_pem(pem_bytes: &[u8], passphrase: &[u8]) -> Result<PrivateKey, SigstoreError> {
        let bad = |m: String| SigstoreError::PrivateKey(m);
        let (label, body) = pem::decode_vec(pem_bytes).map_err(|e| bad(e.to_string()))?;
        if label != PRIVATE_LABEL && label != COSIGN_PRIVATE_LABEL {
            return Err(bad(format!("unsupported pem type: {label}")));
        }
        let enc: Encrypted = serde_json::from_slice(&body).map_err(|e| bad(e.to_string()))?;
        if enc.kdf.name != "scrypt" || enc.cipher.name != "nacl/secretbox" {
            return Err(bad(format!(
                "unsupported encryption {} + {}",
                enc.kdf.name, enc.cipher.name
            )));
        }
        // Fixed parameter sets only: a key file must not make berth spend minutes in scrypt.
        let p = &enc.kdf.params;
        let log_n = READ_LOG_N
            .into_iter()
            .find(|&l| p.n == 1u64 << l && p.r == SCRYPT_R && p.p == SCRYPT_P)
            .ok_or_else(|| {
                bad(format!(
                    "unsupported scrypt parameters N={} r={} p={}",
                    p.n, p.r, p.p
                ))
            })?;
        if enc.cipher.nonce.len() != 24 {
            return Err(bad("the secretbox nonce is not 24 bytes".into()));
        }
        let key = scrypt_key(passphrase, &enc.kdf.salt, log_n)?;
        let der = XSalsa20Poly1305::new(&key.into())
            .decrypt(
                enc.cipher.nonce.as_slice().into(),
                enc.ciphertext.as_slice(),
            )
            .map_err(|_| SigstoreError::Passphrase)?;
        let key = SigningKey::from_pkcs8_der(&der)
            .map_err(|e| bad(format!("not a PKCS#8 ECDSA P-256 key: {e}")))?;
        Ok(PrivateKey(key))
    }

    /// The key sealed with `passphrase` in cosign's format.
    pub fn to_encrypted_pem(&self, passphrase: &[u8]) -> Result<String, SigstoreError> {
        let der = self
            .0
            .to_pkcs8_der()
            .map_err(|e| SigstoreError::PrivateKey(e.to_string()))?;
        let mut salt = vec![0u8; 32];
        let mut nonce = vec![0u8; 24];
        rand08::rngs::OsRng.fill_bytes(&mut salt);
        rand08::rngs::OsRng.fill_bytes(&mut nonce);
        let key = scrypt_key(passphrase, &salt, WRITE_LOG_N)?;
        let ciphertext = XSalsa20Poly1305::new(&key.into())
            .encrypt(nonce.as_slice().into(), der.as_bytes())
            .map_err(|_| SigstoreError::PrivateKey("sealing failed".into()))?;
        let enc = Encrypted {
            kdf: Kdf {
                name: "scrypt".into(),
                params: ScryptParams {
                    n: 1 << WRITE_LOG_N,
                    r: SCRYPT_R,
                    p: SCRYPT_P,
                },
                salt,
            },
            cipher: Cipher {
                name: "nacl/secretbox".into(),
                nonce,
            },
            ciphertext,
        };
        let json =
            serde_json::to_vec(&enc).map_err(|e| SigstoreError::PrivateKey(e.to_string()))?;
        pem::encode_string(PRIVATE_LABEL, LineEnding::LF, &json)
            .map_err(|e| SigstoreError::PrivateKey(e.to_string()))
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(Key::P256(*self.0.verifying_key()))
    }

    /// Signs `payload`; returns the base64 ASN.1 DER signature, as the annotation holds it.
    pub fn sign(&self, payload: &[u8]) -> String {
        let sig: Signature = self.0.sign(payload);
        BASE64.encode(sig.to_der().as_bytes())
    }
}

/// An RSA `PUBLIC KEY` PEM of up to 16,384 bits, as Go's crypto/rsa verifies them:
/// the rsa crate's own reader refuses keys over 4,096 bits.
fn rsa_from_pem(text: &str) -> Result<rsa::RsaPublicKey, String> {
    use rsa::pkcs8::der::Decode as _;
    const MAX_BITS: usize = 16_384;
    let (label, doc) = rsa::pkcs8::Document::from_pem(text).map_err(|e| e.to_string())?;
    if label != "PUBLIC KEY" {
        return Err(format!("a {label} PEM block, not a PUBLIC KEY"));
    }
    let spki =
        rsa::pkcs8::SubjectPublicKeyInfoRef::from_der(doc.as_bytes()).map_err(|e| e.to_string())?;
    if spki.algorithm.oid != rsa::pkcs1::ALGORITHM_OID {
        return Err("not an RSA key".into());
    }
    let key = rsa::pkcs1::RsaPublicKey::from_der(spki.subject_public_key.raw_bytes())
        .map_err(|e| e.to_string())?;
    rsa::RsaPublicKey::new_with_max_size(
        rsa::BigUint::from_bytes_be(key.modulus.as_bytes()),
        rsa::BigUint::from_bytes_be(key.public_exponent.as_bytes()),
        MAX_BITS,
    )
    .map_err(|e| e.to_string())
}

impl PublicKey {
    /// Reads a PKIX `PUBLIC KEY` PEM.
    pub fn from_pem(pem_bytes: &[u8]) -> Result<PublicKey, SigstoreError> {
        let text = std::str::from_utf8(pem_bytes)
            .map_err(|_| SigstoreError::PublicKey("not PEM text".into()))?;
        let text = text.trim();
        let key = match VerifyingKey::from_public_key_pem(text) {
            Ok(k) => Key::P256(k),
            Err(p256_error) => p384::ecdsa::VerifyingKey::from_public_key_pem(text)
                .map(Key::P384)
                .or_else(|_| rsa_from_pem(text).map(Key::Rsa))
                .or_else(|_| {
                    ed25519_dalek::VerifyingKey::from_public_key_pem(text).map(Key::Ed25519)
                })
                .map_err(|_| {
                    SigstoreError::PublicKey(format!(
                        "not a PEM ECDSA P-256 or P-384, RSA or Ed25519 public key: {p256_error}"
                    ))
                })?,
        };
        Ok(PublicKey(key))
    }

    pub fn to_pem(&self) -> Result<String, SigstoreError> {
        let pem = match &self.0 {
            Key::P256(k) => k.to_public_key_pem(LineEnding::LF),
            Key::P384(k) => k.to_public_key_pem(LineEnding::LF),
            Key::Rsa(k) => k.to_public_key_pem(LineEnding::LF),
            Key::Ed25519(k) => k.to_public_key_pem(LineEnding::LF),
        };
        pem.map_err(|e| SigstoreError::PublicKey(e.to_string()))
    }

    /// Whether `raw` (the decoded annotation) is this key's signature of `payload`.
    /// ECDSA signatures are ASN.1 DER, as Go's `ecdsa.VerifyASN1` reads them: a raw
    /// r||s form is not a sigstore signature.
    fn verifies(&self, payload: &[u8], raw: &[u8]) -> bool {
        use p384::ecdsa::signature::hazmat::PrehashVerifier as _;
        use sha2::Digest as _;
        match &self.0 {
            Key::P256(k) => {
                Signature::from_der(raw).is_ok_and(|sig| k.verify(payload, &sig).is_ok())
            }
            Key::P384(k) => p384::ecdsa::Signature::from_der(raw).is_ok_and(|sig| {
                k.verify_prehash(&sha2::Sha256::digest(payload), &sig)
                    .is_ok()
            }),
            Key::Rsa(k) => rsa::pkcs1v15::Signature::try_from(raw).is_ok_and(|sig| {
                rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(k.clone())
                    .verify(payload, &sig)
                    .is_ok()
            }),
            Key::Ed25519(k) => ed25519_dalek::Signature::from_slice(raw)
                .is_ok_and(|sig| k.verify_strict(payload, &sig).is_ok()),
        }
    }
}

/// Signs `digest` as `reference`: the payload bytes (the signature layer's blob) and the
/// base64 signature (its annotation). `creator` is c/image's `containers/image <version>`.
pub fn sign_image(
    key: &PrivateKey,
    digest: &Digest,
    reference: &str,
    creator: &str,
) -> Result<(Vec<u8>, String), SigstoreError> {
    let payload = Payload::new(digest.clone(), reference, creator).to_json(Format::Sigstore)?;
    let sig = key.sign(&payload);
    Ok((payload, sig))
}

/// Verifies a sigstore signature with any of `keys`, then parses the payload strictly
/// (only authenticated bytes are parsed).
pub fn verify(
    keys: &[PublicKey],
    payload: &[u8],
    signature_b64: &str,
) -> Result<Payload, SigstoreError> {
    if keys.is_empty() {
        return Err(SigstoreError::NoKeys);
    }
    let raw = BASE64
        .decode(signature_b64.trim())
        .map_err(|e| SigstoreError::Base64(e.to_string()))?;
    if !keys.iter().any(|k| k.verifies(payload, &raw)) {
        return Err(SigstoreError::BadSignature);
    }
    Ok(Payload::parse(payload, Format::Sigstore)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> Digest {
        Digest::sha256_of(b"manifest")
    }

    #[test]
    fn generated_key_round_trip_and_format() {
        let pair = generate_key_pair(b"pw").unwrap();
        assert!(pair
            .private_pem
            .starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
        assert!(pair.public_pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        let (label, body) = pem::decode_vec(pair.private_pem.as_bytes()).unwrap();
        assert_eq!(label, PRIVATE_LABEL);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        // go-securesystemslib's member order and values.
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["kdf", "cipher", "ciphertext"]);
        assert_eq!(v["kdf"]["name"], "scrypt");
        assert_eq!(
            v["kdf"]["params"],
            serde_json::json!({"N": 32768, "r": 8, "p": 1})
        );
        assert_eq!(
            BASE64
                .decode(v["kdf"]["salt"].as_str().unwrap())
                .unwrap()
                .len(),
            32
        );
        assert_eq!(v["cipher"]["name"], "nacl/secretbox");
        assert_eq!(
            BASE64
                .decode(v["cipher"]["nonce"].as_str().unwrap())
                .unwrap()
                .len(),
            24
        );

        let key = PrivateKey::from_pem(pair.private_pem.as_bytes(), b"pw").unwrap();
        let public = PublicKey::from_pem(pair.public_pem.as_bytes()).unwrap();
        assert_eq!(key.public_key(), public);
        let (payload, sig) =
            sign_image(&key, &digest(), "a.example/b:c", "containers/image 5.23.1").unwrap();
        let p = verify(&[public], &payload, &sig).unwrap();
        assert_eq!(p.docker_manifest_digest, digest());
        assert_eq!(p.docker_reference, "a.example/b:c");
    }

    #[test]
    fn wrong_passphrase_and_bad_files_refused() {
        let pair = generate_key_pair(b"pw").unwrap();
        assert!(matches!(
            PrivateKey::from_pem(pair.private_pem.as_bytes(), b"nope"),
            Err(SigstoreError::Passphrase)
        ));
        assert!(matches!(
            PrivateKey::from_pem(pair.public_pem.as_bytes(), b"pw"),
            Err(SigstoreError::PrivateKey(m)) if m.contains("unsupported pem type")
        ));
        // Tampered scrypt parameters (a cost bomb) are refused before any work.
        let (_, body) = pem::decode_vec(pair.private_pem.as_bytes()).unwrap();
        let bomb = String::from_utf8(body)
            .unwrap()
            .replace("\"N\":32768", "\"N\":1073741824");
        let bomb = pem::encode_string(PRIVATE_LABEL, LineEnding::LF, bomb.as_bytes()).unwrap();
        assert!(matches!(
            PrivateKey::from_pem(bomb.as_bytes(), b"pw"),
            Err(SigstoreError::PrivateKey(m)) if m.contains("scrypt parameters")
        ));
        assert!(PublicKey::from_pem(b"garbage").is_err());
    }

    #[test]
    fn verify_refusals() {
        let a = PrivateKey(SigningKey::random(&mut rand08::rngs::OsRng));
        let b = PrivateKey(SigningKey::random(&mut rand08::rngs::OsRng));
        let (payload, sig) = sign_image(&a, &digest(), "a.example/b:c", "x").unwrap();
        // Another key.
        assert!(matches!(
            verify(&[b.public_key()], &payload, &sig),
            Err(SigstoreError::BadSignature)
        ));
        // Any of several keys.
        assert!(verify(&[b.public_key(), a.public_key()], &payload, &sig).is_ok());
        // Tampered payload and signature.
        let mut t = payload.clone();
        t[20] ^= 1;
        assert!(matches!(
            verify(&[a.public_key()], &t, &sig),
            Err(SigstoreError::BadSignature)
        ));
        let mut raw = BASE64.decode(&sig).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert!(matches!(
            verify(&[a.public_key()], &payload, &BASE64.encode(raw)),
            Err(SigstoreError::BadSignature)
        ));
        assert!(matches!(
            verify(&[a.public_key()], &payload, "%%%"),
            Err(SigstoreError::Base64(_))
        ));
        assert!(matches!(
            verify(&[], &payload, &sig),
            Err(SigstoreError::NoKeys)
        ));
        // A simple-signing payload signed with the right key is still refused by type.
        let simple = Payload::new(digest(), "a.example/b:c", "x")
            .to_json(Format::Simple)
            .unwrap();
        let s = a.sign(&simple);
        assert!(matches!(
            verify(&[a.public_key()], &simple, &s),
            Err(SigstoreError::Payload(PayloadError::Type(_)))
        ));
    }
}
