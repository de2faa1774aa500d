//! What the process tests share: the binary under test and a free loopback port.

#![allow(dead_code)]

pub mod backend;
pub mod distribution;
pub mod process;
pub mod rng;

use std::io::Write;
use std::process::{Command, Output, Stdio};

pub const BERTH: &str = env!("CARGO_BIN_EXE_berth");

/// sha256 through the system tool, to stay independent of the code under test.
pub fn sha256(bytes: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum (coreutils)");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    format!(
        "sha256:{}",
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
    )
}

/// A loopback port nobody listens on right now, outside the range outgoing
/// connections take theirs from (another process may still take it before the caller
/// binds it).
pub fn free_port() -> u16 {
    berth_testenv::free_port().expect("binding a loopback port")
}

/// Runs `berth registry ARGS` with `stdin` (`BERTH_ROOT` unset: pass `--root`).
pub fn admin(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(BERTH)
        .env_remove("BERTH_ROOT")
        .arg("registry")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("berth registry starts");
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin.as_bytes())
            .expect("writing berth's stdin");
    }
    child.wait_with_output().expect("berth registry exits")
}
