//! A repository's allow-list: findings its maintainers have judged not to matter
//! (not reachable, mitigated), each with a reason and an optional expiry.
//!
//! - `GET /api/v1/repositories/NAME/allowlist`: every entry, expired ones included
//!   (`in_force` says which apply), for anyone who may read the repository;
//! - `PUT /api/v1/repositories/NAME/allowlist/FINDING_ID` with
//!   `{"reason": TEXT, "expires_at": UNIX_SECONDS | RFC3339 | null}`;
//! - `DELETE /api/v1/repositories/NAME/allowlist/FINDING_ID`.
//!
//! Changing it takes push on the repository: whoever may replace the images may
//! judge their findings (a namespace admin holds push too). An entry covers the
//! finding's id or any of its aliases (`CVE-…` for a `DSA-…`), is applied when
//! answering (counts and grades leave it out, `/vulnerabilities` marks it with
//! `allowed`), and stops applying at its expiry without a rematch.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use berth_auth::Action;
use berth_catalog::AllowEntry;
use berth_image::RepositoryName;
use serde_json::{json, Value};

use super::repositories::{bad_request, catalog, catalog_error};
use crate::access::{self, Caller};
use crate::error::{ApiError, ApiResult, Code};
use crate::Registry;

/// Largest request body, and the bounds of what it holds.
const MAX_BODY: usize = 16 * 1024;
const MAX_REASON: usize = 4096;
const MAX_ID: usize = 128;

/// A finding id as OSV and the distributions write them (`CVE-2024-1234`,
/// `DSA-5532-1`, `GHSA-xxxx-xxxx-xxxx`, `RHSA-2024:0001`).
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// `expires_at`: unix seconds or an RFC 3339 date, in the future; none for never.
fn expiry(v: &Value, now: i64) -> Result<Option<i64>, String> {
    let at = match v {
        Value::Null => return Ok(None),
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| format!("expires_at {n}: whole unix seconds"))?,
        Value::String(s) => humantime::parse_rfc3339_weak(s)
            .map_err(|e| format!("expires_at {s:?}: {e} (RFC 3339, e.g. 2030-01-31T00:00:00Z)"))?
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| format!("expires_at {s:?} is before 1970"))?
            .as_secs() as i64,
        other => return Err(format!("expires_at {other}: unix seconds or RFC 3339 text")),
    };
    if at <= now {
        return Err(format!("expires_at {v} is not in the future"));
    }
    Ok(Some(at))
}

fn view(e: &AllowEntry, now: i64) -> Value {
    let mut v = serde_json::to_value(e).unwrap_or_default();
    v["in_force"] = json!(e.expires_at.is_none_or(|t| t > now));
    v
}

pub(super) async fn handle(
    reg: &Arc<Registry>,
    caller: &Caller,
    name: &RepositoryName,
    id: Option<&str>,
    req: Request,
) -> ApiResult {
    let catalog = catalog(reg)?;
    let now = berth_store::unix_now();
    let repo = name.to_string();
    let method = req.method().clone();
    let Some(id) = id else {
        if method != Method::GET {
            return Err(ApiError::new(Code::Unsupported).detail("the allow-list takes GET"));
        }
        let entries = reg
            .blocking(move |_| catalog.db().allowlist_all(&repo).map_err(catalog_error))
            .await?;
        let list: Vec<Value> = entries.iter().map(|e| view(e, now)).collect();
        return Ok(
            axum::Json(json!({"repository": name.as_str(), "entries": list})).into_response(),
        );
    };
    if method != Method::PUT && method != Method::DELETE {
        return Err(
            ApiError::new(Code::Unsupported).detail("an allow-list entry takes PUT or DELETE")
        );
    }
    if !valid_id(id) {
        return Err(bad_request(format!(
            "{id:?} is not a finding id (letters, digits, '-', '_', '.', ':'; at most {MAX_ID})"
        )));
    }
    access::require(
        reg,
        caller,
        req.headers(),
        req.extensions(),
        &repo,
        Action::Push,
    )?;
    let who = caller.principal.to_string();
    let id = id.to_string();
    if method == Method::DELETE {
        let (r, i) = (repo.clone(), id.clone());
        let removed = reg
            .blocking(move |_| catalog.db().disallow(&r, &i).map_err(catalog_error))
            .await?;
        if !removed {
            return Err(ApiError::new(Code::ManifestUnknown)
                .message("no such allow-list entry")
                .detail(format!("{repo} has no allow-list entry for {id}")));
        }
        tracing::info!(target: "berth::audit", user = %who, repository = %repo, finding = %id, "allow-list entry removed");
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let body = axum::body::to_bytes(req.into_body(), MAX_BODY)
        .await
        .map_err(|_| bad_request(format!("the body is limited to {MAX_BODY} bytes")))?;
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| bad_request(format!("the body is not JSON: {e}")))?;
    let reason = body["reason"].as_str().map(str::trim).unwrap_or("");
    if reason.is_empty() || reason.len() > MAX_REASON {
        return Err(bad_request(format!(
            "\"reason\": why this finding does not matter here (1 to {MAX_REASON} bytes)"
        )));
    }
    let entry = AllowEntry {
        repository: repo.clone(),
        finding_id: id.clone(),
        reason: reason.to_string(),
        expires_at: expiry(&body["expires_at"], now).map_err(bad_request)?,
        created_by: who.clone(),
        created_at: now,
    };
    let stored = entry.clone();
    reg.blocking(move |_| catalog.db().allow(&stored).map_err(catalog_error))
        .await?;
    tracing::info!(target: "berth::audit", user = %who, repository = %repo, finding = %id,
        expires_at = ?entry.expires_at, "allow-list entry set");
    Ok(axum::Json(view(&entry, now)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finding_ids_and_expiries() {
        for id in [
            "CVE-2024-1234",
            "DSA-5532-1",
            "RHSA-2024:0001",
            "GHSA-abcd-1234-wxyz",
        ] {
            assert!(valid_id(id), "{id}");
        }
        for id in ["", "a b", "../x", "CVE/1", &"x".repeat(MAX_ID + 1)] {
            assert!(!valid_id(id), "{id}");
        }
        assert_eq!(expiry(&Value::Null, 100), Ok(None));
        assert_eq!(expiry(&json!(200), 100), Ok(Some(200)));
        assert!(expiry(&json!(50), 100)
            .unwrap_err()
            .contains("not in the future"));
        assert_eq!(
            expiry(&json!("2030-01-01T00:00:00Z"), 100),
            Ok(Some(1_893_456_000))
        );
        assert!(expiry(&json!("soon"), 100)
            .unwrap_err()
            .contains("RFC 3339"));
        assert!(expiry(&json!(true), 100).is_err());
    }
}
