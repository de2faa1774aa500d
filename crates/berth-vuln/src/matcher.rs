//! Matching an image's packages against the index: per package, the records filed
//! under the image's ecosystem and the package's name (the source package for Debian,
//! Ubuntu and Alpine, whose advisories are keyed by it; both names for rpm), each
//! range evaluated with the package manager's own comparator as the OSV spec's
//! evaluation algorithm says.

use crate::osv::{Event, Range};
use crate::severity::Severity;
use crate::version::compare;
use berth_inventory::model::{OsInfo, Package, PackageKind};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::HashMap;

/// One vulnerability affecting one installed package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The OSV id (`DSA-5678-1`, `DEBIAN-CVE-2024-1234`, `ALPINE-CVE-...`, `RHSA-...`).
    pub id: String,
    pub aliases: Vec<String>,
    /// The binary package's name.
    pub package: String,
    pub source_name: Option<String>,
    /// The installed version (the binary's).
    pub installed: String,
    /// The first fixed version above the installed one, when there is a fix.
    pub fixed: Option<String>,
    pub severity: Severity,
    /// The record's `published` (RFC 3339), or its `modified` when it has none: the
    /// date the health grade counts the age of an unapplied fix from.
    pub published: Option<String>,
}

pub(crate) struct RecordMeta {
    pub id: String,
    pub aliases: Vec<String>,
    pub published: Option<String>,
}

/// One affected[] entry of a record.
pub(crate) struct Entry {
    pub record: u32,
    pub ranges: Vec<Range>,
    pub versions: Vec<String>,
    pub severity: Severity,
}

/// The index in memory: ecosystem -> package name -> entries.
pub struct Matcher {
    records: Vec<RecordMeta>,
    entries: Vec<Entry>,
    index: HashMap<String, HashMap<String, Vec<u32>>>,
}

impl Matcher {
    pub(crate) fn new(records: Vec<RecordMeta>) -> Matcher {
        Matcher {
            records,
            entries: Vec::new(),
            index: HashMap::new(),
        }
    }

    pub(crate) fn add(&mut self, ecosystem: &str, name: &str, entry: Entry) {
        let at = self.entries.len() as u32;
        self.entries.push(entry);
        let names = match self.index.get_mut(ecosystem) {
            Some(n) => n,
            None => self.index.entry(ecosystem.to_string()).or_default(),
        };
        match names.get_mut(name) {
            Some(list) => list.push(at),
            None => {
                names.insert(name.to_string(), vec![at]);
            }
        }
    }

    /// Number of records (not withdrawn) loaded.
    pub fn records(&self) -> usize {
        self.records.len()
    }

    /// Whether the data has records for `os` (its ecosystem, e.g. `Debian:12`). An
    /// image of an OS berth cannot name (Fedora, openSUSE, Debian sid) or whose
    /// data was not imported has no findings for want of data, not because it is
    /// clean: its grade is `Unknown`, never A (as Trivy and Grype say "unsupported").
    pub fn covers(&self, os: &OsInfo) -> bool {
        !self.tables(os).is_empty()
    }

    /// The package tables filed under `os`'s ecosystem (for Red Hat, every stream of
    /// the release); none when it has no ecosystem.
    fn tables(&self, os: &OsInfo) -> Vec<&HashMap<String, Vec<u32>>> {
        let Some(ecosystem) = os.ecosystem.as_deref() else {
            return Vec::new();
        };
        match self.index.get(ecosystem) {
            Some(t) if !ecosystem.starts_with("Red Hat:") => vec![t],
            _ => self
                .index
                .iter()
                .filter(|(e, _)| ecosystem_matches(ecosystem, e))
                .map(|(_, t)| t)
                .collect(),
        }
    }

    /// The findings for one image: every package that some record's range or version
    /// list says is affected. Sorted by package, then id. An image whose OS has no
    /// ecosystem string has no findings (nothing to match against).
    pub fn findings(&self, os: &OsInfo, packages: &[Package]) -> Vec<Finding> {
        let tables = self.tables(os);
        let mut out = Vec::new();
        if tables.is_empty() {
            return out;
        }
        for pkg in packages {
            let first = out.len();
            for (name, version) in lookups(pkg) {
                for table in &tables {
                    for &e in table.get(name).map(Vec::as_slice).unwrap_or(&[]) {
                        let entry = &self.entries[e as usize];
                        let Some(fixed) = affected(pkg.kind, version, entry) else {
                            continue;
                        };
                        let meta = &self.records[entry.record as usize];
                        if out[first..].iter().any(|f: &Finding| f.id == meta.id) {
                            continue;
                        }
                        out.push(Finding {
                            id: meta.id.clone(),
                            aliases: meta.aliases.clone(),
                            package: pkg.name.clone(),
                            source_name: pkg.source_name.clone(),
                            installed: pkg.version.clone(),
                            fixed: fixed.map(str::to_string),
                            severity: entry.severity.clone(),
                            published: meta.published.clone(),
                        });
                    }
                }
            }
            drop_advisories_told_per_cve(&mut out, first);
        }
        out.sort_by(|a, b| a.package.cmp(&b.package).then_with(|| a.id.cmp(&b.id)));
        out
    }
}

/// The CVE ids a finding stands for: its own id's (`CVE-…`, `DEBIAN-CVE-…`,
/// `UBUNTU-CVE-…`, `ALPINE-CVE-…`) and its aliases'.
fn cves(f: &Finding) -> impl Iterator<Item = &str> {
    std::iter::once(f.id.as_str())
        .chain(f.aliases.iter().map(String::as_str))
        .filter_map(|id| id.find("CVE-").map(|at| &id[at..]))
}

/// Drops, from one package's findings (`out[first..]`), each advisory (`DSA-…`,
/// `DLA-…`, `USN-…`: an id naming no CVE) whose CVEs are each a finding of their own
/// there: the Debian and Ubuntu data publish both for the same fix, and counting both
/// made one vulnerability two (osv-scanner groups them by alias; Trivy reports per CVE).
/// An advisory with a CVE no record of its own covers stays.
fn drop_advisories_told_per_cve(out: &mut Vec<Finding>, first: usize) {
    let per_cve: std::collections::HashSet<String> = out[first..]
        .iter()
        .filter(|f| f.id.contains("CVE-"))
        .flat_map(|f| cves(f).map(str::to_string))
        .collect();
    let redundant = |f: &Finding| {
        let mut told = cves(f).peekable();
        !f.id.contains("CVE-") && told.peek().is_some() && told.all(|c| per_cve.contains(c))
    };
    let mut i = first;
    while i < out.len() {
        if redundant(&out[i]) {
            out.remove(i);
        } else {
            i += 1;
        }
    }
}

/// Whether a record filed under `record` applies to an image of `image`: the same
/// string (`Debian:12`, `Alpine:v3.19`, `Ubuntu:22.04:LTS`); for Red Hat, whose
/// ecosystems name a CPE stream (`Red Hat:enterprise_linux:9::appstream`), any stream
/// below the image's prefix (`Red Hat:enterprise_linux:9`).
pub fn ecosystem_matches(image: &str, record: &str) -> bool {
    record == image
        || (image.starts_with("Red Hat:")
            && record
                .strip_prefix(image)
                .is_some_and(|rest| rest.starts_with(':')))
}

/// The (name, version) pairs a package is looked up by: the source package (and its
/// version) for dpkg and apk, falling back to the binary; both names for rpm.
fn lookups(pkg: &Package) -> Vec<(&str, &str)> {
    let source = pkg.source_name.as_deref().filter(|s| !s.is_empty());
    match pkg.kind {
        PackageKind::Deb => {
            let version = pkg
                .source_version
                .as_deref()
                .filter(|_| source.is_some())
                .unwrap_or(&pkg.version);
            vec![(source.unwrap_or(&pkg.name), version)]
        }
        PackageKind::Apk => vec![(source.unwrap_or(&pkg.name), &pkg.version)],
        PackageKind::Rpm => match source {
            Some(s) if s != pkg.name => vec![(&pkg.name, &pkg.version), (s, &pkg.version)],
            _ => vec![(&pkg.name, &pkg.version)],
        },
    }
}

/// Whether `version` is affected by `entry`: in one of its ECOSYSTEM ranges or in its
/// `versions` list. When affected, the first fixed version above it (if any).
fn affected<'e>(kind: PackageKind, version: &str, entry: &'e Entry) -> Option<Option<&'e str>> {
    let listed = entry
        .versions
        .iter()
        .any(|v| compare(kind, v, version) == Ordering::Equal);
    if !listed && !entry.ranges.iter().any(|r| in_range(kind, version, r)) {
        return None;
    }
    let fixed = entry
        .ranges
        .iter()
        .flat_map(|r| &r.events)
        .filter_map(|e| match e {
            Event::Fixed(f) if compare(kind, f, version) == Ordering::Greater => Some(f.as_str()),
            _ => None,
        })
        .min_by(|a, b| compare(kind, a, b));
    Some(fixed)
}

/// The OSV spec's evaluation of one range: events sorted by version (`introduced: 0`
/// first), `introduced` at or below the version makes it vulnerable, `fixed` at or
/// below makes it not, `last_affected` below makes it not; `limit` events bound the
/// range from above.
fn in_range(kind: PackageKind, version: &str, range: &Range) -> bool {
    let mut limits = range.events.iter().filter_map(|e| match e {
        Event::Limit(l) => Some(l.as_str()),
        _ => None,
    });
    let mut has_limit = false;
    let below_a_limit = limits.any(|l| {
        has_limit = true;
        l == "*" || compare(kind, version, l) == Ordering::Less
    });
    if has_limit && !below_a_limit {
        return false;
    }
    fn key(e: &Event) -> Option<&str> {
        match e {
            Event::Introduced(v) if v == "0" => None,
            other => Some(other.version()),
        }
    }
    let mut events: Vec<&Event> = range
        .events
        .iter()
        .filter(|e| !matches!(e, Event::Limit(_)))
        .collect();
    events.sort_by(|a, b| match (key(a), key(b)) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => compare(kind, x, y),
    });
    let mut vulnerable = false;
    for e in events {
        match e {
            Event::Introduced(i) if i == "0" || compare(kind, version, i) != Ordering::Less => {
                vulnerable = true
            }
            Event::Fixed(f) if compare(kind, version, f) != Ordering::Less => vulnerable = false,
            Event::LastAffected(l) if compare(kind, version, l) == Ordering::Greater => {
                vulnerable = false
            }
            _ => {}
        }
    }
    vulnerable
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(events: Vec<Event>) -> Entry {
        Entry {
            record: 0,
            ranges: vec![Range {
                kind: "ECOSYSTEM".into(),
                events,
            }],
            versions: vec![],
            severity: crate::Severity::unknown(),
        }
    }

    #[test]
    fn range_evaluation_follows_the_osv_algorithm() {
        use Event::*;
        let deb = PackageKind::Deb;
        // Events in any order are sorted first.
        let e = entry(vec![
            Fixed("2.5".into()),
            Introduced("2.0".into()),
            Fixed("1.5".into()),
            Introduced("1.0".into()),
        ]);
        assert_eq!(affected(deb, "0.9", &e), None);
        assert_eq!(affected(deb, "1.2", &e), Some(Some("1.5")));
        assert_eq!(affected(deb, "1.5", &e), None);
        assert_eq!(affected(deb, "2.0~rc1", &e), None);
        assert_eq!(affected(deb, "2.4", &e), Some(Some("2.5")));
        // last_affected is inclusive; limit bounds the range from above.
        let e = entry(vec![Introduced("0".into()), LastAffected("1.4".into())]);
        assert_eq!(affected(deb, "1.4", &e), Some(None));
        assert_eq!(affected(deb, "1.4+b1", &e), None);
        let e = entry(vec![Introduced("0".into()), Limit("3.0".into())]);
        assert_eq!(affected(deb, "2.9", &e), Some(None));
        assert_eq!(affected(deb, "3.0", &e), None);
        // Non-ECOSYSTEM ranges are dropped at import; the rpm comparator is used for rpm.
        let e = entry(vec![Introduced("0".into()), Fixed("1:1.0-1.el9".into())]);
        assert_eq!(
            affected(PackageKind::Rpm, "1.0-1.el9", &e),
            Some(Some("1:1.0-1.el9")),
            "epoch 0 < 1"
        );
    }

    #[test]
    fn red_hat_streams_match_by_prefix_others_exactly() {
        assert!(ecosystem_matches(
            "Red Hat:enterprise_linux:9",
            "Red Hat:enterprise_linux:9::appstream"
        ));
        assert!(!ecosystem_matches(
            "Red Hat:enterprise_linux:9",
            "Red Hat:enterprise_linux:90::x"
        ));
        assert!(ecosystem_matches("Debian:12", "Debian:12"));
        assert!(!ecosystem_matches("Debian:12", "Debian:11"));
        assert!(!ecosystem_matches("Alpine:v3.19", "Alpine:v3.1"));
    }
}
