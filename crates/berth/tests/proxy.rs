//! The pull-through cache in front of a real docker-registry (distribution 2.8 from
//! Debian), counting the requests it receives from its own log: a miss fills and
//! pulls byte-identical, a hit does not touch the upstream, 20 concurrent pulls of a
//! cold image make one upstream fetch per blob, a stopped upstream still serves what
//! is cached (and a restarted one is used again), eviction keeps the cache under a
//! small bound, containerd's `?ns=` works, writes are refused, and a manifest `GET`
//! fetches the image's blobs ahead of the client. The same cache with
//! its blobs in S3 (s3s-fs) and its metadata in PostgreSQL, as replicas run it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_image::Digest;
use serde_json::Value;

mod common;
#[path = "common/registry_fixture.rs"]
mod registry_fixture;

use common::backend::Backend;
use common::distribution::Distribution as Upstream;
use registry_fixture::{metric, put_image, seeded_image, Serve};

const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const ACCEPT: &str =
    "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

/// One image pushed upstream: manifest digest, config and layer bytes.
struct Image {
    manifest: Digest,
    blobs: Vec<Vec<u8>>,
}

async fn push_upstream(up: &Upstream, repo: &str, tag: &str, seed: u8, layer_kib: usize) -> Image {
    let (config, layer) = seeded_image(seed, layer_kib);
    let manifest = put_image(&up.url(), repo, tag, &config, &[(LAYER, &layer)], None).await;
    Image {
        manifest,
        blobs: vec![config, layer],
    }
}

/// Pulls `repo:tag` from berth as a client does (manifest, then each blob), checks
/// every byte against `image`; returns the manifest bytes.
async fn pull(http: &reqwest::Client, base: &str, repo: &str, tag: &str, image: &Image) -> Vec<u8> {
    let r = http
        .get(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("accept", ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        200,
        "{repo}:{tag}: {}",
        r.text().await.unwrap()
    );
    let manifest = r.bytes().await.unwrap().to_vec();
    assert_eq!(Digest::sha256_of(&manifest), image.manifest);
    for blob in &image.blobs {
        let d = Digest::sha256_of(blob);
        let r = http
            .get(format!("{base}/v2/{repo}/blobs/{d}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{repo} blob {d}");
        assert_eq!(
            r.headers()["content-length"].to_str().unwrap(),
            blob.len().to_string()
        );
        let got = r.bytes().await.unwrap();
        assert!(got == blob[..], "{repo} blob {d}: other bytes");
    }
    manifest
}

/// The `[[proxy]]` table of an upstream (`extra` goes into it).
fn proxy_table(up: &Upstream, extra: &str) -> String {
    format!(
        "[[proxy]]\nprefix = \"upstream.test\"\nurl = \"{}\"\ntag_ttl = \"2s\"\n{extra}",
        up.url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cache_in_front_of_docker_registry() {
    cache_in_front_of_docker_registry_on(&Backend::embedded()).await;
}

/// The blobs go to the bucket (none stays on the replica's disk), the metadata to
/// PostgreSQL; fsck reads the bucket back and finds nothing wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cache_on_object_storage_and_postgres() {
    let backend = Backend::object_storage("cache");
    let (root, cached) = cache_in_front_of_docker_registry_on(&backend).await;
    let on_disk: Vec<_> = walkdir(&root.path().join("berth").join("blobs"));
    assert!(
        on_disk.is_empty(),
        "blobs on the replica's disk: {on_disk:?}"
    );
    let spooled: Vec<_> = walkdir(&root.path().join("berth").join("uploads"));
    assert!(
        spooled.is_empty(),
        "arriving blobs left behind: {spooled:?}"
    );
    let (bucket, prefix) = backend.bucket.as_ref().unwrap();
    let in_bucket = walkdir(&bucket.join(prefix).join("blobs"));
    assert_eq!(in_bucket.len(), cached, "{in_bucket:?}");
}

/// Every file under `dir` (none when it does not exist), but s3s-fs's own.
fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if !p.to_string_lossy().contains(".s3s") {
                out.push(p);
            }
        }
    }
    out
}

/// The cache's whole life on one backend; returns the test's folder and how many
/// blobs it cached.
async fn cache_in_front_of_docker_registry_on(backend: &Backend) -> (tempfile::TempDir, usize) {
    let tmp = tempfile::tempdir().unwrap();
    let mut up = Upstream::start(&tmp.path().join("upstream"), None);
    let app = push_upstream(&up, "team/app", "v1", 3, 300).await;
    let config = backend.config_file(tmp.path(), &proxy_table(&up, ""));
    let serve = Serve::start(
        &tmp.path().join("berth"),
        &["--config", config.to_str().unwrap()],
    )
    .await;
    let http = reqwest::Client::new();
    let base = &serve.url;

    // A miss fills, byte for byte; one upstream GET per blob.
    pull(&http, base, "upstream.test/team/app", "v1", &app).await;
    for blob in &app.blobs {
        let d = Digest::sha256_of(blob).to_string();
        assert_eq!(up.requests("GET", &d), 1, "blob {d} fetched once");
    }
    // A hit (within the tag's TTL) does not touch the upstream.
    let before = up.requests("GET", "/v2/team/app/") + up.requests("HEAD", "/v2/team/app/");
    pull(&http, base, "upstream.test/team/app", "v1", &app).await;
    pull(
        &http,
        base,
        "upstream.test/team/app",
        &app.manifest.to_string(),
        &app,
    )
    .await;
    let after = up.requests("GET", "/v2/team/app/") + up.requests("HEAD", "/v2/team/app/");
    assert_eq!(before, after, "hits went upstream");
    assert!(
        metric(
            &serve,
            r#"berth_proxy_requests_total{kind="blob",result="hit"}"#
        )
        .await
            >= 4.0
    );

    // 20 concurrent pulls of a cold image: one upstream fetch per blob.
    let cold = push_upstream(&up, "team/cold", "v1", 7, 2048).await;
    let pulls: Vec<_> = (0..20)
        .map(|_| {
            let (http, base) = (http.clone(), base.clone());
            let image = Image {
                manifest: cold.manifest.clone(),
                blobs: cold.blobs.clone(),
            };
            tokio::spawn(async move {
                pull(&http, &base, "upstream.test/team/cold", "v1", &image).await;
            })
        })
        .collect();
    for p in pulls {
        p.await.unwrap();
    }
    for blob in &cold.blobs {
        let d = Digest::sha256_of(blob).to_string();
        assert_eq!(
            up.requests("GET", &d),
            1,
            "blob {d} of 20 pulls fetched once"
        );
    }
    assert_eq!(
        up.requests("GET", "/v2/team/cold/manifests/"),
        1,
        "the manifest of 20 pulls fetched once"
    );

    // containerd's form: the repository as upstream names it, the prefix in ?ns=.
    let r = http
        .get(format!("{base}/v2/team/app/manifests/v1?ns=upstream.test"))
        .header("accept", ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(Digest::sha256_of(&r.bytes().await.unwrap()), app.manifest);

    // Writes are refused, and say why.
    let r = http
        .put(format!("{base}/v2/upstream.test/team/app/manifests/v2"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.text().await.unwrap().contains("pull-through cache"));
    let r = http
        .post(format!("{base}/v2/upstream.test/team/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);

    // Unknown upstream: 404 as from the upstream itself.
    let r = http
        .get(format!("{base}/v2/upstream.test/team/none/manifests/v1"))
        .header("accept", ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);

    // A blob the upstream lacks: 404, as from the upstream itself.
    let nothing = Digest::sha256_of(b"upstream has no such blob");
    let r = http
        .get(format!("{base}/v2/upstream.test/team/app/blobs/{nothing}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert!(r.text().await.unwrap().contains("BLOB_UNKNOWN"));
    // A blob stored here under another name only (a repository of berth's own, which
    // whoever asks through the cache may not read) is neither served nor told of: it
    // is asked of the upstream, which has it not.
    let (config, layer) = seeded_image(11, 10);
    put_image(
        base,
        "local/secret",
        "v1",
        &config,
        &[(LAYER, &layer)],
        None,
    )
    .await;
    let secret = Digest::sha256_of(&layer);
    for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
        let url = format!("{base}/v2/upstream.test/team/app/blobs/{secret}");
        let r = http.request(method.clone(), url).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 404, "{method} of a local blob");
    }
    // When the upstream has it too, its bytes are fetched and verified: an
    // upstream's word that it has a digest gets nobody the stored bytes of another
    // repository (only blobs of the cache's own prefix are shared on a HEAD).
    let asked = |up: &Upstream| {
        up.requests("GET", &secret.to_string()) + up.requests("HEAD", &secret.to_string())
    };
    let before = asked(&up);
    assert!(before >= 2, "the upstream was not asked");
    let shared = push_upstream(&up, "team/shared", "v1", 11, 10).await;
    assert_eq!(shared.blobs[1], layer);
    let fetched = up.requests("GET", &secret.to_string());
    pull(&http, base, "upstream.test/team/shared", "v1", &shared).await;
    assert_eq!(up.requests("GET", &secret.to_string()), fetched + 1);

    // A tag past its TTL is revalidated with a HEAD; a moved tag is fetched anew.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let heads = up.requests("HEAD", "/v2/team/app/manifests/v1");
    pull(&http, base, "upstream.test/team/app", "v1", &app).await;
    assert_eq!(up.requests("HEAD", "/v2/team/app/manifests/v1"), heads + 1);
    let moved = push_upstream(&up, "team/app", "v1", 5, 100).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    pull(&http, base, "upstream.test/team/app", "v1", &moved).await;

    // The upstream stops: what is cached is still served (the tag past its TTL too);
    // what is not answers 503.
    up.stop();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    pull(&http, base, "upstream.test/team/app", "v1", &moved).await;
    pull(&http, base, "upstream.test/team/cold", "v1", &cold).await;
    assert!(
        metric(
            &serve,
            r#"berth_proxy_requests_total{kind="manifest",result="stale"}"#
        )
        .await
            >= 2.0
    );
    let r = http
        .get(format!("{base}/v2/upstream.test/team/other/manifests/v1"))
        .header("accept", ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert!(r.text().await.unwrap().contains("UNAVAILABLE"));

    // It comes back (same address and data): used again with no restart of berth.
    let addr = up.addr.clone();
    let dir = up.dir.clone();
    drop(up);
    let up = Upstream::start(&dir, Some(&addr));
    let late = push_upstream(&up, "team/late", "v1", 9, 10).await;
    pull(&http, base, "upstream.test/team/late", "v1", &late).await;

    // Every blob of every image pulled, each once (images share a config).
    let local = [Digest::sha256_of(&config), secret];
    let blobs: std::collections::HashSet<Digest> = [&app, &cold, &moved, &late]
        .iter()
        .flat_map(|i| i.blobs.iter().map(|b| Digest::sha256_of(b)))
        .chain(local)
        .collect();
    // fsck (beside the server) finds nothing wrong with what the cache stored. A
    // fill's commit goes on after its clients have every byte: the last one may
    // still be under way at first.
    let fsck = || {
        let out = backend.registry(&tmp.path().join("berth"), &["fsck"]);
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let report = loop {
        let report = fsck();
        if report["rows_checked"] == blobs.len() || std::time::Instant::now() > deadline {
            break report;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    drop(serve);
    for key in ["files_checked", "rows_checked"] {
        assert_eq!(report[key].as_u64(), Some(blobs.len() as u64), "{report}");
    }
    assert_eq!(report["commits_under_way"], 0, "{report}");
    (tmp, blobs.len())
}

/// A manifest fetched for a `GET` starts the fetch of its config and layers before the
/// client asks (each still fetched once); a `HEAD`, or `prefetch = false`, fetches no
/// blob until a client asks for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_get_fetches_its_blobs_ahead() {
    let tmp = tempfile::tempdir().unwrap();
    let up = Upstream::start(&tmp.path().join("upstream"), None);
    let ahead = push_upstream(&up, "team/ahead", "v1", 31, 200).await;
    let headed = push_upstream(&up, "team/headed", "v1", 32, 200).await;
    let asked = push_upstream(&up, "team/asked", "v1", 33, 200).await;
    let http = reqwest::Client::new();
    let fetched = |image: &Image| -> Vec<usize> {
        image
            .blobs
            .iter()
            .map(|b| up.requests("GET", &Digest::sha256_of(b).to_string()))
            .collect()
    };
    let manifest = |base: String, repo: &'static str, method: reqwest::Method| {
        let http = http.clone();
        async move {
            let r = http
                .request(
                    method,
                    format!("{base}/v2/upstream.test/{repo}/manifests/v1"),
                )
                .header("accept", ACCEPT)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200, "{repo}");
        }
    };

    // A server in `dir` whose berth.toml has the proxy table with `extra` in it.
    let start = |dir: &str, extra: &str| {
        let config = tmp.path().join(format!("{dir}.toml"));
        std::fs::write(&config, proxy_table(&up, extra)).unwrap();
        let root = tmp.path().join(dir);
        async move { Serve::start(&root, &["--config", config.to_str().unwrap()]).await }
    };

    let serve = start("berth", "").await;
    manifest(serve.url.clone(), "team/ahead", reqwest::Method::GET).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while fetched(&ahead) != [1, 1] {
        assert!(
            std::time::Instant::now() < deadline,
            "blobs not fetched ahead: {:?}",
            fetched(&ahead)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pull(&http, &serve.url, "upstream.test/team/ahead", "v1", &ahead).await;
    assert_eq!(
        fetched(&ahead),
        [1, 1],
        "a blob fetched ahead was fetched again"
    );
    assert_eq!(
        metric(
            &serve,
            r#"berth_proxy_requests_total{kind="blob",result="prefetch"}"#
        )
        .await,
        2.0
    );
    // A HEAD is a check, not a pull.
    manifest(serve.url.clone(), "team/headed", reqwest::Method::HEAD).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(fetched(&headed), [0, 0], "a HEAD fetched blobs");
    drop(serve);

    let serve = start("berth-asked", "prefetch = false\n").await;
    manifest(serve.url.clone(), "team/asked", reqwest::Method::GET).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(fetched(&asked), [0, 0], "prefetch = false fetched blobs");
    pull(&http, &serve.url, "upstream.test/team/asked", "v1", &asked).await;
    assert_eq!(fetched(&asked), [1, 1]);
}

/// A bound of 1 MiB with 400 KiB layers: the least recently used go, a pinned
/// repository's stay, and an evicted blob is fetched again when asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_keeps_the_cache_under_its_bound() {
    eviction_on(&Backend::embedded()).await;
}

/// Eviction removes from the bucket (through the collector's fence) as from the disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_on_object_storage_and_postgres() {
    eviction_on(&Backend::object_storage("evict")).await;
}

async fn eviction_on(backend: &Backend) {
    let tmp = tempfile::tempdir().unwrap();
    let up = Upstream::start(&tmp.path().join("upstream"), None);
    let config = backend.config_file(
        tmp.path(),
        &proxy_table(&up, "max_size = \"1MiB\"\npinned = [\"keep/*\"]\n"),
    );
    let serve = Serve::start(
        &tmp.path().join("berth"),
        &["--config", config.to_str().unwrap()],
    )
    .await;
    let http = reqwest::Client::new();
    let pinned = push_upstream(&up, "keep/base", "v1", 11, 400).await;
    pull(&http, &serve.url, "upstream.test/keep/base", "v1", &pinned).await;
    // The third image's layer is also a private image's, pushed here: evicting its
    // cache link frees nothing while the prefix's usage drops, and eviction must stop
    // at its target then, not evict on (the newest image with it).
    let (config, shared) = seeded_image(22, 400);
    put_image(
        &serve.url,
        "local/private",
        "v1",
        &config,
        &[(LAYER, &shared)],
        None,
    )
    .await;
    let mut images = Vec::new();
    for i in 0..4u8 {
        let repo = format!("team/img{i}");
        let image = push_upstream(&up, &repo, "v1", 20 + i, 400).await;
        pull(
            &http,
            &serve.url,
            &format!("upstream.test/{repo}"),
            "v1",
            &image,
        )
        .await;
        images.push((repo, image));
        // Eviction runs after each fill, in the background.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let usage: Value = serde_json::from_slice(
        &backend
            .registry(&tmp.path().join("berth"), &["usage", "upstream.test"])
            .stdout,
    )
    .unwrap();
    let used = usage["namespaces"][0]["bytes"].as_u64().unwrap();
    assert!(
        used <= 1024 * 1024,
        "{used} bytes cached over the 1 MiB bound"
    );
    assert!(metric(&serve, "berth_proxy_evicted_bytes_total").await > 0.0);
    let (repo, newest) = &images[3];
    let layer = Digest::sha256_of(&newest.blobs[1]).to_string();
    pull(
        &http,
        &serve.url,
        &format!("upstream.test/{repo}"),
        "v1",
        newest,
    )
    .await;
    assert_eq!(
        up.requests("GET", &layer),
        1,
        "the newest image was evicted"
    );
    // The pinned layer stayed: pulling it again fetches nothing.
    let layer = Digest::sha256_of(&pinned.blobs[1]).to_string();
    pull(&http, &serve.url, "upstream.test/keep/base", "v1", &pinned).await;
    assert_eq!(
        up.requests("GET", &layer),
        1,
        "the pinned layer was evicted"
    );
    // The first unpinned image's layer went, and comes back on demand.
    let (repo, first) = &images[0];
    let layer = Digest::sha256_of(&first.blobs[1]).to_string();
    if let Some((bucket, prefix)) = &backend.bucket {
        let hex = layer.trim_start_matches("sha256:");
        let left: Vec<_> = walkdir(&bucket.join(prefix).join("blobs"))
            .into_iter()
            .filter(|p| p.ends_with(hex))
            .collect();
        assert!(
            left.is_empty(),
            "the evicted layer is still in the bucket: {left:?}"
        );
    }
    pull(
        &http,
        &serve.url,
        &format!("upstream.test/{repo}"),
        "v1",
        first,
    )
    .await;
    assert_eq!(
        up.requests("GET", &layer),
        2,
        "the oldest layer was not evicted"
    );
    // A blob larger than the whole bound is not fetched to the disk: its fill fails.
    let big = push_upstream(&up, "team/big", "v1", 30, 1100).await;
    let d = Digest::sha256_of(&big.blobs[1]);
    let r = http
        .get(format!("{}/v2/upstream.test/team/big/blobs/{d}", serve.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert!(r.text().await.unwrap().contains("max_size"));
}

/// An upstream that sends a blob's head and a few bytes, then nothing: the fill ends
/// after `read_timeout` (its client's answer is cut short, not held for ever), and the
/// next request for the blob asks the upstream anew instead of joining a fill that
/// will never end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_gone_silent_fails_the_fill_in_read_timeout() {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = asked.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                loop {
                    let mut request = String::new();
                    let mut line = String::new();
                    while reader.read_line(&mut line).unwrap_or(0) > 2 {
                        request.push_str(&line);
                        line.clear();
                    }
                    if request.is_empty() {
                        return;
                    }
                    if request.contains("/blobs/") {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let head = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\
                                    Content-Type: application/octet-stream\r\n\r\n";
                        let _ = conn.write_all(head.as_bytes());
                        let _ = conn.write_all(&[7u8; 10]);
                        std::thread::sleep(Duration::from_secs(60));
                        return;
                    }
                    let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                }
            });
        }
    });

    let tmp = tempfile::tempdir().unwrap();
    let table = format!(
        "[[proxy]]\nprefix = \"silent.test\"\nurl = \"http://127.0.0.1:{port}\"\n\
         read_timeout = \"1s\"\n"
    );
    let config = Backend::embedded().config_file(tmp.path(), &table);
    let serve = Serve::start(
        &tmp.path().join("berth"),
        &["--config", config.to_str().unwrap()],
    )
    .await;
    let http = reqwest::Client::new();
    let digest = Digest::sha256_of(&[7u8; 100]);
    let url = format!("{}/v2/silent.test/team/app/blobs/{digest}", serve.url);
    for n in 1..=2 {
        let read = async {
            let r = http.get(&url).send().await?;
            r.bytes().await
        };
        let got = tokio::time::timeout(Duration::from_secs(15), read)
            .await
            .unwrap_or_else(|_| panic!("request {n}: still waiting after 15 s"));
        assert!(
            got.is_err(),
            "request {n}: a whole body from a silent upstream"
        );
        assert_eq!(
            asked.load(Ordering::SeqCst),
            n,
            "upstream fetches after {n}"
        );
    }
}
