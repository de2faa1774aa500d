//! `berth image trust show|set`: podman's view and editor of `policy.json`. The file's
//! rules live in berth-containers-config; key identities are read by berth-signature
//! (podman runs `gpg2` for them; berth needs no GnuPG).

use std::path::PathBuf;

use anyhow::Context;
use base64::Engine;
use berth_containers_config::policy::{self, KeySource, TrustType};
use berth_containers_config::{Env, Policy, RegistriesD};
use clap::{Args, Subcommand};

/// `berth image trust …`, as `podman image trust …`.
#[derive(Subcommand)]
#[command(defer = true)]
pub enum TrustCommand {
    /// Display the trust policy: one row per requirement.
    Show(ShowArgs),
    /// Set the default trust policy, or the policy of a registry or repository.
    Set(SetArgs),
}

#[derive(Args)]
pub struct ShowArgs {
    /// Output as JSON.
    #[arg(short = 'j', long)]
    json: bool,
    /// Do not print column headings.
    #[arg(short = 'n', long)]
    noheading: bool,
    /// Output the raw policy file.
    #[arg(long)]
    raw: bool,
    /// The policy file [default: ~/.config/containers/policy.json if it exists, else
    /// /etc/containers/policy.json].
    #[arg(long, value_name = "FILE")]
    policypath: Option<PathBuf>,
    /// The registries.d folder whose lookaside locations the STORE column shows.
    #[arg(long, value_name = "DIR")]
    registrypath: Option<PathBuf>,
    /// Accepted as podman 4.3 accepts it; every scope is shown.
    #[arg(value_name = "REGISTRY")]
    registry: Option<String>,
}

#[derive(Args)]
pub struct SetArgs {
    /// accept, reject, signedBy or sigstoreSigned.
    #[arg(short = 't', long = "type", default_value = "signedBy")]
    trust_type: String,
    /// A public key file to trust (one requirement each: the image must be signed by
    /// every file's key); signedBy and sigstoreSigned need at least one.
    #[arg(short = 'f', long = "pubkeysfile", value_name = "FILE")]
    keys: Vec<String>,
    /// The policy file to change.
    #[arg(long, value_name = "FILE")]
    policypath: Option<PathBuf>,
    /// `default`, or a registry, namespace or repository (`quay.io`, `quay.io/org`).
    #[arg(value_name = "REGISTRY")]
    scope: String,
}

pub fn run(cmd: TrustCommand) -> anyhow::Result<()> {
    let env = Env::from_process();
    match cmd {
        TrustCommand::Show(args) => show(&env, args),
        TrustCommand::Set(args) => set(&env, args),
    }
}

fn show(env: &Env, args: ShowArgs) -> anyhow::Result<()> {
    let path = args.policypath.unwrap_or_else(|| Policy::default_path(env));
    let bytes = std::fs::read(&path)
        .with_context(|| format!("unable to read policy file {}", path.display()))?;
    if args.raw {
        println!("{}", String::from_utf8_lossy(&bytes));
        return Ok(());
    }
    let registries_d = RegistriesD::load(env, args.registrypath.as_deref())?;
    let rows = policy::describe(&bytes, &registries_d, &key_identities)
        .with_context(|| format!("could not parse trust policies from {}", path.display()))?;
    if args.json {
        println!("{}", berth_image::inspect::to_go_json_indented(&rows, "  "));
        return Ok(());
    }
    let mut table = Vec::with_capacity(rows.len() + 1);
    if !args.noheading {
        table.push(
            ["TRANSPORT", "NAME", "TYPE", "ID", "STORE"]
                .map(String::from)
                .to_vec(),
        );
    }
    for r in rows {
        table.push(vec![r.transport, r.repo_name, r.kind, r.id, r.store]);
    }
    print!("{}", super::table::render(&table));
    Ok(())
}

fn set(env: &Env, args: SetArgs) -> anyhow::Result<()> {
    let trust_type: TrustType = args.trust_type.parse()?;
    let path = args.policypath.unwrap_or_else(|| Policy::default_path(env));
    let existing = match std::fs::read(&path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let new = policy::set_trust(existing.as_deref(), &args.scope, trust_type, &args.keys)?;
    // What is written must still be a policy every reader accepts.
    Policy::from_slice(&new, &path)?;
    policy::write_policy(&path, &new).with_context(|| format!("writing {}", path.display()))
}

/// The ID column: the addresses of a key file's user IDs, as podman shows them. A file
/// that cannot be read shows nothing, as podman does when `gpg2` fails.
fn key_identities(key: KeySource) -> Vec<String> {
    let bytes = match key {
        KeySource::Path(p) => std::fs::read(p).ok(),
        KeySource::Data(d) => base64::engine::general_purpose::STANDARD.decode(d).ok(),
    };
    bytes
        .and_then(|b| berth_signature::Keyring::from_bytes(&b).ok())
        .map(|ring| {
            ring.user_ids()
                .iter()
                .map(|u| policy::user_id_label(u))
                .collect()
        })
        .unwrap_or_default()
}
