//! The pages' data: each fetched through the functions the catalog API answers
//! with (`Catalog::search`, `readable`, `Image::overview_view`, `Image::inventoried`,
//! `Catalog::vulnerabilities`, `Catalog::repository`, `Image::sbom`), with the same
//! access rules, then handed to `berth_web` to render.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_catalog::query::{PackageDiffHead, PackagePage, PackageSort, VulnFilter};
use berth_catalog::search::SearchQuery;
use berth_image::{Digest, RepositoryName};
use berth_web::image::{Content, Diff, ImagePage, Scan, SignatureRow, Tab};
use berth_web::search::{Facet, SearchParams};

use super::{failure, finish, html, not_found, Visitor};
use crate::catalog_api::repositories::{self, catalog_error, readable, Image};
use crate::catalog_api::search_query;
use crate::error::ApiError;
use crate::routes::{self, query_get, query_pairs};
use crate::Registry;

/// Results per search page.
const SEARCH_PER_PAGE: usize = 25;

/// Why a page is not shown: not found (or not readable: the same), or our failure.
enum Refusal {
    NotFound,
    Failed(ApiError),
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Refusal {
        // Unknown, unreadable, invalid names and digests, the catalog turned off:
        // all "not found" to a visitor. Anything else is ours.
        if e.status.is_client_error() {
            Refusal::NotFound
        } else {
            Refusal::Failed(e)
        }
    }
}

fn answer(v: &Visitor, r: Result<Response, Refusal>) -> Response {
    match r {
        Ok(resp) => resp,
        Err(Refusal::NotFound) => not_found(v),
        Err(Refusal::Failed(e)) => failure(v, e),
    }
}

/// Whether free text is a vulnerability id, searched as `cve=` rather than as text.
fn is_advisory_id(q: &str) -> bool {
    let q = q.trim();
    ["CVE-", "GHSA-", "DSA-", "DLA-", "RHSA-", "ALSA-", "USN-"]
        .iter()
        .any(|p| q.len() > p.len() && q[..p.len()].eq_ignore_ascii_case(p))
        && !q.contains(char::is_whitespace)
}

/// `/`: the API's search parameters and search, the visitor's access.
pub(crate) async fn search(State(reg): State<Arc<Registry>>, req: Request) -> Response {
    let v = match Visitor::of(&reg, &req) {
        Ok(v) => v,
        Err(e) => return finish(e.into_response()),
    };
    let r = search_page(&reg, &v, req.uri().query()).await;
    answer(&v, r)
}

async fn search_page(
    reg: &Arc<Registry>,
    v: &Visitor,
    raw: Option<&str>,
) -> Result<Response, Refusal> {
    let query = match search_query(raw) {
        Ok(q) => q,
        Err(why) => {
            return Ok(html(
                StatusCode::BAD_REQUEST,
                berth_web::error_page(&v.chrome(), "Bad search", &why),
            ))
        }
    };
    let params = SearchParams {
        q: query.q.clone(),
        os: query.os.clone(),
        arch: query.arch.clone(),
        grade: query.grade.clone(),
        signed: query.signed,
        package: query.package.clone(),
        cve: query.cve.clone(),
        page: query.page,
    };
    let mut query = SearchQuery {
        per_page: SEARCH_PER_PAGE,
        labels: Vec::new(),
        ..query
    };
    if query.cve.is_none() && is_advisory_id(&query.q) {
        query.cve = Some(query.q.trim().to_string());
        query.q.clear();
    }
    let found = match reg.catalog() {
        Some(catalog) => {
            let (catalog, caller) = (catalog.clone(), Visitor::of_caller(v, reg)?);
            reg.blocking(move |_| {
                faceted_search(&catalog, &query, &|name| caller.level(name).is_some())
                    .map_err(catalog_error)
            })
            .await?
        }
        None => berth_catalog::search::SearchPage {
            total: 0,
            page: 1,
            per_page: SEARCH_PER_PAGE,
            results: Vec::new(),
            facets: Default::default(),
        },
    };
    let f = &found.facets;
    let facets: Vec<Facet> = [
        ("os", &f.os),
        ("arch", &f.arch),
        ("grade", &f.grade),
        ("signed", &f.signed),
    ]
    .into_iter()
    .map(|(name, values)| Facet {
        name: name.into(),
        values: values.clone(),
    })
    .collect();
    Ok(html(
        StatusCode::OK,
        berth_web::search::page_html(&v.chrome(), &params, &found, &facets),
    ))
}

/// The API's search ([`berth_catalog::Catalog::search`], the same `readable` rule),
/// and for each facet the visitor filters on, that facet's counts with the *other*
/// filters applied, so a selected value's siblings stay on offer (picking `arm64`
/// after `amd64` needs no step back).
fn faceted_search(
    catalog: &berth_catalog::Catalog,
    query: &SearchQuery,
    readable: &dyn Fn(&str) -> bool,
) -> berth_catalog::Result<berth_catalog::search::SearchPage> {
    let mut found = catalog.search(query, readable)?;
    let without = |clear: &dyn Fn(&mut SearchQuery)| {
        let mut q = query.clone();
        clear(&mut q);
        q.page = 1;
        q.per_page = 1;
        catalog.search(&q, readable).map(|p| p.facets)
    };
    if query.os.is_some() {
        found.facets.os = without(&|q| q.os = None)?.os;
    }
    if query.arch.is_some() {
        found.facets.arch = without(&|q| q.arch = None)?.arch;
    }
    if query.grade.is_some() {
        found.facets.grade = without(&|q| q.grade = None)?.grade;
    }
    if query.signed.is_some() {
        found.facets.signed = without(&|q| q.signed = None)?.signed;
    }
    Ok(found)
}

impl Visitor {
    /// The visitor's caller again, for a blocking task (a `Caller` is not `Clone`:
    /// it is rebuilt from the same principal and directory snapshot).
    fn of_caller(v: &Visitor, reg: &Registry) -> Result<crate::access::Caller, ApiError> {
        crate::access::Caller::of(reg, v.caller.principal.clone())
    }
}

/// What a `/repository/…` path names.
#[derive(Debug, PartialEq, Eq)]
enum Target<'a> {
    Repository(&'a str),
    Manifest(&'a str, &'a str),
    Sbom(&'a str, &'a str),
}

impl<'a> Target<'a> {
    /// Read from the right, as the API's paths are: names have slashes.
    fn parse(path: &'a str) -> Option<Target<'a>> {
        if let Some((name, rest)) = path.rsplit_once("/manifest/") {
            return match rest.split_once('/') {
                None if !rest.is_empty() => Some(Target::Manifest(name, rest)),
                Some((digest, "sbom")) if !digest.is_empty() => Some(Target::Sbom(name, digest)),
                _ => None,
            };
        }
        let name = path.trim_end_matches('/');
        (!name.is_empty()).then_some(Target::Repository(name))
    }
}

/// `/repository/{*path}`.
pub(crate) async fn repository(
    State(reg): State<Arc<Registry>>,
    Path(path): Path<String>,
    req: Request,
) -> Response {
    let v = match Visitor::of(&reg, &req) {
        Ok(v) => v,
        Err(e) => return finish(e.into_response()),
    };
    let q = query_pairs(req.uri().query());
    let headers = req.headers().clone();
    drop(req);
    let req = &headers;
    let r = match Target::parse(&path) {
        None => Err(Refusal::NotFound),
        Some(Target::Repository(name)) => match query_get(&q, "tag") {
            Some(tag) => image_page(&reg, &v, req, name, Asked::Tag(tag), &q).await,
            None => repository_page(&reg, &v, req, name).await,
        },
        Some(Target::Manifest(name, d)) => {
            image_page(&reg, &v, req, name, Asked::Digest(d), &q).await
        }
        Some(Target::Sbom(name, d)) => sbom(&reg, &v, req, name, d, &q).await,
    };
    answer(&v, r)
}

async fn repository_page(
    reg: &Arc<Registry>,
    v: &Visitor,
    req: &HeaderMap,
    name: &str,
) -> Result<Response, Refusal> {
    let name = readable(reg, &v.caller, name).await?;
    let catalog = repositories::catalog(reg)?;
    let n = name.to_string();
    let view = reg
        .blocking(move |_| catalog.repository(&n).map_err(catalog_error))
        .await?
        .ok_or(Refusal::NotFound)?;
    Ok(html(
        StatusCode::OK,
        berth_web::repository::page_html(&v.chrome(), &super::host(req), &view),
    ))
}

/// How the image was asked for.
enum Asked<'a> {
    Tag(&'a str),
    Digest(&'a str),
}

/// The data of the current tab, owned; the page borrows from it.
enum TabData {
    Overview,
    Security(Standing, Option<berth_catalog::query::VulnerabilityReport>),
    Packages(Standing, Option<PackagePage>, PreviousTag),
    Containerfile(Standing, Option<berth_inventory::Containerfile>),
    Tags(Vec<berth_catalog::query::TagSummary>),
    Signatures(Vec<SignatureRow>),
    Sbom,
}

/// Where the shown image's scan stands (from the overview's summary).
enum Standing {
    Ready,
    Pending,
    Failed(String),
    NotImage,
}

impl Standing {
    fn scan(&self) -> Scan<'_> {
        match self {
            Standing::Ready => Scan::Ready,
            Standing::Pending => Scan::Pending,
            Standing::Failed(why) => Scan::Failed(why),
            Standing::NotImage => Scan::NotImage,
        }
    }
}

/// The package diff's other side.
enum PreviousTag {
    None,
    Unavailable(String),
    Diff(String, PackageDiffHead),
}

#[allow(clippy::too_many_lines)]
async fn image_page(
    reg: &Arc<Registry>,
    v: &Visitor,
    req: &HeaderMap,
    name: &str,
    asked: Asked<'_>,
    q: &[(String, String)],
) -> Result<Response, Refusal> {
    let name = readable(reg, &v.caller, name).await?;
    let catalog = repositories::catalog(reg)?;
    // The tags set most recently, in the catalog's order: the asked tag's digest (an
    // older tag is looked up by name), or this digest's tag, and the previous tag.
    let n = name.to_string();
    let mut tags = reg
        .blocking(move |r| r.meta.recent_tags(&n, berth_catalog::tags::TAG_WINDOW))
        .await?;
    tags.sort_by(|a, b| berth_catalog::tags::compare_newest_first((&a.0, a.2), (&b.0, b.2)));
    let (digest, tag) = match asked {
        Asked::Tag(t) => match tags.iter().find(|(x, _, _)| x == t) {
            Some((tag, d, _)) => (d.clone(), Some(tag.clone())),
            None => {
                let (n, wanted) = (name.to_string(), t.to_string());
                let found = reg
                    .blocking(move |r| {
                        r.meta
                            .manifest_by_tag(&n, &wanted)
                            .map(|m| m.map(|m| m.digest))
                    })
                    .await?;
                (found.ok_or(Refusal::NotFound)?, Some(t.to_string()))
            }
        },
        Asked::Digest(d) => {
            let digest = routes::digest(d)?;
            let tag = tags
                .iter()
                .find(|(_, x, _)| *x == digest)
                .map(|(t, _, _)| t.clone());
            (digest, tag)
        }
    };
    let image = Image {
        reg: reg.clone(),
        catalog: catalog.clone(),
        name: name.clone(),
        digest: digest.clone(),
    };
    let (view, signature_count) = image.overview_view(&v.caller).await?;
    // The platform shown: `?platform=` among an index's images, else linux/amd64,
    // else the first.
    let chosen = query_get(q, "platform")
        .and_then(|p| view.images.iter().position(|i| i.summary.digest == p))
        .or_else(|| {
            view.images
                .iter()
                .position(|i| i.summary.platform.as_deref() == Some("linux/amd64"))
        })
        .unwrap_or(0);
    let shown = view.images.get(chosen);
    let shown_digest = match shown {
        Some(i) => routes::digest(&i.summary.digest)?,
        None => digest.clone(),
    };
    let tab = Tab::parse(query_get(q, "tab").unwrap_or(""));
    let page: usize = query_get(q, "page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1);
    let fixable = matches!(query_get(q, "fixable"), Some("1" | "true" | "on"));
    let pq = query_get(q, "pq").unwrap_or("").to_string();
    let sort = PackageSort::parse(query_get(q, "sort").unwrap_or(""));
    let shown_image = Image {
        digest: shown_digest.clone(),
        ..image
    };
    // Where the shown image's scan stands, as the overview read it: no tab parses
    // the inventory just to learn that.
    let state = match (view.status.as_str(), shown.map(|i| &i.summary)) {
        ("skipped", _) | (_, None) => Standing::NotImage,
        (_, Some(s)) if s.status == "pending" => Standing::Pending,
        (_, Some(s)) if s.status == "failed" => {
            Standing::Failed(s.error.clone().unwrap_or_else(|| "unknown reason".into()))
        }
        _ => Standing::Ready,
    };
    let data = match tab {
        Tab::Overview => TabData::Overview,
        Tab::Sbom => TabData::Sbom,
        Tab::Security => {
            let filter = VulnFilter {
                fixable,
                severities: Vec::new(),
            };
            let report = match state {
                Standing::Ready => {
                    shown_image
                        .with(move |_, c, name, d| {
                            c.vulnerabilities(name, &d.to_string(), &filter)
                                .map_err(catalog_error)
                        })
                        .await?
                }
                _ => None,
            };
            TabData::Security(state, report)
        }
        Tab::Packages => {
            let platform = shown.and_then(|i| i.summary.platform.clone());
            let previous = previous_tag(&tags, tag.as_deref(), &digest);
            let (packages, prev) = match state {
                Standing::Ready => {
                    shown_image
                        .with(move |_, c, name, d| {
                            packages_and_diff(c, name, d, platform, previous, (&pq, sort, page))
                                .map_err(catalog_error)
                        })
                        .await?
                }
                _ => (None, PreviousTag::None),
            };
            TabData::Packages(state, packages, prev)
        }
        Tab::Containerfile => {
            let file = match state {
                Standing::Ready => {
                    shown_image
                        .with(|_, c, _, d| c.containerfile(&d.to_string()).map_err(catalog_error))
                        .await?
                }
                _ => None,
            };
            TabData::Containerfile(state, file)
        }
        Tab::Tags => {
            let (c, n) = (catalog.clone(), name.to_string());
            let view = reg
                .blocking(move |_| c.repository(&n).map_err(catalog_error))
                .await?
                .ok_or(Refusal::NotFound)?;
            TabData::Tags(view.tags)
        }
        Tab::Signatures => TabData::Signatures(signature_rows(reg, &name, &digest).await?),
    };
    let content = match &data {
        TabData::Overview => Content::Overview,
        TabData::Sbom => Content::Sbom,
        TabData::Security(state, report) => Content::Security {
            scan: state.scan(),
            report: report.as_ref(),
            fixable,
            page,
        },
        TabData::Packages(state, packages, prev) => Content::Packages {
            scan: match (state, packages) {
                // Rescanned and failed since the overview was read.
                (Standing::Ready, None) => Scan::Pending,
                (state, _) => state.scan(),
            },
            packages: packages.as_ref().map_or(&[], |p| &p.packages),
            total: packages.as_ref().map_or(0, |p| p.total),
            q: query_get(q, "pq").unwrap_or(""),
            sort,
            page: packages.as_ref().map_or(1, |p| p.page),
            diff: match prev {
                PreviousTag::None => Diff::NoPrevious,
                PreviousTag::Unavailable(t) => Diff::Unavailable(t),
                PreviousTag::Diff(t, d) => Diff::Against(t, d),
            },
        },
        TabData::Containerfile(state, file) => Content::Containerfile {
            scan: state.scan(),
            file: file.as_ref(),
        },
        TabData::Tags(tags) => Content::Tags(tags),
        TabData::Signatures(rows) => Content::Signatures(rows),
    };
    let host = super::host(req);
    let asked_tag = match asked {
        Asked::Tag(t) => Some(t),
        Asked::Digest(_) => None,
    };
    let page = ImagePage {
        repository: name.as_str(),
        host: &host,
        asked_tag,
        tag: tag.as_deref(),
        manifest: &view,
        image: shown,
        signatures: signature_count,
        content,
    };
    Ok(html(
        StatusCode::OK,
        berth_web::image::page_html(&v.chrome(), &page),
    ))
}

/// One page of the shown image's packages whose name contains `pq` (all when
/// empty), and the diff against the previous tag's image of the same platform
/// (stored by the catalog after its first view).
fn packages_and_diff(
    c: &berth_catalog::Catalog,
    name: &str,
    digest: &Digest,
    platform: Option<String>,
    previous: Option<(String, String)>,
    want: (&str, PackageSort, usize),
) -> berth_catalog::Result<(Option<PackagePage>, PreviousTag)> {
    let (pq, sort, page) = want;
    let mine = digest.to_string();
    let shown = c.package_page(&mine, pq, sort, page, berth_web::PER_PAGE)?;
    let prev = match previous {
        None => PreviousTag::None,
        Some((ptag, pdigest)) => {
            // The previous tag's image of the same platform.
            let other = match c.db().scan(name, &pdigest)? {
                Some(s) if !s.children.is_empty() => s
                    .children
                    .into_iter()
                    .find(|ch| ch.platform == platform)
                    .map(|ch| ch.digest),
                _ => Some(pdigest),
            };
            let head = other.map(|o| c.package_diff_head(&mine, &o, berth_web::PER_PAGE));
            match head.transpose()?.flatten() {
                Some(diff) => PreviousTag::Diff(ptag, diff),
                None => PreviousTag::Unavailable(ptag),
            }
        }
    };
    Ok((shown, prev))
}

/// The tag before `tag` (`tags` newest first, in the catalog's order) that names
/// another manifest: among versions the next older version, among other tags the
/// next older push; none for an image not reached by a tag.
fn previous_tag(
    tags: &[(String, Digest, i64)],
    tag: Option<&str>,
    digest: &Digest,
) -> Option<(String, String)> {
    let tag = tag?;
    let at = tags.iter().position(|(t, _, _)| t == tag)?;
    let is_version = |t: &str| berth_catalog::tags::Version::parse(t).is_some();
    tags[at + 1..]
        .iter()
        .find(|(t, d, _)| d != digest && is_version(t) == is_version(tag))
        .map(|(t, d, _)| (t.clone(), d.to_string()))
}

/// The Signatures tab's rows: what the API's `/signatures` lists
/// (`signature_info::signature_rows`, verified with the repository's trusted keys).
async fn signature_rows(
    reg: &Arc<Registry>,
    name: &RepositoryName,
    digest: &Digest,
) -> Result<Vec<SignatureRow>, ApiError> {
    let rows = crate::signature_info::signature_rows(reg, name.as_str(), digest).await?;
    Ok(rows
        .into_iter()
        .map(|s| SignatureRow {
            kind: match s.kind.as_str() {
                "simple" => "simple signing".to_string(),
                other => other.to_string(),
            },
            signer: match (s.key, s.signer) {
                (Some(k), Some(u)) => format!("{k} ({u})"),
                (Some(k), None) => k,
                (None, Some(u)) => u,
                (None, None) => String::new(),
            },
            identity: s.identity.unwrap_or_default(),
            verified: s.verified,
            reason: s.reason,
        })
        .collect())
}

/// `/repository/NAME/manifest/DIGEST/sbom?format=`: the API's `/sbom` answer, with
/// the visitor's access, as a download.
async fn sbom(
    reg: &Arc<Registry>,
    v: &Visitor,
    req: &HeaderMap,
    name: &str,
    d: &str,
    q: &[(String, String)],
) -> Result<Response, Refusal> {
    let name = readable(reg, &v.caller, name).await?;
    let digest = routes::digest(d)?;
    let image = Image {
        reg: reg.clone(),
        catalog: repositories::catalog(reg)?,
        name: name.clone(),
        digest: digest.clone(),
    };
    let mut resp = image.sbom(req, q).await?;
    if resp.status() == StatusCode::OK {
        let format = match query_get(q, "format") {
            Some("cyclonedx") => "cyclonedx",
            _ => "spdx",
        };
        let file = format!(
            "{}-{}.{format}.json",
            name.as_str().rsplit('/').next().unwrap_or("image"),
            &digest.hex()[..12.min(digest.hex().len())]
        );
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
            resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
        }
    }
    Ok(finish(resp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_read_from_the_right() {
        assert_eq!(Target::parse("a/b"), Some(Target::Repository("a/b")));
        assert_eq!(Target::parse("a/b/"), Some(Target::Repository("a/b")));
        assert_eq!(
            Target::parse("a/manifest/b/manifest/sha256:x"),
            Some(Target::Manifest("a/manifest/b", "sha256:x"))
        );
        assert_eq!(
            Target::parse("a/b/manifest/sha256:x/sbom"),
            Some(Target::Sbom("a/b", "sha256:x"))
        );
        assert_eq!(Target::parse("a/manifest/sha256:x/other"), None);
        assert_eq!(Target::parse("a/manifest/"), None);
        assert_eq!(Target::parse(""), None);
    }

    #[test]
    fn the_previous_tag_is_the_next_older_of_its_kind_with_another_image() {
        let d = |n: u8| Digest::sha256_of(&[n]);
        let tags: Vec<(String, Digest, i64)> = [
            ("1.10.0", d(3), 5),
            ("1.9.2", d(3), 4),
            ("1.9.0", d(2), 3),
            ("1.0.0", d(1), 1),
            ("latest", d(3), 6),
            ("edge", d(4), 2),
        ]
        .into_iter()
        .map(|(t, d, at)| (t.to_string(), d, at))
        .collect();
        let prev = |t: &str, n: u8| previous_tag(&tags, Some(t), &d(n)).map(|(t, _)| t);
        assert_eq!(
            prev("1.10.0", 3).as_deref(),
            Some("1.9.0"),
            "same image skipped"
        );
        assert_eq!(prev("1.9.0", 2).as_deref(), Some("1.0.0"));
        assert_eq!(prev("1.0.0", 1), None, "not `latest`: another kind");
        assert_eq!(prev("latest", 3).as_deref(), Some("edge"));
        assert_eq!(previous_tag(&tags, None, &d(3)), None);
    }

    #[test]
    fn advisory_ids_are_told_from_text() {
        for id in [
            "CVE-2024-1234",
            "cve-2024-1",
            "GHSA-xxxx-yyyy",
            "DSA-5000-1",
            "USN-1-1",
        ] {
            assert!(is_advisory_id(id), "{id}");
        }
        for text in ["nginx", "CVE-", "cve 2024", "CVE-2024-1 nginx", "DSAx"] {
            assert!(!is_advisory_id(text), "{text}");
        }
    }
}
