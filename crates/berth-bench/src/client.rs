//! Client benchmarks: `berth copy` side by side with `skopeo copy` (the Debian 1.9.3
//! build), interleaved, on a 1 GiB image of 4 gzip layers:
//!
//! - registry to registry (two berth instances, so that the server is not what is
//!   measured; the destination is a fresh instance for every copy, so that neither
//!   tool finds blobs already there);
//! - registry to a fresh OCI layout, and that layout back to a fresh registry.
//!
//! Wall time of the whole process (start to exit) gives MB/s; the peak RSS of the
//! copying process comes from `wait4`.

use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use sha2::{Digest as _, Sha256};

use crate::data::{XorShift, MIB};
use crate::progress;
use crate::report::Table;
use crate::server::{Env, Kind, Server};

const LAYERS: u64 = 4;
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub(crate) const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// One timed run of a process: wall time from spawn to exit, and its peak RSS.
pub(crate) struct Run {
    pub(crate) seconds: f64,
    pub(crate) peak_rss_mib: f64,
}

/// The tools compared.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tool {
    Berth,
    Skopeo,
}

impl Tool {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Tool::Berth => "berth",
            Tool::Skopeo => "skopeo",
        }
    }
}

/// An OCI layout holding one image of `LAYERS` gzip layers, `total` bytes in all,
/// cached in `data_dir`. Layers are gzip with stored (uncompressed) blocks: real gzip
/// that costs nothing to make, so that no tool decides to compress it again.
pub(crate) fn image_layout(data_dir: &Path, total: u64) -> Result<PathBuf> {
    layout(data_dir, total, false)
}

/// [`image_layout`] with every layer a real tar (one file of the random bytes), for
/// tools that unpack layers (podman's storage): the raw layers of the copy benchmark
/// are not tars, so podman could not apply them. Cached apart from the raw one.
pub(crate) fn tar_image_layout(data_dir: &Path, total: u64) -> Result<PathBuf> {
    layout(data_dir, total, true)
}

fn layout(data_dir: &Path, total: u64, tar: bool) -> Result<PathBuf> {
    let suffix = if tar { "-tar" } else { "" };
    let dir = data_dir.join(format!("layout-{}m{suffix}", total / MIB));
    if dir.join("index.json").is_file() {
        return Ok(dir);
    }
    let _ = fs::remove_dir_all(&dir);
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs)?;
    progress(&format!(
        "writing a {} MiB image of {LAYERS} layers in {}",
        total / MIB,
        dir.display()
    ));
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for i in 0..LAYERS {
        let tmp = dir.join(format!("layer-{i}.tmp"));
        let mut uncompressed = Sha256::new();
        {
            let out = BufWriter::new(File::create(&tmp)?);
            let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::none());
            let mut rng = XorShift::new(0xC0_FFEE + i);
            let mut buf = vec![0u8; MIB as usize];
            let mibs = total / LAYERS / MIB;
            if tar {
                let header = crate::local::ustar_header(&format!("data-{i}"), mibs * MIB)?;
                uncompressed.update(header);
                gz.write_all(&header)?;
            }
            for _ in 0..mibs {
                rng.fill(&mut buf);
                uncompressed.update(&buf);
                gz.write_all(&buf)?;
            }
            if tar {
                // The file is whole 512-byte blocks: no padding, just the end marker.
                let end = [0u8; 1024];
                uncompressed.update(end);
                gz.write_all(&end)?;
            }
            gz.finish()?.flush()?;
        }
        let (digest, size) = hash_file(&tmp)?;
        fs::rename(&tmp, blobs.join(digest.trim_start_matches("sha256:")))?;
        diff_ids.push(format!("sha256:{:x}", uncompressed.finalize()));
        layers
            .push(serde_json::json!({"mediaType": OCI_LAYER_GZIP, "digest": digest, "size": size}));
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))?;
    let config_digest = put_blob(&blobs, &config)?;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len()},
        "layers": layers,
    }))?;
    let manifest_digest = put_blob(&blobs, &manifest)?;
    fs::write(
        dir.join("oci-layout"),
        br#"{"imageLayoutVersion": "1.0.0"}"#,
    )?;
    fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": manifest.len(),
                           "annotations": {"org.opencontainers.image.ref.name": "v1"}}],
        }))?,
    )?;
    Ok(dir)
}

pub(crate) fn put_blob(blobs: &Path, bytes: &[u8]) -> Result<String> {
    let digest = format!("sha256:{:x}", Sha256::digest(bytes));
    fs::write(blobs.join(digest.trim_start_matches("sha256:")), bytes)?;
    Ok(digest)
}

fn hash_file(path: &Path) -> Result<(String, u64)> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; MIB as usize];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((format!("sha256:{:x}", h.finalize()), n))
}

/// Runs one copy with `tool` and measures it.
pub(crate) fn run_copy(env: &Env, tool: Tool, from: &str, to: &str, home: &Path) -> Result<Run> {
    run_tool(env, tool, "copy", &["--quiet", from, to], home)
}

/// Runs `tool SUBCOMMAND --insecure-policy --src/dest-tls-verify=false ARGS` and
/// measures it.
fn run_tool(env: &Env, tool: Tool, sub: &str, args: &[&str], home: &Path) -> Result<Run> {
    run_tool_with(env, tool, sub, args, home, &[])
}

/// [`run_tool`] with more environment variables (`GNUPGHOME` for signing).
pub(crate) fn run_tool_with(
    env: &Env,
    tool: Tool,
    sub: &str,
    args: &[&str],
    home: &Path,
    vars: &[(&str, &Path)],
) -> Result<Run> {
    let log = env.run.join(format!("{}-{sub}.log", tool.name()));
    let out = File::create(&log)?;
    let mut cmd = match tool {
        Tool::Berth => {
            let mut c = Command::new(&env.berth);
            c.args([sub, "--insecure-policy"]);
            c
        }
        Tool::Skopeo => {
            let mut c = Command::new("skopeo");
            c.args(["--insecure-policy", sub]);
            c
        }
    };
    cmd.args(["--src-tls-verify=false", "--dest-tls-verify=false"])
        .args(args)
        .env("HOME", home)
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("REGISTRY_AUTH_FILE")
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    timed(
        &mut cmd,
        &log,
        &format!("{} {sub} {}", tool.name(), args.join(" ")),
        "install skopeo: apt-get install -y skopeo",
    )
}

/// Spawns `cmd` (stdin, stdout and stderr already set up; the output going to `log`)
/// and waits for it: wall time from just before the spawn to the exit, peak RSS from
/// `wait4`. A non-zero exit is an error quoting the last line of `log`; `hint` says
/// what to do when the program cannot be started at all.
pub(crate) fn timed(cmd: &mut Command, log: &Path, what: &str, hint: &str) -> Result<Run> {
    let t0 = Instant::now();
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {what} ({hint})"))?;
    let (status, rss_kib) = wait4(child.id())?;
    let seconds = t0.elapsed().as_secs_f64();
    if status != 0 {
        let text = fs::read_to_string(log).unwrap_or_default();
        bail!(
            "{what} failed ({status}): {}",
            text.lines().last().unwrap_or("")
        );
    }
    Ok(Run {
        seconds,
        peak_rss_mib: rss_kib as f64 / 1024.0,
    })
}

/// Waits for `pid`; returns its exit status and peak RSS in KiB.
fn wait4(pid: u32) -> Result<(i32, i64)> {
    let mut status = 0;
    // SAFETY: rusage is plain data, zero is a valid value; wait4 fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our child's; status and usage point to live locals.
    let r = unsafe { libc::wait4(pid as i32, &mut status, 0, &mut usage) };
    if r < 0 {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128
    };
    Ok((code, usage.ru_maxrss))
}

/// The copy rows: `copy_1g_MBps` (registry to registry), `copy_1g_to_oci_MBps`,
/// `copy_1g_from_oci_MBps`, `copy_1g_peak_rss_mib`. Left column berth, right skopeo.
pub fn copy_phase(
    env: &Env,
    table: &mut Table,
    data_dir: &Path,
    total: u64,
    reps: usize,
) -> Result<()> {
    let layout = image_layout(data_dir, total)?;
    let source = Server::start(env, Kind::Berth, None)?;
    let src = format!("docker://127.0.0.1:{}/bench/big:v1", source.port);
    let homes = env.run.join("homes");
    let home = |tag: &str| -> Result<PathBuf> {
        let h = homes.join(tag);
        let _ = fs::remove_dir_all(&h);
        fs::create_dir_all(&h)?;
        Ok(h)
    };
    run_copy(
        env,
        Tool::Berth,
        &format!("oci:{}:v1", layout.display()),
        &src,
        &home("setup")?,
    )?;
    table.notes.push(
        "copy_1g_*: both columns are clients: left `berth copy`, right `skopeo copy` (1.9.3); \
         a 1 GiB image of 4 gzip layers; each copy goes to a fresh berth instance or a fresh \
         layout; MB/s = bytes / wall time of the process"
            .into(),
    );
    let mb = total as f64 / 1e6;
    for rep in 1..=reps {
        for tool in [Tool::Berth, Tool::Skopeo] {
            let h = home(&format!("{}-{rep}", tool.name()))?;
            // registry -> registry
            let mut dest = Server::start(env, Kind::Berth, None)?;
            let to = format!("docker://127.0.0.1:{}/bench/copy:v1", dest.port);
            match run_copy(env, tool, &src, &to, &h) {
                Ok(r) => {
                    progress(&format!(
                        "copy_1g rep {rep} {}: {:.2} s, {:.0} MB/s, peak RSS {:.1} MiB",
                        tool.name(),
                        r.seconds,
                        mb / r.seconds,
                        r.peak_rss_mib
                    ));
                    table.add("copy_1g_MBps", tool == Tool::Berth, mb / r.seconds);
                    table.add("copy_1g_peak_rss_mib", tool == Tool::Berth, r.peak_rss_mib);
                }
                Err(e) => table.error("copy_1g_MBps", tool.name(), format!("{e:#}")),
            }
            dest.stop();
            // registry -> layout
            let dir = env.run.join(format!("layout-{}-{rep}", tool.name()));
            let _ = fs::remove_dir_all(&dir);
            let to = format!("oci:{}:v1", dir.display());
            match run_copy(env, tool, &src, &to, &h) {
                Ok(r) => {
                    progress(&format!(
                        "copy_1g_to_oci rep {rep} {}: {:.2} s, {:.0} MB/s",
                        tool.name(),
                        r.seconds,
                        mb / r.seconds
                    ));
                    table.add("copy_1g_to_oci_MBps", tool == Tool::Berth, mb / r.seconds);
                }
                Err(e) => table.error("copy_1g_to_oci_MBps", tool.name(), format!("{e:#}")),
            }
            // layout -> registry (the layout the same tool just wrote)
            let mut dest = Server::start(env, Kind::Berth, None)?;
            let to = format!("docker://127.0.0.1:{}/bench/from-oci:v1", dest.port);
            match run_copy(env, tool, &format!("oci:{}:v1", dir.display()), &to, &h) {
                Ok(r) => {
                    progress(&format!(
                        "copy_1g_from_oci rep {rep} {}: {:.2} s, {:.0} MB/s",
                        tool.name(),
                        r.seconds,
                        mb / r.seconds
                    ));
                    table.add("copy_1g_from_oci_MBps", tool == Tool::Berth, mb / r.seconds);
                }
                Err(e) => table.error("copy_1g_from_oci_MBps", tool.name(), format!("{e:#}")),
            }
            dest.stop();
            let _ = fs::remove_dir_all(&dir);
        }
    }
    Ok(())
}

/// `sync_200_images_per_s`: a repository of 200 small images (the manifest GET
/// benchmark's) synced to a fresh berth instance, `berth sync` against `skopeo sync`.
pub fn sync_phase(
    env: &Env,
    table: &mut Table,
    source: &Server,
    images: usize,
    reps: usize,
) -> Result<()> {
    table.notes.push(
        "sync_200_*: both columns are clients: left `berth sync`, right `skopeo sync` (1.9.3), \
         every tag of a repository of 200 small images to a fresh berth instance"
            .into(),
    );
    let src = format!("127.0.0.1:{}/bench/small", source.port);
    for rep in 1..=reps {
        for tool in [Tool::Berth, Tool::Skopeo] {
            let home = env.run.join(format!("homes/sync-{}-{rep}", tool.name()));
            let _ = fs::remove_dir_all(&home);
            fs::create_dir_all(&home)?;
            let mut dest = Server::start(env, Kind::Berth, None)?;
            let to = format!("127.0.0.1:{}/mirror", dest.port);
            let args = [
                "--src",
                "docker",
                "--dest",
                "docker",
                src.as_str(),
                to.as_str(),
            ];
            match run_tool(env, tool, "sync", &args, &home) {
                Ok(r) => {
                    let rate = images as f64 / r.seconds;
                    progress(&format!(
                        "sync_200 rep {rep} {}: {:.2} s, {rate:.0} images/s",
                        tool.name(),
                        r.seconds
                    ));
                    table.add("sync_200_images_per_s", tool == Tool::Berth, rate);
                }
                Err(e) => table.error("sync_200_images_per_s", tool.name(), format!("{e:#}")),
            }
            dest.stop();
        }
    }
    Ok(())
}
