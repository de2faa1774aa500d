//! An rpm header as the package databases store it: the on-disk header image without
//! the lead and without the 8-byte header magic.
//!
//! ```text
//! u32 be  il      number of index entries
//! u32 be  dl      length of the data store
//! il x 16 bytes   entries: tag (i32), type (u32), offset (i32, into the data store), count (u32)
//! dl bytes        data store
//! ```
//!
//! The first entry of an installed header is normally a *region* tag (61, 62 or 63) of type
//! BIN and count 16 whose data is a trailer entry pointing back at the start of the index
//! (`offset = -(entries in region * 16)`); entries after the region are the ones rpm added
//! at install time. Every value is read through the bounds-checked accessors here: the
//! blob comes from an image anybody can push, so a lie in a count or an offset must give
//! an error, never a panic, an out-of-bounds read or an allocation sized by the lie.

use std::fmt;

/// Largest header accepted, in bytes. rpm's own limits are 0xffff index entries and a
/// 256 MiB data store; real headers are a few KiB to a few MiB (a package's whole file
/// list is in it). 64 MiB keeps one hostile blob from costing more memory than that.
pub const MAX_HEADER_BYTES: usize = 64 << 20;
/// rpm's limit on index entries (`HEADER_TAGS_MAX`).
const MAX_ENTRIES: u32 = 0xffff;
const ENTRY_SIZE: usize = 16;
const PREAMBLE_SIZE: usize = 8;
/// A region's tag and its trailer are both 16 bytes.
const REGION_TAG_COUNT: u32 = 16;

/// Region tags: `HEADER_IMAGE`, `HEADER_SIGNATURES`, `HEADER_IMMUTABLE`.
const REGION_TAGS: [i32; 3] = [61, 62, 63];

/// rpm's data types (`rpmTagType`).
/// The longest string [`Header::string`] reads (a description, a changelog line).
pub const MAX_STRING: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagType {
    Null,
    Char,
    Int8,
    Int16,
    Int32,
    Int64,
    String,
    Bin,
    StringArray,
    I18nString,
}

impl TagType {
    fn from_u32(v: u32) -> Option<TagType> {
        Some(match v {
            0 => TagType::Null,
            1 => TagType::Char,
            2 => TagType::Int8,
            3 => TagType::Int16,
            4 => TagType::Int32,
            5 => TagType::Int64,
            6 => TagType::String,
            7 => TagType::Bin,
            8 => TagType::StringArray,
            9 => TagType::I18nString,
            _ => return None,
        })
    }

    /// Size of one element for the fixed-size types (rpm aligns these in the data store).
    fn fixed_size(self) -> Option<usize> {
        match self {
            TagType::Null => Some(0),
            TagType::Char | TagType::Int8 | TagType::Bin => Some(1),
            TagType::Int16 => Some(2),
            TagType::Int32 => Some(4),
            TagType::Int64 => Some(8),
            TagType::String | TagType::StringArray | TagType::I18nString => None,
        }
    }
}

/// Why a header blob was refused. Each says which number was wrong, so that a report
/// about a broken image database can be checked against the blob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("header is {0} bytes, shorter than its 8-byte preamble")]
    Truncated(usize),
    #[error("header has {0} index entries (at most 65535, at least 1)")]
    EntryCount(u32),
    #[error("header data store of {0} bytes is over the limit")]
    DataLength(u32),
    #[error("header is {actual} bytes but its preamble says {expected}")]
    Length { expected: u64, actual: usize },
    #[error("entry {index} (tag {tag}): unknown type {ty}")]
    Type { index: usize, tag: i32, ty: u32 },
    #[error("entry {index} (tag {tag}): offset {offset} count {count} is outside the {dl}-byte data store")]
    Bounds {
        index: usize,
        tag: i32,
        offset: i32,
        count: u32,
        dl: usize,
    },
    #[error("entry {index} (tag {tag}): offset {offset} is not aligned for its type")]
    Alignment { index: usize, tag: i32, offset: i32 },
    #[error("region tag {tag}: {reason}")]
    Region { tag: i32, reason: &'static str },
    #[error("tag {tag}: string is not NUL-terminated inside the data store")]
    Unterminated { tag: i32 },
    #[error("tag {tag}: a {len}-byte string, over the {max}-byte limit for it")]
    TooLong { tag: i32, len: usize, max: usize },
    #[error("tag {tag}: type {ty:?} where a {want} was expected")]
    WrongType {
        tag: i32,
        ty: TagType,
        want: &'static str,
    },
}

/// One index entry, as stored (offset and count already checked against the data store).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub tag: i32,
    pub ty: TagType,
    pub offset: usize,
    pub count: u32,
}

/// A parsed header: its entries, checked, and a borrow of its data store.
pub struct Header<'a> {
    entries: Vec<Entry>,
    data: &'a [u8],
}

impl fmt::Debug for Header<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Header")
            .field("entries", &self.entries)
            .field("data_len", &self.data.len())
            .finish()
    }
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    // Callers index inside slices whose length they checked; `get` keeps it panic-free.
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_be_bytes)
        .unwrap_or(0)
}

impl<'a> Header<'a> {
    /// Parses and checks a header blob. The blob must be exactly preamble + index + data
    /// store long, as rpm itself requires of a database record (`hdrblobInit`).
    pub fn parse(blob: &'a [u8]) -> Result<Header<'a>, HeaderError> {
        if blob.len() < PREAMBLE_SIZE {
            return Err(HeaderError::Truncated(blob.len()));
        }
        let il = be_u32(blob, 0);
        let dl = be_u32(blob, 4);
        if il == 0 || il > MAX_ENTRIES {
            return Err(HeaderError::EntryCount(il));
        }
        if dl as usize > MAX_HEADER_BYTES {
            return Err(HeaderError::DataLength(dl));
        }
        let expected = PREAMBLE_SIZE as u64 + il as u64 * ENTRY_SIZE as u64 + dl as u64;
        if expected != blob.len() as u64 {
            return Err(HeaderError::Length {
                expected,
                actual: blob.len(),
            });
        }
        let index_end = PREAMBLE_SIZE + il as usize * ENTRY_SIZE;
        let (index, data) = (&blob[PREAMBLE_SIZE..index_end], &blob[index_end..]);
        // `il` is checked against the blob's real length above, so this allocation is
        // bounded by the input, not by what the input claims.
        let mut entries = Vec::with_capacity(il as usize);
        for (i, raw) in index.chunks_exact(ENTRY_SIZE).enumerate() {
            entries.push(check_entry(i, raw, data)?);
        }
        let header = Header { entries, data };
        header.check_region(index)?;
        Ok(header)
    }

    /// The entries, in index order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    fn find(&self, tag: i32) -> Option<&Entry> {
        self.entries.iter().find(|e| e.tag == tag)
    }

    /// A string tag's value: STRING, or the first element of STRING_ARRAY / I18NSTRING
    /// (the untranslated one). Not valid UTF-8 (old packages' licenses in Latin-1) is
    /// replaced, not refused: the text is informational.
    pub fn string(&self, tag: i32) -> Result<Option<String>, HeaderError> {
        self.string_at_most(tag, MAX_STRING)
    }

    /// [`Header::string`], refused when longer than `max` bytes before it is decoded:
    /// tags may share one string in the data store, and invalid UTF-8 triples in size,
    /// so a small header could otherwise make a caller hold many times its size.
    pub fn string_at_most(&self, tag: i32, max: usize) -> Result<Option<String>, HeaderError> {
        let Some(e) = self.find(tag) else {
            return Ok(None);
        };
        match e.ty {
            TagType::String | TagType::StringArray | TagType::I18nString => {}
            ty => {
                return Err(HeaderError::WrongType {
                    tag,
                    ty,
                    want: "string",
                })
            }
        }
        let rest = &self.data[e.offset..];
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(HeaderError::Unterminated { tag })?;
        if end > max {
            return Err(HeaderError::TooLong { tag, len: end, max });
        }
        Ok(Some(String::from_utf8_lossy(&rest[..end]).into_owned()))
    }

    /// An INT32 tag's first value.
    pub fn int32(&self, tag: i32) -> Result<Option<u32>, HeaderError> {
        let Some(e) = self.find(tag) else {
            return Ok(None);
        };
        if e.ty != TagType::Int32 {
            return Err(HeaderError::WrongType {
                tag,
                ty: e.ty,
                want: "32-bit integer",
            });
        }
        // check_entry made sure offset + 4 * count fits and count >= 1.
        Ok(Some(be_u32(self.data, e.offset)))
    }

    /// Checks the region's trailer the way rpm does (`hdrblobVerifyRegion`). A header
    /// without a region (old BerkeleyDB records) is accepted: nothing is read through it.
    fn check_region(&self, index: &[u8]) -> Result<(), HeaderError> {
        let first = self.entries[0];
        if !REGION_TAGS.contains(&first.tag) {
            return Ok(());
        }
        let bad = |reason| HeaderError::Region {
            tag: first.tag,
            reason,
        };
        if first.ty != TagType::Bin || first.count != REGION_TAG_COUNT {
            return Err(bad("not a 16-byte BIN entry"));
        }
        let trailer = self
            .data
            .get(first.offset..first.offset + ENTRY_SIZE)
            .ok_or(bad("trailer outside the data store"))?;
        let ttag = be_u32(trailer, 0) as i32;
        let tty = be_u32(trailer, 4);
        let toff = be_u32(trailer, 8) as i32;
        let tcount = be_u32(trailer, 12);
        // librpm's fix-up: old signature headers carry HEADER_IMAGE in the trailer.
        let ttag = if first.tag == 62 && ttag == 61 {
            62
        } else {
            ttag
        };
        if ttag != first.tag || tty != 7 || tcount != REGION_TAG_COUNT {
            return Err(bad("trailer does not match the region tag"));
        }
        let back = toff.checked_neg().ok_or(bad("trailer offset overflows"))?;
        if back <= 0 || !(back as usize).is_multiple_of(ENTRY_SIZE) || back as usize > index.len() {
            return Err(bad("trailer points outside the index"));
        }
        Ok(())
    }
}

/// Decodes index entry `i` and checks that its data lies inside the data store.
fn check_entry(i: usize, raw: &[u8], data: &[u8]) -> Result<Entry, HeaderError> {
    let tag = be_u32(raw, 0) as i32;
    let ty_raw = be_u32(raw, 4);
    let offset = be_u32(raw, 8) as i32;
    let count = be_u32(raw, 12);
    let ty = TagType::from_u32(ty_raw).ok_or(HeaderError::Type {
        index: i,
        tag,
        ty: ty_raw,
    })?;
    let out = HeaderError::Bounds {
        index: i,
        tag,
        offset,
        count,
        dl: data.len(),
    };
    if offset < 0 || offset as usize > data.len() || count == 0 {
        return Err(out);
    }
    let off = offset as usize;
    match ty.fixed_size() {
        Some(size) => {
            if size > 1 && !off.is_multiple_of(size) {
                return Err(HeaderError::Alignment {
                    index: i,
                    tag,
                    offset,
                });
            }
            let len = (count as usize).checked_mul(size).ok_or(out.clone())?;
            if off.checked_add(len).is_none_or(|end| end > data.len()) {
                return Err(out);
            }
        }
        None => {
            // Strings take at least one byte (their NUL) each: a count larger than what
            // is left cannot be true. Their terminators are checked when read.
            if count as usize > data.len() - off {
                return Err(out);
            }
            if ty == TagType::String && count != 1 {
                return Err(out);
            }
        }
    }
    Ok(Entry {
        tag,
        ty,
        offset: off,
        count,
    })
}
