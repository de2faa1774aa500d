//! Image names with their transport, as containers/image writes them:
//! `docker://NAME[:TAG|@DIGEST]`, `oci:PATH[:REF]`.

use std::fmt;
use std::path::PathBuf;

use berth_image::ImageReference;

use crate::TransportError;

/// Where an image is, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageName {
    /// A registry; `latest` when no tag or digest is given.
    Docker(ImageReference),
    /// An OCI image layout folder and the `org.opencontainers.image.ref.name` of the
    /// image in it (none: the layout's only image).
    Oci {
        path: PathBuf,
        reference: Option<String>,
    },
    /// skopeo's `dir:` folder.
    Dir(PathBuf),
    /// An OCI layout in a tar file, and the image's reference in it.
    OciArchive {
        path: PathBuf,
        reference: Option<String>,
    },
    /// A `docker save` tar, and the image's tag in it (`RepoTags`).
    DockerArchive {
        path: PathBuf,
        reference: Option<String>,
    },
    /// The local image store (`local:NAME[:TAG]`, names as `docker://` has them).
    Local(ImageReference),
}

impl ImageName {
    /// Whether `s` starts with a transport berth knows (`docker://`, `oci:`, …), as
    /// opposed to a bare image name (`alpine`, `host:5000/app:v1`).
    pub fn has_transport(s: &str) -> bool {
        // `x://` is meant as a transport, known or not (an image name has no `//`).
        s.contains("://")
            || TRANSPORTS
                .iter()
                .any(|t| s.strip_prefix(t).is_some_and(|rest| rest.starts_with(':')))
    }

    pub fn parse(s: &str) -> Result<ImageName, TransportError> {
        let bad = |why: &str| TransportError::Name(format!("{s:?}: {why}"));
        let (transport, rest) = s.split_once(':').ok_or_else(|| {
            bad("expected TRANSPORT:REFERENCE, e.g. docker://quay.io/org/app:v1 or oci:/path:tag")
        })?;
        match transport {
            "docker" => {
                let name = rest
                    .strip_prefix("//")
                    .ok_or_else(|| bad("docker references start with docker://"))?;
                let r: ImageReference = name.parse().map_err(|e| bad(&format!("{e}")))?;
                Ok(ImageName::Docker(r.with_default_tag()))
            }
            "oci" | "oci-archive" | "docker-archive" => {
                // The path ends at the first ':'; what follows is the reference.
                let (path, reference) = match rest.split_once(':') {
                    Some((p, r)) => (p, Some(r)),
                    None => (rest, None),
                };
                if path.is_empty() {
                    return Err(bad("oci: needs a path"));
                }
                if reference.is_some_and(|r| r.is_empty() || r.chars().any(char::is_control)) {
                    return Err(bad("invalid reference in the layout"));
                }
                let (path, reference) = (PathBuf::from(path), reference.map(str::to_string));
                Ok(match transport {
                    "oci" => ImageName::Oci { path, reference },
                    "oci-archive" => ImageName::OciArchive { path, reference },
                    _ => ImageName::DockerArchive { path, reference },
                })
            }
            "dir" => {
                if rest.is_empty() {
                    return Err(bad("dir: needs a path"));
                }
                Ok(ImageName::Dir(PathBuf::from(rest)))
            }
            "local" => {
                let r = ImageReference::parse_local(rest).map_err(|e| bad(&format!("{e}")))?;
                if r.digest().is_some() && r.tag().is_none() {
                    return Ok(ImageName::Local(r));
                }
                Ok(ImageName::Local(r.with_default_tag()))
            }
            "containers-storage" => Err(bad(
                "berth keeps its own local store, named local:NAME[:TAG]; podman's \
                 containers-storage is not read (copy through an archive: podman save / berth load)",
            )),
            other => Err(bad(&format!(
                "unknown transport {other:?}; supported: docker://, oci:, oci-archive:, dir:, \
                 docker-archive:, local:"
            ))),
        }
    }
}

/// Every transport prefix, as typed before its colon.
const TRANSPORTS: [&str; 8] = [
    "docker",
    "oci",
    "oci-archive",
    "dir",
    "docker-archive",
    "local",
    "containers-storage",
    "docker-daemon",
];

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageName::Docker(r) => {
                write!(f, "docker://{}", r.name())?;
                if let Some(t) = r.tag() {
                    write!(f, ":{t}")?;
                }
                if let Some(d) = r.digest() {
                    write!(f, "@{d}")?;
                }
                Ok(())
            }
            ImageName::Dir(path) => write!(f, "dir:{}", path.display()),
            ImageName::Local(r) => {
                write!(f, "local:{}", r.name())?;
                if let Some(t) = r.tag() {
                    write!(f, ":{t}")?;
                }
                if let Some(d) = r.digest() {
                    write!(f, "@{d}")?;
                }
                Ok(())
            }
            ImageName::DockerArchive { path, reference } => {
                write!(f, "docker-archive:{}", path.display())?;
                if let Some(r) = reference {
                    write!(f, ":{r}")?;
                }
                Ok(())
            }
            ImageName::OciArchive { path, reference } => {
                write!(f, "oci-archive:{}", path.display())?;
                if let Some(r) = reference {
                    write!(f, ":{r}")?;
                }
                Ok(())
            }
            ImageName::Oci { path, reference } => {
                write!(f, "oci:{}", path.display())?;
                if let Some(r) = reference {
                    write!(f, ":{r}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let d = ImageName::parse("docker://localhost:5000/a/b").unwrap();
        assert_eq!(d.to_string(), "docker://localhost:5000/a/b:latest");
        let o = ImageName::parse("oci:/tmp/lay:v1").unwrap();
        assert_eq!(
            o,
            ImageName::Oci {
                path: "/tmp/lay".into(),
                reference: Some("v1".into())
            }
        );
        assert_eq!(
            ImageName::parse("oci:rel").unwrap(),
            ImageName::Oci {
                path: "rel".into(),
                reference: None
            }
        );
        assert_eq!(
            ImageName::parse("dir:/a/b").unwrap(),
            ImageName::Dir("/a/b".into())
        );
        for bad in [
            "x",
            "nope:x",
            "docker:x",
            "docker://up/X",
            "oci:",
            "oci:/p:",
            "dir:",
            "containers-storage:x",
        ] {
            assert!(ImageName::parse(bad).is_err(), "{bad}");
        }
    }
}
