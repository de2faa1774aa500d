//! `/api/v1/repositories/NAME[/manifests/DIGEST[/packages|/vulnerabilities|
//! /containerfile|/sbom|/signatures]]` and `/api/v1/repositories/NAME/allowlist[/FINDING_ID]`:
//! what the catalog knows of one repository and its images, a thin layer over
//! `berth_catalog::query`.
//!
//! NAME has slashes, so the path is read from the right as the `/v2/` routes read
//! theirs: the last `/manifests/` or `/allowlist` decides, and what stands before it
//! must be a valid repository name.
//!
//! Access: the caller is identified as for `/v2/` (anonymous, Basic credentials or a
//! bearer token) and must hold pull on the repository, the check `/v2/` manifest GET
//! makes; a repository the caller may not read answers `404 NAME_UNKNOWN`, exactly
//! as one that does not exist, so the API never reveals a private name. Errors use the
//! `/v2/` error body (`{"errors":[{"code","message","detail"}]}`).
//!
//! An image the catalog has not inventoried yet answers `202` with
//! `{"status":"pending"}`; one whose scan failed answers `422` with
//! `{"status":"failed","error":REASON}`; an index answers `400` naming its images
//! (each has its own inventory).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_auth::Action;
use berth_catalog::query::VulnFilter;
use berth_catalog::{CatalogError, ScanStatus, StoredInventory};
use berth_image::{Digest, RepositoryName};
use serde_json::{json, Value};

use super::allowlist;
use crate::access::{self, Caller};
use crate::error::{ApiError, ApiResult, Code};
use crate::metrics::RouteLabel;
use crate::routes::{self, query_get, query_pairs};
use crate::Registry;

/// What a path names.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Target<'a> {
    Repository(&'a str),
    /// Repository, digest, and the part of the image asked for (none: the overview).
    Manifest(&'a str, &'a str, Option<Part>),
    /// Repository, and one finding's entry (none: the whole list).
    Allowlist(&'a str, Option<&'a str>),
}

/// The parts of an image under `/manifests/DIGEST/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Packages,
    Vulnerabilities,
    Containerfile,
    Sbom,
    /// Its signatures, each verified against the repository's trust setting
    /// (`crate::signature_info`).
    Signatures,
}

impl<'a> Target<'a> {
    /// Reads the path after `/api/v1/repositories/`; none when it names nothing.
    pub(crate) fn parse(rest: &'a str) -> Option<Target<'a>> {
        let leaf = |s: &str| !s.is_empty() && !s.contains('/');
        if let Some((name, tail)) = rest.rsplit_once("/manifests/") {
            let (digest, part) = match tail.split_once('/') {
                None => (tail, None),
                Some((d, p)) => (
                    d,
                    Some(match p {
                        "packages" => Part::Packages,
                        "vulnerabilities" => Part::Vulnerabilities,
                        "containerfile" => Part::Containerfile,
                        "sbom" => Part::Sbom,
                        "signatures" => Part::Signatures,
                        _ => return None,
                    }),
                ),
            };
            return leaf(digest).then_some(Target::Manifest(name, digest, part));
        }
        if let Some(name) = rest.strip_suffix("/allowlist") {
            return Some(Target::Allowlist(name, None));
        }
        if let Some((name, id)) = rest.rsplit_once("/allowlist/") {
            return leaf(id).then_some(Target::Allowlist(name, Some(id)));
        }
        (!rest.is_empty()).then_some(Target::Repository(rest.trim_end_matches('/')))
    }

    fn name(&self) -> &'a str {
        match self {
            Target::Repository(n) | Target::Manifest(n, ..) | Target::Allowlist(n, _) => n,
        }
    }
}

/// Every `/api/v1/repositories/…` request comes here; `…/NAME/visibility` belongs
/// to the administration API (`berth_auth::api`) and goes there.
pub(crate) async fn endpoint(State(reg): State<Arc<Registry>>, req: Request) -> Response {
    if req.uri().path().ends_with("/visibility") {
        return crate::admin_api::endpoint(State(reg), req).await;
    }
    let mut resp = handle(reg, req)
        .await
        .unwrap_or_else(IntoResponse::into_response);
    resp.extensions_mut().insert(RouteLabel("catalog"));
    resp
}

fn no_endpoint() -> ApiError {
    ApiError::new(Code::Unsupported)
        .status(StatusCode::NOT_FOUND)
        .detail("no such endpoint")
}

pub(crate) fn bad_request(detail: impl ToString) -> ApiError {
    ApiError::new(Code::Unsupported)
        .status(StatusCode::BAD_REQUEST)
        .message("bad request")
        .detail(detail)
}

fn method_not_allowed(allowed: &str) -> ApiError {
    ApiError::new(Code::Unsupported).detail(format!("this resource takes {allowed}"))
}

/// A catalog failure: its own refusals are the caller's mistake, the rest ours.
pub(crate) fn catalog_error(e: CatalogError) -> ApiError {
    match e {
        CatalogError::Invalid(why) => bad_request(why),
        e => ApiError::internal(e),
    }
}

pub(crate) fn catalog(reg: &Registry) -> ApiResult<Arc<berth_catalog::Catalog>> {
    reg.catalog.clone().ok_or_else(|| {
        ApiError::new(Code::Unsupported)
            .status(StatusCode::NOT_FOUND)
            .detail("the catalog is turned off on this registry")
    })
}

/// The repository, when the caller may read it and it exists; otherwise the same
/// `404 NAME_UNKNOWN` in both cases (a private repository is invisible, not
/// forbidden). Pull is checked as `/v2/` manifest GET checks it ([`Caller::may`]).
pub(crate) async fn readable(
    reg: &Arc<Registry>,
    caller: &Caller,
    name: &str,
) -> ApiResult<RepositoryName> {
    let name = routes::repo(name)?;
    let unknown = || ApiError::new(Code::NameUnknown).detail(&name);
    if !caller.may(name.as_str(), Action::Pull) {
        return Err(unknown());
    }
    let n = name.to_string();
    if !reg.blocking(move |r| r.meta.repository_exists(&n)).await? {
        return Err(unknown());
    }
    Ok(name)
}

async fn handle(reg: Arc<Registry>, req: Request) -> ApiResult {
    let path = req.uri().path().to_owned();
    let rest = path.strip_prefix("/api/v1/repositories/").unwrap_or("");
    let target = Target::parse(rest).ok_or_else(no_endpoint)?;
    let caller = access::identify(&reg, req.headers(), req.extensions()).await?;
    let name = readable(&reg, &caller, target.name()).await?;
    let catalog = catalog(&reg)?;
    let method = req.method().clone();
    match target {
        Target::Allowlist(_, id) => allowlist::handle(&reg, &caller, &name, id, req).await,
        _ if method != Method::GET => Err(method_not_allowed("GET")),
        Target::Repository(_) => {
            let n = name.to_string();
            let view = reg
                .blocking(move |_| catalog.repository(&n).map_err(catalog_error))
                .await?
                .ok_or_else(|| ApiError::new(Code::NameUnknown).detail(&name))?;
            Ok(axum::Json(view).into_response())
        }
        Target::Manifest(_, d, part) => {
            let digest = routes::digest(d)?;
            let query = query_pairs(req.uri().query());
            let image = Image {
                reg: reg.clone(),
                catalog,
                name,
                digest,
            };
            match part {
                None => image.overview(&caller).await,
                Some(Part::Packages) => image.packages(&caller, &query).await,
                Some(Part::Vulnerabilities) => image.vulnerabilities(&query).await,
                Some(Part::Containerfile) => image.containerfile().await,
                Some(Part::Sbom) => image.sbom(req.headers(), &query).await,
                Some(Part::Signatures) => image.signatures().await,
            }
        }
    }
}

/// Where an image's inventory stands.
pub(crate) enum Inventoried {
    Ok(Box<StoredInventory>, Box<berth_inventory::Inventory>),
    /// Not scanned yet.
    Pending,
    /// Scanned and failed, with the reason.
    Failed(String),
    /// An index: its images (digest, platform).
    Index(Vec<Value>),
    /// Not an image (a signature, an SBOM): nothing to inventory.
    Skipped,
}

impl Inventoried {
    /// The answer for anything but `Ok`.
    fn refusal(self, digest: &Digest) -> ApiResult {
        let d = digest.to_string();
        let (status, body) = match self {
            Inventoried::Ok(..) => return Err(ApiError::internal("refusal of an inventory")),
            Inventoried::Pending => (
                StatusCode::ACCEPTED,
                json!({"digest": d, "status": "pending",
                       "detail": "the catalog has not inventoried this image yet; ask again shortly"}),
            ),
            Inventoried::Failed(why) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"digest": d, "status": "failed", "error": why}),
            ),
            Inventoried::Index(images) => {
                return Err(bad_request(format!(
                    "{d} is an index; ask for one of its images: {}",
                    images
                        .iter()
                        .map(|i| format!(
                            "{} ({})",
                            i["digest"].as_str().unwrap_or(""),
                            i["platform"].as_str().unwrap_or("unknown platform")
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
            Inventoried::Skipped => {
                return Err(bad_request(format!(
                    "{d} is not an image (an artifact or a signature): it has no inventory"
                )))
            }
        };
        Ok((status, axum::Json(body)).into_response())
    }
}

/// One manifest of a readable repository (the web pages' data too: `crate::ui`).
pub(crate) struct Image {
    pub(crate) reg: Arc<Registry>,
    pub(crate) catalog: Arc<berth_catalog::Catalog>,
    pub(crate) name: RepositoryName,
    pub(crate) digest: Digest,
}

impl Image {
    /// Runs `f` off the async threads once the manifest is known to be in the
    /// repository (`404 MANIFEST_UNKNOWN` otherwise).
    pub(crate) async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Registry, &berth_catalog::Catalog, &str, &Digest) -> ApiResult<T>
            + Send
            + 'static,
    ) -> ApiResult<T> {
        let (catalog, name, digest) =
            (self.catalog.clone(), self.name.clone(), self.digest.clone());
        self.reg
            .blocking(move |r| {
                if r.meta.manifest_by_digest(name.as_str(), &digest)?.is_none() {
                    return Err(
                        ApiError::new(Code::ManifestUnknown).detail(format!("{name}@{digest}"))
                    );
                }
                f(r, &catalog, name.as_str(), &digest)
            })
            .await
    }

    /// The overview, with the count of simple signatures kept for it. A base image
    /// found by its layers in a repository of this registry that the caller may not
    /// read is left out (its name would reveal that repository). One named by the
    /// image's own annotations stays, whatever it names: it is the pusher's text,
    /// shown as written. (Hiding such a name when it is a repository here, as was
    /// done, told anyone who pushed an image naming `victim/secret` whether that
    /// private repository exists.)
    pub(crate) async fn overview_view(
        &self,
        caller: &Caller,
    ) -> ApiResult<(berth_catalog::query::ManifestView, usize)> {
        let (mut view, signatures, annotated) = self
            .with(|r, c, name, digest| {
                let view = c
                    .manifest(name, digest)
                    .map_err(catalog_error)?
                    .ok_or_else(|| ApiError::new(Code::ManifestUnknown).detail(digest))?;
                let signatures = r.meta.signatures(name, digest)?.len();
                let mut annotated = Vec::with_capacity(view.images.len());
                for image in &view.images {
                    annotated.push(image.base_image.is_some() && names_base(r, name, image)?);
                }
                Ok((view, signatures, annotated))
            })
            .await?;
        for (image, annotated) in view.images.iter_mut().zip(annotated) {
            let hidden = !annotated
                && image
                    .base_image
                    .as_deref()
                    .and_then(|b| b.rsplit_once('@'))
                    .is_some_and(|(repo, _)| !caller.may(repo, Action::Pull));
            if hidden {
                image.base_image = None;
            }
        }
        Ok((view, signatures))
    }

    /// The overview as JSON ([`Image::overview_view`] and `signatures`).
    async fn overview(&self, caller: &Caller) -> ApiResult {
        let (view, signatures) = self.overview_view(caller).await?;
        let status = match view.status.as_str() {
            "pending" => StatusCode::ACCEPTED,
            _ => StatusCode::OK,
        };
        let mut v = serde_json::to_value(view).map_err(ApiError::internal)?;
        v["signatures"] = json!(signatures);
        Ok((status, axum::Json(v)).into_response())
    }

    /// `/signatures`: `{"digest", "signatures": [SignatureInfo…]}`, any manifest
    /// (an index too: signatures sign what was pushed).
    async fn signatures(&self) -> ApiResult {
        self.with(|_, _, _, _| Ok(())).await?;
        let rows =
            crate::signature_info::signature_rows(&self.reg, self.name.as_str(), &self.digest)
                .await?;
        Ok(
            axum::Json(json!({ "digest": self.digest.to_string(), "signatures": rows }))
                .into_response(),
        )
    }

    /// Where this image's inventory stands (inside [`Image::with`]).
    pub(crate) fn inventoried(
        c: &berth_catalog::Catalog,
        name: &str,
        digest: &Digest,
    ) -> ApiResult<Inventoried> {
        let d = digest.to_string();
        let scan = c.db().scan(name, &d).map_err(catalog_error)?;
        if let Some(s) = &scan {
            if !s.children.is_empty() {
                return Ok(Inventoried::Index(
                    s.children
                        .iter()
                        .map(|c| json!({"digest": c.digest, "platform": c.platform}))
                        .collect(),
                ));
            }
            if s.status == ScanStatus::Skipped {
                return Ok(Inventoried::Skipped);
            }
        }
        Ok(match c.db().inventory(&d).map_err(catalog_error)? {
            Some(stored) => match stored.result.clone() {
                Ok(inv) => Inventoried::Ok(Box::new(stored), Box::new(inv)),
                Err(why) => Inventoried::Failed(why),
            },
            None => match scan {
                Some(s) if s.status == ScanStatus::Failed => {
                    Inventoried::Failed(s.error.unwrap_or_else(|| "the scan failed".into()))
                }
                _ => Inventoried::Pending,
            },
        })
    }

    /// The inventory, or the answer that stands in for it.
    async fn inventory(
        &self,
    ) -> ApiResult<Result<(Box<StoredInventory>, berth_inventory::Inventory), Response>> {
        let digest = self.digest.clone();
        let state = self
            .with(|_, c, name, d| Image::inventoried(c, name, d))
            .await?;
        match state {
            Inventoried::Ok(stored, inv) => Ok(Ok((stored, *inv))),
            other => other.refusal(&digest).map(Err),
        }
    }

    /// `/packages[?q=NAME][&diff=[REPO@]DIGEST]`.
    async fn packages(&self, caller: &Caller, query: &[(String, String)]) -> ApiResult {
        let (_, inv) = match self.inventory().await? {
            Ok(i) => i,
            Err(answer) => return Ok(answer),
        };
        let needle = query_get(query, "q").unwrap_or("").to_string();
        let digest = self.digest.to_string();
        let Some(other) = query_get(query, "diff") else {
            let packages: Vec<_> = inv
                .packages
                .into_iter()
                .filter(|p| needle.is_empty() || p.name.contains(&needle))
                .collect();
            return Ok(axum::Json(json!({
                "digest": digest, "status": "ok", "total": packages.len(), "packages": packages,
            }))
            .into_response());
        };
        // The other image: `DIGEST` in this repository, or `REPO@DIGEST`, which the
        // caller must be able to read too.
        let (repo, d) = match other.rsplit_once('@') {
            Some((r, d)) => (r.to_string(), d),
            None => (self.name.to_string(), other),
        };
        let other_digest = routes::digest(d)?;
        let other_repo = readable(&self.reg, caller, &repo).await?;
        let theirs = Image {
            reg: self.reg.clone(),
            catalog: self.catalog.clone(),
            name: other_repo,
            digest: other_digest,
        };
        let (_, base) = match theirs.inventory().await? {
            Ok(i) => i,
            Err(answer) => return Ok(answer),
        };
        let mut diff = berth_catalog::query::diff_packages(&base.packages, &inv.packages);
        if !needle.is_empty() {
            diff.added.retain(|p| p.name.contains(&needle));
            diff.removed.retain(|p| p.name.contains(&needle));
            diff.changed.retain(|(a, _)| a.name.contains(&needle));
        }
        let changed: Vec<Value> = diff
            .changed
            .iter()
            .map(|(from, to)| json!({"name": to.name, "arch": to.arch, "from": from, "to": to}))
            .collect();
        Ok(axum::Json(json!({
            "digest": digest,
            "diff": format!("{}@{}", theirs.name, theirs.digest),
            "status": "ok",
            "added": diff.added,
            "removed": diff.removed,
            "changed": changed,
        }))
        .into_response())
    }

    /// `/containerfile`: the real build file when the image carries one, otherwise
    /// rebuilt from the config's history (`reconstructed: true`).
    async fn containerfile(&self) -> ApiResult {
        let (_, inv) = match self.inventory().await? {
            Ok(i) => i,
            Err(answer) => return Ok(answer),
        };
        match inv.containerfile {
            Some(cf) => Ok(axum::Json(json!({
                "digest": self.digest.to_string(), "status": "ok", "containerfile": cf,
            }))
            .into_response()),
            None => Err(ApiError::new(Code::ManifestUnknown)
                .message("no Containerfile")
                .detail(format!(
                    "{} carries no build file and no history to rebuild one from",
                    self.digest
                ))),
        }
    }

    /// `/vulnerabilities[?fixable=true][&severity=critical,high]`.
    async fn vulnerabilities(&self, query: &[(String, String)]) -> ApiResult {
        let mut filter = VulnFilter::default();
        for (k, v) in query {
            match k.as_str() {
                "fixable" => {
                    filter.fixable = match v.as_str() {
                        "true" | "1" => true,
                        "false" | "0" | "" => false,
                        _ => return Err(bad_request(format!("fixable={v}: true or false"))),
                    }
                }
                "severity" => {
                    for s in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                        let s = s.to_ascii_lowercase();
                        if !["critical", "high", "medium", "low", "unknown"].contains(&s.as_str()) {
                            return Err(bad_request(format!(
                                "severity={v}: critical, high, medium, low or unknown, comma-separated"
                            )));
                        }
                        filter.severities.push(s);
                    }
                }
                _ => {}
            }
        }
        if let Err(answer) = self.inventory().await? {
            return Ok(answer);
        }
        let report = self
            .with(move |_, c, name, d| {
                c.vulnerabilities(name, &d.to_string(), &filter)
                    .map_err(catalog_error)
            })
            .await?;
        match report {
            Some(r) => {
                let mut v = serde_json::to_value(r).map_err(ApiError::internal)?;
                v["status"] = json!("ok");
                Ok(axum::Json(v).into_response())
            }
            // Removed between the two looks.
            None => Ok(Inventoried::Pending.refusal(&self.digest)?),
        }
    }

    /// `/sbom?format=spdx|cyclonedx` (SPDX when not said), made from the stored
    /// inventory as `berth sbom` makes it from the layers.
    pub(crate) async fn sbom(
        &self,
        headers: &axum::http::HeaderMap,
        query: &[(String, String)],
    ) -> ApiResult {
        let format: berth_sbom::Format = query_get(query, "format")
            .unwrap_or("spdx")
            .parse()
            .map_err(bad_request)?;
        let (stored, inv) = match self.inventory().await? {
            Ok(i) => i,
            Err(answer) => return Ok(answer),
        };
        // Named as clients reach it (`HOST/NAME`) when the Host header is a plain
        // authority, else by its repository name alone.
        let name = match headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.parse::<axum::http::uri::Authority>().ok())
        {
            Some(host) => format!("{host}/{}", self.name),
            None => self.name.to_string(),
        };
        let subject = berth_sbom::SbomSubject {
            name,
            digest: self.digest.to_string(),
            created: stored.facts.created.clone(),
        };
        // Off the async threads: a document of a million packages takes its time.
        let body = self
            .reg
            .blocking(move |_| {
                serde_json::to_vec(&format.document(&inv, &subject)).map_err(ApiError::internal)
            })
            .await?;
        Ok((
            [(header::CONTENT_TYPE, routes::hv(format.media_type()))],
            body,
        )
            .into_response())
    }
}

/// Whether `image`'s manifest (in repository `name`) names its base image in its
/// annotations (`org.opencontainers.image.base.name`), which the scan takes before any
/// base found by layers.
fn names_base(
    reg: &Registry,
    name: &str,
    image: &berth_catalog::query::ImageDetail,
) -> ApiResult<bool> {
    let Ok(digest) = image.summary.digest.parse::<Digest>() else {
        return Ok(false);
    };
    let Some(stored) = reg.meta.manifest_by_digest(name, &digest)? else {
        return Ok(false);
    };
    #[derive(serde::Deserialize)]
    struct Annotated {
        #[serde(default)]
        annotations: std::collections::BTreeMap<String, String>,
    }
    Ok(
        serde_json::from_slice::<Annotated>(&stored.content).is_ok_and(|m| {
            m.annotations
                .contains_key("org.opencontainers.image.base.name")
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::Part::*;
    use super::Target::*;
    use super::*;

    #[test]
    fn paths_are_read_from_the_right() {
        assert_eq!(Target::parse("a/b"), Some(Repository("a/b")));
        assert_eq!(Target::parse("a/b/"), Some(Repository("a/b")));
        assert_eq!(
            Target::parse("a/b/manifests/sha256:x"),
            Some(Manifest("a/b", "sha256:x", None))
        );
        assert_eq!(
            Target::parse("a/manifests/b/manifests/sha256:x/packages"),
            Some(Manifest("a/manifests/b", "sha256:x", Some(Packages)))
        );
        assert_eq!(
            Target::parse("a/manifests/sha256:x/vulnerabilities"),
            Some(Manifest("a", "sha256:x", Some(Vulnerabilities)))
        );
        assert_eq!(
            Target::parse("a/manifests/sha256:x/containerfile"),
            Some(Manifest("a", "sha256:x", Some(Containerfile)))
        );
        assert_eq!(
            Target::parse("a/manifests/sha256:x/sbom"),
            Some(Manifest("a", "sha256:x", Some(Sbom)))
        );
        assert_eq!(
            Target::parse("a/manifests/sha256:x/signatures"),
            Some(Manifest("a", "sha256:x", Some(Signatures)))
        );
        assert_eq!(Target::parse("a/manifests/sha256:x/other"), None);
        assert_eq!(Target::parse("a/manifests/"), None);
        assert_eq!(Target::parse("a/b/allowlist"), Some(Allowlist("a/b", None)));
        assert_eq!(
            Target::parse("a/b/allowlist/CVE-2024-1"),
            Some(Allowlist("a/b", Some("CVE-2024-1")))
        );
        assert_eq!(Target::parse("a/allowlist/x/y"), None);
        assert_eq!(Target::parse(""), None);
    }
}
