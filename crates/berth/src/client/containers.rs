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

/// What to run and how, for create, run and exec.
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

/// The OCI runtime to use.
#[derive(Args, Debug)]
pub struct RuntimeFlag {
    /// OCI runtime: a name on PATH (crun, runc) or a path [default: crun, else runc]
    #[arg(long, value_name = "RUNTIME")]
    runtime: Option<String>,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Container name [default: a generated adjective_surname]
    #[arg(long)]
    name: Option<String>,
    /// Replace the image's ENTRYPOINT: a JSON array or one command ('' clears it)
    #[arg(long, value_name = "CMD")]
    entrypoint: Option<String>,
    #[command(flatten)]
    process: ProcessFlags,
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
    #[command(flatten)]
    runtime: RuntimeFlag,
    /// Containers: name, ID or ID prefix
    #[arg(required = true)]
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

/// `berth container-monitor ID`: runs a detached container in the foreground of a
/// process of its own, so that its exit code is recorded (podman's conmon).
#[derive(Args, Debug)]
pub struct MonitorArgs {
    #[command(flatten)]
    runtime: RuntimeFlag,
    id: String,
}

fn containers() -> anyhow::Result<Containers> {
    Ok(Containers::new(open_store()?))
}

fn runtime(flag: &RuntimeFlag, c: &Containers) -> anyhow::Result<Runtime> {
    Ok(Runtime::find(flag.runtime.as_deref(), c.store().root())?)
}

fn create_options(a: &CreateArgs) -> anyhow::Result<CreateOptions> {
    let entrypoint = match &a.entrypoint {
        None => None,
        Some(e) if e.trim_start().starts_with('[') => Some(
            serde_json::from_str::<Vec<String>>(e)
                .with_context(|| format!("--entrypoint {e:?}: not a JSON array of strings"))?,
        ),
        Some(e) if e.is_empty() => Some(Vec::new()),
        Some(e) => Some(vec![e.clone()]),
    };
    Ok(CreateOptions {
        name: a.name.clone(),
        overrides: berth_runtime::Overrides {
            entrypoint,
            cmd: a.command.clone(),
            env: a.process.env.clone(),
            workdir: a.process.workdir.clone(),
            user: a.process.user.clone(),
        },
    })
}

fn create_container(c: &Containers, a: &CreateArgs) -> anyhow::Result<ContainerRecord> {
    // A missing image is pulled first, as podman's --pull=missing.
    super::local::pull::ensure(c.store(), &a.image, &berth_image::Platform::this_machine())?;
    let (image, matched) = c.store().find_named(&a.image)?;
    let shown = matched.unwrap_or_else(|| a.image.clone());
    Ok(c.create(&image, &shown, &create_options(a)?)?)
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
) -> anyhow::Result<std::process::Command> {
    let exe = std::env::current_exe().context("finding berth's own binary")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--root")
        .arg(c.store().root())
        .arg("container-monitor");
    if let Some(r) = &runtime.runtime {
        cmd.args(["--runtime", r]);
    }
    cmd.arg(id);
    Ok(cmd)
}

pub fn run(a: RunArgs) -> anyhow::Result<std::process::ExitCode> {
    let c = containers()?;
    // The runtime first: a machine without one learns it before anything is made.
    let rt = runtime(&a.runtime, &c)?;
    let record = create_container(&c, &a.create)?;
    if a.detach {
        c.start(&record, &rt, monitor(&c, &record.id, &a.runtime)?)?;
        println!("{}", record.id);
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let code = c.run(&record, &rt);
    if a.rm {
        c.remove(&record, Some(&rt), true)?;
    }
    Ok(std::process::ExitCode::from(code?.clamp(0, 255) as u8))
}

pub fn start(a: StartArgs) -> anyhow::Result<()> {
    let c = containers()?;
    let rt = runtime(&a.runtime, &c)?;
    for spec in &a.containers {
        let record = c.store().container(spec)?;
        c.start(&record, &rt, monitor(&c, &record.id, &a.runtime)?)?;
        println!("{spec}");
    }
    Ok(())
}

pub fn container_monitor(a: MonitorArgs) -> anyhow::Result<std::process::ExitCode> {
    let c = containers()?;
    let rt = runtime(&a.runtime, &c)?;
    let record = c.store().container(&a.id)?;
    let code = c.run(&record, &rt)?;
    Ok(std::process::ExitCode::from(code.clamp(0, 255) as u8))
}

pub fn exec(a: ExecArgs) -> anyhow::Result<std::process::ExitCode> {
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
        },
    )?;
    Ok(std::process::ExitCode::from(code.clamp(0, 255) as u8))
}

pub fn stop(a: StopArgs) -> anyhow::Result<()> {
    let c = containers()?;
    let rt = runtime(&a.runtime, &c)?;
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
    for record in records {
        c.remove(&record, rt.as_ref(), a.force)?;
        println!("{}", record.id);
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
        "-" => berth_runtime::import(&store, std::io::stdin(), &opts)?,
        path => {
            let f = std::fs::File::open(path).with_context(|| format!("opening {path}"))?;
            berth_runtime::import(&store, f, &opts).with_context(|| format!("importing {path}"))?
        }
    };
    println!("sha256:{}", id.hex());
    Ok(())
}
