//! Blobs of the pull-through cache: one upstream fetch per digest however many clients
//! ask at once, written to an upload file as the bytes arrive (hashed as they pass),
//! and streamed to every waiting client from that file. The last byte is held back
//! until the digest is checked, so no client ever receives a whole wrong blob; the
//! file becomes a blob of the store (renamed into `blobs/`, or sent to the bucket when
//! the blobs are in object storage, then linked) only when right. Memory stays at a
//! few chunks per client whatever the blob's size.
//!
//! Each client opens the upload file before its answer starts and reads through that
//! descriptor, so a file renamed into `blobs/`, or removed once in the bucket, is read
//! to its end all the same.

use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use berth_image::{Digest, RepositoryName};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::watch;

use super::Upstream;
use crate::error::{ApiError, ApiResult, Code};
use crate::routes::hv;
use crate::Registry;

/// How much a client's stream reads from the file at a time.
const READ_CHUNK: usize = 256 * 1024;
/// Clients following a fill are woken each time this much more has arrived.
const PUBLISH_STEP: u64 = 64 * 1024;
/// A hit renews its link (the eviction order) at most this often.
const RENEW_AFTER: i64 = 60;
/// Blobs per upstream fetched ahead of their clients at a time (podman asks for three
/// at once, most clients one).
pub(crate) const PREFETCH_AT_ONCE: usize = 4;

/// One blob arriving from the upstream.
pub(crate) struct Fill {
    state: watch::Sender<State>,
    upload: PathBuf,
}

#[derive(Debug, Clone)]
enum State {
    Starting,
    /// `size` as the upstream announced it; `readable` bytes are in the file and may
    /// be sent on.
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
    Failed(String),
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
    if let Some((_, linked_at)) = reg.meta.blob_link(repo, digest)? {
        reg.metrics.proxy("blob", "hit");
        let before = berth_store::unix_now() - RENEW_AFTER;
        if linked_at < before {
            let (r, d) = (repo.to_string(), digest.clone());
            reg.blocking(move |reg| reg.meta.renew_blob_link(&r, &d, before))
                .await?;
        }
        return Ok(None);
    }
    if link_known(reg, repo, digest).await? {
        reg.metrics.proxy("blob", "hit");
        return Ok(None);
    }
    let fill = start_or_join(reg, up, repo, upstream_repo, digest, "miss");
    let mut rx = fill.state.subscribe();
    // A range, or a blob of unannounced size, is answered by the store once whole.
    let whole_first = headers.contains_key(header::RANGE);
    let size = loop {
        let state = rx.borrow_and_update().clone();
        match state {
            State::Done { .. } => return Ok(None),
            State::Failed(why) => return Err(failed(up, digest, &why)),
            State::Writing { size: Some(s), .. } | State::Verified { size: s } if !whole_first => {
                break s
            }
            _ => {
                if rx.changed().await.is_err() {
                    return Err(failed(up, digest, "the fetch stopped"));
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
                State::Done { .. } => return Ok(None),
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
    let stream = follow(file, rx, size);
    builder
        .body(Body::from_stream(stream))
        .map(Some)
        .map_err(ApiError::internal)
}

/// Links `digest` to `repo` when the store has it under another name already (a layer
/// shared by two images); whether it did.
async fn link_known(reg: &Arc<Registry>, repo: &str, digest: &Digest) -> ApiResult<bool> {
    let Some(size) = reg.meta.blob_known(digest)? else {
        return Ok(false);
    };
    let (r, d) = (repo.to_string(), digest.clone());
    Ok(reg
        .blocking(move |reg| reg.link_blob(&r, &d, size))
        .await
        .is_ok())
}

fn failed(up: &Upstream, digest: &Digest, why: &str) -> ApiError {
    ApiError::new(Code::Unavailable).detail(format!(
        "fetching {digest} from upstream {} ({}): {why}",
        up.config.prefix, up.config.url
    ))
}

/// Fetches the blobs of an image manifest that a client has just been sent, before it
/// asks for them: its requests then join fetches under way (or find the blobs
/// stored) instead of each waiting for its own. The config comes first and alone (the
/// client asks for it first, and beside the layers its few bytes would wait behind
/// theirs), then the layers in order, at most [`PREFETCH_AT_ONCE`] per upstream at a
/// time. A blob already stored or arriving is left alone, and one that fails is only
/// logged (a client's request fetches it again).
pub(crate) fn prefetch(
    reg: &Arc<Registry>,
    up: &Upstream,
    repo: &str,
    upstream_repo: &str,
    config: Option<Digest>,
    layers: Vec<Digest>,
) {
    let ahead = Ahead {
        reg: reg.clone(),
        prefix: up.config.prefix.clone(),
        repo: repo.to_string(),
        upstream_repo: upstream_repo.to_string(),
    };
    let permits = up.prefetching.clone();
    tokio::spawn(async move {
        if let Some(config) = config {
            let Ok(_permit) = permits.clone().acquire_owned().await else {
                return;
            };
            ahead.fetch(&config, false).await;
        }
        for layer in layers {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let ahead = ahead.clone();
            tokio::spawn(async move {
                let _permit = permit;
                ahead.fetch(&layer, true).await;
            });
        }
    });
}

/// Where the blobs fetched ahead go.
#[derive(Clone)]
struct Ahead {
    reg: Arc<Registry>,
    prefix: String,
    repo: String,
    upstream_repo: String,
}

impl Ahead {
    /// Starts (or joins) the fill of `digest` unless the repository has it, and waits
    /// until its bytes are in and checked, or with `committed` until it is stored.
    async fn fetch(&self, digest: &Digest, committed: bool) {
        let (reg, repo) = (&self.reg, &self.repo);
        let Some(up) = reg.proxies.by_prefix(&self.prefix) else {
            return;
        };
        match reg.meta.blob_link(repo, digest) {
            Ok(None) => {}
            Ok(Some(_)) => return,
            Err(e) => {
                tracing::warn!(target: "berth::proxy", error = %e, "prefetch: reading the store");
                return;
            }
        }
        if link_known(reg, repo, digest).await.unwrap_or(false) {
            return;
        }
        let fill = start_or_join(reg, up, repo, &self.upstream_repo, digest, "prefetch");
        // A failure is logged by Job::run.
        let mut rx = fill.state.subscribe();
        loop {
            match *rx.borrow_and_update() {
                State::Done { .. } | State::Failed(_) => return,
                State::Verified { .. } if !committed => return,
                _ => {}
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}

/// The fill of `digest` under way, or a new one, counted in the metrics as `result`
/// (`miss`, or `prefetch` when no client asked yet) when it is new.
fn start_or_join(
    reg: &Arc<Registry>,
    up: &Upstream,
    repo: &str,
    upstream_repo: &str,
    digest: &Digest,
    result: &'static str,
) -> Arc<Fill> {
    let mut fills = up.blob_fills.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(f) = fills.get(digest) {
        // Served from the fetch under way: the upstream is not asked again.
        if result == "miss" {
            reg.metrics.proxy("blob", "hit");
        }
        return f.clone();
    }
    let id = format!("proxy-{}", uuid::Uuid::new_v4().simple());
    let fill = Arc::new(Fill {
        state: watch::channel(State::Starting).0,
        upload: reg.blobs.upload_path(&id),
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
    fill
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
        match result {
            Ok(size) => {
                self.fill.state.send_replace(State::Done { size });
            }
            Err(why) => {
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
        up.blob_fills
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.digest);
        if up.config.max_size.is_some() {
            let (reg, prefix) = (self.reg.clone(), self.prefix.clone());
            tokio::task::spawn_blocking(move || {
                if let Some(up) = reg.proxies.by_prefix(&prefix) {
                    super::evict(&reg, up);
                }
            });
        }
    }

    /// Streams the blob into the upload file, then commits and links it. The bytes are
    /// hashed on a thread of their own, so that clients read them as soon as they are
    /// in the file, not after the hash.
    async fn fetch(&self) -> Result<u64, String> {
        let up = self
            .reg
            .proxies
            .by_prefix(&self.prefix)
            .ok_or("the upstream is gone")?;
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
        let (size, mut stream) = up
            .client
            .blob_sized(&self.upstream_repo, &self.digest)
            .await
            .map_err(|e| crate::error::chain(&e))?;
        self.fill
            .state
            .send_replace(State::Writing { size, readable: 0 });
        let (reg, fill, digest, repo, id) = (
            self.reg.clone(),
            self.fill.clone(),
            self.digest.clone(),
            self.repo.clone(),
            self.id.clone(),
        );
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || -> Result<u64, String> {
            let mut file = file;
            let (to_hasher, chunks) = std::sync::mpsc::sync_channel::<Bytes>(64);
            let algorithm = digest.algorithm();
            let hashing = std::thread::spawn(move || {
                let mut hasher = algorithm.hasher();
                for c in chunks {
                    hasher.update(&c);
                }
                hasher
            });
            let (mut written, mut published) = (0u64, 0u64);
            while let Some(chunk) = handle.block_on(stream.next()) {
                let chunk = chunk.map_err(|e| format!("reading from the upstream: {e}"))?;
                written += chunk.len() as u64;
                if size.is_some_and(|s| written > s) {
                    return Err(format!(
                        "more bytes than the {} announced",
                        size.unwrap_or(0)
                    ));
                }
                std::io::Write::write_all(&mut file, &chunk)
                    .map_err(|e| format!("writing the arriving blob: {e}"))?;
                let _ = to_hasher.send(chunk);
                // Readers wake for every PUBLISH_STEP bytes; the last byte waits for
                // the digest.
                let readable = written.min(size.unwrap_or(0).saturating_sub(1));
                if readable >= published + PUBLISH_STEP || readable + 1 == size.unwrap_or(0) {
                    published = readable;
                    fill.state.send_modify(|s| {
                        if let State::Writing { readable: r, .. } = s {
                            *r = readable;
                        }
                    });
                }
            }
            drop(to_hasher);
            let hasher = hashing
                .join()
                .map_err(|_| "the hashing thread panicked".to_string())?;
            if let Some(s) = size.filter(|s| *s != written) {
                return Err(format!("the upstream sent {written} of {s} bytes"));
            }
            let actual = hasher.clone().finish();
            if actual != digest {
                return Err(format!("the upstream sent content with digest {actual}"));
            }
            // Checked: readers may finish while the file becomes a blob of the store.
            fill.state.send_replace(State::Verified { size: written });
            drop(file);
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
    }
}

/// A client's body: the arriving blob read from the upload file, opened before the
/// fill could end (renamed or removed, it reads on), up to what may be sent.
fn follow(
    file: std::fs::File,
    mut rx: watch::Receiver<State>,
    size: u64,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> {
    let (tx, out) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(2);
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let fail = |why: String| {
            let _ = tx.blocking_send(Err(std::io::Error::other(why)));
        };
        let mut at = 0u64;
        loop {
            let state = rx.borrow_and_update().clone();
            let (limit, done) = match state {
                State::Writing { readable, .. } => (readable, false),
                State::Verified { size } | State::Done { size } => (size, true),
                State::Failed(why) => return fail(why),
                State::Starting => (0, false),
            };
            while at < limit {
                let n = ((limit - at) as usize).min(READ_CHUNK);
                let mut buf = vec![0u8; n];
                if let Err(e) = file.read_exact_at(&mut buf, at) {
                    return fail(format!("reading the arriving blob: {e}"));
                }
                if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                    return; // the client went away
                }
                at += n as u64;
            }
            if done && at == size {
                return;
            }
            if handle.block_on(rx.changed()).is_err() {
                return fail("the fetch stopped".into());
            }
        }
    });
    futures_util::stream::unfold(
        out,
        |mut out| async move { out.recv().await.map(|c| (c, out)) },
    )
}
