//! The catalog over HTTP, a thin layer over `berth_catalog`:
//! - `GET /api/v1/catalog/search?q=&label=KEY=VALUE&os=&arch=&package=&cve=&grade=&signed=yes|no&page=&per_page=`
//!   for anyone, answering only repositories the caller may pull (the same rule as
//!   `/v2/_catalog`), with facet counts over those (`facets`: os, arch, grade,
//!   signed);
//! - `POST /api/v1/catalog/scan` (superusers; body `{"all": bool, "repo": NAME,
//!   "tag": TAG}`): rescan failed manifests, everything, or one repository / tag;
//! - `GET /api/v1/catalog/status` (superusers): what the catalog did since start-up;
//! - `POST /api/v1/vulndb/import` (superusers): an OSV `all.zip` or JSON file as the
//!   body, streamed to a temporary file (bounded), imported, every inventory
//!   rematched.

mod allowlist;
pub(crate) mod repositories;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use berth_auth::Principal;
use berth_catalog::search::{SearchQuery, MAX_PER_PAGE};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::metrics::RouteLabel;
use crate::routes::query_pairs;
use crate::{access, Registry};

/// Largest vulnerability data upload (the biggest OSV all.zip, Debian's, is ~100 MiB).
pub(crate) const MAX_VULNDB_BYTES: u64 = 1024 * 1024 * 1024;

fn error(status: StatusCode, message: impl ToString) -> Response {
    (status, axum::Json(json!({ "error": message.to_string() }))).into_response()
}

fn internal(e: impl ToString) -> Response {
    error(StatusCode::INTERNAL_SERVER_ERROR, e)
}

fn catalog_off() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "the catalog is turned off on this registry",
    )
}

/// `GET /api/v1/catalog/search`.
pub(crate) async fn search(State(reg): State<Arc<Registry>>, req: Request) -> Response {
    let mut resp = answer_search(reg, req)
        .await
        .unwrap_or_else(IntoResponse::into_response);
    resp.extensions_mut().insert(RouteLabel("catalog"));
    resp
}

/// Reads the search parameters; a bad number or `signed` value is a 400.
/// Label filters in one search at most: each is a subquery with two parameters.
const MAX_LABELS: usize = 16;
/// The highest page asked for: past it, `(page - 1) * per_page` could overflow.
const MAX_PAGE: usize = 1_000_000;

pub(crate) fn search_query(query: Option<&str>) -> Result<SearchQuery, String> {
    let mut q = SearchQuery {
        page: 1,
        per_page: 25,
        ..Default::default()
    };
    let number = |k: &str, v: &str| -> Result<usize, String> {
        v.parse::<usize>()
            .map_err(|_| format!("{k}={v}: a positive number"))
    };
    for (k, v) in query_pairs(query) {
        match k.as_str() {
            "q" => q.q = v,
            "label" => {
                let (key, value) = v
                    .split_once('=')
                    .ok_or_else(|| format!("label={v}: KEY=VALUE"))?;
                if q.labels.len() == MAX_LABELS {
                    return Err(format!("at most {MAX_LABELS} label filters"));
                }
                q.labels.push((key.to_string(), value.to_string()));
            }
            "os" => q.os = Some(v),
            "arch" => q.arch = Some(v),
            "package" => q.package = Some(v),
            "cve" => q.cve = Some(v),
            "grade" => q.grade = Some(v),
            "signed" => {
                q.signed = Some(match v.as_str() {
                    "yes" => true,
                    "no" => false,
                    _ => return Err(format!("signed={v}: yes or no")),
                })
            }
            "page" => q.page = number(&k, &v)?.clamp(1, MAX_PAGE),
            "per_page" => q.per_page = number(&k, &v)?.clamp(1, MAX_PER_PAGE),
            _ => {}
        }
    }
    Ok(q)
}

async fn answer_search(reg: Arc<Registry>, req: Request) -> crate::error::ApiResult {
    // Errors in the /v2/ body, as the rest of the catalog API answers them.
    let caller = access::identify(&reg, req.headers(), req.extensions()).await?;
    let query = search_query(req.uri().query()).map_err(repositories::bad_request)?;
    let catalog = repositories::catalog(&reg)?;
    let page = tokio::task::spawn_blocking(move || {
        catalog.search(&query, &|name| caller.level(name).is_some())
    })
    .await?
    .map_err(repositories::catalog_error)?;
    Ok((StatusCode::OK, axum::Json(page)).into_response())
}

/// Superusers only (Basic credentials were checked by the admin API): the refusal.
fn refuse_unless_superuser(reg: &Registry, who: &Principal, what: &str) -> Option<Response> {
    match reg.auth.directory() {
        Err(e) if e.is_unreachable() => Some(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the registry's metadata database is unreachable; retry in a moment",
        )),
        Err(e) => Some(internal(e)),
        Ok((dir, _)) if !dir.is_superuser(who) => Some(error(
            StatusCode::FORBIDDEN,
            format!("{who} may not {what} (superusers only)"),
        )),
        Ok(_) => None,
    }
}

/// `POST /api/v1/catalog/scan` and `GET /api/v1/catalog/status`.
pub(crate) async fn admin(
    reg: &Arc<Registry>,
    who: &Principal,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<Response, Response> {
    if let Some(refused) = refuse_unless_superuser(reg, who, "administer the catalog") {
        return Err(refused);
    }
    let catalog = reg.catalog.clone().ok_or_else(catalog_off)?;
    match (method, path) {
        ("GET", "catalog/status") => {
            use std::sync::atomic::Ordering::Relaxed;
            let s = &catalog.stats;
            let imports = tokio::task::spawn_blocking({
                let c = catalog.clone();
                move || c.vuln_imports()
            })
            .await
            .map_err(internal)?
            .map_err(internal)?;
            Ok(axum::Json(json!({
                "layers_analyzed": s.layers_analyzed.load(Relaxed),
                "images_scanned": s.images_scanned.load(Relaxed),
                "scans_failed": s.scans_failed.load(Relaxed),
                "queue_dropped": s.queue_dropped.load(Relaxed),
                "rematched": s.rematched.load(Relaxed),
                "vulndb_imports": imports,
            }))
            .into_response())
        }
        ("POST", "catalog/scan") => {
            let req: Value = if body.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(body).map_err(|e| error(StatusCode::BAD_REQUEST, e))?
            };
            let all = req.get("all").and_then(Value::as_bool).unwrap_or(false);
            let repo = req.get("repo").and_then(Value::as_str).map(String::from);
            let tag = req.get("tag").and_then(Value::as_str).map(String::from);
            if let Some(r) = &repo {
                r.parse::<berth_image::RepositoryName>()
                    .map_err(|e| error(StatusCode::BAD_REQUEST, format!("repo {r:?}: {e}")))?;
            }
            let meta = reg.meta.clone();
            let report = tokio::task::spawn_blocking(move || {
                berth_catalog::scan_request(
                    &catalog,
                    meta.as_ref(),
                    all,
                    repo.as_deref(),
                    tag.as_deref(),
                )
            })
            .await
            .map_err(internal)?
            .map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
            Ok(axum::Json(report).into_response())
        }
        (_, "catalog/status" | "catalog/scan") => Err(error(
            StatusCode::METHOD_NOT_ALLOWED,
            "status takes GET, scan takes POST",
        )),
        _ => Err(error(StatusCode::NOT_FOUND, "no such catalog call")),
    }
}

/// `POST /api/v1/vulndb/import`: the body (an OSV all.zip or a JSON file, told apart
/// by its first bytes) goes to a temporary file in the data folder, at most
/// [`MAX_VULNDB_BYTES`], then is imported and every stored inventory rematched.
pub(crate) async fn import_vulns(
    reg: &Arc<Registry>,
    who: &Principal,
    method: &str,
    body: axum::body::Body,
) -> Result<Response, Response> {
    if method != "POST" {
        return Err(error(
            StatusCode::METHOD_NOT_ALLOWED,
            "vulndb/import takes POST",
        ));
    }
    if let Some(refused) = refuse_unless_superuser(reg, who, "import vulnerability data") {
        return Err(refused);
    }
    let catalog = reg.catalog.clone().ok_or_else(catalog_off)?;
    let dir = reg.config.root.join("catalog-tmp");
    std::fs::create_dir_all(&dir).map_err(internal)?;
    let mut stream = Body::new(body).into_data_stream();
    let mut first: Option<bytes::Bytes> = None;
    let staging = dir.join(format!("{}.part", uuid::Uuid::new_v4()));
    let mut file = tokio::fs::File::create(&staging).await.map_err(internal)?;
    let cleanup = Staged(staging.clone());
    let mut total: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| error(StatusCode::BAD_REQUEST, format!("reading the body: {e}")))?;
        total += chunk.len() as u64;
        if total > MAX_VULNDB_BYTES {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("vulnerability data is limited to {MAX_VULNDB_BYTES} bytes per upload"),
            ));
        }
        if first.is_none() {
            first = Some(chunk.clone());
        }
        file.write_all(&chunk).await.map_err(internal)?;
    }
    file.flush().await.map_err(internal)?;
    drop(file);
    let is_zip = first
        .as_deref()
        .is_some_and(|b| b.starts_with(b"PK\x03\x04"));
    let named = staging.with_extension(if is_zip { "zip" } else { "json" });
    std::fs::rename(&staging, &named).map_err(internal)?;
    let cleanup_named = Staged(named.clone());
    drop(cleanup);
    let (reports, rematch) =
        tokio::task::spawn_blocking(move || catalog.import_vulns(&[named.as_path()]))
            .await
            .map_err(internal)?
            .map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
    drop(cleanup_named);
    Ok(axum::Json(json!({ "imports": reports, "rematch": rematch })).into_response())
}

/// Removes a temporary file when dropped (every way out of the import).
struct Staged(std::path::PathBuf);

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_parameters_take_signed_yes_or_no_only() {
        let q = search_query(Some("q=web&signed=yes&os=linux")).unwrap();
        assert_eq!((q.signed, q.os.as_deref()), (Some(true), Some("linux")));
        assert_eq!(search_query(Some("signed=no")).unwrap().signed, Some(false));
        assert_eq!(search_query(Some("q=x")).unwrap().signed, None);
        for bad in ["signed=true", "signed=", "signed=YES"] {
            let e = search_query(Some(bad)).unwrap_err();
            assert!(e.contains("yes or no"), "{bad}: {e}");
        }
    }

    /// Bounded: a page number whose offset overflowed (a panic in a debug build), and
    /// any number of label filters (a statement past SQLite's variable limit, a 500).
    #[test]
    fn search_parameters_are_bounded() {
        let q = search_query(Some(&format!("page={}&per_page=100", usize::MAX))).unwrap();
        assert!(q
            .page
            .checked_sub(1)
            .and_then(|p| p.checked_mul(q.per_page))
            .is_some());
        let labels = |n: usize| {
            (0..n)
                .map(|i| format!("label=k{i}=v"))
                .collect::<Vec<_>>()
                .join("&")
        };
        assert_eq!(
            search_query(Some(&labels(MAX_LABELS)))
                .unwrap()
                .labels
                .len(),
            MAX_LABELS
        );
        let e = search_query(Some(&labels(MAX_LABELS + 1))).unwrap_err();
        assert!(e.contains("at most 16 label filters"), "{e}");
    }
}
