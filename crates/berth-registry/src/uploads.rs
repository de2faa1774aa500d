//! Blob uploads: monolithic, POST-then-PUT, chunked PATCH, resumable, cross-repository
//! mount.
//!
//! The path of a blob, top to bottom: HTTP body frames -> [`receive`] (a blocking thread
//! writes each frame to the upload file and hashes it as it passes) -> `BlobStore::commit`
//! (verify digest, fsync, rename into `blobs/`) -> `MetaStore::link_blob` (the row that
//! makes the blob visible in the repository).
//!
//! Between two requests of a chunked upload only the hash state stays in memory. After a
//! restart it is gone, and the upload file is hashed once from disk when the session is
//! resumed: the data on disk is the truth, the session row says who owns it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_auth::Action;
use berth_image::{Digest, RepositoryName};
use berth_store::blobs::HashState;
use berth_store::{BlobWriter, Block};
use futures_util::StreamExt;

use crate::access::Caller;
use crate::error::{ApiError, ApiResult, Code};
use crate::routes::{digest, hv, location, query_get, query_pairs, repo};
use crate::Registry;

/// Blocks (of `BLOCK_SIZE`, 1 MiB) in flight between the network task and the writing
/// thread: with the one being filled and the one being written, an upload holds about
/// 4 MiB whatever its size.
const BLOCKS_IN_FLIGHT: usize = 2;
/// How much of a refused request's body is read before answering (see [`refuse`]).
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

pub(crate) type Slot = Arc<tokio::sync::Mutex<Option<HashState>>>;

/// In-memory state of the upload sessions this process is serving.
#[derive(Default)]
pub(crate) struct Sessions {
    slots: Mutex<HashMap<String, Slot>>,
}

impl Sessions {
    pub(crate) fn slot(&self, id: &str) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(id.to_string()).or_default().clone()
    }

    pub(crate) fn forget(&self, id: &str) {
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// How many sessions this process holds state for.
    pub(crate) fn len(&self) -> usize {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True when this process has no state for `id` (so its file is nobody's).
    pub(crate) fn is_idle_orphan(&self, id: &str) -> bool {
        !self
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(id)
    }
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn upload_path(name: &RepositoryName, id: &str) -> String {
    format!("/v2/{name}/blobs/uploads/{id}")
}

/// `Range: 0-<last byte>` as distribution writes it (`0-0` when empty).
fn range_value(len: u64) -> HeaderValue {
    hv(&format!("0-{}", len.saturating_sub(1)))
}

pub(crate) fn session_response(
    status: StatusCode,
    name: &RepositoryName,
    id: &str,
    len: u64,
) -> Response {
    (
        status,
        [
            location(upload_path(name, id)),
            (header::RANGE, range_value(len)),
            (
                header::HeaderName::from_static("docker-upload-uuid"),
                hv(id),
            ),
            (header::CONTENT_LENGTH, HeaderValue::from_static("0")),
        ],
    )
        .into_response()
}

pub(crate) fn blob_created(name: &RepositoryName, d: &Digest) -> Response {
    (
        StatusCode::CREATED,
        [
            location(format!("/v2/{name}/blobs/{d}")),
            (
                header::HeaderName::from_static("docker-content-digest"),
                hv(&d.to_string()),
            ),
            (header::CONTENT_LENGTH, HeaderValue::from_static("0")),
        ],
    )
        .into_response()
}

/// `POST /v2/<name>/blobs/uploads/`
pub(crate) async fn start(
    reg: &Arc<Registry>,
    name: &RepositoryName,
    req: Request,
    caller: &Caller,
) -> ApiResult {
    let q = query_pairs(req.uri().query());
    if let Some(mount) = query_get(&q, "mount") {
        let d = digest(mount)?;
        let from = query_get(&q, "from").map(repo).transpose()?;
        if let Some(size) = mountable(reg, &d, from.as_ref(), caller)? {
            crate::policy::check_quota(reg, name.as_str(), Some(&d), size)?;
            let (n, d2) = (name.to_string(), d.clone());
            reg.blocking(move |r| r.link_blob(&n, &d2, size)).await?;
            return Ok(blob_created(name, &d));
        }
        // Not mountable: fall back to an ordinary upload session, as the spec says.
    }
    if let Some(d) = query_get(&q, "digest") {
        let d = digest(d)?;
        return monolithic(reg, name, d, req).await;
    }
    let id = new_id();
    let (n, id2) = (name.to_string(), id.clone());
    reg.blocking(move |r| {
        let max = r.config.max_open_uploads;
        if !r.meta.create_upload_bounded(&id2, &n, max)? {
            let ns = berth_auth::names::namespace_of(&n);
            return Err(ApiError::new(Code::TooManyRequests).message(format!(
                "{max} upload sessions are open in namespace {ns}: finish or cancel \
                 (DELETE) some; unfinished ones are removed {} after their last request",
                humantime::format_duration(r.config.upload_ttl)
            )));
        }
        if r.objects.is_none() {
            if let Err(e) = r.blobs.create_upload(&id2) {
                // The row without its file would be a session that fails every chunk.
                let _ = r.meta.delete_upload(&id2);
                return Err(e.into());
            }
        }
        Ok(())
    })
    .await?;
    Ok(session_response(StatusCode::ACCEPTED, name, &id, 0))
}

/// Size of blob `d` if it may be mounted: from `from` when named and the caller may
/// pull from it, else from any repository (automatic mount) while access control does
/// not apply. Otherwise the caller uploads the blob like anyone: a mount must never
/// tell who cannot read a repository that a blob is in it.
fn mountable(
    reg: &Registry,
    d: &Digest,
    from: Option<&RepositoryName>,
    caller: &Caller,
) -> ApiResult<Option<u64>> {
    let size = match from {
        Some(from) if caller.may(from.as_str(), Action::Pull) => {
            reg.meta.blob_in_repo(from.as_str(), d)?
        }
        Some(_) => None,
        None if !caller.enforced => reg.meta.blob_known(d)?,
        None => None,
    };
    Ok(size.filter(|_| reg.blob_bytes().has(d).unwrap_or(false)))
}

/// `POST …/blobs/uploads/?digest=`: the whole blob in one request.
async fn monolithic(
    reg: &Arc<Registry>,
    name: &RepositoryName,
    d: Digest,
    req: Request,
) -> ApiResult {
    let room = match quota_room(reg, name, Some(&d), req.headers()) {
        Ok(room) => room,
        Err(e) => return refuse(req.into_body(), e).await,
    };
    if let Some(objects) = &reg.objects {
        let body = req.into_body();
        return crate::object_uploads::monolithic(reg, objects, name, d, body, room.as_ref()).await;
    }
    let id = new_id();
    let slot = reg.uploads.slot(&id);
    let _busy = slot.lock().await;
    let id2 = id.clone();
    let writer = reg.blocking(move |r| r.blobs.create_upload(&id2)).await?;
    let body = req.into_body();
    let to = Closing {
        name,
        id: &id,
        digest: &d,
        room: room.as_ref(),
        keep: None,
    };
    let result = commit_body(reg, writer, body, to).await;
    reg.uploads.forget(&id);
    result?;
    Ok(blob_created(name, &d))
}

/// Looks up session `id` and checks it belongs to `name`.
pub(crate) fn session(reg: &Registry, name: &RepositoryName, id: &str) -> ApiResult<()> {
    let unknown = || ApiError::new(Code::BlobUploadUnknown).detail(format!("upload {id}"));
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(unknown());
    }
    match reg.meta.upload(id)? {
        Some(u) if u.repository == name.as_str() => Ok(()),
        _ => Err(unknown()),
    }
}

/// Reopens the upload file for appending, with the hash state kept in `state`.
async fn resume(reg: &Arc<Registry>, id: &str, state: Option<HashState>) -> ApiResult<BlobWriter> {
    let id2 = id.to_string();
    reg.blocking(move |r| r.blobs.resume_upload(&id2, state))
        .await?
        .ok_or_else(|| {
            ApiError::new(Code::BlobUploadUnknown).detail(format!("upload {id} has no data"))
        })
}

/// Parses `Content-Range: <start>-<end>` (with or without a `bytes ` prefix).
pub(crate) fn content_range(headers: &HeaderMap) -> ApiResult<Option<(u64, u64)>> {
    let Some(v) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::new(Code::BlobUploadInvalid)
            .status(StatusCode::RANGE_NOT_SATISFIABLE)
            .detail("malformed Content-Range")
    };
    let s = v.to_str().map_err(|_| bad())?.trim();
    let s = s.strip_prefix("bytes ").unwrap_or(s);
    let s = s.split('/').next().unwrap_or(s);
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let (a, b): (u64, u64) = (
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    );
    if b < a {
        return Err(bad());
    }
    // `0-18446744073709551615` is 2^64 bytes, a length no u64 holds (and no blob has):
    // refused here, so that no caller's `end - start + 1` can overflow.
    if range_len((a, b)).is_none() {
        return Err(ApiError::new(Code::BlobUploadInvalid)
            .status(StatusCode::RANGE_NOT_SATISFIABLE)
            .detail(format!("Content-Range {a}-{b} is longer than any blob")));
    }
    Ok(Some((a, b)))
}

/// Bytes in the inclusive range `start-end`; `None` when that does not fit in a u64.
pub(crate) fn range_len((start, end): (u64, u64)) -> Option<u64> {
    end.checked_sub(start)?.checked_add(1)
}

/// A chunk must start where the upload ends.
pub(crate) fn check_chunk_start(
    range: Option<(u64, u64)>,
    len: u64,
    name: &RepositoryName,
    id: &str,
) -> ApiResult<()> {
    match range {
        Some((start, _)) if start != len => Err(ApiError::new(Code::BlobUploadInvalid)
            .status(StatusCode::RANGE_NOT_SATISFIABLE)
            .detail(format!("chunk starts at {start}, upload has {len} bytes"))
            .header(header::LOCATION, hv(&upload_path(name, id)))
            .header(header::RANGE, range_value(len))),
        _ => Ok(()),
    }
}

/// A declared `Content-Length` must agree with the `Content-Range` it comes with.
pub(crate) fn check_chunk_length(range: Option<(u64, u64)>, headers: &HeaderMap) -> ApiResult<()> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match (range, declared) {
        (Some(range), Some(n)) if range_len(range) != Some(n) => {
            Err(ApiError::new(Code::SizeInvalid).detail(format!(
                "Content-Range {}-{} does not cover Content-Length {n} bytes",
                range.0, range.1
            )))
        }
        _ => Ok(()),
    }
}

/// A session opened for the chunk a request carries, locked against other requests to
/// the same session until it is dropped.
struct OpenChunk {
    state: tokio::sync::OwnedMutexGuard<Option<HashState>>,
    writer: BlobWriter,
    range: Option<(u64, u64)>,
}

/// Reopens session `id` for the chunk described by `headers`: the chunk must start
/// where the upload ends and agree with its `Content-Length`. A refused chunk leaves the
/// session as it was.
async fn open_chunk(
    reg: &Arc<Registry>,
    name: &RepositoryName,
    id: &str,
    headers: &HeaderMap,
) -> ApiResult<OpenChunk> {
    session(reg, name, id)?;
    let range = content_range(headers)?;
    let mut state = reg.uploads.slot(id).lock_owned().await;
    let writer = resume(reg, id, state.take()).await?;
    let check = check_chunk_start(range, writer.len(), name, id)
        .and_then(|()| check_chunk_length(range, headers));
    match check {
        Ok(()) => Ok(OpenChunk {
            state,
            writer,
            range,
        }),
        Err(e) => {
            *state = Some(writer.into_state());
            Err(e)
        }
    }
}

/// Answers `e` after reading (and dropping) what the client is still sending, up to
/// [`DRAIN_LIMIT`]. Answering before the body is read closes the connection under a
/// client that is still writing: it sees a broken pipe instead of the answer.
pub(crate) async fn refuse(body: Body, e: ApiError) -> ApiResult {
    let mut frames = body.into_data_stream();
    let mut read = 0;
    while let Some(Ok(frame)) = frames.next().await {
        read += frame.len();
        if read > DRAIN_LIMIT {
            break;
        }
    }
    Err(e)
}

/// The namespace's quota for an upload request bringing `already` bytes more than its
/// session holds: checked at once when the request says its length (`403 DENIED`
/// before a byte is stored), else returned, to be checked as the bytes arrive
/// ([`crate::policy::room`]). `digest`: the blob, when the request names it.
pub(crate) fn quota_room(
    reg: &Registry,
    name: &RepositoryName,
    digest: Option<&Digest>,
    headers: &HeaderMap,
) -> ApiResult<Option<crate::policy::Room>> {
    quota_room_after(reg, name, digest, headers, 0)
}

/// [`quota_room`] for a request that continues a session holding `already` bytes.
pub(crate) fn quota_room_after(
    reg: &Registry,
    name: &RepositoryName,
    digest: Option<&Digest>,
    headers: &HeaderMap,
    already: u64,
) -> ApiResult<Option<crate::policy::Room>> {
    match content_length(headers) {
        Some(len) => {
            let total = already.saturating_add(len);
            crate::policy::check_quota(reg, name.as_str(), digest, total)?;
            Ok(None)
        }
        None => crate::policy::room(reg, name.as_str(), digest),
    }
}

/// `PATCH /v2/<name>/blobs/uploads/<id>`: appends a chunk (or streams the whole blob).
pub(crate) async fn patch(
    reg: &Arc<Registry>,
    name: &RepositoryName,
    id: &str,
    req: Request,
) -> ApiResult {
    if let Some(objects) = &reg.objects {
        return crate::object_uploads::patch(reg, objects, name, id, req).await;
    }
    let (parts, body) = req.into_parts();
    let OpenChunk {
        mut state,
        writer,
        range,
    } = match open_chunk(reg, name, id, &parts.headers).await {
        Ok(chunk) => chunk,
        Err(e) => return refuse(body, e).await,
    };
    // Over the namespace's quota with what is already here: refused before storing it,
    // or, with no length said, as it arrives.
    let room = match quota_room_after(reg, name, None, &parts.headers, writer.len()) {
        Ok(room) => room,
        Err(e) => {
            *state = Some(writer.into_state());
            drop(state);
            return refuse(body, e).await;
        }
    };
    // A chunk that does not match its Content-Range, or that went over the quota, is
    // not kept; a body that breaks off is (the client asks how much arrived, and
    // resumes from there).
    let snapshot = (range.is_some() || room.is_some()).then(|| writer.snapshot());
    let before = writer.len();
    let (mut writer, result) = receive(reg, writer, body, room.as_ref()).await?;
    let mut size_error = None;
    match (range, snapshot, &result) {
        (_, Some(snapshot), Err(e)) if e.code == Code::Denied => writer.rollback(snapshot)?,
        (Some(range), Some(snapshot), Ok(())) => {
            let got = writer.len().saturating_sub(before);
            if range_len(range) != Some(got) {
                writer.rollback(snapshot)?;
                size_error = Some(ApiError::new(Code::SizeInvalid).detail(format!(
                    "Content-Range {}-{} does not cover the body's {got} bytes",
                    range.0, range.1
                )));
            }
        }
        _ => {}
    }
    let len = writer.len();
    *state = Some(writer.into_state());
    drop(state);
    let id2 = id.to_string();
    reg.blocking(move |r| r.meta.touch_upload(&id2)).await?;
    result?;
    if let Some(e) = size_error {
        return Err(e);
    }
    Ok(session_response(StatusCode::ACCEPTED, name, id, len))
}

/// `PUT /v2/<name>/blobs/uploads/<id>?digest=`: last chunk (optional) and commit.
pub(crate) async fn finish(
    reg: &Arc<Registry>,
    name: &RepositoryName,
    id: &str,
    req: Request,
) -> ApiResult {
    if let Some(objects) = &reg.objects {
        return crate::object_uploads::finish(reg, objects, name, id, req).await;
    }
    let (parts, body) = req.into_parts();
    let opened: ApiResult<_> = async {
        let q = query_pairs(parts.uri.query());
        let d = digest(query_get(&q, "digest").ok_or_else(|| {
            ApiError::new(Code::DigestInvalid).detail("the digest query parameter is required")
        })?)?;
        let chunk = open_chunk(reg, name, id, &parts.headers).await?;
        let held = chunk.writer.len();
        let room = quota_room_after(reg, name, Some(&d), &parts.headers, held)?;
        Ok((d, chunk, room))
    }
    .await;
    let (
        d,
        OpenChunk {
            mut state, writer, ..
        },
        room,
    ) = match opened {
        Ok(x) => x,
        Err(e) => return refuse(body, e).await,
    };
    let to = Closing {
        name,
        id,
        digest: &d,
        room: room.as_ref(),
        keep: Some(&mut *state),
    };
    let result = commit_body(reg, writer, body, to).await;
    drop(state);
    if result.is_ok()
        || matches!(&result, Err(e) if matches!(e.code, Code::DigestInvalid | Code::Denied))
    {
        // Committed, or the data was thrown away: the session is over either way.
        reg.uploads.forget(id);
        let id2 = id.to_string();
        reg.blocking(move |r| r.meta.delete_upload(&id2)).await?;
    }
    result?;
    Ok(blob_created(name, &d))
}

/// Where a closing body goes: the blob `digest` of repository `name`, through the
/// upload `id`.
struct Closing<'a> {
    name: &'a RepositoryName,
    id: &'a str,
    digest: &'a Digest,
    /// The quota's room, when the namespace has one.
    room: Option<&'a crate::policy::Room>,
    /// Where a resumable session keeps its hash state when the body breaks off.
    keep: Option<&'a mut Option<HashState>>,
}

/// Appends `body` to `writer` (within the quota's room), then verifies and commits
/// the blob and links it to its repository. When the body breaks off, the hash state
/// goes back to `keep` (a resumable session) instead of being lost; over the quota,
/// the data goes, as at the commit.
async fn commit_body(
    reg: &Arc<Registry>,
    writer: BlobWriter,
    body: Body,
    to: Closing<'_>,
) -> ApiResult<()> {
    let Closing {
        name,
        id,
        digest: d,
        room,
        keep,
    } = to;
    let (writer, result) = receive(reg, writer, body, room).await?;
    if let Err(e) = result {
        match keep {
            Some(slot) if e.code != Code::Denied => *slot = Some(writer.into_state()),
            _ => {
                drop(writer);
                let _ = reg.blobs.remove_upload(id);
            }
        }
        return Err(e);
    }
    // The quota again with the real size, before the blob is stored: a refused blob
    // is thrown away (its bytes never reach `blobs/`).
    if let Err(e) = crate::policy::check_quota(reg, name.as_str(), Some(d), writer.len()) {
        drop(writer);
        let _ = reg.blobs.remove_upload(id);
        return Err(e);
    }
    let (n, d2) = (name.to_string(), d.clone());
    reg.blocking(move |r| {
        // Noted before the file can appear in blobs/, cleared by the link: a crash in
        // between leaves a note that start-up follows to the file.
        r.meta.begin_blob_commit(&d2)?;
        let size = r.blobs.commit(writer, &d2)?;
        r.link_blob(&n, &d2, size)
    })
    .await?;
    Ok(())
}

/// The request's `Content-Length`, when it says one.
pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Streams a request body into `writer`: the network task forwards frames, a blocking
/// thread writes and hashes them, so receiving and hashing overlap on two cores.
///
/// Returns the writer with the outcome of the transfer (a body that broke off is an
/// error, and what arrived is kept); only when the writing thread itself is lost is
/// there no writer to return, and the session's next request rehashes from the file.
async fn receive(
    reg: &Registry,
    writer: BlobWriter,
    body: Body,
    room: Option<&crate::policy::Room>,
) -> ApiResult<(BlobWriter, ApiResult<()>)> {
    let mut size = writer.len();
    let mut over = None;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Block>(BLOCKS_IN_FLIGHT);
    let (recycle, spare) = std::sync::mpsc::channel::<Block>();
    let consumer = tokio::task::spawn_blocking(move || {
        let mut w = writer;
        while let Some(mut block) = rx.blocking_recv() {
            if let Err(e) = w.write(block.as_slice()) {
                return (w, Err(e));
            }
            block.clear();
            let _ = recycle.send(block);
        }
        // Whatever arrived is in the file, even when the body broke off: the client
        // may resume from there.
        let flushed = w.flush();
        (w, flushed)
    });
    let mut stream = body.into_data_stream();
    let mut body_error = None;
    // Each frame is copied once, into an aligned block that the writer hashes and sends
    // to the disk as it is. The frame is released at once, so hyper reuses its read
    // buffer instead of allocating (and faulting in) a new one while frames wait.
    let mut block = Block::new();
    // Once the writer failed (a full disk), the rest of the body is read and dropped:
    // closing with the body unread would reset the connection, and the client would
    // see "connection reset" instead of the answer that says why.
    let mut writing = true;
    'frames: loop {
        match stream.next().await {
            Some(Ok(bytes)) => {
                reg.metrics.bytes_received(bytes.len() as u64);
                size += bytes.len() as u64;
                if let Some(Err(e)) = room.map(|r| r.check(size)) {
                    // Past the quota: the rest is not read (nor kept by the caller).
                    over = Some(e);
                    break;
                }
                if !writing {
                    continue;
                }
                let mut rest = &bytes[..];
                while !rest.is_empty() {
                    rest = &rest[block.fill_from(rest)..];
                    if block.is_full() {
                        let next = spare.try_recv().unwrap_or_default();
                        if tx.send(std::mem::replace(&mut block, next)).await.is_err() {
                            // The writer failed; its error is reported below.
                            writing = false;
                            continue 'frames;
                        }
                    }
                }
            }
            Some(Err(e)) => {
                body_error = Some(e);
                break;
            }
            None => break,
        }
    }
    if writing && !block.is_empty() {
        let _ = tx.send(block).await;
    }
    drop(tx);
    let (writer, written) = consumer.await?;
    let result =
        match (over, written, body_error) {
            (Some(e), _, _) => Err(e),
            (None, Err(e), _) => Err(ApiError::from(e)),
            (None, Ok(()), Some(e)) => Err(ApiError::new(Code::BlobUploadInvalid)
                .detail(format!("request body broke off: {e}"))),
            (None, Ok(()), None) => Ok(()),
        };
    Ok((writer, result))
}

/// `GET /v2/<name>/blobs/uploads/<id>`: how much has arrived.
pub(crate) async fn status(reg: &Arc<Registry>, name: &RepositoryName, id: &str) -> ApiResult {
    session(reg, name, id)?;
    if reg.objects.is_some() {
        let len = crate::object_uploads::state(reg, id)?.1.len;
        return Ok(session_response(StatusCode::NO_CONTENT, name, id, len));
    }
    let len = reg.blobs.upload_len(id)?.ok_or_else(|| {
        ApiError::new(Code::BlobUploadUnknown).detail(format!("upload {id} has no data"))
    })?;
    Ok(session_response(StatusCode::NO_CONTENT, name, id, len))
}

/// `DELETE /v2/<name>/blobs/uploads/<id>`: cancels the upload and drops its data.
pub(crate) async fn cancel(reg: &Arc<Registry>, name: &RepositoryName, id: &str) -> ApiResult {
    session(reg, name, id)?;
    let slot = reg.uploads.slot(id);
    let _busy = slot.lock().await;
    if let Some(objects) = &reg.objects {
        crate::object_uploads::cancel(reg, objects, id).await?;
        reg.uploads.forget(id);
        return Ok((StatusCode::NO_CONTENT, [(header::CONTENT_LENGTH, "0")]).into_response());
    }
    let id2 = id.to_string();
    reg.blocking(move |r| {
        r.blobs.remove_upload(&id2)?;
        r.meta.delete_upload(&id2)
    })
    .await?;
    reg.uploads.forget(id);
    Ok((StatusCode::NO_CONTENT, [(header::CONTENT_LENGTH, "0")]).into_response())
}
