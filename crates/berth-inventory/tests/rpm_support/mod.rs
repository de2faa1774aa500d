//! rpm fixtures made by the real tools, shared by the rpm tests: packages built with
//! `rpmbuild`, installed with Debian's `rpm` into a root (rpmdb.sqlite), a BerkeleyDB
//! `Packages` file loaded by libdb's `db5.3_load`, and `rpm -qa` to compare with.
//! The test crate declares `mod support;` (for `require`) next to `mod rpm_support;`.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_inventory::Package;

use crate::support::require;

/// Runs `cmd`, failing the test with its output when it fails; its stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Three source packages, one with a subpackage, one with an epoch, one with an explicit
/// epoch 0, a dash-laden name, and licenses with spaces and parentheses.
const SPECS: &[(&str, &str)] = &[
    (
        "alpha",
        "Name: alpha\nVersion: 1.2.3\nRelease: 4\nEpoch: 2\nSummary: a\n\
         License: MIT and (GPL-2.0-or-later)\nBuildArch: noarch\n%description\na\n\
         %package tools\nSummary: t\nLicense: Apache-2.0\n%description tools\nt\n\
         %files\n%files tools\n",
    ),
    (
        "py-beta-lib",
        "Name: py-beta-lib\nVersion: 0.9~rc1\nRelease: 1.fc40\nSummary: b\n\
         License: BSD-3-Clause\nBuildArch: noarch\n%description\nb\n%files\n",
    ),
    (
        "gamma",
        "Name: gamma\nVersion: 2024.1^post2\nRelease: 7.el9_4\nEpoch: 0\nSummary: g\n\
         License: LGPL-2.1-or-later\nBuildArch: noarch\n%description\ng\n%files\n",
    ),
];

/// The query format that prints what the reader gives: `[epoch:]` only when the header
/// has an EPOCH tag (as `Package::version` is documented), and empty fields for absent tags.
pub const QF: &str =
    "%{NAME}|%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}|[%{ARCH}]|[%{LICENSE}]|[%{SOURCERPM}]\\n";

/// Builds the [`SPECS`] under `dir` with `rpmbuild -bb`: the four binary rpms by name
/// (`alpha`, `alpha-tools`, `gamma`, `py-beta-lib`).
pub fn build_rpms(dir: &Path) -> Vec<(String, PathBuf)> {
    require("rpm", "rpm");
    require("rpmbuild", "rpm");
    let top = dir.join("rpmbuild");
    std::fs::create_dir_all(top.join("SPECS")).unwrap();
    for (name, spec) in SPECS {
        let file = top.join("SPECS").join(format!("{name}.spec"));
        std::fs::write(&file, spec).unwrap();
        run(Command::new("rpmbuild")
            .arg("-bb")
            .arg("--define")
            .arg(format!("_topdir {}", top.display()))
            .arg(&file));
    }
    let mut rpms: Vec<(String, PathBuf)> = std::fs::read_dir(top.join("RPMS/noarch"))
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            // NAME-VERSION-RELEASE.noarch.rpm
            let file = path.file_name().unwrap().to_str().unwrap();
            let name = file.rsplitn(3, '-').nth(2).unwrap().to_string();
            (name, path)
        })
        .collect();
    rpms.sort();
    assert_eq!(rpms.len(), 4, "rpmbuild made {rpms:?}");
    rpms
}

/// `rpm` on `root` with the database where RHEL puts it (Debian's rpm defaults to
/// `~/.rpmdb`) and the sqlite backend (forced, though Debian's default).
pub fn rpm_in(root: &Path) -> Command {
    let mut c = Command::new("rpm");
    c.arg("--root")
        .arg(root)
        .args(["--dbpath", "/var/lib/rpm", "--define", "_db_backend sqlite"]);
    c
}

/// Installs `rpms` into `root` as an image build would (no dependencies, no scripts).
pub fn install(root: &Path, rpms: &[&Path]) {
    run(rpm_in(root)
        .args([
            "-i",
            "--nodeps",
            "--noscripts",
            "--ignoreos",
            "--ignorearch",
        ])
        .args(rpms));
}

/// `rpm -qa` on `root`, as [`QF`] lines.
pub fn rpm_qa(root: &Path) -> BTreeSet<String> {
    run(rpm_in(root).args(["-qa", "--qf", QF]))
        .lines()
        .map(str::to_string)
        .collect()
}

/// A package as the [`QF`] line prints it.
pub fn line(p: &Package) -> String {
    let srpm = match (&p.source_name, &p.source_version) {
        (Some(n), Some(v)) => format!("{n}-{v}.src.rpm"),
        (Some(n), None) => {
            let vr = p
                .version
                .split_once(':')
                .map_or(p.version.as_str(), |x| x.1);
            format!("{n}-{vr}.src.rpm")
        }
        (None, _) => String::new(),
    };
    format!(
        "{}|{}|{}|{}|{}",
        p.name,
        p.version,
        p.arch.as_deref().unwrap_or(""),
        p.license.as_deref().unwrap_or(""),
        srpm
    )
}

pub fn lines(pkgs: &[Package]) -> BTreeSet<String> {
    pkgs.iter().map(line).collect()
}

pub fn without_gpg_pubkey(qa: &BTreeSet<String>) -> BTreeSet<String> {
    qa.iter()
        .filter(|l| !l.starts_with("gpg-pubkey|"))
        .cloned()
        .collect()
}

/// Writes the headers of `sqlite` into a BerkeleyDB hash file `dir/NAME/Packages` with
/// libdb's own loader, the way rpm < 4.16 stores them: key = header number in the
/// file's byte order, plus rpm's record 0 (the next free header number).
pub fn bdb_packages(sqlite: &Path, dir: &Path, page_size: u32, big_endian: bool) -> PathBuf {
    require("db5.3_load", "db5.3-util");
    let conn =
        rusqlite::Connection::open_with_flags(sqlite, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut stmt = conn.prepare("SELECT hnum, blob FROM Packages").unwrap();
    let rows: Vec<(u32, Vec<u8>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = |n: u32| {
        let b = if big_endian {
            n.to_be_bytes()
        } else {
            n.to_le_bytes()
        };
        hex(&b)
    };
    let mut input = String::from("VERSION=3\nformat=bytevalue\ntype=hash\nHEADER=END\n");
    let next = rows.iter().map(|r| r.0).max().unwrap() + 1;
    writeln!(input, " {}\n {}", key(0), key(next)).unwrap();
    for (hnum, blob) in &rows {
        writeln!(input, " {}\n {}", key(*hnum), hex(blob)).unwrap();
    }
    input.push_str("DATA=END\n");
    let name = format!("db-{page_size}-{}", if big_endian { "be" } else { "le" });
    let dbdir = dir.join(&name);
    std::fs::create_dir(&dbdir).unwrap();
    let input_file = dir.join(format!("{name}.load"));
    std::fs::write(&input_file, input).unwrap();
    let out = dbdir.join("Packages");
    let lorder = if big_endian { "4321" } else { "1234" };
    run(Command::new("db5.3_load")
        .args(["-c", &format!("db_pagesize={page_size}")])
        .args(["-c", &format!("db_lorder={lorder}")])
        .arg("-f")
        .arg(&input_file)
        .arg(&out));
    out
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            write!(s, "{x:02x}").unwrap();
            s
        })
}

/// `rpm -qa` through rpm's own read-only BerkeleyDB backend.
pub fn rpm_qa_bdb(packages: &Path) -> BTreeSet<String> {
    run(Command::new("rpm")
        .arg("--dbpath")
        .arg(packages.parent().unwrap())
        .args(["--define", "_db_backend bdb_ro", "-qa", "--qf", QF]))
    .lines()
    .map(str::to_string)
    .collect()
}
