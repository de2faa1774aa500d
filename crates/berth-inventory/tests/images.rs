//! Layer analysis and squashing on images made by real tools: a debootstrap Debian root
//! (compared with `dpkg-query` on the same root), layered edits of it, distroless,
//! Alpine and Red Hat-style layouts, and hostile layers.

mod support;

use std::sync::OnceLock;

use berth_inventory::{
    analyze_layer, squash, unreadable_files, InventoryError, LayerArtifacts, PackageKind,
};
use support::*;

/// The debootstrap layer's artifacts, analyzed once for all tests of this binary.
fn debian_layer() -> &'static LayerArtifacts {
    static ARTS: OnceLock<LayerArtifacts> = OnceLock::new();
    ARTS.get_or_init(|| analyze_file(&debian().1, GZIP))
}

#[test]
fn debootstrap_packages_equal_dpkg_query() {
    let (root, _) = debian();
    let arts = debian_layer();
    // Only the allow-listed files were kept: the symlinked os-release, the real one,
    // debian_version and the status database.
    let kept: Vec<&str> = arts
        .databases
        .iter()
        .map(|(p, _)| p.as_str())
        .chain(arts.os_release.iter().map(|(p, _)| p.as_str()))
        .collect();
    assert_eq!(
        kept,
        [
            "var/lib/dpkg/status",
            "etc/debian_version",
            "usr/lib/os-release"
        ]
    );
    assert_eq!(
        arts.symlinks,
        [(
            "etc/os-release".to_string(),
            "../usr/lib/os-release".to_string()
        )]
    );
    assert!(arts.errors.is_empty(), "{:?}", arts.errors);

    let inv = squash(std::slice::from_ref(arts), None);
    let want = dpkg_query(&root);
    assert!(
        want.len() > 80,
        "a minbase root has ~90 packages: {}",
        want.len()
    );
    assert_eq!(triples(&inv), want);

    let os = inv.os.as_ref().expect("os");
    assert_eq!(os.id, "debian");
    assert_eq!(os.version_id.as_deref(), Some("12"));
    assert_eq!(os.ecosystem.as_deref(), Some("Debian:12"));
    assert_eq!(
        os.pretty_name.as_deref(),
        Some("Debian GNU/Linux 12 (bookworm)")
    );

    let libc = inv.packages.iter().find(|p| p.name == "libc6").unwrap();
    assert_eq!(libc.source_name.as_deref(), Some("glibc"));
    assert_eq!(libc.kind, PackageKind::Deb);
    assert_eq!(libc.db_path, "var/lib/dpkg/status");
    assert_eq!(
        libc.purl,
        format!(
            "pkg:deb/debian/libc6@{}?arch=amd64&distro=debian-12&upstream=glibc",
            libc.version
        )
    );
    assert!(inv.packages.iter().all(|p| p.layer_index == 0));
    assert!(inv.containerfile.is_none());
}

/// The status file of the debootstrap root, with `remove`'s stanza taken out and
/// `upgrade`'s version raised, as the upper layer of `apt-get remove` + upgrade has it.
fn edited_status(remove: &str, upgrade: &str) -> (String, String) {
    let text = std::fs::read_to_string(debian().0.join("var/lib/dpkg/status")).unwrap();
    let mut out = String::new();
    let mut new_version = String::new();
    for stanza in text.split("\n\n").filter(|s| !s.trim().is_empty()) {
        if stanza.starts_with(&format!("Package: {remove}\n")) {
            continue;
        }
        if stanza.starts_with(&format!("Package: {upgrade}\n")) {
            let mut s = String::new();
            for line in stanza.lines() {
                match line.strip_prefix("Version: ") {
                    Some(v) => {
                        new_version = format!("{v}+berth1");
                        s.push_str(&format!("Version: {new_version}\n"));
                    }
                    None => s.push_str(&format!("{line}\n")),
                }
            }
            out.push_str(&s);
            out.push('\n');
            continue;
        }
        out.push_str(stanza.trim_end());
        out.push_str("\n\n");
    }
    (out, new_version)
}

#[test]
fn upper_layer_removes_and_upgrades() {
    let lower = debian_layer().clone();
    let (status, new_version) = edited_status("sed", "bash");
    let upper = analyze(&[
        E::Dir("var/lib/dpkg/"),
        E::File("var/lib/dpkg/status", status.as_bytes()),
    ]);
    // A third layer that touches nothing the inventory reads.
    let top = analyze(&[E::File("srv/app", b"x")]);
    assert_eq!(
        top,
        LayerArtifacts {
            analyzer_version: top.analyzer_version,
            ..Default::default()
        }
    );

    let inv = squash(&[lower, upper, top], None);
    let mut want = dpkg_query(&debian().0);
    want.retain(|(n, _, _)| n != "sed");
    for w in &mut want {
        if w.0 == "bash" {
            w.1 = new_version.clone();
        }
    }
    assert_eq!(triples(&inv), want);
    for p in &inv.packages {
        let want_layer = if p.name == "bash" { 1 } else { 0 };
        assert_eq!(p.layer_index, want_layer, "{} {}", p.name, p.version);
    }
    assert_eq!(inv.os.unwrap().ecosystem.as_deref(), Some("Debian:12"));

    // The upper layer deletes the database folder: no packages, and a lower copy does
    // not come back.
    let wiped = analyze(&[E::File("var/lib/.wh.dpkg", b"")]);
    assert_eq!(wiped.whiteouts, ["var/lib/dpkg"]);
    let inv = squash(&[debian_layer().clone(), wiped], None);
    assert!(inv.packages.is_empty());
}

const DISTROLESS_OS: &str =
    "PRETTY_NAME=\"Distroless\"\nNAME=\"Debian GNU/Linux\"\nID=\"debian\"\n\
VERSION_ID=\"12\"\nVERSION=\"Debian GNU/Linux 12 (bookworm)\"\n";

fn status_d(name: &str, version: &str, source: Option<&str>) -> String {
    let mut s = format!("Package: {name}\nVersion: {version}\nArchitecture: amd64\n");
    if let Some(src) = source {
        s.push_str(&format!("Source: {src}\n"));
    }
    s.push_str("Maintainer: x <x@example.org>\nDescription: test\n");
    s
}

#[test]
fn distroless_status_d_whiteouts_and_opaque_folders() {
    let base = status_d("base-files", "12.4+deb12u5", None);
    let libc = status_d("libc6", "2.36-9+deb12u4", Some("glibc"));
    let ssl = status_d("libssl3", "3.0.11-1~deb12u2", Some("openssl"));
    let bottom = analyze(&[
        E::File("etc/os-release", DISTROLESS_OS.as_bytes()),
        E::File("var/lib/dpkg/status.d/base", base.as_bytes()),
        E::File(
            "var/lib/dpkg/status.d/base.md5sums",
            b"d41d8cd98f00b204e9800998ecf8427e  x\n",
        ),
        E::File("var/lib/dpkg/status.d/libc6", libc.as_bytes()),
        E::File("var/lib/dpkg/status.d/libssl3", ssl.as_bytes()),
    ]);
    assert_eq!(bottom.databases.len(), 3, "md5sums files are not databases");
    let names = |inv: &berth_inventory::Inventory| -> Vec<String> {
        inv.packages
            .iter()
            .map(|p| format!("{}@{}", p.name, p.layer_index))
            .collect()
    };

    let inv = squash(std::slice::from_ref(&bottom), None);
    assert_eq!(names(&inv), ["base-files@0", "libc6@0", "libssl3@0"]);
    let ssl_pkg = &inv.packages[2];
    assert_eq!(ssl_pkg.source_name.as_deref(), Some("openssl"));
    assert_eq!(ssl_pkg.db_path, "var/lib/dpkg/status.d/libssl3");

    let removal = analyze(&[E::File("var/lib/dpkg/status.d/.wh.libssl3", b"")]);
    assert_eq!(removal.whiteouts, ["var/lib/dpkg/status.d/libssl3"]);
    let inv = squash(&[bottom.clone(), removal.clone()], None);
    assert_eq!(names(&inv), ["base-files@0", "libc6@0"]);

    let tz = status_d("tzdata", "2024a-0+deb12u1", None);
    let opaque = analyze(&[
        E::File("var/lib/dpkg/status.d/.wh..wh..opq", b""),
        E::File("var/lib/dpkg/status.d/tzdata", tz.as_bytes()),
    ]);
    assert_eq!(opaque.opaque_dirs, ["var/lib/dpkg/status.d"]);
    let inv = squash(&[bottom.clone(), removal, opaque], None);
    assert_eq!(names(&inv), ["tzdata@2"]);
    assert_eq!(inv.os.unwrap().pretty_name.as_deref(), Some("Distroless"));

    // A whiteout applies to the layers below only: re-adding the file in a later
    // layer brings it back, introduced there.
    let again = analyze(&[E::File("var/lib/dpkg/status.d/libssl3", ssl.as_bytes())]);
    let removal = analyze(&[E::File("var/lib/dpkg/status.d/.wh.libssl3", b"")]);
    let inv = squash(&[bottom, removal, again], None);
    assert_eq!(names(&inv), ["base-files@0", "libc6@0", "libssl3@2"]);
}

/// An apk database as apk-tools 2 writes it (fields of a real Alpine 3.19 image).
const APK_INSTALLED: &str = "\
C:Q1SHP1XYAKJGS9WmBgLUWmfSPGuxA=
P:musl
V:1.2.4_git20230717-r4
A:x86_64
S:407170
I:663552
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Timo Teräs <timo.teras@iki.fi>
t:1701338986
c:9c1c1d4fd3e6e4e6ba16a4fb9d8a29da3e92a64c
F:lib
R:ld-musl-x86_64.so.1
a:0:0:755
Z:Q1V9jZBQgqDtwFQFdfWArqf5Ye0AM=
R:libc.musl-x86_64.so.1
a:0:0:777
Z:Q17yJ3JFNypA4mxhJJr0ou6CzsJVI=

C:Q1x1o/3eHn7JJ0WxGcPaVEWpmtsgI=
P:busybox
V:1.36.1-r15
A:x86_64
S:509611
I:951296
T:Size optimized toolbox of many common UNIX utilities
U:https://busybox.net/
L:GPL-2.0-only
o:busybox
m:Sören Tempel <soeren+alpine@soeren-tempel.net>
t:1701355497
c:6b2ec7f9ad11e3f0aeb1f4ac1fb7e6bfd7db35ab
D:so:libc.musl-x86_64.so.1
p:cmd:busybox=1.36.1-r15
r:busybox-initscripts
F:bin
R:busybox

C:Q1s8vwnwPEBfrXNeFrQwFd5NsUj/4=
P:libcrypto3
V:3.1.4-r2
A:x86_64
S:1734489
I:4313088
T:Crypto library from openssl
U:https://www.openssl.org/
L:Apache-2.0
o:openssl
m:Ariadne Conill <ariadne@dereferenced.org>
t:1701163035
c:8a8b5e3fc9b85a4d2b9ba5fd1dc8e0a3e3a25d33
D:so:libc.musl-x86_64.so.1
F:lib
R:libcrypto.so.3

";

const ALPINE_OS: &str = "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.1\n\
PRETTY_NAME=\"Alpine Linux v3.19\"\nHOME_URL=\"https://alpinelinux.org/\"\n\
BUG_REPORT_URL=\"https://gitlab.alpinelinux.org/alpine/aports/-/issues\"\n";

#[test]
fn alpine_apk_database_in_a_zstd_layer() {
    let tar = tar(&[
        E::Dir("./etc/"),
        E::File("./etc/alpine-release", b"3.19.1\n"),
        E::File("./etc/os-release", ALPINE_OS.as_bytes()),
        E::Dir("./lib/apk/db/"),
        E::File("./lib/apk/db/installed", APK_INSTALLED.as_bytes()),
        E::File("./lib/apk/db/scripts.tar", b"not read"),
    ]);
    let blob = zstd::encode_all(&tar[..], 3).unwrap();
    let arts = analyze_layer(std::io::Cursor::new(blob), ZSTD).unwrap();
    let inv = squash(&[arts], None);
    let os = inv.os.as_ref().unwrap();
    assert_eq!(os.ecosystem.as_deref(), Some("Alpine:v3.19"));
    let got: Vec<_> = inv
        .packages
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                p.version.as_str(),
                p.source_name.as_deref(),
                p.license.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "busybox",
                "1.36.1-r15",
                Some("busybox"),
                Some("GPL-2.0-only")
            ),
            (
                "libcrypto3",
                "3.1.4-r2",
                Some("openssl"),
                Some("Apache-2.0")
            ),
            ("musl", "1.2.4_git20230717-r4", Some("musl"), Some("MIT")),
        ]
    );
    assert_eq!(
        inv.packages[1].purl,
        "pkg:apk/alpine/libcrypto3@3.1.4-r2?arch=x86_64&distro=3.19.1&upstream=openssl"
    );
    assert!(inv.packages.iter().all(|p| p.kind == PackageKind::Apk));

    // The same layer uncompressed, told by its media type (and its first bytes).
    let plain = analyze_layer(std::io::Cursor::new(tar), TAR).unwrap();
    assert_eq!(squash(&[plain], None), inv);
}

const UBI_DOCKERFILE: &str = "FROM registry.access.redhat.com/ubi9/ubi-minimal:9.4\n\
LABEL name=\"ubi9/app\" version=\"1\"\nRUN microdnf install -y nginx && microdnf clean all\n\
USER 1001\nCMD [\"nginx\", \"-g\", \"daemon off;\"]\n";

#[test]
fn carried_containerfile_beats_history() {
    let base = analyze(&[
        E::File(
            "etc/os-release",
            b"ID=\"rhel\"\nVERSION_ID=\"9.4\"\nNAME=\"Red Hat Enterprise Linux\"\n",
        ),
        E::File(
            "root/buildinfo/Dockerfile-ubi9-minimal-9.4-1194",
            b"FROM scratch\nADD ubi.tar /\n",
        ),
        E::File(
            "root/buildinfo/content_manifests/ubi9-minimal.json",
            b"{\"content_sets\":[]}",
        ),
    ]);
    let app = analyze(&[E::File(
        "root/buildinfo/Dockerfile-ubi9-app-1-3",
        UBI_DOCKERFILE.as_bytes(),
    )]);
    let history = berth_inventory::ImageHistory::from_config(
        br#"{"history":[{"created_by":"/bin/sh -c #(nop) ADD file:abc in / "},
             {"created_by":"/bin/sh -c microdnf install -y nginx"}],
             "rootfs":{"diff_ids":["sha256:1","sha256:2"]}}"#,
        &[100, 200],
    )
    .unwrap();
    let inv = squash(&[base, app], Some(&history));
    let cf = inv.containerfile.expect("containerfile");
    assert!(!cf.reconstructed);
    assert_eq!(
        cf.path.as_deref(),
        Some("root/buildinfo/Dockerfile-ubi9-app-1-3")
    );
    assert_eq!(cf.text, UBI_DOCKERFILE);
    assert!(cf.steps.is_empty());
    assert_eq!(
        inv.os.unwrap().ecosystem.as_deref(),
        Some("Red Hat:enterprise_linux:9")
    );
}

/// A base image's build file below the user's own layers is not how the image was
/// built: the history is.
#[test]
fn a_base_images_build_file_gives_way_to_the_history_above_it() {
    let base = analyze(&[E::File(
        "root/buildinfo/Dockerfile-ubi9-9.4-1181",
        b"FROM scratch\nADD ubi.tar /\n",
    )]);
    let app = analyze(&[E::File("srv/server.js", b"//")]);
    let history = berth_inventory::ImageHistory::from_config(
        br#"{"history":[{"created_by":"/bin/sh -c #(nop) ADD file:abc in / "},
             {"created_by":"COPY server.js /srv/ # buildkit"},
             {"created_by":"/bin/sh -c #(nop)  CMD [\"node\", \"/srv/server.js\"]","empty_layer":true}],
             "rootfs":{"diff_ids":["sha256:1","sha256:2"]}}"#,
        &[100, 200],
    )
    .unwrap();
    let layers = [base, app];
    let cf = squash(&layers, Some(&history))
        .containerfile
        .expect("containerfile");
    assert!(cf.reconstructed, "{cf:?}");
    assert!(cf.text.contains("server.js"), "{}", cf.text);
    // Without a history, the carried file is all there is.
    let cf = squash(&layers, None).containerfile.expect("containerfile");
    assert_eq!(
        cf.path.as_deref(),
        Some("root/buildinfo/Dockerfile-ubi9-9.4-1181")
    );
}

/// One broken stanza costs that stanza, not the database (as Trivy reads it); the
/// file is reported as read in part. Three copies of a 20,000-package database squash
/// by set lookups (quadratic before: 40 s for one copy of 100,000).
#[test]
fn a_broken_stanza_skips_itself_and_big_databases_squash() {
    let arts = analyze(&[E::File(
        "var/lib/dpkg/status",
        b"Package: a\nStatus: install ok installed\nVersion: 1\n\n\
          Package: b\nStatus: install ok installed\n\n\
          Package: c\nStatus: install ok installed\nVersion: 2\n",
    )]);
    let layers = [arts];
    let names: Vec<String> = squash(&layers, None)
        .packages
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["a", "c"]);
    assert_eq!(
        unreadable_files(&layers),
        ["layer 0: var/lib/dpkg/status: stanza 2 has no Version (skipped; the rest read)"]
    );

    let mut big = String::new();
    for n in 0..20_000 {
        big.push_str(&format!(
            "Package: p{n}\nStatus: install ok installed\nVersion: 1\n\n"
        ));
    }
    let mut upgraded = big.replace(
        "Package: p7\nStatus: install ok installed\nVersion: 1",
        "Package: p7\nStatus: install ok installed\nVersion: 2",
    );
    upgraded.push_str("Package: new\nStatus: install ok installed\nVersion: 1\n");
    let layer = |text: &str| analyze(&[E::File("var/lib/dpkg/status", text.as_bytes())]);
    let layers = [layer(&big), layer(&big), layer(&upgraded)];
    let inv = squash(&layers, None);
    assert_eq!(inv.packages.len(), 20_001);
    let at = |name: &str| {
        inv.packages
            .iter()
            .find(|p| p.name == name)
            .unwrap()
            .layer_index
    };
    assert_eq!((at("p1"), at("p7"), at("new")), (0, 2, 2));
}

/// A folder replaced by a link in a later layer takes its lower content with it, as
/// applying the layer does: the old database under it no longer counts.
#[test]
fn a_folder_replaced_by_a_link_hides_what_was_below_it() {
    let apk = |version: &str| format!("P:openssl\nV:{version}\nA:x86_64\n\n");
    let old = apk("3.1.0-r0");
    let new = apk("3.3.2-r0");
    let lower = analyze(&[E::File("lib/apk/db/installed", old.as_bytes())]);
    let upper = analyze(&[
        E::Symlink("lib", "usr/lib"),
        E::File("usr/lib/apk/db/installed", new.as_bytes()),
    ]);
    let versions: Vec<String> = squash(&[lower, upper], None)
        .packages
        .into_iter()
        .map(|p| p.version)
        .collect();
    assert_eq!(versions, ["3.3.2-r0"]);
    // A file elsewhere does not hide anything.
    let lower = analyze(&[E::File("lib/apk/db/installed", old.as_bytes())]);
    let upper = analyze(&[E::Symlink("libx", "usr/lib"), E::File("opt", b"")]);
    assert!(upper.whiteouts.is_empty(), "{:?}", upper.whiteouts);
    assert_eq!(squash(&[lower, upper], None).packages.len(), 1);
}

#[test]
fn links_to_release_files() {
    // Hard link (same inode under two allow-listed names) and a symlink chain.
    let arts = analyze(&[
        E::File("usr/lib/os-release", ALPINE_OS.as_bytes()),
        E::HardLink("etc/os-release", "usr/lib/os-release"),
    ]);
    assert_eq!(arts.os_release.len(), 2);
    let inv = squash(&[arts], None);
    assert_eq!(inv.os.unwrap().id, "alpine");

    // The upper layer replaces etc/os-release by a link into its own usr/lib copy.
    let lower = analyze(&[E::File("etc/os-release", ALPINE_OS.as_bytes())]);
    let upper = analyze(&[
        E::File("usr/lib/os-release", DISTROLESS_OS.as_bytes()),
        E::Symlink("etc/os-release", "/usr/lib/os-release"),
    ]);
    let inv = squash(&[lower, upper], None);
    assert_eq!(inv.os.unwrap().pretty_name.as_deref(), Some("Distroless"));

    // A hard link to a file the analysis did not keep is recorded, not guessed.
    let arts = analyze(&[
        E::File("opt/status", b"Package: a\nVersion: 1\n"),
        E::HardLink("var/lib/dpkg/status", "opt/status"),
    ]);
    assert_eq!(arts.errors.len(), 1, "{:?}", arts.errors);
    assert_eq!(arts.errors[0].0, "var/lib/dpkg/status");
}

#[test]
fn hostile_layers_are_errors_not_panics() {
    // `..` in a name: the layer is refused, as applying it is.
    let bad = tar(&[E::Raw(b"../../etc/os-release", ALPINE_OS.as_bytes())]);
    let err = analyze_layer(std::io::Cursor::new(gzip(&bad)), GZIP).unwrap_err();
    assert!(
        matches!(err, InventoryError::UnsafePath(ref p) if p == "../../etc/os-release"),
        "{err}"
    );
    let bad = tar(&[E::Raw(b"var/lib/../../../x/.wh.etc", b"")]);
    assert!(matches!(
        analyze_layer(std::io::Cursor::new(bad), TAR),
        Err(InventoryError::UnsafePath(_))
    ));

    // A database over its limit: recorded for its path; the rest of the layer counts,
    // and the lower copy does not stand in for it.
    let mut giant = b"Package: a\nVersion: 1\nStatus: install ok installed\n\n".to_vec();
    giant.resize((64 << 20) + 1, b'x');
    let lower = analyze(&[E::File(
        "var/lib/dpkg/status",
        b"Package: old\nVersion: 1\n",
    )]);
    let upper = analyze(&[
        E::File("var/lib/dpkg/status", &giant),
        E::File("etc/os-release", ALPINE_OS.as_bytes()),
    ]);
    assert_eq!(upper.errors.len(), 1);
    assert!(upper.errors[0].1.contains("limit"), "{:?}", upper.errors);
    assert_eq!(upper.os_release.len(), 1);
    let layers = [lower, upper];
    let inv = squash(&layers, None);
    assert!(inv.packages.is_empty(), "{:?}", inv.packages);
    assert_eq!(unreadable_files(&layers).len(), 1);
    assert!(unreadable_files(&layers)[0].starts_with("layer 1: var/lib/dpkg/status: "));

    // A truncated gzip stream, cut anywhere.
    let (_, layer) = debian();
    let whole = std::fs::read(layer).unwrap();
    for cut in [10, whole.len() / 2, whole.len() - 4] {
        let err = analyze_layer(std::io::Cursor::new(whole[..cut].to_vec()), GZIP).unwrap_err();
        assert!(
            matches!(err, InventoryError::Read(_) | InventoryError::Tar(_)),
            "{cut}: {err}"
        );
    }
    // Garbage, and a media type that is not a tar layer.
    assert!(analyze_layer(
        std::io::Cursor::new(vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff]),
        GZIP
    )
    .is_err());
    assert!(matches!(
        analyze_layer(
            std::io::Cursor::new(Vec::new()),
            "application/vnd.oci.image.config.v1+json"
        ),
        Err(InventoryError::UnknownMediaType(_))
    ));
    // Random bytes claiming to be a tar.
    let noise: Vec<u8> = (0..10_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    assert!(analyze_layer(std::io::Cursor::new(noise), TAR).is_err());
}

/// One PAX record (`LEN key=value\n`, LEN counting itself).
fn pax_record(key: &str, value: &str) -> String {
    let body = format!(" {key}={value}\n");
    let mut n = body.len() + 1;
    while n.to_string().len() + body.len() != n {
        n = n.to_string().len() + body.len();
    }
    format!("{n}{body}")
}

/// A ustar header block and its data padded to 512 bytes, as written by hand (the
/// `tar` crate's builder would not write these cases).
fn member(name: &str, kind: tar::EntryType, size: u64, data: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_ustar();
    h.set_path(name).unwrap();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

/// A PAX extended header of one record, for the entry after it.
fn pax_member(key: &str, value: &str) -> Vec<u8> {
    let rec = pax_record(key, value);
    member(
        "PaxHeaders/x",
        tar::EntryType::XHeader,
        rec.len() as u64,
        rec.as_bytes(),
    )
}

#[test]
fn extension_headers_are_applied_and_capped() {
    let status =
        "Package: a\nVersion: 1\nArchitecture: all\n\nPackage: b\nVersion: 2\nArchitecture: all\n";
    let mut t = Vec::new();
    // A PAX path gives the name; the header's own name is a placeholder.
    t.extend(pax_member("path", "etc/os-release"));
    t.extend(member(
        "placeholder",
        tar::EntryType::Regular,
        ALPINE_OS.len() as u64,
        ALPINE_OS.as_bytes(),
    ));
    // A PAX size with 0 in the header (Go's archive/tar for files over 8 GiB): the data
    // is read by the record's size and the next entry is still found.
    t.extend(pax_member("size", &status.len().to_string()));
    t.extend(member(
        "var/lib/dpkg/status",
        tar::EntryType::Regular,
        0,
        status.as_bytes(),
    ));
    t.extend(member(
        "etc/alpine-release",
        tar::EntryType::Regular,
        7,
        b"3.19.1\n",
    ));
    t.extend([0u8; 1024]);
    let arts = analyze_layer(std::io::Cursor::new(t), TAR).unwrap();
    let paths: Vec<&str> = arts.os_release.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(paths, ["etc/alpine-release", "etc/os-release"]);
    assert_eq!(arts.databases[0].1.len(), 2, "{:?}", arts.databases);

    // GNU long names (the tar crate's builder writes them past 100 bytes).
    let long = format!("root/buildinfo/{}/Dockerfile-x", "d".repeat(120));
    let arts = analyze(&[E::File(&long, b"FROM scratch\n")]);
    assert_eq!(
        arts.buildinfo,
        [(long.clone(), "FROM scratch\n".to_string())]
    );

    // A PAX header claiming 2 MiB is refused before it is read into memory.
    let bomb = "x".repeat(2 << 20);
    let t = [
        member(
            "PaxHeaders/3",
            tar::EntryType::XHeader,
            bomb.len() as u64,
            bomb.as_bytes(),
        ),
        member("etc/os-release", tar::EntryType::Regular, 0, b""),
        vec![0u8; 1024],
    ]
    .concat();
    let err = analyze_layer(std::io::Cursor::new(gzip(&t)), GZIP).unwrap_err();
    assert!(
        matches!(err, InventoryError::Tar(_)) && err.to_string().contains("limit"),
        "{err}"
    );
}
