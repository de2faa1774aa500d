//! Blob uploads when the blobs live in object storage (`--blob-store s3://…`).
//!
//! The HTTP side is the one of [`crate::uploads`] (same checks, same answers); what
//! differs is where the bytes go. Each request streams its body into an
//! [`ObjectUpload`] (hashed as it passes, sent in equal parts), and the session's state
//! is written back to the metadata database with a compare-and-set, so that the next
//! chunk may reach any replica. As with files, a body that breaks off is kept (the
//! client asks how much arrived and resumes from there); a refused chunk is not. Two
//! requests on one session at once (two replicas) are told apart by the same
//! compare-and-set before each part ([`berth_store::object`]): the one that loses
//! writes nothing and gets 416, as a chunk at a stale offset does.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use berth_image::{Digest, RepositoryName};
use berth_store::{ObjectBlobs, ObjectUpload, SessionRow, StoreError, UploadState};
use futures_util::future::BoxFuture;
use futures_util::StreamExt;

use crate::error::{ApiError, ApiResult, Code};
use crate::policy::Room;
use crate::routes::{digest, query_get, query_pairs};
use crate::uploads::{
    blob_created, check_chunk_length, check_chunk_start, content_range, quota_room_after,
    range_len, refuse, session, session_response,
};
use crate::Registry;

/// The session's state as stored (the JSON, to compare against) and parsed.
pub(crate) fn state(reg: &Registry, id: &str) -> ApiResult<(Option<String>, UploadState)> {
    let upload = reg
        .meta
        .upload(id)?
        .ok_or_else(|| ApiError::new(Code::BlobUploadUnknown).detail(format!("upload {id}")))?;
    let parsed = match &upload.state {
        Some(json) => UploadState::from_json(json)?,
        None => UploadState::default(),
    };
    Ok((upload.state, parsed))
}

/// Session `id`'s row in the metadata, for the compare-and-set an [`ObjectUpload`]
/// makes before each part and when it saves.
struct Row {
    reg: Arc<Registry>,
    id: String,
}

impl Row {
    fn new(reg: &Arc<Registry>, id: &str) -> Row {
        Row {
            reg: reg.clone(),
            id: id.to_string(),
        }
    }
}

impl SessionRow for Row {
    fn swap(&self, old: Option<String>, new: String) -> BoxFuture<'_, berth_store::Result<bool>> {
        let (reg, id) = (self.reg.clone(), self.id.clone());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                reg.meta.set_upload_state(&id, old.as_deref(), &new)
            })
            .await
            .map_err(|e| StoreError::Corrupt(format!("a metadata task failed: {e}")))?
        })
    }
}

/// Streams `body` into `up`. A body that breaks off is an error.
async fn receive(
    reg: &Arc<Registry>,
    up: &mut ObjectUpload<'_>,
    body: Body,
    room: Option<&Room>,
) -> ApiResult<()> {
    let mut frames = body.into_data_stream();
    while let Some(frame) = frames.next().await {
        let bytes = frame.map_err(|e| {
            ApiError::new(Code::BlobUploadInvalid).detail(format!("request body broke off: {e}"))
        })?;
        reg.metrics.bytes_received(bytes.len() as u64);
        // Past the quota (a body of unannounced length): refused, and not kept.
        if let Some(room) = room {
            room.check(up.len() + bytes.len() as u64)?;
        }
        up.write(&bytes).await?;
    }
    Ok(())
}

/// Ends what session `id`'s latest state names (it may name a multipart upload the
/// failed request started); `fallback` when the state cannot be read.
async fn discard_latest(reg: &Registry, objects: &ObjectBlobs, id: &str, fallback: &UploadState) {
    let latest = state(reg, id).map(|(_, s)| s);
    let _ = objects
        .discard(id, latest.as_ref().unwrap_or(fallback))
        .await;
}

/// `POST …/blobs/uploads/?digest=`: the whole blob in one request, with no session.
pub(crate) async fn monolithic(
    reg: &Arc<Registry>,
    objects: &ObjectBlobs,
    name: &RepositoryName,
    d: Digest,
    body: Body,
    room: Option<&Room>,
) -> ApiResult {
    // A session row of its own, so that a multipart upload it starts is known to
    // the sweeper if this replica dies before the end.
    let id = crate::uploads::new_id();
    let (n, id2) = (name.to_string(), id.clone());
    reg.blocking(move |r| r.meta.create_upload(&id2, &n))
        .await?;
    let row = Row::new(reg, &id);
    let mut up = objects.resume(&id, None, &row).await?;
    let result = match receive(reg, &mut up, body, room).await {
        Ok(()) => commit(reg, up, name, &d).await,
        Err(e) => {
            let _ = up.abandon().await;
            Err(e)
        }
    };
    if let Ok(false) = result {
        // Stored and linked, but some of its objects stay: so does the row naming
        // them, for the sweeper.
        return Ok(blob_created(name, &d));
    }
    if result.is_err() {
        discard_latest(reg, objects, &id, &UploadState::default()).await;
    }
    let id2 = id.clone();
    reg.blocking(move |r| r.meta.delete_upload(&id2)).await?;
    result?;
    Ok(blob_created(name, &d))
}

/// Verifies and stores the blob, then links it to `name` (the quota checked with its
/// real size first; the commit noted before the blob's key can appear, as for files).
/// Returns whether the session's objects are all gone ([`berth_store::Committed`]).
async fn commit(
    reg: &Arc<Registry>,
    up: ObjectUpload<'_>,
    name: &RepositoryName,
    d: &Digest,
) -> ApiResult<bool> {
    if let Err(e) = crate::policy::check_quota(reg, name.as_str(), Some(d), up.len()) {
        let _ = up.abandon().await;
        return Err(e);
    }
    let d2 = d.clone();
    reg.blocking(move |r| r.meta.begin_blob_commit(&d2)).await?;
    let done = up.commit(d).await?;
    let (n, d2) = (name.to_string(), d.clone());
    reg.blocking(move |r| r.link_blob(&n, &d2, done.len))
        .await?;
    Ok(done.cleaned)
}

/// `PATCH /v2/<name>/blobs/uploads/<id>`.
pub(crate) async fn patch(
    reg: &Arc<Registry>,
    objects: &ObjectBlobs,
    name: &RepositoryName,
    id: &str,
    req: Request,
) -> ApiResult {
    let (parts, body) = req.into_parts();
    // A session first: a made-up id must not take a slot (they are kept in memory
    // until their session ends, which a made-up one never does).
    if let Err(e) = session(reg, name, id) {
        return refuse(body, e).await;
    }
    let slot = reg.uploads.slot(id);
    let _busy = slot.lock().await;
    let opened = (|| {
        session(reg, name, id)?;
        let (stored, base) = state(reg, id)?;
        let range = content_range(&parts.headers)?;
        check_chunk_start(range, base.len, name, id)?;
        check_chunk_length(range, &parts.headers)?;
        let room = quota_room_after(reg, name, None, &parts.headers, base.len)?;
        Ok((stored, base, range, room))
    })();
    let (stored, base, range, room) = match opened {
        Ok(x) => x,
        Err(e) => return refuse(body, e).await,
    };
    let row = Row::new(reg, id);
    let mut up = match objects.resume(id, stored.as_deref(), &row).await {
        Ok(up) => up,
        Err(e) => return refuse(body, e.into()).await,
    };
    if let Err(e) = receive(reg, &mut up, body, room.as_ref()).await {
        if e.code == Code::Denied {
            // Over the quota: not kept.
            let _ = up.abandon().await;
            return Err(e);
        }
        // A body that broke off is kept, as with files: the client asks how much
        // arrived and resumes from there. (A chunk whose part was refused or failed
        // cannot be: `save` gives it up.)
        let _ = up.save().await;
        return Err(e);
    }
    let got = up.len() - base.len;
    if let Some(said) = range.and_then(range_len) {
        if got != said {
            let _ = up.abandon().await;
            return Err(ApiError::new(Code::SizeInvalid).detail(format!(
                "Content-Range says {said} bytes, the body had {got}"
            )));
        }
    }
    // Stored only if the session is still as this chunk found it (compare-and-set:
    // two replicas given chunks of one session at once cannot both extend it).
    let new = up.save().await?;
    Ok(session_response(StatusCode::ACCEPTED, name, id, new.len))
}

/// `PUT /v2/<name>/blobs/uploads/<id>?digest=`: the last chunk (optional) and commit.
pub(crate) async fn finish(
    reg: &Arc<Registry>,
    objects: &ObjectBlobs,
    name: &RepositoryName,
    id: &str,
    req: Request,
) -> ApiResult {
    let (parts, body) = req.into_parts();
    if let Err(e) = session(reg, name, id) {
        return refuse(body, e).await;
    }
    let slot = reg.uploads.slot(id);
    let _busy = slot.lock().await;
    let opened = (|| {
        let q = query_pairs(parts.uri.query());
        let d = digest(query_get(&q, "digest").ok_or_else(|| {
            ApiError::new(Code::DigestInvalid).detail("the digest query parameter is required")
        })?)?;
        session(reg, name, id)?;
        let (stored, base) = state(reg, id)?;
        let range = content_range(&parts.headers)?;
        check_chunk_start(range, base.len, name, id)?;
        check_chunk_length(range, &parts.headers)?;
        let room = quota_room_after(reg, name, Some(&d), &parts.headers, base.len)?;
        Ok((d, stored, base, room))
    })();
    let (d, stored, base, room) = match opened {
        Ok(x) => x,
        Err(e) => return refuse(body, e).await,
    };
    // A PUT retried after an earlier try stored the blob and then failed (its link,
    // its clean-up) finds the blob in the bucket: its bytes are checked against it
    // without the session's tail and multipart upload, which that try removed.
    let body_len = axum::body::HttpBody::size_hint(&body).exact();
    let row = Row::new(reg, id);
    let mut up = match objects
        .resume_for(id, stored.as_deref(), &row, &d, body_len)
        .await
    {
        Ok(up) => up,
        Err(e) => return refuse(body, e.into()).await,
    };
    if let Err(e) = receive(reg, &mut up, body, room.as_ref()).await {
        let _ = up.abandon().await;
        return Err(e);
    }
    let result = commit(reg, up, name, &d).await;
    // Any other failure keeps the session: the blob, if it reached the bucket, is
    // linked by a retry of this request (above).
    if result.is_ok()
        || matches!(&result, Err(e) if matches!(e.code, Code::DigestInvalid | Code::Denied))
    {
        // Committed, or the data was thrown away: the session is over either way.
        if result.is_err() {
            discard_latest(reg, objects, id, &base).await;
        }
        reg.uploads.forget(id);
        // Objects a committed session could not remove stay named by its row, which
        // the sweeper ends.
        if !matches!(result, Ok(false)) {
            let id2 = id.to_string();
            reg.blocking(move |r| r.meta.delete_upload(&id2)).await?;
        }
    }
    result?;
    Ok(blob_created(name, &d))
}

/// `DELETE /v2/<name>/blobs/uploads/<id>`: the session's parts and tail go with it.
pub(crate) async fn cancel(reg: &Arc<Registry>, objects: &ObjectBlobs, id: &str) -> ApiResult<()> {
    let (_, base) = state(reg, id)?;
    objects.discard(id, &base).await?;
    let id2 = id.to_string();
    reg.blocking(move |r| r.meta.delete_upload(&id2)).await?;
    Ok(())
}

/// Ends sessions untouched for the upload TTL: their multipart uploads are aborted and
/// their tails removed, then their rows. Every replica may run it; a session two
/// replicas sweep at once is ended once (what is gone already is not an error).
pub(crate) async fn sweep(reg: &Arc<Registry>, objects: &ObjectBlobs) -> Result<usize, ApiError> {
    let cutoff = berth_store::unix_now() - reg.config.upload_ttl.as_secs() as i64;
    let stale = reg.blocking(move |r| r.meta.stale_uploads(cutoff)).await?;
    let mut removed = 0;
    for id in stale {
        reg.uploads.forget(&id);
        let base = match state(reg, &id) {
            Ok((_, base)) => base,
            Err(e) if matches!(e.code, Code::BlobUploadUnknown) => continue,
            Err(e) => return Err(e),
        };
        objects.discard(&id, &base).await?;
        let id2 = id.clone();
        reg.blocking(move |r| r.meta.delete_upload(&id2)).await?;
        removed += 1;
    }
    if removed > 0 {
        tracing::info!(removed, "expired upload sessions removed");
    }
    Ok(removed)
}
