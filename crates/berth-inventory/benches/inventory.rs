//! `inventory`: CPU time of [`berth_inventory::analyze_layer`] on a ~50 MiB gzip Debian
//! layer (issue 12's target: at most 0.5 s).
//!
//! The layer is the debootstrap `minbase` root the tests build (its real dpkg status,
//! os-release link and binaries), without apt's downloaded `.deb` files and package
//! lists (images delete them), then copies of the root's own files under `opt/copyN/` until the gzip blob
//! (level 6, as podman and buildah write layers) reaches 50 MiB: real binaries and text
//! compress as a real layer does. Built once into the target folder.
//!
//! CPU time is the process's user + system time around the call (getrusage), so the
//! decompression thread counts. Run: `cargo bench -p berth-inventory --bench inventory`
//! (as root, the first time, for debootstrap).

#[path = "../tests/support/mod.rs"]
mod support;

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

const TARGET: u64 = 50 << 20;
const RUNS: usize = 7;

fn main() {
    // `cargo test --all-targets` runs this binary too, without `--bench`.
    if std::env::args().any(|a| a == "--list") || !std::env::args().any(|a| a == "--bench") {
        println!("inventory: bench (run with `cargo bench -p berth-inventory --bench inventory`)");
        return;
    }
    let (root, _) = support::debian();
    let layer = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("inventory-bench-layer.tar.gz");
    if !layer.is_file() {
        build_layer(&root, &layer);
    }
    let size = fs::metadata(&layer).unwrap().len();
    let mut cpu = Vec::new();
    let mut wall = Vec::new();
    for _ in 0..RUNS {
        let file = File::open(&layer).unwrap();
        let (c0, t0) = (cpu_time(), Instant::now());
        let arts = berth_inventory::analyze_layer(file, support::GZIP).unwrap();
        let (c, t) = (cpu_time() - c0, t0.elapsed().as_secs_f64());
        let inv = berth_inventory::squash(&[arts], None);
        assert!(inv.packages.len() > 80, "{} packages", inv.packages.len());
        assert_eq!(inv.os.unwrap().ecosystem.as_deref(), Some("Debian:12"));
        cpu.push(c);
        wall.push(t);
    }
    cpu.sort_by(f64::total_cmp);
    wall.sort_by(f64::total_cmp);
    println!(
        "inventory: {:.1} MiB gzip layer: CPU {:.3} s median (min {:.3}, max {:.3}), wall {:.3} s median, {RUNS} runs; target <= 0.5 s CPU: {}",
        size as f64 / 1048576.0,
        cpu[RUNS / 2],
        cpu[0],
        cpu[RUNS - 1],
        wall[RUNS / 2],
        if cpu[RUNS / 2] <= 0.5 { "met" } else { "NOT met" }
    );
}

/// User + system CPU seconds of this process, all threads.
fn cpu_time() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct it is given, nothing else.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) }, 0);
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn build_layer(root: &Path, out: &Path) {
    let partial = out.with_extension("partial");
    let gz = flate2::write::GzEncoder::new(
        BufWriter::new(File::create(&partial).unwrap()),
        flate2::Compression::new(6),
    );
    let mut tar = tar::Builder::new(gz);
    tar.follow_symlinks(false);
    let skip = [
        root.join("var/cache/apt/archives"),
        root.join("var/lib/apt/lists"),
    ];
    let mut files = Vec::new();
    walk(root, &skip, &mut |p| {
        let rel = p.strip_prefix(root).unwrap();
        let kind = p.symlink_metadata().unwrap().file_type();
        if !(kind.is_file() || kind.is_dir() || kind.is_symlink()) {
            return; // device nodes in dev/: images carry none
        }
        tar.append_path_with_name(p, rel)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        if p.symlink_metadata().unwrap().is_file() {
            files.push(rel.to_path_buf());
        }
    });
    let mut copy = 0;
    'fill: loop {
        for rel in &files {
            if tar.get_ref().get_ref().get_ref().metadata().unwrap().len() >= TARGET {
                break 'fill;
            }
            let name = Path::new("opt").join(format!("copy{copy}")).join(rel);
            tar.append_path_with_name(root.join(rel), name).unwrap();
        }
        copy += 1;
    }
    let gz = tar.into_inner().unwrap();
    gz.finish().unwrap().flush().unwrap();
    fs::rename(&partial, out).unwrap();
}

/// Every entry below `dir` (folders before their content), `skip` left out.
fn walk(dir: &Path, skip: &[PathBuf], f: &mut dyn FnMut(&Path)) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if skip.contains(&p) {
            continue;
        }
        f(&p);
        if p.symlink_metadata().unwrap().is_dir() {
            walk(&p, skip, f);
        }
    }
}
