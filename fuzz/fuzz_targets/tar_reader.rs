//! berth-rootfs's streaming tar reader (ustar, GNU, PAX), every entry and its data.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = berth_rootfs::fuzzing::read_tar(data);
});
