//! rpm header blobs as the package databases store them (`rpm::header::Header`): an
//! error or a header, never a panic. Parsing and reading every entry as a string and as
//! a number holds at most five times the blob in memory at once (a count or an offset
//! that lies must not size an allocation); making a package of it the way a database
//! record is read (`rpm::package_from_blob`: NAME, VERSION, RELEASE, EPOCH, ARCH,
//! LICENSE, SOURCERPM, the purl) adds a bounded amount to that.
#![no_main]
use std::path::Path;

use berth_inventory::rpm::header::Header;
use berth_inventory::rpm::package_from_blob;
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: berth_fuzz::Counting = berth_fuzz::Counting;

fuzz_target!(|data: &[u8]| {
    // The parser and its accessors: the index (24 bytes in memory per 16 in the blob)
    // and one string at a time, at most three bytes per byte of the data store (each
    // byte of invalid UTF-8 becomes U+FFFD).
    let (header, peak) = berth_fuzz::Counting::peak_since(|| {
        let h = Header::parse(data).ok()?;
        assert!(!h.entries().is_empty(), "a header without entries parsed");
        for e in h.entries() {
            assert!(e.offset <= data.len(), "{e:?} outside the blob");
            let _ = h.string(e.tag);
            let _ = h.int32(e.tag);
        }
        Some(h)
    });
    let bound = 5 * data.len() + 4096;
    assert!(
        peak <= bound,
        "parsing a {}-byte header held {peak} bytes",
        data.len()
    );
    let Some(h) = header else {
        return;
    };
    // A package, as a database record is read: every string it copies is bounded
    // (identifiers at 1 KiB, the license at 16 KiB) before it is decoded, so on top of
    // the parse it holds a bounded amount whatever the blob (before that bound, a 60 KB
    // header of 0xff bytes shared by six tags held 5.8 MB).
    drop(h);
    let (pkg, peak) =
        berth_fuzz::Counting::peak_since(|| package_from_blob(Path::new("fuzz"), 0, data));
    let bound = 5 * data.len() + 512 * 1024;
    assert!(
        peak <= bound,
        "a package from a {}-byte header held {peak} bytes",
        data.len()
    );
    if let Ok(Some(p)) = pkg {
        assert!(p.purl.starts_with("pkg:rpm/"), "{}", p.purl);
    }
});
