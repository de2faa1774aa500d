//! Enforcement of the content policies set in `berth_auth::policy`: immutable tags (in
//! `manifests` PUT and DELETE) and namespace quotas (in `uploads`, before a blob is
//! stored or linked). Both answer `403 DENIED` with a message naming the rule, since
//! clients print the message.

use std::sync::Arc;

use berth_auth::names::namespace_of;
use berth_auth::{Directory, ImmutableRules};
use berth_image::Digest;
use berth_store::{MetaStore, StoreError};
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult, Code};
use crate::Registry;

/// The snapshot of access-control data the policies live in.
fn directory(reg: &Registry) -> ApiResult<Arc<Directory>> {
    let (dir, _) = reg.auth.directory().map_err(ApiError::from)?;
    Ok(dir)
}

/// The immutable-tags settings in force for `repo`, if any.
pub(crate) fn immutable(reg: &Registry, repo: &str) -> ApiResult<Option<ImmutableRules>> {
    Ok(directory(reg)?.immutable_for(repo))
}

/// `403 DENIED`: `tag v1.0 of myorg/app is immutable (rule "v*" on myorg)`.
pub(crate) fn tag_denied(repo: &str, tag: &str, setting: &ImmutableRules) -> ApiError {
    let (rule, target) = setting.rule_for(tag).unwrap_or(("?", "?"));
    ApiError::new(Code::Denied).message(format!(
        "tag {tag} of {repo} is immutable (rule \"{rule}\" on {target})"
    ))
}

/// The manifest whose sigstore signatures tag `tag` holds (`sha256-<hex>.sig`, as
/// cosign names them), if it is such a tag.
pub(crate) fn signature_subject(tag: &str) -> Option<Digest> {
    let (algorithm, hex) = tag.strip_suffix(".sig")?.split_once('-')?;
    format!("{algorithm}:{hex}").parse().ok()
}

/// Where `tag` holds the sigstore signatures of a manifest that an immutable tag
/// protects (on it, or on an index above it) and the caller is not an admin of the
/// repository: the refusal for removing any of them. Where signatures are required,
/// a release whose signatures went stops pulling; so they may be added to (cosign moves
/// the tag to an attachment with one more layer) but not taken away, except by an admin.
pub(crate) fn attachment_guard(
    reg: &Registry,
    repo: &str,
    tag: &str,
    admin: bool,
) -> ApiResult<Option<ApiError>> {
    let Some(subject) = signature_subject(tag).filter(|_| !admin) else {
        return Ok(None);
    };
    let Some(setting) = immutable(reg, repo)? else {
        return Ok(None);
    };
    let protected = reg
        .meta
        .check_immutable(repo, &subject, &|t| setting.rule_for(t).is_some());
    let by = match protected {
        Ok(()) => return Ok(None),
        Err(StoreError::TagImmutable(t) | StoreError::ChildOfImmutable { tag: t, .. }) => t,
        Err(e) => return Err(e.into()),
    };
    let (rule, target) = setting.rule_for(&by).unwrap_or(("?", "?"));
    Ok(Some(ApiError::new(Code::Denied).message(format!(
        "tag {tag} of {repo} holds the signatures of {subject}, whose tag {by} is immutable \
         (rule \"{rule}\" on {target}): signatures may be added, and removed by an admin \
         of the repository only"
    ))))
}

/// `403 DENIED` for deleting a `part` (`manifest sha256:…`, `blob sha256:…`) that an
/// immutably tagged `whole` (`index sha256:…`, `manifest sha256:…`) needs: `manifest
/// sha256:… of myorg/app is part of index sha256:…, whose tag v1 is immutable (rule
/// "v*" on myorg)`. Deleting it would let the collector take what the tag pulls.
pub(crate) fn part_denied(
    repo: &str,
    part: &str,
    whole: &str,
    tag: &str,
    setting: &ImmutableRules,
) -> ApiError {
    let (rule, target) = setting.rule_for(tag).unwrap_or(("?", "?"));
    ApiError::new(Code::Denied).message(format!(
        "{part} of {repo} is part of {whole}, whose tag {tag} is immutable \
         (rule \"{rule}\" on {target})"
    ))
}

/// Refuses (`403 DENIED`, naming the quota) a blob of `size` bytes for `repo` when its
/// namespace has a quota that its usage plus `size` would exceed. A blob the namespace
/// already links (`digest`, when known) costs nothing. Reads only (index scans), so
/// it runs inline; two uploads racing may both pass and go over by one blob.
pub(crate) fn check_quota(
    reg: &Registry,
    repo: &str,
    digest: Option<&Digest>,
    size: u64,
) -> ApiResult<()> {
    match room(reg, repo, digest)? {
        Some(room) => room.check(size),
        None => Ok(()),
    }
}

/// `repo`'s namespace and its quota, when it has one.
pub(crate) fn quota_of(reg: &Registry, repo: &str) -> ApiResult<Option<(String, u64)>> {
    let ns = namespace_of(repo);
    Ok(directory(reg)?.quota(ns).map(|q| (ns.to_string(), q)))
}

/// What `repo`'s namespace leaves a blob: `None` when it has no quota, or the blob
/// (`digest`, when known) is one the namespace links already (it costs nothing). An
/// upload of unannounced length (a chunked body, no `Content-Length` to check first)
/// checks it as its bytes arrive, so that it is refused when it passes the quota, not
/// at its commit after it filled the disk.
pub(crate) fn room(reg: &Registry, repo: &str, digest: Option<&Digest>) -> ApiResult<Option<Room>> {
    let ns = namespace_of(repo);
    let Some(quota) = directory(reg)?.quota(ns) else {
        return Ok(None);
    };
    if let Some(d) = digest {
        if reg.meta.blob_in_namespace(ns, d)? {
            return Ok(None);
        }
    }
    let used = reg.meta.namespace_usage(ns)?;
    let namespace = ns.to_string();
    Ok(Some(Room {
        namespace,
        quota,
        used,
    }))
}

/// A namespace's quota and its usage, read once ([`room`]).
pub(crate) struct Room {
    namespace: String,
    quota: u64,
    used: u64,
}

impl Room {
    /// Refuses (`403 DENIED`, naming the quota) a blob that has reached `size` bytes.
    pub(crate) fn check(&self, size: u64) -> ApiResult<()> {
        if self.used.saturating_add(size) > self.quota {
            return Err(StoreError::QuotaExceeded {
                namespace: self.namespace.clone(),
                quota: self.quota,
                used: self.used,
                size,
            }
            .into());
        }
        Ok(())
    }
}

/// Usage per namespace as `/api/v1/usage` and `berth registry usage` answer it:
/// `{"namespaces": [{"namespace", "bytes", "quota"}]}`, bytes being the distinct
/// blobs and manifests its repositories hold. With `namespace`, that one (also when empty);
/// without, every namespace holding blobs or having a quota that `may` lets through.
pub fn usage_json(
    meta: &dyn MetaStore,
    dir: &Directory,
    namespace: Option<&str>,
    may: impl Fn(&str) -> bool,
) -> Result<Value, StoreError> {
    let rows = match namespace {
        Some(ns) => vec![(ns.to_string(), meta.namespace_usage(ns)?)],
        None => {
            let mut all = meta.usage()?;
            for (ns, _) in dir.quotas() {
                if !all.iter().any(|(n, _)| n == ns) {
                    all.push((ns.to_string(), 0));
                }
            }
            all.sort();
            all.retain(|(ns, _)| may(ns));
            all
        }
    };
    let list: Vec<Value> = rows
        .into_iter()
        .map(|(ns, bytes)| json!({ "namespace": ns, "bytes": bytes, "quota": dir.quota(&ns) }))
        .collect();
    Ok(json!({ "namespaces": list }))
}
