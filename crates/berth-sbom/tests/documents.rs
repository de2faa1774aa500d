//! Every document berth-sbom writes is valid against the formats' published schemas,
//! and says what the inventory holds.

mod validate;

use berth_inventory::{Inventory, OsInfo, Package, PackageKind};
use berth_sbom::{cyclonedx, spdx, Format, SbomSubject};
use serde_json::Value;
use validate::Schemas;

fn package(
    kind: PackageKind,
    name: &str,
    version: &str,
    license: Option<&str>,
    purl: &str,
) -> Package {
    Package {
        kind,
        name: name.into(),
        version: version.into(),
        source_name: Some(format!("{name}-src")),
        source_version: None,
        arch: Some("amd64".into()),
        license: license.map(Into::into),
        purl: purl.into(),
        db_path: "var/lib/dpkg/status".into(),
        layer_index: 1,
    }
}

/// deb, rpm and apk packages; names with `+`, spaces and non-ASCII letters; licenses
/// that are SPDX expressions and ones that are not; one purl given with a raw space.
fn mixed() -> Inventory {
    use PackageKind::*;
    Inventory {
        os: Some(OsInfo {
            id: "debian".into(),
            version_id: Some("12".into()),
            pretty_name: Some("Debian GNU/Linux 12 (bookworm)".into()),
            ecosystem: Some("Debian:12".into()),
        }),
        packages: vec![
            package(
                Deb,
                "libc6",
                "2.36-9+deb12u4",
                None,
                "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12",
            ),
            package(
                Deb,
                "libstdc++6",
                "12.2.0-14",
                None,
                "pkg:deb/debian/libstdc%2B%2B6@12.2.0-14?arch=amd64&distro=debian-12",
            ),
            package(
                Rpm,
                "openssl-libs",
                "1:3.0.7-27.el9",
                Some("Apache-2.0"),
                "pkg:rpm/redhat/openssl-libs@3.0.7-27.el9?arch=x86_64&epoch=1",
            ),
            package(
                Rpm,
                "bash",
                "5.1.8-9.el9",
                Some("GPLv3+"),
                "pkg:rpm/redhat/bash@5.1.8-9.el9?arch=x86_64",
            ),
            package(
                Rpm,
                "glibc",
                "2.34-100.el9",
                Some("LGPLv2+ and LGPLv2+ with exceptions and GPLv2+"),
                "pkg:rpm/redhat/glibc@2.34-100.el9?arch=x86_64",
            ),
            package(
                Apk,
                "musl",
                "1.2.4-r2",
                Some("MIT and BSD-3-Clause"),
                "pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64",
            ),
            package(
                Apk,
                "busybox",
                "1.36.1-r15",
                Some("GPL-2.0-only"),
                "pkg:apk/alpine/busybox@1.36.1-r15?arch=x86_64",
            ),
            package(
                Apk,
                "my tool",
                "1.0-r0",
                Some("MIT OR Apache-2.0"),
                "pkg:apk/alpine/my tool@1.0-r0",
            ),
            package(
                Deb,
                "pâtisserie-ünïcode",
                "0.1",
                Some("Public Domain"),
                "pkg:deb/debian/p%C3%A2tisserie-%C3%BCn%C3%AFcode@0.1",
            ),
            // The same package twice (two architectures): ids and bom-refs stay unique.
            package(
                Deb,
                "libc6",
                "2.36-9+deb12u4",
                None,
                "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12",
            ),
            package(Deb, "no-purl", "1", Some("GPLv3+"), ""),
        ],
        containerfile: None,
        unreadable: Vec::new(),
    }
}

fn subject() -> SbomSubject {
    SbomSubject {
        name: "localhost:5000/team/app:v1".into(),
        digest: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into(),
        created: Some("2024-03-04T05:06:07.891Z".into()),
    }
}

fn spdx_package<'a>(doc: &'a Value, name: &str) -> Vec<&'a Value> {
    doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == name)
        .collect()
}

#[test]
fn spdx_of_a_mixed_inventory_is_valid_and_complete() {
    let schemas = Schemas::load();
    let doc = spdx(&mixed(), &subject());
    schemas.assert_spdx(&doc);
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    assert_eq!(doc["dataLicense"], "CC0-1.0");
    assert_eq!(doc["creationInfo"]["created"], "2024-03-04T05:06:07Z");
    let creator = doc["creationInfo"]["creators"][0].as_str().unwrap();
    assert!(creator.starts_with("Tool: berth-"), "{creator}");
    let ns = doc["documentNamespace"].as_str().unwrap();
    assert!(
        ns.starts_with(
            "https://berth.invalid/spdx/localhost%3A5000/team/app%3Av1@sha256%3A0123456789abcdef"
        ),
        "{ns}"
    );

    // The image, the OS, then one package per inventory entry.
    let packages = doc["packages"].as_array().unwrap();
    assert_eq!(packages.len(), 2 + mixed().packages.len());
    assert_eq!(packages[0]["primaryPackagePurpose"], "CONTAINER");
    assert_eq!(packages[0]["versionInfo"], subject().digest);
    assert_eq!(packages[1]["primaryPackagePurpose"], "OPERATING_SYSTEM");
    assert_eq!(packages[1]["name"], "debian");
    assert_eq!(packages[1]["versionInfo"], "12");

    // Every SPDXID is unique and made of what SPDX allows.
    let ids: Vec<&str> = packages
        .iter()
        .map(|p| p["SPDXID"].as_str().unwrap())
        .collect();
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "{ids:?}");
    for id in &ids {
        let rest = id.strip_prefix("SPDXRef-").unwrap();
        assert!(
            rest.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'),
            "{id}"
        );
    }
    assert_eq!(spdx_package(&doc, "libc6").len(), 2);

    // Licenses: expressions pass (operators upper-cased), other text is a LicenseRef
    // defined in the document with the database's words, none is NOASSERTION.
    let declared = |name: &str| spdx_package(&doc, name)[0]["licenseDeclared"].clone();
    assert_eq!(declared("openssl-libs"), "Apache-2.0");
    assert_eq!(declared("musl"), "MIT AND BSD-3-Clause");
    assert_eq!(declared("my tool"), "MIT OR Apache-2.0");
    assert_eq!(declared("libc6"), "NOASSERTION");
    let bash = declared("bash");
    let bash = bash.as_str().unwrap();
    assert!(bash.starts_with("LicenseRef-"), "{bash}");
    let infos = doc["hasExtractedLicensingInfos"].as_array().unwrap();
    let info = infos.iter().find(|i| i["licenseId"] == bash).unwrap();
    assert_eq!(info["extractedText"], "GPLv3+");
    // One definition per text: bash and no-purl share theirs.
    assert_eq!(declared("no-purl"), bash);
    assert_eq!(infos.len(), 3, "{infos:#?}");
    for p in packages {
        assert_eq!(
            p["licenseConcluded"].as_str().unwrap_or("NOASSERTION"),
            "NOASSERTION"
        );
    }

    // purls as PACKAGE-MANAGER references, never with a space.
    let purl = |name: &str| {
        spdx_package(&doc, name)[0]["externalRefs"][0]["referenceLocator"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(purl("my tool"), "pkg:apk/alpine/my%20tool@1.0-r0");
    assert_eq!(
        purl("libstdc++6"),
        "pkg:deb/debian/libstdc%2B%2B6@12.2.0-14?arch=amd64&distro=debian-12"
    );
    assert!(spdx_package(&doc, "no-purl")[0]
        .get("externalRefs")
        .is_none());

    // The document describes the image, which contains the OS and every package.
    let rels = doc["relationships"].as_array().unwrap();
    assert_eq!(rels[0]["spdxElementId"], "SPDXRef-DOCUMENT");
    assert_eq!(rels[0]["relationshipType"], "DESCRIBES");
    assert_eq!(rels[0]["relatedSpdxElement"], "SPDXRef-Image");
    let contained: Vec<&str> = rels[1..]
        .iter()
        .inspect(|r| assert_eq!(r["relationshipType"], "CONTAINS"))
        .map(|r| r["relatedSpdxElement"].as_str().unwrap())
        .collect();
    assert_eq!(contained, ids[1..]);
}

#[test]
fn cyclonedx_of_a_mixed_inventory_is_valid_and_complete() {
    let schemas = Schemas::load();
    let doc = cyclonedx(&mixed(), &subject());
    schemas.assert_cyclonedx(&doc);
    assert_eq!(doc["bomFormat"], "CycloneDX");
    assert_eq!(doc["specVersion"], "1.5");
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["metadata"]["timestamp"], "2024-03-04T05:06:07Z");
    let image = &doc["metadata"]["component"];
    assert_eq!(image["type"], "container");
    assert_eq!(image["version"], subject().digest);
    assert_eq!(
        image["purl"],
        "pkg:oci/app@sha256%3A0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef?repository_url=localhost%3A5000/team/app&tag=v1"
    );
    let components = doc["components"].as_array().unwrap();
    assert_eq!(components.len(), 1 + mixed().packages.len());
    assert_eq!(components[0]["type"], "operating-system");
    assert_eq!(components[0]["name"], "debian");
    let refs: std::collections::HashSet<&str> = components
        .iter()
        .map(|c| c["bom-ref"].as_str().unwrap())
        .collect();
    assert_eq!(refs.len(), components.len());
    let by_name = |name: &str| components.iter().find(|c| c["name"] == name).unwrap();
    assert_eq!(by_name("busybox")["type"], "library");
    assert_eq!(
        by_name("busybox")["licenses"],
        serde_json::json!([{"expression": "GPL-2.0-only"}])
    );
    assert_eq!(
        by_name("glibc")["licenses"],
        serde_json::json!([{"license": {"name": "LGPLv2+ and LGPLv2+ with exceptions and GPLv2+"}}])
    );
    assert!(by_name("libc6").get("licenses").is_none());
    assert_eq!(by_name("pâtisserie-ünïcode")["version"], "0.1");
}

#[test]
fn an_empty_inventory_gives_valid_documents() {
    let schemas = Schemas::load();
    let empty = Inventory::default();
    let image = SbomSubject {
        name: "oci:/tmp/layout".into(),
        digest: "sha256:".to_string() + &"a".repeat(64),
        created: None,
    };
    let s = spdx(&empty, &image);
    schemas.assert_spdx(&s);
    assert_eq!(s["packages"].as_array().unwrap().len(), 1);
    assert!(s.get("hasExtractedLicensingInfos").is_none());
    let c = cyclonedx(&empty, &image);
    schemas.assert_cyclonedx(&c);
    assert_eq!(c["components"], serde_json::json!([]));
}

/// The validators are live: a document missing a required field, or with a value
/// the schema forbids, is refused.
#[test]
fn the_schemas_refuse_broken_documents() {
    let schemas = Schemas::load();
    let inv = mixed();
    let good = spdx(&inv, &subject());
    for field in [
        "spdxVersion",
        "SPDXID",
        "creationInfo",
        "dataLicense",
        "name",
    ] {
        let mut bad = good.clone();
        bad.as_object_mut().unwrap().remove(field);
        assert!(!schemas.spdx.is_valid(&bad), "SPDX without {field} passed");
    }
    let mut bad = good.clone();
    bad["packages"][1]["primaryPackagePurpose"] = "OPERATING-SYSTEM".into();
    assert!(
        !schemas.spdx.is_valid(&bad),
        "a purpose outside the enum passed"
    );
    let mut bad = good.clone();
    bad["packages"][2]
        .as_object_mut()
        .unwrap()
        .remove("downloadLocation");
    assert!(
        !schemas.spdx.is_valid(&bad),
        "a package without downloadLocation passed"
    );

    let good = cyclonedx(&inv, &subject());
    for field in ["bomFormat", "specVersion"] {
        let mut bad = good.clone();
        bad.as_object_mut().unwrap().remove(field);
        assert!(
            !schemas.cyclonedx.is_valid(&bad),
            "CycloneDX without {field} passed"
        );
    }
    let mut bad = good.clone();
    bad["serialNumber"] = "urn:uuid:not-a-uuid".into();
    assert!(
        !schemas.cyclonedx.is_valid(&bad),
        "a bad serial number passed"
    );
    let mut bad = good.clone();
    bad["metadata"]["timestamp"] = "yesterday".into();
    assert!(
        !schemas.cyclonedx.is_valid(&bad),
        "a bad timestamp passed (formats unchecked)"
    );
    // A license id must be on the SPDX list (the referenced spdx.schema.json is loaded).
    let mut bad = good.clone();
    bad["components"][1]["licenses"] = serde_json::json!([{"license": {"id": "GPLv3+"}}]);
    assert!(
        !schemas.cyclonedx.is_valid(&bad),
        "an unknown license id passed"
    );
    let mut ok = good;
    ok["components"][1]["licenses"] = serde_json::json!([{"license": {"id": "MIT"}}]);
    schemas.assert_cyclonedx(&ok);
}

#[test]
fn documents_are_reproducible_and_identified_by_content() {
    let a = spdx(&mixed(), &subject());
    assert_eq!(a, spdx(&mixed(), &subject()));
    let mut fewer = mixed();
    fewer.packages.pop();
    let b = spdx(&fewer, &subject());
    assert_ne!(a["documentNamespace"], b["documentNamespace"]);

    let a = cyclonedx(&mixed(), &subject());
    assert_eq!(a, cyclonedx(&mixed(), &subject()));
    let b = cyclonedx(&fewer, &subject());
    assert_ne!(a["serialNumber"], b["serialNumber"]);
    let serial = a["serialNumber"].as_str().unwrap();
    let uuid = serial.strip_prefix("urn:uuid:").unwrap();
    assert_eq!(&uuid[14..15], "5", "{serial}");
}

#[test]
fn formats_by_name() {
    assert_eq!("spdx".parse::<Format>().unwrap(), Format::Spdx);
    assert_eq!("CycloneDX".parse::<Format>().unwrap(), Format::CycloneDx);
    let e = "xml".parse::<Format>().unwrap_err().to_string();
    assert_eq!(e, "unknown SBOM format \"xml\": expected spdx or cyclonedx");
    assert_eq!(Format::Spdx.media_type(), "application/spdx+json");
    assert_eq!(
        Format::CycloneDx.media_type(),
        "application/vnd.cyclonedx+json"
    );
}
