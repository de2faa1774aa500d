//! One credentials file on disk: its JSON shape, reading it, and rewriting it atomically
//! in the layout podman and skopeo write (tab-indented, keys sorted, no trailing newline).
//!
//! Unknown fields, at the top level and inside entries, are kept on rewrite. containers/image
//! itself drops them; keeping them costs nothing and means `berth login` never destroys
//! settings another tool (docker's `psFormat`, `HttpHeaders`, …) stored in the same file.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::AuthError;

/// The contents of an `auth.json` (or docker `config.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuthConfigFile {
    /// Credentials by key: `host`, `host/namespace…` or `host/namespace/repo`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub auths: BTreeMap<String, AuthEntry>,
    /// `host` → helper name (the part after `docker-credential-`).
    #[serde(
        rename = "credHelpers",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub cred_helpers: BTreeMap<String, String>,
    /// Every other top-level field, kept as it was.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// One `auths` entry. An empty entry (`{}`) is what docker writes for a registry whose
/// credentials live in a helper; it means "nothing here".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuthEntry {
    /// `base64(user:password)`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub auth: String,
    /// An OAuth2 refresh token (docker-compatible).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub identitytoken: String,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// JSON `null` reads as the empty value, as Go's decoder leaves the field at its zero value.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Reads a file of the current format (`{"auths": …}`); a missing file is empty.
pub(crate) fn read(path: &Path) -> Result<AuthConfigFile, AuthError> {
    match read_bytes(path)? {
        None => Ok(AuthConfigFile::default()),
        Some(bytes) => serde_json::from_slice(&bytes).map_err(|source| AuthError::Parse {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Reads a legacy `~/.dockercfg`: the `auths` map is the whole file.
pub(crate) fn read_legacy(path: &Path) -> Result<AuthConfigFile, AuthError> {
    match read_bytes(path)? {
        None => Ok(AuthConfigFile::default()),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(|auths| AuthConfigFile {
                auths,
                ..AuthConfigFile::default()
            })
            .map_err(|source| AuthError::Parse {
                path: path.to_path_buf(),
                source,
            }),
    }
}

fn read_bytes(path: &Path) -> Result<Option<Vec<u8>>, AuthError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(AuthError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Serializes as Go's `json.MarshalIndent(v, "", "\t")` does.
pub(crate) fn to_podman_json(file: &AuthConfigFile) -> Vec<u8> {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    // Maps with string keys and JSON values cannot fail to serialize.
    file.serialize(&mut ser)
        .unwrap_or_else(|e| unreachable!("auth.json serialization: {e}"));
    out
}

/// Replaces `path` with `file` atomically: parent directories created 0700, the file
/// 0600 (credentials), as [`crate::atomic::write`] does it.
pub(crate) fn write_atomic(path: &Path, file: &AuthConfigFile) -> Result<(), AuthError> {
    crate::atomic::write(path, &to_podman_json(file), 0o600, 0o700).map_err(|source| {
        AuthError::Write {
            path: path.to_path_buf(),
            source,
        }
    })
}
