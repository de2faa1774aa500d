//! Software bills of materials for an image: what [`berth_inventory`] found inside it
//! (its OS and installed packages), written as SPDX 2.3 JSON ([`spdx`]) or CycloneDX 1.5
//! JSON ([`cyclonedx`]).
//!
//! Documents are built as `serde_json::Value`s by hand rather than through an SBOM
//! crate: the two formats need a few dozen fields between them, and writing them here
//! keeps every field's choice visible and checked by the tests against the formats'
//! published JSON schemas (tests/schemas/). No I/O.
//!
//! A document is a function of its inputs: the same inventory, subject and berth
//! version give the same bytes (the SPDX namespace and the CycloneDX serial number
//! are derived from the content), so an SBOM attached twice to an image is one
//! artifact, and the registry can serve one without storing it.

mod common;
mod cyclonedx_doc;
mod license;
mod spdx_doc;

use std::fmt;
use std::str::FromStr;

use berth_inventory::Inventory;

pub use cyclonedx_doc::cyclonedx;
pub use spdx_doc::spdx;

/// The image a document describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SbomSubject {
    /// How the image is named (`registry.example/org/app`, with or without a tag).
    pub name: String,
    /// The digest of its manifest (`sha256:…`).
    pub digest: String,
    /// When the document is dated (RFC 3339). Passing the image's own creation time
    /// makes the document reproducible; `None` (or a date that does not parse) dates
    /// it now.
    pub created: Option<String>,
}

/// The SBOM formats berth writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// SPDX 2.3 JSON.
    Spdx,
    /// CycloneDX 1.5 JSON.
    CycloneDx,
}

/// The media type (and OCI `artifactType`) of an SPDX JSON document.
pub const SPDX_MEDIA_TYPE: &str = "application/spdx+json";
/// The media type (and OCI `artifactType`) of a CycloneDX JSON document.
pub const CYCLONEDX_MEDIA_TYPE: &str = "application/vnd.cyclonedx+json";

impl Format {
    /// The document's media type, also the `artifactType` of an attached SBOM.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Spdx => SPDX_MEDIA_TYPE,
            Format::CycloneDx => CYCLONEDX_MEDIA_TYPE,
        }
    }

    /// The document for `inv`, the inventory of `image`.
    pub fn document(self, inv: &Inventory, image: &SbomSubject) -> serde_json::Value {
        match self {
            Format::Spdx => spdx(inv, image),
            Format::CycloneDx => cyclonedx(inv, image),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Spdx => "spdx",
            Format::CycloneDx => "cyclonedx",
        })
    }
}

/// A format name that is not one berth writes.
#[derive(Debug, thiserror::Error)]
#[error("unknown SBOM format {0:?}: expected spdx or cyclonedx")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    /// `spdx` (also `spdx-json`) or `cyclonedx` (also `cyclonedx-json`, `cdx`).
    fn from_str(s: &str) -> Result<Format, UnknownFormat> {
        match s.to_ascii_lowercase().as_str() {
            "spdx" | "spdx-json" => Ok(Format::Spdx),
            "cyclonedx" | "cyclonedx-json" | "cdx" => Ok(Format::CycloneDx),
            _ => Err(UnknownFormat(s.to_string())),
        }
    }
}
