//! `berth build`: an image from a Containerfile, podman-build style (`--layers`):
//! every instruction a step with its history entry, RUN under the OCI runtime in a
//! root file system of the stage, COPY/ADD from the context (or another stage), and a
//! cache of steps keyed by the state before the step, the instruction and the content
//! it copies, so that a rebuild with nothing changed only re-reads the context.
//!
//! A stage's state is its config and its layers (`state`); the root file system is
//! made only when a step must run (a cache miss on RUN, COPY or ADD), from the layers
//! of the state at that point. Layers are packed straight into the local store;
//! intermediate states are cache entries, not images, so `berth images` shows the
//! images built and nothing else.

mod context;
mod mounts;
mod stage;
mod state;

use std::path::PathBuf;
use std::sync::Arc;

use berth_image::{Digest, Platform};
use berth_transport::local::{Image, LocalStore};

pub use stage::build;

/// What `berth build` takes.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The build context: COPY and ADD sources are read from here.
    pub context: PathBuf,
    /// The Containerfile [default: Containerfile, else Dockerfile, in the context].
    pub file: Option<PathBuf>,
    /// Names for the image (qualified `host/path:tag`); none leaves it untagged.
    pub tags: Vec<String>,
    /// `--build-arg K=V`.
    pub build_args: Vec<(String, String)>,
    /// Build up to this stage (name or index).
    pub target: Option<String>,
    /// Docker v2s2 (keeps HEALTHCHECK, SHELL, ONBUILD) instead of OCI.
    pub docker_format: bool,
    /// Run every step, ignoring the cache.
    pub no_cache: bool,
    pub platform: Option<Platform>,
    /// The OCI runtime for RUN (`--runtime`).
    pub runtime: Option<String>,
    /// Fixed `created` times and file mtimes (seconds since the epoch): reproducible
    /// images.
    pub timestamp: Option<i64>,
    /// `--label K=V`: labels of the image, set by LABEL steps after the last stage's
    /// instructions (as podman's build adds them).
    pub labels: Vec<(String, String)>,
    /// `--secret id=ID,src=FILE`: what `RUN --mount=type=secret,id=ID` reads, never
    /// stored in a layer or the cache key.
    pub secrets: Vec<(String, PathBuf)>,
    /// Bounds of each FROM image layer applied for a step (the binary reads
    /// `BERTH_TAR_MAX_*`).
    pub tar_limits: berth_rootfs::TarLimits,
}

/// Where FROM images come from: the store, or pulled by the caller.
pub trait Bases {
    /// The image named `name` for `platform`, pulled when the store lacks it.
    fn image(
        &self,
        store: &Arc<LocalStore>,
        name: &str,
        platform: &Platform,
    ) -> Result<Image, String>;
}

/// What a build made.
#[derive(Debug, Clone)]
pub struct Built {
    pub id: Digest,
    /// Steps taken from the cache, of all steps.
    pub cached: usize,
    pub steps: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// An instruction failed: `Containerfile:7: COPY: no such file: app.py`.
    #[error("{file}:{line}: {instruction}: {message}")]
    At {
        file: String,
        line: usize,
        instruction: String,
        message: String,
    },
    #[error(transparent)]
    Parse(#[from] berth_containerfile::ParseError),
    #[error("{0}")]
    Other(String),
}
