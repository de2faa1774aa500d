//! Layer blobs whatever their compression, told by their first bytes (as
//! containers/image does: media types lie more often than magic numbers).
//!
//! Decompression runs on its own thread, handing 1 MiB chunks over a short channel, so
//! that inflating the next megabyte overlaps with writing the last one to disk: on two
//! cores that is most of the difference between gzip speed and disk speed.

use std::io::{self, BufReader, Read};
use std::sync::mpsc::{sync_channel, Receiver};

use crate::COPY_BUFFER;

const GZIP: &[u8] = &[0x1f, 0x8b];
const ZSTD: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// Chunks in flight between the decoding thread and the reader.
const QUEUE: usize = 4;

/// A reader of a layer blob whatever its compression (gzip, zstd, plain tar), by magic
/// bytes. gzip streams of several members (pigz, pgzip) are read whole.
pub fn decompress(blob: impl Read + Send + 'static) -> io::Result<Box<dyn Read + Send>> {
    let mut blob = BufReader::with_capacity(COPY_BUFFER, blob);
    let mut head = [0u8; 4];
    let mut filled = 0;
    while filled < head.len() {
        match blob.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let head = head[..filled].to_vec();
    let stream = io::Cursor::new(head.clone()).chain(blob);
    if head.starts_with(GZIP) {
        Ok(Box::new(threaded(flate2::bufread::MultiGzDecoder::new(
            BufReader::with_capacity(COPY_BUFFER, stream),
        ))?))
    } else if head.starts_with(ZSTD) {
        let decoder = zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(
            COPY_BUFFER,
            stream,
        ))?;
        Ok(Box::new(threaded(decoder)?))
    } else {
        Ok(Box::new(stream))
    }
}

/// Runs `decoder` on a thread of its own; the returned reader yields its output.
fn threaded(mut decoder: impl Read + Send + 'static) -> io::Result<ChunkReader> {
    let (tx, rx) = sync_channel::<io::Result<Vec<u8>>>(QUEUE);
    std::thread::Builder::new()
        .name("layer-decompress".into())
        .spawn(move || loop {
            let mut chunk = vec![0u8; COPY_BUFFER];
            let mut filled = 0;
            // Fill the chunk: decoders return little at a time, channels cost per send.
            let result = loop {
                match decoder.read(&mut chunk[filled..]) {
                    Ok(0) => break Ok(true),
                    Ok(n) => {
                        filled += n;
                        if filled == chunk.len() {
                            break Ok(false);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            chunk.truncate(filled);
            let end = match result {
                Ok(end) => {
                    if !chunk.is_empty() && tx.send(Ok(chunk)).is_err() {
                        return; // the reader is gone
                    }
                    end
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            if end {
                return; // dropping `tx` tells the reader
            }
        })?;
    Ok(ChunkReader {
        rx,
        chunk: Vec::new(),
        pos: 0,
    })
}

struct ChunkReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn roundtrip(blob: Vec<u8>, want: &[u8]) {
        let mut out = Vec::new();
        decompress(io::Cursor::new(blob))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, want);
    }

    #[test]
    fn gzip_zstd_plain_and_tiny() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        roundtrip(gz.finish().unwrap(), &data);
        roundtrip(zstd::encode_all(&data[..], 1).unwrap(), &data);
        roundtrip(data.clone(), &data);
        roundtrip(b"ab".to_vec(), b"ab");
        roundtrip(Vec::new(), b"");
    }

    #[test]
    fn corrupt_gzip_is_an_error() {
        let mut blob = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
        blob.extend_from_slice(&[0xff; 64]);
        let mut out = Vec::new();
        assert!(decompress(io::Cursor::new(blob))
            .unwrap()
            .read_to_end(&mut out)
            .is_err());
    }
}
