//! The copy pipeline: one image (or an index with every image in it) from a source
//! place to a destination place.
//!
//! Children before parents: every blob of an image is in place before its manifest is
//! written, and every image before the index that lists it, so a destination never
//! names content it lacks. Manifest bytes are copied unchanged, so digests stay.

use std::sync::Arc;

use berth_image::{Descriptor, Digest, Manifest, ManifestKind, Platform};
use bytes::Bytes;
use futures_util::{stream, StreamExt, TryStreamExt};

use crate::{Place, TransportError};

/// What to copy and how.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// For an index: every image in it (`--all`), else only `platform`'s.
    pub all: bool,
    pub platform: Platform,
    /// Blobs in flight at once.
    pub parallel: usize,
}

/// What happened to each blob, for progress lines and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobOutcome {
    Copied,
    /// The destination had it.
    Skipped,
    /// Linked from another repository of the same registry.
    Mounted,
}

/// Reports progress; `Fn` so that parallel copies can call it.
pub type Progress = Arc<dyn Fn(&str) + Send + Sync>;

/// Copies the image `src` names to `dst`; returns the digest of the top-level manifest
/// written.
pub async fn copy(
    src: &Place,
    dst: &Place,
    opts: &CopyOptions,
    progress: Progress,
) -> Result<Digest, TransportError> {
    let top = src.manifest(None).await?;
    let media_type = top.media_type.clone().ok_or_else(|| {
        TransportError::Corrupt(format!("manifest {} has no media type", top.digest))
    })?;
    let parsed = Manifest::parse(Some(&media_type), &top.bytes)
        .map_err(|e| TransportError::Corrupt(format!("manifest {}: {e}", top.digest)))?;
    match parsed.kind {
        ManifestKind::Image => {
            copy_image(src, dst, &parsed, opts, &progress).await?;
            progress("Writing manifest to image destination");
            let d = dst.put_manifest(&top.bytes, &media_type, true).await?;
            dst.finish().await?;
            Ok(d)
        }
        ManifestKind::Index if opts.all => {
            for child in &parsed.manifests {
                copy_child(src, dst, child, opts, &progress, false).await?;
            }
            progress("Writing manifest list to image destination");
            let d = dst.put_manifest(&top.bytes, &media_type, true).await?;
            dst.finish().await?;
            Ok(d)
        }
        ManifestKind::Index => {
            let child = parsed
                .manifests
                .iter()
                .find(|d| {
                    d.platform
                        .as_ref()
                        .is_some_and(|p| p.matches(&opts.platform))
                })
                .ok_or_else(|| {
                    TransportError::NotFound(format!(
                        "an image for {} in index {}",
                        opts.platform, top.digest
                    ))
                })?;
            let d = copy_child(src, dst, child, opts, &progress, true).await?;
            dst.finish().await?;
            Ok(d)
        }
    }
}

/// Copies the image `child` of an index; its manifest goes by digest, or under the
/// destination's name when it is the only thing copied.
async fn copy_child(
    src: &Place,
    dst: &Place,
    child: &Descriptor,
    opts: &CopyOptions,
    progress: &Progress,
    top_level: bool,
) -> Result<Digest, TransportError> {
    let raw = src.manifest(Some(&child.digest)).await?;
    let m = Manifest::parse(Some(&child.media_type), &raw.bytes)
        .map_err(|e| TransportError::Corrupt(format!("manifest {}: {e}", child.digest)))?;
    if m.kind == ManifestKind::Index {
        return Err(TransportError::Unsupported(format!(
            "nested index {}",
            child.digest
        )));
    }
    copy_image(src, dst, &m, opts, progress).await?;
    progress(&format!("Writing manifest {}", child.digest));
    dst.put_manifest(&raw.bytes, &child.media_type, top_level)
        .await
}

/// Every blob of an image manifest, `opts.parallel` at a time.
async fn copy_image(
    src: &Place,
    dst: &Place,
    m: &Manifest,
    opts: &CopyOptions,
    progress: &Progress,
) -> Result<(), TransportError> {
    let blobs: Vec<&Descriptor> = m.layers.iter().chain(m.config.iter()).collect();
    stream::iter(blobs)
        .map(|d| copy_blob(src, dst, d, progress))
        .buffer_unordered(opts.parallel.max(1))
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

async fn copy_blob(
    src: &Place,
    dst: &Place,
    d: &Descriptor,
    progress: &Progress,
) -> Result<BlobOutcome, TransportError> {
    if berth_image::media_type::is_non_distributable(&d.media_type) {
        progress(&format!("Skipping foreign blob {}", d.digest));
        return Ok(BlobOutcome::Skipped);
    }
    if dst.has_blob(&d.digest).await? {
        progress(&format!(
            "Copying blob {} skipped: already exists",
            d.digest
        ));
        return Ok(BlobOutcome::Skipped);
    }
    if dst.mount_from(src, &d.digest).await? {
        progress(&format!("Copying blob {} mounted", d.digest));
        return Ok(BlobOutcome::Mounted);
    }
    progress(&format!("Copying blob {}", d.digest));
    let stream = src.blob(&d.digest).await?;
    dst.put_blob(&d.digest, sized(stream, d.digest.clone(), d.size))
        .await?;
    Ok(BlobOutcome::Copied)
}

/// Passes `stream` through, counting; past `size` bytes, an error instead of more, so
/// the destination fails the upload and nothing names the blob.
///
/// The digest is checked where the bytes land, not here: a registry checks the digest
/// of every upload (`PUT ?digest=`, required by the spec, done by berth and
/// docker-registry), and an OCI layout hashes each blob before its rename. Hashing here
/// too would cost a second SHA-256 pass per byte (0.75 s per GiB on the 2-core machine
/// the benchmarks run on) for nothing.
fn sized(stream: berth_remote::ByteStream, digest: Digest, size: u64) -> berth_remote::ByteStream {
    let mut seen = 0u64;
    let body = stream.map(move |chunk| {
        let chunk: Bytes = chunk?;
        seen += chunk.len() as u64;
        if seen > size {
            return Err(std::io::Error::other(format!(
                "blob {digest}: more than the {size} bytes its descriptor says"
            )));
        }
        Ok(chunk)
    });
    Box::pin(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn once(data: &'static [u8]) -> berth_remote::ByteStream {
        Box::pin(stream::iter(vec![
            Ok(Bytes::from_static(&data[..3])),
            Ok(Bytes::from_static(&data[3..])),
        ]))
    }

    #[tokio::test]
    async fn sized_streams_refuse_extra_bytes() {
        let d = Digest::sha256_of(b"hello world");
        let out: Vec<Bytes> = sized(once(b"hello world"), d.clone(), 11)
            .try_collect()
            .await
            .unwrap();
        assert_eq!(out.concat(), b"hello world");
        let err = sized(once(b"hello world"), d, 10)
            .try_collect::<Vec<Bytes>>()
            .await
            .unwrap_err();
        assert!(err.to_string().contains("more than"), "{err}");
    }
}
