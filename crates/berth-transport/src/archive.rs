//! `oci-archive:PATH[:REF]`: an OCI layout in a tar file. As containers/image does,
//! reading unpacks the archive into a temporary layout, and writing builds a
//! temporary layout then packs it into PATH, replacing what was there (one image per
//! archive).
//!
//! Unpacking refuses what a layout never holds and a hostile archive uses: absolute
//! paths, `..`, links and devices. Only regular files and folders come out, and only
//! under the temporary folder. The archive is read with berth-rootfs's tar reader, so
//! its extension headers are capped and its size bounded by [`TarLimits`]: an archive
//! past them is refused before the file over the limit is written.

use std::ffi::OsStr;
use std::fs::File;
use std::io::BufWriter;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use berth_rootfs::{Kind, RootfsError, TarLimits, TarReader};
use tempfile::TempDir;

use crate::files::io;
use crate::oci::Layout;
use crate::TransportError;

/// Unpacks `archive` into a new temporary folder and opens it as a layout.
pub async fn open(
    archive: &Path,
    reference: Option<String>,
) -> Result<(Layout, TempDir), TransportError> {
    let tmp = unpack_to_temp(archive, Links::Refuse, TarLimits::default()).await?;
    Ok((Layout::new(tmp.path().to_path_buf(), reference), tmp))
}

/// What to do with symbolic and hard links in an archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// An OCI archive never has them.
    Refuse,
    /// `docker save` writes legacy `<id>/layer.tar -> ../<diffid>.tar` links that
    /// `manifest.json` does not use: leave them out, never create them.
    Skip,
}

/// Unpacks `archive` into a new temporary folder (see [`unpack`]'s rules), refusing
/// an archive past `limits`.
pub async fn unpack_to_temp(
    archive: &Path,
    links: Links,
    limits: TarLimits,
) -> Result<TempDir, TransportError> {
    let archive = archive.to_path_buf();
    tokio::task::spawn_blocking(move || -> Result<TempDir, TransportError> {
        let tmp = tempfile::Builder::new()
            .prefix("berth-archive-")
            .tempdir()
            .map_err(io(Path::new("/tmp"), "creating a temporary folder in"))?;
        unpack(&archive, tmp.path(), links, &limits)?;
        Ok(tmp)
    })
    .await
    .map_err(|e| TransportError::Io {
        context: "unpacking".into(),
        source: std::io::Error::other(e),
    })?
}

fn unpack(
    archive: &Path,
    into: &Path,
    links: Links,
    limits: &TarLimits,
) -> Result<(), TransportError> {
    let file = File::open(archive).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            TransportError::NotFound(format!("archive {}", archive.display()))
        }
        _ => TransportError::Io {
            context: format!("opening {}", archive.display()),
            source: e,
        },
    })?;
    let bad = |why: String| TransportError::Corrupt(format!("{}: {why}", archive.display()));
    let reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut tar = TarReader::with_limits(reader, *limits);
    while let Some(header) = tar
        .next_entry()
        .map_err(|e| tar_error(archive.display(), e))?
    {
        let path = Path::new(OsStr::from_bytes(&header.name));
        let mut rel = PathBuf::new();
        for c in path.components() {
            match c {
                Component::Normal(p) => rel.push(p),
                Component::CurDir => {}
                _ => return Err(bad(format!("entry {} leaves the archive", path.display()))),
            }
        }
        let dest = into.join(&rel);
        match header.kind {
            Kind::Directory => {
                std::fs::create_dir_all(&dest).map_err(io(&dest, "creating"))?;
            }
            Kind::Regular => {
                if rel.as_os_str().is_empty() {
                    return Err(bad("a file entry without a name".into()));
                }
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent).map_err(io(parent, "creating"))?;
                }
                let mut out = File::create(&dest).map_err(io(&dest, "creating"))?;
                std::io::copy(&mut tar, &mut out).map_err(io(&dest, "writing"))?;
            }
            Kind::Symlink | Kind::HardLink if links == Links::Skip => {}
            other => {
                return Err(bad(format!(
                    "entry {} is a {other:?}; an image archive holds files and folders only",
                    path.display()
                )))
            }
        }
    }
    Ok(())
}

/// The tar reader's refusals: a limit says which variable raises it; a malformed
/// archive is a read error of the archive, as before.
pub(crate) fn tar_error(what: impl std::fmt::Display, e: RootfsError) -> TransportError {
    match e {
        RootfsError::Limit { .. } => TransportError::Unsupported(format!("{what}: {e}")),
        e => TransportError::Io {
            context: format!("reading {what}"),
            source: std::io::Error::other(e.to_string()),
        },
    }
}

/// Packs the layout in `dir` into `archive`: a temporary file beside it, fsynced, then
/// renamed over it.
pub async fn pack(dir: &Path, archive: &Path) -> Result<(), TransportError> {
    let (dir, archive) = (dir.to_path_buf(), archive.to_path_buf());
    tokio::task::spawn_blocking(move || -> Result<(), TransportError> {
        // A new file with a random name beside the archive, created exclusively: a
        // planted symbolic link is never followed. Removed on any failure (drop).
        let parent = match archive.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp =
            tempfile::NamedTempFile::new_in(&parent).map_err(io(&parent, "creating a file in"))?;
        let file = tmp.reopen().map_err(io(tmp.path(), "opening"))?;
        let mut tar = tar::Builder::new(BufWriter::with_capacity(1 << 20, file));
        tar.mode(tar::HeaderMode::Deterministic);
        add_tree(&mut tar, &dir, Path::new(""))?;
        let file = tar
            .into_inner()
            .map_err(io(tmp.path(), "writing"))?
            .into_inner()
            .map_err(|e| TransportError::Io {
                context: format!("writing {}", tmp.path().display()),
                source: e.into_error(),
            })?;
        file.sync_all().map_err(io(tmp.path(), "syncing"))?;
        crate::files::readable(tmp.path())?;
        tmp.persist(&archive)
            .map_err(|e| io(&archive, "renaming to")(e.error))?;
        Ok(())
    })
    .await
    .map_err(|e| TransportError::Io {
        context: "packing".into(),
        source: std::io::Error::other(e),
    })?
}

/// Adds `base/rel` and everything below it, folders before their files, in name order.
fn add_tree(
    tar: &mut tar::Builder<BufWriter<File>>,
    base: &Path,
    rel: &Path,
) -> Result<(), TransportError> {
    let here = base.join(rel);
    let mut names: Vec<_> = std::fs::read_dir(&here)
        .map_err(io(&here, "reading"))?
        .filter_map(|e| e.ok())
        .collect();
    names.sort_by_key(|e| e.file_name());
    for e in names {
        let path = e.path();
        let name = rel.join(e.file_name());
        if path.is_dir() {
            tar.append_dir(&name, &path).map_err(io(&path, "packing"))?;
            add_tree(tar, base, &name)?;
        } else {
            tar.append_path_with_name(&path, &name)
                .map_err(io(&path, "packing"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive_with(entries: &[(&str, tar::EntryType, &[u8])]) -> (TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar");
        let mut b = tar::Builder::new(File::create(&path).unwrap());
        for (name, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            if *kind == tar::EntryType::Symlink {
                h.set_link_name("/etc/passwd").unwrap();
            }
            // set_path refuses `..`; write the raw name as a hostile tool would.
            let bytes = name.as_bytes();
            h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.finish().unwrap();
        (dir, path)
    }

    #[test]
    fn hostile_archives_are_refused_and_write_nothing_outside() {
        for (name, kind) in [
            ("../evil", tar::EntryType::Regular),
            ("/abs/evil", tar::EntryType::Regular),
            ("a/../../evil", tar::EntryType::Regular),
            ("link", tar::EntryType::Symlink),
            ("dev", tar::EntryType::Char),
        ] {
            let (dir, path) = archive_with(&[
                ("oci-layout", tar::EntryType::Regular, b"{}"),
                (name, kind, b"x"),
            ]);
            let into = dir.path().join("into");
            std::fs::create_dir_all(&into).unwrap();
            let err = unpack(&path, &into, Links::Refuse, &TarLimits::default()).unwrap_err();
            assert!(matches!(err, TransportError::Corrupt(_)), "{name}: {err}");
            assert!(!dir.path().join("evil").exists());
            assert!(!Path::new("/abs/evil").exists());
        }
    }

    #[test]
    fn pack_then_unpack() {
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("l");
        std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
        std::fs::write(layout.join("index.json"), b"{}").unwrap();
        std::fs::write(layout.join("blobs/sha256/ab"), b"blob").unwrap();
        let archive = dir.path().join("x.tar");
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(pack(&layout, &archive))
            .unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        unpack(&archive, &out, Links::Refuse, &TarLimits::default()).unwrap();
        assert_eq!(std::fs::read(out.join("blobs/sha256/ab")).unwrap(), b"blob");
        assert_eq!(std::fs::read(out.join("index.json")).unwrap(), b"{}");
    }
}
