//! Simple signing end to end: a payload signed in an OpenPGP message, and its
//! verification with skopeo `standalone-verify`'s semantics (`signature/docker.go`):
//! the bytes authenticated by a trusted key, then the payload parsed strictly, then its
//! manifest digest and identity checked.

use berth_image::{Digest, ImageReference};

use crate::openpgp::{self, KeyError, Keyring, Verified, VerifyError};
pub use crate::payload::ManifestCheck;
use crate::payload::{Format, Mismatch, Payload, PayloadError};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SimpleError {
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error(transparent)]
    Payload(#[from] PayloadError),
    #[error("Signature for docker digest {0:?} does not match")]
    Digest(String),
    #[error("Signature for identity {0:?} is not accepted")]
    Identity(String),
    /// skopeo prints the two references unquoted.
    #[error("Docker reference {signed} does not match {expected}")]
    Reference { signed: String, expected: String },
    #[error("Signature by {signed_by} does not match expected fingerprint {expected}")]
    Fingerprint { signed_by: String, expected: String },
}

/// An authenticated, accepted simple signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimpleSignature {
    pub payload: Payload,
    pub signer: Verified,
}

/// Signs `digest` as `reference` with an OpenPGP secret key: the blob
/// `skopeo standalone-sign` writes, made without gpg. `creator` goes to
/// `optional.creator` (c/image writes `atomic <version>`).
pub fn sign(
    secret_key: &[u8],
    passphrase: &str,
    digest: &Digest,
    reference: &str,
    creator: &str,
) -> Result<Vec<u8>, SignError> {
    let payload = Payload::new(digest.clone(), reference, creator).to_json(Format::Simple)?;
    Ok(openpgp::sign_with_key(secret_key, passphrase, &payload)?)
}

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error(transparent)]
    Payload(#[from] PayloadError),
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Verifies a simple signature: authenticated by a key in `trusted`, a well-formed
/// payload, the manifest digest as `manifest` says, and an identity `identity_ok`
/// accepts (a policy's `signedIdentity`, or an exact reference).
pub fn verify_simple(
    trusted: &Keyring,
    signature: &[u8],
    manifest: ManifestCheck<'_>,
    identity_ok: impl Fn(&str) -> bool,
) -> Result<SimpleSignature, SimpleError> {
    check_simple(openpgp::verify(trusted, signature)?, manifest, identity_ok)
}

/// [`verify_simple`] with the payload bounded at `max_payload` bytes
/// ([`openpgp::verify_bounded`]).
pub fn verify_simple_bounded(
    trusted: &Keyring,
    signature: &[u8],
    max_payload: u64,
    manifest: ManifestCheck<'_>,
    identity_ok: impl Fn(&str) -> bool,
) -> Result<SimpleSignature, SimpleError> {
    let signer = openpgp::verify_bounded(trusted, signature, max_payload)?;
    check_simple(signer, manifest, identity_ok)
}

/// The payload a verified signature carries, checked against the manifest and the
/// identity.
fn check_simple(
    signer: Verified,
    manifest: ManifestCheck<'_>,
    identity_ok: impl Fn(&str) -> bool,
) -> Result<SimpleSignature, SimpleError> {
    let payload = Payload::parse(&signer.payload, Format::Simple)?;
    match payload.check(manifest, identity_ok) {
        Ok(()) => {}
        Err(Mismatch::Digest) => {
            return Err(SimpleError::Digest(
                payload.docker_manifest_digest.to_string(),
            ))
        }
        Err(Mismatch::Identity) => return Err(SimpleError::Identity(payload.docker_reference)),
    }
    Ok(SimpleSignature { payload, signer })
}

/// `skopeo standalone-verify MANIFEST REFERENCE FINGERPRINT SIGNATURE`: the signature
/// must be by the key `fingerprint` (compared without regard to case), for exactly
/// `reference` (both normalized as docker references), over `manifest`.
/// Returns the signed manifest digest.
pub fn standalone_verify(
    trusted: &Keyring,
    signature: &[u8],
    manifest: &[u8],
    reference: &str,
    fingerprint: &str,
) -> Result<Digest, SimpleError> {
    let expected: ImageReference = reference.parse().map_err(|_| SimpleError::Reference {
        signed: String::new(),
        expected: reference.to_string(),
    })?;
    let signer = openpgp::verify(trusted, signature)?;
    if !signer.fingerprint.eq_ignore_ascii_case(fingerprint)
        && !signer.signing_fingerprint.eq_ignore_ascii_case(fingerprint)
    {
        return Err(SimpleError::Fingerprint {
            signed_by: signer.fingerprint,
            expected: fingerprint.to_string(),
        });
    }
    let payload = Payload::parse(&signer.payload, Format::Simple)?;
    let same = |signed: &str| {
        signed
            .parse::<ImageReference>()
            .is_ok_and(|signed| signed.to_string() == expected.to_string())
    };
    match payload.check(ManifestCheck::Manifest(manifest), same) {
        Ok(()) => {}
        Err(Mismatch::Digest) => {
            return Err(SimpleError::Digest(
                payload.docker_manifest_digest.to_string(),
            ))
        }
        Err(Mismatch::Identity) => {
            return Err(SimpleError::Reference {
                signed: payload.docker_reference,
                expected: expected.to_string(),
            })
        }
    }
    Ok(payload.docker_manifest_digest)
}
