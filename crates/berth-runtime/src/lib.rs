//! Containers made from the images of the local store: their root file systems
//! (layers applied vfs-style into a folder of their own, berth-rootfs), their
//! processes under an OCI runtime found on the system (runc or crun, as podman uses
//! them), and images made from them again (`commit`, and `import` of a tar).
//!
//! Where things are, under the store's root:
//! - `containers/<id>/rootfs/`: the container's file system;
//! - `containers/<id>/base.snapshot`: the state of `rootfs` as the image left it, what
//!   `commit` diffs against;
//! - `containers/<id>/config.json`: the OCI runtime bundle's config, written before
//!   each start from the image config and the create options;
//! - `containers/<id>/state.json`: when it last started and finished, its exit code;
//! - `containers/<id>/ctr.log`: the output of a detached container;
//! - `runtime/`: the OCI runtime's own state (`runc --root`).
//!
//! The store's `containers` table holds the record (name, image, what to run), so an
//! image a container uses cannot be removed under it.

pub mod caps;
mod container;
mod image;
mod logs;
mod names;
mod oci;
mod seccomp;
mod spec;
mod users;

pub use berth_rootfs::TarLimits;
pub use container::{Containers, CreateOptions, StateReport, Status};
pub use image::{
    add_layer, apply_changes, apply_instruction, command, default_shell, empty_config, import,
    store_image, store_layer, ImageOptions,
};
pub use logs::{read_log, LogLine, LogReader};
pub use oci::Runtime;
pub use spec::{
    add_host_files, make_host_file_mount_points, parse_add_host, Bind, Overrides, Process, Tmpfs,
};
pub use users::{resolve as resolve_user, Ids};

use berth_transport::TransportError;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Store(#[from] TransportError),
    #[error(transparent)]
    Rootfs(#[from] berth_rootfs::RootfsError),
    /// The cause is in the message, and is not also a `source()`: a chain printed
    /// whole (`{:#}`) would say it twice.
    #[error("{context}: {cause}")]
    Io {
        context: String,
        cause: std::io::Error,
    },
    /// No runtime, or no privilege to use one: says what is missing.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{runtime} {action} {id}: {detail}")]
    Failed {
        runtime: String,
        action: String,
        id: String,
        detail: String,
    },
    /// The runtime could not start the process (a command not found, not
    /// executable): podman's message, and the exit status it gives for it.
    #[error("{message}")]
    Start { message: String, code: i32 },
    #[error("cannot remove container {0} as it is running - running or paused containers cannot be removed without force: container state improper")]
    Running(String),
}

impl RuntimeError {
    /// The exit status a podman-style command gives for this error: the
    /// runtime's for a process it could not start, else 125.
    pub fn exit_status(&self) -> u8 {
        match self {
            RuntimeError::Start { code, .. } => (*code).clamp(0, 255) as u8,
            _ => 125,
        }
    }
}

pub type Result<T> = std::result::Result<T, RuntimeError>;

pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> RuntimeError {
    let context = context.into();
    move |cause| RuntimeError::Io { context, cause }
}

/// Seconds since the epoch.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// RFC 3339 with nanoseconds, as configs write `created`.
pub(crate) fn rfc3339_now() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error and its causes as `anyhow` prints them with `{:#}`.
    fn chain(e: &dyn std::error::Error) -> String {
        let mut out = e.to_string();
        let mut next = e.source();
        while let Some(cause) = next {
            out.push_str(&format!(": {cause}"));
            next = cause.source();
        }
        out
    }

    /// Each cause once, however the error is printed (`Read-only file system (os
    /// error 30)` came two and three times).
    #[test]
    fn an_io_cause_is_said_once() {
        let ro = || std::io::Error::from_raw_os_error(30);
        let e = io("creating /x/rootfs")(ro());
        assert_eq!(chain(&e), format!("creating /x/rootfs: {}", ro()));
        let e = RuntimeError::from(berth_rootfs::RootfsError::Io {
            path: "/x/a".into(),
            op: "create",
            cause: ro(),
        });
        assert_eq!(chain(&e), format!("/x/a: create: {}", ro()));
        assert_eq!(chain(&e).matches("os error 30").count(), 1);
    }
}
