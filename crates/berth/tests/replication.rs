//! Replication rules of a running `berth serve`, set with `berth registry replicate
//! --url` (so through the API): images pushed to berth reach a real docker-registry on
//! push and a second berth (with token auth) on demand, byte for byte, with their
//! simple signatures, sigstore attachment and referrers; only what the rules name
//! goes; a target that is down makes the copy fail, and it is retried until the target
//! is back; a second run skips what the target has; rules and their status are for
//! superusers only and never show the target's password.

use std::time::Duration;

use berth_image::Digest;
use serde_json::{json, Value};

mod common;
#[path = "common/registry_fixture.rs"]
mod registry_fixture;

use common::distribution::Distribution;
use registry_fixture::{
    metric, ok, put_image, put_opaque_signature, registry, seeded_image, until, Serve,
};

const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const ACCEPT: &str =
    "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";
const PW: &str = "secret-pw";

/// One image pushed to the source: its manifest's digest and bytes of every blob.
struct Image {
    digest: Digest,
    blobs: Vec<Vec<u8>>,
}

async fn push(serve: &Serve, repo: &str, tag: &str, seed: u8) -> Image {
    let (config, layer) = seeded_image(seed, 200);
    let digest = put_image(
        &serve.url,
        repo,
        tag,
        &config,
        &[(LAYER, &layer)],
        Some(("root", PW)),
    )
    .await;
    Image {
        digest,
        blobs: vec![config, layer],
    }
}

/// The digest `base` serves for `repo:reference`, if any (as `user`).
async fn digest_at(
    base: &str,
    repo: &str,
    reference: &str,
    user: Option<(&str, &str)>,
) -> Option<Digest> {
    let mut rb = reqwest::Client::new()
        .get(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("accept", ACCEPT);
    if let Some((u, p)) = user {
        rb = rb.basic_auth(u, Some(p));
    }
    let r = rb.send().await.ok()?;
    if r.status() != 200 {
        return None;
    }
    Some(Digest::sha256_of(&r.bytes().await.ok()?))
}

/// Checks that `base` serves every blob of `image` in `repo` byte for byte.
async fn same_blobs(base: &str, repo: &str, image: &Image, user: Option<(&str, &str)>) {
    for blob in &image.blobs {
        let d = Digest::sha256_of(blob);
        let mut rb = reqwest::Client::new().get(format!("{base}/v2/{repo}/blobs/{d}"));
        if let Some((u, p)) = user {
            rb = rb.basic_auth(u, Some(p));
        }
        let r = rb.send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{base} {repo} blob {d}");
        assert!(
            r.bytes().await.unwrap() == blob[..],
            "{base} {repo} blob {d}: other bytes"
        );
    }
}

/// `berth registry --url SOURCE --creds root:… ARGS`.
fn replicate(source: &Serve, args: &[&str]) -> String {
    let mut all = vec![
        "registry",
        "--url",
        &source.url,
        "--creds",
        "root:secret-pw",
        "replicate",
    ];
    all.extend_from_slice(args);
    ok(registry_fixture::berth(&all))
}

fn status(source: &Serve, rule: &str) -> Value {
    let v: Value = serde_json::from_str(&replicate(source, &["show", rule])).unwrap();
    v["status"].clone()
}

/// The JSON the mirror answers at `path`, as its user.
async fn mirror_json(mirror: &Serve, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{}{path}", mirror.url))
        .basic_auth("mirror", Some(PW))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// An artifact whose subject is `subject`, pushed by digest (no tag); its digest.
async fn push_referrer(serve: &Serve, repo: &str, subject: &Digest) -> Digest {
    let empty = b"{}".to_vec();
    let r = reqwest::Client::new()
        .post(format!(
            "{}/v2/{repo}/blobs/uploads/?digest={}",
            serve.url,
            Digest::sha256_of(&empty)
        ))
        .basic_auth("root", Some(PW))
        .body(empty.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let desc = |t: &str, d: String, n: usize| json!({"mediaType": t, "digest": d, "size": n});
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "artifactType": "application/spdx+json",
        "config": desc("application/vnd.oci.empty.v1+json", Digest::sha256_of(&empty).to_string(), 2),
        "layers": [desc("application/vnd.oci.empty.v1+json", Digest::sha256_of(&empty).to_string(), 2)],
        "subject": desc(OCI_MANIFEST, subject.to_string(), 0),
    }))
    .unwrap();
    let digest = Digest::sha256_of(&manifest);
    let r = reqwest::Client::new()
        .put(format!("{}/v2/{repo}/manifests/{digest}", serve.url))
        .basic_auth("root", Some(PW))
        .header("content-type", OCI_MANIFEST)
        .body(manifest)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    digest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replication_to_docker_registry_and_to_a_second_berth() {
    let tmp = tempfile::tempdir().unwrap();
    let (src_root, dst_root) = (tmp.path().join("source"), tmp.path().join("mirror"));
    for (root, user, superuser) in [
        (&src_root, "root", true),
        (&src_root, "dev", false),
        (&dst_root, "mirror", true),
    ] {
        let mut args = vec!["user", "add", user, "--password-stdin"];
        if superuser {
            args.push("--superuser");
        }
        registry(root.to_str().unwrap(), &args, "secret-pw\n");
    }
    let mut dist = Distribution::start(&tmp.path().join("distribution"), None);
    let mirror = Serve::start(&dst_root, &[]).await;
    let source = Serve::start(&src_root, &[]).await;
    let mirror_user = Some(("mirror", PW));

    replicate(
        &source,
        &[
            "add",
            "to-dist",
            "--to",
            &dist.url(),
            "--repos",
            "team/*",
            "--tags",
            "v*",
            "--on-push",
        ],
    );
    replicate(
        &source,
        &[
            "add",
            "to-mirror",
            "--to",
            &mirror.url,
            "--dest-creds",
            "mirror:secret-pw",
            "--repos",
            "team/*",
            "--schedule",
            "1h",
        ],
    );

    // On push: the matching tag goes to docker-registry byte for byte, the others not.
    let v1 = push(&source, "team/app", "v1", 3).await;
    let dev = push(&source, "team/app", "dev", 5).await;
    let other = push(&source, "other/app", "v1", 7).await;
    until("team/app:v1 on docker-registry", || async {
        digest_at(&dist.url(), "team/app", "v1", None).await == Some(v1.digest.clone())
    })
    .await;
    same_blobs(&dist.url(), "team/app", &v1, None).await;
    // A sigstore attachment of v1 goes with its repository, whatever the tag patterns.
    let att_tag = format!("sha256-{}.sig", v1.digest.hex());
    let att = push(&source, "team/app", &att_tag, 9).await;
    until("the attachment on docker-registry", || async {
        digest_at(&dist.url(), "team/app", &att_tag, None).await == Some(att.digest.clone())
    })
    .await;
    // So does an attestation (cosign's `.att`), as retention keeps it.
    let attest_tag = format!("sha256-{}.att", v1.digest.hex());
    let attest = push(&source, "team/app", &attest_tag, 10).await;
    until("the attestation on docker-registry", || async {
        digest_at(&dist.url(), "team/app", &attest_tag, None).await == Some(attest.digest.clone())
    })
    .await;
    assert_eq!(digest_at(&dist.url(), "team/app", "dev", None).await, None);
    assert_eq!(digest_at(&dist.url(), "other/app", "v1", None).await, None);

    // A target that is down: the copy fails, says why, and is tried again until the
    // target is back (on the same address).
    let addr = dist.addr.clone();
    let dist_dir = dist.dir.clone();
    dist.stop();
    let v2 = push(&source, "team/app", "v2", 11).await;
    until("the failure in the rule's status", || async {
        let s = status(&source, "to-dist");
        s["errors"].as_u64() >= Some(1) && s["retrying"] == 1
    })
    .await;
    let s = status(&source, "to-dist");
    assert!(
        s["last_error"]
            .as_str()
            .unwrap()
            .starts_with("team/app:v2: "),
        "{s}"
    );
    let dist = Distribution::start(&dist_dir, Some(&addr));
    until("team/app:v2 on docker-registry after a retry", || async {
        digest_at(&dist.url(), "team/app", "v2", None).await == Some(v2.digest.clone())
    })
    .await;
    same_blobs(&dist.url(), "team/app", &v2, None).await;
    until("the retry done", || async {
        status(&source, "to-dist")["retrying"] == 0
    })
    .await;

    // A run on demand to the second berth (token auth): every tag of team/*, with the
    // simple signature and the referrer of v1.
    put_opaque_signature(&source, "team/app", &v1.digest.to_string(), ("root", PW)).await;
    let referrer = push_referrer(&source, "team/app", &v1.digest).await;
    let started = status(&source, "to-mirror")["last_run_finished"].as_i64();
    replicate(&source, &["run", "to-mirror"]);
    until("a finished run to the mirror", || async {
        let s = status(&source, "to-mirror");
        s["running"] == false && s["last_run_finished"].as_i64() != started
    })
    .await;
    let s = status(&source, "to-mirror");
    assert_eq!(s["errors"], 0, "{s}");
    for (tag, image) in [
        ("v1", &v1),
        ("dev", &dev),
        ("v2", &v2),
        (att_tag.as_str(), &att),
    ] {
        assert_eq!(
            digest_at(&mirror.url, "team/app", tag, mirror_user).await,
            Some(image.digest.clone()),
            "team/app:{tag} on the mirror"
        );
        same_blobs(&mirror.url, "team/app", image, mirror_user).await;
    }
    assert_eq!(
        digest_at(&mirror.url, "other/app", "v1", mirror_user).await,
        None
    );
    assert!(other.blobs.len() == 2);
    let sigs = mirror_json(
        &mirror,
        &format!("/extensions/v2/team/app/signatures/{}", v1.digest),
    )
    .await;
    assert_eq!(sigs["signatures"][0]["content"], "c2lnbmF0dXJl", "{sigs}");
    let refs = mirror_json(&mirror, &format!("/v2/team/app/referrers/{}", v1.digest)).await;
    assert_eq!(
        refs["manifests"][0]["digest"],
        referrer.to_string(),
        "{refs}"
    );

    // A second run copies nothing again: each of the three tags (v1 with its
    // attachment) is found there. (The rule's first scheduled run, at once when it
    // was added, copied some of them already.)
    let copied = s["images_copied"].as_u64().unwrap();
    let skipped = s["images_skipped"].as_u64().unwrap();
    assert!(copied >= 3, "{s}");
    let finished = s["last_run_finished"].as_i64();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    replicate(&source, &["run", "to-mirror"]);
    until("a second run", || async {
        let s = status(&source, "to-mirror");
        s["running"] == false && s["last_run_finished"].as_i64() != finished
    })
    .await;
    let s = status(&source, "to-mirror");
    assert_eq!(s["images_copied"].as_u64(), Some(copied), "{s}");
    assert_eq!(s["images_skipped"].as_u64(), Some(skipped + 3), "{s}");

    // Metrics, and who may see the rules: superusers, never the password.
    assert!(
        metric(
            &source,
            r#"berth_replication_images_total{rule="to-dist",result="copied"}"#
        )
        .await
            >= 3.0
    );
    assert!(
        metric(
            &source,
            r#"berth_replication_images_total{rule="to-dist",result="failed"}"#
        )
        .await
            >= 1.0
    );
    let listed = replicate(&source, &["list"]);
    assert!(
        listed.contains("to-mirror") && !listed.contains(PW),
        "{listed}"
    );
    let denied = reqwest::Client::new()
        .get(format!("{}/api/v1/replication", source.url))
        .basic_auth("dev", Some(PW))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status().as_u16(), 403);
    let out = registry_fixture::berth(&[
        "registry",
        "--url",
        &source.url,
        "--creds",
        "dev:secret-pw",
        "replicate",
        "add",
        "x",
        "--to",
        "http://127.0.0.1:1",
        "--on-push",
    ]);
    assert!(!out.status.success());
    let bad = registry_fixture::berth(&[
        "registry",
        "--url",
        &source.url,
        "--creds",
        "root:secret-pw",
        "replicate",
        "add",
        "y",
        "--to",
        "http://127.0.0.1:1",
    ]);
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("on push (--on-push), on a schedule"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    replicate(&source, &["remove", "to-dist"]);
    assert!(!replicate(&source, &["list"]).contains("to-dist"));
}
