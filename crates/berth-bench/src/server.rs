//! Starting and stopping the registries under test, and reading their CPU time and
//! memory from `/proc`.
//!
//! Every child is stopped by its own PID: by [`Server`]'s `Drop` (SIGTERM, then
//! SIGKILL after 10 s), by the signal handler ([`kill_children_on_signal`]) on
//! Ctrl-C/SIGTERM, and by the kernel (`PR_SET_PDEATHSIG`) if this process dies.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_EVERY: Duration = Duration::from_millis(2);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// PIDs of the servers running now.
static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn live() -> std::sync::MutexGuard<'static, Vec<u32>> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Waits for SIGINT/SIGTERM/SIGHUP, kills every running server by PID and exits 130.
pub async fn kill_children_on_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        eprintln!("berth-bench: cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
        _ = hup.recv() => {}
    }
    let pids = live().clone();
    eprintln!("berth-bench: interrupted; killing servers {pids:?}");
    for pid in pids {
        for p in descendants(pid) {
            send(p, libc::SIGKILL);
        }
    }
    std::process::exit(130);
}

fn send(pid: u32, sig: i32) {
    if let Ok(pid) = i32::try_from(pid) {
        if pid > 0 {
            // SAFETY: kill(2) with a specific positive PID has no memory effects.
            unsafe {
                libc::kill(pid, sig);
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Berth,
    Distribution,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Berth => "berth",
            Kind::Distribution => "docker-registry",
        }
    }
}

/// Where binaries are and where servers keep their files.
pub struct Env {
    pub berth: PathBuf,
    pub docker_registry: PathBuf,
    /// Fresh storage directories, one per start.
    pub storage: PathBuf,
    /// Logs and configuration files of this run.
    pub run: PathBuf,
    seq: AtomicU32,
}

impl Env {
    pub fn new(berth: PathBuf, docker_registry: PathBuf, workdir: &Path) -> Result<Env> {
        let storage = workdir.join("storage");
        let run = workdir.join("run");
        for d in [&storage, &run] {
            // Leftovers of an interrupted run.
            let _ = fs::remove_dir_all(d);
            fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        Ok(Env {
            berth,
            docker_registry,
            storage,
            run,
            seq: AtomicU32::new(1),
        })
    }
}

/// A running registry on `127.0.0.1:port`.
pub struct Server {
    pub kind: Kind,
    pub port: u16,
    pub pid: u32,
    /// Spawn to the first 200 on `GET /v2/`.
    pub startup: Duration,
    child: Child,
    root: PathBuf,
    remove_root: bool,
    log: PathBuf,
    stopped: bool,
}

impl Server {
    /// Starts a `kind` server on `root` (a fresh, empty directory when `None`, removed
    /// when the server stops) and waits until `GET /v2/` answers 200.
    pub fn start(env: &Env, kind: Kind, root: Option<&Path>) -> Result<Server> {
        Server::start_with(env, kind, root, &[])
    }

    /// [`Server::start`] with extra arguments for `berth serve`.
    pub fn start_with(
        env: &Env,
        kind: Kind,
        root: Option<&Path>,
        extra: &[&str],
    ) -> Result<Server> {
        Server::spawn(env, kind, root, extra, None)
    }

    /// docker-registry with its `s3` storage driver on `s3` (its bucket, under
    /// `/dist`), as operators run distribution on object storage.
    pub fn start_distribution_s3(env: &Env, s3: &S3Target) -> Result<Server> {
        let storage = format!(
            "  s3:\n    accesskey: {}\n    secretkey: {}\n    region: {}\n    \
             regionendpoint: {}\n    bucket: {}\n    secure: false\n    v4auth: true\n    \
             rootdirectory: /dist\n",
            s3.access_key, s3.secret_key, s3.region, s3.endpoint, s3.bucket
        );
        Server::spawn(env, Kind::Distribution, None, &[], Some(&storage))
    }

    /// Starts `kind`; docker-registry's storage is `dist_storage` (the YAML under
    /// `storage:`), its root folder when `None`.
    fn spawn(
        env: &Env,
        kind: Kind,
        root: Option<&Path>,
        extra: &[&str],
        dist_storage: Option<&str>,
    ) -> Result<Server> {
        let n = env.seq.fetch_add(1, Ordering::Relaxed);
        let (root, fresh) = match root {
            Some(r) => (r.to_path_buf(), false),
            None => (env.storage.join(format!("{}-{n}", kind.name())), true),
        };
        if fresh {
            let _ = fs::remove_dir_all(&root);
        }
        fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
        let mut failure = String::new();
        for attempt in 1..=3 {
            let port = free_port()?;
            let addr = format!("127.0.0.1:{port}");
            let log = env.run.join(format!("{}-{n}-{attempt}.log", kind.name()));
            let mut cmd = match kind {
                Kind::Berth => {
                    let mut c = Command::new(&env.berth);
                    c.arg("serve")
                        .arg("--listen")
                        .arg(&addr)
                        .arg("--root")
                        .arg(&root)
                        .arg("--log-level")
                        .arg("warn")
                        .args(extra);
                    c
                }
                Kind::Distribution => {
                    let config = env.run.join(format!("docker-registry-{n}.yml"));
                    let yaml = match dist_storage {
                        Some(storage) => distribution_config_with(storage, &addr),
                        None => distribution_config(&root, &addr),
                    };
                    fs::write(&config, yaml)
                        .with_context(|| format!("writing {}", config.display()))?;
                    let mut c = Command::new(&env.docker_registry);
                    // Its S3 driver panics when AWS_CA_BUNDLE is set.
                    c.arg("serve").arg(&config).env_remove("AWS_CA_BUNDLE");
                    c
                }
            };
            let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
            cmd.stdin(Stdio::null())
                .stdout(out.try_clone()?)
                .stderr(out);
            // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
            // Servers are only spawned from the main thread, which lives as long as
            // this process, so the signal means "berth-bench died".
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                    Ok(())
                });
            }
            let t0 = Instant::now();
            let child = cmd.spawn().with_context(|| {
                format!(
                    "starting {} ({})",
                    kind.name(),
                    cmd.get_program().to_string_lossy()
                )
            })?;
            let pid = child.id();
            live().push(pid);
            let mut server = Server {
                kind,
                port,
                pid,
                startup: Duration::ZERO,
                child,
                root: root.clone(),
                remove_root: false,
                log,
                stopped: false,
            };
            match server.wait_ready(t0) {
                Ok(d) => {
                    server.startup = d;
                    server.remove_root = fresh;
                    return Ok(server);
                }
                Err(e) => {
                    server.stop();
                    let tail = server.log_tail();
                    failure = format!(
                        "{} on {addr} did not start: {e:#}\n--- {} ---\n{tail}",
                        kind.name(),
                        server.log.display()
                    );
                    if !tail.to_ascii_lowercase().contains("in use") {
                        break;
                    }
                }
            }
        }
        if fresh {
            let _ = fs::remove_dir_all(&root);
        }
        bail!("{failure}")
    }

    /// Polls `GET /v2/` every 2 ms; returns the time since `t0` of the first 200.
    fn wait_ready(&mut self, t0: Instant) -> Result<Duration> {
        let mut last = String::from("no answer");
        while t0.elapsed() < READY_TIMEOUT {
            match probe(self.port) {
                Ok(200) => return Ok(t0.elapsed()),
                Ok(code) => last = format!("GET /v2/ answered {code}"),
                Err(e) => last = e.to_string(),
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("exited with {status} ({last})");
            }
            std::thread::sleep(POLL_EVERY);
        }
        bail!("not ready after {READY_TIMEOUT:?}: {last}")
    }

    fn log_tail(&self) -> String {
        let text = fs::read(&self.log).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// CPU seconds (user + system) of the server and its children so far.
    /// The data folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn cpu_seconds(&self) -> f64 {
        let (user, sys) = self.cpu_split();
        user + sys
    }

    /// (user, system) CPU seconds of the server and its children so far.
    pub fn cpu_split(&self) -> (f64, f64) {
        let (user, sys) = tree_cpu_ticks(self.pid);
        (user as f64 / clock_ticks(), sys as f64 / clock_ticks())
    }

    /// A `/proc/PID/status` memory field (VmRSS, VmHWM) summed over the tree, in MiB.
    pub fn mem_mib(&self, field: &str) -> f64 {
        descendants(self.pid)
            .into_iter()
            .map(|p| status_kib(p, field))
            .sum::<u64>() as f64
            / 1024.0
    }

    /// SIGTERM, SIGKILL after 10 s, then leftover children by their own PIDs.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let tree = descendants(self.pid);
        if matches!(self.child.try_wait(), Ok(None)) {
            send(self.pid, libc::SIGTERM);
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(5));
            }
            if matches!(self.child.try_wait(), Ok(None)) {
                eprintln!(
                    "berth-bench: {} (pid {}) ignored SIGTERM for {STOP_TIMEOUT:?}; killing it",
                    self.kind.name(),
                    self.pid
                );
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        for p in tree.into_iter().filter(|&p| p != self.pid) {
            send(p, libc::SIGKILL);
        }
        live().retain(|&p| p != self.pid);
        if self.remove_root {
            let _ = fs::remove_dir_all(&self.root);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The configuration the benchmark gives distribution.
pub fn distribution_config(root: &Path, addr: &str) -> String {
    distribution_config_with(
        &format!("  filesystem:\n    rootdirectory: {}\n", root.display()),
        addr,
    )
}

/// docker-registry's configuration with `storage` (its driver's YAML, indented under
/// `storage:`).
fn distribution_config_with(storage: &str, addr: &str) -> String {
    format!(
        "version: 0.1\n\
         log:\n  level: warn\n\
         storage:\n{storage}  delete:\n    enabled: true\n  \
         cache:\n    blobdescriptor: inmemory\n\
         http:\n  addr: {addr}\n"
    )
}

/// An S3 bucket and how to reach it.
pub struct S3Target {
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
}

fn free_port() -> Result<u16> {
    berth_testenv::free_port().map_err(anyhow::Error::msg)
}

/// One `GET /v2/` on a fresh connection; returns the status code.
fn probe(port: u16) -> std::io::Result<u16> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.set_write_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(
        format!("GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )?;
    let mut buf = [0u8; 64];
    let mut got = 0;
    while got < 12 {
        let n = s.read(&mut buf[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let text = String::from_utf8_lossy(&buf[..got]);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad answer {text:?}")))
}

// ---------------------------------------------------------------------------
// /proc
// ---------------------------------------------------------------------------

pub fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no memory effects.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// The fields of `/proc/PID/stat` after the command name (field 3 onwards).
fn stat_fields(pid: u32) -> Option<Vec<u64>> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    // Field 3 (state) is a letter; keep positions by mapping it to 0.
    Some(
        rest.split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

/// `pid` and all its descendants.
fn descendants(pid: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(f) = stat_fields(p) {
                if let Some(&ppid) = f.get(1) {
                    children.entry(ppid as u32).or_default().push(p);
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        if out.len() > 10_000 {
            break;
        }
        out.push(p);
        if let Some(c) = children.get(&p) {
            todo.extend(c);
        }
    }
    out
}

/// (utime, stime) of `pid` and its descendants, in clock ticks.
fn tree_cpu_ticks(pid: u32) -> (u64, u64) {
    descendants(pid)
        .into_iter()
        .filter_map(stat_fields)
        .fold((0, 0), |(u, s), f| {
            (
                u + f.get(11).copied().unwrap_or(0),
                s + f.get(12).copied().unwrap_or(0),
            )
        })
}

/// A `/proc/PID/status` field in KiB (0 when unreadable).
pub(crate) fn status_kib(pid: u32, field: &str) -> u64 {
    let Ok(text) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return 0;
    };
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A point in time with the host's busy CPU and this process tree's CPU, to tell how
/// much CPU other processes (and steal) took during a phase.
#[derive(Clone, Copy)]
pub struct CpuMark {
    at: Instant,
    host_busy: u64,
    own: u64,
}

impl CpuMark {
    pub fn now() -> CpuMark {
        let host_busy = fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| {
                let line = s.lines().find(|l| l.starts_with("cpu "))?.to_string();
                let v: Vec<u64> = line
                    .split_whitespace()
                    .skip(1)
                    .map(|f| f.parse().unwrap_or(0))
                    .collect();
                // user nice system idle iowait irq softirq steal (guest is in user)
                Some(
                    [0usize, 1, 2, 5, 6, 7]
                        .iter()
                        .map(|&i| v.get(i).copied().unwrap_or(0))
                        .sum(),
                )
            })
            .unwrap_or(0);
        let me = std::process::id();
        // Own utime+stime+cutime+cstime (waited-for children), plus live descendants.
        let own_self = stat_fields(me)
            .map(|f| f[11..15].iter().sum::<u64>())
            .unwrap_or(0);
        let own_children: u64 = descendants(me)
            .into_iter()
            .filter(|&p| p != me)
            .filter_map(stat_fields)
            .map(|f| f[11] + f[12])
            .sum();
        CpuMark {
            at: Instant::now(),
            host_busy,
            own: own_self + own_children,
        }
    }

    /// Average cores the whole host used between `self` and `later`.
    pub fn host_cores(&self, later: &CpuMark) -> f64 {
        let secs = later.at.duration_since(self.at).as_secs_f64();
        if secs <= 0.0 {
            return 0.0;
        }
        later.host_busy.saturating_sub(self.host_busy) as f64 / clock_ticks() / secs
    }

    /// Average cores used by everything else between `self` and `later`.
    pub fn background_cores(&self, later: &CpuMark) -> f64 {
        let secs = later.at.duration_since(self.at).as_secs_f64();
        if secs <= 0.0 {
            return 0.0;
        }
        let host = later.host_busy.saturating_sub(self.host_busy) as f64;
        let own = later.own.saturating_sub(self.own) as f64;
        ((host - own) / clock_ticks() / secs).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        assert!(descendants(me).contains(&me));
        assert!(status_kib(me, "VmRSS") > 0);
        let f = stat_fields(me).unwrap();
        assert!(f.len() > 20);
        let a = CpuMark::now();
        let b = CpuMark::now();
        assert!(a.background_cores(&b) >= 0.0);
    }

    #[test]
    fn config_names_root_and_addr() {
        let c = distribution_config(Path::new("/x/y"), "127.0.0.1:7");
        assert!(c.contains("rootdirectory: /x/y"));
        assert!(c.contains("addr: 127.0.0.1:7"));
        assert!(c.contains("blobdescriptor: inmemory"));
    }
}
