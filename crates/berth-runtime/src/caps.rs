//! A container's capabilities: podman's defaults changed by `--cap-add` and
//! `--cap-drop`, as podman 4.3 reads those flags and sets the process's capability
//! sets (measured: `grep Cap /proc/self/status` in its containers).
//!
//! - Names are taken in any case, with or without `CAP_`, several to a flag split at
//!   commas; `ALL` is every capability this process's bounding set holds. An unknown
//!   name, a capability both added and dropped, or `ALL` both ways is refused with
//!   podman's words.
//! - The bounding set is the defaults with the added ones, less the dropped ones;
//!   `--cap-drop ALL` leaves only the added ones, `--cap-add ALL` all but the dropped.
//! - A root process has the bounding set effective and permitted. A process of another
//!   user has only the added capabilities, in every set including the ambient one (so
//!   that they survive its exec), as podman gives them; without `--cap-add` it has none.
//!
//! oci-spec's `Capability` knows the names but not the kernel's numbers, which the
//! bounding set in /proc is written in: [`KERNEL_ORDER`] is the kernel's
//! `linux/capability.h` numbering, an ABI that only grows.

use std::collections::BTreeSet;

use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};

use crate::{Result, RuntimeError};

/// Capability names by kernel number (`CAP_CHOWN` is 0).
const KERNEL_ORDER: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The capabilities podman gives a container by default (containers.conf's
/// `default_capabilities`): enough for package managers and `adduser`, far from all.
const DEFAULTS: [&str; 11] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

const ALL: &str = "ALL";

/// `--cap-add`/`--cap-drop` values as podman normalizes them: split at commas,
/// upper case, `CAP_` in front (`ALL` alone). An unknown name is refused.
pub fn normalize(given: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for name in given.iter().flat_map(|g| g.split(',')) {
        let upper = name.trim().to_ascii_uppercase();
        let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
        let normal = if bare == ALL {
            ALL.to_string()
        } else if KERNEL_ORDER.contains(&bare) {
            format!("CAP_{bare}")
        } else {
            return Err(RuntimeError::Invalid(format!(
                "\"CAP_{bare}\": unknown capability"
            )));
        };
        if !out.contains(&normal) {
            out.push(normal);
        }
    }
    Ok(out)
}

/// Refuses what podman refuses of normalized `add` and `drop`.
pub fn check(add: &[String], drop: &[String]) -> Result<()> {
    if add.iter().any(|c| c == ALL) && drop.iter().any(|c| c == ALL) {
        return Err(RuntimeError::Invalid(
            "adding all caps and removing all caps not allowed".into(),
        ));
    }
    if let Some(both) = add.iter().find(|c| *c != ALL && drop.contains(c)) {
        return Err(RuntimeError::Invalid(format!(
            "capability \"{both}\" cannot be dropped and added"
        )));
    }
    Ok(())
}

/// The capability sets of a process of `uid` in a container made with normalized
/// `add` and `drop` (checked by [`check`]).
pub fn sets(add: &[String], drop: &[String], uid: u32) -> Result<LinuxCapabilities> {
    check(add, drop)?;
    let everything = || -> Result<BTreeSet<String>> {
        Ok(host_bounding()?
            .into_iter()
            .map(|c| format!("CAP_{c}"))
            .collect())
    };
    let named = |list: &[String]| -> BTreeSet<String> {
        list.iter().filter(|c| *c != ALL).cloned().collect()
    };
    let (add_all, drop_all) = (add.iter().any(|c| c == ALL), drop.iter().any(|c| c == ALL));
    let bounding: BTreeSet<String> = if drop_all {
        named(add)
    } else {
        let mut base = if add_all {
            everything()?
        } else {
            DEFAULTS.iter().map(|c| format!("CAP_{c}")).collect()
        };
        base.extend(named(add));
        base.retain(|c| !drop.contains(c));
        base
    };
    let added = if add_all {
        bounding.clone()
    } else {
        named(add)
    };
    let bounding = to_spec(&bounding)?;
    let mut caps = LinuxCapabilities::default();
    caps.set_bounding(Some(bounding.clone()));
    if uid == 0 {
        caps.set_effective(Some(bounding.clone()));
        caps.set_permitted(Some(bounding));
        caps.set_inheritable(None);
        caps.set_ambient(None);
    } else {
        let added = to_spec(&added)?;
        caps.set_effective(Some(added.clone()));
        caps.set_permitted(Some(added.clone()));
        caps.set_inheritable(Some(added.clone()));
        caps.set_ambient(Some(added));
    }
    Ok(caps)
}

/// `CAP_…` names as oci-spec's capabilities.
fn to_spec(names: &BTreeSet<String>) -> Result<Capabilities> {
    names
        .iter()
        .map(|n| {
            serde_json::from_value::<Capability>(serde_json::Value::String(n.clone()))
                .map_err(|e| RuntimeError::Invalid(format!("{n}: {e}")))
        })
        .collect()
}

/// The names (without `CAP_`) in this process's bounding set: what `ALL` gives, as
/// podman gives only what it holds itself.
fn host_bounding() -> Result<Vec<&'static str>> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| RuntimeError::Io {
        context: "reading /proc/self/status".into(),
        cause: e,
    })?;
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .ok_or_else(|| RuntimeError::Invalid("/proc/self/status has no CapBnd line".into()))?;
    Ok(bits(mask))
}

/// The names of the capabilities whose bits `mask` sets.
fn bits(mask: u64) -> Vec<&'static str> {
    KERNEL_ORDER
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1u64 << i) != 0)
        .map(|(_, name)| *name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// A set as the sorted `CAP_…` names.
    fn names(set: &Option<Capabilities>) -> Vec<String> {
        let mut v: Vec<String> = set
            .iter()
            .flatten()
            .map(|c| {
                serde_json::to_value(c)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        v.sort();
        v
    }

    /// The kernel's bit of a capability, as /proc writes the sets.
    fn mask(set: &Option<Capabilities>) -> u64 {
        names(set)
            .iter()
            .map(|n| {
                let bare = n.strip_prefix("CAP_").unwrap();
                1u64 << KERNEL_ORDER.iter().position(|k| *k == bare).unwrap()
            })
            .sum()
    }

    #[test]
    fn names_as_podman_takes_them() {
        let n = normalize(&strings(&[
            "net_raw",
            "CAP_sys_admin,chown",
            "cap_chown",
            "all",
        ]));
        assert_eq!(
            n.unwrap(),
            ["CAP_NET_RAW", "CAP_SYS_ADMIN", "CAP_CHOWN", "ALL"]
        );
        let e = normalize(&strings(&["cap_foo"])).unwrap_err().to_string();
        assert_eq!(e, "\"CAP_FOO\": unknown capability");
        let e = check(&strings(&["ALL"]), &strings(&["ALL"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "adding all caps and removing all caps not allowed"
        );
        let e = check(&strings(&["CAP_CHOWN"]), &strings(&["CAP_CHOWN"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "capability \"CAP_CHOWN\" cannot be dropped and added"
        );
    }

    /// The masks podman 4.3 gave (`grep Cap /proc/self/status`) for each case.
    #[test]
    fn sets_as_podman_sets_them() {
        let defaults = sets(&[], &[], 0).unwrap();
        assert_eq!(mask(defaults.bounding()), 0x800405fb);
        assert_eq!(mask(defaults.effective()), 0x800405fb);
        assert_eq!(mask(defaults.permitted()), 0x800405fb);
        assert_eq!(mask(defaults.ambient()), 0);
        let user = sets(&[], &[], 1000).unwrap();
        assert_eq!(mask(user.bounding()), 0x800405fb);
        assert_eq!(mask(user.effective()) | mask(user.ambient()), 0);
        let raw = strings(&["CAP_NET_RAW"]);
        let user = sets(&raw, &[], 1000).unwrap();
        assert_eq!(mask(user.bounding()), 0x800425fb);
        for set in [
            user.effective(),
            user.permitted(),
            user.inheritable(),
            user.ambient(),
        ] {
            assert_eq!(mask(set), 0x2000);
        }
        let only = sets(&strings(&["CAP_CHOWN"]), &strings(&["ALL"]), 0).unwrap();
        assert_eq!(mask(only.bounding()), 1);
        assert_eq!(mask(only.effective()), 1);
        let none = sets(&[], &strings(&["ALL"]), 0).unwrap();
        assert_eq!(mask(none.bounding()), 0);
        let admin = sets(&strings(&["CAP_SYS_ADMIN", "CAP_NET_ADMIN"]), &[], 0).unwrap();
        assert_eq!(mask(admin.effective()), 0x802415fb);
        let fewer = sets(&[], &strings(&["CAP_CHOWN", "CAP_KILL"]), 0).unwrap();
        assert_eq!(mask(fewer.bounding()), 0x800405fb & !0x21);
    }

    #[test]
    fn all_is_what_this_process_holds() {
        let host = host_bounding().unwrap();
        let all = sets(&strings(&["ALL"]), &strings(&["CAP_CHOWN"]), 0).unwrap();
        let want: Vec<String> = host
            .iter()
            .filter(|c| **c != "CHOWN")
            .map(|c| format!("CAP_{c}"))
            .collect();
        let mut want = want;
        want.sort();
        assert_eq!(names(all.bounding()), want);
        let user = sets(&strings(&["ALL"]), &[], 1000).unwrap();
        assert_eq!(names(user.ambient()).len(), host.len());
        assert_eq!(bits(0x21), ["CHOWN", "KILL"]);
    }
}
