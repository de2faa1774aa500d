//! [`TarLimits`]: a tar past a limit is refused, naming the limit and the variable that
//! raises it, before any byte of the offending entry is written; up to the limit,
//! everything goes in as without limits.

mod common;

use std::fs;

use berth_rootfs::{apply_layer, pack_checked_layer, Limit, RootfsError, TarLimits, UnpackOptions};
use common::{opts, Layer, Scratch};

fn with(limits: TarLimits) -> UnpackOptions {
    UnpackOptions { limits, ..opts() }
}

fn limited(entries: u64, bytes: u64, path: u64) -> TarLimits {
    TarLimits {
        max_entries: entries,
        max_bytes: bytes,
        max_path: path,
    }
}

/// `err` is `limit` at `max`, and its message names the variable that raises it.
#[track_caller]
fn assert_limit(err: &RootfsError, limit: Limit, max: u64) {
    match err {
        RootfsError::Limit {
            limit: l, max: m, ..
        } if *l == limit && *m == max => {}
        _ => panic!("expected the {limit:?} limit at {max}: {err}"),
    }
    assert!(err.to_string().contains(limit.var()), "{err}");
}

fn files(n: usize, size: usize) -> Vec<u8> {
    (0..n)
        .fold(Layer::new(), |l, i| {
            l.file(&format!("f{i}"), &vec![b'x'; size])
        })
        .build()
}

#[test]
fn too_many_entries_stop_at_the_first_one_over() {
    let s = Scratch::new();
    let err = apply_layer(
        &s.root(),
        &files(5, 10)[..],
        &with(limited(3, 1 << 20, 100)),
    )
    .unwrap_err();
    assert_limit(&err, Limit::Entries, 3);
    assert_eq!(
        err.to_string(),
        "tar exceeds 3 entries at entry \"f3\" (set BERTH_TAR_MAX_ENTRIES to raise the limit)"
    );
    assert!(s.root().join("f2").is_file());
    assert!(
        !s.root().join("f3").exists(),
        "the entry over the limit was created"
    );
    s.assert_outside_untouched();
    // At the limit exactly, the layer goes in.
    let s = Scratch::new();
    apply_layer(
        &s.root(),
        &files(3, 10)[..],
        &with(limited(3, 1 << 20, 100)),
    )
    .unwrap();
}

#[test]
fn too_many_bytes_leave_the_file_over_the_limit_unwritten() {
    let s = Scratch::new();
    let layer = files(3, 4000);
    let err = apply_layer(&s.root(), &layer[..], &with(limited(100, 10_000, 100))).unwrap_err();
    assert_limit(&err, Limit::Bytes, 10_000);
    assert_eq!(fs::read(s.root().join("f1")).unwrap().len(), 4000);
    assert!(
        !s.root().join("f2").exists(),
        "bytes of the entry over the limit were written"
    );
    let s = Scratch::new();
    apply_layer(&s.root(), &layer[..], &with(limited(100, 12_000, 100))).unwrap();
}

#[test]
fn a_name_or_link_target_longer_than_max_path_is_refused() {
    let long = format!("d/{}", "n".repeat(60));
    let target = format!("/{}", "t".repeat(60));
    for layer in [
        Layer::new().dir("d").file(&long, b"x").build(),
        Layer::new().dir("d").symlink("d/l", &target).build(),
    ] {
        let s = Scratch::new();
        let err = apply_layer(&s.root(), &layer[..], &with(limited(100, 100, 50))).unwrap_err();
        assert_limit(&err, Limit::Path, 50);
        assert_eq!(fs::read_dir(s.root().join("d")).unwrap().count(), 0);
        // The default limit takes both.
        let s = Scratch::new();
        apply_layer(&s.root(), &layer[..], &opts()).unwrap();
    }
}

#[test]
fn a_long_name_in_a_pax_header_counts_as_the_name() {
    let name = "p".repeat(3000);
    let layer = Layer::new()
        .pax(&[("path", name.as_bytes())])
        .file("short", b"x")
        .build();
    let s = Scratch::new();
    let err = apply_layer(&s.root(), &layer[..], &with(limited(100, 1 << 20, 2048))).unwrap_err();
    assert_limit(&err, Limit::Path, 2048);
    // One short line, whatever the name's length.
    assert!(err.to_string().len() < 200, "{err}");
}

#[test]
fn import_checks_the_limits_as_it_packs() {
    let tar = files(5, 10);
    let mut out = Vec::new();
    let err = pack_checked_layer(&tar[..], &mut out, &limited(4, 1 << 20, 100)).unwrap_err();
    assert_limit(&err, Limit::Entries, 4);
    let err = pack_checked_layer(&tar[..], Vec::new(), &limited(10, 49, 100)).unwrap_err();
    assert_limit(&err, Limit::Bytes, 49);
    pack_checked_layer(&tar[..], Vec::new(), &limited(5, 50, 100)).unwrap();
}

#[test]
fn extension_headers_count_as_data_and_cannot_run_on() {
    // Their payloads count towards the bytes.
    let layer = Layer::new()
        .pax(&[("comment", "c".repeat(5000).as_bytes())])
        .file("f", b"x")
        .build();
    let s = Scratch::new();
    let err = apply_layer(&s.root(), &layer[..], &with(limited(100, 4000, 100))).unwrap_err();
    assert_limit(&err, Limit::Bytes, 4000);
    assert!(!s.root().join("f").exists());
    // An endless run of PAX headers ends as an error, not a loop.
    let many = (0..20)
        .fold(Layer::new(), |l, _| l.pax(&[("comment", b"x")]))
        .file("f", b"x")
        .build();
    let err = apply_layer(&Scratch::new().root(), &many[..], &opts()).unwrap_err();
    assert!(
        err.to_string().contains("extension headers in a row"),
        "{err}"
    );
}
