//! Where images live, and the one pipeline that moves them.
//!
//! - [`name`]: `docker://…` and `oci:PATH[:REF]` names.
//! - [`Place`]: an image's location opened for reading or writing: a registry
//!   repository (through `berth-remote`), an OCI layout ([`oci`]) or a `dir:` folder
//!   ([`dir`]). Each kind is one
//!   variant and one module; the copy engine only speaks to `Place`.
//! - [`signatures`]: where each kind of place keeps an image's signatures.
//! - [`copy`]: manifests and blobs from one place to another, blobs streamed (never
//!   whole in memory), several at once, skipped when the destination has it, mounted
//!   across repositories of one registry. Every blob's digest is checked where it
//!   lands (the registry's `PUT ?digest=`, the layout's hash before its rename), so a
//!   blob that does not match fails the copy before any manifest names it.

pub mod archive;
pub mod copy;
pub mod dir;
pub mod docker_archive;
mod files;
pub mod local;
pub mod name;
pub mod oci;
pub mod recompress;
pub mod served;
pub mod signatures;

use berth_image::Digest;
use berth_remote::{ByteStream, Registry, RemoteError};

pub use name::ImageName;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error(transparent)]
    Store(#[from] berth_store::StoreError),
    #[error("invalid image name {0}")]
    Name(String),
    #[error("{0}: not found")]
    NotFound(String),
    /// The cause is the source only (see `RemoteError::Transport`).
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: content has digest {actual}, expected {expected}")]
    Digest {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("corrupt image data: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Unsupported(String),
    #[error(transparent)]
    Local(#[from] local::ImageNotKnown),
    #[error(transparent)]
    Container(#[from] local::ContainerNotKnown),
    #[error(transparent)]
    InUse(#[from] local::ImageInUse),
}

impl TransportError {
    /// The image or one of its parts does not exist (exit status 2).
    pub fn is_not_found(&self) -> bool {
        match self {
            TransportError::NotFound(_)
            | TransportError::Local(_)
            | TransportError::Container(_) => true,
            TransportError::Remote(r) => r.is_not_found(),
            _ => false,
        }
    }
}

/// A manifest as stored: bytes, media type if known, digest.
#[derive(Debug, Clone)]
pub struct RawManifest {
    pub bytes: Vec<u8>,
    pub media_type: Option<String>,
    pub digest: Digest,
}

/// An image's place, opened.
pub enum Place {
    Registry {
        registry: std::sync::Arc<Registry>,
        repo: String,
        /// Tag or digest of the named image.
        reference: String,
    },
    Oci(oci::Layout),
    Dir(dir::DirImage),
    /// An OCI archive, unpacked (to read) or being built (to write) in `scratch`.
    OciArchive {
        layout: oci::Layout,
        scratch: tempfile::TempDir,
        /// Where [`Place::finish`] packs the layout; none when reading.
        archive: Option<std::path::PathBuf>,
    },
    DockerArchive(docker_archive::DockerArchive),
    /// The local image store: an image is a repository (its full name) and a tag.
    Local {
        store: std::sync::Arc<local::LocalStore>,
        repo: String,
        reference: String,
    },
    /// A registry's own data folder, read only (the source of its replication).
    Served {
        content: served::Served,
        repo: String,
        reference: String,
    },
}

impl Place {
    /// Opens `oci-archive:PATH` for reading: unpacked into a temporary layout.
    pub async fn read_archive(
        path: &std::path::Path,
        reference: Option<String>,
    ) -> Result<Place, TransportError> {
        let (layout, scratch) = archive::open(path, reference).await?;
        Ok(Place::OciArchive {
            layout,
            scratch,
            archive: None,
        })
    }

    /// Opens `oci-archive:PATH` for writing: a temporary layout beside PATH, packed
    /// into it by [`Place::finish`].
    pub fn write_archive(
        path: &std::path::Path,
        reference: Option<String>,
    ) -> Result<Place, TransportError> {
        let scratch = files::scratch_beside(path, ".berth-oci-archive-")?;
        Ok(Place::OciArchive {
            layout: oci::Layout::new(scratch.path().to_path_buf(), reference),
            scratch,
            archive: Some(path.to_path_buf()),
        })
    }

    /// Completes a write: packs an archive. Nothing to do elsewhere.
    pub async fn finish(&self) -> Result<(), TransportError> {
        match self {
            Place::OciArchive {
                scratch,
                archive: Some(path),
                ..
            } => archive::pack(scratch.path(), path).await,
            Place::DockerArchive(a) => a.finish().await,
            _ => Ok(()),
        }
    }

    /// An OCI layout or archive: OCI manifests only, so a Docker image is converted on
    /// the way in (containers/image's `oci:` destination supports no other type).
    pub fn holds_oci_only(&self) -> bool {
        matches!(self, Place::Oci(_) | Place::OciArchive { .. })
    }

    /// Uncompressed layers are gzip-compressed on the way in, as containers/image's
    /// `docker://` and `oci:` destinations ask (`dir:` keeps what it is given, a docker
    /// archive wants them plain, the local store keeps them as pulled).
    pub fn compresses_layers(&self) -> bool {
        matches!(
            self,
            Place::Registry { .. } | Place::Oci(_) | Place::OciArchive { .. }
        )
    }

    /// The named image's manifest, or with `digest` a child's.
    pub async fn manifest(&self, digest: Option<&Digest>) -> Result<RawManifest, TransportError> {
        match self {
            Place::Registry {
                registry,
                repo,
                reference,
            } => {
                let r = match digest {
                    Some(d) => registry.manifest(repo, &d.to_string()).await?,
                    None => registry.manifest(repo, reference).await?,
                };
                Ok(RawManifest {
                    bytes: r.bytes,
                    media_type: r.media_type,
                    digest: r.digest,
                })
            }
            Place::Local {
                store,
                repo,
                reference,
            } => match digest {
                Some(d) => store.manifest(repo, &d.to_string()),
                None => store.manifest(repo, reference),
            },
            Place::Served {
                content,
                repo,
                reference,
            } => match digest {
                Some(d) => content.manifest(repo, &d.to_string()),
                None => content.manifest(repo, reference),
            },
            Place::DockerArchive(a) => {
                let (bytes, top) = a.manifest()?;
                if digest.is_some_and(|d| d != &top) {
                    return Err(TransportError::NotFound(format!(
                        "manifest {} in a docker archive",
                        digest.map(|d| d.to_string()).unwrap_or_default()
                    )));
                }
                Ok(RawManifest {
                    bytes,
                    media_type: Some(berth_image::media_type::DOCKER_MANIFEST.to_string()),
                    digest: top,
                })
            }
            Place::Dir(d) => {
                let (bytes, digest) = d.manifest(digest).await?;
                Ok(RawManifest {
                    media_type: oci::Layout::media_type_of(&bytes),
                    bytes,
                    digest,
                })
            }
            Place::Oci(layout) | Place::OciArchive { layout, .. } => {
                let (bytes, media_type, digest) = layout.manifest(digest).await?;
                let media_type = media_type.or_else(|| oci::Layout::media_type_of(&bytes));
                Ok(RawManifest {
                    bytes,
                    media_type,
                    digest,
                })
            }
        }
    }

    pub async fn blob(&self, d: &Digest) -> Result<ByteStream, TransportError> {
        match self {
            Place::Registry { registry, repo, .. } => Ok(registry.blob(repo, d).await?),
            Place::Oci(layout) | Place::OciArchive { layout, .. } => layout.blob(d).await,
            Place::Dir(dir) => dir.blob(d).await,
            Place::DockerArchive(a) => a.blob(d).await,
            Place::Local { store, .. } => store.blob(d).await,
            Place::Served { content, repo, .. } => content.blob(repo, d).await,
        }
    }

    /// A small blob (a config) whole, at most `max` bytes, checked against its digest.
    pub async fn small_blob(&self, d: &Digest, max: usize) -> Result<Vec<u8>, TransportError> {
        use futures_util::StreamExt;
        let mut stream = self.blob(d).await?;
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| TransportError::Io {
                context: format!("reading blob {d}"),
                source: e,
            })?;
            if out.len() + chunk.len() > max {
                return Err(TransportError::Corrupt(format!(
                    "blob {d} is larger than {max} bytes"
                )));
            }
            out.extend_from_slice(&chunk);
        }
        if &Digest::of(d.algorithm(), &out) != d {
            return Err(TransportError::Corrupt(format!(
                "blob {d} does not match its digest"
            )));
        }
        Ok(out)
    }

    pub async fn has_blob(&self, d: &Digest) -> Result<bool, TransportError> {
        match self {
            Place::Registry { registry, repo, .. } => {
                Ok(registry.has_blob(repo, d).await?.is_some())
            }
            Place::Oci(layout) | Place::OciArchive { layout, .. } => Ok(layout.has_blob(d)),
            Place::Dir(dir) => Ok(dir.has_blob(d)),
            Place::DockerArchive(_) => Ok(false),
            Place::Local { store, .. } => store.has_blob(d),
            Place::Served { content, repo, .. } => content.has_blob(repo, d),
        }
    }

    /// Links blob `d` from `src` without copying its bytes, when both are repositories
    /// of one registry. `false`: copy it.
    pub async fn mount_from(&self, src: &Place, d: &Digest) -> Result<bool, TransportError> {
        match (self, src) {
            (
                Place::Registry { registry, repo, .. },
                Place::Registry {
                    registry: from_registry,
                    repo: from,
                    ..
                },
            ) if registry.host() == from_registry.host() && repo != from => {
                Ok(registry.mount_blob(repo, d, from).await?)
            }
            _ => Ok(false),
        }
    }

    pub async fn put_blob(&self, d: &Digest, stream: ByteStream) -> Result<(), TransportError> {
        match self {
            Place::Registry { registry, repo, .. } => {
                Ok(registry.upload_blob(repo, d, stream).await?)
            }
            Place::Oci(layout) | Place::OciArchive { layout, .. } => {
                layout.put_blob(d, stream).await
            }
            Place::Dir(dir) => dir.put_blob(d, stream).await,
            Place::DockerArchive(a) => a.put_blob(d, stream).await,
            Place::Local { store, .. } => store.put_blob(d, stream).await,
            Place::Served { .. } => Err(served::read_only()),
        }
    }

    /// Stores a blob whose digest is learnt as it passes (a recompressed layer);
    /// returns its digest and size.
    pub async fn put_new_blob(&self, stream: ByteStream) -> Result<(Digest, u64), TransportError> {
        match self {
            Place::Registry { registry, repo, .. } => {
                Ok(registry.upload_new_blob(repo, stream).await?)
            }
            Place::Oci(layout) | Place::OciArchive { layout, .. } => {
                layout.put_new_blob(stream).await
            }
            Place::Dir(dir) => dir.put_new_blob(stream).await,
            Place::DockerArchive(_) => Err(TransportError::Unsupported(
                "a docker archive keeps layers uncompressed; --dest-compress-format does not apply"
                    .into(),
            )),
            Place::Local { .. } => Err(TransportError::Unsupported(
                "the local store keeps layers as pulled; --dest-compress-format does not apply"
                    .into(),
            )),
            Place::Served { .. } => Err(served::read_only()),
        }
    }

    /// Stores a manifest; the top-level one under the place's name (tag or layout
    /// reference), children by digest. Returns its digest.
    pub async fn put_manifest(
        &self,
        bytes: &[u8],
        media_type: &str,
        top_level: bool,
    ) -> Result<Digest, TransportError> {
        match self {
            Place::Registry {
                registry,
                repo,
                reference,
            } => {
                let digest = Digest::sha256_of(bytes);
                let target = if top_level && reference.parse::<Digest>().is_err() {
                    reference.clone()
                } else {
                    digest.to_string()
                };
                Ok(registry
                    .put_manifest(repo, &target, bytes, media_type)
                    .await?)
            }
            Place::Oci(layout) | Place::OciArchive { layout, .. } => {
                layout.put_manifest(bytes, media_type, top_level).await
            }
            Place::Dir(dir) => dir.put_manifest(bytes, top_level).await,
            Place::DockerArchive(_) if !top_level => Err(TransportError::Unsupported(
                "a docker archive holds one image, not an index; copy one platform".into(),
            )),
            Place::DockerArchive(a) => a.put_manifest(bytes, media_type).await,
            Place::Local {
                store,
                repo,
                reference,
            } => {
                let tag =
                    (top_level && reference.parse::<Digest>().is_err()).then(|| reference.clone());
                // On the blocking pool: replacing a held image's layers reads them.
                let (store, repo) = (store.clone(), repo.clone());
                let (bytes, media_type) = (bytes.to_vec(), media_type.to_string());
                tokio::task::spawn_blocking(move || {
                    store.put_manifest(&repo, tag.as_deref(), &bytes, &media_type)
                })
                .await
                .map_err(|e| TransportError::Io {
                    context: "storing a manifest".into(),
                    source: std::io::Error::other(e),
                })?
            }
            Place::Served { .. } => Err(served::read_only()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each cause once in `{:#}` (a read-only file system was reported three times).
    #[test]
    fn io_errors_say_their_cause_once() {
        let e = TransportError::Io {
            context: "writing blob x".into(),
            source: std::io::Error::from_raw_os_error(30),
        };
        let mut text = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            text = format!("{text}: {c}");
            cause = c.source();
        }
        assert_eq!(text.matches("os error 30").count(), 1, "{text}");
        assert!(text.starts_with("writing blob x: "), "{text}");
    }
}
