//! The configuration files of the containers ecosystem, read and written exactly as
//! containers/image (the library under skopeo and podman) does, so that `berth login`,
//! `berth copy` and friends share credentials and settings with those tools instead of
//! keeping their own:
//!
//! - [`auth`]: `auth.json` and docker's `config.json` / `.dockercfg` — where
//!   credentials are looked for, in which order, and how `login`/`logout` rewrite them;
//!   plus the `docker-credential-*` helper protocol.
//! - [`registries`]: `registries.conf` and its drop-ins — mirrors, insecure and blocked
//!   registries, prefix rewrites, and short-name resolution.
//! - [`policy`]: `policy.json` — which images may be pulled, per transport and scope.
//! - [`registries_d`]: `registries.d/*.yaml` — where signatures are kept (lookaside,
//!   sigstore attachments), per scope.
//!
//! The crate does no network I/O. Every place it looks at on disk comes from an [`Env`],
//! so tests (and chroots) can point it anywhere.

mod atomic;
pub mod auth;
pub mod env;
pub mod json;
pub mod policy;
pub mod registries;
pub mod registries_d;

pub use auth::{AuthError, AuthFiles, Credentials, Found, Stored};
pub use env::Env;
pub use policy::{Decision, Policy, PolicyError, Requirement};
pub use registries::{
    PullSource, Registries, RegistriesError, Registry, Resolution, ResolvedBy, ShortNameMode,
};
pub use registries_d::{Lookaside, RegistriesD, RegistriesDError};
