//! What the signatures of one image say, for `GET /api/v1/repositories/NAME/manifests/
//! DIGEST/signatures` and the web pages: each simple signature the signature extension
//! keeps for it and each sigstore signature of its attachment (`sha256-<hex>.sig` in the
//! same repository), with the key that made it and whether it verifies.
//!
//! "Verified" means what content trust ([`crate::trust`]) would accept: a key of the
//! trust setting in force for the repository (`berth registry trust`) authenticates
//! the signature, its payload names this manifest's digest, and its `docker-reference`
//! names this repository (on whatever host). Without a setting nothing verifies, and
//! the reason says so. Nothing of an unauthenticated payload is shown: the identity is
//! given only once a trusted key has authenticated the bytes; what an untrusted
//! simple signature does show is its OpenPGP issuer (the key ID it names), read from
//! the signature packet, which is all anyone may learn without the key.
//!
//! The caller checks access (pull on the repository) before asking. Work is bounded:
//! at most [`MAX_SIGNATURES`] rows, sigstore payloads of at most 64 KiB, each read
//! only when the repository links the blob and its digest matches.

use std::sync::Arc;

use base64::Engine;
use berth_auth::Trust;
use berth_image::{Digest, ImageReference, Manifest};
use berth_signature::openpgp::{self, Keyring, VerifyError};
use berth_signature::payload::{Format, ManifestCheck, Mismatch, Payload};
use berth_signature::sigstore::{self, PublicKey};
use serde::Serialize;

use crate::error::{ApiError, ApiResult};
use crate::trust::{read_payload, MAX_PAYLOAD_BYTES};
use crate::Registry;

/// Rows listed for one image at most (simple signatures first: the extension keeps
/// at most 32 per manifest).
pub(crate) const MAX_SIGNATURES: usize = 64;

/// The reason an image's signatures do not verify when its repository has no trust
/// setting.
pub(crate) const NO_TRUSTED_KEYS: &str = "no trusted keys are set for this repository";

/// One signature of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct SignatureInfo {
    /// `simple` (OpenPGP, the signature extension) or `sigstore` (the `.sig` attachment).
    pub(crate) kind: String,
    /// Simple: the signer's certificate fingerprint when a trusted key verified it,
    /// else the key ID the signature names (upper-case hex). Sigstore: `sha256:` of the
    /// trusted public key (its DER) that verified it, else none (a sigstore signature
    /// names no key).
    pub(crate) key: Option<String>,
    /// The user ID of the trusted key that verified it.
    pub(crate) signer: Option<String>,
    /// The signed `critical.identity.docker-reference`, once a trusted key has
    /// authenticated the payload.
    pub(crate) identity: Option<String>,
    pub(crate) verified: bool,
    /// Why it does not verify.
    pub(crate) reason: Option<String>,
}

impl SignatureInfo {
    fn unverified(kind: &str, key: Option<String>, reason: impl Into<String>) -> SignatureInfo {
        SignatureInfo {
            kind: kind.into(),
            key,
            signer: None,
            identity: None,
            verified: false,
            reason: Some(reason.into()),
        }
    }
}

/// The signatures of `repo`'s manifest `digest`, each verified against the keys of the
/// trust setting in force for `repo` (off the async threads). The caller has checked
/// that it may read `repo` (and, if it cares, that the manifest is there: an unknown
/// digest simply has no signatures).
pub(crate) async fn signature_rows(
    reg: &Arc<Registry>,
    repo: &str,
    digest: &Digest,
) -> ApiResult<Vec<SignatureInfo>> {
    let (repo, digest) = (repo.to_string(), digest.clone());
    reg.blocking(move |reg| rows(reg, &repo, &digest)).await
}

/// [`signature_rows`] on the calling (blocking) thread.
fn rows(reg: &Registry, repo: &str, digest: &Digest) -> ApiResult<Vec<SignatureInfo>> {
    let (dir, _) = reg.auth.directory().map_err(ApiError::from)?;
    let trust = dir.trust_for(repo).cloned();
    let mut out = Vec::new();
    for s in reg
        .meta
        .signatures(repo, digest)?
        .into_iter()
        .take(MAX_SIGNATURES)
    {
        out.push(simple(trust.as_deref(), repo, digest, &s.content));
    }
    let room = MAX_SIGNATURES - out.len();
    if room > 0 {
        out.extend(sigstore_rows(reg, trust.as_deref(), repo, digest, room)?);
    }
    Ok(out)
}

/// Whether `signed_reference` names repository `repo` (on whatever host): content
/// trust's identity rule.
fn names_repository(signed_reference: &str, repo: &str) -> bool {
    signed_reference
        .parse::<ImageReference>()
        .is_ok_and(|r| r.path().as_str() == repo)
}

/// The reason a payload authenticated by a trusted key still does not count.
fn mismatch(m: Mismatch, payload: &Payload, repo: &str) -> String {
    match m {
        Mismatch::Digest => format!(
            "it signs another manifest ({})",
            payload.docker_manifest_digest
        ),
        Mismatch::Identity => format!(
            "it names {}, not this repository ({repo})",
            payload.docker_reference
        ),
    }
}

/// One simple signature (an OpenPGP signed message).
fn simple(trust: Option<&Trust>, repo: &str, digest: &Digest, content: &[u8]) -> SignatureInfo {
    const KIND: &str = "simple";
    let keyring = trust.map(|t| &t.keyring).filter(|k| !k.is_empty());
    let Some(keyring) = keyring else {
        // With no key to trust, the message is still read for the key it names: the
        // refusal of an empty keyring carries the issuer from the signature packet.
        let key = issuer(&Keyring::default(), content);
        let reason = match trust {
            None => NO_TRUSTED_KEYS,
            Some(_) => "no trusted GPG keys are set for this repository",
        };
        return SignatureInfo::unverified(KIND, key, reason);
    };
    let verified = match openpgp::verify_bounded(keyring, content, MAX_PAYLOAD_BYTES) {
        Ok(v) => v,
        Err(e) => return SignatureInfo::unverified(KIND, key_of(&e), e.to_string()),
    };
    let signer = keyring
        .user_ids_of(&verified.fingerprint)
        .into_iter()
        .next();
    let key = Some(verified.fingerprint.clone());
    let payload = match Payload::parse(&verified.payload, Format::Simple) {
        Ok(p) => p,
        Err(e) => {
            return SignatureInfo {
                signer,
                ..SignatureInfo::unverified(KIND, key, e.to_string())
            }
        }
    };
    let check = payload.check(ManifestCheck::Digest(digest), |r| names_repository(r, repo));
    SignatureInfo {
        kind: KIND.into(),
        key,
        signer,
        identity: Some(payload.docker_reference.clone()),
        verified: check.is_ok(),
        reason: check.err().map(|m| mismatch(m, &payload, repo)),
    }
}

/// The key a refused OpenPGP signature names, if it got that far.
fn key_of(e: &VerifyError) -> Option<String> {
    match e {
        VerifyError::UnknownSigner { key_id }
        | VerifyError::BadSignature { key_id }
        | VerifyError::SignatureExpired { key_id, .. } => {
            Some(key_id.clone()).filter(|k| k != "(none)")
        }
        VerifyError::KeyRevoked { fingerprint }
        | VerifyError::KeyExpired { fingerprint, .. }
        | VerifyError::KeyUnusable { fingerprint, .. } => Some(fingerprint.clone()),
        _ => None,
    }
}

/// The key ID `content` names as its issuer, read without trusting anything in it.
fn issuer(empty: &Keyring, content: &[u8]) -> Option<String> {
    openpgp::verify_bounded(empty, content, MAX_PAYLOAD_BYTES)
        .err()
        .as_ref()
        .and_then(key_of)
}

/// The signatures of the sigstore attachment (`<algorithm>-<hex>.sig`), at most `room`.
fn sigstore_rows(
    reg: &Registry,
    trust: Option<&Trust>,
    repo: &str,
    digest: &Digest,
    room: usize,
) -> ApiResult<Vec<SignatureInfo>> {
    const KIND: &str = "sigstore";
    let tag = format!("{}-{}.sig", digest.algorithm().as_str(), digest.hex());
    let Some(stored) = reg.meta.manifest_by_tag(repo, &tag)? else {
        return Ok(Vec::new());
    };
    let Ok(attachment) = Manifest::parse(Some(&stored.media_type), &stored.content) else {
        return Ok(vec![SignatureInfo::unverified(
            KIND,
            None,
            format!("the attachment {tag} is not a manifest"),
        )]);
    };
    let keys: Option<&[PublicKey]> = trust.map(|t| t.sigstore.as_slice());
    let mut out = Vec::new();
    for layer in attachment
        .layers
        .iter()
        .filter(|l| l.media_type == sigstore::PAYLOAD_MEDIA_TYPE)
        .take(room)
    {
        let Some(signature) = layer
            .annotations
            .as_ref()
            .and_then(|a| a.get(sigstore::SIGNATURE_ANNOTATION))
        else {
            out.push(SignatureInfo::unverified(
                KIND,
                None,
                "the payload layer carries no signature",
            ));
            continue;
        };
        let keys = match keys {
            None => {
                out.push(SignatureInfo::unverified(KIND, None, NO_TRUSTED_KEYS));
                continue;
            }
            Some([]) => {
                out.push(SignatureInfo::unverified(
                    KIND,
                    None,
                    "no trusted sigstore keys are set for this repository",
                ));
                continue;
            }
            Some(k) => k,
        };
        if layer.size > MAX_PAYLOAD_BYTES {
            out.push(SignatureInfo::unverified(
                KIND,
                None,
                format!("its payload is larger than {MAX_PAYLOAD_BYTES} bytes"),
            ));
            continue;
        }
        let Some(payload) = read_payload(reg, repo, &layer.digest)? else {
            out.push(SignatureInfo::unverified(
                KIND,
                None,
                "its payload is not stored in this repository",
            ));
            continue;
        };
        out.push(sigstore_row(keys, repo, digest, &payload, signature));
    }
    Ok(out)
}

/// One sigstore signature, tried with each trusted key (to say which one verified).
fn sigstore_row(
    keys: &[PublicKey],
    repo: &str,
    digest: &Digest,
    payload: &[u8],
    signature: &str,
) -> SignatureInfo {
    const KIND: &str = "sigstore";
    let mut last = None;
    for key in keys {
        match sigstore::verify(std::slice::from_ref(key), payload, signature) {
            Ok(p) => {
                let check = if ManifestCheck::Digest(digest).matches(&p.docker_manifest_digest) {
                    if names_repository(&p.docker_reference, repo) {
                        Ok(())
                    } else {
                        Err(Mismatch::Identity)
                    }
                } else {
                    Err(Mismatch::Digest)
                };
                return SignatureInfo {
                    kind: KIND.into(),
                    key: key_hint(key),
                    signer: None,
                    identity: Some(p.docker_reference.clone()),
                    verified: check.is_ok(),
                    reason: check.err().map(|m| mismatch(m, &p, repo)),
                };
            }
            Err(e) => last = Some(e.to_string()),
        }
    }
    SignatureInfo::unverified(
        KIND,
        None,
        last.unwrap_or_else(|| "no trusted sigstore key verifies it".into()),
    )
}

/// `sha256:<hex>` of a public key's DER (SubjectPublicKeyInfo): a stable name for a
/// sigstore key, which signatures do not carry.
fn key_hint(key: &PublicKey) -> Option<String> {
    let pem = key.to_pem().ok()?;
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .ok()?;
    Some(Digest::sha256_of(&der).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_that_does_not_parse_names_no_key() {
        let row = simple(None, "team/app", &Digest::sha256_of(b"m"), b"not OpenPGP");
        assert!(!row.verified);
        assert_eq!(row.key, None);
        assert_eq!(row.reason.as_deref(), Some(NO_TRUSTED_KEYS));
        assert_eq!(row.identity, None);
    }

    #[test]
    fn refusals_name_the_key_they_got_to() {
        let unknown = VerifyError::UnknownSigner {
            key_id: "0123456789ABCDEF".into(),
        };
        assert_eq!(key_of(&unknown).as_deref(), Some("0123456789ABCDEF"));
        let none = VerifyError::UnknownSigner {
            key_id: "(none)".into(),
        };
        assert_eq!(key_of(&none), None);
        assert_eq!(key_of(&VerifyError::NotSigned), None);
    }

    #[test]
    fn sigstore_keys_are_named_by_the_digest_of_their_der() {
        let pair = sigstore::generate_key_pair(b"pw").unwrap();
        let public = PublicKey::from_pem(pair.public_pem.as_bytes()).unwrap();
        let hint = key_hint(&public).unwrap();
        assert!(hint.starts_with("sha256:") && hint.len() == 71, "{hint}");
        assert_eq!(key_hint(&public), Some(hint));
        let private = sigstore::PrivateKey::from_pem(pair.private_pem.as_bytes(), b"pw").unwrap();
        let digest = Digest::sha256_of(b"manifest");
        let (payload, sig) =
            sigstore::sign_image(&private, &digest, "localhost:5000/team/app:v1", "test").unwrap();
        let row = sigstore_row(
            std::slice::from_ref(&public),
            "team/app",
            &digest,
            &payload,
            &sig,
        );
        assert!(row.verified, "{row:?}");
        assert_eq!(row.key, key_hint(&public));
        assert_eq!(row.identity.as_deref(), Some("localhost:5000/team/app:v1"));
        // Another repository's image, the same signature: authenticated, not counted.
        let row = sigstore_row(
            std::slice::from_ref(&public),
            "team/other",
            &digest,
            &payload,
            &sig,
        );
        assert!(!row.verified);
        assert!(row.reason.unwrap().contains("not this repository"));
        // Another key: not verified, no key named.
        let other = sigstore::generate_key_pair(b"pw").unwrap();
        let other = PublicKey::from_pem(other.public_pem.as_bytes()).unwrap();
        let row = sigstore_row(&[other], "team/app", &digest, &payload, &sig);
        assert!(!row.verified);
        assert_eq!(row.key, None);
        assert!(row.reason.unwrap().contains("verification failed"));
    }
}
