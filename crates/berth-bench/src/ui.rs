//! Phases `ui_pages` and `ui_paint`: the speed of berth's web pages (the issue: "every
//! page renders server-side in under 5 ms at the median for an image with 1,000
//! packages, and the details page of the real Debian test image is first painted in
//! Chromium in under 300 ms on loopback"). berth only: no peer registry has pages.
//!
//! `ui_pages`: one berth instance whose data folder got OSV records against a third
//! of the packages first (`berth registry vulndb import --root` between a first start
//! that makes the folder and the timed one; half of the records have a fix),
//! then an image of 1,000 packages (a synthetic dpkg database) pushed as
//! `bench/ui:1.0` beside an older `bench/ui:0.9` (so the packages tab has a diff to
//! show), and images of 50 and 5,000 packages as `bench/ui-small:1.0` and
//! `bench/ui-large:1.0` (their overview, security and packages tabs are timed too:
//! long lists are paged, so size should not matter). Once the catalog has
//! inventoried them, every page and tab is requested over
//! one keep-alive connection on 127.0.0.1, 20 times untimed, then at least 200 times
//! timed (request written to body read); median and p90 per page. The table gets the
//! worst page's median (the target) and p90; the notes list every page.
//!
//! `ui_paint`: the real Debian test image (a `debootstrap --variant=minbase bookworm`
//! root, made once in the work folder: needs root and deb.debian.org on the first run)
//! pushed as `library/debian:12`; crates/berth/tests/ui/drive.mjs `--bench` opens its
//! details page in Debian's Chromium in a fresh browser context each time (nothing
//! cached) and reads `performance.getEntriesByType('paint')`: first contentful paint,
//! median of at least 20 loads after one untimed one.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::client::{put_blob, run_copy, Tool, OCI_CONFIG, OCI_LAYER_GZIP};
use crate::data::OCI_MANIFEST;
use crate::http::Conn;
use crate::local::{go_arch, tar_dir, tar_end, tar_file};
use crate::progress;
use crate::report::{fmt_num, median, Table};
use crate::server::{Env, Kind, Server};

const PACKAGES: usize = 1000;
/// The sizes the paging is checked across.
const SMALL: usize = 50;
const LARGE: usize = 5000;
const REPO: &str = "bench/ui";
const WARMUP: usize = 20;
const TIMED: usize = 200;
const PAINT_RUNS: usize = 20;
const SCAN_TIMEOUT: Duration = Duration::from_secs(300);
const OS_RELEASE: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nID=debian\n";

/// drive.mjs and its node_modules (`npm ci` there: scripts/install-peers.sh).
fn ui_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../berth/tests/ui")
}

/// `ui_pages_worst_median_ms`, `ui_pages_worst_p90_ms`.
pub async fn pages_phase(env: &Env, table: &mut Table, data_dir: &Path) -> Result<()> {
    let layout = data_dir.join("ui-pages-layout");
    let _ = fs::remove_dir_all(&layout);
    fs::create_dir_all(layout.join("blobs/sha256"))?;
    let new = image(&layout, "1.0", PACKAGES, "1.0-1")?;
    let old = image(&layout, "0.9", PACKAGES - 10, "0.9-1")?;
    let small = image(&layout, "small", SMALL, "1.0-1")?;
    let large = image(&layout, "large", LARGE, "1.0-1")?;
    write_index(
        &layout,
        &[
            ("1.0", &new),
            ("0.9", &old),
            ("small", &small),
            ("large", &large),
        ],
    )?;
    let osv = data_dir.join("ui-pages-osv");
    let _ = fs::remove_dir_all(&osv);
    fs::create_dir_all(&osv)?;
    for i in (0..PACKAGES).step_by(3) {
        let mut events = vec![serde_json::json!({"introduced": "0"})];
        if i % 2 == 0 {
            events.push(serde_json::json!({"fixed": "1.0-2"}));
        }
        let record = serde_json::json!({
            "id": format!("DEBIAN-CVE-2099-{i:05}"), "modified": "2026-11-01T00:00:00Z",
            "aliases": [format!("CVE-2099-{i:05}")],
            "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
            "affected": [{"package": {"ecosystem": "Debian:12", "name": format!("{}-src", package_name(i))},
                "ranges": [{"type": "ECOSYSTEM", "events": events}]}],
        });
        fs::write(osv.join(format!("{i}.json")), record.to_string())?;
    }
    let root = env.storage.join("ui-pages");
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(&root)?;
    // The import needs a registry folder: one start makes it; then the data goes in
    // offline and the server starts again on it.
    Server::start(env, Kind::Berth, Some(&root))?.stop();
    let out = Command::new(&env.berth)
        .args(["registry", "--root"])
        .arg(&root)
        .args(["vulndb", "import"])
        .arg(&osv)
        .stdin(Stdio::null())
        .output()
        .context("running berth registry vulndb import")?;
    if !out.status.success() {
        bail!(
            "berth registry vulndb import: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let server = Server::start(env, Kind::Berth, Some(&root))?;
    let home = env.run.join("homes/ui-pages");
    fs::create_dir_all(&home)?;
    let scale = |size: &str| format!("{REPO}-{size}");
    for (repo, from_tag, tag, digest) in [
        (REPO.to_string(), "0.9", "0.9", &old),
        (REPO.to_string(), "1.0", "1.0", &new),
        (scale("small"), "small", "1.0", &small),
        (scale("large"), "large", "1.0", &large),
    ] {
        let from = format!("oci:{}:{from_tag}", layout.display());
        let to = format!("docker://127.0.0.1:{}/{repo}:{tag}", server.port);
        run_copy(env, Tool::Berth, &from, &to, &home)?;
        wait_inventory(server.port, &repo, digest).await?;
    }
    let details = format!("/repository/{REPO}/manifest/{new}");
    let mut pages: Vec<(String, String)> = vec![
        ("search".into(), "/".into()),
        ("search_text".into(), "/?q=bigpkg".into()),
        ("search_package".into(), "/?package=bigpkg-0500".into()),
        ("search_cve".into(), "/?q=CVE-2099-00300".into()),
        ("repository".into(), format!("/repository/{REPO}")),
        ("signin".into(), "/signin".into()),
    ];
    for tab in [
        "overview",
        "security",
        "packages",
        "containerfile",
        "tags",
        "signatures",
        "sbom",
    ] {
        pages.push((format!("tab_{tab}"), format!("{details}?tab={tab}")));
    }
    pages.push((
        "tab_security_fixable".into(),
        format!("{details}?tab=security&fixable=1"),
    ));
    pages.push((
        "tab_packages_page5_by_version".into(),
        format!("{details}?tab=packages&page=5&sort=version"),
    ));
    pages.push((
        "tab_packages_filtered".into(),
        format!("{details}?tab=packages&pq=bigpkg-05"),
    ));
    // The same tabs of a 50- and a 5,000-package image: long lists are paged, so
    // the large one should cost what the small one does.
    for (size, digest) in [("small", &small), ("large", &large)] {
        for tab in ["overview", "security", "packages"] {
            pages.push((
                format!("{size}_{tab}"),
                format!("/repository/{}/manifest/{digest}?tab={tab}", scale(size)),
            ));
        }
        pages.push((
            format!("{size}_packages_by_version"),
            format!(
                "/repository/{}/manifest/{digest}?tab=packages&sort=version",
                scale(size)
            ),
        ));
    }
    let mut conn = Conn::connect(server.port, 256 * 1024).await?;
    let mut lines = Vec::new();
    let (mut worst_median, mut worst_p90) = (0.0f64, 0.0f64);
    for (name, path) in &pages {
        for _ in 0..WARMUP {
            let r = conn.request("GET", path, &[], b"").await?;
            if r.head.status != 200 {
                table.error(
                    "ui_pages_worst_median_ms",
                    "berth",
                    format!("GET {path} answered {}", r.head.status),
                );
                break;
            }
        }
        let mut ms = Vec::with_capacity(TIMED);
        let mut bytes = 0;
        for _ in 0..TIMED {
            let t0 = Instant::now();
            let r = conn.request("GET", path, &[], b"").await?;
            ms.push(t0.elapsed().as_secs_f64() * 1e3);
            bytes = r.body.len();
        }
        ms.sort_by(f64::total_cmp);
        let m = median(&ms).unwrap_or(0.0);
        let p90 = ms[(ms.len() * 9 / 10).min(ms.len() - 1)];
        progress(&format!(
            "ui_pages {name}: median {} ms, p90 {} ms, {bytes} bytes",
            fmt_num(m),
            fmt_num(p90)
        ));
        lines.push(format!(
            "{name} `{}` {} / {} ms ({} KiB)",
            path.replace(&new, "DIGEST")
                .replace(&small, "SMALL")
                .replace(&large, "LARGE"),
            fmt_num(m),
            fmt_num(p90),
            bytes / 1024
        ));
        worst_median = worst_median.max(m);
        worst_p90 = worst_p90.max(p90);
    }
    table.add("ui_pages_worst_median_ms", true, worst_median);
    table.add("ui_pages_worst_p90_ms", true, worst_p90);
    table.notes.push(format!(
        "ui_pages_*: berth only (no peer registry has web pages: the docker-registry column \
         stays empty). An image of {PACKAGES} packages (synthetic dpkg database, {} OSV \
         findings, a previous tag for the diff); each page {TIMED} timed GETs on one \
         keep-alive loopback connection after {WARMUP} untimed; the rows are the worst \
         page's median and p90 (the small_* and large_* pages: the same tabs of a {SMALL}- and \
         a {LARGE}-package image, also counted). Per page, median / p90: {}",
        PACKAGES.div_ceil(3),
        lines.join("; ")
    ));
    Ok(())
}

/// `ui_paint_fcp_ms`.
pub async fn paint_phase(env: &Env, table: &mut Table, data_dir: &Path) -> Result<()> {
    let drive = ui_dir().join("drive.mjs");
    if !ui_dir().join("node_modules/playwright-core").is_dir() {
        bail!(
            "{} has no node_modules: run scripts/install-peers.sh (npm ci there, chromium)",
            ui_dir().display()
        );
    }
    let layer = debian_layer(data_dir)?;
    let layout = data_dir.join("ui-paint-layout");
    let _ = fs::remove_dir_all(&layout);
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs)?;
    let gz = fs::read(&layer)?;
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut raw)?;
    let manifest = manifest(
        &blobs,
        &raw,
        &gz,
        serde_json::json!({
            "org.opencontainers.image.title": "Debian 12 minbase",
            "org.opencontainers.image.description": "Debian bookworm as debootstrap --variant=minbase makes it",
        }),
    )?;
    write_index(&layout, &[("12", &manifest)])?;
    let server = Server::start(env, Kind::Berth, None)?;
    let home = env.run.join("homes/ui-paint");
    fs::create_dir_all(&home)?;
    let from = format!("oci:{}:12", layout.display());
    let to = format!("docker://127.0.0.1:{}/library/debian:12", server.port);
    run_copy(env, Tool::Berth, &from, &to, &home)?;
    let packages = wait_inventory(server.port, "library/debian", &manifest).await?;
    let url = format!(
        "http://127.0.0.1:{}/repository/library/debian/manifest/{manifest}",
        server.port
    );
    let config = env.run.join("ui-paint.json");
    fs::write(
        &config,
        serde_json::to_vec(&serde_json::json!({"bench": {"url": url, "runs": PAINT_RUNS}}))?,
    )?;
    let out = Command::new("node")
        .arg(&drive)
        .arg("--bench")
        .arg(&config)
        .current_dir(ui_dir())
        .stdin(Stdio::null())
        .output()
        .context("running node (Node.js 18 or later)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "drive.mjs --bench: {}{}",
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: serde_json::Value = serde_json::from_str(stdout.trim())
        .with_context(|| format!("drive.mjs --bench printed {stdout}"))?;
    let fcp: Vec<f64> = v["fcp_ms"]
        .as_array()
        .context("no fcp_ms")?
        .iter()
        .filter_map(|x| x.as_f64())
        .collect();
    for t in &fcp {
        table.add("ui_paint_fcp_ms", true, *t);
    }
    let version = Command::new("chromium")
        .arg("--version")
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    table.notes.push(format!(
        "ui_paint_fcp_ms: berth only (no peer to compare). First contentful paint of the \
         details page of the real Debian 12 image (debootstrap minbase, {packages} packages) \
         in headless {version} (drive.mjs --bench: a fresh browser context per load, \
         nothing cached, loopback), {} loads after one untimed; median (min–max)",
        fcp.len()
    ));
    Ok(())
}

fn package_name(i: usize) -> String {
    format!("bigpkg-{i:04}")
}

/// Writes the image of `n` packages (versions `version`) into the layout; returns the
/// manifest's digest.
fn image(layout: &Path, tag: &str, n: usize, version: &str) -> Result<String> {
    let mut status = String::new();
    for i in 0..n {
        let name = package_name(i);
        status.push_str(&format!(
            "Package: {name}\nStatus: install ok installed\nPriority: optional\nSection: misc\n\
             Installed-Size: {}\nMaintainer: Bench <bench@example.org>\nArchitecture: {}\n\
             Source: {name}-src\nVersion: {version}\nDepends: libc6 (>= 2.36)\n\
             Description: package number {i} of the ui_pages benchmark\n\n",
            100 + i,
            go_arch()
        ));
    }
    let mut tar = Vec::new();
    for d in ["etc/", "var/", "var/lib/", "var/lib/dpkg/"] {
        tar_dir(&mut tar, d, 0o755)?;
    }
    tar_file(&mut tar, "etc/os-release", 0o644, OS_RELEASE.as_bytes())?;
    tar_file(&mut tar, "var/lib/dpkg/status", 0o644, status.as_bytes())?;
    tar_file(
        &mut tar,
        "etc/berth-bench-tag",
        0o644,
        format!("{tag}\n").as_bytes(),
    )?;
    tar_end(&mut tar)?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    gz.write_all(&tar)?;
    let gz = gz.finish()?;
    manifest(
        &layout.join("blobs/sha256"),
        &tar,
        &gz,
        serde_json::json!({
            "org.opencontainers.image.title": format!("ui bench {tag}"),
            "org.opencontainers.image.description": format!("an image of {n} packages"),
            "org.opencontainers.image.version": tag,
        }),
    )
}

/// Config (with `labels` and a short history) and manifest of one gzip layer.
fn manifest(blobs: &Path, tar: &[u8], gz: &[u8], labels: serde_json::Value) -> Result<String> {
    use sha2::Digest as _;
    let diff_id = format!("sha256:{:x}", sha2::Sha256::digest(tar));
    let layer = put_blob(blobs, gz)?;
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": go_arch(), "os": "linux", "created": "2026-11-20T10:00:00Z",
        "config": {"Cmd": ["bash"], "Labels": labels},
        "history": [
            {"created": "2026-11-20T10:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:bench in / "},
            {"created": "2026-11-20T10:00:00Z", "created_by": "/bin/sh -c #(nop)  CMD [\"bash\"]", "empty_layer": true},
        ],
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }))?;
    let config_digest = put_blob(blobs, &config)?;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": layer, "size": gz.len()}],
    }))?;
    put_blob(blobs, &manifest)
}

/// index.json and oci-layout naming each manifest (`tag`, digest).
fn write_index(layout: &Path, tags: &[(&str, &String)]) -> Result<()> {
    let blobs = layout.join("blobs/sha256");
    let mut manifests = Vec::new();
    for (tag, digest) in tags {
        let size = fs::metadata(blobs.join(digest.trim_start_matches("sha256:")))?.len();
        manifests.push(serde_json::json!({
            "mediaType": OCI_MANIFEST, "digest": digest, "size": size,
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }));
    }
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": manifests}))?,
    )?;
    fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion": "1.0.0"}"#,
    )?;
    Ok(())
}

/// Polls the image's package list until the catalog answers 200 (its package count).
async fn wait_inventory(port: u16, repo: &str, digest: &str) -> Result<usize> {
    let path = format!("/api/v1/repositories/{repo}/manifests/{digest}/packages?per_page=1");
    let mut c = Conn::connect(port, 64 * 1024).await?;
    let t0 = Instant::now();
    loop {
        let r = c.request("GET", &path, &[], b"").await?;
        match r.head.status {
            200 => {
                let v: serde_json::Value = serde_json::from_slice(&r.body)?;
                return Ok(v["total"].as_u64().unwrap_or(0) as usize);
            }
            202 if t0.elapsed() < SCAN_TIMEOUT => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            s => bail!(
                "{repo}@{digest}: GET {path} answered {s}: {}",
                String::from_utf8_lossy(&r.body)
            ),
        }
    }
}

/// The Debian test image's layer: a `debootstrap --variant=minbase bookworm` root
/// tarred with gzip, made once in `data_dir` (the first run needs root and
/// deb.debian.org).
fn debian_layer(data_dir: &Path) -> Result<PathBuf> {
    let layer = data_dir.join("debian-bookworm-minbase.tar.gz");
    if layer.is_file() {
        return Ok(layer);
    }
    let root = data_dir.join("debian-bookworm-minbase");
    if !root.join("var/lib/dpkg/status").is_file() {
        let partial = data_dir.join("debian-bookworm-minbase.partial");
        let _ = fs::remove_dir_all(&partial);
        progress("ui_paint: debootstrap --variant=minbase bookworm (once)");
        let out = Command::new("debootstrap")
            .args(["--variant=minbase", "bookworm"])
            .arg(&partial)
            .arg("http://deb.debian.org/debian")
            .output()
            .context("running debootstrap (Debian package debootstrap)")?;
        if !out.status.success() {
            bail!(
                "debootstrap failed (it needs root and deb.debian.org): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        fs::rename(&partial, &root)?;
    }
    let partial = data_dir.join("debian-bookworm-minbase.tar.gz.partial");
    let out = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .args(["--use-compress-program", "gzip -6", "-cf"])
        .arg(&partial)
        .arg(".")
        .output()
        .context("running tar")?;
    if !out.status.success() {
        bail!("tar: {}", String::from_utf8_lossy(&out.stderr));
    }
    fs::rename(&partial, &layer)?;
    Ok(layer)
}
