//! Writing image files on the local file system, for every file-based transport: a
//! blob is hashed as it is written and only renamed into place once its digest is
//! right, after an fsync; small files (indexes, manifests) are replaced atomically.

use std::path::Path;

use berth_image::Digest;
use berth_remote::ByteStream;
use futures_util::StreamExt;

use crate::TransportError;

pub(crate) fn io(path: &Path, what: &str) -> impl FnOnce(std::io::Error) -> TransportError {
    let context = format!("{what} {}", path.display());
    move |source| TransportError::Io { context, source }
}

/// Writes `stream` to `final_path` as blob `d`: a temporary file beside it, hashed and
/// written on a blocking thread with berth-store's writer (full 1 MiB blocks with
/// `O_DIRECT`, fsync at the end) while the async side receives, then renamed if the
/// digest is right. On any failure the temporary file is removed.
pub(crate) async fn write_blob(
    final_path: &Path,
    d: &Digest,
    stream: ByteStream,
) -> Result<(), TransportError> {
    let dir = final_path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let (tmp, actual, _) = write_temp(&dir, &d.hex()[..16], d.algorithm(), stream).await?;
    let result = if &actual != d {
        Err(TransportError::Digest {
            what: format!("blob for {}", dir.display()),
            expected: d.clone(),
            actual,
        })
    } else {
        tokio::fs::rename(&tmp, final_path)
            .await
            .map_err(io(final_path, "renaming to"))
    };
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result
}

/// Writes `stream` as a blob whose digest is learnt as it is written (a recompressed
/// layer), to `name_of(digest)`. Returns the digest and size.
pub(crate) async fn write_new_blob(
    dir: &Path,
    name_of: impl FnOnce(&Digest) -> std::path::PathBuf,
    stream: ByteStream,
) -> Result<(Digest, u64), TransportError> {
    let (tmp, d, size) = write_temp(dir, "new", berth_image::Algorithm::Sha256, stream).await?;
    let final_path = name_of(&d);
    if let Some(parent) = final_path.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(io(parent, "creating"))?;
    }
    match tokio::fs::rename(&tmp, &final_path).await {
        Ok(()) => Ok((d, size)),
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            Err(io(&final_path, "renaming to")(e))
        }
    }
}

/// Streams into a temporary file in `dir`, hashing; returns its path, digest and size.
async fn write_temp(
    dir: &Path,
    tag: &str,
    algorithm: berth_image::Algorithm,
    stream: ByteStream,
) -> Result<(std::path::PathBuf, Digest, u64), TransportError> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(io(dir, "creating"))?;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".tmp-{tag}-{}-{n}", std::process::id()));
    let (path, what) = (tmp.clone(), format!("a blob for {}", dir.display()));
    let written = consume_blocking(
        stream,
        &format!("writing {}", tmp.display()),
        move |chunks| {
            let mut w = berth_store::BlobWriter::create(path, algorithm)?;
            for chunk in chunks {
                w.write(&chunk.map_err(|source| TransportError::Io {
                    context: format!("receiving {what}"),
                    source,
                })?)?;
            }
            Ok(w.finish()?)
        },
    )
    .await;
    match written {
        Ok((d, size)) => Ok((tmp, d, size)),
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            Err(e)
        }
    }
}

/// Bytes of one stream in flight between the receiving task and the writing thread.
/// Counted in bytes, not chunks: a file source yields 1 MiB chunks, a socket a few KiB,
/// and a count sized for one would hold hundreds of MiB of the other.
const IN_FLIGHT: usize = 8 << 20;

/// A chunk and its share of the in-flight budget, given back once it is written.
type Sent = (
    std::io::Result<bytes::Bytes>,
    Option<tokio::sync::OwnedSemaphorePermit>,
);

/// A stream's chunks (or its error, last) as a blocking thread reads them.
pub(crate) struct Chunks {
    rx: tokio::sync::mpsc::Receiver<Sent>,
    /// The budget of the chunk handed out last: released when the next is asked for,
    /// that is once the consumer is done with it.
    held: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Iterator for Chunks {
    type Item = std::io::Result<bytes::Bytes>;
    fn next(&mut self) -> Option<Self::Item> {
        self.held = None;
        let (chunk, permit) = self.rx.blocking_recv()?;
        self.held = permit;
        Some(chunk)
    }
}

/// Budget units of a chunk: KiB, at least one.
fn units(len: usize) -> u32 {
    (len / 1024).clamp(1, IN_FLIGHT / 1024) as u32
}

/// Runs `consume` on a blocking thread over `stream`'s chunks, forwarded as they
/// arrive, so that hashing and writing overlap with receiving. A stream error reaches
/// `consume` as its last item; `consume` stopping early stops the forwarding.
pub(crate) async fn consume_blocking<T: Send + 'static>(
    mut stream: ByteStream,
    what: &str,
    consume: impl FnOnce(Chunks) -> Result<T, TransportError> + Send + 'static,
) -> Result<T, TransportError> {
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    let budget = std::sync::Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT / 1024));
    let task = tokio::task::spawn_blocking(move || consume(Chunks { rx, held: None }));
    while let Some(chunk) = stream.next().await {
        let failed = chunk.is_err();
        let len = chunk.as_ref().map_or(0, |c| c.len());
        let permit = budget.clone().acquire_many_owned(units(len)).await.ok();
        if tx.send((chunk, permit)).await.is_err() || failed {
            break;
        }
    }
    drop(tx);
    task.await.map_err(|e| TransportError::Io {
        context: what.to_string(),
        source: std::io::Error::other(e),
    })?
}

/// Mode 0644, as files written the ordinary way get (a temporary file starts 0600).
pub(crate) fn readable(path: &Path) -> Result<(), TransportError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
        .map_err(io(path, "setting the mode of"))
}

/// One chunk as a stream, for writing bytes already in memory with [`write_blob`].
pub(crate) fn once(bytes: &[u8]) -> ByteStream {
    let data = bytes::Bytes::copy_from_slice(bytes);
    Box::pin(futures_util::stream::once(async move { Ok(data) }))
}

/// Replaces `path` with `bytes`: a new temporary file beside it (a random name, created
/// exclusively, so nothing planted there is followed), fsync, rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TransportError> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(io(dir, "creating"))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io(dir, "creating a file in"))?;
    tmp.write_all(bytes).map_err(io(tmp.path(), "writing"))?;
    tmp.as_file()
        .sync_all()
        .map_err(io(tmp.path(), "syncing"))?;
    readable(tmp.path())?;
    tmp.persist(path)
        .map_err(|e| io(path, "renaming to")(e.error))?;
    Ok(())
}

/// A temporary folder beside `path` (same file system, so the final rename is atomic),
/// removed when dropped.
pub(crate) fn scratch_beside(
    path: &Path,
    prefix: &str,
) -> Result<tempfile::TempDir, TransportError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&parent)
        .map_err(io(&parent, "creating a temporary folder in"))
}
