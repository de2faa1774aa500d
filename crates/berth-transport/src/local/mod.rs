//! The local image store (`local:NAME[:TAG]`): where `berth pull` puts images and the
//! podman-style commands find them.
//!
//! Layout under the root (`~/.local/share/containers/berth`, `/var/lib/containers/berth`
//! for root, or `--root`):
//! - `blobs/sha256/<2>/<hex>`: each blob once, shared by every image that uses it,
//!   layers compressed as pulled (what a push needs). Written by berth-store's
//!   hash-verify-fsync-rename, so a blob file exists only whole.
//! - `images.db`: SQLite metadata (schema.sql): images (ID = config digest), their
//!   manifests, names, manifest lists. A manifest is the last thing a pull writes, in
//!   one transaction with its name: a crash mid-pull leaves no half image listed.
//! - `lock`: every process using the store holds a shared lock on it; deleting blob
//!   files takes it exclusively, without waiting. So a pull that has found a blob
//!   present can count on it until it ends, and an `rmi` racing a pull leaves the
//!   orphaned files to the next `rmi`/`prune` instead of waiting.

mod db;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_image::inspect::ImageConfig;
use berth_image::{Digest, ImageReference, Manifest, ManifestKind, Platform};
use berth_remote::ByteStream;
use berth_store::BlobStore;
use rusqlite::Connection;

pub use db::{repository_of, unix_of, ContainerRecord, Image};

use crate::{RawManifest, TransportError};

use crate::files::MAX_CONFIG;

pub struct LocalStore {
    root: PathBuf,
    blobs: BlobStore,
    db: Mutex<Connection>,
    lock: File,
}

/// What removing images freed.
#[derive(Debug, Default)]
pub struct Removed {
    /// Image IDs deleted.
    pub images: Vec<Digest>,
    /// Bytes of blob files deleted.
    pub reclaimed: u64,
    /// Images asked for that containers use: kept.
    pub in_use: Vec<ImageInUse>,
}

/// An image name the store does not know, said as podman says it (`NAME: image not
/// known`).
#[derive(Debug, thiserror::Error)]
#[error("{0}: image not known")]
pub struct ImageNotKnown(pub String);

/// A container name or ID the store does not know, in podman's words.
#[derive(Debug, thiserror::Error)]
#[error("no container with name or ID \"{0}\" found: no such container")]
pub struct ContainerNotKnown(pub String);

/// An image containers still use, in podman's words (`rmi` exits 2 for it).
#[derive(Debug, thiserror::Error)]
#[error("image used by {container}: image is in use by a container: consider listing external containers and force-removing image")]
pub struct ImageInUse {
    pub image: Digest,
    pub container: String,
}

/// Makes the store's folder reachable by its owner only (0700), as podman's storage
/// is: it holds images' root file systems, containers' and builds' among them, with
/// their setuid files and device nodes as the images made them; reachable by every
/// local user, an image's setuid-root binary or 0666 block device was theirs
/// (moby's CVE-2021-41091). A folder made before is tightened too.
fn private(root: &Path) -> Result<(), TransportError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(root).map_err(crate::files::io(root, "reading"))?;
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700))
            .map_err(crate::files::io(root, "making private"))?;
    }
    Ok(())
}

impl LocalStore {
    pub fn open(root: &Path) -> Result<Arc<LocalStore>, TransportError> {
        std::fs::create_dir_all(root).map_err(crate::files::io(root, "creating"))?;
        private(root)?;
        let lock_path = root.join("lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(crate::files::io(&lock_path, "opening"))?;
        lock.lock_shared()
            .map_err(crate::files::io(&lock_path, "locking"))?;
        let store = Arc::new(LocalStore {
            root: root.to_path_buf(),
            blobs: BlobStore::open(root).map_err(once)?,
            db: Mutex::new(db::open(&root.join("images.db"))?),
            lock,
        });
        if let Err(e) = store.sweep_uploads() {
            // Only tidying: the command can still do its work.
            tracing::debug!("leaving abandoned uploads: {e}");
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding it cannot leave SQLite half-changed (transactions
        // roll back on drop), so a poisoned lock is still usable.
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction) -> Result<T, TransportError>,
    ) -> Result<T, TransportError> {
        db::write(&mut self.conn(), f)
    }

    /// Whether the store has blob `d`, whole.
    pub fn has_blob(&self, d: &Digest) -> Result<bool, TransportError> {
        Ok(db::blob_size(&self.conn(), d)?.is_some() && self.blobs.contains(d))
    }

    /// Stores blob `d` from `stream`: an upload file written and hashed on a blocking
    /// thread, committed (verify, fsync, rename), then recorded.
    pub async fn put_blob(
        self: &Arc<Self>,
        d: &Digest,
        stream: ByteStream,
    ) -> Result<(), TransportError> {
        let id = uuid::Uuid::new_v4().to_string();
        let (store, id2, d2) = (self.clone(), id.clone(), d.clone());
        let result =
            crate::files::consume_blocking(stream, &format!("storing blob {d}"), move |chunks| {
                let mut w = store.blobs.create_upload(&id2).map_err(once)?;
                for chunk in chunks {
                    w.write(&chunk.map_err(|source| TransportError::Io {
                        context: format!("receiving blob {d2}"),
                        source,
                    })?)
                    .map_err(once)?;
                }
                let size = store.blobs.commit(w, &d2).map_err(once)?;
                db::add_blob(&store.conn(), &d2, size)
            })
            .await;
        if result.is_err() {
            let _ = self.blobs.remove_upload(&id);
        }
        result
    }

    /// A blob written from synchronous code (a layer being packed, a config): bytes go
    /// to an upload file as they come, hashed; [`LocalStore::commit_blob`] keeps it.
    pub fn blob_sink(&self) -> Result<BlobSink, TransportError> {
        let id = uuid::Uuid::new_v4().to_string();
        Ok(BlobSink {
            writer: Some(self.blobs.create_upload(&id).map_err(once)?),
            id,
            blobs: self.blobs.clone(),
        })
    }

    /// Verifies that a sink's bytes are blob `d`, keeps them and records the blob.
    pub fn commit_blob(&self, mut sink: BlobSink, d: &Digest) -> Result<u64, TransportError> {
        let writer = sink
            .writer
            .take()
            .ok_or_else(|| TransportError::Unsupported("a blob sink committed twice".into()))?;
        let size = self.blobs.commit(writer, d).map_err(once)?;
        db::add_blob(&self.conn(), d, size)?;
        Ok(size)
    }

    /// Stores a small blob held in memory (a config); returns its digest.
    pub fn put_blob_bytes(&self, bytes: &[u8]) -> Result<Digest, TransportError> {
        let d = Digest::sha256_of(bytes);
        let mut sink = self.blob_sink()?;
        std::io::Write::write_all(&mut sink, bytes).map_err(|source| TransportError::Io {
            context: format!("storing blob {d}"),
            source,
        })?;
        self.commit_blob(sink, &d)?;
        Ok(d)
    }

    pub async fn blob(&self, d: &Digest) -> Result<ByteStream, TransportError> {
        let file = self.blob_file(d)?;
        Ok(Box::pin(tokio_util::io::ReaderStream::with_capacity(
            tokio::fs::File::from_std(file),
            1 << 20,
        )))
    }

    /// Opens blob `d` for reading (a layer to unpack).
    pub fn open_blob(&self, d: &Digest) -> Result<File, TransportError> {
        self.blob_file(d)
    }

    /// The layers of image `id`, bottom first, from the manifest it was stored with.
    pub fn layers(&self, id: &Digest) -> Result<Vec<Digest>, TransportError> {
        let img = db::image(&self.conn(), id)?.ok_or_else(|| ImageNotKnown(id.to_string()))?;
        Ok(self
            .image_manifest(&img)?
            .layers
            .into_iter()
            .map(|l| l.digest)
            .collect())
    }

    /// The manifest image `img` was last stored with, parsed.
    pub fn image_manifest(&self, img: &Image) -> Result<Manifest, TransportError> {
        let raw = self.manifest("", &img.digest.to_string())?;
        Manifest::parse(raw.media_type.as_deref(), &raw.bytes)
            .map_err(|e| TransportError::Corrupt(format!("manifest {}: {e}", img.digest)))
    }

    /// Image `id`'s config as JSON (every field, for inspect, containers and builds).
    /// Its shape is checked here, once for every caller that edits it: an object, with
    /// `rootfs` an object and `history` a list where present. A config such as
    /// `{"rootfs": "x"}` parses as an image config, and editing it as JSON panicked.
    pub fn image_config(&self, id: &Digest) -> Result<serde_json::Value, TransportError> {
        let config: serde_json::Value = serde_json::from_slice(&self.config(id)?)
            .map_err(|e| TransportError::Corrupt(format!("config {id}: {e}")))?;
        let bad = |what: &str| TransportError::Corrupt(format!("config {id}: {what}"));
        let Some(fields) = config.as_object() else {
            return Err(bad("not a JSON object"));
        };
        if fields
            .get("rootfs")
            .is_some_and(|r| !r.is_object() && !r.is_null())
        {
            return Err(bad("rootfs is not an object"));
        }
        if fields
            .get("history")
            .is_some_and(|h| !h.is_array() && !h.is_null())
        {
            return Err(bad("history is not a list"));
        }
        Ok(config)
    }

    fn blob_file(&self, d: &Digest) -> Result<File, TransportError> {
        let (file, _) = self
            .blobs
            .open_blob(d)
            .map_err(once)?
            .ok_or_else(|| TransportError::NotFound(format!("blob {d} in the local store")))?;
        Ok(file)
    }

    /// An image's config, read whole (bounded: configs are small).
    pub fn config(&self, id: &Digest) -> Result<Vec<u8>, TransportError> {
        let mut bytes = Vec::new();
        self.blob_file(id)?
            .take(MAX_CONFIG)
            .read_to_end(&mut bytes)
            .map_err(|source| TransportError::Io {
                context: format!("reading config {id}"),
                source,
            })?;
        Ok(bytes)
    }

    /// The manifest named `repo:reference`, or with a digest reference, that manifest.
    pub fn manifest(&self, repo: &str, reference: &str) -> Result<RawManifest, TransportError> {
        let conn = self.conn();
        let digest = match reference.parse::<Digest>() {
            Ok(d) => Some(d),
            Err(_) => db::name(&conn, &format!("{repo}:{reference}"))?.map(|(m, _)| m),
        };
        let found = match &digest {
            Some(d) => db::manifest(&conn, d)?,
            None => None,
        };
        match (digest, found) {
            (Some(digest), Some((media_type, bytes, _))) => Ok(RawManifest {
                bytes,
                media_type: Some(media_type),
                digest,
            }),
            _ => Err(TransportError::NotFound(format!(
                "{repo}:{reference} in the local store"
            ))),
        }
    }

    /// Stores a manifest whose blobs (or, for a list, member manifests) are in; names
    /// it `repo:tag` when a tag is given. Returns its digest.
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
        let now = berth_store::unix_now();
        match parsed.kind {
            ManifestKind::Index => {
                let members: Vec<Digest> =
                    parsed.manifests.iter().map(|m| m.digest.clone()).collect();
                let arch = Platform::this_machine().architecture;
                self.write(|tx| {
                    let shown = db::put_list(tx, &digest, media_type, bytes, &members, &arch)?;
                    if let Some(tag) = tag {
                        db::set_name(tx, &format!("{repo}:{tag}"), &digest, &shown)?;
                    }
                    Ok(())
                })?;
            }
            ManifestKind::Image => {
                let config = parsed.config.as_ref().ok_or_else(|| {
                    TransportError::Unsupported(format!(
                        "{repo}: a manifest without a config (schema 1) cannot be stored; \
                         convert it with --format oci"
                    ))
                })?;
                let parsed_config =
                    ImageConfig::parse(&self.config(&config.digest)?).map_err(|e| {
                        TransportError::Corrupt(format!("config {}: {e}", config.digest))
                    })?;
                self.check_replaced_layers(&config.digest, &parsed.layers)?;
                let labels = parsed_config
                    .config
                    .as_ref()
                    .and_then(|c| c.labels.as_ref())
                    .map(|l| serde_json::to_string(l).unwrap_or_else(|_| "{}".into()))
                    .unwrap_or_else(|| "{}".into());
                let image = db::NewImage {
                    id: &config.digest,
                    digest: &digest,
                    media_type,
                    content: bytes,
                    blobs: parsed
                        .layers
                        .iter()
                        .chain([config])
                        .map(|d| d.digest.clone())
                        .collect(),
                    created_text: parsed_config.created.clone(),
                    size: parsed.layers.iter().chain([config]).map(|d| d.size).sum(),
                    labels,
                    architecture: parsed_config.architecture.clone(),
                    os: parsed_config.os.clone(),
                };
                self.write(|tx| {
                    db::put_image(tx, &image, now)?;
                    if let Some(tag) = tag {
                        db::set_name(tx, &format!("{repo}:{tag}"), &digest, &config.digest)?;
                    }
                    Ok(())
                })?;
            }
        }
        Ok(digest)
    }

    /// When image `id` is held already with other layers, `layers` must be the ones
    /// its config names (their diff IDs) before a manifest may replace them: the image
    /// ID is only the config's digest, so a pull or load pairing a trusted image's
    /// config with other layers would otherwise have them pushed, saved and shown as
    /// that image's. The same image recompressed (other digests, the same content)
    /// passes. A new image is not checked here (containers and builds check each layer
    /// as they unpack it): this costs a decompression only when layers change.
    fn check_replaced_layers(
        &self,
        id: &Digest,
        layers: &[berth_image::Descriptor],
    ) -> Result<(), TransportError> {
        let Some(img) = db::image(&self.conn(), id)? else {
            return Ok(());
        };
        // A held manifest that cannot be read (damaged) does not block the pull that
        // repairs it; the new layers are checked as for a change.
        if let Ok(held) = self.image_manifest(&img) {
            let same = held.layers.iter().map(|l| &l.digest);
            if same.eq(layers.iter().map(|l| &l.digest)) {
                return Ok(());
            }
        }
        let config = self.image_config(id)?;
        let diff_ids = berth_image::diff_ids::diff_ids(&config, layers.len())
            .map_err(|e| TransportError::Corrupt(format!("image {id}: {e}")))?;
        for (layer, diff_id) in layers.iter().zip(&diff_ids) {
            let file = self.open_blob(&layer.digest)?;
            let actual = berth_rootfs::stored_layer_diff_id(file)
                .map_err(|e| TransportError::Corrupt(format!("layer {}: {e}", layer.digest)))?;
            if &actual != diff_id {
                return Err(TransportError::Corrupt(format!(
                    "layer {} holds {actual}, where image {id}'s config names {diff_id}: \
                     not that image's layer (the store keeps the image it has)",
                    layer.digest
                )));
            }
        }
        Ok(())
    }

    /// The signature blobs of manifest `d` (none when it has none).
    pub fn signatures(&self, d: &Digest) -> Result<Vec<Vec<u8>>, TransportError> {
        db::signatures(&self.conn(), d)
    }

    /// Keeps signature blobs with manifest `d` (stored), after those it has; a blob it
    /// has already is not added twice.
    pub fn add_signatures(&self, d: &Digest, blobs: &[Vec<u8>]) -> Result<(), TransportError> {
        if db::manifest(&self.conn(), d)?.is_none() {
            return Err(TransportError::NotFound(format!(
                "manifest {d} in the local store"
            )));
        }
        self.write(|tx| db::add_signatures(tx, d, blobs))
    }

    /// Every image, newest first.
    pub fn images(&self) -> Result<Vec<Image>, TransportError> {
        db::images(&self.conn())
    }

    /// Finds an image as podman does: by ID or a unique prefix of it, by full name,
    /// by `name@digest`, or by a short name (`alpine`, `library/alpine:3`) that one
    /// stored name ends with (`localhost/` first, then `docker.io/`).
    pub fn find(&self, spec: &str) -> Result<Image, TransportError> {
        Ok(self.find_named(spec)?.0)
    }

    /// [`LocalStore::find`], with the name `spec` matched when it was a name.
    pub fn find_named(&self, spec: &str) -> Result<(Image, Option<String>), TransportError> {
        let conn = self.conn();
        let not_known = || TransportError::Local(ImageNotKnown(spec.to_string()));
        let image = |id: &Digest| db::image(&conn, id)?.ok_or_else(not_known);
        let hex = spec.strip_prefix("sha256:").unwrap_or(spec);
        if !hex.is_empty() && hex.len() <= 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let ids = db::ids_with_prefix(&conn, &hex.to_ascii_lowercase())?;
            match ids.as_slice() {
                [one] => return Ok((image(one)?, None)),
                [] => {}
                _ => {
                    return Err(TransportError::Unsupported(format!(
                        "{spec}: more than one image ID starts so; give more of it"
                    )))
                }
            }
        }
        let r: ImageReference = spec.parse().map_err(|_| not_known())?;
        if let Some(d) = r.digest() {
            return match db::manifest(&conn, d)? {
                Some((_, _, Some(id))) => Ok((image(&id)?, None)),
                _ => Err(not_known()),
            };
        }
        let tag = r.tag().map_or("latest", |t| t.as_str());
        if r.is_qualified() {
            let name = format!("{}:{tag}", r.name());
            return match db::name(&conn, &name)? {
                Some((_, id)) => Ok((image(&id)?, Some(name))),
                None => Err(not_known()),
            };
        }
        // Short: as typed, `alpine` is stored as docker.io/library/alpine.
        let typed = spec.split([':', '@']).next().unwrap_or(spec);
        let mut candidates = db::names_ending(&conn, typed, tag)?;
        candidates.sort_by_key(|(name, _)| {
            (
                !name.starts_with("localhost/"),
                !name.starts_with("docker.io/"),
                name.clone(),
            )
        });
        match candidates.into_iter().next() {
            Some((name, id)) => Ok((image(&id)?, Some(name))),
            None => Err(not_known()),
        }
    }

    /// Adds `name` (`host/path:tag`) to image `id`.
    pub fn tag(&self, id: &Digest, name: &str) -> Result<(), TransportError> {
        self.write(|tx| {
            let img = db::image(tx, id)?.ok_or_else(|| ImageNotKnown(id.to_string()))?;
            db::set_name(tx, name, &img.digest, id)
        })
    }

    /// Removes some of `id`'s names, or all; returns how many went.
    pub fn untag(&self, id: &Digest, names: Option<&[String]>) -> Result<usize, TransportError> {
        self.write(|tx| db::remove_names(tx, id, names))
    }

    /// Deletes images (with every name they have), then the blob files no image
    /// needs any more. An image a container uses stays (as podman, the others still
    /// go): it is in [`Removed::in_use`], the deleted ones in [`Removed::images`].
    pub fn remove(&self, ids: &[Digest]) -> Result<Removed, TransportError> {
        let (deleted, in_use) = self.write(|tx| {
            let users = db::containers(tx)?;
            let (mut free, mut in_use) = (Vec::new(), Vec::new());
            for id in ids {
                match users.iter().find(|c| &c.image == id) {
                    Some(c) => in_use.push(ImageInUse {
                        image: id.clone(),
                        container: c.id.clone(),
                    }),
                    None => free.push(id.clone()),
                }
            }
            db::remove_images(tx, &free)?;
            Ok((free, in_use))
        })?;
        let mut removed = self.collect_garbage()?;
        removed.images = deleted;
        removed.in_use = in_use;
        Ok(removed)
    }

    /// Records a new container (its name must be free).
    pub fn add_container(&self, c: &ContainerRecord) -> Result<(), TransportError> {
        self.write(|tx| db::add_container(tx, c))
    }

    /// Every container, newest first.
    pub fn containers(&self) -> Result<Vec<ContainerRecord>, TransportError> {
        db::containers(&self.conn())
    }

    /// A container by name, full ID or unique ID prefix.
    pub fn container(&self, spec: &str) -> Result<ContainerRecord, TransportError> {
        let not_known = || TransportError::Container(ContainerNotKnown(spec.to_string()));
        if spec.is_empty() {
            return Err(not_known());
        }
        let found = db::find_containers(&self.conn(), spec)?;
        if let Some(exact) = found.iter().find(|c| c.name == spec || c.id == spec) {
            return Ok(exact.clone());
        }
        match found.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(not_known()),
            _ => Err(TransportError::Unsupported(format!(
                "{spec}: more than one container ID starts so; give more of it"
            ))),
        }
    }

    /// Replaces what a container runs (berth-runtime's JSON).
    pub fn set_container_spec(&self, id: &str, spec: &str) -> Result<(), TransportError> {
        self.write(|tx| db::set_container_spec(tx, id, spec))
    }

    /// Forgets a container (its files are the runtime's to remove).
    pub fn remove_container(&self, id: &str) -> Result<(), TransportError> {
        self.write(|tx| db::remove_container(tx, id))
    }

    /// A build step made before (berth-build's JSON), by its key.
    pub fn cache_get(&self, key: &str) -> Result<Option<String>, TransportError> {
        db::cache_get(&self.conn(), key)
    }

    /// Records a build step's result.
    pub fn cache_put(&self, key: &str, state: &str) -> Result<(), TransportError> {
        let now = berth_store::unix_now();
        self.write(|tx| db::cache_put(tx, key, state, now))
    }

    /// Deletes blob files no image uses and abandoned uploads, when no other berth
    /// process has the store open; else leaves them for the next time.
    pub fn collect_garbage(&self) -> Result<Removed, TransportError> {
        let removed = self.alone(|| {
            let unused = self.write(db::take_unused_blobs)?;
            let mut reclaimed = 0;
            for (d, size) in unused {
                self.blobs.remove_blob(&d).map_err(once)?;
                reclaimed += size;
            }
            self.remove_uploads()?;
            Ok(Removed {
                reclaimed,
                ..Removed::default()
            })
        })?;
        Ok(removed.unwrap_or_default())
    }

    /// Removes the upload files an interrupted pull or import left behind, when no
    /// other berth process has the store open (one that has may be writing them);
    /// returns how many went. Done whenever the store is opened, so a rerun cleans
    /// up after the run that was cut short.
    pub fn sweep_uploads(&self) -> Result<usize, TransportError> {
        if self.blobs.upload_ids().map_err(once)?.is_empty() {
            return Ok(0);
        }
        Ok(self.alone(|| self.remove_uploads())?.unwrap_or(0))
    }

    fn remove_uploads(&self) -> Result<usize, TransportError> {
        let ids = self.blobs.upload_ids().map_err(once)?;
        for id in &ids {
            self.blobs.remove_upload(id).map_err(once)?;
        }
        Ok(ids.len())
    }

    /// Runs `f` holding the store's lock exclusively, if no other process holds it
    /// (without waiting: `None` then), and takes the shared lock back after.
    fn alone<T>(
        &self,
        f: impl FnOnce() -> Result<T, TransportError>,
    ) -> Result<Option<T>, TransportError> {
        let relock = || {
            self.lock
                .lock_shared()
                .map_err(crate::files::io(&self.root.join("lock"), "locking"))
        };
        if self.lock.try_lock().is_err() {
            // flock drops a shared lock before trying for the exclusive one.
            relock()?;
            tracing::debug!("store in use by another berth process; files left for later");
            return Ok(None);
        }
        let result = f();
        relock()?;
        result.map(Some)
    }
}

/// The blob files' errors as the store's, an I/O cause said once: berth-store's
/// `Io` puts its cause both in its message and in its source, so a chain printed
/// whole said it twice (`…: Read-only file system (os error 30): Read-only file
/// system (os error 30)`).
fn once(e: berth_store::StoreError) -> TransportError {
    match e {
        berth_store::StoreError::Io { context, source } => TransportError::Io { context, source },
        other => other.into(),
    }
}

/// See [`LocalStore::blob_sink`]. Dropped without a commit, its upload file goes.
pub struct BlobSink {
    writer: Option<berth_store::BlobWriter>,
    id: String,
    blobs: BlobStore,
}

impl std::io::Write for BlobSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.writer.as_mut() {
            Some(w) => {
                w.write(buf).map_err(std::io::Error::other)?;
                Ok(buf.len())
            }
            None => Err(std::io::Error::other("blob sink already committed")),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for BlobSink {
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            let _ = self.blobs.remove_upload(&self.id);
        }
    }
}

#[cfg(test)]
mod tests;
