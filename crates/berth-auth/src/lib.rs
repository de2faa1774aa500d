//! Who may do what in a berth registry.
//!
//! - [`names`]: the grammar of users, organizations, teams, robots and grant targets.
//! - [`directory`]: an in-memory snapshot of accounts, teams, grants and visibility, and
//!   the pure rules deciding a caller's level on a repository.
//! - [`store`]: that data in SQLite (`auth.db`), shared by the server and admin commands.
//! - [`admin`]: every change as one checked, audited [`admin::Change`].
//! - [`password`]: argon2id hashes, bcrypt (htpasswd) verification, secrets.
//! - [`token`]: ES256 bearer tokens as the Docker token specification describes them.
//! - [`api`]: the `/api/v1/` paths of each change, shared by server and client.
//! - [`trust`]: content trust settings (signatures required, trusted keys).
//! - [`policy`]: immutable tags, retention and quotas.
//!
//! [`Auth`] puts them together for a server. A registry with no accounts, grants or
//! visibility settings is open (as docker-registry is out of the box) unless
//! [`Mode::Required`]; as soon as one exists every rule applies.

pub mod admin;
pub mod api;
pub mod directory;
pub mod limits;
pub mod names;
pub mod password;
pub mod policy;
pub mod replication;
mod sql;
pub mod store;
pub mod token;
pub mod trust;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest as _, Sha256};

pub use admin::{Actor, AdminError, Change, Outcome, Secret};
pub use directory::{AccountKind, Directory, Level, Principal, Visibility};
pub use limits::{Limits, LimitsConfig, Lockout};
pub use policy::{ImmutableRules, ImmutableTags, PolicyError, Retention};
pub use replication::{ReplicationError, ReplicationRule};
pub use store::{AuthStore, RefreshTokenInfo, StoreError};
pub use token::{Action, Claims, ResourceActions, TokenError, Tokens};
pub use trust::{Trust, TrustError, TrustKeys};

/// Successful password checks remembered at most, and for how long. Basic
/// authentication sends the password with every request; argon2 takes tens of
/// milliseconds by design.
const PASSWORD_CACHE_CAPACITY: usize = 10_000;
const PASSWORD_CACHE_TTL: u64 = 300;

/// Now, in unix seconds.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// When access control applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Open while no user exists, enforced from the first user on.
    Auto,
    /// Always enforced; with no users only public repositories can be pulled.
    Required,
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub mode: Mode,
    /// The `service` of challenges and the `aud` of tokens.
    pub service: String,
    pub token_lifetime: Duration,
    pub refresh_lifetime: Duration,
    /// Lockouts after failed logins, and the token request rate.
    pub limits: LimitsConfig,
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            mode: Mode::Auto,
            service: "berth".into(),
            token_lifetime: Duration::from_secs(300),
            refresh_lifetime: Duration::from_secs(30 * 24 * 3600),
            limits: LimitsConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Token(#[from] TokenError),
}

/// Access control for one running registry.
pub struct Auth {
    store: AuthStore,
    tokens: Tokens,
    config: AuthConfig,
    /// sha256(user, password, stored hash) -> expiry of a successful check.
    verified: Mutex<HashMap<[u8; 32], u64>>,
    limits: Limits,
}

/// The folder under a registry's root that holds `auth.db` and the token key.
pub fn auth_dir(root: &Path) -> std::path::PathBuf {
    root.join("auth")
}

/// Opens the access-control store of the registry at `root`, for admin commands.
pub fn open_store(root: &Path) -> Result<AuthStore, StoreError> {
    let dir = auth_dir(root);
    std::fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    AuthStore::open(&dir.join("auth.db"))
}

/// What [`adopt_folder_directory`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adopted {
    /// No `auth.db` with anything in it under the root.
    Nothing,
    /// The shared directory was empty: the folder's rows were copied into it.
    Copied(usize),
    /// The shared directory has its own accounts: the folder's `auth.db` is not used.
    Ignored,
}

/// A registry that kept its directory in `<root>/auth/auth.db` (before the directory
/// moved to PostgreSQL with the metadata) must not come up open on an empty shared
/// directory: while the shared one is empty, the folder's is copied into it (once, by
/// whichever replica starts first; `copy_into` keeps rows already there).
pub fn adopt_folder_directory(shared: &AuthStore, root: &Path) -> Result<Adopted, StoreError> {
    let file = auth_dir(root).join("auth.db");
    if !shared.is_shared() || !file.exists() {
        return Ok(Adopted::Nothing);
    }
    let local = AuthStore::open(&file)?;
    if !local.directory()?.is_configured() {
        return Ok(Adopted::Nothing);
    }
    if shared.directory()?.is_configured() {
        return Ok(Adopted::Ignored);
    }
    Ok(Adopted::Copied(local.copy_into(shared)?))
}

impl Auth {
    /// Access control from the registry's data folder (`auth/auth.db`, the token key
    /// beside it).
    pub fn open(root: &Path, config: AuthConfig) -> Result<Auth, AuthError> {
        Auth::with_store(open_store(root)?, root, config)
    }

    /// Access control from `store`; the token key is the store's when it is shared by
    /// replicas (PostgreSQL), else the file under `root`.
    pub fn with_store(
        store: AuthStore,
        root: &Path,
        config: AuthConfig,
    ) -> Result<Auth, AuthError> {
        // Shared by replicas: the folder's key when it has one (tokens it issued stay
        // valid), else a new one.
        let file = auth_dir(root).join("token-key.pem");
        let shared = store.shared_token_key(|| match std::fs::read_to_string(&file) {
            Ok(pem) => Ok(pem),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                token::new_key_pem().map_err(|source| StoreError::Io {
                    path: "a new token signing key".into(),
                    source,
                })
            }
            Err(source) => Err(StoreError::Io {
                path: file.display().to_string(),
                source,
            }),
        })?;
        let tokens = match shared {
            Some(pem) => Tokens::from_pem(
                &pem,
                "the token key in PostgreSQL",
                &config.service,
                config.token_lifetime,
            )?,
            None => Tokens::load_or_create(&file, &config.service, config.token_lifetime)?,
        };
        Ok(Auth {
            store,
            tokens,
            limits: Limits::new(config.limits.clone()),
            config,
            verified: Mutex::new(HashMap::new()),
        })
    }

    pub fn store(&self) -> &AuthStore {
        &self.store
    }

    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    /// Lockouts after failed logins, and the token request rate.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// The current directory, and whether its rules apply.
    pub fn directory(&self) -> Result<(Arc<Directory>, bool), StoreError> {
        let dir = self.store.directory()?;
        let enforced = self.config.mode == Mode::Required || dir.is_configured();
        Ok((dir, enforced))
    }

    /// Checks a user's or robot's password. A wrong password and an unknown account
    /// take the same time and give the same answer.
    ///
    /// A refusal never comes sooner than one argon2id verification
    /// ([`password::refusal_floor`]), whatever the account's hash; a bcrypt hash
    /// (imported from htpasswd) is replaced by argon2id at the first successful login.
    pub fn authenticate(&self, dir: &Directory, name: &str, password: &str) -> Option<Principal> {
        let started = std::time::Instant::now();
        let refuse = || {
            let floor = password::refusal_floor();
            if let Some(rest) = floor.checked_sub(started.elapsed()) {
                std::thread::sleep(rest);
            }
            None
        };
        let Some(hash) = dir
            .account(name)
            .filter(|a| a.kind != AccountKind::Organization)
            .and_then(|a| a.password_hash.as_deref())
        else {
            password::verify_nothing(password);
            return refuse();
        };
        let key: [u8; 32] = Sha256::new()
            .chain_update(name.as_bytes())
            .chain_update([0])
            .chain_update(password.as_bytes())
            .chain_update([0])
            .chain_update(hash.as_bytes())
            .finalize()
            .into();
        let now = now();
        if let Ok(cache) = self.verified.lock() {
            if cache.get(&key).is_some_and(|exp| *exp > now) {
                return Some(Principal::Account(name.to_string()));
            }
        }
        if !password::verify(password, hash) {
            return refuse();
        }
        if password::needs_rehash(hash) {
            self.rehash(name, password, hash);
        }
        if let Ok(mut cache) = self.verified.lock() {
            if cache.len() >= PASSWORD_CACHE_CAPACITY {
                cache.retain(|_, exp| *exp > now);
                if cache.len() >= PASSWORD_CACHE_CAPACITY {
                    cache.clear();
                }
            }
            cache.insert(key, now + PASSWORD_CACHE_TTL);
        }
        Some(Principal::Account(name.to_string()))
    }

    /// Stores `password` hashed with argon2id in place of `old`. A failure costs
    /// nothing but the upgrade: the login it follows has succeeded, and the next one
    /// tries again.
    fn rehash(&self, name: &str, password: &str, old: &str) {
        let result = password::hash(password)
            .map_err(|e| e.to_string())
            .and_then(|new| {
                self.store
                    .rehash_password(name, old, &new)
                    .map_err(|e| e.to_string())
            });
        match result {
            Ok(true) => tracing::info!(account = name, "password hash upgraded to argon2id"),
            Ok(false) => {}
            Err(e) => tracing::warn!(account = name, error = %e, "upgrading a password hash"),
        }
    }

    /// A new refresh token (an OAuth2 `refresh_token`) for `name`.
    pub fn new_refresh_token(&self, name: &str) -> Result<String, StoreError> {
        let token = password::new_secret();
        let expires = now() + self.config.refresh_lifetime.as_secs();
        self.store.add_refresh_token(&token, name, expires)?;
        Ok(token)
    }

    /// The account a refresh token was issued to, while it lives.
    pub fn refresh(&self, token: &str) -> Result<Option<Principal>, StoreError> {
        Ok(self
            .store
            .refresh_token_account(token)?
            .map(Principal::Account))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_password_and_unknown_user_look_alike() {
        let tmp = tempfile::tempdir().unwrap();
        let auth = Auth::open(tmp.path(), AuthConfig::default()).unwrap();
        auth.store()
            .apply(
                &Actor::local(),
                &Change::UserAdd {
                    name: "alice".into(),
                    password: Secret("pw".into()),
                    superuser: false,
                },
            )
            .unwrap();
        let (dir, enforced) = auth.directory().unwrap();
        assert!(enforced);
        assert_eq!(
            auth.authenticate(&dir, "alice", "pw"),
            Some(Principal::Account("alice".into()))
        );
        // Cached now; the cache does not make a wrong password right.
        assert!(auth.authenticate(&dir, "alice", "pw").is_some());
        assert_eq!(auth.authenticate(&dir, "alice", "PW"), None);
        assert_eq!(auth.authenticate(&dir, "nobody", "pw"), None);
    }

    /// docker-registry's htpasswd line for testuser:testpass (bcrypt cost 5: a
    /// millisecond or so, where argon2id takes tens).
    const HTPASSWD: &str =
        "testuser:$2y$05$GJiQmYRK9Q3VjcWg2OCIqulW2UER/ljCldo0ZWAkgagCBaC1X03Ma\n";

    fn htpasswd_auth(tmp: &std::path::Path) -> Auth {
        let auth = Auth::open(tmp, AuthConfig::default()).unwrap();
        let users = password::parse_htpasswd(HTPASSWD)
            .unwrap()
            .into_iter()
            .map(|(u, h)| (u, Secret(h)))
            .collect();
        auth.store()
            .apply(&Actor::local(), &Change::UserImport { users })
            .unwrap();
        auth
    }

    fn stored_hash(auth: &Auth, name: &str) -> String {
        let (dir, _) = auth.directory().unwrap();
        dir.account(name).unwrap().password_hash.clone().unwrap()
    }

    #[test]
    fn a_refusal_never_comes_sooner_than_an_argon2_verification() {
        let tmp = tempfile::tempdir().unwrap();
        let auth = htpasswd_auth(tmp.path());
        let (dir, _) = auth.directory().unwrap();
        let floor = password::refusal_floor();
        assert!(stored_hash(&auth, "testuser").starts_with("$2y$"));
        for (name, pw) in [("testuser", "wrong"), ("nobody", "testpass")] {
            let start = std::time::Instant::now();
            assert_eq!(auth.authenticate(&dir, name, pw), None);
            let took = start.elapsed();
            assert!(
                took >= floor,
                "{name}: refused in {took:?}, floor {floor:?}"
            );
        }
        // The wrong password did not upgrade anything.
        assert!(stored_hash(&auth, "testuser").starts_with("$2y$"));
    }

    #[test]
    fn bcrypt_becomes_argon2id_at_the_first_login_and_sessions_go_on() {
        let tmp = tempfile::tempdir().unwrap();
        let auth = htpasswd_auth(tmp.path());
        let refresh = auth.new_refresh_token("testuser").unwrap();
        let (dir, _) = auth.directory().unwrap();
        assert!(auth.authenticate(&dir, "testuser", "testpass").is_some());
        let upgraded = stored_hash(&auth, "testuser");
        assert!(upgraded.starts_with("$argon2id$"), "{upgraded}");
        assert!(password::verify("testpass", &upgraded));
        let (dir, _) = auth.directory().unwrap();
        assert!(auth.authenticate(&dir, "testuser", "testpass").is_some());
        assert_eq!(auth.authenticate(&dir, "testuser", "wrong"), None);
        // A rehash is not a password change: the refresh token still works.
        assert_eq!(
            auth.refresh(&refresh).unwrap(),
            Some(Principal::Account("testuser".into()))
        );
        // The same hash again (another replica upgraded it first): nothing changes.
        assert!(!auth
            .store()
            .rehash_password("testuser", "$2y$05$old", "$argon2id$x")
            .unwrap());
        assert_eq!(stored_hash(&auth, "testuser"), upgraded);
    }

    #[test]
    fn refresh_tokens_are_listed_by_id_and_revoked_by_their_owner_or_a_superuser() {
        let tmp = tempfile::tempdir().unwrap();
        let auth = Auth::open(tmp.path(), AuthConfig::default()).unwrap();
        for (name, superuser) in [("alice", false), ("bob", false), ("root", true)] {
            auth.store()
                .apply(
                    &Actor::local(),
                    &Change::UserAdd {
                        name: name.into(),
                        password: Secret("pw".into()),
                        superuser,
                    },
                )
                .unwrap();
        }
        let a1 = auth.new_refresh_token("alice").unwrap();
        let a2 = auth.new_refresh_token("alice").unwrap();
        let b1 = auth.new_refresh_token("bob").unwrap();
        let listed = auth.store().refresh_tokens(Some("alice")).unwrap();
        assert_eq!(listed.len(), 2);
        assert!(listed
            .iter()
            .all(|t| t.account == "alice" && t.id.len() == 16));
        // The id is not the token, nor a way to one.
        assert!(listed
            .iter()
            .all(|t| !a1.contains(&t.id) && !a2.contains(&t.id)));
        assert_eq!(auth.store().refresh_tokens(None).unwrap().len(), 3);
        let actor = |name: &str| Actor {
            principal: Principal::Account(name.into()),
            local: false,
            from: "127.0.0.1".into(),
        };
        // The listed id of a1 is the start of its hash.
        let a1_hash: String = Sha256::digest(a1.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let a1_id = listed
            .iter()
            .map(|t| t.id.clone())
            .find(|id| a1_hash.starts_with(id.as_str()))
            .unwrap();
        // Bob may not end Alice's sessions.
        let revoke_a1 = Change::TokenRevoke {
            account: "alice".into(),
            id: Some(a1_id[..8].to_ascii_uppercase()),
        };
        assert!(matches!(
            auth.store().apply(&actor("bob"), &revoke_a1),
            Err(AdminError::Denied(_))
        ));
        // Alice may, by a prefix of the id in any case; only that session ends.
        auth.store().apply(&actor("alice"), &revoke_a1).unwrap();
        assert_eq!(auth.refresh(&a1).unwrap(), None);
        assert!(auth.refresh(&a2).unwrap().is_some());
        assert!(matches!(
            auth.store().apply(&actor("alice"), &revoke_a1),
            Err(AdminError::NotFound(_))
        ));
        // A superuser ends all of Bob's; a malformed id is refused.
        auth.store()
            .apply(
                &actor("root"),
                &Change::TokenRevoke {
                    account: "bob".into(),
                    id: None,
                },
            )
            .unwrap();
        assert_eq!(auth.refresh(&b1).unwrap(), None);
        assert!(matches!(
            auth.store().apply(
                &actor("root"),
                &Change::TokenRevoke {
                    account: "alice".into(),
                    id: Some("xyz'--".into()),
                }
            ),
            Err(AdminError::Invalid(_))
        ));
        let trail = auth.store().audit_trail(10).unwrap();
        assert!(trail
            .iter()
            .any(|e| e.change == "revoke every refresh token of bob"));
    }

    #[test]
    fn open_until_the_first_user_unless_required() {
        let tmp = tempfile::tempdir().unwrap();
        let auth = Auth::open(tmp.path(), AuthConfig::default()).unwrap();
        assert!(!auth.directory().unwrap().1);
        let required = Auth::open(
            tmp.path(),
            AuthConfig {
                mode: Mode::Required,
                ..AuthConfig::default()
            },
        )
        .unwrap();
        assert!(required.directory().unwrap().1);
    }
}
