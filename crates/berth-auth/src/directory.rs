//! The access-control data as one immutable in-memory value, and the rules that decide
//! what a caller may do with a repository.
//!
//! Deciding is a pure function of a [`Directory`] snapshot: no database round trip per
//! request, and the rules are testable without a server. The store reloads the snapshot
//! whenever the database changes (see `store.rs`), so a change made by an admin command
//! applies to the next request.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::names::namespace_of;
use crate::policy::{ImmutableRules, ImmutableTags, Retention};
use crate::replication::ReplicationRule;
use crate::trust::Trust;

/// A permission level; each includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Pull: manifests, blobs, tags, referrers.
    Read,
    /// Push and delete content.
    Write,
    /// Change who may do what, and the visibility.
    Admin,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Read => "read",
            Level::Write => "write",
            Level::Admin => "admin",
        }
    }
}

impl FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Level, String> {
        match s {
            "read" => Ok(Level::Read),
            "write" => Ok(Level::Write),
            "admin" => Ok(Level::Admin),
            _ => Err(format!(
                "unknown permission {s:?}: use read, write or admin"
            )),
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether anonymous callers may pull.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    Public,
    Private,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Private => "private",
        }
    }
}

impl FromStr for Visibility {
    type Err = String;
    fn from_str(s: &str) -> Result<Visibility, String> {
        match s {
            "public" => Ok(Visibility::Public),
            "private" => Ok(Visibility::Private),
            _ => Err(format!("unknown visibility {s:?}: use public or private")),
        }
    }
}

impl fmt::Display for Visibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountKind {
    User,
    Organization,
    Robot,
}

impl AccountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::User => "user",
            AccountKind::Organization => "org",
            AccountKind::Robot => "robot",
        }
    }

    pub(crate) fn from_db(s: &str) -> Option<AccountKind> {
        match s {
            "user" => Some(AccountKind::User),
            "org" => Some(AccountKind::Organization),
            "robot" => Some(AccountKind::Robot),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Account {
    pub kind: AccountKind,
    /// PHC string (argon2id) or bcrypt hash; none for organizations.
    pub password_hash: Option<String>,
    /// May do anything, including managing accounts.
    pub superuser: bool,
    /// For users and organizations: visibility of repositories without their own setting.
    pub default_visibility: Option<Visibility>,
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    Anonymous,
    /// A user or robot that proved its password or holds a token issued to it.
    Account(String),
}

impl Principal {
    pub fn name(&self) -> &str {
        match self {
            Principal::Anonymous => "",
            Principal::Account(n) => n,
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Anonymous => f.write_str("anonymous"),
            Principal::Account(n) => f.write_str(n),
        }
    }
}

/// A snapshot of every account, team, grant and visibility setting.
#[derive(Debug, Default, Clone)]
pub struct Directory {
    pub(crate) accounts: HashMap<String, Account>,
    /// `org/team` -> members.
    pub(crate) teams: BTreeMap<String, Vec<String>>,
    /// member -> `org/team` keys, the inverse of `teams`.
    pub(crate) memberships: HashMap<String, Vec<String>>,
    /// subject (`alice`, `org/team`, `org+robot`) -> (target, level).
    pub(crate) grants: HashMap<String, Vec<(String, Level)>>,
    /// repository -> its own visibility.
    pub(crate) visibility: HashMap<String, Visibility>,
    /// namespace or repository -> its content trust setting.
    pub(crate) trust: HashMap<String, Arc<Trust>>,
    /// Repository trust settings set by an admin of the repository alone.
    pub(crate) trust_by_repository_admin: std::collections::HashSet<String>,
    /// namespace or repository -> its immutable tag patterns.
    pub(crate) immutable: HashMap<String, Arc<ImmutableTags>>,
    /// namespace or repository -> its retention rule.
    pub(crate) retention: HashMap<String, Arc<Retention>>,
    /// Replication rules, by name.
    pub(crate) replication: Vec<Arc<ReplicationRule>>,
    /// namespace -> its quota in bytes.
    pub(crate) quotas: HashMap<String, u64>,
}

impl Directory {
    pub fn account(&self, name: &str) -> Option<&Account> {
        self.accounts.get(name)
    }

    /// Whether access control has been set up: any account, grant or visibility
    /// setting. A registry without any is open (see the crate documentation); deleting
    /// the last user does not open one again, since its organizations, robots and
    /// grants still say who may do what.
    pub fn is_configured(&self) -> bool {
        !self.accounts.is_empty() || !self.grants.is_empty() || !self.visibility.is_empty()
    }

    /// Whether grants or visibility settings already speak of namespace `ns` or
    /// something in it: such a name is not free for a new organization.
    pub fn namespace_in_use(&self, ns: &str) -> bool {
        let inside = format!("{ns}/");
        let in_ns = |t: &str| t == ns || t.starts_with(&inside);
        self.grants.values().flatten().any(|(t, _)| in_ns(t))
            || self.visibility.keys().any(|r| in_ns(r))
            || self.trust.keys().any(|r| in_ns(r))
            || self.immutable.keys().any(|r| in_ns(r))
            || self.retention.keys().any(|r| in_ns(r))
            || self.quotas.contains_key(ns)
    }

    /// The immutable-tags settings in force for repository `repo`: its own and its
    /// namespace's, which its own cannot lift (see [`ImmutableRules`]).
    pub fn immutable_for(&self, repo: &str) -> Option<ImmutableRules> {
        let own = self.immutable.get(repo);
        let ns = self.immutable.get(namespace_of(repo));
        ImmutableRules::new(own.into_iter().chain(ns).cloned().collect())
    }

    /// The immutable-tags setting of namespace `ns`, as rules (`immutable show`).
    pub fn immutable_of_namespace(&self, ns: &str) -> Option<ImmutableRules> {
        ImmutableRules::new(self.immutable.get(ns).cloned().into_iter().collect())
    }

    /// The immutable-tags setting made on `target` itself.
    pub fn immutable_setting(&self, target: &str) -> Option<&Arc<ImmutableTags>> {
        self.immutable.get(target)
    }

    /// The retention rule in force for repository `repo`: its own, else its
    /// namespace's; and the `never` patterns of its namespace's rule when the
    /// repository's own replaced it (they hold all the same: see [`Retention`]).
    pub fn retention_for(&self, repo: &str) -> Option<(&Arc<Retention>, &[String])> {
        let ns = self.retention.get(namespace_of(repo));
        match self.retention.get(repo) {
            Some(own) => Some((own, ns.map_or(&[][..], |n| n.never.as_slice()))),
            None => ns.map(|n| (n, &[][..])),
        }
    }

    /// The retention rule made on `target` itself.
    pub fn retention_setting(&self, target: &str) -> Option<&Arc<Retention>> {
        self.retention.get(target)
    }

    /// The replication rules, by name.
    pub fn replication_rules(&self) -> &[Arc<ReplicationRule>] {
        &self.replication
    }

    /// Every namespace and repository with a retention rule of its own.
    pub fn retention_targets(&self) -> impl Iterator<Item = &str> {
        self.retention.keys().map(String::as_str)
    }

    /// Namespace `ns`'s quota in bytes, if it has one.
    pub fn quota(&self, ns: &str) -> Option<u64> {
        self.quotas.get(ns).copied()
    }

    /// Every namespace with a quota, and the quota.
    pub fn quotas(&self) -> impl Iterator<Item = (&str, u64)> {
        self.quotas.iter().map(|(n, b)| (n.as_str(), *b))
    }

    /// The content trust setting in force for repository `repo`: its own, else its
    /// namespace's (the most specific wins, so a repository may opt out of, or tighten,
    /// what its namespace requires: where it requires signatures, by its admins alone).
    ///
    /// A repository's own setting made by an admin of the repository alone never
    /// overrides a namespace that requires signatures, whichever came first: it would
    /// lift the requirement or swap the keys the organization trusts.
    pub fn trust_for(&self, repo: &str) -> Option<&Arc<Trust>> {
        let namespace = self.trust.get(namespace_of(repo));
        match self.trust.get(repo) {
            Some(_)
                if self.trust_by_repository_admin.contains(repo)
                    && namespace.is_some_and(|t| t.required) =>
            {
                namespace
            }
            Some(own) => Some(own),
            None => namespace,
        }
    }

    /// The setting made on `target` itself (a namespace or a repository).
    pub fn trust_setting(&self, target: &str) -> Option<&Arc<Trust>> {
        self.trust.get(target)
    }

    pub fn is_superuser(&self, who: &Principal) -> bool {
        match who {
            Principal::Anonymous => false,
            Principal::Account(n) => self.accounts.get(n).is_some_and(|a| a.superuser),
        }
    }

    /// Whether `who` is a user account (not anonymous, not a robot).
    pub fn is_user(&self, who: &Principal) -> bool {
        match who {
            Principal::Anonymous => false,
            Principal::Account(n) => self
                .accounts
                .get(n)
                .is_some_and(|a| a.kind == AccountKind::User),
        }
    }

    /// The visibility in force for `repo`: its own setting, else its namespace's
    /// default, else private.
    pub fn visibility(&self, repo: &str) -> Visibility {
        if let Some(v) = self.visibility.get(repo) {
            return *v;
        }
        self.accounts
            .get(namespace_of(repo))
            .and_then(|a| a.default_visibility)
            .unwrap_or(Visibility::Private)
    }

    /// The highest level `who` holds on repository `repo`, if any.
    pub fn level(&self, who: &Principal, repo: &str) -> Option<Level> {
        let public = (self.visibility(repo) == Visibility::Public).then_some(Level::Read);
        let Principal::Account(name) = who else {
            return public;
        };
        let Some(account) = self.accounts.get(name) else {
            // Deleted since its token was issued: nothing beyond what anyone may do.
            return public;
        };
        if account.superuser {
            return Some(Level::Admin);
        }
        let ns = namespace_of(repo);
        if account.kind == AccountKind::User && ns == name {
            return Some(Level::Admin);
        }
        self.granted(name, |target| target == repo || target == ns)
            .max(public)
    }

    /// The highest level `who` holds on namespace `ns` as a whole (grants on the
    /// namespace, ownership of a personal namespace).
    pub fn namespace_level(&self, who: &Principal, ns: &str) -> Option<Level> {
        let Principal::Account(name) = who else {
            return None;
        };
        let account = self.accounts.get(name)?;
        if account.superuser || (account.kind == AccountKind::User && ns == name) {
            return Some(Level::Admin);
        }
        self.granted(name, |target| target == ns)
    }

    /// Highest level granted to `name` directly or through its teams on targets that
    /// `matches` accepts.
    fn granted(&self, name: &str, matches: impl Fn(&str) -> bool) -> Option<Level> {
        let teams = self.memberships.get(name).into_iter().flatten();
        std::iter::once(name)
            .chain(teams.map(String::as_str))
            .filter_map(|subject| self.grants.get(subject))
            .flatten()
            .filter(|(target, _)| matches(target))
            .map(|(_, level)| *level)
            .max()
    }

    /// Names of every account of `kind`, sorted.
    pub fn names(&self, kind: AccountKind) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .accounts
            .iter()
            .filter(|(_, a)| a.kind == kind)
            .map(|(n, _)| n.as_str())
            .collect();
        v.sort_unstable();
        v
    }

    /// Teams of organization `org` with their members.
    pub fn teams_of<'a>(&'a self, org: &'a str) -> impl Iterator<Item = (&'a str, &'a [String])> {
        self.teams.iter().filter_map(move |(key, members)| {
            let (o, team) = key.split_once('/')?;
            (o == org).then_some((team, members.as_slice()))
        })
    }

    /// `{"users": [{"name", "superuser"}]}`: what `user list` shows.
    pub fn describe_users(&self) -> serde_json::Value {
        let users: Vec<serde_json::Value> = self
            .names(AccountKind::User)
            .into_iter()
            .map(|n| {
                let superuser = self.accounts.get(n).is_some_and(|a| a.superuser);
                serde_json::json!({ "name": n, "superuser": superuser })
            })
            .collect();
        serde_json::json!({ "users": users })
    }

    /// An organization's default visibility, teams, robots and the grants that concern
    /// it: what `org show` shows.
    pub fn describe_org(&self, org: &str) -> Option<serde_json::Value> {
        let account = self
            .accounts
            .get(org)
            .filter(|a| a.kind == AccountKind::Organization)?;
        let inside = format!("{org}/");
        let robots = format!("{org}+");
        let teams: serde_json::Map<String, serde_json::Value> = self
            .teams_of(org)
            .map(|(t, members)| (t.to_string(), serde_json::json!(members)))
            .collect();
        let grants: Vec<serde_json::Value> = self
            .grants()
            .into_iter()
            .filter(|(s, t, _)| {
                *t == org
                    || t.starts_with(&inside)
                    || s.starts_with(&inside)
                    || s.starts_with(&robots)
            })
            .map(|(s, t, l)| serde_json::json!({ "subject": s, "target": t, "level": l }))
            .collect();
        let robot_names: Vec<&str> = self
            .names(AccountKind::Robot)
            .into_iter()
            .filter(|n| n.starts_with(&robots))
            .collect();
        Some(serde_json::json!({
            "name": org,
            "default_visibility": account.default_visibility.unwrap_or(Visibility::Private),
            "teams": teams,
            "robots": robot_names,
            "grants": grants,
        }))
    }

    /// Every grant, as (subject, target, level), sorted.
    pub fn grants(&self) -> Vec<(&str, &str, Level)> {
        let mut v: Vec<_> = self
            .grants
            .iter()
            .flat_map(|(s, gs)| gs.iter().map(move |(t, l)| (s.as_str(), t.as_str(), *l)))
            .collect();
        v.sort_unstable();
        v
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn account(kind: AccountKind) -> Account {
        Account {
            kind,
            password_hash: None,
            superuser: false,
            default_visibility: None,
        }
    }

    fn fixture() -> Directory {
        let mut d = Directory::default();
        for u in ["alice", "bob", "carol"] {
            d.accounts.insert(u.into(), account(AccountKind::User));
        }
        d.accounts
            .insert("myorg".into(), account(AccountKind::Organization));
        d.accounts
            .insert("myorg+ci".into(), account(AccountKind::Robot));
        let mut root = account(AccountKind::User);
        root.superuser = true;
        d.accounts.insert("root".into(), root);
        d.teams.insert("myorg/devs".into(), vec!["bob".into()]);
        d.memberships
            .insert("bob".into(), vec!["myorg/devs".into()]);
        d.grants
            .insert("myorg/devs".into(), vec![("myorg".into(), Level::Write)]);
        d.grants
            .insert("carol".into(), vec![("myorg/app".into(), Level::Read)]);
        d.grants
            .insert("myorg+ci".into(), vec![("myorg/app".into(), Level::Write)]);
        d.visibility.insert("myorg/web".into(), Visibility::Public);
        d
    }

    fn who(n: &str) -> Principal {
        Principal::Account(n.into())
    }

    #[test]
    fn personal_namespace_is_owned() {
        let d = fixture();
        assert_eq!(d.level(&who("alice"), "alice/x"), Some(Level::Admin));
        assert_eq!(d.level(&who("alice"), "bob/x"), None);
        assert_eq!(d.level(&who("root"), "bob/x"), Some(Level::Admin));
    }

    #[test]
    fn grants_through_teams_and_on_repositories() {
        let d = fixture();
        assert_eq!(d.level(&who("bob"), "myorg/any"), Some(Level::Write));
        assert_eq!(d.level(&who("carol"), "myorg/app"), Some(Level::Read));
        assert_eq!(d.level(&who("carol"), "myorg/other"), None);
        assert_eq!(d.level(&who("myorg+ci"), "myorg/app"), Some(Level::Write));
        assert_eq!(d.level(&who("myorg+ci"), "myorg/other"), None);
        // A grant on `myorg/app` does not reach `myorg/app/sub` nor `myorg/application`.
        assert_eq!(d.level(&who("carol"), "myorg/app/sub"), None);
        assert_eq!(d.level(&who("carol"), "myorg/application"), None);
        // A robot owns no namespace, even one named like it.
        assert_eq!(d.level(&who("myorg+ci"), "myorg+ci/x"), None);
    }

    #[test]
    fn public_repositories_are_readable_by_anyone() {
        let mut d = fixture();
        assert_eq!(
            d.level(&Principal::Anonymous, "myorg/web"),
            Some(Level::Read)
        );
        assert_eq!(d.level(&Principal::Anonymous, "myorg/app"), None);
        assert_eq!(d.level(&who("alice"), "myorg/web"), Some(Level::Read));
        assert_eq!(d.level(&who("bob"), "myorg/web"), Some(Level::Write));
        // An organization default applies where a repository has no setting of its own.
        d.accounts.get_mut("myorg").unwrap().default_visibility = Some(Visibility::Public);
        assert_eq!(
            d.level(&Principal::Anonymous, "myorg/app"),
            Some(Level::Read)
        );
        d.visibility.insert("myorg/app".into(), Visibility::Private);
        assert_eq!(d.level(&Principal::Anonymous, "myorg/app"), None);
    }

    #[test]
    fn unknown_and_deleted_accounts_get_only_public_access() {
        let d = fixture();
        assert_eq!(d.level(&who("ghost"), "ghost/x"), None);
        assert_eq!(d.level(&who("ghost"), "myorg/web"), Some(Level::Read));
    }

    #[test]
    fn namespace_levels() {
        let d = fixture();
        assert_eq!(d.namespace_level(&who("bob"), "myorg"), Some(Level::Write));
        assert_eq!(d.namespace_level(&who("carol"), "myorg"), None);
        assert_eq!(
            d.namespace_level(&who("alice"), "alice"),
            Some(Level::Admin)
        );
        assert_eq!(d.namespace_level(&Principal::Anonymous, "myorg"), None);
    }
}
