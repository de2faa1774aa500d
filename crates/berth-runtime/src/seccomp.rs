//! The system-call filter podman gives a container: containers/common's default
//! profile (`/usr/share/containers/seccomp.json`, installed with podman, buildah and
//! skopeo by containers-common, beside policy.json), read as containers/common reads
//! it (Docker's profile format: rules for some architectures, capabilities or kernels)
//! and written as the runtime config's `linux.seccomp` for this machine and the
//! container's capabilities. Without it, `perf_event_open`, `io_uring_setup`, `bpf`
//! or `add_key` reached the host's kernel from any container.
//!
//! Written here, not taken from a crate: what is needed is the selection of rules
//! (some forty lines); runc compiles the filter itself.

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxSeccomp;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{Result, RuntimeError};

/// Where containers-common puts the default profile.
pub const DEFAULT_PROFILE: &str = "/usr/share/containers/seccomp.json";

/// `BERTH_SECCOMP_PROFILE`: another profile's path, or `unconfined` for none (as
/// podman's `--security-opt seccomp=unconfined`).
const VARIABLE: &str = "BERTH_SECCOMP_PROFILE";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: String,
    default_errno_ret: Option<u32>,
    #[serde(default)]
    arch_map: Vec<ArchMap>,
    /// Docker's older form: the architectures themselves, without a map.
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default)]
    syscalls: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: String,
    #[serde(default)]
    sub_architectures: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    #[serde(default)]
    names: Vec<String>,
    /// Docker's older form: one name.
    #[serde(default)]
    name: Option<String>,
    action: String,
    #[serde(default)]
    args: Option<Vec<Value>>,
    errno_ret: Option<u32>,
    #[serde(default)]
    includes: Condition,
    #[serde(default)]
    excludes: Condition,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Condition {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
    min_kernel: Option<String>,
}

/// The filter for a container whose bounding capabilities are `caps` (`CAP_…`
/// names): the profile `BERTH_SECCOMP_PROFILE` names, else the default one; `None`
/// when told `unconfined`. A missing default profile is an error that says what to
/// install: running unfiltered would give the container more than podman's does.
pub fn filter(caps: &[String]) -> Result<Option<LinuxSeccomp>> {
    let path = match std::env::var(VARIABLE) {
        Ok(v) if v == "unconfined" => return Ok(None),
        Ok(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from(DEFAULT_PROFILE),
    };
    let text = std::fs::read(&path).map_err(|e| {
        RuntimeError::Invalid(format!(
            "the seccomp profile {}: {e} (install containers-common, Debian's \
             golang-github-containers-common, as podman has it; or set \
             {VARIABLE}=unconfined to run without a system-call filter)",
            path.display()
        ))
    })?;
    for_machine(&text, &path, caps, native_arch(), kernel()).map(Some)
}

/// The profile `text` (read from `path`) for architecture `arch` (libseccomp's name,
/// as [`native_arch`]) and kernel `kernel` (major, minor), as containers/common's
/// setupSeccomp selects it.
fn for_machine(
    text: &[u8],
    path: &Path,
    caps: &[String],
    arch: &str,
    kernel: (u32, u32),
) -> Result<LinuxSeccomp> {
    let bad = |what: String| RuntimeError::Invalid(format!("{}: {what}", path.display()));
    let profile: Profile = serde_json::from_slice(text).map_err(|e| bad(e.to_string()))?;
    let native = seccomp_arch(arch);
    let mut architectures: Vec<&String> = profile
        .arch_map
        .iter()
        .filter(|m| Some(m.architecture.as_str()) == native)
        .flat_map(|m| std::iter::once(&m.architecture).chain(&m.sub_architectures))
        .collect();
    if profile.arch_map.is_empty() {
        architectures = profile.architectures.iter().collect();
    }
    let at_least = |min: &Option<String>| {
        min.as_deref()
            .and_then(parse_kernel)
            .is_some_and(|min| kernel >= min)
    };
    let has = |c: &String| caps.contains(c);
    let syscalls: Vec<Value> = profile
        .syscalls
        .iter()
        .filter(|r| {
            let (inc, exc) = (&r.includes, &r.excludes);
            !(exc.arches.iter().any(|a| a == arch)
                || exc.caps.iter().any(has)
                || (exc.min_kernel.is_some() && at_least(&exc.min_kernel))
                || (!inc.arches.is_empty() && !inc.arches.iter().any(|a| a == arch))
                || !inc.caps.iter().all(has)
                || (inc.min_kernel.is_some() && !at_least(&inc.min_kernel)))
        })
        .map(|r| {
            let names: Vec<&String> = r.name.iter().chain(&r.names).collect();
            let mut call = json!({ "names": names, "action": r.action });
            if let Some(args) = r.args.as_ref().filter(|a| !a.is_empty()) {
                call["args"] = json!(args);
            }
            if let Some(errno) = r.errno_ret {
                call["errnoRet"] = json!(errno);
            }
            call
        })
        .collect();
    let mut seccomp = json!({
        "defaultAction": profile.default_action,
        "architectures": architectures,
        "syscalls": syscalls,
    });
    if let Some(errno) = profile.default_errno_ret {
        seccomp["defaultErrnoRet"] = json!(errno);
    }
    serde_json::from_value(seccomp).map_err(|e| bad(format!("not a filter runc takes: {e}")))
}

/// This machine's architecture as the profile's rules name it: libseccomp's native
/// name (libseccomp-golang's `ScmpArch.String`), which containers/common compares
/// them with: `amd64`, `x86`, `arm64`, `ppc64le`…
fn native_arch() -> &'static str {
    let little = cfg!(target_endian = "little");
    match (std::env::consts::ARCH, little) {
        ("x86_64", _) => "amd64",
        ("x86", _) => "x86",
        ("aarch64", _) => "arm64",
        ("powerpc64", true) => "ppc64le",
        ("powerpc64", false) => "ppc64",
        ("mips64", true) => "mipsel64",
        (other, _) => other,
    }
}

/// The architecture map's name of a native one.
fn seccomp_arch(native: &str) -> Option<&'static str> {
    Some(match native {
        "amd64" => "SCMP_ARCH_X86_64",
        "x86" => "SCMP_ARCH_X86",
        "arm64" => "SCMP_ARCH_AARCH64",
        "arm" => "SCMP_ARCH_ARM",
        "ppc64le" => "SCMP_ARCH_PPC64LE",
        "ppc64" => "SCMP_ARCH_PPC64",
        "s390x" => "SCMP_ARCH_S390X",
        "riscv64" => "SCMP_ARCH_RISCV64",
        "mips64" => "SCMP_ARCH_MIPS64",
        "mipsel64" => "SCMP_ARCH_MIPSEL64",
        _ => return None,
    })
}

/// The running kernel's (major, minor).
fn kernel() -> (u32, u32) {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .and_then(|r| parse_kernel(r.trim()))
        .unwrap_or((0, 0))
}

/// `5.10.0-23-amd64` or `4.8` as (major, minor).
fn parse_kernel(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROFILE: &str = r#"{
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
        "archMap": [
            {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}
        ],
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"]}},
            {"names": ["bpf"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["bpf"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
            {"names": ["modify_ldt"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["x86"]}},
            {"name": "getpid", "action": "SCMP_ACT_ALLOW"}
        ]
    }"#;

    fn names(s: &LinuxSeccomp) -> Vec<String> {
        let v = serde_json::to_value(s).unwrap();
        v["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| format!("{} {}", c["names"][0].as_str().unwrap(), c["action"]))
            .collect()
    }

    #[test]
    fn rules_are_chosen_by_architecture_capability_and_kernel() {
        let path = Path::new("seccomp.json");
        let plain = for_machine(PROFILE.as_bytes(), path, &[], "amd64", (5, 10)).unwrap();
        assert_eq!(
            names(&plain),
            [
                r#"read "SCMP_ACT_ALLOW""#,
                r#"personality "SCMP_ACT_ALLOW""#,
                r#"arch_prctl "SCMP_ACT_ALLOW""#,
                r#"bpf "SCMP_ACT_ERRNO""#,
                r#"ptrace "SCMP_ACT_ALLOW""#,
                r#"getpid "SCMP_ACT_ALLOW""#,
            ]
        );
        let x86 = for_machine(PROFILE.as_bytes(), path, &[], "x86", (5, 10)).unwrap();
        assert!(names(&x86).contains(&r#"modify_ldt "SCMP_ACT_ALLOW""#.to_string()));
        let v = serde_json::to_value(&plain).unwrap();
        assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(v["defaultErrnoRet"], 38);
        assert_eq!(
            v["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
        assert_eq!(v["syscalls"][1]["args"][0]["value"], 8);
        assert_eq!(v["syscalls"][3]["errnoRet"], 1);
        let admin = ["CAP_SYS_ADMIN".to_string()];
        let arm_old = for_machine(PROFILE.as_bytes(), path, &admin, "arm64", (4, 4)).unwrap();
        assert_eq!(
            names(&arm_old),
            [
                r#"read "SCMP_ACT_ALLOW""#,
                r#"personality "SCMP_ACT_ALLOW""#,
                r#"bpf "SCMP_ACT_ALLOW""#,
                r#"getpid "SCMP_ACT_ALLOW""#,
            ]
        );
        assert!(for_machine(b"{}", path, &[], "amd64", (5, 10)).is_err());
    }

    /// containers-common's own profile (when installed) becomes a filter runc takes.
    #[test]
    fn the_installed_default_profile_reads() {
        let text = std::fs::read(DEFAULT_PROFILE).unwrap_or_else(|e| {
            panic!(
                "{DEFAULT_PROFILE}: {e}: this test needs containers-common \
                 (apt-get install golang-github-containers-common, as podman has it)"
            )
        });
        let allowed = |caps: &[&str]| -> Vec<String> {
            let caps: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
            let path = Path::new(DEFAULT_PROFILE);
            let s = for_machine(&text, path, &caps, native_arch(), kernel()).unwrap();
            let v = serde_json::to_value(&s).unwrap();
            assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
            assert!(!v["architectures"].as_array().unwrap().is_empty());
            v["syscalls"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["action"] == "SCMP_ACT_ALLOW" && c.get("args").is_none())
                .flat_map(|c| c["names"].as_array().unwrap().clone())
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect()
        };
        let plain = allowed(&["CAP_CHOWN"]);
        for call in ["read", "clone", "execve"] {
            assert!(plain.contains(&call.to_string()), "{call}");
        }
        for call in [
            "bpf",
            "chroot",
            "kcmp",
            "perf_event_open",
            "add_key",
            "io_uring_setup",
        ] {
            assert!(!plain.contains(&call.to_string()), "{call} allowed");
        }
        let more = allowed(&["CAP_SYS_CHROOT", "CAP_SYS_ADMIN"]);
        assert!(more.contains(&"chroot".to_string()) && more.contains(&"bpf".to_string()));
    }
}
