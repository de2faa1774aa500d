//! Docker v2s2 <-> OCI conversion, with containers/image's rules:
//!
//! - OCI -> v2s2: media types remapped; the config blob stays byte-identical (only its
//!   descriptor's media type changes); annotations, `artifactType` and `subject` have no
//!   place in v2s2 and are dropped; zstd layers cannot be represented (an error).
//! - v2s2 -> OCI: media types remapped; the config is rewritten with the OCI config's
//!   fields only (Docker-only fields such as `Healthcheck` or `OnBuild` are dropped),
//!   so its digest (the image ID) changes; the bytes are containers/image's, so the new
//!   ID is the one skopeo and podman give.
//! - Descriptors are written in the field order of the Go structs containers/image
//!   marshals (OCI: `mediaType`, `digest`, `size`; Docker: `mediaType`, `size`,
//!   `digest`), so a converted manifest has skopeo's digest.
//! - An index converts with its images: the caller converts every image and gives the
//!   new descriptors.
//!
//! Any change of bytes changes a digest; the caller says so to the user.

use serde_json::{Map, Value};

use crate::digest::Digest;
use crate::media_type as mt;

/// A manifest family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Oci,
    V2s2,
}

impl Format {
    pub fn of(media_type: &str) -> Option<Format> {
        match media_type {
            mt::OCI_MANIFEST | mt::OCI_INDEX => Some(Format::Oci),
            mt::DOCKER_MANIFEST | mt::DOCKER_MANIFEST_LIST => Some(Format::V2s2),
            _ => None,
        }
    }

    pub fn manifest_type(self) -> &'static str {
        match self {
            Format::Oci => mt::OCI_MANIFEST,
            Format::V2s2 => mt::DOCKER_MANIFEST,
        }
    }

    pub fn index_type(self) -> &'static str {
        match self {
            Format::Oci => mt::OCI_INDEX,
            Format::V2s2 => mt::DOCKER_MANIFEST_LIST,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("manifest is not JSON: {0}")]
    Json(String),
    #[error("layer type {0} has no {1:?} equivalent")]
    Layer(String, Format),
    #[error("config type {0} is not an image config; only images convert")]
    NotAnImage(String),
}

/// An image manifest in the other format, and its config when that changed too.
#[derive(Debug, Clone)]
pub struct Converted {
    pub manifest: Vec<u8>,
    pub media_type: &'static str,
    /// The new config bytes (v2s2 -> OCI), to store as a new blob.
    pub config: Option<Vec<u8>>,
}

fn layer_type(media_type: &str, to: Format) -> Result<&'static str, ConvertError> {
    let t = match (to, media_type) {
        (Format::V2s2, mt::OCI_LAYER_GZIP | mt::DOCKER_LAYER_GZIP) => mt::DOCKER_LAYER_GZIP,
        (Format::V2s2, mt::OCI_LAYER_TAR | DOCKER_LAYER_TAR) => DOCKER_LAYER_TAR,
        (Format::V2s2, OCI_NONDISTRIBUTABLE_GZIP | mt::DOCKER_FOREIGN_LAYER) => {
            mt::DOCKER_FOREIGN_LAYER
        }
        (Format::Oci, mt::DOCKER_LAYER_GZIP | mt::OCI_LAYER_GZIP) => mt::OCI_LAYER_GZIP,
        (Format::Oci, DOCKER_LAYER_TAR | mt::OCI_LAYER_TAR) => mt::OCI_LAYER_TAR,
        (Format::Oci, mt::OCI_LAYER_ZSTD) => mt::OCI_LAYER_ZSTD,
        (Format::Oci, mt::DOCKER_FOREIGN_LAYER | OCI_NONDISTRIBUTABLE_GZIP) => {
            OCI_NONDISTRIBUTABLE_GZIP
        }
        _ => return Err(ConvertError::Layer(media_type.to_string(), to)),
    };
    Ok(t)
}

/// containers/image's name for an uncompressed Docker layer.
const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
const OCI_NONDISTRIBUTABLE_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";

/// An image config (Docker or OCI) as the OCI config containers/image makes of it:
/// what a v2s2 -> OCI conversion stores, and what `skopeo inspect --config` prints.
pub fn oci_config(config: &[u8]) -> Result<Vec<u8>, ConvertError> {
    crate::oci_config::to_oci(config).map_err(|e| ConvertError::Json(e.to_string()))
}

/// Converts an image manifest to `to`. `config` is the config blob (needed for v2s2 ->
/// OCI, which rewrites it).
pub fn convert_image(
    manifest: &[u8],
    config: &[u8],
    to: Format,
) -> Result<Converted, ConvertError> {
    let json = |e: serde_json::Error| ConvertError::Json(e.to_string());
    let mut m: Map<String, Value> = serde_json::from_slice(manifest).map_err(json)?;
    let config_type = m["config"]["mediaType"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if config_type != mt::OCI_CONFIG && config_type != mt::DOCKER_CONFIG {
        return Err(ConvertError::NotAnImage(config_type));
    }
    let mut new_config = None;
    match to {
        Format::V2s2 => {
            m.insert("config".into(), {
                let mut c = m["config"].clone();
                c["mediaType"] = mt::DOCKER_CONFIG.into();
                strip_descriptor(&mut c);
                go_order(c, to)
            });
            m.remove("annotations");
            m.remove("artifactType");
            m.remove("subject");
        }
        Format::Oci => {
            let bytes = crate::oci_config::to_oci(config).map_err(json)?;
            let mut c = m["config"].clone();
            c["mediaType"] = mt::OCI_CONFIG.into();
            c["digest"] = Digest::sha256_of(&bytes).to_string().into();
            c["size"] = bytes.len().into();
            m.insert("config".into(), go_order(c, to));
            new_config = Some(bytes);
        }
    }
    if let Some(Value::Array(layers)) = m.get_mut("layers") {
        for l in layers.iter_mut() {
            let t = layer_type(l["mediaType"].as_str().unwrap_or_default(), to)?;
            l["mediaType"] = t.into();
            if to == Format::V2s2 {
                strip_descriptor(l);
            }
            *l = go_order(l.take(), to);
        }
    }
    m.insert("mediaType".into(), to.manifest_type().into());
    Ok(Converted {
        manifest: serde_json::to_vec(&Value::Object(ordered(m))).map_err(json)?,
        media_type: to.manifest_type(),
        config: new_config,
    })
}

/// Converts an index to `to`, with `children` the new (media type, digest, size) of
/// each of its manifests, in order.
pub fn convert_index(
    index: &[u8],
    children: &[(&str, Digest, u64)],
    to: Format,
) -> Result<Vec<u8>, ConvertError> {
    let json = |e: serde_json::Error| ConvertError::Json(e.to_string());
    let mut m: Map<String, Value> = serde_json::from_slice(index).map_err(json)?;
    if let Some(Value::Array(entries)) = m.get_mut("manifests") {
        for (e, (t, d, size)) in entries.iter_mut().zip(children) {
            e["mediaType"] = (*t).into();
            e["digest"] = d.to_string().into();
            e["size"] = (*size).into();
            if to == Format::V2s2 {
                strip_descriptor(e);
            }
            *e = go_order(e.take(), to);
        }
    }
    if to == Format::V2s2 {
        m.remove("annotations");
        m.remove("artifactType");
        m.remove("subject");
    }
    m.insert("mediaType".into(), to.index_type().into());
    serde_json::to_vec(&Value::Object(ordered(m))).map_err(json)
}

/// What a v2s2 descriptor cannot carry.
fn strip_descriptor(d: &mut Value) {
    if let Some(o) = d.as_object_mut() {
        o.remove("annotations");
        o.remove("artifactType");
        o.remove("data");
    }
}

/// A descriptor's members in the order of the Go struct containers/image writes for
/// `to`; members that struct lacks follow, as they were.
fn go_order(d: Value, to: Format) -> Value {
    let Value::Object(d) = d else { return d };
    let first: &[&str] = match to {
        Format::Oci => &[
            "mediaType",
            "digest",
            "size",
            "urls",
            "annotations",
            "data",
            "platform",
            "artifactType",
        ],
        Format::V2s2 => &["mediaType", "size", "digest", "urls", "platform"],
    };
    Value::Object(first_members(d, first))
}

/// `m` with the members named in `first` first, in that order, then the others as
/// they were. (Removing from a map moves its last member into the gap.)
fn first_members(mut m: Map<String, Value>, first: &[&str]) -> Map<String, Value> {
    let mut out = Map::new();
    for k in first {
        if let Some(v) = m.get_mut(*k) {
            out.insert((*k).to_string(), v.take());
        }
    }
    for (k, v) in m {
        if !out.contains_key(&k) {
            out.insert(k, v);
        }
    }
    out
}

/// A manifest's or index's members in the order of the Go structs (`schemaVersion`,
/// `mediaType`, …), as every tool writes them.
fn ordered(m: Map<String, Value>) -> Map<String, Value> {
    first_members(
        m,
        &[
            "schemaVersion",
            "mediaType",
            "artifactType",
            "config",
            "layers",
            "manifests",
            "subject",
            "annotations",
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn manifest(format: Format) -> Vec<u8> {
        let (mtype, ctype, ltype) = match format {
            Format::Oci => (mt::OCI_MANIFEST, mt::OCI_CONFIG, mt::OCI_LAYER_GZIP),
            Format::V2s2 => (
                mt::DOCKER_MANIFEST,
                mt::DOCKER_CONFIG,
                mt::DOCKER_LAYER_GZIP,
            ),
        };
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": mtype,
            "config": {"mediaType": ctype, "digest": D1, "size": 2},
            "layers": [{"mediaType": ltype, "digest": D2, "size": 3, "annotations": {"a": "b"}}],
            "annotations": {"x": "y"}
        }))
        .unwrap()
    }

    #[test]
    fn oci_to_v2s2_keeps_the_config_and_drops_what_v2s2_lacks() {
        let c = convert_image(&manifest(Format::Oci), b"{}", Format::V2s2).unwrap();
        assert!(c.config.is_none());
        let v: Value = serde_json::from_slice(&c.manifest).unwrap();
        assert_eq!(v["mediaType"], mt::DOCKER_MANIFEST);
        assert_eq!(v["config"]["digest"], D1);
        assert_eq!(v["config"]["mediaType"], mt::DOCKER_CONFIG);
        assert_eq!(v["layers"][0]["mediaType"], mt::DOCKER_LAYER_GZIP);
        assert!(v.get("annotations").is_none());
        assert!(v["layers"][0].get("annotations").is_none());
        crate::Manifest::parse(Some(mt::DOCKER_MANIFEST), &c.manifest).unwrap();
    }

    #[test]
    fn v2s2_to_oci_rewrites_the_config_without_docker_fields() {
        let config = br#"{"architecture":"amd64","os":"linux","docker_version":"20.10","container_config":{},"config":{"Env":["A=1"],"Healthcheck":{"Test":["CMD"]},"OnBuild":null,"Labels":{"l":"v"}},"rootfs":{"type":"layers","diff_ids":[]}}"#;
        let c = convert_image(&manifest(Format::V2s2), config, Format::Oci).unwrap();
        let new_config: Value = serde_json::from_slice(c.config.as_ref().unwrap()).unwrap();
        assert!(new_config.get("docker_version").is_none());
        assert!(new_config.get("container_config").is_none());
        assert!(new_config["config"].get("Healthcheck").is_none());
        assert_eq!(new_config["config"]["Env"][0], "A=1");
        let v: Value = serde_json::from_slice(&c.manifest).unwrap();
        assert_eq!(v["mediaType"], mt::OCI_MANIFEST);
        assert_eq!(
            v["config"]["digest"],
            Digest::sha256_of(c.config.as_ref().unwrap()).to_string()
        );
        assert_eq!(v["layers"][0]["mediaType"], mt::OCI_LAYER_GZIP);
        crate::Manifest::parse(Some(mt::OCI_MANIFEST), &c.manifest).unwrap();
    }

    /// Docker writes `mediaType`, `size`, `digest`; containers/image's OCI struct
    /// `mediaType`, `digest`, `size`, and the reverse way back.
    #[test]
    fn descriptors_in_go_order() {
        let docker = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","size":2,"digest":"{D1}"}},"layers":[{{"mediaType":"{}","size":3,"digest":"{D2}"}}]}}"#,
            mt::DOCKER_MANIFEST,
            mt::DOCKER_CONFIG,
            mt::DOCKER_LAYER_GZIP
        );
        let c = convert_image(docker.as_bytes(), b"{}", Format::Oci).unwrap();
        let config = Digest::sha256_of(c.config.as_ref().unwrap());
        let n = c.config.as_ref().unwrap().len();
        assert_eq!(
            String::from_utf8(c.manifest.clone()).unwrap(),
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{config}","size":{n}}},"layers":[{{"mediaType":"{}","digest":"{D2}","size":3}}]}}"#,
                mt::OCI_MANIFEST,
                mt::OCI_CONFIG,
                mt::OCI_LAYER_GZIP
            )
        );
        let back = convert_image(&c.manifest, b"{}", Format::V2s2).unwrap();
        assert_eq!(
            String::from_utf8(back.manifest).unwrap(),
            docker
                .replace(D1, &config.to_string())
                .replace(r#""size":2,"#, &format!(r#""size":{n},"#))
        );
    }

    #[test]
    fn zstd_and_artifacts_do_not_convert() {
        let zstd = String::from_utf8(manifest(Format::Oci))
            .unwrap()
            .replace(mt::OCI_LAYER_GZIP, mt::OCI_LAYER_ZSTD);
        assert!(matches!(
            convert_image(zstd.as_bytes(), b"{}", Format::V2s2),
            Err(ConvertError::Layer(..))
        ));
        let artifact = String::from_utf8(manifest(Format::Oci))
            .unwrap()
            .replace(mt::OCI_CONFIG, "application/vnd.example+json");
        assert!(matches!(
            convert_image(artifact.as_bytes(), b"{}", Format::V2s2),
            Err(ConvertError::NotAnImage(_))
        ));
    }
}
