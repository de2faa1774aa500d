//! SUSE's NDB `Packages.db` (rpm's `lib/backend/ndb/rpmpkg.c`; SLES 15, openSUSE
//! Leap 15.3 and later, BCI): what `rpm --define '_db_backend ndb'` writes.
//!
//! Little-endian throughout. A 32-byte header (`RpmP`, version 0, generation, the
//! number of 4 KiB slot pages), then the slot pages: 16-byte slots (`Slot`, package
//! index, block offset, block count; the first two slots' room is the header). A
//! slot with a package index points, in 16-byte blocks, at a blob: a 16-byte head
//! (`BlbS`, package index, Adler-32, length), then the rpm header blob, as the SQLite
//! format's `blob` column holds it. Every offset and length comes from a file anybody
//! can push: each is checked against the file before it is used.

use std::path::Path;

use super::header::MAX_HEADER_BYTES;
use super::{display, io_err, package_from_blob, RpmError};
use crate::model::Package;

const HEADER_MAGIC: u32 = u32::from_le_bytes(*b"RpmP");
const SLOT_MAGIC: u32 = u32::from_le_bytes(*b"Slot");
const BLOB_MAGIC: u32 = u32::from_le_bytes(*b"BlbS");
const PAGE: usize = 4096;
const SLOT: usize = 16;
const BLOCK: usize = 16;
/// rpm's own bound on slot pages (and go-rpmdb's): 2048 pages of 256 slots.
const MAX_SLOT_PAGES: usize = 2048;
/// Largest file read: the layer reader keeps databases to 64 MiB; this bound is for
/// callers reading a file of their own.
const MAX_FILE: u64 = 256 << 20;

/// Whether `head` (a file's first bytes) starts an NDB file.
pub(crate) fn is_ndb(head: &[u8]) -> bool {
    head.len() >= 4 && u32::from_le_bytes([head[0], head[1], head[2], head[3]]) == HEADER_MAGIC
}

/// The packages of the NDB file at `path`, in slot order; `gpg-pubkey` headers left
/// out, as for the other formats.
pub fn read_rpmdb_ndb(path: &Path) -> Result<Vec<Package>, RpmError> {
    let bad = |reason: String| RpmError::Ndb {
        path: display(path),
        reason,
    };
    let len = std::fs::metadata(path)
        .map_err(|source| io_err(path, source))?
        .len();
    if len > MAX_FILE {
        return Err(bad(format!("{len} bytes, over the {MAX_FILE}-byte limit")));
    }
    let data = std::fs::read(path).map_err(|source| io_err(path, source))?;
    let word = |at: usize| -> Option<u32> {
        let b = data.get(at..at.checked_add(4)?)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let (Some(magic), Some(version), Some(pages)) = (word(0), word(4), word(12)) else {
        return Err(bad("shorter than its 32-byte header".into()));
    };
    if magic != HEADER_MAGIC {
        return Err(bad("not an NDB file (no RpmP magic)".into()));
    }
    if version != 0 {
        return Err(bad(format!("version {version}, only 0 is known")));
    }
    let pages = pages as usize;
    if pages == 0 || pages > MAX_SLOT_PAGES {
        return Err(bad(format!(
            "{pages} slot pages, not within 1..={MAX_SLOT_PAGES}"
        )));
    }
    if data.len() < pages * PAGE {
        return Err(bad(format!(
            "{} bytes, shorter than its {pages} slot pages",
            data.len()
        )));
    }
    let mut packages = Vec::new();
    let mut seen = std::collections::HashSet::new();
    // The first two slots' room is the header.
    for slot in 2..pages * PAGE / SLOT {
        let at = slot * SLOT;
        let (Some(magic), Some(index), Some(offset)) = (word(at), word(at + 4), word(at + 8))
        else {
            return Err(bad(format!("slot {slot} is cut off")));
        };
        if magic != SLOT_MAGIC {
            return Err(bad(format!("slot {slot}: no Slot magic")));
        }
        if index == 0 {
            continue; // a free slot
        }
        // Each package once: slots naming one blob again and again would otherwise
        // make a small file list it half a million times.
        if !seen.insert(index) {
            return Err(bad(format!("package {index} has two slots")));
        }
        if seen.len() > crate::layer::MAX_PACKAGES {
            return Err(bad(crate::layer::over_packages()));
        }
        let blob_at = offset as usize * BLOCK;
        let (Some(magic), Some(owner), Some(blob_len)) =
            (word(blob_at), word(blob_at + 4), word(blob_at + 12))
        else {
            return Err(bad(format!(
                "package {index}: its blob at {blob_at} is outside the file"
            )));
        };
        if magic != BLOB_MAGIC {
            return Err(bad(format!("package {index}: no BlbS magic at {blob_at}")));
        }
        if owner != index {
            return Err(bad(format!(
                "package {index}: the blob at {blob_at} is package {owner}'s"
            )));
        }
        let blob_len = blob_len as usize;
        if blob_len > MAX_HEADER_BYTES {
            return Err(RpmError::TooLarge {
                path: display(path),
                record: index,
                len: blob_len as u64,
                max: MAX_HEADER_BYTES,
            });
        }
        let start = blob_at + 16;
        let Some(blob) = data.get(start..start + blob_len) else {
            return Err(bad(format!(
                "package {index}: its {blob_len}-byte blob runs past the file's end"
            )));
        };
        if let Some(p) = package_from_blob(path, index, blob)? {
            packages.push(p);
        }
    }
    Ok(packages)
}
