//! Layers recompressed on the way (`--dest-compress-format gzip|zstd`): the bytes are
//! decompressed and compressed again on a blocking thread while they stream, so the
//! new blob's digest is only known at its end. The uncompressed content (the layer's
//! diff ID in the config) does not change.

use std::io::{Read, Write};

use berth_remote::ByteStream;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use berth_image::media_type as mt;

/// How a layer's bytes are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// From a layer media type; `None` for what is not a layer berth can recompress.
    pub fn of(media_type: &str) -> Option<Compression> {
        match media_type {
            mt::OCI_LAYER_GZIP | mt::DOCKER_LAYER_GZIP => Some(Compression::Gzip),
            mt::OCI_LAYER_ZSTD => Some(Compression::Zstd),
            mt::OCI_LAYER_TAR | "application/vnd.docker.image.rootfs.diff.tar" => {
                Some(Compression::None)
            }
            _ => None,
        }
    }

    /// The layer media type for this compression in an OCI or (`docker`) v2s2 manifest.
    pub fn layer_type(self, docker: bool) -> Option<&'static str> {
        match (self, docker) {
            (Compression::Gzip, false) => Some(mt::OCI_LAYER_GZIP),
            (Compression::Zstd, false) => Some(mt::OCI_LAYER_ZSTD),
            (Compression::None, false) => Some(mt::OCI_LAYER_TAR),
            (Compression::Gzip, true) => Some(mt::DOCKER_LAYER_GZIP),
            (Compression::None, true) => Some("application/vnd.docker.image.rootfs.diff.tar"),
            (Compression::Zstd, true) => None,
        }
    }
}

/// Recompression asked for: the format layers should have (`None`: keep theirs), and
/// the level of whatever is compressed (`None`: the format's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compress {
    pub format: Option<Compression>,
    pub level: Option<i32>,
}

impl Compress {
    /// `--dest-compress-format` and `--dest-compress-level` as skopeo takes them: gzip
    /// levels 1-9, zstd 1-20; a level alone applies to the gzip berth compresses with.
    pub fn new(format: Option<Compression>, level: Option<i32>) -> Result<Compress, String> {
        let range = match format {
            Some(Compression::Zstd) => 1..=20,
            _ => 1..=9,
        };
        if let Some(l) = level.filter(|l| !range.contains(l)) {
            let name = match format {
                Some(Compression::Zstd) => "zstd",
                _ => "gzip",
            };
            return Err(format!(
                "compression level {l} is out of range for {name} ({}-{})",
                range.start(),
                range.end()
            ));
        }
        Ok(Compress { format, level })
    }
}

/// Reads chunks a channel brings.
struct ChannelReader {
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

/// Sends what is written to a channel, 1 MiB at a time.
struct ChannelWriter {
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let chunk = Bytes::from(std::mem::take(&mut self.buf));
            self.tx
                .blocking_send(Ok(chunk))
                .map_err(|_| std::io::Error::other("the upload stopped"))?;
        }
        Ok(())
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 1 << 20 {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// How the bytes `input` starts with are compressed, told by their first bytes as
/// containers/image tells it (a `docker-archive:` copied to `dir:` by skopeo labels its
/// plain layers gzip): gzip or zstd magic, or a tar header; anything else is taken to be
/// what its media type said (`label`), and fails to decode if it is not. Returns the
/// bytes read, to go first.
fn sniff(input: &mut impl Read, label: Compression) -> std::io::Result<(Compression, Vec<u8>)> {
    let mut head = vec![0u8; 512];
    let mut filled = 0;
    while filled < head.len() {
        match input.read(&mut head[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    head.truncate(filled);
    let actual = if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else if head.get(257..262) == Some(b"ustar") {
        Compression::None
    } else {
        label
    };
    Ok((actual, head))
}

/// `stream`, compressed with `from`, as `to` (at `level`, else gzip's fastest and
/// zstd's 3).
pub fn recompress(
    mut stream: ByteStream,
    from: Compression,
    to: Compression,
    level: Option<i32>,
) -> ByteStream {
    let (in_tx, in_rx) = mpsc::channel::<std::io::Result<Bytes>>(16);
    let (out_tx, out_rx) = mpsc::channel::<std::io::Result<Bytes>>(16);
    tokio::spawn(async move {
        while let Some(chunk) = stream.next().await {
            let failed = chunk.is_err();
            if in_tx.send(chunk).await.is_err() || failed {
                return;
            }
        }
    });
    let errors = out_tx.clone();
    tokio::task::spawn_blocking(move || {
        let result = (|| -> std::io::Result<()> {
            let mut input = ChannelReader {
                rx: in_rx,
                current: Bytes::new(),
            };
            let (actual, head) = sniff(&mut input, from)?;
            let input = std::io::Cursor::new(head).chain(input);
            let mut plain: Box<dyn Read> = match actual {
                Compression::None => Box::new(input),
                Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
                Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(input)?),
            };
            let out = ChannelWriter {
                tx: out_tx,
                buf: Vec::with_capacity(1 << 20),
            };
            match to {
                Compression::None => {
                    let mut out = out;
                    std::io::copy(&mut plain, &mut out)?;
                    out.flush()
                }
                Compression::Gzip => {
                    let level = level.map_or(flate2::Compression::fast(), |l| {
                        flate2::Compression::new(l.clamp(0, 9) as u32)
                    });
                    let mut enc = flate2::write::GzEncoder::new(out, level);
                    std::io::copy(&mut plain, &mut enc)?;
                    enc.finish()?.flush()
                }
                Compression::Zstd => {
                    let mut enc = zstd::stream::write::Encoder::new(out, level.unwrap_or(3))?;
                    std::io::copy(&mut plain, &mut enc)?;
                    enc.finish()?.flush()
                }
            }
        })();
        if let Err(e) = result {
            let _ = errors.blocking_send(Err(e));
        }
    });
    Box::pin(futures_util::stream::unfold(out_rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::TryStreamExt;

    #[tokio::test]
    async fn gzip_to_zstd_and_back_keeps_the_content() {
        let plain: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        let src: ByteStream = Box::pin(futures_util::stream::iter(
            gz.chunks(10_000)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect::<Vec<_>>(),
        ));
        let zst: Vec<Bytes> = recompress(src, Compression::Gzip, Compression::Zstd, None)
            .try_collect()
            .await
            .unwrap();
        let zst = zst.concat();
        assert_eq!(&zst[..4], &[0x28, 0xb5, 0x2f, 0xfd], "zstd magic");
        let back: ByteStream = Box::pin(futures_util::stream::once(
            async move { Ok(Bytes::from(zst)) },
        ));
        let plain2: Vec<Bytes> = recompress(back, Compression::Zstd, Compression::None, None)
            .try_collect()
            .await
            .unwrap();
        assert_eq!(plain2.concat(), plain);
        // Garbage is an error, not an empty layer.
        let junk: ByteStream = Box::pin(futures_util::stream::once(async {
            Ok(Bytes::from_static(b"not gzip"))
        }));
        assert!(recompress(junk, Compression::Gzip, Compression::Zstd, None)
            .try_collect::<Vec<_>>()
            .await
            .is_err());
    }

    /// A plain tar labelled gzip (skopeo's `dir:` of a docker archive) is read as the
    /// tar it is.
    #[tokio::test]
    async fn mislabelled_plain_layers_are_read_as_plain() {
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(5);
        h.set_cksum();
        tar.append_data(&mut h, "hello.txt", &b"hello"[..]).unwrap();
        let tar = tar.into_inner().unwrap();
        let src: ByteStream = Box::pin(futures_util::stream::once({
            let t = Bytes::from(tar.clone());
            async move { Ok(t) }
        }));
        let gz: Vec<Bytes> = recompress(src, Compression::Gzip, Compression::Gzip, None)
            .try_collect()
            .await
            .unwrap();
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz.concat()[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, tar);
    }

    /// A higher level gives smaller output, and levels out of skopeo's range are refused.
    #[tokio::test]
    async fn levels() {
        let plain: Vec<u8> = (0..2_000_000u32)
            .map(|i| (i.wrapping_mul(7919) % 13 + i % 5) as u8)
            .collect();
        let size = |level| {
            let src: ByteStream = Box::pin(futures_util::stream::once({
                let p = Bytes::from(plain.clone());
                async move { Ok(p) }
            }));
            async move {
                recompress(src, Compression::None, Compression::Gzip, level)
                    .try_collect::<Vec<Bytes>>()
                    .await
                    .unwrap()
                    .concat()
                    .len()
            }
        };
        assert!(size(Some(9)).await < size(Some(1)).await);
        assert!(Compress::new(Some(Compression::Gzip), Some(10)).is_err());
        assert!(Compress::new(None, Some(0)).is_err());
        assert!(Compress::new(Some(Compression::Zstd), Some(20)).is_ok());
        assert!(Compress::new(Some(Compression::Zstd), Some(21)).is_err());
    }
}
