//! Containers: create (the image's layers applied into `rootfs/`, a snapshot of
//! that state kept for `commit`), start and run under the runtime, exec, stop,
//! remove, export.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_image::Digest;
use berth_rootfs::{Snapshot, TarLimits, UnpackOptions};
use berth_transport::local::{ContainerRecord, Image, LocalStore};
use serde::{Deserialize, Serialize};

use crate::oci::{Runtime, RuntimeState};
use crate::spec::{Overrides, Process};
use crate::{io, names, Result, RuntimeError};

/// What `create` and `run` take besides the image.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub name: Option<String>,
    pub overrides: Overrides,
}

/// Where a container is in its life, as `ps` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Created,
    /// Since when (unix seconds).
    Running(i64),
    /// Exit code, and when (unix seconds).
    Exited(i32, i64),
}

/// Whether process `pid` exists.
fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

/// `state.json`: what berth saw of the container's process.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    started: Option<i64>,
    finished: Option<i64>,
    exit_code: Option<i32>,
    /// The process running it in the foreground (berth run, or the monitor).
    #[serde(default)]
    monitor: Option<u32>,
    /// Why the runtime could not start it (podman's `State.Error`).
    #[serde(default)]
    error: Option<String>,
    /// The runtime that ran it (its program): the one that stops it and is asked
    /// about it, as podman keeps a container's runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    runtime: Option<PathBuf>,
}

/// What `container inspect` shows of a container's state, podman's `State` fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateReport {
    pub status: Status,
    /// The container's first process, while it runs.
    pub pid: Option<u32>,
    pub exit_code: i32,
    pub error: String,
    /// Unix seconds.
    pub started: Option<i64>,
    pub finished: Option<i64>,
}

/// A held container lock ([`Containers::lock`]): the open file is the lock.
struct Lock(#[allow(dead_code)] fs::File);

/// A container removed while a command waited for it: as podman says it.
fn gone(c: &ContainerRecord) -> RuntimeError {
    RuntimeError::Invalid(format!(
        "no container with name or ID {:?} found: no such container",
        c.name
    ))
}

pub struct Containers {
    store: Arc<LocalStore>,
    dir: PathBuf,
    /// Bounds of each layer applied into a new container's root.
    tar_limits: TarLimits,
}

impl Containers {
    pub fn new(store: Arc<LocalStore>) -> Containers {
        let dir = store.root().join("containers");
        Containers {
            store,
            dir,
            tar_limits: TarLimits::default(),
        }
    }

    /// Layers applied into new containers are bounded by `limits` (the binary reads
    /// them from `BERTH_TAR_MAX_*`) instead of the defaults.
    pub fn with_tar_limits(mut self, limits: TarLimits) -> Containers {
        self.tar_limits = limits;
        self
    }

    pub fn store(&self) -> &Arc<LocalStore> {
        &self.store
    }

    /// The container's folder.
    pub fn path(&self, c: &ContainerRecord) -> PathBuf {
        self.dir.join(&c.id)
    }

    /// Its root file system: what `mount` prints.
    pub fn rootfs(&self, c: &ContainerRecord) -> PathBuf {
        self.path(c).join("rootfs")
    }

    /// What it runs.
    pub fn process(&self, c: &ContainerRecord) -> Result<Process> {
        serde_json::from_str(&c.spec)
            .map_err(|e| RuntimeError::Invalid(format!("container {}: spec: {e}", c.id)))
    }

    /// Makes a container of `image`: its layers applied in order into a new root file
    /// system (as root: owners, devices, xattrs kept), the state recorded for
    /// `commit`, then the record. Nothing is left behind when a step fails.
    pub fn create(
        &self,
        image: &Image,
        image_name: &str,
        opts: &CreateOptions,
    ) -> Result<ContainerRecord> {
        let config = self.store.image_config(&image.id)?;
        let process = Process::from_image(&config, &opts.overrides)?;
        if let Some(n) = &opts.name {
            if !names::valid_name(n) {
                return Err(RuntimeError::Invalid(format!(
                    "container name {n:?}: use letters, digits, '_', '.', '-'"
                )));
            }
        }
        let id = names::new_id();
        let dir = self.dir.join(&id);
        let made = self.make_rootfs(image, &dir);
        let record = made.and_then(|()| {
            let spec = serde_json::to_string(&process)
                .map_err(|e| RuntimeError::Invalid(e.to_string()))?;
            self.record(&id, image, image_name, opts.name.as_deref(), spec)
        });
        if record.is_err() {
            let _ = berth_rootfs::remove_all(&dir);
        }
        record
    }

    fn make_rootfs(&self, image: &Image, dir: &Path) -> Result<()> {
        let rootfs = dir.join("rootfs");
        fs::create_dir_all(&rootfs).map_err(io(format!("creating {}", rootfs.display())))?;
        let opts = UnpackOptions {
            limits: self.tar_limits,
            ..UnpackOptions::for_current_user()
        };
        let layers = self.store.layers(&image.id)?;
        let config = self.store.image_config(&image.id)?;
        let diff_ids = berth_image::diff_ids::diff_ids(&config, layers.len())
            .map_err(|e| RuntimeError::Invalid(format!("image {}: {e}", image.id)))?;
        for (layer, diff_id) in layers.iter().zip(&diff_ids) {
            let file = self.store.open_blob(layer)?;
            // Each layer as the config names it (the image ID is the config's digest).
            berth_rootfs::apply_stored_layer(&rootfs, file, diff_id, &opts).map_err(
                |e| match e {
                    // Say which layer went past the limit, or is not the config's.
                    e @ (berth_rootfs::RootfsError::Limit { .. }
                    | berth_rootfs::RootfsError::Malformed(_)) => {
                        RuntimeError::Invalid(format!("layer {layer}: {e}"))
                    }
                    e => e.into(),
                },
            )?;
        }
        crate::spec::make_host_file_mount_points(&rootfs)?;
        Snapshot::take(&rootfs)?.save(&dir.join("base.snapshot"))?;
        Ok(())
    }

    fn record(
        &self,
        id: &str,
        image: &Image,
        image_name: &str,
        name: Option<&str>,
        spec: String,
    ) -> Result<ContainerRecord> {
        let mut record = ContainerRecord {
            id: id.to_string(),
            name: name.map_or_else(names::new_name, str::to_string),
            image: image.id.clone(),
            image_name: image_name.to_string(),
            created: crate::now(),
            spec,
        };
        // A generated name may clash: draw again a few times.
        for _ in 0..16 {
            match self.store.add_container(&record) {
                Err(berth_transport::TransportError::Unsupported(_)) if name.is_none() => {
                    record.name = names::new_name();
                }
                other => return other.map(|()| record).map_err(Into::into),
            }
        }
        record.name = format!("{}_{}", names::new_name(), &id[..6]);
        self.store.add_container(&record)?;
        Ok(record)
    }

    fn state(&self, c: &ContainerRecord) -> State {
        fs::read(self.path(c).join("state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn save_state(&self, c: &ContainerRecord, s: &State) -> Result<()> {
        let path = self.path(c).join("state.json");
        // Each writer its own: a stop and a monitor writing at once renamed each
        // other's file away.
        let tmp = path.with_extension(format!("json.{}.tmp", names::new_id()));
        let bytes = serde_json::to_vec(s).map_err(|e| RuntimeError::Invalid(e.to_string()))?;
        fs::write(&tmp, bytes).map_err(io(format!("writing {}", tmp.display())))?;
        fs::rename(&tmp, &path).map_err(io(format!("writing {}", path.display())))
    }

    /// Created, running (the runtime says so) or exited.
    pub fn status(&self, c: &ContainerRecord, runtime: Option<&Runtime>) -> Status {
        let runtime = runtime.map(|r| self.runtime_of(c, r));
        let runtime = runtime.as_ref();
        let s = self.state(c);
        match (s.started, s.finished) {
            (None, _) => Status::Created,
            (Some(_), Some(f)) => Status::Exited(s.exit_code.unwrap_or(0), f),
            (Some(started), None) => match runtime.map(|r| r.state(&c.id)) {
                Some(Ok(RuntimeState::Running(_))) => Status::Running(started),
                // Starting: the runtime does not know it yet, its monitor lives.
                _ if s.monitor.is_some_and(alive) => Status::Running(started),
                // Its monitor died with it (a reboot, a kill -9): it is not running.
                _ => Status::Exited(s.exit_code.unwrap_or(-1), started),
            },
        }
    }

    /// Writes the bundle's config.json for the next start.
    fn prepare(&self, c: &ContainerRecord) -> Result<PathBuf> {
        let bundle = self.path(c);
        let process = self.process(c)?;
        if process.cwd_given {
            let start = |message: String| RuntimeError::Start { message, code: 126 };
            let cwd = &process.cwd;
            match berth_rootfs::find_in(&self.rootfs(c), cwd)? {
                berth_rootfs::Found::Dir => {}
                berth_rootfs::Found::Missing => Err(start(format!(
                    "workdir {cwd:?} does not exist on container {}",
                    c.id
                )))?,
                berth_rootfs::Found::NotDir => Err(start(format!(
                    "workdir {cwd:?} exists on container {}, but is not a directory",
                    c.id
                )))?,
            }
        }
        let mut spec = process.runtime_spec(&self.rootfs(c), &c.id[..12])?;
        crate::spec::add_host_files(&mut spec, &bundle, &process.add_hosts)?;
        let path = bundle.join("config.json");
        spec.save(&path)
            .map_err(|e| RuntimeError::Invalid(format!("writing {}: {e}", path.display())))?;
        Ok(bundle)
    }

    /// Runs the container in the foreground: its output to the caller's stdout and
    /// stderr and to its log, `stdin` as given (podman's `-i` gives the caller's,
    /// else none); returns its exit code. What `run` does. With `own_group` the
    /// runtime gets a process group of its own, out of reach of the terminal's
    /// signals: the caller hands them on.
    pub fn run_attached(
        &self,
        c: &ContainerRecord,
        runtime: &Runtime,
        stdin: std::process::Stdio,
        own_group: bool,
    ) -> Result<i32> {
        let log = self.log_path(c);
        let lock = self.lock(c)?.ok_or_else(|| gone(c))?;
        self.run_with(c, runtime, Some(lock), |bundle| {
            runtime.run_logged(&c.id, bundle, &log, stdin, Some(own_group))
        })
    }

    /// Runs the container with its output to its log (`ctr.log`, for `logs`): what a
    /// detached container's monitor does, under the lock [`Containers::start`] holds
    /// for it until the container runs.
    pub fn run_detached(&self, c: &ContainerRecord, runtime: &Runtime) -> Result<i32> {
        let log = self.log_path(c);
        self.run_with(c, runtime, None, |bundle| {
            runtime.run_logged(&c.id, bundle, &log, std::process::Stdio::null(), None)
        })
    }

    /// Runs the container; `lock`, the caller's, is let go once the runtime runs it
    /// (or the run ended), so that a `stop` or `rm` beside waits for a process to act
    /// on rather than finding none yet and recording an exit that is not.
    fn run_with(
        &self,
        c: &ContainerRecord,
        runtime: &Runtime,
        lock: Option<Lock>,
        run: impl FnOnce(&Path) -> Result<i32>,
    ) -> Result<i32> {
        if let Status::Running(_) = self.status(c, Some(runtime)) {
            return Err(RuntimeError::Invalid(format!(
                "container {} is already running",
                c.name
            )));
        }
        let bundle = self.prepare(c)?;
        // A stopped container the runtime still knows would refuse the same ID.
        runtime.delete(&c.id, true)?;
        self.save_state(
            c,
            &State {
                started: Some(crate::now()),
                monitor: Some(std::process::id()),
                runtime: Some(runtime.program().to_path_buf()),
                ..State::default()
            },
        )?;
        let ended = Arc::new(AtomicBool::new(false));
        if let Some(lock) = lock {
            let (runtime, id, ended) = (runtime.clone(), c.id.clone(), ended.clone());
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(10);
                while !ended.load(Ordering::Acquire)
                    && Instant::now() < deadline
                    && !matches!(runtime.state(&id), Ok(RuntimeState::Running(_)))
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                drop(lock);
            });
        }
        let code = run(&bundle);
        ended.store(true, Ordering::Release);
        let mut s = self.state(c);
        s.finished = Some(crate::now());
        s.exit_code = Some(match &code {
            Ok(code) => *code,
            Err(RuntimeError::Start { message, code }) => {
                s.error = Some(message.clone());
                *code
            }
            Err(_) => -1,
        });
        // Not under the lock: a start waiting for this record holds it. A container
        // removed meanwhile (rm -f) has no folder left to record in; its exit code is
        // still the caller's.
        if let Err(e) = self.save_state(c, &s) {
            if self.path(c).exists() {
                return Err(e);
            }
        }
        code
    }

    /// Podman's view of the state (`container inspect`).
    pub fn report(&self, c: &ContainerRecord, runtime: Option<&Runtime>) -> StateReport {
        let runtime = runtime.map(|r| self.runtime_of(c, r));
        let runtime = runtime.as_ref();
        let s = self.state(c);
        let status = self.status(c, runtime);
        let pid = match (&status, runtime.map(|r| r.state(&c.id))) {
            (Status::Running(_), Some(Ok(RuntimeState::Running(pid)))) => Some(pid),
            _ => None,
        };
        StateReport {
            exit_code: match status {
                Status::Exited(code, _) => code,
                _ => 0,
            },
            status,
            pid,
            error: s.error.unwrap_or_default(),
            started: s.started,
            finished: s.finished,
        }
    }

    /// The log of its last run (`ctr.log`, podman's k8s-file format).
    pub fn log_path(&self, c: &ContainerRecord) -> PathBuf {
        self.path(c).join("ctr.log")
    }

    /// Starts the container in the background: `monitor` (the caller's own binary,
    /// running [`Containers::run_detached`] for this container) is detached into its
    /// own session (its own messages in `monitor.log`); returns once the runtime
    /// reports it running, or it has already exited. A process the runtime could not
    /// start is that error, as with [`Containers::run_attached`].
    pub fn start(
        &self,
        c: &ContainerRecord,
        runtime: &Runtime,
        mut monitor: std::process::Command,
    ) -> Result<()> {
        // Held until the container runs or has ended: a second start waits, then
        // finds it running; a stop waits, then stops it.
        let _lock = self.lock(c)?.ok_or_else(|| gone(c))?;
        if let Status::Running(_) = self.status(c, Some(runtime)) {
            return Ok(());
        }
        // What can fail before the runtime runs (a user the image lacks) fails here,
        // said at once, not after the wait below in the monitor's log.
        self.prepare(c)?;
        let log_path = self.path(c).join("monitor.log");
        let log =
            fs::File::create(&log_path).map_err(io(format!("creating {}", log_path.display())))?;
        let err = log.try_clone().map_err(io("duplicating the log file"))?;
        let _ = fs::remove_file(self.path(c).join("state.json"));
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid is async-signal-safe and has no preconditions.
        unsafe {
            monitor.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        monitor
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(io("starting the container's monitor"))?;
        // Started when the runtime runs it, or it has already come and gone.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let s = self.state(c);
            if s.finished.is_some() {
                return match s.error {
                    Some(message) => Err(RuntimeError::Start {
                        message,
                        code: s.exit_code.unwrap_or(126),
                    }),
                    None => Ok(()),
                };
            }
            if matches!(runtime.state(&c.id), Ok(RuntimeState::Running(_))) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(RuntimeError::Failed {
            runtime: runtime.name(),
            action: "start".into(),
            id: c.id.clone(),
            detail: format!("not running after 10 s; see {}", log_path.display()),
        })
    }

    /// Runs `args` inside the running container, with its environment plus `env`.
    pub fn exec(
        &self,
        c: &ContainerRecord,
        runtime: &Runtime,
        overrides: &Overrides,
        stdin: std::process::Stdio,
    ) -> Result<i32> {
        let runtime = &self.runtime_of(c, runtime);
        if !matches!(self.status(c, Some(runtime)), Status::Running(_)) {
            return Err(RuntimeError::Invalid(format!(
                "can only exec in a running container: {} is not running",
                c.name
            )));
        }
        let base = self.process(c)?;
        let mut p = base.clone();
        p.args = overrides.cmd.clone();
        if p.args.is_empty() {
            return Err(RuntimeError::Invalid("exec: give a command".into()));
        }
        p.env = base.env.clone();
        // KEY alone takes berth's own value, as `run -e KEY` and podman's exec do.
        crate::spec::set_env(&mut p.env, &overrides.env);
        if let Some(w) = &overrides.workdir {
            p.cwd = w.clone();
        }
        if let Some(u) = &overrides.user {
            p.user = u.clone();
        }
        let mut process = p.runtime_process(&self.rootfs(c))?;
        // Another user than the container's gets no capabilities beyond the bounding
        // set unless it is root, as podman's exec (the added ones are the container
        // user's).
        if p.user != base.user && process.user().uid() != 0 {
            if let Some(mut caps) = process.capabilities().clone() {
                caps.set_effective(None);
                caps.set_permitted(None);
                caps.set_inheritable(None);
                caps.set_ambient(None);
                process.set_capabilities(Some(caps));
            }
        }
        let path = self.path(c).join(format!("exec-{}.json", names::new_id()));
        let mut f = fs::File::create(&path).map_err(io(format!("creating {}", path.display())))?;
        serde_json::to_writer(&mut f, &process)
            .map_err(|e| RuntimeError::Invalid(e.to_string()))?;
        f.flush()
            .map_err(io(format!("writing {}", path.display())))?;
        let code = runtime.exec(&c.id, &path, stdin);
        let _ = fs::remove_file(&path);
        code
    }

    /// Sends the stop signal (the image's, else SIGTERM), then SIGKILL after
    /// `timeout`; waits for the process to be gone.
    pub fn stop(&self, c: &ContainerRecord, runtime: &Runtime, timeout: Duration) -> Result<()> {
        // Removed meanwhile: nothing left to stop.
        let Some(_lock) = self.lock(c)? else {
            return Ok(());
        };
        self.stop_locked(c, runtime, timeout)
    }

    fn stop_locked(&self, c: &ContainerRecord, runtime: &Runtime, timeout: Duration) -> Result<()> {
        let runtime = &self.runtime_of(c, runtime);
        if !matches!(self.status(c, Some(runtime)), Status::Running(_)) {
            return Ok(());
        }
        let signal = self
            .process(c)?
            .stop_signal
            .unwrap_or_else(|| "SIGTERM".into());
        let _ = runtime.kill(&c.id, signal.trim_start_matches("SIG"));
        if !self.wait_stopped(c, runtime, timeout) {
            let _ = runtime.kill(&c.id, "KILL");
            self.wait_stopped(c, runtime, Duration::from_secs(10));
        }
        if matches!(runtime.state(&c.id)?, RuntimeState::Running(_)) {
            return Err(RuntimeError::Failed {
                runtime: runtime.name(),
                action: "stop".into(),
                id: c.id.clone(),
                detail: "still running after SIGKILL".into(),
            });
        }
        runtime.delete(&c.id, true)?;
        let mut s = self.state(c);
        if s.finished.is_none() {
            s.finished = Some(crate::now());
            s.exit_code.get_or_insert(137);
            self.save_state(c, &s)?;
        }
        Ok(())
    }

    fn wait_stopped(&self, c: &ContainerRecord, runtime: &Runtime, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !matches!(runtime.state(&c.id), Ok(RuntimeState::Running(_))) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Removes the container: refused while it runs unless `force` (then it is
    /// killed first). Its files go, then its record.
    pub fn remove(
        &self,
        c: &ContainerRecord,
        runtime: Option<&Runtime>,
        force: bool,
    ) -> Result<()> {
        let runtime = runtime.map(|r| self.runtime_of(c, r));
        let runtime = runtime.as_ref();
        // Removed already (by another rm, or a run -d --rm's monitor): its record may
        // still be there, and goes.
        let Some(lock) = self.lock(c)? else {
            self.store.remove_container(&c.id)?;
            return Ok(());
        };
        if let Status::Running(_) = self.status(c, runtime) {
            match (force, runtime) {
                (true, Some(r)) => self.stop_locked(c, r, Duration::ZERO)?,
                _ => return Err(RuntimeError::Running(c.id.clone())),
            }
        }
        if let Some(r) = runtime {
            r.delete(&c.id, true)?;
        }
        // Under the lock to the end: a start or stop waiting for it then finds the
        // container gone rather than writing into a folder being removed. (A last
        // state write of a run ending at this moment is not under it: tried again.)
        if berth_rootfs::remove_all(&self.path(c)).is_err() {
            std::thread::sleep(Duration::from_millis(100));
            berth_rootfs::remove_all(&self.path(c))?;
        }
        self.store.remove_container(&c.id)?;
        drop(lock);
        Ok(())
    }

    /// The runtime that ran `c` (recorded at its start) where it differs from `given`:
    /// a container run with runc is stopped, removed and asked about through runc
    /// whatever the default runtime is now (with crun installed beside it, crun knew
    /// nothing of it: stop recorded an exit and left it running).
    fn runtime_of(&self, c: &ContainerRecord, given: &Runtime) -> Runtime {
        match self.state(c).runtime {
            Some(p) if p != given.program() && p.is_file() => given.with_program(p),
            _ => given.clone(),
        }
    }

    /// One container's lock (its folder's `lock` file, `flock`ed): what looks at its
    /// state and changes it (start, run, stop, rm) takes it, so that two starts at
    /// once run one process, not two on one root file system. Let go when dropped
    /// (or when the process ends).
    /// `None` when the container was removed (its folder gone, or removed while this
    /// waited: the lock file has no name left).
    fn lock(&self, c: &ContainerRecord) -> Result<Option<Lock>> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::MetadataExt;
        let path = self.path(c).join("lock");
        let file = match fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(format!("opening {}", path.display()))(e)),
        };
        loop {
            // SAFETY: flock on a descriptor this function owns.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                break;
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(io(format!("locking {}", path.display()))(e));
            }
        }
        let removed = file
            .metadata()
            .map_err(io(format!("looking at {}", path.display())))?
            .nlink()
            == 0;
        Ok((!removed).then_some(Lock(file)))
    }

    /// The whole file system as a tar (`export`).
    pub fn export(&self, c: &ContainerRecord, out: impl Write) -> Result<()> {
        berth_rootfs::export(&self.rootfs(c), out, &berth_rootfs::DiffOptions::default())?;
        Ok(())
    }

    /// A new image: the container's image plus one layer of what changed in its file
    /// system since it was made (whiteouts for what went). Returns the image ID.
    pub fn commit(&self, c: &ContainerRecord, opts: &crate::ImageOptions) -> Result<Digest> {
        let base = self.store.find(&c.image.to_string())?;
        let snapshot = Snapshot::load(&self.path(c).join("base.snapshot"))?;
        // The diff goes to a file first: packing reads it as a stream afterwards.
        let mut tar = tempfile::tempfile_in(self.path(c)).map_err(io("creating a scratch file"))?;
        berth_rootfs::diff(
            &self.rootfs(c),
            &snapshot,
            std::io::BufWriter::with_capacity(1 << 20, &mut tar),
            &berth_rootfs::DiffOptions::default(),
        )?;
        use std::io::Seek;
        tar.seek(std::io::SeekFrom::Start(0))
            .map_err(io("rewinding the scratch file"))?;
        crate::image::add_layer(
            &self.store,
            Some(&base),
            std::io::BufReader::with_capacity(1 << 20, tar),
            opts,
        )
    }
}
