//! Phase `gc`: garbage collection of a registry holding `n` manifests and `5n` blobs
//! (each manifest: a config and four layers of its own), half of them garbage
//! (pushed by digest, never tagged), in 100-manifest repositories.
//!
//! - berth collects online (`berth registry gc --grace 0s --root`, the collector a
//!   second process sharing the data folder with the running server) while pulls
//!   (manifest by tag + config blob) run: rows `gc_pull_rps` (berth: during the
//!   collection; second column: berth before it; target ≥ 0.8) and `gc_collect_s`.
//! - docker-registry must be stopped: `docker-registry garbage-collect
//!   --delete-untagged` on the same content, timed, into `gc_collect_s` (target:
//!   berth ≥ 10x faster).
//!
//! The run's report is checked (exactly the untagged manifests and their blobs went),
//! and the tagged images still pull afterwards.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::data::{sha256_digest, XorShift, OCI_MANIFEST};
use crate::http::{self, Conn, MANIFEST_ACCEPT};
use crate::progress;
use crate::report::Table;
use crate::server::{distribution_config, Env, Kind, Server};

const PER_REPO: usize = 100;
const LAYERS: usize = 4;
const SETUP_CONNECTIONS: usize = 8;
const PULL_CONNECTIONS: usize = 4;
/// Pull rate before the collection is measured over this long.
const BASELINE: Duration = Duration::from_secs(3);

/// One manifest of the data set, with its blobs.
struct Image {
    repo: String,
    tagged: bool,
    reference: String,
    blobs: Vec<(String, Vec<u8>)>,
    manifest: Vec<u8>,
}

fn image(i: usize) -> Image {
    let mut rng = XorShift::new(0x6C00_0000 + i as u64);
    let mut blobs = Vec::new();
    let config = format!("{{\"architecture\":\"amd64\",\"os\":\"linux\",\"n\":{i}}}").into_bytes();
    blobs.push((sha256_digest(&config), config));
    for _ in 0..LAYERS {
        let mut layer = vec![0u8; 128];
        rng.fill(&mut layer);
        blobs.push((sha256_digest(&layer), layer));
    }
    let desc = |mt: &str, (d, b): &(String, Vec<u8>)| serde_json::json!({"mediaType": mt, "digest": d, "size": b.len()});
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": desc("application/vnd.oci.image.config.v1+json", &blobs[0]),
        "layers": blobs[1..].iter().map(|b| desc("application/vnd.oci.image.layer.v1.tar", b)).collect::<Vec<_>>(),
    }))
    .expect("JSON of literals");
    let tagged = i.is_multiple_of(2);
    Image {
        repo: format!("gc/r{:03}", i / PER_REPO),
        tagged,
        reference: if tagged {
            format!("t{i}")
        } else {
            sha256_digest(&manifest)
        },
        blobs,
        manifest,
    }
}

async fn populate(port: u16, images: &Arc<Vec<Image>>) -> Result<()> {
    let tasks: Vec<_> = (0..SETUP_CONNECTIONS)
        .map(|k| {
            let images = images.clone();
            tokio::spawn(async move {
                let mut c = Conn::connect(port, 0).await?;
                for img in images.iter().skip(k).step_by(SETUP_CONNECTIONS) {
                    for (d, b) in &img.blobs {
                        http::upload_blob(&mut c, &img.repo, d, b).await?;
                    }
                    http::put_manifest(
                        &mut c,
                        &img.repo,
                        &img.reference,
                        OCI_MANIFEST,
                        &img.manifest,
                    )
                    .await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await.context("a setup task panicked")??;
    }
    Ok(())
}

/// Pulls (manifest by tag, then its config blob) of tagged images on
/// [`PULL_CONNECTIONS`] connections until `stop`, counting them in `done`.
fn start_pulls(
    port: u16,
    images: &Arc<Vec<Image>>,
    done: &Arc<AtomicU64>,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Result<()>>> {
    (0..PULL_CONNECTIONS)
        .map(|k| {
            let (images, done, stop) = (images.clone(), done.clone(), stop.clone());
            tokio::spawn(async move {
                let mut c = Conn::connect(port, 0).await?;
                let tagged: Vec<&Image> = images.iter().filter(|i| i.tagged).collect();
                let mut n = k;
                while !stop.load(Ordering::Relaxed) {
                    let img = tagged[n % tagged.len()];
                    n += PULL_CONNECTIONS * 7 + 1;
                    let path = format!("/v2/{}/manifests/{}", img.repo, img.reference);
                    c.request("GET", &path, &[("Accept", MANIFEST_ACCEPT)], &[])
                        .await?
                        .expect(&[200], &path)?;
                    let path = format!("/v2/{}/blobs/{}", img.repo, img.blobs[0].0);
                    c.request("GET", &path, &[], &[])
                        .await?
                        .expect(&[200], &path)?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                anyhow::Ok(())
            })
        })
        .collect()
}

pub async fn gc_phase(env: &Env, table: &mut Table, manifests: usize) -> Result<()> {
    let images = Arc::new((0..manifests).map(image).collect::<Vec<_>>());
    let garbage = images.iter().filter(|i| !i.tagged).count();
    progress(&format!(
        "gc: {manifests} manifests, {} blobs ({garbage} manifests and {} blobs garbage)",
        manifests * (LAYERS + 1),
        garbage * (LAYERS + 1)
    ));

    // berth: online, while pulls run.
    let b = Server::start(env, Kind::Berth, None)?;
    let t0 = Instant::now();
    populate(b.port, &images).await?;
    progress(&format!(
        "gc: berth populated in {:.1} s",
        t0.elapsed().as_secs_f64()
    ));
    // A zero grace spares what was stored in the current second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (done, stop) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let pulls = start_pulls(b.port, &images, &done, &stop);
    tokio::time::sleep(Duration::from_millis(500)).await; // warm up
    let n0 = done.load(Ordering::Relaxed);
    tokio::time::sleep(BASELINE).await;
    let before = (done.load(Ordering::Relaxed) - n0) as f64 / BASELINE.as_secs_f64();
    let n1 = done.load(Ordering::Relaxed);
    let t1 = Instant::now();
    let out = Command::new(&env.berth)
        .args(["registry", "gc", "--grace", "0s", "--root"])
        .arg(b.root())
        .env_remove("BERTH_ROOT")
        .stdin(Stdio::null())
        .output()
        .context("running berth registry gc")?;
    let took = t1.elapsed().as_secs_f64();
    let during = (done.load(Ordering::Relaxed) - n1) as f64 / took;
    stop.store(true, Ordering::Relaxed);
    for p in pulls {
        p.await.context("a pull task panicked")??;
    }
    if !out.status.success() {
        bail!(
            "berth registry gc: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("berth registry gc's report")?;
    if report["manifests_removed"] != garbage || report["blobs_removed"] != garbage * (LAYERS + 1) {
        bail!(
            "berth registry gc removed {} manifests and {} blobs, expected {garbage} and {}",
            report["manifests_removed"],
            report["blobs_removed"],
            garbage * (LAYERS + 1)
        );
    }
    check_pulls(b.port, &images).await?;
    progress(&format!(
        "gc: berth collected in {took:.2} s; pulls {before:.0}/s before, {during:.0}/s during"
    ));
    table.add("gc_pull_rps", true, during);
    table.add("gc_pull_rps", false, before);
    table.add("gc_collect_s", true, took);
    drop(b);

    // docker-registry: populate, stop, garbage-collect.
    let mut d = Server::start(env, Kind::Distribution, None)?;
    let t0 = Instant::now();
    populate(d.port, &images).await?;
    progress(&format!(
        "gc: docker-registry populated in {:.1} s",
        t0.elapsed().as_secs_f64()
    ));
    let root = d.root().to_path_buf();
    let keep = root.with_extension("kept");
    let _ = std::fs::remove_dir_all(&keep);
    std::fs::rename(&root, &keep)?; // the stop removes the root: keep the content
    std::fs::create_dir_all(&root)?;
    d.stop();
    let took = distribution_gc(env, &keep)?;
    progress(&format!(
        "gc: docker-registry garbage-collect took {took:.2} s (registry stopped)"
    ));
    table.add("gc_collect_s", false, took);
    let _ = std::fs::remove_dir_all(&keep);
    Ok(())
}

/// `docker-registry garbage-collect --delete-untagged` on `root`; its wall time.
fn distribution_gc(env: &Env, root: &Path) -> Result<f64> {
    let config = env.run.join("gc-docker-registry.yml");
    std::fs::write(&config, distribution_config(root, "127.0.0.1:0"))?;
    let log = std::fs::File::create(env.run.join("gc-docker-registry.log"))?;
    let t = Instant::now();
    let status = Command::new(&env.docker_registry)
        .args(["garbage-collect", "--delete-untagged"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()
        .context("running docker-registry garbage-collect")?;
    let took = t.elapsed().as_secs_f64();
    if !status.success() {
        bail!("docker-registry garbage-collect: {status} (see run/gc-docker-registry.log)");
    }
    Ok(took)
}

/// Every tagged image still pulls; a sample of the untagged ones is gone.
async fn check_pulls(port: u16, images: &[Image]) -> Result<()> {
    let mut c = Conn::connect(port, 0).await?;
    for img in images.iter().step_by(7) {
        let path = format!("/v2/{}/manifests/{}", img.repo, img.reference);
        let resp = c
            .request("GET", &path, &[("Accept", MANIFEST_ACCEPT)], &[])
            .await?;
        match (img.tagged, resp.head.status) {
            (true, 200) if resp.body == img.manifest => {}
            (false, 404) => {}
            (tagged, s) => bail!("after gc, {path} (tagged: {tagged}) answered {s}"),
        }
    }
    Ok(())
}
