//! One layer, read once as a stream: the allow-listed files are kept (bounded), every
//! other entry's data is skipped, whiteouts and opaque markers that can hide a kept path
//! are recorded; then the kept files are parsed into [`LayerArtifacts`].
//!
//! Parsing happens here, at layer time, so only parsed package lists are stored per
//! layer digest: a base layer shared by a hundred images is decompressed and parsed
//! once, and squashing an image never touches a blob.

use std::collections::BTreeMap;
use std::io::{self, Read};

use tar::EntryType;

use crate::error::InventoryError;
use crate::model::{LayerArtifacts, ANALYZER_VERSION};
use crate::paths::{self, classify, FileKind};
use crate::{apk, dpkg, osrelease};

/// Media types of tar layers, by compression (OCI and Docker names, distributable or
/// not). The compression is then confirmed by the blob's first bytes, as containers/image
/// does: a media type is a claim, the magic number is a fact.
fn is_layer_media_type(media_type: &str) -> bool {
    matches!(
        media_type,
        "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
            | "application/vnd.docker.image.rootfs.diff.tar"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
    )
}

/// Reads one layer blob (`media_type` says it is a tar, plain, gzip or zstd) and
/// returns what matters in it. Errors are faults of the layer as a whole; one bad file
/// inside is recorded in [`LayerArtifacts::errors`].
pub fn analyze_layer(
    reader: impl Read + Send + 'static,
    media_type: &str,
) -> Result<LayerArtifacts, InventoryError> {
    if !is_layer_media_type(media_type) {
        return Err(InventoryError::UnknownMediaType(media_type.to_string()));
    }
    let stream = berth_rootfs::decompress(reader).map_err(InventoryError::Read)?;
    let kept = collect(stream)?;
    Ok(parse(kept))
}

/// What the stream pass keeps: raw bytes of allow-listed files, in path order.
#[derive(Default)]
struct Kept {
    files: BTreeMap<String, (FileKind, Vec<u8>)>,
    art: LayerArtifacts,
    bytes: u64,
}

impl Kept {
    fn error(&mut self, path: &str, reason: String) {
        self.files.remove(path);
        self.art.errors.retain(|(p, _)| p != path);
        self.art.symlinks.retain(|(p, _)| p != path);
        self.art.errors.push((path.to_string(), reason));
    }

    fn keep(&mut self, path: String, kind: FileKind, data: Vec<u8>) {
        self.art.errors.retain(|(p, _)| *p != path);
        self.art.symlinks.retain(|(p, _)| *p != path);
        self.bytes += data.len() as u64;
        if let Some((_, old)) = self.files.insert(path, (kind, data)) {
            self.bytes -= old.len() as u64;
        }
    }
}

/// The streaming pass over the tar.
fn collect(stream: impl Read) -> Result<Kept, InventoryError> {
    let mut archive = tar::Archive::new(stream);
    let mut kept = Kept::default();
    let entries = archive.entries().map_err(InventoryError::Tar)?;
    for entry in entries {
        let mut entry = entry.map_err(tar_or_read)?;
        let path = paths::normalize(&entry.path_bytes())?;
        if path.is_empty() {
            continue;
        }
        let (dir, base) = match path.rsplit_once('/') {
            Some((d, b)) => (d, b),
            None => ("", path.as_str()),
        };
        if base == ".wh..wh..opq" {
            if paths::relevant(dir) {
                kept.art.opaque_dirs.push(dir.to_string());
            }
            continue;
        }
        if base.starts_with(".wh..wh.") {
            continue; // aufs bookkeeping, ignored as docker does
        }
        if let Some(name) = base.strip_prefix(".wh.") {
            let deleted = if dir.is_empty() {
                name.to_string()
            } else {
                format!("{dir}/{name}")
            };
            if !name.is_empty() && paths::relevant(&deleted) {
                kept.art.whiteouts.push(deleted);
            }
            continue;
        }
        let Some(kind) = classify(&path) else {
            continue;
        };
        match entry.header().entry_type() {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let size = entry.size();
                let limit = kind.limit();
                if size > limit {
                    kept.error(&path, format!("{size} bytes, over the {limit}-byte limit"));
                    continue;
                }
                if kept.bytes + size > paths::LAYER_LIMIT {
                    kept.error(
                        &path,
                        format!(
                            "over the {}-byte limit of kept files per layer",
                            paths::LAYER_LIMIT
                        ),
                    );
                    continue;
                }
                let mut data = Vec::with_capacity(size as usize);
                (&mut entry)
                    .take(limit + 1)
                    .read_to_end(&mut data)
                    .map_err(tar_or_read)?;
                kept.keep(path, kind, data);
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .unwrap_or_default();
                kept.files.remove(&path);
                kept.art.errors.retain(|(p, _)| *p != path);
                kept.art.symlinks.retain(|(p, _)| *p != path);
                kept.art.symlinks.push((path, target));
            }
            EntryType::Link => {
                // A hard link names an earlier entry of this same tar. Layers carry
                // databases as links when two allow-listed names share an inode
                // (`etc/os-release` and `usr/lib/os-release` on some images).
                let target = entry
                    .link_name_bytes()
                    .map(|t| paths::normalize(&t))
                    .transpose()?
                    .unwrap_or_default();
                match kept.files.get(&target) {
                    Some((_, data)) => {
                        let data = data.clone();
                        kept.keep(path, kind, data);
                    }
                    None => kept.error(
                        &path,
                        format!("hard link to {target:?}, which is not an allow-listed file of this layer"),
                    ),
                }
            }
            _ => {} // a folder or device at an allow-listed name: nothing to read
        }
    }
    // Read what follows the archive's end marker, so a truncated or corrupt compressed
    // stream is an error rather than a silently shorter layer.
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(InventoryError::Read)?;
    Ok(kept)
}

/// I/O errors from the decompressor surface through the tar reader; keep them apart
/// from malformed tars so the recorded reason says which it was.
fn tar_or_read(e: io::Error) -> InventoryError {
    match e.kind() {
        io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidInput => InventoryError::Read(e),
        _ => InventoryError::Tar(e),
    }
}

/// The parsing pass over the kept files.
fn parse(kept: Kept) -> LayerArtifacts {
    let Kept {
        mut files, mut art, ..
    } = kept;
    art.analyzer_version = ANALYZER_VERSION;
    let wal: BTreeMap<String, Vec<u8>> = files
        .iter()
        .filter(|(_, (k, _))| *k == FileKind::RpmWal)
        .map(|(p, (_, d))| (p.clone(), d.clone()))
        .collect();
    files.retain(|_, (k, _)| *k != FileKind::RpmWal);
    for (path, (kind, data)) in files {
        let text = || String::from_utf8_lossy(&data).into_owned();
        match kind {
            FileKind::OsRelease => match osrelease::parse_os_release(&text()) {
                Some(os) => art.os_release.push((path, os)),
                None => art.errors.push((path, "no ID= line".into())),
            },
            FileKind::ReleaseFile => {
                if let Some(os) = osrelease::parse_release_file(&path, &text()) {
                    art.os_release.push((path, os));
                }
            }
            FileKind::DpkgStatus | FileKind::DpkgStatusD | FileKind::ApkInstalled => {
                let (pkgs, errors) = if kind == FileKind::ApkInstalled {
                    apk::parse_installed(&path, &text())
                } else {
                    dpkg::parse_status(&path, &text())
                };
                if !errors.is_empty() {
                    art.errors.push((path.clone(), errors.join("; ")));
                }
                art.databases.push((path, pkgs));
            }
            FileKind::Rpm => {
                let wal = wal.get(&format!("{path}-wal")).map(Vec::as_slice);
                match read_rpm(&path, &data, wal) {
                    Ok(pkgs) => art.databases.push((path, pkgs)),
                    Err(reason) => art.errors.push((path, reason)),
                }
            }
            FileKind::Buildinfo => art.buildinfo.push((path, text())),
            FileKind::RpmWal => {}
        }
    }
    art.errors.sort();
    art
}

/// Reads an rpm database through the rpm module: the bytes go to a private temporary
/// folder (SQLite and the BerkeleyDB reader want a file), with the SQLite write-ahead
/// log beside it when the layer has one, since it may hold the last transactions.
fn read_rpm(path: &str, data: &[u8], wal: Option<&[u8]>) -> Result<Vec<crate::Package>, String> {
    let name = path.rsplit('/').next().unwrap_or(path);
    if name == "Packages.db" {
        return Err("SUSE NDB rpm databases (Packages.db) are not read".into());
    }
    let dir = tempfile::tempdir().map_err(|e| format!("temporary folder: {e}"))?;
    let file = dir.path().join(name);
    std::fs::write(&file, data).map_err(|e| format!("temporary copy: {e}"))?;
    if let Some(wal) = wal {
        std::fs::write(dir.path().join(format!("{name}-wal")), wal)
            .map_err(|e| format!("temporary copy: {e}"))?;
    }
    // The reader's messages name the temporary file; name the layer's path instead.
    let mut pkgs = crate::rpm::read_rpmdb(&file)
        .map_err(|e| e.to_string().replace(&file.display().to_string(), path))?;
    for p in &mut pkgs {
        p.db_path = path.to_string();
    }
    Ok(pkgs)
}
