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
///
/// Its blocking threads never retire: one that exited (after tokio's 10 s idle
/// keep-alive) just as LeakSanitizer looked was reported as a leak of its 72-byte
/// start closure (docker_archive, once in 500,000 runs, not reproducible).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_keep_alive(std::time::Duration::from_secs(365 * 24 * 3600))
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

/// A plain tar layer holding `files` (path, content) as regular files, for the targets
/// that reach a package database parser the way the registry does: through
/// `berth_inventory::analyze_layer` on a layer carrying the database at its path.
pub fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, path, *data)
            .expect("appending to an in-memory tar");
    }
    b.into_inner().expect("finishing an in-memory tar")
}

/// The media type of an uncompressed OCI layer (berth-rootfs sniffs the compression
/// from the bytes whatever the type says).
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// An allocator that counts: the targets that promise an allocation bounded by their
/// input install it (`#[global_allocator]`) and read [`Counting::peak_since`].
pub struct Counting;

static LIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static PEAK: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        use std::sync::atomic::Ordering::Relaxed;
        let p = unsafe { std::alloc::System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Relaxed) + layout.size();
            PEAK.fetch_max(live, Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        unsafe { std::alloc::System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), std::sync::atomic::Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        use std::sync::atomic::Ordering::Relaxed;
        let p = unsafe { std::alloc::System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Relaxed);
            let live = LIVE.fetch_add(new_size, Relaxed) + new_size;
            PEAK.fetch_max(live, Relaxed);
        }
        p
    }
}

impl Counting {
    /// Runs `f` and returns its result with the most bytes it held allocated at once
    /// (above what was live when it started). Only meaningful with [`Counting`] as
    /// the global allocator and one thread allocating.
    pub fn peak_since<T>(f: impl FnOnce() -> T) -> (T, usize) {
        use std::sync::atomic::Ordering::Relaxed;
        let base = LIVE.load(Relaxed);
        PEAK.store(base, Relaxed);
        let out = f();
        (out, PEAK.load(Relaxed).saturating_sub(base))
    }
}

/// LeakSanitizer's suppressions, read at start-up: berth-rootfs decompresses gzip and
/// zstd layers on a detached thread that ends one chunk after its reader is dropped, so
/// when libFuzzer exits right after such an input the thread's handle is still live and
/// reported as a leak of the last input (an empty test case that does not reproduce).
/// The same thread's thread-local destructors, registered by glibc's
/// `__cxa_thread_atexit_impl` and freed when it ends, are reported with no Rust frame
/// (seen after 170 s of `apply_layer`, 2026-12-04).
#[no_mangle]
pub extern "C" fn __lsan_default_suppressions() -> *const std::ffi::c_char {
    c"leak:berth-rootfs/src/decompress.rs\nleak:__cxa_thread_atexit_impl\n".as_ptr()
}
