//! The BerkeleyDB hash `Packages` file (rpm < 4.16), read page by page without libdb
//! (`rpm::read_rpmdb_bdb`, and `rpm::read_rpmdb`, which tells the formats apart by
//! their bytes): arbitrary bytes as the file give an error or packages, never a panic,
//! and the two readers agree. Page numbers, overflow chains and lengths all come from
//! the file; libFuzzer's `-rss_limit_mb` and `-timeout` catch a chain that loops or an
//! allocation sized by a lie.
#![no_main]
use berth_inventory::rpm::{read_rpmdb, read_rpmdb_bdb};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = berth_fuzz::scratch_file("rpm/Packages", data);
    let bdb = read_rpmdb_bdb(&path);
    if let Ok(pkgs) = &bdb {
        for p in pkgs {
            assert!(!p.name.is_empty() && !p.version.is_empty(), "{p:?}");
        }
    }
    // Data that is not a SQLite file goes to the same reader (SQLite is fuzzed upstream).
    if !data.starts_with(b"SQLite format 3\0") {
        match (&bdb, read_rpmdb(&path)) {
            (Ok(a), Ok(b)) => assert_eq!(a, &b),
            (Ok(a), Err(e)) => {
                panic!("read_rpmdb failed ({e}) where the BerkeleyDB reader read {a:?}")
            }
            _ => {}
        }
    }
});
