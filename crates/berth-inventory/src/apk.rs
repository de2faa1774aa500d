//! apk's database, `lib/apk/db/installed`: stanzas separated by a blank line, each
//! line a one-letter, case-sensitive key, `:`, and the value (`P:musl`, `V:1.2.4-r2`).
//! Keys are case-sensitive (`C:` checksum, `c:` commit), so no generic RFC 822 parser.

use crate::model::{Package, PackageKind};

/// The packages an `installed` file lists; a stanza without `P:` or `V:` is an error,
/// named, and skipped. More than `limit` packages is an error: parsing stops there.
pub fn parse_installed(
    db_path: &str,
    text: &str,
    limit: usize,
) -> Result<(Vec<Package>, Vec<String>), String> {
    let mut packages = Vec::new();
    let mut errors = Vec::new();
    for (n, stanza) in text
        .split("\n\n")
        .filter(|s| !s.trim().is_empty())
        .enumerate()
    {
        if packages.len() == limit {
            return Err(crate::layer::over_packages());
        }
        let (mut name, mut version, mut arch, mut license, mut origin) =
            (None, None, None, None, None);
        for line in stanza.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = Some(value.trim().to_string()).filter(|v| !v.is_empty());
            match key {
                "P" => name = value,
                "V" => version = value,
                "A" => arch = value,
                "L" => license = value,
                "o" => origin = value,
                _ => {}
            }
        }
        let (Some(name), Some(version)) = (name.clone(), version) else {
            errors.push(format!(
                "stanza {} has no {}",
                n + 1,
                if name.is_none() {
                    "P: (name)"
                } else {
                    "V: (version)"
                }
            ));
            continue;
        };
        packages.push(Package {
            kind: PackageKind::Apk,
            source_name: Some(origin.unwrap_or_else(|| name.clone())),
            name,
            version,
            source_version: None,
            arch,
            license,
            purl: String::new(),
            db_path: db_path.to_string(),
            layer_index: 0,
        });
    }
    Ok((packages, errors))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stanzas() {
        let text = "C:Q1abc=\nP:musl\nV:1.2.4_git20230717-r4\nA:x86_64\nS:407124\nI:667648\n\
                    T:the musl c library (libc) implementation\nU:https://musl.libc.org/\n\
                    L:MIT\no:musl\nm:Timo Teras <timo.teras@iki.fi>\nt:1705508818\n\
                    c:ca7f2ab5e88794e4e654b40776f8a92256f50639\nF:lib\nR:ld-musl-x86_64.so.1\n\
                    a:0:0:755\nZ:Q1abc=\n\nC:Q1def=\nP:libcrypto3\nV:3.1.4-r5\nA:x86_64\n\
                    L:Apache-2.0\no:openssl\n\nP:broken\n";
        let (pkgs, errors) = parse_installed("lib/apk/db/installed", text, usize::MAX).unwrap();
        let got: Vec<_> = pkgs
            .iter()
            .map(|p| {
                (
                    p.name.as_str(),
                    p.version.as_str(),
                    p.source_name.as_deref(),
                    p.license.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("musl", "1.2.4_git20230717-r4", Some("musl"), Some("MIT")),
                (
                    "libcrypto3",
                    "3.1.4-r5",
                    Some("openssl"),
                    Some("Apache-2.0")
                ),
            ]
        );
        assert_eq!(errors, vec!["stanza 3 has no V: (version)".to_string()]);
    }
}
