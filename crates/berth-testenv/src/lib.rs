//! Throw-away services for tests, real ones: what a user would run, started on
//! 127.0.0.1 and gone when the test process ends.
//!
//! [`Postgres`] is one cluster per test process (initdb takes a second or two), from
//! Debian's `postgresql` package; each test takes a database of its own from it with
//! [`Postgres::database`]. The server is started as a child of a thread that lives as
//! long as the process, with a parent-death signal, so that it stops even when the
//! tests are killed: no cluster outlives its test run.
//!
//! [`S3`] is an `s3s-fs` server (an S3 implementation over a folder, from the Rust
//! package registry), started the same way; each test takes a bucket of its own with
//! [`S3::bucket`].
//!
//! [`Garage`] is a cluster of three Garage nodes (the distributed S3 store) on
//! 127.0.0.1–3, for the long mode's multi-node tests (Garage takes 30–45 minutes to
//! build, so the default test command does not need it).

mod garage;

pub use garage::Garage;

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A PostgreSQL cluster of this test process.
pub struct Postgres {
    data: PathBuf,
    port: u16,
    bin: PathBuf,
    /// The unprivileged account the server runs as when the tests run as root
    /// (PostgreSQL refuses to run as root): uid, gid.
    account: Option<(u32, u32)>,
    server: Mutex<Option<Child>>,
    next: AtomicU32,
    /// With TLS on: the server's certificate (self-signed for 127.0.0.1, so also the
    /// CA a client trusts).
    tls: Option<PathBuf>,
}

impl Postgres {
    /// The cluster of this process, started on first use. Panics with what to install
    /// when PostgreSQL is missing: a test that needs it must not pass without it.
    /// A failure is kept: every later test fails at once with the same message rather
    /// than trying again.
    pub fn shared() -> &'static Postgres {
        static CLUSTER: OnceLock<Result<Postgres, String>> = OnceLock::new();
        match CLUSTER.get_or_init(|| off_runtime(|| Postgres::start(false))) {
            Ok(pg) => pg,
            Err(e) => panic!("{e}"),
        }
    }

    /// A cluster of the caller's own, for a test that stops and restarts it; stopped
    /// and removed when dropped.
    pub fn private() -> Postgres {
        off_runtime(|| Postgres::start(false)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A cluster of the caller's own that also answers TLS (`ssl=on`), with a
    /// self-signed certificate for 127.0.0.1 ([`Postgres::certificate`]). Plaintext
    /// connections are still accepted (as by Debian's default configuration).
    pub fn private_tls() -> Postgres {
        off_runtime(|| Postgres::start(true)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The server's certificate (PEM), when it answers TLS: the CA to trust.
    pub fn certificate(&self) -> Option<&Path> {
        self.tls.as_deref()
    }

    fn start(tls: bool) -> Result<Postgres, String> {
        let bin = server_bin().ok_or(
            "PostgreSQL is not installed: apt-get install postgresql (scripts/install-peers.sh installs it)",
        )?;
        // Unlinking a cluster's thousand files can take a minute on a disk mounted with
        // `discard`: clusters of earlier runs go in the background.
        std::thread::spawn(remove_stale_clusters);
        static CLUSTERS: AtomicU32 = AtomicU32::new(0);
        let data = scratch().join(format!(
            "berth-pg-{}-{}",
            std::process::id(),
            CLUSTERS.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data).map_err(|e| format!("creating {}: {e}", data.display()))?;
        // SAFETY: geteuid has no preconditions.
        let account = if unsafe { libc::geteuid() } == 0 {
            let ids = account_ids("postgres").ok_or(
                "the tests run as root and there is no postgres account to run PostgreSQL as \
                 (apt-get install postgresql creates it)",
            )?;
            give_to(&data, ids)?;
            Some(ids)
        } else {
            None
        };
        let tls = match tls {
            true => Some(write_certificate(&data, account)?),
            false => None,
        };
        let pg = Postgres {
            data,
            port: free_port()?,
            bin,
            account,
            server: Mutex::new(None),
            next: AtomicU32::new(0),
            tls,
        };
        let cluster = pg.data.join("cluster");
        let out = pg
            .command("initdb")
            .args([
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--locale=C",
                "-D",
            ])
            .arg(&cluster)
            .stdout(Stdio::null())
            .output()
            .map_err(|e| format!("running initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        pg.launch()?;
        Ok(pg)
    }

    /// Starts the server and waits until it accepts connections.
    fn launch(&self) -> Result<(), String> {
        let cluster = self.data.join("cluster");
        let log = std::fs::File::create(self.data.join("server.log")).map_err(|e| e.to_string())?;
        let mut cmd = self.command("postgres");
        cmd.arg("-D")
            .arg(&cluster)
            .args([
                "-p",
                &self.port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
            ])
            .arg("-k")
            .arg(&self.data)
            // Speed over durability against power loss (the cluster is thrown away), not
            // against a crash of the server: a commit is written before it is
            // acknowledged (synchronous_commit stays on), so tests that kill it with
            // SIGQUIT find every acknowledged write after the restart.
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .args(["-c", "max_connections=300"])
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(cert) = &self.tls {
            cmd.args(["-c", "ssl=on", "-c"])
                .arg(format!("ssl_cert_file={}", cert.display()))
                .arg("-c")
                .arg(format!(
                    "ssl_key_file={}",
                    cert.with_extension("key").display()
                ));
        }
        // SIGQUIT is PostgreSQL's immediate shutdown.
        let child = spawn_kept(cmd, libc::SIGQUIT)?;
        *self.server.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if postgres::Client::connect(&self.url_of("postgres"), postgres::NoTls).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.data.join("server.log")).unwrap_or_default();
                return Err(format!("PostgreSQL did not start within 60 s:\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A command for one of the server's programs, run as the server's account.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        cmd.current_dir(&self.data);
        if let Some((uid, gid)) = self.account {
            // std drops root's supplementary groups when it changes the uid.
            cmd.uid(uid).gid(gid).env("HOME", &self.data);
        }
        cmd
    }

    fn url_of(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// A new, empty database of this cluster: its connection URL.
    pub fn database(&self) -> String {
        let name = format!("t{}", self.next.fetch_add(1, Ordering::SeqCst));
        off_runtime(|| {
            let mut admin = postgres::Client::connect(&self.url_of("postgres"), postgres::NoTls)
                .unwrap_or_else(|e| panic!("connecting to the test cluster: {e}"));
            admin
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
        });
        self.url_of(&name)
    }

    /// The number that `sql` (one row, one `bigint` column) gives in the database of
    /// `url`: for a test that waits until a server has stored something.
    pub fn query_i64(&self, url: &str, sql: &str) -> i64 {
        off_runtime(|| {
            let mut db = postgres::Client::connect(url, postgres::NoTls)
                .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
            db.query_one(sql, &[])
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .get(0)
        })
    }

    /// For each connection the server has open to the database of `url` (one that
    /// [`Postgres::database`] made), whether it is encrypted: the server's own view
    /// (`pg_stat_ssl`).
    pub fn encrypted_connections(&self, url: &str) -> Vec<bool> {
        let database = url
            .rsplit('/')
            .next()
            .and_then(|rest| rest.split('?').next())
            .unwrap_or_default()
            .to_string();
        off_runtime(|| {
            let mut admin = postgres::Client::connect(&self.url_of("postgres"), postgres::NoTls)
                .unwrap_or_else(|e| panic!("connecting to the test cluster: {e}"));
            admin
                .query(
                    "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
                     WHERE a.datname = $1",
                    &[&database],
                )
                .unwrap_or_else(|e| panic!("reading pg_stat_ssl: {e}"))
                .iter()
                .map(|r| r.get(0))
                .collect()
        })
    }

    /// Stops the server at once (as a crash would), keeping its data.
    pub fn kill(&self) {
        if let Some(mut child) = self.server.lock().unwrap_or_else(|e| e.into_inner()).take() {
            // SAFETY: a signal to our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGQUIT) };
            let _ = child.wait();
        }
    }

    /// Starts the server again after [`Postgres::kill`], on the same port.
    pub fn restart(&self) {
        self.launch()
            .unwrap_or_else(|e| panic!("restarting PostgreSQL: {e}"));
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.join("server.log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// A self-signed certificate for 127.0.0.1 and its key in `dir` (`server.crt`,
/// `server.key`), owned by the server's account, the key readable by it alone (as
/// PostgreSQL requires); returns the certificate's path.
fn write_certificate(dir: &Path, account: Option<(u32, u32)>) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let c = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .map_err(|e| format!("making a certificate: {e}"))?;
    let cert = dir.join("server.crt");
    let key = dir.join("server.key");
    for (path, pem, mode) in [
        (&cert, c.cert.pem(), 0o644),
        (&key, c.signing_key.serialize_pem(), 0o600),
    ] {
        std::fs::write(path, pem).map_err(|e| format!("writing {}: {e}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("chmod {}: {e}", path.display()))?;
        if let Some(ids) = account {
            give_to(path, ids)?;
        }
    }
    Ok(cert)
}

/// Makes `path` the server's account's (`(uid, gid)`).
fn give_to(path: &Path, (uid, gid): (u32, u32)) -> Result<(), String> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .map_err(|e| format!("chown {}: {e}", path.display()))
}

/// Runs `f` on a thread of its own: rust-postgres's blocking client may not be used
/// on a thread that drives a tokio runtime (every `#[tokio::test]`).
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(out) => out,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// Spawns `cmd` with parent-death signal `signal`, from a thread that parks forever,
/// so that the signal fires only when the process ends (it fires when the spawning
/// thread ends, and every test runs in a thread of its own).
pub(crate) fn spawn_kept(mut cmd: Command, signal: libc::c_int) -> Result<Child, String> {
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let program = cmd.get_program().to_string_lossy().into_owned();
        let _ = tx.send(cmd.spawn().map_err(|e| format!("starting {program}: {e}")));
        loop {
            std::thread::park();
        }
    });
    rx.recv().map_err(|e| e.to_string())?
}

/// Debian's server binaries (`/usr/lib/postgresql/<major>/bin`), newest major first.
fn server_bin() -> Option<PathBuf> {
    let mut majors: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").is_file().then_some((major, bin))
        })
        .collect();
    majors.sort();
    majors.pop().map(|(_, bin)| bin)
}

fn account_ids(name: &str) -> Option<(u32, u32)> {
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: getpwnam returns a pointer to static storage or null; read at once.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return None;
    }
    // SAFETY: non-null, as checked.
    Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

/// Where clusters live: memory (`/dev/shm`) when there is such a folder, as the data
/// is thrown away, else the temporary folder.
pub(crate) fn scratch() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() && std::fs::metadata(shm).is_ok_and(|m| !m.permissions().readonly()) {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Removes the folders of clusters whose test process is gone.
pub(crate) fn remove_stale_clusters() {
    let Ok(entries) = std::fs::read_dir(scratch()) else {
        return;
    };
    for e in entries.filter_map(|e| e.ok()) {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| {
                n.strip_prefix("berth-pg-")
                    .or_else(|| n.strip_prefix("berth-s3-"))
                    .or_else(|| n.strip_prefix("berth-garage-"))
            })
            .and_then(|p| p.split('-').next()?.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// A loopback port free for a server the caller starts next.
///
/// Taken below the kernel's ephemeral range (`ip_local_port_range`), not from it as
/// binding port 0 does: the port is free only until the server binds it, and in
/// between any outgoing connection of a test running beside may get it as its local
/// port (one did: a server then failed to bind and its test waited 10 s for nothing).
pub fn free_port() -> Result<u16, String> {
    use std::hash::{BuildHasher, Hasher};
    static DRAWN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    const LOWEST: u16 = 10_000;
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    if ephemeral > LOWEST + 1_000 {
        let span = u64::from(ephemeral - LOWEST);
        for _ in 0..100 {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(DRAWN.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
            h.write_u32(std::process::id());
            let port = LOWEST + (h.finish() % span) as u16;
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return Ok(port);
            }
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port: {e}"))
}

/// An S3 server of this test process: `s3s-fs` on a folder in memory.
pub struct S3 {
    root: PathBuf,
    port: u16,
    bin: PathBuf,
    server: Mutex<Option<Child>>,
    next: AtomicU32,
}

impl S3 {
    /// The credentials of the test servers.
    pub const ACCESS_KEY: &'static str = "berth-test";
    pub const SECRET_KEY: &'static str = "berth-test-secret";
    /// The region clients sign for (s3s-fs accepts any).
    pub const REGION: &'static str = "us-east-1";

    /// The server of this process, started on first use. Panics with what to install
    /// when s3s-fs is missing.
    pub fn shared() -> &'static S3 {
        static SERVER: OnceLock<Result<S3, String>> = OnceLock::new();
        match SERVER.get_or_init(S3::start) {
            Ok(s3) => s3,
            Err(e) => panic!("{e}"),
        }
    }

    /// A server of the caller's own, for a test that stops and restarts it.
    pub fn private() -> S3 {
        S3::start().unwrap_or_else(|e| panic!("{e}"))
    }

    fn start() -> Result<S3, String> {
        let bin = cargo_bin("s3s-fs").ok_or(
            "s3s-fs is not installed: cargo install --locked s3s-fs@0.14.1 --features binary \
             (scripts/install-peers.sh installs it)",
        )?;
        std::thread::spawn(remove_stale_clusters);
        static SERVERS: AtomicU32 = AtomicU32::new(0);
        let root = scratch().join(format!(
            "berth-s3-{}-{}",
            std::process::id(),
            SERVERS.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("data"))
            .map_err(|e| format!("creating {}: {e}", root.display()))?;
        let s3 = S3 {
            root,
            port: free_port()?,
            bin,
            server: Mutex::new(None),
            next: AtomicU32::new(0),
        };
        s3.launch()?;
        Ok(s3)
    }

    fn launch(&self) -> Result<(), String> {
        let log = std::fs::File::create(self.root.join("server.log")).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(&self.bin);
        cmd.args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--access-key",
                S3::ACCESS_KEY,
                "--secret-key",
                S3::SECRET_KEY,
            ])
            .arg(self.root.join("data"))
            .stdout(Stdio::null())
            .stderr(log);
        let child = spawn_kept(cmd, libc::SIGKILL)?;
        *self.server.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                return Err(format!("s3s-fs did not start within 30 s:\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// The server's URL (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A new, empty bucket: its name.
    pub fn bucket(&self) -> String {
        let name = format!("bucket-{}", self.next.fetch_add(1, Ordering::SeqCst));
        // s3s-fs keeps a bucket as a folder of its root.
        std::fs::create_dir_all(self.root.join("data").join(&name))
            .unwrap_or_else(|e| panic!("creating bucket {name}: {e}"));
        name
    }

    /// Where s3s-fs keeps the objects of `bucket` (for tests that look behind it).
    pub fn bucket_dir(&self, bucket: &str) -> PathBuf {
        self.root.join("data").join(bucket)
    }

    /// Stops the server at once, keeping its data.
    pub fn kill(&self) {
        if let Some(mut child) = self.server.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again after [`S3::kill`], on the same port.
    pub fn restart(&self) {
        self.launch()
            .unwrap_or_else(|e| panic!("restarting s3s-fs: {e}"));
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("server.log")).unwrap_or_default()
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A program `cargo install` put on the PATH or in its `bin` folder.
pub(crate) fn cargo_bin(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        dirs.push(PathBuf::from(home).join("bin"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}
