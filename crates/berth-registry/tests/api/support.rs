//! Shared harness for the HTTP API tests: a registry on a free loopback port over a
//! temporary data folder, a reqwest client that never follows redirects, and the
//! helpers every endpoint family needs (push a blob, push a manifest, build an image
//! manifest, read an error body).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_image::{Algorithm, Digest};
use berth_registry::{Metadata, Registry, RegistryConfig};
use reqwest::header::{HeaderMap, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_FOREIGN_LAYER: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
pub const OCTET: &str = "application/octet-stream";

/// sha256("hello world"): the conformance suite's digest of a blob nobody pushed.
pub const DUMMY_DIGEST: &str =
    "sha256:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";

/// Every error code the OCI distribution spec (and the Docker API) defines.
pub const SPEC_CODES: &[&str] = &[
    "BLOB_UNKNOWN",
    "BLOB_UPLOAD_INVALID",
    "BLOB_UPLOAD_UNKNOWN",
    "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID",
    "MANIFEST_UNKNOWN",
    "MANIFEST_UNVERIFIED",
    "NAME_INVALID",
    "NAME_UNKNOWN",
    "SIZE_INVALID",
    "TAG_INVALID",
    "UNAUTHORIZED",
    "DENIED",
    "UNSUPPORTED",
    "TOOMANYREQUESTS",
    "PAGINATION_NUMBER_INVALID",
    "RANGE_INVALID",
];

// ---------------------------------------------------------------------------
// Server

/// A client bound to one registry's base URL. Cheap to clone into spawned tasks.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub client: reqwest::Client,
}

/// A running registry: its URL, its data folder and its state.
pub struct Server {
    pub api: Api,
    pub addr: SocketAddr,
    /// Holds `root` and nothing else, so that a test can see whether anything was
    /// written outside the registry's root.
    pub dir: TempDir,
    pub root: PathBuf,
    pub reg: Arc<Registry>,
    /// Where the blobs are when they are in object storage (`BERTH_TEST_BLOBS=s3`):
    /// the folder s3s-fs keeps the bucket's prefix in.
    pub bucket_dir: Option<PathBuf>,
    task: JoinHandle<()>,
}

impl std::ops::Deref for Server {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Server {
    pub async fn start() -> Server {
        Server::start_with_ttl(Duration::from_secs(3600)).await
    }

    pub async fn start_with_ttl(upload_ttl: Duration) -> Server {
        let dir = tempfile::tempdir().expect("creating a temporary folder");
        Server::start_in(dir, upload_ttl).await
    }

    /// Starts a registry on `dir/root` (which may hold data of an earlier one).
    pub async fn start_in(dir: TempDir, upload_ttl: Duration) -> Server {
        Server::start_configured(dir, |c| c.upload_ttl = upload_ttl).await
    }

    /// Starts a registry on `dir/root` with the configuration `configure` makes, and
    /// its metadata where [`metadata_backend`] says.
    pub async fn start_configured(
        dir: TempDir,
        configure: impl FnOnce(&mut RegistryConfig),
    ) -> Server {
        let bucket = blob_store_for(dir.path());
        let metadata = metadata_for(dir.path());
        Server::start_on(dir, metadata, bucket, configure).await
    }

    /// A registry whose blobs are in a bucket of the test S3 server whatever
    /// `BERTH_TEST_BLOBS` says, with its metadata in `meta.db`: for checks of the
    /// object storage's own paths that also reach into the database.
    pub async fn start_on_s3() -> Server {
        let dir = tempfile::tempdir().expect("creating a temporary folder");
        let bucket = Some(bucket_for(dir.path()));
        Server::start_on(dir, Metadata::Sqlite, bucket, |_| {}).await
    }

    async fn start_on(
        dir: TempDir,
        metadata: Metadata,
        bucket: Option<(PathBuf, berth_store::ObjectConfig)>,
        configure: impl FnOnce(&mut RegistryConfig),
    ) -> Server {
        let root = dir.path().join("root");
        let mut config = RegistryConfig::new(root.clone());
        config.metadata = metadata;
        config.blob_store = bucket.as_ref().map(|(_, c)| c.clone());
        configure(&mut config);
        let reg = Registry::open(config).expect("opening the registry");
        let app = reg
            .router()
            .into_make_service_with_connect_info::<SocketAddr>();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a loopback port");
        let addr = listener.local_addr().expect("local address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()
            .expect("building the HTTP client");
        Server {
            api: Api {
                base: format!("http://{addr}"),
                client,
            },
            addr,
            dir,
            root,
            reg,
            bucket_dir: bucket.map(|(dir, _)| dir),
            task,
        }
    }

    /// Stops serving and gives the data folder back (for a restart on the same root).
    pub async fn stop(self) -> TempDir {
        let Server {
            api,
            dir,
            reg,
            task,
            ..
        } = self;
        task.abort();
        let _ = task.await;
        drop(api);
        drop(reg);
        // Let connection tasks notice their client went away.
        tokio::time::sleep(Duration::from_millis(50)).await;
        dir
    }

    /// Names of the files in `root/uploads` (in-progress upload data), or of the
    /// sessions with objects in the bucket.
    pub fn upload_files(&self) -> Vec<String> {
        match &self.bucket_dir {
            // s3s-fs leaves a session's folder when its last object goes.
            Some(b) => list_dir(&b.join("uploads"))
                .into_iter()
                .filter(|id| {
                    let mut files = Vec::new();
                    walk(&b.join("uploads").join(id), &mut files);
                    !files.is_empty()
                })
                .collect(),
            None => list_dir(&self.root.join("uploads")),
        }
    }

    /// Every file under `root/blobs` (or the bucket's `blobs/`).
    pub fn blob_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        match &self.bucket_dir {
            Some(b) => walk(&b.join("blobs"), &mut out),
            None => walk(&self.root.join("blobs"), &mut out),
        }
        out
    }

    /// After a refused upload: neither digest is readable, no upload data is left, and
    /// no blob file was written.
    pub async fn assert_nothing_kept(&self, repo: &str, digests: &[&str]) {
        for d in digests {
            let resp = send(self.head(&format!("/v2/{repo}/blobs/{d}"))).await;
            assert_eq!(resp.status(), 404, "{d}");
        }
        assert!(self.upload_files().is_empty(), "{:?}", self.upload_files());
        assert!(
            self.blob_files().iter().all(|p| p.is_dir()),
            "{:?}",
            self.blob_files()
        );
    }
}

/// Where the servers of this run keep their metadata: SQLite (`meta.db`, the default),
/// or PostgreSQL when `BERTH_TEST_METADATA=postgres` (scripts/test runs this suite
/// both ways; berth-testenv starts the cluster).
pub fn metadata_backend() -> &'static str {
    match std::env::var("BERTH_TEST_METADATA").as_deref() {
        Ok("postgres") => "postgres",
        Ok("sqlite") | Err(_) => "sqlite",
        Ok(other) => panic!("BERTH_TEST_METADATA={other}: sqlite or postgres"),
    }
}

/// The metadata of a server on `dir`: a database of its own, the same one again when
/// a test restarts a server on the same folder.
fn metadata_for(dir: &Path) -> Metadata {
    if metadata_backend() == "sqlite" {
        return Metadata::Sqlite;
    }
    // Kept by folder in this process (not in the folder, which tests check for
    // strays).
    static DATABASES: std::sync::Mutex<Vec<(PathBuf, String)>> = std::sync::Mutex::new(Vec::new());
    let mut known = DATABASES.lock().unwrap_or_else(|e| e.into_inner());
    let url = match known.iter().find(|(d, _)| d == dir) {
        Some((_, url)) => url.clone(),
        None => {
            let url = berth_testenv::Postgres::shared().database();
            known.push((dir.to_path_buf(), url.clone()));
            url
        }
    };
    Metadata::Postgres(url)
}

/// Where the servers of this run keep blobs: `root/blobs` (the default), or a bucket
/// of an S3 server (s3s-fs, berth-testenv) when `BERTH_TEST_BLOBS=s3` (scripts/test
/// runs this suite that way too). The same bucket again for a server restarted on the
/// same folder; with the folder s3s-fs keeps its prefix in.
fn blob_store_for(dir: &Path) -> Option<(PathBuf, berth_store::ObjectConfig)> {
    match std::env::var("BERTH_TEST_BLOBS").as_deref() {
        Ok("s3") => Some(bucket_for(dir)),
        Ok("files") | Err(_) => None,
        Ok(other) => panic!("BERTH_TEST_BLOBS={other}: files or s3"),
    }
}

/// The bucket of the servers on `dir` (a new one for a new folder), and the folder
/// s3s-fs keeps its prefix in.
fn bucket_for(dir: &Path) -> (PathBuf, berth_store::ObjectConfig) {
    static BUCKETS: std::sync::Mutex<Vec<(PathBuf, String)>> = std::sync::Mutex::new(Vec::new());
    let s3 = berth_testenv::S3::shared();
    let mut known = BUCKETS.lock().unwrap_or_else(|e| e.into_inner());
    let bucket = match known.iter().find(|(d, _)| d == dir) {
        Some((_, b)) => b.clone(),
        None => {
            let b = s3.bucket();
            known.push((dir.to_path_buf(), b.clone()));
            b
        }
    };
    let mut c = berth_store::ObjectConfig::from_url(&format!("s3://{bucket}/reg")).unwrap();
    c.endpoint = Some(s3.endpoint());
    c.region = Some(berth_testenv::S3::REGION.into());
    c.path_style = true;
    c.access_key_id = Some(berth_testenv::S3::ACCESS_KEY.into());
    c.secret_access_key = Some(berth_testenv::S3::SECRET_KEY.into());
    (s3.bucket_dir(&bucket).join("reg"), c)
}

pub fn list_dir(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

pub fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.filter_map(|e| e.ok()) {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        }
        out.push(p);
    }
}

impl Api {
    /// An absolute URL for a path (or a `Location` that is already absolute).
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            assert!(
                path.starts_with('/'),
                "expected an absolute path, got {path:?}"
            );
            format!("{}{}", self.base, path)
        }
    }

    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }
    pub fn get(&self, path: &str) -> RequestBuilder {
        self.req(Method::GET, path)
    }
    pub fn head(&self, path: &str) -> RequestBuilder {
        self.req(Method::HEAD, path)
    }
    pub fn post(&self, path: &str) -> RequestBuilder {
        self.req(Method::POST, path)
    }
    pub fn put(&self, path: &str) -> RequestBuilder {
        self.req(Method::PUT, path)
    }
    pub fn patch(&self, path: &str) -> RequestBuilder {
        self.req(Method::PATCH, path)
    }
    pub fn delete(&self, path: &str) -> RequestBuilder {
        self.req(Method::DELETE, path)
    }
}

/// Sends a request, failing the test on a transport error.
pub async fn send(rb: RequestBuilder) -> Response {
    rb.send().await.expect("HTTP request failed")
}

// ---------------------------------------------------------------------------
// Responses

pub fn header(resp: &Response, name: &str) -> Option<String> {
    header_of(resp.headers(), name)
}

pub fn header_of(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .map(|v| v.to_str().expect("header is not ASCII").to_string())
}

pub fn location(resp: &Response) -> String {
    header(resp, "location")
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| panic!("no Location in {} answer", resp.status()))
}

/// Asserts the status, printing the body when it differs.
pub async fn expect_status(resp: Response, status: u16) -> (HeaderMap, Vec<u8>) {
    let got = resp.status();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.expect("reading the body").to_vec();
    assert_eq!(
        got.as_u16(),
        status,
        "expected {status}, got {got}: {}",
        String::from_utf8_lossy(&body)
    );
    (headers, body)
}

/// Parses an error body `{"errors":[{"code","message","detail"}]}` and returns the
/// first code, checking the shape on the way.
pub fn error_code(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "error body is not JSON ({e}): {}",
            String::from_utf8_lossy(body)
        )
    });
    let errors = v["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors array in {v}"));
    assert!(!errors.is_empty(), "empty errors array in {v}");
    for e in errors {
        assert!(e["code"].is_string(), "error without a code: {v}");
        assert!(e["message"].is_string(), "error without a message: {v}");
        assert!(
            e.as_object().unwrap().contains_key("detail"),
            "error without detail: {v}"
        );
        let code = e["code"].as_str().unwrap();
        assert!(SPEC_CODES.contains(&code), "{code} is not a spec code");
    }
    errors[0]["code"].as_str().unwrap().to_string()
}

/// Asserts an error answer: status, JSON error body with this code.
pub async fn expect_error(resp: Response, status: u16, code: &str) -> Value {
    let (headers, body) = expect_status(resp, status).await;
    let ct = header_of(&headers, "content-type").unwrap_or_default();
    assert!(
        ct.starts_with("application/json"),
        "error Content-Type is {ct:?}"
    );
    assert_eq!(
        error_code(&body),
        code,
        "body: {}",
        String::from_utf8_lossy(&body)
    );
    serde_json::from_slice(&body).unwrap()
}

/// The code of a 4xx answer whose exact code may be one of several.
pub async fn error_of(resp: Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body = resp.bytes().await.expect("reading the body");
    (status, error_code(&body))
}

// ---------------------------------------------------------------------------
// Content

pub fn sha256(bytes: &[u8]) -> String {
    Digest::sha256_of(bytes).to_string()
}

pub fn sha512(bytes: &[u8]) -> String {
    Digest::of(Algorithm::Sha512, bytes).to_string()
}

/// Deterministic pseudo-random bytes (xorshift), different for every seed.
pub fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// An image config, unique per seed.
pub fn config_bytes(seed: u64) -> Vec<u8> {
    serde_json::to_vec_pretty(&json!({
        "author": format!("berth-test-{seed}"),
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
    }))
    .unwrap()
}

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desc {
    pub media_type: String,
    pub digest: String,
    pub size: usize,
}

impl Desc {
    pub fn of(media_type: &str, bytes: &[u8]) -> Desc {
        Desc {
            media_type: media_type.to_string(),
            digest: sha256(bytes),
            size: bytes.len(),
        }
    }

    pub fn json(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size})
    }
}

/// An OCI image manifest (with `mediaType`) over a config and layers.
pub fn image_manifest(config: &Desc, layers: &[Desc]) -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.json(),
        "layers": layers.iter().map(Desc::json).collect::<Vec<_>>(),
    })
}

/// An index (OCI or Docker manifest list, by `media_type`) over child manifests.
pub fn index_manifest(media_type: &str, children: &[Desc]) -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": children.iter().map(|c| {
            let mut d = c.json();
            d["platform"] = json!({"architecture": "amd64", "os": "linux"});
            d
        }).collect::<Vec<_>>(),
    })
}

/// Serialises a manifest the way the conformance suite does (tab-indented), so that
/// "served exactly as pushed" is tested with bytes a re-serialiser would change.
pub fn manifest_bytes(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    serde::Serialize::serialize(v, &mut ser).unwrap();
    out
}

pub fn with_digest(location: &str, digest: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={digest}")
}

pub fn content_range(start: usize, end_inclusive: usize) -> String {
    format!("{start}-{end_inclusive}")
}

/// Opens an upload session (`POST …/blobs/uploads/`), returns its Location.
pub async fn start_upload(api: &Api, repo: &str) -> String {
    let resp = send(
        api.post(&format!("/v2/{repo}/blobs/uploads/"))
            .header(CONTENT_LENGTH, "0"),
    )
    .await;
    let loc = location(&resp);
    expect_status(resp, 202).await;
    assert!(
        loc.starts_with(&format!("/v2/{repo}/blobs/uploads/")),
        "upload Location {loc}"
    );
    loc
}

/// Sends one chunk with `Content-Range`.
pub async fn patch_chunk(api: &Api, loc: &str, start: usize, chunk: &[u8]) -> Response {
    send(
        api.patch(loc)
            .header(CONTENT_TYPE, OCTET)
            .header(CONTENT_RANGE, content_range(start, start + chunk.len() - 1))
            .header(CONTENT_LENGTH, chunk.len())
            .body(chunk.to_vec()),
    )
    .await
}

/// Finishes an upload with `PUT <loc>?digest=` and an optional last chunk.
pub async fn finish_upload(api: &Api, loc: &str, digest: &str, body: &[u8]) -> Response {
    send(
        api.put(&with_digest(loc, digest))
            .header(CONTENT_TYPE, OCTET)
            .header(CONTENT_LENGTH, body.len())
            .body(body.to_vec()),
    )
    .await
}

/// Pushes a blob with POST then PUT (the suite's `UPLOAD`); returns its digest.
pub async fn push_blob(api: &Api, repo: &str, bytes: &[u8]) -> String {
    let d = sha256(bytes);
    let loc = start_upload(api, repo).await;
    let resp = finish_upload(api, &loc, &d, bytes).await;
    assert_eq!(
        header(&resp, "location").as_deref(),
        Some(format!("/v2/{repo}/blobs/{d}").as_str())
    );
    expect_status(resp, 201).await;
    d
}

/// Pushes a blob with one `POST …?digest=`.
pub async fn push_blob_monolithic(api: &Api, repo: &str, bytes: &[u8], digest: &str) -> Response {
    send(
        api.post(&format!("/v2/{repo}/blobs/uploads/?digest={digest}"))
            .header(CONTENT_TYPE, OCTET)
            .header(CONTENT_LENGTH, bytes.len())
            .body(bytes.to_vec()),
    )
    .await
}

/// `PUT /v2/<repo>/manifests/<reference>` with this Content-Type.
pub async fn put_manifest(
    api: &Api,
    repo: &str,
    reference: &str,
    media_type: &str,
    body: &[u8],
) -> Response {
    send(
        api.put(&format!("/v2/{repo}/manifests/{reference}"))
            .header(CONTENT_TYPE, media_type)
            .body(body.to_vec()),
    )
    .await
}

/// Pushes a manifest and asserts 201 with the right Location and digest; returns the
/// response headers.
pub async fn push_manifest(
    api: &Api,
    repo: &str,
    reference: &str,
    media_type: &str,
    body: &[u8],
) -> HeaderMap {
    let resp = put_manifest(api, repo, reference, media_type, body).await;
    let (headers, _) = expect_status(resp, 201).await;
    let d = sha256(body);
    assert_eq!(
        header_of(&headers, "docker-content-digest").as_deref(),
        Some(d.as_str())
    );
    assert_eq!(
        header_of(&headers, "location").as_deref(),
        Some(format!("/v2/{repo}/manifests/{d}").as_str())
    );
    headers
}

/// An image pushed to a repository: its blobs and its manifest.
#[derive(Debug, Clone)]
pub struct Image {
    pub config: Vec<u8>,
    pub layer: Vec<u8>,
    pub config_desc: Desc,
    pub layer_desc: Desc,
    pub manifest: Vec<u8>,
    pub digest: String,
    /// Descriptor of the manifest itself (for an index or a subject).
    pub desc: Desc,
}

/// Builds (without pushing) an image unique per seed.
pub fn image(seed: u64) -> Image {
    let config = config_bytes(seed);
    let layer = data(seed, 300);
    let config_desc = Desc::of(OCI_CONFIG, &config);
    let layer_desc = Desc::of(OCI_LAYER, &layer);
    let manifest = manifest_bytes(&image_manifest(
        &config_desc,
        std::slice::from_ref(&layer_desc),
    ));
    Image {
        digest: sha256(&manifest),
        desc: Desc::of(OCI_MANIFEST, &manifest),
        config,
        layer,
        config_desc,
        layer_desc,
        manifest,
    }
}

/// Pushes an image's blobs, then its manifest by `reference` (a tag, or its digest
/// when `None`).
pub async fn push_image(api: &Api, repo: &str, reference: Option<&str>, seed: u64) -> Image {
    let img = image(seed);
    push_blob(api, repo, &img.config).await;
    push_blob(api, repo, &img.layer).await;
    push_manifest(
        api,
        repo,
        reference.unwrap_or(&img.digest),
        OCI_MANIFEST,
        &img.manifest,
    )
    .await;
    img
}

/// `GET /v2/<repo>/tags/list[?query]`: the tags, asserting 200.
pub async fn tags(api: &Api, repo: &str, query: &str) -> (Vec<String>, Option<String>) {
    let q = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    let resp = send(api.get(&format!("/v2/{repo}/tags/list{q}"))).await;
    let (headers, body) = expect_status(resp, 200).await;
    let v: Value = serde_json::from_slice(&body).expect("tag list is JSON");
    assert_eq!(v["name"], repo);
    let tags = match &v["tags"] {
        Value::Null => Vec::new(),
        t => t
            .as_array()
            .expect("tags is an array")
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect(),
    };
    (tags, header_of(&headers, "link"))
}

/// The target of a `Link: <url>; rel="next"` header.
pub fn link_target(link: &str) -> String {
    assert!(
        link.contains("rel=\"next\""),
        "Link without rel=next: {link}"
    );
    let start = link.find('<').expect("Link has <") + 1;
    let end = link.find('>').expect("Link has >");
    link[start..end].to_string()
}

// ---------------------------------------------------------------------------
// Raw HTTP, for paths a URL library would normalise (`..`, `%2e%2e`)

/// Sends one request with the request target exactly as given; returns the status and
/// the body text.
pub async fn raw_request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    body: &[u8],
) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connecting");
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out))
        .await
        .expect("raw request timed out")
        .expect("reading the raw answer");
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}
