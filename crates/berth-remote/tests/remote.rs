//! The client against a berth registry with access control (the token flow), and
//! against a small fake registry that misbehaves on purpose (retries, wrong digests).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use berth_auth::{Actor, Change, Secret};
use berth_image::Digest;
use berth_registry::{Registry as Server, RegistryConfig};
use berth_remote::{Credentials, Options, Registry, RemoteError};

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    addr.to_string()
}

fn options(credentials: Option<Credentials>) -> Options {
    Options {
        tls_verify: false,
        credentials,
        retries: 3,
        retry_delay: Duration::from_millis(10),
        cert_dirs: Vec::new(),
        plain_http: false,
        read_timeout: None,
    }
}

/// Pushes one manifest (with an empty config and no layers) as `tag`, with Basic
/// credentials; returns its bytes.
async fn push(host: &str, repo: &str, tag: &str) -> Vec<u8> {
    let http = reqwest::Client::new();
    let config = b"{}".to_vec();
    let cd = Digest::sha256_of(&config);
    let r = http
        .post(format!(
            "http://{host}/v2/{repo}/blobs/uploads/?digest={cd}"
        ))
        .basic_auth("alice", Some("pw"))
        .body(config.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": 2},
        "layers": []
    }))
    .unwrap();
    let r = http
        .put(format!("http://{host}/v2/{repo}/manifests/{tag}"))
        .basic_auth("alice", Some("pw"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    manifest
}

/// A berth registry in `dir` with user alice (password pw), served; its host.
async fn berth_with_alice(dir: &std::path::Path) -> String {
    let server = Server::open(RegistryConfig::new(dir.join("root"))).unwrap();
    server
        .auth()
        .store()
        .apply(
            &Actor::local(),
            &Change::UserAdd {
                name: "alice".into(),
                password: Secret("pw".into()),
                superuser: false,
            },
        )
        .unwrap();
    serve(server.router()).await
}

/// A client logged in as alice.
fn alice(host: &str) -> Registry {
    Registry::new(
        host,
        options(Some(Credentials::Basic {
            username: "alice".into(),
            password: "pw".into(),
        })),
    )
    .unwrap()
}

#[tokio::test]
async fn token_flow_against_berth() {
    let dir = tempfile::tempdir().unwrap();
    let host = berth_with_alice(dir.path()).await;
    let manifest = push(&host, "alice/app", "v1").await;
    for tag in ["v2", "v3"] {
        push(&host, "alice/app", tag).await;
    }

    let alice = alice(&host);
    alice.check_login().await.unwrap();
    let got = alice.manifest("alice/app", "v1").await.unwrap();
    assert_eq!(got.bytes, manifest);
    assert_eq!(got.digest, Digest::sha256_of(&manifest));
    let by_digest = alice
        .manifest("alice/app", &got.digest.to_string())
        .await
        .unwrap();
    assert_eq!(by_digest.bytes, manifest);
    assert_eq!(alice.tags("alice/app").await.unwrap(), ["v1", "v2", "v3"]);
    assert!(alice
        .manifest("alice/app", "nope")
        .await
        .unwrap_err()
        .is_not_found());

    let wrong = Registry::new(
        &host,
        options(Some(Credentials::Basic {
            username: "alice".into(),
            password: "bad".into(),
        })),
    )
    .unwrap();
    assert!(matches!(
        wrong.check_login().await,
        Err(RemoteError::Unauthorized { .. })
    ));
    let anonymous = Registry::new(&host, options(None)).unwrap();
    let err = anonymous.manifest("alice/app", "v1").await.unwrap_err();
    assert!(matches!(err, RemoteError::Unauthorized { .. }), "{err}");
}

#[tokio::test]
async fn transient_failures_are_retried_and_final_ones_are_not() {
    let hits = Arc::new(AtomicUsize::new(0));
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    let h = hits.clone();
    let app = axum::Router::new()
        .route("/v2/", get(|| async { "{}" }))
        .route(
            "/v2/flaky/manifests/{r}",
            get(move || {
                let h = h.clone();
                async move {
                    if h.fetch_add(1, Ordering::SeqCst) < 2 {
                        return StatusCode::SERVICE_UNAVAILABLE.into_response();
                    }
                    let mut headers = HeaderMap::new();
                    headers.insert(
                        "content-type",
                        "application/vnd.oci.image.index.v1+json".parse().unwrap(),
                    );
                    (headers, manifest.to_vec()).into_response()
                }
            }),
        )
        .route(
            "/v2/busy/manifests/{r}",
            get(|| async {
                (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")]).into_response()
            }),
        )
        .route(
            "/v2/liar/manifests/{r}",
            get(move || async move { manifest.to_vec() }),
        );
    let host = serve(app).await;
    let reg = Registry::new(&host, options(None)).unwrap();

    let got = reg.manifest("flaky", "v1").await.unwrap();
    assert_eq!(got.bytes, manifest);
    assert_eq!(hits.load(Ordering::SeqCst), 3);

    let t0 = Instant::now();
    let err = reg.manifest("busy", "v1").await.unwrap_err();
    assert!(
        matches!(err, RemoteError::Status { status: 429, .. }),
        "{err}"
    );
    assert!(
        t0.elapsed() >= Duration::from_secs(3),
        "Retry-After was not honoured"
    );

    let err = reg.manifest("missing", "v1").await.unwrap_err();
    assert!(err.is_not_found(), "{err}");

    // A manifest asked for by digest must have that digest.
    let other = Digest::sha256_of(b"something else");
    let err = reg.manifest("liar", &other.to_string()).await.unwrap_err();
    assert!(matches!(err, RemoteError::Digest { .. }), "{err}");
    assert!(err.to_string().contains("liar"), "{err}");
}

/// The first contact is retried while the registry refuses connections (it is still
/// starting), as podman retries it; with no retries it fails at once.
#[tokio::test]
async fn the_first_contact_is_retried_while_the_registry_starts() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host = format!("127.0.0.1:{port}");
    let once = Registry::new(
        &host,
        Options {
            retries: 0,
            ..options(None)
        },
    )
    .unwrap();
    assert!(
        once.supports_signatures().await.is_err(),
        "nothing listens yet"
    );
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(60)).await;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let app = axum::Router::new().route("/v2/", get(|| async { "{}" }));
        let _ = axum::serve(listener, app).await;
    });
    let patient = Registry::new(
        &host,
        Options {
            retry_delay: Duration::from_millis(50),
            ..options(None)
        },
    )
    .unwrap();
    patient
        .supports_signatures()
        .await
        .expect("reached once it listens");
    // A name that does not resolve is not asked again: asking changes nothing.
    let slow = Options {
        retry_delay: Duration::from_secs(5),
        ..options(None)
    };
    let t0 = Instant::now();
    let nowhere = Registry::new("nonexistent.invalid", slow).unwrap();
    assert!(nowhere.supports_signatures().await.is_err());
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "retried: {:?}",
        t0.elapsed()
    );
}

/// A manifest asked for by digest is named `repo@digest` in the error, not
/// `repo:sha256:…`; by tag, `repo:tag`.
#[tokio::test]
async fn missing_manifests_are_named_as_references() {
    let app = axum::Router::new()
        .route("/v2/", get(|| async { "{}" }))
        .route("/v2/{*rest}", get(|| async { StatusCode::NOT_FOUND }));
    let host = serve(app).await;
    let reg = Registry::new(&host, options(None)).unwrap();
    let d = Digest::sha256_of(b"x");
    let e = reg.manifest("a/b", &d.to_string()).await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert_eq!(e.to_string(), format!("{host}/a/b@{d}: not found"));
    let e = reg.manifest("a/b", "v1").await.unwrap_err();
    assert_eq!(e.to_string(), format!("{host}/a/b:v1: not found"));
}

/// The ping's `X-Registry-Supports-Signatures: 1` is kept, and signatures go through
/// the extension and come back in order; a registry without it says so.
#[tokio::test]
async fn signature_extension_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let host = berth_with_alice(dir.path()).await;
    let manifest = push(&host, "alice/app", "v1").await;
    let digest = Digest::sha256_of(&manifest);
    let alice = alice(&host);
    assert!(alice.supports_signatures().await.unwrap());
    assert!(alice
        .extension_signatures("alice/app", &digest)
        .await
        .unwrap()
        .is_empty());
    for (i, body) in [b"\xa3first".as_slice(), b"\xa3second"].iter().enumerate() {
        let name = format!("{digest}@{:032x}", i + 1);
        alice
            .put_extension_signature("alice/app", &digest, &name, body)
            .await
            .unwrap();
    }
    let got = alice
        .extension_signatures("alice/app", &digest)
        .await
        .unwrap();
    let contents: Vec<&[u8]> = got.iter().map(|s| s.content.as_slice()).collect();
    assert_eq!(contents, [b"\xa3first".as_slice(), b"\xa3second"]);

    let plain = serve(axum::Router::new().route("/v2/", get(|| async { "{}" }))).await;
    let plain = Registry::new(&plain, options(None)).unwrap();
    assert!(!plain.supports_signatures().await.unwrap());
    let missing = plain
        .lookaside_get(&format!("http://{host}/nothing/signature-1"))
        .await
        .unwrap();
    assert_eq!(missing, None);
}

/// A registry that answers to exhaust or trap its client: a token that never expires,
/// an error whose body never ends, a tag list whose next page is itself. Each is an
/// error or a bounded answer, not a panic, an endless read or a loop.
#[tokio::test]
async fn a_hostile_registry_cannot_crash_exhaust_or_loop_the_client() {
    let host = Arc::new(std::sync::OnceLock::<String>::new());
    let h = host.clone();
    let app = axum::Router::new()
        .route(
            "/v2/",
            get(move || {
                let realm = format!("http://{}/token", h.get().unwrap());
                async move {
                    let challenge = format!("Bearer realm=\"{realm}\",service=\"x\"");
                    (StatusCode::UNAUTHORIZED, [("www-authenticate", challenge)])
                }
            }),
        )
        .route(
            "/token",
            get(|| async { r#"{"token":"t","expires_in":18446744073709551615}"# }),
        )
        .route(
            "/v2/loop/tags/list",
            get(|| async {
                (
                    [("link", "</v2/loop/tags/list?last=a>; rel=\"next\"")],
                    r#"{"name":"loop","tags":["a","../../x","\u001b[2J"]}"#,
                )
            }),
        )
        .route(
            "/v2/names/tags/list",
            get(|| async { r#"{"name":"names","tags":["v1","../../x","v1/../x","\u001b[2J"]}"# }),
        )
        .route(
            "/v2/endless/manifests/{r}",
            get(|| async {
                let zeros = futures_util::stream::repeat_with(|| {
                    Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 1 << 20]))
                });
                (StatusCode::NOT_FOUND, axum::body::Body::from_stream(zeros))
            }),
        );
    let addr = serve(app).await;
    host.set(addr.clone()).unwrap();
    let reg = Registry::new(&addr, options(None)).unwrap();

    // An `expires_in` of u64::MAX seconds overflowed an Instant: a panic.
    let e = reg.tags("loop").await.unwrap_err();
    assert!(e.to_string().contains("read before"), "{e}");
    // What is not a tag is not listed as one.
    assert_eq!(reg.tags("names").await.unwrap(), ["v1"]);
    // A 404 whose body never ends is reported from its first bytes.
    let e = tokio::time::timeout(Duration::from_secs(20), reg.manifest("endless", "v1"))
        .await
        .expect("the body is not read to its end")
        .unwrap_err();
    assert!(e.is_not_found(), "{e}");
}

/// A registry's credentials go to its own origin only: not to another host that a
/// `Link` names.
#[tokio::test]
async fn credentials_stay_with_the_registrys_origin() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::<Option<String>>::new()));
    let s = seen.clone();
    let other = serve(axum::Router::new().route(
        "/v2/app/tags/list",
        get(move |headers: HeaderMap| {
            let s = s.clone();
            async move {
                let auth = headers
                    .get("authorization")
                    .map(|v| v.to_str().unwrap_or("").to_string());
                s.lock().unwrap().push(auth);
                r#"{"name":"app","tags":["b"]}"#
            }
        }),
    ))
    .await;
    let link = format!("<http://{other}/v2/app/tags/list?last=a>; rel=\"next\"");
    let app = axum::Router::new()
        .route(
            "/v2/",
            get(|| async {
                (
                    StatusCode::UNAUTHORIZED,
                    [("www-authenticate", "Basic realm=\"r\"")],
                )
            }),
        )
        .route(
            "/v2/app/tags/list",
            get(move |headers: HeaderMap| {
                let link = link.clone();
                async move {
                    if headers.get("authorization").is_none() {
                        return StatusCode::UNAUTHORIZED.into_response();
                    }
                    ([("link", link)], r#"{"name":"app","tags":["a"]}"#).into_response()
                }
            }),
        );
    let host = serve(app).await;
    let creds = Credentials::Basic {
        username: "alice".into(),
        password: "pw".into(),
    };
    let reg = Registry::new(&host, options(Some(creds))).unwrap();
    assert_eq!(reg.tags("app").await.unwrap(), ["a", "b"]);
    assert_eq!(*seen.lock().unwrap(), [None]);
}
