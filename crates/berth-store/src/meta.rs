//! The metadata store: everything about registry content that is not its bytes.
//!
//! Calls are synchronous and short. The SQLite implementation answers reads in
//! microseconds; a network database would be called from blocking tasks.

use berth_image::Digest;

use crate::Result;

/// A manifest about to be stored, with what it references.
#[derive(Debug, Clone)]
pub struct NewManifest {
    pub digest: Digest,
    pub media_type: String,
    pub content: Vec<u8>,
    /// Blobs (config, layers) that must already be in the repository.
    pub blobs: Vec<Digest>,
    /// Child manifests (of an index) that must already be in the repository.
    pub manifests: Vec<Digest>,
    pub subject: Option<Digest>,
    pub artifact_type: Option<String>,
    /// JSON object of the manifest's annotations, for the referrers API.
    pub annotations: Option<String>,
}

impl NewManifest {
    /// What storing `content` (parsed as `manifest`, with digest `digest`) records:
    /// the blobs and child manifests it needs, its subject, artifact type and
    /// annotations. Non-distributable (foreign) layers are not required.
    /// Each digest once: a 4 MiB manifest naming one layer 27,000 times was as many
    /// checks and inserts inside the write transaction.
    pub fn new(digest: Digest, manifest: &berth_image::Manifest, content: Vec<u8>) -> NewManifest {
        fn unique<'d>(
            descriptors: impl Iterator<Item = &'d berth_image::Descriptor>,
        ) -> Vec<Digest> {
            let mut seen = std::collections::HashSet::new();
            descriptors
                .filter(|d| seen.insert(&d.digest))
                .map(|d| d.digest.clone())
                .collect()
        }
        NewManifest {
            digest,
            media_type: manifest.media_type.clone(),
            blobs: unique(
                manifest
                    .config
                    .iter()
                    .chain(&manifest.layers)
                    .filter(|d| !berth_image::media_type::is_non_distributable(&d.media_type)),
            ),
            manifests: unique(manifest.manifests.iter()),
            subject: manifest.subject.as_ref().map(|s| s.digest.clone()),
            artifact_type: manifest.effective_artifact_type(),
            annotations: manifest
                .annotations
                .as_ref()
                .map(|a| serde_json::to_string(a).unwrap_or_default()),
            content,
        }
    }
}

/// A manifest as served: exactly the bytes that were pushed.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    pub digest: Digest,
    pub media_type: String,
    pub content: Vec<u8>,
    /// Unix seconds: when it was stored, stored again or renewed (the collector's
    /// grace).
    pub created_at: i64,
}

/// A stored manifest without its bytes (see [`MetaStore::manifests_after`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    pub repository: String,
    pub digest: Digest,
    pub media_type: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// One entry of a referrers answer.
#[derive(Debug, Clone)]
pub struct Referrer {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub artifact_type: Option<String>,
    /// The manifest's annotations (JSON), unless longer than
    /// [`MAX_REFERRER_ANNOTATIONS`]: a listing of many referrers of 4 MiB of
    /// annotations each would be gigabytes.
    pub annotations: Option<String>,
    /// Unix seconds it was stored: with the digest, where a page of them ends.
    pub created_at: i64,
}

/// The longest annotations (bytes of JSON) a referrers listing repeats: with the
/// registry's pages of 128, a page stays near 1 MiB, under the 4 MiB clients read.
pub const MAX_REFERRER_ANNOTATIONS: usize = 8 * 1024;

/// A signature kept with a manifest (the registry signature extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSignature {
    /// The client's name for it, `<manifest digest>@<32 hex>`.
    pub name: String,
    /// The signature as the client sent it (an OpenPGP message for simple signing).
    pub content: Vec<u8>,
}

/// What [`MetaStore::add_signature`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureAdded {
    Added,
    /// The same name with the same content was there already.
    Unchanged,
    /// The name is taken by other content; signatures are never replaced.
    NameTaken,
    /// The manifest already has the most signatures allowed.
    Full,
}

/// An upload session.
#[derive(Debug, Clone)]
pub struct Upload {
    pub id: String,
    pub repository: String,
    /// Unix seconds of the last change.
    pub updated_at: i64,
    /// What the blob store keeps of the session between requests, when it keeps it
    /// here (object storage: see [`crate::UploadState`]); opaque to the metadata.
    pub state: Option<String>,
}

/// Content counts for metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub repositories: u64,
    pub blobs: u64,
    pub manifests: u64,
    pub uploads: u64,
}

/// A change to the metadata that the other servers sharing it hear of (see
/// [`MetaStore::watch`]): what a replica's catalog follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaChange {
    /// A manifest was pushed (or pushed again, to tag it).
    ManifestStored { repository: String, digest: Digest },
    /// A manifest was deleted, by a client or the collector, with its tags.
    ManifestDeleted { repository: String, digest: Digest },
    /// A tag was deleted.
    TagDeleted { repository: String },
    /// A signature was added to one of the repository's manifests.
    Signed { repository: String },
    /// Signatures of one of the repository's manifests were deleted.
    SignaturesDeleted { repository: String },
}

/// What [`MetaStore::watch`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watched {
    /// Another process changed the metadata.
    Change(MetaChange),
    /// Changes may have gone unheard (the connection that listens broke and was made
    /// again): whatever follows them must be brought up to date from the store.
    Missed,
}

/// A running watch; dropping it stops it.
pub struct Watch(#[allow(dead_code)] Box<dyn Send + Sync>);

impl Watch {
    pub fn new(keep: impl Send + Sync + 'static) -> Watch {
        Watch(Box::new(keep))
    }
}

pub trait MetaStore: Send + Sync + 'static {
    /// Records a stored blob and lets `repo` read it (creating the repository), with
    /// `created_at` set to now (so the collector's grace period starts again).
    /// Refused ([`crate::StoreError::BlobVanished`]) while the collector holds a
    /// tombstone for the digest (it is removing the file), or when `present`, asked
    /// inside the write transaction, says the file is not there: no row ever names a
    /// missing file. `present` is asked only when no `blobs` row names the digest: a
    /// row implies its file (files are written before their rows and removed after
    /// them), and a mount then costs no look at the storage.
    fn link_blob(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        present: &(dyn Fn() -> bool + Sync),
    ) -> Result<()> {
        self.link_blob_within(repo, digest, size, present, None)
    }
    /// [`MetaStore::link_blob`] that, with `quota` (a namespace and its bytes), refuses
    /// ([`crate::StoreError::QuotaExceeded`]) inside the write transaction when the
    /// blob is new to the namespace and its usage plus `size` would exceed the quota:
    /// uploads racing into one namespace cannot together go over it.
    fn link_blob_within(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        present: &(dyn Fn() -> bool + Sync),
        quota: Option<(&str, u64)>,
    ) -> Result<()>;
    /// Notes that an upload is about to rename the file of `digest` into `blobs/`,
    /// before it links it ([`MetaStore::link_blob_within`] clears the note in its
    /// transaction): see [`crate::gc::recover_blob_commits`].
    fn begin_blob_commit(&self, digest: &Digest) -> Result<()>;
    /// Digests whose commit was noted and never linked, with when each was noted (unix
    /// seconds): a young note may be a commit under way (on any replica).
    fn open_blob_commits(&self) -> Result<Vec<(Digest, i64)>>;
    /// Clears these notes, those noted before `before` (unix seconds) only: a note
    /// taken again since by a commit under way is that commit's, and stays for a later
    /// recovery should it be cut off too.
    fn end_blob_commits(&self, digests: &[Digest], before: i64) -> Result<()>;
    /// Size of the blob if `repo` may read it.
    fn blob_in_repo(&self, repo: &str, digest: &Digest) -> Result<Option<u64>>;
    /// Size of the blob and when `repo`'s link to it was made (or renewed), if `repo`
    /// may read it.
    fn blob_link(&self, repo: &str, digest: &Digest) -> Result<Option<(u64, i64)>>;
    /// Renews `repo`'s link to a blob (its `created_at`, the collector's grace) if it
    /// is older than `before`: a client that HEADs a blob and skips its upload is
    /// about to reference it. False when there was nothing to renew.
    fn renew_blob_link(&self, repo: &str, digest: &Digest, before: i64) -> Result<bool>;
    /// Renews a manifest's `created_at` if it is older than `before`: a client that
    /// HEADs a manifest and skips its push (go-containerregistry does for an index's
    /// children) is about to reference it. False when there was nothing to renew.
    fn renew_manifest(&self, repo: &str, digest: &Digest, before: i64) -> Result<bool>;
    /// Size of the blob if any repository links it.
    fn blob_known(&self, digest: &Digest) -> Result<Option<u64>>;
    /// Removes `repo`'s link to a blob; false when there was none.
    fn unlink_blob(&self, repo: &str, digest: &Digest) -> Result<bool> {
        self.unlink_blob_guarded(repo, digest, &|_| false)
    }
    /// Removes `repo`'s link to a blob if it was made (or last renewed) at `linked_at`:
    /// eviction's, which must not take a link a client renewed after eviction read it.
    /// False when there was none, or a newer one.
    fn unlink_blob_if(&self, repo: &str, digest: &Digest, linked_at: i64) -> Result<bool>;
    /// [`MetaStore::unlink_blob`], refused ([`crate::StoreError::BlobOfImmutable`]) when
    /// a manifest of `repo` naming the blob, or an index naming that manifest (at any
    /// depth), carries a tag that is `immutable`, found in the write transaction: the
    /// tag would stay and its image never pull again (the collector takes the blob).
    fn unlink_blob_guarded(
        &self,
        repo: &str,
        digest: &Digest,
        immutable: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<bool>;

    /// Stores a manifest (and points `tag` at it), after checking in the same
    /// transaction that everything it references is in the repository.
    fn put_manifest(&self, repo: &str, manifest: &NewManifest, tag: Option<&str>) -> Result<()> {
        self.put_manifest_guarded(repo, manifest, tag, false, None)
    }
    /// [`MetaStore::put_manifest`] where, with `immutable`, `tag` may only be new or
    /// already on this manifest: checked in the write transaction, so of two pushes of
    /// different manifests to a new immutable tag one wins and the other gets
    /// [`crate::StoreError::TagImmutable`]. With `quota` (a namespace and its bytes), a
    /// manifest new to the namespace is refused
    /// ([`crate::StoreError::QuotaExceeded`]) when its usage plus the manifest's size
    /// would exceed the quota, as [`MetaStore::link_blob_within`] refuses a blob.
    fn put_manifest_guarded(
        &self,
        repo: &str,
        manifest: &NewManifest,
        tag: Option<&str>,
        immutable: bool,
        quota: Option<(&str, u64)>,
    ) -> Result<()>;
    /// [`MetaStore::delete_manifest`], refused ([`crate::StoreError::TagImmutable`])
    /// when a tag on the manifest, found in the write transaction, is `immutable`, and
    /// ([`crate::StoreError::ChildOfImmutable`]) when an index naming it (at any depth)
    /// carries such a tag.
    fn delete_manifest_guarded(
        &self,
        repo: &str,
        digest: &Digest,
        immutable: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<bool>;
    /// Refuses as [`MetaStore::delete_manifest_guarded`] would, reading only: whether a
    /// tag on manifest `digest` of `repo`, or on an index above it, is `immutable`.
    fn check_immutable(
        &self,
        repo: &str,
        digest: &Digest,
        immutable: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<()>;
    /// The tags on manifest `digest` of `repo`.
    fn tags_on(&self, repo: &str, digest: &Digest) -> Result<Vec<String>>;
    /// Bytes of the distinct blobs and manifests of namespace `ns`'s repositories (`ns`
    /// and `ns/…`), each digest counted once: index scans.
    fn namespace_usage(&self, ns: &str) -> Result<u64>;
    /// [`MetaStore::namespace_usage`] of every namespace holding blobs, by name.
    fn usage(&self) -> Result<Vec<(String, u64)>>;
    /// Whether any repository of namespace `ns` links the blob (it then costs the
    /// namespace nothing more).
    fn blob_in_namespace(&self, ns: &str, digest: &Digest) -> Result<bool>;
    fn manifest_by_digest(&self, repo: &str, digest: &Digest) -> Result<Option<StoredManifest>>;
    fn manifest_by_tag(&self, repo: &str, tag: &str) -> Result<Option<StoredManifest>>;
    /// Deletes a manifest and every tag on it; false when it was not there.
    fn delete_manifest(&self, repo: &str, digest: &Digest) -> Result<bool> {
        self.delete_manifest_guarded(repo, digest, &|_| false)
    }
    /// The manifests of `repo` (indexes) that name `child` among their manifests, at
    /// most `n`: a registry that requires signatures serves an image whose index is signed.
    /// Those with a signature (stored, or a sigstore `sha256-<hex>.sig` tag) come first,
    /// so that unsigned indexes a pusher made do not crowd a signed one out of the `n`.
    fn parent_manifests(&self, repo: &str, child: &Digest, n: usize) -> Result<Vec<Digest>>;
    /// Signatures of a manifest of `repo`, oldest first.
    fn signatures(&self, repo: &str, manifest: &Digest) -> Result<Vec<StoredSignature>>;
    /// Which of `manifests` (of `repo`) have a signature stored, at most `limit` of
    /// them (1: whether any has; put the likeliest first, an embedded store stops
    /// there): one read for many, where [`MetaStore::signatures`] for each would be a
    /// round trip each.
    fn signed_manifests(
        &self,
        repo: &str,
        manifests: &[Digest],
        limit: usize,
    ) -> Result<Vec<Digest>>;
    /// Adds a signature to a manifest that `repo` holds ([`crate::StoreError::MissingManifest`]
    /// when it does not), unless the manifest has `max` already.
    fn add_signature(
        &self,
        repo: &str,
        manifest: &Digest,
        signature: &StoredSignature,
        max: usize,
    ) -> Result<SignatureAdded>;
    /// Deletes the signature of a manifest of `repo` named `name`, or all of its
    /// signatures when `name` is `None`; how many went. A manifest's signatures are
    /// otherwise kept until the manifest goes: this is how junk ones a pusher stored
    /// (and that fill its slots) are cleared.
    fn delete_signatures(
        &self,
        repo: &str,
        manifest: &Digest,
        name: Option<&str>,
    ) -> Result<usize> {
        self.delete_signatures_guarded(repo, manifest, name, &|_| false)
    }
    /// [`MetaStore::delete_signatures`], refused as [`MetaStore::delete_manifest_guarded`]
    /// refuses when a tag on the manifest, or on an index naming it, is `immutable`: a
    /// release's signatures go with it or not at all (where signatures are required,
    /// the tag would stop pulling).
    fn delete_signatures_guarded(
        &self,
        repo: &str,
        manifest: &Digest,
        name: Option<&str>,
        immutable: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<usize>;
    /// A pull-through cache's copy of an upstream manifest (and `tag` on it): stored
    /// like [`MetaStore::put_manifest`] but without requiring what it references,
    /// whose bytes the cache fetches when they are first asked for.
    fn put_proxied_manifest(
        &self,
        repo: &str,
        manifest: &NewManifest,
        tag: Option<&str>,
    ) -> Result<()>;
    /// What tag `tag` of `repo` points to and when it was set (unix seconds).
    fn tag_set_at(&self, repo: &str, tag: &str) -> Result<Option<(Digest, i64)>>;
    /// The `limit` links of namespace `ns`'s repositories used least recently (by
    /// their `created_at`, which a cache renews on use): `(repository, digest, size,
    /// at)`, oldest first (ties by repository, then digest), after link `after`
    /// (`(at, repository, digest)` of the last one already read). A pull-through
    /// cache evicts from the front; the cursor lets it page past links it must keep
    /// (pinned, or being fetched), which stay the oldest and would otherwise fill
    /// every page it reads.
    fn oldest_links(
        &self,
        ns: &str,
        after: Option<(i64, &str, &Digest)>,
        limit: usize,
    ) -> Result<Vec<(String, Digest, u64, i64)>>;
    /// Deletes one tag; false when it was not there.
    fn delete_tag(&self, repo: &str, tag: &str) -> Result<bool>;
    /// Deletes tag `tag` only while it still points to `digest` and was last set at
    /// `set_at` (as [`MetaStore::recent_tags`] read it): retention's fence, so that a
    /// tag pushed again after the rule judged it stays. False when it changed or went.
    fn delete_tag_if(&self, repo: &str, tag: &str, digest: &Digest, set_at: i64) -> Result<bool>;

    /// Does the repository exist (has it ever received content)?
    fn repository_exists(&self, repo: &str) -> Result<bool>;
    /// Tags of `repo` in lexical order after `last`, at most `n`.
    fn tags(&self, repo: &str, last: Option<&str>, n: usize) -> Result<Vec<String>>;
    /// Repositories that hold at least one manifest, in lexical order after `last`.
    fn repositories(&self, last: Option<&str>, n: usize) -> Result<Vec<String>>;
    /// Every stored manifest, ordered by (repository, digest) after `after`, at most
    /// `n`: the catalog's start-up backfill reads them page by page (index order).
    fn manifests_after(&self, after: Option<(&str, &str)>, n: usize) -> Result<Vec<ManifestEntry>>;
    /// The `limit` tags of `repo` set most recently (newest first, ties by name),
    /// with their digests and when they were set (unix seconds): an index range, so
    /// that what orders or summarizes tags costs the same in a repository of a million
    /// tags. (Only retention asks for every tag at once, in the repositories a rule
    /// covers; `tags` pages in name order.)
    fn recent_tags(&self, repo: &str, limit: usize) -> Result<Vec<(String, Digest, i64)>>;
    /// Manifests in `repo` whose subject is `subject`, optionally of one artifact type,
    /// oldest first: at most `limit`, after `after` (a [`Referrer`]'s `created_at` and
    /// digest) when given.
    fn referrers(
        &self,
        repo: &str,
        subject: &Digest,
        artifact_type: Option<&str>,
        after: Option<(i64, &Digest)>,
        limit: usize,
    ) -> Result<Vec<Referrer>>;

    /// Records upload session `id` (ids are new: creating one that exists changes
    /// nothing, so a call repeated after a lost answer succeeds).
    fn create_upload(&self, id: &str, repo: &str) -> Result<()>;
    /// [`MetaStore::create_upload`], unless `max` sessions are open in `repo`'s
    /// namespace (its first path component) already: then nothing is recorded and the
    /// answer is false. Counted (at most `max` rows read, by an index) and inserted in
    /// one write serialized with the namespace's other writers, so that requests at
    /// once, on one replica or several, cannot all pass the bound.
    fn create_upload_bounded(&self, id: &str, repo: &str, max: u64) -> Result<bool>;
    fn upload(&self, id: &str) -> Result<Option<Upload>>;
    fn touch_upload(&self, id: &str) -> Result<()>;
    fn delete_upload(&self, id: &str) -> Result<()>;
    /// Replaces session `id`'s state with `new` if it still is `expected` (`None`: it
    /// has none yet), and marks the session changed. False when another request
    /// changed it first, or the session is gone: two replicas given chunks of one
    /// session at once cannot both extend it. True when the state already is `new`
    /// (this change, repeated after its answer was lost with the connection).
    fn set_upload_state(&self, id: &str, expected: Option<&str>, new: &str) -> Result<bool>;
    /// Upload sessions not changed since `before` (unix seconds).
    fn stale_uploads(&self, before: i64) -> Result<Vec<String>>;

    fn counts(&self) -> Result<Counts>;

    /// The collector's mark input: every repository's graph and every blob, read in
    /// one consistent snapshot.
    fn gc_graph(&self) -> Result<crate::gc::Graph>;
    /// In one write transaction: recomputes `garbage.repository`'s garbage for
    /// `cutoff` from what is stored now and removes what is garbage both now and in
    /// `garbage` (manifests with their references and signatures, links).
    fn gc_sweep_repository(
        &self,
        garbage: &crate::gc::RepoGarbage,
        cutoff: i64,
        keep_untagged: bool,
    ) -> Result<crate::gc::Swept>;
    /// [`MetaStore::gc_sweep_repository`] for several repositories in one write
    /// transaction (one commit, one fsync, for many small repositories).
    fn gc_sweep_repositories(
        &self,
        garbage: &[crate::gc::RepoGarbage],
        cutoff: i64,
        keep_untagged: bool,
    ) -> Result<Vec<crate::gc::Swept>> {
        garbage
            .iter()
            .map(|g| self.gc_sweep_repository(g, cutoff, keep_untagged))
            .collect()
    }
    /// Deletes the rows of these blobs that are still unlinked and older than
    /// `cutoff`, tombstoning each in the same transaction; returns those deleted.
    fn gc_delete_blobs(&self, blobs: &[(String, u64)], cutoff: i64) -> Result<Vec<(String, u64)>>;
    /// Tombstones the digests that no blob row names (fsck's orphan files), so that
    /// their files can be removed with no link made meanwhile; returns those. A digest
    /// another remover has tombstoned is left to it (not returned): only the maker of a
    /// tombstone unlinks its file and clears it.
    fn gc_tombstone_unnamed(&self, digests: &[Digest]) -> Result<Vec<Digest>>;
    /// Clears tombstones once their files are gone.
    fn gc_clear_tombstones(&self, digests: &[Digest]) -> Result<()>;
    /// Tombstones older than `before` (left by a run that stopped before clearing them).
    fn gc_stale_tombstones(&self, before: i64) -> Result<Vec<Digest>>;
    /// Every stored blob row: `(digest, size)`.
    fn all_blobs(&self) -> Result<Vec<(Digest, u64)>>;
    /// Removes blob rows (and every repository's link to them): fsck's repair of rows
    /// whose file is missing or corrupt. Only those `gone` still says have no file,
    /// asked in the write transaction: a push of the same blob whose file landed
    /// since fsck looked links after this transaction or is seen by it, so its row
    /// and link are never taken.
    fn forget_blobs(
        &self,
        digests: &[Digest],
        gone: &(dyn Fn(&Digest) -> bool + Sync),
    ) -> Result<()>;
    /// What needs a blob: `(repository, manifest digest, tags on it)` for every
    /// manifest that references it, and the repositories linking it.
    fn blob_users(&self, digest: &Digest) -> Result<BlobUsers>;
    /// Calls `on` with each change another process makes to metadata this store
    /// shares with it ([`MetaChange`]; PostgreSQL's LISTEN/NOTIFY), from a thread of
    /// its own, until the [`Watch`] is dropped. Returns once listening, so that a read
    /// made after it misses nothing that is not then reported. `None` where no other
    /// server writes the same metadata (SQLite: one server per file).
    fn watch(&self, on: Box<dyn FnMut(Watched) + Send>) -> Result<Option<Watch>> {
        drop(on);
        Ok(None)
    }
}

/// What needs a blob (for fsck's report).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlobUsers {
    pub repositories: Vec<String>,
    /// `(repository, manifest digest, its tags)`.
    pub manifests: Vec<(String, String, Vec<String>)>,
}

/// What a namespace may hold already (and so costs its quota nothing more).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Held {
    Blob,
    Manifest,
}

/// Refuses ([`crate::StoreError::QuotaExceeded`]) `size` more bytes in namespace
/// `namespace`, which uses `used` of its `quota`. Both backends check it inside their
/// write transactions.
pub(crate) fn within_quota(namespace: &str, quota: u64, used: u64, size: u64) -> Result<()> {
    if used.saturating_add(size) > quota {
        return Err(crate::StoreError::QuotaExceeded {
            namespace: namespace.to_string(),
            quota,
            used,
            size,
        });
    }
    Ok(())
}

/// `repo`'s namespace (its first path component), and the bounds of the names below
/// it: `ns/` up to `ns0` (`0` follows `/`), a range an index on the name serves.
pub(crate) fn namespace_range(repo: &str) -> (String, String, String) {
    let ns = repo.split_once('/').map_or(repo, |(ns, _)| ns);
    (ns.to_string(), format!("{ns}/"), format!("{ns}0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_records_each_digest_it_names_once() {
        let layer = |n: u8| {
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": Digest::sha256_of(&[n]).to_string(),
                "size": 1,
            })
        };
        let m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": layer(0),
            "layers": [layer(1), layer(2), layer(1), layer(0), layer(1)],
        });
        let bytes = serde_json::to_vec(&m).unwrap();
        let parsed = berth_image::Manifest::parse(None, &bytes).unwrap();
        let new = NewManifest::new(Digest::sha256_of(&bytes), &parsed, bytes);
        let want: Vec<Digest> = [0u8, 1, 2]
            .iter()
            .map(|n| Digest::sha256_of(&[*n]))
            .collect();
        assert_eq!(new.blobs, want);
    }
}
