//! The OCI 1.1 referrers API (`GET /v2/<name>/referrers/<digest>`): the manifests whose
//! `subject` is a manifest (signatures, SBOMs, attestations), for copying them along.

use berth_image::Digest;
use reqwest::{Method, StatusCode};

use crate::error::RemoteError;
use crate::registry::{pull_scope, read_limited, status_error, Pages, Registry, MAX_PAGE};

/// One manifest that refers to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrer {
    pub media_type: String,
    pub digest: Digest,
    pub artifact_type: Option<String>,
}

impl Registry {
    /// The manifests of `repo` whose subject is `digest`, every page; `None` when the
    /// registry does not answer the referrers API (404, 405, 400: docker-registry 2
    /// has none).
    pub async fn referrers(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<Option<Vec<Referrer>>, RemoteError> {
        let what = format!("referrers of {}/{repo}@{digest}", self.host());
        let mut pages = Pages::new(&what);
        let mut next = Some(format!("/v2/{repo}/referrers/{digest}"));
        let mut out = Vec::new();
        while let Some(path) = next.take() {
            let r = self
                .send(
                    Method::GET,
                    &path,
                    Some(&pull_scope(repo)),
                    Some("application/vnd.oci.image.index.v1+json"),
                )
                .await?;
            match r.status() {
                s if s.is_success() => {}
                StatusCode::NOT_FOUND
                | StatusCode::METHOD_NOT_ALLOWED
                | StatusCode::BAD_REQUEST
                    if out.is_empty() =>
                {
                    return Ok(None)
                }
                _ => return Err(status_error(r, &what).await),
            }
            next = pages.next(r.headers())?;
            let body = read_limited(r, MAX_PAGE, &what).await?;
            let v: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|e| RemoteError::Invalid(format!("{what}: {e}")))?;
            for m in v["manifests"].as_array().into_iter().flatten() {
                let digest = m["digest"]
                    .as_str()
                    .unwrap_or_default()
                    .parse()
                    .map_err(|e| RemoteError::Invalid(format!("{what}: a digest: {e}")))?;
                out.push(Referrer {
                    media_type: m["mediaType"].as_str().unwrap_or_default().to_string(),
                    digest,
                    artifact_type: m["artifactType"].as_str().map(str::to_string),
                });
            }
            pages.count(out.len())?;
        }
        Ok(Some(out))
    }
}
