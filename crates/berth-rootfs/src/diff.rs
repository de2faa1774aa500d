//! A root file system's changes since a [`Snapshot`] as a layer tar (`commit`), and the
//! whole tree as one tar (`export`).
//!
//! One walk in layer order (names sorted within each directory, so parents come before
//! children) compares each path with the snapshot and writes what differs at once. A
//! directory that holds a change is written too, unchanged or not, so that its mode and
//! owner come with the change (docker does the same). Paths the snapshot has and the
//! tree lacks become `.wh.NAME`; a directory whose inode changed was replaced, so it is
//! written with `.wh..wh..opq` and everything under it is new.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{self as rfs, Mode, OFlags};

use crate::error::{errno, RootfsError};
use crate::safe_path::Root;
use crate::snapshot::{EntryKind, EntryState, Snapshot};
use crate::walk::{join, open_dir_at, sorted_names, state_at};
use crate::whiteout::{OPAQUE, PREFIX};

/// How entries are written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiffOptions {
    /// Every entry's mtime is set to this (seconds since the epoch), as buildah's
    /// `--timestamp` does: with it, the same tree gives the same bytes.
    pub timestamp: Option<i64>,
}

/// What one [`diff`] wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiffStats {
    /// Entries written, whiteouts included.
    pub entries: u64,
    /// Regular files written with their content (hard links not counted).
    pub files: u64,
    /// Bytes of file content.
    pub bytes: u64,
    /// `.wh.NAME` and opaque entries.
    pub whiteouts: u64,
}

/// The changes of `root` since `base` as an uncompressed layer tar: added and changed
/// entries, whiteouts for deletions (an opaque whiteout when a directory was replaced
/// by a new one), entries sorted by path, parents before children, hard links as tar
/// hard links. Owner and group names are left empty (ids are what a layer means).
pub fn diff(
    root: &Path,
    base: &Snapshot,
    out: impl Write,
    opts: &DiffOptions,
) -> Result<DiffStats, RootfsError> {
    let root = Root::open(root)?;
    let mut d = Differ {
        root: &root,
        base,
        opts,
        tar: tar::Builder::new(out),
        pending: Vec::new(),
        links: HashMap::new(),
        stats: DiffStats::default(),
    };
    let top = open_dir_at(root.fd(), b".", &root.display(b""))?;
    d.dir(top.as_fd(), Vec::new(), false)?;
    let mut out = d.tar.into_inner().map_err(|e| output(&root, e))?;
    out.flush().map_err(|e| output(&root, e))?;
    Ok(d.stats)
}

/// The whole file system as one tar (what `export` writes): [`diff`] against
/// [`Snapshot::empty`], which has nothing to white out.
pub fn export(root: &Path, out: impl Write, opts: &DiffOptions) -> Result<(), RootfsError> {
    diff(root, &Snapshot::empty(), out, opts).map(|_| ())
}

fn output(root: &Root, e: io::Error) -> RootfsError {
    RootfsError::io(root.display(b""), "write layer", e)
}

/// A directory on the walk's path that is not written yet (it is, before its first
/// changed descendant).
struct Pending {
    path: Vec<u8>,
    state: EntryState,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    written: bool,
}

struct Differ<'a, W: Write> {
    root: &'a Root,
    base: &'a Snapshot,
    opts: &'a DiffOptions,
    tar: tar::Builder<W>,
    pending: Vec<Pending>,
    /// (inode) -> the path written first, for hard links.
    links: HashMap<u64, Vec<u8>>,
    stats: DiffStats,
}

enum Change {
    Same,
    Changed,
    /// A directory where the snapshot had another directory.
    Replaced,
}

fn compare(base: Option<&EntryState>, cur: &EntryState) -> Change {
    let Some(b) = base else {
        return Change::Changed;
    };
    if b.kind != cur.kind {
        return Change::Changed;
    }
    if cur.kind == EntryKind::Dir && b.ino != cur.ino {
        return Change::Replaced;
    }
    let meta = b.mode != cur.mode
        || b.uid != cur.uid
        || b.gid != cur.gid
        || b.xattrs != cur.xattrs
        || b.mtime_ns != cur.mtime_ns
        || b.link != cur.link
        || b.rdev != cur.rdev;
    // Size, ctime and inode catch a rewrite whose mtime was put back; a directory's
    // change of content shows in its children instead.
    let content = cur.kind != EntryKind::Dir
        && (b.size != cur.size || b.ctime_ns != cur.ctime_ns || b.ino != cur.ino);
    if meta || content {
        Change::Changed
    } else {
        Change::Same
    }
}

enum Item {
    Child(Vec<u8>),
    Whiteout(Vec<u8>),
}

impl Item {
    fn entry_name(&self) -> Vec<u8> {
        match self {
            Item::Child(n) => n.clone(),
            Item::Whiteout(n) => [PREFIX, n].concat(),
        }
    }
}

impl<W: Write> Differ<'_, W> {
    /// Walks the directory `dir` (entry path `path`); `hidden` when the snapshot's
    /// content there no longer counts (a replaced directory).
    fn dir(&mut self, dir: BorrowedFd<'_>, path: Vec<u8>, hidden: bool) -> Result<(), RootfsError> {
        let shown = self.root.display(&path);
        let names = sorted_names(dir, &shown)?;
        let mut items: Vec<Item> = Vec::with_capacity(names.len());
        let base_is_dir = path.is_empty()
            || self
                .base
                .get(&path)
                .is_some_and(|s| s.kind == EntryKind::Dir);
        if !hidden && base_is_dir {
            for gone in self.base.children(&path) {
                if names.binary_search_by(|n| n.as_slice().cmp(gone)).is_err() {
                    items.push(Item::Whiteout(gone.to_vec()));
                }
            }
        }
        items.extend(names.into_iter().map(Item::Child));
        items.sort_by_cached_key(Item::entry_name);
        for item in items {
            match item {
                Item::Whiteout(name) => {
                    let entry = join(&path, &[PREFIX, &name].concat());
                    self.whiteout(&entry)?;
                }
                Item::Child(name) => self.child(dir, &path, &name, hidden)?,
            }
        }
        Ok(())
    }

    fn child(
        &mut self,
        dir: BorrowedFd<'_>,
        dir_path: &[u8],
        name: &[u8],
        hidden: bool,
    ) -> Result<(), RootfsError> {
        let path = join(dir_path, name);
        let shown = self.root.display(&path);
        let (state, xattrs) = state_at(dir, name, &shown)?;
        if state.kind == EntryKind::Socket {
            return Ok(()); // a tar cannot hold one
        }
        let base = if hidden { None } else { self.base.get(&path) };
        let change = compare(base, &state);
        if state.kind != EntryKind::Dir {
            if let Change::Changed = change {
                self.flush_pending()?;
                self.write_entry(dir, name, &path, &state, &xattrs)?;
            }
            return Ok(());
        }
        let sub = open_dir_at(dir, name, &shown)?;
        self.pending.push(Pending {
            path: path.clone(),
            state,
            xattrs,
            written: false,
        });
        let replaced = matches!(change, Change::Replaced);
        if !matches!(change, Change::Same) {
            self.flush_pending()?;
        }
        if replaced {
            self.whiteout(&join(&path, OPAQUE))?;
        }
        let result = self.dir(sub.as_fd(), path, hidden || replaced);
        self.pending.pop();
        result
    }

    /// Writes the directories above a change that are not written yet.
    fn flush_pending(&mut self) -> Result<(), RootfsError> {
        for i in 0..self.pending.len() {
            if self.pending[i].written {
                continue;
            }
            let p = &self.pending[i];
            let (path, state, xattrs) = (p.path.clone(), p.state.clone(), p.xattrs.clone());
            self.append(&path, &state, &xattrs, io::empty(), None)?;
            self.pending[i].written = true;
        }
        Ok(())
    }

    fn whiteout(&mut self, entry: &[u8]) -> Result<(), RootfsError> {
        self.flush_pending()?;
        let state = EntryState {
            kind: EntryKind::File,
            mode: 0o600,
            uid: 0,
            gid: 0,
            size: 0,
            mtime_ns: 0,
            ctime_ns: 0,
            ino: 0,
            nlink: 1,
            rdev: 0,
            link: Vec::new(),
            xattrs: 0,
        };
        self.stats.whiteouts += 1;
        self.append(entry, &state, &[], io::empty(), None)
    }

    fn write_entry(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        path: &[u8],
        state: &EntryState,
        xattrs: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<(), RootfsError> {
        if state.kind == EntryKind::File && state.nlink > 1 {
            if let Some(first) = self.links.get(&state.ino).cloned() {
                return self.append(
                    path,
                    state,
                    xattrs,
                    io::empty(),
                    Some((tar::EntryType::Link, &first)),
                );
            }
            self.links.insert(state.ino, path.to_vec());
        }
        match state.kind {
            EntryKind::File => {
                let shown = self.root.display(path);
                // Not blocking, and checked after the open: a running container may
                // have put a FIFO in the file's place since the walk, whose open would
                // wait for a writer for ever.
                let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
                let fd = rfs::openat(dir, name, flags, Mode::empty())
                    .map_err(|e| RootfsError::io(&shown, "open", errno(e)))?;
                let stat =
                    rfs::fstat(&fd).map_err(|e| RootfsError::io(&shown, "stat", errno(e)))?;
                if rfs::FileType::from_raw_mode(stat.st_mode) != rfs::FileType::RegularFile {
                    return Err(RootfsError::io(
                        &shown,
                        "read",
                        io::Error::other("no longer a regular file"),
                    ));
                }
                let reader = Exact {
                    inner: File::from(fd).take(state.size),
                    left: state.size,
                };
                self.stats.files += 1;
                self.stats.bytes += state.size;
                self.append(path, state, xattrs, reader, None)
            }
            EntryKind::Symlink => {
                let target = state.link.clone();
                self.append(
                    path,
                    state,
                    xattrs,
                    io::empty(),
                    Some((tar::EntryType::Symlink, &target)),
                )
            }
            _ => self.append(path, state, xattrs, io::empty(), None),
        }
    }

    fn append(
        &mut self,
        path: &[u8],
        state: &EntryState,
        xattrs: &[(Vec<u8>, Vec<u8>)],
        data: impl Read,
        link: Option<(tar::EntryType, &[u8])>,
    ) -> Result<(), RootfsError> {
        let shown = self.root.display(path);
        let err = |e: io::Error| RootfsError::io(&shown, "write entry", e);
        let records: Vec<(String, &[u8])> = xattrs
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    format!("SCHILY.xattr.{}", std::str::from_utf8(k).ok()?),
                    v.as_slice(),
                ))
            })
            .collect();
        if !records.is_empty() {
            self.tar
                .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v)))
                .map_err(err)?;
        }
        let mut h = tar::Header::new_gnu();
        h.set_mode(state.mode);
        h.set_uid(state.uid.into());
        h.set_gid(state.gid.into());
        let mtime = self
            .opts
            .timestamp
            .unwrap_or(state.mtime_ns.div_euclid(1_000_000_000));
        h.set_mtime(mtime.max(0) as u64);
        h.set_size(0);
        let name = Path::new(OsStr::from_bytes(path));
        self.stats.entries += 1;
        if let Some((kind, target)) = link {
            h.set_entry_type(kind);
            return self
                .tar
                .append_link(&mut h, name, Path::new(OsStr::from_bytes(target)))
                .map_err(err);
        }
        let kind = match state.kind {
            EntryKind::File => {
                h.set_size(state.size);
                tar::EntryType::Regular
            }
            EntryKind::Dir => tar::EntryType::Directory,
            EntryKind::Char => tar::EntryType::Char,
            EntryKind::Block => tar::EntryType::Block,
            EntryKind::Fifo | EntryKind::Symlink | EntryKind::Socket => tar::EntryType::Fifo,
        };
        h.set_entry_type(kind);
        if matches!(state.kind, EntryKind::Char | EntryKind::Block) {
            h.set_device_major(rfs::major(state.rdev)).map_err(err)?;
            h.set_device_minor(rfs::minor(state.rdev)).map_err(err)?;
        }
        self.tar.append_data(&mut h, name, data).map_err(err)
    }
}

/// Exactly `left` bytes of a file, or an error: a file that shrank while it was read
/// would otherwise shift every later entry of the tar.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while read",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}
