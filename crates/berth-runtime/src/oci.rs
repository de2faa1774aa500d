//! The OCI runtime berth drives: runc or crun, found on `PATH` as podman finds them
//! (crun first), or named with `--runtime`. Its state lives under the store
//! (`runtime/`), so berth's containers never mix with podman's.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::{io, Result, RuntimeError};

#[derive(Debug, Clone)]
pub struct Runtime {
    program: PathBuf,
    state: PathBuf,
}

/// What the runtime says of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeState {
    Running(u32),
    /// Created or stopped but still known to the runtime.
    Stopped,
    /// Not known to the runtime.
    Absent,
}

impl Runtime {
    /// `choice` (a name on PATH or a path), else crun, else runc. Running containers
    /// needs root here: say so rather than fail inside the runtime.
    pub fn find(choice: Option<&str>, store_root: &Path) -> Result<Runtime> {
        let program = match choice {
            Some(c) if c.contains('/') => Some(PathBuf::from(c)).filter(|p| p.is_file()),
            Some(c) => on_path(c),
            None => on_path("crun").or_else(|| on_path("runc")),
        };
        let program = program.ok_or_else(|| {
            RuntimeError::Unavailable(match choice {
                Some(c) => format!("OCI runtime {c:?} not found"),
                None => "no OCI runtime found: install runc or crun \
                         (apt-get install -y runc); create, mount, export and commit work without one"
                    .into(),
            })
        })?;
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(RuntimeError::Unavailable(
                "running containers needs root (rootless containers are not supported yet); \
                 create, mount, export and commit work without it"
                    .into(),
            ));
        }
        Ok(Runtime {
            program,
            state: store_root.join("runtime"),
        })
    }

    /// Its program.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// The same state folder with another program (a container's recorded runtime).
    pub fn with_program(&self, program: PathBuf) -> Runtime {
        Runtime {
            program,
            state: self.state.clone(),
        }
    }

    pub fn name(&self) -> String {
        self.program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// `runtime --root STATE ARGS…`.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.arg("--root").arg(&self.state);
        c
    }

    fn failed(&self, action: &str, id: &str, detail: String) -> RuntimeError {
        RuntimeError::Failed {
            runtime: self.name(),
            action: action.into(),
            id: id.into(),
            detail,
        }
    }

    /// Runs `id` from `bundle` in the foreground with the caller's stdio; returns its
    /// exit code (128 + signal when killed). The runtime removes it once it exits.
    pub fn run(&self, id: &str, bundle: &Path) -> Result<i32> {
        self.run_to(id, bundle, Stdio::inherit(), Stdio::inherit())
    }

    /// [`Runtime::run`] with the container's stdin and stdout given (a build's RUN
    /// reads nothing and writes to stderr, keeping stdout for the image ID).
    pub fn run_to(&self, id: &str, bundle: &Path, stdin: Stdio, stdout: Stdio) -> Result<i32> {
        let log = bundle.join("runtime.log");
        let status = self
            .logging_to(&log)?
            .args(["run", "--bundle"])
            .arg(bundle)
            .arg(id)
            .stdin(stdin)
            .stdout(stdout)
            .status()
            .map_err(io(format!("starting {}", self.program.display())))?;
        self.outcome(status, &log, Action::Run)
    }

    /// [`Runtime::run`] with the container's stdout and stderr going to `ctr_log`, a
    /// line per record with its time and stream (podman's k8s-file format), for
    /// `berth logs`; with `attached`, also to berth's own stdout and stderr (a
    /// container in the foreground: podman logs those too), the runtime in a process
    /// group of its own when `attached` says `true`.
    pub fn run_logged(
        &self,
        id: &str,
        bundle: &Path,
        ctr_log: &Path,
        stdin: Stdio,
        attached: Option<bool>,
    ) -> Result<i32> {
        use std::os::unix::process::CommandExt;
        let log = bundle.join("runtime.log");
        let echo = attached.is_some();
        let mut command = self.logging_to(&log)?;
        if attached == Some(true) {
            command.process_group(0);
        }
        let mut child = command
            .args(["run", "--bundle"])
            .arg(bundle)
            .arg(id)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io(format!("starting {}", self.program.display())))?;
        let out = crate::logs::LogWriter::create(ctr_log)?;
        // The runtime's own error (the process could not start) is said once, as
        // podman says it, not also as the container's stderr and in its log.
        let hold = Some(self.name()).filter(|n| !n.is_empty());
        let relay = match (child.stdout.take(), child.stderr.take()) {
            (Some(o), Some(e)) => Some(out.relay(o, e, echo, hold)),
            _ => None,
        };
        let status = child
            .wait()
            .map_err(io(format!("waiting for {}", self.program.display())))?;
        let held = relay.and_then(|r| r.join().ok()).unwrap_or_default();
        let outcome = self.outcome(status, &log, Action::Run);
        if !held.is_empty() && !matches!(outcome, Err(RuntimeError::Start { .. })) {
            out.release(&held, echo)
                .map_err(io(format!("writing {}", ctr_log.display())))?;
        }
        outcome
    }

    /// Runs a further process in running container `id` with the caller's stdio.
    pub fn exec(&self, id: &str, process_json: &Path, stdin: std::process::Stdio) -> Result<i32> {
        let log = process_json.with_extension("log");
        let status = self
            .logging_to(&log)?
            .args(["exec", "--process"])
            .arg(process_json)
            .arg(id)
            .stdin(stdin)
            .status()
            .map_err(io(format!("starting {}", self.program.display())))?;
        let outcome = self.outcome(status, &log, Action::Exec);
        let _ = std::fs::remove_file(&log);
        outcome
    }

    /// The runtime command with its own messages going to `log` as JSON lines (they
    /// also reach stderr), so that a failure to start the process can be told from the
    /// process's own exit status.
    fn logging_to(&self, log: &Path) -> Result<Command> {
        match std::fs::remove_file(log) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io(format!("removing {}", log.display()))(e))
            }
            _ => {}
        }
        let mut c = self.command();
        c.arg("--log").arg(log).args(["--log-format", "json"]);
        Ok(c)
    }

    /// The exit code, or when the runtime logged an error (it could not start the
    /// process), that error with podman's exit status for it.
    fn outcome(&self, status: std::process::ExitStatus, log: &Path, action: Action) -> Result<i32> {
        let code = exit_code(status);
        if code == 0 {
            return Ok(0);
        }
        match last_error(log) {
            Some(message) => Err(start_failure(&self.name(), &message, action)),
            None => Ok(code),
        }
    }

    pub fn kill(&self, id: &str, signal: &str) -> Result<()> {
        let out = self
            .command()
            .args(["kill", id, signal])
            .stdin(Stdio::null())
            .output()
            .map_err(io(format!("starting {}", self.program.display())))?;
        if out.status.success() {
            return Ok(());
        }
        Err(self.failed(
            "kill",
            id,
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }

    /// Forgets a stopped container (a no-op when the runtime does not know it).
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let mut c = self.command();
        c.arg("delete");
        if force {
            c.arg("--force");
        }
        let out = c
            .arg(id)
            .stdin(Stdio::null())
            .output()
            .map_err(io(format!("starting {}", self.program.display())))?;
        if out.status.success() || self.state(id)? == RuntimeState::Absent {
            return Ok(());
        }
        Err(self.failed(
            "delete",
            id,
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }

    pub fn state(&self, id: &str) -> Result<RuntimeState> {
        let out = self
            .command()
            .args(["state", id])
            .stdin(Stdio::null())
            .output()
            .map_err(io(format!("starting {}", self.program.display())))?;
        if !out.status.success() {
            return Ok(RuntimeState::Absent);
        }
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        Ok(match (v["status"].as_str(), v["pid"].as_u64()) {
            (Some("running"), Some(pid)) => RuntimeState::Running(pid as u32),
            _ => RuntimeState::Stopped,
        })
    }
}

/// What the runtime was asked to start (podman gives their failures other statuses).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Run,
    Exec,
}

/// The last error-level message of a runtime's JSON log.
fn last_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| matches!(v["level"].as_str(), Some("error" | "fatal")))
        .filter_map(|v| v["msg"].as_str().map(str::to_string))
        .next_back()
}

/// podman's words and statuses for a process the runtime could not start: a command
/// not found is 127; for `run` anything else 126; for `exec` permission denied 126,
/// anything else 125 (libpod's `ExitCode` and `TranslateExecErrorToExitCode`).
fn start_failure(runtime: &str, message: &str, action: Action) -> RuntimeError {
    let lower = message.to_lowercase();
    let denied = lower.contains("permission denied") || lower.contains("operation not permitted");
    let missing = lower.contains("executable file not found") || lower.contains("no such file");
    let what = match (denied, missing) {
        (true, _) => "OCI permission denied",
        (false, true) => "OCI runtime attempted to invoke a command that was not found",
        _ => "OCI runtime error",
    };
    let code = match action {
        Action::Run if lower.contains("not found") || lower.contains("no such file") => 127,
        Action::Run => 126,
        Action::Exec if denied => 126,
        Action::Exec if missing => 127,
        Action::Exec => 125,
    };
    RuntimeError::Start {
        message: format!("{runtime}: {}: {what}", message.trim_end()),
        code,
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A process's exit code as a shell reports it.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}
