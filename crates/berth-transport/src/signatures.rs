//! Where an image's signatures live, read and written as containers/image does:
//!
//! - a registry (`docker://`): simple signatures through the registry's signature
//!   extension when its ping says `X-Registry-Supports-Signatures: 1`, else in the
//!   lookaside storage registries.d names (`file://` read and written, with
//!   `lookaside-staging` for writes; `http(s)://` read, `signature-1…N` until a 404);
//!   sigstore signatures as attachments (the `sha256-<hex>.sig` tag, one layer per
//!   signature) where registries.d says `use-sigstore-attachments: true`;
//! - `dir:`: `signature-1…N` files beside `manifest.json`;
//! - the local store: with the manifest in images.db;
//! - `oci:`, `oci-archive:`, `docker-archive:` cannot keep any
//!   ([`Place::signature_refusal`], c/image's own messages).
//!
//! Signatures are of the top-level manifest: the one a tag names (for an index, the
//! index), as `skopeo copy` and `podman push --sign-by` write them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth_containers_config::{Env, Lookaside, RegistriesD};
use berth_image::Digest;
use berth_remote::Registry;
use berth_signature::signature::ImageSignature;

use crate::files::{self, once, write_atomic};
use crate::{Place, TransportError};

/// What registries.d says, and the environment it is read in (for the built-in
/// lookaside folder): where a registry image's signatures are kept.
#[derive(Debug, Clone, Default)]
pub struct SignatureStorage {
    pub registries_d: RegistriesD,
    pub env: Option<Env>,
}

impl SignatureStorage {
    pub fn new(registries_d: RegistriesD, env: Env) -> SignatureStorage {
        SignatureStorage {
            registries_d,
            env: Some(env),
        }
    }

    fn env(&self) -> Env {
        self.env.clone().unwrap_or_else(Env::from_process)
    }

    fn lookaside(&self, identity: &str, write: bool) -> Result<Lookaside, TransportError> {
        self.registries_d
            .lookaside_base(&self.env(), identity, write)
            .map_err(|e| TransportError::Unsupported(e.to_string()))
    }
}

/// A config or signature blob of an attachment is at most this large.
const MAX_ATTACHMENT_BLOB: usize = 4 * 1024 * 1024;
/// Signatures read from a lookaside or an attachment manifest at most, as c/image's
/// `maxLookasideSignatures`: a server that answers every index would otherwise be
/// read for ever (4 MiB a signature).
const MAX_SIGNATURES: usize = 128;
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

fn corrupt(what: &str) -> impl Fn(String) -> TransportError + '_ {
    move |e| TransportError::Corrupt(format!("{what}: {e}"))
}

impl Place {
    /// Why this place cannot keep signatures (c/image's message), if it cannot.
    pub fn signature_refusal(&self) -> Option<&'static str> {
        match self {
            Place::Oci(_) | Place::OciArchive { .. } => {
                Some("Pushing signatures for OCI images is not supported")
            }
            Place::DockerArchive(_) => {
                Some("Storing signatures for docker tar files is not supported")
            }
            _ => None,
        }
    }

    /// The signatures of manifest `digest` (the named image's top-level manifest).
    pub async fn signatures(
        &self,
        digest: &Digest,
        storage: &SignatureStorage,
    ) -> Result<Vec<ImageSignature>, TransportError> {
        match self {
            Place::Registry {
                registry,
                repo,
                reference,
            } => registry_signatures(registry, repo, reference, digest, storage).await,
            Place::Dir(d) => read_numbered(d.path(), &dir_prefix(d, digest).await).await,
            Place::Local { store, .. } => {
                let blobs = store.signatures(digest)?;
                blobs
                    .iter()
                    .map(|b| {
                        ImageSignature::from_blob(b)
                            .map_err(|e| corrupt("a signature in the local store")(e.to_string()))
                    })
                    .collect()
            }
            // Simple signatures only: a registry's sigstore attachments are tags of
            // their own, which its replication copies as images.
            Place::Served { content, repo, .. } => content.signatures(repo, digest),
            Place::Oci(_) | Place::OciArchive { .. } | Place::DockerArchive(_) => Ok(Vec::new()),
        }
    }

    /// Stores `sigs` with manifest `digest`, written here just before. Nothing to do
    /// when there are none; an error where signatures cannot be kept.
    pub async fn put_signatures(
        &self,
        digest: &Digest,
        sigs: &[ImageSignature],
        storage: &SignatureStorage,
    ) -> Result<(), TransportError> {
        if sigs.is_empty() {
            return Ok(());
        }
        if let Some(why) = self.signature_refusal() {
            return Err(TransportError::Unsupported(why.to_string()));
        }
        match self {
            Place::Registry {
                registry,
                repo,
                reference,
            } => put_registry_signatures(registry, repo, reference, digest, sigs, storage).await,
            Place::Dir(d) => write_numbered(d.path(), &dir_prefix(d, digest).await, sigs),
            Place::Local { store, .. } => {
                let blobs: Vec<Vec<u8>> = sigs.iter().map(ImageSignature::to_blob).collect();
                store.add_signatures(digest, &blobs)
            }
            Place::Served { .. } => Err(crate::served::read_only()),
            Place::Oci(_) | Place::OciArchive { .. } | Place::DockerArchive(_) => Ok(()),
        }
    }
}

/// `dir:` names the signatures of its top-level manifest `signature-N`, those of an
/// image of its index `<hex>.signature-N` (c/image's `directory` transport).
async fn dir_prefix(d: &crate::dir::DirImage, digest: &Digest) -> String {
    match d.manifest(None).await {
        Ok((_, top)) if &top != digest => format!("{}.signature-", digest.hex()),
        _ => "signature-".to_string(),
    }
}

/// The policy identity registries.d scopes match: `host/repo:tag` or `host/repo@digest`.
fn identity(registry: &Registry, repo: &str, reference: &str) -> String {
    berth_image::reference::join(&format!("{}/{repo}", registry.host()), reference)
}

async fn registry_signatures(
    registry: &Registry,
    repo: &str,
    reference: &str,
    digest: &Digest,
    storage: &SignatureStorage,
) -> Result<Vec<ImageSignature>, TransportError> {
    let id = identity(registry, repo, reference);
    let mut out = Vec::new();
    if registry.supports_signatures().await? {
        for s in registry.extension_signatures(repo, digest).await? {
            out.push(ImageSignature::Simple(s.content));
        }
    } else {
        let base = storage.lookaside(&id, false)?;
        for index in 0.. {
            if index >= MAX_SIGNATURES {
                return Err(corrupt("the lookaside")(format!(
                    "it provided {MAX_SIGNATURES} signatures, assuming that's unreasonable and a server error"
                )));
            }
            let blob = match base.signature(repo, digest, index) {
                Lookaside::File(p) => match read_if_there(&p)? {
                    Some(b) => b,
                    None => break,
                },
                Lookaside::Http(url) => match registry.lookaside_get(&url).await? {
                    Some(b) => b,
                    None => break,
                },
            };
            out.push(
                ImageSignature::from_blob(&blob)
                    .map_err(|e| corrupt("a lookaside signature")(e.to_string()))?,
            );
        }
    }
    if storage.registries_d.use_sigstore_attachments(&id) {
        out.extend(read_attachments(registry, repo, digest).await?);
    }
    Ok(out)
}

async fn put_registry_signatures(
    registry: &Registry,
    repo: &str,
    reference: &str,
    digest: &Digest,
    sigs: &[ImageSignature],
    storage: &SignatureStorage,
) -> Result<(), TransportError> {
    let id = identity(registry, repo, reference);
    let attachments = storage.registries_d.use_sigstore_attachments(&id);
    let (sigstore, simple): (Vec<&ImageSignature>, Vec<&ImageSignature>) = sigs
        .iter()
        .partition(|s| matches!(s, ImageSignature::Sigstore { .. }));
    if !sigstore.is_empty() {
        if !attachments {
            return Err(TransportError::Unsupported(format!(
                "{id}: sigstore signatures are kept as attachments, and registries.d does not \
                 set use-sigstore-attachments: true for it"
            )));
        }
        write_attachments(registry, repo, digest, &sigstore).await?;
    }
    if simple.is_empty() {
        return Ok(());
    }
    if registry.supports_signatures().await? {
        let have = registry.extension_signatures(repo, digest).await?;
        for s in simple {
            let blob = s.to_blob();
            if have.iter().any(|h| h.content == blob) {
                continue;
            }
            let name = loop {
                let n = format!("{digest}@{}", uuid::Uuid::new_v4().simple());
                if !have.iter().any(|h| h.name == n) {
                    break n;
                }
            };
            registry
                .put_extension_signature(repo, digest, &name, &blob)
                .await?;
        }
        return Ok(());
    }
    // Lookaside: the whole list is written, as c/image writes it (what is there is
    // read first, so a second signer adds to it).
    let base = storage.lookaside(&id, true)?;
    let Lookaside::File(_) = &base else {
        return Err(TransportError::Unsupported(format!(
            "{id}: writing signatures to an http(s) lookaside is not supported; name a \
             file:// lookaside-staging in registries.d"
        )));
    };
    let mut all = Vec::new();
    for index in 0..MAX_SIGNATURES {
        let Lookaside::File(p) = base.signature(repo, digest, index) else {
            break;
        };
        match read_if_there(&p)? {
            Some(b) => all.push(b),
            None => break,
        }
    }
    for s in simple {
        let blob = s.to_blob();
        if !all.contains(&blob) {
            all.push(blob);
        }
    }
    for (index, blob) in all.iter().enumerate() {
        if let Lookaside::File(p) = base.signature(repo, digest, index) {
            write_atomic(&p, blob)?;
        }
    }
    Ok(())
}

/// The tag of a manifest's sigstore attachments (`sha256-<hex>.sig`).
pub fn attachment_tag(digest: &Digest) -> String {
    format!("{}-{}.sig", digest.algorithm().as_str(), digest.hex())
}

/// The signatures of the attachment manifest of `digest`; none when there is none.
async fn read_attachments(
    registry: &Registry,
    repo: &str,
    digest: &Digest,
) -> Result<Vec<ImageSignature>, TransportError> {
    let tag = attachment_tag(digest);
    let m = match registry.manifest(repo, &tag).await {
        Ok(m) => m,
        Err(e) if e.is_not_found() => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let what = format!("sigstore attachments {repo}:{tag}");
    let v: serde_json::Value =
        serde_json::from_slice(&m.bytes).map_err(|e| corrupt(&what)(e.to_string()))?;
    let layers = v["layers"].as_array().map_or(&[][..], Vec::as_slice);
    if layers.len() > MAX_SIGNATURES {
        return Err(corrupt(&what)(format!(
            "{} signatures, more than the {MAX_SIGNATURES} read",
            layers.len()
        )));
    }
    let mut out = Vec::new();
    for layer in layers {
        let d: Digest = layer["digest"]
            .as_str()
            .unwrap_or_default()
            .parse()
            .map_err(|e| corrupt(&what)(format!("a layer's digest: {e}")))?;
        let payload = registry.blob_bytes(repo, &d, MAX_ATTACHMENT_BLOB).await?;
        let annotations: BTreeMap<String, String> = layer["annotations"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect();
        out.push(ImageSignature::Sigstore {
            media_type: layer["mediaType"].as_str().unwrap_or_default().to_string(),
            payload,
            annotations,
        });
    }
    Ok(out)
}

/// Adds `sigs` to the attachment manifest of `digest` (made when there is none), each
/// once: a layer with the same type, payload and annotations is there already.
async fn write_attachments(
    registry: &Registry,
    repo: &str,
    digest: &Digest,
    sigs: &[&ImageSignature],
) -> Result<(), TransportError> {
    let tag = attachment_tag(digest);
    let what = format!("sigstore attachments {repo}:{tag}");
    let (mut manifest, mut config) = match registry.manifest(repo, &tag).await {
        Ok(m) => {
            let v: serde_json::Value =
                serde_json::from_slice(&m.bytes).map_err(|e| corrupt(&what)(e.to_string()))?;
            let cd: Digest = v["config"]["digest"]
                .as_str()
                .unwrap_or_default()
                .parse()
                .map_err(|e| corrupt(&what)(format!("its config digest: {e}")))?;
            let c = registry.blob_bytes(repo, &cd, MAX_ATTACHMENT_BLOB).await?;
            let c: serde_json::Value =
                serde_json::from_slice(&c).map_err(|e| corrupt(&what)(e.to_string()))?;
            (v, c)
        }
        Err(e) if e.is_not_found() => (
            serde_json::json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {},
                "layers": [],
            }),
            serde_json::json!({
                "architecture": "", "os": "", "config": {},
                "rootfs": {"type": "layers", "diff_ids": []},
            }),
        ),
        Err(e) => return Err(e.into()),
    };
    let mut added = false;
    for sig in sigs {
        let ImageSignature::Sigstore {
            media_type,
            payload,
            annotations,
        } = sig
        else {
            continue;
        };
        let d = Digest::sha256_of(payload);
        let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
        let present = layers.iter().any(|l| {
            l["mediaType"].as_str() == Some(media_type.as_str())
                && l["digest"].as_str() == Some(d.to_string().as_str())
                && l["annotations"] == serde_json::json!(annotations)
        });
        if present {
            continue;
        }
        if registry.has_blob(repo, &d).await?.is_none() {
            registry.upload_blob(repo, &d, once(payload)).await?;
        }
        let layer = serde_json::json!({
            "mediaType": media_type,
            "digest": d.to_string(),
            "size": payload.len(),
            "annotations": annotations,
        });
        match manifest["layers"].as_array_mut() {
            Some(l) => l.push(layer),
            None => manifest["layers"] = serde_json::json!([layer]),
        }
        match config["rootfs"]["diff_ids"].as_array_mut() {
            Some(ids) => ids.push(d.to_string().into()),
            None => config["rootfs"]["diff_ids"] = serde_json::json!([d.to_string()]),
        }
        added = true;
    }
    if !added {
        return Ok(());
    }
    let config_bytes = serde_json::to_vec(&config).map_err(|e| corrupt(&what)(e.to_string()))?;
    let cd = Digest::sha256_of(&config_bytes);
    if registry.has_blob(repo, &cd).await?.is_none() {
        registry.upload_blob(repo, &cd, once(&config_bytes)).await?;
    }
    manifest["config"] = serde_json::json!({
        "mediaType": OCI_CONFIG,
        "digest": cd.to_string(),
        "size": config_bytes.len(),
    });
    let bytes = serde_json::to_vec(&manifest).map_err(|e| corrupt(&what)(e.to_string()))?;
    registry
        .put_manifest(repo, &tag, &bytes, OCI_MANIFEST)
        .await?;
    Ok(())
}

/// A signature file, `None` when there is none (the end of a `signature-N` run).
/// Signatures are small: read whole, on the calling thread.
fn read_if_there(p: &Path) -> Result<Option<Vec<u8>>, TransportError> {
    match files::read_small(p, files::MAX_SMALL_FILE) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(TransportError::Io {
            context: format!("reading signature {}", p.display()),
            source: e,
        }),
    }
}

/// `<dir>/<prefix>1…N`, read until the first missing one.
async fn read_numbered(dir: &Path, prefix: &str) -> Result<Vec<ImageSignature>, TransportError> {
    let mut out = Vec::new();
    for n in 1.. {
        let p = dir.join(format!("{prefix}{n}"));
        let Some(blob) = read_if_there(&p)? else {
            break;
        };
        if n > MAX_SIGNATURES {
            return Err(corrupt(&dir.display().to_string())(format!(
                "more than {MAX_SIGNATURES} signature files"
            )));
        }
        out.push(
            ImageSignature::from_blob(&blob)
                .map_err(|e| corrupt(&p.display().to_string())(e.to_string()))?,
        );
    }
    Ok(out)
}

/// Writes `<dir>/<prefix>1…N` (each atomically) and removes any beyond N, so the
/// folder holds exactly these.
fn write_numbered(dir: &Path, prefix: &str, sigs: &[ImageSignature]) -> Result<(), TransportError> {
    for (i, s) in sigs.iter().enumerate() {
        write_atomic(&dir.join(format!("{prefix}{}", i + 1)), &s.to_blob())?;
    }
    for n in sigs.len() + 1.. {
        let p: PathBuf = dir.join(format!("{prefix}{n}"));
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(e) => {
                return Err(TransportError::Io {
                    context: format!("removing {}", p.display()),
                    source: e,
                })
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
