//! `berth serve` under hostile clients: too many connections, heads sent a byte at a
//! time, oversized heads, stalled bodies. Each is refused or cut off in bounded time
//! while a well-behaved client is answered at once.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{free_port, sha256, BERTH};

/// A `berth serve` process on a fresh root, killed when dropped.
struct Serve {
    child: Child,
    addr: String,
    /// The registry's root and `stderr.log`, its log.
    dir: tempfile::TempDir,
}

impl Serve {
    /// Starts it and waits until plain HTTP `/v2/` answers 200.
    fn start(extra: &[&str]) -> Serve {
        let serve = Serve::spawn(extra);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if get(&serve.addr, "/v2/", "").is_ok_and(|r| r.starts_with("HTTP/1.1 200")) {
                return serve;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("berth serve on {} did not answer within 10 s", serve.addr);
    }

    fn spawn(extra: &[&str]) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new(BERTH)
            .env_remove("BERTH_LISTEN")
            .args(["serve", "--root"])
            .arg(dir.path().join("root"))
            .args(["--listen", &addr])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("berth serve starts");
        Serve { child, addr, dir }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `raw` as a whole request and reads the answer until the server closes.
fn exchange(addr: &str, raw: &[u8]) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(raw)?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

fn get(addr: &str, path: &str, extra_headers: &str) -> std::io::Result<String> {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra_headers}\r\n")
            .as_bytes(),
    )
}

/// A well-behaved client is answered 200, quickly, while something else goes on.
fn assert_others_served(addr: &str) {
    let started = Instant::now();
    let answer = get(addr, "/v2/", "").expect("a normal client is answered");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a normal client waited {:?}",
        started.elapsed()
    );
}

/// Reads until the server closes the connection (or the 10 s read timeout passes,
/// which fails the test); returns how long that took from `since`.
fn closed_after(mut s: TcpStream, since: Instant) -> Duration {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return since.elapsed(),
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return since.elapsed(),
            Err(e) => panic!(
                "the server kept the connection open: {e} after {:?}",
                since.elapsed()
            ),
        }
    }
}

#[test]
fn connections_beyond_the_limit_get_503_and_room_returns() {
    let serve = Serve::start(&["--max-connections", "8"]);
    let idle: Vec<TcpStream> = (0..8)
        .map(|_| TcpStream::connect(&serve.addr).unwrap())
        .collect();
    // The accept queue is first in, first out: the next one is the ninth.
    let started = Instant::now();
    let answer = get(&serve.addr, "/v2/", "").expect("the ninth connection is answered");
    assert!(
        answer.starts_with("HTTP/1.1 503 Service Unavailable"),
        "{answer}"
    );
    assert!(answer.contains("\r\nRetry-After: 1\r\n"), "{answer}");
    assert!(answer.contains("too many connections"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let log = std::fs::read_to_string(serve.dir.path().join("stderr.log")).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("connection limit reached") && l.contains("refused=1")),
        "{log}"
    );

    // Closing some makes room again.
    drop(idle.into_iter().take(4).collect::<Vec<_>>());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = get(&serve.addr, "/v2/", "").unwrap();
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "still refused: {answer}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Under TLS a connection beyond the limit is closed at once (answering would cost the
/// handshake being refused) rather than left waiting for a slot.
#[tokio::test]
async fn under_tls_connections_beyond_the_limit_are_closed_at_once() {
    let certs = tempfile::tempdir().unwrap();
    let c = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let (cert, key) = (certs.path().join("c.crt"), certs.path().join("c.key"));
    std::fs::write(&cert, c.cert.pem()).unwrap();
    std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
    let serve = Serve::spawn(&[
        "--max-connections",
        "2",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(c.cert.pem().as_bytes()).unwrap())
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let url = format!("https://{}/v2/", serve.addr);
    let served = || async {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if client
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                return;
            }
            assert!(Instant::now() < deadline, "{url} not served");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    served().await;
    // Let the server see that connection end, so that its slot is free again.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let idle: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(&serve.addr).unwrap())
        .collect();
    let started = Instant::now();
    let third = TcpStream::connect(&serve.addr).unwrap();
    let after = tokio::task::spawn_blocking(move || closed_after(third, started))
        .await
        .unwrap();
    assert!(after < Duration::from_secs(2), "closed after {after:?}");
    for s in &idle {
        s.set_nonblocking(true).unwrap();
        let e = s
            .peek(&mut [0u8; 1])
            .expect_err("an idle connection was closed");
        assert_eq!(e.kind(), ErrorKind::WouldBlock);
    }
    assert!(client.get(&url).send().await.is_err());

    drop(idle);
    served().await;
}

#[test]
fn a_head_sent_a_byte_at_a_time_is_cut_off_at_the_header_timeout() {
    let serve = Serve::start(&["--header-timeout", "2s"]);
    let started = Instant::now();
    let slow = TcpStream::connect(&serve.addr).unwrap();
    let mut writer = slow.try_clone().unwrap();
    let dribble = std::thread::spawn(move || {
        // A head that never ends: 40 bytes over 20 s.
        for byte in b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaa".iter() {
            if writer.write_all(&[*byte]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    std::thread::sleep(Duration::from_millis(1000));
    assert_others_served(&serve.addr);
    let after = closed_after(slow, started);
    assert!(
        after >= Duration::from_millis(1500) && after < Duration::from_secs(4),
        "the dribbling client was cut off after {after:?}"
    );
    dribble.join().unwrap();
}

#[test]
fn oversized_heads_are_answered_431() {
    let serve = Serve::start(&[]);
    let started = Instant::now();
    let line = format!("X-Big: {}\r\n", "a".repeat(100 * 1024));
    let answer = get(&serve.addr, "/v2/", &line).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large"),
        "{}",
        &answer[..answer.len().min(200)]
    );
    let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    let answer = get(&serve.addr, "/v2/", &many).unwrap();
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_others_served(&serve.addr);
}

fn upload_head(addr: &str, digest: &str, length: usize) -> String {
    format!(
        "POST /v2/slow/blobs/uploads/?digest={digest} HTTP/1.1\r\nHost: {addr}\r\n\
         Connection: close\r\nContent-Length: {length}\r\n\r\n"
    )
}

#[test]
fn a_stalled_body_ends_but_a_slow_steady_one_goes_through() {
    let serve = Serve::start(&["--body-timeout", "2s"]);

    // 10 bytes of 1000, then silence.
    let mut stalled = TcpStream::connect(&serve.addr).unwrap();
    let digest = format!("sha256:{}", "0".repeat(64));
    stalled
        .write_all(upload_head(&serve.addr, &digest, 1000).as_bytes())
        .unwrap();
    stalled.write_all(&[7u8; 10]).unwrap();
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    assert_others_served(&serve.addr);
    let after = closed_after(stalled, started);
    assert!(
        after >= Duration::from_millis(1500) && after < Duration::from_secs(5),
        "the stalled upload ended after {after:?}"
    );

    // 8 bytes, one every 400 ms: longer than the timeout in all, never silent that long.
    let bytes = b"steady!\n";
    let digest = sha256(bytes);
    let mut steady = TcpStream::connect(&serve.addr).unwrap();
    steady
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    steady
        .write_all(upload_head(&serve.addr, &digest, bytes.len()).as_bytes())
        .unwrap();
    for b in bytes {
        std::thread::sleep(Duration::from_millis(400));
        steady.write_all(&[*b]).unwrap();
    }
    let mut answer = String::new();
    steady.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
}

/// SIGTERM closes idle connections (one that never sent a request, one kept alive
/// after its request) at once rather than waiting for them until the shutdown timeout.
#[test]
fn sigterm_does_not_wait_for_idle_connections() {
    let mut serve = Serve::start(&["--shutdown-timeout", "20s"]);
    let silent = TcpStream::connect(&serve.addr).unwrap();
    let mut kept = TcpStream::connect(&serve.addr).unwrap();
    kept.write_all(format!("GET /v2/ HTTP/1.1\r\nHost: {}\r\n\r\n", serve.addr).as_bytes())
        .unwrap();
    kept.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut first = [0u8; 12];
    kept.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");

    let started = Instant::now();
    let ok = Command::new("kill")
        .args(["-TERM", &serve.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    loop {
        if let Some(status) = serve.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "berth serve still running with idle connections open"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop((silent, kept));
}
