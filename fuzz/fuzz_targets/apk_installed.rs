//! apk's database (`lib/apk/db/installed`, `usr/lib/apk/db/installed`), reached through
//! `analyze_layer` on a layer carrying it (the first byte picks the path). The layer is
//! fine whatever the file holds; the file is listed once, as a database; every package
//! has a name and a version, on one line, and there are no more packages than `P:` lines.
#![no_main]
use berth_inventory::{analyze_layer, PackageKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, text)) = data.split_first() else {
        return;
    };
    let path = if pick % 2 == 0 {
        "lib/apk/db/installed"
    } else {
        "usr/lib/apk/db/installed"
    };
    let layer = berth_fuzz::tar_of(&[(path, text)]);
    let art = analyze_layer(std::io::Cursor::new(layer), berth_fuzz::OCI_LAYER)
        .unwrap_or_else(|e| panic!("a well-formed layer failed: {e}"));
    let [(db, pkgs)] = art.databases.as_slice() else {
        panic!("{} databases for one file", art.databases.len());
    };
    assert_eq!(db, path);
    let names = String::from_utf8_lossy(text)
        .lines()
        .filter(|l| l.starts_with("P:"))
        .count();
    assert!(
        pkgs.len() <= names,
        "{} packages from {names} P: lines",
        pkgs.len()
    );
    for p in pkgs {
        assert_eq!(p.kind, PackageKind::Apk);
        for (what, v) in [("name", &p.name), ("version", &p.version)] {
            assert!(!v.is_empty(), "a package with an empty {what}: {p:?}");
            assert!(!v.contains('\n'), "a {what} over two lines: {p:?}");
        }
        assert!(p.source_name.as_deref().is_some_and(|s| !s.is_empty()));
    }
    assert!(art.errors.iter().all(|(p, _)| p == path));
});
