//! Names inside the root, and directories opened without ever leaving it.
//!
//! Every directory is reached from a descriptor of the root, one component at a time
//! with `O_NOFOLLOW`, so no path string given to the kernel can lead outside: a symlink
//! met on the way is read and its target walked by us, with `/` meaning the root and
//! `..` stopping there (the same answer as a chrooted unpacker, or `openat2`'s
//! `RESOLVE_IN_ROOT`, which not every kernel has).

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{errno, RootfsError};

/// Symlinks followed while resolving one path, as Linux's `MAXSYMLINKS`.
const MAX_SYMLINKS: usize = 40;

/// Splits an entry name into its components: a leading `/` and `.` components are
/// dropped (absolute names are taken relative to the root, as podman does), `..` is
/// refused, so that a name alone can never point above the root.
pub(crate) fn components(name: &[u8]) -> Result<Vec<&[u8]>, RootfsError> {
    let mut out = Vec::new();
    for c in name.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(RootfsError::refused(name, "name has a '..' component")),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// How [`Root::open_dir`] treats what it meets.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Walk {
    /// Follow symlinks inside the root; create missing directories (mode 0755), and
    /// replace a file that stands where a directory must be.
    Create,
    /// Follow symlinks inside the root; a missing component is `Ok(None)`.
    Existing,
    /// Refuse any symlink (hard-link targets); a missing component is `Ok(None)`.
    NoSymlinks,
}

/// An open root directory.
pub(crate) struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

impl Root {
    pub fn open(path: &Path) -> Result<Root, RootfsError> {
        let fd = rfs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| RootfsError::io(path, "open root", errno(e)))?;
        Ok(Root {
            fd,
            path: path.to_path_buf(),
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The host path of a name inside the root, for messages.
    pub fn display(&self, rel: &[u8]) -> PathBuf {
        use std::os::unix::ffi::OsStrExt;
        self.path.join(std::ffi::OsStr::from_bytes(rel))
    }

    /// Opens (`O_PATH`) the directory reached by `parts` from the root.
    pub fn open_dir(&self, parts: &[&[u8]], walk: Walk) -> Result<Option<OwnedFd>, RootfsError> {
        let mut stack: Vec<OwnedFd> = Vec::new();
        let mut pending: VecDeque<Vec<u8>> = parts.iter().map(|p| p.to_vec()).collect();
        let mut links = 0;
        while let Some(c) = pending.pop_front() {
            match c.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    stack.pop(); // at the root, `..` is the root
                    continue;
                }
                _ => {}
            }
            let cur = stack.last().map_or(self.fd.as_fd(), |f| f.as_fd());
            let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            match rfs::openat(cur, c.as_slice(), flags, Mode::empty()) {
                Ok(fd) => stack.push(fd),
                Err(Errno::NOTDIR) | Err(Errno::LOOP) => {
                    let st = rfs::statat(cur, c.as_slice(), AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(|e| self.err(parts, "stat", e))?;
                    if FileType::from_raw_mode(st.st_mode) != FileType::Symlink {
                        if walk != Walk::Create {
                            return Err(self.err(parts, "open directory", Errno::NOTDIR));
                        }
                        // A layer that puts `y/child` where a lower layer had a file
                        // `y` makes `y` a directory, as if it had listed `y/` first.
                        rfs::unlinkat(cur, c.as_slice(), AtFlags::empty())
                            .map_err(|e| self.err(parts, "unlink", e))?;
                        pending.push_front(c);
                        continue;
                    }
                    if walk == Walk::NoSymlinks {
                        return Err(RootfsError::refused(
                            &parts.join(&b'/'),
                            "path goes through a symlink",
                        ));
                    }
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(self.err(parts, "resolve", Errno::LOOP));
                    }
                    let target = rfs::readlinkat(cur, c.as_slice(), Vec::new())
                        .map_err(|e| self.err(parts, "readlink", e))?
                        .into_bytes();
                    if target.starts_with(b"/") {
                        stack.clear();
                    }
                    for part in target.split(|b| *b == b'/').rev() {
                        pending.push_front(part.to_vec());
                    }
                }
                Err(Errno::NOENT) if walk == Walk::Create => {
                    match rfs::mkdirat(cur, c.as_slice(), Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(self.err(parts, "mkdir", e)),
                    }
                    pending.push_front(c);
                }
                Err(Errno::NOENT) => return Ok(None),
                Err(e) => return Err(self.err(parts, "open directory", e)),
            }
        }
        match stack.pop() {
            Some(fd) => Ok(Some(fd)),
            None => rfs::openat(&self.fd, ".", OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
                .map(Some)
                .map_err(|e| self.err(parts, "open root", e)),
        }
    }

    fn err(&self, parts: &[&[u8]], op: &'static str, e: Errno) -> RootfsError {
        RootfsError::io(self.display(&parts.join(&b'/')), op, errno(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_drop_root_and_dots() {
        assert_eq!(components(b"/etc/./x/").unwrap(), vec![&b"etc"[..], b"x"]);
        assert_eq!(components(b"./").unwrap(), Vec::<&[u8]>::new());
        assert!(components(b"a/../../x").is_err());
        assert!(components(b"..").is_err());
        assert_eq!(components(b"..a/b..").unwrap(), vec![&b"..a"[..], b"b.."]);
    }
}
