//! Replicas on a three-node Garage cluster (the distributed S3 store, every object on
//! all three nodes) and PostgreSQL, each replica talking to a node of its own: skopeo
//! pushes through one and pulls byte-identical through another, with a node down
//! pushes and pulls go on, and a replica whose own node is down answers 503 while the
//! others serve, then serves again when it is back.
//!
//! Long mode (Garage takes 30-45 minutes to build): `scripts/long-tests garage`, or
//! `cargo test -p berth --test garage -- --ignored`.

use std::path::Path;
use std::time::{Duration, Instant};

use berth_testenv::{Garage, Postgres};
use serde_json::{json, Value};

mod common;
#[path = "common/registry_fixture.rs"]
mod registry_fixture;

use common::process::{try_request, Serve};
use registry_fixture::{noise, pull_matches, skopeo_push};

fn replica(garage: &Garage, node: usize, root: &Path, metadata: &str) -> Serve {
    let store = format!("s3://{}/registry", garage.bucket());
    let endpoint = garage.endpoint(node);
    let (key, secret) = garage.credentials();
    let serve = Serve::start(
        root,
        &[
            "--metadata",
            metadata,
            "--blob-store",
            &store,
            "--s3-endpoint",
            &endpoint,
            "--s3-region",
            Garage::REGION,
        ],
        &[
            ("AWS_ACCESS_KEY_ID", key),
            ("AWS_SECRET_ACCESS_KEY", secret),
        ],
    );
    serve.wait_ready();
    serve
}

/// Pushes a new image `tag` through `from` and pulls it through `to`, checking every
/// byte.
fn push_and_pull(dir: &Path, from: &str, to: &str, tag: &str, big: bool) {
    let layout = dir.join(format!("layout-{tag}"));
    let content = if big {
        noise(20 * 1024 * 1024)
    } else {
        format!("image {tag}")
    };
    let layers = [registry_fixture::layer(&[("etc/garage", &content)])];
    let pushed = registry_fixture::write_layout(
        &layout,
        tag,
        &layers,
        json!({"architecture": "amd64", "os": "linux"}),
    );
    skopeo_push(&layout, tag, from, "team/app", None);
    pull_matches(to, "team/app", tag, dir, &layout, &pushed.to_string());
}

fn status(addr: &str, path: &str) -> Option<u16> {
    try_request(addr, "GET", path, &[], b"")
        .ok()
        .map(|r| r.status)
}

#[test]
#[ignore = "long mode: needs Garage (cargo install --locked garage); scripts/long-tests garage"]
fn replicas_on_a_three_node_garage_cluster() {
    let garage = Garage::cluster();
    let url = Postgres::shared().database();
    let dir = tempfile::tempdir().unwrap();
    let a = replica(&garage, 0, &dir.path().join("a"), &url);
    let b = replica(&garage, 1, &dir.path().join("b"), &url);

    // A layer of several 8 MiB parts through node 0, read back through node 1.
    push_and_pull(dir.path(), &a.addr, &b.addr, "v1", true);

    // Node 2 down: two of three nodes still make a quorum, for writes and reads.
    garage.kill(2);
    push_and_pull(dir.path(), &a.addr, &b.addr, "v2", false);
    garage.restart(2);

    // Node 0 down: replica a cannot reach its store and says so (503); replica b
    // serves everything, old and new.
    garage.kill(0);
    let blob_path = {
        let r = common::process::request(
            &b.addr,
            "GET",
            "/v2/team/app/manifests/v1",
            &[(
                "Accept",
                "application/vnd.oci.image.manifest.v1+json".into(),
            )],
            b"",
        );
        let m: Value = serde_json::from_slice(&r.body).unwrap();
        format!(
            "/v2/team/app/blobs/{}",
            m["layers"][0]["digest"].as_str().unwrap()
        )
    };
    assert_eq!(status(&a.addr, &blob_path), Some(503));
    // Node 1 serves with node 2 once Garage has reconnected the node restarted above
    // (measured: from 50 ms to 30 s, Garage's reconnection period).
    let start = Instant::now();
    while status(&b.addr, &blob_path) != Some(200) {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "replica b not serving with node 0 down:\n{}",
            garage.status(1)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!(
        "replica b served with node 0 down after {:?}",
        start.elapsed()
    );
    push_and_pull(dir.path(), &b.addr, &b.addr, "v3", false);
    garage.restart(0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while status(&a.addr, &blob_path) != Some(200) {
        assert!(
            Instant::now() < deadline,
            "replica a not serving 60 s after its node came back:\n{}",
            garage.log(0)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    push_and_pull(dir.path(), &a.addr, &b.addr, "v4", false);
}
