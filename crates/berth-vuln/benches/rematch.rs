//! Rematch speed (issue 12's target: 1,000 stored images of 100 packages each against
//! 50,000 OSV records in under 2 s): 50,000 synthetic Debian-style records imported,
//! then, timed, `matcher()` (loading the index) and `findings` for 1,000 inventories.
//!
//! `cargo bench -p berth-vuln --bench rematch`; it also prints one plain timing of the
//! import and of a whole rematch.

use berth_inventory::model::{OsInfo, Package, PackageKind};
use berth_vuln::VulnDb;
use criterion::{criterion_group, criterion_main, Criterion};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::hint::black_box;
use std::time::{Duration, Instant};

const RECORDS: usize = 50_000;
/// Source packages with advisories (5 records each); inventories also hold as many
/// packages without any.
const SOURCES: usize = 10_000;
const IMAGES: usize = 1_000;
const PACKAGES: usize = 100;

fn version(rng: &mut StdRng) -> String {
    format!(
        "{}.{}.{}-{}",
        rng.random_range(0..4),
        rng.random_range(0..20),
        rng.random_range(0..10),
        rng.random_range(1..5)
    )
}

fn records(rng: &mut StdRng) -> serde_json::Value {
    let vectors = [
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N",
        "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:L/I:N/A:N",
    ];
    let all: Vec<_> = (0..RECORDS)
        .map(|i| {
            let source = format!("src{}", i % SOURCES);
            let mut r = json!({
                "id": format!("DEBIAN-CVE-2024-{i:05}"),
                "modified": "2024-06-01T00:00:00Z",
                "published": "2024-05-01T00:00:00Z",
                "aliases": [format!("CVE-2024-{i:05}")],
                "affected": [
                    {"package": {"ecosystem": "Debian:12", "name": source},
                     "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": version(rng)}]}],
                     "ecosystem_specific": {"urgency": "medium"}},
                    {"package": {"ecosystem": "Debian:11", "name": source},
                     "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": version(rng)}]}]}
                ]
            });
            if i % 3 != 0 {
                r["severity"] = json!([{"type": "CVSS_V3", "score": vectors[i % vectors.len()]}]);
            }
            r
        })
        .collect();
    serde_json::Value::Array(all)
}

fn inventories(rng: &mut StdRng) -> Vec<Vec<Package>> {
    (0..IMAGES)
        .map(|_| {
            (0..PACKAGES)
                .map(|_| {
                    let n = rng.random_range(0..2 * SOURCES);
                    Package {
                        kind: PackageKind::Deb,
                        name: format!("lib{n}"),
                        version: version(rng),
                        source_name: Some(format!("src{n}")),
                        source_version: None,
                        arch: Some("amd64".into()),
                        license: None,
                        purl: String::new(),
                        db_path: "var/lib/dpkg/status".into(),
                        layer_index: 0,
                    }
                })
                .collect()
        })
        .collect()
}

fn rematch(db: &VulnDb, os: &OsInfo, images: &[Vec<Package>]) -> usize {
    let matcher = db.matcher().expect("matcher");
    images
        .iter()
        .map(|packages| matcher.findings(os, packages).len())
        .sum()
}

fn bench(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(2024);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("records.json");
    std::fs::write(&file, serde_json::to_vec(&records(&mut rng)).unwrap()).unwrap();
    let db = VulnDb::open(&dir.path().join("vulndb.sqlite")).unwrap();
    let t = Instant::now();
    let report = db.import(&file).unwrap();
    assert_eq!(report.stored as usize, RECORDS);
    eprintln!(
        "import of {RECORDS} records: {:.2} s",
        t.elapsed().as_secs_f64()
    );

    let images = inventories(&mut rng);
    let os = OsInfo {
        ecosystem: Some("Debian:12".into()),
        ..OsInfo::default()
    };
    let t = Instant::now();
    let matcher = db.matcher().unwrap();
    let load = t.elapsed();
    let findings: usize = images.iter().map(|p| matcher.findings(&os, p).len()).sum();
    let total = t.elapsed();
    eprintln!(
        "rematch of {IMAGES} images x {PACKAGES} packages: {:.3} s (matcher load {:.3} s), {findings} findings",
        total.as_secs_f64(),
        load.as_secs_f64()
    );
    assert!(findings > 0);

    let mut group = c.benchmark_group("vuln");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.bench_function("rematch", |b| {
        b.iter(|| black_box(rematch(&db, &os, &images)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
