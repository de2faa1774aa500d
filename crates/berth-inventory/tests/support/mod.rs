//! Fixtures built by real tools: a Debian root from `debootstrap` (cached under the
//! target folder, keyed by suite, so only the first run downloads), tarred by GNU tar;
//! small layers written with the `tar` crate for the cases a real tool would take
//! minutes to produce.

#![allow(dead_code)]

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

pub const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const SUITE: &str = "bookworm";

/// Fails the test with the Debian package to install when `tool` is missing.
pub fn require(tool: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()));
    assert!(
        found,
        "{tool} is missing: install the Debian package `{package}` (scripts/install-peers.sh does)"
    );
}

fn cache_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    fs::create_dir_all(&dir).unwrap();
    dir
}

static DEBIAN: Mutex<()> = Mutex::new(());

/// A `debootstrap --variant=minbase` root of [`SUITE`] and its gzip layer tarred with GNU
/// tar (`./etc/...` names, hard links, the `etc/os-release` symlink as Debian ships it).
/// Both are made once and reused; a new suite is a new cache key.
pub fn debian() -> (PathBuf, PathBuf) {
    let _one_at_a_time = DEBIAN.lock().unwrap_or_else(|e| e.into_inner());
    let root = cache_dir().join(format!("debootstrap-{SUITE}-minbase"));
    if !root.join("var/lib/dpkg/status").is_file() {
        require("debootstrap", "debootstrap");
        let partial = cache_dir().join(format!("debootstrap-{SUITE}-minbase.partial"));
        let _ = fs::remove_dir_all(&partial);
        let out = Command::new("debootstrap")
            .args(["--variant=minbase", SUITE])
            .arg(&partial)
            .arg("http://deb.debian.org/debian")
            .output()
            .expect("running debootstrap");
        assert!(
            out.status.success(),
            "debootstrap failed (it needs root and deb.debian.org): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = fs::remove_dir_all(&root);
        fs::rename(&partial, &root).unwrap();
    }
    let layer = cache_dir().join(format!("debootstrap-{SUITE}-minbase.tar.gz"));
    if !layer.is_file() {
        let partial = layer.with_extension("partial");
        let out = Command::new("tar")
            .arg("-C")
            .arg(&root)
            .args(["--use-compress-program", "gzip -1", "-cf"])
            .arg(&partial)
            .arg(".")
            .output()
            .expect("running tar");
        assert!(
            out.status.success(),
            "tar: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        fs::rename(&partial, &layer).unwrap();
    }
    (root, layer)
}

/// `dpkg-query -W` on `root`: (name, version, arch) of every installed package.
pub fn dpkg_query(root: &Path) -> Vec<(String, String, String)> {
    require("dpkg-query", "dpkg");
    let out = Command::new("dpkg-query")
        .arg("--admindir")
        .arg(root.join("var/lib/dpkg"))
        .args(["-W", "-f", "${Package} ${Version} ${Architecture}\\n"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut list: Vec<_> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let mut w = l.split(' ');
            let mut next = || w.next().unwrap().to_string();
            (next(), next(), next())
        })
        .collect();
    list.sort();
    list
}

/// One entry of a layer written by [`layer`].
pub enum E<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
    /// A name written into the header as is (no checks): hostile names.
    Raw(&'a [u8], &'a [u8]),
}

/// A plain tar of `entries`, in order.
pub fn tar(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        match e {
            E::File(p, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, p, *data).unwrap();
            }
            E::Dir(p) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, p, &[][..]).unwrap();
            }
            E::Symlink(p, t) | E::HardLink(p, t) => {
                h.set_entry_type(if matches!(e, E::Symlink(..)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                h.set_size(0);
                b.append_link(&mut h, p, t).unwrap();
            }
            E::Raw(name, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
                h.set_cksum();
                b.append(&h, *data).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// Analyzes a gzip layer of `entries`.
pub fn analyze(entries: &[E]) -> berth_inventory::LayerArtifacts {
    berth_inventory::analyze_layer(std::io::Cursor::new(gzip(&tar(entries))), GZIP).unwrap()
}

pub fn analyze_file(path: &Path, media_type: &str) -> berth_inventory::LayerArtifacts {
    berth_inventory::analyze_layer(File::open(path).unwrap(), media_type)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// (name, version, arch) of an inventory's packages, sorted.
pub fn triples(inv: &berth_inventory::Inventory) -> Vec<(String, String, String)> {
    let mut v: Vec<_> = inv
        .packages
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                p.version.clone(),
                p.arch.clone().unwrap_or_default(),
            )
        })
        .collect();
    v.sort();
    v
}
