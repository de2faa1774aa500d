//! Entry points for the fuzz targets in `fuzz/` (not an API: hidden from the docs).
//! This reads a whole archive through [`TarReader`] (default limits) the way
//! [`crate::apply_layer`] does, without touching any file system.

use std::io::Read;

use crate::tar_read::TarReader;
use crate::RootfsError;

/// Reads every entry of `tar` and all of its data; returns the number of entries.
pub fn read_tar(tar: &[u8]) -> Result<u64, RootfsError> {
    let mut reader = TarReader::new(tar);
    let mut entries = 0;
    let mut buf = [0u8; 4096];
    while let Some(header) = reader.next_entry()? {
        entries += 1;
        let mut data = 0u64;
        loop {
            let n = reader
                .read(&mut buf)
                .map_err(|e| RootfsError::Malformed(format!("reading entry data: {e}")))?;
            if n == 0 {
                break;
            }
            data += n as u64;
        }
        // The reader hands out what the header promised for a regular file, never more.
        assert!(
            data <= header.size,
            "{data} bytes read, header says {}",
            header.size
        );
    }
    Ok(entries)
}
