//! dpkg's database: `var/lib/dpkg/status` (deb822 stanzas, one per package dpkg knows)
//! and distroless' `var/lib/dpkg/status.d/NAME` (one stanza per file, no `Status:`).

use crate::model::{Package, PackageKind};

/// The packages installed according to one status file. Stanzas of packages whose
/// files are not on disk (`deinstall ok config-files`, `purge ok not-installed`) are
/// left out: only configuration files of them remain, which no advisory is about
/// (`dpkg-query -W` still lists the config-files ones, with their old version). A
/// stanza without `Package:` or `Version:` that claims to be installed is an error (a
/// broken database), named. More than `limit` packages is an error: parsing stops
/// there, so a hostile file costs at most `limit` packages of memory.
pub fn parse_status(
    db_path: &str,
    text: &str,
    limit: usize,
) -> Result<(Vec<Package>, Vec<String>), String> {
    let mut packages = Vec::new();
    let mut errors = Vec::new();
    for (n, stanza) in stanzas(text).enumerate() {
        if packages.len() == limit {
            return Err(crate::layer::over_packages());
        }
        let field = |name: &str| {
            stanza
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim())
        };
        if let Some(status) = field("Status") {
            if !files_on_disk(status) {
                continue;
            }
        }
        // An empty value is none, as dpkg refuses it ("empty value for Version").
        let value = |name: &str| field(name).filter(|v| !v.is_empty());
        let (Some(name), Some(version)) = (value("Package"), value("Version")) else {
            errors.push(format!(
                "stanza {} has no {}",
                n + 1,
                if value("Package").is_none() {
                    "Package"
                } else {
                    "Version"
                }
            ));
            continue;
        };
        let (source_name, source_version) = match field("Source") {
            Some(src) => match src.split_once('(') {
                Some((n, v)) => (
                    n.trim().to_string(),
                    Some(v.trim_end_matches(')').trim().to_string()).filter(|v| v != version),
                ),
                None => (src.to_string(), None),
            },
            None => (name.to_string(), None),
        };
        packages.push(Package {
            kind: PackageKind::Deb,
            name: name.to_string(),
            version: version.to_string(),
            source_name: Some(source_name),
            source_version,
            arch: field("Architecture")
                .filter(|a| !a.is_empty())
                .map(str::to_string),
            license: None,
            purl: String::new(),
            db_path: db_path.to_string(),
            layer_index: 0,
        });
    }
    Ok((packages, errors))
}

/// Whether a `Status:` (`want flag status`) means the package's files may be on disk:
/// `installed`, on the way through configuration or triggers, or `half-installed` (an
/// install or removal cut short: some of its files are there, as Trivy lists it). Not
/// `config-files` or `not-installed`.
fn files_on_disk(status: &str) -> bool {
    matches!(
        status.split_whitespace().nth(2),
        Some(
            "installed"
                | "half-configured"
                | "half-installed"
                | "triggers-awaited"
                | "triggers-pending"
                | "unpacked"
        )
    )
}

/// deb822 stanzas: fields `Name: value`, continuation lines starting with a space or
/// tab (kept out: no field used here spans lines), stanzas separated by blank lines.
fn stanzas(text: &str) -> impl Iterator<Item = Vec<(&str, &str)>> {
    let mut lines = text.lines();
    std::iter::from_fn(move || {
        let mut fields = Vec::new();
        for line in lines.by_ref() {
            if line.trim().is_empty() {
                if fields.is_empty() {
                    continue;
                }
                return Some(fields);
            }
            if line.starts_with([' ', '\t']) || line.starts_with('#') {
                continue;
            }
            if let Some((k, v)) = line.split_once(':') {
                fields.push((k.trim(), v));
            }
        }
        (!fields.is_empty()).then_some(fields)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "\
Package: libgcc-s1
Status: install ok installed
Priority: optional
Architecture: amd64
Multi-Arch: same
Source: gcc-12 (12.2.0-14)
Version: 12.2.0-14
Description: GCC support library
 Shared version of the support library.
 .
 More.

Package: gone
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: never
Status: purge ok not-installed
Architecture: all

Package: base-files
Status: install ok installed
Architecture: amd64
Version: 12.4+deb12u5

Package: perl-base
Status: install ok installed
Architecture: amd64
Source: perl
Version: 5.36.0-7+deb12u1
";

    #[test]
    fn status_file() {
        let (pkgs, errors) = parse_status("var/lib/dpkg/status", STATUS, usize::MAX).unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        let got: Vec<_> = pkgs
            .iter()
            .map(|p| {
                (
                    p.name.as_str(),
                    p.version.as_str(),
                    p.source_name.as_deref(),
                    p.source_version.as_deref(),
                    p.arch.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "libgcc-s1",
                    "12.2.0-14",
                    Some("gcc-12"),
                    None,
                    Some("amd64")
                ),
                (
                    "base-files",
                    "12.4+deb12u5",
                    Some("base-files"),
                    None,
                    Some("amd64")
                ),
                (
                    "perl-base",
                    "5.36.0-7+deb12u1",
                    Some("perl"),
                    None,
                    Some("amd64")
                ),
            ]
        );
    }

    #[test]
    fn source_with_other_version_and_no_status() {
        let (pkgs, _) = parse_status(
            "var/lib/dpkg/status.d/libssl3",
            "Package: libssl3\nVersion: 3.0.11-1~deb12u2+b1\nArchitecture: amd64\n\
             Source: openssl (3.0.11-1~deb12u2)\n",
            usize::MAX,
        )
        .unwrap();
        assert_eq!(pkgs.len(), 1);
        assert_eq!(pkgs[0].source_name.as_deref(), Some("openssl"));
        assert_eq!(pkgs[0].source_version.as_deref(), Some("3.0.11-1~deb12u2"));
    }

    /// Parsing stops at the limit, before a hostile file's next million stanzas.
    #[test]
    fn more_packages_than_the_limit_is_an_error() {
        let text = "Package: a\nVersion: 1\n\nPackage: b\nVersion: 1\n\nPackage: c\nVersion: 1\n";
        assert_eq!(parse_status("s", text, 3).unwrap().0.len(), 3);
        let e = parse_status("s", text, 2).unwrap_err();
        assert!(e.contains("packages read per layer"), "{e}");
    }

    #[test]
    fn half_installed_packages_are_listed_config_files_not() {
        let (pkgs, _) = parse_status(
            "s",
            "Package: a\nStatus: install reinstreq half-installed\nVersion: 1\n\n\
             Package: b\nStatus: deinstall ok config-files\nVersion: 1\n",
            usize::MAX,
        )
        .unwrap();
        let names: Vec<&str> = pkgs.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a"]);
    }

    #[test]
    fn broken_stanza_is_named() {
        let (pkgs, errors) = parse_status(
            "s",
            "Package: a\nStatus: install ok installed\n\nPackage: b\nVersion: 1\n",
            usize::MAX,
        )
        .unwrap();
        assert_eq!(pkgs.len(), 1);
        assert_eq!(errors, vec!["stanza 1 has no Version".to_string()]);
    }

    #[test]
    fn empty_package_or_version_is_missing() {
        // Found by the dpkg_status fuzz target: `Version:` with nothing after it made
        // a package with an empty version.
        let (pkgs, errors) = parse_status(
            "s",
            "Package: openssl\nVersion:\n\nPackage: \t\nVersion: 1\n\nPackage: b\nVersion: 2\n",
            usize::MAX,
        )
        .unwrap();
        assert_eq!(pkgs.len(), 1);
        assert_eq!(
            errors,
            vec![
                "stanza 1 has no Version".to_string(),
                "stanza 2 has no Package".to_string()
            ]
        );
    }
}
