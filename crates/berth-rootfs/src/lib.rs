//! Layers <-> root file systems, as the OCI image spec's `layer.md` describes them.
//!
//! A container's root file system is the image's layers applied in order into a fresh
//! folder (what podman's `vfs` driver does, without its copy of every lower layer);
//! `commit` is the reverse: the changes since a [`Snapshot`] become one layer tar
//! ([`diff`]), `export` writes the whole tree ([`export`]), and `import`/`build` turn a
//! tar into a gzip blob with its two digests ([`pack_layer`]).
//!
//! Layers come from registries, so every entry is hostile until shown otherwise:
//!
//! - Entry names are relative to the root. A leading `/` is dropped (podman and docker do
//!   the same, so absolute names in old layers keep working); a `..` component is refused.
//! - Parent directories are opened one component at a time from a descriptor of the root
//!   (`openat` with `O_NOFOLLOW`). A symlink met on the way is resolved *as if the root
//!   were `/`* (the way podman's chrooted unpacker sees it), so `a -> /` or
//!   `a -> ../../..` followed by `a/x` writes `ROOT/x`, never outside.
//! - The entry itself is created relative to its parent's descriptor (`O_EXCL`,
//!   `O_NOFOLLOW`, `*at` calls with `AT_SYMLINK_NOFOLLOW`), so an existing symlink is
//!   replaced, never written through.
//! - Hard-link targets may not pass through any symlink at all.
//! - Extension headers (PAX, GNU long names) are capped at 1 MiB: the layer reader is our
//!   own ([`TarReader`]), because the `tar` crate reads them whole whatever their size.
//! - Entries, bytes of data and name lengths are bounded by [`TarLimits`] (defaults far
//!   above real images; the binary reads `BERTH_TAR_MAX_*`).
//!
//! `rustix` is used for the `*at` system calls, `mknodat`, `fchown`, extended attributes
//! and directory reading on descriptors, none of which `std` offers; it is a safe wrapper,
//! so the crate has no `unsafe`.

#![forbid(unsafe_code)]

mod decompress;
mod diff;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod limits;
mod pack;
mod remove;
mod safe_path;
mod snapshot;
mod tar_read;
mod unpack;
mod verified;
mod walk;
mod whiteout;
mod xattr;

pub use decompress::decompress;
pub use diff::{diff, export, DiffOptions, DiffStats};
pub use error::RootfsError;
pub use limits::{Limit, TarLimits};
pub use pack::{pack_checked_layer, pack_layer, PackedLayer};
pub use remove::remove_all;
pub use snapshot::{EntryKind, EntryState, Snapshot};
pub use tar_read::{Header, Kind, TarReader, MAX_EXTENSION};
pub use unpack::{apply_layer, LayerStats, UnpackOptions};
pub use verified::{apply_stored_layer, stored_layer_diff_id};

/// Creates directory `path` and its missing parents inside `root` (an absolute name
/// is taken inside it; symlinks on the way are followed as the container sees them,
/// never out of the root; `..` is refused): the working directory a hostile image
/// names, which a plain `create_dir_all` on the host followed anywhere.
pub fn create_dir_in(root: &std::path::Path, path: &str) -> Result<(), RootfsError> {
    let root = safe_path::Root::open(root)?;
    let parts = safe_path::components(path.as_bytes())?;
    root.open_dir(&parts, safe_path::Walk::Create)?;
    Ok(())
}

/// What a name inside a root is, as the container sees it (links followed inside the
/// root): a folder, something else, or nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    Dir,
    NotDir,
    Missing,
}

/// What `path` is inside `root` (see [`Found`]): a `-w` directory a container is
/// given must be there, as podman checks it.
pub fn find_in(root: &std::path::Path, path: &str) -> Result<Found, RootfsError> {
    let parts = safe_path::components(path.as_bytes())?;
    let root = safe_path::Root::open(root)?;
    match root.open_dir(&parts, safe_path::Walk::Existing) {
        Ok(Some(_)) => Ok(Found::Dir),
        Ok(None) => Ok(Found::Missing),
        Err(RootfsError::Io { cause, .. })
            if cause.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error()) =>
        {
            Ok(Found::NotDir)
        }
        Err(e) => Err(e),
    }
}

/// The bytes of regular file `path` inside `root`, read as the container would find it
/// (folders on the way resolved inside the root; the file itself not a link), at most
/// `max` bytes: `None` when there is no such file or it is longer. An image's
/// `/etc/passwd` for USER, which `etc -> /etc` pointed at the host's.
pub fn read_in(
    root: &std::path::Path,
    path: &str,
    max: u64,
) -> Result<Option<Vec<u8>>, RootfsError> {
    use std::io::Read;
    use std::os::fd::AsFd;
    let parts = safe_path::components(path.as_bytes())?;
    let Some((name, parents)) = parts.split_last() else {
        return Ok(None);
    };
    let root = safe_path::Root::open(root)?;
    let Some(dir) = root.open_dir(parents, safe_path::Walk::Existing)? else {
        return Ok(None);
    };
    use rustix::fs::{self as rfs, Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let Ok(fd) = rfs::openat(dir.as_fd(), *name, flags, Mode::empty()) else {
        return Ok(None);
    };
    let stat = rfs::fstat(&fd).map_err(|e| RootfsError::io(path, "stat", error::errno(e)))?;
    if rfs::FileType::from_raw_mode(stat.st_mode) != rfs::FileType::RegularFile {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    std::fs::File::from(fd)
        .take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| RootfsError::io(path, "read", e))?;
    Ok((bytes.len() as u64 <= max).then_some(bytes))
}

/// Bytes read after the end of an archive at most, by whoever reads a layer's stream
/// to its end (its compressed trailer checked, its diff ID hashed): writers pad to a
/// record (10 KiB for GNU tar); an endless tail (compressed members of zeros) is
/// refused.
pub const MAX_TAIL: u64 = 1 << 20;

/// The copy buffer of every data path (unpack, diff, pack, decompress): large enough
/// that a 1 MiB file costs one read and one write.
pub(crate) const COPY_BUFFER: usize = 1 << 20;
