//! Image references as people type them (`alpine`, `quay.io/org/app:v1`,
//! `localhost:5000/x@sha256:…`) and their normalized form, with the rules of
//! containers/image and docker (distribution's `ParseNormalizedNamed`):
//!
//! - the first path component is a registry host when it contains `.` or `:`, is
//!   `localhost`, or has upper-case letters; otherwise the host is `docker.io`;
//! - `index.docker.io` is `docker.io`, and a one-component name there gets `library/`;
//! - the repository path follows [`RepositoryName`]'s grammar (lower case);
//! - a reference may carry a tag, a digest, or both (`name:tag@digest`); with neither,
//!   [`ImageReference::with_default_tag`] gives it `latest`;
//! - a bare 64-hex string is refused: it is an image ID, not a name.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;
use crate::name::{NameError, RepositoryName, Tag, MAX_NAME_LEN};

/// The registry host of references that name none.
pub const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("invalid reference format: {0:?}")]
    Format(String),
    #[error("invalid reference format: repository name must be lowercase: {0:?}")]
    Uppercase(String),
    #[error("invalid registry host {0:?}")]
    Domain(String),
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    ImageId(String),
    #[error("repository name {0:?} is longer than {MAX_NAME_LEN} characters")]
    TooLong(String),
    #[error(transparent)]
    Name(#[from] NameError),
}

/// A normalized image reference: registry host, repository path, tag and/or digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageReference {
    domain: String,
    path: RepositoryName,
    tag: Option<Tag>,
    digest: Option<Digest>,
    /// Whether the input named its registry (a short name did not).
    qualified: bool,
}

impl ImageReference {
    /// The registry host (and port), e.g. `docker.io`, `localhost:5000`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path inside the registry, e.g. `library/alpine`.
    pub fn path(&self) -> &RepositoryName {
        &self.path
    }

    pub fn tag(&self) -> Option<&Tag> {
        self.tag.as_ref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// Did the input name its registry? `alpine` and `library/alpine` did not: such
    /// short names are resolved through `unqualified-search-registries`.
    pub fn is_qualified(&self) -> bool {
        self.qualified
    }

    /// `domain/path`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// A name given to an image of the local store, as podman names it: one without a
    /// registry is `localhost/NAME` (`podman tag x foo`, `podman pull` of an archive),
    /// not `docker.io/library/NAME` as a pull would read it.
    pub fn parse_local(input: &str) -> Result<ImageReference, ReferenceError> {
        let r: ImageReference = input.parse()?;
        if r.is_qualified() {
            return Ok(r);
        }
        format!("localhost/{input}").parse()
    }

    /// The same reference with tag `latest` when it has neither tag nor digest.
    pub fn with_default_tag(mut self) -> ImageReference {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some("latest".parse().expect("latest is a valid tag"));
        }
        self
    }

    /// The same reference on another registry (a mirror, or a search registry for a
    /// short name).
    pub fn on_domain(&self, domain: &str) -> Result<ImageReference, ReferenceError> {
        validate_domain(domain)?;
        let mut r = self.clone();
        r.domain = normalize_domain(domain).to_string();
        r.qualified = true;
        Ok(r)
    }

    /// The short form docker prints: `alpine:3` for `docker.io/library/alpine:3`.
    pub fn familiar(&self) -> String {
        let mut s = if self.domain == DEFAULT_DOMAIN {
            self.path
                .as_str()
                .strip_prefix(OFFICIAL_REPO_PREFIX)
                .filter(|rest| !rest.contains('/'))
                .unwrap_or(self.path.as_str())
                .to_string()
        } else {
            self.name()
        };
        self.push_suffix(&mut s);
        s
    }

    fn push_suffix(&self, s: &mut String) {
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t.as_str());
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
    }
}

/// `name@digest` when `reference` is a digest, else `name:tag`: how a repository and
/// a tag-or-digest are written together (never `name:sha256:…`).
pub fn join(name: &str, reference: &str) -> String {
    match reference.parse::<crate::Digest>() {
        Ok(_) => format!("{name}@{reference}"),
        Err(_) => format!("{name}:{reference}"),
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.name();
        self.push_suffix(&mut s);
        f.write_str(&s)
    }
}

impl FromStr for ImageReference {
    type Err = ReferenceError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if input.len() == 64 && input.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ReferenceError::ImageId(input.to_string()));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, d)) => (rest, Some(d.parse::<Digest>().map_err(NameError::from)?)),
            None => (input, None),
        };
        // A tag is a ':' after the last '/', so that a host's port is not taken for one.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&rest[..at], Some(rest[at + 1..].parse::<Tag>()?))
            }
            None => (rest, None),
        };
        if name.is_empty() {
            return Err(ReferenceError::Format(input.to_string()));
        }
        let (domain, path, qualified) = split_domain(name);
        validate_domain(domain)?;
        let domain = normalize_domain(domain);
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("{OFFICIAL_REPO_PREFIX}{path}")
        } else {
            path.to_string()
        };
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase(input.to_string()));
        }
        if domain.len() + 1 + path.len() > MAX_NAME_LEN {
            return Err(ReferenceError::TooLong(input.to_string()));
        }
        Ok(ImageReference {
            domain: domain.to_string(),
            path: path.parse()?,
            tag,
            digest,
            qualified,
        })
    }
}

/// Splits `host/path` from a name; a first component that cannot be a host belongs to
/// the path on `docker.io`. Returns (domain, path, whether the input named a host).
fn split_domain(name: &str) -> (&str, &str, bool) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first, rest, true)
        }
        _ => (DEFAULT_DOMAIN, name, false),
    }
}

fn normalize_domain(domain: &str) -> &str {
    if domain == LEGACY_DEFAULT_DOMAIN {
        DEFAULT_DOMAIN
    } else {
        domain
    }
}

/// `host[:port]` where host is DNS labels joined by dots or a bracketed IPv6 address.
fn validate_domain(domain: &str) -> Result<(), ReferenceError> {
    let bad = || ReferenceError::Domain(domain.to_string());
    let (host, port) = if let Some(v6) = domain.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or_else(bad)?;
        let ok = !addr.is_empty() && addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
        if !ok {
            return Err(bad());
        }
        match after {
            "" => (None, None),
            p => (None, Some(p.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match domain.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(domain), None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
    }
    if let Some(host) = host {
        let label_ok = |l: &str| {
            let b = l.as_bytes();
            !b.is_empty()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        };
        if !host.split('.').all(label_ok) {
            return Err(bad());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn norm(s: &str) -> String {
        s.parse::<ImageReference>()
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .with_default_tag()
            .to_string()
    }

    #[test]
    fn joins_tags_and_digests() {
        let d = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
        assert_eq!(join("h/a", "v1"), "h/a:v1");
        assert_eq!(join("h/a", d), format!("h/a@{d}"));
    }

    #[test]
    fn local_names_like_podman() {
        let local = |s: &str| ImageReference::parse_local(s).unwrap().to_string();
        assert_eq!(local("foo"), "localhost/foo");
        assert_eq!(local("a/b:v1"), "localhost/a/b:v1");
        assert_eq!(local("library/alpine"), "localhost/library/alpine");
        assert_eq!(local("quay.io/a/b:v1"), "quay.io/a/b:v1");
        assert_eq!(local("docker.io/alpine"), "docker.io/library/alpine");
        assert_eq!(local("localhost:5000/x"), "localhost:5000/x");
        assert_eq!(local("localhost/x"), "localhost/x");
    }

    #[test]
    fn normalizes_like_podman() {
        assert_eq!(norm("alpine"), "docker.io/library/alpine:latest");
        assert_eq!(norm("alpine:3.19"), "docker.io/library/alpine:3.19");
        assert_eq!(norm("library/alpine"), "docker.io/library/alpine:latest");
        assert_eq!(norm("bitnami/redis"), "docker.io/bitnami/redis:latest");
        assert_eq!(
            norm("index.docker.io/alpine"),
            "docker.io/library/alpine:latest"
        );
        assert_eq!(norm("quay.io/org/app:v1"), "quay.io/org/app:v1");
        assert_eq!(norm("localhost/app"), "localhost/app:latest");
        assert_eq!(norm("localhost:5000/a/b:c"), "localhost:5000/a/b:c");
        assert_eq!(norm("127.0.0.1:5000/app"), "127.0.0.1:5000/app:latest");
        assert_eq!(norm("[::1]:5000/app"), "[::1]:5000/app:latest");
        assert_eq!(
            norm(&format!("alpine@{D}")),
            format!("docker.io/library/alpine@{D}")
        );
        assert_eq!(
            norm(&format!("quay.io/x:v1@{D}")),
            format!("quay.io/x:v1@{D}")
        );
    }

    #[test]
    fn knows_short_names() {
        assert!(!"alpine".parse::<ImageReference>().unwrap().is_qualified());
        assert!(!"library/alpine"
            .parse::<ImageReference>()
            .unwrap()
            .is_qualified());
        assert!("docker.io/alpine"
            .parse::<ImageReference>()
            .unwrap()
            .is_qualified());
        assert!("localhost/x"
            .parse::<ImageReference>()
            .unwrap()
            .is_qualified());
        let moved = "alpine:1"
            .parse::<ImageReference>()
            .unwrap()
            .on_domain("mirror.example:5000");
        assert_eq!(
            moved.unwrap().to_string(),
            "mirror.example:5000/library/alpine:1"
        );
    }

    #[test]
    fn prints_familiar_names() {
        let f = |s: &str| s.parse::<ImageReference>().unwrap().familiar();
        assert_eq!(f("docker.io/library/alpine:3"), "alpine:3");
        assert_eq!(f("docker.io/bitnami/redis"), "bitnami/redis");
        assert_eq!(f("quay.io/a/b:c"), "quay.io/a/b:c");
    }

    #[test]
    fn refuses_what_podman_refuses() {
        for bad in [
            "",
            ":tag",
            "Alpine",
            "docker.io/Library/alpine",
            "alpine:",
            "alpine:-x",
            "alpine@sha256:123",
            "a//b",
            "host:port/x",
            "-host.example/x",
            "[::1/x",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ] {
            assert!(bad.parse::<ImageReference>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn uppercase_first_component_is_a_host() {
        let r: ImageReference = "MyHost/app".parse().unwrap();
        assert_eq!(r.domain(), "MyHost");
        assert_eq!(r.path().as_str(), "app");
    }
}
