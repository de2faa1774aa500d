//! `berth pull`: an image (or every tag of a repository) from a registry into the
//! local store; short names through registries.conf, each search registry in turn.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use berth_image::{ImageReference, Platform};
use berth_remote::Registry;
use berth_transport::copy::CopyOptions;
use berth_transport::local::LocalStore;
use berth_transport::{ImageName, Place};
use clap::Args;

use crate::client::copy::local_place;
use crate::client::signed::{SignFlags, SignedCopy, Trust};
use crate::client::{reference_of, Config, Failures, RegistryFlags, ShortNames};

#[derive(Args, Debug)]
pub struct PullArgs {
    /// Every tag of the repository
    #[arg(long, short = 'a')]
    all_tags: bool,
    /// For a multi-platform image, which one: OS/ARCH[/VARIANT] [default: this machine's]
    #[arg(long, value_name = "OS/ARCH", conflicts_with_all = ["os", "arch", "variant"])]
    platform: Option<String>,
    /// For a multi-platform image, its OS [default: this machine's]
    #[arg(long, value_name = "OS")]
    os: Option<String>,
    /// For a multi-platform image, its architecture [default: this machine's]
    #[arg(long, value_name = "ARCH")]
    arch: Option<String>,
    /// For a multi-platform image, its CPU variant
    #[arg(long, value_name = "VARIANT")]
    variant: Option<String>,
    /// Print nothing but the image ID
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Trust policy file [default: ~/.config/containers/policy.json, /etc/containers/policy.json]
    #[arg(long, value_name = "PATH")]
    signature_policy: Option<PathBuf>,
    #[command(flatten)]
    registry: RegistryFlags,
    /// The image: NAME[:TAG|@DIGEST] (short names through registries.conf), or
    /// docker://NAME
    image: String,
}

/// `--platform`, else this machine.
pub fn platform(spec: Option<&str>) -> anyhow::Result<Platform> {
    match spec {
        None => Ok(Platform::this_machine()),
        Some(s) => Platform::parse(s)
            .with_context(|| format!("--platform {s:?}: use OS/ARCH[/VARIANT], e.g. linux/arm64")),
    }
}

pub fn run(a: PullArgs) -> anyhow::Result<()> {
    // podman's --os/--arch/--variant: each replaces that part of this machine's.
    let mut chosen = platform(a.platform.as_deref())?;
    if let Some(os) = &a.os {
        chosen.os = os.clone();
    }
    if let Some(arch) = &a.arch {
        chosen.architecture = arch.clone();
        chosen.variant = None;
    }
    if a.variant.is_some() {
        chosen.variant = a.variant.clone();
    }
    let options = PullOptions {
        platform: chosen,
        quiet: a.quiet,
        signature_policy: a.signature_policy.clone(),
        registry: a.registry.clone(),
    };
    for id in pull(&super::open_store()?, &a.image, a.all_tags, &options)? {
        println!("{id}");
    }
    Ok(())
}

/// How to pull, besides what.
pub struct PullOptions {
    pub platform: Platform,
    pub quiet: bool,
    pub signature_policy: Option<PathBuf>,
    pub registry: RegistryFlags,
}

/// Pulls `image` (every tag with `all_tags`) into `store`; returns the image IDs.
pub fn pull(
    store: &Arc<LocalStore>,
    image: &str,
    all_tags: bool,
    o: &PullOptions,
) -> anyhow::Result<Vec<String>> {
    let typed = image.trim_start_matches("docker://");
    let r: ImageReference = typed
        .parse()
        .with_context(|| format!("invalid image name {image:?}"))?;
    if all_tags && (r.tag().is_some() || r.digest().is_some()) {
        bail!("--all-tags: give a repository without a tag or digest");
    }
    let config = Config::load()?;
    let trust = Trust::load(&config, o.signature_policy.as_deref(), false)?;
    trust.precheck(&ImageName::Docker(r.clone()))?;
    let no_signing = SignFlags::default();
    let signed = SignedCopy {
        trust: &trust,
        remove_signatures: false,
        sign: &no_signing,
    };
    let options = CopyOptions {
        all: false,
        platform: o.platform.clone(),
        parallel: 6,
        format: None,
        preserve_digests: true,
        compress: None,
    };
    super::runtime()?.block_on(async {
        let targets = match all_tags {
            false => {
                let (logical, registry, at) = config
                    .open_for_read(typed, &r, &o.registry, ShortNames::Podman)
                    .await?;
                vec![(logical.with_default_tag(), Arc::new(registry), at)]
            }
            true => all_tags_of(&config, typed, &r, &o.registry).await?,
        };
        let mut ids = Vec::new();
        for (logical, registry, at) in targets {
            let src = Place::Registry {
                registry,
                repo: at.path().as_str().to_string(),
                reference: reference_of(&at),
            };
            let dst = local_place(store, &logical);
            let progress = crate::client::progress::reporter(o.quiet);
            // The policy decides by the name asked for (a mirror serves it).
            let name = ImageName::Docker(logical.clone());
            let digest = signed
                .copy(
                    &name,
                    &src,
                    &ImageName::Local(logical.clone()),
                    &dst,
                    &options,
                    progress,
                )
                .await
                .with_context(|| format!("pulling {}", logical.name()))?;
            let stored = store.find(&format!("{}@{digest}", logical.name()))?;
            ids.push(stored.id.hex().to_string());
        }
        anyhow::Ok(ids)
    })
}

/// podman's `--pull` policies for images a command needs (build's FROM, run, create).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull every time; a failed pull is an error.
    Always,
    /// Pull only what the store lacks.
    Missing,
    /// Never pull: the store must have it.
    Never,
    /// Pull when the registry has another image under the name; a failed pull falls
    /// back to the stored image.
    Newer,
}

impl std::str::FromStr for PullPolicy {
    type Err = anyhow::Error;

    /// podman 4.3's values: `true` (and `--pull` alone) is always, `false` is missing.
    fn from_str(s: &str) -> anyhow::Result<PullPolicy> {
        match s.trim().to_ascii_lowercase().as_str() {
            "always" | "true" => Ok(PullPolicy::Always),
            "missing" | "false" => Ok(PullPolicy::Missing),
            "never" => Ok(PullPolicy::Never),
            "newer" => Ok(PullPolicy::Newer),
            _ => bail!("--pull {s:?}: use always, missing, never or newer"),
        }
    }
}

/// The image `name` for `platform`, from the store or pulled as `policy` says, with
/// `flags` for the registry (`--tls-verify`, `--authfile`, …).
pub fn ensure_with(
    store: &Arc<LocalStore>,
    name: &str,
    platform: &Platform,
    policy: PullPolicy,
    flags: &RegistryFlags,
) -> anyhow::Result<berth_transport::local::Image> {
    let stored = || match store.find(name) {
        Ok(img) => Ok(Some(img)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(anyhow::Error::from(e)),
    };
    let pulled = || -> anyhow::Result<berth_transport::local::Image> {
        let options = PullOptions {
            platform: platform.clone(),
            quiet: false,
            signature_policy: flags.signature_policy.clone(),
            registry: flags.clone(),
        };
        let ids = pull(store, name, false, &options)?;
        let id = ids.first().context("nothing pulled")?;
        Ok(store.find(id)?)
    };
    match policy {
        PullPolicy::Always => pulled(),
        PullPolicy::Missing => match stored()? {
            Some(img) => Ok(img),
            None => pulled(),
        },
        PullPolicy::Never => stored()?.with_context(|| format!("{name}: image not known")),
        PullPolicy::Newer => match pulled() {
            Ok(img) => Ok(img),
            Err(e) => match stored()? {
                Some(img) => {
                    eprintln!("WARNING: pulling {name} failed, using the stored image: {e:#}");
                    Ok(img)
                }
                None => Err(e),
            },
        },
    }
}

/// Every tag of the first search registry that has the repository.
async fn all_tags_of(
    config: &Config,
    typed: &str,
    r: &ImageReference,
    flags: &RegistryFlags,
) -> anyhow::Result<Vec<(ImageReference, Arc<Registry>, ImageReference)>> {
    let mut failed = Failures::default();
    for (logical, source) in config.read_sources(typed, r, ShortNames::Podman)? {
        let registry = match config.source_client(&logical, &source, flags) {
            Ok(r) => Arc::new(r),
            Err(e) => {
                failed.add(&logical, e);
                continue;
            }
        };
        match registry.tags(source.reference.path().as_str()).await {
            Ok(tags) if !tags.is_empty() => {
                let mut out = Vec::new();
                for tag in tags {
                    let with = |i: &ImageReference| -> anyhow::Result<ImageReference> {
                        Ok(format!("{}:{tag}", i.name()).parse()?)
                    };
                    out.push((with(&logical)?, registry.clone(), with(&source.reference)?));
                }
                return Ok(out);
            }
            Ok(_) => failed.add(
                &logical,
                anyhow::anyhow!("{}: no tags", source.reference.name()),
            ),
            Err(e) => failed.add(&logical, anyhow::Error::new(e)),
        }
    }
    Err(failed.into_error(typed))
}
