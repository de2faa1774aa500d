//! `berth push IMAGE [DESTINATION]`: a stored image to a registry (or any transport),
//! as it was pulled: layers go compressed as stored, so digests are kept.

use std::path::PathBuf;

use anyhow::Context;
use berth_image::convert::Format;
use berth_transport::copy::CopyOptions;
use berth_transport::ImageName;
use clap::Args;

use super::{image_place, open_store, runtime};
use crate::client::signed::{SignFlags, SignedCopy, Trust};
use crate::client::{Config, RegistryFlags};

#[derive(Args, Debug)]
pub struct PushArgs {
    /// Manifest format to push: oci or v2s2 (Docker) [default: as stored]
    #[arg(long, short = 'f', value_name = "FORMAT", value_parser = ["oci", "v2s2"])]
    format: Option<String>,
    /// Write the digest of the pushed manifest to this file
    #[arg(long, value_name = "PATH")]
    digestfile: Option<PathBuf>,
    /// No progress
    #[arg(long, short = 'q')]
    quiet: bool,
    #[command(flatten)]
    registry: RegistryFlags,
    /// Do not copy the image's signatures
    #[arg(long)]
    remove_signatures: bool,
    #[command(flatten)]
    sign: SignFlags,
    /// The image: name, ID or ID prefix
    image: String,
    /// Where to: a registry name (docker:// implied) or any transport [default: the
    /// image's name]
    destination: Option<String>,
}

pub fn run(a: PushArgs) -> anyhow::Result<()> {
    let store = open_store()?;
    let (img, matched) = store.find_named(&a.image)?;
    let destination = match (
        &a.destination,
        matched.or_else(|| img.names.first().cloned()),
    ) {
        (Some(d), _) => d.clone(),
        (None, Some(name)) => name,
        (None, None) => anyhow::bail!(
            "{}: the image has no name; give a destination (berth push IMAGE REGISTRY/NAME:TAG)",
            a.image
        ),
    };
    let dest_name = match ImageName::has_transport(&destination) {
        true => ImageName::parse(&destination)?,
        false => ImageName::parse(&format!("docker://{destination}"))?,
    };
    let config = Config::load()?;
    let options = CopyOptions {
        all: false,
        platform: berth_image::Platform::this_machine(),
        parallel: 6,
        format: match a.format.as_deref() {
            Some("oci") => Some(Format::Oci),
            Some(_) => Some(Format::V2s2),
            None => None,
        },
        preserve_digests: false,
        compress: None,
    };
    let src = image_place(&store, &img);
    // The local store holds what was already let in: no policy to read. podman's push
    // does the same (libimage's `PolicyAllowStorage`), though its save and skopeo's
    // copy from containers-storage do judge the stored image (berth's save and copy
    // from `local:` too).
    let trust = Trust::load(&config, None, true)?;
    let signed = SignedCopy {
        trust: &trust,
        remove_signatures: a.remove_signatures,
        sign: &a.sign,
    };
    let src_name = ImageName::Local(
        berth_image::ImageReference::parse_local(&a.image)
            .or_else(|_| "localhost/unnamed".parse())?,
    );
    let digest = runtime()?.block_on(async {
        let dst = crate::client::copy::open(&config, &dest_name, &a.registry)?;
        let progress = crate::client::progress::reporter(a.quiet);
        let digest = signed
            .copy(&src_name, &src, &dest_name, &dst, &options, progress)
            .await
            .map_err(|e| login_hint(e, &dest_name))?;
        dst.finish().await?;
        anyhow::Ok(digest)
    })?;
    if let Some(path) = &a.digestfile {
        std::fs::write(path, digest.to_string())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// A registry that wants credentials: say how to give them.
fn login_hint(e: anyhow::Error, dest: &ImageName) -> anyhow::Error {
    let unauthorized = e.chain().any(|c| {
        matches!(
            c.downcast_ref::<berth_remote::RemoteError>(),
            Some(berth_remote::RemoteError::Unauthorized { .. })
        ) || matches!(
            c.downcast_ref::<berth_transport::TransportError>(),
            Some(berth_transport::TransportError::Remote(
                berth_remote::RemoteError::Unauthorized { .. }
            ))
        )
    });
    match (unauthorized, dest) {
        (true, ImageName::Docker(r)) => e.context(format!(
            "pushing to {}: authentication required; run `berth login {}` first",
            r.name(),
            r.domain()
        )),
        _ => e.context(format!("pushing to {dest}")),
    }
}
