//! berth's web pages in a real browser: Debian's headless Chromium, driven by
//! `tests/ui/drive.mjs` (playwright-core over the DevTools protocol) against a
//! `berth serve` holding
//! - `library/debian:12`, public: the real Debian 12 root file system
//!   (`debootstrap --variant=minbase bookworm`, cached under the target folder) as one
//!   layer, with title and description labels and a label whose value is
//!   `<script>alert(1)</script>`; two OSV records against its real packages, one fixed
//!   in a newer version than installed and one without a fix;
//! - `library/multi:1.0` and `:1.1`, public: multi-platform indexes of two small
//!   images (linux/amd64 and linux/arm64, different dpkg databases; 1.1 changes one
//!   package, so 1.1's package diff is against 1.0);
//! - `library/big:1`, public: one image of 1,000 packages (the package list's pages);
//! - `secret/app:2.0`, private, readable by alice only, with a package and a finding
//!   of its own.
//!
//! drive.mjs signs in, searches by name, package and CVE, opens images, switches
//! platform, opens every tab, filters fixable findings, copies a pull command, checks
//! that anonymous visitors see nothing of the private repository, that the hostile
//! label is text, and that the pages work with JavaScript off, in dark mode and on a
//! phone; it runs axe-core in every page and writes a screenshot of each page and
//! the HTML the server sent. This test then requires every screenshot to be non-blank
//! and the Nu HTML checker (vnu.jar) to find no error in any page.
//!
//! Output: `target/ui-browser/` (screenshots, `html/`, `axe/`, `config.json`).
//! Needs chromium, a Java runtime, node and `npm ci` in tests/ui (scripts/install-peers.sh
//! installs them all), debootstrap and deb.debian.org on the first run.
//!
//! Run with `cargo test -p berth --test ui_browser -- --nocapture`; with
//! `BERTH_UI_HOLD=SECS` the server stays up that long after the run, for running
//! `node crates/berth/tests/ui/drive.mjs target/ui-browser/config.json` again by hand.

mod common;
#[path = "common/registry_fixture.rs"]
mod registry_fixture;
#[path = "../../berth-inventory/tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_image::Digest;
use serde_json::{json, Value};

use registry_fixture::*;

const ROOT: (&str, &str) = ("root", "root-pw");
const ALICE: (&str, &str) = ("alice", "alice-pw-7Q");
const SCRIPT_LABEL: &str = "<script>alert(1)</script>";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Pushes `oci:LAYOUT:tag` to `repo:tag` as root (every platform of an index).
fn push(serve: &Serve, layout: &Path, tag: &str, repo: &str) {
    push_layout(serve, layout, tag, repo, ROOT, &["--all", "--quiet"]);
}

/// Waits until the catalog has inventoried `digest` in `repo` (an image, not an
/// index). Five minutes at most: the real Debian layer takes a debug build on a busy
/// machine far longer than the fixture's 20 s wait.
async fn scanned(serve: &Serve, repo: &str, digest: &Digest) {
    let url = format!(
        "{}/api/v1/repositories/{repo}/manifests/{digest}/packages?per_page=1",
        serve.url
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    loop {
        let r = reqwest::Client::new()
            .get(&url)
            .basic_auth(ROOT.0, Some(ROOT.1))
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            200 => return,
            202 => assert!(
                std::time::Instant::now() < deadline,
                "no inventory of {repo}@{digest} after 5 minutes"
            ),
            s => panic!("{url}: {s} {}", r.text().await.unwrap_or_default()),
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// An OSV record of Debian 12 against source package `package`.
fn osv(dir: &Path, id: &str, alias: &str, package: &str, fixed: Option<&str>, cvss: &str) {
    let mut events = vec![json!({"introduced": "0"})];
    if let Some(f) = fixed {
        events.push(json!({"fixed": f}));
    }
    let record = json!({
        "id": id, "modified": "2026-11-01T00:00:00Z", "published": "2026-10-10T00:00:00Z",
        "aliases": [alias],
        "summary": format!("a test record against {package}"),
        "severity": [{"type": "CVSS_V3", "score": cvss}],
        "affected": [{"package": {"ecosystem": "Debian:12", "name": package},
            "ranges": [{"type": "ECOSYSTEM", "events": events}]}]
    });
    std::fs::write(dir.join(format!("{id}.json")), record.to_string()).unwrap();
}

const CRITICAL: &str = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H";
const HIGH: &str = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N";

/// `(name, version)` of `package` in the dpkg database under `root`.
fn installed(root: &Path, package: &str) -> String {
    support::dpkg_query(root)
        .into_iter()
        .find(|(n, _, _)| n == package)
        .unwrap_or_else(|| panic!("{package} is not in the debootstrap root"))
        .1
}

/// Adds an OCI index of `children` (`(manifest digest, size, arch)`) named `tag` to
/// the layout at `dir`.
fn write_index(dir: &Path, tag: &str, children: &[(Digest, u64, &str)]) {
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": children.iter().map(|(d, size, arch)| json!({
            "mediaType": OCI_MANIFEST, "digest": d.to_string(), "size": size,
            "platform": {"os": "linux", "architecture": arch},
        })).collect::<Vec<_>>(),
    }))
    .unwrap();
    let digest = Digest::sha256_of(&index);
    std::fs::write(dir.join("blobs/sha256").join(digest.hex()), &index).unwrap();
    let path = dir.join("index.json");
    let mut top: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    top["manifests"].as_array_mut().unwrap().push(json!({
        "mediaType": OCI_INDEX, "digest": digest.to_string(), "size": index.len(),
        "annotations": {"org.opencontainers.image.ref.name": tag},
    }));
    std::fs::write(&path, serde_json::to_vec(&top).unwrap()).unwrap();
}

fn blob_size(dir: &Path, d: &Digest) -> u64 {
    std::fs::metadata(dir.join("blobs/sha256").join(d.hex()))
        .unwrap()
        .len()
}

fn small_config(arch: &str, description: &str) -> Value {
    json!({
        "created": "2026-11-20T10:00:00Z", "architecture": arch, "os": "linux",
        "config": {"Labels": {"org.opencontainers.image.description": description}},
        "history": [{"created": "2026-11-20T10:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:small in / "}],
    })
}

/// The folder of drive.mjs and its node_modules.
fn ui_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui")
}

fn vnu_jar() -> PathBuf {
    ui_dir().join("node_modules/vnu-jar/build/dist/vnu.jar")
}

/// Fails with what to install when a tool of this test is missing.
fn require_tools() {
    support::require("chromium", "chromium");
    support::require("java", "default-jre-headless");
    support::require("node", "nodejs");
    for file in [
        "node_modules/playwright-core/index.mjs",
        "node_modules/axe-core/axe.min.js",
    ] {
        assert!(
            ui_dir().join(file).is_file(),
            "{} is missing: run scripts/install-peers.sh (npm ci in {})",
            ui_dir().join(file).display(),
            ui_dir().display()
        );
    }
    assert!(
        vnu_jar().is_file(),
        "{} is missing: run scripts/install-peers.sh",
        vnu_jar().display()
    );
}

/// `target/ui-browser`, emptied.
fn out_dir() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target folder")
        .to_path_buf();
    let out = target.join("ui-browser");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_work_in_headless_chromium() {
    require_tools();
    let (debian_root, debian_layer) = support::debian();
    let out = out_dir();

    let root = tempfile::tempdir().unwrap();
    let root_s = root.path().to_str().unwrap();
    registry(
        root_s,
        &["user", "add", ROOT.0, "--superuser", "--password-stdin"],
        ROOT.1,
    );
    registry(
        root_s,
        &["user", "add", ALICE.0, "--password-stdin"],
        ALICE.1,
    );
    for repo in ["library/debian", "library/multi", "library/big"] {
        registry(root_s, &["repo", "visibility", repo, "public"], "");
    }
    registry(root_s, &["grant", ALICE.0, "read", "secret/app"], "");
    let serve = Serve::start(root.path(), &[]).await;
    let layout = tempfile::tempdir().unwrap();
    let lp = layout.path();

    // -- library/debian:12, the real Debian root -------------------------------------
    let gz = std::fs::read(&debian_layer).unwrap();
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut raw)
        .unwrap();
    let title = "Debian 12 minbase";
    let description = "Debian bookworm as debootstrap --variant=minbase makes it";
    let debian = write_layout(
        lp,
        "12",
        &[(raw, gz)],
        json!({
            "created": "2026-11-20T10:00:00Z", "architecture": "amd64", "os": "linux",
            "config": {"Cmd": ["bash"], "Labels": {
                "org.opencontainers.image.title": title,
                "org.opencontainers.image.description": description,
                "org.opencontainers.image.vendor": "berth tests",
                "org.example.note": SCRIPT_LABEL,
            }},
            "history": [
                {"created": "2026-11-20T10:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:debootstrap-bookworm-minbase in / "},
                {"created": "2026-11-20T10:00:00Z", "created_by": "/bin/sh -c #(nop)  CMD [\"bash\"]", "empty_layer": true},
            ],
        }),
    );
    push(&serve, lp, "12", "library/debian");
    let packages = support::dpkg_query(&debian_root).len();
    let gzip_version = installed(&debian_root, "gzip");
    let sed_version = installed(&debian_root, "sed");
    let gzip_fixed = format!("{gzip_version}+berth1");

    // -- library/multi:1.0 and 1.1, two platforms each --------------------------------
    let mut multi = HashMap::new();
    for (tag, tool) in [("1.0", "1.0-1"), ("1.1", "1.1-1")] {
        let mut children = Vec::new();
        for arch in ["amd64", "arm64"] {
            let only = format!("{arch}-only-tool");
            let l = layer(&[
                ("etc/os-release", DEBIAN_OS_RELEASE),
                (
                    "var/lib/dpkg/status",
                    &dpkg_status(&[
                        ("base-files", "12.4+deb12u8", None),
                        ("multi-tool", tool, None),
                        (&only, "2.0-1", None),
                    ]),
                ),
            ]);
            let d = write_layout(
                lp,
                &format!("multi-{tag}-{arch}"),
                &[l],
                small_config(arch, "a multi-platform test image"),
            );
            children.push((d.clone(), blob_size(lp, &d), arch));
            multi.insert((tag, arch), d);
        }
        write_index(lp, tag, &children);
        push(&serve, lp, tag, "library/multi");
    }

    // -- library/big:1, 1,000 packages ------------------------------------------------
    let names: Vec<String> = (0..1000).map(|i| format!("bigpkg-{i:04}")).collect();
    let list: Vec<(&str, &str, Option<&str>)> =
        names.iter().map(|n| (n.as_str(), "1.0-1", None)).collect();
    let big = write_layout(
        lp,
        "1",
        &[layer(&[
            ("etc/os-release", DEBIAN_OS_RELEASE),
            ("var/lib/dpkg/status", &dpkg_status(&list)),
        ])],
        small_config("amd64", "an image of a thousand packages"),
    );
    push(&serve, lp, "1", "library/big");

    // -- secret/app:2.0, private -------------------------------------------------------
    let secret = write_layout(
        lp,
        "2.0",
        &[layer(&[
            ("etc/os-release", DEBIAN_OS_RELEASE),
            (
                "var/lib/dpkg/status",
                &dpkg_status(&[("zzhiddenpkg", "1.0-1", None)]),
            ),
        ])],
        small_config("amd64", "the hidden application"),
    );
    push(&serve, lp, "2.0", "secret/app");

    // -- vulnerability data ------------------------------------------------------------
    let data = tempfile::tempdir().unwrap();
    osv(
        data.path(),
        "DEBIAN-CVE-2099-1111",
        "CVE-2099-1111",
        "gzip",
        Some(&gzip_fixed),
        CRITICAL,
    );
    osv(
        data.path(),
        "DEBIAN-CVE-2099-2222",
        "CVE-2099-2222",
        "sed",
        None,
        HIGH,
    );
    osv(
        data.path(),
        "DEBIAN-CVE-2098-7777",
        "CVE-2098-7777",
        "zzhiddenpkg",
        None,
        HIGH,
    );
    let mut import = vec![
        "registry".to_string(),
        "vulndb".into(),
        "import".into(),
        "--url".into(),
        serve.url.clone(),
        "--creds".into(),
        format!("{}:{}", ROOT.0, ROOT.1),
    ];
    for f in std::fs::read_dir(data.path()).unwrap() {
        import.push(f.unwrap().path().to_str().unwrap().to_string());
    }
    ok(berth(
        &import.iter().map(String::as_str).collect::<Vec<_>>(),
    ));

    // Everything inventoried before the browser looks.
    scanned(&serve, "library/debian", &debian).await;
    for d in multi.values() {
        scanned(&serve, "library/multi", d).await;
    }
    scanned(&serve, "library/big", &big).await;
    scanned(&serve, "secret/app", &secret).await;

    // -- the browser -------------------------------------------------------------------
    let config = json!({
        "base": serve.url,
        "host": serve.addr,
        "out": out,
        "alice": {"user": ALICE.0, "password": ALICE.1},
        "publicRepos": ["library/debian", "library/multi", "library/big"],
        "debian": {
            "repo": "library/debian", "tag": "12", "digest": debian.to_string(),
            "title": title, "description": description, "searchName": "debian",
            "scriptLabel": {"key": "org.example.note", "value": SCRIPT_LABEL},
            "packages": packages,
            "historyStep": "CMD [\"bash\"]",
            "fixable": {"id": "DEBIAN-CVE-2099-1111", "cve": "CVE-2099-1111", "package": "gzip",
                        "installed": gzip_version, "fixed": gzip_fixed},
            "unfixable": {"id": "DEBIAN-CVE-2099-2222", "cve": "CVE-2099-2222", "package": "sed",
                          "installed": sed_version},
        },
        "multi": {
            "repo": "library/multi", "tags": ["1.1", "1.0"],
            "amd64": multi[&("1.1", "amd64")].to_string(),
            "arm64": multi[&("1.1", "arm64")].to_string(),
            "amd64Package": "amd64-only-tool", "arm64Package": "arm64-only-tool",
            "changedPackage": "multi-tool",
            "searchName": "multi",
        },
        "big": {"repo": "library/big", "digest": big.to_string()},
        "secret": {
            "repo": "secret/app", "tag": "2.0", "digest": secret.to_string(),
            "searchName": "secret", "package": "zzhiddenpkg",
            "cve": "CVE-2098-7777", "id": "DEBIAN-CVE-2098-7777",
        },
    });
    let config_path = out.join("config.json");
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    let drive = Command::new("node")
        .arg(ui_dir().join("drive.mjs"))
        .arg(&config_path)
        .current_dir(ui_dir())
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&drive.stdout);
    eprintln!("{}", String::from_utf8_lossy(&drive.stderr));
    println!("{stdout}");
    let mut problems: Vec<String> = stdout
        .lines()
        .filter(|l| l.starts_with("FAIL "))
        .map(String::from)
        .collect();
    if !drive.status.success() && problems.is_empty() {
        problems.push(format!(
            "drive.mjs exited with {}: {}",
            drive.status,
            String::from_utf8_lossy(&drive.stderr)
        ));
    }

    // -- every screenshot non-blank ------------------------------------------------------
    let mut shots = 0;
    for entry in std::fs::read_dir(&out).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "png") {
            shots += 1;
            if let Err(e) = non_blank(&std::fs::read(&path).unwrap()) {
                problems.push(format!("screenshot {}: {e}", path.display()));
            }
        }
    }
    if shots < 20 {
        problems.push(format!(
            "only {shots} screenshots in {} (every page and tab has one)",
            out.display()
        ));
    }

    // -- the Nu HTML checker on every page as the server sent it -------------------------
    let mut pages: Vec<PathBuf> = std::fs::read_dir(out.join("html"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    pages.sort();
    if pages.is_empty() {
        problems.push("no HTML saved by drive.mjs".into());
    } else {
        let vnu = Command::new("java")
            .arg("-jar")
            .arg(vnu_jar())
            .args(["--errors-only", "--format", "gnu"])
            .args(&pages)
            .output()
            .expect("java runs");
        let report = String::from_utf8_lossy(&vnu.stderr).into_owned()
            + &String::from_utf8_lossy(&vnu.stdout);
        std::fs::write(out.join("vnu.txt"), &report).unwrap();
        if !vnu.status.success() || !report.trim().is_empty() {
            for line in report.lines().filter(|l| !l.trim().is_empty()) {
                problems.push(format!("vnu: {line}"));
            }
        }
    }
    if let Some(secs) = std::env::var("BERTH_UI_HOLD")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        // For working on the pages: the server stays up so that drive.mjs can be run
        // again by hand (`node tests/ui/drive.mjs target/ui-browser/config.json`).
        eprintln!("BERTH_UI_HOLD: serving on {} for {secs} s", serve.url);
        tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
    }
    assert!(
        problems.is_empty(),
        "{} problems (output in {}):\n{}",
        problems.len(),
        out.display(),
        problems.join("\n")
    );
}

/// Decodes a PNG of 8-bit RGB or RGBA (what Chromium writes) and requires more than
/// one color, the commonest covering less than 99.5% of the pixels.
fn non_blank(png: &[u8]) -> Result<(), String> {
    let pixels = decode_png(png)?;
    let mut counts: HashMap<[u8; 3], usize> = HashMap::new();
    for p in &pixels {
        *counts.entry(*p).or_default() += 1;
    }
    let top = counts.values().copied().max().unwrap_or(0);
    if counts.len() < 2 || top as f64 > 0.995 * pixels.len() as f64 {
        return Err(format!(
            "blank: {} colors, the commonest covers {top} of {} pixels",
            counts.len(),
            pixels.len()
        ));
    }
    Ok(())
}

/// A PNG's pixels (RGB), for the non-interlaced 8-bit RGB/RGBA images Chromium writes.
fn decode_png(png: &[u8]) -> Result<Vec<[u8; 3]>, String> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if !png.starts_with(SIGNATURE) {
        return Err("not a PNG".into());
    }
    let mut at = SIGNATURE.len();
    let (mut width, mut height, mut channels) = (0usize, 0usize, 0usize);
    let mut idat = Vec::new();
    while at + 8 <= png.len() {
        let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
        let kind = &png[at + 4..at + 8];
        let data = png
            .get(at + 8..at + 8 + len)
            .ok_or("a chunk runs past the end")?;
        match kind {
            b"IHDR" => {
                width = u32::from_be_bytes(data[0..4].try_into().unwrap()) as usize;
                height = u32::from_be_bytes(data[4..8].try_into().unwrap()) as usize;
                let (depth, color, interlace) = (data[8], data[9], data[12]);
                channels = match (depth, color, interlace) {
                    (8, 2, 0) => 3,
                    (8, 6, 0) => 4,
                    _ => {
                        return Err(format!(
                        "unsupported PNG: depth {depth} color type {color} interlace {interlace}"
                    ))
                    }
                };
            }
            b"IDAT" => idat.extend_from_slice(data),
            b"IEND" => break,
            _ => {}
        }
        at += 12 + len;
    }
    if width == 0 || height == 0 {
        return Err("no IHDR or an empty image".into());
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..])
        .read_to_end(&mut raw)
        .map_err(|e| format!("image data: {e}"))?;
    let stride = width * channels;
    if raw.len() != height * (stride + 1) {
        return Err(format!(
            "{} bytes of image data for {width}x{height}",
            raw.len()
        ));
    }
    let mut prev = vec![0u8; stride];
    let mut pixels = Vec::with_capacity(width * height);
    for row in raw.chunks(stride + 1) {
        let (filter, line) = (row[0], &row[1..]);
        let mut cur = vec![0u8; stride];
        for i in 0..stride {
            let a = if i >= channels { cur[i - channels] } else { 0 };
            let b = prev[i];
            let c = if i >= channels { prev[i - channels] } else { 0 };
            let predicted = match filter {
                0 => 0,
                1 => a,
                2 => b,
                3 => ((a as u16 + b as u16) / 2) as u8,
                4 => {
                    let p = a as i16 + b as i16 - c as i16;
                    let (pa, pb, pc) = (
                        (p - a as i16).abs(),
                        (p - b as i16).abs(),
                        (p - c as i16).abs(),
                    );
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
                f => return Err(format!("filter type {f}")),
            };
            cur[i] = line[i].wrapping_add(predicted);
        }
        pixels.extend(cur.chunks(channels).map(|p| [p[0], p[1], p[2]]));
        prev = cur;
    }
    Ok(pixels)
}

#[test]
fn the_png_check_tells_blank_from_drawn() {
    // A 2x2 RGB image (filter 0 rows), all white, then one black pixel.
    fn png(pixels: [[u8; 3]; 4]) -> Vec<u8> {
        use std::io::Write;
        let mut raw = Vec::new();
        for row in pixels.chunks(2) {
            raw.push(0);
            for p in row {
                raw.extend_from_slice(p);
            }
        }
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&raw).unwrap();
        let idat = z.finish().unwrap();
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        for (kind, data) in [
            (
                &b"IHDR"[..],
                [
                    &2u32.to_be_bytes()[..],
                    &2u32.to_be_bytes(),
                    &[8, 2, 0, 0, 0],
                ]
                .concat(),
            ),
            (b"IDAT", idat),
            (b"IEND", Vec::new()),
        ] {
            out.extend_from_slice(&(data.len() as u32).to_be_bytes());
            out.extend_from_slice(kind);
            out.extend_from_slice(&data);
            out.extend_from_slice(&[0; 4]); // CRC: not checked
        }
        out
    }
    let w = [255, 255, 255];
    assert!(non_blank(&png([w; 4])).is_err());
    assert!(non_blank(&png([w, w, w, [0, 0, 0]])).is_ok());
    assert!(non_blank(b"GIF89a").is_err());
}
