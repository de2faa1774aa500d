//! The layer's tar, entry by entry, with its extension headers capped.
//!
//! The `tar` crate, left to itself, reads a PAX or GNU long-name header whole whatever
//! the size it claims: a few MiB of gzip can claim GiBs, and the registry analyzes every
//! pushed layer. So its entries are taken raw and the extensions applied here, each read
//! only up to [`MAX_EXTENSION`] (berth-rootfs caps its own reader the same way).
//!
//! A PAX `size` record (files over 8 GiB; Go's archive/tar then writes 0 in the header)
//! is honoured by reading that entry's data beside the `tar` crate, from the same
//! stream: the crate believes the entry empty and finds the next header where the data
//! ends.

use std::cell::RefCell;
use std::io::{self, Read};
use std::rc::Rc;

use tar::EntryType;

use crate::error::InventoryError;

/// The largest PAX, GNU long-name or long-link payload accepted.
pub const MAX_EXTENSION: u64 = 1 << 20;

const BLOCK: u64 = 512;

/// One entry's header with its extensions applied.
pub struct Info {
    pub name: Vec<u8>,
    pub link: Option<Vec<u8>>,
    pub kind: EntryType,
    pub size: u64,
}

/// The stream, shared between the `tar` crate and the reads beside it.
struct Shared<R>(Rc<RefCell<R>>);

impl<R: Read> Read for Shared<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.borrow_mut().read(buf)
    }
}

/// Calls `f` with every entry (extension headers applied, not given) and a reader of
/// its data; what `f` leaves unread is skipped. Then reads the stream to its end, so a
/// compressed stream's trailer is checked.
pub fn each_entry<R: Read>(
    stream: R,
    mut f: impl FnMut(&Info, &mut dyn Read) -> Result<(), InventoryError>,
) -> Result<(), InventoryError> {
    let src = Rc::new(RefCell::new(stream));
    let mut archive = tar::Archive::new(Shared(src.clone()));
    let entries = archive.entries().map_err(tar_or_read)?.raw(true);
    let (mut pax, mut long_name, mut long_link) = (None, None, None);
    for entry in entries {
        let mut entry = entry.map_err(tar_or_read)?;
        let header_size = entry.size();
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            continue; // defaults for all entries; Go and GNU tar write none that matter
        }
        if kind.is_pax_local_extensions() || kind.is_gnu_longname() || kind.is_gnu_longlink() {
            if header_size > MAX_EXTENSION {
                return Err(InventoryError::Tar(io::Error::other(format!(
                    "an extension header of {header_size} bytes, over the {MAX_EXTENSION}-byte limit"
                ))));
            }
            let mut data = Vec::with_capacity(header_size as usize);
            entry.read_to_end(&mut data).map_err(tar_or_read)?;
            let slot = if kind.is_pax_local_extensions() {
                &mut pax
            } else if kind.is_gnu_longname() {
                &mut long_name
            } else {
                &mut long_link
            };
            *slot = Some(data);
            continue;
        }
        let mut info = Info {
            name: entry.path_bytes().into_owned(),
            link: entry.link_name_bytes().map(|l| l.into_owned()),
            kind,
            size: header_size,
        };
        if let Some(name) = long_name.take() {
            info.name = until_nul(name);
        }
        if let Some(link) = long_link.take() {
            info.link = Some(until_nul(link));
        }
        if let Some(records) = pax.take() {
            apply_pax(&mut info, &records)?;
        }
        if info.size == header_size {
            f(&info, &mut entry)?;
        } else if header_size == 0 {
            let mut data = Shared(src.clone()).take(info.size);
            f(&info, &mut data)?;
            io::copy(&mut data, &mut io::sink()).map_err(InventoryError::Read)?;
            let padding = (BLOCK - info.size % BLOCK) % BLOCK;
            let mut pad = Shared(src.clone()).take(padding);
            io::copy(&mut pad, &mut io::sink()).map_err(InventoryError::Read)?;
            if data.limit() + pad.limit() != 0 {
                return Err(InventoryError::Read(io::ErrorKind::UnexpectedEof.into()));
            }
        } else {
            return Err(InventoryError::Tar(io::Error::other(format!(
                "entry size {header_size} in the header, {} in its PAX record",
                info.size
            ))));
        }
    }
    drop(archive);
    io::copy(&mut Shared(src), &mut io::sink()).map_err(InventoryError::Read)?;
    Ok(())
}

/// PAX `path`, `linkpath` and `size` records override the header's fields.
fn apply_pax(info: &mut Info, records: &[u8]) -> Result<(), InventoryError> {
    for record in tar::PaxExtensions::new(records) {
        let record = record.map_err(InventoryError::Tar)?;
        match record.key_bytes() {
            b"path" => info.name = record.value_bytes().to_vec(),
            b"linkpath" => info.link = Some(record.value_bytes().to_vec()),
            b"size" => {
                info.size = std::str::from_utf8(record.value_bytes())
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| {
                        InventoryError::Tar(io::Error::other("a PAX size record that is no number"))
                    })?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn until_nul(mut name: Vec<u8>) -> Vec<u8> {
    if let Some(i) = name.iter().position(|b| *b == 0) {
        name.truncate(i);
    }
    name
}

/// I/O errors of the decompressor surface through the tar reader; keep them apart
/// from malformed tars so the recorded reason says which it was.
pub fn tar_or_read(e: io::Error) -> InventoryError {
    match e.kind() {
        io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidInput => InventoryError::Read(e),
        _ => InventoryError::Tar(e),
    }
}
