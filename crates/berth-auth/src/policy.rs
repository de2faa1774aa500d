//! Content policies an admin sets beside access control: immutable tags (per namespace
//! or repository, a list of tag patterns), retention (per namespace or repository,
//! which tags the collector deletes) and quotas (bytes per namespace).
//!
//! Like trust settings they are changes ([`crate::Change`]), so they are authorized,
//! audited and reach a running server with the directory snapshot; the registry
//! enforces them (`berth-registry`'s `policy`).

use std::sync::Arc;

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
    #[error("a retention setting keeps something: give --keep-last, --older-than or --keep")]
    KeepsNothing,
    #[error("--keep-last: at least 1 (to delete every tag, use --older-than)")]
    ZeroKeepLast,
    #[error("--older-than {0:?}: a duration such as 30d, 12h or 90m, at least one second")]
    BadAge(String),
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
        check_patterns(&patterns)?;
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

/// The immutable-tags settings in force for one repository: its own, then its
/// namespace's. A repository's own setting adds tags and never lifts the namespace's:
/// a repository's admin (who may set its own) must not unlock the organization's
/// release tags, as a repository's retention rule keeps its namespace's `never`
/// patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImmutableRules {
    settings: Vec<Arc<ImmutableTags>>,
}

impl ImmutableRules {
    /// `settings`, most specific first; `None` when there are none.
    pub fn new(settings: Vec<Arc<ImmutableTags>>) -> Option<ImmutableRules> {
        (!settings.is_empty()).then_some(ImmutableRules { settings })
    }

    /// The first pattern `tag` matches and the target whose setting it is.
    pub fn rule_for(&self, tag: &str) -> Option<(&str, &str)> {
        self.settings
            .iter()
            .find_map(|s| Some((s.rule_for(tag)?, s.target.as_str())))
    }

    /// `immutable show`'s answer: the most specific setting, and the namespace's
    /// under `namespace` when the repository has its own too.
    pub fn describe(&self) -> serde_json::Value {
        let one =
            |s: &ImmutableTags| serde_json::json!({ "name": s.target, "patterns": s.patterns });
        let mut out = one(&self.settings[0]);
        if let Some(ns) = self.settings.get(1) {
            out["namespace"] = one(ns);
        }
        out
    }
}

/// A duration as people write it (`30d`, `12h`, `90m`) in whole seconds: at least one,
/// and small enough to subtract from a unix time.
pub(crate) fn duration_secs(s: &str) -> Option<u64> {
    humantime::parse_duration(s.trim())
        .ok()
        .map(|d| d.as_secs())
        .filter(|&secs| secs > 0 && secs < i64::MAX as u64)
}

/// Checks a list of tag patterns for a setting (empty allowed).
fn check_patterns(patterns: &[String]) -> Result<(), PolicyError> {
    if patterns.len() > MAX_PATTERNS {
        return Err(PolicyError::TooManyPatterns);
    }
    for p in patterns {
        let ok = (1..=MAX_PATTERN_LEN).contains(&p.len())
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-*?".contains(&b));
        if !ok {
            return Err(PolicyError::BadPattern(p.clone()));
        }
    }
    Ok(())
}

/// Which tags of a namespace's or repository's repositories the collector deletes, as
/// GitLab's cleanup policies and Harbor's retention rules say it. Each repository is
/// judged on its own, its tags newest first (by when each was last pushed): a tag
/// stays when it is among the `keep_last` newest, matches a `keep` pattern, or was
/// pushed less than `older_than` ago; every other tag goes. With both `keep_last` and
/// `older_than`, a tag goes only when it is neither among the newest nor young.
///
/// `never` patterns stand outside the rule: matching tags are never deleted and take
/// none of the `keep_last` places. A namespace's `never` patterns also hold in a
/// repository that has a setting of its own (which otherwise replaces the namespace's),
/// so an organization can protect `release-*` everywhere whatever its teams set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// The namespace or repository the setting is on.
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keep: Vec<String>,
    /// Seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub older_than: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub never: Vec<String>,
}

/// A tag retention deletes, and why (for the dry run's list and the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    /// Its place in the list [`Retention::expired`] was given.
    pub index: usize,
    pub reason: String,
}

impl Retention {
    /// Checks a setting: something kept (a setting that keeps nothing would empty
    /// every repository), patterns of tag characters and wildcards, an age given as
    /// people write durations (`30d`, `12h`).
    pub fn new(
        target: &str,
        keep_last: Option<u32>,
        keep: Vec<String>,
        older_than: Option<&str>,
        never: Vec<String>,
    ) -> Result<Retention, PolicyError> {
        if keep_last == Some(0) {
            return Err(PolicyError::ZeroKeepLast);
        }
        let older_than = older_than
            .map(|s| duration_secs(s).ok_or_else(|| PolicyError::BadAge(s.to_string())))
            .transpose()?;
        if keep_last.is_none() && older_than.is_none() && keep.is_empty() {
            return Err(PolicyError::KeepsNothing);
        }
        check_patterns(&keep)?;
        check_patterns(&never)?;
        Ok(Retention {
            target: target.to_string(),
            keep_last,
            keep,
            older_than,
            never,
        })
    }

    /// Which of `tags` (`(name, pushed at)`, newest first) go at `now` (unix
    /// seconds). Tags for which `protected` answers true (the namespace's `never`
    /// patterns, immutable tags, signatures' tags) stand outside the rule, like this
    /// setting's own `never` patterns.
    pub fn expired(
        &self,
        tags: &[(&str, i64)],
        now: i64,
        protected: impl Fn(&str) -> bool,
    ) -> Vec<Expired> {
        let mut out = Vec::new();
        let mut ruled = 0u64;
        for (index, &(name, pushed_at)) in tags.iter().enumerate() {
            if protected(name) || self.never.iter().any(|p| glob_match(p, name)) {
                continue;
            }
            ruled += 1;
            let newest = self.keep_last.is_some_and(|n| ruled <= u64::from(n));
            let young = self
                .older_than
                .is_some_and(|secs| now.saturating_sub(pushed_at) < secs as i64);
            let named = self.keep.iter().any(|p| glob_match(p, name));
            if newest || young || named {
                continue;
            }
            let mut why = Vec::new();
            if let Some(n) = self.keep_last {
                why.push(format!("not among the {n} newest"));
            }
            if let Some(secs) = self.older_than {
                why.push(format!(
                    "pushed more than {} ago",
                    humantime::format_duration(std::time::Duration::from_secs(secs))
                ));
            }
            if !self.keep.is_empty() {
                why.push(format!("matches none of {}", self.keep.join(" ")));
            }
            out.push(Expired {
                index,
                reason: format!("retention on {}: {}", self.target, why.join(", ")),
            });
        }
        out
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

    /// `(name, age in seconds)` newest first, as `(name, pushed at)` for `now` 1000.
    fn tags<'a>(list: &[(&'a str, i64)]) -> Vec<(&'a str, i64)> {
        list.iter().map(|&(n, age)| (n, 1000 - age)).collect()
    }

    fn gone(r: &Retention, list: &[(&str, i64)], protected: &[&str]) -> Vec<String> {
        let t = tags(list);
        r.expired(&t, 1000, |n| protected.contains(&n))
            .into_iter()
            .map(|e| t[e.index].0.to_string())
            .collect()
    }

    #[test]
    fn retention_rules() {
        let list = [
            ("ci-5", 10),
            ("v2", 20),
            ("ci-4", 100),
            ("ci-3", 200),
            ("release-1", 300),
            ("ci-2", 400),
            ("ci-1", 500),
        ];
        let last3 = Retention::new("o/app", Some(3), vec![], None, vec![]).unwrap();
        assert_eq!(
            gone(&last3, &list, &[]),
            ["ci-3", "release-1", "ci-2", "ci-1"]
        );
        // Protected tags take no place among the newest.
        assert_eq!(gone(&last3, &list, &["v2"]), ["release-1", "ci-2", "ci-1"]);
        let never = Retention::new("o", Some(3), vec![], None, vec!["release-*".into()]).unwrap();
        assert_eq!(gone(&never, &list, &[]), ["ci-3", "ci-2", "ci-1"]);
        let keep = Retention::new("o", Some(1), vec!["v*".into()], None, vec![]).unwrap();
        assert_eq!(
            gone(&keep, &list, &[]),
            ["ci-4", "ci-3", "release-1", "ci-2", "ci-1"]
        );
        let old = Retention::new("o", None, vec![], Some("250s"), vec![]).unwrap();
        assert_eq!(gone(&old, &list, &[]), ["release-1", "ci-2", "ci-1"]);
        // Both: a tag goes when neither among the newest nor young.
        let both = Retention::new("o", Some(5), vec![], Some("50s"), vec![]).unwrap();
        assert_eq!(gone(&both, &list, &[]), ["ci-2", "ci-1"]);
        let only_keep = Retention::new("o", None, vec!["v*".into()], None, vec![]).unwrap();
        assert_eq!(gone(&only_keep, &list, &["release-1"]).len(), 5);
        let e = last3.expired(&tags(&list), 1000, |_| false);
        assert_eq!(e[0].reason, "retention on o/app: not among the 3 newest");
        let e = both.expired(&tags(&list), 1000, |_| false);
        assert_eq!(
            e[0].reason,
            "retention on o: not among the 5 newest, pushed more than 50s ago"
        );
    }

    #[test]
    fn retention_settings_are_checked() {
        let new = |last, keep: &[&str], age, never: &[&str]| {
            Retention::new(
                "o",
                last,
                keep.iter().map(|s| s.to_string()).collect(),
                age,
                never.iter().map(|s| s.to_string()).collect(),
            )
        };
        assert_eq!(
            new(None, &[], None, &["v*"]).unwrap_err(),
            PolicyError::KeepsNothing
        );
        assert_eq!(
            new(Some(0), &[], None, &[]).unwrap_err(),
            PolicyError::ZeroKeepLast
        );
        assert!(matches!(
            new(None, &[], Some("soon"), &[]),
            Err(PolicyError::BadAge(_))
        ));
        assert!(matches!(
            new(None, &[], Some("0s"), &[]),
            Err(PolicyError::BadAge(_))
        ));
        assert!(matches!(
            new(Some(1), &["a/b"], None, &[]),
            Err(PolicyError::BadPattern(_))
        ));
        assert_eq!(
            new(None, &[], Some("30d"), &[]).unwrap().older_than,
            Some(30 * 86400)
        );
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
