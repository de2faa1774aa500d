//! Where berth keeps data by default: under `/var/lib` for root, under
//! `$XDG_DATA_HOME` (`~/.local/share`) for everyone else, as podman does.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// The global `--root`: when given, the one folder every command keeps its data in.
static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Records the global `--root` (once, at start).
pub fn set_root(root: PathBuf) {
    let _ = ROOT.set(root);
}

/// The global `--root`, if given.
pub fn root_flag() -> Option<PathBuf> {
    ROOT.get().cloned()
}

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

/// The registry's data folder when the command line or environment names one: `--root`,
/// else `$BERTH_ROOT` (a config file's `root` comes after these).
pub fn registry_root_given() -> Option<PathBuf> {
    root_flag().or_else(|| {
        std::env::var_os("BERTH_ROOT")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
}

/// The registry's data folder: [`registry_root_given`], else `/var/lib/berth/registry`
/// or `$XDG_DATA_HOME/berth/registry`.
pub fn registry_root() -> anyhow::Result<PathBuf> {
    match registry_root_given() {
        Some(r) => Ok(r),
        None => data_dir("/var/lib/berth/registry", "berth/registry"),
    }
}

/// The local image store: `--root`, else `$BERTH_STORAGE_ROOT`, else `/var/lib/containers/berth` or
/// `$XDG_DATA_HOME/containers/berth`.
pub fn storage_root() -> anyhow::Result<PathBuf> {
    if let Some(r) = root_flag() {
        return Ok(r);
    }
    if let Some(r) = std::env::var_os("BERTH_STORAGE_ROOT").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(r));
    }
    data_dir("/var/lib/containers/berth", "containers/berth")
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
