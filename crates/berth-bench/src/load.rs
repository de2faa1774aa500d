//! Closed-loop HTTP load: N tokio tasks, each owning one keep-alive connection and
//! sending one request at a time (like wrk), rotating over pre-built requests.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::http::{Conn, Head};

/// Per-connection bound on requests (the deadline normally ends the loop first).
const MAX_REQUESTS_PER_CONN: u64 = 50_000_000;
/// Per-connection bound on kept latency samples.
const MAX_SAMPLES_PER_CONN: usize = 4_000_000;
/// How long after the deadline a connection may still be busy before it is abandoned.
const GRACE: Duration = Duration::from_secs(15);

pub struct LoadResult {
    /// 2xx responses.
    pub ok: u64,
    /// Non-2xx responses and transport errors.
    pub errors: u64,
    pub first_error: Option<String>,
    /// `errors` by kind: `HTTP <status>`, or `transport: <what failed>`.
    pub errors_by_kind: BTreeMap<String, u64>,
    pub elapsed: Duration,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// The rare stalls that a p99 does not see.
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl LoadResult {
    pub fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

struct Worker {
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    errors_by_kind: BTreeMap<String, u64>,
    latencies_us: Vec<u32>,
    finished: Instant,
}

impl Worker {
    fn error(&mut self, kind: String, e: String) {
        self.errors += 1;
        *self.errors_by_kind.entry(kind).or_default() += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e);
        }
    }
}

/// The kind of a failed request or connection: its outermost message, which names
/// what failed without the details (ports, byte counts) that vary.
pub fn transport_kind(e: &anyhow::Error) -> String {
    let text = e.to_string();
    let cut: String = text.chars().take(80).collect();
    format!("transport: {cut}")
}

/// Runs `connections` connections against `127.0.0.1:port` for `duration`. Each
/// connection rotates over all of `requests`, starting at its own offset; `head_only`
/// when they are HEAD requests (no response body). A request that starts with `HEAD `
/// is read without a body whatever `head_only` says, so one list may mix methods.
pub async fn run(
    port: u16,
    requests: Arc<Vec<Vec<u8>>>,
    head_only: bool,
    connections: usize,
    duration: Duration,
) -> Result<LoadResult> {
    let mut conns = Vec::with_capacity(connections);
    for _ in 0..connections {
        conns.push(Conn::connect(port, 64 * 1024).await?.without_timeouts());
    }
    let start = Instant::now();
    let deadline = start + duration;
    let handles: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(id, conn)| {
            tokio::spawn(worker(
                id,
                conn,
                requests.clone(),
                head_only,
                start,
                deadline,
            ))
        })
        .collect();
    let mut result = LoadResult {
        ok: 0,
        errors: 0,
        first_error: None,
        errors_by_kind: BTreeMap::new(),
        elapsed: duration,
        p50_ms: 0.0,
        p99_ms: 0.0,
        p999_ms: 0.0,
        max_ms: 0.0,
    };
    let mut latencies = Vec::new();
    let mut last = start;
    for mut h in handles {
        match tokio::time::timeout_at((deadline + GRACE).into(), &mut h).await {
            Ok(Ok(w)) => {
                result.ok += w.ok;
                result.errors += w.errors;
                if result.first_error.is_none() {
                    result.first_error = w.first_error;
                }
                for (kind, n) in w.errors_by_kind {
                    *result.errors_by_kind.entry(kind).or_default() += n;
                }
                latencies.extend_from_slice(&w.latencies_us);
                last = last.max(w.finished);
            }
            Ok(Err(e)) => {
                result.errors += 1;
                *result
                    .errors_by_kind
                    .entry("load task failed".into())
                    .or_default() += 1;
                result
                    .first_error
                    .get_or_insert(format!("load task failed: {e}"));
            }
            Err(_) => {
                h.abort();
                result.errors += 1;
                *result
                    .errors_by_kind
                    .entry("unanswered after the end".into())
                    .or_default() += 1;
                result.first_error.get_or_insert(format!(
                    "a request was still unanswered {GRACE:?} after the end of the load"
                ));
                last = Instant::now();
            }
        }
    }
    result.elapsed = last.duration_since(start);
    result.p50_ms = percentile_ms(&mut latencies, 0.50);
    result.p99_ms = percentile_ms(&mut latencies, 0.99);
    result.p999_ms = percentile_ms(&mut latencies, 0.999);
    result.max_ms = percentile_ms(&mut latencies, 1.0);
    Ok(result)
}

async fn one(conn: &mut Conn, req: &[u8], head_only: bool) -> Result<Head> {
    conn.write_all(req).await?;
    let head = conn.read_head().await?;
    if !head_only && !req.starts_with(b"HEAD ") {
        conn.read_body(&head, &mut |_: &[u8]| {}).await?;
    }
    Ok(head)
}

async fn worker(
    id: usize,
    mut conn: Conn,
    requests: Arc<Vec<Vec<u8>>>,
    head_only: bool,
    start: Instant,
    deadline: Instant,
) -> Worker {
    let n = requests.len().max(1);
    let mut i = (id * 25) % n;
    let mut w = Worker {
        ok: 0,
        errors: 0,
        first_error: None,
        errors_by_kind: BTreeMap::new(),
        latencies_us: Vec::with_capacity(1 << 16),
        finished: start,
    };
    for _ in 0..MAX_REQUESTS_PER_CONN {
        let t0 = Instant::now();
        if t0 >= deadline || requests.is_empty() {
            break;
        }
        let result = one(&mut conn, &requests[i], head_only).await;
        let us = t0.elapsed().as_micros().min(u32::MAX as u128) as u32;
        if w.latencies_us.len() < MAX_SAMPLES_PER_CONN {
            w.latencies_us.push(us);
        }
        match result {
            Ok(head) if head.ok() => w.ok += 1,
            Ok(head) => w.error(
                format!("HTTP {}", head.status),
                format!("HTTP {}", head.status),
            ),
            Err(e) => {
                w.error(transport_kind(&e), format!("{e:#}"));
                if conn.reconnect().await.is_err() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
        i += 1;
        if i == n {
            i = 0;
        }
    }
    w.finished = Instant::now();
    w
}

/// The `q` quantile of `samples` (microseconds), in milliseconds.
pub fn percentile_ms(samples: &mut [u32], q: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let rank = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
    let (_, v, _) = samples.select_nth_unstable(rank);
    *v as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut v: Vec<u32> = (1..=100).map(|x| x * 1000).collect();
        assert_eq!(percentile_ms(&mut v, 0.99), 99.0);
        assert_eq!(percentile_ms(&mut v, 0.50), 50.0);
        assert_eq!(percentile_ms(&mut [], 0.99), 0.0);
    }
}
