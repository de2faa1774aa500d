//! A registry's own content, read where `berth serve` keeps it (berth-store's metadata
//! and blob files, or its bucket): the source of the registry's replication, which so copies with the
//! same engine as `berth copy` and no HTTP round trip to itself. Read only: content
//! reaches a registry through its API, where access, quotas and policies apply.

use std::sync::Arc;

use berth_image::Digest;
use berth_remote::ByteStream;
use berth_signature::signature::ImageSignature;
use berth_store::{BlobStore, MetaStore, ObjectBlobs};

use crate::{RawManifest, TransportError};

/// The content of one registry data folder.
#[derive(Clone)]
pub struct Served {
    pub meta: Arc<dyn MetaStore>,
    pub blobs: Arc<BlobStore>,
    /// The bucket that holds the blobs instead of `blobs`, when there is one.
    pub objects: Option<ObjectBlobs>,
}

impl Served {
    /// Manifest `reference` (a tag or a digest) of `repo`.
    pub fn manifest(&self, repo: &str, reference: &str) -> Result<RawManifest, TransportError> {
        let found = match reference.parse::<Digest>() {
            Ok(d) => self.meta.manifest_by_digest(repo, &d)?,
            Err(_) => self.meta.manifest_by_tag(repo, reference)?,
        };
        let m = found.ok_or_else(|| TransportError::NotFound(format!("{repo}:{reference}")))?;
        Ok(RawManifest {
            bytes: m.content,
            media_type: Some(m.media_type),
            digest: m.digest,
        })
    }

    /// Blob `d`, if `repo` may read it (the same boundary as a pull's).
    pub async fn blob(&self, repo: &str, d: &Digest) -> Result<ByteStream, TransportError> {
        let missing = || TransportError::NotFound(format!("blob {d} in {repo}"));
        if self.meta.blob_in_repo(repo, d)?.is_none() {
            return Err(missing());
        }
        if let Some(objects) = &self.objects {
            let size = objects.size(d).await?.ok_or_else(missing)?;
            return objects.read(d, 0, size).await?.ok_or_else(missing);
        }
        let (file, _) = self.blobs.open_blob(d)?.ok_or_else(missing)?;
        Ok(Box::pin(tokio_util::io::ReaderStream::with_capacity(
            tokio::fs::File::from_std(file),
            1 << 20,
        )))
    }

    pub fn has_blob(&self, repo: &str, d: &Digest) -> Result<bool, TransportError> {
        Ok(self.meta.blob_in_repo(repo, d)?.is_some())
    }

    /// The simple signatures stored through the signature extension for `manifest`.
    pub fn signatures(
        &self,
        repo: &str,
        manifest: &Digest,
    ) -> Result<Vec<ImageSignature>, TransportError> {
        self.meta
            .signatures(repo, manifest)?
            .into_iter()
            .map(|s| Ok(ImageSignature::Simple(s.content)))
            .collect()
    }

    /// The digests of the manifests whose subject is `subject` in `repo`, page by page.
    pub fn referrers(&self, repo: &str, subject: &Digest) -> Result<Vec<Digest>, TransportError> {
        const PAGE: usize = 1000;
        let mut out = Vec::new();
        let mut after: Option<(i64, Digest)> = None;
        loop {
            let page = self.meta.referrers(
                repo,
                subject,
                None,
                after.as_ref().map(|(t, d)| (*t, d)),
                PAGE,
            )?;
            let full = page.len() == PAGE;
            after = page.last().map(|r| (r.created_at, r.digest.clone()));
            out.extend(page.into_iter().map(|r| r.digest));
            if !full {
                return Ok(out);
            }
        }
    }
}

/// What a copy into a registry's own folder answers.
pub(crate) fn read_only() -> TransportError {
    TransportError::Unsupported(
        "a registry's data folder is read here; push to the registry through its API".into(),
    )
}
