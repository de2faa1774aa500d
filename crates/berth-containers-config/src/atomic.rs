//! Replacing a configuration file so that a reader (podman, skopeo, another berth) sees
//! the old file or the new one, never half of one, and a crash keeps one of them.

use std::fs::DirBuilder;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path`: missing parent directories created with `dir_mode`, a
/// temporary file in the same directory written and fsynced with `mode`, renamed over
/// the target, and the directory fsynced so that the rename survives a crash.
pub(crate) fn write(path: &Path, bytes: &[u8], mode: u32, dir_mode: u32) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    DirBuilder::new()
        .recursive(true)
        .mode(dir_mode)
        .create(&dir)?;
    let stem = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".tmp-{stem}"))
        .tempfile_in(&dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(&dir).and_then(|d| d.sync_all())
}
