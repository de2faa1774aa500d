//! Pushing and pulling one big blob over a single connection.
//!
//! A push is what skopeo does for a layer: `POST` (start a session), one streaming
//! `PATCH` of the whole blob with chunked transfer encoding, `PUT ?digest=` (commit).

use std::fs::File;
use std::io::Read;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sha2::{Digest as _, Sha256};

use crate::data::{BigFile, XorShift};
use crate::http::{with_query, Conn, Response};
use crate::server::Server;

/// Bytes per read from the source and per chunk on the wire.
const CHUNK: usize = 256 * 1024;
/// Room before the data for the chunk-size line.
const PREFIX: usize = 16;

pub enum Source<'a> {
    /// A cached file whose digest is known (read in 256 KiB pieces).
    File(&'a BigFile),
    /// Bytes generated while sending and hashed on the client, so no file is needed.
    Generated { seed: u64, size: u64 },
}

pub struct PushResult {
    pub bytes: u64,
    pub wall: Duration,
    /// Server CPU seconds from the POST to the answer of the PUT.
    pub server_cpu_s: f64,
    /// The system (kernel) part of `server_cpu_s`.
    pub server_sys_s: f64,
    pub digest: String,
}

impl PushResult {
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.wall.as_secs_f64().max(1e-9)
    }
}

pub async fn push(server: &Server, repo: &str, source: Source<'_>) -> Result<PushResult> {
    let mut conn = Conn::connect(server.port, 64 * 1024).await?;
    let (user0, sys0) = server.cpu_split();
    let t0 = Instant::now();

    let what = format!("starting an upload to {repo}");
    let session = conn
        .request("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], &[])
        .await
        .with_context(|| what.clone())?
        .expect(&[202], &what)?
        .location(&what)?;

    let head = conn.request_head(
        "PATCH",
        &session,
        &[
            ("Content-Type", "application/octet-stream"),
            ("Transfer-Encoding", "chunked"),
        ],
        None,
    );
    conn.write_all(head.as_bytes()).await?;
    let mut buf = vec![0u8; PREFIX + CHUNK + 2];
    let (bytes, digest) = match source {
        Source::File(f) => {
            let mut file =
                File::open(&f.path).with_context(|| format!("opening {}", f.path.display()))?;
            let mut sent = 0u64;
            loop {
                let n = read_full(&mut file, &mut buf[PREFIX..PREFIX + CHUNK])?;
                if n == 0 {
                    break;
                }
                send_chunk(&mut conn, &mut buf, n).await?;
                sent += n as u64;
            }
            if sent != f.size {
                bail!("{} has {sent} bytes, expected {}", f.path.display(), f.size);
            }
            (sent, f.digest.clone())
        }
        Source::Generated { seed, size } => {
            let mut rng = XorShift::new(seed);
            let mut hasher = Sha256::new();
            let mut left = size;
            while left > 0 {
                let n = left.min(CHUNK as u64) as usize;
                rng.fill(&mut buf[PREFIX..PREFIX + n]);
                hasher.update(&buf[PREFIX..PREFIX + n]);
                send_chunk(&mut conn, &mut buf, n).await?;
                left -= n as u64;
            }
            (size, format!("sha256:{:x}", hasher.finalize()))
        }
    };
    conn.write_all(b"0\r\n\r\n").await?;
    let what = format!("PATCH of {bytes} bytes to {repo}");
    let head = conn.read_head().await.with_context(|| what.clone())?;
    let mut body = Vec::new();
    conn.read_body(&head, &mut |b: &[u8]| body.extend_from_slice(b))
        .await?;
    let session = Response { head, body }
        .expect(&[202], &what)?
        .location(&what)?;

    let what = format!("committing {digest} in {repo}");
    conn.request("PUT", &with_query(&session, "digest", &digest), &[], &[])
        .await
        .with_context(|| what.clone())?
        .expect(&[201], &what)?;
    let wall = t0.elapsed();
    let (user1, sys1) = server.cpu_split();
    Ok(PushResult {
        bytes,
        wall,
        server_cpu_s: (user1 - user0) + (sys1 - sys0),
        server_sys_s: sys1 - sys0,
        digest,
    })
}

/// Writes the chunk held in `buf[PREFIX..PREFIX + n]` with its size line and CRLF.
async fn send_chunk(conn: &mut Conn, buf: &mut [u8], n: usize) -> Result<()> {
    let line = format!("{n:x}\r\n");
    let from = PREFIX - line.len();
    buf[from..PREFIX].copy_from_slice(line.as_bytes());
    buf[PREFIX + n..PREFIX + n + 2].copy_from_slice(b"\r\n");
    conn.write_all(&buf[from..PREFIX + n + 2]).await
}

fn read_full(f: &mut File, buf: &mut [u8]) -> Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        let n = f.read(&mut buf[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    Ok(got)
}

/// `GET /v2/<repo>/blobs/<digest>` on a fresh connection, body thrown away (hashed
/// and checked when `verify`); returns the bytes received and the wall time.
pub async fn get(
    server: &Server,
    repo: &str,
    digest: &str,
    size: u64,
    verify: bool,
) -> Result<(u64, Duration)> {
    let mut conn = Conn::connect(server.port, CHUNK).await?;
    let t0 = Instant::now();
    let req = conn.request_head("GET", &format!("/v2/{repo}/blobs/{digest}"), &[], None);
    conn.write_all(req.as_bytes()).await?;
    let head = conn.read_head().await?;
    if head.status != 200 {
        bail!("GET blob {digest}: HTTP {}", head.status);
    }
    let mut hasher = verify.then(Sha256::new);
    let n = conn
        .read_body(&head, &mut |b: &[u8]| {
            if let Some(h) = hasher.as_mut() {
                h.update(b);
            }
        })
        .await?;
    let wall = t0.elapsed();
    if n != size {
        bail!("GET blob {digest}: {n} bytes, expected {size}");
    }
    if let Some(h) = hasher {
        let got = format!("sha256:{:x}", h.finalize());
        if got != digest {
            bail!("GET blob {digest}: content hashes to {got}");
        }
    }
    Ok((n, wall))
}

/// Whether `repo` has blob `digest` (HEAD answers 200).
pub async fn has_blob(server: &Server, repo: &str, digest: &str) -> Result<bool> {
    let mut conn = Conn::connect(server.port, 0).await?;
    let r = conn
        .request("HEAD", &format!("/v2/{repo}/blobs/{digest}"), &[], &[])
        .await?;
    Ok(r.head.status == 200)
}
