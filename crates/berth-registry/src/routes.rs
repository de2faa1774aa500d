//! Turns a `/v2/<name>/…` path into an endpoint. Repository names contain slashes, so
//! the endpoint is found from the right: the last `/manifests/`, `/blobs/`,
//! `/blobs/uploads/`, `/referrers/` or `/tags/list` decides, and what stands before it
//! must be a valid name.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_auth::{Action, Level, Principal};
use berth_image::{Digest, RepositoryName};

use crate::access::{self, Caller};
use crate::error::{ApiError, ApiResult, Code};
use crate::metrics::RouteLabel;
use crate::{blobs, listing, manifests, uploads, Registry};

/// The API version header every `/v2/` answer carries.
pub const API_VERSION: (&str, &str) = ("docker-distribution-api-version", "registry/2.0");

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Endpoint<'a> {
    Manifest(&'a str, &'a str),
    Blob(&'a str, &'a str),
    /// Upload session id; empty for `POST …/blobs/uploads/`.
    Upload(&'a str, &'a str),
    Tags(&'a str),
    Referrers(&'a str, &'a str),
}

impl<'a> Endpoint<'a> {
    pub(crate) fn parse(rest: &'a str) -> Option<Endpoint<'a>> {
        let leaf = |s: &str| !s.contains('/');
        if let Some(name) = rest.strip_suffix("/tags/list") {
            return Some(Endpoint::Tags(name));
        }
        if let Some(name) = rest
            .strip_suffix("/blobs/uploads")
            .or(rest.strip_suffix("/blobs/uploads/"))
        {
            return Some(Endpoint::Upload(name, ""));
        }
        if let Some((name, id)) = rest
            .rsplit_once("/blobs/uploads/")
            .filter(|(_, id)| leaf(id))
        {
            return Some(Endpoint::Upload(name, id));
        }
        if let Some((name, r)) = rest.rsplit_once("/manifests/").filter(|(_, r)| leaf(r)) {
            return Some(Endpoint::Manifest(name, r));
        }
        if let Some((name, d)) = rest.rsplit_once("/blobs/").filter(|(_, d)| leaf(d)) {
            return Some(Endpoint::Blob(name, d));
        }
        if let Some((name, d)) = rest.rsplit_once("/referrers/").filter(|(_, d)| leaf(d)) {
            return Some(Endpoint::Referrers(name, d));
        }
        None
    }

    /// The repository named in the path (not yet validated).
    fn repo(&self) -> &'a str {
        match self {
            Endpoint::Manifest(n, _)
            | Endpoint::Blob(n, _)
            | Endpoint::Upload(n, _)
            | Endpoint::Tags(n)
            | Endpoint::Referrers(n, _) => n,
        }
    }

    /// What the request needs on the repository.
    fn action(&self, method: &Method) -> Action {
        match (self, method.as_str()) {
            (Endpoint::Upload(..), _) | (Endpoint::Manifest(..), "PUT") => Action::Push,
            (Endpoint::Manifest(..) | Endpoint::Blob(..), "DELETE") => Action::Delete,
            _ => Action::Pull,
        }
    }

    fn label(&self, method: &Method) -> &'static str {
        match (self, method.as_str()) {
            (Endpoint::Manifest(..), "PUT") => "manifest_put",
            (Endpoint::Manifest(..), "DELETE") => "manifest_delete",
            (Endpoint::Manifest(..), _) => "manifest_get",
            (Endpoint::Blob(..), "DELETE") => "blob_delete",
            (Endpoint::Blob(..), _) => "blob_get",
            (Endpoint::Upload(..), _) => "upload",
            (Endpoint::Tags(..), _) => "tags_list",
            (Endpoint::Referrers(..), _) => "referrers",
        }
    }
}

/// Validates a repository name from a path.
pub(crate) fn repo(name: &str) -> ApiResult<RepositoryName> {
    name.parse()
        .map_err(|e: berth_image::NameError| ApiError::new(Code::NameInvalid).detail(e))
}

/// Validates a digest from a path or query.
pub(crate) fn digest(s: &str) -> ApiResult<Digest> {
    s.parse()
        .map_err(|e: berth_image::DigestError| ApiError::new(Code::DigestInvalid).detail(e))
}

/// `GET /v2/`: the API version check clients start with, and where they learn how to
/// log in (while access control applies, an anonymous caller gets the challenge) and
/// that signatures can be kept here (`X-Registry-Supports-Signatures`).
pub(crate) async fn base(State(reg): State<Arc<Registry>>, req: Request) -> Response {
    let result = match access::identify(&reg, req.headers(), req.extensions()).await {
        Ok(c) if c.enforced && c.principal == Principal::Anonymous => {
            Err(access::login_required(&reg, req.headers()))
        }
        Ok(_) => Ok((StatusCode::OK, axum::Json(serde_json::json!({}))).into_response()),
        Err(e) => Err(e),
    };
    let mut r = result.unwrap_or_else(|e| e.into_response());
    r.extensions_mut().insert(RouteLabel("base"));
    // Read from this answer (200 or 401 alike) by containers/image's ping.
    let (name, value) = crate::signatures::SUPPORTS_SIGNATURES;
    r.headers_mut()
        .insert(name, HeaderValue::from_static(value));
    r
}

pub(crate) async fn not_found() -> Response {
    ApiError::new(Code::Unsupported)
        .status(StatusCode::NOT_FOUND)
        .detail("no such endpoint")
        .into_response()
}

/// Every `/v2/<name>/…` request comes here.
pub(crate) async fn dispatch(State(reg): State<Arc<Registry>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let rest = proxied_path(&reg, &path["/v2/".len()..], req.uri().query());
    let Some(endpoint) = Endpoint::parse(&rest) else {
        return not_found().await;
    };
    let label = endpoint.label(&method);
    let (repo, action) = (endpoint.repo(), endpoint.action(&method));
    // A name is checked before it is written into a challenge's scope: a `"` in the
    // path would add parameters of the client's choosing to the header.
    let mut resp = match self::repo(repo) {
        Err(e) => e.into_response(),
        Ok(_) => {
            authorized(&reg, req, repo, action, |reg, req, caller| async move {
                route(reg, endpoint, method, req, &caller).await
            })
            .await
        }
    };
    resp.extensions_mut().insert(RouteLabel(label));
    resp
}

/// containerd names the registry a mirror stands in for with `?ns=docker.io` and the
/// repository as it is there (`library/alpine`): for a configured pull-through prefix,
/// the path is read as `docker.io/library/alpine/…`. Any other `ns` is ignored.
fn proxied_path<'p>(
    reg: &Registry,
    rest: &'p str,
    query: Option<&str>,
) -> std::borrow::Cow<'p, str> {
    if reg.proxies.is_empty() || query.is_none_or(|q| !q.contains("ns=")) {
        return rest.into();
    }
    let pairs = query_pairs(query);
    match query_get(&pairs, "ns").filter(|ns| reg.proxies.by_prefix(ns).is_some()) {
        Some(ns) if !rest.starts_with(&format!("{ns}/")) => format!("{ns}/{rest}").into(),
        _ => rest.into(),
    }
}

/// `403 DENIED` for a write to a pull-through cache's repository.
fn read_only(up: &crate::proxy::Upstream, name: &RepositoryName) -> ApiError {
    ApiError::new(Code::Denied).message(format!(
        "{name} is a pull-through cache of {}: push to the upstream",
        up.config.url
    ))
}

/// Runs `handle` when the caller may do `action` on `repo`; otherwise answers what the
/// token flow expects (a challenge, `insufficient_scope`, or `DENIED`). Every route on
/// a repository's content goes through here.
pub(crate) async fn authorized<F, Fut>(
    reg: &Arc<Registry>,
    req: Request,
    repo: &str,
    action: Action,
    handle: F,
) -> Response
where
    F: FnOnce(Arc<Registry>, Request, Caller) -> Fut,
    Fut: std::future::Future<Output = ApiResult>,
{
    let checked = match access::identify(reg, req.headers(), req.extensions()).await {
        Ok(caller) => access::require(reg, &caller, req.headers(), req.extensions(), repo, action)
            .map(|()| caller),
        Err(e) => Err(e),
    };
    let result = match checked {
        Ok(caller) => handle(reg.clone(), req, caller).await,
        Err(e) => Err(e),
    };
    result.unwrap_or_else(|e| e.into_response())
}

async fn route(
    reg: Arc<Registry>,
    ep: Endpoint<'_>,
    method: Method,
    req: Request,
    caller: &Caller,
) -> ApiResult {
    let unsupported =
        || Err(ApiError::new(Code::Unsupported).detail(format!("{method} not allowed here")));
    let admin = |name: &RepositoryName| caller.level(name.as_str()) == Some(Level::Admin);
    match ep {
        Endpoint::Manifest(name, r) => {
            let name = repo(name)?;
            if let Some((up, upstream_repo)) = reg.proxies.route(name.as_str()) {
                match method {
                    Method::GET | Method::HEAD => {
                        let with_body = method == Method::GET;
                        crate::proxy::fill_manifest(&reg, up, &name, &upstream_repo, r, with_body)
                            .await?
                    }
                    _ => return Err(read_only(up, &name)),
                }
            }
            match method {
                Method::GET => manifests::get(&reg, &name, r, true).await,
                Method::HEAD => manifests::get(&reg, &name, r, false).await,
                Method::PUT => manifests::put(&reg, &name, r, req, admin(&name)).await,
                Method::DELETE => manifests::delete(&reg, &name, r, admin(&name)).await,
                _ => unsupported(),
            }
        }
        Endpoint::Blob(name, d) => {
            let name = repo(name)?;
            if let Some((up, upstream_repo)) = reg.proxies.route(name.as_str()) {
                let with_body = match method {
                    Method::GET => true,
                    Method::HEAD => false,
                    _ => return Err(read_only(up, &name)),
                };
                let d = digest(d)?;
                let headers = req.headers();
                if let Some(answer) = crate::proxy::blob::fill(
                    &reg,
                    up,
                    &name,
                    &upstream_repo,
                    &d,
                    headers,
                    with_body,
                )
                .await?
                {
                    return Ok(answer);
                }
            }
            match method {
                Method::GET => blobs::get(&reg, &name, d, req.headers(), true).await,
                Method::HEAD => blobs::get(&reg, &name, d, req.headers(), false).await,
                Method::DELETE => blobs::delete(&reg, &name, d).await,
                _ => unsupported(),
            }
        }
        Endpoint::Upload(name, id) => {
            let name = repo(name)?;
            if let Some((up, _)) = reg.proxies.route(name.as_str()) {
                return Err(read_only(up, &name));
            }
            match (method.clone(), id.is_empty()) {
                (Method::POST, true) => uploads::start(&reg, &name, req, caller).await,
                (Method::PATCH, false) => uploads::patch(&reg, &name, id, req).await,
                (Method::PUT, false) => uploads::finish(&reg, &name, id, req).await,
                (Method::GET, false) => uploads::status(&reg, &name, id).await,
                (Method::DELETE, false) => uploads::cancel(&reg, &name, id).await,
                _ => unsupported(),
            }
        }
        Endpoint::Tags(name) => match method {
            Method::GET => listing::tags(&reg, &repo(name)?, req.uri().query()).await,
            _ => unsupported(),
        },
        Endpoint::Referrers(name, d) => match method {
            Method::GET => listing::referrers(&reg, &repo(name)?, d, req.uri().query()).await,
            _ => unsupported(),
        },
    }
}

/// Parses a query string into pairs (percent-decoded).
pub(crate) fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// First value of query parameter `key`.
pub(crate) fn query_get<'q>(pairs: &'q [(String, String)], key: &str) -> Option<&'q str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A header value from a string we built ourselves (never client bytes).
pub(crate) fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Adds `Location` with a path of ours.
pub(crate) fn location(path: String) -> (header::HeaderName, HeaderValue) {
    (header::LOCATION, hv(&path))
}

#[cfg(test)]
mod tests {
    use super::Endpoint::*;
    use super::*;

    #[test]
    fn parses_nested_names() {
        assert_eq!(
            Endpoint::parse("a/b/manifests/v1"),
            Some(Manifest("a/b", "v1"))
        );
        assert_eq!(
            Endpoint::parse("a/manifests/b/manifests/v1"),
            Some(Manifest("a/manifests/b", "v1"))
        );
        assert_eq!(
            Endpoint::parse("a/blobs/sha256:x"),
            Some(Blob("a", "sha256:x"))
        );
        assert_eq!(
            Endpoint::parse("a/b/blobs/uploads/"),
            Some(Upload("a/b", ""))
        );
        assert_eq!(
            Endpoint::parse("a/b/blobs/uploads"),
            Some(Upload("a/b", ""))
        );
        assert_eq!(
            Endpoint::parse("a/blobs/uploads/123"),
            Some(Upload("a", "123"))
        );
        assert_eq!(Endpoint::parse("a/b/c/tags/list"), Some(Tags("a/b/c")));
        assert_eq!(
            Endpoint::parse("a/referrers/sha256:x"),
            Some(Referrers("a", "sha256:x"))
        );
        assert_eq!(Endpoint::parse("a/unknown"), None);
        assert_eq!(Endpoint::parse("a/manifests/x/y"), None);
    }
}
