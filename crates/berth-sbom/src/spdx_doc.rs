//! SPDX 2.3 JSON: the image as a `CONTAINER` package that the document `DESCRIBES`,
//! which `CONTAINS` its operating system (`OPERATING_SYSTEM`) and every installed
//! package.

use std::collections::{HashMap, HashSet};

use berth_inventory::{Inventory, Package};
use serde_json::{json, Map, Value};

use crate::common::{
    clean_purl, content_uuid, image_purl, timestamp, uri_path, TOOL_NAME, TOOL_VERSION,
};
use crate::license::{classify, License};
use crate::SbomSubject;

const NOASSERTION: &str = "NOASSERTION";
const DOCUMENT_ID: &str = "SPDXRef-DOCUMENT";
const IMAGE_ID: &str = "SPDXRef-Image";
const OS_ID: &str = "SPDXRef-OperatingSystem";

/// The SPDX 2.3 JSON document of `inv`, the inventory of `image`.
///
/// `licenseDeclared` is the database's license when it is an SPDX expression, a
/// `LicenseRef-` defined in `hasExtractedLicensingInfos` with the database's text when
/// it is not, `NOASSERTION` when there is none (dpkg records none).
/// `licenseConcluded` is always `NOASSERTION`: berth reads what packagers declared and
/// concludes nothing. `documentNamespace` is
/// `https://berth.invalid/spdx/NAME@DIGEST/UUID`: `.invalid` can never be someone
/// else's host (RFC 2606), NAME@DIGEST says which image, and UUID (derived from the
/// rest of the document) makes it unique per distinct document, as SPDX requires.
pub fn spdx(inv: &Inventory, image: &SbomSubject) -> Value {
    let mut ids = Ids::default();
    let mut licenses = LicenseRefs::default();
    let mut packages = vec![image_package(image)];
    let mut relationships = vec![relationship(DOCUMENT_ID, "DESCRIBES", IMAGE_ID)];
    if let Some(os) = &inv.os {
        let mut p = Map::new();
        p.insert("SPDXID".into(), OS_ID.into());
        p.insert("name".into(), os.id.clone().into());
        if let Some(v) = &os.version_id {
            p.insert("versionInfo".into(), v.clone().into());
        }
        if let Some(d) = &os.pretty_name {
            p.insert("description".into(), d.clone().into());
        }
        p.insert("supplier".into(), NOASSERTION.into());
        p.insert("downloadLocation".into(), NOASSERTION.into());
        p.insert("filesAnalyzed".into(), false.into());
        p.insert("primaryPackagePurpose".into(), "OPERATING_SYSTEM".into());
        packages.push(Value::Object(p));
        relationships.push(relationship(IMAGE_ID, "CONTAINS", OS_ID));
    }
    for pkg in &inv.packages {
        let id = ids.unique(pkg);
        packages.push(package(pkg, &id, &mut licenses));
        relationships.push(relationship(IMAGE_ID, "CONTAINS", &id));
    }
    let mut doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": DOCUMENT_ID,
        "name": image.name,
        "creationInfo": {
            "created": timestamp(image.created.as_deref()),
            "creators": [format!("Tool: {TOOL_NAME}-{TOOL_VERSION}")],
        },
        "packages": packages,
        "relationships": relationships,
    });
    if !licenses.infos.is_empty() {
        doc["hasExtractedLicensingInfos"] = Value::Array(licenses.infos);
    }
    let uuid = content_uuid("spdx", &doc);
    doc["documentNamespace"] = format!(
        "https://berth.invalid/spdx/{}@{}/{uuid}",
        uri_path(&image.name),
        uri_path(&image.digest)
    )
    .into();
    doc
}

/// The image itself: a `CONTAINER` package whose version is its manifest digest.
fn image_package(image: &SbomSubject) -> Value {
    let mut p = json!({
        "SPDXID": IMAGE_ID,
        "name": image.name,
        "versionInfo": image.digest,
        "supplier": NOASSERTION,
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": false,
        "primaryPackagePurpose": "CONTAINER",
        "externalRefs": [purl_ref(&image_purl(image))],
    });
    if let Some(hex) = image.digest.strip_prefix("sha256:") {
        p["checksums"] = json!([{"algorithm": "SHA256", "checksumValue": hex}]);
    }
    p
}

fn package(pkg: &Package, id: &str, licenses: &mut LicenseRefs) -> Value {
    let declared = match classify(pkg.license.as_deref()) {
        License::Expression(e) => e,
        License::Text(t) => licenses.reference(t),
        License::None => NOASSERTION.into(),
    };
    let mut p = json!({
        "SPDXID": id,
        "name": pkg.name,
        "versionInfo": pkg.version,
        "supplier": NOASSERTION,
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": false,
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": declared,
        "comment": format!("{} of layer {}", pkg.db_path, pkg.layer_index),
    });
    if let Some(source) = &pkg.source_name {
        let version = pkg.source_version.as_deref().unwrap_or(&pkg.version);
        p["sourceInfo"] = format!("built from source package {source} {version}").into();
    }
    if !pkg.purl.is_empty() {
        p["externalRefs"] = json!([purl_ref(&clean_purl(&pkg.purl))]);
    }
    p
}

fn purl_ref(purl: &str) -> Value {
    json!({
        "referenceCategory": "PACKAGE-MANAGER",
        "referenceType": "purl",
        "referenceLocator": purl,
    })
}

fn relationship(from: &str, kind: &str, to: &str) -> Value {
    json!({"spdxElementId": from, "relationshipType": kind, "relatedSpdxElement": to})
}

/// Only ASCII letters, digits, `.` and `-` may follow `SPDXRef-` or `LicenseRef-`;
/// anything else becomes `-`.
fn id_string(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The package SPDXIDs given so far: a name that sanitizes like another's
/// (`libfoo+` and `libfoo_`, or two architectures of one package) gets a number.
#[derive(Default)]
struct Ids(Unique);

/// Identifiers handed out once each: `base`, then `base-2`, `base-3`… Each base keeps
/// the number it reached, so a million names that sanitize alike cost a million
/// probes, not the half a trillion of counting up from 1 each time.
#[derive(Default)]
struct Unique {
    taken: HashSet<String>,
    next: HashMap<String, usize>,
}

impl Unique {
    fn id(&mut self, base: String) -> String {
        let n = self.next.entry(base.clone()).or_insert(1);
        loop {
            let id = match *n {
                1 => base.clone(),
                n => format!("{base}-{n}"),
            };
            *n += 1;
            if self.taken.insert(id.clone()) {
                return id;
            }
        }
    }
}

impl Ids {
    fn unique(&mut self, pkg: &Package) -> String {
        let kind = serde_json::to_value(pkg.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let base = format!(
            "SPDXRef-Package-{kind}-{}-{}",
            id_string(&pkg.name),
            id_string(&pkg.version)
        );
        self.0.id(base)
    }
}

/// License texts that are not SPDX expressions, each defined once as a `LicenseRef-`.
#[derive(Default)]
struct LicenseRefs {
    by_text: HashMap<String, String>,
    taken: Unique,
    infos: Vec<Value>,
}

impl LicenseRefs {
    fn reference(&mut self, text: &str) -> String {
        if let Some(id) = self.by_text.get(text) {
            return id.clone();
        }
        let id = self.taken.id(format!("LicenseRef-{}", id_string(text)));
        self.by_text.insert(text.to_string(), id.clone());
        self.infos.push(json!({
            "licenseId": id,
            "name": text,
            "extractedText": text,
            "comment": "The license as the package database records it; not an SPDX license expression.",
        }));
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_strings_keep_only_what_spdx_allows() {
        assert_eq!(id_string("libstdc++6"), "libstdc--6");
        assert_eq!(id_string("my pkg_ü.1"), "my-pkg--.1");
    }

    /// Names that sanitize alike are numbered in one pass each, and a number already
    /// taken by another name is passed over.
    #[test]
    fn unique_ids_continue_where_their_base_stopped() {
        let mut u = Unique::default();
        assert_eq!(u.id("b-3".into()), "b-3");
        let ids: Vec<String> = (0..50_000).map(|_| u.id("b".into())).collect();
        assert_eq!(&ids[..3], ["b", "b-2", "b-4"]);
        let distinct: HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
    }

    #[test]
    fn license_refs_are_unique_per_text() {
        let mut l = LicenseRefs::default();
        let a = l.reference("GPLv2+");
        let b = l.reference("GPLv2_");
        assert_eq!(a, "LicenseRef-GPLv2-");
        assert_eq!(b, "LicenseRef-GPLv2--2");
        assert_eq!(l.reference("GPLv2+"), a);
        assert_eq!(l.infos.len(), 2);
    }
}
