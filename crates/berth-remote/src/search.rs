//! Searching a registry, as `podman search` does it (containers/image's
//! `SearchRegistry`): Docker Hub's `GET /v1/search` first, and where the registry has
//! none (docker-registry 2.8 answers 404) a walk of `/v2/_catalog` with a
//! case-insensitive substring filter, following `Link` pages.

use reqwest::Method;
use serde::Deserialize;

use crate::error::RemoteError;
use crate::registry::{check, read_limited, Pages, Registry, MAX_PAGE};

/// The scope a catalog listing needs; also asked for the v1 search, so that a
/// registry that filters results by caller (berth does) sees who is asking.
const CATALOG_SCOPE: &str = "registry:catalog:*";

/// One repository a search found, in Docker Hub's terms. A catalog walk knows only
/// names; the rest is then empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchHit {
    /// The repository path on the registry (`library/alpine`, `org/app`).
    pub name: String,
    pub description: String,
    pub stars: u64,
    pub official: bool,
    pub automated: bool,
}

/// `/v1/search`'s answer; fields Docker Hub may leave out or send as null default.
#[derive(Deserialize)]
struct V1Answer {
    #[serde(default)]
    results: Vec<V1Result>,
}

#[derive(Deserialize)]
struct V1Result {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    star_count: Option<u64>,
    #[serde(default)]
    is_official: Option<bool>,
    #[serde(default)]
    is_automated: Option<bool>,
}

#[derive(Deserialize)]
struct CatalogPage {
    #[serde(default)]
    repositories: Option<Vec<String>>,
}

impl Registry {
    /// Up to `limit` repositories whose name contains `term`. An empty term lists the
    /// catalog (as podman does: Docker Hub's v1 search needs a term).
    ///
    /// Any answer but success from `/v1/search` means "not here" and the catalog is
    /// walked instead, as containers/image does: registries without v1 search answer
    /// 404, 401 or 405 depending on their routing, and if the catalog fails too, its
    /// error is the one that explains.
    pub async fn search(&self, term: &str, limit: usize) -> Result<Vec<SearchHit>, RemoteError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        if !term.is_empty() {
            if let Some(hits) = self.search_v1(term, limit).await? {
                return Ok(hits);
            }
        }
        self.search_catalog(term, limit).await
    }

    /// `GET /v1/search?q=&n=`; `None` when the registry does not offer it.
    async fn search_v1(
        &self,
        term: &str,
        limit: usize,
    ) -> Result<Option<Vec<SearchHit>>, RemoteError> {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("q", term)
            .append_pair("n", &limit.to_string())
            .finish();
        // Docker Hub's v1 search lives on its index host, as containers/image asks it.
        let path = match self.host() {
            "docker.io" => format!("https://index.docker.io/v1/search?{query}"),
            _ => format!("/v1/search?{query}"),
        };
        let r = self
            .send(Method::GET, &path, Some(CATALOG_SCOPE), None)
            .await?;
        if !r.status().is_success() {
            tracing::debug!(registry = self.host(), status = %r.status(), "no v1 search; walking the catalog");
            return Ok(None);
        }
        let what = format!("{}: search answer", self.host());
        let body = read_limited(r, MAX_PAGE, &what).await?;
        let answer: V1Answer = serde_json::from_slice(&body)
            .map_err(|e| RemoteError::Invalid(format!("{what}: {e}")))?;
        Ok(Some(
            answer
                .results
                .into_iter()
                .take(limit)
                .map(|r| SearchHit {
                    name: r.name,
                    description: r.description.unwrap_or_default(),
                    stars: r.star_count.unwrap_or(0),
                    official: r.is_official.unwrap_or(false),
                    automated: r.is_automated.unwrap_or(false),
                })
                .collect(),
        ))
    }

    /// Walks `/v2/_catalog` page by page until `limit` names contain `term`.
    async fn search_catalog(
        &self,
        term: &str,
        limit: usize,
    ) -> Result<Vec<SearchHit>, RemoteError> {
        let what = format!("{}: catalog", self.host());
        let needle = term.to_lowercase();
        let mut hits = Vec::new();
        let mut pages = Pages::new(&what);
        let mut next = Some("/v2/_catalog".to_string());
        while let Some(path) = next.take() {
            let r = self
                .send(Method::GET, &path, Some(CATALOG_SCOPE), None)
                .await?;
            let r = check(r, &what).await?;
            next = pages
                .next(r.headers())?
                .and_then(|l| same_registry_path(&l));
            let body = read_limited(r, MAX_PAGE, &what).await?;
            let page: CatalogPage = serde_json::from_slice(&body)
                .map_err(|e| RemoteError::Invalid(format!("{what}: {e}")))?;
            for name in page.repositories.unwrap_or_default() {
                if name.to_lowercase().contains(&needle) {
                    hits.push(SearchHit {
                        name,
                        ..SearchHit::default()
                    });
                    if hits.len() == limit {
                        return Ok(hits);
                    }
                }
            }
        }
        Ok(hits)
    }
}

/// The path and query of a `Link` target. Only those are followed, as containers/image
/// does: an absolute link naming another host must not receive this registry's token.
fn same_registry_path(link: &str) -> Option<String> {
    if link.starts_with('/') {
        return Some(link.to_string());
    }
    let url = reqwest::Url::parse(link).ok()?;
    Some(match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_targets_keep_only_path_and_query() {
        assert_eq!(
            same_registry_path("/v2/_catalog?last=a&n=2").as_deref(),
            Some("/v2/_catalog?last=a&n=2")
        );
        assert_eq!(
            same_registry_path("https://elsewhere.example/v2/_catalog?last=b").as_deref(),
            Some("/v2/_catalog?last=b")
        );
        assert_eq!(same_registry_path("not a url"), None);
    }
}
