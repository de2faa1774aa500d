//! The registry's whole router, in process, against a fresh temporary root: a sequence
//! of arbitrary requests, then the store is checked: every blob file must hash to its
//! name, whatever was pushed, cut short, deleted or mounted.
//!
//! Input: requests separated by `\n%%\n`. Each is a head (`METHOD PATH` then
//! `Name: value` lines), a blank line, and the body. In paths and header values,
//! `{loc}` is the last response's `Location` and `{body-digest}` the sha256 digest of
//! this request's body, so that mutations can reach chunked uploads and valid pushes.
#![no_main]
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request};
use berth_image::{Algorithm, Digest};
use berth_registry::{Registry, RegistryConfig};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

const MAX_REQUESTS: usize = 24;

fuzz_target!(|data: &[u8]| {
    let root = tempfile::tempdir_in(berth_fuzz::scratch()).expect("a temporary root");
    let registry = Registry::open(RegistryConfig::new(root.path().to_path_buf()))
        .expect("opening a registry on an empty root");
    berth_fuzz::runtime().block_on(drive(&registry, data));
    drop(registry);
    check_blobs(&root.path().join("blobs"));
});

async fn drive(registry: &Arc<Registry>, data: &[u8]) {
    let router = registry.router();
    let mut location = String::new();
    let mut rest = data;
    for _ in 0..MAX_REQUESTS {
        if rest.is_empty() {
            break;
        }
        let (request, next) = berth_fuzz::split_once(rest, b"\n%%\n");
        rest = next;
        let Some(request) = build(request, &location) else {
            continue;
        };
        let response = router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        assert!(
            !response.status().is_server_error() || response.status().as_u16() == 503,
            "a request made the registry fail: {}",
            response.status()
        );
        if let Some(l) = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
        {
            location = l.to_string();
        }
        let _ = response.into_body().collect().await;
    }
}

fn build(raw: &[u8], location: &str) -> Option<Request<Body>> {
    let (head, body) = berth_fuzz::split_once(raw, b"\n\n");
    let head = std::str::from_utf8(head).ok()?;
    let body_digest = Digest::sha256_of(body).to_string();
    let fill = |s: &str| {
        s.replace("{loc}", location)
            .replace("{body-digest}", &body_digest)
    };
    let mut lines = head.lines();
    let (method, path) = lines.next()?.split_once(' ')?;
    let mut builder = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).ok()?)
        .uri(fill(path));
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(&fill(value.trim())),
        ) else {
            continue;
        };
        builder = builder.header(name, value);
    }
    builder.body(Body::from(body.to_vec())).ok()
}

/// `blobs/<algorithm>/<xx>/<hex>`: each file's content has the digest its path names.
fn check_blobs(blobs: &Path) {
    for algorithm in berth_fuzz::names(blobs) {
        let alg: Algorithm = algorithm
            .parse()
            .unwrap_or_else(|_| panic!("blob folder {algorithm}"));
        for prefix in berth_fuzz::names(&blobs.join(&algorithm)) {
            for hex in berth_fuzz::names(&blobs.join(&algorithm).join(&prefix)) {
                let path = blobs.join(&algorithm).join(&prefix).join(&hex);
                let bytes = std::fs::read(&path).expect("reading a stored blob");
                assert_eq!(
                    Digest::of(alg, &bytes).hex(),
                    hex,
                    "{} does not hold what its name says",
                    path.display()
                );
                assert!(hex.starts_with(&prefix));
            }
        }
    }
}
