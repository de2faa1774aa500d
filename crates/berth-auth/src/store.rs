//! Access-control data in SQLite (`auth.db` in the registry's data folder).
//!
//! The server and `berth registry … --root` open the same file; SQLite's locking makes
//! that safe. The server keeps a [`Directory`] snapshot and asks SQLite's
//! `PRAGMA data_version`, which changes whenever another connection (in this process
//! or another) commits, whether the snapshot is still current. It asks at most once
//! per [`RECHECK`]: asking on every request cost 10–15% of the manifest GET rate (a
//! lock and a SQLite call per request), while a change made by another process now
//! applies within a millisecond, and one made through this store at once.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, TryLockError};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use sha2::{Digest as _, Sha256};

use crate::directory::{Account, AccountKind, Directory, Level, Visibility};
use crate::names::{Subject, Target};
use crate::now;
use crate::policy::{ImmutableTags, Retention};
use crate::replication::ReplicationRule;
use crate::trust::{Trust, TrustKeys};

const SCHEMA: &str = include_str!("schema.sql");
/// How long a snapshot is used without asking the database whether it changed.
pub const RECHECK: Duration = Duration::from_millis(1);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("access-control database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("access-control database lock poisoned by a panic")]
    Poisoned,
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl<T> From<PoisonError<T>> for StoreError {
    fn from(_: PoisonError<T>) -> StoreError {
        StoreError::Poisoned
    }
}

pub struct AuthStore {
    writer: Mutex<Connection>,
    /// A connection that only reads: its `data_version` moves when anyone else commits.
    watch: Mutex<Watch>,
    current: RwLock<Arc<Directory>>,
    /// When the database was last asked, in nanoseconds since `epoch`.
    checked_at: AtomicU64,
    /// Set by our own writes: the next question goes to the database.
    stale: AtomicBool,
    epoch: Instant,
}

struct Watch {
    conn: Connection,
    version: i64,
}

impl AuthStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<AuthStore, StoreError> {
        let writer = open_connection(path)?;
        writer.execute_batch(SCHEMA)?;
        let conn = open_connection(path)?;
        let version = data_version(&conn)?;
        let current = Arc::new(load(&conn)?);
        Ok(AuthStore {
            writer: Mutex::new(writer),
            watch: Mutex::new(Watch { conn, version }),
            current: RwLock::new(current),
            checked_at: AtomicU64::new(0),
            stale: AtomicBool::new(false),
            epoch: Instant::now(),
        })
    }

    /// The current snapshot, reloaded first if the database changed.
    pub fn directory(&self) -> Result<Arc<Directory>, StoreError> {
        let now = self.epoch.elapsed().as_nanos() as u64;
        let age = now.saturating_sub(self.checked_at.load(Ordering::Acquire));
        if age < RECHECK.as_nanos() as u64 && !self.stale.load(Ordering::Acquire) {
            return Ok(self.current.read()?.clone());
        }
        let mut w = match self.watch.try_lock() {
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
        self.checked_at.store(now, Ordering::Release);
        Ok(self.current.read()?.clone())
    }

    /// Runs `f` in one write transaction; an error from `f` rolls everything back.
    pub(crate) fn write<T, E>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let mut conn = self.writer.lock().map_err(StoreError::from)?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let out = f(&tx)?;
        tx.commit().map_err(StoreError::from)?;
        // Our own change applies to the very next question.
        self.stale.store(true, Ordering::Release);
        Ok(out)
    }

    /// Remembers a refresh token for `account` until `expires_at`.
    pub fn add_refresh_token(
        &self,
        token: &str,
        account: &str,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        self.write(|tx| -> Result<(), StoreError> {
            tx.execute(
                "DELETE FROM refresh_tokens WHERE expires_at < ?1",
                params![now() as i64],
            )?;
            tx.execute(
                "INSERT INTO refresh_tokens (token_hash, account, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![token_hash(token), account, now() as i64, expires_at as i64],
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
            let n = tx.execute(
                "UPDATE accounts SET password_hash = ?3 WHERE name = ?1 AND password_hash = ?2",
                params![name, old, new],
            )?;
            Ok(n == 1)
        })
    }

    /// The latest `limit` permission changes, newest first.
    pub fn audit_trail(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let w = self.watch.lock()?;
        let mut st = w
            .conn
            .prepare("SELECT at, actor, origin, change FROM audit_log ORDER BY id DESC LIMIT ?1")?;
        let rows = st.query_map(params![limit as i64], |r| {
            Ok(AuditEntry {
                at: r.get(0)?,
                actor: r.get(1)?,
                from: r.get(2)?,
                change: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The account a live refresh token belongs to.
    pub fn refresh_token_account(&self, token: &str) -> Result<Option<String>, StoreError> {
        let w = self.watch.lock()?;
        Ok(w.conn
            .query_row(
                "SELECT account FROM refresh_tokens WHERE token_hash = ?1 AND expires_at > ?2",
                params![token_hash(token), now() as i64],
                |r| r.get(0),
            )
            .optional()?)
    }
}

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
    let conn = Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA busy_timeout = 10000;",
    )?;
    Ok(conn)
}

fn data_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0))
}

/// Reads every table into a snapshot, in one read transaction.
fn load(conn: &Connection) -> Result<Directory, StoreError> {
    let tx = conn.unchecked_transaction()?;
    let d = read_all(&tx)?;
    tx.finish()?;
    Ok(d)
}

/// Every table into a snapshot, within the caller's transaction.
pub(crate) fn read_all(tx: &Connection) -> Result<Directory, StoreError> {
    let mut d = Directory::default();
    {
        let mut st = tx.prepare(
            "SELECT name, kind, password_hash, superuser, default_visibility FROM accounts",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, bool>(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })?;
        for row in rows {
            let (name, kind, password_hash, superuser, vis) = row?;
            let Some(kind) = AccountKind::from_db(&kind) else {
                continue;
            };
            d.accounts.insert(
                name,
                Account {
                    kind,
                    password_hash,
                    superuser,
                    default_visibility: vis.and_then(|v| v.parse().ok()),
                },
            );
        }
        let mut st = tx.prepare("SELECT team, member FROM team_members ORDER BY team, member")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        for row in rows {
            let (team, member) = row?;
            d.memberships
                .entry(member.clone())
                .or_default()
                .push(team.clone());
            d.teams.entry(team).or_default().push(member);
        }
        let mut st = tx.prepare("SELECT subject, target, level FROM grants")?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        for row in rows {
            let (subject, target, level) = row?;
            if let Ok(level) = level.parse::<Level>() {
                d.grants.entry(subject).or_default().push((target, level));
            }
        }
        let mut st = tx.prepare("SELECT repository, visibility FROM repository_visibility")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        for row in rows {
            let (repo, vis) = row?;
            if let Ok(v) = vis.parse::<Visibility>() {
                d.visibility.insert(repo, v);
            }
        }
        let mut st =
            tx.prepare("SELECT target, required, gpg_keys, sigstore_keys FROM trust_settings")?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, bool>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        for row in rows {
            let (target, required, gpg, sigstore) = row?;
            d.trust.insert(
                target.clone(),
                Arc::new(stored_trust(&target, required, &gpg, &sigstore)),
            );
        }
        let mut st = tx.prepare("SELECT target, patterns FROM immutable_tags")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        for row in rows {
            let (target, patterns) = row?;
            // Patterns were checked when set; kept as stored (an unreadable list
            // protects nothing, which only an admin's new setting can fix).
            let patterns = serde_json::from_str::<Vec<String>>(&patterns).unwrap_or_default();
            d.immutable
                .insert(target.clone(), Arc::new(ImmutableTags { target, patterns }));
        }
        let mut st = tx.prepare("SELECT target, rule FROM retention")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        for row in rows {
            let (target, rule) = row?;
            // Checked when set; an unreadable rule deletes nothing (none is loaded).
            if let Ok(mut rule) = serde_json::from_str::<Retention>(&rule) {
                rule.target = target.clone();
                d.retention.insert(target, Arc::new(rule));
            }
        }
        let mut st = tx.prepare("SELECT rule FROM replication_rules ORDER BY name")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        for row in rows {
            // Checked when set; an unreadable rule copies nothing.
            if let Ok(rule) = serde_json::from_str::<ReplicationRule>(&row?) {
                d.replication.push(Arc::new(rule));
            }
        }
        let mut st = tx.prepare("SELECT namespace, bytes FROM quotas")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (ns, bytes) = row?;
            d.quotas.insert(ns, bytes.max(0) as u64);
        }
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

/// The row-level changes; callers (see `admin.rs`) have checked names and rights.
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
        let w = self.watch.lock()?;
        let mut st = w.conn.prepare(
            "SELECT substr(token_hash, 1, 16), account, created_at, expires_at FROM refresh_tokens
             WHERE expires_at > ?1 AND (?2 IS NULL OR account = ?2)
             ORDER BY created_at DESC, token_hash",
        )?;
        let rows = st.query_map(params![now() as i64, account], |r| {
            Ok(RefreshTokenInfo {
                id: r.get(0)?,
                account: r.get(1)?,
                created_at: r.get(2)?,
                expires_at: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

pub(crate) mod rows {
    use super::*;

    pub fn insert_account(
        tx: &rusqlite::Transaction,
        name: &str,
        kind: AccountKind,
        password_hash: Option<&str>,
        superuser: bool,
    ) -> rusqlite::Result<bool> {
        let n = tx.execute(
            "INSERT INTO accounts (name, kind, password_hash, superuser, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (name) DO NOTHING",
            params![name, kind.as_str(), password_hash, superuser, now() as i64],
        )?;
        Ok(n == 1)
    }

    pub fn set_password(
        tx: &rusqlite::Transaction,
        name: &str,
        hash: &str,
    ) -> rusqlite::Result<()> {
        tx.execute(
            "UPDATE accounts SET password_hash = ?2 WHERE name = ?1",
            params![name, hash],
        )?;
        // A new password ends the sessions kept alive by refresh tokens.
        tx.execute(
            "DELETE FROM refresh_tokens WHERE account = ?1",
            params![name],
        )?;
        Ok(())
    }

    /// Removes an account and everything that names it: memberships, grants to it,
    /// and for a namespace owner its robots, teams, grants and visibility settings.
    /// Removes `account`'s refresh tokens (those whose hash starts with `id`, when
    /// given: lowercase hex); how many went.
    pub fn revoke_refresh_tokens(
        tx: &rusqlite::Transaction,
        account: &str,
        id: Option<&str>,
    ) -> rusqlite::Result<usize> {
        match id {
            Some(id) => tx.execute(
                "DELETE FROM refresh_tokens WHERE account = ?1 AND substr(token_hash, 1, ?3) = ?2",
                params![account, id, id.len() as i64],
            ),
            None => tx.execute(
                "DELETE FROM refresh_tokens WHERE account = ?1",
                params![account],
            ),
        }
    }

    pub fn delete_account(tx: &rusqlite::Transaction, name: &str) -> rusqlite::Result<bool> {
        let robots = format!("{name}+");
        let inside = format!("{name}/");
        let len = inside.len() as i64;
        tx.execute(
            "DELETE FROM grants WHERE subject = ?1 OR target = ?1
                OR substr(subject, 1, ?3) IN (?2, ?4) OR substr(target, 1, ?3) = ?2",
            params![name, inside, len, robots],
        )?;
        tx.execute(
            "DELETE FROM team_members WHERE substr(team, 1, ?2) = ?1",
            params![inside, len],
        )?;
        tx.execute(
            "DELETE FROM repository_visibility WHERE substr(repository, 1, ?2) = ?1",
            params![inside, len],
        )?;
        tx.execute(
            "DELETE FROM trust_settings WHERE target = ?1 OR substr(target, 1, ?3) = ?2",
            params![name, inside, len],
        )?;
        tx.execute(
            "DELETE FROM immutable_tags WHERE target = ?1 OR substr(target, 1, ?3) = ?2",
            params![name, inside, len],
        )?;
        tx.execute(
            "DELETE FROM retention WHERE target = ?1 OR substr(target, 1, ?3) = ?2",
            params![name, inside, len],
        )?;
        tx.execute("DELETE FROM quotas WHERE namespace = ?1", params![name])?;
        tx.execute(
            "DELETE FROM accounts WHERE substr(name, 1, ?2) = ?1",
            params![robots, len],
        )?;
        Ok(tx.execute("DELETE FROM accounts WHERE name = ?1", params![name])? == 1)
    }

    pub fn set_default_visibility(
        tx: &rusqlite::Transaction,
        ns: &str,
        v: Visibility,
    ) -> rusqlite::Result<()> {
        tx.execute(
            "UPDATE accounts SET default_visibility = ?2 WHERE name = ?1",
            params![ns, v.as_str()],
        )?;
        Ok(())
    }

    pub fn set_visibility(
        tx: &rusqlite::Transaction,
        repo: &str,
        v: Visibility,
    ) -> rusqlite::Result<()> {
        tx.execute(
            "INSERT INTO repository_visibility (repository, visibility, created_at)
             VALUES (?1, ?2, ?3)
             ON CONFLICT (repository) DO UPDATE SET visibility = excluded.visibility",
            params![repo, v.as_str(), now() as i64],
        )?;
        Ok(())
    }

    pub fn set_trust(
        tx: &rusqlite::Transaction,
        target: &str,
        required: bool,
        keys: &TrustKeys,
    ) -> rusqlite::Result<()> {
        let json = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
        tx.execute(
            "INSERT INTO trust_settings (target, required, gpg_keys, sigstore_keys, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (target) DO UPDATE SET required = excluded.required,
                gpg_keys = excluded.gpg_keys, sigstore_keys = excluded.sigstore_keys",
            params![
                target,
                required,
                json(&keys.gpg_keys),
                json(&keys.sigstore_keys),
                now() as i64
            ],
        )?;
        Ok(())
    }

    pub fn unset_trust(tx: &rusqlite::Transaction, target: &str) -> rusqlite::Result<bool> {
        Ok(tx.execute(
            "DELETE FROM trust_settings WHERE target = ?1",
            params![target],
        )? == 1)
    }

    pub fn set_immutable(
        tx: &rusqlite::Transaction,
        target: &str,
        patterns: &[String],
    ) -> rusqlite::Result<()> {
        let json = serde_json::to_string(patterns).unwrap_or_else(|_| "[]".into());
        tx.execute(
            "INSERT INTO immutable_tags (target, patterns, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (target) DO UPDATE SET patterns = excluded.patterns",
            params![target, json, now() as i64],
        )?;
        Ok(())
    }

    pub fn unset_immutable(tx: &rusqlite::Transaction, target: &str) -> rusqlite::Result<bool> {
        Ok(tx.execute(
            "DELETE FROM immutable_tags WHERE target = ?1",
            params![target],
        )? == 1)
    }

    pub fn set_retention(tx: &rusqlite::Transaction, rule: &Retention) -> rusqlite::Result<()> {
        let json = serde_json::to_string(rule).unwrap_or_else(|_| "{}".into());
        tx.execute(
            "INSERT INTO retention (target, rule, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (target) DO UPDATE SET rule = excluded.rule",
            params![rule.target, json, now() as i64],
        )?;
        Ok(())
    }

    pub fn unset_retention(tx: &rusqlite::Transaction, target: &str) -> rusqlite::Result<bool> {
        Ok(tx.execute("DELETE FROM retention WHERE target = ?1", params![target])? == 1)
    }

    pub fn set_replication(
        tx: &rusqlite::Transaction,
        rule: &ReplicationRule,
    ) -> rusqlite::Result<()> {
        let json = serde_json::to_string(rule).unwrap_or_else(|_| "{}".into());
        tx.execute(
            "INSERT INTO replication_rules (name, rule, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET rule = excluded.rule",
            params![rule.name, json, now() as i64],
        )?;
        Ok(())
    }

    pub fn unset_replication(tx: &rusqlite::Transaction, name: &str) -> rusqlite::Result<bool> {
        Ok(tx.execute(
            "DELETE FROM replication_rules WHERE name = ?1",
            params![name],
        )? == 1)
    }

    pub fn set_quota(tx: &rusqlite::Transaction, ns: &str, bytes: u64) -> rusqlite::Result<()> {
        tx.execute(
            "INSERT INTO quotas (namespace, bytes, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (namespace) DO UPDATE SET bytes = excluded.bytes",
            params![ns, bytes.min(i64::MAX as u64) as i64, now() as i64],
        )?;
        Ok(())
    }

    pub fn unset_quota(tx: &rusqlite::Transaction, ns: &str) -> rusqlite::Result<bool> {
        Ok(tx.execute("DELETE FROM quotas WHERE namespace = ?1", params![ns])? == 1)
    }

    pub fn add_member(
        tx: &rusqlite::Transaction,
        team: &str,
        member: &str,
    ) -> rusqlite::Result<()> {
        tx.execute(
            "INSERT INTO team_members (team, member, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (team, member) DO NOTHING",
            params![team, member, now() as i64],
        )?;
        Ok(())
    }

    pub fn remove_member(
        tx: &rusqlite::Transaction,
        team: &str,
        member: &str,
    ) -> rusqlite::Result<bool> {
        Ok(tx.execute(
            "DELETE FROM team_members WHERE team = ?1 AND member = ?2",
            params![team, member],
        )? == 1)
    }

    pub fn grant(
        tx: &rusqlite::Transaction,
        subject: &Subject,
        target: &Target,
        level: Level,
    ) -> rusqlite::Result<()> {
        tx.execute(
            "INSERT INTO grants (subject, target, level, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (subject, target) DO UPDATE SET level = excluded.level",
            params![
                subject.to_string(),
                target.to_string(),
                level.as_str(),
                now() as i64
            ],
        )?;
        Ok(())
    }

    pub fn record(
        tx: &rusqlite::Transaction,
        actor: &str,
        from: &str,
        change: &str,
    ) -> rusqlite::Result<()> {
        tx.execute(
            "INSERT INTO audit_log (at, actor, origin, change) VALUES (?1, ?2, ?3, ?4)",
            params![now() as i64, actor, from, change],
        )?;
        Ok(())
    }

    pub fn revoke(
        tx: &rusqlite::Transaction,
        subject: &Subject,
        target: &Target,
    ) -> rusqlite::Result<bool> {
        Ok(tx.execute(
            "DELETE FROM grants WHERE subject = ?1 AND target = ?2",
            params![subject.to_string(), target.to_string()],
        )? == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w<T>(s: &AuthStore, f: impl FnOnce(&rusqlite::Transaction) -> rusqlite::Result<T>) -> T {
        s.write(|tx| f(tx).map_err(StoreError::from)).unwrap()
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
