//! `docker-archive:PATH[:REF]`, the `docker save` format: a tar holding
//! `manifest.json` (`[{"Config": "<hex>.json", "RepoTags": [...], "Layers":
//! ["<diffid>.tar", ...]}]`), the config, and every layer uncompressed.
//!
//! Reading unpacks the archive (as `oci-archive:` does, refusing hostile entries) and
//! presents the image as a Docker v2s2 manifest whose layers are the uncompressed tars
//! (`…rootfs.diff.tar`): the compressed form the image once had is not in the archive,
//! so its manifest digest cannot be the registry's. Writing keeps each blob, and once
//! the manifest is known, writes the config as `<hex>.json` and each layer
//! decompressed as `<diffid>.tar`, checked against the config's `rootfs.diff_ids`,
//! then packs the archive. The legacy per-layer folders of `docker save` are not
//! written; `docker load`, podman and skopeo read `manifest.json`.

use std::io::Read;
use std::path::{Path, PathBuf};

use berth_image::{media_type as mt, Digest, Manifest};
use berth_remote::ByteStream;
use berth_rootfs::{TarLimits, TarReader};
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::files::{self, io, write_atomic};
use crate::{archive, TransportError};

const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

pub struct DockerArchive {
    /// Shared by the images of one archive read with [`DockerArchive::read_all`].
    scratch: std::sync::Arc<TempDir>,
    /// Writing: where to pack, and the names to record in `RepoTags` for the next
    /// image (a multi-image archive gets one image after another).
    target: Option<(PathBuf, std::sync::Mutex<Vec<String>>)>,
    /// Reading: the synthesized manifest and the file of each blob.
    image: Option<ReadImage>,
}

struct ReadImage {
    manifest: Vec<u8>,
    blobs: Vec<(Digest, PathBuf)>,
}

fn corrupt(path: &Path, why: impl std::fmt::Display) -> TransportError {
    TransportError::Corrupt(format!("{}: {why}", path.display()))
}

impl DockerArchive {
    /// Opens `path` to read the image tagged `reference`, or its only image.
    pub async fn read(
        path: &Path,
        reference: Option<String>,
    ) -> Result<DockerArchive, TransportError> {
        let scratch =
            archive::unpack_to_temp(path, archive::Links::Skip, TarLimits::default()).await?;
        let dir = scratch.path().to_path_buf();
        let archive_path = path.to_path_buf();
        let image = tokio::task::spawn_blocking(move || {
            describe(&dir, &archive_path, reference.as_deref())
        })
        .await
        .map_err(|e| TransportError::Io {
            context: format!("reading {}", path.display()),
            source: std::io::Error::other(e),
        })??;
        Ok(DockerArchive {
            scratch: std::sync::Arc::new(scratch),
            target: None,
            image: Some(image),
        })
    }

    /// Opens every image of the archive at `path`, unpacking it once: each with the
    /// names `manifest.json` gives it (`RepoTags`, maybe none). This is `load`: the
    /// archive and each of its layers must be whole tars within `limits` (podman's
    /// load unpacks every layer into its storage; berth checks them here, so a layer
    /// past a limit is refused before anything is stored).
    pub async fn read_all(
        path: &Path,
        limits: &TarLimits,
    ) -> Result<Vec<(DockerArchive, Vec<String>)>, TransportError> {
        let limits = *limits;
        let scratch = archive::unpack_to_temp(path, archive::Links::Skip, limits).await?;
        let scratch = std::sync::Arc::new(scratch);
        let dir = scratch.path().to_path_buf();
        let archive_path = path.to_path_buf();
        let images = tokio::task::spawn_blocking(move || {
            entries(&dir, &archive_path)?
                .iter()
                .map(|e| {
                    let tags = e["RepoTags"]
                        .as_array()
                        .map(|t| {
                            t.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_string)
                                .collect()
                        })
                        .unwrap_or_default();
                    Ok((describe_entry(&dir, &archive_path, e, Some(&limits))?, tags))
                })
                .collect::<Result<Vec<_>, TransportError>>()
        })
        .await
        .map_err(|e| TransportError::Io {
            context: format!("reading {}", path.display()),
            source: std::io::Error::other(e),
        })??;
        Ok(images
            .into_iter()
            .map(|(image, tags)| {
                let archive = DockerArchive {
                    scratch: scratch.clone(),
                    target: None,
                    image: Some(image),
                };
                (archive, tags)
            })
            .collect())
    }

    /// Opens `path` to write one image, tagged `reference` when given.
    pub fn write(path: &Path, reference: Option<String>) -> Result<DockerArchive, TransportError> {
        let scratch = files::scratch_beside(path, ".berth-docker-archive-")?;
        Ok(DockerArchive {
            scratch: std::sync::Arc::new(scratch),
            target: Some((
                path.to_path_buf(),
                std::sync::Mutex::new(reference.into_iter().collect()),
            )),
            image: None,
        })
    }

    pub fn manifest(&self) -> Result<(Vec<u8>, Digest), TransportError> {
        let image = self.image.as_ref().ok_or_else(|| {
            TransportError::Unsupported("docker-archive: opened for writing".into())
        })?;
        Ok((image.manifest.clone(), Digest::sha256_of(&image.manifest)))
    }

    pub async fn blob(&self, d: &Digest) -> Result<ByteStream, TransportError> {
        let path = self
            .image
            .as_ref()
            .and_then(|i| i.blobs.iter().find(|(b, _)| b == d))
            .map(|(_, p)| p.clone())
            .ok_or_else(|| TransportError::NotFound(format!("blob {d} in the docker archive")))?;
        let f = tokio::fs::File::open(&path)
            .await
            .map_err(io(&path, "opening"))?;
        Ok(Box::pin(tokio_util::io::ReaderStream::with_capacity(
            f,
            1 << 20,
        )))
    }

    /// Keeps a blob as it came, named by digest, until the manifest says what it is.
    pub async fn put_blob(&self, d: &Digest, stream: ByteStream) -> Result<(), TransportError> {
        files::write_blob(
            &self.scratch.path().join("incoming").join(d.hex()),
            d,
            stream,
        )
        .await
    }

    /// Writes `manifest.json` from an image manifest; the blobs are all in.
    pub async fn put_manifest(
        &self,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest, TransportError> {
        let tags = match &self.target {
            Some((_, tags)) => tags.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            None => {
                return Err(TransportError::Unsupported(
                    "docker-archive: opened for reading".into(),
                ))
            }
        };
        let m = Manifest::parse(Some(media_type), bytes)
            .map_err(|e| TransportError::Corrupt(format!("manifest: {e}")))?;
        if !mt::is_manifest(media_type) || mt::is_index(media_type) {
            return Err(TransportError::Unsupported(
                "a docker archive holds one image, not an index; copy one platform".into(),
            ));
        }
        let dir = self.scratch.path().to_path_buf();
        let bytes_owned = bytes.to_vec();
        tokio::task::spawn_blocking(move || lay_out(&dir, &m, &tags))
            .await
            .map_err(|e| TransportError::Io {
                context: "writing the docker archive".into(),
                source: std::io::Error::other(e),
            })??;
        Ok(Digest::sha256_of(&bytes_owned))
    }

    /// The names the next image written is recorded under (`RepoTags`).
    pub fn set_tags(&self, tags: Vec<String>) {
        if let Some((_, next)) = &self.target {
            *next.lock().unwrap_or_else(|p| p.into_inner()) = tags;
        }
    }

    /// Packs the archive.
    pub async fn finish(&self) -> Result<(), TransportError> {
        if let Some((path, _)) = &self.target {
            let out = self.scratch.path().join("out");
            archive::pack(&out, path).await?;
        }
        Ok(())
    }
}

/// The `RepoTags` of every image in the archive at `path`, reading only its
/// `manifest.json` (images without a tag are `@N`, their position, as skopeo lists them).
pub fn repo_tags(path: &Path) -> Result<Vec<String>, TransportError> {
    let file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            TransportError::NotFound(format!("docker-archive:{}", path.display()))
        }
        _ => io(path, "opening")(e),
    })?;
    let mut tar = tar::Archive::new(std::io::BufReader::new(file));
    for entry in tar.entries().map_err(io(path, "reading"))? {
        let mut entry = entry.map_err(io(path, "reading"))?;
        let name = entry.path().map_err(io(path, "reading"))?.into_owned();
        if name != Path::new("manifest.json") {
            continue;
        }
        let mut text = Vec::new();
        entry.read_to_end(&mut text).map_err(io(path, "reading"))?;
        let entries: Vec<Value> = serde_json::from_slice(&text).map_err(|e| corrupt(path, e))?;
        let mut tags = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            match e["RepoTags"].as_array().filter(|t| !t.is_empty()) {
                Some(t) => tags.extend(t.iter().filter_map(Value::as_str).map(str::to_string)),
                None => tags.push(format!("@{i}")),
            }
        }
        return Ok(tags);
    }
    Err(corrupt(path, "no manifest.json"))
}

/// Reads `manifest.json` of an unpacked archive and synthesizes the image's v2s2
/// manifest; hashes every layer file to name it.
fn describe(
    dir: &Path,
    archive_path: &Path,
    reference: Option<&str>,
) -> Result<ReadImage, TransportError> {
    let entries = entries(dir, archive_path)?;
    // `bar` finds `docker.io/library/bar:latest`, as containers/image writes names.
    let normalized = |n: &str| {
        n.parse::<berth_image::ImageReference>()
            .ok()
            .map(|r| r.with_default_tag().to_string())
    };
    let entry = match reference {
        Some(r) => entries
            .iter()
            .find(|e| {
                e["RepoTags"].as_array().is_some_and(|t| {
                    t.iter().any(|t| {
                        t.as_str().is_some_and(|t| {
                            t == r
                                || t.ends_with(&format!("/{r}"))
                                || normalized(t).is_some_and(|t| Some(t) == normalized(r))
                        })
                    })
                })
            })
            .ok_or_else(|| {
                TransportError::NotFound(format!("{r} in {}", archive_path.display()))
            })?,
        None if entries.len() == 1 => &entries[0],
        None => {
            return Err(corrupt(
                archive_path,
                format!("holds {} images; name one", entries.len()),
            ))
        }
    };
    describe_entry(dir, archive_path, entry, None)
}

/// The entries of an unpacked archive's `manifest.json`.
fn entries(dir: &Path, archive_path: &Path) -> Result<Vec<Value>, TransportError> {
    let index_path = dir.join("manifest.json");
    let text = files::read_small(&index_path, files::MAX_SMALL_FILE)
        .map_err(|e| corrupt(archive_path, format!("manifest.json: {e}")))?;
    serde_json::from_slice(&text).map_err(|e| corrupt(archive_path, e))
}

/// Synthesizes the v2s2 manifest of one `manifest.json` entry; with `limits`, each
/// layer is also read through as a tar and refused past them.
fn describe_entry(
    dir: &Path,
    archive_path: &Path,
    entry: &Value,
    limits: Option<&TarLimits>,
) -> Result<ReadImage, TransportError> {
    let file = |name: &Value| -> Result<PathBuf, TransportError> {
        let name = name
            .as_str()
            .ok_or_else(|| corrupt(archive_path, "a name in manifest.json is not a string"))?;
        let p = Path::new(name);
        if p.components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(corrupt(archive_path, format!("{name} leaves the archive")));
        }
        Ok(dir.join(p))
    };
    let config_path = file(&entry["Config"])?;
    let config =
        files::read_small(&config_path, files::MAX_CONFIG).map_err(io(&config_path, "reading"))?;
    let config_digest = Digest::sha256_of(&config);
    let mut blobs = vec![(config_digest.clone(), config_path)];
    let mut layers = Vec::new();
    for l in entry["Layers"].as_array().into_iter().flatten() {
        let path = file(l)?;
        if let Some(limits) = limits {
            let shown = format!(
                "{}: layer {}",
                archive_path.display(),
                l.as_str().unwrap_or("")
            );
            check_layer(&path, &shown, limits)?;
        }
        let (digest, size) = hash_file(&path)?;
        layers.push(
            json!({"mediaType": DOCKER_LAYER_TAR, "digest": digest.to_string(), "size": size}),
        );
        blobs.push((digest, path));
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": mt::DOCKER_MANIFEST,
        "config": {"mediaType": mt::DOCKER_CONFIG, "digest": config_digest.to_string(), "size": config.len()},
        "layers": layers,
    }))
    .map_err(|e| corrupt(archive_path, e))?;
    Ok(ReadImage { manifest, blobs })
}

/// Reads the layer at `path` (plain, gzip or zstd) through as a tar within `limits`.
/// `shown` names it in errors.
fn check_layer(path: &Path, shown: &str, limits: &TarLimits) -> Result<(), TransportError> {
    let f = std::fs::File::open(path).map_err(io(path, "opening"))?;
    let tar = berth_rootfs::decompress(f).map_err(io(path, "reading"))?;
    let mut tar = TarReader::with_limits(tar, *limits);
    while tar
        .next_entry()
        .map_err(|e| archive::tar_error(shown, e))?
        .is_some()
    {}
    Ok(())
}

fn hash_file(path: &Path) -> Result<(Digest, u64), TransportError> {
    let mut f = std::fs::File::open(path).map_err(io(path, "opening"))?;
    hash_reader(&mut f, path)
}

fn hash_reader(r: &mut impl Read, path: &Path) -> Result<(Digest, u64), TransportError> {
    let mut h = berth_image::Algorithm::Sha256.hasher();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf).map_err(io(path, "reading"))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((h.finish(), n))
}

/// Lays out `dir/out` for packing: `<config>.json`, each layer as `<diffid>.tar`
/// (decompressed when gzip), and the image's entry in `manifest.json` (added to the
/// entries of images laid out before; the same image again only adds its tags).
fn lay_out(dir: &Path, m: &Manifest, tags: &[String]) -> Result<(), TransportError> {
    let incoming = dir.join("incoming");
    let out = dir.join("out");
    std::fs::create_dir_all(&out).map_err(io(&out, "creating"))?;
    let config = m
        .config
        .as_ref()
        .ok_or_else(|| TransportError::Corrupt("the manifest has no config".into()))?;
    let config_name = format!("{}.json", config.digest.hex());
    std::fs::copy(incoming.join(config.digest.hex()), out.join(&config_name))
        .map_err(io(&out, "writing the config in"))?;
    let config_json: Value = serde_json::from_slice(
        &std::fs::read(out.join(&config_name)).map_err(io(&out, "reading the config in"))?,
    )
    .map_err(|e| TransportError::Corrupt(format!("config: {e}")))?;
    let diff_ids: Vec<&str> = config_json["rootfs"]["diff_ids"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut names = Vec::new();
    for (i, layer) in m.layers.iter().enumerate() {
        let src = incoming.join(layer.digest.hex());
        let tmp = out.join(format!(".layer-{i}"));
        let (diff_id, _) = {
            let f = std::fs::File::open(&src).map_err(io(&src, "opening"))?;
            let mut w = std::fs::File::create(&tmp).map_err(io(&tmp, "creating"))?;
            let mut reader: Box<dyn Read> = if layer.media_type.ends_with("gzip") {
                Box::new(flate2::read::MultiGzDecoder::new(
                    std::io::BufReader::with_capacity(1 << 20, f),
                ))
            } else if layer.media_type.ends_with("zstd") {
                Box::new(zstd::stream::read::Decoder::new(f).map_err(io(&src, "reading"))?)
            } else if layer.media_type.ends_with(".tar") || layer.media_type.ends_with("tar") {
                Box::new(f)
            } else {
                return Err(TransportError::Unsupported(format!(
                    "layer {} is {}; a docker archive takes gzip, zstd or plain tar layers",
                    layer.digest, layer.media_type
                )));
            };
            let mut tee = TeeReader {
                inner: &mut reader,
                out: &mut w,
            };
            hash_reader(&mut tee, &src)?
        };
        if diff_ids
            .get(i)
            .is_some_and(|want| *want != diff_id.to_string())
        {
            return Err(TransportError::Corrupt(format!(
                "layer {} decompresses to {diff_id}, but the config says {}",
                layer.digest, diff_ids[i]
            )));
        }
        let name = format!("{}.tar", diff_id.hex());
        std::fs::rename(&tmp, out.join(&name)).map_err(io(&out, "renaming in"))?;
        names.push(name);
    }
    let index_path = out.join("manifest.json");
    let mut entries: Vec<Value> = match std::fs::read(&index_path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| TransportError::Corrupt(format!("manifest.json being written: {e}")))?,
        Err(_) => Vec::new(),
    };
    match entries
        .iter_mut()
        .find(|e| e["Config"] == config_name.as_str())
    {
        Some(entry) => {
            let mut have: Vec<String> = entry["RepoTags"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            have.extend(
                tags.iter()
                    .filter(|t| !have.contains(t))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
            entry["RepoTags"] = json!(have);
        }
        None => entries.push(json!({"Config": config_name, "RepoTags": tags, "Layers": names})),
    }
    let manifest =
        serde_json::to_vec(&entries).map_err(|e| TransportError::Corrupt(e.to_string()))?;
    write_atomic(&out.join("manifest.json"), &manifest)
}

/// Copies what is read into `out` as it passes.
struct TeeReader<'a, R: Read, W: std::io::Write> {
    inner: &'a mut R,
    out: &'a mut W,
}

impl<R: Read, W: std::io::Write> Read for TeeReader<'_, R, W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}
