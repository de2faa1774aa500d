//! The part of the OSV schema (ossf/osv-schema `docs/schema.md`) that matching needs.
//! Unknown fields are ignored (the schema grows); the fields read here are checked
//! strictly, so a malformed record is refused with its id instead of matching wrongly.

use serde::{Deserialize, Serialize};
use std::time::SystemTime;

/// A list member that is `null` reads as empty, as the OSV schema's Go and Python
/// readers take it: some feeds write `"versions": null`, and the whole record was
/// refused for it.
fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub modified: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdrawn: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub aliases: Vec<String>,
    /// The vulnerability a distribution's record is derived from (`DEBIAN-CVE-…`,
    /// `UBUNTU-CVE-…` name their CVE here, not in `aliases`).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub upstream: Vec<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub severity: Vec<SeverityEntry>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub affected: Vec<Affected>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_specific: Option<serde_json::Value>,
}

impl Record {
    /// The other ids of the same vulnerability: `aliases`, then `upstream` ids not
    /// among them. What a search by CVE and an allow-list entry match; without
    /// `upstream`, a Debian or Ubuntu finding was found by no CVE id.
    pub fn other_ids(&self) -> Vec<String> {
        let mut ids = self.aliases.clone();
        for u in &self.upstream {
            if !ids.contains(u) && *u != self.id {
                ids.push(u.clone());
            }
        }
        ids
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeverityEntry {
    /// `CVSS_V2`, `CVSS_V3`, `CVSS_V4` (score is a vector) or `Ubuntu` (a word).
    #[serde(rename = "type")]
    pub kind: String,
    pub score: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Affected {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<PackageRef>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub severity: Vec<SeverityEntry>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub ranges: Vec<Range>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub versions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecosystem_specific: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_specific: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PackageRef {
    pub ecosystem: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purl: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Range {
    /// `ECOSYSTEM`, `SEMVER` or `GIT`; only `ECOSYSTEM` ranges are evaluated.
    #[serde(rename = "type")]
    pub kind: String,
    pub events: Vec<Event>,
}

/// One event: an object with exactly one of these keys (serde refuses any other shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    Introduced(String),
    Fixed(String),
    LastAffected(String),
    Limit(String),
}

impl Event {
    pub fn version(&self) -> &str {
        match self {
            Event::Introduced(v) | Event::Fixed(v) | Event::LastAffected(v) | Event::Limit(v) => v,
        }
    }
}

/// Parses one record strictly: the JSON must have the shape above, and `id`,
/// `modified` (RFC 3339), `published`/`withdrawn` when present, package names and
/// range events must make sense. The error says what is wrong (the caller adds the
/// file and id).
pub fn parse_record(value: serde_json::Value) -> Result<Record, String> {
    let record: Record = serde_json::from_value(value).map_err(|e| e.to_string())?;
    if record.id.trim().is_empty() {
        return Err("empty id".into());
    }
    let modified = parse_time(&record.modified).map_err(|e| format!("modified: {e}"))?;
    // A record replaces the stored one only when newer: one dated in the future would
    // hold its place against every correction until then.
    let tomorrow = SystemTime::now() + std::time::Duration::from_secs(24 * 3600);
    if modified > tomorrow {
        return Err(format!("modified: {} is in the future", record.modified));
    }
    for (field, v) in [
        ("published", &record.published),
        ("withdrawn", &record.withdrawn),
    ] {
        if let Some(v) = v {
            parse_time(v).map_err(|e| format!("{field}: {e}"))?;
        }
    }
    for (i, a) in record.affected.iter().enumerate() {
        if let Some(p) = &a.package {
            if p.ecosystem.trim().is_empty() || p.name.trim().is_empty() {
                return Err(format!("affected[{i}].package: empty ecosystem or name"));
            }
        }
        for (j, r) in a.ranges.iter().enumerate() {
            if r.events.is_empty() {
                return Err(format!("affected[{i}].ranges[{j}]: no events"));
            }
            if !r.events.iter().any(|e| matches!(e, Event::Introduced(_))) {
                return Err(format!("affected[{i}].ranges[{j}]: no introduced event"));
            }
            if r.events.iter().any(|e| e.version().is_empty()) {
                return Err(format!(
                    "affected[{i}].ranges[{j}]: an event with an empty version"
                ));
            }
        }
    }
    Ok(record)
}

/// An OSV timestamp (RFC 3339, UTC; `+00:00` is accepted as well as `Z`).
pub fn parse_time(text: &str) -> Result<SystemTime, String> {
    let t = text.trim();
    let t = t
        .strip_suffix("+00:00")
        .map(|s| format!("{s}Z"))
        .unwrap_or_else(|| t.to_string());
    humantime::parse_rfc3339_weak(&t)
        .map_err(|e| format!("{text:?} is not an RFC 3339 UTC time ({e})"))
}

/// Seconds since the epoch (negative before 1970).
/// Microseconds since the epoch: `modified` times are compared at this precision, so
/// a record revised within the same second still replaces the older revision.
pub fn unix_micros(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

pub fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strict_about_what_matching_reads() {
        let ok = json!({"id": "A-1", "modified": "2024-05-01T10:00:00.123Z", "future_field": 1,
            "affected": [{"package": {"ecosystem": "Debian:12", "name": "x"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.2-1"}]}]}]});
        let r = parse_record(ok).unwrap();
        assert_eq!(
            r.affected[0].ranges[0].events[1],
            Event::Fixed("1.2-1".into())
        );

        // `null` lists read as empty, as the schema's own readers take them.
        let nulls = json!({"id": "A-5", "modified": "2024-05-01T10:00:00Z", "aliases": null,
            "affected": [{"package": {"ecosystem": "Debian:12", "name": "x"}, "versions": null,
                "severity": null, "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]}]});
        let r = parse_record(nulls).unwrap();
        assert!(r.aliases.is_empty() && r.affected[0].versions.is_empty());

        let two_keys = json!({"id": "A-2", "modified": "2024-05-01T10:00:00Z",
            "affected": [{"ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0", "fixed": "1"}]}]}]});
        assert!(parse_record(two_keys).is_err());
        let bad_time = json!({"id": "A-3", "modified": "yesterday"});
        assert!(parse_record(bad_time).unwrap_err().contains("modified"));
        let future = json!({"id": "A-3", "modified": "9999-01-01T00:00:00Z"});
        assert!(parse_record(future).unwrap_err().contains("in the future"));
        let no_introduced = json!({"id": "A-4", "modified": "2024-05-01T10:00:00Z",
            "affected": [{"ranges": [{"type": "ECOSYSTEM", "events": [{"fixed": "1"}]}]}]});
        assert!(parse_record(no_introduced)
            .unwrap_err()
            .contains("introduced"));
        assert_eq!(
            unix_seconds(parse_time("1970-01-02T00:00:00+00:00").unwrap()),
            86400
        );
    }
}
