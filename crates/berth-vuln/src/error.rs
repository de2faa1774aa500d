use std::path::PathBuf;

/// Errors that stop an operation. A malformed record never is one: it is skipped and
/// listed in the import's report.
#[derive(Debug, thiserror::Error)]
pub enum VulnError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not an OSV source (expected a .zip archive, a .json file or a folder)", path.display())]
    Unsupported { path: PathBuf },
    #[error("{}: not a readable zip archive: {source}", path.display())]
    Zip {
        path: PathBuf,
        source: zip::result::ZipError,
    },
    #[error("{}: vulnerability database written by a newer berth (schema {found}, this one reads {supported})", path.display())]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("vulnerability database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("vulnerability database: {0}")]
    Corrupt(String),
    #[error("vulnerability database: a lock was poisoned by a panic")]
    Poisoned,
}

pub type Result<T> = std::result::Result<T, VulnError>;

pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> VulnError {
    let path = path.into();
    move |source| VulnError::Io { path, source }
}
