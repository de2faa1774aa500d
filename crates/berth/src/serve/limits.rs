//! How `berth serve` holds its connections: at most `--max-connections` at once (the
//! next ones get a `503` and are closed, never queued), a request head must arrive
//! within `--header-timeout` (which also ends idle keep-alive connections), a request
//! body may not stall longer than `--body-timeout`, and heads are bounded in size and
//! count (hyper answers `431`). The accept loop is ours rather than `axum::serve`'s
//! because axum gives no way to set hyper's timer, timeouts or sizes, nor to refuse.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// A request head (request line and headers) larger than this is answered `431`.
/// Registry clients send a few hundred bytes, a bearer token a few KiB.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// More header fields than this is answered `431` (hyper's own default, set explicitly).
pub const MAX_HEADERS: usize = 100;
/// hyper's read buffer per connection grows up to this (hyper's own default, set
/// explicitly). The head is bounded by `max_header_size` above, not by this: capping
/// the buffer at 128 KiB to bound heads cost a blob push 0.2 s of CPU per GiB (three
/// times the read calls; `berth-bench --only push_1g`: 0.46 against 0.66 s/GiB of
/// kernel time).
const READ_BUFFER_MAX: usize = 8192 + 4096 * 100;
/// File descriptors kept for everything but client sockets (the databases, blob files
/// of requests in flight are counted per connection below, logs, refusals).
const FD_RESERVE: u64 = 256;
/// The default limit never goes above this, however many descriptors the system gives.
const DEFAULT_MAX_CONNECTIONS_CAP: usize = 4096;
/// Refused connections being answered at once; beyond these, refused ones are closed
/// without an answer, so refusing costs bounded memory and descriptors too.
const REFUSALS_IN_FLIGHT: usize = 64;
/// A refused client gets this long to take its answer.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(2);
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Length: 47\r\nConnection: close\r\n\r\n\
berth: too many connections; retry in a second\n";

/// The limits `berth serve` applies to every connection.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    /// `None`: no limit (`0s` on the command line).
    pub header_timeout: Option<Duration>,
    pub body_timeout: Option<Duration>,
}

/// The default `--max-connections`: first the soft limit on open files is raised to the
/// hard one (as Go programs such as docker-registry do), then each connection is
/// counted as two descriptors (its socket and a blob file) after a reserve, capped at
/// 4096. With the common 1024 soft and 524288 hard limits that is 4096; where the
/// hard limit is 1024 it is 384.
pub fn default_max_connections() -> usize {
    match raise_open_files(1 << 20) {
        Some(open) => connections_for(open),
        None => DEFAULT_MAX_CONNECTIONS_CAP / 4,
    }
}

/// For an explicit `--max-connections`: the soft limit on open files raised to what
/// that many connections may need (two descriptors each and the reserve, as the
/// default counts them), up to the hard limit. When even the hard limit is short, a
/// warning to show (as nginx warns when `worker_connections` exceed it): berth still
/// starts, since two descriptors per connection is the worst case, but past the limit
/// a connection that cannot open a file is answered 503.
pub fn open_files_for(connections: usize) -> Option<String> {
    let need = files_for(connections);
    match raise_open_files(need) {
        Some(open) if open >= need => None,
        Some(open) => Some(format!(
            "--max-connections {connections} may need {need} open files, but the limit is \
             {open} (ulimit -Hn; LimitNOFILE= under systemd): raise it, or use at most {} \
             connections",
            connections_for_uncapped(open)
        )),
        None => Some("cannot read the open-files limit (getrlimit failed)".into()),
    }
}

/// The soft RLIMIT_NOFILE raised towards `want` (never past the hard limit, never
/// lowered); the soft limit in force afterwards, none when it cannot be read.
fn raise_open_files(want: u64) -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    let want = want.min(lim.rlim_max);
    if lim.rlim_cur < want {
        let raised = libc::rlimit {
            rlim_cur: want,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = want;
        }
    }
    Some(lim.rlim_cur)
}

/// Descriptors `connections` may hold at once: two each, and the reserve.
fn files_for(connections: usize) -> u64 {
    (connections as u64)
        .saturating_mul(2)
        .saturating_add(FD_RESERVE)
}

fn connections_for_uncapped(open_files: u64) -> u64 {
    (open_files.saturating_sub(FD_RESERVE) / 2).max(1)
}

fn connections_for(open_files: u64) -> usize {
    let n = connections_for_uncapped(open_files);
    usize::try_from(n)
        .unwrap_or(usize::MAX)
        .clamp(1, DEFAULT_MAX_CONNECTIONS_CAP)
}

/// Accepts connections until `stop`, serves each with `router` within `limits`, then
/// waits until the connections in flight are done (idle ones are closed at once, the
/// others after their current request).
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    limits: Limits,
    stop: CancellationToken,
) {
    let max = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let slots = Arc::new(Semaphore::new(max as usize));
    let refusals = Arc::new(Semaphore::new(REFUSALS_IN_FLIGHT));
    let mut refused = RefusalLog::default();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_headers(MAX_HEADERS)
        .max_header_size(MAX_HEADER_BYTES)
        .max_buf_size(READ_BUFFER_MAX);
    loop {
        let (tcp, addr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait, then go on.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refused.note(max);
            refuse(tcp, tls.is_some(), &refusals);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let conn = Connection {
            http: http.clone(),
            router: router.clone(),
            addr,
            body_timeout: limits.body_timeout,
            stop: stop.clone(),
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            match tls {
                None => conn.serve(tcp).await,
                Some(acceptor) => {
                    let stop = conn.stop.clone();
                    // A handshake still running at shutdown has no request to finish.
                    let tls = tokio::select! {
                        tls = crate::tls::handshake(&acceptor, tcp, addr) => tls,
                        () = stop.cancelled() => None,
                    };
                    if let Some(tls) = tls {
                        conn.serve(tls).await;
                    }
                }
            }
        });
    }
    drop(listener);
    // Every slot back: every connection ended.
    let _ = slots.acquire_many(max).await;
}

/// One accepted connection and what serving it needs.
struct Connection {
    http: http1::Builder,
    router: Router,
    addr: SocketAddr,
    body_timeout: Option<Duration>,
    stop: CancellationToken,
}

impl Connection {
    async fn serve<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Connection {
            http,
            router,
            addr,
            body_timeout,
            stop,
        } = self;
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let mut req =
                req.map(|body| axum::body::Body::new(StallTimeout::new(body, body_timeout)));
            // What axum's `into_make_service_with_connect_info` would add.
            req.extensions_mut().insert(ConnectInfo(addr));
            let mut router = router.clone();
            async move {
                let response: Result<_, Infallible> = tower::Service::call(&mut router, req).await;
                response
            }
        });
        let conn = http.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        let ended = tokio::select! {
            r = conn.as_mut() => r,
            () = stop.cancelled() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = ended {
            tracing::debug!(%addr, error = %e, "connection ended");
        }
    }
}

/// Answers a connection beyond the limit with a `503` and closes it. Under TLS it is
/// closed at once: an answer would cost a handshake, the very work being refused.
fn refuse(mut tcp: TcpStream, tls: bool, budget: &Arc<Semaphore>) {
    if tls {
        return;
    }
    let Ok(permit) = budget.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let _ = tokio::time::timeout(REFUSAL_TIMEOUT, async {
            tcp.write_all(REFUSAL).await?;
            tcp.shutdown().await?;
            // Read what the client sent before closing: closing with unread bytes
            // resets the connection, and a reset can discard the answer before the
            // client read it.
            let mut sink = [0u8; 4096];
            let mut drained = 0;
            while drained < 64 * 1024 {
                match tcp.read(&mut sink).await? {
                    0 => break,
                    n => drained += n,
                }
            }
            std::io::Result::Ok(())
        })
        .await;
    });
}

/// Logs refusals at most once a second, with how many there were since the last line.
#[derive(Default)]
struct RefusalLog {
    count: u64,
    last: Option<Instant>,
}

impl RefusalLog {
    fn note(&mut self, max: u32) {
        self.count += 1;
        if self
            .last
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            tracing::warn!(
                refused = self.count,
                max_connections = max,
                "connection limit reached; refusing new connections with 503"
            );
            self.count = 0;
            self.last = Some(Instant::now());
        }
    }
}

/// A request body that fails when the client sends nothing for `limit` while the
/// handler waits for it. Only silence counts: a slow but steady upload goes on.
struct StallTimeout {
    inner: Incoming,
    limit: Option<Duration>,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    waiting: bool,
}

impl StallTimeout {
    fn new(inner: Incoming, limit: Option<Duration>) -> Self {
        StallTimeout {
            inner,
            limit,
            timer: None,
            waiting: false,
        }
    }
}

impl Body for StallTimeout {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.waiting = false;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let Some(limit) = this.limit else {
                    return Poll::Pending;
                };
                let deadline = tokio::time::Instant::now() + limit;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if !this.waiting {
                    timer.as_mut().reset(deadline);
                    this.waiting = true;
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.waiting = false;
                        Poll::Ready(Some(Err(stalled(limit).into())))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The error a stalled body ends with.
fn stalled(limit: Duration) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("the client sent no request body bytes for {limit:?}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_connections_leave_descriptors_for_files() {
        assert_eq!(connections_for(1024), 384);
        assert_eq!(connections_for(524_288), 4096);
        assert_eq!(connections_for(100), 1);
    }

    fn open_files() -> (u64, u64) {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes the struct it is given.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        (lim.rlim_cur, lim.rlim_max)
    }

    #[test]
    fn an_explicit_connection_count_raises_the_open_files_limit_or_says_why_not() {
        let (_, hard) = open_files();
        // What fits under the hard limit is made to fit, silently.
        let fits = usize::try_from(connections_for_uncapped(hard).min(100_000)).unwrap();
        assert_eq!(open_files_for(fits), None);
        assert!(open_files().0 >= files_for(fits));
        // Beyond it: one line naming the need, the limit and what would fit.
        let too_many = usize::try_from(hard).unwrap();
        let why = open_files_for(too_many).expect("a warning");
        assert!(
            why.contains(&format!("may need {} open files", files_for(too_many)))
                && why.contains(&format!("the limit is {hard}"))
                && why.contains(&format!(
                    "at most {} connections",
                    connections_for_uncapped(hard)
                )),
            "{why}"
        );
    }

    #[test]
    fn the_refusal_is_one_complete_response() {
        let text = std::str::from_utf8(REFUSAL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains("\r\nRetry-After: 1\r\n"));
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(body.len(), length);
    }
}
