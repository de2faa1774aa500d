//! The copy pipeline: one image (or an index with every image in it) from a source
//! place to a destination place.
//!
//! Children before parents: every blob of an image is in place before its manifest is
//! written, and every image before the index that lists it, so a destination never
//! names content it lacks. Manifest bytes are copied unchanged, so digests stay,
//! unless a format is asked for (`--format`): then the manifests (and, from v2s2 to
//! OCI, the config) are converted by `berth_image::convert`, and each digest change is
//! reported.

use std::sync::Arc;

use berth_image::convert::{convert_image, convert_index, Format};
use berth_image::{Descriptor, Digest, Manifest, ManifestKind, Platform};
use bytes::Bytes;
use futures_util::{stream, StreamExt, TryStreamExt};

use crate::recompress::{recompress, Compress, Compression};
use crate::{files, Place, TransportError};

use crate::files::MAX_CONFIG;

/// What to copy and how.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// For an index: every image in it (`--all`), else only `platform`'s.
    pub all: bool,
    pub platform: Platform,
    /// Blobs in flight at once.
    pub parallel: usize,
    /// The manifest format to write; `None` keeps the source's.
    pub format: Option<Format>,
    /// Refuse anything that would change a digest.
    pub preserve_digests: bool,
    /// Recompress layers to a format (`--dest-compress-format`), and the level of what
    /// is compressed (`--dest-compress-level`); `None` keeps them.
    pub compress: Option<Compress>,
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

/// Where progress goes: lines, and each blob's bytes as they pass (for bars).
/// Shared by the parallel copies.
pub trait Reporter: Send + Sync {
    /// One step, said in a line.
    fn line(&self, text: &str);
    /// A blob of `size` bytes starts going; `what` it is to the image: `blob` (a
    /// layer) or `config`, as skopeo names them.
    fn blob_start(&self, _digest: &Digest, _size: u64, _what: &str) {}
    /// `sent` bytes of it have gone so far.
    fn blob_progress(&self, _digest: &Digest, _sent: u64) {}
    /// It is all there.
    fn blob_end(&self, _digest: &Digest) {}
}

pub type Progress = Arc<dyn Reporter>;

/// A manifest as written: bytes, media type, digest.
struct Written {
    media_type: String,
    digest: Digest,
    size: u64,
}

/// Copies the image `src` names to `dst`; returns the digest of the top-level manifest
/// written.
pub async fn copy(
    src: &Place,
    dst: &Place,
    opts: &CopyOptions,
    progress: Progress,
) -> Result<Digest, TransportError> {
    let top = src.manifest(None).await?;
    copy_manifest(src, dst, top, opts, progress).await
}

/// [`copy`] of the top-level manifest `top`, already read from `src`: what was checked
/// (a policy decided on its digest and signatures) is what is copied, even when the
/// source's tag moves meanwhile.
pub async fn copy_manifest(
    src: &Place,
    dst: &Place,
    top: crate::RawManifest,
    opts: &CopyOptions,
    progress: Progress,
) -> Result<Digest, TransportError> {
    // An OCI layout holds OCI manifests only (skopeo and podman find nothing else in
    // it): a Docker image going there is converted, as containers/image does.
    let mut opts = opts.clone();
    if opts.format.is_none() && dst.holds_oci_only() {
        opts.format = Some(Format::Oci);
    }
    let opts = &opts;
    let media_type = top.media_type.clone().ok_or_else(|| {
        TransportError::Corrupt(format!("manifest {} has no media type", top.digest))
    })?;
    let parsed = Manifest::parse(Some(&media_type), &top.bytes)
        .map_err(|e| TransportError::Corrupt(format!("manifest {}: {e}", top.digest)))?;
    let written = match parsed.kind {
        ManifestKind::Image => {
            write_image(
                src,
                dst,
                &parsed,
                &top.bytes,
                &media_type,
                opts,
                &progress,
                true,
            )
            .await?
        }
        ManifestKind::Index if opts.all => {
            let mut children = Vec::new();
            for child in &parsed.manifests {
                children.push(copy_child(src, dst, child, opts, &progress, false).await?);
            }
            // Children converted or recompressed have new digests: the index names
            // those, in its own format unless another was asked for.
            let unchanged = children
                .iter()
                .zip(&parsed.manifests)
                .all(|(w, d)| w.digest == d.digest);
            let target = match conversion(&media_type, opts)? {
                None if unchanged => None,
                None => Some(Format::of(&media_type).ok_or_else(|| {
                    TransportError::Unsupported(format!("index type {media_type}"))
                })?),
                f => f,
            };
            let (bytes, index_type) = match target {
                None => (top.bytes.clone(), media_type.clone()),
                Some(f) => {
                    let new: Vec<(&str, Digest, u64)> = children
                        .iter()
                        .map(|w| (w.media_type.as_str(), w.digest.clone(), w.size))
                        .collect();
                    let bytes = convert_index(&top.bytes, &new, f).map_err(|e| {
                        TransportError::Unsupported(format!("index {}: {e}", top.digest))
                    })?;
                    (bytes, f.index_type().to_string())
                }
            };
            progress.line("Writing manifest list to image destination");
            let digest = dst.put_manifest(&bytes, &index_type, true).await?;
            if digest != top.digest {
                progress.line(&format!(
                    "Manifest list digest changed: {} -> {digest}",
                    top.digest
                ));
            }
            Written {
                media_type: index_type,
                digest,
                size: bytes.len() as u64,
            }
        }
        ManifestKind::Index => {
            let child = instance_for(&parsed, &top.digest, &opts.platform)?;
            copy_child(src, dst, child, opts, &progress, true).await?
        }
    };
    dst.finish().await?;
    Ok(written.digest)
}

/// The image of index `index` (digest `digest`) for `platform`: what a copy without
/// `--all` takes from it.
pub fn instance_for<'a>(
    index: &'a Manifest,
    digest: &Digest,
    platform: &Platform,
) -> Result<&'a Descriptor, TransportError> {
    index
        .manifests
        .iter()
        .find(|d| d.platform.as_ref().is_some_and(|p| p.matches(platform)))
        .ok_or_else(|| {
            TransportError::NotFound(format!("an image for {platform} in index {digest}"))
        })
}

/// The format to convert a manifest of `media_type` to, if one was asked for and it
/// differs; an error when digests must be preserved.
fn conversion(media_type: &str, opts: &CopyOptions) -> Result<Option<Format>, TransportError> {
    let target = opts.format.filter(|f| Format::of(media_type) != Some(*f));
    if let Some(f) = target.filter(|_| opts.preserve_digests) {
        let name = match f {
            Format::Oci => "OCI",
            Format::V2s2 => "Docker v2s2",
        };
        return Err(TransportError::Unsupported(format!(
            "converting {media_type} to {name} changes its digest, and --preserve-digests forbids that"
        )));
    }
    Ok(target)
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
) -> Result<Written, TransportError> {
    let raw = src.manifest(Some(&child.digest)).await?;
    let m = Manifest::parse(Some(&child.media_type), &raw.bytes)
        .map_err(|e| TransportError::Corrupt(format!("manifest {}: {e}", child.digest)))?;
    if m.kind == ManifestKind::Index {
        return Err(TransportError::Unsupported(format!(
            "nested index {}",
            child.digest
        )));
    }
    write_image(
        src,
        dst,
        &m,
        &raw.bytes,
        &child.media_type,
        opts,
        progress,
        top_level,
    )
    .await
}

/// Copies an image's blobs, converted and recompressed when asked, then writes its
/// manifest.
#[allow(clippy::too_many_arguments)]
async fn write_image(
    src: &Place,
    dst: &Place,
    m: &Manifest,
    raw: &[u8],
    media_type: &str,
    opts: &CopyOptions,
    progress: &Progress,
    top_level: bool,
) -> Result<Written, TransportError> {
    let old = Digest::sha256_of(raw);
    // Layers to recompress, and to what: those whose compression is not the one asked
    // for, and uncompressed ones where the destination wants them compressed.
    let recompressed: Vec<(usize, Compression)> = m
        .layers
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let have = Compression::of(&l.media_type)?;
            let want = match opts.compress.and_then(|c| c.format) {
                Some(w) => w,
                // Not when digests must stay: the layer goes as it is, as
                // containers/image sends it when it may not change the manifest.
                None if have == Compression::None
                    && dst.compresses_layers()
                    && !opts.preserve_digests =>
                {
                    Compression::Gzip
                }
                None => return None,
            };
            (have != want).then_some((i, want))
        })
        .collect();
    if !recompressed.is_empty() && opts.preserve_digests {
        return Err(TransportError::Unsupported(
            "recompressing layers changes their digests, and --preserve-digests forbids that"
                .into(),
        ));
    }
    let as_is = m
        .layers
        .iter()
        .enumerate()
        .filter(|(i, _)| !recompressed.iter().any(|(r, _)| r == i))
        .map(|(_, l)| l);
    let (mut bytes, media_type) = match conversion(media_type, opts)? {
        None => {
            copy_blobs(src, dst, as_is, m.config.as_ref(), opts, progress).await?;
            (raw.to_vec(), media_type.to_string())
        }
        Some(f) => {
            let config = m
                .config
                .as_ref()
                .ok_or_else(|| TransportError::Corrupt(format!("manifest {old} has no config")))?;
            let config_bytes = read_small(src, &config.digest).await?;
            let conv = convert_image(raw, &config_bytes, f)
                .map_err(|e| TransportError::Unsupported(format!("manifest {old}: {e}")))?;
            match &conv.config {
                Some(new) => {
                    copy_blobs(src, dst, as_is, None, opts, progress).await?;
                    let d = Digest::sha256_of(new);
                    if d != config.digest {
                        progress.line(&format!("Config digest changed: {} -> {d}", config.digest));
                    }
                    progress.line(&format!("Copying config {d}"));
                    if !dst.has_blob(&d).await? {
                        dst.put_blob(&d, files::once(new)).await?;
                    }
                }
                None => {
                    copy_blobs(src, dst, as_is, m.config.as_ref(), opts, progress).await?;
                }
            }
            (conv.manifest, conv.media_type.to_string())
        }
    };
    if !recompressed.is_empty() {
        let level = opts.compress.and_then(|c| c.level);
        let docker = media_type == berth_image::media_type::DOCKER_MANIFEST;
        let mut todo = Vec::new();
        for (i, want) in recompressed {
            let layer_type = want.layer_type(docker).ok_or_else(|| {
                TransportError::Unsupported(
                    "zstd layers need an OCI manifest; add --format oci".into(),
                )
            })?;
            todo.push((i, want, layer_type));
        }
        // Futures built by an iterator, not `StreamExt::map`: its closure bound keeps
        // the compiler from seeing that the copy is `Send` (rust-lang/rust#102211),
        // which the registry's replicator, a spawned task, needs.
        let jobs: Vec<_> = todo
            .into_iter()
            .map(|(i, want, media_type)| async move {
                let (digest, size) =
                    recompress_layer(src, dst, &m.layers[i], want, level, progress).await?;
                Ok::<_, TransportError>(NewLayer {
                    index: i,
                    media_type,
                    digest,
                    size,
                })
            })
            .collect();
        let done: Vec<NewLayer> = stream::iter(jobs)
            .buffer_unordered(opts.parallel.max(1))
            .try_collect()
            .await?;
        bytes = patch_layers(&bytes, &done)?;
    }
    progress.line("Writing manifest to image destination");
    let digest = dst.put_manifest(&bytes, &media_type, top_level).await?;
    if digest != old {
        progress.line(&format!("Manifest digest changed: {old} -> {digest}"));
    }
    Ok(Written {
        media_type,
        digest,
        size: bytes.len() as u64,
    })
}

/// Streams layer `l` through recompression into the destination.
async fn recompress_layer(
    src: &Place,
    dst: &Place,
    l: &Descriptor,
    want: Compression,
    level: Option<i32>,
    progress: &Progress,
) -> Result<(Digest, u64), TransportError> {
    let from = Compression::of(&l.media_type)
        .ok_or_else(|| TransportError::Unsupported(format!("layer type {}", l.media_type)))?;
    progress.line(&format!("Recompressing blob {} as {want:?}", l.digest));
    let stream = verified(src.blob(&l.digest).await?, l.digest.clone(), l.size);
    let (d, size) = dst
        .put_new_blob(recompress(stream, from, want, level))
        .await?;
    progress.line(&format!("Blob {} is now {d}", l.digest));
    Ok((d, size))
}

/// A layer recompressed: its place in the manifest and what it is now.
struct NewLayer {
    index: usize,
    media_type: &'static str,
    digest: Digest,
    size: u64,
}

/// The manifest with layers `done` replaced.
fn patch_layers(manifest: &[u8], done: &[NewLayer]) -> Result<Vec<u8>, TransportError> {
    let bad = |e: serde_json::Error| TransportError::Corrupt(format!("manifest: {e}"));
    let mut v: serde_json::Value = serde_json::from_slice(manifest).map_err(bad)?;
    for n in done {
        let l = &mut v["layers"][n.index];
        l["mediaType"] = n.media_type.into();
        l["digest"] = n.digest.to_string().into();
        l["size"] = n.size.into();
    }
    serde_json::to_vec(&v).map_err(bad)
}

/// A small blob (a config), whole.
async fn read_small(src: &Place, d: &Digest) -> Result<Vec<u8>, TransportError> {
    src.small_blob(d, MAX_CONFIG as usize).await
}

/// What a blob is to the image, as progress names it (skopeo's `Copying blob`,
/// `Copying config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Layer,
    Config,
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Part::Layer => "blob",
            Part::Config => "config",
        })
    }
}

/// The layers `layers` and the config, `opts.parallel` at a time.
async fn copy_blobs<'a>(
    src: &Place,
    dst: &Place,
    layers: impl Iterator<Item = &'a Descriptor>,
    config: Option<&'a Descriptor>,
    opts: &CopyOptions,
    progress: &Progress,
) -> Result<(), TransportError> {
    let blobs: Vec<(&Descriptor, Part)> = layers
        .map(|d| (d, Part::Layer))
        .chain(config.map(|d| (d, Part::Config)))
        .collect();
    let jobs: Vec<_> = blobs
        .into_iter()
        .map(|(d, part)| copy_blob(src, dst, d, part, progress))
        .collect();
    stream::iter(jobs)
        .buffer_unordered(opts.parallel.max(1))
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

/// The lock of blob `d` for this process's copies.
fn in_flight(d: &Digest) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<Digest, Arc<tokio::sync::Mutex<()>>>>,
    > = std::sync::OnceLock::new();
    let mut locks = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    // Forget the locks nobody holds, so the map stays as small as what is in flight.
    locks.retain(|_, l| Arc::strong_count(l) > 1);
    locks.entry(d.clone()).or_default().clone()
}

async fn copy_blob(
    src: &Place,
    dst: &Place,
    d: &Descriptor,
    part: Part,
    progress: &Progress,
) -> Result<BlobOutcome, TransportError> {
    if berth_image::media_type::is_non_distributable(&d.media_type) {
        progress.line(&format!("Skipping foreign blob {}", d.digest));
        return Ok(BlobOutcome::Skipped);
    }
    // Images copied at once (sync, --all) share blobs: one copy of a blob goes at a
    // time, and the next finds it there. Two uploads of one blob to one repository at
    // once can also lose it in some registries (docker-registry answered "blob unknown"
    // to the manifest that followed).
    let lock = in_flight(&d.digest);
    let _turn = lock.lock().await;
    if dst.has_blob(&d.digest).await? {
        progress.line(&format!(
            "Copying {part} {} skipped: already exists",
            d.digest
        ));
        return Ok(BlobOutcome::Skipped);
    }
    if dst.mount_from(src, &d.digest).await? {
        progress.line(&format!("Copying {part} {} mounted", d.digest));
        return Ok(BlobOutcome::Mounted);
    }
    progress.line(&format!("Copying {part} {}", d.digest));
    progress.blob_start(&d.digest, d.size, &part.to_string());
    let stream = src.blob(&d.digest).await?;
    let counted = sized(stream, d.digest.clone(), d.size, Some(progress.clone()));
    dst.put_blob(&d.digest, counted).await?;
    progress.blob_end(&d.digest);
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
fn sized(
    stream: berth_remote::ByteStream,
    digest: Digest,
    size: u64,
    progress: Option<Progress>,
) -> berth_remote::ByteStream {
    let mut seen = 0u64;
    let body = stream.map(move |chunk| {
        let chunk: Bytes = chunk?;
        seen += chunk.len() as u64;
        if let Some(p) = &progress {
            p.blob_progress(&digest, seen);
        }
        if seen > size {
            return Err(std::io::Error::other(format!(
                "blob {digest}: more than the {size} bytes its descriptor says"
            )));
        }
        Ok(chunk)
    });
    Box::pin(body)
}

/// Passes `stream` through, hashing: at its end, an error instead of the end unless
/// the bytes were `size` of them with digest `digest`, so the destination fails the
/// upload. For a layer recompressed on the way, which is stored under the digest of
/// what comes out: no one downstream checks what went in, so without this a source
/// (a mirror, a hostile layout) could swap a layer of a pinned or signed image.
fn verified(
    stream: berth_remote::ByteStream,
    digest: Digest,
    size: u64,
) -> berth_remote::ByteStream {
    struct Check {
        stream: berth_remote::ByteStream,
        hasher: Option<berth_image::Hasher>,
        seen: u64,
        digest: Digest,
        size: u64,
    }
    let check = Check {
        stream,
        hasher: Some(digest.algorithm().hasher()),
        seen: 0,
        digest,
        size,
    };
    Box::pin(stream::unfold(check, |mut c| async move {
        let mut hasher = c.hasher.take()?;
        let item = match c.stream.next().await {
            Some(Ok(chunk)) => {
                c.seen += chunk.len() as u64;
                if c.seen > c.size {
                    Err(std::io::Error::other(format!(
                        "blob {}: more than the {} bytes its descriptor says",
                        c.digest, c.size
                    )))
                } else {
                    hasher.update(&chunk);
                    c.hasher = Some(hasher);
                    Ok(chunk)
                }
            }
            Some(Err(e)) => Err(e),
            None => {
                let actual = hasher.finish();
                if actual == c.digest && c.seen == c.size {
                    return None;
                }
                Err(std::io::Error::other(format!(
                    "blob {}: content has digest {actual} ({} bytes; the descriptor says {} bytes)",
                    c.digest, c.seen, c.size
                )))
            }
        };
        Some((item, c))
    }))
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
        let out: Vec<Bytes> = sized(once(b"hello world"), d.clone(), 11, None)
            .try_collect()
            .await
            .unwrap();
        assert_eq!(out.concat(), b"hello world");
        let err = sized(once(b"hello world"), d, 10, None)
            .try_collect::<Vec<Bytes>>()
            .await
            .unwrap_err();
        assert!(err.to_string().contains("more than"), "{err}");
    }

    #[tokio::test]
    async fn verified_streams_end_in_an_error_unless_their_digest_is_right() {
        let d = Digest::sha256_of(b"hello world");
        let out: Vec<Bytes> = verified(once(b"hello world"), d.clone(), 11)
            .try_collect()
            .await
            .unwrap();
        assert_eq!(out.concat(), b"hello world");
        for (data, size, says) in [
            (&b"hello wOrld"[..], 11, "content has digest"),
            (&b"hello world"[..], 12, "the descriptor says 12"),
            (&b"hello world"[..], 10, "more than"),
        ] {
            let err = verified(once(data), d.clone(), size)
                .try_collect::<Vec<Bytes>>()
                .await
                .unwrap_err();
            assert!(err.to_string().contains(says), "{err}");
        }
    }
}
