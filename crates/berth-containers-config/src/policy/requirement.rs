//! Policy requirements as containers/image parses them (`signature/policy_config.go`):
//! strictly. An unknown or duplicated field, a wrong type, or a missing choice of key
//! rejects the whole file, because a typo in a security policy must not quietly widen it.

use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use berth_image::ImageReference;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// One element of a requirements array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    InsecureAcceptAnything,
    Reject,
    /// A simple-signing (GPG) signature by one of the keys.
    SignedBy(SignedBy),
    /// A sigstore (cosign) signature.
    SigstoreSigned(SigstoreSigned),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedBy {
    pub key_type: KeyType,
    pub keys: Keys,
    pub signed_identity: SignedIdentity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum KeyType {
    #[serde(rename = "GPGKeys")]
    GpgKeys,
    #[serde(rename = "signedByGPGKeys")]
    SignedByGpgKeys,
    #[serde(rename = "X509Certificates")]
    X509Certificates,
    #[serde(rename = "signedByX509CAs")]
    SignedByX509Cas,
}

/// Where public keys come from: exactly one of `keyPath`, `keyPaths`, `keyData`
/// (`keyDatas` for sigstore).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keys {
    Path(PathBuf),
    Paths(Vec<PathBuf>),
    Data(Vec<u8>),
    Datas(Vec<Vec<u8>>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigstoreSigned {
    pub keys: SigstoreKeys,
    /// Rekor public keys; required with Fulcio.
    pub rekor_public_keys: Option<Keys>,
    pub signed_identity: SignedIdentity,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigstoreKeys {
    Keys(Keys),
    Fulcio(Fulcio),
    Pki(Pki),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fulcio {
    pub ca_path: Option<PathBuf>,
    #[serde(default, deserialize_with = "opt_base64")]
    pub ca_data: Option<Vec<u8>>,
    pub oidc_issuer: String,
    pub subject_email: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pki {
    pub ca_roots_path: Option<PathBuf>,
    #[serde(default, deserialize_with = "opt_base64")]
    pub ca_roots_data: Option<Vec<u8>>,
    pub ca_intermediates_path: Option<PathBuf>,
    #[serde(default, deserialize_with = "opt_base64")]
    pub ca_intermediates_data: Option<Vec<u8>>,
    pub subject_email: Option<String>,
    pub subject_hostname: Option<String>,
}

/// What identity a signature must claim (`signedIdentity`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SignedIdentity {
    MatchExact,
    /// The default when `signedIdentity` is absent.
    #[default]
    MatchRepoDigestOrExact,
    MatchRepository,
    ExactReference(ImageReference),
    ExactRepository(ImageReference),
    RemapIdentity {
        prefix: String,
        signed_prefix: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TypeOnly {
    #[serde(rename = "type")]
    _type: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawSignedBy {
    #[serde(rename = "type")]
    _type: String,
    key_type: KeyType,
    key_path: Option<PathBuf>,
    key_paths: Option<Vec<PathBuf>>,
    #[serde(default, deserialize_with = "opt_base64")]
    key_data: Option<Vec<u8>>,
    signed_identity: Option<SignedIdentity>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawSigstoreSigned {
    #[serde(rename = "type")]
    _type: String,
    key_path: Option<PathBuf>,
    key_paths: Option<Vec<PathBuf>>,
    #[serde(default, deserialize_with = "opt_base64")]
    key_data: Option<Vec<u8>>,
    #[serde(default, deserialize_with = "opt_base64_list")]
    key_datas: Option<Vec<Vec<u8>>>,
    fulcio: Option<Fulcio>,
    pki: Option<Pki>,
    rekor_public_key_path: Option<PathBuf>,
    rekor_public_key_paths: Option<Vec<PathBuf>>,
    #[serde(default, deserialize_with = "opt_base64")]
    rekor_public_key_data: Option<Vec<u8>>,
    #[serde(default, deserialize_with = "opt_base64_list")]
    rekor_public_key_datas: Option<Vec<Vec<u8>>>,
    signed_identity: Option<SignedIdentity>,
}

impl<'de> Deserialize<'de> for Requirement {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // `{"type": "reject", "type": "insecureAcceptAnything"}` must not read as the
        // last one: containers/image refuses duplicate keys in policy.json.
        let v = crate::json::DupCheckedValue::deserialize(d)?.0;
        let ty = v
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| D::Error::custom("policy requirement without a \"type\""))?
            .to_string();
        match ty.as_str() {
            "insecureAcceptAnything" => {
                from::<TypeOnly, D>(v).map(|_| Requirement::InsecureAcceptAnything)
            }
            "reject" => from::<TypeOnly, D>(v).map(|_| Requirement::Reject),
            "signedBy" => signed_by(from::<_, D>(v)?).map_err(D::Error::custom),
            "sigstoreSigned" => sigstore_signed(from::<_, D>(v)?).map_err(D::Error::custom),
            other => Err(D::Error::custom(format!(
                "unknown policy requirement type {other:?}"
            ))),
        }
    }
}

fn from<'de, T: serde::de::DeserializeOwned, D: Deserializer<'de>>(
    v: Value,
) -> Result<T, D::Error> {
    serde_json::from_value(v).map_err(D::Error::custom)
}

fn signed_by(raw: RawSignedBy) -> Result<Requirement, String> {
    let keys = one_of_keys(raw.key_path, raw.key_paths, raw.key_data, None)?
        .ok_or("exactly one of keyPath, keyPaths and keyData must be specified")?;
    Ok(Requirement::SignedBy(SignedBy {
        key_type: raw.key_type,
        keys,
        signed_identity: raw.signed_identity.unwrap_or_default(),
    }))
}

fn sigstore_signed(raw: RawSigstoreSigned) -> Result<Requirement, String> {
    let keys = one_of_keys(raw.key_path, raw.key_paths, raw.key_data, raw.key_datas)?;
    let keys = match (keys, raw.fulcio, raw.pki) {
        (Some(k), None, None) => SigstoreKeys::Keys(k),
        (None, Some(f), None) => {
            if f.ca_path.is_some() == f.ca_data.is_some() {
                return Err("fulcio: exactly one of caPath and caData must be specified".into());
            }
            SigstoreKeys::Fulcio(f)
        }
        (None, None, Some(p)) => {
            if p.ca_roots_path.is_some() == p.ca_roots_data.is_some() {
                return Err(
                    "pki: exactly one of caRootsPath and caRootsData must be specified".into(),
                );
            }
            if p.ca_intermediates_path.is_some() && p.ca_intermediates_data.is_some() {
                return Err(
                    "pki: caIntermediatesPath and caIntermediatesData are exclusive".into(),
                );
            }
            if p.subject_email.is_none() && p.subject_hostname.is_none() {
                return Err("pki: subjectEmail or subjectHostname must be specified".into());
            }
            SigstoreKeys::Pki(p)
        }
        _ => return Err(
            "exactly one of keyPath, keyPaths, keyData, keyDatas, fulcio and pki must be specified"
                .into(),
        ),
    };
    let rekor = one_of_keys(
        raw.rekor_public_key_path,
        raw.rekor_public_key_paths,
        raw.rekor_public_key_data,
        raw.rekor_public_key_datas,
    )
    .map_err(|e| format!("rekor public key: {e}"))?;
    if matches!(keys, SigstoreKeys::Fulcio(_)) && rekor.is_none() {
        return Err("fulcio requires a rekor public key".into());
    }
    Ok(Requirement::SigstoreSigned(SigstoreSigned {
        keys,
        rekor_public_keys: rekor,
        signed_identity: raw.signed_identity.unwrap_or_default(),
    }))
}

/// At most one key source; lists must not be empty.
fn one_of_keys(
    path: Option<PathBuf>,
    paths: Option<Vec<PathBuf>>,
    data: Option<Vec<u8>>,
    datas: Option<Vec<Vec<u8>>>,
) -> Result<Option<Keys>, String> {
    match (path, paths, data, datas) {
        (None, None, None, None) => Ok(None),
        (Some(p), None, None, None) => Ok(Some(Keys::Path(p))),
        (None, Some(p), None, None) if !p.is_empty() => Ok(Some(Keys::Paths(p))),
        (None, None, Some(d), None) => Ok(Some(Keys::Data(d))),
        (None, None, None, Some(d)) if !d.is_empty() => Ok(Some(Keys::Datas(d))),
        (None, Some(_), None, None) | (None, None, None, Some(_)) => {
            Err("key lists must not be empty".into())
        }
        _ => Err("more than one of keyPath, keyPaths, keyData and keyDatas is present".into()),
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
enum RawIdentity {
    // Empty struct variants, not unit ones: serde ignores extra fields after the tag of a
    // unit variant even with deny_unknown_fields.
    MatchExact {},
    MatchRepoDigestOrExact {},
    MatchRepository {},
    #[serde(rename_all = "camelCase")]
    ExactReference {
        docker_reference: String,
    },
    #[serde(rename_all = "camelCase")]
    ExactRepository {
        docker_repository: String,
    },
    #[serde(rename_all = "camelCase")]
    RemapIdentity {
        prefix: String,
        signed_prefix: String,
    },
}

impl<'de> Deserialize<'de> for SignedIdentity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let parse = |s: &str| s.parse::<ImageReference>().map_err(D::Error::custom);
        Ok(match RawIdentity::deserialize(d)? {
            RawIdentity::MatchExact {} => SignedIdentity::MatchExact,
            RawIdentity::MatchRepoDigestOrExact {} => SignedIdentity::MatchRepoDigestOrExact,
            RawIdentity::MatchRepository {} => SignedIdentity::MatchRepository,
            RawIdentity::ExactReference { docker_reference } => {
                let r = parse(&docker_reference)?;
                if r.tag().is_none() && r.digest().is_none() {
                    return Err(D::Error::custom(format!(
                        "dockerReference {docker_reference:?} has neither a tag nor a digest"
                    )));
                }
                SignedIdentity::ExactReference(r)
            }
            RawIdentity::ExactRepository { docker_repository } => {
                SignedIdentity::ExactRepository(parse(&docker_repository)?)
            }
            RawIdentity::RemapIdentity {
                prefix,
                signed_prefix,
            } => {
                for p in [&prefix, &signed_prefix] {
                    if !valid_remap_prefix(p) {
                        return Err(D::Error::custom(format!(
                            "invalid remapIdentity prefix {p:?}: must be host[:port][/namespace…]"
                        )));
                    }
                }
                SignedIdentity::RemapIdentity {
                    prefix,
                    signed_prefix,
                }
            }
        })
    }
}

/// A host, or a repository name spelled in full (`docker.io/library/x`, not `x`).
fn valid_remap_prefix(p: &str) -> bool {
    if !p.contains('/') {
        return format!("{p}/x")
            .parse::<ImageReference>()
            .is_ok_and(|r| r.domain() == p);
    }
    p.parse::<ImageReference>()
        .is_ok_and(|r| r.tag().is_none() && r.digest().is_none() && r.name() == p)
}

fn opt_base64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|s| BASE64.decode(s).map_err(D::Error::custom))
        .transpose()
}

fn opt_base64_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Vec<u8>>>, D::Error> {
    Option::<Vec<String>>::deserialize(d)?
        .map(|list| {
            list.iter()
                .map(|s| BASE64.decode(s).map_err(D::Error::custom))
                .collect()
        })
        .transpose()
}
