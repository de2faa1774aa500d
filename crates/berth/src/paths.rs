//! Where berth keeps data by default: under `/var/lib` for root, under
//! `$XDG_DATA_HOME` (`~/.local/share`) for everyone else, as podman does.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// `system` for root, else `<data home>/user`.
fn data_dir(system: &str, user: &str) -> anyhow::Result<PathBuf> {
    if is_root() {
        return Ok(PathBuf::from(system));
    }
    let data = match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => {
            let home = std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .context("neither XDG_DATA_HOME nor HOME is set; pass --root")?;
            Path::new(&home).join(".local/share")
        }
    };
    Ok(data.join(user))
}

/// The registry's data folder: `/var/lib/berth/registry` or
/// `$XDG_DATA_HOME/berth/registry`.
pub fn registry_root() -> anyhow::Result<PathBuf> {
    data_dir("/var/lib/berth/registry", "berth/registry")
}

/// The local image store: `$BERTH_STORAGE_ROOT`, else `/var/lib/containers/berth` or
/// `$XDG_DATA_HOME/containers/berth`.
pub fn storage_root() -> anyhow::Result<PathBuf> {
    if let Some(r) = std::env::var_os("BERTH_STORAGE_ROOT").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(r));
    }
    data_dir("/var/lib/containers/berth", "containers/berth")
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
