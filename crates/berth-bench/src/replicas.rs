//! Phase `replicas_pull`: does a registry of three stateless replicas serve more pulls
//! than one? (Issue 14: "three replicas against one, under 64 concurrent pulls of
//! small images: aggregate throughput scales; measure and report it honestly".)
//!
//! Both columns are berth on the same stores: a three-node Garage cluster (every
//! object on all three nodes) and a PostgreSQL cluster of its own (berth-testenv
//! starts both on 127.0.0.1; Garage must be installed: `cargo install --locked
//! garage`). Left: three replicas, each talking to a Garage node of its own, with the
//! 64 connections spread over them (22, 21, 21); right: one replica with all 64. The
//! replicas share nothing but the two stores. A pull is what podman sends for a small
//! image: the manifest, then the config and the layer blob (streamed from Garage
//! through the replica); every connection rotates over the pulls of 50 images.
//! Repetitions interleave three and one.

use std::sync::Arc;

use anyhow::{Context, Result};
use berth_testenv::{Garage, Postgres};

use crate::data::{small_images, SmallImage};
use crate::http::{MANIFEST_ACCEPT, USER_AGENT};
use crate::load;
use crate::progress;
use crate::report::Table;
use crate::server::{CpuMark, Env, Kind, Server};
use crate::SMALL_REPO;

/// Images pulled (50: a few keep every connection's requests distinct).
const IMAGES: usize = 50;
/// The concurrency.
const CONNECTIONS: usize = 64;
const REPLICAS: usize = 3;

/// `replicas_pull_rps`, `replicas_pull_p99_ms`, `replicas_pull_host_busy_cores`.
pub async fn pull_phase(
    env: &Env,
    table: &mut Table,
    reps: usize,
    duration: std::time::Duration,
) -> Result<()> {
    progress("replicas_pull: starting a three-node Garage cluster and PostgreSQL");
    let garage = Garage::cluster();
    let pg = Postgres::private();
    let url = pg.database();
    let (key, secret) = garage.credentials();
    let mut replicas = Vec::new();
    for n in 0..REPLICAS {
        let config = env.run.join(format!("replica-{n}.toml"));
        std::fs::write(
            &config,
            format!(
                "metadata = {url:?}\nblob_store = \"s3://{}/bench\"\ns3_endpoint = {:?}\n\
                 s3_region = {:?}\ns3_access_key_id = {key:?}\ns3_secret_access_key = {secret:?}\n\
                 catalog = false\n",
                garage.bucket(),
                garage.endpoint(n),
                Garage::REGION,
            ),
        )
        .with_context(|| format!("writing {}", config.display()))?;
        let config = config.display().to_string();
        replicas.push(Server::start_with(
            env,
            Kind::Berth,
            None,
            &["--config", &config],
        )?);
    }
    let images = Arc::new(small_images(IMAGES));
    crate::push_small(&replicas[0], &images).await?;
    let requests: Vec<Arc<Vec<Vec<u8>>>> = replicas
        .iter()
        .map(|s| Arc::new(pull_requests(s.port, &images)))
        .collect();
    // Every replica serves every pull before timing starts (and proves it can).
    for (s, reqs) in replicas.iter().zip(&requests) {
        crate::warm_up(s, reqs, false).await?;
    }
    table.notes.push(format!(
        "replicas_pull_*: both columns berth serve on one three-node Garage cluster \
         (replication factor 3) and one PostgreSQL, with nothing else shared; left {REPLICAS} \
         replicas (each on its own Garage node, {CONNECTIONS} connections spread over them), \
         right 1 replica ({CONNECTIONS} connections); each connection pulls small images in \
         turn (manifest GET, config and layer blob GETs streamed from Garage), {IMAGES} images, \
         {} s per rep, interleaved; p99 = the slowest replica's. Every process (Garage x3, \
         PostgreSQL, the replicas, this load) shares this host's {} cores",
        duration.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    ));
    for rep in 1..=reps {
        for three in [true, false] {
            let used = if three { REPLICAS } else { 1 };
            let runs: Vec<_> = (0..used)
                .map(|i| {
                    let share = CONNECTIONS / used + usize::from(i < CONNECTIONS % used);
                    load::run(
                        replicas[i].port,
                        requests[i].clone(),
                        false,
                        share,
                        duration,
                    )
                })
                .collect();
            let mark = CpuMark::now();
            let results = futures_join(runs).await;
            let busy = mark.host_cores(&CpuMark::now());
            let (mut ok, mut errors, mut elapsed, mut p99) = (0u64, 0u64, 0f64, 0f64);
            let mut first_error = None;
            for r in results {
                let r = r?;
                ok += r.ok;
                errors += r.errors;
                elapsed = elapsed.max(r.elapsed.as_secs_f64());
                p99 = p99.max(r.p99_ms);
                first_error = first_error.or(r.first_error);
            }
            let rps = ok as f64 / elapsed.max(1e-9);
            progress(&format!(
                "replicas_pull rep {rep}: {used} replica(s): {rps:.0} req/s, p99 {p99:.1} ms, \
                 {errors} errors, host {busy:.2} cores busy"
            ));
            if errors > 0 {
                table.row("replicas_pull_rps").errors.push(format!(
                    "{used} replica(s): {errors} errors, first: {}",
                    first_error.unwrap_or_default()
                ));
            }
            table.add("replicas_pull_rps", three, rps);
            table.add("replicas_pull_p99_ms", three, p99);
            table.add("replicas_pull_host_busy_cores", three, busy);
        }
    }
    Ok(())
}

/// Runs the loads at once.
async fn futures_join<F: std::future::Future + Send + 'static>(runs: Vec<F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = runs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("load task panicked"));
    }
    out
}

/// What a client sends to pull each image: its manifest, config and layer.
fn pull_requests(port: u16, images: &[SmallImage]) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(images.len() * 3);
    for img in images {
        out.push(
            format!(
                "GET /v2/{SMALL_REPO}/manifests/{} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
                 User-Agent: {USER_AGENT}\r\nAccept: {MANIFEST_ACCEPT}\r\n\r\n",
                img.tag
            )
            .into_bytes(),
        );
        for d in [&img.config_digest, &img.layer_digest] {
            out.push(
                format!(
                    "GET /v2/{SMALL_REPO}/blobs/{d} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
                     User-Agent: {USER_AGENT}\r\n\r\n"
                )
                .into_bytes(),
            );
        }
    }
    out
}
