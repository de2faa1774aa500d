//! `policy.json` evaluation with signatures: the part of containers/image's
//! `PolicyContext.IsRunningImageAllowed` that `berth_containers_config::policy` leaves
//! open ([`Decision::NeedsSignature`]). Parsing and scope lookup stay there; this module
//! decides `signedBy` and `sigstoreSigned` requirements from the signatures the caller
//! found (lookaside, registry extension, sigstore attachments), reading key files only.
//!
//! Every requirement must accept. A signature requirement accepts when at least one
//! signature of its kind verifies with its keys, is for this manifest, and claims an
//! identity its `signedIdentity` accepts. Reasons use c/image's phrases
//! ("A signature was required, but no signature exists", "Signature for identity … is
//! not accepted", "None of the signatures were accepted, reasons: …").

use berth_containers_config::policy::{
    Decision, KeyType, Keys, Policy, Requirement, SignedBy, SignedIdentity, SigstoreKeys,
    SigstoreSigned,
};
use berth_image::ImageReference;

use crate::identity;
use crate::openpgp::{self, Keyring};
use crate::payload::{Format, ManifestCheck, Mismatch, Payload};
pub use crate::signature::ImageSignature;
use crate::sigstore::{self, PublicKey, PAYLOAD_MEDIA_TYPE, SIGNATURE_ANNOTATION};

/// The image being decided on, as the policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct Image<'a> {
    /// `docker`, `dir`, `oci`, … (the policy's transport names).
    pub transport: &'a str,
    /// The scope identity within the transport (see
    /// `berth_containers_config::policy::docker_identity`, or an absolute path).
    pub policy_identity: &'a str,
    /// The image's docker reference (with its tag or digest), which `signedIdentity`
    /// compares signatures with; `None` for transports that have none.
    pub docker_reference: Option<&'a ImageReference>,
    /// The manifest as fetched: signatures must be for its digest.
    pub manifest: &'a [u8],
    pub signatures: &'a [ImageSignature],
}

/// Decides whether `image` may be used: [`Decision::Accept`] or
/// [`Decision::Reject`] with the first failing requirement's reason.
pub fn evaluate(policy: &Policy, image: &Image<'_>) -> Decision {
    match policy.evaluate(image.transport, image.policy_identity) {
        Decision::NeedsSignature => {}
        decided => return decided,
    }
    for req in policy.requirements_for(image.transport, image.policy_identity) {
        if let Err(reason) = check_requirement(req, image) {
            return Decision::Reject(reason);
        }
    }
    Decision::Accept
}

/// One requirement: `Ok` when it accepts the image, else the reason. (`reject` never
/// gets here: [`Policy::evaluate`] decided it, with its message, before signatures.)
fn check_requirement(req: &Requirement, image: &Image<'_>) -> Result<(), String> {
    match req {
        Requirement::InsecureAcceptAnything => Ok(()),
        Requirement::Reject => Err(format!(
            "Running image {} is rejected by policy.",
            image.policy_identity
        )),
        Requirement::SignedBy(rule) => signed_by(rule, image),
        Requirement::SigstoreSigned(rule) => sigstore_signed(rule, image),
    }
}

/// c/image's summary of per-signature rejections.
fn summarize(rejections: Vec<String>, none: String) -> Result<(), String> {
    match rejections.len() {
        0 => Err(none),
        1 => Err(rejections.into_iter().next().unwrap_or_default()),
        _ => Err(format!(
            "None of the signatures were accepted, reasons: {}",
            rejections.join("; ")
        )),
    }
}

const NO_SIGNATURE: &str = "A signature was required, but no signature exists";

fn key_sources(keys: &Keys) -> Result<Vec<Vec<u8>>, String> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| format!("reading key file {}: {e}", p.display()))
    };
    match keys {
        Keys::Path(p) => Ok(vec![read(p)?]),
        Keys::Paths(ps) => ps.iter().map(|p| read(p)).collect(),
        Keys::Data(d) => Ok(vec![d.clone()]),
        Keys::Datas(ds) => Ok(ds.clone()),
    }
}

/// Checks a verified payload against the image, with c/image's policy phrases.
fn accept_payload(
    payload: &Payload,
    image: &Image<'_>,
    rule: &SignedIdentity,
) -> Result<(), String> {
    let identity_ok = |signed: &str| identity::matches(rule, image.docker_reference, signed);
    match payload.check(ManifestCheck::Manifest(image.manifest), identity_ok) {
        Ok(()) => Ok(()),
        Err(Mismatch::Digest) => Err(format!(
            "Signature for digest {} does not match",
            payload.docker_manifest_digest
        )),
        Err(Mismatch::Identity) => Err(format!(
            "Signature for identity {:?} is not accepted",
            payload.docker_reference
        )),
    }
}

fn signed_by(rule: &SignedBy, image: &Image<'_>) -> Result<(), String> {
    let simple: Vec<&[u8]> = image
        .signatures
        .iter()
        .filter_map(|s| match s {
            ImageSignature::Simple(b) => Some(b.as_slice()),
            ImageSignature::Sigstore { .. } => None,
        })
        .collect();
    // Keys are read once; a failure to read them rejects every signature, as in c/image.
    let keyring = match rule.key_type {
        KeyType::GpgKeys => key_sources(&rule.keys).and_then(|sources| {
            let mut ring = Keyring::default();
            for s in sources {
                ring.add_bytes(&s).map_err(|e| e.to_string())?;
            }
            if ring.is_empty() {
                return Err("No public keys imported".to_string());
            }
            Ok(ring)
        }),
        other => Err(format!("Unimplemented \"keyType\" value {other:?}")),
    };
    let mut rejections = Vec::new();
    for sig in simple {
        let outcome = keyring.as_ref().map_err(Clone::clone).and_then(|ring| {
            let verified = openpgp::verify(ring, sig).map_err(|e| e.to_string())?;
            let payload =
                Payload::parse(&verified.payload, Format::Simple).map_err(|e| e.to_string())?;
            accept_payload(&payload, image, &rule.signed_identity)
        });
        match outcome {
            Ok(()) => return Ok(()),
            Err(reason) => rejections.push(reason),
        }
    }
    summarize(rejections, NO_SIGNATURE.to_string())
}

fn sigstore_signed(rule: &SigstoreSigned, image: &Image<'_>) -> Result<(), String> {
    let keys: Result<Vec<PublicKey>, String> = match &rule.keys {
        SigstoreKeys::Keys(_) if rule.rekor_public_keys.is_some() => {
            Err("berth does not verify Rekor inclusion (rekorPublicKey*)".to_string())
        }
        SigstoreKeys::Keys(k) => key_sources(k).and_then(|sources| {
            sources
                .iter()
                .map(|pem| PublicKey::from_pem(pem).map_err(|e| e.to_string()))
                .collect()
        }),
        SigstoreKeys::Fulcio(_) => Err("berth does not verify Fulcio certificates".to_string()),
        SigstoreKeys::Pki(_) => Err("berth does not verify PKI certificates".to_string()),
    };
    let (mut other_kind, mut non_attachments) = (0, 0);
    let mut rejections = Vec::new();
    for sig in image.signatures {
        let ImageSignature::Sigstore {
            media_type,
            payload,
            ..
        } = sig
        else {
            other_kind += 1;
            continue;
        };
        if media_type != PAYLOAD_MEDIA_TYPE {
            non_attachments += 1;
            continue;
        }
        let Some(signature) = sig.sigstore_signature() else {
            rejections.push(format!("missing {SIGNATURE_ANNOTATION} annotation"));
            continue;
        };
        let outcome = keys.as_ref().map_err(Clone::clone).and_then(|keys| {
            let p = sigstore::verify(keys, payload, signature).map_err(|e| e.to_string())?;
            accept_payload(&p, image, &rule.signed_identity)
        });
        match outcome {
            Ok(()) => return Ok(()),
            Err(reason) => rejections.push(reason),
        }
    }
    let none = if other_kind == 0 && non_attachments == 0 {
        NO_SIGNATURE.to_string()
    } else {
        format!(
            "{NO_SIGNATURE} ({other_kind} non-sigstore signatures, {non_attachments} sigstore non-signature attachments)"
        )
    };
    summarize(rejections, none)
}

#[cfg(test)]
mod tests;
