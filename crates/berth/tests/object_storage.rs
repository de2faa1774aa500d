//! `berth serve --blob-store s3://…`: blobs in a real S3 server (s3s-fs, started by
//! crates/berth-testenv) and metadata in a real PostgreSQL, replicas with nothing on
//! their own disks in common. skopeo pushes through one and pulls byte-identical
//! through the other (a layer larger than a part goes up in several parts), a chunked
//! upload's requests alternate between replicas, ranges are served, `--blob-redirect`
//! answers a presigned URL that fetches the blob with no credentials, no blob lands on
//! a replica's disk, and the collector removes blobs from the bucket. The object store
//! stopped under a running server: 503 UNAVAILABLE, then service again once it is back.
//! A client that stops reading a 128 MiB blob does not make its replica hold it.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_testenv::{Postgres, S3};
use serde_json::{json, Value};

mod common;
#[path = "common/registry_fixture.rs"]
mod registry_fixture;

use common::process::{request, try_request, Serve};
use common::sha256;
use registry_fixture::{layout_blob, noise, pull_matches, pull_matches_as, skopeo_push};

fn replica(s3: &S3, bucket: &str, root: &Path, metadata: &str, extra: &[&str]) -> Serve {
    let store = format!("s3://{bucket}/registry");
    let endpoint = s3.endpoint();
    let mut args = vec![
        "--metadata",
        metadata,
        "--blob-store",
        &store,
        "--s3-endpoint",
        &endpoint,
        "--gc-grace",
        "0s",
    ];
    args.extend_from_slice(extra);
    let serve = Serve::start(
        root,
        &args,
        &[
            ("AWS_ACCESS_KEY_ID", S3::ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", S3::SECRET_KEY),
        ],
    );
    // Ready when /v2/ answers: 200, or 401 where access control applies.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !matches!(
        try_request(&serve.addr, "GET", "/v2/", &[], b""),
        Ok(r) if r.status == 200 || r.status == 401
    ) {
        assert!(
            Instant::now() < deadline,
            "berth serve on {} did not start",
            serve.addr
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    serve
}

/// Files under the bucket whose key has `part` (s3s-fs keeps objects as files).
fn keys(s3: &S3, bucket: &str, part: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![s3.bucket_dir(bucket)];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.to_string_lossy().contains(part) {
                out.push(p.to_string_lossy().into_owned());
            }
        }
    }
    out
}

#[test]
fn replicas_share_a_bucket_and_a_database() {
    let s3 = S3::shared();
    let bucket = s3.bucket();
    let url = Postgres::shared().database();
    let dir = tempfile::tempdir().unwrap();
    let a = replica(s3, &bucket, &dir.path().join("a"), &url, &[]);
    let b = replica(s3, &bucket, &dir.path().join("b"), &url, &[]);

    // skopeo pushes through one replica and pulls through the other, byte for byte.
    let layout = dir.path().join("layout");
    let big = noise(20 * 1024 * 1024);
    let layers = [
        registry_fixture::layer(&[("etc/hello", "hello from a bucket")]),
        registry_fixture::layer(&[("usr/share/big", &big)]),
    ];
    assert!(layers[1].0.len() > 9 * 1024 * 1024, "the layer spans parts");
    let pushed = registry_fixture::write_layout(
        &layout,
        "v1",
        &layers,
        json!({"architecture": "amd64", "os": "linux"}),
    );
    skopeo_push(&layout, "v1", &a.addr, "team/app", None);
    let digests = pull_matches(
        &b.addr,
        "team/app",
        "v1",
        dir.path(),
        &layout,
        &pushed.to_string(),
    );
    for d in &digests {
        let hex = d.trim_start_matches("sha256:");
        assert_eq!(keys(s3, &bucket, hex).len(), 1, "{d} is in the bucket");
    }

    // The catalog reads the layers from the bucket: the image is inventoried (the big
    // layer's file listed), not failed.
    let packages = format!("/api/v1/repositories/team/app/manifests/{pushed}/packages");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = request(&a.addr, "GET", &packages, &[], b"");
        if r.status == 200 {
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(v["status"], "ok", "{v}");
            break;
        }
        assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
        assert!(Instant::now() < deadline, "not inventoried within 60 s");
        std::thread::sleep(Duration::from_millis(200));
    }

    // A chunked upload whose requests alternate between the replicas, in chunks that
    // cross part boundaries.
    let bytes = noise(19 * 1024 * 1024).into_bytes();
    let digest = sha256(&bytes);
    let r = request(&a.addr, "POST", "/v2/team/chunks/blobs/uploads/", &[], b"");
    assert_eq!(r.status, 202);
    let mut location = r.header("Location").unwrap();
    const CHUNK: usize = 6 * 1024 * 1024 + 5;
    for (i, chunk) in bytes.chunks(CHUNK).enumerate() {
        let serve = [&b, &a][i % 2];
        let start = i * CHUNK;
        let r = request(
            &serve.addr,
            "PATCH",
            &location,
            &[
                (
                    "Content-Range",
                    format!("{start}-{}", start + chunk.len() - 1),
                ),
                ("Content-Type", "application/octet-stream".into()),
            ],
            chunk,
        );
        assert_eq!(r.status, 202, "chunk {i} on {}", serve.addr);
        location = r.header("Location").unwrap();
        // Where the session is, asked of the other replica.
        let other = [&a, &b][i % 2];
        let r = request(&other.addr, "GET", &location, &[], b"");
        assert_eq!(r.status, 204);
        assert_eq!(
            r.header("Range").unwrap(),
            format!("0-{}", start + chunk.len() - 1)
        );
    }
    // A chunk that does not start where the upload ends is refused, on either replica.
    let r = request(
        &a.addr,
        "PATCH",
        &location,
        &[("Content-Range", "0-2".to_string())],
        b"abc",
    );
    assert_eq!(r.status, 416);
    let sep = if location.contains('?') { '&' } else { '?' };
    let r = request(
        &b.addr,
        "PUT",
        &format!("{location}{sep}digest={digest}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let path = format!("/v2/team/chunks/blobs/{digest}");
    let r = request(&a.addr, "GET", &path, &[], b"");
    assert_eq!(r.status, 200);
    assert!(r.body == bytes, "the chunked blob comes back whole");
    let r = request(
        &b.addr,
        "GET",
        &path,
        &[("Range", "bytes=8388600-8388615".into())],
        b"",
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &bytes[8_388_600..8_388_616]);
    // Nothing of the sessions is left in the bucket.
    assert!(
        keys(s3, &bucket, "/uploads/").is_empty(),
        "{:?}",
        keys(s3, &bucket, "/uploads/")
    );

    // A wrong digest keeps nothing.
    let wrong = sha256(b"not these bytes");
    let r = request(
        &a.addr,
        "POST",
        &format!("/v2/team/app/blobs/uploads/?digest={wrong}"),
        &[],
        b"these bytes",
    );
    assert_eq!(r.status, 400);
    assert!(keys(s3, &bucket, wrong.trim_start_matches("sha256:")).is_empty());

    // With --blob-redirect, a GET is sent to the object store with a presigned URL.
    let c = replica(
        s3,
        &bucket,
        &dir.path().join("c"),
        &url,
        &["--blob-redirect"],
    );
    let r = request(&c.addr, "GET", &path, &[], b"");
    assert_eq!(r.status, 307);
    let target = r.header("Location").unwrap();
    let rest = target.strip_prefix("http://").unwrap();
    let (host, path_and_query) = rest.split_at(rest.find('/').unwrap());
    let r = request(host, "GET", path_and_query, &[], b"");
    assert_eq!(r.status, 200);
    assert!(r.body == bytes, "the presigned URL serves the blob");

    // No replica keeps a blob on its disk.
    for root in ["a", "b", "c"] {
        let blobs = dir.path().join(root).join("blobs");
        let files = walk(&blobs);
        assert!(files.is_empty(), "{root}: {files:?}");
    }

    // The collector removes what nothing references, from the bucket.
    let r = request(
        &a.addr,
        "DELETE",
        &format!("/v2/team/chunks/blobs/{digest}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 202);
    // The grace period is counted in whole seconds.
    std::thread::sleep(Duration::from_millis(1100));
    // The folder command, beside the running replicas, finds the metadata and the
    // blobs where the same variables as berth serve's say.
    let folder_command = |args: &[&str]| {
        Command::new(common::BERTH)
            .args(["registry", "--root"])
            .arg(dir.path().join("b"))
            .args(args)
            .env("BERTH_METADATA", &url)
            .env("BERTH_BLOB_STORE", format!("s3://{bucket}/registry"))
            .env("BERTH_S3_ENDPOINT", s3.endpoint())
            .env("AWS_ACCESS_KEY_ID", S3::ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", S3::SECRET_KEY)
            .output()
            .unwrap()
    };
    let out = folder_command(&["gc", "--grace", "0s"]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        keys(s3, &bucket, digest.trim_start_matches("sha256:")).is_empty(),
        "the collected blob is gone from the bucket: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    for d in &digests {
        let hex = d.trim_start_matches("sha256:");
        assert_eq!(keys(s3, &bucket, hex).len(), 1, "{d} (tagged) stays");
    }

    // fsck reads every object back: clean, then a blob's object lost behind
    // berth's back is found, with the repository it breaks.
    let out = folder_command(&["fsck"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert!(
        out.status.success() && report["remaining"] == 0,
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let checked = report["files_checked"].as_u64().unwrap();
    assert!(checked >= digests.len() as u64, "{report}");
    // The same settings from serve's TOML file (--config) instead: the same store.
    // (Without them the folder's empty blobs/ was checked: every row "missing".)
    let toml = dir.path().join("serve.toml");
    std::fs::write(
        &toml,
        format!(
            "metadata = \"{url}\"\nblob_store = \"s3://{bucket}/registry\"\n\
             s3_endpoint = \"{}\"\ns3_access_key_id = \"{}\"\n\
             s3_secret_access_key = \"{}\"\n",
            s3.endpoint(),
            S3::ACCESS_KEY,
            S3::SECRET_KEY
        ),
    )
    .unwrap();
    let out = Command::new(common::BERTH)
        .args(["registry", "--root"])
        .arg(dir.path().join("b"))
        .args(["fsck", "--config"])
        .arg(&toml)
        .env_remove("BERTH_METADATA")
        .env_remove("BERTH_BLOB_STORE")
        .output()
        .unwrap();
    let by_file: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert!(
        out.status.success() && by_file["files_checked"].as_u64() == Some(checked),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let lost = &digests[0];
    for file in keys(s3, &bucket, lost.trim_start_matches("sha256:")) {
        std::fs::remove_file(file).unwrap();
    }
    let out = folder_command(&["fsck"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(out.status.code(), Some(1), "{report}");
    let finding = &report["findings"][0];
    assert_eq!(
        (finding["problem"].as_str(), finding["blob"].as_str()),
        (Some("missing-file"), Some(lost.as_str())),
        "{report}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("fsck: 1 problem(s) remain"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.to_string_lossy().into_owned());
        }
    }
    out
}

#[test]
fn a_stopped_object_store_answers_503_and_the_server_recovers() {
    let s3 = S3::private();
    let bucket = s3.bucket();
    let url = Postgres::shared().database();
    let dir = tempfile::tempdir().unwrap();
    let serve = replica(&s3, &bucket, &dir.path().join("root"), &url, &[]);
    let blob = common::process::push_blob(&serve.addr, "app", b"kept in the bucket");
    let path = format!("/v2/app/blobs/{blob}");
    assert_eq!(request(&serve.addr, "GET", &path, &[], b"").status, 200);

    s3.kill();
    let r = request(&serve.addr, "GET", &path, &[], b"");
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["errors"][0]["code"], "UNAVAILABLE");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("object storage"),
        "{body}"
    );
    let r = request(
        &serve.addr,
        "POST",
        &format!("/v2/app/blobs/uploads/?digest={}", sha256(b"new")),
        &[],
        b"new",
    );
    assert_eq!(r.status, 503);

    s3.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match try_request(&serve.addr, "GET", &path, &[], b"") {
            Ok(r) if r.status == 200 => {
                assert_eq!(r.body, b"kept in the bucket");
                break;
            }
            other => assert!(
                Instant::now() < deadline,
                "not serving 30 s after the object store came back: {:?}",
                other.map(|r| (r.status, String::from_utf8_lossy(&r.body).into_owned())),
            ),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    common::process::push_blob(&serve.addr, "app", b"new");
}

/// Resident memory of a process, in bytes.
fn rss(pid: u32) -> u64 {
    common::process::status_kib(pid, "VmRSS").expect("VmRSS") * 1024
}

/// A client that stops reading a large blob holds the bucket back instead of making
/// the replica hold the blob: the replica's memory stays within a few MiB of what it
/// was, then the rest arrives intact. (Through object_store's own spawning connector,
/// whose channel is unbounded, the replica read all 128 MiB into memory.)
#[test]
fn a_client_that_stops_reading_does_not_fill_the_replicas_memory() {
    use std::io::{Read, Write};
    let s3 = S3::shared();
    let bucket = s3.bucket();
    let url = Postgres::shared().database();
    let dir = tempfile::tempdir().unwrap();
    // Pushed through one replica, read through another that has held nothing yet.
    let a = replica(
        s3,
        &bucket,
        &dir.path().join("a"),
        &url,
        &["--catalog", "false"],
    );
    let b = replica(
        s3,
        &bucket,
        &dir.path().join("b"),
        &url,
        &["--catalog", "false"],
    );
    let blob = noise(128 * 1024 * 1024).into_bytes();
    let digest = common::process::push_blob(&a.addr, "big/app", &blob);
    let before = rss(b.child.id());

    let mut s = std::net::TcpStream::connect(&b.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let path = format!("/v2/big/app/blobs/{digest}");
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        b.addr
    );
    s.write_all(head.as_bytes()).unwrap();
    let mut got = vec![0u8; 1024 * 1024];
    s.read_exact(&mut got).unwrap();
    // The client reads nothing for a while; the bucket could send everything.
    std::thread::sleep(Duration::from_secs(3));
    let stalled = rss(b.child.id());
    assert!(
        stalled < before + 48 * 1024 * 1024,
        "the replica grew from {} to {} MiB while its client read nothing",
        before >> 20,
        stalled >> 20
    );
    s.read_to_end(&mut got).unwrap();
    let split = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got[..split])
    );
    assert!(got[split..] == blob[..], "the blob arrived changed");
}

/// `berth registry …` with `stdin` as its input; its stdout, when it succeeded.
fn admin(args: &[&str], stdin: &str) -> String {
    admin_with(args, stdin, &[])
}

/// [`admin`] with `BERTH_METADATA` set: the command works on the replicas' database.
fn admin_on(metadata: &str, args: &[&str], stdin: &str) -> String {
    admin_with(args, stdin, &[("BERTH_METADATA", metadata)])
}

fn admin_with(args: &[&str], stdin: &str, envs: &[(&str, &str)]) -> String {
    use std::io::Write;
    let mut child = Command::new(common::BERTH)
        .args(args)
        .envs(envs.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "berth {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Replication reads what it copies from the bucket: an image pushed to a replica on
/// S3 + PostgreSQL arrives byte-identical in a plain berth.
#[test]
fn replication_copies_from_the_bucket() {
    let s3 = S3::shared();
    let bucket = s3.bucket();
    let url = Postgres::shared().database();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("source");
    let root_s = root.to_str().unwrap();
    // The replica's accounts are in its database.
    admin_on(
        &url,
        &[
            "registry",
            "--root",
            root_s,
            "user",
            "add",
            "root",
            "--password-stdin",
            "--superuser",
        ],
        "secret-pw\n",
    );
    let source = replica(s3, &bucket, &root, &url, &[]);
    let mirror = Serve::start(&dir.path().join("mirror"), &[], &[]);
    mirror.wait_ready();

    let layout = dir.path().join("layout");
    let layers = [registry_fixture::layer(&[(
        "etc/replicated",
        &noise(100_000),
    )])];
    let pushed = registry_fixture::write_layout(
        &layout,
        "v1",
        &layers,
        json!({"architecture": "amd64", "os": "linux"}),
    );
    skopeo_push(
        &layout,
        "v1",
        &source.addr,
        "team/app",
        Some("root:secret-pw"),
    );
    let source_url = format!("http://{}", source.addr);
    let mirror_url = format!("http://{}", mirror.addr);
    let rule = [
        "registry",
        "--url",
        &source_url,
        "--creds",
        "root:secret-pw",
        "replicate",
    ];
    let with =
        |more: &[&str]| -> Vec<String> { rule.iter().chain(more).map(|s| s.to_string()).collect() };
    let add = with(&[
        "add",
        "to-mirror",
        "--to",
        &mirror_url,
        "--repos",
        "team/*",
        "--schedule",
        "24h",
    ]);
    admin(&add.iter().map(String::as_str).collect::<Vec<_>>(), "");
    let run = with(&["run", "to-mirror"]);
    admin(&run.iter().map(String::as_str).collect::<Vec<_>>(), "");
    let show = with(&["show", "to-mirror"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let v: Value = serde_json::from_str(&admin(
            &show.iter().map(String::as_str).collect::<Vec<_>>(),
            "",
        ))
        .unwrap();
        let s = v["status"].clone();
        if s["running"] == false && s["last_run_finished"].is_i64() {
            break s;
        }
        assert!(Instant::now() < deadline, "no finished run: {s}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status["errors"], 0, "{status}");
    assert_eq!(status["images_copied"], 1, "{status}");
    pull_matches(
        &mirror.addr,
        "team/app",
        "v1",
        dir.path(),
        &layout,
        &pushed.to_string(),
    );
}

/// `berth registry migrate` moves a registry on files and SQLite onto the bucket and
/// PostgreSQL: every blob verified (a corrupt file stops it and names the blob),
/// resumable (a second run sends nothing), and a replica on the result serves the same
/// bytes, tags, index and referrers.
#[test]
fn migrate_moves_a_registry_onto_a_bucket_and_postgres() {
    let s3 = S3::shared();
    let bucket = s3.bucket();
    let url = Postgres::shared().database();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("single");
    let single = Serve::start(&root, &[], &[]);
    single.wait_ready();

    let layout = dir.path().join("layout");
    let layers = [
        registry_fixture::layer(&[("etc/migrated", "moved to a bucket")]),
        registry_fixture::layer(&[("usr/share/big", &noise(12 * 1024 * 1024))]),
    ];
    let pushed = registry_fixture::write_layout(
        &layout,
        "v1",
        &layers,
        json!({"architecture": "amd64", "os": "linux"}),
    );
    skopeo_push(&layout, "v1", &single.addr, "team/app", None);
    let manifest = layout_blob(&layout, &pushed.to_string());
    // An index over the image, and an artifact whose subject is the image.
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": pushed.to_string(), "size": manifest.len(),
                       "platform": {"architecture": "amd64", "os": "linux"}}],
    }))
    .unwrap();
    let r = request(
        &single.addr,
        "PUT",
        "/v2/team/app/manifests/multi",
        &[(
            "Content-Type",
            "application/vnd.oci.image.index.v1+json".into(),
        )],
        &index,
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let empty = common::process::push_blob(&single.addr, "team/app", b"{}");
    let artifact = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example.sbom",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2}],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": pushed.to_string(), "size": manifest.len()},
    }))
    .unwrap();
    let r = request(
        &single.addr,
        "PUT",
        &format!("/v2/team/app/manifests/{}", sha256(&artifact)),
        &[(
            "Content-Type",
            "application/vnd.oci.image.manifest.v1+json".into(),
        )],
        &artifact,
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    drop(single);
    // An account, whose password hash moves with the directory.
    admin(
        &[
            "registry",
            "--root",
            root.to_str().unwrap(),
            "user",
            "add",
            "carol",
            "--password-stdin",
        ],
        "carol-pw\n",
    );
    admin(
        &[
            "registry",
            "--root",
            root.to_str().unwrap(),
            "repo",
            "visibility",
            "team/app",
            "public",
        ],
        "",
    );

    let migrate = || {
        Command::new(common::BERTH)
            .args(["registry", "--root"])
            .arg(&root)
            .args([
                "migrate",
                "--to-blob-store",
                &format!("s3://{bucket}/moved"),
            ])
            .args(["--s3-endpoint", &s3.endpoint(), "--to-metadata", &url])
            .env("AWS_ACCESS_KEY_ID", S3::ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", S3::SECRET_KEY)
            .output()
            .unwrap()
    };
    // A blob file whose bytes changed on disk is refused, named.
    let config_digest = {
        let m: Value = serde_json::from_slice(&manifest).unwrap();
        m["config"]["digest"].as_str().unwrap().to_string()
    };
    let hex = config_digest.trim_start_matches("sha256:");
    let config_file = root.join("blobs/sha256").join(&hex[..2]).join(hex);
    let good = std::fs::read(&config_file).unwrap();
    let mut bad = good.clone();
    bad[0] ^= 1;
    std::fs::write(&config_file, &bad).unwrap();
    let out = migrate();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&config_digest), "{stderr}");
    assert!(
        keys(s3, &bucket, hex).is_empty(),
        "the corrupt blob is not in the bucket"
    );
    std::fs::write(&config_file, &good).unwrap();

    let out = migrate();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(first["repositories"], 1, "{first}");
    assert!(first["directory_rows"].as_u64().unwrap() >= 2, "{first}");
    assert_eq!(first["manifests"], 3, "{first}");
    assert_eq!(first["tags"], 2, "{first}");
    let blobs = first["blobs_copied"].as_u64().unwrap() + first["blobs_present"].as_u64().unwrap();
    assert_eq!(blobs, 4, "{first}");
    // Run again: everything is there, nothing is sent.
    let out = migrate();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again["blobs_copied"], 0, "{again}");
    assert_eq!(again["blobs_present"], 4, "{again}");

    // A replica on the result serves it all, to carol (the directory moved: her
    // account and password are there, and access control applies).
    let mut args = vec!["--metadata", &url];
    let store = format!("s3://{bucket}/moved");
    let endpoint = s3.endpoint();
    args.extend(["--blob-store", &store, "--s3-endpoint", &endpoint]);
    let replica = Serve::start(
        &dir.path().join("replica"),
        &args,
        &[
            ("AWS_ACCESS_KEY_ID", S3::ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", S3::SECRET_KEY),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !matches!(try_request(&replica.addr, "GET", "/v2/", &[], b""), Ok(r) if r.status == 401) {
        assert!(Instant::now() < deadline, "the replica did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    token(
        &replica.addr,
        "carol",
        "carol-pw",
        "repository:carol/x:push",
    );
    let wrong = request(
        &replica.addr,
        "GET",
        "/token?service=berth",
        &[basic("carol", "not-her-pw")],
        b"",
    );
    assert_eq!(wrong.status, 401);
    // team/app was made public before the move: anyone reads it.
    pull_matches(
        &replica.addr,
        "team/app",
        "v1",
        dir.path(),
        &layout,
        &pushed.to_string(),
    );
    let r = request(&replica.addr, "GET", "/v2/team/app/tags/list", &[], b"");
    let tags: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(tags["tags"], json!(["multi", "v1"]));
    let r = request(
        &replica.addr,
        "GET",
        "/v2/team/app/manifests/multi",
        &[("Accept", "application/vnd.oci.image.index.v1+json".into())],
        b"",
    );
    assert_eq!(r.body, index);
    let r = request(
        &replica.addr,
        "GET",
        &format!("/v2/team/app/referrers/{pushed}"),
        &[],
        b"",
    );
    let referrers: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        referrers["manifests"][0]["digest"],
        sha256(&artifact),
        "{referrers}"
    );
}

/// Sends the head and the first `sent` bytes of a one-shot upload of `body`, then
/// leaves the connection open (the replica is killed meanwhile).
fn start_one_shot(addr: &str, repo: &str, body: &[u8], sent: usize) -> std::net::TcpStream {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST /v2/{repo}/blobs/uploads/?digest={} HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        sha256(body),
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&body[..sent]).unwrap();
    s.flush().unwrap();
    s
}

/// Three replicas; one is killed (SIGKILL) in the middle of a chunked upload and of a
/// one-shot upload. The chunked session goes on through the others from where the
/// database says it is; the one-shot blob is not visible half-written, and the client
/// retrying through another replica stores it whole. Sessions the dead replica left
/// are swept with their multipart uploads.
#[test]
fn a_replica_killed_mid_push_loses_nothing() {
    // A server of its own: its multipart uploads are this test's alone.
    let s3 = &S3::private();
    let bucket = s3.bucket();
    let url = Postgres::shared().database();
    let dir = tempfile::tempdir().unwrap();
    // Long enough that the chunked session below outlives the pauses between its
    // chunks on a loaded machine (2 s did not: the sweeper took it mid-test).
    let ttl = ["--upload-ttl", "8s"];
    let a = replica(s3, &bucket, &dir.path().join("a"), &url, &ttl);
    let b = replica(s3, &bucket, &dir.path().join("b"), &url, &ttl);
    let c = replica(s3, &bucket, &dir.path().join("c"), &url, &ttl);

    let bytes = noise(20 * 1024 * 1024).into_bytes();
    let digest = sha256(&bytes);
    let r = request(&a.addr, "POST", "/v2/team/kill/blobs/uploads/", &[], b"");
    let mut location = r.header("Location").unwrap();
    const CHUNK: usize = 9 * 1024 * 1024;
    let patch = |serve: &Serve, location: &str, i: usize| {
        let start = i * CHUNK;
        let chunk = &bytes[start..(start + CHUNK).min(bytes.len())];
        let r = request(
            &serve.addr,
            "PATCH",
            location,
            &[(
                "Content-Range",
                format!("{start}-{}", start + chunk.len() - 1),
            )],
            chunk,
        );
        assert_eq!(r.status, 202, "chunk {i} on {}", serve.addr);
        r.header("Location").unwrap()
    };
    location = patch(&a, &location, 0);

    // A one-shot upload half sent to `a`, which dies.
    let other = noise(12 * 1024 * 1024 + 3).into_bytes();
    let other_digest = sha256(&other);
    // The one-shot upload the replica is writing starts a multipart upload of its own
    // (s3s-fs keeps their parts beside the buckets; the chunked session has one
    // already); the replica dies once it has.
    let multipart = || -> Vec<String> {
        let data = s3.bucket_dir(&bucket).parent().unwrap().to_path_buf();
        std::fs::read_dir(data)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".upload"))
            .collect()
    };
    // The replica names each multipart upload in its session's state once it has
    // one: a kill before that (a few milliseconds, more on a loaded machine) would
    // leave one that only S3's lifecycle rule removes, not the sweeper tested here.
    let named = || {
        Postgres::shared().query_i64(
            &url,
            r#"SELECT count(*) FROM upload_states WHERE state LIKE '%"multipart":"%'"#,
        )
    };
    let (before, named_before) = (multipart().len(), named());
    let conn = start_one_shot(&a.addr, "team/kill", &other, 10 * 1024 * 1024);
    let deadline = Instant::now() + Duration::from_secs(20);
    while multipart().len() <= before || named() <= named_before {
        assert!(
            Instant::now() < deadline,
            "the one-shot upload started no multipart upload, or did not name it"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    a.signal("-KILL");
    drop(conn);
    drop(a);
    for serve in [&b, &c] {
        let r = request(
            &serve.addr,
            "HEAD",
            &format!("/v2/team/kill/blobs/{other_digest}"),
            &[],
            b"",
        );
        assert_eq!(r.status, 404, "nothing half-written is visible");
    }
    // The client retries through another replica.
    let r = request(
        &b.addr,
        "POST",
        &format!("/v2/team/kill/blobs/uploads/?digest={other_digest}"),
        &[],
        &other,
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));

    // The chunked session goes on through the others.
    let r = request(&c.addr, "GET", &location, &[], b"");
    assert_eq!(r.status, 204);
    assert_eq!(r.header("Range").unwrap(), format!("0-{}", CHUNK - 1));
    location = patch(&b, &location, 1);
    location = patch(&c, &location, 2);
    let sep = if location.contains('?') { '&' } else { '?' };
    let r = request(
        &c.addr,
        "PUT",
        &format!("{location}{sep}digest={digest}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    for (d, want) in [(&digest, &bytes), (&other_digest, &other)] {
        for serve in [&b, &c] {
            let r = request(
                &serve.addr,
                "GET",
                &format!("/v2/team/kill/blobs/{d}"),
                &[],
                b"",
            );
            assert_eq!(r.status, 200);
            assert!(r.body == *want, "{d} whole on {}", serve.addr);
        }
    }
    // The killed replica's session is swept with its multipart upload once its time
    // to live is over, and nothing is left under uploads/.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !multipart().is_empty() || !keys(s3, &bucket, "/uploads/").is_empty() {
        assert!(
            Instant::now() < deadline,
            "left behind: {:?} {:?}",
            multipart(),
            keys(s3, &bucket, "/uploads/")
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `Authorization: Basic` for `user:password`.
fn basic(user: &str, password: &str) -> (&'static str, String) {
    use base64::Engine as _;
    let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    ("Authorization", format!("Basic {b}"))
}

/// A token for `scope` from `addr`'s token endpoint.
fn token(addr: &str, user: &str, password: &str, scope: &str) -> String {
    let r = request(
        addr,
        "GET",
        &format!("/token?service=berth&scope={scope}"),
        &[basic(user, password)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    v["token"].as_str().unwrap().to_string()
}

/// The access-control directory lives in PostgreSQL with the metadata: replicas with
/// separate (empty) data folders know the same users, accept each other's tokens,
/// and a grant made through one replica applies on the other at once; the folders
/// hold no `auth.db` and no token key.
#[test]
fn replicas_share_the_access_control_directory() {
    let s3 = S3::shared();
    let bucket = s3.bucket();
    let url = Postgres::shared().database();
    let dir = tempfile::tempdir().unwrap();
    let (root_a, root_b) = (dir.path().join("a"), dir.path().join("b"));
    let auth = ["--auth", "required"];
    let a = replica(s3, &bucket, &root_a, &url, &auth);
    let b = replica(s3, &bucket, &root_b, &url, &auth);

    // Accounts made with the admin command on the database (BERTH_METADATA), from a
    // folder that is neither replica's.
    let root_c = dir.path().to_str().unwrap();
    let cli = |args: &[&str], stdin: &str| {
        let mut all = vec!["registry", "--root", root_c];
        all.extend_from_slice(args);
        admin_on(&url, &all, stdin);
    };
    cli(&["user", "add", "alice", "--password-stdin"], "alice-pw\n");
    cli(&["user", "add", "bob", "--password-stdin"], "bob-pw\n");

    // alice pushes through one replica and pulls byte-identical through the other.
    let layout = dir.path().join("layout");
    let layers = [registry_fixture::layer(&[("etc/shared", "one directory")])];
    let pushed = registry_fixture::write_layout(
        &layout,
        "v1",
        &layers,
        json!({"architecture": "amd64", "os": "linux"}),
    );
    skopeo_push(&layout, "v1", &a.addr, "alice/app", Some("alice:alice-pw"));
    pull_matches_as(
        &b.addr,
        "alice/app",
        "v1",
        dir.path(),
        &layout,
        &pushed.to_string(),
        Some("alice:alice-pw"),
    );

    // A token issued by one replica is accepted by the other (one signing key).
    let t = token(&a.addr, "alice", "alice-pw", "repository:alice/app:pull");
    let manifest = |addr: &str, bearer: &str| {
        request(
            addr,
            "GET",
            "/v2/alice/app/manifests/v1",
            &[
                ("Authorization", format!("Bearer {bearer}")),
                (
                    "Accept",
                    "application/vnd.oci.image.manifest.v1+json".into(),
                ),
            ],
            b"",
        )
        .status
    };
    assert_eq!(manifest(&b.addr, &t), 200);

    // bob may not read alice's private repository, on either replica…
    let bob_pull = |addr: &str| {
        manifest(
            addr,
            &token(addr, "bob", "bob-pw", "repository:alice/app:pull"),
        )
    };
    assert_ne!(bob_pull(&a.addr), 200);
    assert_ne!(bob_pull(&b.addr), 200);
    // …until alice grants it through replica a's API: then on b, at once.
    let out = Command::new(common::BERTH)
        .args(["registry", "--url", &format!("http://{}", a.addr)])
        .args([
            "--creds",
            "alice:alice-pw",
            "grant",
            "bob",
            "read",
            "alice/app",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let start = Instant::now();
    while bob_pull(&b.addr) != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "the grant made on a did not apply on b within a second"
        );
        std::thread::sleep(Duration::from_millis(5));
    }

    // Nothing of the directory is on the replicas' disks.
    for root in [&root_a, &root_b] {
        let files = walk(root);
        assert!(
            !files
                .iter()
                .any(|f| f.contains("auth.db") || f.contains("token-key")),
            "{files:?}"
        );
    }
}

/// What the load of [`three_replicas_serve_through_store_restarts`] saw.
#[derive(Default)]
struct Seen {
    ok: u64,
    unavailable: u64,
    /// Responses cut short (see the load's `record`).
    cut: u64,
    /// Anything a replica must never answer: another status, wrong bytes.
    wrong: Vec<String>,
    /// Blobs whose upload was acknowledged (201), with their bytes.
    acked: Vec<(String, Vec<u8>)>,
}

/// Three replicas under a steady load of pulls (every byte checked) and pushes while
/// the object store, then PostgreSQL, is stopped and restarted: requests answer 200 or
/// 201, or 503 UNAVAILABLE while a store is down, never anything else and never wrong
/// bytes; service resumes by itself; every acknowledged push is served byte-identical
/// by every replica afterwards.
#[test]
fn three_replicas_serve_through_store_restarts() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    let s3 = S3::private();
    let bucket = s3.bucket();
    let pg = Postgres::private();
    let url = pg.database();
    let dir = tempfile::tempdir().unwrap();
    let replicas: Vec<Serve> = (0..3)
        .map(|i| replica(&s3, &bucket, &dir.path().join(format!("r{i}")), &url, &[]))
        .collect();
    let addrs: Arc<Vec<String>> = Arc::new(replicas.iter().map(|r| r.addr.clone()).collect());

    // The image every reader pulls.
    let layout = dir.path().join("layout");
    let layers = [registry_fixture::layer(&[("etc/load", &noise(300_000))])];
    let pushed = registry_fixture::write_layout(
        &layout,
        "v1",
        &layers,
        json!({"architecture": "amd64", "os": "linux"}),
    );
    skopeo_push(&layout, "v1", &addrs[0], "team/app", None);
    let manifest = layout_blob(&layout, &pushed.to_string());
    let m: Value = serde_json::from_slice(&manifest).unwrap();
    let blobs: Vec<(String, Vec<u8>)> = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .chain([&m["config"]])
        .map(|d| {
            let d = d["digest"].as_str().unwrap().to_string();
            let bytes = layout_blob(&layout, &d);
            (d, bytes)
        })
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (stop, seen, addrs) = (stop.clone(), seen.clone(), addrs.clone());
            let (manifest, blobs) = (manifest.clone(), blobs.clone());
            std::thread::spawn(move || {
                let mut n = 0usize;
                while !stop.load(Ordering::Acquire) {
                    n += 1;
                    let addr = &addrs[(w + n) % addrs.len()];
                    let record = |what: &str,
                                  r: std::io::Result<common::process::Resp>,
                                  want: &[u8],
                                  ok: u16| {
                        let mut s = seen.lock().unwrap();
                        match r {
                            Ok(r) if r.status == ok && (want.is_empty() || r.body == want) => {
                                s.ok += 1
                            }
                            Ok(r) if r.status == 503 => s.unavailable += 1,
                            // A stream cut when the store died mid-body: shorter than
                            // its Content-Length, so every client sees it fail (the
                            // replica closes the connection; it cannot change its 200).
                            Ok(r)
                                if r.status == ok
                                    && r.header("content-length")
                                        .and_then(|l| l.parse::<usize>().ok())
                                        == Some(want.len())
                                    && r.body.len() < want.len()
                                    && want.starts_with(&r.body) =>
                            {
                                s.cut += 1
                            }
                            Ok(r) => s.wrong.push(format!(
                                "{what} on {addr}: {} ({} bytes, {} expected)\n{}\n{}",
                                r.status,
                                r.body.len(),
                                want.len(),
                                r.headers,
                                String::from_utf8_lossy(&r.body[..r.body.len().min(300)])
                            )),
                            Err(e) => s.wrong.push(format!("{what} on {addr}: {e}")),
                        }
                    };
                    let r = try_request(
                        addr,
                        "GET",
                        "/v2/team/app/manifests/v1",
                        &[(
                            "Accept",
                            "application/vnd.oci.image.manifest.v1+json".into(),
                        )],
                        b"",
                    );
                    record("GET manifest", r, &manifest, 200);
                    let (d, bytes) = &blobs[n % blobs.len()];
                    let r = try_request(addr, "GET", &format!("/v2/team/app/blobs/{d}"), &[], b"");
                    record("GET blob", r, bytes, 200);
                    // A push of new bytes, remembered when acknowledged.
                    let body = format!("worker {w} push {n}").into_bytes();
                    let d = sha256(&body);
                    let r = try_request(
                        addr,
                        "POST",
                        &format!("/v2/team/pushed/blobs/uploads/?digest={d}"),
                        &[],
                        &body,
                    );
                    if matches!(&r, Ok(r) if r.status == 201) {
                        seen.lock().unwrap().acked.push((d, body));
                    }
                    record("push", r, b"", 201);
                }
            })
        })
        .collect();

    let healthy = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        let before = seen.lock().unwrap().ok;
        while seen.lock().unwrap().ok < before + 30 {
            assert!(
                Instant::now() < deadline,
                "not serving 30 s after {what} came back"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    std::thread::sleep(Duration::from_secs(2));
    healthy("the start");
    let unavailable_before = seen.lock().unwrap().unavailable;
    s3.kill();
    std::thread::sleep(Duration::from_secs(3));
    s3.restart();
    healthy("the object store");
    let unavailable_s3 = seen.lock().unwrap().unavailable - unavailable_before;
    pg.kill();
    std::thread::sleep(Duration::from_secs(3));
    pg.restart();
    healthy("PostgreSQL");
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Release);
    for w in workers {
        w.join().unwrap();
    }

    let seen = seen.lock().unwrap();
    assert!(seen.wrong.is_empty(), "{:#?}", seen.wrong);
    assert!(
        unavailable_s3 > 0,
        "nothing answered 503 while the object store was down"
    );
    assert!(
        seen.unavailable > unavailable_s3,
        "nothing answered 503 while PostgreSQL was down"
    );
    assert!(
        seen.acked.len() > 20,
        "{} pushes acknowledged",
        seen.acked.len()
    );
    for (d, bytes) in &seen.acked {
        for addr in addrs.iter() {
            let r = request(addr, "GET", &format!("/v2/team/pushed/blobs/{d}"), &[], b"");
            assert_eq!(r.status, 200, "{d} acknowledged, then not served by {addr}");
            assert_eq!(&r.body, bytes, "{d} from {addr}");
        }
    }
    eprintln!(
        "load: {} answered, {} 503 while a store was down, {} cut short, {} pushes acknowledged",
        seen.ok,
        seen.unavailable,
        seen.cut,
        seen.acked.len()
    );
}

/// Each replica keeps its own catalog, and each follows the others: images pushed
/// through one are found in another's search, with their inventory; a tag deleted
/// through the first takes its image's packages out of the other's search text (made
/// from the tagged images), and a manifest's delete takes the image out altogether.
#[test]
fn every_replicas_catalog_follows_pushes_and_deletes_made_on_another() {
    let s3 = S3::shared();
    let bucket = s3.bucket();
    let url = Postgres::shared().database();
    let dir = tempfile::tempdir().unwrap();
    let a = replica(s3, &bucket, &dir.path().join("a"), &url, &[]);
    let b = replica(s3, &bucket, &dir.path().join("b"), &url, &[]);

    // Two Debian-like images, one with openssl, one with curl, each with its tag.
    let layout = dir.path().join("layout");
    let mut pushed = Vec::new();
    for (tag, package) in [("1.0", "openssl"), ("2.0", "curl")] {
        let status = registry_fixture::dpkg_status(&[(package, "3.0.9-1", None)]);
        pushed.push(registry_fixture::write_layout(
            &layout,
            tag,
            &[registry_fixture::layer(&[
                ("etc/os-release", registry_fixture::DEBIAN_OS_RELEASE),
                ("var/lib/dpkg/status", &status),
            ])],
            json!({"architecture": "amd64", "os": "linux"}),
        ));
        skopeo_push(&layout, tag, &a.addr, "team/tls", None);
    }

    // The repositories b's search finds for `query`.
    let found = |query: &str| -> Vec<String> {
        let path = format!("/api/v1/catalog/search?{query}");
        let r = request(&b.addr, "GET", &path, &[], b"");
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["repository"].as_str().unwrap().to_string())
            .collect()
    };
    let wait = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done() {
            assert!(Instant::now() < deadline, "{what}: not within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait("b's search finds both of a's pushes", &|| {
        ["q=openssl", "q=curl", "package=openssl", "package=curl"]
            .iter()
            .all(|q| found(q) == ["team/tls"])
    });
    let packages = format!(
        "/api/v1/repositories/team/tls/manifests/{}/packages",
        pushed[0]
    );
    let r = request(&b.addr, "GET", &packages, &[], b"");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert!(v.to_string().contains("openssl"), "{v}");

    // A tag deleted through a: the repository's text (made from its tagged images) no
    // longer has the untagged image's packages; the image is still stored.
    let r = request(&a.addr, "DELETE", "/v2/team/tls/manifests/1.0", &[], b"");
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    wait("b's search text drops the untagged image", &|| {
        found("q=openssl").is_empty()
    });
    assert_eq!(found("q=curl"), ["team/tls"]);
    assert_eq!(found("package=openssl"), ["team/tls"]);
    // A manifest deleted through a.
    let r = request(
        &a.addr,
        "DELETE",
        &format!("/v2/team/tls/manifests/{}", pushed[1]),
        &[],
        b"",
    );
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    wait("b's search forgets the deleted image", &|| {
        found("package=curl").is_empty()
    });
    assert_eq!(found("package=openssl"), ["team/tls"]);
}
