//! The embedded metadata store: one SQLite file in WAL mode.
//!
//! Readers take a connection from a small pool and never wait for the writer (WAL);
//! writes go through one connection in `BEGIN IMMEDIATE` transactions, so two
//! processes (the server and an admin command) can share the file safely.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use berth_image::Digest;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::gc::{GcManifest, Graph, RepoGarbage, RepoGraph, Swept};
use crate::meta::{within_quota, BlobUsers, Held, MAX_REFERRER_ANNOTATIONS};
use crate::meta::{
    Counts, ManifestEntry, MetaStore, NewManifest, Referrer, SignatureAdded, StoredManifest,
    StoredSignature, Upload,
};
use crate::{unix_now as now, Result, StoreError};

const SCHEMA: &str = include_str!("schema.sql");
/// Idle read connections kept open. Each costs a little memory (page cache).
const MAX_IDLE_READERS: usize = 4;

pub struct SqliteMeta {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

impl SqliteMeta {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<SqliteMeta> {
        let writer = open_connection(path)?;
        // The writer's transactions can touch many pages (a collection deletes rows
        // all over the tables): with SQLite's default 2 MB cache they spill pages to
        // the WAL mid-transaction and read the same pages again and again.
        writer.execute_batch("PRAGMA cache_size = -32768;")?;
        writer.execute_batch(SCHEMA)?;
        Ok(SqliteMeta {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
        })
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let conn = self.readers.lock().map_err(poisoned)?.pop();
        let conn = match conn {
            Some(c) => c,
            None => open_connection(&self.path)?,
        };
        let out = f(&conn);
        let mut idle = self.readers.lock().map_err(poisoned)?;
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        Ok(out?)
    }

    fn write<T>(&self, f: impl FnOnce(&rusqlite::Transaction) -> Result<T>) -> Result<T> {
        let mut conn = self.writer.lock().map_err(poisoned)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }
}

fn poisoned<T>(_: std::sync::PoisonError<T>) -> StoreError {
    StoreError::Corrupt("a database lock was poisoned by a panic".into())
}

fn open_connection(path: &Path) -> Result<Connection> {
    // FULL: a commit survives power loss, not only a crash of the process; registry
    // writes are few and each already waits for a blob fsync.
    let conn = connect(path, Sync::Full)?;
    conn.execute_batch("PRAGMA cache_size = -2000;")?;
    Ok(conn)
}

pub use berth_sqlite::{connect, Sync};

/// Refuses ([`StoreError::TagImmutable`], [`StoreError::ChildOfImmutable`]) when a tag
/// on manifest `d` of repository `id`, or on an index naming it at any depth, is
/// `immutable`: what deleting the manifest, or its signatures, must not touch.
fn refuse_if_immutable(
    tx: &Connection,
    id: i64,
    d: &str,
    immutable: &(dyn Fn(&str) -> bool + std::marker::Sync),
) -> Result<()> {
    {
        let mut st = tx.prepare_cached(
            "SELECT name FROM tags WHERE repository_id = ?1 AND manifest_digest = ?2",
        )?;
        let mut rows = st.query(params![id, d])?;
        while let Some(row) = rows.next()? {
            let tag: String = row.get(0)?;
            if immutable(&tag) {
                return Err(StoreError::TagImmutable(tag));
            }
        }
    }
    // Nor a child (at any depth) of an index an immutable tag is on: the collector
    // would then take that platform's layers from under the tag.
    for (tag, index) in tagged_above(tx, id, d, true)? {
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

/// The tags on the manifests of repository `id` above `d` (the indexes naming manifest
/// `d` at any depth; for a blob, `manifest` false, the manifests naming it and the
/// indexes above those), with the manifest each is on.
fn tagged_above(
    tx: &Connection,
    id: i64,
    d: &str,
    manifest: bool,
) -> Result<Vec<(String, String)>> {
    let mut st = tx.prepare_cached(
        "WITH RECURSIVE above(digest) AS (
             SELECT manifest_digest FROM manifest_references
              WHERE repository_id = ?1 AND child_digest = ?2 AND child_is_manifest = ?3
             UNION
             SELECT r.manifest_digest FROM manifest_references r
               JOIN above a ON r.child_digest = a.digest
              WHERE r.repository_id = ?1 AND r.child_is_manifest = 1
          )
          SELECT t.name, t.manifest_digest FROM above a
            JOIN tags t ON t.repository_id = ?1 AND t.manifest_digest = a.digest",
    )?;
    let rows = st.query_map(params![id, d, manifest as i64], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn repo_id(conn: &Connection, repo: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT id FROM repositories WHERE name = ?1")?
        .query_row([repo], |r| r.get(0))
        .optional()
}

fn ensure_repo(tx: &rusqlite::Transaction, repo: &str) -> Result<i64> {
    tx.prepare_cached(
        "INSERT INTO repositories (name, created_at) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
    )?
    .execute(params![repo, now()])?;
    repo_id(tx, repo)?.ok_or_else(|| StoreError::Corrupt(format!("repository {repo} vanished")))
}

fn parse_digest(s: String) -> rusqlite::Result<Digest> {
    s.parse().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn stored_manifest(row: &rusqlite::Row) -> rusqlite::Result<StoredManifest> {
    Ok(StoredManifest {
        digest: parse_digest(row.get(0)?)?,
        media_type: row.get(1)?,
        content: row.get(2)?,
        created_at: row.get(3)?,
    })
}

/// The collector's view of repositories (one, or all when `only` is None), read with
/// `conn` (inside the caller's transaction).
fn repo_graphs(conn: &Connection, only: Option<i64>) -> rusqlite::Result<Vec<RepoGraph>> {
    // Two spellings of each query, so that one repository's reload (inside the sweep's
    // write transaction) uses the primary keys instead of scanning every table.
    let filter = |column: &str| match only {
        Some(_) => format!("{column} = ?1"),
        None => "?1 IS NULL".to_string(),
    };
    let mut by_id: std::collections::BTreeMap<i64, RepoGraph> = Default::default();
    let mut st = conn.prepare_cached(&format!(
        "SELECT id, name FROM repositories WHERE {}",
        filter("id")
    ))?;
    for row in st.query_map([only], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
    })? {
        let (id, name) = row?;
        by_id.insert(
            id,
            RepoGraph {
                name,
                ..RepoGraph::default()
            },
        );
    }
    let mut st = conn.prepare_cached(&format!(
        "SELECT repository_id, digest, size, created_at, subject FROM manifests WHERE {}",
        filter("repository_id")
    ))?;
    let mut rows = st.query([only])?;
    while let Some(r) = rows.next()? {
        if let Some(g) = by_id.get_mut(&r.get(0)?) {
            g.manifests.push(GcManifest {
                digest: r.get(1)?,
                size: r.get::<_, i64>(2)? as u64,
                created_at: r.get(3)?,
                subject: r.get(4)?,
            });
        }
    }
    let mut st = conn.prepare_cached(&format!(
        "SELECT repository_id, manifest_digest, child_digest, child_is_manifest
         FROM manifest_references WHERE {}",
        filter("repository_id")
    ))?;
    let mut rows = st.query([only])?;
    while let Some(r) = rows.next()? {
        if let Some(g) = by_id.get_mut(&r.get(0)?) {
            g.references
                .push((r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? != 0));
        }
    }
    let mut st = conn.prepare_cached(&format!(
        "SELECT repository_id, name, manifest_digest FROM tags WHERE {}",
        filter("repository_id")
    ))?;
    let mut rows = st.query([only])?;
    while let Some(r) = rows.next()? {
        if let Some(g) = by_id.get_mut(&r.get(0)?) {
            crate::gc::add_tag(g, &r.get::<_, String>(1)?, r.get(2)?);
        }
    }
    let mut st = conn.prepare_cached(&format!(
        "SELECT repository_id, digest, created_at FROM repository_blobs WHERE {}",
        filter("repository_id")
    ))?;
    let mut rows = st.query([only])?;
    while let Some(r) = rows.next()? {
        if let Some(g) = by_id.get_mut(&r.get(0)?) {
            g.links.push((r.get(1)?, r.get(2)?));
        }
    }
    Ok(by_id.into_values().collect())
}

/// One repository's sweep inside the caller's write transaction (see
/// [`MetaStore::gc_sweep_repository`]).
fn sweep_repository(
    tx: &rusqlite::Transaction,
    planned: &RepoGarbage,
    cutoff: i64,
    keep_untagged: bool,
) -> Result<Swept> {
    let Some(id) = repo_id(tx, &planned.repository)? else {
        return Ok(Swept::default());
    };
    // The fence: liveness again, from what is stored now, under the writer.
    let Some(graph) = repo_graphs(tx, Some(id))?.pop() else {
        return Ok(Swept::default());
    };
    let now = crate::gc::repo_garbage(&graph, cutoff, keep_untagged);
    let still: HashSet<&str> = now.manifests.iter().map(|(d, _)| d.as_str()).collect();
    let mut swept = Swept::default();
    for (d, size) in &planned.manifests {
        if !still.contains(d.as_str()) {
            continue;
        }
        for sql in [
            "DELETE FROM tags WHERE repository_id = ?1 AND manifest_digest = ?2",
            "DELETE FROM manifest_references WHERE repository_id = ?1 AND manifest_digest = ?2",
            "DELETE FROM signatures WHERE repository_id = ?1 AND manifest_digest = ?2",
            "DELETE FROM manifests WHERE repository_id = ?1 AND digest = ?2",
        ] {
            tx.prepare_cached(sql)?.execute(params![id, d])?;
        }
        swept.manifests.push((d.clone(), *size));
    }
    let still: HashSet<&str> = now.links.iter().map(String::as_str).collect();
    let mut unlink =
        tx.prepare_cached("DELETE FROM repository_blobs WHERE repository_id = ?1 AND digest = ?2")?;
    for d in planned.links.iter().filter(|d| still.contains(d.as_str())) {
        swept.links += unlink.execute(params![id, d])?;
    }
    Ok(swept)
}

/// Bytes of the distinct blobs and manifests of namespace `ns` (`ns` and `ns/…`; '0'
/// follows '/', so `ns/` up to `ns0` is exactly the names under `ns/`, read from the
/// index). A digest counts once, whether blob, manifest or both.
fn ns_usage(c: &Connection, ns: &str) -> rusqlite::Result<u64> {
    c.prepare_cached(
        "SELECT COALESCE(SUM(size), 0) FROM (
            SELECT b.digest, b.size FROM blobs b WHERE b.digest IN (
                SELECT rb.digest FROM repositories r
                JOIN repository_blobs rb ON rb.repository_id = r.id
                WHERE r.name = ?1 OR (r.name >= ?2 AND r.name < ?3))
            UNION
            SELECT m.digest, m.size FROM repositories r
            JOIN manifests m ON m.repository_id = r.id
            WHERE r.name = ?1 OR (r.name >= ?2 AND r.name < ?3))",
    )?
    .query_row(params![ns, format!("{ns}/"), format!("{ns}0")], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n.max(0) as u64)
}

/// Whether a repository of namespace `ns` holds `d` (a blob it links, or a manifest).
fn ns_holds(c: &Connection, ns: &str, d: &str, held: Held) -> rusqlite::Result<bool> {
    c.prepare_cached(match held {
        Held::Blob => {
            "SELECT 1 FROM repositories r
             JOIN repository_blobs rb ON rb.repository_id = r.id
             WHERE (r.name = ?1 OR (r.name >= ?2 AND r.name < ?3)) AND rb.digest = ?4"
        }
        Held::Manifest => {
            "SELECT 1 FROM repositories r
             JOIN manifests m ON m.repository_id = r.id
             WHERE (r.name = ?1 OR (r.name >= ?2 AND r.name < ?3)) AND m.digest = ?4"
        }
    })?
    .exists(params![ns, format!("{ns}/"), format!("{ns}0"), d])
}

impl SqliteMeta {
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
        self.write(|tx| {
            if let Some((ns, bytes)) = quota {
                if !ns_holds(tx, ns, &digest, Held::Manifest)? {
                    within_quota(ns, bytes, ns_usage(tx, ns)?, m.content.len() as u64)?;
                }
            }
            let id = ensure_repo(tx, repo)?;
            let now = now();
            if let (Some(tag), true) = (tag, immutable) {
                let on: Option<String> = tx
                    .prepare_cached(
                        "SELECT manifest_digest FROM tags WHERE repository_id = ?1 AND name = ?2",
                    )?
                    .query_row(params![id, tag], |r| r.get(0))
                    .optional()?;
                if on.is_some_and(|d| d != digest) {
                    return Err(StoreError::TagImmutable(tag.to_string()));
                }
            }
            if check_references {
                let mut has_blob = tx.prepare_cached(
                    "SELECT 1 FROM repository_blobs WHERE repository_id = ?1 AND digest = ?2",
                )?;
                for b in &m.blobs {
                    if !has_blob.exists(params![id, b.to_string()])? {
                        return Err(StoreError::MissingBlob(b.clone()));
                    }
                }
                let mut has_manifest = tx
                    .prepare_cached("SELECT 1 FROM manifests WHERE repository_id = ?1 AND digest = ?2")?;
                for c in &m.manifests {
                    if !has_manifest.exists(params![id, c.to_string()])? {
                        return Err(StoreError::MissingManifest(c.clone()));
                    }
                }
            }
            tx.prepare_cached(
                "INSERT INTO manifests (repository_id, digest, media_type, artifact_type, subject,
                                        annotations, size, content, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (repository_id, digest) DO UPDATE SET created_at = excluded.created_at",
            )?
            .execute(params![
                id,
                digest,
                m.media_type,
                m.artifact_type,
                m.subject.as_ref().map(|s| s.to_string()),
                m.annotations,
                m.content.len() as i64,
                m.content,
                now
            ])?;
            {
                let mut refs = tx.prepare_cached(
                    "INSERT INTO manifest_references (repository_id, manifest_digest, child_digest, child_is_manifest)
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                )?;
                for b in &m.blobs {
                    refs.execute(params![id, digest, b.to_string(), 0])?;
                }
                for c in &m.manifests {
                    refs.execute(params![id, digest, c.to_string(), 1])?;
                }
            }
            if let Some(tag) = tag {
                tx.prepare_cached(
                    "INSERT INTO tags (repository_id, name, manifest_digest, updated_at)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (repository_id, name)
                     DO UPDATE SET manifest_digest = excluded.manifest_digest, updated_at = excluded.updated_at",
                )?
                .execute(params![id, tag, digest, now])?;
            }
            Ok(())
        })
    }
}

impl MetaStore for SqliteMeta {
    fn link_blob_within(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        present: &(dyn Fn() -> bool + std::marker::Sync),
        quota: Option<(&str, u64)>,
    ) -> Result<()> {
        let d = digest.to_string();
        self.write(|tx| {
            let removing = tx
                .prepare_cached("SELECT 1 FROM blob_tombstones WHERE digest = ?1")?
                .exists([&d])?;
            // As on PostgreSQL: a row names a file that is there; only a blob no row
            // names is looked for.
            if removing
                || (!tx
                    .prepare_cached("SELECT 1 FROM blobs WHERE digest = ?1")?
                    .exists([&d])?
                    && !present())
            {
                return Err(StoreError::BlobVanished(digest.clone()));
            }
            if let Some((ns, bytes)) = quota {
                if !ns_holds(tx, ns, &d, Held::Blob)? {
                    within_quota(ns, bytes, ns_usage(tx, ns)?, size)?;
                }
            }
            let id = ensure_repo(tx, repo)?;
            let now = now();
            // Linking again refreshes created_at: the collector's grace starts again.
            tx.prepare_cached(
                "INSERT INTO blobs (digest, size, created_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (digest) DO UPDATE SET created_at = excluded.created_at",
            )?
            .execute(params![d, size as i64, now])?;
            tx.prepare_cached("DELETE FROM blob_commits WHERE digest = ?1")?
                .execute([&d])?;
            tx.prepare_cached(
                "INSERT INTO repository_blobs (repository_id, digest, created_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (repository_id, digest) DO UPDATE SET created_at = excluded.created_at",
            )?
            .execute(params![id, d, now])?;
            Ok(())
        })
    }

    fn blob_in_repo(&self, repo: &str, digest: &Digest) -> Result<Option<u64>> {
        let d = digest.to_string();
        self.read(|c| {
            c.prepare_cached(
                "SELECT b.size FROM repositories r
                 JOIN repository_blobs rb ON rb.repository_id = r.id
                 JOIN blobs b ON b.digest = rb.digest
                 WHERE r.name = ?1 AND rb.digest = ?2",
            )?
            .query_row(params![repo, d], |r| r.get::<_, i64>(0))
            .optional()
        })
        .map(|o| o.map(|s| s as u64))
    }

    fn blob_link(&self, repo: &str, digest: &Digest) -> Result<Option<(u64, i64)>> {
        let d = digest.to_string();
        self.read(|c| {
            c.prepare_cached(
                "SELECT b.size, rb.created_at FROM repositories r
                 JOIN repository_blobs rb ON rb.repository_id = r.id
                 JOIN blobs b ON b.digest = rb.digest
                 WHERE r.name = ?1 AND rb.digest = ?2",
            )?
            .query_row(params![repo, d], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)?))
            })
            .optional()
        })
    }

    fn renew_manifest(&self, repo: &str, digest: &Digest, before: i64) -> Result<bool> {
        let d = digest.to_string();
        self.write(|tx| {
            let Some(id) = repo_id(tx, repo)? else {
                return Ok(false);
            };
            let n = tx
                .prepare_cached(
                    "UPDATE manifests SET created_at = ?3
                     WHERE repository_id = ?1 AND digest = ?2 AND created_at < ?4",
                )?
                .execute(params![id, d, now(), before])?;
            Ok(n > 0)
        })
    }

    fn renew_blob_link(&self, repo: &str, digest: &Digest, before: i64) -> Result<bool> {
        let d = digest.to_string();
        self.write(|tx| {
            let Some(id) = repo_id(tx, repo)? else {
                return Ok(false);
            };
            let now = now();
            let n = tx
                .prepare_cached(
                    "UPDATE repository_blobs SET created_at = ?3
                     WHERE repository_id = ?1 AND digest = ?2 AND created_at < ?4",
                )?
                .execute(params![id, d, now, before])?;
            if n > 0 {
                tx.prepare_cached(
                    "UPDATE blobs SET created_at = ?2 WHERE digest = ?1 AND created_at < ?2",
                )?
                .execute(params![d, now])?;
            }
            Ok(n > 0)
        })
    }

    fn blob_known(&self, digest: &Digest) -> Result<Option<u64>> {
        let d = digest.to_string();
        self.read(|c| {
            c.prepare_cached(
                "SELECT b.size FROM blobs b WHERE b.digest = ?1
                 AND EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest)",
            )?
            .query_row([d], |r| r.get::<_, i64>(0))
            .optional()
        })
        .map(|o| o.map(|s| s as u64))
    }

    fn unlink_blob_guarded(
        &self,
        repo: &str,
        digest: &Digest,
        immutable: &(dyn Fn(&str) -> bool + std::marker::Sync),
    ) -> Result<bool> {
        let d = digest.to_string();
        self.write(|tx| {
            let Some(id) = repo_id(tx, repo)? else {
                return Ok(false);
            };
            for (tag, manifest) in tagged_above(tx, id, &d, false)? {
                if immutable(&tag) {
                    return Err(StoreError::BlobOfImmutable {
                        blob: d.clone(),
                        manifest,
                        tag,
                    });
                }
            }
            let n = tx
                .prepare_cached(
                    "DELETE FROM repository_blobs WHERE repository_id = ?1 AND digest = ?2",
                )?
                .execute(params![id, d])?;
            Ok(n > 0)
        })
    }

    fn unlink_blob_if(&self, repo: &str, digest: &Digest, linked_at: i64) -> Result<bool> {
        let d = digest.to_string();
        self.write(|tx| {
            let Some(id) = repo_id(tx, repo)? else {
                return Ok(false);
            };
            let n = tx
                .prepare_cached(
                    "DELETE FROM repository_blobs
                     WHERE repository_id = ?1 AND digest = ?2 AND created_at = ?3",
                )?
                .execute(params![id, d, linked_at])?;
            Ok(n > 0)
        })
    }

    fn put_proxied_manifest(&self, repo: &str, m: &NewManifest, tag: Option<&str>) -> Result<()> {
        self.store_manifest(repo, m, tag, false, None, false)
    }

    fn tag_set_at(&self, repo: &str, tag: &str) -> Result<Option<(Digest, i64)>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT t.manifest_digest, t.updated_at
                 FROM repositories r JOIN tags t ON t.repository_id = r.id
                 WHERE r.name = ?1 AND t.name = ?2",
            )?
            .query_row(params![repo, tag], |r| {
                Ok((parse_digest(r.get(0)?)?, r.get(1)?))
            })
            .optional()
        })
    }

    fn oldest_links(
        &self,
        ns: &str,
        after: Option<(i64, &str, &Digest)>,
        limit: usize,
    ) -> Result<Vec<(String, Digest, u64, i64)>> {
        // No cursor: before every link (a repository name is never empty).
        let (at, repo, digest) = after
            .map_or((i64::MIN, String::new(), String::new()), |(at, r, d)| {
                (at, r.to_string(), d.to_string())
            });
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT r.name, rb.digest, b.size, rb.created_at FROM repositories r
                 JOIN repository_blobs rb ON rb.repository_id = r.id
                 JOIN blobs b ON b.digest = rb.digest
                 WHERE (r.name = ?1 OR (r.name >= ?2 AND r.name < ?3))
                   AND (rb.created_at, r.name, rb.digest) > (?5, ?6, ?7)
                 ORDER BY rb.created_at, r.name, rb.digest LIMIT ?4",
            )?;
            let rows = st.query_map(
                params![
                    ns,
                    format!("{ns}/"),
                    format!("{ns}0"),
                    limit.min(i64::MAX as usize) as i64,
                    at,
                    repo,
                    digest
                ],
                |r| {
                    Ok((
                        r.get(0)?,
                        parse_digest(r.get(1)?)?,
                        r.get::<_, i64>(2)?.max(0) as u64,
                        r.get(3)?,
                    ))
                },
            )?;
            rows.collect()
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

    fn manifest_by_digest(&self, repo: &str, digest: &Digest) -> Result<Option<StoredManifest>> {
        let d = digest.to_string();
        self.read(|c| {
            c.prepare_cached(
                "SELECT m.digest, m.media_type, m.content, m.created_at FROM repositories r
                 JOIN manifests m ON m.repository_id = r.id
                 WHERE r.name = ?1 AND m.digest = ?2",
            )?
            .query_row(params![repo, d], stored_manifest)
            .optional()
        })
    }

    fn manifest_by_tag(&self, repo: &str, tag: &str) -> Result<Option<StoredManifest>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT m.digest, m.media_type, m.content, m.created_at FROM repositories r
                 JOIN tags t ON t.repository_id = r.id
                 JOIN manifests m ON m.repository_id = r.id AND m.digest = t.manifest_digest
                 WHERE r.name = ?1 AND t.name = ?2",
            )?
            .query_row(params![repo, tag], stored_manifest)
            .optional()
        })
    }

    fn delete_manifest_guarded(
        &self,
        repo: &str,
        digest: &Digest,
        immutable: &(dyn Fn(&str) -> bool + std::marker::Sync),
    ) -> Result<bool> {
        let d = digest.to_string();
        self.write(|tx| {
            let Some(id) = repo_id(tx, repo)? else {
                return Ok(false);
            };
            refuse_if_immutable(tx, id, &d, immutable)?;
            tx.prepare_cached(
                "DELETE FROM tags WHERE repository_id = ?1 AND manifest_digest = ?2",
            )?
            .execute(params![id, d])?;
            tx.prepare_cached(
                "DELETE FROM manifest_references WHERE repository_id = ?1 AND manifest_digest = ?2",
            )?
            .execute(params![id, d])?;
            tx.prepare_cached(
                "DELETE FROM signatures WHERE repository_id = ?1 AND manifest_digest = ?2",
            )?
            .execute(params![id, d])?;
            let n = tx
                .prepare_cached("DELETE FROM manifests WHERE repository_id = ?1 AND digest = ?2")?
                .execute(params![id, d])?;
            Ok(n > 0)
        })
    }

    fn parent_manifests(&self, repo: &str, child: &Digest, n: usize) -> Result<Vec<Digest>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT mr.manifest_digest FROM repositories r
                 JOIN manifest_references mr ON mr.repository_id = r.id
                 WHERE r.name = ?1 AND mr.child_digest = ?2 AND mr.child_is_manifest = 1
                 ORDER BY (EXISTS (SELECT 1 FROM signatures s
                                   WHERE s.repository_id = r.id
                                   AND s.manifest_digest = mr.manifest_digest)
                           OR EXISTS (SELECT 1 FROM tags t
                                      WHERE t.repository_id = r.id
                                      AND t.name = replace(mr.manifest_digest, ':', '-') || '.sig'))
                          DESC,
                          mr.manifest_digest
                 LIMIT ?3",
            )?;
            let rows = st.query_map(params![repo, child.to_string(), n as i64], |r| {
                parse_digest(r.get(0)?)
            })?;
            rows.collect()
        })
    }

    fn signatures(&self, repo: &str, manifest: &Digest) -> Result<Vec<StoredSignature>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT s.name, s.content FROM repositories r
                 JOIN signatures s ON s.repository_id = r.id
                 WHERE r.name = ?1 AND s.manifest_digest = ?2
                 ORDER BY s.created_at, s.name",
            )?;
            let rows = st.query_map(params![repo, manifest.to_string()], |r| {
                Ok(StoredSignature {
                    name: r.get(0)?,
                    content: r.get(1)?,
                })
            })?;
            rows.collect()
        })
    }

    fn signed_manifests(
        &self,
        repo: &str,
        manifests: &[Digest],
        limit: usize,
    ) -> Result<Vec<Digest>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT 1 FROM repositories r JOIN signatures s ON s.repository_id = r.id
                 WHERE r.name = ?1 AND s.manifest_digest = ?2 LIMIT 1",
            )?;
            let mut signed = Vec::new();
            for d in manifests {
                if signed.len() == limit {
                    break;
                }
                if st.exists(params![repo, d.to_string()])? {
                    signed.push(d.clone());
                }
            }
            Ok(signed)
        })
    }

    fn add_signature(
        &self,
        repo: &str,
        manifest: &Digest,
        signature: &StoredSignature,
        max: usize,
    ) -> Result<SignatureAdded> {
        let d = manifest.to_string();
        self.write(|tx| {
            let id = repo_id(tx, repo)?;
            let held = match id {
                Some(id) => tx
                    .prepare_cached(
                        "SELECT 1 FROM manifests WHERE repository_id = ?1 AND digest = ?2",
                    )?
                    .exists(params![id, d])?,
                None => false,
            };
            let (Some(id), true) = (id, held) else {
                return Err(StoreError::MissingManifest(manifest.clone()));
            };
            let existing: Option<Vec<u8>> = tx
                .prepare_cached(
                    "SELECT content FROM signatures
                     WHERE repository_id = ?1 AND manifest_digest = ?2 AND name = ?3",
                )?
                .query_row(params![id, d, signature.name], |r| r.get(0))
                .optional()?;
            if let Some(content) = existing {
                return Ok(if content == signature.content {
                    SignatureAdded::Unchanged
                } else {
                    SignatureAdded::NameTaken
                });
            }
            let count: i64 = tx
                .prepare_cached(
                    "SELECT COUNT(*) FROM signatures WHERE repository_id = ?1 AND manifest_digest = ?2",
                )?
                .query_row(params![id, d], |r| r.get(0))?;
            if count as usize >= max {
                return Ok(SignatureAdded::Full);
            }
            tx.prepare_cached(
                "INSERT INTO signatures (repository_id, manifest_digest, name, content, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![id, d, signature.name, signature.content, now()])?;
            Ok(SignatureAdded::Added)
        })
    }

    fn check_immutable(
        &self,
        repo: &str,
        digest: &Digest,
        immutable: &(dyn Fn(&str) -> bool + std::marker::Sync),
    ) -> Result<()> {
        let d = digest.to_string();
        self.read(|c| {
            Ok(match repo_id(c, repo)? {
                Some(id) => refuse_if_immutable(c, id, &d, immutable),
                None => Ok(()),
            })
        })?
    }

    fn tags_on(&self, repo: &str, digest: &Digest) -> Result<Vec<String>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT t.name FROM repositories r JOIN tags t ON t.repository_id = r.id
                 WHERE r.name = ?1 AND t.manifest_digest = ?2 ORDER BY t.name",
            )?
            .query_map(params![repo, digest.to_string()], |r| r.get(0))?
            .collect()
        })
    }

    fn delete_signatures_guarded(
        &self,
        repo: &str,
        manifest: &Digest,
        name: Option<&str>,
        immutable: &(dyn Fn(&str) -> bool + std::marker::Sync),
    ) -> Result<usize> {
        let d = manifest.to_string();
        self.write(|tx| {
            let Some(id) = repo_id(tx, repo)? else {
                return Ok(0);
            };
            refuse_if_immutable(tx, id, &d, immutable)?;
            Ok(tx
                .prepare_cached(
                    "DELETE FROM signatures WHERE repository_id = ?1 AND manifest_digest = ?2
                     AND (?3 IS NULL OR name = ?3)",
                )?
                .execute(params![id, d, name])?)
        })
    }

    fn delete_tag(&self, repo: &str, tag: &str) -> Result<bool> {
        self.write(|tx| {
            let Some(id) = repo_id(tx, repo)? else {
                return Ok(false);
            };
            let n = tx
                .prepare_cached("DELETE FROM tags WHERE repository_id = ?1 AND name = ?2")?
                .execute(params![id, tag])?;
            Ok(n > 0)
        })
    }

    fn delete_tag_if(&self, repo: &str, tag: &str, digest: &Digest, set_at: i64) -> Result<bool> {
        let d = digest.to_string();
        self.write(|tx| {
            let Some(id) = repo_id(tx, repo)? else {
                return Ok(false);
            };
            let n = tx
                .prepare_cached(
                    "DELETE FROM tags WHERE repository_id = ?1 AND name = ?2
                     AND manifest_digest = ?3 AND updated_at = ?4",
                )?
                .execute(params![id, tag, d, set_at])?;
            Ok(n > 0)
        })
    }

    fn namespace_usage(&self, ns: &str) -> Result<u64> {
        self.read(|c| ns_usage(c, ns))
    }

    fn usage(&self) -> Result<Vec<(String, u64)>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT ns, SUM(size) FROM (
                    SELECT
                        CASE WHEN instr(r.name, '/') > 0
                             THEN substr(r.name, 1, instr(r.name, '/') - 1) ELSE r.name END AS ns,
                        b.digest, b.size
                    FROM repositories r
                    JOIN repository_blobs rb ON rb.repository_id = r.id
                    JOIN blobs b ON b.digest = rb.digest
                    UNION
                    SELECT
                        CASE WHEN instr(r.name, '/') > 0
                             THEN substr(r.name, 1, instr(r.name, '/') - 1) ELSE r.name END,
                        m.digest, m.size
                    FROM repositories r
                    JOIN manifests m ON m.repository_id = r.id)
                 GROUP BY ns ORDER BY ns",
            )?;
            let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            rows.map(|r| r.map(|(n, s)| (n, s.max(0) as u64))).collect()
        })
    }

    fn blob_in_namespace(&self, ns: &str, digest: &Digest) -> Result<bool> {
        let d = digest.to_string();
        self.read(|c| ns_holds(c, ns, &d, Held::Blob))
    }

    fn repository_exists(&self, repo: &str) -> Result<bool> {
        self.read(|c| repo_id(c, repo)).map(|o| o.is_some())
    }

    fn tags(&self, repo: &str, last: Option<&str>, n: usize) -> Result<Vec<String>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT t.name FROM repositories r JOIN tags t ON t.repository_id = r.id
                 WHERE r.name = ?1 AND t.name > ?2 ORDER BY t.name LIMIT ?3",
            )?;
            let rows = st.query_map(params![repo, last.unwrap_or(""), n as i64], |r| r.get(0))?;
            rows.collect()
        })
    }

    fn repositories(&self, last: Option<&str>, n: usize) -> Result<Vec<String>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT r.name FROM repositories r
                 WHERE r.name > ?1 AND EXISTS (SELECT 1 FROM manifests m WHERE m.repository_id = r.id)
                 ORDER BY r.name LIMIT ?2",
            )?;
            let rows = st.query_map(params![last.unwrap_or(""), n as i64], |r| r.get(0))?;
            rows.collect()
        })
    }

    fn manifests_after(&self, after: Option<(&str, &str)>, n: usize) -> Result<Vec<ManifestEntry>> {
        let (repo, digest) = after.unwrap_or(("", ""));
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT r.name, m.digest, m.media_type, m.created_at
                 FROM repositories r JOIN manifests m ON m.repository_id = r.id
                 WHERE r.name > ?1 OR (r.name = ?1 AND m.digest > ?2)
                 ORDER BY r.name, m.digest LIMIT ?3",
            )?;
            let rows = st.query_map(params![repo, digest, n as i64], |r| {
                Ok(ManifestEntry {
                    repository: r.get(0)?,
                    digest: parse_digest(r.get(1)?)?,
                    media_type: r.get(2)?,
                    created_at: r.get(3)?,
                })
            })?;
            rows.collect()
        })
    }

    fn recent_tags(&self, repo: &str, limit: usize) -> Result<Vec<(String, Digest, i64)>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT t.name, t.manifest_digest, t.updated_at
                 FROM repositories r JOIN tags t ON t.repository_id = r.id
                 WHERE r.name = ?1 ORDER BY t.updated_at DESC, t.name DESC LIMIT ?2",
            )?;
            let rows = st.query_map(params![repo, limit.min(i64::MAX as usize) as i64], |r| {
                Ok((r.get(0)?, parse_digest(r.get(1)?)?, r.get(2)?))
            })?;
            rows.collect()
        })
    }

    fn referrers(
        &self,
        repo: &str,
        subject: &Digest,
        artifact_type: Option<&str>,
        after: Option<(i64, &Digest)>,
        limit: usize,
    ) -> Result<Vec<Referrer>> {
        let s = subject.to_string();
        let (after_time, after_digest) = match after {
            Some((t, d)) => (Some(t), Some(d.to_string())),
            None => (None, None),
        };
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT m.digest, m.media_type, m.size, m.artifact_type,
                        CASE WHEN length(CAST(m.annotations AS BLOB)) <= ?7 THEN m.annotations END,
                        m.created_at
                 FROM repositories r JOIN manifests m ON m.repository_id = r.id
                 WHERE r.name = ?1 AND m.subject = ?2 AND (?3 IS NULL OR m.artifact_type = ?3)
                   AND (?4 IS NULL OR (m.created_at, m.digest) > (?4, ?5))
                 ORDER BY m.created_at, m.digest
                 LIMIT ?6",
            )?;
            let rows = st.query_map(
                params![
                    repo,
                    s,
                    artifact_type,
                    after_time,
                    after_digest,
                    limit as i64,
                    MAX_REFERRER_ANNOTATIONS as i64
                ],
                |r| {
                    Ok(Referrer {
                        digest: parse_digest(r.get(0)?)?,
                        media_type: r.get(1)?,
                        size: r.get::<_, i64>(2)? as u64,
                        artifact_type: r.get(3)?,
                        annotations: r.get(4)?,
                        created_at: r.get(5)?,
                    })
                },
            )?;
            rows.collect()
        })
    }

    fn create_upload(&self, id: &str, repo: &str) -> Result<()> {
        self.write(|tx| {
            let now = now();
            tx.prepare_cached(
                "INSERT INTO uploads (id, repository, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)
                 ON CONFLICT (id) DO NOTHING",
            )?
            .execute(params![id, repo, now])?;
            Ok(())
        })
    }

    fn create_upload_bounded(&self, id: &str, repo: &str, max: u64) -> Result<bool> {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let (ns, below, after) = crate::meta::namespace_range(repo);
        self.write(|tx| {
            let open: i64 = tx
                .prepare_cached(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM uploads
                     WHERE repository = ?1 OR (repository >= ?2 AND repository < ?3) LIMIT ?4)",
                )?
                .query_row(params![ns, below, after, max], |r| r.get(0))?;
            if open >= max {
                return Ok(false);
            }
            tx.prepare_cached(
                "INSERT INTO uploads (id, repository, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)
                 ON CONFLICT (id) DO NOTHING",
            )?
            .execute(params![id, repo, now()])?;
            Ok(true)
        })
    }

    fn upload(&self, id: &str) -> Result<Option<Upload>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT u.id, u.repository, u.updated_at, s.state FROM uploads u \
                 LEFT JOIN upload_states s ON s.id = u.id WHERE u.id = ?1",
            )?
            .query_row([id], |r| {
                Ok(Upload {
                    id: r.get(0)?,
                    repository: r.get(1)?,
                    updated_at: r.get(2)?,
                    state: r.get(3)?,
                })
            })
            .optional()
        })
    }

    fn touch_upload(&self, id: &str) -> Result<()> {
        self.write(|tx| {
            tx.prepare_cached("UPDATE uploads SET updated_at = ?2 WHERE id = ?1")?
                .execute(params![id, now()])?;
            Ok(())
        })
    }

    fn delete_upload(&self, id: &str) -> Result<()> {
        self.write(|tx| {
            tx.prepare_cached("DELETE FROM uploads WHERE id = ?1")?
                .execute([id])?;
            Ok(())
        })
    }

    fn set_upload_state(&self, id: &str, expected: Option<&str>, new: &str) -> Result<bool> {
        self.write(|tx| {
            let changed = match expected {
                None => tx
                    .prepare_cached(
                        "INSERT INTO upload_states (id, state) \
                         SELECT ?1, ?2 WHERE EXISTS (SELECT 1 FROM uploads WHERE id = ?1) \
                         ON CONFLICT (id) DO NOTHING",
                    )?
                    .execute(params![id, new])?,
                Some(old) => tx
                    .prepare_cached(
                        "UPDATE upload_states SET state = ?2 WHERE id = ?1 AND state = ?3",
                    )?
                    .execute(params![id, new, old])?,
            };
            if changed == 1 {
                tx.prepare_cached("UPDATE uploads SET updated_at = ?2 WHERE id = ?1")?
                    .execute(params![id, now()])?;
                return Ok(true);
            }
            // As on PostgreSQL: the state already being `new` is this change, repeated.
            Ok(tx
                .prepare_cached("SELECT 1 FROM upload_states WHERE id = ?1 AND state = ?2")?
                .exists(params![id, new])?)
        })
    }

    fn stale_uploads(&self, before: i64) -> Result<Vec<String>> {
        self.read(|c| {
            let mut st = c.prepare_cached("SELECT id FROM uploads WHERE updated_at < ?1")?;
            let rows = st.query_map([before], |r| r.get(0))?;
            rows.collect()
        })
    }

    fn counts(&self) -> Result<Counts> {
        self.read(|c| {
            let count = |sql: &str| -> rusqlite::Result<u64> {
                c.prepare_cached(sql)?
                    .query_row([], |r| r.get::<_, i64>(0))
                    .map(|n| n as u64)
            };
            Ok(Counts {
                repositories: count("SELECT COUNT(*) FROM repositories")?,
                blobs: count("SELECT COUNT(*) FROM blobs")?,
                manifests: count("SELECT COUNT(*) FROM manifests")?,
                uploads: count("SELECT COUNT(*) FROM uploads")?,
            })
        })
    }
    fn gc_graph(&self) -> Result<Graph> {
        self.read(|c| {
            let tx = c.unchecked_transaction()?;
            let repositories = repo_graphs(&tx, None)?;
            let mut st = tx.prepare_cached("SELECT digest, size, created_at FROM blobs")?;
            let blobs = st
                .query_map([], |r| {
                    Ok((r.get(0)?, r.get::<_, i64>(1)? as u64, r.get(2)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            drop(st);
            tx.finish()?;
            Ok(Graph {
                repositories,
                blobs,
            })
        })
    }

    fn gc_sweep_repository(
        &self,
        planned: &RepoGarbage,
        cutoff: i64,
        keep_untagged: bool,
    ) -> Result<Swept> {
        self.write(|tx| sweep_repository(tx, planned, cutoff, keep_untagged))
    }

    fn gc_sweep_repositories(
        &self,
        planned: &[RepoGarbage],
        cutoff: i64,
        keep_untagged: bool,
    ) -> Result<Vec<Swept>> {
        self.write(|tx| {
            planned
                .iter()
                .map(|p| sweep_repository(tx, p, cutoff, keep_untagged))
                .collect()
        })
    }

    fn gc_delete_blobs(&self, blobs: &[(String, u64)], cutoff: i64) -> Result<Vec<(String, u64)>> {
        self.write(|tx| {
            let mut st = tx.prepare_cached(
                "DELETE FROM blobs WHERE digest = ?1 AND created_at < ?2
                 AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = ?1)",
            )?;
            let mut mark = tx.prepare_cached(
                "INSERT INTO blob_tombstones (digest, created_at) VALUES (?1, ?2)
                 ON CONFLICT (digest) DO UPDATE SET created_at = excluded.created_at",
            )?;
            let now = now();
            let mut gone = Vec::new();
            for (d, size) in blobs {
                if st.execute(params![d, cutoff])? > 0 {
                    mark.execute(params![d, now])?;
                    gone.push((d.clone(), *size));
                }
            }
            Ok(gone)
        })
    }

    fn begin_blob_commit(&self, digest: &Digest) -> Result<()> {
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO blob_commits (digest, created_at) VALUES (?1, ?2)
                 ON CONFLICT (digest) DO UPDATE SET created_at = excluded.created_at",
            )?
            .execute(params![digest.to_string(), now()])?;
            Ok(())
        })
    }

    fn open_blob_commits(&self) -> Result<Vec<(Digest, i64)>> {
        self.read(|c| {
            let mut st = c.prepare_cached("SELECT digest, created_at FROM blob_commits")?;
            let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            let mut out = Vec::new();
            for row in rows {
                let (d, at) = row?;
                // A note that is not a digest names no file: nothing to recover.
                if let Ok(d) = d.parse::<Digest>() {
                    out.push((d, at));
                }
            }
            Ok(out)
        })
    }

    fn end_blob_commits(&self, digests: &[Digest], before: i64) -> Result<()> {
        self.write(|tx| {
            let mut st = tx
                .prepare_cached("DELETE FROM blob_commits WHERE digest = ?1 AND created_at < ?2")?;
            for d in digests {
                st.execute(params![d.to_string(), before])?;
            }
            Ok(())
        })
    }

    fn gc_tombstone_unnamed(&self, digests: &[Digest]) -> Result<Vec<Digest>> {
        self.write(|tx| {
            let mut named = tx.prepare_cached("SELECT 1 FROM blobs WHERE digest = ?1")?;
            // Another remover's tombstone stays its own: taking it over, this one
            // would clear it while the other's unlink was still to come.
            let mut mark = tx.prepare_cached(
                "INSERT INTO blob_tombstones (digest, created_at) VALUES (?1, ?2)
                 ON CONFLICT (digest) DO NOTHING",
            )?;
            let mut out = Vec::new();
            for d in digests {
                let s = d.to_string();
                if !named.exists([&s])? && mark.execute(params![s, now()])? > 0 {
                    out.push(d.clone());
                }
            }
            Ok(out)
        })
    }

    fn gc_clear_tombstones(&self, digests: &[Digest]) -> Result<()> {
        self.write(|tx| {
            let mut st = tx.prepare_cached("DELETE FROM blob_tombstones WHERE digest = ?1")?;
            for d in digests {
                st.execute([d.to_string()])?;
            }
            Ok(())
        })
    }

    fn gc_stale_tombstones(&self, before: i64) -> Result<Vec<Digest>> {
        self.read(|c| {
            let mut st =
                c.prepare_cached("SELECT digest FROM blob_tombstones WHERE created_at < ?1")?;
            let rows = st.query_map([before], |r| parse_digest(r.get(0)?))?;
            rows.collect()
        })
    }

    fn all_blobs(&self) -> Result<Vec<(Digest, u64)>> {
        self.read(|c| {
            let mut st = c.prepare_cached("SELECT digest, size FROM blobs ORDER BY digest")?;
            let rows = st.query_map([], |r| {
                Ok((parse_digest(r.get(0)?)?, r.get::<_, i64>(1)? as u64))
            })?;
            rows.collect()
        })
    }

    fn forget_blobs(
        &self,
        digests: &[Digest],
        gone: &(dyn Fn(&Digest) -> bool + std::marker::Sync),
    ) -> Result<()> {
        self.write(|tx| {
            for d in digests.iter().filter(|d| gone(d)) {
                let d = d.to_string();
                tx.prepare_cached("DELETE FROM repository_blobs WHERE digest = ?1")?
                    .execute([&d])?;
                tx.prepare_cached("DELETE FROM blobs WHERE digest = ?1")?
                    .execute([&d])?;
            }
            Ok(())
        })
    }

    fn blob_users(&self, digest: &Digest) -> Result<BlobUsers> {
        let d = digest.to_string();
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT r.name FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id
                 WHERE rb.digest = ?1 ORDER BY r.name",
            )?;
            let repositories = st.query_map([&d], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
            let mut st = c.prepare_cached(
                "SELECT r.name, mr.manifest_digest, mr.repository_id FROM manifest_references mr
                 JOIN repositories r ON r.id = mr.repository_id
                 WHERE mr.child_digest = ?1 ORDER BY r.name, mr.manifest_digest",
            )?;
            let refs: Vec<(String, String, i64)> = st
                .query_map([&d], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let mut tags = c.prepare_cached(
                "SELECT name FROM tags WHERE repository_id = ?1 AND manifest_digest = ?2 ORDER BY name",
            )?;
            let mut manifests = Vec::new();
            for (repo, manifest, id) in refs {
                let t = tags
                    .query_map(params![id, manifest], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                manifests.push((repo, manifest, t));
            }
            Ok(BlobUsers {
                repositories,
                manifests,
            })
        })
    }
}
