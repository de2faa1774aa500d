//! A million tags in one repository (issue 16: "answered with the right error in
//! bounded memory and time, never stalling other clients"). One image is pushed,
//! then a million more tags on it are written into `meta.db` directly (pushing them
//! would take an hour), and the server is started on that folder. Tag listings page
//! (10,000 at most per answer, with `Link`), an old tag still pulls, a new tag pushes,
//! and the catalog's repository view, the web pages and search order only the tags
//! set most recently (`berth_catalog::tags::TAG_WINDOW`): each answers in seconds
//! and the server's memory stays bounded. Before the window, the repository view
//! read every tag and summarized each: over a minute and 1.1 GiB.

use std::time::{Duration, Instant};

use berth_image::Digest;
use serde_json::{json, Value};

mod common;
#[path = "common/registry_fixture.rs"]
mod registry_fixture;

use registry_fixture::{put_image, Serve};

const TAGS: usize = 1_000_000;
const REPO: &str = "big/tags";
/// Generous for a debug build on a loaded machine; the unbounded code took minutes.
const BOUND: Duration = Duration::from_secs(10);
/// The server's peak resident memory (it idles at about 25 MiB).
const MAX_RSS_KIB: u64 = 400 * 1024;

/// Pushes an image of no layers (config only) as `REPO:tag`; its manifest's digest.
async fn push(url: &str, tag: &str, label: &str) -> Digest {
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "config": {"Labels": {"n": label}},
        "rootfs": {"type": "layers", "diff_ids": []},
    }))
    .unwrap();
    put_image(url, REPO, tag, &config, &[], None).await
}

/// A million tags `ci-0000000`… on `digest`, set before anything else (one second
/// apart), written in one statement.
fn add_tags(meta_db: &std::path::Path, digest: &Digest) {
    let c = rusqlite::Connection::open(meta_db).unwrap();
    let n = c
        .execute(
            "INSERT INTO tags (repository_id, name, manifest_digest, updated_at)
             WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?3)
             SELECT r.id, printf('ci-%07d', i), ?2, 1000000 + i FROM n, repositories r
             WHERE r.name = ?1",
            rusqlite::params![REPO, digest.to_string(), TAGS as i64],
        )
        .unwrap();
    assert_eq!(n, TAGS);
}

/// GET `path`: status, headers, body, and how long it took (within [`BOUND`]).
async fn get(
    http: &reqwest::Client,
    url: &str,
    path: &str,
) -> (u16, reqwest::header::HeaderMap, String) {
    let started = Instant::now();
    let r = http.get(format!("{url}{path}")).send().await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    let body = r.text().await.unwrap();
    let took = started.elapsed();
    assert!(took < BOUND, "GET {path} took {took:?}");
    eprintln!("GET {path}: {status} in {took:?}");
    (status, headers, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_tags_in_one_repository_cost_what_a_thousand_do() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let first = {
        let serve = Serve::start(&root, &[]).await;
        push(&serve.url, "v1", "one").await
    };
    let started = Instant::now();
    add_tags(&root.join("meta.db"), &first);
    eprintln!("{TAGS} tags written in {:?}", started.elapsed());

    let serve = Serve::start(&root, &[]).await;
    let url = serve.url.clone();
    // Listings page: at most 10,000 names per answer, and a Link to the next.
    let (status, headers, body) = get(&http, &url, &format!("/v2/{REPO}/tags/list")).await;
    assert_eq!(status, 200);
    let tags: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(tags["tags"].as_array().unwrap().len(), 10_000);
    assert!(headers.contains_key("link"));
    let (status, _, body) = get(
        &http,
        &url,
        &format!("/v2/{REPO}/tags/list?n=3&last=ci-0500000"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        body.contains(r#"["ci-0500001","ci-0500002","ci-0500003"]"#),
        "{body}"
    );
    // An old tag pulls; a new tag pushes in its usual time.
    let (status, _, _) = get(&http, &url, &format!("/v2/{REPO}/manifests/ci-0000001")).await;
    assert_eq!(status, 200);
    let started = Instant::now();
    let second = push(&url, "v2", "two").await;
    assert!(
        started.elapsed() < BOUND,
        "a push took {:?}",
        started.elapsed()
    );

    // The catalog's view orders the newest tags only: v2, v1, then the newest ci-*.
    let deadline = Instant::now() + Duration::from_secs(60);
    let view = loop {
        let (status, _, body) = get(&http, &url, &format!("/api/v1/repositories/{REPO}")).await;
        assert_eq!(status, 200, "{body}");
        let view: Value = serde_json::from_str(&body).unwrap();
        if view["tags"][0]["images"][0]["status"] == "ok" || Instant::now() > deadline {
            break view;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let tags = view["tags"].as_array().unwrap();
    assert_eq!(tags.len(), berth_catalog::tags::TAG_WINDOW);
    let names: Vec<&str> = tags[..3]
        .iter()
        .map(|t| t["tag"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["v2", "v1", "ci-0999999"]);
    assert_eq!(tags[0]["digest"], second.to_string());

    // The pages: the repository, an image by a tag outside the window, search.
    let (status, _, body) = get(&http, &url, &format!("/repository/{REPO}")).await;
    assert_eq!(status, 200);
    assert!(body.contains("ci-0999999"));
    let (status, _, body) = get(&http, &url, &format!("/repository/{REPO}?tag=ci-0000001")).await;
    assert_eq!(status, 200);
    assert!(body.contains(&first.to_string()));
    let (status, _, body) = get(
        &http,
        &url,
        &format!("/repository/{REPO}/manifest/{first}?tab=tags"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.contains("ci-0999999"));
    let (status, _, body) = get(&http, &url, "/?q=big").await;
    assert_eq!(status, 200);
    assert!(body.contains(REPO), "{body}");
    let (status, _, _) = get(
        &http,
        &url,
        &format!("/api/v1/repositories/{REPO}/manifests/{first}/vulnerabilities"),
    )
    .await;
    assert!(status < 500, "vulnerabilities answered {status}");

    let rss = common::process::status_kib(serve.pid(), "VmHWM").expect("VmHWM in /proc/PID/status");
    eprintln!("peak RSS {} MiB", rss / 1024);
    assert!(
        rss < MAX_RSS_KIB,
        "berth serve peaked at {} MiB",
        rss / 1024
    );
}
