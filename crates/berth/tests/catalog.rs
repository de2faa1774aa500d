//! The catalog through `berth serve`: an image with a dpkg status and an os-release
//! layer, written as an `oci:` folder here and pushed with `berth copy`, is
//! inventoried in the background (the push does not wait); OSV data imported with
//! `berth registry vulndb import --url` gives findings with no layer read again (the
//! server's layer counter stays put); a layer that fails analysis is recorded with
//! its reason, `berth registry scan` retries it, and the server keeps serving.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_image::Digest;
use serde_json::{json, Value};

mod common;

use common::{admin, free_port, BERTH};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const USER: &str = "root";
const PASSWORD: &str = "catalog-test-pw";

struct Serve {
    child: Child,
    url: String,
    addr: String,
}

impl Serve {
    async fn start(root: &Path) -> Serve {
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new(BERTH)
            .env_remove("BERTH_ROOT")
            .args(["serve", "--listen", &addr, "--log-level", "warn", "--root"])
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("berth serve starts");
        let serve = Serve {
            child,
            url: format!("http://{addr}"),
            addr,
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !client
            .get(format!("{}/v2/", serve.url))
            .send()
            .await
            .is_ok_and(|r| r.status().as_u16() == 200 || r.status().as_u16() == 401)
        {
            assert!(Instant::now() < deadline, "berth serve did not answer");
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        serve
    }

    async fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut rb = reqwest::Client::new()
            .request(method, format!("{}/api/v1/{path}", self.url))
            .basic_auth(USER, Some(PASSWORD));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn status(&self) -> Value {
        let (s, v) = self.api(reqwest::Method::GET, "catalog/status", None).await;
        assert_eq!(s, 200, "{v}");
        v
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tar_of(files: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, text) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(text.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, path, text.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn descriptor(media_type: &str, bytes: &[u8]) -> Value {
    json!({"mediaType": media_type, "digest": Digest::sha256_of(bytes).to_string(), "size": bytes.len()})
}

/// An OCI layout at `dir` holding one image of `layers` (gzip bytes, tar bytes),
/// tagged `tag`; returns the manifest's digest.
fn write_oci(dir: &Path, tag: &str, layers: &[(Vec<u8>, Vec<u8>)]) -> Digest {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        std::fs::write(blobs.join(Digest::sha256_of(bytes).hex()), bytes).unwrap();
    };
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Labels": {"org.opencontainers.image.description": "a catalog test image"}},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|(_, raw)| Digest::sha256_of(raw).to_string()).collect::<Vec<_>>()},
        "history": layers.iter().map(|_| json!({"created_by": "/bin/sh -c #(nop) ADD file:rootfs in / "})).collect::<Vec<_>>(),
    }))
    .unwrap();
    put(&config);
    for (gz, _) in layers {
        put(gz);
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
        "layers": layers.iter().map(|(gz, _)| descriptor("application/vnd.oci.image.layer.v1.tar+gzip", gz)).collect::<Vec<_>>(),
    }))
    .unwrap();
    put(&manifest);
    let mut m = descriptor(OCI_MANIFEST, &manifest);
    m["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [m]})).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    Digest::sha256_of(&manifest)
}

fn berth(args: &[&str]) -> Output {
    Command::new(BERTH)
        .env_remove("BERTH_ROOT")
        .args(args)
        .output()
        .expect("berth runs")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Polls until `f` says yes (10 s at most).
async fn until<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
    let serve = Serve::start(root.path()).await;
    let creds = format!("{USER}:{PASSWORD}");

    // A Debian-like image: os-release and a dpkg status database.
    let status = "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc\nVersion: 2.36-9\n\n\
                  Package: openssl\nStatus: install ok installed\nArchitecture: amd64\nVersion: 3.0.9-1\n\n";
    let raw = tar_of(&[
        (
            "etc/os-release",
            "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
        ),
        ("var/lib/dpkg/status", status),
    ]);
    let oci = tempfile::tempdir().unwrap();
    let digest = write_oci(oci.path(), "1.0", &[(gzip(&raw), raw)]);
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
    let analyzed = serve.status().await["layers_analyzed"].as_u64().unwrap();
    assert_eq!(analyzed, 1);

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
    let status = serve.status().await;
    assert_eq!(
        status["layers_analyzed"], 1,
        "a rematch reads no layer: {status}"
    );
    assert_eq!(status["rematched"], 1);
    assert_eq!(search("cve=CVE-2023-5363", true).await, ["team/app"]);

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
    let repo = format!("{}/v2/broken/img", serve.url);
    let http = reqwest::Client::new();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let bad_layer = b"this is not gzip at all";
    for blob in [&config[..], &bad_layer[..]] {
        let r = http
            .post(format!(
                "{repo}/blobs/uploads/?digest={}",
                Digest::sha256_of(blob)
            ))
            .basic_auth(USER, Some(PASSWORD))
            .body(blob.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.oci.image.config.v1+json", config),
        "layers": [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", bad_layer)],
    }))
    .unwrap();
    let bad = Digest::sha256_of(&manifest);
    let r = http
        .put(format!("{repo}/manifests/v1"))
        .basic_auth(USER, Some(PASSWORD))
        .header("content-type", OCI_MANIFEST)
        .body(manifest)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
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
        serve.status().await["layers_analyzed"],
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
}
