//! The `berth` command: a thin composition of the library crates.
//!
//! Exit status, as skopeo: 0 success, 1 any error, 2 the image (or repository) does
//! not exist. Data goes to stdout; errors are one line on stderr.

mod admin;
mod client;
mod paths;
mod serve;
mod tls;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "A container image registry and image tool"
)]
struct Cli {
    /// Where berth keeps its data: the local image store for the image commands
    /// [env: BERTH_STORAGE_ROOT=; default: ~/.local/share/containers/berth, as root
    /// /var/lib/containers/berth], the registry's data for `serve` and `registry`
    /// [env: BERTH_ROOT=; default: ~/.local/share/berth/registry, as root
    /// /var/lib/berth/registry]
    #[arg(long, global = true, value_name = "DIR")]
    root: Option<std::path::PathBuf>,
    /// Print debug messages on stderr (for serve: --log-level debug)
    #[arg(long, global = true)]
    debug: bool,
    #[command(subcommand)]
    command: Command,
}

/// The commands. Each one's flags are built only when it runs (`defer`): building
/// every command's flags took about a third of `berth --version` and of the start of
/// each short command (`sign_200` runs 200 of them). One consequence: a doc comment
/// on a command's flags struct, or on flags it flattens, would become the command's
/// `about` in place of its own, so those structs carry plain comments (a test below
/// checks).
#[derive(Subcommand)]
#[command(defer = true)]
enum Command {
    /// Run the registry (OCI Distribution Spec v1.1, Docker Registry API v2).
    Serve(serve::ServeArgs),
    /// Administer a registry: users, organizations, teams, robots, grants, visibility.
    Registry(admin::RegistryArgs),
    /// Show an image's digest, tags, platform, layers, labels (skopeo inspect's JSON; a
    /// bare name is a local image, shown as podman does).
    Inspect(client::images::InspectArgs),
    /// List a repository's tags.
    ListTags(client::images::ListTagsArgs),
    /// Copy an image between places: docker://, oci:, oci-archive:, dir:, docker-archive:,
    /// local: (berth's store).
    Copy(client::copy::CopyArgs),
    /// Copy whole repositories (every tag) to a registry or folders, skipping what is there.
    Sync(client::sync::SyncArgs),
    /// Delete a tag (where the registry allows it) or an image's manifest.
    Delete(client::images::DeleteArgs),
    /// Print the digest of a manifest file.
    ManifestDigest(client::images::ManifestDigestArgs),
    /// Write an image's software bill of materials (SPDX 2.3 or CycloneDX 1.5 JSON) from
    /// its layers; --attach stores it in the registry as a referrer of the image.
    Sbom(client::sbom::SbomArgs),
    /// Sign a manifest file as an image reference (skopeo's simple signing): the
    /// signature to a file.
    StandaloneSign(client::sign::StandaloneSignArgs),
    /// Verify a signature file for a manifest file, an image reference and a key.
    StandaloneVerify(client::sign::StandaloneVerifyArgs),
    /// Make a sigstore key pair: PREFIX.pub, and PREFIX.private sealed by a passphrase.
    GenerateSigstoreKey(client::sign::GenerateSigstoreKeyArgs),
    /// Pull an image into the local store; prints its image ID.
    Pull(client::local::pull::PullArgs),
    /// Push an image of the local store to a registry (or any transport).
    Push(client::local::push::PushArgs),
    /// List the images in the local store.
    Images(client::local::list::ImagesArgs),
    /// Give an image of the local store more names.
    Tag(client::local::remove::TagArgs),
    /// Remove names from an image of the local store (all, without names).
    Untag(client::local::remove::UntagArgs),
    /// Remove images from the local store (one of several names: only that name).
    Rmi(client::local::remove::RmiArgs),
    /// Show how an image was built, newest step first.
    History(client::local::inspect::HistoryArgs),
    /// Write images to an archive (docker-archive, oci-archive) or folder.
    Save(client::local::archive::SaveArgs),
    /// Read images from an archive or folder into the local store.
    Load(client::local::archive::LoadArgs),
    /// Build an image from a Containerfile.
    Build(client::build::BuildArgs),
    /// Create a container from an image (its file system, not yet running); prints its ID.
    #[command(disable_help_flag = true)]
    Create(client::containers::CreateArgs),
    /// Create and run a container (in the foreground, or -d in the background).
    #[command(disable_help_flag = true)]
    Run(client::containers::RunArgs),
    /// Start containers in the background.
    Start(client::containers::StartArgs),
    /// List containers (-a: also those not running).
    Ps(client::containers::PsArgs),
    /// Run a command in a running container.
    Exec(client::containers::ExecArgs),
    /// Stop running containers.
    Stop(client::containers::StopArgs),
    /// Remove containers.
    Rm(client::containers::RmArgs),
    /// Make an image of a container's changes.
    Commit(client::containers::CommitArgs),
    /// Print the path of a container's file system.
    Mount(client::containers::MountArgs),
    /// Write a container's file system as a tar.
    Export(client::containers::ExportArgs),
    /// Make a one-layer image of a file-system tar.
    Import(client::containers::ImportArgs),
    /// Print what a detached container wrote.
    Logs(client::containers::LogsArgs),
    /// (internal) Run a detached container and record its exit.
    #[command(hide = true)]
    ContainerMonitor(client::containers::MonitorArgs),
    /// Manage the images of the local store (podman's `image` commands).
    #[command(subcommand)]
    Image(ImageCommand),
    /// Manage containers (podman's `container` commands).
    #[command(subcommand)]
    Container(ContainerCommand),
    /// Search registries for images.
    Search(client::search::SearchArgs),
    /// Check credentials against a registry and save them in auth.json.
    Login(client::login::LoginArgs),
    /// Remove saved credentials.
    Logout(client::login::LogoutArgs),
}

/// `berth image …`, as `podman image …`.
#[derive(Subcommand)]
#[command(defer = true)]
enum ImageCommand {
    /// List images.
    #[command(alias = "list")]
    Ls(client::local::list::ImagesArgs),
    /// Show images' details (podman's JSON).
    Inspect(client::local::inspect::ImageInspectArgs),
    /// Remove images.
    Rm(client::local::remove::RmiArgs),
    /// Remove dangling images (with -a: every image no container uses).
    Prune(client::local::remove::PruneArgs),
    /// Give an image more names.
    Tag(client::local::remove::TagArgs),
    /// Remove names from an image.
    Untag(client::local::remove::UntagArgs),
    /// Show how an image was built.
    History(client::local::inspect::HistoryArgs),
    /// Pull an image.
    Pull(client::local::pull::PullArgs),
    /// Push an image.
    Push(client::local::push::PushArgs),
    /// Write images to an archive.
    Save(client::local::archive::SaveArgs),
    /// Read images from an archive.
    Load(client::local::archive::LoadArgs),
    /// Show or change the trust policy (policy.json).
    #[command(subcommand)]
    Trust(client::trust::TrustCommand),
}

impl Command {
    /// Works on the local store alone (no registry, no server).
    fn is_local_only(&self) -> bool {
        matches!(
            self,
            Command::Images(_)
                | Command::Tag(_)
                | Command::Untag(_)
                | Command::Rmi(_)
                | Command::History(_)
                | Command::Save(_)
                | Command::Load(_)
                | Command::ManifestDigest(_)
                | Command::Ps(_)
                | Command::Mount(_)
                | Command::Export(_)
                | Command::Logs(_)
                | Command::Container(
                    ContainerCommand::Ls(_)
                        | ContainerCommand::Mount(_)
                        | ContainerCommand::Export(_)
                        | ContainerCommand::Logs(_)
                        | ContainerCommand::Inspect(_)
                )
                | Command::Image(
                    ImageCommand::Ls(_)
                        | ImageCommand::Inspect(_)
                        | ImageCommand::Rm(_)
                        | ImageCommand::Prune(_)
                        | ImageCommand::Tag(_)
                        | ImageCommand::Untag(_)
                        | ImageCommand::History(_)
                        | ImageCommand::Save(_)
                        | ImageCommand::Load(_)
                )
        )
    }
}

/// `berth container …`, as `podman container …`.
#[derive(Subcommand)]
#[command(defer = true)]
enum ContainerCommand {
    /// List containers.
    #[command(alias = "list", alias = "ps")]
    Ls(client::containers::PsArgs),
    /// Create a container.
    #[command(disable_help_flag = true)]
    Create(client::containers::CreateArgs),
    /// Create and run a container.
    #[command(disable_help_flag = true)]
    Run(client::containers::RunArgs),
    /// Start containers.
    Start(client::containers::StartArgs),
    /// Stop containers.
    Stop(client::containers::StopArgs),
    /// Remove containers.
    Rm(client::containers::RmArgs),
    /// Run a command in a running container.
    Exec(client::containers::ExecArgs),
    /// Make an image of a container's changes.
    Commit(client::containers::CommitArgs),
    /// Print the path of a container's file system.
    Mount(client::containers::MountArgs),
    /// Write a container's file system as a tar.
    Export(client::containers::ExportArgs),
    /// Print what a detached container wrote.
    Logs(client::containers::LogsArgs),
    /// Show containers' details (podman's JSON).
    Inspect(client::containers::ContainerInspectArgs),
}

/// Exit status 2 (skopeo's commands): what was asked for does not exist.
const NOT_FOUND: u8 = 2;

/// Whose exit statuses a command keeps.
#[derive(Clone, Copy, PartialEq)]
enum Family {
    /// skopeo and the server: 1 for an error, 2 for something that does not exist.
    Skopeo,
    /// podman's image commands: 125 for any error.
    Podman,
}

/// The subcommands that keep podman's exit statuses (the others keep skopeo's).
const PODMAN_STYLE: &[&str] = &[
    "pull",
    "push",
    "images",
    "tag",
    "untag",
    "rmi",
    "history",
    "save",
    "load",
    "build",
    "create",
    "run",
    "start",
    "ps",
    "exec",
    "stop",
    "rm",
    "commit",
    "mount",
    "export",
    "import",
    "logs",
    "image",
    "container",
    "search",
];

/// A command line clap refused, with clap's message: help and version exit 0; a
/// usage error of a podman-style command 125 as podman's, of the others 1 as
/// skopeo's (2 means "the image does not exist" there: a script must not read a
/// typo as that).
fn usage_error(e: clap::Error) -> ExitCode {
    let _ = e.print();
    if !e.use_stderr() {
        return ExitCode::SUCCESS;
    }
    // The subcommand: the first word that is not a global flag (or --root's value).
    let mut args = std::env::args().skip(1);
    let mut command = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--root" => {
                args.next();
            }
            a if a.starts_with('-') => {}
            a => {
                command = Some(a.to_string());
                break;
            }
        }
    }
    match command.as_deref() {
        Some(c) if PODMAN_STYLE.contains(&c) => ExitCode::from(client::local::PODMAN_ERROR),
        _ => ExitCode::from(1),
    }
}

/// Output whose reader went away (`berth inspect x | head -3`) ends the command
/// quietly, with the status a shell reports for SIGPIPE, instead of a panic message
/// and a backtrace from `println!`: the panic is silent and unwinds to `main`, which
/// exits 141. For every command: those with network I/O keep SIGPIPE ignored (a
/// closed socket is an error to handle), so their prints panic instead.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !closed_stdout(info.payload()) {
            default(info)
        }
    }));
}

/// Whether a panic is `println!`'s on a stdout whose reader went away.
fn closed_stdout(payload: &(dyn std::any::Any + Send)) -> bool {
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("");
    message.starts_with("failed printing to stdout") && message.contains("Broken pipe")
}

/// Runs `command`: which family's conventions its errors follow, and its outcome.
fn dispatch(command: Command, debug: bool) -> (Family, anyhow::Result<ExitCode>) {
    use client::local::{archive, inspect, list, pull, push, remove};
    let podman = |r: anyhow::Result<()>| (Family::Podman, r.map(|()| ExitCode::SUCCESS));
    let skopeo = |r: anyhow::Result<()>| (Family::Skopeo, r.map(|()| ExitCode::SUCCESS));
    match command {
        Command::Serve(args) => skopeo(serve::run(args, debug)),
        Command::Registry(args) => skopeo(admin::run(args)),
        Command::Inspect(args) => match args.local() {
            Some(local) => podman(client::containers::inspect_any(local)),
            None => skopeo(client::images::inspect(args)),
        },
        Command::ListTags(args) => skopeo(client::images::list_tags(args)),
        Command::Copy(args) => skopeo(client::copy::run(args)),
        Command::Sync(args) => skopeo(client::sync::run(args)),
        Command::Delete(args) => skopeo(client::images::delete(args)),
        Command::ManifestDigest(args) => skopeo(client::images::manifest_digest(args)),
        Command::Sbom(args) => skopeo(client::sbom::run(args)),
        Command::StandaloneSign(args) => skopeo(client::sign::standalone_sign(args)),
        Command::StandaloneVerify(args) => skopeo(client::sign::standalone_verify(args)),
        Command::GenerateSigstoreKey(args) => skopeo(client::sign::generate_sigstore_key(args)),
        Command::Login(args) => skopeo(client::login::login(args)),
        Command::Logout(args) => skopeo(client::login::logout(args)),
        Command::Pull(args) | Command::Image(ImageCommand::Pull(args)) => podman(pull::run(args)),
        Command::Push(args) | Command::Image(ImageCommand::Push(args)) => podman(push::run(args)),
        Command::Images(args) | Command::Image(ImageCommand::Ls(args)) => podman(list::run(args)),
        Command::Tag(args) | Command::Image(ImageCommand::Tag(args)) => podman(remove::tag(args)),
        Command::Untag(args) | Command::Image(ImageCommand::Untag(args)) => {
            podman(remove::untag(args))
        }
        Command::Rmi(args) | Command::Image(ImageCommand::Rm(args)) => {
            (Family::Podman, remove::rmi(args))
        }
        Command::History(args) | Command::Image(ImageCommand::History(args)) => {
            podman(inspect::history(args))
        }
        Command::Save(args) | Command::Image(ImageCommand::Save(args)) => {
            podman(archive::save(args))
        }
        Command::Load(args) | Command::Image(ImageCommand::Load(args)) => {
            podman(archive::load(args))
        }
        Command::Image(ImageCommand::Inspect(args)) => podman(inspect::image_inspect(args)),
        Command::Image(ImageCommand::Prune(args)) => podman(remove::prune(args)),
        Command::Image(ImageCommand::Trust(cmd)) => podman(client::trust::run(cmd)),
        Command::Search(args) => podman(client::search::run(args)),
        Command::Build(args) => podman(client::build::run(args)),
        Command::Create(args) | Command::Container(ContainerCommand::Create(args)) => {
            podman(client::containers::create(args))
        }
        Command::Run(args) | Command::Container(ContainerCommand::Run(args)) => {
            (Family::Podman, client::containers::run(args))
        }
        Command::Start(args) | Command::Container(ContainerCommand::Start(args)) => {
            (Family::Podman, client::containers::start(args))
        }
        Command::Ps(args) | Command::Container(ContainerCommand::Ls(args)) => {
            podman(client::containers::ps(args))
        }
        Command::Exec(args) | Command::Container(ContainerCommand::Exec(args)) => {
            (Family::Podman, client::containers::exec(args))
        }
        Command::Stop(args) | Command::Container(ContainerCommand::Stop(args)) => {
            podman(client::containers::stop(args))
        }
        Command::Rm(args) | Command::Container(ContainerCommand::Rm(args)) => {
            (Family::Podman, client::containers::rm(args))
        }
        Command::Commit(args) | Command::Container(ContainerCommand::Commit(args)) => {
            podman(client::containers::commit(args))
        }
        Command::Mount(args) | Command::Container(ContainerCommand::Mount(args)) => {
            podman(client::containers::mount(args))
        }
        Command::Export(args) | Command::Container(ContainerCommand::Export(args)) => {
            podman(client::containers::export(args))
        }
        Command::Import(args) => podman(client::containers::import(args)),
        Command::Logs(args) | Command::Container(ContainerCommand::Logs(args)) => {
            podman(client::containers::logs(args))
        }
        Command::Container(ContainerCommand::Inspect(args)) => {
            podman(client::containers::container_inspect(args))
        }
        Command::ContainerMonitor(args) => {
            (Family::Podman, client::containers::container_monitor(args))
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    if let Some(root) = cli.root {
        paths::set_root(root);
    }
    if cli.debug && !matches!(cli.command, Command::Serve(_)) {
        if let Err(e) = serve::debug_logging() {
            eprintln!("berth: {e:#}");
        }
    }
    quiet_on_closed_stdout();
    if cli.command.is_local_only() {
        // A listing whose reader went away (`berth images | head`) ends quietly, as
        // other command-line tools do, instead of panicking on a failed print. Only
        // for commands without network I/O: a socket closed by a peer must stay an
        // error to handle, not a signal that kills.
        // SAFETY: setting a signal's disposition to its default, before any thread.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    // A closed stdout unwinds (destructors run: temporary folders, locks) to here.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        dispatch(cli.command, cli.debug)
    }));
    let (family, result) = match outcome {
        Ok(done) => done,
        Err(payload) if closed_stdout(payload.as_ref()) => return ExitCode::from(141),
        Err(payload) => std::panic::resume_unwind(payload),
    };
    match result {
        Ok(code) => code,
        Err(e) if family == Family::Podman => {
            eprintln!("Error: {}", one_line(&e));
            ExitCode::from(client::local::PODMAN_ERROR)
        }
        Err(e) => {
            eprintln!("berth: {}", one_line(&e));
            let not_found = e.chain().any(|c| {
                c.downcast_ref::<berth_remote::RemoteError>()
                    .is_some_and(|r| r.is_not_found())
                    || c.downcast_ref::<berth_transport::TransportError>()
                        .is_some_and(|t| t.is_not_found())
            });
            if not_found {
                ExitCode::from(NOT_FOUND)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// An error and its causes on one line, each cause once: error types that say their
/// cause and also give it as their source (thiserror's `{context}: {source}` with
/// `#[source]`) made `{:#}` print it again at every level, a message of 912 bytes
/// saying one refused connection three times. A cause the one before it ends with
/// adds nothing.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    let mut said = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        // Only the cause just said can already hold this one, at its end (its
        // `…: {source}`): a short, different cause ("EOF") that happens to be in an
        // earlier message is still said.
        if text.is_empty() || said.ends_with(&text) {
            said = text;
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
        said = text;
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn each_cause_is_said_once() {
        /// Says its cause and gives it as its source, as thiserror's
        /// `#[error("…: {source}")]` does.
        #[derive(Debug)]
        struct Reaching {
            source: std::io::Error,
        }
        impl std::fmt::Display for Reaching {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "reaching s3://b: {}", self.source)
            }
        }
        impl std::error::Error for Reaching {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.source)
            }
        }
        let io = std::io::Error::other("connection refused");
        let e = anyhow::Error::new(Reaching { source: io }).context("opening the object store");
        assert_eq!(
            one_line(&e),
            "opening the object store: reaching s3://b: connection refused"
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(one_line(&plain), "outer: inner");
        // A short cause that only happens to be in an earlier, other message is said.
        let eof = anyhow::anyhow!("EOF")
            .context("reading the EOF marker")
            .context("loading");
        assert_eq!(one_line(&eof), "loading: reading the EOF marker: EOF");
    }

    /// Each command's flags are built only when it runs: building them must leave the
    /// command's own description (what its parent lists) as it was, which a doc comment
    /// on flattened flags would replace.
    #[test]
    fn building_a_command_keeps_its_description() {
        fn check(cmd: &mut clap::Command, path: &str) {
            let listed: Vec<(String, Option<String>)> = cmd
                .get_subcommands()
                .map(|c| (c.get_name().into(), c.get_about().map(|a| a.to_string())))
                .collect();
            for (sub, (name, about)) in cmd.get_subcommands_mut().zip(listed) {
                let _ = sub.render_help();
                let path = format!("{path} {name}");
                assert_eq!(sub.get_about().map(|a| a.to_string()), about, "{path}");
                check(sub, &path);
            }
        }
        let mut cli = Cli::command();
        cli.clone().debug_assert();
        check(&mut cli, "berth");
    }
}
