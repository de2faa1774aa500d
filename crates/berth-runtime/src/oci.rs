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
        let status = self
            .command()
            .args(["run", "--bundle"])
            .arg(bundle)
            .arg(id)
            .stdin(stdin)
            .stdout(stdout)
            .status()
            .map_err(io(format!("starting {}", self.program.display())))?;
        Ok(exit_code(status))
    }

    /// Runs a further process in running container `id` with the caller's stdio.
    pub fn exec(&self, id: &str, process_json: &Path) -> Result<i32> {
        let status = self
            .command()
            .args(["exec", "--process"])
            .arg(process_json)
            .arg(id)
            .status()
            .map_err(io(format!("starting {}", self.program.display())))?;
        Ok(exit_code(status))
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
