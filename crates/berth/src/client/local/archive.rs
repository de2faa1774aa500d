//! `berth save` and `berth load`: images to and from the archives `podman save` writes
//! and `podman load` reads (docker-archive by default, oci-archive, oci-dir,
//! docker-dir), through the same copy pipeline as everything else.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use berth_image::ImageReference;
use berth_transport::copy::CopyOptions;
use berth_transport::dir::DirImage;
use berth_transport::docker_archive::DockerArchive;
use berth_transport::oci::{Layout, REF_NAME};
use berth_transport::{ImageName, Place};
use clap::Args;

use super::{image_place, open_store, runtime};
use crate::client::signed::{SignFlags, SignedCopy, Trust};
use crate::client::Config;

#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Write to this file (or folder, for the -dir formats) [default: stdout]
    #[arg(long, short = 'o', value_name = "PATH")]
    output: Option<PathBuf>,
    /// docker-archive, oci-archive, oci-dir or docker-dir
    #[arg(long, default_value = "docker-archive",
          value_parser = ["docker-archive", "oci-archive", "oci-dir", "docker-dir"])]
    format: String,
    /// Several images in one docker-archive (without it, names after the first image
    /// are more names for it)
    #[arg(long, short = 'm')]
    multi_image_archive: bool,
    /// No progress
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Trust policy file [default: ~/.config/containers/policy.json, /etc/containers/policy.json]
    #[arg(long, value_name = "PATH")]
    signature_policy: Option<PathBuf>,
    /// The image: name, ID or ID prefix (with -m, several)
    #[arg(required = true)]
    images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Read from this archive or folder [default: stdin]
    #[arg(long, short = 'i', value_name = "PATH")]
    input: Option<PathBuf>,
    /// No progress
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Trust policy file [default: ~/.config/containers/policy.json, /etc/containers/policy.json]
    #[arg(long, value_name = "PATH")]
    signature_policy: Option<PathBuf>,
}

fn options() -> CopyOptions {
    CopyOptions {
        all: false,
        platform: berth_image::Platform::this_machine(),
        parallel: 4,
        format: None,
        preserve_digests: false,
        compress: None,
    }
}

pub fn save(a: SaveArgs) -> anyhow::Result<()> {
    if a.multi_image_archive && a.format != "docker-archive" {
        bail!("--multi-image-archive: only with --format docker-archive");
    }
    let store = open_store()?;
    // With -m every argument is an image; without, as podman, the first is the image
    // and the others are more names to record for it.
    let mut images = Vec::new();
    let mut extra_names = Vec::new();
    for (i, spec) in a.images.iter().enumerate() {
        if i == 0 || a.multi_image_archive {
            let (img, matched) = store.find_named(spec)?;
            let name = matched.or_else(|| img.names.first().cloned());
            images.push((img, name));
        } else {
            extra_names.push(super::qualify(spec)?);
        }
    }
    let scratch;
    let path = match &a.output {
        Some(p) => p.clone(),
        None if std::io::stdout().is_terminal() => {
            bail!("refusing to save to the terminal: use -o FILE or redirect stdout")
        }
        None if a.format.ends_with("-dir") => bail!("--format {}: needs -o DIR", a.format),
        None => {
            scratch = tempfile::tempdir().context("creating a temporary folder")?;
            scratch.path().join("image.tar")
        }
    };
    // As podman's save: the policy judges each image as it leaves the store (an
    // archive keeps no signatures, so none are carried).
    let trust = Trust::load(&Config::load()?, a.signature_policy.as_deref(), false)?;
    let signed = SignedCopy {
        trust: &trust,
        remove_signatures: true,
        sign: &SignFlags::default(),
    };
    let first_name = images[0].1.clone();
    let dst_name = match a.format.as_str() {
        "docker-archive" => ImageName::DockerArchive {
            path: path.clone(),
            reference: None,
        },
        "oci-archive" => ImageName::OciArchive {
            path: path.clone(),
            reference: None,
        },
        "oci-dir" => ImageName::Oci {
            path: path.clone(),
            reference: None,
        },
        _ => ImageName::Dir(path.clone()),
    };
    let dst = match a.format.as_str() {
        "docker-archive" => Place::DockerArchive(DockerArchive::write(&path, None)?),
        "oci-archive" => Place::write_archive(&path, first_name)?,
        "oci-dir" => Place::Oci(Layout::new(path.clone(), first_name)),
        _ => Place::Dir(DirImage::new(path.clone())),
    };
    runtime()?.block_on(async {
        for (n, (img, name)) in images.iter().enumerate() {
            if let Place::DockerArchive(archive) = &dst {
                let mut tags: Vec<String> = name.iter().cloned().collect();
                if n == 0 {
                    tags.extend(extra_names.iter().cloned());
                }
                archive.set_tags(tags);
            }
            let src = image_place(&store, img);
            let src_name = ImageName::Local(match name.as_deref() {
                Some(n) => ImageReference::parse_local(n)?,
                None => "localhost/unnamed".parse()?,
            });
            let progress = crate::client::progress::reporter(a.quiet);
            signed
                .copy(&src_name, &src, &dst_name, &dst, &options(), progress)
                .await
                .with_context(|| format!("saving {}", a.images[n]))?;
        }
        dst.finish().await?;
        anyhow::Ok(())
    })?;
    if a.output.is_none() {
        let mut file = std::fs::File::open(&path)?;
        std::io::copy(&mut file, &mut std::io::stdout().lock()).context("writing to stdout")?;
    }
    Ok(())
}

/// What an input to `load` is.
enum Kind {
    DockerArchive,
    OciArchive,
    OciDir,
    Dir,
}

pub fn load(a: LoadArgs) -> anyhow::Result<()> {
    let scratch;
    let path = match &a.input {
        Some(p) => p.clone(),
        None => {
            if std::io::stdin().is_terminal() {
                bail!("no archive: use -i FILE or give one on stdin");
            }
            scratch = tempfile::tempdir().context("creating a temporary folder")?;
            let p = scratch.path().join("input.tar");
            let mut f = std::fs::File::create(&p)?;
            std::io::copy(&mut std::io::stdin().lock(), &mut f).context("reading stdin")?;
            p
        }
    };
    let limits = super::tar_limits()?;
    let kind = kind_of(&path, &limits)?;
    let store = open_store()?;
    // As podman's load: the policy judges the archive's images by its transport and
    // path (`docker-archive:`, `oci-archive:`, `oci:`, `dir:` scopes).
    let trust = Trust::load(&Config::load()?, a.signature_policy.as_deref(), false)?;
    let signed = SignedCopy {
        trust: &trust,
        remove_signatures: false,
        sign: &SignFlags::default(),
    };
    let src_name = {
        let path = path.clone();
        match kind {
            Kind::DockerArchive => ImageName::DockerArchive {
                path,
                reference: None,
            },
            Kind::OciArchive => ImageName::OciArchive {
                path,
                reference: None,
            },
            Kind::OciDir => ImageName::Oci {
                path,
                reference: None,
            },
            Kind::Dir => ImageName::Dir(path),
        }
    };
    let loaded = runtime()?.block_on(async {
        // (source, names to give it) for each image.
        let mut jobs: Vec<(Place, Vec<String>)> = Vec::new();
        match kind {
            Kind::DockerArchive => {
                for (archive, tags) in DockerArchive::read_all(&path, &limits).await? {
                    let names = tags
                        .iter()
                        .map(|t| normalize(t))
                        .collect::<anyhow::Result<_>>()?;
                    jobs.push((Place::DockerArchive(archive), names));
                }
            }
            Kind::OciArchive => {
                let place = Place::read_archive(&path, None).await?;
                let name = match &place {
                    Place::OciArchive { scratch, .. } => ref_name(scratch.path())?,
                    _ => None,
                };
                jobs.push((place, name.into_iter().collect()));
            }
            Kind::OciDir => {
                let name = ref_name(&path)?;
                jobs.push((
                    Place::Oci(Layout::new(path.clone(), None)),
                    name.into_iter().collect(),
                ));
            }
            Kind::Dir => jobs.push((Place::Dir(DirImage::new(path.clone())), Vec::new())),
        }
        let mut loaded = Vec::new();
        for (src, names) in jobs {
            let top = src.manifest(None).await?;
            let name = names.first().cloned();
            let dst = match &name {
                Some(n) => crate::client::copy::local_place(&store, &n.parse::<ImageReference>()?),
                // No name: stored by digest, untagged (podman lists it as <none>).
                None => Place::Local {
                    store: store.clone(),
                    repo: "localhost/unnamed".into(),
                    reference: top.digest.to_string(),
                },
            };
            let dst_name = ImageName::Local(match &name {
                Some(n) => n.parse()?,
                None => "localhost/unnamed".parse()?,
            });
            let progress = crate::client::progress::reporter(a.quiet);
            let digest = signed
                .copy(&src_name, &src, &dst_name, &dst, &options(), progress)
                .await
                .with_context(|| format!("loading {}", path.display()))?;
            let img = store.find(&format!("localhost/unnamed@{digest}"))?;
            for more in names.iter().skip(1) {
                store.tag(&img.id, more)?;
            }
            match names.is_empty() {
                true => loaded.push(img.id.to_string()),
                false => loaded.extend(names),
            }
        }
        anyhow::Ok(loaded)
    })?;
    for name in loaded {
        println!("Loaded image: {name}");
    }
    Ok(())
}

/// A docker-archive tag as podman names it: `alpine:3` is docker.io/library/alpine:3.
fn normalize(tag: &str) -> anyhow::Result<String> {
    let r: ImageReference = tag
        .parse()
        .with_context(|| format!("archive names an image {tag:?}"))?;
    Ok(format!(
        "{}:{}",
        r.name(),
        r.tag().map_or("latest", |t| t.as_str())
    ))
}

/// The name an OCI layout's only image carries, when it is a full image name (podman
/// writes `localhost/app:v1`); a bare tag (`v1`) names nothing.
fn ref_name(layout: &Path) -> anyhow::Result<Option<String>> {
    let index_path = layout.join("index.json");
    let bytes =
        std::fs::read(&index_path).with_context(|| format!("reading {}", index_path.display()))?;
    let index: serde_json::Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: not JSON", index_path.display()))?;
    let name = index["manifests"][0]["annotations"][REF_NAME].as_str();
    Ok(name
        .filter(|n| n.contains('/') || n.contains(':'))
        .and_then(|n| normalize(n).ok()))
}

/// Tells the archive kinds apart by their first entries: `manifest.json` is a docker
/// archive, `oci-layout`/`index.json` an OCI one. Read with berth-rootfs's tar reader
/// (extension headers capped, `limits` counted), like the unpacking that follows.
fn kind_of(path: &Path, limits: &berth_rootfs::TarLimits) -> anyhow::Result<Kind> {
    if path.is_dir() {
        return Ok(match path.join("oci-layout").is_file() {
            true => Kind::OciDir,
            false => Kind::Dir,
        });
    }
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut tar = berth_rootfs::TarReader::with_limits(std::io::BufReader::new(file), *limits);
    let shown = path.display();
    let mut entries = 0;
    loop {
        let header = match tar.next_entry() {
            Ok(Some(h)) => h,
            Ok(None) => break,
            Err(e @ berth_rootfs::RootfsError::Limit { .. }) => bail!("{shown}: {e}"),
            // The reader's own words can be about blocks and checksums: say what is
            // wrong with the file instead.
            Err(e) if entries > 0 && e.to_string().contains("truncated") => {
                bail!("{shown}: truncated: the archive ends unexpectedly")
            }
            Err(_) => {
                bail!("{shown}: not a tar archive (a docker-archive or oci-archive was expected)")
            }
        };
        entries += 1;
        match String::from_utf8_lossy(&header.name).trim_start_matches("./") {
            "manifest.json" => return Ok(Kind::DockerArchive),
            "oci-layout" | "index.json" => return Ok(Kind::OciArchive),
            _ => {}
        }
    }
    bail!("{shown}: not an image archive: a tar without manifest.json (docker-archive) or index.json (oci-archive)")
}
