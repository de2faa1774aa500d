//! `berth copy SRC DEST`: skopeo copy's shape, over the transport crate's pipeline.

use std::path::PathBuf;

use anyhow::{bail, Context};
use berth_image::convert::Format;
use berth_image::Platform;
use berth_transport::copy::{CopyOptions, Progress};
use berth_transport::dir::DirImage;
use berth_transport::docker_archive::DockerArchive;
use berth_transport::local::LocalStore;
use berth_transport::oci::Layout;
use berth_transport::recompress::{Compress, Compression};
use berth_transport::{ImageName, Place};
use clap::Args;

use super::referrers::copy_referrers;
use super::signed::{SignFlags, SignedCopy, Trust};
use super::{creds_of, reference_of, Config, RegistryFlags, ShortNames};

// The flags of both ends of a copy or a sync: skopeo's `--src-*` / `--dest-*`.
// (A plain comment, not a doc comment: see `Command` in main.rs.)
#[derive(Args, Debug)]
pub struct Sides {
    /// Credentials file for both sides
    #[arg(long, value_name = "PATH")]
    authfile: Option<PathBuf>,
    /// Credentials file for the source registry [default: --authfile's]
    #[arg(long, value_name = "PATH")]
    src_authfile: Option<PathBuf>,
    /// Credentials file for the destination registry [default: --authfile's]
    #[arg(long, value_name = "PATH")]
    dest_authfile: Option<PathBuf>,
    /// USERNAME[:PASSWORD] for the source registry
    #[arg(long, value_name = "USERNAME[:PASSWORD]")]
    src_creds: Option<String>,
    /// USERNAME[:PASSWORD] for the destination registry
    #[arg(long, value_name = "USERNAME[:PASSWORD]")]
    dest_creds: Option<String>,
    /// Username for the source registry (with --src-password)
    #[arg(
        long,
        value_name = "USERNAME",
        conflicts_with = "src_creds",
        requires = "src_password"
    )]
    src_username: Option<String>,
    /// Password for the source registry (with --src-username)
    #[arg(long, value_name = "PASSWORD", requires = "src_username")]
    src_password: Option<String>,
    /// Username for the destination registry (with --dest-password)
    #[arg(
        long,
        value_name = "USERNAME",
        conflicts_with = "dest_creds",
        requires = "dest_password"
    )]
    dest_username: Option<String>,
    /// Password for the destination registry (with --dest-username)
    #[arg(long, value_name = "PASSWORD", requires = "dest_username")]
    dest_password: Option<String>,
    /// Read the source anonymously
    #[arg(long)]
    src_no_creds: bool,
    /// Write to the destination anonymously
    #[arg(long)]
    dest_no_creds: bool,
    /// A bearer token for the source registry
    #[arg(long, value_name = "TOKEN")]
    src_registry_token: Option<String>,
    /// A bearer token for the destination registry
    #[arg(long, value_name = "TOKEN")]
    dest_registry_token: Option<String>,
    /// Verify the source's TLS certificate (false also allows plain HTTP)
    #[arg(long, value_name = "BOOL", default_missing_value = "true", num_args = 0..=1, action = clap::ArgAction::Set)]
    src_tls_verify: Option<bool>,
    /// Verify the destination's TLS certificate (false also allows plain HTTP)
    #[arg(long, value_name = "BOOL", default_missing_value = "true", num_args = 0..=1, action = clap::ArgAction::Set)]
    dest_tls_verify: Option<bool>,
    /// Retries of a request that failed for a passing reason (network, 5xx, 429)
    #[arg(long, value_name = "N", default_value_t = 3)]
    retry_times: u32,
    /// TLS material for the source registry (*.crt, NAME.cert + NAME.key)
    #[arg(long, value_name = "DIR")]
    src_cert_dir: Option<PathBuf>,
    /// TLS material for the destination registry (*.crt, NAME.cert + NAME.key)
    #[arg(long, value_name = "DIR")]
    dest_cert_dir: Option<PathBuf>,
    /// Blobs copied at once
    #[arg(long, value_name = "N", default_value_t = 6)]
    pub image_parallel_copies: usize,
    /// No progress lines
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Trust policy file [default: ~/.config/containers/policy.json, /etc/containers/policy.json]
    #[arg(long, value_name = "PATH")]
    policy: Option<PathBuf>,
    /// Accept any image, whatever policy.json says
    #[arg(long)]
    insecure_policy: bool,
    /// Where signatures are kept (registries.d folder) [default:
    /// ~/.config/containers/registries.d, /etc/containers/registries.d]
    #[arg(long = "registries.d", value_name = "DIR")]
    registries_d: Option<PathBuf>,
}

/// One side's flags, as [`Sides::flags`] turns them into a registry's.
struct Side<'a> {
    authfile: &'a Option<PathBuf>,
    creds: &'a Option<String>,
    username: &'a Option<String>,
    password: &'a Option<String>,
    no_creds: bool,
    token: &'a Option<String>,
    tls: Option<bool>,
    cert_dir: &'a Option<PathBuf>,
}

impl Sides {
    fn flags(&self, side: Side<'_>) -> RegistryFlags {
        let creds = creds_of(side.username, side.password, side.creds.clone());
        let Side {
            no_creds,
            token,
            tls,
            cert_dir,
            ..
        } = side;
        RegistryFlags {
            authfile: side.authfile.clone().or_else(|| self.authfile.clone()),
            creds,
            no_creds,
            registry_token: token.clone(),
            tls_verify: tls,
            retry_times: self.retry_times,
            cert_dir: cert_dir.clone(),
            signature_policy: None,
        }
    }

    pub fn source(&self) -> RegistryFlags {
        self.flags(Side {
            authfile: &self.src_authfile,
            creds: &self.src_creds,
            username: &self.src_username,
            password: &self.src_password,
            no_creds: self.src_no_creds,
            token: &self.src_registry_token,
            tls: self.src_tls_verify,
            cert_dir: &self.src_cert_dir,
        })
    }

    pub fn destination(&self) -> RegistryFlags {
        self.flags(Side {
            authfile: &self.dest_authfile,
            creds: &self.dest_creds,
            username: &self.dest_username,
            password: &self.dest_password,
            no_creds: self.dest_no_creds,
            token: &self.dest_registry_token,
            tls: self.dest_tls_verify,
            cert_dir: &self.dest_cert_dir,
        })
    }

    /// Progress on stderr (stdout stays for data): bars on a terminal, lines otherwise.
    pub fn progress(&self) -> Progress {
        super::progress::reporter(self.quiet)
    }

    /// policy.json (`--policy`, none with `--insecure-policy`) and registries.d.
    pub fn trust(&self, config: &Config) -> anyhow::Result<Trust> {
        Trust::load_with(
            config,
            self.policy.as_deref(),
            self.insecure_policy,
            self.registries_d.as_deref(),
        )
    }
}

#[derive(Args, Debug)]
pub struct CopyArgs {
    /// For a multi-platform image, copy every platform and the index
    #[arg(long, short = 'a')]
    all: bool,
    /// What of a multi-platform image to copy: system (this machine's image, the
    /// default) or all (as --all); index-only is refused (most registries reject the
    /// sparse index it makes)
    #[arg(long, value_name = "WHAT", value_parser = ["system", "all", "index-only"])]
    multi_arch: Option<String>,
    #[command(flatten)]
    sides: Sides,
    /// Write manifests in this format: oci or v2s2 (Docker); converting changes digests
    #[arg(long, short = 'f', value_name = "FORMAT", value_parser = ["oci", "v2s2"])]
    format: Option<String>,
    /// Fail rather than change a digest (no conversion, no recompression)
    #[arg(long)]
    preserve_digests: bool,
    /// Recompress layers with gzip or zstd (zstd needs an OCI manifest)
    #[arg(long, value_name = "FORMAT", value_parser = ["gzip", "zstd"])]
    dest_compress_format: Option<String>,
    /// Level of the compression written: gzip 1-9, zstd 1-20
    #[arg(long, value_name = "LEVEL", allow_negative_numbers = true)]
    dest_compress_level: Option<i32>,
    /// More names for the image in a docker-archive: destination (RepoTags)
    #[arg(long, value_name = "NAME")]
    additional_tag: Vec<String>,
    /// Do not copy the source's signatures
    #[arg(long)]
    remove_signatures: bool,
    #[command(flatten)]
    sign: SignFlags,
    /// Copy the image's OCI 1.1 referrers too (signatures, SBOMs, attestations), when
    /// both registries answer the referrers API
    #[arg(long, value_name = "BOOL", default_value_t = true, default_missing_value = "true", num_args = 0..=1, action = clap::ArgAction::Set)]
    referrers: bool,
    /// Write the digest of the copied manifest to this file
    #[arg(long, value_name = "PATH")]
    digestfile: Option<PathBuf>,
    #[command(flatten)]
    platform: PlatformFlags,
    /// Source image: docker://NAME[:TAG|@DIGEST], oci:PATH[:REF], oci-archive:PATH[:REF],
    /// dir:PATH or docker-archive:PATH[:REF]
    source: String,
    /// Destination image
    destination: String,
}

// Which image of a multi-platform one.
// (A plain comment, not a doc comment: see `Command` in main.rs.)
#[derive(Args, Debug)]
pub struct PlatformFlags {
    /// For a multi-platform image, the OS to use [default: linux]
    #[arg(long, value_name = "OS")]
    override_os: Option<String>,
    /// For a multi-platform image, the architecture to use [default: this machine's]
    #[arg(long, value_name = "ARCH")]
    override_arch: Option<String>,
    /// For a multi-platform image, the CPU variant to use
    #[arg(long, value_name = "VARIANT")]
    override_variant: Option<String>,
}

impl PlatformFlags {
    pub fn platform(&self) -> Platform {
        let here = berth_image::Platform::this_machine();
        Platform {
            os: self.override_os.clone().unwrap_or(here.os),
            architecture: self.override_arch.clone().unwrap_or(here.architecture),
            variant: self.override_variant.clone(),
        }
    }
}

/// Opens `name` as a place, with `flags` when it is a registry.
pub fn open(config: &Config, name: &ImageName, flags: &RegistryFlags) -> anyhow::Result<Place> {
    Ok(match name {
        ImageName::Docker(r) => Place::Registry {
            registry: std::sync::Arc::new(config.registry(r, flags)?),
            repo: r.path().as_str().to_string(),
            reference: reference_of(r),
        },
        ImageName::Oci { path, reference } => {
            Place::Oci(Layout::new(path.clone(), reference.clone()))
        }
        ImageName::Dir(path) => Place::Dir(DirImage::new(path.clone())),
        ImageName::Local(r) => local_place(&LocalStore::open(&crate::paths::storage_root()?)?, r),
        ImageName::OciArchive { path, reference } => Place::write_archive(path, reference.clone())?,
        ImageName::DockerArchive { path, reference } => Place::DockerArchive(DockerArchive::write(
            path,
            reference.as_deref().map(archive_name).transpose()?,
        )?),
    })
}

/// A name recorded in a docker archive's `RepoTags`, normalized as containers/image
/// records it (`bar` -> `docker.io/library/bar:latest`); a digest has no place there.
pub fn archive_name(name: &str) -> anyhow::Result<String> {
    let r: berth_image::ImageReference = name
        .parse()
        .with_context(|| format!("invalid name {name:?} for a docker archive"))?;
    if r.digest().is_some() {
        bail!("{name}: a docker archive names images by tag, not by digest");
    }
    Ok(r.with_default_tag().to_string())
}

/// Image `r` in the local store `store`.
pub fn local_place(store: &std::sync::Arc<LocalStore>, r: &berth_image::ImageReference) -> Place {
    Place::Local {
        store: store.clone(),
        repo: r.name(),
        reference: reference_of(r),
    }
}

/// Opens `name` for reading: for a registry, the first of its sources (short-name
/// candidates, mirrors, its own location) that has the image.
pub async fn open_source(
    config: &Config,
    typed: &str,
    name: &ImageName,
    flags: &RegistryFlags,
) -> anyhow::Result<Place> {
    Ok(open_source_named(config, typed, name, flags).await?.1)
}

/// [`open_source`], with the name the image goes by: a short name resolved (an alias,
/// a search registry), a registry's own name where a mirror serves it. The policy
/// judges that name, as c/image does, not the one typed.
pub async fn open_source_named(
    config: &Config,
    typed: &str,
    name: &ImageName,
    flags: &RegistryFlags,
) -> anyhow::Result<(ImageName, Place)> {
    match name {
        ImageName::Docker(r) => {
            let typed = typed.trim_start_matches("docker://");
            let (logical, registry, at) = config
                .open_for_read(typed, r, flags, ShortNames::Skopeo)
                .await?;
            let place = Place::Registry {
                registry: std::sync::Arc::new(registry),
                repo: at.path().as_str().to_string(),
                reference: reference_of(&at),
            };
            Ok((ImageName::Docker(logical), place))
        }
        ImageName::OciArchive { path, reference } => Ok((
            name.clone(),
            Place::read_archive(path, reference.clone()).await?,
        )),
        ImageName::DockerArchive { path, reference } => Ok((
            name.clone(),
            Place::DockerArchive(DockerArchive::read(path, reference.clone()).await?),
        )),
        ImageName::Local(_) => {
            let store = LocalStore::open(&crate::paths::storage_root()?)?;
            let place = local_source(&store, typed.strip_prefix("local:").unwrap_or(typed))?;
            Ok((name.clone(), place))
        }
        ImageName::Oci { .. } | ImageName::Dir(_) => Ok((name.clone(), open(config, name, flags)?)),
    }
}

/// Image `spec` of the local store to read, found as podman finds it: a short name
/// matches a stored name (`alpine` is `docker.io/library/alpine` when that is what was
/// pulled), an ID or its prefix, `name@digest`.
pub fn local_source(store: &std::sync::Arc<LocalStore>, spec: &str) -> anyhow::Result<Place> {
    if let Ok(r) = berth_image::ImageReference::parse_local(spec) {
        if let Some(d) = r.digest() {
            return Ok(Place::Local {
                store: store.clone(),
                repo: r.name(),
                reference: d.to_string(),
            });
        }
    }
    let (image, name) = store.find_named(spec)?;
    Ok(match name {
        Some(name) => {
            let repo = berth_transport::local::repository_of(&name);
            Place::Local {
                store: store.clone(),
                repo: repo.to_string(),
                reference: name[repo.len() + 1..].to_string(),
            }
        }
        None => super::local::image_place(store, &image),
    })
}

pub fn run(a: CopyArgs) -> anyhow::Result<()> {
    let src_name = ImageName::parse(&a.source)?;
    let dst_name = ImageName::parse(&a.destination)?;
    let config = Config::load()?;
    let trust = a.sides.trust(&config)?;
    // A registry's image is judged by the name it goes by, known once its source is
    // open (below: a short name resolved; with one source, before any request).
    if !matches!(src_name, ImageName::Docker(_)) {
        trust.precheck(&src_name)?;
    }
    let dst = open(&config, &dst_name, &a.sides.destination())?;
    if a.multi_arch.as_deref() == Some("index-only") {
        bail!("--multi-arch index-only is not supported: registries reject the sparse index it writes");
    }
    let options = CopyOptions {
        all: a.all || a.multi_arch.as_deref() == Some("all"),
        platform: a.platform.platform(),
        parallel: a.sides.image_parallel_copies,
        format: format_of(a.format.as_deref()),
        preserve_digests: a.preserve_digests,
        compress: compression(a.dest_compress_format.as_deref(), a.dest_compress_level)?,
    };
    if !a.additional_tag.is_empty() {
        match (&dst, &dst_name) {
            (Place::DockerArchive(archive), ImageName::DockerArchive { reference, .. }) => {
                let mut names = Vec::new();
                for n in reference.iter().chain(&a.additional_tag) {
                    names.push(archive_name(n)?);
                }
                archive.set_tags(names);
            }
            // skopeo ignores it there too; say so rather than nothing.
            _ => eprintln!("berth: --additional-tag names images in docker-archive: only; ignored"),
        }
    }
    // One thread: the copy is one task (its blobs are futures polled together, not
    // spawned), so worker threads only added a wake-up across threads for every
    // answer (about 1 ms of a small signed copy's 12); 1 GiB copies measured the same
    // (`berth-bench --only copy_1g`: 799 MB/s against 704 with worker threads).
    let digest = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let (src_name, src) =
                open_source_named(&config, &a.source, &src_name, &a.sides.source()).await?;
            trust.precheck(&src_name)?;
            let signed = SignedCopy {
                trust: &trust,
                remove_signatures: a.remove_signatures,
                sign: &a.sign,
            };
            let progress = a.sides.progress();
            let written = signed
                .copy_written(&src_name, &src, &dst_name, &dst, &options, progress.clone())
                .await?;
            let digest = written.digest;
            // A converted manifest has a digest no referrer of the source names.
            if a.referrers && !written.converted {
                let n = copy_referrers(&src, &dst, &digest, &options, &progress).await?;
                if n > 0 {
                    progress.line(&format!("Copied {n} referrers of {digest}"));
                }
            }
            anyhow::Ok(digest)
        })
        .with_context(|| format!("copying {src_name} to {dst_name}"))?;
    if let Some(path) = &a.digestfile {
        std::fs::write(path, digest.to_string())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// `--format` as clap has checked it (oci or v2s2).
pub fn format_of(flag: Option<&str>) -> Option<Format> {
    flag.map(|f| match f {
        "v2s2" => Format::V2s2,
        _ => Format::Oci,
    })
}

/// `--dest-compress-format` and `--dest-compress-level`, checked.
fn compression(format: Option<&str>, level: Option<i32>) -> anyhow::Result<Option<Compress>> {
    if format.is_none() && level.is_none() {
        return Ok(None);
    }
    let format = format.map(|c| match c {
        "zstd" => Compression::Zstd,
        _ => Compression::Gzip,
    });
    Ok(Some(Compress::new(format, level).map_err(|e| {
        anyhow::anyhow!("--dest-compress-level: {e}")
    })?))
}
