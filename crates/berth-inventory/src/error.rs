//! Why a layer could not be analyzed. Only faults of the layer as a whole are errors
//! here (its compression, its tar, an unsafe path); a single unreadable file inside it
//! is recorded in [`crate::LayerArtifacts::errors`] instead, so the rest still counts.

/// A layer that could not be analyzed.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The layer's media type is not a tar (plain, gzip or zstd).
    #[error("unsupported layer media type {0:?}")]
    UnknownMediaType(String),
    /// Reading or decompressing the layer failed (truncated stream, corrupt gzip).
    #[error("reading the layer: {0}")]
    Read(#[source] std::io::Error),
    /// The tar itself is malformed.
    #[error("reading the layer's tar: {0}")]
    Tar(#[source] std::io::Error),
    /// An entry's name leaves the root (`..`): the layer is refused as a whole, as
    /// applying it is.
    #[error("layer entry {0:?} escapes the root")]
    UnsafePath(String),
    /// The image config could not be read for its history.
    #[error("image config: {0}")]
    Config(String),
}
