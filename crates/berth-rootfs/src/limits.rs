//! How much of a tar berth accepts: a layer, an `import`ed tar or an image archive is
//! untrusted, and a few MiB of gzip can expand into a tar of billions of entries or
//! petabytes of data. [`TarReader`](crate::TarReader) counts as it reads and refuses
//! the entry that goes past a limit before any of its bytes are handed out.
//!
//! Libraries take a [`TarLimits`] value; the binary builds it from the environment
//! with [`TarLimits::from_vars`], so the variable names live here, beside the error
//! that tells the user which one to raise.

/// The ceilings of one tar. The defaults ([`TarLimits::default`]) are far above real
/// images (ARCHITECTURE.md says why each) and exist to stop a decompression bomb.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TarLimits {
    /// Sum of the entries' data sizes (what extracting the tar writes) and of their
    /// extension headers (PAX, GNU long names), in bytes.
    pub max_bytes: u64,
    /// Entries (extension headers not counted).
    pub max_entries: u64,
    /// Bytes of one entry's name or link target.
    pub max_path: u64,
}

impl TarLimits {
    /// 64 GiB of data.
    pub const DEFAULT_MAX_BYTES: u64 = 64 << 30;
    /// 4 million entries.
    pub const DEFAULT_MAX_ENTRIES: u64 = 4_000_000;
    /// 4096 bytes, Linux's `PATH_MAX`.
    pub const DEFAULT_MAX_PATH: u64 = 4096;

    /// The variable that sets [`TarLimits::max_bytes`].
    pub const BYTES_VAR: &'static str = "BERTH_TAR_MAX_BYTES";
    /// The variable that sets [`TarLimits::max_entries`].
    pub const ENTRIES_VAR: &'static str = "BERTH_TAR_MAX_ENTRIES";
    /// The variable that sets [`TarLimits::max_path`].
    pub const PATH_VAR: &'static str = "BERTH_TAR_MAX_PATH";

    /// The defaults, each replaced by its variable when `get` has one
    /// (`TarLimits::from_vars(|k| std::env::var(k).ok())` at the edge). A value must
    /// be a positive whole number; the error names the variable.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<TarLimits, String> {
        let read = |var: &str, default: u64| -> Result<u64, String> {
            match get(var) {
                None => Ok(default),
                Some(v) => match v.trim().parse::<u64>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(format!("{var}={v:?}: a positive whole number was expected")),
                },
            }
        };
        Ok(TarLimits {
            max_bytes: read(Self::BYTES_VAR, Self::DEFAULT_MAX_BYTES)?,
            max_entries: read(Self::ENTRIES_VAR, Self::DEFAULT_MAX_ENTRIES)?,
            max_path: read(Self::PATH_VAR, Self::DEFAULT_MAX_PATH)?,
        })
    }
}

impl Default for TarLimits {
    fn default() -> Self {
        TarLimits {
            max_bytes: Self::DEFAULT_MAX_BYTES,
            max_entries: Self::DEFAULT_MAX_ENTRIES,
            max_path: Self::DEFAULT_MAX_PATH,
        }
    }
}

/// Which limit a tar went past (for [`RootfsError::Limit`](crate::RootfsError::Limit)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    Bytes,
    Entries,
    Path,
}

impl Limit {
    /// The variable that raises it.
    pub fn var(self) -> &'static str {
        match self {
            Limit::Bytes => TarLimits::BYTES_VAR,
            Limit::Entries => TarLimits::ENTRIES_VAR,
            Limit::Path => TarLimits::PATH_VAR,
        }
    }

    /// What is counted, after the number in the message.
    pub fn unit(self) -> &'static str {
        match self {
            Limit::Bytes => "bytes of data",
            Limit::Entries => "entries",
            Limit::Path => "bytes in a name or link target",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_replace_defaults_and_bad_values_name_theirs() {
        let l = TarLimits::from_vars(|k| (k == "BERTH_TAR_MAX_ENTRIES").then(|| "12".into()));
        assert_eq!(
            l,
            Ok(TarLimits {
                max_entries: 12,
                ..TarLimits::default()
            })
        );
        let e = TarLimits::from_vars(|k| (k == "BERTH_TAR_MAX_PATH").then(|| "0".into()));
        assert!(e.unwrap_err().starts_with("BERTH_TAR_MAX_PATH=\"0\""));
        let e = TarLimits::from_vars(|k| (k == "BERTH_TAR_MAX_BYTES").then(|| "1G".into()));
        assert!(e.unwrap_err().contains("BERTH_TAR_MAX_BYTES"));
    }
}
