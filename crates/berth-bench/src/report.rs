//! The result table: one row per metric, medians over repetitions, ratio and target.

use std::fmt::Write as _;

#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// berth / docker-registry must be at least this.
    RatioAtLeast(f64),
    /// berth / the other column must be at most this (a cost: "no slower than").
    RatioAtMost(f64),
    /// berth's value must be at most this.
    AtMost(f64),
    /// berth's value must be below this.
    Below(f64),
    /// A time: the other tool's / berth's must be at least `by` (berth that many times
    /// faster), and berth's value below `below` when set. The ratio column stays
    /// berth / other, so it reads 1/`by` or less.
    Faster { by: f64, below: Option<f64> },
    /// Reported for information.
    Info,
}

impl Target {
    fn text(self) -> String {
        match self {
            Target::RatioAtLeast(r) => format!("ratio >= {r}"),
            Target::RatioAtMost(r) => format!("ratio <= {r}"),
            Target::AtMost(v) => format!("berth <= {v}"),
            Target::Below(v) => format!("berth < {v}"),
            Target::Faster { by, below: None } => format!("berth ≥ {by}x faster"),
            Target::Faster { by, below: Some(v) } => format!("berth < {v}, ≥ {by}x faster"),
            Target::Info => "-".into(),
        }
    }

    fn check(self, berth: f64, ratio: Option<f64>) -> Option<bool> {
        match self {
            Target::RatioAtLeast(r) => ratio.map(|x| x >= r),
            Target::RatioAtMost(r) => ratio.map(|x| x <= r),
            Target::AtMost(v) => Some(berth <= v),
            Target::Below(v) => Some(berth < v),
            Target::Faster { by, below } => {
                let fast = ratio.map(|x| x > 0.0 && 1.0 / x >= by)?;
                Some(fast && below.is_none_or(|v| berth < v))
            }
            Target::Info => None,
        }
    }
}

pub struct Row {
    pub id: &'static str,
    pub unit: &'static str,
    pub target: Target,
    pub berth: Vec<f64>,
    pub dr: Vec<f64>,
    pub errors: Vec<String>,
}

pub struct Table {
    rows: Vec<Row>,
    pub notes: Vec<String>,
}

/// (id, unit, target) of every row, in the order of the table.
const ROWS: &[(&str, &str, Target)] = &[
    ("manifest_get_rps", "req/s", Target::RatioAtLeast(10.0)),
    ("manifest_get_p99_ms", "ms", Target::Info),
    ("manifest_get_server_cpu_us", "µs/req", Target::Info),
    ("blob_head_rps", "req/s", Target::RatioAtLeast(10.0)),
    ("blob_head_p99_ms", "ms", Target::Info),
    ("blob_head_server_cpu_us", "µs/req", Target::Info),
    ("push_1g_server_cpu_s_per_gib", "s/GiB", Target::AtMost(1.0)),
    ("push_1g_server_sys_s_per_gib", "s/GiB", Target::Info),
    ("push_1g_MBps", "MB/s", Target::Info),
    ("blob_get_MBps", "MB/s", Target::RatioAtLeast(1.0)),
    ("idle_rss_mib", "MiB", Target::AtMost(15.0)),
    ("startup_empty_ms", "ms", Target::Info),
    ("push_4g_peak_rss_mib", "MiB", Target::Below(64.0)),
    ("startup_10k_tags_ms", "ms", Target::Below(50.0)),
    // Both columns berth: with token auth / the same server without auth.
    ("auth_manifest_get_rps", "req/s", Target::RatioAtLeast(0.8)),
    ("auth_manifest_get_server_cpu_us", "µs/req", Target::Info),
    // Both columns clients: berth copy / skopeo copy.
    ("copy_1g_MBps", "MB/s", Target::RatioAtLeast(2.0)),
    ("copy_1g_to_oci_MBps", "MB/s", Target::RatioAtLeast(2.0)),
    ("copy_1g_from_oci_MBps", "MB/s", Target::RatioAtLeast(2.0)),
    ("copy_1g_peak_rss_mib", "MiB", Target::Below(100.0)),
    (
        "sync_200_images_per_s",
        "images/s",
        Target::RatioAtLeast(3.0),
    ),
    // Both columns clients: berth copy --sign-by (gpg) or --sign-by-key / skopeo copy
    // --sign-by, 200 images already in a registry.
    (
        "sign_200_images_per_s",
        "images/s",
        Target::RatioAtLeast(5.0),
    ),
    (
        "sign_200_keyfile_images_per_s",
        "images/s",
        Target::RatioAtLeast(5.0),
    ),
    // Both columns berth: a pull under a signedBy policy / under insecureAcceptAnything.
    (
        "policy_pull_images_per_s",
        "images/s",
        Target::RatioAtLeast(0.9),
    ),
    // Both columns local image stores: berth / podman 4.3.1 (vfs).
    ("local_pull_1g_MBps", "MB/s", Target::RatioAtLeast(2.0)),
    ("local_pull_1g_peak_rss_mib", "MiB", Target::Info),
    (
        "local_images_1000_ms",
        "ms",
        Target::Faster {
            by: 5.0,
            below: Some(50.0),
        },
    ),
    (
        "local_rmi_1000_ms",
        "ms",
        Target::Faster {
            by: 5.0,
            below: None,
        },
    ),
    (
        "local_prune_1000_ms",
        "ms",
        Target::Faster {
            by: 5.0,
            below: None,
        },
    ),
    // berth only: `berth build` with every step cached, and the first build.
    ("build_cached_ms", "ms", Target::Below(1000.0)),
    ("build_first_ms", "ms", Target::Info),
    // Both columns berth: pulls during an online collection / before it.
    ("gc_pull_rps", "pulls/s", Target::RatioAtLeast(0.8)),
    // berth registry gc (online) / docker-registry garbage-collect (registry stopped).
    (
        "gc_collect_s",
        "s",
        Target::Faster {
            by: 10.0,
            below: None,
        },
    ),
    // A pull through berth's cache with nothing cached / straight from the upstream
    // docker-registry: the miss adds at most 10%.
    ("proxy_miss_ms", "ms", Target::RatioAtMost(1.10)),
    // Both columns berth: a pull the cache holds / the image pushed to a plain berth.
    ("proxy_hit_ms", "ms", Target::RatioAtMost(1.10)),
    // The cache's CPU for a miss / the upstream's for a direct pull, per image.
    ("proxy_miss_cpu_ms", "ms", Target::Info),
    // proxy_miss_ms with the upstream a 10 ms round trip away (behind a relay).
    ("proxy_miss_far_ms", "ms", Target::RatioAtMost(1.10)),
    // Both columns berth: push answer with the catalog on / with --catalog=false.
    ("catalog_push_ms", "ms", Target::RatioAtMost(1.05)),
    // The on instance's CPU for a push and its analysis minus the off one's push.
    ("catalog_push_analysis_cpu_s", "s/push", Target::Info),
    // Images inventoried / images pushed.
    (
        "catalog_push_inventoried",
        "images",
        Target::RatioAtLeast(1.0),
    ),
    // berth only (no peer has pages): the slowest page's median and p90, server-side.
    ("ui_pages_worst_median_ms", "ms", Target::Below(5.0)),
    ("ui_pages_worst_p90_ms", "ms", Target::Info),
    // berth only: first contentful paint of the Debian image's details page in Chromium.
    ("ui_paint_fcp_ms", "ms", Target::Below(300.0)),
    // Both columns berth on one Garage cluster and PostgreSQL: three replicas / one.
    ("replicas_pull_rps", "req/s", Target::Info),
    ("replicas_pull_p99_ms", "ms", Target::Info),
    // The host's busy cores during the load (all of them: the machine is the limit).
    ("replicas_pull_host_busy_cores", "cores", Target::Info),
    // Both columns berth on PostgreSQL: the default pool / 16 connections (pg_pool).
    ("pg_manifest_get_rps", "req/s", Target::Info),
    ("pg_manifest_get_p99_ms", "ms", Target::Info),
    ("pg_manifest_get_p999_ms", "ms", Target::Info),
    ("pg_manifest_get_max_ms", "ms", Target::Info),
    // berth on Garage + PostgreSQL / docker-registry on the same Garage (s3_reads).
    ("s3_manifest_get_rps", "req/s", Target::RatioAtLeast(10.0)),
    ("s3_manifest_get_p99_ms", "ms", Target::Info),
    (
        "tags_list_10k_ms",
        "ms",
        Target::Faster {
            by: 20.0,
            below: None,
        },
    ),
    (
        "catalog_10k_ms",
        "ms",
        Target::Faster {
            by: 20.0,
            below: None,
        },
    ),
    // berth only: 10,000 pulling connections and 100 pushers with token auth (stress).
    ("stress_pull_rps", "req/s", Target::Info),
    ("stress_pull_p99_ms", "ms", Target::Info),
    ("stress_push_p99_ms", "ms", Target::Info),
    ("stress_push_images_per_s", "images/s", Target::Info),
    (crate::stress::ROW_ERRORS, "errors", Target::AtMost(0.0)),
    (
        "stress_peak_rss_mib",
        "MiB",
        Target::Below(crate::stress::RSS_BOUND_MIB),
    ),
    (
        "stress_peak_fds",
        "fds",
        Target::AtMost(crate::stress::FDS_BOUND as f64),
    ),
    // Connections beyond --max-connections answered 503 / tried.
    ("stress_refused_503", "conns", Target::RatioAtLeast(1.0)),
];

/// Every row id (for `--only`).
pub fn row_ids() -> impl Iterator<Item = &'static str> {
    ROWS.iter().map(|r| r.0)
}

impl Table {
    pub fn new() -> Table {
        Table {
            rows: ROWS
                .iter()
                .map(|&(id, unit, target)| Row {
                    id,
                    unit,
                    target,
                    berth: Vec::new(),
                    dr: Vec::new(),
                    errors: Vec::new(),
                })
                .collect(),
            notes: Vec::new(),
        }
    }

    pub fn row(&mut self, id: &str) -> &mut Row {
        self.rows
            .iter_mut()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("unknown row {id}"))
    }

    /// Adds one repetition's value for berth (`berth == true`) or docker-registry.
    pub fn add(&mut self, id: &str, berth: bool, value: f64) {
        let row = self.row(id);
        if berth {
            row.berth.push(value);
        } else {
            row.dr.push(value);
        }
    }

    pub fn error(&mut self, id: &str, who: &str, e: impl std::fmt::Display) {
        self.row(id).errors.push(format!("{who}: {e}"));
    }

    pub fn is_empty(&self) -> bool {
        self.rows
            .iter()
            .all(|r| r.berth.is_empty() && r.dr.is_empty() && r.errors.is_empty())
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        out.push_str("| metric | unit | berth | docker-registry | ratio | target | pass/fail |\n");
        out.push_str("|---|---|---:|---:|---:|---|---|\n");
        let mut errors = Vec::new();
        for r in &self.rows {
            if r.berth.is_empty() && r.dr.is_empty() && r.errors.is_empty() {
                continue;
            }
            let b = median(&r.berth);
            let d = median(&r.dr);
            let ratio = match (b, d) {
                (Some(b), Some(d)) if d != 0.0 => Some(b / d),
                _ => None,
            };
            let verdict = if !r.errors.is_empty() {
                "FAIL (ERR)".to_string()
            } else {
                match b.and_then(|b| r.target.check(b, ratio)) {
                    Some(true) => "PASS".into(),
                    Some(false) => "FAIL".into(),
                    None if matches!(r.target, Target::Info) => "-".into(),
                    None => "n/a".into(),
                }
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                r.id,
                r.unit,
                cell(b, &r.berth),
                cell(d, &r.dr),
                ratio.map_or("n/a".into(), |x| format!("{}x", fmt_num(x))),
                r.target.text(),
                verdict
            );
            for e in &r.errors {
                errors.push(format!("{}: {e}", r.id));
            }
        }
        if !errors.is_empty() {
            out.push_str("\nErrors:\n\n");
            for e in errors {
                let _ = writeln!(out, "- {e}");
            }
        }
        if !self.notes.is_empty() {
            out.push_str("\nNotes:\n\n");
            for n in &self.notes {
                let _ = writeln!(out, "- {n}");
            }
        }
        out
    }
}

fn cell(median: Option<f64>, values: &[f64]) -> String {
    match median {
        None => "n/a".into(),
        Some(m) if values.len() > 1 => {
            let (lo, hi) = values
                .iter()
                .fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            format!("{} ({}–{})", fmt_num(m), fmt_num(lo), fmt_num(hi))
        }
        Some(m) => fmt_num(m),
    }
}

pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

/// About three significant digits, no exponent (whole numbers from 100 up).
pub fn fmt_num(x: f64) -> String {
    let a = x.abs();
    if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_verdicts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[1.0, 2.0]), Some(1.5));
        assert_eq!(median(&[]), None);
        let mut t = Table::new();
        assert!(t.is_empty());
        t.add("manifest_get_rps", true, 1000.0);
        t.add("manifest_get_rps", false, 50.0);
        t.add("idle_rss_mib", true, 20.0);
        t.add("idle_rss_mib", false, 10.0);
        t.add("blob_get_MBps", true, 5.0);
        t.error("blob_get_MBps", "berth", "boom");
        let md = t.markdown();
        assert!(
            md.contains("| manifest_get_rps | req/s | 1000 | 50.0 | 20.0x | ratio >= 10 | PASS |")
        );
        assert!(md.contains("| idle_rss_mib | MiB | 20.0 | 10.0 | 2.00x | berth <= 15 | FAIL |"));
        assert!(md.contains("FAIL (ERR)"));
        assert!(md.contains("blob_get_MBps: berth: boom"));
        assert!(!md.contains("startup_10k_tags_ms"));
        let mut t = Table::new();
        t.add("catalog_push_ms", true, 104.0);
        t.add("catalog_push_ms", false, 100.0);
        assert!(t.markdown().contains("| 1.04x | ratio <= 1.05 | PASS |"));
        t.add("catalog_push_ms", true, 120.0);
        t.add("catalog_push_ms", false, 100.0);
        assert!(t.markdown().contains("| 1.12x | ratio <= 1.05 | FAIL |"));
        let mut t = Table::new();
        t.add("local_images_1000_ms", true, 20.0);
        t.add("local_images_1000_ms", false, 200.0);
        t.add("local_rmi_1000_ms", true, 100.0);
        t.add("local_rmi_1000_ms", false, 300.0);
        let md = t.markdown();
        assert!(md.contains("| local_images_1000_ms | ms | 20.0 | 200 | 0.100x | berth < 50, ≥ 5x faster | PASS |"), "{md}");
        assert!(
            md.contains(
                "| local_rmi_1000_ms | ms | 100 | 300 | 0.333x | berth ≥ 5x faster | FAIL |"
            ),
            "{md}"
        );
    }
}
