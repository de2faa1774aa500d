//! `berth sbom`: an image's SBOM from its layers, over docker:// (a `berth serve`) and
//! oci:, valid against the published SPDX 2.3 and CycloneDX 1.5 schemas; `--attach`
//! makes it an OCI 1.1 referrer of the image that the referrers API lists.
//!
//! Run with `cargo test -p berth --test sbom` (needs curl, as the interop tests).

mod common;
#[path = "common/registry_fixture.rs"]
mod registry_fixture;
#[path = "interop/support.rs"]
mod support;
#[path = "../../berth-sbom/tests/validate/mod.rs"]
mod validate;

use std::fs;
use std::io::Write;
use std::path::Path;

use serde_json::{json, Value};
use support::*;
use validate::Schemas;

use registry_fixture::{DEBIAN_OS_RELEASE, OCI_MANIFEST};

/// A dpkg status file of three installed packages (one with a `+` in its name, one
/// whose source differs from its name).
const DPKG_STATUS: &str = "\
Package: base-files
Status: install ok installed
Priority: required
Section: admin
Architecture: amd64
Version: 12.4+deb12u5
Description: Debian base system miscellaneous files

Package: libc6
Status: install ok installed
Priority: optional
Section: libs
Architecture: amd64
Source: glibc
Version: 2.36-9+deb12u4
Description: GNU C Library: Shared libraries

Package: libstdc++6
Status: install ok installed
Priority: optional
Section: libs
Architecture: amd64
Source: gcc-12 (12.2.0-14)
Version: 12.2.0-14
Description: GNU Standard C++ Library v3
";

/// A gzip layer holding os-release and a dpkg status file: `(tar, gzip)`.
fn layer() -> (Vec<u8>, Vec<u8>) {
    registry_fixture::layer(&[
        ("etc/os-release", DEBIAN_OS_RELEASE),
        ("var/lib/dpkg/status", DPKG_STATUS),
    ])
}

/// Writes a one-layer OCI layout at `dir` (reference `v1`); returns the manifest's digest.
fn write_layout(dir: &Path) -> String {
    let config = json!({
        "created": "2024-02-03T04:05:06.789Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "history": [{
            "created": "2024-02-03T04:05:06.789Z",
            "created_by": "/bin/sh -c #(nop) ADD file:0123 in / "
        }]
    });
    registry_fixture::write_layout(dir, "v1", &[layer()], config).to_string()
}

/// The names of the OS packages in an SPDX document (not the image, not the OS).
fn spdx_package_names(doc: &Value) -> Vec<String> {
    let mut names: Vec<String> = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p.get("primaryPackagePurpose").is_none())
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn sbom_of_registry_and_layout_images_valid_and_attached() {
    let mut ctx = Ctx::new("sbom", &["curl", "sha256sum"]);
    let schemas = Schemas::load();
    let reg = ctx.start(ServerKind::Berth);
    let layout = ctx.path("layout");
    let digest = write_layout(&layout);
    let layout_ref = format!("oci:{}:v1", layout.display());
    let image = format!("docker://{reg}/test/app:v1");
    ctx.berth(&["copy", "--dest-tls-verify=false", &layout_ref, &image])
        .run();
    let want = ["base-files", "libc6", "libstdc++6"];

    ctx.step("berth sbom docker://… --format spdx");
    let spdx = ctx
        .berth(&["sbom", "--tls-verify=false", "--format", "spdx", &image])
        .run();
    let doc = spdx.json();
    schemas.assert_spdx(&doc);
    assert_eq!(spdx_package_names(&doc), want, "{doc:#}");
    let packages = doc["packages"].as_array().unwrap();
    assert_eq!(packages[0]["primaryPackagePurpose"], "CONTAINER");
    assert_eq!(packages[0]["versionInfo"], digest.as_str());
    assert_eq!(packages[0]["name"], format!("{reg}/test/app:v1"));
    let os = packages
        .iter()
        .find(|p| p["primaryPackagePurpose"] == "OPERATING_SYSTEM")
        .unwrap_or_else(|| panic!("no OS package: {doc:#}"));
    assert_eq!(os["name"], "debian");
    assert_eq!(os["versionInfo"], "12");
    // Dated by the image, so the same image gives the same document.
    assert_eq!(doc["creationInfo"]["created"], "2024-02-03T04:05:06Z");
    let libc = packages.iter().find(|p| p["name"] == "libc6").unwrap();
    assert_eq!(libc["versionInfo"], "2.36-9+deb12u4");
    let purl = libc["externalRefs"][0]["referenceLocator"]
        .as_str()
        .unwrap();
    assert!(purl.starts_with("pkg:deb/debian/libc6@"), "{purl}");

    ctx.step("--format cyclonedx --output FILE");
    let out = ctx.path("bom.json");
    let o = out.display().to_string();
    let printed = ctx
        .berth(&[
            "sbom",
            "--tls-verify=false",
            "--format",
            "cyclonedx",
            "-o",
            &o,
            &image,
        ])
        .run();
    assert!(printed.stdout.is_empty(), "{}", printed.stdout);
    let bom: Value = serde_json::from_slice(&fs::read(&out).unwrap()).unwrap();
    schemas.assert_cyclonedx(&bom);
    assert_eq!(bom["metadata"]["component"]["version"], digest.as_str());
    let mut names: Vec<&str> = bom["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["type"] == "library")
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, want);

    ctx.step("--attach: a referrer with the SPDX artifactType");
    let attached = ctx
        .berth(&[
            "sbom",
            "--tls-verify=false",
            "--format",
            "spdx",
            "--attach",
            &image,
        ])
        .run()
        .last_line();
    let referrers = || -> Value {
        let r = ctx.http(
            "GET",
            &format!("http://{reg}/v2/test/app/referrers/{digest}"),
            None,
        );
        r.expect_status(200);
        serde_json::from_slice(&r.body).unwrap()
    };
    let index = referrers();
    let listed = index["manifests"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{index:#}");
    assert_eq!(listed[0]["digest"], attached.as_str());
    assert_eq!(listed[0]["artifactType"], "application/spdx+json");
    let m = ctx.http(
        "GET",
        &format!("http://{reg}/v2/test/app/manifests/{attached}"),
        Some(OCI_MANIFEST),
    );
    m.expect_status(200);
    let artifact = Manifest::parse(m.body.clone());
    assert_eq!(artifact.json["subject"]["digest"], digest.as_str());
    assert_eq!(
        artifact.json["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    assert_eq!(artifact.json["config"]["size"], 2);
    let layers = artifact.layer_digests();
    assert_eq!(layers.len(), 1);
    let blob = ctx.http(
        "GET",
        &format!("http://{reg}/v2/test/app/blobs/{}", layers[0]),
        None,
    );
    blob.expect_status(200);
    // The stored document is the one the command prints.
    assert_eq!(blob.body, spdx.stdout_bytes);

    ctx.step("attaching again adds no second referrer; CycloneDX is another");
    let again = ctx
        .berth(&["sbom", "--tls-verify=false", "--attach", &image])
        .run()
        .last_line();
    assert_eq!(again, attached);
    ctx.berth(&[
        "sbom",
        "--tls-verify=false",
        "--format",
        "cyclonedx",
        "--attach",
        &image,
    ])
    .run();
    let index = referrers();
    let mut types: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["artifactType"].as_str().unwrap())
        .collect();
    types.sort();
    assert_eq!(
        types,
        ["application/spdx+json", "application/vnd.cyclonedx+json"],
        "{index:#}"
    );

    ctx.step("berth sbom oci:DIR");
    let doc = ctx
        .berth(&["sbom", "--format", "spdx", &layout_ref])
        .run()
        .json();
    schemas.assert_spdx(&doc);
    assert_eq!(spdx_package_names(&doc), want);
    assert_eq!(doc["packages"][0]["versionInfo"], digest.as_str());

    ctx.step("a layer that does not match its digest is refused");
    let tampered = ctx.path("tampered");
    write_layout(&tampered);
    let manifest: Value = serde_json::from_slice(
        &fs::read(
            tampered
                .join("blobs/sha256")
                .join(&digest["sha256:".len()..]),
        )
        .unwrap(),
    )
    .unwrap();
    let layer_digest = manifest["layers"][0]["digest"].as_str().unwrap();
    let blob = tampered
        .join("blobs/sha256")
        .join(&layer_digest["sha256:".len()..]);
    let (plain, _) = layer();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(
        &String::from_utf8(plain)
            .unwrap()
            .replace("libc6", "libc7")
            .into_bytes(),
    )
    .unwrap();
    fs::write(&blob, gz.finish().unwrap()).unwrap();
    let out = ctx
        .berth(&["sbom", &format!("oci:{}:v1", tampered.display())])
        .run_fail();
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("expected {layer_digest}")),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "{}", out.stdout);

    ctx.step("bad input: one line, exit 1");
    for (args, what) in [
        (
            vec!["sbom", "--format", "xml", layout_ref.as_str()],
            "unknown SBOM format \"xml\"",
        ),
        (
            vec!["sbom", "--attach", layout_ref.as_str()],
            "--attach stores the SBOM in a registry",
        ),
    ] {
        let out = ctx.berth(&args).run_fail();
        assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
        assert_eq!(out.stderr.trim_end().lines().count(), 1, "{}", out.stderr);
        assert!(out.stderr.contains(what), "{}", out.stderr);
    }
    let missing = format!("docker://{reg}/test/none:v1");
    let out = ctx
        .berth(&["sbom", "--tls-verify=false", &missing])
        .run_fail();
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
}
