//! The operating system: `os-release` (freedesktop's format: shell-style `KEY=value`
//! lines, values optionally quoted with shell escapes), and the older one-line release
//! files for images that lack it, mapped to the OSV ecosystem string advisories use.

use crate::model::OsInfo;

/// Parses an `os-release` file. None when it has no `ID` (not an os-release at all).
pub fn parse_os_release(text: &str) -> Option<OsInfo> {
    let mut id = None;
    let mut version_id = None;
    let mut pretty_name = None;
    let mut version = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, raw)) = line.split_once('=') else {
            continue;
        };
        let value = unquote(raw.trim());
        match key.trim() {
            "ID" => id = Some(value),
            "VERSION_ID" => version_id = Some(value),
            "PRETTY_NAME" => pretty_name = Some(value),
            "VERSION" => version = Some(value),
            _ => {}
        }
    }
    let id = id.filter(|s| !s.is_empty())?.to_ascii_lowercase();
    let version_id = version_id.filter(|s| !s.is_empty());
    let ecosystem = ecosystem(&id, version_id.as_deref(), version.as_deref());
    Some(OsInfo {
        id,
        version_id,
        pretty_name: pretty_name.filter(|s| !s.is_empty()),
        ecosystem,
    })
}

/// A value as the shell would read it: `"..."` with `\"`, `\\`, `\$`, `` \` `` escapes,
/// `'...'` literally, bare words as they are.
fn unquote(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (Some('"') | None, '\\') => match chars.next() {
                Some(n @ ('"' | '\\' | '$' | '`' | '\'')) => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            },
            (None, '#') => break,
            (_, c) => out.push(c),
        }
    }
    out.trim_end().to_string()
}

/// Parses one of the one-line release files (`etc/alpine-release`: `3.19.1`,
/// `etc/debian_version`: `12.5`, `etc/redhat-release`: `Rocky Linux release 9.3 (Blue
/// Onyx)`), used only when no os-release is present.
pub fn parse_release_file(path: &str, text: &str) -> Option<OsInfo> {
    let line = text.lines().next()?.trim();
    if line.is_empty() {
        return None;
    }
    let (id, version_id, pretty) = match path {
        "etc/alpine-release" => ("alpine".to_string(), Some(line.to_string()), None),
        "etc/debian_version" => {
            // `12.5` is Debian 12; `trixie/sid` names no release.
            let major = line
                .split('.')
                .next()
                .filter(|m| !m.is_empty() && m.chars().all(|c| c.is_ascii_digit()));
            ("debian".to_string(), major.map(str::to_string), None)
        }
        "etc/redhat-release" => {
            let lower = line.to_ascii_lowercase();
            let id = [
                ("red hat enterprise linux", "rhel"),
                ("rocky linux", "rocky"),
                ("almalinux", "almalinux"),
                ("centos", "centos"),
                ("fedora", "fedora"),
                ("oracle linux", "ol"),
            ]
            .iter()
            .find(|(name, _)| lower.starts_with(name))
            .map(|(_, id)| *id)?;
            let version = line
                .split_once(" release ")
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .map(str::to_string);
            (id.to_string(), version, Some(line.to_string()))
        }
        _ => return None,
    };
    let ecosystem = ecosystem(&id, version_id.as_deref(), None);
    Some(OsInfo {
        id,
        version_id,
        pretty_name: pretty,
        ecosystem,
    })
}

/// The OSV ecosystem string of a distribution release (research note 8.1, item 4), or
/// None where OSV has no per-release ecosystem for it.
pub fn ecosystem(id: &str, version_id: Option<&str>, version: Option<&str>) -> Option<String> {
    let major = || {
        version_id
            .and_then(|v| v.split('.').next())
            .filter(|m| !m.is_empty())
    };
    match id {
        "debian" => major().map(|m| format!("Debian:{m}")),
        "ubuntu" => {
            let v = version_id?;
            let lts = version.is_some_and(|v| v.contains("LTS"));
            Some(format!("Ubuntu:{v}{}", if lts { ":LTS" } else { "" }))
        }
        "alpine" => {
            let mut parts = version_id?.split('.');
            let (maj, min) = (parts.next()?, parts.next()?);
            // Edge pre-releases say `3.20_alpha2024...`: the branch is still 3.20.
            let min: String = min.chars().take_while(|c| c.is_ascii_digit()).collect();
            (!min.is_empty()).then(|| format!("Alpine:v{maj}.{min}"))
        }
        "rocky" => major().map(|m| format!("Rocky Linux:{m}")),
        "almalinux" => major().map(|m| format!("AlmaLinux:{m}")),
        "rhel" => major().map(|m| format!("Red Hat:enterprise_linux:{m}")),
        "wolfi" => Some("Wolfi".into()),
        "chainguard" => Some("Chainguard".into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_os_release() {
        let os = parse_os_release(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n\
             VERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nID=debian\n",
        )
        .unwrap();
        assert_eq!(os.id, "debian");
        assert_eq!(os.version_id.as_deref(), Some("12"));
        assert_eq!(
            os.pretty_name.as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(os.ecosystem.as_deref(), Some("Debian:12"));
    }

    #[test]
    fn quotes_escapes_and_comments() {
        let os = parse_os_release(
            "# a comment\nID='ubuntu'\nVERSION_ID=22.04\nVERSION=\"22.04.3 LTS (Jammy Jellyfish)\"\n\
             PRETTY_NAME=\"say \\\"hi\\\" \\$HOME \\\\ ok\"\n",
        )
        .unwrap();
        assert_eq!(os.pretty_name.as_deref(), Some("say \"hi\" $HOME \\ ok"));
        assert_eq!(os.ecosystem.as_deref(), Some("Ubuntu:22.04:LTS"));
        let os = parse_os_release("ID=ubuntu\nVERSION_ID=\"23.10\"\nVERSION=\"23.10 (Mantic)\"")
            .unwrap();
        assert_eq!(os.ecosystem.as_deref(), Some("Ubuntu:23.10"));
        assert!(parse_os_release("NAME=nothing\n").is_none());
    }

    #[test]
    fn ecosystems() {
        assert_eq!(
            ecosystem("alpine", Some("3.19.1"), None).as_deref(),
            Some("Alpine:v3.19")
        );
        assert_eq!(
            ecosystem("alpine", Some("3.20_alpha20240329"), None).as_deref(),
            Some("Alpine:v3.20")
        );
        assert_eq!(
            ecosystem("rocky", Some("9.3"), None).as_deref(),
            Some("Rocky Linux:9")
        );
        assert_eq!(
            ecosystem("almalinux", Some("9.4"), None).as_deref(),
            Some("AlmaLinux:9")
        );
        assert_eq!(
            ecosystem("rhel", Some("9.4"), None).as_deref(),
            Some("Red Hat:enterprise_linux:9")
        );
        assert_eq!(ecosystem("debian", None, None), None);
        assert_eq!(ecosystem("fedora", Some("39"), None), None);
    }

    #[test]
    fn release_files() {
        let a = parse_release_file("etc/alpine-release", "3.19.1\n").unwrap();
        assert_eq!(
            (a.id.as_str(), a.ecosystem.as_deref()),
            ("alpine", Some("Alpine:v3.19"))
        );
        let d = parse_release_file("etc/debian_version", "12.5\n").unwrap();
        assert_eq!(d.ecosystem.as_deref(), Some("Debian:12"));
        let d = parse_release_file("etc/debian_version", "trixie/sid\n").unwrap();
        assert_eq!(d.version_id, None);
        // Found by the os_release fuzz target: `.5` named an empty release.
        let d = parse_release_file("etc/debian_version", ".5\n").unwrap();
        assert_eq!(d.version_id, None);
        let r = parse_release_file(
            "etc/redhat-release",
            "Rocky Linux release 9.3 (Blue Onyx)\n",
        )
        .unwrap();
        assert_eq!(
            (r.id.as_str(), r.version_id.as_deref()),
            ("rocky", Some("9.3"))
        );
        assert_eq!(r.ecosystem.as_deref(), Some("Rocky Linux:9"));
    }
}
