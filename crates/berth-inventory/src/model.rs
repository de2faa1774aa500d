//! The data this crate produces. Everything is serde-serializable: artifacts are stored
//! per layer digest, inventories per manifest, and the catalog API returns them.

use serde::{Deserialize, Serialize};

/// Bumped whenever layer analysis changes what it extracts, so that stored artifacts
/// of an older analyzer are recomputed instead of trusted.
/// 2: a database with a malformed entry keeps its other packages (`warnings`), dpkg's
/// `half-installed` packages are listed, a file or link replacing a watched folder is
/// its whiteout, NDB `Packages.db` is read.
pub const ANALYZER_VERSION: u32 = 2;

/// Which package manager a package came from (its database format and version scheme).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageKind {
    Deb,
    Rpm,
    Apk,
}

impl PackageKind {
    /// The name serde writes (`deb`, `rpm`, `apk`): what a catalog column holds.
    pub fn as_str(self) -> &'static str {
        match self {
            PackageKind::Deb => "deb",
            PackageKind::Rpm => "rpm",
            PackageKind::Apk => "apk",
        }
    }

    /// The kind [`PackageKind::as_str`] names.
    pub fn parse(name: &str) -> Option<PackageKind> {
        [PackageKind::Deb, PackageKind::Rpm, PackageKind::Apk]
            .into_iter()
            .find(|k| k.as_str() == name)
    }
}

/// One installed package, as its database records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    pub kind: PackageKind,
    /// Binary package name (`libc6`, `openssl-libs`, `musl`).
    pub name: String,
    /// Full version as the database has it: dpkg `[epoch:]upstream[-revision]`,
    /// rpm `[epoch:]version-release`, apk `version-rN`.
    pub version: String,
    /// Source package name: dpkg `Source:` (or the binary name when absent), rpm
    /// `SOURCERPM` name, apk `o:` origin. Advisories are keyed by it.
    pub source_name: Option<String>,
    /// Source version where it differs from the binary's (dpkg `Source: name (ver)`).
    pub source_version: Option<String>,
    pub arch: Option<String>,
    /// License as the database records it (rpm `LICENSE`, apk `L:`); dpkg has none.
    pub license: Option<String>,
    /// package-url (`pkg:deb/debian/libc6@2.36-9?arch=amd64&distro=debian-12`).
    pub purl: String,
    /// The database file it was read from (`var/lib/dpkg/status`).
    pub db_path: String,
    /// Index (0 = bottom) of the layer whose copy of the database first lists this
    /// package at this version: the layer (and history step) that added it.
    pub layer_index: usize,
}

/// The operating system, from `etc/os-release` (or `usr/lib/os-release`) and friends.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsInfo {
    /// `ID` (`debian`, `ubuntu`, `alpine`, `rhel`, `fedora`).
    pub id: String,
    /// `VERSION_ID` (`12`, `22.04`, `3.19.1`).
    pub version_id: Option<String>,
    pub pretty_name: Option<String>,
    /// The OSV ecosystem string (`Debian:12`, `Ubuntu:22.04:LTS`, `Alpine:v3.19`), when
    /// the distribution has one.
    pub ecosystem: Option<String>,
}

/// One step of a Containerfile (real or reconstructed from the config's history).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerfileStep {
    /// The instruction as it would be written (`RUN apt-get update`, `ENV A=b`).
    pub instruction: String,
    /// Size of the layer this step made (compressed, from the manifest), none for
    /// steps that made no layer.
    pub layer_size: Option<u64>,
    /// The uncompressed digest (diff_id) of that layer.
    pub diff_id: Option<String>,
    pub created: Option<String>,
}

/// The Containerfile an image was built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Containerfile {
    /// True when rebuilt from `history[]` (no FROM line, final stage only); false when
    /// the image carries its real build file (`root/buildinfo/Dockerfile-*`).
    pub reconstructed: bool,
    /// Where the real file was found in the image, when not reconstructed.
    pub path: Option<String>,
    pub text: String,
    /// History steps (reconstructed files only: a real file's lines do not map to layers).
    pub steps: Vec<ContainerfileStep>,
}

/// What one layer holds that matters to the inventory. Paths are relative, without a
/// leading `/` or `./`, as in the tar.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerArtifacts {
    pub analyzer_version: u32,
    /// Package databases present in this layer, parsed: path -> packages (with
    /// `layer_index` left at 0; squashing sets it).
    pub databases: Vec<(String, Vec<Package>)>,
    /// os-release (or another release file) present in this layer: path -> parsed.
    pub os_release: Vec<(String, OsInfo)>,
    /// Real build files (`root/buildinfo/Dockerfile-*`, `usr/share/buildinfo/...`):
    /// path -> text (bounded in size).
    pub buildinfo: Vec<(String, String)>,
    /// Paths this layer deletes (`.wh.NAME` entries, recorded as the deleted path).
    pub whiteouts: Vec<String>,
    /// Folders this layer makes opaque (`.wh..wh..opq`): everything below them in
    /// lower layers is hidden.
    pub opaque_dirs: Vec<String>,
    /// Allow-listed paths that are symbolic links in this layer: path -> target as
    /// written (`etc/os-release` -> `../usr/lib/os-release`). Squashing follows them.
    #[serde(default)]
    pub symlinks: Vec<(String, String)>,
    /// Allow-listed files this layer carries but that could not be read: path ->
    /// reason (over the size limit, malformed, a format not read). The path still
    /// counts as present, so it hides lower copies instead of letting a stale one win.
    #[serde(default)]
    pub errors: Vec<(String, String)>,
    /// Databases read in part: path -> what was skipped (a stanza without a version).
    /// Their other packages count, as Trivy counts them; a pusher cannot hide every
    /// package behind one broken entry.
    #[serde(default)]
    pub warnings: Vec<(String, String)>,
}

/// An image's (one platform's) inventory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    pub os: Option<OsInfo>,
    pub packages: Vec<Package>,
    pub containerfile: Option<Containerfile>,
    /// The image's files that matter but could not be read at all (`layer 2:
    /// var/lib/dpkg/status: … over the limit`): the packages they list are missing,
    /// so an empty list of findings says nothing about them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<String>,
}

/// One entry of an image config's `history[]` (OCI image spec, `config.md`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub created_by: Option<String>,
    #[serde(default)]
    pub comment: Option<String>,
    /// True for steps that made no layer (`ENV`, `CMD`, ...): only the others line up
    /// with `rootfs.diff_ids`.
    #[serde(default)]
    pub empty_layer: bool,
}

/// One layer of the image, in manifest order (bottom first).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRef {
    /// Compressed size, from the manifest's layer descriptor.
    pub size: u64,
    /// Uncompressed digest, from the config's `rootfs.diff_ids`.
    pub diff_id: String,
}

/// What [`crate::squash`] needs from the image config and manifest to reconstruct the
/// Containerfile with each step's layer: the history and the layers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageHistory {
    pub history: Vec<HistoryEntry>,
    pub layers: Vec<LayerRef>,
}
