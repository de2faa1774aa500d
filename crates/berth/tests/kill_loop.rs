//! `kill -9` at random points, again and again, and what must hold after each:
//! - `berth serve` during pushes: `berth registry fsck` finds nothing wrong, every
//!   manifest and blob the server acknowledged (201) before the kill is served byte for
//!   byte after a restart, and a blob whose upload was cut off is either absent or
//!   whole (never a partial file under its digest). Three pushers upload in parallel
//!   (monolithic and chunked uploads, then a manifest per image); the kill comes after
//!   a random 50–600 ms.
//! - `berth pull` into the local store: `berth images` works, and an image it lists is
//!   whole (see [`kill_9_during_pulls_leaves_the_local_store_usable`]).
//! - `berth build` likewise ([`kill_9_during_builds_leaves_the_local_store_usable`]).
//!
//! `BERTH_KILL_LOOPS` sets the number of kills per test: 20 by default, 200 in the long
//! mode (`scripts/long-tests kill`). `BERTH_KILL_SEED` replays a run's content and
//! timing (the seed is printed; thread scheduling still varies).

mod common;
#[path = "common/registry_fixture.rs"]
mod registry_fixture;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::process::{try_request, Resp, Serve};
use common::rng::{Blob, Rng};
use common::{admin, free_port, sha256};

const WORKERS: usize = 3;

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

/// Kills per test: `BERTH_KILL_LOOPS`, 20 by default.
fn kill_loops() -> usize {
    std::env::var("BERTH_KILL_LOOPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

/// `BERTH_KILL_SEED`, or one from the clock; printed so a run can be replayed.
fn seed(what: &str) -> u64 {
    let seed = std::env::var("BERTH_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    eprintln!("kill loop ({what}): BERTH_KILL_SEED={seed}");
    seed
}

#[test]
fn kill_9_during_pushes_loses_nothing_acknowledged() {
    let loops = kill_loops();
    let mut rng = Rng(seed("pushes"));
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

/// The local store's side: `berth pull` killed at a random point (up to 1.5x the first
/// whole pull's time), then `berth images` must work, and an image it lists must
/// be whole: copied out of the store, every layer's uncompressed digest is the
/// config's diff_id. Every fourth kill is followed by a whole pull (which must reuse
/// or redo what the killed one left) and `berth rmi`, so pulls keep starting from
/// an empty and a half-filled store.
#[test]
fn kill_9_during_pulls_leaves_the_local_store_usable() {
    let loops = kill_loops();
    let mut rng = Rng(seed("pulls"));
    let dir = tempfile::tempdir().unwrap();
    let s = Serve::start(&dir.path().join("registry"), &["--catalog=false"], &[]);
    s.wait_ready();
    // Three layers of 1.5 MB of text each (random hex: gzip halves it).
    let layers: Vec<_> = (0..3)
        .map(|i| {
            let text: String = rng
                .bytes(768 * 1024)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            registry_fixture::layer(&[(&format!("data/{i}.txt"), &text)])
        })
        .collect();
    let diff_ids: Vec<String> = layers.iter().map(|(raw, _)| sha256(raw)).collect();
    let layout = dir.path().join("layout");
    registry_fixture::write_layout(
        &layout,
        "v1",
        &layers,
        serde_json::json!({"architecture": "amd64", "os": "linux", "config": {}}),
    );
    let image = format!("{}/kill/pull:v1", s.addr);
    let local = Local::new(dir.path());
    local.ok(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", layout.display()),
        &format!("docker://{image}"),
    ]);

    let started = Instant::now();
    local.ok(&["pull", "--tls-verify=false", &image]);
    let whole = started.elapsed().as_millis() as u64;
    local.verify(&image, &diff_ids);
    local.ok(&["rmi", &image]);
    let mut listed_after_kill = 0;
    for round in 0..loops {
        let mut child = local
            .command(&["pull", "--tls-verify=false", &image])
            .spawn()
            .expect("berth pull starts");
        // Up to half again the whole pull's time: some kills come after it finished.
        std::thread::sleep(Duration::from_millis(
            5 + rng.below((whole * 3 / 2).max(10)),
        ));
        let _ = child.kill();
        let _ = child.wait();
        let images = local.ok(&["images"]);
        if images.contains("kill/pull") {
            listed_after_kill += 1;
            local.verify(&image, &diff_ids);
        }
        if round % 4 == 3 || round + 1 == loops {
            local.ok(&["pull", "--tls-verify=false", &image]);
            local.verify(&image, &diff_ids);
            local.ok(&["rmi", &image]);
        }
    }
    eprintln!(
        "pull kill loop: {loops} kills (whole pull {whole} ms); the image was listed, and whole, after {listed_after_kill} of them"
    );
}

/// The same for `berth build` (`FROM scratch` and three `COPY`s of 1.5 MB each: no
/// container runtime needed): killed at a random point up to 1.5x a whole build's
/// time, then `berth images` must work and the image, when it is listed (the build
/// finished first), must be whole; it is then removed. Every fourth kill is followed by a whole build with the step cache, which
/// must produce the same layers as the first (whatever a killed build left in the
/// cache must not leak into it), and `berth rmi`.
#[test]
fn kill_9_during_builds_leaves_the_local_store_usable() {
    let loops = kill_loops();
    let mut rng = Rng(seed("builds"));
    let dir = tempfile::tempdir().unwrap();
    let context = dir.path().join("context");
    std::fs::create_dir_all(&context).unwrap();
    for name in ["a", "b", "c"] {
        let text: String = rng
            .bytes(768 * 1024)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        std::fs::write(context.join(name), text).unwrap();
    }
    std::fs::write(
        context.join("Containerfile"),
        "FROM scratch\nCOPY a /a\nCOPY b /b\nCOPY c /c\nLABEL kill=loop\n",
    )
    .unwrap();
    let ctx = context.display().to_string();
    let image = "localhost/kill/build:v1";
    let build = ["build", "-q", "-t", image, ctx.as_str()];
    // Killed builds skip the step cache every other round (else most would find every
    // step cached and finish before the kill), and use it otherwise, so that what a
    // killed build left in the cache is read by the next.
    let uncached = ["build", "-q", "--no-cache", "-t", image, ctx.as_str()];
    let local = Local::new(dir.path());

    let started = Instant::now();
    local.ok(&build);
    let whole = started.elapsed().as_millis() as u64;
    let diff_ids = local.verify_whole(image);
    assert_eq!(diff_ids.len(), 3, "one layer per COPY");
    local.ok(&["rmi", image]);
    let mut listed_after_kill = 0;
    for round in 0..loops {
        let args: &[&str] = if round % 2 == 0 { &uncached } else { &build };
        let mut child = local.command(args).spawn().expect("berth build starts");
        std::thread::sleep(Duration::from_millis(
            5 + rng.below((whole * 3 / 2).max(10)),
        ));
        let _ = child.kill();
        let _ = child.wait();
        let images = local.ok(&["images"]);
        if images.contains("kill/build") {
            // Finished before the kill; removed so the next round starts without it.
            listed_after_kill += 1;
            local.verify(image, &diff_ids);
            local.ok(&["rmi", image]);
        }
        if round % 4 == 3 || round + 1 == loops {
            local.ok(&build);
            local.verify(image, &diff_ids);
            local.ok(&["rmi", image]);
        }
    }
    eprintln!(
        "build kill loop: {loops} kills (whole build {whole} ms); the image was listed, and whole, after {listed_after_kill} of them"
    );
}

/// `berth` image commands on a store of the test's own, with no machine settings.
struct Local {
    env: Vec<(&'static str, std::path::PathBuf)>,
    dir: std::path::PathBuf,
}

impl Local {
    fn new(dir: &std::path::Path) -> Local {
        let conf = dir.join("registries.conf");
        std::fs::write(&conf, "").unwrap();
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        Local {
            env: vec![
                ("BERTH_STORAGE_ROOT", dir.join("store")),
                ("REGISTRY_AUTH_FILE", dir.join("auth.json")),
                ("CONTAINERS_REGISTRIES_CONF", conf),
                ("HOME", dir.join("home")),
                ("TMPDIR", dir.join("tmp")),
            ],
            dir: dir.to_path_buf(),
        }
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new(common::BERTH);
        c.args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Runs `berth ARGS`; its stdout when it succeeded.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.command(args).output().expect("berth runs");
        assert!(
            out.status.success(),
            "berth {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The stored image copied out of the store: each layer, uncompressed, hashes to
    /// its diff_id in the image's config. Returns those diff_ids.
    fn verify_whole(&self, image: &str) -> Vec<String> {
        let out = self.dir.join("out");
        let _ = std::fs::remove_dir_all(&out);
        self.ok(&[
            "copy",
            &format!("local:{image}"),
            &format!("dir:{}", out.display()),
        ]);
        let read = |name: &str| -> serde_json::Value {
            serde_json::from_slice(&std::fs::read(out.join(name)).unwrap()).unwrap()
        };
        let manifest = read("manifest.json");
        let config = read(
            manifest["config"]["digest"]
                .as_str()
                .expect("a config digest")
                .trim_start_matches("sha256:"),
        );
        let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
            .as_array()
            .expect("diff_ids in the config")
            .iter()
            .map(|d| d.as_str().unwrap().to_string())
            .collect();
        let layers = manifest["layers"]
            .as_array()
            .expect("a manifest with layers");
        assert_eq!(layers.len(), diff_ids.len(), "{manifest}");
        for (layer, diff_id) in layers.iter().zip(&diff_ids) {
            let digest = layer["digest"].as_str().unwrap();
            let bytes = std::fs::read(out.join(digest.trim_start_matches("sha256:"))).unwrap();
            assert_eq!(sha256(&bytes), digest, "layer {digest} copied out corrupt");
            let raw = if layer["mediaType"].as_str().unwrap_or("").ends_with("gzip") {
                let mut raw = Vec::new();
                std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut raw)
                    .unwrap();
                raw
            } else {
                bytes
            };
            assert_eq!(
                &sha256(&raw),
                diff_id,
                "layer {digest} does not match its diff_id"
            );
        }
        diff_ids
    }

    /// [`Local::verify_whole`], and its layers are the ones expected.
    fn verify(&self, image: &str, diff_ids: &[String]) {
        assert_eq!(self.verify_whole(image), diff_ids, "not the pushed layers");
    }
}
