//! Vulnerabilities, offline: which of an image's packages are affected by which
//! advisories, from OSV data the operator imports (no network at run time).
//!
//! - [`version`]: dpkg, rpm and apk version order ([`compare`] dispatches by kind);
//! - [`VulnDb`]: the database (its own SQLite file), [`VulnDb::import`] of OSV
//!   `all.zip` files, JSON files and folders;
//! - [`Matcher`]: the index in memory, [`Matcher::findings`] per inventory;
//! - [`Severity`] (CVSS base score bucketed, distribution words kept) and [`grade`],
//!   the Red Hat-style health grade.

mod db;
mod error;
mod grade;
mod matcher;
pub mod osv;
mod severity;
mod source;
pub mod version;

pub use db::{ImportRecord, ImportReport, Skipped, VulnDb};
pub use error::{Result, VulnError};
pub use grade::{grade, grade_inputs, Grade, GradeInput, Letter};
pub use matcher::{ecosystem_matches, Finding, Matcher};
pub use severity::{Level, Severity};
pub use version::compare;
