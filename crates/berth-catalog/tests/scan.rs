//! The catalog over a real store: images written into a registry data folder
//! (blob files + meta.db rows, as a push leaves them), scanned, matched with OSV
//! data imported afterwards (a rematch reads no layer), a layer that fails analysis
//! recorded with its reason, allow-list entries applied and expiring.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use berth_catalog::query::PackageSort;
use berth_catalog::search::SearchQuery;
use berth_catalog::{AllowEntry, Catalog, Scanned};
use berth_image::Digest;
use berth_store::{BlobStore, MetaStore, NewManifest, SqliteMeta};
use serde_json::json;

const OS_RELEASE: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n";

fn dpkg_status(packages: &[(&str, &str)]) -> String {
    packages
        .iter()
        .map(|(n, v)| {
            format!(
                "Package: {n}\nStatus: install ok installed\nArchitecture: amd64\nVersion: {v}\n\n"
            )
        })
        .collect()
}

/// A plain tar of these files.
fn tar_of(files: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, text) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(text.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, path, text.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

struct Registry {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    meta: Arc<SqliteMeta>,
    blobs: BlobStore,
}

type Layer = (&'static str, Vec<u8>, Vec<u8>);

impl Registry {
    fn new() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        Registry {
            meta: Arc::new(SqliteMeta::open(&root.join("meta.db")).unwrap()),
            blobs: BlobStore::open(&root).unwrap(),
            root,
            _dir: dir,
        }
    }

    fn blob(&self, repo: &str, bytes: &[u8]) -> Digest {
        let d = Digest::sha256_of(bytes);
        let path = self.blobs.path(&d);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        self.meta
            .link_blob(repo, &d, bytes.len() as u64, &|| true)
            .unwrap();
        d
    }

    /// Pushes an image of these layers (media type, bytes, uncompressed bytes).
    fn push(&self, repo: &str, tag: &str, layers: &[Layer], labels: serde_json::Value) -> Digest {
        let diff_ids: Vec<String> = layers
            .iter()
            .map(|(_, _, raw)| Digest::sha256_of(raw).to_string())
            .collect();
        let history: Vec<_> = layers
            .iter()
            .map(|_| json!({"created_by": "/bin/sh -c #(nop) ADD file:x in / "}))
            .collect();
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Labels": labels},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history,
        }))
        .unwrap();
        let config_d = self.blob(repo, &config);
        let layer_descs: Vec<_> = layers
            .iter()
            .map(|(mt, bytes, _)| {
                let d = self.blob(repo, bytes);
                json!({"mediaType": mt, "digest": d.to_string(), "size": bytes.len()})
            })
            .collect();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_d.to_string(), "size": config.len()},
            "layers": layer_descs,
        }))
        .unwrap();
        let digest = Digest::sha256_of(&manifest);
        let parsed = berth_image::Manifest::parse(None, &manifest).unwrap();
        self.meta
            .put_manifest(
                repo,
                &NewManifest::new(digest.clone(), &parsed, manifest),
                Some(tag),
            )
            .unwrap();
        digest
    }

    fn catalog(&self) -> Catalog {
        Catalog::open(&self.root, self.meta.clone() as Arc<dyn MetaStore>).unwrap()
    }
}

fn debian_layer(packages: &[(&str, &str)]) -> Layer {
    let raw = tar_of(&[
        ("etc/os-release", OS_RELEASE),
        ("var/lib/dpkg/status", &dpkg_status(packages)),
    ]);
    (
        "application/vnd.oci.image.layer.v1.tar+gzip",
        gzip(&raw),
        raw,
    )
}

fn osv_file(dir: &Path) -> std::path::PathBuf {
    let record = json!({
        "id": "DSA-5532-1", "modified": "2024-02-01T00:00:00Z", "published": "2024-01-10T00:00:00Z",
        "aliases": ["CVE-2023-5363"],
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
        "affected": [{"package": {"ecosystem": "Debian:12", "name": "openssl"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.0.11-1~deb12u2"}]}]}]
    });
    let path = dir.join("DSA-5532-1.json");
    std::fs::write(&path, record.to_string()).unwrap();
    path
}

fn search(cat: &Catalog, q: SearchQuery) -> Vec<String> {
    let q = SearchQuery {
        page: 1,
        per_page: 10,
        ..q
    };
    cat.db()
        .search(&q, &|_| true)
        .unwrap()
        .results
        .into_iter()
        .map(|h| h.repository)
        .collect()
}

fn allow(cat: &Catalog, expires_at: i64) {
    cat.db()
        .allow(&AllowEntry {
            repository: "team/app".into(),
            finding_id: "CVE-2023-5363".into(),
            reason: "not reachable".into(),
            expires_at: Some(expires_at),
            created_by: "admin".into(),
            created_at: berth_store::unix_now(),
        })
        .unwrap();
}

#[test]
fn an_image_is_inventoried_once_and_rematched_without_reading_layers() {
    let reg = Registry::new();
    let base = debian_layer(&[("libc6", "2.36-9"), ("openssl", "3.0.9-1")]);
    let app_raw = tar_of(&[("app/run.sh", "#!/bin/sh\n")]);
    let app = (
        "application/vnd.oci.image.layer.v1.tar",
        app_raw.clone(),
        app_raw,
    );
    let one = reg.push(
        "lib/debian",
        "12",
        std::slice::from_ref(&base),
        json!({"org.opencontainers.image.description": "Debian base"}),
    );
    let two = reg.push("team/app", "1.0", &[base, app], json!({"vendor": "acme"}));
    let cat = reg.catalog();

    assert_eq!(
        cat.scan_manifest("lib/debian", &one, false).unwrap(),
        Scanned::Done
    );
    assert_eq!(
        cat.scan_manifest("team/app", &two, false).unwrap(),
        Scanned::Done
    );
    // The shared base layer was read once: 2 distinct layers.
    assert_eq!(cat.stats.layers_analyzed.load(Ordering::Relaxed), 2);
    assert_eq!(
        cat.scan_manifest("team/app", &two, false).unwrap(),
        Scanned::Current
    );

    let packages = cat.packages(&two.to_string(), "").unwrap().unwrap();
    let names: Vec<_> = packages
        .iter()
        .map(|p| (p.name.as_str(), p.version.as_str()))
        .collect();
    assert_eq!(names, [("libc6", "2.36-9"), ("openssl", "3.0.9-1")]);
    let view = cat.manifest("team/app", &two).unwrap().unwrap();
    assert_eq!(
        view.images[0].base_image.as_deref(),
        Some(format!("lib/debian@{one}").as_str())
    );
    let os = view.images[0].os.as_ref().unwrap();
    assert_eq!(os.ecosystem.as_deref(), Some("Debian:12"));
    // No data yet: no findings, no grade.
    let v = cat
        .vulnerabilities("team/app", &two.to_string(), &Default::default())
        .unwrap()
        .unwrap();
    assert!(v.findings.is_empty() && v.grade.is_none());

    let data = tempfile::tempdir().unwrap();
    let (imports, rematch) = cat.import_vulns(&[&osv_file(data.path())]).unwrap();
    assert_eq!(imports.len(), 1);
    assert_eq!(rematch.images, 2);
    assert_eq!(
        cat.stats.layers_analyzed.load(Ordering::Relaxed),
        2,
        "a rematch reads no layer"
    );
    let v = cat
        .vulnerabilities("team/app", &two.to_string(), &Default::default())
        .unwrap()
        .unwrap();
    let ids: Vec<_> = v.findings.iter().map(|f| f.finding.id.as_str()).collect();
    assert_eq!(ids, ["DSA-5532-1"]);
    assert_eq!(
        v.findings[0].finding.fixed.as_deref(),
        Some("3.0.11-1~deb12u2")
    );
    assert!(
        v.grade.as_deref().is_some_and(|g| g != "A"),
        "{:?}",
        v.grade
    );
    // The overview and the tags grade from the findings' columns: the same grade.
    let summary = |cat: &Catalog| {
        cat.manifest("team/app", &two).unwrap().unwrap().images[0]
            .summary
            .clone()
    };
    let s = summary(&cat);
    assert_eq!(
        (s.grade.as_deref(), s.critical, s.high),
        (v.grade.as_deref(), 1, 0)
    );
    let tags = cat.repository("team/app").unwrap().unwrap().tags;
    assert_eq!(
        (tags[0].grade.as_deref(), tags[0].critical),
        (v.grade.as_deref(), 1)
    );

    // Search: by CVE alias, by package, by label, by text.
    let both = ["lib/debian", "team/app"];
    let by_cve = SearchQuery {
        cve: Some("CVE-2023-5363".into()),
        ..Default::default()
    };
    assert_eq!(search(&cat, by_cve), both);
    let by_package = SearchQuery {
        package: Some("openssl".into()),
        ..Default::default()
    };
    assert_eq!(search(&cat, by_package), both);
    let by_label = SearchQuery {
        labels: vec![("vendor".into(), "acme".into())],
        ..Default::default()
    };
    assert_eq!(search(&cat, by_label), ["team/app"]);
    let by_text = |q: &str| SearchQuery {
        q: q.into(),
        ..Default::default()
    };
    assert_eq!(search(&cat, by_text("debian base")), ["lib/debian"]);
    assert_eq!(search(&cat, by_text("app")), ["team/app"]);

    // The allow-list takes the finding out of the grade until it expires.
    let now = berth_store::unix_now();
    allow(&cat, now + 3600);
    let v = cat
        .vulnerabilities("team/app", &two.to_string(), &Default::default())
        .unwrap()
        .unwrap();
    assert_eq!(v.grade.as_deref(), Some("A"));
    assert!(v.findings[0].allowed.is_some());
    let s = summary(&cat);
    assert_eq!((s.grade.as_deref(), s.critical, s.high), (Some("A"), 0, 0));
    // Other repositories are not affected by team/app's list.
    let v = cat
        .vulnerabilities("lib/debian", &one.to_string(), &Default::default())
        .unwrap()
        .unwrap();
    assert_ne!(v.grade.as_deref(), Some("A"));
    allow(&cat, now - 1);
    let v = cat
        .vulnerabilities("team/app", &two.to_string(), &Default::default())
        .unwrap()
        .unwrap();
    assert_ne!(
        v.grade.as_deref(),
        Some("A"),
        "an expired entry no longer applies"
    );
    assert_eq!(summary(&cat).grade, v.grade);
}

/// No findings for want of data is not a clean bill: an image whose OS the data does
/// not cover (Fedora, a Debian release not imported, no OS at all), or whose package
/// database could not be read, is graded Unknown, on every page, while a covered
/// image without findings is A.
#[test]
fn an_image_the_data_does_not_cover_is_graded_unknown_not_a() {
    let reg = Registry::new();
    let layer = |files: &[(&str, &str)]| -> Layer {
        let raw = tar_of(files);
        (
            "application/vnd.oci.image.layer.v1.tar+gzip",
            gzip(&raw),
            raw,
        )
    };
    let bullseye = OS_RELEASE.replace("VERSION_ID=\"12\"", "VERSION_ID=\"11\"");
    let status = dpkg_status(&[("openssl", "3.0.9-1")]);
    let images = [
        (
            "fedora/base",
            layer(&[("etc/os-release", "ID=fedora\nVERSION_ID=39\n")]),
        ),
        (
            "old/debian",
            layer(&[
                ("etc/os-release", &bullseye),
                ("var/lib/dpkg/status", &status),
            ]),
        ),
        ("static/app", layer(&[("app", "a static binary")])),
        // Covered, with a finding, but one of its package databases could not be
        // read (not a database at all): what it hides could be worse.
        (
            "unread/db",
            layer(&[
                ("etc/os-release", OS_RELEASE),
                ("var/lib/dpkg/status", &status),
                ("usr/lib/sysimage/rpm/Packages.db", "ndb"),
            ]),
        ),
        ("lib/clean", debian_layer(&[("libc6", "2.36-9")])),
    ];
    let pushed: Vec<(&str, Digest)> = images
        .into_iter()
        .map(|(repo, l)| (repo, reg.push(repo, "1", &[l], json!({}))))
        .collect();
    let cat = reg.catalog();
    for (repo, d) in &pushed {
        assert_eq!(cat.scan_manifest(repo, d, false).unwrap(), Scanned::Done);
    }
    let data = tempfile::tempdir().unwrap();
    cat.import_vulns(&[&osv_file(data.path())]).unwrap();
    for (repo, d) in &pushed {
        let want = match *repo {
            "lib/clean" => "A",
            _ => "Unknown",
        };
        let v = cat
            .vulnerabilities(repo, &d.to_string(), &Default::default())
            .unwrap()
            .unwrap();
        assert_eq!(v.grade.as_deref(), Some(want), "{repo}: vulnerabilities");
        if *repo == "unread/db" {
            assert_eq!(
                v.findings.len(),
                1,
                "its finding is listed, the grade stays Unknown"
            );
        }
        let summary = cat.manifest(repo, d).unwrap().unwrap().images[0]
            .summary
            .clone();
        assert_eq!(summary.grade.as_deref(), Some(want), "{repo}: summary");
        let tags = cat.repository(repo).unwrap().unwrap().tags;
        assert_eq!(tags[0].grade.as_deref(), Some(want), "{repo}: tags");
    }
}

#[test]
fn package_lists_page_in_sql_and_version_order_and_diffs_are_kept() {
    let reg = Registry::new();
    let old = reg.push(
        "team/app",
        "1.0",
        &[debian_layer(&[
            ("libc6", "2.36-9"),
            ("apt", "2.6.1"),
            ("gone", "1"),
        ])],
        json!({}),
    );
    let new = reg.push(
        "team/app",
        "1.1",
        &[debian_layer(&[
            ("zlib1g", "1:1.2.13-1"),
            ("libc6", "2.36-9"),
            ("apt", "2.6.10"),
            ("base-files", "1.9-1"),
            ("libssl3", "1.10-1"),
        ])],
        json!({}),
    );
    let cat = reg.catalog();
    for d in [&old, &new] {
        assert_eq!(
            cat.scan_manifest("team/app", d, false).unwrap(),
            Scanned::Done
        );
    }
    let (old, new) = (old.to_string(), new.to_string());
    let names = |needle: &str, sort: &str, page: usize| {
        let p = cat
            .package_page(&new, needle, PackageSort::parse(sort), page, 2)
            .unwrap()
            .unwrap();
        let names: Vec<String> = p.packages.into_iter().map(|p| p.name).collect();
        (p.total, p.page, names)
    };
    assert_eq!(
        names("", "name", 1),
        (5, 1, vec!["apt".into(), "base-files".into()])
    );
    assert_eq!(names("", "name", 3), (5, 3, vec!["zlib1g".into()]));
    assert_eq!(
        names("", "name", 9),
        (5, 3, vec!["zlib1g".into()]),
        "clamped"
    );
    assert_eq!(
        names("lib", "name", 1),
        (3, 1, vec!["libc6".into(), "libssl3".into()])
    );
    // dpkg's order, not the text's; an epoch sorts last.
    let by_version: Vec<String> = (1..=3).flat_map(|p| names("", "version", p).2).collect();
    assert_eq!(
        by_version,
        ["base-files", "libssl3", "apt", "libc6", "zlib1g"],
        "1.9-1 < 1.10-1 < 2.6.10 < 2.36-9 < 1:1.2.13-1"
    );
    assert_eq!(names("", "source", 1).0, 5);
    // A page of rows is the inventory's packages, whole.
    let all = cat.packages(&new, "").unwrap().unwrap();
    let page = cat
        .package_page(&new, "zlib", PackageSort::Name, 1, 10)
        .unwrap()
        .unwrap();
    assert_eq!(
        page.packages,
        all.iter()
            .filter(|p| p.name == "zlib1g")
            .cloned()
            .collect::<Vec<_>>()
    );

    let diff = cat.package_diff(&new, &old).unwrap().unwrap();
    let added: Vec<&str> = diff.added.iter().map(|p| p.name.as_str()).collect();
    let removed: Vec<&str> = diff.removed.iter().map(|p| p.name.as_str()).collect();
    let changed: Vec<(&str, &str)> = diff
        .changed
        .iter()
        .map(|(a, b)| (a.version.as_str(), b.version.as_str()))
        .collect();
    assert_eq!(added, ["base-files", "libssl3", "zlib1g"]);
    assert_eq!(removed, ["gone"]);
    assert_eq!(changed, [("2.6.1", "2.6.10")]);
    // Asked again, the stored diff answers the same.
    assert_eq!(cat.package_diff(&new, &old).unwrap().unwrap(), diff);
    assert!(cat.package_diff(&new, "sha256:none").unwrap().is_none());
}

#[test]
fn a_layer_that_fails_is_recorded_with_its_reason_and_retried_by_scan() {
    let reg = Registry::new();
    let bad = (
        "application/vnd.oci.image.layer.v1.tar+gzip",
        b"this is not gzip".to_vec(),
        b"x".to_vec(),
    );
    let d = reg.push("broken/img", "v1", &[bad], json!({}));
    let cat = reg.catalog();
    let Scanned::Failed(why) = cat.scan_manifest("broken/img", &d, false).unwrap() else {
        panic!("the scan did not fail")
    };
    assert!(why.contains("layer 0"), "{why}");
    let rec = cat
        .db()
        .scan("broken/img", &d.to_string())
        .unwrap()
        .unwrap();
    assert_eq!(rec.error.as_deref(), Some(why.as_str()));
    let inv = cat.db().inventory(&d.to_string()).unwrap().unwrap();
    assert_eq!(inv.result, Err(why.clone()));
    // A rescan of failed ones reads the layer again (and fails again, recorded).
    let before = cat.stats.layers_analyzed.load(Ordering::Relaxed);
    let report = berth_catalog::scan_request(&cat, reg.meta.as_ref(), false, None, None).unwrap();
    assert_eq!(report["failed"], 1);
    assert_eq!(report["failures"][0]["repository"], "broken/img");
    assert_eq!(
        cat.stats.layers_analyzed.load(Ordering::Relaxed),
        before + 1
    );
}

#[test]
fn an_artifact_is_skipped_and_a_manifest_elsewhere_is_gone() {
    let reg = Registry::new();
    let cfg = reg.blob("art", b"{}");
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/spdx+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": cfg.to_string(), "size": 2},
        "layers": [],
    }))
    .unwrap();
    let d = Digest::sha256_of(&manifest);
    let parsed = berth_image::Manifest::parse(None, &manifest).unwrap();
    reg.meta
        .put_manifest("art", &NewManifest::new(d.clone(), &parsed, manifest), None)
        .unwrap();
    let cat = reg.catalog();
    assert_eq!(
        cat.scan_manifest("art", &d, false).unwrap(),
        Scanned::Skipped
    );
    assert_eq!(
        cat.scan_manifest("elsewhere", &d, false).unwrap(),
        Scanned::Gone
    );
}

#[test]
fn a_deleted_manifest_leaves_the_search() {
    let reg = Registry::new();
    let d = reg.push(
        "gone/soon",
        "1",
        &[debian_layer(&[("zlib1g", "1:1.2.13")])],
        json!({}),
    );
    let cat = reg.catalog();
    assert_eq!(
        cat.scan_manifest("gone/soon", &d, false).unwrap(),
        Scanned::Done
    );
    let by_package = || SearchQuery {
        package: Some("zlib1g".into()),
        ..Default::default()
    };
    assert_eq!(search(&cat, by_package()), ["gone/soon"]);
    assert!(reg.meta.delete_manifest("gone/soon", &d).unwrap());
    cat.forget("gone/soon", Some(&d)).unwrap();
    assert!(cat
        .db()
        .scan("gone/soon", &d.to_string())
        .unwrap()
        .is_none());
    assert!(search(&cat, by_package()).is_empty());
}

/// What a replica's catalog does when it may have missed other replicas' changes:
/// a manifest pushed and one deleted behind its back, neither notified, are
/// scanned and forgotten by `catch_up`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_scans_what_was_pushed_and_forgets_what_was_deleted_unheard() {
    let reg = Registry::new();
    let old = reg.push(
        "team/old",
        "1",
        &[debian_layer(&[("zlib1g", "1:1.2.13")])],
        json!({}),
    );
    let cat = Arc::new(reg.catalog());
    cat.start().expect("the worker starts");
    let by_package = |p: &str| SearchQuery {
        package: Some(p.into()),
        ..Default::default()
    };
    let until = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !done() {
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: not within 20 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    until("the start-up backfill", &|| {
        search(&cat, by_package("zlib1g")) == ["team/old"]
    });
    // Behind the catalog's back (no notify): one push, one delete.
    let new = reg.push(
        "team/new",
        "1",
        &[debian_layer(&[("curl", "7.88.1-10")])],
        json!({}),
    );
    assert!(reg.meta.delete_manifest("team/old", &old).unwrap());
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(search(&cat, by_package("curl")).is_empty(), "not heard of");
    assert_eq!(search(&cat, by_package("zlib1g")), ["team/old"]);
    cat.catch_up();
    until("the catch-up", &|| {
        search(&cat, by_package("curl")) == ["team/new"]
            && search(&cat, by_package("zlib1g")).is_empty()
    });
    assert!(cat
        .db()
        .scan("team/old", &old.to_string())
        .unwrap()
        .is_none());
    assert!(cat
        .db()
        .scan("team/new", &new.to_string())
        .unwrap()
        .is_some());
}

#[test]
fn search_hits_carry_the_newest_push_and_whether_a_tagged_image_is_signed() {
    let reg = Registry::new();
    let layer = debian_layer(&[("libc6", "2.36-9")]);
    let signed = reg.push(
        "team/signed",
        "1.0",
        std::slice::from_ref(&layer),
        json!({"v": "1"}),
    );
    let cat = reg.catalog();
    assert_eq!(
        cat.scan_manifest("team/signed", &signed, false).unwrap(),
        Scanned::Done
    );
    let hit = |cat: &Catalog| {
        let q = SearchQuery {
            q: "team/signed".into(),
            page: 1,
            per_page: 10,
            ..Default::default()
        };
        let page = cat.search(&q, &|_| true).unwrap();
        assert_eq!(page.results.len(), 1);
        page.results[0].clone()
    };
    let first = hit(&cat);
    assert!(!first.signed);
    let entries = reg.meta.recent_tags("team/signed", 10).unwrap();
    assert_eq!(first.last_pushed, Some(entries[0].2));
    assert!(!cat.repository("team/signed").unwrap().unwrap().tags[0].signed);

    // A simple signature kept for the image: signed once the row is rebuilt (the
    // registry's signature PUT asks for that).
    let added = reg
        .meta
        .add_signature(
            "team/signed",
            &signed,
            &berth_store::StoredSignature {
                name: format!("{signed}@0123"),
                content: b"opaque".to_vec(),
            },
            32,
        )
        .unwrap();
    assert_eq!(added, berth_store::SignatureAdded::Added);
    cat.forget("team/signed", None).unwrap();
    assert!(hit(&cat).signed);
    let view = cat.repository("team/signed").unwrap().unwrap();
    assert!(view.tags[0].signed);

    // The same image in another repository, with a sigstore attachment tag for it:
    // unsigned there until the attachment's scan (a skipped manifest) rebuilds the
    // row (signatures count per repository).
    let other = reg.push(
        "team/cosigned",
        "2.0",
        std::slice::from_ref(&layer),
        json!({"v": "1"}),
    );
    assert_eq!(
        cat.scan_manifest("team/cosigned", &other, false).unwrap(),
        Scanned::Current
    );
    let cfg = reg.blob("team/cosigned", b"{}");
    let payload_bytes = serde_json::to_vec(&json!({"critical": {
        "identity": {"docker-reference": "localhost/team/cosigned"},
        "image": {"docker-manifest-digest": other.to_string()},
        "type": "cosign container image signature"}, "optional": null}))
    .unwrap();
    let payload = reg.blob("team/cosigned", &payload_bytes);
    let attachment_of = |layer: &Digest, size: usize| {
        serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg.to_string(), "size": 2},
            "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                "digest": layer.to_string(), "size": size,
                "annotations": {"dev.cosignproject.cosign/signature": "MEUC"}}],
        }))
        .unwrap()
    };
    // An image whose tar layer is labelled a cosign payload is no attachment: it was
    // skipped, out of every scan; now it is scanned and fails on the label, visibly.
    let disguised = attachment_of(&Digest::sha256_of(&layer.1), layer.1.len());
    let dd = Digest::sha256_of(&disguised);
    let parsed = berth_image::Manifest::parse(None, &disguised).unwrap();
    reg.meta
        .put_manifest(
            "team/cosigned",
            &NewManifest::new(dd.clone(), &parsed, disguised),
            Some("disguised"),
        )
        .unwrap();
    assert!(matches!(
        cat.scan_manifest("team/cosigned", &dd, false).unwrap(),
        Scanned::Failed(_)
    ));
    let attachment = attachment_of(&payload, payload_bytes.len());
    let ad = Digest::sha256_of(&attachment);
    let parsed = berth_image::Manifest::parse(None, &attachment).unwrap();
    let sig_tag = format!("sha256-{}.sig", other.hex());
    reg.meta
        .put_manifest(
            "team/cosigned",
            &NewManifest::new(ad.clone(), &parsed, attachment),
            Some(&sig_tag),
        )
        .unwrap();
    let signed_only = SearchQuery {
        signed: Some(true),
        page: 1,
        per_page: 10,
        ..Default::default()
    };
    assert_eq!(
        cat.search(&signed_only, &|_| true).unwrap().results.len(),
        1,
        "only team/signed before the attachment is scanned"
    );
    assert_eq!(
        cat.scan_manifest("team/cosigned", &ad, false).unwrap(),
        Scanned::Skipped
    );
    let page = cat.search(&signed_only, &|_| true).unwrap();
    let mut found: Vec<_> = page.results.iter().map(|h| h.repository.as_str()).collect();
    found.sort();
    assert_eq!(found, ["team/cosigned", "team/signed"]);
    // The attachment's tag is not the repository's newest push, nor a tag image.
    let cosigned = page
        .results
        .iter()
        .find(|h| h.repository == "team/cosigned")
        .unwrap();
    let image_tag_time = reg
        .meta
        .recent_tags("team/cosigned", 10)
        .unwrap()
        .into_iter()
        .find(|(t, _, _)| t == "2.0")
        .unwrap()
        .2;
    assert_eq!(cosigned.last_pushed, Some(image_tag_time));
    let view = cat.repository("team/cosigned").unwrap().unwrap();
    let tag = view.tags.iter().find(|t| t.tag == "2.0").unwrap();
    assert!(tag.signed);
}

/// A repository with more tags than the catalog reads (`TAG_WINDOW`, the newest
/// 1,000): a sigstore attachment tag older than all of them still marks it signed,
/// in search and in the repository's view, asked of the metadata for the images
/// shown, as before the attachment tags were taken from the window.
#[test]
fn an_attachment_tag_older_than_the_tag_window_still_signs_the_repository() {
    let reg = Registry::new();
    let image = reg.push(
        "team/many",
        "v0",
        &[debian_layer(&[("libc6", "2.36-9")])],
        json!({}),
    );
    let cfg = reg.blob("team/many", b"{}");
    let attachment = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg.to_string(), "size": 2},
        "layers": [],
    }))
    .unwrap();
    let ad = Digest::sha256_of(&attachment);
    let parsed = berth_image::Manifest::parse(None, &attachment).unwrap();
    let sig_tag = format!("sha256-{}.sig", image.hex());
    reg.meta
        .put_manifest(
            "team/many",
            &NewManifest::new(ad, &parsed, attachment),
            Some(&sig_tag),
        )
        .unwrap();
    let stored = reg
        .meta
        .manifest_by_digest("team/many", &image)
        .unwrap()
        .unwrap();
    let again = NewManifest::new(
        image.clone(),
        &berth_image::Manifest::parse(Some(&stored.media_type), &stored.content).unwrap(),
        stored.content.clone(),
    );
    for i in 0..berth_catalog::tags::TAG_WINDOW {
        reg.meta
            .put_manifest("team/many", &again, Some(&format!("t{i:04}")))
            .unwrap();
    }
    // The attachment's tag, set before every other.
    let db = rusqlite::Connection::open(reg.root.join("meta.db")).unwrap();
    db.execute(
        "UPDATE tags SET updated_at = 1 WHERE name = ?1",
        [sig_tag.as_str()],
    )
    .unwrap();
    let window = reg
        .meta
        .recent_tags("team/many", berth_catalog::tags::TAG_WINDOW)
        .unwrap();
    assert!(
        window.iter().all(|(t, _, _)| *t != sig_tag),
        "outside the window"
    );
    let cat = reg.catalog();
    assert_eq!(
        cat.scan_manifest("team/many", &image, false).unwrap(),
        Scanned::Done
    );
    let q = SearchQuery {
        signed: Some(true),
        page: 1,
        per_page: 10,
        ..Default::default()
    };
    let found: Vec<_> = cat
        .search(&q, &|_| true)
        .unwrap()
        .results
        .into_iter()
        .map(|h| h.repository)
        .collect();
    assert_eq!(found, ["team/many"]);
    // And the repository's view, every tag of which names the signed image.
    let view = cat.repository("team/many").unwrap().unwrap();
    assert_eq!(view.tags.len(), berth_catalog::tags::TAG_WINDOW);
    assert!(view.tags.iter().all(|t| t.signed));
}

/// Indexes nested a thousand deep, and an index naming one image two thousand times:
/// scanned on a thread with tokio's blocking-pool stack (2 MiB), where recursing into
/// every child overflowed the stack and aborted the registry, or kept the worker long.
/// Each manifest is scanned once; past the depth bound the index fails with a reason.
#[test]
fn nested_and_repeated_index_children_are_bounded() {
    let reg = Registry::new();
    let image = reg.push(
        "deep",
        "img",
        &[debian_layer(&[("zlib1g", "1:1.2.13")])],
        json!({}),
    );
    let put_index = |children: Vec<Digest>| {
        let list: Vec<_> = children
            .iter()
            .map(|c| json!({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": c.to_string(), "size": 10}))
            .collect();
        let bytes = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": list,
        }))
        .unwrap();
        let d = Digest::sha256_of(&bytes);
        let parsed = berth_image::Manifest::parse(None, &bytes).unwrap();
        reg.meta
            .put_manifest_guarded(
                "deep",
                &NewManifest::new(d.clone(), &parsed, bytes),
                None,
                false,
                None,
            )
            .unwrap();
        d
    };
    let repeated = put_index(vec![image.clone(); 2000]);
    let mut top = image.clone();
    for _ in 0..1000 {
        top = put_index(vec![top]);
    }
    let cat = reg.catalog();
    let (repeated_scan, deep_scan) = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            (
                cat.scan_manifest("deep", &repeated, false).unwrap(),
                cat.scan_manifest("deep", &top, false).unwrap(),
            )
        })
        .unwrap()
        .join()
        .expect("no stack overflow");
    assert_eq!(repeated_scan, Scanned::Done);
    let Scanned::Failed(why) = deep_scan else {
        panic!("{deep_scan:?}");
    };
    assert!(why.contains("nested more than 4 deep"), "{why}");
}

/// A layer pushed first under a made-up media type fails that image only: the layer's
/// analysis, shared by digest, is made from the next image that names it rightly.
/// Before, the failure was stored under the digest and every image with that layer
/// (a public base's) failed.
#[test]
fn a_made_up_layer_media_type_fails_only_its_image() {
    let reg = Registry::new();
    let (media_type, bytes, raw) = debian_layer(&[("zlib1g", "1:1.2.13")]);
    let claimed = (
        "application/vnd.oci.image.layer.v1.tar+x",
        bytes.clone(),
        raw.clone(),
    );
    let evil = reg.push("evil/img", "v1", &[claimed], json!({}));
    let victim = reg.push("victim/img", "v1", &[(media_type, bytes, raw)], json!({}));
    let cat = reg.catalog();
    let Scanned::Failed(why) = cat.scan_manifest("evil/img", &evil, false).unwrap() else {
        panic!("the made-up media type passed");
    };
    assert!(why.contains("is not a tar layer's"), "{why}");
    assert_eq!(
        cat.scan_manifest("victim/img", &victim, false).unwrap(),
        Scanned::Done
    );
}

/// A manifest naming one layer many times is not inventoried past the bounds: the
/// layer's artifacts were held (and squashed) once per naming.
#[test]
fn an_image_over_the_layer_or_package_bounds_fails_with_the_reason() {
    let reg = Registry::new();
    let small = debian_layer(&[("zlib1g", "1:1.2.13")]);
    let many = vec![small.clone(); 513];
    let tall = reg.push("tall/img", "v1", &many, json!({}));
    let packages: Vec<(String, String)> = (0..60_000)
        .map(|n| (format!("p{n}"), "1".to_string()))
        .collect();
    let refs: Vec<(&str, &str)> = packages
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let big = debian_layer(&refs);
    let wide = reg.push("wide/img", "v1", &vec![big; 9], json!({}));
    let cat = reg.catalog();
    let Scanned::Failed(why) = cat.scan_manifest("tall/img", &tall, false).unwrap() else {
        panic!("513 layers were inventoried");
    };
    assert!(why.contains("513 layers, over the 512"), "{why}");
    let Scanned::Failed(why) = cat.scan_manifest("wide/img", &wide, false).unwrap() else {
        panic!("540,000 packages were inventoried");
    };
    assert!(why.contains("over the 500000 packages"), "{why}");
}
