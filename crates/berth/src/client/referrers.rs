//! OCI 1.1 referrers (signatures, SBOMs, attestations whose `subject` is the image) go
//! with an image copied between two registries that both answer the referrers API
//! (`copy --referrers`, on by default). Each referrer is copied as it is, by digest, so
//! its `subject` still names the image; referrers of referrers follow, a few levels
//! deep. What was copied is said on stderr.

use std::collections::HashSet;

use berth_image::Digest;
use berth_transport::copy::{copy, CopyOptions, Progress};
use berth_transport::Place;

/// How deep referrers of referrers are followed (a signature of an SBOM of the image
/// is two levels).
const MAX_DEPTH: usize = 4;

/// Copies the referrers of manifest `digest` from `src` to `dst` when both are
/// registries answering the referrers API; returns how many were copied.
pub async fn copy_referrers(
    src: &Place,
    dst: &Place,
    digest: &Digest,
    opts: &CopyOptions,
    progress: &Progress,
) -> anyhow::Result<usize> {
    let (
        Place::Registry {
            registry: from,
            repo: from_repo,
            ..
        },
        Place::Registry {
            registry: to,
            repo: to_repo,
            ..
        },
    ) = (src, dst)
    else {
        return Ok(0);
    };
    let opts = CopyOptions {
        all: true,
        format: None,
        compress: None,
        preserve_digests: true,
        ..opts.clone()
    };
    let mut seen = HashSet::new();
    let mut level = vec![digest.clone()];
    let mut copied = 0;
    for _ in 0..MAX_DEPTH {
        let mut next = Vec::new();
        for subject in level {
            // A registry that answers the listing with an error (a proxy in front, a
            // scope it refuses) costs the referrers, not the copy of the image.
            let found = match from.referrers(from_repo, &subject).await {
                Ok(Some(found)) => found,
                Ok(None) => return Ok(copied),
                Err(e) => {
                    eprintln!("berth: the referrers of {subject} were not copied: {e:#}");
                    return Ok(copied);
                }
            };
            if found.is_empty() {
                continue;
            }
            let there = match to.referrers(to_repo, &subject).await {
                Ok(there) => there,
                Err(e) => {
                    eprintln!("berth: the referrers of {subject} were not copied: {e:#}");
                    return Ok(copied);
                }
            };
            let Some(there) = there else {
                progress.line(&format!(
                    "{} does not answer the referrers API: {} referrers of {subject} not copied",
                    to.host(),
                    found.len()
                ));
                return Ok(copied);
            };
            for r in found {
                if !seen.insert(r.digest.clone()) {
                    continue;
                }
                next.push(r.digest.clone());
                if there.iter().any(|t| t.digest == r.digest) {
                    continue;
                }
                let what = r.artifact_type.as_deref().unwrap_or(&r.media_type);
                progress.line(&format!("Copying referrer {} ({what})", r.digest));
                let at = |registry: &std::sync::Arc<berth_remote::Registry>, repo: &str| {
                    Place::Registry {
                        registry: registry.clone(),
                        repo: repo.to_string(),
                        reference: r.digest.to_string(),
                    }
                };
                copy(
                    &at(from, from_repo),
                    &at(to, to_repo),
                    &opts,
                    progress.clone(),
                )
                .await?;
                copied += 1;
            }
        }
        if next.is_empty() {
            break;
        }
        level = next;
    }
    Ok(copied)
}
