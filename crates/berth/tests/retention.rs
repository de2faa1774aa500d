//! Retention rules through `berth registry retention|policy` and the collector: each
//! rule deletes the tags it should and no other, the dry run lists exactly what the
//! run then removes (tags, manifests, blobs), immutable tags and signatures' tags
//! stay, a namespace's `--never` patterns hold under a repository's own rule, the API
//! sets, shows and runs the same for the right people, and the background collector
//! applies the rules by itself.

use std::collections::BTreeSet;
use std::path::PathBuf;

use berth_image::Digest;
use serde_json::{json, Value};

mod common;
#[path = "common/registry_fixture.rs"]
mod registry_fixture;

use common::admin;
use registry_fixture::{metric, put_image, registry, until, Serve};

const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    serve: Serve,
}

impl Fixture {
    async fn start(users: &[(&str, bool)], serve_args: &[&str]) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("reg");
        std::fs::create_dir_all(&root).unwrap();
        for (user, superuser) in users {
            let mut args = vec!["user", "add", user, "--password-stdin"];
            if *superuser {
                args.push("--superuser");
            }
            registry(root.to_str().unwrap(), &args, "secret-pw\n");
        }
        let serve = Serve::start(&root, serve_args).await;
        Fixture {
            _dir: dir,
            root,
            serve,
        }
    }

    fn root(&self) -> &str {
        self.root.to_str().unwrap()
    }

    /// Pushes one image per tag (its own config, a layer shared by all), as `user`,
    /// then makes each tag look set `age` seconds ago, and every row two hours old
    /// (past a one-hour grace period).
    async fn push(&self, repo: &str, tags: &[(&str, i64)], user: Option<&str>) {
        let shared = format!("shared layer of {repo}").into_bytes();
        for (tag, _) in tags {
            let config = format!(
                r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}},"config":{{"Labels":{{"tag":"{tag}"}}}}}}"#,
                Digest::sha256_of(&shared)
            );
            put_image(
                &self.serve.url,
                repo,
                tag,
                config.as_bytes(),
                &[(LAYER, &shared)],
                user.map(|u| (u, "secret-pw")),
            )
            .await;
        }
        let db = rusqlite::Connection::open(self.root.join("meta.db")).unwrap();
        db.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
        let now = berth_now();
        for (tag, age) in tags {
            db.execute(
                "UPDATE tags SET updated_at = ?3 WHERE name = ?2 AND repository_id =
                 (SELECT id FROM repositories WHERE name = ?1)",
                rusqlite::params![repo, tag, now - age],
            )
            .unwrap();
        }
        for t in ["blobs", "repository_blobs", "manifests"] {
            db.execute(&format!("UPDATE {t} SET created_at = ?1"), [now - 7200])
                .unwrap();
        }
    }

    /// `berth registry gc --grace 1h [--dry-run]` on the folder (the server runs).
    fn gc(&self, dry_run: bool) -> Value {
        let mut args = vec!["gc", "--grace", "1h", "--root", self.root()];
        if dry_run {
            args.push("--dry-run");
        }
        let out = admin(&args, "");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    async fn tags(&self, repo: &str) -> BTreeSet<String> {
        let v: Value = reqwest::Client::new()
            .get(format!("{}/v2/{repo}/tags/list?n=1000", self.serve.url))
            .basic_auth("root", Some("secret-pw"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["tags"]
            .as_array()
            .map(|a| a.iter().map(|t| t.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    }

    /// A dry run, then the run: the same tags, manifests and blobs; returns the tags
    /// that went as `repository:tag`.
    fn dry_then_run(&self) -> BTreeSet<String> {
        let dry = self.gc(true);
        let done = self.gc(false);
        assert_eq!(dry["dry_run"], true);
        let set = |v: &Value, key: &str, f: &dyn Fn(&Value) -> String| -> BTreeSet<String> {
            v[key].as_array().unwrap().iter().map(f).collect()
        };
        let tag = |t: &Value| {
            format!(
                "{}:{}",
                t["repository"].as_str().unwrap(),
                t["tag"].as_str().unwrap()
            )
        };
        let manifest = |m: &Value| m["digest"].as_str().unwrap().to_string();
        let blob = |b: &Value| b["digest"].as_str().unwrap().to_string();
        assert_eq!(set(&dry, "tags", &tag), set(&done, "tags", &tag), "tags");
        assert_eq!(
            set(&dry, "manifests", &manifest),
            set(&done, "manifests", &manifest),
            "manifests: {dry:#} {done:#}"
        );
        assert_eq!(
            set(&dry, "blobs", &blob),
            set(&done, "blobs", &blob),
            "blobs"
        );
        assert_eq!(dry["tags_removed"], done["tags_removed"]);
        // Each tag that went held its own image (and config): both collected.
        assert_eq!(done["manifests_removed"], done["tags_removed"], "{done:#}");
        assert_eq!(done["blobs_removed"], done["tags_removed"], "{done:#}");
        for t in done["tags"].as_array().unwrap() {
            assert!(
                t["reason"].as_str().unwrap().starts_with("retention on "),
                "{t}"
            );
        }
        set(&done, "tags", &tag)
    }
}

fn berth_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn names(repo: &str, tags: &[&str]) -> BTreeSet<String> {
    tags.iter().map(|t| format!("{repo}:{t}")).collect()
}

fn strings(tags: &[&str]) -> BTreeSet<String> {
    tags.iter().map(|t| t.to_string()).collect()
}

/// Keep the newest N with a namespace's `--never`, then a repository's own rule that
/// replaces the namespace's yet keeps its `--never`; other repositories of the
/// namespace follow the namespace's rule; repositories outside it are left alone.
#[tokio::test]
async fn keep_last_with_never_and_a_repository_rule() {
    let f = Fixture::start(&[], &["--gc-interval", "0s"]).await;
    let tags = [
        ("v1", 50),
        ("ci-6", 100),
        ("ci-5", 200),
        ("ci-4", 300),
        ("ci-3", 400),
        ("ci-2", 500),
        ("ci-1", 600),
        ("release-1", 700),
    ];
    f.push("team/app", &tags, None).await;
    f.push("team/lib", &[("a", 10), ("b", 20), ("c", 30)], None)
        .await;
    f.push("other/app", &[("a", 10), ("b", 20), ("c", 30)], None)
        .await;
    registry(
        f.root(),
        &[
            "retention",
            "set",
            "team",
            "--keep-last",
            "2",
            "--never",
            "release-*",
        ],
        "",
    );
    let gone = f.dry_then_run();
    let mut want = names("team/app", &["ci-5", "ci-4", "ci-3", "ci-2", "ci-1"]);
    want.extend(names("team/lib", &["c"]));
    assert_eq!(gone, want);
    assert_eq!(
        f.tags("team/app").await,
        strings(&["v1", "ci-6", "release-1"])
    );
    assert_eq!(f.tags("other/app").await, strings(&["a", "b", "c"]));
    // Nothing more goes on a second run.
    assert!(f.dry_then_run().is_empty());

    // The repository's own rule (through `policy`, the same command) replaces the
    // namespace's, whose --never still holds.
    f.push("team/app", &[("ci-7", 20), ("ci-8", 30)], None)
        .await;
    registry(
        f.root(),
        &[
            "policy",
            "retention",
            "set",
            "team/app",
            "--keep-last",
            "1",
            "--keep",
            "ci-6",
        ],
        "",
    );
    let shown: Value = serde_json::from_slice(
        &admin(&["retention", "show", "team/app", "--root", f.root()], "").stdout,
    )
    .unwrap();
    assert_eq!(
        shown,
        json!({"name": "team/app", "keep_last": 1, "keep": ["ci-6"], "namespace_never": ["release-*"]})
    );
    // ci-7 is the newest, ci-6 kept by name, release-1 by the namespace's --never.
    assert_eq!(f.dry_then_run(), names("team/app", &["v1", "ci-8"]));
    assert_eq!(
        f.tags("team/app").await,
        strings(&["ci-7", "ci-6", "release-1"])
    );
    registry(f.root(), &["retention", "unset", "team/app"], "");
    registry(f.root(), &["retention", "unset", "team"], "");
    let out = admin(&["retention", "show", "team/app", "--root", f.root()], "");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no retention setting applies"));
}

/// `--older-than` with `--keep`: old tags go unless a pattern keeps them; an
/// immutable tag and a cosign signature's tag are outside the rule.
#[tokio::test]
async fn older_than_with_keep_patterns_immutable_and_signature_tags() {
    let f = Fixture::start(&[], &["--gc-interval", "0s"]).await;
    f.push(
        "shop/web",
        &[
            ("fresh", 60),
            ("old", 4000),
            ("older", 7300),
            ("v0.9", 9000),
            ("stable", 9999),
        ],
        None,
    )
    .await;
    // The signature of stable, as cosign tags it (the collector keeps an attachment
    // with its subject).
    let stable = reqwest::Client::new()
        .head(format!("{}/v2/shop/web/manifests/stable", f.serve.url))
        .basic_auth("root", Some("secret-pw"))
        .send()
        .await
        .unwrap();
    let stable = stable.headers()["docker-content-digest"].to_str().unwrap();
    let sig_tag = format!("sha256-{}.sig", stable.strip_prefix("sha256:").unwrap());
    f.push("shop/web", &[(&sig_tag, 9999)], None).await;
    registry(f.root(), &["immutable", "set", "shop/web", "stable"], "");
    registry(
        f.root(),
        &[
            "retention",
            "set",
            "shop",
            "--older-than",
            "1h",
            "--keep",
            "v*",
        ],
        "",
    );
    let shown: Value = serde_json::from_slice(
        &admin(&["retention", "show", "shop", "--root", f.root()], "").stdout,
    )
    .unwrap();
    assert_eq!(
        shown,
        json!({"name": "shop", "keep": ["v*"], "older_than": "1h"})
    );
    assert_eq!(f.dry_then_run(), names("shop/web", &["old", "older"]));
    let mut left = strings(&["fresh", "v0.9", "stable"]);
    left.insert(sig_tag);
    assert_eq!(f.tags("shop/web").await, left);
    // Settings are checked before they are stored.
    for bad in [
        vec!["retention", "set", "shop", "--never", "v*"],
        vec!["retention", "set", "shop", "--keep-last", "0"],
        vec!["retention", "set", "shop", "--older-than", "soon"],
        vec!["retention", "set", "shop", "--keep", "a/b"],
    ] {
        let mut args = bad.clone();
        args.extend(["--root", f.root()]);
        let out = admin(&args, "");
        assert!(!out.status.success(), "{bad:?} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

/// Over the API: a namespace's admin sets and reads its rule, others may not; the
/// superuser's dry run and run list the tags; the metrics count them; and the
/// background collector applies a rule by itself.
#[tokio::test]
async fn api_and_the_background_collector() {
    let f = Fixture::start(
        &[("root", true), ("alice", false), ("bob", false)],
        &["--gc-interval", "300ms", "--gc-grace", "1h"],
    )
    .await;
    let url = f.serve.url.clone();
    let set = |who: &str| {
        admin(
            &[
                "retention",
                "set",
                "alice",
                "--keep-last",
                "1",
                "--url",
                &url,
                "--creds",
                &format!("{who}:secret-pw"),
            ],
            "",
        )
    };
    let out = set("bob");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("may not"),
        "{out:?}"
    );
    let out = admin(
        &[
            "retention",
            "show",
            "alice",
            "--url",
            &url,
            "--creds",
            "bob:secret-pw",
        ],
        "",
    );
    assert!(!out.status.success());

    // Pushed before the rule: the collector's next tick applies it.
    f.push(
        "alice/app",
        &[("new", 10), ("mid", 20), ("old", 30)],
        Some("alice"),
    )
    .await;
    let out = set("alice");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = admin(
        &[
            "retention",
            "show",
            "alice",
            "--url",
            &url,
            "--creds",
            "alice:secret-pw",
        ],
        "",
    );
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown, json!({"name": "alice", "keep_last": 1}));
    until("the background collector to apply the rule", || async {
        f.tags("alice/app").await == strings(&["new"])
    })
    .await;
    assert_eq!(metric(&f.serve, "berth_gc_tags_expired_total").await, 2.0);

    // The API's dry run and run.
    f.push("alice/app", &[("newer", 5)], Some("alice")).await;
    let http = reqwest::Client::new();
    let gc = |body: Value| {
        http.post(format!("{url}/api/v1/gc"))
            .basic_auth("root", Some("secret-pw"))
            .json(&body)
            .send()
    };
    // The background collector may take "new" first; either way one tag goes.
    let dry: Value = gc(json!({"dry_run": true}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let done: Value = gc(json!({})).await.unwrap().json().await.unwrap();
    let total = metric(&f.serve, "berth_gc_tags_expired_total").await;
    if done["tags_removed"] == 1 {
        assert_eq!(dry["tags"], done["tags"]);
        assert_eq!(done["tags"][0]["tag"], "new");
        assert_eq!(
            done["tags"][0]["reason"],
            "retention on alice: not among the 1 newest"
        );
    }
    assert_eq!(total, 3.0);
    assert_eq!(f.tags("alice/app").await, strings(&["newer"]));
}
