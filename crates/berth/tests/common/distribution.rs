//! docker-registry (distribution 2.8 from Debian) as a peer of the tests: an
//! upstream of the pull-through cache, a target of replication.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// docker-registry on a loopback port, logging every request; killed when dropped.
pub struct Distribution {
    child: Child,
    pub addr: String,
    pub dir: PathBuf,
    log: PathBuf,
}

impl Distribution {
    pub fn start(dir: &Path, addr: Option<&str>) -> Distribution {
        let addr = addr
            .map(str::to_string)
            .unwrap_or_else(|| format!("127.0.0.1:{}", free_port()));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: {addr}\n  secret: berth-proxy-test\n",
                dir.join("data").display()
            ),
        )
        .unwrap();
        let log = dir.join(format!("log-{}", addr.replace(':', "-")));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new("docker-registry")
            .args(["serve"])
            .arg(&config)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start docker-registry: {e}; install it (apt-get install docker-registry, or scripts/install-peers.sh)")
            });
        let up = Distribution {
            child,
            addr,
            dir: dir.to_path_buf(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&up.addr).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        up
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests it answered so far whose URI contains `part` (its log's "response
    /// completed" lines).
    pub fn requests(&self, method: &str, part: &str) -> usize {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter(|l| l.contains("response completed"))
            .filter(|l| l.contains(&format!("http.request.method={method} ")))
            .filter(|l| l.contains(part))
            .count()
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        self.stop();
    }
}
