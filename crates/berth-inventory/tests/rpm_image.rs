//! rpm-based images through the crate's public path (`analyze_layer` per layer, then
//! `squash`): the rpm database of a root built by real rpm, layer after layer, must give
//! the packages `rpm -qa` lists for the final root, each with the layer that added it and
//! a purl in the OS's namespace.

use std::collections::BTreeSet;
use std::path::Path;

use berth_inventory::{squash, Inventory, LayerArtifacts, PackageKind};

mod rpm_support;
mod support;

use rpm_support::*;
use support::{analyze, E};

const FEDORA: &[u8] = b"NAME=\"Fedora Linux\"\nID=fedora\nVERSION_ID=40\n";
const CENTOS7: &[u8] = b"NAME=\"CentOS Linux\"\nID=\"centos\"\nVERSION_ID=\"7\"\n";

/// A layer holding `root`'s rpm database files as rpm left them (with the empty
/// `-wal` and the `-shm` rpm keeps), at `db_dir`, after the `extra` entries.
fn db_layer(root: &Path, db_dir: &str, extra: Vec<E>) -> LayerArtifacts {
    let mut files = Vec::new();
    for name in ["rpmdb.sqlite", "rpmdb.sqlite-wal", "rpmdb.sqlite-shm"] {
        let path = root.join("var/lib/rpm").join(name);
        if let Ok(data) = std::fs::read(&path) {
            files.push((format!("{db_dir}/{name}"), data));
        }
    }
    let mut entries = extra;
    entries.extend(files.iter().map(|(p, d)| E::File(p, d)));
    analyze(&entries)
}

fn rpm_lines(inv: &Inventory) -> BTreeSet<String> {
    assert!(inv.packages.iter().all(|p| p.kind == PackageKind::Rpm));
    lines(&inv.packages)
}

#[test]
fn layered_rpm_image_lists_what_rpm_qa_lists() {
    let dir = tempfile::tempdir().unwrap();
    let rpms = build_rpms(dir.path());
    let rpm = |name: &str| rpms.iter().find(|r| r.0 == name).unwrap().1.as_path();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();

    // Layer 0: the base, with alpha, alpha-tools and py-beta-lib.
    install(
        &root,
        &[rpm("alpha"), rpm("alpha-tools"), rpm("py-beta-lib")],
    );
    let base = db_layer(
        &root,
        "var/lib/rpm",
        vec![E::File("etc/os-release", FEDORA)],
    );
    // Layer 1: gamma installed and alpha-tools removed, as `dnf install gamma && dnf
    // remove alpha-tools` in a RUN step would leave the database.
    install(&root, &[rpm("gamma")]);
    run(rpm_in(&root).args(["-e", "--nodeps", "--noscripts", "alpha-tools"]));
    let top = db_layer(&root, "var/lib/rpm", Vec::new());

    let inv = squash(&[base, top], None);
    assert_eq!(rpm_lines(&inv), rpm_qa(&root));
    assert_eq!(inv.packages.len(), 3);
    assert_eq!(inv.os.as_ref().map(|o| o.id.as_str()), Some("fedora"));
    for p in &inv.packages {
        assert_eq!(p.db_path, "var/lib/rpm/rpmdb.sqlite");
        let added = if p.name == "gamma" { 1 } else { 0 };
        assert_eq!(p.layer_index, added, "{}", p.name);
    }
    let gamma = inv.packages.iter().find(|p| p.name == "gamma").unwrap();
    assert_eq!(
        gamma.purl,
        "pkg:rpm/fedora/gamma@2024.1%5Epost2-7.el9_4?arch=noarch&distro=fedora-40&epoch=0&upstream=gamma-2024.1%5Epost2-7.el9_4.src.rpm"
    );
    let alpha = inv.packages.iter().find(|p| p.name == "alpha").unwrap();
    assert_eq!(
        alpha.purl,
        "pkg:rpm/fedora/alpha@1.2.3-4?arch=noarch&distro=fedora-40&epoch=2&upstream=alpha-1.2.3-4.src.rpm"
    );
}

/// RHEL 7 / CentOS 7 images keep the BerkeleyDB `Packages` file: the same packages come
/// out of it, read by the BerkeleyDB reader through the same layer analysis.
#[test]
fn berkeley_db_image_lists_what_rpm_qa_lists() {
    let dir = tempfile::tempdir().unwrap();
    let rpms = build_rpms(dir.path());
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    install(
        &root,
        &rpms.iter().map(|r| r.1.as_path()).collect::<Vec<_>>(),
    );
    let sqlite = root.join("var/lib/rpm/rpmdb.sqlite");
    let packages = bdb_packages(&sqlite, dir.path(), 4096, false);
    let data = std::fs::read(&packages).unwrap();
    let layer = analyze(&[
        E::File("etc/os-release", CENTOS7),
        E::File("var/lib/rpm/Packages", &data),
    ]);
    assert!(layer.errors.is_empty(), "{:?}", layer.errors);
    let inv = squash(&[layer], None);
    assert_eq!(rpm_lines(&inv), rpm_qa_bdb(&packages));
    assert_eq!(inv.packages.len(), 4);
    let tools = inv
        .packages
        .iter()
        .find(|p| p.name == "alpha-tools")
        .unwrap();
    assert_eq!(tools.db_path, "var/lib/rpm/Packages");
    assert_eq!(tools.source_name.as_deref(), Some("alpha"));
    assert_eq!(
        tools.purl,
        "pkg:rpm/centos/alpha-tools@1.2.3-4?arch=noarch&distro=centos-7&epoch=2&upstream=alpha-1.2.3-4.src.rpm"
    );
}

/// A damaged database in a layer is recorded as that file's error, with the layer's
/// path in the message (not the temporary copy's), and the analysis goes on.
#[test]
fn a_damaged_rpm_database_is_recorded_not_fatal() {
    let layer = analyze(&[
        E::File("etc/os-release", FEDORA),
        E::File(
            "usr/lib/sysimage/rpm/rpmdb.sqlite",
            b"SQLite format 3\0garbage",
        ),
    ]);
    assert_eq!(layer.errors.len(), 1, "{:?}", layer.errors);
    let (path, reason) = &layer.errors[0];
    assert_eq!(path, "usr/lib/sysimage/rpm/rpmdb.sqlite");
    assert!(
        reason.contains("usr/lib/sysimage/rpm/rpmdb.sqlite"),
        "{reason}"
    );
    assert!(!layer.os_release.is_empty());
}
