//! Search over repositories: free text (name, description, labels, annotations,
//! OS/arch, package names: SQLite FTS5) and exact filters (`label=KEY=VALUE`, `os=`,
//! `arch=`, `grade=`, `signed=`: the `search_facets` table; `package=`: the `packages`
//! index; `cve=`: the `finding_ids` index, ids and aliases). Ranking: repositories
//! whose name contains the text first, then by FTS5's bm25 with the name and
//! description weighted above the rest, then by name. Each page carries the facet
//! counts (OS, architecture, grade, signed) of everything the query matched that the
//! caller may read, counted from a packed copy of those facets on each matched row
//! (`search_repos.facets`): reading `search_facets` for them cost every query a scan
//! of all its os/arch/grade rows (10 ms at 10,000 repositories, even for 6 matches).
//!
//! A repository's search row is rebuilt from its tagged images whenever one of its
//! manifests is scanned (and from every scanned image while it has no tag), and when
//! a signature of one of its images arrives ([`Catalog::notify_signatures`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rusqlite::{params_from_iter, types::Value, OptionalExtension};
use serde::Serialize;

use crate::store::{CatalogDb, ScanStatus};
use crate::{unix_now, Catalog, Result};

/// Most tagged images one repository's search row is built from (the newest tags).
const MAX_IMAGES_INDEXED: usize = 200;
/// Tags read to find a hit's last push (the newest that is not an attachment).
const LAST_PUSHED_WINDOW: usize = 64;
/// Largest page.
pub const MAX_PER_PAGE: usize = 100;

/// What to look for. Empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    pub q: String,
    /// `(key, value)` pairs, all required.
    pub labels: Vec<(String, String)>,
    pub os: Option<String>,
    pub arch: Option<String>,
    /// A package's binary name.
    pub package: Option<String>,
    /// A vulnerability id or alias (`CVE-2024-1234`, `DSA-5000-1`).
    pub cve: Option<String>,
    /// `A`..`F` or `Unknown`.
    pub grade: Option<String>,
    /// Only signed (`Some(true)`) or unsigned (`Some(false)`) repositories, as
    /// [`SearchRow::signed`] says.
    pub signed: Option<bool>,
    /// 1-based.
    pub page: usize,
    pub per_page: usize,
}

/// One repository found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SearchHit {
    pub repository: String,
    pub description: Option<String>,
    pub platforms: Vec<String>,
    pub grades: Vec<String>,
    /// The name contains the text (these rank first).
    pub name_match: bool,
    /// When its newest tag was set (unix seconds; sigstore attachment tags left out).
    /// Filled by [`Catalog::search`] from the registry's metadata; none from
    /// [`CatalogDb::search`] alone, or for a repository without tags.
    pub last_pushed: Option<i64>,
    /// One of its tagged images has a signature ([`SearchRow::signed`]).
    pub signed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SearchPage {
    /// Matching repositories the caller may read.
    pub total: usize,
    pub page: usize,
    pub per_page: usize,
    pub results: Vec<SearchHit>,
    /// Counts over every match the caller may read (not only this page).
    pub facets: Facets,
}

/// How many matching repositories have each value, over every match of the query
/// (all its filters applied) that the caller may read; each list sorted by value,
/// values with no repository left out. A repository with images of two
/// architectures counts once under each.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Facets {
    pub os: Vec<(String, usize)>,
    pub arch: Vec<(String, usize)>,
    /// `A`..`F`, `Unknown`: the grades its images have (each image's own).
    pub grade: Vec<(String, usize)>,
    /// `no` and `yes`.
    pub signed: Vec<(String, usize)>,
}

/// The facet value a signed repository has in `search_facets` (`signed`, `yes`);
/// unsigned repositories have no row, so rows written before signatures counted read
/// as unsigned.
const SIGNED: &str = "yes";
/// The facets a search counts, packed into `search_repos.facets`.
const COUNTED: [&str; 4] = ["os", "arch", "grade", "signed"];
/// Separates `facet=value` items in `search_repos.facets` (values holding it are left
/// out of the counts; they stay filterable through `search_facets`).
const SEP: char = '\u{1f}';

/// The FTS5 query for free text: each word a quoted prefix, all required. None when
/// the text has no word.
fn fts_query(q: &str) -> Option<String> {
    // Each whitespace-separated term is one phrase of its words, the last a prefix:
    // `search-a` is `"search a"*`, which finds `test/search-alpha` and not every
    // repository with a word starting with `a` (`amd64`) beside one named `search`.
    let phrases: Vec<String> = q
        .split_whitespace()
        .filter_map(|term| {
            let words: Vec<String> = term
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(str::to_lowercase)
                .collect();
            (!words.is_empty()).then(|| format!("\"{}\"*", words.join(" ")))
        })
        .collect();
    (!phrases.is_empty()).then(|| phrases.join(" "))
}

/// One image's part of its repository's search row ([`CatalogDb::search_facts`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SearchFacts {
    pub manifest_digest: String,
    pub platform: Option<String>,
    pub os: Option<String>,
    pub architecture: Option<String>,
    /// The config's labels.
    pub labels: BTreeMap<String, String>,
    pub grade: Option<String>,
    /// The inventory's OS (none when it has none or the scan failed).
    pub os_info: Option<berth_inventory::OsInfo>,
}

impl CatalogDb {
    /// Repositories matching `query` in rank order, filtered by `readable` (the
    /// caller's access), one page of them with their details.
    pub fn search(
        &self,
        query: &SearchQuery,
        readable: &dyn Fn(&str) -> bool,
    ) -> Result<SearchPage> {
        let per_page = query.per_page.clamp(1, MAX_PER_PAGE);
        let page = query.page.max(1);
        let needle = query.q.trim().to_lowercase();
        let fts = fts_query(&needle);
        let mut args: Vec<Value> = Vec::new();
        let mut arg = |v: String| {
            args.push(Value::Text(v));
            format!("?{}", args.len())
        };
        let mut sql = String::new();
        let mut filters: Vec<String> = Vec::new();
        let name_tier = if needle.is_empty() {
            "0".to_string()
        } else {
            format!(
                "CASE WHEN instr(lower(r.repository), {}) > 0 THEN 0 ELSE 1 END",
                arg(needle.clone())
            )
        };
        match &fts {
            Some(f) => {
                // The text matches once, first (materialized): as a plain subquery
                // SQLite ran the full-text query again for every repository.
                let p = arg(f.clone());
                sql.push_str(&format!(
                    "WITH f AS MATERIALIZED (SELECT rowid AS id,
                       bm25(search_text, 10.0, 5.0, 2.0, 1.0, 1.0, 1.0) AS rank
                       FROM search_text WHERE search_text MATCH {p})
                     SELECT r.repository, {name_tier} AS tier, coalesce(f.rank, 0.0) AS rank, r.facets
                     FROM search_repos r LEFT JOIN f ON f.id = r.id"
                ));
                filters.push(format!("({name_tier} = 0 OR f.id IS NOT NULL)"));
            }
            None => {
                sql.push_str(&format!(
                    "SELECT r.repository, {name_tier} AS tier, 0.0 AS rank, r.facets FROM search_repos r"
                ));
                if !needle.is_empty() {
                    filters.push(format!("{name_tier} = 0"));
                }
            }
        }
        let mut facet = |name: &str, value: &str, filters: &mut Vec<String>| {
            let (f, v) = (arg(name.into()), arg(value.into()));
            filters.push(format!(
                "r.repository IN (SELECT repository FROM search_facets WHERE facet = {f} AND value = {v})"
            ));
        };
        for (k, v) in &query.labels {
            facet("label", &format!("{k}={v}"), &mut filters);
        }
        if let Some(os) = &query.os {
            facet("os", os, &mut filters);
        }
        if let Some(a) = &query.arch {
            facet("arch", a, &mut filters);
        }
        if let Some(g) = &query.grade {
            facet("grade", g, &mut filters);
        }
        if let Some(signed) = query.signed {
            let (f, v) = (arg("signed".into()), arg(SIGNED.into()));
            let not = if signed { "" } else { "NOT " };
            filters.push(format!(
                "r.repository {not}IN (SELECT repository FROM search_facets WHERE facet = {f} AND value = {v})"
            ));
        }
        if let Some(p) = &query.package {
            let p = arg(p.clone());
            filters.push(format!(
                "r.repository IN (SELECT s.repository FROM packages p JOIN scan_state s
                   ON s.manifest_digest = p.manifest_digest WHERE p.name = {p})"
            ));
        }
        if let Some(c) = &query.cve {
            let c = arg(c.clone());
            filters.push(format!(
                "r.repository IN (SELECT s.repository FROM finding_ids i JOIN scan_state s
                   ON s.manifest_digest = i.manifest_digest WHERE i.vuln_id = {c})"
            ));
        }
        if !filters.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&filters.join(" AND "));
        }
        // Without text every tier and rank is equal: the name index gives the order.
        sql.push_str(if needle.is_empty() {
            " ORDER BY r.repository"
        } else {
            " ORDER BY tier, rank, r.repository"
        });

        let skip = page.saturating_sub(1).saturating_mul(per_page);
        let (names, counter) = self.read(|c| {
            let mut st = c.prepare_cached(&sql)?;
            let mut rows = st.query(params_from_iter(args.iter()))?;
            // Every readable match: the page is cut from it, the facets counted over it
            // from the packed column of the same row (no other read).
            let mut counter = FacetCounter::default();
            let mut names = Vec::new();
            while let Some(row) = rows.next()? {
                let name = row.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
                if !readable(name) {
                    continue;
                }
                if counter.total >= skip && names.len() < per_page {
                    let tier: i64 = row.get(1)?;
                    names.push((name.to_string(), tier == 0 && !needle.is_empty()));
                }
                counter.add(
                    row.get_ref(3)?
                        .as_str_or_null()
                        .map_err(rusqlite::Error::from)?,
                );
            }
            Ok((names, counter))
        })?;
        let total = counter.total;
        let mut results = Vec::with_capacity(names.len());
        for (name, name_match) in names {
            results.push(self.hit(&name, name_match)?);
        }
        Ok(SearchPage {
            total,
            page,
            per_page,
            results,
            facets: counter.finish(),
        })
    }

    fn hit(&self, repository: &str, name_match: bool) -> Result<SearchHit> {
        self.read(|c| {
            let description = c
                .prepare_cached("SELECT description FROM search_repos WHERE repository = ?1")?
                .query_row([repository], |r| r.get::<_, Option<String>>(0))?;
            let mut st = c.prepare_cached(
                // All of its facets (a few rows, by the repository index), filtered
                // here: with `facet IN (…)` SQLite chose the primary key and read
                // every platform and grade row of every repository (2.5 ms a hit).
                "SELECT facet, value FROM search_facets WHERE repository = ?1 ORDER BY facet, value",
            )?;
            let rows = st.query_map([repository], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            let (mut platforms, mut grades, mut signed) = (Vec::new(), Vec::new(), false);
            for row in rows {
                let (f, v) = row?;
                match f.as_str() {
                    "platform" => platforms.push(v),
                    "grade" => grades.push(v),
                    "signed" => signed |= v == SIGNED,
                    _ => {}
                }
            }
            Ok(SearchHit {
                repository: repository.to_string(),
                description,
                platforms,
                grades,
                name_match,
                last_pushed: None,
                signed,
            })
        })
    }

    /// Replaces a repository's search row: its description, free text and facets.
    pub fn put_search_row(&self, repository: &str, row: &SearchRow) -> Result<()> {
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO search_repos (repository, description, updated_at, facets)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (repository) DO UPDATE SET description = excluded.description,
                   updated_at = excluded.updated_at, facets = excluded.facets",
            )?
            .execute(rusqlite::params![
                repository,
                row.description,
                unix_now(),
                packed_facets(row)
            ])?;
            let id: i64 = tx
                .prepare_cached("SELECT id FROM search_repos WHERE repository = ?1")?
                .query_row([repository], |r| r.get(0))?;
            tx.prepare_cached("DELETE FROM search_text WHERE rowid = ?1")?
                .execute([id])?;
            let join = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(" ");
            tx.prepare_cached(
                "INSERT INTO search_text (rowid, name, description, labels, annotations, platform, packages)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(rusqlite::params![
                id,
                repository,
                row.description.clone().unwrap_or_default(),
                join(&row.labels),
                join(&row.annotations),
                join(&row.platform_words),
                join(&row.packages),
            ])?;
            tx.prepare_cached("DELETE FROM search_facets WHERE repository = ?1")?
                .execute([repository])?;
            let mut ins = tx.prepare_cached(
                "INSERT INTO search_facets (facet, value, repository) VALUES (?1, ?2, ?3)
                 ON CONFLICT (facet, value, repository) DO NOTHING",
            )?;
            for (facet, values) in [
                ("label", &row.labels),
                ("os", &row.os),
                ("arch", &row.arch),
                ("platform", &row.platforms),
                ("grade", &row.grades),
            ] {
                for v in values {
                    ins.execute(rusqlite::params![facet, v, repository])?;
                }
            }
            if row.signed {
                ins.execute(rusqlite::params!["signed", SIGNED, repository])?;
            }
            Ok(())
        })
    }

    /// Whether `repository` is in search.
    pub fn has_search_row(&self, repository: &str) -> Result<bool> {
        self.read(|c| {
            Ok(
                c.prepare_cached("SELECT 1 FROM search_repos WHERE repository = ?1")?
                    .query_row([repository], |_| Ok(()))
                    .optional()?
                    .is_some(),
            )
        })
    }

    /// What the search rows take from each of `digests` that has an inventory, in
    /// one read: a row is rebuilt after every push from up to
    /// `MAX_IMAGES_INDEXED` images, and [`CatalogDb::inventory_head`] for each (a
    /// read of its own, the package count, the layer list) was most of that.
    pub fn search_facts(&self, digests: &[String]) -> Result<Vec<SearchFacts>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT status, platform, os, architecture, labels, grade,
                   os_id, os_version, os_pretty, ecosystem
                 FROM inventories WHERE manifest_digest = ?1",
            )?;
            let mut out = Vec::new();
            for d in digests {
                let row = st
                    .query_row([d], |r| {
                        let ok = r.get::<_, String>(0)? == "ok";
                        Ok((
                            SearchFacts {
                                manifest_digest: d.clone(),
                                platform: r.get(1)?,
                                os: r.get(2)?,
                                architecture: r.get(3)?,
                                labels: BTreeMap::new(),
                                grade: r.get(5)?,
                                os_info: if ok {
                                    crate::store::os_info(r, 6)?
                                } else {
                                    None
                                },
                            },
                            r.get::<_, Option<String>>(4)?,
                        ))
                    })
                    .optional()?;
                if let Some((mut facts, labels)) = row {
                    if let Some(l) = labels {
                        facts.labels = crate::store::from_json(&l, &format!("inventory {d}"))?;
                    }
                    out.push(facts);
                }
            }
            Ok(out)
        })
    }

    /// Whether `repository`'s search row says it is signed.
    pub fn search_row_signed(&self, repository: &str) -> Result<bool> {
        self.read(|c| {
            Ok(c.prepare_cached(
                "SELECT 1 FROM search_facets
                     WHERE facet = 'signed' AND value = ?1 AND repository = ?2",
            )?
            .query_row([SIGNED, repository], |_| Ok(()))
            .optional()?
            .is_some())
        })
    }

    /// Removes a repository from search.
    pub fn delete_search_row(&self, repository: &str) -> Result<()> {
        self.write(|tx| {
            let id: Option<i64> = tx
                .prepare_cached("SELECT id FROM search_repos WHERE repository = ?1")?
                .query_row([repository], |r| r.get(0))
                .optional()?;
            if let Some(id) = id {
                tx.execute("DELETE FROM search_text WHERE rowid = ?1", [id])?;
                tx.execute("DELETE FROM search_repos WHERE id = ?1", [id])?;
            }
            tx.execute(
                "DELETE FROM search_facets WHERE repository = ?1",
                [repository],
            )?;
            Ok(())
        })
    }

    /// Distinct package names of these images.
    fn package_names(&self, digests: &[String]) -> Result<BTreeSet<String>> {
        self.read(|c| {
            let mut st =
                c.prepare_cached("SELECT DISTINCT name FROM packages WHERE manifest_digest = ?1")?;
            let mut out = BTreeSet::new();
            for d in digests {
                for name in st.query_map([d], |r| r.get::<_, String>(0))? {
                    out.insert(name?);
                }
            }
            Ok(out)
        })
    }
}

/// What one repository is found by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchRow {
    pub description: Option<String>,
    /// `key=value`.
    pub labels: BTreeSet<String>,
    /// `key=value` (manifest annotations).
    pub annotations: BTreeSet<String>,
    pub os: BTreeSet<String>,
    pub arch: BTreeSet<String>,
    /// `os/arch[/variant]`.
    pub platforms: BTreeSet<String>,
    /// OS words for free text (`linux amd64 debian 12 Debian GNU/Linux 12`).
    pub platform_words: BTreeSet<String>,
    pub grades: BTreeSet<String>,
    pub packages: BTreeSet<String>,
    /// Any of its indexed tagged images (every scanned one while it has no tag) is
    /// signed: the registry holds a simple signature for it, or the repository has
    /// its sigstore attachment tag (`sha256-<hex>.sig`). Present, not verified: the
    /// catalog knows no keys (the signatures route verifies, per repository).
    pub signed: bool,
}

/// Counts the facets of a search's readable matches, one row at a time.
#[derive(Default)]
struct FacetCounter {
    /// Matches counted.
    total: usize,
    /// Per facet of [`COUNTED`] (signed: `yes` only), value -> repositories.
    counts: [HashMap<String, usize>; 4],
}

impl FacetCounter {
    /// One matching repository, with its packed `facets` column.
    fn add(&mut self, packed: Option<&str>) {
        self.total += 1;
        for item in packed.unwrap_or("").split(SEP) {
            let Some((facet, value)) = item.split_once('=') else {
                continue;
            };
            let Some(i) = COUNTED.iter().position(|f| *f == facet) else {
                continue;
            };
            match self.counts[i].get_mut(value) {
                Some(n) => *n += 1,
                None => {
                    self.counts[i].insert(value.to_string(), 1);
                }
            }
        }
    }

    fn finish(self) -> Facets {
        let sorted = |m: HashMap<String, usize>| {
            let mut v: Vec<(String, usize)> = m.into_iter().collect();
            v.sort();
            v
        };
        let [os, arch, grade, signed] = self.counts;
        let yes = signed.get(SIGNED).copied().unwrap_or(0);
        Facets {
            os: sorted(os),
            arch: sorted(arch),
            grade: sorted(grade),
            signed: [("no", self.total - yes), ("yes", yes)]
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .map(|(v, n)| (v.to_string(), n))
                .collect(),
        }
    }
}

/// `search_repos.facets` for a row: its counted facets' values, packed.
fn packed_facets(row: &SearchRow) -> String {
    let signed: BTreeSet<String> = row.signed.then(|| SIGNED.to_string()).into_iter().collect();
    let mut items: Vec<String> = Vec::new();
    for (facet, values) in COUNTED
        .iter()
        .zip([&row.os, &row.arch, &row.grades, &signed])
    {
        items.extend(
            values
                .iter()
                .filter(|v| !v.contains(SEP))
                .map(|v| format!("{facet}={v}")),
        );
    }
    items.join(&SEP.to_string())
}

/// Brings an older `catalog.db` up to this schema: `search_repos.facets`, filled from
/// `search_facets` (once, in one transaction, whichever process opens it first).
pub(crate) fn upgrade(conn: &mut rusqlite::Connection) -> Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let has = tx
        .prepare("SELECT 1 FROM pragma_table_info('search_repos') WHERE name = 'facets'")?
        .exists([])?;
    if !has {
        tx.execute_batch(
            "ALTER TABLE search_repos ADD COLUMN facets TEXT;
             UPDATE search_repos SET facets = (SELECT group_concat(f.facet || '=' || f.value, char(31))
               FROM search_facets f WHERE f.repository = search_repos.repository
               AND f.facet IN ('os', 'arch', 'grade', 'signed') AND instr(f.value, char(31)) = 0);",
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// The description an image declares: OCI's annotation or label
/// `org.opencontainers.image.description` (or `.title`), else the `description` or
/// `summary` label (Red Hat's).
pub fn description(
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> Option<String> {
    const KEYS: [&str; 4] = [
        "org.opencontainers.image.description",
        "org.opencontainers.image.title",
        "description",
        "summary",
    ];
    KEYS.iter()
        .find_map(|k| annotations.get(*k).or_else(|| labels.get(*k)))
        .filter(|d| !d.trim().is_empty())
        .cloned()
}

/// Whether `tag` is a sigstore attachment's (`sha256-<hex>.sig`, `.att`, `.sbom`):
/// it names another image's signatures or attestations, not an image.
pub fn is_attachment_tag(tag: &str) -> bool {
    let Some((name, suffix)) = tag.rsplit_once('.') else {
        return false;
    };
    let Some(hex) = name.strip_prefix("sha256-") else {
        return false;
    };
    matches!(suffix, "sig" | "att" | "sbom")
        && hex.len() == 64
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The sigstore signature attachment tag of `digest` (`sha256-<hex>.sig`).
pub fn signature_tag(digest: &str) -> Option<String> {
    let (algorithm, hex) = digest.split_once(':')?;
    Some(format!("{algorithm}-{hex}.sig"))
}

/// The sigstore signature tags among a repository's tags as
/// `recent_tags(repo, TAG_WINDOW)` read them, and whether those were all its tags
/// (then no other attachment tag needs asking for).
pub(crate) struct SignatureTags {
    names: BTreeSet<String>,
    complete: bool,
}

impl SignatureTags {
    pub(crate) fn of(tags: &[(String, berth_image::Digest, i64)]) -> SignatureTags {
        SignatureTags {
            names: tags
                .iter()
                .filter(|(t, _, _)| t.ends_with(".sig") && is_attachment_tag(t))
                .map(|(t, _, _)| t.clone())
                .collect(),
            complete: tags.len() < crate::tags::TAG_WINDOW,
        }
    }
}

impl Catalog {
    /// [`CatalogDb::search`], with each hit's `last_pushed` read from the registry's
    /// metadata (the hits of this page only).
    pub fn search(
        &self,
        query: &SearchQuery,
        readable: &dyn Fn(&str) -> bool,
    ) -> Result<SearchPage> {
        let mut page = self.db.search(query, readable)?;
        for hit in &mut page.results {
            // The newest tag set that is not a signature or attestation attachment,
            // among the last few set (attachments come in ones and twos per push).
            hit.last_pushed = self
                .meta
                .recent_tags(&hit.repository, LAST_PUSHED_WINDOW)?
                .into_iter()
                .find(|(tag, _, _)| !is_attachment_tag(tag))
                .map(|(_, _, at)| at);
        }
        Ok(page)
    }

    /// Rebuilds `repo`'s search row from its tagged images (every scanned image
    /// while it has no tag).
    pub(crate) fn refresh_search(&self, repo: &str) -> Result<()> {
        let scans = self.db.scans_of(repo)?;
        let mut tagged = self.meta.recent_tags(repo, crate::tags::TAG_WINDOW)?;
        let signature_tags = SignatureTags::of(&tagged);
        tagged.retain(|(tag, _, _)| !is_attachment_tag(tag));
        tagged.sort_by(|a, b| crate::tags::compare_newest_first((&a.0, a.2), (&b.0, b.2)));
        let wanted: BTreeSet<String> = tagged
            .iter()
            .take(MAX_IMAGES_INDEXED)
            .map(|(_, d, _)| d.to_string())
            .collect();
        let mut row = SearchRow::default();
        let mut images: Vec<String> = Vec::new();
        // Newest scan first: its description wins.
        let mut ordered: Vec<_> = scans
            .iter()
            .filter(|s| s.status != ScanStatus::Skipped)
            .filter(|s| wanted.is_empty() || wanted.contains(&s.manifest_digest))
            .collect();
        ordered.sort_by_key(|s| std::cmp::Reverse(s.updated_at));
        // Untagged, the newest scans stand for the repository, as many as tags would.
        ordered.truncate(MAX_IMAGES_INDEXED);
        for s in &ordered {
            for (k, v) in &s.annotations {
                row.annotations.insert(format!("{k}={v}"));
            }
            if s.children.is_empty() {
                images.push(s.manifest_digest.clone());
            } else {
                images.extend(s.children.iter().map(|c| c.digest.clone()));
            }
        }
        images.dedup();
        for f in self.db.search_facts(&images)? {
            let annotations = ordered
                .iter()
                .find(|s| {
                    s.manifest_digest == f.manifest_digest
                        || s.children.iter().any(|c| c.digest == f.manifest_digest)
                })
                .map(|s| s.annotations.clone())
                .unwrap_or_default();
            if row.description.is_none() {
                row.description = description(&f.labels, &annotations);
            }
            for (k, v) in &f.labels {
                row.labels.insert(format!("{k}={v}"));
            }
            if let Some(os) = &f.os {
                row.os.insert(os.clone());
                row.platform_words.insert(os.clone());
            }
            if let Some(a) = &f.architecture {
                row.arch.insert(a.clone());
                row.platform_words.insert(a.clone());
            }
            if let Some(p) = &f.platform {
                row.platforms.insert(p.clone());
            }
            if let Some(os) = &f.os_info {
                row.platform_words.insert(os.id.clone());
                row.platform_words.extend(os.version_id.clone());
                row.platform_words.extend(os.pretty_name.clone());
            }
            row.grades.extend(f.grade);
        }
        row.packages = self.db.package_names(&images)?;
        let digests: Vec<&str> = ordered.iter().map(|s| s.manifest_digest.as_str()).collect();
        row.signed = !self
            .signed_among(repo, &digests, &signature_tags, 1)?
            .is_empty();
        self.db.put_search_row(repo, &row)
    }

    /// Which of `digests` (manifests of `repo`) are signed, at most `limit` of them
    /// (1: whether any is): a simple signature in the registry's signature store, or
    /// the sigstore attachment tag `sha256-<hex>.sig`. Present, not verified. One
    /// metadata read for all of them: asked image by image it was two round trips
    /// each, and a rebuild asks of up to 200 images, the repository view of every
    /// tagged one.
    pub(crate) fn signed_among(
        &self,
        repo: &str,
        digests: &[&str],
        tags: &SignatureTags,
        limit: usize,
    ) -> Result<BTreeSet<String>> {
        let mut signed = BTreeSet::new();
        for d in digests {
            if signed.len() < limit && signature_tag(d).is_some_and(|t| tags.names.contains(&t)) {
                signed.insert(d.to_string());
            }
        }
        if signed.len() < limit {
            let rest: Vec<berth_image::Digest> = digests
                .iter()
                .filter(|d| !signed.contains(**d))
                .filter_map(|d| d.parse().ok())
                .collect();
            for d in self
                .meta
                .signed_manifests(repo, &rest, limit - signed.len())?
            {
                signed.insert(d.to_string());
            }
        }
        if !tags.complete {
            for d in digests {
                if signed.len() >= limit || signed.contains(*d) {
                    continue;
                }
                if let Some(tag) = signature_tag(d) {
                    if self.meta.manifest_by_tag(repo, &tag)?.is_some() {
                        signed.insert(d.to_string());
                    }
                }
            }
        }
        Ok(signed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, CatalogDb) {
        let dir = tempfile::tempdir().unwrap();
        let db = CatalogDb::open(&dir.path().join("catalog.db")).unwrap();
        (dir, db)
    }

    fn row(
        desc: &str,
        labels: &[&str],
        os: &str,
        arch: &str,
        grade: &str,
        packages: &[&str],
    ) -> SearchRow {
        SearchRow {
            description: (!desc.is_empty()).then(|| desc.to_string()),
            labels: labels.iter().map(|s| s.to_string()).collect(),
            os: [os.to_string()].into(),
            arch: [arch.to_string()].into(),
            platforms: [format!("{os}/{arch}")].into(),
            platform_words: [os.to_string(), arch.to_string()].into(),
            grades: [grade.to_string()].into(),
            packages: packages.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn names(p: &SearchPage) -> Vec<&str> {
        p.results.iter().map(|h| h.repository.as_str()).collect()
    }

    fn q(text: &str) -> SearchQuery {
        SearchQuery {
            q: text.into(),
            page: 1,
            per_page: 10,
            ..Default::default()
        }
    }

    #[test]
    fn a_hyphenated_term_is_one_phrase_not_a_word_per_piece() {
        let (_d, db) = db();
        let all = |_: &str| true;
        for name in ["test/search-alpha", "test/search-beta"] {
            db.put_search_row(name, &row("", &[], "linux", "amd64", "A", &[]))
                .unwrap();
        }
        // `a` alone would also be the start of `amd64`, which both rows hold.
        let p = db.search(&q("SEARCH-A"), &all).unwrap();
        assert_eq!(names(&p), ["test/search-alpha"]);
        let p = db.search(&q("search"), &all).unwrap();
        assert_eq!(names(&p).len(), 2);
        assert_eq!(
            fts_query("search-a  nginx").as_deref(),
            Some("\"search a\"* \"nginx\"*")
        );
        assert_eq!(fts_query(" -- "), None);
    }

    #[test]
    fn name_matches_rank_first_then_text_then_filters_apply() {
        let (_d, db) = db();
        let all = |_: &str| true;
        db.put_search_row(
            "library/nginx",
            &row(
                "web server",
                &["vendor=nginx"],
                "linux",
                "amd64",
                "B",
                &["libc6"],
            ),
        )
        .unwrap();
        db.put_search_row(
            "tools/proxy",
            &row(
                "an nginx reverse proxy",
                &["vendor=acme"],
                "linux",
                "arm64",
                "A",
                &["nginx-common"],
            ),
        )
        .unwrap();
        db.put_search_row(
            "db/postgres",
            &row("database", &[], "linux", "amd64", "D", &["libssl3"]),
        )
        .unwrap();
        assert_eq!(
            names(&db.search(&q("nginx"), &all).unwrap()),
            ["library/nginx", "tools/proxy"]
        );
        assert!(db.search(&q("nginx"), &all).unwrap().results[0].name_match);
        // A substring of a name matches even when it is not a word's start.
        assert_eq!(
            names(&db.search(&q("ginx"), &all).unwrap()),
            ["library/nginx"]
        );
        assert_eq!(
            names(&db.search(&q("database"), &all).unwrap()),
            ["db/postgres"]
        );
        let mut f = q("");
        f.arch = Some("amd64".into());
        assert_eq!(
            names(&db.search(&f, &all).unwrap()),
            ["db/postgres", "library/nginx"]
        );
        f.labels = vec![("vendor".into(), "nginx".into())];
        assert_eq!(names(&db.search(&f, &all).unwrap()), ["library/nginx"]);
        let mut g = q("");
        g.grade = Some("A".into());
        assert_eq!(names(&db.search(&g, &all).unwrap()), ["tools/proxy"]);
        // The access filter hides, and the total counts only what is readable.
        let page = db.search(&q(""), &|n: &str| n != "db/postgres").unwrap();
        assert_eq!(page.total, 2);
        assert_eq!(names(&page), ["library/nginx", "tools/proxy"]);
    }

    #[test]
    fn pages_follow_the_rank() {
        let (_d, db) = db();
        for i in 0..25 {
            db.put_search_row(
                &format!("r{i:02}"),
                &row("", &[], "linux", "amd64", "A", &[]),
            )
            .unwrap();
        }
        let mut s = q("");
        s.page = 3;
        let page = db.search(&s, &|_: &str| true).unwrap();
        assert_eq!(page.total, 25);
        assert_eq!(names(&page), ["r20", "r21", "r22", "r23", "r24"]);
    }

    fn counts(list: &[(String, usize)]) -> Vec<(&str, usize)> {
        list.iter().map(|(v, n)| (v.as_str(), *n)).collect()
    }

    /// Four repositories: two on amd64 (one also on arm64), grades A, B, B, F, the
    /// first and third signed; `secret/db` is what the caller may not read.
    fn facet_rows(db: &CatalogDb) {
        let mut multi = row("web server", &[], "linux", "amd64", "A", &[]);
        multi.arch.insert("arm64".into());
        multi.signed = true;
        db.put_search_row("web/nginx", &multi).unwrap();
        db.put_search_row(
            "web/proxy",
            &row("proxy server", &[], "linux", "arm64", "B", &[]),
        )
        .unwrap();
        let mut win = row("windows server", &[], "windows", "amd64", "B", &[]);
        win.signed = true;
        db.put_search_row("win/iis", &win).unwrap();
        let mut secret = row("secret server", &[], "linux", "s390x", "F", &[]);
        secret.signed = true;
        db.put_search_row("secret/db", &secret).unwrap();
    }

    #[test]
    fn facets_count_every_readable_match_with_all_filters_applied() {
        let (_d, db) = db();
        facet_rows(&db);
        let readable = |n: &str| !n.starts_with("secret/");
        // Counts cover every match, not only the page (one result per page here).
        let mut all = q("server");
        all.per_page = 1;
        let p = db.search(&all, &readable).unwrap();
        assert_eq!(p.total, 3);
        assert_eq!(p.results.len(), 1);
        let f = &p.facets;
        assert_eq!(counts(&f.os), [("linux", 2), ("windows", 1)]);
        assert_eq!(counts(&f.arch), [("amd64", 2), ("arm64", 2)]);
        assert_eq!(counts(&f.grade), [("A", 1), ("B", 2)]);
        assert_eq!(counts(&f.signed), [("no", 1), ("yes", 2)]);
        // The private repository is never counted (s390x and F are its alone).
        let everyone = db.search(&all, &|_: &str| true).unwrap();
        assert_eq!(
            counts(&everyone.facets.grade),
            [("A", 1), ("B", 2), ("F", 1)]
        );
        assert!(!f.arch.iter().any(|(a, _)| a == "s390x"));

        // Filters narrow the counts too.
        let mut linux = q("");
        linux.os = Some("linux".into());
        let p = db.search(&linux, &readable).unwrap();
        assert_eq!(names(&p), ["web/nginx", "web/proxy"]);
        assert_eq!(counts(&p.facets.os), [("linux", 2)]);
        assert_eq!(counts(&p.facets.arch), [("amd64", 1), ("arm64", 2)]);
        assert_eq!(counts(&p.facets.signed), [("no", 1), ("yes", 1)]);
        // Text narrows them as well; nothing matched counts nothing.
        let p = db.search(&q("windows"), &readable).unwrap();
        assert_eq!(counts(&p.facets.os), [("windows", 1)]);
        let p = db.search(&q("nothing-matches-this"), &readable).unwrap();
        assert_eq!((p.total, p.facets), (0, Facets::default()));
    }

    #[test]
    fn the_signed_filter_keeps_signed_or_unsigned_repositories() {
        let (_d, db) = db();
        facet_rows(&db);
        let readable = |n: &str| !n.starts_with("secret/");
        let mut signed = q("");
        signed.signed = Some(true);
        let p = db.search(&signed, &readable).unwrap();
        assert_eq!(names(&p), ["web/nginx", "win/iis"]);
        assert!(p.results.iter().all(|h| h.signed));
        assert_eq!(counts(&p.facets.signed), [("yes", 2)]);
        signed.signed = Some(false);
        let p = db.search(&signed, &readable).unwrap();
        assert_eq!(names(&p), ["web/proxy"]);
        assert!(!p.results[0].signed);
        assert_eq!(counts(&p.facets.signed), [("no", 1)]);
        // With another filter: signed and on arm64.
        let mut both = q("");
        both.signed = Some(true);
        both.arch = Some("arm64".into());
        assert_eq!(names(&db.search(&both, &readable).unwrap()), ["web/nginx"]);
        // A row rebuilt without a signature is unsigned again.
        db.put_search_row(
            "win/iis",
            &row("windows server", &[], "windows", "amd64", "B", &[]),
        )
        .unwrap();
        signed.signed = Some(true);
        assert_eq!(
            names(&db.search(&signed, &readable).unwrap()),
            ["web/nginx"]
        );
        // Without the catalog's metadata store, no push time.
        assert_eq!(
            db.search(&q(""), &readable).unwrap().results[0].last_pushed,
            None
        );
    }

    #[test]
    fn an_older_file_gets_its_packed_facets_from_search_facets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.db");
        facet_rows(&CatalogDb::open(&path).unwrap());
        // As a catalog.db written before the column existed.
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch("ALTER TABLE search_repos DROP COLUMN facets")
            .unwrap();
        let db = CatalogDb::open(&path).unwrap();
        let p = db.search(&q("server"), &|_: &str| true).unwrap();
        assert_eq!(counts(&p.facets.os), [("linux", 3), ("windows", 1)]);
        assert_eq!(counts(&p.facets.signed), [("no", 1), ("yes", 3)]);
        // Opening again changes nothing.
        drop(db);
        let db = CatalogDb::open(&path).unwrap();
        let again = db.search(&q("server"), &|_: &str| true).unwrap();
        assert_eq!(again.facets, p.facets);
    }

    #[test]
    fn values_holding_the_separator_are_not_counted() {
        let (_d, db) = db();
        let mut odd = row("odd", &[], "linux", "amd64", "A", &[]);
        odd.arch.insert("x\u{1f}os=evil".into());
        db.put_search_row("odd/one", &odd).unwrap();
        let p = db.search(&q("odd"), &|_: &str| true).unwrap();
        assert_eq!(counts(&p.facets.arch), [("amd64", 1)]);
        assert_eq!(counts(&p.facets.os), [("linux", 1)]);
    }

    #[test]
    fn attachment_tags_are_told_from_image_tags() {
        let hex = "0123456789abcdef".repeat(4);
        assert!(is_attachment_tag(&format!("sha256-{hex}.sig")));
        assert!(is_attachment_tag(&format!("sha256-{hex}.att")));
        assert!(!is_attachment_tag(&format!("sha256-{hex}.tar")));
        assert!(!is_attachment_tag("sha256-abc.sig"));
        assert!(!is_attachment_tag("v1.0"));
        assert_eq!(
            signature_tag(&format!("sha256:{hex}")),
            Some(format!("sha256-{hex}.sig"))
        );
    }

    #[test]
    fn descriptions_come_from_annotations_then_labels() {
        let labels = BTreeMap::from([("summary".to_string(), "from a label".to_string())]);
        let ann = BTreeMap::from([(
            "org.opencontainers.image.description".to_string(),
            "from an annotation".to_string(),
        )]);
        assert_eq!(
            description(&labels, &ann).as_deref(),
            Some("from an annotation")
        );
        assert_eq!(
            description(&labels, &BTreeMap::new()).as_deref(),
            Some("from a label")
        );
        assert_eq!(description(&BTreeMap::new(), &BTreeMap::new()), None);
    }
}
