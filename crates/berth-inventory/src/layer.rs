//! One layer, read once as a stream: the allow-listed files are kept (bounded), every
//! other entry's data is skipped, whiteouts and opaque markers that can hide a kept path
//! are recorded; then the kept files are parsed into [`LayerArtifacts`].
//!
//! Parsing happens here, at layer time, so only parsed package lists are stored per
//! layer digest: a base layer shared by a hundred images is decompressed and parsed
//! once, and squashing an image never touches a blob.

use std::collections::BTreeMap;
use std::io::Read;

use tar::EntryType;

use crate::error::InventoryError;
use crate::model::{LayerArtifacts, ANALYZER_VERSION};
use crate::paths::{self, classify, FileKind};
use crate::tar_stream::{self, Info};
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
    let mut kept = Kept::default();
    tar_stream::each_entry(stream, |info, data| kept.entry(info, data))?;
    Ok(kept)
}

impl Kept {
    /// One entry: a whiteout or opaque marker that can hide a kept path is recorded,
    /// an allow-listed file kept (or its link recorded), anything else passed over.
    fn entry(&mut self, info: &Info, data: &mut dyn Read) -> Result<(), InventoryError> {
        let path = paths::normalize(&info.name)?;
        if path.is_empty() {
            return Ok(());
        }
        let (dir, base) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
        if base == ".wh..wh..opq" {
            if paths::relevant(dir) {
                self.art.opaque_dirs.push(dir.to_string());
            }
            return Ok(());
        }
        if base.starts_with(".wh..wh.") {
            return Ok(()); // aufs bookkeeping, ignored as docker does
        }
        if let Some(name) = base.strip_prefix(".wh.") {
            let deleted = if dir.is_empty() {
                name.to_string()
            } else {
                format!("{dir}/{name}")
            };
            if !name.is_empty() && paths::relevant(&deleted) {
                self.art.whiteouts.push(deleted);
            }
            return Ok(());
        }
        let Some(kind) = classify(&path) else {
            return Ok(());
        };
        match info.kind {
            EntryType::Regular | EntryType::Continuous => {
                let (size, limit) = (info.size, kind.limit());
                if size > limit {
                    self.error(&path, format!("{size} bytes, over the {limit}-byte limit"));
                } else if self.bytes + size > paths::LAYER_LIMIT {
                    let total = paths::LAYER_LIMIT;
                    self.error(
                        &path,
                        format!("over the {total}-byte limit of kept files per layer"),
                    );
                } else {
                    let mut bytes = Vec::with_capacity(size as usize);
                    data.take(limit + 1)
                        .read_to_end(&mut bytes)
                        .map_err(tar_stream::tar_or_read)?;
                    self.keep(path, kind, bytes);
                }
            }
            EntryType::Symlink => {
                let target = String::from_utf8_lossy(info.link.as_deref().unwrap_or_default());
                self.files.remove(&path);
                self.art.errors.retain(|(p, _)| *p != path);
                self.art.symlinks.retain(|(p, _)| *p != path);
                self.art.symlinks.push((path, target.into_owned()));
            }
            EntryType::Link => {
                // A hard link names an earlier entry of this same tar: two allow-listed
                // names sharing an inode (`etc/os-release`, `usr/lib/os-release`).
                let target = paths::normalize(info.link.as_deref().unwrap_or_default())?;
                match self.files.get(&target) {
                    Some((_, bytes)) => {
                        let bytes = bytes.clone();
                        self.keep(path, kind, bytes);
                    }
                    None => self.error(
                        &path,
                        format!("hard link to {target:?}, not an allow-listed file of this layer"),
                    ),
                }
            }
            _ => {} // a folder or device at an allow-listed name: nothing to read
        }
        Ok(())
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
