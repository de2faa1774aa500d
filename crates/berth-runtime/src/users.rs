//! `USER` as images give it (`name`, `uid`, `name:group`, `uid:gid`) resolved to
//! numbers through the container's own `/etc/passwd` and `/etc/group`, as podman
//! does: a runtime takes numbers only.

use std::path::Path;

use crate::{Result, RuntimeError};

/// The numbers a process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
    /// The groups /etc/group lists the user in (beside its own), when no group was
    /// given: the process's supplementary groups, as runc's and podman's lookup gives
    /// them.
    pub additional: Vec<u32>,
}

/// Resolves `user` inside `rootfs`. Empty is root. A name the container does not know
/// is an error naming the file that was searched.
pub fn resolve(rootfs: &Path, user: &str) -> Result<Ids> {
    let user = if user.is_empty() { "0" } else { user };
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = read(rootfs, "etc/passwd");
    let mut name = u.to_string();
    let (uid, primary) = match u.parse::<u32>() {
        Ok(n) => {
            let entry = lookup(&passwd, |f| f[2] == u);
            if let Some(f) = &entry {
                name = f[0].to_string();
            }
            (n, entry.and_then(|f| f[3].parse().ok()))
        }
        Err(_) => {
            let f = lookup(&passwd, |f| f[0] == u).ok_or_else(|| {
                RuntimeError::Invalid(format!(
                    "unable to find user {u}: no matching entries in passwd file"
                ))
            })?;
            (
                f[2].parse()
                    .map_err(|_| RuntimeError::Invalid(format!("/etc/passwd: bad uid for {u}")))?,
                f[3].parse().ok(),
            )
        }
    };
    let gid = match g {
        None => primary.unwrap_or(0),
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                let group = read(rootfs, "etc/group");
                lookup(&group, |f| f[0] == g)
                    .and_then(|f| f[2].parse().ok())
                    .ok_or_else(|| {
                        RuntimeError::Invalid(format!(
                            "unable to find group {g}: no matching entries in group file"
                        ))
                    })?
            }
        },
    };
    let additional = match g {
        Some(_) => Vec::new(),
        None => {
            let group = read(rootfs, "etc/group");
            let mut ids: Vec<u32> = group
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .filter(|f| f.len() >= 4 && f[3].split(',').any(|m| m.trim() == name))
                .filter_map(|f| f[2].parse().ok())
                .filter(|id| *id != gid)
                .collect();
            ids.sort_unstable();
            ids.dedup();
            ids
        }
    };
    Ok(Ids {
        uid,
        gid,
        additional,
    })
}

/// The largest passwd or group file read (a real one is a few KiB).
const MAX_USERS_FILE: u64 = 4 << 20;

fn read(rootfs: &Path, rel: &str) -> String {
    // Read as the container finds it: `etc -> /etc` leads to the image's own /etc,
    // never the host's; the file itself must be regular, and is bounded.
    match berth_rootfs::read_in(rootfs, rel, MAX_USERS_FILE) {
        Ok(Some(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
        _ => String::new(),
    }
}

/// The first line of a colon file with at least four fields matching `pred`.
fn lookup(text: &str, pred: impl Fn(&[&str]) -> bool) -> Option<Vec<&str>> {
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 4 && pred(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `etc -> /etc` in an image: the lookup reads the image's own (here missing)
    /// file, never the host's.
    #[test]
    fn a_link_to_the_hosts_etc_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("etc")).unwrap();
        assert!(std::path::Path::new("/etc/passwd").exists());
        assert_eq!(read(dir.path(), "etc/passwd"), "");
    }

    #[test]
    fn names_and_numbers() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nstaff:x:50:\nwheel:x:10:root\nextra:x:2000:other,app\n",
        )
        .unwrap();
        let groups = |u| resolve(dir.path(), u).map(|i| i.additional).ok();
        assert_eq!(groups(""), Some(vec![10]), "root's, as podman gives them");
        assert_eq!(groups("app"), Some(vec![2000]));
        assert_eq!(groups("1000"), Some(vec![2000]), "by number, its name's");
        assert_eq!(
            groups("app:staff"),
            Some(vec![]),
            "a group given: that one only"
        );
        let r = |u| resolve(dir.path(), u).map(|i| (i.uid, i.gid)).ok();
        assert_eq!(r(""), Some((0, 0)));
        assert_eq!(r("app"), Some((1000, 1001)));
        assert_eq!(r("app:staff"), Some((1000, 50)));
        assert_eq!(r("1000"), Some((1000, 1001)));
        assert_eq!(r("1234:5"), Some((1234, 5)));
        assert_eq!(r("nobody"), None);
        assert_eq!(r("app:nogroup"), None);
    }
}
