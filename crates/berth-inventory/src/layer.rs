//! One layer, read once as a stream: the allow-listed files are kept (bounded), every
//! other entry's data is skipped, whiteouts and opaque markers that can hide a kept path
//! are recorded; then the kept files are parsed into [`LayerArtifacts`].
//!
//! Parsing happens here, at layer time, so only parsed package lists are stored per
//! layer digest: a base layer shared by a hundred images is decompressed and parsed
//! once, and squashing an image never touches a blob.

use std::collections::BTreeMap;
use std::io::{self, BufReader, Read};

use berth_rootfs::{Header, Kind, RootfsError, TarLimits, TarReader, MAX_TAIL};

use crate::error::InventoryError;
use crate::model::{LayerArtifacts, ANALYZER_VERSION};
use crate::paths::{self, classify, FileKind};
use crate::{apk, dpkg, osrelease};

/// Media types of tar layers, by compression (OCI and Docker names, distributable or
/// not). The compression is then confirmed by the blob's first bytes, as containers/image
/// does: a media type is a claim, the magic number is a fact.
pub fn is_layer_media_type(media_type: &str) -> bool {
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
/// inside is recorded in [`LayerArtifacts::errors`]. The tar is bounded by the default
/// [`TarLimits`]; [`analyze_layer_with`] takes others.
pub fn analyze_layer(
    reader: impl Read + Send + 'static,
    media_type: &str,
) -> Result<LayerArtifacts, InventoryError> {
    analyze_layer_with(reader, media_type, &TarLimits::default())
}

/// [`analyze_layer`] with the tar bounded by `limits`: a layer past one is an error
/// (the registry analyzes every push, so a layer of billions of entries must end).
pub fn analyze_layer_with(
    reader: impl Read + Send + 'static,
    media_type: &str,
    limits: &TarLimits,
) -> Result<LayerArtifacts, InventoryError> {
    if !is_layer_media_type(media_type) {
        return Err(InventoryError::UnknownMediaType(media_type.to_string()));
    }
    let stream = berth_rootfs::decompress(reader).map_err(InventoryError::Read)?;
    let kept = collect(stream, limits)?;
    Ok(parse(kept))
}

/// Links, whiteouts, opaque markers and errors recorded at allow-listed paths per layer
/// at most (a real layer has a few dozen): past it the layer fails, with the reason.
/// Each is compared with the others as it comes, and their lists are kept and squashed:
/// unbounded, a few MB of repetitive tar took hours and tens of GB.
const MAX_NOTES: usize = 4096;

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

    /// Why a file of `size` bytes of `kind` is not kept, if it is over its own limit or
    /// the layer's.
    fn over_limits(&self, kind: FileKind, size: u64) -> Option<String> {
        let limit = kind.limit();
        if size > limit {
            return Some(format!("{size} bytes, over the {limit}-byte limit"));
        }
        if self.bytes + size > paths::LAYER_LIMIT {
            let total = paths::LAYER_LIMIT;
            return Some(format!(
                "over the {total}-byte limit of kept files per layer"
            ));
        }
        None
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

/// The streaming pass over the tar, through berth-rootfs's reader (extension headers
/// capped, limits counted); then the stream is read to its end, so that a compressed
/// stream's trailer is checked.
fn collect(stream: impl Read, limits: &TarLimits) -> Result<Kept, InventoryError> {
    let mut kept = Kept::default();
    let mut tar = TarReader::with_limits(BufReader::with_capacity(1 << 16, stream), *limits);
    while let Some(header) = tar.next_entry().map_err(tar_error)? {
        kept.entry(&header, &mut tar)?;
        let art = &kept.art;
        let notes =
            art.symlinks.len() + art.errors.len() + art.whiteouts.len() + art.opaque_dirs.len();
        if notes > MAX_NOTES {
            return Err(InventoryError::Tar(io::Error::other(format!(
                "more than {MAX_NOTES} links, whiteouts or unreadable files at the paths analyzed"
            ))));
        }
    }
    let tail = io::copy(&mut tar.into_inner().take(MAX_TAIL + 1), &mut io::sink())
        .map_err(InventoryError::Read)?;
    if tail > MAX_TAIL {
        return Err(InventoryError::Tar(io::Error::other(format!(
            "more than {MAX_TAIL} bytes after the end of the archive"
        ))));
    }
    Ok(kept)
}

/// The tar reader's refusals (malformed, over a limit) are the layer's tar's fault.
fn tar_error(e: RootfsError) -> InventoryError {
    InventoryError::Tar(io::Error::other(e.to_string()))
}

/// I/O errors of the decompressor surface through the tar reader; keep them apart
/// from malformed tars so the recorded reason says which it was.
fn tar_or_read(e: io::Error) -> InventoryError {
    match e.kind() {
        io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidInput => InventoryError::Read(e),
        _ => InventoryError::Tar(e),
    }
}

impl Kept {
    /// One entry: a whiteout or opaque marker that can hide a kept path is recorded,
    /// an allow-listed file kept (or its link recorded), anything else passed over.
    fn entry(&mut self, info: &Header, data: &mut impl Read) -> Result<(), InventoryError> {
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
            // A file or link where a watched folder (or one on the way to it) was:
            // applying the layer removes the folder below it, as a whiteout would
            // (Fedora's `var/lib/rpm -> ../../usr/lib/sysimage/rpm`, `lib -> usr/lib`).
            if !matches!(info.kind, Kind::Directory | Kind::Other(_))
                && paths::watched_folder(&path)
            {
                self.art.whiteouts.push(path);
            }
            return Ok(());
        };
        match info.kind {
            Kind::Regular => match self.over_limits(kind, info.size) {
                Some(why) => self.error(&path, why),
                None => {
                    let mut bytes = Vec::with_capacity(info.size as usize);
                    data.take(kind.limit() + 1)
                        .read_to_end(&mut bytes)
                        .map_err(tar_or_read)?;
                    self.keep(path, kind, bytes);
                }
            },
            Kind::Symlink => {
                let target = String::from_utf8_lossy(&info.link);
                self.files.remove(&path);
                self.art.errors.retain(|(p, _)| *p != path);
                self.art.symlinks.retain(|(p, _)| *p != path);
                self.art.symlinks.push((path, target.into_owned()));
            }
            Kind::HardLink => {
                // A hard link names an earlier entry of this same tar: two allow-listed
                // names sharing an inode (`etc/os-release`, `usr/lib/os-release`).
                let target = paths::normalize(&info.link)?;
                let size = self.files.get(&target).map(|(_, b)| b.len() as u64);
                // Held to the limits of a file of its own: each link was a copy that no
                // limit counted (a 64 MiB file and a thousand links, 64 GB).
                match size.map(|size| self.over_limits(kind, size)) {
                    Some(Some(why)) => self.error(&path, why),
                    Some(None) => {
                        let bytes = self.files[&target].1.clone();
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
    let mut packages = 0;
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
                let room = MAX_PACKAGES - packages;
                let parsed = if kind == FileKind::ApkInstalled {
                    apk::parse_installed(&path, &text(), room)
                } else {
                    dpkg::parse_status(&path, &text(), room)
                };
                match parsed {
                    Ok((pkgs, skipped)) => {
                        if !skipped.is_empty() {
                            art.warnings.push((path.clone(), skipped.join("; ")));
                        }
                        add_database(&mut art, &mut packages, path, pkgs);
                    }
                    Err(why) => art.errors.push((path, why)),
                }
            }
            FileKind::Rpm => {
                let wal = wal.get(&format!("{path}-wal")).map(Vec::as_slice);
                match read_rpm(&path, &data, wal) {
                    Ok(pkgs) => add_database(&mut art, &mut packages, path, pkgs),
                    Err(reason) => art.errors.push((path, reason)),
                }
            }
            FileKind::Buildinfo => art.buildinfo.push((path, text())),
            FileKind::RpmWal => {}
        }
    }
    art.errors.sort();
    art.warnings.sort();
    art
}

/// Why a database over [`MAX_PACKAGES`] is not read.
pub(crate) fn over_packages() -> String {
    format!("over the {MAX_PACKAGES} packages read per layer")
}

/// Packages read from one layer at most (a full distribution is a few thousand; a
/// 256 MiB of `status.d` stanzas held ten million, then cloned, matched and stored).
pub(crate) const MAX_PACKAGES: usize = 100_000;

/// Adds a database's packages to the layer's, unless they would pass
/// [`MAX_PACKAGES`]: then the database is an error of the layer, with the reason.
fn add_database(
    art: &mut LayerArtifacts,
    packages: &mut usize,
    path: String,
    pkgs: Vec<crate::Package>,
) {
    if *packages + pkgs.len() > MAX_PACKAGES {
        art.errors.push((path, over_packages()));
        return;
    }
    *packages += pkgs.len();
    art.databases.push((path, pkgs));
}

/// Reads an rpm database through the rpm module: the bytes go to a private temporary
/// folder (SQLite and the BerkeleyDB reader want a file), with the SQLite write-ahead
/// log beside it when the layer has one, since it may hold the last transactions.
fn read_rpm(path: &str, data: &[u8], wal: Option<&[u8]>) -> Result<Vec<crate::Package>, String> {
    let name = path.rsplit('/').next().unwrap_or(path);
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

#[cfg(test)]
mod tests {
    use super::*;

    const TAR: &str = "application/vnd.oci.image.layer.v1.tar";

    fn layer(names: &[&str]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for name in names {
            let mut h = tar::Header::new_gnu();
            h.set_size(3);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, &b"x=1"[..]).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn analyze(tar: Vec<u8>, limits: TarLimits) -> Result<LayerArtifacts, InventoryError> {
        analyze_layer_with(io::Cursor::new(tar), TAR, &limits)
    }

    /// A tar of `entries`: (name, hard-link target or none, data).
    fn tar_of(entries: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, link, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            match link {
                Some(target) => {
                    h.set_entry_type(tar::EntryType::Link);
                    h.set_size(0);
                    b.append_link(&mut h, name, target).unwrap();
                }
                None => {
                    h.set_size(data.len() as u64);
                    h.set_cksum();
                    b.append_data(&mut h, name, *data).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    /// A hard link is held to the limits of a file of its own: each was a copy of its
    /// target that no limit counted.
    #[test]
    fn hard_links_count_against_the_limits() {
        let status = vec![b'x'; (paths::TEXT_LIMIT + 1) as usize];
        let tar = tar_of(&[
            ("var/lib/dpkg/status", None, &status),
            ("var/lib/dpkg/status.d/p1", Some("var/lib/dpkg/status"), b""),
        ]);
        let art = analyze(tar, TarLimits::default()).unwrap();
        let (path, why) = &art.errors[0];
        assert_eq!(path, "var/lib/dpkg/status.d/p1");
        assert!(why.contains("limit"), "{why}");
        assert!(art
            .databases
            .iter()
            .all(|(p, _)| p != "var/lib/dpkg/status.d/p1"));
    }

    /// Packages read from one layer are bounded: past the bound a database is an
    /// error of the layer, not ten million packages held, matched and stored.
    #[test]
    fn packages_per_layer_are_bounded() {
        let mut art = LayerArtifacts::default();
        let mut n = 0;
        let pkg = crate::Package {
            kind: crate::PackageKind::Deb,
            name: "p".into(),
            version: "1".into(),
            source_name: None,
            source_version: None,
            arch: None,
            license: None,
            purl: String::new(),
            db_path: String::new(),
            layer_index: 0,
        };
        add_database(
            &mut art,
            &mut n,
            "a".into(),
            vec![pkg.clone(); MAX_PACKAGES - 1],
        );
        add_database(&mut art, &mut n, "b".into(), vec![pkg.clone(); 2]);
        add_database(&mut art, &mut n, "c".into(), vec![pkg]);
        let kept: Vec<&str> = art.databases.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(kept, ["a", "c"]);
        assert_eq!(art.errors[0].0, "b");
        assert!(
            art.errors[0].1.contains("100000 packages"),
            "{:?}",
            art.errors
        );
    }

    /// Links, whiteouts and errors at the analyzed paths are bounded per layer, and so
    /// is what follows the end of the archive.
    #[test]
    fn notes_and_tails_are_bounded() {
        let names: Vec<String> = (0..=MAX_NOTES)
            .map(|i| format!("var/lib/dpkg/status.d/.wh.p{i}"))
            .collect();
        let entries: Vec<(&str, Option<&str>, &[u8])> =
            names.iter().map(|n| (n.as_str(), None, &b""[..])).collect();
        let err = analyze(tar_of(&entries), TarLimits::default()).unwrap_err();
        assert!(err.to_string().contains("more than 4096"), "{err}");
        let mut tar = tar_of(&[("etc/os-release", None, b"ID=debian\n")]);
        assert!(analyze(tar.clone(), TarLimits::default()).is_ok());
        tar.extend(vec![0u8; (MAX_TAIL + 1024) as usize]);
        let err = analyze(tar, TarLimits::default()).unwrap_err();
        assert!(
            err.to_string().contains("after the end of the archive"),
            "{err}"
        );
    }

    #[test]
    fn a_layer_past_its_limits_is_an_error_naming_the_limit() {
        let names = ["etc/a", "etc/b", "etc/c", "etc/os-release"];
        let small = |e, b, p| TarLimits {
            max_entries: e,
            max_bytes: b,
            max_path: p,
        };
        let err = analyze(layer(&names), small(3, 100, 100)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "reading the layer's tar: tar exceeds 3 entries at entry \"etc/os-release\" \
             (set BERTH_TAR_MAX_ENTRIES to raise the limit)"
        );
        let err = analyze(layer(&names), small(10, 11, 100)).unwrap_err();
        assert!(err.to_string().contains("BERTH_TAR_MAX_BYTES"), "{err}");
        let long = format!("etc/{}", "x".repeat(40));
        let err = analyze(layer(&[&long]), small(10, 100, 40)).unwrap_err();
        assert!(err.to_string().contains("BERTH_TAR_MAX_PATH"), "{err}");
        // Within them, and with the defaults, the same layers are read.
        analyze(layer(&names), small(4, 12, 100)).unwrap();
        analyze_layer(io::Cursor::new(layer(&[&long])), TAR).unwrap();
    }
}
