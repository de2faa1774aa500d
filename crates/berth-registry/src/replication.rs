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
//! then waits for the rule's next run, as does a push that found the queue full. A rule
//! with no schedule has no next run: it is owed a run of its own instead (a catch-up,
//! after 1 min, doubling to 1 h while such runs fail, until one succeeds), which
//! skips what the target has. The queue and the retries live in this process; after
//! a start, a rule with a schedule runs at once and one without is owed a catch-up, so
//! a push queued when the server stopped is copied all the same. Repositories of the pull-through cache (under a
//! `[[proxy]]` prefix) are never replicated: they hold manifests without all their
//! blobs, and one platform of an index. What each rule did is kept per process in
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
use crate::retention::is_attachment_tag;
use crate::Registry;

/// The longest wait for a target's next bytes.
const TARGET_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Pushes waiting to be replicated at most; beyond, the rule's next run finds them.
const QUEUE: usize = 4096;
/// Tries of one image before it waits for the rule's next run.
pub const MAX_ATTEMPTS: u32 = 5;
/// First wait before a failed image is tried again; doubled each time.
const FIRST_RETRY: Duration = Duration::from_secs(5);
/// First wait before the catch-up run of a rule with no schedule that gave up on an
/// image: long enough for a target that is down to come back, short enough that the
/// image is not missed for long.
const CATCH_UP_FIRST: Duration = Duration::from_secs(60);
/// Longest wait between catch-up runs that keep failing (a target down for days is
/// asked once an hour, not every minute).
const CATCH_UP_MAX: Duration = Duration::from_secs(3600);
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
    /// A run of the whole rule it is owed: an image was given up on and the rule has
    /// no schedule to bring it. Present until a run of the rule succeeds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catch_up: Option<CatchUpStatus>,
}

/// When a rule's owed run starts and what it is for.
#[derive(Debug, Clone, Serialize)]
pub struct CatchUpStatus {
    /// Unix seconds.
    pub at: i64,
    /// The image last given up on, and why.
    pub reason: String,
}

/// The waits of retries and catch-up runs: the constants above in a server, shorter
/// in tests.
#[derive(Debug, Clone, Copy)]
struct Timing {
    first_retry: Duration,
    catch_up_first: Duration,
    catch_up_max: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            first_retry: FIRST_RETRY,
            catch_up_first: CATCH_UP_FIRST,
            catch_up_max: CATCH_UP_MAX,
        }
    }
}

/// A run of a whole rule owed to it (see [`Replication::owe_run`]).
struct CatchUp {
    at: Instant,
    /// The wait that led to `at`; after a failed run the next is twice it.
    wait: Duration,
    reason: String,
    /// When the last image was given up on: only a run that lists the tags after it
    /// copies that image.
    lost_at: Instant,
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
    /// Rules with no schedule owed a run, by name.
    catch_ups: Mutex<HashMap<String, CatchUp>>,
    timing: Mutex<Timing>,
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
            catch_ups: Mutex::default(),
            timing: Mutex::default(),
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
        s.catch_up = self.catch_ups().get(name).map(|c| CatchUpStatus {
            at: now() + c.at.saturating_duration_since(Instant::now()).as_secs() as i64,
            reason: c.reason.clone(),
        });
        s
    }

    fn catch_ups(&self) -> std::sync::MutexGuard<'_, HashMap<String, CatchUp>> {
        self.catch_ups.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn timing(&self) -> Timing {
        *self.timing.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Shorter waits, for tests that see retries and catch-up runs happen.
    #[cfg(test)]
    fn set_timing(&self, timing: Timing) {
        *self.timing.lock().unwrap_or_else(|p| p.into_inner()) = timing;
    }

    /// An image of `rule` was given up on (`reason`): the queue was full, or its tries
    /// ran out. A rule with a schedule copies it at its next run (`None`). One without
    /// has no next run, so it is owed one: a run of the whole rule, which skips what the
    /// target has, after the first catch-up wait (an earlier debt keeps its time).
    /// Returns the wait until that run.
    fn owe_run(&self, rule: &ReplicationRule, reason: String) -> Option<Duration> {
        if rule.schedule.is_some() {
            return None;
        }
        let first = self.timing().catch_up_first;
        let mut owed = self.catch_ups();
        let c = owed.entry(rule.name.clone()).or_insert_with(|| CatchUp {
            at: Instant::now() + first,
            wait: first,
            reason: String::new(),
            lost_at: Instant::now(),
        });
        c.reason = reason;
        c.lost_at = Instant::now();
        Some(c.at.saturating_duration_since(Instant::now()))
    }

    /// Whether rule `name` is owed a run whose time came.
    fn catch_up_due(&self, name: &str) -> bool {
        self.catch_ups()
            .get(name)
            .is_some_and(|c| c.at <= Instant::now())
    }

    /// A whole run of rule `name` that started at `began` ended, `ok` when with no
    /// error: that pays what the rule was owed, unless an image was given up on after
    /// the run began (a push that found the queue full while it ran may be missing
    /// from the tags it listed). A failed run whose time had come (the owed one, or
    /// another in its place) owes another after twice the wait, at most the longest.
    fn ran(&self, name: &str, ok: bool, began: Instant) {
        let max = self.timing().catch_up_max;
        let mut owed = self.catch_ups();
        let Some(c) = owed.get_mut(name) else {
            return;
        };
        if ok && c.lost_at < began {
            owed.remove(name);
        } else if !ok && c.at <= Instant::now() {
            c.wait = (c.wait * 2).min(max);
            c.at = Instant::now() + c.wait;
        }
    }
}

impl Registry {
    /// `repo:tag` was pushed: queued for each `on_push` rule it matches. An attachment
    /// (`sha256-<hex>.sig`, `.att`, `.sbom`, bare) goes wherever its repository goes.
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
                let lost = format!("{repo}:{tag}: more pushes waiting than the queue holds");
                let then = match self.replication.owe_run(rule, lost.clone()) {
                    Some(wait) => {
                        format!("a run of the whole rule copies it in {}s", wait.as_secs())
                    }
                    None => "the rule's next run copies it".to_string(),
                };
                self.replication.update(&rule.name, |s| {
                    s.last_error = Some(format!("{lost}; {then}"));
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
            reg.owe_start_up_runs();
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

    /// The queue, the retries and owed runs live in this process, so a stop loses
    /// them. A rule with a schedule runs at start (it has no last run) and finds what
    /// was lost; a rule without one is owed a catch-up run after the first wait, which
    /// skips what the target has: the price is a `HEAD` per matching tag each start.
    fn owe_start_up_runs(&self) {
        let Ok((dir, _)) = self.auth.directory() else {
            return;
        };
        for rule in dir.replication_rules() {
            if rule.on_push {
                let why = "this server started: pushes queued before it may not have been copied";
                self.replication.owe_run(rule, why.to_string());
            }
        }
    }

    /// Runs what is due: runs asked for, schedules that came round, runs owed whose
    /// time came, retries whose time came.
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
        self.replication
            .catch_ups()
            .retain(|name, _| rules.iter().any(|r| &r.name == name));
        for rule in &rules {
            let status = self.replication.status(&rule.name);
            let scheduled = rule.schedule.is_some_and(|every| {
                status
                    .last_run_started
                    .is_none_or(|t| now() - t >= every as i64)
            });
            let owed = self.replication.catch_up_due(&rule.name);
            if scheduled || owed || asked.contains(&rule.name) {
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
        let began = Instant::now();
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
                self.replication.ran(&rule.name, false, began);
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
        self.replication.ran(&rule.name, !failed, began);
        tracing::info!(rule = %rule.name, to = %rule.url, failed, "replication run finished");
    }

    fn rule(&self, name: &str) -> Option<Arc<ReplicationRule>> {
        let (dir, _) = self.auth.directory().ok()?;
        dir.replication_rules()
            .iter()
            .find(|r| r.name == name)
            .cloned()
    }

    /// The `(repository, tag)` pairs `rule` copies, from the metadata's indexes. Not
    /// the pull-through cache's repositories, whatever the rule's patterns: a cached
    /// manifest lacks the blobs no client asked for, and an index the platforms none
    /// asked for, so their copy would fail every run (and they are the upstream's).
    async fn tags_of(
        self: &Arc<Self>,
        rule: &ReplicationRule,
    ) -> Result<Vec<(String, String)>, String> {
        let (rule, reg) = (rule.clone(), self.clone());
        let list = move || -> Result<Vec<(String, String)>, berth_store::StoreError> {
            let meta = &reg.meta;
            let wanted = |r: &&String| rule.covers_repo(r) && reg.proxies.route(r).is_none();
            let mut out = Vec::new();
            let mut last_repo: Option<String> = None;
            loop {
                let repos = meta.repositories(last_repo.as_deref(), PAGE)?;
                for repo in repos.iter().filter(wanted) {
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
                    s.last_error = Some(what.clone());
                });
                if attempt < MAX_ATTEMPTS {
                    let first = self.replication.timing().first_retry;
                    let mut retries = self
                        .replication
                        .retries
                        .lock()
                        .unwrap_or_else(|p| p.into_inner());
                    if !retries.iter().any(|r| &r.job == job) {
                        retries.push(Retry {
                            job: job.clone(),
                            attempts: attempt,
                            at: Instant::now() + first * 2u32.pow(attempt - 1),
                        });
                    }
                } else {
                    let reason = format!("{what} (given up after {attempt} tries)");
                    if let Some(wait) = self.replication.owe_run(rule, reason) {
                        tracing::warn!(rule = %rule.name, image = %format!("{}:{}", job.repo, job.tag), in_secs = wait.as_secs(), "replication gave up on an image: a run of the whole rule copies it");
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
        // The attachments, tags of their own: cosign's signature, attestations and
        // SBOM, and the referrers fallback index.
        let sig_tag = attachment_tag(&digest);
        let base = sig_tag.trim_end_matches(".sig");
        for att in [
            sig_tag.clone(),
            format!("{base}.att"),
            format!("{base}.sbom"),
            base.to_string(),
        ] {
            let sig = match place(true, &att).manifest(None).await {
                Ok(sig) => sig,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(format!("reading {att}: {e}")),
            };
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
        // One task copies for every rule: a target gone silent must fail its copy
        // (retried as any failure), not hold the others for ever.
        read_timeout: Some(TARGET_READ_TIMEOUT),
        ..berth_remote::Options::default()
    };
    berth_remote::Registry::new(host, options)
        .map(Arc::new)
        .map_err(|e| format!("{}: {}", rule.url, chain(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::SocketAddr;
    use std::path::Path;

    use berth_image::{Digest, Manifest};
    use berth_store::NewManifest;
    use serde_json::json;

    use crate::RegistryConfig;

    const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

    /// A registry over `dir` with pull-through caches `proxies`, the catalog off.
    fn open(dir: &Path, proxies: Vec<crate::proxy::ProxyConfig>) -> Arc<Registry> {
        let mut config = RegistryConfig::new(dir.to_path_buf());
        config.catalog = false;
        config.proxies = proxies;
        Registry::open(config).unwrap()
    }

    /// Stores an image (a config and one layer, told apart by `seed`) as `repo:tag`,
    /// as a push does; its digest.
    fn put_image(reg: &Registry, repo: &str, tag: &str, seed: u8) -> Digest {
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []}, "seed": seed,
        }))
        .unwrap();
        let layer = vec![seed; 1000];
        let mut descs = Vec::new();
        for (media_type, bytes) in [
            ("application/vnd.oci.image.config.v1+json", &config),
            ("application/vnd.oci.image.layer.v1.tar", &layer),
        ] {
            let d = Digest::sha256_of(bytes);
            let mut w = reg
                .blobs
                .create_upload(&format!("test-{}", d.hex()))
                .unwrap();
            w.write(bytes).unwrap();
            reg.blobs.commit(w, &d).unwrap();
            reg.link_blob(repo, &d, bytes.len() as u64).unwrap();
            descs.push(
                json!({"mediaType": media_type, "digest": d.to_string(), "size": bytes.len()}),
            );
        }
        let content = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": descs[0], "layers": [descs[1]],
        }))
        .unwrap();
        let digest = Digest::sha256_of(&content);
        let manifest = Manifest::parse(Some(OCI_MANIFEST), &content).unwrap();
        let new = NewManifest::new(digest.clone(), &manifest, content);
        reg.meta.put_manifest(repo, &new, Some(tag)).unwrap();
        digest
    }

    /// Sets rule `r`: every repository and tag to `url`.
    fn set_rule(reg: &Registry, url: &str, on_push: bool, schedule: Option<&str>) {
        let change = berth_auth::Change::ReplicationSet {
            name: "r".into(),
            url: url.into(),
            username: None,
            password: None,
            repos: vec![],
            tags: vec![],
            on_push,
            schedule: schedule.map(Into::into),
        };
        reg.auth
            .store()
            .apply(&berth_auth::Actor::local(), &change)
            .unwrap();
    }

    /// Waits (at most `secs`) until `done`, polling.
    async fn until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !done() {
            assert!(Instant::now() < deadline, "{what}: not within {secs} s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A rule copying only on push, whose target is down until the image's tries ran
    /// out: it is owed a run of its own, which fails while the target is down (and
    /// the status keeps saying so), and copies the image once the target is back,
    /// with no run asked for.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_on_push_rule_copies_an_image_given_up_on_once_its_target_is_back() {
        let dir = tempfile::tempdir().unwrap();
        let src = open(&dir.path().join("source"), vec![]);
        let dst = open(&dir.path().join("target"), vec![]);
        // An address nothing answers on until the target starts there.
        let addr: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        set_rule(&src, &format!("http://{addr}"), true, None);
        src.replication.set_timing(Timing {
            first_retry: Duration::from_millis(10),
            catch_up_first: Duration::from_millis(500),
            catch_up_max: Duration::from_secs(2),
        });
        let replicator = src.spawn_replication();
        let digest = put_image(&src, "team/app", "v1", 1);
        src.replicate_pushed("team/app", "v1");
        // Owed from the start (the start-up catch-up), then for the image given up on.
        until("a run owed for the image", 60, || {
            let s = src.replication_status("r");
            s.catch_up
                .is_some_and(|c| c.reason.starts_with("team/app:"))
        })
        .await;
        let s = src.replication_status("r");
        let reason = &s.catch_up.as_ref().unwrap().reason;
        assert!(reason.starts_with("team/app:v1: "), "{reason}");
        assert!(reason.contains("given up after 5 tries"), "{reason}");
        // The owed run comes, fails (the target is still down) and is owed again.
        until("a failed catch-up run", 30, || {
            src.replication_status("r").last_run_finished.is_some()
        })
        .await;
        let s = src.replication_status("r");
        assert!(s.catch_up.is_some(), "{s:?}");
        assert!(s.last_error.is_some(), "{s:?}");
        assert_eq!(s.last_success, None, "{s:?}");

        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let app = dst
            .router()
            .into_make_service_with_connect_info::<SocketAddr>();
        let target = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        until("the image on the target", 30, || {
            let there = dst.meta.manifest_by_tag("team/app", "v1").unwrap();
            there.is_some_and(|m| m.digest == digest)
        })
        .await;
        until("the debt paid", 30, || {
            src.replication_status("r").catch_up.is_none()
        })
        .await;
        assert!(src.replication_status("r").last_success.is_some());
        replicator.abort();
        target.abort();
    }

    /// A push queued when the server stopped is lost with the queue: after a start, a
    /// rule with no schedule copies it anyway (its start-up catch-up), with no push and
    /// no run asked for.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_on_push_rule_copies_after_a_start_what_its_lost_queue_held() {
        let dir = tempfile::tempdir().unwrap();
        let dst = open(&dir.path().join("target"), vec![]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = dst
            .router()
            .into_make_service_with_connect_info::<SocketAddr>();
        let target = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let src = open(&dir.path().join("source"), vec![]);
        set_rule(&src, &format!("http://{addr}"), true, None);
        // Pushed before the stop; its job never reached the target.
        let digest = put_image(&src, "team/app", "v1", 1);
        src.replication.set_timing(Timing {
            first_retry: Duration::from_millis(10),
            catch_up_first: Duration::from_millis(200),
            catch_up_max: Duration::from_secs(2),
        });
        let replicator = src.spawn_replication();
        until("the image on the target", 30, || {
            let there = dst.meta.manifest_by_tag("team/app", "v1").unwrap();
            there.is_some_and(|m| m.digest == digest)
        })
        .await;
        until("the start-up debt paid", 30, || {
            src.replication_status("r").catch_up.is_none()
        })
        .await;
        assert!(src.replication_status("r").last_success.is_some());
        replicator.abort();
        target.abort();
    }

    /// A push that finds the queue full: a rule with no schedule is owed a run and
    /// says so; one with a schedule leaves the image to it.
    #[tokio::test]
    async fn a_push_the_queue_cannot_take_is_owed_a_run_without_a_schedule() {
        for (schedule, owed) in [(None, true), (Some("1h"), false)] {
            let dir = tempfile::tempdir().unwrap();
            let reg = open(dir.path(), vec![]);
            set_rule(&reg, "http://127.0.0.1:9", true, schedule);
            // The replicator is not running: nothing takes from the queue.
            for _ in 0..=QUEUE {
                reg.replicate_pushed("team/app", "v1");
            }
            let s = reg.replication_status("r");
            let error = s.last_error.unwrap();
            assert!(
                error.contains("more pushes waiting than the queue"),
                "{error}"
            );
            assert_eq!(s.catch_up.is_some(), owed, "{schedule:?}");
            let then = match owed {
                true => "a run of the whole rule copies it",
                false => "the rule's next run copies it",
            };
            assert!(error.contains(then), "{error}");
        }
    }

    /// A failed catch-up run owes another after twice the wait, up to the longest; a
    /// run with no error pays the debt.
    #[test]
    fn catch_up_runs_back_off_until_one_succeeds() {
        let r = Replication::default();
        r.set_timing(Timing {
            first_retry: FIRST_RETRY,
            catch_up_first: Duration::from_millis(1),
            catch_up_max: Duration::from_millis(5),
        });
        let rule =
            ReplicationRule::new("r", "http://x", None, None, vec![], vec![], true, None).unwrap();
        let wait = r.owe_run(&rule, "a:v1: down".into());
        assert!(
            wait.is_some_and(|w| w <= Duration::from_millis(1)),
            "{wait:?}"
        );
        let mut waits = Vec::new();
        for _ in 0..4 {
            std::thread::sleep(Duration::from_millis(6));
            assert!(r.catch_up_due("r"));
            r.ran("r", false, Instant::now());
            waits.push(r.catch_ups()["r"].wait.as_millis());
        }
        assert_eq!(waits, [2, 4, 5, 5]);
        // A run that was not due (asked for meanwhile) and failed leaves the time.
        let at = r.catch_ups()["r"].at;
        r.ran("r", false, Instant::now());
        assert_eq!(r.catch_ups()["r"].at, at);
        // A run that began before the last image was given up on does not pay for it.
        let began = Instant::now();
        r.owe_run(&rule, "a:v2: queue full".into());
        r.ran("r", true, began);
        assert!(r.status("r").catch_up.is_some());
        r.ran("r", true, Instant::now());
        assert!(!r.catch_up_due("r") && r.status("r").catch_up.is_none());
        // A rule with a schedule owes nothing: its next run copies the image.
        let scheduled = ReplicationRule::new(
            "s",
            "http://x",
            None,
            None,
            vec![],
            vec![],
            true,
            Some("1h"),
        )
        .unwrap();
        assert_eq!(r.owe_run(&scheduled, "a:v1: down".into()), None);
    }

    /// A rule over everything leaves out the pull-through cache's repositories.
    #[tokio::test]
    async fn cache_repositories_are_not_replicated() {
        let dir = tempfile::tempdir().unwrap();
        let cache = crate::proxy::config("upstream.test", "http://127.0.0.1:9");
        let reg = open(dir.path(), vec![cache]);
        put_image(&reg, "team/app", "v1", 1);
        put_image(&reg, "upstream.test/library/alpine", "3", 2);
        put_image(&reg, "upstream.test-not-a-cache/app", "v1", 3);
        let rule =
            ReplicationRule::new("r", "http://x", None, None, vec![], vec![], true, None).unwrap();
        let mut images = reg.tags_of(&rule).await.unwrap();
        images.sort();
        let want = [("team/app", "v1"), ("upstream.test-not-a-cache/app", "v1")];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(r, t)| (r.to_string(), t.to_string()))
            .collect();
        assert_eq!(images, want);
    }

    #[test]
    fn attachment_tags() {
        let hex = "a".repeat(64);
        assert!(is_attachment_tag(&format!("sha256-{hex}.sig")));
        assert!(is_attachment_tag(&format!("sha256-{hex}.att")));
        assert!(!is_attachment_tag("sha256-abc.sig"));
        assert!(!is_attachment_tag("v1"));
    }
}
