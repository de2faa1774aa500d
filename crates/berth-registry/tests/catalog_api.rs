//! The catalog API's states that a running `berth serve` passes through too quickly to
//! test from outside: an in-process registry whose scan worker is not started, so a
//! pushed image stays "pending" until the test runs the scan itself; an index;
//! a registry with the catalog turned off; malformed requests.
//! (Every route's answers on real images: crates/berth/tests/catalog_api.rs.)

#[path = "api/support.rs"]
mod support;

use serde_json::Value;
use support::*;

async fn json_of(resp: reqwest::Response, status: u16) -> Value {
    let (_, body) = expect_status(resp, status).await;
    serde_json::from_slice(&body).expect("a JSON body")
}

/// Scans every manifest now, as `berth registry scan --all` does.
async fn scan_all(server: &Server) {
    let catalog = server.reg.catalog().expect("the catalog is on").clone();
    tokio::task::spawn_blocking(move || {
        berth_catalog::scan_request(&catalog, catalog.meta_store().as_ref(), true, None, None)
    })
    .await
    .unwrap()
    .expect("the scan runs");
}

#[tokio::test]
async fn pending_then_failed_and_indexes_name_their_images() {
    let server = Server::start().await;
    // A layer that is not a tar archive: the scan will fail on it.
    let img = push_image(&server, "team/app", Some("1.0"), 1).await;
    let path = format!("/api/v1/repositories/team/app/manifests/{}", img.digest);

    // Nothing scanned yet: 202 and "pending", on the overview and on every part.
    let over = json_of(send(server.get(&path)).await, 202).await;
    assert_eq!(over["status"], "pending", "{over:#}");
    for part in ["packages", "vulnerabilities", "containerfile", "sbom"] {
        let v = json_of(send(server.get(&format!("{path}/{part}"))).await, 202).await;
        assert_eq!(v["status"], "pending", "{part}: {v:#}");
        assert_eq!(v["digest"], img.digest.as_str());
    }
    let repo = json_of(send(server.get("/api/v1/repositories/team/app")).await, 200).await;
    assert_eq!(
        repo["tags"][0]["images"][0]["status"], "pending",
        "{repo:#}"
    );

    // Scanned: the failure and its reason, everywhere.
    scan_all(&server).await;
    let over = json_of(send(server.get(&path)).await, 200).await;
    assert_eq!(over["status"], "failed", "{over:#}");
    let why = over["error"].as_str().unwrap().to_string();
    assert!(why.contains("layer 0"), "{why}");
    for part in ["packages", "vulnerabilities", "containerfile", "sbom"] {
        let v = json_of(send(server.get(&format!("{path}/{part}"))).await, 422).await;
        assert_eq!(v["status"], "failed", "{part}: {v:#}");
        assert!(v["error"].as_str().unwrap().contains("layer 0"), "{v:#}");
    }

    // An index: its parts are its images'.
    let other = push_image(&server, "team/app", None, 2).await;
    let index = manifest_bytes(&index_manifest(
        OCI_INDEX,
        &[img.desc.clone(), other.desc.clone()],
    ));
    push_manifest(&server, "team/app", "multi", OCI_INDEX, &index).await;
    scan_all(&server).await;
    let index_digest = sha256(&index);
    let resp = send(server.get(&format!(
        "/api/v1/repositories/team/app/manifests/{index_digest}/packages"
    )))
    .await;
    let body = expect_error(resp, 400, "UNSUPPORTED").await;
    let detail = body["errors"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("is an index"), "{detail}");
    assert!(
        detail.contains(&img.digest) && detail.contains(&other.digest),
        "{detail}"
    );
    let over = json_of(
        send(server.get(&format!(
            "/api/v1/repositories/team/app/manifests/{index_digest}"
        )))
        .await,
        200,
    )
    .await;
    assert_eq!(over["images"].as_array().unwrap().len(), 2, "{over:#}");
}

#[tokio::test]
async fn malformed_requests_are_refused_precisely() {
    let server = Server::start().await;
    let img = push_image(&server, "team/app", Some("1.0"), 1).await;
    let cases = [
        ("/api/v1/repositories/Team/App", 400, "NAME_INVALID"),
        ("/api/v1/repositories/team/none", 404, "NAME_UNKNOWN"),
        ("/api/v1/repositories/team/app/manifests/sha256:12", 400, "DIGEST_INVALID"),
        (
            "/api/v1/repositories/team/app/manifests/sha256:0000000000000000000000000000000000000000000000000000000000000000",
            404,
            "MANIFEST_UNKNOWN",
        ),
    ];
    for (path, status, code) in cases {
        expect_error(send(server.get(path)).await, status, code).await;
    }
    let unknown_part = format!(
        "/api/v1/repositories/team/app/manifests/{}/layers",
        img.digest
    );
    expect_error(send(server.get(&unknown_part)).await, 404, "UNSUPPORTED").await;
    let bad_filter = format!(
        "/api/v1/repositories/team/app/manifests/{}/vulnerabilities?fixable=maybe",
        img.digest
    );
    let body = expect_error(send(server.get(&bad_filter)).await, 400, "UNSUPPORTED").await;
    assert!(body["errors"][0]["detail"]
        .as_str()
        .unwrap()
        .contains("fixable=maybe"));
    expect_error(
        send(server.post("/api/v1/repositories/team/app")).await,
        405,
        "UNSUPPORTED",
    )
    .await;
    // The administration API's `GET /api/v1/repositories?q=` is still its own (it
    // asks for Basic credentials; this API would not).
    let resp = send(server.get("/api/v1/repositories?q=team")).await;
    let (status, body) = (resp.status().as_u16(), resp.text().await.unwrap());
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("Basic credentials"), "{body}");
    // Open registry (no users): changing the allow-list still needs a valid body.
    let entry = "/api/v1/repositories/team/app/allowlist/CVE-2024-1";
    let resp = send(server.put(entry).body("{}")).await;
    let body = expect_error(resp, 400, "UNSUPPORTED").await;
    assert!(body["errors"][0]["detail"]
        .as_str()
        .unwrap()
        .contains("reason"));
    let resp = send(
        server
            .put("/api/v1/repositories/team/app/allowlist/bad%20id")
            .body("{}"),
    )
    .await;
    expect_error(resp, 400, "UNSUPPORTED").await;
}

#[tokio::test]
async fn a_registry_without_the_catalog_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_configured(dir, |c| c.catalog = false).await;
    push_image(&server, "team/app", Some("1.0"), 1).await;
    let body = expect_error(
        send(server.get("/api/v1/repositories/team/app")).await,
        404,
        "UNSUPPORTED",
    )
    .await;
    assert!(body["errors"][0]["detail"]
        .as_str()
        .unwrap()
        .contains("turned off"));
}
