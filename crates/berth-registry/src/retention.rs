//! Retention: the tags that the rules of `berth_auth::Retention` let go, found and
//! deleted at the start of each collection (`--gc-interval`, `berth registry gc`,
//! `POST /api/v1/gc`), so that the same run collects the manifests and blobs only they
//! held. A dry run deletes nothing and plans the collection as if they were gone, so
//! its list is what a real run removes.
//!
//! Outside every rule: immutable tags (they never go), the `never` patterns of the
//! repository's namespace, and the tags cosign and the OCI referrers fallback write
//! (`sha256-<hex>`, `sha256-<hex>.sig`): those belong to an image, not to a release,
//! and go with it. Each deletion is fenced ([`MetaStore::delete_tag_if`]): a tag pushed
//! again after the rule judged it stays.

use std::collections::BTreeSet;

use berth_auth::Directory;
use berth_image::Digest;
use berth_store::gc::{GcOptions, RunReport};
use berth_store::{BlobBytes, MetaStore, StoreError};
use serde_json::{json, Value};

/// A tag a rule lets go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    pub repository: String,
    pub tag: String,
    pub digest: Digest,
    /// When the tag was last set (unix seconds).
    pub set_at: i64,
    /// The rule and what it found, e.g. `retention on myorg: not among the 10 newest`.
    pub reason: String,
}

/// A whole collection: the tags retention deleted (dry: would delete), then the rest.
#[derive(Debug, Clone)]
pub struct Collection {
    pub tags: Vec<Expiry>,
    pub report: RunReport,
}

impl Collection {
    /// The collector's report (see [`RunReport::to_json`]) with `tags_removed` and
    /// the list of `tags`.
    pub fn to_json(&self) -> Value {
        let mut v = self.report.to_json();
        v["tags_removed"] = json!(self.tags.len());
        v["tags"] = self
            .tags
            .iter()
            .map(|e| {
                json!({
                    "repository": e.repository,
                    "tag": e.tag,
                    "digest": e.digest.to_string(),
                    "reason": e.reason,
                })
            })
            .collect();
        v
    }
}

/// A rule as `retention show` and `GET /api/v1/retention/NAME` answer it: the rule
/// in force on `name`, and for a repository the namespace's `never` patterns that
/// also hold there.
pub fn describe(dir: &Directory, name: &str, rule: &berth_auth::Retention) -> Value {
    let mut v = serde_json::to_value(rule).unwrap_or(Value::Null);
    v["name"] = json!(rule.target);
    if let Some(secs) = rule.older_than {
        v["older_than"] =
            json!(humantime::format_duration(std::time::Duration::from_secs(secs)).to_string());
    }
    if let Some((_, never)) = dir.retention_for(name).filter(|_| name.contains('/')) {
        if !never.is_empty() {
            v["namespace_never"] = json!(never);
        }
    }
    if let Some(map) = v.as_object_mut() {
        map.remove("target");
    }
    v
}

/// Attachment tags ([`berth_store::gc::attachment_subject`]) go with their image:
/// kept by retention, copied by replication, collected with it.
pub(crate) fn is_attachment_tag(tag: &str) -> bool {
    berth_store::gc::attachment_subject(tag).is_some()
}

/// The repositories a rule covers (only `only`, when given), in name order: a range of
/// the repository index per namespace rule, never a walk of every repository.
fn covered(
    meta: &dyn MetaStore,
    dir: &Directory,
    only: Option<&str>,
) -> Result<BTreeSet<String>, StoreError> {
    const PAGE: usize = 1000;
    let mut repos = BTreeSet::new();
    if let Some(repo) = only {
        if dir.retention_for(repo).is_some() && meta.repository_exists(repo)? {
            repos.insert(repo.to_string());
        }
        return Ok(repos);
    }
    for target in dir.retention_targets() {
        if target.contains('/') {
            if meta.repository_exists(target)? {
                repos.insert(target.to_string());
            }
            continue;
        }
        // The namespace's own repository (`alpine`) and those under it (`alpine/…`).
        if meta.repository_exists(target)? {
            repos.insert(target.to_string());
        }
        let inside = format!("{target}/");
        let mut last = inside.clone();
        'range: loop {
            let page = meta.repositories(Some(&last), PAGE)?;
            let done = page.len() < PAGE;
            for name in page {
                if !name.starts_with(&inside) {
                    break 'range;
                }
                last.clone_from(&name);
                repos.insert(name);
            }
            if done {
                break;
            }
        }
    }
    Ok(repos)
}

/// The tags the rules in force let go at `now` (unix seconds), repository by
/// repository; only `only`'s when given.
pub fn plan(
    meta: &dyn MetaStore,
    dir: &Directory,
    only: Option<&str>,
    now: i64,
) -> Result<Vec<Expiry>, StoreError> {
    let mut out = Vec::new();
    for repo in covered(meta, dir, only)? {
        let Some((rule, ns_never)) = dir.retention_for(&repo) else {
            continue;
        };
        let immutable = dir.immutable_for(&repo);
        let tags = meta.recent_tags(&repo, usize::MAX)?;
        let ages: Vec<(&str, i64)> = tags.iter().map(|(t, _, at)| (t.as_str(), *at)).collect();
        let protected = |tag: &str| {
            is_attachment_tag(tag)
                || ns_never
                    .iter()
                    .any(|p| berth_auth::policy::glob_match(p, tag))
                || immutable
                    .as_ref()
                    .is_some_and(|s| s.rule_for(tag).is_some())
        };
        for e in rule.expired(&ages, now, protected) {
            let (tag, digest, set_at) = &tags[e.index];
            out.push(Expiry {
                repository: repo.clone(),
                tag: tag.clone(),
                digest: digest.clone(),
                set_at: *set_at,
                reason: e.reason,
            });
        }
    }
    Ok(out)
}

/// Deletes the tags of `expiries` that are still as the plan saw them; returns those
/// deleted.
pub fn delete(meta: &dyn MetaStore, expiries: Vec<Expiry>) -> Result<Vec<Expiry>, StoreError> {
    let mut gone = Vec::with_capacity(expiries.len());
    for e in expiries {
        if meta.delete_tag_if(&e.repository, &e.tag, &e.digest, e.set_at)? {
            gone.push(e);
        }
    }
    Ok(gone)
}

/// One collection: retention's tags (deleted, or for a dry run taken as deleted by the
/// plan), then the collector over `opts` (whose `repo` also scopes retention).
pub fn collect(
    meta: &dyn MetaStore,
    blobs: &dyn BlobBytes,
    dir: &Directory,
    mut opts: GcOptions,
    dry_run: bool,
) -> Result<Collection, StoreError> {
    let expiries = plan(meta, dir, opts.repo.as_deref(), berth_store::unix_now())?;
    let tags = if dry_run {
        opts.untag.extend(
            expiries
                .iter()
                .map(|e| (e.repository.clone(), e.digest.to_string())),
        );
        expiries
    } else {
        delete(meta, expiries)?
    };
    let report = berth_store::gc::run(meta, blobs, &opts, dry_run)?;
    Ok(Collection { tags, report })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachment_tags() {
        let hex = "a".repeat(64);
        assert!(is_attachment_tag(&format!("sha256-{hex}")));
        assert!(is_attachment_tag(&format!("sha256-{hex}.sig")));
        assert!(is_attachment_tag(&format!("sha256-{hex}.att")));
        assert!(!is_attachment_tag("sha256-abc.sig"));
        assert!(!is_attachment_tag(&format!(
            "sha256-{}.sig",
            "A".repeat(64)
        )));
        assert!(!is_attachment_tag(&format!("sha512-{hex}")));
        assert!(!is_attachment_tag("v1.0"));
    }
}
