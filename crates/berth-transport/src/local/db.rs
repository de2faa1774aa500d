//! The local store's SQLite metadata: what images there are, their names, manifests
//! and blobs (schema.sql). Every change is one `BEGIN IMMEDIATE` transaction, so two
//! berth processes sharing a store see each other's changes whole or not at all.

use std::collections::BTreeMap;
use std::path::Path;

use berth_image::Digest;
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use crate::TransportError;

const SCHEMA: &str = include_str!("schema.sql");

impl From<rusqlite::Error> for TransportError {
    fn from(e: rusqlite::Error) -> Self {
        TransportError::Store(e.into())
    }
}

/// One image of the store, as `berth images` and `image inspect` show it.
#[derive(Debug, Clone)]
pub struct Image {
    /// The config's digest: the image ID.
    pub id: Digest,
    /// The manifest it was last stored with.
    pub digest: Digest,
    /// Every manifest it is known by.
    pub digests: Vec<Digest>,
    /// `host/path:tag`, oldest first.
    pub names: Vec<String>,
    /// Config `created`, unix seconds; 0 when unknown.
    pub created: i64,
    pub created_text: Option<String>,
    /// Config and layers as stored (compressed), in bytes.
    pub size: u64,
    pub labels: BTreeMap<String, String>,
    pub architecture: String,
    pub os: String,
    /// A manifest list in the store names it: never dangling, never pruned.
    pub in_list: bool,
    /// Containers made from it.
    pub containers: u32,
}

impl Image {
    /// No name, and no manifest list holds it.
    pub fn is_dangling(&self) -> bool {
        self.names.is_empty() && !self.in_list
    }

    /// `host/path@digest` for every name's repository and every manifest, as podman's
    /// RepoDigests.
    pub fn repo_digests(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for name in &self.names {
            let repo = repository_of(name);
            for d in &self.digests {
                let s = format!("{repo}@{d}");
                if !out.contains(&s) {
                    out.push(s);
                }
            }
        }
        out
    }
}

/// `host/path` of `host/path:tag` (a port's colon comes before the last slash).
pub fn repository_of(name: &str) -> &str {
    match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => &name[..i],
        _ => name,
    }
}

/// What an image manifest adds to the store.
pub struct NewImage<'a> {
    pub id: &'a Digest,
    pub digest: &'a Digest,
    pub media_type: &'a str,
    pub content: &'a [u8],
    pub blobs: Vec<Digest>,
    pub created_text: Option<String>,
    pub size: u64,
    pub labels: String,
    pub architecture: String,
    pub os: String,
}

pub fn open(path: &Path) -> Result<Connection, TransportError> {
    // NORMAL: a crash of berth loses nothing committed; a power loss may lose the last
    // transactions but never corrupts, and each pull already fsyncs its blobs. Local
    // commands stay fast on slow disks.
    let conn = berth_store::sqlite::connect(path, berth_store::sqlite::Sync::Normal)?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

pub fn write<T>(
    conn: &mut Connection,
    f: impl FnOnce(&Transaction) -> Result<T, TransportError>,
) -> Result<T, TransportError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let out = f(&tx)?;
    tx.commit()?;
    Ok(out)
}

fn digest(s: String) -> rusqlite::Result<Digest> {
    s.parse().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

pub fn blob_size(conn: &Connection, d: &Digest) -> Result<Option<u64>, TransportError> {
    Ok(conn
        .prepare_cached("SELECT size FROM blobs WHERE digest = ?1")?
        .query_row([d.to_string()], |r| r.get::<_, i64>(0))
        .optional()?
        .map(|s| s as u64))
}

pub fn add_blob(conn: &Connection, d: &Digest, size: u64) -> Result<(), TransportError> {
    conn.prepare_cached("INSERT OR IGNORE INTO blobs (digest, size) VALUES (?1, ?2)")?
        .execute(params![d.to_string(), size as i64])?;
    Ok(())
}

/// Stores an image manifest; its blobs must be in (a concurrent `rmi` may have taken
/// a shared layer away: then this fails and nothing is stored).
pub fn put_image(tx: &Transaction, img: &NewImage, now: i64) -> Result<(), TransportError> {
    for b in &img.blobs {
        if blob_size(tx, b)?.is_none() {
            return Err(TransportError::NotFound(format!(
                "blob {b} of image {} in the local store (removed meanwhile? pull again)",
                img.id
            )));
        }
    }
    let id = img.id.to_string();
    tx.execute(
        "INSERT INTO images (id, digest, created, created_text, size, labels, architecture, os, added)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (id) DO UPDATE SET digest = excluded.digest",
        params![
            id,
            img.digest.to_string(),
            img.created_text.as_deref().map(unix_of).unwrap_or(0),
            img.created_text,
            img.size as i64,
            img.labels,
            img.architecture,
            img.os,
            now
        ],
    )?;
    tx.execute(
        "INSERT OR IGNORE INTO manifests (digest, media_type, content, image) VALUES (?1, ?2, ?3, ?4)",
        params![img.digest.to_string(), img.media_type, img.content, id],
    )?;
    let mut link =
        tx.prepare_cached("INSERT OR IGNORE INTO image_blobs (image, blob) VALUES (?1, ?2)")?;
    for b in &img.blobs {
        link.execute(params![id, b.to_string()])?;
    }
    Ok(())
}

/// Stores a manifest list whose members are all in; returns the image to show for
/// it: the member for `arch`, else the first.
pub fn put_list(
    tx: &Transaction,
    digest: &Digest,
    media_type: &str,
    content: &[u8],
    members: &[Digest],
    arch: &str,
) -> Result<Digest, TransportError> {
    let mut shown: Option<(Digest, bool)> = None;
    for m in members {
        let found: Option<(String, String)> = tx
            .prepare_cached(
                "SELECT i.id, i.architecture FROM manifests m JOIN images i ON i.id = m.image
                 WHERE m.digest = ?1",
            )?
            .query_row([m.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let (id, a) = found.ok_or_else(|| {
            TransportError::NotFound(format!("manifest {m} of list {digest} in the local store"))
        })?;
        let id = digest_of(id)?;
        if shown.as_ref().is_none_or(|(_, exact)| !exact && a == arch) {
            shown = Some((id, a == arch));
        }
    }
    let (shown, _) = shown.ok_or_else(|| {
        TransportError::Corrupt(format!("manifest list {digest} has no manifests"))
    })?;
    tx.execute(
        "INSERT OR IGNORE INTO manifests (digest, media_type, content, image) VALUES (?1, ?2, ?3, NULL)",
        params![digest.to_string(), media_type, content],
    )?;
    let mut add =
        tx.prepare_cached("INSERT OR IGNORE INTO list_members (list, member) VALUES (?1, ?2)")?;
    for m in members {
        add.execute(params![digest.to_string(), m.to_string()])?;
    }
    Ok(shown)
}

fn digest_of(s: String) -> Result<Digest, TransportError> {
    s.parse()
        .map_err(|e| TransportError::Corrupt(format!("digest {s:?} in images.db: {e}")))
}

/// Points `name` at a manifest (and the image shown for it), taking it from whatever
/// image had it: that one may become dangling, as in podman.
pub fn set_name(
    tx: &Transaction,
    name: &str,
    manifest: &Digest,
    image: &Digest,
) -> Result<(), TransportError> {
    // `added` orders an image's names as they came, as podman lists them.
    tx.execute(
        "INSERT INTO names (name, manifest, image, added)
         VALUES (?1, ?2, ?3, (SELECT COALESCE(MAX(added), 0) + 1 FROM names))
         ON CONFLICT (name) DO UPDATE SET manifest = excluded.manifest, image = excluded.image,
             added = excluded.added",
        params![name, manifest.to_string(), image.to_string()],
    )?;
    drop_unnamed_lists(tx)
}

/// Removes names: all of `image`'s, or those of `names`. Returns how many went.
pub fn remove_names(
    tx: &Transaction,
    image: &Digest,
    names: Option<&[String]>,
) -> Result<usize, TransportError> {
    let n = match names {
        None => tx.execute("DELETE FROM names WHERE image = ?1", [image.to_string()])?,
        Some(names) => {
            let mut n = 0;
            for name in names {
                n += tx.execute(
                    "DELETE FROM names WHERE image = ?1 AND name = ?2",
                    params![image.to_string(), name],
                )?;
            }
            n
        }
    };
    drop_unnamed_lists(tx)?;
    Ok(n)
}

/// A manifest list lives while a name points at it.
fn drop_unnamed_lists(tx: &Transaction) -> Result<(), TransportError> {
    tx.execute(
        "DELETE FROM manifests WHERE image IS NULL
             AND digest NOT IN (SELECT manifest FROM names)",
        [],
    )?;
    Ok(())
}

/// Deletes images with their names and manifests (their blobs stay until
/// [`take_unused_blobs`]).
pub fn remove_images(tx: &Transaction, ids: &[Digest]) -> Result<(), TransportError> {
    let mut delete = tx.prepare_cached("DELETE FROM images WHERE id = ?1")?;
    for id in ids {
        delete.execute([id.to_string()])?;
    }
    drop_unnamed_lists(tx)
}

/// Blobs no image needs, with their sizes; their rows are deleted.
pub fn take_unused_blobs(tx: &Transaction) -> Result<Vec<(Digest, u64)>, TransportError> {
    let rows = tx
        .prepare(
            "SELECT digest, size FROM blobs
             WHERE NOT EXISTS (SELECT 1 FROM image_blobs WHERE blob = blobs.digest)",
        )?
        .query_map([], |r| Ok((digest(r.get(0)?)?, r.get::<_, i64>(1)? as u64)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut del = tx.prepare_cached("DELETE FROM blobs WHERE digest = ?1")?;
    for (d, _) in &rows {
        del.execute([d.to_string()])?;
    }
    Ok(rows)
}

const IMAGE_COLUMNS: &str = "SELECT i.id, i.digest, i.created, i.created_text, i.size, i.labels,
        i.architecture, i.os,
        (SELECT group_concat(name, char(10)) FROM
            (SELECT name FROM names WHERE image = i.id ORDER BY added, name)),
        (SELECT group_concat(digest, char(10)) FROM manifests WHERE image = i.id),
        EXISTS (SELECT 1 FROM list_members l JOIN manifests m ON m.digest = l.member
                WHERE m.image = i.id),
        (SELECT count(*) FROM containers WHERE image = i.id)
    FROM images i";

fn image_row(r: &rusqlite::Row) -> rusqlite::Result<Image> {
    let split = |s: Option<String>| -> Vec<String> {
        s.map(|s| s.split('\n').map(str::to_string).collect())
            .unwrap_or_default()
    };
    let labels: String = r.get(5)?;
    Ok(Image {
        id: digest(r.get(0)?)?,
        digest: digest(r.get(1)?)?,
        created: r.get(2)?,
        created_text: r.get(3)?,
        size: r.get::<_, i64>(4)? as u64,
        labels: serde_json::from_str(&labels).unwrap_or_default(),
        architecture: r.get(6)?,
        os: r.get(7)?,
        names: split(r.get(8)?),
        digests: split(r.get(9)?)
            .into_iter()
            .map(digest)
            .collect::<rusqlite::Result<_>>()?,
        in_list: r.get(10)?,
        containers: r.get(11)?,
    })
}

/// Every image, newest first.
pub fn images(conn: &Connection) -> Result<Vec<Image>, TransportError> {
    let sql = format!("{IMAGE_COLUMNS} ORDER BY i.created DESC, i.id");
    let rows = conn
        .prepare_cached(&sql)?
        .query_map([], image_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

pub fn image(conn: &Connection, id: &Digest) -> Result<Option<Image>, TransportError> {
    let sql = format!("{IMAGE_COLUMNS} WHERE i.id = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([id.to_string()], image_row)
        .optional()?)
}

/// Image IDs starting with `hex`.
pub fn ids_with_prefix(conn: &Connection, hex: &str) -> Result<Vec<Digest>, TransportError> {
    let rows = conn
        .prepare_cached("SELECT id FROM images WHERE id >= ?1 AND id < ?2 LIMIT 2")?
        .query_map(
            params![format!("sha256:{hex}"), format!("sha256:{hex}\u{7f}")],
            |r| digest(r.get(0)?),
        )?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// `name` -> (manifest, image).
pub fn name(conn: &Connection, name: &str) -> Result<Option<(Digest, Digest)>, TransportError> {
    Ok(conn
        .prepare_cached("SELECT manifest, image FROM names WHERE name = ?1")?
        .query_row([name], |r| Ok((digest(r.get(0)?)?, digest(r.get(1)?)?)))
        .optional()?)
}

/// Every name whose repository is `path` or ends in `/path`, with tag `tag`.
pub fn names_ending(
    conn: &Connection,
    path: &str,
    tag: &str,
) -> Result<Vec<(String, Digest)>, TransportError> {
    let rows = conn
        .prepare_cached(
            "SELECT name, image FROM names WHERE name = ?1 OR name LIKE ?2 ESCAPE '\\'",
        )?
        .query_map(
            params![
                format!("{path}:{tag}"),
                format!("%/{}:{}", like_escape(path), like_escape(tag))
            ],
            |r| Ok((r.get(0)?, digest(r.get(1)?)?)),
        )?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// A stored manifest: media type, content, and its image (None for a list).
pub type StoredManifest = (String, Vec<u8>, Option<Digest>);

/// A manifest by digest.
pub fn manifest(conn: &Connection, d: &Digest) -> Result<Option<StoredManifest>, TransportError> {
    Ok(conn
        .prepare_cached("SELECT media_type, content, image FROM manifests WHERE digest = ?1")?
        .query_row([d.to_string()], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get::<_, Option<String>>(2)?.map(digest).transpose()?,
            ))
        })
        .optional()?)
}

/// A config's or history entry's `created` (RFC 3339) as unix seconds; 0 when
/// unreadable.
pub fn unix_of(text: &str) -> i64 {
    humantime::parse_rfc3339_weak(text)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64)
}

/// A container's record: which image, under what name, what to run.
#[derive(Debug, Clone)]
pub struct ContainerRecord {
    /// 64 hex digits.
    pub id: String,
    pub name: String,
    pub image: Digest,
    pub image_name: String,
    pub created: i64,
    /// berth-runtime's JSON.
    pub spec: String,
}

pub fn add_container(tx: &Transaction, c: &ContainerRecord) -> Result<(), TransportError> {
    let taken: bool = tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM containers WHERE name = ?1)")?
        .query_row([&c.name], |r| r.get(0))?;
    if taken {
        return Err(TransportError::Unsupported(format!(
            "the container name \"{}\" is already in use",
            c.name
        )));
    }
    tx.execute(
        "INSERT INTO containers (id, name, image, image_name, created, spec)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            c.id,
            c.name,
            c.image.to_string(),
            c.image_name,
            c.created,
            c.spec
        ],
    )?;
    Ok(())
}

fn container_row(r: &rusqlite::Row) -> rusqlite::Result<ContainerRecord> {
    Ok(ContainerRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        image: digest(r.get(2)?)?,
        image_name: r.get(3)?,
        created: r.get(4)?,
        spec: r.get(5)?,
    })
}

const CONTAINER_COLUMNS: &str = "SELECT id, name, image, image_name, created, spec FROM containers";

/// Every container, newest first.
pub fn containers(conn: &Connection) -> Result<Vec<ContainerRecord>, TransportError> {
    let sql = format!("{CONTAINER_COLUMNS} ORDER BY created DESC, id");
    let rows = conn
        .prepare_cached(&sql)?
        .query_map([], container_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// Containers whose name is `spec` or whose ID starts with it.
pub fn find_containers(
    conn: &Connection,
    spec: &str,
) -> Result<Vec<ContainerRecord>, TransportError> {
    // An exact name or ID first: `db` names a container even when two IDs start so.
    let sql = format!(
        "{CONTAINER_COLUMNS} WHERE name = ?1 OR (id >= ?1 AND id < ?2)
         ORDER BY (name = ?1 OR id = ?1) DESC LIMIT 2"
    );
    let rows = conn
        .prepare_cached(&sql)?
        .query_map(params![spec, format!("{spec}\u{7f}")], container_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

pub fn set_container_spec(tx: &Transaction, id: &str, spec: &str) -> Result<(), TransportError> {
    tx.execute(
        "UPDATE containers SET spec = ?2 WHERE id = ?1",
        params![id, spec],
    )?;
    Ok(())
}

pub fn remove_container(tx: &Transaction, id: &str) -> Result<(), TransportError> {
    tx.execute("DELETE FROM containers WHERE id = ?1", [id])?;
    Ok(())
}

pub fn cache_get(conn: &Connection, key: &str) -> Result<Option<String>, TransportError> {
    Ok(conn
        .prepare_cached("SELECT state FROM build_cache WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?)
}

pub fn cache_put(tx: &Transaction, key: &str, state: &str, now: i64) -> Result<(), TransportError> {
    tx.execute(
        "INSERT OR REPLACE INTO build_cache (key, state, created) VALUES (?1, ?2, ?3)",
        params![key, state, now],
    )?;
    Ok(())
}

/// The signature blobs of manifest `d`, in order.
pub fn signatures(conn: &Connection, d: &Digest) -> Result<Vec<Vec<u8>>, TransportError> {
    let mut stmt = conn
        .prepare_cached("SELECT content FROM signatures WHERE manifest = ?1 ORDER BY position")?;
    let rows = stmt.query_map([d.to_string()], |r| r.get::<_, Vec<u8>>(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Adds the blobs of `new` that manifest `d` does not have yet, after those it has.
/// The manifest must be stored.
pub fn add_signatures(tx: &Transaction, d: &Digest, new: &[Vec<u8>]) -> Result<(), TransportError> {
    let mut have = signatures(tx, d)?;
    for blob in new {
        if have.contains(blob) {
            continue;
        }
        tx.prepare_cached(
            "INSERT INTO signatures (manifest, position, content) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![d.to_string(), have.len() as i64, blob])?;
        have.push(blob.clone());
    }
    Ok(())
}
