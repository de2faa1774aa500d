//! Online garbage collection through `berth serve`, `/api/v1/gc` and `berth registry
//! gc|fsck`: the collector racing pushes, retags and deletes with a zero grace period,
//! after which every tagged image pulls byte-identical and fsck finds nothing wrong
//! (on the embedded default, and on S3 + PostgreSQL); who may run it over the API; the dry run listing what a run removes; the metrics.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use berth_image::Digest;
use serde_json::{json, Value};

mod common;
#[path = "common/registry_fixture.rs"]
mod registry_fixture;

use common::admin;
use common::backend::Backend;
use registry_fixture::{metric, Serve};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A registry client for one repository (raw Distribution API, so that every request
/// and its failure is visible).
#[derive(Clone)]
struct Repo {
    http: reqwest::Client,
    base: String,
}

impl Repo {
    fn new(serve: &Serve, name: &str) -> Repo {
        Repo {
            http: reqwest::Client::new(),
            base: format!("{}/v2/{name}", serve.url),
        }
    }

    /// One-shot upload (`POST ?digest=`); returns the digest. A 503 (the collector
    /// removes the stored file this upload would link) is retried after a pause, as
    /// clients do: the collector's file removal runs at the lowest priority, so on a
    /// busy machine its batch can hold the blob for seconds.
    async fn blob(&self, bytes: &[u8]) -> Digest {
        let d = Digest::sha256_of(bytes);
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut pause = Duration::from_millis(10);
        loop {
            let r = self
                .http
                .post(format!("{}/blobs/uploads/?digest={d}", self.base))
                .body(bytes.to_vec())
                .send()
                .await
                .unwrap();
            match r.status().as_u16() {
                201 => return d,
                503 if Instant::now() < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
                s => panic!("blob upload: {s} {}", r.text().await.unwrap()),
            }
        }
    }

    /// PUT a manifest; the status and body on failure.
    async fn put(&self, reference: &str, media_type: &str, bytes: &[u8]) -> Result<(), String> {
        let r = self
            .http
            .put(format!("{}/manifests/{reference}", self.base))
            .header("content-type", media_type)
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            201 => Ok(()),
            s => Err(format!("{s} {}", r.text().await.unwrap())),
        }
    }

    async fn get(&self, what: &str) -> (u16, Vec<u8>) {
        let r = self
            .http
            .get(format!("{}/{what}", self.base))
            .header("accept", format!("{OCI_MANIFEST}, {OCI_INDEX}"))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
    }

    async fn delete(&self, reference: &str) -> u16 {
        self.http
            .delete(format!("{}/manifests/{reference}", self.base))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

fn descriptor(media_type: &str, bytes: &[u8]) -> Value {
    json!({
        "mediaType": media_type,
        "digest": Digest::sha256_of(bytes).to_string(),
        "size": bytes.len(),
    })
}

/// An image manifest over `config` and `layers`.
fn image(config: &[u8], layers: &[&[u8]]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.oci.image.config.v1+json", config),
        "layers": layers.iter().map(|l| descriptor("application/vnd.oci.image.layer.v1.tar", l)).collect::<Vec<_>>(),
    }))
    .unwrap()
}

fn index(children: &[&[u8]]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": children.iter().map(|c| descriptor(OCI_MANIFEST, c)).collect::<Vec<_>>(),
    }))
    .unwrap()
}

/// What a tag must pull: the manifest, and every manifest and blob under it.
#[derive(Clone)]
struct Expected {
    manifest: Vec<u8>,
    children: Vec<Vec<u8>>,
    blobs: Vec<Vec<u8>>,
}

/// A layer shared by many images (and repositories): 16 of them, 48 KiB each.
fn shared_layer(i: usize) -> Vec<u8> {
    (0..48 * 1024)
        .map(|j| ((i * 31 + j * 7) % 251) as u8)
        .collect()
}

/// Pushes one image (its blobs, then its manifest), retrying while the collector
/// took a blob between upload and manifest (only possible with a zero grace period:
/// the manifest PUT then fails cleanly with MANIFEST_BLOB_UNKNOWN, never half-stored).
async fn push_image(repo: &Repo, reference: &str, config: &[u8], layers: &[&[u8]]) -> Vec<u8> {
    let manifest = image(config, layers);
    for attempt in 0.. {
        repo.blob(config).await;
        for l in layers {
            repo.blob(l).await;
        }
        match repo.put(reference, OCI_MANIFEST, &manifest).await {
            Ok(()) => return manifest,
            Err(e) if e.contains("BLOB_UNKNOWN") && attempt < 50 => continue,
            Err(e) => panic!("pushing {reference}: {e}"),
        }
    }
    unreachable!()
}

/// One client's churn on its own repository for `run`: pushes images that share
/// layers (with each other and with the other clients), retags, pushes multi-arch
/// indexes, deletes tags and manifests. Returns what each remaining tag must pull.
async fn churn(repo: Repo, worker: usize, run: Duration) -> (HashMap<String, Expected>, usize) {
    let mut expected: HashMap<String, Expected> = HashMap::new();
    let start = Instant::now();
    let mut n = 0usize;
    while start.elapsed() < run {
        n += 1;
        let tag = format!("t{}", n % 5);
        let unique = format!("worker {worker} image {n}").into_bytes();
        let config = format!("{{\"config\":\"{worker}-{n}\"}}").into_bytes();
        let (a, b) = (shared_layer((worker + n) % 16), shared_layer(n % 16));
        match n % 7 {
            // Delete a tag.
            5 => {
                let s = repo.delete(&tag).await;
                assert!(s == 202 || s == 404, "DELETE tag: {s}");
                expected.remove(&tag);
            }
            // Delete a tagged manifest by digest (its tags go with it).
            6 => {
                if let Some(e) = expected.get(&tag).cloned() {
                    let d = Digest::sha256_of(&e.manifest).to_string();
                    assert_eq!(repo.delete(&d).await, 202);
                    expected.retain(|_, x| x.manifest != e.manifest);
                }
            }
            // A multi-arch image: two untagged children, then the tagged index.
            4 => {
                let c1 = push_image(
                    &repo,
                    &format!("{}", Digest::sha256_of(&image(&config, &[&a, &unique]))),
                    &config,
                    &[&a, &unique],
                )
                .await;
                let config2 = [config.as_slice(), b"-arm64"].concat();
                let c2_manifest = image(&config2, &[&b]);
                let c2 = push_image(
                    &repo,
                    &Digest::sha256_of(&c2_manifest).to_string(),
                    &config2,
                    &[&b],
                )
                .await;
                let idx = index(&[&c1, &c2]);
                let mut pushed = false;
                for _ in 0..50 {
                    match repo.put(&tag, OCI_INDEX, &idx).await {
                        Ok(()) => {
                            pushed = true;
                            break;
                        }
                        // The children were collected before the index landed (zero
                        // grace): push them again.
                        Err(e) if e.contains("MANIFEST_UNKNOWN") => {
                            push_image(
                                &repo,
                                &Digest::sha256_of(&c1).to_string(),
                                &config,
                                &[&a, &unique],
                            )
                            .await;
                            push_image(&repo, &Digest::sha256_of(&c2).to_string(), &config2, &[&b])
                                .await;
                        }
                        Err(e) => panic!("index: {e}"),
                    }
                }
                assert!(pushed, "the index never landed");
                expected.insert(
                    tag,
                    Expected {
                        manifest: idx,
                        children: vec![c1, c2],
                        blobs: vec![
                            config.clone(),
                            a.clone(),
                            unique.clone(),
                            config2,
                            b.clone(),
                        ],
                    },
                );
            }
            // Push (or retag: the tag's previous image becomes garbage).
            _ => {
                let m = push_image(&repo, &tag, &config, &[&a, &b, &unique]).await;
                expected.insert(
                    tag,
                    Expected {
                        manifest: m,
                        children: vec![],
                        blobs: vec![config, a, b, unique],
                    },
                );
            }
        }
    }
    (expected, n)
}

fn fsck(root: &Path) -> (bool, Value) {
    let out = admin(&["fsck", "--root", root.to_str().unwrap()], "");
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.success(), v)
}

/// The heart of it: a minute of pushes, retags and deletes by 4 clients sharing
/// layers, with the collector running every 50 ms with no grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn collector_racing_pushes_keeps_every_tagged_image_whole() {
    collector_racing_pushes_on(&Backend::embedded()).await;
}

/// The same race with the blobs in S3 (s3s-fs) and the metadata in PostgreSQL: the
/// fence is in the database, the files are objects.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn collector_racing_pushes_on_object_storage_and_postgres() {
    collector_racing_pushes_on(&Backend::object_storage("race")).await;
}

async fn collector_racing_pushes_on(backend: &Backend) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("reg");
    let config = backend.config_file(dir.path(), "");
    let serve = Serve::start(
        &root,
        &[
            "--config",
            config.to_str().unwrap(),
            "--gc-interval",
            "50ms",
            "--gc-grace",
            "0s",
        ],
    )
    .await;
    let secs: u64 = std::env::var("BERTH_GC_RACE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let run = Duration::from_secs(secs);
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let repo = Repo::new(&serve, &format!("race/app{w}"));
            tokio::spawn(churn(repo, w, run))
        })
        .collect();
    let mut all = Vec::new();
    let mut ops = 0;
    for (w, h) in workers.into_iter().enumerate() {
        let (expected, n) = h.await.expect("a client panicked");
        ops += n;
        all.push((Repo::new(&serve, &format!("race/app{w}")), expected));
    }
    // Let the collector run a few more times on the final state.
    let runs_before = metric(&serve, "berth_gc_runs_total").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&serve, "berth_gc_runs_total").await < runs_before + 3.0 {
        assert!(Instant::now() < deadline, "the collector stopped running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let runs = metric(&serve, "berth_gc_runs_total").await;
    let manifests_removed = metric(&serve, "berth_gc_manifests_removed_total").await;
    let blobs_removed = metric(&serve, "berth_gc_blobs_removed_total").await;
    eprintln!("{ops} operations; {runs} collections removed {manifests_removed} manifests, {blobs_removed} blobs");
    assert!(runs > 20.0 && manifests_removed > 0.0 && blobs_removed > 0.0);

    let mut tags = 0;
    for (repo, expected) in &all {
        for (tag, e) in expected {
            tags += 1;
            let (status, body) = repo.get(&format!("manifests/{tag}")).await;
            assert_eq!(status, 200, "{tag}");
            assert_eq!(body, e.manifest, "{tag} pulls the manifest pushed");
            for c in &e.children {
                let (status, body) = repo
                    .get(&format!("manifests/{}", Digest::sha256_of(c)))
                    .await;
                assert_eq!((status, &body), (200, c), "a child of {tag}");
            }
            for b in &e.blobs {
                let (status, body) = repo.get(&format!("blobs/{}", Digest::sha256_of(b))).await;
                assert_eq!(status, 200, "a blob of {tag}");
                assert!(body == *b, "a blob of {tag} pulls byte-identical");
            }
        }
        // Nothing else is tagged.
        let (_, list) = repo.get("tags/list").await;
        let list: Value = serde_json::from_slice(&list).unwrap();
        let n = list["tags"].as_array().map_or(0, Vec::len);
        assert_eq!(n, expected.len());
    }
    assert!(tags > 0);
    drop(serve);
    let out = backend.registry(&root, &["fsck"]);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert!(out.status.success(), "fsck after the race: {report:#}");
    assert_eq!(report["problems"], 0, "{report:#}");
}

/// Pushes an image by digest only (untagged from the start), as `who`; returns the
/// manifest's digest and its layer's.
async fn push_untagged(
    http: &reqwest::Client,
    url: &str,
    repo: &str,
    who: &str,
) -> (Digest, Digest) {
    let base = format!("{url}/v2/{repo}");
    let config = format!("{{\"repo\":\"{repo}\"}}").into_bytes();
    let layer = format!("layer of {repo}").into_bytes();
    for b in [&config, &layer] {
        let r = http
            .post(format!(
                "{base}/blobs/uploads/?digest={}",
                Digest::sha256_of(b)
            ))
            .basic_auth(who, Some("secret-pw"))
            .body(b.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
    }
    let m = image(&config, &[&layer]);
    let d = Digest::sha256_of(&m);
    let r = http
        .put(format!("{base}/manifests/{d}"))
        .basic_auth(who, Some("secret-pw"))
        .header("content-type", OCI_MANIFEST)
        .body(m)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    (d, Digest::sha256_of(&layer))
}

/// A HEAD of an old manifest or blob renews its grace: go-containerregistry HEADs an
/// index's children and skips those present, then PUTs the index; the collector must
/// not take a child in between. Content nobody HEADed goes.
#[tokio::test]
async fn a_head_renews_the_grace_of_what_it_found() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("reg");
    std::fs::create_dir_all(&root).unwrap();
    let root_s = root.to_str().unwrap();
    let args = ["user", "add", "alice", "--password-stdin", "--root", root_s];
    assert!(admin(&args, "secret-pw\n").status.success());
    let serve = Serve::start(&root, &["--gc-interval", "0s"]).await;
    let http = reqwest::Client::new();
    let (found, found_layer) = push_untagged(&http, &serve.url, "alice/found", "alice").await;
    let (lost, _) = push_untagged(&http, &serve.url, "alice/lost", "alice").await;
    let db = rusqlite::Connection::open(root.join("meta.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    for t in ["blobs", "repository_blobs", "manifests"] {
        db.execute(
            &format!("UPDATE {t} SET created_at = created_at - 7200"),
            [],
        )
        .unwrap();
    }
    for what in [format!("manifests/{found}"), format!("blobs/{found_layer}")] {
        let r = http
            .head(format!("{}/v2/alice/found/{what}", serve.url))
            .basic_auth("alice", Some("secret-pw"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{what}");
    }
    let out = admin(&["gc", "--grace", "1h", "--root", root_s], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done: Value = serde_json::from_slice(&out.stdout).unwrap();
    let gone: Vec<&str> = done["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    assert_eq!(gone, [lost.to_string()], "{done:#}");
    assert!(
        done["blobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["digest"] != found_layer.to_string()),
        "{done:#}"
    );
    let r = http
        .get(format!("{}/v2/alice/found/manifests/{found}", serve.url))
        .basic_auth("alice", Some("secret-pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

/// `/api/v1/gc` is for superusers; the dry run lists exactly what the run removes; the
/// CLI's `--repo` scope; the metrics count the run.
#[tokio::test]
async fn api_and_cli_runs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("reg");
    let root_s = root.to_str().unwrap();
    std::fs::create_dir_all(&root).unwrap();
    for (user, superuser) in [("root", true), ("alice", false)] {
        let mut args = vec!["user", "add", user, "--password-stdin", "--root", root_s];
        if superuser {
            args.push("--superuser");
        }
        let out = admin(&args, "secret-pw\n");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let serve = Serve::start(&root, &["--gc-interval", "0s"]).await;
    let http = reqwest::Client::new();
    push_untagged(&http, &serve.url, "alice/one", "alice").await;
    push_untagged(&http, &serve.url, "alice/two", "alice").await;
    let gc = |who: Option<&str>, body: Value| {
        let mut rb = http.post(format!("{}/api/v1/gc", serve.url)).json(&body);
        if let Some(w) = who {
            rb = rb.basic_auth(w, Some("secret-pw"));
        }
        rb.send()
    };
    assert_eq!(gc(None, json!({})).await.unwrap().status().as_u16(), 401);
    let r = gc(Some("alice"), json!({"grace": "0s"})).await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.text().await.unwrap().contains("superusers only"));
    let r = gc(Some("root"), json!({"grace": "soon"})).await.unwrap();
    assert_eq!(r.status().as_u16(), 400);

    // Let a second pass: content created in the current second is spared by a zero
    // grace period (created_at < cutoff).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let dry: Value = gc(
        Some("root"),
        json!({"grace": "0s", "dry_run": true, "repo": "alice/one"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["manifests_removed"], 1, "{dry:#}");
    assert_eq!(dry["blobs_removed"], 2, "{dry:#}");
    assert!(dry["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["repository"] == "alice/one"));
    assert_eq!(
        metric(&serve, "berth_gc_runs_total").await,
        0.0,
        "a dry run is not a run"
    );
    let done: Value = gc(Some("root"), json!({"grace": "0s", "repo": "alice/one"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for k in [
        "manifests",
        "blobs",
        "manifests_removed",
        "blobs_removed",
        "bytes_freed",
    ] {
        assert_eq!(
            done[k], dry[k],
            "{k}: the dry run listed what the run removed"
        );
    }
    assert_eq!(metric(&serve, "berth_gc_runs_total").await, 1.0);
    assert_eq!(
        metric(&serve, "berth_gc_manifests_removed_total").await,
        1.0
    );
    assert_eq!(metric(&serve, "berth_gc_blobs_removed_total").await, 2.0);
    assert!(metric(&serve, "berth_gc_last_success_timestamp_seconds").await > 0.0);

    // The CLI on the folder, while the server runs: alice/two is still there.
    let dry = admin(&["gc", "--dry-run", "--grace", "0s", "--root", root_s], "");
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    let dry: Value = serde_json::from_slice(&dry.stdout).unwrap();
    assert_eq!(dry["manifests"][0]["repository"], "alice/two");
    let out = admin(&["gc", "--grace", "0s", "--root", root_s], "");
    let done: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(done["manifests"], dry["manifests"]);
    assert_eq!(done["blobs"], dry["blobs"]);
    // And over --url, as a superuser: nothing is left.
    let out = admin(
        &[
            "gc",
            "--url",
            &serve.url,
            "--creds",
            "root:secret-pw",
            "--grace",
            "0s",
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["manifests_removed"], 0);
    let (ok, report) = fsck(&root);
    assert!(ok, "{report:#}");
}

/// fsck through the CLI: a corrupted file, a missing file and an orphan file are each
/// reported with what they affect, the exit status says so, and --repair fixes them.
#[tokio::test]
async fn fsck_cli_reports_and_repairs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("reg");
    let r = root.to_str().unwrap().to_string();
    let serve = Serve::start(&root, &["--gc-interval", "0s"]).await;
    let repo = Repo::new(&serve, "fsck/app");
    let (a, b) = (b"layer a".to_vec(), b"layer b".to_vec());
    push_image(&repo, "v1", b"{}", &[&a, &b]).await;
    drop(serve);
    let path = |d: &Digest| root.join("blobs/sha256").join(&d.hex()[..2]).join(d.hex());
    std::fs::write(path(&Digest::sha256_of(&a)), b"bit rot").unwrap();
    std::fs::remove_file(path(&Digest::sha256_of(&b))).unwrap();
    let orphan = Digest::sha256_of(b"orphan");
    std::fs::create_dir_all(path(&orphan).parent().unwrap()).unwrap();
    std::fs::write(path(&orphan), b"orphan").unwrap();

    let out = admin(&["fsck", "--root", &r], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("3 problem(s) remain"));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["problem"].as_str().unwrap())
        .collect();
    for k in ["corrupt", "missing-file", "orphan-file"] {
        assert!(kinds.contains(&k), "{v:#}");
    }
    let corrupt = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["problem"] == "corrupt")
        .unwrap();
    assert_eq!(corrupt["manifests"][0]["repository"], "fsck/app");
    assert_eq!(corrupt["manifests"][0]["tags"], json!(["v1"]));

    let out = admin(&["fsck", "--repair", "--root", &r], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (ok, v) = fsck(Path::new(&r));
    assert!(ok && v["problems"] == 0, "{v:#}");
    // The good blob (the config) is still there.
    assert!(path(&Digest::sha256_of(b"{}")).is_file());
}
