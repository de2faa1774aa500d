//! `build_cached`: `berth build` of a realistic context when every step is already in
//! the build cache (the target of the build issue: "a fully cached rebuild: under
//! 1 s"). berth only: there is no other column.
//!
//! Setup, untimed: a fresh store (`berth --root STORE`), a tiny busybox image loaded
//! into it from a docker-archive the bench writes (the host's static `/bin/busybox`,
//! a symbolic link per applet, `/etc/passwd`), and a context of ~200 small files in a
//! few folders, one 20 MiB file, a `.containerignore` and a two-stage Containerfile
//! with RUN (so runc or crun, and root). One build fills the cache (`build_first_ms`,
//! for information); then every timed build of the same command must print the same
//! image ID and take every step from the cache.

use std::cell::Cell;
use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context, Result};

use crate::client::{self, Run};
use crate::data::{XorShift, MIB};
use crate::local::{self, Dirs, Local};
use crate::progress;
use crate::report::{fmt_num, median, Table};
use crate::server::Env;

const FIRST: &str = "build_first_ms";
const CACHED: &str = "build_cached_ms";
/// The base image, as the archive's RepoTags name it.
const BASE: &str = "localhost/bench/busybox:v1";
const TAG: &str = "bench:v1";
const BUSYBOX: &str = "/bin/busybox";
/// The one big file of the context.
const BIG: u64 = 20 * MIB;

const CONTAINERFILE: &str = r#"FROM localhost/bench/busybox:v1 AS builder
ARG N=1
RUN mkdir -p /out && echo built $N > /out/a.txt
FROM localhost/bench/busybox:v1
ENV A=1
LABEL x=y
WORKDIR /srv
COPY . /srv/
COPY --from=builder /out/ /srv/out/
RUN ls /srv > /srv/listing.txt
CMD ["cat", "/srv/out/a.txt"]
"#;

const CONTAINERIGNORE: &str = "# build output and scratch files stay out of the image\n\
*.log\n\
scratch\n\
**/*.tmp\n";

/// `build_first_ms` and `build_cached_ms`: one uncached build into a fresh store, then
/// `reps` timed builds of the same command, each checked to be a full cache hit.
pub(crate) fn cached_phase(
    env: &Env,
    workdir: &Path,
    table: &mut Table,
    reps: usize,
) -> Result<()> {
    check_prerequisites()?;
    let dir = workdir.join("build");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let dirs = Dirs {
        store: env.storage.join("build-berth"),
        runroot: env.storage.join("build-berth-run"),
        home: env.run.join("homes/build-berth"),
    };
    let _ = fs::remove_dir_all(&dirs.store);
    dirs.reset()?;
    let result = measure(env, &dir, &dirs, table, reps);
    let _ = fs::remove_dir_all(&dirs.store);
    let _ = fs::remove_dir_all(&dirs.runroot);
    result
}

fn measure(env: &Env, dir: &Path, dirs: &Dirs, table: &mut Table, reps: usize) -> Result<()> {
    let archive = dir.join("busybox.tar");
    busybox_archive(&archive)?;
    local::run(
        env,
        Local::Berth,
        dirs,
        &["load", "-i", &archive.to_string_lossy()],
    )
    .context("loading the busybox image (untimed)")?;
    let n = local::count_images(env, Local::Berth, dirs)?;
    if n != 1 {
        bail!("the store lists {n} images after loading the busybox archive, expected 1");
    }
    let context = dir.join("context");
    let (files, bytes) = write_context(&context)?;
    table.notes.push(format!(
        "build_*: berth only; `berth --root STORE build -t {TAG} CONTEXT`, wall time of the \
         process. The context: {files} files ({:.1} MiB, one of them {} MiB) in a few folders, a \
         .containerignore, a two-stage Containerfile (FROM {BASE} twice, ARG, 2 RUN, ENV, \
         LABEL, WORKDIR, COPY ., COPY --from, CMD). build_first_ms: the one build into the \
         fresh store (info); build_cached_ms: {reps} rebuilds, each checked to print the \
         same image ID with every step but FROM and ARG from the cache",
        bytes as f64 / MIB as f64,
        BIG / MIB
    ));

    crate::sync();
    let (first, out) = build(env, dirs, &context).context("the first (uncached) build")?;
    let id = image_id(&out.stdout)?;
    let (cached, uncached) = steps(&out.stderr);
    if uncached.is_empty() || cached != 0 {
        bail!(
            "the first build into a fresh store took {cached} steps from the cache and ran {}; \
             expected none cached",
            uncached.len()
        );
    }
    let listed = local::command(env, Local::Berth, dirs)
        .args(["images", "-q", "--no-trunc"])
        .stderr(Stdio::inherit())
        .output()
        .context("running berth images")?;
    if !String::from_utf8_lossy(&listed.stdout).contains(&id) {
        bail!("the first build printed image ID {id}, which `berth images` does not list");
    }
    progress(&format!(
        "build_first: {} ms, {} steps run, image {}",
        fmt_num(first.seconds * 1e3),
        uncached.len(),
        &id[..12]
    ));
    table.add(FIRST, true, first.seconds * 1e3);

    let mut ms = Vec::new();
    for rep in 1..=reps {
        crate::sync();
        let result = build(env, dirs, &context).and_then(|(r, out)| {
            let again = image_id(&out.stdout)?;
            if again != id {
                bail!("the rebuild printed image ID {again}, the first build {id}");
            }
            let (cached, uncached) = steps(&out.stderr);
            if !uncached.is_empty() || cached == 0 {
                bail!(
                    "{cached} steps from the cache, not from it: {}",
                    uncached.join("; ")
                );
            }
            Ok((r, cached))
        });
        match result {
            Ok((r, cached)) => {
                progress(&format!(
                    "{CACHED} rep {rep}: {} ms ({cached} steps from the cache), peak RSS {:.1} MiB",
                    fmt_num(r.seconds * 1e3),
                    r.peak_rss_mib
                ));
                ms.push(r.seconds * 1e3);
                table.add(CACHED, true, r.seconds * 1e3);
            }
            Err(e) => {
                progress(&format!("{CACHED} rep {rep}: FAILED: {e:#}"));
                table.error(CACHED, "berth", format!("rep {rep}: {e:#}"));
            }
        }
    }
    if let Some(m) = median(&ms) {
        let max = ms.iter().copied().fold(f64::MIN, f64::max);
        progress(&format!(
            "{CACHED}: median {} ms, max {} ms over {} reps",
            fmt_num(m),
            fmt_num(max),
            ms.len()
        ));
    }
    Ok(())
}

/// RUN needs a runtime and, for berth's rootful containers, root.
fn check_prerequisites() -> Result<()> {
    // SAFETY: geteuid takes no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        bail!("build_cached needs root: its Containerfile has RUN steps (runc as root)");
    }
    if !["crun", "runc"].iter().any(|r| on_path(r).is_some()) {
        bail!("build_cached needs runc or crun on PATH for its RUN steps (apt-get install runc)");
    }
    if !Path::new(BUSYBOX).is_file() {
        bail!("build_cached needs {BUSYBOX} for its base image (apt-get install busybox-static)");
    }
    Ok(())
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// What one build printed.
struct Output {
    stdout: String,
    stderr: String,
}

/// `berth --root STORE build -t TAG CONTEXT`, timed: the image ID on stdout, the step
/// lines on stderr (`-q` would silence those, and with them the cache check).
fn build(env: &Env, dirs: &Dirs, context: &Path) -> Result<(Run, Output)> {
    let out_path = env.run.join("build-berth.out");
    let err_path = env.run.join("build-berth.log");
    let out = File::create(&out_path)?;
    let err = File::create(&err_path)?;
    let mut cmd = local::command(env, Local::Berth, dirs);
    cmd.args(["build", "-t", TAG])
        .arg(context)
        .stdout(out)
        .stderr(err);
    let r = client::timed(
        &mut cmd,
        &err_path,
        &format!("berth build -t {TAG} {}", context.display()),
        "build it: cargo build --release -p berth",
    )?;
    let output = Output {
        stdout: fs::read_to_string(&out_path)?,
        stderr: fs::read_to_string(&err_path)?,
    };
    Ok((r, output))
}

/// The image ID a build printed: the last line of its stdout, 64 hex digits.
fn image_id(stdout: &str) -> Result<String> {
    let id = stdout
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("");
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!(
            "the build printed {:?} on stdout, not an image ID",
            stdout.trim()
        );
    }
    Ok(id.to_string())
}

/// A build's stderr, step by step: how many steps came from the cache
/// (`--> Using cache`), and the steps that did not. FROM and ARG steps are neither:
/// they have no result to cache.
fn steps(stderr: &str) -> (usize, Vec<String>) {
    let mut cached = 0;
    let mut uncached = Vec::new();
    let mut current: Option<(&str, bool)> = None;
    let mut close = |step: Option<(&str, bool)>| {
        if let Some((text, hit)) = step {
            let instruction = text
                .split_once(": ")
                .map_or("", |(_, i)| i)
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_uppercase();
            if hit {
                cached += 1;
            } else if instruction != "FROM" && instruction != "ARG" {
                uncached.push(text.to_string());
            }
        }
    };
    for line in stderr.lines() {
        if line.starts_with("STEP ") {
            close(current.take());
            current = Some((line, false));
        } else if line.starts_with("--> Using cache") {
            if let Some((_, hit)) = current.as_mut() {
                *hit = true;
            }
        }
    }
    close(current);
    (cached, uncached)
}

/// A docker-archive of one image, [`BASE`]: the host's static busybox as
/// `/bin/busybox`, `/bin/APPLET` -> `busybox` for every applet of `busybox --list`,
/// `/etc/passwd`, `/tmp`, `/root`.
fn busybox_archive(path: &Path) -> Result<()> {
    let bin = fs::read(BUSYBOX).with_context(|| format!("reading {BUSYBOX}"))?;
    let list = std::process::Command::new(BUSYBOX)
        .arg("--list")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {BUSYBOX} --list"))?;
    if !list.status.success() {
        bail!("{BUSYBOX} --list failed: {}", list.status);
    }
    let applets = String::from_utf8_lossy(&list.stdout);
    let mut layer = Vec::with_capacity(bin.len() + 64 * 1024);
    local::tar_dir(&mut layer, "bin/", 0o755)?;
    local::tar_file(&mut layer, "bin/busybox", 0o755, &bin)?;
    let mut links = 0;
    for a in applets.lines().map(str::trim) {
        if a.is_empty() || a == "busybox" || a.contains('/') {
            continue;
        }
        local::tar_symlink(&mut layer, &format!("bin/{a}"), "busybox")?;
        links += 1;
    }
    if links == 0 {
        bail!("{BUSYBOX} --list names no applet");
    }
    local::tar_dir(&mut layer, "etc/", 0o755)?;
    local::tar_file(
        &mut layer,
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )?;
    local::tar_file(
        &mut layer,
        "etc/group",
        0o644,
        b"root:x:0:\nnogroup:x:65534:\n",
    )?;
    local::tar_dir(&mut layer, "root/", 0o700)?;
    local::tar_dir(&mut layer, "tmp/", 0o1777)?;
    local::tar_end(&mut layer)?;
    let mut out =
        BufWriter::new(File::create(path).with_context(|| format!("creating {}", path.display()))?);
    let image = local::archive_image(
        &mut out,
        &layer,
        serde_json::json!({
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"],
        }),
        BASE,
    )?;
    local::finish_archive(out, &[image])?;
    progress(&format!(
        "wrote a busybox image ({} KiB, {links} applets) to {}",
        layer.len() / 1024,
        path.display()
    ));
    Ok(())
}

/// The build context: a Containerfile, a .containerignore, ~200 small files in a few
/// folders, one [`BIG`] file, and a few files the .containerignore leaves out.
/// Returns the files and bytes the build sees.
fn write_context(dir: &Path) -> Result<(usize, u64)> {
    let files = Cell::new(0usize);
    let bytes = Cell::new(0u64);
    let put = |rel: &str, data: &[u8]| -> Result<()> {
        let p = dir.join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&p, data).with_context(|| format!("writing {}", p.display()))?;
        files.set(files.get() + 1);
        bytes.set(bytes.get() + data.len() as u64);
        Ok(())
    };
    put("Containerfile", CONTAINERFILE.as_bytes())?;
    put(".containerignore", CONTAINERIGNORE.as_bytes())?;
    put(
        "README.md",
        b"# bench app\n\nA context for berth-bench's build_cached.\n",
    )?;
    let mut rng = XorShift::new(0xB01D);
    // (folder, files, extension): 200 small files of 100 B to ~8 KiB.
    let folders: [(&str, usize, &str); 6] = [
        ("src", 60, "rs"),
        ("src/util", 30, "rs"),
        ("docs", 40, "md"),
        ("assets", 30, "bin"),
        ("config", 20, "toml"),
        ("tests", 20, "rs"),
    ];
    for (folder, n, ext) in folders {
        for i in 0..n {
            let len = 100 + (rng.next_u64() % (8 * 1024)) as usize;
            let data = if ext == "bin" {
                let mut b = vec![0u8; len];
                rng.fill(&mut b);
                b
            } else {
                format!("// {folder}/file{i:03}.{ext}\n")
                    .repeat(len / 24 + 1)
                    .into_bytes()
            };
            put(&format!("{folder}/file{i:03}.{ext}"), &data)?;
        }
    }
    let mut big = vec![0u8; BIG as usize];
    XorShift::new(0xB16).fill(&mut big);
    put("data/big.bin", &big)?;
    let kept = (files.get(), bytes.get());
    // Left out by the .containerignore.
    put("build.log", b"a log line\n".repeat(1000).as_slice())?;
    put("src/editor.tmp", b"scratch\n")?;
    for i in 0..10 {
        put(&format!("scratch/run{i}.out"), &[b'x'; 4096])?;
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_counts_cache_hits_and_skips_from_and_arg() {
        let log = "STEP 1/5: FROM localhost/bench/busybox:v1 AS builder\n\
                   STEP 2/5: ARG N=1\n\
                   STEP 3/5: RUN echo hi\n\
                   --> Using cache 0123456789ab\n\
                   --> 0123456789ab\n\
                   STEP 4/5: FROM localhost/bench/busybox:v1\n\
                   STEP 5/5: COPY . /srv/\n\
                   --> 3333333333ab\n\
                   COMMIT localhost/bench:v1\n";
        let (cached, uncached) = steps(log);
        assert_eq!(cached, 1);
        assert_eq!(uncached, ["STEP 5/5: COPY . /srv/"]);
        assert_eq!(steps("").0, 0);
    }

    #[test]
    fn image_ids() {
        let hex = "a".repeat(64);
        assert_eq!(image_id(&format!("{hex}\n")).unwrap(), hex);
        assert_eq!(image_id(&format!("sha256:{hex}\n")).unwrap(), hex);
        assert!(image_id("Error: boom\n").is_err());
        assert!(image_id("").is_err());
    }
}
