//! Reading manifests and indexes out of their raw bytes.
//!
//! The typed structures come from `oci-spec`; Docker v2s2 manifests and manifest lists
//! share their shape, so one parser serves both families. What this module returns is
//! the part of a manifest a registry or a copy engine needs: which blobs and child
//! manifests it references, its subject and its artifact type. The raw bytes stay the
//! source of truth.

use std::collections::BTreeMap;

use oci_spec::image::{ImageIndex, ImageManifest};

use crate::digest::{Digest, DigestError};
use crate::media_type as mt;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is not valid JSON: {0}")]
    Json(String),
    #[error("unsupported manifest media type {0:?}")]
    UnsupportedMediaType(String),
    #[error("manifest media type {body:?} does not match Content-Type {header:?}")]
    MediaTypeMismatch { header: String, body: String },
    #[error("schemaVersion must be 2")]
    SchemaVersion,
    #[error("manifest does not match its media type {media_type}: {reason}")]
    Shape { media_type: String, reason: String },
    #[error("bad digest in manifest: {0}")]
    Digest(#[from] DigestError),
}

/// Which of the two manifest shapes this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    /// An image manifest (OCI or Docker v2s2): a config and layers.
    Image,
    /// An index (OCI) or manifest list (Docker): child manifests.
    Index,
}

/// A reference from a manifest to other content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    pub artifact_type: Option<String>,
    pub annotations: Option<BTreeMap<String, String>>,
    /// Index entries: the platform the child manifest is for.
    pub platform: Option<Platform>,
}

/// An operating system and CPU an image runs on (Go's `GOOS`/`GOARCH` names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The machine berth runs on, as images name it: the default platform wherever one
    /// image of a multi-platform index must be chosen.
    pub fn this_machine() -> Platform {
        Platform {
            os: "linux".into(),
            architecture: go_arch(std::env::consts::ARCH).into(),
            variant: None,
        }
    }

    /// `OS/ARCH[/VARIANT]`, as `--platform` and `FROM --platform=` take it; none
    /// when a part is missing or empty.
    pub fn parse(s: &str) -> Option<Platform> {
        let mut parts = s.split('/');
        let (os, architecture) = (parts.next()?, parts.next()?);
        let variant = parts.next().map(str::to_string);
        let whole = parts.next().is_none()
            && !os.is_empty()
            && !architecture.is_empty()
            && variant.as_deref() != Some("");
        whole.then(|| Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant,
        })
    }

    /// Whether an image for `self` runs where `wanted` is asked for: same OS and
    /// architecture, and the same variant when `wanted` names one.
    pub fn matches(&self, wanted: &Platform) -> bool {
        self.os == wanted.os
            && self.architecture == wanted.architecture
            && (wanted.variant.is_none() || wanted.variant == self.variant)
    }
}

/// Rust's architecture names in Go's spelling, which images use.
pub fn go_arch(rust: &str) -> &str {
    match rust {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// A parsed manifest: what it references, what it is about.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub media_type: String,
    pub kind: ManifestKind,
    /// Image manifests: the config descriptor.
    pub config: Option<Descriptor>,
    /// Image manifests: the layers (or an artifact's blobs).
    pub layers: Vec<Descriptor>,
    /// Indexes: the child manifests.
    pub manifests: Vec<Descriptor>,
    pub subject: Option<Descriptor>,
    pub artifact_type: Option<String>,
    pub annotations: Option<BTreeMap<String, String>>,
}

impl Manifest {
    /// Parses `bytes` as the manifest media type `content_type` (the HTTP Content-Type,
    /// parameters allowed). Without a usable content type, the body's `mediaType` field
    /// decides, and without that the shape does (`manifests` means an index).
    pub fn parse(content_type: Option<&str>, bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
        let obj = value
            .as_object()
            .ok_or_else(|| ManifestError::Json("top level is not an object".into()))?;
        let body_type = obj.get("mediaType").and_then(|v| v.as_str());
        let header_type = content_type
            .map(|c| c.split(';').next().unwrap_or("").trim())
            .filter(|c| !c.is_empty() && mt::is_manifest(c) || is_schema1(c));

        let media_type = match (header_type, body_type) {
            (Some(h), Some(b)) if h != b => {
                return Err(ManifestError::MediaTypeMismatch {
                    header: h.to_string(),
                    body: b.to_string(),
                })
            }
            (Some(h), _) => h.to_string(),
            (None, Some(b)) => b.to_string(),
            (None, None) if obj.contains_key("manifests") => mt::OCI_INDEX.to_string(),
            (None, None) => mt::OCI_MANIFEST.to_string(),
        };
        if !mt::is_manifest(&media_type) {
            return Err(ManifestError::UnsupportedMediaType(media_type));
        }
        if obj.get("schemaVersion").and_then(|v| v.as_u64()) != Some(2) {
            return Err(ManifestError::SchemaVersion);
        }
        let shape = |e: serde_json::Error| ManifestError::Shape {
            media_type: media_type.clone(),
            reason: e.to_string(),
        };
        if mt::is_index(&media_type) {
            let index: ImageIndex = serde_json::from_value(value.clone()).map_err(shape)?;
            Ok(Manifest {
                kind: ManifestKind::Index,
                config: None,
                layers: Vec::new(),
                manifests: index
                    .manifests()
                    .iter()
                    .map(Descriptor::try_from)
                    .collect::<Result<_, _>>()?,
                subject: index
                    .subject()
                    .as_ref()
                    .map(Descriptor::try_from)
                    .transpose()?,
                artifact_type: index.artifact_type().as_ref().map(|m| m.to_string()),
                annotations: index.annotations().as_ref().map(to_btree),
                media_type,
            })
        } else {
            let m: ImageManifest = serde_json::from_value(value.clone()).map_err(shape)?;
            Ok(Manifest {
                kind: ManifestKind::Image,
                config: Some(Descriptor::try_from(m.config())?),
                layers: m
                    .layers()
                    .iter()
                    .map(Descriptor::try_from)
                    .collect::<Result<_, _>>()?,
                manifests: Vec::new(),
                subject: m.subject().as_ref().map(Descriptor::try_from).transpose()?,
                artifact_type: m.artifact_type().as_ref().map(|m| m.to_string()),
                annotations: m.annotations().as_ref().map(to_btree),
                media_type,
            })
        }
    }

    /// The artifact type the referrers API reports: `artifactType`, or for an image
    /// manifest without one, its config's media type.
    pub fn effective_artifact_type(&self) -> Option<String> {
        self.artifact_type
            .clone()
            .or_else(|| self.config.as_ref().map(|c| c.media_type.clone()))
    }
}

fn is_schema1(c: &str) -> bool {
    c == mt::DOCKER_SCHEMA1 || c == mt::DOCKER_SCHEMA1_SIGNED
}

fn to_btree(m: &std::collections::HashMap<String, String>) -> BTreeMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

impl TryFrom<&oci_spec::image::Descriptor> for Descriptor {
    type Error = ManifestError;
    fn try_from(d: &oci_spec::image::Descriptor) -> Result<Self, Self::Error> {
        Ok(Descriptor {
            media_type: d.media_type().to_string(),
            digest: d.digest().to_string().parse()?,
            size: d.size(),
            artifact_type: d.artifact_type().as_ref().map(|m| m.to_string()),
            annotations: d.annotations().as_ref().map(to_btree),
            platform: d.platform().as_ref().map(|p| Platform {
                os: p.os().to_string(),
                architecture: p.architecture().to_string(),
                variant: p.variant().clone(),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn image(media: Option<&str>) -> String {
        let mt = media
            .map(|m| format!(r#""mediaType":"{m}","#))
            .unwrap_or_default();
        format!(
            r#"{{"schemaVersion":2,{mt}"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{D1}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{D2}","size":3}}]}}"#
        )
    }

    #[test]
    fn oci_image() {
        let m = Manifest::parse(Some(mt::OCI_MANIFEST), image(None).as_bytes()).unwrap();
        assert_eq!(m.kind, ManifestKind::Image);
        assert_eq!(m.config.as_ref().unwrap().digest.to_string(), D1);
        assert_eq!(m.layers[0].digest.to_string(), D2);
        assert_eq!(m.effective_artifact_type().as_deref(), Some(mt::OCI_CONFIG));
    }

    #[test]
    fn docker_v2s2_from_body_type() {
        let m = Manifest::parse(None, image(Some(mt::DOCKER_MANIFEST)).as_bytes()).unwrap();
        assert_eq!(m.media_type, mt::DOCKER_MANIFEST);
    }

    #[test]
    fn mismatch_is_refused() {
        let e = Manifest::parse(
            Some(mt::OCI_MANIFEST),
            image(Some(mt::DOCKER_MANIFEST)).as_bytes(),
        );
        assert!(matches!(e, Err(ManifestError::MediaTypeMismatch { .. })));
    }

    #[test]
    fn index_with_subject() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","artifactType":"x/y","manifests":[{{"mediaType":"{}","digest":"{D1}","size":5,"platform":{{"os":"linux","architecture":"amd64"}}}}],"subject":{{"mediaType":"{}","digest":"{D2}","size":9}}}}"#,
            mt::OCI_INDEX,
            mt::OCI_MANIFEST,
            mt::OCI_MANIFEST
        );
        let m = Manifest::parse(Some(mt::OCI_INDEX), body.as_bytes()).unwrap();
        assert_eq!(m.kind, ManifestKind::Index);
        assert_eq!(m.manifests.len(), 1);
        let p = m.manifests[0].platform.clone().unwrap();
        assert_eq!(p.to_string(), "linux/amd64");
        let arm = Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: Some("v8".into()),
        };
        assert!(p.matches(&Platform {
            variant: None,
            ..p.clone()
        }));
        assert!(!p.matches(&arm));
        assert!(!p.matches(&Platform {
            variant: Some("v2".into()),
            ..p.clone()
        }));
        assert_eq!(m.subject.unwrap().digest.to_string(), D2);
        assert_eq!(m.artifact_type.as_deref(), Some("x/y"));
    }

    #[test]
    fn garbage_is_refused() {
        assert!(Manifest::parse(None, b"not json").is_err());
        assert!(Manifest::parse(None, b"[]").is_err());
        assert!(Manifest::parse(None, br#"{"schemaVersion":1}"#).is_err());
        assert!(Manifest::parse(Some(mt::OCI_MANIFEST), br#"{"schemaVersion":2}"#).is_err());
        let bad_digest = image(None).replace(D1, "sha256:xyz");
        assert!(Manifest::parse(None, bad_digest.as_bytes()).is_err());
        assert!(matches!(
            Manifest::parse(Some(mt::DOCKER_SCHEMA1), br#"{"schemaVersion":1}"#),
            Err(ManifestError::UnsupportedMediaType(_))
        ));
    }
}
