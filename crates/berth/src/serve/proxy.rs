//! `[[proxy]]` entries of the TOML file: the pull-through cache's upstreams, turned
//! into `berth_registry::proxy::ProxyConfig` with their credentials resolved.

use std::time::Duration;

use anyhow::{bail, Context};
use berth_registry::proxy::ProxyConfig;
use serde::Deserialize;

/// A tag is checked upstream again after this long unless `tag_ttl` says otherwise.
const DEFAULT_TAG_TTL: Duration = Duration::from_secs(600);
/// The longest wait for an upstream's next bytes unless `read_timeout` says otherwise.
const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// One `[[proxy]]` table.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileProxy {
    prefix: String,
    url: String,
    username: Option<String>,
    password: Option<String>,
    /// `docker-credential-NAME get` answers for the upstream's host.
    credential_helper: Option<String>,
    tag_ttl: Option<String>,
    max_size: Option<String>,
    #[serde(default)]
    pinned: Vec<String>,
    /// Fetch an image's blobs as soon as its manifest is (default true).
    prefetch: Option<bool>,
    read_timeout: Option<String>,
}

impl FileProxy {
    pub fn into_config(self) -> anyhow::Result<ProxyConfig> {
        let what = || format!("[[proxy]] {}", self.prefix);
        let credentials = match (&self.username, &self.password, &self.credential_helper) {
            (Some(u), Some(p), None) => Some(berth_remote::Credentials::Basic {
                username: u.clone(),
                password: p.clone(),
            }),
            (None, None, Some(helper)) => {
                let host = self
                    .url
                    .split_once("://")
                    .map_or(self.url.as_str(), |(_, h)| h)
                    .trim_end_matches('/');
                let found = berth_containers_config::auth::CredentialHelpers::new(None)
                    .get(helper, host)
                    .with_context(|| format!("{}: credential helper {helper}", what()))?;
                match found {
                    Some(c) if c.identity_token.is_some() => {
                        Some(berth_remote::Credentials::IdentityToken {
                            username: c.username,
                            token: c.identity_token.unwrap_or_default(),
                        })
                    }
                    Some(c) => Some(berth_remote::Credentials::Basic {
                        username: c.username,
                        password: c.password,
                    }),
                    None => bail!(
                        "{}: credential helper {helper} has nothing for {host}",
                        what()
                    ),
                }
            }
            (None, None, None) => None,
            _ => bail!(
                "{}: give username and password together, or credential_helper alone",
                what()
            ),
        };
        let tag_ttl = match &self.tag_ttl {
            Some(t) => humantime::parse_duration(t)
                .with_context(|| format!("{}: tag_ttl {t:?}", what()))?,
            None => DEFAULT_TAG_TTL,
        };
        let read_timeout = match &self.read_timeout {
            Some(t) => humantime::parse_duration(t)
                .ok()
                .filter(|d| !d.is_zero())
                .with_context(|| format!("{}: read_timeout {t:?} (such as 60s)", what()))?,
            None => DEFAULT_READ_TIMEOUT,
        };
        let max_size = match &self.max_size {
            Some(s) => Some(
                berth_auth::policy::parse_size(s)
                    .filter(|&n| n > 0)
                    .with_context(|| format!("{}: max_size {s:?} (such as 50GiB)", what()))?,
            ),
            None => None,
        };
        Ok(ProxyConfig {
            prefix: self.prefix,
            url: self.url,
            credentials,
            tag_ttl,
            max_size,
            pinned: self.pinned,
            prefetch: self.prefetch.unwrap_or(true),
            read_timeout,
        })
    }
}
