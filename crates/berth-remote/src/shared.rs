//! What the registry clients of one process share.
//!
//! A copy between two repositories of one registry (the usual way to sign or promote
//! an image) made two HTTP clients, each loading the system's ~150 root certificates
//! (half the CPU of copying a small image), and found the registry's scheme three times
//! over (https first, then http, once per client and once more for a concurrent
//! request). Clients with the same TLS settings now share one `reqwest::Client`, and so
//! its connection pool; and a registry found to speak plain HTTP is asked over HTTP
//! first by later clients of the process.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use crate::RemoteError;

/// The settings an HTTP client is built from; equal settings share a client.
#[derive(PartialEq, Eq)]
struct ClientKey {
    tls_verify: bool,
    cert_dirs: Vec<PathBuf>,
}

static CLIENTS: Mutex<Vec<(ClientKey, reqwest::Client)>> = Mutex::new(Vec::new());
static PLAIN_HTTP: Mutex<Option<HashSet<String>>> = Mutex::new(None);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The process's client for these TLS settings, built on first use by `build`.
/// Certificate folders are read when the client is built: a process sees the
/// certificates that existed when it first talked to a registry with them.
pub(crate) fn client(
    tls_verify: bool,
    cert_dirs: &[PathBuf],
    build: impl FnOnce() -> Result<reqwest::Client, RemoteError>,
) -> Result<reqwest::Client, RemoteError> {
    let key = ClientKey {
        tls_verify,
        cert_dirs: cert_dirs.to_vec(),
    };
    let mut clients = lock(&CLIENTS);
    if let Some((_, c)) = clients.iter().find(|(k, _)| *k == key) {
        return Ok(c.clone());
    }
    let c = build()?;
    clients.push((key, c.clone()));
    Ok(c)
}

/// Whether `endpoint` answered over plain HTTP earlier in this process.
pub(crate) fn known_plain_http(endpoint: &str) -> bool {
    lock(&PLAIN_HTTP)
        .as_ref()
        .is_some_and(|s| s.contains(endpoint))
}

/// Remembers that `endpoint` answers over plain HTTP.
pub(crate) fn remember_plain_http(endpoint: &str) {
    lock(&PLAIN_HTTP)
        .get_or_insert_with(HashSet::new)
        .insert(endpoint.to_string());
}
