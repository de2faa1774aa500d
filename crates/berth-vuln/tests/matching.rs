//! OSV import and matching, end to end: fixture records written here, imported as
//! files, folders and a zip, and the findings they must give for given packages.

use berth_inventory::model::{OsInfo, Package, PackageKind};
use berth_vuln::{Finding, Level, VulnDb};
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;

fn pkg(kind: PackageKind, name: &str, source: Option<&str>, version: &str) -> Package {
    Package {
        kind,
        name: name.into(),
        version: version.into(),
        source_name: source.map(str::to_string),
        source_version: None,
        arch: None,
        license: None,
        purl: String::new(),
        db_path: String::new(),
        layer_index: 0,
    }
}

fn os(ecosystem: &str) -> OsInfo {
    OsInfo {
        ecosystem: Some(ecosystem.into()),
        ..OsInfo::default()
    }
}

fn range(events: Value) -> Value {
    json!([{"type": "ECOSYSTEM", "events": events}])
}

fn record(id: &str, modified: &str, ecosystem: &str, name: &str, ranges: Value) -> Value {
    json!({"id": id, "modified": modified, "published": "2024-01-10T00:00:00Z",
        "affected": [{"package": {"ecosystem": ecosystem, "name": name}, "ranges": ranges}]})
}

fn fixtures() -> Vec<Value> {
    let mut dsa = record(
        "DSA-5532-1",
        "2024-02-01T00:00:00Z",
        "Debian:12",
        "openssl",
        range(json!([{"introduced": "0"}, {"fixed": "3.0.11-1~deb12u2"}])),
    );
    dsa["aliases"] = json!(["CVE-2023-5363"]);
    dsa["severity"] =
        json!([{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]);
    let mut glibc = record(
        "DEBIAN-CVE-2024-2961",
        "2024-04-20T00:00:00.5Z",
        "Debian:12",
        "glibc",
        range(json!([{"introduced": "2.36-1"}, {"last_affected": "2.36-9"}])),
    );
    glibc["affected"][0]["ecosystem_specific"] = json!({"urgency": "unimportant"});
    let zlib = json!({"id": "DEBIAN-CVE-2022-37434", "modified": "2024-01-01T00:00:00Z",
        "affected": [{"package": {"ecosystem": "Debian:12", "name": "zlib"}, "versions": ["1:1.2.13.dfsg-1"]}]});
    let two_ranges = record(
        "DEBIAN-CVE-2099-0001",
        "2024-01-01T00:00:00Z",
        "Debian:12",
        "multi",
        range(
            json!([{"introduced": "1.0"}, {"fixed": "1.5"}, {"introduced": "2.0"}, {"fixed": "2.5"}]),
        ),
    );
    let mut withdrawn = record(
        "DSA-0000-1",
        "2024-01-01T00:00:00Z",
        "Debian:12",
        "openssl",
        range(json!([{"introduced": "0"}])),
    );
    withdrawn["withdrawn"] = json!("2024-01-05T00:00:00Z");
    let other_release = record(
        "DSA-1111-1",
        "2024-01-01T00:00:00Z",
        "Debian:11",
        "openssl",
        range(json!([{"introduced": "0"}])),
    );
    let alpine = record(
        "ALPINE-CVE-2023-5678",
        "2024-01-01T00:00:00Z",
        "Alpine:v3.19",
        "openssl",
        range(json!([{"introduced": "0"}, {"fixed": "3.1.4-r1"}])),
    );
    let mut rhsa = record(
        "RHSA-2023:5209",
        "2024-01-01T00:00:00Z",
        "Red Hat:enterprise_linux:9::baseos",
        "openssl-libs",
        range(json!([{"introduced": "0"}, {"fixed": "1:3.0.7-18.el9_2"}])),
    );
    rhsa["database_specific"] = json!({"severity": "Important"});
    vec![
        dsa,
        glibc,
        zlib,
        two_ranges,
        withdrawn,
        other_release,
        alpine,
        rhsa,
    ]
}

fn write(path: &Path, v: &Value) {
    std::fs::write(path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
}

fn ids(findings: &[Finding]) -> Vec<(String, String, Option<String>)> {
    findings
        .iter()
        .map(|f| (f.package.clone(), f.id.clone(), f.fixed.clone()))
        .collect()
}

fn s(v: &str) -> String {
    v.to_string()
}

#[test]
fn fixture_records_give_the_findings_they_must() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("osv");
    std::fs::create_dir_all(src.join("nested")).unwrap();
    let all = fixtures();
    // One file per record, some in a sub-folder, and two records as one JSON array.
    for (i, r) in all[..6].iter().enumerate() {
        let sub = if i % 2 == 0 {
            src.join("nested")
        } else {
            src.clone()
        };
        write(&sub.join(format!("{}.json", r["id"].as_str().unwrap())), r);
    }
    write(&src.join("more.json"), &json!([all[6], all[7]]));
    let db = VulnDb::open(&dir.path().join("db/vulndb.sqlite")).unwrap();
    let report = db.import(&src).unwrap();
    assert_eq!(
        (report.records, report.stored, report.skipped.len()),
        (8, 8, 0),
        "{report:?}"
    );
    assert_eq!(
        report.newest_modified.as_deref(),
        Some("2024-04-20T00:00:00.5Z")
    );
    assert_eq!(report.sha256.len(), 64);

    let m = db.matcher().unwrap();
    assert_eq!(
        m.records(),
        7,
        "the withdrawn record is stored but not loaded"
    );
    let debian = [
        pkg(
            PackageKind::Deb,
            "libssl3",
            Some("openssl"),
            "3.0.11-1~deb12u1",
        ),
        pkg(
            PackageKind::Deb,
            "openssl",
            Some("openssl"),
            "3.0.11-1~deb12u2",
        ),
        pkg(PackageKind::Deb, "libc6", Some("glibc"), "2.36-9"),
        pkg(
            PackageKind::Deb,
            "libc-bin",
            Some("glibc"),
            "2.36-9+deb12u1",
        ),
        pkg(PackageKind::Deb, "zlib1g", Some("zlib"), "1:1.2.13.dfsg-1"),
        pkg(
            PackageKind::Deb,
            "zlib1g-dev",
            Some("zlib"),
            "1:1.2.13.dfsg-2",
        ),
        pkg(PackageKind::Deb, "multi-a", Some("multi"), "1.7"),
        pkg(PackageKind::Deb, "multi-b", Some("multi"), "2.1"),
        // No source name: looked up by the binary name.
        pkg(PackageKind::Deb, "glibc", None, "2.36-2"),
    ];
    let found = m.findings(&os("Debian:12"), &debian);
    assert_eq!(
        ids(&found),
        vec![
            (s("glibc"), s("DEBIAN-CVE-2024-2961"), None),
            (s("libc6"), s("DEBIAN-CVE-2024-2961"), None),
            (s("libssl3"), s("DSA-5532-1"), Some(s("3.0.11-1~deb12u2"))),
            (s("multi-b"), s("DEBIAN-CVE-2099-0001"), Some(s("2.5"))),
            (s("zlib1g"), s("DEBIAN-CVE-2022-37434"), None),
        ]
    );
    let dsa = &found[2];
    assert_eq!(dsa.aliases, vec![s("CVE-2023-5363")]);
    assert_eq!(
        (dsa.severity.level, dsa.severity.score),
        (Level::Critical, Some(9.8))
    );
    assert_eq!(dsa.published.as_deref(), Some("2024-01-10T00:00:00Z"));
    assert_eq!(dsa.source_name.as_deref(), Some("openssl"));
    assert_eq!(dsa.installed, "3.0.11-1~deb12u1");
    let glibc = &found[1];
    assert_eq!(
        (glibc.severity.level, glibc.severity.words.as_deref()),
        (Level::Low, Some("unimportant"))
    );
    assert_eq!(
        found[4].published.as_deref(),
        Some("2024-01-01T00:00:00Z"),
        "modified stands in for published"
    );

    // A binNMU: Debian's version lists are source versions, so the source version is
    // what is compared (the binary's `+b1` would not be listed).
    let mut binnmu = pkg(
        PackageKind::Deb,
        "zlib1g",
        Some("zlib"),
        "1:1.2.13.dfsg-1+b1",
    );
    binnmu.source_version = Some("1:1.2.13.dfsg-1".into());
    let found = m.findings(&os("Debian:12"), &[binnmu]);
    assert_eq!(
        ids(&found),
        vec![(s("zlib1g"), s("DEBIAN-CVE-2022-37434"), None)]
    );
    assert_eq!(found[0].installed, "1:1.2.13.dfsg-1+b1");

    // Another Debian release sees only its own records; no ecosystem, no findings.
    let bullseye = m.findings(&os("Debian:11"), &debian[..1]);
    assert_eq!(ids(&bullseye), vec![(s("libssl3"), s("DSA-1111-1"), None)]);
    assert!(m.findings(&OsInfo::default(), &debian).is_empty());

    let alpine = [
        pkg(PackageKind::Apk, "libcrypto3", Some("openssl"), "3.1.4-r0"),
        pkg(PackageKind::Apk, "libssl3", Some("openssl"), "3.1.4-r1"),
    ];
    let found = m.findings(&os("Alpine:v3.19"), &alpine);
    assert_eq!(
        ids(&found),
        vec![(
            s("libcrypto3"),
            s("ALPINE-CVE-2023-5678"),
            Some(s("3.1.4-r1"))
        )]
    );
    assert_eq!(found[0].severity.level, Level::Unknown);

    // rpm: looked up by binary name too; the Red Hat stream matched by prefix.
    let rhel = [
        pkg(
            PackageKind::Rpm,
            "openssl-libs",
            Some("openssl"),
            "1:3.0.7-16.el9",
        ),
        pkg(
            PackageKind::Rpm,
            "openssl",
            Some("openssl"),
            "1:3.0.7-16.el9",
        ),
    ];
    let found = m.findings(&os("Red Hat:enterprise_linux:9"), &rhel);
    assert_eq!(
        ids(&found),
        vec![(
            s("openssl-libs"),
            s("RHSA-2023:5209"),
            Some(s("1:3.0.7-18.el9_2"))
        )]
    );
    assert_eq!(
        (found[0].severity.level, found[0].severity.words.as_deref()),
        (Level::High, Some("Important"))
    );
    assert!(m
        .findings(&os("Red Hat:enterprise_linux:8"), &rhel)
        .is_empty());

    assert_eq!(db.imports().unwrap().len(), 1);
    assert!(
        db.record_json("DSA-0000-1").unwrap().is_some(),
        "withdrawn records are kept"
    );
}

#[test]
fn a_malformed_file_is_reported_and_the_rest_imported() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("osv");
    std::fs::create_dir(&src).unwrap();
    let all = fixtures();
    write(&src.join("a.json"), &all[0]);
    write(&src.join("c.json"), &all[6]);
    // Valid JSON, but an event with two keys: refused, with its id.
    let mut bad = all[1].clone();
    bad["id"] = json!("DEBIAN-CVE-BAD");
    bad["affected"][0]["ranges"][0]["events"] = json!([{"introduced": "0", "fixed": "1"}]);
    write(&src.join("b.json"), &bad);
    std::fs::write(src.join("broken.json"), b"{\"id\": \"X-1\", \"modified\": ").unwrap();
    std::fs::write(src.join("README.txt"), b"not OSV").unwrap();

    let db = VulnDb::open(&dir.path().join("vulndb.sqlite")).unwrap();
    let report = db.import(&src).unwrap();
    assert_eq!((report.records, report.stored), (2, 2));
    assert_eq!(report.skipped.len(), 2, "{:?}", report.skipped);
    let bad = &report.skipped[0];
    assert!(bad.file.ends_with("osv/b.json"), "{bad}");
    assert_eq!(bad.id.as_deref(), Some("DEBIAN-CVE-BAD"));
    assert!(
        bad.to_string().contains("b.json: DEBIAN-CVE-BAD: "),
        "{bad}"
    );
    assert!(report.skipped[1].file.ends_with("broken.json"));
    let m = db.matcher().unwrap();
    assert_eq!(m.records(), 2);
    let libssl = [pkg(PackageKind::Deb, "libssl3", Some("openssl"), "3.0.0-1")];
    assert_eq!(m.findings(&os("Debian:12"), &libssl).len(), 1);
    assert_eq!(db.imports().unwrap()[0].skipped, 2);

    // A path that is no OSV source at all is an error, and nothing is recorded.
    let err = db.import(&src.join("README.txt")).unwrap_err();
    assert!(
        err.to_string().contains("README.txt: not an OSV source"),
        "{err}"
    );
    assert!(db.import(&dir.path().join("missing.zip")).is_err());
    assert_eq!(db.imports().unwrap().len(), 1);

    // A folder whose zip cannot be read fails as a whole: the good record read before
    // it in the same import is not stored either (one transaction).
    let src2 = dir.path().join("osv2");
    std::fs::create_dir(&src2).unwrap();
    write(&src2.join("a.json"), &all[7]);
    std::fs::write(src2.join("b.zip"), b"PK\x03\x04 truncated").unwrap();
    let err = db.import(&src2).unwrap_err();
    assert!(
        err.to_string()
            .contains("b.zip: not a readable zip archive"),
        "{err}"
    );
    assert_eq!(db.matcher().unwrap().records(), 2);
    assert_eq!(db.imports().unwrap().len(), 1);
}

fn zip_of(path: &Path, records: &[Value]) {
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for r in records {
        z.start_file(format!("{}.json", r["id"].as_str().unwrap()), opts)
            .unwrap();
        z.write_all(&serde_json::to_vec(r).unwrap()).unwrap();
    }
    z.finish().unwrap();
}

#[test]
fn zip_import_then_older_and_newer_records_and_rematch() {
    let dir = tempfile::tempdir().unwrap();
    let all = fixtures();
    let zip = dir.path().join("all.zip");
    zip_of(&zip, &all);
    let db = VulnDb::open(&dir.path().join("vulndb.sqlite")).unwrap();
    let report = db.import(&zip).unwrap();
    assert_eq!(
        (report.records, report.stored, report.skipped.len()),
        (8, 8, 0)
    );

    let image = [
        pkg(
            PackageKind::Deb,
            "libssl3",
            Some("openssl"),
            "3.0.11-1~deb12u2",
        ),
        pkg(PackageKind::Deb, "curl", Some("curl"), "7.88.1-10"),
    ];
    let before = db.matcher().unwrap().findings(&os("Debian:12"), &image);
    assert!(before.is_empty(), "{before:?}");

    // An older copy of DSA-5532-1 (a later fix) does not replace the newer one.
    let mut older = all[0].clone();
    older["modified"] = json!("2023-12-01T00:00:00Z");
    older["affected"][0]["ranges"] =
        range(json!([{"introduced": "0"}, {"fixed": "3.0.11-1~deb12u9"}]));
    let older_file = dir.path().join("older.json");
    write(&older_file, &older);
    let report = db.import(&older_file).unwrap();
    assert_eq!((report.records, report.stored), (1, 0));
    assert!(db
        .matcher()
        .unwrap()
        .findings(&os("Debian:12"), &image)
        .is_empty());

    // A newer one does, and so does a new record: the same inventory, matched again,
    // gets both findings.
    let mut newer = older.clone();
    newer["modified"] = json!("2024-03-01T00:00:00Z");
    let curl = record(
        "DSA-5587-1",
        "2024-03-02T00:00:00Z",
        "Debian:12",
        "curl",
        range(json!([{"introduced": "0"}, {"fixed": "7.88.1-10+deb12u5"}])),
    );
    let second = dir.path().join("second.zip");
    zip_of(&second, &[newer, curl]);
    let report = db.import(&second).unwrap();
    assert_eq!((report.records, report.stored), (2, 2));
    let after = db.matcher().unwrap().findings(&os("Debian:12"), &image);
    assert_eq!(
        ids(&after),
        vec![
            (s("curl"), s("DSA-5587-1"), Some(s("7.88.1-10+deb12u5"))),
            (s("libssl3"), s("DSA-5532-1"), Some(s("3.0.11-1~deb12u9"))),
        ]
    );
    let imports = db.imports().unwrap();
    assert_eq!(imports.len(), 3);
    assert_eq!(
        imports[0].newest_modified.as_deref(),
        Some("2024-03-02T00:00:00Z")
    );
    assert_eq!(imports[0].file, second.display().to_string());

    // The data survives reopening.
    drop(db);
    let db = VulnDb::open(&dir.path().join("vulndb.sqlite")).unwrap();
    assert_eq!(
        db.matcher()
            .unwrap()
            .findings(&os("Debian:12"), &image)
            .len(),
        2
    );
}

/// Debian's and Ubuntu's per-CVE records name their CVE in `upstream`: findings carry
/// it with the aliases (what search and allow-lists match). A revision later within
/// the same second replaces the stored one.
#[test]
fn upstream_ids_are_aliases_and_revisions_within_a_second_replace() {
    let dir = tempfile::tempdir().unwrap();
    let mut rec = record(
        "DEBIAN-CVE-2099-2",
        "2024-01-01T00:00:00.100Z",
        "Debian:12",
        "gcc-12",
        range(json!([{"introduced": "0"}])),
    );
    rec["upstream"] = json!(["CVE-2099-2"]);
    let file = dir.path().join("a.json");
    write(&file, &rec);
    let db = VulnDb::open(&dir.path().join("vulndb.sqlite")).unwrap();
    db.import(&file).unwrap();
    let image = [pkg(
        PackageKind::Deb,
        "libgcc-s1",
        Some("gcc-12"),
        "12.2.0-14",
    )];
    let found = db.matcher().unwrap().findings(&os("Debian:12"), &image);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].aliases, ["CVE-2099-2"]);

    rec["modified"] = json!("2024-01-01T00:00:00.900Z");
    rec["affected"][0]["ranges"] = range(json!([{"introduced": "0"}, {"fixed": "12.2.0-1"}]));
    write(&file, &rec);
    assert_eq!(db.import(&file).unwrap().stored, 1, "a newer revision");
    let found = db.matcher().unwrap().findings(&os("Debian:12"), &image);
    assert!(
        found.is_empty(),
        "fixed before the installed version: {found:?}"
    );
}

/// A database of schema 1 (seconds, aliases without `upstream`) is upgraded in place
/// when opened: the upstream ids appear without a re-import, and revisions compare
/// at the new precision.
#[test]
fn a_schema_1_database_is_upgraded_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vulndb.sqlite");
    let mut rec = record(
        "UBUNTU-CVE-2099-3",
        "2024-01-01T00:00:00Z",
        "Ubuntu:22.04:LTS",
        "openssl",
        range(json!([{"introduced": "0"}])),
    );
    rec["upstream"] = json!(["CVE-2099-3"]);
    rec["affected"][0]["severity"] = json!([
        {"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"},
        {"type": "Ubuntu", "score": "low"}
    ]);
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE records (id TEXT PRIMARY KEY, modified BIGINT NOT NULL,
                modified_text TEXT NOT NULL, published TEXT, withdrawn TEXT,
                aliases TEXT NOT NULL, json TEXT NOT NULL);
             CREATE TABLE affected (id TEXT NOT NULL, seq BIGINT NOT NULL,
                ecosystem TEXT NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL,
                PRIMARY KEY (id, seq));
             PRAGMA user_version = 1;",
        )
        .unwrap();
        c.execute(
            "INSERT INTO records VALUES ('UBUNTU-CVE-2099-3', 1704067200,
                '2024-01-01T00:00:00Z', NULL, NULL, '[]', ?1)",
            [rec.to_string()],
        )
        .unwrap();
        c.execute(
            "INSERT INTO affected VALUES ('UBUNTU-CVE-2099-3', 0, 'Ubuntu:22.04:LTS',
                'openssl', ?1)",
            [
                json!({"ranges": rec["affected"][0]["ranges"], "versions": [],
                    "severity": {"level": "unknown", "score": null, "vector": null, "words": null}})
                .to_string(),
            ],
        )
        .unwrap();
    }
    let db = VulnDb::open(&path).unwrap();
    let image = [pkg(
        PackageKind::Deb,
        "libssl3",
        Some("openssl"),
        "3.0.2-0ubuntu1",
    )];
    let found = db
        .matcher()
        .unwrap()
        .findings(&os("Ubuntu:22.04:LTS"), &image);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].aliases, ["CVE-2099-3"]);
    assert_eq!(
        found[0].severity.level,
        Level::Low,
        "indexed again: Ubuntu's priority decides"
    );
    // The same revision again is not newer; half a second later is.
    let file = dir.path().join("again.json");
    write(&file, &rec);
    assert_eq!(db.import(&file).unwrap().stored, 0);
    rec["modified"] = json!("2024-01-01T00:00:00.500Z");
    write(&file, &rec);
    assert_eq!(db.import(&file).unwrap().stored, 1);
    drop(db);
    VulnDb::open(&path).unwrap();
}

/// Debian publishes a DSA and a DEBIAN-CVE record for the same fix: a package affected
/// by both counts each CVE once. The DSA stays while one of its CVEs has no record of
/// its own.
#[test]
fn an_advisory_told_per_cve_counts_once() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("osv");
    std::fs::create_dir_all(&src).unwrap();
    let fix = || range(json!([{"introduced": "0"}, {"fixed": "3.0.11-1~deb12u2"}]));
    let mut dsa = record(
        "DSA-5532-1",
        "2024-02-01T00:00:00Z",
        "Debian:12",
        "openssl",
        fix(),
    );
    dsa["aliases"] = json!(["CVE-2023-5363", "CVE-2023-5678"]);
    let mut one = record(
        "DEBIAN-CVE-2023-5363",
        "2024-02-01T00:00:00Z",
        "Debian:12",
        "openssl",
        fix(),
    );
    one["upstream"] = json!(["CVE-2023-5363"]);
    let two = record(
        "DEBIAN-CVE-2023-5678",
        "2024-02-01T00:00:00Z",
        "Debian:12",
        "openssl",
        fix(),
    );
    let package = [pkg(
        PackageKind::Deb,
        "libssl3",
        Some("openssl"),
        "3.0.11-1~deb12u1",
    )];
    let db = VulnDb::open(&dir.path().join("vulndb.sqlite")).unwrap();
    let found = |records: &[&Value]| {
        for r in records {
            write(&src.join(format!("{}.json", r["id"].as_str().unwrap())), r);
        }
        db.import(&src).unwrap();
        let m = db.matcher().unwrap();
        let mut ids: Vec<String> = m
            .findings(&os("Debian:12"), &package)
            .into_iter()
            .map(|f| f.id)
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(found(&[&dsa, &one]), ["DEBIAN-CVE-2023-5363", "DSA-5532-1"]);
    assert_eq!(
        found(&[&two]),
        ["DEBIAN-CVE-2023-5363", "DEBIAN-CVE-2023-5678"]
    );
}
