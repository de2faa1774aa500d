//! `berth serve`: configuration (flags > `BERTH_*` environment > TOML file > defaults),
//! logging, signals and graceful shutdown around the registry's router.

mod limits;
mod proxy;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use berth_auth::{AuthConfig, Mode};
use berth_registry::{Registry, RegistryConfig};
use clap::Args;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

const DEFAULT_LISTEN: &str = "127.0.0.1:5000";
const DEFAULT_UPLOAD_TTL: Duration = Duration::from_secs(24 * 3600);
const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(300);
const DEFAULT_GC_INTERVAL: Duration = Duration::from_secs(3600);
const DEFAULT_GC_GRACE: Duration = Duration::from_secs(24 * 3600);
const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Args, Debug)]
#[command(
    after_help = "Every option can also be set in the TOML file given with --config \
(keys: listen, root, metadata, metadata_connections, blob_store, s3_endpoint, s3_region, s3_path_style, \
s3_access_key_id, s3_secret_access_key, blob_redirect, upload_ttl, max_open_uploads, shutdown_timeout, log_level, log_format, auth, tls_cert, \
tls_key, token_realm, token_lifetime, gc_interval, gc_grace, gc_keep_untagged, catalog, ui, max_connections, header_timeout, \
body_timeout) or with the environment variable shown; pull-through caches only there, as \
[[proxy]] tables (prefix, url, username, password, credential_helper, tag_ttl, max_size, \
pinned, prefetch, read_timeout). Flags win \
over the environment, which wins over the file.\n\nAccess control: a registry with no \
users (nor grants) is open (anyone may push and pull); once `berth registry user add` \
created one, every request is checked, for good. Send SIGHUP to reload the TLS certificate."
)]
pub struct ServeArgs {
    /// Address to listen on: HOST:PORT (a name is resolved), or :PORT for every
    /// interface, as docker-registry reads it [default: 127.0.0.1:5000]
    #[arg(long, env = "BERTH_LISTEN", value_name = "ADDR")]
    listen: Option<String>,
    /// TOML configuration file
    #[arg(long, env = "BERTH_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Remove upload sessions idle this long, with their data, e.g. "24h" [default: 24h]
    #[arg(long, env = "BERTH_UPLOAD_TTL", value_name = "DURATION", value_parser = humantime::parse_duration)]
    upload_ttl: Option<Duration>,
    /// Most upload sessions open at once in one namespace; another is refused with
    /// 429 TOOMANYREQUESTS [default: 1000]
    #[arg(long, env = "BERTH_MAX_OPEN_UPLOADS", value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_open_uploads: Option<u64>,
    /// Where manifests, tags and blob links live: `sqlite` (meta.db in the data
    /// folder) or a PostgreSQL database that several replicas share,
    /// postgres://USER:PASSWORD@HOST:PORT/DATABASE [default: sqlite]
    #[arg(long, env = "BERTH_METADATA", value_name = "sqlite|URL")]
    metadata: Option<String>,
    /// With PostgreSQL: most connections this replica opens for the metadata, which
    /// is also how many metadata calls run at once (more wait their turn) [default:
    /// twice the cores, at least 4, at most 16]
    #[arg(long, env = "BERTH_METADATA_CONNECTIONS", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    metadata_connections: Option<u32>,
    /// Where blob bytes live: `files` (blobs/ in the data folder) or an S3-compatible
    /// bucket, s3://BUCKET[/PREFIX]; credentials from AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY (or the file's s3_access_key_id, s3_secret_access_key)
    /// [default: files]
    #[arg(
        long,
        env = "BERTH_BLOB_STORE",
        value_name = "files|s3://BUCKET[/PREFIX]"
    )]
    blob_store: Option<String>,
    /// The object store's URL, for anything but AWS, e.g. http://127.0.0.1:3900
    #[arg(long, env = "BERTH_S3_ENDPOINT", value_name = "URL")]
    s3_endpoint: Option<String>,
    /// The object store's region [default: AWS_REGION, else us-east-1]
    #[arg(long, env = "BERTH_S3_REGION", value_name = "REGION")]
    s3_region: Option<String>,
    /// Path-style addressing (ENDPOINT/BUCKET/KEY), as MinIO, Garage and most
    /// self-hosted stores want [default: true with --s3-endpoint, else false]
    #[arg(long, env = "BERTH_S3_PATH_STYLE", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    s3_path_style: Option<bool>,
    /// Answer blob GETs with a 307 redirect to a presigned URL of the object store
    /// (ranges are still served through berth) [default: false]
    #[arg(long, env = "BERTH_BLOB_REDIRECT", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    blob_redirect: Option<bool>,
    /// On SIGTERM/SIGINT, let requests in flight finish for this long, e.g. "30s" [default: 30s]
    #[arg(long, env = "BERTH_SHUTDOWN_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    shutdown_timeout: Option<Duration>,
    /// Log filter: error, warn, info (one line per request), debug, or a tracing directive [default: info]
    #[arg(long, env = "BERTH_LOG_LEVEL", value_name = "FILTER")]
    log_level: Option<String>,
    /// Log format: text or json [default: text]
    #[arg(long, env = "BERTH_LOG_FORMAT", value_name = "FORMAT", value_parser = ["text", "json"])]
    log_format: Option<String>,
    /// Access control: "auto" (open while no user exists) or "required" (always checked) [default: auto]
    #[arg(long, env = "BERTH_AUTH", value_name = "MODE", value_parser = ["auto", "required"])]
    auth: Option<String>,
    /// Serve HTTPS with this PEM certificate (chain); needs --tls-key
    #[arg(
        long,
        env = "BERTH_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert
    #[arg(
        long,
        env = "BERTH_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
    /// Token realm to announce when clients reach the registry through a proxy
    /// [default: http(s)://<host the client used>/token]
    #[arg(long, env = "BERTH_TOKEN_REALM", value_name = "URL")]
    token_realm: Option<String>,
    /// How long an access token lives, e.g. "5m" [default: 5m]
    #[arg(long, env = "BERTH_TOKEN_LIFETIME", value_name = "DURATION", value_parser = humantime::parse_duration)]
    token_lifetime: Option<Duration>,
    /// Run the garbage collector this often; "0s" turns it off (`berth registry gc`
    /// still runs it on demand) [default: 1h]
    #[arg(long, env = "BERTH_GC_INTERVAL", value_name = "DURATION", value_parser = humantime::parse_duration)]
    gc_interval: Option<Duration>,
    /// The collector spares content stored or linked less than this long ago, e.g. "24h" [default: 24h]
    #[arg(long, env = "BERTH_GC_GRACE", value_name = "DURATION", value_parser = parse_grace)]
    gc_grace: Option<Duration>,
    /// The collector keeps untagged manifests (and what they reference) [default: false]
    #[arg(long, env = "BERTH_GC_KEEP_UNTAGGED", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    gc_keep_untagged: Option<bool>,
    /// Inventory every pushed image (packages, OS, Containerfile), match it with the
    /// imported vulnerability data, index it for search; `false` turns the catalog
    /// off [default: true]
    #[arg(long, env = "BERTH_CATALOG", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    catalog: Option<bool>,
    /// The web pages: search, repositories, images, sign-in (`on`), or none, the
    /// registry and its API only (`off`) [default: on]
    #[arg(long, env = "BERTH_UI", value_name = "on|off", value_parser = parse_on_off)]
    ui: Option<bool>,
    /// Serve at most this many connections at once; the next ones are answered 503
    /// with Retry-After (closed at once under TLS) [default: from the open-files limit,
    /// at most 4096]
    #[arg(long, env = "BERTH_MAX_CONNECTIONS", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: Option<u32>,
    /// A request's head (line and headers) must arrive within this, and an idle
    /// keep-alive connection is closed after it; "0s" turns it off [default: 30s]
    #[arg(long, env = "BERTH_HEADER_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    header_timeout: Option<Duration>,
    /// A request whose body sends no byte for this long ends (a slow but steady
    /// upload goes on); "0s" turns it off [default: 60s]
    #[arg(long, env = "BERTH_BODY_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    body_timeout: Option<Duration>,
}

/// The TOML file: the same keys as the flags.
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    root: Option<PathBuf>,
    metadata: Option<String>,
    metadata_connections: Option<u32>,
    blob_store: Option<String>,
    s3_endpoint: Option<String>,
    s3_region: Option<String>,
    s3_path_style: Option<bool>,
    s3_access_key_id: Option<String>,
    s3_secret_access_key: Option<String>,
    blob_redirect: Option<bool>,
    #[serde(default, with = "humantime_serde_opt")]
    upload_ttl: Option<Duration>,
    max_open_uploads: Option<u64>,
    #[serde(default, with = "humantime_serde_opt")]
    shutdown_timeout: Option<Duration>,
    log_level: Option<String>,
    log_format: Option<String>,
    auth: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    token_realm: Option<String>,
    #[serde(default, with = "humantime_serde_opt")]
    token_lifetime: Option<Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    gc_interval: Option<Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    gc_grace: Option<Duration>,
    gc_keep_untagged: Option<bool>,
    catalog: Option<bool>,
    /// `true`/`false`, or `"on"`/`"off"` as the flag says it.
    #[serde(default, deserialize_with = "on_off_serde::deserialize")]
    ui: Option<bool>,
    max_connections: Option<u32>,
    #[serde(default, with = "humantime_serde_opt")]
    header_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    body_timeout: Option<Duration>,
    /// Pull-through cache upstreams (only in the file: a list of tables).
    #[serde(default)]
    proxy: Vec<proxy::FileProxy>,
}

/// A grace period (`--gc-grace`, `berth registry gc --grace`): a duration the
/// collector can take, since one past [`berth_store::gc::MAX_GRACE`] used to wrap into
/// a cutoff in the future.
pub(crate) fn parse_grace(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    berth_store::gc::check_grace(d)
}

/// `--ui on|off` (`true`/`false` too); the TOML file takes either, as a string or a
/// boolean.
fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" | "true" => Ok(true),
        "off" | "false" => Ok(false),
        _ => Err(format!("{s:?}: on or off")),
    }
}

mod on_off_serde {
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OnOff {
        Bool(bool),
        Word(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        match Option::<OnOff>::deserialize(d)? {
            None => Ok(None),
            Some(OnOff::Bool(b)) => Ok(Some(b)),
            Some(OnOff::Word(w)) => super::parse_on_off(&w)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }
}

mod humantime_serde_opt {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| humantime::parse_duration(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// Settings after every source is merged.
#[derive(Debug)]
struct Settings {
    /// As given; [`listen_addrs`] reads it.
    listen: String,
    root: PathBuf,
    metadata: berth_registry::Metadata,
    metadata_connections: Option<u32>,
    blob_store: Option<berth_store::ObjectConfig>,
    blob_redirect: bool,
    upload_ttl: Duration,
    max_open_uploads: u64,
    shutdown_timeout: Duration,
    log_level: String,
    log_format: String,
    auth: Mode,
    tls: Option<(PathBuf, PathBuf)>,
    token_realm: Option<String>,
    token_lifetime: Duration,
    gc: berth_registry::gc::GcConfig,
    catalog: bool,
    ui: bool,
    limits: limits::Limits,
    proxies: Vec<berth_registry::proxy::ProxyConfig>,
}

/// The TOML file at `path`, or nothing.
fn read_file(path: Option<&std::path::Path>) -> anyhow::Result<FileConfig> {
    Ok(match path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config file {}", path.display()))?;
            toml::from_str::<FileConfig>(&text)
                .with_context(|| format!("parsing config file {}", path.display()))?
        }
        None => FileConfig::default(),
    })
}

/// Where a registry's content is, as `berth serve` finds it from the same settings.
#[derive(Debug)]
pub(crate) struct Stores {
    pub root: PathBuf,
    pub metadata: berth_registry::Metadata,
    pub objects: Option<berth_store::ObjectConfig>,
}

/// [`Stores`] for the commands that work on a registry's data folder (`berth
/// registry gc`, `fsck`, …): `--root`/`BERTH_ROOT`, the `BERTH_METADATA`,
/// `BERTH_BLOB_STORE` and `BERTH_S3_*` variables, then the config file `config`
/// (`--config`/`BERTH_CONFIG`), then the defaults, in serve's order. A server whose
/// file named its bucket was once checked against the empty `blobs/` folder: every
/// row missing its file.
pub(crate) fn stores(config: Option<&std::path::Path>) -> anyhow::Result<Stores> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let s3_path_style = match var("BERTH_S3_PATH_STYLE").as_deref() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => anyhow::bail!("BERTH_S3_PATH_STYLE is true or false, not {other:?}"),
    };
    let given = Given {
        metadata: var("BERTH_METADATA"),
        blob_store: var("BERTH_BLOB_STORE"),
        s3_endpoint: var("BERTH_S3_ENDPOINT"),
        s3_region: var("BERTH_S3_REGION"),
        s3_path_style,
    };
    stores_of(given, &read_file(config)?)
}

/// The store settings given before the file: serve's flags (and their variables), or
/// the variables alone for the folder commands.
struct Given {
    metadata: Option<String>,
    blob_store: Option<String>,
    s3_endpoint: Option<String>,
    s3_region: Option<String>,
    s3_path_style: Option<bool>,
}

/// [`Stores`] from what was given, then the file, then the defaults: one order for
/// serve and the folder commands.
fn stores_of(given: Given, file: &FileConfig) -> anyhow::Result<Stores> {
    Ok(Stores {
        root: match crate::paths::registry_root_given().or_else(|| file.root.clone()) {
            Some(root) => root,
            None => crate::paths::registry_root()?,
        },
        metadata: match given.metadata.or_else(|| file.metadata.clone()) {
            Some(m) => m.parse().map_err(anyhow::Error::msg)?,
            None => berth_registry::Metadata::Sqlite,
        },
        objects: object_config(
            given
                .blob_store
                .or_else(|| file.blob_store.clone())
                .as_deref(),
            given.s3_endpoint.or_else(|| file.s3_endpoint.clone()),
            given.s3_region.or_else(|| file.s3_region.clone()),
            given.s3_path_style.or(file.s3_path_style),
            file.s3_access_key_id
                .clone()
                .zip(file.s3_secret_access_key.clone()),
        )?,
    })
}

fn load(args: ServeArgs) -> anyhow::Result<Settings> {
    let file = read_file(args.config.as_deref())?;
    let Stores {
        root,
        metadata,
        objects: blob_store,
    } = stores_of(
        Given {
            metadata: args.metadata,
            blob_store: args.blob_store,
            s3_endpoint: args.s3_endpoint,
            s3_region: args.s3_region,
            s3_path_style: args.s3_path_style,
        },
        &file,
    )?;
    let blob_redirect = args.blob_redirect.or(file.blob_redirect).unwrap_or(false);
    if blob_redirect && blob_store.is_none() {
        anyhow::bail!("--blob-redirect needs an object store (--blob-store s3://…)");
    }
    Ok(Settings {
        blob_store,
        blob_redirect,
        listen: args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_string()),
        root,
        metadata,
        metadata_connections: match args.metadata_connections.or(file.metadata_connections) {
            Some(0) => anyhow::bail!("metadata_connections must be at least 1"),
            n => n,
        },
        upload_ttl: args
            .upload_ttl
            .or(file.upload_ttl)
            .unwrap_or(DEFAULT_UPLOAD_TTL),
        max_open_uploads: match args.max_open_uploads.or(file.max_open_uploads) {
            Some(0) => anyhow::bail!("max_open_uploads must be at least 1"),
            n => n.unwrap_or(berth_registry::DEFAULT_MAX_OPEN_UPLOADS),
        },
        shutdown_timeout: args
            .shutdown_timeout
            .or(file.shutdown_timeout)
            .unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT),
        log_level: args
            .log_level
            .or(file.log_level)
            .unwrap_or_else(|| "info".into()),
        log_format: args
            .log_format
            .or(file.log_format)
            .unwrap_or_else(|| "text".into()),
        auth: match args.auth.or(file.auth).as_deref() {
            None | Some("auto") => Mode::Auto,
            Some("required") => Mode::Required,
            Some(other) => anyhow::bail!("auth must be auto or required, not {other:?}"),
        },
        tls: match (
            args.tls_cert.or(file.tls_cert),
            args.tls_key.or(file.tls_key),
        ) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => anyhow::bail!("tls_cert and tls_key go together"),
        },
        token_realm: args.token_realm.or(file.token_realm),
        token_lifetime: args
            .token_lifetime
            .or(file.token_lifetime)
            .unwrap_or(DEFAULT_TOKEN_LIFETIME),
        gc: berth_registry::gc::GcConfig {
            interval: Some(
                args.gc_interval
                    .or(file.gc_interval)
                    .unwrap_or(DEFAULT_GC_INTERVAL),
            )
            .filter(|d| !d.is_zero()),
            // The flag's value was checked as it was parsed; the file's is here.
            grace: berth_store::gc::check_grace(
                args.gc_grace.or(file.gc_grace).unwrap_or(DEFAULT_GC_GRACE),
            )
            .map_err(|e| anyhow::anyhow!("gc_grace: {e}"))?,
            keep_untagged: args
                .gc_keep_untagged
                .or(file.gc_keep_untagged)
                .unwrap_or(false),
        },
        catalog: args.catalog.or(file.catalog).unwrap_or(true),
        ui: args.ui.or(file.ui).unwrap_or(true),
        proxies: file
            .proxy
            .into_iter()
            .map(proxy::FileProxy::into_config)
            .collect::<anyhow::Result<_>>()?,
        limits: limits::Limits {
            max_connections: match args.max_connections.or(file.max_connections) {
                Some(0) => anyhow::bail!("max_connections must be at least 1"),
                Some(n) => {
                    if let Some(warning) = limits::open_files_for(n as usize) {
                        warn(&warning);
                    }
                    n as usize
                }
                None => limits::default_max_connections(),
            },
            header_timeout: Some(
                args.header_timeout
                    .or(file.header_timeout)
                    .unwrap_or(DEFAULT_HEADER_TIMEOUT),
            )
            .filter(|d| !d.is_zero()),
            body_timeout: Some(
                args.body_timeout
                    .or(file.body_timeout)
                    .unwrap_or(DEFAULT_BODY_TIMEOUT),
            )
            .filter(|d| !d.is_zero()),
        },
    })
}

/// The object store `blob_store` names (`None` for `files` or nothing), with its
/// settings and their defaults: the region from `AWS_REGION`, else us-east-1;
/// path-style addressing when an endpoint is given; credentials from `key` (the config
/// file) or, when `None`, from the `AWS_*` variables.
pub(crate) fn object_config(
    blob_store: Option<&str>,
    endpoint: Option<String>,
    region: Option<String>,
    path_style: Option<bool>,
    key: Option<(String, String)>,
) -> anyhow::Result<Option<berth_store::ObjectConfig>> {
    let url = match blob_store {
        None | Some("files") => return Ok(None),
        Some(url) => url,
    };
    let mut c = berth_store::ObjectConfig::from_url(url).map_err(anyhow::Error::msg)?;
    c.path_style = path_style.unwrap_or(endpoint.is_some());
    c.endpoint = endpoint;
    c.region = region
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| Some("us-east-1".into()));
    if let Some((id, secret)) = key {
        c.access_key_id = Some(id);
        c.secret_access_key = Some(secret);
    }
    Ok(Some(c))
}

/// The global `--debug` for every other command: their debug messages (and the
/// HTTP client's connections) on stderr. TLS and HTTP/2 internals stay quiet.
pub fn debug_logging() -> anyhow::Result<()> {
    init_logging("debug,rustls=info,h2=info,mio=info", "text")
}

/// A warning on stderr, where the operator looks; a stderr that is gone (a log pipe
/// whose reader died) loses it rather than stop the server (`eprintln!` panics).
fn warn(warning: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "berth: WARNING: {warning}");
}

fn init_logging(level: &str, format: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .with_context(|| format!("bad log filter {level:?}"))?;
    // A log line that cannot be written is lost, quietly: tracing-subscriber's report
    // of it is an `eprintln!`, which panics when stderr is the broken pipe, in the
    // request's task (the request failed) or the signal task (SIGTERM then did nothing).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .log_internal_errors(false)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
    Ok(())
}

/// Runs the registry; `debug` (the global `--debug`) sets the log level to debug.
pub fn run(args: ServeArgs, debug: bool) -> anyhow::Result<()> {
    let mut settings = load(args)?;
    if debug {
        settings.log_level = "debug".into();
    }
    init_logging(&settings.log_level, &settings.log_format)?;
    tracing::debug!(?settings, "configuration");
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(serve(settings))
}

async fn serve(s: Settings) -> anyhow::Result<()> {
    // Everything that can fail on the command line's account (the certificate, the
    // address) is checked before the data folder is created: a mistyped flag must not
    // leave an empty registry behind.
    let certificate = match &s.tls {
        Some((cert, key)) => Some(crate::tls::Certificate::load(cert, key)?),
        None => None,
    };
    let addrs = listen_addrs(&s.listen)?;
    let listener = tokio::net::TcpListener::bind(&addrs[..])
        .await
        .with_context(|| format!("listening on {}", s.listen))?;
    // The data folder is made by Registry::open, once the services it names answer.
    let registry = Registry::open(RegistryConfig {
        upload_ttl: s.upload_ttl,
        max_open_uploads: s.max_open_uploads,
        auth: AuthConfig {
            mode: s.auth,
            token_lifetime: s.token_lifetime,
            ..AuthConfig::default()
        },
        tls: s.tls.is_some(),
        token_realm: s.token_realm.clone(),
        gc: s.gc.clone(),
        catalog: s.catalog,
        ui: s.ui,
        proxies: s.proxies.clone(),
        metadata: s.metadata.clone(),
        metadata_connections: s.metadata_connections,
        blob_store: s.blob_store.clone(),
        blob_redirect: s.blob_redirect,
        ..RegistryConfig::new(s.root.clone())
    })?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, root = %s.root.display(), tls = certificate.is_some(), "berth registry listening");
    warn_if_open(&registry, addr)?;
    let sweeper = registry.spawn_upload_sweeper();
    let collector = registry.spawn_collector();
    let catalog = registry.spawn_catalog();
    let replication = registry.spawn_replication();

    let stop = CancellationToken::new();
    tokio::spawn(wait_for_signal(stop.clone()));
    let tls = match &certificate {
        Some(cert) => {
            tokio::spawn(reload_on_hangup(cert.clone()));
            Some(tokio_rustls::TlsAcceptor::from(cert.server_config()?))
        }
        None => None,
    };
    tracing::info!(limits = ?s.limits, "connection limits");
    let server = limits::serve(
        listener,
        tls,
        registry.router(),
        s.limits.clone(),
        stop.clone(),
    );
    let deadline = async {
        stop.cancelled().await;
        tokio::time::sleep(s.shutdown_timeout).await;
    };
    tokio::select! {
        () = server => {}
        () = deadline => tracing::warn!(
            timeout = ?s.shutdown_timeout,
            "requests still running at the shutdown deadline; exiting anyway"
        ),
    }
    sweeper.abort();
    replication.abort();
    if let Some(c) = collector {
        c.abort();
    }
    if let Some(c) = catalog {
        c.abort();
    }
    tracing::info!("berth registry stopped");
    Ok(())
}

/// The addresses `--listen` names, to bind in order until one works, as Go's
/// `net.Listen` (and so docker-registry) reads them: `:PORT` is every interface (IPv6
/// and IPv4 on one socket where the system has IPv6, else IPv4); a host name is
/// resolved, its IPv4 addresses first.
fn listen_addrs(spec: &str) -> anyhow::Result<Vec<SocketAddr>> {
    use std::net::{Ipv4Addr, Ipv6Addr, ToSocketAddrs};
    let bad = || format!("--listen {spec:?}: use HOST:PORT or :PORT");
    if let Some(port) = spec.strip_prefix(':') {
        let port: u16 = port.parse().with_context(bad)?;
        return Ok(vec![
            SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)),
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
        ]);
    }
    if let Ok(addr) = spec.parse::<SocketAddr>() {
        return Ok(vec![addr]);
    }
    let mut addrs: Vec<SocketAddr> = spec.to_socket_addrs().with_context(bad)?.collect();
    addrs.sort_by_key(|a| a.is_ipv6());
    if addrs.is_empty() {
        anyhow::bail!("--listen {spec:?}: the name has no address");
    }
    Ok(addrs)
}

/// An open registry (nothing configured, `--auth auto`) reachable beyond this machine lets anyone
/// push: say so where the operator looks.
fn warn_if_open(registry: &Registry, addr: SocketAddr) -> anyhow::Result<()> {
    let (_, enforced) = registry.auth().directory()?;
    if let Some(warning) = open_warning(enforced, addr) {
        warn(&warning);
        tracing::warn!(%addr, "open registry listening beyond loopback");
    }
    Ok(())
}

fn open_warning(enforced: bool, addr: SocketAddr) -> Option<String> {
    (!enforced && !addr.ip().is_loopback()).then(|| {
        format!(
            "the registry on {addr} has no users or grants, so anyone who can reach it may push, pull \
             and delete. Add one with `berth registry user add NAME` (access control then \
             applies at once) or listen on 127.0.0.1."
        )
    })
}

/// SIGHUP: read the certificate files again; a bad file keeps the old certificate.
async fn reload_on_hangup(cert: std::sync::Arc<crate::tls::Certificate>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::error!("cannot install the SIGHUP handler; certificates will not reload");
        return;
    };
    while hup.recv().await.is_some() {
        match cert.reload() {
            Ok(()) => tracing::info!("TLS certificate reloaded"),
            Err(e) => tracing::error!(
                error = format!("{e:#}"),
                "TLS certificate not reloaded; keeping the old one"
            ),
        }
    }
}

async fn wait_for_signal(stop: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the registry with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutting down: no new connections, finishing requests in flight");
    stop.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_registry_beyond_loopback_is_warned_about() {
        let any: SocketAddr = "0.0.0.0:5000".parse().unwrap();
        let lo: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let lo6: SocketAddr = "[::1]:5000".parse().unwrap();
        assert!(open_warning(false, any).unwrap().contains("0.0.0.0:5000"));
        assert!(open_warning(false, lo).is_none());
        assert!(open_warning(false, lo6).is_none());
        assert!(open_warning(true, any).is_none());
    }

    /// A grace past what unix seconds hold (it wrapped into a cutoff in the future,
    /// and the collector removed everything) is refused from the flag and the file.
    #[test]
    fn a_grace_too_long_is_refused_where_it_is_given() {
        assert!(parse_grace("24h").is_ok());
        let e = parse_grace("300000000000y").unwrap_err();
        assert!(e.contains("longest grace period"), "{e}");
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            serve: ServeArgs,
        }
        let Err(e) =
            <Cli as clap::Parser>::try_parse_from(["serve", "--gc-grace", "300000000000y"])
        else {
            panic!("--gc-grace 300000000000y is refused");
        };
        assert!(e.to_string().contains("longest grace period"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("berth.toml");
        std::fs::write(&config, "gc_grace = \"300000000000y\"\n").unwrap();
        let config = config.to_str().unwrap();
        let cli = <Cli as clap::Parser>::try_parse_from(["serve", "--config", config]).unwrap();
        let e = load(cli.serve).unwrap_err().to_string();
        assert!(
            e.contains("gc_grace") && e.contains("longest grace period"),
            "{e}"
        );
    }

    #[test]
    fn ui_is_on_or_off() {
        assert_eq!(parse_on_off("on"), Ok(true));
        assert_eq!(parse_on_off("off"), Ok(false));
        assert_eq!(parse_on_off("false"), Ok(false));
        assert!(parse_on_off("maybe").is_err());
        let file: FileConfig = toml::from_str("ui = false").unwrap();
        assert_eq!(file.ui, Some(false));
    }

    #[test]
    fn listen_reads_addresses_as_docker_registry_does() {
        let addrs = |s: &str| listen_addrs(s).unwrap();
        assert_eq!(
            addrs(":5000"),
            vec![
                "[::]:5000".parse().unwrap(),
                "0.0.0.0:5000".parse().unwrap()
            ]
        );
        assert_eq!(
            addrs("127.0.0.1:5000"),
            vec!["127.0.0.1:5000".parse().unwrap()]
        );
        assert_eq!(addrs("[::1]:5000"), vec!["[::1]:5000".parse().unwrap()]);
        let local = addrs("localhost:5000");
        assert!(local
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 5000));
        assert!(local[0].is_ipv4(), "{local:?}");
        for bad in [":", ":x", "5000", "127.0.0.1", ":70000", "127.0.0.1:x"] {
            assert!(listen_addrs(bad).is_err(), "{bad}");
        }
    }
}
