//! `berth build`: podman build's flags over berth-build; step lines on stderr, the
//! image ID on stdout.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use berth_build::{Bases, BuildOptions};
use berth_image::Platform;
use berth_transport::local::{Image, LocalStore};
use clap::Args;

use super::local::pull::{ensure_with, PullPolicy};
use super::local::{open_store, qualify};
use super::RegistryFlags;

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// The Containerfile [default: Containerfile, else Dockerfile, in the context]
    #[arg(long, short = 'f', value_name = "FILE")]
    file: Option<PathBuf>,
    /// Name for the image; repeatable
    #[arg(long, short = 't', value_name = "NAME")]
    tag: Vec<String>,
    /// A build argument, K=V; repeatable
    #[arg(long, value_name = "K=V")]
    build_arg: Vec<String>,
    /// A label of the image, K=V; repeatable (a LABEL step each, after the last
    /// instruction, as podman's build adds them)
    #[arg(long, value_name = "K=V")]
    label: Vec<String>,
    /// Build up to this stage
    #[arg(long, value_name = "STAGE")]
    target: Option<String>,
    /// Image format: oci or docker (docker keeps HEALTHCHECK, SHELL, ONBUILD)
    #[arg(long, default_value = "oci", value_parser = ["oci", "docker"])]
    format: String,
    /// Run every step, ignoring the cache
    #[arg(long)]
    no_cache: bool,
    /// Use the cache of steps (false: run every step, as --no-cache; the steps are
    /// still recorded)
    #[arg(long, value_name = "BOOL", default_value_t = true, default_missing_value = "true", num_args = 0..=1, require_equals = true, action = clap::ArgAction::Set)]
    layers: bool,
    /// When to pull FROM images: always (also --pull alone, true), missing (also
    /// false), never, newer [default: missing]
    #[arg(long, value_name = "POLICY", default_missing_value = "always", num_args = 0..=1, require_equals = true)]
    pull: Option<String>,
    /// Require HTTPS and verify certificates when pulling FROM images (false also
    /// allows plain HTTP) [default: true, or registries.conf's insecure]
    #[arg(long, value_name = "BOOL", default_missing_value = "true", num_args = 0..=1, require_equals = true, action = clap::ArgAction::Set)]
    tls_verify: Option<bool>,
    /// Trust policy for pulling FROM images [default: policy.json's usual place]
    #[arg(long, value_name = "PATH")]
    signature_policy: Option<PathBuf>,
    /// Credentials file for pulling FROM images
    #[arg(long, value_name = "PATH")]
    authfile: Option<PathBuf>,
    /// USERNAME[:PASSWORD] for pulling FROM images
    #[arg(long, value_name = "USERNAME[:PASSWORD]")]
    creds: Option<String>,
    /// TLS material for the registries of FROM images (*.crt, NAME.cert + NAME.key)
    #[arg(long, value_name = "DIR")]
    cert_dir: Option<PathBuf>,
    /// OS/ARCH[/VARIANT] of the image (and of FROM images)
    #[arg(long, value_name = "OS/ARCH")]
    platform: Option<String>,
    /// OCI runtime for RUN: a name on PATH or a path [default: crun, else runc]
    #[arg(long, value_name = "RUNTIME")]
    runtime: Option<String>,
    /// Fixed created time and file times (seconds since the epoch): reproducible
    #[arg(long, value_name = "SECONDS")]
    timestamp: Option<i64>,
    /// Print nothing but the image ID
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Write the built image's ID (`sha256:…`) to this file, as podman's build does
    #[arg(long, value_name = "FILE")]
    iidfile: Option<PathBuf>,
    /// A secret for `RUN --mount=type=secret,id=ID`: id=ID,src=FILE; repeatable (never
    /// stored in the image)
    #[arg(long, value_name = "id=ID,src=FILE")]
    secret: Vec<String>,
    /// The build context
    #[arg(default_value = ".")]
    context: PathBuf,
}

/// FROM images: from the store or pulled, as `--pull` says, with the registry flags.
struct Pulling {
    policy: PullPolicy,
    flags: RegistryFlags,
}

impl Bases for Pulling {
    fn image(
        &self,
        store: &Arc<LocalStore>,
        name: &str,
        platform: &Platform,
    ) -> Result<Image, String> {
        ensure_with(store, name, platform, self.policy, &self.flags).map_err(|e| format!("{e:#}"))
    }
}

/// `--secret id=ID,src=FILE` (`type=file` allowed), as buildah reads it: the file must
/// be readable now.
fn secret(spec: &str) -> anyhow::Result<(String, PathBuf)> {
    let (mut id, mut src) = (None, None);
    for field in spec.split(',') {
        match field.split_once('=') {
            Some(("id", v)) if !v.is_empty() => id = Some(v.to_string()),
            Some(("src" | "source", v)) if !v.is_empty() => src = Some(PathBuf::from(v)),
            Some(("type", "file")) => {}
            _ => bail!("--secret {spec}: use id=ID,src=FILE"),
        }
    }
    let (Some(id), Some(src)) = (id, src) else {
        bail!("--secret {spec}: use id=ID,src=FILE");
    };
    if id.contains('/') {
        bail!("--secret {spec}: an id is a name, without '/'");
    }
    std::fs::File::open(&src).with_context(|| format!("--secret {spec}: {}", src.display()))?;
    Ok((id, src))
}

pub fn run(a: BuildArgs) -> anyhow::Result<()> {
    if !a.context.is_dir() {
        bail!("build context {}: not a folder", a.context.display());
    }
    let build_args = a
        .build_arg
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => std::env::var(kv)
                .map(|v| (kv.clone(), v))
                .with_context(|| format!("--build-arg {kv}: give K=V")),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let secrets = a
        .secret
        .iter()
        .map(|s| secret(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let opts = BuildOptions {
        secrets,
        context: a.context.clone(),
        file: a.file.clone(),
        tags: a
            .tag
            .iter()
            .map(|t| qualify(t))
            .collect::<anyhow::Result<_>>()?,
        build_args,
        labels: a
            .label
            .iter()
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k.to_string(), v.to_string())
            })
            .collect(),
        target: a.target.clone(),
        docker_format: a.format == "docker",
        no_cache: a.no_cache || !a.layers,
        platform: a
            .platform
            .as_deref()
            .map(|p| super::local::pull::platform(Some(p)))
            .transpose()?,
        runtime: a.runtime.clone(),
        timestamp: a.timestamp,
        tar_limits: super::local::tar_limits()?,
    };
    let quiet = a.quiet;
    let mut log = |line: &str| {
        if !quiet {
            eprintln!("{line}");
        }
    };
    let bases = Pulling {
        policy: match a.pull.as_deref() {
            Some(p) => p.parse()?,
            None => PullPolicy::Missing,
        },
        flags: RegistryFlags {
            authfile: a.authfile.clone(),
            creds: a.creds.clone(),
            tls_verify: a.tls_verify,
            cert_dir: a.cert_dir.clone(),
            signature_policy: a.signature_policy.clone(),
            ..RegistryFlags::default()
        },
    };
    let built = berth_build::build(open_store()?, &opts, &bases, &mut log)?;
    if let Some(path) = &a.iidfile {
        std::fs::write(path, format!("sha256:{}", built.id.hex()))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    println!("{}", built.id.hex());
    Ok(())
}
