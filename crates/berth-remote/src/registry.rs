//! One registry host: scheme, login, retries, and the requests images need.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use berth_image::reference::join;
use berth_image::Digest;
use reqwest::header::{
    HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_TYPE, LINK, RETRY_AFTER, WWW_AUTHENTICATE,
};
use reqwest::{Method, Response, StatusCode};

use crate::challenge::{self, Challenge};
use crate::error::{
    answered_without_tls, certificate_problem, registry_detail, registry_detail_text, RemoteError,
};
use crate::shared;

/// Every manifest type berth reads, as clients send it.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json";
/// Manifests larger than this are refused (as registries refuse to store them).
const MAX_MANIFEST: usize = 4 * 1024 * 1024;
/// One page of a listing (tags, referrers, catalog, search) or a token answer.
pub(crate) const MAX_PAGE: usize = 4 * 1024 * 1024;
/// Pages of one listing followed at most, and the entries kept of one: a registry
/// whose `Link`s never end must not keep a client (or a cache filling from it) forever.
pub(crate) const MAX_PAGES: usize = 100_000;
pub(crate) const MAX_ENTRIES: usize = 2_000_000;
/// What is read of an error's body to report it.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// The longest a token is kept, whatever its `expires_in` says.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Tokens living shorter than this are taken to live this long (containers/image does).
const MIN_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Longest wait a `Retry-After` may impose.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// How to prove who we are.
#[derive(Clone)]
pub enum Credentials {
    Basic {
        username: String,
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken` in auth.json).
    IdentityToken {
        username: String,
        token: String,
    },
    /// A bearer token given as is (`--registry-token`).
    Token(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Basic { username, .. } | Credentials::IdentityToken { username, .. } => {
                write!(f, "Credentials({username}, <redacted>)")
            }
            Credentials::Token(_) => f.write_str("Credentials(<token>)"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Verify TLS certificates; when off, plain http is tried if https fails.
    pub tls_verify: bool,
    pub credentials: Option<Credentials>,
    /// Retries of a repeatable request after the first attempt.
    pub retries: u32,
    /// First backoff; doubled on each retry.
    pub retry_delay: Duration,
    /// Folders of TLS material for this registry, as containers/image reads them:
    /// `*.crt` are extra certificate authorities, `NAME.cert` with `NAME.key` a client
    /// certificate. Typically `--cert-dir`, else `/etc/containers/certs.d/HOST` and
    /// `/etc/docker/certs.d/HOST`.
    pub cert_dirs: Vec<std::path::PathBuf>,
    /// Speak plain HTTP only (an `http://` URL given as such, as a pull-through
    /// cache's upstream on the same network may be).
    pub plain_http: bool,
    /// Longest wait for the next bytes of an answer (its head or its body), `None`:
    /// no bound. A command a person runs has them to stop it; a server's own client
    /// (a pull-through cache, replication) must not wait for ever on a registry that
    /// went silent, with every client of what it fetches waiting behind it.
    pub read_timeout: Option<Duration>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            tls_verify: true,
            credentials: None,
            retries: 3,
            retry_delay: Duration::from_millis(200),
            cert_dirs: Vec::new(),
            plain_http: false,
            read_timeout: None,
        }
    }
}

/// A manifest as the registry sent it: the bytes (digests are of these), the media
/// type, and their digest.
#[derive(Debug, Clone)]
pub struct RawManifest {
    pub bytes: Vec<u8>,
    pub media_type: Option<String>,
    pub digest: Digest,
}

pub struct Registry {
    /// The registry as images name it (and credentials are keyed): `docker.io`.
    host: String,
    /// Where its API answers: [`api_endpoint`] of `host`.
    endpoint: String,
    http: reqwest::Client,
    options: Options,
    state: Mutex<State>,
    /// Held while pinging, so that requests sent at once ping the registry once.
    pinging: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    /// `https://host` or `http://host`, once known.
    base: Option<String>,
    /// What `/v2/` asked for; `Some(None)`: nothing.
    challenge: Option<Option<Challenge>>,
    /// scope -> (token, expiry).
    tokens: HashMap<String, (String, Instant)>,
    /// The ping answered `X-Registry-Supports-Signatures: 1`: simple signatures are
    /// read and written through the registry's signature extension.
    supports_signatures: bool,
}

/// Docker Hub's images are named `docker.io/…`, but its API is not served there:
/// containers/image sends `docker.io` requests to `registry-1.docker.io` (auth.json
/// keys and messages keep `docker.io`). Every other host is its own endpoint.
pub fn api_endpoint(host: &str) -> &str {
    match host {
        "docker.io" => "registry-1.docker.io",
        other => other,
    }
}

impl Registry {
    /// A client for `host` (`host[:port]`).
    pub fn new(host: &str, options: Options) -> Result<Registry, RemoteError> {
        let settings = shared::ClientKey {
            tls_verify: options.tls_verify,
            cert_dirs: options.cert_dirs.clone(),
            read_timeout: options.read_timeout,
        };
        let http = shared::client(settings, || {
            let mut builder = reqwest::Client::builder()
                .danger_accept_invalid_certs(!options.tls_verify)
                // Certificates are not checked: loading the system's authorities
                // would only cost time.
                .tls_built_in_root_certs(options.tls_verify)
                .connect_timeout(Duration::from_secs(30))
                .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")));
            if let Some(t) = options.read_timeout {
                builder = builder.read_timeout(t);
            }
            // A certificate folder's authorities and client certificate, verified as Go
            // verifies them (tls.rs); unchecked certificates need none of it.
            if options.tls_verify {
                if let Some(config) = crate::tls::config_for(&options.cert_dirs)? {
                    builder = builder.use_preconfigured_tls(config);
                }
            } else if let Some(pem) = crate::tls::identity_pem(&options.cert_dirs)? {
                // Not verifying the server, still showing who we are.
                let id = reqwest::Identity::from_pem(&pem)
                    .map_err(|e| RemoteError::Invalid(format!("the client certificate: {e}")))?;
                builder = builder.identity(id);
            }
            builder
                .build()
                .map_err(|e| RemoteError::Invalid(format!("HTTP client: {e}")))
        })?;
        Ok(Registry {
            host: host.to_string(),
            endpoint: api_endpoint(host).to_string(),
            http,
            options,
            state: Mutex::new(State::default()),
            pinging: tokio::sync::Mutex::new(()),
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// Where requests go (`registry-1.docker.io` for `docker.io`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Whether the registry keeps simple signatures itself (the ping's
    /// `X-Registry-Supports-Signatures: 1`), pinging it if that is not known yet.
    pub async fn supports_signatures(&self) -> Result<bool, RemoteError> {
        self.ping().await?;
        Ok(self.state().supports_signatures)
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Finds the scheme and the login scheme with `GET /v2/` (without credentials).
    async fn ping(&self) -> Result<(String, Option<Challenge>), RemoteError> {
        let known = || {
            let st = self.state();
            match (&st.base, &st.challenge) {
                (Some(base), Some(ch)) => Some((base.clone(), ch.clone())),
                _ => None,
            }
        };
        if let Some(k) = known() {
            return Ok(k);
        }
        let _one_at_a_time = self.pinging.lock().await;
        if let Some(k) = known() {
            return Ok(k);
        }
        let key = shared::PingKey {
            endpoint: self.endpoint.clone(),
            tls_verify: self.options.tls_verify,
            plain_http: self.options.plain_http,
        };
        if let Some(p) = shared::known_ping(&key) {
            let mut st = self.state();
            st.supports_signatures = p.supports_signatures;
            st.base = Some(p.base.clone());
            st.challenge = Some(p.challenge.clone());
            return Ok((p.base, p.challenge));
        }
        let mut schemes = vec!["https"];
        if self.options.plain_http {
            schemes = vec!["http"];
        } else if !self.options.tls_verify {
            // An endpoint that answered over plain HTTP before is asked that way
            // first; https is still tried should that fail.
            if shared::known_plain_http(&self.endpoint) {
                schemes.insert(0, "http");
            } else {
                schemes.push("http");
            }
        }
        let mut last = None;
        // The first contact is retried as every request is (podman retries it too):
        // while each scheme's answer was a refused connection or a timeout.
        for attempt in 0..=self.options.retries {
            let mut unreachable = true;
            for &scheme in &schemes {
                let base = format!("{scheme}://{}", self.endpoint);
                let url = format!("{base}/v2/");
                match self.http.get(&url).send().await {
                    Ok(r) => {
                        let challenge = match r.status() {
                            StatusCode::UNAUTHORIZED => header(r.headers(), WWW_AUTHENTICATE)
                                .and_then(|h| challenge::parse(&h)),
                            s if s.is_success() => None,
                            s => {
                                return Err(RemoteError::Status {
                                    url,
                                    status: s.as_u16(),
                                    detail: Some("the registry's /v2/ check failed".into()),
                                })
                            }
                        };
                        let signatures = r
                            .headers()
                            .get("x-registry-supports-signatures")
                            .is_some_and(|v| v.as_bytes() == b"1");
                        if scheme == "http" {
                            shared::remember_plain_http(&self.endpoint);
                        }
                        shared::remember_ping(
                            key,
                            shared::Ping {
                                base: base.clone(),
                                challenge: challenge.clone(),
                                supports_signatures: signatures,
                            },
                        );
                        let mut st = self.state();
                        st.supports_signatures = signatures;
                        st.base = Some(base.clone());
                        st.challenge = Some(challenge.clone());
                        return Ok((base, challenge));
                    }
                    Err(e) if scheme == "https" && answered_without_tls(&e) => {
                        unreachable = false;
                        last = Some(RemoteError::PlainHttp { url })
                    }
                    Err(e) => {
                        unreachable &= crate::error::refused_or_timed_out(&e);
                        last = Some(match certificate_problem(&e, &self.host) {
                            Some(problem) => RemoteError::Certificate { url, problem },
                            None => RemoteError::transport(url, e),
                        })
                    }
                }
            }
            if !unreachable || attempt == self.options.retries {
                break;
            }
            let backoff = self.options.retry_delay * 2u32.saturating_pow(attempt);
            tracing::debug!(host = %self.host, attempt, ?backoff, "retrying the first contact");
            tokio::time::sleep(backoff).await;
        }
        Err(last
            .unwrap_or_else(|| RemoteError::Invalid(format!("{}: no scheme to try", self.host))))
    }

    /// Checks the credentials as `login` does: `GET /v2/` must answer 200 with them.
    pub async fn check_login(&self) -> Result<(), RemoteError> {
        let r = self.send(Method::GET, "/v2/", None, None).await?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(status_error(r, &self.host).await)
        }
    }

    /// The `Authorization` value for a request needing `scope`, if any.
    async fn authorization(
        &self,
        challenge: &Option<Challenge>,
        scope: Option<&str>,
    ) -> Result<Option<String>, RemoteError> {
        match (challenge, &self.options.credentials) {
            (None, _) => Ok(None),
            (Some(_), Some(Credentials::Token(t))) => Ok(Some(format!("Bearer {t}"))),
            (Some(Challenge::Basic), Some(Credentials::Basic { username, password })) => {
                use base64::Engine;
                let b = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{password}"));
                Ok(Some(format!("Basic {b}")))
            }
            (Some(Challenge::Basic), _) => Ok(None),
            (Some(Challenge::Bearer { realm, service, .. }), _) => {
                let key = scope.unwrap_or("").to_string();
                if let Some((t, exp)) = self.state().tokens.get(&key) {
                    if *exp > Instant::now() {
                        return Ok(Some(format!("Bearer {t}")));
                    }
                }
                let (token, lifetime) = self.fetch_token(realm, service.as_deref(), scope).await?;
                self.state()
                    .tokens
                    .insert(key, (token.clone(), Instant::now() + lifetime));
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// Asks the realm for a token, as containers/image does: `GET` with Basic
    /// credentials (or none), or an OAuth2 `POST` with a refresh token.
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: Option<&str>,
    ) -> Result<(String, Duration), RemoteError> {
        // A registry reached over TLS whose realm is plain HTTP would have the password
        // sent in the clear.
        let scheme = |url: &str| url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        let over_tls = self.state().base.as_deref().and_then(scheme).as_deref() == Some("https");
        if over_tls
            && scheme(realm).as_deref() == Some("http")
            && self.options.credentials.is_some()
        {
            return Err(RemoteError::Invalid(format!(
                "{}: its token realm {realm} is plain HTTP; credentials are not sent over it",
                self.host
            )));
        }
        // The serializer is not `Send`: it is dropped before the first await, so that
        // a request can run in a spawned task.
        let rb = {
            let mut query = form_urlencoded::Serializer::new(String::new());
            if let Some(s) = service {
                query.append_pair("service", s);
            }
            if let Some(s) = scope {
                query.append_pair("scope", s);
            }
            match &self.options.credentials {
                Some(Credentials::IdentityToken { token, .. }) => {
                    query.append_pair("grant_type", "refresh_token");
                    query.append_pair("refresh_token", token);
                    query.append_pair("client_id", "berth");
                    self.http
                        .post(realm)
                        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                        .body(query.finish())
                }
                Some(Credentials::Basic { username, password }) => {
                    query.append_pair("account", username);
                    self.http
                        .get(format!("{realm}?{}", query.finish()))
                        .basic_auth(username, Some(password))
                }
                _ => self.http.get(format!("{realm}?{}", query.finish())),
            }
        };
        let r = rb
            .send()
            .await
            .map_err(|e| RemoteError::transport(realm.to_string(), e))?;
        if r.status() == StatusCode::UNAUTHORIZED || r.status() == StatusCode::FORBIDDEN {
            return Err(RemoteError::Unauthorized {
                registry: self.host.clone(),
            });
        }
        if !r.status().is_success() {
            return Err(status_error(r, realm).await);
        }
        let body = read_limited(r, MAX_PAGE, realm).await?;
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| RemoteError::Invalid(format!("{realm}: token answer: {e}")))?;
        let token = v
            .get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| RemoteError::Invalid(format!("{realm}: no token in the answer")))?;
        let lifetime = v
            .get("expires_in")
            .and_then(|e| e.as_u64())
            .map(Duration::from_secs)
            .unwrap_or(MIN_TOKEN_LIFETIME)
            .clamp(MIN_TOKEN_LIFETIME, MAX_TOKEN_LIFETIME);
        // Renew a little early rather than send a token that expires on the way.
        Ok((token.to_string(), lifetime - Duration::from_secs(10)))
    }

    /// Sends a request to `path` (a path on this registry, or an absolute URL from a
    /// `Link`), with the authorization `scope` needs and retries for repeatable methods.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        scope: Option<&str>,
        accept: Option<&str>,
    ) -> Result<Response, RemoteError> {
        self.send_with(method, path, scope, accept, Body::None)
            .await
    }

    /// [`Registry::send`] with a body: bytes (sent again on a retry) or a stream (sent
    /// once: a stream cannot be replayed, so such a request is never retried).
    pub(crate) async fn send_with(
        &self,
        method: Method,
        path: &str,
        scope: Option<&str>,
        accept: Option<&str>,
        body: Body,
    ) -> Result<Response, RemoteError> {
        let (base, challenge) = self.ping().await?;
        let url = if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{base}{path}")
        };
        // A `Link` or `Location` may name any URL: the registry's credentials go to the
        // registry alone (reqwest drops them likewise on a redirect to another host).
        let credentialed = same_origin(&url, &base);
        let repeatable = !matches!(body, Body::Stream(_))
            && matches!(
                method,
                Method::GET | Method::HEAD | Method::DELETE | Method::PUT
            );
        let mut body = body;
        let mut scope = scope.map(str::to_string);
        let mut widened = false;
        let mut attempt = 0;
        loop {
            let mut rb = self.http.request(method.clone(), &url);
            if let Some(a) = accept {
                rb = rb.header(ACCEPT, a);
            }
            if credentialed {
                if let Some(auth) = self.authorization(&challenge, scope.as_deref()).await? {
                    rb = rb.header(AUTHORIZATION, auth);
                }
            }
            rb = match &mut body {
                Body::None => rb,
                Body::Bytes(bytes, content_type) => rb
                    .header(CONTENT_TYPE, content_type.as_str())
                    .body(bytes.clone()),
                Body::Stream(stream) => match stream.take() {
                    Some(s) => rb.header(CONTENT_TYPE, "application/octet-stream").body(s),
                    None => {
                        return Err(RemoteError::Invalid(format!(
                            "{url}: a streamed body cannot be sent twice"
                        )))
                    }
                },
            };
            let backoff = self.options.retry_delay * 2u32.saturating_pow(attempt);
            let may_retry = repeatable && attempt < self.options.retries;
            let delay = match rb.send().await {
                Ok(r) if r.status() == StatusCode::UNAUTHORIZED && !widened => {
                    // A token without the scope this request needs: ask once more.
                    match insufficient_scope(r.headers()) {
                        Some(s) => {
                            widened = true;
                            scope = Some(s);
                            continue;
                        }
                        None => return Ok(r),
                    }
                }
                Ok(r) if is_transient(r.status()) && may_retry => header(r.headers(), RETRY_AFTER)
                    .and_then(|s| s.parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER))
                    .unwrap_or(backoff),
                Ok(r) => return Ok(r),
                Err(e) if (e.is_connect() || e.is_timeout()) && may_retry => backoff,
                Err(e) => return Err(RemoteError::transport(url, e)),
            };
            tracing::debug!(%url, attempt, ?delay, "retrying");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// The manifest `reference` (tag or digest) of `repo`, verified when fetched by
    /// digest.
    pub async fn manifest(&self, repo: &str, reference: &str) -> Result<RawManifest, RemoteError> {
        let what = join(&format!("{}/{repo}", self.host), reference);
        let path = format!("/v2/{repo}/manifests/{reference}");
        let r = self
            .send(
                Method::GET,
                &path,
                Some(&pull_scope(repo)),
                Some(MANIFEST_ACCEPT),
            )
            .await?;
        let r = check(r, &what).await?;
        let media_type = header(r.headers(), CONTENT_TYPE);
        let bytes = read_limited(r, MAX_MANIFEST, &what).await?;
        let digest = match reference.parse::<Digest>() {
            Ok(expected) => {
                let actual = Digest::of(expected.algorithm(), &bytes);
                if actual != expected {
                    return Err(RemoteError::Digest {
                        what,
                        expected,
                        actual,
                    });
                }
                expected
            }
            Err(_) => Digest::sha256_of(&bytes),
        };
        Ok(RawManifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// The digest of manifest `reference` of `repo` (`HEAD`), or `None` when there is
    /// none. Falls back to a `GET` when the registry sends no `Docker-Content-Digest`.
    pub async fn manifest_digest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<Digest>, RemoteError> {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let r = self
            .send(
                Method::HEAD,
                &path,
                Some(&pull_scope(repo)),
                Some(MANIFEST_ACCEPT),
            )
            .await?;
        if r.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let what = join(&format!("{}/{repo}", self.host), reference);
        let r = check(r, &what).await?;
        match r
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok())
        {
            Some(d) => Ok(Some(d)),
            None => Ok(Some(self.manifest(repo, reference).await?.digest)),
        }
    }

    /// A small blob (a config) of `repo`, whole, verified against `digest`.
    pub async fn blob_bytes(
        &self,
        repo: &str,
        digest: &Digest,
        limit: usize,
    ) -> Result<Vec<u8>, RemoteError> {
        let what = format!("blob {digest} of {}/{repo}", self.host);
        let path = format!("/v2/{repo}/blobs/{digest}");
        let r = self
            .send(Method::GET, &path, Some(&pull_scope(repo)), None)
            .await?;
        let r = check(r, &what).await?;
        let bytes = read_limited(r, limit, &what).await?;
        let actual = Digest::of(digest.algorithm(), &bytes);
        if &actual != digest {
            return Err(RemoteError::Digest {
                what,
                expected: digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Every tag of `repo`, following `Link` pages.
    pub async fn tags(&self, repo: &str) -> Result<Vec<String>, RemoteError> {
        let what = format!("{}/{repo}", self.host);
        let mut pages = Pages::new(&what);
        let mut next = Some(format!("/v2/{repo}/tags/list"));
        let mut tags = Vec::new();
        while let Some(path) = next.take() {
            let r = self
                .send(Method::GET, &path, Some(&pull_scope(repo)), None)
                .await?;
            let r = check(r, &what).await?;
            next = pages.next(r.headers())?;
            let body = read_limited(r, MAX_PAGE, &what).await?;
            let v: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|e| RemoteError::Invalid(format!("{what}: tag list: {e}")))?;
            if let Some(list) = v.get("tags").and_then(|t| t.as_array()) {
                for t in list.iter().filter_map(|t| t.as_str()) {
                    // A tag is a file name to `sync` and a word on a terminal: one
                    // that is not a tag (`../x`, escapes) is the registry's fault.
                    match t.parse::<berth_image::Tag>() {
                        Ok(_) => tags.push(t.to_string()),
                        Err(_) => tracing::warn!(registry = %what, tag = ?t,
                            "skipping a listed tag that is not a valid tag"),
                    }
                }
            }
            pages.count(tags.len())?;
        }
        Ok(tags)
    }

    /// Deletes tag `tag` of `repo` alone, where the registry allows it (OCI
    /// Distribution 1.1). `false` when it does not (docker-registry answers 400 or
    /// 405): the caller may delete the manifest instead.
    pub async fn delete_tag(&self, repo: &str, tag: &str) -> Result<bool, RemoteError> {
        let what = format!("{}/{repo}:{tag}", self.host);
        let path = format!("/v2/{repo}/manifests/{tag}");
        let scope = format!("repository:{repo}:delete");
        let r = self.send(Method::DELETE, &path, Some(&scope), None).await?;
        match r.status() {
            s if s.is_success() => Ok(true),
            StatusCode::BAD_REQUEST
            | StatusCode::METHOD_NOT_ALLOWED
            | StatusCode::NOT_IMPLEMENTED => Ok(false),
            _ => Err(status_error(r, &what).await),
        }
    }

    /// Deletes manifest `digest` of `repo` (and so every tag pointing at it).
    pub async fn delete_manifest(&self, repo: &str, digest: &Digest) -> Result<(), RemoteError> {
        let what = format!("{}/{repo}@{digest}", self.host);
        let path = format!("/v2/{repo}/manifests/{digest}");
        let scope = format!("repository:{repo}:delete");
        let r = self.send(Method::DELETE, &path, Some(&scope), None).await?;
        check(r, &what).await?;
        Ok(())
    }
}

/// What a request carries.
pub(crate) enum Body {
    None,
    /// Bytes and their content type (a manifest).
    Bytes(Vec<u8>, String),
    /// A blob's bytes as they arrive from elsewhere.
    Stream(Option<reqwest::Body>),
}

/// `429` and `5xx`: worth another try.
fn is_transient(s: StatusCode) -> bool {
    s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error()
}

/// The scope a `401 … error="insufficient_scope"` names.
fn insufficient_scope(h: &HeaderMap) -> Option<String> {
    match header(h, WWW_AUTHENTICATE).and_then(|v| challenge::parse(&v))? {
        Challenge::Bearer {
            scope: Some(s),
            error: Some(e),
            ..
        } if e == "insufficient_scope" => Some(s),
        _ => None,
    }
}

pub(crate) fn pull_scope(repo: &str) -> String {
    format!("repository:{repo}:pull")
}

pub(crate) fn header(h: &HeaderMap, name: reqwest::header::HeaderName) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Whether `url` has the scheme, host and port of `base`.
fn same_origin(url: &str, base: &str) -> bool {
    match (reqwest::Url::parse(url), reqwest::Url::parse(base)) {
        (Ok(u), Ok(b)) => u.origin() == b.origin(),
        _ => false,
    }
}

/// `<url>; rel="next"` -> url.
pub(crate) fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params.contains("rel=\"next\"").then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

/// The pages of a listing that `Link: rel="next"` leads through: each URL once, at
/// most [`MAX_PAGES`] of them and [`MAX_ENTRIES`] entries in all, so that a registry
/// whose `Link`s lead back or never end is an error, not a loop.
pub(crate) struct Pages<'w> {
    what: &'w str,
    seen: std::collections::HashSet<String>,
}

impl<'w> Pages<'w> {
    pub(crate) fn new(what: &'w str) -> Pages<'w> {
        Pages {
            what,
            seen: Default::default(),
        }
    }

    /// The next page's URL from a page's headers; `None` after the last page.
    pub(crate) fn next(&mut self, headers: &HeaderMap) -> Result<Option<String>, RemoteError> {
        let Some(url) = header(headers, LINK).and_then(|l| next_link(&l)) else {
            return Ok(None);
        };
        if self.seen.len() + 1 >= MAX_PAGES {
            return Err(RemoteError::Invalid(format!(
                "{}: more than {MAX_PAGES} pages",
                self.what
            )));
        }
        if !self.seen.insert(url.clone()) {
            return Err(RemoteError::Invalid(format!(
                "{}: the next page {url} was read before",
                self.what
            )));
        }
        Ok(Some(url))
    }

    /// An error once `entries` have been gathered past [`MAX_ENTRIES`].
    pub(crate) fn count(&self, entries: usize) -> Result<(), RemoteError> {
        if entries > MAX_ENTRIES {
            return Err(RemoteError::TooLarge {
                what: self.what.to_string(),
                limit: MAX_ENTRIES,
            });
        }
        Ok(())
    }
}

/// Passes a success through; turns anything else into the error it means.
pub(crate) async fn check(r: Response, what: &str) -> Result<Response, RemoteError> {
    if r.status().is_success() {
        Ok(r)
    } else {
        Err(status_error(r, what).await)
    }
}

pub(crate) async fn status_error(r: Response, what: &str) -> RemoteError {
    let status = r.status();
    let url = r.url().to_string();
    let body = read_prefix(r, MAX_ERROR_BODY).await;
    let detail = registry_detail(&body);
    match status {
        StatusCode::NOT_FOUND => RemoteError::NotFound {
            what: what.to_string(),
        },
        StatusCode::UNAUTHORIZED => RemoteError::Unauthorized {
            registry: what.to_string(),
        },
        StatusCode::FORBIDDEN => RemoteError::Denied {
            what: what.to_string(),
            reason: registry_detail_text(&body),
        },
        s => RemoteError::Status {
            url,
            status: s.as_u16(),
            detail,
        },
    }
}

/// The first `limit` bytes of a body, or what came before it failed: enough to
/// report an error, and no more of a body that never ends.
async fn read_prefix(mut r: Response, limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while let Ok(Some(chunk)) = r.chunk().await {
        let room = limit - out.len();
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() == limit {
            break;
        }
    }
    out
}

pub(crate) async fn read_limited(
    mut r: Response,
    limit: usize,
    what: &str,
) -> Result<Vec<u8>, RemoteError> {
    let mut out = Vec::new();
    while let Some(chunk) = r
        .chunk()
        .await
        .map_err(|e| RemoteError::transport(what.to_string(), e))?
    {
        if out.len() + chunk.len() > limit {
            return Err(RemoteError::TooLarge {
                what: what.to_string(),
                limit,
            });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers() {
        assert_eq!(
            next_link("</v2/a/tags/list?n=2&last=b>; rel=\"next\"").as_deref(),
            Some("/v2/a/tags/list?n=2&last=b")
        );
        assert_eq!(next_link("</x>; rel=\"prev\""), None);
    }

    /// Every cause of an error once, as anyhow's `{:#}` prints it.
    fn rendered(e: &(dyn std::error::Error + 'static)) -> String {
        let mut parts = vec![e.to_string()];
        let mut cause = e.source();
        while let Some(c) = cause {
            parts.push(c.to_string());
            cause = c.source();
        }
        parts.join(": ")
    }

    /// A refused connection names the URL once and reqwest's words once (it said
    /// `URL: error sending request for url (URL): error sending request for url (URL)`).
    #[tokio::test]
    async fn transport_errors_say_each_cause_once() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let host = format!("127.0.0.1:{port}");
        let reg = Registry::new(&host, Options::default()).unwrap();
        let e = reg.manifest("a/b", "v1").await.unwrap_err();
        let text = rendered(&e);
        assert_eq!(text.matches(&host).count(), 1, "{text}");
        assert_eq!(text.matches("error sending request").count(), 1, "{text}");
        assert!(text.contains("refused"), "{text}");
    }

    /// Docker Hub's API is at registry-1.docker.io, as podman and skopeo send it; the
    /// registry keeps its name (credentials, messages, mounts).
    #[test]
    fn docker_hub_endpoint() {
        let hub = Registry::new("docker.io", Options::default()).unwrap();
        assert_eq!(hub.endpoint(), "registry-1.docker.io");
        assert_eq!(hub.host(), "docker.io");
        for other in [
            "quay.io",
            "127.0.0.1:5000",
            "registry-1.docker.io",
            "docker.io:443",
        ] {
            assert_eq!(
                Registry::new(other, Options::default()).unwrap().endpoint(),
                other
            );
        }
    }
}
