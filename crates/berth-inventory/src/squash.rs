//! An image's inventory from its layers' artifacts, without reading a layer again.
//!
//! The OCI rule (image-spec `layer.md`) decides which copy of a file the image has:
//! the newest layer that carries the path wins; a whiteout (`.wh.NAME`) or an opaque
//! folder (`.wh..wh..opq`) in a layer hides the path in the layers below it, never in
//! its own. Each database path is resolved on its own, as Trivy's applier and
//! claircore's coalescer do, so distroless' `status.d/*` files come and go one by one.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::containerfile;
use crate::model::{Containerfile, ImageHistory, Inventory, LayerArtifacts, OsInfo, Package};
use crate::paths;

/// What one layer says about one path.
enum Node<'a> {
    Db(&'a [Package]),
    Os(&'a OsInfo),
    Build(&'a str),
    Link(&'a str),
    Error(&'a str),
}

/// The layers' artifacts indexed by path, and each layer's whiteouts and opaque
/// folders as sets: a path is checked against them by its ancestors (a few lookups),
/// not against every entry (thousands of whiteouts times thousands of paths).
struct View<'a> {
    nodes: Vec<HashMap<&'a str, Node<'a>>>,
    whiteouts: Vec<HashSet<&'a str>>,
    opaque: Vec<HashSet<&'a str>>,
}

/// A package as squashing tells copies apart: kind, name, architecture, version.
type PackageKey<'a> = (
    crate::model::PackageKind,
    &'a str,
    &'a Option<String>,
    &'a str,
);

fn key(p: &Package) -> PackageKey<'_> {
    (p.kind, &p.name, &p.arch, &p.version)
}

/// `path` itself, then each folder above it (`a/b/c`, `a/b`, `a`).
fn self_and_ancestors(path: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(path), |p| p.rsplit_once('/').map(|(dir, _)| dir))
}

impl<'a> View<'a> {
    fn new(layers: &'a [LayerArtifacts]) -> Self {
        let nodes = layers
            .iter()
            .map(|l| {
                let mut m = HashMap::new();
                for (p, pkgs) in &l.databases {
                    m.insert(p.as_str(), Node::Db(pkgs));
                }
                for (p, os) in &l.os_release {
                    m.insert(p.as_str(), Node::Os(os));
                }
                for (p, text) in &l.buildinfo {
                    m.insert(p.as_str(), Node::Build(text));
                }
                for (p, target) in &l.symlinks {
                    m.insert(p.as_str(), Node::Link(target));
                }
                for (p, reason) in &l.errors {
                    m.insert(p.as_str(), Node::Error(reason));
                }
                m
            })
            .collect();
        let set = |list: &'a [String]| list.iter().map(String::as_str).collect();
        View {
            nodes,
            whiteouts: layers.iter().map(|l| set(&l.whiteouts)).collect(),
            opaque: layers.iter().map(|l| set(&l.opaque_dirs)).collect(),
        }
    }

    /// Whether layer `i` hides `path` of the layers below it: a whiteout of the path
    /// or a folder above it, or an opaque folder above it.
    fn hides(&self, i: usize, path: &str) -> bool {
        let (whiteouts, opaque) = (&self.whiteouts[i], &self.opaque[i]);
        if whiteouts.is_empty() && opaque.is_empty() {
            return false;
        }
        self_and_ancestors(path).any(|p| whiteouts.contains(p))
            || self_and_ancestors(path).skip(1).any(|d| opaque.contains(d))
    }

    /// The copies of `path` the image sees through, newest first: the winning copy,
    /// then the copies below it down to the first layer that hides the path.
    fn chain(&self, path: &str) -> Vec<(usize, &Node<'a>)> {
        let mut out = Vec::new();
        for i in (0..self.nodes.len()).rev() {
            if let Some(node) = self.nodes[i].get(path) {
                out.push((i, node));
            }
            if self.hides(i, path) {
                break;
            }
        }
        out
    }

    fn winner(&self, path: &str) -> Option<(usize, &Node<'a>)> {
        self.chain(path).into_iter().next()
    }

    /// The winning copy of `path`, symbolic links followed (a few hops).
    fn resolve(&self, path: &str) -> Option<(usize, String, &Node<'a>)> {
        let mut path = path.to_string();
        for _ in 0..8 {
            let (i, node) = self.winner(&path)?;
            match node {
                Node::Link(target) => path = paths::resolve_link(&path, target)?,
                _ => return Some((i, path, node)),
            }
        }
        None
    }

    fn all_paths(&self) -> BTreeSet<&'a str> {
        self.nodes.iter().flat_map(|m| m.keys().copied()).collect()
    }
}

/// The inventory of an image whose layers (bottom first) have these artifacts; with
/// its history, the Containerfile is rebuilt from it when the image carries none.
pub fn squash(layers: &[LayerArtifacts], history: Option<&ImageHistory>) -> Inventory {
    let view = View::new(layers);
    let mut inv = Inventory {
        os: os(&view),
        unreadable: unread(&view, layers, false),
        ..Inventory::default()
    };
    let mut seen = HashSet::new();
    for path in view.all_paths() {
        let chain = view.chain(path);
        if let Some((top, Node::Db(pkgs))) = chain.first() {
            // The packages of each copy below the winner, as sets: `introduced` asks
            // of every package whether each copy lists it.
            let below: Vec<(usize, HashSet<PackageKey>)> = chain[1..]
                .iter()
                .map_while(|(i, node)| match node {
                    Node::Db(pkgs) => Some((*i, pkgs.iter().map(key).collect())),
                    _ => None,
                })
                .collect();
            for pkg in pkgs.iter() {
                if !seen.insert(key(pkg)) {
                    continue; // listed by two databases (status and status.d)
                }
                let mut p = pkg.clone();
                p.layer_index = introduced(*top, &below, pkg);
                p.purl = crate::purl::purl(&p, inv.os.as_ref());
                inv.packages.push(p);
            }
        }
    }
    inv.packages.sort_by(|a, b| {
        (a.kind as u8, &a.name, &a.arch, &a.version, &a.db_path).cmp(&(
            b.kind as u8,
            &b.name,
            &b.arch,
            &b.version,
            &b.db_path,
        ))
    });
    let history = history.filter(|h| !h.history.is_empty());
    // A carried build file tells how the image was built only when it came with the
    // top layer (a Red Hat build adds it last): below, it is a base image's, and the
    // steps built on that base are in the history.
    let top = layers.len().checked_sub(1);
    inv.containerfile = real_containerfile(&view)
        .filter(|(layer, _)| history.is_none() || Some(*layer) == top)
        .map(|(_, cf)| cf)
        .or_else(|| history.map(containerfile::reconstruct));
    inv
}

/// The files of the squashed image that could not be read (`layer 2:
/// var/lib/dpkg/status: 70000000 bytes, over the ...`): what they list is missing
/// from [`squash`]'s inventory, and lower copies of them do not stand in. Databases
/// read in part are listed too, with what was skipped.
pub fn unreadable_files(layers: &[LayerArtifacts]) -> Vec<String> {
    unread(&View::new(layers), layers, true)
}

/// The winning copies that are errors, and with `partial` the databases read in part.
fn unread(view: &View, layers: &[LayerArtifacts], partial: bool) -> Vec<String> {
    view.all_paths()
        .into_iter()
        .filter_map(|path| match view.winner(path) {
            Some((i, Node::Error(reason))) => Some(format!("layer {i}: {path}: {reason}")),
            // A database read in part: its other packages are in the inventory.
            Some((i, Node::Db(_))) if partial => layers[i]
                .warnings
                .iter()
                .find(|(p, _)| p == path)
                .map(|(_, skipped)| {
                    format!("layer {i}: {path}: {skipped} (skipped; the rest read)")
                }),
            _ => None,
        })
        .collect()
}

/// The lowest layer from which every copy up to the winner (in layer `top`) lists
/// `pkg` at the same version: the layer that installed this version of it. `below`:
/// the database copies under the winner, newest first, as package sets.
fn introduced(top: usize, below: &[(usize, HashSet<PackageKey>)], pkg: &Package) -> usize {
    below
        .iter()
        .take_while(|(_, listed)| listed.contains(&key(pkg)))
        .last()
        .map_or(top, |(i, _)| *i)
}

/// The OS: `etc/os-release` (often a link to `../usr/lib/os-release`), else
/// `usr/lib/os-release`, else the older one-line release files.
fn os(view: &View) -> Option<OsInfo> {
    [
        "etc/os-release",
        "usr/lib/os-release",
        "etc/alpine-release",
        "etc/debian_version",
        "etc/redhat-release",
    ]
    .iter()
    .find_map(|p| match view.resolve(p) {
        Some((_, _, Node::Os(os))) => Some((*os).clone()),
        _ => None,
    })
}

/// The build file the image carries (`root/buildinfo/Dockerfile-*`, or under
/// `usr/share/buildinfo/`) and its layer: of several (a layered Red Hat image has its
/// base's too), the one of the newest layer.
fn real_containerfile(view: &View) -> Option<(usize, Containerfile)> {
    view.all_paths()
        .into_iter()
        .filter(|p| {
            let (dir, base) = p.rsplit_once('/').unwrap_or(("", p));
            (dir == "root/buildinfo" || dir == "usr/share/buildinfo")
                && (base.starts_with("Dockerfile-") || base.starts_with("Containerfile-"))
        })
        .filter_map(|p| match view.resolve(p) {
            Some((i, _, Node::Build(text))) => Some((i, p, *text)),
            _ => None,
        })
        .max_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)))
        .map(|(layer, path, text)| {
            let cf = Containerfile {
                reconstructed: false,
                path: Some(path.to_string()),
                text: text.to_string(),
                steps: Vec::new(),
            };
            (layer, cf)
        })
}

/// Of the candidate images (key, their diff_ids), the one this image (`diff_ids`) was
/// built on: the longest whose layers are a strict prefix of this image's. Ties go to
/// the first candidate given.
pub fn base_image<'a, K>(
    diff_ids: &[String],
    candidates: impl IntoIterator<Item = (K, &'a [String])>,
) -> Option<K> {
    let mut best: Option<(usize, K)> = None;
    for (key, ids) in candidates {
        let n = ids.len();
        if n == 0 || n >= diff_ids.len() || diff_ids[..n] != *ids {
            continue;
        }
        if best.as_ref().is_none_or(|(m, _)| n > *m) {
            best = Some((n, key));
        }
    }
    best.map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_is_the_longest_strict_prefix() {
        let ids = |s: &str| s.split(',').map(String::from).collect::<Vec<_>>();
        let image = ids("a,b,c");
        let (c1, c2, c3, c4) = (ids("a"), ids("a,b"), ids("a,b,c"), ids("b"));
        let cands = [
            ("one", &c1[..]),
            ("two", &c2[..]),
            ("same", &c3[..]),
            ("other", &c4[..]),
        ];
        assert_eq!(base_image(&image, cands), Some("two"));
        assert_eq!(base_image(&image, [("same", &c3[..])]), None);
        assert_eq!(base_image(&ids("a"), [("one", &c1[..])]), None);
    }
}
