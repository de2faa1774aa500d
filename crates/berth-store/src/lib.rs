//! Where registry content lives.
//!
//! Two halves with different jobs:
//! - [`blobs::BlobStore`] keeps bytes, content-addressed, on the local file system: one
//!   file per digest, shared by every repository, written atomically (temporary file,
//!   fsync, rename) so that a blob is either whole and verified or not there at all.
//! - [`meta::MetaStore`] keeps everything that is not bytes: repositories, which blobs a
//!   repository may read, manifests, tags, referrers, upload sessions. Listing never
//!   walks the file system. [`sqlite::SqliteMeta`] is the embedded implementation; the
//!   trait is what a PostgreSQL implementation will fill for many replicas.
//!
//! The blob file is the last thing written before the metadata row, and the row is
//! what makes a blob visible: a crash between the two leaves an unreferenced file that a
//! garbage collector may remove, never a reference to missing bytes.

pub mod blobs;
pub mod fsck;
pub mod gc;
pub mod meta;
pub mod migrate;
mod notify;
pub mod object;
mod object_http;
pub mod postgres;
pub mod sqlite;
mod writer;

pub use blobs::{BlobStore, BlobWriter, Block, HashState, BLOCK_SIZE};
pub use meta::{
    BlobUsers, ManifestEntry, MetaChange, MetaStore, NewManifest, Referrer, SignatureAdded,
    StoredManifest, StoredSignature, Upload, Watch, Watched, MAX_REFERRER_ANNOTATIONS,
};
pub use object::{Committed, ObjectBlobs, ObjectConfig, ObjectUpload, SessionRow, UploadState};
pub use postgres::{PgMeta, PgOptions};
pub use sqlite::SqliteMeta;

use berth_image::Digest;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("PostgreSQL: {}", berth_pg::message(.0))]
    Postgres(#[from] ::postgres::Error),
    /// No connection to PostgreSQL could be had in time (the server is down or every
    /// connection is busy).
    #[error("PostgreSQL connection pool: {0}")]
    Pool(#[from] r2d2::Error),
    /// The connection URL (or the TLS settings in it) cannot be used.
    #[error("{0}")]
    PgSettings(#[from] berth_pg::SettingsError),
    /// The database was migrated by a newer berth.
    #[error(
        "the metadata database is at schema version {found}, newer than this berth's \
         {supported}: upgrade berth (or restore the database from before the upgrade)"
    )]
    SchemaTooNew { found: i32, supported: i32 },
    /// The object store failed (after its retries) or refused.
    #[error("object storage: {context}: {source}")]
    Object {
        context: String,
        #[source]
        source: Box<object_store::Error>,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("blob {0} is not in this repository")]
    MissingBlob(Digest),
    #[error("manifest {0} is not in this repository")]
    MissingManifest(Digest),
    #[error("content has digest {actual}, expected {expected}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("content is {actual} bytes, expected {expected}")]
    SizeMismatch { expected: u64, actual: u64 },
    #[error("blob {0} was removed by the garbage collector while it was linked; upload it again")]
    BlobVanished(Digest),
    /// fsck was to repair a store where most blob rows have no file: more likely
    /// another store than the registry's (an empty folder where its blobs are in a
    /// bucket) than blobs lost, so nothing was repaired.
    #[error(
        "{missing} of {rows} blob rows have no file in this blob store: it looks like \
         another store than the one the registry writes to; nothing was repaired"
    )]
    MostFilesMissing { missing: usize, rows: usize },
    /// A namespace's quota would be exceeded by linking this blob or storing this
    /// manifest.
    #[error(
        "quota of {namespace} exceeded: {quota} bytes allowed, {used} used, {size} more needed"
    )]
    QuotaExceeded {
        namespace: String,
        quota: u64,
        used: u64,
        size: u64,
    },
    /// A tag the caller said may not move or go (immutable tags) would have.
    #[error("tag {0} is immutable")]
    TagImmutable(String),
    /// A manifest was to be deleted that an index under an immutable tag names (at any
    /// depth): the collector would then remove that platform's layers, so the tag's
    /// content would change after all.
    #[error("manifest {child} is part of index {index}, which immutable tag {tag} points to")]
    ChildOfImmutable {
        child: String,
        index: String,
        tag: String,
    },
    /// A blob an immutable tag's image needs (see `MetaStore::unlink_blob_guarded`).
    #[error("blob {blob} is part of manifest {manifest}, which immutable tag {tag} points to")]
    BlobOfImmutable {
        blob: String,
        manifest: String,
        tag: String,
    },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// Another request on upload session `0` changed it first, or holds part numbers
    /// of it (two replicas given chunks of one session at once): nothing of this
    /// request's chunk was kept.
    #[error(
        "upload {0} changed while this chunk arrived, or another chunk of it is being written"
    )]
    UploadChanged(String),
}

/// What the metadata's fences and the collector need of a blob store, wherever it keeps
/// the bytes (files, a bucket): synchronous, since they run in the metadata's
/// transactions and on the collector's threads.
pub trait BlobBytes: Send + Sync {
    /// Are the blob's bytes stored?
    fn has(&self, digest: &Digest) -> Result<bool>;
    /// Removes the blob's bytes; missing ones are not an error.
    fn remove_blob(&self, digest: &Digest) -> Result<()>;
}

/// Now, in unix seconds: the time unit of every timestamp in the metadata.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl StoreError {
    /// The disk (or the quota of the file system) is full: `ENOSPC`, `EDQUOT`, or
    /// SQLite's `SQLITE_FULL`. Nothing was committed; the same request succeeds once
    /// space returns.
    pub fn is_storage_full(&self) -> bool {
        match self {
            StoreError::Io { source, .. } => {
                source.kind() == std::io::ErrorKind::StorageFull
                    || source.kind() == std::io::ErrorKind::QuotaExceeded
            }
            StoreError::Db(e) => e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull),
            StoreError::Postgres(e) => {
                e.code() == Some(&::postgres::error::SqlState::DISK_FULL)
                    || e.code() == Some(&::postgres::error::SqlState::OUT_OF_MEMORY)
            }
            _ => false,
        }
    }

    /// The metadata database cannot be reached (PostgreSQL is down or restarting, or
    /// every connection is busy): nothing was committed, and the same request
    /// succeeds once it is back.
    pub fn is_unreachable(&self) -> bool {
        match self {
            StoreError::Pool(_) => true,
            // The object store answered an error its client's retries did not get past
            // (it is down, overloaded, or refuses the credentials).
            StoreError::Object { .. } => true,
            StoreError::Postgres(e) => berth_pg::is_unreachable(e),
            _ => false,
        }
    }

    /// The file system is mounted read-only (`EROFS`, SQLite's `SQLITE_READONLY`).
    pub fn is_read_only(&self) -> bool {
        match self {
            StoreError::Io { source, .. } => {
                source.kind() == std::io::ErrorKind::ReadOnlyFilesystem
            }
            StoreError::Db(e) => e.sqlite_error_code() == Some(rusqlite::ErrorCode::ReadOnly),
            StoreError::Postgres(e) => {
                e.code() == Some(&::postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION)
            }
            _ => false,
        }
    }

    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StoreError {
        let context = context.into();
        move |source| StoreError::Io { context, source }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
