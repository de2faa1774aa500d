//! Runs a Containerfile: stages in order (up to `--target`), each instruction a step
//! that changes the state's config (ENV, CMD, …), or its file system (RUN, COPY,
//! ADD: a layer), looked up in the cache first.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_containerfile::{expand, Containerfile, Form, Instruction, Kind};
use berth_image::{media_type as mt, Digest, Platform};
use berth_rootfs::{DiffOptions, Snapshot, UnpackOptions};
use berth_runtime::{ImageOptions, Process, Runtime};
use berth_transport::local::LocalStore;
use serde_json::{json, Value};

use crate::context::{self, Source};
use crate::mounts::{self, MountPoints};
use crate::state::{chain, Layer, State};
use crate::{Bases, BuildError, BuildOptions, Built};

/// A stage's root file system while steps run in it.
struct Rootfs {
    /// `<store>/build/<id>`: `rootfs/` and the runtime bundle's config.json.
    dir: PathBuf,
    /// How many of the state's layers it holds.
    layers: usize,
    /// Its state after the last step, for the next diff.
    snapshot: Snapshot,
}

impl Rootfs {
    fn path(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
}

impl Drop for Rootfs {
    fn drop(&mut self) {
        let _ = berth_rootfs::remove_all(&self.dir);
    }
}

/// A bind mount's source, found; `_stage` holds the stage's file system it is in.
struct BindSource {
    found: context::Found,
    _stage: Option<Rootfs>,
}

/// A finished stage, for `COPY --from`.
struct Done {
    name: Option<String>,
    state: State,
}

struct Builder<'a> {
    store: Arc<LocalStore>,
    opts: &'a BuildOptions,
    file: String,
    bases: &'a dyn Bases,
    platform: Platform,
    runtime: Option<Runtime>,
    log: &'a mut dyn FnMut(&str),
    step: usize,
    steps: usize,
    cached: usize,
}

/// Builds the image; `log` gets podman's step lines (`STEP 2/5: COPY …`).
pub fn build(
    store: Arc<LocalStore>,
    opts: &BuildOptions,
    bases: &dyn Bases,
    log: &mut dyn FnMut(&str),
) -> Result<Built, BuildError> {
    let path = match &opts.file {
        Some(f) => f.clone(),
        None => ["Containerfile", "Dockerfile"]
            .iter()
            .map(|n| opts.context.join(n))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                BuildError::Other(format!(
                    "no Containerfile or Dockerfile in {}",
                    opts.context.display()
                ))
            })?,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "Containerfile".into());
    let text = fs::read_to_string(&path)
        .map_err(|e| BuildError::Other(format!("reading {}: {e}", path.display())))?;
    let parsed = berth_containerfile::parse(&text, &name)?;
    let last = match &opts.target {
        None => parsed.stages.len().saturating_sub(1),
        Some(t) => parsed
            .stages
            .iter()
            .position(|s| {
                s.name.as_deref() == Some(t.to_lowercase().as_str()) || s.index.to_string() == *t
            })
            .ok_or_else(|| BuildError::Other(format!("--target {t}: no such stage")))?,
    };
    let steps = parsed.stages[..=last]
        .iter()
        .map(|s| 1 + s.instructions.len())
        .sum::<usize>()
        + opts.labels.len();
    let mut b = Builder {
        store,
        opts,
        file: name,
        bases,
        platform: opts.platform.clone().unwrap_or_else(Platform::this_machine),
        runtime: None,
        log,
        step: 0,
        steps,
        cached: 0,
    };
    let state = b.stages(&parsed, last)?;
    b.commit(state)
}

impl Builder<'_> {
    fn at(&self, i: &Instruction, message: impl std::fmt::Display) -> BuildError {
        let instruction = i
            .text
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_uppercase();
        BuildError::At {
            file: self.file.clone(),
            line: i.line,
            instruction,
            message: message.to_string(),
        }
    }

    fn say(&mut self, what: &str) {
        self.step += 1;
        let line = format!("STEP {}/{}: {what}", self.step, self.steps);
        (self.log)(&line);
    }

    fn stages(&mut self, file: &Containerfile, last: usize) -> Result<State, BuildError> {
        // ARGs before the first FROM: usable in FROM lines only (and as defaults of a
        // stage's bare ARG). The platform ARGs are there undeclared, as BuildKit and
        // buildah set them: BUILD* the machine's, TARGET* what is built for.
        let mut global: BTreeMap<String, String> = BTreeMap::new();
        for (prefix, p) in [
            ("BUILD", Platform::this_machine()),
            ("TARGET", self.platform.clone()),
        ] {
            let values = [
                ("PLATFORM", p.to_string()),
                ("OS", p.os.clone()),
                ("ARCH", p.architecture.clone()),
                ("VARIANT", p.variant.clone().unwrap_or_default()),
            ];
            for (name, value) in values {
                let name = format!("{prefix}{name}");
                let given = self.opts.build_args.iter().find(|(k, _)| *k == name);
                global.insert(name, given.map_or(value, |(_, v)| v.clone()));
            }
        }
        for a in &file.global_args {
            let lookup = |k: &str| global.get(k).cloned();
            let value = self.arg_value(&a.name, a.default.as_deref(), &lookup, file.escape)?;
            if let Some(v) = value {
                global.insert(a.name.clone(), v);
            }
        }
        let mut done: Vec<Done> = Vec::new();
        for stage in &file.stages[..=last] {
            let lookup = |k: &str| global.get(k).cloned();
            let base = expand(&stage.base, file.escape, &lookup).map_err(|e| {
                BuildError::Other(format!("{}:{}: FROM: {}", self.file, stage.line, e.message))
            })?;
            self.say(&stage.text);
            // `FROM --platform=…` picks the base for that platform (this stage only).
            let build_platform = self.platform.clone();
            if let Some(p) = &stage.platform {
                let p = expand(p, file.escape, &lookup).map_err(|e| {
                    BuildError::Other(format!("{}:{}: FROM: {}", self.file, stage.line, e.message))
                })?;
                self.platform = Platform::parse(&p).ok_or_else(|| {
                    BuildError::Other(format!(
                        "{}:{}: FROM: --platform={p}: use OS/ARCH[/VARIANT]",
                        self.file, stage.line
                    ))
                })?;
            }
            let from = self.from(&base, &done, stage.line);
            self.platform = build_platform;
            let mut state = from?;
            state.cmd_set = false;
            // Every step's time is --timestamp's: a step cached without it is not
            // this build's.
            if let Some(t) = self.opts.timestamp {
                state.key = chain(&state.key, "--timestamp", &t.to_string());
            }
            default_path(&mut state.config);
            let mut rootfs: Option<Rootfs> = None;
            let mut vars: BTreeMap<String, String> = BTreeMap::new();
            // The base's ONBUILD triggers run first, as buildah and BuildKit run them,
            // and are spent: the image built has none of its base's.
            let triggers = self.triggers(&mut state, stage.line)?;
            self.steps += triggers.len();
            for i in triggers.iter().chain(&stage.instructions) {
                self.say(&i.text);
                self.instruction(i, file, &mut state, &mut rootfs, &mut vars, &global, &done)?;
            }
            if stage.index == last {
                self.label_steps(&mut state)?;
            }
            done.push(Done {
                name: stage.name.clone(),
                state,
            });
        }
        done.pop()
            .map(|d| d.state)
            .ok_or_else(|| BuildError::Other("no stage to build".into()))
    }

    /// The ONBUILD triggers of a stage's base, parsed, taken out of its config.
    fn triggers(&self, state: &mut State, line: usize) -> Result<Vec<Instruction>, BuildError> {
        let Some(run) = state.config["config"].as_object_mut() else {
            return Ok(Vec::new());
        };
        let Some(list) = run.remove("OnBuild") else {
            return Ok(Vec::new());
        };
        let bad = |trigger: &str, why: String| {
            BuildError::Other(format!(
                "{}:{line}: FROM: the base's ONBUILD trigger {trigger:?}: {why}",
                self.file
            ))
        };
        let mut out = Vec::new();
        // Each trigger is one instruction, parsed alone as BuildKit parses it: the base
        // is not this file, and one trigger may not bring in others (or a FROM).
        for trigger in list
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            let text = format!("FROM scratch\n{trigger}\n");
            let parsed = berth_containerfile::parse(&text, "ONBUILD")
                .map_err(|e| bad(trigger, e.to_string()))?;
            match &parsed.stages[..] {
                [stage] if stage.instructions.len() == 1 => {
                    out.extend(stage.instructions.iter().cloned())
                }
                _ => return Err(bad(trigger, "not one instruction".into())),
            }
        }
        Ok(out)
    }

    /// The value an ARG takes: `--build-arg`, else its default expanded with `lookup`.
    fn arg_value(
        &self,
        name: &str,
        default: Option<&str>,
        lookup: &dyn Fn(&str) -> Option<String>,
        escape: char,
    ) -> Result<Option<String>, BuildError> {
        if let Some((_, v)) = self.opts.build_args.iter().find(|(k, _)| k == name) {
            return Ok(Some(v.clone()));
        }
        match default {
            Some(d) => Ok(Some(
                expand(d, escape, lookup).map_err(|e| BuildError::Other(e.message))?,
            )),
            None => Ok(None),
        }
    }

    /// FROM: scratch, an earlier stage, or an image (pulled by `bases` if missing).
    fn from(&mut self, base: &str, done: &[Done], line: usize) -> Result<State, BuildError> {
        if base == "scratch" {
            let mut config = berth_runtime::empty_config();
            config["architecture"] = json!(self.platform.architecture);
            config["os"] = json!(self.platform.os);
            return Ok(State {
                config,
                layers: Vec::new(),
                key: chain("", "FROM scratch", &self.platform.to_string()),
                cmd_set: false,
            });
        }
        if let Some(d) = done
            .iter()
            .rev()
            .find(|d| d.name.as_deref() == Some(base.to_lowercase().as_str()))
        {
            return Ok(d.state.clone());
        }
        let image = self
            .bases
            .image(&self.store, base, &self.platform)
            .map_err(|e| BuildError::Other(format!("{}:{line}: FROM: {e}", self.file)))?;
        self.image_state(&image).map_err(BuildError::Other)
    }

    #[allow(clippy::too_many_arguments)]
    fn instruction(
        &mut self,
        i: &Instruction,
        file: &Containerfile,
        state: &mut State,
        rootfs: &mut Option<Rootfs>,
        vars: &mut BTreeMap<String, String>,
        global: &BTreeMap<String, String>,
        done: &[Done],
    ) -> Result<(), BuildError> {
        let escape = file.escape;
        // What `$X` means here: ENV of the config, then ARGs in scope.
        let env_now = env_map(&state.config);
        let lookup = |k: &str| env_now.get(k).cloned().or_else(|| vars.get(k).cloned());
        let x = |w: &str| expand(w, escape, &lookup).map_err(|e| self.at(i, e.message));
        let created = self.created();
        match &i.kind {
            Kind::Arg(args) => {
                // Every default is expanded with what was in scope before the
                // instruction (ENV, then ARGs), as BuildKit does: `ARG A=1 B=$A` leaves
                // B empty.
                let mut values = Vec::new();
                for a in args {
                    let value = match (&a.default, global.get(&a.name)) {
                        // A bare ARG re-declares a global one inside the stage, with
                        // its value as it was set (expanded once, --build-arg applied).
                        (None, Some(g)) => Some(g.clone()),
                        _ => self.arg_value(&a.name, a.default.as_deref(), &lookup, escape)?,
                    };
                    values.push((a.name.clone(), value));
                }
                for (name, value) in values {
                    if let Some(v) = value {
                        vars.insert(name, v);
                    }
                }
                let used: Vec<String> = args
                    .iter()
                    .map(|a| {
                        format!(
                            "{}={}",
                            a.name,
                            vars.get(&a.name).cloned().unwrap_or_default()
                        )
                    })
                    .collect();
                state.key = chain(&state.key, &i.text, &used.join("\n"));
            }
            Kind::Run {
                cmd,
                heredocs,
                flags,
            } => {
                let shell = berth_runtime::default_shell(&state.config);
                let (args, script) =
                    run_command(cmd, heredocs, &shell).map_err(|e| self.at(i, e))?;
                let expand_flag = |v: &str| x(v).map_err(|e| e.to_string());
                let mut run_flags =
                    mounts::parse(flags, &expand_flag).map_err(|e| self.at(i, e))?;
                // A relative target is in the working directory, as BuildKit joins it.
                let workdir = state.config["config"]["WorkingDir"]
                    .as_str()
                    .filter(|w| w.starts_with('/'))
                    .unwrap_or("/")
                    .to_string();
                for m in &mut run_flags.mounts {
                    if !m.target.starts_with('/') {
                        m.target = format!("{}/{}", workdir.trim_end_matches('/'), m.target);
                    }
                }
                let binds = self
                    .bind_sources(&run_flags.mounts, done)
                    .map_err(|e| self.at(i, e))?;
                let arg_env: Vec<String> = vars
                    .iter()
                    .filter(|(k, _)| !env_now.contains_key(*k))
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                // The bodies are what runs: the step's text alone leaves them out.
                let mut what = i.text.clone();
                for h in heredocs {
                    what.push_str(&format!("\n<<{}\n{}", h.name, h.effective_content()));
                }
                // And what a bind mount shows it.
                for (target, b) in &binds {
                    let hash = b.found.hash().map_err(|e| self.at(i, e))?;
                    what.push_str(&format!("\n--mount {target} {hash}"));
                }
                let key = chain(&state.key, &what, &arg_env.join("\n"));
                let created_by = match cmd {
                    Form::Shell(s) => format!("/bin/sh -c {s}"),
                    Form::Exec(a) => format!(
                        "/bin/sh -c {}",
                        serde_json::to_string(a).unwrap_or_default()
                    ),
                };
                if self.cached_step(state, &key)? {
                    return Ok(());
                }
                let root = self.rootfs(state, rootfs).map_err(|e| self.at(i, e))?;
                let mut process = Process::from_image(
                    &state.config,
                    &berth_runtime::Overrides {
                        entrypoint: Some(args),
                        ..Default::default()
                    },
                )
                .map_err(|e| self.at(i, e))?;
                process.env.extend(arg_env);
                process.no_network = run_flags.no_network;
                // The working directory first: it is the image's, not a mount point.
                berth_rootfs::create_dir_in(&root.path(), &process.cwd)
                    .map_err(|e| self.at(i, format!("WORKDIR {}: {e}", process.cwd)))?;
                let points = MountPoints::before(&root.path(), &run_flags.mounts);
                let held = self
                    .mount(&mut process, &run_flags.mounts, binds)
                    .map_err(|e| self.at(i, e))?;
                // A script with a shebang runs as a file of its own, as BuildKit's
                // /dev/pipes/NAME (outside the root file system, so in no layer).
                let pipes = match &script {
                    Some((name, body)) => {
                        let dir = tempfile::tempdir().map_err(|e| self.at(i, e))?;
                        let file = dir.path().join("script");
                        std::fs::write(&file, body).map_err(|e| self.at(i, e))?;
                        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755))
                            .map_err(|e| self.at(i, e))?;
                        process.binds.push(berth_runtime::Bind {
                            source: file.display().to_string(),
                            destination: format!("/dev/pipes/{name}"),
                            read_only: true,
                        });
                        Some(dir)
                    }
                    None => None,
                };
                let code = self.run(&process, root);
                drop((pipes, held));
                points.remove();
                let code = code.map_err(|e| self.at(i, e))?;
                if code != 0 {
                    return Err(self.at(i, format!("the command exited with status {code}")));
                }
                self.layer_step(state, root, key, &created, &created_by)
                    .map_err(|e| self.at(i, e))?;
            }
            Kind::Copy { .. } | Kind::Add { .. } => {
                let (add, from, chown, chmod, sources, dest, heredocs) = match &i.kind {
                    Kind::Copy {
                        from,
                        chown,
                        chmod,
                        sources,
                        dest,
                        heredocs,
                        ..
                    } => (false, from.as_ref(), chown, chmod, sources, dest, heredocs),
                    Kind::Add {
                        chown,
                        chmod,
                        sources,
                        dest,
                        heredocs,
                        ..
                    } => (true, None, chown, chmod, sources, dest, heredocs),
                    _ => unreachable!("matched COPY or ADD"),
                };
                let sources: Vec<String> =
                    sources.iter().map(|s| x(s)).collect::<Result<_, _>>()?;
                let dest = x(dest)?;
                let workdir = state.config["config"]["WorkingDir"]
                    .as_str()
                    .unwrap_or("/")
                    .to_string();
                let dest = match dest.starts_with('/') {
                    true => dest,
                    false => format!("{}/{dest}", workdir.trim_end_matches('/')),
                };
                let inline: Vec<(String, String)> = heredocs
                    .iter()
                    .map(|h| (h.name.clone(), h.effective_content()))
                    .collect();
                // Sources: the context, or another stage's (or image's) file system,
                // made for the copy and removed after it.
                let other: Option<Rootfs> = match from {
                    Some(f) => {
                        let f = x(f)?;
                        let st = self.stage_or_image(&f, done).map_err(|e| self.at(i, e))?;
                        Some(self.materialize(&st).map_err(|e| self.at(i, e))?)
                    }
                    None => None,
                };
                let other_path = other.as_ref().map(Rootfs::path);
                let ignore = context_ignore(&self.opts.context).map_err(|e| self.at(i, e))?;
                let source = match &other_path {
                    Some(p) => Source::Rootfs(p),
                    None => Source::Context {
                        dir: &self.opts.context,
                        ignore: &ignore,
                    },
                };
                let found =
                    context::find(&source, &sources, inline, add).map_err(|e| self.at(i, e))?;
                let hash = found.hash().map_err(|e| self.at(i, e))?;
                let owner_spec = chown.as_deref().map(&x).transpose()?;
                let mode = match chmod.as_deref().map(&x).transpose()? {
                    Some(m) => Some(
                        u32::from_str_radix(&m, 8)
                            .map_err(|_| self.at(i, format!("--chmod={m}: not an octal mode")))?,
                    ),
                    None => None,
                };
                let key = chain(
                    &state.key,
                    &i.text,
                    &format!("{hash}\n{dest}\n{owner_spec:?}\n{mode:?}"),
                );
                let verb = if add { "ADD" } else { "COPY" };
                let created_by = format!("/bin/sh -c #(nop) {verb} multi:{hash} in {dest} ");
                if self.cached_step(state, &key)? {
                    return Ok(());
                }
                let root = self.rootfs(state, rootfs).map_err(|e| self.at(i, e))?;
                let owner = match &owner_spec {
                    Some(o) => {
                        let ids = berth_runtime::resolve_user(&root.path(), o)
                            .map_err(|e| self.at(i, e))?;
                        (ids.uid, ids.gid)
                    }
                    None => (0, 0),
                };
                self.place(&found, &dest, root, owner, mode)
                    .map_err(|e| self.at(i, e))?;
                self.layer_step(state, root, key, &created, &created_by)
                    .map_err(|e| self.at(i, e))?;
            }
            kind => {
                let kind = self.expanded(kind, &x)?;
                self.config_step(state, &i.text, &kind)
                    .map_err(|e| self.at(i, e))?;
            }
        }
        Ok(())
    }

    /// A step that changes the config alone (ENV, LABEL, CMD, …; `--label`'s LABELs).
    /// Cached too, timestamps and all: a rebuild with nothing changed makes the very
    /// same config, hence the same image ID.
    fn config_step(&mut self, state: &mut State, text: &str, kind: &Kind) -> Result<(), String> {
        let key = chain(&state.key, text, &format!("{kind:?}"));
        if self.cached_step(state, &key).map_err(|e| e.to_string())? {
            return Ok(());
        }
        let shell_now = berth_runtime::default_shell(&state.config);
        if let Kind::Maintainer(m) = kind {
            state.config["author"] = json!(m);
        } else if let Kind::Healthcheck(h) = kind {
            state.config["config"]["Healthcheck"] = healthcheck(h.as_ref());
        } else if !berth_runtime::apply_instruction(&mut state.config, kind, &shell_now) {
            return Err("not supported".into());
        }
        match kind {
            Kind::Cmd(_) => state.cmd_set = true,
            Kind::Entrypoint(_) if !state.cmd_set => {
                if let Some(run) = state.config["config"].as_object_mut() {
                    run.remove("Cmd");
                }
            }
            _ => {}
        }
        let created_by = format!("/bin/sh -c #(nop) {text}");
        state.record(&self.created(), &created_by, None);
        state.key = key;
        self.remember(state)
    }

    /// `--label K=V`: a LABEL step each, in the order given, at the end of the stage
    /// built, as podman's build adds them (`LABEL "K"="V"`, the value taken as it is:
    /// no `$` expanded).
    fn label_steps(&mut self, state: &mut State) -> Result<(), BuildError> {
        for (k, v) in &self.opts.labels {
            let text = format!("LABEL {k:?}={v:?}");
            self.say(&text);
            let kind = Kind::Label(vec![(k.clone(), v.clone())]);
            self.config_step(state, &text, &kind)
                .map_err(|e| BuildError::Other(format!("--label {k}: {e}")))?;
        }
        Ok(())
    }

    /// Expands the words of a config instruction.
    fn expanded(
        &self,
        kind: &Kind,
        x: &dyn Fn(&str) -> Result<String, BuildError>,
    ) -> Result<Kind, BuildError> {
        let pairs = |p: &Vec<(String, String)>| -> Result<Vec<(String, String)>, BuildError> {
            p.iter().map(|(k, v)| Ok((x(k)?, x(v)?))).collect()
        };
        let list = |l: &Vec<String>| -> Result<Vec<String>, BuildError> {
            l.iter().map(|w| x(w)).collect()
        };
        Ok(match kind {
            Kind::Env(p) => Kind::Env(pairs(p)?),
            Kind::Label(p) => Kind::Label(pairs(p)?),
            Kind::Expose(l) => Kind::Expose(list(l)?),
            Kind::Volume(l) => Kind::Volume(list(l)?),
            Kind::User(u) => Kind::User(x(u)?),
            Kind::Workdir(w) => Kind::Workdir(x(w)?),
            Kind::StopSignal(s) => Kind::StopSignal(x(s)?),
            other => other.clone(),
        })
    }

    fn created(&self) -> String {
        match self.opts.timestamp {
            Some(t) => {
                let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0) as u64);
                humantime_rfc3339(at)
            }
            None => humantime_rfc3339(std::time::SystemTime::now()),
        }
    }

    /// A cache hit: the state after the step, its layers still in the store.
    fn cached_step(&mut self, state: &mut State, key: &str) -> Result<bool, BuildError> {
        if self.opts.no_cache {
            return Ok(false);
        }
        let Some(text) = self.store.cache_get(key).map_err(other)? else {
            return Ok(false);
        };
        let Ok(cached) = serde_json::from_str::<State>(&text) else {
            return Ok(false);
        };
        for l in &cached.layers {
            let Ok(d) = l.digest.parse::<Digest>() else {
                return Ok(false);
            };
            if !self.store.has_blob(&d).map_err(other)? {
                return Ok(false);
            }
        }
        *state = cached;
        self.cached += 1;
        (self.log)(&format!("--> Using cache {}", &key[..12]));
        Ok(true)
    }

    /// The stage's root file system at `state`: made (or brought up to date) from
    /// the state's layers.
    fn rootfs<'r>(
        &self,
        state: &State,
        slot: &'r mut Option<Rootfs>,
    ) -> Result<&'r mut Rootfs, String> {
        let stale = slot.as_ref().is_none_or(|r| r.layers != state.layers.len());
        if stale {
            *slot = None;
            *slot = Some(self.materialize(state)?);
        }
        slot.as_mut()
            .ok_or_else(|| "no root file system".to_string())
    }

    /// An empty root file system in a folder of its own, removed with it.
    fn scratch_rootfs(&self) -> Result<Rootfs, String> {
        let dir = self
            .store
            .root()
            .join("build")
            .join(format!("{:016x}", rand_u64()));
        let root = dir.join("rootfs");
        fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
        Ok(Rootfs {
            dir,
            layers: 0,
            snapshot: Snapshot::empty(),
        })
    }

    /// The sources of a RUN's bind mounts, found as COPY finds them (the context less
    /// what it ignores, or a stage's or image's file system), with their targets.
    fn bind_sources(
        &self,
        mounts: &[mounts::Mount],
        done: &[Done],
    ) -> Result<Vec<(String, BindSource)>, String> {
        let mut out = Vec::new();
        // The context's ignore rules, read once for the step's bind mounts.
        let mut ignore_file = None;
        for m in mounts {
            let mounts::MountKind::Bind { from, source, .. } = &m.kind else {
                continue;
            };
            let other = match from {
                Some(f) => Some(self.materialize(&self.stage_or_image(f, done)?)?),
                None => None,
            };
            let ignore = match &ignore_file {
                Some(i) => i,
                None => ignore_file.insert(context_ignore(&self.opts.context)?),
            };
            let other_path = other.as_ref().map(Rootfs::path);
            let from = match &other_path {
                Some(p) => Source::Rootfs(p),
                None => Source::Context {
                    dir: &self.opts.context,
                    ignore,
                },
            };
            let found = context::find(&from, std::slice::from_ref(source), Vec::new(), false)?;
            out.push((
                m.target.clone(),
                BindSource {
                    found,
                    _stage: other,
                },
            ));
        }
        Ok(out)
    }

    /// Adds a RUN's mounts to its process: each bind source copied into a folder of
    /// its own (its writes discarded, nothing outside it reachable), each cache folder
    /// made once under the store, each tmpfs. Returns the copies, to remove after the
    /// step.
    fn mount(
        &self,
        process: &mut Process,
        mounts: &[mounts::Mount],
        binds: Vec<(String, BindSource)>,
    ) -> Result<Vec<Rootfs>, String> {
        let mut held = Vec::new();
        let mut binds = binds.into_iter();
        for m in mounts {
            let (source, read_only) = match &m.kind {
                mounts::MountKind::Bind { rw, .. } => {
                    let (_, b) = binds.next().ok_or("a bind mount without its source")?;
                    let copy = self.scratch_rootfs()?;
                    self.place(&b.found, "/m", &copy, (0, 0), None)?;
                    let source = copy.path().join("m");
                    held.push(copy);
                    (source, !rw)
                }
                mounts::MountKind::Cache {
                    id,
                    mode,
                    uid,
                    gid,
                    read_only,
                } => (self.cache_folder(id, *mode, *uid, *gid)?, *read_only),
                mounts::MountKind::Secret {
                    id,
                    required,
                    mode,
                    uid,
                    gid,
                } => {
                    let Some((_, src)) = self.opts.secrets.iter().find(|(s, _)| s == id) else {
                        if *required {
                            return Err(format!(
                                "secret {id:?} is required: give it with --secret id={id},src=FILE"
                            ));
                        }
                        continue;
                    };
                    // A copy of its own with the mount's owner and mode, outside the
                    // root file system: the file given stays as it is.
                    let copy = self.scratch_rootfs()?;
                    let file = copy.dir.join("secret");
                    fs::copy(src, &file)
                        .map_err(|e| format!("secret {id}: {}: {e}", src.display()))?;
                    fs::set_permissions(&file, fs::Permissions::from_mode(*mode))
                        .and_then(|_| std::os::unix::fs::chown(&file, Some(*uid), Some(*gid)))
                        .map_err(|e| format!("secret {id}: {e}"))?;
                    held.push(copy);
                    (file, true)
                }
                mounts::MountKind::Tmpfs { size } => {
                    process.tmpfs.push(berth_runtime::Tmpfs {
                        destination: m.target.clone(),
                        options: size.iter().map(|s| format!("size={s}")).collect(),
                    });
                    continue;
                }
            };
            process.binds.push(berth_runtime::Bind {
                source: source.display().to_string(),
                destination: m.target.clone(),
                read_only,
            });
        }
        Ok(held)
    }

    /// Puts what COPY/ADD found at `dest` in `root`'s file system: a tar of it, written
    /// beside the root, applied as a layer is (the same hostile-entry rules).
    fn place(
        &self,
        found: &context::Found,
        dest: &str,
        root: &Rootfs,
        owner: (u32, u32),
        mode: Option<u32>,
    ) -> Result<(), String> {
        let mut tar = tempfile::tempfile_in(&root.dir).map_err(|e| e.to_string())?;
        found.write_tar(
            dest,
            &root.path(),
            owner,
            mode,
            self.opts.tar_limits,
            std::io::BufWriter::new(&mut tar),
        )?;
        use std::io::Seek;
        tar.seek(std::io::SeekFrom::Start(0))
            .map_err(|e| e.to_string())?;
        let opts = UnpackOptions {
            limits: self.opts.tar_limits,
            ..UnpackOptions::for_current_user()
        };
        berth_rootfs::apply_layer(&root.path(), std::io::BufReader::new(tar), &opts)
            .map_err(|e| e.to_string())
            .map(|_| ())
    }

    /// `<store>/build-cache/<sha256 of id>`: a cache mount's folder, kept between
    /// builds; made with `mode`, `uid` and `gid` the first time.
    fn cache_folder(&self, id: &str, mode: u32, uid: u32, gid: u32) -> Result<PathBuf, String> {
        let name = berth_image::Digest::sha256_of(id.as_bytes())
            .hex()
            .to_string();
        let dir = self.store.root().join("build-cache").join(name);
        if fs::symlink_metadata(&dir).is_ok() {
            return Ok(dir);
        }
        let parent = self.store.root().join("build-cache");
        fs::create_dir_all(&parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        // Made aside and renamed: a build cut off half-way leaves no folder with the
        // wrong owner.
        let fresh = parent.join(format!(".new-{:016x}", rand_u64()));
        fs::create_dir(&fresh).map_err(|e| format!("{}: {e}", fresh.display()))?;
        fs::set_permissions(&fresh, fs::Permissions::from_mode(mode))
            .and_then(|_| std::os::unix::fs::chown(&fresh, Some(uid), Some(gid)))
            .map_err(|e| format!("{}: {e}", fresh.display()))?;
        if let Err(e) = fs::rename(&fresh, &dir) {
            let _ = fs::remove_dir(&fresh);
            if fs::symlink_metadata(&dir).is_err() {
                return Err(format!("{}: {e}", dir.display()));
            }
        }
        Ok(dir)
    }

    /// A root file system of `state`'s layers, in a folder of its own.
    fn materialize(&self, state: &State) -> Result<Rootfs, String> {
        let mut r = self.scratch_rootfs()?;
        let root = r.path();
        let opts = UnpackOptions {
            limits: self.opts.tar_limits,
            ..UnpackOptions::for_current_user()
        };
        let diff_ids = berth_image::diff_ids::diff_ids(&state.config, state.layers.len())?;
        for (l, diff_id) in state.layers.iter().zip(&diff_ids) {
            let d: Digest = l.digest.parse().map_err(|e| format!("{}: {e}", l.digest))?;
            let file = self.store.open_blob(&d).map_err(|e| e.to_string())?;
            // Each layer as the config names it (the image ID is the config's digest).
            berth_rootfs::apply_stored_layer(&root, file, diff_id, &opts)
                .map_err(|e| format!("layer {d}: {e}"))?;
        }
        r.layers = state.layers.len();
        berth_runtime::make_host_file_mount_points(&root).map_err(|e| e.to_string())?;
        r.snapshot = Snapshot::take(&root).map_err(|e| e.to_string())?;
        Ok(r)
    }

    /// The state of an earlier stage (by name or index) or of an image.
    fn stage_or_image(&self, name: &str, done: &[Done]) -> Result<State, String> {
        if let Some(d) = done.iter().enumerate().find(|(n, d)| {
            d.name.as_deref() == Some(name.to_lowercase().as_str()) || n.to_string() == name
        }) {
            return Ok(d.1.state.clone());
        }
        let image = self.bases.image(&self.store, name, &self.platform)?;
        self.image_state(&image)
    }

    /// A stored image as a stage's starting state: its config and layers.
    fn image_state(&self, image: &berth_transport::local::Image) -> Result<State, String> {
        let config = self
            .store
            .image_config(&image.id)
            .map_err(|e| e.to_string())?;
        let m = self
            .store
            .image_manifest(image)
            .map_err(|e| e.to_string())?;
        Ok(State {
            config,
            layers: m
                .layers
                .iter()
                .map(|l| Layer {
                    media_type: l.media_type.clone(),
                    digest: l.digest.to_string(),
                    size: l.size,
                })
                .collect(),
            key: chain("", "FROM", &image.id.to_string()),
            cmd_set: false,
        })
    }

    /// RUN: the process in the stage's root file system under the OCI runtime, its
    /// output on stderr.
    fn run(&mut self, process: &Process, root: &Rootfs) -> Result<i32, String> {
        if self.runtime.is_none() {
            self.runtime = Some(
                Runtime::find(self.opts.runtime.as_deref(), self.store.root())
                    .map_err(|e| e.to_string())?,
            );
        }
        let runtime = self.runtime.as_ref().ok_or("no runtime")?;
        let mut spec = process
            .runtime_spec(&root.path(), "berth-build")
            .map_err(|e| e.to_string())?;
        berth_runtime::add_host_files(&mut spec, &root.dir, &[]).map_err(|e| e.to_string())?;
        spec.save(root.dir.join("config.json"))
            .map_err(|e| e.to_string())?;
        let id = format!("berth-build-{:016x}", rand_u64());
        // RUN's output goes to stderr: stdout is for the image ID.
        use std::os::fd::AsFd;
        let stderr = std::io::stderr().as_fd().try_clone_to_owned().map_or_else(
            |_| std::process::Stdio::inherit(),
            std::process::Stdio::from,
        );
        runtime
            .run_to(&id, &root.dir, std::process::Stdio::null(), stderr)
            .map_err(|e| e.to_string())
    }

    /// After RUN/COPY/ADD: what changed becomes a layer of the state (and a cache
    /// entry).
    fn layer_step(
        &mut self,
        state: &mut State,
        root: &mut Rootfs,
        key: String,
        created: &str,
        created_by: &str,
    ) -> Result<(), String> {
        let mut tar = tempfile::tempfile_in(&root.dir).map_err(|e| e.to_string())?;
        berth_rootfs::diff(
            &root.path(),
            &root.snapshot,
            std::io::BufWriter::with_capacity(1 << 20, &mut tar),
            &DiffOptions {
                timestamp: self.opts.timestamp,
            },
        )
        .map_err(|e| e.to_string())?;
        use std::io::Seek;
        tar.seek(std::io::SeekFrom::Start(0))
            .map_err(|e| e.to_string())?;
        let packed = berth_runtime::store_layer(
            &self.store,
            std::io::BufReader::with_capacity(1 << 20, tar),
        )
        .map_err(|e| e.to_string())?;
        state.record(
            created,
            created_by,
            Some((
                Layer {
                    media_type: mt::OCI_LAYER_GZIP.to_string(),
                    digest: packed.digest.to_string(),
                    size: packed.size,
                },
                packed.diff_id.clone(),
            )),
        );
        state.key = key;
        root.layers = state.layers.len();
        root.snapshot = Snapshot::take(&root.path()).map_err(|e| e.to_string())?;
        self.remember(state)
    }

    /// Records the state after a step in the cache.
    fn remember(&mut self, state: &State) -> Result<(), String> {
        let text = serde_json::to_string(state).map_err(|e| e.to_string())?;
        self.store
            .cache_put(&state.key, &text)
            .map_err(|e| e.to_string())?;
        (self.log)(&format!("--> {}", &state.key[..12]));
        Ok(())
    }

    /// The image of the last stage: OCI drops what only Docker's format holds, with
    /// buildah's warning.
    fn commit(&mut self, mut state: State) -> Result<Built, BuildError> {
        if !self.opts.docker_format {
            for (field, what) in [
                ("Healthcheck", "HEALTHCHECK"),
                ("Shell", "SHELL"),
                ("OnBuild", "ONBUILD"),
            ] {
                let run = &mut state.config["config"];
                if run.get(field).is_some_and(|v| !v.is_null()) {
                    (self.log)(&format!(
                        "WARN[0000] {what} is not supported for OCI image format and will be ignored. Must use `docker` format"
                    ));
                    if let Some(o) = run.as_object_mut() {
                        o.remove(field);
                    }
                }
            }
        }
        // The image is as new as its last step (a cached rebuild keeps the ID).
        let last = state.config["history"]
            .as_array()
            .and_then(|h| h.last())
            .and_then(|h| h["created"].as_str())
            .map(str::to_string);
        state.config["created"] = json!(last.unwrap_or_else(|| self.created()));
        let layers = state.layer_tuples().map_err(BuildError::Other)?;
        let opts = ImageOptions {
            name: self.opts.tags.first().cloned(),
            docker_format: self.opts.docker_format,
            ..Default::default()
        };
        if let Some(t) = self.opts.tags.first() {
            (self.log)(&format!("COMMIT {t}"));
        }
        let id = berth_runtime::store_image(&self.store, &state.config, &layers, &opts)
            .map_err(other)?;
        for t in self.opts.tags.iter().skip(1) {
            self.store.tag(&id, t).map_err(other)?;
        }
        (self.log)(&format!("--> {}", &id.hex()[..12]));
        for t in &self.opts.tags {
            (self.log)(&format!("Successfully tagged {t}"));
        }
        Ok(Built {
            id,
            cached: self.cached,
            steps: self.steps,
        })
    }
}

fn other(e: impl std::fmt::Display) -> BuildError {
    BuildError::Other(e.to_string())
}

/// buildah gives a stage whose base sets no PATH the default one, after what Env
/// already holds.
fn default_path(config: &mut Value) {
    const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    if !config["config"].is_object() {
        config["config"] = json!({});
    }
    let env = &mut config["config"]["Env"];
    let has = env.as_array().is_some_and(|e| {
        e.iter()
            .any(|v| v.as_str().is_some_and(|s| s.starts_with("PATH=")))
    });
    if !has {
        match env.as_array_mut() {
            Some(list) => list.push(json!(PATH)),
            None => *env = json!([PATH]),
        }
    }
}

/// `.containerignore`, else `.dockerignore`, of the context.
fn context_ignore(context: &Path) -> Result<berth_containerfile::Ignore, String> {
    for name in [".containerignore", ".dockerignore"] {
        if let Ok(text) = fs::read_to_string(context.join(name)) {
            return berth_containerfile::Ignore::try_parse(&text)
                .map_err(|e| format!("{name}: {e}"));
        }
    }
    Ok(berth_containerfile::Ignore::parse(""))
}

/// The config's Env as a map.
fn env_map(config: &Value) -> BTreeMap<String, String> {
    config["config"]["Env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|e| e.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// HEALTHCHECK as Docker's config holds it (durations in nanoseconds).
fn healthcheck(h: Option<&berth_containerfile::Healthcheck>) -> Value {
    let Some(h) = h else {
        return json!({"Test": ["NONE"]});
    };
    let test = match &h.test {
        Form::Exec(a) => std::iter::once("CMD".to_string())
            .chain(a.iter().cloned())
            .collect::<Vec<_>>(),
        Form::Shell(s) => vec!["CMD-SHELL".to_string(), s.clone()],
    };
    let mut v = json!({"Test": test});
    for (key, d) in [
        ("Interval", &h.interval),
        ("Timeout", &h.timeout),
        ("StartPeriod", &h.start_period),
    ] {
        if let Some(ns) = d.as_deref().and_then(go_duration_ns) {
            v[key] = json!(ns);
        }
    }
    if let Some(r) = h.retries {
        v["Retries"] = json!(r);
    }
    v
}

/// `30s`, `1m30s`, `500ms` in nanoseconds.
fn go_duration_ns(s: &str) -> Option<u64> {
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let n_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let n: f64 = rest[..n_end].parse().ok()?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..u_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += n * unit;
        rest = &rest[u_end..];
    }
    Some(total as u64)
}

fn humantime_rfc3339(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_nanos(t).to_string()
}

fn rand_u64() -> u64 {
    rand::random()
}

/// A heredoc script RUN runs as a file: `(name, content)`.
type Script = (String, String);

/// What RUN runs, as BuildKit's `dispatchRun`: a command that is one heredoc runs its
/// body with the shell, or, when the body starts with `#!`, as a script file (returned
/// as its name and content, to mount at `/dev/pipes/NAME`); any other command with
/// heredocs is given to the shell whole, each body after it (`cat <<EOF > f`,
/// `<<EOF bash`), for the shell to read.
fn run_command(
    cmd: &Form,
    heredocs: &[berth_containerfile::Heredoc],
    shell: &[String],
) -> Result<(Vec<String>, Option<Script>), String> {
    let Form::Shell(s) = cmd else {
        return Ok((berth_runtime::command(cmd, shell), None));
    };
    let Some(first) = heredocs.first() else {
        return Ok((berth_runtime::command(cmd, shell), None));
    };
    if berth_containerfile::is_single_heredoc(s) {
        let body = first.effective_content();
        if body.starts_with("#!") {
            let name = &first.name;
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                return Err(format!("heredoc <<{name}: not a file name for its script"));
            }
            return Ok((
                vec![format!("/dev/pipes/{name}")],
                Some((name.clone(), body)),
            ));
        }
        return Ok((shell.iter().cloned().chain([body]).collect(), None));
    }
    let mut full = s.clone();
    for h in heredocs {
        full.push('\n');
        full.push_str(&h.content);
        full.push_str(&h.name);
    }
    Ok((shell.iter().cloned().chain([full]).collect(), None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_platforms_and_default_path() {
        assert_eq!(go_duration_ns("30s"), Some(30_000_000_000));
        assert_eq!(go_duration_ns("1m30s"), Some(90_000_000_000));
        assert_eq!(go_duration_ns("500ms"), Some(500_000_000));
        assert_eq!(go_duration_ns("3x"), None);
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!((p.os.as_str(), p.architecture.as_str()), ("linux", "arm64"));
        assert_eq!(p.variant.as_deref(), Some("v8"));
        assert!(Platform::parse("linux").is_none());
        assert!(Platform::parse("/arm64").is_none());
        assert!(Platform::parse("linux/arm64/").is_none());
        assert!(Platform::parse("linux/arm64/v8/x").is_none());
        let mut config = json!({"config": {"Env": ["A=1"]}});
        default_path(&mut config);
        default_path(&mut config);
        assert_eq!(
            config["config"]["Env"],
            json!([
                "A=1",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
            ])
        );
    }

    #[test]
    fn keys_chain() {
        let a = chain("", "FROM x", "");
        assert_eq!(a, chain("", "FROM x", ""), "deterministic");
        assert_ne!(chain(&a, "RUN a", ""), chain(&a, "RUN b", ""));
        assert_ne!(chain(&a, "COPY . /", "h1"), chain(&a, "COPY . /", "h2"));
        assert_ne!(
            chain("k", "ab", ""),
            chain("ka", "b", ""),
            "parts are separated"
        );
    }
}
