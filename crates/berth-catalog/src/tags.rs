//! Tag order, newest first, as people read versions: `1.10.0` is newer than `1.9.2`,
//! `2.0.0-rc.1` is older than `2.0.0` (a pre-release comes before its release), a
//! leading `v` is accepted (`v1.2` = `1.2`), and missing parts are zeros (`1.2` is
//! `1.2.0`). Tags that are not versions (`latest`, `main`, `stable-slim`) come after
//! the versions, newest (by the time they were pushed) first.

use std::cmp::Ordering;

/// How many of a repository's most recently set tags are put in tag order (pages,
/// the API's repository view, search rows, "fixed in tag"). Ordering a million tags
/// would read them all on every request; beyond this window the older tags are
/// still listed by `/v2/NAME/tags/list` and pulled by name, but not shown in order.
pub const TAG_WINDOW: usize = 1000;

/// A tag read as a version: numeric core, pre-release identifiers, and a suffix that
/// counts for nothing but ties (build metadata after `+`).
#[derive(Debug, Clone)]
pub struct Version {
    core: Vec<u64>,
    pre: Vec<Ident>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ident {
    Num(u64),
    Text(String),
}

impl Version {
    /// `[v]MAJOR[.MINOR[.PATCH[.…]]][-PRE][+BUILD]`, each core part a number; at most
    /// four core parts (dates like `20240101` stay numbers; `1.2.3.4` is accepted as
    /// some projects tag so).
    pub fn parse(tag: &str) -> Option<Version> {
        let s = tag.strip_prefix(['v', 'V']).unwrap_or(tag);
        let s = s.split_once('+').map_or(s, |(v, _)| v);
        let (core, pre) = match s.split_once('-') {
            Some((c, p)) => (c, Some(p)),
            None => (s, None),
        };
        let parts: Vec<&str> = core.split('.').collect();
        if parts.is_empty() || parts.len() > 4 {
            return None;
        }
        let core = parts
            .iter()
            .map(|p| {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 18 {
                    None
                } else {
                    p.parse().ok()
                }
            })
            .collect::<Option<Vec<u64>>>()?;
        let pre = match pre {
            None => Vec::new(),
            Some("") => return None,
            Some(p) => p
                .split(['.', '-'])
                .map(|i| match i.parse::<u64>() {
                    Ok(n) if i.bytes().all(|b| b.is_ascii_digit()) => Some(Ident::Num(n)),
                    _ if !i.is_empty() => Some(Ident::Text(i.to_ascii_lowercase())),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()?,
        };
        Some(Version { core, pre })
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let n = self.core.len().max(other.core.len());
        for i in 0..n {
            let a = self.core.get(i).copied().unwrap_or(0);
            let b = other.core.get(i).copied().unwrap_or(0);
            match a.cmp(&b) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        // A release is newer than its pre-releases.
        match (self.pre.is_empty(), other.pre.is_empty()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Greater,
            (false, true) => return Ordering::Less,
            _ => {}
        }
        for (a, b) in self.pre.iter().zip(&other.pre) {
            let o = match (a, b) {
                (Ident::Num(a), Ident::Num(b)) => a.cmp(b),
                (Ident::Num(_), Ident::Text(_)) => Ordering::Less,
                (Ident::Text(_), Ident::Num(_)) => Ordering::Greater,
                (Ident::Text(a), Ident::Text(b)) => a.cmp(b),
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        self.pre.len().cmp(&other.pre.len())
    }
}

/// Equal as versions (`1.2` = `v1.2.0`), not as text.
impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Sorts `(tag, pushed_at)` newest first: versions by version (ties, such as `1.2`
/// and `v1.2.0`, by time then name), then the other tags by time (newest first),
/// then name. `pushed_at` is any time value (unix seconds); pass 0 when unknown.
pub fn sort_newest_first<T: AsRef<str>>(tags: &mut [(T, i64)]) {
    tags.sort_by(|(a, ta), (b, tb)| compare_newest_first((a.as_ref(), *ta), (b.as_ref(), *tb)));
}

/// The order of [`sort_newest_first`]: `Less` when `a` is listed before `b`.
pub fn compare_newest_first(a: (&str, i64), b: (&str, i64)) -> Ordering {
    let by_time_then_name = || b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0));
    match (Version::parse(a.0), Version::parse(b.0)) {
        (Some(va), Some(vb)) => vb.cmp(&va).then_with(by_time_then_name),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => by_time_then_name(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(tags: &[(&str, i64)]) -> Vec<String> {
        let mut t: Vec<(String, i64)> = tags.iter().map(|(n, t)| (n.to_string(), *t)).collect();
        sort_newest_first(&mut t);
        t.into_iter().map(|(n, _)| n).collect()
    }

    #[test]
    fn versions_compare_by_number_not_by_text() {
        assert_eq!(
            order(&[("1.9.2", 0), ("1.10.0", 0), ("1.2.0", 0), ("0.9", 0)]),
            ["1.10.0", "1.9.2", "1.2.0", "0.9"]
        );
    }

    #[test]
    fn pre_releases_come_before_their_release() {
        assert_eq!(
            order(&[
                ("2.0.0-rc.1", 0),
                ("2.0.0", 0),
                ("2.0.0-beta.2", 0),
                ("2.0.0-beta.11", 0),
                ("2.0.0-rc.1.1", 0),
                ("1.9.9", 0),
            ]),
            [
                "2.0.0",
                "2.0.0-rc.1.1",
                "2.0.0-rc.1",
                "2.0.0-beta.11",
                "2.0.0-beta.2",
                "1.9.9"
            ]
        );
    }

    #[test]
    fn a_leading_v_and_missing_parts_are_accepted() {
        assert_eq!(
            order(&[("v1.10", 0), ("1.9.2", 0), ("v2", 0), ("1.10.1", 0)]),
            ["v2", "1.10.1", "v1.10", "1.9.2"]
        );
        assert_eq!(Version::parse("v1.2"), Version::parse("1.2.0"));
        assert!(Version::parse("1.2.0+build.5").is_some());
    }

    #[test]
    fn other_tags_follow_the_versions_newest_first() {
        assert_eq!(
            order(&[
                ("latest", 300),
                ("1.0", 10),
                ("main", 200),
                ("stable-slim", 400),
                ("2.0", 5)
            ]),
            ["2.0", "1.0", "stable-slim", "latest", "main"]
        );
    }

    #[test]
    fn what_is_not_a_version() {
        for t in [
            "latest",
            "1.x",
            "v",
            "",
            "1..2",
            "1.2.3.4.5",
            "1.0-",
            "sha256-abc.sig",
            "1.0-rc..1",
        ] {
            assert!(Version::parse(t).is_none(), "{t}");
        }
        for t in ["1", "1.2.3.4", "v1.0.0-alpha", "20240101", "3.19-slim"] {
            assert!(Version::parse(t).is_some(), "{t}");
        }
    }

    #[test]
    fn equal_versions_fall_back_to_time_then_name() {
        assert_eq!(order(&[("1.2", 1), ("v1.2.0", 2)]), ["v1.2.0", "1.2"]);
        assert_eq!(order(&[("b", 1), ("a", 1)]), ["a", "b"]);
    }
}
