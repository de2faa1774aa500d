//! Simple signatures kept by a registry through its signature extension (OpenShift's,
//! which containers/image speaks: `GET|PUT /extensions/v2/<name>/signatures/<digest>`,
//! announced by `X-Registry-Supports-Signatures: 1` on the `/v2/` ping), and lookaside
//! signatures read over HTTP(S) (`signature-N` URLs from registries.d).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use berth_image::Digest;
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use crate::error::RemoteError;
use crate::registry::{check, pull_scope, read_limited, status_error, Body, Registry};

/// The most containers/image reads of one signature or of the extension's list
/// (`iolimits.MaxSignatureListBodySize`, `MaxSignatureBodySize`).
pub const MAX_SIGNATURE_BYTES: usize = 4 * 1024 * 1024;
const SCHEMA_VERSION: u32 = 2;
const TYPE_ATOMIC: &str = "atomic";

/// One entry on the wire (`extensionSignature`).
#[derive(Serialize, Deserialize)]
struct WireSignature {
    #[serde(rename = "schemaVersion")]
    version: u32,
    name: String,
    #[serde(rename = "type")]
    kind: String,
    /// base64 of the signature blob.
    content: String,
}

#[derive(Deserialize)]
struct WireList {
    #[serde(default)]
    signatures: Vec<WireSignature>,
}

/// A signature already on the registry: its name and blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionSignature {
    pub name: String,
    pub content: Vec<u8>,
}

fn path(repo: &str, digest: &Digest) -> String {
    format!("/extensions/v2/{repo}/signatures/{digest}")
}

impl Registry {
    /// The simple signatures the registry keeps for manifest `digest` of `repo`, in its
    /// order. Entries of another schema version or type are skipped, as
    /// containers/image skips them; anything but `200` is an error.
    pub async fn extension_signatures(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<Vec<ExtensionSignature>, RemoteError> {
        let what = format!("signatures of {}/{repo}@{digest}", self.host());
        let r = self
            .send(
                Method::GET,
                &path(repo, digest),
                Some(&pull_scope(repo)),
                None,
            )
            .await?;
        let r = check(r, &what).await?;
        let body = read_limited(r, MAX_SIGNATURE_BYTES, &what).await?;
        let list: WireList = serde_json::from_slice(&body)
            .map_err(|e| RemoteError::Invalid(format!("{what}: {e}")))?;
        let mut out = Vec::new();
        for s in list.signatures {
            if s.version != SCHEMA_VERSION || s.kind != TYPE_ATOMIC {
                continue;
            }
            let content = BASE64
                .decode(s.content.as_bytes())
                .map_err(|e| RemoteError::Invalid(format!("{what}: {}: {e}", s.name)))?;
            out.push(ExtensionSignature {
                name: s.name,
                content,
            });
        }
        Ok(out)
    }

    /// Adds one simple signature named `name` (`<digest>@<hex>`) to manifest `digest`.
    pub async fn put_extension_signature(
        &self,
        repo: &str,
        digest: &Digest,
        name: &str,
        content: &[u8],
    ) -> Result<(), RemoteError> {
        let what = format!("signature {name} of {}/{repo}", self.host());
        let body = serde_json::to_vec(&WireSignature {
            version: SCHEMA_VERSION,
            name: name.to_string(),
            kind: TYPE_ATOMIC.to_string(),
            content: BASE64.encode(content),
        })
        .map_err(|e| RemoteError::Invalid(format!("{what}: {e}")))?;
        let r = self
            .send_with(
                Method::PUT,
                &path(repo, digest),
                Some(&format!("repository:{repo}:pull,push")),
                None,
                Body::Bytes(body, "application/json".to_string()),
            )
            .await?;
        if r.status() == StatusCode::CREATED {
            return Ok(());
        }
        Err(status_error(r, &what).await)
    }

    /// A lookaside signature at `url` (http or https, this registry's TLS settings,
    /// no credentials: lookaside servers are plain web servers): `None` at `404`,
    /// which ends a `signature-N` sequence.
    pub async fn lookaside_get(&self, url: &str) -> Result<Option<Vec<u8>>, RemoteError> {
        let r = self
            .http()
            .get(url)
            .send()
            .await
            .map_err(|e| RemoteError::transport(url.to_string(), e))?;
        if r.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !r.status().is_success() {
            return Err(RemoteError::Status {
                url: url.to_string(),
                status: r.status().as_u16(),
                detail: Some("reading a lookaside signature".into()),
            });
        }
        Ok(Some(read_limited(r, MAX_SIGNATURE_BYTES, url).await?))
    }
}
