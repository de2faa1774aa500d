//! What an image signature is and whether it is valid, as containers/image (skopeo,
//! podman) decides it: the two payload formats, OpenPGP simple signing (with a key file,
//! or the user's `gpg`), key-based sigstore signatures, and `policy.json` evaluation.
//! No HTTP and no registries: callers fetch signatures and hand over bytes.

mod json;
pub mod openpgp;
pub mod payload;

pub use openpgp::{sign_with_key, verify, Keyring, Verified, VerifyError};
pub use payload::{Format, Payload, PayloadError};
pub mod gpg;
pub mod simple;

pub use gpg::{sign_with_gpg, GpgError};
pub use simple::{standalone_verify, verify_simple, ManifestCheck, SimpleError, SimpleSignature};
pub mod identity;
pub mod policy;
pub mod sigstore;
