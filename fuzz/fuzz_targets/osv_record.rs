//! OSV records as an operator imports them (a `.json` file: one record or an array),
//! through berth-vuln's whole path: `osv::parse_record`, `VulnDb::import` into a fresh
//! database, `VulnDb::matcher`, `Matcher::findings` and `grade`. The import agrees with
//! the parser (records read, malformed ones skipped), stores the newest copy of each id
//! and gives its JSON back; the matcher holds the stored records not withdrawn; and a
//! package at a version a record lists (or the version of a lone `introduced`) is
//! found affected under the record's ecosystem, as each kind of package (dpkg, rpm, apk).
#![no_main]
use std::collections::BTreeMap;

use berth_inventory::{OsInfo, Package, PackageKind};
use berth_vuln::osv::{self, Event, Record};
use berth_vuln::VulnDb;
use libfuzzer_sys::fuzz_target;

fn package(kind: PackageKind, name: &str, version: &str) -> Package {
    Package {
        kind,
        name: name.to_string(),
        version: version.to_string(),
        source_name: Some(name.to_string()),
        source_version: None,
        arch: None,
        license: None,
        purl: String::new(),
        db_path: String::new(),
        layer_index: 0,
    }
}

/// Versions that `affected` must say are affected: listed ones, and the version of a
/// range that is a lone `introduced` (not `0`, which any version is).
fn affected_versions(a: &osv::Affected) -> Vec<&str> {
    let mut out: Vec<&str> = a.versions.iter().map(String::as_str).collect();
    for r in a.ranges.iter().filter(|r| r.kind == "ECOSYSTEM") {
        if let [Event::Introduced(v)] = r.events.as_slice() {
            out.push(v);
        }
    }
    out.truncate(4);
    out
}

fuzz_target!(|data: &[u8]| {
    let scratch = berth_fuzz::scratch().join("osv");
    let db_path = scratch.join("vuln.sqlite");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db_path.display()));
    }
    let file = berth_fuzz::scratch_file("osv/record.json", data);
    let db = VulnDb::open(&db_path).expect("opening a fresh vulnerability database");
    let report = db
        .import(&file)
        .expect("a readable .json file failed to import");

    // What the parser makes of the same bytes.
    let items = match serde_json::from_slice::<serde_json::Value>(data) {
        Ok(serde_json::Value::Array(items)) => items,
        Ok(one) => vec![one],
        Err(_) => {
            assert_eq!((report.records, report.skipped.len()), (0, 1), "{report:?}");
            return;
        }
    };
    let parsed: Vec<(serde_json::Value, Result<Record, String>)> = items
        .into_iter()
        .map(|v| (v.clone(), osv::parse_record(v)))
        .collect();
    let ok = parsed.iter().filter(|(_, r)| r.is_ok()).count();
    assert_eq!(report.records as usize, ok, "{report:?}");
    assert_eq!(report.skipped.len(), parsed.len() - ok, "{report:?}");

    // The copy of each id the database keeps: the first with the newest `modified` second.
    let mut stored: BTreeMap<&str, (&serde_json::Value, &Record, i64)> = BTreeMap::new();
    for (value, record) in &parsed {
        let Ok(r) = record else { continue };
        let t = osv::unix_seconds(osv::parse_time(&r.modified).expect("parse_record checked it"));
        match stored.get(r.id.as_str()) {
            Some((_, _, old)) if *old >= t => {}
            _ => {
                stored.insert(&r.id, (value, r, t));
            }
        }
    }
    for (id, (value, _, _)) in &stored {
        let json = db
            .record_json(id)
            .expect("reading a record back")
            .expect("a stored id");
        let back: serde_json::Value = serde_json::from_str(&json).expect("stored JSON parses");
        assert_eq!(&back, *value, "record {id} came back different");
    }

    let matcher = db.matcher().expect("loading the matcher");
    let live: Vec<&Record> = stored
        .values()
        .map(|(_, r, _)| *r)
        .filter(|r| r.withdrawn.is_none())
        .collect();
    assert_eq!(matcher.records(), live.len());
    for r in live.iter().take(4) {
        for a in r.affected.iter().take(4) {
            let Some(p) = &a.package else { continue };
            let os = OsInfo {
                id: "fuzz".into(),
                ecosystem: Some(p.ecosystem.clone()),
                ..OsInfo::default()
            };
            for v in affected_versions(a) {
                for kind in [PackageKind::Deb, PackageKind::Rpm, PackageKind::Apk] {
                    let findings = matcher.findings(&os, &[package(kind, &p.name, v)]);
                    assert!(
                        findings.iter().any(|f| f.id == r.id),
                        "{kind:?} {} {v} not found affected by {}",
                        p.name,
                        r.id
                    );
                    for f in &findings {
                        assert!(live.iter().any(|l| l.id == f.id), "finding of {}", f.id);
                    }
                    let _ = berth_vuln::grade(&findings, std::time::SystemTime::UNIX_EPOCH);
                }
            }
        }
    }
});
