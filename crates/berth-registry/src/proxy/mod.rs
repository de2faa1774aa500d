//! Pull-through cache: repositories under a configured prefix (`docker.io/…`) are
//! copies of an upstream registry's, filled on demand.
//!
//! A request for `docker.io/library/alpine` (or, as containerd sends it,
//! `library/alpine?ns=docker.io`) is answered from the local store like any other,
//! after [`fill_manifest`] or [`blob::fill`] made sure the store holds what it asks
//! for:
//! - a manifest by digest is fetched once (verified against the digest) and kept;
//! - a tag is kept with the time it was last checked; after `tag_ttl` a `HEAD` upstream
//!   revalidates it (a new digest is fetched, the same one only renews the time), and
//!   while the upstream cannot be reached the cached tag is served and the log says so;
//! - a blob is fetched once however many clients ask at once (single flight), written
//!   to the store as it arrives and streamed to every waiting client from the file, and
//!   kept only when its digest is right (the last byte is held back until then).
//!
//! Manifests are stored without their blobs (`MetaStore::put_proxied_manifest`); each
//! blob is linked when it arrives. An image manifest fetched for a `GET` starts the
//! fetch of its blobs at once ([`blob::prefetch`], unless `prefetch = false`): the
//! client asks for them next, and each would otherwise wait for its own fetch. With
//! `max_size`, the prefix's blobs are bounded: after each fill the links used least recently are evicted (a cache hit renews its
//! link at most once a minute) until the prefix is under 90% of the bound. Content
//! that another repository also links keeps its bytes; repositories matching a
//! `pinned` pattern are never evicted. Pushes and deletes under a prefix are refused:
//! the upstream owns it.

pub(crate) mod blob;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_image::{Digest, Manifest, ManifestKind, Reference, RepositoryName};
use berth_store::NewManifest;

use crate::error::{ApiError, ApiResult, Code};
use crate::Registry;

/// One upstream, as the configuration names it.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The first component of the repository names served from it (`docker.io`).
    pub prefix: String,
    /// Where it answers: `https://registry-1.docker.io`, `http://10.0.0.5:5000`.
    pub url: String,
    pub credentials: Option<berth_remote::Credentials>,
    /// How long a tag is served before it is checked upstream again.
    pub tag_ttl: Duration,
    /// Bytes of blobs the prefix may hold; `None`: unbounded.
    pub max_size: Option<u64>,
    /// Repositories under the prefix (globs over the name after it, `library/*`)
    /// whose content is never evicted.
    pub pinned: Vec<String>,
    /// Whether an image manifest fetched for a `GET` starts the fetch of its blobs.
    pub prefetch: bool,
    /// Longest wait for the upstream's next bytes: a fill of an upstream gone silent
    /// fails (its clients are told, the next request fetches anew) instead of
    /// holding every client of that blob or tag for ever.
    pub read_timeout: Duration,
}

/// A configuration that cannot work, said at start-up.
#[derive(Debug, thiserror::Error)]
pub enum ProxyConfigError {
    #[error("proxy prefix {0:?}: one repository name component (such as docker.io), lowercase")]
    Prefix(String),
    #[error("proxy prefix {0:?} is given twice")]
    Duplicate(String),
    #[error("proxy {prefix}: url {url:?} must be http:// or https:// and a host")]
    Url { prefix: String, url: String },
    #[error("proxy {prefix}: {source}")]
    Client {
        prefix: String,
        #[source]
        source: berth_remote::RemoteError,
    },
}

/// The upstreams of a registry.
#[derive(Default)]
pub(crate) struct Proxies {
    upstreams: Vec<Upstream>,
}

pub(crate) struct Upstream {
    pub(crate) config: ProxyConfig,
    client: berth_remote::Registry,
    /// Docker Hub names its official images `library/NAME`; clients may say `NAME`.
    docker_hub: bool,
    /// One manifest fill at a time per `repository:reference`.
    manifest_fills: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Blob fills under way, by digest.
    pub(crate) blob_fills: Mutex<HashMap<Digest, Arc<blob::Fill>>>,
    /// Bounds the blobs fetched ahead of their clients (a client's own request never
    /// waits for it).
    prefetching: Arc<tokio::sync::Semaphore>,
    evicting: AtomicBool,
}

/// The upstream's `host[:port]` and whether it is plain HTTP.
pub(crate) fn parse_url(url: &str) -> Option<(&str, bool)> {
    let (rest, plain) = match url.split_once("://") {
        Some(("http", rest)) => (rest, true),
        Some(("https", rest)) => (rest, false),
        _ => return None,
    };
    let host = rest.trim_end_matches('/');
    (!host.is_empty() && !host.contains('/')).then_some((host, plain))
}

impl Proxies {
    pub(crate) fn new(configs: &[ProxyConfig]) -> Result<Proxies, ProxyConfigError> {
        let mut upstreams: Vec<Upstream> = Vec::new();
        for c in configs {
            let valid = !c.prefix.contains('/')
                && c.prefix
                    .parse::<RepositoryName>()
                    .is_ok_and(|n| n.as_str() == c.prefix);
            if !valid {
                return Err(ProxyConfigError::Prefix(c.prefix.clone()));
            }
            if upstreams.iter().any(|u| u.config.prefix == c.prefix) {
                return Err(ProxyConfigError::Duplicate(c.prefix.clone()));
            }
            let (host, plain_http) = parse_url(&c.url).ok_or_else(|| ProxyConfigError::Url {
                prefix: c.prefix.clone(),
                url: c.url.clone(),
            })?;
            let options = berth_remote::Options {
                credentials: c.credentials.clone(),
                // A cache answers a client that waits: one quick retry, then say so.
                retries: 1,
                retry_delay: Duration::from_millis(100),
                plain_http,
                read_timeout: Some(c.read_timeout),
                ..berth_remote::Options::default()
            };
            let client = berth_remote::Registry::new(host, options).map_err(|source| {
                ProxyConfigError::Client {
                    prefix: c.prefix.clone(),
                    source,
                }
            })?;
            upstreams.push(Upstream {
                docker_hub: client.endpoint() == "registry-1.docker.io",
                config: c.clone(),
                client,
                manifest_fills: Mutex::default(),
                blob_fills: Mutex::default(),
                prefetching: Arc::new(tokio::sync::Semaphore::new(blob::PREFETCH_AT_ONCE)),
                evicting: AtomicBool::new(false),
            });
        }
        Ok(Proxies { upstreams })
    }

    /// The upstream whose prefix `ns` is.
    pub(crate) fn by_prefix(&self, ns: &str) -> Option<&Upstream> {
        self.upstreams.iter().find(|u| u.config.prefix == ns)
    }

    /// The upstream serving repository `repo` (`docker.io/library/alpine`) and the
    /// repository's name there (`library/alpine`).
    pub(crate) fn route(&self, repo: &str) -> Option<(&Upstream, String)> {
        let (ns, rest) = repo.split_once('/')?;
        let up = self.by_prefix(ns)?;
        let name = match up.docker_hub && !rest.contains('/') {
            true => format!("library/{rest}"),
            false => rest.to_string(),
        };
        Some((up, name))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.upstreams.is_empty()
    }
}

/// `503 UNAVAILABLE` naming the upstream and what went wrong there.
fn unavailable(up: &Upstream, e: &berth_remote::RemoteError) -> ApiError {
    ApiError::new(Code::Unavailable).detail(format!(
        "upstream {} ({}) could not be reached: {}",
        up.config.prefix,
        up.config.url,
        crate::error::chain(e)
    ))
}

impl Upstream {
    /// The lock one fill of `key` holds; dropped from the map by the last user.
    fn manifest_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut fills = self
            .manifest_fills
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        fills.retain(|_, l| Arc::strong_count(l) > 1);
        fills.entry(key.to_string()).or_default().clone()
    }

    fn pinned(&self, repo: &str) -> bool {
        let rest = repo
            .strip_prefix(&self.config.prefix)
            .and_then(|r| r.strip_prefix('/'))
            .unwrap_or(repo);
        self.config
            .pinned
            .iter()
            .any(|p| berth_auth::policy::glob_match(p, rest))
    }
}

/// Makes the store hold manifest `reference` of `name` as the upstream has it now
/// (within the tag TTL). Leaves the store as it is when the upstream cannot be reached
/// and the store has a copy; the caller then reads the store as for any repository.
/// `with_body` (a `GET`): an image manifest fetched now starts the fetch of its blobs.
pub(crate) async fn fill_manifest(
    reg: &Arc<Registry>,
    up: &Upstream,
    name: &RepositoryName,
    upstream_repo: &str,
    reference: &str,
    with_body: bool,
) -> ApiResult<()> {
    let Ok(reference) = reference.parse::<Reference>() else {
        return Ok(()); // not a reference at all: the store answers "unknown"
    };
    let repo = name.as_str();
    let cached = |reg: &Arc<Registry>| -> ApiResult<bool> {
        Ok(match &reference {
            Reference::Digest(d) => reg.meta.manifest_by_digest(repo, d)?.is_some(),
            Reference::Tag(t) => reg
                .meta
                .tag_set_at(repo, t.as_str())?
                .is_some_and(|(_, at)| fresh(at, up.config.tag_ttl)),
        })
    };
    if cached(reg)? {
        reg.metrics.proxy("manifest", "hit");
        return Ok(());
    }
    let lock = up.manifest_lock(&format!("{repo}:{reference}"));
    let _one_fill = lock.lock().await;
    if cached(reg)? {
        reg.metrics.proxy("manifest", "hit");
        return Ok(());
    }
    match &reference {
        Reference::Digest(d) => match up.client.manifest(upstream_repo, &d.to_string()).await {
            Ok(raw) => {
                reg.metrics.proxy("manifest", "miss");
                let media_type = raw.media_type.as_deref();
                let ahead = with_body.then_some((up, upstream_repo));
                store(reg, repo, &raw.bytes, media_type, &raw.digest, None, ahead).await
            }
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(unavailable(up, &e)),
        },
        Reference::Tag(t) => {
            let tag = t.as_str();
            let local = reg.meta.tag_set_at(repo, tag)?;
            if local.is_none() {
                // Nothing to revalidate: one GET instead of a HEAD and a GET.
                return match up.client.manifest(upstream_repo, tag).await {
                    Ok(raw) => {
                        reg.metrics.proxy("manifest", "miss");
                        let media_type = raw.media_type.as_deref();
                        let ahead = with_body.then_some((up, upstream_repo));
                        let digest = &raw.digest;
                        store(reg, repo, &raw.bytes, media_type, digest, Some(tag), ahead).await
                    }
                    Err(e) if e.is_not_found() => Ok(()),
                    Err(e) => Err(unavailable(up, &e)),
                };
            }
            match up.client.manifest_digest(upstream_repo, tag).await {
                Ok(Some(d)) => {
                    let stored = reg.meta.manifest_by_digest(repo, &d)?;
                    if let Some(m) = stored {
                        // The same digest (only the time renews), or one already here.
                        reg.metrics.proxy("manifest", "revalidated");
                        let media_type = Some(m.media_type.as_str());
                        return store(reg, repo, &m.content, media_type, &d, Some(tag), None).await;
                    }
                    reg.metrics.proxy("manifest", "miss");
                    let raw = up
                        .client
                        .manifest(upstream_repo, &d.to_string())
                        .await
                        .map_err(|e| unavailable(up, &e))?;
                    let media_type = raw.media_type.as_deref();
                    let ahead = with_body.then_some((up, upstream_repo));
                    store(reg, repo, &raw.bytes, media_type, &d, Some(tag), ahead).await
                }
                Ok(None) => {
                    // The upstream no longer has it: neither does the cache.
                    if local.is_some() {
                        let (r, t) = (repo.to_string(), tag.to_string());
                        reg.blocking(move |reg| reg.meta.delete_tag(&r, &t)).await?;
                    }
                    Ok(())
                }
                Err(e) if local.is_some() => {
                    reg.metrics.proxy("manifest", "stale");
                    tracing::warn!(
                        target: "berth::proxy",
                        upstream = %up.config.url,
                        repository = repo,
                        tag,
                        error = %crate::error::chain(&e),
                        "upstream unreachable: serving the cached tag"
                    );
                    Ok(())
                }
                Err(e) if e.is_not_found() => Ok(()),
                Err(e) => Err(unavailable(up, &e)),
            }
        }
    }
}

/// Whether a tag checked at `at` (unix seconds) is still within `ttl`.
fn fresh(at: i64, ttl: Duration) -> bool {
    berth_store::unix_now().saturating_sub(at) < ttl.as_secs() as i64
}

/// Keeps an upstream manifest (bytes as sent, their digest checked by the client).
/// With `ahead` (the upstream and its name for the repository: the manifest was
/// fetched for a `GET`), an image manifest's config and layers start arriving while
/// it is stored; an index's children are fetched when asked for, one platform at a
/// time.
async fn store(
    reg: &Arc<Registry>,
    repo: &str,
    bytes: &[u8],
    media_type: Option<&str>,
    digest: &Digest,
    tag: Option<&str>,
    ahead: Option<(&Upstream, &str)>,
) -> ApiResult<()> {
    let manifest = Manifest::parse(media_type, bytes).map_err(|e| {
        ApiError::new(Code::ManifestInvalid).detail(format!("the upstream's manifest: {e}"))
    })?;
    if let Some((up, upstream_repo)) = ahead {
        if up.config.prefetch && manifest.kind == ManifestKind::Image {
            let config = manifest.config.iter();
            let blobs = config.chain(&manifest.layers).map(|d| d.digest.clone());
            blob::prefetch(reg, up, repo, upstream_repo, blobs.collect());
        }
    }
    let new = NewManifest::new(digest.clone(), &manifest, bytes.to_vec());
    let (repo, tag) = (repo.to_string(), tag.map(str::to_string));
    reg.blocking(move |r| r.meta.put_proxied_manifest(&repo, &new, tag.as_deref()))
        .await
}

/// Evicts the prefix's least recently used blobs while it holds more than
/// `max_size`, down to 90% of it; one eviction at a time per upstream. Runs on the
/// blocking pool after a fill.
pub(crate) fn evict(reg: &Arc<Registry>, up: &Upstream) {
    let Some(max) = up.config.max_size else {
        return;
    };
    if up.evicting.swap(true, Ordering::AcqRel) {
        return;
    }
    let result = evict_to(reg, up, max);
    up.evicting.store(false, Ordering::Release);
    match result {
        Ok((0, _)) => {}
        Ok((blobs, bytes)) => {
            reg.metrics.proxy_evicted(bytes);
            tracing::info!(
                target: "berth::proxy",
                upstream = %up.config.prefix,
                blobs,
                bytes,
                "evicted the least recently used blobs"
            );
        }
        Err(e) => tracing::warn!(target: "berth::proxy", error = ?e, "eviction failed"),
    }
}

/// Removes the prefix's least recently used links until its usage is down to 90% of
/// `max`, or every link was considered. Pages through the links with a cursor rather
/// than reading the front again: pinned links and fills under way are never removed,
/// so they stay the oldest, and a page of them would otherwise end eviction for good;
/// a page whose blobs other cache repositories also link frees nothing, and the next
/// page may. Returns the blobs removed and their bytes.
fn evict_to(reg: &Registry, up: &Upstream, max: u64) -> Result<(usize, u64), ApiError> {
    let ns = &up.config.prefix;
    let mut used = reg.meta.namespace_usage(ns)?;
    if used <= max {
        return Ok((0, 0));
    }
    let target = max / 10 * 9;
    let in_flight: Vec<Digest> = up
        .blob_fills
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .keys()
        .cloned()
        .collect();
    let (mut blobs, mut bytes) = (0, 0);
    const PAGE: usize = 256;
    // `(at, repository, digest)` of the last link considered.
    let mut after: Option<(i64, String, Digest)> = None;
    while used > target {
        let cursor = after.as_ref().map(|(at, r, d)| (*at, r.as_str(), d));
        let oldest = reg.meta.oldest_links(ns, cursor, PAGE)?;
        if oldest.is_empty() {
            break; // every link was considered: the rest is pinned, arriving or shared
        }
        let mut batch = Vec::new();
        let mut going = 0;
        for (repo, digest, size, at) in oldest {
            after = Some((at, repo.clone(), digest.clone()));
            if up.pinned(&repo) || in_flight.contains(&digest) {
                continue;
            }
            batch.push((repo, digest, size, at));
            going += size;
            if used.saturating_sub(going) <= target {
                break;
            }
        }
        if batch.is_empty() {
            continue;
        }
        let gone = berth_store::gc::evict_links(reg.meta.as_ref(), reg.blob_bytes(), &batch)?;
        let freed = gone.iter().map(|(_, s)| s).sum::<u64>();
        blobs += gone.len();
        bytes += freed;
        // What went, counted down, when it is all that left the prefix; a link whose
        // blob stays for a repository outside it (a private image's base layer) left
        // the prefix's usage too, freeing nothing: then the usage is summed again,
        // rather than evicting on past the target.
        used = match freed == going {
            true => used.saturating_sub(freed),
            false => reg.meta.namespace_usage(ns)?,
        };
    }
    Ok((blobs, bytes))
}

/// An upstream's configuration with the defaults, for tests.
#[cfg(test)]
pub(crate) fn config(prefix: &str, url: &str) -> ProxyConfig {
    ProxyConfig {
        prefix: prefix.into(),
        url: url.into(),
        credentials: None,
        tag_ttl: Duration::from_secs(60),
        max_size: None,
        pinned: vec![],
        prefetch: true,
        read_timeout: Duration::from_secs(60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_are_checked() {
        for (prefix, url, ok) in [
            ("docker.io", "https://registry-1.docker.io", true),
            ("mirror", "http://127.0.0.1:5001/", true),
            ("Docker.io", "https://x", false),
            ("a/b", "https://x", false),
            ("quay.io", "ftp://quay.io", false),
            ("quay.io", "https://", false),
            ("quay.io", "https://quay.io/v2", false),
        ] {
            assert_eq!(
                Proxies::new(&[config(prefix, url)]).is_ok(),
                ok,
                "{prefix} {url}"
            );
        }
        let twice = [config("a", "https://a"), config("a", "https://b")];
        assert!(matches!(
            Proxies::new(&twice),
            Err(ProxyConfigError::Duplicate(_))
        ));
    }

    #[test]
    fn routes_by_prefix_with_docker_hub_library() {
        let p = Proxies::new(&[
            config("docker.io", "https://registry-1.docker.io"),
            config("local", "http://127.0.0.1:5001"),
        ])
        .unwrap();
        let name = |r: &str| p.route(r).map(|(u, n)| (u.config.prefix.clone(), n));
        assert_eq!(
            name("docker.io/alpine"),
            Some(("docker.io".into(), "library/alpine".into()))
        );
        assert_eq!(
            name("docker.io/grafana/grafana"),
            Some(("docker.io".into(), "grafana/grafana".into()))
        );
        assert_eq!(name("local/app"), Some(("local".into(), "app".into())));
        assert_eq!(name("local"), None);
        assert_eq!(name("other/app"), None);
    }

    /// A cache with `max_size` and `pinned` over a new data folder (no upstream),
    /// its metadata in SQLite or (`postgres`) a new PostgreSQL database.
    fn bounded(dir: &std::path::Path, max: u64, pinned: &str, postgres: bool) -> Arc<Registry> {
        let mut c = config("up", "http://127.0.0.1:9");
        c.max_size = Some(max);
        c.pinned = vec![pinned.into()];
        let mut rc = crate::RegistryConfig::new(dir.to_path_buf());
        rc.catalog = false;
        rc.proxies = vec![c];
        if postgres {
            let url = berth_testenv::Postgres::shared().database();
            rc.metadata = crate::Metadata::Postgres(url);
        }
        Registry::open(rc).unwrap()
    }

    fn blob(n: u32) -> Digest {
        Digest::sha256_of(&n.to_be_bytes())
    }

    /// The oldest links are a pinned repository's, more than a page of them, then
    /// blobs two cache repositories share (removing one link frees nothing), then
    /// the rest: eviction pages past the first two and ends under the bound, with
    /// every pinned link kept.
    #[test]
    fn eviction_pages_past_pinned_and_shared_links() {
        evicts_past_pinned_and_shared_links(false);
    }

    #[test]
    fn eviction_pages_past_pinned_and_shared_links_on_postgres() {
        evicts_past_pinned_and_shared_links(true);
    }

    fn evicts_past_pinned_and_shared_links(postgres: bool) {
        let dir = tempfile::tempdir().unwrap();
        let reg = bounded(dir.path(), 20_000, "base/*", postgres);
        let link = |repo: &str, d: &Digest, size: u64| {
            reg.meta.link_blob(repo, d, size, &|| true).unwrap();
        };
        // Made in this order, and at one time sorted by name: base < mirror/x <
        // mirror/y < new. The page after the pinned links is x's, all shared.
        for n in 0..300 {
            link("up/base/img", &blob(n), 1);
        }
        for repo in ["up/mirror/x", "up/mirror/y"] {
            for n in 1000..1300 {
                link(repo, &blob(n), 10);
            }
        }
        for n in 2000..2100 {
            link("up/new/app", &blob(n), 1000);
        }
        assert_eq!(reg.meta.namespace_usage("up").unwrap(), 103_300);
        let up = reg.proxies.by_prefix("up").unwrap();
        let (blobs, bytes) = evict_to(&reg, up, 20_000).unwrap();
        let used = reg.meta.namespace_usage("up").unwrap();
        assert!(used <= 18_000, "still {used} bytes after eviction");
        assert_eq!(bytes, 103_300 - used);
        assert!(blobs > 300, "{blobs}");
        for n in 0..300 {
            let kept = reg.meta.blob_link("up/base/img", &blob(n)).unwrap();
            assert!(kept.is_some(), "pinned blob {n} was evicted");
        }
    }

    /// Nothing that may go is left: eviction ends, over the bound, removing nothing.
    #[test]
    fn eviction_ends_when_only_pinned_links_are_left() {
        let dir = tempfile::tempdir().unwrap();
        let reg = bounded(dir.path(), 100, "*", false);
        for n in 0..300 {
            reg.meta.link_blob("up/img", &blob(n), 1, &|| true).unwrap();
        }
        let up = reg.proxies.by_prefix("up").unwrap();
        assert_eq!(evict_to(&reg, up, 100).unwrap(), (0, 0));
        assert_eq!(reg.meta.namespace_usage("up").unwrap(), 300);
    }
}
