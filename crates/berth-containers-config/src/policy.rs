//! `policy.json`: whether an image may be used, decided per transport and scope, as
//! containers/image's `signature` package does. Parsing is strict (any unknown field
//! rejects the file); checking signatures is left to a later layer, so requirements that
//! need one answer [`Decision::NeedsSignature`].

mod describe;
mod edit;
mod requirement;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use berth_image::ImageReference;
use serde::de::{Error as _, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

pub use describe::{describe, user_id_label, KeySource, TrustEntry};
pub use edit::{set_trust, write_policy, EditError, TrustType};
pub use requirement::{
    Fulcio, KeyType, Keys, Pki, Requirement, SignedBy, SignedIdentity, SigstoreKeys, SigstoreSigned,
};

use crate::env::Env;

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid policy in {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("invalid policy in {path}: {transport} scope {scope:?}: {reason}")]
    Scope {
        path: PathBuf,
        transport: String,
        scope: String,
        reason: &'static str,
    },
}

/// The outcome of [`Policy::evaluate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Accept,
    Reject(String),
    /// Every requirement that could be decided accepts, but some need a signature to be
    /// verified, which berth does not do yet.
    NeedsSignature,
}

type Requirements = Vec<Requirement>;

/// A parsed `policy.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    default: Requirements,
    transports: BTreeMap<String, BTreeMap<String, Requirements>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    default: Option<NonEmpty>,
    #[serde(default)]
    transports: UniqueMap<UniqueMap<NonEmpty>>,
}

/// A requirements array; empty ones are refused (`insecureAcceptAnything` says "none").
struct NonEmpty(Requirements);

impl<'de> Deserialize<'de> for NonEmpty {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let list = Requirements::deserialize(d)?;
        if list.is_empty() {
            return Err(D::Error::custom(
                "a list of policy requirements must not be empty",
            ));
        }
        Ok(NonEmpty(list))
    }
}

/// A JSON object whose duplicate keys are an error rather than "last one wins".
struct UniqueMap<V>(BTreeMap<String, V>);

impl<V> Default for UniqueMap<V> {
    fn default() -> Self {
        UniqueMap(BTreeMap::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for UniqueMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V_<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for V_<V> {
            type Value = UniqueMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((k, v)) = map.next_entry::<String, V>()? {
                    if out.contains_key(&k) {
                        return Err(A::Error::custom(format!("duplicate key {k:?}")));
                    }
                    out.insert(k, v);
                }
                Ok(UniqueMap(out))
            }
        }
        d.deserialize_map(V_(std::marker::PhantomData))
    }
}

impl Policy {
    /// `~/.config/containers/policy.json` when it exists, else
    /// `/etc/containers/policy.json`.
    pub fn default_path(env: &Env) -> PathBuf {
        match env.home_path(".config/containers/policy.json") {
            Some(user) if user.exists() => user,
            _ => env.system_path("/etc/containers/policy.json"),
        }
    }

    /// Reads `explicit` (`--policy`) or the default path. A missing file is an error, as
    /// in podman and skopeo: no policy is not the same as "accept anything".
    pub fn load(env: &Env, explicit: Option<&Path>) -> Result<Policy, PolicyError> {
        let path = explicit.map_or_else(|| Self::default_path(env), Path::to_path_buf);
        let bytes = std::fs::read(&path).map_err(|source| PolicyError::Io {
            path: path.clone(),
            source,
        })?;
        Self::from_slice(&bytes, &path)
    }

    /// Parses policy JSON; `path` is only used in errors.
    pub fn from_slice(bytes: &[u8], path: &Path) -> Result<Policy, PolicyError> {
        let parse_err = |source| PolicyError::Parse {
            path: path.to_path_buf(),
            source,
        };
        let raw: RawPolicy = serde_json::from_slice(bytes).map_err(parse_err)?;
        let default = raw
            .default
            .ok_or_else(|| {
                parse_err(serde_json::Error::custom(
                    "the \"default\" policy is missing",
                ))
            })?
            .0;
        let mut transports = BTreeMap::new();
        for (transport, scopes) in raw.transports.0 {
            let mut out = BTreeMap::new();
            for (scope, reqs) in scopes.0 {
                validate_scope(&transport, &scope).map_err(|reason| PolicyError::Scope {
                    path: path.to_path_buf(),
                    transport: transport.clone(),
                    scope: scope.clone(),
                    reason,
                })?;
                out.insert(scope, reqs.0);
            }
            transports.insert(transport, out);
        }
        Ok(Policy {
            default,
            transports,
        })
    }

    /// The requirements that apply (`requirementsForImageRef`): the most specific scope
    /// of the transport that exists, else the transport's `""` scope, else the global
    /// `default`. `identity` is the image's policy identity in that transport: for
    /// `docker` the full `host/repo:tag` or `host/repo@digest` (see [`docker_identity`]);
    /// for `dir`, `oci`, `oci-archive` an absolute path (`oci` may add `:tag`).
    pub fn requirements_for(&self, transport: &str, identity: &str) -> &[Requirement] {
        let Some(scopes) = self.transports.get(transport) else {
            return &self.default;
        };
        scope_candidates(transport, identity)
            .iter()
            .chain(std::iter::once(&String::new()))
            .find_map(|s| scopes.get(s))
            .unwrap_or(&self.default)
    }

    /// Where [`Policy::requirements_for`] found the requirements, as policy.json names
    /// the place: `transports.<transport>["<scope>"]`, or `default` (for messages).
    pub fn scope_of(&self, transport: &str, identity: &str) -> String {
        let found = self.transports.get(transport).and_then(|scopes| {
            scope_candidates(transport, identity)
                .into_iter()
                .chain(std::iter::once(String::new()))
                .find(|s| scopes.contains_key(s))
        });
        match found {
            Some(scope) => format!("transports.{transport}[{scope:?}]"),
            None => "default".to_string(),
        }
    }

    /// Decides for an image: every requirement must accept. A `reject` anywhere rejects
    /// (signatures cannot change that); otherwise signature requirements make it
    /// [`Decision::NeedsSignature`].
    pub fn evaluate(&self, transport: &str, identity: &str) -> Decision {
        let reqs = self.requirements_for(transport, identity);
        if reqs.iter().any(|r| matches!(r, Requirement::Reject)) {
            let sep = if transport.starts_with("docker") {
                "://"
            } else {
                ":"
            };
            return Decision::Reject(format!(
                "Running image {transport}{sep}{identity} is rejected by policy."
            ));
        }
        if reqs
            .iter()
            .all(|r| matches!(r, Requirement::InsecureAcceptAnything))
        {
            Decision::Accept
        } else {
            Decision::NeedsSignature
        }
    }
}

/// The `docker` policy identity of an image: `host/repo:tag`, or `host/repo@digest`
/// (a reference with both is identified by its digest, the part that pins content);
/// `:latest` when it has neither.
pub fn docker_identity(image: &ImageReference) -> String {
    match (image.tag(), image.digest()) {
        (_, Some(d)) => format!("{}@{d}", image.name()),
        (Some(t), None) => format!("{}:{}", image.name(), t.as_str()),
        (None, None) => format!("{}:latest", image.name()),
    }
}

/// Scopes to try before `""`, most specific first.
fn scope_candidates(transport: &str, identity: &str) -> Vec<String> {
    let mut out = vec![identity.to_string()];
    match transport {
        "docker" | "docker-daemon" | "atomic" => out.extend(docker_namespaces(identity)),
        "dir" | "oci-archive" => out.extend(parent_dirs(identity)),
        "containers-storage" => out.extend(storage_namespaces(identity)),
        "oci" => {
            let dir = identity.split_once(':').map_or(identity, |(d, _)| d);
            if dir != identity {
                out.push(dir.to_string());
            }
            out.extend(parent_dirs(dir));
        }
        _ => {}
    }
    out
}

/// `host/ns/repo:tag` → `host/ns/repo`, `host/ns`, `host`, then `*.domain` wildcards of
/// the host without its port (`DockerReferenceNamespaces`).
pub(crate) fn docker_namespaces(identity: &str) -> Vec<String> {
    let name = identity.split_once('@').map_or(identity, |(n, _)| n);
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let name = match name[last_slash..].find(':') {
        Some(i) => &name[..last_slash + i],
        None => name,
    };
    let mut out = Vec::new();
    let mut n = name;
    loop {
        out.push(n.to_string());
        match n.rfind('/') {
            Some(i) => n = &n[..i],
            None => break,
        }
    }
    let mut host = n.split_once(':').map_or(n, |(h, _)| h);
    while let Some(i) = host.find('.') {
        host = &host[i + 1..];
        out.push(format!("*.{host}"));
    }
    out
}

/// `[store]host/ns/repo:tag` → `[store]host/ns/repo`, `[store]host/ns`, `[store]host`,
/// `[store]` (containers/image's `storageReference.PolicyConfigurationNamespaces`).
fn storage_namespaces(identity: &str) -> Vec<String> {
    let Some(end) = identity.rfind(']') else {
        return Vec::new();
    };
    let (store, image) = identity.split_at(end + 1);
    let mut out: Vec<String> = match image.is_empty() {
        true => Vec::new(),
        false => docker_namespaces(image)
            .into_iter()
            .filter(|n| !n.starts_with("*."))
            .map(|n| format!("{store}{n}"))
            .collect(),
    };
    out.push(store.to_string());
    out
}

/// `/a/b/c` → `/a/b`, `/a` (never `/`, which `""` stands for).
fn parent_dirs(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut p = path;
    while let Some(i) = p.rfind('/').filter(|&i| i > 0) {
        p = &p[..i];
        out.push(p.to_string());
    }
    out
}

/// Per-transport scope rules (`ValidatePolicyConfigurationScope`); `""` is always valid.
fn validate_scope(transport: &str, scope: &str) -> Result<(), &'static str> {
    if scope.is_empty() {
        return Ok(());
    }
    match transport {
        "dir" | "oci" | "oci-archive" => {
            let path = match transport {
                "oci" => scope.split_once(':').map_or(scope, |(d, _)| d),
                _ => scope,
            };
            if !path.starts_with('/') {
                return Err("must be an absolute path");
            }
            if path == "/" {
                return Err("\"/\" is not allowed; use the transport default scope \"\"");
            }
            let canonical = !path.ends_with('/')
                && path[1..]
                    .split('/')
                    .all(|c| !c.is_empty() && c != "." && c != "..");
            if !canonical {
                return Err("the path is not in canonical form");
            }
            Ok(())
        }
        "docker-archive" | "tarball" => Err("this transport supports only the default \"\" scope"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
