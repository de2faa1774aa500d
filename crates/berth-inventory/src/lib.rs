//! What is inside an image.
//!
//! A layer is read once, as a stream, and only the files that say what is installed
//! are kept ([`model::LayerArtifacts`], keyed by the layer's digest by whoever stores
//! it). An image's inventory ([`model::Inventory`]) is then computed from its layers'
//! artifacts without reading a layer again: the newest copy of each database wins,
//! whiteouts and opaque folders hide what is below them.

pub mod model;
pub mod rpm;

pub use model::{
    Containerfile, ContainerfileStep, Inventory, LayerArtifacts, OsInfo, Package, PackageKind,
};
