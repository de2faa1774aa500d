//! Small text helpers shared by the pages: sizes, times, digests, query strings.

use std::time::{Duration, UNIX_EPOCH};

/// `12.3 MiB`, `512 B`.
pub(crate) fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// Unix seconds as RFC 3339 (`2024-02-03T04:05:06Z`).
pub(crate) fn rfc3339(unix: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The date part of unix seconds, for display (`2024-02-03`).
pub(crate) fn day(unix: i64) -> String {
    rfc3339(unix).chars().take(10).collect()
}

/// `sha256:0123456789ab` (12 hex digits), enough to tell images apart on a page.
pub(crate) fn short_digest(digest: &str) -> &str {
    match digest.split_once(':') {
        Some((algo, hex)) if hex.len() > 12 => &digest[..algo.len() + 1 + 12],
        _ => digest,
    }
}

/// A query string (`?a=1&b=2`, or empty) from pairs, each percent-encoded.
pub(crate) fn query(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if !v.is_empty() {
            s.append_pair(k, v);
        }
    }
    let q = s.finish();
    if q.is_empty() {
        q
    } else {
        format!("?{q}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_times_digests_queries() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(5 * 1024 * 1024), "5.0 MiB");
        assert_eq!(rfc3339(1_706_933_106), "2024-02-03T04:05:06Z");
        assert_eq!(day(1_706_933_106), "2024-02-03");
        assert_eq!(
            short_digest("sha256:0123456789abcdef0123"),
            "sha256:0123456789ab"
        );
        assert_eq!(short_digest("odd"), "odd");
        assert_eq!(query(&[("q", "a b&c"), ("os", "")]), "?q=a+b%26c");
        assert_eq!(query(&[("os", "")]), "");
    }
}
