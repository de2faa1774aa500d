//! `berth serve` as a process: configuration sources, graceful shutdown on SIGTERM,
//! and what survives `kill -9` in the middle of uploads.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::process::{data, push_blob, read_response, request, send_head, try_request, Serve};
use common::{admin, free_port, sha256, BERTH};

#[test]
fn sigterm_lets_requests_in_flight_finish_then_exits() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Serve::start(dir.path(), &[], &[]);
    s.wait_ready();
    let blob = data(256 * 1024, 1);
    let d = sha256(&blob);

    // A one-shot upload whose body is only half sent when SIGTERM arrives.
    let mut conn = TcpStream::connect(&s.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    send_head(
        &mut conn,
        &s.addr,
        "POST",
        &format!("/v2/t/blobs/uploads/?digest={d}"),
        &[("Content-Length", blob.len().to_string())],
    )
    .unwrap();
    conn.write_all(&blob[..blob.len() / 2]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    s.signal("-TERM");
    std::thread::sleep(Duration::from_millis(300));

    // No new connections are served once shutdown began.
    assert!(
        try_request(&s.addr, "GET", "/v2/", &[], b"").is_err(),
        "a new connection was served after SIGTERM"
    );
    // The request in flight completes.
    conn.write_all(&blob[blob.len() / 2..]).unwrap();
    let r = read_response(conn).unwrap();
    assert_eq!(r.status, 201, "in-flight upload finished with {}", r.status);
    let status = s.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "berth exited with {status}");

    // The blob it committed is there after a restart.
    let s2 = Serve::start(dir.path(), &[], &[]);
    s2.wait_ready();
    let r = request(&s2.addr, "GET", &format!("/v2/t/blobs/{d}"), &[], b"");
    assert_eq!((r.status, r.body == blob), (200, true));
}

/// A log pipe whose reader died (`berth serve 2>&1 | head -n 2`) costs the log, not
/// the service: requests are answered and SIGTERM still ends the server. Before, the
/// first log line failed to write, tracing-subscriber's report of it panicked, every
/// request failed and SIGTERM did nothing.
#[test]
fn a_closed_log_pipe_neither_stops_serving_nor_deafens_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(BERTH)
        .args(["serve", "--log-level", "debug", "--root"])
        .arg(dir.path())
        .args(["--listen", &addr])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read the first bytes of the log, then close the pipe, as `head -c` does.
    let mut stderr = child.stderr.take().unwrap();
    let mut first = [0u8; 16];
    stderr.read_exact(&mut first).unwrap();
    drop(stderr);
    let mut s = Serve { child, addr };
    s.wait_ready();
    for _ in 0..3 {
        let r = request(&s.addr, "GET", "/v2/", &[], b"");
        assert_eq!(r.status, 200);
    }
    s.signal("-TERM");
    let status = s.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "berth exited with {status}");
}

#[test]
fn kill_9_keeps_committed_content_and_never_serves_a_partial_blob() {
    let dir = tempfile::tempdir().unwrap();
    let s = Serve::start(dir.path(), &[], &[]);
    s.wait_ready();
    let addr = s.addr.clone();

    // Committed before the crash: a blob and a manifest that uses it.
    let config = push_blob(&addr, "app", b"{}");
    let layer_bytes = data(100_000, 2);
    let layer = push_blob(&addr, "app", &layer_bytes);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":{}}}]}}"#,
        layer_bytes.len()
    );
    let r = request(
        &addr,
        "PUT",
        "/v2/app/manifests/v1",
        &[(
            "Content-Type",
            "application/vnd.oci.image.manifest.v1+json".into(),
        )],
        manifest.as_bytes(),
    );
    assert_eq!(r.status, 201);

    // A chunked upload with one chunk committed to the session.
    let big = data(3 * 1024 * 1024, 3);
    let big_digest = sha256(&big);
    let r = request(&addr, "POST", "/v2/app/blobs/uploads/", &[], b"");
    assert_eq!(r.status, 202);
    let session = r.header("location").unwrap();
    let first = 1024 * 1024;
    let r = request(
        &addr,
        "PATCH",
        &session,
        &[("Content-Range", format!("0-{}", first - 1))],
        &big[..first],
    );
    assert_eq!(r.status, 202);

    // A one-shot upload that is half sent when the process dies.
    let partial = data(2 * 1024 * 1024, 4);
    let partial_digest = sha256(&partial);
    let mut conn = TcpStream::connect(&addr).unwrap();
    send_head(
        &mut conn,
        &addr,
        "POST",
        &format!("/v2/app/blobs/uploads/?digest={partial_digest}"),
        &[("Content-Length", partial.len().to_string())],
    )
    .unwrap();
    conn.write_all(&partial[..partial.len() / 2]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    s.signal("-KILL");
    drop(s);
    drop(conn);

    let s = Serve::start(dir.path(), &["--listen", &addr], &[]).at(&addr);
    s.wait_ready();
    // Everything committed before is served, byte for byte.
    let r = request(&addr, "GET", "/v2/app/manifests/v1", &[], b"");
    assert_eq!((r.status, r.body.as_slice()), (200, manifest.as_bytes()));
    let r = request(&addr, "GET", &format!("/v2/app/blobs/{layer}"), &[], b"");
    assert_eq!((r.status, r.body == layer_bytes), (200, true));
    // The interrupted one-shot upload left no blob.
    let r = request(
        &addr,
        "HEAD",
        &format!("/v2/app/blobs/{partial_digest}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 404, "a partial blob is visible after kill -9");
    // The chunked session resumes where it was, and completes.
    let r = request(&addr, "GET", &session, &[], b"");
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("range").as_deref(),
        Some(format!("0-{}", first - 1).as_str())
    );
    let r = request(
        &addr,
        "PATCH",
        &session,
        &[("Content-Range", format!("{first}-{}", big.len() - 1))],
        &big[first..],
    );
    assert_eq!(r.status, 202);
    let r = request(
        &addr,
        "PUT",
        &format!("{session}?digest={big_digest}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 201, "finishing the resumed upload");
    let r = request(
        &addr,
        "GET",
        &format!("/v2/app/blobs/{big_digest}"),
        &[],
        b"",
    );
    assert_eq!((r.status, r.body == big), (200, true));
}

#[test]
fn configuration_flags_win_over_environment_over_file() {
    let dir = tempfile::tempdir().unwrap();
    let (p_file, p_env) = (free_port(), free_port());
    let file = dir.path().join("berth.toml");
    std::fs::write(
        &file,
        format!("listen = \"127.0.0.1:{p_file}\"\nupload_ttl = \"2h\"\nlog_level = \"warn\"\n"),
    )
    .unwrap();
    let root = dir.path().join("data");
    let cfg = file.to_str().unwrap();

    // File alone.
    let s = Serve::start(&root, &["--config", cfg], &[]).at(&format!("127.0.0.1:{p_file}"));
    s.wait_ready();
    drop(s);
    // Environment over file.
    let env_addr = format!("127.0.0.1:{p_env}");
    let s = Serve::start(
        &root,
        &["--config", cfg],
        &[("BERTH_LISTEN", env_addr.as_str())],
    )
    .at(&env_addr);
    s.wait_ready();
    drop(s);
    // Flag over environment.
    let flag_addr = format!("127.0.0.1:{}", free_port());
    let s = Serve::start(
        &root,
        &["--config", cfg, "--listen", &flag_addr],
        &[("BERTH_LISTEN", env_addr.as_str())],
    )
    .at(&flag_addr);
    s.wait_ready();
}

/// The file says `ui` as the flag does (`"on"`/`"off"`) or as a boolean; before,
/// `ui = "off"`, as the README's table has it, was a parse error.
#[test]
fn the_file_says_ui_as_the_flag_does_or_as_a_boolean() {
    let dir = tempfile::tempdir().unwrap();
    for (value, status) in [
        ("\"off\"", 404),
        ("false", 404),
        ("\"on\"", 200),
        ("true", 200),
    ] {
        let file = dir.path().join("berth.toml");
        let addr = format!("127.0.0.1:{}", free_port());
        std::fs::write(&file, format!("ui = {value}\nlisten = \"{addr}\"\n")).unwrap();
        let s = Serve::start(
            &dir.path().join("data"),
            &["--config", file.to_str().unwrap()],
            &[],
        )
        .at(&addr);
        s.wait_ready();
        let r = request(&s.addr, "GET", "/", &[], b"");
        assert_eq!(r.status, status, "ui = {value}");
    }
}

#[test]
fn bad_configuration_is_one_clear_line_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:1\"\nno_such_key = 1\n").unwrap();
    let out = Command::new(BERTH)
        .args(["serve", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("berth: parsing config file"), "{err}");
    assert!(err.contains("no_such_key"), "{err}");
}

#[test]
fn serve_help_documents_every_setting() {
    let out = Command::new(BERTH)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for key in [
        "--listen",
        "--root",
        "--config",
        "--upload-ttl",
        "--shutdown-timeout",
        "--log-level",
        "--log-format",
        "BERTH_LISTEN",
        "BERTH_ROOT",
        "BERTH_CONFIG",
        "BERTH_UPLOAD_TTL",
    ] {
        assert!(help.contains(key), "serve --help does not mention {key}");
    }
}

/// docker-registry's forms of `--listen`: a host name is resolved (`localhost:PORT`);
/// `:PORT` (every interface) is read by the unit test of `listen_addrs`, so that no
/// test listens beyond loopback.
#[test]
fn listen_accepts_a_host_name_as_docker_registry_does() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let listen = format!("localhost:{port}");
    let s = Serve::start(&dir.path().join("data"), &["--listen", &listen], &[])
        .at(&format!("127.0.0.1:{port}"));
    s.wait_ready();
}

#[test]
fn a_failed_bind_creates_no_data_folder() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let root = dir.path().join("never-created");
    for listen in [addr.as_str(), "127.0.0.1:x", "localhost"] {
        let out = Command::new(BERTH)
            .env_remove("BERTH_LISTEN")
            .args(["serve", "--listen", listen, "--root"])
            .arg(&root)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{listen}: {err}");
        assert_eq!(err.lines().count(), 1, "{listen}: {err}");
        assert!(err.contains(listen), "{listen}: {err}");
        assert!(
            !root.exists(),
            "--listen {listen} created {}",
            root.display()
        );
    }
    // An object store that does not answer: one line, each cause said once, and no
    // data folder.
    let free = format!("127.0.0.1:{}", free_port());
    let closed = format!("http://127.0.0.1:{}", free_port());
    let out = Command::new(BERTH)
        .env_remove("BERTH_LISTEN")
        .env("AWS_ACCESS_KEY_ID", "a")
        .env("AWS_SECRET_ACCESS_KEY", "b")
        .args(["serve", "--listen", &free, "--blob-store", "s3://bucket"])
        .args(["--s3-endpoint", &closed, "--root"])
        .arg(&root)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.starts_with("berth: "))
        .unwrap_or_default();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        line.contains("opening the object store s3://bucket"),
        "{err}"
    );
    assert_eq!(line.matches("reaching s3://bucket").count(), 1, "{line}");
    assert!(
        !root.exists(),
        "an unreachable store created {}",
        root.display()
    );
}

/// `berth registry … user add` before the first `serve` creates the registry, and the
/// server then requires that login; a query of a registry that is not there still fails.
#[test]
fn users_can_be_added_before_the_first_serve() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let r = root.to_str().unwrap();
    let registry = |args: &[&str], stdin: &str| {
        let mut all = vec!["--root", r];
        all.extend(args);
        admin(&all, stdin)
    };
    let out = registry(&["user", "list"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no registry at"));
    assert!(!root.exists());
    let out = registry(&["user", "add", "alice", "--password-stdin"], "alice-pw\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = Serve::start(&root, &[], &[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        match try_request(&s.addr, "GET", "/v2/", &[], b"") {
            Ok(r) => break r.status,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("berth serve did not answer: {e}"),
        }
    };
    assert_eq!(status, 401, "alice exists, so a login is required");
}

/// The global `--debug`, before or after `serve`, is the debug log level.
#[test]
fn debug_flag_sets_the_log_level() {
    let dir = tempfile::tempdir().unwrap();
    for args in [["--debug", "serve"], ["serve", "--debug"]] {
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new(BERTH)
            .env_remove("BERTH_LOG_LEVEL")
            .args(args)
            .args(["--listen", &addr, "--root"])
            .arg(dir.path().join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut s = Serve {
            child,
            addr: addr.clone(),
        };
        s.wait_ready();
        s.signal("-TERM");
        s.wait_exit(Duration::from_secs(10));
        let mut err = String::new();
        s.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(
            err.contains("DEBUG") && err.contains("configuration"),
            "{args:?}: {err}"
        );
    }
}
