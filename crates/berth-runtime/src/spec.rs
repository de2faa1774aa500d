//! What a container runs, from its image's config and the create options (Docker's
//! rules: `--entrypoint` replaces the image's and drops its Cmd; a command replaces
//! Cmd; `-e` adds to or overrides Env), and the OCI runtime `config.json` for it.

use std::path::Path;

use oci_spec::runtime::{LinuxNamespaceType, LinuxPidsBuilder, ProcessBuilder, Spec, UserBuilder};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::users;
use crate::{Result, RuntimeError};

/// What a container runs; kept with its record in the store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    /// As the image or `-u` says it: resolved in the container's /etc/passwd at start.
    pub user: String,
    pub stop_signal: Option<String>,
    /// `-v` bind mounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub binds: Vec<Bind>,
    /// `--hostname`; else the container's short ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// `--add-host NAME:IP`, as `(name, ip)`: lines of /etc/hosts before the host's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add_hosts: Vec<(String, String)>,
    /// `--tmpfs /PATH[:OPTIONS]`: an empty tmpfs mounted there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<Tmpfs>,
    /// `--cap-add`, normalized (`CAP_…`, or `ALL`): see [`crate::caps`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    /// `--cap-drop`, normalized.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    /// `cwd` was given (`-w`), not the image's: it must exist, as podman requires
    /// (the image's is made).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cwd_given: bool,
    /// A network namespace of its own (loopback only), not the host's: a build's
    /// `RUN --network=none`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_network: bool,
}

/// `--tmpfs /PATH[:OPTIONS]`, as podman reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tmpfs {
    pub destination: String,
    /// Mount options beside podman's own `rw,nosuid,nodev`: `size=64m`, `mode=1777`…
    pub options: Vec<String>,
}

impl Tmpfs {
    pub fn parse(spec: &str) -> Result<Tmpfs> {
        let (destination, options) = spec.split_once(':').unwrap_or((spec, ""));
        if !destination.starts_with('/') || destination.contains('\0') {
            return Err(RuntimeError::Invalid(format!(
                "--tmpfs {spec}: the destination must be an absolute path"
            )));
        }
        Ok(Tmpfs {
            destination: destination.to_string(),
            options: options
                .split(',')
                .filter(|o| !o.is_empty())
                .map(str::to_string)
                .collect(),
        })
    }
}

/// `--add-host NAME:IP` as podman reads it: a name and an IPv4 or IPv6 address.
pub fn parse_add_host(spec: &str) -> Result<(String, String)> {
    let bad = || RuntimeError::Invalid(format!("bad format for add-host: {spec:?}"));
    let (name, ip) = spec.split_once(':').ok_or_else(bad)?;
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    ip.parse::<std::net::IpAddr>().map_err(|_| bad())?;
    Ok((name.to_string(), ip.to_string()))
}

/// A host path bind-mounted into the container (`-v /host:/ctr[:ro]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bind {
    pub source: String,
    pub destination: String,
    pub read_only: bool,
}

impl Bind {
    /// `-v SOURCE:DEST[:OPTIONS]` as podman reads it, for host paths: SOURCE absolute
    /// (or `./`-relative, made absolute) and existing, DEST absolute, OPTIONS from
    /// `ro`, `rw`, `z`, `Z` (SELinux labels: nothing to do here). Named volumes are
    /// refused with a line that says so.
    pub fn parse(spec: &str) -> Result<Bind> {
        let bad = |why: &str| RuntimeError::Invalid(format!("-v {spec:?}: {why}"));
        let mut parts = spec.split(':');
        let (source, destination) = match (parts.next(), parts.next()) {
            (Some(s), Some(d)) if !s.is_empty() && !d.is_empty() => (s, d),
            _ => {
                return Err(bad(
                    "use SOURCE:DEST[:OPTIONS], a host path and a container path",
                ))
            }
        };
        let mut read_only = false;
        for option in parts.next().map(|o| o.split(',')).into_iter().flatten() {
            match option {
                "ro" => read_only = true,
                "rw" => read_only = false,
                "z" | "Z" => {}
                other => return Err(bad(&format!("option {other:?} is not supported (ro, rw)"))),
            }
        }
        if parts.next().is_some() {
            return Err(bad("too many ':'"));
        }
        if !(source.starts_with('/') || source.starts_with('.')) {
            return Err(bad("named volumes are not supported yet; give a host path"));
        }
        if !destination.starts_with('/') {
            return Err(bad("the container path must be absolute"));
        }
        let source = std::fs::canonicalize(source).map_err(|e| bad(&format!("{source}: {e}")))?;
        Ok(Bind {
            source: source.display().to_string(),
            destination: destination.to_string(),
            read_only,
        })
    }
}

/// The PATH a container gets when its image sets none (podman's default).
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Overrides given on the command line (`create`/`run`).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--entrypoint`: replaces the image's; an empty list clears it.
    pub entrypoint: Option<Vec<String>>,
    /// The command after the image name: replaces the image's Cmd.
    pub cmd: Vec<String>,
    /// `-e K=V` (or `-e K`, taken from berth's own environment).
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    /// `-v` bind mounts.
    pub binds: Vec<Bind>,
    /// `--hostname`.
    pub hostname: Option<String>,
    /// `--add-host`.
    pub add_hosts: Vec<(String, String)>,
    /// `--tmpfs`.
    pub tmpfs: Vec<Tmpfs>,
    /// `--cap-add`, as given.
    pub cap_add: Vec<String>,
    /// `--cap-drop`, as given.
    pub cap_drop: Vec<String>,
}

/// Sets `-e` variables in `env`: `K=V`, or `K` alone with berth's own value (left out
/// when berth has none), each replacing what `env` had for `K`.
pub(crate) fn set_env(env: &mut Vec<String>, given: &[String]) {
    for e in given {
        let (key, value) = match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => match std::env::var(e) {
                Ok(v) => (e.clone(), v),
                Err(_) => continue,
            },
        };
        env.retain(|have| have.split_once('=').map_or(have.as_str(), |(k, _)| k) != key);
        env.push(format!("{key}={value}"));
    }
}

/// A host name as the kernel takes it (1 to 64 bytes), as podman passes it on:
/// `my_service` too. Only what no host name holds is refused: whitespace, control
/// characters, `/`.
fn valid_hostname(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '/')
}

impl Process {
    /// From an image config (`config` member, Docker or OCI) and the overrides.
    pub fn from_image(config: &Value, o: &Overrides) -> Result<Process> {
        let run = &config["config"];
        let list = crate::image::strings;
        let entrypoint = o
            .entrypoint
            .clone()
            .unwrap_or_else(|| list(&run["Entrypoint"]));
        let cmd = match (o.cmd.is_empty(), o.entrypoint.is_some()) {
            (false, _) => o.cmd.clone(),
            (true, true) => Vec::new(),
            (true, false) => list(&run["Cmd"]),
        };
        if let Some(h) = o.hostname.as_deref().filter(|h| !valid_hostname(h)) {
            return Err(RuntimeError::Invalid(format!(
                "invalid hostname {h:?}: 1 to 64 bytes, no spaces, control characters or '/'"
            )));
        }
        let cap_add = crate::caps::normalize(&o.cap_add)?;
        let cap_drop = crate::caps::normalize(&o.cap_drop)?;
        crate::caps::check(&cap_add, &cap_drop)?;
        let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
        if args.is_empty() {
            return Err(RuntimeError::Invalid(
                "no command or entrypoint provided, and no CMD or ENTRYPOINT from image".into(),
            ));
        }
        let mut env = list(&run["Env"]);
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.insert(0, DEFAULT_PATH.to_string());
        }
        set_env(&mut env, &o.env);
        let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
        Ok(Process {
            args,
            env,
            cwd: o
                .workdir
                .clone()
                .or_else(|| text(&run["WorkingDir"]))
                .unwrap_or_else(|| "/".into()),
            user: o
                .user
                .clone()
                .or_else(|| text(&run["User"]))
                .unwrap_or_default(),
            stop_signal: text(&run["StopSignal"]),
            binds: o.binds.clone(),
            hostname: o.hostname.clone(),
            add_hosts: o.add_hosts.clone(),
            tmpfs: o.tmpfs.clone(),
            cap_add,
            cap_drop,
            cwd_given: o.workdir.is_some(),
            no_network: false,
        })
    }

    /// The runtime config for a bundle whose root file system is `rootfs`: runc's
    /// defaults (namespaces, mounts, capabilities) with the host's network, as podman's
    /// `--network host`; the host name is `--hostname`'s, else `hostname`.
    pub fn runtime_spec(&self, rootfs: &Path, hostname: &str) -> Result<Spec> {
        let bad = |e: oci_spec::OciSpecError| RuntimeError::Invalid(format!("runtime config: {e}"));
        let mut spec = Spec::default();
        let process = self.runtime_process(rootfs)?;
        let bounding: Vec<String> = process
            .capabilities()
            .iter()
            .flat_map(|c| c.bounding().iter().flatten())
            .filter_map(|c| serde_json::to_value(c).ok()?.as_str().map(str::to_string))
            .collect();
        spec.set_process(Some(process));
        let mut root = spec.root().clone().unwrap_or_default();
        root.set_path(rootfs.to_path_buf());
        root.set_readonly(Some(false));
        spec.set_root(Some(root));
        let hostname = self.hostname.as_deref().unwrap_or(hostname);
        spec.set_hostname(Some(hostname.to_string()));
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        for b in &self.binds {
            let mode = if b.read_only { "ro" } else { "rw" };
            mounts.push(
                oci_spec::runtime::MountBuilder::default()
                    .destination(&b.destination)
                    .typ("bind")
                    .source(&b.source)
                    .options(vec!["rbind".into(), "rprivate".into(), mode.into()])
                    .build()
                    .map_err(bad)?,
            );
        }
        for t in &self.tmpfs {
            let mut options: Vec<String> = ["rw", "nosuid", "nodev"].map(String::from).to_vec();
            options.extend(t.options.iter().cloned());
            mounts.push(
                oci_spec::runtime::MountBuilder::default()
                    .destination(&t.destination)
                    .typ("tmpfs")
                    .source("tmpfs")
                    .options(options)
                    .build()
                    .map_err(bad)?,
            );
        }
        harden_mounts(&mut mounts);
        spec.set_mounts(Some(mounts));
        if let Some(linux) = spec.linux_mut() {
            if let Some(ns) = linux.namespaces().clone() {
                let kept = ns
                    .into_iter()
                    .filter(|n| self.no_network || n.typ() != LinuxNamespaceType::Network)
                    .collect();
                linux.set_namespaces(Some(kept));
            }
            // podman's pids_limit: a fork bomb stops at the container.
            let mut resources = linux.resources().clone().unwrap_or_default();
            let pids = LinuxPidsBuilder::default()
                .limit(PIDS_LIMIT)
                .build()
                .map_err(bad)?;
            resources.set_pids(Some(pids));
            linux.set_resources(Some(resources));
            let mut masked = linux.masked_paths().clone().unwrap_or_default();
            for path in ["/sys/dev/block", "/sys/fs/selinux"] {
                if !masked.iter().any(|m| m == path) {
                    masked.push(path.to_string());
                }
            }
            linux.set_masked_paths(Some(masked));
            linux.set_seccomp(crate::seccomp::filter(&bounding)?);
        }
        Ok(spec)
    }

    /// The runtime config's process alone (what `exec` hands the runtime): the user
    /// resolved in `rootfs`, podman's capabilities (changed by `--cap-add` and
    /// `--cap-drop`) and limits. The container's own
    /// config (mounts, system-call filter) is [`Process::runtime_spec`]'s.
    pub fn runtime_process(&self, rootfs: &Path) -> Result<oci_spec::runtime::Process> {
        let ids = users::resolve(rootfs, &self.user)?;
        let bad = |e: oci_spec::OciSpecError| RuntimeError::Invalid(format!("runtime config: {e}"));
        let mut user = UserBuilder::default().uid(ids.uid).gid(ids.gid);
        if !ids.additional.is_empty() {
            user = user.additional_gids(ids.additional.clone());
        }
        let defaults = oci_spec::runtime::Process::default();
        ProcessBuilder::default()
            .terminal(false)
            .args(self.args.clone())
            .env(self.env.clone())
            .cwd(self.cwd.clone())
            .user(user.build().map_err(bad)?)
            .capabilities(crate::caps::sets(&self.cap_add, &self.cap_drop, ids.uid)?)
            .rlimits(rlimits(defaults.rlimits().clone().unwrap_or_default()))
            .no_new_privileges(false)
            .build()
            .map_err(bad)
    }
}

/// The runtime's default limits with open files raised as podman raises them: to
/// 1,048,576, or the most this process may have (its hard limit), whichever is less.
/// 1,024 made servers that hold many connections fail in berth's containers alone.
fn rlimits(limits: Vec<oci_spec::runtime::PosixRlimit>) -> Vec<oci_spec::runtime::PosixRlimit> {
    use oci_spec::runtime::{PosixRlimitBuilder, PosixRlimitType};
    const PODMAN_NOFILE: u64 = 1 << 20;
    let mut have = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given.
    let hard = match unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut have) } {
        0 => have.rlim_max,
        _ => return limits,
    };
    let n = PODMAN_NOFILE.min(hard);
    limits
        .into_iter()
        .map(|l| match l.typ() {
            PosixRlimitType::RlimitNofile => PosixRlimitBuilder::default()
                .typ(PosixRlimitType::RlimitNofile)
                .hard(n)
                .soft(n)
                .build()
                .unwrap_or(l),
            _ => l,
        })
        .collect()
}

/// containers.conf's default `pids_limit`.
const PIDS_LIMIT: i64 = 2048;

/// /proc and /dev mounted as podman mounts them: nothing set-user-ID, executable or a
/// device node from /proc, nothing executable from the /dev tmpfs.
fn harden_mounts(mounts: &mut [oci_spec::runtime::Mount]) {
    for m in mounts {
        let wanted: &[&str] = match m.destination().to_str() {
            Some("/proc") => &["nosuid", "noexec", "nodev"],
            Some("/dev") => &["nosuid", "noexec"],
            _ => continue,
        };
        let mut options = m.options().clone().unwrap_or_default();
        for w in wanted {
            if !options.iter().any(|o| o == w) {
                options.push(w.to_string());
            }
        }
        m.set_options(Some(options));
    }
}

/// The files podman gives a container on the host's network, under /etc: the host's
/// resolv.conf and hosts (copied) and the container's hostname. Without them DNS in a
/// container, or in a build's RUN, worked only where the image shipped a resolv.conf.
const HOST_FILES: [&str; 3] = ["resolv.conf", "hosts", "hostname"];

/// Makes the empty files in `rootfs` that the host files are mounted on, where the
/// image has none, so that they belong to the base a commit or a build step is
/// compared with (runc would make them at start, and each would land in the next
/// layer). Only in an /etc that is a folder of the root itself: through a link, the
/// runtime makes them, inside the root.
pub fn make_host_file_mount_points(rootfs: &Path) -> Result<()> {
    berth_rootfs::create_dir_in(rootfs, "/etc")
        .map_err(|e| RuntimeError::Invalid(format!("/etc: {e}")))?;
    let etc = rootfs.join("etc");
    if !std::fs::symlink_metadata(&etc).is_ok_and(|m| m.is_dir()) {
        return Ok(());
    }
    for name in HOST_FILES {
        let path = etc.join(name);
        // create_new: never through a link, never over what the image has.
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(RuntimeError::Invalid(format!(
                    "making {}: {e}",
                    path.display()
                )))
            }
        }
    }
    Ok(())
}

/// Writes the host files into `bundle` and mounts them at /etc in `spec`, unless a
/// `-v` bind already takes that place; `extra_hosts` (`--add-host`) come first in
/// /etc/hosts, as podman writes them.
pub fn add_host_files(
    spec: &mut Spec,
    bundle: &Path,
    extra_hosts: &[(String, String)],
) -> Result<()> {
    let hostname = spec.hostname().clone().unwrap_or_default();
    let io = |p: &Path| {
        let p = p.display().to_string();
        move |e: std::io::Error| RuntimeError::Invalid(format!("writing {p}: {e}"))
    };
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for name in HOST_FILES {
        let destination = format!("/etc/{name}");
        if mounts
            .iter()
            .any(|m| m.destination() == Path::new(&destination))
        {
            continue;
        }
        let host = || std::fs::read(Path::new("/etc").join(name));
        let content = match name {
            "hostname" => format!("{hostname}\n").into_bytes(),
            "hosts" => {
                let mut lines: Vec<u8> = extra_hosts
                    .iter()
                    .flat_map(|(host_name, ip)| format!("{ip}\t{host_name}\n").into_bytes())
                    .collect();
                lines.extend(
                    host().unwrap_or_else(|_| b"127.0.0.1\tlocalhost\n::1\tlocalhost\n".to_vec()),
                );
                lines
            }
            _ => host().unwrap_or_default(),
        };
        let source = bundle.join(name);
        std::fs::write(&source, content).map_err(io(&source))?;
        mounts.push(
            oci_spec::runtime::MountBuilder::default()
                .destination(&destination)
                .typ("bind")
                .source(&source)
                .options(vec!["rbind".into(), "rprivate".into(), "rw".into()])
                .build()
                .map_err(|e| RuntimeError::Invalid(format!("runtime config: {e}")))?,
        );
    }
    spec.set_mounts(Some(mounts));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn image() -> Value {
        json!({"config": {
            "Entrypoint": ["/bin/app"], "Cmd": ["--serve"], "Env": ["A=1", "PATH=/bin"],
            "WorkingDir": "/srv", "User": "1000:1000", "StopSignal": "SIGINT"
        }})
    }

    #[test]
    fn docker_rules_for_overrides() {
        let p = Process::from_image(&image(), &Overrides::default()).unwrap();
        assert_eq!(p.args, ["/bin/app", "--serve"]);
        assert_eq!(p.cwd, "/srv");
        assert_eq!(p.user, "1000:1000");
        let p = Process::from_image(
            &image(),
            &Overrides {
                cmd: vec!["--once".into()],
                env: vec!["A=2".into(), "B=3".into()],
                workdir: Some("/tmp".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(p.args, ["/bin/app", "--once"]);
        assert_eq!(p.env, ["PATH=/bin", "A=2", "B=3"]);
        assert_eq!(p.cwd, "/tmp");
        let p = Process::from_image(
            &image(),
            &Overrides {
                entrypoint: Some(vec!["/bin/sh".into()]),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            p.args,
            ["/bin/sh"],
            "a new entrypoint drops the image's Cmd"
        );
        assert!(Process::from_image(&json!({}), &Overrides::default()).is_err());
        let p = Process::from_image(
            &json!({}),
            &Overrides {
                cmd: vec!["true".into()],
                ..Default::default()
            },
        )
        .unwrap();
        assert!(p.env[0].starts_with("PATH="), "a default PATH");
    }

    #[test]
    fn runtime_config_shares_the_host_network() {
        let dir = tempfile::tempdir().unwrap();
        let p = Process::from_image(&image(), &Overrides::default()).unwrap();
        let spec = p.runtime_spec(dir.path(), "abc").unwrap();
        let v = serde_json::to_value(&spec).unwrap();
        assert_eq!(v["process"]["args"], json!(["/bin/app", "--serve"]));
        assert_eq!(v["process"]["user"]["uid"], 1000);
        assert_eq!(v["process"]["cwd"], "/srv");
        let ns: Vec<&str> = v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|n| n["type"].as_str())
            .collect();
        assert!(!ns.contains(&"network") && ns.contains(&"pid"), "{ns:?}");
    }

    #[test]
    fn binds_parse_as_podman_reads_them_and_reach_the_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().display().to_string();
        let b = Bind::parse(&format!("{host}:/data:ro,Z")).unwrap();
        assert_eq!((b.destination.as_str(), b.read_only), ("/data", true));
        for bad in [
            "vol:/data".to_string(),
            format!("{host}:data"),
            format!("{host}:/data:exec"),
            "/no/such/dir:/data".into(),
            "/tmp".into(),
        ] {
            assert!(Bind::parse(&bad).is_err(), "{bad}");
        }
        let p = Process::from_image(
            &image(),
            &Overrides {
                binds: vec![b],
                ..Default::default()
            },
        )
        .unwrap();
        let v = serde_json::to_value(p.runtime_spec(dir.path(), "abc").unwrap()).unwrap();
        let data = v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/data")
            .expect("the bind is mounted");
        assert_eq!(data["type"], "bind");
        assert_eq!(data["source"], json!(std::fs::canonicalize(&host).unwrap()));
        assert!(data["options"].as_array().unwrap().contains(&json!("ro")));
    }
}
