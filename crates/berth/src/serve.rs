//! `berth serve`: configuration (flags > `BERTH_*` environment > TOML file > defaults),
//! logging, signals and graceful shutdown around the registry's router.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use berth_registry::{Registry, RegistryConfig};
use clap::Args;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

const DEFAULT_LISTEN: &str = "127.0.0.1:5000";
const DEFAULT_UPLOAD_TTL: Duration = Duration::from_secs(24 * 3600);
const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Args, Debug)]
#[command(
    after_help = "Every option can also be set in the TOML file given with --config \
(keys: listen, root, upload_ttl, shutdown_timeout, log_level, log_format) or with the \
environment variable shown. Flags win over the environment, which wins over the file."
)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:5000]
    #[arg(long, env = "BERTH_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Data folder [default: $XDG_DATA_HOME/berth/registry, or /var/lib/berth/registry as root]
    #[arg(long, env = "BERTH_ROOT", value_name = "DIR")]
    root: Option<PathBuf>,
    /// TOML configuration file
    #[arg(long, env = "BERTH_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Remove upload sessions idle this long, with their data, e.g. "24h" [default: 24h]
    #[arg(long, env = "BERTH_UPLOAD_TTL", value_name = "DURATION", value_parser = humantime::parse_duration)]
    upload_ttl: Option<Duration>,
    /// On SIGTERM/SIGINT, let requests in flight finish for this long, e.g. "30s" [default: 30s]
    #[arg(long, env = "BERTH_SHUTDOWN_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    shutdown_timeout: Option<Duration>,
    /// Log filter: error, warn, info (one line per request), debug, or a tracing directive [default: info]
    #[arg(long, env = "BERTH_LOG_LEVEL", value_name = "FILTER")]
    log_level: Option<String>,
    /// Log format: text or json [default: text]
    #[arg(long, env = "BERTH_LOG_FORMAT", value_name = "FORMAT", value_parser = ["text", "json"])]
    log_format: Option<String>,
}

/// The TOML file: the same keys as the flags.
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    root: Option<PathBuf>,
    #[serde(default, with = "humantime_serde_opt")]
    upload_ttl: Option<Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    shutdown_timeout: Option<Duration>,
    log_level: Option<String>,
    log_format: Option<String>,
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
    listen: SocketAddr,
    root: PathBuf,
    upload_ttl: Duration,
    shutdown_timeout: Duration,
    log_level: String,
    log_format: String,
}

fn load(args: ServeArgs) -> anyhow::Result<Settings> {
    let file = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config file {}", path.display()))?;
            toml::from_str::<FileConfig>(&text)
                .with_context(|| format!("parsing config file {}", path.display()))?
        }
        None => FileConfig::default(),
    };
    Ok(Settings {
        listen: args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default address")),
        root: match args.root.or(file.root) {
            Some(root) => root,
            None => default_root()?,
        },
        upload_ttl: args
            .upload_ttl
            .or(file.upload_ttl)
            .unwrap_or(DEFAULT_UPLOAD_TTL),
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
    })
}

/// `/var/lib/berth/registry` for root, else under `$XDG_DATA_HOME` (or `~/.local/share`).
fn default_root() -> anyhow::Result<PathBuf> {
    if is_root() {
        return Ok(PathBuf::from("/var/lib/berth/registry"));
    }
    let data = match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => {
            let home = std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .context("neither XDG_DATA_HOME nor HOME is set; pass --root")?;
            Path::new(&home).join(".local/share")
        }
    };
    Ok(data.join("berth/registry"))
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn init_logging(s: &Settings) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&s.log_level)
        .with_context(|| format!("bad log filter {:?}", s.log_level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if s.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
    Ok(())
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let settings = load(args)?;
    init_logging(&settings)?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(serve(settings))
}

async fn serve(s: Settings) -> anyhow::Result<()> {
    std::fs::create_dir_all(&s.root).with_context(|| format!("creating {}", s.root.display()))?;
    let registry = Registry::open(RegistryConfig {
        upload_ttl: s.upload_ttl,
        ..RegistryConfig::new(s.root.clone())
    })?;
    let listener = tokio::net::TcpListener::bind(s.listen)
        .await
        .with_context(|| format!("listening on {}", s.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, root = %s.root.display(), "berth registry listening");
    let sweeper = registry.spawn_upload_sweeper();

    let stop = CancellationToken::new();
    tokio::spawn(wait_for_signal(stop.clone()));
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(listener, registry.router())
        .with_graceful_shutdown(stop.clone().cancelled_owned());
    let deadline = async {
        stop.cancelled().await;
        tokio::time::sleep(s.shutdown_timeout).await;
    };
    tokio::select! {
        r = server => r.context("serving")?,
        () = deadline => tracing::warn!(
            timeout = ?s.shutdown_timeout,
            "requests still running at the shutdown deadline; exiting anyway"
        ),
    }
    sweeper.abort();
    tracing::info!("berth registry stopped");
    Ok(())
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
