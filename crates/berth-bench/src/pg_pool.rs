//! Phase `pg_pool`: how the size of a replica's PostgreSQL pool shapes manifest GET
//! latency when the database shares the replica's cores.
//!
//! Both columns are berth serve on local blob files and one throw-away PostgreSQL
//! (a database each), catalog off: left with the default pool (twice the cores, 4 to
//! 16), right with `--metadata-connections 16` (the fixed size before, still what
//! a machine with 8 cores or more gets). Each holds one small image, pushed and read
//! as `manifest_get_rps` does (`GET /v2/bench/small/manifests/s000`) on 32 keep-alive
//! connections for `--duration` s, the
//! repetitions interleaved. Rows: `pg_manifest_get_rps` and its latency at p99, p99.9
//! and max: a pool too large for the cores shows in the rare stalls, not at p99 (see
//! `berth_pg::default_connections`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use berth_testenv::Postgres;

use crate::data;
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
    // One image, read as manifest_get_rps reads its images.
    let images = Arc::new(data::small_images(1));
    let mut requests = Vec::new();
    for s in [&left, &right] {
        crate::push_small(s, &images).await?;
        let reqs = Arc::new(crate::build_requests(s.port, &images, false, &[]));
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
            let side = if is_left {
                "default pool".to_string()
            } else {
                format!("{WIDE_POOL} connections")
            };
            progress(&format!(
                "pg_pool rep {rep} {side}: {:.0} req/s, p50 {:.2} ms, p99 {:.1} ms, \
                 p99.9 {:.1} ms, max {:.0} ms",
                r.rps(),
                r.p50_ms,
                r.p99_ms,
                r.p999_ms,
                r.max_ms
            ));
            table.add("pg_manifest_get_rps", is_left, r.rps());
            table.add("pg_manifest_get_p99_ms", is_left, r.p99_ms);
            table.add("pg_manifest_get_p999_ms", is_left, r.p999_ms);
            table.add("pg_manifest_get_max_ms", is_left, r.max_ms);
        }
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    table.notes.push(format!(
        "pg_manifest_get_*: both columns berth on local files + one PostgreSQL on this \
         host ({cores} cores), catalog off; left the default pool, right \
         --metadata-connections {WIDE_POOL}; GET of one manifest on {CONNECTIONS} \
         connections, {} s per rep, interleaved (wrk is not used: with 16 connections its \
         latencies summed to more time than its 32 connections had)",
        duration.as_secs()
    ));
    Ok(())
}
