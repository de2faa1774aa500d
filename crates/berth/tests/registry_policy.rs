//! `berth registry immutable|quota|usage` on a data folder and against a running
//! server: the settings reach the server at once, a quota refuses a push over it, and
//! sizes are read as people write them.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{admin, free_port, sha256, BERTH};

/// A `berth serve` process, killed when dropped.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(root: &Path) -> (Serve, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let child = Command::new(BERTH)
        .args(["serve", "--listen", &addr, "--root"])
        .arg(root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("berth serve starts");
    (Serve(child), format!("http://{addr}"))
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

fn json(out: Output) -> serde_json::Value {
    serde_json::from_str(&ok(out)).unwrap()
}

/// `POST /v2/<repo>/blobs/uploads/?digest=` as root: the status.
async fn push(http: &reqwest::Client, base: &str, repo: &str, bytes: Vec<u8>) -> u16 {
    let d = sha256(&bytes);
    http.post(format!("{base}/v2/{repo}/blobs/uploads/?digest={d}"))
        .basic_auth("root", Some("root-pw"))
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// `creds` then `rest`: one argument list.
fn with<'a>(creds: &[&'a str], rest: &[&'a str]) -> Vec<&'a str> {
    [creds, rest].concat()
}

#[tokio::test]
async fn quotas_usage_and_immutable_tags_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let root_s = root.to_str().unwrap();
    let (_serve, base) = serve(&root);
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while http.get(format!("{base}/v2/")).send().await.is_err() {
        assert!(Instant::now() < deadline, "berth serve did not answer");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    for (user, extra) in [("root", Some("--superuser")), ("alice", None)] {
        let mut args = vec!["--root", root_s, "user", "add", user, "--password-stdin"];
        args.extend(extra);
        ok(admin(&args, &format!("{user}-pw\n")));
    }
    let url = base.as_str();
    let as_root = ["--url", url, "--creds", "root:root-pw"];

    // A size that is none is refused by the parser; quotas are for superusers.
    let out = admin(&with(&as_root, &["quota", "set", "myorg", "12parsecs"]), "");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a size"));
    let out = admin(
        &[
            "--url",
            url,
            "--creds",
            "alice:alice-pw",
            "quota",
            "set",
            "alice",
            "1GiB",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("may not"));
    ok(admin(
        &with(&as_root, &["quota", "set", "myorg", "1MiB"]),
        "",
    ));

    // 600 KiB fits, 600 more does not; usage says so, on the folder and over HTTP.
    let blob = |seed: u8| vec![seed; 600 * 1024];
    assert_eq!(push(&http, url, "myorg/app", blob(1)).await, 201);
    assert_eq!(push(&http, url, "myorg/app", blob(2)).await, 403);
    let want = serde_json::json!({"namespaces": [
        {"namespace": "myorg", "bytes": 614400, "quota": 1048576}
    ]});
    assert_eq!(json(admin(&with(&as_root, &["usage", "myorg"]), "")), want);
    assert_eq!(json(admin(&["--root", root_s, "usage"], "")), want);
    ok(admin(&["--root", root_s, "quota", "unset", "myorg"], ""));
    assert_eq!(push(&http, url, "myorg/app", blob(2)).await, 201);

    // Immutable tags: set over HTTP, shown in force on a repository from the folder.
    ok(admin(
        &with(&as_root, &["immutable", "set", "myorg", "v*", "release-*"]),
        "",
    ));
    assert_eq!(
        json(admin(
            &["--root", root_s, "immutable", "show", "myorg/app"],
            ""
        )),
        serde_json::json!({"name": "myorg", "patterns": ["v*", "release-*"]})
    );
    ok(admin(
        &["--root", root_s, "immutable", "unset", "myorg"],
        "",
    ));
    let out = admin(&with(&as_root, &["immutable", "show", "myorg/app"]), "");
    assert_eq!(out.status.code(), Some(1));
}
