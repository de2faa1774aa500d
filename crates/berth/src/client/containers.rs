//! The podman-style container commands: create, run, start, ps, exec, stop, rm,
//! commit, mount, export, import (berth-runtime does the work).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use berth_runtime::{Containers, CreateOptions, ImageOptions, Runtime, Status};
use berth_transport::local::ContainerRecord;
use clap::Args;
use serde_json::json;

use super::local::{ago, open_store, qualify};

// What to run and how, for create, run and exec.
// (A plain comment, not a doc comment: see `Command` in main.rs.)
#[derive(Args, Debug)]
pub struct ProcessFlags {
    /// Set an environment variable (K=V, or K to take berth's own)
    #[arg(long, short = 'e', value_name = "K=V")]
    env: Vec<String>,
    /// Working directory inside the container
    #[arg(long, short = 'w', value_name = "DIR")]
    workdir: Option<String>,
    /// Run as USER[:GROUP] (names from the container's /etc/passwd, or numbers)
    #[arg(long, short = 'u', value_name = "USER")]
    user: Option<String>,
}

// The OCI runtime to use.
// (A plain comment, not a doc comment: see `Command` in main.rs.)
#[derive(Args, Debug)]
pub struct RuntimeFlag {
    /// OCI runtime: a name on PATH (crun, runc) or a path [default: crun, else runc]
    #[arg(long, value_name = "RUNTIME")]
    runtime: Option<String>,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Print help (`-h` is --hostname here, as podman has it)
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Container name [default: a generated adjective_surname]
    #[arg(long)]
    name: Option<String>,
    /// The container's host name [default: its short ID]
    #[arg(long, short = 'h', value_name = "NAME")]
    hostname: Option<String>,
    /// Replace the image's ENTRYPOINT: a JSON array or one command ('' clears it)
    #[arg(long, value_name = "CMD")]
    entrypoint: Option<String>,
    #[command(flatten)]
    process: ProcessFlags,
    /// Read environment variables from a file: KEY=VALUE lines ('#' comments and
    /// blank lines skipped; KEY alone takes berth's own), before -e
    #[arg(long, value_name = "FILE")]
    env_file: Vec<PathBuf>,
    /// Bind-mount a host path into the container: SOURCE:DEST[:ro|rw]
    #[arg(long, short = 'v', value_name = "SOURCE:DEST[:OPTIONS]")]
    volume: Vec<String>,
    /// A line of /etc/hosts, NAME:IP; repeatable
    #[arg(long, value_name = "NAME:IP")]
    add_host: Vec<String>,
    /// Mount an empty tmpfs at PATH (OPTIONS as mount's: size=64m,mode=1777); repeatable
    #[arg(long, value_name = "PATH[:OPTIONS]")]
    tmpfs: Vec<String>,
    /// Add Linux capabilities to podman's default set: NAME or CAP_NAME (any case,
    /// comma-separated), or ALL; repeatable
    #[arg(long, value_name = "CAP")]
    cap_add: Vec<String>,
    /// Drop Linux capabilities from the container's set: NAME, CAP_NAME or ALL;
    /// repeatable
    #[arg(long, value_name = "CAP")]
    cap_drop: Vec<String>,
    /// The network: berth's containers share the host's (`host`, the only mode)
    #[arg(long, alias = "net", value_name = "MODE")]
    network: Option<String>,
    /// Publish a port (refused: the container's ports are the host's already)
    #[arg(long, short = 'p', value_name = "PORTS")]
    publish: Vec<String>,
    /// Keep stdin open: the container reads berth's stdin (else /dev/null)
    #[arg(long, short = 'i')]
    interactive: bool,
    /// Give the container a terminal (not supported yet)
    #[arg(long, short = 't')]
    tty: bool,
    /// Require HTTPS and verify certificates when pulling the image (false also
    /// allows plain HTTP), as `pull --tls-verify`
    #[arg(long, value_name = "BOOL", default_missing_value = "true", num_args = 0..=1, action = clap::ArgAction::Set)]
    tls_verify: Option<bool>,
    /// Trust policy for pulling the image [default: policy.json's usual place]
    #[arg(long, value_name = "PATH")]
    signature_policy: Option<std::path::PathBuf>,
    /// The image: name, ID or ID prefix
    image: String,
    /// Command and arguments, replacing the image's CMD
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Remove the container when it exits
    #[arg(long)]
    rm: bool,
    /// Run in the background; print the container ID
    #[arg(long, short = 'd')]
    detach: bool,
    #[command(flatten)]
    runtime: RuntimeFlag,
    #[command(flatten)]
    create: CreateArgs,
}

#[derive(Args, Debug)]
pub struct StartArgs {
    #[command(flatten)]
    runtime: RuntimeFlag,
    /// Containers: name, ID or ID prefix
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Every container, not only running ones
    #[arg(long, short = 'a')]
    all: bool,
    /// Only the IDs
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Full IDs
    #[arg(long)]
    no_trunc: bool,
    /// json, or a Go template over .ID .Image .Command .CreatedHuman .Status .Names
    /// (`table …` adds a header)
    #[arg(long, value_name = "FORMAT")]
    format: Option<String>,
    #[command(flatten)]
    runtime: RuntimeFlag,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Keep stdin open: the process reads berth's stdin (else /dev/null)
    #[arg(long, short = 'i')]
    interactive: bool,
    /// Give the process a terminal (not supported yet)
    #[arg(long, short = 't')]
    tty: bool,
    #[command(flatten)]
    process: ProcessFlags,
    #[command(flatten)]
    runtime: RuntimeFlag,
    /// The container: name, ID or ID prefix
    container: String,
    /// Command and arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait after the stop signal before SIGKILL
    #[arg(long, short = 't', default_value_t = 10)]
    time: u64,
    /// Every running container
    #[arg(long, short = 'a', conflicts_with = "containers")]
    all: bool,
    #[command(flatten)]
    runtime: RuntimeFlag,
    /// Containers: name, ID or ID prefix
    #[arg(required_unless_present = "all")]
    containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Remove running containers too (killed first)
    #[arg(long, short = 'f')]
    force: bool,
    /// Every container
    #[arg(long, short = 'a')]
    all: bool,
    /// Say nothing of containers that are not there
    #[arg(long, short = 'i')]
    ignore: bool,
    #[command(flatten)]
    runtime: RuntimeFlag,
    /// Containers: name, ID or ID prefix
    containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct CommitArgs {
    /// A Dockerfile instruction to apply to the config (CMD, ENTRYPOINT, ENV, EXPOSE,
    /// LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR); repeatable
    #[arg(long, short = 'c', value_name = "INSTRUCTION")]
    change: Vec<String>,
    /// History comment
    #[arg(long, short = 'm')]
    message: Option<String>,
    /// Author
    #[arg(long, short = 'a')]
    author: Option<String>,
    /// Image format: oci or docker
    #[arg(long, short = 'f', default_value = "oci", value_parser = ["oci", "docker"])]
    format: String,
    /// Print nothing but the image ID (all berth prints; accepted as podman's)
    #[arg(long, short = 'q')]
    _quiet: bool,
    /// The container: name, ID or ID prefix
    container: String,
    /// Name for the new image [default: none, untagged]
    image: Option<String>,
}

#[derive(Args, Debug)]
pub struct MountArgs {
    /// The container: name, ID or ID prefix
    container: String,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Write to this file [default: stdout]
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// The container: name, ID or ID prefix
    container: String,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// A Dockerfile instruction to apply to the config; repeatable
    #[arg(long, short = 'c', value_name = "INSTRUCTION")]
    change: Vec<String>,
    /// History comment [default: imported from tarball]
    #[arg(long, short = 'm')]
    message: Option<String>,
    /// Print nothing but the image ID (all berth prints; accepted as podman's)
    #[arg(long, short = 'q')]
    _quiet: bool,
    /// A tar of a file system, or - for stdin
    file: String,
    /// Name for the image [default: none, untagged]
    reference: Option<String>,
}

// `berth container-monitor ID`: runs a detached container in the foreground of a
// process of its own, so that its exit code is recorded (podman's conmon).
// (A plain comment, not a doc comment: see `Command` in main.rs.)
#[derive(Args, Debug)]
pub struct MonitorArgs {
    #[command(flatten)]
    runtime: RuntimeFlag,
    /// Remove the container when it exits (`run -d --rm`)
    #[arg(long)]
    rm: bool,
    id: String,
}

fn containers() -> anyhow::Result<Containers> {
    Ok(Containers::new(open_store()?).with_tar_limits(super::local::tar_limits()?))
}

fn runtime(flag: &RuntimeFlag, c: &Containers) -> anyhow::Result<Runtime> {
    Ok(Runtime::find(flag.runtime.as_deref(), c.store().root())?)
}

fn create_options(a: &CreateArgs) -> anyhow::Result<CreateOptions> {
    refuse_unsupported(a)?;
    let entrypoint = match &a.entrypoint {
        None => None,
        Some(e) if e.trim_start().starts_with('[') => Some(
            serde_json::from_str::<Vec<String>>(e)
                .with_context(|| format!("--entrypoint {e:?}: not a JSON array of strings"))?,
        ),
        Some(e) if e.is_empty() => Some(Vec::new()),
        Some(e) => Some(vec![e.clone()]),
    };
    let mut env = Vec::new();
    for file in &a.env_file {
        env.extend(read_env_file(file)?);
    }
    env.extend(a.process.env.iter().cloned());
    let binds = a
        .volume
        .iter()
        .map(|v| berth_runtime::Bind::parse(v))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CreateOptions {
        name: a.name.clone(),
        overrides: berth_runtime::Overrides {
            entrypoint,
            cmd: a.command.clone(),
            env,
            workdir: a.process.workdir.clone(),
            user: a.process.user.clone(),
            binds,
            hostname: a.hostname.clone(),
            add_hosts: a
                .add_host
                .iter()
                .map(|h| berth_runtime::parse_add_host(h))
                .collect::<Result<_, _>>()?,
            tmpfs: a
                .tmpfs
                .iter()
                .map(|t| berth_runtime::Tmpfs::parse(t))
                .collect::<Result<_, _>>()?,
            cap_add: a.cap_add.clone(),
            cap_drop: a.cap_drop.clone(),
        },
    })
}

/// The flags berth takes as podman's but cannot honour yet: one line each saying so,
/// before anything is made.
fn refuse_unsupported(a: &CreateArgs) -> anyhow::Result<()> {
    if let Some(n) = a.network.as_deref().filter(|n| *n != "host") {
        bail!("--network {n}: berth's containers share the host's network; only --network host is supported");
    }
    if let Some(p) = a.publish.first() {
        bail!("--publish {p}: berth's containers share the host's network (--network host), so ports are not published: a port the container listens on is the host's");
    }
    if a.tty {
        bail!("--tty: a terminal for the container is not supported yet; run without -t");
    }
    Ok(())
}

/// An `--env-file` as podman reads it: each line with leading blanks trimmed; blank
/// lines and `#` comments skipped; `KEY=VALUE` taken as it is (the value keeps its
/// spaces and any `=`); `KEY` alone takes berth's own value (none: skipped), `KEY*`
/// every variable of berth's starting so; `=VALUE` is an error.
pub fn read_env_file(path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let bad = |e: String| anyhow::anyhow!("parsing env file {:?}: {e}", path.display().to_string());
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim_start_matches([' ', '\t', '\r', '\n']);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some(("", _)) => return Err(bad(format!("invalid environment variable: {line:?}"))),
            Some(_) => out.push(line.to_string()),
            None => match line.strip_suffix('*') {
                Some(prefix) => out.extend(
                    std::env::vars()
                        .filter(|(k, _)| k.starts_with(prefix))
                        .map(|(k, v)| format!("{k}={v}")),
                ),
                None => out.extend(std::env::var(line).ok().map(|v| format!("{line}={v}"))),
            },
        }
    }
    Ok(out)
}

fn create_container(c: &Containers, a: &CreateArgs) -> anyhow::Result<ContainerRecord> {
    let options = create_options(a)?;
    // A missing image is pulled first, as podman's --pull=missing.
    let flags = super::RegistryFlags {
        tls_verify: a.tls_verify,
        signature_policy: a.signature_policy.clone(),
        ..Default::default()
    };
    let platform = berth_image::Platform::this_machine();
    super::local::pull::ensure_with(
        c.store(),
        &a.image,
        &platform,
        super::local::pull::PullPolicy::Missing,
        &flags,
    )?;
    let (image, matched) = c.store().find_named(&a.image)?;
    let shown = matched.unwrap_or_else(|| a.image.clone());
    Ok(c.create(&image, &shown, &options)?)
}

pub fn create(a: CreateArgs) -> anyhow::Result<()> {
    let c = containers()?;
    let record = create_container(&c, &a)?;
    println!("{}", record.id);
    Ok(())
}

/// The command that runs container `id` detached: this binary, same store.
fn monitor(
    c: &Containers,
    id: &str,
    runtime: &RuntimeFlag,
    rm: bool,
) -> anyhow::Result<std::process::Command> {
    let exe = std::env::current_exe().context("finding berth's own binary")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--root")
        .arg(c.store().root())
        .arg("container-monitor");
    if let Some(r) = &runtime.runtime {
        cmd.args(["--runtime", r]);
    }
    if rm {
        cmd.arg("--rm");
    }
    cmd.arg(id);
    Ok(cmd)
}

/// A container's exit code as berth's own, or the runtime's failure to start its
/// process as podman reports it (its message, 127 for a command not found, 126 for
/// one not executable); other errors go up.
fn exit_status(result: berth_runtime::Result<i32>) -> anyhow::Result<std::process::ExitCode> {
    match result {
        Ok(code) => Ok(std::process::ExitCode::from(code.clamp(0, 255) as u8)),
        Err(e @ berth_runtime::RuntimeError::Start { .. }) => {
            eprintln!("Error: {e}");
            Ok(std::process::ExitCode::from(e.exit_status()))
        }
        Err(e) => Err(e.into()),
    }
}

pub fn run(a: RunArgs) -> anyhow::Result<std::process::ExitCode> {
    let c = containers()?;
    // The runtime first: a machine without one learns it before anything is made.
    let rt = runtime(&a.runtime, &c)?;
    let record = create_container(&c, &a.create)?;
    let code = match a.detach {
        true => c
            .start(&record, &rt, monitor(&c, &record.id, &a.runtime, a.rm)?)
            .map(|()| 0),
        false => {
            let stdin = match a.create.interactive {
                true => std::process::Stdio::inherit(),
                false => std::process::Stdio::null(),
            };
            // The runtime in a group of its own, so that every signal reaches the
            // container once, through berth; not when it shares the terminal berth
            // reads (-i on a terminal: a background group reading it would be
            // stopped), where the terminal's own reach it directly.
            let shares_terminal = a.create.interactive && std::io::stdin().is_terminal();
            forward_signals(rt.clone(), record.id.clone(), !shares_terminal);
            c.run_attached(&record, &rt, stdin, !shares_terminal)
        }
    };
    if a.rm && (!a.detach || code.is_err()) {
        c.remove(&record, Some(&rt), true)?;
    }
    if a.detach && code.is_ok() {
        println!("{}", record.id);
    }
    exit_status(code)
}

/// While a container runs in the foreground, berth outlives the signals a terminal, a
/// `kill` or a service manager sends, as podman's `--sig-proxy`: SIGINT, SIGQUIT,
/// SIGTERM and SIGHUP are handed on with the runtime's `kill`; SIGINT and SIGQUIT
/// only when `interrupts` (else the runtime shares berth's terminal and process group,
/// and the terminal's reach it directly). berth then still relays what the container
/// says last, records its exit and, with `--rm`, removes it. Before, berth died of
/// them and the container ran on unwatched.
fn forward_signals(runtime: Runtime, id: String, interrupts: bool) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    else {
        return;
    };
    // Registered before the container starts: from here on, none of them ends berth.
    let registered = rt.block_on(async {
        Some([
            signal(SignalKind::interrupt()).ok()?,
            signal(SignalKind::quit()).ok()?,
            signal(SignalKind::terminate()).ok()?,
            signal(SignalKind::hangup()).ok()?,
        ])
    });
    let Some([mut int, mut quit, mut term, mut hup]) = registered else {
        return;
    };
    std::thread::spawn(move || {
        rt.block_on(async move {
            loop {
                let name = tokio::select! {
                    _ = int.recv() => "INT",
                    _ = quit.recv() => "QUIT",
                    _ = term.recv() => "TERM",
                    _ = hup.recv() => "HUP",
                };
                if !interrupts && matches!(name, "INT" | "QUIT") {
                    continue;
                }
                let _ = runtime.kill(&id, name);
            }
        })
    });
}

pub fn start(a: StartArgs) -> anyhow::Result<std::process::ExitCode> {
    let c = containers()?;
    let rt = runtime(&a.runtime, &c)?;
    for spec in &a.containers {
        let record = c.store().container(spec)?;
        let started = c.start(&record, &rt, monitor(&c, &record.id, &a.runtime, false)?);
        if started.is_err() {
            return exit_status(started.map(|()| 0));
        }
        println!("{spec}");
    }
    Ok(std::process::ExitCode::SUCCESS)
}

pub fn container_monitor(a: MonitorArgs) -> anyhow::Result<std::process::ExitCode> {
    let c = containers()?;
    let rt = runtime(&a.runtime, &c)?;
    let record = c.store().container(&a.id)?;
    let code = c.run_detached(&record, &rt);
    // `run -d --rm`: the container goes when it ends, as podman's does.
    if a.rm {
        c.remove(&record, Some(&rt), true)?;
    }
    exit_status(code)
}

pub fn exec(a: ExecArgs) -> anyhow::Result<std::process::ExitCode> {
    if a.tty {
        bail!("--tty: a terminal for the process is not supported yet; run without -t");
    }
    let c = containers()?;
    let rt = runtime(&a.runtime, &c)?;
    let record = c.store().container(&a.container)?;
    let code = c.exec(
        &record,
        &rt,
        &berth_runtime::Overrides {
            entrypoint: None,
            cmd: a.command,
            env: a.process.env,
            workdir: a.process.workdir,
            user: a.process.user,
            ..Default::default()
        },
        match a.interactive {
            true => std::process::Stdio::inherit(),
            false => std::process::Stdio::null(),
        },
    );
    exit_status(code)
}

pub fn stop(a: StopArgs) -> anyhow::Result<()> {
    let c = containers()?;
    let rt = runtime(&a.runtime, &c)?;
    if a.all {
        // As podman's stop -a: each running container, printed by its ID.
        for record in c.store().containers()? {
            if matches!(c.status(&record, Some(&rt)), Status::Running(_)) {
                c.stop(&record, &rt, Duration::from_secs(a.time))?;
                println!("{}", record.id);
            }
        }
        return Ok(());
    }
    for spec in &a.containers {
        let record = c.store().container(spec)?;
        c.stop(&record, &rt, Duration::from_secs(a.time))?;
        println!("{spec}");
    }
    Ok(())
}

pub fn rm(a: RmArgs) -> anyhow::Result<std::process::ExitCode> {
    if a.all && !a.containers.is_empty() {
        bail!("--all removes every container; give no names with it");
    }
    let c = containers()?;
    // Without a runtime nothing can be running: removing still works.
    let rt = runtime(&a.runtime, &c).ok();
    let mut records = Vec::new();
    let mut unknown = Vec::new();
    match a.all {
        true => records = c.store().containers()?,
        false => {
            for spec in &a.containers {
                match c.store().container(spec) {
                    Ok(r) => records.push(r),
                    Err(berth_transport::TransportError::Container(e)) => unknown.push(e),
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    // As podman: each container is tried; a running one (without -f) is an error
    // said and exit status 2, the others still go.
    let mut running = false;
    for record in records {
        match c.remove(&record, rt.as_ref(), a.force) {
            Ok(()) => println!("{}", record.id),
            Err(e @ berth_runtime::RuntimeError::Running(_)) => {
                eprintln!("Error: {e}");
                running = true;
            }
            Err(e) => return Err(e.into()),
        }
    }
    if running {
        return Ok(std::process::ExitCode::from(2));
    }
    // podman: missing containers are fine with -f or -i, else exit 1.
    if unknown.is_empty() || a.force || a.ignore {
        return Ok(std::process::ExitCode::SUCCESS);
    }
    for e in &unknown {
        eprintln!("Error: {e}");
    }
    Ok(std::process::ExitCode::from(1))
}

/// Removes the containers using image `id` (for `rmi -f`).
pub fn remove_users(image: &berth_image::Digest) -> anyhow::Result<()> {
    let c = containers()?;
    let users: Vec<ContainerRecord> = c
        .store()
        .containers()?
        .into_iter()
        .filter(|r| &r.image == image)
        .collect();
    if users.is_empty() {
        return Ok(());
    }
    let rt = Runtime::find(None, c.store().root()).ok();
    for record in users {
        c.remove(&record, rt.as_ref(), true)?;
    }
    Ok(())
}

pub fn ps(a: PsArgs) -> anyhow::Result<()> {
    let c = containers()?;
    let rt = runtime(&a.runtime, &c).ok();
    let now = SystemTime::now();
    let mut rows = Vec::new();
    for record in c.store().containers()? {
        let status = c.status(&record, rt.as_ref());
        if !a.all && !matches!(status, Status::Running(_)) {
            continue;
        }
        let command = c
            .process(&record)
            .map(|p| p.args.join(" "))
            .unwrap_or_default();
        let status_text = match status {
            Status::Created => "Created".to_string(),
            Status::Running(since) => format!("Up {}", ago(now, since).trim_end_matches(" ago")),
            Status::Exited(code, when) => format!("Exited ({code}) {}", ago(now, when)),
        };
        let id = match a.no_trunc {
            true => record.id.clone(),
            false => record.id[..12].to_string(),
        };
        rows.push(json!({
            "ID": id,
            "Id": record.id,
            "Image": record.image_name,
            "ImageID": record.image.hex(),
            // podman shows 17 characters of COMMAND and "...".
            "Command": match a.no_trunc {
                true => command.clone(),
                false => super::table::truncate(&command, 20),
            },
            "CreatedHuman": ago(now, record.created),
            "Created": record.created,
            "Status": status_text,
            "Ports": "",
            "Names": record.name,
        }));
    }
    if a.quiet {
        for r in &rows {
            println!("{}", r["ID"].as_str().unwrap_or_default());
        }
        return Ok(());
    }
    if a.format.as_deref() == Some("json") {
        println!("{}", berth_image::inspect::to_go_json(&rows));
        return Ok(());
    }
    let template = a.format.clone().unwrap_or_else(|| {
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.CreatedHuman}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}".into()
    });
    let out = super::template::render_rows(&template, &rows, |f| match f {
        "ID" | "Id" => "CONTAINER ID".into(),
        "CreatedHuman" | "Created" => "CREATED".into(),
        other => other.to_uppercase(),
    })?;
    print!("{out}");
    Ok(())
}

pub fn commit(a: CommitArgs) -> anyhow::Result<()> {
    let c = containers()?;
    let record = c.store().container(&a.container)?;
    let process = c.process(&record)?;
    let opts = ImageOptions {
        name: a.image.as_deref().map(qualify).transpose()?,
        changes: a.change,
        message: a.message,
        author: a.author,
        created_by: process.args.join(" "),
        docker_format: a.format == "docker",
    };
    let id = c.commit(&record, &opts)?;
    println!("{}", id.hex());
    Ok(())
}

pub fn mount(a: MountArgs) -> anyhow::Result<()> {
    let c = containers()?;
    let record = c.store().container(&a.container)?;
    println!("{}", c.rootfs(&record).display());
    Ok(())
}

pub fn export(a: ExportArgs) -> anyhow::Result<()> {
    let c = containers()?;
    let record = c.store().container(&a.container)?;
    match &a.output {
        Some(path) => {
            // Written beside, renamed when whole: a failed export leaves no partial file.
            let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
            let mut tmp = tempfile::NamedTempFile::new_in(dir.unwrap_or(std::path::Path::new(".")))
                .with_context(|| format!("creating a file beside {}", path.display()))?;
            c.export(
                &record,
                std::io::BufWriter::with_capacity(1 << 20, tmp.as_file_mut()),
            )?;
            tmp.as_file().sync_all()?;
            tmp.persist(path)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        None => {
            if std::io::stdout().is_terminal() {
                bail!("refusing to write a tar to the terminal: use -o FILE or redirect stdout");
            }
            let out = std::io::stdout().lock();
            c.export(&record, std::io::BufWriter::with_capacity(1 << 20, out))?;
        }
    }
    Ok(())
}

pub fn import(a: ImportArgs) -> anyhow::Result<()> {
    let store = open_store()?;
    let limits = super::local::tar_limits()?;
    let opts = ImageOptions {
        name: a.reference.as_deref().map(qualify).transpose()?,
        changes: a.change,
        message: Some(a.message.unwrap_or_else(|| "imported from tarball".into())),
        author: None,
        // Filled in with the layer's diff ID, as podman writes it.
        created_by: String::new(),
        docker_format: false,
    };
    let id = match a.file.as_str() {
        "-" => berth_runtime::import(&store, std::io::stdin(), &opts, &limits)?,
        path => {
            let f = std::fs::File::open(path).with_context(|| format!("opening {path}"))?;
            berth_runtime::import(&store, f, &opts, &limits)
                .with_context(|| format!("importing {path}"))?
        }
    };
    println!("sha256:{}", id.hex());
    Ok(())
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Follow the log: go on printing until the container stops
    #[arg(long, short = 'f')]
    follow: bool,
    /// Only the last N lines (-1: every line)
    #[arg(long, value_name = "N", default_value_t = -1, allow_negative_numbers = true)]
    tail: i64,
    /// Begin each line with its time (RFC 3339)
    #[arg(long, short = 't')]
    timestamps: bool,
    /// Containers: name, ID or ID prefix
    #[arg(required = true)]
    containers: Vec<String>,
}

/// `berth logs`: what a detached container wrote, each line to the stream it came
/// from (podman's k8s-file log; a container run in the foreground has none).
pub fn logs(a: LogsArgs) -> anyhow::Result<()> {
    let c = containers()?;
    let rt = Runtime::find(None, c.store().root()).ok();
    let records = a
        .containers
        .iter()
        .map(|spec| c.store().container(spec))
        .collect::<Result<Vec<_>, _>>()?;
    // podman prefixes each line with the container's ID when there are several.
    let prefix = records.len() > 1;
    for record in &records {
        let mut out = LogPrinter {
            timestamps: a.timestamps,
            prefix: prefix.then(|| record.id[..12].to_string()),
        };
        let path = c.log_path(record);
        let mut file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
        };
        let mut lines = berth_runtime::LogReader::default();
        let mut pending = Vec::new();
        let mut last = std::collections::VecDeque::new();
        read_records(&mut file, &mut pending, &mut lines, |line| match a.tail {
            n if n < 0 => out.print(&line),
            n => {
                last.push_back(line);
                if last.len() as i64 > n {
                    last.pop_front();
                }
                Ok(())
            }
        })?;
        for line in last {
            out.print(&line)?;
        }
        // Following: what comes while it runs, and what it wrote last.
        if a.follow {
            loop {
                let running = matches!(c.status(record, rt.as_ref()), Status::Running(_));
                read_records(&mut file, &mut pending, &mut lines, |line| out.print(&line))?;
                if !running {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        for line in lines.finish() {
            out.print(&line)?;
        }
    }
    Ok(())
}

/// Reads what the log has beyond where `file` stands, giving each completed line to
/// `each`; a record not yet written whole waits in `pending`.
fn read_records(
    file: &mut std::fs::File,
    pending: &mut Vec<u8>,
    lines: &mut berth_runtime::LogReader,
    mut each: impl FnMut(berth_runtime::LogLine) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    use std::io::Read;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = file.read(&mut buf).context("reading the container's log")?;
        if n == 0 {
            return Ok(());
        }
        pending.extend_from_slice(&buf[..n]);
        let whole = match pending.iter().rposition(|b| *b == b'\n') {
            Some(i) => i + 1,
            None => continue,
        };
        let rest = pending.split_off(whole);
        for record in pending.split(|b| *b == b'\n').filter(|r| !r.is_empty()) {
            if let Some(line) = lines.record(record) {
                each(line)?;
            }
        }
        *pending = rest;
    }
}

struct LogPrinter {
    timestamps: bool,
    prefix: Option<String>,
}

impl LogPrinter {
    fn print(&mut self, line: &berth_runtime::LogLine) -> anyhow::Result<()> {
        use std::io::Write;
        let mut bytes = Vec::with_capacity(line.text.len() + 48);
        if let Some(p) = &self.prefix {
            bytes.extend_from_slice(format!("{p} ").as_bytes());
        }
        if self.timestamps {
            bytes.extend_from_slice(format!("{} ", line.time).as_bytes());
        }
        bytes.extend_from_slice(&line.text);
        if line.ended {
            bytes.push(b'\n');
        }
        match line.stream.as_str() {
            "stderr" => std::io::stderr().write_all(&bytes)?,
            _ => std::io::stdout().write_all(&bytes)?,
        }
        Ok(())
    }
}

#[derive(Args, Debug)]
pub struct ContainerInspectArgs {
    /// A Go template over the JSON's fields (e.g. '{{.State.ExitCode}}'), or json
    #[arg(long, short = 'f', value_name = "FORMAT")]
    pub format: Option<String>,
    /// Containers: name, ID or ID prefix
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// `podman container inspect`'s object, the fields berth knows, in podman's order.
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct InspectedContainer {
    id: String,
    created: String,
    path: String,
    args: Vec<String>,
    state: InspectedState,
    image: String,
    image_name: String,
    rootfs: String,
    name: String,
    restart_count: u32,
    driver: String,
    #[serde(rename = "OCIRuntime")]
    oci_runtime: String,
    mounts: Vec<serde_json::Value>,
    config: InspectedConfig,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct InspectedState {
    status: String,
    running: bool,
    paused: bool,
    restarting: bool,
    #[serde(rename = "OOMKilled")]
    oom_killed: bool,
    dead: bool,
    pid: u32,
    exit_code: i32,
    error: String,
    started_at: String,
    finished_at: String,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct InspectedConfig {
    hostname: String,
    user: String,
    env: Vec<String>,
    cmd: Vec<String>,
    image: String,
    working_dir: String,
    stop_signal: String,
}

/// Go's zero time, which podman prints for a time that has not come.
const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn inspected_container(
    c: &Containers,
    record: &ContainerRecord,
    rt: Option<&Runtime>,
) -> anyhow::Result<InspectedContainer> {
    let process = c.process(record)?;
    let report = c.report(record, rt);
    let time = |t: Option<i64>| t.map_or_else(|| GO_ZERO_TIME.to_string(), super::local::rfc3339);
    let status = match report.status {
        Status::Created => "created",
        Status::Running(_) => "running",
        Status::Exited(..) => "exited",
    };
    let mounts = process
        .binds
        .iter()
        .map(|b| {
            json!({
                "Type": "bind",
                "Source": b.source,
                "Destination": b.destination,
                "RW": !b.read_only,
            })
        })
        .collect();
    Ok(InspectedContainer {
        id: record.id.clone(),
        created: super::local::rfc3339(record.created),
        path: process.args.first().cloned().unwrap_or_default(),
        args: process.args.iter().skip(1).cloned().collect(),
        state: InspectedState {
            status: status.into(),
            running: status == "running",
            paused: false,
            restarting: false,
            oom_killed: false,
            dead: false,
            pid: report.pid.unwrap_or(0),
            exit_code: report.exit_code,
            error: report.error,
            started_at: time(report.started),
            finished_at: time(report.finished.filter(|_| status == "exited")),
        },
        image: record.image.hex().to_string(),
        image_name: record.image_name.clone(),
        rootfs: String::new(),
        name: record.name.clone(),
        restart_count: 0,
        driver: "vfs".into(),
        oci_runtime: rt.map(Runtime::name).unwrap_or_default(),
        mounts,
        config: InspectedConfig {
            hostname: process
                .hostname
                .clone()
                .unwrap_or_else(|| record.id[..12].to_string()),
            user: process.user.clone(),
            env: process.env.clone(),
            cmd: process.args.clone(),
            image: record.image_name.clone(),
            working_dir: process.cwd.clone(),
            stop_signal: process
                .stop_signal
                .clone()
                .unwrap_or_else(|| "SIGTERM".into()),
        },
    })
}

/// `berth container inspect`.
pub fn container_inspect(a: ContainerInspectArgs) -> anyhow::Result<()> {
    let c = containers()?;
    let rt = Runtime::find(None, c.store().root()).ok();
    let mut out = Vec::new();
    let mut missing = None;
    for spec in &a.containers {
        match c.store().container(spec) {
            Ok(record) => out.push(inspected_container(&c, &record, rt.as_ref())?),
            Err(berth_transport::TransportError::Container(_)) => {
                missing.get_or_insert_with(|| anyhow::anyhow!("no such container {spec}"));
            }
            Err(e) => return Err(e.into()),
        }
    }
    super::local::inspect::print_inspected(&out, a.format.as_deref())?;
    super::local::inspect::podman_missing(missing)
}

/// `berth inspect NAME` without a transport: as podman, a container of that name or
/// ID first, else an image; neither is podman's "no such object".
pub fn inspect_any(a: super::local::inspect::ImageInspectArgs) -> anyhow::Result<()> {
    let c = containers()?;
    let mut containers = Vec::new();
    for spec in &a.images {
        match c.store().container(spec) {
            Ok(record) => containers.push(record),
            Err(berth_transport::TransportError::Container(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if containers.is_empty() {
        let first = a.images[0].clone();
        return super::local::inspect::image_inspect(a).map_err(|e| {
            match e.chain().any(|c| {
                c.downcast_ref::<berth_transport::TransportError>()
                    .is_some_and(|t| t.is_not_found())
            }) {
                true => anyhow::anyhow!("inspecting object: no such object: {first:?}"),
                false => e,
            }
        });
    }
    if containers.len() != a.images.len() {
        bail!("inspect: give containers or images, not both");
    }
    let rt = Runtime::find(None, c.store().root()).ok();
    let out = containers
        .iter()
        .map(|r| inspected_container(&c, r, rt.as_ref()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    super::local::inspect::print_inspected(&out, a.format.as_deref())
}
