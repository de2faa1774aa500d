//! Search over 10,000 repositories (target: under 20 ms per query at the median).
//!
//! Each repository has one scanned image: a description, labels, an OS/arch, 40
//! packages (from a pool of 2,000 names) and a few findings; a third are signed.
//! Queries: free text that matches names, free text that matches descriptions only,
//! and each exact filter. Every query also counts the facets of all its matches.
//! The medians are printed first (`median_ms`), then criterion measures the same.
//!
//! `cargo bench -p berth-catalog --bench search`

use std::time::{Duration, Instant};

use berth_catalog::search::{SearchQuery, SearchRow};
use berth_catalog::store::{Child, ImageFacts, ScanRecord, ScanStatus};
use berth_catalog::{CatalogDb, FindingRow};
use berth_inventory::{Inventory, OsInfo, Package, PackageKind};
use criterion::{criterion_group, Criterion};

const REPOS: usize = 10_000;
const PACKAGES_PER_IMAGE: usize = 40;
const PACKAGE_POOL: usize = 2_000;

const WORDS: [&str; 12] = [
    "web",
    "server",
    "database",
    "proxy",
    "cache",
    "queue",
    "python",
    "java",
    "runtime",
    "minimal",
    "tools",
    "monitoring",
];
const ARCHES: [&str; 3] = ["amd64", "arm64", "s390x"];
const GRADES: [&str; 4] = ["A", "B", "C", "F"];

fn package(i: usize) -> Package {
    let name = format!("pkg{i:04}");
    Package {
        kind: PackageKind::Deb,
        purl: format!("pkg:deb/debian/{name}@1.{i}"),
        version: format!("1.{i}-1"),
        source_name: Some(name.clone()),
        name,
        source_version: None,
        arch: Some("amd64".into()),
        license: None,
        db_path: "var/lib/dpkg/status".into(),
        layer_index: 0,
    }
}

fn populate(db: &CatalogDb) {
    for r in 0..REPOS {
        let repo = format!("org{}/app-{}-{r}", r % 100, WORDS[r % WORDS.len()]);
        let digest = format!("sha256:{r:064x}");
        let packages: Vec<Package> = (0..PACKAGES_PER_IMAGE)
            .map(|k| package((r * 7 + k * 13) % PACKAGE_POOL))
            .collect();
        let inv = Inventory {
            os: Some(OsInfo {
                id: "debian".into(),
                version_id: Some("12".into()),
                pretty_name: None,
                ecosystem: Some("Debian:12".into()),
            }),
            packages: packages.clone(),
            containerfile: None,
            unreadable: Vec::new(),
        };
        let facts = ImageFacts {
            platform: Some(format!("linux/{}", ARCHES[r % 3])),
            os: Some("linux".into()),
            architecture: Some(ARCHES[r % 3].into()),
            ..Default::default()
        };
        db.put_inventory(&digest, 1, Ok(&inv), &facts).unwrap();
        let findings: Vec<FindingRow> = (0..3)
            .map(|k| FindingRow {
                id: format!("DSA-{}-1", (r + k * 1000) % 5000),
                aliases: vec![format!("CVE-2024-{}", (r + k * 1000) % 5000)],
                package: packages[k].name.clone(),
                installed: packages[k].version.clone(),
                fixed: None,
                level: "High".into(),
                published: None,
                json: serde_json::json!({}),
            })
            .collect();
        db.put_findings(&[(digest.clone(), findings, GRADES[r % 4].into(), None)])
            .unwrap();
        db.put_scan(&ScanRecord {
            repository: repo.clone(),
            manifest_digest: digest,
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            status: ScanStatus::Ok,
            error: None,
            annotations: Default::default(),
            children: Vec::<Child>::new(),
            updated_at: 0,
        })
        .unwrap();
        let row = SearchRow {
            description: Some(format!(
                "A {} {} image number {r}",
                WORDS[(r / 7) % WORDS.len()],
                WORDS[(r / 3) % WORDS.len()]
            )),
            labels: [
                format!("vendor=vendor{}", r % 50),
                format!("tier={}", r % 5),
            ]
            .into(),
            annotations: Default::default(),
            os: ["linux".to_string()].into(),
            arch: [ARCHES[r % 3].to_string()].into(),
            platforms: [format!("linux/{}", ARCHES[r % 3])].into(),
            platform_words: [
                "linux".to_string(),
                ARCHES[r % 3].to_string(),
                "debian".into(),
            ]
            .into(),
            grades: [GRADES[r % 4].to_string()].into(),
            packages: packages.iter().map(|p| p.name.clone()).collect(),
            signed: r.is_multiple_of(3),
        };
        db.put_search_row(&repo, &row).unwrap();
    }
}

fn queries() -> Vec<(&'static str, SearchQuery)> {
    let q = |text: &str| SearchQuery {
        q: text.into(),
        page: 1,
        per_page: 25,
        ..Default::default()
    };
    vec![
        ("text_name", q("proxy")),
        ("text_name_substring", q("app-cach")),
        ("text_description", q("monitoring image")),
        ("text_package", q("pkg0042")),
        ("empty_page_3", SearchQuery { page: 3, ..q("") }),
        (
            "filter_package",
            SearchQuery {
                package: Some("pkg0100".into()),
                ..q("")
            },
        ),
        (
            "filter_cve",
            SearchQuery {
                cve: Some("CVE-2024-1234".into()),
                ..q("")
            },
        ),
        (
            "filter_label",
            SearchQuery {
                labels: vec![("vendor".into(), "vendor7".into())],
                ..q("")
            },
        ),
        (
            "filter_arch_grade_text",
            SearchQuery {
                arch: Some("arm64".into()),
                grade: Some("B".into()),
                ..q("server")
            },
        ),
        (
            "filter_unsigned_text",
            SearchQuery {
                signed: Some(false),
                ..q("server")
            },
        ),
    ]
}

fn median_ms(db: &CatalogDb, query: &SearchQuery) -> (f64, usize) {
    let mut times = Vec::new();
    let mut total = 0;
    for _ in 0..101 {
        let t = Instant::now();
        total = db.search(query, &|_| true).unwrap().total;
        times.push(t.elapsed());
    }
    times.sort();
    (times[times.len() / 2].as_secs_f64() * 1000.0, total)
}

fn bench(c: &mut Criterion) {
    // BERTH_BENCH_DB=FILE keeps the database (filled once) for a later run or a look.
    let dir = tempfile::tempdir().unwrap();
    let path = std::env::var_os("BERTH_BENCH_DB")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.path().join("catalog.db"));
    let fresh = !path.exists();
    let db = CatalogDb::open(&path).unwrap();
    if fresh {
        let t = Instant::now();
        populate(&db);
        eprintln!(
            "populated {REPOS} repositories in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
    for (name, query) in queries() {
        let (ms, total) = median_ms(&db, &query);
        eprintln!("median_ms {name:<24} {ms:8.3} ms  ({total} results)");
    }
    let mut group = c.benchmark_group("search_10k");
    group.measurement_time(Duration::from_secs(3));
    group.sample_size(20);
    for (name, query) in queries() {
        group.bench_function(name, |b| b.iter(|| db.search(&query, &|_| true).unwrap()));
    }
    group.finish();
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
