//! A Docker image config rewritten as an OCI one, byte for byte as containers/image
//! writes it when it converts v2s2 to OCI: the config is read into image-spec's Go
//! struct and marshalled again. So the fields are the OCI ones only, in the struct's
//! order; empty ones are left out (`omitempty`); times are Go's RFC 3339 with the
//! fraction's trailing zeros cut; `<`, `>`, `&` are escaped as Go escapes them. Matching
//! those bytes gives the same config digest, so the same image ID, as skopeo and podman.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Go leaves a field at its zero value for `null`; serde would refuse it.
fn nullable<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Go's `struct{}` value of `ExposedPorts` and `Volumes`: whatever was there, written
/// as `{}`.
#[derive(Debug, Default)]
struct Empty;

impl<'de> Deserialize<'de> for Empty {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d)?;
        Ok(Empty)
    }
}

impl Serialize for Empty {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        s.serialize_map(Some(0))?.end()
    }
}

/// image-spec's `Image`.
#[derive(Debug, Deserialize, Serialize)]
struct Image {
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    created: Option<GoTime>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    author: String,
    #[serde(default, deserialize_with = "nullable")]
    architecture: String,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    variant: String,
    #[serde(default, deserialize_with = "nullable")]
    os: String,
    #[serde(
        rename = "os.version",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    os_version: String,
    #[serde(
        rename = "os.features",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    os_features: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    config: RunConfig,
    #[serde(default, deserialize_with = "nullable")]
    rootfs: RootFs,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    history: Vec<History>,
}

/// image-spec's `ImageConfig`.
#[derive(Debug, Default, Deserialize, Serialize)]
struct RunConfig {
    #[serde(
        rename = "User",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    user: String,
    #[serde(
        rename = "ExposedPorts",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    exposed_ports: BTreeMap<String, Empty>,
    #[serde(
        rename = "Env",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    env: Vec<String>,
    #[serde(
        rename = "Entrypoint",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    entrypoint: Vec<String>,
    #[serde(
        rename = "Cmd",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    cmd: Vec<String>,
    #[serde(
        rename = "Volumes",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    volumes: BTreeMap<String, Empty>,
    #[serde(
        rename = "WorkingDir",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    working_dir: String,
    #[serde(
        rename = "Labels",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    labels: BTreeMap<String, String>,
    #[serde(
        rename = "StopSignal",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    stop_signal: String,
    #[serde(
        rename = "ArgsEscaped",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_false"
    )]
    args_escaped: bool,
}

/// image-spec's `RootFS`: both fields always written (`null` for no diff IDs).
#[derive(Debug, Default, Deserialize, Serialize)]
struct RootFs {
    #[serde(rename = "type", default, deserialize_with = "nullable")]
    kind: String,
    #[serde(default)]
    diff_ids: Option<Vec<String>>,
}

/// image-spec's `History`.
#[derive(Debug, Default, Deserialize, Serialize)]
struct History {
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    created: Option<GoTime>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    created_by: String,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    author: String,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    comment: String,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_false"
    )]
    empty_layer: bool,
}

/// A time as Go's `time.Time` marshals it again: RFC 3339 with the fraction's trailing
/// zeros cut and a zero offset written `Z`.
#[derive(Debug)]
struct GoTime(String);

impl<'de> Deserialize<'de> for GoTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(GoTime(go_time(&String::deserialize(d)?)))
    }
}

impl Serialize for GoTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// `2026-01-02T03:04:05.120000000+00:00` -> `2026-01-02T03:04:05.12Z`.
fn go_time(t: &str) -> String {
    let (clock, zone) = match t.rfind(['Z', 'z', '+', '-']) {
        // The date's own dashes come before the `T`.
        Some(i) if t[..i].contains('T') => t.split_at(i),
        _ => (t, ""),
    };
    let zone = match zone {
        "+00:00" | "-00:00" | "z" => "Z",
        z => z,
    };
    let clock = match clock.split_once('.') {
        Some((whole, fraction)) if fraction.bytes().all(|b| b.is_ascii_digit()) => {
            let fraction = fraction.trim_end_matches('0');
            if fraction.is_empty() {
                whole.to_string()
            } else {
                format!("{whole}.{fraction}")
            }
        }
        _ => clock.to_string(),
    };
    format!("{clock}{zone}")
}

/// The OCI config for the Docker (or OCI) config `config`, as containers/image writes it.
pub(crate) fn to_oci(config: &[u8]) -> Result<Vec<u8>, serde_json::Error> {
    let image: Image = serde_json::from_slice(config)?;
    Ok(go_escape(&serde_json::to_vec(&image)?))
}

/// Go's `encoding/json` escapes of HTML characters and of U+2028/U+2029, which only
/// occur inside strings in JSON text.
pub(crate) fn go_escape(json: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(json)
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_times() {
        assert_eq!(
            go_time("2026-12-03T07:41:35.538359545Z"),
            "2026-12-03T07:41:35.538359545Z"
        );
        assert_eq!(
            go_time("2026-12-03T07:41:35.120000000+00:00"),
            "2026-12-03T07:41:35.12Z"
        );
        assert_eq!(go_time("2026-12-03T07:41:35.000Z"), "2026-12-03T07:41:35Z");
        assert_eq!(
            go_time("2026-12-03T07:41:35-05:00"),
            "2026-12-03T07:41:35-05:00"
        );
    }

    /// The bytes skopeo 1.9.3 wrote for `skopeo copy docker-archive:… oci:…` of a
    /// buildah image with a label, an environment variable and a health check.
    #[test]
    fn the_config_skopeo_writes() {
        let docker = br#"{"created":"2026-12-03T07:41:35.538359545Z","container":"ace6d0d4e5290fc7eabdfc162118315959f3a1ff5fa69452be36e51d46abacce","container_config":{"Hostname":"","Env":["X=1"]},"config":{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":["X=1"],"Cmd":["/hello.txt"],"Healthcheck":{"Test":["CMD","/x"],"Interval":30000000000,"Timeout":30000000000,"Retries":3},"Image":"","Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":[],"Labels":{"a":"\u003cb\u0026c\u003e","io.buildah.version":"1.28.2"}},"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:6dcb0afee7d4eb68050fe0a242fdac08d6456c0ba3960b9eb9fd159fd794eb0e"]},"history":[{"created":"2026-12-03T07:41:35.539078836Z","created_by":"/bin/sh"}]}"#;
        let skopeo = r#"{"created":"2026-12-03T07:41:35.538359545Z","architecture":"amd64","os":"linux","config":{"Env":["X=1"],"Cmd":["/hello.txt"],"Labels":{"a":"\u003cb\u0026c\u003e","io.buildah.version":"1.28.2"}},"rootfs":{"type":"layers","diff_ids":["sha256:6dcb0afee7d4eb68050fe0a242fdac08d6456c0ba3960b9eb9fd159fd794eb0e"]},"history":[{"created":"2026-12-03T07:41:35.539078836Z","created_by":"/bin/sh"}]}"#;
        assert_eq!(String::from_utf8(to_oci(docker).unwrap()).unwrap(), skopeo);
    }

    #[test]
    fn empty_sets_and_missing_diff_ids() {
        let out = to_oci(br#"{"os":"linux","config":{"ExposedPorts":{"80/tcp":{}},"Volumes":{"/v":{"x":1}},"ArgsEscaped":false}}"#).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"architecture":"","os":"linux","config":{"ExposedPorts":{"80/tcp":{}},"Volumes":{"/v":{}}},"rootfs":{"type":"","diff_ids":null}}"#
        );
    }
}
