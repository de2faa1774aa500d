//! Search over repositories: free text (name, description, labels, annotations,
//! OS/arch, package names: SQLite FTS5) and exact filters (`label=KEY=VALUE`, `os=`,
//! `arch=`, `grade=`: the `search_facets` table; `package=`: the `packages` index;
//! `cve=`: the `finding_ids` index, ids and aliases). Ranking: repositories whose
//! name contains the text first, then by FTS5's bm25 with the name and description
//! weighted above the rest, then by name.
//!
//! A repository's search row is rebuilt from its tagged images whenever one of its
//! manifests is scanned (and from every scanned image while it has no tag).

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::{params_from_iter, types::Value, OptionalExtension};
use serde::Serialize;

use crate::store::{CatalogDb, ScanStatus};
use crate::{unix_now, Catalog, Result};

/// Most tagged images one repository's search row is built from (the newest tags).
const MAX_IMAGES_INDEXED: usize = 200;
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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SearchPage {
    /// Matching repositories the caller may read.
    pub total: usize,
    pub page: usize,
    pub per_page: usize,
    pub results: Vec<SearchHit>,
}

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
                     SELECT r.repository, {name_tier} AS tier, coalesce(f.rank, 0.0) AS rank
                     FROM search_repos r LEFT JOIN f ON f.id = r.id"
                ));
                filters.push(format!("({name_tier} = 0 OR f.id IS NOT NULL)"));
            }
            None => {
                sql.push_str(&format!(
                    "SELECT r.repository, {name_tier} AS tier, 0.0 AS rank FROM search_repos r"
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

        let skip = (page - 1) * per_page;
        let (total, names) = self.read(|c| {
            let mut st = c.prepare_cached(&sql)?;
            let mut rows = st.query(params_from_iter(args.iter()))?;
            let mut total = 0;
            let mut names = Vec::new();
            while let Some(row) = rows.next()? {
                let name: String = row.get(0)?;
                if !readable(&name) {
                    continue;
                }
                if total >= skip && names.len() < per_page {
                    let tier: i64 = row.get(1)?;
                    names.push((name, tier == 0 && !needle.is_empty()));
                }
                total += 1;
            }
            Ok((total, names))
        })?;
        let mut results = Vec::with_capacity(names.len());
        for (name, name_match) in names {
            results.push(self.hit(&name, name_match)?);
        }
        Ok(SearchPage {
            total,
            page,
            per_page,
            results,
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
            let (mut platforms, mut grades) = (Vec::new(), Vec::new());
            for row in rows {
                let (f, v) = row?;
                match f.as_str() {
                    "platform" => platforms.push(v),
                    "grade" => grades.push(v),
                    _ => {}
                }
            }
            Ok(SearchHit {
                repository: repository.to_string(),
                description,
                platforms,
                grades,
                name_match,
            })
        })
    }

    /// Replaces a repository's search row: its description, free text and facets.
    pub fn put_search_row(&self, repository: &str, row: &SearchRow) -> Result<()> {
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO search_repos (repository, description, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (repository) DO UPDATE SET description = excluded.description,
                   updated_at = excluded.updated_at",
            )?
            .execute(rusqlite::params![repository, row.description, unix_now()])?;
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
            Ok(())
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

impl Catalog {
    /// Rebuilds `repo`'s search row from its tagged images (every scanned image
    /// while it has no tag).
    pub(crate) fn refresh_search(&self, repo: &str) -> Result<()> {
        let scans = self.db.scans_of(repo)?;
        let mut tagged = self.meta.tag_entries(repo)?;
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
        for d in &images {
            let Some(inv) = self.db.inventory(d)? else {
                continue;
            };
            let annotations = ordered
                .iter()
                .find(|s| s.manifest_digest == *d || s.children.iter().any(|c| c.digest == *d))
                .map(|s| s.annotations.clone())
                .unwrap_or_default();
            if row.description.is_none() {
                row.description = description(&inv.facts.labels, &annotations);
            }
            for (k, v) in &inv.facts.labels {
                row.labels.insert(format!("{k}={v}"));
            }
            if let Some(os) = &inv.facts.os {
                row.os.insert(os.clone());
                row.platform_words.insert(os.clone());
            }
            if let Some(a) = &inv.facts.architecture {
                row.arch.insert(a.clone());
                row.platform_words.insert(a.clone());
            }
            if let Some(p) = &inv.facts.platform {
                row.platforms.insert(p.clone());
            }
            if let Ok(i) = &inv.result {
                if let Some(os) = &i.os {
                    row.platform_words.insert(os.id.clone());
                    row.platform_words.extend(os.version_id.clone());
                    row.platform_words.extend(os.pretty_name.clone());
                }
            }
            row.grades.extend(inv.grade.clone());
        }
        row.packages = self.db.package_names(&images)?;
        self.db.put_search_row(repo, &row)
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
