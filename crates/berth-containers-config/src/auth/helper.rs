//! The docker credential-helper protocol: `docker-credential-<name> get|store|erase`,
//! the registry host (or a JSON record) on stdin, JSON or an error message on stdout.
//!
//! Helpers only know registry hosts, never namespaces, which is why callers pass a host.
//! A helper that does not have credentials answers with the message docker's helpers
//! library defines; that is "not found", not an error, and the search moves on.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::{AuthError, Credentials};

/// What `docker-credential-helpers` prints when it has nothing for a host.
const NOT_FOUND: &str = "credentials not found in native keychain";
/// The user name helpers report for an identity (refresh) token.
const TOKEN_USER: &str = "<token>";

/// Runs credential helpers found on a given `PATH` (not necessarily the process's, so
/// tests can put a fake helper first).
#[derive(Debug, Clone, Default)]
pub struct CredentialHelpers {
    path: Option<OsString>,
}

#[derive(Serialize, Deserialize)]
struct HelperRecord {
    #[serde(rename = "ServerURL", default)]
    server_url: String,
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

impl CredentialHelpers {
    pub fn new(path: Option<OsString>) -> CredentialHelpers {
        CredentialHelpers { path }
    }

    /// `get`: the credentials the helper holds for `registry`, or `None`.
    pub fn get(&self, helper: &str, registry: &str) -> Result<Option<Credentials>, AuthError> {
        let Some(out) = self.run(helper, "get", registry, registry.as_bytes())? else {
            return Ok(None);
        };
        let rec: HelperRecord =
            serde_json::from_slice(&out).map_err(|e| helper_error(helper, registry, e))?;
        Ok(Some(if rec.username == TOKEN_USER {
            Credentials {
                username: String::new(),
                password: String::new(),
                identity_token: Some(rec.secret),
            }
        } else {
            Credentials {
                username: rec.username,
                password: rec.secret,
                identity_token: None,
            }
        }))
    }

    /// `store`: hands `username`/`secret` for `registry` to the helper.
    pub fn store(
        &self,
        helper: &str,
        registry: &str,
        username: &str,
        secret: &str,
    ) -> Result<(), AuthError> {
        let rec = HelperRecord {
            server_url: registry.to_string(),
            username: username.to_string(),
            secret: secret.to_string(),
        };
        let input = serde_json::to_vec(&rec).map_err(|e| helper_error(helper, registry, e))?;
        self.run(helper, "store", registry, &input)?;
        Ok(())
    }

    /// `erase`: returns whether the helper had something to erase.
    pub fn erase(&self, helper: &str, registry: &str) -> Result<bool, AuthError> {
        Ok(self
            .run(helper, "erase", registry, registry.as_bytes())?
            .is_some())
    }

    /// `list`: the registries the helper holds credentials for.
    pub fn list(&self, helper: &str) -> Result<Vec<String>, AuthError> {
        let Some(out) = self.run(helper, "list", "(all)", b"")? else {
            return Ok(Vec::new());
        };
        let held: std::collections::BTreeMap<String, String> =
            serde_json::from_slice(&out).map_err(|e| helper_error(helper, "(all)", e))?;
        Ok(held.into_keys().collect())
    }

    /// Runs one action; `Ok(None)` when the helper says it has no credentials.
    fn run(
        &self,
        helper: &str,
        action: &str,
        registry: &str,
        input: &[u8],
    ) -> Result<Option<Vec<u8>>, AuthError> {
        let program = self.find(helper)?;
        let fail = |e: &dyn std::fmt::Display| helper_error(helper, registry, e);
        let spawn = || {
            Command::new(&program)
                .arg(action)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
        };
        // A helper just installed may still be open for writing in a process another
        // thread forked (ETXTBSY): it is run again a moment later.
        let mut child = spawn();
        for _ in 0..5 {
            match &child {
                Err(e) if e.raw_os_error() == Some(26) => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    child = spawn();
                }
                _ => break,
            }
        }
        let mut child = child.map_err(|e| fail(&e))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input).map_err(|e| fail(&e))?;
        }
        let out = child.wait_with_output().map_err(|e| fail(&e))?;
        if out.status.success() {
            return Ok(Some(out.stdout));
        }
        // Helpers report errors on stdout; stderr is a fallback for odd ones.
        let stdout = String::from_utf8_lossy(&out.stdout);
        let message = stdout.trim();
        if message == NOT_FOUND {
            return Ok(None);
        }
        let message = if message.is_empty() {
            String::from_utf8_lossy(&out.stderr).trim().to_string()
        } else {
            message.to_string()
        };
        Err(fail(&format_args!("{}: {message}", out.status)))
    }

    /// Looks `docker-credential-<helper>` up on the configured `PATH`. Helper names come
    /// from config files, so one holding a `/` is refused rather than run.
    fn find(&self, helper: &str) -> Result<PathBuf, AuthError> {
        let not_found = || AuthError::HelperNotFound {
            helper: helper.to_string(),
        };
        if helper.is_empty() || helper.contains('/') {
            return Err(not_found());
        }
        let name = format!("docker-credential-{helper}");
        let path = self.path.as_deref().ok_or_else(not_found)?;
        std::env::split_paths(path)
            .filter(|dir| dir.is_absolute())
            .map(|dir| dir.join(&name))
            .find(|p| {
                std::fs::metadata(p)
                    .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                    .unwrap_or(false)
            })
            .ok_or_else(not_found)
    }
}

fn helper_error(helper: &str, registry: &str, e: impl std::fmt::Display) -> AuthError {
    AuthError::Helper {
        helper: helper.to_string(),
        registry: registry.to_string(),
        message: e.to_string(),
    }
}
