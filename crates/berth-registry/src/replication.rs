//! Push-based replication: the rules a superuser set (`berth_auth::ReplicationRule`)
//! copy this registry's images to other registries, with the copy engine of `berth
//! copy` reading straight from the data folder (`berth_transport::served`).
//!
//! Each image goes with what belongs to it: an index with all its images, its simple
//! signatures (through the target's signature extension, when it has one), its sigstore
//! attachment (the `sha256-<hex>.sig` tag) and its OCI 1.1 referrers, by digest, a few
//! levels deep. Blobs and manifests the target has are skipped (HEAD), so a run that
//! failed half-way resumes where it stopped.
//!
//! Runs come from three places, all served by one task so that runs of one rule never
//! overlap: a push of a matching tag (`on_push`), the rule's schedule (`schedule`: every
//! matching tag is compared with the target's) and `POST /api/v1/replication/NAME/run`.
//! An image that failed is tried again after 5 s, 10 s, 20 s… ([`MAX_ATTEMPTS`] times),
//! then waits for the rule's next run. What each rule did is kept per process in
//! [`RuleStatus`] (the API's `GET /api/v1/replication`) and in `/metrics`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_auth::ReplicationRule;
use berth_transport::copy::{copy_manifest, CopyOptions, Progress, Reporter};
use berth_transport::served::Served;
use berth_transport::signatures::{attachment_tag, SignatureStorage};
use berth_transport::Place;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::error::chain;
use crate::Registry;

/// Pushes waiting to be replicated at most; beyond, the rule's next run finds them.
const QUEUE: usize = 4096;
/// Tries of one image before it waits for the rule's next run.
pub const MAX_ATTEMPTS: u32 = 5;
/// First wait before a failed image is tried again; doubled each time.
const FIRST_RETRY: Duration = Duration::from_secs(5);
/// How often schedules and retries are looked at.
const TICK: Duration = Duration::from_secs(1);
/// Referrers of referrers followed (a signature of an SBOM of the image is two).
const REFERRER_DEPTH: usize = 4;
/// Tags or repositories read from the metadata at a time.
const PAGE: usize = 1000;

/// What a rule did since this process started.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RuleStatus {
    /// A run (or a pushed image) is being copied now.
    pub running: bool,
    /// Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_run_started: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_run_finished: Option<i64>,
    /// The end of the last run, or pushed image, with no error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_success: Option<i64>,
    /// Images written to the target.
    pub images_copied: u64,
    /// Images the target already had.
    pub images_skipped: u64,
    /// Images whose copy failed (each try counts).
    pub errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Images waiting to be tried again.
    pub retrying: usize,
}

/// One image to copy: `repo:tag` under rule `rule`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Job {
    rule: String,
    repo: String,
    tag: String,
}

struct Retry {
    job: Job,
    attempts: u32,
    at: Instant,
}

/// The replicator's state: the queue of pushes, the runs asked for, what each rule did.
pub(crate) struct Replication {
    queue: mpsc::Sender<Job>,
    jobs: Mutex<Option<mpsc::Receiver<Job>>>,
    asked: Mutex<Vec<String>>,
    wake: tokio::sync::Notify,
    retries: Mutex<Vec<Retry>>,
    status: Mutex<HashMap<String, RuleStatus>>,
}

impl Default for Replication {
    fn default() -> Replication {
        let (queue, jobs) = mpsc::channel(QUEUE);
        Replication {
            queue,
            jobs: Mutex::new(Some(jobs)),
            asked: Mutex::default(),
            wake: tokio::sync::Notify::new(),
            retries: Mutex::default(),
            status: Mutex::default(),
        }
    }
}

/// What copying one image did.
enum Copied {
    Written,
    Present,
}

/// Copy progress goes nowhere: the status and the log say what happened.
struct Quiet;

impl Reporter for Quiet {
    fn line(&self, _text: &str) {}
}

fn now() -> i64 {
    berth_store::unix_now()
}

impl Replication {
    fn update(&self, rule: &str, f: impl FnOnce(&mut RuleStatus)) {
        let mut all = self.status.lock().unwrap_or_else(|p| p.into_inner());
        f(all.entry(rule.to_string()).or_default());
    }

    /// What rule `name` did so far (a rule that has not run yet has an empty status).
    pub(crate) fn status(&self, name: &str) -> RuleStatus {
        let all = self.status.lock().unwrap_or_else(|p| p.into_inner());
        let mut s = all.get(name).cloned().unwrap_or_default();
        s.retrying = self
            .retries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|r| r.job.rule == name)
            .count();
        s
    }
}

impl Registry {
    /// `repo:tag` was pushed: queued for each `on_push` rule it matches. A sigstore
    /// attachment (`sha256-<hex>.sig`) goes wherever its repository goes.
    pub(crate) fn replicate_pushed(&self, repo: &str, tag: &str) {
        let Ok((dir, _)) = self.auth.directory() else {
            return;
        };
        let attachment = is_attachment_tag(tag);
        for rule in dir.replication_rules() {
            let wanted = if attachment {
                rule.covers_repo(repo)
            } else {
                rule.covers(repo, tag)
            };
            if !rule.on_push || !wanted {
                continue;
            }
            let job = Job {
                rule: rule.name.clone(),
                repo: repo.to_string(),
                tag: tag.to_string(),
            };
            if self.replication.queue.try_send(job).is_err() {
                self.replication.update(&rule.name, |s| {
                    s.last_error = Some(format!(
                        "{repo}:{tag}: more pushes waiting than the queue holds; the rule's next run copies it"
                    ));
                });
            }
        }
    }

    /// Asks for a run of rule `name` now; false when there is no such rule.
    pub(crate) fn replicate_now(&self, name: &str) -> bool {
        let known = self
            .auth
            .directory()
            .is_ok_and(|(d, _)| d.replication_rules().iter().any(|r| r.name == name));
        if known {
            self.replication
                .asked
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(name.to_string());
            self.replication.wake.notify_one();
        }
        known
    }

    pub(crate) fn replication_status(&self, name: &str) -> RuleStatus {
        self.replication.status(name)
    }

    /// Starts the replicator: pushed images, schedules, runs asked for and retries, one
    /// at a time, until the task is dropped.
    pub fn spawn_replication(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let reg = self.clone();
        let jobs = self
            .replication
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        tokio::spawn(async move {
            let Some(mut jobs) = jobs else {
                tracing::error!("the replicator was started twice");
                return;
            };
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    Some(job) = jobs.recv() => reg.replicate_job(job, 1).await,
                    _ = tick.tick() => reg.replication_due().await,
                    () = reg.replication.wake.notified() => reg.replication_due().await,
                }
            }
        })
    }

    /// Runs what is due: runs asked for, schedules that came round, retries whose
    /// time came.
    async fn replication_due(self: &Arc<Self>) {
        let asked: Vec<String> = std::mem::take(
            &mut *self
                .replication
                .asked
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        let rules = match self.auth.directory() {
            Ok((dir, _)) => dir.replication_rules().to_vec(),
            Err(e) => {
                tracing::warn!(error = %e, "replication: the access-control data could not be read");
                return;
            }
        };
        for rule in &rules {
            let status = self.replication.status(&rule.name);
            let scheduled = rule.schedule.is_some_and(|every| {
                status
                    .last_run_started
                    .is_none_or(|t| now() - t >= every as i64)
            });
            if scheduled || asked.contains(&rule.name) {
                self.replicate_rule(rule).await;
            }
        }
        let due: Vec<Retry> = {
            let mut retries = self
                .replication
                .retries
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let (due, later) = std::mem::take(&mut *retries)
                .into_iter()
                .partition(|r| r.at <= Instant::now());
            *retries = later;
            due
        };
        for r in due {
            self.replicate_job(r.job, r.attempts + 1).await;
        }
    }

    /// One pushed (or retried) image, try `attempt`.
    async fn replicate_job(self: &Arc<Self>, job: Job, attempt: u32) {
        let Some(rule) = self.rule(&job.rule) else {
            return; // removed meanwhile
        };
        self.replication.update(&rule.name, |s| s.running = true);
        let result = match target(&rule) {
            Ok(client) => self.replicate_tag(&client, &job.repo, &job.tag).await,
            Err(e) => Err(e),
        };
        self.record(&rule, &job, result, attempt);
        self.replication.update(&rule.name, |s| s.running = false);
    }

    /// A whole run of `rule`: every matching tag of every matching repository.
    async fn replicate_rule(self: &Arc<Self>, rule: &ReplicationRule) {
        let started = now();
        self.replication.update(&rule.name, |s| {
            s.running = true;
            s.last_run_started = Some(started);
        });
        let client = match target(rule) {
            Ok(c) => c,
            Err(e) => {
                self.replication.update(&rule.name, |s| {
                    s.running = false;
                    s.errors += 1;
                    s.last_error = Some(e);
                    s.last_run_finished = Some(now());
                });
                return;
            }
        };
        let mut failed = false;
        match self.tags_of(rule).await {
            Ok(images) => {
                for (repo, tag) in images {
                    let job = Job {
                        rule: rule.name.clone(),
                        repo,
                        tag,
                    };
                    let result = self.replicate_tag(&client, &job.repo, &job.tag).await;
                    failed |= result.is_err();
                    self.record(rule, &job, result, 1);
                }
            }
            Err(e) => {
                failed = true;
                self.replication.update(&rule.name, |s| {
                    s.errors += 1;
                    s.last_error = Some(format!("listing the images to copy: {e}"));
                });
            }
        }
        let finished = now();
        self.replication.update(&rule.name, |s| {
            s.running = false;
            s.last_run_finished = Some(finished);
            if !failed {
                s.last_success = Some(finished);
            }
        });
        tracing::info!(rule = %rule.name, to = %rule.url, failed, "replication run finished");
    }

    fn rule(&self, name: &str) -> Option<Arc<ReplicationRule>> {
        let (dir, _) = self.auth.directory().ok()?;
        dir.replication_rules()
            .iter()
            .find(|r| r.name == name)
            .cloned()
    }

    /// The `(repository, tag)` pairs `rule` copies, from the metadata's indexes.
    async fn tags_of(&self, rule: &ReplicationRule) -> Result<Vec<(String, String)>, String> {
        let (rule, meta) = (rule.clone(), self.meta.clone());
        let list = move || -> Result<Vec<(String, String)>, berth_store::StoreError> {
            let mut out = Vec::new();
            let mut last_repo: Option<String> = None;
            loop {
                let repos = meta.repositories(last_repo.as_deref(), PAGE)?;
                for repo in repos.iter().filter(|r| rule.covers_repo(r)) {
                    let mut last_tag: Option<String> = None;
                    loop {
                        let tags = meta.tags(repo, last_tag.as_deref(), PAGE)?;
                        out.extend(
                            tags.iter()
                                .filter(|t| !is_attachment_tag(t) && rule.covers(repo, t))
                                .map(|t| (repo.clone(), t.clone())),
                        );
                        if tags.len() < PAGE {
                            break;
                        }
                        last_tag = tags.last().cloned();
                    }
                }
                if repos.len() < PAGE {
                    return Ok(out);
                }
                last_repo = repos.last().cloned();
            }
        };
        match tokio::task::spawn_blocking(list).await {
            Ok(r) => r.map_err(|e| chain(&e)),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Notes what copying `job` did; a failure is tried again later.
    fn record(
        &self,
        rule: &ReplicationRule,
        job: &Job,
        result: Result<Copied, String>,
        attempt: u32,
    ) {
        let result_label = match &result {
            Ok(Copied::Written) => "copied",
            Ok(Copied::Present) => "skipped",
            Err(_) => "failed",
        };
        self.metrics.replication(&rule.name, result_label);
        match result {
            Ok(c) => {
                if matches!(c, Copied::Written) {
                    tracing::info!(rule = %rule.name, image = %format!("{}:{}", job.repo, job.tag), to = %rule.url, "replicated");
                }
                let t = now();
                self.metrics.replication_success(&rule.name, t);
                self.replication.update(&rule.name, |s| {
                    match c {
                        Copied::Written => s.images_copied += 1,
                        Copied::Present => s.images_skipped += 1,
                    }
                    s.last_success = Some(t);
                });
            }
            Err(e) => {
                let what = format!("{}:{}: {e}", job.repo, job.tag);
                tracing::warn!(rule = %rule.name, to = %rule.url, attempt, error = %what, "replication failed");
                self.replication.update(&rule.name, |s| {
                    s.errors += 1;
                    s.last_error = Some(what);
                });
                if attempt < MAX_ATTEMPTS {
                    let mut retries = self
                        .replication
                        .retries
                        .lock()
                        .unwrap_or_else(|p| p.into_inner());
                    if !retries.iter().any(|r| &r.job == job) {
                        retries.push(Retry {
                            job: job.clone(),
                            attempts: attempt,
                            at: Instant::now() + FIRST_RETRY * 2u32.pow(attempt - 1),
                        });
                    }
                }
            }
        }
    }

    /// Copies `repo:tag` with its signatures, attachment and referrers to `client`.
    async fn replicate_tag(
        self: &Arc<Self>,
        client: &Arc<berth_remote::Registry>,
        repo: &str,
        tag: &str,
    ) -> Result<Copied, String> {
        let content = Served {
            meta: self.meta.clone(),
            blobs: Arc::new(self.blobs.clone()),
            objects: self.objects.clone(),
        };
        let place = |store: bool, reference: &str| match store {
            true => Place::Served {
                content: content.clone(),
                repo: repo.to_string(),
                reference: reference.to_string(),
            },
            false => Place::Registry {
                registry: client.clone(),
                repo: repo.to_string(),
                reference: reference.to_string(),
            },
        };
        let opts = CopyOptions {
            all: true,
            platform: berth_image::Platform::this_machine(),
            parallel: 4,
            format: None,
            preserve_digests: true,
            compress: None,
        };
        let progress: Progress = Arc::new(Quiet);
        let err = |what: &str| {
            let what = what.to_string();
            move |e: berth_transport::TransportError| format!("{what}: {}", chain(&e))
        };
        let (src, dst) = (place(true, tag), place(false, tag));
        let top = src.manifest(None).await.map_err(err("reading it"))?;
        let digest = top.digest.clone();
        let present = client
            .manifest_digest(repo, tag)
            .await
            .map_err(|e| format!("asking the target for it: {}", chain(&e)))?;
        let copied = if present.as_ref() == Some(&digest) {
            Copied::Present
        } else {
            copy_manifest(&src, &dst, top, &opts, progress.clone())
                .await
                .map_err(err("copying it"))?;
            Copied::Written
        };
        // Simple signatures, where the target keeps them itself.
        let storage = SignatureStorage::default();
        let sigs = src
            .signatures(&digest, &storage)
            .await
            .map_err(err("reading its signatures"))?;
        if !sigs.is_empty() {
            let supported = client
                .supports_signatures()
                .await
                .map_err(|e| format!("asking the target about signatures: {}", chain(&e)))?;
            if !supported {
                return Err(format!(
                    "copied, but its {} signature(s) were not: the target has no signature extension",
                    sigs.len()
                ));
            }
            dst.put_signatures(&digest, &sigs, &storage)
                .await
                .map_err(err("copying its signatures"))?;
        }
        // The sigstore attachment, a tag of its own.
        let att = attachment_tag(&digest);
        if let Ok(sig) = place(true, &att).manifest(None).await {
            let there = client
                .manifest_digest(repo, &att)
                .await
                .map_err(|e| format!("asking the target for {att}: {}", chain(&e)))?;
            if there.as_ref() != Some(&sig.digest) {
                copy_manifest(
                    &place(true, &att),
                    &place(false, &att),
                    sig,
                    &opts,
                    progress.clone(),
                )
                .await
                .map_err(err(&format!("copying {att}")))?;
            }
        }
        // Referrers, by digest, so that their subject still names the image.
        let mut seen = HashSet::new();
        let mut level = vec![digest];
        for _ in 0..REFERRER_DEPTH {
            let mut next = Vec::new();
            for subject in level {
                let found = content
                    .referrers(repo, &subject)
                    .map_err(err("listing its referrers"))?;
                for d in found {
                    if !seen.insert(d.clone()) {
                        continue;
                    }
                    let r = d.to_string();
                    let m = place(true, &r).manifest(None).await.map_err(err(&r))?;
                    copy_manifest(
                        &place(true, &r),
                        &place(false, &r),
                        m,
                        &opts,
                        progress.clone(),
                    )
                    .await
                    .map_err(err(&format!("copying referrer {r}")))?;
                    next.push(d);
                }
            }
            level = next;
        }
        Ok(copied)
    }
}

/// Whether `tag` names a sigstore attachment (`sha256-<hex>.sig`), which goes with
/// its image rather than by the rule's tag patterns.
fn is_attachment_tag(tag: &str) -> bool {
    tag.strip_suffix(".sig")
        .and_then(|t| t.strip_prefix("sha256-"))
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A client of `rule`'s target registry.
fn target(rule: &ReplicationRule) -> Result<Arc<berth_remote::Registry>, String> {
    let (host, plain_http) = crate::proxy::parse_url(&rule.url)
        .ok_or_else(|| format!("{}: not a registry URL", rule.url))?;
    let credentials = match (&rule.username, &rule.password) {
        (Some(u), Some(p)) => Some(berth_remote::Credentials::Basic {
            username: u.clone(),
            password: p.clone(),
        }),
        _ => None,
    };
    let options = berth_remote::Options {
        credentials,
        plain_http,
        ..berth_remote::Options::default()
    };
    berth_remote::Registry::new(host, options)
        .map(Arc::new)
        .map_err(|e| format!("{}: {}", rule.url, chain(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachment_tags() {
        let hex = "a".repeat(64);
        assert!(is_attachment_tag(&format!("sha256-{hex}.sig")));
        assert!(!is_attachment_tag(&format!("sha256-{hex}.att")));
        assert!(!is_attachment_tag("sha256-abc.sig"));
        assert!(!is_attachment_tag("v1"));
    }
}
