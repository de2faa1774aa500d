//! Listings: tags, the catalog, and referrers. All come from the metadata store's
//! indexes; none walks the file system.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_image::{media_type, Digest, RepositoryName};
use serde_json::{json, Map, Value};

use crate::access::{self, Caller};
use crate::error::{ApiError, ApiResult, Code};
use crate::metrics::RouteLabel;
use crate::routes::{digest, hv, query_get, query_pairs};
use crate::Registry;

/// Largest page served; a larger `n` is clamped (and a client follows `Link`).
pub const MAX_PAGE: usize = 10_000;

/// Reads `n` and `last`. Without `n` a listing is whole (up to [`MAX_PAGE`]).
pub(crate) fn page(query: Option<&str>) -> ApiResult<(Option<usize>, Option<String>)> {
    let q = query_pairs(query);
    let n = match query_get(&q, "n") {
        Some(v) => Some(v.parse::<usize>().map_err(|_| {
            ApiError::new(Code::PaginationNumberInvalid).detail(format!("n={v} is not a count"))
        })?),
        None => None,
    };
    Ok((n, query_get(&q, "last").map(str::to_owned)))
}

/// Fetches one more than asked to learn whether a next page exists, and answers with
/// a `Link` header when it does.
fn paginate(
    path: &str,
    n: Option<usize>,
    fetch: impl FnOnce(usize) -> ApiResult<Vec<String>>,
) -> ApiResult<(Vec<String>, Option<HeaderValue>)> {
    let limit = n.unwrap_or(MAX_PAGE).min(MAX_PAGE);
    let mut items = fetch(limit + 1)?;
    let link = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|last| {
            let last: String = form_urlencoded::byte_serialize(last.as_bytes()).collect();
            hv(&format!("<{path}?n={limit}&last={last}>; rel=\"next\""))
        })
    } else {
        None
    };
    Ok((items, link))
}

pub(crate) fn json_response(
    body: Value,
    content_type: &'static str,
    link: Option<HeaderValue>,
) -> Response {
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let mut resp = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        bytes,
    )
        .into_response();
    if let Some(link) = link {
        resp.headers_mut().insert(header::LINK, link);
    }
    resp
}

/// `GET /v2/<name>/tags/list?n=&last=`
pub(crate) async fn tags(
    reg: &Arc<Registry>,
    name: &RepositoryName,
    query: Option<&str>,
) -> ApiResult {
    let (n, last) = page(query)?;
    if !reg.meta.repository_exists(name.as_str())? {
        return Err(ApiError::new(Code::NameUnknown).detail(name));
    }
    let (tags, link) = paginate(&format!("/v2/{name}/tags/list"), n, |limit| {
        Ok(reg.meta.tags(name.as_str(), last.as_deref(), limit)?)
    })?;
    Ok(json_response(
        json!({ "name": name.as_str(), "tags": tags }),
        "application/json",
        link,
    ))
}

/// `GET /v2/_catalog?n=&last=`: the repositories the caller may read.
pub(crate) async fn catalog(State(reg): State<Arc<Registry>>, req: Request) -> Response {
    let mut resp = catalog_page(reg, req)
        .await
        .unwrap_or_else(|e| e.into_response());
    resp.extensions_mut().insert(RouteLabel("catalog"));
    resp
}

async fn catalog_page(reg: Arc<Registry>, req: Request) -> ApiResult {
    let caller = access::identify(&reg, req.headers(), req.extensions()).await?;
    let (n, last) = page(req.uri().query())?;
    let r = reg.clone();
    let (repos, link) = reg
        .blocking(move |_| {
            let mut resume = None;
            let (repos, link) = paginate("/v2/_catalog", n, |limit| {
                let listed = readable_where(&r, &caller, last.as_deref(), limit, |_| true)?;
                resume = listed.resume;
                Ok(listed.names)
            })?;
            // A scan that stopped at its bound: the next page goes on from there,
            // however few names this one has.
            let link = link.or_else(|| {
                resume.map(|after| {
                    let limit = n.unwrap_or(MAX_PAGE).min(MAX_PAGE);
                    let after: String = form_urlencoded::byte_serialize(after.as_bytes()).collect();
                    hv(&format!(
                        "</v2/_catalog?n={limit}&last={after}>; rel=\"next\""
                    ))
                })
            });
            Ok::<_, ApiError>((repos, link))
        })
        .await?;
    Ok(json_response(
        json!({ "repositories": repos }),
        "application/json",
        link,
    ))
}

/// Up to `limit` repositories after `last` that `caller` may pull and `keep` accepts,
/// in name order. The catalog and `/v1/search` both list through this, so that a
/// search can never show a repository the catalog hides.
pub(crate) fn readable_where(
    reg: &Registry,
    caller: &Caller,
    last: Option<&str>,
    limit: usize,
    keep: impl Fn(&str) -> bool,
) -> Result<Listed, berth_store::StoreError> {
    repositories_where(reg, last, limit, |name| {
        keep(name) && caller.level(name).is_some()
    })
}

/// Repository names a listing found, and where its scan stopped at
/// [`MAX_SCANNED`] before the end, if it did.
pub(crate) struct Listed {
    pub names: Vec<String>,
    pub resume: Option<String>,
}

/// Repositories one listing reads at most: a caller who may read few repositories of
/// many (anonymous, on a registry of few public ones) made each request read them
/// all.
const MAX_SCANNED: usize = 50_000;

/// Up to `limit` repositories after `last` that `keep` accepts, in name order. Reads
/// the store page by page, so that a caller who may read few repositories of many
/// still gets full pages, up to [`MAX_SCANNED`] names.
pub(crate) fn repositories_where(
    reg: &Registry,
    last: Option<&str>,
    limit: usize,
    keep: impl Fn(&str) -> bool,
) -> Result<Listed, berth_store::StoreError> {
    scan(
        |after, n| reg.meta.repositories(after, n),
        last,
        limit,
        keep,
        MAX_SCANNED,
    )
}

/// [`repositories_where`] over pages that `pages(after, n)` reads, at most
/// `max_scanned` names.
fn scan<E>(
    mut pages: impl FnMut(Option<&str>, usize) -> Result<Vec<String>, E>,
    last: Option<&str>,
    limit: usize,
    keep: impl Fn(&str) -> bool,
    max_scanned: usize,
) -> Result<Listed, E> {
    const PAGE: usize = 1000;
    let mut out = Vec::new();
    let mut last = last.map(str::to_owned);
    let mut scanned = 0;
    let mut resume = None;
    while out.len() < limit {
        let page = pages(last.as_deref(), PAGE)?;
        let done = page.len() < PAGE;
        scanned += page.len();
        last = page.last().cloned();
        out.extend(page.into_iter().filter(|n| keep(n)));
        if done {
            break;
        }
        if scanned >= max_scanned && out.len() < limit {
            resume = last;
            break;
        }
    }
    out.truncate(limit);
    Ok(Listed { names: out, resume })
}

/// Referrers listed in one answer at most; more are on the pages its `Link` leads to.
/// With annotations of at most `MAX_REFERRER_ANNOTATIONS` each, a page stays within a
/// few MiB, where one answer of every referrer (each manifest up to 4 MiB of
/// annotations) could be gigabytes.
const REFERRERS_PAGE: usize = 128;

/// `GET /v2/<name>/referrers/<digest>?artifactType=`: an image index of the manifests
/// whose subject is `digest`. An unknown digest has no referrers, which is not an error.
/// Paged as the spec allows: `Link: <…?last=<time>.<digest>>; rel="next"`.
pub(crate) async fn referrers(
    reg: &Arc<Registry>,
    name: &RepositoryName,
    d: &str,
    query: Option<&str>,
) -> ApiResult {
    let subject = digest(d)?;
    let q = query_pairs(query);
    let filter = query_get(&q, "artifactType").filter(|s| !s.is_empty());
    let after = match query_get(&q, "last") {
        Some(last) => Some(
            last.split_once('.')
                .and_then(|(t, d)| Some((t.parse::<i64>().ok()?, d.parse::<Digest>().ok()?)))
                .ok_or_else(|| {
                    ApiError::new(Code::Unsupported)
                        .status(StatusCode::BAD_REQUEST)
                        .detail(format!(
                            "last={last:?} is not where a page of referrers ended"
                        ))
                })?,
        ),
        None => None,
    };
    let mut rows = reg.meta.referrers(
        name.as_str(),
        &subject,
        filter,
        after.as_ref().map(|(t, d)| (*t, d)),
        REFERRERS_PAGE + 1,
    )?;
    let link = if rows.len() > REFERRERS_PAGE {
        rows.truncate(REFERRERS_PAGE);
        rows.last().map(|r| {
            let mut next = format!(
                "/v2/{name}/referrers/{subject}?last={}.{}",
                r.created_at, r.digest
            );
            if let Some(t) = filter {
                let t: String = form_urlencoded::byte_serialize(t.as_bytes()).collect();
                next.push_str(&format!("&artifactType={t}"));
            }
            hv(&format!("<{next}>; rel=\"next\""))
        })
    } else {
        None
    };
    let manifests: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            let mut d = Map::new();
            d.insert("mediaType".into(), r.media_type.into());
            d.insert("digest".into(), r.digest.to_string().into());
            d.insert("size".into(), r.size.into());
            if let Some(t) = r.artifact_type {
                d.insert("artifactType".into(), t.into());
            }
            if let Some(a) = r
                .annotations
                .and_then(|a| serde_json::from_str::<Value>(&a).ok())
            {
                d.insert("annotations".into(), a);
            }
            Value::Object(d)
        })
        .collect();
    let index = json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_INDEX,
        "manifests": manifests,
    });
    let mut resp = json_response(index, media_type::OCI_INDEX, link);
    if filter.is_some() {
        resp.headers_mut().insert(
            "oci-filters-applied",
            HeaderValue::from_static("artifactType"),
        );
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scan_stops_at_its_bound_and_says_where() {
        let all: Vec<String> = (0..5_500).map(|i| format!("r{i:05}")).collect();
        let pages = |after: Option<&str>, n: usize| {
            Ok::<_, ()>(
                all.iter()
                    .filter(|r| after.is_none_or(|a| r.as_str() > a))
                    .take(n)
                    .cloned()
                    .collect(),
            )
        };
        // Few readable names: the scan stops after 2,000 and says where.
        let readable = |n: &str| n.ends_with("999");
        let first = scan(pages, None, 100, readable, 2_000).unwrap();
        assert_eq!(first.names, ["r00999", "r01999"]);
        assert_eq!(first.resume.as_deref(), Some("r01999"));
        let rest = scan(pages, first.resume.as_deref(), 100, readable, 2_000).unwrap();
        assert_eq!(rest.names, ["r02999", "r03999"]);
        let end = scan(pages, rest.resume.as_deref(), 100, readable, 2_000).unwrap();
        assert_eq!(end.names, ["r04999"]);
        assert_eq!(end.resume, None, "the end was reached");
        // A full page needs no resume.
        let full = scan(pages, None, 3, |_| true, 2_000).unwrap();
        assert_eq!((full.names.len(), full.resume), (3, None));
    }
}
