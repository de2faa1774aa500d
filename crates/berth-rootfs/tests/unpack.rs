//! apply_layer: every entry type, metadata, whiteouts, replacements.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

use berth_rootfs::{apply_layer, UnpackOptions};
use common::{apply, opts, tree, Layer, Scratch};

#[test]
fn files_dirs_links_modes_times_owners() {
    let s = Scratch::new();
    let root = s.root();
    let layer = Layer::new()
        .dir_with("etc", 0o755, 0, 0)
        .file_with("etc/passwd", b"root:x:0:0\n", 0o644, 0, 0, 1_234_567_890)
        .file_with("usr/bin/su", b"\x7fELF", 0o4755, 0, 0, 1_600_000_000)
        .file_with("home/alice/notes", b"hi", 0o600, 1000, 1001, 1_600_000_000)
        .dir_with("tmp", 0o1777, 0, 0)
        .dir_with("srv/ro", 0o555, 4242, 4243)
        .file("srv/ro/inside", b"made before the directory went read-only")
        .symlink("bin", "usr/bin")
        .symlink("etc/dangling", "/nowhere")
        .hardlink("usr/bin/su-again", "usr/bin/su")
        .build();
    let stats = apply_layer(&root, &layer[..], &opts()).unwrap();
    assert_eq!(stats.files, 4);

    let passwd = fs::symlink_metadata(root.join("etc/passwd")).unwrap();
    assert_eq!(fs::read(root.join("etc/passwd")).unwrap(), b"root:x:0:0\n");
    assert_eq!(passwd.mtime(), 1_234_567_890);
    assert_eq!(passwd.permissions().mode() & 0o7777, 0o644);

    let su = fs::symlink_metadata(root.join("usr/bin/su")).unwrap();
    assert_eq!(
        su.permissions().mode() & 0o7777,
        0o4755,
        "setuid kept after chown"
    );
    let again = fs::symlink_metadata(root.join("usr/bin/su-again")).unwrap();
    assert_eq!(
        (su.ino(), su.nlink()),
        (again.ino(), 2),
        "a hard link, not a copy"
    );

    let tmp = fs::symlink_metadata(root.join("tmp")).unwrap();
    assert_eq!(tmp.permissions().mode() & 0o7777, 0o1777, "sticky bit");
    assert_eq!(
        tmp.mtime(),
        1_500_000_000,
        "directory time set after its entries"
    );

    let notes = fs::symlink_metadata(root.join("home/alice/notes")).unwrap();
    assert_eq!(rustix_uid(), 0, "these tests run as root");
    assert_eq!(
        (notes.uid(), notes.gid()),
        (1000, 1001),
        "ownership applied"
    );
    let ro = fs::symlink_metadata(root.join("srv/ro")).unwrap();
    assert_eq!(
        (ro.uid(), ro.gid(), ro.permissions().mode() & 0o7777),
        (4242, 4243, 0o555)
    );
    assert!(root.join("srv/ro/inside").exists());

    assert_eq!(
        fs::read_link(root.join("bin")).unwrap().to_str(),
        Some("usr/bin")
    );
    assert_eq!(
        fs::read_link(root.join("etc/dangling")).unwrap().to_str(),
        Some("/nowhere")
    );
    // Implicit parents are made 0755.
    let home = fs::symlink_metadata(root.join("home")).unwrap();
    assert_eq!(home.permissions().mode() & 0o7777, 0o755);
}

fn rustix_uid() -> u32 {
    fs::metadata("/proc/self").unwrap().uid()
}

#[test]
fn no_owner_change_without_same_owner() {
    let s = Scratch::new();
    let layer = Layer::new()
        .file_with("f", b"x", 0o644, 1000, 1000, 1)
        .build();
    let o = UnpackOptions {
        same_owner: false,
        ..opts()
    };
    apply_layer(&s.root(), &layer[..], &o).unwrap();
    let md = fs::metadata(s.root().join("f")).unwrap();
    assert_eq!(md.uid(), rustix_uid());
}

#[test]
fn hard_link_to_a_file_of_an_earlier_layer() {
    let s = Scratch::new();
    let root = s.root();
    apply(
        &root,
        &[
            Layer::new().file("lib/libc.so", b"libc").build(),
            Layer::new()
                .hardlink("lib/libc.so.6", "lib/libc.so")
                .build(),
        ],
    );
    let a = fs::metadata(root.join("lib/libc.so")).unwrap();
    let b = fs::metadata(root.join("lib/libc.so.6")).unwrap();
    assert_eq!(a.ino(), b.ino());
}

#[test]
fn xattrs_where_the_file_system_allows() {
    let s = Scratch::new();
    let root = s.root();
    let layer = Layer::new()
        .xattr_file("f", b"x", "user.berth", b"yes")
        .build();
    apply_layer(&root, &layer[..], &opts()).unwrap();
    let mut buf = [0u8; 16];
    match rustix::fs::getxattr(root.join("f").as_path(), "user.berth", &mut buf[..]) {
        Ok(n) => assert_eq!(&buf[..n], b"yes"),
        Err(rustix::io::Errno::OPNOTSUPP) => eprintln!("no user xattrs on this file system"),
        Err(e) => panic!("getxattr: {e}"),
    }
    // Without the option, none.
    let s2 = Scratch::new();
    let o = UnpackOptions {
        xattrs: false,
        ..opts()
    };
    apply_layer(&s2.root(), &layer[..], &o).unwrap();
    assert!(
        rustix::fs::getxattr(s2.root().join("f").as_path(), "user.berth", &mut buf[..]).is_err()
    );
}

#[test]
fn fifos_and_devices_only_with_devices() {
    let layer = Layer::new()
        .node("dev/null", tar::EntryType::Char, 1, 3)
        .node("run/pipe", tar::EntryType::Fifo, 0, 0)
        .build();
    let s = Scratch::new();
    let stats = apply_layer(&s.root(), &layer[..], &opts()).unwrap();
    assert_eq!(stats.skipped, 0);
    let null = fs::symlink_metadata(s.root().join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
    assert_eq!(null.permissions().mode() & 0o7777, 0o640);
    assert!(fs::symlink_metadata(s.root().join("run/pipe"))
        .unwrap()
        .file_type()
        .is_fifo());

    let s2 = Scratch::new();
    let o = UnpackOptions {
        devices: false,
        ..opts()
    };
    let stats = apply_layer(&s2.root(), &layer[..], &o).unwrap();
    assert_eq!(stats.skipped, 2);
    assert!(!s2.root().join("dev/null").exists());
    assert!(fs::symlink_metadata(s2.root().join("run/pipe")).is_err());
}

#[test]
fn whiteout_removes_files_and_whole_directories_of_lower_layers() {
    let s = Scratch::new();
    let root = s.root();
    apply(
        &root,
        &[
            Layer::new()
                .file("a/keep", b"1")
                .file("a/gone", b"2")
                .file("d/x/y/z", b"3")
                .symlink("link", "a")
                .build(),
            Layer::new()
                .file("a/.wh.gone", b"")
                .file(".wh.d", b"")
                .file(".wh.link", b"")
                .file("a/.wh.never-existed", b"")
                .file("nodir/.wh.x", b"")
                .build(),
        ],
    );
    let t = tree(&root);
    let names: Vec<&str> = t.keys().map(String::as_str).collect();
    assert_eq!(names, ["a", "a/keep"]);
}

#[test]
fn opaque_directory_keeps_what_the_same_layer_adds_in_any_order() {
    for opaque_first in [true, false] {
        let s = Scratch::new();
        let root = s.root();
        let lower = Layer::new()
            .file("d/old", b"old")
            .file("d/sub/old", b"old")
            .file("other/x", b"x")
            .build();
        let mut upper = Layer::new();
        if opaque_first {
            upper = upper.file("d/.wh..wh..opq", b"");
        }
        upper = upper.file("d/new", b"new").file("d/sub/new", b"new");
        if !opaque_first {
            upper = upper.file("d/.wh..wh..opq", b"");
        }
        apply(&root, &[lower, upper.build()]);
        let t = tree(&root);
        let names: Vec<&str> = t.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["d", "d/new", "d/sub", "d/sub/new", "other", "other/x"],
            "opaque first: {opaque_first}"
        );
    }
}

#[test]
fn whiteout_of_a_name_the_same_layer_adds_spares_it() {
    let s = Scratch::new();
    let root = s.root();
    apply(
        &root,
        &[
            Layer::new().file("f", b"lower").build(),
            Layer::new().file("f", b"upper").file(".wh.f", b"").build(),
        ],
    );
    assert_eq!(fs::read(root.join("f")).unwrap(), b"upper");
}

#[test]
fn later_layer_replaces_a_directory_with_a_file_and_back() {
    let s = Scratch::new();
    let root = s.root();
    apply(
        &root,
        &[
            Layer::new()
                .file("x/inner/deep", b"1")
                .file("y", b"file")
                .symlink("z", "x")
                .build(),
            Layer::new()
                .file("x", b"now a file")
                .file("y/child", b"now a dir")
                .dir("z")
                .file("z/own", b"z is a real dir now")
                .build(),
        ],
    );
    assert_eq!(fs::read(root.join("x")).unwrap(), b"now a file");
    assert!(fs::symlink_metadata(root.join("y")).unwrap().is_dir());
    assert_eq!(fs::read(root.join("y/child")).unwrap(), b"now a dir");
    assert!(fs::symlink_metadata(root.join("z")).unwrap().is_dir());
    assert_eq!(
        fs::read(root.join("z/own")).unwrap(),
        b"z is a real dir now"
    );
    // An existing symlink is replaced, not written through.
    let s2 = Scratch::new();
    apply(
        &s2.root(),
        &[
            Layer::new()
                .file("target", b"keep me")
                .symlink("l", "target")
                .build(),
            Layer::new().file("l", b"regular now").build(),
        ],
    );
    assert_eq!(fs::read(s2.root().join("target")).unwrap(), b"keep me");
    assert_eq!(fs::read(s2.root().join("l")).unwrap(), b"regular now");
}

#[test]
fn gzip_and_zstd_layers_through_decompress() {
    use std::io::Write;
    let layer = Layer::new()
        .file("a", &vec![7u8; 3 << 20])
        .file("b", b"b")
        .build();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&layer).unwrap();
    let blobs = [
        gz.finish().unwrap(),
        zstd::encode_all(&layer[..], 3).unwrap(),
        layer.clone(),
    ];
    for blob in blobs {
        let s = Scratch::new();
        let reader = berth_rootfs::decompress(std::io::Cursor::new(blob)).unwrap();
        let stats = apply_layer(&s.root(), reader, &opts()).unwrap();
        assert_eq!(stats.bytes, (3 << 20) + 1);
        assert_eq!(fs::read(s.root().join("a")).unwrap().len(), 3 << 20);
    }
}

#[test]
fn long_names_via_gnu_and_pax() {
    let long = format!("{}/{}", "d".repeat(120), "f".repeat(150));
    let s = Scratch::new();
    let layer = Layer::new()
        .file(&long, b"gnu long name")
        .pax(&[("path", b"pax/named/file")])
        .file("ignored-name", b"pax path")
        .build();
    apply_layer(&s.root(), &layer[..], &opts()).unwrap();
    assert_eq!(fs::read(s.root().join(&long)).unwrap(), b"gnu long name");
    assert_eq!(
        fs::read(s.root().join("pax/named/file")).unwrap(),
        b"pax path"
    );
    assert!(!s.root().join("ignored-name").exists());
}

#[test]
fn remove_all_removes_read_only_trees() {
    let s = Scratch::new();
    let root = s.root();
    apply(
        &root,
        &[Layer::new()
            .dir_with("ro", 0o555, 0, 0)
            .file("ro/f", b"x")
            .dir_with("ro/inner", 0o500, 0, 0)
            .symlink("ro/to-outside", "../../outside")
            .build()],
    );
    fs::write(s.outside().join("keep"), b"k").unwrap();
    berth_rootfs::remove_all(&root).unwrap();
    assert!(!root.exists());
    assert!(
        s.outside().join("keep").exists(),
        "a symlink is removed, not followed"
    );
    berth_rootfs::remove_all(&root).unwrap(); // missing is fine
}
