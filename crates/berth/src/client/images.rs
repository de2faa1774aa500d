//! `berth inspect`, `list-tags`, `delete` and `manifest-digest`, as skopeo shapes them.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context};
use berth_image::inspect::{to_go_json, ImageConfig, Inspection};
use berth_image::{Digest, Manifest, ManifestKind};
use berth_remote::Registry;
use berth_transport::{ImageName, Place};
use clap::Args;
use serde::Serialize;
use std::sync::Arc;

use super::copy::{open_source, PlatformFlags};
use super::signed::{SignatureVerdict, Trust};
use super::{docker_reference, reference_of, AccountFlags, Config, RegistryFlags, ShortNames};

/// Largest image config read.
const MAX_CONFIG: usize = 16 * 1024 * 1024;

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Print the manifest (or with --config, the config) exactly as stored
    #[arg(long)]
    raw: bool,
    /// Print the image's config instead of the summary
    #[arg(long)]
    config: bool,
    /// Print with a Go template instead, e.g. '{{.Digest}}' or '{{range .RepoTags}}{{.}} {{end}}'
    #[arg(long, short = 'f', value_name = "TEMPLATE", conflicts_with = "raw")]
    format: Option<String>,
    /// Do not list the repository's tags (RepoTags stays empty)
    #[arg(long, short = 'n')]
    no_tags: bool,
    /// List the image's signatures instead, each with whether the trust policy accepts
    /// it (a berth addition: skopeo's inspect has no such field)
    #[arg(long, conflicts_with_all = ["raw", "config", "format"])]
    signatures: bool,
    /// Trust policy for --signatures [default: ~/.config/containers/policy.json,
    /// /etc/containers/policy.json]
    #[arg(long, value_name = "PATH", requires = "signatures")]
    policy: Option<PathBuf>,
    #[command(flatten)]
    platform: PlatformFlags,
    #[command(flatten)]
    registry: RegistryFlags,
    #[command(flatten)]
    account: AccountFlags,
    /// The image: docker://NAME[:TAG|@DIGEST], oci:PATH[:REF], oci-archive:PATH[:REF],
    /// dir:PATH, docker-archive:PATH[:REF] or local:NAME[:TAG]; a bare name (no
    /// transport) is an image of the local store, shown as `berth image inspect` does
    image: String,
}

#[derive(Args, Debug)]
pub struct ListTagsArgs {
    #[command(flatten)]
    registry: RegistryFlags,
    #[command(flatten)]
    account: AccountFlags,
    /// The repository, e.g. docker://quay.io/org/app
    repository: String,
    /// Order the tags: "semver" lists versions newest first (1.10.0 before 1.9.2, a
    /// release before its pre-releases, a leading v accepted), then the other tags
    /// by name (the tags list carries no dates) [default: as the registry sends them]
    #[arg(long, value_name = "ORDER", value_parser = ["semver"])]
    sort: Option<String>,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    #[command(flatten)]
    registry: RegistryFlags,
    #[command(flatten)]
    account: AccountFlags,
    /// The image. A tag is deleted alone where the registry allows it; elsewhere (and
    /// for a digest) the manifest is deleted, with every tag on it
    image: String,
}

#[derive(Args, Debug)]
pub struct ManifestDigestArgs {
    /// A manifest file
    manifest: PathBuf,
}

impl InspectArgs {
    /// A bare name (no transport) is an image of the local store, which `podman inspect`
    /// would read: then these are `image inspect`'s arguments.
    pub fn local(&self) -> Option<super::local::inspect::ImageInspectArgs> {
        (!berth_transport::ImageName::has_transport(&self.image)).then(|| {
            super::local::inspect::ImageInspectArgs {
                format: self.format.clone(),
                images: vec![self.image.clone()],
            }
        })
    }
}

/// The image inspect reads: its place, the name it is shown by (`Name`; none for the
/// file transports, as skopeo), and the registry repository whose tags are `RepoTags`.
struct Inspected {
    place: Place,
    name: String,
    tags_of: Option<(Arc<Registry>, String)>,
}

impl Inspected {
    async fn open(config: &Config, a: &InspectArgs) -> anyhow::Result<Inspected> {
        let name = ImageName::parse(&a.image)?;
        Ok(match &name {
            ImageName::Docker(r) => {
                let typed = a.image.trim_start_matches("docker://");
                let (logical, reg, at) = config
                    .open_for_read(typed, r, &a.registry, ShortNames::Skopeo)
                    .await?;
                let registry = Arc::new(reg);
                let repo = at.path().as_str().to_string();
                Inspected {
                    place: Place::Registry {
                        registry: registry.clone(),
                        repo: repo.clone(),
                        reference: reference_of(&at),
                    },
                    name: logical.name(),
                    tags_of: (!a.no_tags).then_some((registry, repo)),
                }
            }
            _ => {
                let place = open_source(config, &a.image, &name, &a.registry).await?;
                let name = match &place {
                    Place::Local { repo, .. } => repo.clone(),
                    _ => String::new(),
                };
                Inspected {
                    place,
                    name,
                    tags_of: None,
                }
            }
        })
    }
}

pub fn inspect(mut a: InspectArgs) -> anyhow::Result<()> {
    a.account.apply(&mut a.registry);
    let config = Config::load()?;
    runtime()?.block_on(async {
        let Inspected {
            place,
            name,
            tags_of,
        } = Inspected::open(&config, &a).await?;
        let top = place.manifest(None).await?;
        if a.signatures {
            return print_signatures(&config, &a, &place, &top).await;
        }
        if a.raw && !a.config {
            return print_bytes(&top.bytes);
        }
        let parsed = Manifest::parse(top.media_type.as_deref(), &top.bytes)
            .with_context(|| format!("{}: bad manifest", a.image))?;
        let (image, index) = match parsed.kind {
            ManifestKind::Image => (parsed, None),
            ManifestKind::Index => {
                let want = a.platform.platform();
                let child = parsed
                    .manifests
                    .iter()
                    .find(|d| d.platform.as_ref().is_some_and(|p| p.matches(&want)))
                    .with_context(|| format!("{}: no image for {want} in the index", a.image))?;
                let raw = place.manifest(Some(&child.digest)).await?;
                let media_type = raw.media_type.as_deref().or(Some(&child.media_type));
                let image = Manifest::parse(media_type, &raw.bytes)
                    .with_context(|| format!("{}: bad manifest {}", a.image, child.digest))?;
                (image, Some(parsed))
            }
        };
        let config_desc = image
            .config
            .as_ref()
            .with_context(|| format!("{}: the manifest has no config", a.image))?;
        let config_bytes = place.small_blob(&config_desc.digest, MAX_CONFIG).await?;
        if a.config {
            if a.raw {
                return print_bytes(&config_bytes);
            }
            // skopeo prints the OCI config containers/image makes of it (a Docker
            // config loses its Docker-only fields), indented.
            let oci = berth_image::convert::oci_config(&config_bytes)
                .with_context(|| format!("{}: bad image config", a.image))?;
            let v: serde_json::Value = serde_json::from_slice(&oci)
                .with_context(|| format!("{}: the config is not JSON", a.image))?;
            return print_line(&to_go_json(&v));
        }
        let image_config = ImageConfig::parse(&config_bytes)
            .with_context(|| format!("{}: bad image config", a.image))?;
        let tags = match tags_of {
            Some((registry, repo)) => registry.tags(&repo).await?,
            None => Vec::new(),
        };
        let inspection = Inspection::new(
            name,
            top.digest.to_string(),
            tags,
            &image,
            &image_config,
            index.as_ref(),
        );
        match &a.format {
            Some(t) => {
                let data = serde_json::to_value(&inspection)?;
                print_line(&super::template::render(t, &data)?)
            }
            None => print_line(&inspection.to_json()),
        }
    })
}

/// `inspect --signatures`: the manifest digest, and each signature with the policy's
/// verdict on it, as JSON.
async fn print_signatures(
    config: &Config,
    a: &InspectArgs,
    place: &Place,
    top: &berth_transport::RawManifest,
) -> anyhow::Result<()> {
    let name = ImageName::parse(&a.image)?;
    let trust = Trust::load(config, a.policy.as_deref(), false)?;
    let sigs = place.signatures(&top.digest, trust.storage()).await?;
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Listing {
        digest: String,
        signatures: Vec<SignatureVerdict>,
    }
    let listing = Listing {
        digest: top.digest.to_string(),
        signatures: trust.verdicts(&name, top, &sigs),
    };
    print_line(&to_go_json(&listing))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct TagList {
    #[serde(skip_serializing_if = "String::is_empty")]
    repository: String,
    tags: Vec<String>,
}

/// `--sort semver`: berth-catalog's order (the registry's repository pages use it
/// too); without dates, tags that are not versions go by name.
fn sorted(tags: Vec<String>, sort: Option<&str>) -> Vec<String> {
    if sort != Some("semver") {
        return tags;
    }
    let mut dated: Vec<(String, i64)> = tags.into_iter().map(|t| (t, 0)).collect();
    berth_catalog::tags::sort_newest_first(&mut dated);
    dated.into_iter().map(|(t, _)| t).collect()
}

pub fn list_tags(mut a: ListTagsArgs) -> anyhow::Result<()> {
    a.account.apply(&mut a.registry);
    if let Some(rest) = a.repository.strip_prefix("docker-archive:") {
        let path = rest.split_once(':').map_or(rest, |(p, _)| p);
        let tags = berth_transport::docker_archive::repo_tags(std::path::Path::new(path))?;
        let tags = sorted(tags, a.sort.as_deref());
        return print_line(&to_go_json(&TagList {
            repository: String::new(),
            tags,
        }));
    }
    let r = docker_reference(&a.repository)?;
    if r.tag().is_some() || r.digest().is_some() {
        bail!(
            "{}: list-tags takes a repository, without a tag or digest",
            a.repository
        );
    }
    let config = Config::load()?;
    let reg = config.registry(&r, &a.registry)?;
    let tags = runtime()?.block_on(reg.tags(r.path().as_str()))?;
    let tags = sorted(tags, a.sort.as_deref());
    print_line(&to_go_json(&TagList {
        repository: r.name(),
        tags,
    }))
}

pub fn delete(mut a: DeleteArgs) -> anyhow::Result<()> {
    a.account.apply(&mut a.registry);
    let r = docker_reference(&a.image)?;
    let config = Config::load()?;
    let reg: Registry = config.registry(&r, &a.registry)?;
    let repo = r.path().as_str().to_string();
    runtime()?.block_on(async {
        let digest = match (r.digest(), r.tag()) {
            (Some(d), _) => d.clone(),
            (None, Some(tag)) => {
                let tag = tag.to_string();
                // Make sure it exists (and say so with exit 2 when not), then try to
                // delete the tag alone.
                let digest = reg.manifest(&repo, &tag).await?.digest;
                if reg.delete_tag(&repo, &tag).await? {
                    return anyhow::Ok(());
                }
                eprintln!(
                    "berth: {} does not delete tags; deleting manifest {digest} and every tag on it",
                    reg.host()
                );
                digest
            }
            (None, None) => reg.manifest(&repo, "latest").await?.digest,
        };
        reg.delete_manifest(&repo, &digest).await?;
        anyhow::Ok(())
    })
}

pub fn manifest_digest(a: ManifestDigestArgs) -> anyhow::Result<()> {
    let bytes =
        std::fs::read(&a.manifest).with_context(|| format!("reading {}", a.manifest.display()))?;
    Manifest::parse(None, &bytes).with_context(|| format!("{}", a.manifest.display()))?;
    print_line(&Digest::sha256_of(&bytes).to_string())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn print_bytes(b: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(b)?;
    out.flush()?;
    Ok(())
}

fn print_line(s: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{s}")?;
    out.flush()?;
    Ok(())
}
