//! OpenPGP signed messages as simple signing uses them: the payload inline (not
//! detached, not cleartext), as `gpg --sign` writes it. Verification authenticates the
//! bytes before anything reads them as JSON, requires the signer to be one of the
//! trusted keys, and refuses revoked and expired keys and expired signatures, as gpgme
//! (under containers/image) does: the key's state is judged now, not at signing time.
//!
//! rpgp parses and checks signatures; which self-signatures count, whether a key is
//! expired or revoked, is evaluated here, signature by signature, so that one bad
//! third-party certification does not discard a whole key.

use std::io::Read;
use std::time::{SystemTime, UNIX_EPOCH};

use pgp::armor::Dearmor;
use pgp::composed::{
    Message, MessageBuilder, PublicOrSecret, SignedPublicKey, SignedPublicKeyParser,
    SignedSecretKey, SignedSecretKeyParser,
};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{Packet, PacketParser, Signature, SignatureType, SubpacketData};
use pgp::types::{CompressionAlgorithm, KeyDetails, Password, SigningKey, Tag};

/// Payloads are a few hundred bytes; this bounds what a compressed message may inflate to.
const MAX_PAYLOAD: u64 = 4 << 20;
/// Compressed packets nested at most (GnuPG's own bound on packet nesting is 32; gpg
/// writes one).
const MAX_COMPRESSION_LAYERS: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("invalid OpenPGP key data: {0}")]
    Parse(String),
    #[error("no OpenPGP keys found in the key data")]
    Empty,
    #[error("the key data holds no secret key")]
    NoSecretKey,
    #[error("secret key {0} has no key that may sign")]
    NoSigningKey(String),
    #[error("wrong passphrase for secret key {0}")]
    Passphrase(String),
    #[error("signing failed: {0}")]
    Sign(String),
}

/// Why a signature was refused; each a distinct case so callers and tests can tell.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("Invalid GPG signature: not an OpenPGP signed message: {0}")]
    Malformed(String),
    #[error("Invalid GPG signature: the message is not signed")]
    NotSigned,
    #[error("Unexpected GPG signature count {0}")]
    SignatureCount(usize),
    #[error("Invalid GPG signature: the payload is larger than {0} bytes")]
    TooLarge(u64),
    #[error("Invalid GPG signature: signed by key {key_id}, which is not trusted")]
    UnknownSigner { key_id: String },
    #[error("Invalid GPG signature: the signature by key {key_id} does not verify")]
    BadSignature { key_id: String },
    #[error("Invalid GPG signature: key {fingerprint} is revoked")]
    KeyRevoked { fingerprint: String },
    #[error("Invalid GPG signature: key {fingerprint} expired at {expired_at} (Unix time)")]
    KeyExpired {
        fingerprint: String,
        expired_at: u64,
    },
    #[error(
        "Invalid GPG signature: the signature by key {key_id} expired at {expired_at} (Unix time)"
    )]
    SignatureExpired { key_id: String, expired_at: u64 },
    #[error("Invalid GPG signature: key {fingerprint} may not make it: {why}")]
    KeyUnusable {
        fingerprint: String,
        why: &'static str,
    },
    #[error("Invalid GPG signature: made with {0}, which is refused as gpg refuses it")]
    WeakHash(String),
}

/// An authenticated payload and who signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub payload: Vec<u8>,
    /// The signer's certificate (primary key) fingerprint, upper-case hex, as gpg and
    /// c/image name keys.
    pub fingerprint: String,
    /// The fingerprint of the key that made the signature (the primary or a subkey).
    pub signing_fingerprint: String,
    /// That key's 64-bit key ID, upper-case hex.
    pub key_id: String,
}

/// One key that may have made a signature, with its certificate's state.
#[derive(Debug, Clone)]
pub(crate) struct Signer {
    pub(crate) cert: usize,
    /// `None`: the primary key; `Some(i)`: the certificate's subkey `i`.
    pub(crate) subkey: Option<usize>,
    pub(crate) fingerprint: String,
    pub(crate) key_id: String,
    pub(crate) revoked: bool,
    pub(crate) expires: Option<u64>,
    /// The certificate has a valid self-signature (a subkey listed here is bound).
    pub(crate) self_signed: bool,
    /// Its flags let it sign data (a subkey listed here does).
    pub(crate) may_sign: bool,
    /// When the key was made (unix seconds): a signature made before cannot be its.
    pub(crate) created: u64,
}

/// A set of trusted public keys (certificates), e.g. a policy's `keyPath`s.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    certs: Vec<SignedPublicKey>,
    signers: Vec<Signer>,
}

impl Keyring {
    /// Reads binary (`gpg --export`) or ASCII-armored (`gpg --armor --export`) key data
    /// holding one or more certificates. Secret keys are accepted for their public part.
    pub fn from_bytes(bytes: &[u8]) -> Result<Keyring, KeyError> {
        let mut ring = Keyring::default();
        ring.add_bytes(bytes)?;
        Ok(ring)
    }

    /// Adds the certificates in `bytes` (several files make one keyring). GnuPG 1
    /// keyring files (`pubring.gpg`) work too: their trust packets are skipped.
    pub fn add_bytes(&mut self, bytes: &[u8]) -> Result<(), KeyError> {
        if bytes.first().is_some_and(|b| b & 0x80 != 0) {
            return self.add_binary(bytes);
        }
        // Armored: possibly several blocks one after the other (`cat a.asc b.asc`),
        // which gpg imports all of.
        const BEGIN: &[u8] = b"-----BEGIN PGP ";
        let starts: Vec<usize> = (0..bytes.len())
            .filter(|&i| bytes[i..].starts_with(BEGIN))
            .collect();
        if starts.is_empty() {
            return Err(KeyError::Parse(
                "neither binary nor ASCII-armored OpenPGP data".into(),
            ));
        }
        for (n, &start) in starts.iter().enumerate() {
            let end = starts.get(n + 1).copied().unwrap_or(bytes.len());
            let mut binary = Vec::new();
            Dearmor::new(&bytes[start..end])
                .read_to_end(&mut binary)
                .map_err(|e| KeyError::Parse(e.to_string()))?;
            self.add_binary(&binary)?;
        }
        Ok(())
    }

    fn add_binary(&mut self, binary: &[u8]) -> Result<(), KeyError> {
        let parse = |e: pgp::errors::Error| KeyError::Parse(e.to_string());
        let packets: Vec<Packet> = PacketParser::new(binary)
            .filter(|p| !matches!(p, Ok(Packet::Trust(_))))
            .collect::<Result<_, _>>()
            .map_err(parse)?;
        let has_secret = packets.iter().any(|p| matches!(p, Packet::SecretKey(_)));
        let before = self.certs.len();
        if has_secret {
            // A secret key export: its public part is the certificate.
            for key in SignedSecretKeyParser::from_packets(packets.into_iter().map(Ok).peekable()) {
                self.add_cert(key.map_err(parse)?.to_public_key());
            }
        } else {
            for key in SignedPublicKeyParser::from_packets(packets.into_iter().map(Ok).peekable()) {
                self.add_cert(key.map_err(parse)?);
            }
        }
        if self.certs.len() == before {
            return Err(KeyError::Empty);
        }
        Ok(())
    }

    fn add_cert(&mut self, cert: SignedPublicKey) {
        let idx = self.certs.len();
        let primary = &cert.primary_key;
        // Self-certifications of user IDs the key still claims (a user ID whose newest
        // valid self-signature revokes it says nothing of the key: a revocation carries
        // no expiry, so it had lifted an expired key's expiry), and direct-key
        // signatures: where the key's expiry and flags are read, as gpg reads them.
        let is_cert = |s: &Signature| {
            matches!(
                s.typ(),
                Some(
                    SignatureType::CertGeneric
                        | SignatureType::CertPersona
                        | SignatureType::CertCasual
                        | SignatureType::CertPositive
                )
            )
        };
        let user_latest = cert
            .details
            .users
            .iter()
            .filter_map(|u| {
                let valid: Vec<&Signature> = u
                    .signatures
                    .iter()
                    .filter(|s| s.verify_certification(primary, Tag::UserId, &u.id).is_ok())
                    .collect();
                let last = valid
                    .iter()
                    .max_by_key(|s| s.created().map(|t| t.as_secs()));
                last.is_some_and(|s| is_cert(s))
                    .then(|| valid.into_iter().filter(|s| is_cert(s)))
            })
            .flatten()
            .max_by_key(|s| s.created().map(|t| t.as_secs()));
        let direct: Vec<&Signature> = cert
            .details
            .direct_signatures
            .iter()
            .filter(|s| s.typ() == Some(SignatureType::Key) && s.verify_key(primary).is_ok())
            .collect();
        let says = |s: &Signature, what: fn(&SubpacketData) -> bool| {
            s.config()
                .is_some_and(|c| c.hashed_subpackets().any(|p| what(&p.data)))
        };
        // As gpg: a direct-key signature decides the expiry, or the flags, when it says
        // them (one adding a designated revoker says neither); else the user IDs' newest.
        let from_direct = |what: fn(&SubpacketData) -> bool| {
            direct
                .iter()
                .copied()
                .filter(|s| says(s, what))
                .max_by_key(|s| s.created().map(|t| t.as_secs()))
        };
        let expiry_sig =
            from_direct(|d| matches!(d, SubpacketData::KeyExpirationTime(_))).or(user_latest);
        let flags_sig = from_direct(|d| matches!(d, SubpacketData::KeyFlags(_))).or(user_latest);
        let self_signed = user_latest.is_some() || !direct.is_empty();
        // Without a key-flags subpacket the primary may sign (gpg goes by the
        // algorithm); with one, only if it says so.
        let primary_may_sign = flags_sig.is_none_or(|s| {
            !says(s, |d| matches!(d, SubpacketData::KeyFlags(_))) || s.key_flags().sign()
        });
        let revoked = cert.details.revocation_signatures.iter().any(|s| {
            s.typ() == Some(SignatureType::KeyRevocation) && s.verify_key(primary).is_ok()
        });
        let created = u64::from(primary.created_at().as_secs());
        let expires = expiry_sig
            .and_then(Signature::key_expiration_time)
            .map(|d| u64::from(d.as_secs()))
            .filter(|&d| d != 0)
            .map(|d| created + d);
        self.signers.push(Signer {
            cert: idx,
            subkey: None,
            fingerprint: hex_upper(primary.fingerprint().as_bytes()),
            key_id: hex_upper(primary.legacy_key_id().as_ref()),
            revoked,
            expires,
            self_signed,
            may_sign: primary_may_sign,
            created,
        });
        for (i, sub) in cert.public_subkeys.iter().enumerate() {
            // The newest valid binding says what the subkey is now: an older one that
            // let it sign does not outlive a newer one that does not.
            let bindings = sub.signatures.iter().filter(|s| {
                s.typ() == Some(SignatureType::SubkeyBinding)
                    && s.verify_subkey_binding(primary, &sub.key).is_ok()
            });
            let Some(binding) = bindings.max_by_key(|s| s.created().map(|t| t.as_secs())) else {
                continue; // not validly bound
            };
            let signs = binding.key_flags().sign()
                && binding
                    .embedded_signature()
                    .is_some_and(|b| b.verify_primary_key_binding(&sub.key, primary).is_ok());
            if !signs {
                continue; // not a signing subkey
            }
            let sub_revoked = sub.signatures.iter().any(|s| {
                s.typ() == Some(SignatureType::SubkeyRevocation)
                    && s.verify_subkey_binding(primary, &sub.key).is_ok()
            });
            let sub_created = u64::from(sub.key.created_at().as_secs());
            let sub_expires = binding
                .key_expiration_time()
                .map(|d| u64::from(d.as_secs()))
                .filter(|&d| d != 0)
                .map(|d| sub_created + d);
            self.signers.push(Signer {
                cert: idx,
                subkey: Some(i),
                fingerprint: hex_upper(sub.key.fingerprint().as_bytes()),
                key_id: hex_upper(sub.key.legacy_key_id().as_ref()),
                revoked: revoked || sub_revoked,
                // The certificate's expiry bounds the subkey's.
                expires: match (expires, sub_expires) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                },
                self_signed,
                may_sign: true,
                created: sub_created,
            });
        }
        self.certs.push(cert);
    }

    /// The certificates' primary fingerprints, upper-case hex, in the order read.
    pub fn fingerprints(&self) -> Vec<String> {
        self.signers
            .iter()
            .filter(|s| s.subkey.is_none())
            .map(|s| s.fingerprint.clone())
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    /// Every primary key, and every subkey validly bound for signing, with its state:
    /// what a signer chooses from (crate::agent) and a verifier matches issuers against.
    pub(crate) fn signers(&self) -> &[Signer] {
        &self.signers
    }

    pub(crate) fn certs(&self) -> &[SignedPublicKey] {
        &self.certs
    }

    /// The certificates' user IDs (`Name <address>`), in the order read: what `podman
    /// image trust show` names keys by.
    pub fn user_ids(&self) -> Vec<String> {
        self.certs
            .iter()
            .flat_map(|c| &c.details.users)
            .map(|u| String::from_utf8_lossy(u.id.id()).into_owned())
            .collect()
    }

    /// The user IDs of the certificate whose primary fingerprint is `fingerprint` (as
    /// [`Verified::fingerprint`] names it; any case): who a verified signature is by.
    pub fn user_ids_of(&self, fingerprint: &str) -> Vec<String> {
        self.signers
            .iter()
            .find(|s| s.subkey.is_none() && s.fingerprint.eq_ignore_ascii_case(fingerprint))
            .map(|s| {
                self.certs[s.cert]
                    .details
                    .users
                    .iter()
                    .map(|u| String::from_utf8_lossy(u.id.id()).into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn cert_fingerprint(&self, cert: usize) -> String {
        hex_upper(self.certs[cert].primary_key.fingerprint().as_bytes())
    }

    /// The trusted keys a signature names as its issuer.
    fn issuers<'a>(&'a self, sig: &'a Signature) -> impl Iterator<Item = &'a Signer> + 'a {
        let fprs: Vec<String> = sig
            .issuer_fingerprint()
            .iter()
            .map(|f| hex_upper(f.as_bytes()))
            .collect();
        let ids: Vec<String> = sig
            .issuer_key_id()
            .iter()
            .map(|k| hex_upper(k.as_ref()))
            .collect();
        self.signers
            .iter()
            .filter(move |s| fprs.contains(&s.fingerprint) || ids.contains(&s.key_id))
    }
}

/// Verifies an OpenPGP signed message against `trusted` and returns its payload.
pub fn verify(trusted: &Keyring, signature: &[u8]) -> Result<Verified, VerifyError> {
    verify_at(trusted, signature, SystemTime::now())
}

/// [`verify`] with the payload bounded at `max_payload` bytes instead of 4 MiB: a
/// registry verifying stored signatures on every read of a manifest keeps what a
/// hostile one may inflate to small (payloads are a few hundred bytes).
pub fn verify_bounded(
    trusted: &Keyring,
    signature: &[u8],
    max_payload: u64,
) -> Result<Verified, VerifyError> {
    verify_with(trusted, signature, SystemTime::now(), max_payload)
}

/// [`verify`] with the clock given (key expiry is judged at `now`).
pub fn verify_at(
    trusted: &Keyring,
    signature: &[u8],
    now: SystemTime,
) -> Result<Verified, VerifyError> {
    verify_with(trusted, signature, now, MAX_PAYLOAD)
}

fn verify_with(
    trusted: &Keyring,
    signature: &[u8],
    now: SystemTime,
    max_payload: u64,
) -> Result<Verified, VerifyError> {
    let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let malformed = |e: pgp::errors::Error| VerifyError::Malformed(e.to_string());
    let mut msg = Message::from_bytes(signature).map_err(malformed)?;
    let mut layers = 0;
    while msg.is_compressed() {
        // Each layer is another decompressor on the stack when the payload is read:
        // thousands (a 39 KB signature) overflowed it and aborted the process.
        layers += 1;
        if layers > MAX_COMPRESSION_LAYERS {
            return Err(VerifyError::Malformed(format!(
                "compressed more than {MAX_COMPRESSION_LAYERS} times over"
            )));
        }
        msg = msg.decompress().map_err(malformed)?;
    }
    if msg.is_encrypted() {
        return Err(VerifyError::Malformed("the message is encrypted".into()));
    }
    if !msg.is_signed() {
        return Err(VerifyError::NotSigned);
    }
    let mut payload = Vec::new();
    (&mut msg)
        .take(max_payload.saturating_add(1))
        .read_to_end(&mut payload)
        .map_err(|e| VerifyError::Malformed(e.to_string()))?;
    if payload.len() as u64 > max_payload {
        return Err(VerifyError::TooLarge(max_payload));
    }
    let Message::Signed { reader, .. } = &msg else {
        return Err(VerifyError::NotSigned);
    };
    let count = reader.num_signatures();
    if count != 1 {
        return Err(VerifyError::SignatureCount(count));
    }
    let sig = reader
        .signature(0)
        .ok_or_else(|| VerifyError::Malformed("no signature packet".into()))?;
    // A signature of the data, not a certification or a standalone one over the same
    // bytes; and not by a hash gpg refuses.
    if !matches!(sig.typ(), Some(SignatureType::Binary | SignatureType::Text)) {
        return Err(VerifyError::Malformed(format!(
            "a signature of type {:?} is not one of data",
            sig.typ()
        )));
    }
    if let Some(h @ HashAlgorithm::Md5) = sig.hash_alg() {
        return Err(VerifyError::WeakHash(format!("{h:?}")));
    }
    let named_key_id = sig
        .issuer_key_id()
        .first()
        .map(|k| hex_upper(k.as_ref()))
        .or_else(|| {
            sig.issuer_fingerprint().first().map(|f| {
                let b = f.as_bytes();
                hex_upper(&b[b.len().saturating_sub(8)..])
            })
        })
        .unwrap_or_else(|| "(none)".into());

    let mut candidates = trusted.issuers(sig).peekable();
    if candidates.peek().is_none() {
        return Err(VerifyError::UnknownSigner {
            key_id: named_key_id,
        });
    }
    let signer = candidates
        .find(|s| {
            let cert = &trusted.certs[s.cert];
            match s.subkey {
                None => msg.verify(&cert.primary_key).is_ok(),
                Some(i) => msg.verify(&cert.public_subkeys[i].key).is_ok(),
            }
        })
        .ok_or(VerifyError::BadSignature {
            key_id: named_key_id.clone(),
        })?;

    // Refusals name the key that signed (a subkey's own fingerprint for a subkey).
    let unusable = |why| VerifyError::KeyUnusable {
        fingerprint: signer.fingerprint.clone(),
        why,
    };
    if !signer.self_signed {
        return Err(unusable("its certificate has no valid self-signature"));
    }
    if !signer.may_sign {
        return Err(unusable("its key flags do not let it sign"));
    }
    if sig
        .created()
        .is_some_and(|t| u64::from(t.as_secs()) < signer.created)
    {
        return Err(unusable("the signature is older than the key"));
    }
    if signer.revoked {
        return Err(VerifyError::KeyRevoked {
            fingerprint: signer.fingerprint.clone(),
        });
    }
    if let Some(expired_at) = signer.expires.filter(|&t| t <= now) {
        return Err(VerifyError::KeyExpired {
            fingerprint: signer.fingerprint.clone(),
            expired_at,
        });
    }
    if let (Some(created), Some(valid_for)) = (sig.created(), sig.signature_expiration_time()) {
        let valid_for = u64::from(valid_for.as_secs());
        let expired_at = u64::from(created.as_secs()) + valid_for;
        if valid_for != 0 && expired_at <= now {
            return Err(VerifyError::SignatureExpired {
                key_id: signer.key_id.clone(),
                expired_at,
            });
        }
    }
    Ok(Verified {
        payload,
        fingerprint: trusted.cert_fingerprint(signer.cert),
        signing_fingerprint: signer.fingerprint.clone(),
        key_id: signer.key_id.clone(),
    })
}

/// Signs `payload` as `gpg --sign` would (a compressed, one-pass signed message with the
/// payload inline), with the secret key in `secret_key` (armored or binary, as
/// `gpg --export-secret-keys` writes it) and no gpg involved. The primary key signs when
/// it may, else the first signing subkey.
pub fn sign_with_key(
    secret_key: &[u8],
    passphrase: &str,
    payload: &[u8],
) -> Result<Vec<u8>, KeyError> {
    let (keys, _) =
        PublicOrSecret::from_reader_many(secret_key).map_err(|e| KeyError::Parse(e.to_string()))?;
    let mut secret: Option<SignedSecretKey> = None;
    for key in keys {
        match key.map_err(|e| KeyError::Parse(e.to_string()))? {
            PublicOrSecret::Secret(k) => {
                secret = Some(k);
                break;
            }
            PublicOrSecret::Public(_) => {}
        }
    }
    let secret = secret.ok_or(KeyError::NoSecretKey)?;
    let fpr = hex_upper(secret.primary_key.fingerprint().as_bytes());
    let pw = Password::from(passphrase);
    let unlock_err = |e: pgp::errors::Error| {
        if secret_is_encrypted(&secret) {
            KeyError::Passphrase(fpr.clone())
        } else {
            KeyError::Sign(e.to_string())
        }
    };
    // The keys that may sign, read as a verifier reads them: a signature made here is
    // one berth itself accepts (not revoked, not expired, flags that let it sign).
    let mut ring = Keyring::default();
    ring.add_cert(secret.to_public_key());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let usable = |s: &&Signer| {
        !s.revoked && s.self_signed && s.may_sign && s.expires.is_none_or(|t| t > now)
    };
    let primary_signs = ring
        .signers()
        .iter()
        .filter(usable)
        .any(|s| s.subkey.is_none());
    if primary_signs {
        secret
            .primary_key
            .unlock(&pw, |_, _| Ok(()))
            .map_err(unlock_err)?
            .map_err(|e| KeyError::Sign(e.to_string()))?;
        return signed_message(&secret.primary_key, pw, payload);
    }
    // The newest usable signing subkey, as gpg chooses.
    let sub = ring
        .signers()
        .iter()
        .filter(usable)
        .filter_map(|s| s.subkey.and_then(|i| secret.secret_subkeys.get(i)))
        .max_by_key(|k| k.key.created_at().as_secs())
        .ok_or_else(|| KeyError::NoSigningKey(fpr.clone()))?;
    sub.key
        .unlock(&pw, |_, _| Ok(()))
        .map_err(unlock_err)?
        .map_err(|e| KeyError::Sign(e.to_string()))?;
    signed_message(&sub.key, pw, payload)
}

/// The message both signers write, whoever holds the key (a key file here, gpg-agent
/// in [`crate::agent`]): a ZIP-compressed, one-pass signed message with the payload
/// inline and a SHA-256 signature, the shape `gpg --sign` writes.
pub(crate) fn signed_message(
    key: &dyn SigningKey,
    pw: Password,
    payload: &[u8],
) -> Result<Vec<u8>, KeyError> {
    let mut builder = MessageBuilder::from_bytes("", payload.to_vec());
    builder.compression(CompressionAlgorithm::ZIP);
    builder.sign(key, pw, HashAlgorithm::Sha256);
    builder
        .to_vec(rand08::thread_rng())
        .map_err(|e| KeyError::Sign(e.to_string()))
}

fn secret_is_encrypted(k: &SignedSecretKey) -> bool {
    k.primary_key.secret_params().is_encrypted()
        || k.secret_subkeys
            .iter()
            .any(|s| s.key.secret_params().is_encrypted())
}

pub(crate) fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// Keys made with rpgp for tests that must not depend on gpg.
#[cfg(test)]
pub(crate) mod testkeys {
    use pgp::composed::{
        EncryptionCaps, KeyType, SecretKeyParamsBuilder, SignedPublicKey, SubkeyParamsBuilder,
    };
    use pgp::ser::Serialize;

    /// An ed25519 key for `uid`: (armored secret key, binary public key). With
    /// `subkey`, the primary only certifies and a subkey signs, as in many real keys.
    pub(crate) fn generate(uid: &str, subkey: bool) -> (Vec<u8>, Vec<u8>) {
        let mut params = SecretKeyParamsBuilder::default();
        params
            .key_type(KeyType::Ed25519Legacy)
            .can_certify(true)
            .can_sign(!subkey)
            .can_encrypt(EncryptionCaps::None)
            .primary_user_id(uid.into());
        if subkey {
            let mut sign = SubkeyParamsBuilder::default();
            sign.key_type(KeyType::Ed25519Legacy)
                .can_sign(true)
                .can_encrypt(EncryptionCaps::None)
                .can_authenticate(false);
            params.subkeys(vec![sign.build().unwrap()]);
        }
        let secret = params
            .build()
            .unwrap()
            .generate(rand08::thread_rng())
            .unwrap();
        let armored = secret.to_armored_bytes(Default::default()).unwrap();
        let mut public = Vec::new();
        SignedPublicKey::from(secret)
            .to_writer(&mut public)
            .unwrap();
        (armored, public)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify_with_primary_and_with_signing_subkey() {
        for subkey in [false, true] {
            let (secret, public) = testkeys::generate("T <t@example.com>", subkey);
            let ring = Keyring::from_bytes(&public).unwrap();
            let sig = sign_with_key(&secret, "", b"payload").unwrap();
            let v = verify(&ring, &sig).unwrap();
            // A secret key export serves as a keyring too.
            let from_secret = Keyring::from_bytes(&secret).unwrap();
            assert_eq!(from_secret.fingerprints(), ring.fingerprints());
            assert_eq!(verify(&from_secret, &sig).unwrap().payload, b"payload");
            assert_eq!(v.payload, b"payload");
            assert_eq!(v.fingerprint, ring.fingerprints()[0]);
            assert_eq!(v.fingerprint != v.signing_fingerprint, subkey);
            assert_eq!(
                ring.user_ids_of(&v.fingerprint.to_lowercase()),
                ["T <t@example.com>"]
            );
            // A subkey's fingerprint is not a certificate's.
            assert_eq!(ring.user_ids_of(&v.signing_fingerprint).is_empty(), subkey);
        }
    }

    /// A primary key whose flags say it only certifies does not sign data, as gpg
    /// refuses it (Wrong key usage).
    #[test]
    fn a_certify_only_primary_does_not_sign() {
        use pgp::composed::{Deserializable, SignedSecretKey};
        let (secret, public) = testkeys::generate("T <t@example.com>", true);
        let ring = Keyring::from_bytes(&public).unwrap();
        let (key, _) = SignedSecretKey::from_armor_single(&secret[..]).unwrap();
        let by_primary = signed_message(&key.primary_key, Password::empty(), b"p").unwrap();
        let e = verify(&ring, &by_primary).unwrap_err();
        assert!(
            matches!(e, VerifyError::KeyUnusable { why, .. } if why.contains("flags")),
            "{e}"
        );
    }

    #[test]
    fn concatenated_armored_keys() {
        use pgp::composed::{Deserializable, SignedSecretKey};
        let (a, _) = testkeys::generate("A <a@example.com>", false);
        let (b, _) = testkeys::generate("B <b@example.com>", false);
        let armored = |secret: &[u8]| {
            let (k, _) = SignedSecretKey::from_armor_single(secret).unwrap();
            k.to_public_key()
                .to_armored_bytes(Default::default())
                .unwrap()
        };
        let mut both = armored(&a);
        both.extend(armored(&b));
        let ring = Keyring::from_bytes(&both).unwrap();
        assert_eq!(ring.fingerprints().len(), 2);
        let sig = sign_with_key(&b, "", b"x").unwrap();
        assert!(verify(&ring, &sig).is_ok());
    }

    #[test]
    fn keyring_input_errors() {
        assert!(matches!(
            Keyring::from_bytes(b""),
            Err(KeyError::Empty) | Err(KeyError::Parse(_))
        ));
        assert!(Keyring::from_bytes(b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nxx\n").is_err());
        let (_, public) = testkeys::generate("T <t@example.com>", false);
        assert!(matches!(
            sign_with_key(&public, "", b"x"),
            Err(KeyError::NoSecretKey)
        ));
    }

    /// `signature` wrapped in `depth` compressed packets (stored deflate blocks, as
    /// any compressor may write them).
    fn compressed(mut signature: Vec<u8>, depth: usize) -> Vec<u8> {
        for _ in 0..depth {
            let mut body = vec![1u8]; // ZIP (raw deflate)
            let blocks: Vec<&[u8]> = signature.chunks(65535).collect();
            for (i, block) in blocks.iter().enumerate() {
                body.push(u8::from(i + 1 == blocks.len()));
                let len = block.len() as u16;
                body.extend_from_slice(&len.to_le_bytes());
                body.extend_from_slice(&(!len).to_le_bytes());
                body.extend_from_slice(block);
            }
            // A new-format compressed-data packet (tag 8) with a five-octet length.
            let mut packet = vec![0xC0 | 8, 0xFF];
            packet.extend_from_slice(&(body.len() as u32).to_be_bytes());
            packet.extend(body);
            signature = packet;
        }
        signature
    }

    /// A signature compressed thousands of times over (39 KB, within what the
    /// registry stores) overflowed the stack of the thread reading its payload, which
    /// aborts the whole process: now refused once past GnuPG's nesting bound, on a
    /// thread with tokio's blocking-pool stack. A few layers are still read.
    #[test]
    fn deeply_nested_compression_is_refused_not_a_crash() {
        let (secret, public) = testkeys::generate("T <t@example.com>", false);
        let ring = Keyring::from_bytes(&public).unwrap();
        let sig = sign_with_key(&secret, "", b"payload").unwrap();
        let outcomes = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                [2, MAX_COMPRESSION_LAYERS + 1, 3500]
                    .map(|depth| verify(&ring, &compressed(sig.clone(), depth)))
            })
            .unwrap()
            .join()
            .expect("no stack overflow");
        assert_eq!(outcomes[0].as_ref().unwrap().payload, b"payload");
        for o in &outcomes[1..] {
            assert!(
                matches!(o, Err(VerifyError::Malformed(m)) if m.contains("compressed more than")),
                "{o:?}"
            );
        }
    }

    /// A bounded verify refuses a payload past its bound before any of it is
    /// trusted (a registry verifying stored signatures inflates at most that much).
    #[test]
    fn a_bounded_verify_refuses_larger_payloads() {
        let (secret, public) = testkeys::generate("T <t@example.com>", false);
        let ring = Keyring::from_bytes(&public).unwrap();
        let sig = sign_with_key(&secret, "", &[b'x'; 100]).unwrap();
        assert_eq!(verify_bounded(&ring, &sig, 100).unwrap().payload.len(), 100);
        assert_eq!(
            verify_bounded(&ring, &sig, 99).unwrap_err(),
            VerifyError::TooLarge(99)
        );
    }

    #[test]
    fn two_signatures_refused() {
        // c/image (gpgme) accepts exactly one signature per message.
        let (a, pa) = testkeys::generate("A <a@example.com>", false);
        let (b, pb) = testkeys::generate("B <b@example.com>", false);
        let (ka, _) = PublicOrSecret::from_reader_many(&a[..]).unwrap();
        let (kb, _) = PublicOrSecret::from_reader_many(&b[..]).unwrap();
        let ka = SignedSecretKey::try_from(ka.into_iter().next().unwrap().unwrap()).unwrap();
        let kb = SignedSecretKey::try_from(kb.into_iter().next().unwrap().unwrap()).unwrap();
        let mut builder = MessageBuilder::from_bytes("", b"x".to_vec());
        builder.sign(&ka.primary_key, Password::empty(), HashAlgorithm::Sha256);
        builder.sign(&kb.primary_key, Password::empty(), HashAlgorithm::Sha256);
        let sig = builder.to_vec(rand08::thread_rng()).unwrap();
        let mut ring = Keyring::from_bytes(&pa).unwrap();
        ring.add_bytes(&pb).unwrap();
        assert_eq!(verify(&ring, &sig), Err(VerifyError::SignatureCount(2)));
    }
}
