//! `GET /v1/search?q=&n=`: Docker Hub's v1 search, which `podman search` and `docker
//! search` ask first (they fall back to walking `/v2/_catalog` only when it is
//! missing). Answering it saves them that walk, and lets them show what berth knows.
//!
//! The results are the repositories matching `q`, among those the caller may pull: the same filter as the catalog
//! ([`listing::readable_where`]), so a search never reveals a hidden repository.
//! Where access control applies, only callers with credentials get results: podman
//! sends none here, and must fall back to the catalog, which it reads logged in.
//! With the catalog on, results come from its search first (ranked: name matches,
//! then descriptions, labels, packages; each with the image's description), then the
//! repositories it has not indexed yet whose name matches. berth keeps no stars or
//! automated builds; those fields are empty.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::ApiResult;
use crate::listing::{self, json_response};
use crate::metrics::RouteLabel;
use crate::routes::{query_get, query_pairs};
use crate::{access, Registry};
use berth_auth::Principal;

/// Results when the client names no `n` (Docker Hub's default page).
pub const DEFAULT_RESULTS: usize = 25;
/// Most results one search answers (Docker Hub's largest page).
pub const MAX_RESULTS: usize = 100;

/// `GET /v1/search?q=TERM&n=LIMIT`
pub(crate) async fn search(State(reg): State<Arc<Registry>>, req: Request) -> Response {
    let mut resp = answer(reg, req).await.unwrap_or_else(|e| e.into_response());
    resp.extensions_mut().insert(RouteLabel("search"));
    resp
}

async fn answer(reg: Arc<Registry>, req: Request) -> ApiResult {
    let caller = access::identify(&reg, req.headers(), req.extensions()).await?;
    // containers/image (podman search) asks /v1/search without credentials and
    // walks /v2/_catalog, with them, only when this fails. An anonymous answer would
    // hide from a logged-in user every repository that is not public; so where
    // access control applies, an anonymous search is a 401 that sends clients to the
    // catalog (which shows anonymous callers the public repositories all the same).
    if caller.enforced && matches!(caller.principal, Principal::Anonymous) {
        return Err(access::login_required(&reg, req.headers())
            .detail("search needs a login; anonymous clients can read /v2/_catalog"));
    }
    // `n` is read as the catalog reads it (a bad number is the same 400); 0 means the
    // default, as Docker Hub takes it.
    let (n, _) = listing::page(req.uri().query())?;
    let limit = match n {
        None | Some(0) => DEFAULT_RESULTS,
        Some(n) => n.min(MAX_RESULTS),
    };
    let term = query_get(&query_pairs(req.uri().query()), "q")
        .unwrap_or("")
        .to_string();
    let query = term.to_ascii_lowercase();
    let r = reg.clone();
    let found = reg
        .blocking(
            move |_| -> Result<Vec<(String, String)>, berth_store::StoreError> {
                // The catalog's ranked answer first (name matches, then descriptions,
                // labels, packages), with descriptions; then repositories it has not
                // indexed yet whose name matches, as before the catalog.
                let mut found: Vec<(String, String)> = Vec::new();
                if let Some(catalog) = &r.catalog {
                    let q = berth_catalog::search::SearchQuery {
                        q: query.clone(),
                        page: 1,
                        per_page: limit,
                        ..Default::default()
                    };
                    match catalog
                        .db()
                        .search(&q, &|name| caller.level(name).is_some())
                    {
                        Ok(page) => found.extend(
                            page.results
                                .into_iter()
                                .map(|h| (h.repository, h.description.unwrap_or_default())),
                        ),
                        Err(e) => tracing::warn!(error = %e, "catalog search failed; names only"),
                    }
                }
                if found.len() < limit {
                    let names = listing::readable_where(&r, &caller, None, limit, |name| {
                        name.to_ascii_lowercase().contains(&query)
                            && !found.iter().any(|(n, _)| n == name)
                    })?
                    .names;
                    found.extend(names.into_iter().map(|n| (n, String::new())));
                }
                found.truncate(limit);
                Ok(found)
            },
        )
        .await?;
    let results: Vec<_> = found
        .iter()
        .map(|(name, description)| {
            json!({
                "name": name,
                "description": description,
                "star_count": 0,
                "is_official": false,
                "is_automated": false,
            })
        })
        .collect();
    Ok(json_response(
        json!({
            "num_results": results.len(),
            "num_pages": 1,
            "page": 1,
            "page_size": limit,
            "query": term,
            "results": results,
        }),
        "application/json",
        None,
    ))
}
