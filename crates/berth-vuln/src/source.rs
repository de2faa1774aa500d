//! Reading OSV records out of what an operator imports: an `all.zip` (entry by entry,
//! never the whole archive in memory), a `.json` file (one record or an array), or a
//! folder of those (recursively, in name order).

use crate::error::{io, Result, VulnError};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// A record-sized JSON document larger than this is refused (and reported), so a
/// hostile archive cannot make the import hold gigabytes.
pub const MAX_ENTRY_BYTES: u64 = 64 << 20;

/// One JSON document found in a source: where it came from (`all.zip:DSA-1-1.json`,
/// `dir/x.json`) and its parsed value, or why it could not be read.
pub struct Document {
    pub file: String,
    pub value: std::result::Result<serde_json::Value, String>,
}

/// Calls `each` with every JSON document under `path`. Errors that make the whole
/// source unreadable (a missing file, an archive without a central directory) stop it.
pub fn for_each_document(path: &Path, each: &mut dyn FnMut(Document)) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(io(path))?;
    if meta.is_dir() {
        for file in walk(path)? {
            match kind(&file) {
                Some(Kind::Zip) => read_zip(&file, each)?,
                Some(Kind::Json) => read_json(&file, each)?,
                None => {}
            }
        }
        return Ok(());
    }
    match kind(path) {
        Some(Kind::Zip) => read_zip(path, each),
        Some(Kind::Json) => read_json(path, each),
        None => Err(VulnError::Unsupported {
            path: path.to_path_buf(),
        }),
    }
}

/// The sha256 of a source: of the file, or for a folder of the list of its OSV files
/// with their own sha256 (so the same content gives the same digest).
pub fn sha256(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path).map_err(io(path))?;
    if !meta.is_dir() {
        return file_sha256(path);
    }
    let mut h = Sha256::new();
    for file in walk(path)? {
        if kind(&file).is_some() {
            let rel = file.strip_prefix(path).unwrap_or(&file);
            h.update(format!("{}  {}\n", file_sha256(&file)?, rel.display()));
        }
    }
    Ok(hex(&h.finalize()))
}

fn file_sha256(path: &Path) -> Result<String> {
    let mut f = File::open(path).map_err(io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

enum Kind {
    Zip,
    Json,
}

fn kind(path: &Path) -> Option<Kind> {
    match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
        "zip" => Some(Kind::Zip),
        "json" => Some(Kind::Json),
        _ => None,
    }
}

/// Regular files under `dir`, recursively, sorted by path; symbolic links are not
/// followed (no loops, nothing outside the folder).
fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(io(&d))? {
            let entry = entry.map_err(io(&d))?;
            let ft = entry.file_type().map_err(io(entry.path()))?;
            if ft.is_dir() {
                stack.push(entry.path());
            } else if ft.is_file() {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

fn read_json(path: &Path, each: &mut dyn FnMut(Document)) -> Result<()> {
    let f = File::open(path).map_err(io(path))?;
    // Held to a zip entry's bound: one record file read whole into memory.
    let size = f.metadata().map_err(io(path))?.len();
    let value = match size > MAX_ENTRY_BYTES {
        true => Err(format!(
            "{size} bytes, over the {MAX_ENTRY_BYTES}-byte limit for one record"
        )),
        false => serde_json::from_reader(BufReader::new(f.take(MAX_ENTRY_BYTES)))
            .map_err(|e| e.to_string()),
    };
    each(Document {
        file: path.display().to_string(),
        value,
    });
    Ok(())
}

fn read_zip(path: &Path, each: &mut dyn FnMut(Document)) -> Result<()> {
    let f = File::open(path).map_err(io(path))?;
    let zip_err = |source| VulnError::Zip {
        path: path.to_path_buf(),
        source,
    };
    let mut archive = zip::ZipArchive::new(BufReader::new(f)).map_err(zip_err)?;
    let mut buf = Vec::new();
    for i in 0..archive.len() {
        let mut entry = match archive.by_index(i) {
            Ok(e) => e,
            Err(e) => {
                let file = format!("{}:#{i}", path.display());
                each(Document {
                    file,
                    value: Err(e.to_string()),
                });
                continue;
            }
        };
        let name = match entry.name() {
            Ok(n) => n.into_owned(),
            Err(e) => {
                let file = format!("{}:#{i}", path.display());
                each(Document {
                    file,
                    value: Err(format!("entry name: {e}")),
                });
                continue;
            }
        };
        let file = format!("{}:{name}", path.display());
        if entry.is_dir() || kind(Path::new(&name)).is_none() {
            continue;
        }
        if entry.size() > MAX_ENTRY_BYTES {
            let value = Err(format!(
                "{} bytes, over the {MAX_ENTRY_BYTES}-byte limit for one record",
                entry.size()
            ));
            each(Document { file, value });
            continue;
        }
        buf.clear();
        let read = (&mut entry).take(MAX_ENTRY_BYTES + 1).read_to_end(&mut buf);
        let value = match read {
            Err(e) => Err(e.to_string()),
            Ok(_) if buf.len() as u64 > MAX_ENTRY_BYTES => {
                Err("entry larger than it says".to_string())
            }
            Ok(_) => serde_json::from_slice(&buf).map_err(|e| e.to_string()),
        };
        each(Document { file, value });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record file past the bound is reported as one bad record, not read whole
    /// (a 1 GiB file made a value of many GB).
    #[test]
    fn a_record_file_past_the_bound_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.json");
        File::create(&big)
            .unwrap()
            .set_len(MAX_ENTRY_BYTES + 1)
            .unwrap();
        std::fs::write(dir.path().join("ok.json"), br#"{"id": "A-1"}"#).unwrap();
        let mut seen = Vec::new();
        for_each_document(dir.path(), &mut |d| seen.push((d.file, d.value.is_ok()))).unwrap();
        seen.sort();
        assert!(seen[0].0.ends_with("big.json") && !seen[0].1, "{seen:?}");
        assert!(seen[1].0.ends_with("ok.json") && seen[1].1, "{seen:?}");
    }
}
