//! PostgreSQL connections for berth's stores (the registry's metadata in `berth-store`,
//! the access-control directory in `berth-auth`), written once.
//!
//! Both stores have synchronous interfaces, so they use rust-postgres's blocking
//! client, called on the blocking side of tokio (see [`blocking`]), from an r2d2 pool
//! of connections that each keep their prepared statements. TLS as libpq's URL says
//! it ([`tls`]).

pub mod listen;
pub mod tls;

use std::borrow::Cow;
use std::collections::HashMap;
use std::mem::ManuallyDrop;
use std::time::Duration;

pub use listen::{listen, Heard, Listener};
pub use postgres;
use postgres::types::ToSql;
use postgres::{Client, GenericClient, Row, Statement, Transaction};
pub use r2d2;
pub use tls::{SettingsError, Target};

/// Query parameters, as rust-postgres takes them.
pub type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Connection settings for [`Pool::connect`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Most connections this process keeps open.
    pub max_connections: u32,
    /// How long a call waits for a free connection (or for the server to come back)
    /// before it fails.
    pub connect_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_connections: default_connections(),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// Connections a pool keeps by default: twice the cores this process may use, at
/// least 4 and at most 16.
///
/// Each call in flight holds a thread here (the client is blocking) and, when the
/// database shares the machine, a busy backend there. Past about two per core they
/// only queue for the CPU, and the kernel's queue is no first-come-first-served one:
/// on two cores with PostgreSQL alongside, 32 clients getting one manifest each saw
/// a few requests stall for 2-3.7 s every 10 s with 16 connections (p99.9 about
/// 100 ms), and none beyond 100 ms with 4 (p99.9 about 15 ms), at the same rate
/// (about 15,000 requests a second; `berth-bench --only pg_pool`). The ceiling keeps
/// a few replicas within PostgreSQL's own default of 100 connections.
pub fn default_connections() -> u32 {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    u32::try_from(cores.saturating_mul(2))
        .unwrap_or(u32::MAX)
        .clamp(4, 16)
}

/// A pool of connections to one database.
pub struct Pool {
    pool: r2d2::Pool<Connector>,
    target: Target,
}

impl Pool {
    /// A pool for the database at `url` (`postgres://user:password@host:port/db`, or
    /// libpq's `key=value` form, with `sslmode` and `sslrootcert` as [`tls`] reads
    /// them). Connections open when first needed.
    pub fn connect(url: &str, options: &Options) -> Result<Pool, SettingsError> {
        let target = Target::parse(url)?;
        let pool = blocking(|| {
            r2d2::Pool::builder()
                .max_size(options.max_connections)
                .min_idle(Some(0))
                .connection_timeout(options.connect_timeout)
                // A broken connection is noticed when it is used (and the call retried
                // once): no round trip on every checkout.
                .test_on_check_out(false)
                .build_unchecked(Connector {
                    target: target.clone(),
                })
        });
        Ok(Pool { pool, target })
    }

    /// How the pool connects, for a connection of its own (a listener).
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Runs `f` with a pooled connection, on the blocking side of the runtime. A call
    /// whose connection turns out closed (the server restarted) is tried once more on
    /// a new one; `f` must then be safe to repeat, which reads and single-statement
    /// writes are and a failed transaction is (it did not commit).
    pub fn with<T: Send, E: From<r2d2::Error> + Send>(
        &self,
        mut f: impl FnMut(&mut Conn) -> Result<T, E> + Send,
    ) -> Result<T, E> {
        blocking(|| {
            let mut conn = self.pool.get()?;
            match f(&mut conn) {
                Err(_) if conn.client.is_closed() => {
                    drop(conn);
                    f(&mut *self.pool.get()?)
                }
                out => out,
            }
        })
    }
}

/// Starts a read-only REPEATABLE READ transaction: one consistent view of every
/// table for reads that span several (a snapshot of a directory, a collector's mark).
pub fn snapshot(c: &mut Client) -> Result<Transaction<'_>, postgres::Error> {
    c.build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
}

/// Brings a store's schema up to date, once however many replicas start together (a
/// transaction-scoped advisory lock `lock`): on a database below `version` (or
/// without `table`, the store's version table) it runs `schema`, which must only add
/// what is missing (`IF NOT EXISTS`), and records `version`. A database at a newer
/// version, migrated by a newer berth, is left alone: `Ok(Some(found))`, for the
/// caller to refuse it rather than misread it.
pub fn migrate<E: From<postgres::Error> + From<r2d2::Error> + Send>(
    pool: &Pool,
    lock: i64,
    table: &'static str,
    version: i64,
    schema: &str,
) -> Result<Option<i64>, E> {
    pool.with(|c| {
        c.transaction(
            |c| c.transaction(),
            |mut db| -> Result<Option<i64>, E> {
                let tx = db.client();
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock])?;
                tx.batch_execute(&format!(
                    "CREATE TABLE IF NOT EXISTS {table} (version BIGINT NOT NULL)"
                ))?;
                let found: Option<i64> = tx
                    .query_opt(&format!("SELECT max(version)::BIGINT FROM {table}"), &[])?
                    .and_then(|r| r.get(0));
                match found {
                    Some(v) if v > version => Ok(Some(v)),
                    Some(v) if v == version => Ok(None),
                    Some(_) | None => {
                        tx.batch_execute(schema)?;
                        tx.batch_execute(&format!(
                            "INSERT INTO {table} (version) VALUES ({version})"
                        ))?;
                        Ok(None)
                    }
                }
            },
        )
    })
}

/// What an operator needs of an error: rust-postgres says only "db error" for an
/// error of the server; its severity, SQLSTATE and message are added.
pub fn message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

/// The database cannot be reached (down, restarting, the connection closed): nothing
/// was committed, and the same call succeeds once it is back.
pub fn is_unreachable(e: &postgres::Error) -> bool {
    e.is_closed()
        || e.code().is_some_and(|c| {
            // Class 08 (connection exception) and 57P0x (the server is shutting down
            // or starting).
            c.code().starts_with("08") || c.code().starts_with("57P0")
        })
        || (e.as_db_error().is_none()
            && std::error::Error::source(e)
                .is_some_and(|s| s.downcast_ref::<std::io::Error>().is_some()))
}

/// Runs blocking database work from wherever the caller is: on a runtime worker it
/// moves off the async side (`block_in_place`), on a single-threaded runtime it runs
/// on a thread of its own (blocking there would stall the runtime, and rust-postgres's
/// client may not block inside one), elsewhere in place.
pub fn blocking<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        Ok(_) => std::thread::scope(|s| match s.spawn(f).join() {
            Ok(out) => out,
            Err(panic) => std::panic::resume_unwind(panic),
        }),
        Err(_) => f(),
    }
}

/// A client whose drop is safe anywhere: rust-postgres's blocking client owns a
/// runtime, which may not be dropped inside another one (a pool dropped from async
/// code), so it is dropped on a thread of its own there.
pub struct OwnedClient(ManuallyDrop<Client>);

impl OwnedClient {
    pub fn new(client: Client) -> OwnedClient {
        OwnedClient(ManuallyDrop::new(client))
    }
}

impl std::ops::Deref for OwnedClient {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.0
    }
}

impl std::ops::DerefMut for OwnedClient {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.0
    }
}

impl Drop for OwnedClient {
    fn drop(&mut self) {
        // SAFETY: taken once, here, and never used again.
        let client = unsafe { ManuallyDrop::take(&mut self.0) };
        match tokio::runtime::Handle::try_current() {
            Ok(_) => drop(std::thread::spawn(move || drop(client))),
            Err(_) => drop(client),
        }
    }
}

/// Opens connections for the pool.
#[derive(Debug)]
struct Connector {
    target: Target,
}

/// A pooled connection and its prepared statements.
pub struct Conn {
    client: OwnedClient,
    statements: HashMap<&'static str, Statement>,
}

impl Conn {
    /// Statements outside any transaction.
    pub fn db(&mut self) -> Db<'_, Client> {
        Db {
            c: &mut self.client,
            statements: &mut self.statements,
        }
    }

    /// Runs `f` in a transaction that `begin` starts, and commits it when `f`
    /// succeeds (an error rolls it back).
    pub fn transaction<T, E: From<postgres::Error>>(
        &mut self,
        begin: impl FnOnce(&mut Client) -> Result<Transaction<'_>, postgres::Error>,
        f: impl FnOnce(Db<'_, Transaction<'_>>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut tx = begin(&mut self.client)?;
        let out = f(Db {
            c: &mut tx,
            statements: &mut self.statements,
        })?;
        tx.commit()?;
        Ok(out)
    }
}

impl r2d2::ManageConnection for Connector {
    type Connection = Conn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<Conn, postgres::Error> {
        Ok(Conn {
            client: OwnedClient::new(self.target.connect()?),
            statements: HashMap::new(),
        })
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), postgres::Error> {
        conn.client.simple_query("").map(|_| ())
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.client.is_closed()
    }
}

/// A client or transaction with the connection's statement cache.
pub struct Db<'a, C: GenericClient> {
    c: &'a mut C,
    statements: &'a mut HashMap<&'static str, Statement>,
}

impl<C: GenericClient> Db<'_, C> {
    /// `sql` prepared on this connection, once.
    pub fn statement(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
        self.statement_as(sql, || Cow::Borrowed(sql))
    }

    /// The statement `text()` gives, prepared once and cached under `key` (SQL written
    /// in another dialect, rewritten the first time it is used).
    pub fn statement_as<'s>(
        &mut self,
        key: &'static str,
        text: impl FnOnce() -> Cow<'s, str>,
    ) -> Result<Statement, postgres::Error> {
        if let Some(s) = self.statements.get(key) {
            return Ok(s.clone());
        }
        let s = self.c.prepare(&text())?;
        self.statements.insert(key, s.clone());
        Ok(s)
    }

    /// The client or transaction itself.
    pub fn client(&mut self) -> &mut C {
        self.c
    }

    pub fn exec(&mut self, sql: &'static str, params: Params<'_>) -> Result<u64, postgres::Error> {
        let st = self.statement(sql)?;
        self.c.execute(&st, params)
    }

    pub fn rows(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<Vec<Row>, postgres::Error> {
        let st = self.statement(sql)?;
        self.c.query(&st, params)
    }

    pub fn row(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<Option<Row>, postgres::Error> {
        let st = self.statement(sql)?;
        self.c.query_opt(&st, params)
    }

    /// Whether `sql` (which should say `LIMIT 1` when it may match many) has a row.
    pub fn exists(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<bool, postgres::Error> {
        Ok(!self.rows(sql, params)?.is_empty())
    }
}
