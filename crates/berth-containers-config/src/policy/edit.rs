//! Changing a `policy.json` the way `podman image trust set` does: one scope's
//! requirements replaced (or the default's), everything else kept as it was written,
//! member order included, and the file printed as Go's `json.MarshalIndent` with four
//! spaces prints podman's structure.

use std::fmt;
use std::str::FromStr;

use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

/// What `--type` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustType {
    Accept,
    Reject,
    SignedBy,
    SigstoreSigned,
}

impl FromStr for TrustType {
    type Err = EditError;
    fn from_str(s: &str) -> Result<TrustType, EditError> {
        match s {
            "accept" => Ok(TrustType::Accept),
            "reject" => Ok(TrustType::Reject),
            "signedBy" => Ok(TrustType::SignedBy),
            "sigstoreSigned" => Ok(TrustType::SigstoreSigned),
            other => Err(EditError::Type(other.to_string())),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EditError {
    #[error("invalid choice: {0} (choose from 'accept', 'reject', 'signedBy', 'sigstoreSigned')")]
    Type(String),
    #[error("at least one public key must be defined for type '{0}'")]
    NoKeys(&'static str),
    #[error("{0} public keys unexpectedly provided for trust type {1}")]
    UnexpectedKeys(usize, &'static str),
    #[error("default trust policy must be set")]
    NoDefault,
    #[error("invalid image uri: {0}")]
    Scope(String),
    #[error("could not read trust policies: {0}")]
    Parse(String),
}

/// A JSON value that keeps its objects' members in the order they were written, as
/// Go's `json.RawMessage` does when podman passes requirements through.
#[derive(Debug, Clone, PartialEq)]
enum Ordered {
    Scalar(serde_json::Value),
    Array(Vec<Ordered>),
    Object(Vec<(String, Ordered)>),
}

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Ordered, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("JSON")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(v.into()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(v.into()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(v.into()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(v.into()))
            }
            fn visit_unit<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(serde_json::Value::Null))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element()? {
                    out.push(v);
                }
                Ok(Ordered::Array(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry()? {
                    out.push((k, v));
                }
                Ok(Ordered::Object(out))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Ordered {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Ordered::Scalar(v) => v.serialize(s),
            Ordered::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
            Ordered::Object(members) => {
                let mut map = s.serialize_map(Some(members.len()))?;
                for (k, v) in members {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

/// podman's view of a policy file: the default and the transports' scopes, each scope's
/// requirements kept as written. Maps are sorted, as Go prints maps.
#[derive(Debug, Default, Deserialize, Serialize)]
struct Generic {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    default: Option<Ordered>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    transports: std::collections::BTreeMap<String, std::collections::BTreeMap<String, Ordered>>,
}

fn member(k: &str, v: &str) -> (String, Ordered) {
    (k.to_string(), Ordered::Scalar(v.into()))
}

/// The requirements `podman image trust set` writes for a type and its key files: one
/// requirement per key file, as podman does (each key file must sign).
fn requirements(ty: TrustType, keys: &[String]) -> Result<Ordered, EditError> {
    let reqs = match ty {
        TrustType::Accept | TrustType::Reject => {
            let (name, typ) = match ty {
                TrustType::Accept => ("accept", "insecureAcceptAnything"),
                _ => ("reject", "reject"),
            };
            if !keys.is_empty() {
                return Err(EditError::UnexpectedKeys(keys.len(), name));
            }
            vec![Ordered::Object(vec![member("type", typ)])]
        }
        TrustType::SignedBy | TrustType::SigstoreSigned => {
            let name = if ty == TrustType::SignedBy {
                "signedBy"
            } else {
                "sigstoreSigned"
            };
            if keys.is_empty() {
                return Err(EditError::NoKeys(name));
            }
            keys.iter()
                .map(|k| {
                    let mut m = vec![member("type", name)];
                    if ty == TrustType::SignedBy {
                        m.push(member("keyType", "GPGKeys"));
                    }
                    m.push(member("keyPath", k));
                    Ordered::Object(m)
                })
                .collect()
        }
    };
    Ok(Ordered::Array(reqs))
}

/// A docker scope as podman takes it: something `http://SCOPE` parses as a URL of.
fn check_scope(scope: &str) -> Result<(), EditError> {
    let ok = !scope.is_empty()
        && scope
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-:/@*".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(EditError::Scope(scope.to_string()))
    }
}

/// `podman image trust set`: `existing` is the file's bytes (`None` when there is no
/// file), `scope` is `default` or a scope name, found in whichever transport already
/// has it, else added under `docker`. Returns the new file's bytes (no final newline,
/// as podman writes it).
pub fn set_trust(
    existing: Option<&[u8]>,
    scope: &str,
    ty: TrustType,
    keys: &[String],
) -> Result<Vec<u8>, EditError> {
    let new = requirements(ty, keys)?;
    let mut policy: Generic = match existing {
        Some(bytes) => {
            serde_json::from_slice(bytes).map_err(|e| EditError::Parse(e.to_string()))?
        }
        None => Generic::default(),
    };
    if scope == "default" {
        policy.default = Some(new);
    } else {
        check_scope(scope)?;
        if policy.default.is_none() {
            return Err(EditError::NoDefault);
        }
        let holder = policy
            .transports
            .iter_mut()
            .find(|(_, scopes)| scopes.contains_key(scope))
            .map(|(_, scopes)| scopes);
        match holder {
            Some(scopes) => {
                scopes.insert(scope.to_string(), new);
            }
            None => {
                policy
                    .transports
                    .entry("docker".into())
                    .or_default()
                    .insert(scope.to_string(), new);
            }
        }
    }
    Ok(berth_image::inspect::to_go_json(&policy).into_bytes())
}

/// Replaces the policy file with `bytes` (mode 0644, as podman writes it), atomically:
/// every pull reads this file, and a half-written one would refuse them all.
pub fn write_policy(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    crate::atomic::write(path, bytes, 0o644, 0o755)
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: &str = r#"{"default":[{"type":"insecureAcceptAnything"}]}"#;

    fn set(existing: &str, scope: &str, ty: &str, keys: &[&str]) -> Result<String, EditError> {
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        set_trust(Some(existing.as_bytes()), scope, ty.parse()?, &keys)
            .map(|b| String::from_utf8(b).unwrap())
    }

    /// What podman 4.3.1 wrote for `trust set -t reject quay.io/foo` then
    /// `-t signedBy -f k.gpg docker.io`, `-t signedBy -f k.gpg -f k.gpg example.com/x`,
    /// `-t accept default` (measured).
    #[test]
    fn writes_what_podman_writes() {
        let a = set(START, "quay.io/foo", "reject", &[]).unwrap();
        let b = set(&a, "docker.io", "signedBy", &["k.gpg"]).unwrap();
        let c = set(&b, "example.com/x", "signedBy", &["k.gpg", "k.gpg"]).unwrap();
        let d = set(&c, "default", "accept", &[]).unwrap();
        let want = r#"{
    "default": [
        {
            "type": "insecureAcceptAnything"
        }
    ],
    "transports": {
        "docker": {
            "docker.io": [
                {
                    "type": "signedBy",
                    "keyType": "GPGKeys",
                    "keyPath": "k.gpg"
                }
            ],
            "example.com/x": [
                {
                    "type": "signedBy",
                    "keyType": "GPGKeys",
                    "keyPath": "k.gpg"
                },
                {
                    "type": "signedBy",
                    "keyType": "GPGKeys",
                    "keyPath": "k.gpg"
                }
            ],
            "quay.io/foo": [
                {
                    "type": "reject"
                }
            ]
        }
    }
}"#;
        assert_eq!(d, want);
    }

    /// Requirements podman did not write keep their members and order; a scope found
    /// in another transport is replaced there.
    #[test]
    fn keeps_the_rest_as_written() {
        let start = r#"{"default":[{"type":"insecureAcceptAnything"}],"transports":{"docker":{"q.io":[{"type":"sigstoreSigned","keyPath":"/k.pub","signedIdentity":{"type":"matchRepository"}}]},"oci":{"":[{"type":"reject"}],"/srv/x":[{"type":"reject"}]}}}"#;
        let out = set(start, "x.io", "accept", &[]).unwrap();
        assert!(out.contains(
            "\"type\": \"sigstoreSigned\",\n                    \"keyPath\": \"/k.pub\",\n                    \"signedIdentity\": {\n                        \"type\": \"matchRepository\"\n                    }"
        ), "{out}");
        let out = set(&out, "/srv/x", "sigstoreSigned", &["/k2.pub"]).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["transports"]["oci"]["/srv/x"][0]["keyPath"], "/k2.pub");
        assert!(v["transports"]["docker"].get("/srv/x").is_none());
        assert_eq!(
            v["transports"]["docker"]["x.io"][0]["type"],
            "insecureAcceptAnything"
        );
    }

    #[test]
    fn refuses_what_podman_refuses() {
        assert_eq!(
            set(START, "q.io", "signedBy", &[]),
            Err(EditError::NoKeys("signedBy"))
        );
        assert_eq!(
            set(START, "q.io", "sigstoreSigned", &[]),
            Err(EditError::NoKeys("sigstoreSigned"))
        );
        assert_eq!(
            set(START, "q.io", "reject", &["k"]),
            Err(EditError::UnexpectedKeys(1, "reject"))
        );
        assert_eq!(
            set(START, "q.io", "bogus", &[]).unwrap_err().to_string(),
            "invalid choice: bogus (choose from 'accept', 'reject', 'signedBy', 'sigstoreSigned')"
        );
        assert_eq!(
            set(START, "Bad Name", "accept", &[]),
            Err(EditError::Scope("Bad Name".into()))
        );
        assert!(matches!(
            set("{nope", "q.io", "accept", &[]),
            Err(EditError::Parse(_))
        ));
        // No file: only the default may be set first.
        assert_eq!(
            set_trust(None, "q.io", TrustType::Accept, &[]),
            Err(EditError::NoDefault)
        );
        let fresh = set_trust(None, "default", TrustType::Reject, &[]).unwrap();
        assert_eq!(
            String::from_utf8(fresh).unwrap(),
            "{\n    \"default\": [\n        {\n            \"type\": \"reject\"\n        }\n    ]\n}"
        );
    }
}
