//! Which files of a layer matter, and what their names mean.
//!
//! A layer holds thousands of files; the inventory needs a dozen. The allow-list is
//! fixed (research note, section 8.1): release files, package databases and the build
//! files Red Hat-style images carry. Everything else is skipped while streaming, so a
//! layer's artifacts stay a few hundred KiB whatever its size.

use crate::error::InventoryError;

/// Largest package database kept (dpkg `status`, apk `installed`, rpm databases).
pub const DB_LIMIT: u64 = 64 << 20;
/// Largest text file kept (release files, one `status.d` stanza, a build file).
pub const TEXT_LIMIT: u64 = 1 << 20;
/// Most bytes kept from one layer, all files together: a layer of ten thousand build
/// files must not hold ten GiB in memory.
pub const LAYER_LIMIT: u64 = 256 << 20;

/// What an allow-listed file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// `etc/os-release`, `usr/lib/os-release`.
    OsRelease,
    /// `etc/alpine-release`, `etc/debian_version`, `etc/redhat-release`.
    ReleaseFile,
    /// `var/lib/dpkg/status`.
    DpkgStatus,
    /// `var/lib/dpkg/status.d/NAME` (distroless: one stanza per file, no `Status:`).
    DpkgStatusD,
    /// `lib/apk/db/installed`, `usr/lib/apk/db/installed`.
    ApkInstalled,
    /// `rpmdb.sqlite`, `Packages` (BerkeleyDB), `Packages.db` (NDB).
    Rpm,
    /// `rpmdb.sqlite-wal`: kept beside its database, whose readers need it.
    RpmWal,
    /// Anything under `root/buildinfo/` or `usr/share/buildinfo/`.
    Buildinfo,
}

impl FileKind {
    /// The size above which the file is recorded as an error instead of kept.
    pub fn limit(self) -> u64 {
        match self {
            FileKind::DpkgStatus | FileKind::ApkInstalled | FileKind::Rpm | FileKind::RpmWal => {
                DB_LIMIT
            }
            _ => TEXT_LIMIT,
        }
    }
}

const RPM_DIRS: [&str; 3] = ["var/lib/rpm", "usr/lib/sysimage/rpm", "usr/share/rpm"];
const BUILDINFO_DIRS: [&str; 2] = ["root/buildinfo", "usr/share/buildinfo"];
const STATUS_D: &str = "var/lib/dpkg/status.d";

/// Every folder whose removal (whiteout) or opacity can hide an allow-listed file.
const WATCHED_DIRS: [&str; 8] = [
    "etc",
    "usr/lib",
    "var/lib/dpkg",
    "lib/apk/db",
    "usr/lib/apk/db",
    "var/lib/rpm",
    "usr/lib/sysimage/rpm",
    "usr/share/rpm",
];

/// The kind of the file at `path` (normalized), if it is allow-listed.
pub fn classify(path: &str) -> Option<FileKind> {
    match path {
        "etc/os-release" | "usr/lib/os-release" => return Some(FileKind::OsRelease),
        "etc/alpine-release" | "etc/debian_version" | "etc/redhat-release" => {
            return Some(FileKind::ReleaseFile)
        }
        "var/lib/dpkg/status" => return Some(FileKind::DpkgStatus),
        "lib/apk/db/installed" | "usr/lib/apk/db/installed" => return Some(FileKind::ApkInstalled),
        _ => {}
    }
    if let Some(name) = child_of(path, STATUS_D) {
        // distroless also puts `NAME.md5sums` there: file lists, not stanzas.
        if !name.contains('/') && !name.ends_with(".md5sums") {
            return Some(FileKind::DpkgStatusD);
        }
        return None;
    }
    for dir in RPM_DIRS {
        match child_of(path, dir) {
            Some("rpmdb.sqlite" | "Packages" | "Packages.db") => return Some(FileKind::Rpm),
            Some("rpmdb.sqlite-wal") => return Some(FileKind::RpmWal),
            _ => {}
        }
    }
    if BUILDINFO_DIRS.iter().any(|d| child_of(path, d).is_some()) {
        return Some(FileKind::Buildinfo);
    }
    None
}

/// Whether a whiteout or opaque marker at `path` can hide an allow-listed file: the
/// path is one, or a folder on the way to one, or below a folder whose whole content
/// is allow-listed. Other markers are not recorded (a layer may delete thousands of
/// files; none of them matter here).
pub fn relevant(path: &str) -> bool {
    if classify(path).is_some() {
        return true;
    }
    let below = |dir: &str| path == dir || child_of(path, dir).is_some();
    if below(STATUS_D) || BUILDINFO_DIRS.iter().any(|d| below(d)) {
        return true;
    }
    let on_the_way = |dir: &str| dir == path || child_of(dir, path).is_some();
    WATCHED_DIRS
        .iter()
        .chain(BUILDINFO_DIRS.iter())
        .chain(std::iter::once(&STATUS_D))
        .any(|d| on_the_way(d))
}

/// Whether `path` is a folder that holds allow-listed files, or one on the way to
/// such a folder: replaced by a file or link, everything of it below goes.
pub fn watched_folder(path: &str) -> bool {
    WATCHED_DIRS
        .iter()
        .chain(BUILDINFO_DIRS.iter())
        .chain(std::iter::once(&STATUS_D))
        .any(|d| *d == path || child_of(d, path).is_some())
}

/// `path` without `dir/` in front, if `path` is below `dir`.
pub fn child_of<'a>(path: &'a str, dir: &str) -> Option<&'a str> {
    path.strip_prefix(dir)?
        .strip_prefix('/')
        .filter(|rest| !rest.is_empty())
}

/// A tar entry's name as a root-relative path: `./`, `/` and `.` components and
/// trailing slashes dropped; `..` refused, as applying the layer refuses it.
pub fn normalize(raw: &[u8]) -> Result<String, InventoryError> {
    let text = String::from_utf8_lossy(raw);
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(InventoryError::UnsafePath(text.into_owned())),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// The target of a link found at `path`, as a root-relative path: absolute targets
/// from the root, relative ones from `path`'s folder; `..` above the root stays at the
/// root (as the kernel resolves it in a chroot). None for an empty target.
pub fn resolve_link(path: &str, target: &str) -> Option<String> {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        let mut p: Vec<&str> = path.split('/').collect();
        p.pop();
        p
    };
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list() {
        assert_eq!(classify("etc/os-release"), Some(FileKind::OsRelease));
        assert_eq!(classify("var/lib/dpkg/status"), Some(FileKind::DpkgStatus));
        assert_eq!(classify("var/lib/dpkg/status-old"), None);
        assert_eq!(
            classify("var/lib/dpkg/status.d/libc6"),
            Some(FileKind::DpkgStatusD)
        );
        assert_eq!(classify("var/lib/dpkg/status.d/libc6.md5sums"), None);
        assert_eq!(classify("var/lib/dpkg/status.d/a/b"), None);
        assert_eq!(
            classify("usr/lib/sysimage/rpm/rpmdb.sqlite"),
            Some(FileKind::Rpm)
        );
        assert_eq!(classify("var/lib/rpm/Packages"), Some(FileKind::Rpm));
        assert_eq!(classify("var/lib/rpm/Providename"), None);
        assert_eq!(
            classify("root/buildinfo/content_manifests/a.json"),
            Some(FileKind::Buildinfo)
        );
        assert_eq!(classify("root/buildinfo"), None);
        assert_eq!(classify("etc/passwd"), None);
        assert_eq!(
            classify("usr/lib/apk/db/installed"),
            Some(FileKind::ApkInstalled)
        );
    }

    #[test]
    fn relevant_markers() {
        for p in [
            "etc",
            "var",
            "var/lib",
            "var/lib/dpkg",
            "var/lib/dpkg/status.d",
            "root",
            "var/lib/dpkg/status.d/x",
            "etc/os-release",
            "usr",
            "root/buildinfo/a/b",
        ] {
            assert!(relevant(p), "{p}");
        }
        for p in [
            "etc/passwd",
            "usr/bin",
            "var/cache",
            "home",
            "var/lib/dpkg/info",
        ] {
            assert!(!relevant(p), "{p}");
        }
    }

    #[test]
    fn names_are_normalized_and_dotdot_refused() {
        assert_eq!(normalize(b"./etc/os-release").unwrap(), "etc/os-release");
        assert_eq!(normalize(b"/etc//./apk/").unwrap(), "etc/apk");
        assert!(matches!(
            normalize(b"../etc/x"),
            Err(InventoryError::UnsafePath(_))
        ));
        assert!(matches!(
            normalize(b"a/../../x"),
            Err(InventoryError::UnsafePath(_))
        ));
    }

    #[test]
    fn links_resolve_from_their_folder() {
        assert_eq!(
            resolve_link("etc/os-release", "../usr/lib/os-release").as_deref(),
            Some("usr/lib/os-release")
        );
        assert_eq!(
            resolve_link("etc/os-release", "/usr/lib/os-release").as_deref(),
            Some("usr/lib/os-release")
        );
        assert_eq!(resolve_link("etc/a", "../../../b").as_deref(), Some("b"));
        assert_eq!(resolve_link("etc/a", "b").as_deref(), Some("etc/b"));
    }
}
