//! Registry credentials in `auth.json` and docker's config files, found and rewritten as
//! containers/image does (`pkg/docker/config`), so podman, skopeo, buildah and berth log
//! in once for all of them.
//!
//! Reading walks a chain of files (see [`AuthFiles::new`]); in each file a `credHelpers`
//! entry for the host wins, then the most specific `auths` key (`host/ns/repo` before
//! `host/ns` before `host`), then old-style keys such as `https://index.docker.io/v1/`.
//! Writing (`login`/`logout`) only ever touches the first file of the chain, the primary.

mod file;
mod helper;

use std::fmt;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use berth_image::ImageReference;

pub use file::{AuthConfigFile, AuthEntry};
pub use helper::CredentialHelpers;

use crate::env::Env;

/// The `credential-helpers` name (registries.conf) that stands for the auth files.
pub const AUTH_FILE_HELPER: &str = "containers-auth.json";

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid credentials file: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: the \"auth\" value of {key:?} is not valid base64: {source}")]
    Base64 {
        path: PathBuf,
        key: String,
        source: base64::DecodeError,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid credentials key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    #[error("not logged into {key}")]
    NotLoggedIn { key: String },
    #[error("{dir:?} set by $XDG_RUNTIME_DIR does not exist; create it or unset XDG_RUNTIME_DIR")]
    RuntimeDirMissing { dir: PathBuf },
    #[error("credential helper docker-credential-{helper} not found on PATH")]
    HelperNotFound { helper: String },
    #[error("credential helper docker-credential-{helper} failed for {registry}: {message}")]
    Helper {
        helper: String,
        registry: String,
        message: String,
    },
    #[error("credential helper docker-credential-{helper} keeps whole registries, not {key:?}")]
    NamespacedHelper { helper: String, key: String },
}

/// A user name and password (or an identity token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// An OAuth2 refresh token, used instead of the password when present.
    pub identity_token: Option<String>,
}

impl fmt::Debug for Credentials {
    /// Never prints secrets: debug output ends up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field(
                "identity_token",
                &self.identity_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// What a file says about a key, before any helper runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Credentials stored in the file under `key`.
    Credentials {
        credentials: Credentials,
        file: PathBuf,
        key: String,
    },
    /// `credHelpers` sends this registry to `docker-credential-<helper>`.
    Helper {
        helper: String,
        registry: String,
        file: PathBuf,
    },
}

/// Where `login` put the credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    File(PathBuf),
    /// The primary file's `credHelpers` names a helper for this host, so (as podman
    /// does) the helper got them and the file was left alone.
    Helper(String),
}

/// One file of the lookup chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthPath {
    pub path: PathBuf,
    /// `~/.dockercfg`: the whole file is the `auths` map, keys are hosts or URLs.
    pub legacy: bool,
}

/// The credential files of one user, in lookup order, and the helpers they may name.
#[derive(Debug, Clone)]
pub struct AuthFiles {
    chain: Vec<AuthPath>,
    /// Where writes go; an error when `$XDG_RUNTIME_DIR` names a missing directory.
    primary: Result<PathBuf, PathBuf>,
    helpers: CredentialHelpers,
}

impl AuthFiles {
    /// The chain containers/image reads (`getAuthFilePaths`):
    ///
    /// 1. the primary file: `explicit` (`--authfile`), else `$REGISTRY_AUTH_FILE`, else
    ///    `$XDG_RUNTIME_DIR/containers/auth.json`, else `/run/containers/<uid>/auth.json`;
    /// 2. `${XDG_CONFIG_HOME:-~/.config}/containers/auth.json`;
    /// 3. `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`;
    /// 4. `~/.dockercfg` (legacy format).
    ///
    /// A file the user named (`explicit` or `$REGISTRY_AUTH_FILE`) is the only one read:
    /// asking for a file means asking not to pick up credentials from elsewhere.
    /// A `$XDG_RUNTIME_DIR` that does not exist drops the primary file from reads (public
    /// images still pull) and makes writes fail with [`AuthError::RuntimeDirMissing`].
    pub fn new(env: &Env, explicit: Option<&Path>) -> AuthFiles {
        let helpers = CredentialHelpers::new(env.path.clone());
        let current = |path: PathBuf| AuthPath {
            path,
            legacy: false,
        };
        if let Some(p) = explicit
            .map(Path::to_path_buf)
            .or(env.registry_auth_file.clone())
        {
            return AuthFiles {
                chain: vec![current(p.clone())],
                primary: Ok(p),
                helpers,
            };
        }
        let primary = match &env.xdg_runtime_dir {
            Some(dir) if !dir.exists() => Err(dir.clone()),
            Some(dir) => Ok(dir.join("containers/auth.json")),
            None => Ok(env.system_path(&format!("/run/containers/{}/auth.json", env.uid))),
        };
        let mut chain: Vec<AuthPath> = primary.iter().cloned().map(current).collect();
        let config_home = env.xdg_config_home.clone().or(env.home_path(".config"));
        chain.extend(config_home.map(|d| current(d.join("containers/auth.json"))));
        let docker = match &env.docker_config {
            Some(d) => Some(d.join("config.json")),
            None => env.home_path(".docker/config.json"),
        };
        chain.extend(docker.map(current));
        chain.extend(
            env.home_path(".dockercfg")
                .map(|path| AuthPath { path, legacy: true }),
        );
        AuthFiles {
            chain,
            primary,
            helpers,
        }
    }

    /// The files read, in order.
    pub fn chain(&self) -> &[AuthPath] {
        &self.chain
    }

    /// The file `login` and `logout` rewrite.
    pub fn primary(&self) -> Result<&Path, AuthError> {
        self.primary
            .as_deref()
            .map_err(|dir| AuthError::RuntimeDirMissing {
                dir: dir.to_path_buf(),
            })
    }

    /// The helper runner, for callers that consult registries.conf's global
    /// `credential-helpers` themselves.
    pub fn helpers(&self) -> &CredentialHelpers {
        &self.helpers
    }

    /// The first entry of the chain that covers `key` (`host`, `host/ns…`), without
    /// running any helper.
    pub fn find(&self, key: &str) -> Result<Option<Found>, AuthError> {
        validate_key(key)?;
        for p in &self.chain {
            if let Some(found) = find_in_file(p, key)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// [`AuthFiles::find`] for an image: its repository is the most specific key.
    pub fn find_for(&self, image: &ImageReference) -> Result<Option<Found>, AuthError> {
        self.find(&image.name())
    }

    /// Credentials for `key`, running helpers as needed, with registries.conf's
    /// `credential-helpers` list (`[]` means the default, the auth files alone).
    /// As in containers/image, a file whose `credHelpers` names a helper that has nothing
    /// for the host does not end the search: the next file is read.
    pub fn credentials(
        &self,
        key: &str,
        global_helpers: &[String],
    ) -> Result<Option<Credentials>, AuthError> {
        validate_key(key)?;
        // A helper that fails does not end the search (as in containers/image): the
        // next may hold the credentials; its error is the answer only if none does.
        let mut failed = None;
        for g in global_or_default(global_helpers).iter() {
            let creds = if g == AUTH_FILE_HELPER {
                self.credentials_from_files(key)
            } else {
                self.helpers.get(g, registry_of(key))
            };
            match creds {
                Ok(Some(c)) => return Ok(Some(c)),
                Ok(None) => {}
                Err(e) => failed = Some(e),
            }
        }
        failed.map_or(Ok(None), Err)
    }

    /// [`AuthFiles::credentials`] for an image.
    pub fn credentials_for(
        &self,
        image: &ImageReference,
        global_helpers: &[String],
    ) -> Result<Option<Credentials>, AuthError> {
        self.credentials(&image.name(), global_helpers)
    }

    fn credentials_from_files(&self, key: &str) -> Result<Option<Credentials>, AuthError> {
        for p in &self.chain {
            match find_in_file(p, key)? {
                Some(Found::Credentials { credentials, .. }) => return Ok(Some(credentials)),
                Some(Found::Helper {
                    helper, registry, ..
                }) => {
                    if let Some(c) = self.helpers.get(&helper, &registry)? {
                        return Ok(Some(c));
                    }
                }
                None => {}
            }
        }
        Ok(None)
    }

    /// `login`: stores the credentials where registries.conf's `credential-helpers`
    /// say, the first that takes them, as containers/image's `SetCredentials` does: for
    /// `containers-auth.json` (the default), `base64(username:password)` under `key` in
    /// the primary file, keeping everything else in it, or the helper its `credHelpers`
    /// names for exactly `key`; for an external helper, that helper (whole registries
    /// only). A password was written to the file even where the helpers said to keep it
    /// in a keyring, and reads then skipped the file.
    pub fn login(
        &self,
        key: &str,
        username: &str,
        password: &str,
        global_helpers: &[String],
    ) -> Result<Stored, AuthError> {
        let namespaced = validate_key(key)?;
        let mut last = None;
        for g in global_or_default(global_helpers).iter() {
            let stored = if g == AUTH_FILE_HELPER {
                self.login_to_file(key, username, password)
            } else if namespaced {
                Err(AuthError::NamespacedHelper {
                    helper: g.clone(),
                    key: key.to_string(),
                })
            } else {
                self.helpers
                    .store(g, key, username, password)
                    .map(|()| Stored::Helper(g.clone()))
            };
            match stored {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(AuthError::NotLoggedIn {
            key: key.to_string(),
        }))
    }

    fn login_to_file(
        &self,
        key: &str,
        username: &str,
        password: &str,
    ) -> Result<Stored, AuthError> {
        let path = self.primary()?;
        let mut file = file::read(path)?;
        if let Some(helper) = file.cred_helpers.get(key) {
            self.helpers.store(helper, key, username, password)?;
            return Ok(Stored::Helper(helper.clone()));
        }
        let auth = BASE64.encode(format!("{username}:{password}"));
        file.auths.insert(
            key.to_string(),
            AuthEntry {
                auth,
                ..AuthEntry::default()
            },
        );
        file::write_atomic(path, &file)?;
        Ok(Stored::File(path.to_path_buf()))
    }

    /// `logout KEY`: removes the credentials from every place registries.conf's
    /// `credential-helpers` name (the primary file's `auths` entry, and the host from
    /// the helper its `credHelpers` names; each external helper), as containers/image's
    /// `RemoveAuthentication`. [`AuthError::NotLoggedIn`] when none had anything.
    pub fn logout(&self, key: &str, global_helpers: &[String]) -> Result<(), AuthError> {
        let namespaced = validate_key(key)?;
        let mut logged_in = false;
        // Every place is tried, whatever one of them answers (a keyring that cannot be
        // reached must not keep the file's entry), as containers/image does.
        let mut failed = None;
        for g in global_or_default(global_helpers).iter() {
            let erased = if g == AUTH_FILE_HELPER {
                self.logout_from_file(key, namespaced)
            } else if !namespaced {
                self.helpers.erase(g, key)
            } else {
                Ok(false)
            };
            match erased {
                Ok(e) => logged_in |= e,
                Err(e) => failed = Some(e),
            }
        }
        match (logged_in, failed) {
            (true, _) => Ok(()),
            (false, Some(e)) => Err(e),
            (false, None) => Err(AuthError::NotLoggedIn {
                key: key.to_string(),
            }),
        }
    }

    fn logout_from_file(&self, key: &str, namespaced: bool) -> Result<bool, AuthError> {
        let path = self.primary()?;
        let mut file = file::read(path)?;
        let mut logged_in = false;
        if let Some(helper) = file.cred_helpers.get(key) {
            if !namespaced {
                logged_in |= self.helpers.erase(helper, key)?;
            }
        }
        if file.auths.remove(key).is_some() {
            logged_in = true;
            file::write_atomic(path, &file)?;
        }
        Ok(logged_in)
    }

    /// `logout --all`: everywhere registries.conf's `credential-helpers` name, as
    /// containers/image's `RemoveAllAuthentication`: for the primary file, every
    /// `credHelpers` host is erased from its helper, then `auths` and `credHelpers` are
    /// emptied (lab: skopeo 1.9.3 leaves `{"auths": {}}`; other fields stay); an
    /// external helper erases every registry its `list` names.
    pub fn logout_all(&self, global_helpers: &[String]) -> Result<(), AuthError> {
        let mut failed = None;
        for g in global_or_default(global_helpers).iter() {
            let erased = if g == AUTH_FILE_HELPER {
                self.logout_all_from_file()
            } else {
                match self.helpers.list(g) {
                    // A helper not installed holds nothing to erase.
                    Err(AuthError::HelperNotFound { .. }) => Ok(()),
                    Err(e) => Err(e),
                    Ok(held) => held
                        .iter()
                        .try_for_each(|r| self.helpers.erase(g, r).map(|_| ())),
                }
            };
            if let Err(e) = erased {
                failed = Some(e);
            }
        }
        failed.map_or(Ok(()), Err)
    }

    fn logout_all_from_file(&self) -> Result<(), AuthError> {
        let path = self.primary()?;
        let mut file = file::read(path)?;
        for (host, helper) in &file.cred_helpers {
            self.helpers.erase(helper, host)?;
        }
        file.auths.clear();
        file.cred_helpers.clear();
        file::write_atomic(path, &file)
    }
}

/// registries.conf's `credential-helpers`, or `["containers-auth.json"]` when empty.
fn global_or_default(global_helpers: &[String]) -> std::borrow::Cow<'_, [String]> {
    if global_helpers.is_empty() {
        std::borrow::Cow::Owned(vec![AUTH_FILE_HELPER.to_string()])
    } else {
        std::borrow::Cow::Borrowed(global_helpers)
    }
}

/// Looks `key` up in one file (`findCredentialsInFile`). An exact entry that holds no
/// usable credentials (`{}`, no colon) ends the search in this file, as in Go.
fn find_in_file(p: &AuthPath, key: &str) -> Result<Option<Found>, AuthError> {
    let file = if p.legacy {
        file::read_legacy(&p.path)?
    } else {
        file::read(&p.path)?
    };
    let registry = registry_of(key);
    // Helpers are per host: namespaced credentials in helpers are not supported.
    if let Some(helper) = file.cred_helpers.get(registry) {
        return Ok(Some(Found::Helper {
            helper: helper.clone(),
            registry: registry.to_string(),
            file: p.path.clone(),
        }));
    }
    let keys = if p.legacy {
        vec![registry]
    } else {
        keys_for(key)
    };
    for k in keys {
        if let Some(entry) = file.auths.get(k) {
            return decode(&p.path, k, entry);
        }
    }
    // Keys docker once wrote unnormalized (`https://host/v1/`, `http://host`).
    let wanted = normalize_registry(registry);
    for (k, entry) in &file.auths {
        if normalize_file_key(k, p.legacy) == wanted {
            return decode(&p.path, k, entry);
        }
    }
    Ok(None)
}

fn decode(path: &Path, key: &str, entry: &AuthEntry) -> Result<Option<Found>, AuthError> {
    let raw = BASE64
        .decode(entry.auth.as_bytes())
        .map_err(|source| AuthError::Base64 {
            path: path.to_path_buf(),
            key: key.to_string(),
            source,
        })?;
    let text = String::from_utf8_lossy(&raw);
    // Split at the first colon: user names cannot hold one, passwords can.
    let Some((user, password)) = text.split_once(':') else {
        return Ok(None);
    };
    Ok(Some(Found::Credentials {
        credentials: Credentials {
            username: user.to_string(),
            password: password.trim_matches('\0').to_string(),
            identity_token: Some(entry.identitytoken.clone()).filter(|t| !t.is_empty()),
        },
        file: path.to_path_buf(),
        key: key.to_string(),
    }))
}

/// `host/a/b/c` → `host/a/b/c`, `host/a/b`, `host/a`, `host`.
fn keys_for(key: &str) -> Vec<&str> {
    let mut keys = vec![key];
    let mut k = key;
    while let Some(i) = k.rfind('/') {
        k = &k[..i];
        keys.push(k);
    }
    keys
}

fn registry_of(key: &str) -> &str {
    key.split_once('/').map_or(key, |(host, _)| host)
}

/// docker.io is spelled three ways in old files; all mean `index.docker.io`.
fn normalize_registry(host: &str) -> &str {
    match host {
        "registry-1.docker.io" | "docker.io" => "index.docker.io",
        other => other,
    }
}

/// `https://host/v1/` → `host`. A key without a scheme keeps its path unless the file is
/// legacy (containers/image's `normalizeAuthFileKey`).
fn normalize_file_key(key: &str, legacy: bool) -> &str {
    let stripped = key
        .strip_prefix("http://")
        .or_else(|| key.strip_prefix("https://"));
    let host = match stripped {
        Some(s) => registry_of(s),
        None if legacy => registry_of(key),
        None => key,
    };
    normalize_registry(host)
}

/// Keys are `host[:port]` or `host[:port]/ns…/repo`: no scheme, tag or digest.
/// Returns whether the key is namespaced.
fn validate_key(key: &str) -> Result<bool, AuthError> {
    let bad = |reason| AuthError::InvalidKey {
        key: key.to_string(),
        reason,
    };
    if key.is_empty() {
        return Err(bad("empty"));
    }
    if key.starts_with("http://") || key.starts_with("https://") {
        return Err(bad("contains an http[s]:// prefix"));
    }
    if key.contains('@') {
        return Err(bad("contains a '@' character"));
    }
    match key.split_once('/') {
        Some((_, rest)) if rest.contains(':') => {
            Err(bad("contains a ':' character after host[:port]"))
        }
        Some(_) => Ok(true),
        None => Ok(false),
    }
}

#[cfg(test)]
mod tests;
