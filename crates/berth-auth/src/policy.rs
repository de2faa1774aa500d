//! Content policies an admin sets beside access control: immutable tags (per namespace
//! or repository, a list of tag patterns) and quotas (bytes per namespace).
//!
//! Like trust settings they are changes ([`crate::Change`]), so they are authorized,
//! audited and reach a running server with the directory snapshot; the registry
//! enforces them (`berth-registry`'s `policy`).

use serde::{Deserialize, Serialize};

/// Patterns one immutable-tags setting may hold.
pub const MAX_PATTERNS: usize = 64;
/// Longest pattern: a tag is at most 128 characters.
pub const MAX_PATTERN_LEN: usize = 128;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("give at least one tag pattern")]
    NoPatterns,
    #[error("at most {MAX_PATTERNS} tag patterns per setting")]
    TooManyPatterns,
    #[error("tag pattern {0:?}: 1 to 128 of the characters of a tag (A-Z a-z 0-9 _ . -) and the wildcards * and ?")]
    BadPattern(String),
    #[error("a quota is a positive number of bytes")]
    ZeroQuota,
}

/// The tags of a namespace or repository that, once pushed, never move nor go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImmutableTags {
    /// The namespace or repository the setting is on.
    pub target: String,
    pub patterns: Vec<String>,
}

impl ImmutableTags {
    /// Checks a setting: one to [`MAX_PATTERNS`] patterns made of tag characters and
    /// wildcards.
    pub fn new(target: &str, patterns: Vec<String>) -> Result<ImmutableTags, PolicyError> {
        if patterns.is_empty() {
            return Err(PolicyError::NoPatterns);
        }
        if patterns.len() > MAX_PATTERNS {
            return Err(PolicyError::TooManyPatterns);
        }
        for p in &patterns {
            let ok = (1..=MAX_PATTERN_LEN).contains(&p.len())
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-*?".contains(&b));
            if !ok {
                return Err(PolicyError::BadPattern(p.clone()));
            }
        }
        Ok(ImmutableTags {
            target: target.to_string(),
            patterns,
        })
    }

    /// The first pattern `tag` matches, if any.
    pub fn rule_for(&self, tag: &str) -> Option<&str> {
        self.patterns
            .iter()
            .find(|p| glob_match(p, tag))
            .map(String::as_str)
    }
}

/// Whether `text` matches `pattern`, where `*` is any run of characters (also none)
/// and `?` one character. Linear backtracking on the last `*`: no pattern, however
/// written, costs more than `pattern.len() * text.len()` steps.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Parses a size as people write it: `1048576`, `500MB`, `10GiB`, `1.5 G` (decimal
/// prefixes are powers of 1000, `…iB` powers of 1024; a bare `K`/`M`/`G`/`T` is
/// binary, as `podman --memory` takes it).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000u64.pow(2),
        "gb" => 1000u64.pow(3),
        "tb" => 1000u64.pow(4),
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        _ => return None,
    };
    let bytes = num * mult as f64;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then(|| bytes.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        for (p, t, want) in [
            ("v*", "v1.0", true),
            ("v*", "v", true),
            ("v*", "latest", false),
            ("release-*", "release-2024.1", true),
            ("release-*", "release", false),
            ("v?.0", "v1.0", true),
            ("v?.0", "v10.0", false),
            ("*", "", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("*-rc*", "1.0-rc2", true),
            ("latest", "latest", true),
            ("latest", "latest2", false),
        ] {
            assert_eq!(glob_match(p, t), want, "{p} ~ {t}");
        }
    }

    #[test]
    fn settings_are_checked() {
        assert_eq!(
            ImmutableTags::new("myorg", vec![]).unwrap_err(),
            PolicyError::NoPatterns
        );
        assert!(matches!(
            ImmutableTags::new("myorg", vec!["v/1".into()]),
            Err(PolicyError::BadPattern(_))
        ));
        assert!(ImmutableTags::new("myorg", vec!["".into()]).is_err());
        let s = ImmutableTags::new("myorg", vec!["latest".into(), "v*".into()]).unwrap();
        assert_eq!(s.rule_for("v1"), Some("v*"));
        assert_eq!(s.rule_for("dev"), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576"), Some(1 << 20));
        assert_eq!(parse_size("500MB"), Some(500_000_000));
        assert_eq!(parse_size("10GiB"), Some(10 << 30));
        assert_eq!(parse_size("1.5 G"), Some(3 << 29));
        assert_eq!(parse_size("1k"), Some(1024));
        assert_eq!(parse_size("12 parsecs"), None);
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("-1"), None);
    }
}
