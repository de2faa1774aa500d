//! A signature as stored with an image, and its storage blob (c/image's
//! `internal/signature`): simple-signing blobs are stored bare (an OpenPGP message,
//! recognized by its first byte, for compatibility with old `dir:` images); other
//! formats as a zero byte, a format name, a newline, then the data — `sigstore-json`
//! is `{"mimeType", "payload" (base64), "annotations"}`. Used by `dir:`, the local
//! store and the lookaside; registries carry sigstore signatures as attachment layers.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::json::go_escape;
use crate::sigstore::{PAYLOAD_MEDIA_TYPE, SIGNATURE_ANNOTATION};

/// A signature as stored with an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSignature {
    /// A simple-signing blob (an OpenPGP signed message).
    Simple(Vec<u8>),
    /// A sigstore attachment: the layer's media type, its blob (the payload) and its
    /// annotations (the signature is `dev.cosignproject.cosign/signature`).
    Sigstore {
        media_type: String,
        payload: Vec<u8>,
        annotations: BTreeMap<String, String>,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BlobError {
    #[error("empty signature blob")]
    Empty,
    #[error("invalid signature format, missing newline")]
    MissingNewline,
    #[error("invalid signature format, non-ASCII byte {0:#x}")]
    NonAscii(u8),
    #[error("unrecognized signature format {0:?}")]
    UnknownFormat(String),
    #[error("unrecognized signature format, starting with binary {0:#x}")]
    UnknownBinary(u8),
    #[error("invalid sigstore signature blob: {0}")]
    Sigstore(String),
}

const SIMPLE_FORMAT: &[u8] = b"simple-signing";
const SIGSTORE_FORMAT: &[u8] = b"sigstore-json";

#[derive(Serialize, Deserialize)]
struct SigstoreJson {
    #[serde(rename = "mimeType")]
    mime_type: String,
    payload: String,
    annotations: BTreeMap<String, String>,
}

/// First bytes of an OpenPGP message as gpg writes one: compressed data, a one-pass
/// signature, or a signature packet, in old or new packet format.
fn starts_openpgp(b: u8) -> bool {
    matches!(
        b,
        0xA0..=0xA3 | 0xC8 | 0x90..=0x92 | 0x3D | 0xC4 | 0x88..=0x8B | 0xC2
    )
}

impl ImageSignature {
    /// A sigstore signature with the usual media type and only the signature annotation.
    pub fn sigstore(payload: Vec<u8>, signature_b64: String) -> ImageSignature {
        ImageSignature::Sigstore {
            media_type: PAYLOAD_MEDIA_TYPE.to_string(),
            payload,
            annotations: BTreeMap::from([(SIGNATURE_ANNOTATION.to_string(), signature_b64)]),
        }
    }

    /// The base64 signature of a sigstore attachment, if it has one.
    pub fn sigstore_signature(&self) -> Option<&str> {
        match self {
            ImageSignature::Sigstore { annotations, .. } => {
                annotations.get(SIGNATURE_ANNOTATION).map(String::as_str)
            }
            ImageSignature::Simple(_) => None,
        }
    }

    /// Reads a stored signature blob.
    pub fn from_blob(blob: &[u8]) -> Result<ImageSignature, BlobError> {
        let (&first, rest) = blob.split_first().ok_or(BlobError::Empty)?;
        if starts_openpgp(first) {
            return Ok(ImageSignature::Simple(blob.to_vec()));
        }
        if first != 0 {
            return Err(BlobError::UnknownBinary(first));
        }
        let nl = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(BlobError::MissingNewline)?;
        let (format, data) = (&rest[..nl], &rest[nl + 1..]);
        if let Some(&b) = format.iter().find(|&&b| !(32..0x7F).contains(&b)) {
            return Err(BlobError::NonAscii(b));
        }
        match format {
            SIMPLE_FORMAT => Ok(ImageSignature::Simple(data.to_vec())),
            SIGSTORE_FORMAT => {
                let bad = |e: String| BlobError::Sigstore(e);
                let j: SigstoreJson =
                    serde_json::from_slice(data).map_err(|e| bad(e.to_string()))?;
                let payload = BASE64.decode(j.payload).map_err(|e| bad(e.to_string()))?;
                Ok(ImageSignature::Sigstore {
                    media_type: j.mime_type,
                    payload,
                    annotations: j.annotations,
                })
            }
            other => Err(BlobError::UnknownFormat(
                String::from_utf8_lossy(other).into_owned(),
            )),
        }
    }

    /// The blob c/image stores for this signature.
    pub fn to_blob(&self) -> Vec<u8> {
        match self {
            // Bare, for compatibility with old readers.
            ImageSignature::Simple(b) => b.clone(),
            ImageSignature::Sigstore {
                media_type,
                payload,
                annotations,
            } => {
                let j = SigstoreJson {
                    mime_type: media_type.clone(),
                    payload: BASE64.encode(payload),
                    annotations: annotations.clone(),
                };
                let json = serde_json::to_string(&j).unwrap_or_default();
                let mut out = vec![0u8];
                out.extend_from_slice(SIGSTORE_FORMAT);
                out.push(b'\n');
                out.extend(go_escape(&json));
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// containers/image `signature/fixtures/dir-img-cosign-valid/signature-1`, as
    /// written by c/image (the JSON after the header is Go's marshalling).
    const COSIGN_BLOB: &str = "\0sigstore-json\n{\"mimeType\":\"application/vnd.dev.cosign.simplesigning.v1+json\",\"payload\":\"eyJjcml0aWNhbCI6eyJpZGVudGl0eSI6eyJkb2NrZXItcmVmZXJlbmNlIjoiMTkyLjE2OC42NC4yOjUwMDAvY29zaWduLXNpZ25lZC1zaW5nbGUtc2FtcGxlIn0sImltYWdlIjp7ImRvY2tlci1tYW5pZmVzdC1kaWdlc3QiOiJzaGEyNTY6NjM0YThmMzViNWYxNmRjZjRhYWEwODIyYWRjMGIxOTY0YmI3ODZmY2ExMmY2ODMxZGU4ZGRjNDVlNTk4NmEwMCJ9LCJ0eXBlIjoiY29zaWduIGNvbnRhaW5lciBpbWFnZSBzaWduYXR1cmUifSwib3B0aW9uYWwiOm51bGx9\",\"annotations\":{\"dev.cosignproject.cosign/signature\":\"MEYCIQDmtamqYPjMg81nqeBhptrPls44aA/r7PwLmspINJY4MwIhANKRpqe2E9UCBtGFdPoz/8jAbaQm4uP4h+IpwKTE6ClR\"}}";

    #[test]
    fn sigstore_blob_round_trips_byte_for_byte() {
        let sig = ImageSignature::from_blob(COSIGN_BLOB.as_bytes()).unwrap();
        let ImageSignature::Sigstore {
            media_type,
            payload,
            ..
        } = &sig
        else {
            panic!("{sig:?}")
        };
        assert_eq!(media_type, PAYLOAD_MEDIA_TYPE);
        assert!(payload.starts_with(b"{\"critical\""));
        assert!(sig.sigstore_signature().unwrap().starts_with("MEYCIQDm"));
        assert_eq!(sig.to_blob(), COSIGN_BLOB.as_bytes());
    }

    #[test]
    fn simple_blobs_bare_or_prefixed() {
        let gpg = vec![0xA3, 0x01, 0x02];
        assert_eq!(
            ImageSignature::from_blob(&gpg),
            Ok(ImageSignature::Simple(gpg.clone()))
        );
        assert_eq!(ImageSignature::Simple(gpg.clone()).to_blob(), gpg);
        let mut prefixed = b"\0simple-signing\n".to_vec();
        prefixed.extend(&gpg);
        assert_eq!(
            ImageSignature::from_blob(&prefixed),
            Ok(ImageSignature::Simple(gpg))
        );
    }

    #[test]
    fn bad_blobs() {
        assert_eq!(ImageSignature::from_blob(b""), Err(BlobError::Empty));
        assert_eq!(
            ImageSignature::from_blob(b"{\"json\":1}"),
            Err(BlobError::UnknownBinary(b'{'))
        );
        assert_eq!(
            ImageSignature::from_blob(b"\0sigstore-json"),
            Err(BlobError::MissingNewline)
        );
        assert_eq!(
            ImageSignature::from_blob(b"\0bad\x01\n"),
            Err(BlobError::NonAscii(1))
        );
        assert_eq!(
            ImageSignature::from_blob(b"\0future-format\nxx"),
            Err(BlobError::UnknownFormat("future-format".into()))
        );
        assert!(matches!(
            ImageSignature::from_blob(b"\0sigstore-json\n{\"mimeType\":1}"),
            Err(BlobError::Sigstore(_))
        ));
    }
}
