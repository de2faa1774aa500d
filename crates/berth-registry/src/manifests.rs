//! Manifests: `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<reference>`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_image::{Digest, Manifest, Reference, RepositoryName};
use berth_store::{NewManifest, StoreError, StoredManifest};
use http_body_util::BodyExt;

use crate::error::{ApiError, ApiResult, Code};
use crate::routes::{hv, location};
use crate::{Registry, MAX_MANIFEST_BYTES};

fn unknown(name: &RepositoryName, r: &str) -> ApiError {
    ApiError::new(Code::ManifestUnknown).detail(format!("{name}:{r}"))
}

/// Reads a manifest by tag or digest. A reference that is neither is simply not there
/// (404): clients probe with odd references and expect "unknown", not "invalid".
fn lookup(reg: &Registry, name: &RepositoryName, r: &str) -> ApiResult<StoredManifest> {
    let found = match r.parse::<Reference>() {
        Ok(Reference::Tag(t)) => reg.meta.manifest_by_tag(name.as_str(), t.as_str())?,
        Ok(Reference::Digest(d)) => reg.meta.manifest_by_digest(name.as_str(), &d)?,
        Err(_) => None,
    };
    match found {
        Some(m) => Ok(m),
        None if !reg.meta.repository_exists(name.as_str())? => {
            Err(ApiError::new(Code::NameUnknown).detail(name))
        }
        None => Err(unknown(name, r)),
    }
}

pub(crate) async fn get(
    reg: &Arc<Registry>,
    name: &RepositoryName,
    r: &str,
    with_body: bool,
) -> ApiResult {
    let m = lookup(reg, name, r)?;
    crate::trust::check(reg, name.as_str(), &m).await?;
    if !with_body {
        let headed = crate::gc::Headed::Manifest;
        crate::gc::renew_on_head(reg, name, &m.digest, headed, m.created_at).await?;
    }
    let len = m.content.len();
    let builder = Response::builder()
        .header(header::CONTENT_TYPE, hv(&m.media_type))
        .header(header::CONTENT_LENGTH, len)
        .header("docker-content-digest", hv(&m.digest.to_string()))
        .header(header::ETAG, hv(&format!("\"{}\"", m.digest)));
    let body = if with_body {
        reg.metrics.bytes_sent(len as u64);
        Body::from(m.content)
    } else {
        Body::empty()
    };
    builder.body(body).map_err(ApiError::internal)
}

pub(crate) async fn put(
    reg: &Arc<Registry>,
    name: &RepositoryName,
    r: &str,
    req: Request,
    admin: bool,
) -> ApiResult {
    let reference: Reference = r.parse().map_err(|e: berth_image::NameError| match e {
        berth_image::NameError::Digest(e) => ApiError::new(Code::DigestInvalid).detail(e),
        e => ApiError::new(Code::ManifestInvalid).detail(e),
    })?;
    let too_big = || {
        ApiError::new(Code::ManifestInvalid)
            .status(StatusCode::PAYLOAD_TOO_LARGE)
            .detail(format!(
                "manifests are limited to {MAX_MANIFEST_BYTES} bytes"
            ))
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_MANIFEST_BYTES) {
        // Read (a bounded part of) what comes, so that the client hears the 413
        // rather than a connection closed under its upload.
        return crate::uploads::refuse(req.into_body(), too_big()).await;
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = http_body_util::Limited::new(req.into_body(), MAX_MANIFEST_BYTES)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                too_big()
            } else {
                ApiError::new(Code::ManifestInvalid).detail(format!("reading the manifest: {e}"))
            }
        })?
        .to_bytes();
    reg.metrics.bytes_received(body.len() as u64);

    let algorithm = match &reference {
        Reference::Digest(d) => d.algorithm(),
        Reference::Tag(_) => berth_image::Algorithm::Sha256,
    };
    let digest = Digest::of(algorithm, &body);
    if let Reference::Digest(d) = &reference {
        if d != &digest {
            return Err(ApiError::new(Code::DigestInvalid).detail(format!(
                "manifest digest is {digest}, the reference says {d}"
            )));
        }
    }
    let manifest = Manifest::parse(content_type.as_deref(), &body)
        .map_err(|e| ApiError::new(Code::ManifestInvalid).detail(e))?;

    let new = NewManifest::new(digest.clone(), &manifest, body.to_vec());
    let tag = match &reference {
        Reference::Tag(t) => Some(t.to_string()),
        Reference::Digest(_) => None,
    };
    if let Some(t) = &tag {
        keep_protected_signatures(reg, name, t, admin, Some(&manifest))?;
    }
    // Immutable tags: checked in the store's write transaction, so of two pushes of
    // different manifests to a new immutable tag only the first lands.
    let setting = match &tag {
        Some(t) => {
            crate::policy::immutable(reg, name.as_str())?.filter(|s| s.rule_for(t).is_some())
        }
        None => None,
    };
    let n = name.to_string();
    let pushed_tag = tag.clone();
    let immutable = setting.is_some();
    // A manifest counts toward its namespace's quota as a blob does, checked in the
    // same write transaction.
    let quota = crate::policy::quota_of(reg, name.as_str())?;
    reg.blocking(move |r| {
        let quota = quota.as_ref().map(|(ns, q)| (ns.as_str(), *q));
        Ok::<_, ApiError>(
            r.meta
                .put_manifest_guarded(&n, &new, tag.as_deref(), immutable, quota),
        )
    })
    .await?
    .map_err(|e| immutable_error(name, e, setting.as_ref()))?;
    // The catalog learns of it without the answer waiting (a full queue leaves it
    // for the catalog's backfill).
    if let Some(catalog) = &reg.catalog {
        catalog.notify(name.as_str(), &digest);
    }
    if let Some(t) = &pushed_tag {
        reg.replicate_pushed(name.as_str(), t);
    }

    let mut resp = (
        StatusCode::CREATED,
        [
            location(format!("/v2/{name}/manifests/{digest}")),
            (
                header::HeaderName::from_static("docker-content-digest"),
                hv(&digest.to_string()),
            ),
            (header::CONTENT_LENGTH, HeaderValue::from_static("0")),
        ],
    )
        .into_response();
    if let Some(subject) = &manifest.subject {
        resp.headers_mut()
            .insert("oci-subject", hv(&subject.digest.to_string()));
    }
    Ok(resp)
}

/// A store error as the API answers it; an immutable tag the store refused to move or
/// remove names its rule.
pub(crate) fn immutable_error(
    name: &RepositoryName,
    e: StoreError,
    setting: Option<&berth_auth::ImmutableRules>,
) -> ApiError {
    match (e, setting) {
        (StoreError::TagImmutable(tag), Some(s)) => {
            crate::policy::tag_denied(name.as_str(), &tag, s)
        }
        (StoreError::ChildOfImmutable { child, index, tag }, Some(s)) => {
            let (part, whole) = (format!("manifest {child}"), format!("index {index}"));
            crate::policy::part_denied(name.as_str(), &part, &whole, &tag, s)
        }
        (
            StoreError::BlobOfImmutable {
                blob,
                manifest,
                tag,
            },
            Some(s),
        ) => {
            let (part, whole) = (format!("blob {blob}"), format!("manifest {manifest}"));
            crate::policy::part_denied(name.as_str(), &part, &whole, &tag, s)
        }
        (e, _) => e.into(),
    }
}

pub(crate) async fn delete(
    reg: &Arc<Registry>,
    name: &RepositoryName,
    r: &str,
    admin: bool,
) -> ApiResult {
    let reference: Reference = r.parse().map_err(|_| unknown(name, r))?;
    // The sigstore signatures of an immutably tagged release stay (see
    // `policy::attachment_guard`): by their tag, or by the attachment's digest.
    let tags = match &reference {
        Reference::Tag(t) => vec![t.to_string()],
        Reference::Digest(d) => reg.meta.tags_on(name.as_str(), d)?,
    };
    for t in &tags {
        keep_protected_signatures(reg, name, t, admin, None)?;
    }
    let n = name.to_string();
    let digest = match &reference {
        Reference::Digest(d) => Some(d.clone()),
        Reference::Tag(_) => None,
    };
    let setting = crate::policy::immutable(reg, name.as_str())?;
    if let (Reference::Tag(t), Some(s)) = (&reference, &setting) {
        // An immutable tag never goes; one that is not there is simply unknown, and
        // nothing is deleted: a first push of the tag landing after this look must
        // not be removed by a delete that found nothing.
        if s.rule_for(t.as_str()).is_some() {
            let there = reg.meta.manifest_by_tag(name.as_str(), t.as_str())?;
            return Err(match there {
                Some(_) => crate::policy::tag_denied(name.as_str(), t.as_str(), s),
                None => unknown(name, r),
            });
        }
    }
    let guard = setting.clone();
    let deleted = reg
        .blocking(move |r| match reference {
            Reference::Tag(t) => Ok::<_, ApiError>(r.meta.delete_tag(&n, t.as_str())),
            Reference::Digest(d) => Ok(r.meta.delete_manifest_guarded(&n, &d, &|tag| {
                guard.as_ref().is_some_and(|s| s.rule_for(tag).is_some())
            })),
        })
        .await?
        .map_err(|e| immutable_error(name, e, setting.as_ref()))?;
    if deleted {
        if let Some(catalog) = &reg.catalog {
            catalog.notify_deleted(name.as_str(), digest.as_ref());
        }
        Ok((StatusCode::ACCEPTED, [(header::CONTENT_LENGTH, "0")]).into_response())
    } else {
        Err(unknown(name, r))
    }
}

/// Refuses a change to tag `t` that would take signatures away from an immutably
/// tagged release (`policy::attachment_guard`): a delete (`new` none), or a move to an
/// attachment that lacks one of the layers (signatures) the tag's manifest has.
fn keep_protected_signatures(
    reg: &Registry,
    name: &RepositoryName,
    t: &str,
    admin: bool,
    new: Option<&Manifest>,
) -> ApiResult<()> {
    let Some(refusal) = crate::policy::attachment_guard(reg, name.as_str(), t, admin)? else {
        return Ok(());
    };
    let Some(old) = reg.meta.manifest_by_tag(name.as_str(), t)? else {
        return Ok(());
    };
    let kept = new.is_some_and(|new| {
        Manifest::parse(Some(&old.media_type), &old.content).is_ok_and(|old| {
            old.layers
                .iter()
                .all(|l| new.layers.iter().any(|n| n.digest == l.digest))
        })
    });
    if kept {
        Ok(())
    } else {
        Err(refusal)
    }
}
