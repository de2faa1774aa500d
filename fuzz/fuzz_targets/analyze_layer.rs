//! berth-inventory's layer analysis: arbitrary bytes as a layer (plain, gzip or zstd tar,
//! told apart by their first bytes), as the registry reads every pushed layer. An error
//! or artifacts, never a panic; the same bytes give the same artifacts; every path
//! recorded is relative, clean (no empty, `.` or `..` component) and no longer than the
//! tar reader's name limit (`TarLimits::DEFAULT_MAX_PATH`); a database, release file or
//! build file is on the allow-list; and squashing the artifacts over themselves changes
//! neither the OS nor the package count.
#![no_main]
use berth_inventory::{analyze_layer, squash, unreadable_files, LayerArtifacts};
use libfuzzer_sys::fuzz_target;

/// The longest entry name `analyze_layer`'s tar reader accepts (its default limits).
const MAX_PATH: usize = berth_rootfs::TarLimits::DEFAULT_MAX_PATH as usize;

fn check_path(what: &str, p: &str) {
    assert!(!p.is_empty(), "an empty {what} path");
    assert!(p.len() <= MAX_PATH, "a {what} path of {} bytes", p.len());
    assert!(!p.starts_with('/'), "{what} {p:?} is absolute");
    for c in p.split('/') {
        assert!(
            !matches!(c, "" | "." | ".."),
            "{what} {p:?} has a {c:?} component"
        );
    }
}

const DATABASES: [&str; 9] = [
    "var/lib/dpkg/status",
    "lib/apk/db/installed",
    "usr/lib/apk/db/installed",
    "var/lib/rpm/rpmdb.sqlite",
    "var/lib/rpm/Packages",
    "usr/lib/sysimage/rpm/rpmdb.sqlite",
    "usr/lib/sysimage/rpm/Packages",
    "usr/share/rpm/rpmdb.sqlite",
    "usr/share/rpm/Packages",
];
const RELEASE_FILES: [&str; 5] = [
    "etc/os-release",
    "usr/lib/os-release",
    "etc/alpine-release",
    "etc/debian_version",
    "etc/redhat-release",
];

fn check(art: &LayerArtifacts) {
    for (p, _) in &art.databases {
        check_path("database", p);
        let status_d = p
            .strip_prefix("var/lib/dpkg/status.d/")
            .is_some_and(|n| !n.contains('/'));
        assert!(
            DATABASES.contains(&p.as_str()) || status_d,
            "database {p:?}"
        );
    }
    for (p, _) in &art.os_release {
        check_path("release file", p);
        assert!(RELEASE_FILES.contains(&p.as_str()), "release file {p:?}");
    }
    for (p, _) in &art.buildinfo {
        check_path("build file", p);
        assert!(
            p.starts_with("root/buildinfo/") || p.starts_with("usr/share/buildinfo/"),
            "build file {p:?}"
        );
    }
    for p in art.whiteouts.iter().chain(&art.opaque_dirs) {
        check_path("whiteout", p);
    }
    for (p, _) in art.symlinks.iter().chain(&art.errors) {
        check_path("link or error", p);
    }
}

fuzz_target!(|data: &[u8]| {
    let read = || analyze_layer(std::io::Cursor::new(data.to_vec()), berth_fuzz::OCI_LAYER);
    let Ok(art) = read() else {
        return;
    };
    check(&art);
    let again = read().expect("the same bytes failed the second time");
    assert_eq!(art, again, "the same layer gave other artifacts");
    let layers = [art.clone(), again];
    let one = squash(&layers[..1], None);
    let two = squash(&layers, None);
    // A layer over itself changes nothing but which layer introduced a package.
    assert_eq!(one.os, two.os);
    assert_eq!(one.packages.len(), two.packages.len());
    let _ = unreadable_files(&layers);
});
