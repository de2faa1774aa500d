//! dpkg's version order (`[epoch:]upstream[-revision]`), as dpkg's `verrevcmp()` and
//! Debian Policy §5.6.12 define it.
//!
//! Written here rather than taken from the `debversion` crate: that crate parses every
//! version with a regular expression before comparing (this runs for every installed
//! package against every candidate record on a rematch), and it orders an empty digit
//! run below `0` where dpkg treats them as equal (`1.` = `1.0` for dpkg). The tests
//! compare this module with `dpkg --compare-versions` on thousands of generated pairs.

use std::cmp::Ordering;

/// Compares two Debian versions. Lenient like dpkg's comparison: a missing epoch is 0,
/// a missing revision compares like `0`; a non-numeric epoch counts as 0.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| verrevcmp(ua.as_bytes(), ub.as_bytes()))
        .then_with(|| verrevcmp(ra.as_bytes(), rb.as_bytes()))
}

/// Splits into (epoch, upstream, revision): the epoch before the first `:`, the
/// revision after the last `-`.
fn split(v: &str) -> (u64, &str, &str) {
    let (epoch, rest) = match v.split_once(':') {
        Some((e, rest)) => (e.parse::<u64>().unwrap_or(0), rest),
        None => (0, v),
    };
    match rest.rsplit_once('-') {
        Some((upstream, revision)) => (epoch, upstream, revision),
        None => (epoch, rest, ""),
    }
}

/// The weight of one character in a non-digit run: `~` below the end of the string,
/// letters by their ASCII value, everything else after all letters. Digits and the end
/// weigh 0 (a digit run starts there).
fn order(c: Option<&u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(*c),
        Some(b'~') => -1,
        Some(c) => i32::from(*c) + 256,
    }
}

/// dpkg's `verrevcmp`: alternate non-digit runs (compared by [`order`]) and digit runs
/// (compared as numbers of any length, leading zeros ignored).
fn verrevcmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    let digit = |s: &[u8], k: usize| s.get(k).is_some_and(u8::is_ascii_digit);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !digit(a, i)) || (j < b.len() && !digit(b, j)) {
            let (ac, bc) = (order(a.get(i)), order(b.get(j)));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while digit(a, i) && digit(b, j) {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if digit(a, i) {
            return Ordering::Greater;
        }
        if digit(b, j) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::compare;
    use std::cmp::Ordering::*;

    #[test]
    fn policy_examples() {
        for (a, b, want) in [
            ("1.0~rc1", "1.0", Less),
            ("1.0~~", "1.0~", Less),
            ("1.0", "1.0+b1", Less),
            ("1:0.1", "2.0", Greater),
            ("1.0-1", "1.0-1~bpo1", Greater),
            ("1.", "1.0", Equal),
            ("1.0", "1.0-0", Equal),
            ("2.36-9+deb12u4", "2.36-9+deb12u10", Less),
            ("1.2a", "1.2+", Less),
            ("1.00", "1.0", Equal),
        ] {
            assert_eq!(compare(a, b), want, "{a} vs {b}");
            assert_eq!(compare(b, a), want.reverse(), "{b} vs {a}");
        }
    }
}
