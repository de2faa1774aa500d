//! The vulnerability database: OSV records in their own SQLite file (WAL), upserted by
//! id keeping the newest `modified`, with an index (ecosystem, package name) -> record
//! and a row per import.

use crate::error::{io, Result, VulnError};
use crate::matcher::{Entry, Matcher, RecordMeta};
use crate::osv::{self, Range, Record};
use crate::severity::{self, Severity};
use crate::source::{self, Document};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

const SCHEMA: &str = include_str!("schema.sql");
/// `PRAGMA user_version` of the schema above; a file with a higher one is refused.
///
/// 2: `modified` in microseconds (was seconds), `aliases` with the `upstream` ids.
const SCHEMA_VERSION: i64 = 2;

/// What one import did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportReport {
    /// The path imported, as given.
    pub file: String,
    pub sha256: String,
    /// Well-formed records read.
    pub records: u64,
    /// Records inserted or replacing an older `modified` (the rest were not newer).
    pub stored: u64,
    /// Malformed records, skipped.
    pub skipped: Vec<Skipped>,
    /// The newest `modified` among the records read (RFC 3339, as written).
    pub newest_modified: Option<String>,
}

/// A record that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// The file (`all.zip:ID.json` for an archive entry).
    pub file: String,
    /// The record's id when the JSON had one.
    pub id: Option<String>,
    pub error: String,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.id {
            Some(id) => write!(f, "{}: {id}: {}", self.file, self.error),
            None => write!(f, "{}: {}", self.file, self.error),
        }
    }
}

/// A past import, for "vulnerability data as of ...".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportRecord {
    pub file: String,
    pub sha256: String,
    pub records: u64,
    pub stored: u64,
    pub skipped: u64,
    pub newest_modified: Option<String>,
    /// Unix seconds.
    pub imported_at: i64,
}

/// What the matcher keeps of one affected[] entry (stored as `affected.data`).
#[derive(Serialize, Deserialize)]
struct AffectedData {
    #[serde(default)]
    ranges: Vec<Range>,
    #[serde(default)]
    versions: Vec<String>,
    severity: Severity,
}

pub struct VulnDb {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl VulnDb {
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: &Path) -> Result<VulnDb> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let mut conn = berth_sqlite::connect(path, berth_sqlite::Sync::Full)?;
        // The version is read inside the write transaction: two processes opening an
        // old file at once upgrade it once.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let found: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if found > SCHEMA_VERSION {
            return Err(VulnError::NewerSchema {
                path: path.to_path_buf(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        tx.execute_batch(SCHEMA)?;
        if found == 1 {
            upgrade_from_1(&tx)?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        tx.commit()?;
        Ok(VulnDb {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Imports OSV data from a `.zip`, a `.json` file or a folder, in one transaction:
    /// either all of it is stored (malformed records skipped and reported) or, when
    /// the source cannot be read, nothing changes.
    pub fn import(&self, path: &Path) -> Result<ImportReport> {
        let sha256 = source::sha256(path)?;
        let mut report = ImportReport {
            file: path.display().to_string(),
            sha256,
            records: 0,
            stored: 0,
            skipped: Vec::new(),
            newest_modified: None,
        };
        let mut newest: Option<SystemTime> = None;
        let mut conn = self.conn.lock().map_err(|_| VulnError::Poisoned)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut store = Store::new(&tx)?;
            let mut failure: Option<VulnError> = None;
            source::for_each_document(path, &mut |doc: Document| {
                if failure.is_some() {
                    return;
                }
                let Document { file, value } = doc;
                let values = match value {
                    Err(error) => {
                        report.skipped.push(Skipped {
                            file,
                            id: None,
                            error,
                        });
                        return;
                    }
                    Ok(serde_json::Value::Array(items)) => items,
                    Ok(one) => vec![one],
                };
                for value in values {
                    let id = value.get("id").and_then(|v| v.as_str()).map(str::to_string);
                    let json = value.to_string();
                    let record = match osv::parse_record(value) {
                        Ok(r) => r,
                        Err(error) => {
                            report.skipped.push(Skipped {
                                file: file.clone(),
                                id,
                                error,
                            });
                            continue;
                        }
                    };
                    report.records += 1;
                    if let Ok(t) = osv::parse_time(&record.modified) {
                        if newest.is_none_or(|n| t > n) {
                            newest = Some(t);
                            report.newest_modified = Some(record.modified.clone());
                        }
                    }
                    match store.upsert(&record, &json) {
                        Ok(true) => report.stored += 1,
                        Ok(false) => {}
                        Err(e) => failure = Some(e),
                    }
                }
            })?;
            if let Some(e) = failure {
                return Err(e);
            }
        }
        tx.execute(
            "INSERT INTO imports (file, sha256, records, stored, skipped, newest_modified, imported_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                report.file,
                report.sha256,
                report.records as i64,
                report.stored as i64,
                report.skipped.len() as i64,
                report.newest_modified,
                osv::unix_seconds(SystemTime::now()),
            ],
        )?;
        tx.commit()?;
        Ok(report)
    }

    /// A connection of its own for reading: in WAL mode it sees the last committed
    /// state and never waits for an import in progress (which holds `conn`).
    fn reader(&self) -> Result<Connection> {
        read_only(&self.path)
    }

    /// Every import, newest first.
    pub fn imports(&self) -> Result<Vec<ImportRecord>> {
        imports_of(&self.reader()?)
    }

    /// Every import of the data at `path`, newest first, read without opening it for
    /// writing ([`VulnDb::open`] checks the schema and writes its version, an fsync
    /// under `synchronous = FULL`): what a page that shows the data's age needs on
    /// every request.
    pub fn imports_at(path: &Path) -> Result<Vec<ImportRecord>> {
        imports_of(&read_only(path)?)
    }

    /// One stored record's JSON, as imported.
    pub fn record_json(&self, id: &str) -> Result<Option<String>> {
        let conn = self.reader()?;
        Ok(conn
            .query_row("SELECT json FROM records WHERE id = ?1", [id], |r| r.get(0))
            .optional()?)
    }

    /// Loads the index (every affected[] entry of every record not withdrawn) into
    /// memory: once per rematch, then [`Matcher::findings`] per inventory.
    pub fn matcher(&self) -> Result<Matcher> {
        let conn = self.reader()?;
        // One read transaction: the records and the index from the same commit.
        let conn = conn.unchecked_transaction()?;
        let mut records = Vec::new();
        let mut index_of = std::collections::HashMap::new();
        let mut stmt = conn.prepare(
            "SELECT id, aliases, COALESCE(published, modified_text) FROM records WHERE withdrawn IS NULL",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let id: String = r.get(0)?;
            let aliases: String = r.get(1)?;
            let aliases = serde_json::from_str(&aliases).map_err(|e| corrupt(&id, e))?;
            index_of.insert(id.clone(), records.len() as u32);
            records.push(RecordMeta {
                id,
                aliases,
                published: r.get(2)?,
            });
        }
        let mut matcher = Matcher::new(records);
        let mut stmt = conn.prepare("SELECT id, ecosystem, name, data FROM affected")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let id = text(r, 0)?;
            let Some(&record) = index_of.get(id) else {
                continue;
            }; // withdrawn
            let data: AffectedData =
                serde_json::from_str(text(r, 3)?).map_err(|e| corrupt(id, e))?;
            let entry = Entry {
                record,
                ranges: data.ranges,
                versions: data.versions,
                severity: data.severity,
            };
            matcher.add(text(r, 1)?, text(r, 2)?, entry);
        }
        Ok(matcher)
    }
}

/// A connection of its own for reading: in WAL mode it sees the last committed state
/// and never waits for an import in progress.
fn read_only(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

fn imports_of(conn: &Connection) -> Result<Vec<ImportRecord>> {
    let mut stmt = conn.prepare(
        "SELECT file, sha256, records, stored, skipped, newest_modified, imported_at
             FROM imports ORDER BY imported_at DESC, rowid DESC",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(ImportRecord {
            file: r.get(0)?,
            sha256: r.get(1)?,
            records: r.get::<_, i64>(2)? as u64,
            stored: r.get::<_, i64>(3)? as u64,
            skipped: r.get::<_, i64>(4)? as u64,
            newest_modified: r.get(5)?,
            imported_at: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A text column without copying it.
fn text<'r>(row: &'r rusqlite::Row<'_>, i: usize) -> rusqlite::Result<&'r str> {
    row.get_ref(i)?.as_str().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// Schema 1 -> 2, once: `modified` to microseconds, and each stored record indexed
/// again from its JSON: `aliases` with its `upstream` ids, severities as this version
/// rates them (the distribution's word first). A record is stored again only when a
/// newer revision comes, so a re-import would change neither.
fn upgrade_from_1(tx: &rusqlite::Transaction<'_>) -> Result<()> {
    const PAGE: i64 = 1000;
    tx.execute("UPDATE records SET modified = modified * 1000000", [])?;
    let mut read = tx.prepare("SELECT id, json FROM records WHERE id > ?1 ORDER BY id LIMIT ?2")?;
    let mut aliases = tx.prepare("UPDATE records SET aliases = ?2 WHERE id = ?1")?;
    let mut store = Store::new(tx)?;
    let mut after = String::new();
    loop {
        let page: Vec<(String, String)> = read
            .query_map(params![after, PAGE], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let Some((last, _)) = page.last() else {
            return Ok(());
        };
        after = last.clone();
        for (id, json) in page {
            let record: Record = serde_json::from_str(&json).map_err(|e| corrupt(&id, e))?;
            let ids = serde_json::to_string(&record.other_ids()).unwrap_or_else(|_| "[]".into());
            aliases.execute(params![id, ids])?;
            store.index(&record)?;
        }
    }
}

fn corrupt(id: &str, e: serde_json::Error) -> VulnError {
    VulnError::Corrupt(format!("record {id}: stored data unreadable: {e}"))
}

/// The prepared statements of one import.
struct Store<'t> {
    upsert: rusqlite::Statement<'t>,
    clear: rusqlite::Statement<'t>,
    add: rusqlite::Statement<'t>,
}

impl<'t> Store<'t> {
    fn new(tx: &'t rusqlite::Transaction<'_>) -> Result<Self> {
        Ok(Store {
            upsert: tx.prepare(
                "INSERT INTO records (id, modified, modified_text, published, withdrawn, aliases, json)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (id) DO UPDATE SET modified = excluded.modified,
                    modified_text = excluded.modified_text, published = excluded.published,
                    withdrawn = excluded.withdrawn, aliases = excluded.aliases, json = excluded.json
                 WHERE excluded.modified > records.modified",
            )?,
            clear: tx.prepare("DELETE FROM affected WHERE id = ?1")?,
            add: tx.prepare("INSERT INTO affected (id, seq, ecosystem, name, data) VALUES (?1, ?2, ?3, ?4, ?5)")?,
        })
    }

    /// Stores a record unless the stored one is as new; true when it was stored.
    fn upsert(&mut self, record: &Record, json: &str) -> Result<bool> {
        let modified = osv::parse_time(&record.modified)
            .map(osv::unix_micros)
            .unwrap_or(0);
        let aliases = serde_json::to_string(&record.other_ids()).unwrap_or_else(|_| "[]".into());
        let changed = self.upsert.execute(params![
            record.id,
            modified,
            record.modified,
            record.published,
            record.withdrawn,
            aliases,
            json
        ])?;
        if changed == 0 {
            return Ok(false);
        }
        self.index(record)?;
        Ok(true)
    }

    /// Writes the matcher's index rows of `record` (replacing any it had).
    fn index(&mut self, record: &Record) -> Result<()> {
        self.clear.execute([&record.id])?;
        for (seq, affected) in record.affected.iter().enumerate() {
            let Some(package) = &affected.package else {
                continue;
            };
            let data = AffectedData {
                ranges: affected
                    .ranges
                    .iter()
                    .filter(|r| r.kind == "ECOSYSTEM")
                    .cloned()
                    .collect(),
                versions: affected.versions.clone(),
                severity: severity::of_affected(record, affected),
            };
            let data = serde_json::to_string(&data).unwrap_or_default();
            self.add.execute(params![
                record.id,
                seq as i64,
                package.ecosystem,
                package.name,
                data
            ])?;
        }
        Ok(())
    }
}
