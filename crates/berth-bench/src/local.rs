//! Local image store benchmarks: berth's store (`berth --root DIR pull|images|rmi|image
//! prune`) side by side with podman's (the Debian 4.3.1 build, `podman --root DIR
//! --runroot DIR --storage-driver vfs`), interleaved, wall time of whole processes.
//!
//! - `local_pull_1g`: a 1 GiB image of 4 gzip layers (tar layers this time: podman
//!   unpacks them) pushed once to a berth registry, then pulled into a fresh store by
//!   each tool in every rep;
//! - `local_images_1000`: `images` on a store holding 1,000 tiny images;
//! - `local_rmi_1000`: `rmi -a` and `image prune -a -f` on a fresh copy of that store.
//!
//! The 1,000-image stores are made once per tool by loading one multi-image
//! docker-archive (podman takes minutes for that, so the stores are cached in
//! `WORKDIR/roots/` and copied with `cp -a` before use; none of that is timed).

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use sha2::{Digest as _, Sha256};

use crate::client::{self, Run, Tool};
use crate::data::MIB;
use crate::progress;
use crate::report::{fmt_num, median, Table};
use crate::server::{Env, Kind, Server};

/// The repository the pulled image is pushed to.
const PULL_REPO: &str = "bench/local";
/// `images` is cheap for berth and slow for podman: at least this many rounds...
const IMAGES_MIN_ROUNDS: usize = 5;
/// ...and this many berth runs per round, so that berth's median (a few ms, with an
/// absolute target) does not rest on a handful of samples.
const BERTH_IMAGES_PER_ROUND: usize = 5;
const POLICY: &str = r#"{"default":[{"type":"insecureAcceptAnything"}]}"#;
const PODMAN_HINT: &str = "install podman: apt-get install -y podman";

/// The local stores compared.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Local {
    Berth,
    Podman,
}

impl Local {
    fn name(self) -> &'static str {
        match self {
            Local::Berth => "berth",
            Local::Podman => "podman",
        }
    }

    fn is_berth(self) -> bool {
        self == Local::Berth
    }
}

const BOTH: [Local; 2] = [Local::Berth, Local::Podman];

/// The directories one tool runs with.
pub(crate) struct Dirs {
    /// `--root`: the image store.
    pub(crate) store: PathBuf,
    /// podman's `--runroot` (locks, its state of the boot); unused by berth.
    pub(crate) runroot: PathBuf,
    /// `$HOME`, so that no user configuration (auth.json, containers.conf,
    /// storage.conf in ~/.config) changes what is measured.
    pub(crate) home: PathBuf,
}

impl Dirs {
    /// Empty runroot and home (the store is left to the caller).
    pub(crate) fn reset(&self) -> Result<()> {
        for d in [&self.runroot, &self.home] {
            let _ = fs::remove_dir_all(d);
            fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        Ok(())
    }
}

/// `berth --root STORE` or `podman --root STORE --runroot RUNROOT --storage-driver vfs`,
/// with a private home and no inherited store or credentials settings.
pub(crate) fn command(env: &Env, tool: Local, dirs: &Dirs) -> Command {
    let mut c = match tool {
        Local::Berth => {
            let mut c = Command::new(&env.berth);
            c.arg("--root").arg(&dirs.store);
            c
        }
        Local::Podman => {
            let mut c = Command::new("podman");
            c.arg("--root")
                .arg(&dirs.store)
                .arg("--runroot")
                .arg(&dirs.runroot)
                .args(["--storage-driver", "vfs"]);
            c
        }
    };
    c.env("HOME", &dirs.home)
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("BERTH_STORAGE_ROOT")
        .env_remove("CONTAINERS_STORAGE_CONF")
        .env_remove("CONTAINERS_CONF")
        .stdin(Stdio::null());
    c
}

/// Runs `tool ARGS` on `dirs`, output to a log in the run directory, and times it.
pub(crate) fn run(env: &Env, tool: Local, dirs: &Dirs, args: &[&str]) -> Result<Run> {
    let log = env
        .run
        .join(format!("local-{}-{}.log", tool.name(), args[0]));
    let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let mut cmd = command(env, tool, dirs);
    cmd.args(args).stdout(out.try_clone()?).stderr(out);
    let hint = match tool {
        Local::Berth => "build it: cargo build --release -p berth",
        Local::Podman => PODMAN_HINT,
    };
    client::timed(
        &mut cmd,
        &log,
        &format!("{} {}", tool.name(), args.join(" ")),
        hint,
    )
}

/// How many images `tool images -q` lists (untimed; a check, and a warm-up).
pub(crate) fn count_images(env: &Env, tool: Local, dirs: &Dirs) -> Result<usize> {
    let out = command(env, tool, dirs)
        .args(["images", "-q"])
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("running {} images -q", tool.name()))?;
    if !out.status.success() {
        bail!(
            "{} images -q failed ({}): {}",
            tool.name(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count())
}

/// The trust policy both tools pull with: accept anything (the registry is ours).
fn policy(env: &Env) -> Result<PathBuf> {
    let p = env.run.join("policy.json");
    fs::write(&p, POLICY).with_context(|| format!("writing {}", p.display()))?;
    Ok(p)
}

// ---------------------------------------------------------------------------
// pull
// ---------------------------------------------------------------------------

/// `local_pull_1g_MBps` and `local_pull_1g_peak_rss_mib`: `berth pull` against
/// `podman pull` of the same image from one berth registry into a fresh store each.
pub(crate) fn pull_phase(
    env: &Env,
    table: &mut Table,
    data_dir: &Path,
    total: u64,
    reps: usize,
) -> Result<()> {
    const RATE: &str = "local_pull_1g_MBps";
    const RSS: &str = "local_pull_1g_peak_rss_mib";
    let layout = client::tar_image_layout(data_dir, total)?;
    let source = Server::start(env, Kind::Berth, None)?;
    let image = format!("127.0.0.1:{}/{PULL_REPO}:v1", source.port);
    let setup_home = env.run.join("homes/local-setup");
    fs::create_dir_all(&setup_home)?;
    client::run_copy(
        env,
        Tool::Berth,
        &format!("oci:{}:v1", layout.display()),
        &format!("docker://{image}"),
        &setup_home,
    )
    .context("pushing the image to pull (untimed)")?;
    let policy = policy(env)?;
    let policy = policy.to_string_lossy();
    table.notes.push(format!(
        "local_*: both columns are local image stores: left berth, right podman 4.3.1 \
         (`--storage-driver vfs`, own --root/--runroot); wall time of the whole process. \
         local_pull_1g: a {} MiB image of 4 gzip tar layers pulled from a berth registry on \
         127.0.0.1 into a fresh store (podman unpacks the layers, berth keeps the blobs)",
        total / MIB
    ));
    let mb = total as f64 / 1e6;
    for rep in 1..=reps {
        for tool in BOTH {
            let dirs = Dirs {
                store: env.storage.join(format!("local-pull-{}", tool.name())),
                runroot: env.storage.join(format!("local-pull-{}-run", tool.name())),
                home: env.run.join(format!("homes/local-pull-{}", tool.name())),
            };
            let _ = fs::remove_dir_all(&dirs.store);
            dirs.reset()?;
            // Nothing dirty from the last rep left to write back during this one.
            crate::sync();
            let args = [
                "pull",
                "--tls-verify=false",
                "--signature-policy",
                &policy,
                "-q",
                &image,
            ];
            let result = run(env, tool, &dirs, &args).and_then(|r| {
                let n = count_images(env, tool, &dirs)?;
                if n != 1 {
                    bail!("the store lists {n} images after the pull, expected 1");
                }
                Ok(r)
            });
            match result {
                Ok(r) => {
                    progress(&format!(
                        "local_pull_1g rep {rep} {}: {:.2} s, {} MB/s, peak RSS {:.1} MiB",
                        tool.name(),
                        r.seconds,
                        fmt_num(mb / r.seconds),
                        r.peak_rss_mib
                    ));
                    table.add(RATE, tool.is_berth(), mb / r.seconds);
                    table.add(RSS, tool.is_berth(), r.peak_rss_mib);
                }
                Err(e) => {
                    progress(&format!(
                        "local_pull_1g rep {rep} {}: FAILED: {e:#}",
                        tool.name()
                    ));
                    table.error(RATE, tool.name(), format!("rep {rep}: {e:#}"));
                }
            }
            let _ = fs::remove_dir_all(&dirs.store);
            let _ = fs::remove_dir_all(&dirs.runroot);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// stores of many images
// ---------------------------------------------------------------------------

/// One tool's store of `n` images: a cached template and the working copy the
/// tool runs on. The working copy always lives at the same path, because podman
/// records its graph root in its database and refuses a store that has moved.
struct Store {
    tool: Local,
    template: PathBuf,
    ready: PathBuf,
    dirs: Dirs,
}

/// The berth and podman stores of `n` tiny images, built once (cached) and checked.
pub(crate) struct Stores<'a> {
    env: &'a Env,
    n: usize,
    archive: PathBuf,
    stores: [Store; 2],
}

impl<'a> Stores<'a> {
    /// Makes (or finds) the archive and both templates, and leaves a checked working
    /// copy of each store in place.
    pub(crate) fn new(env: &'a Env, workdir: &Path, n: usize) -> Result<Stores<'a>> {
        let data = workdir.join("data");
        let roots = workdir.join("roots");
        let local = workdir.join("local");
        for d in [&data, &roots, &local] {
            fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        let archive = data.join(format!("images-{n}.tar"));
        if !archive.is_file() {
            let tmp = data.join(format!("images-{n}.tar.tmp"));
            docker_archive(&tmp, n)?;
            fs::rename(&tmp, &archive)?;
        }
        let store = |tool: Local| Store {
            tool,
            template: roots.join(format!("local-{}-{n}", tool.name())),
            ready: roots.join(format!("local-{}-{n}.ready", tool.name())),
            dirs: Dirs {
                store: local.join(format!("{}-{n}", tool.name())),
                runroot: local.join(format!("{}-run", tool.name())),
                home: local.join(format!("{}-home", tool.name())),
            },
        };
        let s = Stores {
            env,
            n,
            archive,
            stores: [store(Local::Berth), store(Local::Podman)],
        };
        for st in &s.stores {
            s.prepare(st)?;
        }
        Ok(s)
    }

    /// A fresh, checked working copy of `st`'s store; the template is rebuilt when the
    /// copy does not list `n` images (a change of berth's store format, say).
    fn prepare(&self, st: &Store) -> Result<()> {
        if st.ready.exists() {
            self.fresh_copy(st)?;
            match count_images(self.env, st.tool, &st.dirs) {
                Ok(k) if k == self.n => return Ok(()),
                Ok(k) => progress(&format!(
                    "cached {} store {} lists {k} images, expected {}; rebuilding it",
                    st.tool.name(),
                    st.template.display(),
                    self.n
                )),
                Err(e) => progress(&format!(
                    "cached {} store {} is not usable ({e:#}); rebuilding it",
                    st.tool.name(),
                    st.template.display()
                )),
            }
        }
        self.build(st)?;
        self.fresh_copy(st)?;
        let k = count_images(self.env, st.tool, &st.dirs)?;
        if k != self.n {
            bail!(
                "the {} store lists {k} images after loading {}, expected {}",
                st.tool.name(),
                self.archive.display(),
                self.n
            );
        }
        Ok(())
    }

    /// Loads the archive into the working path, then moves it to the template.
    fn build(&self, st: &Store) -> Result<()> {
        let _ = fs::remove_file(&st.ready);
        let _ = fs::remove_dir_all(&st.template);
        let _ = fs::remove_dir_all(&st.dirs.store);
        st.dirs.reset()?;
        progress(&format!(
            "loading {} images into a {} store (one-time, cached in {}; podman takes minutes)",
            self.n,
            st.tool.name(),
            st.template.display()
        ));
        let archive = self.archive.to_string_lossy();
        let r = run(self.env, st.tool, &st.dirs, &["load", "-q", "-i", &archive])?;
        progress(&format!("  {} load: {:.1} s", st.tool.name(), r.seconds));
        fs::rename(&st.dirs.store, &st.template).with_context(|| {
            format!(
                "moving {} to {}",
                st.dirs.store.display(),
                st.template.display()
            )
        })?;
        fs::write(&st.ready, "")?;
        Ok(())
    }

    /// Replaces the working copy with a copy of the template (`cp -a`, untimed) and
    /// empties the runroot; then `sync`, so that no writeback runs into the timing.
    fn fresh_copy(&self, st: &Store) -> Result<()> {
        let _ = fs::remove_dir_all(&st.dirs.store);
        st.dirs.reset()?;
        let status = Command::new("cp")
            .arg("-a")
            .arg(&st.template)
            .arg(&st.dirs.store)
            .stdin(Stdio::null())
            .status()
            .context("running cp -a")?;
        if !status.success() {
            bail!(
                "cp -a {} {} failed: {status}",
                st.template.display(),
                st.dirs.store.display()
            );
        }
        crate::sync();
        Ok(())
    }
}

impl Drop for Stores<'_> {
    /// The working copies are scratch; the templates stay cached.
    fn drop(&mut self) {
        for st in &self.stores {
            let _ = fs::remove_dir_all(&st.dirs.store);
            let _ = fs::remove_dir_all(&st.dirs.runroot);
        }
    }
}

/// `local_images_1000_ms`: `images` on the store of `n` images (the working copies
/// [`Stores::new`] left, already listed once, so the page cache is warm).
pub(crate) fn images_phase(stores: &Stores, table: &mut Table, reps: usize) -> Result<()> {
    const ROW: &str = "local_images_1000_ms";
    let rounds = reps.max(IMAGES_MIN_ROUNDS);
    table.notes.push(format!(
        "local_images_1000: `images` (table output to a file) on a store of {} tiny images; \
         {rounds} rounds of {BERTH_IMAGES_PER_ROUND} berth runs then 1 podman run; \
         medians in ms",
        stores.n
    ));
    for round in 1..=rounds {
        for st in &stores.stores {
            let runs = if st.tool.is_berth() {
                BERTH_IMAGES_PER_ROUND
            } else {
                1
            };
            let mut ms = Vec::new();
            for _ in 0..runs {
                match run(stores.env, st.tool, &st.dirs, &["images"]) {
                    Ok(r) => ms.push(r.seconds * 1e3),
                    Err(e) => table.error(ROW, st.tool.name(), format!("round {round}: {e:#}")),
                }
            }
            if let Some(m) = median(&ms) {
                progress(&format!(
                    "local_images_1000 round {round} {}: {} ms (median of {})",
                    st.tool.name(),
                    fmt_num(m),
                    ms.len()
                ));
            }
            for v in ms {
                table.add(ROW, st.tool.is_berth(), v);
            }
        }
    }
    Ok(())
}

/// `local_rmi_1000_ms` and `local_prune_1000_ms`: `rmi -a` and `image prune -a -f` on a
/// fresh copy of each store, checked empty afterwards.
pub(crate) fn rmi_phase(stores: &Stores, table: &mut Table, reps: usize) -> Result<()> {
    table.notes.push(format!(
        "local_rmi_1000: `rmi -a`, then `image prune -a -f`, each on a fresh `cp -a` copy \
         (untimed, followed by sync) of the store of {} tiny images",
        stores.n
    ));
    let ops: [(&str, &[&str]); 2] = [
        ("local_rmi_1000_ms", &["rmi", "-a"]),
        ("local_prune_1000_ms", &["image", "prune", "-a", "-f"]),
    ];
    for rep in 1..=reps {
        for (row, args) in ops {
            for st in &stores.stores {
                let result = stores.fresh_copy(st).and_then(|()| {
                    let r = run(stores.env, st.tool, &st.dirs, args)?;
                    let left = count_images(stores.env, st.tool, &st.dirs)?;
                    if left != 0 {
                        bail!("{left} images left after {}", args.join(" "));
                    }
                    Ok(r)
                });
                match result {
                    Ok(r) => {
                        progress(&format!(
                            "{row} rep {rep} {}: {} ms, peak RSS {:.1} MiB",
                            st.tool.name(),
                            fmt_num(r.seconds * 1e3),
                            r.peak_rss_mib
                        ));
                        table.add(row, st.tool.is_berth(), r.seconds * 1e3);
                    }
                    Err(e) => {
                        progress(&format!(
                            "{row} rep {rep} {}: FAILED: {e:#}",
                            st.tool.name()
                        ));
                        table.error(row, st.tool.name(), format!("rep {rep}: {e:#}"));
                    }
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// test data
// ---------------------------------------------------------------------------

/// A POSIX ustar header of a regular file (mode 0644, owner 0, mtime 0). Hand-made,
/// because the bench has no tar dependency and needs nothing but plain files.
pub(crate) fn ustar_header(name: &str, size: u64) -> Result<[u8; 512]> {
    ustar(name, size, 0o644, b'0', "")
}

/// A POSIX ustar header (owner 0, mtime 0): `kind` is the type flag (`0` file, `2`
/// symbolic link to `link`, `5` folder).
fn ustar(name: &str, size: u64, mode: u32, kind: u8, link: &str) -> Result<[u8; 512]> {
    if name.len() > 100 {
        bail!("tar entry name {name:?} is longer than 100 bytes");
    }
    if link.len() > 100 {
        bail!("tar link target {link:?} is longer than 100 bytes");
    }
    if size >= 1 << 33 {
        bail!("tar entry {name:?} of {size} bytes is too big for ustar");
    }
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[156] = kind;
    let mut field = |at: usize, text: &str| h[at..at + text.len()].copy_from_slice(text.as_bytes());
    field(100, &format!("{:07o}\0", mode & 0o7777));
    field(108, "0000000\0");
    field(116, "0000000\0");
    field(124, &format!("{size:011o}\0"));
    field(136, "00000000000\0");
    field(257, "ustar\0");
    field(263, "00");
    // The checksum is computed with its own field as spaces.
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    Ok(h)
}

/// `bytes` as one tar entry: header, data, zero padding to a whole block.
fn tar_entry(out: &mut impl Write, name: &str, bytes: &[u8]) -> Result<()> {
    tar_file(out, name, 0o644, bytes)
}

/// `bytes` as a file of mode `mode`: header, data, zero padding to a whole block.
pub(crate) fn tar_file(out: &mut impl Write, name: &str, mode: u32, bytes: &[u8]) -> Result<()> {
    out.write_all(&ustar(name, bytes.len() as u64, mode, b'0', "")?)?;
    out.write_all(bytes)?;
    let pad = (512 - bytes.len() % 512) % 512;
    out.write_all(&[0u8; 512][..pad])?;
    Ok(())
}

/// A folder entry (`name` ends with `/`).
pub(crate) fn tar_dir(out: &mut impl Write, name: &str, mode: u32) -> Result<()> {
    out.write_all(&ustar(name, 0, mode, b'5', "")?)?;
    Ok(())
}

/// A symbolic link `name` -> `target`.
pub(crate) fn tar_symlink(out: &mut impl Write, name: &str, target: &str) -> Result<()> {
    out.write_all(&ustar(name, 0, 0o777, b'2', target)?)?;
    Ok(())
}

/// The end of a tar: two zero blocks.
pub(crate) fn tar_end(out: &mut impl Write) -> Result<()> {
    out.write_all(&[0u8; 1024])?;
    Ok(())
}

/// The GOARCH name of this machine's architecture, as image configs spell it.
pub(crate) fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// Appends one image to a docker-archive being written: its layer (a whole tar) as
/// `<sha256>/layer.tar` and a linux config of this machine's architecture (`run` is
/// its `config` section)
/// as `<sha256>.json`. Returns the image's entry of `manifest.json`.
pub(crate) fn archive_image(
    out: &mut impl Write,
    layer: &[u8],
    run: serde_json::Value,
    tag: &str,
) -> Result<serde_json::Value> {
    let layer_hex = format!("{:x}", Sha256::digest(layer));
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": go_arch(), "os": "linux", "created": "1970-01-01T00:00:00Z",
        "config": run,
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer_hex}")]},
    }))?;
    let config_hex = format!("{:x}", Sha256::digest(&config));
    tar_entry(out, &format!("{layer_hex}/layer.tar"), layer)?;
    tar_entry(out, &format!("{config_hex}.json"), &config)?;
    Ok(serde_json::json!({
        "Config": format!("{config_hex}.json"),
        "RepoTags": [tag],
        "Layers": [format!("{layer_hex}/layer.tar")],
    }))
}

/// Ends a docker-archive: `manifest.json` naming `images`, the end of the tar, and
/// the file synced.
pub(crate) fn finish_archive(mut out: BufWriter<File>, images: &[serde_json::Value]) -> Result<()> {
    tar_entry(&mut out, "manifest.json", &serde_json::to_vec(images)?)?;
    tar_end(&mut out)?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(())
}

/// A docker-archive (`docker save` format) of `n` tiny images, `localhost/bench/img:NNNN`:
/// each one layer holding one small distinct file, and a config naming it, so every
/// image has its own layer and its own ID. Both `berth load` and `podman load` read
/// every image of such an archive.
fn docker_archive(path: &Path, n: usize) -> Result<()> {
    progress(&format!(
        "writing a docker-archive of {n} tiny images to {}",
        path.display()
    ));
    let t0 = Instant::now();
    let mut out =
        BufWriter::new(File::create(path).with_context(|| format!("creating {}", path.display()))?);
    let mut manifest = Vec::with_capacity(n);
    for i in 0..n {
        let mut layer = Vec::with_capacity(2048);
        tar_entry(
            &mut layer,
            &format!("bench-{i:04}"),
            format!("tiny image {i}\n").as_bytes(),
        )?;
        tar_end(&mut layer)?;
        manifest.push(archive_image(
            &mut out,
            &layer,
            serde_json::json!({"Env": [format!("BENCH_IMAGE={i}")]}),
            &format!("localhost/bench/img:{i:04}"),
        )?);
    }
    finish_archive(out, &manifest)?;
    progress(&format!("  written in {:.1} s", t0.elapsed().as_secs_f64()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ustar_header_checksum_and_fields() {
        let h = ustar_header("a/b.tar", 1536).unwrap();
        assert_eq!(&h[..7], b"a/b.tar");
        assert_eq!(&h[124..136], b"00000003000\0");
        assert_eq!(&h[257..263], b"ustar\0");
        let stored = u32::from_str_radix(std::str::from_utf8(&h[148..154]).unwrap(), 8).unwrap();
        let mut blank = h;
        blank[148..156].copy_from_slice(b"        ");
        assert_eq!(stored, blank.iter().map(|&b| u32::from(b)).sum::<u32>());
        assert!(ustar_header(&"x".repeat(101), 1).is_err());
    }

    #[test]
    fn links_and_folders() {
        let mut v = Vec::new();
        tar_symlink(&mut v, "bin/sh", "busybox").unwrap();
        tar_dir(&mut v, "tmp/", 0o1777).unwrap();
        assert_eq!(v.len(), 1024);
        assert_eq!((v[156], &v[157..164]), (b'2', &b"busybox"[..]));
        assert_eq!(&v[100..108], b"0000777\0");
        assert_eq!((v[512 + 156], &v[612..620]), (b'5', &b"0001777\0"[..]));
    }

    #[test]
    fn tar_entries_are_whole_blocks() {
        let mut v = Vec::new();
        tar_entry(&mut v, "f", b"hello").unwrap();
        assert_eq!(v.len(), 1024);
        assert_eq!(&v[512..517], b"hello");
    }
}
