//! `registries.d`: where the simple signatures of a registry's images are read and
//! written (lookaside storage), and whether sigstore attachments are used, per scope,
//! as containers/image's `docker/registries_d.go` decides.
//!
//! The folder is `$HOME/.config/containers/registries.d` when it exists, else
//! `/etc/containers/registries.d` (or the one a `--registries.d` flag names); every
//! `*.yaml` file in it is read, in name order, and merged. A scope (`docker:` key) or
//! `default-docker` defined in two files is an error, as in containers/image. Unknown
//! keys are ignored (containers/image's YAML reading is not strict).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth_image::Digest;
use serde::Deserialize;

use crate::env::Env;

#[derive(Debug, thiserror::Error)]
pub enum RegistriesDError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing signature storage configuration {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("parsing signature storage configuration: \"docker\" namespace {scope} defined both in {first} and {second}")]
    DuplicateScope {
        scope: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("parsing signature storage configuration: \"default-docker\" defined both in {first} and {second}")]
    DuplicateDefault { first: PathBuf, second: PathBuf },
    #[error("invalid signature storage URL {url:?}: {reason}")]
    Url { url: String, reason: &'static str },
}

/// One scope's settings (`registryNamespace`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Namespace {
    lookaside: Option<String>,
    lookaside_staging: Option<String>,
    /// The old names of `lookaside` and `lookaside-staging`, still read.
    sigstore: Option<String>,
    sigstore_staging: Option<String>,
    use_sigstore_attachments: Option<bool>,
}

impl Namespace {
    /// Where to write (staging first) or read; `None` when this scope says nothing.
    fn top_level(&self, write: bool) -> Option<&str> {
        let staging = [&self.lookaside_staging, &self.sigstore_staging];
        let reading = [&self.lookaside, &self.sigstore];
        let order: &[&Option<String>] = if write {
            &[staging[0], staging[1], reading[0], reading[1]]
        } else {
            &reading
        };
        order
            .iter()
            .find_map(|v| v.as_deref().filter(|s| !s.is_empty()))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct File {
    default_docker: Option<Namespace>,
    #[serde(default)]
    docker: BTreeMap<String, Namespace>,
}

/// Where a lookaside signature lives: a file, or a URL to read over HTTP(S).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookaside {
    File(PathBuf),
    Http(String),
}

/// The merged `registries.d` configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistriesD {
    default_docker: Option<Namespace>,
    docker: BTreeMap<String, Namespace>,
}

impl RegistriesD {
    /// `$HOME/.config/containers/registries.d` when it exists, else the system folder.
    pub fn default_dir(env: &Env) -> PathBuf {
        env.home_path(".config/containers/registries.d")
            .filter(|p| p.is_dir())
            .unwrap_or_else(|| env.system_path("/etc/containers/registries.d"))
    }

    /// Reads the folder `explicit` names, else [`RegistriesD::default_dir`]. A missing
    /// folder is an empty configuration.
    pub fn load(env: &Env, explicit: Option<&Path>) -> Result<RegistriesD, RegistriesDError> {
        let dir = explicit.map_or_else(|| Self::default_dir(env), Path::to_path_buf);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RegistriesD::default()),
            Err(source) => return Err(RegistriesDError::Io { path: dir, source }),
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml") && p.is_file())
            .collect();
        paths.sort();
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|source| RegistriesDError::Io {
                path: path.clone(),
                source,
            })?;
            files.push((path, text));
        }
        Self::from_files(files)
    }

    /// Merges parsed files (path, text) in the order given.
    pub fn from_files(
        files: impl IntoIterator<Item = (PathBuf, String)>,
    ) -> Result<RegistriesD, RegistriesDError> {
        let mut out = RegistriesD::default();
        let mut default_from: Option<PathBuf> = None;
        let mut scope_from: BTreeMap<String, PathBuf> = BTreeMap::new();
        for (path, text) in files {
            let file: File = if text.trim().is_empty() {
                File::default()
            } else {
                serde_saphyr::from_str(&text).map_err(|e| RegistriesDError::Parse {
                    path: path.clone(),
                    reason: e.to_string(),
                })?
            };
            if let Some(d) = file.default_docker {
                if let Some(first) = &default_from {
                    return Err(RegistriesDError::DuplicateDefault {
                        first: first.clone(),
                        second: path,
                    });
                }
                default_from = Some(path.clone());
                out.default_docker = Some(d);
            }
            for (scope, ns) in file.docker {
                if let Some(first) = scope_from.get(&scope) {
                    return Err(RegistriesDError::DuplicateScope {
                        scope,
                        first: first.clone(),
                        second: path,
                    });
                }
                scope_from.insert(scope.clone(), path.clone());
                out.docker.insert(scope, ns);
            }
        }
        Ok(out)
    }

    /// The scopes that apply to a docker policy identity (`host/repo:tag` or
    /// `host/repo@digest`), most specific first, then `default-docker`.
    fn scopes<'a>(&'a self, identity: &str) -> impl Iterator<Item = &'a Namespace> + 'a {
        let mut names = vec![identity.to_string()];
        names.extend(crate::policy::docker_namespaces(identity));
        names
            .into_iter()
            .filter_map(|n| self.docker.get(&n))
            .chain(self.default_docker.as_ref())
    }

    /// The lookaside base for an image (`signatureTopLevel`): the most specific scope
    /// that names one, else `default-docker`, else the built-in folder
    /// (`/var/lib/containers/sigstore` as root, `~/.local/share/containers/sigstore`
    /// otherwise). `write` picks the staging location first.
    pub fn lookaside_base(
        &self,
        env: &Env,
        identity: &str,
        write: bool,
    ) -> Result<Lookaside, RegistriesDError> {
        match self.scopes(identity).find_map(|ns| ns.top_level(write)) {
            Some(url) => parse_url(url),
            None => Ok(Lookaside::File(builtin_dir(env))),
        }
    }

    /// The reading location `podman image trust show` prints for a policy scope: the
    /// scope's own entry, else its parents' (cutting at `/`), else `default-docker`;
    /// `lookaside`, else the old `sigstore` name.
    pub fn store_for_scope(&self, scope: &str) -> Option<&str> {
        let mut key = scope;
        let ns = loop {
            if let Some(ns) = self.docker.get(key) {
                break Some(ns);
            }
            match key.rfind('/') {
                Some(i) => key = &key[..i],
                None => break self.default_docker.as_ref(),
            }
        }?;
        [&ns.lookaside, &ns.sigstore]
            .into_iter()
            .find_map(|v| v.as_deref().filter(|s| !s.is_empty()))
    }

    /// Whether sigstore attachments (`sha256-<hex>.sig` tags) are read and written for
    /// this image: the most specific scope that says so, else `default-docker`, else no.
    pub fn use_sigstore_attachments(&self, identity: &str) -> bool {
        self.scopes(identity)
            .find_map(|ns| ns.use_sigstore_attachments)
            .unwrap_or(false)
    }
}

fn builtin_dir(env: &Env) -> PathBuf {
    if env.uid == 0 {
        return env.system_path("/var/lib/containers/sigstore");
    }
    env.home_path(".local/share/containers/sigstore")
        .unwrap_or_else(|| env.system_path("/var/lib/containers/sigstore"))
}

fn parse_url(url: &str) -> Result<Lookaside, RegistriesDError> {
    let bad = |reason| RegistriesDError::Url {
        url: url.to_string(),
        reason,
    };
    if let Some(path) = url.strip_prefix("file://") {
        if !path.starts_with('/') {
            return Err(bad("a file:// URL needs an absolute path"));
        }
        return Ok(Lookaside::File(PathBuf::from(path.trim_end_matches('/'))));
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(Lookaside::Http(url.trim_end_matches('/').to_string()));
    }
    Err(bad("only file://, http:// and https:// are supported"))
}

impl Lookaside {
    /// Signature `index` (from 0) of a manifest of repository `path` (the name without
    /// its registry, e.g. `library/busybox`):
    /// `<base>/<path>@<algorithm>=<hex>/signature-<index+1>`.
    pub fn signature(&self, path: &str, digest: &Digest, index: usize) -> Lookaside {
        let leaf = format!(
            "{path}@{}={}/signature-{}",
            digest.algorithm().as_str(),
            digest.hex(),
            index + 1
        );
        match self {
            Lookaside::File(base) => Lookaside::File(base.join(leaf)),
            Lookaside::Http(base) => Lookaside::Http(format!("{base}/{leaf}")),
        }
    }
}

#[cfg(test)]
mod tests;
