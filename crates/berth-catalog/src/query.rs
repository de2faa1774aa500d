//! What the catalog API answers, as plain data (serde), for the registry's
//! `/api/v1/repositories/NAME[/manifests/DIGEST[/packages|/vulnerabilities|
//! /containerfile|/sbom]]` routes. Access control is the caller's job: these take a
//! repository the caller may read.
//!
//! Allow-lists are applied here, at query time, so an entry's expiry takes effect
//! without a rematch: grades and counts are computed from the findings minus the
//! entries in force.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use berth_image::Digest;
use berth_inventory::{Containerfile, Inventory, Package, PackageKind};
use berth_vuln::{Finding, Grade, GradeInput, Level};
use serde::{Deserialize, Serialize};

use crate::store::{InventoryHead, ScanRecord, ScanStatus};
use crate::{unix_now, Catalog, CatalogError, Result};

/// One image of a tag (an index has one per platform).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ImageSummary {
    pub digest: String,
    pub platform: Option<String>,
    pub created: Option<String>,
    pub size: u64,
    /// `ok`, `failed`, `pending` (not scanned yet).
    pub status: String,
    pub error: Option<String>,
    pub grade: Option<String>,
    pub critical: usize,
    pub high: usize,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TagSummary {
    pub tag: String,
    pub digest: String,
    /// When the tag was last set (unix seconds).
    pub pushed_at: i64,
    pub media_type: Option<String>,
    pub images: Vec<ImageSummary>,
    /// The worst grade of its images.
    pub grade: Option<String>,
    pub critical: usize,
    pub high: usize,
    /// The registry holds a signature of this manifest (a simple signature, or the
    /// sigstore attachment tag `sha256-<hex>.sig`); present, not verified.
    pub signed: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RepositoryView {
    pub name: String,
    pub description: Option<String>,
    /// Newest first, semver-aware ([`crate::tags`]).
    pub tags: Vec<TagSummary>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ManifestView {
    pub repository: String,
    pub digest: String,
    pub media_type: Option<String>,
    pub status: String,
    pub error: Option<String>,
    pub annotations: BTreeMap<String, String>,
    /// The images: itself, or an index's children.
    pub images: Vec<ImageDetail>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ImageDetail {
    #[serde(flatten)]
    pub summary: ImageSummary,
    pub labels: BTreeMap<String, String>,
    pub os: Option<berth_inventory::OsInfo>,
    pub base_image: Option<String>,
    pub packages: usize,
    pub next_grade_drop: Option<i64>,
}

/// Packages of an image against another's (`?diff=`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PackageDiff {
    pub added: Vec<Package>,
    pub removed: Vec<Package>,
    /// `(from, to)`: same name and architecture, another version.
    pub changed: Vec<(Package, Package)>,
}

/// A package diff's counts and the first entries of each list
/// ([`Catalog::package_diff_head`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PackageDiffHead {
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
    pub first: PackageDiff,
}

/// The order of a package list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageSort {
    Name,
    /// The package manager's version order (dpkg, rpm, apk): `1.10` after `1.9`.
    Version,
    Source,
}

impl PackageSort {
    /// `version`, `source`; anything else is by name.
    pub fn parse(s: &str) -> PackageSort {
        match s {
            "version" => PackageSort::Version,
            "source" => PackageSort::Source,
            _ => PackageSort::Name,
        }
    }

    /// What [`PackageSort::parse`] reads back.
    pub fn name(self) -> &'static str {
        match self {
            PackageSort::Name => "name",
            PackageSort::Version => "version",
            PackageSort::Source => "source",
        }
    }
}

/// One page of a package list ([`Catalog::package_page`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PackagePage {
    /// How many packages match (every page).
    pub total: usize,
    /// The page shown, clamped to those that exist (1-based).
    pub page: usize,
    pub packages: Vec<Package>,
}

/// A finding as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FindingView {
    #[serde(flatten)]
    pub finding: Finding,
    /// Tags of the same repository whose image (same platform) does not have it.
    pub fixed_in_tags: Vec<String>,
    /// The allow-list entry in force for it, if any (it then counts for nothing).
    pub allowed: Option<crate::AllowEntry>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VulnerabilityReport {
    pub digest: String,
    pub grade: Option<String>,
    pub next_grade_drop: Option<i64>,
    pub counts: BTreeMap<String, usize>,
    pub findings: Vec<FindingView>,
    /// The vulnerability data's imports (how fresh it is).
    pub data: Vec<serde_json::Value>,
}

/// Filters of `/vulnerabilities`.
#[derive(Debug, Clone, Default)]
pub struct VulnFilter {
    /// Only findings with a fixed version.
    pub fixable: bool,
    /// Only these levels (`critical`, `high`, ...; any case). Empty: all.
    pub severities: Vec<String>,
}

/// A finding that an allow-list entry in force covers.
type Allowed = (Finding, crate::AllowEntry);
/// An image digest and its platform (as its index names it).
type PlatformImage = (String, Option<String>);

/// Whether the last match graded the image `Unknown`: the data does not cover its OS,
/// a package database of it could not be read, or no finding has a severity (vulns.rs).
/// Grades are otherwise computed again from the findings, as they age; that would read
/// an uncovered image's empty list as A, and an unreadable database's few findings
/// (one harmless finding beside a hidden database) as the grade they alone give.
fn uncovered(inv: &InventoryHead) -> bool {
    inv.grade.as_deref() == Some("Unknown")
}

fn level_name(l: Level) -> String {
    format!("{l:?}")
}

impl Catalog {
    /// The findings of an image with the allow-list of `repo` applied at `now`:
    /// `(counted, allowed with their entries)`.
    fn findings_split(
        &self,
        repo: &str,
        digest: &str,
        now: i64,
    ) -> Result<(Vec<Finding>, Vec<Allowed>)> {
        let allow: BTreeMap<String, crate::AllowEntry> = self
            .db
            .allowlist(repo, now)?
            .into_iter()
            .map(|e| (e.finding_id.clone(), e))
            .collect();
        let mut counted = Vec::new();
        let mut allowed = Vec::new();
        for json in self.db.finding_json(digest)? {
            let f: Finding = serde_json::from_str(&json)
                .map_err(|e| CatalogError::Corrupt(format!("finding of {digest}: {e}")))?;
            let entry = std::iter::once(&f.id)
                .chain(&f.aliases)
                .find_map(|id| allow.get(id).cloned());
            match entry {
                Some(e) => allowed.push((f, e)),
                None => counted.push(f),
            }
        }
        Ok((counted, allowed))
    }

    /// Grade and critical/high counts of an image in `repo` at `now` (allow-list
    /// applied); none without data or inventory. When no allow-list entry in force
    /// names one of its findings (the usual case) they come from the findings'
    /// columns; otherwise the findings are read whole to tell which entry covers
    /// which.
    fn grade_of(
        &self,
        repo: &str,
        inv: Option<&InventoryHead>,
        now: i64,
    ) -> Result<(Option<Grade>, usize, usize)> {
        let Some(inv) = inv.filter(|i| i.grade.is_some()) else {
            return Ok((None, 0, 0));
        };
        let digest = inv.manifest_digest.as_str();
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(now.max(0) as u64);
        let count = |levels: &mut dyn Iterator<Item = Level>| {
            levels.fold((0, 0), |(c, h), l| match l {
                Level::Critical => (c + 1, h),
                Level::High => (c, h + 1),
                _ => (c, h),
            })
        };
        // The grade the findings give, unless the match graded the image Unknown.
        let graded = |g: Grade| match uncovered(inv) {
            true => Grade::UNKNOWN,
            false => g,
        };
        if self.db.allows_any(repo, digest, now)? {
            let (counted, _) = self.findings_split(repo, digest, now)?;
            let (critical, high) = count(&mut counted.iter().map(|f| f.severity.level));
            return Ok((
                Some(graded(berth_vuln::grade(&counted, at))),
                critical,
                high,
            ));
        }
        let facts = self.db.finding_facts(digest)?;
        let grade = berth_vuln::grade_inputs(
            facts.iter().map(|f| GradeInput {
                level: f.level,
                fixable: f.fixable,
                published: f.published.as_deref(),
            }),
            at,
        );
        let (critical, high) = count(&mut facts.iter().map(|f| f.level));
        Ok((Some(graded(grade)), critical, high))
    }

    /// An image's summary, its grade (computed once: a grade reads every finding)
    /// and its stored inventory head.
    fn image_summary(
        &self,
        repo: &str,
        digest: &str,
        platform: Option<String>,
        now: i64,
    ) -> Result<(ImageSummary, Option<Grade>, Option<InventoryHead>)> {
        let inv = self.db.inventory_head(digest)?;
        let (grade, critical, high) = self.grade_of(repo, inv.as_ref(), now)?;
        let summary = match &inv {
            None => ImageSummary {
                digest: digest.to_string(),
                platform,
                created: None,
                size: 0,
                status: "pending".into(),
                error: None,
                grade: None,
                critical: 0,
                high: 0,
            },
            Some(inv) => ImageSummary {
                digest: digest.to_string(),
                platform: inv.facts.platform.clone().or(platform),
                created: inv.facts.created.clone(),
                size: inv.facts.size,
                status: if inv.result.is_ok() { "ok" } else { "failed" }.into(),
                error: inv.result.as_ref().err().cloned(),
                grade: grade.as_ref().map(|g| format!("{:?}", g.letter)),
                critical,
                high,
            },
        };
        Ok((summary, grade, inv))
    }

    /// The images a manifest stands for: itself, or an index's children.
    fn images_of(
        &self,
        repo: &str,
        digest: &str,
    ) -> Result<(Option<ScanRecord>, Vec<PlatformImage>)> {
        let scan = self.db.scan(repo, digest)?;
        let images = match &scan {
            Some(s) if !s.children.is_empty() => s
                .children
                .iter()
                .map(|c| (c.digest.clone(), c.platform.clone()))
                .collect(),
            _ => vec![(digest.to_string(), None)],
        };
        Ok((scan, images))
    }

    /// `/api/v1/repositories/NAME`: its description and tags, newest first (in tag
    /// order among the [`crate::tags::TAG_WINDOW`] set most recently). Tags naming the
    /// same manifest share one summary.
    pub fn repository(&self, repo: &str) -> Result<Option<RepositoryView>> {
        if !self.meta.repository_exists(repo)? {
            return Ok(None);
        }
        let now = unix_now();
        let mut tags = self.meta.recent_tags(repo, crate::tags::TAG_WINDOW)?;
        tags.sort_by(|a, b| crate::tags::compare_newest_first((&a.0, a.2), (&b.0, b.2)));
        let digests: BTreeSet<String> = tags.iter().map(|(_, d, _)| d.to_string()).collect();
        let digests: Vec<&str> = digests.iter().map(String::as_str).collect();
        let signed = self.signed_among(
            repo,
            &digests,
            &crate::search::SignatureTags::of(&tags),
            usize::MAX,
        )?;
        let mut seen: HashMap<Digest, TagSummary> = HashMap::new();
        let mut out = Vec::with_capacity(tags.len());
        for (tag, digest, pushed_at) in tags {
            let summary = match seen.get(&digest) {
                Some(s) => s.clone(),
                None => {
                    let is_signed = signed.contains(&digest.to_string());
                    let s = self.tag_summary(repo, &digest, is_signed, now)?;
                    seen.insert(digest, s.clone());
                    s
                }
            };
            out.push(TagSummary {
                tag,
                pushed_at,
                ..summary
            });
        }
        let description = self.db.read(|c| {
            Ok(
                c.prepare_cached("SELECT description FROM search_repos WHERE repository = ?1")?
                    .query_row([repo], |r| r.get::<_, Option<String>>(0))
                    .ok()
                    .flatten(),
            )
        })?;
        Ok(Some(RepositoryView {
            name: repo.to_string(),
            description,
            tags: out,
        }))
    }

    /// A tag's summary but its name and push time: the manifest's images, worst
    /// grade, counts, and `signed` (asked for every tag at once: `signed_among`).
    fn tag_summary(
        &self,
        repo: &str,
        digest: &Digest,
        signed: bool,
        now: i64,
    ) -> Result<TagSummary> {
        let d = digest.to_string();
        let (scan, images) = self.images_of(repo, &d)?;
        let images = images
            .into_iter()
            .map(|(d, p)| self.image_summary(repo, &d, p, now).map(|(s, _, _)| s))
            .collect::<Result<Vec<_>>>()?;
        Ok(TagSummary {
            grade: worst_grade(images.iter().filter_map(|i| i.grade.as_deref())),
            critical: images.iter().map(|i| i.critical).sum(),
            high: images.iter().map(|i| i.high).sum(),
            tag: String::new(),
            digest: d,
            pushed_at: 0,
            media_type: scan.map(|s| s.media_type),
            images,
            signed,
        })
    }

    /// `/api/v1/repositories/NAME/manifests/DIGEST`: the overview.
    pub fn manifest(&self, repo: &str, digest: &Digest) -> Result<Option<ManifestView>> {
        let Some(stored) = self.meta.manifest_by_digest(repo, digest)? else {
            return Ok(None);
        };
        let d = digest.to_string();
        let now = unix_now();
        let (scan, images) = self.images_of(repo, &d)?;
        let mut details = Vec::new();
        for (img, platform) in images {
            let (summary, grade, inv) = self.image_summary(repo, &img, platform, now)?;
            details.push(ImageDetail {
                summary,
                labels: inv
                    .as_ref()
                    .map(|i| i.facts.labels.clone())
                    .unwrap_or_default(),
                os: inv.as_ref().and_then(|i| i.os.clone()),
                base_image: inv.as_ref().and_then(|i| i.facts.base_image.clone()),
                packages: inv
                    .as_ref()
                    .filter(|i| i.result.is_ok())
                    .map_or(0, |i| i.packages),
                next_grade_drop: grade.and_then(|g| g.next_drop),
            });
        }
        Ok(Some(ManifestView {
            repository: repo.to_string(),
            digest: d,
            media_type: Some(stored.media_type),
            status: match scan.as_ref().map(|s| s.status) {
                None => "pending".into(),
                Some(ScanStatus::Ok) => "ok".into(),
                Some(ScanStatus::Failed) => "failed".into(),
                Some(ScanStatus::Skipped) => "skipped".into(),
            },
            error: scan.as_ref().and_then(|s| s.error.clone()),
            annotations: scan.map(|s| s.annotations).unwrap_or_default(),
            images: details,
        }))
    }

    /// An image's inventory (for `/packages`, `/containerfile`, SBOMs). `Err` of the
    /// inner result: why the scan failed.
    pub fn inventory(
        &self,
        digest: &str,
    ) -> Result<Option<std::result::Result<Inventory, String>>> {
        Ok(self.db.inventory(digest)?.map(|i| i.result))
    }

    /// An image's packages (from their rows: the inventory's JSON is not read), none
    /// without an inventory or when its scan failed.
    pub fn inventory_packages(&self, digest: &str) -> Result<Option<Vec<Package>>> {
        match self.db.inventory_head(digest)? {
            Some(head) if head.result.is_ok() => Ok(Some(self.db.packages(digest)?)),
            _ => Ok(None),
        }
    }

    /// `/packages`: an image's packages whose name contains `name` (all when empty).
    pub fn packages(&self, digest: &str, name: &str) -> Result<Option<Vec<Package>>> {
        Ok(self.inventory_packages(digest)?.map(|all| {
            all.into_iter()
                .filter(|p| name.is_empty() || p.name.contains(name))
                .collect()
        }))
    }

    /// `/packages?diff=OTHER`: what `digest` has that `other` has not, and back
    /// (computed once per pair: [`crate::CatalogDb::package_diff`]).
    pub fn package_diff(&self, digest: &str, other: &str) -> Result<Option<PackageDiff>> {
        Ok(self
            .package_diff_head(digest, other, usize::MAX)?
            .map(|h| h.first))
    }

    /// The diff of `digest` against `other` as a page shows it: how many packages
    /// were added, removed and changed, and the first `limit` of each (only those
    /// rows are read).
    pub fn package_diff_head(
        &self,
        digest: &str,
        other: &str,
        limit: usize,
    ) -> Result<Option<PackageDiffHead>> {
        let Some(d) = self.db.package_diff(other, digest)? else {
            return Ok(None);
        };
        let first = |v: &[usize]| -> Vec<i64> { v.iter().take(limit).map(|&i| i as i64).collect() };
        let changed = d.changed.iter().take(limit);
        let from: Vec<i64> = changed.clone().map(|&(o, _)| o as i64).collect();
        let to: Vec<i64> = changed.map(|&(_, i)| i as i64).collect();
        let (from, to) = (
            self.db.packages_at(other, &from)?,
            self.db.packages_at(digest, &to)?,
        );
        Ok(Some(PackageDiffHead {
            added: d.added.len(),
            removed: d.removed.len(),
            changed: d.changed.len(),
            first: PackageDiff {
                added: self.db.packages_at(digest, &first(&d.added))?,
                removed: self.db.packages_at(other, &first(&d.removed))?,
                changed: from.into_iter().zip(to).collect(),
            },
        }))
    }

    /// One page of an image's packages whose name contains `needle`, in `sort`
    /// order; none without an inventory or when its scan failed. Every order is
    /// SQL's over stored columns (version order through each row's stored rank), so
    /// a page reads its rows only. Rows that tie keep the inventory's order.
    pub fn package_page(
        &self,
        digest: &str,
        needle: &str,
        sort: PackageSort,
        page: usize,
        per_page: usize,
    ) -> Result<Option<PackagePage>> {
        match self.db.inventory_head(digest)? {
            Some(head) if head.result.is_ok() => {}
            _ => return Ok(None),
        }
        let per_page = per_page.max(1);
        let total = self.db.package_count(digest, needle)?;
        let page = page.clamp(1, total.div_ceil(per_page).max(1));
        let packages =
            self.db
                .package_page(digest, needle, sort, (page - 1) * per_page, per_page)?;
        Ok(Some(PackagePage {
            total,
            page,
            packages,
        }))
    }

    /// `/containerfile` (its column alone).
    pub fn containerfile(&self, digest: &str) -> Result<Option<Containerfile>> {
        self.db.containerfile(digest)
    }

    /// `/vulnerabilities`: an image's findings in `repo`, allow-list applied, with
    /// the tags of the same repository that no longer have each.
    pub fn vulnerabilities(
        &self,
        repo: &str,
        digest: &str,
        filter: &VulnFilter,
    ) -> Result<Option<VulnerabilityReport>> {
        let Some(inv) = self.db.inventory_head(digest)? else {
            return Ok(None);
        };
        let now = unix_now();
        let (counted, allowed) = self.findings_split(repo, digest, now)?;
        // As grade_of computes it, from the findings already read.
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(now.max(0) as u64);
        let grade = match uncovered(&inv) {
            true => Some(Grade::UNKNOWN),
            false => inv.grade.is_some().then(|| berth_vuln::grade(&counted, at)),
        };
        let mut counts = BTreeMap::new();
        for f in &counted {
            *counts.entry(level_name(f.severity.level)).or_insert(0) += 1;
        }
        // Other tags' images of the same platform (among the tags set most recently),
        // and the finding keys they have: read once per manifest however many tags
        // name it.
        type Keys = std::rc::Rc<BTreeSet<(String, String)>>;
        let mut others: Vec<(String, Keys)> = Vec::new();
        let mut seen: HashMap<Digest, Option<Keys>> = HashMap::new();
        for (tag, d, _) in self.meta.recent_tags(repo, crate::tags::TAG_WINDOW)? {
            let keys = match seen.get(&d) {
                Some(k) => k.clone(),
                None => {
                    let (_, images) = self.images_of(repo, &d.to_string())?;
                    let same = images.iter().find(|(img, _)| {
                        self.db.inventory_head(img).ok().flatten().is_some_and(|i| {
                            i.facts.platform == inv.facts.platform && i.result.is_ok()
                        })
                    });
                    let keys = match same {
                        Some((img, _)) if img != digest => {
                            Some(Keys::new(self.db.finding_keys(img)?.into_iter().collect()))
                        }
                        _ => None,
                    };
                    seen.insert(d, keys.clone());
                    keys
                }
            };
            if let Some(keys) = keys {
                others.push((tag, keys));
            }
        }
        others.sort_by(|a, b| a.0.cmp(&b.0));
        let severities: Vec<String> = filter.severities.iter().map(|s| s.to_lowercase()).collect();
        let keep = |f: &Finding| {
            (!filter.fixable || f.fixed.is_some())
                && (severities.is_empty()
                    || severities.contains(&level_name(f.severity.level).to_lowercase()))
        };
        let view = |f: Finding, allowed: Option<crate::AllowEntry>| {
            let key = (f.id.clone(), f.package.clone());
            let fixed_in_tags = others
                .iter()
                .filter(|(_, keys)| !keys.contains(&key))
                .map(|(t, _)| t.clone())
                .collect();
            FindingView {
                finding: f,
                fixed_in_tags,
                allowed,
            }
        };
        let mut findings: Vec<FindingView> = counted
            .into_iter()
            .filter(|f| keep(f))
            .map(|f| view(f, None))
            .chain(
                allowed
                    .into_iter()
                    .filter(|(f, _)| keep(f))
                    .map(|(f, e)| view(f, Some(e))),
            )
            .collect();
        findings.sort_by(|a, b| {
            a.finding
                .severity
                .level
                .cmp(&b.finding.severity.level)
                .then_with(|| a.finding.id.cmp(&b.finding.id))
                .then_with(|| a.finding.package.cmp(&b.finding.package))
        });
        Ok(Some(VulnerabilityReport {
            digest: digest.to_string(),
            grade: grade.map(|g| format!("{:?}", g.letter)),
            next_grade_drop: grade.and_then(|g| g.next_drop),
            counts,
            findings,
            data: self.vuln_imports()?,
        }))
    }
}

/// The worst of some grades (`F` worst of the letters; `Unknown` only when nothing
/// else is known).
fn worst_grade<'a>(grades: impl Iterator<Item = &'a str>) -> Option<String> {
    let mut worst: Option<&str> = None;
    for g in grades {
        worst = Some(match worst {
            None => g,
            Some("Unknown") => g,
            Some(w) if g != "Unknown" && g > w => g,
            Some(w) => w,
        });
    }
    worst.map(String::from)
}

/// A package diff by position: each package's index in its inventory (its `seq`),
/// in key order. What the catalog stores, so a page reads only the rows it shows.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DiffIndices {
    pub added: Vec<usize>,
    pub removed: Vec<usize>,
    /// `(in from, in to)`.
    pub changed: Vec<(usize, usize)>,
}

/// Packages of `to` against `from`, keyed by (kind, name, architecture), as
/// positions in the two lists.
pub fn diff_indices(from: &[Package], to: &[Package]) -> DiffIndices {
    fn key(p: &Package) -> (PackageKind, &str, Option<&str>) {
        (p.kind, &p.name, p.arch.as_deref())
    }
    let old: BTreeMap<_, usize> = from.iter().enumerate().map(|(i, p)| (key(p), i)).collect();
    let new: BTreeMap<_, usize> = to.iter().enumerate().map(|(i, p)| (key(p), i)).collect();
    let mut d = DiffIndices::default();
    for (k, &i) in &new {
        match old.get(k) {
            None => d.added.push(i),
            Some(&o) if from[o].version != to[i].version => d.changed.push((o, i)),
            Some(_) => {}
        }
    }
    for (k, &o) in &old {
        if !new.contains_key(k) {
            d.removed.push(o);
        }
    }
    d
}

/// Packages of `to` against `from`, keyed by (kind, name, architecture), in key
/// order.
pub fn diff_packages(from: &[Package], to: &[Package]) -> PackageDiff {
    let d = diff_indices(from, to);
    PackageDiff {
        added: d.added.iter().map(|&i| to[i].clone()).collect(),
        removed: d.removed.iter().map(|&o| from[o].clone()).collect(),
        changed: d
            .changed
            .iter()
            .map(|&(o, i)| (from[o].clone(), to[i].clone()))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::pkg as p;

    #[test]
    fn package_diff_names_added_removed_changed() {
        let d = diff_packages(
            &[p("a", "1"), p("b", "1"), p("c", "1")],
            &[p("a", "1"), p("b", "2"), p("d", "1")],
        );
        assert_eq!(d.added, [p("d", "1")]);
        assert_eq!(d.removed, [p("c", "1")]);
        assert_eq!(d.changed, [(p("b", "1"), p("b", "2"))]);
    }

    #[test]
    fn the_worst_grade_wins_and_unknown_only_alone() {
        assert_eq!(
            worst_grade(["A", "C", "B"].into_iter()).as_deref(),
            Some("C")
        );
        assert_eq!(
            worst_grade(["Unknown", "B"].into_iter()).as_deref(),
            Some("B")
        );
        assert_eq!(
            worst_grade(["Unknown"].into_iter()).as_deref(),
            Some("Unknown")
        );
        assert_eq!(worst_grade(std::iter::empty()), None);
    }
}
