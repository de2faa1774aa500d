//! The `dir:` transport, skopeo's plain folder: `version`, `manifest.json`, every blob
//! as a file named by its hex digest, and for an index each image's manifest as
//! `<hex>.manifest.json` (containers/image `directory/directory_transport.go`).

use std::path::PathBuf;

use berth_image::{Algorithm, Digest};
use berth_remote::ByteStream;

use crate::files::{self, open_blob, read_manifest_file, write_atomic};
use crate::TransportError;

const VERSION: &[u8] = b"Directory Transport Version: 1.1\n";

pub struct DirImage {
    path: PathBuf,
}

impl DirImage {
    pub fn new(path: PathBuf) -> DirImage {
        DirImage { path }
    }

    /// The folder.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The file of blob `d`; only sha256 blobs have a place in this format.
    fn blob_path(&self, d: &Digest) -> Result<PathBuf, TransportError> {
        if d.algorithm() != Algorithm::Sha256 {
            return Err(TransportError::Unsupported(format!(
                "dir: stores sha256 blobs only, not {d}"
            )));
        }
        Ok(self.path.join(d.hex()))
    }

    fn not_found(&self, what: &str) -> impl FnOnce(std::io::Error) -> TransportError {
        let (what, path) = (what.to_string(), self.path.display().to_string());
        move |e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                TransportError::NotFound(format!("{what} in dir:{path}"))
            }
            _ => TransportError::Io {
                context: format!("reading {what} in {path}"),
                source: e,
            },
        }
    }

    /// `manifest.json`, or with `digest` a child's `<hex>.manifest.json`, checked.
    pub async fn manifest(
        &self,
        digest: Option<&Digest>,
    ) -> Result<(Vec<u8>, Digest), TransportError> {
        let file = match digest {
            None => self.path.join("manifest.json"),
            Some(d) => self.path.join(format!("{}.manifest.json", d.hex())),
        };
        let bytes = read_manifest_file(&file)
            .await
            .map_err(self.not_found("the manifest"))?;
        let actual = Digest::sha256_of(&bytes);
        if let Some(d) = digest {
            if &actual != d {
                return Err(TransportError::Corrupt(format!(
                    "{}: content has digest {actual}, expected {d}",
                    file.display()
                )));
            }
        }
        Ok((bytes, actual))
    }

    pub async fn blob(&self, d: &Digest) -> Result<ByteStream, TransportError> {
        let p = self.blob_path(d)?;
        let f = open_blob(&p)
            .await
            .map_err(self.not_found(&format!("blob {d}")))?;
        Ok(Box::pin(tokio_util::io::ReaderStream::with_capacity(
            f,
            1 << 20,
        )))
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_ok_and(|p| p.is_file())
    }

    pub async fn put_blob(&self, d: &Digest, stream: ByteStream) -> Result<(), TransportError> {
        files::write_blob(&self.blob_path(d)?, d, stream).await
    }

    /// Writes a blob whose digest is learnt as it is written.
    pub async fn put_new_blob(&self, stream: ByteStream) -> Result<(Digest, u64), TransportError> {
        files::write_new_blob(&self.path, |d| self.path.join(d.hex()), stream).await
    }

    /// The top-level manifest as `manifest.json` (with `version`), a child as
    /// `<hex>.manifest.json`.
    pub async fn put_manifest(
        &self,
        bytes: &[u8],
        top_level: bool,
    ) -> Result<Digest, TransportError> {
        let d = Digest::sha256_of(bytes);
        if top_level {
            write_atomic(&self.path.join("version"), VERSION)?;
            write_atomic(&self.path.join("manifest.json"), bytes)?;
        } else {
            write_atomic(&self.path.join(format!("{}.manifest.json", d.hex())), bytes)?;
        }
        Ok(d)
    }
}
