//! `berth registry …` against a data folder and against a running server, and `berth
//! serve` with TLS, including a certificate reload on SIGHUP.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{admin, free_port, BERTH};

/// A `berth serve` process, killed when dropped.
struct Serve {
    child: Child,
    addr: String,
}

impl Serve {
    fn start(root: &Path, extra: &[&str]) -> Serve {
        Serve::start_logging(root, extra, Stdio::null())
    }

    fn start_logging(root: &Path, extra: &[&str], stderr: impl Into<Stdio>) -> Serve {
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new(BERTH)
            .args(["serve", "--listen", &addr, "--root"])
            .arg(root)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("berth serve starts");
        Serve { child, addr }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[track_caller]
fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Exit status 1 with one line on stderr that contains `what`.
#[track_caller]
fn fails(out: Output, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains(what), "{err}");
}

async fn wait_ready(client: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(r) = client.get(url).send().await {
            if r.status().as_u16() == 200 || r.status().as_u16() == 401 {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{url} did not answer");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

#[tokio::test]
async fn admin_commands_on_the_folder_and_over_http() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let root_s = root.to_str().unwrap();
    let serve = Serve::start(&root, &[]);
    let base = format!("http://{}", serve.addr);
    let http = reqwest::Client::new();
    wait_ready(&http, &format!("{base}/v2/")).await;

    // On the data folder while the server runs: applies at once.
    ok(admin(
        &["--root", root_s, "user", "add", "alice", "--password-stdin"],
        "alice-pw\n",
    ));
    let r = http.get(format!("{base}/v2/")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .get(format!("{base}/v2/"))
        .basic_auth("alice", Some("alice-pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let users: serde_json::Value =
        serde_json::from_str(&ok(admin(&["--root", root_s, "user", "list"], ""))).unwrap();
    assert_eq!(users["users"][0]["name"], "alice");

    // Over HTTP with alice's credentials: she founds an organization and a robot.
    let url = base.as_str();
    let creds = "alice:alice-pw";
    ok(admin(
        &["--url", url, "--creds", creds, "org", "create", "myorg"],
        "",
    ));
    let secret = ok(admin(
        &[
            "--url", url, "--creds", creds, "robot", "create", "myorg+ci",
        ],
        "",
    ));
    let secret = secret.trim();
    assert_eq!(secret.len(), 43, "{secret:?}");
    ok(admin(
        &[
            "--url",
            url,
            "--creds",
            creds,
            "grant",
            "myorg+ci",
            "write",
            "myorg/app",
        ],
        "",
    ));
    let shown: serde_json::Value = serde_json::from_str(&ok(admin(
        &["--url", url, "--creds", creds, "org", "show", "myorg"],
        "",
    )))
    .unwrap();
    assert_eq!(shown["robots"], serde_json::json!(["myorg+ci"]));
    assert_eq!(
        shown["grants"],
        serde_json::json!([
            {"subject": "alice", "target": "myorg", "level": "admin"},
            {"subject": "myorg+ci", "target": "myorg/app", "level": "write"},
        ])
    );
    let r = http
        .post(format!("{base}/v2/myorg/app/blobs/uploads/"))
        .basic_auth("myorg+ci", Some(secret))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    // Refusals are one line and exit 1.
    fails(
        admin(
            &["--url", url, "--creds", "alice:wrong", "org", "create", "x"],
            "",
        ),
        "log in",
    );
    fails(
        admin(
            &[
                "--url",
                url,
                "--creds",
                creds,
                "user",
                "add",
                "bob",
                "--password-stdin",
            ],
            "pw\n",
        ),
        "not allowed",
    );
    fails(
        admin(
            &[
                "--root",
                root_s,
                "user",
                "add",
                "Bad'Name",
                "--password-stdin",
            ],
            "pw\n",
        ),
        "invalid account name",
    );
    fails(
        admin(&["--root", root_s, "user", "add", "carol"], ""),
        "--password-stdin",
    );
    fails(
        admin(&["--root", root_s, "grant", "ghost", "read", "myorg"], ""),
        "does not exist",
    );
    fails(
        admin(
            &[
                "--root",
                tmp.path().join("nothing").to_str().unwrap(),
                "user",
                "list",
            ],
            "",
        ),
        "no registry",
    );

    // An htpasswd file from docker-registry.
    let htpasswd = tmp.path().join("htpasswd");
    std::fs::write(
        &htpasswd,
        "testuser:$2y$05$GJiQmYRK9Q3VjcWg2OCIqulW2UER/ljCldo0ZWAkgagCBaC1X03Ma\n",
    )
    .unwrap();
    ok(admin(
        &[
            "--root",
            root_s,
            "user",
            "import-htpasswd",
            htpasswd.to_str().unwrap(),
        ],
        "",
    ));
    let r = http
        .get(format!("{base}/v2/"))
        .basic_auth("testuser", Some("testpass"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

fn self_signed(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let c =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert_pem = c.cert.pem();
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
    (cert, key, cert_pem)
}

fn trusting(pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

#[tokio::test]
async fn tls_serves_and_reloads_its_certificate_on_sighup() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key, pem_a) = self_signed(tmp.path(), "a");
    let live_cert = tmp.path().join("live.crt");
    let live_key = tmp.path().join("live.key");
    std::fs::copy(&cert, &live_cert).unwrap();
    std::fs::copy(&key, &live_key).unwrap();
    let root = tmp.path().join("root");
    let serve = Serve::start(
        &root,
        &[
            "--tls-cert",
            live_cert.to_str().unwrap(),
            "--tls-key",
            live_key.to_str().unwrap(),
        ],
    );
    let base = format!("https://{}", serve.addr);
    let a = trusting(&pem_a);
    wait_ready(&a, &format!("{base}/v2/")).await;
    assert_eq!(
        a.get(format!("{base}/v2/")).send().await.unwrap().status(),
        200
    );
    // Plain HTTP is not served on a TLS port.
    let plain = reqwest::get(format!("http://{}/v2/", serve.addr)).await;
    assert!(!plain.is_ok_and(|r| r.status().is_success()));

    // The token realm points back over https.
    ok(admin(
        &[
            "--root",
            root.to_str().unwrap(),
            "user",
            "add",
            "alice",
            "--password-stdin",
        ],
        "pw\n",
    ));
    let r = a.get(format!("{base}/v2/")).send().await.unwrap();
    let challenge = r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.starts_with(&format!("Bearer realm=\"{base}/token\"")),
        "{challenge}"
    );

    // berth login trusts the server through --cert-dir (*.crt), and not without it.
    let certs = tmp.path().join("certs.d");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::write(certs.join("ca.crt"), &pem_a).unwrap();
    let login = |extra: &[&str]| {
        Command::new(BERTH)
            .arg("login")
            .args(extra)
            .args(["-u", "alice", "-p", "pw", &serve.addr])
            .env("REGISTRY_AUTH_FILE", tmp.path().join("auth.json"))
            .env("HOME", tmp.path())
            .output()
            .unwrap()
    };
    let out = login(&["--cert-dir", certs.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = login(&[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "an unknown authority must be refused"
    );
    // In words, as Go's x509 says them, with what to do.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("x509: certificate signed by unknown authority (trust it with --cert-dir"),
        "{err}"
    );

    // Replace the files, send SIGHUP: new connections get the new certificate.
    let (cert_b, key_b, pem_b) = self_signed(tmp.path(), "b");
    std::fs::copy(&cert_b, &live_cert).unwrap();
    std::fs::copy(&key_b, &live_key).unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &serve.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let b = trusting(&pem_b);
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.get(format!("{base}/v2/")).send().await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(trusting(&pem_a)
        .get(format!("{base}/v2/"))
        .send()
        .await
        .is_err());

    // A broken file on reload keeps the certificate in use.
    std::fs::write(&live_cert, "not a certificate").unwrap();
    Command::new("kill")
        .args(["-HUP", &serve.child.id().to_string()])
        .status()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        trusting(&pem_b)
            .get(format!("{base}/v2/"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}

/// Authentication failures and permission changes are in the log with who and from
/// where; passwords and tokens never are.
#[tokio::test]
async fn the_audit_log_names_who_and_never_a_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let log_path = tmp.path().join("serve.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let serve = Serve::start_logging(&root, &["--log-format", "json"], log);
    let base = format!("http://{}", serve.addr);
    let http = reqwest::Client::new();
    wait_ready(&http, &format!("{base}/v2/")).await;
    ok(admin(
        &[
            "--root",
            root.to_str().unwrap(),
            "user",
            "add",
            "alice",
            "--password-stdin",
        ],
        "alice-secret-pw\n",
    ));
    // A wrong password, a garbage token, and a change over the API.
    let r = http
        .get(format!("{base}/v2/"))
        .basic_auth("alice", Some("wrong-secret-pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .get(format!("{base}/v2/"))
        .bearer_auth("garbage-token-value")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let token: serde_json::Value = http
        .get(format!(
            "{base}/token?service=berth&scope=repository:alice/a:pull"
        ))
        .basic_auth("alice", Some("alice-secret-pw"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().unwrap().to_string();
    http.get(format!("{base}/v2/alice/a/tags/list"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    ok(admin(
        &[
            "--url",
            &base,
            "--creds",
            "alice:alice-secret-pw",
            "org",
            "create",
            "myorg",
        ],
        "",
    ));
    // The durable record, on the folder.
    let trail: serde_json::Value =
        serde_json::from_str(&ok(admin(&["--root", root.to_str().unwrap(), "audit"], ""))).unwrap();
    assert_eq!(trail["changes"][0]["change"], "create organization myorg");
    assert_eq!(trail["changes"][0]["actor"], "alice");
    assert_eq!(trail["changes"][0]["from"], "127.0.0.1");
    assert_eq!(trail["changes"][1]["change"], "add user alice");
    drop(serve);
    let text = std::fs::read_to_string(&log_path).unwrap();
    let events: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["target"] == "berth::audit")
        .collect();
    let failed: Vec<&serde_json::Value> = events
        .iter()
        .filter(|v| v["fields"]["message"] == "authentication failed")
        .collect();
    assert!(
        failed
            .iter()
            .any(|v| v["fields"]["user"] == "alice" && v["fields"]["from"] == "127.0.0.1"),
        "{text}"
    );
    assert!(failed.len() >= 2, "{text}");
    assert!(
        events
            .iter()
            .any(|v| v["fields"]["message"] == "permission change"
                && v["fields"]["actor"] == "alice"
                && v["fields"]["from"] == "127.0.0.1"
                && v["fields"]["change"] == "create organization myorg"),
        "{text}"
    );
    for secret in [
        "alice-secret-pw",
        "wrong-secret-pw",
        "garbage-token-value",
        token.as_str(),
    ] {
        assert!(!text.contains(secret), "the log shows a secret");
    }
}

/// `token list|revoke`: refresh tokens (what `/token` hands out for
/// `access_type=offline`) listed by id, never by value, and ended one at a time by
/// their owner over the API, or all of an account's on the folder.
#[tokio::test]
async fn refresh_tokens_are_listed_and_revoked() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let root_s = root.to_str().unwrap();
    let serve = Serve::start(&root, &[]);
    let base = format!("http://{}", serve.addr);
    let http = reqwest::Client::new();
    wait_ready(&http, &format!("{base}/v2/")).await;
    for user in ["alice", "bob"] {
        ok(admin(
            &["--root", root_s, "user", "add", user, "--password-stdin"],
            &format!("{user}-pw\n"),
        ));
    }
    let refresh = |user: &'static str| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let v: serde_json::Value = http
                .post(format!("{base}/token"))
                .form(&[
                    ("grant_type", "password"),
                    ("service", "berth"),
                    ("access_type", "offline"),
                    ("username", user),
                    ("password", &format!("{user}-pw")),
                ])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["refresh_token"].as_str().unwrap().to_string()
        }
    };
    let uses = |token: String| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            http.post(format!("{base}/token"))
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("service", "berth"),
                    ("refresh_token", &token),
                ])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let (a1, a2, b1) = (
        refresh("alice").await,
        refresh("alice").await,
        refresh("bob").await,
    );
    let alice = ["--url", &base, "--creds", "alice:alice-pw"];
    let list: serde_json::Value =
        serde_json::from_str(&ok(admin(&[&alice[..], &["token", "list"]].concat(), ""))).unwrap();
    let tokens = list["tokens"].as_array().unwrap();
    // Alice sees her own two, by id only.
    assert_eq!(tokens.len(), 2, "{list}");
    assert!(tokens.iter().all(|t| t["account"] == "alice"));
    assert!(!list.to_string().contains(&a1) && !list.to_string().contains(&a2));
    // Not Bob's, and she may not end his.
    let out = admin(
        &[&alice[..], &["token", "list", "--account", "bob"]].concat(),
        "",
    );
    fails(out, "may not");
    let id = tokens[0]["id"].as_str().unwrap().to_string();
    let out = admin(&[&alice[..], &["token", "revoke", "bob"]].concat(), "");
    fails(out, "not allowed");
    ok(admin(
        &[&alice[..], &["token", "revoke", "alice", &id[..8]]].concat(),
        "",
    ));
    let left: Vec<u16> = vec![uses(a1).await, uses(a2).await];
    assert!(left.contains(&401) && left.contains(&200), "{left:?}");
    // On the folder: every session of Bob's.
    assert_eq!(uses(b1.clone()).await, 200);
    ok(admin(&["--root", root_s, "token", "revoke", "bob"], ""));
    assert_eq!(uses(b1).await, 401);
    let all: serde_json::Value =
        serde_json::from_str(&ok(admin(&["--root", root_s, "token", "list"], ""))).unwrap();
    assert_eq!(all["tokens"].as_array().unwrap().len(), 1, "{all}");
}

/// A self-signed certificate made as Docker's guide for a registry makes it
/// (`openssl req -x509`, which says `CA:TRUE`) is taken from `--cert-dir`, as skopeo
/// takes it; webpki alone refused it (`CaUsedAsEndEntity`). Another such certificate
/// in the folder does not stand in for the server's.
#[tokio::test]
async fn a_trusted_self_signed_ca_certificate_is_taken_as_skopeo_takes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let openssl = |name: &str, extra: &[&str]| {
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1"])
            .args(extra)
            .arg("-keyout")
            .arg(tmp.path().join(format!("{name}.key")))
            .arg("-out")
            .arg(tmp.path().join(format!("{name}.crt")))
            .output()
            .expect("this test needs openssl (apt-get install openssl)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(tmp.path().join(format!("{name}.crt")))
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&text.stdout).contains("CA:TRUE"));
        std::fs::read_to_string(tmp.path().join(format!("{name}.crt"))).unwrap()
    };
    let (server_pem, other_pem) = (openssl("server", &[]), openssl("other", &[]));
    let client_pem = openssl("client", &["-addext", "extendedKeyUsage=clientAuth"]);
    let serving = |name: &str| {
        Serve::start(
            &tmp.path().join(format!("root-{name}")),
            &[
                "--tls-cert",
                tmp.path().join(format!("{name}.crt")).to_str().unwrap(),
                "--tls-key",
                tmp.path().join(format!("{name}.key")).to_str().unwrap(),
            ],
        )
    };
    let (serve, client_serve) = (serving("server"), serving("client"));
    // (reqwest's rustls refuses the certificate too: readiness without checking it.)
    let unchecked = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    wait_ready(&unchecked, &format!("https://{}/v2/", serve.addr)).await;
    wait_ready(&unchecked, &format!("https://{}/v2/", client_serve.addr)).await;
    let folder = |name: &str, pem: &str| {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.crt"), pem).unwrap();
        dir.display().to_string()
    };
    let (trusted, wrong) = (folder("trusted", &server_pem), folder("wrong", &other_pem));
    let for_clients = folder("for-clients", &client_pem);
    let list_at = |program: &str, dir: &str, addr: &str| {
        Command::new(program)
            .args(["list-tags", "--cert-dir", dir])
            .arg(format!("docker://{addr}/x/y"))
            .env("HOME", tmp.path())
            .output()
            .unwrap()
    };
    let list = |program: &str, dir: &str| list_at(program, dir, &serve.addr);
    // The registry answers: the repository is unknown (not a TLS failure).
    for program in [BERTH, "skopeo"] {
        let out = list(program, &trusted);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("certificate"), "{program}: {err}");
        assert!(
            err.contains("x/y") || err.contains("404"),
            "{program}: {err}"
        );
        let out = list(program, &wrong);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("certificate"), "{program}: {err}");
    }
    // In words, as Go's x509 says them, not rustls' debug dump.
    let err = String::from_utf8_lossy(&list(BERTH, &wrong).stderr).into_owned();
    assert!(
        err.contains("x509: the server's certificate is a CA certificate"),
        "{err}"
    );
    assert!(!err.contains("OtherError"), "{err}");
    // Trusted byte for byte, but made for TLS clients alone (extendedKeyUsage
    // clientAuth): refused by both, as Go's x509 refuses it.
    for program in [BERTH, "skopeo"] {
        let out = list_at(program, &for_clients, &client_serve.addr);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{program}: {err}");
        assert!(err.contains("incompatible key usage"), "{program}: {err}");
    }
}
