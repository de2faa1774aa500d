//! The local image store (`local:NAME[:TAG]`): where `berth pull` puts images.
//!
//! It is the registry's storage without the HTTP: berth-store's content-addressed blob
//! files (each blob once, shared by every image, written by hash-verify-fsync-rename)
//! and its SQLite metadata, where an image is a repository (the full name,
//! `docker.io/library/alpine`) and a tag. Layers stay compressed as pulled, which is
//! what a push needs. Two pulls at once are safe: blob files commit atomically and
//! every metadata change is one SQLite transaction; a crash mid-pull leaves no tag on a
//! partial image, since the manifest is the last thing written.
//!
//! Where it is, the caller says (the command line's default: `$BERTH_STORAGE_ROOT`,
//! else `~/.local/share/containers/berth`, or `/var/lib/containers/berth` for root).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_image::{Digest, Manifest};
use berth_remote::ByteStream;
use berth_store::{BlobStore, MetaStore, NewManifest, SqliteMeta};

use crate::{RawManifest, TransportError};

pub struct LocalStore {
    root: PathBuf,
    blobs: BlobStore,
    meta: SqliteMeta,
}

/// One tagged image, as `berth images` lists it.
#[derive(Debug, Clone)]
pub struct ImageRow {
    /// `host/path`.
    pub repository: String,
    pub tag: String,
    pub manifest_digest: Digest,
    /// The image ID: its config's digest.
    pub config_digest: Option<Digest>,
    /// `created` of the config, as written there (RFC 3339).
    pub created: Option<String>,
    /// Config and layers, compressed, in bytes.
    pub size: u64,
}

impl LocalStore {
    pub fn open(root: &Path) -> Result<Arc<LocalStore>, TransportError> {
        std::fs::create_dir_all(root).map_err(crate::files::io(root, "creating"))?;
        Ok(Arc::new(LocalStore {
            root: root.to_path_buf(),
            blobs: BlobStore::open(root)?,
            meta: SqliteMeta::open(&root.join("images.db"))?,
        }))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the store has blob `d`; if so it is linked into `repo` at once, so the
    /// manifest that names it can be stored.
    pub fn has_blob(&self, repo: &str, d: &Digest) -> Result<bool, TransportError> {
        if let Some(size) = self.meta.blob_known(d)? {
            if self.blobs.contains(d) {
                self.meta.link_blob(repo, d, size)?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Stores blob `d` from `stream`: an upload file written and hashed on a blocking
    /// thread, committed (verify, fsync, rename), then linked into `repo`.
    pub async fn put_blob(
        self: &Arc<Self>,
        repo: &str,
        d: &Digest,
        stream: ByteStream,
    ) -> Result<(), TransportError> {
        let id = uuid::Uuid::new_v4().to_string();
        let (store, id2, repo2, d2) = (self.clone(), id.clone(), repo.to_string(), d.clone());
        let result =
            crate::files::consume_blocking(stream, &format!("storing blob {d}"), move |chunks| {
                let mut w = store.blobs.create_upload(&id2)?;
                for chunk in chunks {
                    w.write(&chunk.map_err(|source| TransportError::Io {
                        context: format!("receiving blob {d2}"),
                        source,
                    })?)?;
                }
                let size = store.blobs.commit(w, &d2)?;
                store.meta.link_blob(&repo2, &d2, size)?;
                Ok(())
            })
            .await;
        if result.is_err() {
            let _ = self.blobs.remove_upload(&id);
        }
        result
    }

    pub async fn blob(&self, d: &Digest) -> Result<ByteStream, TransportError> {
        let (file, _) = self
            .blobs
            .open_blob(d)?
            .ok_or_else(|| TransportError::NotFound(format!("blob {d} in the local store")))?;
        Ok(Box::pin(tokio_util::io::ReaderStream::with_capacity(
            tokio::fs::File::from_std(file),
            1 << 20,
        )))
    }

    /// The manifest `reference` (tag or digest) of `repo`.
    pub fn manifest(&self, repo: &str, reference: &str) -> Result<RawManifest, TransportError> {
        let found = match reference.parse::<Digest>() {
            Ok(d) => self.meta.manifest_by_digest(repo, &d)?,
            Err(_) => self.meta.manifest_by_tag(repo, reference)?,
        };
        let m = found.ok_or_else(|| {
            TransportError::NotFound(format!("{repo}:{reference} in the local store"))
        })?;
        Ok(RawManifest {
            bytes: m.content,
            media_type: Some(m.media_type),
            digest: m.digest,
        })
    }

    /// Stores a manifest whose blobs are in; under `tag` when given.
    pub fn put_manifest(
        &self,
        repo: &str,
        tag: Option<&str>,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest, TransportError> {
        let parsed = Manifest::parse(Some(media_type), bytes)
            .map_err(|e| TransportError::Corrupt(format!("manifest for {repo}: {e}")))?;
        let digest = Digest::sha256_of(bytes);
        self.meta.put_manifest(
            repo,
            &NewManifest::new(digest.clone(), &parsed, bytes.to_vec()),
            tag,
        )?;
        Ok(digest)
    }

    /// Every tagged image, by name then tag.
    pub fn images(&self) -> Result<Vec<ImageRow>, TransportError> {
        let mut rows = Vec::new();
        let mut last: Option<String> = None;
        loop {
            let repos = self.meta.repositories(last.as_deref(), 1000)?;
            let done = repos.len() < 1000;
            last = repos.last().cloned();
            for repo in repos {
                for tag in self.meta.tags(&repo, None, usize::MAX >> 1)? {
                    if let Some(m) = self.meta.manifest_by_tag(&repo, &tag)? {
                        rows.push(self.row(&repo, &tag, m.digest, &m.media_type, &m.content));
                    }
                }
            }
            if done {
                return Ok(rows);
            }
        }
    }

    fn row(
        &self,
        repo: &str,
        tag: &str,
        digest: Digest,
        media_type: &str,
        content: &[u8],
    ) -> ImageRow {
        let parsed = Manifest::parse(Some(media_type), content).ok();
        let config = parsed.as_ref().and_then(|m| m.config.clone());
        let size = parsed
            .as_ref()
            .map(|m| m.layers.iter().chain(m.config.iter()).map(|d| d.size).sum())
            .unwrap_or(0);
        let created = config.as_ref().and_then(|c| {
            let (file, _) = self.blobs.open_blob(&c.digest).ok()??;
            let v: serde_json::Value =
                serde_json::from_reader(std::io::BufReader::new(file)).ok()?;
            v["created"].as_str().map(str::to_string)
        });
        ImageRow {
            repository: repo.to_string(),
            tag: tag.to_string(),
            manifest_digest: digest,
            config_digest: config.map(|c| c.digest),
            created,
            size,
        }
    }
}
