//! Content trust over HTTP: where a namespace or repository requires signatures, a
//! manifest is served only when a trusted key signed it for this repository
//! (`403 DENIED` with the reason otherwise), while pushes, tags, the catalog, blobs and
//! signatures stay reachable. Keys are made in the test: OpenPGP with gpg 2.2 (signing
//! with berth-signature, as `--sign-by-key` does), sigstore with berth-signature.
//!
//! Run with `cargo test -p berth-registry --test trust` (needs `gpg` on PATH).

#[path = "api/support.rs"]
mod support;

#[path = "api/accounts.rs"]
mod accounts;

#[path = "api/signing.rs"]
mod signing;

use accounts::*;
use berth_auth::{Actor, Change, Level, Secret};
use serde_json::{json, Value};
use signing::*;
use support::*;

// ---------------------------------------------------------------------------
// Accounts and clients

/// A registry where alice founded `myorg` (its admin) and bob may write to it.
async fn registry() -> Server {
    let srv = Server::start().await;
    for u in ["alice", "bob"] {
        apply(
            &srv,
            &Actor::local(),
            Change::UserAdd {
                name: u.into(),
                password: Secret(format!("{u}-pw")),
                superuser: false,
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

fn require(gpg: &[&GpgKey], sigstore: &[&SigstoreKey]) -> Value {
    json!({
        "gpg_keys": gpg.iter().map(|k| k.public_text()).collect::<Vec<_>>(),
        "sigstore_keys": sigstore.iter().map(|k| k.public_pem.clone()).collect::<Vec<_>>(),
    })
}

/// `PUT /api/v1/trust/<name>` as `api`'s user; the status and the answer.
async fn trust_set(api: &Api, name: &str, body: &Value) -> (u16, Value) {
    let resp = send(api.put(&format!("/api/v1/trust/{name}")).json(body)).await;
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// GET and HEAD of `reference` in `repo`: 200 both, or 403 DENIED with `message`.
async fn assert_served(api: &Api, repo: &str, reference: &str) {
    let path = format!("/v2/{repo}/manifests/{reference}");
    expect_status(send(api.get(&path)).await, 200).await;
    expect_status(send(api.head(&path)).await, 200).await;
}

async fn assert_denied(api: &Api, repo: &str, reference: &str, message: &str) {
    let path = format!("/v2/{repo}/manifests/{reference}");
    let v = expect_error(send(api.get(&path)).await, 403, "DENIED").await;
    assert_eq!(v["errors"][0]["message"], message, "{v}");
    expect_status(send(api.head(&path)).await, 403).await;
}

fn catalog_has(v: &Value, repo: &str) -> bool {
    v["repositories"]
        .as_array()
        .is_some_and(|a| a.iter().any(|r| r == repo))
}

// ---------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn only_a_trusted_signature_for_this_digest_and_repository_serves_a_manifest() {
    let srv = registry().await;
    let alice = as_user(&srv, "alice");
    let (trusted, untrusted) = (
        gpg_key("trusted <t@example.test>"),
        gpg_key("other <o@example.test>"),
    );
    let (status, v) = trust_set(&alice, "myorg", &require(&[&trusted], &[])).await;
    assert_eq!(status, 200, "{v}");

    // Pushes still work; the content is held back, its listing and blobs are not.
    let img = push_image(&alice, "myorg/app", Some("v1"), 1).await;
    let other = push_image(&alice, "myorg/app", Some("v2"), 2).await;
    push_image(&alice, "myorg/lib", Some("v1"), 3).await;
    let denied = format!(
        "myorg/app@{} is not signed by a key myorg trusts",
        img.digest
    );
    assert_denied(&alice, "myorg/app", "v1", &denied).await;
    assert_denied(&alice, "myorg/app", &img.digest, &denied).await;
    let (tags, _) = tags(&alice, "myorg/app", "").await;
    assert_eq!(tags, ["v1", "v2"]);
    let catalog: Value = send(alice.get("/v2/_catalog")).await.json().await.unwrap();
    assert!(catalog_has(&catalog, "myorg/app"), "{catalog}");
    let blob = send(alice.get(&format!("/v2/myorg/app/blobs/{}", img.layer_desc.digest))).await;
    expect_status(blob, 200).await;

    let reference = "localhost:5000/myorg/app:v1".to_string();
    // Signed by a key nobody trusts.
    put_signature(
        &alice,
        "myorg/app",
        &img.digest,
        &untrusted.sign(&img.digest, &reference),
        1,
    )
    .await;
    assert_denied(&alice, "myorg/app", "v1", &denied).await;
    // A trusted key, but the signature is of another image (kept under this one).
    put_signature(
        &alice,
        "myorg/app",
        &img.digest,
        &trusted.sign(&other.digest, &reference),
        2,
    )
    .await;
    assert_denied(&alice, "myorg/app", "v1", &denied).await;
    // A trusted key, this digest, but signed as an image of another repository.
    let elsewhere = trusted.sign(&img.digest, "localhost:5000/myorg/lib:v1");
    put_signature(&alice, "myorg/app", &img.digest, &elsewhere, 3).await;
    assert_denied(&alice, "myorg/app", "v1", &denied).await;
    // The signature extension still answers, so a client can see what is there.
    let sigs: Value = send(alice.get(&format!(
        "/extensions/v2/myorg/app/signatures/{}",
        img.digest
    )))
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(sigs["signatures"].as_array().unwrap().len(), 3);

    // Signed as it should be, on whatever host name: served, by tag and by digest, to
    // every reader; the other image of the repository stays held back.
    let good = trusted.sign(&img.digest, "registry.example:8443/myorg/app:latest");
    put_signature(&alice, "myorg/app", &img.digest, &good, 4).await;
    assert_served(&alice, "myorg/app", "v1").await;
    assert_served(&as_user(&srv, "bob"), "myorg/app", &img.digest).await;
    assert_denied(
        &alice,
        "myorg/app",
        "v2",
        &format!(
            "myorg/app@{} is not signed by a key myorg trusts",
            other.digest
        ),
    )
    .await;
}

#[tokio::test]
async fn sigstore_attachments_sign_an_index_and_its_children() {
    let srv = registry().await;
    let alice = as_user(&srv, "alice");
    let (key, stranger) = (sigstore_key(), sigstore_key());
    // A repository's own setting.
    let (status, v) = trust_set(&alice, "myorg/multi", &require(&[], &[&key])).await;
    assert_eq!(status, 200, "{v}");
    let a = push_image(&alice, "myorg/multi", None, 10).await;
    let b = push_image(&alice, "myorg/multi", None, 11).await;
    let loose = push_image(&alice, "myorg/multi", Some("loose"), 12).await;
    let index = manifest_bytes(&index_manifest(
        OCI_INDEX,
        &[a.desc.clone(), b.desc.clone()],
    ));
    push_manifest(&alice, "myorg/multi", "v1", OCI_INDEX, &index).await;
    let index_digest = sha256(&index);
    let denied = |d: &str| format!("myorg/multi@{d} is not signed by a key myorg/multi trusts");
    assert_denied(&alice, "myorg/multi", "v1", &denied(&index_digest)).await;
    assert_denied(&alice, "myorg/multi", &a.digest, &denied(&a.digest)).await;

    // A stranger's signature does not count; the attachment itself is always served.
    push_sigstore(
        &alice,
        "myorg/multi",
        &stranger,
        &index_digest,
        "localhost/myorg/multi:v1",
    )
    .await;
    let tag = format!("sha256-{}.sig", &index_digest["sha256:".len()..]);
    assert_served(&alice, "myorg/multi", &tag).await;
    assert_denied(&alice, "myorg/multi", "v1", &denied(&index_digest)).await;
    // An image whose layers are merely labelled as sigstore payloads is an image: it
    // was served unsigned, and runtimes that go by the bytes would unpack it.
    let disguised = push_image(&alice, "myorg/multi", None, 14).await;
    let layer = Desc::of(
        "application/vnd.dev.cosign.simplesigning.v1+json",
        &disguised.layer,
    );
    let m = manifest_bytes(&image_manifest(&disguised.config_desc, &[layer]));
    push_manifest(&alice, "myorg/multi", "disguised", OCI_MANIFEST, &m).await;
    assert_denied(&alice, "myorg/multi", "disguised", &denied(&sha256(&m))).await;

    // Re-signed (the attachment replaced) with the trusted key: the index and the images
    // it names are served; an image it does not name is not.
    push_sigstore(
        &alice,
        "myorg/multi",
        &key,
        &index_digest,
        "localhost/myorg/multi:v1",
    )
    .await;
    assert_served(&alice, "myorg/multi", "v1").await;
    assert_served(&alice, "myorg/multi", &a.digest).await;
    assert_served(&alice, "myorg/multi", &b.digest).await;
    assert_denied(&alice, "myorg/multi", "loose", &denied(&loose.digest)).await;
    // The namespace has no setting: its other repositories are served unsigned.
    push_image(&alice, "myorg/plain", Some("v1"), 13).await;
    assert_served(&alice, "myorg/plain", "v1").await;
}

/// `n` indexes naming `child` whose digests `accept` takes, told apart by an
/// annotation counted on from `from`; as (bytes, digest).
fn indexes_naming(
    child: &Desc,
    from: &mut u32,
    n: usize,
    accept: impl Fn(&str) -> bool,
) -> Vec<(Vec<u8>, String)> {
    let mut found = Vec::new();
    while found.len() < n {
        *from += 1;
        let mut v = index_manifest(OCI_INDEX, std::slice::from_ref(child));
        v["annotations"] = json!({ "n": from.to_string() });
        let bytes = manifest_bytes(&v);
        let d = sha256(&bytes);
        if accept(&d) {
            found.push((bytes, d));
        }
    }
    found
}

/// Other indexes a pusher makes naming a signed index's child do not lock the child
/// out: unsigned ones never (signed parents are looked at first); signed-looking ones
/// not for a client that read the signed index first, as clients do.
#[tokio::test]
async fn a_signed_indexs_children_are_not_crowded_out_by_other_indexes() {
    let srv = registry().await;
    let (alice, bob) = (as_user(&srv, "alice"), as_user(&srv, "bob"));
    let trusted = gpg_key("trusted <t@example.test>");
    let (status, v) = trust_set(&alice, "myorg/fam", &require(&[&trusted], &[])).await;
    assert_eq!(status, 200, "{v}");
    let mut n = 0;
    for (i, junk_signed) in [(20u64, false), (21, true)] {
        let child = push_image(&alice, "myorg/fam", None, i).await;
        // The signed index sorts after the 16 others, which were looked at alone.
        let (signed, signed_digest) =
            indexes_naming(&child.desc, &mut n, 1, |d| d.starts_with("sha256:f")).remove(0);
        let tag = format!("v{i}");
        push_manifest(&alice, "myorg/fam", &tag, OCI_INDEX, &signed).await;
        let reference = format!("localhost/myorg/fam:{tag}");
        let signature = trusted.sign(&signed_digest, &reference);
        put_signature(&alice, "myorg/fam", &signed_digest, &signature, 1).await;
        for (k, (bytes, d)) in
            indexes_naming(&child.desc, &mut n, 16, |d| d < signed_digest.as_str())
                .into_iter()
                .enumerate()
        {
            push_manifest(&bob, "myorg/fam", &format!("x{i}-{k}"), OCI_INDEX, &bytes).await;
            if junk_signed {
                put_signature(&bob, "myorg/fam", &d, b"junk", 1).await;
            }
        }
        if junk_signed {
            // The lockout that remains, for a client that asks for the child alone.
            let denied = format!(
                "myorg/fam@{} is not signed by a key myorg/fam trusts",
                child.digest
            );
            assert_denied(&alice, "myorg/fam", &child.digest, &denied).await;
            assert_served(&alice, "myorg/fam", &tag).await;
        }
        assert_served(&alice, "myorg/fam", &child.digest).await;
    }
}

#[tokio::test]
async fn the_most_specific_setting_wins_and_unset_serves_again() {
    let srv = registry().await;
    let alice = as_user(&srv, "alice");
    let key = gpg_key("trusted <t@example.test>");
    push_image(&alice, "myorg/app", Some("v1"), 20).await;
    let open = push_image(&alice, "myorg/open", Some("v1"), 21).await;
    assert_served(&alice, "myorg/app", "v1").await;

    let (status, v) = trust_set(&alice, "myorg", &require(&[&key], &[])).await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = trust_set(&alice, "myorg/open", &json!({"required": false})).await;
    assert_eq!(status, 200, "{v}");
    let app = send(alice.get("/v2/myorg/app/manifests/v1")).await;
    expect_error(app, 403, "DENIED").await;
    assert_served(&alice, "myorg/open", "v1").await;
    // What applies where, through the API.
    let shown: Value = send(alice.get("/api/v1/trust/myorg/app"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["name"], "myorg");
    assert_eq!(shown["required"], true);
    assert_eq!(shown["gpg_keys"][0], key.public_text());
    assert_eq!(shown["gpg_fingerprints"].as_array().unwrap().len(), 1);

    // Without its own setting, the repository follows its namespace again.
    expect_status(send(alice.delete("/api/v1/trust/myorg/open")).await, 200).await;
    assert_denied(
        &alice,
        "myorg/open",
        "v1",
        &format!(
            "myorg/open@{} is not signed by a key myorg trusts",
            open.digest
        ),
    )
    .await;
    expect_status(send(alice.delete("/api/v1/trust/myorg")).await, 200).await;
    assert_served(&alice, "myorg/app", "v1").await;
    assert_served(&alice, "myorg/open", "v1").await;
    let gone = send(alice.get("/api/v1/trust/myorg")).await;
    expect_status(gone, 404).await;
}

#[tokio::test]
async fn only_admins_change_trust_and_bad_keys_are_refused() {
    let srv = registry().await;
    let key = gpg_key("trusted <t@example.test>");
    let body = require(&[&key], &[]);
    // bob writes to myorg but does not administer it.
    let (status, v) = trust_set(&as_user(&srv, "bob"), "myorg", &body).await;
    assert_eq!(status, 403, "{v}");
    let (status, _) = trust_set(&as_user(&srv, "bob"), "myorg/app", &body).await;
    assert_eq!(status, 403);
    let anonymous = send(srv.api.put("/api/v1/trust/myorg").json(&body)).await;
    assert_eq!(anonymous.status(), 401);
    // Keys that do not parse, with the reason; nothing is set.
    let alice = as_user(&srv, "alice");
    let (status, v) = trust_set(&alice, "myorg", &json!({"gpg_keys": ["not a key"]})).await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().starts_with("GPG key 1: "),
        "{v}"
    );
    let (status, v) = trust_set(
        &alice,
        "myorg",
        &json!({"sigstore_keys": ["-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"]}),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().starts_with("sigstore key 1: "),
        "{v}"
    );
    let (status, v) = trust_set(&alice, "myorg", &json!({})).await;
    assert_eq!(status, 400, "{v}");
    let big = json!({"gpg_keys": ["A".repeat(berth_auth::trust::MAX_KEY_BYTES + 1)]});
    let (status, _) = trust_set(&alice, "myorg", &big).await;
    assert_eq!(status, 400);
    expect_status(send(alice.get("/api/v1/trust/myorg")).await, 404).await;
    // A binary key (base64) is as good as an armored one.
    let home_key = gpg_key("binary <b@example.test>");
    let dearmored = berth_auth::trust::gpg_key_text(&dearmor(&home_key.public_text()));
    let (status, v) = trust_set(&alice, "myorg", &json!({"gpg_keys": [dearmored]})).await;
    assert_eq!(status, 200, "{v}");
    // The admin's change is on record.
    let audit = srv.reg.auth().store().audit_trail(1).unwrap();
    assert_eq!(
        audit[0].change,
        "require signatures on myorg by 1 GPG and 0 sigstore keys"
    );
    assert_eq!(audit[0].actor, "alice");
}

/// The binary form of an armored key (gpg --dearmor).
fn dearmor(armored: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key.asc");
    std::fs::write(&path, armored).unwrap();
    gpg(
        dir.path(),
        &["--dearmor", "--output", "-", path.to_str().unwrap()],
    )
}
