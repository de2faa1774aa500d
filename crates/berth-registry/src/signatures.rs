//! The registry signature extension (OpenShift's, which containers/image speaks):
//! `GET|PUT /extensions/v2/<name>/signatures/<digest>`. A registry that answers its
//! `/v2/` ping with `X-Registry-Supports-Signatures: 1` is where `skopeo copy
//! --sign-by` and `podman push --sign-by` put simple signatures, and where they read
//! them back, with no lookaside server to run.
//!
//! Signatures are opaque here: the registry stores what an authorized pusher sent and
//! serves it to whoever may pull the manifest. Whether one is valid is the reader's
//! policy to decide. A new one tells the catalog, whose search marks signed
//! repositories.
//!
//! Signatures go with their manifest, and are never replaced. berth adds a `DELETE`
//! (of one signature with `?name=<name>`, of all without; delete permission), which
//! the extension lacks: a pusher's junk signatures fill a manifest's 32 slots, and
//! a retired key's signatures would otherwise stay until the image goes.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use berth_auth::{Action, Level};
use berth_image::{Digest, RepositoryName};
use berth_store::{SignatureAdded, StoredSignature};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult, Code};
use crate::metrics::RouteLabel;
use crate::routes::{self, authorized};
use crate::Registry;

/// The header of the `/v2/` ping that tells clients the extension is here.
pub const SUPPORTS_SIGNATURES: (&str, &str) = ("x-registry-supports-signatures", "1");

/// One signature's bytes at most. Simple signatures are about a kilobyte.
const MAX_SIGNATURE_BYTES: usize = 64 * 1024;
/// Signatures one manifest may carry, so that a list stays well under the 4 MiB
/// containers/image reads at most.
const MAX_SIGNATURES: usize = 32;
/// The one format and version of the extension.
const SCHEMA_VERSION: u32 = 2;
const TYPE_ATOMIC: &str = "atomic";

/// One entry on the wire (`extensionSignature` in containers/image).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireSignature {
    #[serde(rename = "schemaVersion")]
    version: u32,
    name: String,
    #[serde(rename = "type")]
    kind: String,
    /// base64 of the signature blob.
    content: String,
}

#[derive(Serialize)]
struct WireList {
    signatures: Vec<WireSignature>,
}

/// Every `/extensions/v2/…` request comes here.
pub(crate) async fn endpoint(State(reg): State<Arc<Registry>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let rest = &path["/extensions/v2/".len()..];
    let Some((name, d)) = rest
        .rsplit_once("/signatures/")
        .filter(|(_, d)| !d.contains('/'))
    else {
        return routes::not_found().await;
    };
    let method = req.method().clone();
    let action = match method {
        Method::PUT => Action::Push,
        Method::DELETE => Action::Delete,
        _ => Action::Pull,
    };
    let query = req.uri().query().map(str::to_owned);
    if let Err(e) = routes::repo(name) {
        return e.into_response();
    }
    let (repo_path, name, d) = (name, name.to_owned(), d.to_owned());
    let mut resp =
        authorized(
            &reg,
            req,
            repo_path,
            action,
            |reg, req, caller| async move {
                let repo = routes::repo(&name)?;
                let digest = routes::digest(&d)?;
                match method {
                    Method::GET => list(&reg, repo.as_str(), &digest).await,
                    Method::PUT => put(&reg, repo.as_str(), &digest, req).await,
                    Method::DELETE => {
                        let admin = caller.level(repo.as_str()) == Some(Level::Admin);
                        delete(&reg, &repo, &digest, query, admin).await
                    }
                    _ => Err(ApiError::new(Code::Unsupported)
                        .detail(format!("{method} not allowed here"))),
                }
            },
        )
        .await;
    resp.extensions_mut().insert(RouteLabel("signatures"));
    resp
}

/// The signatures of a manifest; an empty list when it has none (containers/image
/// treats anything but 200 as a failed read, even for an unsigned image).
async fn list(reg: &Arc<Registry>, repo: &str, digest: &Digest) -> ApiResult {
    let (r, d) = (repo.to_owned(), digest.clone());
    let stored = reg.blocking(move |reg| reg.meta.signatures(&r, &d)).await?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let list = WireList {
        signatures: stored
            .into_iter()
            .map(|s| WireSignature {
                version: SCHEMA_VERSION,
                name: s.name,
                kind: TYPE_ATOMIC.into(),
                content: b64.encode(s.content),
            })
            .collect(),
    };
    Ok(axum::Json(list).into_response())
}

/// Adds one signature (containers/image PUTs them one at a time and expects 201).
async fn put(reg: &Arc<Registry>, repo: &str, digest: &Digest, req: Request) -> ApiResult {
    let invalid = |why: String| ApiError::new(Code::ManifestInvalid).detail(why);
    // base64 and JSON around the blob: a third more, plus the name.
    let limit = MAX_SIGNATURE_BYTES * 4 / 3 + 4096;
    let too_big = || {
        invalid(format!(
            "a signature is limited to {MAX_SIGNATURE_BYTES} bytes"
        ))
        .status(StatusCode::PAYLOAD_TOO_LARGE)
    };
    let body = http_body_util::Limited::new(req.into_body(), limit)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                too_big()
            } else {
                invalid(format!("reading the signature: {e}"))
            }
        })?
        .to_bytes();
    let sig: WireSignature = serde_json::from_slice(&body)
        .map_err(|e| invalid(format!("not a signature of the extension: {e}")))?;
    if sig.version != SCHEMA_VERSION || sig.kind != TYPE_ATOMIC {
        return Err(invalid(format!(
            "unsupported signature schemaVersion {} type {:?} (version {SCHEMA_VERSION}, type {TYPE_ATOMIC:?} are)",
            sig.version, sig.kind
        )));
    }
    check_name(&sig.name, digest).map_err(invalid)?;
    let content = base64::engine::general_purpose::STANDARD
        .decode(sig.content.as_bytes())
        .map_err(|e| invalid(format!("signature content is not base64: {e}")))?;
    if content.len() > MAX_SIGNATURE_BYTES {
        return Err(too_big());
    }
    if content.is_empty() {
        return Err(invalid("a signature must not be empty".into()));
    }
    let stored = StoredSignature {
        name: sig.name,
        content,
    };
    let (r, d) = (repo.to_owned(), digest.clone());
    let added = reg
        .blocking(move |reg| reg.meta.add_signature(&r, &d, &stored, MAX_SIGNATURES))
        .await
        .map_err(|e| {
            if e.code == Code::ManifestUnknown {
                ApiError::new(Code::ManifestUnknown).detail(format!("{repo}@{digest}"))
            } else {
                e
            }
        })?;
    if added == SignatureAdded::Added {
        // The catalog's search row says whether the repository is signed.
        if let Some(catalog) = &reg.catalog {
            catalog.notify_signatures(repo);
        }
    }
    match added {
        SignatureAdded::Added | SignatureAdded::Unchanged => {
            Ok((StatusCode::CREATED, [(header::CONTENT_LENGTH, "0")]).into_response())
        }
        SignatureAdded::NameTaken => Err(ApiError::new(Code::Denied)
            .status(StatusCode::CONFLICT)
            .detail("a signature of that name exists; signatures are never replaced")),
        SignatureAdded::Full => Err(ApiError::new(Code::Denied).detail(format!(
            "{repo}@{digest} has {MAX_SIGNATURES} signatures, the most one manifest may carry"
        ))),
    }
}

/// Deletes the signature named by `?name=`, or every signature of the manifest:
/// `202 Accepted` as a manifest `DELETE` answers, `404` when there was none to delete.
/// A verdict of content trust made from a deleted signature may serve the manifest
/// for up to a minute more (verdicts are cached). Under an immutable tag (on the
/// manifest or an index naming it) only an `admin` of the repository may: a pusher
/// could otherwise strip a release of its signatures, which where signatures are
/// required stops its tag pulling, while an admin can still clear junk a pusher left.
async fn delete(
    reg: &Arc<Registry>,
    name: &RepositoryName,
    digest: &Digest,
    query: Option<String>,
    admin: bool,
) -> ApiResult {
    let repo = name.as_str();
    // A mistyped key must not widen a delete of one signature to all of them.
    let pairs = routes::query_pairs(query.as_deref());
    if let Some((k, _)) = pairs.iter().find(|(k, _)| k != "name") {
        return Err(ApiError::new(Code::Unsupported)
            .status(StatusCode::BAD_REQUEST)
            .detail(format!(
                "unknown query parameter {k:?} (name=<signature name> is known)"
            )));
    }
    let signature = routes::query_get(&pairs, "name").map(str::to_owned);
    if let Some(n) = &signature {
        check_name(n, digest).map_err(|why| ApiError::new(Code::ManifestInvalid).detail(why))?;
    }
    let setting = match admin {
        true => None,
        false => crate::policy::immutable(reg, repo)?,
    };
    let guard = setting.clone();
    let (r, d, n) = (repo.to_owned(), digest.clone(), signature.clone());
    let deleted = reg
        .blocking(move |reg| {
            Ok::<_, ApiError>(
                reg.meta
                    .delete_signatures_guarded(&r, &d, n.as_deref(), &|tag| {
                        guard.as_ref().is_some_and(|s| s.rule_for(tag).is_some())
                    }),
            )
        })
        .await?
        .map_err(|e| crate::manifests::immutable_error(name, e, setting.as_ref()))?;
    if deleted == 0 {
        let what =
            signature.map_or_else(|| "no signatures".into(), |n| format!("no signature {n}"));
        return Err(
            ApiError::new(Code::ManifestUnknown).message(format!("{repo}@{digest} has {what}"))
        );
    }
    if let Some(catalog) = &reg.catalog {
        catalog.notify_deleted(repo, None);
    }
    Ok((StatusCode::ACCEPTED, [(header::CONTENT_LENGTH, "0")]).into_response())
}

/// A name is `<the manifest's digest>@<hex>`, as containers/image makes them.
fn check_name(name: &str, digest: &Digest) -> Result<(), String> {
    let suffix = name
        .strip_prefix(&digest.to_string())
        .and_then(|s| s.strip_prefix('@'))
        .ok_or_else(|| format!("signature name {name:?} must be {digest}@<hex>"))?;
    if suffix.is_empty() || suffix.len() > 64 || !suffix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "signature name {name:?} must end in @ and 1 to 64 hex digits"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_digest_and_hex() {
        let d = Digest::sha256_of(b"m");
        assert!(check_name(&format!("{d}@0123456789abcdef0123456789abcdef"), &d).is_ok());
        let other = Digest::sha256_of(b"n");
        assert!(check_name(&format!("{other}@01"), &d).is_err());
        assert!(check_name(&format!("{d}@"), &d).is_err());
        assert!(check_name(&format!("{d}@../x"), &d).is_err());
        assert!(check_name(&d.to_string(), &d).is_err());
    }
}
