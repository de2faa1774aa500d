//! The catalog API's states that a running `berth serve` passes through too quickly to
//! test from outside: an in-process registry whose scan worker is not started, so a
//! pushed image stays "pending" until the test runs the scan itself; an index;
//! a registry with the catalog turned off; malformed requests.
//! (Every route's answers on real images: crates/berth/tests/catalog_api.rs.)

#[path = "api/support.rs"]
mod support;

#[path = "api/accounts.rs"]
mod accounts;

use berth_auth::{Actor, Change, Level, Secret, Visibility};
use serde_json::{json, Value};
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

/// A layer: an uncompressed tar archive holding one file, `name`.
fn tar_layer(name: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, name, &b"x"[..]).unwrap();
    b.into_inner().unwrap()
}

/// Pushes an image of `layers` (its config naming their diff_ids) to `repo:tag`, with
/// `annotations` on its manifest when given; the manifest's digest.
async fn push_layers(
    api: &Api,
    repo: &str,
    tag: &str,
    layers: &[&[u8]],
    annotations: Option<Value>,
) -> String {
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256(l)).collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    push_blob(api, repo, &config).await;
    let mut descs = Vec::new();
    for l in layers {
        push_blob(api, repo, l).await;
        descs.push(Desc::of("application/vnd.oci.image.layer.v1.tar", l));
    }
    let mut m = image_manifest(&Desc::of(OCI_CONFIG, &config), &descs);
    if let Some(a) = annotations {
        m["annotations"] = a;
    }
    let bytes = manifest_bytes(&m);
    push_manifest(api, repo, tag, OCI_MANIFEST, &bytes).await;
    sha256(&bytes)
}

/// An image's base found by its layers in a private repository is left out for
/// callers who may not read it, and shown to those who may. A base named by the
/// image's annotations is shown as written to everyone, whatever it names: hiding it
/// when it named a repository that exists, as was done, told anyone who pushed such
/// an image whether a private repository exists.
#[tokio::test]
async fn base_images_show_what_the_caller_may_know() {
    let srv = Server::start().await;
    let (l1, l2, l3) = (tar_layer("one"), tar_layer("two"), tar_layer("three"));
    // Pushed while no account exists (access control is off).
    let base = push_layers(&srv.api, "team/secret", "v1", &[&l1], None).await;
    scan_all(&srv).await;
    let on_layers = push_layers(&srv.api, "pub/app", "layered", &[&l1, &l2], None).await;
    let named = |name: &str| {
        Some(json!({
            "org.opencontainers.image.base.name": name,
            "org.opencontainers.image.base.digest": base,
        }))
    };
    let naming_secret = push_layers(&srv.api, "pub/app", "a", &[&l3], named("team/secret")).await;
    let naming_nothing =
        push_layers(&srv.api, "pub/app", "b", &[&l3, &l2], named("team/none")).await;
    scan_all(&srv).await;

    for (u, password) in [("root", "root-pw"), ("alice", "alice-pw")] {
        accounts::apply(
            &srv,
            &Actor::local(),
            Change::UserAdd {
                name: u.into(),
                password: Secret(password.into()),
                superuser: u == "root",
            },
        );
    }
    accounts::apply(
        &srv,
        &Actor::local(),
        Change::RepoVisibility {
            repository: "pub/app".into(),
            visibility: Visibility::Public,
        },
    );
    accounts::apply(
        &srv,
        &Actor::local(),
        Change::Grant {
            subject: "alice".into(),
            level: Level::Read,
            target: "team/secret".into(),
        },
    );
    let alice = accounts::as_user(&srv, "alice");
    let base_of = |api: &Api, digest: &str| {
        let path = format!("/api/v1/repositories/pub/app/manifests/{digest}");
        let req = api.get(&path);
        async move {
            let v = json_of(send(req).await, 200).await;
            v["images"][0]["base_image"].clone()
        }
    };
    // Found by layers in team/secret: hidden from anonymous callers only.
    assert_eq!(base_of(&srv.api, &on_layers).await, Value::Null);
    assert_eq!(
        base_of(&alice, &on_layers).await,
        format!("team/secret@{base}")
    );
    // Named by annotations: as written, to everyone, the name existing or not.
    for (digest, name) in [
        (&naming_secret, "team/secret"),
        (&naming_nothing, "team/none"),
    ] {
        for api in [&srv.api, &alice] {
            assert_eq!(
                base_of(api, digest).await,
                format!("{name}@{base}"),
                "{name}"
            );
        }
    }
}
