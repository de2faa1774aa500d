//! Unpacking a 1 GiB, 4-layer image: berth's `decompress` + `apply_layer` against
//! podman's vfs driver on the same gzip blobs.
//!
//! podman unpacks layers when they enter its store: `podman pull` (or `load`) hands each
//! blob to containers/storage's `PutLayer`, which for vfs copies the parent layer's
//! tree and applies the diff on top. So the podman side times
//! `podman --root R --runroot RR --storage-driver vfs pull oci:LAYOUT:bench` into an
//! empty store, and the berth side times decompress + apply of the four blobs into one
//! fresh folder (a container's rootfs, which needs no copy per layer).
//!
//! Run: `cargo bench -p berth-rootfs --bench unpack` (as root; `BERTH_BENCH_DIR` picks the
//! scratch folder, default `/var/tmp/berth-rootfs-bench`; `BERTH_BENCH_MIB` the size,
//! default 1024).

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use berth_rootfs::{apply_layer, decompress, pack_layer, remove_all, PackedLayer, UnpackOptions};

const LAYERS: usize = 4;

fn main() {
    // `cargo test --all-targets` runs this binary too, without `--bench`: 1 GiB and a
    // podman pull are for `cargo bench` only.
    if std::env::args().any(|a| a == "--list") || !std::env::args().any(|a| a == "--bench") {
        println!("unpack: bench (run with `cargo bench -p berth-rootfs --bench unpack`)");
        return;
    }
    let dir = PathBuf::from(
        std::env::var("BERTH_BENCH_DIR").unwrap_or_else(|_| "/var/tmp/berth-rootfs-bench".into()),
    );
    let mib: u64 = std::env::var("BERTH_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let _ = remove_all(&dir);
    fs::create_dir_all(dir.join("layout/blobs/sha256")).expect("bench dir");

    let t = Instant::now();
    let layers: Vec<(PackedLayer, u64, u64)> = (0..LAYERS)
        .map(|i| make_layer(&dir, i, mib / LAYERS as u64))
        .collect();
    let files: u64 = layers.iter().map(|l| l.1).sum();
    let tar_bytes: u64 = layers.iter().map(|l| l.2).sum();
    let gz_bytes: u64 = layers.iter().map(|l| l.0.size).sum();
    println!(
        "built {LAYERS} layers: {files} files, {:.0} MiB of tar, {:.0} MiB of gzip ({:.1} s)",
        tar_bytes as f64 / 1048576.0,
        gz_bytes as f64 / 1048576.0,
        t.elapsed().as_secs_f64()
    );
    write_layout(&dir, &layers);

    let runs = 3;
    let mut berth = Vec::new();
    let mut podman = Vec::new();
    for run in 0..runs {
        let root = dir.join("rootfs");
        let _ = remove_all(&root);
        fs::create_dir(&root).expect("rootfs");
        sync();
        let t = Instant::now();
        for (layer, _, _) in &layers {
            let blob = File::open(blob_path(&dir, &layer.digest.to_string())).expect("blob");
            let reader = decompress(blob).expect("decompress");
            apply_layer(&root, reader, &UnpackOptions::for_current_user()).expect("apply");
        }
        let b = t.elapsed().as_secs_f64();
        berth.push(b);
        remove_all(&root).expect("remove rootfs");

        let store = dir.join("podman-root");
        let run_root = dir.join("podman-runroot");
        podman_reset(&store, &run_root);
        sync();
        let layout = format!("oci:{}:bench", dir.join("layout").display());
        let t = Instant::now();
        let out = Command::new("podman")
            .args(["--root", &store.display().to_string()])
            .args(["--runroot", &run_root.display().to_string()])
            .args(["--storage-driver", "vfs", "pull", "-q", &layout])
            .output();
        let p = t.elapsed().as_secs_f64();
        match out {
            Ok(o) if o.status.success() => podman.push(p),
            Ok(o) => println!("podman pull failed: {}", String::from_utf8_lossy(&o.stderr)),
            Err(e) => println!("podman not run: {e}"),
        }
        podman_reset(&store, &run_root);
        println!(
            "run {}: berth {b:.2} s ({:.0} MiB/s of tar)   podman vfs {}",
            run + 1,
            tar_bytes as f64 / 1048576.0 / b,
            podman
                .last()
                .filter(|_| podman.len() == run + 1)
                .map_or("-".into(), |p| format!("{p:.2} s"))
        );
    }
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let (b, p) = (best(&berth), best(&podman));
    println!(
        "best of {runs}: berth {b:.2} s, podman vfs {p:.2} s, podman/berth = {:.2}x",
        p / b
    );
    let _ = remove_all(&dir);
}

fn sync() {
    rustix::fs::sync();
}

fn podman_reset(store: &Path, run_root: &Path) {
    let _ = Command::new("podman")
        .args(["--root", &store.display().to_string()])
        .args(["--runroot", &run_root.display().to_string()])
        .args(["--storage-driver", "vfs", "system", "reset", "-f"])
        .output();
    let _ = remove_all(store);
    let _ = remove_all(run_root);
}

fn blob_path(dir: &Path, digest: &str) -> PathBuf {
    dir.join("layout/blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// Pseudo-random bytes with about 4 bits of entropy per byte: gzip halves them, about
/// as it does binaries.
struct Noise(u64);

impl Noise {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            let v = (self.0 & 0x0f0f_0f0f_0f0f_0f0f).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// One layer of about `mib` MiB: 3/4 in 1 MiB files, 1/4 in files of 1-16 KiB, in
/// directories of 64 files; returns the packed layer, its file count and tar size.
fn make_layer(dir: &Path, index: usize, mib: u64) -> (PackedLayer, u64, u64) {
    let tar_path = dir.join(format!("layer{index}.tar"));
    let mut b = tar::Builder::new(BufWriter::with_capacity(
        1 << 20,
        File::create(&tar_path).expect("tar"),
    ));
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15 ^ (index as u64 + 1));
    let mut buf = vec![0u8; 1 << 20];
    let mut files = 0u64;
    let mut add = |b: &mut tar::Builder<_>, path: String, size: usize, noise: &mut Noise| {
        noise.fill(&mut buf[..size]);
        let mut h = tar::Header::new_gnu();
        h.set_size(size as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, path, &buf[..size]).expect("append");
    };
    let big = mib * 3 / 4;
    for i in 0..big {
        add(
            &mut b,
            format!("l{index}/big/d{}/f{i}", i / 64),
            1 << 20,
            &mut noise,
        );
        files += 1;
    }
    let mut small_bytes = 0u64;
    let mut i = 0u64;
    while small_bytes < (mib - big) << 20 {
        let size = 1024 + (i * 7919 % 15) as usize * 1024;
        add(
            &mut b,
            format!("l{index}/small/d{}/f{i}", i / 64),
            size,
            &mut noise,
        );
        small_bytes += size as u64;
        files += 1;
        i += 1;
    }
    b.into_inner().expect("tar").flush().expect("flush");
    let tar_size = fs::metadata(&tar_path).expect("tar").len();
    let tmp = dir.join("blob.tmp");
    let packed = pack_layer(
        File::open(&tar_path).expect("tar"),
        BufWriter::new(File::create(&tmp).expect("blob")),
    )
    .expect("pack");
    fs::rename(&tmp, blob_path(dir, &packed.digest.to_string())).expect("rename");
    fs::remove_file(&tar_path).expect("rm tar");
    (packed, files, tar_size)
}

/// An OCI layout holding one image of the layers, tagged `bench`.
fn write_layout(dir: &Path, layers: &[(PackedLayer, u64, u64)]) {
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("\"{}\"", l.0.diff_id))
        .collect();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
        diff_ids.join(",")
    );
    let config_digest = put(dir, config.as_bytes());
    let descs: Vec<String> = layers
        .iter()
        .map(|l| {
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":{}}}"#,
                l.0.digest, l.0.size
            )
        })
        .collect();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{}]}}"#,
        config_digest,
        config.len(),
        descs.join(",")
    );
    let manifest_digest = put(dir, manifest.as_bytes());
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"bench"}}}}]}}"#,
        manifest_digest,
        manifest.len()
    );
    fs::write(dir.join("layout/index.json"), index).expect("index");
    fs::write(
        dir.join("layout/oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("oci-layout");
}

fn put(dir: &Path, bytes: &[u8]) -> String {
    let digest = berth_image::Digest::sha256_of(bytes).to_string();
    fs::write(blob_path(dir, &digest), bytes).expect("blob");
    digest
}
