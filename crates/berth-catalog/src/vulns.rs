//! Vulnerability data for the catalog: berth-vuln's database (`vulndb.sqlite` next to
//! `catalog.db`), its matcher kept in memory between scans (reloaded when an import
//! happened, in this process or another), imports, and the rematch of every stored
//! inventory from its stored packages: no layer is read again.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use berth_vuln::{Matcher, VulnDb};
use serde::Serialize;

use crate::store::{FindingRow, Matchable};
use crate::{Catalog, CatalogError, Result};

/// Inventories matched per write transaction during a rematch.
const REMATCH_BATCH: usize = 200;

pub(crate) struct Vulns {
    path: PathBuf,
    /// The matcher, and the import history it was loaded at.
    cached: Mutex<Option<(String, Arc<Matcher>)>>,
    /// One import (and its rematch) at a time in this process.
    importing: Mutex<()>,
}

/// What a rematch did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RematchReport {
    /// Images matched again.
    pub images: usize,
    /// Findings they have now.
    pub findings: usize,
    pub millis: u64,
}

fn vuln_err(e: impl std::fmt::Display) -> CatalogError {
    CatalogError::Vuln(e.to_string())
}

impl Vulns {
    pub(crate) fn new(path: PathBuf) -> Vulns {
        Vulns {
            path,
            cached: Mutex::new(None),
            importing: Mutex::new(()),
        }
    }

    fn open(&self) -> Result<VulnDb> {
        VulnDb::open(&self.path).map_err(vuln_err)
    }

    /// The current matcher; none while no data was ever imported.
    fn matcher(&self) -> Result<Option<Arc<Matcher>>> {
        if !self.path.exists() {
            return Ok(None);
        }
        let db = self.open()?;
        let imports = db.imports().map_err(vuln_err)?;
        if imports.is_empty() {
            return Ok(None);
        }
        // The import history names the data: a new import (here or by an admin
        // command in another process) changes it.
        let key = format!("{}:{:?}", imports.len(), imports.last());
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((k, m)) = cached.as_ref() {
            if *k == key {
                return Ok(Some(m.clone()));
            }
        }
        let m = Arc::new(db.matcher().map_err(vuln_err)?);
        *cached = Some((key, m.clone()));
        Ok(Some(m))
    }

    fn forget_matcher(&self) {
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// A berth-vuln finding as the catalog stores it: the filtered columns picked from
/// its JSON, the JSON kept whole.
pub(crate) fn finding_row(f: &berth_vuln::Finding) -> FindingRow {
    let json = serde_json::to_value(f).unwrap_or_default();
    let text = |k: &str| json[k].as_str().map(String::from);
    FindingRow {
        id: f.id.clone(),
        aliases: f.aliases.clone(),
        package: f.package.clone(),
        installed: f.installed.clone(),
        fixed: f.fixed.clone(),
        level: format!("{:?}", f.severity.level),
        published: text("published"),
        json,
    }
}

impl Catalog {
    /// Matches images' packages with the current data and stores their findings and
    /// grade (nothing when no data was ever imported).
    pub(crate) fn match_images(&self, images: &[(String, Matchable)]) -> Result<usize> {
        let Some(matcher) = self.vulns.matcher()? else {
            return Ok(0);
        };
        let now = SystemTime::now();
        let mut batch = Vec::with_capacity(images.len());
        let mut total = 0;
        for (digest, image) in images {
            let os = image.os.clone().unwrap_or_default();
            let findings = matcher.findings(&os, &image.packages);
            // An image the data does not cover, or one with a database that could not
            // be read, is stored `Unknown`, and query.rs's `uncovered` keeps it so
            // whatever findings it has.
            let grade = match matcher.covers(&os) && image.unreadable.is_empty() {
                true => berth_vuln::grade(&findings, now),
                false => berth_vuln::Grade::UNKNOWN,
            };
            total += findings.len();
            batch.push((
                digest.clone(),
                findings.iter().map(finding_row).collect(),
                grade_letter(&grade),
                grade_next_drop(&grade),
            ));
        }
        self.db.put_findings(&batch)?;
        Ok(total)
    }

    /// Matches every stored inventory again (after new data), from the stored
    /// packages: no layer, no config is read. Findings are replaced image by image,
    /// a batch per transaction.
    pub fn rematch(&self) -> Result<RematchReport> {
        let started = Instant::now();
        let mut report = RematchReport::default();
        let mut after = String::new();
        loop {
            let page = self.db.matchables(&after, REMATCH_BATCH)?;
            let Some((last, _)) = page.last() else { break };
            after = last.clone();
            let images = page;
            report.findings += self.match_images(&images)?;
            report.images += images.len();
            self.stats
                .rematched
                .fetch_add(images.len() as u64, Ordering::Relaxed);
        }
        report.millis = started.elapsed().as_millis() as u64;
        tracing::info!(target: "berth::catalog", images = report.images,
            findings = report.findings, millis = report.millis, "rematch");
        Ok(report)
    }

    /// Imports OSV data (berth-vuln: `all.zip`, JSON files, folders) into
    /// `vulndb.sqlite`, then rematches every stored inventory. Returns each file's
    /// import report (JSON) and the rematch's.
    pub fn import_vulns(&self, files: &[&Path]) -> Result<(Vec<serde_json::Value>, RematchReport)> {
        let _one = self
            .vulns
            .importing
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let db = self.vulns.open()?;
        let mut reports = Vec::new();
        for f in files {
            let r = db.import(f).map_err(vuln_err)?;
            reports.push(serde_json::to_value(&r).unwrap_or_default());
        }
        drop(db);
        self.vulns.forget_matcher();
        let rematch = self.rematch()?;
        Ok((reports, rematch))
    }

    /// The import history (freshness of the data): JSON, oldest first.
    pub fn vuln_imports(&self) -> Result<Vec<serde_json::Value>> {
        if !self.vulns.path.exists() {
            return Ok(Vec::new());
        }
        // Read-only: this runs on every security page and vulnerability answer.
        let imports = VulnDb::imports_at(&self.vulns.path).map_err(vuln_err)?;
        Ok(imports
            .iter()
            .map(|r| serde_json::to_value(r).unwrap_or_default())
            .collect())
    }
}

fn grade_letter(g: &berth_vuln::Grade) -> String {
    format!("{:?}", g.letter)
}

fn grade_next_drop(g: &berth_vuln::Grade) -> Option<i64> {
    g.next_drop
}
