//! The directory in PostgreSQL, for `berth serve` replicas that share one database.
//!
//! Every change commits with a `NOTIFY berth_auth`; each replica keeps one connection
//! that `LISTEN`s and marks its snapshot stale, so that a grant made through one
//! replica applies on the others as soon as its notification arrives (milliseconds),
//! with no query per request and no poll of the whole directory. A version counter,
//! bumped in the same transaction, backs the notifications up: each replica compares
//! it once a second while listening, and every 50 ms while its listener is down
//! (PostgreSQL restarting), then reloads only when it moved.
//!
//! Writes are serialized across replicas with a transaction-scoped advisory lock,
//! as SQLite serializes them on one machine: an admin change checks the rights it
//! needs inside its transaction, and two racing admins cannot both pass a check
//! only one of them should.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::Duration;

use berth_pg::postgres;

use super::{read_all, StoreError};
use crate::directory::Directory;
use crate::sql::{Arg, Tx};

const SCHEMA: &str = include_str!("../schema_pg.sql");
/// The directory schema version this build writes and reads.
pub const SCHEMA_VERSION: i64 = 3;
/// The advisory lock every directory write takes ("berthaut" in ASCII).
const WRITE_LOCK: i64 = 0x6265_7274_6861_7574;
/// The advisory lock of the directory's schema migration.
const MIGRATE_LOCK: i64 = WRITE_LOCK + 1;
/// The notification channel.
const CHANNEL: &str = "berth_auth";
/// How often the version is compared while the listener runs (a notification lost
/// in the moment a connection breaks is caught by then), and while it does not.
const RECHECK_LISTENING: Duration = Duration::from_secs(1);
const RECHECK_DEAF: Duration = Duration::from_millis(50);

/// A replica's connection to the directory in PostgreSQL.
pub(crate) struct PgDirectory {
    pool: berth_pg::Pool,
    /// Whether the listener is connected (then the version is compared less often).
    listening: Arc<AtomicBool>,
    /// Stops the listener when the directory is dropped.
    _listener: berth_pg::Listener,
    /// The version of the loaded snapshot; held while asking whether it moved.
    version: Mutex<i64>,
}

/// Either the store failed or the caller's closure did.
enum Failed<E> {
    Store(StoreError),
    Caller(E),
}

impl<E> From<StoreError> for Failed<E> {
    fn from(e: StoreError) -> Self {
        Failed::Store(e)
    }
}

impl<E> From<postgres::Error> for Failed<E> {
    fn from(e: postgres::Error) -> Self {
        Failed::Store(e.into())
    }
}

impl<E> From<berth_pg::r2d2::Error> for Failed<E> {
    fn from(e: berth_pg::r2d2::Error) -> Self {
        Failed::Store(e.into())
    }
}

impl<E: From<StoreError>> Failed<E> {
    fn into_caller(self) -> E {
        match self {
            Failed::Store(e) => e.into(),
            Failed::Caller(e) => e,
        }
    }
}

impl PgDirectory {
    /// Connects, migrates, starts the listener and loads the first snapshot.
    /// `stale` is set whenever another replica changes the directory.
    pub fn connect(
        url: &str,
        stale: Arc<AtomicBool>,
    ) -> Result<(PgDirectory, Directory), StoreError> {
        let options = berth_pg::Options {
            max_connections: 4,
            ..Default::default()
        };
        let pool = berth_pg::Pool::connect(url, &options)?;
        migrate(&pool)?;
        let listening = Arc::new(AtomicBool::new(false));
        let listener =
            listen(pool.target().clone(), listening.clone(), stale).map_err(|source| {
                StoreError::Io {
                    path: "a thread listening for access-control changes".into(),
                    source,
                }
            })?;
        let db = PgDirectory {
            pool,
            listening,
            _listener: listener,
            version: Mutex::new(-1),
        };
        let dir = db.reload(&AtomicBool::new(true))?.unwrap_or_default();
        Ok((db, dir))
    }

    /// How long a snapshot is used before the version is compared.
    pub fn recheck(&self) -> Duration {
        match self.listening.load(Ordering::Acquire) {
            true => RECHECK_LISTENING,
            false => RECHECK_DEAF,
        }
    }

    /// A new snapshot if the version moved since the last one (or `stale` was set),
    /// read in one consistent view; `None` when it did not, or when another thread is
    /// asking right now (its answer is no older than ours would be).
    pub fn reload(&self, stale: &AtomicBool) -> Result<Option<Directory>, StoreError> {
        let mut known = match self.version.try_lock() {
            Ok(g) => g,
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
        };
        // Cleared before reading: a change notified while we read sets it again.
        let force = stale.swap(false, Ordering::AcqRel);
        let last = *known;
        let read = self.read(|tx| {
            let version = tx
                .query_opt("SELECT version FROM auth_version WHERE id = 1", &[])?
                .map(|r| r.int(0))
                .transpose()?
                .unwrap_or(0);
            if !force && version == last {
                return Ok((version, None));
            }
            Ok((version, Some(read_all(tx)?)))
        });
        match read {
            Ok((version, dir)) => {
                *known = version;
                Ok(dir)
            }
            Err(e) => {
                // Asked again next time.
                stale.fetch_or(force, Ordering::AcqRel);
                Err(e)
            }
        }
    }

    /// Runs `f` on one consistent, read-only view.
    pub fn read<T: Send>(
        &self,
        mut f: impl FnMut(&mut Tx<'_, '_>) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        self.pool
            .with(|c| c.transaction(berth_pg::snapshot, |db| f(&mut Tx::Postgres(db))))
    }

    /// Runs `f` in a write transaction serialized with every replica's; a change to
    /// the directory (`directory`) bumps the version and notifies every replica.
    pub fn write<T: Send, E: From<StoreError> + Send>(
        &self,
        directory: bool,
        mut f: impl FnMut(&mut Tx<'_, '_>) -> Result<T, E> + Send,
    ) -> Result<T, E> {
        self.pool
            .with(|c| {
                c.transaction(
                    |c| c.transaction(),
                    |db| -> Result<T, Failed<E>> {
                        let mut tx = Tx::Postgres(db);
                        tx.exec("SELECT pg_advisory_xact_lock(?1)", &[Arg::Int(WRITE_LOCK)])?;
                        let out = f(&mut tx).map_err(Failed::Caller)?;
                        if directory {
                            tx.exec(
                                "UPDATE auth_version SET version = version + 1 WHERE id = 1",
                                &[],
                            )?;
                            // Delivered to every listener when (and only if) this commits.
                            tx.exec("NOTIFY berth_auth", &[])?;
                        }
                        Ok(out)
                    },
                )
            })
            .map_err(Failed::into_caller)
    }

    /// The shared token signing key, created with `new()` by the first replica that
    /// asks.
    pub fn token_key(
        &self,
        new: impl FnOnce() -> Result<String, StoreError>,
    ) -> Result<String, StoreError> {
        let get = |tx: &mut Tx<'_, '_>| -> Result<Option<String>, StoreError> {
            tx.query_opt("SELECT pem FROM token_keys WHERE id = 1", &[])?
                .map(|r| r.text(0))
                .transpose()
        };
        if let Some(pem) = self.read(get)? {
            return Ok(pem);
        }
        let pem = new()?;
        self.write(false, |tx| -> Result<String, StoreError> {
            tx.exec(
                "INSERT INTO token_keys (id, pem, created_at) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO NOTHING",
                &[Arg::Text(&pem), Arg::Int(crate::now() as i64)],
            )?;
            get(tx)?.ok_or_else(|| StoreError::Corrupt("the token key vanished".into()))
        })
    }
}

/// Creates the directory's tables on a database that lacks them, refuses one of a
/// newer version.
fn migrate(pool: &berth_pg::Pool) -> Result<(), StoreError> {
    match berth_pg::migrate::<StoreError>(
        pool,
        MIGRATE_LOCK,
        "berth_auth_schema",
        SCHEMA_VERSION,
        SCHEMA,
    )? {
        Some(found) => Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        }),
        None => Ok(()),
    }
}

/// The listener: the snapshot is marked stale at every notification, and each time
/// it starts listening (whatever changed while nobody listened).
fn listen(
    target: berth_pg::Target,
    listening: Arc<AtomicBool>,
    stale: Arc<AtomicBool>,
) -> std::io::Result<berth_pg::Listener> {
    let mut warned = false;
    berth_pg::listen(
        target,
        CHANNEL,
        "berth-auth-listen",
        move |heard| match heard {
            berth_pg::Heard::Listening => {
                if warned {
                    tracing::info!("listening for access-control changes again");
                    warned = false;
                }
                listening.store(true, Ordering::Release);
                stale.store(true, Ordering::Release);
            }
            berth_pg::Heard::Message(_) => stale.store(true, Ordering::Release),
            berth_pg::Heard::Deaf(e) => {
                listening.store(false, Ordering::Release);
                if !warned {
                    tracing::warn!(error = %berth_pg::message(e), "cannot listen for access-control changes; \
                    comparing versions until PostgreSQL is back");
                    warned = true;
                }
            }
        },
    )
}
