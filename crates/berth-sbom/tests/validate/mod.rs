//! The published SPDX 2.3 and CycloneDX 1.5 JSON schemas (schemas/, see its README) as
//! validators, resolved offline: CycloneDX's `$ref`s to `spdx.schema.json` and
//! `jsf-0.82.schema.json` go to the copies beside it, never to the network. Shared
//! with the `berth sbom` command's tests (crates/berth/tests/sbom.rs).

use std::path::PathBuf;

use serde_json::Value;

fn schema(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../berth-sbom/tests/schemas")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub struct Schemas {
    pub spdx: jsonschema::Validator,
    pub cyclonedx: jsonschema::Validator,
}

impl Schemas {
    pub fn load() -> Schemas {
        let spdx = jsonschema::options()
            .offline()
            .should_validate_formats(true)
            .build(&schema("spdx-schema-2-3.json"))
            .expect("the SPDX 2.3 schema compiles");
        const BASE: &str = "http://cyclonedx.org/schema/";
        let registry = jsonschema::Registry::new()
            .add(
                format!("{BASE}spdx.schema.json"),
                schema("spdx.schema.json"),
            )
            .and_then(|r| {
                r.add(
                    format!("{BASE}jsf-0.82.schema.json"),
                    schema("jsf-0.82.schema.json"),
                )
            })
            .and_then(|r| r.prepare())
            .expect("the CycloneDX side schemas load");
        let cyclonedx = jsonschema::options()
            .offline()
            .should_validate_formats(true)
            .with_registry(&registry)
            .build(&schema("bom-1.5.schema.json"))
            .expect("the CycloneDX 1.5 schema compiles");
        Schemas { spdx, cyclonedx }
    }

    /// Every schema error of `doc`, one per line (empty: valid).
    pub fn errors(v: &jsonschema::Validator, doc: &Value) -> String {
        v.iter_errors(doc)
            .map(|e| format!("{} at {}\n", e, e.instance_path()))
            .collect()
    }

    pub fn assert_spdx(&self, doc: &Value) {
        let errors = Self::errors(&self.spdx, doc);
        assert!(errors.is_empty(), "not valid SPDX 2.3:\n{errors}\n{doc:#}");
    }

    pub fn assert_cyclonedx(&self, doc: &Value) {
        let errors = Self::errors(&self.cyclonedx, doc);
        assert!(
            errors.is_empty(),
            "not valid CycloneDX 1.5:\n{errors}\n{doc:#}"
        );
    }
}
