//! The part of the process environment that decides where configuration lives.
//!
//! containers/image reads `$HOME`, `$XDG_*`, `$DOCKER_CONFIG`, the user id and a few
//! tool-level variables directly from the process. Gathering them in one value keeps the
//! lookup rules testable (a test builds an [`Env`] over a temporary directory) and makes
//! every path this crate touches visible in one place.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Where configuration files are looked for. Build it with [`Env::from_process`] in a
/// binary, or [`Env::under`] in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    /// Prefix for the system-wide absolute paths (`/etc/containers/…`,
    /// `/run/containers/…`): `/` normally; the equivalent of containers/image's
    /// `RootForImplicitAbsolutePaths`.
    pub root: PathBuf,
    /// `$HOME`; without it, per-user files are not consulted.
    pub home: Option<PathBuf>,
    /// The real user id; picks `/run/containers/<uid>/auth.json`.
    pub uid: u32,
    pub xdg_runtime_dir: Option<PathBuf>,
    pub xdg_config_home: Option<PathBuf>,
    /// `$DOCKER_CONFIG`: the directory holding docker's `config.json`.
    pub docker_config: Option<PathBuf>,
    /// `$REGISTRY_AUTH_FILE`: podman and skopeo treat it like `--authfile`.
    pub registry_auth_file: Option<PathBuf>,
    /// `$CONTAINERS_REGISTRIES_CONF`: replaces the main `registries.conf`.
    pub registries_conf: Option<PathBuf>,
    /// `$PATH`, searched for `docker-credential-<name>` helpers.
    pub path: Option<OsString>,
}

impl Env {
    /// The environment of this process. Empty variables count as unset, as with Go's
    /// `os.Getenv(…) != ""` checks in containers/image.
    pub fn from_process() -> Env {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let path_var = |name: &str| var(name).map(PathBuf::from);
        Env {
            root: PathBuf::from("/"),
            home: path_var("HOME"),
            uid: process_uid(),
            xdg_runtime_dir: path_var("XDG_RUNTIME_DIR"),
            xdg_config_home: path_var("XDG_CONFIG_HOME"),
            docker_config: path_var("DOCKER_CONFIG"),
            registry_auth_file: path_var("REGISTRY_AUTH_FILE"),
            registries_conf: path_var("CONTAINERS_REGISTRIES_CONF"),
            path: var("PATH"),
        }
    }

    /// An environment confined to `dir`: system paths under `dir`, home at `dir/home`,
    /// an unprivileged uid (1000), no variables set. For tests and chroot-like use.
    pub fn under(dir: &Path) -> Env {
        Env {
            root: dir.to_path_buf(),
            home: Some(dir.join("home")),
            uid: 1000,
            xdg_runtime_dir: None,
            xdg_config_home: None,
            docker_config: None,
            registry_auth_file: None,
            registries_conf: None,
            path: None,
        }
    }

    /// A system-wide absolute path (`/etc/containers/policy.json`) under [`Env::root`].
    pub fn system_path(&self, absolute: &str) -> PathBuf {
        self.root.join(absolute.trim_start_matches('/'))
    }

    /// A path under `$HOME`, if there is a home.
    pub fn home_path(&self, relative: &str) -> Option<PathBuf> {
        self.home.as_ref().map(|h| h.join(relative))
    }
}

/// The real uid, read from `/proc/self/status` (Go's `os.Getuid`). Without `/proc`, the
/// owner of `/proc/self` is the next best answer; failing both, `u32::MAX` names no real
/// user, so no other user's `/run/containers/<uid>` is ever picked.
fn process_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    let from_status = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().next())
                .and_then(|real| real.parse().ok())
        });
    from_status
        .or_else(|| std::fs::metadata("/proc/self").ok().map(|m| m.uid()))
        .unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_under_the_root() {
        let env = Env::under(Path::new("/tmp/x"));
        assert_eq!(
            env.system_path("/etc/containers/policy.json"),
            Path::new("/tmp/x/etc/containers/policy.json")
        );
        assert_eq!(
            env.home_path(".dockercfg").unwrap(),
            Path::new("/tmp/x/home/.dockercfg")
        );
    }

    #[test]
    fn reads_this_process() {
        let env = Env::from_process();
        assert_eq!(env.root, Path::new("/"));
        assert_ne!(env.uid, u32::MAX);
    }
}
