//! A Garage cluster: three nodes on 127.0.0.1, 127.0.0.2 and 127.0.0.3 with every
//! object on all three (replication factor 3, so reads and writes go on with any one
//! node down), one bucket and one key.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::{cargo_bin, free_port, remove_stale_clusters, scratch, spawn_kept};

/// The nodes of a cluster.
const NODES: usize = 3;

/// A Garage cluster of the caller's own.
pub struct Garage {
    root: PathBuf,
    bin: PathBuf,
    nodes: Vec<Node>,
    key_id: String,
    secret: String,
    bucket: String,
}

struct Node {
    /// 127.0.0.N.
    ip: String,
    s3_port: u16,
    config: PathBuf,
    server: Mutex<Option<Child>>,
}

impl Garage {
    /// The region Garage's S3 API signs for.
    pub const REGION: &'static str = "garage";

    /// Starts three nodes, joins them in one layout, and creates a bucket and a key
    /// that may use it. Panics with what to install when Garage is missing.
    pub fn cluster() -> Garage {
        Garage::start().unwrap_or_else(|e| panic!("{e}"))
    }

    fn start() -> Result<Garage, String> {
        let bin = cargo_bin("garage").ok_or(
            "garage is not installed: cargo install --locked garage (30-45 minutes on two \
             cores; the long mode's multi-node tests need it)",
        )?;
        std::thread::spawn(remove_stale_clusters);
        let root = scratch().join(format!("berth-garage-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let mut bytes = [0u8; 32];
        std::io::Read::read_exact(
            &mut std::fs::File::open("/dev/urandom").map_err(|e| e.to_string())?,
            &mut bytes,
        )
        .map_err(|e| format!("reading /dev/urandom: {e}"))?;
        let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut nodes = Vec::new();
        for n in 0..NODES {
            let ip = format!("127.0.0.{}", n + 1);
            let dir = root.join(format!("node{n}"));
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let (rpc, s3_port, admin) = (free_port()?, free_port()?, free_port()?);
            let config = dir.join("garage.toml");
            std::fs::write(
                &config,
                format!(
                    "metadata_dir = \"{d}/meta\"\ndata_dir = \"{d}/data\"\n\
                     db_engine = \"sqlite\"\nreplication_factor = {NODES}\n\
                     rpc_bind_addr = \"{ip}:{rpc}\"\nrpc_public_addr = \"{ip}:{rpc}\"\n\
                     rpc_secret = \"{secret}\"\n\
                     [s3_api]\ns3_region = \"{region}\"\napi_bind_addr = \"{ip}:{s3_port}\"\n\
                     [admin]\napi_bind_addr = \"{ip}:{admin}\"\n",
                    d = dir.display(),
                    region = Garage::REGION,
                ),
            )
            .map_err(|e| format!("{}: {e}", config.display()))?;
            nodes.push(Node {
                ip,
                s3_port,
                config,
                server: Mutex::new(None),
            });
        }
        let mut g = Garage {
            root,
            bin,
            nodes,
            key_id: String::new(),
            secret: String::new(),
            bucket: "berth".into(),
        };
        for n in 0..NODES {
            g.launch(n)?;
        }
        // Join the nodes, give each the same capacity, apply the layout.
        let ids: Vec<String> = (0..NODES)
            .map(|n| g.retry(n, &["node", "id", "-q"]))
            .collect::<Result<_, _>>()?;
        for id in &ids[1..] {
            g.retry(0, &["node", "connect", id.trim()])?;
        }
        for id in &ids {
            let short = id.trim().split('@').next().unwrap_or_default();
            g.retry(0, &["layout", "assign", "-z", "dc1", "-c", "1G", short])?;
        }
        g.retry(0, &["layout", "apply", "--version", "1"])?;
        let key = g.retry(0, &["key", "create", "berth-test"])?;
        let field = |name: &str| {
            key.lines()
                .find(|l| l.contains(name))
                .and_then(|l| l.split_whitespace().last())
                .map(str::to_string)
                .ok_or_else(|| format!("garage key create printed no {name}:\n{key}"))
        };
        g.key_id = field("Key ID")?;
        g.secret = field("Secret key")?;
        g.retry(0, &["bucket", "create", "berth"])?;
        g.retry(
            0,
            &[
                "bucket",
                "allow",
                "--read",
                "--write",
                "--owner",
                "berth",
                "--key",
                "berth-test",
            ],
        )?;
        Ok(g)
    }

    fn launch(&self, n: usize) -> Result<(), String> {
        let node = &self.nodes[n];
        let dir = node.config.parent().unwrap_or(&self.root).to_path_buf();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))
            .map_err(|e| e.to_string())?;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("-c")
            .arg(&node.config)
            .arg("server")
            .env("RUST_LOG", "garage=warn")
            .stdout(Stdio::null())
            .stderr(log);
        let child = spawn_kept(cmd, libc::SIGKILL)?;
        *node.server.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect((node.ip.as_str(), node.s3_port)).is_err() {
            if Instant::now() > deadline {
                return Err(format!(
                    "garage node {n} did not start within 30 s:\n{}",
                    self.log(n)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// `garage -c <node n's config> ARGS`, tried for up to 30 s (a node answers its
    /// command line only once its RPC is up); its stdout.
    fn retry(&self, n: usize, args: &[&str]) -> Result<String, String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = Command::new(&self.bin)
                .arg("-c")
                .arg(&self.nodes[n].config)
                .args(args)
                .output()
                .map_err(|e| format!("running garage: {e}"))?;
            if out.status.success() {
                return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "garage {args:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `garage status` as node `n` sees the cluster.
    pub fn status(&self, n: usize) -> String {
        self.retry(n, &["status"]).unwrap_or_else(|e| e)
    }

    /// Node `n`'s S3 endpoint (`http://127.0.0.N:PORT`).
    pub fn endpoint(&self, n: usize) -> String {
        let node = &self.nodes[n];
        format!("http://{}:{}", node.ip, node.s3_port)
    }

    /// The bucket the key may use.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key's id and secret (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`).
    pub fn credentials(&self) -> (&str, &str) {
        (&self.key_id, &self.secret)
    }

    /// Stops node `n` at once, keeping its data.
    pub fn kill(&self, n: usize) {
        let taken = self.nodes[n]
            .server
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(mut child) = taken {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `n` again after [`Garage::kill`].
    pub fn restart(&self, n: usize) {
        self.launch(n)
            .unwrap_or_else(|e| panic!("restarting garage node {n}: {e}"));
    }

    pub fn log(&self, n: usize) -> String {
        let dir = self.nodes[n].config.parent().map(|d| d.join("server.log"));
        dir.and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        for n in 0..NODES {
            self.kill(n);
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
