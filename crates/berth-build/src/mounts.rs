//! RUN's flags as BuildKit reads them: `--mount` (bind, cache, tmpfs), `--network`
//! and `--security`; and the mount points a RUN's mounts make in the root file
//! system, taken away again before its layer is taken, so that no layer records them.
//!
//! What berth cannot do yet is refused with a line that says so (ssh mounts need
//! `build --ssh`, which berth lacks; `--security=insecure`), never ignored: an ignored
//! secret mount ran the step without its secret, and an ignored cache mount baked the
//! cache into the layer.

use std::fs;
use std::path::{Path, PathBuf};

/// One `--mount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    /// In the container: relative to the working directory as written, until the
    /// step makes it absolute; never with a `..`.
    pub target: String,
    pub kind: MountKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MountKind {
    /// `type=bind` (the default): `source` (default the root) of the context, or of
    /// the stage or image `from`; read-only unless `rw`, whose writes are discarded.
    Bind {
        from: Option<String>,
        source: String,
        rw: bool,
    },
    /// `type=cache`: a folder kept between builds, by `id` (default the target).
    Cache {
        id: String,
        mode: u32,
        uid: u32,
        gid: u32,
        read_only: bool,
    },
    /// `type=tmpfs`, with mount's `size=` option.
    Tmpfs { size: Option<String> },
    /// `type=secret`: `build --secret id=ID,src=FILE`'s file, read-only at the target
    /// (default `/run/secrets/ID`); a secret not given is an error when `required`,
    /// else the step runs without it, as BuildKit does.
    Secret {
        id: String,
        required: bool,
        mode: u32,
        uid: u32,
        gid: u32,
    },
}

/// What a RUN's flags ask for.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct RunFlags {
    pub mounts: Vec<Mount>,
    /// `--network=none`: a network namespace of its own (loopback only).
    pub no_network: bool,
}

/// Parses RUN's flag words (`--mount=type=cache,target=/x`, quotes already removed),
/// each value through `expand` (BuildKit expands mount values with ARG and ENV).
pub(crate) fn parse(
    flags: &[String],
    expand: &dyn Fn(&str) -> Result<String, String>,
) -> Result<RunFlags, String> {
    let mut out = RunFlags::default();
    for flag in flags {
        let body = flag.trim_start_matches('-');
        let (name, value) = body.split_once('=').unwrap_or((body, ""));
        match name {
            "mount" => out.mounts.push(mount(&expand(value)?)?),
            "network" => match value {
                "" | "default" | "host" => out.no_network = false,
                "none" => out.no_network = true,
                other => return Err(format!("--network={other}: use default, host or none")),
            },
            "security" => match value {
                "sandbox" => {}
                other => {
                    return Err(format!(
                        "--security={other}: not supported (berth runs every step sandboxed)"
                    ))
                }
            },
            other => return Err(format!("unknown flag: --{other}")),
        }
    }
    Ok(out)
}

/// One `--mount` value: `key=value` pairs split at commas (`ro`, `rw` alone).
fn mount(value: &str) -> Result<Mount, String> {
    let mut kind = "bind".to_string();
    let mut target = None;
    let mut source = None;
    let mut from = None;
    let mut id = None;
    let mut rw = None;
    let mut mode = None;
    let mut required = false;
    let (mut uid, mut gid) = (0, 0);
    let mut size = None;
    let number = |k: &str, v: &str, radix: u32| {
        u32::from_str_radix(v, radix).map_err(|_| format!("--mount {k}={v}: not a number"))
    };
    for field in value.split(',').filter(|f| !f.is_empty()) {
        let (k, v) = field.split_once('=').unwrap_or((field, ""));
        let k = k.to_ascii_lowercase();
        match k.as_str() {
            "type" => kind = v.to_ascii_lowercase(),
            "target" | "dst" | "destination" => target = Some(v.to_string()),
            "source" | "src" => source = Some(v.to_string()),
            "from" => from = Some(v.to_string()),
            "id" => id = Some(v.to_string()),
            "ro" | "readonly" => rw = Some(v == "false"),
            "rw" | "readwrite" => rw = Some(v != "false"),
            "mode" => mode = Some(number(&k, v, 8)?),
            "uid" => uid = number(&k, v, 10)?,
            "gid" => gid = number(&k, v, 10)?,
            "size" => size = Some(v.to_string()),
            "sharing" => match v {
                "shared" | "private" | "locked" => {}
                _ => {
                    return Err(format!(
                        "--mount sharing={v}: use shared, private or locked"
                    ))
                }
            },
            "required" => required = v.is_empty() || v == "true",
            "env" => {}
            _ => return Err(format!("unexpected key '{k}' in '{field}'")),
        }
    }
    if kind == "ssh" {
        return Err("--mount type=ssh: not supported yet (berth build has no --ssh)".into());
    }
    if kind == "secret" {
        // The id is the target's last name, the target /run/secrets/ID, by default.
        let id = match (&id, &target) {
            (Some(id), _) => id.clone(),
            (None, Some(t)) => t.rsplit('/').next().unwrap_or_default().to_string(),
            (None, None) => String::new(),
        };
        if id.is_empty() || id.contains('/') {
            return Err(format!("--mount {value}: a secret needs an id"));
        }
        target.get_or_insert_with(|| format!("/run/secrets/{id}"));
        let kind = MountKind::Secret {
            id,
            required,
            mode: mode.unwrap_or(0o400),
            uid,
            gid,
        };
        return finish(target, kind);
    }
    let target = target.ok_or_else(|| format!("--mount {value}: a target is required"))?;
    let kind = match kind.as_str() {
        "bind" => MountKind::Bind {
            from,
            source: source.unwrap_or_else(|| "/".into()),
            rw: rw.unwrap_or(false),
        },
        "cache" => {
            if from.is_some() || source.is_some() {
                return Err("--mount type=cache: from= and source= are not supported yet".into());
            }
            MountKind::Cache {
                id: id.unwrap_or_else(|| target.clone()),
                mode: mode.unwrap_or(0o755),
                uid,
                gid,
                read_only: rw == Some(false),
            }
        }
        "tmpfs" => MountKind::Tmpfs { size },
        other => {
            return Err(format!(
                "--mount type={other}: use bind, cache, tmpfs or secret"
            ))
        }
    };
    finish(Some(target), kind)
}

/// A mount with its target checked: a name, no NUL, no `..` (runc would take
/// `/x/../../..` and the clean-up after the step would follow it out of the root).
fn finish(target: Option<String>, kind: MountKind) -> Result<Mount, String> {
    let target = target.unwrap_or_default();
    if target.is_empty() || target.contains('\0') || target.split('/').any(|p| p == "..") {
        return Err(format!("--mount target={target}: a path without '..'"));
    }
    Ok(Mount { target, kind })
}

/// The mount points a RUN's mounts will make in `root` (its root file system): where
/// a target does not exist yet, it and its missing parents, resolved inside `root`,
/// with the time of the folder that held the first of them.
pub(crate) struct MountPoints {
    root: PathBuf,
    made: Vec<PathBuf>,
    parents: Vec<(PathBuf, std::time::SystemTime)>,
}

/// Whether `path` is reached from `root` through no link: what the step left there is
/// still the root's own, not a link it put in place of a folder (the clean-up must not
/// follow one onto the host).
fn no_links_below(root: &Path, path: &Path) -> bool {
    let Ok(rest) = path.strip_prefix(root) else {
        return false;
    };
    let mut at = root.to_path_buf();
    for c in rest.components() {
        let std::path::Component::Normal(c) = c else {
            return false;
        };
        at.push(c);
        match fs::symlink_metadata(&at) {
            Ok(m) if !m.file_type().is_symlink() => {}
            _ => return false,
        }
    }
    true
}

impl MountPoints {
    pub fn before(root: &Path, mounts: &[Mount]) -> MountPoints {
        let mut made = Vec::new();
        let mut parents = Vec::new();
        for m in mounts {
            let parts: Vec<&str> = m.target.split('/').filter(|p| !p.is_empty()).collect();
            for k in 1..=parts.len() {
                let Some(real) = crate::context::resolve_in(root, &parts[..k].join("/")) else {
                    break;
                };
                let path = root.join(&real);
                if fs::symlink_metadata(&path).is_ok() {
                    continue;
                }
                if let Some(parent) = path.parent() {
                    if let Ok(t) = fs::metadata(parent).and_then(|m| m.modified()) {
                        parents.push((parent.to_path_buf(), t));
                    }
                }
                let mut p = path;
                made.push(p.clone());
                for rest in &parts[k..] {
                    p = p.join(rest);
                    made.push(p.clone());
                }
                break;
            }
        }
        MountPoints {
            root: root.to_path_buf(),
            made,
            parents,
        }
    }

    /// Removes the mount points the runtime made, deepest first, each only while it is
    /// an empty folder or file (what the step wrote there stays), and gives the folders
    /// that held them their time again.
    pub fn remove(self) {
        for p in self.made.iter().rev() {
            if !no_links_below(&self.root, p) {
                continue;
            }
            match fs::symlink_metadata(p) {
                Ok(m) if m.is_dir() => {
                    let _ = fs::remove_dir(p);
                }
                Ok(m) if m.is_file() && m.len() == 0 => {
                    let _ = fs::remove_file(p);
                }
                _ => {}
            }
        }
        for (dir, t) in self.parents {
            if !no_links_below(&self.root, &dir) {
                continue;
            }
            if let Ok(f) = fs::File::open(&dir) {
                let _ = f.set_times(fs::FileTimes::new().set_modified(t));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(flags: &[&str]) -> Result<RunFlags, String> {
        let flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
        parse(&flags, &|v| Ok(v.replace("$T", "/cache")))
    }

    #[test]
    fn flags_as_buildkit_reads_them() {
        let f = parsed(&[
            "--mount=type=cache,target=$T,id=pip,mode=0700,uid=1000",
            "--mount=target=/src,rw",
            "--mount=type=bind,from=builder,source=/out,target=/in",
            "--mount=type=tmpfs,target=/t,size=1m",
            "--network=none",
        ])
        .unwrap();
        assert!(f.no_network);
        assert_eq!(
            f.mounts[0],
            Mount {
                target: "/cache".into(),
                kind: MountKind::Cache {
                    id: "pip".into(),
                    mode: 0o700,
                    uid: 1000,
                    gid: 0,
                    read_only: false
                }
            }
        );
        assert_eq!(
            f.mounts[1].kind,
            MountKind::Bind {
                from: None,
                source: "/".into(),
                rw: true
            }
        );
        assert_eq!(
            f.mounts[2].kind,
            MountKind::Bind {
                from: Some("builder".into()),
                source: "/out".into(),
                rw: false
            }
        );
        assert_eq!(
            f.mounts[3].kind,
            MountKind::Tmpfs {
                size: Some("1m".into())
            }
        );
    }

    #[test]
    fn what_berth_cannot_do_is_said() {
        for (flag, says) in [
            ("--mount=type=secret", "a secret needs an id"),
            ("--mount=type=ssh,target=/s", "no --ssh"),
            ("--mount=type=cache", "a target is required"),
            ("--mount=type=cache,target=/x/../../run", "without '..'"),
            (
                "--mount=type=bind,target=/x,bogus=1",
                "unexpected key 'bogus'",
            ),
            ("--network=bridge", "use default, host or none"),
            ("--security=insecure", "not supported"),
        ] {
            let e = parsed(&[flag]).unwrap_err();
            assert!(e.contains(says), "{flag}: {e}");
        }
    }

    #[test]
    fn mount_points_made_are_taken_away() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("root")).unwrap();
        fs::create_dir_all(root.join("run")).unwrap();
        std::os::unix::fs::symlink("/run", root.join("var-run")).unwrap();
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000);
        fs::File::open(root.join("root"))
            .unwrap()
            .set_times(fs::FileTimes::new().set_modified(old))
            .unwrap();
        let mounts: Vec<Mount> = ["/root/.cache/pip", "/var-run/x", "/root"]
            .iter()
            .map(|t| Mount {
                target: t.to_string(),
                kind: MountKind::Tmpfs { size: None },
            })
            .collect();
        let points = MountPoints::before(root, &mounts);
        // What the runtime does: the folders, and a file where a file is bound.
        fs::create_dir_all(root.join("root/.cache/pip")).unwrap();
        fs::write(root.join("run/x"), "").unwrap();
        points.remove();
        assert!(!root.join("root/.cache").exists());
        assert!(
            !root.join("run/x").exists(),
            "the link resolved inside the root"
        );
        let t = fs::metadata(root.join("root")).unwrap().modified().unwrap();
        assert_eq!(t, old);
        // What a step wrote beside a mount point stays.
        let points = MountPoints::before(root, &mounts[..1]);
        fs::create_dir_all(root.join("root/.cache/pip")).unwrap();
        fs::write(root.join("root/.cache/kept"), "x").unwrap();
        points.remove();
        assert!(root.join("root/.cache/kept").exists());
        assert!(!root.join("root/.cache/pip").exists());

        // A step that puts a link where a mount point's folder was: nothing behind it
        // (here outside the root) is touched.
        let outside = tempfile::tempdir().unwrap();
        fs::create_dir_all(outside.path().join("pip")).unwrap();
        fs::remove_dir_all(root.join("root/.cache")).unwrap();
        let points = MountPoints::before(root, &mounts[..1]);
        std::os::unix::fs::symlink(outside.path(), root.join("root/.cache")).unwrap();
        points.remove();
        assert!(
            outside.path().join("pip").is_dir(),
            "followed a link out of the root"
        );
    }
}
