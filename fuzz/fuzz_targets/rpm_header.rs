//! rpm header blobs as the package databases store them (`rpm::header::Header`): an
//! error or a header, never a panic. Parsing and reading every entry as a string and as
//! a number holds at most five times the blob in memory at once (a count or an offset
//! that lies must not size an allocation); making a package of it the way a database
//! record is read (NAME, VERSION, RELEASE, EPOCH, ARCH, LICENSE, SOURCERPM, the purl)
//! stays linear in the blob.
#![no_main]
use berth_inventory::rpm::header::Header;
use berth_inventory::rpm::{purl, split_source_rpm, tag};
use berth_inventory::{Package, PackageKind};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: berth_fuzz::Counting = berth_fuzz::Counting;

/// What `rpm::package_from_blob` (crate-private) makes of a header, through the same
/// public accessors, so that every value a database read takes is taken here.
fn package(h: &Header) -> Option<Package> {
    let name = h.string(tag::NAME).ok()??;
    let version = h.string(tag::VERSION).ok()??;
    let release = h.string(tag::RELEASE).ok()??;
    let epoch = h.int32(tag::EPOCH).ok()?;
    let sourcerpm = h.string(tag::SOURCERPM).ok()?;
    let vr = format!("{version}-{release}");
    let (source_name, source_version) = match sourcerpm.as_deref().and_then(split_source_rpm) {
        Some((n, v)) => (Some(n.to_string()), (v != vr).then(|| v.to_string())),
        None => (None, None),
    };
    let mut pkg = Package {
        kind: PackageKind::Rpm,
        version: match epoch {
            Some(e) => format!("{e}:{vr}"),
            None => vr,
        },
        name,
        source_name,
        source_version,
        arch: h.string(tag::ARCH).ok()?,
        license: h.string(tag::LICENSE).ok()?,
        purl: String::new(),
        db_path: String::new(),
        layer_index: 0,
    };
    pkg.purl = purl(&pkg, None);
    Some(pkg)
}

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
    // A package: six strings that may each be the whole data store (tags may share
    // their data) made three times longer by U+FFFD, `version-release` twice, and the
    // purl percent-encoding those three bytes as nine. Linear in the blob, but about 96
    // times it at worst (a 60 KB header of 0xff bytes held 5.8 MB): a 64 MiB record would
    // cost GiBs. Tighten this bound once package_from_blob caps what it copies.
    let (pkg, peak) = berth_fuzz::Counting::peak_since(|| package(&h));
    let bound = 128 * data.len() + 4096;
    assert!(
        peak <= bound,
        "a package from a {}-byte header held {peak} bytes",
        data.len()
    );
    if let Some(p) = pkg {
        assert!(p.purl.starts_with("pkg:rpm/"), "{}", p.purl);
    }
});
