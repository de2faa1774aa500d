//! Harness for the interop tests: starts registries (berth, docker-registry)
//! on free loopback ports, runs the peer tools (buildah, podman, skopeo,
//! curl) in an isolated environment, and reports failures with the full
//! command line, its output and the tail of every server log.
//!
//! Isolation: every test gets its own temporary directory holding the
//! containers/storage (vfs), auth file, registries.conf, policy.json,
//! containers.conf, HOME, XDG dirs and TMPDIR. Every image reference is fully
//! qualified with `127.0.0.1:PORT` or `localhost/`, and registries.conf is
//! empty, so nothing is resolved against, or sent to, any other host.
//! What stays shared with the host, because 1.9.3/4.3.1 have no option for
//! it: skopeo running as root keeps its blob-info cache in
//! /var/lib/containers/cache, and skopeo/podman still read
//! /etc/containers/registries.conf.d (short-name aliases, unused with fully
//! qualified names) and podman /etc/containers/registries.d (signature
//! lookaside; none is configured for 127.0.0.1).
//!
//! Set `BERTH_INTEROP_KEEP=1` to keep a failed test's directory.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const INSTALL_HINT: &str = "install podman skopeo buildah docker-registry busybox-static runc \
     (apt-get install -y podman skopeo buildah docker-registry busybox-static curl uidmap runc, \
     or run scripts/install-peers.sh as root)";

/// What a registry client sends in `Accept` when it fetches a manifest.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// The busybox binary copied into test images (package busybox-static).
pub const BUSYBOX: &str = "/bin/busybox";

const READY_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const OUTPUT_LIMIT: usize = 16_000;
const LOG_LIMIT: usize = 6_000;

// ---------------------------------------------------------------------------
// Peer programs

/// Fails the test (never skips it) when a peer program is missing.
pub fn require_peers(programs: &[&str]) {
    let mut missing: Vec<String> = programs
        .iter()
        .filter(|p| find_in_path(p).is_none())
        .map(|p| p.to_string())
        .collect();
    if !Path::new(BUSYBOX).is_file() {
        missing.push(BUSYBOX.to_string());
    }
    assert!(
        missing.is_empty(),
        "missing peer program(s): {}; {INSTALL_HINT}",
        missing.join(", ")
    );
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

// ---------------------------------------------------------------------------
// Servers

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    /// The binary under test.
    Berth,
    /// The reference implementation (distribution 2.8, `docker-registry`).
    Distribution,
}

/// A running registry; sent SIGTERM (then SIGKILL) when dropped.
pub struct Server {
    pub kind: ServerKind,
    /// `127.0.0.1:PORT`
    pub addr: String,
    child: Child,
    log: PathBuf,
    dir: PathBuf,
    /// Arguments added to berth's command line (kept for a restart).
    args: Vec<String>,
}

impl Server {
    /// Starts a server whose files live under `dir` (created if missing) and
    /// waits until `GET /v2/` answers 200.
    fn start(kind: ServerKind, dir: &Path, args: &[String]) -> Server {
        fs::create_dir_all(dir).unwrap();
        // The port is found by binding port 0 and releasing it, so another
        // process may take it before the server binds: retry a few times.
        let mut last_failure = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            let addr = format!("127.0.0.1:{port}");
            let log = unused_path(dir, "server", "log");
            let mut cmd = match kind {
                ServerKind::Berth => {
                    let root = dir.join("root");
                    fs::create_dir_all(&root).unwrap();
                    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
                    cmd.arg("serve")
                        .arg("--listen")
                        .arg(&addr)
                        .arg("--root")
                        .arg(&root)
                        .args(args);
                    if std::env::var_os("RUST_LOG").is_none() {
                        cmd.env("RUST_LOG", "info");
                    }
                    cmd
                }
                ServerKind::Distribution => {
                    let root = dir.join("data");
                    fs::create_dir_all(&root).unwrap();
                    let config = dir.join("config.yml");
                    fs::write(
                        &config,
                        format!(
                            "version: 0.1\n\
                             log:\n  level: warn\n\
                             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                             http:\n  addr: {addr}\n  secret: berth-interop\n",
                            root.display()
                        ),
                    )
                    .unwrap();
                    let mut cmd = Command::new("docker-registry");
                    cmd.arg("serve").arg(&config);
                    cmd
                }
            };
            let out = File::create(&log).unwrap();
            let err = out.try_clone().unwrap();
            cmd.current_dir(dir)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err);
            let line = command_line(&cmd);
            let child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start `{line}`: {e}; {INSTALL_HINT}"));
            let mut server = Server {
                kind,
                addr,
                child,
                log,
                dir: dir.to_path_buf(),
                args: args.to_vec(),
            };
            match server.wait_ready() {
                Ok(()) => return server,
                Err(why) => {
                    last_failure = format!(
                        "`{line}` did not become ready: {why}\n--- server log ---\n{}",
                        server.log_tail(LOG_LIMIT)
                    );
                    let in_use = last_failure.to_ascii_lowercase().contains("in use");
                    drop(server);
                    if !in_use {
                        break;
                    }
                }
            }
        }
        panic!("{last_failure}");
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last = String::from("no answer");
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!("exited early with {status}"));
            }
            match http10_get_status(&self.addr, "/v2/") {
                Ok(200) => return Ok(()),
                Ok(code) => last = format!("GET /v2/ answered {code}"),
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("not ready after {READY_TIMEOUT:?}: {last}"))
    }

    pub fn log_tail(&self, limit: usize) -> String {
        let text = fs::read(&self.log).unwrap_or_default();
        tail(&String::from_utf8_lossy(&text), limit)
    }

    /// Sends SIGTERM and waits for the process to exit; SIGKILL after
    /// STOP_TIMEOUT. Returns the exit status, or None if it had to be killed.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        if let Some(status) = self.child.try_wait().ok().flatten() {
            return Some(status);
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().ok().flatten() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "{:?} server on {} ignored SIGTERM for {STOP_TIMEOUT:?}; killing it",
            self.kind, self.addr
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn unused_path(dir: &Path, stem: &str, ext: &str) -> PathBuf {
    (0..)
        .map(|n| dir.join(format!("{stem}-{n}.{ext}")))
        .find(|p| !p.exists())
        .unwrap()
}

fn free_port() -> u16 {
    berth_testenv::free_port().expect("a free loopback port")
}

/// A hand-written HTTP/1.0 GET; returns the status code.
fn http10_get_status(addr: &str, path: &str) -> Result<u16, String> {
    let sock: SocketAddr = addr.parse().unwrap();
    let mut stream =
        TcpStream::connect_timeout(&sock, Duration::from_secs(1)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    // The server closes the connection after an HTTP/1.0 response; only the
    // status line matters, so a read timeout after some bytes is fine.
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                response.extend_from_slice(&buf[..n]);
                if response.windows(2).any(|w| w == b"\r\n") {
                    break;
                }
            }
            Err(e) if response.is_empty() => return Err(e.to_string()),
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&response);
    let status_line = text.lines().next().unwrap_or_default();
    status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))
}

// ---------------------------------------------------------------------------
// Test context

/// One test's world: its temporary directory, its servers, its peer config.
pub struct Ctx {
    // Field order matters: servers are stopped before the directory goes.
    servers: Vec<Server>,
    name: String,
    dir: PathBuf,
    tmp: Option<tempfile::TempDir>,
    env: Vec<(String, PathBuf)>,
    counter: AtomicUsize,
}

impl Ctx {
    /// Checks that `peers` are installed and lays out the isolated config.
    pub fn new(name: &str, peers: &[&str]) -> Ctx {
        require_peers(peers);
        let tmp = tempfile::Builder::new()
            .prefix(&format!("berth-interop-{name}-"))
            .tempdir()
            .expect("create temp dir");
        let dir = tmp.path().to_path_buf();
        for sub in [
            "home/.config",
            "home/.local/share",
            "home/.cache",
            "xdg-run",
            "tmp",
            "registries.conf.d",
            "registries.d",
            "storage",
            "run",
            "libpod-tmp",
        ] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        set_mode(&dir.join("xdg-run"), 0o700);
        fs::write(
            dir.join("registries.conf"),
            "# empty: no search registries, no mirrors\n",
        )
        .unwrap();
        fs::write(dir.join("auth.json"), "{\"auths\":{}}\n").unwrap();
        fs::write(
            dir.join("policy.json"),
            "{\"default\":[{\"type\":\"insecureAcceptAnything\"}]}\n",
        )
        .unwrap();
        fs::write(
            dir.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
                dir.join("storage").display(),
                dir.join("run").display()
            ),
        )
        .unwrap();
        fs::write(
            dir.join("containers.conf"),
            "[engine]\nevents_logger = \"none\"\ncgroup_manager = \"cgroupfs\"\n",
        )
        .unwrap();
        let env = vec![
            ("HOME".to_string(), dir.join("home")),
            ("XDG_CONFIG_HOME".to_string(), dir.join("home/.config")),
            ("XDG_DATA_HOME".to_string(), dir.join("home/.local/share")),
            ("XDG_CACHE_HOME".to_string(), dir.join("home/.cache")),
            ("XDG_RUNTIME_DIR".to_string(), dir.join("xdg-run")),
            ("TMPDIR".to_string(), dir.join("tmp")),
            ("REGISTRY_AUTH_FILE".to_string(), dir.join("auth.json")),
            (
                "CONTAINERS_REGISTRIES_CONF".to_string(),
                dir.join("registries.conf"),
            ),
            (
                "CONTAINERS_STORAGE_CONF".to_string(),
                dir.join("storage.conf"),
            ),
            ("CONTAINERS_CONF".to_string(), dir.join("containers.conf")),
            // berth's local store: never /var/lib/containers/berth of the machine.
            ("BERTH_STORAGE_ROOT".to_string(), dir.join("berth-store")),
        ];
        Ctx {
            servers: Vec::new(),
            name: name.to_string(),
            dir,
            tmp: Some(tmp),
            env,
            counter: AtomicUsize::new(0),
        }
    }

    /// A path inside this test's temporary directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// Path as a string, for command arguments.
    pub fn p(&self, rel: &str) -> String {
        self.path(rel).display().to_string()
    }

    /// A new path under the test's tmp folder, unique within the test.
    pub fn fresh(&self, stem: &str) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        self.dir.join("tmp").join(format!("{stem}-{n}"))
    }

    /// Starts a server and returns its `127.0.0.1:PORT`.
    pub fn start(&mut self, kind: ServerKind) -> String {
        self.start_with(kind, &[])
    }

    /// [`Ctx::start`] with `args` added to berth's command line.
    pub fn start_with(&mut self, kind: ServerKind, args: &[String]) -> String {
        let n = self.servers.len();
        let sub = match kind {
            ServerKind::Berth => format!("berth-{n}"),
            ServerKind::Distribution => format!("distribution-{n}"),
        };
        let server = Server::start(kind, &self.dir.join(sub), args);
        let addr = server.addr.clone();
        eprintln!("[{}] {kind:?} listening on {addr}", self.name);
        self.servers.push(server);
        addr
    }

    /// Sends SIGTERM to the server on `addr`, asserts that it exits within
    /// STOP_TIMEOUT, starts it again on the same data directory (on a new
    /// port) and returns the new address.
    #[track_caller]
    pub fn restart(&mut self, addr: &str) -> String {
        let index = self
            .servers
            .iter()
            .position(|s| s.addr == addr)
            .unwrap_or_else(|| panic!("no server on {addr}"));
        let mut server = self.servers.remove(index);
        let status = server.stop();
        assert!(
            status.is_some(),
            "{:?} on {addr} did not exit within {STOP_TIMEOUT:?} of SIGTERM\n--- log ---\n{}",
            server.kind,
            server.log_tail(LOG_LIMIT)
        );
        self.step(&format!(
            "{:?} on {addr} exited on SIGTERM: {}",
            server.kind,
            status.unwrap()
        ));
        let (kind, dir, args) = (server.kind, server.dir.clone(), server.args.clone());
        drop(server);
        let server = Server::start(kind, &dir, &args);
        let addr = server.addr.clone();
        self.step(&format!("{kind:?} restarted on {addr}"));
        self.servers.push(server);
        addr
    }

    /// Stops the server on `addr` for good.
    pub fn stop(&mut self, addr: &str) {
        self.servers.retain(|s| s.addr != addr);
        self.step(&format!("server on {addr} stopped"));
    }

    /// The data folder of the berth server on `addr`.
    pub fn berth_root(&self, addr: &str) -> PathBuf {
        let server = self
            .servers
            .iter()
            .find(|s| s.addr == addr && s.kind == ServerKind::Berth)
            .unwrap_or_else(|| panic!("no berth server on {addr}"));
        server.dir.join("root")
    }

    /// The `berth` binary under test, with this test's environment.
    pub fn berth<S: AsRef<OsStr>>(&self, args: &[S]) -> Run<'_> {
        self.cmd(env!("CARGO_BIN_EXE_berth"), args)
    }

    /// Lets the tools find credentials where they do by default
    /// (`${XDG_RUNTIME_DIR}/containers/auth.json`) instead of in `REGISTRY_AUTH_FILE`.
    pub fn use_default_auth_file(&mut self) {
        self.env.retain(|(k, _)| k != "REGISTRY_AUTH_FILE");
    }

    pub fn step(&self, what: &str) {
        eprintln!("[{}] {what}", self.name);
    }

    // -- commands -----------------------------------------------------------

    /// Any program, with this test's environment.
    pub fn cmd<S: AsRef<OsStr>>(&self, program: &str, args: &[S]) -> Run<'_> {
        let mut command = Command::new(program);
        command
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null());
        for var in [
            "http_proxy",
            "https_proxy",
            "all_proxy",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
        ] {
            command.env_remove(var);
        }
        command.env_remove("REGISTRY_AUTH_FILE");
        command.env("NO_PROXY", "127.0.0.1,localhost");
        command.env("no_proxy", "127.0.0.1,localhost");
        for (key, value) in &self.env {
            command.env(key, value);
        }
        Run {
            ctx: self,
            command,
            stdin: None,
        }
    }

    /// `buildah` on this test's vfs store; `--log-level debug` so that a
    /// failure shows the HTTP exchanges.
    pub fn buildah<S: AsRef<OsStr>>(&self, args: &[S]) -> Run<'_> {
        let mut global: Vec<String> = vec![
            "--storage-driver".into(),
            "vfs".into(),
            "--root".into(),
            self.p("storage"),
            "--runroot".into(),
            self.p("run"),
            "--registries-conf".into(),
            self.p("registries.conf"),
            "--registries-conf-dir".into(),
            self.p("registries.conf.d"),
            "--log-level".into(),
            "debug".into(),
        ];
        global.extend(
            args.iter()
                .map(|a| a.as_ref().to_string_lossy().into_owned()),
        );
        self.cmd("buildah", &global)
    }

    /// Runs a push (`buildah push`, `buildah manifest push`, `podman push`) with
    /// `--digestfile` put before its last two arguments (source and destination), and
    /// returns the manifest digest the tool reports.
    pub fn push_digest(&self, tool: &str, args: &[&str]) -> String {
        let file = self.fresh("push-digest").display().to_string();
        let split = args.len().saturating_sub(2);
        let mut all: Vec<&str> = args[..split].to_vec();
        all.extend(["--digestfile", file.as_str()]);
        all.extend(&args[split..]);
        match tool {
            "buildah" => self.buildah(&all),
            "podman" => self.podman(&all),
            other => panic!("push_digest: {other} is not a push tool"),
        }
        .run();
        let pushed = fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{tool} wrote no digest file {file}: {e}"))
            .trim()
            .to_string();
        assert!(
            pushed.starts_with("sha256:"),
            "{tool} digest file: {pushed:?}"
        );
        pushed
    }

    /// `podman` on the same vfs store as `buildah`.
    pub fn podman<S: AsRef<OsStr>>(&self, args: &[S]) -> Run<'_> {
        let mut global: Vec<String> = vec![
            "--storage-driver".into(),
            "vfs".into(),
            "--root".into(),
            self.p("storage"),
            "--runroot".into(),
            self.p("run"),
            "--tmpdir".into(),
            self.p("libpod-tmp"),
            "--events-backend".into(),
            "none".into(),
            "--cgroup-manager".into(),
            "cgroupfs".into(),
            "--log-level".into(),
            "debug".into(),
        ];
        global.extend(
            args.iter()
                .map(|a| a.as_ref().to_string_lossy().into_owned()),
        );
        self.cmd("podman", &global)
    }

    /// `skopeo --debug --insecure-policy ...`
    pub fn skopeo<S: AsRef<OsStr>>(&self, args: &[S]) -> Run<'_> {
        let mut global: Vec<String> = vec![
            "--debug".into(),
            "--insecure-policy".into(),
            // Hidden flag; skopeo 1.9.3 ignores CONTAINERS_REGISTRIES_CONF.
            "--registries-conf".into(),
            self.p("registries.conf"),
            "--registries.d".into(),
            self.p("registries.d"),
        ];
        global.extend(
            args.iter()
                .map(|a| a.as_ref().to_string_lossy().into_owned()),
        );
        self.cmd("skopeo", &global)
    }

    /// The signature policy argument pair for buildah/podman pull/push/commit.
    pub fn policy_args(&self) -> [String; 2] {
        ["--signature-policy".into(), self.p("policy.json")]
    }

    fn failure_context(&self) -> String {
        let mut text = String::new();
        for server in &self.servers {
            text.push_str(&format!(
                "\n--- {:?} server {} log (tail) ---\n{}",
                server.kind,
                server.addr,
                server.log_tail(LOG_LIMIT)
            ));
        }
        text
    }

    // -- HTTP (curl) --------------------------------------------------------

    /// One request with curl (redirects followed, no proxy). `accept` sets
    /// the Accept header. Never fails on an HTTP error status.
    pub fn http(&self, method: &str, url: &str, accept: Option<&str>) -> HttpResponse {
        let headers = self.fresh("headers");
        let body = self.fresh("body");
        let mut args: Vec<String> = vec![
            "-sS".into(),
            "-L".into(),
            "--noproxy".into(),
            "*".into(),
            "--max-time".into(),
            "30".into(),
            "-D".into(),
            headers.display().to_string(),
            "-o".into(),
            body.display().to_string(),
            "-w".into(),
            "%{http_code}".into(),
        ];
        if method == "HEAD" {
            args.push("-I".into());
        } else if method != "GET" {
            args.push("-X".into());
            args.push(method.into());
        }
        if let Some(accept) = accept {
            args.push("-H".into());
            args.push(format!("Accept: {accept}"));
        }
        args.push(url.into());
        let out = self.cmd("curl", &args).run();
        let status: u16 = out
            .stdout
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("curl {method} {url}: bad status {:?}", out.stdout));
        let raw_headers = fs::read_to_string(&headers).unwrap_or_default();
        // With -L there is one header block per response: keep the last.
        let last_block = raw_headers
            .split("\r\n\r\n")
            .filter(|b| b.trim_start().starts_with("HTTP/"))
            .last()
            .unwrap_or_default();
        let headers = last_block
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let body = if method == "HEAD" {
            Vec::new()
        } else {
            fs::read(&body).unwrap_or_default()
        };
        HttpResponse {
            method: method.to_string(),
            url: url.to_string(),
            status,
            headers,
            body,
        }
    }

    // -- hashing ------------------------------------------------------------

    /// `sha256:<hex>` of a file, computed by `sha256sum`.
    pub fn sha256_file(&self, path: &Path) -> String {
        let out = self.cmd("sha256sum", &[path]).run();
        parse_sha256sum(&out.stdout)
    }

    /// `sha256:<hex>` of bytes, computed by `sha256sum`.
    pub fn sha256(&self, bytes: &[u8]) -> String {
        let out = self.cmd::<&str>("sha256sum", &[]).stdin(bytes).run();
        parse_sha256sum(&out.stdout)
    }

    // -- images -------------------------------------------------------------

    /// Builds `image` (e.g. `localhost/test/busybox:v1`) in the vfs store:
    /// `FROM scratch`, `/bin/busybox`, `CMD ["/bin/busybox","sh"]`.
    pub fn build_busybox(&self, image: &str) -> String {
        let [pf, pv] = self.policy_args();
        let ctr = self
            .buildah(&["from", &pf, &pv, "scratch"])
            .run()
            .last_line();
        self.buildah(&["copy", &ctr, BUSYBOX, "/bin/busybox"]).run();
        self.buildah(&["config", "--cmd", r#"["/bin/busybox","sh"]"#, &ctr])
            .run();
        self.buildah(&["commit", &pf, &pv, &ctr, image]).run();
        self.buildah(&["rm", &ctr]).run();
        image.to_string()
    }

    /// Builds a one-file image for one platform.
    pub fn build_for_arch(&self, image: &str, arch: &str) -> String {
        let [pf, pv] = self.policy_args();
        let file = self.path(&format!("hello-{arch}.txt"));
        fs::write(&file, format!("hello from {arch}\n")).unwrap();
        let ctr = self
            .buildah(&["from", &pf, &pv, "scratch"])
            .run()
            .last_line();
        self.buildah(&["copy", &ctr, &file.display().to_string(), "/hello.txt"])
            .run();
        self.buildah(&[
            "config",
            "--arch",
            arch,
            "--os",
            "linux",
            "--cmd",
            r#"["/hello.txt"]"#,
            &ctr,
        ])
        .run();
        self.buildah(&["commit", &pf, &pv, &ctr, image]).run();
        self.buildah(&["rm", &ctr]).run();
        image.to_string()
    }

    /// Builds an amd64 and an arm64 image (`localhost/test/STEM-ARCH:v1`), lists them
    /// in `localhost/test/STEM:list` and pushes the list with both images to `dest`;
    /// returns the digest buildah reports for the list.
    pub fn push_two_platforms(&self, stem: &str, dest: &str) -> String {
        let [pf, pv] = self.policy_args();
        let list = format!("localhost/test/{stem}:list");
        self.buildah(&["manifest", "create", &list]).run();
        for arch in ["amd64", "arm64"] {
            let img = self.build_for_arch(&format!("localhost/test/{stem}-{arch}:v1"), arch);
            self.buildah(&[
                "manifest",
                "add",
                &list,
                &format!("containers-storage:{img}"),
            ])
            .run();
        }
        self.push_digest(
            "buildah",
            &[
                "manifest",
                "push",
                &pf,
                &pv,
                "--all",
                "--tls-verify=false",
                &list,
                dest,
            ],
        )
    }

    /// Adds `user` with password `pw` to the berth registry kept in `root`.
    pub fn add_registry_user(&self, root: &str, user: &str, pw: &str) {
        self.berth(&[
            "registry",
            "--root",
            root,
            "user",
            "add",
            user,
            "--password-stdin",
        ])
        .stdin(format!("{pw}\n").as_bytes())
        .run();
    }

    /// `skopeo inspect --raw` bytes of a `docker://` reference.
    pub fn raw_manifest(&self, reference: &str) -> Vec<u8> {
        self.skopeo(&["inspect", "--raw", "--tls-verify=false", reference])
            .run()
            .stdout_bytes
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        for mut server in self.servers.drain(..) {
            server.stop();
        }
        if std::thread::panicking() && std::env::var_os("BERTH_INTEROP_KEEP").is_some() {
            if let Some(tmp) = self.tmp.take() {
                eprintln!("[{}] keeping {}", self.name, tmp.keep().display());
            }
        }
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn parse_sha256sum(stdout: &str) -> String {
    let hex = stdout.split_whitespace().next().unwrap_or_default();
    assert!(
        hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "unexpected sha256sum output {stdout:?}"
    );
    format!("sha256:{hex}")
}

// ---------------------------------------------------------------------------
// Running commands

/// A command about to run; panics with full context when it does not do what
/// the test expects.
pub struct Run<'a> {
    ctx: &'a Ctx,
    command: Command,
    stdin: Option<Vec<u8>>,
}

pub struct Output {
    pub line: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stdout_bytes: Vec<u8>,
    pub stderr: String,
}

impl<'a> Run<'a> {
    pub fn env<K: AsRef<OsStr>, V: AsRef<OsStr>>(mut self, key: K, value: V) -> Self {
        self.command.env(key, value);
        self
    }

    pub fn stdin(mut self, bytes: &[u8]) -> Self {
        self.stdin = Some(bytes.to_vec());
        self
    }

    fn exec(mut self) -> (Output, &'a Ctx) {
        let line = command_line(&self.command);
        self.command.stdout(Stdio::piped()).stderr(Stdio::piped());
        if self.stdin.is_some() {
            self.command.stdin(Stdio::piped());
        }
        let mut child = self
            .command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `{line}`: {e}; {INSTALL_HINT}"));
        if let Some(bytes) = self.stdin.take() {
            let mut stdin = child.stdin.take().unwrap();
            std::thread::spawn(move || {
                let _ = stdin.write_all(&bytes);
            });
        }
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("waiting for `{line}`: {e}"));
        (
            Output {
                line,
                status: out.status,
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stdout_bytes: out.stdout,
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            },
            self.ctx,
        )
    }

    /// Starts it, its stdout and stderr piped, and returns it running (to signal it).
    pub fn spawn(mut self) -> std::process::Child {
        let line = command_line(&self.command);
        self.command.stdout(Stdio::piped()).stderr(Stdio::piped());
        self.command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `{line}`: {e}; {INSTALL_HINT}"))
    }

    /// Runs and returns the output whatever the exit status.
    pub fn run_any(self) -> Output {
        self.exec().0
    }

    /// Runs and panics unless the command exits 0.
    #[track_caller]
    pub fn run(self) -> Output {
        let (out, ctx) = self.exec();
        if !out.status.success() {
            panic!(
                "command failed ({}):\n  {}\n{}",
                out.status,
                out.line,
                out.report(ctx)
            );
        }
        out
    }

    /// Runs and panics if the command exits 0.
    #[track_caller]
    pub fn run_fail(self) -> Output {
        let (out, ctx) = self.exec();
        if out.status.success() {
            panic!(
                "command unexpectedly succeeded:\n  {}\n{}",
                out.line,
                out.report(ctx)
            );
        }
        out
    }
}

impl Output {
    fn report(&self, ctx: &Ctx) -> String {
        format!(
            "--- stdout ---\n{}\n--- stderr (tail) ---\n{}{}",
            tail(&self.stdout, OUTPUT_LIMIT),
            tail(&self.stderr, OUTPUT_LIMIT),
            ctx.failure_context()
        )
    }

    /// Last non-empty line of stdout.
    pub fn last_line(&self) -> String {
        self.stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_else(|| panic!("`{}` printed nothing on stdout", self.line))
            .trim()
            .to_string()
    }

    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.stdout_bytes).unwrap_or_else(|e| {
            panic!(
                "`{}` did not print JSON ({e}):\n{}",
                self.line,
                tail(&self.stdout, OUTPUT_LIMIT)
            )
        })
    }

    /// The `level=fatal`/`Error:` lines of stderr (debug noise removed).
    pub fn error_lines(&self) -> String {
        self.stderr
            .lines()
            .filter(|l| l.contains("level=fatal") || l.starts_with("Error"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn command_line(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| shell_quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r#"'\''"#))
    }
}

fn tail(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    let mut start = text.len() - limit;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("[... {start} bytes cut ...]\n{}", &text[start..])
}

// ---------------------------------------------------------------------------
// HTTP responses and manifests

#[derive(Debug)]
pub struct HttpResponse {
    pub method: String,
    pub url: String,
    pub status: u16,
    /// Lower-cased names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Panics (showing the response) unless the status is `status`.
    #[track_caller]
    pub fn expect_status(&self, status: u16) -> &Self {
        assert_eq!(
            self.status,
            status,
            "{} {}: expected {status}, got {}\nheaders: {:?}\nbody: {}",
            self.method,
            self.url,
            self.status,
            self.headers,
            tail(&String::from_utf8_lossy(&self.body), 2000)
        );
        self
    }

    #[track_caller]
    pub fn expect_header(&self, name: &str, value: &str) -> &Self {
        assert_eq!(
            self.header(name),
            Some(value),
            "{} {}: header {name}\nall headers: {:?}",
            self.method,
            self.url,
            self.headers
        );
        self
    }
}

/// A parsed manifest (image manifest or index) with its raw bytes.
pub struct Manifest {
    pub raw: Vec<u8>,
    pub json: Value,
}

impl Manifest {
    #[track_caller]
    pub fn parse(raw: Vec<u8>) -> Manifest {
        let json = serde_json::from_slice(&raw).unwrap_or_else(|e| {
            panic!(
                "manifest is not JSON ({e}): {}",
                String::from_utf8_lossy(&raw)
            )
        });
        Manifest { raw, json }
    }

    pub fn media_type(&self) -> &str {
        self.json["mediaType"].as_str().unwrap_or_default()
    }

    pub fn config_digest(&self) -> String {
        self.json["config"]["digest"]
            .as_str()
            .unwrap_or_else(|| panic!("no config digest in {}", self.json))
            .to_string()
    }

    pub fn layer_digests(&self) -> Vec<String> {
        descriptor_digests(&self.json["layers"])
    }

    /// Config then layers.
    pub fn blob_digests(&self) -> Vec<String> {
        let mut all = vec![self.config_digest()];
        all.extend(self.layer_digests());
        all
    }

    /// Child manifests of an index: digest -> (mediaType, architecture).
    pub fn children(&self) -> BTreeMap<String, (String, String)> {
        self.json["manifests"]
            .as_array()
            .unwrap_or_else(|| panic!("not an index: {}", self.json))
            .iter()
            .map(|d| {
                (
                    d["digest"].as_str().unwrap_or_default().to_string(),
                    (
                        d["mediaType"].as_str().unwrap_or_default().to_string(),
                        d["platform"]["architecture"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                    ),
                )
            })
            .collect()
    }
}

fn descriptor_digests(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|a| {
            a.iter()
                .map(|d| d["digest"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Strings of a JSON array (e.g. `Tags` of `skopeo list-tags`).
pub fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Digest of the single image in an OCI layout directory (index.json).
pub fn oci_layout_digest(layout: &Path) -> String {
    let index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1, "{index}");
    manifests[0]["digest"].as_str().unwrap().to_string()
}

// ---------------------------------------------------------------------------
// Registry checks over plain HTTP (curl)

impl Ctx {
    /// `GET` and `HEAD /v2/<repo>/manifests/<reference>` return exactly
    /// `expected`, with Content-Type = its mediaType and Docker-Content-Digest
    /// = `digest`.
    #[track_caller]
    pub fn assert_manifest_served(
        &self,
        reg: &str,
        repo: &str,
        reference: &str,
        expected: &Manifest,
        digest: &str,
    ) {
        let url = format!("http://{reg}/v2/{repo}/manifests/{reference}");
        let get = self.http("GET", &url, Some(MANIFEST_ACCEPT));
        get.expect_status(200)
            .expect_header("content-type", expected.media_type())
            .expect_header("docker-content-digest", digest);
        assert!(
            get.body == expected.raw,
            "GET {url}: body differs from the pushed manifest\n got: {}\nwant: {}",
            String::from_utf8_lossy(&get.body),
            String::from_utf8_lossy(&expected.raw)
        );
        assert_eq!(self.sha256(&get.body), digest, "GET {url}: body digest");
        let head = self.http("HEAD", &url, Some(MANIFEST_ACCEPT));
        head.expect_status(200)
            .expect_header("content-type", expected.media_type())
            .expect_header("docker-content-digest", digest)
            .expect_header("content-length", &expected.raw.len().to_string());
    }

    /// Every blob can be fetched from `reg` and hashes to its digest.
    #[track_caller]
    pub fn assert_blobs_served(&self, reg: &str, repo: &str, digests: &[String]) {
        assert!(!digests.is_empty());
        for digest in digests {
            let url = format!("http://{reg}/v2/{repo}/blobs/{digest}");
            let get = self.http("GET", &url, None);
            get.expect_status(200);
            assert_eq!(self.sha256(&get.body), *digest, "GET {url}: body digest");
            let head = self.http("HEAD", &url, None);
            head.expect_status(200)
                .expect_header("content-length", &get.body.len().to_string());
        }
    }
}

/// Every file under `dir` (none when it does not exist).
pub fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}
