//! The metadata store on PostgreSQL, for many `berth serve` replicas sharing one
//! database (`--metadata postgres://…`).
//!
//! The same tables and the same semantics as [`crate::SqliteMeta`]; what differs is
//! how writers are kept apart. SQLite has one writer at a time, and the store's
//! check-then-write transactions (a tag that is immutable, a quota, the collector's
//! fence between new references and deletion) rely on it. Here every write
//! transaction first takes transaction-scoped advisory locks, so that those checks
//! hold across replicas:
//! - a write within one repository (a blob linked, a manifest or tag stored or
//!   deleted, a signature added) takes the database's write lock shared and its
//!   namespace's lock exclusively: its checks concern its repository or namespace
//!   (an immutable tag, the namespace's quota), so writers in other namespaces go on
//!   beside it. The rows they both touch are a blob's (one per transaction, an upsert),
//!   so they wait on each other's row lock at most and never deadlock;
//! - every other write (the collector's sweeps and tombstones, evictions, recovery)
//!   takes the write lock exclusively: it waits for the writes under way in every
//!   namespace and holds off new ones, exactly as SQLite's single writer does.
//!
//! The shared lock is taken before the namespace's, in every transaction, so that a
//! collector waiting for the exclusive one cannot close a cycle. Reads take no lock and
//! run in parallel on every replica.
//!
//! The trait is synchronous; rust-postgres's blocking client is called on the
//! blocking side of tokio (see [`berth_pg::blocking`]) from an r2d2 pool of
//! connections, each with its prepared statements.

use std::collections::{BTreeMap, HashSet};

use berth_image::Digest;
use berth_pg::Params;
use postgres::{GenericClient, Row};

use crate::gc::{GcManifest, Graph, RepoGarbage, RepoGraph, Swept};
use crate::meta::{
    within_quota, BlobUsers, Counts, Held, ManifestEntry, MetaChange, MetaStore, NewManifest,
    Referrer, SignatureAdded, StoredManifest, StoredSignature, Upload, Watch, Watched,
    MAX_REFERRER_ANNOTATIONS,
};
use crate::{unix_now as now, Result, StoreError};

const SCHEMA: &str = include_str!("schema_pg.sql");
/// The schema version this build writes and reads. A database at a newer version was
/// migrated by a newer berth: this one refuses to start on it rather than misread it.
pub const SCHEMA_VERSION: i32 = 3;
/// The advisory lock key every write transaction takes, shared or exclusive
/// ("berthmet" in ASCII).
const WRITE_LOCK: i64 = 0x6265_7274_686d_6574;
/// The first of the two keys of a namespace's lock ("bert"); the second is the hash of
/// the namespace's name. Two-key locks are a key space of their own in PostgreSQL, so
/// no namespace's lock is ever [`WRITE_LOCK`]; two namespaces whose names hash alike
/// only share a lock.
const NAMESPACE_LOCKS: i32 = 0x6265_7274;
/// The advisory lock key of schema migrations (so that replicas starting together
/// migrate once).
const MIGRATE_LOCK: i64 = WRITE_LOCK + 1;

/// PostgreSQL's metadata store: a pool of connections to one database.
pub struct PgMeta {
    pool: berth_pg::Pool,
    /// Names this process in its change notifications (see [`crate::notify`]).
    origin: u64,
}

/// Connection settings for [`PgMeta::connect`].
pub use berth_pg::Options as PgOptions;

impl PgMeta {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`, or
    /// libpq's `key=value` form) and brings its schema up to date.
    pub fn connect(url: &str, options: &PgOptions) -> Result<PgMeta> {
        let meta = PgMeta {
            pool: berth_pg::Pool::connect(url, options)?,
            origin: crate::notify::new_origin(),
        };
        meta.migrate()?;
        Ok(meta)
    }

    /// Creates the tables on an empty database, refuses one of a newer version.
    fn migrate(&self) -> Result<()> {
        let found = berth_pg::migrate::<StoreError>(
            &self.pool,
            MIGRATE_LOCK,
            "berth_schema",
            SCHEMA_VERSION.into(),
            SCHEMA,
        )?;
        match found {
            Some(found) => Err(StoreError::SchemaTooNew {
                found: i32::try_from(found).unwrap_or(i32::MAX),
                supported: SCHEMA_VERSION,
            }),
            None => Ok(()),
        }
    }

    /// A read outside any transaction.
    fn read<T: Send>(
        &self,
        f: impl Fn(&mut Db<'_, postgres::Client>) -> Result<T> + Send + Sync,
    ) -> Result<T> {
        self.pool.with(|c| f(&mut Db(c.db())))
    }

    /// A write transaction, serialized with every other writer of the database.
    fn write<T: Send>(
        &self,
        f: impl Fn(&mut Db<'_, postgres::Transaction<'_>>) -> Result<T> + Send + Sync,
    ) -> Result<T> {
        self.write_locked(None, f)
    }

    /// A write transaction within repository `repo`: serialized with the writers of
    /// its namespace and with [`PgMeta::write`]'s, beside those of other namespaces.
    fn write_in<T: Send>(
        &self,
        repo: &str,
        f: impl Fn(&mut Db<'_, postgres::Transaction<'_>>) -> Result<T> + Send + Sync,
    ) -> Result<T> {
        self.write_locked(Some(repo), f)
    }

    fn write_locked<T: Send>(
        &self,
        repo: Option<&str>,
        f: impl Fn(&mut Db<'_, postgres::Transaction<'_>>) -> Result<T> + Send + Sync,
    ) -> Result<T> {
        self.pool.with(|c| {
            c.transaction(
                |c| c.transaction(),
                |db| {
                    let mut db = Db(db);
                    match repo {
                        None => db.exec("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])?,
                        // The shared lock first (see the module's comment): the outer
                        // call runs on the row the subquery makes, so after it; `OFFSET
                        // 0` keeps the planner from merging the two. One round trip.
                        Some(repo) => db.exec(
                            "SELECT pg_advisory_xact_lock($2, hashtext(split_part($3, '/', 1)))
                             FROM (SELECT pg_advisory_xact_lock_shared($1) OFFSET 0) AS first",
                            &[&WRITE_LOCK, &NAMESPACE_LOCKS, &repo],
                        )?,
                    };
                    f(&mut db)
                },
            )
        })
    }
}

/// A client or transaction with the connection's statement cache, and the queries
/// several metadata calls share.
struct Db<'a, C: GenericClient>(berth_pg::Db<'a, C>);

impl<C: GenericClient> Db<'_, C> {
    fn exec(&mut self, sql: &'static str, params: Params<'_>) -> Result<u64> {
        Ok(self.0.exec(sql, params)?)
    }

    fn rows(&mut self, sql: &'static str, params: Params<'_>) -> Result<Vec<Row>> {
        Ok(self.0.rows(sql, params)?)
    }

    fn row(&mut self, sql: &'static str, params: Params<'_>) -> Result<Option<Row>> {
        Ok(self.0.row(sql, params)?)
    }

    fn exists(&mut self, sql: &'static str, params: Params<'_>) -> Result<bool> {
        Ok(self.0.exists(sql, params)?)
    }

    /// After a tag's delete: announced when one was `deleted`.
    fn untagged(&mut self, origin: u64, repo: &str, deleted: bool) -> Result<bool> {
        if deleted {
            let repository = repo.to_string();
            self.announce(origin, MetaChange::TagDeleted { repository })?;
        }
        Ok(deleted)
    }

    /// Tells the other replicas of `change` when (and if) the transaction commits.
    fn announce(&mut self, origin: u64, change: MetaChange) -> Result<()> {
        let payload = crate::notify::encode(origin, &change);
        self.exec(
            "SELECT pg_notify($1, $2)",
            &[&crate::notify::CHANNEL, &payload],
        )?;
        Ok(())
    }

    /// Refuses ([`StoreError::TagImmutable`], [`StoreError::ChildOfImmutable`]) when a
    /// tag on manifest `d` of repository `id`, or on an index naming it at any depth, is
    /// `immutable`: what deleting the manifest, or its signatures, must not touch.
    fn refuse_if_immutable(
        &mut self,
        id: i64,
        d: &str,
        immutable: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<()> {
        for row in self.rows(
            "SELECT name FROM tags WHERE repository_id = $1 AND manifest_digest = $2",
            &[&id, &d],
        )? {
            let tag: String = get(&row, 0)?;
            if immutable(&tag) {
                return Err(StoreError::TagImmutable(tag));
            }
        }
        // Nor a child (at any depth) of an index an immutable tag is on: the collector
        // would then take that platform's layers from under the tag.
        for (tag, index) in self.tagged_above(id, d, true)? {
            if immutable(&tag) {
                return Err(StoreError::ChildOfImmutable {
                    child: d.to_string(),
                    index,
                    tag,
                });
            }
        }
        Ok(())
    }

    /// The tags on the manifests of repository `id` above `d` (the indexes naming
    /// manifest `d` at any depth; for a blob, `manifest` false, the manifests naming it
    /// and the indexes above those), with the manifest each is on.
    fn tagged_above(&mut self, id: i64, d: &str, manifest: bool) -> Result<Vec<(String, String)>> {
        let child_is_manifest = i16::from(manifest);
        self.rows(
            "WITH RECURSIVE above(digest) AS (
                SELECT manifest_digest FROM manifest_references
                 WHERE repository_id = $1 AND child_digest = $2 AND child_is_manifest = $3
                UNION
                SELECT r.manifest_digest FROM manifest_references r
                  JOIN above a ON r.child_digest = a.digest
                 WHERE r.repository_id = $1 AND r.child_is_manifest = 1
             )
             SELECT t.name, t.manifest_digest FROM above a
               JOIN tags t ON t.repository_id = $1 AND t.manifest_digest = a.digest",
            &[&id, &d, &child_is_manifest],
        )?
        .iter()
        .map(|row| Ok((get(row, 0)?, get(row, 1)?)))
        .collect()
    }

    fn repo_id(&mut self, repo: &str) -> Result<Option<i64>> {
        self.row("SELECT id FROM repositories WHERE name = $1", &[&repo])?
            .map(|r| get(&r, 0))
            .transpose()
    }

    fn ensure_repo(&mut self, repo: &str) -> Result<i64> {
        self.exec(
            "INSERT INTO repositories (name, created_at) VALUES ($1, $2)
             ON CONFLICT (name) DO NOTHING",
            &[&repo, &now()],
        )?;
        self.repo_id(repo)?
            .ok_or_else(|| StoreError::Corrupt(format!("repository {repo} vanished")))
    }

    /// Bytes of the distinct blobs and manifests of namespace `ns` (see
    /// `sqlite::ns_usage`).
    fn ns_usage(&mut self, ns: &str) -> Result<u64> {
        let row = self.row(
            "SELECT COALESCE(SUM(size), 0)::BIGINT FROM (
                SELECT b.digest, b.size FROM blobs b WHERE b.digest IN (
                    SELECT rb.digest FROM repositories r
                    JOIN repository_blobs rb ON rb.repository_id = r.id
                    WHERE r.name = $1 OR (r.name >= $2 AND r.name < $3))
                UNION
                SELECT m.digest, m.size FROM repositories r
                JOIN manifests m ON m.repository_id = r.id
                WHERE r.name = $1 OR (r.name >= $2 AND r.name < $3)) AS used",
            &[&ns, &format!("{ns}/"), &format!("{ns}0")],
        )?;
        Ok(row
            .map(|r| get::<i64>(&r, 0))
            .transpose()?
            .unwrap_or(0)
            .max(0) as u64)
    }

    /// Whether a repository of namespace `ns` holds `d` (a blob it links, or a
    /// manifest).
    fn ns_holds(&mut self, ns: &str, d: &str, held: Held) -> Result<bool> {
        self.exists(
            match held {
                Held::Blob => {
                    "SELECT 1 FROM repositories r
                     JOIN repository_blobs rb ON rb.repository_id = r.id
                     WHERE (r.name = $1 OR (r.name >= $2 AND r.name < $3)) AND rb.digest = $4
                     LIMIT 1"
                }
                Held::Manifest => {
                    "SELECT 1 FROM repositories r
                     JOIN manifests m ON m.repository_id = r.id
                     WHERE (r.name = $1 OR (r.name >= $2 AND r.name < $3)) AND m.digest = $4
                     LIMIT 1"
                }
            },
            &[&ns, &format!("{ns}/"), &format!("{ns}0"), &d],
        )
    }

    /// The collector's view of one repository, or of all of them.
    fn repo_graphs(&mut self, only: Option<i64>) -> Result<Vec<RepoGraph>> {
        let sql: [&'static str; 5] = match only {
            Some(_) => [
                "SELECT id, name FROM repositories WHERE id = $1",
                "SELECT repository_id, digest, size, created_at, subject FROM manifests
                 WHERE repository_id = $1",
                "SELECT repository_id, manifest_digest, child_digest, child_is_manifest
                 FROM manifest_references WHERE repository_id = $1",
                "SELECT repository_id, name, manifest_digest FROM tags WHERE repository_id = $1",
                "SELECT repository_id, digest, created_at FROM repository_blobs
                 WHERE repository_id = $1",
            ],
            None => [
                "SELECT id, name FROM repositories",
                "SELECT repository_id, digest, size, created_at, subject FROM manifests",
                "SELECT repository_id, manifest_digest, child_digest, child_is_manifest
                 FROM manifest_references",
                "SELECT repository_id, name, manifest_digest FROM tags",
                "SELECT repository_id, digest, created_at FROM repository_blobs",
            ],
        };
        let id;
        let params: Params<'_> = match only {
            Some(i) => {
                id = i;
                &[&id]
            }
            None => &[],
        };
        let mut by_id: BTreeMap<i64, RepoGraph> = BTreeMap::new();
        for r in self.rows(sql[0], params)? {
            let graph = RepoGraph {
                name: get(&r, 1)?,
                ..RepoGraph::default()
            };
            by_id.insert(get(&r, 0)?, graph);
        }
        for r in self.rows(sql[1], params)? {
            if let Some(g) = by_id.get_mut(&get(&r, 0)?) {
                g.manifests.push(GcManifest {
                    digest: get(&r, 1)?,
                    size: get::<i64>(&r, 2)?.max(0) as u64,
                    created_at: get(&r, 3)?,
                    subject: get(&r, 4)?,
                });
            }
        }
        for r in self.rows(sql[2], params)? {
            if let Some(g) = by_id.get_mut(&get(&r, 0)?) {
                g.references
                    .push((get(&r, 1)?, get(&r, 2)?, get::<i16>(&r, 3)? != 0));
            }
        }
        for r in self.rows(sql[3], params)? {
            if let Some(g) = by_id.get_mut(&get(&r, 0)?) {
                crate::gc::add_tag(g, &get::<String>(&r, 1)?, get(&r, 2)?);
            }
        }
        for r in self.rows(sql[4], params)? {
            if let Some(g) = by_id.get_mut(&get(&r, 0)?) {
                g.links.push((get(&r, 1)?, get(&r, 2)?));
            }
        }
        Ok(by_id.into_values().collect())
    }

    /// One repository's sweep inside the caller's write transaction (see
    /// [`MetaStore::gc_sweep_repository`]).
    fn sweep_repository(
        &mut self,
        origin: u64,
        planned: &RepoGarbage,
        cutoff: i64,
        keep_untagged: bool,
    ) -> Result<Swept> {
        let Some(id) = self.repo_id(&planned.repository)? else {
            return Ok(Swept::default());
        };
        // The fence: liveness again, from what is stored now, under the write lock.
        let Some(graph) = self.repo_graphs(Some(id))?.pop() else {
            return Ok(Swept::default());
        };
        let now = crate::gc::repo_garbage(&graph, cutoff, keep_untagged);
        let still: HashSet<&str> = now.manifests.iter().map(|(d, _)| d.as_str()).collect();
        let mut swept = Swept {
            manifests: planned
                .manifests
                .iter()
                .filter(|(d, _)| still.contains(d.as_str()))
                .cloned()
                .collect(),
            ..Swept::default()
        };
        // A statement per table for the repository's garbage, not four per manifest:
        // every replica's pushes wait on this lock.
        if !swept.manifests.is_empty() {
            let gone: Vec<&str> = swept.manifests.iter().map(|(d, _)| d.as_str()).collect();
            for sql in [
                "DELETE FROM tags WHERE repository_id = $1 AND manifest_digest = ANY($2)",
                "DELETE FROM manifest_references
                 WHERE repository_id = $1 AND manifest_digest = ANY($2)",
                "DELETE FROM signatures WHERE repository_id = $1 AND manifest_digest = ANY($2)",
                "DELETE FROM manifests WHERE repository_id = $1 AND digest = ANY($2)",
            ] {
                self.exec(sql, &[&id, &gone])?;
            }
            let notes: Vec<String> = gone
                .iter()
                .filter_map(|d| d.parse().ok())
                .map(|digest| {
                    let repository = planned.repository.clone();
                    crate::notify::encode(
                        origin,
                        &MetaChange::ManifestDeleted { repository, digest },
                    )
                })
                .collect();
            self.exec(
                "SELECT pg_notify($1, note) FROM unnest($2::text[]) AS note",
                &[&crate::notify::CHANNEL, &notes],
            )?;
        }
        let still: HashSet<&str> = now.links.iter().map(String::as_str).collect();
        let links: Vec<&str> = planned
            .links
            .iter()
            .map(String::as_str)
            .filter(|d| still.contains(d))
            .collect();
        if !links.is_empty() {
            swept.links = self.exec(
                "DELETE FROM repository_blobs WHERE repository_id = $1 AND digest = ANY($2)",
                &[&id, &links],
            )? as usize;
        }
        Ok(swept)
    }

    /// Removes a manifest with its tags, references and signatures; the number of
    /// manifest rows removed.
    fn delete_manifest_rows(&mut self, id: i64, d: &str) -> Result<u64> {
        self.exec(
            "DELETE FROM tags WHERE repository_id = $1 AND manifest_digest = $2",
            &[&id, &d],
        )?;
        self.exec(
            "DELETE FROM manifest_references WHERE repository_id = $1 AND manifest_digest = $2",
            &[&id, &d],
        )?;
        self.exec(
            "DELETE FROM signatures WHERE repository_id = $1 AND manifest_digest = $2",
            &[&id, &d],
        )?;
        self.exec(
            "DELETE FROM manifests WHERE repository_id = $1 AND digest = $2",
            &[&id, &d],
        )
    }
}

/// Column `i` of a row, with a type mismatch as an error rather than a panic.
fn get<'a, T: postgres::types::FromSql<'a>>(row: &'a Row, i: usize) -> Result<T> {
    Ok(row.try_get(i)?)
}

fn digest_at(row: &Row, i: usize) -> Result<Digest> {
    let s: String = get(row, i)?;
    s.parse()
        .map_err(|e| StoreError::Corrupt(format!("stored digest {s:?}: {e}")))
}

fn stored_manifest(row: &Row) -> Result<StoredManifest> {
    Ok(StoredManifest {
        digest: digest_at(row, 0)?,
        media_type: get(row, 1)?,
        content: get(row, 2)?,
        created_at: get(row, 3)?,
    })
}

fn limit(n: usize) -> i64 {
    n.min(i64::MAX as usize) as i64
}

impl PgMeta {
    /// `put_manifest_guarded`'s work; a pull-through cache's copy skips
    /// `check_references`.
    fn store_manifest(
        &self,
        repo: &str,
        m: &NewManifest,
        tag: Option<&str>,
        immutable: bool,
        quota: Option<(&str, u64)>,
        check_references: bool,
    ) -> Result<()> {
        let digest = m.digest.to_string();
        self.write_in(repo, |db| {
            if let Some((ns, bytes)) = quota {
                if !db.ns_holds(ns, &digest, Held::Manifest)? {
                    within_quota(ns, bytes, db.ns_usage(ns)?, m.content.len() as u64)?;
                }
            }
            let id = db.ensure_repo(repo)?;
            let now = now();
            if let (Some(tag), true) = (tag, immutable) {
                let on = db.row(
                    "SELECT manifest_digest FROM tags WHERE repository_id = $1 AND name = $2",
                    &[&id, &tag],
                )?;
                if let Some(on) = on {
                    if get::<String>(&on, 0)? != digest {
                        return Err(StoreError::TagImmutable(tag.to_string()));
                    }
                }
            }
            if check_references {
                for b in &m.blobs {
                    if !db.exists(
                        "SELECT 1 FROM repository_blobs WHERE repository_id = $1 AND digest = $2",
                        &[&id, &b.to_string()],
                    )? {
                        return Err(StoreError::MissingBlob(b.clone()));
                    }
                }
                for c in &m.manifests {
                    if !db.exists(
                        "SELECT 1 FROM manifests WHERE repository_id = $1 AND digest = $2",
                        &[&id, &c.to_string()],
                    )? {
                        return Err(StoreError::MissingManifest(c.clone()));
                    }
                }
            }
            db.exec(
                "INSERT INTO manifests (repository_id, digest, media_type, artifact_type, subject,
                                        annotations, size, content, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (repository_id, digest) DO UPDATE SET created_at = excluded.created_at",
                &[
                    &id,
                    &digest,
                    &m.media_type,
                    &m.artifact_type,
                    &m.subject.as_ref().map(|s| s.to_string()),
                    &m.annotations,
                    &(m.content.len() as i64),
                    &m.content,
                    &now,
                ],
            )?;
            for (child, is_manifest) in m
                .blobs
                .iter()
                .map(|b| (b, 0i16))
                .chain(m.manifests.iter().map(|c| (c, 1i16)))
            {
                db.exec(
                    "INSERT INTO manifest_references
                        (repository_id, manifest_digest, child_digest, child_is_manifest)
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    &[&id, &digest, &child.to_string(), &is_manifest],
                )?;
            }
            if let Some(tag) = tag {
                db.exec(
                    "INSERT INTO tags (repository_id, name, manifest_digest, updated_at)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (repository_id, name) DO UPDATE
                     SET manifest_digest = excluded.manifest_digest, updated_at = excluded.updated_at",
                    &[&id, &tag, &digest, &now],
                )?;
            }
            if check_references {
                let (repository, digest) = (repo.to_string(), m.digest.clone());
                db.announce(self.origin, MetaChange::ManifestStored { repository, digest })?;
            }
            Ok(())
        })
    }
}

impl MetaStore for PgMeta {
    fn link_blob_within(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        present: &(dyn Fn() -> bool + Sync),
        quota: Option<(&str, u64)>,
    ) -> Result<()> {
        let d = digest.to_string();
        self.write_in(repo, |db| {
            let removing = db.exists("SELECT 1 FROM blob_tombstones WHERE digest = $1", &[&d])?;
            // A row names a file that is there (files go in before their rows and out
            // after them): the store is asked only for a blob no row names, which spares
            // mounts a request to object storage while every writer waits.
            if removing
                || (!db.exists("SELECT 1 FROM blobs WHERE digest = $1", &[&d])? && !present())
            {
                return Err(StoreError::BlobVanished(digest.clone()));
            }
            if let Some((ns, bytes)) = quota {
                if !db.ns_holds(ns, &d, Held::Blob)? {
                    within_quota(ns, bytes, db.ns_usage(ns)?, size)?;
                }
            }
            let id = db.ensure_repo(repo)?;
            let now = now();
            db.exec(
                "INSERT INTO blobs (digest, size, created_at) VALUES ($1, $2, $3)
                 ON CONFLICT (digest) DO UPDATE SET created_at = excluded.created_at",
                &[&d, &(size as i64), &now],
            )?;
            db.exec("DELETE FROM blob_commits WHERE digest = $1", &[&d])?;
            db.exec(
                "INSERT INTO repository_blobs (repository_id, digest, created_at) VALUES ($1, $2, $3)
                 ON CONFLICT (repository_id, digest) DO UPDATE SET created_at = excluded.created_at",
                &[&id, &d, &now],
            )?;
            Ok(())
        })
    }

    fn begin_blob_commit(&self, digest: &Digest) -> Result<()> {
        let d = digest.to_string();
        self.read(|db| {
            db.exec(
                "INSERT INTO blob_commits (digest, created_at) VALUES ($1, $2)
                 ON CONFLICT (digest) DO UPDATE SET created_at = excluded.created_at",
                &[&d, &now()],
            )
            .map(drop)
        })
    }

    fn open_blob_commits(&self) -> Result<Vec<(Digest, i64)>> {
        self.read(|db| {
            let mut out = Vec::new();
            for r in db.rows("SELECT digest, created_at FROM blob_commits", &[])? {
                // A note that is not a digest names no file: nothing to recover.
                if let Ok(d) = digest_at(&r, 0) {
                    out.push((d, get(&r, 1)?));
                }
            }
            Ok(out)
        })
    }

    fn end_blob_commits(&self, digests: &[Digest], before: i64) -> Result<()> {
        self.write(|db| {
            for d in digests {
                db.exec(
                    "DELETE FROM blob_commits WHERE digest = $1 AND created_at < $2",
                    &[&d.to_string(), &before],
                )?;
            }
            Ok(())
        })
    }

    fn blob_in_repo(&self, repo: &str, digest: &Digest) -> Result<Option<u64>> {
        Ok(self.blob_link(repo, digest)?.map(|(size, _)| size))
    }

    fn blob_link(&self, repo: &str, digest: &Digest) -> Result<Option<(u64, i64)>> {
        let d = digest.to_string();
        self.read(|db| {
            db.row(
                "SELECT b.size, rb.created_at FROM repositories r
                 JOIN repository_blobs rb ON rb.repository_id = r.id
                 JOIN blobs b ON b.digest = rb.digest
                 WHERE r.name = $1 AND rb.digest = $2",
                &[&repo, &d],
            )?
            .map(|r| Ok((get::<i64>(&r, 0)?.max(0) as u64, get(&r, 1)?)))
            .transpose()
        })
    }

    fn renew_manifest(&self, repo: &str, digest: &Digest, before: i64) -> Result<bool> {
        let d = digest.to_string();
        self.write_in(repo, |db| {
            let Some(id) = db.repo_id(repo)? else {
                return Ok(false);
            };
            let n = db.exec(
                "UPDATE manifests SET created_at = $3
                 WHERE repository_id = $1 AND digest = $2 AND created_at < $4",
                &[&id, &d, &now(), &before],
            )?;
            Ok(n > 0)
        })
    }

    fn renew_blob_link(&self, repo: &str, digest: &Digest, before: i64) -> Result<bool> {
        let d = digest.to_string();
        self.write_in(repo, |db| {
            let Some(id) = db.repo_id(repo)? else {
                return Ok(false);
            };
            let now = now();
            let n = db.exec(
                "UPDATE repository_blobs SET created_at = $3
                 WHERE repository_id = $1 AND digest = $2 AND created_at < $4",
                &[&id, &d, &now, &before],
            )?;
            if n > 0 {
                db.exec(
                    "UPDATE blobs SET created_at = $2 WHERE digest = $1 AND created_at < $2",
                    &[&d, &now],
                )?;
            }
            Ok(n > 0)
        })
    }

    fn blob_known(&self, digest: &Digest) -> Result<Option<u64>> {
        let d = digest.to_string();
        self.read(|db| {
            db.row(
                "SELECT b.size FROM blobs b WHERE b.digest = $1
                 AND EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest)",
                &[&d],
            )?
            .map(|r| Ok(get::<i64>(&r, 0)?.max(0) as u64))
            .transpose()
        })
    }

    fn unlink_blob_guarded(
        &self,
        repo: &str,
        digest: &Digest,
        immutable: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<bool> {
        let d = digest.to_string();
        self.write_in(repo, |db| {
            let Some(id) = db.repo_id(repo)? else {
                return Ok(false);
            };
            for (tag, manifest) in db.tagged_above(id, &d, false)? {
                if immutable(&tag) {
                    return Err(StoreError::BlobOfImmutable {
                        blob: d.clone(),
                        manifest,
                        tag,
                    });
                }
            }
            Ok(db.exec(
                "DELETE FROM repository_blobs WHERE repository_id = $1 AND digest = $2",
                &[&id, &d],
            )? > 0)
        })
    }

    fn unlink_blob_if(&self, repo: &str, digest: &Digest, linked_at: i64) -> Result<bool> {
        let d = digest.to_string();
        self.write_in(repo, |db| {
            let Some(id) = db.repo_id(repo)? else {
                return Ok(false);
            };
            Ok(db.exec(
                "DELETE FROM repository_blobs
                 WHERE repository_id = $1 AND digest = $2 AND created_at = $3",
                &[&id, &d, &linked_at],
            )? > 0)
        })
    }

    fn put_manifest_guarded(
        &self,
        repo: &str,
        m: &NewManifest,
        tag: Option<&str>,
        immutable: bool,
        quota: Option<(&str, u64)>,
    ) -> Result<()> {
        self.store_manifest(repo, m, tag, immutable, quota, true)
    }

    fn delete_manifest_guarded(
        &self,
        repo: &str,
        digest: &Digest,
        immutable: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<bool> {
        let d = digest.to_string();
        self.write_in(repo, |db| {
            let Some(id) = db.repo_id(repo)? else {
                return Ok(false);
            };
            db.refuse_if_immutable(id, &d, immutable)?;
            let deleted = db.delete_manifest_rows(id, &d)? > 0;
            if deleted {
                let (repository, digest) = (repo.to_string(), digest.clone());
                db.announce(
                    self.origin,
                    MetaChange::ManifestDeleted { repository, digest },
                )?;
            }
            Ok(deleted)
        })
    }

    fn namespace_usage(&self, ns: &str) -> Result<u64> {
        self.read(|db| db.ns_usage(ns))
    }

    fn usage(&self) -> Result<Vec<(String, u64)>> {
        self.read(|db| {
            db.rows(
                "SELECT ns, SUM(size)::BIGINT FROM (
                    SELECT split_part(r.name, '/', 1) AS ns, b.digest, b.size
                    FROM repositories r
                    JOIN repository_blobs rb ON rb.repository_id = r.id
                    JOIN blobs b ON b.digest = rb.digest
                    UNION
                    SELECT split_part(r.name, '/', 1), m.digest, m.size
                    FROM repositories r
                    JOIN manifests m ON m.repository_id = r.id) AS linked
                 GROUP BY ns ORDER BY ns",
                &[],
            )?
            .iter()
            .map(|r| Ok((get(r, 0)?, get::<i64>(r, 1)?.max(0) as u64)))
            .collect()
        })
    }

    fn blob_in_namespace(&self, ns: &str, digest: &Digest) -> Result<bool> {
        let d = digest.to_string();
        self.read(|db| db.ns_holds(ns, &d, Held::Blob))
    }

    fn manifest_by_digest(&self, repo: &str, digest: &Digest) -> Result<Option<StoredManifest>> {
        let d = digest.to_string();
        self.read(|db| {
            db.row(
                "SELECT m.digest, m.media_type, m.content, m.created_at FROM repositories r
                 JOIN manifests m ON m.repository_id = r.id
                 WHERE r.name = $1 AND m.digest = $2",
                &[&repo, &d],
            )?
            .map(|r| stored_manifest(&r))
            .transpose()
        })
    }

    fn manifest_by_tag(&self, repo: &str, tag: &str) -> Result<Option<StoredManifest>> {
        self.read(|db| {
            db.row(
                "SELECT m.digest, m.media_type, m.content, m.created_at FROM repositories r
                 JOIN tags t ON t.repository_id = r.id
                 JOIN manifests m ON m.repository_id = r.id AND m.digest = t.manifest_digest
                 WHERE r.name = $1 AND t.name = $2",
                &[&repo, &tag],
            )?
            .map(|r| stored_manifest(&r))
            .transpose()
        })
    }

    fn parent_manifests(&self, repo: &str, child: &Digest, n: usize) -> Result<Vec<Digest>> {
        let c = child.to_string();
        self.read(|db| {
            db.rows(
                "SELECT mr.manifest_digest FROM repositories r
                 JOIN manifest_references mr ON mr.repository_id = r.id
                 WHERE r.name = $1 AND mr.child_digest = $2 AND mr.child_is_manifest = 1
                 ORDER BY (EXISTS (SELECT 1 FROM signatures s
                                   WHERE s.repository_id = r.id
                                   AND s.manifest_digest = mr.manifest_digest)
                           OR EXISTS (SELECT 1 FROM tags t
                                      WHERE t.repository_id = r.id
                                      AND t.name = replace(mr.manifest_digest, ':', '-') || '.sig'))
                          DESC,
                          mr.manifest_digest
                 LIMIT $3",
                &[&repo, &c, &limit(n)],
            )?
            .iter()
            .map(|r| digest_at(r, 0))
            .collect()
        })
    }

    fn signatures(&self, repo: &str, manifest: &Digest) -> Result<Vec<StoredSignature>> {
        let d = manifest.to_string();
        self.read(|db| {
            db.rows(
                "SELECT s.name, s.content FROM repositories r
                 JOIN signatures s ON s.repository_id = r.id
                 WHERE r.name = $1 AND s.manifest_digest = $2
                 ORDER BY s.created_at, s.name",
                &[&repo, &d],
            )?
            .iter()
            .map(|r| {
                Ok(StoredSignature {
                    name: get(r, 0)?,
                    content: get(r, 1)?,
                })
            })
            .collect()
        })
    }

    fn signed_manifests(
        &self,
        repo: &str,
        manifests: &[Digest],
        limit: usize,
    ) -> Result<Vec<Digest>> {
        let wanted: Vec<String> = manifests.iter().map(Digest::to_string).collect();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let found: HashSet<String> = self.read(|db| {
            db.rows(
                "SELECT DISTINCT s.manifest_digest FROM repositories r
                 JOIN signatures s ON s.repository_id = r.id
                 WHERE r.name = $1 AND s.manifest_digest = ANY($2) LIMIT $3",
                &[&repo, &wanted, &limit],
            )?
            .iter()
            .map(|r| get(r, 0))
            .collect()
        })?;
        Ok(manifests
            .iter()
            .filter(|d| found.contains(&d.to_string()))
            .cloned()
            .collect())
    }

    fn add_signature(
        &self,
        repo: &str,
        manifest: &Digest,
        signature: &StoredSignature,
        max: usize,
    ) -> Result<SignatureAdded> {
        let d = manifest.to_string();
        self.write_in(repo, |db| {
            let id = db.repo_id(repo)?;
            let held = match id {
                Some(id) => db.exists(
                    "SELECT 1 FROM manifests WHERE repository_id = $1 AND digest = $2",
                    &[&id, &d],
                )?,
                None => false,
            };
            let (Some(id), true) = (id, held) else {
                return Err(StoreError::MissingManifest(manifest.clone()));
            };
            let existing = db.row(
                "SELECT content FROM signatures
                 WHERE repository_id = $1 AND manifest_digest = $2 AND name = $3",
                &[&id, &d, &signature.name],
            )?;
            if let Some(row) = existing {
                let content: Vec<u8> = get(&row, 0)?;
                return Ok(if content == signature.content {
                    SignatureAdded::Unchanged
                } else {
                    SignatureAdded::NameTaken
                });
            }
            let count: i64 = match db.row(
                "SELECT COUNT(*) FROM signatures WHERE repository_id = $1 AND manifest_digest = $2",
                &[&id, &d],
            )? {
                Some(r) => get(&r, 0)?,
                None => 0,
            };
            if count.max(0) as usize >= max {
                return Ok(SignatureAdded::Full);
            }
            db.exec(
                "INSERT INTO signatures (repository_id, manifest_digest, name, content, created_at)
                 VALUES ($1, $2, $3, $4, $5)",
                &[&id, &d, &signature.name, &signature.content, &now()],
            )?;
            let repository = repo.to_string();
            db.announce(self.origin, MetaChange::Signed { repository })?;
            Ok(SignatureAdded::Added)
        })
    }

    fn check_immutable(
        &self,
        repo: &str,
        digest: &Digest,
        immutable: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<()> {
        let d = digest.to_string();
        self.read(|db| match db.repo_id(repo)? {
            Some(id) => db.refuse_if_immutable(id, &d, immutable),
            None => Ok(()),
        })
    }

    fn tags_on(&self, repo: &str, digest: &Digest) -> Result<Vec<String>> {
        let d = digest.to_string();
        self.read(|db| {
            db.rows(
                "SELECT t.name FROM repositories r JOIN tags t ON t.repository_id = r.id
                 WHERE r.name = $1 AND t.manifest_digest = $2 ORDER BY t.name",
                &[&repo, &d],
            )?
            .iter()
            .map(|r| get(r, 0))
            .collect()
        })
    }

    fn delete_signatures_guarded(
        &self,
        repo: &str,
        manifest: &Digest,
        name: Option<&str>,
        immutable: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<usize> {
        let d = manifest.to_string();
        self.write_in(repo, |db| {
            let Some(id) = db.repo_id(repo)? else {
                return Ok(0);
            };
            db.refuse_if_immutable(id, &d, immutable)?;
            let n = db.exec(
                "DELETE FROM signatures WHERE repository_id = $1 AND manifest_digest = $2
                 AND ($3::text IS NULL OR name = $3)",
                &[&id, &d, &name],
            )?;
            if n > 0 {
                let repository = repo.to_string();
                db.announce(self.origin, MetaChange::SignaturesDeleted { repository })?;
            }
            Ok(n as usize)
        })
    }

    fn put_proxied_manifest(&self, repo: &str, m: &NewManifest, tag: Option<&str>) -> Result<()> {
        self.store_manifest(repo, m, tag, false, None, false)
    }

    fn tag_set_at(&self, repo: &str, tag: &str) -> Result<Option<(Digest, i64)>> {
        self.read(|db| {
            db.row(
                "SELECT t.manifest_digest, t.updated_at
                 FROM repositories r JOIN tags t ON t.repository_id = r.id
                 WHERE r.name = $1 AND t.name = $2",
                &[&repo, &tag],
            )?
            .map(|r| Ok((digest_at(&r, 0)?, get(&r, 1)?)))
            .transpose()
        })
    }

    fn oldest_links(
        &self,
        ns: &str,
        after: Option<(i64, &str, &Digest)>,
        n: usize,
    ) -> Result<Vec<(String, Digest, u64, i64)>> {
        // No cursor: before every link (a repository name is never empty).
        let (at, repo, digest) = after
            .map_or((i64::MIN, String::new(), String::new()), |(at, r, d)| {
                (at, r.to_string(), d.to_string())
            });
        self.read(|db| {
            db.rows(
                "SELECT r.name, rb.digest, b.size, rb.created_at FROM repositories r
                 JOIN repository_blobs rb ON rb.repository_id = r.id
                 JOIN blobs b ON b.digest = rb.digest
                 WHERE (r.name = $1 OR (r.name >= $2 AND r.name < $3))
                   AND (rb.created_at, r.name, rb.digest) > ($5, $6, $7)
                 ORDER BY rb.created_at, r.name, rb.digest LIMIT $4",
                &[
                    &ns,
                    &format!("{ns}/"),
                    &format!("{ns}0"),
                    &limit(n),
                    &at,
                    &repo,
                    &digest,
                ],
            )?
            .iter()
            .map(|r| {
                Ok((
                    get(r, 0)?,
                    digest_at(r, 1)?,
                    get::<i64>(r, 2)?.max(0) as u64,
                    get(r, 3)?,
                ))
            })
            .collect()
        })
    }

    fn delete_tag(&self, repo: &str, tag: &str) -> Result<bool> {
        self.write_in(repo, |db| {
            let Some(id) = db.repo_id(repo)? else {
                return Ok(false);
            };
            let deleted = db.exec(
                "DELETE FROM tags WHERE repository_id = $1 AND name = $2",
                &[&id, &tag],
            )? > 0;
            db.untagged(self.origin, repo, deleted)
        })
    }

    fn delete_tag_if(&self, repo: &str, tag: &str, digest: &Digest, set_at: i64) -> Result<bool> {
        let d = digest.to_string();
        self.write_in(repo, |db| {
            let Some(id) = db.repo_id(repo)? else {
                return Ok(false);
            };
            let deleted = db.exec(
                "DELETE FROM tags WHERE repository_id = $1 AND name = $2
                 AND manifest_digest = $3 AND updated_at = $4",
                &[&id, &tag, &d, &set_at],
            )? > 0;
            db.untagged(self.origin, repo, deleted)
        })
    }

    fn repository_exists(&self, repo: &str) -> Result<bool> {
        self.read(|db| db.repo_id(repo)).map(|o| o.is_some())
    }

    fn tags(&self, repo: &str, last: Option<&str>, n: usize) -> Result<Vec<String>> {
        let last = last.unwrap_or("");
        self.read(|db| {
            db.rows(
                "SELECT t.name FROM repositories r JOIN tags t ON t.repository_id = r.id
                 WHERE r.name = $1 AND t.name > $2 ORDER BY t.name LIMIT $3",
                &[&repo, &last, &limit(n)],
            )?
            .iter()
            .map(|r| get(r, 0))
            .collect()
        })
    }

    fn repositories(&self, last: Option<&str>, n: usize) -> Result<Vec<String>> {
        let last = last.unwrap_or("");
        self.read(|db| {
            db.rows(
                "SELECT r.name FROM repositories r
                 WHERE r.name > $1 AND EXISTS (SELECT 1 FROM manifests m WHERE m.repository_id = r.id)
                 ORDER BY r.name LIMIT $2",
                &[&last, &limit(n)],
            )?
            .iter()
            .map(|r| get(r, 0))
            .collect()
        })
    }

    fn manifests_after(&self, after: Option<(&str, &str)>, n: usize) -> Result<Vec<ManifestEntry>> {
        let (repo, digest) = after.unwrap_or(("", ""));
        self.read(|db| {
            db.rows(
                "SELECT r.name, m.digest, m.media_type, m.created_at
                 FROM repositories r JOIN manifests m ON m.repository_id = r.id
                 WHERE r.name > $1 OR (r.name = $1 AND m.digest > $2)
                 ORDER BY r.name, m.digest LIMIT $3",
                &[&repo, &digest, &limit(n)],
            )?
            .iter()
            .map(|r| {
                Ok(ManifestEntry {
                    repository: get(r, 0)?,
                    digest: digest_at(r, 1)?,
                    media_type: get(r, 2)?,
                    created_at: get(r, 3)?,
                })
            })
            .collect()
        })
    }

    fn recent_tags(&self, repo: &str, n: usize) -> Result<Vec<(String, Digest, i64)>> {
        self.read(|db| {
            db.rows(
                "SELECT t.name, t.manifest_digest, t.updated_at
                 FROM repositories r JOIN tags t ON t.repository_id = r.id
                 WHERE r.name = $1 ORDER BY t.updated_at DESC, t.name DESC LIMIT $2",
                &[&repo, &limit(n)],
            )?
            .iter()
            .map(|r| Ok((get(r, 0)?, digest_at(r, 1)?, get(r, 2)?)))
            .collect()
        })
    }

    fn referrers(
        &self,
        repo: &str,
        subject: &Digest,
        artifact_type: Option<&str>,
        after: Option<(i64, &Digest)>,
        page: usize,
    ) -> Result<Vec<Referrer>> {
        let s = subject.to_string();
        let (after_time, after_digest) = match after {
            Some((t, d)) => (Some(t), Some(d.to_string())),
            None => (None, None),
        };
        let (n, max) = (limit(page), MAX_REFERRER_ANNOTATIONS as i32);
        self.read(|db| {
            db.rows(
                "SELECT m.digest, m.media_type, m.size, m.artifact_type,
                        CASE WHEN octet_length(m.annotations) <= $7 THEN m.annotations END,
                        m.created_at
                 FROM repositories r JOIN manifests m ON m.repository_id = r.id
                 WHERE r.name = $1 AND m.subject = $2
                   AND ($3::TEXT IS NULL OR m.artifact_type = $3)
                   AND ($4::BIGINT IS NULL OR (m.created_at, m.digest) > ($4, $5::TEXT))
                 ORDER BY m.created_at, m.digest
                 LIMIT $6",
                &[
                    &repo,
                    &s,
                    &artifact_type,
                    &after_time,
                    &after_digest,
                    &n,
                    &max,
                ],
            )?
            .iter()
            .map(|r| {
                Ok(Referrer {
                    digest: digest_at(r, 0)?,
                    media_type: get(r, 1)?,
                    size: get::<i64>(r, 2)?.max(0) as u64,
                    artifact_type: get(r, 3)?,
                    annotations: get(r, 4)?,
                    created_at: get(r, 5)?,
                })
            })
            .collect()
        })
    }

    fn create_upload(&self, id: &str, repo: &str) -> Result<()> {
        self.read(|db| {
            db.exec(
                "INSERT INTO uploads (id, repository, created_at, updated_at) VALUES ($1, $2, $3, $3)
                 ON CONFLICT (id) DO NOTHING",
                &[&id, &repo, &now()],
            )
            .map(drop)
        })
    }

    fn create_upload_bounded(&self, id: &str, repo: &str, max: u64) -> Result<bool> {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let (ns, below, after) = crate::meta::namespace_range(repo);
        self.write_in(repo, |db| {
            let open = db
                .row(
                    "SELECT COUNT(*)::BIGINT FROM (SELECT 1 FROM uploads
                     WHERE repository = $1 OR (repository >= $2 AND repository < $3) LIMIT $4)
                     AS open",
                    &[&ns, &below, &after, &max],
                )?
                .map_or(0, |r| r.get::<_, i64>(0));
            if open >= max {
                return Ok(false);
            }
            db.exec(
                "INSERT INTO uploads (id, repository, created_at, updated_at) VALUES ($1, $2, $3, $3)
                 ON CONFLICT (id) DO NOTHING",
                &[&id, &repo, &now()],
            )?;
            Ok(true)
        })
    }

    fn upload(&self, id: &str) -> Result<Option<Upload>> {
        self.read(|db| {
            db.row(
                "SELECT u.id, u.repository, u.updated_at, s.state FROM uploads u \
                 LEFT JOIN upload_states s ON s.id = u.id WHERE u.id = $1",
                &[&id],
            )?
            .map(|r| {
                Ok(Upload {
                    id: get(&r, 0)?,
                    repository: get(&r, 1)?,
                    updated_at: get(&r, 2)?,
                    state: get(&r, 3)?,
                })
            })
            .transpose()
        })
    }

    fn touch_upload(&self, id: &str) -> Result<()> {
        self.read(|db| {
            db.exec(
                "UPDATE uploads SET updated_at = $2 WHERE id = $1",
                &[&id, &now()],
            )
            .map(drop)
        })
    }

    fn delete_upload(&self, id: &str) -> Result<()> {
        self.read(|db| {
            db.exec("DELETE FROM uploads WHERE id = $1", &[&id])
                .map(drop)
        })
    }

    fn set_upload_state(&self, id: &str, expected: Option<&str>, new: &str) -> Result<bool> {
        self.read(|db| {
            // One statement: the row lock of the UPDATE (or the INSERT's key) decides
            // between two replicas, and the session is marked changed with it.
            let changed = match expected {
                None => db.exec(
                    "WITH s AS (INSERT INTO upload_states (id, state) \
                     SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM uploads WHERE id = $1) \
                     ON CONFLICT (id) DO NOTHING RETURNING id) \
                     UPDATE uploads SET updated_at = $3 WHERE id IN (SELECT id FROM s)",
                    &[&id, &new, &now()],
                )?,
                Some(old) => db.exec(
                    "WITH s AS (UPDATE upload_states SET state = $2 WHERE id = $1 AND state = $4 \
                     RETURNING id) \
                     UPDATE uploads SET updated_at = $3 WHERE id IN (SELECT id FROM s)",
                    &[&id, &new, &now(), &old],
                )?,
            };
            // A call retried on a new connection after its commit (the server went
            // away before answering) finds its own state there.
            Ok(changed == 1
                || db.exists(
                    "SELECT 1 FROM upload_states WHERE id = $1 AND state = $2",
                    &[&id, &new],
                )?)
        })
    }

    fn stale_uploads(&self, before: i64) -> Result<Vec<String>> {
        self.read(|db| {
            db.rows("SELECT id FROM uploads WHERE updated_at < $1", &[&before])?
                .iter()
                .map(|r| get(r, 0))
                .collect()
        })
    }

    fn counts(&self) -> Result<Counts> {
        self.read(|db| {
            let row = db.row(
                "SELECT (SELECT COUNT(*) FROM repositories), (SELECT COUNT(*) FROM blobs),
                        (SELECT COUNT(*) FROM manifests), (SELECT COUNT(*) FROM uploads)",
                &[],
            )?;
            let Some(r) = row else {
                return Ok(Counts::default());
            };
            let n = |i| get::<i64>(&r, i).map(|n| n.max(0) as u64);
            Ok(Counts {
                repositories: n(0)?,
                blobs: n(1)?,
                manifests: n(2)?,
                uploads: n(3)?,
            })
        })
    }

    fn gc_graph(&self) -> Result<Graph> {
        // One snapshot for every table: the mark must not see a manifest without the
        // tag that was moved onto it meanwhile.
        self.pool.with(|c| {
            c.transaction(berth_pg::snapshot, |db| {
                let mut db = Db(db);
                let repositories = db.repo_graphs(None)?;
                let blobs = db
                    .rows("SELECT digest, size, created_at FROM blobs", &[])?
                    .iter()
                    .map(|r| Ok((get(r, 0)?, get::<i64>(r, 1)?.max(0) as u64, get(r, 2)?)))
                    .collect::<Result<_>>()?;
                Ok(Graph {
                    repositories,
                    blobs,
                })
            })
        })
    }

    fn gc_sweep_repository(
        &self,
        planned: &RepoGarbage,
        cutoff: i64,
        keep_untagged: bool,
    ) -> Result<Swept> {
        self.write(|db| db.sweep_repository(self.origin, planned, cutoff, keep_untagged))
    }

    fn gc_sweep_repositories(
        &self,
        planned: &[RepoGarbage],
        cutoff: i64,
        keep_untagged: bool,
    ) -> Result<Vec<Swept>> {
        self.write(|db| {
            planned
                .iter()
                .map(|p| db.sweep_repository(self.origin, p, cutoff, keep_untagged))
                .collect()
        })
    }

    /// One statement for the whole batch: row by row, 8,000 blobs were 16,000 round
    /// trips under the exclusive lock every replica's pushes wait on.
    fn gc_delete_blobs(&self, blobs: &[(String, u64)], cutoff: i64) -> Result<Vec<(String, u64)>> {
        let digests: Vec<&str> = blobs.iter().map(|(d, _)| d.as_str()).collect();
        self.write(|db| {
            let rows = db.rows(
                "WITH gone AS (
                     DELETE FROM blobs b WHERE b.digest = ANY($1) AND b.created_at < $2
                     AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest)
                     RETURNING b.digest, b.size
                 ), marked AS (
                     INSERT INTO blob_tombstones (digest, created_at)
                     SELECT digest, $3 FROM gone
                     ON CONFLICT (digest) DO UPDATE SET created_at = excluded.created_at
                 )
                 SELECT digest, size FROM gone",
                &[&digests, &cutoff, &now()],
            )?;
            rows.iter()
                .map(|r| Ok((get::<String>(r, 0)?, get::<i64>(r, 1)?.max(0) as u64)))
                .collect()
        })
    }

    fn gc_tombstone_unnamed(&self, digests: &[Digest]) -> Result<Vec<Digest>> {
        self.write(|db| {
            let mut out = Vec::new();
            for d in digests {
                let s = d.to_string();
                // Another remover's tombstone stays its own: taking it over, this
                // one would clear it while the other's unlink was still to come.
                if !db.exists("SELECT 1 FROM blobs WHERE digest = $1", &[&s])?
                    && db.exec(
                        "INSERT INTO blob_tombstones (digest, created_at) VALUES ($1, $2)
                         ON CONFLICT (digest) DO NOTHING",
                        &[&s, &now()],
                    )? > 0
                {
                    out.push(d.clone());
                }
            }
            Ok(out)
        })
    }

    fn gc_clear_tombstones(&self, digests: &[Digest]) -> Result<()> {
        self.write(|db| {
            for d in digests {
                db.exec(
                    "DELETE FROM blob_tombstones WHERE digest = $1",
                    &[&d.to_string()],
                )?;
            }
            Ok(())
        })
    }

    fn gc_stale_tombstones(&self, before: i64) -> Result<Vec<Digest>> {
        self.read(|db| {
            db.rows(
                "SELECT digest FROM blob_tombstones WHERE created_at < $1",
                &[&before],
            )?
            .iter()
            .map(|r| digest_at(r, 0))
            .collect()
        })
    }

    fn all_blobs(&self) -> Result<Vec<(Digest, u64)>> {
        self.read(|db| {
            db.rows("SELECT digest, size FROM blobs ORDER BY digest", &[])?
                .iter()
                .map(|r| Ok((digest_at(r, 0)?, get::<i64>(r, 1)?.max(0) as u64)))
                .collect()
        })
    }

    fn forget_blobs(
        &self,
        digests: &[Digest],
        gone: &(dyn Fn(&Digest) -> bool + Sync),
    ) -> Result<()> {
        self.write(|db| {
            for d in digests.iter().filter(|d| gone(d)) {
                let d = d.to_string();
                db.exec("DELETE FROM repository_blobs WHERE digest = $1", &[&d])?;
                db.exec("DELETE FROM blobs WHERE digest = $1", &[&d])?;
            }
            Ok(())
        })
    }

    fn blob_users(&self, digest: &Digest) -> Result<BlobUsers> {
        let d = digest.to_string();
        self.read(|db| {
            let repositories = db
                .rows(
                    "SELECT r.name FROM repository_blobs rb
                     JOIN repositories r ON r.id = rb.repository_id
                     WHERE rb.digest = $1 ORDER BY r.name",
                    &[&d],
                )?
                .iter()
                .map(|r| get(r, 0))
                .collect::<Result<_>>()?;
            let refs = db.rows(
                "SELECT r.name, mr.manifest_digest, mr.repository_id FROM manifest_references mr
                 JOIN repositories r ON r.id = mr.repository_id
                 WHERE mr.child_digest = $1 ORDER BY r.name, mr.manifest_digest",
                &[&d],
            )?;
            let mut manifests = Vec::new();
            for r in refs {
                let (repo, manifest, id): (String, String, i64) =
                    (get(&r, 0)?, get(&r, 1)?, get(&r, 2)?);
                let tags = db
                    .rows(
                        "SELECT name FROM tags WHERE repository_id = $1 AND manifest_digest = $2
                         ORDER BY name",
                        &[&id, &manifest],
                    )?
                    .iter()
                    .map(|t| get(t, 0))
                    .collect::<Result<_>>()?;
                manifests.push((repo, manifest, tags));
            }
            Ok(BlobUsers {
                repositories,
                manifests,
            })
        })
    }

    fn watch(&self, on: Box<dyn FnMut(Watched) + Send>) -> Result<Option<Watch>> {
        crate::notify::watch(self.pool.target().clone(), self.origin, on).map(Some)
    }
}
