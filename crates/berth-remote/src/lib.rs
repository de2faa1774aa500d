//! A registry as a place images live: the client side of the OCI Distribution API.
//!
//! - [`challenge`]: `WWW-Authenticate` parsing.
//! - [`Registry`]: one registry host. It finds the scheme (https, or http when TLS
//!   verification is off, as containers/image does), learns the login scheme from a
//!   ping of `/v2/`, and then sends each request with what it needs: Basic credentials,
//!   or a bearer token for the request's scope, fetched from the realm (with the
//!   password, a refresh token, or anonymously) and cached until it expires. A `401`
//!   with `insufficient_scope` gets one more token for the named scope.
//! - Requests that can be repeated are retried on connection errors, timeouts, `5xx`
//!   and `429` (honouring `Retry-After`), with exponential backoff; `4xx` answers are
//!   final.
//! - Content read is verified: a manifest or blob fetched by digest must hash to it.
//! - Signatures (`signatures`): the registry signature extension and lookaside
//!   reads over HTTP.
//! - [`Registry::referrers`]: the OCI 1.1 referrers API, every page.
//! - [`Registry::search`]: `podman search`'s lookup (`/v1/search`, else the catalog).

mod blobs;
pub mod challenge;
mod error;
mod referrers;
mod registry;
mod search;
mod shared;
mod signatures;
mod tls;

pub use blobs::ByteStream;
pub use error::RemoteError;
pub use referrers::Referrer;
pub use registry::{Credentials, Options, RawManifest, Registry, MANIFEST_ACCEPT};
pub use search::SearchHit;
pub use signatures::{ExtensionSignature, MAX_SIGNATURE_BYTES};
