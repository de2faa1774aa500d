//! What `inspect` shows of an image: the fields of `skopeo inspect`, from the image's
//! manifest and config, with the same names and JSON shape, so that scripts written
//! for skopeo read berth's output unchanged.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::manifest::{Manifest, Platform};

/// The parts of an image config (OCI or Docker) that inspection shows. Unknown fields
/// are ignored: configs carry much more.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ImageConfig {
    pub created: Option<String>,
    pub docker_version: Option<String>,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    pub variant: Option<String>,
    pub config: Option<RunConfig>,
}

/// The `config` member of an image config: how a container of it runs.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RunConfig {
    #[serde(rename = "Labels")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "Env")]
    pub env: Option<Vec<String>>,
}

impl ImageConfig {
    pub fn parse(bytes: &[u8]) -> Result<ImageConfig, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    pub fn platform(&self) -> Platform {
        Platform {
            os: self.os.clone(),
            architecture: self.architecture.clone(),
            variant: self.variant.clone(),
        }
    }
}

/// `skopeo inspect`'s output, field for field (`Name`, `Digest`, `RepoTags`, …), plus
/// `Platforms` for an index: every platform it holds, with its digest.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Inspection {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub digest: String,
    pub repo_tags: Vec<String>,
    pub created: Option<String>,
    pub docker_version: String,
    pub labels: Option<BTreeMap<String, String>>,
    pub architecture: String,
    pub os: String,
    pub layers: Vec<String>,
    pub layers_data: Vec<LayerData>,
    pub env: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platforms: Option<Vec<PlatformEntry>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerData {
    #[serde(rename = "MIMEType")]
    pub mime_type: String,
    #[serde(rename = "Digest")]
    pub digest: String,
    #[serde(rename = "Size")]
    pub size: u64,
    #[serde(rename = "Annotations")]
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PlatformEntry {
    pub os: String,
    pub architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    pub digest: String,
}

impl Inspection {
    /// Builds the view. `digest` is the top-level manifest's (the index's, for a
    /// multi-platform image); `image` and `config` are those of the chosen platform;
    /// `index` is the top-level index when there is one.
    pub fn new(
        name: String,
        digest: String,
        repo_tags: Vec<String>,
        image: &Manifest,
        config: &ImageConfig,
        index: Option<&Manifest>,
    ) -> Inspection {
        let run = config.config.clone().unwrap_or_default();
        Inspection {
            name,
            digest,
            repo_tags,
            created: config.created.clone(),
            docker_version: config.docker_version.clone().unwrap_or_default(),
            labels: run.labels,
            architecture: config.architecture.clone(),
            os: config.os.clone(),
            layers: image.layers.iter().map(|l| l.digest.to_string()).collect(),
            layers_data: image
                .layers
                .iter()
                .map(|l| LayerData {
                    mime_type: l.media_type.clone(),
                    digest: l.digest.to_string(),
                    size: l.size,
                    annotations: l.annotations.clone(),
                })
                .collect(),
            env: run.env,
            platforms: index.map(|i| {
                i.manifests
                    .iter()
                    .filter_map(|d| {
                        let p = d.platform.as_ref()?;
                        Some(PlatformEntry {
                            os: p.os.clone(),
                            architecture: p.architecture.clone(),
                            variant: p.variant.clone(),
                            digest: d.digest.to_string(),
                        })
                    })
                    .collect()
            }),
        }
    }

    /// JSON as skopeo prints it (Go's `json.MarshalIndent` with four spaces).
    pub fn to_json(&self) -> String {
        to_go_json(self)
    }
}

/// Serializes like Go's `json.MarshalIndent(v, "", "    ")`: four-space indent, and
/// `<`, `>`, `&` escaped as `\u003c`, `\u003e`, `\u0026` (Go's HTML-safe default).
pub fn to_go_json<T: Serialize>(value: &T) -> String {
    to_go_json_indented(value, "    ")
}

/// [`to_go_json`] with another indent (podman's `image inspect` uses five spaces).
pub fn to_go_json_indented<T: Serialize>(value: &T, indent: &str) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(indent.as_bytes());
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    if value.serialize(&mut ser).is_err() {
        return String::new();
    }
    String::from_utf8_lossy(&buf)
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media_type as mt;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn skopeo_shaped_output() {
        let manifest = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{}","digest":"{D1}","size":2}},"layers":[{{"mediaType":"{}","digest":"{D2}","size":3}}]}}"#,
            mt::OCI_CONFIG,
            mt::OCI_LAYER_GZIP
        );
        let m = Manifest::parse(Some(mt::OCI_MANIFEST), manifest.as_bytes()).unwrap();
        let config = ImageConfig::parse(
            br#"{"created":"2026-11-26T17:59:28.414412345Z","architecture":"amd64","os":"linux","config":{"Labels":{"a":"<b&c>"},"Env":["PATH=/bin"]},"rootfs":{"type":"layers","diff_ids":[]}}"#,
        )
        .unwrap();
        let i = Inspection::new(
            "h/r".into(),
            D1.into(),
            vec!["v1".into()],
            &m,
            &config,
            None,
        );
        let json = i.to_json();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["Name"], "h/r");
        assert_eq!(v["DockerVersion"], "");
        assert_eq!(v["Layers"][0], D2);
        assert_eq!(v["LayersData"][0]["MIMEType"], mt::OCI_LAYER_GZIP);
        assert_eq!(v["LayersData"][0]["Annotations"], serde_json::Value::Null);
        assert_eq!(v["Env"][0], "PATH=/bin");
        assert_eq!(v["Labels"]["a"], "<b&c>");
        assert!(json.contains(r#""a": "\u003cb\u0026c\u003e""#), "{json}");
        assert!(v.get("Platforms").is_none());
        // Go prints the fields in declaration order.
        let order = [
            "Name",
            "Digest",
            "RepoTags",
            "Created",
            "DockerVersion",
            "Labels",
            "Architecture",
            "Os",
            "Layers",
            "LayersData",
            "Env",
        ];
        let at: Vec<usize> = order
            .iter()
            .map(|k| json.find(&format!("\n    \"{k}\"")).unwrap())
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{json}");
    }
}
