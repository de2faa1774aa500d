//! What the registry clients of one process share.
//!
//! A copy between two repositories of one registry (the usual way to sign or promote
//! an image) made two HTTP clients, each loading the system's ~150 root certificates
//! (half the CPU of copying a small image), and found the registry's scheme three times
//! over (https first, then http, once per client and once more for a concurrent
//! request). Clients with the same TLS settings now share one `reqwest::Client`, and so
//! its connection pool; and a registry found to speak plain HTTP is asked over HTTP
//! first by later clients of the process.
//!
//! The answer to `GET /v2/` (scheme, login challenge, signature support) is shared
//! too, for a minute: the source and destination clients of such a copy asked the same
//! registry the same question, one round trip each (a WAN round trip for a remote
//! registry). A long-running process (a pull-through cache, replication) asks again
//! once the answer is a minute old, so a registry that changes its login is followed.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::challenge::Challenge;
use crate::RemoteError;

/// How long a registry's answer to `GET /v2/` is reused by other clients.
const PING_TTL: Duration = Duration::from_secs(60);

/// The settings an HTTP client is built from; equal settings share a client.
#[derive(PartialEq, Eq)]
pub(crate) struct ClientKey {
    pub tls_verify: bool,
    pub cert_dirs: Vec<PathBuf>,
    pub read_timeout: Option<Duration>,
}

static CLIENTS: Mutex<Vec<(ClientKey, reqwest::Client)>> = Mutex::new(Vec::new());
static PLAIN_HTTP: Mutex<Option<HashSet<String>>> = Mutex::new(None);
static PINGS: Mutex<Vec<(PingKey, Ping, Instant)>> = Mutex::new(Vec::new());

/// Whose answer a ping is: the endpoint, and the settings that decide which schemes a
/// client may use (a client that verifies TLS never takes another's plain HTTP).
#[derive(PartialEq, Eq, Clone)]
pub(crate) struct PingKey {
    pub endpoint: String,
    pub tls_verify: bool,
    pub plain_http: bool,
}

/// What `GET /v2/` told: where the API answers, its login challenge, and whether it
/// keeps simple signatures (`X-Registry-Supports-Signatures: 1`).
#[derive(Clone)]
pub(crate) struct Ping {
    pub base: String,
    pub challenge: Option<Challenge>,
    pub supports_signatures: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The process's client for these settings, built on first use by `build`.
/// Certificate folders are read when the client is built: a process sees the
/// certificates that existed when it first talked to a registry with them.
pub(crate) fn client(
    key: ClientKey,
    build: impl FnOnce() -> Result<reqwest::Client, RemoteError>,
) -> Result<reqwest::Client, RemoteError> {
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

/// A ping of `key`'s registry by another client of this process, less than
/// [`PING_TTL`] old.
pub(crate) fn known_ping(key: &PingKey) -> Option<Ping> {
    let mut pings = lock(&PINGS);
    pings.retain(|(_, _, at)| at.elapsed() < PING_TTL);
    pings
        .iter()
        .find(|(k, _, _)| k == key)
        .map(|(_, p, _)| p.clone())
}

/// Remembers `ping` as `key`'s registry's answer.
pub(crate) fn remember_ping(key: PingKey, ping: Ping) {
    let mut pings = lock(&PINGS);
    pings.retain(|(k, _, _)| *k != key);
    pings.push((key, ping, Instant::now()));
}
