//! Blob reads and deletes: `GET`/`HEAD`/`DELETE /v2/<name>/blobs/<digest>`.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_image::RepositoryName;
use berth_store::BlobStore;

use crate::error::{ApiError, ApiResult, Code};
use crate::routes::{digest, hv};
use crate::Registry;

/// A blob is sent in memory-mapped windows of this size, a few at a time.
const SERVE_WINDOW: usize = 1024 * 1024;
const WINDOWS_IN_FLIGHT: usize = 2;
/// How long a presigned blob URL (`--blob-redirect`) is valid: long enough for a slow
/// client to start, short enough that a leaked URL soon stops working.
const REDIRECT_TTL: std::time::Duration = std::time::Duration::from_secs(20 * 60);

pub(crate) async fn get(
    reg: &Arc<Registry>,
    name: &RepositoryName,
    d: &str,
    headers: &HeaderMap,
    with_body: bool,
) -> ApiResult {
    let d = digest(d)?;
    let Some((size, linked_at)) = reg.meta.blob_link(name.as_str(), &d)? else {
        return Err(ApiError::new(Code::BlobUnknown).detail(&d));
    };
    if !with_body {
        crate::gc::renew_on_head(reg, name, &d, crate::gc::Headed::BlobLink, linked_at).await?;
    }
    let range = match headers.get(header::RANGE) {
        Some(v) => Some(parse_range(v.to_str().unwrap_or(""), size).ok_or_else(|| {
            ApiError::new(Code::RangeInvalid)
                .detail("unsatisfiable range")
                .header(header::CONTENT_RANGE, hv(&format!("bytes */{size}")))
        })?),
        None => None,
    };
    let (start, len) = range.unwrap_or((0, size));
    let mut builder = Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, len)
        .header("docker-content-digest", hv(&d.to_string()))
        .header(header::ETAG, hv(&format!("\"{d}\"")))
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, "max-age=31536000");
    if range.is_some() {
        builder = builder.status(StatusCode::PARTIAL_CONTENT).header(
            header::CONTENT_RANGE,
            hv(&format!("bytes {start}-{}/{size}", start + len - 1)),
        );
    }
    if !with_body {
        return builder.body(Body::empty()).map_err(ApiError::internal);
    }
    if let Some(objects) = &reg.objects {
        if reg.config().blob_redirect && range.is_none() {
            // The object store serves the bytes; the client follows with no credentials.
            let url = objects.presigned_get(&d, REDIRECT_TTL).await?;
            reg.metrics.bytes_sent(0);
            return Response::builder()
                .status(StatusCode::TEMPORARY_REDIRECT)
                .header(header::LOCATION, hv(&url))
                .header("docker-content-digest", hv(&d.to_string()))
                .header(header::CONTENT_LENGTH, 0)
                .body(Body::empty())
                .map_err(ApiError::internal);
        }
        let Some(stream) = objects.read(&d, start, len).await? else {
            return Err(ApiError::internal(format!(
                "blob {d} is linked but missing from the object store"
            )));
        };
        reg.metrics.bytes_sent(len);
        return builder
            .body(Body::from_stream(stream))
            .map_err(ApiError::internal);
    }
    let d2 = d.clone();
    let Some((file, stored)) = reg.blocking(move |r| r.blobs.open_blob(&d2)).await? else {
        // The metadata links a blob whose bytes are gone: report, do not pretend.
        return Err(ApiError::internal(format!(
            "blob {d} is linked but its file is missing"
        )));
    };
    if stored != size {
        return Err(ApiError::internal(format!(
            "blob {d} is {stored} bytes on disk, {size} in the metadata"
        )));
    }
    let stream = mapped_windows(file, start, len);
    reg.metrics.bytes_sent(len);
    builder
        .body(Body::from_stream(stream))
        .map_err(ApiError::internal)
}

/// Streams `len` bytes of `file` from `start` as memory-mapped windows. A blocking
/// thread maps each window and faults its pages in, a bounded channel hands windows to
/// the connection: memory stays at a few windows whatever the blob's size, and the
/// async side never waits for the disk.
fn mapped_windows(
    file: std::fs::File,
    start: u64,
    len: u64,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> {
    let (tx, rx) = tokio::sync::mpsc::channel(WINDOWS_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let end = start + len;
        let mut at = start;
        while at < end {
            let n = (end - at).min(SERVE_WINDOW as u64) as usize;
            let window = BlobStore::map_range(&file, at, n);
            let failed = window.is_err();
            if tx.blocking_send(window).is_err() || failed {
                return; // the client went away, or the error was sent
            }
            at += n as u64;
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|w| (w, rx)) })
}

/// `DELETE /v2/<name>/blobs/<digest>`: unlinks the blob from the repository, unless
/// an image under an immutable tag needs it (its tag would stay and never pull again).
pub(crate) async fn delete(reg: &Arc<Registry>, name: &RepositoryName, d: &str) -> ApiResult {
    let d = digest(d)?;
    let (repo, d2) = (name.to_string(), d.clone());
    let setting = crate::policy::immutable(reg, name.as_str())?;
    let guard = setting.clone();
    let unlinked = reg
        .blocking(move |r| {
            Ok::<_, ApiError>(r.meta.unlink_blob_guarded(&repo, &d2, &|tag| {
                guard.as_ref().is_some_and(|s| s.rule_for(tag).is_some())
            }))
        })
        .await?
        .map_err(|e| crate::manifests::immutable_error(name, e, setting.as_ref()))?;
    if unlinked {
        Ok((StatusCode::ACCEPTED, [(header::CONTENT_LENGTH, "0")]).into_response())
    } else {
        Err(ApiError::new(Code::BlobUnknown).detail(d))
    }
}

/// Parses a single `bytes=a-b`, `bytes=a-` or `bytes=-n` range against `size`; returns
/// (start, length), or `None` when it cannot be satisfied.
pub(crate) fn parse_range(value: &str, size: u64) -> Option<(u64, u64)> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 {
            return None;
        }
        (size.saturating_sub(n), size.checked_sub(1)?)
    } else {
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() {
            size.checked_sub(1)?
        } else {
            b.parse::<u64>().ok()?.min(size.checked_sub(1)?)
        };
        (start, end)
    };
    (start <= end && start < size).then(|| (start, end - start + 1))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 10)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 10)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 10)));
        assert_eq!(parse_range("bytes=95-200", 100), Some((95, 5)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=5-1", 100), None);
        assert_eq!(parse_range("bytes=0-1,3-4", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
        assert_eq!(parse_range("bytes=0-0", 0), None);
    }
}
