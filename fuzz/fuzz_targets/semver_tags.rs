//! Semver-aware tag order (`berth_catalog::tags`, used by the catalog and `berth
//! list-tags --sort semver`), on a tag list: one tag per line, an optional push time
//! after a tab. The order must be total and consistent: sorting is idempotent and
//! gives the same list from any starting order (here: as given, and reversed);
//! `compare_newest_first` is antisymmetric and transitive on every triple of the
//! first tags; `Version`'s order agrees with its equality.
#![no_main]
use std::cmp::Ordering::*;

use berth_catalog::tags::{compare_newest_first, sort_newest_first, Version};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let tags: Vec<(&str, i64)> = text
        .lines()
        .take(64)
        .map(|l| match l.split_once('\t') {
            Some((t, time)) => (t, time.trim().parse().unwrap_or(0)),
            None => (l, 0),
        })
        .collect();

    let mut sorted = tags.clone();
    sort_newest_first(&mut sorted);
    let mut twice = sorted.clone();
    sort_newest_first(&mut twice);
    assert_eq!(sorted, twice, "sorting twice changed the order");
    let mut reversed: Vec<_> = tags.iter().rev().cloned().collect();
    sort_newest_first(&mut reversed);
    assert_eq!(sorted, reversed, "the order depends on the starting order");
    for w in sorted.windows(2) {
        assert_ne!(
            compare_newest_first(w[0], w[1]),
            Greater,
            "{w:?} out of order"
        );
    }

    let few = &tags[..tags.len().min(8)];
    for &a in few {
        assert_eq!(compare_newest_first(a, a), Equal, "{a:?}");
        let va = Version::parse(a.0);
        for &b in few {
            let ab = compare_newest_first(a, b);
            assert_eq!(ab, compare_newest_first(b, a).reverse(), "{a:?} vs {b:?}");
            if ab == Equal {
                assert_eq!(a, b, "two different tags compare equal");
            }
            if let (Some(va), Some(vb)) = (&va, Version::parse(b.0)) {
                assert_eq!(va.cmp(&vb) == Equal, *va == vb);
                assert_eq!(va.cmp(&vb), vb.cmp(va).reverse(), "{a:?} vs {b:?}");
            }
            for &c in few {
                if ab != Greater && compare_newest_first(b, c) != Greater {
                    assert_ne!(
                        compare_newest_first(a, c),
                        Greater,
                        "{a:?} <= {b:?} <= {c:?} but not {a:?} <= {c:?}"
                    );
                }
            }
        }
    }
});
