//! Layer application (gzip, zstd or plain tar) into a temporary root. Whatever the layer
//! holds (`..`, absolute paths, symlinks pointing out, hard links to outside, whiteouts
//! of `..`), nothing may land outside the root: the folder around it, the scratch
//! folder, every other folder above the root, and `/etc` must list the same names
//! afterwards, and a file beside the root keep its content. Folders other processes
//! share (`/dev/shm`, `/tmp`, …) only must not gain names outside the temporary-file
//! patterns of other tools (`.tmp*`, `berth-fuzz-*`, and the test clusters of
//! berth-testenv and their PostgreSQL shared memory, `berth-pg-*`, `PostgreSQL.*`, when
//! tests run beside the fuzzer).
#![no_main]
use std::path::Path;

use berth_rootfs::{apply_layer, decompress, remove_all, UnpackOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let scratch = berth_fuzz::scratch();
    let base = scratch.join("layer");
    let root = base.join("root");
    let beside = base.join("beside");
    std::fs::create_dir_all(&root).expect("creating the root");
    std::fs::write(&beside, b"outside").expect("writing beside the root");
    let watched: Vec<&Path> = scratch
        .ancestors()
        .skip(1)
        .chain([Path::new("/etc")])
        .collect();
    let before: Vec<_> = watched.iter().map(|d| berth_fuzz::names(d)).collect();
    let scratch_before = berth_fuzz::names(scratch);

    let opts = UnpackOptions::for_current_user();
    if let Ok(layer) = decompress(std::io::Cursor::new(data.to_vec())) {
        let _ = apply_layer(&root, layer, &opts);
    }

    assert_eq!(
        berth_fuzz::names(&base),
        ["beside".to_string(), "root".to_string()].into(),
        "something landed beside the root"
    );
    assert_eq!(
        std::fs::read(&beside).ok().as_deref(),
        Some(&b"outside"[..])
    );
    assert_eq!(berth_fuzz::names(scratch), scratch_before);
    for (dir, names) in watched.iter().zip(before) {
        let shared = matches!(dir.to_str(), Some("/dev/shm" | "/tmp" | "/dev"));
        let new: Vec<String> = berth_fuzz::names(dir)
            .difference(&names)
            .filter(|n| {
                !(shared
                    && [".tmp", "berth-fuzz-", "berth-pg-", "berth-s3-", "PostgreSQL."]
                        .iter()
                        .any(|p| n.starts_with(p)))
            })
            .cloned()
            .collect();
        assert!(new.is_empty(), "{} gained {new:?}", dir.display());
    }
    remove_all(&root).expect("removing the root");
});
