//! Replication rules: which repositories and tags of this registry a superuser has
//! asked to be copied to another registry, when, and with which credentials.
//!
//! A rule is a [`crate::Change`] like every other setting (authorized, audited, on every
//! replica with the directory snapshot); the registry's replicator (`berth-registry`'s
//! `replication`) runs it. The target's password is kept in the auth database, which
//! already holds what lets one into this registry; it is never shown nor logged.

use serde::{Deserialize, Serialize};

use crate::policy::{duration_secs, glob_match};

/// Longest rule name; rule names are `[a-z0-9._-]`.
pub const MAX_NAME: usize = 64;
/// Patterns one rule may hold, per kind.
pub const MAX_PATTERNS: usize = 64;
/// Shortest schedule: a rule runs at most once a minute.
pub const MIN_SCHEDULE: u64 = 60;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReplicationError {
    #[error("replication rule name {0:?}: 1 to 64 of a-z 0-9 . _ -")]
    BadName(String),
    #[error("--to {0:?}: the URL of a registry, http:// or https://, with no path, query or credentials")]
    BadUrl(String),
    #[error("{kind} pattern {pattern:?}: 1 to 255 of the characters of a {kind} and the wildcards * and ?")]
    BadPattern { kind: &'static str, pattern: String },
    #[error("at most {MAX_PATTERNS} patterns per kind")]
    TooManyPatterns,
    #[error("a rule runs on push (--on-push), on a schedule (--schedule), or both")]
    NeverRuns,
    #[error("--schedule {0:?}: a duration such as 1h or 30m, at least one minute")]
    BadSchedule(String),
    #[error("--creds: a user name without a password, or a password without a user")]
    HalfCredentials,
}

/// Where and what to copy. Patterns are globs (`*` matches any run of characters,
/// `/` included, `?` one): `repos` against repository names, `tags` against tags.
/// An empty list matches everything.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationRule {
    pub name: String,
    /// The target registry, `https://host[:port]` (or `http://` for one on the same
    /// network).
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repos: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Copy each matching tag as soon as it is pushed.
    #[serde(default)]
    pub on_push: bool,
    /// Copy every matching tag the target lacks this often (seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<u64>,
}

impl std::fmt::Debug for ReplicationRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicationRule")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("username", &self.username)
            .field("repos", &self.repos)
            .field("tags", &self.tags)
            .field("on_push", &self.on_push)
            .field("schedule", &self.schedule)
            .finish_non_exhaustive()
    }
}

impl ReplicationRule {
    /// Checks a rule as an admin gives it; `schedule` as people write durations (`1h`).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        url: &str,
        username: Option<String>,
        password: Option<String>,
        repos: Vec<String>,
        tags: Vec<String>,
        on_push: bool,
        schedule: Option<&str>,
    ) -> Result<ReplicationRule, ReplicationError> {
        let name_ok = (1..=MAX_NAME).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        if !name_ok {
            return Err(ReplicationError::BadName(name.to_string()));
        }
        check_url(url)?;
        if username.is_some() != password.is_some() {
            return Err(ReplicationError::HalfCredentials);
        }
        check_patterns("repository", &repos, |b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b)
        })?;
        check_patterns("tag", &tags, |b| {
            b.is_ascii_alphanumeric() || b"_.-".contains(&b)
        })?;
        let schedule = schedule
            .map(|s| {
                duration_secs(s)
                    .filter(|&secs| secs >= MIN_SCHEDULE)
                    .ok_or_else(|| ReplicationError::BadSchedule(s.to_string()))
            })
            .transpose()?;
        if !on_push && schedule.is_none() {
            return Err(ReplicationError::NeverRuns);
        }
        Ok(ReplicationRule {
            name: name.to_string(),
            url: url.trim_end_matches('/').to_string(),
            username,
            password,
            repos,
            tags,
            on_push,
            schedule,
        })
    }

    /// Whether repository `repo` is one this rule copies.
    pub fn covers_repo(&self, repo: &str) -> bool {
        self.repos.is_empty() || self.repos.iter().any(|p| glob_match(p, repo))
    }

    /// Whether `repo:tag` is one this rule copies.
    pub fn covers(&self, repo: &str, tag: &str) -> bool {
        self.covers_repo(repo)
            && (self.tags.is_empty() || self.tags.iter().any(|p| glob_match(p, tag)))
    }

    /// The rule without its password, for the API and the command line.
    pub fn describe(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "name": self.name,
            "to": self.url,
            "repos": self.repos,
            "tags": self.tags,
            "on_push": self.on_push,
        });
        if let Some(u) = &self.username {
            v["username"] = serde_json::Value::String(u.clone());
        }
        if let Some(e) = self.schedule {
            v["schedule"] = serde_json::Value::String(
                humantime::format_duration(std::time::Duration::from_secs(e)).to_string(),
            );
        }
        v
    }
}

fn check_url(url: &str) -> Result<(), ReplicationError> {
    let bad = || ReplicationError::BadUrl(url.to_string());
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(bad)?;
    let host = rest.trim_end_matches('/');
    let ok = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(bad())
    }
}

fn check_patterns(
    kind: &'static str,
    patterns: &[String],
    allowed: impl Fn(u8) -> bool,
) -> Result<(), ReplicationError> {
    if patterns.len() > MAX_PATTERNS {
        return Err(ReplicationError::TooManyPatterns);
    }
    for p in patterns {
        if !(1..=255).contains(&p.len()) || !p.bytes().all(|b| allowed(b) || b"*?".contains(&b)) {
            return Err(ReplicationError::BadPattern {
                kind,
                pattern: p.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(repos: &[&str], tags: &[&str]) -> ReplicationRule {
        ReplicationRule::new(
            "dr",
            "https://mirror.example:5000/",
            None,
            None,
            repos.iter().map(|s| s.to_string()).collect(),
            tags.iter().map(|s| s.to_string()).collect(),
            true,
            None,
        )
        .unwrap()
    }

    #[test]
    fn patterns_choose_repositories_and_tags() {
        let r = rule(&["team/*"], &["v*", "latest"]);
        assert_eq!(r.url, "https://mirror.example:5000");
        assert!(r.covers("team/app", "v1.2"));
        assert!(r.covers("team/sub/app", "latest"), "* crosses /");
        assert!(!r.covers("team/app", "dev"));
        assert!(!r.covers("other/app", "v1"));
        let all = rule(&[], &[]);
        assert!(all.covers("a", "b") && all.covers_repo("x/y"));
    }

    #[test]
    fn bad_rules_say_why() {
        let new = |name: &str,
                   url: &str,
                   user: Option<&str>,
                   pw: Option<&str>,
                   schedule: Option<&str>,
                   on_push| {
            ReplicationRule::new(
                name,
                url,
                user.map(Into::into),
                pw.map(Into::into),
                vec![],
                vec![],
                on_push,
                schedule,
            )
        };
        assert!(matches!(
            new("Bad", "https://x", None, None, None, true),
            Err(ReplicationError::BadName(_))
        ));
        assert!(matches!(
            new("a", "ftp://x", None, None, None, true),
            Err(ReplicationError::BadUrl(_))
        ));
        assert!(matches!(
            new("a", "https://u:p@x", None, None, None, true),
            Err(ReplicationError::BadUrl(_))
        ));
        assert!(matches!(
            new("a", "https://x/path", None, None, None, true),
            Err(ReplicationError::BadUrl(_))
        ));
        assert_eq!(
            new("a", "https://x", Some("u"), None, None, true),
            Err(ReplicationError::HalfCredentials)
        );
        assert_eq!(
            new("a", "https://x", None, None, None, false),
            Err(ReplicationError::NeverRuns)
        );
        assert!(matches!(
            new("a", "https://x", None, None, Some("10s"), false),
            Err(ReplicationError::BadSchedule(_))
        ));
        let scheduled = new(
            "a",
            "http://127.0.0.1:5000",
            Some("u"),
            Some("p"),
            Some("1h"),
            false,
        )
        .unwrap();
        assert_eq!(scheduled.schedule, Some(3600));
        let shown = scheduled.describe().to_string();
        assert!(!shown.contains("\"p\""), "{shown}");
        assert!(!format!("{scheduled:?}").contains("\"p\""));
        let bad_tag = ReplicationRule::new(
            "a",
            "https://x",
            None,
            None,
            vec![],
            vec!["v/1".into()],
            true,
            None,
        );
        assert!(matches!(
            bad_tag,
            Err(ReplicationError::BadPattern { kind: "tag", .. })
        ));
    }
}
