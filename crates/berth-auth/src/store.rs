//! Access-control data: in SQLite (`auth.db` in the registry's data folder) by
//! default, in PostgreSQL for replicas that share one database (see [`pg`]).
//!
//! The server keeps a [`Directory`] snapshot and reloads it when the database changed.
//! On SQLite, the server and `berth registry … --root` open the same file (SQLite's
//! locking makes that safe), and the server asks SQLite's `PRAGMA data_version`, which
//! changes whenever another connection (in this process or another) commits, whether
//! the snapshot is still current. It asks at most once per [`RECHECK`]: asking on every
//! request cost 10–15% of the manifest GET rate (a lock and a SQLite call per request),
//! while a change made by another process now applies within a millisecond, and one
//! made through this store at once. On PostgreSQL, every change notifies every replica
//! (LISTEN/NOTIFY), which then reloads; nothing is asked per request.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, TryLockError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, TransactionBehavior};
use sha2::{Digest as _, Sha256};

use crate::directory::{Account, AccountKind, Directory, Level, Visibility};
use crate::names::{Subject, Target};
use crate::now;
use crate::policy::{ImmutableTags, Retention};
use crate::replication::ReplicationRule;
use crate::sql::{Arg, Tx};
use crate::trust::{Trust, TrustKeys};

pub mod pg;

const SCHEMA: &str = include_str!("schema.sql");
/// How long a snapshot is used without asking the database whether it changed.
pub const RECHECK: Duration = Duration::from_millis(1);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("access-control database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("access-control database (PostgreSQL): {}", berth_pg::message(.0))]
    Postgres(#[from] berth_pg::postgres::Error),
    /// No connection to PostgreSQL could be had in time.
    #[error("access-control database (PostgreSQL connection pool): {0}")]
    Pool(#[from] berth_pg::r2d2::Error),
    /// The connection URL (or the TLS settings in it) cannot be used.
    #[error("access-control database: {0}")]
    Settings(#[from] berth_pg::SettingsError),
    /// The database was migrated by a newer berth.
    #[error(
        "the access-control database is at schema version {found}, newer than this \
         berth's {supported}: upgrade berth (or restore the database from before the upgrade)"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    /// A stored value of the wrong type (a database changed by hand).
    #[error("access-control database: {0}")]
    Corrupt(String),
    #[error("access-control database lock poisoned by a panic")]
    Poisoned,
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    /// The database cannot be reached (PostgreSQL is down or restarting): nothing was
    /// changed, and the same request succeeds once it is back.
    pub fn is_unreachable(&self) -> bool {
        match self {
            StoreError::Pool(_) => true,
            StoreError::Postgres(e) => berth_pg::is_unreachable(e),
            _ => false,
        }
    }
}

impl<T> From<PoisonError<T>> for StoreError {
    fn from(_: PoisonError<T>) -> StoreError {
        StoreError::Poisoned
    }
}

pub struct AuthStore {
    backend: Backend,
    current: RwLock<Arc<Directory>>,
    /// When the database was last asked, in nanoseconds since `epoch`.
    checked_at: AtomicU64,
    /// Set by our own writes (and on PostgreSQL by other replicas' notifications): the
    /// next question reloads.
    stale: Arc<AtomicBool>,
    epoch: Instant,
}

enum Backend {
    Sqlite {
        writer: Mutex<Connection>,
        /// A connection that only reads: its `data_version` moves when anyone else
        /// commits.
        watch: Mutex<Watch>,
    },
    Postgres(pg::PgDirectory),
}

struct Watch {
    conn: Connection,
    version: i64,
}

impl AuthStore {
    /// Opens (creating if needed) the SQLite database at `path`.
    pub fn open(path: &Path) -> Result<AuthStore, StoreError> {
        let writer = open_connection(path)?;
        writer.execute_batch(SCHEMA)?;
        let conn = open_connection(path)?;
        let version = data_version(&conn)?;
        let current = Arc::new(load(&conn)?);
        Ok(AuthStore::new(
            Backend::Sqlite {
                writer: Mutex::new(writer),
                watch: Mutex::new(Watch { conn, version }),
            },
            current,
            Arc::new(AtomicBool::new(false)),
        ))
    }

    /// Connects to the PostgreSQL database at `url` (the registry's metadata database:
    /// the directory has tables of its own there), bringing its schema up to date, and
    /// starts listening for other replicas' changes.
    pub fn connect(url: &str) -> Result<AuthStore, StoreError> {
        let stale = Arc::new(AtomicBool::new(false));
        let (db, current) = pg::PgDirectory::connect(url, stale.clone())?;
        Ok(AuthStore::new(
            Backend::Postgres(db),
            Arc::new(current),
            stale,
        ))
    }

    fn new(backend: Backend, current: Arc<Directory>, stale: Arc<AtomicBool>) -> AuthStore {
        AuthStore {
            backend,
            current: RwLock::new(current),
            checked_at: AtomicU64::new(0),
            stale,
            epoch: Instant::now(),
        }
    }

    /// Whether the directory lives in PostgreSQL.
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// The current snapshot, reloaded first if the database changed.
    pub fn directory(&self) -> Result<Arc<Directory>, StoreError> {
        let now = self.epoch.elapsed().as_nanos() as u64;
        let age = now.saturating_sub(self.checked_at.load(Ordering::Acquire));
        let recheck = match &self.backend {
            Backend::Sqlite { .. } => RECHECK,
            Backend::Postgres(db) => db.recheck(),
        };
        if age < recheck.as_nanos() as u64 && !self.stale.load(Ordering::Acquire) {
            return Ok(self.current.read()?.clone());
        }
        match &self.backend {
            Backend::Sqlite { watch, .. } => {
                let mut w = match watch.try_lock() {
                    Ok(w) => w,
                    // Another thread is asking right now; its answer is no older than ours.
                    Err(TryLockError::WouldBlock) => return Ok(self.current.read()?.clone()),
                    Err(TryLockError::Poisoned(_)) => return Err(StoreError::Poisoned),
                };
                self.stale.store(false, Ordering::Release);
                let version = data_version(&w.conn)?;
                if version != w.version {
                    let dir = Arc::new(load(&w.conn)?);
                    *self.current.write()? = dir;
                    w.version = version;
                }
            }
            Backend::Postgres(db) => {
                if let Some(dir) = db.reload(&self.stale)? {
                    *self.current.write()? = Arc::new(dir);
                }
            }
        }
        self.checked_at.store(now, Ordering::Release);
        Ok(self.current.read()?.clone())
    }

    /// Runs `f` in one write transaction; an error from `f` rolls everything back.
    /// `f` may run twice on PostgreSQL (a connection found closed is retried once on
    /// a new one; the first run did not commit).
    pub(crate) fn write<T: Send, E: From<StoreError> + Send>(
        &self,
        f: impl FnMut(&mut Tx<'_, '_>) -> Result<T, E> + Send,
    ) -> Result<T, E> {
        self.write_as(true, f)
    }

    /// [`AuthStore::write`], saying whether the change concerns the directory (a
    /// refresh token does not: no replica need reload for it).
    fn write_as<T: Send, E: From<StoreError> + Send>(
        &self,
        directory: bool,
        mut f: impl FnMut(&mut Tx<'_, '_>) -> Result<T, E> + Send,
    ) -> Result<T, E> {
        let out = match &self.backend {
            Backend::Sqlite { writer, .. } => {
                let mut conn = writer.lock().map_err(StoreError::from)?;
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(StoreError::from)?;
                let out = f(&mut Tx::Sqlite(&tx))?;
                tx.commit().map_err(StoreError::from)?;
                out
            }
            Backend::Postgres(db) => db.write(directory, f)?,
        };
        if directory {
            // Our own change applies to the very next question.
            self.stale.store(true, Ordering::Release);
        }
        Ok(out)
    }

    /// Runs `f` on a consistent view of the database.
    fn read<T: Send>(
        &self,
        f: impl FnMut(&mut Tx<'_, '_>) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        match &self.backend {
            Backend::Sqlite { watch, .. } => {
                let mut f = f;
                let w = watch.lock()?;
                let tx = w.conn.unchecked_transaction()?;
                let out = f(&mut Tx::Sqlite(&tx))?;
                tx.finish()?;
                Ok(out)
            }
            Backend::Postgres(db) => db.read(f),
        }
    }

    /// The password hash of user or robot `name` in the database now, past the snapshot
    /// (which may be a moment old): what a web session's stamp is checked against when
    /// the snapshot disagrees with it.
    pub fn password_hash(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.read(|tx| {
            tx.query(
                "SELECT password_hash FROM accounts WHERE name = ?1 AND kind <> 'org'",
                &[name.into()],
            )?
            .first()
            .map(|r| r.opt_text(0))
            .transpose()
            .map(Option::flatten)
        })
    }

    /// When the latest lockout of `account`, `source` or `account` from `source` that any
    /// process started ends (unix seconds), if one is still running: replicas count
    /// failures each on their own, and a lockout one of them starts holds on all.
    pub fn shared_lockout(&self, account: &str, source: &str) -> Result<Option<u64>, StoreError> {
        self.read(|tx| {
            tx.query(
                "SELECT locked_until FROM lockouts
                 WHERE locked_until > ?1
                   AND ((kind = 'account' AND name = ?2) OR (kind = 'source' AND name = ?3)
                        OR (kind = 'pair' AND name = ?4))
                 ORDER BY locked_until DESC LIMIT 1",
                &[
                    Arg::Int(now() as i64),
                    account.into(),
                    source.into(),
                    crate::Lockout::pair_name(account, source).as_str().into(),
                ],
            )?
            .first()
            .map(|r| r.int(0).map(|t| t.max(0) as u64))
            .transpose()
        })
    }

    /// Records lockouts (`(kind, name, until)`, `kind` being `account`, `source` or `pair`
    /// (named by `Lockout::pair_name`), `until` unix seconds) for every process to see; a
    /// longer one already there stays. Ended ones are removed.
    pub fn share_lockouts(&self, lockouts: &[(&str, &str, u64)]) -> Result<(), StoreError> {
        self.write_as(false, |tx| -> Result<(), StoreError> {
            tx.exec(
                "DELETE FROM lockouts WHERE locked_until <= ?1",
                &[Arg::Int(now() as i64)],
            )?;
            for (kind, name, until) in lockouts {
                tx.exec(
                    "INSERT INTO lockouts (kind, name, locked_until) VALUES (?1, ?2, ?3)
                     ON CONFLICT (kind, name) DO UPDATE SET locked_until =
                       CASE WHEN excluded.locked_until > lockouts.locked_until
                            THEN excluded.locked_until ELSE lockouts.locked_until END",
                    &[
                        Arg::Text(kind),
                        Arg::Text(name),
                        Arg::Int((*until).min(i64::MAX as u64) as i64),
                    ],
                )?;
            }
            Ok(())
        })
    }

    /// Remembers a refresh token for `account` until `expires_at`.
    pub fn add_refresh_token(
        &self,
        token: &str,
        account: &str,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        let hash = token_hash(token);
        self.write_as(false, |tx| -> Result<(), StoreError> {
            tx.exec(
                "DELETE FROM refresh_tokens WHERE expires_at < ?1",
                &[Arg::Int(now() as i64)],
            )?;
            tx.exec(
                "INSERT INTO refresh_tokens (token_hash, account, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4)",
                &[
                    Arg::Text(&hash),
                    account.into(),
                    Arg::Int(now() as i64),
                    Arg::Int(expires_at.min(i64::MAX as u64) as i64),
                ],
            )?;
            Ok(())
        })
    }

    /// Replaces `name`'s password hash `old` by `new` (the same password, hashed
    /// again: a bcrypt hash from htpasswd becomes argon2id at the first login that
    /// proves the password). Unlike a password change, sessions go on. Nothing happens
    /// when the hash changed meanwhile: a new password set at the same time wins.
    pub fn rehash_password(&self, name: &str, old: &str, new: &str) -> Result<bool, StoreError> {
        self.write(|tx| -> Result<bool, StoreError> {
            let n = tx.exec(
                "UPDATE accounts SET password_hash = ?3 WHERE name = ?1 AND password_hash = ?2",
                &[name.into(), old.into(), new.into()],
            )?;
            Ok(n == 1)
        })
    }

    /// The latest `limit` permission changes, newest first.
    pub fn audit_trail(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.read(|tx| {
            tx.query(
                "SELECT at, actor, origin, change FROM audit_log ORDER BY id DESC LIMIT ?1",
                &[Arg::Int(limit.min(i64::MAX as usize) as i64)],
            )?
            .iter()
            .map(|r| {
                Ok(AuditEntry {
                    at: r.int(0)?,
                    actor: r.text(1)?,
                    from: r.text(2)?,
                    change: r.text(3)?,
                })
            })
            .collect()
        })
    }

    /// The account a live refresh token belongs to.
    pub fn refresh_token_account(&self, token: &str) -> Result<Option<String>, StoreError> {
        let hash = token_hash(token);
        self.read(|tx| {
            tx.query_opt(
                "SELECT account FROM refresh_tokens WHERE token_hash = ?1 AND expires_at > ?2",
                &[Arg::Text(&hash), Arg::Int(now() as i64)],
            )?
            .map(|r| r.text(0))
            .transpose()
        })
    }

    /// The key that signs this registry's tokens when every replica must share it (the
    /// directory in PostgreSQL): the stored one, or `new()`'s, stored first by whichever
    /// replica asks first. `None` on SQLite, where the key is a file beside `auth.db`.
    pub fn shared_token_key(
        &self,
        new: impl FnOnce() -> Result<String, StoreError>,
    ) -> Result<Option<String>, StoreError> {
        match &self.backend {
            Backend::Sqlite { .. } => Ok(None),
            Backend::Postgres(db) => db.token_key(new).map(Some),
        }
    }

    /// Copies every row of this directory into `to` (`berth registry migrate`), in
    /// one transaction there: rows `to` already has are kept, the audit log is copied
    /// when `to` has none yet. How many rows were copied.
    pub fn copy_into(&self, to: &AuthStore) -> Result<usize, StoreError> {
        let tables = self.read(|tx| {
            TABLES
                .iter()
                .map(|(table, cols)| {
                    let rows = tx.query_text(&format!("SELECT {cols} FROM {table}"))?;
                    Ok((*table, *cols, rows))
                })
                .collect::<Result<Vec<_>, StoreError>>()
        })?;
        to.write(|tx| -> Result<usize, StoreError> {
            let mut copied = 0;
            for (table, cols, rows) in &tables {
                let n = cols.split(',').count();
                let marks: Vec<String> = (1..=n).map(|i| format!("?{i}")).collect();
                let mut insert = format!(
                    "INSERT INTO {table} ({cols}) VALUES ({}) ON CONFLICT DO NOTHING",
                    marks.join(", ")
                );
                if *table == "audit_log" {
                    if tx.query_text("SELECT 1 FROM audit_log LIMIT 1")?.is_empty() {
                        insert = format!(
                            "INSERT INTO audit_log ({cols}) VALUES ({})",
                            marks.join(", ")
                        );
                    } else {
                        continue;
                    }
                }
                for row in rows {
                    let args: Vec<Arg<'_>> = row.0.iter().map(|v| v.arg()).collect();
                    copied += tx.exec_text(&insert, &args)?;
                }
            }
            Ok(copied)
        })
    }
}

/// The directory's tables and the columns `copy_into` moves, in an order that keeps
/// references valid (accounts before the rows that name them).
const TABLES: &[(&str, &str)] = &[
    (
        "accounts",
        "name, kind, password_hash, superuser, default_visibility, created_at",
    ),
    ("team_members", "team, member, created_at"),
    ("grants", "subject, target, level, created_at"),
    (
        "repository_visibility",
        "repository, visibility, created_at",
    ),
    (
        "trust_settings",
        "target, required, gpg_keys, sigstore_keys, created_at",
    ),
    ("trust_by_repository_admin", "target, created_at"),
    ("immutable_tags", "target, patterns, created_at"),
    ("retention", "target, rule, created_at"),
    ("replication_rules", "name, rule, created_at"),
    ("quotas", "namespace, bytes, created_at"),
    (
        "refresh_tokens",
        "token_hash, account, created_at, expires_at",
    ),
    ("audit_log", "at, actor, origin, change"),
];

/// One recorded permission change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditEntry {
    /// Unix seconds.
    pub at: i64,
    pub actor: String,
    pub from: String,
    pub change: String,
}

fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    Ok(berth_sqlite::connect(path, berth_sqlite::Sync::Full)?)
}

fn data_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0))
}

/// Reads every table into a snapshot, in one read transaction.
fn load(conn: &Connection) -> Result<Directory, StoreError> {
    let tx = conn.unchecked_transaction()?;
    let d = read_all(&mut Tx::Sqlite(&tx))?;
    tx.finish()?;
    Ok(d)
}

/// Every table into a snapshot, within the caller's transaction.
pub(crate) fn read_all(tx: &mut Tx<'_, '_>) -> Result<Directory, StoreError> {
    let mut d = Directory::default();
    let accounts = tx.query(
        "SELECT name, kind, password_hash, superuser, default_visibility FROM accounts",
        &[],
    )?;
    for r in accounts {
        let Some(kind) = AccountKind::from_db(&r.text(1)?) else {
            continue;
        };
        d.accounts.insert(
            r.text(0)?,
            Account {
                kind,
                password_hash: r.opt_text(2)?,
                superuser: r.flag(3)?,
                default_visibility: r.opt_text(4)?.and_then(|v| v.parse().ok()),
            },
        );
    }
    for r in tx.query(
        "SELECT team, member FROM team_members ORDER BY team, member",
        &[],
    )? {
        let (team, member) = (r.text(0)?, r.text(1)?);
        d.memberships
            .entry(member.clone())
            .or_default()
            .push(team.clone());
        d.teams.entry(team).or_default().push(member);
    }
    for r in tx.query("SELECT subject, target, level FROM grants", &[])? {
        if let Ok(level) = r.text(2)?.parse::<Level>() {
            d.grants
                .entry(r.text(0)?)
                .or_default()
                .push((r.text(1)?, level));
        }
    }
    for r in tx.query(
        "SELECT repository, visibility FROM repository_visibility",
        &[],
    )? {
        if let Ok(v) = r.text(1)?.parse::<Visibility>() {
            d.visibility.insert(r.text(0)?, v);
        }
    }
    for r in tx.query(
        "SELECT target, required, gpg_keys, sigstore_keys FROM trust_settings",
        &[],
    )? {
        let target = r.text(0)?;
        let trust = stored_trust(&target, r.flag(1)?, &r.text(2)?, &r.text(3)?);
        d.trust.insert(target, Arc::new(trust));
    }
    for r in tx.query("SELECT target FROM trust_by_repository_admin", &[])? {
        d.trust_by_repository_admin.insert(r.text(0)?);
    }
    for r in tx.query("SELECT target, patterns FROM immutable_tags", &[])? {
        let target = r.text(0)?;
        // Patterns were checked when set; kept as stored (an unreadable list protects
        // nothing, which only an admin's new setting can fix).
        let patterns = serde_json::from_str::<Vec<String>>(&r.text(1)?).unwrap_or_default();
        d.immutable
            .insert(target.clone(), Arc::new(ImmutableTags { target, patterns }));
    }
    for r in tx.query("SELECT target, rule FROM retention", &[])? {
        let target = r.text(0)?;
        // Checked when set; an unreadable rule deletes nothing (none is loaded).
        if let Ok(mut rule) = serde_json::from_str::<Retention>(&r.text(1)?) {
            rule.target = target.clone();
            d.retention.insert(target, Arc::new(rule));
        }
    }
    for r in tx.query("SELECT rule FROM replication_rules ORDER BY name", &[])? {
        // Checked when set; an unreadable rule copies nothing.
        if let Ok(rule) = serde_json::from_str::<ReplicationRule>(&r.text(0)?) {
            d.replication.push(Arc::new(rule));
        }
    }
    for r in tx.query("SELECT namespace, bytes FROM quotas", &[])? {
        d.quotas.insert(r.text(0)?, r.int(1)?.max(0) as u64);
    }
    Ok(d)
}

/// A stored trust setting. Every key was checked when it was set; should one no longer
/// parse (a key format a later version accepts), the setting requires signatures and
/// trusts no key until an admin sets it again: it fails closed, never open.
fn stored_trust(target: &str, required: bool, gpg: &str, sigstore: &str) -> Trust {
    let list = |s: &str| serde_json::from_str::<Vec<String>>(s).unwrap_or_default();
    let keys = TrustKeys {
        gpg_keys: list(gpg),
        sigstore_keys: list(sigstore),
    };
    Trust::parse(target, required, keys.clone()).unwrap_or_else(|e| {
        tracing::warn!(target = %target, error = %e, "stored trust setting does not parse; nothing is trusted there");
        Trust {
            target: target.to_string(),
            required: true,
            keys,
            keyring: Default::default(),
            sigstore: Vec::new(),
            version: 0,
        }
    })
}

/// A live refresh token, as `token list` shows it (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RefreshTokenInfo {
    /// The first 16 hex digits of the token's SHA-256: enough to name it, useless
    /// to log in with.
    pub id: String,
    pub account: String,
    pub created_at: i64,
    pub expires_at: i64,
}

impl AuthStore {
    /// The live refresh tokens, of `account` or of everyone, newest first.
    pub fn refresh_tokens(
        &self,
        account: Option<&str>,
    ) -> Result<Vec<RefreshTokenInfo>, StoreError> {
        self.read(|tx| {
            tx.query(
                "SELECT substr(token_hash, 1, 16), account, created_at, expires_at
                 FROM refresh_tokens
                 WHERE expires_at > ?1 AND (CAST(?2 AS TEXT) IS NULL OR account = ?2)
                 ORDER BY created_at DESC, token_hash",
                &[Arg::Int(now() as i64), account.into()],
            )?
            .iter()
            .map(|r| {
                Ok(RefreshTokenInfo {
                    id: r.text(0)?,
                    account: r.text(1)?,
                    created_at: r.int(2)?,
                    expires_at: r.int(3)?,
                })
            })
            .collect()
        })
    }
}

/// The row-level changes; callers (see `admin.rs`) have checked names and rights.
pub(crate) mod rows {
    use super::*;

    type Result<T> = std::result::Result<T, StoreError>;

    /// The kind of account `name` is, if it exists.
    pub fn kind_of(tx: &mut Tx<'_, '_>, name: &str) -> Result<Option<AccountKind>> {
        Ok(tx
            .query_opt("SELECT kind FROM accounts WHERE name = ?1", &[name.into()])?
            .map(|r| r.text(0))
            .transpose()?
            .as_deref()
            .and_then(AccountKind::from_db))
    }

    pub fn insert_account(
        tx: &mut Tx<'_, '_>,
        name: &str,
        kind: AccountKind,
        password_hash: Option<&str>,
        superuser: bool,
    ) -> Result<bool> {
        let n = tx.exec(
            "INSERT INTO accounts (name, kind, password_hash, superuser, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (name) DO NOTHING",
            &[
                name.into(),
                kind.as_str().into(),
                password_hash.into(),
                superuser.into(),
                Arg::Int(now() as i64),
            ],
        )?;
        Ok(n == 1)
    }

    pub fn set_password(tx: &mut Tx<'_, '_>, name: &str, hash: &str) -> Result<()> {
        tx.exec(
            "UPDATE accounts SET password_hash = ?2 WHERE name = ?1",
            &[name.into(), hash.into()],
        )?;
        // A new password ends the sessions kept alive by refresh tokens.
        tx.exec(
            "DELETE FROM refresh_tokens WHERE account = ?1",
            &[name.into()],
        )?;
        Ok(())
    }

    /// Removes `account`'s refresh tokens (those whose hash starts with `id`, when
    /// given: lowercase hex); how many went.
    pub fn revoke_refresh_tokens(
        tx: &mut Tx<'_, '_>,
        account: &str,
        id: Option<&str>,
    ) -> Result<usize> {
        match id {
            Some(id) => tx.exec(
                "DELETE FROM refresh_tokens WHERE account = ?1 AND substr(token_hash, 1, ?3) = ?2",
                &[account.into(), id.into(), Arg::Int(id.len() as i64)],
            ),
            None => tx.exec(
                "DELETE FROM refresh_tokens WHERE account = ?1",
                &[account.into()],
            ),
        }
    }

    /// Removes an account and everything that names it: memberships, grants to it,
    /// and for a namespace owner its robots, teams, grants and visibility settings.
    pub fn delete_account(tx: &mut Tx<'_, '_>, name: &str) -> Result<bool> {
        let robots = format!("{name}+");
        let inside = format!("{name}/");
        let len = Arg::Int(inside.len() as i64);
        tx.exec(
            "DELETE FROM grants WHERE subject = ?1 OR target = ?1
                OR substr(subject, 1, ?3) IN (?2, ?4) OR substr(target, 1, ?3) = ?2",
            &[name.into(), (&inside).into(), len, (&robots).into()],
        )?;
        tx.exec(
            "DELETE FROM team_members WHERE substr(team, 1, ?2) = ?1",
            &[(&inside).into(), len],
        )?;
        tx.exec(
            "DELETE FROM repository_visibility WHERE substr(repository, 1, ?2) = ?1",
            &[(&inside).into(), len],
        )?;
        tx.exec(
            "DELETE FROM trust_settings WHERE target = ?1 OR substr(target, 1, ?3) = ?2",
            &[name.into(), (&inside).into(), len],
        )?;
        tx.exec(
            "DELETE FROM trust_by_repository_admin WHERE target = ?1 OR substr(target, 1, ?3) = ?2",
            &[name.into(), (&inside).into(), len],
        )?;
        tx.exec(
            "DELETE FROM immutable_tags WHERE target = ?1 OR substr(target, 1, ?3) = ?2",
            &[name.into(), (&inside).into(), len],
        )?;
        tx.exec(
            "DELETE FROM retention WHERE target = ?1 OR substr(target, 1, ?3) = ?2",
            &[name.into(), (&inside).into(), len],
        )?;
        tx.exec("DELETE FROM quotas WHERE namespace = ?1", &[name.into()])?;
        tx.exec(
            "DELETE FROM accounts WHERE substr(name, 1, ?2) = ?1",
            &[(&robots).into(), len],
        )?;
        Ok(tx.exec("DELETE FROM accounts WHERE name = ?1", &[name.into()])? == 1)
    }

    pub fn set_default_visibility(tx: &mut Tx<'_, '_>, ns: &str, v: Visibility) -> Result<()> {
        tx.exec(
            "UPDATE accounts SET default_visibility = ?2 WHERE name = ?1",
            &[ns.into(), v.as_str().into()],
        )?;
        Ok(())
    }

    pub fn set_visibility(tx: &mut Tx<'_, '_>, repo: &str, v: Visibility) -> Result<()> {
        tx.exec(
            "INSERT INTO repository_visibility (repository, visibility, created_at)
             VALUES (?1, ?2, ?3)
             ON CONFLICT (repository) DO UPDATE SET visibility = excluded.visibility",
            &[repo.into(), v.as_str().into(), Arg::Int(now() as i64)],
        )?;
        Ok(())
    }

    /// Sets `target`'s trust setting; `by_repository_admin` when its setter administers
    /// the repository alone (see `Directory::trust_for`).
    pub fn set_trust(
        tx: &mut Tx<'_, '_>,
        target: &str,
        required: bool,
        keys: &TrustKeys,
        by_repository_admin: bool,
    ) -> Result<()> {
        let json = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
        let (gpg, sigstore) = (json(&keys.gpg_keys), json(&keys.sigstore_keys));
        tx.exec(
            "INSERT INTO trust_settings (target, required, gpg_keys, sigstore_keys, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (target) DO UPDATE SET required = excluded.required,
                gpg_keys = excluded.gpg_keys, sigstore_keys = excluded.sigstore_keys",
            &[
                target.into(),
                required.into(),
                (&gpg).into(),
                (&sigstore).into(),
                Arg::Int(now() as i64),
            ],
        )?;
        tx.exec(
            "DELETE FROM trust_by_repository_admin WHERE target = ?1",
            &[target.into()],
        )?;
        if by_repository_admin {
            tx.exec(
                "INSERT INTO trust_by_repository_admin (target, created_at) VALUES (?1, ?2)",
                &[target.into(), Arg::Int(now() as i64)],
            )?;
        }
        Ok(())
    }

    pub fn unset_trust(tx: &mut Tx<'_, '_>, target: &str) -> Result<bool> {
        tx.exec(
            "DELETE FROM trust_by_repository_admin WHERE target = ?1",
            &[target.into()],
        )?;
        Ok(tx.exec(
            "DELETE FROM trust_settings WHERE target = ?1",
            &[target.into()],
        )? == 1)
    }

    pub fn set_immutable(tx: &mut Tx<'_, '_>, target: &str, patterns: &[String]) -> Result<()> {
        let json = serde_json::to_string(patterns).unwrap_or_else(|_| "[]".into());
        tx.exec(
            "INSERT INTO immutable_tags (target, patterns, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (target) DO UPDATE SET patterns = excluded.patterns",
            &[target.into(), (&json).into(), Arg::Int(now() as i64)],
        )?;
        Ok(())
    }

    pub fn unset_immutable(tx: &mut Tx<'_, '_>, target: &str) -> Result<bool> {
        Ok(tx.exec(
            "DELETE FROM immutable_tags WHERE target = ?1",
            &[target.into()],
        )? == 1)
    }

    pub fn set_retention(tx: &mut Tx<'_, '_>, rule: &Retention) -> Result<()> {
        let json = serde_json::to_string(rule).unwrap_or_else(|_| "{}".into());
        tx.exec(
            "INSERT INTO retention (target, rule, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (target) DO UPDATE SET rule = excluded.rule",
            &[
                (&rule.target).into(),
                (&json).into(),
                Arg::Int(now() as i64),
            ],
        )?;
        Ok(())
    }

    pub fn unset_retention(tx: &mut Tx<'_, '_>, target: &str) -> Result<bool> {
        Ok(tx.exec("DELETE FROM retention WHERE target = ?1", &[target.into()])? == 1)
    }

    pub fn set_replication(tx: &mut Tx<'_, '_>, rule: &ReplicationRule) -> Result<()> {
        let json = serde_json::to_string(rule).unwrap_or_else(|_| "{}".into());
        tx.exec(
            "INSERT INTO replication_rules (name, rule, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET rule = excluded.rule",
            &[(&rule.name).into(), (&json).into(), Arg::Int(now() as i64)],
        )?;
        Ok(())
    }

    pub fn unset_replication(tx: &mut Tx<'_, '_>, name: &str) -> Result<bool> {
        Ok(tx.exec(
            "DELETE FROM replication_rules WHERE name = ?1",
            &[name.into()],
        )? == 1)
    }

    pub fn set_quota(tx: &mut Tx<'_, '_>, ns: &str, bytes: u64) -> Result<()> {
        tx.exec(
            "INSERT INTO quotas (namespace, bytes, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (namespace) DO UPDATE SET bytes = excluded.bytes",
            &[
                ns.into(),
                Arg::Int(bytes.min(i64::MAX as u64) as i64),
                Arg::Int(now() as i64),
            ],
        )?;
        Ok(())
    }

    pub fn unset_quota(tx: &mut Tx<'_, '_>, ns: &str) -> Result<bool> {
        Ok(tx.exec("DELETE FROM quotas WHERE namespace = ?1", &[ns.into()])? == 1)
    }

    pub fn add_member(tx: &mut Tx<'_, '_>, team: &str, member: &str) -> Result<()> {
        tx.exec(
            "INSERT INTO team_members (team, member, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (team, member) DO NOTHING",
            &[team.into(), member.into(), Arg::Int(now() as i64)],
        )?;
        Ok(())
    }

    pub fn remove_member(tx: &mut Tx<'_, '_>, team: &str, member: &str) -> Result<bool> {
        Ok(tx.exec(
            "DELETE FROM team_members WHERE team = ?1 AND member = ?2",
            &[team.into(), member.into()],
        )? == 1)
    }

    pub fn grant(
        tx: &mut Tx<'_, '_>,
        subject: &Subject,
        target: &Target,
        level: Level,
    ) -> Result<()> {
        let (subject, target) = (subject.to_string(), target.to_string());
        tx.exec(
            "INSERT INTO grants (subject, target, level, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (subject, target) DO UPDATE SET level = excluded.level",
            &[
                (&subject).into(),
                (&target).into(),
                level.as_str().into(),
                Arg::Int(now() as i64),
            ],
        )?;
        Ok(())
    }

    pub fn record(tx: &mut Tx<'_, '_>, actor: &str, from: &str, change: &str) -> Result<()> {
        tx.exec(
            "INSERT INTO audit_log (at, actor, origin, change) VALUES (?1, ?2, ?3, ?4)",
            &[
                Arg::Int(now() as i64),
                actor.into(),
                from.into(),
                change.into(),
            ],
        )?;
        Ok(())
    }

    pub fn revoke(tx: &mut Tx<'_, '_>, subject: &Subject, target: &Target) -> Result<bool> {
        let (subject, target) = (subject.to_string(), target.to_string());
        Ok(tx.exec(
            "DELETE FROM grants WHERE subject = ?1 AND target = ?2",
            &[(&subject).into(), (&target).into()],
        )? == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w<T: Send>(
        s: &AuthStore,
        f: impl FnMut(&mut Tx<'_, '_>) -> Result<T, StoreError> + Send,
    ) -> T {
        s.write(f).unwrap()
    }

    #[test]
    fn another_connection_sees_changes_within_recheck() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("auth.db");
        let server = AuthStore::open(&path).unwrap();
        assert!(!server.directory().unwrap().is_configured());
        // An admin command in another process opens its own store.
        let admin = AuthStore::open(&path).unwrap();
        w(&admin, |tx| {
            rows::insert_account(tx, "alice", AccountKind::User, Some("h"), false)
        });
        std::thread::sleep(RECHECK * 2);
        assert!(server.directory().unwrap().is_configured());
        // Its own writes too.
        w(&server, |tx| rows::delete_account(tx, "alice"));
        assert!(!server.directory().unwrap().is_configured());
    }

    #[test]
    fn deleting_an_organization_removes_what_it_owns() {
        let tmp = tempfile::tempdir().unwrap();
        let s = AuthStore::open(&tmp.path().join("auth.db")).unwrap();
        let team = Subject::parse("org/devs").unwrap();
        w(&s, |tx| {
            rows::insert_account(tx, "org", AccountKind::Organization, None, false)?;
            rows::insert_account(tx, "org+ci", AccountKind::Robot, Some("h"), false)?;
            rows::insert_account(tx, "org2", AccountKind::Organization, None, false)?;
            rows::insert_account(tx, "org2+ci", AccountKind::Robot, Some("h"), false)?;
            rows::insert_account(tx, "bob", AccountKind::User, Some("h"), false)?;
            rows::add_member(tx, "org/devs", "bob")?;
            rows::grant(tx, &team, &Target::parse("org").unwrap(), Level::Write)?;
            rows::grant(
                tx,
                &Subject::parse("bob").unwrap(),
                &Target::parse("org2/app").unwrap(),
                Level::Read,
            )?;
            rows::set_visibility(tx, "org/app", Visibility::Public)?;
            Ok(())
        });
        w(&s, |tx| rows::delete_account(tx, "org"));
        let d = s.directory().unwrap();
        assert!(d.account("org").is_none());
        assert!(d.account("org+ci").is_none());
        // A name that merely starts the same way is untouched.
        assert!(d.account("org2+ci").is_some());
        assert_eq!(d.grants(), vec![("bob", "org2/app", Level::Read)]);
        assert_eq!(d.visibility("org/app"), Visibility::Private);
        assert!(d.teams_of("org").next().is_none());
    }

    #[test]
    fn refresh_tokens_are_stored_hashed_and_expire() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("auth.db");
        let s = AuthStore::open(&path).unwrap();
        w(&s, |tx| {
            rows::insert_account(tx, "alice", AccountKind::User, Some("h"), false)
        });
        s.add_refresh_token("tok", "alice", now() + 60).unwrap();
        s.add_refresh_token("old", "alice", now() - 1).unwrap();
        assert_eq!(
            s.refresh_token_account("tok").unwrap().as_deref(),
            Some("alice")
        );
        assert_eq!(s.refresh_token_account("old").unwrap(), None);
        assert_eq!(s.refresh_token_account("nope").unwrap(), None);
        let conn = Connection::open(&path).unwrap();
        let stored: String = conn
            .query_row("SELECT token_hash FROM refresh_tokens", [], |r| r.get(0))
            .unwrap();
        assert_ne!(stored, "tok");
        // A new password ends it.
        w(&s, |tx| rows::set_password(tx, "alice", "h2"));
        assert_eq!(s.refresh_token_account("tok").unwrap(), None);
    }
}
