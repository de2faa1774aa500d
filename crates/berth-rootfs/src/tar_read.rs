//! A streaming reader of layer tars (ustar, GNU and PAX, as Go's `archive/tar` writes
//! them) that holds no more than one entry's extension headers in memory, capped at
//! [`MAX_EXTENSION`]: a layer is untrusted input, and a PAX header claiming 1 TiB must
//! be an error, not an allocation. File data is never buffered here; the caller reads
//! it through [`TarReader`]'s `Read` until [`TarReader::next_entry`] skips what is left.
//!
//! It is the one tar reader of the project for tars from outside (layers being applied,
//! `import`, image archives, the catalog's layer analysis), and it enforces the
//! [`TarLimits`] it is given: entries, bytes of data and name lengths are counted as
//! headers are read, and the entry that goes past a limit is an error before any of its
//! data is handed out.

use std::io::{self, Read};

use crate::error::RootfsError;
use crate::limits::{Limit, TarLimits};
use crate::xattr::Xattrs;

/// The largest PAX, GNU long-name or long-link payload accepted.
pub const MAX_EXTENSION: u64 = 1 << 20;

/// Extension headers accepted before one entry.
const MAX_EXTENSIONS_IN_A_ROW: u32 = 8;

const BLOCK: u64 = 512;

/// The kind of a tar entry, as its type flag says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Regular,
    HardLink,
    Symlink,
    Char,
    Block,
    Directory,
    Fifo,
    /// Anything else (a GNU volume label, a Solaris ACL, …): skipped.
    Other(u8),
}

/// One entry's header with its extensions applied.
#[derive(Debug)]
pub struct Header {
    pub name: Vec<u8>,
    pub link: Vec<u8>,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime_sec: i64,
    pub mtime_nsec: u32,
    pub dev_major: u32,
    pub dev_minor: u32,
    /// `SCHILY.xattr.NAME` records (name, value), in the order they came.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Reads a tar entry by entry: [`TarReader::next_entry`] gives the next header, and the
/// reader itself (`Read`) that entry's data.
pub struct TarReader<R> {
    inner: R,
    limits: TarLimits,
    /// Entries given out so far.
    entries: u64,
    /// Sum of the data sizes of the entries given out so far.
    bytes: u64,
    /// Data of the current entry not yet read by the caller.
    remaining: u64,
    /// Zero padding after the current entry's data.
    padding: u64,
    /// The archive ended with a zero block (its end-of-archive marker), not merely
    /// with the end of the stream.
    marked_end: bool,
}

impl<R: Read> TarReader<R> {
    /// A reader with the default [`TarLimits`].
    pub fn new(inner: R) -> Self {
        Self::with_limits(inner, TarLimits::default())
    }

    /// A reader that refuses a tar going past `limits`.
    pub fn with_limits(inner: R, limits: TarLimits) -> Self {
        TarReader {
            inner,
            limits,
            entries: 0,
            bytes: 0,
            remaining: 0,
            padding: 0,
            marked_end: false,
        }
    }

    /// Whether the archive ended with its end-of-archive marker (a stream cut at an
    /// entry boundary ends without one).
    pub fn marked_end(&self) -> bool {
        self.marked_end
    }

    /// The reader under the archive (to drain what follows the end of the archive).
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// The next entry, skipping the unread data of the previous one; `None` at the end
    /// of the archive (a zero block, or a clean end of the stream).
    pub fn next_entry(&mut self) -> Result<Option<Header>, RootfsError> {
        let mut pax: Xattrs = Vec::new();
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut pending_extension = false;
        let mut extensions = 0;
        loop {
            self.skip_rest()?;
            let mut block = [0u8; BLOCK as usize];
            let read = read_block(&mut self.inner, &mut block)?;
            if !read || block.iter().all(|b| *b == 0) {
                self.marked_end = read;
                if pending_extension {
                    return Err(malformed("an extension header describes no entry"));
                }
                return Ok(None);
            }
            check_checksum(&block)?;
            let typeflag = block[156];
            let size = numeric(&block[124..136])?;
            self.remaining = size;
            self.padding = (BLOCK - size % BLOCK) % BLOCK;
            match typeflag {
                b'x' | b'g' | b'L' | b'K' => {
                    // A writer puts at most a few before an entry (PAX, long name, long
                    // link, a global header); an endless run of them would be read
                    // forever without an entry to count.
                    extensions += 1;
                    if extensions > MAX_EXTENSIONS_IN_A_ROW {
                        return Err(malformed(format!(
                            "more than {MAX_EXTENSIONS_IN_A_ROW} extension headers in a row"
                        )));
                    }
                    let payload = self.read_extension(size)?;
                    pending_extension = true;
                    match typeflag {
                        b'x' => pax = parse_pax(&payload)?,
                        b'L' => long_name = Some(trim_nul(payload)),
                        b'K' => long_link = Some(trim_nul(payload)),
                        _ => {} // global PAX headers: nothing in them matters to a layer
                    }
                    continue;
                }
                b'S' => return Err(malformed("GNU sparse entries are not supported")),
                _ => {}
            }
            let mut header = parse_header(&block, typeflag)?;
            if let Some(name) = long_name {
                header.name = name;
            }
            if let Some(link) = long_link {
                header.link = link;
            }
            for (key, value) in pax {
                apply_pax(&mut header, key, value)?;
            }
            // Only regular files carry data; a PAX size may override the header's.
            self.remaining = match header.kind {
                Kind::Regular => header.size,
                _ => {
                    header.size = 0;
                    // Some writers give hard links a size; skip whatever is there.
                    size
                }
            };
            self.padding = (BLOCK - self.remaining % BLOCK) % BLOCK;
            self.count(&header)?;
            if header.kind != Kind::Regular {
                self.skip_rest()?;
            }
            return Ok(Some(header));
        }
    }

    /// Counts the entry against the limits; past one, the entry is refused before any
    /// of its data is read.
    fn count(&mut self, header: &Header) -> Result<(), RootfsError> {
        let limits = &self.limits;
        self.entries += 1;
        if self.entries > limits.max_entries {
            return Err(RootfsError::limit(
                Limit::Entries,
                limits.max_entries,
                &header.name,
            ));
        }
        let longest = header.name.len().max(header.link.len()) as u64;
        if longest > limits.max_path {
            return Err(RootfsError::limit(
                Limit::Path,
                limits.max_path,
                &header.name,
            ));
        }
        self.bytes = self.bytes.saturating_add(self.remaining);
        if self.bytes > limits.max_bytes {
            return Err(RootfsError::limit(
                Limit::Bytes,
                limits.max_bytes,
                &header.name,
            ));
        }
        Ok(())
    }

    fn read_extension(&mut self, size: u64) -> Result<Vec<u8>, RootfsError> {
        if size > MAX_EXTENSION {
            return Err(malformed(format!(
                "an extension header of {size} bytes, over the {MAX_EXTENSION}-byte limit"
            )));
        }
        // Their payloads count as data: 1 MiB headers are not free to read either.
        self.bytes = self.bytes.saturating_add(size);
        if self.bytes > self.limits.max_bytes {
            let max = self.limits.max_bytes;
            return Err(RootfsError::limit(
                Limit::Bytes,
                max,
                b"(an extension header)",
            ));
        }
        let mut payload = vec![0u8; size as usize];
        self.inner
            .read_exact(&mut payload)
            .map_err(|e| malformed(format!("extension header: {e}")))?;
        self.remaining = 0;
        Ok(payload)
    }

    fn skip_rest(&mut self) -> Result<(), RootfsError> {
        let n = self.remaining + self.padding;
        if n > 0 {
            let copied = io::copy(&mut (&mut self.inner).take(n), &mut io::sink())
                .map_err(|e| malformed(format!("reading entry data: {e}")))?;
            if copied != n {
                return Err(malformed("truncated entry data"));
            }
        }
        self.remaining = 0;
        self.padding = 0;
        Ok(())
    }
}

/// Reads the current entry's data; end of file at the end of the entry.
impl<R: Read> Read for TarReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let max = buf
            .len()
            .min(self.remaining.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "layer ends inside an entry",
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

fn malformed(reason: impl Into<String>) -> RootfsError {
    RootfsError::Malformed(reason.into())
}

/// Fills `block`; false on a clean end of stream before its first byte.
fn read_block(r: &mut impl Read, block: &mut [u8]) -> Result<bool, RootfsError> {
    let mut filled = 0;
    while filled < block.len() {
        match r.read(&mut block[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(malformed("truncated header block")),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(malformed(format!("reading header: {e}"))),
        }
    }
    Ok(true)
}

fn check_checksum(block: &[u8]) -> Result<(), RootfsError> {
    let stored = numeric(&block[148..156])?;
    let (mut unsigned, mut signed) = (0u64, 0i64);
    for (i, b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { *b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    if stored == unsigned || stored as i64 == signed {
        Ok(())
    } else {
        Err(malformed("header checksum mismatch"))
    }
}

/// An octal field (NUL/space padded) or a GNU base-256 one (high bit set).
fn numeric(field: &[u8]) -> Result<u64, RootfsError> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        if field[0] & 0x40 != 0 {
            return Err(malformed("negative numeric field"));
        }
        let mut v: u64 = u64::from(field[0] & 0x3f);
        for b in &field[1..] {
            v = v
                .checked_mul(256)
                .and_then(|v| v.checked_add(u64::from(*b)))
                .ok_or_else(|| malformed("numeric field overflows"))?;
        }
        return Ok(v);
    }
    let mut v: u64 = 0;
    for &b in field.iter().skip_while(|b| **b == b' ') {
        match b {
            b'0'..=b'7' => {
                v = v
                    .checked_mul(8)
                    .map(|v| v + u64::from(b - b'0'))
                    .ok_or_else(|| malformed("numeric field overflows"))?
            }
            0 | b' ' => break,
            _ => return Err(malformed("bad numeric field")),
        }
    }
    Ok(v)
}

fn field_u32(field: &[u8], what: &str) -> Result<u32, RootfsError> {
    u32::try_from(numeric(field)?).map_err(|_| malformed(format!("{what} out of range")))
}

fn cstr(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    &field[..end]
}

fn trim_nul(mut v: Vec<u8>) -> Vec<u8> {
    let end = v.iter().position(|b| *b == 0).unwrap_or(v.len());
    v.truncate(end);
    v
}

fn parse_header(block: &[u8; 512], typeflag: u8) -> Result<Header, RootfsError> {
    let magic = &block[257..265];
    let mut name = cstr(&block[0..100]).to_vec();
    // POSIX ustar has a name prefix; GNU ("ustar  \0") keeps other fields there.
    if &magic[..6] == b"ustar\0" {
        let prefix = cstr(&block[345..500]);
        if !prefix.is_empty() {
            let mut full = prefix.to_vec();
            full.push(b'/');
            full.extend_from_slice(&name);
            name = full;
        }
    }
    let kind = match typeflag {
        b'0' | 0 | b'7' => Kind::Regular,
        b'1' => Kind::HardLink,
        b'2' => Kind::Symlink,
        b'3' => Kind::Char,
        b'4' => Kind::Block,
        b'5' => Kind::Directory,
        b'6' => Kind::Fifo,
        other => Kind::Other(other),
    };
    // Old tars mark directories by a trailing slash on a regular entry.
    let kind = if kind == Kind::Regular && typeflag == 0 && name.ends_with(b"/") {
        Kind::Directory
    } else {
        kind
    };
    let is_ustar = &magic[..5] == b"ustar";
    Ok(Header {
        link: cstr(&block[157..257]).to_vec(),
        name,
        kind,
        mode: (numeric(&block[100..108])? & 0o7777) as u32,
        uid: field_u32(&block[108..116], "uid")?,
        gid: field_u32(&block[116..124], "gid")?,
        size: numeric(&block[124..136])?,
        mtime_sec: i64::try_from(numeric(&block[136..148])?)
            .map_err(|_| malformed("mtime out of range"))?,
        mtime_nsec: 0,
        dev_major: if is_ustar {
            field_u32(&block[329..337], "device major")?
        } else {
            0
        },
        dev_minor: if is_ustar {
            field_u32(&block[337..345], "device minor")?
        } else {
            0
        },
        xattrs: Vec::new(),
    })
}

/// `LEN KEY=VALUE\n` records.
fn parse_pax(mut data: &[u8]) -> Result<Xattrs, RootfsError> {
    let mut out = Vec::new();
    while !data.is_empty() {
        if data.iter().all(|b| *b == 0) {
            break;
        }
        let space = data
            .iter()
            .position(|b| *b == b' ')
            .ok_or_else(|| malformed("bad PAX record"))?;
        let len: usize = std::str::from_utf8(&data[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|len| *len > space + 1 && *len <= data.len())
            .ok_or_else(|| malformed("bad PAX record length"))?;
        let record = &data[space + 1..len];
        let record = record
            .strip_suffix(b"\n")
            .ok_or_else(|| malformed("PAX record without newline"))?;
        let eq = record
            .iter()
            .position(|b| *b == b'=')
            .ok_or_else(|| malformed("PAX record without '='"))?;
        out.push((record[..eq].to_vec(), record[eq + 1..].to_vec()));
        data = &data[len..];
    }
    Ok(out)
}

fn pax_number(value: &[u8], what: &str) -> Result<u64, RootfsError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| malformed(format!("bad PAX {what}")))
}

fn apply_pax(h: &mut Header, key: Vec<u8>, value: Vec<u8>) -> Result<(), RootfsError> {
    match key.as_slice() {
        b"path" => h.name = value,
        b"linkpath" => h.link = value,
        b"size" => h.size = pax_number(&value, "size")?,
        b"uid" => {
            h.uid = u32::try_from(pax_number(&value, "uid")?)
                .map_err(|_| malformed("uid out of range"))?
        }
        b"gid" => {
            h.gid = u32::try_from(pax_number(&value, "gid")?)
                .map_err(|_| malformed("gid out of range"))?
        }
        b"mtime" => {
            let s = std::str::from_utf8(&value).map_err(|_| malformed("bad PAX mtime"))?;
            let (sec, frac) = s.split_once('.').unwrap_or((s, ""));
            h.mtime_sec = sec.parse().map_err(|_| malformed("bad PAX mtime"))?;
            let digits: String = frac.chars().take(9).collect();
            if !digits.is_empty() {
                let n: u32 = format!("{digits:0<9}")
                    .parse()
                    .map_err(|_| malformed("bad PAX mtime"))?;
                h.mtime_nsec = if h.mtime_sec < 0 && n > 0 {
                    h.mtime_sec -= 1;
                    1_000_000_000 - n
                } else {
                    n
                };
            }
        }
        k if k.starts_with(b"SCHILY.xattr.") => {
            h.xattrs.push((k[b"SCHILY.xattr.".len()..].to_vec(), value));
        }
        k if k.starts_with(b"GNU.sparse.") => {
            return Err(malformed("PAX sparse entries are not supported"))
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_and_base256() {
        assert_eq!(numeric(b"0000644\0").unwrap(), 0o644);
        assert_eq!(numeric(b"  1234 \0").unwrap(), 0o1234);
        assert_eq!(numeric(&[0x80, 0, 0, 0, 0, 0, 1, 0]).unwrap(), 256);
    }

    #[test]
    fn pax_records() {
        let data = b"30 mtime=1234567890.123456789\n20 path=a/very/long\n";
        let recs = parse_pax(data).unwrap();
        assert_eq!(recs[0].0, b"mtime");
        assert_eq!(recs[1].1, b"a/very/long");
        assert!(parse_pax(b"99 path=x\n").is_err());
    }

    #[test]
    fn pax_mtime_fraction() {
        let mut h = parse_header(&[0u8; 512], b'0').unwrap();
        apply_pax(&mut h, b"mtime".to_vec(), b"12.5".to_vec()).unwrap();
        assert_eq!((h.mtime_sec, h.mtime_nsec), (12, 500_000_000));
    }
}
