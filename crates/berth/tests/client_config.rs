//! registries.conf as containers/image reads it, where it decides who is sent what:
//! `short-name-mode = "enforcing"` and an empty search list are errors, not a pull
//! from docker.io; credentials given on the command line do not go to a mirror on
//! another host; a blocked registry is not contacted as a mirror (it is skipped), nor
//! sent a password by `login`. The "registries" here record what they are sent and
//! answer 401.
//!
//! Run with `cargo test -p berth --test client_config`.

#[path = "interop/support.rs"]
mod support;

use std::fs;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use support::*;

/// A registry on 127.0.0.1 that answers every request `401` with a Basic challenge (so
/// a client holding credentials sends them) and records each request's first line and
/// `Authorization` header.
fn recording_registry() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && head.len() < 65536 {
                match conn.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            let text = String::from_utf8_lossy(&head).to_string();
            let first = text.lines().next().unwrap_or_default().to_string();
            let auth = text
                .lines()
                .find(|l| l.to_ascii_lowercase().starts_with("authorization:"))
                .unwrap_or("no authorization")
                .to_string();
            record.lock().unwrap().push(format!("{first} | {auth}"));
            let _ = conn.write_all(
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"r\"\r\n\
                  Content-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    (addr, seen)
}

fn registries_conf(ctx: &Ctx, text: &str) {
    fs::write(ctx.path("registries.conf"), text).unwrap();
}

#[test]
fn enforcing_short_names_and_an_empty_search_list_do_not_fall_back_to_docker_io() {
    let ctx = Ctx::new("cfg-short", &[]);
    registries_conf(
        &ctx,
        "unqualified-search-registries = [\"registry.one.test\", \"registry.two.test\"]\n\
         short-name-mode = \"enforcing\"\n",
    );
    let out = ctx.berth(&["pull", "app:v1"]).run_fail();
    assert!(
        out.stderr
            .contains("is enforced but cannot prompt without a TTY"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("docker.io"), "{}", out.stderr);
    registries_conf(&ctx, "unqualified-search-registries = []\n");
    let out = ctx.berth(&["pull", "app:v1"]).run_fail();
    assert!(
        out.stderr
            .contains("no unqualified-search registries are defined"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("docker.io"), "{}", out.stderr);
}

#[test]
fn command_line_credentials_stay_with_the_registry_named() {
    let ctx = Ctx::new("cfg-mirror", &[]);
    let (mirror, seen) = recording_registry();
    registries_conf(
        &ctx,
        &format!(
            "[[registry]]\nprefix = \"registry.corp.test\"\nlocation = \"registry.corp.test\"\n\
             [[registry.mirror]]\nlocation = \"{mirror}\"\ninsecure = true\n"
        ),
    );
    ctx.berth(&[
        "inspect",
        "--creds",
        "alice:secret-pw",
        "docker://registry.corp.test/app:v1",
    ])
    .run_fail();
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty(), "the mirror was not asked");
    // base64("alice:secret-pw")
    assert!(
        seen.iter().all(|l| !l.contains("YWxpY2U6c2VjcmV0LXB3")),
        "the mirror got alice's password: {seen:?}"
    );
}

#[test]
fn a_blocked_registry_is_not_contacted_as_a_mirror_nor_sent_a_login() {
    let ctx = Ctx::new("cfg-blocked", &[]);
    let (blocked, seen) = recording_registry();
    registries_conf(
        &ctx,
        &format!(
            "[[registry]]\nlocation = \"{blocked}\"\nblocked = true\n\
             [[registry]]\nprefix = \"registry.corp.test\"\nlocation = \"registry.corp.test\"\n\
             [[registry.mirror]]\nlocation = \"{blocked}\"\ninsecure = true\n"
        ),
    );
    // The blocked mirror is skipped, as containers/image skips it, for the registry
    // itself (which does not resolve here).
    ctx.berth(&["inspect", "docker://registry.corp.test/app:v1"])
        .run_fail();
    let out = ctx
        .berth(&[
            "login",
            "--tls-verify=false",
            "-u",
            "alice",
            "-p",
            "secret-pw",
            &blocked,
        ])
        .run_fail();
    assert!(out.stderr.contains("blocked"), "{}", out.stderr);
    assert!(
        seen.lock().unwrap().is_empty(),
        "the blocked registry was contacted: {:?}",
        seen.lock().unwrap()
    );
}
