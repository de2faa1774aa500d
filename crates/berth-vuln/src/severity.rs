//! Severity: the distribution's own word (Debian urgency, Ubuntu priority, Red Hat
//! impact) when it has one, else a CVSS vector's base score bucketed into a level; the
//! score is kept beside the word. The vendor's rating decides, as Trivy and Grype
//! report distribution matches and as Red Hat's health grade counts them: a Red Hat
//! "Moderate" with a 7.5 vector is Medium and does not lower the grade.

use crate::osv::{Affected, Record};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// Severity level, worst first (so `Ord` sorts the worst findings first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Critical,
    High,
    Medium,
    Low,
    Unknown,
}

impl Level {
    /// The bucket for a CVSS base score: Critical >= 9, High >= 7, Medium >= 4, Low > 0.
    /// A score of 0 ("None") says nothing useful and is Unknown.
    pub fn from_score(score: f64) -> Level {
        match score {
            s if s >= 9.0 => Level::Critical,
            s if s >= 7.0 => Level::High,
            s if s >= 4.0 => Level::Medium,
            s if s > 0.0 => Level::Low,
            _ => Level::Unknown,
        }
    }

    /// The level a distribution's word means (Red Hat "important" is High, Debian
    /// "unimportant" and Ubuntu "negligible" are Low); words not in the list are Unknown
    /// (Debian's "not yet assigned").
    pub fn from_word(word: &str) -> Level {
        match word.trim().to_ascii_lowercase().as_str() {
            "critical" => Level::Critical,
            "high" | "important" => Level::High,
            "medium" | "moderate" => Level::Medium,
            "low" | "negligible" | "unimportant" => Level::Low,
            _ => Level::Unknown,
        }
    }
}

/// A finding's severity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Severity {
    pub level: Level,
    /// CVSS base score computed from `vector`.
    pub score: Option<f64>,
    /// The CVSS vector the score came from (`CVSS:3.1/AV:N/...`).
    pub vector: Option<String>,
    /// The distribution's word, as written (`unimportant`, `Important`, `medium`).
    pub words: Option<String>,
}

impl Severity {
    pub fn unknown() -> Severity {
        Severity {
            level: Level::Unknown,
            score: None,
            vector: None,
            words: None,
        }
    }
}

/// CVSS vector kinds in the order of preference: v3 first (what distributions and NVD
/// score in, so levels agree with theirs), v4 where it is the only one, v2 last.
const VECTOR_PREFERENCE: [&str; 3] = ["CVSS_V3", "CVSS_V4", "CVSS_V2"];

/// The severity of one `affected[]` entry of a record: its own `severity[]` and words
/// first, the record's otherwise.
pub fn of_affected(record: &Record, affected: &Affected) -> Severity {
    let entries = || affected.severity.iter().chain(record.severity.iter());
    let scored = VECTOR_PREFERENCE.iter().find_map(|kind| {
        entries().filter(|s| s.kind == *kind).find_map(|s| {
            Some((
                s.score.trim().to_string(),
                base_score(kind, s.score.trim())?,
                *kind,
            ))
        })
    });
    let words = entries()
        .find(|s| s.kind.eq_ignore_ascii_case("Ubuntu"))
        .map(|s| s.score.clone())
        .or_else(|| word_in(affected.ecosystem_specific.as_ref()))
        .or_else(|| word_in(affected.database_specific.as_ref()))
        .or_else(|| word_in(record.database_specific.as_ref()));
    let rated = words
        .as_deref()
        .map(Level::from_word)
        .filter(|l| *l != Level::Unknown);
    let level = match (rated, &scored) {
        (Some(level), _) => level,
        // CVSS v2 has no Critical: 7.0 to 10.0 is High (NVD's v2 ratings).
        (None, Some((_, score, "CVSS_V2"))) => match Level::from_score(*score) {
            Level::Critical => Level::High,
            level => level,
        },
        (None, Some((_, score, _))) => Level::from_score(*score),
        (None, None) => Level::Unknown,
    };
    Severity {
        level,
        score: scored.as_ref().map(|(_, s, _)| *s),
        vector: scored.map(|(v, _, _)| v),
        words,
    }
}

/// The base score of a vector of `kind`. A v4 vector may carry threat and
/// environmental metrics (`E:U`) that the `cvss` crate folds into its score; only
/// the eleven base metrics are scored, as for v3 (whose temporal metrics the crate
/// leaves out of the base score already).
fn base_score(kind: &str, vector: &str) -> Option<f64> {
    const V4_BASE: [&str; 11] = [
        "AV", "AT", "AC", "PR", "UI", "VC", "VI", "VA", "SC", "SI", "SA",
    ];
    let vector = match kind {
        "CVSS_V4" => {
            let mut parts = vector.split('/');
            let prefix = parts.next()?;
            let base: Vec<&str> = parts
                .filter(|p| p.split_once(':').is_some_and(|(k, _)| V4_BASE.contains(&k)))
                .collect();
            format!("{prefix}/{}", base.join("/"))
        }
        _ => vector.to_string(),
    };
    Some(cvss::Cvss::from_str(&vector).ok()?.score())
}

/// A severity word in a `database_specific` / `ecosystem_specific` object: `severity`
/// (Red Hat, Alpine converters), `urgency` (Debian) or `priority` (Ubuntu).
fn word_in(v: Option<&serde_json::Value>) -> Option<String> {
    let obj = v?.as_object()?;
    ["severity", "urgency", "priority"].iter().find_map(|k| {
        obj.get(*k)?
            .as_str()
            .filter(|s| !s.trim().is_empty())
            .map(str::to_string)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(json: serde_json::Value) -> Record {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn cvss_v3_vector_is_scored_and_bucketed() {
        let r = record(serde_json::json!({
            "id": "X-1", "modified": "2024-01-01T00:00:00Z",
            "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
            "affected": [{"package": {"ecosystem": "Debian:12", "name": "a"}, "ecosystem_specific": {"urgency": "low"}}]
        }));
        let s = of_affected(&r, &r.affected[0]);
        assert_eq!(s.score, Some(9.8));
        assert_eq!(
            (s.level, s.words.as_deref()),
            (Level::Low, Some("low")),
            "the distribution's word decides, the score is kept"
        );
        // A word that rates nothing leaves it to the vector.
        let r = record(serde_json::json!({
            "id": "X-1", "modified": "2024-01-01T00:00:00Z",
            "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
            "affected": [{"package": {"ecosystem": "Debian:12", "name": "a"},
                "ecosystem_specific": {"urgency": "not yet assigned"}}]
        }));
        assert_eq!(of_affected(&r, &r.affected[0]).level, Level::Critical);
        // Red Hat's Moderate with a 7.5 vector: Medium, as Red Hat counts it.
        let r = record(serde_json::json!({
            "id": "RHSA-1", "modified": "2024-01-01T00:00:00Z",
            "database_specific": {"severity": "Moderate"},
            "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}],
            "affected": [{"package": {"ecosystem": "Red Hat:enterprise_linux:9::baseos", "name": "a"}}]
        }));
        let s = of_affected(&r, &r.affected[0]);
        assert_eq!((s.level, s.score), (Level::Medium, Some(7.5)));
    }

    #[test]
    fn base_scores_only_and_v2_has_no_critical() {
        let v4 = |extra: &str| {
            let r = record(serde_json::json!({
                "id": "X-5", "modified": "2024-01-01T00:00:00Z",
                "severity": [{"type": "CVSS_V4", "score": format!(
                    "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N{extra}")}],
                "affected": [{"package": {"ecosystem": "Alpine:v3.19", "name": "a"}}]
            }));
            let s = of_affected(&r, &r.affected[0]);
            (s.level, s.score)
        };
        assert_eq!(v4(""), (Level::Critical, Some(9.3)));
        assert_eq!(
            v4("/E:U"),
            (Level::Critical, Some(9.3)),
            "threat metrics left out"
        );
        let r = record(serde_json::json!({
            "id": "X-6", "modified": "2024-01-01T00:00:00Z",
            "severity": [{"type": "CVSS_V2", "score": "AV:N/AC:L/Au:N/C:C/I:C/A:C"}],
            "affected": [{"package": {"ecosystem": "Alpine:v3.19", "name": "a"}}]
        }));
        let s = of_affected(&r, &r.affected[0]);
        assert_eq!((s.level, s.score), (Level::High, Some(10.0)));
    }

    #[test]
    fn cvss_v4_vector_is_scored() {
        let r = record(serde_json::json!({
            "id": "X-2", "modified": "2024-01-01T00:00:00Z",
            "severity": [{"type": "CVSS_V4", "score": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"}],
            "affected": [{"package": {"ecosystem": "Alpine:v3.19", "name": "a"}}]
        }));
        let s = of_affected(&r, &r.affected[0]);
        assert_eq!(s.score, Some(9.3));
        assert_eq!(s.level, Level::Critical);
    }

    #[test]
    fn words_decide_without_a_vector() {
        let r = record(serde_json::json!({
            "id": "X-3", "modified": "2024-01-01T00:00:00Z",
            "database_specific": {"severity": "Important"},
            "affected": [{"package": {"ecosystem": "Red Hat:enterprise_linux:9::baseos", "name": "a"}}]
        }));
        let s = of_affected(&r, &r.affected[0]);
        assert_eq!(
            (s.level, s.score, s.words.as_deref()),
            (Level::High, None, Some("Important"))
        );
        let ubuntu = record(serde_json::json!({
            "id": "X-4", "modified": "2024-01-01T00:00:00Z",
            "affected": [{"package": {"ecosystem": "Ubuntu:22.04:LTS", "name": "a"},
                "severity": [{"type": "Ubuntu", "score": "negligible"}]}]
        }));
        let s = of_affected(&ubuntu, &ubuntu.affected[0]);
        assert_eq!(
            (s.level, s.words.as_deref()),
            (Level::Low, Some("negligible"))
        );
        assert_eq!(Level::from_word("unimportant"), Level::Low);
        assert_eq!(Level::from_word("not yet assigned"), Level::Unknown);
        assert_eq!(Level::from_score(6.9), Level::Medium);
        assert_eq!(Level::from_score(0.1), Level::Low);
    }
}
