//! `registries.conf` (v2, and the old v1 format): which registry an image name really
//! lives on, through which mirrors it is pulled, which hosts are insecure or blocked, and
//! how short names such as `alpine` become full references. Follows containers/image's
//! `pkg/sysregistriesv2` and `pkg/shortnames`, so berth pulls from the same places
//! podman would on the same machine.

mod file;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use berth_image::{ImageReference, ReferenceError};

use crate::env::Env;
use file::Layer;

#[derive(Debug, thiserror::Error)]
pub enum RegistriesError {
    #[error("reading {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} is not valid TOML: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("registry {prefix} is blocked in {files}")]
    Blocked { prefix: String, files: String },
    #[error("rewriting {reference} with the registry {prefix:?} as {rewritten:?}: {source}")]
    Rewrite {
        reference: String,
        prefix: String,
        rewritten: String,
        source: ReferenceError,
    },
    #[error(
        "registry {prefix:?} has no location to pull from (only *.wildcard prefixes may omit it)"
    )]
    NoLocation { prefix: String },
    #[error("{name:?} is not a valid image name: {source}")]
    Name {
        name: String,
        source: ReferenceError,
    },
    #[error("short name {name:?} did not resolve to an alias and no unqualified-search registries are defined in {origin}")]
    NoSearchRegistries { name: String, origin: String },
    #[error("short-name resolution of {name:?} is enforced but cannot prompt without a TTY (candidates: {candidates})")]
    Ambiguous { name: String, candidates: String },
}

/// How a short name with several candidates is handled (`short-name-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShortNameMode {
    /// Prompt on a terminal; without one, refuse.
    Enforcing,
    /// Prompt on a terminal; without one, try every candidate. The default.
    #[default]
    Permissive,
    /// Never prompt: try every candidate.
    Disabled,
}

/// When a mirror is used (`pull-from-mirror`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullFromMirror {
    All,
    DigestOnly,
    TagOnly,
}

/// A `[[registry.mirror]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    pub location: String,
    pub insecure: bool,
    /// `None` when unset: the mirror serves all pulls unless the registry has
    /// `mirror-by-digest-only`.
    pub pull_from_mirror: Option<PullFromMirror>,
}

/// A `[[registry]]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    /// `host[:port][/ns…]`, or `*.example.com`.
    pub prefix: String,
    /// Where the prefix really lives; empty only for wildcard prefixes (no rewrite).
    pub location: String,
    pub insecure: bool,
    pub blocked: bool,
    pub mirror_by_digest_only: bool,
    pub mirrors: Vec<Mirror>,
}

/// One place to try when pulling a single image, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullSource {
    /// The image as named on this endpoint (prefix rewritten to the location).
    pub reference: ImageReference,
    /// Plain HTTP and unverified TLS allowed.
    pub insecure: bool,
    /// A mirror rather than the registry's own location.
    pub mirror: bool,
}

/// An `[aliases]` entry; `target: None` is an alias erased by a later drop-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Alias {
    target: Option<ImageReference>,
    origin: PathBuf,
}

/// Why a short name resolved the way it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolvedBy {
    /// The name was already fully qualified.
    Qualified,
    /// An `[aliases]` entry in this file.
    Alias(PathBuf),
    /// `unqualified-search-registries`, from this file.
    SearchRegistries(PathBuf),
}

/// The result of [`Registries::resolve_short_name`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// References to try, in order (each with a tag or digest).
    pub candidates: Vec<ImageReference>,
    pub resolved_by: ResolvedBy,
    /// The caller should let the user pick one of `candidates` (several candidates,
    /// not `disabled`, and a terminal). When false, try them in order.
    pub prompt: bool,
}

/// The merged registries configuration of one user.
#[derive(Debug, Clone, Default)]
pub struct Registries {
    registries: Vec<Registry>,
    search: Vec<String>,
    search_origin: Option<PathBuf>,
    short_name_mode: ShortNameMode,
    credential_helpers: Vec<String>,
    aliases: BTreeMap<String, Alias>,
    /// The main file and the drop-in directories, for messages.
    main_file: PathBuf,
    dropin_dirs: Vec<PathBuf>,
}

impl Registries {
    /// Loads the configuration as containers/image does (`newConfigWrapper`,
    /// `tryUpdatingCache`):
    ///
    /// - main file: `$CONTAINERS_REGISTRIES_CONF` when set (it must exist); else
    ///   `~/.config/containers/registries.conf` when it exists; else
    ///   `/etc/containers/registries.conf` (missing is fine: empty configuration);
    /// - then every `*.conf` (v2 only) in `/etc/containers/registries.conf.d` and then in
    ///   `~/.config/containers/registries.conf.d`, each directory in byte order; when the
    ///   per-user main file was used, only the per-user directory is read.
    ///
    /// A `$CONTAINERS_REGISTRIES_CONF` replaces only the main file: drop-ins are still
    /// read (lab: skopeo 1.9.3 `--registries-conf` and podman behave so).
    pub fn load(env: &Env) -> Result<Registries, RegistriesError> {
        let user_file = env.home_path(".config/containers/registries.conf");
        let user_dir = env.home_path(".config/containers/registries.conf.d");
        let system_dir = env.system_path("/etc/containers/registries.conf.d");
        let (main_file, required, dirs) = match (&env.registries_conf, user_file) {
            (Some(p), _) => (p.clone(), true, vec![Some(system_dir), user_dir]),
            (None, Some(u)) if u.exists() => (u, false, vec![user_dir]),
            (None, _) => (
                env.system_path("/etc/containers/registries.conf"),
                false,
                vec![Some(system_dir), user_dir],
            ),
        };
        let dirs: Vec<PathBuf> = dirs.into_iter().flatten().collect();
        let mut config = Registries {
            main_file: main_file.clone(),
            dropin_dirs: dirs.clone(),
            ..Registries::default()
        };
        if let Some(text) = read_optional(&main_file, required)? {
            config.merge(file::parse(&text, &main_file, false)?, &main_file);
        }
        for dir in &dirs {
            for path in dropins(dir)? {
                if let Some(text) = read_optional(&path, true)? {
                    config.merge(file::parse(&text, &path, true)?, &path);
                }
            }
        }
        Ok(config)
    }

    /// Applies a later file: registries replace those with an identical prefix, lists
    /// and the mode replace earlier ones when the file sets them, aliases are
    /// overridden one by one.
    fn merge(&mut self, layer: Layer, path: &Path) {
        let mut by_prefix: BTreeMap<String, Registry> = std::mem::take(&mut self.registries)
            .into_iter()
            .map(|r| (r.prefix.clone(), r))
            .collect();
        for r in layer.registries {
            by_prefix.insert(r.prefix.clone(), r);
        }
        self.registries = by_prefix.into_values().collect();
        if let Some(search) = layer.search {
            self.search = search;
            self.search_origin = Some(path.to_path_buf());
        }
        if let Some(helpers) = layer.credential_helpers {
            self.credential_helpers = helpers;
        }
        if let Some(mode) = layer.short_name_mode {
            self.short_name_mode = mode;
        }
        self.aliases.extend(layer.aliases);
    }

    /// All `[[registry]]` tables, sorted by prefix.
    pub fn registries(&self) -> &[Registry] {
        &self.registries
    }

    pub fn unqualified_search_registries(&self) -> &[String] {
        &self.search
    }

    pub fn short_name_mode(&self) -> ShortNameMode {
        self.short_name_mode
    }

    /// Whether a file set `unqualified-search-registries` (even to `[]`, which says
    /// that short names are not to be searched).
    pub fn search_registries_set(&self) -> bool {
        self.search_origin.is_some()
    }

    /// The global `credential-helpers`; empty means `["containers-auth.json"]` (see
    /// [`crate::auth::AuthFiles::credentials`]).
    pub fn credential_helpers(&self) -> &[String] {
        &self.credential_helpers
    }

    /// The alias target of a short name (without tag or digest), if one is configured.
    pub fn alias(&self, short_name: &str) -> Option<&ImageReference> {
        self.aliases.get(short_name)?.target.as_ref()
    }

    /// The `[[registry]]` whose prefix is the longest match for the image's repository
    /// (`host/path`, as containers/image's docker transport asks).
    pub fn find(&self, image: &ImageReference) -> Option<&Registry> {
        self.find_name(&image.name())
    }

    /// The `[[registry]]` whose prefix is the longest match for `name`, a host with
    /// an optional path (`host:5000`, `host/ns`), as containers/image's
    /// `FindRegistry` reads what `login` was given.
    /// Of equal lengths (`*.example.com` and `q.example.com`), the prefix that sorts
    /// first wins, as containers/image keeps the first of its sorted list.
    pub fn find_name(&self, name: &str) -> Option<&Registry> {
        self.registries
            .iter()
            .filter(|r| prefix_match(name, &r.prefix).is_some())
            .max_by(|a, b| {
                (a.prefix.len().cmp(&b.prefix.len())).then_with(|| b.prefix.cmp(&a.prefix))
            })
    }

    /// Where to pull one image from, in order (`PullSourcesFromReference`): the mirrors
    /// that apply, then the registry's own location, each with the matched prefix
    /// rewritten. An image no table matches is pulled from where it names. Only for
    /// reading a single image: pushes, tag lists and searches use the primary location.
    pub fn pull_sources(&self, image: &ImageReference) -> Result<Vec<PullSource>, RegistriesError> {
        let Some(reg) = self.find(image) else {
            return Ok(vec![PullSource {
                reference: image.clone(),
                insecure: false,
                mirror: false,
            }]);
        };
        if reg.blocked {
            return Err(RegistriesError::Blocked {
                prefix: reg.prefix.clone(),
                files: self.describe_files(),
            });
        }
        let digested = image.digest().is_some();
        let mirrors = reg.mirrors.iter().filter(|m| {
            if reg.mirror_by_digest_only {
                return digested;
            }
            match m.pull_from_mirror {
                Some(PullFromMirror::DigestOnly) => digested,
                Some(PullFromMirror::TagOnly) => !digested,
                Some(PullFromMirror::All) | None => true,
            }
        });
        let mut sources = Vec::new();
        for m in mirrors {
            sources.push(PullSource {
                reference: rewrite(image, &reg.prefix, &m.location)?,
                insecure: m.insecure,
                mirror: true,
            });
        }
        sources.push(PullSource {
            reference: rewrite(image, &reg.prefix, &reg.location)?,
            insecure: reg.insecure,
            mirror: false,
        });
        Ok(sources)
    }

    /// Turns what the user typed into references to try (`shortnames.Resolve`):
    ///
    /// 1. a name with a registry host is used as is;
    /// 2. else an `[aliases]` entry for the name (tag and digest stripped for the lookup,
    ///    then put back) is the one answer;
    /// 3. else one candidate per `unqualified-search-registries` entry. With several,
    ///    `disabled` tries them all; otherwise with `is_tty` (stdin and stdout both
    ///    terminals) the caller should prompt (`prompt: true`); without a terminal
    ///    `permissive` tries them all and `enforcing` is an error.
    ///
    /// Candidates get `:latest` when they have neither tag nor digest. The cache of
    /// earlier prompt answers (`short-name-aliases.conf`) is not consulted.
    pub fn resolve_short_name(
        &self,
        name: &str,
        is_tty: bool,
    ) -> Result<Resolution, RegistriesError> {
        let parse = |s: &str| {
            s.parse::<ImageReference>()
                .map(ImageReference::with_default_tag)
                .map_err(|source| RegistriesError::Name {
                    name: s.to_string(),
                    source,
                })
        };
        let parsed = parse(name)?;
        let (bare, suffix) = file::split_suffix(name);
        if file::names_host(bare) {
            return Ok(Resolution {
                candidates: vec![parsed],
                resolved_by: ResolvedBy::Qualified,
                prompt: false,
            });
        }
        if let Some(alias) = self.aliases.get(bare) {
            if let Some(target) = &alias.target {
                return Ok(Resolution {
                    candidates: vec![parse(&format!("{}{suffix}", target.name()))?],
                    resolved_by: ResolvedBy::Alias(alias.origin.clone()),
                    prompt: false,
                });
            }
        }
        let origin = match (&self.search_origin, self.search.is_empty()) {
            (Some(origin), false) => origin.clone(),
            (origin, _) => {
                return Err(RegistriesError::NoSearchRegistries {
                    name: name.to_string(),
                    origin: origin
                        .as_ref()
                        .map_or_else(|| self.describe_files(), |o| o.display().to_string()),
                })
            }
        };
        let candidates = self
            .search
            .iter()
            .map(|reg| parse(&format!("{reg}/{name}")))
            .collect::<Result<Vec<_>, _>>()?;
        let several = candidates.len() > 1;
        let mode = self.short_name_mode;
        if several && mode == ShortNameMode::Enforcing && !is_tty {
            return Err(RegistriesError::Ambiguous {
                name: name.to_string(),
                candidates: candidates
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok(Resolution {
            candidates,
            resolved_by: ResolvedBy::SearchRegistries(origin),
            prompt: several && is_tty && mode != ShortNameMode::Disabled,
        })
    }

    fn describe_files(&self) -> String {
        let dirs: Vec<String> = self
            .dropin_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        format!("{} or {}", self.main_file.display(), dirs.join(" or "))
    }
}

/// The length of `prefix` matched in `reference` (`refMatchingPrefix`), or `None`.
/// A plain prefix must end at a component boundary (`/`, `:` or `@` follows, or the end):
/// `example.com/foo` matches `example.com/foo/bar` but not `example.com/foobar`.
/// `*.example.com` matches any subdomain host (`a.b.example.com`, not `example.com`).
fn prefix_match(reference: &str, prefix: &str) -> Option<usize> {
    let boundary =
        |at: usize| at == reference.len() || matches!(reference.as_bytes()[at], b':' | b'/' | b'@');
    if let Some(domain) = prefix.strip_prefix('*') {
        // `domain` is `.example.com`; it must sit inside the host part.
        let at = reference.find(domain)?;
        if reference[..at].contains('/') {
            return None;
        }
        let end = at + domain.len();
        return boundary(end).then_some(end);
    }
    (reference.starts_with(prefix) && boundary(prefix.len())).then_some(prefix.len())
}

/// `prefix`-rooted `image` moved to `location` (`rewriteReference`); an empty location
/// (wildcard prefixes only) keeps the image as it is.
fn rewrite(
    image: &ImageReference,
    prefix: &str,
    location: &str,
) -> Result<ImageReference, RegistriesError> {
    let full = image.to_string();
    let err = |rewritten: String, source| RegistriesError::Rewrite {
        reference: full.clone(),
        prefix: prefix.to_string(),
        rewritten,
        source,
    };
    if location.is_empty() {
        if prefix.starts_with("*.") {
            return Ok(image.clone());
        }
        return Err(RegistriesError::NoLocation {
            prefix: prefix.to_string(),
        });
    }
    let Some(len) = prefix_match(&full, prefix) else {
        return Err(err(String::new(), ReferenceError::Format(full.clone())));
    };
    let rewritten = format!("{location}{}", &full[len..]);
    rewritten
        .parse()
        .map_err(|source| err(rewritten.clone(), source))
}

fn read_optional(path: &Path, required: bool) -> Result<Option<String>, RegistriesError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound && !required => Ok(None),
        Err(source) => Err(RegistriesError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The `*.conf` files directly in `dir`, in byte order of their names. A missing
/// directory has none; sub-directories and other files are ignored.
fn dropins(dir: &Path) -> Result<Vec<PathBuf>, RegistriesError> {
    let io_err = |source| RegistriesError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err)?;
        let path = entry.path();
        let is_conf = entry.file_name().to_string_lossy().ends_with(".conf");
        if is_conf && !path.is_dir() {
            files.push(path);
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

#[cfg(test)]
mod tests;
