//! The state of a root file system, kept next to a container so that `commit` can say
//! what changed since the container was made.
//!
//! The file is a compact binary list (paths are bytes, not always UTF-8, and a rootfs of
//! 100,000 entries should not take 20 MB of JSON): a magic line, the entries sorted by
//! path, and a SHA-256 of all that, so a torn or foreign file is refused instead of
//! producing a wrong layer. Saving is atomic (temporary file, fsync, rename, fsync of
//! the folder).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::RootfsError;
use crate::safe_path::Root;
use crate::walk::{join, open_dir_at, sorted_names, state_at};

const MAGIC: &[u8] = b"berth-rootfs-snapshot 1\n";

/// What a path is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Char,
    Block,
    Fifo,
    /// Sockets: recorded, never put in a layer.
    Socket,
}

impl EntryKind {
    fn code(self) -> u8 {
        self as u8
    }

    fn from_code(c: u8) -> Option<EntryKind> {
        use EntryKind::*;
        [File, Dir, Symlink, Char, Block, Fifo, Socket]
            .get(usize::from(c))
            .copied()
    }
}

/// One path's state: enough to tell that it changed (ctime and inode catch a rewrite
/// that kept size and mtime; the inode of a directory tells a new one from the old).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryState {
    pub kind: EntryKind,
    /// Permission bits with setuid, setgid and sticky (`& 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Size of a regular file; 0 otherwise.
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
    pub nlink: u64,
    pub rdev: u64,
    /// A symlink's target; empty otherwise.
    pub link: Vec<u8>,
    /// A digest of the extended attributes; 0 when there are none.
    pub xattrs: u64,
}

/// The state of a root file system: path (relative, `/`-separated) -> state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    entries: BTreeMap<Vec<u8>, EntryState>,
}

impl Snapshot {
    /// Nothing: a diff against it is the whole tree.
    pub fn empty() -> Snapshot {
        Snapshot::default()
    }

    /// Records every path under `root` (not `root` itself).
    pub fn take(root: &Path) -> Result<Snapshot, RootfsError> {
        let root = Root::open(root)?;
        let mut snap = Snapshot::empty();
        let top = open_dir_at(root.fd(), b".", &root.display(b""))?;
        snap.record(&root, top.as_fd(), Vec::new())?;
        Ok(snap)
    }

    fn record(
        &mut self,
        root: &Root,
        dir: std::os::fd::BorrowedFd<'_>,
        dir_path: Vec<u8>,
    ) -> Result<(), RootfsError> {
        for name in sorted_names(dir, &root.display(&dir_path))? {
            let path = join(&dir_path, &name);
            let shown = root.display(&path);
            let (state, _) = state_at(dir, &name, &shown)?;
            let is_dir = state.kind == EntryKind::Dir;
            self.entries.insert(path.clone(), state);
            if is_dir {
                let sub = open_dir_at(dir, &name, &shown)?;
                self.record(root, sub.as_fd(), path)?;
            }
        }
        Ok(())
    }

    /// The state of one path (`a/b`, no leading `/`).
    pub fn get(&self, path: &[u8]) -> Option<&EntryState> {
        self.entries.get(path)
    }

    /// Number of paths recorded.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every path and its state, sorted by path bytes.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &EntryState)> {
        self.entries.iter().map(|(k, v)| (k.as_slice(), v))
    }

    /// The names directly in the directory `dir` (`""` for the root).
    pub(crate) fn children(&self, dir: &[u8]) -> Vec<&[u8]> {
        let prefix: Vec<u8> = if dir.is_empty() {
            Vec::new()
        } else {
            [dir, b"/"].concat()
        };
        self.entries
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| &k[prefix.len()..])
            .filter(|rest| !rest.contains(&b'/'))
            .collect()
    }

    /// Writes the snapshot to `path` atomically: temporary file, fsync, rename, fsync
    /// of the folder, so a crash leaves the old file or the new one.
    pub fn save(&self, path: &Path) -> Result<(), RootfsError> {
        let tmp = tmp_path(path);
        let result = self.write_to(&tmp).and_then(|()| {
            std::fs::rename(&tmp, path).map_err(|e| RootfsError::io(path, "rename", e))?;
            let dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| RootfsError::io(dir, "fsync", e))
        });
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    fn write_to(&self, tmp: &Path) -> Result<(), RootfsError> {
        let io = |e| RootfsError::io(tmp, "write", e);
        let file = File::create(tmp).map_err(io)?;
        let mut w = HashingWriter {
            inner: BufWriter::with_capacity(1 << 16, file),
            hash: Sha256::new(),
        };
        w.write_all(MAGIC).map_err(io)?;
        w.write_all(&(self.entries.len() as u64).to_le_bytes())
            .map_err(io)?;
        for (path, s) in &self.entries {
            let mut rec = Vec::with_capacity(96 + path.len() + s.link.len());
            rec.extend_from_slice(&(path.len() as u32).to_le_bytes());
            rec.extend_from_slice(path);
            rec.push(s.kind.code());
            for v in [s.mode, s.uid, s.gid] {
                rec.extend_from_slice(&v.to_le_bytes());
            }
            for v in [
                s.size,
                s.mtime_ns as u64,
                s.ctime_ns as u64,
                s.ino,
                s.nlink,
                s.rdev,
                s.xattrs,
            ] {
                rec.extend_from_slice(&v.to_le_bytes());
            }
            rec.extend_from_slice(&(s.link.len() as u32).to_le_bytes());
            rec.extend_from_slice(&s.link);
            w.write_all(&rec).map_err(io)?;
        }
        let digest = w.hash.finalize();
        let mut inner = w.inner;
        inner.write_all(&digest).map_err(io)?;
        let file = inner.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all()
            .map_err(|e| RootfsError::io(tmp, "fsync", e))
    }

    /// Reads a snapshot written by [`Snapshot::save`]; a damaged file is an error.
    pub fn load(path: &Path) -> Result<Snapshot, RootfsError> {
        let mut data = Vec::new();
        File::open(path)
            .and_then(|f| BufReader::new(f).read_to_end(&mut data))
            .map_err(|e| RootfsError::io(path, "read", e))?;
        let bad = |reason: &str| RootfsError::Snapshot {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        if data.len() < MAGIC.len() + 8 + 32 || !data.starts_with(MAGIC) {
            return Err(bad("not a berth rootfs snapshot"));
        }
        let (body, digest) = data.split_at(data.len() - 32);
        if Sha256::digest(body).as_slice() != digest {
            return Err(bad("checksum mismatch (damaged file)"));
        }
        let mut r = Cursor {
            data: &body[MAGIC.len()..],
        };
        let count = r.u64().ok_or_else(|| bad("truncated"))?;
        let mut entries = BTreeMap::new();
        for _ in 0..count {
            let (path, state) = r.entry().ok_or_else(|| bad("truncated or bad entry"))?;
            entries.insert(path, state);
        }
        if !r.data.is_empty() {
            return Err(bad("trailing bytes"));
        }
        Ok(Snapshot { entries })
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

struct HashingWriter<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

struct Cursor<'a> {
    data: &'a [u8],
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.data.len() < n {
            return None;
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn entry(&mut self) -> Option<(Vec<u8>, EntryState)> {
        let len = self.u32()? as usize;
        let path = self.take(len)?.to_vec();
        let kind = EntryKind::from_code(*self.take(1)?.first()?)?;
        let (mode, uid, gid) = (self.u32()?, self.u32()?, self.u32()?);
        let size = self.u64()?;
        let mtime_ns = self.u64()? as i64;
        let ctime_ns = self.u64()? as i64;
        let (ino, nlink, rdev, xattrs) = (self.u64()?, self.u64()?, self.u64()?, self.u64()?);
        let link_len = self.u32()? as usize;
        let link = self.take(link_len)?.to_vec();
        Some((
            path,
            EntryState {
                kind,
                mode,
                uid,
                gid,
                size,
                mtime_ns,
                ctime_ns,
                ino,
                nlink,
                rdev,
                link,
                xattrs,
            },
        ))
    }
}
