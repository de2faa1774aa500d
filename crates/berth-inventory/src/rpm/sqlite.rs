//! `rpmdb.sqlite` (rpm >= 4.16): table `Packages(hnum INTEGER PRIMARY KEY, blob BLOB)`,
//! one rpm header per row. The other tables are indexes rpm rebuilds from the headers.

use std::path::Path;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::header::MAX_HEADER_BYTES;
use super::{display, package_from_blob, RpmError};
use crate::model::Package;

/// Reads every package of an `rpmdb.sqlite` file, in `hnum` (install) order.
///
/// The file is opened read-only with `immutable=1`: SQLite then takes no locks, writes
/// nothing (no `-shm`, no journal recovery) and needs no `-wal`/`-shm` beside the file,
/// so a copy taken out of a layer is read as it is and never changed. rpm keeps its WAL
/// file (persistent WAL, so that non-root users can read) but checkpoints it empty on
/// close, so an image's packages are normally all in the main file.
///
/// When a non-empty `<path>-wal` lies beside the file (rpm or dnf stopped before their
/// checkpoint), its committed transactions are part of the database, as rpm would see
/// them: the file is then opened read-only *without* `immutable`, so SQLite applies the
/// log. The database and the log are still not written; SQLite makes its `-shm` index
/// beside them, which is why callers hand this function a private copy.
pub fn read_rpmdb_sqlite(path: &Path) -> Result<Vec<Package>, RpmError> {
    let sql_err = |source| RpmError::Sqlite {
        path: display(path),
        source,
    };
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let has_wal = std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0);
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(file_uri(path, !has_wal), flags).map_err(sql_err)?;
    harden(&conn).map_err(sql_err)?;
    // `Packages` must be a plain table: a view (or a trigger-laden schema) in a hostile
    // file could make the read below compute anything, for as long as it likes.
    let kind: Option<String> = conn
        .query_row(
            "SELECT type FROM sqlite_schema WHERE name = 'Packages'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql_err)?;
    // A schema that is not rpm's, refused with SQLite's code for what is wrong.
    let refused = |code, why: String| RpmError::Sqlite {
        path: display(path),
        source: rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some(why)),
    };
    if kind.as_deref() != Some("table") {
        let found = kind.as_deref().unwrap_or("nothing");
        let why = format!("no Packages table (found {found})");
        return Err(refused(rusqlite::ffi::SQLITE_NOTFOUND, why));
    }
    // Its columns must be rpm's two, stored: a generated column (`hnum AS
    // (length(hex(zeroblob(…))))`) passes the check above and made the sort below
    // compute for days; `trusted_schema = OFF` still allows such functions.
    let columns: Vec<(String, i64)> = conn
        .prepare("SELECT name, hidden FROM pragma_table_xinfo('Packages')")
        .and_then(|mut st| {
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()
        })
        .map_err(sql_err)?;
    let plain = |name: &str| columns.iter().any(|(n, h)| n == name && *h == 0);
    if columns.len() != 2 || !plain("hnum") || !plain("blob") {
        let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
        let why = format!(
            "the Packages table is not rpm's (hnum, blob): it has {}",
            names.join(", ")
        );
        return Err(refused(rusqlite::ffi::SQLITE_MISMATCH, why));
    }
    // The blob is only selected when it is small enough to be a header, so a hostile row
    // cannot make SQLite hand over a gigabyte; an oversized row is reported by its size.
    let mut stmt = conn
        .prepare(
            "SELECT hnum, length(blob), CASE WHEN length(blob) <= ?1 THEN blob END \
             FROM Packages ORDER BY hnum",
        )
        .map_err(sql_err)?;
    let mut rows = stmt.query([MAX_HEADER_BYTES as i64]).map_err(sql_err)?;
    let mut packages = Vec::new();
    while let Some(row) = rows.next().map_err(sql_err)? {
        let hnum: i64 = row.get(0).map_err(sql_err)?;
        // rpm's header numbers are u32; anything else is not an rpm database row.
        let record = u32::try_from(hnum).unwrap_or(u32::MAX);
        let len: Option<i64> = row.get(1).map_err(sql_err)?;
        let len = len.unwrap_or(0);
        if len as u64 > MAX_HEADER_BYTES as u64 {
            return Err(RpmError::TooLarge {
                path: display(path),
                record,
                len: len as u64,
                max: MAX_HEADER_BYTES,
            });
        }
        let blob = match row.get_ref(2).map_err(sql_err)? {
            rusqlite::types::ValueRef::Blob(b) => b,
            rusqlite::types::ValueRef::Null => &[][..],
            _ => {
                return Err(RpmError::Sqlite {
                    path: display(path),
                    source: rusqlite::Error::InvalidColumnType(
                        2,
                        "blob".into(),
                        row.get_ref(2).map_err(sql_err)?.data_type(),
                    ),
                })
            }
        };
        if let Some(p) = package_from_blob(path, record, blob)? {
            packages.push(p);
        }
    }
    Ok(packages)
}

/// SQLite's advice for database files from untrusted sources ("Defense against the
/// dark arts"): no functions with side effects from the schema, defensive mode, page
/// cells checked as they are read, and no memory mapping of a file another layer's
/// contents decided.
fn harden(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
    conn.execute_batch(
        "PRAGMA trusted_schema = OFF; PRAGMA cell_size_check = ON; PRAGMA mmap_size = 0;",
    )
}

/// Read-only `file:` URI for `path` (`immutable=1` when asked), every byte outside RFC
/// 3986's unreserved set and `/` percent-encoded (a path may hold `?`, `#`, `%` or
/// non-UTF-8 bytes, which SQLite would otherwise parse).
fn file_uri(path: &Path, immutable: bool) -> String {
    use std::os::unix::ffi::OsStrExt;
    let abs;
    let path = if path.is_absolute() {
        path
    } else {
        abs = std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf());
        &abs
    };
    let mut uri = String::from("file:");
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            uri.push(b as char);
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str(if immutable {
        "?immutable=1"
    } else {
        "?mode=ro"
    });
    uri
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_escapes_what_sqlite_would_parse() {
        assert_eq!(
            file_uri(Path::new("/t/a b?c#d%e/rpmdb.sqlite"), true),
            "file:/t/a%20b%3Fc%23d%25e/rpmdb.sqlite?immutable=1"
        );
        assert_eq!(file_uri(Path::new("/r"), false), "file:/r?mode=ro");
    }
}
