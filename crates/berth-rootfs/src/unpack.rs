//! Applying one layer on top of a root file system.
//!
//! The layer streams through: a header, then the file's bytes straight from the
//! decompressor into the new file with a 1 MiB buffer; nothing is held but the list of
//! paths this layer made (for whiteouts) and of directories whose mode and time are set
//! at the end (creating children would change the time, and a `0555` directory could
//! not receive them).
//!
//! Each entry's parent is opened through [`Root::open_dir`]; the last parent is kept
//! open, since tars list a directory's files together, so most entries cost one
//! `openat` for the parent instead of one per component.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use rustix::fs::{self as rfs, AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid};
use rustix::io::Errno;

use crate::error::{errno, RootfsError};
use crate::limits::TarLimits;
use crate::remove::remove_at;
use crate::safe_path::{components, Root, Walk};
use crate::tar_read::{Header, Kind, TarReader};
use crate::whiteout::{self, Added, Marker};
use crate::{xattr, COPY_BUFFER};

/// What an unpack may do beyond creating files and directories.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnpackOptions {
    /// Give entries the owner and group the tar names (needs root, or a user namespace).
    pub same_owner: bool,
    /// Set the extended attributes the tar carries (`SCHILY.xattr.*`); attributes the
    /// file system or the caller's rights refuse are skipped, as podman skips them.
    pub xattrs: bool,
    /// Create character and block devices and fifos (`mknod`: root only); without it
    /// they are skipped and counted in [`LayerStats::skipped`].
    pub devices: bool,
    /// How large a layer may be (entries, bytes, name lengths): past a limit the layer
    /// is an error, with nothing of the offending entry written.
    pub limits: TarLimits,
}

impl UnpackOptions {
    /// Everything as root; without root, no owners and no devices (which would fail).
    pub fn for_current_user() -> Self {
        let root = rustix::process::geteuid().is_root();
        UnpackOptions {
            same_owner: root,
            xattrs: true,
            devices: root,
            limits: TarLimits::default(),
        }
    }
}

/// What one [`apply_layer`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LayerStats {
    /// Tar entries read (whiteouts included).
    pub entries: u64,
    /// Regular files written.
    pub files: u64,
    /// Bytes of regular files written.
    pub bytes: u64,
    /// Whiteout entries applied (`.wh.NAME` and opaque markers).
    pub whiteouts: u64,
    /// Entries not created: devices and fifos without [`UnpackOptions::devices`], and
    /// entry types that have no file (GNU volume labels and the like).
    pub skipped: u64,
}

/// Applies one layer (an uncompressed tar stream) on top of `root`.
///
/// Reads `layer` to its end, also past the end of the archive, so that a caller hashing
/// the stream (to check a diff ID) sees every byte.
pub fn apply_layer(
    root: &std::path::Path,
    layer: impl Read,
    opts: &UnpackOptions,
) -> Result<LayerStats, RootfsError> {
    let root = Root::open(root)?;
    let mut unpacker = Unpacker {
        root: &root,
        opts,
        privileged: rustix::process::geteuid().is_root(),
        added: Added::default(),
        dirs: Vec::new(),
        cache: None,
        buf: vec![0u8; COPY_BUFFER],
        stats: LayerStats::default(),
    };
    let mut tar = TarReader::with_limits(BufReader::with_capacity(COPY_BUFFER, layer), opts.limits);
    while let Some(header) = tar.next_entry()? {
        unpacker.entry(&header, &mut tar)?;
    }
    unpacker.finish_dirs()?;
    io::copy(&mut tar.into_inner(), &mut io::sink())
        .map_err(|e| RootfsError::Malformed(format!("reading past the archive: {e}")))?;
    Ok(unpacker.stats)
}

/// A directory whose mode and times are set once the layer's entries are in.
struct PendingDir {
    path: Vec<u8>,
    mode: u32,
    times: Timestamps,
}

struct Unpacker<'a> {
    root: &'a Root,
    opts: &'a UnpackOptions,
    privileged: bool,
    added: Added,
    dirs: Vec<PendingDir>,
    /// The last directory opened for entries, by entry path.
    cache: Option<(Vec<u8>, OwnedFd)>,
    buf: Vec<u8>,
    stats: LayerStats,
}

fn times(h: &Header) -> Timestamps {
    let t = Timespec {
        tv_sec: h.mtime_sec,
        tv_nsec: h.mtime_nsec.into(),
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

impl Unpacker<'_> {
    fn entry(&mut self, h: &Header, data: &mut impl Read) -> Result<(), RootfsError> {
        self.stats.entries += 1;
        let parts = components(&h.name)?;
        let Some((&base, parents)) = parts.split_last() else {
            return Ok(()); // `./`: the root's own metadata is the caller's
        };
        let parent_path = parents.join(&b'/');
        let marker = whiteout::marker(base)?;
        let walk = match marker {
            Marker::Ignore => return Ok(()),
            Marker::None => Walk::Create,
            Marker::Opaque | Marker::Remove(_) => Walk::Existing,
        };
        let Some(dir) = self.parent(parents, &parent_path, walk)? else {
            return Ok(()); // a whiteout in a directory that is not there hides nothing
        };
        let result = self.entry_in(dir.as_fd(), &parent_path, base, marker, h, data);
        self.cache = Some((parent_path, dir));
        result
    }

    fn entry_in(
        &mut self,
        dir: BorrowedFd<'_>,
        parent_path: &[u8],
        base: &[u8],
        marker: Marker<'_>,
        h: &Header,
        data: &mut impl Read,
    ) -> Result<(), RootfsError> {
        let mut path = parent_path.to_vec();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(base);
        let shown = self.root.display(&path);
        match marker {
            Marker::Opaque => {
                self.stats.whiteouts += 1;
                return whiteout::opaque(
                    dir,
                    parent_path,
                    &self.added,
                    &self.root.display(parent_path),
                );
            }
            Marker::Remove(name) => {
                self.stats.whiteouts += 1;
                let shown = self.root.display(&[parent_path, b"/", name].concat());
                return whiteout::remove(dir, parent_path, name, &self.added, &shown);
            }
            Marker::Ignore | Marker::None => {}
        }
        self.added.insert(&path);
        match h.kind {
            Kind::Regular => self.file(dir, base, h, data, &shown),
            Kind::Directory => self.directory(dir, base, path, h, &shown),
            Kind::Symlink => self.symlink(dir, base, h, &shown),
            Kind::HardLink => self.hard_link(dir, base, &path, h, &shown),
            Kind::Char | Kind::Block | Kind::Fifo if self.opts.devices => {
                self.device(dir, base, h, &shown)
            }
            Kind::Char | Kind::Block | Kind::Fifo | Kind::Other(_) => {
                self.stats.skipped += 1;
                Ok(())
            }
        }
    }

    /// The directory of an entry: the kept one when it is the same, else a walk.
    fn parent(
        &mut self,
        parents: &[&[u8]],
        parent_path: &[u8],
        walk: Walk,
    ) -> Result<Option<OwnedFd>, RootfsError> {
        if let Some((path, fd)) = self.cache.take() {
            if path == parent_path {
                return Ok(Some(fd));
            }
        }
        self.root.open_dir(parents, walk)
    }

    fn file(
        &mut self,
        dir: BorrowedFd<'_>,
        base: &[u8],
        h: &Header,
        data: &mut impl Read,
        shown: &PathBuf,
    ) -> Result<(), RootfsError> {
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let open = || rfs::openat(dir, base, flags, Mode::from_raw_mode(0o600));
        let fd = replacing(dir, base, shown, open)?
            .map_err(|e| RootfsError::io(shown, "create", errno(e)))?;
        let mut file = File::from(fd);
        let mut written = 0u64;
        loop {
            let n = match data.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(RootfsError::Malformed(format!("{}: {e}", shown.display()))),
            };
            file.write_all(&self.buf[..n])
                .map_err(|e| RootfsError::io(shown, "write", e))?;
            written += n as u64;
        }
        self.stats.files += 1;
        self.stats.bytes += written;
        if self.opts.same_owner {
            rfs::fchown(
                &file,
                Some(Uid::from_raw(h.uid)),
                Some(Gid::from_raw(h.gid)),
            )
            .map_err(|e| RootfsError::io(shown, "chown", errno(e)))?;
        }
        // After chown, which clears setuid and setgid.
        rfs::fchmod(&file, Mode::from_raw_mode(h.mode))
            .map_err(|e| RootfsError::io(shown, "chmod", errno(e)))?;
        if self.opts.xattrs {
            for (key, value) in &h.xattrs {
                self.xattr_result(xattr::set_fd(&file, key, value), shown)?;
            }
        }
        rfs::futimens(&file, &times(h)).map_err(|e| RootfsError::io(shown, "set times", errno(e)))
    }

    fn directory(
        &mut self,
        dir: BorrowedFd<'_>,
        base: &[u8],
        path: Vec<u8>,
        h: &Header,
        shown: &PathBuf,
    ) -> Result<(), RootfsError> {
        let mode = Mode::from_raw_mode(0o700);
        match rfs::mkdirat(dir, base, mode) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                let st = rfs::statat(dir, base, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| RootfsError::io(shown, "stat", errno(e)))?;
                if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                    remove_at(dir, base, shown)?;
                    rfs::mkdirat(dir, base, mode)
                        .map_err(|e| RootfsError::io(shown, "mkdir", errno(e)))?;
                }
            }
            Err(e) => return Err(RootfsError::io(shown, "mkdir", errno(e))),
        }
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rfs::openat(dir, base, flags, Mode::empty())
            .map_err(|e| RootfsError::io(shown, "open directory", errno(e)))?;
        if self.opts.same_owner {
            rfs::fchown(&fd, Some(Uid::from_raw(h.uid)), Some(Gid::from_raw(h.gid)))
                .map_err(|e| RootfsError::io(shown, "chown", errno(e)))?;
        }
        if self.opts.xattrs {
            for (key, value) in &h.xattrs {
                self.xattr_result(xattr::set_fd(&fd, key, value), shown)?;
            }
        }
        self.dirs.push(PendingDir {
            path: path.clone(),
            mode: h.mode,
            times: times(h),
        });
        // The next entries are most likely this directory's children.
        self.cache = Some((path, fd));
        Ok(())
    }

    fn symlink(
        &mut self,
        dir: BorrowedFd<'_>,
        base: &[u8],
        h: &Header,
        shown: &PathBuf,
    ) -> Result<(), RootfsError> {
        let create = || rfs::symlinkat(h.link.as_slice(), dir, base);
        replacing(dir, base, shown, create)?
            .map_err(|e| RootfsError::io(shown, "symlink", errno(e)))?;
        self.metadata_at(dir, base, h, shown, false)
    }

    fn hard_link(
        &mut self,
        dir: BorrowedFd<'_>,
        base: &[u8],
        path: &[u8],
        h: &Header,
        shown: &PathBuf,
    ) -> Result<(), RootfsError> {
        let target = components(&h.link)?;
        let Some((&target_base, target_parents)) = target.split_last() else {
            return Err(RootfsError::refused(&h.name, "hard link to the root"));
        };
        if target.join(&b'/') == path {
            return Ok(()); // a link to itself: already there
        }
        let target_dir = self
            .root
            .open_dir(target_parents, Walk::NoSymlinks)
            .map_err(|e| match e {
                RootfsError::Refused { .. } => {
                    RootfsError::refused(&h.name, "hard link target goes through a symlink")
                }
                e => e,
            })?
            .ok_or_else(|| RootfsError::refused(&h.name, "hard link target does not exist"))?;
        let link = || rfs::linkat(&target_dir, target_base, dir, base, AtFlags::empty());
        replacing(dir, base, shown, link)?.map_err(|e| match e {
            Errno::NOENT => RootfsError::refused(&h.name, "hard link target does not exist"),
            Errno::PERM => RootfsError::refused(&h.name, "hard link to a directory"),
            e => RootfsError::io(shown, "link", errno(e)),
        })
    }

    fn device(
        &mut self,
        dir: BorrowedFd<'_>,
        base: &[u8],
        h: &Header,
        shown: &PathBuf,
    ) -> Result<(), RootfsError> {
        let kind = match h.kind {
            Kind::Char => FileType::CharacterDevice,
            Kind::Block => FileType::BlockDevice,
            _ => FileType::Fifo,
        };
        let dev = rfs::makedev(h.dev_major, h.dev_minor);
        let make = || rfs::mknodat(dir, base, kind, Mode::from_raw_mode(0o600), dev);
        replacing(dir, base, shown, make)?
            .map_err(|e| RootfsError::io(shown, "mknod", errno(e)))?;
        self.metadata_at(dir, base, h, shown, true)
    }

    /// Owner, mode, attributes and times of a symlink or device, by name.
    fn metadata_at(
        &mut self,
        dir: BorrowedFd<'_>,
        base: &[u8],
        h: &Header,
        shown: &PathBuf,
        chmod: bool,
    ) -> Result<(), RootfsError> {
        if self.opts.same_owner {
            rfs::chownat(
                dir,
                base,
                Some(Uid::from_raw(h.uid)),
                Some(Gid::from_raw(h.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| RootfsError::io(shown, "chown", errno(e)))?;
        }
        if chmod {
            // Not a symlink (made just above), so following is the same as not.
            rfs::chmodat(dir, base, Mode::from_raw_mode(h.mode), AtFlags::empty())
                .map_err(|e| RootfsError::io(shown, "chmod", errno(e)))?;
        }
        if self.opts.xattrs {
            for (key, value) in &h.xattrs {
                self.xattr_result(xattr::set_at(dir, base, key, value), shown)?;
            }
        }
        rfs::utimensat(dir, base, &times(h), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| RootfsError::io(shown, "set times", errno(e)))
    }

    fn xattr_result(&self, r: Result<(), Errno>, shown: &PathBuf) -> Result<(), RootfsError> {
        match r {
            Ok(()) => Ok(()),
            Err(e) if xattr::skippable(e, self.privileged) => Ok(()),
            Err(e) => Err(RootfsError::io(shown, "set xattr", errno(e))),
        }
    }

    /// Sets the directories' modes and times, now that their entries are in.
    fn finish_dirs(&mut self) -> Result<(), RootfsError> {
        self.cache = None;
        for d in std::mem::take(&mut self.dirs).iter().rev() {
            let parts: Vec<&[u8]> = d.path.split(|b| *b == b'/').collect();
            let Some((&base, parents)) = parts.split_last() else {
                continue;
            };
            let shown = self.root.display(&d.path);
            let Some(dir) = self.root.open_dir(parents, Walk::Existing)? else {
                continue; // removed again by a later entry of the layer
            };
            match rfs::statat(&dir, base, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {}
                _ => continue,
            }
            rfs::chmodat(&dir, base, Mode::from_raw_mode(d.mode), AtFlags::empty())
                .map_err(|e| RootfsError::io(&shown, "chmod", errno(e)))?;
            rfs::utimensat(&dir, base, &d.times, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| RootfsError::io(&shown, "set times", errno(e)))?;
        }
        Ok(())
    }
}

/// Runs `create`; when something already has the name (a lower layer's entry), removes
/// it, never following it, and runs `create` again. The outer error is the removal's.
fn replacing<T>(
    dir: BorrowedFd<'_>,
    base: &[u8],
    shown: &std::path::Path,
    create: impl Fn() -> Result<T, Errno>,
) -> Result<Result<T, Errno>, RootfsError> {
    match create() {
        Err(Errno::EXIST) => {
            remove_at(dir, base, shown)?;
            Ok(create())
        }
        other => Ok(other),
    }
}
