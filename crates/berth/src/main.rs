//! The `berth` command: a thin composition of the library crates.
//!
//! Exit status, as skopeo: 0 success, 1 any error, 2 the image (or repository) does
//! not exist. Data goes to stdout; errors are one line on stderr.

mod admin;
mod client;
mod paths;
mod serve;
mod tls;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "A container image registry and image tool"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registry (OCI Distribution Spec v1.1, Docker Registry API v2).
    Serve(serve::ServeArgs),
    /// Administer a registry: users, organizations, teams, robots, grants, visibility.
    Registry(admin::RegistryArgs),
    /// Show an image's digest, tags, platform, layers, labels (skopeo inspect's JSON).
    Inspect(client::images::InspectArgs),
    /// List a repository's tags.
    ListTags(client::images::ListTagsArgs),
    /// Copy an image between places: docker://, oci:, oci-archive:, dir:, docker-archive:.
    Copy(client::copy::CopyArgs),
    /// Copy whole repositories (every tag) to a registry or folders, skipping what is there.
    Sync(client::sync::SyncArgs),
    /// Delete a tag (where the registry allows it) or an image's manifest.
    Delete(client::images::DeleteArgs),
    /// Print the digest of a manifest file.
    ManifestDigest(client::images::ManifestDigestArgs),
    /// Pull an image into the local store; prints its image ID.
    Pull(client::local::PullArgs),
    /// List the images in the local store.
    Images(client::local::ImagesArgs),
    /// Check credentials against a registry and save them in auth.json.
    Login(client::login::LoginArgs),
    /// Remove saved credentials.
    Logout(client::login::LogoutArgs),
}

/// Exit status 2: what was asked for does not exist.
const NOT_FOUND: u8 = 2;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Registry(args) => admin::run(args),
        Command::Inspect(args) => client::images::inspect(args),
        Command::ListTags(args) => client::images::list_tags(args),
        Command::Copy(args) => client::copy::run(args),
        Command::Sync(args) => client::sync::run(args),
        Command::Delete(args) => client::images::delete(args),
        Command::ManifestDigest(args) => client::images::manifest_digest(args),
        Command::Pull(args) => client::local::pull(args),
        Command::Images(args) => client::local::images(args),
        Command::Login(args) => client::login::login(args),
        Command::Logout(args) => client::login::logout(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth: {e:#}");
            let not_found = e.chain().any(|c| {
                c.downcast_ref::<berth_remote::RemoteError>()
                    .is_some_and(|r| r.is_not_found())
                    || c.downcast_ref::<berth_transport::TransportError>()
                        .is_some_and(|t| t.is_not_found())
            });
            if not_found {
                std::process::ExitCode::from(NOT_FOUND)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}
