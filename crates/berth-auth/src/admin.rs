//! Administration: every change to accounts, teams, grants and visibility is one
//! [`Change`], checked against the rights of whoever asks ([`Actor`]), applied in one
//! transaction and written to the audit log. The command line (`berth registry …
//! --root`) and the HTTP API (`/api/v1/`) both come here, so the rules are written once.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::directory::{AccountKind, Directory, Level, Principal, Visibility};
use crate::names::{check_account, namespace_of, split_robot, NameError, Subject, Target};
use crate::password::{self, PasswordError};
use crate::policy::{ImmutableTags, PolicyError, Retention};
use crate::replication::{ReplicationError, ReplicationRule};
use crate::sql::Tx;
use crate::store::{rows, AuthStore, StoreError};
use crate::trust::{Trust, TrustError, TrustKeys};

/// A password or secret: never printed, never logged.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One administrative change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Change {
    UserAdd {
        name: String,
        password: Secret,
        #[serde(default)]
        superuser: bool,
    },
    UserPassword {
        name: String,
        password: Secret,
    },
    /// Users from an htpasswd file, with their bcrypt hashes as they are.
    UserImport {
        users: Vec<(String, Secret)>,
    },
    /// Deletes a user, an organization (with its teams, robots and grants) or a robot.
    AccountDelete {
        name: String,
    },
    OrgCreate {
        name: String,
    },
    /// Visibility of the namespace's repositories that have no setting of their own.
    NamespaceVisibility {
        name: String,
        visibility: Visibility,
    },
    TeamAdd {
        team: String,
        member: String,
    },
    TeamRemove {
        team: String,
        member: String,
    },
    RobotCreate {
        name: String,
    },
    Grant {
        subject: String,
        level: Level,
        target: String,
    },
    Revoke {
        subject: String,
        target: String,
    },
    RepoVisibility {
        repository: String,
        visibility: Visibility,
    },
    /// Content trust on a namespace or repository: with `required`, its manifests are
    /// served only when one of the keys signed them; without, a repository is exempt
    /// from its namespace's setting. Replaces the target's previous setting.
    TrustSet {
        name: String,
        #[serde(default = "yes")]
        required: bool,
        #[serde(default)]
        gpg_keys: Vec<String>,
        #[serde(default)]
        sigstore_keys: Vec<String>,
    },
    /// Removes a namespace's or repository's own trust setting.
    TrustUnset {
        name: String,
    },
    /// Immutable tags on a namespace or repository: a tag matching one of `patterns`
    /// (globs: `*`, `?`), once pushed, is never moved to another manifest nor deleted.
    /// Replaces the target's previous setting.
    ImmutableSet {
        name: String,
        patterns: Vec<String>,
    },
    /// Removes a namespace's or repository's own immutable-tags setting.
    ImmutableUnset {
        name: String,
    },
    /// Retention on a namespace or repository: which tags the collector deletes (see
    /// [`crate::Retention`]); `older_than` a duration as people write it (`30d`).
    /// Replaces the target's previous setting.
    RetentionSet {
        name: String,
        #[serde(default)]
        keep_last: Option<u32>,
        #[serde(default)]
        keep: Vec<String>,
        #[serde(default)]
        older_than: Option<String>,
        #[serde(default)]
        never: Vec<String>,
    },
    /// Removes a namespace's or repository's own retention setting.
    RetentionUnset {
        name: String,
    },
    /// A replication rule (superusers only): the repositories and tags to copy to
    /// registry `url`, on push and/or every `schedule` (a duration, `1h`). Replaces a rule of
    /// the same name. See [`crate::ReplicationRule`].
    ReplicationSet {
        name: String,
        url: String,
        #[serde(default)]
        username: Option<String>,
        #[serde(default)]
        password: Option<Secret>,
        #[serde(default)]
        repos: Vec<String>,
        #[serde(default)]
        tags: Vec<String>,
        #[serde(default)]
        on_push: bool,
        #[serde(default)]
        schedule: Option<String>,
    },
    ReplicationRemove {
        name: String,
    },
    /// The bytes of distinct blobs and manifests namespace `namespace` may hold
    /// (superusers only).
    QuotaSet {
        namespace: String,
        bytes: u64,
    },
    QuotaUnset {
        namespace: String,
    },
    /// Ends sessions kept alive by refresh tokens: the one whose id (the start of its
    /// hash, as `token list` shows it) is `id`, or every one of `account`'s.
    TokenRevoke {
        account: String,
        #[serde(default)]
        id: Option<String>,
    },
}

fn yes() -> bool {
    true
}

/// What a change gives back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Done,
    /// A new robot's secret: shown once, stored only as a hash.
    RobotCreated {
        name: String,
        secret: Secret,
    },
}

/// Who asks for a change, and from where (for the audit log).
#[derive(Debug, Clone)]
pub struct Actor {
    pub principal: Principal,
    /// Someone with the data folder in hand (`--root`): allowed everything.
    pub local: bool,
    /// Remote address or `local`.
    pub from: String,
}

impl Actor {
    /// The operator working on the data folder directly.
    pub fn local() -> Actor {
        let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
        Actor {
            principal: Principal::Account(format!("local:{user}")),
            local: true,
            from: "local".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Name(#[from] NameError),
    #[error("{0}")]
    Password(#[from] PasswordError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0} already exists")]
    Exists(String),
    #[error("{0} does not exist")]
    NotFound(String),
    #[error("namespace {0} already holds repositories or grants; only a superuser may make it an organization")]
    InUse(String),
    #[error("{0}")]
    Invalid(String),
    #[error("not allowed: {0}")]
    Denied(String),
    #[error("{0}")]
    Trust(#[from] TrustError),
    #[error("{0}")]
    Policy(#[from] PolicyError),
    #[error("{0}")]
    Replication(#[from] ReplicationError),
}

impl From<rusqlite::Error> for AdminError {
    fn from(e: rusqlite::Error) -> AdminError {
        AdminError::Store(e.into())
    }
}

impl Change {
    /// Checks `actor`'s right to make this change on `dir`.
    fn authorize(&self, dir: &Directory, actor: &Actor) -> Result<(), AdminError> {
        if actor.local || dir.is_superuser(&actor.principal) {
            return Ok(());
        }
        let who = &actor.principal;
        let admin_of_ns = |ns: &str| dir.namespace_level(who, ns) == Some(Level::Admin);
        let ok = match self {
            Change::UserAdd { .. } | Change::UserImport { .. } => false,
            Change::UserPassword { name, .. } => who.name() == name,
            Change::AccountDelete { name } => match dir.account(name).map(|a| a.kind) {
                Some(AccountKind::User) => false,
                Some(AccountKind::Robot) => split_robot(name).is_ok_and(|(o, _)| admin_of_ns(o)),
                _ => admin_of_ns(name),
            },
            // Any user may found an organization, and becomes its admin, but only in a
            // namespace nothing speaks of yet: taking over `shared/…` by founding
            // `shared` must not work. (The server also checks that no repository is
            // stored under it; see `InUse`.)
            // Whether the name is in use is told only to those who may found one: a
            // robot's answer must not say whether a namespace holds anything.
            Change::OrgCreate { name } => {
                let user = dir.is_user(who);
                if user && dir.namespace_in_use(name) {
                    return Err(AdminError::InUse(name.clone()));
                }
                user
            }
            Change::NamespaceVisibility { name, .. } => admin_of_ns(name),
            Change::TeamAdd { team, .. } | Change::TeamRemove { team, .. } => team
                .split_once('/')
                .is_some_and(|(org, _)| admin_of_ns(org)),
            Change::RobotCreate { name } => split_robot(name).is_ok_and(|(o, _)| admin_of_ns(o)),
            // Where a namespace requires signatures, a rule of one of its repositories
            // (which wins over the namespace's) would lift the requirement or replace
            // its keys: that is the namespace admins' to set, not a repository admin's.
            Change::TrustSet { name: target, .. }
                if matches!(Target::parse(target)?, Target::Repository(_))
                    && dir
                        .trust_setting(namespace_of(target))
                        .is_some_and(|t| t.required) =>
            {
                admin_of_ns(namespace_of(target))
            }
            Change::Grant { target, .. }
            | Change::Revoke { target, .. }
            | Change::TrustSet { name: target, .. }
            | Change::TrustUnset { name: target }
            | Change::ImmutableSet { name: target, .. }
            | Change::ImmutableUnset { name: target }
            | Change::RetentionSet { name: target, .. }
            | Change::RetentionUnset { name: target } => match Target::parse(target)? {
                Target::Namespace(ns) => admin_of_ns(&ns),
                Target::Repository(r) => dir.level(who, r.as_str()) == Some(Level::Admin),
            },
            Change::RepoVisibility { repository, .. } => {
                dir.level(who, repository) == Some(Level::Admin)
            }
            // Storage is the operator's to hand out, and replication sends content
            // out of the registry with credentials of elsewhere: superusers only (above).
            Change::QuotaSet { .. }
            | Change::QuotaUnset { .. }
            | Change::ReplicationSet { .. }
            | Change::ReplicationRemove { .. } => false,
            // One's own sessions; anyone's for a superuser (above).
            Change::TokenRevoke { account, .. } => who.name() == account,
        };
        if ok {
            Ok(())
        } else {
            Err(AdminError::Denied(format!(
                "{} may not {}",
                actor.principal,
                self.describe()
            )))
        }
    }

    /// Whether this change is made by an admin of one repository alone (not of its
    /// namespace, not a superuser, not the operator): what its trust setting is
    /// marked with (`Directory::trust_for`).
    fn by_repository_admin(&self, dir: &Directory, actor: &Actor) -> bool {
        let Change::TrustSet { name, .. } = self else {
            return false;
        };
        let who = &actor.principal;
        !actor.local
            && !dir.is_superuser(who)
            && name.contains('/')
            && dir.namespace_level(who, namespace_of(name)) != Some(Level::Admin)
    }

    /// A one-line description without secrets, for messages and the audit log.
    pub fn describe(&self) -> String {
        match self {
            Change::UserAdd {
                name, superuser, ..
            } => {
                format!(
                    "add user {name}{}",
                    if *superuser { " (superuser)" } else { "" }
                )
            }
            Change::UserPassword { name, .. } => format!("change the password of {name}"),
            Change::UserImport { users } => format!("import {} users", users.len()),
            Change::AccountDelete { name } => format!("delete {name}"),
            Change::OrgCreate { name } => format!("create organization {name}"),
            Change::NamespaceVisibility { name, visibility } => {
                format!("make new repositories of {name} {visibility}")
            }
            Change::TeamAdd { team, member } => format!("add {member} to team {team}"),
            Change::TeamRemove { team, member } => format!("remove {member} from team {team}"),
            Change::RobotCreate { name } => format!("create robot {name}"),
            Change::Grant {
                subject,
                level,
                target,
            } => format!("grant {level} on {target} to {subject}"),
            Change::Revoke { subject, target } => format!("revoke {subject}'s access to {target}"),
            Change::RepoVisibility {
                repository,
                visibility,
            } => {
                format!("make {repository} {visibility}")
            }
            Change::TrustSet {
                name,
                required: true,
                gpg_keys,
                sigstore_keys,
            } => format!(
                "require signatures on {name} by {} GPG and {} sigstore keys",
                gpg_keys.len(),
                sigstore_keys.len()
            ),
            Change::TrustSet { name, .. } => format!("let {name} be pulled unsigned"),
            Change::TrustUnset { name } => format!("remove the trust setting of {name}"),
            Change::ImmutableSet { name, patterns } => {
                format!("make tags {} of {name} immutable", patterns.join(" "))
            }
            Change::ImmutableUnset { name } => {
                format!("remove the immutable-tags setting of {name}")
            }
            Change::RetentionSet { name, .. } => {
                format!("set the retention of {name}")
            }
            Change::RetentionUnset { name } => {
                format!("remove the retention setting of {name}")
            }
            Change::QuotaSet { namespace, bytes } => {
                format!("limit {namespace} to {bytes} bytes")
            }
            Change::ReplicationSet { name, url, .. } => {
                format!("replicate to {url} (rule {name})")
            }
            Change::ReplicationRemove { name } => format!("remove replication rule {name}"),
            Change::QuotaUnset { namespace } => format!("remove the quota of {namespace}"),
            Change::TokenRevoke {
                account,
                id: Some(id),
            } => {
                format!("revoke refresh token {id} of {account}")
            }
            Change::TokenRevoke { account, id: None } => {
                format!("revoke every refresh token of {account}")
            }
        }
    }
}

impl AuthStore {
    /// Checks and applies `change` for `actor`, and records it in the audit log.
    pub fn apply(&self, actor: &Actor, change: &Change) -> Result<Outcome, AdminError> {
        let result = self.apply_inner(actor, change);
        let what = change.describe();
        match &result {
            Ok(_) => tracing::info!(
                target: "berth::audit",
                actor = %actor.principal,
                from = %actor.from,
                change = %what,
                "permission change"
            ),
            Err(e) => tracing::warn!(
                target: "berth::audit",
                actor = %actor.principal,
                from = %actor.from,
                change = %what,
                error = %e,
                "permission change refused"
            ),
        }
        result
    }

    fn apply_inner(&self, actor: &Actor, change: &Change) -> Result<Outcome, AdminError> {
        // A first check on the snapshot spares an argon2 run for a refused change; the
        // check that counts runs again inside the write transaction below.
        let dir = self.directory()?;
        change.authorize(&dir, actor)?;
        // Hash outside the transaction: argon2 takes tens of milliseconds.
        let mut secret = None;
        let hashed = match change {
            Change::UserAdd { password, .. } | Change::UserPassword { password, .. } => {
                Some(password::hash(&password.0)?)
            }
            Change::RobotCreate { .. } => {
                let s = password::new_secret();
                let h = password::hash(&s)?;
                secret = Some(s);
                Some(h)
            }
            _ => None,
        };
        let hashed = hashed.as_deref();
        self.write(|tx| {
            // Rights as they are now, under the write lock: a concurrent revoke either
            // happened before (and refuses this) or waits for it.
            let dir = crate::store::read_all(tx)?;
            change.authorize(&dir, actor)?;
            let by_repository_admin = change.by_repository_admin(&dir, actor);
            apply_rows(tx, actor, change, hashed, by_repository_admin)?;
            rows::record(
                tx,
                &actor.principal.to_string(),
                &actor.from,
                &change.describe(),
            )?;
            Ok::<_, AdminError>(())
        })?;
        Ok(match (change, secret) {
            (Change::RobotCreate { name }, Some(s)) => Outcome::RobotCreated {
                name: name.clone(),
                secret: Secret(s),
            },
            _ => Outcome::Done,
        })
    }
}

/// Writes one change; everything it checks is checked inside the transaction, so two
/// admins racing cannot both pass a check that only one of them should.
fn apply_rows(
    tx: &mut Tx<'_, '_>,
    actor: &Actor,
    change: &Change,
    hashed: Option<&str>,
    by_repository_admin: bool,
) -> Result<(), AdminError> {
    let hashed = || hashed.ok_or_else(|| AdminError::Invalid("no password given".into()));
    match change {
        Change::UserAdd {
            name, superuser, ..
        } => {
            check_account(name)?;
            if !rows::insert_account(tx, name, AccountKind::User, Some(hashed()?), *superuser)? {
                return Err(AdminError::Exists(name.clone()));
            }
        }
        Change::UserPassword { name, .. } => match rows::kind_of(tx, name)? {
            Some(AccountKind::User) => rows::set_password(tx, name, hashed()?)?,
            _ => return Err(AdminError::NotFound(format!("user {name}"))),
        },
        Change::UserImport { users } => {
            for (name, hash) in users {
                check_account(name)?;
                match rows::kind_of(tx, name)? {
                    None => {
                        rows::insert_account(tx, name, AccountKind::User, Some(&hash.0), false)?;
                    }
                    Some(AccountKind::User) => rows::set_password(tx, name, &hash.0)?,
                    Some(_) => return Err(AdminError::Exists(name.clone())),
                }
            }
        }
        Change::AccountDelete { name } => {
            if !rows::delete_account(tx, name)? {
                return Err(AdminError::NotFound(name.clone()));
            }
        }
        Change::OrgCreate { name } => {
            check_account(name)?;
            if !rows::insert_account(tx, name, AccountKind::Organization, None, false)? {
                return Err(AdminError::Exists(name.clone()));
            }
            if !actor.local {
                if let Principal::Account(founder) = &actor.principal {
                    rows::grant(
                        tx,
                        &Subject::User(founder.clone()),
                        &Target::Namespace(name.clone()),
                        Level::Admin,
                    )?;
                }
            }
        }
        Change::NamespaceVisibility { name, visibility } => match rows::kind_of(tx, name)? {
            Some(AccountKind::User | AccountKind::Organization) => {
                rows::set_default_visibility(tx, name, *visibility)?
            }
            _ => return Err(AdminError::NotFound(format!("namespace {name}"))),
        },
        Change::TeamAdd { team, member } => {
            let Subject::Team { org, .. } = Subject::parse(team)? else {
                return Err(NameError::Team(team.clone()).into());
            };
            if rows::kind_of(tx, &org)? != Some(AccountKind::Organization) {
                return Err(AdminError::NotFound(format!("organization {org}")));
            }
            if rows::kind_of(tx, member)? != Some(AccountKind::User) {
                return Err(AdminError::NotFound(format!("user {member}")));
            }
            rows::add_member(tx, team, member)?;
        }
        Change::TeamRemove { team, member } => {
            if !rows::remove_member(tx, team, member)? {
                return Err(AdminError::NotFound(format!("{member} in team {team}")));
            }
        }
        Change::RobotCreate { name } => {
            let (owner, _) = split_robot(name)?;
            if !matches!(
                rows::kind_of(tx, owner)?,
                Some(AccountKind::User | AccountKind::Organization)
            ) {
                return Err(AdminError::NotFound(format!("namespace {owner}")));
            }
            if !rows::insert_account(tx, name, AccountKind::Robot, Some(hashed()?), false)? {
                return Err(AdminError::Exists(name.clone()));
            }
        }
        Change::Grant {
            subject,
            level,
            target,
        } => {
            let subject = Subject::parse(subject)?;
            let target = Target::parse(target)?;
            let subject_exists = match &subject {
                Subject::User(n) => rows::kind_of(tx, n)? == Some(AccountKind::User),
                Subject::Robot(n) => rows::kind_of(tx, n)? == Some(AccountKind::Robot),
                Subject::Team { org, .. } => {
                    rows::kind_of(tx, org)? == Some(AccountKind::Organization)
                }
            };
            if !subject_exists {
                return Err(AdminError::NotFound(subject.to_string()));
            }
            if let Target::Namespace(ns) = &target {
                if !matches!(
                    rows::kind_of(tx, ns)?,
                    Some(AccountKind::User | AccountKind::Organization)
                ) {
                    return Err(AdminError::NotFound(format!("namespace {ns}")));
                }
            }
            rows::grant(tx, &subject, &target, *level)?;
        }
        Change::Revoke { subject, target } => {
            if !rows::revoke(tx, &Subject::parse(subject)?, &Target::parse(target)?)? {
                return Err(AdminError::NotFound(format!(
                    "a grant to {subject} on {target}"
                )));
            }
        }
        Change::RepoVisibility {
            repository,
            visibility,
        } => match Target::parse(repository)? {
            Target::Repository(r) => rows::set_visibility(tx, r.as_str(), *visibility)?,
            Target::Namespace(_) => {
                return Err(AdminError::Invalid(format!(
                    "{repository} is a namespace; use the organization's visibility"
                )))
            }
        },
        Change::TrustSet {
            name,
            required,
            gpg_keys,
            sigstore_keys,
        } => {
            let target = Target::parse(name)?.to_string();
            let keys = TrustKeys {
                gpg_keys: gpg_keys.clone(),
                sigstore_keys: sigstore_keys.clone(),
            };
            Trust::parse(&target, *required, keys.clone())?;
            rows::set_trust(tx, &target, *required, &keys, by_repository_admin)?;
        }
        Change::TrustUnset { name } => {
            if !rows::unset_trust(tx, &Target::parse(name)?.to_string())? {
                return Err(AdminError::NotFound(format!("a trust setting on {name}")));
            }
        }
        Change::ImmutableSet { name, patterns } => {
            let target = Target::parse(name)?.to_string();
            ImmutableTags::new(&target, patterns.clone())?;
            rows::set_immutable(tx, &target, patterns)?;
        }
        Change::ImmutableUnset { name } => {
            if !rows::unset_immutable(tx, &Target::parse(name)?.to_string())? {
                return Err(AdminError::NotFound(format!(
                    "an immutable-tags setting on {name}"
                )));
            }
        }
        Change::RetentionSet {
            name,
            keep_last,
            keep,
            older_than,
            never,
        } => {
            let target = Target::parse(name)?.to_string();
            let rule = Retention::new(
                &target,
                *keep_last,
                keep.clone(),
                older_than.as_deref(),
                never.clone(),
            )?;
            rows::set_retention(tx, &rule)?;
        }
        Change::RetentionUnset { name } => {
            if !rows::unset_retention(tx, &Target::parse(name)?.to_string())? {
                return Err(AdminError::NotFound(format!(
                    "a retention setting on {name}"
                )));
            }
        }
        Change::ReplicationSet {
            name,
            url,
            username,
            password,
            repos,
            tags,
            on_push,
            schedule,
        } => {
            let rule = ReplicationRule::new(
                name,
                url,
                username.clone(),
                password.as_ref().map(|p| p.0.clone()),
                repos.clone(),
                tags.clone(),
                *on_push,
                schedule.as_deref(),
            )?;
            rows::set_replication(tx, &rule)?;
        }
        Change::ReplicationRemove { name } => {
            if !rows::unset_replication(tx, name)? {
                return Err(AdminError::NotFound(format!("replication rule {name}")));
            }
        }
        Change::QuotaSet { namespace, bytes } => {
            let ns = namespace_target(namespace)?;
            if *bytes == 0 {
                return Err(PolicyError::ZeroQuota.into());
            }
            rows::set_quota(tx, &ns, *bytes)?;
        }
        Change::QuotaUnset { namespace } => {
            if !rows::unset_quota(tx, &namespace_target(namespace)?)? {
                return Err(AdminError::NotFound(format!("a quota on {namespace}")));
            }
        }
        Change::TokenRevoke { account, id } => {
            if rows::kind_of(tx, account)?.is_none() {
                return Err(AdminError::NotFound(account.clone()));
            }
            if let Some(id) = id {
                let id = check_token_id(id)?;
                match rows::revoke_refresh_tokens(tx, account, Some(&id))? {
                    0 => {
                        return Err(AdminError::NotFound(format!(
                            "refresh token {id} of {account}"
                        )))
                    }
                    1 => {}
                    _ => {
                        return Err(AdminError::Invalid(format!(
                            "{id} names several refresh tokens of {account}; give more of it"
                        )))
                    }
                }
            } else {
                rows::revoke_refresh_tokens(tx, account, None)?;
            }
        }
    }
    Ok(())
}

/// `name` as a namespace (quotas are per namespace, never per repository).
fn namespace_target(name: &str) -> Result<String, AdminError> {
    match Target::parse(name)? {
        Target::Namespace(ns) => Ok(ns),
        Target::Repository(_) => Err(AdminError::Invalid(format!(
            "{name} is a repository; quotas are set on namespaces"
        ))),
    }
}

/// A refresh token's id: 8 to 64 hex digits of its hash (lowercased).
fn check_token_id(id: &str) -> Result<String, AdminError> {
    if (8..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(id.to_ascii_lowercase())
    } else {
        Err(AdminError::Invalid(format!(
            "token id {id:?}: 8 to 64 hex digits, as `token list` shows them"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, AuthStore) {
        let tmp = tempfile::tempdir().unwrap();
        let s = AuthStore::open(&tmp.path().join("auth.db")).unwrap();
        (tmp, s)
    }

    fn as_user(name: &str) -> Actor {
        Actor {
            principal: Principal::Account(name.into()),
            local: false,
            from: "127.0.0.1".into(),
        }
    }

    fn pw(s: &str) -> Secret {
        Secret(s.into())
    }

    /// Users alice and bob; alice founded organization `myorg`.
    fn alice_bob_and_myorg() -> (tempfile::TempDir, AuthStore) {
        let (tmp, s) = store();
        let local = Actor::local();
        for u in ["alice", "bob"] {
            s.apply(
                &local,
                &Change::UserAdd {
                    name: u.into(),
                    password: pw("pw"),
                    superuser: false,
                },
            )
            .unwrap();
        }
        s.apply(
            &as_user("alice"),
            &Change::OrgCreate {
                name: "myorg".into(),
            },
        )
        .unwrap();
        (tmp, s)
    }

    #[test]
    fn org_workflow() {
        // alice founds an organization and administers it.
        let (_t, s) = alice_bob_and_myorg();
        s.apply(
            &as_user("alice"),
            &Change::TeamAdd {
                team: "myorg/devs".into(),
                member: "bob".into(),
            },
        )
        .unwrap();
        s.apply(
            &as_user("alice"),
            &Change::Grant {
                subject: "myorg/devs".into(),
                level: Level::Write,
                target: "myorg/app".into(),
            },
        )
        .unwrap();
        let out = s
            .apply(
                &as_user("alice"),
                &Change::RobotCreate {
                    name: "myorg+ci".into(),
                },
            )
            .unwrap();
        let Outcome::RobotCreated { secret, .. } = out else {
            panic!("{out:?}")
        };
        let d = s.directory().unwrap();
        let hash = d
            .account("myorg+ci")
            .unwrap()
            .password_hash
            .clone()
            .unwrap();
        assert!(password::verify(&secret.0, &hash));
        assert_eq!(
            d.level(&Principal::Account("bob".into()), "myorg/app"),
            Some(Level::Write)
        );
        // bob is not an admin of the organization.
        let err = s
            .apply(
                &as_user("bob"),
                &Change::RepoVisibility {
                    repository: "myorg/app".into(),
                    visibility: Visibility::Public,
                },
            )
            .unwrap_err();
        assert!(matches!(err, AdminError::Denied(_)), "{err}");
        let err = s
            .apply(
                &as_user("bob"),
                &Change::UserAdd {
                    name: "eve".into(),
                    password: pw("x"),
                    superuser: true,
                },
            )
            .unwrap_err();
        assert!(matches!(err, AdminError::Denied(_)), "{err}");
        // bob may change his own password, not alice's.
        s.apply(
            &as_user("bob"),
            &Change::UserPassword {
                name: "bob".into(),
                password: pw("new"),
            },
        )
        .unwrap();
        assert!(s
            .apply(
                &as_user("bob"),
                &Change::UserPassword {
                    name: "alice".into(),
                    password: pw("x")
                }
            )
            .is_err());
        // Every applied change is on record, newest first; refused ones are not.
        let trail = s.audit_trail(100).unwrap();
        let changes: Vec<&str> = trail.iter().map(|e| e.change.as_str()).collect();
        assert_eq!(
            changes,
            [
                "change the password of bob",
                "create robot myorg+ci",
                "grant write on myorg/app to myorg/devs",
                "add bob to team myorg/devs",
                "create organization myorg",
                "add user bob",
                "add user alice",
            ]
        );
        assert_eq!(
            (trail[0].actor.as_str(), trail[0].from.as_str()),
            ("bob", "127.0.0.1")
        );
        assert!(trail[6].actor.starts_with("local:"));
    }

    #[test]
    fn bad_names_and_missing_things_are_refused() {
        let (_t, s) = store();
        let local = Actor::local();
        for name in ["Robert'); DROP TABLE accounts;--", "a/b", "", "x+y"] {
            let e = s
                .apply(
                    &local,
                    &Change::UserAdd {
                        name: name.into(),
                        password: pw("pw"),
                        superuser: false,
                    },
                )
                .unwrap_err();
            assert!(matches!(e, AdminError::Name(_)), "{name}: {e}");
        }
        s.apply(
            &local,
            &Change::UserAdd {
                name: "alice".into(),
                password: pw("pw"),
                superuser: false,
            },
        )
        .unwrap();
        assert!(matches!(
            s.apply(
                &local,
                &Change::UserAdd {
                    name: "alice".into(),
                    password: pw("pw"),
                    superuser: false
                }
            ),
            Err(AdminError::Exists(_))
        ));
        assert!(matches!(
            s.apply(
                &local,
                &Change::OrgCreate {
                    name: "alice".into()
                }
            ),
            Err(AdminError::Exists(_))
        ));
        assert!(matches!(
            s.apply(
                &local,
                &Change::TeamAdd {
                    team: "nope/devs".into(),
                    member: "alice".into()
                }
            ),
            Err(AdminError::NotFound(_))
        ));
        assert!(matches!(
            s.apply(
                &local,
                &Change::Grant {
                    subject: "ghost".into(),
                    level: Level::Read,
                    target: "alice".into()
                }
            ),
            Err(AdminError::NotFound(_))
        ));
        assert!(matches!(
            s.apply(
                &local,
                &Change::RobotCreate {
                    name: "nobody+ci".into()
                }
            ),
            Err(AdminError::NotFound(_))
        ));
        assert!(s
            .apply(
                &local,
                &Change::UserAdd {
                    name: "bob".into(),
                    password: pw(""),
                    superuser: false
                }
            )
            .is_err());
        assert_eq!(s.directory().unwrap().names(AccountKind::User), ["alice"]);
    }

    #[test]
    fn htpasswd_import_keeps_bcrypt_hashes() {
        let (_t, s) = store();
        let users = password::parse_htpasswd(
            "testuser:$2y$05$GJiQmYRK9Q3VjcWg2OCIqulW2UER/ljCldo0ZWAkgagCBaC1X03Ma\n",
        )
        .unwrap();
        let users = users.into_iter().map(|(u, h)| (u, Secret(h))).collect();
        s.apply(&Actor::local(), &Change::UserImport { users })
            .unwrap();
        let d = s.directory().unwrap();
        let hash = d
            .account("testuser")
            .unwrap()
            .password_hash
            .clone()
            .unwrap();
        assert!(password::verify("testpass", &hash));
    }

    #[test]
    fn trust_settings_by_namespace_admins_most_specific_wins() {
        let (_t, s) = alice_bob_and_myorg();
        let set = |name: &str, required: bool| Change::TrustSet {
            name: name.into(),
            required,
            gpg_keys: vec![],
            sigstore_keys: if required {
                vec![crate::trust::tests::SIGSTORE_PUB.into()]
            } else {
                vec![]
            },
        };
        // bob administers nothing in myorg.
        let e = s.apply(&as_user("bob"), &set("myorg", true)).unwrap_err();
        assert!(matches!(e, AdminError::Denied(_)), "{e}");
        let e = s
            .apply(&as_user("bob"), &set("myorg/app", true))
            .unwrap_err();
        assert!(matches!(e, AdminError::Denied(_)), "{e}");
        // An admin of one repository sets its rule while the namespace has none...
        let grant = Change::Grant {
            subject: "bob".into(),
            level: Level::Admin,
            target: "myorg/app".into(),
        };
        s.apply(&as_user("alice"), &grant).unwrap();
        s.apply(&as_user("bob"), &set("myorg/app", true)).unwrap();
        s.apply(
            &as_user("bob"),
            &Change::TrustUnset {
                name: "myorg/app".into(),
            },
        )
        .unwrap();
        // An opt-out made while the namespace required nothing does not outlast the
        // namespace's requirement when it comes (checked below: myorg/app is myorg's).
        s.apply(&as_user("bob"), &set("myorg/app", false)).unwrap();
        assert!(
            !s.directory()
                .unwrap()
                .trust_for("myorg/app")
                .unwrap()
                .required
        );
        s.apply(&as_user("alice"), &set("myorg", true)).unwrap();
        // ...but may not lift (or rekey) the namespace's requirement for it.
        for required in [false, true] {
            let e = s
                .apply(&as_user("bob"), &set("myorg/app", required))
                .unwrap_err();
            assert!(matches!(e, AdminError::Denied(_)), "{e}");
        }
        s.apply(&as_user("alice"), &set("myorg/open", false))
            .unwrap();
        let d = s.directory().unwrap();
        assert_eq!(d.trust_for("myorg/app").unwrap().target, "myorg");
        assert!(d.trust_for("myorg/app").unwrap().required);
        assert!(!d.trust_for("myorg/open").unwrap().required);
        assert!(d.trust_for("other/app").is_none());
        // Keys that do not parse are refused with the reason.
        let e = s
            .apply(
                &as_user("alice"),
                &Change::TrustSet {
                    name: "myorg".into(),
                    required: true,
                    gpg_keys: vec!["not a key".into()],
                    sigstore_keys: vec![],
                },
            )
            .unwrap_err();
        assert!(e.to_string().starts_with("GPG key 1: "), "{e}");
        assert!(d.trust_for("myorg/app").unwrap().required);
        s.apply(
            &as_user("alice"),
            &Change::TrustUnset {
                name: "myorg/open".into(),
            },
        )
        .unwrap();
        assert_eq!(
            s.directory()
                .unwrap()
                .trust_for("myorg/open")
                .unwrap()
                .target,
            "myorg"
        );
        let e = s
            .apply(
                &as_user("alice"),
                &Change::TrustUnset {
                    name: "myorg/open".into(),
                },
            )
            .unwrap_err();
        assert!(matches!(e, AdminError::NotFound(_)), "{e}");
        // Deleting the organization takes its setting along.
        s.apply(
            &as_user("alice"),
            &Change::AccountDelete {
                name: "myorg".into(),
            },
        )
        .unwrap();
        assert!(s.directory().unwrap().trust_for("myorg/app").is_none());
        let trail = s.audit_trail(3).unwrap();
        assert_eq!(trail[1].change, "remove the trust setting of myorg/open");
    }

    #[test]
    fn immutable_tags_by_admins_quotas_by_superusers() {
        let (_t, s) = alice_bob_and_myorg();
        let set = |name: &str, p: &[&str]| Change::ImmutableSet {
            name: name.into(),
            patterns: p.iter().map(|x| x.to_string()).collect(),
        };
        let e = s
            .apply(&as_user("bob"), &set("myorg", &["v*"]))
            .unwrap_err();
        assert!(matches!(e, AdminError::Denied(_)), "{e}");
        s.apply(&as_user("alice"), &set("myorg", &["v*"])).unwrap();
        s.apply(&as_user("alice"), &set("myorg/app", &["release-*"]))
            .unwrap();
        let e = s
            .apply(&as_user("alice"), &set("myorg", &["v/x"]))
            .unwrap_err();
        assert!(matches!(e, AdminError::Policy(_)), "{e}");
        let d = s.directory().unwrap();
        assert_eq!(
            d.immutable_for("myorg/other").unwrap().rule_for("v1"),
            Some(("v*", "myorg"))
        );
        // The repository's own setting adds to its namespace's, and cannot lift it:
        // alice could have granted bob admin of myorg/app alone.
        let app = d.immutable_for("myorg/app").unwrap();
        assert_eq!(app.rule_for("release-1"), Some(("release-*", "myorg/app")));
        assert_eq!(app.rule_for("v1"), Some(("v*", "myorg")));
        assert_eq!(app.rule_for("latest"), None);
        assert!(d.immutable_for("bob/app").is_none());
        s.apply(
            &as_user("alice"),
            &Change::ImmutableUnset {
                name: "myorg/app".into(),
            },
        )
        .unwrap();
        let app = s.directory().unwrap().immutable_for("myorg/app").unwrap();
        assert_eq!(app.rule_for("release-1"), None);
        assert_eq!(app.rule_for("v1"), Some(("v*", "myorg")));
        // Quotas: not even a namespace's admin may set its own.
        let quota = Change::QuotaSet {
            namespace: "myorg".into(),
            bytes: 1 << 20,
        };
        let e = s.apply(&as_user("alice"), &quota).unwrap_err();
        assert!(matches!(e, AdminError::Denied(_)), "{e}");
        s.apply(&Actor::local(), &quota).unwrap();
        assert_eq!(s.directory().unwrap().quota("myorg"), Some(1 << 20));
        let e = s
            .apply(
                &Actor::local(),
                &Change::QuotaSet {
                    namespace: "myorg/app".into(),
                    bytes: 1,
                },
            )
            .unwrap_err();
        assert!(matches!(e, AdminError::Invalid(_)), "{e}");
        // Deleting the organization takes its settings along.
        s.apply(
            &as_user("alice"),
            &Change::AccountDelete {
                name: "myorg".into(),
            },
        )
        .unwrap();
        let d = s.directory().unwrap();
        assert!(d.immutable_for("myorg/app").is_none());
        assert_eq!(d.quota("myorg"), None);
    }

    #[test]
    fn retention_by_admins_with_the_namespace_never_patterns_kept() {
        let (_t, s) = alice_bob_and_myorg();
        let set = |name: &str, last: Option<u32>, never: &[&str]| Change::RetentionSet {
            name: name.into(),
            keep_last: last,
            keep: vec![],
            older_than: None,
            never: never.iter().map(|x| x.to_string()).collect(),
        };
        let e = s
            .apply(&as_user("bob"), &set("myorg", Some(5), &[]))
            .unwrap_err();
        assert!(matches!(e, AdminError::Denied(_)), "{e}");
        let e = s
            .apply(&as_user("alice"), &set("myorg", None, &["release-*"]))
            .unwrap_err();
        assert!(matches!(e, AdminError::Policy(_)), "{e}");
        s.apply(&as_user("alice"), &set("myorg", Some(5), &["release-*"]))
            .unwrap();
        s.apply(&as_user("alice"), &set("myorg/app", Some(2), &["v*"]))
            .unwrap();
        let d = s.directory().unwrap();
        let (rule, ns_never) = d.retention_for("myorg/other").unwrap();
        assert_eq!((rule.keep_last, ns_never.len()), (Some(5), 0));
        let (rule, ns_never) = d.retention_for("myorg/app").unwrap();
        assert_eq!(rule.keep_last, Some(2));
        assert_eq!(ns_never, ["release-*"]);
        assert!(d.retention_for("bob/app").is_none());
        assert_eq!(
            s.audit_trail(1).unwrap()[0].change,
            "set the retention of myorg/app"
        );
        s.apply(
            &as_user("alice"),
            &Change::AccountDelete {
                name: "myorg".into(),
            },
        )
        .unwrap();
        assert!(s.directory().unwrap().retention_for("myorg/app").is_none());
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let c = Change::UserAdd {
            name: "a".into(),
            password: pw("hunter2"),
            superuser: false,
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!c.describe().contains("hunter2"));
    }
}
