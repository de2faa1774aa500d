//! rpm header blobs as the package databases store them (`rpm::header::Header`): an
//! error or a header, never a panic. A header read the way a database record is read
//! (NAME, VERSION, RELEASE, EPOCH, ARCH, LICENSE, SOURCERPM, then the purl), and every
//! entry read as a string and as a number, must hold at most a few times the blob in
//! memory at once: a count or an offset that lies must not size an allocation.
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
    let (pkg, peak) = berth_fuzz::Counting::peak_since(|| {
        let h = Header::parse(data).ok()?;
        assert!(!h.entries().is_empty(), "a header without entries parsed");
        for e in h.entries() {
            assert!(e.offset <= data.len(), "{e:?} outside the blob");
            let _ = h.string(e.tag);
            let _ = h.int32(e.tag);
        }
        package(&h)
    });
    // Entries are 24 bytes in memory for 16 in the blob; one string at a time, each at
    // most the blob; the purl escapes each byte as at most 3.
    let bound = 8 * data.len() + 4096;
    assert!(
        peak <= bound,
        "{peak} bytes allocated for a {}-byte header",
        data.len()
    );
    if let Some(p) = pkg {
        assert!(p.purl.starts_with("pkg:rpm/"), "{}", p.purl);
    }
});
