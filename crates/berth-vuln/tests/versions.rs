//! The comparators against the reference implementations: dpkg against
//! `dpkg --compare-versions`, rpm against python3-rpm's `labelCompare` (rpm's own C
//! code), apk against apk-tools' published test vectors.

use berth_vuln::version::{apk, dpkg, rpm};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cmp::Ordering;
use std::io::Write;
use std::process::{Command, Stdio};

fn pick<'a>(rng: &mut StdRng, items: &[&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

/// A run of realistic version pieces: numbers (with leading zeros sometimes), letters,
/// and the given separators.
fn pieces(rng: &mut StdRng, n: usize, separators: &[&str], letters: &[&str]) -> String {
    let mut s = String::new();
    for _ in 0..n {
        match rng.random_range(0..10) {
            0..=4 => {
                s += pick(
                    rng,
                    &[
                        "0",
                        "1",
                        "2",
                        "3",
                        "9",
                        "10",
                        "01",
                        "00",
                        "12",
                        "2024",
                        "99999999999999999999",
                    ],
                )
            }
            5..=6 => s += pick(rng, letters),
            _ => s += pick(rng, separators),
        }
    }
    s
}

/// `b` is often `a` changed a little, so that comparisons go deep into both strings.
fn pairs(
    seed: u64,
    n: usize,
    make: impl Fn(&mut StdRng) -> String,
    tweak: impl Fn(&mut StdRng, &str) -> String,
) -> Vec<(String, String)> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let a = make(&mut rng);
            let b = match rng.random_range(0..3) {
                0 => make(&mut rng),
                1 => a.clone(),
                _ => tweak(&mut rng, &a),
            };
            (a, b)
        })
        .collect()
}

fn sign(o: Ordering) -> &'static str {
    match o {
        Ordering::Less => "<",
        Ordering::Equal => "=",
        Ordering::Greater => ">",
    }
}

/// Fails listing (some of) the pairs where `compare` differs from the reference's
/// answers (`<`, `=`, `>`).
fn assert_agrees(
    reference: &str,
    pairs: &[(String, String)],
    answers: &[String],
    compare: fn(&str, &str) -> Ordering,
) {
    let wrong: Vec<_> = pairs
        .iter()
        .zip(answers)
        .filter(|((a, b), want)| sign(compare(a, b)) != want.as_str())
        .map(|((a, b), want)| format!("{a} {want} {b}"))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} differ from {reference}, e.g. {:?}",
        wrong.len(),
        pairs.len(),
        &wrong[..wrong.len().min(10)]
    );
}

fn dpkg_version(rng: &mut StdRng) -> String {
    let letters = ["a", "b", "rc", "dfsg", "Z", "beta", "git"];
    let mut v = String::new();
    if rng.random_bool(0.3) {
        v += &format!("{}:", rng.random_range(0..3));
    }
    v += pick(rng, &["0", "1", "2", "10", "1.0", "2.36"]);
    let n = rng.random_range(0..6);
    let has_revision = rng.random_bool(0.7);
    let seps: &[&str] = if has_revision {
        &[".", "+", "~", "-", "~~"]
    } else {
        &[".", "+", "~"]
    };
    v += &pieces(rng, n, seps, &letters);
    if has_revision {
        v += "-";
        v += pick(rng, &["0", "1", "2", "10", "1ubuntu"]);
        let n = rng.random_range(0..4);
        v += &pieces(rng, n, &[".", "+", "~"], &["deb", "u", "b", "build", "bpo"]);
    }
    v
}

fn tweak_dpkg(rng: &mut StdRng, a: &str) -> String {
    match rng.random_range(0..4) {
        0 => format!("{a}{}", pick(rng, &["~", "+b1", ".0", "a", "~rc1", "1"])),
        1 => a.replacen(
            pick(rng, &["1", "0", "a", "."]),
            pick(rng, &["2", "00", "~", "+", "b"]),
            1,
        ),
        2 => a.trim_end_matches(|c: char| c.is_ascii_digit()).to_string() + "0",
        _ => a.to_string() + "-1",
    }
}

#[test]
fn dpkg_agrees_with_dpkg_compare_versions() {
    let generated = pairs(12, 3000, dpkg_version, tweak_dpkg);
    // Keep what dpkg itself accepts (a tweak can make a revision empty, an upstream
    // end in '-' ...): dpkg's own answer for an invalid version is a warning.
    let generated: Vec<_> = generated
        .into_iter()
        .filter(|(a, b)| valid_dpkg(a) && valid_dpkg(b))
        .collect();
    assert!(
        generated.len() > 2500,
        "too few valid pairs: {}",
        generated.len()
    );
    // One shell per 1000 pairs, all at once: a dpkg process per comparison.
    let script = r#"while read -r a b; do
        if dpkg --compare-versions "$a" lt "$b"; then echo "<"
        elif dpkg --compare-versions "$a" eq "$b"; then echo "="
        else echo ">"; fi
    done"#;
    let children: Vec<_> = generated
        .chunks(1000)
        .map(|chunk| {
            let mut child = Command::new("sh")
                .args(["-c", script])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("sh runs");
            let mut input = String::new();
            for (a, b) in chunk {
                input += &format!("{a} {b}\n");
            }
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
            child
        })
        .collect();
    let mut answers = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "dpkg: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        answers.extend(
            String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(str::to_string),
        );
    }
    assert_eq!(answers.len(), generated.len(), "is dpkg installed?");
    assert_agrees("dpkg", &generated, &answers, dpkg::compare);
}

/// dpkg's syntax: upstream starts with a digit, has no ':' (the epoch is split off)
/// and may have '-' only when there is a revision; the revision is non-empty.
fn valid_dpkg(v: &str) -> bool {
    let (epoch, rest) = v.split_once(':').unwrap_or(("0", v));
    if epoch.is_empty() || !epoch.chars().all(|c| c.is_ascii_digit()) {
        return false;
    }
    let (upstream, revision) = match rest.rsplit_once('-') {
        Some((u, r)) => (u, Some(r)),
        None => (rest, None),
    };
    upstream.starts_with(|c: char| c.is_ascii_digit())
        && !upstream.contains(':')
        && upstream
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".+~-".contains(c))
        && revision.is_none_or(|r| {
            !r.is_empty()
                && r.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".+~".contains(c))
        })
}

fn rpm_version(rng: &mut StdRng) -> String {
    let letters = ["a", "b", "rc", "git", "el", "fc", "Z", "beta"];
    let seps = [".", "_", "+", "~", "^", ".", "~~", "^^"];
    let mut v = String::new();
    if rng.random_bool(0.3) {
        v += &format!("{}:", rng.random_range(0..3));
    }
    let n = rng.random_range(1..7);
    v += &pieces(rng, n, &seps, &letters);
    if rng.random_bool(0.7) {
        v += "-";
        let n = rng.random_range(1..5);
        v += &pieces(rng, n, &seps, &letters);
    }
    v
}

fn tweak_rpm(rng: &mut StdRng, a: &str) -> String {
    match rng.random_range(0..3) {
        0 => format!(
            "{a}{}",
            pick(rng, &["~", "^", ".1", "a", "~rc1", "^git1", "0"])
        ),
        1 => a.replacen(
            pick(rng, &["1", "0", "a", "."]),
            pick(rng, &["2", "00", "~", "^", "b", "_"]),
            1,
        ),
        _ => a
            .trim_end_matches(|c: char| c.is_ascii_alphanumeric())
            .to_string(),
    }
}

/// The python interpreter that has the `rpm` module (Debian's python3-rpm installs it
/// for the system python, which a pyenv or venv on PATH may hide).
fn python_with_rpm() -> String {
    for python in ["/usr/bin/python3", "python3"] {
        let ok = Command::new(python)
            .args(["-c", "import rpm"])
            .stderr(Stdio::null())
            .status();
        if ok.is_ok_and(|s| s.success()) {
            return python.to_string();
        }
    }
    panic!("python3's rpm module is missing: install the Debian package python3-rpm (scripts/install-peers.sh does)");
}

#[test]
fn rpm_agrees_with_rpm_label_compare() {
    let generated = pairs(7, 5000, rpm_version, tweak_rpm);
    // rpm splits E:V-R at the first ':' and the first '-' after it; keep pairs whose
    // parts are non-empty where present (rpm refuses an empty version).
    let generated: Vec<_> = generated
        .into_iter()
        .filter(|(a, b)| valid_rpm(a) && valid_rpm(b))
        .collect();
    assert!(
        generated.len() > 3000,
        "too few valid pairs: {}",
        generated.len()
    );
    let script = r#"
import sys, rpm
def evr(s):
    e, _, vr = s.rpartition(':') if ':' in s else (None, None, s)
    v, sep, r = vr.partition('-')
    return (e, v, r if sep else None)
for line in sys.stdin:
    a, b = line.split()
    print(rpm.labelCompare(evr(a), evr(b)))
"#;
    let mut child = Command::new(python_with_rpm())
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let input: String = generated
        .iter()
        .map(|(a, b)| format!("{a} {b}\n"))
        .collect();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success());
    let answers: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(answers.len(), generated.len());
    let answers: Vec<String> = answers
        .iter()
        .map(|a| sign(a.parse::<i32>().unwrap_or(9).cmp(&0)).to_string())
        .collect();
    assert_agrees("rpm", &generated, &answers, rpm::compare);
}

fn valid_rpm(v: &str) -> bool {
    let vr = v.split_once(':').map(|(_, r)| r).unwrap_or(v);
    let (version, release) = match vr.split_once('-') {
        Some((v, r)) => (v, Some(r)),
        None => (vr, None),
    };
    !version.is_empty() && release.is_none_or(|r| !r.is_empty() && !r.contains('-'))
}

#[test]
fn apk_agrees_with_apk_tools_test_vectors() {
    let data = include_str!("data/apk-version.data");
    let (mut checked, mut fuzzy) = (0, 0);
    let mut wrong = Vec::new();
    for line in data.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let parts: Vec<&str> = line.split_whitespace().collect();
        let ok = match parts.as_slice() {
            [v] => match v.strip_prefix('!') {
                Some(v) => !apk::is_valid(v),
                None => apk::is_valid(v),
            },
            [a, op, b] => {
                let (negated, op) = match op.strip_prefix('!') {
                    Some(op) => (true, op),
                    None => (false, *op),
                };
                if op.contains('~') {
                    // Fuzzy (prefix) matching is a dependency feature; matching needs order only.
                    fuzzy += 1;
                    continue;
                }
                let got = sign(apk::compare(a, b));
                op.contains(got) != negated
            }
            _ => panic!("unexpected line {line:?}"),
        };
        checked += 1;
        if !ok {
            wrong.push(line.to_string());
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {checked} vectors fail: {wrong:?}",
        wrong.len()
    );
    assert!(
        checked > 750 && fuzzy < 20,
        "checked {checked}, fuzzy {fuzzy}"
    );
}
