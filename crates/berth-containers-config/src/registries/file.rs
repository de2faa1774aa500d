//! One registries.conf file: its TOML shape (v2, or v1 converted to v2) and the checks
//! containers/image applies to each file before merging (`loadConfigFile`,
//! `postProcessRegistries`). Unknown keys are ignored, as there.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use berth_image::ImageReference;
use serde::Deserialize;

use super::{Alias, Mirror, PullFromMirror, RegistriesError, Registry, ShortNameMode};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawFile {
    registry: Option<Vec<RawRegistry>>,
    unqualified_search_registries: Option<Vec<String>>,
    credential_helpers: Option<Vec<String>>,
    short_name_mode: Option<String>,
    aliases: Option<BTreeMap<String, String>>,
    /// v1: `[registries.search]`, `[registries.insecure]`, `[registries.block]`.
    registries: Option<RawV1>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawRegistry {
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    location: String,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    blocked: bool,
    #[serde(default)]
    mirror_by_digest_only: bool,
    #[serde(default, rename = "mirror")]
    mirrors: Vec<RawMirror>,
    /// Only valid on mirrors; present here so that misuse is refused, not ignored.
    #[serde(default)]
    pull_from_mirror: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawMirror {
    #[serde(default)]
    location: String,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    pull_from_mirror: String,
}

#[derive(Debug, Default, Deserialize)]
struct RawV1 {
    #[serde(default)]
    search: V1List,
    #[serde(default)]
    insecure: V1List,
    #[serde(default)]
    block: V1List,
}

#[derive(Debug, Default, Deserialize)]
struct V1List {
    #[serde(default)]
    registries: Vec<String>,
}

/// What one file sets. `None` means "not mentioned", so a drop-in leaves it alone.
#[derive(Debug, Default)]
pub(super) struct Layer {
    pub registries: Vec<Registry>,
    pub search: Option<Vec<String>>,
    pub credential_helpers: Option<Vec<String>>,
    pub short_name_mode: Option<ShortNameMode>,
    pub aliases: BTreeMap<String, Alias>,
}

/// Reads and checks one file. `v2_only` is set for drop-ins, which may not use v1.
pub(super) fn parse(text: &str, path: &Path, v2_only: bool) -> Result<Layer, RegistriesError> {
    let invalid = |reason: String| RegistriesError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let raw: RawFile = toml::from_str(text).map_err(|source| RegistriesError::Parse {
        path: path.to_path_buf(),
        source: Box::new(source),
    })?;
    let raw = match raw.registries {
        Some(v1) => {
            if v2_only {
                return Err(invalid("drop-in files must use the v2 format".into()));
            }
            let v2_set = raw.registry.is_some()
                || raw.unqualified_search_registries.is_some()
                || raw.credential_helpers.is_some()
                || raw.short_name_mode.is_some()
                || raw.aliases.is_some();
            if v2_set {
                return Err(invalid(
                    "mixing the v1 and v2 formats is not supported".into(),
                ));
            }
            from_v1(v1)
        }
        None => raw,
    };
    let short_name_mode = match raw.short_name_mode.as_deref() {
        None | Some("") => None,
        Some("enforcing") => Some(ShortNameMode::Enforcing),
        Some("permissive") => Some(ShortNameMode::Permissive),
        Some("disabled") => Some(ShortNameMode::Disabled),
        Some(other) => return Err(invalid(format!("invalid short-name mode {other:?}"))),
    };
    let search = raw
        .unqualified_search_registries
        .map(|list| list.iter().map(|s| location(s)).collect())
        .transpose()
        .map_err(invalid)?;
    let registries = registries(raw.registry.unwrap_or_default()).map_err(invalid)?;
    let aliases = aliases(raw.aliases.unwrap_or_default(), path).map_err(invalid)?;
    Ok(Layer {
        registries,
        search,
        credential_helpers: raw.credential_helpers,
        short_name_mode,
        aliases,
    })
}

/// v1 → v2 (`ConvertToV2`): every blocked or insecure host becomes a `[[registry]]`.
fn from_v1(v1: RawV1) -> RawFile {
    let mut order: Vec<String> = Vec::new();
    let mut by_location: HashMap<String, RawRegistry> = HashMap::new();
    let lists = [(v1.block.registries, true), (v1.insecure.registries, false)];
    for (hosts, blocked) in lists {
        for host in hosts {
            let reg = by_location.entry(host.clone()).or_insert_with(|| {
                order.push(host.clone());
                RawRegistry {
                    location: host.clone(),
                    ..RawRegistry::default()
                }
            });
            if blocked {
                reg.blocked = true;
            } else {
                reg.insecure = true;
            }
        }
    }
    RawFile {
        registry: Some(order.iter().filter_map(|l| by_location.remove(l)).collect()),
        unqualified_search_registries: Some(v1.search.registries),
        ..RawFile::default()
    }
}

/// Locations and prefixes lose trailing slashes and may not carry a URL scheme.
fn location(input: &str) -> Result<String, String> {
    let trimmed = input.trim_end_matches('/');
    if trimmed.starts_with("http://") || trimmed.starts_with("https://") {
        return Err(format!(
            "invalid location {input:?}: URI schemes are not supported"
        ));
    }
    Ok(trimmed.to_string())
}

fn registries(raw: Vec<RawRegistry>) -> Result<Vec<Registry>, String> {
    let mut out: Vec<Registry> = Vec::with_capacity(raw.len());
    for r in raw {
        let location = location(&r.location)?;
        let prefix = if r.prefix.is_empty() {
            if location.is_empty() {
                return Err("a [[registry]] has neither prefix nor location".into());
            }
            location.clone()
        } else {
            self::location(&r.prefix)?
        };
        if prefix.starts_with("*.") && prefix.contains(['/', '@', ':']) {
            return Err(format!(
                "wildcarded prefix {prefix:?} must have the form *.example.com"
            ));
        }
        if !r.pull_from_mirror.is_empty() {
            return Err(format!(
                "pull-from-mirror must not be set for a non-mirror registry {prefix:?}"
            ));
        }
        let mut mirrors = Vec::with_capacity(r.mirrors.len());
        for m in r.mirrors {
            let location = self::location(&m.location)?;
            if location.is_empty() {
                return Err(format!("a mirror of {prefix:?} has no location"));
            }
            let pull_from_mirror = match m.pull_from_mirror.as_str() {
                "" => None,
                "all" => Some(PullFromMirror::All),
                "digest-only" => Some(PullFromMirror::DigestOnly),
                "tag-only" => Some(PullFromMirror::TagOnly),
                other => {
                    return Err(format!(
                        "unsupported pull-from-mirror value {other:?} for mirror {location:?}"
                    ))
                }
            };
            if r.mirror_by_digest_only && pull_from_mirror.is_some() {
                return Err(format!(
                    "cannot set mirror-by-digest-only for {prefix:?} and pull-from-mirror for its mirror {location:?}"
                ));
            }
            mirrors.push(Mirror {
                location,
                insecure: m.insecure,
                pull_from_mirror,
            });
        }
        // The same physical registry may appear under several prefixes, but must then
        // agree on whether it is insecure or blocked.
        let key = |reg: &Registry| {
            if reg.location.is_empty() {
                reg.prefix.clone()
            } else {
                reg.location.clone()
            }
        };
        let reg = Registry {
            prefix,
            location,
            insecure: r.insecure,
            blocked: r.blocked,
            mirror_by_digest_only: r.mirror_by_digest_only,
            mirrors,
        };
        if let Some(other) = out.iter().find(|o| key(o) == key(&reg)) {
            if other.insecure != reg.insecure || other.blocked != reg.blocked {
                return Err(format!(
                    "registry {:?} is defined multiple times with conflicting insecure/blocked settings",
                    key(&reg)
                ));
            }
        }
        out.push(reg);
    }
    // The first table of a prefix wins within a file; the list is kept sorted by prefix.
    let mut unique: BTreeMap<String, Registry> = BTreeMap::new();
    for reg in out {
        unique.entry(reg.prefix.clone()).or_insert(reg);
    }
    Ok(unique.into_values().collect())
}

/// `[aliases]`: names are short names (no host, tag or digest), values name a host and
/// repository (no tag or digest). An empty value erases an alias set by an earlier file.
fn aliases(raw: BTreeMap<String, String>, path: &Path) -> Result<BTreeMap<String, Alias>, String> {
    let mut errors = Vec::new();
    let mut out = BTreeMap::new();
    for (name, value) in raw {
        if let Err(e) = validate_short_name(&name) {
            errors.push(e);
            continue;
        }
        let target = if value.is_empty() {
            None
        } else {
            match parse_alias_target(&value) {
                Ok(t) => Some(t),
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            }
        };
        out.insert(
            name,
            Alias {
                target,
                origin: PathBuf::from(path),
            },
        );
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        // All malformed entries at once, so fixing them is not whack-a-mole.
        Err(errors.join("; "))
    }
}

/// Splits `name[:tag][@digest]` into the name and the `:tag@digest` rest.
pub(super) fn split_suffix(input: &str) -> (&str, &str) {
    let end = input.find('@').unwrap_or(input.len());
    let last_slash = input[..end].rfind('/').map_or(0, |i| i + 1);
    let end = input[last_slash..end]
        .find(':')
        .map_or(end, |i| last_slash + i);
    input.split_at(end)
}

/// Whether the first path component names a registry host (containers/image's rule for
/// unnormalized names: a `.` or `:`, or `localhost`).
pub(super) fn names_host(name: &str) -> bool {
    match name.split_once('/') {
        Some((first, _)) => first.contains(['.', ':']) || first == "localhost",
        None => false,
    }
}

fn validate_short_name(name: &str) -> Result<(), String> {
    let (bare, suffix) = split_suffix(name);
    if !suffix.is_empty() {
        return Err(format!(
            "short name {name:?} must not contain a tag or digest"
        ));
    }
    if names_host(bare) {
        return Err(format!("short name {name:?} must not contain a registry"));
    }
    bare.parse::<ImageReference>()
        .map(drop)
        .map_err(|e| format!("short name {name:?}: {e}"))
}

fn parse_alias_target(value: &str) -> Result<ImageReference, String> {
    let (bare, suffix) = split_suffix(value);
    if !suffix.is_empty() {
        return Err(format!("alias {value:?} must not contain a tag or digest"));
    }
    if !names_host(bare) {
        return Err(format!(
            "alias {value:?} must contain registry and repository"
        ));
    }
    bare.parse().map_err(|e| format!("alias {value:?}: {e}"))
}
