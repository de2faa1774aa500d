//! `berth serve --metadata postgres://…`: the metadata in a real PostgreSQL (a
//! throw-away cluster from Debian's package, crates/berth-testenv) instead of
//! `meta.db`. Two replicas share one database (and, until blobs move to object
//! storage, one data folder): skopeo pushes through one and pulls byte-identical
//! through the other, a chunked upload's requests alternate between them, a tag moved
//! on one is served moved by the other at once. PostgreSQL stopped under a running
//! server: requests answer 503 UNAVAILABLE with the reason, and the server serves
//! again by itself once the database is back.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_testenv::Postgres;
use serde_json::{json, Value};

mod common;
#[path = "common/registry_fixture.rs"]
mod registry_fixture;

use common::process::{request, try_request, Serve};
use common::sha256;
use registry_fixture::{layout_blob, skopeo, skopeo_push};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn replica(root: &Path, url: &str) -> Serve {
    let serve = Serve::start(root, &["--metadata", url], &[]);
    serve.wait_ready();
    serve
}

fn manifest_digest(addr: &str, repo: &str, tag: &str) -> Option<String> {
    let r = request(
        addr,
        "GET",
        &format!("/v2/{repo}/manifests/{tag}"),
        &[("Accept", OCI_MANIFEST.to_string())],
        b"",
    );
    (r.status == 200).then(|| sha256(&r.body))
}

#[test]
fn two_replicas_share_one_database() {
    let url = Postgres::shared().database();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let a = replica(&root, &url);
    let b = replica(&root, &url);
    assert!(
        !root.join("meta.db").exists(),
        "the metadata went to meta.db, not PostgreSQL"
    );

    // skopeo pushes through one replica and pulls through the other, byte for byte.
    let layout = dir.path().join("layout");
    let layers = [
        registry_fixture::layer(&[("etc/hello", "hello from postgres")]),
        registry_fixture::layer(&[("usr/share/doc/x", "second layer")]),
    ];
    let pushed = registry_fixture::write_layout(
        &layout,
        "v1",
        &layers,
        json!({"architecture": "amd64", "os": "linux"}),
    );
    skopeo_push(&layout, "v1", &a.addr, "team/app", None);
    let back = dir.path().join("back");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}/team/app:v1", b.addr),
        &format!("oci:{}:v1", back.display()),
    ]);
    let manifest = layout_blob(&back, &pushed.to_string());
    assert_eq!(manifest, layout_blob(&layout, &pushed.to_string()));
    let m: Value = serde_json::from_slice(&manifest).unwrap();
    for d in m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .chain([&m["config"]])
        .map(|d| d["digest"].as_str().unwrap())
    {
        assert_eq!(layout_blob(&back, d), layout_blob(&layout, d), "{d}");
    }
    for serve in [&a, &b] {
        let r = request(&serve.addr, "GET", "/v2/team/app/tags/list", &[], b"");
        assert_eq!(r.status, 200);
        let tags: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(tags["tags"], json!(["v1"]));
        let r = request(&serve.addr, "GET", "/v2/_catalog", &[], b"");
        let catalog: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(catalog["repositories"], json!(["team/app"]));
    }

    // A chunked upload whose requests alternate between the replicas.
    let bytes = common::process::data(300_000, 7);
    let digest = sha256(&bytes);
    let r = request(&a.addr, "POST", "/v2/team/chunks/blobs/uploads/", &[], b"");
    assert_eq!(r.status, 202);
    let mut location = r.header("Location").unwrap();
    for (i, chunk) in bytes.chunks(100_000).enumerate() {
        let serve = [&b, &a][i % 2];
        let start = i * 100_000;
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
    }
    let sep = if location.contains('?') { '&' } else { '?' };
    let r = request(
        &b.addr,
        "PUT",
        &format!("{location}{sep}digest={digest}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let r = request(
        &a.addr,
        "GET",
        &format!("/v2/team/chunks/blobs/{digest}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, bytes);

    // A tag moved through one replica is moved on the other at once (no cache).
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_digest = common::process::push_blob(&b.addr, "team/app", config);
    let second = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": [],
    }))
    .unwrap();
    let r = request(
        &b.addr,
        "PUT",
        "/v2/team/app/manifests/v1",
        &[("Content-Type", OCI_MANIFEST.into())],
        &second,
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        manifest_digest(&a.addr, "team/app", "v1"),
        Some(sha256(&second))
    );

    // The folder commands find the metadata where BERTH_METADATA says: fsck re-hashes
    // every blob the database names and finds nothing wrong.
    let out = Command::new(common::BERTH)
        .args(["registry", "--root"])
        .arg(&root)
        .arg("fsck")
        .env("BERTH_METADATA", &url)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert!(report["rows_checked"].as_u64().unwrap() >= 5, "{report}");
    assert_eq!(report["problems"], 0, "{report}");
}

#[test]
fn a_stopped_database_answers_503_and_the_server_recovers() {
    let pg = Postgres::private();
    let url = pg.database();
    let dir = tempfile::tempdir().unwrap();
    let serve = replica(&dir.path().join("root"), &url);
    let blob = common::process::push_blob(&serve.addr, "app", b"kept across a restart");
    let path = format!("/v2/app/blobs/{blob}");
    assert_eq!(request(&serve.addr, "GET", &path, &[], b"").status, 200);

    pg.kill();
    let r = request(&serve.addr, "GET", &path, &[], b"");
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["errors"][0]["code"], "UNAVAILABLE");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("metadata database"),
        "{body}"
    );
    // Writes too, and nothing half-done is left behind.
    let r = request(
        &serve.addr,
        "POST",
        &format!("/v2/app/blobs/uploads/?digest={}", sha256(b"new")),
        &[],
        b"new",
    );
    assert_eq!(r.status, 503);

    pg.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match try_request(&serve.addr, "GET", &path, &[], b"") {
            Ok(r) if r.status == 200 => {
                assert_eq!(r.body, b"kept across a restart");
                break;
            }
            other => assert!(
                Instant::now() < deadline,
                "not serving 30 s after PostgreSQL came back: {:?}\nPostgreSQL's log:\n{}",
                other.map(|r| (r.status, String::from_utf8_lossy(&r.body).into_owned())),
                pg.log()
            ),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // And writes again, without a restart of berth.
    common::process::push_blob(&serve.addr, "app", b"new");
}

/// The metadata over TLS, set in the URL as for psql (`sslmode=verify-full`,
/// `sslrootcert`): skopeo pushes and pulls byte-identical, and the server sees every
/// connection of berth's (the pool's and the directory's listener) encrypted. A CA
/// file that does not exist stops the start with its name.
#[test]
fn metadata_over_tls_as_the_url_says() {
    let pg = Postgres::private_tls();
    let plain = pg.database();
    let ca = pg.certificate().unwrap().display().to_string();
    let url = format!("{plain}?sslmode=verify-full&sslrootcert={ca}");
    let dir = tempfile::tempdir().unwrap();
    let serve = replica(&dir.path().join("root"), &url);
    let layout = dir.path().join("layout");
    let pushed = registry_fixture::write_layout(
        &layout,
        "v1",
        &[registry_fixture::layer(&[("etc/tls", "over TLS")])],
        json!({"architecture": "amd64", "os": "linux"}),
    );
    skopeo_push(&layout, "v1", &serve.addr, "team/tls", None);
    registry_fixture::pull_matches(
        &serve.addr,
        "team/tls",
        "v1",
        dir.path(),
        &layout,
        &pushed.to_string(),
    );
    // The server's view of this database's connections.
    let seen = pg.encrypted_connections(&plain);
    assert!(seen.len() >= 2, "berth's connections: {seen:?}");
    assert!(
        seen.iter().all(|ssl| *ssl),
        "a plaintext connection: {seen:?}"
    );
    drop(serve);

    let out = Command::new(common::BERTH)
        .args(["serve", "--listen", "127.0.0.1:0", "--root"])
        .arg(dir.path().join("other"))
        .args([
            "--metadata",
            &format!("{plain}?sslmode=require&sslrootcert=/nonexistent/ca.pem"),
        ])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(said.contains("sslrootcert /nonexistent/ca.pem"), "{said}");
}

/// `--metadata-connections` bounds the replica's pool: 16 clients reading at once
/// through a replica allowed 2 connections leave PostgreSQL with at most 2 backends
/// that ever served the blob lookup (the default, 4 at least, opens more under that
/// load), and every read is answered.
#[test]
fn the_metadata_pool_is_as_large_as_configured() {
    let url = Postgres::shared().database();
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        &dir.path().join("root"),
        &["--metadata", &url, "--metadata-connections", "2"],
        &[],
    );
    serve.wait_ready();
    let blob = common::process::push_blob(&serve.addr, "app", b"read by many at once");
    let path = format!("/v2/app/blobs/{blob}");
    std::thread::scope(|s| {
        for _ in 0..16 {
            s.spawn(|| {
                for _ in 0..50 {
                    let r = request(&serve.addr, "GET", &path, &[], b"");
                    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
                }
            });
        }
    });
    let lookups = Postgres::shared().query_i64(
        &url,
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()
           AND query LIKE '%JOIN repository_blobs rb%'",
    );
    assert!(
        (1..=2).contains(&lookups),
        "{lookups} connections served the blob lookup, with --metadata-connections 2"
    );
}
