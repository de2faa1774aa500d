//! The catalog through `berth serve`: an image with a dpkg status and an os-release
//! layer, written as an `oci:` folder here and pushed with `berth copy`, is
//! inventoried in the background (the push does not wait); OSV data imported with
//! `berth registry vulndb import --url` gives findings with no layer read again (the
//! server's layer counter stays put); a layer that fails analysis is recorded with
//! its reason, `berth registry scan` retries it, and the server keeps serving.

use serde_json::{json, Value};

mod common;
#[path = "common/registry_fixture.rs"]
mod registry_fixture;

use common::admin;
use registry_fixture::{
    berth, dpkg_status, layer, ok, push_unreadable, until, write_layout, Serve, DEBIAN_OS_RELEASE,
    OCI_MANIFEST,
};

const USER: &str = "root";
const PASSWORD: &str = "catalog-test-pw";

/// `GET /api/v1/catalog/status` as the superuser.
async fn catalog_status(serve: &Serve) -> Value {
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/catalog/status", serve.url))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_images_are_inventoried_matched_and_failures_recorded() {
    let root = tempfile::tempdir().unwrap();
    let root_s = root.path().to_str().unwrap();
    let out = admin(
        &[
            "user",
            "add",
            USER,
            "--superuser",
            "--password-stdin",
            "--root",
            root_s,
        ],
        PASSWORD,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let serve = Serve::start(root.path(), &[]).await;
    let creds = format!("{USER}:{PASSWORD}");

    // A Debian-like image: os-release and a dpkg status database.
    let status_file = dpkg_status(&[
        ("libc6", "2.36-9", Some("glibc")),
        ("openssl", "3.0.9-1", None),
    ]);
    let oci = tempfile::tempdir().unwrap();
    let digest = write_layout(
        oci.path(),
        "1.0",
        &[layer(&[
            ("etc/os-release", DEBIAN_OS_RELEASE),
            ("var/lib/dpkg/status", &status_file),
        ])],
        json!({"architecture": "amd64", "os": "linux",
            "history": [{"created_by": "/bin/sh -c #(nop) ADD file:rootfs in / "}]}),
    );
    ok(berth(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        &creds,
        &format!("oci:{}:1.0", oci.path().display()),
        &format!("docker://{}/team/app:1.0", serve.addr),
    ]));

    // The inventory appears in the background.
    let db = berth_catalog::CatalogDb::open(&root.path().join("catalog.db")).unwrap();
    until("the inventory", || {
        let found = db.inventory(&digest.to_string()).unwrap().is_some();
        async move { found }
    })
    .await;
    let inv = db.inventory(&digest.to_string()).unwrap().unwrap();
    let inv = inv.result.expect("the scan succeeded");
    let packages: Vec<_> = inv
        .packages
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                p.version.as_str(),
                p.source_name.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        packages,
        [
            ("libc6", "2.36-9", Some("glibc")),
            ("openssl", "3.0.9-1", Some("openssl"))
        ]
    );
    assert_eq!(inv.os.unwrap().ecosystem.as_deref(), Some("Debian:12"));
    let analyzed = catalog_status(&serve).await["layers_analyzed"]
        .as_u64()
        .unwrap();
    assert_eq!(analyzed, 1);

    let metrics = reqwest::get(format!("{}/metrics", serve.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("berth_catalog_events{event=\"layers_analyzed\"} 1"),
        "{metrics}"
    );

    // The search API finds it by package, for a caller who may read it only.
    let search = |q: &'static str, auth: bool| {
        let url = format!("{}/api/v1/catalog/search?{q}", serve.url);
        async move {
            let mut rb = reqwest::Client::new().get(url);
            if auth {
                rb = rb.basic_auth(USER, Some(PASSWORD));
            }
            let v: Value = rb.send().await.unwrap().json().await.unwrap();
            v["results"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|h| h["repository"].as_str().unwrap().to_string())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        }
    };
    assert_eq!(search("package=openssl", true).await, ["team/app"]);
    assert!(
        search("package=openssl", false).await.is_empty(),
        "private to anonymous callers"
    );

    // A bad parameter is a 400 in the /v2/ error body, as the rest of the catalog API.
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/catalog/search?page=two", serve.url))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["errors"][0]["detail"]
            .as_str()
            .unwrap_or("")
            .contains("page=two"),
        "{v}"
    );

    // OSV data through the API: findings appear, no layer is read again.
    let data = tempfile::tempdir().unwrap();
    let osv = data.path().join("DSA-5532-1.json");
    std::fs::write(
        &osv,
        json!({
            "id": "DSA-5532-1", "modified": "2024-02-01T00:00:00Z", "published": "2024-01-10T00:00:00Z",
            "aliases": ["CVE-2023-5363"],
            "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
            "affected": [{"package": {"ecosystem": "Debian:12", "name": "openssl"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.0.11-1~deb12u2"}]}]}]
        })
        .to_string(),
    )
    .unwrap();
    let report: Value = serde_json::from_str(&ok(berth(&[
        "registry",
        "vulndb",
        "import",
        "--url",
        &serve.url,
        "--creds",
        &creds,
        osv.to_str().unwrap(),
    ])))
    .unwrap();
    assert_eq!(report[0]["rematch"]["images"], 1, "{report}");
    let findings = db.findings(&digest.to_string()).unwrap();
    let ids: Vec<_> = findings.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids, ["DSA-5532-1"]);
    let now = catalog_status(&serve).await;
    assert_eq!(now["layers_analyzed"], 1, "a rematch reads no layer: {now}");
    assert_eq!(now["rematched"], 1);
    assert_eq!(search("cve=CVE-2023-5363", true).await, ["team/app"]);

    // The same on the folder, beside the running server: a second record (glibc, by
    // source name) adds a finding.
    let glibc = data.path().join("DEBIAN-CVE-2024-2961.json");
    std::fs::write(
        &glibc,
        json!({
            "id": "DEBIAN-CVE-2024-2961", "modified": "2024-04-20T00:00:00Z",
            "affected": [{"package": {"ecosystem": "Debian:12", "name": "glibc"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.36-9+deb12u7"}]}]}]
        })
        .to_string(),
    )
    .unwrap();
    let out = admin(
        &[
            "vulndb",
            "import",
            "--root",
            root_s,
            glibc.to_str().unwrap(),
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut ids: Vec<_> = db
        .findings(&digest.to_string())
        .unwrap()
        .into_iter()
        .map(|f| (f.id, f.package))
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            ("DEBIAN-CVE-2024-2961".to_string(), "libc6".to_string()),
            ("DSA-5532-1".to_string(), "openssl".to_string())
        ]
    );
    assert_eq!(catalog_status(&serve).await["layers_analyzed"], 1);

    // `berth list-tags --sort semver`: the catalog's order on the client side.
    let (status_code, bytes) = {
        let r = reqwest::Client::new()
            .get(format!("{}/v2/team/app/manifests/1.0", serve.url))
            .basic_auth(USER, Some(PASSWORD))
            .header("accept", OCI_MANIFEST)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.bytes().await.unwrap())
    };
    assert_eq!(status_code, 200);
    for tag in [
        "1.9.2",
        "latest",
        "v1.10.0",
        "1.10.0-rc1",
        "2.0.0-beta.2",
        "2.0.0-beta.11",
    ] {
        let r = reqwest::Client::new()
            .put(format!("{}/v2/team/app/manifests/{tag}", serve.url))
            .basic_auth(USER, Some(PASSWORD))
            .header("content-type", OCI_MANIFEST)
            .body(bytes.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
    }
    let listed: Value = serde_json::from_str(&ok(berth(&[
        "list-tags",
        "--tls-verify=false",
        "--creds",
        &creds,
        "--sort",
        "semver",
        &format!("docker://{}/team/app", serve.addr),
    ])))
    .unwrap();
    assert_eq!(
        listed["Tags"],
        json!([
            "2.0.0-beta.11",
            "2.0.0-beta.2",
            "v1.10.0",
            "1.10.0-rc1",
            "1.9.2",
            "1.0",
            "latest"
        ])
    );

    // A layer that cannot be read: recorded with its reason; the server keeps serving.
    let bad = push_unreadable(&serve, "broken/img", "v1", (USER, PASSWORD)).await;
    let http = reqwest::Client::new();
    until("the failed scan", || {
        let rec = db.scan("broken/img", &bad.to_string()).unwrap();
        async move { rec.is_some() }
    })
    .await;
    let rec = db.scan("broken/img", &bad.to_string()).unwrap().unwrap();
    assert_eq!(rec.status, berth_catalog::ScanStatus::Failed);
    let why = rec.error.unwrap();
    assert!(why.contains("layer 0"), "{why}");
    let r = http
        .get(format!("{}/v2/team/app/manifests/1.0", serve.url))
        .basic_auth(USER, Some(PASSWORD))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "the server keeps serving");

    // `berth registry scan` retries it (and says why it still fails).
    let report: Value = serde_json::from_str(&ok(berth(&[
        "registry", "scan", "--url", &serve.url, "--creds", &creds,
    ])))
    .unwrap();
    assert_eq!(report["failed"], 1, "{report}");
    assert_eq!(report["failures"][0]["repository"], "broken/img");
    assert_eq!(
        catalog_status(&serve).await["layers_analyzed"],
        3,
        "the failed layer was read again"
    );
    // A tag that does not exist is a precise error.
    let out = berth(&[
        "registry",
        "scan",
        "--url",
        &serve.url,
        "--creds",
        &creds,
        "team/app:nope",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("team/app:nope: no such tag"));

    // What the garbage collector removes leaves the catalog too.
    let r = http
        .delete(format!("{}/v2/broken/img/manifests/v1", serve.url))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    // Content stored in the current second is inside even a zero grace period.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = http
        .post(format!("{}/api/v1/gc", serve.url))
        .basic_auth(USER, Some(PASSWORD))
        .json(&json!({"grace": "0s"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let report: Value = r.json().await.unwrap();
    assert!(report.to_string().contains(&bad.to_string()), "{report}");
    until("the collected manifest's scan to go", || {
        let rec = db.scan("broken/img", &bad.to_string()).unwrap();
        async move { rec.is_none() }
    })
    .await;
    assert!(db.scan("team/app", &digest.to_string()).unwrap().is_some());
}

/// `berth serve --catalog=false`: no catalog.db, pushes work, the catalog API says it
/// is off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_can_be_turned_off() {
    let root = tempfile::tempdir().unwrap();
    let serve = Serve::start(root.path(), &["--catalog=false"]).await;
    let oci = tempfile::tempdir().unwrap();
    write_layout(
        oci.path(),
        "1",
        &[layer(&[("etc/os-release", DEBIAN_OS_RELEASE)])],
        json!({"architecture": "amd64", "os": "linux"}),
    );
    ok(berth(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:1", oci.path().display()),
        &format!("docker://{}/plain/img:1", serve.addr),
    ]));
    let r = reqwest::get(format!("{}/api/v1/catalog/search?q=img", serve.url))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    // podman search still finds it by name.
    let v: Value = reqwest::get(format!("{}/v1/search?q=img", serve.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["results"][0]["name"], "plain/img");
    assert!(!root.path().join("catalog.db").exists());
}
