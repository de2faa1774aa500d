//! `berth sync --src docker --dest docker SOURCE DESTINATION`: a whole repository (or
//! one tag) to another registry, as skopeo sync does, skipping every image the
//! destination already has under the same tag with the same digest.
//!
//! Unlike skopeo, which copies one image after another, several images are copied at
//! once over shared connections and tokens; each image's blobs go in parallel too.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use berth_image::ImageReference;
use berth_transport::copy::{CopyOptions, Progress};
use berth_transport::{ImageName, Place};
use clap::Args;
use futures_util::{stream, StreamExt};

use super::copy::{format_of, PlatformFlags, Sides};
use super::signed::{SignFlags, SignedCopy, Trust};
use super::Config;

#[derive(Args, Debug)]
pub struct SyncArgs {
    /// Kind of SOURCE: docker (a repository, or one image with a tag), dir (one `dir:`
    /// image, its folder named `NAME[:TAG]`, as `--dest dir` writes them) or yaml (a
    /// file listing registries and their images, as skopeo sync reads it)
    #[arg(long, short = 's', value_name = "TRANSPORT", value_parser = ["docker", "dir", "yaml"])]
    src: String,
    /// Kind of DESTINATION: docker (a registry, with an optional namespace) or dir (a
    /// folder, getting one `dir:` image per tag, named `NAME:TAG`)
    #[arg(long, short = 'd', value_name = "TRANSPORT", value_parser = ["docker", "dir"])]
    dest: String,
    /// For multi-platform images, copy every platform and the index
    #[arg(long, short = 'a')]
    all: bool,
    /// Keep the source's registry and path under the destination
    /// (DEST/host/path instead of DEST/last-path-component)
    #[arg(long)]
    scoped: bool,
    /// Say what would be copied, copy nothing
    #[arg(long)]
    dry_run: bool,
    /// Go on with the next image when one fails (the exit status still says so)
    #[arg(long)]
    keep_going: bool,
    /// Write manifests in this format: oci or v2s2 (Docker); converting changes digests
    #[arg(long, short = 'f', value_name = "FORMAT", value_parser = ["oci", "v2s2"])]
    format: Option<String>,
    /// Fail rather than change a digest (no conversion, no recompression)
    #[arg(long)]
    preserve_digests: bool,
    /// Images copied at once
    #[arg(long, value_name = "N", default_value_t = 8)]
    parallel_images: usize,
    #[command(flatten)]
    sides: Sides,
    /// Do not copy the source's signatures
    #[arg(long)]
    remove_signatures: bool,
    #[command(flatten)]
    sign: SignFlags,
    #[command(flatten)]
    platform: PlatformFlags,
    /// The repository (all tags) or image (one tag), without transport:
    /// registry.example/org/app[:tag]
    source: String,
    /// The registry and optional namespace to copy into: mirror.example/ns
    destination: String,
}

/// The copy options of every image a sync copies.
fn copy_options(a: &SyncArgs) -> CopyOptions {
    CopyOptions {
        all: a.all,
        platform: a.platform.platform(),
        parallel: a.sides.image_parallel_copies,
        format: format_of(a.format.as_deref()),
        preserve_digests: a.preserve_digests,
        compress: None,
    }
}

/// Where images for destination repository `dest_repo` go: a registry repository, or
/// with `--dest dir` folders.
fn target_for(a: &SyncArgs, config: &Config, dest_repo: &str) -> anyhow::Result<Target> {
    Ok(match a.dest.as_str() {
        "dir" => Target::Dir(PathBuf::from(dest_repo)),
        _ => {
            let dest_ref: ImageReference = dest_repo
                .parse()
                .with_context(|| format!("invalid destination {dest_repo:?}"))?;
            Target::Registry(
                Arc::new(config.registry(&dest_ref, &a.sides.destination())?),
                dest_ref.path().to_string(),
            )
        }
    })
}

/// Where synced images go.
enum Target {
    /// A registry client and the repository.
    Registry(Arc<berth_remote::Registry>, String),
    /// `BASE:TAG/` folders in the `dir:` format.
    Dir(PathBuf),
}

impl Target {
    fn name(&self, tag: &str) -> String {
        match self {
            Target::Registry(r, repo) => format!("{}/{repo}:{tag}", r.host()),
            Target::Dir(base) => format!("dir:{}", dir_of(base, tag).display()),
        }
    }

    /// The digest of what the destination holds under `tag`, if anything.
    async fn digest(&self, tag: &str) -> anyhow::Result<Option<berth_image::Digest>> {
        Ok(match self {
            Target::Registry(r, repo) => r.manifest_digest(repo, tag).await?,
            Target::Dir(base) => {
                let file = dir_of(base, tag).join("manifest.json");
                match tokio::fs::read(&file).await {
                    Ok(bytes) => Some(berth_image::Digest::sha256_of(&bytes)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(e) => {
                        return Err(
                            anyhow::Error::new(e).context(format!("reading {}", file.display()))
                        )
                    }
                }
            }
        })
    }

    /// The destination image of `tag`, as policy and signing name it.
    fn image_name(&self, tag: &str) -> anyhow::Result<ImageName> {
        Ok(match self {
            Target::Registry(..) => ImageName::parse(&format!("docker://{}", self.name(tag)))?,
            Target::Dir(base) => ImageName::Dir(dir_of(base, tag)),
        })
    }

    fn place(&self, tag: &str) -> Place {
        match self {
            Target::Registry(r, repo) => Place::Registry {
                registry: r.clone(),
                repo: repo.clone(),
                reference: tag.to_string(),
            },
            Target::Dir(base) => Place::Dir(berth_transport::dir::DirImage::new(dir_of(base, tag))),
        }
    }
}

/// The folder of image `reference` under `base`: `base:TAG`, or `base@DIGEST`.
fn dir_of(base: &std::path::Path, reference: &str) -> PathBuf {
    let sep = if reference.contains(':') { '@' } else { ':' };
    PathBuf::from(format!("{}{sep}{reference}", base.display()))
}

/// The destination repository for `src`: `DEST/<last component>` or, scoped,
/// `DEST/<host>/<path>`.
fn destination_repo(dest: &str, src: &ImageReference, scoped: bool) -> String {
    let path = src.path().as_str();
    let tail = if scoped {
        format!("{}/{path}", src.domain().replace(':', "-"))
    } else {
        path.rsplit('/').next().unwrap_or(path).to_string()
    };
    format!("{}/{tail}", dest.trim_end_matches('/'))
}

pub fn run(a: SyncArgs) -> anyhow::Result<()> {
    match a.src.as_str() {
        "dir" => return run_from_dir(a),
        "yaml" => return run_from_yaml(a),
        _ => {}
    }
    let src_ref: ImageReference = a
        .source
        .parse()
        .with_context(|| format!("invalid source {:?}", a.source))?;
    if src_ref.digest().is_some() {
        bail!(
            "{}: sync takes a repository or a tag, not a digest",
            a.source
        );
    }
    let dest_repo = destination_repo(&a.destination, &src_ref, a.scoped);
    let config = Config::load()?;
    let trust = a.sides.trust(&config)?;
    trust.precheck(&ImageName::Docker(src_ref.clone()))?;
    let src_registry = Arc::new(config.registry(&src_ref, &a.sides.source())?);
    let target = target_for(&a, &config, &dest_repo)?;
    let progress = a.sides.progress();
    let options = copy_options(&a);
    let src_repo = src_ref.path().to_string();
    let target = Arc::new(target);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let tags = match src_ref.tag() {
            Some(t) => vec![t.to_string()],
            None => src_registry.tags(&src_repo).await?,
        };
        let jobs = tags
            .into_iter()
            .map(|reference| Job {
                src: src_registry.clone(),
                repo: src_repo.clone(),
                reference,
                target: target.clone(),
            })
            .collect();
        run_jobs(jobs, &a, &options, &progress, &trust).await
    })
}

/// One image to sync: where it is, and where it goes.
struct Job {
    src: Arc<berth_remote::Registry>,
    repo: String,
    /// Tag (or digest) in the source, and under it in the destination.
    reference: String,
    target: Arc<Target>,
}

/// Runs `jobs`, `--parallel-images` at a time; the summary line on stderr.
async fn run_jobs(
    jobs: Vec<Job>,
    a: &SyncArgs,
    options: &CopyOptions,
    progress: &Progress,
    trust: &Trust,
) -> anyhow::Result<()> {
    let signed = &SignedCopy {
        trust,
        remove_signatures: a.remove_signatures,
        sign: &a.sign,
    };
    let (copied, skipped, failed) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    let one = |job: Job| {
        let (copied, skipped, failed) = (&copied, &skipped, &failed);
        let src_name = berth_image::reference::join(
            &format!("{}/{}", job.src.host(), job.repo),
            &job.reference,
        );
        let dst_name = job.target.name(&job.reference);
        async move {
            let result: anyhow::Result<()> = async {
                let have = job
                    .src
                    .manifest_digest(&job.repo, &job.reference)
                    .await?
                    .with_context(|| format!("{src_name} disappeared"))?;
                if job.target.digest(&job.reference).await? == Some(have) {
                    progress.line(&format!(
                        "Skipping {src_name}: {dst_name} is the same image"
                    ));
                    skipped.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                if a.dry_run {
                    progress.line(&format!("Would copy {src_name} to {dst_name}"));
                    return Ok(());
                }
                progress.line(&format!("Copying {src_name} to {dst_name}"));
                let dst = job.target.place(&job.reference);
                let dst_image = job.target.image_name(&job.reference)?;
                let src_image = ImageName::parse(&format!("docker://{src_name}"))?;
                let src = Place::Registry {
                    registry: job.src,
                    repo: job.repo,
                    reference: job.reference,
                };
                signed
                    .copy(
                        &src_image,
                        &src,
                        &dst_image,
                        &dst,
                        options,
                        progress.clone(),
                    )
                    .await?;
                copied.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            .await;
            result.map_err(|e| {
                failed.fetch_add(1, Ordering::Relaxed);
                e.context(format!("syncing {src_name}"))
            })
        }
    };
    let mut results = stream::iter(jobs)
        .map(one)
        .buffer_unordered(a.parallel_images.max(1));
    let mut first_error = None;
    while let Some(r) = results.next().await {
        if let Err(e) = r {
            if !a.keep_going {
                return Err(e);
            }
            eprintln!("berth: {e:#}");
            first_error.get_or_insert(e);
        }
    }
    drop(results);
    eprintln!(
        "{} images copied, {} already there, {} failed",
        copied.load(Ordering::Relaxed),
        skipped.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `--src dir`: the one image in folder SOURCE, named after the folder (`NAME[:TAG]`),
/// to `DEST/NAME:TAG`.
fn run_from_dir(a: SyncArgs) -> anyhow::Result<()> {
    let folder = PathBuf::from(&a.source);
    let base = folder
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{}: no folder name to name the image by", a.source))?;
    let (name, tag) = base.split_once(':').unwrap_or((base, "latest"));
    let config = Config::load()?;
    let src_name = ImageName::Dir(folder.clone());
    let trust = a.sides.trust(&config)?;
    trust.precheck(&src_name)?;
    let signed = SignedCopy {
        trust: &trust,
        remove_signatures: a.remove_signatures,
        sign: &a.sign,
    };
    let dest = format!("{}/{name}", a.destination.trim_end_matches('/'));
    let target = target_for(&a, &config, &dest)?;
    let options = copy_options(&a);
    let progress = a.sides.progress();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let have = tokio::fs::read(folder.join("manifest.json"))
                .await
                .map(|b| berth_image::Digest::sha256_of(&b))
                .with_context(|| format!("{}: not a dir: image", folder.display()))?;
            let dst_name = target.name(tag);
            if target.digest(tag).await? == Some(have) {
                eprintln!("0 images copied, 1 already there, 0 failed");
                progress.line(&format!(
                    "Skipping {src_name}: {dst_name} is the same image"
                ));
                return Ok(());
            }
            if a.dry_run {
                progress.line(&format!("Would copy {src_name} to {dst_name}"));
                return Ok(());
            }
            let src = Place::Dir(berth_transport::dir::DirImage::new(folder.clone()));
            let dst_image = target.image_name(tag)?;
            signed
                .copy(
                    &src_name,
                    &src,
                    &dst_image,
                    &target.place(tag),
                    &options,
                    progress.clone(),
                )
                .await
                .with_context(|| format!("syncing {src_name} to {dst_name}"))?;
            eprintln!("1 images copied, 0 already there, 0 failed");
            Ok(())
        })
}

/// One registry of a `--src yaml` file (skopeo-sync(1)).
#[derive(serde::Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct YamlRegistry {
    /// Repository -> tags or digests (none: every tag).
    #[serde(default)]
    images: std::collections::BTreeMap<String, Vec<String>>,
    /// Repository -> a regular expression the tags must match.
    #[serde(default, rename = "images-by-tag-regex")]
    images_by_tag_regex: std::collections::BTreeMap<String, String>,
    credentials: Option<YamlCredentials>,
    #[serde(rename = "tls-verify")]
    tls_verify: Option<bool>,
    #[serde(rename = "cert-dir")]
    cert_dir: Option<PathBuf>,
}

#[derive(serde::Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct YamlCredentials {
    username: String,
    password: String,
}

/// `--src yaml`: every image the file lists, each to `DEST/<repository's last
/// component>` (or scoped) under its tag.
fn run_from_yaml(a: SyncArgs) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(&a.source).with_context(|| format!("reading {}", a.source))?;
    let file: std::collections::BTreeMap<String, YamlRegistry> = serde_saphyr::from_str(&text)
        .with_context(|| format!("{}: not a skopeo sync file", a.source))?;
    let config = Config::load()?;
    let trust = a.sides.trust(&config)?;
    let options = copy_options(&a);
    let progress = a.sides.progress();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let mut jobs = Vec::new();
            let mut targets: std::collections::HashMap<String, Arc<Target>> = Default::default();
            for (host, reg) in &file {
                let mut flags = a.sides.source();
                if let Some(c) = &reg.credentials {
                    flags.creds = Some(format!("{}:{}", c.username, c.password));
                }
                if let Some(v) = reg.tls_verify {
                    flags.tls_verify = Some(v);
                }
                if reg.cert_dir.is_some() {
                    flags.cert_dir = reg.cert_dir.clone();
                }
                let mut wanted: Vec<(String, Vec<String>)> = Vec::new();
                for (repo, refs) in &reg.images {
                    wanted.push((repo.clone(), refs.clone()));
                }
                let mut regexes = Vec::new();
                for (repo, pattern) in &reg.images_by_tag_regex {
                    let re = regex::Regex::new(pattern).with_context(|| {
                        format!("{}: bad tag regex for {host}/{repo}", a.source)
                    })?;
                    regexes.push((repo.clone(), re));
                }
                let any = format!(
                    "{host}/{}",
                    wanted
                        .first()
                        .map(|w| w.0.as_str())
                        .or(regexes.first().map(|r| r.0.as_str()))
                        .unwrap_or("x")
                );
                let any_ref: ImageReference = any
                    .parse()
                    .with_context(|| format!("{}: invalid registry {host:?}", a.source))?;
                trust.precheck(&ImageName::Docker(any_ref.clone()))?;
                let src = Arc::new(config.registry(&any_ref, &flags)?);
                for (repo, re) in regexes {
                    let tags = src.tags(&repo).await?;
                    wanted.push((repo, tags.into_iter().filter(|t| re.is_match(t)).collect()));
                }
                for (repo, mut refs) in wanted {
                    if refs.is_empty() && !reg.images_by_tag_regex.contains_key(&repo) {
                        refs = src.tags(&repo).await?;
                    }
                    let src_ref: ImageReference = format!("{host}/{repo}")
                        .parse()
                        .with_context(|| format!("{}: invalid image {host}/{repo}", a.source))?;
                    let dest_repo = destination_repo(&a.destination, &src_ref, a.scoped);
                    let target = match targets.get(&dest_repo) {
                        Some(t) => t.clone(),
                        None => {
                            let t = Arc::new(target_for(&a, &config, &dest_repo)?);
                            targets.insert(dest_repo.clone(), t.clone());
                            t
                        }
                    };
                    for reference in refs {
                        jobs.push(Job {
                            src: src.clone(),
                            repo: repo.clone(),
                            reference,
                            target: target.clone(),
                        });
                    }
                }
            }
            run_jobs(jobs, &a, &options, &progress, &trust).await
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_files_as_skopeo_reads_them() {
        let text = "registry.example.com:\n  images:\n    busybox: []\n    redis: [\"1.0\", \"2.0\"]\n  images-by-tag-regex:\n    nginx: ^1\\.13\\.[12]-alpine-perl$\n  credentials:\n    username: john\n    password: secret\n  tls-verify: false\n";
        let f: std::collections::BTreeMap<String, YamlRegistry> =
            serde_saphyr::from_str(text).unwrap();
        let r = &f["registry.example.com"];
        assert_eq!(r.images["redis"], ["1.0", "2.0"]);
        assert!(r.images["busybox"].is_empty());
        assert!(regex::Regex::new(&r.images_by_tag_regex["nginx"])
            .unwrap()
            .is_match("1.13.2-alpine-perl"));
        assert_eq!(r.tls_verify, Some(false));
        assert_eq!(r.credentials.as_ref().unwrap().username, "john");
        let bad = "registry.example.com:\n  imagez: {}\n";
        assert!(
            serde_saphyr::from_str::<std::collections::BTreeMap<String, YamlRegistry>>(bad)
                .is_err()
        );
    }

    #[test]
    fn destination_names() {
        let src: ImageReference = "registry.example:5000/org/app".parse().unwrap();
        assert_eq!(
            destination_repo("mirror.local/ns/", &src, false),
            "mirror.local/ns/app"
        );
        assert_eq!(
            destination_repo("mirror.local", &src, true),
            "mirror.local/registry.example-5000/org/app"
        );
    }
}
