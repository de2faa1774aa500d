//! CycloneDX 1.5 JSON: the image as `metadata.component` (a `container`), its
//! operating system and every installed package as `components`.

use std::collections::HashSet;

use berth_inventory::{Inventory, Package};
use serde_json::{json, Value};

use crate::common::{clean_purl, content_uuid, image_purl, timestamp, TOOL_NAME, TOOL_VERSION};
use crate::license::{classify, License};
use crate::SbomSubject;

/// The CycloneDX 1.5 JSON document of `inv`, the inventory of `image`.
///
/// `serialNumber` is a version-5 UUID derived from the rest of the document, not a
/// random one: the same image, inventory and berth give the same document byte for
/// byte (attaching it twice makes one referrer, and the registry can serve it
/// without storing it), while any change of content gives a new serial number, as
/// the spec asks of distinct BOMs. Licenses: an SPDX expression as `expression`,
/// other text as a license `name`.
pub fn cyclonedx(inv: &Inventory, image: &SbomSubject) -> Value {
    let mut refs = HashSet::new();
    let mut components = Vec::new();
    if let Some(os) = &inv.os {
        let mut c = json!({
            "type": "operating-system",
            "bom-ref": unique_ref(&mut refs, "os"),
            "name": os.id,
        });
        if let Some(v) = &os.version_id {
            c["version"] = v.clone().into();
        }
        if let Some(d) = &os.pretty_name {
            c["description"] = d.clone().into();
        }
        components.push(c);
    }
    for pkg in &inv.packages {
        components.push(component(pkg, &mut refs));
    }
    let mut doc = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "timestamp": timestamp(image.created.as_deref()),
            "tools": {
                "components": [{
                    "type": "application",
                    "name": TOOL_NAME,
                    "version": TOOL_VERSION,
                }],
            },
            "component": {
                "type": "container",
                "bom-ref": "image",
                "name": image.name,
                "version": image.digest,
                "purl": image_purl(image),
            },
        },
        "components": components,
    });
    let uuid = content_uuid("cyclonedx", &doc);
    doc["serialNumber"] = format!("urn:uuid:{uuid}").into();
    doc
}

fn component(pkg: &Package, refs: &mut HashSet<String>) -> Value {
    let purl = clean_purl(&pkg.purl);
    let wanted = if purl.is_empty() {
        format!("package:{}@{}", pkg.name, pkg.version)
    } else {
        purl.clone()
    };
    let mut c = json!({
        "type": "library",
        "bom-ref": unique_ref(refs, &wanted),
        "name": pkg.name,
        "version": pkg.version,
    });
    if !purl.is_empty() {
        c["purl"] = purl.into();
    }
    match classify(pkg.license.as_deref()) {
        License::Expression(e) => c["licenses"] = json!([{"expression": e}]),
        License::Text(t) => c["licenses"] = json!([{"license": {"name": t}}]),
        License::None => {}
    }
    let mut properties = vec![
        property("berth:package:database", &pkg.db_path),
        property("berth:package:layer", &pkg.layer_index.to_string()),
    ];
    if let Some(source) = &pkg.source_name {
        properties.push(property("berth:package:source", source));
    }
    if let Some(v) = &pkg.source_version {
        properties.push(property("berth:package:sourceVersion", v));
    }
    c["properties"] = Value::Array(properties);
    c
}

fn property(name: &str, value: &str) -> Value {
    json!({"name": name, "value": value})
}

/// `wanted`, or with `#N` added when another component already has it (one purl
/// twice: the same package in two databases). `image` is the image's own.
fn unique_ref(refs: &mut HashSet<String>, wanted: &str) -> String {
    refs.insert("image".into());
    let mut r = wanted.to_string();
    let mut n = 1;
    while !refs.insert(r.clone()) {
        n += 1;
        r = format!("{wanted}#{n}");
    }
    r
}
