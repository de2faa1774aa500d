//! The JSON HTTP API under `/api/v1/`: one route per [`Change`] and a few read-only
//! queries. The table below is the only place that says which path means which
//! change; the server parses with [`parse`], the command-line client builds requests
//! with [`request`], and a test checks that each undoes the other.
//!
//! A change's fields come from the path parameters and the JSON body together: the
//! path names the thing, the body carries the rest.

use serde_json::{Map, Value};

use crate::admin::Change;

/// (operation, method, path template). `{x}` matches one or more path segments.
const ROUTES: &[(&str, &str, &str)] = &[
    ("user-add", "POST", "users"),
    ("user-import", "POST", "users/import"),
    ("user-password", "PUT", "users/{name}/password"),
    ("account-delete", "DELETE", "accounts/{name}"),
    ("org-create", "POST", "orgs"),
    (
        "namespace-visibility",
        "PUT",
        "namespaces/{name}/visibility",
    ),
    ("team-add", "PUT", "teams/{team}/members/{member}"),
    ("team-remove", "DELETE", "teams/{team}/members/{member}"),
    ("robot-create", "POST", "robots"),
    ("grant", "PUT", "grants"),
    ("revoke", "DELETE", "grants"),
    (
        "repo-visibility",
        "PUT",
        "repositories/{repository}/visibility",
    ),
    ("trust-set", "PUT", "trust/{name}"),
    ("trust-unset", "DELETE", "trust/{name}"),
    ("immutable-set", "PUT", "immutable/{name}"),
    ("immutable-unset", "DELETE", "immutable/{name}"),
    ("retention-set", "PUT", "retention/{name}"),
    ("retention-unset", "DELETE", "retention/{name}"),
    ("replication-set", "PUT", "replication/{name}"),
    ("replication-remove", "DELETE", "replication/{name}"),
    ("quota-set", "PUT", "quotas/{namespace}"),
    ("quota-unset", "DELETE", "quotas/{namespace}"),
    ("token-revoke", "DELETE", "tokens/{account}"),
    // Queries.
    ("whoami", "GET", "whoami"),
    ("user-list", "GET", "users"),
    ("org-show", "GET", "orgs/{name}"),
    ("repository-list", "GET", "repositories"),
    ("audit", "GET", "audit"),
    ("trust-show", "GET", "trust/{name}"),
    ("token-list", "GET", "tokens"),
    ("immutable-show", "GET", "immutable/{name}"),
    ("retention-show", "GET", "retention/{name}"),
    ("usage", "GET", "usage"),
    ("replication-list", "GET", "replication"),
    ("replication-show", "GET", "replication/{name}"),
    ("replication-run", "POST", "replication/{name}/run"),
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ApiParseError {
    #[error("no such API endpoint")]
    NotFound,
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// A parsed request: an operation name and its parameters (path and body merged).
#[derive(Debug)]
pub struct Call {
    pub op: &'static str,
    pub params: Map<String, Value>,
}

impl Call {
    /// The change this call asks for, if it is one.
    pub fn change(&self) -> Option<Result<Change, ApiParseError>> {
        if matches!(
            self.op,
            "whoami"
                | "user-list"
                | "org-show"
                | "repository-list"
                | "audit"
                | "trust-show"
                | "token-list"
                | "immutable-show"
                | "retention-show"
                | "usage"
                | "replication-list"
                | "replication-show"
                | "replication-run"
        ) {
            return None;
        }
        let mut obj = self.params.clone();
        obj.insert("op".into(), Value::String(self.op.into()));
        Some(
            serde_json::from_value(Value::Object(obj))
                .map_err(|e| ApiParseError::Invalid(e.to_string())),
        )
    }

    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.get(key).and_then(Value::as_str)
    }
}

/// Parses `method` and `path` (after `/api/v1/`) and a JSON `body` (may be empty).
pub fn parse(method: &str, path: &str, body: &[u8]) -> Result<Call, ApiParseError> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let mut path_matched = false;
    for (op, m, template) in ROUTES {
        let Some(params) = match_template(template, &segments) else {
            continue;
        };
        path_matched = true;
        if *m != method {
            continue;
        }
        let mut all = match body.iter().all(u8::is_ascii_whitespace) {
            true => Map::new(),
            false => match serde_json::from_slice(body) {
                Ok(Value::Object(o)) => o,
                Ok(_) => {
                    return Err(ApiParseError::Invalid(
                        "the body must be a JSON object".into(),
                    ))
                }
                Err(e) => return Err(ApiParseError::Invalid(format!("body: {e}"))),
            },
        };
        for (k, v) in params {
            all.insert(k, Value::String(v));
        }
        return Ok(Call { op, params: all });
    }
    Err(if path_matched {
        ApiParseError::Invalid(format!("{method} is not allowed here"))
    } else {
        ApiParseError::NotFound
    })
}

/// Method, path (after `/api/v1/`) and JSON body for `change`.
pub fn request(change: &Change) -> (&'static str, String, Value) {
    let Ok(Value::Object(mut fields)) = serde_json::to_value(change) else {
        unreachable!("a Change always serializes to an object");
    };
    let op = fields.remove("op");
    let op = op.as_ref().and_then(Value::as_str).unwrap_or_default();
    let (_, method, template) = ROUTES
        .iter()
        .find(|(o, _, _)| *o == op)
        .copied()
        .unwrap_or(("", "POST", ""));
    let path = template
        .split('/')
        .map(|seg| match param_name(seg) {
            Some(name) => match fields.remove(name) {
                Some(Value::String(s)) => s,
                _ => String::new(),
            },
            None => seg.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/");
    (method, path, Value::Object(fields))
}

fn param_name(seg: &str) -> Option<&str> {
    seg.strip_prefix('{')?.strip_suffix('}')
}

/// Matches `segments` against `template`, a parameter taking one or more segments.
fn match_template(template: &str, segments: &[&str]) -> Option<Vec<(String, String)>> {
    fn go(t: &[&str], s: &[&str], out: &mut Vec<(String, String)>) -> bool {
        match t.split_first() {
            None => s.is_empty(),
            Some((first, rest)) => match param_name(first) {
                None => s.first() == Some(first) && go(rest, &s[1..], out),
                Some(name) => {
                    for take in 1..=s.len() {
                        if s[..take].iter().any(|x| x.is_empty()) {
                            break;
                        }
                        out.push((name.to_string(), s[..take].join("/")));
                        if go(rest, &s[take..], out) {
                            return true;
                        }
                        out.pop();
                    }
                    false
                }
            },
        }
    }
    let t: Vec<&str> = template.split('/').collect();
    let mut out = Vec::new();
    go(&t, segments, &mut out).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::Secret;
    use crate::directory::{Level, Visibility};

    #[test]
    fn every_change_round_trips_through_http() {
        let changes = vec![
            Change::UserAdd {
                name: "alice".into(),
                password: Secret("pw".into()),
                superuser: true,
            },
            Change::UserImport {
                users: vec![("bob".into(), Secret("$2y$05$x".into()))],
            },
            Change::UserPassword {
                name: "alice".into(),
                password: Secret("pw2".into()),
            },
            Change::AccountDelete {
                name: "myorg+ci".into(),
            },
            Change::OrgCreate {
                name: "myorg".into(),
            },
            Change::NamespaceVisibility {
                name: "myorg".into(),
                visibility: Visibility::Public,
            },
            Change::TeamAdd {
                team: "myorg/devs".into(),
                member: "alice".into(),
            },
            Change::TeamRemove {
                team: "myorg/devs".into(),
                member: "alice".into(),
            },
            Change::RobotCreate {
                name: "myorg+ci".into(),
            },
            Change::Grant {
                subject: "myorg/devs".into(),
                level: Level::Write,
                target: "myorg/app".into(),
            },
            Change::Revoke {
                subject: "myorg+ci".into(),
                target: "myorg".into(),
            },
            Change::RepoVisibility {
                repository: "myorg/a/b".into(),
                visibility: Visibility::Private,
            },
            Change::TrustSet {
                name: "myorg/a/b".into(),
                required: true,
                gpg_keys: vec!["-----BEGIN PGP PUBLIC KEY BLOCK-----".into()],
                sigstore_keys: vec!["-----BEGIN PUBLIC KEY-----".into()],
            },
            Change::TrustSet {
                name: "myorg".into(),
                required: false,
                gpg_keys: vec![],
                sigstore_keys: vec![],
            },
            Change::TrustUnset {
                name: "myorg/app".into(),
            },
            Change::ImmutableSet {
                name: "myorg/a/b".into(),
                patterns: vec!["v*".into(), "release-?".into()],
            },
            Change::ImmutableUnset {
                name: "myorg".into(),
            },
            Change::RetentionSet {
                name: "myorg/a/b".into(),
                keep_last: Some(10),
                keep: vec!["v*".into()],
                older_than: Some("30d".into()),
                never: vec!["release-*".into()],
            },
            Change::RetentionSet {
                name: "myorg".into(),
                keep_last: None,
                keep: vec![],
                older_than: Some("12h".into()),
                never: vec![],
            },
            Change::RetentionUnset {
                name: "myorg".into(),
            },
            Change::QuotaSet {
                namespace: "myorg".into(),
                bytes: 10 << 30,
            },
            Change::ReplicationSet {
                name: "dr-site".into(),
                url: "https://mirror.example".into(),
                username: Some("bot".into()),
                password: Some(Secret("pw".into())),
                repos: vec!["team/*".into()],
                tags: vec!["v*".into()],
                on_push: true,
                schedule: Some("1h".into()),
            },
            Change::ReplicationRemove {
                name: "dr-site".into(),
            },
            Change::QuotaUnset {
                namespace: "myorg".into(),
            },
            Change::TokenRevoke {
                account: "alice".into(),
                id: Some("0123abcd".into()),
            },
            Change::TokenRevoke {
                account: "myorg+ci".into(),
                id: None,
            },
        ];
        for c in changes {
            let (method, path, body) = request(&c);
            let body = serde_json::to_vec(&body).unwrap();
            let call = parse(method, &path, &body).unwrap_or_else(|e| panic!("{c:?}: {e}"));
            assert_eq!(call.change().unwrap().unwrap(), c, "{method} {path}");
        }
    }

    #[test]
    fn paths_with_slashes_and_errors() {
        let call = parse("PUT", "teams/myorg/devs/members/alice", b"").unwrap();
        assert_eq!(call.param("team"), Some("myorg/devs"));
        assert_eq!(call.param("member"), Some("alice"));
        assert_eq!(
            parse("GET", "nope", b"").unwrap_err(),
            ApiParseError::NotFound
        );
        assert!(matches!(
            parse("PATCH", "users", b""),
            Err(ApiParseError::Invalid(_))
        ));
        assert!(matches!(
            parse("POST", "users", b"[1]"),
            Err(ApiParseError::Invalid(_))
        ));
        assert!(matches!(
            parse("POST", "users", b"{"),
            Err(ApiParseError::Invalid(_))
        ));
        let missing = parse("POST", "users", b"{\"name\":\"a\"}").unwrap();
        assert!(missing.change().unwrap().is_err());
        assert!(parse("GET", "users", b"").unwrap().change().is_none());
        assert!(matches!(
            parse("PUT", "users//password", b""),
            Err(ApiParseError::NotFound)
        ));
    }
}
