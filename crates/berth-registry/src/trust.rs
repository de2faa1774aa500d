//! Content trust on the read path: where a namespace or repository requires
//! signatures (`berth_auth::trust`), a manifest is served (`GET`/`HEAD`) only when a
//! trusted key signed it, as Harbor's content trust does. Pushes, tags lists, the
//! catalog, blobs and the signatures themselves are not held back, so a publisher can
//! push, then sign, and clients can read the signatures they need to decide.
//!
//! A signature counts when it verifies with one of the setting's keys, names this
//! manifest's digest, and its `docker-reference` names this repository: the
//! repository path after the registry host. The host itself is not compared: the
//! registry cannot know every name clients reach it by (`localhost:5000`, a DNS name,
//! a proxy). Signatures are read from the registry signature extension (simple
//! signing, OpenPGP) and from sigstore attachments in the same repository (the
//! `sha256-<hex>.sig` tag). A manifest that a signed index of the same repository names
//! is served too, or multi-platform pulls of a signed index would break.
//!
//! Results that allow a manifest are cached per (repository, digest, setting version)
//! for a minute, bounded; refusals are not cached, so a signature pushed after a
//! refused pull counts at once.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_auth::Trust;
use berth_image::{Digest, ImageReference, Manifest};
use berth_signature::sigstore;
use berth_signature::simple::{verify_simple_bounded, ManifestCheck};
use berth_signature::{Format, Payload};
use berth_store::StoredManifest;

use crate::error::{ApiError, ApiResult, Code};
use crate::Registry;

/// Verdicts remembered at most, and for how long.
const CACHE_CAPACITY: usize = 10_000;
const CACHE_TTL: Duration = Duration::from_secs(60);
/// Indexes looked at for one child manifest, those with signatures first. A pusher
/// can still push 16 signed-looking indexes naming it, but a client that read the
/// signed index first is served its children from the verdicts it left.
const MAX_PARENTS: usize = 16;
/// Children of a signed index whose verdicts are remembered with its own (platforms
/// and their attestations; more would flush the cache of 10,000 in a few reads).
const MAX_REMEMBERED_CHILDREN: usize = 64;
/// Sigstore signatures (layers) looked at on one attachment manifest, and the size
/// of a payload read, or inflated from a stored OpenPGP signature (payloads are a few
/// hundred bytes; each read of an unsigned manifest verifies up to 32 of them).
const MAX_SIGSTORE_LAYERS: usize = 32;
/// Layers an attachment manifest may have to be served as one (cosign adds a layer per
/// signature); each is read once a minute at most (verdicts are cached).
const MAX_ATTACHMENT_LAYERS: usize = 128;
pub(crate) const MAX_PAYLOAD_BYTES: u64 = 64 * 1024;

/// (repository, manifest digest, setting version) -> when the verdict "signed" expires.
#[derive(Default)]
pub(crate) struct Verdicts {
    allowed: Mutex<HashMap<(String, Digest, u64), Instant>>,
}

impl Verdicts {
    fn hit(&self, key: &(String, Digest, u64)) -> bool {
        self.allowed
            .lock()
            .is_ok_and(|m| m.get(key).is_some_and(|exp| *exp > Instant::now()))
    }

    fn remember(&self, key: (String, Digest, u64)) {
        let Ok(mut m) = self.allowed.lock() else {
            return;
        };
        let now = Instant::now();
        if m.len() >= CACHE_CAPACITY {
            m.retain(|_, exp| *exp > now);
            if m.len() >= CACHE_CAPACITY {
                m.clear();
            }
        }
        m.insert(key, now + CACHE_TTL);
    }
}

/// Whether manifest `m` of `repo` may be served; `403 DENIED` when the repository
/// requires signatures and no trusted key signed it.
pub(crate) async fn check(reg: &Arc<Registry>, repo: &str, m: &StoredManifest) -> ApiResult<()> {
    let (dir, _) = reg.auth.directory().map_err(ApiError::from)?;
    let Some(trust) = dir.trust_for(repo).filter(|t| t.required).cloned() else {
        return Ok(());
    };
    let key = (repo.to_string(), m.digest.clone(), trust.version);
    if reg.verdicts.hit(&key) {
        return Ok(());
    }
    let m = m.clone();
    let t = trust.clone();
    let allowed = reg
        .blocking(move |reg| allowed(reg, &key.0, &m, &t).map(|ok| (ok, key)))
        .await?;
    match allowed {
        (Verdict::Signed { children }, key) => {
            // A client reads the children of an index it just read: they pass on the
            // index's verdict, which no number of other indexes naming them can crowd
            // out (see `MAX_PARENTS`).
            for child in children {
                reg.verdicts.remember((key.0.clone(), child, key.2));
            }
            reg.verdicts.remember(key);
            Ok(())
        }
        (Verdict::SignatureManifest, key) => {
            reg.verdicts.remember(key);
            Ok(())
        }
        (Verdict::Unsigned, (repo, digest, _)) => {
            Err(ApiError::new(Code::Denied).message(format!(
                "{repo}@{digest} is not signed by a key {} trusts",
                trust.target
            )))
        }
    }
}

enum Verdict {
    /// Signed itself or through a signed index; `children` are the manifests that the
    /// manifest (an index signed itself) names, at most `MAX_REMEMBERED_CHILDREN`.
    Signed {
        children: Vec<Digest>,
    },
    /// A sigstore attachment: never held back (clients read it to verify).
    SignatureManifest,
    Unsigned,
}

fn allowed(reg: &Registry, repo: &str, m: &StoredManifest, trust: &Trust) -> ApiResult<Verdict> {
    let parsed = Manifest::parse(Some(&m.media_type), &m.content).ok();
    if let Some(parsed) = &parsed {
        if is_sigstore_attachment(reg, repo, parsed)? {
            return Ok(Verdict::SignatureManifest);
        }
    }
    if signed(reg, repo, &m.digest, trust)? {
        let children = parsed.map_or_else(Vec::new, |p| {
            p.manifests
                .into_iter()
                .take(MAX_REMEMBERED_CHILDREN)
                .map(|c| c.digest)
                .collect()
        });
        return Ok(Verdict::Signed { children });
    }
    // The store lists signed parents first (`MetaStore::parent_manifests`).
    for parent in reg.meta.parent_manifests(repo, &m.digest, MAX_PARENTS)? {
        if signed(reg, repo, &parent, trust)? {
            return Ok(Verdict::Signed { children: vec![] });
        }
    }
    Ok(Verdict::Unsigned)
}

/// A manifest whose layers are all sigstore payloads: the signatures of an image, not
/// an image. The layers' media type is only the pusher's word: an image whose tar
/// layers were labelled so was served unsigned, and runtimes that go by a layer's
/// bytes unpack it. So each layer must be a small blob of this repository that reads
/// as a cosign payload, which no tar archive does.
fn is_sigstore_attachment(reg: &Registry, repo: &str, m: &Manifest) -> ApiResult<bool> {
    if m.layers.is_empty() || m.layers.len() > MAX_ATTACHMENT_LAYERS {
        return Ok(false);
    }
    for layer in &m.layers {
        if layer.media_type != sigstore::PAYLOAD_MEDIA_TYPE || layer.size > MAX_PAYLOAD_BYTES {
            return Ok(false);
        }
        let Some(bytes) = read_payload(reg, repo, &layer.digest)? else {
            return Ok(false);
        };
        if Payload::parse(&bytes, Format::Sigstore).is_err() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether `signed_reference` names repository `repo` (on whatever host).
fn names_repository(signed_reference: &str, repo: &str) -> bool {
    signed_reference
        .parse::<ImageReference>()
        .is_ok_and(|r| r.path().as_str() == repo)
}

/// Whether a trusted key signed `digest` as an image of `repo`.
fn signed(reg: &Registry, repo: &str, digest: &Digest, trust: &Trust) -> ApiResult<bool> {
    if !trust.keyring.is_empty() {
        for s in reg.meta.signatures(repo, digest)? {
            let ok = verify_simple_bounded(
                &trust.keyring,
                &s.content,
                MAX_PAYLOAD_BYTES,
                ManifestCheck::Digest(digest),
                |r| names_repository(r, repo),
            );
            if ok.is_ok() {
                return Ok(true);
            }
        }
    }
    if trust.sigstore.is_empty() {
        return Ok(false);
    }
    let tag = format!("{}-{}.sig", digest.algorithm().as_str(), digest.hex());
    let Some(attachment) = reg.meta.manifest_by_tag(repo, &tag)? else {
        return Ok(false);
    };
    let Ok(attachment) = Manifest::parse(Some(&attachment.media_type), &attachment.content) else {
        return Ok(false);
    };
    for layer in attachment.layers.iter().take(MAX_SIGSTORE_LAYERS) {
        let Some(signature) = layer
            .annotations
            .as_ref()
            .and_then(|a| a.get(sigstore::SIGNATURE_ANNOTATION))
        else {
            continue;
        };
        if layer.media_type != sigstore::PAYLOAD_MEDIA_TYPE || layer.size > MAX_PAYLOAD_BYTES {
            continue;
        }
        let Some(payload) = read_payload(reg, repo, &layer.digest)? else {
            continue;
        };
        if let Ok(p) = sigstore::verify(&trust.sigstore, &payload, signature) {
            if ManifestCheck::Digest(digest).matches(&p.docker_manifest_digest)
                && names_repository(&p.docker_reference, repo)
            {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// A small blob of `repo` (a sigstore payload), if the repository links it and its
/// bytes match its digest. Also the signature details' reader (`signature_info`).
pub(crate) fn read_payload(
    reg: &Registry,
    repo: &str,
    digest: &Digest,
) -> ApiResult<Option<Vec<u8>>> {
    if reg.meta.blob_in_repo(repo, digest)?.is_none() {
        return Ok(None);
    }
    let bytes = match &reg.objects {
        Some(objects) => match objects.read_small_sync(digest, MAX_PAYLOAD_BYTES)? {
            Some(b) => b.to_vec(),
            None => return Ok(None),
        },
        None => {
            let Some((file, _)) = reg.blobs.open_blob(digest)? else {
                return Ok(None);
            };
            let mut bytes = Vec::new();
            file.take(MAX_PAYLOAD_BYTES + 1)
                .read_to_end(&mut bytes)
                .map_err(ApiError::internal)?;
            bytes
        }
    };
    if bytes.len() as u64 > MAX_PAYLOAD_BYTES || Digest::of(digest.algorithm(), &bytes) != *digest {
        return Ok(None);
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_are_per_setting_version_and_bounded() {
        let v = Verdicts::default();
        let key = |i: u64, version: u64| {
            (
                "myorg/app".to_string(),
                Digest::sha256_of(&i.to_be_bytes()),
                version,
            )
        };
        v.remember(key(0, 1));
        assert!(v.hit(&key(0, 1)));
        // Another setting (version) or another manifest must verify again.
        assert!(!v.hit(&key(0, 2)));
        assert!(!v.hit(&key(1, 1)));
        for i in 1..=CACHE_CAPACITY as u64 {
            v.remember(key(i, 1));
        }
        assert!(v.allowed.lock().unwrap().len() <= CACHE_CAPACITY);
        assert!(v.hit(&key(CACHE_CAPACITY as u64, 1)));
    }

    #[test]
    fn the_repository_is_compared_not_the_host() {
        assert!(names_repository("localhost:5000/myorg/app:v1", "myorg/app"));
        assert!(names_repository("registry.example/myorg/app@sha256:0000000000000000000000000000000000000000000000000000000000000000", "myorg/app"));
        assert!(!names_repository(
            "localhost:5000/myorg/app2:v1",
            "myorg/app"
        ));
        assert!(!names_repository(
            "localhost:5000/myorg/app/sub:v1",
            "myorg/app"
        ));
        assert!(!names_repository("not a reference", "myorg/app"));
    }
}
