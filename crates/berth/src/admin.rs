//! `berth registry …`: administration of users, organizations, teams, robots, grants
//! and visibility, either on a registry's data folder (`--root`, also while the server
//! runs: SQLite shares the file and the server sees each change at its next request)
//! or against a running registry's `/api/v1/` with an account's credentials (`--url`).
//!
//! Both ways build the same `berth_auth::Change`; only its transport differs.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use anyhow::{bail, Context};
use berth_auth::{Actor, Change, Level, Outcome, Secret, Visibility};
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::serve::Stores;

#[derive(Args, Debug)]
pub struct RegistryArgs {
    /// Administer a running registry over HTTP instead, e.g. https://registry.example:5000
    #[arg(long, value_name = "URL", global = true)]
    url: Option<String>,
    /// With --url: USER[:PASSWORD] of the account making the change; without a
    /// password, it is read from $BERTH_PASSWORD or asked for on the terminal
    #[arg(long, value_name = "USER[:PASSWORD]", global = true, requires = "url")]
    creds: Option<String>,
    /// With --url: whether to verify the server's TLS certificate
    #[arg(long, value_name = "BOOL", global = true, default_value_t = true, default_missing_value = "true", num_args = 0..=1, require_equals = true, action = clap::ArgAction::Set)]
    tls_verify: bool,
    /// The TOML file `berth serve` runs with: the data folder commands take its root,
    /// metadata and blob store settings (BERTH_* variables and --root before it)
    #[arg(long, env = "BERTH_CONFIG", value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand, Debug)]
#[command(defer = true)]
enum AdminCommand {
    /// Users: people who log in with a password
    #[command(subcommand)]
    User(UserCommand),
    /// Organizations: namespaces (`myorg/…`) with teams and robots
    #[command(subcommand)]
    Org(OrgCommand),
    /// Teams of an organization (`myorg/devs`)
    #[command(subcommand)]
    Team(TeamCommand),
    /// Robot accounts (`myorg+ci`) with generated secrets, for CI
    #[command(subcommand)]
    Robot(RobotCommand),
    /// Grant read, write or admin on a namespace or a repository:
    /// `grant myorg/devs write myorg/app`
    Grant {
        /// A user, a team (org/team) or a robot (owner+name)
        subject: String,
        /// read, write or admin
        level: Level,
        /// A namespace (myorg) or a repository (myorg/app)
        target: String,
    },
    /// Take back what a subject was granted on a target
    Revoke { subject: String, target: String },
    /// Repositories
    #[command(subcommand)]
    Repo(RepoCommand),
    /// Content trust: serve a namespace's or repository's manifests only when a
    /// trusted key signed them
    #[command(subcommand)]
    Trust(TrustCommand),
    /// Immutable tags: tags of a namespace or repository matching a pattern, once
    /// pushed, never move to another image nor go
    #[command(subcommand)]
    Immutable(ImmutableCommand),
    /// Quotas: the bytes a namespace's repositories may hold (superusers)
    #[command(subcommand)]
    Quota(QuotaCommand),
    /// Retention: which tags of a namespace's or repository's repositories the
    /// collector deletes (keep the newest N, keep by pattern, keep the young, never
    /// delete by pattern); `gc --dry-run` lists what would go
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Replication: copy this registry's images to another registry on push and/or on
    /// a schedule (superusers)
    #[command(subcommand)]
    Replicate(ReplicateCommand),
    /// Content policies in one place: retention, immutable tags and quotas (the same
    /// commands as `berth registry retention|immutable|quota`)
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Bytes used per namespace (distinct blobs and manifests), with the quota (JSON)
    Usage {
        /// Only this namespace
        namespace: Option<String>,
    },
    /// Garbage collection now: the tags retention rules let go, then untagged
    /// manifests (not a child of a tagged index, not a referrer of a live subject) and
    /// blobs nothing links, older than the grace period, while the registry keeps
    /// serving; prints what went (JSON)
    Gc {
        /// List what would go (tags, manifests, blobs), remove nothing
        #[arg(long)]
        dry_run: bool,
        /// Spare content stored or linked less than this long ago [default: 24h, or
        /// the server's --gc-grace with --url]
        #[arg(long, value_name = "DURATION", value_parser = crate::serve::parse_grace)]
        grace: Option<std::time::Duration>,
        /// Only this repository (and the blobs only it held)
        #[arg(long, value_name = "NAME")]
        repo: Option<String>,
        /// Keep untagged manifests
        #[arg(long)]
        keep_untagged: bool,
    },
    /// Check the data folder: re-hash every blob file (every object of the bucket
    /// when the settings name one: --config, BERTH_BLOB_STORE), find rows without
    /// files and files without rows, and say what each problem affects (JSON); exits
    /// 1 while problems remain
    Fsck {
        /// Remove rows whose file is missing or corrupt, corrupt files, and files no
        /// row names; never a good blob. Refused where most rows have no file (it
        /// looks like another store than the registry's)
        #[arg(long)]
        repair: bool,
        /// With --repair: remove the rows of missing files even when most are
        /// missing, the files being known to be lost
        #[arg(long, requires = "repair")]
        lost_files: bool,
    },
    /// Move this registry's content (--root) onto object storage and PostgreSQL, for
    /// `berth serve --blob-store … --metadata …` replicas: every blob verified as it
    /// is sent; run it again to resume (what is there is not sent again). Users,
    /// grants and the token key move too (JSON report)
    Migrate {
        /// The bucket: s3://BUCKET[/PREFIX]; credentials from AWS_ACCESS_KEY_ID and
        /// AWS_SECRET_ACCESS_KEY
        #[arg(long, value_name = "s3://BUCKET[/PREFIX]")]
        to_blob_store: String,
        /// postgres://USER:PASSWORD@HOST:PORT/DATABASE
        #[arg(long, value_name = "URL")]
        to_metadata: String,
        /// The object store's URL, for anything but AWS
        #[arg(long, value_name = "URL")]
        s3_endpoint: Option<String>,
        /// The object store's region [default: AWS_REGION, else us-east-1]
        #[arg(long, value_name = "REGION")]
        s3_region: Option<String>,
        /// Path-style addressing [default: true with --s3-endpoint]
        #[arg(long, value_name = "BOOL")]
        s3_path_style: Option<bool>,
    },
    /// Catalog: scan again the manifests whose inventory failed (their failed layers
    /// read again); --all: every manifest; REPO or REPO:TAG: those (JSON report)
    Scan {
        /// Every manifest of every repository
        #[arg(long, conflicts_with = "image")]
        all: bool,
        /// REPO or REPO:TAG
        image: Option<String>,
    },
    /// Vulnerability data for the catalog
    #[command(subcommand)]
    Vulndb(VulndbCommand),
    /// Refresh tokens: the sessions `podman login` and docker keep (OAuth2 refresh
    /// tokens), listed and ended one by one
    #[command(subcommand)]
    Token(TokenCommand),
    /// The latest permission changes: who, from where, what (JSON, newest first)
    Audit {
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

#[derive(Subcommand, Debug)]
enum VulndbCommand {
    /// Import OSV data (per-ecosystem all.zip files, OSV JSON files or folders of
    /// them; with --url, files only), then match every stored image again (no layer
    /// is read again); prints each file's import report and the rematch's (JSON)
    Import {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// Add a user (its personal namespace is `NAME/…`)
    Add {
        name: String,
        /// Read the password from standard input (else asked on the terminal)
        #[arg(long)]
        password_stdin: bool,
        /// May do anything, including managing other users
        #[arg(long)]
        superuser: bool,
    },
    /// Set a user's password
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete a user
    Del { name: String },
    /// List users
    List,
    /// Import the users of an Apache htpasswd file (bcrypt entries, as docker-registry uses)
    ImportHtpasswd { file: PathBuf },
}

#[derive(Subcommand, Debug)]
enum OrgCommand {
    /// Create an organization
    Create { name: String },
    /// Delete an organization with its teams, robots and grants
    Del { name: String },
    /// Show an organization's teams, robots, grants and default visibility (JSON)
    Show { name: String },
    /// Visibility of the organization's repositories that have none of their own
    Visibility {
        name: String,
        visibility: Visibility,
    },
}

#[derive(Subcommand, Debug)]
enum TeamCommand {
    /// Add a user to a team (the team exists while it has members)
    Add { team: String, user: String },
    /// Remove a user from a team
    Remove { team: String, user: String },
}

#[derive(Subcommand, Debug)]
enum RobotCommand {
    /// Create a robot; its secret is printed once, on standard output
    Create { name: String },
    /// Delete a robot
    Del { name: String },
}

#[derive(Subcommand, Debug)]
enum RepoCommand {
    /// Make a repository public (anyone may pull) or private
    Visibility {
        repository: String,
        visibility: Visibility,
    },
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// The live refresh tokens (id, account, created, expires; never the token), of
    /// ACCOUNT or, for a superuser, of everyone; with --url, a user sees their own
    List {
        /// Only this account's sessions [default: every account's]
        #[arg(long, value_name = "ACCOUNT")]
        account: Option<String>,
    },
    /// End ACCOUNT's session whose token id (or its first 8+ digits) is ID, or every
    /// session of ACCOUNT without ID
    Revoke { account: String, id: Option<String> },
}

#[derive(Subcommand, Debug)]
enum TrustCommand {
    /// Require signatures on NAME (a namespace, or a repository: the most specific
    /// setting wins) by one of these keys, replacing NAME's setting
    Set {
        /// A namespace (myorg) or a repository (myorg/app)
        name: String,
        /// A GPG public key file (binary or armored, as `gpg --export` writes it)
        #[arg(long = "gpg-key", value_name = "FILE")]
        gpg_keys: Vec<PathBuf>,
        /// A sigstore public key file (PEM, as `berth generate-sigstore-key` writes it)
        #[arg(long = "sigstore-key", value_name = "FILE")]
        sigstore_keys: Vec<PathBuf>,
        /// Serve NAME unsigned even where its namespace requires signatures
        #[arg(long, conflicts_with_all = ["gpg_keys", "sigstore_keys"])]
        not_required: bool,
    },
    /// Show the setting in force on NAME, its keys and their fingerprints (JSON)
    Show { name: String },
    /// Remove NAME's own setting (a repository then follows its namespace's)
    Unset { name: String },
}

#[derive(Subcommand, Debug)]
enum ImmutableCommand {
    /// Make NAME's tags matching a PATTERN (`*`, `?`: `v*`, `release-*`) immutable,
    /// replacing NAME's setting (a repository's own setting wins over its namespace's)
    Set {
        /// A namespace (myorg) or a repository (myorg/app)
        name: String,
        #[arg(required = true, value_name = "PATTERN")]
        patterns: Vec<String>,
    },
    /// Show the setting in force on NAME (JSON)
    Show { name: String },
    /// Remove NAME's own setting
    Unset { name: String },
}

#[derive(Subcommand, Debug)]
enum RetentionCommand {
    /// Set NAME's rule, replacing its own previous one (a repository's own rule wins
    /// over its namespace's, except for the namespace's --never patterns). Each
    /// repository is judged alone: a tag stays when it is among the --keep-last
    /// newest, matches a --keep pattern, or was pushed less than --older-than ago;
    /// every other tag goes at the next collection
    Set {
        /// A namespace (myorg) or a repository (myorg/app)
        name: String,
        /// Keep the N tags pushed most recently
        #[arg(long, value_name = "N")]
        keep_last: Option<u32>,
        /// Keep tags matching PATTERN (`*`, `?`: `v*`); repeat for more
        #[arg(long, value_name = "PATTERN")]
        keep: Vec<String>,
        /// Keep tags pushed less than DURATION ago (`30d`, `12h`): older ones go
        #[arg(long, value_name = "DURATION")]
        older_than: Option<String>,
        /// Never delete tags matching PATTERN; they take none of --keep-last's places,
        /// and a namespace's hold in its repositories whatever their own rules say
        #[arg(long, value_name = "PATTERN")]
        never: Vec<String>,
    },
    /// Show the rule in force on NAME (JSON)
    Show { name: String },
    /// Remove NAME's own rule
    Unset { name: String },
}

#[derive(Subcommand, Debug)]
enum ReplicateCommand {
    /// Add rule NAME (replacing one of that name): the images of repositories matching
    /// --repos whose tags match --tags go to the registry at --to, with their indexes,
    /// signatures and referrers, skipping what it has
    Add {
        name: String,
        /// The target registry: https://host[:port] (http:// for one on the same network)
        #[arg(long, value_name = "URL")]
        to: String,
        /// USER:PASSWORD at the target (a robot's, typically)
        #[arg(long, value_name = "USER:PASSWORD")]
        dest_creds: Option<String>,
        /// Repositories to copy (`*` and `?`; `team/*`); repeat for more [default: all]
        #[arg(long, value_name = "PATTERN")]
        repos: Vec<String>,
        /// Tags to copy (`v*`); repeat for more [default: all]
        #[arg(long, value_name = "PATTERN")]
        tags: Vec<String>,
        /// Copy each matching tag as soon as it is pushed
        #[arg(long)]
        on_push: bool,
        /// Copy every matching tag the target lacks this often (`1h`, `30m`)
        #[arg(long, value_name = "DURATION")]
        schedule: Option<String>,
    },
    /// The rules, with what each did since the server started (JSON; the status needs
    /// --url)
    List,
    /// Rule NAME and what it did (JSON)
    Show { name: String },
    /// Run rule NAME now, in the server (needs --url)
    Run { name: String },
    /// Remove rule NAME
    Remove { name: String },
}

#[derive(Subcommand, Debug)]
enum PolicyCommand {
    /// Which tags the collector deletes
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Tags that never move nor go
    #[command(subcommand)]
    Immutable(ImmutableCommand),
    /// Bytes per namespace (superusers)
    #[command(subcommand)]
    Quota(QuotaCommand),
}

#[derive(Subcommand, Debug)]
enum QuotaCommand {
    /// Limit namespace NS to SIZE bytes of distinct blobs and manifests (`10GiB`,
    /// `500MB`, `1048576`)
    Set {
        namespace: String,
        #[arg(value_parser = parse_size)]
        size: u64,
    },
    /// Remove NS's quota
    Unset { namespace: String },
}

fn parse_size(s: &str) -> Result<u64, String> {
    berth_auth::policy::parse_size(s).ok_or_else(|| {
        format!("{s:?} is not a size: a number of bytes, or with a unit (500MB, 10GiB)")
    })
}

/// What to do: a change, or a question.
enum Request {
    Change(Change),
    UserList,
    OrgShow(String),
    Audit(usize),
    TrustShow(String),
    ImmutableShow(String),
    RetentionShow(String),
    ReplicationList,
    ReplicationShow(String),
    ReplicationRun(String),
    Usage(Option<String>),
    TokenList(Option<String>),
    Gc {
        dry_run: bool,
        grace: Option<std::time::Duration>,
        repo: Option<String>,
        keep_untagged: bool,
    },
    Fsck(berth_store::fsck::Mode),
    Migrate {
        objects: berth_store::ObjectConfig,
        metadata: String,
    },
    Scan {
        all: bool,
        repo: Option<String>,
        tag: Option<String>,
    },
    VulndbImport(Vec<PathBuf>),
}

pub fn run(args: RegistryArgs) -> anyhow::Result<()> {
    let request = request(args.command)?;
    let output = match &args.url {
        Some(_) if crate::paths::root_flag().is_some() => {
            anyhow::bail!("--root and --url: give one (a data folder here, or a running registry)")
        }
        Some(url) => remote(url, args.creds.as_deref(), args.tls_verify, &request)?,
        None => local(&crate::serve::stores(args.config.as_deref())?, &request)?,
    };
    if let Some(out) = output {
        println!("{out}");
    }
    Ok(())
}

fn request(cmd: AdminCommand) -> anyhow::Result<Request> {
    let cmd = match cmd {
        AdminCommand::Policy(PolicyCommand::Retention(c)) => AdminCommand::Retention(c),
        AdminCommand::Policy(PolicyCommand::Immutable(c)) => AdminCommand::Immutable(c),
        AdminCommand::Policy(PolicyCommand::Quota(c)) => AdminCommand::Quota(c),
        c => c,
    };
    Ok(Request::Change(match cmd {
        AdminCommand::Policy(_) => unreachable!("unfolded above"),
        AdminCommand::User(UserCommand::Add {
            name,
            password_stdin,
            superuser,
        }) => Change::UserAdd {
            password: read_password(password_stdin, &format!("Password for {name}: "))?,
            name,
            superuser,
        },
        AdminCommand::User(UserCommand::Passwd {
            name,
            password_stdin,
        }) => Change::UserPassword {
            password: read_password(password_stdin, &format!("New password for {name}: "))?,
            name,
        },
        AdminCommand::User(UserCommand::Del { name })
        | AdminCommand::Org(OrgCommand::Del { name })
        | AdminCommand::Robot(RobotCommand::Del { name }) => Change::AccountDelete { name },
        AdminCommand::User(UserCommand::List) => return Ok(Request::UserList),
        AdminCommand::User(UserCommand::ImportHtpasswd { file }) => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let users = berth_auth::password::parse_htpasswd(&text)
                .with_context(|| format!("reading {}", file.display()))?;
            Change::UserImport {
                users: users.into_iter().map(|(u, h)| (u, Secret(h))).collect(),
            }
        }
        AdminCommand::Org(OrgCommand::Create { name }) => Change::OrgCreate { name },
        AdminCommand::Org(OrgCommand::Show { name }) => return Ok(Request::OrgShow(name)),
        AdminCommand::Org(OrgCommand::Visibility { name, visibility }) => {
            Change::NamespaceVisibility { name, visibility }
        }
        AdminCommand::Team(TeamCommand::Add { team, user }) => {
            Change::TeamAdd { team, member: user }
        }
        AdminCommand::Team(TeamCommand::Remove { team, user }) => {
            Change::TeamRemove { team, member: user }
        }
        AdminCommand::Robot(RobotCommand::Create { name }) => Change::RobotCreate { name },
        AdminCommand::Grant {
            subject,
            level,
            target,
        } => Change::Grant {
            subject,
            level,
            target,
        },
        AdminCommand::Revoke { subject, target } => Change::Revoke { subject, target },
        AdminCommand::Audit { limit } => return Ok(Request::Audit(limit)),
        AdminCommand::Token(TokenCommand::List { account }) => {
            return Ok(Request::TokenList(account))
        }
        AdminCommand::Token(TokenCommand::Revoke { account, id }) => {
            Change::TokenRevoke { account, id }
        }
        AdminCommand::Trust(TrustCommand::Set {
            name,
            gpg_keys,
            sigstore_keys,
            not_required,
        }) => {
            if !not_required && gpg_keys.is_empty() && sigstore_keys.is_empty() {
                bail!("trust set {name}: give --gpg-key FILE or --sigstore-key FILE (or --not-required)");
            }
            Change::TrustSet {
                name,
                required: !not_required,
                gpg_keys: gpg_keys
                    .iter()
                    .map(|f| Ok(berth_auth::trust::gpg_key_text(&read_key(f)?)))
                    .collect::<anyhow::Result<_>>()?,
                sigstore_keys: sigstore_keys
                    .iter()
                    .map(|f| {
                        String::from_utf8(read_key(f)?).map_err(|_| {
                            anyhow::anyhow!("{}: a sigstore public key is PEM text", f.display())
                        })
                    })
                    .collect::<anyhow::Result<_>>()?,
            }
        }
        AdminCommand::Trust(TrustCommand::Show { name }) => return Ok(Request::TrustShow(name)),
        AdminCommand::Gc {
            dry_run,
            grace,
            repo,
            keep_untagged,
        } => {
            if let Some(r) = &repo {
                r.parse::<berth_image::RepositoryName>()
                    .with_context(|| format!("--repo {r}"))?;
            }
            return Ok(Request::Gc {
                dry_run,
                grace,
                repo,
                keep_untagged,
            });
        }
        AdminCommand::Fsck { repair, lost_files } => {
            use berth_store::fsck::Mode;
            return Ok(Request::Fsck(match (repair, lost_files) {
                (false, _) => Mode::Check,
                (true, false) => Mode::Repair,
                (true, true) => Mode::RepairLostFiles,
            }));
        }
        AdminCommand::Migrate {
            to_blob_store,
            to_metadata,
            s3_endpoint,
            s3_region,
            s3_path_style,
        } => {
            let objects = crate::serve::object_config(
                Some(&to_blob_store),
                s3_endpoint,
                s3_region,
                s3_path_style,
                None,
            )?
            .context("--to-blob-store is an object store, s3://BUCKET[/PREFIX]")?;
            match to_metadata.parse().map_err(anyhow::Error::msg)? {
                berth_registry::Metadata::Postgres(metadata) => {
                    return Ok(Request::Migrate { objects, metadata })
                }
                berth_registry::Metadata::Sqlite => {
                    bail!("--to-metadata is a postgres:// URL (sqlite is where it comes from)")
                }
            }
        }
        AdminCommand::Scan { all, image } => {
            let (repo, tag) = match image.as_deref().map(split_repo_tag).transpose()? {
                Some((r, t)) => (Some(r), t),
                None => (None, None),
            };
            return Ok(Request::Scan { all, repo, tag });
        }
        AdminCommand::Vulndb(VulndbCommand::Import { files }) => {
            return Ok(Request::VulndbImport(files))
        }
        AdminCommand::Trust(TrustCommand::Unset { name }) => Change::TrustUnset { name },
        AdminCommand::Immutable(ImmutableCommand::Set { name, patterns }) => {
            Change::ImmutableSet { name, patterns }
        }
        AdminCommand::Immutable(ImmutableCommand::Show { name }) => {
            return Ok(Request::ImmutableShow(name))
        }
        AdminCommand::Immutable(ImmutableCommand::Unset { name }) => {
            Change::ImmutableUnset { name }
        }
        AdminCommand::Retention(RetentionCommand::Set {
            name,
            keep_last,
            keep,
            older_than,
            never,
        }) => Change::RetentionSet {
            name,
            keep_last,
            keep,
            older_than,
            never,
        },
        AdminCommand::Retention(RetentionCommand::Show { name }) => {
            return Ok(Request::RetentionShow(name))
        }
        AdminCommand::Retention(RetentionCommand::Unset { name }) => {
            Change::RetentionUnset { name }
        }
        AdminCommand::Replicate(ReplicateCommand::Add {
            name,
            to,
            dest_creds,
            repos,
            tags,
            on_push,
            schedule,
        }) => {
            let (username, password) = match dest_creds {
                Some(c) => match c.split_once(':') {
                    Some((u, p)) => (Some(u.to_string()), Some(Secret(p.to_string()))),
                    None => bail!("--dest-creds: USER:PASSWORD"),
                },
                None => (None, None),
            };
            Change::ReplicationSet {
                name,
                url: to,
                username,
                password,
                repos,
                tags,
                on_push,
                schedule,
            }
        }
        AdminCommand::Replicate(ReplicateCommand::List) => return Ok(Request::ReplicationList),
        AdminCommand::Replicate(ReplicateCommand::Show { name }) => {
            return Ok(Request::ReplicationShow(name))
        }
        AdminCommand::Replicate(ReplicateCommand::Run { name }) => {
            return Ok(Request::ReplicationRun(name))
        }
        AdminCommand::Replicate(ReplicateCommand::Remove { name }) => {
            Change::ReplicationRemove { name }
        }
        AdminCommand::Quota(QuotaCommand::Set { namespace, size }) => Change::QuotaSet {
            namespace,
            bytes: size,
        },
        AdminCommand::Quota(QuotaCommand::Unset { namespace }) => Change::QuotaUnset { namespace },
        AdminCommand::Usage { namespace } => {
            if let Some(ns) = &namespace {
                berth_auth::names::check_account(ns).with_context(|| format!("usage {ns}"))?;
            }
            return Ok(Request::Usage(namespace));
        }
        AdminCommand::Repo(RepoCommand::Visibility {
            repository,
            visibility,
        }) => Change::RepoVisibility {
            repository,
            visibility,
        },
    }))
}

/// A public key file, refused before reading when larger than a setting may hold.
fn read_key(file: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let max = berth_auth::trust::MAX_KEY_BYTES;
    let f = std::fs::File::open(file).with_context(|| format!("reading {}", file.display()))?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(f, max as u64 + 1), &mut bytes)
        .with_context(|| format!("reading {}", file.display()))?;
    // Binary keys travel as base64, a third larger.
    if bytes.len() > max || berth_auth::trust::gpg_key_text(&bytes).len() > max {
        bail!(
            "{}: a key file is at most {max} bytes as text",
            file.display()
        );
    }
    Ok(bytes)
}

/// A password from standard input (first line) or, on a terminal, asked without echo.
fn read_password(from_stdin: bool, prompt: &str) -> anyhow::Result<Secret> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        line.trim_end_matches(['\n', '\r']).to_string()
    } else if std::io::stdin().is_terminal() {
        rpassword::prompt_password(prompt).context("reading the password")?
    } else {
        bail!(
            "standard input is not a terminal: pass --password-stdin to read the password from it"
        );
    };
    if password.is_empty() {
        bail!("the password is empty");
    }
    Ok(Secret(password))
}

/// What a change printed: a robot's secret, or nothing.
fn outcome_output(outcome: Outcome) -> Option<String> {
    match outcome {
        Outcome::Done => None,
        Outcome::RobotCreated { name, secret } => {
            eprintln!("robot {name} created; its secret is shown once:");
            Some(secret.0)
        }
    }
}

fn local(stores: &Stores, request: &Request) -> anyhow::Result<Option<String>> {
    let root = stores.root.as_path();
    // A change may come first (users before the first `serve`): it creates the
    // registry's folder. A query of a registry that does not exist is an error.
    match request {
        Request::Change(_) => std::fs::create_dir_all(root)
            .with_context(|| format!("creating the registry folder {}", root.display()))?,
        _ if !root.exists() => bail!(
            "no registry at {} (start `berth serve --root {}` once, or pass --root)",
            root.display(),
            root.display()
        ),
        _ => {}
    }
    match request {
        Request::Gc {
            dry_run,
            grace,
            repo,
            keep_untagged,
        } => {
            let (meta, blobs) = open_content(stores)?;
            let objects = open_objects(stores)?;
            let bytes: &dyn berth_store::BlobBytes = match &objects {
                Some(o) => o,
                None => &blobs,
            };
            // Its file removal runs at the lowest priority (berth_store::gc), so
            // that pulls beside it keep their pace; its database work, one thread,
            // does not wait for them.
            let dir = open_auth(stores)?.directory()?;
            let opts = berth_store::gc::GcOptions {
                grace: grace.unwrap_or(berth_store::gc::GcOptions::default().grace),
                keep_untagged: *keep_untagged,
                repo: repo.clone(),
                untag: Vec::new(),
            };
            let collection =
                berth_registry::retention::collect(meta.as_ref(), bytes, &dir, opts, *dry_run)?;
            return Ok(Some(pretty(&collection.to_json())));
        }
        Request::Scan { all, repo, tag } => {
            let catalog = open_catalog(stores)?;
            let meta = catalog.meta_store();
            let report = berth_catalog::scan_request(
                &catalog,
                meta.as_ref(),
                *all,
                repo.as_deref(),
                tag.as_deref(),
            )
            .map_err(anyhow::Error::msg)?;
            return Ok(Some(pretty(&report)));
        }
        Request::VulndbImport(files) => {
            let catalog = open_catalog(stores)?;
            let paths: Vec<&std::path::Path> = files.iter().map(PathBuf::as_path).collect();
            let (imports, rematch) = catalog.import_vulns(&paths)?;
            return Ok(Some(pretty(
                &serde_json::json!({ "imports": imports, "rematch": rematch }),
            )));
        }
        Request::Usage(namespace) => {
            let (meta, _) = open_content(stores)?;
            let dir = open_auth(stores)?.directory()?;
            let v =
                berth_registry::usage_json(meta.as_ref(), &dir, namespace.as_deref(), |_| true)?;
            return Ok(Some(pretty(&v)));
        }
        Request::Migrate { objects, metadata } => {
            let (src_meta, src_blobs) = open_content(stores)?;
            let dst_blobs = berth_store::ObjectBlobs::open(objects)
                .with_context(|| format!("opening the object store s3://{}", objects.bucket))?;
            let dst_meta =
                berth_store::PgMeta::connect(metadata, &berth_store::PgOptions::default())
                    .context("opening the metadata database (--to-metadata)")?;
            let (mut blobs, mut sent) = (0u64, 0u64);
            let report = berth_store::migrate::migrate(
                src_meta.as_ref(),
                &src_blobs,
                &dst_meta,
                &dst_blobs,
                &mut |step| match step {
                    berth_store::migrate::Step::Blob { copied, .. } => {
                        blobs += 1;
                        sent += u64::from(copied);
                        if blobs % 1000 == 0 {
                            eprintln!("migrate: {blobs} blobs ({sent} sent)");
                        }
                    }
                    berth_store::migrate::Step::Repository(name) => {
                        eprintln!("migrate: {name}")
                    }
                },
            )
            .context("migrating (run it again to resume)")?;
            // The directory too, and the token key, so that tokens issued before stay
            // valid on the replicas.
            let dst_auth = berth_auth::AuthStore::connect(metadata)
                .context("opening the access-control directory (--to-metadata)")?;
            let src_auth = berth_auth::open_store(root)?;
            let directory_rows = src_auth
                .copy_into(&dst_auth)
                .context("copying the access-control directory (run it again to resume)")?;
            let key = berth_auth::auth_dir(root).join("token-key.pem");
            if key.exists() {
                dst_auth.shared_token_key(|| {
                    std::fs::read_to_string(&key).map_err(|source| berth_auth::StoreError::Io {
                        path: key.display().to_string(),
                        source,
                    })
                })?;
            }
            let mut report = serde_json::to_value(&report)?;
            report["directory_rows"] = directory_rows.into();
            return Ok(Some(pretty(&report)));
        }
        Request::Fsck(mode) => {
            let (meta, blobs) = open_content(stores)?;
            // Where the settings say the blobs are: every object is read back.
            let objects = open_objects(stores)?;
            let stored: &dyn berth_store::fsck::Checkable = match &objects {
                Some(o) => o,
                None => &blobs,
            };
            let report = berth_store::fsck::check(meta.as_ref(), stored, *mode).map_err(|e| {
                let hint = match e {
                    berth_store::StoreError::MostFilesMissing { .. } => {
                        " (give the settings `berth serve` runs with: --config, \
                         BERTH_BLOB_STORE; or, the files being lost, --repair --lost-files)"
                    }
                    _ => "",
                };
                anyhow::anyhow!("fsck: {e}{hint}")
            })?;
            println!("{}", pretty(&fsck_json(&report)));
            let left = report.remaining();
            if left > 0 {
                bail!(
                    "fsck: {left} problem(s) remain{}",
                    if *mode != berth_store::fsck::Mode::Check {
                        ""
                    } else {
                        " (--repair fixes them)"
                    }
                );
            }
            return Ok(None);
        }
        _ => {}
    }
    let store = open_auth(stores)?;
    Ok(match request {
        Request::Gc { .. }
        | Request::Fsck(_)
        | Request::Migrate { .. }
        | Request::Scan { .. }
        | Request::VulndbImport(_)
        | Request::Usage(_) => {
            unreachable!("answered above")
        }
        Request::Change(change) => {
            let outcome = store.apply(&Actor::local(), change)?;
            outcome_output(outcome)
        }
        Request::UserList => Some(pretty(&store.directory()?.describe_users())),
        Request::OrgShow(name) => match store.directory()?.describe_org(name) {
            Some(v) => Some(pretty(&v)),
            None => bail!("organization {name} does not exist"),
        },
        Request::Audit(limit) => Some(pretty(
            &serde_json::json!({ "changes": store.audit_trail(*limit)? }),
        )),
        Request::TokenList(account) => Some(pretty(
            &serde_json::json!({ "tokens": store.refresh_tokens(account.as_deref())? }),
        )),
        Request::TrustShow(name) => {
            let dir = store.directory()?;
            let setting = match berth_auth::names::Target::parse(name)? {
                berth_auth::names::Target::Namespace(ns) => dir.trust_setting(&ns).cloned(),
                berth_auth::names::Target::Repository(r) => dir.trust_for(r.as_str()).cloned(),
            };
            match setting {
                Some(t) => Some(pretty(&t.describe())),
                None => bail!("no trust setting applies to {name}"),
            }
        }
        Request::ImmutableShow(name) => {
            let dir = store.directory()?;
            let setting = match berth_auth::names::Target::parse(name)? {
                berth_auth::names::Target::Namespace(ns) => dir.immutable_of_namespace(&ns),
                berth_auth::names::Target::Repository(r) => dir.immutable_for(r.as_str()),
            };
            match setting {
                Some(s) => Some(pretty(&s.describe())),
                None => bail!("no immutable-tags setting applies to {name}"),
            }
        }
        Request::ReplicationList => {
            let dir = store.directory()?;
            let rules: Vec<Value> = dir
                .replication_rules()
                .iter()
                .map(|r| r.describe())
                .collect();
            Some(pretty(&serde_json::json!({ "rules": rules })))
        }
        Request::ReplicationShow(name) => {
            let dir = store.directory()?;
            match dir.replication_rules().iter().find(|r| &r.name == name) {
                Some(r) => Some(pretty(&r.describe())),
                None => bail!("no replication rule {name}"),
            }
        }
        Request::ReplicationRun(_) => {
            bail!("replicate run: the server runs rules; give --url (and --creds) of the running registry")
        }
        Request::RetentionShow(name) => {
            let dir = store.directory()?;
            let rule = match berth_auth::names::Target::parse(name)? {
                berth_auth::names::Target::Namespace(ns) => dir.retention_setting(&ns),
                berth_auth::names::Target::Repository(r) => {
                    dir.retention_for(r.as_str()).map(|(rule, _)| rule)
                }
            };
            match rule {
                Some(rule) => Some(pretty(&berth_registry::retention::describe(
                    &dir, name, rule,
                ))),
                None => bail!("no retention setting applies to {name}"),
            }
        }
    })
}

/// `REPO[:TAG]` (a `:` after the last `/` starts the tag).
fn split_repo_tag(image: &str) -> anyhow::Result<(String, Option<String>)> {
    let (repo, tag) = match image.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, Some(t.to_string())),
        _ => (image, None),
    };
    repo.parse::<berth_image::RepositoryName>()
        .with_context(|| format!("{image}: REPO or REPO:TAG"))?;
    if let Some(t) = &tag {
        t.parse::<berth_image::Tag>()
            .with_context(|| format!("{image}: REPO or REPO:TAG"))?;
    }
    Ok((repo.to_string(), tag))
}

/// The catalog of a registry folder (the server may be running on it).
fn open_catalog(stores: &Stores) -> anyhow::Result<berth_catalog::Catalog> {
    let (meta, _) = open_content(stores)?;
    let catalog = berth_catalog::Catalog::open(&stores.root, meta)?;
    Ok(match open_objects(stores)? {
        Some(objects) => catalog.with_objects(objects),
        None => catalog,
    })
}

/// The content store of a registry folder (the server may be running on it): its
/// metadata in `meta.db`, or in PostgreSQL where the settings say so, as for `berth
/// serve`.
fn open_content(
    stores: &Stores,
) -> anyhow::Result<(
    std::sync::Arc<dyn berth_store::MetaStore>,
    berth_store::BlobStore,
)> {
    let root = &stores.root;
    let meta: std::sync::Arc<dyn berth_store::MetaStore> = match &stores.metadata {
        berth_registry::Metadata::Sqlite => {
            let db = root.join("meta.db");
            if !db.exists() {
                bail!("no registry content at {} (no meta.db)", root.display());
            }
            std::sync::Arc::new(berth_store::SqliteMeta::open(&db)?)
        }
        berth_registry::Metadata::Postgres(url) => std::sync::Arc::new(
            berth_store::PgMeta::connect(url, &berth_store::PgOptions::default())
                .context("opening the metadata database (BERTH_METADATA)")?,
        ),
    };
    Ok((meta, berth_store::BlobStore::open(root)?))
}

/// The access-control directory: `auth/auth.db` under the root, or the replicas'
/// PostgreSQL where the settings name it.
fn open_auth(stores: &Stores) -> anyhow::Result<berth_auth::AuthStore> {
    Ok(match &stores.metadata {
        berth_registry::Metadata::Sqlite => berth_auth::open_store(&stores.root)?,
        berth_registry::Metadata::Postgres(url) => berth_auth::AuthStore::connect(url)
            .context("opening the access-control directory (BERTH_METADATA)")?,
    })
}

/// The object store the settings name (`blob_store`, `BERTH_BLOB_STORE`), if any.
fn open_objects(stores: &Stores) -> anyhow::Result<Option<berth_store::ObjectBlobs>> {
    let Some(config) = &stores.objects else {
        return Ok(None);
    };
    let objects = berth_store::ObjectBlobs::open(config)
        .with_context(|| format!("opening the object store s3://{}", config.bucket))?;
    Ok(Some(objects))
}

fn fsck_json(report: &berth_store::fsck::Report) -> Value {
    use berth_store::fsck::Problem;
    let findings: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let (kind, what) = match &f.problem {
                Problem::Corrupt { digest, .. } => ("corrupt", digest.to_string()),
                Problem::Unreadable { digest, .. } => ("unreadable", digest.to_string()),
                Problem::MissingFile { digest } => ("missing-file", digest.to_string()),
                Problem::OrphanFile { location, .. } => ("orphan-file", location.clone()),
            };
            serde_json::json!({
                "problem": kind,
                "blob": what,
                "message": f.problem.to_string(),
                "repositories": f.affects.repositories,
                "manifests": f.affects.manifests.iter().map(|(r, d, tags)| serde_json::json!({
                    "repository": r, "digest": d, "tags": tags,
                })).collect::<Vec<_>>(),
                "repaired": f.repaired,
            })
        })
        .collect();
    serde_json::json!({
        "files_checked": report.files_checked,
        "bytes_checked": report.bytes_checked,
        "rows_checked": report.rows_checked,
        "commits_under_way": report.commits_under_way,
        "problems": findings.len(),
        "remaining": report.remaining(),
        "findings": findings,
    })
}

/// `vulndb import --url`: each file streamed as the body of `POST
/// /api/v1/vulndb/import` (the server imports it and rematches).
fn import_remote(
    url: &str,
    user: &str,
    password: &str,
    tls_verify: bool,
    files: &[PathBuf],
) -> anyhow::Result<String> {
    let endpoint = format!("{}/api/v1/vulndb/import", url.trim_end_matches('/'));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut answers = Vec::new();
    for f in files {
        if f.is_dir() {
            bail!(
                "{}: with --url, give files (all.zip or JSON), not folders",
                f.display()
            );
        }
        let (status, text) = runtime.block_on(async {
            let file = tokio::fs::File::open(f)
                .await
                .with_context(|| format!("opening {}", f.display()))?;
            let client = reqwest::Client::builder()
                .danger_accept_invalid_certs(!tls_verify)
                .build()?;
            let resp = client
                .post(&endpoint)
                .basic_auth(user, Some(password))
                .body(reqwest::Body::wrap_stream(
                    tokio_util::io::ReaderStream::new(file),
                ))
                .send()
                .await
                .with_context(|| format!("POST {endpoint}"))?;
            let status = resp.status();
            anyhow::Ok((status, resp.text().await?))
        })?;
        answers.push(api_answer(status, &text).with_context(|| format!("{url}: {}", f.display()))?);
    }
    Ok(pretty(&Value::Array(answers)))
}

/// The JSON of an `/api/v1/` answer, or its `error` (with the status) as the error.
fn api_answer(status: reqwest::StatusCode, text: &str) -> anyhow::Result<Value> {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::String(text.to_string()));
    if !status.is_success() {
        let why = v["error"].as_str().unwrap_or(text);
        bail!("{why} ({status})");
    }
    Ok(v)
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn remote(
    url: &str,
    creds: Option<&str>,
    tls_verify: bool,
    request: &Request,
) -> anyhow::Result<Option<String>> {
    let Some(creds) = creds else {
        bail!("--url needs --creds USER[:PASSWORD] of an account allowed to make the change");
    };
    let (user, password) = match creds.split_once(':') {
        Some((u, p)) => (u.to_string(), p.to_string()),
        None => match std::env::var("BERTH_PASSWORD") {
            Ok(p) => (creds.to_string(), p),
            Err(_) if std::io::stdin().is_terminal() => (
                creds.to_string(),
                rpassword::prompt_password(format!("Password for {creds}: "))?,
            ),
            Err(_) => {
                bail!("no password for {creds}: use --creds USER:PASSWORD or set BERTH_PASSWORD")
            }
        },
    };
    let (method, path, body) = match request {
        Request::Change(change) => berth_auth::api::request(change),
        Request::UserList => ("GET", "users".to_string(), Value::Null),
        Request::OrgShow(name) => ("GET", format!("orgs/{name}"), Value::Null),
        Request::Audit(limit) => ("GET", format!("audit?limit={limit}"), Value::Null),
        Request::TrustShow(name) => ("GET", format!("trust/{name}"), Value::Null),
        Request::ImmutableShow(name) => ("GET", format!("immutable/{name}"), Value::Null),
        Request::RetentionShow(name) => ("GET", format!("retention/{name}"), Value::Null),
        Request::ReplicationList => ("GET", "replication".to_string(), Value::Null),
        Request::ReplicationShow(name) => ("GET", format!("replication/{name}"), Value::Null),
        Request::ReplicationRun(name) => ("POST", format!("replication/{name}/run"), Value::Null),
        Request::Usage(ns) => {
            let query = ns
                .as_deref()
                .map(|n| format!("?namespace={n}"))
                .unwrap_or_default();
            ("GET", format!("usage{query}"), Value::Null)
        }
        Request::TokenList(account) => {
            // Account names are [a-z0-9._+-]: only a robot's `+` needs escaping.
            let query = account
                .as_deref()
                .map(|a| format!("?account={}", a.replace('+', "%2B")))
                .unwrap_or_default();
            ("GET", format!("tokens{query}"), Value::Null)
        }
        Request::Gc {
            dry_run,
            grace,
            repo,
            keep_untagged,
        } => {
            let mut body = serde_json::json!({ "dry_run": dry_run });
            if let Some(g) = grace {
                body["grace"] = Value::String(humantime::format_duration(*g).to_string());
            }
            if let Some(r) = repo {
                body["repo"] = Value::String(r.clone());
            }
            if *keep_untagged {
                body["keep_untagged"] = Value::Bool(true);
            }
            ("POST", "gc".to_string(), body)
        }
        Request::Fsck(_) => bail!(
            "fsck reads the data folder itself: run it where the registry's files are (--root)"
        ),
        Request::Migrate { .. } => bail!(
            "migrate reads the data folder itself: run it where the registry's files are (--root)"
        ),
        Request::Scan { all, repo, tag } => (
            "POST",
            "catalog/scan".to_string(),
            serde_json::json!({ "all": all, "repo": repo, "tag": tag }),
        ),
        Request::VulndbImport(files) => {
            return import_remote(url, &user, &password, tls_verify, files).map(Some)
        }
    };
    let endpoint = format!("{}/api/v1/{path}", url.trim_end_matches('/'));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (status, text) = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(!tls_verify)
            .build()?;
        let mut rb = client
            .request(method.parse()?, &endpoint)
            .basic_auth(&user, Some(&password));
        if !body.is_null() {
            rb = rb.json(&body);
        }
        let resp = rb
            .send()
            .await
            .with_context(|| format!("{method} {endpoint}"))?;
        let status = resp.status();
        anyhow::Ok((status, resp.text().await?))
    })?;
    let v = api_answer(status, &text).with_context(|| url.to_string())?;
    Ok(match request {
        Request::Change(_) => outcome_output(serde_json::from_value(v)?),
        _ => Some(pretty(&v)),
    })
}
