//! Hostile layers: refused, or kept inside the root; never a byte outside it.

mod common;

use std::fs;

use berth_rootfs::{apply_layer, RootfsError};
use common::{opts, Layer, Scratch};

fn apply_err(s: &Scratch, layers: &[Vec<u8>]) -> RootfsError {
    let (last, lower) = layers.split_last().unwrap();
    for l in lower {
        apply_layer(&s.root(), &l[..], &opts()).unwrap();
    }
    apply_layer(&s.root(), &last[..], &opts()).unwrap_err()
}

#[test]
fn dot_dot_names_are_refused() {
    for name in ["../x", "a/../../x", "../outside/x"] {
        let s = Scratch::new();
        let layer = Layer::new()
            .raw(tar::EntryType::Regular, name, "", b"evil")
            .build();
        let err = apply_err(&s, &[layer]);
        assert!(matches!(err, RootfsError::Refused { .. }), "{name}: {err}");
        assert!(err.to_string().contains(".."), "{err}");
        s.assert_outside_untouched();
    }
    // A whiteout with `..` too.
    let s = Scratch::new();
    fs::write(s.outside().join("precious"), b"p").unwrap();
    let layer = Layer::new()
        .raw(tar::EntryType::Regular, "../outside/.wh.precious", "", b"")
        .build();
    apply_err(&s, &[layer]);
    assert!(s.outside().join("precious").exists());
}

#[test]
fn absolute_names_are_relative_to_the_root() {
    let s = Scratch::new();
    let outside = s.outside();
    let abs = format!("{}/x", outside.display());
    let layer = Layer::new()
        .raw(tar::EntryType::Regular, "/etc/x", "", b"in root")
        .raw(tar::EntryType::Regular, &abs, "", b"also in root")
        .build();
    apply_layer(&s.root(), &layer[..], &opts()).unwrap();
    assert_eq!(fs::read(s.root().join("etc/x")).unwrap(), b"in root");
    assert!(s.root().join(abs.trim_start_matches('/')).exists());
    s.assert_outside_untouched();
}

#[test]
fn entries_below_a_symlink_stay_in_the_root() {
    // Symlinks in a parent resolve as if the root were `/` (podman's chrooted unpack
    // gives the same answer): the entries land inside the root, never outside.
    for target in [
        "/",
        "../../..",
        "..",
        "../outside",
        "/../../outside",
        "OUTSIDE",
    ] {
        let s = Scratch::new();
        let target = target.replace("OUTSIDE", &s.outside().display().to_string());
        let layer = Layer::new()
            .symlink("a", &target)
            .file("a/escape", b"evil")
            .dir("a/escape-dir")
            .symlink("a/escape-link", "/etc/passwd")
            .hardlink("a/escape-hard", "a-file")
            .build();
        let layer = [Layer::new().file("a-file", b"f").build(), layer];
        for l in &layer {
            apply_layer(&s.root(), &l[..], &opts()).unwrap();
        }
        s.assert_outside_untouched();
        assert!(fs::symlink_metadata(s.root().join("a"))
            .unwrap()
            .file_type()
            .is_symlink());
    }
    let s = Scratch::new();
    let layer = Layer::new()
        .symlink("a", "../../..")
        .file("a/escape", b"evil")
        .build();
    apply_layer(&s.root(), &layer[..], &opts()).unwrap();
    assert_eq!(
        fs::read(s.root().join("escape")).unwrap(),
        b"evil",
        "`a` is the root itself"
    );
    s.assert_outside_untouched();
}

#[test]
fn symlink_in_a_lower_layer_cannot_redirect_an_upper_one() {
    let s = Scratch::new();
    let target = s.outside().display().to_string();
    let lower = Layer::new().symlink("etc", &target).build();
    let upper = Layer::new().file("etc/shadow", b"evil").build();
    apply_layer(&s.root(), &lower[..], &opts()).unwrap();
    apply_layer(&s.root(), &upper[..], &opts()).unwrap();
    s.assert_outside_untouched();
    // The absolute target was followed inside the root.
    assert!(s
        .root()
        .join(target.trim_start_matches('/'))
        .join("shadow")
        .exists());
}

#[test]
fn symlink_loops_are_an_error_not_a_hang() {
    let s = Scratch::new();
    let layer = Layer::new()
        .symlink("a", "b")
        .symlink("b", "a")
        .file("a/x", b"x")
        .build();
    let err = apply_err(&s, &[layer]);
    assert!(err.to_string().contains("resolve"), "{err}");
}

#[test]
fn hard_links_out_of_the_root_or_through_symlinks_are_refused() {
    let s = Scratch::new();
    fs::write(s.outside().join("secret"), b"s").unwrap();
    let layer = Layer::new()
        .raw(tar::EntryType::Link, "stolen", "../outside/secret", b"")
        .build();
    let err = apply_err(&s, &[layer]);
    assert!(matches!(err, RootfsError::Refused { .. }), "{err}");

    let s = Scratch::new();
    fs::write(s.outside().join("secret"), b"s").unwrap();
    let to_outside = s.outside().display().to_string();
    let layer = Layer::new()
        .symlink("out", &to_outside)
        .symlink("up", "../outside")
        .raw(tar::EntryType::Link, "stolen", "up/secret", b"")
        .build();
    let err = apply_err(&s, &[layer]);
    assert!(err.to_string().contains("symlink"), "{err}");
    let layer = Layer::new().hardlink("stolen2", "out/secret").build();
    let err = apply_err(&s, &[layer]);
    assert!(err.to_string().contains("symlink"), "{err}");
    assert!(!s.root().join("stolen").exists() && !s.root().join("stolen2").exists());

    // A link whose target does not exist.
    let s = Scratch::new();
    let err = apply_err(&s, &[Layer::new().hardlink("x", "missing").build()]);
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[test]
fn existing_symlink_at_the_entry_is_replaced_not_followed() {
    let s = Scratch::new();
    let victim = s.outside().join("victim");
    fs::write(&victim, b"original").unwrap();
    let layer = Layer::new()
        .symlink("f", &victim.display().to_string())
        .file("f", b"overwritten?")
        .symlink("d", &s.outside().display().to_string())
        .dir_with("d", 0o700, 0, 0)
        .build();
    apply_layer(&s.root(), &layer[..], &opts()).unwrap();
    assert_eq!(fs::read(&victim).unwrap(), b"original");
    assert_eq!(fs::read(s.root().join("f")).unwrap(), b"overwritten?");
    assert!(fs::symlink_metadata(s.root().join("d")).unwrap().is_dir());
    use std::os::unix::fs::PermissionsExt;
    let outside_mode = fs::metadata(s.outside()).unwrap().permissions().mode() & 0o7777;
    assert_ne!(outside_mode, 0o700, "chmod went through the symlink");
}

#[test]
fn oversized_pax_headers_are_refused() {
    let s = Scratch::new();
    let big = vec![b'a'; 2 << 20];
    let layer = Layer::new()
        .pax(&[("comment", &big)])
        .file("x", b"x")
        .build();
    let err = apply_err(&s, &[layer]);
    assert!(matches!(err, RootfsError::Malformed(_)), "{err}");
    assert!(err.to_string().contains("extension header"), "{err}");
    assert!(!s.root().join("x").exists());

    // A header that only claims to be huge is refused before any allocation.
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_size(1 << 40);
    h.set_cksum();
    let mut raw = h.as_bytes().to_vec();
    raw.extend_from_slice(&[0u8; 1024]);
    let err = apply_layer(&s.root(), &raw[..], &opts()).unwrap_err();
    assert!(err.to_string().contains("extension header"), "{err}");
}

#[test]
fn truncated_and_corrupt_tars_are_errors() {
    let s = Scratch::new();
    let layer = Layer::new().file("big", &vec![1u8; 100_000]).build();
    let err = apply_layer(&s.root(), &layer[..50_000], &opts()).unwrap_err();
    assert!(matches!(err, RootfsError::Malformed(_)), "{err}");
    let mut bad = Layer::new().file("x", b"x").build();
    bad[10] ^= 0xff;
    let err = apply_layer(&s.root(), &bad[..], &opts()).unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");
}

/// A working directory an image names is made inside its root: through a symlink to an
/// absolute host path (taken inside the root), never outside it; `..` is refused.
#[test]
fn a_working_directory_is_made_inside_the_root() {
    let s = Scratch::new();
    let outside = s.outside();
    std::os::unix::fs::symlink(&outside, s.root().join("w")).unwrap();
    berth_rootfs::create_dir_in(&s.root(), "/w/a/b").unwrap();
    let inside = s
        .root()
        .join(outside.strip_prefix("/").unwrap())
        .join("a/b");
    assert!(inside.is_dir(), "{}", inside.display());
    let err = berth_rootfs::create_dir_in(&s.root(), "/../../x").unwrap_err();
    assert!(matches!(err, RootfsError::Refused { .. }), "{err}");
    s.assert_outside_untouched();
}

/// A stored layer is applied only as the image config names it: its uncompressed
/// bytes (gzip here) must hash to the config's diff ID. Another image's layers under a
/// trusted config were unpacked as that image.
#[test]
fn a_stored_layer_must_be_the_configs() {
    use std::io::Write;
    let layer = Layer::new().file("etc/motd", b"hello").build();
    let diff_id = format!("sha256:{}", berth_image::Digest::sha256_of(&layer).hex());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&layer).unwrap();
    let gz = gz.finish().unwrap();
    let s = Scratch::new();
    berth_rootfs::apply_stored_layer(
        &s.root(),
        std::io::Cursor::new(gz.clone()),
        &diff_id,
        &opts(),
    )
    .unwrap();
    assert_eq!(fs::read(s.root().join("etc/motd")).unwrap(), b"hello");
    let other = format!("sha256:{}", "0".repeat(64));
    let s = Scratch::new();
    let err =
        berth_rootfs::apply_stored_layer(&s.root(), std::io::Cursor::new(gz), &other, &opts())
            .unwrap_err();
    assert!(err.to_string().contains("the image config says"), "{err}");
}
