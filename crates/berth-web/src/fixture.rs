//! Synthetic catalog data of any size, for the unit tests and the render bench
//! (`benches/render.rs`): an image with `packages` packages and `findings` findings,
//! a repository of a few tags, a search page.

use std::collections::BTreeMap;

use berth_catalog::query::{
    FindingView, ImageDetail, ImageSummary, ManifestView, PackageDiff, PackageDiffHead,
    RepositoryView, TagSummary, VulnerabilityReport,
};
use berth_catalog::search::{Facets, SearchHit, SearchPage};
use berth_inventory::{Containerfile, ContainerfileStep, OsInfo, Package, PackageKind};
use berth_vuln::{Finding, Level, Severity};

/// A label no page may let through unescaped.
pub const HOSTILE: &str = "<script>alert(1)</script>";

pub fn digest(n: usize) -> String {
    format!("sha256:{n:064x}")
}

pub fn package(i: usize) -> Package {
    Package {
        kind: PackageKind::Deb,
        name: format!("pkg-{i:05}"),
        version: format!("1.{}.{}-{}", i % 7, i % 13, i % 3),
        source_name: Some(format!("src-{}", i / 4)),
        source_version: None,
        arch: Some("amd64".into()),
        license: i.is_multiple_of(2).then(|| "MIT".to_string()),
        purl: format!("pkg:deb/debian/pkg-{i:05}@1.0?arch=amd64"),
        db_path: "var/lib/dpkg/status".into(),
        layer_index: i % 3,
    }
}

pub fn packages(n: usize) -> Vec<Package> {
    (0..n).map(package).collect()
}

pub fn summary(d: &str, platform: &str) -> ImageSummary {
    ImageSummary {
        digest: d.into(),
        platform: Some(platform.into()),
        created: Some("2024-02-03T04:05:06Z".into()),
        size: 48 * 1024 * 1024,
        status: "ok".into(),
        error: None,
        grade: Some("C".into()),
        critical: 2,
        high: 5,
    }
}

pub fn tag(name: &str, n: usize) -> TagSummary {
    TagSummary {
        tag: name.into(),
        digest: digest(n),
        pushed_at: 1_706_933_106 - n as i64 * 86_400,
        media_type: Some("application/vnd.oci.image.manifest.v1+json".into()),
        images: vec![summary(&digest(n), "linux/amd64")],
        grade: Some("C".into()),
        critical: 2,
        high: 5,
        signed: n.is_multiple_of(2),
    }
}

pub fn repository(tags: usize) -> RepositoryView {
    RepositoryView {
        name: "team/app".into(),
        description: Some(format!("An application {HOSTILE}")),
        tags: (0..tags)
            .map(|i| tag(&format!("1.{}.0", tags - i), i))
            .collect(),
    }
}

/// An image manifest (`children` = 0) or an index of `children` images.
pub fn manifest(children: usize, packages: usize) -> ManifestView {
    let labels: BTreeMap<String, String> = [
        ("org.opencontainers.image.title", "The app"),
        ("org.opencontainers.image.description", HOSTILE),
        ("org.opencontainers.image.vendor", "Example"),
        ("org.opencontainers.image.version", "1.10.0"),
        ("hostile", HOSTILE),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let detail = |d: String, platform: &str| ImageDetail {
        summary: summary(&d, platform),
        labels: labels.clone(),
        os: Some(OsInfo {
            id: "debian".into(),
            version_id: Some("12".into()),
            pretty_name: Some("Debian GNU/Linux 12 (bookworm)".into()),
            ecosystem: Some("Debian:12".into()),
        }),
        base_image: Some("library/debian@sha256:1234".into()),
        packages,
        next_grade_drop: None,
    };
    let images = match children {
        0 => vec![detail(digest(0), "linux/amd64")],
        n => (0..n)
            .map(|i| {
                let platform = ["linux/arm64", "linux/amd64", "linux/s390x"][i % 3];
                detail(digest(100 + i), platform)
            })
            .collect(),
    };
    ManifestView {
        repository: "team/app".into(),
        digest: if children == 0 { digest(0) } else { digest(99) },
        media_type: Some("application/vnd.oci.image.manifest.v1+json".into()),
        status: "ok".into(),
        error: None,
        annotations: [(
            "org.opencontainers.image.created".to_string(),
            HOSTILE.to_string(),
        )]
        .into_iter()
        .collect(),
        images,
    }
}

pub fn report(findings: usize) -> VulnerabilityReport {
    let levels = [
        Level::Critical,
        Level::High,
        Level::Medium,
        Level::Low,
        Level::Unknown,
    ];
    let findings: Vec<FindingView> = (0..findings)
        .map(|i| FindingView {
            finding: Finding {
                id: format!("CVE-2024-{i:05}"),
                aliases: vec![format!("DSA-{i}-1")],
                package: format!("pkg-{:05}", i * 3),
                source_name: None,
                installed: "1.0-1".into(),
                fixed: i.is_multiple_of(2).then(|| "1.0-2".to_string()),
                severity: Severity {
                    level: levels[i % 5],
                    score: None,
                    vector: None,
                    words: None,
                },
                published: Some("2024-01-10T00:00:00Z".into()),
            },
            fixed_in_tags: if i.is_multiple_of(3) {
                vec!["1.11.0".into()]
            } else {
                vec![]
            },
            allowed: None,
        })
        .collect();
    let mut counts = BTreeMap::new();
    for f in &findings {
        *counts
            .entry(format!("{:?}", f.finding.severity.level))
            .or_insert(0) += 1;
    }
    VulnerabilityReport {
        digest: digest(0),
        grade: Some("C".into()),
        next_grade_drop: Some(1_710_000_000),
        counts,
        findings,
        data: vec![serde_json::json!({"file": "all.zip", "imported_at": 1_706_933_106})],
    }
}

pub fn containerfile(steps: usize) -> Containerfile {
    let steps: Vec<ContainerfileStep> = (0..steps)
        .map(|i| ContainerfileStep {
            instruction: format!("RUN step {i} {HOSTILE}"),
            layer_size: i.is_multiple_of(2).then_some(1024 * i as u64),
            diff_id: None,
            created: None,
        })
        .collect();
    Containerfile {
        reconstructed: true,
        path: None,
        text: steps
            .iter()
            .map(|s| s.instruction.clone())
            .collect::<Vec<_>>()
            .join("\n"),
        steps,
    }
}

/// The diff of `packages(n)` against a previous image with a tenth of them changed,
/// with its first [`crate::PER_PAGE`] entries of each list (as the catalog reads it).
pub fn diff(n: usize) -> PackageDiffHead {
    let now = packages(n);
    let mut before = now.clone();
    for p in before.iter_mut().step_by(10) {
        p.version = "0.9".into();
    }
    before.truncate(n.saturating_sub(5));
    before.push(package(n + 1));
    let all = berth_catalog::query::diff_packages(&before, &now);
    let first = |v: &[Package]| v.iter().take(crate::PER_PAGE).cloned().collect();
    PackageDiffHead {
        added: all.added.len(),
        removed: all.removed.len(),
        changed: all.changed.len(),
        first: PackageDiff {
            added: first(&all.added),
            removed: first(&all.removed),
            changed: all.changed.iter().take(crate::PER_PAGE).cloned().collect(),
        },
    }
}

pub fn search_page(hits: usize) -> SearchPage {
    SearchPage {
        total: hits * 4,
        page: 1,
        per_page: hits,
        results: (0..hits)
            .map(|i| SearchHit {
                repository: format!("team/app-{i}"),
                description: Some(format!("Application {i} {HOSTILE}")),
                platforms: vec!["linux/amd64".into(), "linux/arm64".into()],
                grades: vec!["B".into()],
                name_match: false,
                last_pushed: Some(1_706_933_106),
                signed: i.is_multiple_of(2),
            })
            .collect(),
        facets: Facets {
            os: vec![("linux".into(), hits * 4)],
            arch: vec![("amd64".into(), hits * 4), ("arm64".into(), hits)],
            grade: vec![("A".into(), 3), ("B".into(), hits)],
            signed: vec![("no".into(), hits * 2), ("yes".into(), hits * 2)],
        },
    }
}
