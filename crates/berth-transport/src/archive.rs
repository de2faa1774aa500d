//! `oci-archive:PATH[:REF]`: an OCI layout in a tar file. As containers/image does,
//! reading unpacks the archive into a temporary layout, and writing builds a
//! temporary layout then packs it into PATH, replacing what was there (one image per
//! archive).
//!
//! Unpacking refuses what a layout never holds and a hostile archive uses: absolute
//! paths, `..`, links and devices. Only regular files and folders come out, and only
//! under the temporary folder.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Component, Path, PathBuf};

use tempfile::TempDir;

use crate::files::io;
use crate::oci::Layout;
use crate::TransportError;

/// Unpacks `archive` into a new temporary folder and opens it as a layout.
pub async fn open(
    archive: &Path,
    reference: Option<String>,
) -> Result<(Layout, TempDir), TransportError> {
    let tmp = unpack_to_temp(archive, Links::Refuse).await?;
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

/// Unpacks `archive` into a new temporary folder (see [`unpack`]'s rules).
pub async fn unpack_to_temp(archive: &Path, links: Links) -> Result<TempDir, TransportError> {
    let archive = archive.to_path_buf();
    tokio::task::spawn_blocking(move || -> Result<TempDir, TransportError> {
        let tmp = tempfile::Builder::new()
            .prefix("berth-archive-")
            .tempdir()
            .map_err(io(Path::new("/tmp"), "creating a temporary folder in"))?;
        unpack(&archive, tmp.path(), links)?;
        Ok(tmp)
    })
    .await
    .map_err(|e| TransportError::Io {
        context: "unpacking".into(),
        source: std::io::Error::other(e),
    })?
}

fn unpack(archive: &Path, into: &Path, links: Links) -> Result<(), TransportError> {
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
    let mut tar = tar::Archive::new(std::io::BufReader::with_capacity(1 << 20, file));
    let entries = tar.entries().map_err(io(archive, "reading"))?;
    for entry in entries {
        let mut entry = entry.map_err(io(archive, "reading"))?;
        let path = entry.path().map_err(io(archive, "reading"))?.into_owned();
        let mut rel = PathBuf::new();
        for c in path.components() {
            match c {
                Component::Normal(p) => rel.push(p),
                Component::CurDir => {}
                _ => return Err(bad(format!("entry {} leaves the archive", path.display()))),
            }
        }
        let dest = into.join(&rel);
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                std::fs::create_dir_all(&dest).map_err(io(&dest, "creating"))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if rel.as_os_str().is_empty() {
                    return Err(bad("a file entry without a name".into()));
                }
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent).map_err(io(parent, "creating"))?;
                }
                let mut out = File::create(&dest).map_err(io(&dest, "creating"))?;
                std::io::copy(&mut entry, &mut out).map_err(io(&dest, "writing"))?;
            }
            tar::EntryType::Symlink | tar::EntryType::Link if links == Links::Skip => {}
            // PAX global headers carry metadata for the archive, not a file.
            tar::EntryType::XGlobalHeader => {}
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
            let err = unpack(&path, &into, Links::Refuse).unwrap_err();
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
        unpack(&archive, &out, Links::Refuse).unwrap();
        assert_eq!(std::fs::read(out.join("blobs/sha256/ab")).unwrap(), b"blob");
        assert_eq!(std::fs::read(out.join("index.json")).unwrap(), b"{}");
    }
}
