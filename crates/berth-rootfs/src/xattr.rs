//! Extended attributes of names inside the root.
//!
//! There is no `*at` form of the xattr calls, and `O_PATH` descriptors refuse them, so a
//! name is reached as `/proc/self/fd/DIRFD/NAME` with the `l*` calls: the kernel follows
//! only the magic link to the directory we hold, never a symlink at NAME.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use rustix::fs::{self as rfs, XattrFlags};
use rustix::io::Errno;

/// Extended attributes as (name, value) pairs.
pub(crate) type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// The path of `name` in `dir` for the `l*xattr` calls.
fn proc_path(dir: BorrowedFd<'_>, name: &[u8]) -> Vec<u8> {
    let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    p.extend_from_slice(name);
    p
}

/// Whether an xattr error means "this file system or this file cannot have it", which
/// an unpack skips (as podman does): no support, or a name space refused to us.
pub(crate) fn skippable(e: Errno, privileged: bool) -> bool {
    e == Errno::OPNOTSUPP || (e == Errno::PERM && !privileged)
}

/// Sets one attribute on an open file (regular file or directory).
pub(crate) fn set_fd(fd: impl AsFd, name: &[u8], value: &[u8]) -> Result<(), Errno> {
    rfs::fsetxattr(fd, name, value, XattrFlags::empty())
}

/// Sets one attribute on `name` in `dir` without following a symlink there.
pub(crate) fn set_at(
    dir: BorrowedFd<'_>,
    name: &[u8],
    key: &[u8],
    value: &[u8],
) -> Result<(), Errno> {
    rfs::lsetxattr(
        proc_path(dir, name).as_slice(),
        key,
        value,
        XattrFlags::empty(),
    )
}

/// All attributes of `name` in `dir`, sorted by name; empty where unsupported.
pub(crate) fn list_at(dir: BorrowedFd<'_>, name: &[u8]) -> Result<Xattrs, Errno> {
    let path = proc_path(dir, name);
    let mut buf = vec![0u8; 1024];
    let n = loop {
        match rfs::llistxattr(path.as_slice(), &mut buf[..]) {
            Ok(n) => break n,
            Err(Errno::RANGE) => buf.resize(buf.len() * 4, 0),
            Err(Errno::OPNOTSUPP) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        }
        if buf.len() > 1 << 20 {
            return Err(Errno::RANGE);
        }
    };
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for key in buf[..n].split(|b| *b == 0).filter(|k| !k.is_empty()) {
        let mut value = vec![0u8; 256];
        let len = loop {
            match rfs::lgetxattr(path.as_slice(), key, &mut value[..]) {
                Ok(len) => break len,
                Err(Errno::RANGE) if value.len() < 1 << 20 => value.resize(value.len() * 4, 0),
                Err(Errno::NODATA) => break usize::MAX,
                Err(e) => return Err(e),
            }
        };
        if len != usize::MAX {
            value.truncate(len);
            out.push((key.to_vec(), value));
        }
    }
    out.sort();
    Ok(out)
}
