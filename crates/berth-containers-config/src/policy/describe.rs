//! `podman image trust show`: a policy file as rows a person reads, one per
//! requirement, with the keys' identities and where signatures are looked for.

use serde::{Deserialize, Serialize};

use super::edit::EditError;
use crate::registries_d::RegistriesD;

/// One row of `trust show` (`--json` prints these, in podman's member order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrustEntry {
    pub transport: String,
    pub name: String,
    pub repo_name: String,
    #[serde(rename = "sigstore", skip_serializing_if = "String::is_empty")]
    pub store: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(rename = "gpg_id", skip_serializing_if = "String::is_empty")]
    pub id: String,
}

/// The members `trust show` reads of a requirement.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Requirement {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    key_path: String,
    #[serde(default)]
    key_paths: Vec<String>,
    #[serde(default)]
    key_data: String,
}

#[derive(Debug, Default, Deserialize)]
struct Policy {
    #[serde(default)]
    default: Vec<Requirement>,
    #[serde(default)]
    transports:
        std::collections::BTreeMap<String, std::collections::BTreeMap<String, Vec<Requirement>>>,
}

/// Where the key identities come from: given a key file's bytes or path, the e-mail
/// addresses (or names) of its user IDs. podman asks `gpg2`; berth parses the keys.
pub enum KeySource<'a> {
    Path(&'a str),
    /// `keyData`: base64 of a keyring.
    Data(&'a str),
}

/// The rows of `podman image trust show` for a policy file's bytes.
pub fn describe(
    policy: &[u8],
    registries_d: &RegistriesD,
    identities: &dyn Fn(KeySource) -> Vec<String>,
) -> Result<Vec<TrustEntry>, EditError> {
    let policy: Policy =
        serde_json::from_slice(policy).map_err(|e| EditError::Parse(e.to_string()))?;
    let mut out = Vec::new();
    let mut rows =
        |transport: &str, name: &str, repo_name: &str, scope: &str, reqs: &[Requirement]| {
            let store = registries_d
                .store_for_scope(scope)
                .unwrap_or_default()
                .to_string();
            for r in reqs {
                let id = match r.kind.as_str() {
                    "signedBy" => {
                        let mut ids = Vec::new();
                        if !r.key_path.is_empty() {
                            ids.extend(identities(KeySource::Path(&r.key_path)));
                        }
                        for p in &r.key_paths {
                            ids.extend(identities(KeySource::Path(p)));
                        }
                        if !r.key_data.is_empty() {
                            ids.extend(identities(KeySource::Data(&r.key_data)));
                        }
                        ids.join(", ")
                    }
                    "sigstoreSigned" => "N/A".to_string(),
                    _ => String::new(),
                };
                out.push(TrustEntry {
                    transport: transport.to_string(),
                    name: name.to_string(),
                    repo_name: repo_name.to_string(),
                    store: store.clone(),
                    kind: describe_type(&r.kind).to_string(),
                    id,
                });
            }
        };
    rows("all", "* (default)", "default", "", &policy.default);
    for (transport, scopes) in &policy.transports {
        let shown = if transport == "docker" {
            "repository"
        } else {
            transport
        };
        for (scope, reqs) in scopes {
            rows(shown, scope, scope, scope, reqs);
        }
    }
    Ok(out)
}

fn describe_type(kind: &str) -> &'static str {
    match kind {
        "insecureAcceptAnything" => "accept",
        "signedBy" => "signed",
        "sigstoreSigned" => "sigstoreSigned",
        "reject" => "reject",
        _ => "",
    }
}

/// podman's reading of a user ID for the ID column: the address between `<` and `>`
/// when there is one, else the whole ID.
pub fn user_id_label(uid: &str) -> String {
    match uid
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
    {
        Some((addr, _)) => addr.to_string(),
        None => uid.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn rows_as_podman_shows_them() {
        // As `podman image trust show --policypath q.json --registrypath rd -j` printed
        // it (4.3.1, with gpg2 on PATH; measured).
        let policy = br#"{"default":[{"type":"reject"}],"transports":{"docker":{"example.com/x":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k.gpg"},{"type":"signedBy","keyType":"GPGKeys","keyPaths":["/k.gpg","/k.gpg"]}],"quay.io":[{"type":"insecureAcceptAnything"}],"q.io/s":[{"type":"sigstoreSigned","keyPath":"/c.pub"}]},"oci":{"":[{"type":"reject"}]}}}"#;
        let rd = RegistriesD::from_files([(
            PathBuf::from("/rd/a.yaml"),
            "docker:\n  example.com:\n    lookaside: https://la.example.com\ndefault-docker:\n  sigstore: file:///var/sig\n".to_string(),
        )])
        .unwrap();
        let ids = |k: KeySource| match k {
            KeySource::Path("/k.gpg") => vec![user_id_label("x <x@y>")],
            _ => vec![],
        };
        let rows = describe(policy, &rd, &ids).unwrap();
        let json = berth_image::inspect::to_go_json_indented(&rows, "  ");
        let want = r#"[
  {
    "transport": "all",
    "name": "* (default)",
    "repo_name": "default",
    "sigstore": "file:///var/sig",
    "type": "reject"
  },
  {
    "transport": "repository",
    "name": "example.com/x",
    "repo_name": "example.com/x",
    "sigstore": "https://la.example.com",
    "type": "signed",
    "gpg_id": "x@y"
  },
  {
    "transport": "repository",
    "name": "example.com/x",
    "repo_name": "example.com/x",
    "sigstore": "https://la.example.com",
    "type": "signed",
    "gpg_id": "x@y, x@y"
  },
  {
    "transport": "repository",
    "name": "q.io/s",
    "repo_name": "q.io/s",
    "sigstore": "file:///var/sig",
    "type": "sigstoreSigned",
    "gpg_id": "N/A"
  },
  {
    "transport": "repository",
    "name": "quay.io",
    "repo_name": "quay.io",
    "sigstore": "file:///var/sig",
    "type": "accept"
  },
  {
    "transport": "oci",
    "name": "",
    "repo_name": "",
    "sigstore": "file:///var/sig",
    "type": "reject"
  }
]"#;
        assert_eq!(json, want);
        assert_eq!(user_id_label("just a name"), "just a name");
    }
}
