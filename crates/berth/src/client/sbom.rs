//! `berth sbom IMAGE --format spdx|cyclonedx [--output FILE] [--attach]`: an image's
//! software bill of materials, from any transport. The client reads the layers
//! itself (each streamed once through `berth_inventory::analyze_layer`, checked
//! against its digest), squashes them into the image's inventory and writes it with
//! `berth_sbom`. `--attach` pushes the document to the image's registry as an OCI 1.1
//! artifact whose `subject` is the image, so the referrers API lists it.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use berth_image::inspect::ImageConfig;
use berth_image::{media_type, Digest, Manifest, ManifestKind};
use berth_inventory::{ImageHistory, Inventory, LayerArtifacts};
use berth_sbom::{Format, SbomSubject};
use berth_transport::{ImageName, Place, RawManifest};
use clap::Args;
use futures_util::StreamExt;

use super::copy::{open_source, PlatformFlags};
use super::{reference_of, Config, RegistryFlags, ShortNames};

/// Largest image config read.
const MAX_CONFIG: usize = 16 * 1024 * 1024;
/// Chunks of a layer in flight between the reader and the analysis thread.
const CHUNKS_IN_FLIGHT: usize = 8;

#[derive(Args, Debug)]
pub struct SbomArgs {
    /// The document's format: spdx (SPDX 2.3 JSON) or cyclonedx (CycloneDX 1.5 JSON)
    #[arg(long, value_name = "FORMAT", default_value = "spdx")]
    format: String,
    /// Write the document to FILE (whole, or not at all) instead of stdout
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// Push the document to the image's registry as an OCI 1.1 referrer of the image
    /// (docker:// images only); prints the referrer's manifest digest
    #[arg(long)]
    attach: bool,
    #[command(flatten)]
    platform: PlatformFlags,
    #[command(flatten)]
    registry: RegistryFlags,
    /// The image: docker://NAME[:TAG|@DIGEST], oci:PATH[:REF], oci-archive:PATH[:REF],
    /// dir:PATH, docker-archive:PATH[:REF] or local:NAME[:TAG]
    image: String,
}

pub fn run(a: SbomArgs) -> anyhow::Result<()> {
    let format: Format = a.format.parse()?;
    let name = ImageName::parse(&a.image)?;
    if a.attach && !matches!(name, ImageName::Docker(_)) {
        bail!(
            "{}: --attach stores the SBOM in a registry: give a docker:// image",
            a.image
        );
    }
    let config = Config::load()?;
    super::local::runtime()?.block_on(async {
        let (place, subject_name) = open(&config, &a, &name).await?;
        let (image, inventory, created) = inventory(&place, &a).await?;
        let subject = SbomSubject {
            name: subject_name,
            digest: image.digest.to_string(),
            created,
        };
        let mut doc = serde_json::to_vec_pretty(&format.document(&inventory, &subject))?;
        doc.push(b'\n');
        if let Some(path) = &a.output {
            super::sign::write_file(path, &doc, 0o644)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        match &name {
            ImageName::Docker(r) if a.attach => {
                let digest = attach(&config, &a, r, format, &image, &doc).await?;
                print(format!("{digest}\n").as_bytes())
            }
            _ if a.output.is_none() => print(&doc),
            _ => Ok(()),
        }
    })
}

/// The image's place and the name the document gives it: a registry image by its
/// full reference (a short name resolved), another transport's as typed.
async fn open(config: &Config, a: &SbomArgs, name: &ImageName) -> anyhow::Result<(Place, String)> {
    match name {
        ImageName::Docker(r) => {
            let typed = a.image.trim_start_matches("docker://");
            let (logical, registry, at) = config
                .open_for_read(typed, r, &a.registry, ShortNames::Skopeo)
                .await?;
            let place = Place::Registry {
                registry: Arc::new(registry),
                repo: at.path().as_str().to_string(),
                reference: reference_of(&at),
            };
            Ok((place, logical.to_string()))
        }
        _ => Ok((
            open_source(config, &a.image, name, &a.registry).await?,
            a.image.clone(),
        )),
    }
}

/// The image manifest (the platform's, for an index), its inventory, and the
/// config's `created`.
async fn inventory(
    place: &Place,
    a: &SbomArgs,
) -> anyhow::Result<(RawManifest, Inventory, Option<String>)> {
    let top = place.manifest(None).await?;
    let parsed = Manifest::parse(top.media_type.as_deref(), &top.bytes)
        .with_context(|| format!("{}: bad manifest", a.image))?;
    let (raw, manifest) = match parsed.kind {
        ManifestKind::Image => (top, parsed),
        ManifestKind::Index => {
            let child =
                berth_transport::copy::instance_for(&parsed, &top.digest, &a.platform.platform())?;
            let mut raw = place.manifest(Some(&child.digest)).await?;
            raw.media_type = raw.media_type.or_else(|| Some(child.media_type.clone()));
            let image = Manifest::parse(raw.media_type.as_deref(), &raw.bytes)
                .with_context(|| format!("{}: bad manifest {}", a.image, child.digest))?;
            (raw, image)
        }
    };
    let config_desc = manifest
        .config
        .as_ref()
        .with_context(|| format!("{}: the manifest has no config", a.image))?;
    let config_bytes = place.small_blob(&config_desc.digest, MAX_CONFIG).await?;
    let created = ImageConfig::parse(&config_bytes)
        .with_context(|| format!("{}: bad image config", a.image))?
        .created;
    let sizes: Vec<u64> = manifest.layers.iter().map(|l| l.size).collect();
    let history = ImageHistory::from_config(&config_bytes, &sizes)
        .with_context(|| format!("{}: bad image config", a.image))?;
    let mut artifacts = Vec::with_capacity(manifest.layers.len());
    for (i, layer) in manifest.layers.iter().enumerate() {
        let found = analyze(place, &layer.digest, &layer.media_type)
            .await
            .with_context(|| format!("{}: layer {i} ({})", a.image, layer.digest))?;
        artifacts.push(found);
    }
    let inventory = berth_inventory::squash(&artifacts, Some(&history));
    Ok((raw, inventory, created))
}

/// One layer streamed once through the analysis (on a blocking thread: it
/// decompresses and parses), its digest checked as the bytes pass. When the analysis
/// is done before the end of the blob, the rest is still read for the digest: the
/// document must describe the bytes the manifest names.
async fn analyze(
    place: &Place,
    digest: &Digest,
    media_type: &str,
) -> anyhow::Result<LayerArtifacts> {
    let mut stream = place.blob(digest).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(CHUNKS_IN_FLIGHT);
    let media_type = media_type.to_string();
    let reader = ChannelReader {
        rx,
        chunk: None,
        pos: 0,
    };
    let analysis =
        tokio::task::spawn_blocking(move || berth_inventory::analyze_layer(reader, &media_type));
    let mut hasher = digest.algorithm().hasher();
    let mut listening = true;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                let kind = e.kind();
                if listening {
                    let gone = std::io::Error::new(kind, "the layer could not be read");
                    let _ = tx.send(Err(gone)).await;
                }
                return Err(anyhow::Error::new(e).context(format!("reading blob {digest}")));
            }
        };
        hasher.update(&chunk);
        if listening && tx.send(Ok(chunk)).await.is_err() {
            listening = false;
        }
    }
    drop(tx);
    let found = analysis.await.context("the layer analysis stopped")?;
    let actual = hasher.finish();
    if &actual != digest {
        bail!("the layer's content has digest {actual}, expected {digest}");
    }
    Ok(found?)
}

/// A layer's chunks, as they arrive, as a `Read` for the analysis thread.
struct ChannelReader<B> {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<B>>,
    chunk: Option<B>,
    pos: usize,
}

impl<B: AsRef<[u8]>> std::io::Read for ChannelReader<B> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some(chunk) = &self.chunk {
                let rest = &chunk.as_ref()[self.pos..];
                if !rest.is_empty() {
                    let n = rest.len().min(buf.len());
                    buf[..n].copy_from_slice(&rest[..n]);
                    self.pos += n;
                    return Ok(n);
                }
            }
            match self.rx.blocking_recv() {
                Some(Ok(c)) => {
                    self.chunk = Some(c);
                    self.pos = 0;
                }
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
    }
}

/// Pushes `doc` as an OCI 1.1 artifact manifest whose `subject` is `image`, to the
/// registry the image is named in (never a mirror it was read from); returns the
/// artifact manifest's digest. The same document gives the same manifest: attaching
/// twice makes one referrer.
async fn attach(
    config: &Config,
    a: &SbomArgs,
    r: &berth_image::ImageReference,
    format: Format,
    image: &RawManifest,
    doc: &[u8],
) -> anyhow::Result<Digest> {
    let registry = Arc::new(config.registry(r, &a.registry)?);
    let repo = r.path().as_str().to_string();
    let empty: &[u8] = b"{}";
    let empty_digest = Digest::sha256_of(empty);
    let doc_digest = Digest::sha256_of(doc);
    let media = format.media_type();
    let subject_type = image
        .media_type
        .clone()
        .unwrap_or_else(|| media_type::OCI_MANIFEST.to_string());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "artifactType": media,
        "config": {
            "mediaType": media_type::OCI_EMPTY,
            "digest": empty_digest.to_string(),
            "size": empty.len(),
        },
        "layers": [{
            "mediaType": media,
            "digest": doc_digest.to_string(),
            "size": doc.len(),
        }],
        "subject": {
            "mediaType": subject_type,
            "digest": image.digest.to_string(),
            "size": image.bytes.len(),
        },
    });
    let bytes = serde_json::to_vec(&manifest)?;
    let dest = Place::Registry {
        registry,
        repo,
        reference: Digest::sha256_of(&bytes).to_string(),
    };
    for (digest, content) in [(&empty_digest, empty), (&doc_digest, doc)] {
        if !dest.has_blob(digest).await? {
            dest.put_blob(digest, one_chunk(content)).await?;
        }
    }
    let digest = dest
        .put_manifest(&bytes, media_type::OCI_MANIFEST, true)
        .await
        .with_context(|| format!("attaching the SBOM to {}@{}", r.name(), image.digest))?;
    Ok(digest)
}

fn one_chunk(bytes: &[u8]) -> berth_remote::ByteStream {
    let data = bytes.to_vec();
    Box::pin(futures_util::stream::once(async move { Ok(data.into()) }))
}

fn print(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()?;
    Ok(())
}
