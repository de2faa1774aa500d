//! The web pages of `berth serve` over HTTP (no browser): a public repository with
//! two tags of an image whose labels are hostile, a private one, users; then the
//! contract's pages and ids, escaping, a private repository invisible (404 like a
//! missing one, absent from search results and facet counts) until its reader signs
//! in through the form, CSRF refusals, cookie flags, sign-out, and `--ui off`.
//!
//! Run with `cargo test -p berth --test ui_pages`.

mod common;
#[path = "common/registry_fixture.rs"]
mod registry_fixture;

use std::path::Path;

use berth_image::Digest;
use reqwest::header::{HeaderMap, COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::{json, Value};

use registry_fixture::*;

const ROOT: (&str, &str) = ("root", "root-pw");
const ALICE: (&str, &str) = ("alice", "alice-pw");
const HOSTILE: &str = "<script>alert(1)</script>";

fn push(serve: &Serve, layout: &Path, tag: &str, repo: &str) {
    push_layout(serve, layout, tag, repo, ROOT, &[]);
}

/// Waits until the catalog has inventoried `digest` in `repo` (asked as root).
async fn scanned(serve: &Serve, repo: &str, digest: &Digest) {
    let url = format!(
        "{}/api/v1/repositories/{repo}/manifests/{digest}",
        serve.url
    );
    until(&format!("the scan of {repo}@{digest}"), || async {
        let r = reqwest::Client::new()
            .get(&url)
            .basic_auth(ROOT.0, Some(ROOT.1))
            .send()
            .await
            .unwrap();
        r.json::<Value>().await.unwrap()["status"] == "ok"
    })
    .await;
}

/// A browser without cookies of its own: what it sends is said per request.
struct Browser {
    http: reqwest::Client,
    url: String,
}

/// One answer: status, headers, body.
struct Page {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Page {
    #[track_caller]
    fn expect(&self, status: u16) -> &str {
        assert_eq!(self.status, status, "{}", self.body);
        &self.body
    }

    /// The `Set-Cookie` header of cookie `name`.
    fn set_cookie(&self, name: &str) -> String {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .find(|c| c.starts_with(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} cookie: {:?}", self.headers))
    }
}

/// The value of cookie `name` from a `Set-Cookie` line.
fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .and_then(|p| p.split_once('='))
        .map(|(_, v)| v.to_string())
        .unwrap()
}

/// The value of the hidden field `name` of the page's (first such) form.
fn hidden(body: &str, name: &str) -> String {
    let at = body
        .find(&format!(r#"name="{name}" value=""#))
        .unwrap_or_else(|| panic!("no field {name}: {body}"));
    let rest = &body[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_string()
}

impl Browser {
    fn new(url: &str) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            url: url.to_string(),
        }
    }

    async fn send(&self, rb: reqwest::RequestBuilder, cookies: &str) -> Page {
        let rb = if cookies.is_empty() {
            rb
        } else {
            rb.header(COOKIE, cookies)
        };
        let r = rb.send().await.unwrap();
        Page {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            body: r.text().await.unwrap(),
        }
    }

    async fn get(&self, path: &str, cookies: &str) -> Page {
        self.send(self.http.get(format!("{}{path}", self.url)), cookies)
            .await
    }

    async fn post(&self, path: &str, form: &[(&str, &str)], cookies: &str) -> Page {
        let rb = self.http.post(format!("{}{path}", self.url)).form(form);
        self.send(rb, cookies).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_show_what_the_visitor_may_read_and_nothing_else() {
    let root = tempfile::tempdir().unwrap();
    let root_s = root.path().to_str().unwrap();
    registry(
        root_s,
        &["user", "add", ROOT.0, "--superuser", "--password-stdin"],
        ROOT.1,
    );
    registry(
        root_s,
        &["user", "add", ALICE.0, "--password-stdin"],
        ALICE.1,
    );
    registry(root_s, &["repo", "visibility", "team/app", "public"], "");
    registry(root_s, &["grant", "alice", "read", "team/secret"], "");
    let serve = Serve::start(root.path(), &[]).await;

    let base = layer(&[
        ("etc/os-release", DEBIAN_OS_RELEASE),
        (
            "var/lib/dpkg/status",
            &dpkg_status(&[
                ("libc6", "2.36-9", Some("glibc")),
                ("openssl", "3.0.9-1", None),
            ]),
        ),
    ]);
    let upper = layer(&[(
        "var/lib/dpkg/status",
        &dpkg_status(&[
            ("curl", "7.88.1-10", None),
            ("libc6", "2.36-9", Some("glibc")),
            ("openssl", "3.0.11-1", None),
        ]),
    )]);
    let config = |arch: &str| {
        json!({
            "created": "2024-02-03T04:05:06Z", "architecture": arch, "os": "linux",
            "config": {"Labels": {
                "org.opencontainers.image.description": format!("the UI test application {HOSTILE}"),
                "hostile": HOSTILE}},
            "history": [{"created_by": "/bin/sh -c #(nop) ADD file:0123 in / "},
                        {"created_by": format!("/bin/sh -c echo '{HOSTILE}'")}],
        })
    };
    let layout = tempfile::tempdir().unwrap();
    let old = write_layout(
        layout.path(),
        "1.9.0",
        std::slice::from_ref(&base),
        config("amd64"),
    );
    let layers = [base.clone(), upper];
    let new = write_layout(layout.path(), "1.10.0", &layers, config("amd64"));
    // The private repository's image is of another architecture, so a facet count
    // would betray it.
    let secret = write_layout(layout.path(), "s390", &layers, config("s390x"));
    push(&serve, layout.path(), "1.9.0", "team/app");
    push(&serve, layout.path(), "1.10.0", "team/app");
    push(&serve, layout.path(), "s390", "team/secret");
    for (repo, d) in [
        ("team/app", &old),
        ("team/app", &new),
        ("team/secret", &secret),
    ] {
        scanned(&serve, repo, d).await;
    }

    // A simple signature kept for 1.10.0 (opaque bytes: it cannot verify).
    put_opaque_signature(&serve, "team/app", &new.to_string(), ROOT).await;

    let b = Browser::new(&serve.url);

    // -- anonymous: search ---------------------------------------------------------
    let home = b.get("/", "").await;
    let html = home.expect(200);
    for h in [
        "content-security-policy",
        "x-content-type-options",
        "referrer-policy",
    ] {
        assert!(home.headers.contains_key(h), "{h}: {:?}", home.headers);
    }
    assert_eq!(home.headers["x-content-type-options"], "nosniff");
    assert!(home.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'self'"));
    for id in [
        r#"<form id="search" method="get" action="/" role="search">"#,
        r#"<input id="q" name="q" type="search""#,
        r#"<nav id="facets" aria-label="Filters">"#,
        r#"<section class="facet" data-facet="arch">"#,
        r#"<p id="total">1 repository</p>"#,
        r#"<li class="result" data-repository="team/app">"#,
        r#"<a id="signin-link" href="/signin?next=%2F">"#,
    ] {
        assert!(html.contains(id), "{id}: {html}");
    }
    assert!(!html.contains("team/secret"), "{html}");
    assert!(
        !html.contains("s390x"),
        "a facet counts the private image: {html}"
    );
    assert!(!html.contains(&format!("application {HOSTILE}")), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    let none = b.get("/?q=secret", "").await;
    assert!(none
        .expect(200)
        .contains(r#"<p id="total">No repositories found</p>"#));
    let filtered = b.get("/?arch=amd64", "").await;
    assert!(filtered
        .expect(200)
        .contains(r#"data-value="amd64" href="/" aria-current="true""#));

    // -- anonymous: the repository and its image ----------------------------------------
    let repo = b.get("/repository/team/app", "").await;
    let html = repo.expect(200);
    assert!(html.contains("<h1>team/app</h1>"));
    assert!(html.contains(r#"<table id="tags">"#));
    let (t1, t2) = (
        html.find(r#"data-tag="1.10.0""#).unwrap(),
        html.find(r#"data-tag="1.9.0""#).unwrap(),
    );
    assert!(t1 < t2, "newest first, semver-aware");
    assert!(html.contains(&format!(
        r#"href="/repository/team/app/manifest/{new}">1.10.0</a>"#
    )));
    assert!(html.contains(r#"<code class="pull" id="pull-podman">podman pull "#));
    let row = &html[t1..t2];
    assert!(row.contains("<td>Signed</td>"), "{row}");
    assert!(html[t2..].contains("<td>—</td>"), "1.9.0 is not signed");

    let page = format!("/repository/team/app/manifest/{new}");
    let html = b.get(&page, "").await.expect(200).to_string();
    assert!(html.contains("<h1>team/app:1.10.0</h1>"), "{html}");
    assert!(html.contains(r#"<dl id="facts">"#) && html.contains(r#"<table id="labels">"#));
    assert!(html.contains(&format!(r#"<code id="digest">{new}</code>"#)));
    assert!(!html.contains(HOSTILE), "a label is let through: {html}");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    for tab in [
        "overview",
        "security",
        "packages",
        "containerfile",
        "tags",
        "signatures",
        "sbom",
    ] {
        let html = b.get(&format!("{page}?tab={tab}"), "").await;
        let html = html.expect(200);
        assert!(
            html.contains(&format!(r#"<section id="tab-{tab}">"#)),
            "{tab}: {html}"
        );
        assert!(
            html.contains(&format!(
                r#"data-tab="{tab}" href="?tab={tab}" aria-current="page""#
            )),
            "{tab}: {html}"
        );
        assert!(
            !html.contains(HOSTILE),
            "{tab} lets a label through: {html}"
        );
    }
    let sigs = b.get(&format!("{page}?tab=signatures"), "").await;
    let html = sigs.expect(200);
    assert!(html.contains(r#"<table id="signatures">"#), "{html}");
    assert!(
        html.contains(r#"<tr class="signature" data-verified="false"><td>simple signing</td>"#),
        "{html}"
    );
    let unsigned = b
        .get(
            &format!("/repository/team/app/manifest/{old}?tab=signatures"),
            "",
        )
        .await;
    assert!(unsigned.expect(200).contains(r#"<p id="no-signatures">"#));
    let packages = b.get(&format!("{page}?tab=packages"), "").await;
    let html = packages.expect(200);
    assert!(
        html.contains(r#"<p id="package-total">3 packages</p>"#),
        "{html}"
    );
    assert!(html.contains(r#"<tr class="package" data-name="curl">"#));
    assert!(
        html.contains("Against 1.9.0: 1 added, 0 removed, 1 changed."),
        "{html}"
    );
    let filtered = b.get(&format!("{page}?tab=packages&pq=ssl"), "").await;
    assert!(filtered
        .expect(200)
        .contains(r#"<p id="package-total">1 package</p>"#));
    let cf = b.get(&format!("{page}?tab=containerfile"), "").await;
    let html = cf.expect(200);
    assert!(
        html.contains(r#"<p id="containerfile-kind">Reconstructed from the image history</p>"#),
        "{html}"
    );
    assert!(
        html.contains("echo &#39;&lt;script&gt;") || html.contains("echo '&lt;script&gt;"),
        "{html}"
    );
    let by_tag = b.get("/repository/team/app?tag=1.9.0", "").await;
    assert!(by_tag.expect(200).contains("<h1>team/app:1.9.0</h1>"));
    let sbom = b.get(&format!("{page}/sbom?format=cyclonedx"), "").await;
    sbom.expect(200);
    assert!(sbom.headers["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    assert_eq!(
        serde_json::from_str::<Value>(&sbom.body).unwrap()["bomFormat"],
        "CycloneDX"
    );

    // -- anonymous: the private repository is a 404 exactly like a missing one -----------
    let hidden_repo = b.get("/repository/team/secret", "").await;
    let missing = b.get("/repository/team/nothing", "").await;
    assert_eq!(hidden_repo.status, 404);
    assert_eq!(hidden_repo.body, missing.body);
    assert!(hidden_repo
        .body
        .contains("<title>Not found · berth</title>"));
    assert!(!hidden_repo.body.contains("secret"));
    for path in [
        format!("/repository/team/secret/manifest/{secret}"),
        format!("/repository/team/secret/manifest/{secret}/sbom"),
        "/repository/team/secret?tag=s390".to_string(),
        format!(
            "/repository/team/app/manifest/{}",
            Digest::sha256_of(b"none")
        ),
        "/repository/team/app?tag=nope".to_string(),
    ] {
        let p = b.get(&path, "").await;
        assert_eq!(p.status, 404, "{path}");
        assert_eq!(p.body, missing.body, "{path}");
    }

    // -- signing in ------------------------------------------------------------------
    let form = b.get("/signin?next=/repository/team/secret", "").await;
    let html = form.expect(200).to_string();
    assert!(html.contains(r#"<form id="signin" method="post" action="/signin">"#));
    assert!(html.contains(r#"<input id="password" name="password" type="password""#));
    let set = form.set_cookie("berth_csrf");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    let csrf = cookie_value(&set);
    assert_eq!(hidden(&html, "csrf"), csrf);
    assert_eq!(hidden(&html, "next"), "/repository/team/secret");
    let jar = format!("berth_csrf={csrf}");
    let login = |user: &'static str, pw: &'static str, token: String| {
        vec![
            ("username", user.to_string()),
            ("password", pw.to_string()),
            ("csrf", token),
            ("next", "/repository/team/secret".to_string()),
        ]
    };
    let post = |fields: Vec<(&'static str, String)>, cookies: String| {
        let b = &b;
        async move {
            let f: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            b.post("/signin", &f, &cookies).await
        }
    };
    // CSRF: no cookie, no field, another token: 403, and no session.
    for (fields, cookies) in [
        (login(ALICE.0, ALICE.1, csrf.clone()), String::new()),
        (login(ALICE.0, ALICE.1, String::new()), jar.clone()),
        (login(ALICE.0, ALICE.1, "0".repeat(64)), jar.clone()),
    ] {
        let p = post(fields, cookies).await;
        assert!(
            p.expect(403).contains(r#"<p id="error" role="alert">"#),
            "{}",
            p.body
        );
        assert!(p.body.contains("expired"));
        assert!(!p
            .headers
            .get_all(SET_COOKIE)
            .iter()
            .any(|c| c.to_str().unwrap().starts_with("berth_session=")));
    }
    // A wrong password and an unknown user: the same answer.
    let wrong = post(login(ALICE.0, "nope", csrf.clone()), jar.clone()).await;
    let unknown = post(login("mallory", "nope", csrf.clone()), jar.clone()).await;
    for p in [&wrong, &unknown] {
        assert!(
            p.expect(401)
                .contains(r#"<p id="error" role="alert">Wrong user name or password</p>"#),
            "{}",
            p.body
        );
    }
    // The right password: a session cookie and back to where the visitor was going.
    let signed = post(login(ALICE.0, ALICE.1, csrf.clone()), jar.clone()).await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    assert_eq!(signed.headers[LOCATION], "/repository/team/secret");
    let set = signed.set_cookie("berth_session");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(flag), "{flag}: {set}");
    }
    let session = cookie_value(&set);
    assert_eq!(session.len(), 64, "256 random bits as hex: {session}");
    let me = format!("berth_session={session}");

    let html = b
        .get("/repository/team/secret", &me)
        .await
        .expect(200)
        .to_string();
    assert!(html.contains("<h1>team/secret</h1>"));
    assert!(html.contains(r#"<span id="user">alice</span>"#), "{html}");
    let token = hidden(&html, "csrf");
    assert_ne!(token, csrf, "the session has its own token");
    let search = b.get("/", &me).await;
    let html = search.expect(200);
    assert!(html.contains(r#"data-repository="team/secret""#), "{html}");
    assert!(html.contains(r#"<p id="total">2 repositories</p>"#));
    assert!(html.contains(r#"data-value="s390x""#), "{html}");
    // A facet's counts apply the other filters, not its own: amd64 stays on offer.
    let s390 = b.get("/?arch=s390x", &me).await;
    let html = s390.expect(200);
    assert!(html.contains(r#"<p id="total">1 repository</p>"#), "{html}");
    assert!(
        html.contains(r#"data-value="amd64" href="/?arch=amd64""#),
        "{html}"
    );
    b.get(
        &format!("/repository/team/secret/manifest/{secret}?tab=packages"),
        &me,
    )
    .await
    .expect(200);

    // `next` leads only to a local path.
    let mut fields = login(ALICE.0, ALICE.1, csrf.clone());
    fields[3].1 = "//evil.example/".into();
    let elsewhere = post(fields, jar.clone()).await;
    assert_eq!(elsewhere.status, 303);
    assert_eq!(elsewhere.headers[LOCATION], "/");

    // -- signing out ---------------------------------------------------------------------
    let refused = b.post("/signout", &[], &me).await;
    assert!(refused
        .expect(403)
        .contains(r#"<p id="error" role="alert">"#));
    let refused = b.post("/signout", &[("csrf", &csrf)], &me).await;
    refused.expect(403);
    b.get("/repository/team/secret", &me).await.expect(200);
    let out = b.post("/signout", &[("csrf", &token)], &me).await;
    assert_eq!(out.status, 303);
    assert!(out.set_cookie("berth_session").contains("Max-Age=0"));
    let gone = b.get("/repository/team/secret", &me).await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.body, missing.body);

    // -- a new password ends every session of the account ----------------------------
    let other = format!(
        "berth_session={}",
        cookie_value(&elsewhere.set_cookie("berth_session"))
    );
    b.get("/repository/team/secret", &other).await.expect(200);
    let changed = b
        .http
        .put(format!("{}/api/v1/users/alice/password", b.url))
        .basic_auth(ALICE.0, Some(ALICE.1))
        .json(&serde_json::json!({"password": "alice-new-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200, "{}", changed.text().await.unwrap());
    let ended = b.get("/repository/team/secret", &other).await;
    assert_eq!(ended.status, 404, "the old password's session lives on");
    assert_eq!(ended.body, missing.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_off_leaves_only_the_registry() {
    let root = tempfile::tempdir().unwrap();
    let serve = Serve::start(root.path(), &["--ui", "off"]).await;
    let b = Browser::new(&serve.url);
    for path in ["/", "/signin", "/repository/a/b", "/static/berth.css"] {
        let p = b.get(path, "").await;
        assert_eq!(p.status, 404, "{path}");
        assert!(!p.body.contains("<html"), "{path}: {}", p.body);
    }
    assert_eq!(b.get("/v2/", "").await.status, 200);
    // And on by default: the same folder served again without the flag.
    drop(serve);
    let serve = Serve::start(root.path(), &[]).await;
    let b = Browser::new(&serve.url);
    assert_eq!(b.get("/static/berth.css", "").await.status, 200);
    assert!(b
        .get("/", "")
        .await
        .expect(200)
        .contains(r#"<main id="main">"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_wrong_passwords_lock_the_form_out_as_they_lock_out_token() {
    let root = tempfile::tempdir().unwrap();
    let root_s = root.path().to_str().unwrap();
    registry(
        root_s,
        &["user", "add", ALICE.0, "--password-stdin"],
        ALICE.1,
    );
    let serve = Serve::start(root.path(), &[]).await;
    let b = Browser::new(&serve.url);
    let form = b.get("/signin", "").await;
    let csrf = cookie_value(&form.set_cookie("berth_csrf"));
    let jar = format!("berth_csrf={csrf}");
    let attempt = |pw: &'static str| {
        let (b, csrf, jar) = (&b, csrf.clone(), jar.clone());
        async move {
            b.post(
                "/signin",
                &[
                    ("username", ALICE.0),
                    ("password", pw),
                    ("csrf", &csrf),
                    ("next", "/"),
                ],
                &jar,
            )
            .await
        }
    };
    let mut locked = None;
    for _ in 0..12 {
        let p = attempt("wrong").await;
        if p.status == 429 {
            locked = Some(p);
            break;
        }
        assert_eq!(p.status, 401, "{}", p.body);
    }
    let locked = locked.expect("locked out after repeated failures");
    assert!(
        locked
            .body
            .contains(r#"<p id="error" role="alert">Too many failed sign-ins. Try again in "#),
        "{}",
        locked.body
    );
    assert!(locked.headers.contains_key("retry-after"));
    // While locked out, the right password does not get in either (nor does /token).
    let right = attempt(ALICE.1).await;
    assert_eq!(right.status, 429, "{}", right.body);
    let token = reqwest::Client::new()
        .get(format!("{}/token?service=berth", serve.url))
        .basic_auth(ALICE.0, Some(ALICE.1))
        .send()
        .await
        .unwrap();
    assert_eq!(token.status().as_u16(), 429);
}

/// An account imported with a bcrypt hash (htpasswd) has it replaced by argon2id at
/// its first sign-in; its web session is stamped with the hash it has after that, so
/// the upgrade does not end the session it began.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_that_upgrades_a_bcrypt_hash_stays_signed_in() {
    let root = tempfile::tempdir().unwrap();
    let root_s = root.path().to_str().unwrap();
    let htpasswd = root.path().join("htpasswd");
    std::fs::write(
        &htpasswd,
        "testuser:$2y$05$GJiQmYRK9Q3VjcWg2OCIqulW2UER/ljCldo0ZWAkgagCBaC1X03Ma\n",
    )
    .unwrap();
    registry(
        root_s,
        &["user", "import-htpasswd", htpasswd.to_str().unwrap()],
        "",
    );
    let serve = Serve::start(root.path(), &[]).await;
    let b = Browser::new(&serve.url);
    let form = b.get("/signin", "").await;
    let csrf = cookie_value(&form.set_cookie("berth_csrf"));
    let signed = b
        .post(
            "/signin",
            &[
                ("username", "testuser"),
                ("password", "testpass"),
                ("csrf", &csrf),
                ("next", "/"),
            ],
            &format!("berth_csrf={csrf}"),
        )
        .await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    let me = format!(
        "berth_session={}",
        cookie_value(&signed.set_cookie("berth_session"))
    );
    for _ in 0..3 {
        let html = b.get("/", &me).await.expect(200).to_string();
        assert!(
            html.contains(r#"<span id="user">testuser</span>"#),
            "{html}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
