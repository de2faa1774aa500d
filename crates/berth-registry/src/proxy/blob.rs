//! Blobs of the pull-through cache: one upstream fetch per digest however many clients
//! ask at once. The bytes are passed to every waiting client as they arrive, from
//! memory, while a thread of their own writes them to an upload file and another hashes
//! them; a client that joins late reads what it missed from the file. The last byte is
//! held back until the digest is checked, so no client ever receives a whole wrong
//! blob; the file becomes a blob of the store (renamed into `blobs/`, or sent to the
//! bucket when the blobs are in object storage, then linked) only when right.
//!
//! Memory is bounded per fill: the chunks not yet in the file (at most [`QUEUE`] of
//! them; the upstream is read no faster than the disk takes them), and of those
//! written as many as make [`KEEP`] bytes in all, for clients a little behind. A
//! client's bytes never wait for the disk: writing to the page cache costs more than
//! receiving or sending (on a virtual machine, several times more, as each new page is
//! first touched), so the write runs beside the client's stream instead of in front
//! of it.
//!
//! Each client opens the upload file before its answer starts and reads through that
//! descriptor, so a file renamed into `blobs/`, or removed once in the bucket, is read
//! to its end all the same.

use std::collections::VecDeque;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use berth_image::{Digest, RepositoryName};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

use super::Upstream;
use crate::error::{ApiError, ApiResult, Code};
use crate::routes::hv;
use crate::Registry;

/// How much a late client reads from the file at a time.
const READ_CHUNK: usize = 256 * 1024;
/// Clients following a fill are woken each time this much more has arrived.
const PUBLISH_STEP: u64 = 64 * 1024;
/// Chunks received and not yet written (or hashed) before the upstream waits: a chunk
/// is at most a few hundred KiB (hyper's read buffer).
const QUEUE: usize = 16;
/// Bytes a fill keeps in memory, written or not, for clients a little behind.
const KEEP: u64 = 4 << 20;
/// A hit renews its link (the eviction order) at most this often.
const RENEW_AFTER: i64 = 60;
/// Blobs per upstream fetched ahead of their clients at a time (podman asks for three
/// at once, most clients one).
pub(crate) const PREFETCH_AT_ONCE: usize = 2;

/// One blob arriving from the upstream.
pub(crate) struct Fill {
    /// The cached repository the blob is fetched for (and linked to); a client of
    /// another one joins only once the upstream says that one has the blob too.
    repo: String,
    state: watch::Sender<State>,
    upload: PathBuf,
    /// The latest bytes received, from which following clients are served.
    window: Mutex<Window>,
}

impl Fill {
    fn window(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells the following clients that `readable` bytes may be sent.
    fn publish(&self, readable: u64) {
        self.state.send_modify(|s| {
            if let State::Writing { readable: r, .. } = s {
                *r = readable;
            }
        });
    }
}

#[derive(Debug, Clone)]
enum State {
    Starting,
    /// `size` as the upstream announced it; `readable` bytes have arrived and may be
    /// sent on: all of them once the digest is checked, the file may still be being
    /// written.
    Writing {
        size: Option<u64>,
        readable: u64,
    },
    /// Every byte is in the file and its digest is right: readers may finish while
    /// the file is made a blob of the store.
    Verified {
        size: u64,
    },
    Done {
        size: u64,
    },
    /// The upstream has no such blob (in the repository the fill asked about).
    Absent,
    Failed(String),
}

impl State {
    /// Whether the upstream is done with the fill: every byte arrived and checked, or
    /// it failed.
    fn arrived(&self) -> bool {
        match self {
            State::Starting => false,
            State::Writing { size, readable } => size.is_some_and(|s| s == *readable),
            State::Verified { .. } | State::Done { .. } | State::Absent | State::Failed(_) => true,
        }
    }
}

/// The bytes of a fill from `start` to the last byte received, in the chunks they
/// arrived in. Every byte before `start` is in the upload file.
#[derive(Default)]
struct Window {
    start: u64,
    chunks: VecDeque<Bytes>,
    len: u64,
}

impl Window {
    fn push(&mut self, chunk: Bytes) {
        self.len += chunk.len() as u64;
        self.chunks.push_back(chunk);
    }

    /// Bytes from `at` (below `limit`) out of one chunk, or, when `at` is before the
    /// window, `Err` with where the window starts: the bytes up to there are in the
    /// file.
    fn take(&self, at: u64, limit: u64) -> Result<Option<Bytes>, u64> {
        if at < self.start {
            return Err(self.start);
        }
        let mut offset = self.start;
        for c in &self.chunks {
            let end = offset + c.len() as u64;
            if at < end {
                let (from, to) = ((at - offset) as usize, (limit.min(end) - offset) as usize);
                return Ok((from < to).then(|| c.slice(from..to)));
            }
            offset = end;
        }
        Ok(None)
    }

    /// Forgets the oldest chunks that are in the file while more than [`KEEP`] bytes
    /// would stay.
    fn written(&mut self, written: u64) {
        while let Some(c) = self.chunks.front() {
            let n = c.len() as u64;
            if self.start + n > written || self.len - n < KEEP {
                break;
            }
            self.chunks.pop_front();
            self.start += n;
            self.len -= n;
        }
    }

    /// Forgets every chunk: the whole blob is in the file.
    fn clear(&mut self) {
        self.start += self.len;
        self.len = 0;
        self.chunks.clear();
    }
}

/// Makes a blob request on a cached repository answerable: `None` when the store has
/// the blob for `name` now (the blob route answers, ranges included), or an answer
/// streaming the blob as it arrives.
pub(crate) async fn fill(
    reg: &Arc<Registry>,
    up: &Upstream,
    name: &RepositoryName,
    upstream_repo: &str,
    digest: &Digest,
    headers: &HeaderMap,
    with_body: bool,
) -> ApiResult<Option<Response>> {
    let repo = name.as_str();
    match stored(reg, up, repo, upstream_repo, digest).await? {
        Lookup::Stored(stored) => {
            reg.metrics.proxy("blob", "hit");
            let before = berth_store::unix_now() - RENEW_AFTER;
            if stored.linked_at.is_some_and(|at| at < before) {
                let (r, d) = (repo.to_string(), digest.clone());
                reg.blocking(move |reg| reg.meta.renew_blob_link(&r, &d, before))
                    .await?;
            }
            return Ok(None);
        }
        Lookup::Absent => return Err(absent(up, digest)),
        Lookup::Missing => {}
    }
    // A range, or a blob of unannounced size, is answered by the store once whole.
    let whole_first = headers.contains_key(header::RANGE);
    let (mut confirmed, mut rounds) = (false, 0);
    let (fill, mut rx, size) = 'fill: loop {
        rounds += 1;
        let (fill, _) = start_or_join(reg, up, repo, upstream_repo, digest, "miss");
        let other = fill.repo != repo;
        // Another repository's fill: its bytes are this repository's only if the
        // upstream has the blob here too (the digest alone must not read what another
        // name holds).
        if other && !confirmed {
            if !upstream_has(up, upstream_repo, digest).await? {
                return Err(absent(up, digest));
            }
            confirmed = true;
        }
        let mut rx = fill.state.subscribe();
        loop {
            let state = rx.borrow_and_update().clone();
            match state {
                State::Done { size } => return linked(reg, &fill, repo, digest, size).await,
                // The other repository lacks the blob upstream, this one has it (the
                // upstream said so above): a fill of this repository's own (the ended
                // fill has left the map), or a few more joined.
                State::Absent if other && rounds < 3 => continue 'fill,
                State::Absent => return Err(absent(up, digest)),
                State::Failed(why) => return Err(failed(up, digest, &why)),
                State::Writing { size: Some(s), .. } | State::Verified { size: s }
                    if !whole_first =>
                {
                    break 'fill (fill, rx, s)
                }
                _ => {
                    if rx.changed().await.is_err() {
                        return Err(failed(up, digest, "the fetch stopped"));
                    }
                }
            }
        }
    };
    let builder = Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, size)
        .header("docker-content-digest", hv(&digest.to_string()))
        .header(header::ETAG, hv(&format!("\"{digest}\"")));
    if !with_body {
        return builder
            .body(Body::empty())
            .map(Some)
            .map_err(ApiError::internal);
    }
    // The file exists once a size is known (it is created before the upstream is
    // asked); gone, the fill has ended and the store answers.
    let upload = fill.upload.clone();
    let opened = tokio::task::spawn_blocking(move || std::fs::File::open(upload))
        .await
        .map_err(ApiError::internal)?;
    let file = match opened {
        Ok(f) => f,
        // Renamed into `blobs/` or sent to the bucket: the store answers once the
        // blob is linked.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => loop {
            let state = rx.borrow_and_update().clone();
            match state {
                State::Done { size } => return linked(reg, &fill, repo, digest, size).await,
                State::Absent => return Err(absent(up, digest)),
                State::Failed(why) => return Err(failed(up, digest, &why)),
                _ => {
                    if rx.changed().await.is_err() {
                        return Err(failed(up, digest, "the fetch stopped"));
                    }
                }
            }
        },
        Err(e) => {
            return Err(failed(
                up,
                digest,
                &format!("opening the arriving blob: {e}"),
            ))
        }
    };
    reg.metrics.bytes_sent(size);
    let stream = follow(fill, file, rx, size);
    builder
        .body(Body::from_stream(stream))
        .map(Some)
        .map_err(ApiError::internal)
}

/// A blob the store has for a repository.
struct Stored {
    size: u64,
    /// When the repository's link was made or last renewed; `None` when it was made
    /// just now.
    linked_at: Option<i64>,
}

/// What the store says of a blob for a cached repository.
enum Lookup {
    Stored(Stored),
    /// Stored under another name, and the upstream has no such blob under this one.
    Absent,
    /// Not stored (or it could not be linked: the fill fetches it).
    Missing,
}

/// Whether the store has `digest` for `repo`: linked to it, or linked already to
/// another repository of this cache's prefix (a layer shared by two images of the
/// upstream), which is then linked to `repo` once the upstream says it has the blob
/// at `upstream_repo` too: a `HEAD` instead of a fetch keeps the sharing. Only the
/// prefix's own blobs are shared this way, bytes that came from this upstream and
/// were verified as they came: a blob of a private repository, or of another cache,
/// is fetched and verified like any other, so an upstream that says "I have it" to
/// every digest gets nobody another's bytes, nor tells them that they are stored.
async fn stored(
    reg: &Arc<Registry>,
    up: &Upstream,
    repo: &str,
    upstream_repo: &str,
    digest: &Digest,
) -> ApiResult<Lookup> {
    if let Some((size, linked_at)) = reg.meta.blob_link(repo, digest)? {
        let linked_at = Some(linked_at);
        return Ok(Lookup::Stored(Stored { size, linked_at }));
    }
    if !reg.meta.blob_in_namespace(&up.config.prefix, digest)? {
        return Ok(Lookup::Missing);
    }
    let Some(size) = reg.meta.blob_known(digest)? else {
        return Ok(Lookup::Missing);
    };
    if !upstream_has(up, upstream_repo, digest).await? {
        return Ok(Lookup::Absent);
    }
    let (r, d) = (repo.to_string(), digest.clone());
    let linked = reg.blocking(move |reg| reg.link_blob(&r, &d, size)).await;
    let linked_at = None;
    Ok(match linked {
        Ok(()) => Lookup::Stored(Stored { size, linked_at }),
        Err(_) => Lookup::Missing,
    })
}

/// Whether the upstream has `digest` in `upstream_repo` (a `HEAD`).
async fn upstream_has(up: &Upstream, upstream_repo: &str, digest: &Digest) -> ApiResult<bool> {
    match up.client.has_blob_to_pull(upstream_repo, digest).await {
        Ok(size) => Ok(size.is_some()),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(super::unavailable(up, &e)),
    }
}

/// A fill ended with the blob in the store: the store answers. A client that joined
/// another repository's fill (the upstream said it has the blob) links it first.
async fn linked(
    reg: &Arc<Registry>,
    fill: &Fill,
    repo: &str,
    digest: &Digest,
    size: u64,
) -> ApiResult<Option<Response>> {
    if fill.repo != repo {
        let (r, d) = (repo.to_string(), digest.clone());
        reg.blocking(move |reg| reg.link_blob(&r, &d, size)).await?;
    }
    Ok(None)
}

/// The upstream has no such blob: answered as it would be.
fn absent(up: &Upstream, digest: &Digest) -> ApiError {
    ApiError::new(Code::BlobUnknown).detail(format!(
        "upstream {} ({}) has no blob {digest} in this repository",
        up.config.prefix, up.config.url
    ))
}

fn failed(up: &Upstream, digest: &Digest, why: &str) -> ApiError {
    ApiError::new(Code::Unavailable).detail(format!(
        "fetching {digest} from upstream {} ({}): {why}",
        up.config.prefix, up.config.url
    ))
}

/// Fetches the blobs of an image manifest that a client has just been sent, before it
/// asks for them: its requests then join fetches under way (or find the blobs
/// stored) instead of each waiting for its own. The blobs start in the order the
/// client asks for them (the config, then the layers), at most [`PREFETCH_AT_ONCE`]
/// per upstream at a time, each taking the place of one whose bytes have all arrived
/// and been checked: the blob the client waits for has the upstream to itself or
/// shares it with the next one only. A blob already stored or arriving is left alone,
/// and one that fails is only logged (a client's request fetches it again).
pub(crate) fn prefetch(
    reg: &Arc<Registry>,
    up: &Upstream,
    repo: &str,
    upstream_repo: &str,
    blobs: Vec<Digest>,
) {
    let ahead = Ahead {
        reg: reg.clone(),
        prefix: up.config.prefix.clone(),
        repo: repo.to_string(),
        upstream_repo: upstream_repo.to_string(),
    };
    let permits = up.prefetching.clone();
    tokio::spawn(async move {
        for digest in blobs {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let Some(fill) = ahead.start(&digest).await else {
                continue;
            };
            tokio::spawn(async move {
                let _permit = permit;
                // A failure is logged by Job::run.
                let mut rx = fill.state.subscribe();
                while !rx.borrow_and_update().arrived() {
                    if rx.changed().await.is_err() {
                        return;
                    }
                }
            });
        }
    });
}

/// Where the blobs fetched ahead go.
struct Ahead {
    reg: Arc<Registry>,
    prefix: String,
    repo: String,
    upstream_repo: String,
}

impl Ahead {
    /// Starts the fill of `digest`; `None` when the repository has it, or a fill of
    /// it is under way already (a client's request joins that one).
    async fn start(&self, digest: &Digest) -> Option<Arc<Fill>> {
        let (reg, repo) = (&self.reg, &self.repo);
        let up = reg.proxies.by_prefix(&self.prefix)?;
        match stored(reg, up, repo, &self.upstream_repo, digest).await {
            Ok(Lookup::Missing) => {}
            Ok(Lookup::Stored(_) | Lookup::Absent) => return None,
            Err(e) => {
                tracing::warn!(target: "berth::proxy", error = %e, "prefetch: reading the store");
                return None;
            }
        }
        let upstream_repo = &self.upstream_repo;
        let (fill, joined) = start_or_join(reg, up, repo, upstream_repo, digest, "prefetch");
        (!joined).then_some(fill)
    }
}

/// The fill of `digest` under way (and `true`: joined), or a new one, counted in the
/// metrics as `result` (`miss`, or `prefetch` when no client asked yet) when it is new.
fn start_or_join(
    reg: &Arc<Registry>,
    up: &Upstream,
    repo: &str,
    upstream_repo: &str,
    digest: &Digest,
    result: &'static str,
) -> (Arc<Fill>, bool) {
    let mut fills = up.blob_fills.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(f) = fills.get(digest) {
        // Served from the fetch under way: the upstream is not asked again.
        if result == "miss" {
            reg.metrics.proxy("blob", "hit");
        }
        return (f.clone(), true);
    }
    let id = format!("proxy-{}", uuid::Uuid::new_v4().simple());
    let fill = Arc::new(Fill {
        repo: repo.to_string(),
        state: watch::channel(State::Starting).0,
        upload: reg.blobs.upload_path(&id),
        window: Mutex::default(),
    });
    fills.insert(digest.clone(), fill.clone());
    reg.metrics.proxy("blob", result);
    let job = Job {
        reg: reg.clone(),
        prefix: up.config.prefix.clone(),
        repo: repo.to_string(),
        upstream_repo: upstream_repo.to_string(),
        digest: digest.clone(),
        id,
        fill: fill.clone(),
    };
    // Not tied to the client: a client that goes away does not stop the fill.
    tokio::spawn(job.run());
    (fill, false)
}

/// Why a fill ended without its blob.
enum Unfetched {
    /// The upstream has no such blob: its clients are told so (404), as the upstream
    /// would.
    Absent,
    Failed(String),
}

impl From<String> for Unfetched {
    fn from(why: String) -> Unfetched {
        Unfetched::Failed(why)
    }
}

impl From<&str> for Unfetched {
    fn from(why: &str) -> Unfetched {
        Unfetched::Failed(why.to_string())
    }
}

struct Job {
    reg: Arc<Registry>,
    prefix: String,
    repo: String,
    upstream_repo: String,
    digest: Digest,
    id: String,
    fill: Arc<Fill>,
}

impl Job {
    async fn run(self) {
        let result = self.fetch().await;
        let Some(up) = self.reg.proxies.by_prefix(&self.prefix) else {
            return;
        };
        // Whole in the file (or failed): late readers read the file.
        self.fill.window().clear();
        // Out of the map before its clients learn the end: one that starts a fill of
        // its own then (see `fill`) does not join this one again.
        up.blob_fills
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.digest);
        match result {
            Ok(size) => {
                self.fill.state.send_replace(State::Done { size });
            }
            Err(Unfetched::Absent) => {
                let _ = self.reg.blobs.remove_upload(&self.id);
                self.fill.state.send_replace(State::Absent);
            }
            Err(Unfetched::Failed(why)) => {
                tracing::warn!(
                    target: "berth::proxy",
                    upstream = %up.config.url,
                    repository = %self.repo,
                    digest = %self.digest,
                    error = %why,
                    "fetching a blob failed"
                );
                let _ = self.reg.blobs.remove_upload(&self.id);
                self.fill.state.send_replace(State::Failed(why));
            }
        }
        if up.config.max_size.is_some() {
            let (reg, prefix) = (self.reg.clone(), self.prefix.clone());
            tokio::task::spawn_blocking(move || {
                if let Some(up) = reg.proxies.by_prefix(&prefix) {
                    super::evict(&reg, up);
                }
            });
        }
    }

    /// Receives the blob, passing each chunk to the clients following it, to a thread
    /// that writes the upload file and to one that hashes it; then checks the digest,
    /// commits and links.
    async fn fetch(&self) -> Result<u64, Unfetched> {
        let up = self
            .reg
            .proxies
            .by_prefix(&self.prefix)
            .ok_or("the upstream is gone")?;
        // A client looks at the store before it starts or joins a fill, and a fill
        // leaves the map only after it has linked its blob: one that ended in between
        // is found here (this fill went into the map after it left), and the blob is
        // not fetched twice. A failed look leaves it to the fetch.
        let (repo, upstream_repo) = (&self.repo, &self.upstream_repo);
        match stored(&self.reg, up, repo, upstream_repo, &self.digest).await {
            Ok(Lookup::Stored(s)) => return Ok(s.size),
            Ok(Lookup::Absent) => return Err(Unfetched::Absent),
            Ok(Lookup::Missing) | Err(_) => {}
        }
        let path = self.fill.upload.clone();
        let file = tokio::task::spawn_blocking(move || {
            std::fs::OpenOptions::new()
                .append(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| format!("creating {}: {e}", path.display()))
        })
        .await
        .map_err(|e| e.to_string())??;
        let (size, mut stream) = match up.client.blob_sized(upstream_repo, &self.digest).await {
            Ok(answer) => answer,
            Err(e) if e.is_not_found() => return Err(Unfetched::Absent),
            Err(e) => return Err(crate::error::chain(&e).into()),
        };
        // A blob larger than the whole cache may hold is not kept (nor let fill the
        // disk, announced or not).
        let limit = up.config.max_size;
        if let Some((size, max)) = size.zip(limit).filter(|(s, max)| s > max) {
            return Err(
                format!("its {size} bytes are more than the cache's max_size of {max}").into(),
            );
        }
        self.fill
            .state
            .send_replace(State::Writing { size, readable: 0 });
        let (to_writer, mut chunks) = mpsc::channel::<Bytes>(QUEUE);
        let fill = self.fill.clone();
        let writing = tokio::task::spawn_blocking(move || -> Result<std::fs::File, String> {
            let mut file = file;
            let mut written = 0u64;
            while let Some(c) = chunks.blocking_recv() {
                std::io::Write::write_all(&mut file, &c)
                    .map_err(|e| format!("writing the arriving blob: {e}"))?;
                written += c.len() as u64;
                fill.window().written(written);
            }
            Ok(file)
        });
        let (to_hasher, mut chunks) = mpsc::channel::<Bytes>(QUEUE);
        let algorithm = self.digest.algorithm();
        let hashing = tokio::task::spawn_blocking(move || {
            let mut hasher = algorithm.hasher();
            while let Some(c) = chunks.blocking_recv() {
                hasher.update(&c);
            }
            hasher
        });
        let received = self
            .receive(&mut stream, size, limit, &to_writer, &to_hasher)
            .await;
        drop((to_writer, to_hasher));
        let hasher = hashing.await.map_err(|e| e.to_string());
        let checked = received.and_then(|written| -> Result<_, String> {
            let hasher = hasher?;
            if let Some(s) = size.filter(|s| *s != written) {
                return Err(format!("the upstream sent {written} of {s} bytes"));
            }
            let actual = hasher.clone().finish();
            if actual != self.digest {
                return Err(format!("the upstream sent content with digest {actual}"));
            }
            Ok((written, hasher))
        });
        if let Ok((written, _)) = &checked {
            // Right: the clients may have the last byte (from memory) while the file
            // is finished.
            self.fill.publish(*written);
        }
        // The writer's error first: a failed write also ends the receiving.
        let file = writing.await.map_err(|e| e.to_string())??;
        let (written, hasher) = checked?;
        // In the file: readers may finish from it while it becomes a blob of the store.
        self.fill
            .state
            .send_replace(State::Verified { size: written });
        drop(file);
        let (reg, digest, repo, id) = (
            self.reg.clone(),
            self.digest.clone(),
            self.repo.clone(),
            self.id.clone(),
        );
        tokio::task::spawn_blocking(move || -> Result<u64, String> {
            reg.meta
                .begin_blob_commit(&digest)
                .map_err(|e| e.to_string())?;
            let n = match &reg.objects {
                None => {
                    let state = berth_store::HashState {
                        hasher,
                        len: written,
                    };
                    let writer = reg
                        .blobs
                        .resume_upload(&id, Some(state))
                        .map_err(|e| e.to_string())?
                        .ok_or("the arriving blob's file is gone")?;
                    reg.blobs
                        .commit(writer, &digest)
                        .map_err(|e| e.to_string())?
                }
                // Sent to the bucket in parts (verified once more as they pass), then
                // the file goes: readers hold it open.
                Some(objects) => {
                    let file = std::fs::File::open(reg.blobs.upload_path(&id))
                        .map_err(|e| format!("reopening the arriving blob: {e}"))?;
                    let n = objects
                        .put_file(reg.meta.as_ref(), &repo, &id, &digest, file)
                        .map_err(|e| e.to_string())?;
                    let _ = reg.blobs.remove_upload(&id);
                    n
                }
            };
            reg.link_blob(&repo, &digest, n)
                .map_err(|e| e.to_string())?;
            Ok(n)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(Unfetched::Failed)
    }

    /// Reads the upstream's answer to its end into the window, the writer and the
    /// hasher, publishing to the clients as it goes; the bytes received. More than
    /// `limit` (the cache's bound) fails.
    async fn receive(
        &self,
        stream: &mut berth_remote::ByteStream,
        size: Option<u64>,
        limit: Option<u64>,
        to_writer: &mpsc::Sender<Bytes>,
        to_hasher: &mpsc::Sender<Bytes>,
    ) -> Result<u64, String> {
        let (mut received, mut published) = (0u64, 0u64);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| format!("reading from the upstream: {e}"))?;
            received += chunk.len() as u64;
            if size.is_some_and(|s| received > s) {
                return Err(format!(
                    "more bytes than the {} announced",
                    size.unwrap_or(0)
                ));
            }
            if let Some(max) = limit.filter(|max| received > *max) {
                return Err(format!("more bytes than the cache's max_size of {max}"));
            }
            self.fill.window().push(chunk.clone());
            let stopped = "the arriving blob's writer stopped";
            to_hasher.send(chunk.clone()).await.map_err(|_| stopped)?;
            to_writer.send(chunk).await.map_err(|_| stopped)?;
            // Readers wake for every PUBLISH_STEP bytes; the last byte waits for the
            // digest.
            let readable = received.min(size.unwrap_or(0).saturating_sub(1));
            if readable >= published + PUBLISH_STEP || readable + 1 == size.unwrap_or(0) {
                published = readable;
                self.fill.publish(readable);
            }
        }
        Ok(received)
    }
}

/// A client's body: the arriving blob up to what may be sent, from the fill's window,
/// or from the upload file (opened before the fill could end: renamed or removed, it
/// reads on) for what the window no longer holds.
fn follow(
    fill: Arc<Fill>,
    file: std::fs::File,
    rx: watch::Receiver<State>,
    size: u64,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> {
    let follower = Follower {
        fill,
        file: Arc::new(file),
        rx,
        size,
        at: 0,
    };
    futures_util::stream::unfold(Some(follower), |f| async move {
        let mut f = f?;
        match f.next().await? {
            Ok(bytes) => Some((Ok(bytes), Some(f))),
            Err(e) => Some((Err(e), None)),
        }
    })
}

struct Follower {
    fill: Arc<Fill>,
    file: Arc<std::fs::File>,
    rx: watch::Receiver<State>,
    size: u64,
    /// Bytes sent so far.
    at: u64,
}

impl Follower {
    async fn next(&mut self) -> Option<std::io::Result<Bytes>> {
        loop {
            let (limit, done) = match &*self.rx.borrow_and_update() {
                State::Writing { readable, .. } => (*readable, false),
                State::Verified { size } | State::Done { size } => (*size, true),
                State::Failed(why) => return Some(Err(std::io::Error::other(why.clone()))),
                State::Absent => {
                    return Some(Err(std::io::Error::other("the upstream has no such blob")))
                }
                State::Starting => (0, false),
            };
            if self.at < limit {
                let held = self.fill.window().take(self.at, limit);
                let bytes = match held {
                    Ok(Some(bytes)) => bytes,
                    Ok(None) => {
                        return Some(Err(std::io::Error::other(
                            "the arriving blob's bytes are missing",
                        )))
                    }
                    Err(start) => match self.read(limit.min(start)).await {
                        Ok(bytes) => bytes,
                        Err(e) => return Some(Err(e)),
                    },
                };
                self.at += bytes.len() as u64;
                return Some(Ok(bytes));
            }
            if self.at >= self.size && (done || limit >= self.size) {
                return None;
            }
            if self.rx.changed().await.is_err() {
                return Some(Err(std::io::Error::other("the fetch stopped")));
            }
        }
    }

    /// Bytes from `at` up to `end` (at most [`READ_CHUNK`]) from the file.
    async fn read(&self, end: u64) -> std::io::Result<Bytes> {
        let (file, at) = (self.file.clone(), self.at);
        let n = (end - at).min(READ_CHUNK as u64);
        tokio::task::spawn_blocking(move || {
            let mut buf = Vec::with_capacity(n as usize);
            let mut reader = &*file;
            reader.seek(SeekFrom::Start(at))?;
            reader.take(n).read_to_end(&mut buf)?;
            if (buf.len() as u64) < n {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "reading the arriving blob: it is shorter than what arrived",
                ));
            }
            Ok(Bytes::from(buf))
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 4099) as u8).collect()
    }

    #[test]
    fn a_window_forgets_only_written_bytes_beyond_what_it_keeps() {
        let data = pattern(3 * KEEP as usize);
        let mut w = Window::default();
        let step = KEEP as usize / 2;
        for c in data.chunks(step) {
            w.push(Bytes::copy_from_slice(c));
        }
        // Nothing written: everything is held, and a take stops at its chunk's end.
        assert_eq!(w.take(0, 10).unwrap().unwrap(), &data[..10]);
        let s = w.take(step as u64 - 3, 3 * KEEP).unwrap().unwrap();
        assert_eq!(s, &data[step - 3..step]);
        assert_eq!(w.take(3 * KEEP, 3 * KEEP + 1), Ok(None));
        // Mostly written: the chunks wholly written go while KEEP bytes stay.
        w.written(2 * KEEP + 1);
        assert_eq!((w.start, w.len), (2 * KEEP, KEEP));
        assert_eq!(w.take(2 * KEEP - 1, 3 * KEEP), Err(2 * KEEP));
        let s = w.take(2 * KEEP, 2 * KEEP + 5).unwrap().unwrap();
        assert_eq!(s, &data[2 * KEEP as usize..][..5]);
        // All written: KEEP bytes stay all the same.
        w.written(3 * KEEP);
        assert_eq!((w.start, w.len), (2 * KEEP, KEEP));
        w.clear();
        assert_eq!(w.take(3 * KEEP - 1, 3 * KEEP), Err(3 * KEEP));
    }

    /// A client that joins late reads what the window no longer holds from the file,
    /// the rest from the window, and the last byte only once the digest is checked.
    #[tokio::test]
    async fn a_late_client_reads_from_the_file_then_from_memory() {
        let dir = tempfile::tempdir().unwrap();
        let data = pattern(3 * KEEP as usize + 1234);
        let size = data.len() as u64;
        let upload = dir.path().join("upload");
        let in_file = 2 * KEEP as usize;
        std::fs::write(&upload, &data[..in_file]).unwrap();
        let mut window = Window {
            start: KEEP,
            ..Window::default()
        };
        for c in data[KEEP as usize..].chunks(100_000) {
            window.push(Bytes::copy_from_slice(c));
        }
        let fill = Arc::new(Fill {
            repo: "upstream.test/team/app".into(),
            state: watch::channel(State::Writing {
                size: Some(size),
                readable: size - 1,
            })
            .0,
            upload: upload.clone(),
            window: Mutex::new(window),
        });
        let file = std::fs::File::open(&upload).unwrap();
        let mut body = Box::pin(follow(fill.clone(), file, fill.state.subscribe(), size));
        let mut got = Vec::new();
        while (got.len() as u64) < size - 1 {
            got.extend_from_slice(&body.next().await.unwrap().unwrap());
        }
        assert_eq!(got, data[..got.len()]);
        // The last byte waits for the check.
        let waiting = tokio::time::timeout(Duration::from_millis(50), body.next()).await;
        assert!(
            waiting.is_err(),
            "the last byte went before the digest check"
        );
        fill.publish(size);
        got.extend_from_slice(&body.next().await.unwrap().unwrap());
        assert_eq!(got, data);
        assert!(body.next().await.is_none());
    }

    /// A registry caching `upstream.test` from an upstream that cannot answer (asked,
    /// a fill fails), with a blob stored and linked to `upstream.test/team/app`.
    fn with_silent_upstream(dir: &std::path::Path) -> (Arc<Registry>, Digest) {
        let mut config = crate::RegistryConfig::new(dir.to_path_buf());
        config.catalog = false;
        config.proxies = vec![super::super::ProxyConfig {
            prefetch: false,
            ..super::super::config("upstream.test", "http://127.0.0.1:9")
        }];
        let reg = crate::Registry::open(config).unwrap();
        let data = pattern(5000);
        let digest = Digest::sha256_of(&data);
        let mut writer = reg.blobs.create_upload("stored").unwrap();
        writer.write(&data).unwrap();
        reg.blobs.commit(writer, &digest).unwrap();
        reg.link_blob("upstream.test/team/app", &digest, 5000)
            .unwrap();
        (reg, digest)
    }

    /// A client looks at the store, then starts a fill; a fill of the same blob that
    /// ended in between had linked it. The new fill finds it and ends without asking
    /// the upstream. Stored under another repository's name only, the blob is not
    /// linked without the upstream's word: the fill asks, and here fails.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_fill_started_once_the_blob_is_stored_does_not_fetch_it() {
        let dir = tempfile::tempdir().unwrap();
        let (reg, digest) = with_silent_upstream(dir.path());
        let up = reg.proxies.by_prefix("upstream.test").unwrap();
        for (repo, linked) in [
            ("upstream.test/team/app", true),
            ("upstream.test/team/other", false),
        ] {
            let (fill, joined) = start_or_join(&reg, up, repo, "team/app", &digest, "miss");
            assert!(!joined, "{repo}");
            let mut rx = fill.state.subscribe();
            let end = loop {
                let state = rx.borrow_and_update().clone();
                if state.arrived() {
                    break state;
                }
                rx.changed().await.unwrap();
            };
            let link = reg.meta.blob_link(repo, &digest).unwrap();
            if linked {
                assert!(matches!(end, State::Done { size: 5000 }), "{repo}: {end:?}");
                assert!(link.is_some(), "{repo}");
            } else {
                assert!(matches!(end, State::Failed(_)), "{repo}: {end:?}");
                assert!(link.is_none(), "{repo}: linked without the upstream");
            }
            // The fill leaves the map just after its end.
            while !up.blob_fills.lock().unwrap().is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }

    /// A client of another repository joins a fill under way only once the upstream
    /// says that repository has the blob too: asking the digest of a blob fetched for
    /// a repository it may not read gets it nothing.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_client_of_another_repository_joins_only_on_the_upstreams_word() {
        let dir = tempfile::tempdir().unwrap();
        let (reg, _) = with_silent_upstream(dir.path());
        let up = reg.proxies.by_prefix("upstream.test").unwrap();
        let digest = Digest::sha256_of(b"arriving");
        let fill = Arc::new(Fill {
            repo: "upstream.test/private/app".into(),
            state: watch::channel(State::Writing {
                size: Some(8),
                readable: 7,
            })
            .0,
            upload: dir.path().join("upload"),
            window: Mutex::default(),
        });
        fill.window().push(Bytes::from_static(b"arriving"));
        up.blob_fills.lock().unwrap().insert(digest.clone(), fill);
        let name: RepositoryName = "upstream.test/team/other".parse().unwrap();
        let got = super::fill(
            &reg,
            up,
            &name,
            "team/other",
            &digest,
            &HeaderMap::new(),
            true,
        )
        .await;
        let Err(e) = got else {
            panic!("joined another repository's fill unasked");
        };
        assert_eq!(e.code, Code::Unavailable, "{e:?}");
    }

    /// A client of another repository joined a fill (the upstream has the blob in
    /// its repository) that then ends because the fill's own repository lacks it
    /// upstream: the client fetches the blob for its repository. It answered 404,
    /// though the upstream has the blob there (a retry found it).
    #[tokio::test(flavor = "multi_thread")]
    async fn a_client_whose_joined_fill_is_absent_fetches_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::RegistryConfig::new(dir.path().join("upstream"));
        config.catalog = false;
        let upstream = crate::Registry::open(config).unwrap();
        let data = pattern(5000);
        let digest = Digest::sha256_of(&data);
        let mut writer = upstream.blobs.create_upload("u").unwrap();
        writer.write(&data).unwrap();
        upstream.blobs.commit(writer, &digest).unwrap();
        upstream.link_blob("team/b", &digest, 5000).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = upstream
            .router()
            .into_make_service_with_connect_info::<std::net::SocketAddr>();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });

        let mut config = crate::RegistryConfig::new(dir.path().join("cache"));
        config.catalog = false;
        config.proxies = vec![super::super::ProxyConfig {
            prefetch: false,
            ..super::super::config("upstream.test", &format!("http://{addr}"))
        }];
        let reg = crate::Registry::open(config).unwrap();
        let up = reg.proxies.by_prefix("upstream.test").unwrap();
        // A fill for team/a under way, which will find nothing upstream.
        let other = Arc::new(Fill {
            repo: "upstream.test/team/a".into(),
            state: watch::channel(State::Starting).0,
            upload: dir.path().join("other-upload"),
            window: Mutex::default(),
        });
        up.blob_fills
            .lock()
            .unwrap()
            .insert(digest.clone(), other.clone());
        let client = {
            let (reg, digest) = (reg.clone(), digest.clone());
            tokio::spawn(async move {
                let up = reg.proxies.by_prefix("upstream.test").unwrap();
                let name: RepositoryName = "upstream.test/team/b".parse().unwrap();
                let got =
                    super::fill(&reg, up, &name, "team/b", &digest, &HeaderMap::new(), true).await;
                match got {
                    Ok(Some(resp)) => {
                        let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await;
                        Ok(body.unwrap().to_vec())
                    }
                    Ok(None) => Ok(Vec::new()),
                    Err(e) => Err(e.code),
                }
            })
        };
        // Joined (after the upstream's word on team/b), then the fill ends as a real
        // one does: out of the map, then its clients told.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while other.state.receiver_count() == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the client never joined"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        up.blob_fills.lock().unwrap().remove(&digest);
        other.state.send_replace(State::Absent);
        let got = client.await.unwrap();
        let body = got.unwrap_or_else(|code| panic!("answered {code:?}"));
        if !body.is_empty() {
            assert_eq!(body, data);
        }
        // Linked to team/b once its own fill ends.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while reg
            .meta
            .blob_link("upstream.test/team/b", &digest)
            .unwrap()
            .is_none()
        {
            assert!(std::time::Instant::now() < deadline, "never linked");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(reg
            .meta
            .blob_link("upstream.test/team/a", &digest)
            .unwrap()
            .is_none());
        server.abort();
    }

    #[tokio::test]
    async fn a_failed_fill_ends_its_clients_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let upload = dir.path().join("upload");
        std::fs::write(&upload, b"").unwrap();
        let fill = Arc::new(Fill {
            repo: "upstream.test/team/app".into(),
            state: watch::channel(State::Writing {
                size: Some(10),
                readable: 0,
            })
            .0,
            upload: upload.clone(),
            window: Mutex::default(),
        });
        let file = std::fs::File::open(&upload).unwrap();
        let mut body = Box::pin(follow(fill.clone(), file, fill.state.subscribe(), 10));
        fill.state.send_replace(State::Failed(
            "the upstream sent content with digest x".into(),
        ));
        let e = body.next().await.unwrap().unwrap_err();
        assert!(e.to_string().contains("digest x"), "{e}");
        assert!(body.next().await.is_none());
    }
}
