//! Helpers shared by the fuzz targets: a scratch folder per process, one async runtime,
//! and the checks that a target's file system effects stayed where they belong.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A folder for this fuzzing process: `$BERTH_FUZZ_SCRATCH` (scripts/fuzz makes one per
/// target, on tmpfs when there is one, and removes it), else a new one in /dev/shm or
/// /tmp that is left behind.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("BERTH_FUZZ_SCRATCH") {
            let dir = PathBuf::from(dir);
            std::fs::create_dir_all(&dir).expect("creating $BERTH_FUZZ_SCRATCH");
            return dir;
        }
        let base = ["/dev/shm", "/tmp"]
            .iter()
            .map(Path::new)
            .find(|p| p.is_dir())
            .unwrap_or(Path::new("."));
        let dir = tempfile::Builder::new()
            .prefix("berth-fuzz-")
            .tempdir_in(base)
            .expect("creating the fuzz scratch folder")
            .keep();
        dir
    })
}

/// One current-thread runtime for the targets that drive async code.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("building the tokio runtime")
    })
}

/// The names in folder `dir` (empty when it cannot be read).
pub fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Splits `data` at the first `sep`: (before, after), or (all, empty).
pub fn split_once<'a>(data: &'a [u8], sep: &[u8]) -> (&'a [u8], &'a [u8]) {
    match data.windows(sep.len()).position(|w| w == sep) {
        Some(i) => (&data[..i], &data[i + sep.len()..]),
        None => (data, &[]),
    }
}

/// Writes `data` to `name` in the scratch folder and returns its path.
pub fn scratch_file(name: &str, data: &[u8]) -> PathBuf {
    let path = scratch().join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("creating a scratch folder");
    }
    std::fs::write(&path, data).expect("writing a scratch file");
    path
}

/// Fixed test keys (see `keys/README.md`).
pub fn key_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("keys")
        .join(name)
}
