//! Version order per package manager. Distribution versions are never semver: each
//! package manager has its own order (`~` before everything in dpkg and rpm, `^` after
//! the end in rpm, `_rc` before the release and `_p` after it in apk), and a finding is
//! only as right as the comparator that decided it.

pub mod apk;
pub mod dpkg;
pub mod rpm;

use berth_inventory::model::PackageKind;
use std::cmp::Ordering;

/// Compares two versions of the same kind of package, as that package manager would.
/// Never fails: a malformed version is ordered as the reference tool orders it (dpkg
/// and rpm compare what they can; apk treats the invalid tail as the tool does).
pub fn compare(kind: PackageKind, a: &str, b: &str) -> Ordering {
    match kind {
        PackageKind::Deb => dpkg::compare(a, b),
        PackageKind::Rpm => rpm::compare(a, b),
        PackageKind::Apk => apk::compare(a, b),
    }
}
