//! A layer tar packed as a gzip blob, hashed on both sides as it streams: the tar's
//! digest is the image config's diff ID, the blob's is the manifest's layer digest.

use std::io::{self, Read, Write};

use berth_image::{Algorithm, Digest, Hasher};
use flate2::write::GzEncoder;
use flate2::Compression;

use crate::error::RootfsError;
use crate::limits::TarLimits;
use crate::tar_read::TarReader;
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
/// `out` while hashing both sides. The bytes are taken as they are: for tars made
/// here (a diff, a build's COPY). A tar from outside goes through
/// [`pack_checked_layer`].
pub fn pack_layer(mut tar: impl Read, out: impl Write) -> Result<PackedLayer, RootfsError> {
    let mut packer = Packer::new(out);
    let mut buf = vec![0u8; COPY_BUFFER];
    loop {
        let n = match tar.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(RootfsError::io("<layer tar>", "read", e)),
        };
        packer.write(&buf[..n])?;
    }
    packer.finish()
}

/// [`pack_layer`] for a tar from outside (`import`): every header is read and checked
/// as the bytes pass (checksums, numeric fields, extension headers, entry data all
/// there, the end-of-archive marker), so random bytes, a text file or a truncated
/// archive are an error before anything is kept, and so is a tar going past `limits`.
/// What `out` got is then to be thrown away.
pub fn pack_checked_layer(
    tar: impl Read,
    out: impl Write,
    limits: &TarLimits,
) -> Result<PackedLayer, RootfsError> {
    let tee = Tee {
        inner: tar,
        packer: Packer::new(out),
        seen: 0,
        error: None,
    };
    let mut reader = TarReader::with_limits(tee, *limits);
    let walked = (|| {
        while reader.next_entry()?.is_some() {}
        Ok(())
    })();
    let tee = reader_parts(reader, walked)?;
    tee.packer.finish()
}

/// Checks how the walk of a checked layer ended; drains what follows the end marker
/// (zero padding) into the packer.
fn reader_parts<R: Read, W: Write>(
    reader: TarReader<Tee<R, W>>,
    walked: Result<(), RootfsError>,
) -> Result<Tee<R, W>, RootfsError> {
    let marked = reader.marked_end();
    let mut tee = reader.into_inner();
    if let Some(e) = tee.error.take() {
        // The packing side failed (a full disk): that is the error, not the tar.
        return Err(e);
    }
    walked?;
    if tee.seen == 0 {
        return Err(RootfsError::Malformed("the input is empty".into()));
    }
    if !marked {
        return Err(RootfsError::Malformed(
            "truncated: the archive ends without its end-of-archive marker".into(),
        ));
    }
    io::copy(&mut tee, &mut io::sink()).map_err(|e| RootfsError::io("<layer tar>", "read", e))?;
    match tee.error.take() {
        Some(e) => Err(e),
        None => Ok(tee),
    }
}

/// Hashes the tar, compresses it and hashes the blob, as bytes are written.
struct Packer<W: Write> {
    diff_id: Hasher,
    gz: GzEncoder<Counted<W>>,
}

impl<W: Write> Packer<W> {
    fn new(out: W) -> Self {
        let counted = Counted {
            inner: out,
            hash: Algorithm::Sha256.hasher(),
            size: 0,
        };
        Packer {
            diff_id: Algorithm::Sha256.hasher(),
            gz: GzEncoder::new(counted, Compression::default()),
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), RootfsError> {
        self.diff_id.update(bytes);
        self.gz
            .write_all(bytes)
            .map_err(|e| RootfsError::io("<layer blob>", "write", e))
    }

    fn finish(self) -> Result<PackedLayer, RootfsError> {
        let out_err = |e| RootfsError::io("<layer blob>", "write", e);
        let mut counted = self.gz.finish().map_err(out_err)?;
        counted.inner.flush().map_err(out_err)?;
        Ok(PackedLayer {
            diff_id: self.diff_id.finish(),
            digest: counted.hash.finish(),
            size: counted.size,
        })
    }
}

/// A reader that packs every byte read through it (so the tar reader's walk packs
/// the layer); a packing error is kept and ends the reading.
struct Tee<R: Read, W: Write> {
    inner: R,
    packer: Packer<W>,
    seen: u64,
    error: Option<RootfsError>,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Err(e) = self.packer.write(&buf[..n]) {
            self.error = Some(e);
            return Err(io::Error::other("the layer could not be written"));
        }
        self.seen += n as u64;
        Ok(n)
    }
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

#[cfg(test)]
mod checked_tests {
    use super::*;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, body) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *body).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn refused(input: &[u8]) -> String {
        match pack_checked_layer(input, Vec::new(), &TarLimits::default()) {
            Err(e) => e.to_string(),
            Ok(p) => panic!("accepted: {p:?}"),
        }
    }

    #[test]
    fn a_whole_tar_packs_as_pack_layer_does() {
        let tar = tar_of(&[("a", b"hello"), ("b/c", &[7u8; 5000])]);
        let (mut checked, mut plain) = (Vec::new(), Vec::new());
        let a = pack_checked_layer(&tar[..], &mut checked, &TarLimits::default()).unwrap();
        let b = pack_layer(&tar[..], &mut plain).unwrap();
        assert_eq!(a.diff_id, b.diff_id);
        assert_eq!(a.diff_id, Digest::sha256_of(&tar));
        assert_eq!(
            (a.digest, a.size),
            (Digest::sha256_of(&checked), checked.len() as u64)
        );
        let mut back = Vec::new();
        crate::decompress(io::Cursor::new(checked))
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, tar, "the blob is the tar, whole");
    }

    #[test]
    fn what_is_not_a_whole_tar_is_refused() {
        let tar = tar_of(&[("a", b"hello"), ("b", &[7u8; 5000])]);
        let random: Vec<u8> = (0..3000u32).map(|i| (i * 7919 % 251) as u8).collect();
        assert!(
            refused(&random).starts_with("layer: "),
            "{}",
            refused(&random)
        );
        assert!(refused(b"hello\n").contains("truncated"));
        assert!(refused(b"").contains("empty"));
        assert!(refused(&tar[..2000]).contains("truncated"));
        // Cut at an entry boundary: no end-of-archive marker.
        assert!(refused(&tar[..512 + 512]).contains("end-of-archive"));
    }
}
