//! The scan worker: one tokio task reading a bounded queue of `(repository, manifest
//! digest)`, each scan on a blocking thread, one at a time (layer analysis is CPU
//! work; on a small machine it must not take the cores pushes and pulls need).
//!
//! The registry calls [`Catalog::notify`] after a manifest PUT has been stored: a
//! non-blocking `try_send`, so the push's answer never waits for the catalog. When
//! the queue is full the manifest is left for the backfill, which runs at start-up
//! and again whenever the queue has dropped something and drained: it walks the
//! `manifests` table (index order, no file system) for manifests without a scan,
//! then (after a drop) the scans for manifests that are gone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use berth_image::Digest;
use tokio::sync::mpsc;

use crate::scan::Scanned;
use crate::Catalog;

/// Manifests waiting for a scan, at most. A push of an image is a handful.
pub const QUEUE_CAPACITY: usize = 1024;

pub(crate) struct Job {
    repository: String,
    what: What,
}

/// What a job asks of the worker.
enum What {
    /// Scan a manifest that was pushed.
    Scan(Digest),
    /// A delete: forget what the repository no longer holds (a manifest, or after a
    /// tag's delete nothing but the search row).
    Forget(Option<Digest>),
    /// A signature was stored: the search row must say the repository is signed.
    Signed,
}

/// The worker's side of the queue, set once by [`Catalog::start`].
#[derive(Default)]
pub(crate) struct Queue {
    sender: std::sync::OnceLock<mpsc::Sender<Job>>,
    /// The runtime the worker runs on, for a backfill asked from another thread.
    runtime: std::sync::OnceLock<tokio::runtime::Handle>,
    /// Something was dropped since the last backfill began.
    dropped: AtomicBool,
}

impl Catalog {
    /// Asks for a scan of `repository`'s manifest `digest`, never waiting: when the
    /// worker is not running (admin commands) or its queue is full, the manifest is
    /// left for the backfill.
    pub fn notify(&self, repository: &str, digest: &Digest) {
        let Some(tx) = self.queue.sender.get() else {
            return;
        };
        let job = Job {
            repository: repository.to_string(),
            what: What::Scan(digest.clone()),
        };
        self.enqueue(tx, job);
    }

    /// After a manifest (`digest`) or a tag (`None`) of `repository` was deleted: its
    /// scan state and search row are brought up to date in the background.
    pub fn notify_deleted(&self, repository: &str, digest: Option<&Digest>) {
        let Some(tx) = self.queue.sender.get() else {
            return;
        };
        let job = Job {
            repository: repository.to_string(),
            what: What::Forget(digest.cloned()),
        };
        self.enqueue(tx, job);
    }

    /// After a signature of one of `repository`'s manifests was stored: its search
    /// row (whether it is signed) is brought up to date in the background; nothing is
    /// scanned.
    pub fn notify_signatures(&self, repository: &str) {
        let Some(tx) = self.queue.sender.get() else {
            return;
        };
        let job = Job {
            repository: repository.to_string(),
            what: What::Signed,
        };
        self.enqueue(tx, job);
    }

    /// After changes made elsewhere may have gone unheard (another replica's, while
    /// the connection that hears them was down): queues every stored manifest that
    /// has no scan yet, as at start-up, and a forget of every scan whose manifest is
    /// gone.
    pub fn catch_up(self: &Arc<Self>) {
        if let (Some(tx), Some(rt)) = (self.queue.sender.get(), self.queue.runtime.get()) {
            rt.spawn(catch_up(self.clone(), tx.clone()));
        }
    }

    fn enqueue(&self, tx: &mpsc::Sender<Job>, job: Job) {
        let repository = job.repository.clone();
        let digest = match &job.what {
            What::Scan(d) | What::Forget(Some(d)) => Some(d.clone()),
            What::Forget(None) | What::Signed => None,
        };
        if let Err(e) = tx.try_send(job) {
            if matches!(e, mpsc::error::TrySendError::Full(_)) {
                self.stats.queue_dropped.fetch_add(1, Ordering::Relaxed);
                self.queue.dropped.store(true, Ordering::Relaxed);
                tracing::debug!(target: "berth::catalog", repository, ?digest,
                    "scan queue full; the manifest is left for the backfill");
            }
        }
    }

    /// Starts the worker and the start-up backfill (inside a tokio runtime). Calling
    /// it twice starts nothing more.
    pub fn start(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let (tx, mut rx) = mpsc::channel::<Job>(QUEUE_CAPACITY);
        self.queue.sender.set(tx.clone()).ok()?;
        let _ = self.queue.runtime.set(tokio::runtime::Handle::current());
        let cat = self.clone();
        tokio::spawn(backfill(cat.clone(), tx.clone()));
        Some(tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                cat.run_job(job).await;
                // A dropped job may have been a delete's as well as a push's.
                if rx.is_empty() && cat.queue.dropped.swap(false, Ordering::Relaxed) {
                    tokio::spawn(catch_up(cat.clone(), tx.clone()));
                }
            }
        }))
    }

    async fn run_job(self: &Arc<Self>, job: Job) {
        let cat = self.clone();
        let repo = job.repository.clone();
        let digest = match job.what {
            What::Scan(digest) => digest,
            What::Forget(digest) => {
                let done =
                    tokio::task::spawn_blocking(move || cat.forget(&repo, digest.as_ref())).await;
                if let Ok(Err(e)) = done {
                    tracing::warn!(target: "berth::catalog", repository = job.repository,
                        error = %e, "catalog update after a delete failed");
                }
                return;
            }
            What::Signed => {
                let done = tokio::task::spawn_blocking(move || cat.signed(&repo)).await;
                if let Ok(Err(e)) = done {
                    tracing::warn!(target: "berth::catalog", repository = job.repository,
                        error = %e, "catalog update after a signature failed");
                }
                return;
            }
        };
        let d = digest.clone();
        let outcome =
            tokio::task::spawn_blocking(move || cat.scan_manifest(&repo, &d, false)).await;
        let failure = match outcome {
            Ok(Ok(Scanned::Failed(why))) => {
                tracing::info!(target: "berth::catalog", repository = job.repository,
                    %digest, error = %why, "scan failed");
                return;
            }
            Ok(Ok(_)) => return,
            Ok(Err(e)) => e.to_string(),
            Err(e) if e.is_panic() => {
                let p = e.into_panic();
                let msg = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                format!("the scan panicked: {msg}")
            }
            Err(e) => format!("the scan did not finish: {e}"),
        };
        tracing::warn!(target: "berth::catalog", repository = job.repository,
            %digest, error = %failure, "scan failed");
        let cat = self.clone();
        let _ = tokio::task::spawn_blocking(move || {
            cat.record_failure(&job.repository, &digest, &failure)
        })
        .await;
    }
}

/// Queues every stored manifest that has no scan yet (waiting for room: the backfill
/// is not in a hurry).
async fn backfill(cat: Arc<Catalog>, tx: mpsc::Sender<Job>) {
    let c = cat.clone();
    let missing = off_runtime("backfill", move || {
        let mut missing = Vec::new();
        let mut err = None;
        c.each_manifest(|e| {
            if err.is_some() {
                return;
            }
            match c.db.scan(&e.repository, &e.digest.to_string()) {
                Ok(Some(_)) => {}
                Ok(None) => missing.push((e.repository.clone(), e.digest.clone())),
                Err(x) => err = Some(x),
            }
        })?;
        match err {
            Some(e) => Err(e),
            None => Ok(missing),
        }
    })
    .await;
    let Some(missing) = missing else {
        return;
    };
    if !missing.is_empty() {
        tracing::info!(target: "berth::catalog", manifests = missing.len(), "catalog backfill");
    }
    queue_all(&tx, missing, What::Scan).await;
}

/// Runs `f` on the blocking pool; `None`, and the failure logged, when it fails.
async fn off_runtime<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> crate::Result<T> + Send + 'static,
) -> Option<T> {
    let failure = match tokio::task::spawn_blocking(f).await {
        Ok(Ok(t)) => return Some(t),
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    };
    tracing::warn!(target: "berth::catalog", error = %failure, "catalog {what} failed");
    None
}

/// Queues a job for each `(repository, digest)`, waiting for room; `false` once the
/// worker is gone.
async fn queue_all(
    tx: &mpsc::Sender<Job>,
    items: Vec<(String, Digest)>,
    what: fn(Digest) -> What,
) -> bool {
    for (repository, digest) in items {
        let job = Job {
            repository,
            what: what(digest),
        };
        if tx.send(job).await.is_err() {
            return false;
        }
    }
    true
}

/// The backfill, then the prune: what was missed, pushed or deleted.
async fn catch_up(cat: Arc<Catalog>, tx: mpsc::Sender<Job>) {
    backfill(cat.clone(), tx.clone()).await;
    prune(cat, tx).await;
}

/// Queues a forget of every scan whose manifest the store no longer holds, a page of
/// scans at a time.
async fn prune(cat: Arc<Catalog>, tx: mpsc::Sender<Job>) {
    const PAGE: usize = 500;
    let mut after: Option<(String, String)> = None;
    loop {
        let (c, from) = (cat.clone(), after.clone());
        let page = off_runtime("prune", move || {
            let from = from.as_ref().map(|(r, d)| (r.as_str(), d.as_str()));
            let scans = c.db.scans_after(from, PAGE)?;
            let mut gone = Vec::new();
            for (repo, d) in &scans {
                let Ok(digest) = d.parse::<Digest>() else {
                    continue;
                };
                if c.meta.manifest_by_digest(repo, &digest)?.is_none() {
                    gone.push((repo.clone(), digest));
                }
            }
            Ok((scans.last().cloned(), scans.len(), gone))
        })
        .await;
        let Some((last, n, gone)) = page else {
            return;
        };
        if !queue_all(&tx, gone, |d| What::Forget(Some(d))).await || n < PAGE {
            return;
        }
        after = last;
    }
}
