//! Deterministic test data: pseudo-random bytes from a seeded xorshift, the 1 GiB
//! blob files (cached in the work directory with their digests), and the tiny images.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use sha2::{Digest as _, Sha256};

use crate::progress;

pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// xorshift64 seeded through splitmix64: fast, and different for every seed.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        XorShift(if z == 0 { 1 } else { z })
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let b = self.next_u64().to_le_bytes();
            let n = rest.len();
            rest.copy_from_slice(&b[..n]);
        }
    }
}

pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}

/// A file of pseudo-random bytes and its digest.
pub struct BigFile {
    pub path: PathBuf,
    pub size: u64,
    pub digest: String,
}

/// Seed of generated blob `index` of `size` bytes: distinct for every (size, index).
pub fn big_seed(size: u64, index: u64) -> u64 {
    0xB16B_0000_0000_0000 ^ (size << 8) ^ index
}

/// `data/big-<MiB>MiB-<index>.bin`, generated once (with its digest cached in a
/// `.digest` file next to it) and reused by later runs.
pub fn big_file(data_dir: &Path, size: u64, index: u64) -> Result<BigFile> {
    let path = data_dir.join(format!("big-{}MiB-{index}.bin", size / MIB));
    let digest_path = path.with_extension("digest");
    if let (Ok(meta), Ok(digest)) = (fs::metadata(&path), fs::read_to_string(&digest_path)) {
        let digest = digest.trim().to_string();
        if meta.len() == size && digest.starts_with("sha256:") && digest.len() == 71 {
            return Ok(BigFile { path, size, digest });
        }
    }
    progress(&format!(
        "generating {} ({} MiB, one-time)",
        path.display(),
        size / MIB
    ));
    let t0 = Instant::now();
    let tmp = path.with_extension("tmp");
    let mut out = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut rng = XorShift::new(big_seed(size, index));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 4 * MIB as usize];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill(&mut buf[..n]);
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .with_context(|| format!("writing {}", tmp.display()))?;
        left -= n as u64;
    }
    out.sync_all()?;
    drop(out);
    let digest = format!("sha256:{:x}", hasher.finalize());
    fs::rename(&tmp, &path)?;
    fs::write(&digest_path, format!("{digest}\n"))?;
    progress(&format!(
        "  done in {:.1} s: {digest}",
        t0.elapsed().as_secs_f64()
    ));
    Ok(BigFile { path, size, digest })
}

/// Reads a file once and throws the bytes away, so that it is in the page cache.
pub fn read_through(path: &Path) -> Result<u64> {
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut buf = vec![0u8; MIB as usize];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
        if total > 64 * GIB {
            bail!("{} is larger than expected", path.display());
        }
    }
}

/// One small image: a layer of pseudo-random bytes (2 KiB for the tiny ones), its
/// config and an OCI manifest.
#[derive(Clone)]
pub struct SmallImage {
    pub tag: String,
    pub layer: Vec<u8>,
    pub layer_digest: String,
    pub config: Vec<u8>,
    pub config_digest: String,
    pub manifest: Vec<u8>,
}

/// `n` tiny images tagged `s000`, `s001`, ...; all content distinct.
pub fn small_images(n: usize) -> Vec<SmallImage> {
    (0..n)
        .map(|i| image(format!("s{i:03}"), 0x5A11_0000 + i as u64, 2048))
        .collect()
}

/// One image tagged `tag` whose layer is `layer_size` pseudo-random bytes from
/// `seed` (distinct seeds, distinct images), with its config and OCI manifest.
pub fn image(tag: String, seed: u64, layer_size: usize) -> SmallImage {
    let mut layer = vec![0u8; layer_size];
    XorShift::new(seed).fill(&mut layer);
    let layer_digest = sha256_digest(&layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/usr/bin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }))
    .expect("JSON of literals");
    let config_digest = sha256_digest(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": OCI_LAYER, "digest": layer_digest, "size": layer.len()}],
    }))
    .expect("JSON of literals");
    SmallImage {
        tag,
        layer,
        layer_digest,
        config,
        config_digest,
        manifest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_is_deterministic_and_seeded() {
        let (mut a, mut b, mut c) = (vec![0u8; 37], vec![0u8; 37], vec![0u8; 37]);
        XorShift::new(1).fill(&mut a);
        XorShift::new(1).fill(&mut b);
        XorShift::new(2).fill(&mut c);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(big_seed(GIB, 0), big_seed(GIB, 1));
        assert_ne!(big_seed(GIB, 0), big_seed(256 * MIB, 0));
    }

    #[test]
    fn small_images_are_distinct() {
        let imgs = small_images(3);
        assert_eq!(imgs[2].tag, "s002");
        assert_ne!(imgs[0].layer_digest, imgs[1].layer_digest);
        assert_ne!(imgs[0].config_digest, imgs[1].config_digest);
        let m: serde_json::Value = serde_json::from_slice(&imgs[0].manifest).unwrap();
        assert_eq!(m["layers"][0]["digest"], imgs[0].layer_digest.as_str());
    }

    #[test]
    fn big_file_is_cached() {
        let dir = std::env::temp_dir().join(format!("berth-bench-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let a = big_file(&dir, MIB + 3, 0).unwrap();
        assert_eq!(fs::metadata(&a.path).unwrap().len(), MIB + 3);
        assert_eq!(a.digest, sha256_digest(&fs::read(&a.path).unwrap()));
        let b = big_file(&dir, MIB + 3, 0).unwrap();
        assert_eq!(a.digest, b.digest);
        assert_eq!(read_through(&a.path).unwrap(), MIB + 3);
        fs::remove_dir_all(&dir).unwrap();
    }
}
