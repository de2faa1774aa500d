//! Access control over HTTP: each rule, allowed and refused, with the codes and
//! challenges clients act on. Accounts are set up through the same `Change`s the admin
//! command applies.

#[path = "api/support.rs"]
mod support;

use std::time::Duration;

use base64::Engine;
use berth_auth::{Actor, Change, Level, Mode, Outcome, Secret, Visibility};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use serde_json::Value;
use support::*;

fn apply(srv: &Server, change: Change) -> Outcome {
    srv.reg
        .auth()
        .store()
        .apply(&Actor::local(), &change)
        .unwrap_or_else(|e| panic!("{change:?}: {e}"))
}

fn user(srv: &Server, name: &str, password: &str) {
    account(srv, name, password, false);
}

/// A superuser `root` (password `root-pw`), and a client signed in as it.
fn root(srv: &Server) -> Api {
    account(srv, "root", "root-pw", true);
    as_user(srv, "root", "root-pw")
}

fn account(srv: &Server, name: &str, password: &str, superuser: bool) {
    apply(
        srv,
        Change::UserAdd {
            name: name.into(),
            password: Secret(password.into()),
            superuser,
        },
    );
}

fn grant(srv: &Server, subject: &str, level: Level, target: &str) {
    apply(
        srv,
        Change::Grant {
            subject: subject.into(),
            level,
            target: target.into(),
        },
    );
}

/// An API client that sends `authorization` with every request.
fn client_with(srv: &Server, authorization: &str) -> Api {
    let mut h = HeaderMap::new();
    h.insert(AUTHORIZATION, HeaderValue::from_str(authorization).unwrap());
    Api {
        base: srv.api.base.clone(),
        client: reqwest::Client::builder()
            .default_headers(h)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
    }
}

fn basic(user: &str, password: &str) -> String {
    let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {b}")
}

fn as_user(srv: &Server, user: &str, password: &str) -> Api {
    client_with(srv, &basic(user, password))
}

/// A token from `GET /token` for `scopes`, with Basic credentials when given.
async fn token(srv: &Server, creds: Option<(&str, &str)>, scopes: &[&str]) -> (u16, Value) {
    let mut url = String::from("/token?service=berth");
    for s in scopes {
        url.push_str("&scope=");
        url.extend(form_urlencoded::byte_serialize(s.as_bytes()));
    }
    let mut rb = srv.api.get(&url);
    if let Some((u, p)) = creds {
        rb = rb.basic_auth(u, Some(p));
    }
    let resp = send(rb).await;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn bearer(srv: &Server, creds: Option<(&str, &str)>, scopes: &[&str]) -> Api {
    let (status, body) = token(srv, creds, scopes).await;
    assert_eq!(status, 200, "{body}");
    let t = body["token"].as_str().unwrap();
    assert_eq!(body["access_token"], t);
    assert_eq!(body["expires_in"], 300);
    client_with(srv, &format!("Bearer {t}"))
}

/// Starts a registry where alice owns `alice/…`, bob writes `myorg/…` through team
/// `myorg/devs`, carol reads `myorg/app`, robot `myorg+ci` writes `myorg/app`, and
/// `myorg/web` is public.
async fn registry() -> (Server, String) {
    let srv = Server::start().await;
    for u in ["alice", "bob", "carol"] {
        user(&srv, u, &format!("{u}-pw"));
    }
    apply(
        &srv,
        Change::OrgCreate {
            name: "myorg".into(),
        },
    );
    apply(
        &srv,
        Change::TeamAdd {
            team: "myorg/devs".into(),
            member: "bob".into(),
        },
    );
    grant(&srv, "myorg/devs", Level::Write, "myorg");
    grant(&srv, "carol", Level::Read, "myorg/app");
    let Outcome::RobotCreated { secret, .. } = apply(
        &srv,
        Change::RobotCreate {
            name: "myorg+ci".into(),
        },
    ) else {
        panic!("no robot secret");
    };
    grant(&srv, "myorg+ci", Level::Write, "myorg/app");
    apply(
        &srv,
        Change::RepoVisibility {
            repository: "myorg/web".into(),
            visibility: Visibility::Public,
        },
    );
    (srv, secret.0)
}

fn challenge(headers: &HeaderMap) -> String {
    header_of(headers, "www-authenticate").unwrap_or_default()
}

#[tokio::test]
async fn a_registry_without_users_is_open_until_the_first_user() {
    let srv = Server::start().await;
    push_image(&srv.api, "anyone/app", Some("v1"), 1).await;
    user(&srv, "alice", "pw");
    // The very next request is checked.
    let resp = send(srv.api.get("/v2/")).await;
    let (h, _) = expect_status(resp, 401).await;
    let c = challenge(&h);
    assert_eq!(
        c,
        format!(
            "Bearer realm=\"http://{}/token\",service=\"berth\"",
            srv.addr
        )
    );
    let resp = send(srv.api.get("/v2/anyone/app/manifests/v1")).await;
    let (h, body) = expect_status(resp, 401).await;
    assert_eq!(error_code(&body), "UNAUTHORIZED");
    assert!(
        challenge(&h).ends_with(",scope=\"repository:anyone/app:pull\""),
        "{}",
        challenge(&h)
    );
    // Basic credentials on /v2/ work directly.
    let alice = as_user(&srv, "alice", "pw");
    expect_status(send(alice.get("/v2/")).await, 200).await;
}

#[tokio::test]
async fn required_mode_applies_the_rules_with_no_users() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_configured(dir, |c| c.auth.mode = Mode::Required).await;
    let img = image(1);
    let resp = send(srv.api.post("/v2/x/app/blobs/uploads/")).await;
    expect_error(resp, 401, "UNAUTHORIZED").await;
    let resp = push_blob_monolithic(&srv.api, "x/app", &img.layer, &img.layer_desc.digest).await;
    expect_error(resp, 401, "UNAUTHORIZED").await;
    assert!(srv.upload_files().is_empty());
    assert!(srv.blob_files().iter().all(|p| p.is_dir()));
}

#[tokio::test]
async fn anonymous_callers_pull_public_repositories_only() {
    let (srv, _) = registry().await;
    let bob = as_user(&srv, "bob", "bob-pw");
    let web = push_image(&bob, "myorg/web", Some("v1"), 1).await;
    let app = push_image(&bob, "myorg/app", Some("v1"), 2).await;

    // Directly, and with an anonymous token as podman gets one.
    let anon_token = bearer(
        &srv,
        None,
        &["repository:myorg/web:pull", "repository:myorg/app:pull"],
    )
    .await;
    for anon in [&srv.api, &anon_token] {
        let (_, body) =
            expect_status(send(anon.get("/v2/myorg/web/manifests/v1")).await, 200).await;
        assert_eq!(body, web.manifest);
        let path = format!("/v2/myorg/web/blobs/{}", web.layer_desc.digest);
        expect_status(send(anon.get(&path)).await, 200).await;
        let resp = send(anon.get("/v2/myorg/app/manifests/v1")).await;
        expect_error(resp, 401, "UNAUTHORIZED").await;
        let path = format!("/v2/myorg/app/blobs/{}", app.layer_desc.digest);
        expect_error(send(anon.get(&path)).await, 401, "UNAUTHORIZED").await;
        expect_error(
            send(anon.get("/v2/myorg/app/tags/list")).await,
            401,
            "UNAUTHORIZED",
        )
        .await;
        // Public does not mean writable.
        expect_error(
            send(anon.post("/v2/myorg/web/blobs/uploads/")).await,
            401,
            "UNAUTHORIZED",
        )
        .await;
    }
    // An organization default makes its other repositories public too.
    apply(
        &srv,
        Change::NamespaceVisibility {
            name: "myorg".into(),
            visibility: Visibility::Public,
        },
    );
    expect_status(send(srv.api.get("/v2/myorg/app/manifests/v1")).await, 200).await;
}

#[tokio::test]
async fn a_read_only_user_cannot_push_delete_or_mount() {
    let (srv, _) = registry().await;
    let bob = as_user(&srv, "bob", "bob-pw");
    let app = push_image(&bob, "myorg/app", Some("v1"), 1).await;
    let secret = push_image(&bob, "myorg/secret", Some("v1"), 2).await;

    let carol = as_user(&srv, "carol", "carol-pw");
    expect_status(send(carol.get("/v2/myorg/app/manifests/v1")).await, 200).await;
    let fresh = data(9, 100);
    let resp = send(carol.post("/v2/myorg/app/blobs/uploads/")).await;
    expect_error(resp, 403, "DENIED").await;
    let resp = push_blob_monolithic(&carol, "myorg/app", &fresh, &sha256(&fresh)).await;
    expect_error(resp, 403, "DENIED").await;
    let resp = put_manifest(&carol, "myorg/app", "v2", OCI_MANIFEST, &app.manifest).await;
    expect_error(resp, 403, "DENIED").await;
    let resp = send(carol.delete(&format!("/v2/myorg/app/manifests/{}", app.digest))).await;
    expect_error(resp, 403, "DENIED").await;
    let resp = send(carol.delete("/v2/myorg/app/manifests/v1")).await;
    expect_error(resp, 403, "DENIED").await;
    // Nothing changed.
    assert_eq!(tags(&bob, "myorg/app", "").await.0, ["v1"]);
    let d = sha256(&fresh);
    let resp = send(bob.head(&format!("/v2/myorg/app/blobs/{d}"))).await;
    assert_eq!(resp.status(), 404);
    assert!(srv.upload_files().is_empty());
    let hex = d.trim_start_matches("sha256:");
    assert!(!srv.blob_files().iter().any(|p| p.ends_with(hex)));

    // Mount into her own namespace from a repository she cannot read: no mount, an
    // ordinary upload session instead, and the blob stays unknown there.
    let mount = format!(
        "/v2/carol/copy/blobs/uploads/?mount={}&from=myorg/secret",
        secret.layer_desc.digest
    );
    let resp = send(carol.post(&mount)).await;
    assert_eq!(resp.status(), 202);
    let path = format!("/v2/carol/copy/blobs/{}", secret.layer_desc.digest);
    assert_eq!(send(carol.head(&path)).await.status(), 404);
    // Without `from`, no automatic mount while access control applies.
    let resp = send(carol.post(&format!(
        "/v2/carol/copy/blobs/uploads/?mount={}",
        secret.layer_desc.digest
    )))
    .await;
    assert_eq!(resp.status(), 202);
    // From a repository she reads, the mount works.
    let mount = format!(
        "/v2/carol/copy/blobs/uploads/?mount={}&from=myorg/app",
        app.layer_desc.digest
    );
    assert_eq!(send(carol.post(&mount)).await.status(), 201);
}

#[tokio::test]
async fn a_robot_pushes_only_where_granted() {
    let (srv, secret) = registry().await;
    let ci = as_user(&srv, "myorg+ci", &secret);
    push_image(&ci, "myorg/app", Some("v1"), 1).await;
    let resp = send(ci.post("/v2/myorg/other/blobs/uploads/")).await;
    expect_error(resp, 403, "DENIED").await;
    // Through the token flow too.
    let (status, body) = token(
        &srv,
        Some(("myorg+ci", &secret)),
        &[
            "repository:myorg/other:pull,push",
            "repository:myorg/app:pull,push",
        ],
    )
    .await;
    assert_eq!(status, 200);
    let t = client_with(&srv, &format!("Bearer {}", body["token"].as_str().unwrap()));
    push_image(&t, "myorg/app", Some("v2"), 2).await;
    let resp = send(t.post("/v2/myorg/other/blobs/uploads/")).await;
    expect_error(resp, 403, "DENIED").await;
    // A robot's secret is not its owner's password.
    let resp = send(as_user(&srv, "myorg", &secret).get("/v2/")).await;
    expect_error(resp, 401, "UNAUTHORIZED").await;
}

#[tokio::test]
async fn tokens_grant_what_was_asked_and_allowed() {
    let (srv, _) = registry().await;
    let creds = Some(("alice", "alice-pw"));
    let pull_only = bearer(&srv, creds, &["repository:alice/app:pull"]).await;
    let resp = send(pull_only.post("/v2/alice/app/blobs/uploads/")).await;
    let (h, _) = expect_status(resp, 401).await;
    // She may push there: the token lacks the scope, so the client is told to get one.
    let c = challenge(&h);
    assert!(
        c.contains("scope=\"repository:alice/app:pull,push\""),
        "{c}"
    );
    assert!(c.contains("error=\"insufficient_scope\""), "{c}");

    let push = bearer(&srv, creds, &["repository:alice/app:pull,push"]).await;
    let img = push_image(&push, "alice/app", Some("v1"), 1).await;
    let resp = send(push.get("/v2/alice/app/manifests/v1")).await;
    assert_eq!(expect_status(resp, 200).await.1, img.manifest);
    // The token is for alice/app only.
    let resp = send(push.post("/v2/alice/other/blobs/uploads/")).await;
    expect_status(resp, 401).await;
    // Asking for what she may not have yields a token without it, not an error.
    let (status, body) = token(&srv, creds, &["repository:bob/app:pull,push"]).await;
    assert_eq!(status, 200);
    let t = client_with(&srv, &format!("Bearer {}", body["token"].as_str().unwrap()));
    expect_error(
        send(t.post("/v2/bob/app/blobs/uploads/")).await,
        403,
        "DENIED",
    )
    .await;
}

#[tokio::test]
async fn tampered_foreign_and_garbage_tokens_are_refused() {
    let (srv, _) = registry().await;
    let (_, body) = token(
        &srv,
        Some(("alice", "alice-pw")),
        &["repository:alice/app:pull"],
    )
    .await;
    let good = body["token"].as_str().unwrap().to_string();
    let parts: Vec<&str> = good.split('.').collect();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = "bob".into();
    claims["access"][0]["name"] = "myorg/app".into();
    claims["access"][0]["actions"] = serde_json::json!(["pull", "push"]);
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(claims.to_string()),
        parts[2]
    );

    // A token signed by another registry's key.
    let other = Server::start().await;
    user(&other, "alice", "alice-pw");
    let (_, body) = token(
        &other,
        Some(("alice", "alice-pw")),
        &["repository:alice/app:pull,push"],
    )
    .await;
    let foreign = body["token"].as_str().unwrap().to_string();

    for bad in [
        forged.as_str(),
        foreign.as_str(),
        "a.b.c",
        "eyJhbGciOiJub25lIn0.e30.",
        &"A".repeat(8000),
    ] {
        let api = client_with(&srv, &format!("Bearer {bad}"));
        let resp = send(api.get("/v2/alice/app/tags/list")).await;
        expect_error(resp, 401, "UNAUTHORIZED").await;
        let resp = send(api.post("/v2/myorg/app/blobs/uploads/")).await;
        expect_error(resp, 401, "UNAUTHORIZED").await;
    }
    assert!(srv.upload_files().is_empty());
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_answer() {
    let (srv, _) = registry().await;
    let mut answers = Vec::new();
    for (u, p) in [
        ("alice", "wrong"),
        ("nobody", "wrong"),
        ("x'; DROP TABLE accounts;--", "a"),
    ] {
        let resp = send(as_user(&srv, u, p).get("/v2/")).await;
        let (h, body) = expect_status(resp, 401).await;
        answers.push((challenge(&h), String::from_utf8(body).unwrap()));
        let (status, body) = token(&srv, Some((u, p)), &["repository:alice/app:pull"]).await;
        assert_eq!(status, 401);
        answers.push((String::new(), body.to_string()));
    }
    assert_eq!(answers[0], answers[2]);
    assert_eq!(answers[1], answers[3]);
    assert_eq!(answers[0], answers[4]);
    // The accounts are as they were.
    let d = srv.reg.auth().store().directory().unwrap();
    assert_eq!(
        d.names(berth_auth::AccountKind::User),
        ["alice", "bob", "carol"]
    );
}

#[tokio::test]
async fn malformed_authorization_headers_do_no_harm() {
    let (srv, _) = registry().await;
    let bob = as_user(&srv, "bob", "bob-pw");
    let img = push_image(&bob, "myorg/app", Some("v1"), 1).await;
    let huge = format!("Basic {}", "A".repeat(20_000));
    for h in [
        "Basic",
        "Basic !!!notbase64",
        "Basic Ym9i",     // "bob", no colon
        "Basic //79/w==", // not UTF-8
        "Bearer",
        "Digest username=\"bob\"",
        "Basic Ym9iOmJvYi1wdw== trailing",
        huge.as_str(),
    ] {
        let api = client_with(&srv, h);
        let resp = send(api.get("/v2/myorg/app/manifests/v1")).await;
        assert_eq!(resp.status(), 401, "{h:.40}");
        let resp = send(
            api.put("/v2/myorg/app/manifests/v2")
                .body(img.manifest.clone()),
        )
        .await;
        assert_eq!(resp.status(), 401, "{h:.40}");
    }
    // A header far beyond any limit is refused by the HTTP layer; the server lives on.
    let giant = format!("Bearer {}", "A".repeat(2_000_000));
    let resp = srv
        .api
        .client
        .get(srv.api.url("/v2/"))
        .header(AUTHORIZATION, giant)
        .send()
        .await;
    if let Ok(r) = resp {
        assert!(r.status().is_client_error(), "{}", r.status());
    }
    assert_eq!(tags(&bob, "myorg/app", "").await.0, ["v1"]);
}

#[tokio::test]
async fn the_catalog_lists_what_the_caller_may_read() {
    let (srv, _) = registry().await;
    let bob = as_user(&srv, "bob", "bob-pw");
    let alice = as_user(&srv, "alice", "alice-pw");
    push_image(&bob, "myorg/app", Some("v1"), 1).await;
    push_image(&bob, "myorg/web", Some("v1"), 2).await;
    push_image(&bob, "myorg/zeta", Some("v1"), 3).await;
    push_image(&alice, "alice/private", Some("v1"), 4).await;
    let list = |api: Api, query: &'static str| async move {
        let resp = send(api.get(&format!("/v2/_catalog{query}"))).await;
        let (h, body) = expect_status(resp, 200).await;
        let v: Value = serde_json::from_slice(&body).unwrap();
        (v["repositories"].clone(), header_of(&h, "link"))
    };
    assert_eq!(
        list(srv.api.clone(), "").await.0,
        serde_json::json!(["myorg/web"])
    );
    assert_eq!(
        list(alice.clone(), "").await.0,
        serde_json::json!(["alice/private", "myorg/web"])
    );
    let carol = as_user(&srv, "carol", "carol-pw");
    assert_eq!(
        list(carol.clone(), "").await.0,
        serde_json::json!(["myorg/app", "myorg/web"])
    );
    // Pages are full pages of what she may read.
    let (page, link) = list(carol, "?n=1").await;
    assert_eq!(page, serde_json::json!(["myorg/app"]));
    assert!(link.unwrap().contains("last=myorg%2Fapp"));
    // With a token, the same.
    let t = bearer(&srv, Some(("alice", "alice-pw")), &["registry:catalog:*"]).await;
    assert_eq!(
        list(t, "").await.0,
        serde_json::json!(["alice/private", "myorg/web"])
    );
}

#[tokio::test]
async fn refresh_tokens_follow_the_oauth2_flow() {
    let (srv, _) = registry().await;
    let form = |pairs: &[(&str, &str)]| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            s.append_pair(k, v);
        }
        s.finish()
    };
    let post = |body: String| {
        srv.api
            .post("/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    };
    let resp = send(post(form(&[
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", "alice-pw"),
        ("service", "berth"),
        ("client_id", "docker"),
        ("access_type", "offline"),
        ("scope", "repository:alice/app:pull,push"),
    ])))
    .await;
    let (_, body) = expect_status(resp, 200).await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    let refresh = v["refresh_token"].as_str().unwrap().to_string();
    let resp = send(post(form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &refresh),
        ("service", "berth"),
        ("client_id", "containers/image"),
        ("scope", "repository:alice/app:pull,push"),
    ])))
    .await;
    let (_, body) = expect_status(resp, 200).await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    let t = client_with(
        &srv,
        &format!("Bearer {}", v["access_token"].as_str().unwrap()),
    );
    push_image(&t, "alice/app", Some("v1"), 1).await;
    // A refresh token is not an access token, and a made-up one is refused.
    for bad in ["nope", ""] {
        let resp = send(post(form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", bad),
        ])))
        .await;
        assert!(
            matches!(resp.status().as_u16(), 400 | 401),
            "{}",
            resp.status()
        );
    }
    let resp = send(post(form(&[
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", "bad"),
    ])))
    .await;
    assert_eq!(resp.status(), 401);
    // A new password ends the refresh token.
    apply(
        &srv,
        Change::UserPassword {
            name: "alice".into(),
            password: Secret("new".into()),
        },
    );
    let resp = send(post(form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &refresh),
    ])))
    .await;
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn the_admin_api_applies_changes_with_the_callers_rights() {
    let (srv, _) = registry().await;
    let alice = as_user(&srv, "alice", "alice-pw");
    let bob = as_user(&srv, "bob", "bob-pw");
    let call = |api: &Api, change: Change| {
        let (method, path, body) = berth_auth::api::request(&change);
        api.req(method.parse().unwrap(), &format!("/api/v1/{path}"))
            .json(&body)
    };
    // alice founds an organization, adds bob to a team and creates a robot.
    let resp = send(call(
        &alice,
        Change::OrgCreate {
            name: "aorg".into(),
        },
    ))
    .await;
    expect_status(resp, 200).await;
    let resp = send(call(
        &alice,
        Change::TeamAdd {
            team: "aorg/devs".into(),
            member: "bob".into(),
        },
    ))
    .await;
    expect_status(resp, 200).await;
    let resp = send(call(
        &alice,
        Change::RobotCreate {
            name: "aorg+ci".into(),
        },
    ))
    .await;
    let (_, body) = expect_status(resp, 200).await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    let secret = v["robot_created"]["secret"].as_str().unwrap();
    expect_status(
        send(as_user(&srv, "aorg+ci", secret).get("/v2/")).await,
        200,
    )
    .await;
    // bob is no admin of aorg, and no superuser.
    let resp = send(call(
        &bob,
        Change::Grant {
            subject: "bob".into(),
            level: Level::Admin,
            target: "aorg".into(),
        },
    ))
    .await;
    assert_eq!(resp.status(), 403);
    let resp = send(call(
        &bob,
        Change::UserAdd {
            name: "mallory".into(),
            password: Secret("x".into()),
            superuser: true,
        },
    ))
    .await;
    assert_eq!(resp.status(), 403);
    let resp = send(bob.get("/api/v1/orgs/aorg")).await;
    assert_eq!(resp.status(), 403);
    let resp = send(alice.get("/api/v1/orgs/aorg")).await;
    let (_, body) = expect_status(resp, 200).await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["teams"]["devs"], serde_json::json!(["bob"]));
    assert_eq!(v["robots"], serde_json::json!(["aorg+ci"]));
    // Anonymous, bad passwords and tokens are not enough.
    assert_eq!(send(srv.api.get("/api/v1/whoami")).await.status(), 401);
    assert_eq!(
        send(as_user(&srv, "alice", "x").get("/api/v1/whoami"))
            .await
            .status(),
        401
    );
    let t = bearer(&srv, Some(("alice", "alice-pw")), &[]).await;
    assert_eq!(send(t.get("/api/v1/whoami")).await.status(), 401);
    // Bad requests are clear errors.
    let resp = send(alice.post("/api/v1/orgs").body("{not json")).await;
    assert_eq!(resp.status(), 400);
    let resp = send(
        alice
            .post("/api/v1/orgs")
            .json(&serde_json::json!({"name": "Bad Name"})),
    )
    .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(send(alice.get("/api/v1/nothing")).await.status(), 404);
    // Search lists what the caller may read.
    push_image(&bob, "myorg/app", Some("v1"), 1).await;
    push_image(&bob, "myorg/web", Some("v1"), 2).await;
    let resp = send(alice.get("/api/v1/repositories?q=myorg")).await;
    let (_, body) = expect_status(resp, 200).await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v["repositories"],
        serde_json::json!([{"name": "myorg/web", "visibility": "public"}])
    );
}

#[tokio::test]
async fn an_organization_cannot_be_founded_over_existing_content() {
    // Content pushed while the registry was open, and a grant on a repository whose
    // namespace is no account: neither may be taken by founding an organization.
    let srv = Server::start().await;
    push_image(&srv.api, "shared/app", Some("v1"), 1).await;
    user(&srv, "bob", "bob-pw");
    user(&srv, "carol", "carol-pw");
    grant(&srv, "carol", Level::Read, "other/app");
    let bob = as_user(&srv, "bob", "bob-pw");
    for name in ["shared", "other"] {
        let resp = send(
            bob.post("/api/v1/orgs")
                .json(&serde_json::json!({ "name": name })),
        )
        .await;
        assert_eq!(resp.status(), 409, "{name}");
    }
    let resp = send(bob.get("/v2/shared/app/manifests/v1")).await;
    expect_error(resp, 403, "DENIED").await;
    // A free name is fine, and a superuser may decide otherwise.
    let resp = send(
        bob.post("/api/v1/orgs")
            .json(&serde_json::json!({"name": "fresh"})),
    )
    .await;
    assert_eq!(resp.status(), 200);
    // A robot may found nothing, and its answer must not say which names hold
    // content: the same 403 for a taken name as for a free one (it was 409).
    let Outcome::RobotCreated { secret, .. } = apply(
        &srv,
        Change::RobotCreate {
            name: "fresh+ci".into(),
        },
    ) else {
        panic!("no robot secret");
    };
    let robot = as_user(&srv, "fresh+ci", &secret.0);
    let mut answers = Vec::new();
    for name in ["shared", "unused"] {
        let resp = send(
            robot
                .post("/api/v1/orgs")
                .json(&serde_json::json!({ "name": name })),
        )
        .await;
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap().replace(name, "NAME");
        answers.push((status, body));
    }
    assert_eq!(answers[0].0, 403, "{answers:?}");
    assert_eq!(answers[0], answers[1]);
    let root = root(&srv);
    let resp = send(
        root.post("/api/v1/orgs")
            .json(&serde_json::json!({"name": "shared"})),
    )
    .await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_revoked_grant_ends_a_token_at_once() {
    let (srv, _) = registry().await;
    let bob = as_user(&srv, "bob", "bob-pw");
    push_image(&bob, "myorg/app", Some("v1"), 1).await;
    let carol = bearer(
        &srv,
        Some(("carol", "carol-pw")),
        &["repository:myorg/app:pull"],
    )
    .await;
    expect_status(send(carol.get("/v2/myorg/app/manifests/v1")).await, 200).await;
    apply(
        &srv,
        Change::Revoke {
            subject: "carol".into(),
            target: "myorg/app".into(),
        },
    );
    let resp = send(carol.get("/v2/myorg/app/manifests/v1")).await;
    expect_error(resp, 403, "DENIED").await;
}

#[tokio::test]
async fn deleting_the_last_user_does_not_open_the_registry() {
    let (srv, _) = registry().await;
    for u in ["alice", "bob", "carol"] {
        apply(&srv, Change::AccountDelete { name: u.into() });
    }
    let resp = send(srv.api.post("/v2/myorg/app/blobs/uploads/")).await;
    expect_error(resp, 401, "UNAUTHORIZED").await;
}

#[tokio::test]
async fn signatures_follow_the_manifests_access_rules() {
    let (srv, _) = registry().await;
    let bob = as_user(&srv, "bob", "bob-pw");
    let app = push_image(&bob, "myorg/app", Some("v1"), 61).await;
    let path = format!("/extensions/v2/myorg/app/signatures/{}", app.digest);
    let sig = serde_json::json!({
        "schemaVersion": 2,
        "name": format!("{}@00112233445566778899aabbccddeeff", app.digest),
        "type": "atomic",
        "content": "c2lnbmVk",
    });
    // Pushers write, readers read, nobody else sees a thing.
    expect_status(send(bob.put(&path).json(&sig)).await, 201).await;
    let carol = as_user(&srv, "carol", "carol-pw");
    let (_, body) = expect_status(send(carol.get(&path)).await, 200).await;
    assert!(String::from_utf8_lossy(&body).contains("c2lnbmVk"));
    let forged = serde_json::json!({
        "schemaVersion": 2,
        "name": format!("{}@ffeeddccbbaa99887766554433221100", app.digest),
        "type": "atomic",
        "content": "Zm9yZ2Vk",
    });
    expect_error(send(carol.put(&path).json(&forged)).await, 403, "DENIED").await;
    let anon = send(srv.api.put(&path).json(&forged)).await;
    let (headers, _) = expect_status(anon, 401).await;
    assert!(challenge(&headers).contains("scope=\"repository:myorg/app:pull,push\""));
    expect_status(send(srv.api.get(&path)).await, 401).await;
    // A token for pull only reads.
    let reader = bearer(
        &srv,
        Some(("bob", "bob-pw")),
        &["repository:myorg/app:pull"],
    )
    .await;
    expect_status(send(reader.get(&path)).await, 200).await;
    expect_status(send(reader.put(&path).json(&forged)).await, 401).await;
    let (_, body) = expect_status(send(bob.get(&path)).await, 200).await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["signatures"].as_array().unwrap().len(), 1);
    // Deleting them takes the delete right: readers and pull tokens may not.
    expect_error(send(carol.delete(&path)).await, 403, "DENIED").await;
    expect_status(send(reader.delete(&path)).await, 401).await;
    let (headers, _) = expect_status(send(srv.api.delete(&path)).await, 401).await;
    assert!(challenge(&headers).contains("scope=\"repository:myorg/app:delete\""));
    expect_status(send(bob.get(&path)).await, 200).await;
    expect_status(send(bob.delete(&path)).await, 202).await;
    let (_, body) = expect_status(send(carol.get(&path)).await, 200).await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert!(v["signatures"].as_array().unwrap().is_empty());
}

/// A lockout after 3 failures from one address, for 2 s; the token endpoint takes 1
/// request per second in a burst of 6.
fn strict_limits() -> berth_auth::LimitsConfig {
    berth_auth::LimitsConfig {
        failures_per_source: 3,
        accounts_per_source: 3,
        failures_per_account: 100,
        window: Duration::from_secs(60),
        lockout: Duration::from_secs(2),
        max_lockout: Duration::from_secs(2),
        token_rate: 1.0,
        token_burst: 6.0,
    }
}

/// A registry with [`strict_limits`].
async fn strict_registry() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_configured(dir, |c| {
        c.auth.limits = strict_limits();
    })
    .await;
    user(&srv, "alice", "alice-pw");
    srv
}

#[tokio::test]
async fn repeated_failed_logins_lock_the_account_out_from_that_address() {
    let srv = strict_registry().await;
    for _ in 0..3 {
        expect_status(send(as_user(&srv, "alice", "wrong").get("/v2/")).await, 401).await;
    }
    // Locked out: even the right password is not checked, on /v2/ as on /token.
    let (h, body) = expect_status(
        send(as_user(&srv, "alice", "alice-pw").get("/v2/")).await,
        429,
    )
    .await;
    let retry: u64 = header_of(&h, "retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    assert!(String::from_utf8_lossy(&body).contains("TOOMANYREQUESTS"));
    let (status, _) = token(&srv, Some(("alice", "alice-pw")), &[]).await;
    assert_eq!(status, 429);
    // The API says so too, not "wrong password" (which had an admin retry).
    let (h, _) = expect_status(
        send(as_user(&srv, "alice", "alice-pw").get("/api/v1/whoami")).await,
        429,
    )
    .await;
    assert!(header_of(&h, "retry-after").is_some());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    expect_status(
        send(as_user(&srv, "alice", "alice-pw").get("/v2/")).await,
        200,
    )
    .await;
}

/// A superuser's browser keeps the Basic credentials it once typed at `/api/v1`'s
/// prompt and sends them with any page's form: a change that a browser says comes
/// from another site is refused, whatever its body, before the login is checked.
#[tokio::test]
async fn api_changes_from_another_sites_page_are_refused() {
    let (srv, _) = registry().await;
    let root = root(&srv);
    // What `<form enctype=text/plain>` makes of `name='{"name":"evil",…,"x":"' value='"}'`.
    let form = r#"{"name":"evil","password":"evil-password","superuser":true,"x":"="}"#;
    let own = format!("http://{}", srv.addr);
    for (header, value) in [
        ("origin", "https://attacker.example"),
        ("origin", "null"),
        ("origin", own.as_str()),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
    ] {
        let mut rb = root
            .post("/api/v1/users")
            .header("content-type", "text/plain")
            .body(form);
        rb = rb.header(header, value);
        if header == "origin" && value == own {
            // Its own origin, but a cross-site page (a browser says both).
            rb = rb.header("sec-fetch-site", "cross-site");
        }
        let v = expect_error_json(send(rb).await, 403).await;
        assert!(v.contains("another site"), "{header}: {value}: {v}");
        let rb = root
            .post("/api/v1/gc")
            .header(header, value)
            .header("sec-fetch-site", "cross-site");
        expect_error_json(send(rb).await, 403).await;
    }
    expect_status(
        send(as_user(&srv, "evil", "evil-password").get("/v2/")).await,
        401,
    )
    .await;
    // The registry's own origin, a browser's direct request, and a command-line
    // client (neither header) may change things; anyone may read.
    for (origin, site) in [
        (Some(own.as_str()), Some("same-origin")),
        (None, Some("none")),
        (None, None),
    ] {
        let name = format!("u{}", origin.is_some() as u8 + 2 * site.is_some() as u8);
        let mut rb = root
            .post("/api/v1/users")
            .json(&serde_json::json!({"name": name, "password": "a-long-password"}));
        if let Some(o) = origin {
            rb = rb.header("origin", o);
        }
        if let Some(s) = site {
            rb = rb.header("sec-fetch-site", s);
        }
        expect_status(send(rb).await, 200).await;
    }
    let rb = root
        .get("/api/v1/whoami")
        .header("origin", "https://attacker.example")
        .header("sec-fetch-site", "cross-site");
    expect_status(send(rb).await, 200).await;
}

/// A name is checked before it goes into a challenge: a `"` in the path (sent raw,
/// as the http crate takes it) added parameters to the `WWW-Authenticate` header.
#[tokio::test]
async fn a_bad_name_is_refused_before_it_reaches_a_challenge() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (srv, _) = registry().await;
    let mut conn = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let request = format!(
        "GET /v2/x\",realm=\"https://evil.example/t/manifests/latest HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        srv.addr
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("NAME_INVALID"), "{answer}");
    let head = answer.split("\r\n\r\n").next().unwrap_or_default();
    assert!(!head.contains("evil.example"), "{answer}");
}

/// The body of an `/api/v1/` error of `status`, as text.
async fn expect_error_json(resp: reqwest::Response, status: u16) -> String {
    let (_, body) = expect_status(resp, status).await;
    let text = String::from_utf8_lossy(&body).to_string();
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    assert!(v["error"].is_string(), "{text}");
    text
}

/// A guesser who holds an account of their own cannot reset their address's count of
/// failures by signing in as it between guesses at others.
#[tokio::test]
async fn a_login_does_not_clear_failures_for_other_accounts() {
    let srv = strict_registry().await;
    user(&srv, "mallory", "mallory-pw");
    for victim in ["bob", "carol"] {
        expect_status(send(as_user(&srv, victim, "guess").get("/v2/")).await, 401).await;
    }
    expect_status(
        send(as_user(&srv, "mallory", "mallory-pw").get("/v2/")).await,
        200,
    )
    .await;
    expect_status(send(as_user(&srv, "dave", "guess").get("/v2/")).await, 401).await;
    expect_status(send(as_user(&srv, "bob", "guess").get("/v2/")).await, 429).await;
}

/// A lockout is kept where every replica looks (the directory's database): a
/// registry opened again on the same data still refuses the locked address, until
/// the lockout ends.
#[tokio::test]
async fn a_lockout_holds_across_a_restart() {
    let srv = strict_registry().await;
    for _ in 0..3 {
        expect_status(send(as_user(&srv, "alice", "wrong").get("/v2/")).await, 401).await;
    }
    let dir = srv.stop().await;
    let srv = Server::start_configured(dir, |c| {
        c.auth.limits = strict_limits();
    })
    .await;
    let (h, _) = expect_status(
        send(as_user(&srv, "alice", "alice-pw").get("/v2/")).await,
        429,
    )
    .await;
    let retry: u64 = header_of(&h, "retry-after").unwrap().parse().unwrap();
    assert!((1..=3).contains(&retry), "Retry-After {retry}");
    tokio::time::sleep(Duration::from_millis(3100)).await;
    expect_status(
        send(as_user(&srv, "alice", "alice-pw").get("/v2/")).await,
        200,
    )
    .await;
}

#[tokio::test]
async fn token_requests_are_rate_limited_per_address() {
    let srv = strict_registry().await;
    // The burst (6) passes, anonymous or not; the next one waits.
    for _ in 0..6 {
        let (status, _) = token(&srv, None, &["repository:alice/app:pull"]).await;
        assert_eq!(status, 200);
    }
    let resp = send(srv.api.get("/token?service=berth")).await;
    let (h, _) = expect_status(resp, 429).await;
    assert_eq!(header_of(&h, "retry-after").as_deref(), Some("1"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _) = token(&srv, None, &[]).await;
    assert_eq!(status, 200);
}

/// `POST /api/v1/gc` reads its body strictly: a field of the wrong type, one gc does
/// not take or a grace past what unix seconds hold is a 400 naming it, and nothing is
/// collected. `{"dry_run": "true", "repo": …}` once ran a real collection of the whole
/// registry (both fields ignored).
#[tokio::test]
async fn gc_requests_are_read_strictly() {
    let srv = Server::start().await;
    // Untagged, so that a collection with no grace removes it.
    let img = push_image(&srv.api, "org/app", None, 7).await;
    let root = root(&srv);
    let pushed = format!("/v2/org/app/manifests/{}", img.digest);
    // Content stored in the current second is spared by a zero grace.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for (body, field) in [
        (
            r#"{"dry_run":"true","repo":"org/app","grace":"0s"}"#,
            "dry_run",
        ),
        (
            r#"{"dry_run":true,"repo":"org/app","keep_untagged":1}"#,
            "keep_untagged",
        ),
        (r#"{"grace":"0s","repo":["org/app"]}"#, "repo"),
        (r#"{"grace":0,"dry_run":true}"#, "grace"),
        (r#"{"grace":"0s","repos":"org/app"}"#, "repos"),
        (r#"{"grace":"300000000000y"}"#, "grace"),
        (r#"["dry_run"]"#, "JSON object"),
    ] {
        let resp = send(root.post("/api/v1/gc").body(body)).await;
        let (_, answer) = expect_status(resp, 400).await;
        let v: Value = serde_json::from_slice(&answer).unwrap();
        let message = v["error"].as_str().unwrap_or_default();
        assert!(message.contains(field), "{body}: {message}");
    }
    expect_status(send(root.get(&pushed)).await, 200).await;
    // The same fields with their types: a dry run lists the manifest, removes nothing.
    let resp = send(
        root.post("/api/v1/gc")
            .body(r#"{"dry_run":true,"repo":"org/app","grace":"0s","keep_untagged":null}"#),
    )
    .await;
    let (_, answer) = expect_status(resp, 200).await;
    let v: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(
        (v["dry_run"].clone(), v["manifests_removed"].clone()),
        (true.into(), 1.into())
    );
    expect_status(send(root.get(&pushed)).await, 200).await;
}
