//! dpkg's database (`var/lib/dpkg/status`, distroless' `status.d/NAME`), reached as the
//! registry reaches it: a layer carrying the file, through `analyze_layer`. The first
//! byte picks the path. The layer is fine whatever the file holds (a broken database
//! is recorded, not a failed layer); the file is listed once, as a database; every
//! package has a name and a version, on one line, and there are no more packages than
//! stanzas naming one.
#![no_main]
use berth_inventory::{analyze_layer, PackageKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, text)) = data.split_first() else {
        return;
    };
    let path = if pick % 2 == 0 {
        "var/lib/dpkg/status"
    } else {
        "var/lib/dpkg/status.d/libc6"
    };
    let layer = berth_fuzz::tar_of(&[(path, text)]);
    let art = analyze_layer(std::io::Cursor::new(layer), berth_fuzz::OCI_LAYER)
        .unwrap_or_else(|e| panic!("a well-formed layer failed: {e}"));
    let [(db, pkgs)] = art.databases.as_slice() else {
        panic!("{} databases for one file", art.databases.len());
    };
    assert_eq!(db, path);
    // Lines that name a package as the parser reads fields: not a continuation, the
    // name before `:` trimmed (of any whitespace, form feeds too), any case.
    let lossy = String::from_utf8_lossy(text);
    let stanzas = lossy
        .lines()
        .filter(|l| !l.starts_with([' ', '\t']))
        .filter(|l| {
            l.split_once(':')
                .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case("package"))
        })
        .count();
    assert!(
        pkgs.len() <= stanzas,
        "{} packages from {stanzas} Package: lines",
        pkgs.len()
    );
    for p in pkgs {
        assert_eq!(p.kind, PackageKind::Deb);
        assert_eq!(p.db_path, path);
        for (what, v) in [("name", &p.name), ("version", &p.version)] {
            assert!(!v.is_empty(), "a package with an empty {what}: {p:?}");
            assert!(!v.contains('\n'), "a {what} over two lines: {p:?}");
        }
    }
    assert!(art.errors.iter().all(|(p, _)| p == path));
});
