//! Removing trees by descriptor: what a layer replaces, what a whiteout hides, and a
//! whole root file system.
//!
//! Layers make read-only directories (`0555` is common), which a non-root owner cannot
//! empty; a directory that refuses is made `0700` first. Every step is relative to
//! the parent's descriptor with `O_NOFOLLOW`, so a symlink is removed, never followed.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{errno, RootfsError};

/// Removes `name` in `dir`, whatever it is; a missing name is not an error.
pub(crate) fn remove_at(dir: BorrowedFd<'_>, name: &[u8], shown: &Path) -> Result<(), RootfsError> {
    match rfs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR) | Err(Errno::PERM) => {}
        Err(e) => return Err(RootfsError::io(shown, "unlink", errno(e))),
    }
    let st = match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(RootfsError::io(shown, "stat", errno(e))),
    };
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return rfs::unlinkat(dir, name, AtFlags::empty())
            .map_err(|e| RootfsError::io(shown, "unlink", errno(e)));
    }
    empty_dir_at(dir, name, shown)?;
    rfs::unlinkat(dir, name, AtFlags::REMOVEDIR)
        .map_err(|e| RootfsError::io(shown, "rmdir", errno(e)))
}

/// Removes everything in the directory `name` of `dir`, keeping the directory.
pub(crate) fn empty_dir_at(
    dir: BorrowedFd<'_>,
    name: &[u8],
    shown: &Path,
) -> Result<(), RootfsError> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = match rfs::openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ACCESS) => {
            make_usable(dir, name, shown)?;
            rfs::openat(dir, name, flags, Mode::empty())
                .map_err(|e| RootfsError::io(shown, "open directory", errno(e)))?
        }
        Err(e) => return Err(RootfsError::io(shown, "open directory", errno(e))),
    };
    let names = list(fd.as_fd(), shown)?;
    for child in names {
        let child_shown = shown.join(std::ffi::OsStr::from_bytes(&child));
        match rfs::unlinkat(&fd, child.as_slice(), AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => continue,
            Err(Errno::ACCESS) => {
                // The directory is not writable for us: open it up and try again.
                make_usable(dir, name, shown)?;
                remove_at(fd.as_fd(), &child, &child_shown)?;
            }
            Err(_) => remove_at(fd.as_fd(), &child, &child_shown)?,
        }
    }
    Ok(())
}

use std::os::unix::ffi::OsStrExt;

/// The names in a directory, without `.` and `..`.
pub(crate) fn list(fd: BorrowedFd<'_>, shown: &Path) -> Result<Vec<Vec<u8>>, RootfsError> {
    let mut dir =
        Dir::read_from(fd).map_err(|e| RootfsError::io(shown, "read directory", errno(e)))?;
    let mut names = Vec::new();
    while let Some(entry) = dir.read() {
        let entry = entry.map_err(|e| RootfsError::io(shown, "read directory", errno(e)))?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    Ok(names)
}

fn make_usable(dir: BorrowedFd<'_>, name: &[u8], shown: &Path) -> Result<(), RootfsError> {
    rfs::chmodat(dir, name, Mode::from_raw_mode(0o700), AtFlags::empty())
        .map_err(|e| RootfsError::io(shown, "chmod", errno(e)))
}

/// Removes a root file system, also when it holds read-only directories, as layers
/// make them. A missing root is not an error.
pub fn remove_all(root: &Path) -> Result<(), RootfsError> {
    let parent = match root.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = root
        .file_name()
        .ok_or_else(|| RootfsError::io(root, "remove", std::io::ErrorKind::InvalidInput.into()))?;
    let dir = rfs::open(
        parent,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| RootfsError::io(parent, "open", errno(e)))?;
    remove_at(dir.as_fd(), name.as_bytes(), root)
}
