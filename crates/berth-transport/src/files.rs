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

/// The largest manifest, index, `manifest.json` or signature file read from a folder,
/// as from a registry (berth-remote's bound, and containers/image's).
pub(crate) const MAX_SMALL_FILE: u64 = 4 * 1024 * 1024;

/// A config larger than this is not an image config (they are kilobytes).
pub(crate) const MAX_CONFIG: u64 = 16 << 20;

/// Opens `path` to read it if it is a regular file (checked on the file opened, so
/// after any symbolic link): a FIFO would hang the copy, and a device such as
/// `/dev/zero` never ends. Links are followed: Bazel's `rules_oci` writes layouts
/// whose blobs are links, and what a blob holds is checked against its digest where
/// it lands (a link to a user's file publishes nothing but a digest error).
pub(crate) fn open_regular(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    Ok(f)
}

/// Reads all of `path`, a regular file of at most `max` bytes ([`open_regular`]).
pub(crate) fn read_small(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    open_regular(path)?.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {max} bytes"),
        ));
    }
    Ok(bytes)
}

/// Opens a blob file of an image folder (`oci:`, `dir:`) to stream it: a regular file.
pub(crate) async fn open_blob(path: &Path) -> std::io::Result<tokio::fs::File> {
    let p = path.to_path_buf();
    let f = tokio::task::spawn_blocking(move || open_regular(&p))
        .await
        .map_err(std::io::Error::other)??;
    Ok(tokio::fs::File::from_std(f))
}

/// Reads a manifest of an image folder: a regular file of at most [`MAX_SMALL_FILE`].
pub(crate) async fn read_manifest_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let p = path.to_path_buf();
    tokio::task::spawn_blocking(move || read_small(&p, MAX_SMALL_FILE))
        .await
        .map_err(std::io::Error::other)?
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
    let swept = dir.to_path_buf();
    let _ = tokio::task::spawn_blocking(move || sweep_once(&swept)).await;
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

/// A temporary file untouched this long is no longer being written, whoever made it.
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

/// Removes, once per folder and process, the temporary blob files an interrupted
/// copy left in `dir`: those of a process that is gone, and any not written to for
/// [`STALE_AFTER`] (a process ID may have been reused). A live copy's file is kept:
/// its writer changes it all the time. Failures are ignored; this is tidying.
fn sweep_once(dir: &Path) {
    static SWEPT: std::sync::Mutex<Vec<std::path::PathBuf>> = std::sync::Mutex::new(Vec::new());
    {
        let mut swept = SWEPT.lock().unwrap_or_else(|p| p.into_inner());
        if swept.iter().any(|d| d == dir) {
            return;
        }
        swept.push(dir.to_path_buf());
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(temp_owner) else {
            continue;
        };
        let gone = !Path::new(&format!("/proc/{pid}")).exists();
        let idle = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_AFTER);
        if gone || idle {
            tracing::debug!(file = %e.path().display(), "removing a stale temporary blob");
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// The process that made temporary blob file `name` (`.tmp-TAG-PID-N`), if it is one.
fn temp_owner(name: &str) -> Option<u32> {
    let mut parts = name.strip_prefix(".tmp-")?.rsplitn(3, '-');
    let n = parts.next()?;
    let pid = parts.next()?;
    parts.next()?;
    n.parse::<u64>().ok()?;
    pid.parse().ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names() {
        assert_eq!(temp_owner(".tmp-new-1234-7"), Some(1234));
        assert_eq!(temp_owner(".tmp-0123456789abcdef-42-0"), Some(42));
        assert_eq!(temp_owner(".tmp-new-x-7"), None);
        assert_eq!(temp_owner("sha256"), None);
        assert_eq!(temp_owner(".tmp-7"), None);
    }

    /// An interrupted copy's temporary files go at the next write into the folder
    /// (a dead process's at once, anyone's idle for an hour); a live writer's stay.
    #[tokio::test]
    async fn stale_temporaries_are_removed_on_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let me = std::process::id();
        // Above the kernel's largest PID (2^22): no such process.
        let dead = dir.path().join(".tmp-new-999999999-3");
        let live = dir.path().join(format!(".tmp-new-{me}-999"));
        let idle = dir.path().join(format!(".tmp-abc-{me}-998"));
        let other = dir.path().join(".tmp-not-ours");
        for f in [&dead, &live, &idle, &other] {
            std::fs::write(f, b"partial").unwrap();
        }
        std::fs::File::options()
            .write(true)
            .open(&idle)
            .unwrap()
            .set_modified(std::time::SystemTime::now() - 2 * STALE_AFTER)
            .unwrap();
        let d = Digest::sha256_of(b"blob");
        write_blob(&dir.path().join(d.hex()), &d, once(b"blob"))
            .await
            .unwrap();
        assert!(!dead.exists() && !idle.exists());
        assert!(live.exists() && other.exists());
        assert_eq!(std::fs::read(dir.path().join(d.hex())).unwrap(), b"blob");
    }
}
