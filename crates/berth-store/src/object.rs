//! Blobs in S3-compatible object storage, for `berth serve` replicas that share nothing
//! but a bucket and a PostgreSQL database.
//!
//! Layout under the bucket's prefix:
//! - `blobs/<algorithm>/<first two hex>/<hex>`: one object per blob, as on disk.
//! - `uploads/<id>/data`: the multipart upload of a session, completed and copied to
//!   its blob key once its digest is verified (removed with the session's other objects
//!   when a failure or a crash leaves it there).
//! - `uploads/<id>/tail-<n>`: the bytes of a session after its last whole part.
//!
//! An upload is sent in parts of one size (the last may be shorter): R2 and GCS's XML
//! API refuse anything else. Between two requests nothing stays in a replica: the
//! [`UploadState`] (offset, the part ETags, the tail object, the saved SHA-256 state) is
//! kept in the metadata database by the caller, so the next chunk may reach any
//! replica, and none re-reads what was sent to finish the digest.
//!
//! A chunk is all or nothing: its parts and tail are written, then the new state is
//! stored (compare-and-set on the old one, through the caller's [`SessionRow`]). A
//! chunk that breaks off, or loses the race, leaves the session's state as it was.
//!
//! Part numbers are reserved before they are written: two requests on one session at
//! once (two replicas) would otherwise resume from one state and write the same part
//! numbers, the loser replacing parts the winner's state names (a completion then
//! fails on S3's ETag check, or, on a service that checks none, assembles the loser's
//! bytes under the winner's digest). Before each part a chunk stores the session's
//! state plus [`Reserved`] (compare-and-set), so only one chunk per state gets past
//! its first part, and a session whose state holds another chunk's reservation takes
//! no other chunk. Numbers stay consecutive (object_store completes parts `1..=n`, and
//! s3s-fs refuses gaps): a chunk that gives up after its parts landed hands its numbers
//! back; one that cannot know (a part failed, the replica died) leaves the session
//! refusing chunks until the sweeper ends it, and the client starts the blob again.

use std::sync::Arc;
use std::time::Duration;

use berth_image::{Algorithm, Digest, Hasher};
use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{GetOptions, GetRange, ObjectStore, PutPayload};
use serde::{Deserialize, Serialize};

use crate::meta::MetaStore;
use crate::{Result, StoreError};

/// Size of every part but the last: S3's smallest allowed is 5 MiB; 8 MiB allows blobs
/// up to 78 GiB within S3's 10,000 parts, with one part in memory per upload.
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;

/// Where the blobs are and how to reach them.
#[derive(Clone, PartialEq, Eq)]
pub struct ObjectConfig {
    pub bucket: String,
    /// Key prefix inside the bucket, without slashes at either end (may be empty).
    pub prefix: String,
    /// The service's URL, for anything but AWS (`http://127.0.0.1:9000`).
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// `https://endpoint/bucket/key` instead of `https://bucket.endpoint/key`: what
    /// MinIO, Garage and most self-hosted services want.
    pub path_style: bool,
    /// Credentials; when unset, the `AWS_*` variables (and instance metadata) are used.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub part_size: usize,
}

impl ObjectConfig {
    /// Parses `s3://BUCKET[/PREFIX]`.
    pub fn from_url(url: &str) -> std::result::Result<ObjectConfig, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{url:?}: an object store is s3://BUCKET[/PREFIX]"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid_bucket {
            return Err(format!(
                "{bucket:?} is not a bucket name (3 to 63 lower-case letters, digits, '-' and '.')"
            ));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|p| p == "." || p == "..") {
            return Err(format!("{prefix:?}: the prefix may not contain . or .."));
        }
        Ok(ObjectConfig {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            endpoint: None,
            region: None,
            path_style: false,
            access_key_id: None,
            secret_access_key: None,
            part_size: DEFAULT_PART_SIZE,
        })
    }
}

/// Shows the configuration without the secret key (settings are logged).
impl std::fmt::Debug for ObjectConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectConfig")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("access_key_id", &self.access_key_id)
            .field("part_size", &self.part_size)
            .finish_non_exhaustive()
    }
}

/// A session's progress, kept by the caller between chunks (as JSON in the metadata).
/// States saved before [`Reserved`] existed read as states without one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadState {
    /// Bytes received so far.
    pub len: u64,
    /// The multipart upload, once a whole part was sent.
    multipart: Option<String>,
    /// ETags of the parts sent, in order; each is `part_size` bytes.
    parts: Vec<String>,
    /// Name of the object that holds the bytes after the last part.
    tail: Option<String>,
    /// The hash of the `len` bytes, saved ([`Hasher::save`]).
    hash: Vec<u8>,
    /// Part numbers after `parts` that one chunk in progress took (see the module's
    /// documentation). Never written when absent, so that older states read the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reserved: Option<Reserved>,
}

/// Part numbers `parts.len() + 1 ..= parts.len() + count` belong to chunk `by` (a
/// random token: the compare-and-set also counts a state already equal to the new one
/// as won, so two chunks' reservations must never be the same text) until `until`
/// (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reserved {
    by: String,
    count: usize,
    /// A reservation is renewed before each part; one not renewed for
    /// [`RESERVATION_LEASE`] belongs to a chunk that died (its replica killed, its
    /// part's upload failed), and another chunk may take the numbers over.
    #[serde(default)]
    until: i64,
}

/// How long a chunk's reservation of part numbers holds without being renewed. A
/// chunk renews it right before each part it sends, so only one part's upload (bounded
/// by the S3 client's timeouts and retries, well under a minute) can still be on its
/// way when it lapses; a chunk whose replica died or whose part failed stops the
/// session's other chunks no longer than this.
pub const RESERVATION_LEASE: Duration = Duration::from_secs(300);

/// The row that holds an upload session's state, for the compare-and-set an
/// [`ObjectUpload`] makes before each part and when it saves
/// ([`crate::MetaStore::set_upload_state`]'s contract: `None` means no state yet; true
/// when the state was `old` and now is `new`, or already was `new`).
pub trait SessionRow: Send + Sync {
    fn swap(&self, old: Option<String>, new: String) -> BoxFuture<'_, Result<bool>>;
}

impl UploadState {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_json(s: &str) -> Result<UploadState> {
        serde_json::from_str(s)
            .map_err(|e| StoreError::Corrupt(format!("upload session state: {e}")))
    }

    /// Whether a chunk holds part numbers of the session at `now` (unix seconds): it
    /// is being written, or the chunk that was writing it could not hand them back and
    /// its lease has not lapsed. No other chunk may start meanwhile.
    pub fn in_use(&self, now: i64) -> bool {
        self.reserved.as_ref().is_some_and(|r| r.until > now)
    }
}

/// Blobs in a bucket. Cheap to clone.
#[derive(Clone)]
pub struct ObjectBlobs {
    s3: Arc<AmazonS3>,
    /// Streams blobs to the server's clients: see [`Streaming`].
    streaming: Arc<Streaming>,
    prefix: String,
    part_size: usize,
    runtime: Arc<Runtime>,
}

/// A second client, for the blob reads of one runtime only: the first multi-thread
/// runtime other than the client's own that streams a blob (`berth serve`'s). Its
/// connections run on that runtime, so a body passes from the bucket's socket to the
/// client's without crossing runtimes, a thread wake-up fewer per chunk (~32 KiB from
/// a bucket slower than berth): relaying 1 GiB from s3s-fs on 2 cores cost 1.8-2.2 s
/// of CPU through the client's runtime and 1.0-1.2 s this way, 20-35% faster. Bound to
/// one runtime, it never serves a caller whose thread could block that runtime (a
/// current-thread runtime's synchronous read) or a caller after that runtime is gone.
struct Streaming {
    s3: AmazonS3,
    runtime: std::sync::OnceLock<tokio::runtime::Id>,
}

/// The client's own runtime: every request and connection runs there
/// ([`crate::object_http`]), whoever waits for it: a handler of any runtime, or a
/// synchronous caller (the collector's threads, the metadata's fences, a command) on
/// any thread. A connection never belongs to a runtime that its user blocks.
struct Runtime(Option<tokio::runtime::Runtime>);

impl Runtime {
    fn handle(&self) -> &tokio::runtime::Handle {
        self.0
            .as_ref()
            .expect("the runtime lives until dropped")
            .handle()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Dropped from async code too: do not wait for its tasks there.
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

fn object_error(context: impl Into<String>) -> impl FnOnce(object_store::Error) -> StoreError {
    let context = context.into();
    move |source| StoreError::Object {
        context,
        source: Box::new(source),
    }
}

fn is_not_found(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
}

/// An abort's answer for a multipart upload the service no longer knows (aborted, or
/// completed by an earlier try of a commit): S3, MinIO and Garage say `NoSuchUpload`
/// (404), s3s-fs `AccessDenied` (403). A refusal for want of permission looks the same
/// and leaves the upload to the bucket's lifecycle rule, as a crash does; failing
/// instead would keep the session forever, its row stopping every sweep.
fn is_unknown_upload(e: &object_store::Error) -> bool {
    matches!(
        e,
        object_store::Error::NotFound { .. } | object_store::Error::PermissionDenied { .. }
    )
}

impl ObjectBlobs {
    /// Connects to the bucket and checks that it answers.
    pub fn open(config: &ObjectConfig) -> Result<ObjectBlobs> {
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&config.bucket)
            .with_virtual_hosted_style_request(!config.path_style)
            // Bounded: a store that stays down is reported (503) within seconds.
            .with_retry(object_store::RetryConfig {
                backoff: object_store::BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(2),
                    base: 2.0,
                },
                max_retries: 4,
                retry_timeout: Duration::from_secs(15),
            });
        if let Some(endpoint) = &config.endpoint {
            b = b
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(region) = &config.region {
            b = b.with_region(region);
        }
        if let Some(key) = &config.access_key_id {
            b = b.with_access_key_id(key);
        }
        if let Some(secret) = &config.secret_access_key {
            b = b.with_secret_access_key(secret);
        }
        let part_size = config.part_size.max(5 * 1024 * 1024);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("berth-objects")
            .enable_all()
            .build()
            .map_err(StoreError::io("starting the object storage client"))?;
        let configuring = || object_error(format!("configuring s3://{}", config.bucket));
        let streaming = Streaming {
            s3: b.clone().build().map_err(configuring())?,
            runtime: std::sync::OnceLock::new(),
        };
        // Every request (and its connection) runs on this runtime, whoever awaits it.
        let s3 = b
            .with_http_connector(crate::object_http::OnRuntime::new(runtime.handle().clone()))
            .build()
            .map_err(configuring())?;
        let blobs = ObjectBlobs {
            s3: Arc::new(s3),
            streaming: Arc::new(streaming),
            prefix: config.prefix.clone(),
            part_size,
            runtime: Arc::new(Runtime(Some(runtime))),
        };
        // A wrong bucket, endpoint or key is said at start-up, not at the first push.
        let probe = blobs.key("berth-probe");
        let s3 = blobs.s3.clone();
        match blobs.block_on(async move { s3.head(&probe).await }) {
            Ok(_) => Ok(blobs),
            Err(e) if is_not_found(&e) => Ok(blobs),
            Err(e) => Err(object_error(format!("reaching s3://{}", config.bucket))(e)),
        }
    }

    fn key(&self, rest: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(rest)
        } else {
            Path::from(format!("{}/{rest}", self.prefix))
        }
    }

    /// The client that streams a blob to the caller: [`Streaming`]'s on the runtime it
    /// is bound to, the runtime-safe one anywhere else.
    fn streaming_client(&self) -> &AmazonS3 {
        use tokio::runtime::{Handle, RuntimeFlavor};
        let Ok(here) = Handle::try_current() else {
            return &self.s3;
        };
        if here.runtime_flavor() != RuntimeFlavor::MultiThread
            || here.id() == self.runtime.handle().id()
        {
            return &self.s3;
        }
        if *self.streaming.runtime.get_or_init(|| here.id()) == here.id() {
            &self.streaming.s3
        } else {
            &self.s3
        }
    }

    /// The key of a blob.
    pub fn blob_key(&self, digest: &Digest) -> Path {
        let hex = digest.hex();
        self.key(&format!(
            "blobs/{}/{}/{hex}",
            digest.algorithm().as_str(),
            &hex[..2]
        ))
    }

    fn upload_key(&self, id: &str, name: &str) -> Path {
        self.key(&format!("uploads/{id}/{name}"))
    }

    /// The size of a stored blob, `None` when it is not stored.
    pub async fn size(&self, digest: &Digest) -> Result<Option<u64>> {
        self.key_size(&self.blob_key(digest)).await
    }

    /// Size of the object at `key`, if there is one.
    async fn key_size(&self, key: &Path) -> Result<Option<u64>> {
        match self.s3.head(key).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(object_error(format!("looking up {key}"))(e)),
        }
    }

    /// Bytes `start..start + len` of a blob, streamed as they arrive; `None` when the
    /// blob is not stored.
    pub async fn read(
        &self,
        digest: &Digest,
        start: u64,
        len: u64,
    ) -> Result<Option<BoxStream<'static, std::io::Result<Bytes>>>> {
        if len == 0 {
            return Ok(Some(futures_util::stream::empty().boxed()));
        }
        let options = GetOptions {
            range: Some(GetRange::Bounded(start..start + len)),
            ..GetOptions::default()
        };
        let client = self.streaming_client();
        match client.get_opts(&self.blob_key(digest), options).await {
            Ok(got) => Ok(Some(
                got.into_stream().map_err(std::io::Error::other).boxed(),
            )),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(object_error(format!("reading blob {digest}"))(e)),
        }
    }

    /// A whole small blob (a signature payload, a config) in memory, `None` when it is
    /// not stored or larger than `limit`.
    pub async fn read_small(&self, digest: &Digest, limit: u64) -> Result<Option<Bytes>> {
        match self.size(digest).await? {
            Some(size) if size <= limit => {}
            _ => return Ok(None),
        }
        match self.s3.get(&self.blob_key(digest)).await {
            Ok(got) => got
                .bytes()
                .await
                .map(Some)
                .map_err(object_error(format!("reading blob {digest}"))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(object_error(format!("reading blob {digest}"))(e)),
        }
    }

    /// A whole blob as a blocking reader, with its size, for synchronous code that
    /// streams it (the catalog's layer analysis): the bytes arrive as they are read.
    /// Never call it, or read from it, on a thread that drives a runtime.
    pub fn reader(&self, digest: &Digest) -> Result<Option<(BlobReader, u64)>> {
        let Some(size) = self.size_sync(digest)? else {
            return Ok(None);
        };
        let Some(stream) = self.block_on(self.read(digest, 0, size))? else {
            return Ok(None);
        };
        let reader = tokio_util::io::StreamReader::new(stream);
        let bridge =
            tokio_util::io::SyncIoBridge::new_with_handle(reader, self.runtime.handle().clone());
        Ok(Some((BlobReader(Box::new(bridge)), size)))
    }

    /// [`ObjectBlobs::size`] from synchronous code.
    pub fn size_sync(&self, digest: &Digest) -> Result<Option<u64>> {
        self.block_on(self.size(digest))
    }

    /// Stores the bytes of `file` as blob `digest` if they hash to it (a migration's
    /// copy, a blob the pull-through cache fetched): streamed in parts, verified as
    /// they pass, from synchronous code. While its multipart upload is open it is
    /// upload session `id` of `repo` in `meta` (its state, touched every minute), so
    /// that if this process dies mid-way the upload sweeper of any replica aborts it;
    /// the session goes once the blob is stored or its parts are thrown away.
    pub fn put_file(
        &self,
        meta: &dyn MetaStore,
        repo: &str,
        id: &str,
        digest: &Digest,
        file: std::fs::File,
    ) -> Result<u64> {
        let row = FileRow {
            meta,
            repo,
            id,
            created: std::sync::atomic::AtomicBool::new(false),
        };
        let mut up = self.block_on(self.resume(id, None, &row))?;
        let sent = self.send_file(&mut up, file, digest, &mut || {
            if row.created() {
                meta.touch_upload(id)?;
            }
            Ok(())
        });
        let (done, settled) = match sent {
            Ok(()) => {
                let done = self.block_on(up.commit(digest));
                // A mismatch threw the parts away; another failure, or a clean-up that
                // failed after the blob was stored, may have left them.
                let settled = matches!(
                    done,
                    Ok(Committed { cleaned: true, .. }) | Err(StoreError::DigestMismatch { .. })
                );
                (done.map(|c| c.len), settled)
            }
            Err(e) => {
                let base = up.base().clone();
                let _ = self.block_on(up.abandon());
                let settled = self.block_on(self.discard(id, &base)).is_ok();
                (Err(e), settled)
            }
        };
        // Parts possibly left: the session stays for the sweeper.
        if row.created() && settled {
            meta.delete_upload(id)?;
        }
        done
    }

    /// Sends `file` into `up`, calling `touch` about once a minute (the session's row
    /// is created with the first part's reservation, [`FileRow`]).
    fn send_file(
        &self,
        up: &mut ObjectUpload<'_>,
        mut file: std::fs::File,
        digest: &Digest,
        touch: &mut dyn FnMut() -> Result<()>,
    ) -> Result<()> {
        use std::io::Read;
        const TOUCH_EVERY: Duration = Duration::from_secs(60);
        let mut buf = vec![0u8; 1 << 20];
        let mut touched = std::time::Instant::now();
        loop {
            // A blocking read on this (synchronous) caller's thread.
            let n = file
                .read(&mut buf)
                .map_err(StoreError::io(format!("reading blob {digest}")))?;
            if n == 0 {
                return Ok(());
            }
            self.block_on(up.write(&buf[..n]))?;
            if touched.elapsed() > TOUCH_EVERY {
                touch()?;
                touched = std::time::Instant::now();
            }
        }
    }

    /// [`ObjectBlobs::read_small`] from synchronous code.
    pub fn read_small_sync(&self, digest: &Digest, limit: u64) -> Result<Option<Bytes>> {
        self.block_on(self.read_small(digest, limit))
    }

    /// A URL that lets its holder GET the blob for `ttl`, with no credentials.
    pub async fn presigned_get(&self, digest: &Digest, ttl: Duration) -> Result<String> {
        self.s3
            .signed_url(http::Method::GET, &self.blob_key(digest), ttl)
            .await
            .map(|u| u.to_string())
            .map_err(object_error(format!("signing a URL for blob {digest}")))
    }

    /// Removes a blob; a missing one is not an error.
    pub async fn remove(&self, digest: &Digest) -> Result<()> {
        self.remove_key(&self.blob_key(digest)).await
    }

    /// Continues session `id` for the request that ends it as blob `expected`, which
    /// brings `body_len` more bytes (`None`: unknown). When the bucket holds `expected`
    /// already with the size the session will have, nothing is sent or read back: the
    /// bytes are only hashed, so that the commit still checks them, and the session's
    /// tail is not read. That is what lets a PUT retried after an earlier try stored the
    /// blob and then failed (its link, its clean-up) finish: that try's tail and
    /// multipart upload are gone, while the session's row still names them. It also
    /// spares sending a blob the bucket has. Otherwise it is [`ObjectBlobs::resume`].
    pub async fn resume_for<'a>(
        &'a self,
        id: &str,
        stored: Option<&str>,
        row: &'a dyn SessionRow,
        expected: &Digest,
        body_len: Option<u64>,
    ) -> Result<ObjectUpload<'a>> {
        let state = parse_stored(stored)?;
        let total = body_len.and_then(|b| state.len.checked_add(b));
        // Only a digest of the algorithm hashed as the bytes pass can be checked
        // without the bytes (the saved state is SHA-256's).
        if expected.algorithm() != Algorithm::Sha256 || total.is_none() {
            return self.resume(id, stored, row).await;
        }
        if self.size(expected).await? != total {
            return self.resume(id, stored, row).await;
        }
        // Even while another chunk holds part numbers (or a commit that completed the
        // upload died before handing them back): this one sends nothing.
        let mut up = self.open_session(id, stored, row, state, BytesMut::new())?;
        up.hash_only = true;
        Ok(up)
    }

    /// Continues session `id` from its state as stored in `row` (`None`: a new
    /// session): the tail is read back so that the next part is whole. Refused
    /// ([`StoreError::UploadChanged`]) while another chunk holds part numbers.
    pub async fn resume<'a>(
        &'a self,
        id: &str,
        stored: Option<&str>,
        row: &'a dyn SessionRow,
    ) -> Result<ObjectUpload<'a>> {
        let mut state = parse_stored(stored)?;
        if state.in_use(crate::unix_now()) {
            return Err(StoreError::UploadChanged(id.to_string()));
        }
        // A lapsed reservation's chunk is gone: its numbers are written again from the
        // parts the state names (taking over is this chunk's first compare-and-set).
        state.reserved = None;
        let mut buf = BytesMut::with_capacity(self.part_size);
        if let Some(tail) = &state.tail {
            let key = self.upload_key(id, tail);
            let got = self
                .s3
                .get(&key)
                .await
                .map_err(object_error(format!("reading upload {id}'s tail")))?;
            let mut stream = got.into_stream();
            while let Some(bytes) = stream.next().await {
                buf.extend_from_slice(&bytes.map_err(object_error(format!("reading {key}")))?);
            }
        }
        let expected_tail = state.len - state.parts.len() as u64 * self.part_size as u64;
        if buf.len() as u64 != expected_tail {
            return Err(StoreError::Corrupt(format!(
                "upload {id}: its tail has {} bytes, {expected_tail} expected",
                buf.len()
            )));
        }
        self.open_session(id, stored, row, state, buf)
    }

    /// Session `id` at `state` (`stored` in `row`), its tail's bytes in `buf`.
    fn open_session<'a>(
        &'a self,
        id: &str,
        stored: Option<&str>,
        row: &'a dyn SessionRow,
        state: UploadState,
        buf: BytesMut,
    ) -> Result<ObjectUpload<'a>> {
        let hasher = if state.len == 0 {
            Algorithm::Sha256.hasher()
        } else {
            Hasher::restore(&state.hash)
                .ok_or_else(|| StoreError::Corrupt(format!("upload {id}: bad hash state")))?
        };
        Ok(ObjectUpload {
            blobs: self,
            row,
            id: id.to_string(),
            stored: stored.map(str::to_string),
            token: uuid::Uuid::new_v4().to_string(),
            held: 0,
            base: state.clone(),
            hasher,
            len: state.len,
            multipart: state.multipart,
            parts: state.parts,
            buf,
            pending: None,
            broken: false,
            hash_only: false,
        })
    }

    /// Throws away what session `state` stored: its multipart upload, the object that
    /// upload became if it was completed (a commit that failed or was killed before
    /// its copy to the blob key, or before removing it, leaves `uploads/<id>/data`,
    /// which no abort removes), and its tail. What is missing already is not an error
    /// (two replicas may sweep the same session).
    pub async fn discard(&self, id: &str, state: &UploadState) -> Result<()> {
        if let Some(mp) = &state.multipart {
            let key = self.upload_key(id, "data");
            match self.s3.abort_multipart(&key, &mp.clone()).await {
                Ok(()) => {}
                Err(e) if is_unknown_upload(&e) => {}
                Err(e) => return Err(object_error(format!("aborting upload {id}"))(e)),
            }
            self.remove_key(&key).await?;
        }
        if let Some(tail) = &state.tail {
            self.remove_key(&self.upload_key(id, tail)).await?;
        }
        Ok(())
    }

    /// Removes the tail a newer state replaced.
    pub async fn forget_tail(&self, id: &str, old: &UploadState, new: &UploadState) -> Result<()> {
        match &old.tail {
            Some(t) if new.tail.as_ref() != Some(t) => {
                self.remove_key(&self.upload_key(id, t)).await
            }
            _ => Ok(()),
        }
    }

    async fn remove_key(&self, key: &Path) -> Result<()> {
        match self.s3.delete(key).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(object_error(format!("removing {key}"))(e)),
        }
    }

    /// Runs `f` on the client's runtime from synchronous code, on any thread: one of
    /// another runtime's (moved off its async threads first) or none.
    fn block_on<F>(&self, f: F) -> F::Output
    where
        F: std::future::Future + Send,
        F::Output: Send,
    {
        let rt = self.runtime.handle();
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| rt.block_on(f))
            }
            // A current-thread runtime cannot give its thread up: wait on another.
            Ok(_) => std::thread::scope(|s| {
                s.spawn(|| rt.block_on(f))
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
            }),
            Err(_) => rt.block_on(f),
        }
    }
}

impl crate::BlobBytes for ObjectBlobs {
    fn has(&self, digest: &Digest) -> Result<bool> {
        self.block_on(self.size(digest)).map(|s| s.is_some())
    }

    fn remove_blob(&self, digest: &Digest) -> Result<()> {
        self.block_on(self.remove(digest))
    }
}

impl crate::fsck::Checkable for ObjectBlobs {
    /// One listing of the `blobs/` prefix (pages of 1,000 keys): fsck's own walk of
    /// the bucket; nothing that serves requests lists it.
    fn stored(&self, each: &mut dyn FnMut(crate::fsck::Stored)) -> Result<()> {
        let prefix = self.key("blobs");
        let under = format!("{prefix}/");
        let s3 = self.s3.clone();
        let listed: Vec<object_store::ObjectMeta> = self
            .block_on(async move { s3.list(Some(&prefix)).try_collect().await })
            .map_err(object_error("listing the blobs"))?;
        for meta in listed {
            let location = meta.location.to_string();
            let digest = location
                .strip_prefix(&under)
                .and_then(|rest| {
                    let (alg, rest) = rest.split_once('/')?;
                    let (_, hex) = rest.split_once('/')?;
                    format!("{alg}:{hex}").parse::<Digest>().ok()
                })
                .filter(|d| self.blob_key(d) == meta.location);
            each(crate::fsck::Stored {
                location,
                digest,
                size: meta.size,
            });
        }
        Ok(())
    }

    fn rehash(&self, digest: &Digest) -> Result<Option<Digest>> {
        let key = self.blob_key(digest);
        match self.block_on(self.hash_key(&key, digest.algorithm())) {
            Ok(d) => Ok(Some(d)),
            Err(StoreError::Object { source, .. }) if is_not_found(&source) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn remove_stored(&self, location: &str) -> Result<()> {
        // Only what lies under blobs/ (what `stored` lists).
        let key = Path::parse(location)
            .ok()
            .filter(|k| k.prefix_matches(&self.key("blobs")))
            .ok_or_else(|| StoreError::Corrupt(format!("{location} is not a key under blobs/")))?;
        self.block_on(self.remove_key(&key))
    }
}

/// A session's state as stored (`None`: none yet).
fn parse_stored(stored: Option<&str>) -> Result<UploadState> {
    stored.map_or(Ok(UploadState::default()), UploadState::from_json)
}

/// [`ObjectBlobs::put_file`]'s session row, created with the first part's reservation
/// (a file under one part needs none). Its calls to the metadata are synchronous: they
/// run on `put_file`'s thread, which waits for the upload anyway, never on a runtime's.
struct FileRow<'a> {
    meta: &'a dyn MetaStore,
    repo: &'a str,
    id: &'a str,
    created: std::sync::atomic::AtomicBool,
}

impl FileRow<'_> {
    fn created(&self) -> bool {
        self.created.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn swap_now(&self, old: Option<&str>, new: &str) -> Result<bool> {
        if !self.created() {
            self.meta.create_upload(self.id, self.repo)?;
            self.created
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        self.meta.set_upload_state(self.id, old, new)
    }
}

impl SessionRow for FileRow<'_> {
    fn swap(&self, old: Option<String>, new: String) -> BoxFuture<'_, Result<bool>> {
        Box::pin(std::future::ready(self.swap_now(old.as_deref(), &new)))
    }
}

/// A blob of the bucket read synchronously ([`ObjectBlobs::reader`]).
pub struct BlobReader(Box<dyn std::io::Read + Send>);

impl std::io::Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

/// A session open for one chunk: bytes are hashed as they pass and sent in whole
/// parts, one part in flight while the next fills.
pub struct ObjectUpload<'a> {
    blobs: &'a ObjectBlobs,
    /// Where the session's state is stored: compared-and-set before each part.
    row: &'a dyn SessionRow,
    id: String,
    /// The state as this chunk last read or stored it: the compare-and-set's old value.
    stored: Option<String>,
    /// This chunk's name in its reservations ([`Reserved::by`]).
    token: String,
    /// How many part numbers after `base`'s parts this chunk holds.
    held: usize,
    /// The state this chunk continues (with the multipart upload it started, if any).
    base: UploadState,
    hasher: Hasher,
    len: u64,
    multipart: Option<String>,
    parts: Vec<String>,
    buf: BytesMut,
    pending: Option<tokio::task::JoinHandle<object_store::Result<PartId>>>,
    /// A write failed: bytes were hashed and counted that no part or tail may hold,
    /// so the chunk cannot be saved or committed, only abandoned.
    broken: bool,
    /// The bucket holds the blob already: bytes are hashed, not sent
    /// ([`ObjectBlobs::resume_for`]).
    hash_only: bool,
}

/// What [`ObjectUpload::commit`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// The blob's size.
    pub len: u64,
    /// Whether the session's own objects (tail, multipart upload, completed `data`) are
    /// gone. Once the blob is at its key, failing to remove them does not fail the
    /// commit: the blob is stored and verified, and the push should go on to link it
    /// rather than be reported failed. The session's stored state still names what is
    /// left, so the caller keeps the session for the sweeper instead of removing it.
    pub cleaned: bool,
}

impl ObjectUpload<'_> {
    /// Bytes in the session so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The state this chunk started from.
    pub fn base(&self) -> &UploadState {
        &self.base
    }

    /// Hashes `bytes` and sends every part they complete, each once its number is
    /// reserved ([`StoreError::UploadChanged`] when another request changed the
    /// session first: nothing of this chunk is written then).
    pub async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        if self.broken {
            return Err(self.unusable());
        }
        let result = self.write_all(bytes).await;
        self.broken = result.is_err();
        result
    }

    fn unusable(&self) -> StoreError {
        StoreError::Corrupt(format!(
            "upload {}: a chunk whose write failed can only be abandoned",
            self.id
        ))
    }

    async fn write_all(&mut self, mut bytes: &[u8]) -> Result<()> {
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        if self.hash_only {
            return Ok(());
        }
        while !bytes.is_empty() {
            let n = bytes.len().min(self.blobs.part_size - self.buf.len());
            self.buf.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.buf.len() == self.blobs.part_size {
                let part = self.buf.split().freeze();
                self.buf.reserve(self.blobs.part_size);
                self.send_part(part).await?;
            }
        }
        Ok(())
    }

    async fn send_part(&mut self, part: Bytes) -> Result<()> {
        self.settle().await?;
        let key = self.blobs.upload_key(&self.id, "data");
        let (mp, created) = match &self.multipart {
            Some(mp) => (mp.clone(), false),
            None => {
                let mp = self
                    .blobs
                    .s3
                    .create_multipart(&key)
                    .await
                    .map_err(object_error(format!("starting upload {}", self.id)))?;
                (mp, true)
            }
        };
        // The reservation also records a new multipart upload before its first part,
        // so that a sweeper can abort it if this replica dies now. (A crash between its
        // creation and that store still leaves one behind: S3's own lifecycle rule for
        // incomplete multipart uploads catches those.)
        let index = self.parts.len();
        if !self.reserve(&mp, index + 1).await? {
            if created {
                // Recorded nowhere: no one else would ever abort it.
                let _ = self.blobs.s3.abort_multipart(&key, &mp).await;
            }
            return Err(StoreError::UploadChanged(self.id.clone()));
        }
        if created {
            self.multipart = Some(mp.clone());
            self.base.multipart = Some(mp.clone());
        }
        let s3 = self.blobs.s3.clone();
        self.pending = Some(
            self.blobs
                .runtime
                .handle()
                .spawn(async move { s3.put_part(&key, &mp, index, PutPayload::from(part)).await }),
        );
        Ok(())
    }

    /// Stores the session's state (`base`, with multipart upload `mp`) holding part
    /// numbers up to `parts` (a count) for this chunk; false when another request
    /// changed the session since this chunk last read or stored it.
    async fn reserve(&mut self, mp: &str, parts: usize) -> Result<bool> {
        let count = parts - self.base.parts.len();
        let state = UploadState {
            multipart: Some(mp.to_string()),
            reserved: Some(Reserved {
                by: self.token.clone(),
                count,
                until: crate::unix_now() + RESERVATION_LEASE.as_secs() as i64,
            }),
            ..self.base.clone()
        };
        let won = self.swap(&state).await?;
        if won {
            self.held = count;
        }
        Ok(won)
    }

    /// Compare-and-set of the session's state from what this chunk last saw to `new`.
    async fn swap(&mut self, new: &UploadState) -> Result<bool> {
        let json = new.to_json();
        let won = self.row.swap(self.stored.clone(), json.clone()).await?;
        if won {
            self.stored = Some(json);
        }
        Ok(won)
    }

    /// Hands back the part numbers this chunk holds: only once none of its parts is in
    /// flight (after [`ObjectUpload::settle`] succeeded), since the next chunk writes
    /// them again. A failure keeps them held: a session that refuses chunks is safe,
    /// a number written by two chunks is not.
    async fn release(&mut self) {
        if self.held > 0 {
            let base = self.base.clone();
            if let Ok(true) = self.swap(&base).await {
                self.held = 0;
            }
        }
    }

    /// Waits for the part in flight and records it.
    async fn settle(&mut self) -> Result<()> {
        if let Some(p) = self.pending.take() {
            let part = p
                .await
                .map_err(|e| StoreError::Corrupt(format!("a part upload task failed: {e}")))?
                .map_err(object_error(format!(
                    "sending a part of upload {}",
                    self.id
                )))?;
            self.parts.push(part.content_id);
        }
        Ok(())
    }

    /// Gives up this chunk: the session stays at [`ObjectUpload::base`]. The part in
    /// flight is waited for, then the part numbers this chunk held are handed back
    /// (the next chunk replaces its parts); a multipart upload this chunk started is in
    /// the session's state already, where `discard` or the sweeper ends it.
    pub async fn abandon(mut self) -> Result<()> {
        if self.settle().await.is_ok() {
            self.release().await;
        }
        Ok(())
    }

    /// Stores what this chunk brought (its last whole part, the new tail) as the
    /// session's state if no other request changed it meanwhile (compare-and-set:
    /// [`StoreError::UploadChanged`] otherwise), removes the tail it replaced, and
    /// returns it.
    pub async fn save(mut self) -> Result<UploadState> {
        if self.hash_only {
            // Its bytes were not kept: such a state would name bytes nowhere stored.
            return Err(StoreError::Corrupt(format!(
                "upload {}: a chunk only checked against a stored blob cannot be saved",
                self.id
            )));
        }
        if self.broken {
            let e = self.unusable();
            self.abandon().await?;
            return Err(e);
        }
        self.settle().await?;
        let tail = if self.buf.is_empty() {
            None
        } else {
            let name = format!("tail-{}", uuid::Uuid::new_v4());
            let key = self.blobs.upload_key(&self.id, &name);
            self.blobs
                .s3
                .put(&key, PutPayload::from(self.buf.split().freeze()))
                .await
                .map_err(object_error(format!("storing upload {}'s tail", self.id)))?;
            Some(name)
        };
        let new = UploadState {
            len: self.len,
            multipart: self.multipart.clone(),
            parts: self.parts.clone(),
            tail,
            hash: self.hasher.save(),
            reserved: None,
        };
        let won = match self.swap(&new).await {
            Ok(won) => won,
            // The write failed, or only its answer was lost. Asked again, the
            // compare-and-set says which (the state already being `new` counts as
            // won), so that a tail no state names is removed, not left behind.
            Err(first) => match self.swap(&new).await {
                Ok(won) => won,
                Err(_) => {
                    tracing::warn!(upload = %self.id, tail = ?new.tail,
                        "a chunk's tail may be named by no state: left in the bucket");
                    return Err(first);
                }
            },
        };
        if !won {
            // Another request extended (or ended) the session meanwhile: this chunk's
            // tail is nobody's.
            let _ = self
                .blobs
                .forget_tail(&self.id, &new, &UploadState::default())
                .await;
            return Err(StoreError::UploadChanged(self.id.clone()));
        }
        self.blobs.forget_tail(&self.id, &self.base, &new).await?;
        Ok(new)
    }

    /// Makes the session's bytes the blob `expected` if they hash to it. On a mismatch
    /// nothing is kept: the session's parts and tail are removed. An object at the
    /// blob's key with the blob's size is kept as it is (content is written once); one
    /// of another size cannot be the blob (a copy cut short) and is replaced.
    pub async fn commit(mut self, expected: &Digest) -> Result<Committed> {
        if self.broken {
            return Err(self.unusable());
        }
        self.settle().await?;
        let blobs = self.blobs;
        let id = self.id.clone();
        let data = blobs.upload_key(&id, "data");
        let dest = blobs.blob_key(expected);
        let sent = UploadState {
            multipart: self.multipart.clone(),
            tail: self.base.tail.clone(),
            ..UploadState::default()
        };
        let same_algorithm = self.hasher.algorithm() == expected.algorithm();
        let actual = std::mem::replace(&mut self.hasher, Algorithm::Sha256.hasher()).finish();
        if same_algorithm && actual != *expected {
            blobs.discard(&id, &sent).await?;
            return Err(StoreError::DigestMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        let len = self.len;
        if self.hash_only {
            // `resume_for` found the blob with this size; the bytes hash to it (above).
            if blobs.size(expected).await? != Some(len) {
                return Err(StoreError::BlobVanished(expected.clone()));
            }
            let cleaned = blobs.tidy(&id, &sent).await;
            return Ok(Committed { len, cleaned });
        }
        let Some(mp) = self.multipart.clone() else {
            // Under one part: the blob is the tail, written straight to its key.
            let bytes = self.buf.split().freeze();
            if !same_algorithm {
                let actual = Digest::of(expected.algorithm(), &bytes);
                if actual != *expected {
                    blobs.discard(&id, &sent).await?;
                    return Err(StoreError::DigestMismatch {
                        expected: expected.clone(),
                        actual,
                    });
                }
            }
            if blobs.size(expected).await? != Some(len) {
                blobs
                    .s3
                    .put(&dest, PutPayload::from(bytes))
                    .await
                    .map_err(object_error(format!("storing blob {expected}")))?;
            }
            let cleaned = blobs.tidy(&id, &sent).await;
            return Ok(Committed { len, cleaned });
        };
        if blobs.size(expected).await? == Some(len) && same_algorithm {
            let cleaned = blobs.tidy(&id, &sent).await;
            return Ok(Committed { len, cleaned });
        }
        // An earlier try of this commit may have completed the upload, then failed
        // (its copy to the blob key): the upload is gone and its bytes are `data`.
        // Otherwise the session could only fail until the sweeper ended it.
        let earlier = match self.complete(&data, &mp).await {
            Ok(()) => false,
            Err(e) if blobs.key_size(&data).await? != Some(len) => return Err(e),
            Err(_) => true,
        };
        // No part can be written to a completed upload: its numbers are free, and a
        // retry of this commit (its link failed) is not refused as a chunk in progress.
        self.release().await;
        let staged = UploadState {
            tail: self.base.tail.clone(),
            ..UploadState::default()
        };
        // Read back: a digest of another algorithm than the one hashed as the bytes
        // passed, or an earlier try's `data`, which may hold other bytes (that try
        // may have been sent another last chunk).
        if !same_algorithm || earlier {
            let actual = blobs.hash_key(&data, expected.algorithm()).await?;
            if actual != *expected {
                blobs.remove_key(&data).await?;
                blobs.discard(&id, &staged).await?;
                return Err(StoreError::DigestMismatch {
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        blobs
            .s3
            .copy(&data, &dest)
            .await
            .map_err(object_error(format!(
                "moving upload {id} to blob {expected}"
            )))?;
        // If removing `data` fails, the session as the caller stored it names the
        // multipart upload, which is how `discard` finds `data` later.
        let removed = blobs.remove_key(&data).await;
        if let Err(e) = &removed {
            tracing::warn!(upload = id, error = %e,
                "a stored blob's upload object is left for the upload sweeper");
        }
        let cleaned = blobs.tidy(&id, &staged).await && removed.is_ok();
        Ok(Committed { len, cleaned })
    }

    /// Sends what is buffered as the last part of multipart upload `mp` and completes
    /// it as `data`.
    async fn complete(&mut self, data: &Path, mp: &str) -> Result<()> {
        let blobs = self.blobs;
        let id = self.id.clone();
        if !self.buf.is_empty() {
            if !self.reserve(mp, self.parts.len() + 1).await? {
                return Err(StoreError::UploadChanged(id));
            }
            let last = self.buf.split().freeze();
            let part = blobs
                .s3
                .put_part(
                    data,
                    &mp.to_string(),
                    self.parts.len(),
                    PutPayload::from(last),
                )
                .await
                .map_err(object_error(format!(
                    "sending the last part of upload {id}"
                )))?;
            self.parts.push(part.content_id);
        }
        let parts = self
            .parts
            .iter()
            .map(|p| PartId {
                content_id: p.clone(),
            })
            .collect();
        blobs
            .s3
            .complete_multipart(data, &mp.to_string(), parts)
            .await
            .map_err(object_error(format!("completing upload {id}")))?;
        Ok(())
    }
}

impl ObjectBlobs {
    /// Removes a stored blob's session objects ([`ObjectBlobs::discard`]); true when all
    /// went. A failure is logged, not returned (see [`Committed::cleaned`]).
    async fn tidy(&self, id: &str, state: &UploadState) -> bool {
        match self.discard(id, state).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(upload = id, error = %e,
                    "a stored blob's upload objects are left for the upload sweeper");
                false
            }
        }
    }

    /// Hashes an object by reading it (for a digest of another algorithm than the one
    /// computed as the bytes passed).
    async fn hash_key(&self, key: &Path, algorithm: Algorithm) -> Result<Digest> {
        let got = self
            .s3
            .get(key)
            .await
            .map_err(object_error(format!("reading {key}")))?;
        let mut hasher = algorithm.hasher();
        let mut stream = got.into_stream();
        while let Some(bytes) = stream.next().await {
            hasher.update(&bytes.map_err(object_error(format!("reading {key}")))?);
        }
        Ok(hasher.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let c = ObjectConfig::from_url("s3://my-bucket/some/prefix/").unwrap();
        assert_eq!(
            (c.bucket.as_str(), c.prefix.as_str()),
            ("my-bucket", "some/prefix")
        );
        let c = ObjectConfig::from_url("s3://bkt").unwrap();
        assert_eq!((c.bucket.as_str(), c.prefix.as_str()), ("bkt", ""));
        assert!(ObjectConfig::from_url("gs://bkt").is_err());
        assert!(ObjectConfig::from_url("s3://Bad_Bucket").is_err());
        assert!(ObjectConfig::from_url("s3://b").is_err());
        assert!(ObjectConfig::from_url("s3://bkt/a/../b").is_err());
    }
}
