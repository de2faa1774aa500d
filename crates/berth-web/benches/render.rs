//! Render time of every page for a synthetic image of 1,000 packages and 200
//! findings, and of the packages tab (and the rest) for one of 5,000 packages: the
//! target is 5 ms median per page, and large tables are paged (100 rows; the
//! catalog hands over one page of packages, already ordered), so the 5,000-package
//! image must cost about what the 1,000-package one does.
//!
//! `cargo bench -p berth-web --bench render`; medians in
//! `target/criterion/<group>/<page>/new/estimates.json`.

use berth_web::fixture;
use berth_web::image::{Content, Diff, ImagePage, PackageSort, Scan, SignatureRow, Tab};
use berth_web::search::{Facet, SearchParams};
use berth_web::Chrome;
use criterion::{criterion_group, criterion_main, Criterion};

fn pages(c: &mut Criterion, packages: usize, findings: usize) {
    let chrome = Chrome {
        user: Some("alice".into()),
        csrf: Some("0".repeat(64)),
        here: "/".into(),
    };
    let manifest = fixture::manifest(0, packages);
    let pk = fixture::packages(packages);
    let report = fixture::report(findings);
    let cf = fixture::containerfile(15);
    let diff = fixture::diff(packages);
    let repo = fixture::repository(30);
    let sigs = vec![SignatureRow {
        kind: "simple signing".into(),
        signer: "0123456789ABCDEF".into(),
        identity: "reg.example/team/app:1.10.0".into(),
        verified: true,
        reason: None,
    }];
    let mut group = c.benchmark_group(format!("{packages}_packages"));
    let contents = [
        Content::Overview,
        Content::Security {
            scan: Scan::Ready,
            report: Some(&report),
            fixable: false,
            page: 1,
        },
        Content::Packages {
            scan: Scan::Ready,
            packages: &pk[..berth_web::PER_PAGE.min(pk.len())],
            total: pk.len(),
            q: "",
            sort: PackageSort::Name,
            page: 1,
            diff: Diff::Against("1.9.0", &diff),
        },
        Content::Containerfile {
            scan: Scan::Ready,
            file: Some(&cf),
        },
        Content::Tags(&repo.tags),
        Content::Signatures(&sigs),
        Content::Sbom,
    ];
    for (tab, content) in Tab::ALL.into_iter().zip(contents) {
        let page = ImagePage {
            repository: "team/app",
            host: "reg.example:5000",
            asked_tag: Some("1.10.0"),
            tag: Some("1.10.0"),
            manifest: &manifest,
            image: manifest.images.first(),
            signatures: 1,
            content,
        };
        group.bench_function(tab.name(), |b| {
            b.iter(|| berth_web::image::page_html(&chrome, &page))
        });
    }
    group.bench_function("repository", |b| {
        b.iter(|| berth_web::repository::page_html(&chrome, "reg.example:5000", &repo))
    });
    let found = fixture::search_page(25);
    let facets: Vec<Facet> = [
        ("os", &found.facets.os),
        ("arch", &found.facets.arch),
        ("grade", &found.facets.grade),
        ("signed", &found.facets.signed),
    ]
    .into_iter()
    .map(|(n, v)| Facet {
        name: n.into(),
        values: v.clone(),
    })
    .collect();
    let params = SearchParams {
        q: "app".into(),
        page: 1,
        ..Default::default()
    };
    group.bench_function("search", |b| {
        b.iter(|| berth_web::search::page_html(&chrome, &params, &found, &facets))
    });
    group.finish();
}

fn render(c: &mut Criterion) {
    pages(c, 1000, 200);
    pages(c, 5000, 200);
}

criterion_group!(benches, render);
criterion_main!(benches);
