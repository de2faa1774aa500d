//! The names access control speaks of, and their grammar.
//!
//! Users and organizations share one space of names, because each owns the namespace
//! of the same name (`alice/…`, `myorg/…`): a name is a single repository-path
//! component, so it can never be confused with a path. A robot is `owner+name`, a team
//! is `org/team`. Everything that passes here is safe as a database key.

use std::fmt;

use berth_image::RepositoryName;

/// Longest user, organization, team or robot part.
pub const MAX_ACCOUNT_LEN: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("invalid account name {0:?}: use lower-case letters, digits and . _ - (at most {MAX_ACCOUNT_LEN})")]
    Account(String),
    #[error("invalid robot name {0:?}: use OWNER+NAME, e.g. myorg+ci")]
    Robot(String),
    #[error("invalid team name {0:?}: use ORG/TEAM, e.g. myorg/devs")]
    Team(String),
    #[error("invalid repository or namespace {0:?}")]
    Target(String),
}

/// A user or organization name, also the name of its namespace.
pub fn check_account(name: &str) -> Result<(), NameError> {
    if name.len() <= MAX_ACCOUNT_LEN
        && !name.contains('/')
        && name.parse::<RepositoryName>().is_ok()
    {
        Ok(())
    } else {
        Err(NameError::Account(name.to_string()))
    }
}

/// Splits a robot name `owner+name` after checking both parts.
pub fn split_robot(name: &str) -> Result<(&str, &str), NameError> {
    let bad = || NameError::Robot(name.to_string());
    let (owner, short) = name.split_once('+').ok_or_else(bad)?;
    check_account(owner).map_err(|_| bad())?;
    check_account(short).map_err(|_| bad())?;
    Ok((owner, short))
}

/// Who a grant is given to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    User(String),
    Team { org: String, team: String },
    Robot(String),
}

impl Subject {
    /// `alice`, `myorg/devs` or `myorg+ci`.
    pub fn parse(s: &str) -> Result<Subject, NameError> {
        if s.contains('+') {
            split_robot(s)?;
            return Ok(Subject::Robot(s.to_string()));
        }
        if let Some((org, team)) = s.split_once('/') {
            let bad = || NameError::Team(s.to_string());
            check_account(org).map_err(|_| bad())?;
            check_account(team).map_err(|_| bad())?;
            return Ok(Subject::Team {
                org: org.to_string(),
                team: team.to_string(),
            });
        }
        check_account(s)?;
        Ok(Subject::User(s.to_string()))
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::User(n) | Subject::Robot(n) => f.write_str(n),
            Subject::Team { org, team } => write!(f, "{org}/{team}"),
        }
    }
}

/// What a grant is on: a whole namespace (`myorg`) or one repository (`myorg/app`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    Namespace(String),
    Repository(RepositoryName),
}

impl Target {
    pub fn parse(s: &str) -> Result<Target, NameError> {
        if s.contains('/') {
            let repo = s
                .parse::<RepositoryName>()
                .map_err(|_| NameError::Target(s.to_string()))?;
            return Ok(Target::Repository(repo));
        }
        check_account(s).map_err(|_| NameError::Target(s.to_string()))?;
        Ok(Target::Namespace(s.to_string()))
    }

    /// The namespace the target lies in.
    pub fn namespace(&self) -> &str {
        match self {
            Target::Namespace(n) => n,
            Target::Repository(r) => namespace_of(r.as_str()),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Namespace(n) => f.write_str(n),
            Target::Repository(r) => f.write_str(r.as_str()),
        }
    }
}

/// The first path component of a repository: the account that owns it. A name with one
/// component (`alpine`) is its own namespace, which no account can own unless created.
pub fn namespace_of(repo: &str) -> &str {
    repo.split_once('/').map_or(repo, |(ns, _)| ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts() {
        assert!(check_account("alice").is_ok());
        assert!(check_account("my-org.io").is_ok());
        for bad in [
            "",
            "Alice",
            "a/b",
            "a b",
            "x'; DROP TABLE accounts; --",
            "-a",
            "a+b",
            &"a".repeat(65),
        ] {
            assert!(check_account(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn subjects_and_targets() {
        assert_eq!(Subject::parse("alice"), Ok(Subject::User("alice".into())));
        assert_eq!(
            Subject::parse("myorg/devs"),
            Ok(Subject::Team {
                org: "myorg".into(),
                team: "devs".into()
            })
        );
        assert_eq!(
            Subject::parse("myorg+ci"),
            Ok(Subject::Robot("myorg+ci".into()))
        );
        assert!(Subject::parse("myorg/devs/x").is_err());
        assert!(Subject::parse("myorg+").is_err());
        assert!(Subject::parse("a+b+c").is_err());
        assert_eq!(
            Target::parse("myorg"),
            Ok(Target::Namespace("myorg".into()))
        );
        let t = Target::parse("myorg/a/b").unwrap();
        assert_eq!(t.namespace(), "myorg");
        assert_eq!(t.to_string(), "myorg/a/b");
        assert!(Target::parse("My/App").is_err());
        assert_eq!(namespace_of("alpine"), "alpine");
    }
}
