//! The registry HTTP server: OCI Distribution Spec v1.1 and the Docker Registry HTTP
//! API v2, over the content kept by `berth-store`.
//!
//! One handler per endpoint family, each in its own module; [`routes`] turns a `/v2/…`
//! path (whose repository name may itself contain slashes) into one of them.

mod access;
mod admin_api;
mod blobs;
mod catalog_api;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod gc;
mod listing;
mod manifests;
pub mod metrics;
mod object_uploads;
mod policy;
pub mod proxy;
pub mod replication;
pub mod retention;
mod routes;
mod search;
mod signature_info;
mod signatures;
mod token;
mod trust;
mod ui;
mod uploads;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use berth_auth::{Auth, AuthConfig};
use berth_store::{
    BlobBytes, BlobStore, MetaChange, MetaStore, ObjectBlobs, ObjectConfig, PgMeta, PgOptions,
    SqliteMeta, Watched,
};

pub use error::{ApiError, Code};
pub use policy::usage_json;

/// Largest manifest accepted (4 MiB, as distribution and the spec suggest).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// Upload sessions open at once per namespace, by default: a push opens one per layer
/// it sends (podman and skopeo send up to 6 at once), so a thousand leaves room for
/// many pushes at once while bounding what can be left open in a namespace (where
/// access control applies, the namespaces a pusher may push to; an open registry
/// takes any name, and any amount of content, from anyone).
pub const DEFAULT_MAX_OPEN_UPLOADS: u64 = 1000;

/// What the registry needs to run, independent of how it was configured.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Data folder: `blobs/`, `uploads/`, `meta.db`.
    pub root: PathBuf,
    /// Upload sessions untouched this long are removed with their data.
    pub upload_ttl: Duration,
    /// At most this many upload sessions open at once in one namespace (`team` of
    /// `team/app`); another is refused with `429 TOOMANYREQUESTS`. Each holds a row and
    /// a file (or a multipart upload) until it ends or the sweeper removes it,
    /// `upload_ttl` later.
    pub max_open_uploads: u64,
    /// Access control: when it applies, the token service name and lifetimes.
    pub auth: AuthConfig,
    /// Whether clients reach the server over TLS (the token realm is then `https`).
    pub tls: bool,
    /// The token realm to announce, when clients reach the server through a proxy
    /// under another URL; by default `http(s)://<Host header>/token`.
    pub token_realm: Option<String>,
    /// The garbage collector: interval, grace period, keep-untagged.
    pub gc: gc::GcConfig,
    /// The catalog (`catalog.db`: inventories, findings, search): on by default.
    pub catalog: bool,
    /// The web pages (`/`, `/repository/…`, `/signin`): on by default.
    pub ui: bool,
    /// Pull-through caches: repositories under each prefix mirror an upstream.
    pub proxies: Vec<proxy::ProxyConfig>,
    /// Where manifests, tags and links live: `meta.db` or PostgreSQL.
    pub metadata: Metadata,
    /// Most connections to PostgreSQL for the metadata; `None`: the pool's default
    /// (twice the cores, 4 to 16).
    pub metadata_connections: Option<u32>,
    /// Where blob bytes live: `blobs/` under the root (`None`), or a bucket.
    pub blob_store: Option<ObjectConfig>,
    /// Blob GETs answered with a redirect to a presigned URL of the object store,
    /// instead of streamed through the server.
    pub blob_redirect: bool,
}

/// Where the registry's metadata (repositories, manifests, tags, blob links, upload
/// sessions) lives.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Metadata {
    /// `meta.db` in the data folder: the embedded default.
    #[default]
    Sqlite,
    /// A PostgreSQL database that several `berth serve` replicas share: its URL
    /// (`postgres://USER:PASSWORD@HOST:PORT/DATABASE`).
    Postgres(String),
}

impl std::str::FromStr for Metadata {
    type Err = String;

    /// `sqlite`, or a `postgres://` (`postgresql://`) URL.
    fn from_str(s: &str) -> Result<Metadata, String> {
        if s == "sqlite" {
            Ok(Metadata::Sqlite)
        } else if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Ok(Metadata::Postgres(s.to_string()))
        } else {
            Err(format!(
                "{:?}: the metadata is `sqlite` or a postgres://USER:PASSWORD@HOST:PORT/DATABASE URL",
                Metadata::Postgres(s.to_string())
            ))
        }
    }
}

/// Shows a PostgreSQL URL without its password (settings are logged).
impl std::fmt::Debug for Metadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Metadata::Sqlite => f.write_str("sqlite"),
            Metadata::Postgres(url) => f.write_str(&redact_password(url)),
        }
    }
}

/// `scheme://user:password@rest` as `scheme://user:***@rest`.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

impl RegistryConfig {
    /// Defaults for everything but the data folder.
    pub fn new(root: PathBuf) -> RegistryConfig {
        RegistryConfig {
            root,
            upload_ttl: Duration::from_secs(24 * 3600),
            max_open_uploads: DEFAULT_MAX_OPEN_UPLOADS,
            auth: AuthConfig::default(),
            tls: false,
            token_realm: None,
            gc: gc::GcConfig::default(),
            catalog: true,
            ui: true,
            proxies: Vec::new(),
            metadata: Metadata::Sqlite,
            metadata_connections: None,
            blob_store: None,
            blob_redirect: false,
        }
    }
}

/// The metadata pool's settings: `connections` if given, the defaults otherwise.
fn pg_options(connections: Option<u32>) -> PgOptions {
    let mut options = PgOptions::default();
    if let Some(n) = connections {
        options.max_connections = n;
    }
    options
}

/// The shared state of a running registry.
pub struct Registry {
    pub(crate) blobs: BlobStore,
    /// The bucket that holds the blobs instead of `blobs`, when there is one.
    pub(crate) objects: Option<ObjectBlobs>,
    pub(crate) meta: Arc<dyn MetaStore>,
    pub(crate) uploads: uploads::Sessions,
    pub(crate) metrics: metrics::Metrics,
    pub(crate) auth: Auth,
    /// Content trust verdicts already reached (see `trust`).
    pub(crate) verdicts: trust::Verdicts,
    /// One garbage collection at a time in this process.
    pub(crate) gc_lock: std::sync::Mutex<()>,
    /// What is inside the stored images (none when turned off).
    pub(crate) catalog: Option<Arc<berth_catalog::Catalog>>,
    /// Other replicas' changes, heard for the catalog (see `spawn_catalog`).
    catalog_watch: std::sync::OnceLock<berth_store::Watch>,
    /// The web pages' sessions (see `ui`).
    pub(crate) ui: ui::Sessions,
    /// The upstreams of the pull-through cache (see `proxy`).
    pub(crate) proxies: proxy::Proxies,
    /// Replication's queue and what each rule did (see `replication`).
    pub(crate) replication: replication::Replication,
    config: RegistryConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("opening the registry at {root}: {source}")]
    Store {
        root: PathBuf,
        #[source]
        source: berth_store::StoreError,
    },
    #[error("opening the metadata database {url}: {source}")]
    Metadata {
        url: String,
        #[source]
        source: berth_store::StoreError,
    },
    #[error("opening the object store s3://{bucket}: {source}")]
    Objects {
        bucket: String,
        #[source]
        source: berth_store::StoreError,
    },
    #[error("opening the catalog at {root}: {source}")]
    Catalog {
        root: PathBuf,
        #[source]
        source: berth_catalog::CatalogError,
    },
    #[error(transparent)]
    Proxy(#[from] proxy::ProxyConfigError),
    #[error("opening access control at {root}: {source}")]
    Auth {
        root: PathBuf,
        #[source]
        source: berth_auth::AuthError,
    },
}

impl Registry {
    /// Opens the registry: blob files under `config.root`, metadata in SQLite there
    /// (the embedded default) or in PostgreSQL.
    pub fn open(config: RegistryConfig) -> Result<Arc<Registry>, OpenError> {
        let err = |source| OpenError::Store {
            root: config.root.clone(),
            source,
        };
        let proxies = proxy::Proxies::new(&config.proxies)?;
        // The services first: one that cannot be reached (or a setting of it that
        // cannot be used) leaves no data folder behind.
        let objects = match &config.blob_store {
            None => None,
            Some(c) => Some(ObjectBlobs::open(c).map_err(|source| OpenError::Objects {
                bucket: c.bucket.clone(),
                source,
            })?),
        };
        let postgres: Option<Arc<dyn MetaStore>> = match &config.metadata {
            Metadata::Sqlite => None,
            Metadata::Postgres(url) => Some(Arc::new(
                PgMeta::connect(url, &pg_options(config.metadata_connections)).map_err(
                    |source| OpenError::Metadata {
                        url: redact_password(url),
                        source,
                    },
                )?,
            )),
        };
        let blobs = BlobStore::open(&config.root).map_err(err)?;
        let meta: Arc<dyn MetaStore> = match postgres {
            Some(pg) => pg,
            None => Arc::new(SqliteMeta::open(&config.root.join("meta.db")).map_err(err)?),
        };
        // Uploads a crash cut off between their file and their row.
        let bytes: &dyn BlobBytes = match &objects {
            Some(o) => o,
            None => &blobs,
        };
        // Only notes old enough that no commit under way (here or on another replica
        // sharing the database) can own them; younger ones wait for a later pass.
        match berth_store::gc::recover_blob_commits(meta.as_ref(), bytes, berth_store::unix_now()) {
            Ok(removed) if !removed.is_empty() => tracing::info!(
                files = removed.len(),
                "removed blob files that interrupted uploads left without a row"
            ),
            Ok(_) => {}
            Err(source) => return Err(err(source)),
        }
        let catalog = match config.catalog {
            true => {
                let c =
                    berth_catalog::Catalog::open(&config.root, meta.clone()).map_err(|source| {
                        OpenError::Catalog {
                            root: config.root.clone(),
                            source,
                        }
                    })?;
                Some(Arc::new(match &objects {
                    Some(o) => c.with_objects(o.clone()),
                    None => c,
                }))
            }
            false => None,
        };
        let auth_err = |source| OpenError::Auth {
            root: config.root.clone(),
            source,
        };
        // The directory lives where the metadata does: replicas on PostgreSQL share it.
        let auth = match &config.metadata {
            Metadata::Sqlite => Auth::open(&config.root, config.auth.clone()),
            Metadata::Postgres(url) => berth_auth::AuthStore::connect(url)
                .and_then(|store| {
                    adopt_folder_directory(&store, &config.root)?;
                    Ok(store)
                })
                .map_err(berth_auth::AuthError::from)
                .and_then(|store| Auth::with_store(store, &config.root, config.auth.clone())),
        }
        .map_err(auth_err)?;
        Ok(Arc::new(Registry {
            blobs,
            objects,
            meta,
            uploads: uploads::Sessions::default(),
            metrics: metrics::Metrics::new(),
            auth,
            verdicts: trust::Verdicts::default(),
            gc_lock: std::sync::Mutex::new(()),
            catalog,
            catalog_watch: std::sync::OnceLock::new(),
            ui: ui::Sessions::default(),
            proxies,
            replication: replication::Replication::default(),
            config,
        }))
    }

    /// Runs store work that may wait for the disk (file I/O, fsync, a database write)
    /// on the blocking pool, so that request handling never stalls behind it.
    pub(crate) async fn blocking<T, E>(
        self: &Arc<Self>,
        f: impl FnOnce(&Registry) -> Result<T, E> + Send + 'static,
    ) -> Result<T, ApiError>
    where
        T: Send + 'static,
        E: Into<ApiError> + Send + 'static,
    {
        let reg = self.clone();
        tokio::task::spawn_blocking(move || f(&reg))
            .await?
            .map_err(Into::into)
    }

    /// Links a stored blob to `repo`, with the collector's fence: the row is written
    /// only while the file is there (see `MetaStore::link_blob`).
    /// The directory's errors are its own (PostgreSQL restarting is `503`, not a
    /// corrupt store: a push answered 500 while it restarted).
    pub(crate) fn link_blob(
        &self,
        repo: &str,
        digest: &berth_image::Digest,
        size: u64,
    ) -> Result<(), ApiError> {
        let bytes = self.blob_bytes();
        // The namespace's quota, checked again in the write transaction: uploads that
        // passed `policy::check_quota` together cannot go over it.
        let quota = policy::quota_of(self, repo)?;
        self.meta
            .link_blob_within(
                repo,
                digest,
                size,
                &|| bytes.has(digest).unwrap_or(false),
                quota.as_ref().map(|(ns, q)| (ns.as_str(), *q)),
            )
            .map_err(ApiError::from)
    }

    /// Where blob bytes are, for the collector and the metadata's fences.
    pub(crate) fn blob_bytes(&self) -> &dyn BlobBytes {
        match &self.objects {
            Some(o) => o,
            None => &self.blobs,
        }
    }

    /// The catalog, when it is on.
    pub fn catalog(&self) -> Option<&Arc<berth_catalog::Catalog>> {
        self.catalog.as_ref()
    }

    /// Starts the catalog's scan worker and its backfill of content stored before
    /// (see `berth_catalog::Catalog::start`); none when the catalog is off.
    ///
    /// Replicas sharing the metadata each keep a catalog of their own: what another
    /// replica pushes, deletes or signs reaches this one's catalog as its own changes
    /// do, through the metadata store's notifications. Listening starts before the
    /// start-up backfill reads the manifests, so no change falls between the two.
    pub fn spawn_catalog(&self) -> Option<tokio::task::JoinHandle<()>> {
        let catalog = self.catalog.as_ref()?;
        let cat = catalog.clone();
        let heard = Box::new(move |w: Watched| match w {
            Watched::Change(MetaChange::ManifestStored { repository, digest }) => {
                cat.notify(&repository, &digest)
            }
            Watched::Change(MetaChange::ManifestDeleted { repository, digest }) => {
                cat.notify_deleted(&repository, Some(&digest))
            }
            Watched::Change(
                MetaChange::TagDeleted { repository }
                | MetaChange::SignaturesDeleted { repository },
            ) => cat.notify_deleted(&repository, None),
            Watched::Change(MetaChange::Signed { repository }) => {
                cat.notify_signatures(&repository)
            }
            Watched::Missed => cat.catch_up(),
        });
        match self.meta.watch(heard) {
            Ok(Some(w)) => {
                let _ = self.catalog_watch.set(w);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e,
                "the catalog will not hear of other replicas' changes until a restart"),
        }
        catalog.start()
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// Upload sessions this process holds state for in memory (tests check that
    /// requests naming no session leave none).
    #[doc(hidden)]
    pub fn upload_sessions_in_memory(&self) -> usize {
        self.uploads.len()
    }

    /// Access control: the store behind `berth registry …` and the token keys.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// The HTTP application: `/v2/…`, `/extensions/v2/…` (signatures), `/v1/search`,
    /// `/token`, `/api/v1/…`, `/metrics`, `/healthz`, and the web pages unless turned
    /// off (`/`, `/signin`, `/signout`, `/repository/…`, `/static/…`).
    pub fn router(self: &Arc<Self>) -> Router {
        let pages = match self.config.ui {
            true => ui::routes(),
            false => Router::new(),
        };
        Router::new()
            .route("/v2", any(routes::base))
            .route("/v2/", any(routes::base))
            .route("/v2/_catalog", get(listing::catalog))
            .route("/v2/{*path}", any(routes::dispatch))
            .route("/extensions/v2/{*path}", any(signatures::endpoint))
            .route("/v1/search", get(search::search))
            .route("/api/v1/catalog/search", get(catalog_api::search))
            .route(
                "/api/v1/repositories/{*path}",
                any(catalog_api::repositories::endpoint),
            )
            .route("/token", any(token::endpoint))
            .route("/api/v1/{*path}", any(admin_api::endpoint))
            .route("/metrics", get(metrics::render))
            .route("/healthz", get(health))
            .merge(pages)
            .fallback(routes::not_found)
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                metrics::observe,
            ))
            .with_state(self.clone())
    }

    /// Removes upload sessions older than the configured time to live, and upload files
    /// that no session owns (left by a crash during a one-shot upload, or, with object
    /// storage, by one during a pull-through cache's fill). Returns how many it removed.
    pub async fn sweep_uploads(self: &Arc<Self>) -> Result<usize, ApiError> {
        let sessions = match &self.objects {
            Some(objects) => object_uploads::sweep(self, objects).await?,
            None => self.blocking(Registry::sweep_upload_sessions).await?,
        };
        let files = self.blocking(Registry::sweep_upload_files).await?;
        if files > 0 {
            tracing::info!(removed = files, "upload files no session owns removed");
        }
        let tombstones = self
            .blocking(|reg| {
                berth_store::gc::clear_stale_tombstones(
                    reg.meta.as_ref(),
                    reg.blob_bytes(),
                    berth_store::unix_now(),
                )
            })
            .await?;
        if tombstones > 0 {
            tracing::info!(tombstones, "finished blob removals a stop cut off");
        }
        Ok(sessions + files)
    }

    fn sweep_upload_sessions(&self) -> Result<usize, ApiError> {
        let ttl = self.config.upload_ttl.as_secs() as i64;
        let cutoff = berth_store::unix_now() - ttl;
        let mut removed = 0;
        for id in self.meta.stale_uploads(cutoff)? {
            self.uploads.forget(&id);
            self.blobs.remove_upload(&id)?;
            self.meta.delete_upload(&id)?;
            removed += 1;
        }
        if removed > 0 {
            tracing::info!(removed, "expired upload sessions removed");
        }
        Ok(removed)
    }

    /// Files under `uploads/` that no session owns and nothing wrote to within the
    /// time to live (a fill under way writes all the time).
    fn sweep_upload_files(&self) -> Result<usize, ApiError> {
        let mut removed = 0;
        for id in self.blobs.upload_ids()? {
            if self.meta.upload(&id)?.is_none() && self.uploads.is_idle_orphan(&id) {
                let old = self.blobs.upload_age(&id);
                if old.is_some_and(|age| age > self.config.upload_ttl) {
                    self.blobs.remove_upload(&id)?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Runs [`Registry::sweep_uploads`] periodically until the task is dropped.
    pub fn spawn_upload_sweeper(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let reg = self.clone();
        let every =
            (self.config.upload_ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(300));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if let Err(e) = reg.sweep_uploads().await {
                    tracing::warn!(error = ?e, "upload sweep failed");
                }
            }
        })
    }
}

async fn health(State(reg): State<Arc<Registry>>) -> Response {
    let mut resp = match reg.meta.counts() {
        Ok(_) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain")],
            "ok\n",
        )
            .into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    };
    resp.extensions_mut().insert(metrics::RouteLabel("health"));
    resp
}

/// Brings the folder's `auth.db` into an empty shared directory (see
/// [`berth_auth::adopt_folder_directory`]) and says what happened.
fn adopt_folder_directory(
    store: &berth_auth::AuthStore,
    root: &std::path::Path,
) -> Result<(), berth_auth::StoreError> {
    match berth_auth::adopt_folder_directory(store, root)? {
        berth_auth::Adopted::Nothing => {}
        berth_auth::Adopted::Copied(rows) => tracing::info!(
            rows,
            root = %root.display(),
            "copied the folder's access-control directory (auth/auth.db) into PostgreSQL, \
             where it lives from now on"
        ),
        berth_auth::Adopted::Ignored => tracing::warn!(
            root = %root.display(),
            "auth/auth.db under the root is not used: the access-control directory is in \
             PostgreSQL with the metadata"
        ),
    }
    Ok(())
}
