//! Moving a single-machine registry (blob files + a metadata store) onto object
//! storage and another metadata store (PostgreSQL): `berth registry migrate`.
//!
//! Blobs first, each streamed from its file into the bucket and committed only once
//! its digest is verified as the bytes pass (a corrupt file stops the migration and
//! names the blob). Then the metadata, through the [`MetaStore`] trait on both sides:
//! blob links, manifests (children before the indexes that name them), tags,
//! signatures. Every step is idempotent: a blob already in the bucket with its size is
//! not sent again, a manifest or link stored again changes nothing, so a migration that
//! stopped (killed, network gone) is resumed by running it again.
//!
//! What is not carried: upload sessions in progress (clients start them again), the
//! pull-through cache's manifests, tags' set-at times (they restart at the migration,
//! which retention rules by age then count from).

use std::collections::{HashMap, HashSet};

use berth_image::{Digest, Manifest};

use crate::gc::RepoGraph;
use crate::{BlobStore, MetaStore, NewManifest, ObjectBlobs, Result, StoreError};

/// How many signatures a manifest may have at most (as the registry allows).
const MAX_SIGNATURES: usize = 1024;
/// Tags read per page from the source.
const TAG_PAGE: usize = 1000;
/// The repository that a migration's blob sends are upload sessions of, while they
/// are open (so that replicas' sweepers abort what a killed migration left).
const MIGRATE_SESSIONS: &str = "berth-migrate";

/// What a migration did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// Blobs sent to the bucket, and their bytes.
    pub blobs_copied: u64,
    pub bytes_copied: u64,
    /// Blobs that were in the bucket already (a resumed migration, shared content).
    pub blobs_present: u64,
    pub repositories: u64,
    pub links: u64,
    pub manifests: u64,
    pub tags: u64,
    pub signatures: u64,
}

/// One step done, for progress output.
pub enum Step<'a> {
    Blob {
        digest: &'a Digest,
        size: u64,
        copied: bool,
    },
    Repository(&'a str),
}

/// Copies everything `src_meta` names, with the bytes from `src_blobs`, to `dst_meta`
/// and `dst_blobs`.
pub fn migrate(
    src_meta: &dyn MetaStore,
    src_blobs: &BlobStore,
    dst_meta: &dyn MetaStore,
    dst_blobs: &ObjectBlobs,
    progress: &mut dyn FnMut(Step<'_>),
) -> Result<Report> {
    let mut report = Report::default();
    let graph = src_meta.gc_graph()?;
    let mut sizes = HashMap::with_capacity(graph.blobs.len());
    for (digest, size, _) in &graph.blobs {
        let d: Digest = digest
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("blob row {digest:?}: {e}")))?;
        let copied = copy_blob(src_blobs, dst_blobs, dst_meta, &d, *size)?;
        if copied {
            report.blobs_copied += 1;
            report.bytes_copied += size;
        } else {
            report.blobs_present += 1;
        }
        progress(Step::Blob {
            digest: &d,
            size: *size,
            copied,
        });
        sizes.insert(digest.clone(), *size);
    }
    for repo in &graph.repositories {
        copy_repository(src_meta, dst_meta, repo, &sizes, &mut report)?;
        report.repositories += 1;
        progress(Step::Repository(&repo.name));
    }
    Ok(report)
}

/// Sends one blob unless the bucket has it with its size; true when it was sent.
fn copy_blob(
    src: &BlobStore,
    dst: &ObjectBlobs,
    dst_meta: &dyn MetaStore,
    d: &Digest,
    size: u64,
) -> Result<bool> {
    if dst.size_sync(d)? == Some(size) {
        return Ok(false);
    }
    let Some((file, on_disk)) = src.open_blob(d)? else {
        return Err(StoreError::Corrupt(format!(
            "blob {d} is in the metadata but its file is missing \
             (berth registry fsck --repair removes such rows)"
        )));
    };
    if on_disk != size {
        return Err(StoreError::SizeMismatch {
            expected: size,
            actual: on_disk,
        });
    }
    let id = format!("migrate-{}", uuid::Uuid::new_v4().simple());
    dst.put_file(dst_meta, MIGRATE_SESSIONS, &id, d, file)?;
    Ok(true)
}

fn parse(d: &str) -> Result<Digest> {
    d.parse()
        .map_err(|e| StoreError::Corrupt(format!("digest {d:?}: {e}")))
}

fn copy_repository(
    src: &dyn MetaStore,
    dst: &dyn MetaStore,
    repo: &RepoGraph,
    sizes: &HashMap<String, u64>,
    report: &mut Report,
) -> Result<()> {
    let name = repo.name.as_str();
    for (digest, _) in &repo.links {
        let size = *sizes.get(digest).ok_or_else(|| {
            StoreError::Corrupt(format!("{name} links {digest}, which has no row"))
        })?;
        // Every blob was put in the bucket above.
        dst.link_blob(name, &parse(digest)?, size, &|| true)?;
        report.links += 1;
    }
    // Manifests, each once its child manifests are stored (an index after what it
    // lists); whatever never becomes ready names a child that is not there.
    let mut pending: Vec<NewManifest> = Vec::with_capacity(repo.manifests.len());
    for m in &repo.manifests {
        let d = parse(&m.digest)?;
        let stored = src
            .manifest_by_digest(name, &d)?
            .ok_or_else(|| StoreError::MissingManifest(d.clone()))?;
        let parsed = Manifest::parse(Some(&stored.media_type), &stored.content)
            .map_err(|e| StoreError::Corrupt(format!("manifest {d} of {name}: {e}")))?;
        pending.push(NewManifest::new(d, &parsed, stored.content));
    }
    let mut done: HashSet<Digest> = HashSet::with_capacity(pending.len());
    while !pending.is_empty() {
        let (ready, waiting): (Vec<_>, Vec<_>) = pending
            .into_iter()
            .partition(|m| m.manifests.iter().all(|c| done.contains(c)));
        if ready.is_empty() {
            let m = &waiting[0];
            return Err(StoreError::Corrupt(format!(
                "manifest {} of {name} lists a manifest the repository does not hold",
                m.digest
            )));
        }
        for m in ready {
            dst.put_manifest(name, &m, None)?;
            for sig in src.signatures(name, &m.digest)? {
                dst.add_signature(name, &m.digest, &sig, MAX_SIGNATURES)?;
                report.signatures += 1;
            }
            report.manifests += 1;
            done.insert(m.digest);
        }
        pending = waiting;
    }
    let mut last: Option<String> = None;
    loop {
        let page = src.tags(name, last.as_deref(), TAG_PAGE)?;
        for tag in &page {
            let Some((d, _)) = src.tag_set_at(name, tag)? else {
                continue; // deleted meanwhile
            };
            let stored = src
                .manifest_by_digest(name, &d)?
                .ok_or_else(|| StoreError::MissingManifest(d.clone()))?;
            let parsed = Manifest::parse(Some(&stored.media_type), &stored.content)
                .map_err(|e| StoreError::Corrupt(format!("manifest {d} of {name}: {e}")))?;
            dst.put_manifest(
                name,
                &NewManifest::new(d, &parsed, stored.content),
                Some(tag),
            )?;
            report.tags += 1;
        }
        if page.len() < TAG_PAGE {
            break;
        }
        last = page.last().cloned();
    }
    Ok(())
}
