//! Content policies over HTTP: immutable tags (a tag matching a rule never moves to
//! another manifest nor goes; the same manifest again is fine) and namespace quotas (a
//! blob over the quota is refused with `403 DENIED` before it is stored).
//!
//! Run with `cargo test -p berth-registry --test policy`.

#[path = "api/support.rs"]
mod support;

#[path = "api/accounts.rs"]
mod accounts;

use accounts::*;
use berth_auth::{Actor, Change, Level, Secret};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use serde_json::{json, Value};
use support::*;

/// A registry with superuser `root`; alice founded `myorg` (its admin), bob may write
/// to it.
async fn registry() -> Server {
    let srv = Server::start().await;
    for (u, superuser) in [("root", true), ("alice", false), ("bob", false)] {
        apply(
            &srv,
            &Actor::local(),
            Change::UserAdd {
                name: u.into(),
                password: Secret(format!("{u}-pw")),
                superuser,
            },
        );
    }
    apply(
        &srv,
        &actor("alice"),
        Change::OrgCreate {
            name: "myorg".into(),
        },
    );
    apply(
        &srv,
        &actor("alice"),
        Change::Grant {
            subject: "bob".into(),
            level: Level::Write,
            target: "myorg".into(),
        },
    );
    srv
}

async fn status_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// An image (config unique per seed, one shared layer) pushed as blobs; its manifest.
async fn image(api: &Api, repo: &str, seed: u64) -> Vec<u8> {
    let config = config_bytes(seed);
    let layer = data(7, 1000);
    push_blob(api, repo, &config).await;
    push_blob(api, repo, &layer).await;
    manifest_bytes(&image_manifest(
        &Desc::of(OCI_CONFIG, &config),
        &[Desc::of(OCI_LAYER, &layer)],
    ))
}

async fn assert_immutable(api: &Api, repo: &str, tag: &str, m: &[u8], rule: &str, on: &str) {
    let v = expect_error(
        put_manifest(api, repo, tag, OCI_MANIFEST, m).await,
        403,
        "DENIED",
    )
    .await;
    assert_eq!(
        v["errors"][0]["message"],
        format!("tag {tag} of {repo} is immutable (rule \"{rule}\" on {on})"),
        "{v}"
    );
}

/// `admin` (an admin of myorg) makes myorg's `v*` tags immutable.
async fn make_v_tags_immutable(admin: &Api) {
    let set = admin
        .put("/api/v1/immutable/myorg")
        .json(&json!({ "patterns": ["v*"] }));
    let (s, v) = status_of(send(set).await).await;
    assert_eq!(s, 200, "{v}");
}

async fn tag_digest(api: &Api, repo: &str, tag: &str) -> String {
    let (h, _) = expect_status(
        send(api.head(&format!("/v2/{repo}/manifests/{tag}"))).await,
        200,
    )
    .await;
    header_of(&h, "docker-content-digest").unwrap()
}

#[tokio::test]
async fn immutable_tags_never_move_nor_go() {
    let srv = registry().await;
    let (alice, bob) = (as_user(&srv, "alice"), as_user(&srv, "bob"));
    let repo = "myorg/app";
    let (a, b) = (image(&bob, repo, 1).await, image(&bob, repo, 2).await);
    let (da, db) = (sha256(&a), sha256(&b));

    // Only an admin of the namespace sets it.
    let set = |api: &Api, name: &str, patterns: &[&str]| {
        api.put(&format!("/api/v1/immutable/{name}"))
            .json(&json!({ "patterns": patterns }))
    };
    let (s, v) = status_of(send(set(&bob, "myorg", &["v*"])).await).await;
    assert_eq!(s, 403, "{v}");
    let (s, v) = status_of(send(set(&alice, "myorg", &["v/*"])).await).await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = status_of(send(set(&alice, "myorg", &["v*"])).await).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = status_of(send(bob.get("/api/v1/immutable/myorg/app")).await).await;
    assert_eq!(
        (s, &v),
        (200, &json!({"name": "myorg", "patterns": ["v*"]}))
    );

    // v1: pushed once, again with the same manifest (a retry), never to another.
    push_manifest(&bob, repo, "v1", OCI_MANIFEST, &a).await;
    push_manifest(&bob, repo, "v1", OCI_MANIFEST, &a).await;
    assert_immutable(&bob, repo, "v1", &b, "v*", "myorg").await;
    assert_eq!(tag_digest(&bob, repo, "v1").await, da);
    // Nor deleted, by tag or by the digest it is on.
    let v = expect_error(
        send(bob.delete(&format!("/v2/{repo}/manifests/v1"))).await,
        403,
        "DENIED",
    )
    .await;
    assert_eq!(
        v["errors"][0]["message"],
        "tag v1 of myorg/app is immutable (rule \"v*\" on myorg)"
    );
    expect_error(
        send(bob.delete(&format!("/v2/{repo}/manifests/{da}"))).await,
        403,
        "DENIED",
    )
    .await;
    assert_eq!(tag_digest(&bob, repo, "v1").await, da);
    // An immutable tag that is not there is just unknown.
    expect_error(
        send(bob.delete(&format!("/v2/{repo}/manifests/v9"))).await,
        404,
        "MANIFEST_UNKNOWN",
    )
    .await;

    // latest matches no rule: it moves and goes freely.
    push_manifest(&bob, repo, "latest", OCI_MANIFEST, &a).await;
    push_manifest(&bob, repo, "latest", OCI_MANIFEST, &b).await;
    assert_eq!(tag_digest(&bob, repo, "latest").await, db);
    expect_status(
        send(bob.delete(&format!("/v2/{repo}/manifests/latest"))).await,
        202,
    )
    .await;

    // The repository's own setting adds to its namespace's and cannot lift it (an
    // admin of the repository alone may set its own).
    let (s, v) = status_of(send(set(&alice, repo, &["release-*"])).await).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = status_of(send(bob.get("/api/v1/immutable/myorg/app")).await).await;
    assert_eq!(
        (s, &v),
        (
            200,
            &json!({"name": repo, "patterns": ["release-*"],
                    "namespace": {"name": "myorg", "patterns": ["v*"]}})
        )
    );
    assert_immutable(&bob, repo, "v1", &b, "v*", "myorg").await;
    push_manifest(&bob, repo, "release-1", OCI_MANIFEST, &a).await;
    assert_immutable(&bob, repo, "release-1", &b, "release-*", repo).await;
    // Another repository of the namespace still follows the namespace.
    let other = "myorg/other";
    let c = image(&bob, other, 3).await;
    push_manifest(&bob, other, "v2", OCI_MANIFEST, &c).await;
    let d = image(&bob, other, 4).await;
    assert_immutable(&bob, other, "v2", &d, "v*", "myorg").await;

    // Unset: the namespace's rule alone applies, then nothing.
    let (s, _) = status_of(send(alice.delete(&format!("/api/v1/immutable/{repo}"))).await).await;
    assert_eq!(s, 200);
    assert_immutable(&bob, repo, "v1", &b, "v*", "myorg").await;
    push_manifest(&bob, repo, "release-1", OCI_MANIFEST, &b).await;
    let (s, _) = status_of(send(alice.delete("/api/v1/immutable/myorg")).await).await;
    assert_eq!(s, 200);
    push_manifest(&bob, repo, "v1", OCI_MANIFEST, &b).await;
    push_manifest(&bob, repo, "v1", OCI_MANIFEST, &a).await;
    assert_eq!(tag_digest(&bob, repo, "v1").await, da);
    expect_status(
        send(bob.delete(&format!("/v2/{repo}/manifests/v1"))).await,
        202,
    )
    .await;
    let (s, _) = status_of(send(bob.get("/api/v1/immutable/myorg")).await).await;
    assert_eq!(s, 404);
}

/// The content behind an immutable tag on an index stays: a DELETE of a child
/// manifest (at any depth) is refused naming the rule, since the collector would then
/// remove that platform's layers. It used to be accepted. Children of indexes under
/// mutable tags go as before.
#[tokio::test]
async fn children_of_an_immutably_tagged_index_stay() {
    let srv = registry().await;
    let (alice, bob) = (as_user(&srv, "alice"), as_user(&srv, "bob"));
    let repo = "myorg/app";
    make_v_tags_immutable(&alice).await;
    let mut images = Vec::new();
    for seed in 1..=4 {
        let m = image(&bob, repo, seed).await;
        push_manifest(&bob, repo, &sha256(&m), OCI_MANIFEST, &m).await;
        images.push(m);
    }
    // v1 -> index [1, inner]; inner (untagged) -> [2]; latest -> index [3].
    let inner = manifest_bytes(&index_manifest(
        OCI_INDEX,
        &[Desc::of(OCI_MANIFEST, &images[1])],
    ));
    push_manifest(&bob, repo, &sha256(&inner), OCI_INDEX, &inner).await;
    let v1 = manifest_bytes(&index_manifest(
        OCI_INDEX,
        &[
            Desc::of(OCI_MANIFEST, &images[0]),
            Desc::of(OCI_INDEX, &inner),
        ],
    ));
    push_manifest(&bob, repo, "v1", OCI_INDEX, &v1).await;
    let latest = manifest_bytes(&index_manifest(
        OCI_INDEX,
        &[Desc::of(OCI_MANIFEST, &images[2])],
    ));
    push_manifest(&bob, repo, "latest", OCI_INDEX, &latest).await;

    let index = sha256(&v1);
    for child in [&images[0], &inner, &images[1]] {
        let d = sha256(child);
        let v = expect_error(
            send(bob.delete(&format!("/v2/{repo}/manifests/{d}"))).await,
            403,
            "DENIED",
        )
        .await;
        assert_eq!(
            v["errors"][0]["message"],
            format!(
                "manifest {d} of {repo} is part of index {index}, whose tag v1 is immutable \
                 (rule \"v*\" on myorg)"
            ),
            "{v}"
        );
        expect_status(
            send(bob.get(&format!("/v2/{repo}/manifests/{d}"))).await,
            200,
        )
        .await;
    }
    // Nor does a blob an image under the tag needs (the config of a child two levels
    // down, the layer they share): its link went, and the collector then took it.
    for blob in [config_bytes(2), data(7, 1000)] {
        let d = sha256(&blob);
        let v = expect_error(
            send(bob.delete(&format!("/v2/{repo}/blobs/{d}"))).await,
            403,
            "DENIED",
        )
        .await;
        let message = v["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with(&format!("blob {d} of {repo} is part of manifest "))
                && message.ends_with("whose tag v1 is immutable (rule \"v*\" on myorg)"),
            "{v}"
        );
        expect_status(send(bob.get(&format!("/v2/{repo}/blobs/{d}"))).await, 200).await;
    }
    // Nor do its signatures, for a pusher (where signatures are required the tag would
    // stop pulling); an admin of the repository may still clear them.
    let child = sha256(&images[0]);
    let sigs = format!("/extensions/v2/{repo}/signatures/{child}");
    let signature = json!({
        "schemaVersion": 2, "name": format!("{child}@0a"), "type": "atomic", "content": "c2ln",
    });
    expect_status(send(bob.put(&sigs).json(&signature)).await, 201).await;
    let v = expect_error(send(bob.delete(&sigs)).await, 403, "DENIED").await;
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("whose tag v1 is immutable")),
        "{v}"
    );
    expect_status(send(alice.delete(&sigs)).await, 202).await;
    // Under a mutable tag, or under none, a manifest goes, and so do blobs.
    for m in [&images[2], &images[3]] {
        expect_status(
            send(bob.delete(&format!("/v2/{repo}/manifests/{}", sha256(m)))).await,
            202,
        )
        .await;
    }
    for seed in [3, 4] {
        let d = sha256(&config_bytes(seed));
        expect_status(
            send(bob.delete(&format!("/v2/{repo}/blobs/{d}"))).await,
            202,
        )
        .await;
    }
}

/// The sigstore signatures of an immutably tagged release (its `sha256-<hex>.sig`
/// tag) may be added to, as cosign adds them, but not taken away by a pusher: where
/// signatures are required, the release would stop pulling. An admin still may.
#[tokio::test]
async fn sigstore_signatures_of_an_immutable_release_stay() {
    let srv = registry().await;
    let (alice, bob) = (as_user(&srv, "alice"), as_user(&srv, "bob"));
    let repo = "myorg/app";
    make_v_tags_immutable(&alice).await;
    let release = image(&bob, repo, 41).await;
    push_manifest(&bob, repo, "v1", OCI_MANIFEST, &release).await;
    let tag = format!("sha256-{}.sig", &sha256(&release)["sha256:".len()..]);
    let payload = |n: u8| format!("{{\"critical\":{{\"n\":{n}}}}}").into_bytes();
    let config = b"{}".to_vec();
    push_blob(&bob, repo, &config).await;
    let attachment = |signatures: &[u8]| {
        let layers: Vec<Desc> = signatures
            .iter()
            .map(|n| {
                Desc::of(
                    "application/vnd.dev.cosign.simplesigning.v1+json",
                    &payload(*n),
                )
            })
            .collect();
        manifest_bytes(&image_manifest(&Desc::of(OCI_CONFIG, &config), &layers))
    };
    for n in 1..=3 {
        push_blob(&bob, repo, &payload(n)).await;
    }
    let (one, two, other) = (attachment(&[1]), attachment(&[1, 2]), attachment(&[3]));
    // Signing, then signing again (one more layer): fine.
    push_manifest(&bob, repo, &tag, OCI_MANIFEST, &one).await;
    push_manifest(&bob, repo, &tag, OCI_MANIFEST, &two).await;
    // Dropping a signature, or the tag, or the attachment: refused, naming the rule.
    let resp = put_manifest(&bob, repo, &tag, OCI_MANIFEST, &other).await;
    let v = expect_error(resp, 403, "DENIED").await;
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("whose tag v1 is immutable")),
        "{v}"
    );
    let by_tag = format!("/v2/{repo}/manifests/{tag}");
    expect_error(send(bob.delete(&by_tag)).await, 403, "DENIED").await;
    let by_digest = format!("/v2/{repo}/manifests/{}", sha256(&two));
    expect_error(send(bob.delete(&by_digest)).await, 403, "DENIED").await;
    let (_, body) = expect_status(send(bob.get(&by_tag)).await, 200).await;
    assert_eq!(body, two);
    // A release under no immutable tag: its signatures are the pusher's to change.
    let loose = image(&bob, repo, 42).await;
    push_manifest(&bob, repo, "latest", OCI_MANIFEST, &loose).await;
    let loose_tag = format!("sha256-{}.sig", &sha256(&loose)["sha256:".len()..]);
    push_manifest(&bob, repo, &loose_tag, OCI_MANIFEST, &two).await;
    push_manifest(&bob, repo, &loose_tag, OCI_MANIFEST, &other).await;
    // An admin of the repository may clear them.
    expect_status(send(alice.delete(&by_tag)).await, 202).await;
}

/// Pushes `bytes` to `repo` with one `POST …?digest=`: the status and the answer.
async fn post_blob(api: &Api, repo: &str, bytes: &[u8]) -> (u16, Value) {
    status_of(push_blob_monolithic(api, repo, bytes, &sha256(bytes)).await).await
}

fn has_file(srv: &Server, digest: &str) -> bool {
    let hex = digest.trim_start_matches("sha256:");
    srv.blob_files().iter().any(|p| p.ends_with(hex))
}

#[tokio::test]
async fn quotas_refuse_blobs_over_them_before_they_are_stored() {
    let srv = registry().await;
    let (root, alice, bob) = (
        as_user(&srv, "root"),
        as_user(&srv, "alice"),
        as_user(&srv, "bob"),
    );
    let quota = |api: &Api, ns: &str, bytes: u64| {
        api.put(&format!("/api/v1/quotas/{ns}"))
            .json(&json!({ "bytes": bytes }))
    };
    // Not even the namespace's admin sets its quota.
    let (s, v) = status_of(send(quota(&alice, "myorg", 1 << 20)).await).await;
    assert_eq!(s, 403, "{v}");
    let (s, v) = status_of(send(quota(&root, "myorg", 1 << 20)).await).await;
    assert_eq!(s, 200, "{v}");

    let blob = |seed| data(seed, 400 * 1024);
    let (a, b, c) = (blob(1), blob(2), blob(3));
    push_blob(&bob, "myorg/app", &a).await; // chunked session: POST + PUT
    let (s, v) = post_blob(&bob, "myorg/app", &b).await;
    assert_eq!(s, 201, "{v}");

    // 800 KiB used; 400 more would exceed 1 MiB: refused, in every way it can come.
    let dc = sha256(&c);
    let (s, v) = post_blob(&bob, "myorg/app", &c).await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["errors"][0]["code"], "DENIED");
    assert_eq!(
        v["errors"][0]["message"],
        "quota of myorg exceeded: 1048576 bytes allowed, 819200 used, 409600 more needed"
    );
    let loc = start_upload(&bob, "myorg/app").await;
    let (s, v) = status_of(patch_chunk(&bob, &loc, 0, &c).await).await;
    assert_eq!(
        (s, v["errors"][0]["code"].as_str()),
        (403, Some("DENIED")),
        "{v}"
    );
    // A chunked body, its length said nowhere: refused once it passes the quota, not
    // at the commit after it filled the disk, and nothing of it is kept (a chunk at
    // offset 0 is taken next).
    let loc = start_upload(&bob, "myorg/app").await;
    let frames: Vec<Result<Vec<u8>, std::io::Error>> =
        c.chunks(64 * 1024).map(|f| Ok(f.to_vec())).collect();
    let chunked = bob
        .patch(&loc)
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            frames,
        )));
    let (s, v) = status_of(send(chunked).await).await;
    assert_eq!(
        (s, v["errors"][0]["code"].as_str()),
        (403, Some("DENIED")),
        "{v}"
    );
    let (s, v) = status_of(patch_chunk(&bob, &loc, 0, &c[..1000]).await).await;
    assert_eq!(s, 202, "the refused chunk was kept: {v}");
    // The last chunk at the commit (PUT), its size known only then.
    let loc = start_upload(&bob, "myorg/app").await;
    let (s, v) = status_of(finish_upload(&bob, &loc, &dc, &c).await).await;
    assert_eq!(
        (s, v["errors"][0]["code"].as_str()),
        (403, Some("DENIED")),
        "{v}"
    );
    expect_status(
        send(bob.head(&format!("/v2/myorg/app/blobs/{dc}"))).await,
        404,
    )
    .await;
    assert!(!has_file(&srv, &dc), "a refused blob was stored");
    // Elsewhere (bob's own namespace has no quota) it goes in, but cannot be mounted in.
    let (s, _) = post_blob(&bob, "bob/tools", &c).await;
    assert_eq!(s, 201);
    let mount = |to: &str, d: &str, from: &str| {
        bob.post(&format!("/v2/{to}/blobs/uploads/?mount={d}&from={from}"))
            .header(CONTENT_LENGTH, "0")
    };
    let (s, v) = status_of(send(mount("myorg/app", &dc, "bob/tools")).await).await;
    assert_eq!(
        (s, v["errors"][0]["code"].as_str()),
        (403, Some("DENIED")),
        "{v}"
    );
    expect_status(
        send(bob.head(&format!("/v2/myorg/app/blobs/{dc}"))).await,
        404,
    )
    .await;

    // A blob the namespace already holds costs nothing: pushed or mounted again.
    let da = sha256(&a);
    let (s, v) = post_blob(&bob, "myorg/other", &a).await;
    assert_eq!(s, 201, "{v}");
    expect_status(send(mount("myorg/third", &da, "myorg/app")).await, 201).await;

    // A manifest counts as a blob does: one byte short of room, refused and not
    // stored; with room, stored, and counted once however many repositories have it.
    let m = manifest_bytes(&image_manifest(
        &Desc::of(OCI_CONFIG, &a),
        &[Desc::of(OCI_LAYER, &b)],
    ));
    let len = m.len() as u64;
    let (s, _) = status_of(send(quota(&root, "myorg", 819200 + len - 1)).await).await;
    assert_eq!(s, 200);
    let (s, v) = status_of(put_manifest(&bob, "myorg/app", "v1", OCI_MANIFEST, &m).await).await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(
        v["errors"][0]["message"],
        format!(
            "quota of myorg exceeded: {} bytes allowed, 819200 used, {len} more needed",
            819200 + len - 1
        )
    );
    expect_status(send(bob.get("/v2/myorg/app/manifests/v1")).await, 404).await;
    let (s, _) = status_of(send(quota(&root, "myorg", 819200 + len)).await).await;
    assert_eq!(s, 200);
    push_manifest(&bob, "myorg/app", "v1", OCI_MANIFEST, &m).await;
    push_blob(&bob, "myorg/other", &b).await;
    push_manifest(&bob, "myorg/other", "v1", OCI_MANIFEST, &m).await;
    let (s, _) = status_of(send(quota(&root, "myorg", 1 << 20)).await).await;
    assert_eq!(s, 200);

    // Usage: distinct bytes per namespace, with the quota.
    let used = 819200 + len;
    let (s, v) = status_of(send(root.get("/api/v1/usage?namespace=myorg")).await).await;
    assert_eq!(s, 200);
    assert_eq!(
        v,
        json!({"namespaces": [{"namespace": "myorg", "bytes": used, "quota": 1048576}]})
    );
    let (_, v) = status_of(send(root.get("/api/v1/usage")).await).await;
    assert_eq!(
        v,
        json!({"namespaces": [
            {"namespace": "bob", "bytes": 409600, "quota": null},
            {"namespace": "myorg", "bytes": used, "quota": 1048576},
        ]})
    );
    // Others see the namespaces they administer.
    let (_, v) = status_of(send(alice.get("/api/v1/usage")).await).await;
    assert_eq!(v["namespaces"].as_array().map(Vec::len), Some(1), "{v}");
    let (s, _) = status_of(send(bob.get("/api/v1/usage?namespace=myorg")).await).await;
    assert_eq!(s, 403);

    // A larger quota lets the blob in; unset, there is no limit.
    let (s, _) = status_of(send(quota(&root, "myorg", 2 << 20)).await).await;
    assert_eq!(s, 200);
    let (s, v) = post_blob(&bob, "myorg/app", &c).await;
    assert_eq!(s, 201, "{v}");
    let (s, _) = status_of(send(root.delete("/api/v1/quotas/myorg")).await).await;
    assert_eq!(s, 200);
    let (s, _) = post_blob(&bob, "myorg/app", &data(4, 3 << 20)).await;
    assert_eq!(s, 201);
}
