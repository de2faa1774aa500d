//! The image model of berth: what a container image *is*, apart from where it lives.
//!
//! Nothing in this crate does I/O. It names things (repository names, tags, digests,
//! image references as users type them), says which media types exist, and reads
//! manifests and indexes out of raw bytes.
//! Digests are always computed over raw bytes: a manifest is stored and served exactly
//! as it was pushed, and the parsed view is only used to validate and to index it.

pub mod convert;
pub mod diff_ids;
pub mod digest;
pub mod inspect;
pub mod manifest;
pub mod media_type;
pub mod name;
mod oci_config;
pub mod reference;

pub use digest::{Algorithm, Digest, DigestError, Hasher};
pub use manifest::{Descriptor, Manifest, ManifestError, ManifestKind, Platform};
pub use name::{NameError, Reference, RepositoryName, Tag};
pub use reference::{ImageReference, ReferenceError};
