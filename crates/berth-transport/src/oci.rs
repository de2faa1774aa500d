//! An OCI image layout folder (`oci:PATH[:REF]`): `oci-layout`, `index.json`, and
//! `blobs/<alg>/<hex>`, as the image spec and skopeo lay it out. An image is found by
//! its `org.opencontainers.image.ref.name` annotation in `index.json`.
//!
//! Blobs are written atomically (temporary file in the layout, fsync, rename) after
//! their digest is checked, so a failed copy leaves no half blob; `index.json` is
//! rewritten the same way, last, so the image appears only when it is whole.

use std::path::PathBuf;

use berth_image::{Digest, Manifest};
use berth_remote::ByteStream;
use serde_json::{json, Value};

use crate::files::{self, io, open_blob, read_manifest_file, write_atomic};
use crate::TransportError;

/// The annotation naming an image in a layout.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

pub struct Layout {
    path: PathBuf,
    reference: Option<String>,
}

impl Layout {
    pub fn new(path: PathBuf, reference: Option<String>) -> Layout {
        Layout { path, reference }
    }

    fn blob_path(&self, d: &Digest) -> PathBuf {
        self.path
            .join("blobs")
            .join(d.algorithm().as_str())
            .join(d.hex())
    }

    fn read_index(&self) -> Result<Value, TransportError> {
        let p = self.path.join("index.json");
        // Larger than a manifest's bound: a layout may hold thousands of images.
        let bytes = files::read_small(&p, 16 * files::MAX_SMALL_FILE).map_err(io(&p, "reading"))?;
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| TransportError::Corrupt(format!("{}: {e}", p.display())))?;
        if !v.get("manifests").is_some_and(Value::is_array) {
            return Err(TransportError::Corrupt(format!(
                "{}: no manifests list",
                p.display()
            )));
        }
        Ok(v)
    }

    /// The descriptor of the named image: by reference, else the only one.
    fn find(&self) -> Result<(Digest, String), TransportError> {
        let index = self.read_index()?;
        let entries = index["manifests"].as_array().cloned().unwrap_or_default();
        let chosen = match &self.reference {
            Some(r) => entries
                .iter()
                .find(|e| e["annotations"][REF_NAME].as_str() == Some(r.as_str()))
                .ok_or_else(|| {
                    TransportError::NotFound(format!("{}: no image {r:?}", self.path.display()))
                })?,
            None if entries.len() == 1 => &entries[0],
            None => {
                return Err(TransportError::Name(format!(
                    "{}: holds {} images; name one with oci:PATH:REF",
                    self.path.display(),
                    entries.len()
                )))
            }
        };
        let digest: Digest = chosen["digest"]
            .as_str()
            .unwrap_or_default()
            .parse()
            .map_err(|e| {
                TransportError::Corrupt(format!("{}/index.json: {e}", self.path.display()))
            })?;
        let media_type = chosen["mediaType"].as_str().unwrap_or_default().to_string();
        Ok((digest, media_type))
    }

    /// The named image's manifest, or with `digest` one of its children.
    pub async fn manifest(
        &self,
        digest: Option<&Digest>,
    ) -> Result<(Vec<u8>, Option<String>, Digest), TransportError> {
        let (d, media_type) = match digest {
            Some(d) => (d.clone(), None),
            None => {
                let (d, mt) = self.find()?;
                (d, Some(mt))
            }
        };
        let p = self.blob_path(&d);
        let bytes = read_manifest_file(&p).await.map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                TransportError::NotFound(format!("manifest {d} in {}", self.path.display()))
            }
            _ => TransportError::Io {
                context: format!("reading {}", p.display()),
                source: e,
            },
        })?;
        let actual = Digest::of(d.algorithm(), &bytes);
        if actual != d {
            return Err(TransportError::Corrupt(format!(
                "{}: content has digest {actual}",
                p.display()
            )));
        }
        Ok((bytes, media_type, d))
    }

    pub async fn blob(&self, d: &Digest) -> Result<ByteStream, TransportError> {
        let p = self.blob_path(d);
        let f = open_blob(&p).await.map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                TransportError::NotFound(format!("blob {d} in {}", self.path.display()))
            }
            _ => TransportError::Io {
                context: format!("opening {}", p.display()),
                source: e,
            },
        })?;
        Ok(Box::pin(tokio_util::io::ReaderStream::with_capacity(
            f,
            1 << 20,
        )))
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// Writes `stream` as blob `d` (see [`files::write_blob`]).
    pub async fn put_blob(&self, d: &Digest, stream: ByteStream) -> Result<(), TransportError> {
        files::write_blob(&self.blob_path(d), d, stream).await
    }

    /// Writes a blob whose digest is learnt as it is written.
    pub async fn put_new_blob(&self, stream: ByteStream) -> Result<(Digest, u64), TransportError> {
        let blobs = self.path.join("blobs/sha256");
        files::write_new_blob(&blobs, |d| blobs.join(d.hex()), stream).await
    }

    /// Writes a manifest (as a blob) and, when `top_level`, names it in `index.json`.
    pub async fn put_manifest(
        &self,
        bytes: &[u8],
        media_type: &str,
        top_level: bool,
    ) -> Result<Digest, TransportError> {
        let d = Digest::sha256_of(bytes);
        self.put_blob(&d, files::once(bytes)).await?;
        if top_level {
            self.name_in_index(&d, media_type, bytes.len() as u64)?;
        }
        Ok(d)
    }

    /// Adds (or replaces, by reference) the entry of the copied image in `index.json`,
    /// and writes `oci-layout`.
    fn name_in_index(&self, d: &Digest, media_type: &str, size: u64) -> Result<(), TransportError> {
        let layout = self.path.join("oci-layout");
        write_atomic(&layout, br#"{"imageLayoutVersion": "1.0.0"}"#)?;
        let mut index = match self.read_index() {
            Ok(v) => v,
            Err(TransportError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                json!({"schemaVersion": 2, "manifests": []})
            }
            Err(e) => return Err(e),
        };
        let mut entry = json!({"mediaType": media_type, "digest": d.to_string(), "size": size});
        if let Some(r) = &self.reference {
            entry["annotations"] = json!({ REF_NAME: r });
        }
        let entries = index["manifests"]
            .as_array_mut()
            .ok_or_else(|| TransportError::Corrupt("index.json".into()))?;
        match &self.reference {
            Some(r) => entries.retain(|e| e["annotations"][REF_NAME].as_str() != Some(r.as_str())),
            None => entries.retain(|e| e["annotations"][REF_NAME].is_string()),
        }
        entries.push(entry);
        let bytes =
            serde_json::to_vec(&index).map_err(|e| TransportError::Corrupt(e.to_string()))?;
        write_atomic(&self.path.join("index.json"), &bytes)
    }

    /// A manifest's media type from its own bytes, for a child found by digest.
    pub fn media_type_of(bytes: &[u8]) -> Option<String> {
        Manifest::parse(None, bytes).ok().map(|m| m.media_type)
    }
}
