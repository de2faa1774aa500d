//! `stress`: berth serve with token auth on, under 10,000 keep-alive connections
//! pulling and 100 pushers at once for `--stress-seconds`, then what says whether it
//! held: errors by kind, p50/p99 latency of pulls and pushes, the server's peak RSS
//! and open descriptors (sampled every 100 ms), and the refusal of a connection
//! beyond `--max-connections`.
//!
//! The pull mix is the request sequence docker and containerd send for each image of
//! a pull once they hold a token: `GET /v2/`, `HEAD` of the manifest by tag, `GET` of
//! the manifest by digest, `GET` of the config blob, `GET` of the layer (64 KiB).
//! Each connection runs it over the eight images in a closed loop (the shared load
//! generator of [`crate::load`]). The pushers push fresh images in a loop (monolithic
//! blob uploads, then the manifest by tag), each pusher to one of ten repositories.

use std::collections::BTreeMap;
use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::data::{self, SmallImage};
use crate::http::{Conn, MANIFEST_ACCEPT, USER_AGENT};
use crate::load::{self, percentile_ms, transport_kind};
use crate::report::{fmt_num, Table};
use crate::server::{status_kib, Env, Kind, Server};
use crate::{add_user, fetch_token, progress, push_image, AUTH_USER};

/// Keep-alive connections pulling.
pub const PULL_CONNECTIONS: usize = 10_000;
/// Connections pushing, one pusher each.
pub const PUSHERS: usize = 100;
/// The server's `--max-connections`: exactly the load, so the next one is refused.
pub const MAX_CONNECTIONS: usize = PULL_CONNECTIONS + PUSHERS;
/// What the server may hold open: berth's own budget (serve/limits.rs), two per
/// connection (its socket and the file of a blob being read: a blob GET opens its
/// file before its task is polled again, and under this load thousands of tasks wait
/// for the two busy worker threads) plus 256 for the listener, databases, logs and
/// refused sockets.
pub const FDS_BOUND: usize = 2 * MAX_CONNECTIONS + 256;
/// What berth-bench itself needs to open: its connections, probes and a margin.
const OWN_FDS: u64 = (PULL_CONNECTIONS + PUSHERS + REFUSAL_PROBES) as u64 + 256;
/// Peak RSS the server may reach under the whole load: about 100 KiB per connection.
pub const RSS_BOUND_MIB: f64 = 1024.0;
/// The rows this phase fills (an error goes on the first).
pub const ROW_ERRORS: &str = "stress_errors";

const PULL_IMAGES: usize = 8;
const PULL_LAYER: usize = 64 * 1024;
const PUSH_REPOS: usize = 10;
/// Layer sizes of pushed images: 1 KiB up to this.
const PUSH_LAYER_MAX: usize = 16 * 1024;
/// Per pusher: the deadline normally ends the loop first.
const MAX_PUSHES_PER_PUSHER: u64 = 1_000_000;
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// Connections beyond the limit tried while the load holds every slot.
const REFUSAL_PROBES: usize = 5;
/// How long to wait for every connection of the load to be open.
const CONNECT_WAIT: Duration = Duration::from_secs(120);
/// How long pushers may take to finish their current push after the load ended.
const PUSH_GRACE: Duration = Duration::from_secs(30);
/// What berth answers a connection beyond `--max-connections` (serve/limits.rs).
const REFUSAL_TEXT: &str = "too many connections";
/// Ephemeral ports kept free for everything else on the machine.
const PORT_SLACK: u64 = 1000;

fn pull_repo() -> String {
    format!("{AUTH_USER}/stress-pull")
}

fn push_repo(i: usize) -> String {
    format!("{AUTH_USER}/stress-push-{}", i % PUSH_REPOS)
}

/// Runs the phase and fills the `stress_*` rows; a failure fails this phase only.
pub async fn stress_phase(env: &Env, table: &mut Table, seconds: u64) {
    if let Err(e) = run(env, table, Duration::from_secs(seconds)).await {
        progress(&format!("stress: FAILED: {e:#}"));
        table.error(ROW_ERRORS, "berth", format!("{e:#}"));
    }
}

async fn run(env: &Env, table: &mut Table, duration: Duration) -> Result<()> {
    // Every check of what the machine allows comes before anything starts.
    let _nofile = NofileLimit::raise(OWN_FDS)?;
    check_ports((MAX_CONNECTIONS + REFUSAL_PROBES) as u64 + PORT_SLACK)?;
    progress(&format!(
        "stress: berth with token auth, --max-connections {MAX_CONNECTIONS}; \
         {PULL_CONNECTIONS} pulling connections and {PUSHERS} pushers for {} s",
        duration.as_secs()
    ));
    let lifetime = format!("{}s", duration.as_secs() + 600);
    let max = MAX_CONNECTIONS.to_string();
    let s = Server::start_with(
        env,
        Kind::Berth,
        None,
        &["--max-connections", &max, "--token-lifetime", &lifetime],
    )?;
    let server_nofile = open_files_limit(s.pid)?;
    if server_nofile < OWN_FDS {
        bail!(
            "berth serve got an open-files limit of {server_nofile}, below the {OWN_FDS} \
             sockets of the load: raise the hard limit (ulimit -Hn) of the shell running \
             berth-bench"
        );
    }
    // Below berth's budget the run goes on: running out would show as errors.
    let short = if server_nofile < FDS_BOUND as u64 {
        format!(
            " (below the {FDS_BOUND} of berth's budget: a blob GET on every connection at \
             once could run out, and that would show as errors)"
        )
    } else {
        String::new()
    };

    // The images to pull, pushed while the server has no users (open), then the user:
    // from then on every request needs a token.
    let repo = pull_repo();
    let images: Vec<SmallImage> = (0..PULL_IMAGES)
        .map(|i| data::image(format!("v{i}"), 0x57E5_0000 + i as u64, PULL_LAYER))
        .collect();
    {
        let mut c = Conn::connect(s.port, 0).await?;
        for img in &images {
            push_image(&mut c, &repo, img, &img.tag).await?;
        }
    }
    add_user(env, s.root())?;
    let pull_bearer = format!(
        "Bearer {}",
        fetch_token(s.port, &format!("repository:{repo}:pull")).await?
    );
    let mut push_bearers = Vec::new();
    for r in 0..PUSH_REPOS {
        let scope = format!("repository:{}:pull,push", push_repo(r));
        push_bearers.push(Arc::new(format!(
            "Bearer {}",
            fetch_token(s.port, &scope).await?
        )));
    }
    let requests = pull_requests(s.port, &repo, &images, &pull_bearer);
    check_requests(s.port, &requests).await?;
    // Without the token, the same pull is refused: auth is on.
    let mut c = Conn::connect(s.port, 0).await?;
    let path = format!("/v2/{repo}/manifests/{}", images[0].tag);
    let anon = c.request("GET", &path, &[], &[]).await?;
    if anon.head.status != 401 {
        bail!(
            "GET {path} without a token answered {}, not 401",
            anon.head.status
        );
    }
    drop(c);
    // The server's own descriptors and sockets before the load.
    std::thread::sleep(Duration::from_millis(300));
    let idle_fds = count_fds(s.pid);
    let idle_sockets = count_sockets(s.pid);
    let idle_rss = status_kib(s.pid, "VmRSS") as f64 / 1024.0;

    let stop_sampling = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (pid, stop) = (s.pid, stop_sampling.clone());
        std::thread::spawn(move || sample(pid, stop))
    };

    // Pushers first (their connections count), then the pulling connections.
    let stop_pushing = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let pushers: Vec<_> = (0..PUSHERS)
        .map(|i| {
            let bearer = push_bearers[i % PUSH_REPOS].clone();
            let stop = stop_pushing.clone();
            tokio::spawn(pusher(s.port, i, push_repo(i), bearer, stop))
        })
        .collect();
    let pull = tokio::spawn(load::run(
        s.port,
        Arc::new(requests),
        false,
        PULL_CONNECTIONS,
        duration,
    ));
    let probes = probe_refusals(s.port, s.pid, idle_sockets + MAX_CONNECTIONS, || {
        pull.is_finished()
    })
    .await;
    let pulled = pull.await.context("the pull load panicked")?;
    stop_pushing.store(true, Ordering::Relaxed);
    let mut push = Tally::default();
    for p in pushers {
        match tokio::time::timeout(PUSH_GRACE, p).await {
            Ok(Ok(t)) => push.merge(t),
            Ok(Err(e)) => push.error("pusher task failed".into(), e.to_string()),
            Err(_) => push.error(
                "pusher still busy after the end".into(),
                format!("a push was unanswered {PUSH_GRACE:?} after the end"),
            ),
        }
    }
    let push_wall = t0.elapsed();
    let pulled = pulled.with_context(|| {
        format!(
            "opening {PULL_CONNECTIONS} connections to berth serve (the open-files limits \
             and the ephemeral port range were checked; see the server log in {})",
            env.run.display()
        )
    })?;
    stop_sampling.store(true, Ordering::Relaxed);
    let samples = sampler
        .join()
        .map_err(|_| anyhow::anyhow!("the sampler panicked"))?;
    // Served again once the load is gone, and what the pushers pushed is there.
    let after = serving_again(s.port, &pull_bearer, &repo, &images[0].tag).await;
    let verified = verify_pushes(s.port, &push_bearers, &mut push).await;

    let hwm_mib = status_kib(s.pid, "VmHWM") as f64 / 1024.0;
    let own_hwm_mib = status_kib(std::process::id(), "VmHWM") as f64 / 1024.0;
    let pull_errors: u64 = pulled.errors;
    let push_errors: u64 = push.errors.values().sum();
    let errors = pull_errors + push_errors + u64::from(after.is_err());
    let push_p50 = percentile_ms(&mut push.latencies_us, 0.50);
    let push_p99 = percentile_ms(&mut push.latencies_us, 0.99);
    let image_p99 = percentile_ms(&mut push.image_latencies_us, 0.99);
    let images_per_s = push.images as f64 / push_wall.as_secs_f64().max(1e-9);
    progress(&format!(
        "stress: pulls {} ok in {:.1} s = {} req/s, p50 {:.1} ms, p99 {:.1} ms; errors {pull_errors} {:?}",
        pulled.ok,
        pulled.elapsed.as_secs_f64(),
        fmt_num(pulled.rps()),
        pulled.p50_ms,
        pulled.p99_ms,
        pulled.errors_by_kind
    ));
    progress(&format!(
        "stress: pushes {} images ({} requests) in {:.1} s = {} images/s, request p50 {push_p50:.1} ms, p99 {push_p99:.1} ms, image p99 {image_p99:.1} ms; errors {push_errors} {:?}; {verified} pushed images read back",
        push.images,
        push.ok,
        push_wall.as_secs_f64(),
        fmt_num(images_per_s),
        push.errors
    ));
    progress(&format!(
        "stress: server peak RSS {hwm_mib:.1} MiB (idle {idle_rss:.1}), peak fds {} (idle {idle_fds}), peak threads {}; berth-bench peak RSS {own_hwm_mib:.0} MiB",
        samples.peak_fds, samples.peak_threads
    ));
    progress(&format!(
        "stress: {} of {} connections beyond the limit answered 503 ({}); after the load: {}",
        probes.refused,
        probes.tried,
        probes.detail,
        match &after {
            Ok(()) => "served again".to_string(),
            Err(e) => format!("{e:#}"),
        }
    ));

    table.add("stress_pull_rps", true, pulled.rps());
    table.add("stress_pull_p99_ms", true, pulled.p99_ms);
    table.add("stress_push_p99_ms", true, push_p99);
    table.add("stress_push_images_per_s", true, images_per_s);
    table.add(ROW_ERRORS, true, errors as f64);
    table.add("stress_peak_rss_mib", true, hwm_mib);
    table.add("stress_peak_fds", true, samples.peak_fds as f64);
    table.add("stress_refused_503", true, probes.refused as f64);
    table.add("stress_refused_503", false, probes.tried as f64);
    if let Err(e) = &after {
        table.error(ROW_ERRORS, "berth", format!("after the load: {e:#}"));
    }
    if probes.tried == 0 {
        table.error("stress_refused_503", "berth", probes.detail.clone());
    }
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    for (k, n) in &pulled.errors_by_kind {
        *kinds.entry(format!("pull {k}")).or_default() += n;
    }
    for (k, n) in &push.errors {
        *kinds.entry(format!("push {k}")).or_default() += n;
    }
    let kinds = if kinds.is_empty() {
        "none".to_string()
    } else {
        kinds
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    table.notes.push(format!(
        "stress: {PULL_CONNECTIONS} pulling keep-alive connections + {PUSHERS} pushers, \
         --max-connections {MAX_CONNECTIONS}, token auth (every request a bearer token), \
         {} s; pulls {} requests ok (p50 {:.1} ms, p99 {:.1} ms), pushes {} requests ok = {} \
         images (request p50 {push_p50:.1} ms, p99 {push_p99:.1} ms; whole image p99 \
         {image_p99:.1} ms), {verified} pushed images read back byte for byte; errors by \
         kind: {kinds}{}; server RSS idle {idle_rss:.1} MiB, {} MiB at a quarter of the \
         load, {} MiB at the end, VmHWM {hwm_mib:.1} MiB (bound {RSS_BOUND_MIB}); fds idle \
         {idle_fds}, peak {} (bound {FDS_BOUND}), peak threads {}; {} of {} connections \
         beyond the limit answered 503 \"{REFUSAL_TEXT}\" ({}); server open-files limit \
         {server_nofile}{short}; berth-bench's own peak RSS {own_hwm_mib:.0} MiB",
        duration.as_secs(),
        pulled.ok,
        pulled.p50_ms,
        pulled.p99_ms,
        push.ok,
        push.images,
        pulled
            .first_error
            .as_deref()
            .map(|e| format!(" (first pull error: {e})"))
            .unwrap_or_default(),
        fmt_num(samples.rss_at(0.25)),
        fmt_num(samples.rss_at(1.0)),
        samples.peak_fds,
        samples.peak_threads,
        probes.refused,
        probes.tried,
        probes.detail,
    ));
    Ok(())
}

/// The pull of each image as docker and containerd send it, with the token.
fn pull_requests(port: u16, repo: &str, images: &[SmallImage], bearer: &str) -> Vec<Vec<u8>> {
    let common = format!(
        "Host: 127.0.0.1:{port}\r\nUser-Agent: {USER_AGENT}\r\nAuthorization: {bearer}\r\n"
    );
    let mut out = Vec::new();
    for img in images {
        let digest = data::sha256_digest(&img.manifest);
        for line in [
            "GET /v2/ HTTP/1.1".to_string(),
            format!("HEAD /v2/{repo}/manifests/{} HTTP/1.1", img.tag),
            format!("GET /v2/{repo}/manifests/{digest} HTTP/1.1"),
            format!("GET /v2/{repo}/blobs/{} HTTP/1.1", img.config_digest),
            format!("GET /v2/{repo}/blobs/{} HTTP/1.1", img.layer_digest),
        ] {
            let accept = if line.contains("/manifests/") {
                format!("Accept: {MANIFEST_ACCEPT}\r\n")
            } else {
                String::new()
            };
            out.push(format!("{line}\r\n{common}{accept}\r\n").into_bytes());
        }
    }
    out
}

/// Sends every pull request once, untimed: each must answer 2xx.
async fn check_requests(port: u16, requests: &[Vec<u8>]) -> Result<()> {
    let mut c = Conn::connect(port, 0).await?;
    for req in requests {
        c.write_all(req).await?;
        let head = c.read_head().await?;
        if !req.starts_with(b"HEAD ") {
            c.read_body(&head, &mut |_: &[u8]| {}).await?;
        }
        if !head.ok() {
            let text = String::from_utf8_lossy(req);
            bail!(
                "{} answered HTTP {}",
                text.lines().next().unwrap_or(""),
                head.status
            );
        }
    }
    Ok(())
}

/// Outcomes of the requests of one or all pushers.
#[derive(Default)]
struct Tally {
    /// Requests answered as expected.
    ok: u64,
    images: u64,
    /// Failed requests by kind, and an example of each.
    errors: BTreeMap<String, u64>,
    examples: BTreeMap<String, String>,
    latencies_us: Vec<u32>,
    image_latencies_us: Vec<u32>,
    /// The last image each pusher pushed: (pusher, image).
    last: Vec<(usize, SmallImage)>,
}

impl Tally {
    fn error(&mut self, kind: String, example: String) {
        *self.errors.entry(kind.clone()).or_default() += 1;
        self.examples.entry(kind).or_insert(example);
    }

    fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        self.images += other.images;
        for (k, n) in other.errors {
            *self.errors.entry(k).or_default() += n;
        }
        for (k, e) in other.examples {
            self.examples.entry(k).or_insert(e);
        }
        self.latencies_us.extend(other.latencies_us);
        self.image_latencies_us.extend(other.image_latencies_us);
        self.last.extend(other.last);
    }

    /// One timed request; true when it answered `want`.
    async fn request(
        &mut self,
        conn: &mut Conn,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        want: u16,
    ) -> bool {
        let t0 = Instant::now();
        let r = conn.request(method, path, headers, body).await;
        self.latencies_us.push(micros(t0));
        match r {
            Ok(resp) if resp.head.status == want => {
                self.ok += 1;
                true
            }
            Ok(resp) => {
                let body =
                    String::from_utf8_lossy(&resp.body[..resp.body.len().min(200)]).into_owned();
                self.error(
                    format!("HTTP {}", resp.head.status),
                    format!("{method} {path}: {}", body.trim()),
                );
                false
            }
            Err(e) => {
                self.error(transport_kind(&e), format!("{method} {path}: {e:#}"));
                if conn.reconnect().await.is_err() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                false
            }
        }
    }
}

fn micros(t0: Instant) -> u32 {
    t0.elapsed().as_micros().min(u32::MAX as u128) as u32
}

/// Pushes fresh images to `repo` until `stop`: both blobs monolithic, then the
/// manifest by tag.
async fn pusher(
    port: u16,
    id: usize,
    repo: String,
    bearer: Arc<String>,
    stop: Arc<AtomicBool>,
) -> Tally {
    let mut t = Tally::default();
    let mut conn = match Conn::connect(port, 0).await {
        Ok(c) => c,
        Err(e) => {
            t.error(transport_kind(&e), format!("pusher {id}: {e:#}"));
            return t;
        }
    };
    let mut rng = data::XorShift::new(0x9054_0000 + id as u64);
    let mut last = None;
    for n in 0..MAX_PUSHES_PER_PUSHER {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let size = 1024 + (rng.next_u64() as usize) % (PUSH_LAYER_MAX - 1024);
        let img = data::image(format!("p{id}-{n}"), rng.next_u64(), size);
        let auth = ("Authorization", bearer.as_str());
        let octets = ("Content-Type", "application/octet-stream");
        let t0 = Instant::now();
        let mut ok = true;
        for (digest, bytes) in [
            (&img.layer_digest, &img.layer),
            (&img.config_digest, &img.config),
        ] {
            let path = format!("/v2/{repo}/blobs/uploads/?digest={digest}");
            ok = ok
                && t.request(&mut conn, "POST", &path, &[auth, octets], bytes, 201)
                    .await;
        }
        let path = format!("/v2/{repo}/manifests/{}", img.tag);
        let ct = ("Content-Type", data::OCI_MANIFEST);
        ok = ok
            && t.request(&mut conn, "PUT", &path, &[auth, ct], &img.manifest, 201)
                .await;
        if ok {
            t.images += 1;
            t.image_latencies_us.push(micros(t0));
            last = Some(img);
        }
    }
    if let Some(img) = last {
        t.last.push((id, img));
    }
    t
}

/// Reads back the last image of every pusher (manifest by tag, layer): each must be
/// byte for byte what was pushed. Mismatches count as errors; returns the matches.
async fn verify_pushes(port: u16, bearers: &[Arc<String>], t: &mut Tally) -> usize {
    let mut c = match Conn::connect(port, 0).await {
        Ok(c) => c,
        Err(e) => {
            t.error(transport_kind(&e), format!("verifying pushes: {e:#}"));
            return 0;
        }
    };
    let last = std::mem::take(&mut t.last);
    let mut good = 0;
    for (id, img) in &last {
        let repo = push_repo(*id);
        let auth = [
            ("Authorization", bearers[id % PUSH_REPOS].as_str()),
            ("Accept", MANIFEST_ACCEPT),
        ];
        let mut whole = true;
        for (path, want) in [
            (
                format!("/v2/{repo}/manifests/{}", img.tag),
                img.manifest.as_slice(),
            ),
            (
                format!("/v2/{repo}/blobs/{}", img.layer_digest),
                img.layer.as_slice(),
            ),
        ] {
            match c.request("GET", &path, &auth, &[]).await {
                Ok(r) if r.head.status == 200 && r.body == want => {}
                Ok(r) => {
                    whole = false;
                    t.error(
                        "read back differs".into(),
                        format!("GET {path}: HTTP {}, {} bytes", r.head.status, r.body.len()),
                    );
                }
                Err(e) => {
                    whole = false;
                    t.error(transport_kind(&e), format!("GET {path}: {e:#}"));
                    let _ = c.reconnect().await;
                }
            }
        }
        good += usize::from(whole);
    }
    t.last = last;
    good
}

/// The refusal check's result.
struct Probes {
    tried: usize,
    refused: usize,
    detail: String,
}

/// Waits until the server holds `sockets` sockets (every connection of the load is
/// open, every slot taken), then opens [`REFUSAL_PROBES`] more connections, one at a
/// time: each must be answered 503 with berth's refusal text and closed. Gives up
/// when the load `ended` before that.
async fn probe_refusals(port: u16, pid: u32, sockets: usize, ended: impl Fn() -> bool) -> Probes {
    let t0 = Instant::now();
    loop {
        let n = tokio::task::spawn_blocking(move || count_sockets(pid))
            .await
            .unwrap_or(0);
        if n >= sockets {
            break;
        }
        if t0.elapsed() > CONNECT_WAIT || ended() {
            return Probes {
                tried: 0,
                refused: 0,
                detail: format!(
                    "the server held {n} sockets after {:.1} s, never the {sockets} of a \
                     full load: refusal not checked",
                    t0.elapsed().as_secs_f64()
                ),
            };
        }
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
    let mut p = Probes {
        tried: 0,
        refused: 0,
        detail: String::new(),
    };
    let mut other = BTreeMap::<String, u64>::new();
    for _ in 0..REFUSAL_PROBES {
        p.tried += 1;
        let got = async {
            let mut c = Conn::connect(port, 0).await?;
            c.request("GET", "/v2/", &[], &[]).await
        }
        .await;
        match got {
            Ok(r)
                if r.head.status == 503
                    && r.head.close
                    && String::from_utf8_lossy(&r.body).contains(REFUSAL_TEXT) =>
            {
                p.refused += 1
            }
            Ok(r) => *other.entry(format!("HTTP {}", r.head.status)).or_default() += 1,
            Err(e) => *other.entry(transport_kind(&e)).or_default() += 1,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    p.detail = format!(
        "tried {:.1} s after the start, when the server held {sockets} sockets",
        t0.elapsed().as_secs_f64()
    );
    if !other.is_empty() {
        p.detail.push_str(&format!("; other answers: {other:?}"));
    }
    p
}

/// After the load: a pull request with the token is answered 200 again within 10 s
/// (the load's connections are closing, their slots coming back).
async fn serving_again(port: u16, bearer: &str, repo: &str, tag: &str) -> Result<()> {
    let path = format!("/v2/{repo}/manifests/{tag}");
    let headers = [("Authorization", bearer), ("Accept", MANIFEST_ACCEPT)];
    let t0 = Instant::now();
    let mut last = String::new();
    while t0.elapsed() < Duration::from_secs(10) {
        let got = async {
            let mut c = Conn::connect(port, 0).await?;
            c.request("GET", &path, &headers, &[]).await
        }
        .await;
        match got {
            Ok(r) if r.head.status == 200 => return Ok(()),
            Ok(r) => last = format!("HTTP {}", r.head.status),
            Err(e) => last = format!("{e:#}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("GET {path} not answered 200 within 10 s after the load: {last}")
}

/// What the sampler saw of the server.
struct Samples {
    peak_fds: usize,
    peak_threads: usize,
    /// (seconds since the first sample, VmRSS MiB).
    rss: Vec<(f64, f64)>,
}

impl Samples {
    /// VmRSS at fraction `f` of the sampled time.
    fn rss_at(&self, f: f64) -> f64 {
        let end = self.rss.last().map_or(0.0, |r| r.0);
        self.rss
            .iter()
            .find(|r| r.0 >= end * f)
            .map_or(0.0, |r| r.1)
    }
}

/// Samples the server's open descriptors, threads and RSS every 100 ms until `stop`.
fn sample(pid: u32, stop: Arc<AtomicBool>) -> Samples {
    let t0 = Instant::now();
    let mut s = Samples {
        peak_fds: 0,
        peak_threads: 0,
        rss: Vec::new(),
    };
    while !stop.load(Ordering::Relaxed) {
        s.peak_fds = s.peak_fds.max(count_fds(pid));
        s.peak_threads = s.peak_threads.max(status_kib(pid, "Threads") as usize);
        s.rss.push((
            t0.elapsed().as_secs_f64(),
            status_kib(pid, "VmRSS") as f64 / 1024.0,
        ));
        std::thread::sleep(SAMPLE_EVERY);
    }
    s
}

fn count_fds(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn count_sockets(pid: u32) -> usize {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    dir.flatten()
        .filter(|e| {
            fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy().starts_with("socket:"))
        })
        .count()
}

/// The soft open-files limit of process `pid`.
fn open_files_limit(pid: u32) -> Result<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/limits"))
        .with_context(|| format!("reading /proc/{pid}/limits"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .or_else(|| text.contains("Max open files").then_some(u64::MAX))
        .context("no open-files limit in /proc/PID/limits")
}

/// This process's soft RLIMIT_NOFILE raised to its hard limit for the phase (the
/// server, started after, inherits it), put back when dropped.
struct NofileLimit {
    old: libc::rlimit,
}

impl NofileLimit {
    /// Fails, naming what to raise, when the hard limit is below `need`.
    fn raise(need: u64) -> Result<NofileLimit> {
        let mut old = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes the struct it is given.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut old) } != 0 {
            bail!(
                "getrlimit(RLIMIT_NOFILE): {}",
                std::io::Error::last_os_error()
            );
        }
        if old.rlim_max < need {
            bail!(
                "the stress phase opens {PULL_CONNECTIONS} + {PUSHERS} connections and needs \
                 {need} open files, but the hard limit is {}: raise it (as root `ulimit -Hn \
                 {FDS_BOUND}`, LimitNOFILE= of a systemd unit, or `nofile` in \
                 /etc/security/limits.conf) and run again",
                old.rlim_max
            );
        }
        let raised = libc::rlimit {
            rlim_cur: old.rlim_max,
            rlim_max: old.rlim_max,
        };
        // SAFETY: setrlimit reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            bail!(
                "raising the open-files limit to {}: {}",
                old.rlim_max,
                std::io::Error::last_os_error()
            );
        }
        Ok(NofileLimit { old })
    }
}

impl Drop for NofileLimit {
    fn drop(&mut self) {
        // SAFETY: setrlimit reads the struct it is given.
        unsafe {
            libc::setrlimit(libc::RLIMIT_NOFILE, &self.old);
        }
    }
}

/// Fails, naming the sysctl, when fewer than `need` ephemeral ports exist.
fn check_ports(need: u64) -> Result<()> {
    let path = "/proc/sys/net/ipv4/ip_local_port_range";
    let Ok(text) = fs::read_to_string(path) else {
        return Ok(());
    };
    let v: Vec<u64> = text
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    if let [lo, hi] = v[..] {
        let have = hi.saturating_sub(lo) + 1;
        if have < need {
            bail!(
                "the stress phase needs {need} local ports to 127.0.0.1, the ephemeral range \
                 {lo}-{hi} has {have}: widen it (sysctl net.ipv4.ip_local_port_range)"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_requests_follow_a_client_pull() {
        let imgs = vec![data::image("v0".into(), 1, 100)];
        let reqs = pull_requests(5000, "bench/stress-pull", &imgs, "Bearer t");
        let lines: Vec<String> = reqs
            .iter()
            .map(|r| {
                String::from_utf8_lossy(r)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .collect();
        let digest = data::sha256_digest(&imgs[0].manifest);
        assert_eq!(
            lines,
            [
                "GET /v2/ HTTP/1.1".to_string(),
                "HEAD /v2/bench/stress-pull/manifests/v0 HTTP/1.1".into(),
                format!("GET /v2/bench/stress-pull/manifests/{digest} HTTP/1.1"),
                format!(
                    "GET /v2/bench/stress-pull/blobs/{} HTTP/1.1",
                    imgs[0].config_digest
                ),
                format!(
                    "GET /v2/bench/stress-pull/blobs/{} HTTP/1.1",
                    imgs[0].layer_digest
                ),
            ]
        );
        for r in &reqs {
            let text = String::from_utf8_lossy(r);
            assert!(text.contains("\r\nAuthorization: Bearer t\r\n"), "{text}");
            assert!(text.ends_with("\r\n\r\n"));
        }
    }

    #[test]
    fn limits_are_read_and_checked() {
        let me = std::process::id();
        assert!(open_files_limit(me).unwrap() > 0);
        assert!(count_fds(me) > 0);
        let e = NofileLimit::raise(u64::MAX).err().unwrap().to_string();
        assert!(e.contains("hard limit"), "{e}");
        assert!(check_ports(u64::MAX).is_err());
        assert!(check_ports(1).is_ok());
    }

    #[test]
    fn rss_at_a_fraction_of_the_run() {
        let s = Samples {
            peak_fds: 0,
            peak_threads: 0,
            rss: vec![(0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (4.0, 4.0)],
        };
        assert_eq!(s.rss_at(0.25), 2.0);
        assert_eq!(s.rss_at(1.0), 4.0);
        assert_eq!(s.rss_at(0.0), 1.0);
    }
}
