//! Blobs and manifests going in and out: streamed blob reads, existence checks,
//! cross-repository mounts, streamed uploads (POST, one PATCH, PUT `?digest=`, as
//! skopeo sends them) and manifest pushes.

use std::pin::Pin;

use std::sync::{Arc, Mutex};

use berth_image::{Algorithm, Digest};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::header::{CONTENT_LENGTH, LOCATION};
use reqwest::{Method, StatusCode};

use crate::error::RemoteError;
use crate::registry::{check, header, status_error, Body, Registry};

/// Bytes as they arrive, with I/O errors.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

fn push_scope(repo: &str) -> String {
    format!("repository:{repo}:pull,push")
}

impl Registry {
    /// The size of blob `digest` if `repo` has it (`HEAD`), asked as a pusher about to
    /// push there.
    pub async fn has_blob(&self, repo: &str, digest: &Digest) -> Result<Option<u64>, RemoteError> {
        self.head_blob(repo, digest, &push_scope(repo)).await
    }

    /// [`Registry::has_blob`] asked as a reader (a token for `pull` only: the
    /// credentials of a pull-through cache's upstream may not push).
    pub async fn has_blob_to_pull(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<Option<u64>, RemoteError> {
        self.head_blob(repo, digest, &format!("repository:{repo}:pull"))
            .await
    }

    async fn head_blob(
        &self,
        repo: &str,
        digest: &Digest,
        scope: &str,
    ) -> Result<Option<u64>, RemoteError> {
        let path = format!("/v2/{repo}/blobs/{digest}");
        let r = self.send(Method::HEAD, &path, Some(scope), None).await?;
        match r.status() {
            s if s.is_success() => {
                Ok(header(r.headers(), CONTENT_LENGTH).and_then(|l| l.parse().ok()))
            }
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(status_error(r, &format!("blob {digest} in {}/{repo}", self.host())).await),
        }
    }

    /// Blob `digest` of `repo` as a stream (not verified here: the caller hashes the
    /// bytes as they pass).
    pub async fn blob(&self, repo: &str, digest: &Digest) -> Result<ByteStream, RemoteError> {
        Ok(self.blob_sized(repo, digest).await?.1)
    }

    /// [`Registry::blob`] with the size the registry announced (`Content-Length`), when
    /// it did: a cache passing the blob on says it before the bytes.
    pub async fn blob_sized(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<(Option<u64>, ByteStream), RemoteError> {
        let what = format!("blob {digest} of {}/{repo}", self.host());
        let path = format!("/v2/{repo}/blobs/{digest}");
        let r = self
            .send(
                Method::GET,
                &path,
                Some(&format!("repository:{repo}:pull")),
                None,
            )
            .await?;
        let r = check(r, &what).await?;
        let size = header(r.headers(), CONTENT_LENGTH).and_then(|l| l.parse().ok());
        Ok((
            size,
            Box::pin(r.bytes_stream().map(|c| c.map_err(std::io::Error::other))),
        ))
    }

    /// Links blob `digest` of `from` into `repo` without sending it. `false` when the
    /// registry would not (it opened an upload session instead, which is cancelled).
    pub async fn mount_blob(
        &self,
        repo: &str,
        digest: &Digest,
        from: &str,
    ) -> Result<bool, RemoteError> {
        let what = format!("mount of {digest} into {}/{repo}", self.host());
        let path = format!("/v2/{repo}/blobs/uploads/?mount={digest}&from={from}");
        let scope = format!("{} repository:{from}:pull", push_scope(repo));
        let r = self.send(Method::POST, &path, Some(&scope), None).await?;
        match r.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                if let Some(loc) = header(r.headers(), LOCATION) {
                    let _ = self
                        .send(Method::DELETE, &loc, Some(&push_scope(repo)), None)
                        .await;
                }
                Ok(false)
            }
            _ => Err(status_error(r, &what).await),
        }
    }

    /// Uploads blob `digest` from `stream`: `POST` a session, one streamed `PATCH`,
    /// then `PUT ?digest=`, which the registry refuses if the bytes do not match.
    pub async fn upload_blob(
        &self,
        repo: &str,
        digest: &Digest,
        stream: ByteStream,
    ) -> Result<(), RemoteError> {
        let d = digest.clone();
        self.upload(repo, &format!("blob {digest}"), stream, move || d)
            .await
            .map(|_| ())
    }

    /// Uploads a blob whose digest is only known once its bytes have passed (a layer
    /// being recompressed): hashed on the way, named at the `PUT`. Returns its digest
    /// and size.
    pub async fn upload_new_blob(
        &self,
        repo: &str,
        stream: ByteStream,
    ) -> Result<(Digest, u64), RemoteError> {
        let state = Arc::new(Mutex::new((Algorithm::Sha256.hasher(), 0u64)));
        let tee = state.clone();
        let hashed: ByteStream = Box::pin(stream.map(move |chunk| {
            let chunk = chunk?;
            if let Ok(mut s) = tee.lock() {
                s.0.update(&chunk);
                s.1 += chunk.len() as u64;
            }
            Ok(chunk)
        }));
        let result = state.clone();
        let digest_of = move || -> Digest {
            let mut s = result.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::replace(&mut s.0, Algorithm::Sha256.hasher()).finish()
        };
        let d = self.upload(repo, "a new blob", hashed, digest_of).await?;
        let size = state.lock().map(|s| s.1).unwrap_or(0);
        Ok((d, size))
    }

    async fn upload(
        &self,
        repo: &str,
        what: &str,
        stream: ByteStream,
        digest: impl FnOnce() -> Digest,
    ) -> Result<Digest, RemoteError> {
        let what = format!("{what} to {}/{repo}", self.host());
        let scope = push_scope(repo);
        let r = self
            .send(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/"),
                Some(&scope),
                None,
            )
            .await?;
        let r = check(r, &what).await?;
        let location = header(r.headers(), LOCATION)
            .ok_or_else(|| RemoteError::Invalid(format!("{what}: no Location for the upload")))?;
        let r = self
            .send_with(
                Method::PATCH,
                &location,
                Some(&scope),
                None,
                Body::Stream(Some(reqwest::Body::wrap_stream(stream))),
            )
            .await?;
        let r = check(r, &what).await?;
        let location = header(r.headers(), LOCATION).unwrap_or(location);
        let sep = if location.contains('?') { '&' } else { '?' };
        let digest = digest();
        let put = format!("{location}{sep}digest={digest}");
        let r = self
            .send_with(
                Method::PUT,
                &put,
                Some(&scope),
                None,
                Body::Bytes(Vec::new(), "application/octet-stream".into()),
            )
            .await?;
        check(r, &what).await?;
        Ok(digest)
    }

    /// Pushes manifest `bytes` of `media_type` to `repo` as `reference` (a tag or its
    /// digest); returns the digest of the bytes.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest, RemoteError> {
        let what = format!(
            "manifest {}",
            berth_image::reference::join(&format!("{}/{repo}", self.host()), reference)
        );
        let r = self
            .send_with(
                Method::PUT,
                &format!("/v2/{repo}/manifests/{reference}"),
                Some(&push_scope(repo)),
                None,
                Body::Bytes(bytes.to_vec(), media_type.to_string()),
            )
            .await?;
        check(r, &what).await?;
        Ok(Digest::sha256_of(bytes))
    }
}
