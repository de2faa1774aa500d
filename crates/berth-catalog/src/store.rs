//! `catalog.db`: the catalog's own SQLite file, next to `meta.db`.
//!
//! Everything here is derived (from manifests, configs and layers), so commits use
//! `synchronous = NORMAL`: a power loss may lose the last scans, which the next
//! backfill redoes; it never corrupts the file. Readers take pooled connections and
//! never wait for the writer (WAL); writes are `BEGIN IMMEDIATE`, so an admin command
//! (`berth registry scan|vulndb import --root`) can write beside a running server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use berth_inventory::{Containerfile, Inventory, LayerArtifacts, OsInfo, Package, PackageKind};
use berth_vuln::Level;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};

use crate::query::{DiffIndices, PackageSort};
use crate::{unix_now, CatalogError, Result};

const SCHEMA: &str = include_str!("schema.sql");
const MAX_IDLE_READERS: usize = 4;

/// The catalog database.
pub struct CatalogDb {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

/// A layer's stored analysis.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerRecord {
    pub analyzer_version: u32,
    /// The artifacts, or why the analysis failed.
    pub result: std::result::Result<LayerArtifacts, String>,
    pub analyzed_at: i64,
}

/// What a scan learned about one image manifest (one platform).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageFacts {
    /// `os/arch[/variant]` from the config.
    pub platform: Option<String>,
    pub os: Option<String>,
    pub architecture: Option<String>,
    pub config_digest: Option<String>,
    /// The config's `created` (RFC 3339).
    pub created: Option<String>,
    /// Config and layers, compressed, as the manifest lists them.
    pub size: u64,
    /// The config's labels.
    pub labels: BTreeMap<String, String>,
    /// The config's `rootfs.diff_ids`.
    pub diff_ids: Vec<String>,
    /// `org.opencontainers.image.base.name` (or `@digest`), else the stored image
    /// whose layers are a strict prefix of this one's.
    pub base_image: Option<String>,
}

/// One image's stored inventory.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredInventory {
    pub manifest_digest: String,
    pub analyzer_version: u32,
    /// The inventory, or why it could not be computed.
    pub result: std::result::Result<Inventory, String>,
    pub facts: ImageFacts,
    /// Grade of the last match (allow-list not applied) and when it drops next.
    pub grade: Option<String>,
    pub next_drop: Option<i64>,
    pub scanned_at: i64,
}

/// An image's stored inventory without its package list and Containerfile: what
/// summaries, grades and platform comparisons need. A large image's package JSON is
/// most of its row, and parsing it cost milliseconds per image on every page; the OS
/// and the package count come from their own columns instead.
#[derive(Debug, Clone, PartialEq)]
pub struct InventoryHead {
    pub manifest_digest: String,
    /// `Err`: why the scan failed.
    pub result: std::result::Result<(), String>,
    pub facts: ImageFacts,
    /// The inventory's OS (none when it has none or the scan failed).
    pub os: Option<OsInfo>,
    /// How many packages the inventory lists.
    pub packages: usize,
    /// Grade of the last match (allow-list not applied) and when it drops next.
    pub grade: Option<String>,
    pub next_drop: Option<i64>,
}

/// What a grade and the severity counts need of one stored finding.
#[derive(Debug, Clone, PartialEq)]
pub struct FindingFacts {
    pub level: Level,
    pub fixable: bool,
    pub published: Option<String>,
}

/// A finding as stored: the columns that are filtered on, and the whole finding as
/// JSON (whatever fields berth-vuln's `Finding` has).
#[derive(Debug, Clone, PartialEq)]
pub struct FindingRow {
    pub id: String,
    pub aliases: Vec<String>,
    pub package: String,
    pub installed: String,
    pub fixed: Option<String>,
    /// `Critical`, `High`, `Medium`, `Low`, `Unknown`.
    pub level: String,
    pub published: Option<String>,
    pub json: serde_json::Value,
}

/// An accepted finding in a repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AllowEntry {
    pub repository: String,
    pub finding_id: String,
    pub reason: String,
    /// Unix seconds; none: until removed.
    pub expires_at: Option<i64>,
    pub created_by: String,
    pub created_at: i64,
}

/// Where a manifest of a repository stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanStatus {
    Ok,
    Failed,
    /// Not an image (a signature, an SBOM, an artifact): nothing to inventory.
    Skipped,
}

impl ScanStatus {
    fn as_str(self) -> &'static str {
        match self {
            ScanStatus::Ok => "ok",
            ScanStatus::Failed => "failed",
            ScanStatus::Skipped => "skipped",
        }
    }
    fn parse(s: &str) -> ScanStatus {
        match s {
            "ok" => ScanStatus::Ok,
            "skipped" => ScanStatus::Skipped,
            _ => ScanStatus::Failed,
        }
    }
}

/// A child of an index, as recorded with the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Child {
    pub digest: String,
    pub platform: Option<String>,
}

/// One row of `scan_state`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanRecord {
    pub repository: String,
    pub manifest_digest: String,
    pub media_type: String,
    pub status: ScanStatus,
    pub error: Option<String>,
    pub annotations: BTreeMap<String, String>,
    /// An index's children (each has its own inventory).
    pub children: Vec<Child>,
    pub updated_at: i64,
}

/// What a rematch reads of each inventory: no layer, no config.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub(crate) struct Matchable {
    pub os: Option<OsInfo>,
    pub packages: Vec<Package>,
    /// Files of the image that could not be read (`Inventory::unreadable`): with any,
    /// no findings is no clean bill.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<String>,
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

pub(crate) fn from_json<T: for<'de> Deserialize<'de>>(s: &str, what: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| CatalogError::Corrupt(format!("{what}: {e}")))
}

impl CatalogDb {
    /// Opens (creating if needed) `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<CatalogDb> {
        let mut writer = connect(path)?;
        writer.execute_batch(SCHEMA)?;
        crate::search::upgrade(&mut writer)?;
        upgrade_packages(&mut writer)?;
        Ok(CatalogDb {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.readers.lock().map_err(poisoned)?.pop();
        let conn = match conn {
            Some(c) => c,
            None => connect(&self.path)?,
        };
        let out = f(&conn);
        let mut idle = self.readers.lock().map_err(poisoned)?;
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        out
    }

    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction) -> Result<T>,
    ) -> Result<T> {
        let mut conn = self.writer.lock().map_err(poisoned)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    // ---- layers ----

    pub fn layer(&self, digest: &str) -> Result<Option<LayerRecord>> {
        self.read(|c| {
            let row = c
                .prepare_cached(
                    "SELECT analyzer_version, status, error, artifacts, analyzed_at
                     FROM layer_artifacts WHERE digest = ?1",
                )?
                .query_row([digest], |r| {
                    Ok((
                        r.get::<_, u32>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                })
                .optional()?;
            let Some((analyzer_version, status, error, artifacts, analyzed_at)) = row else {
                return Ok(None);
            };
            let result = match (status.as_str(), artifacts) {
                ("ok", Some(a)) => Ok(from_json(&a, &format!("layer {digest}"))?),
                _ => Err(error.unwrap_or_else(|| "analysis failed".into())),
            };
            Ok(Some(LayerRecord {
                analyzer_version,
                result,
                analyzed_at,
            }))
        })
    }

    /// Stores a layer's analysis (replacing an older one).
    pub fn put_layer(
        &self,
        digest: &str,
        analyzer_version: u32,
        result: std::result::Result<&LayerArtifacts, &str>,
    ) -> Result<()> {
        let (status, error, artifacts) = match result {
            Ok(a) => ("ok", None, Some(json(a))),
            Err(e) => ("failed", Some(e), None),
        };
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO layer_artifacts (digest, analyzer_version, status, error, artifacts, analyzed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (digest) DO UPDATE SET analyzer_version = excluded.analyzer_version,
                   status = excluded.status, error = excluded.error,
                   artifacts = excluded.artifacts, analyzed_at = excluded.analyzed_at",
            )?
            .execute(params![digest, analyzer_version, status, error, artifacts, unix_now()])?;
            Ok(())
        })
    }

    /// Forgets failed layer analyses, so that the next scan reads those layers again.
    pub fn forget_failed_layers(&self) -> Result<usize> {
        self.write(|tx| Ok(tx.execute("DELETE FROM layer_artifacts WHERE status = 'failed'", [])?))
    }

    // ---- inventories ----

    /// Stores an image's inventory (or why there is none) with its packages, replacing
    /// what was there; findings are stored apart ([`CatalogDb::put_findings`]).
    pub fn put_inventory(
        &self,
        digest: &str,
        analyzer_version: u32,
        result: std::result::Result<&Inventory, &str>,
        facts: &ImageFacts,
    ) -> Result<()> {
        let (status, error) = match result {
            Ok(_) => ("ok", None),
            Err(e) => ("failed", Some(e)),
        };
        let inv = result.ok();
        let os = inv.and_then(|i| i.os.as_ref());
        let matchable = inv.map(|i| {
            json(&Matchable {
                os: i.os.clone(),
                packages: i.packages.clone(),
                unreadable: i.unreadable.clone(),
            })
        });
        let containerfile = inv.and_then(|i| i.containerfile.as_ref()).map(json);
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO inventories (manifest_digest, analyzer_version, status, error, platform,
                   os, architecture, os_id, os_version, os_pretty, ecosystem, config_digest, created,
                   size, labels, diff_ids, base_image, containerfile, inventory, scanned_at, bottom_layer)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)
                 ON CONFLICT (manifest_digest) DO UPDATE SET analyzer_version = excluded.analyzer_version,
                   status = excluded.status, error = excluded.error, platform = excluded.platform,
                   os = excluded.os, architecture = excluded.architecture, os_id = excluded.os_id,
                   os_version = excluded.os_version, os_pretty = excluded.os_pretty,
                   ecosystem = excluded.ecosystem, config_digest = excluded.config_digest,
                   created = excluded.created, size = excluded.size, labels = excluded.labels,
                   diff_ids = excluded.diff_ids, base_image = excluded.base_image,
                   containerfile = excluded.containerfile, inventory = excluded.inventory,
                   scanned_at = excluded.scanned_at, bottom_layer = excluded.bottom_layer",
            )?
            .execute(params![
                digest,
                analyzer_version,
                status,
                error,
                facts.platform,
                facts.os,
                facts.architecture,
                os.map(|o| o.id.clone()),
                os.and_then(|o| o.version_id.clone()),
                os.and_then(|o| o.pretty_name.clone()),
                os.and_then(|o| o.ecosystem.clone()),
                facts.config_digest,
                facts.created,
                facts.size as i64,
                json(&facts.labels),
                json(&facts.diff_ids),
                facts.base_image,
                containerfile,
                matchable,
                unix_now(),
                facts.diff_ids.first(),
            ])?;
            tx.prepare_cached("DELETE FROM packages WHERE manifest_digest = ?1")?
                .execute([digest])?;
            tx.prepare_cached(
                "DELETE FROM package_diffs WHERE old_digest = ?1 OR new_digest = ?1",
            )?
            .execute([digest])?;
            if let Some(inv) = inv {
                insert_packages(tx, digest, &inv.packages)?;
            }
            Ok(())
        })
    }

    /// An inventory's packages, from their rows (in the inventory's order): what a
    /// package list shows, without parsing the inventory's JSON.
    pub fn packages(&self, digest: &str) -> Result<Vec<Package>> {
        self.read(|c| packages_in(c, digest))
    }

    /// How many of an inventory's packages have `needle` in their name.
    pub fn package_count(&self, digest: &str, needle: &str) -> Result<usize> {
        self.read(|c| {
            // instr(name, '') is 1: an empty needle keeps every row.
            let n: i64 = c
                .prepare_cached(
                    "SELECT count(*) FROM packages WHERE manifest_digest = ?1 AND instr(name, ?2) > 0",
                )?
                .query_row(params![digest, needle], |r| r.get(0))?;
            Ok(n.max(0) as usize)
        })
    }

    /// The `limit` packages from `offset` of those with `needle` in their name, in
    /// `sort` order: one page of a package list, through the `(manifest_digest, name)`
    /// or `(manifest_digest, version_rank)` index (source order sorts the matches).
    pub fn package_page(
        &self,
        digest: &str,
        needle: &str,
        sort: PackageSort,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<Package>> {
        self.read(|c| {
            let order = match sort {
                PackageSort::Name => "name, seq",
                PackageSort::Version => "version_rank, seq",
                PackageSort::Source => "coalesce(source, ''), name, seq",
            };
            let mut st = c.prepare_cached(&format!(
                "SELECT {PACKAGE_COLUMNS} FROM packages
                 WHERE manifest_digest = ?1 AND instr(name, ?2) > 0
                 ORDER BY {order} LIMIT ?3 OFFSET ?4"
            ))?;
            let mut rows = st.query(params![digest, needle, limit as i64, offset as i64])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(package_row(r, digest)?);
            }
            Ok(out)
        })
    }

    /// Some of an inventory's packages by their position (`seq`), in the order asked.
    pub fn packages_at(&self, digest: &str, seqs: &[i64]) -> Result<Vec<Package>> {
        self.read(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {PACKAGE_COLUMNS} FROM packages WHERE manifest_digest = ?1 AND seq = ?2"
            ))?;
            let mut out = Vec::with_capacity(seqs.len());
            for seq in seqs {
                let mut rows = st.query(params![digest, seq])?;
                if let Some(r) = rows.next()? {
                    out.push(package_row(r, digest)?);
                }
            }
            Ok(out)
        })
    }

    /// The diff of `new`'s packages against `old`'s ([`crate::query::diff_indices`]),
    /// none when either has no inventory or its scan failed. Computed on the first
    /// request and stored (positions only, however large the diff): both sides are
    /// content-addressed, and a rescan of either deletes it. The computation runs
    /// under the write lock, so a rescan cannot slip in between reading the packages
    /// and storing their diff.
    pub fn package_diff(&self, old: &str, new: &str) -> Result<Option<DiffIndices>> {
        fn stored(c: &Connection, old: &str, new: &str) -> Result<Option<DiffIndices>> {
            let text: Option<String> = c
                .prepare_cached(
                    "SELECT diff FROM package_diffs WHERE old_digest = ?1 AND new_digest = ?2",
                )?
                .query_row([old, new], |r| r.get(0))
                .optional()?;
            text.map(|t| from_json(&t, &format!("package diff {old} {new}")))
                .transpose()
        }
        if let Some(d) = self.read(|c| stored(c, old, new))? {
            return Ok(Some(d));
        }
        self.write(|tx| {
            if let Some(d) = stored(tx, old, new)? {
                return Ok(Some(d));
            }
            let ok = |d: &str| -> Result<bool> {
                Ok(tx
                    .prepare_cached(
                        "SELECT 1 FROM inventories WHERE manifest_digest = ?1 AND status = 'ok'",
                    )?
                    .exists([d])?)
            };
            if !ok(old)? || !ok(new)? {
                return Ok(None);
            }
            let d = crate::query::diff_indices(&packages_in(tx, old)?, &packages_in(tx, new)?);
            tx.prepare_cached(
                "INSERT INTO package_diffs (old_digest, new_digest, diff) VALUES (?1, ?2, ?3)",
            )?
            .execute([old, new, &json(&d)])?;
            Ok(Some(d))
        })
    }

    /// An inventory's Containerfile alone (none for a failed or missing scan).
    pub fn containerfile(&self, digest: &str) -> Result<Option<Containerfile>> {
        self.read(|c| {
            let text: Option<String> = c
                .prepare_cached(
                    "SELECT containerfile FROM inventories WHERE manifest_digest = ?1 AND status = 'ok'",
                )?
                .query_row([digest], |r| r.get(0))
                .optional()?
                .flatten();
            text.map(|t| from_json(&t, &format!("containerfile of {digest}")))
                .transpose()
        })
    }

    pub fn inventory(&self, digest: &str) -> Result<Option<StoredInventory>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT manifest_digest, analyzer_version, status, error, platform, os, architecture,
                   config_digest, created, size, labels, diff_ids, base_image, containerfile,
                   inventory, grade, next_drop, scanned_at
                 FROM inventories WHERE manifest_digest = ?1",
            )?;
            let row = st.query_row([digest], stored_inventory_row).optional()?;
            row.map(StoredInventoryRow::finish).transpose()
        })
    }

    /// [`CatalogDb::inventory`] without the package list and Containerfile.
    pub fn inventory_head(&self, digest: &str) -> Result<Option<InventoryHead>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT status, error, platform, os, architecture, config_digest, created, size,
                   labels, diff_ids, base_image, grade, next_drop, os_id, os_version, os_pretty,
                   ecosystem,
                   (SELECT count(*) FROM packages p WHERE p.manifest_digest = i.manifest_digest)
                 FROM inventories i WHERE manifest_digest = ?1",
            )?;
            let row = st
                .query_row([digest], |r| {
                    let status: String = r.get(0)?;
                    let error: Option<String> = r.get(1)?;
                    Ok((
                        status,
                        error,
                        StoredInventoryRow {
                            digest: digest.to_string(),
                            analyzer_version: 0,
                            status: String::new(),
                            error: None,
                            platform: r.get(2)?,
                            os: r.get(3)?,
                            architecture: r.get(4)?,
                            config_digest: r.get(5)?,
                            created: r.get(6)?,
                            size: r.get::<_, Option<i64>>(7)?.unwrap_or(0),
                            labels: r.get(8)?,
                            diff_ids: r.get(9)?,
                            base_image: r.get(10)?,
                            containerfile: None,
                            inventory: None,
                            grade: r.get(11)?,
                            next_drop: r.get(12)?,
                            scanned_at: 0,
                        },
                        os_info(r, 13)?,
                        r.get::<_, i64>(17)?,
                    ))
                })
                .optional()?;
            let Some((status, error, row, os, packages)) = row else {
                return Ok(None);
            };
            let ok = status == "ok";
            let stored = row.finish()?;
            Ok(Some(InventoryHead {
                manifest_digest: stored.manifest_digest,
                result: if ok {
                    Ok(())
                } else {
                    Err(error.unwrap_or_else(|| "scan failed".into()))
                },
                facts: stored.facts,
                os: if ok { os } else { None },
                packages: packages.max(0) as usize,
                grade: stored.grade,
                next_drop: stored.next_drop,
            }))
        })
    }

    /// Images (ok ones) whose bottom layer is `bottom`, with their diff_ids: the
    /// candidates for an image's base (an index lookup, not a scan).
    pub fn diff_ids_from(&self, bottom: &str) -> Result<Vec<(String, Vec<String>)>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT manifest_digest, diff_ids FROM inventories
                 WHERE bottom_layer = ?1 AND status = 'ok' AND diff_ids IS NOT NULL",
            )?;
            let rows = st.query_map([bottom], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (d, ids) = row?;
                out.push((d, from_json(&ids, "diff_ids")?));
            }
            Ok(out)
        })
    }

    /// Every ok inventory's OS and packages, `batch` at a time, in digest order after
    /// `after`: what a rematch reads (no layer, no config).
    pub(crate) fn matchables(&self, after: &str, batch: usize) -> Result<Vec<(String, Matchable)>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT manifest_digest, inventory FROM inventories
                 WHERE status = 'ok' AND manifest_digest > ?1 ORDER BY manifest_digest LIMIT ?2",
            )?;
            let rows = st.query_map(params![after, batch as i64], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (d, inv) = row?;
                let m: Matchable = match inv {
                    Some(s) => from_json(&s, &format!("inventory {d}"))?,
                    None => continue,
                };
                out.push((d, m));
            }
            Ok(out)
        })
    }

    // ---- findings ----

    /// Replaces the findings of several images in one transaction, with each one's
    /// grade (allow-list not applied) and next drop date.
    pub fn put_findings(
        &self,
        batch: &[(String, Vec<FindingRow>, String, Option<i64>)],
    ) -> Result<()> {
        self.write(|tx| {
            for (digest, rows, grade, next_drop) in batch {
                tx.prepare_cached("DELETE FROM findings WHERE manifest_digest = ?1")?
                    .execute([digest])?;
                tx.prepare_cached("DELETE FROM finding_ids WHERE manifest_digest = ?1")?
                    .execute([digest])?;
                let mut ins = tx.prepare_cached(
                    "INSERT INTO findings (manifest_digest, seq, id, package, installed, fixed, level, published, finding)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?;
                let mut ids = tx.prepare_cached(
                    "INSERT INTO finding_ids (vuln_id, manifest_digest) VALUES (?1, ?2)
                     ON CONFLICT (vuln_id, manifest_digest) DO NOTHING",
                )?;
                for (i, f) in rows.iter().enumerate() {
                    ins.execute(params![
                        digest,
                        i as i64,
                        f.id,
                        f.package,
                        f.installed,
                        f.fixed,
                        f.level,
                        f.published,
                        f.json.to_string(),
                    ])?;
                    for id in std::iter::once(&f.id).chain(&f.aliases) {
                        ids.execute(params![id, digest])?;
                    }
                }
                tx.prepare_cached(
                    "UPDATE inventories SET grade = ?2, next_drop = ?3 WHERE manifest_digest = ?1",
                )?
                .execute(params![digest, grade, next_drop])?;
            }
            Ok(())
        })
    }

    /// An image's findings as stored (allow-list not applied).
    pub fn findings(&self, digest: &str) -> Result<Vec<FindingRow>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT id, package, installed, fixed, level, published, finding
                 FROM findings WHERE manifest_digest = ?1 ORDER BY seq",
            )?;
            let rows = st.query_map([digest], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, String>(6)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (id, package, installed, fixed, level, published, j) = row?;
                let json: serde_json::Value = from_json(&j, "finding")?;
                let aliases = json["aliases"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(FindingRow {
                    id,
                    aliases,
                    package,
                    installed,
                    fixed,
                    level,
                    published,
                    json,
                });
            }
            Ok(out)
        })
    }

    /// What grading and counting need of an image's findings, from their columns
    /// (the findings' JSON is not read: a page grades every image it lists).
    pub fn finding_facts(&self, digest: &str) -> Result<Vec<FindingFacts>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT level, fixed IS NOT NULL, published FROM findings
                 WHERE manifest_digest = ?1 ORDER BY seq",
            )?;
            let rows = st.query_map([digest], |r| {
                Ok(FindingFacts {
                    level: Level::from_word(&r.get::<_, String>(0)?),
                    fixable: r.get(1)?,
                    published: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// The `(id, package)` of each of an image's findings (which tags still have a
    /// finding), from the columns.
    pub fn finding_keys(&self, digest: &str) -> Result<Vec<(String, String)>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT id, package FROM findings WHERE manifest_digest = ?1 ORDER BY seq",
            )?;
            let rows = st.query_map([digest], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// An image's findings, each as its JSON text (what the matcher found, whole).
    pub fn finding_json(&self, digest: &str) -> Result<Vec<String>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT finding FROM findings WHERE manifest_digest = ?1 ORDER BY seq",
            )?;
            let rows = st.query_map([digest], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Whether an allow-list entry of `repository` in force at `now` names an id or
    /// alias of one of the image's findings (an index lookup on both sides): when
    /// none does, the image's findings all count and need not be read whole.
    pub fn allows_any(&self, repository: &str, digest: &str, now: i64) -> Result<bool> {
        self.read(|c| {
            Ok(c.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM allowlist a JOIN finding_ids f
                   ON f.vuln_id = a.finding_id AND f.manifest_digest = ?2
                 WHERE a.repository = ?1 AND (a.expires_at IS NULL OR a.expires_at > ?3))",
            )?
            .query_row(params![repository, digest, now], |r| r.get(0))?)
        })
    }

    // ---- allow-list ----

    /// Accepts `finding_id` (an id or an alias) in `repository` (replacing an entry).
    pub fn allow(&self, entry: &AllowEntry) -> Result<()> {
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO allowlist (repository, finding_id, reason, expires_at, created_by, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (repository, finding_id) DO UPDATE SET reason = excluded.reason,
                   expires_at = excluded.expires_at, created_by = excluded.created_by,
                   created_at = excluded.created_at",
            )?
            .execute(params![
                entry.repository,
                entry.finding_id,
                entry.reason,
                entry.expires_at,
                entry.created_by,
                entry.created_at
            ])?;
            Ok(())
        })
    }

    /// Removes an entry; false when there was none.
    pub fn disallow(&self, repository: &str, finding_id: &str) -> Result<bool> {
        self.write(|tx| {
            Ok(tx.execute(
                "DELETE FROM allowlist WHERE repository = ?1 AND finding_id = ?2",
                params![repository, finding_id],
            )? > 0)
        })
    }

    /// The entries of `repository` in force at `now` (expired ones are kept, and
    /// listed by [`CatalogDb::allowlist_all`], but no longer apply).
    pub fn allowlist(&self, repository: &str, now: i64) -> Result<Vec<AllowEntry>> {
        Ok(self
            .allowlist_all(repository)?
            .into_iter()
            .filter(|e| e.expires_at.is_none_or(|t| t > now))
            .collect())
    }

    pub fn allowlist_all(&self, repository: &str) -> Result<Vec<AllowEntry>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT repository, finding_id, reason, expires_at, created_by, created_at
                 FROM allowlist WHERE repository = ?1 ORDER BY finding_id",
            )?;
            let rows = st.query_map([repository], |r| {
                Ok(AllowEntry {
                    repository: r.get(0)?,
                    finding_id: r.get(1)?,
                    reason: r.get(2)?,
                    expires_at: r.get(3)?,
                    created_by: r.get(4)?,
                    created_at: r.get(5)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    // ---- scan state ----

    pub fn put_scan(&self, rec: &ScanRecord) -> Result<()> {
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO scan_state (repository, manifest_digest, media_type, status, error,
                   annotations, children, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (repository, manifest_digest) DO UPDATE SET media_type = excluded.media_type,
                   status = excluded.status, error = excluded.error, annotations = excluded.annotations,
                   children = excluded.children, updated_at = excluded.updated_at",
            )?
            .execute(params![
                rec.repository,
                rec.manifest_digest,
                rec.media_type,
                rec.status.as_str(),
                rec.error,
                json(&rec.annotations),
                json(&rec.children),
                rec.updated_at,
            ])?;
            Ok(())
        })
    }

    pub fn scan(&self, repository: &str, digest: &str) -> Result<Option<ScanRecord>> {
        self.read(|c| {
            let mut st = c.prepare_cached(&format!(
                "{SCAN_SELECT} WHERE repository = ?1 AND manifest_digest = ?2"
            ))?;
            let row = st
                .query_row(params![repository, digest], scan_row)
                .optional()?;
            row.map(ScanRow::finish).transpose()
        })
    }

    /// The scanned manifests of a repository.
    pub fn scans_of(&self, repository: &str) -> Result<Vec<ScanRecord>> {
        self.read(|c| {
            let mut st = c.prepare_cached(&format!(
                "{SCAN_SELECT} WHERE repository = ?1 ORDER BY manifest_digest"
            ))?;
            let rows = st.query_map([repository], scan_row)?;
            rows.map(|r| r?.finish()).collect()
        })
    }

    pub fn delete_scan(&self, repository: &str, digest: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "DELETE FROM scan_state WHERE repository = ?1 AND manifest_digest = ?2",
                params![repository, digest],
            )?;
            Ok(())
        })
    }

    /// `(repository, digest)` of up to `n` scans after `after`, in key order: a walk
    /// over every scan a page at a time.
    pub fn scans_after(
        &self,
        after: Option<(&str, &str)>,
        n: usize,
    ) -> Result<Vec<(String, String)>> {
        let (repo, digest) = after.unwrap_or(("", ""));
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT repository, manifest_digest FROM scan_state
                 WHERE (repository, manifest_digest) > (?1, ?2)
                 ORDER BY repository, manifest_digest LIMIT ?3",
            )?;
            let rows = st.query_map(params![repo, digest, n as i64], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// `(repository, digest)` of every failed scan.
    pub fn failed_scans(&self) -> Result<Vec<(String, String)>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT repository, manifest_digest FROM scan_state WHERE status = 'failed'
                 ORDER BY repository, manifest_digest",
            )?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Repositories holding `digest` (as scanned).
    pub fn repositories_of(&self, digest: &str) -> Result<Vec<String>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT repository FROM scan_state WHERE manifest_digest = ?1 ORDER BY repository",
            )?;
            let rows = st.query_map([digest], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }
}

const SCAN_SELECT: &str = "SELECT repository, manifest_digest, media_type, status, error, annotations, children, updated_at FROM scan_state";

type ScanRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
);

fn scan_row(r: &rusqlite::Row) -> rusqlite::Result<ScanRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    ))
}

trait Finish<T> {
    fn finish(self) -> Result<T>;
}

impl Finish<ScanRecord> for ScanRow {
    fn finish(self) -> Result<ScanRecord> {
        let (
            repository,
            manifest_digest,
            media_type,
            status,
            error,
            annotations,
            children,
            updated_at,
        ) = self;
        Ok(ScanRecord {
            annotations: annotations
                .map(|a| from_json(&a, "annotations"))
                .transpose()?
                .unwrap_or_default(),
            children: children
                .map(|c| from_json(&c, "children"))
                .transpose()?
                .unwrap_or_default(),
            repository,
            manifest_digest,
            media_type,
            status: ScanStatus::parse(&status),
            error,
            updated_at,
        })
    }
}

struct StoredInventoryRow {
    digest: String,
    analyzer_version: u32,
    status: String,
    error: Option<String>,
    platform: Option<String>,
    os: Option<String>,
    architecture: Option<String>,
    config_digest: Option<String>,
    created: Option<String>,
    size: i64,
    labels: Option<String>,
    diff_ids: Option<String>,
    base_image: Option<String>,
    containerfile: Option<String>,
    inventory: Option<String>,
    grade: Option<String>,
    next_drop: Option<i64>,
    scanned_at: i64,
}

fn stored_inventory_row(r: &rusqlite::Row) -> rusqlite::Result<StoredInventoryRow> {
    Ok(StoredInventoryRow {
        digest: r.get(0)?,
        analyzer_version: r.get(1)?,
        status: r.get(2)?,
        error: r.get(3)?,
        platform: r.get(4)?,
        os: r.get(5)?,
        architecture: r.get(6)?,
        config_digest: r.get(7)?,
        created: r.get(8)?,
        size: r.get::<_, Option<i64>>(9)?.unwrap_or(0),
        labels: r.get(10)?,
        diff_ids: r.get(11)?,
        base_image: r.get(12)?,
        containerfile: r.get(13)?,
        inventory: r.get(14)?,
        grade: r.get(15)?,
        next_drop: r.get(16)?,
        scanned_at: r.get(17)?,
    })
}

impl StoredInventoryRow {
    fn finish(self) -> Result<StoredInventory> {
        let what = format!("inventory {}", self.digest);
        let result = match (self.status.as_str(), &self.inventory) {
            ("ok", Some(inv)) => {
                let m: Matchable = from_json(inv, &what)?;
                let containerfile: Option<Containerfile> = self
                    .containerfile
                    .as_deref()
                    .map(|c| from_json(c, &what))
                    .transpose()?;
                Ok(Inventory {
                    os: m.os,
                    packages: m.packages,
                    containerfile,
                    unreadable: m.unreadable,
                })
            }
            _ => Err(self.error.unwrap_or_else(|| "scan failed".into())),
        };
        Ok(StoredInventory {
            manifest_digest: self.digest,
            analyzer_version: self.analyzer_version,
            result,
            facts: ImageFacts {
                platform: self.platform,
                os: self.os,
                architecture: self.architecture,
                config_digest: self.config_digest,
                created: self.created,
                size: self.size.max(0) as u64,
                labels: self
                    .labels
                    .map(|l| from_json(&l, &what))
                    .transpose()?
                    .unwrap_or_default(),
                diff_ids: self
                    .diff_ids
                    .map(|l| from_json(&l, &what))
                    .transpose()?
                    .unwrap_or_default(),
                base_image: self.base_image,
            },
            grade: self.grade,
            next_drop: self.next_drop,
            scanned_at: self.scanned_at,
        })
    }
}

/// An inventory's OS from its columns `os_id, os_version, os_pretty, ecosystem`,
/// starting at column `at` (none without an `os_id`).
pub(crate) fn os_info(r: &rusqlite::Row, at: usize) -> rusqlite::Result<Option<OsInfo>> {
    let Some(id) = r.get::<_, Option<String>>(at)? else {
        return Ok(None);
    };
    Ok(Some(OsInfo {
        id,
        version_id: r.get(at + 1)?,
        pretty_name: r.get(at + 2)?,
        ecosystem: r.get(at + 3)?,
    }))
}

/// The columns [`package_row`] reads, in its order.
const PACKAGE_COLUMNS: &str =
    "kind, name, version, source, source_version, arch, license, purl, db_path, layer_index";

fn parse_kind(kind: &str, digest: &str) -> Result<PackageKind> {
    PackageKind::parse(kind)
        .ok_or_else(|| CatalogError::Corrupt(format!("package kind {kind:?} of {digest}")))
}

/// An inventory's packages in its order ([`CatalogDb::packages`]).
fn packages_in(c: &Connection, digest: &str) -> Result<Vec<Package>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {PACKAGE_COLUMNS} FROM packages WHERE manifest_digest = ?1 ORDER BY seq"
    ))?;
    let mut rows = st.query([digest])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(package_row(r, digest)?);
    }
    Ok(out)
}

/// A package from a row of [`PACKAGE_COLUMNS`].
fn package_row(r: &rusqlite::Row, digest: &str) -> Result<Package> {
    let kind: String = r.get(0)?;
    Ok(Package {
        kind: parse_kind(&kind, digest)?,
        name: r.get(1)?,
        version: r.get(2)?,
        source_name: r.get(3)?,
        source_version: r.get(4)?,
        arch: r.get(5)?,
        license: r.get(6)?,
        purl: r.get::<_, Option<String>>(7)?.unwrap_or_default(),
        db_path: r.get::<_, Option<String>>(8)?.unwrap_or_default(),
        layer_index: r.get::<_, i64>(9)?.max(0) as usize,
    })
}

/// Writes an inventory's package rows (its old rows deleted first by the caller).
fn insert_packages(tx: &Connection, digest: &str, packages: &[Package]) -> Result<()> {
    let mut st = tx.prepare_cached(
        "INSERT INTO packages (manifest_digest, seq, name, version, source, arch, kind, layer_index,
           source_version, license, purl, db_path, version_rank)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?;
    // Each row's place in version order, computed once here rather than on every
    // page (dpkg and rpm comparisons are not cheap, and not SQL's).
    let mut order: Vec<usize> = (0..packages.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (&packages[a], &packages[b]);
        x.kind
            .cmp(&y.kind)
            .then_with(|| berth_vuln::compare(x.kind, &x.version, &y.version))
            .then_with(|| x.name.cmp(&y.name))
            .then_with(|| a.cmp(&b))
    });
    let mut rank = vec![0i64; packages.len()];
    for (r, &i) in order.iter().enumerate() {
        rank[i] = r as i64;
    }
    for (i, p) in packages.iter().enumerate() {
        st.execute(params![
            digest,
            i as i64,
            p.name,
            p.version,
            p.source_name,
            p.arch,
            p.kind.as_str(),
            p.layer_index as i64,
            p.source_version,
            p.license,
            p.purl,
            p.db_path,
            rank[i],
        ])?;
    }
    Ok(())
}

/// Brings an older `catalog.db`'s `packages` up to this schema: the columns that make
/// a row a whole package and its version rank, filled from each inventory's JSON
/// (once, in one transaction, whichever process opens it first).
fn upgrade_packages(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let has = tx
        .prepare("SELECT 1 FROM pragma_table_info('packages') WHERE name = 'version_rank'")?
        .exists([])?;
    if !has {
        tx.execute_batch(
            "ALTER TABLE packages ADD COLUMN source_version TEXT;
             ALTER TABLE packages ADD COLUMN license TEXT;
             ALTER TABLE packages ADD COLUMN purl TEXT;
             ALTER TABLE packages ADD COLUMN db_path TEXT;
             ALTER TABLE packages ADD COLUMN version_rank INTEGER;",
        )?;
        let stored: Vec<(String, String)> = tx
            .prepare(
                "SELECT manifest_digest, inventory FROM inventories
                 WHERE status = 'ok' AND inventory IS NOT NULL",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (digest, inventory) in stored {
            let m: Matchable = from_json(&inventory, &format!("inventory {digest}"))?;
            tx.execute("DELETE FROM packages WHERE manifest_digest = ?1", [&digest])?;
            insert_packages(&tx, &digest, &m.packages)?;
        }
    }
    // After the columns exist (the version index names one of them).
    tx.execute_batch(
        "CREATE INDEX IF NOT EXISTS packages_by_image_name ON packages (manifest_digest, name);
         CREATE INDEX IF NOT EXISTS packages_by_image_version
           ON packages (manifest_digest, version_rank);",
    )?;
    tx.commit()?;
    Ok(())
}

fn poisoned<T>(_: std::sync::PoisonError<T>) -> CatalogError {
    CatalogError::Corrupt("a catalog database lock was poisoned by a panic".into())
}

fn connect(path: &Path) -> Result<Connection> {
    let conn = berth_store::sqlite::connect(path, berth_store::sqlite::Sync::Normal)?;
    conn.execute_batch("PRAGMA cache_size = -8000;")?;
    Ok(conn)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use berth_inventory::PackageKind;

    pub(crate) fn pkg(name: &str, version: &str) -> Package {
        Package {
            kind: PackageKind::Deb,
            name: name.into(),
            version: version.into(),
            source_name: Some(name.into()),
            source_version: None,
            arch: Some("amd64".into()),
            license: None,
            purl: format!("pkg:deb/debian/{name}@{version}"),
            db_path: "var/lib/dpkg/status".into(),
            layer_index: 0,
        }
    }

    fn db() -> (tempfile::TempDir, CatalogDb) {
        let dir = tempfile::tempdir().unwrap();
        let db = CatalogDb::open(&dir.path().join("catalog.db")).unwrap();
        (dir, db)
    }

    #[test]
    fn layers_are_stored_ok_or_failed_with_the_reason() {
        let (_d, db) = db();
        assert!(db.layer("sha256:aa").unwrap().is_none());
        let arts = LayerArtifacts {
            analyzer_version: 1,
            whiteouts: vec!["etc/x".into()],
            ..Default::default()
        };
        db.put_layer("sha256:aa", 1, Ok(&arts)).unwrap();
        db.put_layer("sha256:bb", 1, Err("gzip: invalid header"))
            .unwrap();
        assert_eq!(db.layer("sha256:aa").unwrap().unwrap().result, Ok(arts));
        let failed = db.layer("sha256:bb").unwrap().unwrap();
        assert_eq!(failed.result, Err("gzip: invalid header".to_string()));
        assert_eq!(db.forget_failed_layers().unwrap(), 1);
        assert!(db.layer("sha256:bb").unwrap().is_none());
        assert!(db.layer("sha256:aa").unwrap().is_some());
    }

    #[test]
    fn inventories_keep_packages_searchable_by_name_and_round_trip() {
        let (_d, db) = db();
        let inv = Inventory {
            os: Some(OsInfo {
                id: "debian".into(),
                version_id: Some("12".into()),
                pretty_name: None,
                ecosystem: Some("Debian:12".into()),
            }),
            packages: vec![pkg("libc6", "2.36-9"), pkg("openssl", "3.0.11-1")],
            containerfile: None,
            unreadable: Vec::new(),
        };
        let facts = ImageFacts {
            platform: Some("linux/amd64".into()),
            size: 42,
            diff_ids: vec!["sha256:11".into()],
            labels: std::collections::BTreeMap::from([("team".into(), "infra".into())]),
            ..Default::default()
        };
        db.put_inventory("sha256:m1", 1, Ok(&inv), &facts).unwrap();
        let got = db.inventory("sha256:m1").unwrap().unwrap();
        assert_eq!(got.result, Ok(inv.clone()));
        assert_eq!(
            db.packages("sha256:m1").unwrap(),
            inv.packages,
            "rows are whole packages"
        );
        assert_eq!(got.facts, facts);
        // The head says the same without the package list.
        let head = db.inventory_head("sha256:m1").unwrap().unwrap();
        assert_eq!(head.result, Ok(()));
        assert_eq!(head.facts, facts);
        assert_eq!((head.os, head.packages), (inv.os.clone(), 2));
        assert_eq!(
            (head.grade, head.next_drop),
            (got.grade.clone(), got.next_drop)
        );
        assert!(db.inventory_head("sha256:none").unwrap().is_none());
        // What a search row takes: the head's facts, one read for many digests, none
        // for a digest without an inventory.
        let searched = db
            .search_facts(&["sha256:none".into(), "sha256:m1".into()])
            .unwrap();
        assert_eq!(searched.len(), 1);
        let f = &searched[0];
        assert_eq!(f.manifest_digest, "sha256:m1");
        assert_eq!(
            (&f.platform, &f.os, &f.architecture, &f.labels),
            (
                &facts.platform,
                &facts.os,
                &facts.architecture,
                &facts.labels
            )
        );
        assert_eq!((&f.os_info, &f.grade), (&inv.os, &got.grade));
        let n: i64 = db
            .read(|c| {
                Ok(c.query_row(
                    "SELECT count(*) FROM packages WHERE name = 'openssl'",
                    [],
                    |r| r.get(0),
                )?)
            })
            .unwrap();
        assert_eq!(n, 1);
        // A rescan that fails replaces the packages too.
        db.put_inventory("sha256:m1", 1, Err("layer 2: truncated"), &facts)
            .unwrap();
        let got = db.inventory("sha256:m1").unwrap().unwrap();
        assert_eq!(got.result, Err("layer 2: truncated".to_string()));
        let head = db.inventory_head("sha256:m1").unwrap().unwrap();
        assert_eq!(head.result, Err("layer 2: truncated".to_string()));
        assert_eq!((head.os, head.packages), (None, 0));
        let searched = db.search_facts(&["sha256:m1".into()]).unwrap();
        assert_eq!(searched[0].os_info, None, "a failed scan has no OS");
        assert_eq!(searched[0].platform, facts.platform);
        assert!(db.matchables("", 10).unwrap().is_empty());
    }

    fn inventory_of(packages: Vec<Package>) -> Inventory {
        Inventory {
            os: None,
            packages,
            containerfile: None,
            unreadable: Vec::new(),
        }
    }

    fn stored_diffs(db: &CatalogDb) -> i64 {
        db.read(|c| Ok(c.query_row("SELECT count(*) FROM package_diffs", [], |r| r.get(0))?))
            .unwrap()
    }

    #[test]
    fn a_package_diff_is_stored_once_and_dropped_by_a_rescan() {
        let (_d, db) = db();
        let facts = ImageFacts::default();
        let old = inventory_of(vec![pkg("a", "1"), pkg("b", "1")]);
        let new = inventory_of(vec![pkg("a", "2"), pkg("c", "1")]);
        db.put_inventory("sha256:old", 1, Ok(&old), &facts).unwrap();
        db.put_inventory("sha256:new", 1, Ok(&new), &facts).unwrap();
        let want = crate::query::diff_indices(&old.packages, &new.packages);
        assert_eq!(
            db.package_diff("sha256:old", "sha256:new").unwrap(),
            Some(want.clone())
        );
        assert_eq!(stored_diffs(&db), 1);
        assert_eq!(
            db.package_diff("sha256:old", "sha256:new").unwrap(),
            Some(want)
        );
        assert_eq!(stored_diffs(&db), 1);
        // Rescanned: the old diff goes; the next one is computed from the new rows.
        let newer = inventory_of(vec![pkg("a", "1"), pkg("b", "1")]);
        db.put_inventory("sha256:new", 2, Ok(&newer), &facts)
            .unwrap();
        assert_eq!(stored_diffs(&db), 0);
        let d = db
            .package_diff("sha256:old", "sha256:new")
            .unwrap()
            .unwrap();
        assert!(d.added.is_empty() && d.removed.is_empty() && d.changed.is_empty());
        // A failed side has no diff, and none is stored.
        db.put_inventory("sha256:new", 3, Err("truncated"), &facts)
            .unwrap();
        assert_eq!(db.package_diff("sha256:old", "sha256:new").unwrap(), None);
        assert_eq!(stored_diffs(&db), 0);
    }

    #[test]
    fn an_older_file_gets_whole_package_rows_from_its_inventories() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.db");
        let mut p = pkg("libssl3", "3.0.11-1");
        p.license = Some("Apache-2.0".into());
        p.source_version = Some("3.0.11-1".into());
        let inv = inventory_of(vec![p, pkg("libc6", "2.36-9")]);
        {
            let db = CatalogDb::open(&path).unwrap();
            db.put_inventory("sha256:m1", 1, Ok(&inv), &ImageFacts::default())
                .unwrap();
        }
        // As the schema before the package columns left it.
        let c = Connection::open(&path).unwrap();
        c.execute_batch("DROP INDEX packages_by_image_name; DROP INDEX packages_by_image_version;")
            .unwrap();
        for col in [
            "source_version",
            "license",
            "purl",
            "db_path",
            "version_rank",
        ] {
            c.execute_batch(&format!("ALTER TABLE packages DROP COLUMN {col}"))
                .unwrap();
        }
        drop(c);
        let db = CatalogDb::open(&path).unwrap();
        assert_eq!(db.packages("sha256:m1").unwrap(), inv.packages);
        let by_version = db
            .package_page("sha256:m1", "", PackageSort::Version, 0, 10)
            .unwrap();
        let mut want = inv.packages.clone();
        want.reverse();
        assert_eq!(by_version, want, "2.36-9 before 3.0.11-1: ranked again");
        // Opened again: nothing to do.
        drop(db);
        assert_eq!(
            CatalogDb::open(&path)
                .unwrap()
                .packages("sha256:m1")
                .unwrap(),
            inv.packages
        );
    }

    #[test]
    fn allow_list_entries_expire() {
        let (_d, db) = db();
        let entry = |id: &str, expires_at| AllowEntry {
            repository: "app".into(),
            finding_id: id.into(),
            reason: "not reachable".into(),
            expires_at,
            created_by: "admin".into(),
            created_at: 100,
        };
        db.allow(&entry("CVE-1", Some(200))).unwrap();
        db.allow(&entry("CVE-2", None)).unwrap();
        let ids = |now| -> Vec<String> {
            db.allowlist("app", now)
                .unwrap()
                .into_iter()
                .map(|e| e.finding_id)
                .collect()
        };
        assert_eq!(ids(199), ["CVE-1", "CVE-2"]);
        assert_eq!(ids(200), ["CVE-2"]);
        assert_eq!(db.allowlist_all("app").unwrap().len(), 2);
        assert!(db.allowlist("other", 0).unwrap().is_empty());
        assert!(db.disallow("app", "CVE-2").unwrap());
        assert!(ids(0) == ["CVE-1"]);
    }

    #[test]
    fn scan_state_records_failures_for_rescan() {
        let (_d, db) = db();
        let rec = ScanRecord {
            repository: "app".into(),
            manifest_digest: "sha256:m".into(),
            media_type: "application/vnd.oci.image.index.v1+json".into(),
            status: ScanStatus::Failed,
            error: Some("child sha256:c: blob missing".into()),
            annotations: BTreeMap::from([("a".into(), "b".into())]),
            children: vec![Child {
                digest: "sha256:c".into(),
                platform: Some("linux/arm64".into()),
            }],
            updated_at: 5,
        };
        db.put_scan(&rec).unwrap();
        assert_eq!(db.scan("app", "sha256:m").unwrap().unwrap(), rec);
        assert_eq!(
            db.failed_scans().unwrap(),
            [("app".to_string(), "sha256:m".to_string())]
        );
        db.put_scan(&ScanRecord {
            status: ScanStatus::Ok,
            error: None,
            ..rec
        })
        .unwrap();
        assert!(db.failed_scans().unwrap().is_empty());
        assert_eq!(db.repositories_of("sha256:m").unwrap(), ["app"]);
    }
}
