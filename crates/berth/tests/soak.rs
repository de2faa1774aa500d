//! Soak: `berth serve` under everything clients do to it, in a loop, for
//! `BERTH_SOAK_SECONDS` (60 by default; `scripts/long-tests soak` runs 1800), with
//! the online collector running every 5 s meanwhile. Four client threads, each on its
//! own keep-alive connection and repository:
//! - push images of 1–3 layers of random content, 0 bytes to 4 MiB, each blob
//!   monolithic (`POST ?digest=`), chunked (`PATCH`es, then `PUT`, sometimes with the
//!   last chunk in it) or in one `PUT`; the manifest by tag;
//! - pull one back: the manifest by tag and by digest, and every blob, each byte
//!   compared with what was pushed (and length and `Docker-Content-Digest`), sometimes
//!   a byte range too;
//! - retag (the same manifest `PUT` under a new tag), delete a tag, delete a manifest
//!   (then its digest and every tag it had are 404), list the tags page by page (they
//!   must be exactly the live ones).
//!
//! At the end every image that should exist is pulled whole again, every deleted
//! manifest and tag is 404, the server's open descriptors are back where they were,
//! `berth registry fsck` is clean on the stopped server, and after a restart every
//! live image is served whole once more. The test prints the operations done and the
//! bytes verified. `BERTH_SOAK_SEED` replays a run's choices (thread timing varies).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::process::{Resp, Serve};
use common::rng::{Blob, Rng};
use common::{admin, free_port, sha256};

const WORKERS: usize = 4;
/// Live images per worker above which it deletes more than it pushes.
const MAX_LIVE: usize = 24;
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// A keep-alive connection idle this long is replaced before use (the server closes
/// idle ones after its 30 s header timeout).
const MAX_IDLE: Duration = Duration::from_secs(20);
/// Upper bound on one response body (the largest blob is 4 MiB).
const MAX_BODY: usize = 16 << 20;

/// A blob size: mostly small, some large, now and then empty.
fn blob_size(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..=2 => 0,
        3..=29 => 1 + rng.below(4096) as usize,
        30..=69 => 4096 + rng.below(60 * 1024) as usize,
        70..=94 => 64 * 1024 + rng.below(960 * 1024) as usize,
        _ => (1 << 20) + rng.below(3 << 20) as usize,
    }
}

#[derive(Clone)]
struct Image {
    digest: String,
    manifest: Vec<u8>,
    /// Config first, then the layers.
    blobs: Vec<Blob>,
    tags: BTreeSet<String>,
}

/// One HTTP/1.1 keep-alive connection, raw (no client library between the test and
/// the wire).
struct Client {
    addr: String,
    conn: Option<(BufReader<TcpStream>, Instant)>,
}

impl Client {
    fn new(addr: &str) -> Client {
        Client {
            addr: addr.to_string(),
            conn: None,
        }
    }

    fn request(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        self.try_request(method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    fn try_request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Resp> {
        if self
            .conn
            .as_ref()
            .is_some_and(|(_, used)| used.elapsed() > MAX_IDLE)
        {
            self.conn = None;
        }
        let mut reader = match self.conn.take() {
            Some((r, _)) => r,
            None => {
                let s = TcpStream::connect(&self.addr)?;
                s.set_read_timeout(Some(Duration::from_secs(120)))?;
                s.set_nodelay(true)?;
                BufReader::new(s)
            }
        };
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        reader.get_mut().write_all(&bytes)?;
        let (resp, keep) = read_response(&mut reader, method == "HEAD")?;
        if keep {
            self.conn = Some((reader, Instant::now()));
        }
        Ok(resp)
    }
}

fn bad(what: String) -> std::io::Error {
    std::io::Error::other(what)
}

/// Reads one response; also whether the connection stays open.
fn read_response(r: &mut BufReader<TcpStream>, head_only: bool) -> std::io::Result<(Resp, bool)> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(bad(format!("connection closed in the head: {head:?}")));
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
        if head.len() > 64 * 1024 {
            return Err(bad("response head too large".into()));
        }
    }
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line in {head:?}")))?;
    let mut resp = Resp {
        status,
        headers: head,
        body: Vec::new(),
    };
    let close = resp
        .header("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("close"));
    if head_only || status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok((resp, !close));
    }
    if resp
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        loop {
            let mut line = String::new();
            r.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| bad(format!("bad chunk size {line:?}")))?;
            if size == 0 {
                // Trailers, up to the blank line.
                loop {
                    line.clear();
                    if r.read_line(&mut line)? == 0 || line == "\r\n" {
                        break;
                    }
                }
                break;
            }
            if resp.body.len() + size > MAX_BODY {
                return Err(bad("response body too large".into()));
            }
            let at = resp.body.len();
            resp.body.resize(at + size, 0);
            r.read_exact(&mut resp.body[at..])?;
            let mut crlf = [0u8; 2];
            r.read_exact(&mut crlf)?;
        }
        return Ok((resp, !close));
    }
    match resp.header("content-length") {
        Some(v) => {
            let n: usize = v
                .parse()
                .map_err(|_| bad(format!("bad Content-Length {v:?}")))?;
            if n > MAX_BODY {
                return Err(bad(format!("Content-Length {n} too large")));
            }
            resp.body.resize(n, 0);
            r.read_exact(&mut resp.body)?;
            Ok((resp, !close))
        }
        None => {
            r.take(MAX_BODY as u64).read_to_end(&mut resp.body)?;
            Ok((resp, false))
        }
    }
}

/// What the workers did.
#[derive(Default, Debug, Clone)]
struct Stats {
    ops: BTreeMap<&'static str, u64>,
    bytes_verified: u64,
}

impl Stats {
    fn op(&mut self, what: &'static str) {
        *self.ops.entry(what).or_default() += 1;
    }

    fn add(&mut self, other: &Stats) {
        for (k, n) in &other.ops {
            *self.ops.entry(k).or_default() += n;
        }
        self.bytes_verified += other.bytes_verified;
    }

    fn total(&self) -> u64 {
        self.ops.values().sum()
    }
}

/// One client thread's repository and what it holds.
struct Worker {
    repo: String,
    rng: Rng,
    client: Client,
    next_tag: u64,
    /// Images with at least one tag.
    live: Vec<Image>,
    /// Images whose every tag was deleted: the collector may remove them any time.
    untagged: Vec<Image>,
    /// Manifests deleted by digest, with the tags they had.
    deleted: Vec<Image>,
    /// Tags deleted one by one.
    gone_tags: Vec<String>,
    stats: Stats,
}

impl Worker {
    fn new(id: usize, addr: &str, seed: u64) -> Worker {
        Worker {
            repo: format!("soak/w{id}"),
            rng: Rng(seed),
            client: Client::new(addr),
            next_tag: 0,
            live: Vec::new(),
            untagged: Vec::new(),
            deleted: Vec::new(),
            gone_tags: Vec::new(),
            stats: Stats::default(),
        }
    }

    fn tag(&mut self) -> String {
        self.next_tag += 1;
        format!("t{}", self.next_tag)
    }

    fn step(&mut self) {
        let n = self.live.len();
        let roll = self.rng.below(100);
        if n < 3 || (n < MAX_LIVE && roll < 30) {
            self.push();
        } else if roll < 55 || (n >= MAX_LIVE && roll < 30) {
            self.pull();
        } else if roll < 65 {
            self.retag();
        } else if roll < 77 {
            self.delete_tag();
        } else if roll < 90 {
            self.delete_manifest();
        } else {
            self.list_tags();
        }
    }

    fn upload(&mut self, blob: &Blob) {
        let bytes = blob.bytes();
        let (repo, d) = (self.repo.clone(), blob.digest.clone());
        let octets = ("Content-Type", "application/octet-stream");
        let how = self.rng.below(4);
        if how == 0 {
            let r = self.client.request(
                "POST",
                &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
                &[octets],
                &bytes,
            );
            assert_eq!(r.status, 201, "monolithic upload of {d}: {}", text(&r));
            self.stats.op("blob upload (monolithic)");
            return;
        }
        let r = self
            .client
            .request("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], b"");
        assert_eq!(r.status, 202, "starting an upload: {}", text(&r));
        let mut session = r.header("location").expect("upload Location");
        let mut sent = 0usize;
        // how 1: chunks, then an empty PUT; 2: chunks, the last third in the PUT;
        // 3: everything in the PUT.
        let patched = match how {
            1 => bytes.len(),
            2 => bytes.len() - bytes.len() / 3,
            _ => 0,
        };
        let chunks = 1 + self.rng.below(4) as usize;
        let step = patched.div_ceil(chunks).max(1);
        while sent < patched {
            let end = (sent + step).min(patched);
            let r = self.client.request(
                "PATCH",
                &session,
                &[octets, ("Content-Range", &format!("{sent}-{}", end - 1))],
                &bytes[sent..end],
            );
            assert_eq!(r.status, 202, "PATCH {sent}-{end} of {d}: {}", text(&r));
            assert_eq!(
                r.header("range").as_deref(),
                Some(format!("0-{}", end - 1).as_str()),
                "Range after a PATCH of {d}"
            );
            session = r.header("location").expect("PATCH Location");
            sent = end;
        }
        if sent > 0 && self.rng.below(4) == 0 {
            let r = self.client.request("GET", &session, &[], b"");
            assert_eq!(r.status, 204, "upload status of {d}: {}", text(&r));
            assert_eq!(
                r.header("range").as_deref(),
                Some(format!("0-{}", sent - 1).as_str())
            );
            self.stats.op("upload status");
        }
        let sep = if session.contains('?') { '&' } else { '?' };
        let r = self.client.request(
            "PUT",
            &format!("{session}{sep}digest={d}"),
            &[octets],
            &bytes[sent..],
        );
        assert_eq!(r.status, 201, "finishing the upload of {d}: {}", text(&r));
        assert_eq!(
            r.header("docker-content-digest").as_deref(),
            Some(d.as_str())
        );
        self.stats.op(match how {
            1 => "blob upload (chunked)",
            2 => "blob upload (chunked, last in PUT)",
            _ => "blob upload (POST + PUT)",
        });
    }

    fn push(&mut self) {
        let layers = 1 + self.rng.below(3) as usize;
        let mut blobs = Vec::new();
        // The config: small, and unique to this image.
        let config = Blob {
            seed: self.rng.next() | 1,
            size: 100 + self.rng.below(400) as usize,
            digest: String::new(),
        };
        for i in 0..=layers {
            let mut b = if i == 0 {
                config.clone()
            } else {
                Blob {
                    seed: self.rng.next() | 1,
                    size: blob_size(&mut self.rng),
                    digest: String::new(),
                }
            };
            b.digest = sha256(&b.bytes());
            self.upload(&b);
            blobs.push(b);
        }
        let layer_json: Vec<String> = blobs[1..]
            .iter()
            .map(|b| {
                format!(
                    r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}"#,
                    b.digest, b.size
                )
            })
            .collect();
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{}]}}"#,
            blobs[0].digest,
            blobs[0].size,
            layer_json.join(",")
        )
        .into_bytes();
        let digest = sha256(&manifest);
        let tag = self.tag();
        let r = self.put_manifest(&tag, &manifest);
        assert_eq!(
            r.header("docker-content-digest").as_deref(),
            Some(digest.as_str())
        );
        self.stats.op("push");
        self.live.push(Image {
            digest,
            manifest,
            blobs,
            tags: BTreeSet::from([tag]),
        });
    }

    fn put_manifest(&mut self, reference: &str, manifest: &[u8]) -> Resp {
        let repo = self.repo.clone();
        let r = self.client.request(
            "PUT",
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Content-Type", OCI_MANIFEST)],
            manifest,
        );
        assert_eq!(r.status, 201, "PUT {repo}:{reference}: {}", text(&r));
        r
    }

    fn pick(&mut self) -> usize {
        self.rng.below(self.live.len() as u64) as usize
    }

    fn pull(&mut self) {
        let i = self.pick();
        let img = self.live[i].clone();
        let tags: Vec<&String> = img.tags.iter().collect();
        let tag = tags[self.rng.below(tags.len() as u64) as usize].clone();
        let n = pull_whole(&mut self.client, &self.repo, &img, &tag, &mut self.rng);
        self.stats.bytes_verified += n;
        self.stats.op("pull");
    }

    fn retag(&mut self) {
        let i = self.pick();
        let tag = self.tag();
        let manifest = self.live[i].manifest.clone();
        let r = self.put_manifest(&tag, &manifest);
        assert_eq!(
            r.header("docker-content-digest").as_deref(),
            Some(self.live[i].digest.as_str())
        );
        self.live[i].tags.insert(tag);
        self.stats.op("retag");
    }

    fn delete_tag(&mut self) {
        let i = self.pick();
        let tags: Vec<String> = self.live[i].tags.iter().cloned().collect();
        let tag = tags[self.rng.below(tags.len() as u64) as usize].clone();
        let path = format!("/v2/{}/manifests/{tag}", self.repo);
        let r = self.client.request("DELETE", &path, &[], b"");
        assert_eq!(r.status, 202, "DELETE {path}: {}", text(&r));
        let r = self
            .client
            .request("GET", &path, &[("Accept", OCI_MANIFEST)], b"");
        assert_eq!(r.status, 404, "GET {path} after its deletion");
        self.live[i].tags.remove(&tag);
        self.gone_tags.push(tag);
        if self.live[i].tags.is_empty() {
            let img = self.live.swap_remove(i);
            self.untagged.push(img);
        }
        self.stats.op("delete tag");
    }

    fn delete_manifest(&mut self) {
        let i = self.pick();
        let img = self.live.swap_remove(i);
        let path = format!("/v2/{}/manifests/{}", self.repo, img.digest);
        let r = self.client.request("DELETE", &path, &[], b"");
        assert_eq!(r.status, 202, "DELETE {path}: {}", text(&r));
        expect_gone(&mut self.client, &self.repo, &img);
        self.deleted.push(img);
        self.stats.op("delete manifest");
    }

    fn live_tags(&self) -> BTreeSet<String> {
        self.live
            .iter()
            .flat_map(|i| i.tags.iter().cloned())
            .collect()
    }

    fn list_tags(&mut self) {
        let page = 1 + self.rng.below(8);
        let got = list_tags(&mut self.client, &self.repo, page);
        assert_eq!(got, self.live_tags(), "tags of {}", self.repo);
        self.stats.op("list tags");
    }
}

fn text(r: &Resp) -> String {
    String::from_utf8_lossy(&r.body[..r.body.len().min(300)]).into_owned()
}

/// Pulls `img` by `tag` and by digest, every blob, comparing every byte; returns the
/// bytes compared.
fn pull_whole(c: &mut Client, repo: &str, img: &Image, tag: &str, rng: &mut Rng) -> u64 {
    let mut verified = 0u64;
    let accept = ("Accept", OCI_MANIFEST);
    for reference in [tag, img.digest.as_str()] {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let r = c.request("GET", &path, &[accept], b"");
        assert_eq!(r.status, 200, "GET {path}: {}", text(&r));
        assert!(r.body == img.manifest, "GET {path}: a different manifest");
        assert_eq!(
            r.header("docker-content-digest").as_deref(),
            Some(img.digest.as_str()),
            "GET {path}"
        );
        verified += r.body.len() as u64;
    }
    let path = format!("/v2/{repo}/manifests/{tag}");
    let r = c.request("HEAD", &path, &[accept], b"");
    assert_eq!(r.status, 200, "HEAD {path}");
    assert_eq!(
        r.header("content-length"),
        Some(img.manifest.len().to_string())
    );
    for b in &img.blobs {
        let path = format!("/v2/{repo}/blobs/{}", b.digest);
        let r = c.request("GET", &path, &[], b"");
        assert_eq!(r.status, 200, "GET {path}: {}", text(&r));
        assert_eq!(
            r.header("content-length"),
            Some(b.size.to_string()),
            "GET {path}"
        );
        assert_eq!(
            r.header("docker-content-digest").as_deref(),
            Some(b.digest.as_str()),
            "GET {path}"
        );
        assert_eq!(r.body.len(), b.size, "GET {path}: length");
        assert!(r.body == b.bytes(), "GET {path}: the bytes differ");
        verified += r.body.len() as u64;
        if b.size > 1 && rng.below(5) == 0 {
            let from = rng.below(b.size as u64) as usize;
            let to = from + rng.below((b.size - from) as u64) as usize;
            let r = c.request(
                "GET",
                &path,
                &[("Range", &format!("bytes={from}-{to}"))],
                b"",
            );
            assert_eq!(r.status, 206, "GET {path} bytes={from}-{to}");
            assert!(
                r.body == b.bytes()[from..=to],
                "GET {path} bytes={from}-{to}: the bytes differ"
            );
            verified += r.body.len() as u64;
        }
    }
    verified
}

/// A manifest deleted by digest: the digest and every tag it had answer 404.
fn expect_gone(c: &mut Client, repo: &str, img: &Image) {
    let accept = ("Accept", OCI_MANIFEST);
    for reference in std::iter::once(&img.digest).chain(&img.tags) {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let r = c.request("GET", &path, &[accept], b"");
        assert_eq!(r.status, 404, "GET {path} after the manifest's deletion");
    }
}

/// Every tag of `repo`, `page` at a time, following `Link`.
fn list_tags(c: &mut Client, repo: &str, page: u64) -> BTreeSet<String> {
    let mut path = format!("/v2/{repo}/tags/list?n={page}");
    let mut tags = BTreeSet::new();
    for _ in 0..100_000 {
        let r = c.request("GET", &path, &[], b"");
        assert_eq!(r.status, 200, "GET {path}: {}", text(&r));
        let doc: serde_json::Value = serde_json::from_slice(&r.body).expect("tags JSON");
        for t in doc["tags"].as_array().into_iter().flatten() {
            let t = t.as_str().expect("a tag string").to_string();
            assert!(tags.insert(t.clone()), "tag {t} listed twice");
        }
        match r.header("link") {
            Some(link) => {
                let start = link.find('<').expect("Link <") + 1;
                let end = link.find('>').expect("Link >");
                path = link[start..end].to_string();
            }
            None => return tags,
        }
    }
    panic!("tags of {repo}: no end to the pages")
}

/// Open descriptors and VmRSS (KiB) of `pid`.
fn usage(pid: u32) -> (usize, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    let rss = common::process::status_kib(pid, "VmRSS").unwrap_or(0);
    (fds, rss)
}

fn soak_seconds() -> u64 {
    std::env::var("BERTH_SOAK_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
}

fn seed() -> u64 {
    let seed = std::env::var("BERTH_SOAK_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    eprintln!("soak: BERTH_SOAK_SEED={seed}");
    seed
}

fn start(root: &Path, addr: &str) -> Serve {
    let s = Serve::start(
        root,
        &["--listen", addr, "--gc-interval", "5s", "--gc-grace", "30s"],
        &[],
    )
    .at(addr);
    s.wait_ready();
    s
}

fn fsck(root: &Path) {
    let out = admin(&["fsck", "--root", root.to_str().unwrap()], "");
    assert!(
        out.status.success(),
        "berth registry fsck after the soak:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn soak_push_pull_retag_delete() {
    let seconds = soak_seconds();
    let mut rng = Rng(seed());
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("registry");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut s = start(&root, &addr);
    let pid = s.child.id();
    let (fds0, rss0) = usage(pid);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let failed = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..WORKERS)
        .map(|id| {
            let mut w = Worker::new(id, &addr, rng.next() | 1);
            let failed = failed.clone();
            std::thread::spawn(move || {
                // A panic in one worker stops the others early.
                struct Flag(Arc<AtomicBool>);
                impl Drop for Flag {
                    fn drop(&mut self) {
                        if std::thread::panicking() {
                            self.0.store(true, Ordering::Relaxed);
                        }
                    }
                }
                let _flag = Flag(failed.clone());
                while Instant::now() < deadline && !failed.load(Ordering::Relaxed) {
                    w.step();
                }
                w
            })
        })
        .collect();
    let mut workers = Vec::new();
    let mut panic = None;
    for h in handles {
        match h.join() {
            Ok(w) => workers.push(w),
            Err(p) => panic = panic.or(Some(p)),
        }
    }
    if let Some(p) = panic {
        std::panic::resume_unwind(p);
    }
    let loop_secs = started.elapsed().as_secs_f64();
    let (fds1, rss1) = usage(pid);

    // Everything, once more, on a fresh connection.
    let mut c = Client::new(&addr);
    let mut end = Stats::default();
    let mut check_rng = Rng(rng.next() | 1);
    for w in &workers {
        for img in &w.live {
            for tag in &img.tags {
                end.bytes_verified += pull_whole(&mut c, &w.repo, img, tag, &mut check_rng);
            }
            end.op("final pull");
        }
        for img in &w.deleted {
            expect_gone(&mut c, &w.repo, img);
            end.op("final deleted check");
        }
        for img in &w.untagged {
            // The collector may have removed it (untagged, past the grace) or not yet.
            let path = format!("/v2/{}/manifests/{}", w.repo, img.digest);
            let r = c.request("GET", &path, &[("Accept", OCI_MANIFEST)], b"");
            assert!(
                r.status == 404 || (r.status == 200 && r.body == img.manifest),
                "GET {path} of an untagged manifest: {}",
                r.status
            );
            end.op(if r.status == 404 {
                "final untagged check (collected)"
            } else {
                "final untagged check (still there)"
            });
        }
        for tag in &w.gone_tags {
            let path = format!("/v2/{}/manifests/{tag}", w.repo);
            let r = c.request("GET", &path, &[("Accept", OCI_MANIFEST)], b"");
            assert_eq!(r.status, 404, "GET {path} of a deleted tag");
            end.op("final deleted tag check");
        }
        assert_eq!(list_tags(&mut c, &w.repo, 1000), w.live_tags());
    }
    drop(c);
    // The workers' connections are closed: the server holds no more than at the start.
    let mut fds2 = usage(pid).0;
    for _ in 0..50 {
        if fds2 <= fds0 + 16 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        fds2 = usage(pid).0;
    }
    assert!(
        fds2 <= fds0 + 16,
        "berth serve holds {fds2} descriptors after the soak, {fds0} at the start"
    );

    // Stopped cleanly, the storage is consistent, and a restart serves it all.
    s.signal("-TERM");
    let status = s.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "berth serve exited with {status}");
    drop(s);
    fsck(&root);
    let s = start(&root, &addr);
    let mut c = Client::new(&addr);
    for w in &workers {
        for img in &w.live {
            let tag = img.tags.iter().next().expect("a live image has a tag");
            end.bytes_verified += pull_whole(&mut c, &w.repo, img, tag, &mut check_rng);
            end.op("pull after restart");
        }
    }
    drop(s);

    let mut total = Stats::default();
    for w in &workers {
        total.add(&w.stats);
    }
    let live: usize = workers.iter().map(|w| w.live.len()).sum();
    let deleted: usize = workers.iter().map(|w| w.deleted.len()).sum();
    let untagged: usize = workers.iter().map(|w| w.untagged.len()).sum();
    eprintln!(
        "soak: {loop_secs:.0} s, {WORKERS} workers: {} operations {:?}; {} bytes ({:.1} MiB) \
         compared byte for byte in the loop; at the end {live} live images, {deleted} deleted, \
         {untagged} untagged checked ({} operations {:?}, {} more bytes); berth serve: {fds0} \
         -> {fds1} -> {fds2} fds (start, end of loop, after), VmRSS {} -> {} MiB; fsck clean",
        total.total(),
        total.ops,
        total.bytes_verified,
        total.bytes_verified as f64 / (1 << 20) as f64,
        end.total(),
        end.ops,
        end.bytes_verified,
        rss0 / 1024,
        rss1 / 1024,
    );
    for what in [
        "push",
        "pull",
        "retag",
        "delete tag",
        "delete manifest",
        "list tags",
    ] {
        assert!(
            total.ops.get(what).copied().unwrap_or(0) > 0,
            "the soak never did a {what} in {seconds} s"
        );
    }
}
