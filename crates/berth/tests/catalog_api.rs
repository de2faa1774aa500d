//! The catalog's JSON API through `berth serve` (`/api/v1/repositories/…`,
//! `/api/v1/catalog/search`): two Debian-like images (os-release and a dpkg status
//! database; the second adds a layer that upgrades one package, adds one and drops
//! another) pushed with `berth copy` under tags 1.9.2, 1.10.0-rc1, 1.10.0 and
//! latest, inventoried in the background, then every route's answer checked: tag
//! order, overview, packages and their diff, the rebuilt Containerfile, SBOMs valid
//! against the published schemas, vulnerabilities after `berth registry vulndb
//! import` (fixable and severity filters, "fixed in tag"), the allow-list, a failed
//! scan's reason; and access: a private repository is a 404 to anonymous callers and
//! to users without pull, readable by a user with pull, and never found by search
//! for the others. A second test: search facets and the `signed` filter, a simple
//! signature made by `berth copy --sign-by-key` marking its repository signed, and
//! the signatures route verifying it with the keys of the repository's trust setting
//! (or saying why not, with the key the signature names).
//!
//! Run with `cargo test -p berth --test catalog_api`.

mod common;
#[path = "common/registry_fixture.rs"]
mod registry_fixture;
#[path = "../../berth-sbom/tests/validate/mod.rs"]
mod validate;

use std::path::Path;

use berth_image::Digest;
use reqwest::Method;
use serde_json::{json, Value};

use registry_fixture::*;

const ROOT: (&str, &str) = ("root", "root-pw");
const ALICE: (&str, &str) = ("alice", "alice-pw");
const BOB: (&str, &str) = ("bob", "bob-pw");

type Who = Option<(&'static str, &'static str)>;

/// One answer: status, content type, body.
struct Answer {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The body, when the status is `status`.
    fn expect(self, status: u16) -> Value {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        self.json()
    }
}

async fn call(serve: &Serve, method: Method, path: &str, who: Who, body: Option<Value>) -> Answer {
    let mut rb = reqwest::Client::new().request(method, format!("{}/api/v1/{path}", serve.url));
    if let Some((user, pw)) = who {
        rb = rb.basic_auth(user, Some(pw));
    }
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.unwrap();
    Answer {
        status: r.status().as_u16(),
        content_type: r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
        body: r.bytes().await.unwrap().to_vec(),
    }
}

async fn get(serve: &Serve, path: &str, who: Who) -> Answer {
    call(serve, Method::GET, path, who, None).await
}

/// Pushes `oci:LAYOUT:tag` to `repo:tag` as root.
fn push(serve: &Serve, layout: &Path, tag: &str, repo: &str) {
    push_layout(serve, layout, tag, repo, ROOT, &[]);
}

/// Waits until the catalog has inventoried `digest` in `repo`.
async fn scanned(serve: &Serve, repo: &str, digest: &Digest) {
    let path = format!("repositories/{repo}/manifests/{digest}");
    until(&format!("the scan of {repo}@{digest}"), || async {
        get(serve, &path, Some(ROOT)).await.json()["status"] != "pending"
    })
    .await;
}

fn names(list: &Value) -> Vec<String> {
    let mut n: Vec<String> = list
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    n.sort();
    n
}

fn osv(dir: &Path, id: &str, alias: &str, package: &str, fixed: Option<&str>, cvss: &str) {
    let mut events = vec![json!({"introduced": "0"})];
    if let Some(f) = fixed {
        events.push(json!({"fixed": f}));
    }
    let record = json!({
        "id": id, "modified": "2024-02-01T00:00:00Z", "published": "2024-01-10T00:00:00Z",
        "aliases": [alias],
        "severity": [{"type": "CVSS_V3", "score": cvss}],
        "affected": [{"package": {"ecosystem": "Debian:12", "name": package},
            "ranges": [{"type": "ECOSYSTEM", "events": events}]}]
    });
    std::fs::write(dir.join(format!("{id}.json")), record.to_string()).unwrap();
}

/// The search's repository names for `who`.
async fn search(serve: &Serve, query: &str, who: Who) -> Vec<String> {
    let v = get(serve, &format!("catalog/search?{query}"), who)
        .await
        .expect(200);
    names_of(&v["results"], "repository")
}

fn names_of(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|h| h[key].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_api_answers_every_route_for_readers_only() {
    let root = tempfile::tempdir().unwrap();
    let root_s = root.path().to_str().unwrap();
    registry(
        root_s,
        &["user", "add", ROOT.0, "--superuser", "--password-stdin"],
        ROOT.1,
    );
    for (user, pw) in [ALICE, BOB] {
        registry(root_s, &["user", "add", user, "--password-stdin"], pw);
    }
    registry(root_s, &["repo", "visibility", "team/app", "public"], "");
    registry(root_s, &["grant", "alice", "read", "team/secret"], "");
    let serve = Serve::start(root.path(), &[]).await;

    // Image A: one layer; image B: A's layer and one that upgrades openssl, installs
    // curl and drops zlib1g (a new status database).
    let base = layer(&[
        ("etc/os-release", DEBIAN_OS_RELEASE),
        (
            "var/lib/dpkg/status",
            &dpkg_status(&[
                ("libc6", "2.36-9", Some("glibc")),
                ("openssl", "3.0.9-1", None),
                ("zlib1g", "1:1.2.13.dfsg-1", Some("zlib")),
            ]),
        ),
    ]);
    let upper = layer(&[(
        "var/lib/dpkg/status",
        &dpkg_status(&[
            ("curl", "7.88.1-10", None),
            ("libc6", "2.36-9", Some("glibc")),
            ("openssl", "3.0.11-1~deb12u2", None),
        ]),
    )]);
    let config = |history: Value| {
        json!({
            "created": "2024-02-03T04:05:06Z", "architecture": "amd64", "os": "linux",
            "config": {"Labels": {
                "org.opencontainers.image.description": "the catalog API test application",
                "team": "core"}},
            "history": history,
        })
    };
    let add = json!({"created": "2024-02-03T04:05:06Z", "created_by": "/bin/sh -c #(nop) ADD file:0123 in / "});
    let cmd = json!({"created_by": "/bin/sh -c #(nop)  CMD [\"bash\"]", "empty_layer": true});
    let run =
        json!({"created_by": "/bin/sh -c apt-get install -y curl && apt-get upgrade -y openssl"});
    let layout = tempfile::tempdir().unwrap();
    let a = write_layout(
        layout.path(),
        "1.9.2",
        std::slice::from_ref(&base),
        config(json!([add, cmd])),
    );
    write_layout(
        layout.path(),
        "1.10.0-rc1",
        std::slice::from_ref(&base),
        config(json!([add, cmd])),
    );
    let layers = [base.clone(), upper];
    let b = write_layout(
        layout.path(),
        "1.10.0",
        &layers,
        config(json!([add, run, cmd])),
    );
    write_layout(
        layout.path(),
        "latest",
        &layers,
        config(json!([add, run, cmd])),
    );
    for tag in ["1.9.2", "1.10.0-rc1"] {
        push(&serve, layout.path(), tag, "team/app");
    }
    // A first, so that it is B's base image.
    scanned(&serve, "team/app", &a).await;
    for tag in ["1.10.0", "latest"] {
        push(&serve, layout.path(), tag, "team/app");
    }
    push(&serve, layout.path(), "1.10.0", "team/secret");
    scanned(&serve, "team/app", &b).await;
    scanned(&serve, "team/secret", &b).await;

    // -- the repository: tags newest first, semver-aware --------------------------
    let repo = get(&serve, "repositories/team/app", None).await.expect(200);
    assert_eq!(
        names_of(&repo["tags"], "tag"),
        ["1.10.0", "1.10.0-rc1", "1.9.2", "latest"],
        "{repo:#}"
    );
    assert_eq!(repo["description"], "the catalog API test application");
    let tag = |t: &str| {
        repo["tags"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["tag"] == t)
            .unwrap()
            .clone()
    };
    assert_eq!(tag("1.9.2")["digest"], a.to_string());
    assert_eq!(tag("latest")["digest"], b.to_string());
    let image = &tag("1.10.0")["images"][0];
    assert_eq!(image["platform"], "linux/amd64", "{image}");
    assert_eq!(image["created"], "2024-02-03T04:05:06Z");
    assert!(image["size"].as_u64().unwrap() > 0, "{image}");
    assert_eq!(image["status"], "ok");

    // A simple signature kept for B (the registry stores it as sent; the overview
    // counts it).
    put_opaque_signature(&serve, "team/app", &b.to_string(), ROOT).await;

    // -- the overview ---------------------------------------------------------
    let over = get(
        &serve,
        &format!("repositories/team/app/manifests/{b}"),
        None,
    )
    .await
    .expect(200);
    assert_eq!(over["status"], "ok", "{over:#}");
    assert_eq!(over["signatures"], 1);
    let img = &over["images"][0];
    assert_eq!(img["labels"]["team"], "core", "{over:#}");
    assert_eq!(img["os"]["id"], "debian");
    assert_eq!(img["packages"], 3);
    assert_eq!(img["base_image"], format!("team/app@{a}"), "{over:#}");
    let unknown = get(
        &serve,
        &format!(
            "repositories/team/app/manifests/{}",
            Digest::sha256_of(b"none")
        ),
        None,
    )
    .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["errors"][0]["code"], "MANIFEST_UNKNOWN");
    let bad = get(&serve, "repositories/team/app/manifests/sha256:xyz", None).await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["errors"][0]["code"], "DIGEST_INVALID");

    // -- packages, filtered and against another image --------------------------
    let pk = get(
        &serve,
        &format!("repositories/team/app/manifests/{a}/packages"),
        None,
    )
    .await
    .expect(200);
    assert_eq!(names(&pk["packages"]), ["libc6", "openssl", "zlib1g"]);
    let zlib = pk["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "zlib1g")
        .unwrap();
    assert_eq!(zlib["version"], "1:1.2.13.dfsg-1");
    let pk = get(
        &serve,
        &format!("repositories/team/app/manifests/{a}/packages?q=ssl"),
        None,
    )
    .await
    .expect(200);
    assert_eq!(names(&pk["packages"]), ["openssl"]);
    let diff = get(
        &serve,
        &format!("repositories/team/app/manifests/{b}/packages?diff={a}"),
        None,
    )
    .await
    .expect(200);
    assert_eq!(names(&diff["added"]), ["curl"], "{diff:#}");
    assert_eq!(names(&diff["removed"]), ["zlib1g"]);
    assert_eq!(names(&diff["changed"]), ["openssl"]);
    assert_eq!(diff["changed"][0]["from"]["version"], "3.0.9-1");
    assert_eq!(diff["changed"][0]["to"]["version"], "3.0.11-1~deb12u2");
    // Against an image of another repository the caller may not read: invisible.
    let hidden = get(
        &serve,
        &format!("repositories/team/app/manifests/{b}/packages?diff=team/secret@{b}"),
        None,
    )
    .await;
    assert_eq!(hidden.status, 404);
    assert_eq!(hidden.json()["errors"][0]["code"], "NAME_UNKNOWN");

    // -- the Containerfile rebuilt from history ---------------------------------
    let cf = get(
        &serve,
        &format!("repositories/team/app/manifests/{b}/containerfile"),
        None,
    )
    .await
    .expect(200);
    let cf = &cf["containerfile"];
    assert_eq!(cf["reconstructed"], true, "{cf:#}");
    let text = cf["text"].as_str().unwrap();
    assert!(
        text.contains("RUN apt-get install -y curl && apt-get upgrade -y openssl"),
        "{text}"
    );
    assert!(text.contains("CMD [\"bash\"]"), "{text}");

    // -- SBOMs ------------------------------------------------------------------
    let schemas = validate::Schemas::load();
    let spdx = get(
        &serve,
        &format!("repositories/team/app/manifests/{b}/sbom?format=spdx"),
        None,
    )
    .await;
    assert_eq!(spdx.status, 200);
    assert_eq!(spdx.content_type, "application/spdx+json");
    let doc = spdx.json();
    schemas.assert_spdx(&doc);
    let mut in_doc: Vec<&str> = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p.get("primaryPackagePurpose").is_none())
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    in_doc.sort();
    assert_eq!(in_doc, ["curl", "libc6", "openssl"]);
    assert_eq!(doc["packages"][0]["versionInfo"], b.to_string());
    assert_eq!(
        doc["packages"][0]["name"],
        format!("{}/team/app", serve.addr)
    );
    let cdx = get(
        &serve,
        &format!("repositories/team/app/manifests/{b}/sbom?format=cyclonedx"),
        None,
    )
    .await;
    assert_eq!(cdx.status, 200);
    assert_eq!(cdx.content_type, "application/vnd.cyclonedx+json");
    let bom = cdx.json();
    schemas.assert_cyclonedx(&bom);
    assert_eq!(
        names(&Value::Array(
            bom["components"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["type"] == "library")
                .cloned()
                .collect()
        )),
        ["curl", "libc6", "openssl"]
    );
    let xml = get(
        &serve,
        &format!("repositories/team/app/manifests/{b}/sbom?format=xml"),
        None,
    )
    .await;
    assert_eq!(xml.status, 400);
    assert!(xml.json()["errors"][0]["detail"]
        .as_str()
        .unwrap()
        .contains("xml"));

    // -- vulnerabilities after an import ------------------------------------------
    let none = get(
        &serve,
        &format!("repositories/team/app/manifests/{a}/vulnerabilities"),
        None,
    )
    .await
    .expect(200);
    assert_eq!(
        none["findings"],
        json!([]),
        "no data imported yet: {none:#}"
    );
    let data = tempfile::tempdir().unwrap();
    osv(
        data.path(),
        "DSA-5532-1",
        "CVE-2023-5363",
        "openssl",
        Some("3.0.11-1~deb12u2"),
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
    );
    osv(
        data.path(),
        "DLA-3000-1",
        "CVE-2023-45853",
        // Debian's records name source packages: zlib1g comes from zlib.
        "zlib",
        None,
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N",
    );
    // Through the server, one file at a time as `--url` takes them.
    let dsa = data.path().join("DSA-5532-1.json");
    let dla = data.path().join("DLA-3000-1.json");
    ok(berth(&[
        "registry",
        "vulndb",
        "import",
        "--url",
        &serve.url,
        "--creds",
        &format!("{}:{}", ROOT.0, ROOT.1),
        dsa.to_str().unwrap(),
        dla.to_str().unwrap(),
    ]));
    let vulns = |query: &'static str, who: Who| {
        let path = format!("repositories/team/app/manifests/{a}/vulnerabilities{query}");
        let serve = &serve;
        async move { get(serve, &path, who).await.expect(200) }
    };
    let all = vulns("", None).await;
    assert_eq!(
        names_of(&all["findings"], "id"),
        ["DSA-5532-1", "DLA-3000-1"],
        "{all:#}"
    );
    let dsa = &all["findings"][0];
    assert_eq!(dsa["package"], "openssl");
    assert_eq!(dsa["fixed"], "3.0.11-1~deb12u2");
    let mut fixed_in: Vec<&str> = dsa["fixed_in_tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    fixed_in.sort();
    assert_eq!(fixed_in, ["1.10.0", "latest"], "{dsa:#}");
    // B dropped zlib1g: no longer affected there either.
    assert_eq!(
        all["findings"][1]["fixed_in_tags"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "{all:#}"
    );
    assert!(
        !all["data"].as_array().unwrap().is_empty(),
        "the data's imports: {all:#}"
    );
    assert_eq!(all["counts"]["Critical"], 1);
    assert_eq!(all["counts"]["High"], 1);
    assert_eq!(
        names_of(&vulns("?fixable=true", None).await["findings"], "id"),
        ["DSA-5532-1"]
    );
    assert_eq!(
        names_of(&vulns("?severity=high", None).await["findings"], "id"),
        ["DLA-3000-1"]
    );
    assert_eq!(
        names_of(
            &vulns("?severity=critical,high", None).await["findings"],
            "id"
        )
        .len(),
        2
    );
    let bad = get(
        &serve,
        &format!("repositories/team/app/manifests/{a}/vulnerabilities?severity=awful"),
        None,
    )
    .await;
    assert_eq!(bad.status, 400);
    let clean = get(
        &serve,
        &format!("repositories/team/app/manifests/{b}/vulnerabilities"),
        None,
    )
    .await
    .expect(200);
    assert_eq!(clean["findings"], json!([]), "{clean:#}");
    let repo = get(&serve, "repositories/team/app", None).await.expect(200);
    let t = repo["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["tag"] == "1.9.2")
        .unwrap();
    assert_eq!(
        (t["critical"].as_u64(), t["high"].as_u64()),
        (Some(1), Some(1)),
        "{t:#}"
    );
    assert_eq!(
        search(&serve, "cve=CVE-2023-5363", None).await,
        ["team/app"]
    );

    // -- the allow-list: push holders only; marked, not counted -------------------
    let entry = "repositories/team/app/allowlist/CVE-2023-45853";
    let body = json!({"reason": "zlib's inflate is not reachable here", "expires_at": "2099-01-01T00:00:00Z"});
    assert_eq!(
        call(&serve, Method::PUT, entry, None, Some(body.clone()))
            .await
            .status,
        401
    );
    let denied = call(&serve, Method::PUT, entry, Some(BOB), Some(body.clone())).await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.json()["errors"][0]["code"], "DENIED");
    let bad = call(
        &serve,
        Method::PUT,
        entry,
        Some(ROOT),
        Some(json!({"reason": "x", "expires_at": 5})),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert!(bad.json()["errors"][0]["detail"]
        .as_str()
        .unwrap()
        .contains("not in the future"));
    let set = call(&serve, Method::PUT, entry, Some(ROOT), Some(body))
        .await
        .expect(200);
    assert_eq!(set["created_by"], "root");
    assert_eq!(set["expires_at"], 4_070_908_800i64);
    let all = vulns("", None).await;
    let dla = all["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "DLA-3000-1")
        .unwrap();
    assert_eq!(dla["allowed"]["finding_id"], "CVE-2023-45853", "{all:#}");
    assert!(all["counts"].get("High").is_none(), "{all:#}");
    let list = get(&serve, "repositories/team/app/allowlist", None)
        .await
        .expect(200);
    assert_eq!(list["entries"][0]["in_force"], true);
    assert_eq!(
        call(&serve, Method::DELETE, entry, Some(ROOT), None)
            .await
            .status,
        204
    );
    assert_eq!(
        call(&serve, Method::DELETE, entry, Some(ROOT), None)
            .await
            .status,
        404
    );
    assert_eq!(vulns("", None).await["counts"]["High"], 1);

    // -- a scan that failed shows its reason ----------------------------------------
    let broken = push_unreadable(&serve, "team/app", "broken", ROOT).await;
    scanned(&serve, "team/app", &broken).await;
    let failed = get(
        &serve,
        &format!("repositories/team/app/manifests/{broken}/packages"),
        None,
    )
    .await;
    assert_eq!(failed.status, 422);
    let failed = failed.json();
    assert_eq!(failed["status"], "failed");
    assert!(
        failed["error"].as_str().unwrap().contains("layer 0"),
        "{failed:#}"
    );

    // -- access: a private repository is invisible to who may not pull it -------------
    for who in [None, Some(BOB)] {
        for path in [
            "repositories/team/secret".to_string(),
            format!("repositories/team/secret/manifests/{b}"),
            format!("repositories/team/secret/manifests/{b}/packages"),
            format!("repositories/team/secret/manifests/{b}/sbom"),
            "repositories/team/secret/allowlist".to_string(),
        ] {
            let r = get(&serve, &path, who).await;
            assert_eq!(r.status, 404, "{path} for {who:?}");
            assert_eq!(r.json()["errors"][0]["code"], "NAME_UNKNOWN", "{path}");
        }
        // As a repository that does not exist.
        let r = get(&serve, "repositories/team/none", who).await;
        assert_eq!(
            (r.status, r.json()["errors"][0]["code"].clone()),
            (404, json!("NAME_UNKNOWN"))
        );
        assert_eq!(search(&serve, "q=team", who).await, ["team/app"], "{who:?}");
        assert_eq!(
            search(&serve, "package=curl", who).await,
            ["team/app"],
            "{who:?}"
        );
    }
    let secret = get(&serve, "repositories/team/secret", Some(ALICE))
        .await
        .expect(200);
    assert_eq!(names_of(&secret["tags"], "tag"), ["1.10.0"]);
    let pk = get(
        &serve,
        &format!("repositories/team/secret/manifests/{b}/packages"),
        Some(ALICE),
    )
    .await
    .expect(200);
    assert_eq!(names(&pk["packages"]), ["curl", "libc6", "openssl"]);
    let mut found = search(&serve, "q=team", Some(ALICE)).await;
    found.sort();
    assert_eq!(found, ["team/app", "team/secret"]);
    // Alice reads but may not push: the allow-list stays closed to her.
    let r = call(
        &serve,
        Method::PUT,
        "repositories/team/secret/allowlist/CVE-1",
        Some(ALICE),
        Some(json!({"reason": "r"})),
    )
    .await;
    assert_eq!(r.status, 403);
    // The administration API's `repositories/NAME/visibility` still answers under
    // this prefix: made public, the repository is readable by anyone.
    call(
        &serve,
        Method::PUT,
        "repositories/team/secret/visibility",
        Some(ROOT),
        Some(json!({"visibility": "public"})),
    )
    .await
    .expect(200);
    get(&serve, "repositories/team/secret", None)
        .await
        .expect(200);
    // Wrong credentials are refused, not treated as anonymous.
    let r = get(&serve, "repositories/team/app", Some(("alice", "wrong"))).await;
    assert_eq!(r.status, 401);
}

/// OpenPGP test keys made once with `gpg --quick-gen-key "…" ed25519 sign never` (no
/// passphrase; test data only): A signs, B is another key.
const KEY_A_SECRET: &str = "-----BEGIN PGP PRIVATE KEY BLOCK-----

lFgEaxF05hYJKwYBBAHaRw8BAQdAUW13yRh09HNB7SR/7wd/i2fUqaF2REh2CjGY
AV2NeTAAAQCzJ5GWHO/EFFLl6ud1Qymk1AA3UavgbVAz/CNYBHvulA/BtChiZXJ0
aCBjYXRhbG9nIGEgPGNhdGFsb2ctYUBleGFtcGxlLnRlc3Q+iJAEExYIADgWIQSg
4QGwuOesLgEZcb92XsbgDdCXoAUCaxF05gIbAwULCQgHAgYVCgkICwIEFgIDAQIe
AQIXgAAKCRB2XsbgDdCXoDNiAP42dXf+7xtLaUN/X/AoL2Rezeroxj26MezlKcBr
QzJoxAEA8TUxbl1/35UWW5ZE79C7oUDmZuJtstbex06lkvnffg8=
=JPCC
-----END PGP PRIVATE KEY BLOCK-----
";
const KEY_A_PUBLIC: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----

mDMEaxF05hYJKwYBBAHaRw8BAQdAUW13yRh09HNB7SR/7wd/i2fUqaF2REh2CjGY
AV2NeTC0KGJlcnRoIGNhdGFsb2cgYSA8Y2F0YWxvZy1hQGV4YW1wbGUudGVzdD6I
kAQTFggAOBYhBKDhAbC456wuARlxv3ZexuAN0JegBQJrEXTmAhsDBQsJCAcCBhUK
CQgLAgQWAgMBAh4BAheAAAoJEHZexuAN0JegM2IA/jZ1d/7vG0tpQ39f8CgvZF7N
6ujGPbox7OUpwGtDMmjEAQDxNTFuXX/flRZblkTv0LuhQOZm4m2y1t7HTqWS+d9+
Dw==
=YLXB
-----END PGP PUBLIC KEY BLOCK-----
";
const KEY_A_FINGERPRINT: &str = "A0E101B0B8E7AC2E011971BF765EC6E00DD097A0";
const KEY_A_USER: &str = "berth catalog a <catalog-a@example.test>";
const KEY_B_PUBLIC: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----

mDMEaxF05hYJKwYBBAHaRw8BAQdATgy56eYEOAqIViXvCRuqAAc/N/tVv8QKybTl
ur0yKKG0KGJlcnRoIGNhdGFsb2cgYiA8Y2F0YWxvZy1iQGV4YW1wbGUudGVzdD6I
kAQTFggAOBYhBGgQDZ9rGASM9bDAAaTvEneEeoALBQJrEXTmAhsDBQsJCAcCBhUK
CQgLAgQWAgMBAh4BAheAAAoJEKTvEneEeoALWGwBALy+GEjuDfb5O+VY/8bOdncV
97xoyRxys4TY40Jhz6jOAQDUK+WWLYmaYrQOaEInCah5sBEm3uIv0ZFg87PQWvcW
DA==
=LnfL
-----END PGP PUBLIC KEY BLOCK-----
";

/// Pushes `oci:LAYOUT:tag` to `repo:tag` as root, signed with the secret key in
/// `key_file` (simple signing, no gpg): the signature goes to the extension.
fn push_signed(serve: &Serve, layout: &Path, tag: &str, repo: &str, key_file: &Path) {
    ok(berth(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        &format!("{}:{}", ROOT.0, ROOT.1),
        "--sign-by-key",
        key_file.to_str().unwrap(),
        &format!("oci:{}:{tag}", layout.display()),
        &format!("docker://{}/{repo}:{tag}", serve.addr),
    ]));
}

/// A facet's `[[value, count], …]` as pairs.
fn facet(page: &Value, name: &str) -> Vec<(String, u64)> {
    page["facets"][name]
        .as_array()
        .unwrap_or_else(|| panic!("no facet {name}: {page:#}"))
        .iter()
        .map(|p| (p[0].as_str().unwrap().to_string(), p[1].as_u64().unwrap()))
        .collect()
}

fn pairs(list: &[(&str, u64)]) -> Vec<(String, u64)> {
    list.iter().map(|(v, n)| (v.to_string(), *n)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_facets_signed_repositories_and_their_verified_signatures() {
    let root = tempfile::tempdir().unwrap();
    let root_s = root.path().to_str().unwrap();
    registry(
        root_s,
        &["user", "add", ROOT.0, "--superuser", "--password-stdin"],
        ROOT.1,
    );
    for public in ["team/signed", "team/plain", "team/later", "team/cosigned"] {
        registry(root_s, &["repo", "visibility", public, "public"], "");
    }
    let keys = tempfile::tempdir().unwrap();
    let key_file = |name: &str, text: &str| {
        let path = keys.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let secret_a = key_file("a.sec.asc", KEY_A_SECRET);
    let public_a = key_file("a.pub.asc", KEY_A_PUBLIC);
    let public_b = key_file("b.pub.asc", KEY_B_PUBLIC);
    let serve = Serve::start(root.path(), &[]).await;

    // An amd64 image and an arm64 one.
    let base = layer(&[
        ("etc/os-release", DEBIAN_OS_RELEASE),
        (
            "var/lib/dpkg/status",
            &dpkg_status(&[("libc6", "2.36-9", Some("glibc"))]),
        ),
    ]);
    let config = |arch: &str| {
        json!({
            "created": "2024-02-03T04:05:06Z", "architecture": arch, "os": "linux",
            "config": {"Labels": {"org.opencontainers.image.description": format!("a team image on {arch}")}},
            "history": [{"created_by": "/bin/sh -c #(nop) ADD file:0123 in / "}],
        })
    };
    let layout = tempfile::tempdir().unwrap();
    let amd = write_layout(
        layout.path(),
        "1.0",
        std::slice::from_ref(&base),
        config("amd64"),
    );
    let arm = write_layout(
        layout.path(),
        "2.0",
        std::slice::from_ref(&base),
        config("arm64"),
    );
    push(&serve, layout.path(), "2.0", "team/plain");
    push_signed(&serve, layout.path(), "1.0", "team/signed", &secret_a);
    push_signed(&serve, layout.path(), "1.0", "team/private", &secret_a);
    scanned(&serve, "team/plain", &arm).await;
    scanned(&serve, "team/signed", &amd).await;
    scanned(&serve, "team/private", &amd).await;
    // The signature arrives after the image's push: its PUT has the row rebuilt.
    until("both signed repositories marked signed", || async {
        let mut found = search(&serve, "signed=yes", Some(ROOT)).await;
        found.sort();
        found == ["team/private", "team/signed"]
    })
    .await;

    // -- facets: counted over what the caller may read, filters applied ------------
    let page = get(&serve, "catalog/search?q=team&per_page=1", None)
        .await
        .expect(200);
    assert_eq!(page["total"], 2, "{page:#}");
    assert_eq!(page["results"].as_array().unwrap().len(), 1);
    assert_eq!(facet(&page, "os"), pairs(&[("linux", 2)]));
    assert_eq!(facet(&page, "arch"), pairs(&[("amd64", 1), ("arm64", 1)]));
    assert_eq!(facet(&page, "signed"), pairs(&[("no", 1), ("yes", 1)]));
    assert!(facet(&page, "grade").is_empty(), "no vulnerability data");
    let everything = get(&serve, "catalog/search?q=team", Some(ROOT))
        .await
        .expect(200);
    assert_eq!(everything["total"], 3);
    assert_eq!(
        facet(&everything, "arch"),
        pairs(&[("amd64", 2), ("arm64", 1)])
    );
    assert_eq!(
        facet(&everything, "signed"),
        pairs(&[("no", 1), ("yes", 2)])
    );
    let amd64 = get(&serve, "catalog/search?arch=amd64", None)
        .await
        .expect(200);
    assert_eq!(names_of(&amd64["results"], "repository"), ["team/signed"]);
    assert_eq!(facet(&amd64, "arch"), pairs(&[("amd64", 1)]));
    assert_eq!(facet(&amd64, "signed"), pairs(&[("yes", 1)]));

    // -- signed=yes|no, and each hit's mark and push time --------------------------
    let signed = get(&serve, "catalog/search?signed=yes", None)
        .await
        .expect(200);
    assert_eq!(names_of(&signed["results"], "repository"), ["team/signed"]);
    let hit = &signed["results"][0];
    assert_eq!(hit["signed"], true, "{hit:#}");
    let pushed = hit["last_pushed"].as_i64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - 600..=now + 5).contains(&pushed), "{hit:#}");
    let unsigned = get(&serve, "catalog/search?signed=no", None)
        .await
        .expect(200);
    assert_eq!(names_of(&unsigned["results"], "repository"), ["team/plain"]);
    assert_eq!(unsigned["results"][0]["signed"], false);
    let bad = get(&serve, "catalog/search?signed=maybe", None).await;
    assert_eq!(bad.status, 400);
    // The repository's tags say so too.
    let repo = get(&serve, "repositories/team/signed", None)
        .await
        .expect(200);
    assert_eq!(repo["tags"][0]["signed"], true, "{repo:#}");
    let repo = get(&serve, "repositories/team/plain", None)
        .await
        .expect(200);
    assert_eq!(repo["tags"][0]["signed"], false, "{repo:#}");

    // -- the signatures route ------------------------------------------------------
    let signatures = |repo: &str, digest: &Digest, who: Who| {
        let path = format!("repositories/{repo}/manifests/{digest}/signatures");
        let serve = &serve;
        async move { get(serve, &path, who).await }
    };
    // No trust setting: listed, not verified, the key ID the signature names shown.
    let list = signatures("team/signed", &amd, None).await.expect(200);
    assert_eq!(list["digest"], amd.to_string());
    let sig = &list["signatures"][0];
    assert_eq!(list["signatures"].as_array().unwrap().len(), 1, "{list:#}");
    assert_eq!(sig["kind"], "simple");
    assert_eq!(sig["verified"], false, "{sig:#}");
    assert_eq!(sig["reason"], "no trusted keys are set for this repository");
    assert_eq!(sig["key"], &KEY_A_FINGERPRINT[24..], "the key ID: {sig:#}");
    assert_eq!(
        sig["identity"],
        Value::Null,
        "nothing unauthenticated: {sig:#}"
    );
    // The repository's setting names the key: verified, by whom, as what.
    registry(
        root_s,
        &[
            "trust",
            "set",
            "team/signed",
            "--gpg-key",
            public_a.to_str().unwrap(),
        ],
        "",
    );
    let list = signatures("team/signed", &amd, None).await.expect(200);
    let sig = &list["signatures"][0];
    assert_eq!(sig["verified"], true, "{sig:#}");
    assert_eq!(sig["reason"], Value::Null);
    assert_eq!(sig["key"], KEY_A_FINGERPRINT);
    assert_eq!(sig["signer"], KEY_A_USER);
    assert_eq!(
        sig["identity"],
        format!("{}/team/signed:1.0", serve.addr),
        "{sig:#}"
    );
    // A setting that names another key: not verified, the signing key named.
    registry(
        root_s,
        &[
            "trust",
            "set",
            "team/private",
            "--gpg-key",
            public_b.to_str().unwrap(),
        ],
        "",
    );
    let list = signatures("team/private", &amd, Some(ROOT))
        .await
        .expect(200);
    let sig = &list["signatures"][0];
    assert_eq!(sig["verified"], false, "{sig:#}");
    assert_eq!(sig["key"], &KEY_A_FINGERPRINT[24..]);
    assert!(
        sig["reason"].as_str().unwrap().contains("not trusted"),
        "{sig:#}"
    );
    assert_eq!(sig["signer"], Value::Null);
    // An unsigned image: an empty list. A private repository: 404 for anonymous
    // callers, exactly as a missing one; an unknown digest: 404 too.
    let none = signatures("team/plain", &arm, None).await.expect(200);
    assert_eq!(none["signatures"], json!([]));
    for (repo, digest) in [("team/private", amd.clone()), ("team/none", amd.clone())] {
        let r = signatures(repo, &digest, None).await;
        assert_eq!(r.status, 404, "{repo}");
        assert_eq!(r.json()["errors"][0]["code"], "NAME_UNKNOWN", "{repo}");
    }
    let r = signatures("team/plain", &Digest::sha256_of(b"none"), None).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["errors"][0]["code"], "MANIFEST_UNKNOWN");

    // -- a signature stored long after its image: the search row follows ----------
    // Only the signature extension's PUT can tell the catalog here (no manifest push
    // follows it).
    push(&serve, layout.path(), "2.0", "team/later");
    scanned(&serve, "team/later", &arm).await;
    assert!(search(&serve, "signed=no", None)
        .await
        .contains(&"team/later".to_string()));
    let manifest = layout.path().join(format!("blobs/sha256/{}", arm.hex()));
    let sig_file = keys.path().join("later.sig");
    ok(berth(&[
        "standalone-sign",
        "--key-file",
        secret_a.to_str().unwrap(),
        manifest.to_str().unwrap(),
        &format!("{}/team/later:2.0", serve.addr),
        KEY_A_FINGERPRINT,
        "-o",
        sig_file.to_str().unwrap(),
    ]));
    use base64::Engine as _;
    let content =
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(&sig_file).unwrap());
    let r = reqwest::Client::new()
        .put(format!(
            "{}/extensions/v2/team/later/signatures/{arm}",
            serve.url
        ))
        .basic_auth(ROOT.0, Some(ROOT.1))
        .json(
            &json!({"schemaVersion": 2, "name": format!("{arm}@00ff"), "type": "atomic",
                      "content": content}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    until(
        "team/later marked signed after its signature's PUT",
        || async {
            search(&serve, "signed=yes", None)
                .await
                .contains(&"team/later".to_string())
        },
    )
    .await;
    let list = signatures("team/later", &arm, None).await.expect(200);
    assert_eq!(
        list["signatures"][0]["key"],
        &KEY_A_FINGERPRINT[24..],
        "{list:#}"
    );

    // -- sigstore: the `sha256-<hex>.sig` attachment signs its repository's image ------
    let pw = key_file("pw", "secret\n");
    let prefix = keys.path().join("cosign");
    ok(berth(&[
        "generate-sigstore-key",
        "--output-prefix",
        prefix.to_str().unwrap(),
        "--passphrase-file",
        pw.to_str().unwrap(),
    ]));
    let registries_d = keys.path().join("registries.d");
    std::fs::create_dir_all(&registries_d).unwrap();
    std::fs::write(
        registries_d.join("berth.yaml"),
        format!(
            "docker:\n  {}:\n    use-sigstore-attachments: true\n",
            serve.addr
        ),
    )
    .unwrap();
    let private = keys.path().join("cosign.private");
    ok(berth(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        &format!("{}:{}", ROOT.0, ROOT.1),
        "--registries.d",
        registries_d.to_str().unwrap(),
        "--sign-by-sigstore-private-key",
        private.to_str().unwrap(),
        "--sign-passphrase-file",
        pw.to_str().unwrap(),
        &format!("oci:{}:1.0", layout.path().display()),
        &format!("docker://{}/team/cosigned:1.0", serve.addr),
    ]));
    scanned(&serve, "team/cosigned", &amd).await;
    until("team/cosigned marked signed by its attachment", || async {
        search(&serve, "signed=yes", None)
            .await
            .contains(&"team/cosigned".to_string())
    })
    .await;
    let repo = get(&serve, "repositories/team/cosigned", None)
        .await
        .expect(200);
    let image_tag = repo["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tag"] == "1.0")
        .unwrap();
    assert_eq!(image_tag["signed"], true, "{repo:#}");
    let list = signatures("team/cosigned", &amd, None).await.expect(200);
    let sig = &list["signatures"][0];
    assert_eq!(list["signatures"].as_array().unwrap().len(), 1, "{list:#}");
    assert_eq!(sig["kind"], "sigstore");
    assert_eq!(sig["verified"], false);
    assert_eq!(sig["reason"], "no trusted keys are set for this repository");
    let public = keys.path().join("cosign.pub");
    registry(
        root_s,
        &[
            "trust",
            "set",
            "team/cosigned",
            "--sigstore-key",
            public.to_str().unwrap(),
        ],
        "",
    );
    let list = signatures("team/cosigned", &amd, None).await.expect(200);
    let sig = &list["signatures"][0];
    assert_eq!(sig["verified"], true, "{sig:#}");
    assert!(
        sig["key"].as_str().unwrap().starts_with("sha256:"),
        "{sig:#}"
    );
    assert_eq!(sig["identity"], format!("{}/team/cosigned:1.0", serve.addr));
    // A setting with sigstore keys alone verifies no simple signature.
    registry(
        root_s,
        &[
            "trust",
            "set",
            "team/signed",
            "--sigstore-key",
            public.to_str().unwrap(),
        ],
        "",
    );
    let list = signatures("team/signed", &amd, None).await.expect(200);
    assert_eq!(list["signatures"].as_array().unwrap().len(), 1, "{list:#}");
    assert_eq!(list["signatures"][0]["kind"], "simple");
    assert_eq!(
        list["signatures"][0]["reason"],
        "no trusted GPG keys are set for this repository"
    );
}
