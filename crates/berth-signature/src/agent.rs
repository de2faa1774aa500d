//! Signing through the user's gpg-agent directly, without spawning `gpg`: what `gpg
//! --sign` does, minus its start-up. Spawning gpg costs about 5.5 ms per signature (it
//! loads the keyring and trust database, then asks the agent), more than berth's whole
//! copy of a small image; talking to the agent costs a few round trips on a socket.
//!
//! The steps are gpg's: find the key in the public keyring ([`keybox`]), choose the key
//! that signs as gpg chooses it, name its secret by keygrip ([`keygrip`]; when several
//! keys could sign, `KEYINFO --list` says which the agent holds), and have the agent
//! sign the digest (`SIGKEY`, `SETHASH`, `PKSIGN`, sent at once with the connection:
//! one round trip for the usual one-key case, each wake-up of the agent costing much
//! more than its work on a busy machine). The message around the signature is written
//! by [`crate::openpgp::signed_message`], the same function the key-file signer uses.
//!
//! This path is only an optimization: whenever it cannot do exactly what gpg would (no
//! agent socket, the key not in the keyring or not held by the agent, a user ID instead
//! of a fingerprint, a subkey or an algorithm it does not handle, a passphrase that
//! would need a pinentry, any surprise from the agent), it returns an error and
//! [`crate::gpg::sign_with_gpg`] spawns gpg, which decides and reports as before.

mod assuan;
mod keybox;
mod keygrip;
mod sexp;

use std::cell::RefCell;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use pgp::composed::SignedPublicKey;
use pgp::crypto::hash::HashAlgorithm;
use pgp::crypto::public_key::PublicKeyAlgorithm;
use pgp::types::{
    Fingerprint, KeyDetails, KeyId, KeyVersion, Mpi, Password, PublicParams, SignatureBytes,
    SigningKey, Timestamp,
};

pub use assuan::AssuanError;
use assuan::Connection;
pub use keybox::KeyboxError;
use sexp::Sexp;

use crate::openpgp::{self, KeyError, Keyring, Signer};

/// libgpg-error's code for an operation the user (here: pinentry-mode) canceled.
const GPG_ERR_CANCELED: u32 = 99;

/// Passphrase files hold one line; this bounds the read.
const MAX_PASSPHRASE_FILE: u64 = 64 << 10;

/// Why the direct path did not sign; [`crate::gpg::sign_with_gpg`] then runs gpg.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0:?} is not a fingerprint or long key ID (gpg resolves it)")]
    Spec(String),
    #[error("no GnuPG home directory (neither given nor $GNUPGHOME nor $HOME)")]
    NoHome,
    #[error("no gpg-agent socket at {0}")]
    NoSocket(String),
    #[error("the gpg-agent socket for {0} is not in the home directory (gpg finds it)")]
    SocketElsewhere(String),
    #[error(transparent)]
    Keybox(#[from] KeyboxError),
    #[error("key {0}: not found in the public keyring")]
    NotFound(String),
    #[error("key {key}: {why} (gpg decides)")]
    Unsure { key: String, why: String },
    #[error("key {0}: gpg-agent holds no usable secret key for it")]
    NoSecret(String),
    #[error("key {0}: protected by a passphrase not cached in gpg-agent, and no passphrase file")]
    NeedsPinentry(String),
    #[error("reading the passphrase file {path}: {source}")]
    PassphraseFile {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Assuan(#[from] AssuanError),
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// What `--sign-by` names, as gpg reads a key specification: a fingerprint (40 hex
/// digits) or a long key ID (16), optionally `0x`-prefixed, and `!` at the end for
/// "exactly this key, not the best subkey of its certificate".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpec {
    id: Vec<u8>,
    exact: bool,
}

impl KeySpec {
    pub fn parse(spec: &str) -> Option<KeySpec> {
        let s = spec.trim();
        let (s, exact) = match s.strip_suffix('!') {
            Some(s) => (s, true),
            None => (s, false),
        };
        let s = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .unwrap_or(s);
        if (s.len() != 40 && s.len() != 16) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let id = (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        Some(KeySpec { id, exact })
    }

    /// Whether a key with this (v4, 20-byte) fingerprint is the one named.
    pub fn matches(&self, fingerprint: &[u8]) -> bool {
        fingerprint.len() == 20 && fingerprint.ends_with(&self.id)
    }
}

/// Signs `payload` through gpg-agent only, never spawning gpg: the arguments are
/// [`crate::gpg::sign_with_gpg`]'s. Returns the signed message `gpg --sign` would
/// write, or why this path cannot make it.
pub fn sign_with_agent(
    fingerprint: &str,
    passphrase_file: Option<&Path>,
    payload: &[u8],
    gnupg_home: Option<&Path>,
) -> Result<Vec<u8>, AgentError> {
    let spec = KeySpec::parse(fingerprint).ok_or_else(|| AgentError::Spec(fingerprint.into()))?;
    let home = home_dir(gnupg_home)?;
    let socket = agent_socket(&home)?;
    let unsure = |why: &str| AgentError::Unsure {
        key: fingerprint.to_string(),
        why: why.to_string(),
    };

    if let Some(option) = shaping_option(&home) {
        return Err(unsure(&format!("gpg.conf sets {option}")));
    }
    let mut blocks = keybox::find(&home, &spec)?;
    let block = match blocks.len() {
        0 => return Err(AgentError::NotFound(fingerprint.into())),
        1 => blocks.remove(0),
        _ => return Err(unsure("several certificates hold this key")),
    };
    let ring = Keyring::from_bytes(&block)?;
    let [cert] = ring.certs() else {
        return Err(unsure("the keyblock holds several certificates"));
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let candidates = candidates(&ring, cert, &spec, now).map_err(unsure)?;

    let grips = candidates
        .iter()
        .map(|s| {
            let key = key_of(cert, s);
            keygrip::keygrip(key.public_params()).ok_or_else(|| AgentError::Unsure {
                key: s.fingerprint.clone(),
                why: format!(
                    "{:?} keys are not signed through the agent",
                    key.algorithm()
                ),
            })
        })
        .collect::<Result<Vec<String>, AgentError>>()?;
    let passphrase = passphrase_file.map(read_passphrase).transpose()?;
    let mut conn = Connection::connect(&socket)?;
    // One candidate (the usual key: one that signs): no question before signing; a
    // missing secret makes SIGKEY fail, and gpg says why.
    let chosen = if candidates.len() == 1 {
        0
    } else {
        held_first(&mut conn, &grips)?.ok_or_else(|| AgentError::NoSecret(fingerprint.into()))?
    };
    let (key, grip) = (key_of(cert, candidates[chosen]), grips[chosen].clone());
    let signer = AgentKey {
        key,
        grip,
        passphrase,
        conn: RefCell::new(conn),
        failure: RefCell::new(None),
    };
    let signed = openpgp::signed_message(&signer, Password::empty(), payload);
    match (signed, signer.failure.into_inner()) {
        (Ok(message), None) => Ok(message),
        (_, Some(failure)) => Err(failure),
        (Err(e), None) => Err(e.into()),
    }
}

/// The GnuPG home: the one given, else `$GNUPGHOME`, else `~/.gnupg`, as gpg picks it.
fn home_dir(given: Option<&Path>) -> Result<PathBuf, AgentError> {
    if let Some(home) = given {
        return Ok(home.to_path_buf());
    }
    if let Some(home) = std::env::var_os("GNUPGHOME").filter(|h| !h.is_empty()) {
        return Ok(home.into());
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| Path::new(&h).join(".gnupg"))
        .ok_or(AgentError::NoHome)
}

/// The agent's socket. gpg puts it in `/run/user/<uid>/gnupg` (under a hashed
/// sub-directory for a non-default home) when that directory exists, else in the home;
/// only the home is looked at here, and a `/run/user` setup is left to gpg.
fn agent_socket(home: &Path) -> Result<PathBuf, AgentError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let socket = home.join("S.gpg-agent");
    if let Ok(meta) = std::fs::metadata(&socket) {
        if meta.file_type().is_socket() {
            return Ok(socket);
        }
        // A redirection file (`%Assuan%` and `socket=`); gpg follows it.
        return Err(AgentError::SocketElsewhere(home.display().to_string()));
    }
    if let Ok(me) = std::fs::metadata("/proc/self") {
        if Path::new(&format!("/run/user/{}", me.uid())).is_dir() {
            return Err(AgentError::SocketElsewhere(home.display().to_string()));
        }
    }
    Err(AgentError::NoSocket(socket.display().to_string()))
}

/// The keys gpg would sign with, best first: with `!`, the named key alone; else, for
/// a certificate named by its primary key, its valid signing subkeys, newest first,
/// then the primary when it may sign. gpg signs with the first whose secret it has.
fn candidates<'a>(
    ring: &'a Keyring,
    cert: &SignedPublicKey,
    spec: &KeySpec,
    now: u64,
) -> Result<Vec<&'a Signer>, &'static str> {
    let valid = |s: &Signer| !s.revoked && s.self_signed && s.expires.is_none_or(|t| t > now);
    let fpr_bytes = |s: &Signer| -> Vec<u8> {
        (0..s.fingerprint.len())
            .step_by(2)
            .filter_map(|i| u8::from_str_radix(&s.fingerprint[i..i + 2], 16).ok())
            .collect()
    };
    let primary = ring
        .signers()
        .iter()
        .find(|s| s.subkey.is_none())
        .ok_or("no primary key")?;
    if !valid(primary) {
        return Err("the certificate is revoked, expired or not self-signed");
    }
    let primary_signs = primary.may_sign;
    if spec.exact {
        let named = ring
            .signers()
            .iter()
            .find(|s| spec.matches(&fpr_bytes(s)))
            .ok_or("the named key is not a signing key")?;
        if !valid(named) || (named.subkey.is_none() && !primary_signs) {
            return Err("the named key may not sign");
        }
        return Ok(vec![named]);
    }
    if !spec.matches(&fpr_bytes(primary)) {
        return Err("a subkey is named without '!'");
    }
    let mut subkeys: Vec<&Signer> = ring
        .signers()
        .iter()
        .filter(|s| s.subkey.is_some() && valid(s))
        .collect();
    let created = |s: &Signer| {
        s.subkey
            .map(|i| cert.public_subkeys[i].key.created_at().as_secs())
            .unwrap_or(0)
    };
    // Stable: among subkeys made in the same second, gpg keeps the first.
    subkeys.sort_by_key(|s| std::cmp::Reverse(created(s)));
    if primary_signs {
        subkeys.push(primary);
    }
    if subkeys.is_empty() {
        return Err("no key of the certificate may sign");
    }
    Ok(subkeys)
}

/// The public key packet of a candidate.
fn key_of<'c>(cert: &'c SignedPublicKey, s: &Signer) -> &'c dyn KeyDetails {
    match s.subkey {
        None => &cert.primary_key,
        Some(i) => &cert.public_subkeys[i].key,
    }
}

/// The first of `grips` (best first) whose secret gpg-agent holds on disk (smartcard
/// keys are left to gpg).
fn held_first(conn: &mut Connection, grips: &[String]) -> Result<Option<usize>, AgentError> {
    let listing = conn.transact("KEYINFO --list", &mut |_| None)?;
    let held: Vec<&str> = listing
        .status
        .iter()
        .filter_map(|line| {
            // KEYINFO <grip> <type> ...; type D: a key file.
            let mut f = line.split(' ');
            match (f.next(), f.next(), f.next()) {
                (Some("KEYINFO"), Some(grip), Some("D")) => Some(grip),
                _ => None,
            }
        })
        .collect();
    Ok(grips.iter().position(|g| held.contains(&g.as_str())))
}

/// `gpg.conf` options that change what gpg signs with or writes (hash, compression,
/// notations, expiry, keyrings, the agent): with any of them gpg's output is gpg's to
/// make.
const SHAPING_OPTIONS: &[&str] = &[
    "digest-algo",
    "personal-digest-preferences",
    "compress-algo",
    "personal-compress-preferences",
    "sig-notation",
    "set-notation",
    "sig-policy-url",
    "set-policy-url",
    "sig-keyserver-url",
    "default-sig-expire",
    "ask-sig-expire",
    "throw-keyids",
    "textmode",
    "rfc2440",
    "rfc4880",
    "rfc4880bis",
    "openpgp",
    "pgp6",
    "pgp7",
    "pgp8",
    "keyring",
    "primary-keyring",
    "no-default-keyring",
    "agent-program",
    "trust-model",
];

/// The first option in the home's `gpg.conf` that [`SHAPING_OPTIONS`] lists; an
/// unreadable file counts as one (gpg will say what is wrong with it).
fn shaping_option(home: &Path) -> Option<String> {
    let mut text = Vec::new();
    match std::fs::File::open(home.join("gpg.conf")) {
        Ok(f) => {
            if f.take(1 << 20).read_to_end(&mut text).is_err() {
                return Some("(unreadable gpg.conf)".into());
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(_) => return Some("(unreadable gpg.conf)".into()),
    }
    String::from_utf8_lossy(&text).lines().find_map(|line| {
        let option = line.split_whitespace().next()?.trim_start_matches("--");
        SHAPING_OPTIONS
            .contains(&option)
            .then(|| option.to_string())
    })
}

/// gpg's `--passphrase-file`: the file's first line.
fn read_passphrase(path: &Path) -> Result<Vec<u8>, AgentError> {
    let err = |source| AgentError::PassphraseFile {
        path: path.display().to_string(),
        source,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(err)?
        .take(MAX_PASSPHRASE_FILE)
        .read_to_end(&mut bytes)
        .map_err(err)?;
    if let Some(nl) = bytes.iter().position(|&b| b == b'\n') {
        bytes.truncate(nl);
    }
    Ok(bytes)
}

/// A key whose secret half is in gpg-agent: rpgp hands it the digest to sign.
struct AgentKey<'c> {
    key: &'c dyn KeyDetails,
    grip: String,
    passphrase: Option<Vec<u8>>,
    conn: RefCell<Connection>,
    /// Why signing failed, in detail (rpgp's error type carries only a message).
    failure: RefCell<Option<AgentError>>,
}

impl std::fmt::Debug for AgentKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentKey")
            .field("grip", &self.grip)
            .finish()
    }
}

impl AgentKey<'_> {
    fn pksign(&self, hash: HashAlgorithm, digest: &[u8]) -> Result<SignatureBytes, AgentError> {
        // libgcrypt's algorithm numbers, which SETHASH takes.
        let algo = match hash {
            HashAlgorithm::Sha256 => 8,
            HashAlgorithm::Sha384 => 9,
            HashAlgorithm::Sha512 => 10,
            HashAlgorithm::Sha224 => 11,
            other => {
                return Err(AgentError::Unsure {
                    key: self.grip.clone(),
                    why: format!("hash {other:?}"),
                })
            }
        };
        let hex: String = digest.iter().map(|b| format!("{b:02X}")).collect();
        let mode = if self.passphrase.is_some() {
            "loopback"
        } else {
            // Should a cached passphrase expire meanwhile, the agent fails instead of
            // opening a pinentry; gpg then does what it does.
            "cancel"
        };
        let mut asked = 0;
        let commands = [
            &format!("OPTION pinentry-mode={mode}"),
            &format!("SIGKEY {}", self.grip),
            &format!("SETHASH {algo} {hex}"),
            "PKSIGN",
        ];
        let reply = self
            .conn
            .borrow_mut()
            .pipeline(&commands, &mut |what| {
                // Asked again after a wrong passphrase: give up, gpg reports it.
                asked += 1;
                let keyword = what.split(' ').next().unwrap_or("");
                (keyword == "PASSPHRASE" && asked == 1)
                    .then(|| self.passphrase.clone())
                    .flatten()
            })
            .map_err(|e| match e.code() {
                // Canceled: the key needs a passphrase the agent has not cached, and
                // pinentry-mode=cancel kept it from asking.
                Some(GPG_ERR_CANCELED) if self.passphrase.is_none() => {
                    AgentError::NeedsPinentry(openpgp::hex_upper(self.key.fingerprint().as_bytes()))
                }
                _ => e.into(),
            })?;
        let sig = Sexp::parse(&reply.data)
            .map_err(|e| AssuanError::Protocol(format!("PKSIGN result: {e}")))?;
        let unexpected = || AssuanError::Protocol("PKSIGN result is not a sig-val".into());
        let [alg] = sig.rest() else {
            return Err(unexpected().into());
        };
        let mpis = match (self.key.algorithm(), alg.name()) {
            (PublicKeyAlgorithm::RSA | PublicKeyAlgorithm::RSASign, Some(b"rsa")) => {
                vec![alg.value(b"s").ok_or_else(unexpected)?]
            }
            (PublicKeyAlgorithm::EdDSALegacy, Some(b"eddsa"))
            | (PublicKeyAlgorithm::ECDSA, Some(b"ecdsa")) => vec![
                alg.value(b"r").ok_or_else(unexpected)?,
                alg.value(b"s").ok_or_else(unexpected)?,
            ],
            _ => return Err(unexpected().into()),
        };
        if sig.name() != Some(b"sig-val") {
            return Err(unexpected().into());
        }
        Ok(SignatureBytes::Mpis(
            mpis.into_iter().map(Mpi::from_slice).collect(),
        ))
    }
}

impl KeyDetails for AgentKey<'_> {
    fn version(&self) -> KeyVersion {
        self.key.version()
    }
    fn legacy_key_id(&self) -> KeyId {
        self.key.legacy_key_id()
    }
    fn fingerprint(&self) -> Fingerprint {
        self.key.fingerprint()
    }
    fn algorithm(&self) -> PublicKeyAlgorithm {
        self.key.algorithm()
    }
    fn created_at(&self) -> Timestamp {
        self.key.created_at()
    }
    fn legacy_v3_expiration_days(&self) -> Option<u16> {
        self.key.legacy_v3_expiration_days()
    }
    fn public_params(&self) -> &PublicParams {
        self.key.public_params()
    }
}

impl SigningKey for AgentKey<'_> {
    fn sign(
        &self,
        _key_pw: &Password,
        hash: HashAlgorithm,
        digest: &[u8],
    ) -> pgp::errors::Result<SignatureBytes> {
        self.pksign(hash, digest).map_err(|e| {
            let message = e.to_string();
            *self.failure.borrow_mut() = Some(e);
            pgp::errors::Error::from(message)
        })
    }

    fn hash_alg(&self) -> HashAlgorithm {
        HashAlgorithm::Sha256
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_specs_as_gpg_reads_them() {
        let fpr = "0123456789ABCDEF0123456789ABCDEF01234567";
        let full: Vec<u8> = (0..20)
            .map(|i| u8::from_str_radix(&fpr[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        for s in [
            fpr,
            &fpr.to_lowercase(),
            &format!("0x{fpr}"),
            "89ABCDEF01234567",
        ] {
            let spec = KeySpec::parse(s).unwrap();
            assert!(spec.matches(&full) && !spec.exact, "{s}");
        }
        assert!(KeySpec::parse(&format!("{fpr}!")).unwrap().exact);
        assert!(!KeySpec::parse("89ABCDEF01234566").unwrap().matches(&full));
        for bad in [
            "",
            "01234567",
            "Alice <a@example.com>",
            &fpr[1..],
            "G123456789ABCDEF",
        ] {
            assert_eq!(KeySpec::parse(bad), None, "{bad}");
        }
    }
}
