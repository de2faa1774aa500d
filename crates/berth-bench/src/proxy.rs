//! Phase `proxy_pull`: berth as a pull-through cache of a docker-registry upstream.
//! Each image (a config and four 4 MiB layers of its own) is pulled as a client does
//! (manifest by tag, then every blob, on one connection):
//! - `proxy_miss_ms`: through the cache with nothing cached (berth column) / straight
//!   from the upstream (other column); target: the miss costs at most 10% more than
//!   the upstream's own time;
//! - `proxy_hit_ms`: through the cache again (berth column) / the same image pushed to
//!   a plain berth and pulled from it (other column, also berth); target: a hit is as
//!   fast as local content (at most 10% more);
//! - `proxy_miss_cpu_ms`: the cache's CPU time for a miss (berth column) / the
//!   upstream's for a direct pull (other column), per image, summed over the images:
//!   on a machine whose cores the client, the cache and the upstream share, the
//!   miss's time is bounded below by this work;
//! - `proxy_miss_far_ms`: a miss as in `proxy_miss_ms`, with the upstream behind a
//!   [`Relay`] that makes it [`FAR_RTT`] away (a registry in the same region), through
//!   a second, empty cache / straight from the upstream through the same relay.
//!
//! Every pulled byte is checked against what was pushed.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::data::{sha256_digest, XorShift, OCI_MANIFEST};
use crate::http::{self, Conn, MANIFEST_ACCEPT};
use crate::progress;
use crate::relay::Relay;
use crate::report::Table;
use crate::server::{Env, Kind, Server};

const LAYERS: usize = 4;
const LAYER_BYTES: usize = 4 << 20;
const PREFIX: &str = "up";
/// The far upstream's round trip.
const FAR_RTT: Duration = Duration::from_millis(10);

struct Image {
    repo: String,
    blobs: Vec<(String, Vec<u8>)>,
    manifest: Vec<u8>,
}

fn image(i: usize) -> Image {
    let mut rng = XorShift::new(0x9E00_0000 + i as u64);
    let mut blobs = Vec::new();
    let config = format!("{{\"architecture\":\"amd64\",\"os\":\"linux\",\"p\":{i}}}").into_bytes();
    blobs.push((sha256_digest(&config), config));
    for _ in 0..LAYERS {
        let mut layer = vec![0u8; LAYER_BYTES];
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
    Image {
        repo: format!("bench/p{i}"),
        blobs,
        manifest,
    }
}

async fn push(port: u16, img: &Image) -> Result<()> {
    let mut c = Conn::connect(port, 0).await?;
    for (d, b) in &img.blobs {
        http::upload_blob_in_put(&mut c, &img.repo, d, b).await?;
    }
    http::put_manifest(&mut c, &img.repo, "v1", OCI_MANIFEST, &img.manifest).await
}

/// Pulls `repo:v1` (manifest, then each blob) and checks every byte; milliseconds.
async fn pull(port: u16, repo: &str, img: &Image) -> Result<f64> {
    let t = Instant::now();
    let mut c = Conn::connect(port, 0).await?;
    let path = format!("/v2/{repo}/manifests/v1");
    let m = c
        .request("GET", &path, &[("Accept", MANIFEST_ACCEPT)], &[])
        .await?
        .expect(&[200], &path)?;
    if m.body != img.manifest {
        bail!("{path}: another manifest");
    }
    for (d, bytes) in &img.blobs {
        let path = format!("/v2/{repo}/blobs/{d}");
        let mut got = Vec::with_capacity(bytes.len());
        c.write_all(c.request_head("GET", &path, &[], None).as_bytes())
            .await?;
        let head = c.read_head().await?;
        if head.status != 200 {
            bail!("{path}: HTTP {}", head.status);
        }
        c.read_body(&head, &mut |b: &[u8]| got.extend_from_slice(b))
            .await?;
        if got != *bytes {
            bail!("{path}: other bytes ({} of {})", got.len(), bytes.len());
        }
    }
    Ok(t.elapsed().as_secs_f64() * 1000.0)
}

pub async fn proxy_phase(env: &Env, table: &mut Table, reps: usize) -> Result<()> {
    let images: Vec<Image> = (0..reps.max(1)).map(image).collect();
    let upstream = Server::start(env, Kind::Distribution, None)?;
    let local = Server::start(env, Kind::Berth, None)?;
    for img in &images {
        push(upstream.port, img).await.context("pushing upstream")?;
        push(local.port, img).await.context("pushing to berth")?;
    }
    let far = Relay::start(upstream.port, FAR_RTT / 2).await?;
    let cache = cache_of(env, "proxy.toml", upstream.port)?;
    let far_cache = cache_of(env, "proxy-far.toml", far.port)?;
    let (mut cache_cpu, mut upstream_cpu) = (0.0, 0.0);
    for img in &images {
        let cached_name = format!("{PREFIX}/{}", img.repo);
        // The upstream first, so that both read its files from the page cache.
        let before = upstream.cpu_seconds();
        let direct = pull(upstream.port, &img.repo, img).await?;
        upstream_cpu += upstream.cpu_seconds() - before;
        let before = cache.cpu_seconds();
        let miss = pull(cache.port, &cached_name, img).await?;
        cache_cpu += cache.cpu_seconds() - before;
        let hit = pull(cache.port, &cached_name, img).await?;
        let plain = pull(local.port, &img.repo, img).await?;
        let far_direct = pull(far.port, &img.repo, img).await?;
        let far_miss = pull(far_cache.port, &cached_name, img).await?;
        progress(&format!(
            "proxy_pull: {}: upstream {direct:.1} ms, miss {miss:.1} ms, hit {hit:.1} ms, \
             local {plain:.1} ms; {} ms away: upstream {far_direct:.1} ms, miss {far_miss:.1} ms",
            img.repo,
            FAR_RTT.as_millis()
        ));
        table.add("proxy_miss_ms", true, miss);
        table.add("proxy_miss_ms", false, direct);
        table.add("proxy_hit_ms", true, hit);
        table.add("proxy_hit_ms", false, plain);
        table.add("proxy_miss_far_ms", true, far_miss);
        table.add("proxy_miss_far_ms", false, far_direct);
    }
    // Clock ticks (10 ms) are too coarse for one pull: the sums over all of them.
    let per_image = 1000.0 / images.len() as f64;
    table.add("proxy_miss_cpu_ms", true, cache_cpu * per_image);
    table.add("proxy_miss_cpu_ms", false, upstream_cpu * per_image);
    Ok(())
}

/// A berth whose `[[proxy]]` under [`PREFIX`] is the registry at `upstream_port`.
fn cache_of(env: &Env, file: &str, upstream_port: u16) -> Result<Server> {
    let config = env.run.join(file);
    std::fs::write(
        &config,
        format!("[[proxy]]\nprefix = \"{PREFIX}\"\nurl = \"http://127.0.0.1:{upstream_port}\"\n"),
    )?;
    let config = config.to_str().context("a UTF-8 path")?;
    Server::start_with(env, Kind::Berth, None, &["--config", config])
}
