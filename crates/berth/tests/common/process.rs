//! `berth serve` as a process and raw HTTP/1.1 against it (no client library between
//! the test and the wire): what the process tests of `serve.rs` and `kill_loop.rs` share.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, sha256, BERTH};

/// A `berth serve` process, killed when dropped.
pub struct Serve {
    pub child: Child,
    pub addr: String,
}

impl Serve {
    /// Starts `berth serve` on `root`. Its log is dropped, or appended to the file
    /// `BERTH_TEST_LOG` names (to see why a server answered what a test did not expect).
    pub fn start(root: &Path, extra: &[&str], envs: &[(&str, &str)]) -> Serve {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut cmd = Command::new(BERTH);
        cmd.env_remove("BERTH_LISTEN");
        cmd.args(["serve", "--root"]).arg(root).args(extra);
        let configured = extra.contains(&"--listen") || extra.contains(&"--config");
        if !configured && !envs.iter().any(|(k, _)| *k == "BERTH_LISTEN") {
            cmd.args(["--listen", &addr]);
        }
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(match std::env::var_os("BERTH_TEST_LOG") {
                Some(p) => std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(&p)
                    .unwrap_or_else(|e| panic!("opening {}: {e}", p.to_string_lossy()))
                    .into(),
                None => Stdio::null(),
            })
            .spawn()
            .expect("berth serve starts");
        Serve { child, addr }
    }

    pub fn at(mut self, addr: &str) -> Serve {
        self.addr = addr.to_string();
        self
    }

    pub fn wait_ready(&self) -> &Serve {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(r) = try_request(&self.addr, "GET", "/v2/", &[], b"") {
                if r.status == 200 {
                    return self;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "berth serve on {} did not answer /v2/ within 10 s",
            self.addr
        );
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} failed");
    }

    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "berth did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Resp {
    pub status: u16,
    pub headers: String,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

pub fn send_head(
    s: &mut TcpStream,
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
) -> std::io::Result<()> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())
}

pub fn read_response(mut s: TcpStream) -> std::io::Result<Resp> {
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    Ok(Resp {
        status,
        headers: head,
        body: raw[split + 4..].to_vec(),
    })
}

pub fn try_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut h = headers.to_vec();
    h.push(("Content-Length", body.len().to_string()));
    send_head(&mut s, addr, method, path, &h)?;
    s.write_all(body)?;
    read_response(s)
}

pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Resp {
    try_request(addr, method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}"))
}

pub fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

pub fn push_blob(addr: &str, repo: &str, bytes: &[u8]) -> String {
    let d = sha256(bytes);
    let r = request(
        addr,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
        &[],
        bytes,
    );
    assert_eq!(r.status, 201, "monolithic upload of {d}");
    d
}

/// A field of `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`), `None` when the process
/// or the field is gone.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}
