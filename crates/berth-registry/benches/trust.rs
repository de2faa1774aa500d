//! What content trust adds to a manifest GET: the latency of `GET
//! /v2/<name>/manifests/<digest>` over loopback HTTP with no setting, and where
//! signatures are required (simple signatures checked with a GPG key, sigstore
//! attachments with a P-256 key), the first GET of each manifest (cold: the signatures
//! are read and verified) and the next (cached verdict).
//!
//! `cargo bench -p berth-registry --bench trust` (needs `gpg`); `BENCH_IMAGES=N`
//! sets the number of images per case (default 200).

#[path = "../tests/api/support.rs"]
mod support;

#[path = "../tests/api/signing.rs"]
mod signing;

use std::time::{Duration, Instant};

use berth_auth::{Actor, Change};
use signing::*;
use support::*;

async fn get_each(srv: &Server, repo: &str, digests: &[String]) -> Vec<Duration> {
    let mut times = Vec::with_capacity(digests.len());
    for d in digests {
        let start = Instant::now();
        let resp = send(srv.get(&format!("/v2/{repo}/manifests/{d}"))).await;
        let status = resp.status();
        resp.bytes().await.unwrap();
        times.push(start.elapsed());
        assert_eq!(status, 200, "{repo}@{d}");
    }
    times
}

fn row(case: &str, mut t: Vec<Duration>) {
    t.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let at = |q: f64| us(t[((t.len() as f64 * q) as usize).min(t.len() - 1)]);
    let mean = t.iter().map(|d| us(*d)).sum::<f64>() / t.len() as f64;
    println!(
        "{case:<28} {:>6} {:>9.0} {:>9.0} {:>9.0} {:>9.0}",
        t.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        mean
    );
}

fn set_trust(srv: &Server, name: &str, gpg: &[&GpgKey], sigstore: &[&SigstoreKey]) {
    let change = Change::TrustSet {
        name: name.into(),
        required: true,
        gpg_keys: gpg.iter().map(|k| k.public_text()).collect(),
        sigstore_keys: sigstore.iter().map(|k| k.public_pem.clone()).collect(),
    };
    srv.reg
        .auth()
        .store()
        .apply(&Actor::local(), &change)
        .unwrap();
}

async fn run(n: usize) {
    let srv = Server::start().await;
    let gpg = gpg_key("bench <bench@example.test>");
    let sig = sigstore_key();
    set_trust(&srv, "gpg", &[&gpg], &[]);
    set_trust(&srv, "sigstore", &[], &[&sig]);

    eprintln!("pushing and signing {n} images per case…");
    let mut digests: Vec<(&str, Vec<String>)> = Vec::new();
    for (seed_base, repo) in [
        (0u64, "plain/app"),
        (100_000, "gpg/app"),
        (200_000, "sigstore/app"),
    ] {
        let mut ds = Vec::with_capacity(n);
        for i in 0..n as u64 {
            let img = push_image(&srv, repo, None, seed_base + i).await;
            let reference = format!("localhost:5000/{repo}:v{i}");
            match repo {
                "gpg/app" => {
                    put_signature(
                        &srv,
                        repo,
                        &img.digest,
                        &gpg.sign(&img.digest, &reference),
                        1,
                    )
                    .await
                }
                "sigstore/app" => push_sigstore(&srv, repo, &sig, &img.digest, &reference).await,
                _ => {}
            }
            ds.push(img.digest);
        }
        digests.push((repo, ds));
    }

    println!(
        "{:<28} {:>6} {:>9} {:>9} {:>9} {:>9}",
        "manifest GET (µs)", "n", "p50", "p90", "p99", "mean"
    );
    // Warm the connection and the store's pages first.
    get_each(&srv, "plain/app", &digests[0].1).await;
    // The first GET of each signed manifest verifies its signatures.
    let mut cold = Vec::new();
    for (repo, ds) in &digests[1..] {
        cold.push(get_each(&srv, repo, ds).await);
    }
    // Then every manifest again, the cases interleaved round by round so that the
    // machine's other load falls on all of them alike.
    let mut warm = vec![Vec::new(); digests.len()];
    for _ in 0..ROUNDS {
        for (i, (repo, ds)) in digests.iter().enumerate() {
            warm[i].extend(get_each(&srv, repo, ds).await);
        }
    }
    let mut warm = warm.into_iter();
    let mut cold = cold.into_iter();
    row("no setting", warm.next().unwrap());
    row("GPG required, cold", cold.next().unwrap());
    row("GPG required, cached", warm.next().unwrap());
    row("sigstore required, cold", cold.next().unwrap());
    row("sigstore required, cached", warm.next().unwrap());
}

/// Passes over every manifest once it is cached.
const ROUNDS: usize = 5;

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this with few images.
    let quick = std::env::args().all(|a| a != "--bench");
    let n = std::env::var("BENCH_IMAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 5 } else { 200 });
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(n));
}
