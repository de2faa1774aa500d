//! Reading a tree by descriptor: what [`Snapshot::take`](crate::Snapshot::take) records
//! and what [`diff`](crate::diff) compares. Directories are opened with `O_NOFOLLOW`
//! relative to their parent, so a container that swaps a directory for a symlink while
//! it is committed cannot make us read outside its root.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};

use crate::error::{errno, RootfsError};
use crate::snapshot::{EntryKind, EntryState};
use crate::xattr::{self, Xattrs};

/// Opens a directory of the tree for reading its entries.
pub(crate) fn open_dir_at(
    dir: BorrowedFd<'_>,
    name: &[u8],
    shown: &Path,
) -> Result<OwnedFd, RootfsError> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rfs::openat(dir, name, flags, Mode::empty())
        .map_err(|e| RootfsError::io(shown, "open directory", errno(e)))
}

/// The names of a directory, sorted bytewise: the order of snapshots and of layers.
pub(crate) fn sorted_names(dir: BorrowedFd<'_>, shown: &Path) -> Result<Vec<Vec<u8>>, RootfsError> {
    let mut names = crate::remove::list(dir, shown)?;
    names.sort_unstable();
    Ok(names)
}

/// The state of `name` in `dir`, and its extended attributes (sorted by name).
pub(crate) fn state_at(
    dir: BorrowedFd<'_>,
    name: &[u8],
    shown: &Path,
) -> Result<(EntryState, Xattrs), RootfsError> {
    let st = rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| RootfsError::io(shown, "stat", errno(e)))?;
    let kind = match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => EntryKind::File,
        FileType::Directory => EntryKind::Dir,
        FileType::Symlink => EntryKind::Symlink,
        FileType::CharacterDevice => EntryKind::Char,
        FileType::BlockDevice => EntryKind::Block,
        FileType::Fifo => EntryKind::Fifo,
        _ => EntryKind::Socket,
    };
    let link = if kind == EntryKind::Symlink {
        rfs::readlinkat(dir, name, Vec::new())
            .map_err(|e| RootfsError::io(shown, "readlink", errno(e)))?
            .into_bytes()
    } else {
        Vec::new()
    };
    let xattrs =
        xattr::list_at(dir, name).map_err(|e| RootfsError::io(shown, "list xattrs", errno(e)))?;
    let state = EntryState {
        kind,
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        size: if kind == EntryKind::File {
            st.st_size as u64
        } else {
            0
        },
        mtime_ns: nanos(st.st_mtime, st.st_mtime_nsec as i64),
        ctime_ns: nanos(st.st_ctime, st.st_ctime_nsec as i64),
        ino: st.st_ino,
        nlink: st.st_nlink as u64,
        rdev: st.st_rdev,
        link,
        xattrs: xattrs_hash(&xattrs),
    };
    Ok((state, xattrs))
}

/// A 64-bit digest of a file's extended attributes (0 for none): a snapshot needs to
/// know that they changed, not what they were.
pub(crate) fn xattrs_hash(xattrs: &[(Vec<u8>, Vec<u8>)]) -> u64 {
    use sha2::{Digest, Sha256};
    if xattrs.is_empty() {
        return 0;
    }
    let mut h = Sha256::new();
    for (k, v) in xattrs {
        h.update((k.len() as u64).to_le_bytes());
        h.update(k);
        h.update((v.len() as u64).to_le_bytes());
        h.update(v);
    }
    let d = h.finalize();
    u64::from_le_bytes(d[..8].try_into().unwrap_or([0; 8])) | 1
}

/// `dir/name` as an entry path (`name` alone at the root).
pub(crate) fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() {
        return name.to_vec();
    }
    [dir, b"/", name].concat()
}

/// A time in nanoseconds, saturating: a layer may set a file's time past 2262 (ext4 and
/// xfs keep it), where the product overflowed (a panic in a debug build).
fn nanos(secs: i64, nsecs: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsecs)
}

#[cfg(test)]
mod nanos_tests {
    #[test]
    fn far_times_saturate() {
        assert_eq!(super::nanos(1, 5), 1_000_000_005);
        assert_eq!(super::nanos(i64::MAX / 2, 0), i64::MAX);
        assert_eq!(super::nanos(i64::MIN / 2, 0), i64::MIN);
    }
}
