//! Phase `s3_reads`: reading a registry that lives on object storage (issue 14:
//! "manifest GET at least 10x its requests per second, tags list and catalog with
//! 10,000 tags/repositories at least 20x faster; distribution lists the bucket").
//!
//! Left: berth serve on Garage + PostgreSQL (manifests and lists read from the
//! database). Right: docker-registry 2.8 with its `s3` driver on the same Garage (a tag
//! is an object under `_manifests/tags/`, the catalog a walk of the bucket). Garage is
//! the three-node cluster berth-testenv starts (every object on all three nodes), the
//! registries' blobs in one bucket under prefixes of their own. Both hold the same
//! content, pushed over HTTP: one image tagged 10,000 times in `bench/tags`, and
//! 10,000 repositories `bench/rNNNNN` of one image each (its blobs mounted).
//!
//! `s3_manifest_get_rps`: `GET /v2/bench/rNNNNN/manifests/v1` rotating over 200
//! repositories, 32 keep-alive connections for `--duration` s (the manifest load of
//! the other phases, on this storage). `tags_list_10k_ms`: `GET
//! /v2/bench/tags/tags/list?n=100000`, following `Link` pages to the end;
//! `catalog_10k_ms`: `GET /v2/_catalog?n=1000`, every page, as the shared
//! registry-bench harness asks. Each list is counted: one short of what was pushed is an
//! error, not a number. Repetitions interleave the two registries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use berth_testenv::{Garage, Postgres};

use crate::data::{self, SmallImage};
use crate::http::{self, Conn, MANIFEST_ACCEPT, USER_AGENT};
use crate::load;
use crate::progress;
use crate::report::Table;
use crate::server::{Env, Kind, S3Target, Server};

/// Tags of `TAGS_REPO`, and repositories besides it.
const COUNT: usize = 10_000;
const TAGS_REPO: &str = "bench/tags";
/// Connections filling each registry.
const FILL_CONNECTIONS: usize = 16;
/// How long docker-registry's catalog may take per rep. It walks the bucket again for
/// every page (page 2 took 36 s, page 3 more than 7 minutes here): when it is stopped,
/// the cap is recorded, a lower bound of its time (and of berth's ratio), and the notes
/// say so.
const CATALOG_CAP: Duration = Duration::from_secs(60);

/// Repositories the manifest load rotates over.
const MANIFEST_REPOS: usize = 200;
const CONNECTIONS: usize = 32;

/// `s3_manifest_get_rps` (and its p99), `tags_list_10k_ms` and `catalog_10k_ms`.
pub async fn reads_phase(
    env: &Env,
    table: &mut Table,
    reps: usize,
    duration: Duration,
) -> Result<()> {
    progress("s3_reads: starting a three-node Garage cluster and PostgreSQL");
    let garage = Garage::cluster();
    let pg = Postgres::private();
    let (key, secret) = garage.credentials();
    let config = env.run.join("s3-reads-berth.toml");
    std::fs::write(
        &config,
        format!(
            "metadata = {:?}\nblob_store = \"s3://{}/berth\"\ns3_endpoint = {:?}\n\
             s3_region = {:?}\ns3_access_key_id = {key:?}\ns3_secret_access_key = {secret:?}\n\
             catalog = false\n",
            pg.database(),
            garage.bucket(),
            garage.endpoint(0),
            Garage::REGION,
        ),
    )
    .with_context(|| format!("writing {}", config.display()))?;
    let config = config.display().to_string();
    let berth = Server::start_with(env, Kind::Berth, None, &["--config", &config])?;
    let dist = Server::start_distribution_s3(
        env,
        &S3Target {
            endpoint: garage.endpoint(0),
            region: Garage::REGION.into(),
            bucket: garage.bucket().into(),
            access_key: key.into(),
            secret_key: secret.into(),
        },
    )?;
    let img = data::small_images(1).remove(0);
    for s in [&berth, &dist] {
        fill(s, &img).await?;
    }
    let requests: Vec<Arc<Vec<Vec<u8>>>> = [&berth, &dist]
        .iter()
        .map(|s| Arc::new(manifest_requests(s.port)))
        .collect();
    for (s, reqs) in [&berth, &dist].iter().zip(&requests) {
        crate::warm_up(s, reqs, false).await?;
    }
    for rep in 1..=reps {
        for (s, reqs) in [&berth, &dist].iter().zip(&requests) {
            let r = load::run(s.port, reqs.clone(), false, CONNECTIONS, duration).await?;
            if r.errors > 0 {
                bail!(
                    "{}: {} manifest GETs failed (first: {})",
                    s.kind.name(),
                    r.errors,
                    r.first_error.unwrap_or_default()
                );
            }
            let rps = r.ok as f64 / r.elapsed.as_secs_f64().max(1e-9);
            progress(&format!(
                "s3_reads rep {rep} {}: manifest GET {rps:.0} req/s, p99 {:.1} ms",
                s.kind.name(),
                r.p99_ms
            ));
            table.add("s3_manifest_get_rps", s.kind == Kind::Berth, rps);
            table.add("s3_manifest_get_p99_ms", s.kind == Kind::Berth, r.p99_ms);
        }
    }
    table.notes.push(format!(
        "s3_manifest_get_rps: GET /v2/bench/rNNNNN/manifests/v1 over {MANIFEST_REPOS} \
         repositories, {CONNECTIONS} connections, {} s per rep; same registries as the lists",
        duration.as_secs()
    ));
    table.notes.push(format!(
        "tags_list_10k_ms, catalog_10k_ms: left berth serve on Garage (three nodes on this \
         host, replication factor 3) + PostgreSQL, right docker-registry 2.8 (s3 driver) on the \
         same Garage; {COUNT} tags of one repository, listed with ?n=100000 following Link \
         pages; {COUNT} + 1 repositories, listed with ?n=1000 page after page; every list \
         counted; interleaved"
    ));
    let mut capped = 0;
    for rep in 1..=reps {
        for s in [&berth, &dist] {
            let is_berth = s.kind == Kind::Berth;
            let mut c = Conn::connect(s.port, 0).await?.without_timeouts();
            let t = Instant::now();
            let tags = http::count_tags(&mut c, TAGS_REPO).await?;
            let tags_ms = t.elapsed().as_secs_f64() * 1e3;
            if tags != COUNT {
                bail!("{} listed {tags} tags, want {COUNT}", s.kind.name());
            }
            let t = Instant::now();
            let catalog_ms =
                match tokio::time::timeout(CATALOG_CAP, count_repositories(&mut c)).await {
                    Ok(repos) => {
                        let repos = repos?;
                        if repos < COUNT + 1 {
                            bail!(
                                "{} listed {repos} repositories, want {}",
                                s.kind.name(),
                                COUNT + 1
                            );
                        }
                        t.elapsed().as_secs_f64() * 1e3
                    }
                    Err(_) if !is_berth => {
                        capped += 1;
                        CATALOG_CAP.as_secs_f64() * 1e3
                    }
                    Err(_) => bail!("berth's catalog took more than {CATALOG_CAP:?}"),
                };
            progress(&format!(
                "s3_reads rep {rep} {}: tags list {tags_ms:.1} ms, catalog {catalog_ms:.1} ms",
                s.kind.name()
            ));
            table.add("tags_list_10k_ms", is_berth, tags_ms);
            table.add("catalog_10k_ms", is_berth, catalog_ms);
        }
    }
    if capped > 0 {
        table.notes.push(format!(
            "catalog_10k_ms: docker-registry's catalog was stopped at {} s in {capped} of \
             {reps} rep(s) (it lists the bucket again for each page): its value is that cap, \
             a lower bound of its time, and berth's ratio an upper bound",
            CATALOG_CAP.as_secs()
        ));
    }
    Ok(())
}

/// Pushes `img` as `TAGS_REPO:t00000`, tags it `COUNT - 1` times more, and makes
/// `COUNT` repositories of it (blobs mounted from `TAGS_REPO`).
async fn fill(s: &Server, img: &SmallImage) -> Result<()> {
    let t0 = Instant::now();
    progress(&format!(
        "s3_reads: filling {} with {COUNT} tags and {COUNT} repositories",
        s.kind.name()
    ));
    let mut c = Conn::connect(s.port, 0).await?;
    http::upload_blob(&mut c, TAGS_REPO, &img.layer_digest, &img.layer).await?;
    http::upload_blob(&mut c, TAGS_REPO, &img.config_digest, &img.config).await?;
    let port = s.port;
    let tasks: Vec<_> = (0..FILL_CONNECTIONS)
        .map(|k| {
            let img = img.clone();
            tokio::spawn(async move {
                let mut c = Conn::connect(port, 0).await?.without_timeouts();
                for i in (k..COUNT).step_by(FILL_CONNECTIONS) {
                    http::put_manifest(
                        &mut c,
                        TAGS_REPO,
                        &format!("t{i:05}"),
                        data::OCI_MANIFEST,
                        &img.manifest,
                    )
                    .await?;
                    let repo = format!("bench/r{i:05}");
                    for d in [&img.layer_digest, &img.config_digest] {
                        mount(&mut c, &repo, d).await?;
                    }
                    http::put_manifest(&mut c, &repo, "v1", data::OCI_MANIFEST, &img.manifest)
                        .await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await
            .context("fill task panicked")?
            .with_context(|| format!("filling {}", s.kind.name()))?;
    }
    progress(&format!(
        "s3_reads: {} filled in {:.0} s",
        s.kind.name(),
        t0.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Links blob `digest` of `TAGS_REPO` into `repo` (`201`).
async fn mount(c: &mut Conn, repo: &str, digest: &str) -> Result<()> {
    let path = format!("/v2/{repo}/blobs/uploads/?mount={digest}&from={TAGS_REPO}");
    let what = format!("POST {path}");
    c.request("POST", &path, &[], &[])
        .await
        .with_context(|| what.clone())?
        .expect(&[201], &what)?;
    Ok(())
}

/// Counts the registry's repositories, `/v2/_catalog?n=1000` page after page.
async fn count_repositories(c: &mut Conn) -> Result<usize> {
    http::count_listed(c, "/v2/_catalog?n=1000", "repositories").await
}

/// One manifest GET per repository of the first `MANIFEST_REPOS`, as raw requests.
fn manifest_requests(port: u16) -> Vec<Vec<u8>> {
    (0..MANIFEST_REPOS)
        .map(|i| {
            format!(
                "GET /v2/bench/r{i:05}/manifests/v1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
                 User-Agent: {USER_AGENT}\r\nAccept: {MANIFEST_ACCEPT}\r\n\r\n"
            )
            .into_bytes()
        })
        .collect()
}
