//! The registry's catalog engine: what is inside every stored image.
//!
//! - [`store`]: `catalog.db` (SQLite, next to `meta.db`): layer analyses keyed by layer
//!   digest (a base layer shared by a hundred images is read once), inventories and
//!   findings per image manifest, allow-lists, scan state, the search index.
//! - `scan`: one manifest of a repository -> layer analyses -> its inventory (through
//!   berth-inventory) -> findings (through berth-vuln); `worker`: the queue a manifest
//!   PUT feeds without waiting, and the backfill of what was stored before.
//! - `vulns`: the vulnerability database (`vulndb.sqlite`, berth-vuln's), imports and
//!   the rematch of every stored inventory (no layer read again), grades.
//! - [`search`] and [`query`]: what the API answers.
//! - [`tags`]: semver-aware tag order (a pure function, shared with the client).
//!
//! Everything in `catalog.db` is derived from `meta.db` and the blob files, so it can
//! always be rebuilt (`berth registry scan --all`).

pub mod query;
mod scan;
pub mod search;
pub mod store;
pub mod tags;
mod vulns;
mod worker;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use berth_store::{BlobStore, MetaStore, ObjectBlobs};

pub use scan::{scan_request, Scanned};
pub use store::{
    AllowEntry, CatalogDb, FindingFacts, FindingRow, ImageFacts, ScanRecord, ScanStatus,
    StoredInventory,
};
pub use vulns::RematchReport;
pub use worker::QUEUE_CAPACITY;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error(transparent)]
    Store(#[from] berth_store::StoreError),
    #[error("vulnerability database: {0}")]
    Vuln(String),
    #[error("catalog data is corrupt: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

pub(crate) use berth_store::unix_now;

/// File names in the registry's data folder.
pub const CATALOG_DB: &str = "catalog.db";
pub const VULN_DB: &str = "vulndb.sqlite";

/// What the catalog has done since this process started (for metrics and tests:
/// a rematch must not read a layer).
#[derive(Debug, Default)]
pub struct Stats {
    /// Layer blobs read through the analyzer.
    pub layers_analyzed: AtomicU64,
    /// Image manifests inventoried.
    pub images_scanned: AtomicU64,
    /// Scans recorded as failed.
    pub scans_failed: AtomicU64,
    /// Manifest PUTs not queued because the queue was full (left for the backfill).
    pub queue_dropped: AtomicU64,
    /// Inventories matched again after a vulnerability import.
    pub rematched: AtomicU64,
}

/// The catalog of one registry data folder.
pub struct Catalog {
    pub(crate) db: CatalogDb,
    pub(crate) meta: Arc<dyn MetaStore>,
    pub(crate) blobs: BlobStore,
    /// The bucket that holds the blobs instead of `blobs`, when there is one.
    pub(crate) objects: Option<ObjectBlobs>,
    root: PathBuf,
    pub(crate) queue: worker::Queue,
    pub(crate) vulns: vulns::Vulns,
    pub stats: Stats,
}

impl Catalog {
    /// Opens (creating) `root/catalog.db` over the registry's content (`meta`, and
    /// the blob files under `root`). Starts nothing: see [`Catalog::start`].
    pub fn open(root: &Path, meta: Arc<dyn MetaStore>) -> Result<Catalog> {
        Ok(Catalog {
            db: CatalogDb::open(&root.join(CATALOG_DB))?,
            meta,
            blobs: BlobStore::open(root)?,
            objects: None,
            root: root.to_path_buf(),
            queue: Default::default(),
            vulns: vulns::Vulns::new(root.join(VULN_DB)),
            stats: Stats::default(),
        })
    }

    /// Reads layers and configs from `objects` instead of the blob files under the
    /// root (a registry whose blobs are in a bucket).
    pub fn with_objects(mut self, objects: ObjectBlobs) -> Catalog {
        self.objects = Some(objects);
        self
    }

    /// A stored blob as a reader, with its size, from wherever the registry keeps it.
    pub(crate) fn open_blob(
        &self,
        digest: &berth_image::Digest,
    ) -> berth_store::Result<Option<(Box<dyn std::io::Read + Send>, u64)>> {
        Ok(match &self.objects {
            Some(o) => o
                .reader(digest)?
                .map(|(r, n)| (Box::new(r) as Box<dyn std::io::Read + Send>, n)),
            None => self
                .blobs
                .open_blob(digest)?
                .map(|(f, n)| (Box::new(f) as Box<dyn std::io::Read + Send>, n)),
        })
    }

    /// The catalog database (queries the API makes).
    pub fn db(&self) -> &CatalogDb {
        &self.db
    }

    /// The registry's metadata store the catalog reads.
    pub fn meta_store(&self) -> Arc<dyn MetaStore> {
        self.meta.clone()
    }

    /// The registry data folder.
    pub fn root(&self) -> &Path {
        &self.root
    }
}
