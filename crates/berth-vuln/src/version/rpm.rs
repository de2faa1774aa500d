//! rpm's version order: EVR (`[epoch:]version[-release]`), each part with
//! `rpmvercmp` (`~` before everything, `^` after the end but before more segments,
//! numbers above letters). The `rpm-version` crate implements it (Red Hat's Pulp
//! maintainers, no dependencies); the tests check it against python3-rpm's
//! `labelCompare` on generated pairs, the reference rpm itself.

use rpm_version::Evr;
use std::cmp::Ordering;

/// Compares two rpm EVR strings as rpm's `labelCompare` does: a missing epoch is 0;
/// epoch and version decide first; then a missing release sorts below any release
/// (`1.0` < `1.0-1`), and two releases compare with `rpmvercmp`.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (ea, va, ra) = Evr::parse_values(a);
    let (eb, vb, rb) = Evr::parse_values(b);
    Evr::new(ea, va, "")
        .cmp(&Evr::new(eb, vb, ""))
        .then_with(|| match (ra.is_empty(), rb.is_empty()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => Evr::new("", "", ra).cmp(&Evr::new("", "", rb)),
        })
}
