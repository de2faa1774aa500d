//! package-urls of OS packages (package-url spec; research note section 7.4). Made at
//! squash time: the distro qualifier needs the image's OS, which one layer may not have.

use crate::model::{OsInfo, Package, PackageKind};

/// The purl of `pkg` in an image whose OS is `os`:
/// `pkg:deb/debian/libc6@2.36-9?arch=amd64&distro=debian-12&upstream=glibc`,
/// `pkg:apk/alpine/libcrypto3@3.1.4-r5?arch=x86_64&distro=3.19.1&upstream=openssl`,
/// and for rpm the rpm
/// reader's form (`pkg:rpm/redhat/...&epoch=1&distro=rhel-9.4`).
pub fn purl(pkg: &Package, os: Option<&OsInfo>) -> String {
    let os = os.filter(|o| !o.id.is_empty());
    let (kind, default_ns) = match pkg.kind {
        PackageKind::Deb => ("deb", "debian"),
        PackageKind::Apk => ("apk", "alpine"),
        PackageKind::Rpm => return crate::rpm::purl(pkg, os),
    };
    let ns = os
        .map_or(default_ns, |o| o.id.as_str())
        .to_ascii_lowercase();
    let mut s = format!(
        "pkg:{kind}/{}/{}@{}",
        escape(&ns),
        escape(&pkg.name),
        escape(&pkg.version)
    );
    // Qualifiers in key order, the spec's canonical form.
    let mut q = Vec::new();
    if let Some(a) = &pkg.arch {
        q.push(format!("arch={}", escape(a)));
    }
    if let Some(os) = os {
        let distro = match (pkg.kind, &os.version_id) {
            (PackageKind::Apk, Some(v)) => v.clone(),
            (_, Some(v)) => format!("{}-{v}", os.id),
            (_, None) => os.id.clone(),
        };
        q.push(format!("distro={}", escape(&distro)));
    }
    // The source package, as Syft writes it: deb `src` or `src@version` (when the
    // source's version is another, a binNMU's), apk the origin. Consumers that see only
    // the purl (Grype reading an SBOM) tie subpackages to advisories through it.
    if let Some(src) = &pkg.source_name {
        let upstream = match (&pkg.source_version, pkg.kind) {
            (Some(v), PackageKind::Deb) => Some(format!("{src}@{v}")),
            _ if *src != pkg.name => Some(src.clone()),
            _ => None,
        };
        if let Some(u) = upstream {
            q.push(format!("upstream={}", escape(&u)));
        }
    }
    if !q.is_empty() {
        s.push('?');
        s.push_str(&q.join("&"));
    }
    s
}

/// Percent-encodes all but the characters purls leave bare (`:` of a dpkg epoch
/// included, as syft and the spec's examples write it).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~+:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(kind: PackageKind, name: &str, version: &str, src: Option<&str>) -> Package {
        Package {
            kind,
            name: name.into(),
            version: version.into(),
            source_name: src.map(Into::into),
            source_version: None,
            arch: Some("amd64".into()),
            license: None,
            purl: String::new(),
            db_path: String::new(),
            layer_index: 0,
        }
    }

    #[test]
    fn deb_and_apk() {
        let os = crate::osrelease::parse_os_release("ID=debian\nVERSION_ID=\"12\"\n").unwrap();
        assert_eq!(
            purl(
                &pkg(PackageKind::Deb, "libgcc-s1", "12.2.0-14", Some("gcc-12")),
                Some(&os)
            ),
            "pkg:deb/debian/libgcc-s1@12.2.0-14?arch=amd64&distro=debian-12&upstream=gcc-12"
        );
        assert_eq!(
            purl(
                &pkg(PackageKind::Deb, "libc6", "2.36-9+deb12u4", Some("libc6")),
                Some(&os)
            ),
            "pkg:deb/debian/libc6@2.36-9+deb12u4?arch=amd64&distro=debian-12"
        );
        let alpine = crate::osrelease::parse_os_release("ID=alpine\nVERSION_ID=3.19.1\n").unwrap();
        let mut musl = pkg(
            PackageKind::Apk,
            "musl",
            "1.2.4_git20230717-r4",
            Some("musl"),
        );
        musl.arch = Some("x86_64".into());
        assert_eq!(
            purl(&musl, Some(&alpine)),
            "pkg:apk/alpine/musl@1.2.4_git20230717-r4?arch=x86_64&distro=3.19.1"
        );
        assert_eq!(
            purl(&pkg(PackageKind::Deb, "a b", "1", None), None),
            "pkg:deb/debian/a%20b@1?arch=amd64"
        );
    }
}
