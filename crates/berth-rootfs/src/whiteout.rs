//! Whiteouts: `.wh.NAME` hides NAME of the lower layers, `.wh..wh..opq` hides all that
//! the lower layers put in its directory. Neither is ever written to the root.
//!
//! The spec says a whiteout applies to lower layers only, whatever the order of the
//! entries in the tar; so an unpack remembers which paths the current layer made
//! ([`Added`]) and spares them.

use std::collections::HashSet;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{errno, RootfsError};
use crate::remove::{list, remove_at};

pub(crate) const PREFIX: &[u8] = b".wh.";
pub(crate) const OPAQUE: &[u8] = b".wh..wh..opq";

/// What an entry's base name says about whiteouts.
pub(crate) enum Marker<'a> {
    /// Not a whiteout: a file to create.
    None,
    /// `.wh..wh..opq`: the directory is opaque.
    Opaque,
    /// `.wh.NAME`: NAME is deleted.
    Remove(&'a [u8]),
    /// Other `.wh..wh.*` names (aufs' own bookkeeping): ignored, as docker does.
    Ignore,
}

pub(crate) fn marker(base: &[u8]) -> Result<Marker<'_>, RootfsError> {
    if base == OPAQUE {
        return Ok(Marker::Opaque);
    }
    if base.starts_with(b".wh..wh.") {
        return Ok(Marker::Ignore);
    }
    match base.strip_prefix(PREFIX) {
        None => Ok(Marker::None),
        Some(b"") | Some(b".") | Some(b"..") => {
            Err(RootfsError::refused(base, "whiteout of no name"))
        }
        Some(name) => Ok(Marker::Remove(name)),
    }
}

/// The paths (normalized, `/`-joined) that the layer being applied has made, with all
/// their parents.
#[derive(Default)]
pub(crate) struct Added(HashSet<Vec<u8>>);

impl Added {
    pub fn insert(&mut self, path: &[u8]) {
        let mut end = path.len();
        loop {
            if !self.0.insert(path[..end].to_vec()) {
                return; // its parents are in already
            }
            match path[..end].iter().rposition(|b| *b == b'/') {
                Some(i) => end = i,
                None => return,
            }
        }
    }

    pub fn contains(&self, path: &[u8]) -> bool {
        self.0.contains(path)
    }
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() {
        return name.to_vec();
    }
    let mut p = Vec::with_capacity(dir.len() + 1 + name.len());
    p.extend_from_slice(dir);
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

/// Applies `.wh.NAME` in the directory `dir` (entry path `dir_path`).
pub(crate) fn remove(
    dir: BorrowedFd<'_>,
    dir_path: &[u8],
    name: &[u8],
    added: &Added,
    shown: &Path,
) -> Result<(), RootfsError> {
    if added.contains(&join(dir_path, name)) {
        return Ok(());
    }
    remove_at(dir, name, shown)
}

/// Applies `.wh..wh..opq` to the directory `dir` (entry path `dir_path`): removes what
/// lower layers put there, recursing into directories this layer also has.
pub(crate) fn opaque(
    dir: BorrowedFd<'_>,
    dir_path: &[u8],
    added: &Added,
    shown: &Path,
) -> Result<(), RootfsError> {
    for name in list(dir_fd_for_listing(dir, shown)?.as_fd(), shown)? {
        let path = join(dir_path, &name);
        let child_shown = shown.join(std::ffi::OsStr::from_bytes(&name));
        if !added.contains(&path) {
            remove_at(dir, &name, &child_shown)?;
            continue;
        }
        let st = rfs::statat(dir, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| RootfsError::io(&child_shown, "stat", errno(e)))?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let sub = rfs::openat(dir, name.as_slice(), flags, Mode::empty())
                .map_err(|e| RootfsError::io(&child_shown, "open directory", errno(e)))?;
            opaque(sub.as_fd(), &path, added, &child_shown)?;
        }
    }
    Ok(())
}

use std::os::unix::ffi::OsStrExt;

/// `getdents` needs a readable descriptor, not the `O_PATH` one the walk holds.
fn dir_fd_for_listing(
    dir: BorrowedFd<'_>,
    shown: &Path,
) -> Result<std::os::fd::OwnedFd, RootfsError> {
    match rfs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => Ok(fd),
        Err(Errno::ACCESS) => {
            rfs::chmodat(dir, ".", Mode::from_raw_mode(0o700), AtFlags::empty())
                .map_err(|e| RootfsError::io(shown, "chmod", errno(e)))?;
            rfs::openat(
                dir,
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| RootfsError::io(shown, "open directory", errno(e)))
        }
        Err(e) => Err(RootfsError::io(shown, "open directory", errno(e))),
    }
}
