//! What an image signature is and whether it is valid, as containers/image (skopeo,
//! podman) decides it: the two payload formats ([`payload`]), OpenPGP simple signing
//! with a key file ([`openpgp`], [`simple`]) or the user's GnuPG ([`gpg`], which asks
//! gpg-agent directly through [`agent`] when it can), key-based sigstore signatures
//! ([`sigstore`]), and `policy.json` evaluation ([`policy`], [`identity`]). No HTTP and
//! no registries: callers fetch signatures and hand over bytes; the only files read
//! are key files and GnuPG's public keyring.

pub mod agent;
pub mod gpg;
pub mod identity;
mod json;
pub mod openpgp;
pub mod payload;
pub mod policy;
pub mod signature;
pub mod sigstore;
pub mod simple;

pub use gpg::{sign_with_gpg, GpgError};
pub use openpgp::{sign_with_key, verify, Keyring, Verified, VerifyError};
pub use payload::{Format, Payload, PayloadError};
pub use policy::{evaluate, Image, ImageSignature};
pub use simple::{standalone_verify, verify_simple, ManifestCheck, SimpleError, SimpleSignature};
