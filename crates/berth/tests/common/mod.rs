//! What the process tests share: the binary under test and a free loopback port.

#![allow(dead_code)]

use std::net::TcpListener;

pub const BERTH: &str = env!("CARGO_BIN_EXE_berth");

/// A loopback port nobody listens on right now (another process may take it before
/// the caller binds it; callers that care retry).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding a loopback port")
}
