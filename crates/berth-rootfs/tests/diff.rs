//! diff, export and snapshots: what a commit writes, and that applying it gives the
//! changed tree back.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use berth_rootfs::{diff, export, DiffOptions, Snapshot};
use common::{apply, tree, Layer, Scratch};

fn base_layer() -> Vec<u8> {
    Layer::new()
        .dir("etc")
        .file("etc/config", b"version=1")
        .file("etc/mode", b"m")
        .file("etc/owner", b"o")
        .file("etc/gone", b"deleted later")
        .file("old/dir/deep/file", b"whole dir deleted later")
        .file("replaced/old-child", b"dir replaced later")
        .file("becomes-dir", b"a file first")
        .file("lib/libfoo.so.1", b"library")
        .file_with("usr/bin/tool", b"#!/bin/sh\n", 0o4755, 0, 0, 1_600_000_000)
        .symlink("lib/libfoo.so", "libfoo.so.1")
        .build()
}

/// Names of the entries of a tar, in order.
fn names(tar_bytes: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(tar_bytes);
    a.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect()
}

fn change(root: &Path) {
    // Same size, new content.
    fs::write(root.join("etc/config"), b"version=2").unwrap();
    fs::set_permissions(root.join("etc/mode"), fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(root.join("etc/owner"), Some(1234), Some(5678)).unwrap();
    fs::remove_file(root.join("etc/gone")).unwrap();
    fs::remove_dir_all(root.join("old")).unwrap();
    // A new directory in place of the old one (made first, so its inode differs).
    fs::create_dir(root.join("replaced-new")).unwrap();
    fs::write(root.join("replaced-new/new-child"), b"n").unwrap();
    fs::remove_dir_all(root.join("replaced")).unwrap();
    fs::rename(root.join("replaced-new"), root.join("replaced")).unwrap();
    fs::remove_file(root.join("becomes-dir")).unwrap();
    fs::create_dir(root.join("becomes-dir")).unwrap();
    fs::write(root.join("becomes-dir/inside"), b"i").unwrap();
    fs::create_dir_all(root.join("new/nested")).unwrap();
    fs::write(root.join("new/nested/file"), b"added").unwrap();
    fs::write(root.join("new/big"), vec![9u8; 3 << 20]).unwrap();
    // Hard links: a new file with two names, and a new name for a lower file.
    fs::write(root.join("new/a"), b"linked").unwrap();
    fs::hard_link(root.join("new/a"), root.join("new/b")).unwrap();
    fs::hard_link(root.join("lib/libfoo.so.1"), root.join("lib/libfoo-again")).unwrap();
    std::os::unix::fs::symlink("../etc/config", root.join("new/link")).unwrap();
}

#[test]
fn diff_then_apply_gives_the_changed_tree() {
    let s = Scratch::new();
    let root = s.root();
    let base = base_layer();
    apply(&root, std::slice::from_ref(&base));
    let snap = Snapshot::take(&root).unwrap();
    let saved = s.dir.path().join("fresh-snapshot");
    snap.save(&saved).unwrap();
    let snap = Snapshot::load(&saved).unwrap();

    // Nothing changed: an empty layer.
    let mut empty = Vec::new();
    let stats = diff(&root, &snap, &mut empty, &DiffOptions::default()).unwrap();
    assert_eq!(stats.entries, 0, "{:?}", names(&empty));

    change(&root);
    let mut layer = Vec::new();
    let stats = diff(&root, &snap, &mut layer, &DiffOptions::default()).unwrap();
    let listed = names(&layer);
    for want in [
        "etc/config",
        "etc/mode",
        "etc/owner",
        "etc/.wh.gone",
        ".wh.old",
        "replaced/.wh..wh..opq",
        "replaced/new-child",
        "becomes-dir/inside",
        "new/nested/file",
        "lib/libfoo-again",
    ] {
        assert!(
            listed.iter().any(|n| n == want),
            "{want} missing from {listed:?}"
        );
    }
    assert!(
        !listed.iter().any(|n| n.starts_with("old/")),
        "children of a deleted dir: {listed:?}"
    );
    assert!(
        !listed.iter().any(|n| n == "usr/bin/tool"),
        "unchanged file written: {listed:?}"
    );
    assert_eq!(stats.whiteouts, 3);

    // Sorted, parents before children.
    let mut seen = std::collections::HashSet::new();
    for n in &listed {
        if let Some((parent, _)) = n.rsplit_once('/') {
            assert!(seen.contains(parent), "{n} before its parent in {listed:?}");
        }
        seen.insert(n.clone());
    }

    // Hard links are tar hard links.
    let mut a = tar::Archive::new(&layer[..]);
    for e in a.entries().unwrap() {
        let e = e.unwrap();
        let p = e.path().unwrap().to_string_lossy().into_owned();
        if p == "new/b" {
            assert_eq!(e.header().entry_type(), tar::EntryType::Link);
            assert_eq!(e.link_name().unwrap().unwrap().to_str(), Some("new/a"));
        }
        assert_eq!(e.header().username_bytes(), Some(&b""[..]));
    }

    // base + diff into a fresh root == the changed root.
    let fresh = s.fresh("fresh-apply");
    apply(&fresh, &[base, layer]);
    assert_eq!(tree(&fresh), tree(&root));
    let a = fs::metadata(fresh.join("new/a")).unwrap();
    let b = fs::metadata(fresh.join("new/b")).unwrap();
    assert_eq!(a.ino(), b.ino());
    let lower = fs::metadata(fresh.join("lib/libfoo.so.1")).unwrap();
    let again = fs::metadata(fresh.join("lib/libfoo-again")).unwrap();
    assert_eq!(lower.ino(), again.ino());
}

#[test]
fn content_rewrite_with_same_size_and_mtime_is_seen() {
    let s = Scratch::new();
    let root = s.root();
    apply(&root, &[Layer::new().file("f", b"aaaa").build()]);
    let snap = Snapshot::take(&root).unwrap();
    let mtime = fs::metadata(root.join("f")).unwrap().modified().unwrap();
    fs::write(root.join("f"), b"bbbb").unwrap();
    fs::File::options()
        .write(true)
        .open(root.join("f"))
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let mut layer = Vec::new();
    diff(&root, &snap, &mut layer, &DiffOptions::default()).unwrap();
    assert_eq!(names(&layer), ["f"]);
}

#[test]
fn with_a_timestamp_the_output_is_byte_identical() {
    let s = Scratch::new();
    let root = s.root();
    let base = base_layer();
    apply(&root, std::slice::from_ref(&base));
    let snap = Snapshot::take(&root).unwrap();
    change(&root);
    let opts = DiffOptions {
        timestamp: Some(1_700_000_000),
    };
    let mut one = Vec::new();
    diff(&root, &snap, &mut one, &opts).unwrap();
    // Touch everything (new mtimes and atimes) and diff again.
    for p in ["etc/config", "new/nested/file", "new/a"] {
        let _ = fs::read(root.join(p)).unwrap();
        fs::File::options()
            .write(true)
            .open(root.join(p))
            .unwrap()
            .set_modified(std::time::SystemTime::now())
            .unwrap();
    }
    let mut two = Vec::new();
    diff(&root, &snap, &mut two, &opts).unwrap();
    assert_eq!(one, two);
    let mut a = tar::Archive::new(&one[..]);
    for e in a.entries().unwrap() {
        assert_eq!(e.unwrap().header().mtime().unwrap(), 1_700_000_000);
    }
}

#[test]
fn export_round_trips_every_file_mode_owner_and_link() {
    let s = Scratch::new();
    let root = s.root();
    apply(
        &root,
        &[
            base_layer(),
            Layer::new()
                .file_with("home/u/f", b"owned", 0o640, 1000, 100, 1)
                .dir_with("tmp", 0o1777, 0, 0)
                .hardlink("home/u/g", "home/u/f")
                .node("dev/null", tar::EntryType::Char, 1, 3)
                .node("run/fifo", tar::EntryType::Fifo, 0, 0)
                .xattr_file("x", b"x", "user.k", b"v")
                .build(),
        ],
    );
    let mut out = Vec::new();
    export(&root, &mut out, &DiffOptions::default()).unwrap();
    assert!(!names(&out).iter().any(|n| n.contains(".wh.")));
    let fresh = s.fresh("fresh-export");
    apply(&fresh, &[out]);
    assert_eq!(tree(&fresh), tree(&root));
    let f = fs::metadata(fresh.join("home/u/f")).unwrap();
    assert_eq!((f.uid(), f.gid(), f.nlink()), (1000, 100, 2));
    let mut buf = [0u8; 8];
    if let Ok(n) = rustix::fs::getxattr(root.join("x").as_path(), "user.k", &mut buf[..]) {
        let mut back = [0u8; 8];
        let m = rustix::fs::getxattr(fresh.join("x").as_path(), "user.k", &mut back[..]).unwrap();
        assert_eq!(&buf[..n], &back[..m]);
    }
}

#[test]
fn snapshot_files_are_checked() {
    let s = Scratch::new();
    apply(&s.root(), &[base_layer()]);
    let snap = Snapshot::take(&s.root()).unwrap();
    let path = s.dir.path().join("fresh-snap");
    snap.save(&path).unwrap();
    assert_eq!(Snapshot::load(&path).unwrap(), snap);
    let mut bytes = fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    fs::write(&path, &bytes).unwrap();
    assert!(Snapshot::load(&path)
        .unwrap_err()
        .to_string()
        .contains("checksum"));
    fs::write(&path, b"{}").unwrap();
    assert!(Snapshot::load(&path).is_err());
    assert!(Snapshot::empty().is_empty());
}
