//! A minimal HTTP/1.1 client over one keep-alive TCP connection to 127.0.0.1.
//!
//! Written by hand so that the load generator spends as little CPU as possible per
//! request (the client shares 2 cores with the server): requests are pre-built bytes,
//! the response head is parsed in place and bodies are skipped or streamed to a sink.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest wait for any single read or write when timeouts are on.
pub const IO_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest time to establish a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bodies collected by [`Conn::request`] are cut at this size.
const MAX_COLLECTED_BODY: usize = 16 << 20;
/// Upper bound on chunks and trailer lines of one chunked body.
const MAX_CHUNKS: u64 = 1 << 24;

pub const USER_AGENT: &str = "berth-bench";

/// The Accept header of a manifest GET: OCI and Docker manifest and index types.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json";

/// The parts of a response head the benchmark needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub content_length: Option<u64>,
    pub chunked: bool,
    /// The server will close the connection after this response.
    pub close: bool,
    pub location: Option<String>,
    pub link: Option<String>,
}

impl Head {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Whether a body follows this head (for a request other than HEAD).
    fn has_body(&self) -> bool {
        !((100..200).contains(&self.status) || self.status == 204 || self.status == 304)
    }
}

/// Parses a response head (status line and header lines, without the final blank line).
pub fn parse_head(raw: &[u8]) -> Result<Head> {
    let text = std::str::from_utf8(raw).context("response head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| version.starts_with("HTTP/1."))
        .ok_or_else(|| anyhow!("bad status line {status_line:?}"))?;
    let mut head = Head {
        status,
        close: version == "HTTP/1.0",
        ..Head::default()
    };
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            bail!("bad header line {line:?}");
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            head.content_length = Some(
                value
                    .parse()
                    .with_context(|| format!("bad Content-Length {value:?}"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            let v = value.to_ascii_lowercase();
            if v.contains("close") {
                head.close = true;
            } else if v.contains("keep-alive") {
                head.close = false;
            }
        } else if name.eq_ignore_ascii_case("location") {
            head.location = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("link") {
            head.link = Some(value.to_string());
        }
    }
    Ok(head)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The path (and query) of a `Location` value, which distribution gives as an
/// absolute URL and berth as a path.
pub fn location_path(location: &str) -> String {
    for scheme in ["http://", "https://"] {
        if let Some(rest) = location.strip_prefix(scheme) {
            return match rest.find('/') {
                Some(i) => rest[i..].to_string(),
                None => "/".to_string(),
            };
        }
    }
    location.to_string()
}

/// Appends `key=value` to the query of `path`.
pub fn with_query(path: &str, key: &str, value: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}{key}={value}")
}

/// A response whose body was collected (up to [`MAX_COLLECTED_BODY`]).
pub struct Response {
    pub head: Head,
    pub body: Vec<u8>,
}

impl Response {
    /// Fails unless the status is one of `want`, quoting the body.
    pub fn expect(self, want: &[u16], what: &str) -> Result<Response> {
        if want.contains(&self.head.status) {
            return Ok(self);
        }
        let body = String::from_utf8_lossy(&self.body[..self.body.len().min(400)]).into_owned();
        bail!(
            "{what}: HTTP {} (wanted {want:?}): {}",
            self.head.status,
            body.trim()
        )
    }

    pub fn location(&self, what: &str) -> Result<String> {
        self.head
            .location
            .as_deref()
            .map(location_path)
            .ok_or_else(|| anyhow!("{what}: no Location header"))
    }
}

/// One keep-alive connection to `127.0.0.1:port`.
pub struct Conn {
    port: u16,
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    timeout: Option<Duration>,
    reconnect_needed: bool,
    pub host: String,
}

impl Conn {
    /// Connects with a receive buffer of `buf_size` bytes (at least 16 KiB).
    pub async fn connect(port: u16, buf_size: usize) -> Result<Conn> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| anyhow!("connecting to {addr} timed out"))?
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            port,
            stream,
            buf: vec![0; buf_size.max(16 * 1024)],
            start: 0,
            end: 0,
            timeout: Some(IO_TIMEOUT),
            reconnect_needed: false,
            host: format!("127.0.0.1:{port}"),
        })
    }

    /// No per-operation timeouts: for the load generator, whose tasks are bounded by
    /// an overall deadline instead (a timer per read would cost client CPU).
    pub fn without_timeouts(mut self) -> Conn {
        self.timeout = None;
        self
    }

    /// Replaces the connection with a fresh one (after an error or `Connection: close`).
    pub async fn reconnect(&mut self) -> Result<()> {
        let fresh = Conn::connect(self.port, self.buf.len()).await?;
        let timeout = self.timeout;
        *self = Conn { timeout, ..fresh };
        Ok(())
    }

    pub async fn write_all(&mut self, data: &[u8]) -> Result<()> {
        if self.reconnect_needed {
            self.reconnect().await?;
        }
        let write = self.stream.write_all(data);
        match self.timeout {
            Some(t) => tokio::time::timeout(t, write)
                .await
                .map_err(|_| anyhow!("write blocked for {t:?}"))??,
            None => write.await?,
        }
        Ok(())
    }

    /// Reads more bytes into the buffer; returns how many (0 at end of stream).
    async fn fill(&mut self) -> Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.end == self.buf.len() {
            if self.start == 0 {
                bail!("response line or head larger than {} bytes", self.buf.len());
            }
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let read = self.stream.read(&mut self.buf[self.end..]);
        let n = match self.timeout {
            Some(t) => tokio::time::timeout(t, read)
                .await
                .map_err(|_| anyhow!("no data from the server for {t:?}"))??,
            None => read.await?,
        };
        self.end += n;
        Ok(n)
    }

    /// Reads the next response head (skipping `100 Continue`).
    pub async fn read_head(&mut self) -> Result<Head> {
        // Offset from `start` up to which no head end was found.
        let mut scanned = 0;
        loop {
            let from = self.start + scanned;
            if let Some(pos) = find(&self.buf[from..self.end], b"\r\n\r\n") {
                let head_end = from + pos + 4;
                let head = parse_head(&self.buf[self.start..head_end - 4])?;
                self.start = head_end;
                if head.status == 100 {
                    scanned = 0;
                    continue;
                }
                if head.close {
                    self.reconnect_needed = true;
                }
                return Ok(head);
            }
            scanned = (self.end - self.start).saturating_sub(3);
            if self.fill().await? == 0 {
                self.reconnect_needed = true;
                if self.start == self.end {
                    bail!("connection closed by the server");
                }
                bail!("connection closed in the middle of a response head");
            }
        }
    }

    /// Reads the body that follows `head` (of a request other than HEAD), handing
    /// every piece to `sink`; returns its length.
    pub async fn read_body(
        &mut self,
        head: &Head,
        sink: &mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<u64> {
        if !head.has_body() {
            return Ok(0);
        }
        if head.chunked {
            return self.read_chunked(sink).await;
        }
        match head.content_length {
            Some(len) => {
                self.read_exact_into(len, sink).await?;
                Ok(len)
            }
            None => {
                // Delimited by the end of the connection.
                self.reconnect_needed = true;
                let mut total = 0u64;
                loop {
                    if self.start < self.end {
                        sink(&self.buf[self.start..self.end]);
                        total += (self.end - self.start) as u64;
                        self.start = self.end;
                    }
                    if self.fill().await? == 0 {
                        return Ok(total);
                    }
                }
            }
        }
    }

    async fn read_exact_into(
        &mut self,
        len: u64,
        sink: &mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<()> {
        let mut remaining = len;
        while remaining > 0 {
            if self.start == self.end && self.fill().await? == 0 {
                self.reconnect_needed = true;
                bail!("connection closed with {remaining} of {len} body bytes missing");
            }
            let take = ((self.end - self.start) as u64).min(remaining) as usize;
            sink(&self.buf[self.start..self.start + take]);
            self.start += take;
            remaining -= take as u64;
        }
        Ok(())
    }

    async fn read_line(&mut self) -> Result<String> {
        let mut scanned = 0;
        loop {
            let from = self.start + scanned;
            if let Some(pos) = find(&self.buf[from..self.end], b"\r\n") {
                let line_end = from + pos;
                let line = String::from_utf8_lossy(&self.buf[self.start..line_end]).into_owned();
                self.start = line_end + 2;
                return Ok(line);
            }
            scanned = (self.end - self.start).saturating_sub(1);
            if self.fill().await? == 0 {
                self.reconnect_needed = true;
                bail!("connection closed inside a chunked body");
            }
        }
    }

    async fn read_chunked(&mut self, sink: &mut (dyn FnMut(&[u8]) + Send)) -> Result<u64> {
        let mut total = 0u64;
        for _ in 0..MAX_CHUNKS {
            let line = self.read_line().await?;
            let size_text = line.split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size_text, 16)
                .with_context(|| format!("bad chunk size line {line:?}"))?;
            if size == 0 {
                for _ in 0..MAX_CHUNKS {
                    if self.read_line().await?.is_empty() {
                        return Ok(total);
                    }
                }
                bail!("too many trailer lines");
            }
            self.read_exact_into(size, sink).await?;
            if !self.read_line().await?.is_empty() {
                bail!("chunk data not followed by CRLF");
            }
            total += size;
        }
        bail!("too many chunks")
    }

    /// The head of a request, up to and including the blank line. `Content-Length` is
    /// added for `body_len` unless `headers` sets the framing itself.
    pub fn request_head(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body_len: Option<usize>,
    ) -> String {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {USER_AGENT}\r\n",
            self.host
        );
        for (k, v) in headers {
            req.push_str(k);
            req.push_str(": ");
            req.push_str(v);
            req.push_str("\r\n");
        }
        if let Some(n) = body_len {
            req.push_str(&format!("Content-Length: {n}\r\n"));
        }
        req.push_str("\r\n");
        req
    }

    /// Sends one request with a small in-memory body and collects the response.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response> {
        let with_length = !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH");
        let mut bytes = self
            .request_head(method, path, headers, with_length.then_some(body.len()))
            .into_bytes();
        bytes.extend_from_slice(body);
        self.write_all(&bytes).await?;
        let head = self.read_head().await?;
        let mut collected = Vec::new();
        if method != "HEAD" {
            self.read_body(&head, &mut |b: &[u8]| {
                if collected.len() < MAX_COLLECTED_BODY {
                    collected.extend_from_slice(b);
                }
            })
            .await?;
        }
        Ok(Response {
            head,
            body: collected,
        })
    }
}

// ---------------------------------------------------------------------------
// registry operations used for setup
// ---------------------------------------------------------------------------

/// Uploads a small blob: monolithic `POST ?digest=` with the body. distribution 2.8
/// ignores the digest and body of a POST and answers 202 with a session; the blob is
/// then sent with `PUT <location>&digest=` instead.
pub async fn upload_blob(conn: &mut Conn, repo: &str, digest: &str, data: &[u8]) -> Result<()> {
    let what = format!("uploading blob {digest} to {repo}");
    let ct = [("Content-Type", "application/octet-stream")];
    let resp = conn
        .request(
            "POST",
            &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
            &ct,
            data,
        )
        .await
        .with_context(|| what.clone())?
        .expect(&[201, 202], &what)?;
    if resp.head.status == 201 {
        return Ok(());
    }
    let loc = with_query(&resp.location(&what)?, "digest", digest);
    conn.request("PUT", &loc, &ct, data)
        .await
        .with_context(|| what.clone())?
        .expect(&[201], &what)?;
    Ok(())
}

/// Uploads a blob of any size the way every registry takes it: `POST` for a session,
/// then the bytes in one `PUT <location>&digest=` (distribution does not read the body
/// of a `POST`, so a large one there breaks the connection).
pub async fn upload_blob_in_put(
    conn: &mut Conn,
    repo: &str,
    digest: &str,
    data: &[u8],
) -> Result<()> {
    let what = format!("uploading blob {digest} to {repo}");
    let resp = conn
        .request("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], &[])
        .await
        .with_context(|| what.clone())?
        .expect(&[202], &what)?;
    let loc = with_query(&resp.location(&what)?, "digest", digest);
    conn.request(
        "PUT",
        &loc,
        &[("Content-Type", "application/octet-stream")],
        data,
    )
    .await
    .with_context(|| what.clone())?
    .expect(&[201], &what)?;
    Ok(())
}

pub async fn put_manifest(
    conn: &mut Conn,
    repo: &str,
    reference: &str,
    media_type: &str,
    body: &[u8],
) -> Result<()> {
    let what = format!("PUT manifest {repo}:{reference}");
    conn.request(
        "PUT",
        &format!("/v2/{repo}/manifests/{reference}"),
        &[("Content-Type", media_type)],
        body,
    )
    .await
    .with_context(|| what.clone())?
    .expect(&[201], &what)?;
    Ok(())
}

/// Counts the tags of `repo`, following `Link` pagination.
pub async fn count_tags(conn: &mut Conn, repo: &str) -> Result<usize> {
    count_listed(conn, &format!("/v2/{repo}/tags/list?n=100000"), "tags").await
}

/// Counts the entries of array `key` of a listing (tags, `_catalog`) from `first`,
/// following `Link` pagination to the end.
pub async fn count_listed(conn: &mut Conn, first: &str, key: &str) -> Result<usize> {
    let mut path = first.to_string();
    let mut count = 0;
    for _ in 0..10_000 {
        let what = format!("GET {path}");
        let resp = conn
            .request("GET", &path, &[], &[])
            .await
            .with_context(|| what.clone())?
            .expect(&[200], &what)?;
        let doc: serde_json::Value =
            serde_json::from_slice(&resp.body).with_context(|| format!("{what}: bad JSON"))?;
        count += doc[key].as_array().map_or(0, |t| t.len());
        match resp.head.link.as_deref().and_then(link_next) {
            Some(next) => path = next,
            None => return Ok(count),
        }
    }
    bail!("more than 10000 pages of {key}")
}

/// The target of a `Link: <...>; rel="next"` header.
fn link_next(link: &str) -> Option<String> {
    let start = link.find('<')? + 1;
    let end = start + link[start..].find('>')?;
    Some(location_path(&link[start..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_heads() {
        let h = parse_head(
            b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\nLocation: http://127.0.0.1:5/v2/a/blobs/uploads/x?_state=y\r\nConnection: close",
        )
        .unwrap();
        assert_eq!(h.status, 202);
        assert_eq!(h.content_length, Some(0));
        assert!(h.close);
        assert_eq!(
            location_path(h.location.as_deref().unwrap()),
            "/v2/a/blobs/uploads/x?_state=y"
        );
        let h = parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked").unwrap();
        assert!(h.chunked && !h.close && h.ok());
        assert!(parse_head(b"SSH-2.0 hello").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nno colon").is_err());
    }

    #[test]
    fn builds_paths() {
        assert_eq!(with_query("/a", "digest", "sha256:1"), "/a?digest=sha256:1");
        assert_eq!(with_query("/a?s=1", "digest", "d"), "/a?s=1&digest=d");
        assert_eq!(location_path("/v2/x"), "/v2/x");
        assert_eq!(
            link_next("</v2/r/tags/list?n=2&last=b>; rel=\"next\"").as_deref(),
            Some("/v2/r/tags/list?n=2&last=b")
        );
    }

    /// Serves `responses` (raw bytes, each after one request head) on a local port.
    async fn serve(responses: Vec<&'static [u8]>) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            for r in responses {
                let mut got = Vec::new();
                while find(&got, b"\r\n\r\n").is_none() {
                    let n = s.read(&mut buf).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                // Dribble the response out in small pieces.
                for piece in r.chunks(7) {
                    s.write_all(piece).await.unwrap();
                    s.flush().await.unwrap();
                }
            }
        });
        port
    }

    #[tokio::test]
    async fn reads_bodies() {
        let port = serve(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}",
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n",
        ])
        .await;
        let mut c = Conn::connect(port, 0).await.unwrap();
        let r = c.request("GET", "/a", &[], &[]).await.unwrap();
        assert_eq!((r.head.status, r.body.as_slice()), (200, &b"hello"[..]));
        let r = c.request("GET", "/b", &[], &[]).await.unwrap();
        assert_eq!((r.head.status, r.body.as_slice()), (200, &b"abcde"[..]));
        let r = c.request("GET", "/c", &[], &[]).await.unwrap();
        assert!(r.expect(&[200], "c").is_err());
        // HEAD: Content-Length but no body.
        let r = c.request("HEAD", "/d", &[], &[]).await.unwrap();
        assert_eq!(r.head.content_length, Some(9));
        assert!(r.body.is_empty());
    }
}
