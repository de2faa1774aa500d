//! A layer tar packed as a gzip blob, hashed on both sides as it streams: the tar's
//! digest is the image config's diff ID, the blob's is the manifest's layer digest.

use std::io::{self, Read, Write};

use berth_image::{Algorithm, Digest, Hasher};
use flate2::write::GzEncoder;
use flate2::Compression;

use crate::error::RootfsError;
use crate::COPY_BUFFER;

/// A packed layer's names and size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackedLayer {
    /// sha256 of the uncompressed tar (the config's `rootfs.diff_ids`).
    pub diff_id: Digest,
    /// sha256 of the gzip blob (the manifest's layer descriptor).
    pub digest: Digest,
    /// Bytes of the gzip blob.
    pub size: u64,
}

/// Packs a layer tar (uncompressed, streamed from `tar`) as a gzip blob written to
/// `out` while hashing both sides.
pub fn pack_layer(mut tar: impl Read, out: impl Write) -> Result<PackedLayer, RootfsError> {
    let in_err = |e| RootfsError::io("<layer tar>", "read", e);
    let out_err = |e| RootfsError::io("<layer blob>", "write", e);
    let mut diff_id = Algorithm::Sha256.hasher();
    let counted = Counted {
        inner: out,
        hash: Algorithm::Sha256.hasher(),
        size: 0,
    };
    let mut gz = GzEncoder::new(counted, Compression::default());
    let mut buf = vec![0u8; COPY_BUFFER];
    loop {
        let n = match tar.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(in_err(e)),
        };
        diff_id.update(&buf[..n]);
        gz.write_all(&buf[..n]).map_err(out_err)?;
    }
    let mut counted = gz.finish().map_err(out_err)?;
    counted.inner.flush().map_err(out_err)?;
    Ok(PackedLayer {
        diff_id: diff_id.finish(),
        digest: counted.hash.finish(),
        size: counted.size,
    })
}

struct Counted<W> {
    inner: W,
    hash: Hasher,
    size: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_both_sides() {
        let tar: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let mut blob = Vec::new();
        let packed = pack_layer(&tar[..], &mut blob).unwrap();
        assert_eq!(packed.diff_id, Digest::sha256_of(&tar));
        assert_eq!(packed.digest, Digest::sha256_of(&blob));
        assert_eq!(packed.size, blob.len() as u64);
        let mut back = Vec::new();
        crate::decompress(io::Cursor::new(blob))
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, tar);
    }
}
