//! The registry's garbage collector: a background task (`--gc-interval`) and on-demand
//! runs (`POST /api/v1/gc`, for superusers), both over `berth_store::gc`, whose fence
//! keeps pushes and pulls safe while it runs, after the tags retention lets go
//! (`crate::retention`). One run at a time per process; a run in
//! another process (`berth registry gc --root`) is kept safe by the same fence.

use std::sync::Arc;
use std::time::Duration;

use berth_store::gc::GcOptions;

use crate::error::ApiError;
use crate::retention::Collection;
use crate::Registry;

/// The collector's settings in `berth serve`.
#[derive(Debug, Clone)]
pub struct GcConfig {
    /// How often the background collector runs; `None`: only on demand.
    pub interval: Option<Duration>,
    /// Content younger than this is spared.
    pub grace: Duration,
    /// Keep untagged manifests.
    pub keep_untagged: bool,
}

impl Default for GcConfig {
    fn default() -> GcConfig {
        GcConfig {
            interval: None,
            grace: Duration::from_secs(24 * 3600),
            keep_untagged: false,
        }
    }
}

/// Content HEADed this long after it was stored (or last renewed) is renewed.
const RENEW_AFTER: i64 = 3600;

/// What a `HEAD` renews.
#[derive(Clone, Copy)]
pub(crate) enum Headed {
    /// A repository's link to a blob.
    BlobLink,
    Manifest,
}

/// A `HEAD` is how a client decides to skip an upload (a blob, or an index's child
/// manifest) and reference the content in the manifest it PUTs next. With a grace
/// period longer than [`RENEW_AFTER`], content HEADed now cannot be collected before
/// that PUT: the renewal (a write, at most once an hour per link or manifest) commits
/// before the answer.
pub(crate) async fn renew_on_head(
    reg: &Arc<Registry>,
    name: &berth_image::RepositoryName,
    d: &berth_image::Digest,
    what: Headed,
    created_at: i64,
) -> Result<(), ApiError> {
    let before = berth_store::unix_now() - RENEW_AFTER;
    if created_at >= before {
        return Ok(());
    }
    let (n, digest) = (name.to_string(), d.clone());
    let renewed = reg
        .blocking(move |r| match what {
            Headed::BlobLink => r.meta.renew_blob_link(&n, &digest, before),
            Headed::Manifest => r.meta.renew_manifest(&n, &digest, before),
        })
        .await;
    // A store that cannot write (a full disk, a read-only replica) must not stop
    // reads: the renewal is the collector's grace, not the answer's.
    if let Err(e) = renewed {
        tracing::warn!(repository = %name, digest = %d, error = ?e, "renewing the grace on HEAD failed");
    }
    Ok(())
}

impl Registry {
    /// Runs retention and the collector once (on the blocking pool), records it in
    /// the metrics and the log. `opts` default to the configured grace and
    /// keep-untagged.
    pub async fn collect_garbage(
        self: &Arc<Self>,
        opts: GcOptions,
        dry_run: bool,
    ) -> Result<Collection, ApiError> {
        let reg = self.clone();
        let (dir, _) = self.auth.directory().map_err(ApiError::from)?;
        tokio::task::spawn_blocking(move || {
            let _one_at_a_time = reg.gc_lock.lock().unwrap_or_else(|p| p.into_inner());
            let collection = crate::retention::collect(
                reg.meta.as_ref(),
                reg.blob_bytes(),
                &dir,
                opts.clone(),
                dry_run,
            );
            match &collection {
                Ok(Collection { tags, report: r }) => {
                    if !dry_run {
                        reg.metrics.gc_run(r, tags.len());
                        // The catalog forgets what was collected (in its own time).
                        if let Some(catalog) = &reg.catalog {
                            for e in tags {
                                catalog.notify_deleted(&e.repository, None);
                            }
                            for (repo, digest, _) in &r.manifests {
                                if let Ok(d) = digest.parse() {
                                    catalog.notify_deleted(repo, Some(&d));
                                }
                            }
                        }
                    }
                    for e in tags {
                        tracing::info!(
                            target: "berth::gc",
                            dry_run,
                            repository = %e.repository,
                            tag = %e.tag,
                            reason = %e.reason,
                            "tag expired"
                        );
                    }
                    tracing::info!(
                        target: "berth::gc",
                        dry_run,
                        repo = opts.repo.as_deref().unwrap_or("*"),
                        grace_seconds = opts.grace.as_secs(),
                        tags = tags.len(),
                        manifests = r.manifests.len(),
                        links = r.links,
                        blobs = r.blobs.len(),
                        bytes_freed = r.bytes_freed(),
                        millis = r.duration.as_millis() as u64,
                        "garbage collection"
                    );
                }
                Err(e) => {
                    tracing::warn!(target: "berth::gc", error = %e, "garbage collection failed")
                }
            }
            collection
        })
        .await?
        .map_err(Into::into)
    }

    /// The configured options (grace, keep-untagged), all repositories.
    pub fn gc_options(&self) -> GcOptions {
        GcOptions {
            grace: self.config.gc.grace,
            keep_untagged: self.config.gc.keep_untagged,
            repo: None,
            untag: Vec::new(),
        }
    }

    /// Runs the collector every `gc.interval` until the task is dropped; `None` when
    /// no interval is configured.
    pub fn spawn_collector(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let every = self.config.gc.interval?;
        let reg = self.clone();
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await; // not at start-up: the first run waits one interval
            loop {
                tick.tick().await;
                let _ = reg.collect_garbage(reg.gc_options(), false).await;
            }
        }))
    }
}
