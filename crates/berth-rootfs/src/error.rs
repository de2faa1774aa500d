//! One error type for the crate; every variant names the path it concerns.

use std::io;
use std::path::PathBuf;

use crate::limits::Limit;

/// What went wrong, and where: one line each.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// A system call on a file of the root (or of the snapshot, or the output) failed.
    /// The cause is in the message, and is not also a `source()`: a chain printed
    /// whole (`{:#}`) would say it twice.
    #[error("{path}: {op}: {cause}")]
    Io {
        path: PathBuf,
        op: &'static str,
        cause: io::Error,
    },
    /// A layer entry was refused (a `..` name, a hard link out of the root, …).
    #[error("layer entry {entry:?}: {reason}")]
    Refused { entry: String, reason: String },
    /// The layer is not a well-formed tar stream.
    #[error("layer: {0}")]
    Malformed(String),
    /// The tar goes past one of its [`TarLimits`](crate::TarLimits); nothing of the
    /// entry named was handed out. The message names the variable that raises it.
    #[error("tar exceeds {max} {} at entry {entry:?} (set {} to raise the limit)", .limit.unit(), .limit.var())]
    Limit {
        limit: Limit,
        max: u64,
        entry: String,
    },
    /// A snapshot file could not be read as one.
    #[error("snapshot {path}: {reason}")]
    Snapshot { path: PathBuf, reason: String },
}

impl RootfsError {
    pub(crate) fn io(path: impl Into<PathBuf>, op: &'static str, source: io::Error) -> Self {
        RootfsError::Io {
            path: path.into(),
            op,
            cause: source,
        }
    }

    pub(crate) fn limit(limit: Limit, max: u64, entry: &[u8]) -> Self {
        // A name can be a MiB long: the message stays one short line.
        let shown = String::from_utf8_lossy(&entry[..entry.len().min(80)]);
        let more = if entry.len() > 80 { "…" } else { "" };
        RootfsError::Limit {
            limit,
            max,
            entry: format!("{shown}{more}"),
        }
    }

    pub(crate) fn refused(entry: &[u8], reason: impl Into<String>) -> Self {
        RootfsError::Refused {
            entry: String::from_utf8_lossy(entry).into_owned(),
            reason: reason.into(),
        }
    }
}

/// A rustix error as an `io::Error`, for [`RootfsError::io`].
pub(crate) fn errno(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}
