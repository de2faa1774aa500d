//! rpm header blobs that lie: every size and offset in a header comes from an image
//! anybody can push, so each lie must be an error naming it, never a panic, an
//! out-of-bounds read or an allocation the size of the lie.

use berth_inventory::rpm::header::{Header, HeaderError, TagType};
use berth_inventory::rpm::{read_rpmdb_sqlite, tag, RpmError};

/// A tag's value as a header stores it.
enum V<'a> {
    Str(&'a str),
    Int32(u32),
}

/// Builds a header blob as rpm writes one into its database: a HEADER_IMMUTABLE (63)
/// region entry first, whose 16-byte trailer ends the region's data, then the tags.
fn header(tags: &[(i32, V)]) -> Vec<u8> {
    let mut data = Vec::new();
    let mut index = Vec::new();
    let entry = |index: &mut Vec<u8>, tag: i32, ty: u32, off: usize, count: u32| {
        index.extend_from_slice(&tag.to_be_bytes());
        index.extend_from_slice(&ty.to_be_bytes());
        index.extend_from_slice(&(off as i32).to_be_bytes());
        index.extend_from_slice(&count.to_be_bytes());
    };
    for (t, v) in tags {
        match v {
            V::Str(s) => {
                entry(&mut index, *t, 6, data.len(), 1);
                data.extend_from_slice(s.as_bytes());
                data.push(0);
            }
            V::Int32(n) => {
                while data.len() % 4 != 0 {
                    data.push(0);
                }
                entry(&mut index, *t, 4, data.len(), 1);
                data.extend_from_slice(&n.to_be_bytes());
            }
        }
    }
    let il = tags.len() as u32 + 1;
    let trailer_at = data.len();
    let mut trailer = Vec::new();
    entry(&mut trailer, 63, 7, 0, 16);
    trailer[8..12].copy_from_slice(&(-(il as i32 * 16)).to_be_bytes());
    data.extend_from_slice(&trailer);
    let mut region = Vec::new();
    entry(&mut region, 63, 7, trailer_at, 16);
    let mut blob = Vec::new();
    blob.extend_from_slice(&il.to_be_bytes());
    blob.extend_from_slice(&(data.len() as u32).to_be_bytes());
    blob.extend_from_slice(&region);
    blob.extend_from_slice(&index);
    blob.extend_from_slice(&data);
    blob
}

fn good() -> Vec<u8> {
    header(&[
        (tag::NAME, V::Str("openssl-libs")),
        (tag::VERSION, V::Str("3.0.7")),
        (tag::RELEASE, V::Str("27.el9")),
        (tag::EPOCH, V::Int32(1)),
        (tag::LICENSE, V::Str("Apache-2.0")),
        (tag::ARCH, V::Str("x86_64")),
        (tag::SOURCERPM, V::Str("openssl-3.0.7-27.el9.src.rpm")),
    ])
}

/// Index entry `i` (0 = region) field `field` (0 tag, 1 type, 2 offset, 3 count) set to `v`.
fn set(blob: &mut [u8], i: usize, field: usize, v: u32) {
    let at = 8 + i * 16 + field * 4;
    blob[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

#[test]
fn a_well_formed_header_reads() {
    let blob = good();
    let h = Header::parse(&blob).unwrap();
    assert_eq!(
        h.string(tag::NAME).unwrap().as_deref(),
        Some("openssl-libs")
    );
    assert_eq!(h.int32(tag::EPOCH).unwrap(), Some(1));
    assert_eq!(h.string(9999).unwrap(), None);
    assert_eq!(h.entries()[0].ty, TagType::Bin);
}

#[test]
fn truncated_and_padded_blobs_are_refused() {
    let blob = good();
    for cut in [0, 3, 7, 8, 20, blob.len() - 1] {
        assert!(Header::parse(&blob[..cut]).is_err(), "cut at {cut}");
    }
    let mut longer = blob.clone();
    longer.push(0);
    assert!(matches!(
        Header::parse(&longer),
        Err(HeaderError::Length { .. })
    ));
}

#[test]
fn giant_counts_are_refused_before_any_allocation() {
    // 4 billion entries and a 4 GiB data store announced by an 8-byte blob.
    let mut blob = vec![0xff; 8];
    assert_eq!(
        Header::parse(&blob).unwrap_err(),
        HeaderError::EntryCount(u32::MAX)
    );
    blob[..4].copy_from_slice(&1u32.to_be_bytes());
    assert_eq!(
        Header::parse(&blob).unwrap_err(),
        HeaderError::DataLength(u32::MAX)
    );
    // A string entry that claims more strings than the data store has bytes.
    let mut blob = good();
    set(&mut blob, 1, 1, 8); // NAME as a STRING_ARRAY ...
    set(&mut blob, 1, 3, u32::MAX); // ... of 4 billion strings
    assert!(matches!(
        Header::parse(&blob),
        Err(HeaderError::Bounds { index: 1, .. })
    ));
    // An INT32 array whose byte length overflows.
    let mut blob = good();
    set(&mut blob, 4, 3, 0x4000_0001);
    assert!(matches!(
        Header::parse(&blob),
        Err(HeaderError::Bounds { index: 4, .. })
    ));
}

#[test]
fn offsets_past_the_end_are_refused() {
    for off in [u32::MAX, 0x8000_0000, 100_000] {
        let mut blob = good();
        set(&mut blob, 2, 2, off);
        assert!(
            matches!(
                Header::parse(&blob),
                Err(HeaderError::Bounds { index: 2, .. })
            ),
            "offset {off:#x}"
        );
    }
    // An INT32 at the very end, its 4 bytes running over.
    let mut blob = good();
    let dl = u32::from_be_bytes(blob[4..8].try_into().unwrap());
    set(&mut blob, 4, 2, dl - 4 + 4);
    assert!(Header::parse(&blob).is_err());
    // Misaligned INT32.
    let mut blob = good();
    set(&mut blob, 4, 2, 1);
    assert!(matches!(
        Header::parse(&blob),
        Err(HeaderError::Alignment { index: 4, .. })
    ));
}

#[test]
fn an_unterminated_string_is_an_error_when_read() {
    // No region (as old BerkeleyDB records have none): one STRING entry whose bytes run
    // to the end of the data store without a NUL.
    let mut blob = Vec::new();
    blob.extend_from_slice(&1u32.to_be_bytes());
    blob.extend_from_slice(&3u32.to_be_bytes());
    for v in [tag::NAME as u32, 6, 0, 1] {
        blob.extend_from_slice(&v.to_be_bytes());
    }
    blob.extend_from_slice(b"abc");
    let h = Header::parse(&blob).unwrap();
    assert_eq!(
        h.string(tag::NAME).unwrap_err(),
        HeaderError::Unterminated { tag: tag::NAME }
    );
}

#[test]
fn bad_region_trailers_are_refused() {
    let good = good();
    let dl = u32::from_be_bytes(good[4..8].try_into().unwrap()) as usize;
    let trailer = good.len() - 16;
    for (field, v) in [
        (0, 62u32),
        (1, 6),
        (2, (-16i32 * 1000) as u32),
        (2, 16),
        (3, 15),
    ] {
        let mut blob = good.clone();
        blob[trailer + field * 4..trailer + field * 4 + 4].copy_from_slice(&v.to_be_bytes());
        assert!(
            matches!(Header::parse(&blob), Err(HeaderError::Region { .. })),
            "trailer field {field} = {v:#x}"
        );
    }
    // Region entry pointing its trailer outside the data store.
    let mut blob = good.clone();
    set(&mut blob, 0, 2, dl as u32 - 8);
    assert!(Header::parse(&blob).is_err());
}

#[test]
fn unknown_types_and_wrong_types_are_named() {
    let mut blob = good();
    set(&mut blob, 3, 1, 42);
    assert_eq!(
        Header::parse(&blob).unwrap_err(),
        HeaderError::Type {
            index: 3,
            tag: tag::RELEASE,
            ty: 42
        }
    );
    // EPOCH stored as a string: read as an integer, it is an error, not garbage.
    let blob = header(&[(tag::NAME, V::Str("x")), (tag::EPOCH, V::Str("1"))]);
    let h = Header::parse(&blob).unwrap();
    assert!(matches!(
        h.int32(tag::EPOCH),
        Err(HeaderError::WrongType { .. })
    ));
}

/// Every byte of a real-shaped header flipped to every interesting value: parsing and
/// reading every tag gives values or errors, never a panic.
#[test]
fn byte_flips_never_panic() {
    let good = good();
    for at in 0..good.len() {
        for v in [0x00, 0x01, 0x0f, 0x10, 0x7f, 0x80, 0xff] {
            let mut blob = good.clone();
            blob[at] = v;
            if let Ok(h) = Header::parse(&blob) {
                for t in [1000, 1001, 1002, 1003, 1014, 1022, 1044] {
                    let _ = h.string(t);
                    let _ = h.int32(t);
                }
            }
        }
    }
}

/// A database row with a broken header fails the read, naming the file and the record,
/// rather than silently giving a shorter package list.
#[test]
fn a_broken_row_fails_the_database_with_its_record_number() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpmdb.sqlite");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL);",
    )
    .unwrap();
    let mut broken = good();
    broken.truncate(broken.len() - 3);
    let gpg = header(&[
        (tag::NAME, V::Str("gpg-pubkey")),
        (tag::VERSION, V::Str("fd431d51")),
        (tag::RELEASE, V::Str("4ae0493b")),
    ]);
    for (hnum, blob) in [(1, good()), (2, gpg), (7, broken)] {
        conn.execute(
            "INSERT INTO Packages (hnum, blob) VALUES (?1, ?2)",
            rusqlite::params![hnum, blob],
        )
        .unwrap();
    }
    drop(conn);
    match read_rpmdb_sqlite(&path) {
        Err(e @ RpmError::Header { record: 7, .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("rpmdb.sqlite: record 7: header is"), "{msg}");
        }
        other => panic!("{other:?}"),
    }

    // Without the broken row: the package, and the gpg-pubkey pseudo-package left out.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("DELETE FROM Packages WHERE hnum = 7", [])
        .unwrap();
    drop(conn);
    let pkgs = read_rpmdb_sqlite(&path).unwrap();
    assert_eq!(pkgs.len(), 1);
    assert_eq!(pkgs[0].version, "1:3.0.7-27.el9");
    assert_eq!(pkgs[0].source_name.as_deref(), Some("openssl"));
    assert_eq!(
        pkgs[0].purl,
        "pkg:rpm/openssl-libs@3.0.7-27.el9?arch=x86_64&epoch=1&upstream=openssl-3.0.7-27.el9.src.rpm"
    );

    // A header missing its VERSION is an error naming what is missing.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let no_version = header(&[(tag::NAME, V::Str("x")), (tag::RELEASE, V::Str("1"))]);
    conn.execute(
        "INSERT INTO Packages (hnum, blob) VALUES (3, ?1)",
        [no_version],
    )
    .unwrap();
    drop(conn);
    let err = read_rpmdb_sqlite(&path).unwrap_err();
    assert!(
        err.to_string().ends_with("record 3: VERSION missing"),
        "{err}"
    );
}

/// A row bigger than any header is refused by its size, before SQLite hands it over.
#[test]
fn an_oversized_row_is_refused_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpmdb.sqlite");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob BLOB NOT NULL);
         INSERT INTO Packages VALUES (5, zeroblob(64 * 1024 * 1024 + 1));",
    )
    .unwrap();
    drop(conn);
    match read_rpmdb_sqlite(&path) {
        Err(RpmError::TooLarge { record: 5, .. }) => {}
        other => panic!("{other:?}"),
    }
}

/// `Packages` as an endless recursive view: refused for not being a table, instead of
/// being read forever.
#[test]
fn a_packages_view_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpmdb.sqlite");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE VIEW Packages AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)
         SELECT x AS hnum, zeroblob(16) AS blob FROM c;",
    )
    .unwrap();
    drop(conn);
    let err = read_rpmdb_sqlite(&path).unwrap_err();
    assert!(
        err.to_string().contains("no Packages table (found view)"),
        "{err}"
    );
}

/// `Packages` as a table with a generated column: refused for not being rpm's, instead
/// of computing a hundred-megabyte value per row (15 s for 100 rows) while sorting.
#[test]
fn a_packages_table_with_a_generated_column_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpmdb.sqlite");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE Packages (k INTEGER, blob BLOB,
           hnum AS (length(hex(zeroblob(50000000 + k)))) VIRTUAL);
         INSERT INTO Packages (k, blob) VALUES (1, x'00'), (2, x'00');",
    )
    .unwrap();
    drop(conn);
    let started = std::time::Instant::now();
    let err = read_rpmdb_sqlite(&path).unwrap_err();
    assert!(err.to_string().contains("not rpm's (hnum, blob)"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// A record whose identifiers are longer than any real package's is refused before its
/// strings are decoded or copied: tags may share one string, invalid UTF-8 triples in
/// size and the purl percent-encodes it again, so a 60 KB header once held 5.8 MB.
#[test]
fn oversized_identifiers_are_refused_before_they_are_copied() {
    let long = "\u{fffd}".repeat(400); // 1,200 bytes: over the 1 KiB for an identifier
    let blob = header(&[
        (tag::NAME, V::Str(&long)),
        (tag::VERSION, V::Str("1")),
        (tag::RELEASE, V::Str("1")),
    ]);
    let h = Header::parse(&blob).unwrap();
    assert!(matches!(
        h.string_at_most(tag::NAME, 1024),
        Err(HeaderError::TooLong {
            len: 1200,
            max: 1024,
            ..
        })
    ));
    let err =
        berth_inventory::rpm::package_from_blob(std::path::Path::new("db"), 7, &blob).unwrap_err();
    assert!(
        err.to_string().contains("over the 1024-byte limit"),
        "{err}"
    );
    // The generic accessor's bound is wider (a description may be long).
    assert_eq!(h.string(tag::NAME).unwrap().as_deref(), Some(long.as_str()));
    // A real identifier is fine.
    assert!(
        berth_inventory::rpm::package_from_blob(std::path::Path::new("db"), 1, &good())
            .unwrap()
            .is_some()
    );
}
