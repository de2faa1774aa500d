//! rpm package databases (RHEL, UBI, Fedora, CentOS, Rocky, Alma, Amazon Linux).
//!
//! Two on-disk formats hold the same records, one rpm header per installed package:
//! `rpmdb.sqlite` (rpm >= 4.16: RHEL 9, Fedora 33+) and the BerkeleyDB hash file
//! `Packages` (RHEL 7/8, Amazon Linux 2). Both are read here without librpm or libdb:
//! the files come out of image layers anybody can push, so every size in them is
//! checked before it is used ([`header`], [`bdb`]). SUSE's NDB `Packages.db` (SLES 15,
//! openSUSE Leap 15.3+) is read too ([`ndb`]).
//!
//! The readers give [`Package`]s with a purl that has no namespace; [`purl`] makes the
//! full one once the image's OS is known (squashing knows it, a layer does not).

pub mod bdb;
pub mod header;
mod ndb;
mod sqlite;

use std::path::Path;

use crate::model::{OsInfo, Package, PackageKind};
use crate::purl::escape;
use header::{Header, HeaderError};

pub use bdb::read_rpmdb_bdb;
pub use ndb::read_rpmdb_ndb;
pub use sqlite::read_rpmdb_sqlite;

/// Header tags read (rpm's `rpmTag` numbers).
pub mod tag {
    pub const NAME: i32 = 1000;
    pub const VERSION: i32 = 1001;
    pub const RELEASE: i32 = 1002;
    pub const EPOCH: i32 = 1003;
    pub const LICENSE: i32 = 1014;
    pub const ARCH: i32 = 1022;
    pub const SOURCERPM: i32 = 1044;
}

/// Why an rpm database could not be read. Each names the file, and the record where one
/// record is at fault, so that a failed analysis can be traced to its bytes.
#[derive(Debug, thiserror::Error)]
pub enum RpmError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: sqlite: {source}")]
    Sqlite {
        path: String,
        source: rusqlite::Error,
    },
    #[error("{path}: record {record}: {source}")]
    Header {
        path: String,
        record: u32,
        source: HeaderError,
    },
    #[error("{path}: record {record}: {what} missing")]
    Missing {
        path: String,
        record: u32,
        what: &'static str,
    },
    #[error("{path}: record {record} is {len} bytes, over the {max}-byte limit for a header")]
    TooLarge {
        path: String,
        record: u32,
        len: u64,
        max: usize,
    },
    #[error("{path}: BerkeleyDB: {reason}")]
    Bdb { path: String, reason: String },
    #[error("{path}: NDB: {reason}")]
    Ndb { path: String, reason: String },
    #[error(
        "{path}: neither an rpmdb.sqlite, a BerkeleyDB hash Packages nor an NDB Packages.db file"
    )]
    UnknownFormat { path: String },
}

/// Reads either format, told apart by the file's first bytes (SQLite's header string, or
/// BerkeleyDB's hash magic at offset 12 in either byte order), not by its name: an image
/// may carry a `Packages` left over from a conversion next to the live `rpmdb.sqlite`,
/// and which one counts is decided by the caller's path, not here.
pub fn read_rpmdb(path: &Path) -> Result<Vec<Package>, RpmError> {
    use std::io::Read;
    let mut head = [0u8; 16];
    let mut f = std::fs::File::open(path).map_err(|source| io_err(path, source))?;
    let mut n = 0;
    while n < head.len() {
        match f
            .read(&mut head[n..])
            .map_err(|source| io_err(path, source))?
        {
            0 => break,
            k => n += k,
        }
    }
    if n == 16 && &head == b"SQLite format 3\0" {
        return read_rpmdb_sqlite(path);
    }
    if n == 16 && bdb::is_hash_magic(&head[12..16]) {
        return read_rpmdb_bdb(path);
    }
    if ndb::is_ndb(&head[..n]) {
        return read_rpmdb_ndb(path);
    }
    Err(RpmError::UnknownFormat {
        path: display(path),
    })
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

fn io_err(path: &Path, source: std::io::Error) -> RpmError {
    RpmError::Io {
        path: display(path),
        source,
    }
}

/// Turns one header into a package, or `None` for the `gpg-pubkey` pseudo-packages.
///
/// `rpm -qa` lists `gpg-pubkey` because `rpm --import` stores each trusted key as a
/// header in the same table; it is not software (no files, no arch, no source rpm), no
/// advisory ever names it, and claircore and Trivy leave it out too. Keeping it would
/// only put a fake package in every SBOM of a Red Hat image.
/// Longest NAME, VERSION, RELEASE, ARCH and SOURCERPM accepted: real ones are tens of
/// bytes; each is copied several times (version-release, the purl percent-encoding a
/// byte as up to nine), so an unbounded one let a 60 KB header hold 5.8 MB (found by
/// the rpm_header fuzz target).
const MAX_IDENT: usize = 1024;
/// Longest LICENSE accepted (license expressions of large packages run to a few KiB).
const MAX_LICENSE: usize = 16 * 1024;

/// A package from one database record's header blob (none for `gpg-pubkey`, which is
/// an imported key, not software). Public for the fuzz target.
#[doc(hidden)]
pub fn package_from_blob(
    path: &Path,
    record: u32,
    blob: &[u8],
) -> Result<Option<Package>, RpmError> {
    let header_err = |source| RpmError::Header {
        path: display(path),
        record,
        source,
    };
    let h = Header::parse(blob).map_err(header_err)?;
    let required = |t, what| -> Result<String, RpmError> {
        h.string_at_most(t, MAX_IDENT)
            .map_err(header_err)?
            .filter(|s| !s.is_empty())
            .ok_or(RpmError::Missing {
                path: display(path),
                record,
                what,
            })
    };
    let name = required(tag::NAME, "NAME")?;
    if name == "gpg-pubkey" {
        return Ok(None);
    }
    let version = required(tag::VERSION, "VERSION")?;
    let release = required(tag::RELEASE, "RELEASE")?;
    let epoch = h.int32(tag::EPOCH).map_err(header_err)?;
    let arch = h.string_at_most(tag::ARCH, MAX_IDENT).map_err(header_err)?;
    let license = h
        .string_at_most(tag::LICENSE, MAX_LICENSE)
        .map_err(header_err)?;
    let sourcerpm = h
        .string_at_most(tag::SOURCERPM, MAX_IDENT)
        .map_err(header_err)?;
    let vr = format!("{version}-{release}");
    let (source_name, source_version) = match sourcerpm.as_deref().and_then(split_source_rpm) {
        Some((n, v)) => (Some(n.to_string()), (v != vr).then(|| v.to_string())),
        None => (None, None),
    };
    let mut pkg = Package {
        kind: PackageKind::Rpm,
        version: match epoch {
            Some(e) => format!("{e}:{vr}"),
            None => vr,
        },
        name,
        source_name,
        source_version,
        arch: arch.filter(|a| !a.is_empty()),
        license: license.filter(|l| !l.is_empty()),
        purl: String::new(),
        db_path: display(path),
        layer_index: 0,
    };
    pkg.purl = purl(&pkg, None);
    Ok(Some(pkg))
}

/// Splits a SOURCERPM file name (`openssl-3.0.7-27.el9.src.rpm`) into the source package
/// name and `version-release`. Parsed from the right because names contain dashes and
/// version and release never do; `.nosrc.rpm` (sources not shipped) is the same shape.
pub fn split_source_rpm(file: &str) -> Option<(&str, &str)> {
    let stem = file
        .strip_suffix(".src.rpm")
        .or_else(|| file.strip_suffix(".nosrc.rpm"))?;
    let (rest, release) = stem.rsplit_once('-')?;
    let (name, version) = rest.rsplit_once('-')?;
    if name.is_empty() || version.is_empty() || release.is_empty() {
        return None;
    }
    Some((name, &stem[name.len() + 1..]))
}

/// The package-url of an rpm package (package-url spec, type `rpm`):
/// `pkg:rpm/<namespace>/<name>@<version>-<release>?arch=<arch>&distro=<id>-<version_id>&epoch=<epoch>&upstream=<source rpm>`.
///
/// As the spec says, the version carries no epoch (it is the `epoch` qualifier), and the
/// namespace is the vendor: the OS id, with `rhel` spelled `redhat` as Red Hat's own
/// SBOMs do. Without an OS (a layer read on its own) there is no namespace and no distro.
pub fn purl(pkg: &Package, os: Option<&OsInfo>) -> String {
    let (epoch, vr) = match pkg.version.split_once(':') {
        Some((e, vr)) => (Some(e), vr),
        None => (None, pkg.version.as_str()),
    };
    let mut s = String::from("pkg:rpm/");
    if let Some(os) = os.filter(|o| !o.id.is_empty()) {
        let ns = match os.id.as_str() {
            "rhel" => "redhat",
            id => id,
        };
        s.push_str(&escape(&ns.to_ascii_lowercase()));
        s.push('/');
    }
    s.push_str(&escape(&pkg.name));
    s.push('@');
    s.push_str(&escape(vr));
    // Qualifiers in lexicographic key order, as the spec's canonical form wants.
    let mut q = Vec::new();
    if let Some(a) = &pkg.arch {
        q.push(format!("arch={}", escape(a)));
    }
    if let Some(os) = os.filter(|o| !o.id.is_empty()) {
        let distro = match &os.version_id {
            Some(v) => format!("{}-{v}", os.id),
            None => os.id.clone(),
        };
        q.push(format!("distro={}", escape(&distro)));
    }
    if let Some(e) = epoch {
        q.push(format!("epoch={}", escape(e)));
    }
    // The source rpm's file name, as Syft writes it.
    if let Some(src) = &pkg.source_name {
        let v = pkg.source_version.as_deref().unwrap_or(vr);
        q.push(format!(
            "upstream={}",
            escape(&format!("{src}-{v}.src.rpm"))
        ));
    }
    if !q.is_empty() {
        s.push('?');
        s.push_str(&q.join("&"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_rpm_names_parse_from_the_right() {
        assert_eq!(
            split_source_rpm("openssl-3.0.7-27.el9.src.rpm"),
            Some(("openssl", "3.0.7-27.el9"))
        );
        assert_eq!(
            split_source_rpm("python-setuptools-wheel-53.0.0-12.el9.src.rpm"),
            Some(("python-setuptools-wheel", "53.0.0-12.el9"))
        );
        assert_eq!(split_source_rpm("foo-1-2.nosrc.rpm"), Some(("foo", "1-2")));
        assert_eq!(split_source_rpm("foo-1.src.rpm"), None);
        assert_eq!(split_source_rpm("foo-1-2.noarch.rpm"), None);
        assert_eq!(split_source_rpm("-1-2.src.rpm"), None);
    }

    fn pkg(version: &str, arch: Option<&str>) -> Package {
        Package {
            kind: PackageKind::Rpm,
            name: "openssl-libs".into(),
            version: version.into(),
            source_name: Some("openssl".into()),
            source_version: None,
            arch: arch.map(str::to_string),
            license: None,
            purl: String::new(),
            db_path: String::new(),
            layer_index: 0,
        }
    }

    #[test]
    fn purl_follows_the_spec() {
        let os = OsInfo {
            id: "rhel".into(),
            version_id: Some("9.4".into()),
            ..OsInfo::default()
        };
        assert_eq!(
            purl(&pkg("1:3.0.7-27.el9", Some("x86_64")), Some(&os)),
            "pkg:rpm/redhat/openssl-libs@3.0.7-27.el9?arch=x86_64&distro=rhel-9.4&epoch=1\
             &upstream=openssl-3.0.7-27.el9.src.rpm"
        );
        assert_eq!(
            purl(&pkg("3.0.7-27.el9", None), None),
            "pkg:rpm/openssl-libs@3.0.7-27.el9?upstream=openssl-3.0.7-27.el9.src.rpm"
        );
        let fedora = OsInfo {
            id: "fedora".into(),
            version_id: Some("40".into()),
            ..OsInfo::default()
        };
        assert_eq!(
            purl(&pkg("2.0^post1-1.fc40", Some("noarch")), Some(&fedora)),
            "pkg:rpm/fedora/openssl-libs@2.0%5Epost1-1.fc40?arch=noarch&distro=fedora-40\
             &upstream=openssl-2.0%5Epost1-1.fc40.src.rpm"
        );
    }
}
