//! The health grade, Red Hat's Container Health Index rules: only fixable Critical and
//! High (Red Hat's "Important") findings count, by the age of their advisory (its
//! `published` date):
//!
//! | grade | oldest unapplied Critical | oldest unapplied High |
//! |---|---|---|
//! | A | none | none |
//! | B | <= 7 days | <= 30 days |
//! | C | <= 30 days | <= 90 days |
//! | D | <= 90 days | <= 12 months |
//! | E | <= 12 months | (over 12 months is F) |
//! | F | over 12 months | over 12 months |
//!
//! The grade is the worst any finding gives. A month-count of 12 is taken as 365 days.
//! When there are findings and none of them has any severity at all, the data cannot
//! support a grade: `Unknown`.

use crate::matcher::Finding;
use crate::osv;
use crate::severity::Level;
use serde::{Deserialize, Serialize};
use std::time::SystemTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Letter {
    A,
    B,
    C,
    D,
    E,
    F,
    Unknown,
}

impl std::fmt::Display for Letter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grade {
    pub letter: Letter,
    /// When the grade drops next without any new data (unix seconds): the moment the
    /// oldest counted finding crosses its next threshold. None for A, F and Unknown.
    pub next_drop: Option<i64>,
}

impl Grade {
    /// The grade of an image the data does not cover (see `Matcher::covers`), or whose
    /// findings have no severity at all.
    pub const UNKNOWN: Grade = Grade {
        letter: Letter::Unknown,
        next_drop: None,
    };
}

const DAY: i64 = 86_400;
/// Age limits (inclusive, seconds) of grades B, C, D, E per severity; older is F.
const CRITICAL_LIMITS: [(Letter, i64); 4] = [
    (Letter::B, 7 * DAY),
    (Letter::C, 30 * DAY),
    (Letter::D, 90 * DAY),
    (Letter::E, 365 * DAY),
];
const HIGH_LIMITS: [(Letter, i64); 3] = [
    (Letter::B, 30 * DAY),
    (Letter::C, 90 * DAY),
    (Letter::D, 365 * DAY),
];

fn limits(level: Level) -> &'static [(Letter, i64)] {
    match level {
        Level::Critical => &CRITICAL_LIMITS,
        _ => &HIGH_LIMITS,
    }
}

/// The letter one finding of `level` published at `published` gives at `at`.
fn letter_at(level: Level, published: i64, at: i64) -> Letter {
    let age = (at - published).max(0);
    limits(level)
        .iter()
        .find(|(_, limit)| age <= *limit)
        .map(|(l, _)| *l)
        .unwrap_or(Letter::F)
}

/// What a grade needs of one finding: the columns a catalog stores beside it, so
/// a page can grade an image without reading whole findings back.
#[derive(Debug, Clone, Copy)]
pub struct GradeInput<'a> {
    pub level: Level,
    /// Whether a fixed version exists (only fixable findings count).
    pub fixable: bool,
    /// The advisory's `published` (RFC 3339).
    pub published: Option<&'a str>,
}

impl<'a> From<&'a Finding> for GradeInput<'a> {
    fn from(f: &'a Finding) -> GradeInput<'a> {
        GradeInput {
            level: f.severity.level,
            fixable: f.fixed.is_some(),
            published: f.published.as_deref(),
        }
    }
}

/// Grades an image's findings at `now`.
pub fn grade(findings: &[Finding], now: SystemTime) -> Grade {
    grade_inputs(findings.iter().map(GradeInput::from), now)
}

/// [`grade`] from what it needs of each finding.
pub fn grade_inputs<'a>(
    findings: impl IntoIterator<Item = GradeInput<'a>>,
    now: SystemTime,
) -> Grade {
    let now = osv::unix_seconds(now);
    let (mut any, mut all_unknown) = (false, true);
    // (level, published) of what counts. A date that does not parse counts as
    // published now: the finding still lowers the grade, by the least.
    let mut counted: Vec<(Level, i64)> = Vec::new();
    for f in findings {
        any = true;
        all_unknown &= f.level == Level::Unknown;
        if f.fixable && matches!(f.level, Level::Critical | Level::High) {
            let published = f.published.and_then(|p| osv::parse_time(p).ok());
            counted.push((f.level, published.map(osv::unix_seconds).unwrap_or(now)));
        }
    }
    if any && all_unknown {
        return Grade::UNKNOWN;
    }
    let at = |t: i64| {
        counted
            .iter()
            .map(|&(l, p)| letter_at(l, p, t))
            .max()
            .unwrap_or(Letter::A)
    };
    let letter = at(now);
    // Every moment a finding crosses a limit, in order; the first that worsens the grade.
    let mut crossings: Vec<i64> = counted
        .iter()
        .flat_map(|&(l, p)| limits(l).iter().map(move |(_, limit)| p + limit + 1))
        .filter(|&t| t > now)
        .collect();
    crossings.sort_unstable();
    crossings.dedup();
    let next_drop = crossings.into_iter().find(|&t| at(t) > letter);
    Grade { letter, next_drop }
}
