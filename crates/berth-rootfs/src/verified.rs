//! A stored layer applied only as the image config names it: the uncompressed bytes
//! must hash to the config's `rootfs.diff_ids` entry. The image ID is the config's
//! digest and the diff IDs are the config's word on its layers; without the check, a
//! manifest pairing a trusted image's config with other layers (a hostile pull or
//! `load` of an image with that config) had them unpacked under the trusted image's ID.

use std::io::{self, Read};
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::{apply_layer, decompress, LayerStats, RootfsError, UnpackOptions, MAX_TAIL};

/// Reads through, hashing what passes.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// [`apply_layer`] of a stored layer (gzip, zstd or plain) whose uncompressed bytes
/// must hash to `diff_id` (`sha256:<hex>`). A mismatch is an error after the layer was
/// applied: the caller throws the root file system away, as on any error.
pub fn apply_stored_layer(
    root: &Path,
    stored: impl Read + Send + 'static,
    diff_id: &str,
    opts: &UnpackOptions,
) -> Result<LayerStats, RootfsError> {
    let layer = decompress(stored).map_err(|e| RootfsError::Malformed(e.to_string()))?;
    let mut hashing = Hashing {
        inner: layer,
        hasher: Sha256::new(),
    };
    let stats = apply_layer(root, &mut hashing, opts)?;
    let tail = io::copy(&mut (&mut hashing).take(MAX_TAIL + 1), &mut io::sink())
        .map_err(|e| RootfsError::Malformed(e.to_string()))?;
    if tail > MAX_TAIL {
        return Err(RootfsError::Malformed(format!(
            "more than {MAX_TAIL} bytes after the end of the archive"
        )));
    }
    let actual = format!("sha256:{:x}", hashing.hasher.finalize());
    if actual != diff_id {
        return Err(RootfsError::Malformed(format!(
            "its content is {actual}, where the image config says {diff_id}"
        )));
    }
    Ok(stats)
}

/// The diff ID (`sha256:<hex>` of the uncompressed bytes) of a stored layer (gzip,
/// zstd or plain): what a store checks a layer against before it lets a manifest
/// name it for an image it already holds.
pub fn stored_layer_diff_id(stored: impl Read + Send + 'static) -> io::Result<String> {
    let mut hashing = Hashing {
        inner: decompress(stored)?,
        hasher: Sha256::new(),
    };
    io::copy(&mut hashing, &mut io::sink())?;
    Ok(format!("sha256:{:x}", hashing.hasher.finalize()))
}
