//! SUSE's NDB `Packages.db` (`rpm::read_rpmdb_ndb`, and `rpm::read_rpmdb`, which tells
//! the formats apart by their bytes): arbitrary bytes as the file give an error or
//! packages, never a panic, and the two readers agree. Slot counts, block offsets and
//! blob lengths all come from the file; libFuzzer's `-rss_limit_mb` catches an
//! allocation sized by a lie.
#![no_main]
use berth_inventory::rpm::{read_rpmdb, read_rpmdb_ndb};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = berth_fuzz::scratch_file("rpm/Packages.db", data);
    let ndb = read_rpmdb_ndb(&path);
    if let Ok(pkgs) = &ndb {
        for p in pkgs {
            assert!(!p.name.is_empty() && !p.version.is_empty(), "{p:?}");
        }
        match read_rpmdb(&path) {
            Ok(b) => assert_eq!(pkgs, &b),
            Err(e) => panic!("read_rpmdb failed ({e}) where the NDB reader read {pkgs:?}"),
        }
    }
});
