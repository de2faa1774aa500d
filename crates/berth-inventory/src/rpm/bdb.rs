//! The BerkeleyDB `Packages` file (rpm < 4.16: RHEL 7/8, CentOS 7/8, Amazon Linux 2):
//! a libdb *hash* database whose keys are header numbers (4 bytes, the writer's byte
//! order) and whose values are rpm headers. Read page by page without libdb, as rpm's
//! own `bdb_ro` backend and claircore's `internal/rpm/bdb` do.
//!
//! Layout (libdb `dbinc/db_page.h`):
//! - page 0, the hash meta page: magic `0x00061561` at 12 (its byte order is the
//!   file's), page size at 20, encryption at 24, page type 8 at 25, last page at 32;
//! - every page starts with a 26-byte header: next page at 16, entry count (u16) at 20,
//!   `hf_offset` (u16) at 22, page type at 25;
//! - hash pages (type 2 or 13) hold, after the header, `entries` u16 offsets of items
//!   laid out from the end of the page backwards, in key/value pairs; item `i` spans
//!   from its offset to item `i-1`'s (the page end for item 0). An item's first byte is
//!   its kind: 1 = data inline, 3 = "off page": `pgno` (u32 at 4) and total length
//!   (u32 at 8) of a chain of overflow pages;
//! - overflow pages (type 7) carry `hf_offset` bytes of data after their header and
//!   link to the next one.
//!
//! Only one page (and one header being assembled) is in memory at a time, every page
//! number is checked against the file, and chains are bounded by the page count and by
//! the announced length, so a cycle or a lie ends in an error.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::header::MAX_HEADER_BYTES;
use super::{display, io_err, package_from_blob, RpmError};
use crate::model::Package;

const HASH_MAGIC: u32 = 0x0006_1561;
const PAGE_HEADER: usize = 26;
const P_HASH_UNSORTED: u8 = 2;
const P_OVERFLOW: u8 = 7;
const P_HASHMETA: u8 = 8;
const P_HASH: u8 = 13;
const H_KEYDATA: u8 = 1;
const H_OFFPAGE: u8 = 3;

/// True when these 4 bytes (a file's offset 12..16) are the hash magic in either order.
pub(crate) fn is_hash_magic(b: &[u8]) -> bool {
    b == HASH_MAGIC.to_le_bytes() || b == HASH_MAGIC.to_be_bytes()
}

/// The file's byte order, found from the magic.
#[derive(Clone, Copy)]
struct Order {
    big: bool,
}

impl Order {
    fn u16(self, b: &[u8], at: usize) -> u16 {
        let v = [b[at], b[at + 1]];
        if self.big {
            u16::from_be_bytes(v)
        } else {
            u16::from_le_bytes(v)
        }
    }
    fn u32(self, b: &[u8], at: usize) -> u32 {
        let v = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if self.big {
            u32::from_be_bytes(v)
        } else {
            u32::from_le_bytes(v)
        }
    }
}

struct Db<'p> {
    path: &'p Path,
    file: File,
    order: Order,
    page_size: usize,
    last_page: u32,
}

impl Db<'_> {
    fn err(&self, reason: String) -> RpmError {
        RpmError::Bdb {
            path: display(self.path),
            reason,
        }
    }

    /// Reads page `n` into `buf` (page_size long).
    fn read_page(&self, n: u32, buf: &mut [u8]) -> Result<(), RpmError> {
        if n > self.last_page {
            return Err(self.err(format!("page {n} is past the last page {}", self.last_page)));
        }
        self.file
            .read_exact_at(buf, n as u64 * self.page_size as u64)
            .map_err(|e| self.err(format!("page {n}: {e}")))
    }
}

/// Reads every package of a BerkeleyDB hash `Packages` file, in page order.
pub fn read_rpmdb_bdb(path: &Path) -> Result<Vec<Package>, RpmError> {
    let file = File::open(path).map_err(|e| io_err(path, e))?;
    let len = file.metadata().map_err(|e| io_err(path, e))?.len();
    let bad = |reason: String| RpmError::Bdb {
        path: display(path),
        reason,
    };
    let mut meta = [0u8; 72];
    file.read_exact_at(&mut meta, 0)
        .map_err(|_| bad(format!("{len} bytes is too short for a meta page")))?;
    let order = match &meta[12..16] {
        m if m == HASH_MAGIC.to_le_bytes() => Order { big: false },
        m if m == HASH_MAGIC.to_be_bytes() => Order { big: true },
        _ => return Err(bad("not a hash database (magic)".into())),
    };
    if meta[25] != P_HASHMETA {
        return Err(bad(format!("page 0 has type {}, not hash meta", meta[25])));
    }
    if meta[24] != 0 {
        return Err(bad("encrypted databases are not supported".into()));
    }
    let page_size = order.u32(&meta, 20) as usize;
    if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(bad(format!("page size {page_size}")));
    }
    let last_page = order.u32(&meta, 32);
    if (last_page as u64 + 1) * page_size as u64 > len {
        return Err(bad(format!(
            "last page {last_page} of {page_size} bytes is past the end of the {len}-byte file"
        )));
    }
    let db = Db {
        path,
        file,
        order,
        page_size,
        last_page,
    };
    let mut packages = Vec::new();
    let mut page = vec![0u8; page_size];
    let mut overflow = vec![0u8; page_size];
    // One bit per page (last_page is checked against the file's size above).
    let mut used = vec![false; last_page as usize + 1];
    for n in 1..=last_page {
        db.read_page(n, &mut page)?;
        if page[25] != P_HASH && page[25] != P_HASH_UNSORTED {
            continue;
        }
        for (record, value) in hash_items(&db, n, &page)? {
            let blob = match value {
                Value::Inline(range) => page[range].to_vec(),
                Value::OffPage { first, len } => {
                    read_chain(&db, record, first, len, &mut overflow, &mut used)?
                }
            };
            if let Some(p) = package_from_blob(path, record, &blob)? {
                packages.push(p);
            }
        }
    }
    Ok(packages)
}

enum Value {
    Inline(std::ops::Range<usize>),
    OffPage { first: u32, len: u32 },
}

/// The (record number, value) pairs of one hash page, every offset checked.
/// Record 0 is rpm's bookkeeping (the next free header number), not a header.
fn hash_items(db: &Db, n: u32, page: &[u8]) -> Result<Vec<(u32, Value)>, RpmError> {
    let order = db.order;
    let entries = order.u16(page, 20) as usize;
    let bad = |what: String| db.err(format!("page {n}: {what}"));
    if !entries.is_multiple_of(2) {
        return Err(bad(format!("odd number of items ({entries})")));
    }
    let index_end = PAGE_HEADER + entries * 2;
    if index_end > db.page_size {
        return Err(bad(format!("{entries} items do not fit in the page")));
    }
    let offset = |i: usize| order.u16(page, PAGE_HEADER + 2 * i) as usize;
    // Item i runs from its offset to the previous item's (or the page's end).
    let item = |i: usize| -> Result<std::ops::Range<usize>, RpmError> {
        let start = offset(i);
        let end = if i == 0 { db.page_size } else { offset(i - 1) };
        if start < index_end || start >= end || end > db.page_size {
            return Err(bad(format!("item {i} at {start}..{end} is out of place")));
        }
        Ok(start..end)
    };
    let mut out = Vec::with_capacity(entries / 2);
    for pair in 0..entries / 2 {
        let key = item(2 * pair)?;
        if page[key.start] != H_KEYDATA || key.len() != 5 {
            return Err(bad(format!("key {pair} is not a 4-byte header number")));
        }
        let record = order.u32(page, key.start + 1);
        let data = item(2 * pair + 1)?;
        let value = match page[data.start] {
            H_KEYDATA => Value::Inline(data.start + 1..data.end),
            H_OFFPAGE if data.len() >= 12 => Value::OffPage {
                first: order.u32(page, data.start + 4),
                len: order.u32(page, data.start + 8),
            },
            kind => {
                return Err(bad(format!(
                    "record {record}: item kind {kind} not supported"
                )))
            }
        };
        if record != 0 {
            out.push((record, value));
        }
    }
    Ok(out)
}

/// Concatenates an overflow chain of `len` bytes starting at page `first`.
fn read_chain(
    db: &Db,
    record: u32,
    first: u32,
    len: u32,
    page: &mut [u8],
    used: &mut [bool],
) -> Result<Vec<u8>, RpmError> {
    let bad = |what: String| db.err(format!("record {record}: {what}"));
    if len as usize > MAX_HEADER_BYTES {
        return Err(RpmError::TooLarge {
            path: display(db.path),
            record,
            len: len as u64,
            max: MAX_HEADER_BYTES,
        });
    }
    let mut blob = Vec::new();
    let mut next = first;
    // An overflow page belongs to one chain only: a page seen before (a loop, or two
    // records sharing pages) is refused, so the walk ends within `last_page` pages and
    // no header is read twice.
    for _ in 0..db.last_page {
        if next == 0 {
            break;
        }
        db.read_page(next, page)?;
        if std::mem::replace(&mut used[next as usize], true) {
            return Err(bad(format!("overflow page {next} is used twice")));
        }
        if page[25] != P_OVERFLOW {
            return Err(bad(format!(
                "page {next} in its chain is not an overflow page"
            )));
        }
        let used = db.order.u16(page, 22) as usize;
        if used == 0 || used > db.page_size - PAGE_HEADER {
            return Err(bad(format!("overflow page {next} claims {used} bytes")));
        }
        if blob.len() + used > len as usize {
            return Err(bad(format!(
                "overflow chain is longer than its {len} bytes"
            )));
        }
        blob.extend_from_slice(&page[PAGE_HEADER..PAGE_HEADER + used]);
        next = db.order.u32(page, 16);
    }
    if next != 0 || blob.len() != len as usize {
        return Err(bad(format!(
            "overflow chain gave {} of its {len} bytes",
            blob.len()
        )));
    }
    Ok(blob)
}
