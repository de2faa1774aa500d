//! Package version order (`berth_vuln::version`: dpkg, rpm, apk), on up to three
//! arbitrary versions (lines of the input). For each kind the order must be one a
//! sort can trust: `compare(a, a)` is `Equal`, `compare(a, b)` is the reverse of
//! `compare(b, a)`, and it is transitive on every ordering of the three values. A
//! matcher deciding "affected" with an order that is not would answer by accident.
#![no_main]
use std::cmp::Ordering::{self, *};

use berth_inventory::PackageKind;
use berth_vuln::version::{apk, compare};
use libfuzzer_sys::fuzz_target;

fn check(kind: PackageKind, v: &[&str]) {
    let cmp = |a: &str, b: &str| compare(kind, a, b);
    for a in v {
        assert_eq!(cmp(a, a), Equal, "{kind:?}: {a:?} is not equal to itself");
        for b in v {
            assert_eq!(
                cmp(a, b),
                cmp(b, a).reverse(),
                "{kind:?}: {a:?} vs {b:?} is not the reverse of {b:?} vs {a:?}"
            );
        }
    }
    let le = |o: Ordering| o != Greater;
    for x in v {
        for y in v {
            for z in v {
                let (xy, yz, xz) = (cmp(x, y), cmp(y, z), cmp(x, z));
                if le(xy) && le(yz) {
                    assert!(
                        le(xz),
                        "{kind:?}: {x:?} <= {y:?} <= {z:?} but {x:?} > {z:?}"
                    );
                    if xy == Less || yz == Less {
                        assert_eq!(xz, Less, "{kind:?}: {x:?} <= {y:?} <= {z:?}, one strict");
                    }
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let v: Vec<&str> = text.splitn(3, '\n').collect();
    for kind in [PackageKind::Deb, PackageKind::Rpm, PackageKind::Apk] {
        check(kind, &v);
    }
    for s in &v {
        let _ = apk::is_valid(s);
    }
});
