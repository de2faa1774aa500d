//! The signed JSON both signature formats carry: "atomic container signature" (simple
//! signing, `docs/containers-signature.5.md`) and "cosign container image signature"
//! (sigstore). Written byte for byte as containers/image writes them, and parsed as
//! strictly as `signature/simple.go` and `internal/sigstore_payload.go` do: exactly
//! `critical` and `optional`; `critical` exactly `type`, `image`, `identity`, each of
//! those exactly its one member; unknown members of `optional` ignored.

use std::time::{SystemTime, UNIX_EPOCH};

use berth_image::Digest;
use serde_json::{json, Value};

use crate::json::{exact_object, go_marshal, integer, string, Object};

/// What the signed manifest digest must match.
#[derive(Debug, Clone, Copy)]
pub enum ManifestCheck<'a> {
    /// A digest already known to be the image's.
    Digest(&'a Digest),
    /// The manifest itself, hashed with the algorithm the signature names.
    Manifest(&'a [u8]),
}

impl ManifestCheck<'_> {
    /// c/image's `manifest.MatchesDigest`. (Schema 1 manifests, whose digest excludes
    /// their JWS signatures, are not handled: berth does not write or verify them.)
    pub fn matches(&self, signed: &Digest) -> bool {
        match self {
            ManifestCheck::Digest(d) => *d == signed,
            ManifestCheck::Manifest(bytes) => Digest::of(signed.algorithm(), bytes) == *signed,
        }
    }
}

/// Which part of a verified payload does not fit the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// It signs another manifest.
    Digest,
    /// Its identity is not one the caller accepts.
    Identity,
}

/// Which of the two payload formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Simple signing, inside an OpenPGP message.
    Simple,
    /// A sigstore (cosign) signature's payload, signed with ECDSA.
    Sigstore,
}

impl Format {
    /// The `critical.type` value.
    pub fn type_name(self) -> &'static str {
        match self {
            Format::Simple => "atomic container signature",
            Format::Sigstore => "cosign container image signature",
        }
    }

    /// The `optional.creator` containers/image writes, given its version: skopeo 1.9.3
    /// writes `atomic 5.23.1` and `containers/image 5.23.1`.
    pub fn creator_prefix(self) -> &'static str {
        match self {
            Format::Simple => "atomic",
            Format::Sigstore => "containers/image",
        }
    }
}

/// A payload's contents. Parsed from an *unverified* blob it is only information; the
/// functions that verify return it once the bytes are authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub docker_manifest_digest: Digest,
    /// The signed identity, e.g. `registry.example/ns/app:v1` (not normalized here:
    /// the policy's `signedIdentity` decides how to compare it).
    pub docker_reference: String,
    pub creator: Option<String>,
    pub timestamp: Option<i64>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    #[error("invalid signature payload: {0}")]
    Invalid(String),
    #[error("invalid signature payload: Unrecognized signature type {0}")]
    Type(String),
    #[error("invalid signature payload: invalid docker-manifest-digest value {0:?}")]
    Digest(String),
    #[error("invalid signature payload: empty docker-reference")]
    EmptyReference,
}

impl Payload {
    /// A new payload stamped with the current time.
    pub fn new(digest: Digest, reference: impl Into<String>, creator: impl Into<String>) -> Self {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        Payload {
            docker_manifest_digest: digest,
            docker_reference: reference.into(),
            creator: Some(creator.into()),
            timestamp: Some(timestamp),
        }
    }

    /// The JSON bytes containers/image writes (Go's map marshalling: sorted keys,
    /// compact). Refuses an empty reference as c/image does.
    pub fn to_json(&self, format: Format) -> Result<Vec<u8>, PayloadError> {
        if self.docker_reference.is_empty() {
            return Err(PayloadError::EmptyReference);
        }
        // Built in sorted key order, so serde_json writes Go's order whether or not its
        // `preserve_order` feature is on.
        let mut optional = serde_json::Map::new();
        if let Some(c) = &self.creator {
            optional.insert("creator".into(), Value::from(c.as_str()));
        }
        if let Some(t) = self.timestamp {
            optional.insert("timestamp".into(), Value::from(t));
        }
        let v = json!({
            "critical": {
                "identity": {"docker-reference": self.docker_reference},
                "image": {"docker-manifest-digest": self.docker_manifest_digest.to_string()},
                "type": format.type_name(),
            },
            "optional": Value::Object(optional),
        });
        Ok(go_marshal(&v))
    }

    /// Whether this (verified) payload is for `manifest` and claims an identity
    /// `identity_ok` accepts, checked in c/image's order: digest, then identity.
    pub fn check(
        &self,
        manifest: ManifestCheck<'_>,
        identity_ok: impl Fn(&str) -> bool,
    ) -> Result<(), Mismatch> {
        if !manifest.matches(&self.docker_manifest_digest) {
            return Err(Mismatch::Digest);
        }
        if !identity_ok(&self.docker_reference) {
            return Err(Mismatch::Identity);
        }
        Ok(())
    }

    /// Parses payload bytes strictly. Call it only on bytes whose signature verified.
    pub fn parse(bytes: &[u8], format: Format) -> Result<Payload, PayloadError> {
        let inv = PayloadError::Invalid;
        let [critical, optional] = Object::parse(bytes)
            .map_err(inv)?
            .exact("signature", ["critical", "optional"])
            .map_err(inv)?;

        let (mut creator, mut timestamp) = (None, None);
        // cosign writes `"optional": null` when there are no annotations; simple signing
        // has no such case and c/image refuses it there.
        if !(format == Format::Sigstore && optional.is_null()) {
            let Value::Object(members) = optional else {
                return Err(inv("optional is not a JSON object".into()));
            };
            for (k, v) in members {
                match k.as_str() {
                    "creator" => creator = Some(string("optional.creator", v).map_err(inv)?),
                    "timestamp" => {
                        timestamp = Some(integer("optional.timestamp", &v).map_err(inv)?)
                    }
                    _ => {}
                }
            }
        }

        let [ty, image, identity] =
            exact_object("critical", critical, ["type", "image", "identity"]).map_err(inv)?;
        let ty = string("critical.type", ty).map_err(inv)?;
        if ty != format.type_name() {
            return Err(PayloadError::Type(ty));
        }
        let [digest] =
            exact_object("critical.image", image, ["docker-manifest-digest"]).map_err(inv)?;
        let digest = string("critical.image.docker-manifest-digest", digest).map_err(inv)?;
        let docker_manifest_digest = digest
            .parse::<Digest>()
            .map_err(|_| PayloadError::Digest(digest.clone()))?;
        let [reference] =
            exact_object("critical.identity", identity, ["docker-reference"]).map_err(inv)?;
        let docker_reference =
            string("critical.identity.docker-reference", reference).map_err(inv)?;
        Ok(Payload {
            docker_manifest_digest,
            docker_reference,
            creator,
            timestamp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:f20c43161d73848408ef247f0ec7111b19fe58ffebc0cbcaa0d2c8bda4967268";

    /// What skopeo 1.9.3 `standalone-sign` signed (decrypted with `gpg --decrypt`).
    const SKOPEO_SIMPLE: &str = r#"{"critical":{"identity":{"docker-reference":"127.0.0.1:5000/test/hello:v1"},"image":{"docker-manifest-digest":"sha256:f20c43161d73848408ef247f0ec7111b19fe58ffebc0cbcaa0d2c8bda4967268"},"type":"atomic container signature"},"optional":{"creator":"atomic 5.23.1","timestamp":1796284204}}"#;

    fn sample() -> Payload {
        Payload {
            docker_manifest_digest: DIGEST.parse().unwrap(),
            docker_reference: "127.0.0.1:5000/test/hello:v1".into(),
            creator: Some("atomic 5.23.1".into()),
            timestamp: Some(1796284204),
        }
    }

    #[test]
    fn writes_what_skopeo_writes() {
        assert_eq!(
            String::from_utf8(sample().to_json(Format::Simple).unwrap()).unwrap(),
            SKOPEO_SIMPLE
        );
        let cosign = String::from_utf8(sample().to_json(Format::Sigstore).unwrap()).unwrap();
        assert_eq!(
            cosign,
            SKOPEO_SIMPLE.replace(
                "atomic container signature",
                "cosign container image signature"
            )
        );
    }

    #[test]
    fn round_trip_and_skopeo_payload_parse() {
        assert_eq!(
            Payload::parse(SKOPEO_SIMPLE.as_bytes(), Format::Simple),
            Ok(sample())
        );
        let p = sample();
        let bytes = p.to_json(Format::Sigstore).unwrap();
        assert_eq!(Payload::parse(&bytes, Format::Sigstore), Ok(p));
    }

    #[test]
    fn new_stamps_now() {
        let p = Payload::new(DIGEST.parse().unwrap(), "a.example/b:c", "berth 0.1.0");
        assert!(p.timestamp.unwrap() > 1_700_000_000);
        assert_eq!(p.creator.as_deref(), Some("berth 0.1.0"));
    }

    #[test]
    fn empty_reference_not_written() {
        let mut p = sample();
        p.docker_reference.clear();
        assert_eq!(p.to_json(Format::Simple), Err(PayloadError::EmptyReference));
    }

    fn refused(s: &str, format: Format) -> PayloadError {
        Payload::parse(s.as_bytes(), format).expect_err(s)
    }

    #[test]
    fn strict_parse_refusals() {
        let f = Format::Simple;
        let ok = SKOPEO_SIMPLE;
        // Unknown top-level member, missing optional.
        assert!(matches!(
            refused(&ok.replacen('{', r#"{"x":1,"#, 1), f),
            PayloadError::Invalid(_)
        ));
        assert!(matches!(
            refused(
                &ok.replace(
                    r#","optional":{"creator":"atomic 5.23.1","timestamp":1796284204}"#,
                    ""
                ),
                f
            ),
            PayloadError::Invalid(_)
        ));
        // Unknown member in critical.
        let e = refused(&ok.replace(r#""type":"#, r#""extra":true,"type":"#), f);
        assert!(e.to_string().contains("unexpected member \"extra\""), "{e}");
        // Unknown member in critical.image / critical.identity.
        assert!(matches!(
            refused(
                &ok.replace(
                    r#"{"docker-manifest-digest""#,
                    r#"{"x":1,"docker-manifest-digest""#
                ),
                f
            ),
            PayloadError::Invalid(_)
        ));
        assert!(matches!(
            refused(
                &ok.replace(r#"{"docker-reference""#, r#"{"x":1,"docker-reference""#),
                f
            ),
            PayloadError::Invalid(_)
        ));
        // Wrong type, for each format.
        assert_eq!(
            refused(ok, Format::Sigstore),
            PayloadError::Type("atomic container signature".into())
        );
        // Bad digest.
        assert!(matches!(
            refused(&ok.replace("sha256:f20c", "sha256:zz0c"), f),
            PayloadError::Digest(_)
        ));
        assert!(matches!(
            refused(&ok.replace("sha256:f20c", "md5:f20c"), f),
            PayloadError::Digest(_)
        ));
        // Fractional timestamp, non-string creator, duplicate key.
        assert!(matches!(
            refused(&ok.replace("1796284204", "1796284204.5"), f),
            PayloadError::Invalid(_)
        ));
        assert!(matches!(
            refused(&ok.replace(r#""atomic 5.23.1""#, "5"), f),
            PayloadError::Invalid(_)
        ));
        assert!(matches!(
            refused(&ok.replace(r#""type":"#, r#""type":"x","type":"#), f),
            PayloadError::Invalid(_)
        ));
        // optional: null is cosign's, not simple signing's.
        let null_opt = ok.replace(
            r#"{"creator":"atomic 5.23.1","timestamp":1796284204}"#,
            "null",
        );
        assert!(matches!(refused(&null_opt, f), PayloadError::Invalid(_)));
        let cosign_null = null_opt.replace(
            "atomic container signature",
            "cosign container image signature",
        );
        let p = Payload::parse(cosign_null.as_bytes(), Format::Sigstore).unwrap();
        assert_eq!((p.creator, p.timestamp), (None, None));
    }

    #[test]
    fn unknown_optional_members_ignored() {
        let s = SKOPEO_SIMPLE.replace(r#""creator""#, r#""whatever":{"a":[1]},"creator""#);
        assert_eq!(Payload::parse(s.as_bytes(), Format::Simple), Ok(sample()));
    }
}
