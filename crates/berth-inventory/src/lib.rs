//! What is inside an image.
//!
//! A layer is read once, as a stream, and only the files that say what is installed
//! are kept ([`model::LayerArtifacts`], keyed by the layer's digest by whoever stores
//! it). An image's inventory ([`model::Inventory`]) is then computed from its layers'
//! artifacts without reading a layer again: the newest copy of each database wins,
//! whiteouts and opaque folders hide what is below them.

mod apk;
mod containerfile;
mod dpkg;
mod error;
mod layer;
pub mod model;
mod osrelease;
mod paths;
mod purl;
pub mod rpm;
mod squash;

pub use containerfile::instruction;
pub use error::InventoryError;
pub use layer::{analyze_layer, analyze_layer_with, is_layer_media_type};
pub use model::{
    Containerfile, ContainerfileStep, HistoryEntry, ImageHistory, Inventory, LayerArtifacts,
    LayerRef, OsInfo, Package, PackageKind,
};
pub use osrelease::parse_os_release;
pub use purl::purl;
pub use squash::{base_image, squash, unreadable_files};
