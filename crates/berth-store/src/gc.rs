//! Online garbage collection: which content nothing needs any more, and its removal
//! while pushes and pulls go on.
//!
//! A run has two halves. [`plan`] (the mark) reads one consistent snapshot of the
//! metadata and decides, with a cutoff time `now - grace`, what is garbage:
//! - a manifest is live when it is tagged, was stored (or stored again) at or after the
//!   cutoff, is a child of a live index, or is a referrer of a live subject; with
//!   `keep_untagged` every manifest is live. Every other manifest is garbage, and goes
//!   with its signatures, references and tags.
//! - an attachment tag (cosign's `sha256-<hex>.sig`, `.att`, `.sbom`, the bare
//!   referrers-fallback tag: see [`attachment_subject`]) whose subject is a manifest of
//!   the repository is a referrer by name: what it points to is live while its
//!   subject is, so the signatures of a collected image go with it, as its OCI
//!   referrers do. One whose subject is not there stays a root: the image may live in
//!   another repository or registry (cosign's `COSIGN_REPOSITORY`), or the tag only
//!   looks like one.
//! - a repository's link to a blob is garbage when it was made before the cutoff and no
//!   live manifest of the repository references the blob.
//! - a blob (row and file) is garbage when it was stored before the cutoff and no link
//!   to it would be left.
//!
//! [`sweep`] then removes what the plan found, through the **fence**: every row deletion is
//! made in a write transaction that computes liveness again from what the database
//! holds at that moment and deletes only what is garbage both in the plan and now. The
//! metadata store serializes writers, so a manifest PUT that references a blob either
//! commits before that transaction (and the blob is live) or after it (and finds the
//! link gone and fails cleanly): it never commits a reference to deleted content. A
//! blob's row is deleted only when no link is left, and a tombstone for its digest is
//! written in the same transaction; its file is removed after that with no lock held,
//! and the tombstone cleared last. A link (see [`crate::MetaStore::link_blob`]) is
//! refused while the tombstone exists and when the file is missing, so no row ever
//! names a removed file.
//! Content linked or stored again after the cutoff carries a fresh `created_at`, so the
//! grace period covers uploads in flight and manifests about to be pushed.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use berth_image::Digest;

use crate::meta::MetaStore;
use crate::BlobBytes;
use crate::Result;

/// What a collection run may remove.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Content younger than this is spared.
    pub grace: Duration,
    /// Keep untagged manifests (only unreferenced blobs go).
    pub keep_untagged: bool,
    /// Only this repository (its manifests, its links, and the blobs they release).
    pub repo: Option<String>,
    /// `(repository, digest)` of tags the plan takes as deleted, one tag each: what a
    /// dry run of retention would delete first (a real run deletes them before it).
    pub untag: Vec<(String, String)>,
}

impl Default for GcOptions {
    fn default() -> GcOptions {
        GcOptions {
            grace: Duration::from_secs(24 * 3600),
            keep_untagged: false,
            repo: None,
            untag: Vec::new(),
        }
    }
}

/// The longest grace period a run takes. The cutoff is `now - grace` in signed unix
/// seconds; a longer grace does not fit in them (`as i64` used to wrap it to a negative
/// grace, a cutoff in the future, and a run that removed everything, fresh uploads
/// too). About 292 billion years, so no meaningful setting is refused.
pub const MAX_GRACE: Duration = Duration::from_secs(i64::MAX as u64);

/// `grace` when a run can take it, else why not: for the places a grace is read (the
/// CLI, the configuration, the API), so that a wrong one is refused where it is given.
pub fn check_grace(grace: Duration) -> std::result::Result<Duration, String> {
    if grace > MAX_GRACE {
        return Err(format!(
            "{} s is longer than the longest grace period, {} s (about 292 billion years)",
            grace.as_secs(),
            MAX_GRACE.as_secs()
        ));
    }
    Ok(grace)
}

/// `now - grace`, saturating: a grace over [`MAX_GRACE`] spares everything rather than
/// wrapping into a cutoff in the future.
pub fn cutoff(now: i64, grace: Duration) -> i64 {
    now.saturating_sub(i64::try_from(grace.as_secs()).unwrap_or(i64::MAX))
}

/// One manifest as the collector sees it.
#[derive(Debug, Clone)]
pub struct GcManifest {
    pub digest: String,
    pub size: u64,
    pub created_at: i64,
    pub subject: Option<String>,
}

/// One repository's content graph, read by [`MetaStore::gc_graph`].
#[derive(Debug, Clone, Default)]
pub struct RepoGraph {
    pub name: String,
    pub manifests: Vec<GcManifest>,
    /// `(parent manifest, child digest, child is a manifest)`.
    pub references: Vec<(String, String, bool)>,
    /// Digests that tags point to, attachment tags aside.
    pub tagged: Vec<String>,
    /// `(subject digest, digest the tag points to)` of the attachment tags.
    pub attached: Vec<(String, String)>,
    /// `(blob digest, created_at)` of the repository's blob links.
    pub links: Vec<(String, i64)>,
}

/// The whole store as the collector sees it.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    pub repositories: Vec<RepoGraph>,
    /// `(digest, size, created_at)` of every stored blob.
    pub blobs: Vec<(String, u64, i64)>,
}

/// What is garbage in one repository.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoGarbage {
    pub repository: String,
    /// `(digest, size)`.
    pub manifests: Vec<(String, u64)>,
    /// Blob digests whose link from this repository goes.
    pub links: Vec<String>,
}

/// The mark's result: what a sweep will remove (at most; see the module's fence).
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Unix seconds: content created before this may go.
    pub cutoff: i64,
    pub keep_untagged: bool,
    pub repositories: Vec<RepoGarbage>,
    /// `(digest, size)` of blobs whose row and file go.
    pub blobs: Vec<(String, u64)>,
}

impl Plan {
    pub fn manifest_count(&self) -> usize {
        self.repositories.iter().map(|r| r.manifests.len()).sum()
    }
    pub fn link_count(&self) -> usize {
        self.repositories.iter().map(|r| r.links.len()).sum()
    }
    pub fn blob_bytes(&self) -> u64 {
        self.blobs.iter().map(|(_, s)| s).sum()
    }
}

/// What one repository's sweep removed.
#[derive(Debug, Clone, Default)]
pub struct Swept {
    pub manifests: Vec<(String, u64)>,
    pub links: usize,
}

/// The subject digest (`sha256:<hex>`) an attachment tag names: `sha256-<64 lowercase
/// hex>`, optionally `.<suffix>` (cosign's `.sig`, `.att`, `.sbom`; bare, the OCI 1.1
/// referrers fallback index), as cosign and the distribution spec spell them.
pub fn attachment_subject(tag: &str) -> Option<String> {
    let rest = tag.strip_prefix("sha256-")?;
    let hex = rest.split_once('.').map_or(rest, |(h, _)| h);
    (hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then(|| format!("sha256:{hex}"))
}

/// Files a tag read from the store under `tagged` or, for an attachment tag, `attached`.
pub(crate) fn add_tag(g: &mut RepoGraph, name: &str, digest: String) {
    match attachment_subject(name) {
        Some(subject) => g.attached.push((subject, digest)),
        None => g.tagged.push(digest),
    }
}

/// Manifests and links of `g` that are garbage for `cutoff` (the rules in the module
/// doc).
pub fn repo_garbage(g: &RepoGraph, cutoff: i64, keep_untagged: bool) -> RepoGarbage {
    let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
    for (parent, child, is_manifest) in &g.references {
        if *is_manifest {
            children.entry(parent).or_default().push(child);
        }
    }
    let mut referrers: HashMap<&str, Vec<&str>> = HashMap::new();
    for m in &g.manifests {
        if let Some(s) = &m.subject {
            referrers.entry(s).or_default().push(&m.digest);
        }
    }
    let mut attachments: HashMap<&str, Vec<&str>> = HashMap::new();
    for (subject, d) in &g.attached {
        attachments.entry(subject).or_default().push(d);
    }
    let here: HashSet<&str> = g.manifests.iter().map(|m| m.digest.as_str()).collect();
    let mut live: HashSet<&str> = HashSet::new();
    let mut todo: Vec<&str> = g.tagged.iter().map(String::as_str).collect();
    todo.extend(
        g.manifests
            .iter()
            .filter(|m| keep_untagged || m.created_at >= cutoff)
            .map(|m| m.digest.as_str()),
    );
    todo.extend(
        g.attached
            .iter()
            .filter(|(s, _)| !here.contains(s.as_str()))
            .map(|(_, d)| d.as_str()),
    );
    while let Some(d) = todo.pop() {
        if !live.insert(d) {
            continue;
        }
        let next = children.get(d).into_iter().chain(referrers.get(d));
        for next in next.chain(attachments.get(d)) {
            todo.extend(next.iter().copied());
        }
    }
    let manifests: Vec<(String, u64)> = g
        .manifests
        .iter()
        .filter(|m| !live.contains(m.digest.as_str()))
        .map(|m| (m.digest.clone(), m.size))
        .collect();
    let needed: HashSet<&str> = g
        .references
        .iter()
        .filter(|(parent, _, is_manifest)| !is_manifest && live.contains(parent.as_str()))
        .map(|(_, child, _)| child.as_str())
        .collect();
    let links = g
        .links
        .iter()
        .filter(|(d, at)| *at < cutoff && !needed.contains(d.as_str()))
        .map(|(d, _)| d.clone())
        .collect();
    RepoGarbage {
        repository: g.name.clone(),
        manifests,
        links,
    }
}

/// The mark: what a run with `opts` at `now` (unix seconds) would remove.
pub fn plan(meta: &dyn MetaStore, opts: &GcOptions, now: i64) -> Result<Plan> {
    let cutoff = cutoff(now, opts.grace);
    let graph = meta.gc_graph()?;
    let mut plan = Plan {
        cutoff,
        keep_untagged: opts.keep_untagged,
        ..Plan::default()
    };
    let mut links_left: HashMap<&str, usize> = HashMap::new();
    let mut released: HashSet<String> = HashSet::new();
    let mut untag: HashMap<&str, Vec<&str>> = HashMap::new();
    for (repo, digest) in &opts.untag {
        untag.entry(repo).or_default().push(digest);
    }
    for g in &graph.repositories {
        let in_scope = opts.repo.as_deref().is_none_or(|r| r == g.name);
        let garbage = match (in_scope, untag.get(g.name.as_str())) {
            (false, _) => RepoGarbage::default(),
            (true, None) => repo_garbage(g, cutoff, opts.keep_untagged),
            (true, Some(digests)) => {
                let mut g = g.clone();
                for d in digests {
                    if let Some(i) = g.tagged.iter().position(|t| t == d) {
                        g.tagged.swap_remove(i);
                    }
                }
                repo_garbage(&g, cutoff, opts.keep_untagged)
            }
        };
        let going: HashSet<&str> = garbage.links.iter().map(String::as_str).collect();
        for (d, _) in &g.links {
            if !going.contains(d.as_str()) {
                *links_left.entry(d).or_default() += 1;
            }
        }
        released.extend(garbage.links.iter().cloned());
        if !garbage.manifests.is_empty() || !garbage.links.is_empty() {
            plan.repositories.push(garbage);
        }
    }
    plan.blobs = graph
        .blobs
        .iter()
        .filter(|(d, _, at)| *at < cutoff && !links_left.contains_key(d.as_str()))
        .filter(|(d, _, _)| opts.repo.is_none() || released.contains(d))
        .map(|(d, size, _)| (d.clone(), *size))
        .collect();
    Ok(plan)
}

/// What a sweep removed.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// `(repository, digest, size)`.
    pub manifests: Vec<(String, String, u64)>,
    pub links: usize,
    /// `(digest, size)` of blobs whose row and file were removed.
    pub blobs: Vec<(String, u64)>,
}

impl Outcome {
    pub fn bytes_freed(&self) -> u64 {
        self.blobs.iter().map(|(_, s)| s).sum()
    }
}

/// Removes what `plan` found and is still garbage (the fence: see the module doc).
pub fn sweep(meta: &dyn MetaStore, blobs: &dyn BlobBytes, plan: &Plan) -> Result<Outcome> {
    let mut out = Outcome::default();
    // Repositories in groups of about GROUP garbage rows per write transaction: one
    // commit (fsync) for many small repositories, the writer held briefly. Rows of
    // digests land all over the indexes, so a group's pages are mostly its own: with
    // groups of 2000 the commits and checkpoints wrote the same pages again and again
    // (measured: 1.7 s for 5,000 manifests and 25,000 blobs unloaded; 1.1 s with 8000,
    // a run of about eight transactions, so the writer is held for ~0.1 s at a time).
    const GROUP: usize = 8000;
    let mut start = 0;
    while start < plan.repositories.len() {
        let (mut end, mut rows) = (start, 0);
        while end < plan.repositories.len() && (end == start || rows < GROUP) {
            let g = &plan.repositories[end];
            rows += g.manifests.len() + g.links.len();
            end += 1;
        }
        let group = &plan.repositories[start..end];
        let swept = meta.gc_sweep_repositories(group, plan.cutoff, plan.keep_untagged)?;
        for (garbage, swept) in group.iter().zip(swept) {
            out.links += swept.links;
            out.manifests.extend(
                swept
                    .manifests
                    .into_iter()
                    .map(|(d, s)| (garbage.repository.clone(), d, s)),
            );
        }
        start = end;
    }
    clear_stale_tombstones(meta, blobs, crate::unix_now())?;
    // Rows first (a row only goes when no link to it is left, tombstoned in the same
    // transaction), then the files with no lock held, then the tombstones. A batch's
    // files go while the next batch's rows are deleted: the unlinks wait on the disk,
    // the rows on the CPU, so the two overlap.
    const BATCH: usize = 8000;
    std::thread::scope(|s| -> Result<()> {
        let mut unlinking: Option<std::thread::ScopedJoinHandle<Result<Vec<Digest>>>> = None;
        for chunk in plan.blobs.chunks(BATCH) {
            let gone = meta.gc_delete_blobs(chunk, plan.cutoff)?;
            let digests: Vec<Digest> = gone.iter().filter_map(|(d, _)| d.parse().ok()).collect();
            out.blobs.extend(gone);
            if let Some(previous) = unlinking.take() {
                meta.gc_clear_tombstones(&joined(previous)?)?;
            }
            unlinking = Some(s.spawn(move || unlink_all(blobs, &digests).map(|()| digests)));
        }
        if let Some(last) = unlinking {
            meta.gc_clear_tombstones(&joined(last)?)?;
        }
        Ok(())
    })?;
    Ok(out)
}

/// A tombstone this old belongs to a run that stopped between its rows and its files
/// (no run takes this long to unlink a batch).
const STALE_TOMBSTONE_SECS: i64 = 3600;

/// Removes the files of blobs no row names (fsck's orphans) through the same fence as
/// the collector; returns those removed.
pub fn remove_unnamed_files(
    meta: &dyn MetaStore,
    blobs: &dyn BlobBytes,
    digests: &[Digest],
) -> Result<Vec<Digest>> {
    let marked = meta.gc_tombstone_unnamed(digests)?;
    unlink_all(blobs, &marked)?;
    meta.gc_clear_tombstones(&marked)?;
    Ok(marked)
}

/// A cache's eviction: removes the `(repository, digest, size, linked_at)` links that
/// are still as eviction read them (one renewed since by a hit stays), then the blobs
/// no link is left to (rows and files, whatever their age, through the collector's
/// fence: a blob linked again meanwhile stays, and a link cannot be made to a blob
/// while it goes). Returns `(digest, size)` of the blobs removed.
pub fn evict_links(
    meta: &dyn MetaStore,
    blobs: &dyn BlobBytes,
    links: &[(String, Digest, u64, i64)],
) -> Result<Vec<(String, u64)>> {
    let mut candidates = Vec::with_capacity(links.len());
    for (repo, digest, size, linked_at) in links {
        if meta.unlink_blob_if(repo, digest, *linked_at)? {
            candidates.push((digest.to_string(), *size));
        }
    }
    candidates.sort();
    candidates.dedup();
    let gone = meta.gc_delete_blobs(&candidates, i64::MAX)?;
    let digests: Vec<Digest> = gone.iter().filter_map(|(d, _)| d.parse().ok()).collect();
    unlink_all(blobs, &digests)?;
    meta.gc_clear_tombstones(&digests)?;
    Ok(gone)
}

/// How old a blob commit's note must be before [`recover_blob_commits`] takes it for a
/// crash's. On PostgreSQL with a shared bucket the notes are every replica's, and a
/// replica starting while another commits must not take that commit's note (it used to
/// remove the object just put, and the push got `BLOB_VANISHED`). A commit holds its
/// note from before its rename (or its object's completion and copy) to its link:
/// milliseconds on disk, up to a minute or two for a 5 GiB server-side copy, and for the
/// pull-through cache's fill into a bucket the whole upload of the layer
/// (`ObjectBlobs::put_file` runs after the note). An hour covers a 70 GB layer at 20
/// MB/s; what a crash left waits that long (plus until the next pass: start-up, or the
/// collector's next run), named by no row, invisible, counted by fsck as under way.
pub const STALE_COMMIT: Duration = Duration::from_secs(3600);

/// Finishes the blob commits a crash cut off (see [`MetaStore::begin_blob_commit`]):
/// of the notes older than [`STALE_COMMIT`] at `now` (unix seconds), a noted file that
/// a row names was linked and stays; one that no row names was renamed into `blobs/`
/// and never acknowledged, and is removed (through the collector's fence). Younger
/// notes may be commits under way on this or another replica, and are left to a later
/// pass. Run at start-up and by every collection of the whole registry: work grows with
/// the uploads that were under way, not with what is stored. Returns the files removed.
pub fn recover_blob_commits(
    meta: &dyn MetaStore,
    blobs: &dyn BlobBytes,
    now: i64,
) -> Result<Vec<Digest>> {
    let before = cutoff(now, STALE_COMMIT);
    let open: Vec<Digest> = meta
        .open_blob_commits()?
        .into_iter()
        .filter(|(_, noted_at)| *noted_at < before)
        .map(|(d, _)| d)
        .collect();
    if open.is_empty() {
        return Ok(Vec::new());
    }
    let removed = remove_unnamed_files(meta, blobs, &open)?;
    meta.end_blob_commits(&open, before)?;
    Ok(removed)
}

/// Finishes what a stopped removal (a crash, a failed unlink; the collector's,
/// eviction's or fsck's) left behind its tombstones older than an hour at `now`: their
/// files go and the tombstones with them, so that pushes of those digests link again
/// (a tombstone refuses them, `BLOB_VANISHED`). Run by the upload sweeper (its first
/// pass at start-up) and by each collection: before, only a collection did, and a
/// registry with the collector off refused those blobs for good. Returns how many it
/// cleared.
pub fn clear_stale_tombstones(
    meta: &dyn MetaStore,
    blobs: &dyn BlobBytes,
    now: i64,
) -> Result<usize> {
    let stale = meta.gc_stale_tombstones(now - STALE_TOMBSTONE_SECS)?;
    if stale.is_empty() {
        return Ok(0);
    }
    unlink_all(blobs, &stale)?;
    meta.gc_clear_tombstones(&stale)?;
    Ok(stale.len())
}

/// A worker thread's result; its panic becomes an error.
fn joined<T>(worker: std::thread::ScopedJoinHandle<'_, Result<T>>) -> Result<T> {
    worker.join().unwrap_or_else(|_| {
        Err(crate::StoreError::Corrupt(
            "a file removal thread panicked".into(),
        ))
    })
}

/// Unlinks blob files on many threads: an unlink mostly waits for the file system
/// (its journal, or on a disk mounted with `discard` the discard of the freed blocks,
/// 0.1-2 ms each on this machine's ext4), so they overlap well. 25,000 small blobs:
/// about 1.5 s with 8 threads, 0.9 s with 32; 64 and 128 did no better. Beside a
/// server's pulls (`berth-bench --only gc`, idle) with the process at nice 10, the
/// whole collection took 2.9 s on 8 threads, 2.3 s on 16 and 2.5 s on 32, the pulls
/// keeping 85-94%, 78-82% and 73-84% of their rate: 16 is as fast as 32 and gentler.
/// With the 16 unlink threads alone at nice 19 ([`lowest_priority`]): 2.5-2.8 s, the
/// pulls keeping 92-105% (bench/README.md, 2026-12-06).
fn unlink_all(blobs: &dyn BlobBytes, digests: &[Digest]) -> Result<()> {
    const THREADS: usize = 16;
    if digests.is_empty() {
        return Ok(());
    }
    let per = digests.len().div_ceil(THREADS);
    std::thread::scope(|s| {
        let workers: Vec<_> = digests
            .chunks(per)
            .map(|c| {
                s.spawn(move || {
                    lowest_priority();
                    c.iter().try_for_each(|d| blobs.remove_blob(d))
                })
            })
            .collect();
        workers.into_iter().try_for_each(joined)
    })
}

/// Puts the calling thread at nice 19 (on Linux a thread's own setting): the kernel
/// work of unlinks (freeing blocks, submitting discards) is maintenance, and on 16
/// threads at normal priority it took a quarter of the CPU from the pulls beside it.
fn lowest_priority() {
    // SAFETY: setpriority on the calling thread (who = 0), no pointers.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 19);
    }
}

/// One whole run, as reported to an operator.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub dry_run: bool,
    pub cutoff: i64,
    /// `(repository, digest, size)` of manifests removed (or, dry, to remove).
    pub manifests: Vec<(String, String, u64)>,
    /// Repository links to blobs removed.
    pub links: usize,
    /// `(digest, size)` of blobs whose row and file were removed.
    pub blobs: Vec<(String, u64)>,
    /// Files of blob commits a crash cut off, removed ([`recover_blob_commits`]).
    pub commits_recovered: usize,
    pub duration: Duration,
}

impl RunReport {
    pub fn bytes_freed(&self) -> u64 {
        self.blobs.iter().map(|(_, s)| s).sum()
    }

    /// The report as JSON: counts, and each manifest and blob (the dry run's list).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "dry_run": self.dry_run,
            "cutoff": self.cutoff,
            "manifests_removed": self.manifests.len(),
            "links_removed": self.links,
            "blobs_removed": self.blobs.len(),
            "commits_recovered": self.commits_recovered,
            "bytes_freed": self.bytes_freed(),
            "duration_seconds": self.duration.as_secs_f64(),
            "manifests": self.manifests.iter().map(|(r, d, s)| serde_json::json!({
                "repository": r, "digest": d, "size": s,
            })).collect::<Vec<_>>(),
            "blobs": self.blobs.iter().map(|(d, s)| serde_json::json!({
                "digest": d, "size": s,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Plans and, unless `dry_run`, sweeps: the one entry point of the server's collector,
/// `berth registry gc` and the API.
pub fn run(
    meta: &dyn MetaStore,
    blobs: &dyn BlobBytes,
    opts: &GcOptions,
    dry_run: bool,
) -> Result<RunReport> {
    let started = std::time::Instant::now();
    let plan = plan(meta, opts, crate::unix_now())?;
    let mut report = RunReport {
        dry_run,
        cutoff: plan.cutoff,
        manifests: Vec::new(),
        links: 0,
        blobs: Vec::new(),
        commits_recovered: 0,
        duration: Duration::ZERO,
    };
    if dry_run {
        for r in &plan.repositories {
            report.manifests.extend(
                r.manifests
                    .iter()
                    .map(|(d, s)| (r.repository.clone(), d.clone(), *s)),
            );
        }
        report.links = plan.link_count();
        report.blobs = plan.blobs;
    } else {
        let out = sweep(meta, blobs, &plan)?;
        report.manifests = out.manifests;
        report.links = out.links;
        report.blobs = out.blobs;
        // The later pass for commit notes too young at start-up (a replica may run for
        // months); not for one repository's run, which touches only its content.
        if opts.repo.is_none() {
            report.commits_recovered = recover_blob_commits(meta, blobs, crate::unix_now())?.len();
        }
    }
    report.duration = started.elapsed();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(d: &str, at: i64, subject: Option<&str>) -> GcManifest {
        GcManifest {
            digest: d.into(),
            size: 10,
            created_at: at,
            subject: subject.map(Into::into),
        }
    }

    fn graph() -> RepoGraph {
        RepoGraph {
            name: "r".into(),
            manifests: vec![
                m("tagged", 0, None),
                m("index", 0, None),
                m("child", 0, None),
                m("sig", 0, Some("tagged")),
                m("orphan-ref", 0, Some("gone")),
                m("untagged", 0, None),
                m("fresh", 100, None),
                m("fresh-child", 0, None),
            ],
            references: vec![
                ("tagged".into(), "layer-a".into(), false),
                ("index".into(), "child".into(), true),
                ("child".into(), "layer-b".into(), false),
                ("untagged".into(), "layer-c".into(), false),
                ("untagged".into(), "layer-a".into(), false),
                ("fresh".into(), "fresh-child".into(), true),
            ],
            tagged: vec!["tagged".into(), "index".into()],
            attached: Vec::new(),
            links: vec![
                ("layer-a".into(), 0),
                ("layer-b".into(), 0),
                ("layer-c".into(), 0),
                ("loose-old".into(), 0),
                ("loose-new".into(), 100),
            ],
        }
    }

    #[test]
    fn live_is_tagged_children_referrers_and_fresh() {
        let g = repo_garbage(&graph(), 50, false);
        let names: Vec<&str> = g.manifests.iter().map(|(d, _)| d.as_str()).collect();
        assert_eq!(names, ["orphan-ref", "untagged"]);
        assert_eq!(g.links, ["layer-c", "loose-old"]);
    }

    #[test]
    fn keep_untagged_keeps_manifests_and_what_they_reference() {
        let g = repo_garbage(&graph(), 50, true);
        assert!(g.manifests.is_empty());
        assert_eq!(g.links, ["loose-old"]);
    }

    #[test]
    fn grace_spares_everything_younger() {
        let g = repo_garbage(&graph(), -1, false);
        assert_eq!(
            g,
            RepoGarbage {
                repository: "r".into(),
                ..RepoGarbage::default()
            }
        );
    }

    /// `sha256:<c…>` for a one-letter name, as a digest and as its attachment tag.
    fn subject(c: char) -> (String, String) {
        let hex = c.to_string().repeat(64);
        (format!("sha256:{hex}"), format!("sha256-{hex}"))
    }

    #[test]
    fn attachment_tags_live_and_go_with_their_subject() {
        let (live, live_tag) = subject('a');
        let (dead, dead_tag) = subject('b');
        let (_, away_tag) = subject('c');
        let (_, lost_tag) = subject('d');
        // A signature that is signed in turn (cosign signs its attachments on request).
        let (sig_live, sig_live_tag) = subject('e');
        let mut g = RepoGraph {
            name: "r".into(),
            manifests: vec![
                m(&live, 0, None),
                m(&dead, 0, None),
                m(&sig_live, 0, None),
                m("sbom-of-sig-live", 0, None),
                m("sig-dead", 0, None),
                m("sig-away", 0, None),
                m("sig-lost", 0, None),
                m("att-fresh", 100, None),
            ],
            tagged: vec![live.clone()],
            ..RepoGraph::default()
        };
        for (tag, d) in [
            (format!("{live_tag}.sig"), sig_live.as_str()),
            (format!("{sig_live_tag}.sbom"), "sbom-of-sig-live"),
            (format!("{dead_tag}.sig"), "sig-dead"),
            (format!("{dead_tag}.att"), "att-fresh"),
            (format!("{away_tag}.sig"), "sig-away"),
            (format!("{lost_tag}.sig"), "sig-lost"),
        ] {
            add_tag(&mut g, &tag, d.into());
        }
        assert_eq!(g.tagged, [live], "attachment tags are not roots");

        // Attachments of subjects not here (elsewhere, or nowhere) stay roots.
        let garbage = repo_garbage(&g, 50, false);
        let names: Vec<&str> = garbage.manifests.iter().map(|(d, _)| d.as_str()).collect();
        assert_eq!(names, [dead.as_str(), "sig-dead"]);
        // Keep-untagged keeps every manifest, attachments too.
        assert!(repo_garbage(&g, 50, true).manifests.is_empty());
    }

    #[test]
    fn attachment_tags_are_spelt_as_cosign_spells_them() {
        let hex = "0123456789abcdef".repeat(4);
        let want = Some(format!("sha256:{hex}"));
        for suffix in ["", ".sig", ".att", ".sbom"] {
            assert_eq!(attachment_subject(&format!("sha256-{hex}{suffix}")), want);
        }
        assert_eq!(
            attachment_subject(&format!("sha256-{}", hex.to_uppercase())),
            None
        );
        assert_eq!(
            attachment_subject(&format!("sha256-{}.sig", &hex[1..])),
            None
        );
        assert_eq!(attachment_subject(&format!("sha512-{hex}.sig")), None);
        assert_eq!(attachment_subject("latest"), None);
    }
}
