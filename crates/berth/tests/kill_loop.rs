//! `kill -9` of `berth serve` at random points of pushes, again and again: after each
//! kill `berth registry fsck` must find nothing wrong, and after each restart every
//! manifest and blob the server acknowledged (201) before the kill is served byte for
//! byte, while a blob whose upload was cut off is either absent or whole (never a
//! partial file under its digest).
//!
//! Three pushers upload in parallel (monolithic and chunked uploads, then a manifest
//! per image); the kill comes after a random 50–600 ms. `BERTH_KILL_LOOPS` sets the
//! number of kills: 20 by default, 200 in the long mode (`scripts/long-tests`).
//! `BERTH_KILL_SEED` replays a run (the seed is printed).

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::process::{try_request, Resp, Serve};
use common::{admin, free_port, sha256};

const WORKERS: usize = 3;

/// xorshift64*: reproducible content and timing from one seed.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(n);
        out
    }
}

/// A blob the server acknowledged, remembered by how to make it again.
#[derive(Clone)]
struct Blob {
    digest: String,
    seed: u64,
    size: usize,
}

impl Blob {
    fn bytes(&self) -> Vec<u8> {
        Rng(self.seed).bytes(self.size)
    }
}

/// A manifest the server acknowledged, with the blobs it names.
#[derive(Clone)]
struct Acked {
    repo: String,
    tag: String,
    manifest: Vec<u8>,
    blobs: Vec<Blob>,
}

#[derive(Default)]
struct Ledger {
    acked: Vec<Acked>,
    /// Blobs whose upload was sent but not acknowledged (digest, expected size).
    cut: Vec<(String, usize)>,
}

/// One request; a connection error (the server died) is `None`.
fn send(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Option<Resp> {
    try_request(addr, method, path, headers, body).ok()
}

/// Uploads a blob, monolithic or in two chunks; `Some(true)` when acknowledged.
fn upload(addr: &str, repo: &str, blob: &Blob, chunked: bool) -> Option<bool> {
    let bytes = blob.bytes();
    let d = &blob.digest;
    if !chunked {
        let r = send(
            addr,
            "POST",
            &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
            &[],
            &bytes,
        )?;
        return Some(r.status == 201);
    }
    let r = send(
        addr,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        &[],
        b"",
    )?;
    let Some(session) = r.header("location").filter(|_| r.status == 202) else {
        return Some(false);
    };
    let half = bytes.len() / 2;
    for (from, to) in [(0, half), (half, bytes.len())] {
        if from == to {
            continue;
        }
        let r = send(
            addr,
            "PATCH",
            &session,
            &[("Content-Range", format!("{from}-{}", to - 1))],
            &bytes[from..to],
        )?;
        if r.status != 202 {
            return Some(false);
        }
    }
    let sep = if session.contains('?') { '&' } else { '?' };
    let r = send(addr, "PUT", &format!("{session}{sep}digest={d}"), &[], b"")?;
    Some(r.status == 201)
}

/// Pushes images until the server dies; what it acknowledged goes into the ledger.
fn pusher(addr: String, round: usize, worker: usize, mut rng: Rng, ledger: Arc<Mutex<Ledger>>) {
    let repo = format!("kill/w{worker}");
    for i in 0.. {
        let mut blobs = Vec::new();
        for kind in 0..2 {
            let seed = rng.next() | 1;
            let size = if kind == 0 {
                64 + rng.below(512) as usize
            } else {
                4096 + rng.below(1536 * 1024) as usize
            };
            let blob = Blob {
                digest: sha256(&Rng(seed).bytes(size)),
                seed,
                size,
            };
            match upload(&addr, &repo, &blob, rng.below(2) == 0) {
                Some(true) => blobs.push(blob),
                Some(false) => panic!("round {round}: upload of {} refused", blob.digest),
                None => {
                    ledger.lock().unwrap().cut.push((blob.digest, blob.size));
                    return;
                }
            }
        }
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
            blobs[0].digest, blobs[0].size, blobs[1].digest, blobs[1].size
        )
        .into_bytes();
        let tag = format!("r{round}-i{i}");
        let Some(r) = send(
            &addr,
            "PUT",
            &format!("/v2/{repo}/manifests/{tag}"),
            &[(
                "Content-Type",
                "application/vnd.oci.image.manifest.v1+json".into(),
            )],
            &manifest,
        ) else {
            return;
        };
        assert_eq!(
            r.status, 201,
            "round {round}: manifest {repo}:{tag} refused"
        );
        ledger.lock().unwrap().acked.push(Acked {
            repo: repo.clone(),
            tag,
            manifest,
            blobs,
        });
    }
}

fn get(addr: &str, path: &str) -> Resp {
    // The server was just started: a refused connection is a failure, not a race.
    try_request(addr, "GET", path, &[], b"").unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// Every acknowledged manifest and its blobs are served byte for byte.
fn verify(addr: &str, acked: &[Acked]) {
    for a in acked {
        let r = get(addr, &format!("/v2/{}/manifests/{}", a.repo, a.tag));
        assert_eq!(r.status, 200, "{}:{} lost after kill -9", a.repo, a.tag);
        assert!(
            r.body == a.manifest,
            "{}:{} changed after kill -9",
            a.repo,
            a.tag
        );
        for b in &a.blobs {
            let r = get(addr, &format!("/v2/{}/blobs/{}", a.repo, b.digest));
            assert_eq!(
                r.status, 200,
                "blob {} of {}:{} lost",
                b.digest, a.repo, a.tag
            );
            assert!(
                r.body == b.bytes(),
                "blob {} of {}:{} differs",
                b.digest,
                a.repo,
                a.tag
            );
        }
    }
}

/// A blob whose upload was cut off is absent, or whole and right.
fn verify_cut(addr: &str, cut: &[(String, usize)]) {
    for (digest, size) in cut {
        for w in 0..WORKERS {
            let r = get(addr, &format!("/v2/kill/w{w}/blobs/{digest}"));
            match r.status {
                404 => {}
                200 => {
                    assert_eq!(r.body.len(), *size, "a partial blob {digest} is visible");
                    assert_eq!(&sha256(&r.body), digest, "blob {digest} is served corrupt");
                }
                s => panic!("GET of cut-off blob {digest}: {s}"),
            }
        }
    }
}

fn fsck(root: &std::path::Path, round: usize) {
    let out = admin(&["fsck", "--root", root.to_str().unwrap()], "");
    assert!(
        out.status.success(),
        "round {round}: berth registry fsck after kill -9:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn kill_9_during_pushes_loses_nothing_acknowledged() {
    let loops: usize = std::env::var("BERTH_KILL_LOOPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("BERTH_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("kill loop: {loops} kills, BERTH_KILL_SEED={seed}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut all: Vec<Acked> = Vec::new();
    let started = Instant::now();
    let mut cut_total = 0;
    let mut s = Serve::start(dir.path(), &["--listen", &addr], &[]).at(&addr);
    s.wait_ready();
    for round in 0..loops {
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let (addr, ledger) = (addr.clone(), ledger.clone());
                let rng = Rng(rng.next() | 1);
                std::thread::spawn(move || pusher(addr, round, w, rng, ledger))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50 + rng.below(550)));
        s.signal("-KILL");
        drop(s);
        for w in workers {
            w.join().expect("a pusher panicked");
        }
        fsck(dir.path(), round);
        let Ledger { acked, cut } = std::mem::take(&mut *ledger.lock().unwrap());
        s = Serve::start(dir.path(), &["--listen", &addr], &[]).at(&addr);
        s.wait_ready();
        verify(&addr, &acked);
        verify_cut(&addr, &cut);
        cut_total += cut.len();
        all.extend(acked);
    }
    // Everything from every round, once more.
    verify(&addr, &all);
    drop(s);
    fsck(dir.path(), loops);
    let bytes: usize = all.iter().flat_map(|a| &a.blobs).map(|b| b.size).sum();
    eprintln!(
        "kill loop: {loops} kills survived in {:.1} s; {} images acknowledged ({bytes} blob bytes) verified; {cut_total} cut-off uploads never visible partially",
        started.elapsed().as_secs_f64(),
        all.len()
    );
    assert!(
        !all.is_empty(),
        "no push was acknowledged in {loops} rounds"
    );
}
