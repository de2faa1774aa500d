//! How berth opens a SQLite file, for every store that keeps one (the registry's
//! metadata, the auth directory, the local image store, the catalog, the
//! vulnerability database): one place, so that each gets WAL, the busy timeout and
//! the retry below, which CI found missing once (two local-store commands started
//! together failed with "database is locked").

use std::path::Path;

use rusqlite::Connection;

/// How much a commit waits for the disk (SQLite's `synchronous` in WAL mode).
#[derive(Debug, Clone, Copy)]
pub enum Sync {
    /// A commit survives power loss.
    Full,
    /// A commit survives a crash of the process; a power loss may lose the last ones,
    /// never corrupting the file.
    Normal,
}

/// Opens a SQLite file as berth's stores use it: WAL (readers never wait for the
/// writer), foreign keys on, and waiting up to 30 s for another process's write
/// transaction rather than failing.
pub fn connect(path: &Path, sync: Sync) -> rusqlite::Result<Connection> {
    const WAIT: std::time::Duration = std::time::Duration::from_secs(30);
    let conn = Connection::open(path)?;
    conn.busy_timeout(WAIT)?;
    let modes = match sync {
        Sync::Full => "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;",
        Sync::Normal => "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;",
    };
    // Connections switching a new file to WAL at once each hold a read lock and want
    // the write lock: SQLite answers all but one "database is locked" at once (a
    // deadlock, which the busy timeout does not wait out), so those try again.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        match conn.execute_batch(modes) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            result => break result?,
        }
    }
    conn.execute_batch("PRAGMA foreign_keys = ON;")?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Processes opening one new file at once (a local store's first commands, two
    /// replicas' first start): the first switches it to WAL while the others arrive,
    /// and each waits for the lock instead of failing with "database is locked".
    #[test]
    fn connections_opened_at_once_wait_for_each_other() {
        for round in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("meta.db");
            let start = std::sync::Barrier::new(8);
            std::thread::scope(|s| {
                let opened: Vec<_> = (0..8)
                    .map(|_| {
                        s.spawn(|| {
                            start.wait();
                            let conn = connect(&path, Sync::Normal)?;
                            conn.execute_batch(
                                "CREATE TABLE IF NOT EXISTS t (x INTEGER);
                                 INSERT INTO t VALUES (1);",
                            )
                        })
                    })
                    .collect();
                for o in opened {
                    if let Err(e) = o.join().unwrap() {
                        panic!("round {round}: {e}");
                    }
                }
            });
        }
    }
}
