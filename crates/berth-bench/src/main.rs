//! `berth-bench`: measures berth and docker-registry (distribution) side by side in one
//! run, interleaved (berth, docker-registry, berth, docker-registry, ... per
//! repetition), on 127.0.0.1 only, and prints a Markdown table on stdout (progress on
//! stderr). See bench/README.md.

mod build;
mod catalog;
mod client;
mod data;
mod gc;
mod http;
mod load;
mod local;
mod pg_pool;
mod proxy;
mod relay;
mod replicas;
mod report;
mod s3_reads;
mod server;
mod sign;
mod stress;
mod transfer;
mod ui;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use base64::Engine;
use clap::Parser;

use crate::data::{BigFile, SmallImage, GIB, MIB};
use crate::http::{Conn, MANIFEST_ACCEPT, USER_AGENT};
use crate::report::{fmt_num, Table};
use crate::server::{CpuMark, Env, Kind, Server};
use crate::transfer::Source;

pub(crate) const SMALL_REPO: &str = "bench/small";
const BIG_REPO: &str = "bench/big";
const TAGS_REPO: &str = "bench/tags";
const SMALL_IMAGES: usize = 200;
const SETUP_CONNECTIONS: usize = 4;
const TAG_CONNECTIONS: usize = 8;
const STARTUP_ROUNDS: usize = 5;
const IDLE_WAIT: Duration = Duration::from_secs(1);
/// Background CPU (other processes + steal) above which a phase's numbers are suspect.
const BG_WARN_CORES: f64 = 0.3;

#[derive(Parser, Debug)]
#[command(
    name = "berth-bench",
    version,
    about = "Benchmark berth against docker-registry (distribution) side by side, on 127.0.0.1",
    after_help = "Metrics (names for --only): manifest_get_rps, blob_head_rps, push_1g \
(push_1g_server_cpu_s_per_gib, push_1g_server_sys_s_per_gib, push_1g_MBps), blob_get_MBps, idle_rss_mib, \
push_4g_peak_rss_mib, startup_10k_tags_ms, copy_1g, sync_200, sign_200 and policy_pull (need gpg), local_pull_1g, local_images_1000, \
local_rmi_1000 (the local_* phases need podman), build_cached (needs root and runc or crun), gc (gc_pull_rps, gc_collect_s), proxy_pull (proxy_miss_ms, proxy_hit_ms, proxy_miss_cpu_ms, proxy_miss_far_ms: berth as a pull-through cache of docker-registry, on loopback and 10 ms away), catalog_push (berth with and without its catalog; needs a Debian host), replicas_pull (three berth replicas against one on Garage + PostgreSQL; needs garage and postgresql), \
pg_pool (pg_manifest_get_*: berth on PostgreSQL with its default pool against 16 connections; needs postgresql), \
s3_reads (manifest GET rate, tags list and catalog with 10,000 tags and repositories: berth on Garage + PostgreSQL against docker-registry on the same Garage; needs garage and postgresql), ui_pages (server-side page times, berth only), ui_paint (first paint in chromium; needs node, npm ci in crates/berth/tests/ui, debootstrap), \
stress (10,000 pulling connections and 100 pushers with token auth, berth only; needs an open-files hard limit of at least 10,361). The table goes to stdout, progress to stderr. \
Exit status 0 when the benchmark ran (missed targets show as FAIL rows), 2 when setup failed."
)]
struct Args {
    /// The berth binary [default: `berth` next to this binary, i.e. target/release/berth]
    #[arg(long, value_name = "PATH")]
    berth: Option<PathBuf>,
    /// The docker-registry binary (distribution 2.x)
    #[arg(long, value_name = "PATH", default_value = "docker-registry")]
    docker_registry: PathBuf,
    /// Repetitions per metric [default: 3, 1 with --quick]
    #[arg(long, value_name = "N")]
    reps: Option<usize>,
    /// Seconds of each load phase [default: 10, 3 with --quick]
    #[arg(long, value_name = "SECS")]
    duration: Option<u64>,
    /// Smoke run: 1 rep, 3 s loads, 256 MiB / 1 GiB blobs, 1000 tags, 100 local images,
    /// 3 cached builds
    #[arg(long)]
    quick: bool,
    /// Work directory: cached test data, prepared roots, scratch storage, logs
    /// [default: $TMPDIR/berth-bench]
    #[arg(long, value_name = "DIR")]
    workdir: Option<PathBuf>,
    /// Run only these metrics (comma-separated)
    #[arg(long, value_name = "METRIC[,..]", value_delimiter = ',')]
    only: Vec<String>,
    /// Keep-alive connections of the request-rate loads
    #[arg(long, value_name = "N", default_value_t = 32)]
    connections: usize,
    /// Threads of the load generator (it shares the machine's cores with the server)
    #[arg(long, value_name = "N", default_value_t = 2)]
    client_threads: usize,
    /// Seconds of the stress phase's load [default: 60, 10 with --quick]
    #[arg(long, value_name = "SECS")]
    stress_seconds: Option<u64>,
}

/// `--only` names: each phase and the table rows it fills.
const PHASES: &[(&str, &[&str])] = &[
    (
        "manifest_get_rps",
        &[
            "manifest_get_rps",
            "manifest_get_p99_ms",
            "manifest_get_server_cpu_us",
        ],
    ),
    (
        "blob_head_rps",
        &[
            "blob_head_rps",
            "blob_head_p99_ms",
            "blob_head_server_cpu_us",
        ],
    ),
    (
        "push_1g",
        &[
            "push_1g_server_cpu_s_per_gib",
            "push_1g_server_sys_s_per_gib",
            "push_1g_MBps",
        ],
    ),
    ("blob_get_MBps", &["blob_get_MBps"]),
    ("idle_rss_mib", &["idle_rss_mib", "startup_empty_ms"]),
    ("push_4g_peak_rss_mib", &["push_4g_peak_rss_mib"]),
    ("startup_10k_tags_ms", &["startup_10k_tags_ms"]),
    (
        "auth_manifest_get",
        &["auth_manifest_get_rps", "auth_manifest_get_server_cpu_us"],
    ),
    (
        "copy_1g",
        &[
            "copy_1g_MBps",
            "copy_1g_to_oci_MBps",
            "copy_1g_from_oci_MBps",
            "copy_1g_peak_rss_mib",
        ],
    ),
    ("sync_200", &["sync_200_images_per_s"]),
    (
        "sign_200",
        &["sign_200_images_per_s", "sign_200_keyfile_images_per_s"],
    ),
    ("policy_pull", &["policy_pull_images_per_s"]),
    (
        "local_pull_1g",
        &["local_pull_1g_MBps", "local_pull_1g_peak_rss_mib"],
    ),
    ("local_images_1000", &["local_images_1000_ms"]),
    (
        "local_rmi_1000",
        &["local_rmi_1000_ms", "local_prune_1000_ms"],
    ),
    ("build_cached", &["build_cached_ms", "build_first_ms"]),
    ("gc", &["gc_pull_rps", "gc_collect_s"]),
    (
        "proxy_pull",
        &[
            "proxy_miss_ms",
            "proxy_hit_ms",
            "proxy_miss_cpu_ms",
            "proxy_miss_far_ms",
        ],
    ),
    (
        "catalog_push",
        &[
            "catalog_push_ms",
            "catalog_push_analysis_cpu_s",
            "catalog_push_inventoried",
        ],
    ),
    (
        "ui_pages",
        &["ui_pages_worst_median_ms", "ui_pages_worst_p90_ms"],
    ),
    ("ui_paint", &["ui_paint_fcp_ms"]),
    (
        "replicas_pull",
        &[
            "replicas_pull_rps",
            "replicas_pull_p99_ms",
            "replicas_pull_host_busy_cores",
        ],
    ),
    (
        "pg_pool",
        &[
            "pg_manifest_get_rps",
            "pg_manifest_get_p99_ms",
            "pg_manifest_get_p999_ms",
            "pg_manifest_get_max_ms",
        ],
    ),
    (
        "s3_reads",
        &[
            "s3_manifest_get_rps",
            "s3_manifest_get_p99_ms",
            "tags_list_10k_ms",
            "catalog_10k_ms",
        ],
    ),
    (
        "stress",
        &[
            "stress_pull_rps",
            "stress_pull_p99_ms",
            "stress_push_p99_ms",
            "stress_push_images_per_s",
            stress::ROW_ERRORS,
            "stress_peak_rss_mib",
            "stress_peak_fds",
            "stress_refused_503",
        ],
    ),
];

/// Timed rebuilds of build_cached at least (well under a second each: cheap, and the
/// median of an absolute target should not rest on 3 samples).
const BUILD_MIN_REPS: usize = 5;
const BUILD_MIN_REPS_QUICK: usize = 3;

struct Config {
    berth: PathBuf,
    docker_registry: PathBuf,
    reps: usize,
    duration: Duration,
    connections: usize,
    client_threads: usize,
    workdir: PathBuf,
    /// Blob size of push_1g and blob_get.
    big_size: u64,
    /// Blob size of push_4g.
    huge_size: u64,
    tags: usize,
    /// Images in the local stores of local_images_1000 and local_rmi_1000.
    local_images: usize,
    /// Timed rebuilds of build_cached.
    build_reps: usize,
    /// Manifests of the gc phase (five blobs each, half garbage).
    gc_manifests: usize,
    /// Seconds of the stress load.
    stress_seconds: u64,
    phases: BTreeSet<&'static str>,
}

impl Config {
    fn new(a: Args) -> Result<Config> {
        let berth = match a.berth {
            Some(p) => p,
            None => std::env::current_exe()
                .context("locating this binary")?
                .parent()
                .context("this binary has no parent directory")?
                .join("berth"),
        };
        if !berth.is_file() {
            bail!(
                "berth binary {} not found: build it with `cargo build --release -p berth -p berth-bench` or pass --berth",
                berth.display()
            );
        }
        let reps = a.reps.unwrap_or(if a.quick { 1 } else { 3 });
        let secs = a.duration.unwrap_or(if a.quick { 3 } else { 10 });
        if !(1..=100).contains(&reps) {
            bail!("--reps must be 1..=100");
        }
        if !(1..=600).contains(&secs) {
            bail!("--duration must be 1..=600 seconds");
        }
        if !(1..=1024).contains(&a.connections) {
            bail!("--connections must be 1..=1024");
        }
        if !(1..=64).contains(&a.client_threads) {
            bail!("--client-threads must be 1..=64");
        }
        let stress_seconds = a.stress_seconds.unwrap_or(if a.quick { 10 } else { 60 });
        if !(1..=3600).contains(&stress_seconds) {
            bail!("--stress-seconds must be 1..=3600");
        }
        let mut phases = BTreeSet::new();
        if a.only.is_empty() {
            phases.extend(PHASES.iter().map(|p| p.0));
        }
        for name in a.only.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
            let phase = PHASES
                .iter()
                .find(|(p, rows)| *p == name || rows.contains(&name))
                .map(|p| p.0);
            match phase {
                Some(p) => {
                    phases.insert(p);
                }
                None => bail!(
                    "unknown metric {name:?} in --only; known: {}",
                    PHASES
                        .iter()
                        .map(|p| p.0)
                        .chain(report::row_ids())
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
        if phases.is_empty() {
            bail!("--only names no metric");
        }
        let workdir = a
            .workdir
            .unwrap_or_else(|| std::env::temp_dir().join("berth-bench"));
        fs::create_dir_all(&workdir)
            .with_context(|| format!("creating work directory {}", workdir.display()))?;
        Ok(Config {
            berth,
            docker_registry: a.docker_registry,
            reps,
            duration: Duration::from_secs(secs),
            connections: a.connections,
            client_threads: a.client_threads,
            workdir,
            big_size: if a.quick { 256 * MIB } else { GIB },
            huge_size: if a.quick { GIB } else { 4 * GIB },
            tags: if a.quick { 1000 } else { 10_000 },
            local_images: if a.quick { 100 } else { 1000 },
            build_reps: reps.max(if a.quick {
                BUILD_MIN_REPS_QUICK
            } else {
                BUILD_MIN_REPS
            }),
            gc_manifests: if a.quick { 1000 } else { 10_000 },
            stress_seconds,
            phases,
        })
    }

    fn wants(&self, phase: &str) -> bool {
        self.phases.contains(phase)
    }
}

static START: OnceLock<Instant> = OnceLock::new();

/// A progress line on stderr, with the seconds since the start.
pub fn progress(msg: &str) {
    let t = START.get_or_init(Instant::now).elapsed().as_secs_f64();
    eprintln!("[{t:7.1}s] {msg}");
}

fn main() -> ExitCode {
    START.get_or_init(Instant::now);
    let cfg = match Config::new(Args::parse()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berth-bench: {e:#}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cfg.client_threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth-bench: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    rt.spawn(server::kill_children_on_signal());
    let mut table = Table::new();
    let mut header = String::new();
    // Every server is started and stopped inside `run` (on this thread).
    let result = rt.block_on(run(&cfg, &mut table, &mut header));
    let code = match &result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("berth-bench: setup failed: {e:#}");
            2
        }
    };
    if result.is_ok() || !table.is_empty() {
        let took = START.get().map_or(0.0, |t| t.elapsed().as_secs_f64());
        println!("## berth-bench: berth vs docker-registry\n");
        print!("{header}");
        println!(
            "- total time {took:.0} s{}\n",
            if result.is_ok() {
                ""
            } else {
                "; SETUP FAILED, table incomplete"
            }
        );
        print!("{}", table.markdown());
    }
    ExitCode::from(code)
}

async fn run(cfg: &Config, table: &mut Table, header: &mut String) -> Result<()> {
    let mut env = Env::new(cfg.berth.clone(), cfg.docker_registry.clone(), &cfg.workdir)?;
    // Run a private copy, so that a rebuild of target/release/berth during the run
    // (the build directory is shared) cannot mix two binaries in one table.
    let copy = env.run.join("berth");
    fs::copy(&cfg.berth, &copy)
        .with_context(|| format!("copying {} to {}", cfg.berth.display(), copy.display()))?;
    env.berth = copy;
    let berth_version = version(&env.berth)?;
    let dr_version = version(&cfg.docker_registry)?;
    *header = format!(
        "- berth: {} ({berth_version}; run from a copy in the work directory)\n- docker-registry: {} ({dr_version}), filesystem storage, \
         inmemory blob descriptor cache, log level warn (its access log stays on)\n\
         - {} rep(s), interleaved berth then docker-registry in every rep; loads {} s x {} \
         connections, client {} threads; push/get blob {} MiB; push_4g {} MiB; {} tags; host {} cores\n\
         - values are medians (min–max over reps); ratio = berth / docker-registry\n",
        cfg.berth.display(),
        cfg.docker_registry.display(),
        cfg.reps,
        cfg.duration.as_secs(),
        cfg.connections,
        cfg.client_threads,
        cfg.big_size / MIB,
        cfg.huge_size / MIB,
        cfg.tags,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    progress(&format!(
        "berth-bench: {} -> work directory {}",
        cfg.phases.iter().copied().collect::<Vec<_>>().join(", "),
        cfg.workdir.display()
    ));
    let data_dir = cfg.workdir.join("data");
    fs::create_dir_all(&data_dir)?;

    if cfg.wants("idle_rss_mib") {
        let m = CpuMark::now();
        idle_phase(cfg, &env, table)?;
        background(table, "idle_rss_mib", m);
    }
    if cfg.wants("startup_10k_tags_ms") {
        let root = tags_root(cfg, &env).await?;
        let m = CpuMark::now();
        startup_phase(&env, table, &root)?;
        background(table, "startup_10k_tags_ms", m);
    }
    let long_phases = [
        "manifest_get_rps",
        "blob_head_rps",
        "push_1g",
        "blob_get_MBps",
    ];
    if long_phases.iter().any(|p| cfg.wants(p)) {
        progress("starting one long-running instance of each registry on empty storage");
        let b = Server::start(&env, Kind::Berth, None)?;
        let d = Server::start(&env, Kind::Distribution, None)?;
        let servers = [&b, &d];
        if cfg.wants("manifest_get_rps") || cfg.wants("blob_head_rps") {
            let images = Arc::new(data::small_images(SMALL_IMAGES));
            for s in servers {
                push_small(s, &images).await?;
            }
            for (phase, head_only) in [("manifest_get_rps", false), ("blob_head_rps", true)] {
                if cfg.wants(phase) {
                    let m = CpuMark::now();
                    load_phase(cfg, table, servers, &images, head_only).await?;
                    background(table, phase, m);
                }
            }
        }
        if cfg.wants("push_1g") || cfg.wants("blob_get_MBps") {
            let n = if cfg.wants("push_1g") { cfg.reps } else { 1 };
            let files = (0..n as u64)
                .map(|i| data::big_file(&data_dir, cfg.big_size, i))
                .collect::<Result<Vec<_>>>()?;
            sync();
            if cfg.wants("push_1g") {
                let m = CpuMark::now();
                push_phase(cfg, table, servers, &files).await;
                background(table, "push_1g", m);
            }
            if cfg.wants("blob_get_MBps") {
                let m = CpuMark::now();
                get_phase(cfg, table, servers, &files[0]).await?;
                background(table, "blob_get_MBps", m);
            }
        }
        progress("stopping the long-running instances");
    }
    if cfg.wants("auth_manifest_get") {
        let m = CpuMark::now();
        auth_phase(cfg, &env, table).await?;
        background(table, "auth_manifest_get", m);
    }
    if cfg.wants("copy_1g") {
        let m = CpuMark::now();
        client::copy_phase(&env, table, &data_dir, cfg.big_size, cfg.reps)?;
        background(table, "copy_1g", m);
    }
    if cfg.wants("sync_200") {
        let m = CpuMark::now();
        let source = Server::start(&env, Kind::Berth, None)?;
        let images = Arc::new(data::small_images(SMALL_IMAGES));
        push_small(&source, &images).await?;
        client::sync_phase(&env, table, &source, SMALL_IMAGES, cfg.reps)?;
        background(table, "sync_200", m);
    }
    if cfg.wants("sign_200") {
        let m = CpuMark::now();
        let source = Server::start(&env, Kind::Berth, None)?;
        let images = Arc::new(data::small_images(SMALL_IMAGES));
        push_small(&source, &images).await?;
        sign::sign_phase(&env, table, &source, &images, cfg.reps)?;
        background(table, "sign_200", m);
    }
    if cfg.wants("policy_pull") {
        let m = CpuMark::now();
        let source = Server::start(&env, Kind::Berth, None)?;
        let images = Arc::new(data::small_images(1));
        push_small(&source, &images).await?;
        sign::policy_pull_phase(&env, table, &source, &images[0], cfg.reps)?;
        background(table, "policy_pull", m);
    }
    if cfg.wants("local_pull_1g") {
        let m = CpuMark::now();
        local::pull_phase(&env, table, &data_dir, cfg.big_size, cfg.reps)?;
        background(table, "local_pull_1g", m);
    }
    if cfg.wants("local_images_1000") || cfg.wants("local_rmi_1000") {
        let stores = local::Stores::new(&env, &cfg.workdir, cfg.local_images)?;
        if cfg.wants("local_images_1000") {
            let m = CpuMark::now();
            local::images_phase(&stores, table, cfg.reps)?;
            background(table, "local_images_1000", m);
        }
        if cfg.wants("local_rmi_1000") {
            let m = CpuMark::now();
            local::rmi_phase(&stores, table, cfg.reps)?;
            background(table, "local_rmi_1000", m);
        }
    }
    if cfg.wants("build_cached") {
        let m = CpuMark::now();
        // A missing prerequisite (root, runc) or a failed setup fails this phase only.
        if let Err(e) = build::cached_phase(&env, &cfg.workdir, table, cfg.build_reps) {
            progress(&format!("build_cached: FAILED: {e:#}"));
            table.error("build_cached_ms", "berth", format!("{e:#}"));
        }
        background(table, "build_cached", m);
    }
    if cfg.wants("gc") {
        let m = CpuMark::now();
        gc::gc_phase(&env, table, cfg.gc_manifests).await?;
        background(table, "gc", m);
    }
    if cfg.wants("proxy_pull") {
        let m = CpuMark::now();
        proxy::proxy_phase(&env, table, cfg.reps).await?;
        background(table, "proxy_pull", m);
    }
    if cfg.wants("catalog_push") {
        let m = CpuMark::now();
        catalog::push_phase(&env, table, &data_dir, cfg.reps).await?;
        background(table, "catalog_push", m);
    }
    if cfg.wants("replicas_pull") {
        let m = CpuMark::now();
        // A missing Garage fails this phase only (berth-testenv says what to install).
        let r =
            std::panic::AssertUnwindSafe(replicas::pull_phase(&env, table, cfg.reps, cfg.duration));
        if let Err(e) = caught(r).await {
            table.row("replicas_pull_rps").errors.push(e);
        }
        background(table, "replicas_pull", m);
    }
    if cfg.wants("pg_pool") {
        let m = CpuMark::now();
        let r =
            std::panic::AssertUnwindSafe(pg_pool::pool_phase(&env, table, cfg.reps, cfg.duration));
        if let Err(e) = caught(r).await {
            table.row("pg_manifest_get_rps").errors.push(e);
        }
        background(table, "pg_pool", m);
    }
    if cfg.wants("s3_reads") {
        let m = CpuMark::now();
        let r = std::panic::AssertUnwindSafe(s3_reads::reads_phase(
            &env,
            table,
            cfg.reps,
            cfg.duration,
        ));
        if let Err(e) = caught(r).await {
            table.row("s3_manifest_get_rps").errors.push(e);
        }
        background(table, "s3_reads", m);
    }
    for (phase, row) in [
        ("ui_pages", "ui_pages_worst_median_ms"),
        ("ui_paint", "ui_paint_fcp_ms"),
    ] {
        if cfg.wants(phase) {
            let m = CpuMark::now();
            // A missing prerequisite (chromium, node, debootstrap) fails this phase only.
            let r = if phase == "ui_pages" {
                ui::pages_phase(&env, table, &data_dir).await
            } else {
                ui::paint_phase(&env, table, &data_dir).await
            };
            if let Err(e) = r {
                progress(&format!("{phase}: FAILED: {e:#}"));
                table.error(row, "berth", format!("{e:#}"));
            }
            background(table, phase, m);
        }
    }
    if cfg.wants("push_4g_peak_rss_mib") {
        let m = CpuMark::now();
        push_4g_phase(cfg, &env, table).await?;
        background(table, "push_4g_peak_rss_mib", m);
    }
    if cfg.wants("stress") {
        let m = CpuMark::now();
        stress::stress_phase(&env, table, cfg.stress_seconds).await;
        background(table, "stress", m);
    }
    Ok(())
}

/// `PATH --version`, first line.
fn version(bin: &Path) -> Result<String> {
    let out = Command::new(bin)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .with_context(|| format!("running {} --version", bin.display()))?;
    if !out.status.success() {
        bail!("{} --version failed: {}", bin.display(), out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string())
}

pub(crate) fn sync() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
}

fn who(s: &Server) -> &'static str {
    s.kind.name()
}

fn is_berth(s: &Server) -> bool {
    s.kind == Kind::Berth
}

/// Notes how much CPU other processes took since `m`.
fn background(table: &mut Table, phase: &str, m: CpuMark) {
    let cores = m.background_cores(&CpuMark::now());
    let warn = if cores > BG_WARN_CORES {
        " — CONTAMINATED: other processes were busy, trust ratios more than absolute values"
    } else {
        ""
    };
    progress(&format!(
        "{phase}: background CPU {cores:.2} cores (other processes + steal){warn}"
    ));
    table.notes.push(format!(
        "{phase}: background CPU (other processes + steal) {cores:.2} cores{warn}"
    ));
}

// ---------------------------------------------------------------------------
// 5. idle RSS (and startup on empty storage)
// ---------------------------------------------------------------------------

fn idle_phase(cfg: &Config, env: &Env, table: &mut Table) -> Result<()> {
    for rep in 1..=cfg.reps {
        for kind in [Kind::Berth, Kind::Distribution] {
            let s = Server::start(env, kind, None)?;
            std::thread::sleep(IDLE_WAIT);
            let rss = s.mem_mib("VmRSS");
            let ms = s.startup.as_secs_f64() * 1e3;
            progress(&format!(
                "idle rep {rep} {}: started in {ms:.1} ms, VmRSS {rss:.1} MiB after 1 s",
                kind.name()
            ));
            table.add("idle_rss_mib", kind == Kind::Berth, rss);
            table.add("startup_empty_ms", kind == Kind::Berth, ms);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// 7. startup with many tags
// ---------------------------------------------------------------------------

/// The prepared berth root holding `cfg.tags` tags, built once and cached in the work
/// directory; checked by an untimed start that counts the tags.
async fn tags_root(cfg: &Config, env: &Env) -> Result<PathBuf> {
    let roots = cfg.workdir.join("roots");
    fs::create_dir_all(&roots)?;
    let root = roots.join(format!("berth-{}-tags", cfg.tags));
    let ready = roots.join(format!("berth-{}-tags.ready", cfg.tags));
    if ready.exists() {
        match check_tags(env, &root, cfg.tags).await {
            Ok(()) => return Ok(root),
            Err(e) => progress(&format!(
                "cached root {} is not usable ({e:#}); rebuilding it",
                root.display()
            )),
        }
    }
    let _ = fs::remove_file(&ready);
    let _ = fs::remove_dir_all(&root);
    let tmp = roots.join(format!("berth-{}-tags.tmp", cfg.tags));
    let _ = fs::remove_dir_all(&tmp);
    build_tags_root(env, &tmp, cfg.tags).await?;
    fs::rename(&tmp, &root)?;
    fs::write(&ready, "")?;
    check_tags(env, &root, cfg.tags).await?;
    Ok(root)
}

async fn build_tags_root(env: &Env, root: &Path, tags: usize) -> Result<()> {
    progress(&format!(
        "preparing a berth root with {tags} tags in {} (one-time)",
        root.display()
    ));
    let t0 = Instant::now();
    let s = Server::start(env, Kind::Berth, Some(root))?;
    let img = data::small_images(1).remove(0);
    let mut c = Conn::connect(s.port, 0).await?;
    push_image(&mut c, TAGS_REPO, &img, "t00000").await?;
    let manifest = Arc::new(img.manifest);
    let port = s.port;
    let tasks: Vec<_> = (0..TAG_CONNECTIONS)
        .map(|k| {
            let manifest = manifest.clone();
            tokio::spawn(async move {
                let mut c = Conn::connect(port, 0).await?;
                for t in (k..tags).step_by(TAG_CONNECTIONS) {
                    http::put_manifest(
                        &mut c,
                        TAGS_REPO,
                        &format!("t{t:05}"),
                        data::OCI_MANIFEST,
                        &manifest,
                    )
                    .await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await.context("tagging task panicked")??;
    }
    let n = http::count_tags(&mut c, TAGS_REPO).await?;
    if n != tags {
        bail!("{TAGS_REPO} has {n} tags after tagging, expected {tags}");
    }
    progress(&format!(
        "  {tags} tags in {:.1} s",
        t0.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Starts berth on `root` (untimed; also warms the page cache) and counts its tags.
async fn check_tags(env: &Env, root: &Path, tags: usize) -> Result<()> {
    let s = Server::start(env, Kind::Berth, Some(root))?;
    let mut c = Conn::connect(s.port, 0).await?;
    let n = http::count_tags(&mut c, TAGS_REPO).await?;
    if n != tags {
        bail!("it has {n} tags, expected {tags}");
    }
    Ok(())
}

fn startup_phase(env: &Env, table: &mut Table, root: &Path) -> Result<()> {
    for round in 1..=STARTUP_ROUNDS {
        let b = Server::start(env, Kind::Berth, Some(root))?;
        let bms = b.startup.as_secs_f64() * 1e3;
        drop(b);
        let d = Server::start(env, Kind::Distribution, None)?;
        let dms = d.startup.as_secs_f64() * 1e3;
        drop(d);
        table.add("startup_10k_tags_ms", true, bms);
        table.add("startup_10k_tags_ms", false, dms);
        progress(&format!(
            "startup round {round}: berth (tags root) {bms:.1} ms, docker-registry (empty) {dms:.1} ms"
        ));
    }
    table.notes.push(
        "startup_10k_tags_ms: spawn to the first 200 on GET /v2/ (polled every 2 ms), median of 5 \
         warm starts; berth on the prepared root with the tags, docker-registry on an EMPTY root \
         (reference only, so its ratio means little)"
            .into(),
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// 1, 2. request rates
// ---------------------------------------------------------------------------

/// Runs a phase that starts services through berth-testenv, which panics with what to
/// install when one is missing: that fails the phase, with its message, not the run.
async fn caught(
    phase: std::panic::AssertUnwindSafe<impl std::future::Future<Output = Result<()>>>,
) -> std::result::Result<(), String> {
    match futures_util::FutureExt::catch_unwind(phase).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(panic) => Err(panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the phase panicked".into())),
    }
}

async fn push_image(c: &mut Conn, repo: &str, img: &SmallImage, tag: &str) -> Result<()> {
    http::upload_blob(c, repo, &img.layer_digest, &img.layer).await?;
    http::upload_blob(c, repo, &img.config_digest, &img.config).await?;
    http::put_manifest(c, repo, tag, data::OCI_MANIFEST, &img.manifest).await
}

/// Pushes the tiny images to `bench/small` over a few keep-alive connections.
pub(crate) async fn push_small(s: &Server, images: &Arc<Vec<SmallImage>>) -> Result<()> {
    let t0 = Instant::now();
    let port = s.port;
    let tasks: Vec<_> = (0..SETUP_CONNECTIONS)
        .map(|k| {
            let images = images.clone();
            tokio::spawn(async move {
                let mut c = Conn::connect(port, 0).await?;
                for img in images.iter().skip(k).step_by(SETUP_CONNECTIONS) {
                    push_image(&mut c, SMALL_REPO, img, &img.tag).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await
            .context("push task panicked")?
            .with_context(|| format!("pushing the tiny images to {}", who(s)))?;
    }
    progress(&format!(
        "pushed {} tiny images to {} in {:.1} s",
        images.len(),
        who(s),
        t0.elapsed().as_secs_f64()
    ));
    Ok(())
}

pub(crate) fn build_requests(
    port: u16,
    images: &[SmallImage],
    head_only: bool,
    headers: &[(&str, &str)],
) -> Vec<Vec<u8>> {
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    images
        .iter()
        .map(|img| {
            if head_only {
                format!(
                    "HEAD /v2/{SMALL_REPO}/blobs/{} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
                     User-Agent: {USER_AGENT}\r\n{extra}\r\n",
                    img.layer_digest
                )
            } else {
                format!(
                    "GET /v2/{SMALL_REPO}/manifests/{} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
                     User-Agent: {USER_AGENT}\r\nAccept: {MANIFEST_ACCEPT}\r\n{extra}\r\n",
                    img.tag
                )
            }
            .into_bytes()
        })
        .collect()
}

/// Sends every request once, untimed; each must answer 2xx.
pub(crate) async fn warm_up(s: &Server, requests: &[Vec<u8>], head_only: bool) -> Result<()> {
    let mut c = Conn::connect(s.port, 0).await?;
    for (i, req) in requests.iter().enumerate() {
        c.write_all(req).await?;
        let head = c.read_head().await?;
        if !head_only {
            c.read_body(&head, &mut |_: &[u8]| {}).await?;
        }
        if !head.ok() {
            let line = String::from_utf8_lossy(req);
            bail!(
                "{}: request {i} ({}) answered HTTP {}",
                who(s),
                line.lines().next().unwrap_or(""),
                head.status
            );
        }
    }
    Ok(())
}

async fn load_phase(
    cfg: &Config,
    table: &mut Table,
    servers: [&Server; 2],
    images: &[SmallImage],
    head_only: bool,
) -> Result<()> {
    let name = if head_only {
        "blob_head"
    } else {
        "manifest_get"
    };
    let mut entries = Vec::new();
    for s in servers {
        let reqs = build_requests(s.port, images, head_only, &[]);
        warm_up(s, &reqs, head_only).await?;
        entries.push(LoadEntry {
            server: s,
            who: who(s),
            requests: Arc::new(reqs),
            left: is_berth(s),
        });
    }
    measure_load(cfg, table, name, &entries, head_only, true).await;
    Ok(())
}

/// One side of a load comparison: a server, the requests it gets, and its column.
struct LoadEntry<'a> {
    server: &'a Server,
    who: &'static str,
    requests: Arc<Vec<Vec<u8>>>,
    /// The table's left ("berth") column, else the right one.
    left: bool,
}

/// Runs `cfg.reps` interleaved repetitions over `entries` and fills the rows
/// `{name}_rps`, `{name}_server_cpu_us` and, when `p99`, `{name}_p99_ms`.
async fn measure_load(
    cfg: &Config,
    table: &mut Table,
    name: &str,
    entries: &[LoadEntry<'_>],
    head_only: bool,
    p99: bool,
) {
    let (rps_id, p99_id, cpu_id) = (
        format!("{name}_rps"),
        format!("{name}_p99_ms"),
        format!("{name}_server_cpu_us"),
    );
    for rep in 1..=cfg.reps {
        for e in entries {
            let s = e.server;
            let cpu0 = s.cpu_seconds();
            let r = load::run(
                s.port,
                e.requests.clone(),
                head_only,
                cfg.connections,
                cfg.duration,
            )
            .await;
            let cpu = s.cpu_seconds() - cpu0;
            let r = match r {
                Ok(r) => r,
                Err(err) => {
                    table.error(&rps_id, e.who, format!("{err:#}"));
                    continue;
                }
            };
            progress(&format!(
                "{name} rep {rep} {}: {} req/s ({} ok, {} errors in {:.2} s), p50 {:.3} ms, p99 {:.3} ms, server CPU {:.2} s",
                e.who,
                fmt_num(r.rps()),
                r.ok,
                r.errors,
                r.elapsed.as_secs_f64(),
                r.p50_ms,
                r.p99_ms,
                cpu
            ));
            if r.errors > 0 {
                table.error(
                    &rps_id,
                    e.who,
                    format!(
                        "rep {rep}: {} failed requests of {}; first: {}",
                        r.errors,
                        r.errors + r.ok,
                        r.first_error.as_deref().unwrap_or("?")
                    ),
                );
            }
            if r.ok == 0 {
                continue;
            }
            table.add(&rps_id, e.left, r.rps());
            if p99 {
                table.add(&p99_id, e.left, r.p99_ms);
            }
            table.add(&cpu_id, e.left, cpu * 1e6 / r.ok as f64);
        }
    }
}

// ---------------------------------------------------------------------------
// auth: manifest GET with token auth against the same server without auth
// ---------------------------------------------------------------------------

const AUTH_USER: &str = "bench";
const AUTH_PASSWORD: &str = "bench-password";

/// Two berth servers with the same content: one open (no users), one where user
/// `bench` exists and every request carries a bearer token for `bench/small:pull`.
/// The left column is the one with auth; the ratio is auth / no auth.
async fn auth_phase(cfg: &Config, env: &Env, table: &mut Table) -> Result<()> {
    progress("auth: starting two berth instances (no auth, token auth)");
    let open = Server::start(env, Kind::Berth, None)?;
    let auth = Server::start_with(env, Kind::Berth, None, &["--token-lifetime", "1h"])?;
    let images = Arc::new(data::small_images(SMALL_IMAGES));
    push_small(&open, &images).await?;
    push_small(&auth, &images).await?;
    add_user(env, auth.root())?;
    let token = fetch_token(auth.port, &format!("repository:{SMALL_REPO}:pull")).await?;
    let bearer = format!("Bearer {token}");

    let plain = build_requests(open.port, &images, false, &[]);
    let with_token = build_requests(auth.port, &images, false, &[("Authorization", &bearer)]);
    // Access control is on: the same request without the token is refused.
    let refused = build_requests(auth.port, &images[..1], false, &[]);
    if warm_up(&auth, &refused, false).await.is_ok() {
        bail!("auth: the server with a user answered a request without a token");
    }
    warm_up(&open, &plain, false).await?;
    warm_up(&auth, &with_token, false).await?;
    table.notes.push(
        "auth_manifest_get_*: both columns are berth; left: every request carries a bearer \
         token (ES256, verified per request, cached), right: the same server without users"
            .into(),
    );
    let entries = [
        LoadEntry {
            server: &open,
            who: "berth without auth",
            requests: Arc::new(plain),
            left: false,
        },
        LoadEntry {
            server: &auth,
            who: "berth with token auth",
            requests: Arc::new(with_token),
            left: true,
        },
    ];
    measure_load(cfg, table, "auth_manifest_get", &entries, false, false).await;
    Ok(())
}

fn add_user(env: &Env, root: &Path) -> Result<()> {
    let mut child = Command::new(&env.berth)
        .args(["registry", "--root"])
        .arg(root)
        .args(["user", "add", AUTH_USER, "--password-stdin"])
        .stdin(Stdio::piped())
        .spawn()
        .context("running berth registry user add")?;
    if let Some(mut stdin) = child.stdin.take() {
        std::io::Write::write_all(&mut stdin, format!("{AUTH_PASSWORD}\n").as_bytes())?;
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("berth registry user add failed: {status}");
    }
    Ok(())
}

/// A token for `scope` (e.g. `repository:bench/small:pull`), as a client gets one.
async fn fetch_token(port: u16, scope: &str) -> Result<String> {
    let mut c = Conn::connect(port, 0).await?;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{AUTH_USER}:{AUTH_PASSWORD}"))
    );
    let path = format!("/token?service=berth&scope={scope}");
    let resp = c
        .request("GET", &path, &[("Authorization", &basic)], &[])
        .await?
        .expect(&[200], "GET /token")?;
    let v: serde_json::Value = serde_json::from_slice(&resp.body)?;
    v["token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("GET /token: no token in {v}"))
}

// ---------------------------------------------------------------------------
// 3, 4. big blob push and get
// ---------------------------------------------------------------------------

async fn push_phase(cfg: &Config, table: &mut Table, servers: [&Server; 2], files: &[BigFile]) {
    const CPU: &str = "push_1g_server_cpu_s_per_gib";
    const SYS: &str = "push_1g_server_sys_s_per_gib";
    const RATE: &str = "push_1g_MBps";
    for (rep, f) in files.iter().enumerate().take(cfg.reps) {
        for s in servers {
            // Untimed: the source in the page cache, nothing dirty left to write back.
            if let Err(e) = data::read_through(&f.path) {
                table.error(CPU, who(s), format!("{e:#}"));
                continue;
            }
            sync();
            match transfer::push(s, BIG_REPO, Source::File(f)).await {
                Ok(r) => {
                    let gib = r.bytes as f64 / GIB as f64;
                    let per_gib = r.server_cpu_s / gib;
                    progress(&format!(
                        "push rep {} {}: {} MiB in {:.2} s = {} MB/s, server CPU {:.2} s (system {:.2} s) = {:.2} s/GiB",
                        rep + 1,
                        who(s),
                        r.bytes / MIB,
                        r.wall.as_secs_f64(),
                        fmt_num(r.mb_per_s()),
                        r.server_cpu_s,
                        r.server_sys_s,
                        per_gib
                    ));
                    table.add(CPU, is_berth(s), per_gib);
                    table.add(SYS, is_berth(s), r.server_sys_s / gib);
                    table.add(RATE, is_berth(s), r.mb_per_s());
                }
                Err(e) => {
                    progress(&format!("push rep {} {}: FAILED: {e:#}", rep + 1, who(s)));
                    table.error(CPU, who(s), format!("rep {}: {e:#}", rep + 1));
                    table.error(RATE, who(s), format!("rep {}: {e:#}", rep + 1));
                }
            }
        }
    }
}

async fn get_phase(
    cfg: &Config,
    table: &mut Table,
    servers: [&Server; 2],
    f: &BigFile,
) -> Result<()> {
    const RATE: &str = "blob_get_MBps";
    for s in servers {
        if !transfer::has_blob(s, BIG_REPO, &f.digest).await? {
            progress(&format!(
                "pushing {} to {} for blob_get (untimed)",
                f.digest,
                who(s)
            ));
            data::read_through(&f.path)?;
            transfer::push(s, BIG_REPO, Source::File(f))
                .await
                .with_context(|| format!("pushing the blob to get to {}", who(s)))?;
        }
    }
    for rep in 1..=cfg.reps {
        for s in servers {
            // Untimed GET first: the blob in the page cache (and, once, its bytes checked).
            if let Err(e) = transfer::get(s, BIG_REPO, &f.digest, f.size, rep == 1).await {
                table.error(RATE, who(s), format!("rep {rep}: {e:#}"));
                continue;
            }
            match transfer::get(s, BIG_REPO, &f.digest, f.size, false).await {
                Ok((n, wall)) => {
                    let mbps = n as f64 / 1e6 / wall.as_secs_f64().max(1e-9);
                    progress(&format!(
                        "get rep {rep} {}: {} MiB in {:.3} s = {} MB/s",
                        who(s),
                        n / MIB,
                        wall.as_secs_f64(),
                        fmt_num(mbps)
                    ));
                    table.add(RATE, is_berth(s), mbps);
                }
                Err(e) => table.error(RATE, who(s), format!("rep {rep}: {e:#}")),
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// 6. peak RSS while pushing a very big blob
// ---------------------------------------------------------------------------

async fn push_4g_phase(cfg: &Config, env: &Env, table: &mut Table) -> Result<()> {
    const ROW: &str = "push_4g_peak_rss_mib";
    for kind in [Kind::Berth, Kind::Distribution] {
        let s = Server::start(env, kind, None)?;
        sync();
        let source = Source::Generated {
            seed: data::big_seed(cfg.huge_size, 4242),
            size: cfg.huge_size,
        };
        match transfer::push(&s, BIG_REPO, source).await {
            Ok(r) => {
                let hwm = s.mem_mib("VmHWM");
                progress(&format!(
                    "push_4g {}: {} ({} MiB) in {:.1} s = {} MB/s, server CPU {:.1} s (system {:.1} s), VmHWM {hwm:.1} MiB",
                    kind.name(),
                    r.digest,
                    r.bytes / MIB,
                    r.wall.as_secs_f64(),
                    fmt_num(r.mb_per_s()),
                    r.server_cpu_s,
                    r.server_sys_s
                ));
                table.add(ROW, kind == Kind::Berth, hwm);
            }
            Err(e) => {
                progress(&format!("push_4g {}: FAILED: {e:#}", kind.name()));
                table.error(ROW, kind.name(), format!("{e:#}"));
            }
        }
    }
    table.notes.push(format!(
        "push_4g_peak_rss_mib: one push of {} MiB (generated and hashed by the client while \
         sending) per registry into a fresh instance, then VmHWM of the server",
        cfg.huge_size / MIB
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_cover_every_row_once() {
        let mut in_phases: Vec<&str> = PHASES.iter().flat_map(|p| p.1.iter().copied()).collect();
        let mut rows: Vec<&str> = report::row_ids().collect();
        in_phases.sort_unstable();
        rows.sort_unstable();
        assert_eq!(in_phases, rows);
    }

    #[test]
    fn only_accepts_phases_and_rows() {
        let exe = std::env::current_exe().unwrap();
        let workdir = std::env::temp_dir().join(format!("berth-bench-cfg-{}", std::process::id()));
        let parse = |only: &str| {
            let mut argv = vec![
                "berth-bench".to_string(),
                "--quick".into(),
                "--berth".into(),
                exe.display().to_string(),
                "--workdir".into(),
                workdir.display().to_string(),
            ];
            if !only.is_empty() {
                argv.push(format!("--only={only}"));
            }
            Config::new(Args::try_parse_from(argv).unwrap())
        };
        let c = parse("push_1g_MBps,blob_head_p99_ms").unwrap();
        assert_eq!(
            c.phases.iter().copied().collect::<Vec<_>>(),
            ["blob_head_rps", "push_1g"]
        );
        assert_eq!((c.reps, c.duration.as_secs(), c.tags), (1, 3, 1000));
        assert_eq!((c.local_images, c.build_reps), (100, 3));
        assert_eq!(c.stress_seconds, 10);
        assert_eq!(
            parse("stress_peak_fds")
                .unwrap()
                .phases
                .iter()
                .copied()
                .collect::<Vec<_>>(),
            ["stress"]
        );
        assert_eq!(
            parse("build_first_ms")
                .unwrap()
                .phases
                .iter()
                .copied()
                .collect::<Vec<_>>(),
            ["build_cached"]
        );
        assert_eq!(
            parse("local_prune_1000_ms")
                .unwrap()
                .phases
                .iter()
                .copied()
                .collect::<Vec<_>>(),
            ["local_rmi_1000"]
        );
        assert_eq!((c.big_size, c.huge_size), (256 * MIB, GIB));
        assert_eq!(parse("").unwrap().phases.len(), PHASES.len());
        assert!(parse("nope").is_err());
        let _ = fs::remove_dir_all(&workdir);
    }
}
