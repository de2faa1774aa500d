//! Phase `pg_pool`: how the size of a replica's PostgreSQL pool shapes manifest GET
//! latency when the database shares the replica's cores.
//!
//! Both columns are berth serve on local blob files and one throw-away PostgreSQL
//! (a database each), catalog off: left with the default pool (twice the cores, 4 to
//! 16), right with `--metadata-connections 16` (the fixed size before, still what
//! a machine with 8 cores or more gets). Each holds one small image; the load is `GET
//! /v2/bench/m/manifests/v1` on 32 keep-alive connections for `--duration` s, the
//! repetitions interleaved, measured by berth-bench's own client
//! (`pg_manifest_get_rps`, `pg_manifest_get_p99_ms`) and by wrk
//! (`pg_manifest_get_wrk_rps`, `pg_manifest_get_wrk_p99_ms`), which was what showed
//! the tail of a pool too large for the cores (see `berth_pg::default_connections`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use berth_testenv::Postgres;

use crate::data;
use crate::http::{self, Conn, MANIFEST_ACCEPT, USER_AGENT};
use crate::load;
use crate::progress;
use crate::report::Table;
use crate::server::{Env, Kind, Server};

const CONNECTIONS: usize = 32;
/// The pool of the right column.
const WIDE_POOL: &str = "16";

pub async fn pool_phase(
    env: &Env,
    table: &mut Table,
    reps: usize,
    duration: Duration,
) -> Result<()> {
    progress("pg_pool: starting PostgreSQL and two berth servers on it");
    let pg = Postgres::private();
    let (left_db, right_db) = (pg.database(), pg.database());
    let left = Server::start_with(
        env,
        Kind::Berth,
        None,
        &["--metadata", &left_db, "--catalog=false"],
    )?;
    let right = Server::start_with(
        env,
        Kind::Berth,
        None,
        &[
            "--metadata",
            &right_db,
            "--catalog=false",
            "--metadata-connections",
            WIDE_POOL,
        ],
    )?;
    let img = data::small_images(1).remove(0);
    let mut requests = Vec::new();
    for s in [&left, &right] {
        let mut c = Conn::connect(s.port, 0).await?;
        http::upload_blob(&mut c, "bench/m", &img.layer_digest, &img.layer).await?;
        http::upload_blob(&mut c, "bench/m", &img.config_digest, &img.config).await?;
        http::put_manifest(&mut c, "bench/m", "v1", data::OCI_MANIFEST, &img.manifest).await?;
        let reqs = Arc::new(vec![format!(
            "GET /v2/bench/m/manifests/v1 HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\
             User-Agent: {USER_AGENT}\r\nAccept: {MANIFEST_ACCEPT}\r\n\r\n",
            s.port
        )
        .into_bytes()]);
        crate::warm_up(s, &reqs, false).await?;
        requests.push(reqs);
    }
    for rep in 1..=reps {
        for ((s, reqs), is_left) in [&left, &right].iter().zip(&requests).zip([true, false]) {
            let r = load::run(s.port, reqs.clone(), false, CONNECTIONS, duration).await?;
            if r.errors > 0 {
                bail!(
                    "pg_pool: {} manifest GETs failed (first: {})",
                    r.errors,
                    r.first_error.unwrap_or_default()
                );
            }
            progress(&format!(
                "pg_pool rep {rep} {}: {:.0} req/s, p50 {:.2} ms, p99 {:.1} ms",
                if is_left {
                    "default pool"
                } else {
                    "16 connections"
                },
                r.rps(),
                r.p50_ms,
                r.p99_ms
            ));
            table.add("pg_manifest_get_rps", is_left, r.rps());
            table.add("pg_manifest_get_p99_ms", is_left, r.p99_ms);
            let (rps, p99) = wrk(s.port, duration).await?;
            progress(&format!(
                "pg_pool rep {rep} {}, wrk: {rps:.0} req/s, p99 {p99:.1} ms",
                if is_left {
                    "default pool"
                } else {
                    "16 connections"
                },
            ));
            table.add("pg_manifest_get_wrk_rps", is_left, rps);
            table.add("pg_manifest_get_wrk_p99_ms", is_left, p99);
        }
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    table.notes.push(format!(
        "pg_manifest_get_*: both columns berth on local files + one PostgreSQL on this \
         host ({cores} cores), catalog off; left the default pool, right \
         --metadata-connections {WIDE_POOL}; GET of one manifest on {CONNECTIONS} \
         connections, {} s per rep, interleaved; the *_wrk_* rows the same load from wrk \
         -t2 (only wrk's showed 16 connections' tail: the same server measured by \
         berth-bench's own client had a p99 of about 11 ms)",
        duration.as_secs()
    ));
    Ok(())
}

/// The same load from wrk (two threads, 32 connections): requests a second and p99 in
/// ms. Any error (a socket error, a request unanswered after 10 s, a non-2xx answer)
/// fails the phase.
async fn wrk(port: u16, duration: Duration) -> Result<(f64, f64)> {
    let mut cmd = std::process::Command::new("wrk");
    cmd.args(["-t2", &format!("-c{CONNECTIONS}")])
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        // wrk's own timeout (2 s) would drop the slowest requests from the latencies.
        .args(["--timeout", "10s", "--latency"])
        .args(["-H", &format!("Accept: {MANIFEST_ACCEPT}")])
        .arg(format!("http://127.0.0.1:{port}/v2/bench/m/manifests/v1"));
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .context("waiting for wrk")?
        .context("running wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || text.contains("Non-2xx") || text.contains("Socket errors") {
        bail!("wrk: {}{}", text, String::from_utf8_lossy(&out.stderr));
    }
    let field = |label: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label).map(str::trim))
            .with_context(|| format!("no {label:?} in wrk's output:\n{text}"))
    };
    let rps: f64 = field("Requests/sec:")?
        .parse()
        .context("wrk's Requests/sec")?;
    Ok((rps, wrk_ms(field("99%")?)?))
}

/// A wrk latency ("870.00us", "12.31ms", "1.02s") in milliseconds.
fn wrk_ms(s: &str) -> Result<f64> {
    let (number, scale) = if let Some(n) = s.strip_suffix("us") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1e3)
    } else {
        bail!("wrk latency {s:?}");
    };
    Ok(number
        .parse::<f64>()
        .with_context(|| format!("wrk latency {s:?}"))?
        * scale)
}

#[cfg(test)]
mod tests {
    #[test]
    fn wrk_latencies_in_ms() {
        assert_eq!(super::wrk_ms("870.00us").unwrap(), 0.87);
        assert_eq!(super::wrk_ms("12.50ms").unwrap(), 12.5);
        assert_eq!(super::wrk_ms("1.25s").unwrap(), 1250.0);
        assert!(super::wrk_ms("12m").is_err());
    }
}
