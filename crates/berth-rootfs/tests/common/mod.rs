//! Helpers for the integration tests: layer tars built with the `tar` crate (and by
//! hand for names it refuses to write), and a tree walk to compare root file systems.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use berth_rootfs::{apply_layer, UnpackOptions};

/// A layer tar under construction.
pub struct Layer {
    b: tar::Builder<Vec<u8>>,
}

fn header(kind: tar::EntryType, mode: u32, uid: u64, gid: u64, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(uid);
    h.set_gid(gid);
    h.set_mtime(mtime);
    h.set_size(0);
    h
}

impl Default for Layer {
    fn default() -> Self {
        Self::new()
    }
}

impl Layer {
    pub fn new() -> Layer {
        Layer {
            b: tar::Builder::new(Vec::new()),
        }
    }

    pub fn file(self, path: &str, content: &[u8]) -> Layer {
        self.file_with(path, content, 0o644, 0, 0, 1_600_000_000)
    }

    pub fn file_with(
        mut self,
        path: &str,
        content: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
        mtime: u64,
    ) -> Layer {
        let mut h = header(tar::EntryType::Regular, mode, uid, gid, mtime);
        h.set_size(content.len() as u64);
        self.b.append_data(&mut h, path, content).unwrap();
        self
    }

    pub fn dir(self, path: &str) -> Layer {
        self.dir_with(path, 0o755, 0, 0)
    }

    pub fn dir_with(mut self, path: &str, mode: u32, uid: u64, gid: u64) -> Layer {
        let mut h = header(tar::EntryType::Directory, mode, uid, gid, 1_500_000_000);
        self.b.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Layer {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0, 0, 1_600_000_000);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    pub fn hardlink(mut self, path: &str, target: &str) -> Layer {
        let mut h = header(tar::EntryType::Link, 0o644, 0, 0, 1_600_000_000);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    pub fn node(mut self, path: &str, kind: tar::EntryType, major: u32, minor: u32) -> Layer {
        let mut h = header(kind, 0o640, 0, 0, 1_600_000_000);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.b.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    pub fn xattr_file(mut self, path: &str, content: &[u8], key: &str, value: &[u8]) -> Layer {
        self.b
            .append_pax_extensions([(format!("SCHILY.xattr.{key}").as_str(), value)])
            .unwrap();
        self.file(path, content)
    }

    /// An entry whose name (or link name) the `tar` crate would refuse to write.
    pub fn raw(mut self, kind: tar::EntryType, name: &str, link: &str, content: &[u8]) -> Layer {
        let mut h = header(kind, 0o644, 0, 0, 1_600_000_000);
        h.set_size(content.len() as u64);
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_cksum();
        self.b.append(&h, content).unwrap();
        self
    }

    pub fn pax(mut self, records: &[(&str, &[u8])]) -> Layer {
        self.b
            .append_pax_extensions(records.iter().copied())
            .unwrap();
        self
    }

    pub fn build(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

pub fn opts() -> UnpackOptions {
    UnpackOptions::for_current_user()
}

pub fn apply(root: &Path, layers: &[Vec<u8>]) {
    for l in layers {
        apply_layer(root, &l[..], &opts()).unwrap();
    }
}

/// What a tree comparison looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub content: Vec<u8>,
    pub link: String,
    pub rdev: u64,
}

/// Every path under `root` (relative) with type, mode, owner, content, link target.
pub fn tree(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for p in names {
        let md = fs::symlink_metadata(&p).unwrap();
        let ft = md.file_type();
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        use std::os::unix::fs::FileTypeExt;
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_file() {
            "file"
        } else if ft.is_fifo() {
            "fifo"
        } else if ft.is_char_device() {
            "char"
        } else {
            "other"
        };
        let node = Node {
            kind,
            mode: if ft.is_symlink() {
                0
            } else {
                md.permissions().mode() & 0o7777
            },
            uid: md.uid(),
            gid: md.gid(),
            content: if ft.is_file() {
                fs::read(&p).unwrap()
            } else {
                Vec::new()
            },
            link: if ft.is_symlink() {
                fs::read_link(&p).unwrap().to_string_lossy().into_owned()
            } else {
                String::new()
            },
            rdev: md.rdev(),
        };
        out.insert(rel, node);
        if ft.is_dir() {
            walk(root, &p, out);
        }
    }
}

/// A scratch folder with `root/` (the rootfs) and `outside/` (a sentinel that must stay
/// empty).
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("root")).unwrap();
        fs::create_dir(dir.path().join("outside")).unwrap();
        Scratch { dir }
    }

    pub fn root(&self) -> std::path::PathBuf {
        self.dir.path().join("root")
    }

    pub fn outside(&self) -> std::path::PathBuf {
        self.dir.path().join("outside")
    }

    pub fn fresh(&self, name: &str) -> std::path::PathBuf {
        let p = self.dir.path().join(name);
        fs::create_dir(&p).unwrap();
        p
    }

    pub fn assert_outside_untouched(&self) {
        let left: Vec<_> = fs::read_dir(self.outside()).unwrap().collect();
        assert!(
            left.is_empty(),
            "something was written outside the root: {left:?}"
        );
        let top: Vec<String> = fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        for name in top {
            assert!(
                ["root", "outside"].contains(&name.as_str()) || name.starts_with("fresh"),
                "unexpected {name} beside the root"
            );
        }
    }
}
