//! Bearer tokens as the Docker token specification describes them: a JWT signed with
//! ES256 that lists the granted access (`repository:NAME:pull,push`), with an issuer,
//! an audience (the service), and a short life.
//!
//! A token is self-contained: checking one is a signature check, not a database query.
//! Checked tokens are cached until they expire, so a client that sends the same token
//! on every request pays for the signature once.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use p256::ecdsa::SigningKey;
use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::directory::{Directory, Level, Principal};
use crate::now;

/// The `iss` of every token berth issues.
pub const ISSUER: &str = "berth";
/// Verified tokens kept in memory at most; beyond it expired ones are dropped first.
const CACHE_CAPACITY: usize = 10_000;
/// Clock difference tolerated between issue and check (seconds).
const LEEWAY: u64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token signing key {path}: {why}")]
    Key { path: String, why: String },
    #[error("invalid token: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    #[error("invalid scope {0:?}")]
    Scope(String),
}

/// What a request needs on a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pull,
    Push,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }

    /// The permission level the action needs. Deleting content is a write: whoever may
    /// push a tag may also remove it.
    pub fn level(self) -> Level {
        match self {
            Action::Pull => Level::Read,
            Action::Push | Action::Delete => Level::Write,
        }
    }
}

/// One entry of a token's `access` claim, also one parsed `scope` parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceActions {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

impl ResourceActions {
    /// Parses `type:name:action,action`. The name may itself contain `:` (a
    /// `host:port/…` in some clients' scopes), so type and actions are cut from the ends.
    pub fn parse_scope(scope: &str) -> Result<ResourceActions, TokenError> {
        let bad = || TokenError::Scope(scope.chars().take(200).collect());
        let (kind, rest) = scope.split_once(':').ok_or_else(bad)?;
        let (name, actions) = rest.rsplit_once(':').ok_or_else(bad)?;
        if kind.is_empty() || name.is_empty() {
            return Err(bad());
        }
        Ok(ResourceActions {
            kind: kind.to_string(),
            name: name.to_string(),
            actions: actions
                .split(',')
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect(),
        })
    }

    /// The challenge's `scope` value for `action` on `repo`.
    pub fn scope_string(repo: &str, actions: &[Action]) -> String {
        let list: Vec<&str> = actions.iter().map(|a| a.as_str()).collect();
        format!("repository:{repo}:{}", list.join(","))
    }
}

/// The claims of a berth token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The account; empty for an anonymous token.
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    pub jti: String,
    #[serde(default)]
    pub access: Vec<ResourceActions>,
}

impl Claims {
    pub fn principal(&self) -> Principal {
        if self.sub.is_empty() {
            Principal::Anonymous
        } else {
            Principal::Account(self.sub.clone())
        }
    }

    /// Whether the token grants `action` on repository `repo`.
    pub fn allows(&self, repo: &str, action: Action) -> bool {
        self.access.iter().any(|ra| {
            ra.kind == "repository"
                && ra.name == repo
                && ra.actions.iter().any(|a| a == action.as_str() || a == "*")
        })
    }
}

/// What of `requested` `who` may have: the intersection of what was asked and what the
/// directory allows. Unknown resource types and actions are left out, as the token
/// specification says; the client then learns from a 401/403 what it lacks.
pub fn grant(
    dir: &Directory,
    who: &Principal,
    requested: &[ResourceActions],
) -> Vec<ResourceActions> {
    let mut out: Vec<ResourceActions> = Vec::new();
    for req in requested {
        let allowed: Vec<String> = match req.kind.as_str() {
            "repository" => {
                let level = dir.level(who, &req.name);
                req.actions
                    .iter()
                    .filter(|a| {
                        let need = match a.as_str() {
                            "pull" => Level::Read,
                            "push" | "delete" => Level::Write,
                            "*" => Level::Admin,
                            _ => return false,
                        };
                        level.is_some_and(|l| l >= need)
                    })
                    .cloned()
                    .collect()
            }
            // Anyone may ask for the catalog; it lists only what the caller may read.
            "registry" if req.name == "catalog" => req
                .actions
                .iter()
                .filter(|a| a.as_str() == "*")
                .cloned()
                .collect(),
            _ => Vec::new(),
        };
        if allowed.is_empty() {
            continue;
        }
        // Several scopes may name one resource; merge them.
        match out
            .iter_mut()
            .find(|r| r.kind == req.kind && r.name == req.name)
        {
            Some(r) => {
                for a in allowed {
                    if !r.actions.contains(&a) {
                        r.actions.push(a);
                    }
                }
            }
            None => out.push(ResourceActions {
                kind: req.kind.clone(),
                name: req.name.clone(),
                actions: allowed,
            }),
        }
    }
    out
}

/// Signs and checks tokens with one P-256 key kept in the data folder.
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    kid: String,
    service: String,
    lifetime: Duration,
    validation: Validation,
    cache: RwLock<HashMap<String, Arc<Claims>>>,
}

impl Tokens {
    /// Loads the signing key at `path`, creating it (mode 0600) on first use.
    pub fn load_or_create(
        path: &Path,
        service: &str,
        lifetime: Duration,
    ) -> Result<Tokens, TokenError> {
        let err = |why: String| TokenError::Key {
            path: path.display().to_string(),
            why,
        };
        let pem = match fs::read_to_string(path) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                create_key(path).map_err(|e| err(e.to_string()))?
            }
            Err(e) => return Err(err(e.to_string())),
        };
        Tokens::from_pem(&pem, &path.display().to_string(), service, lifetime)
    }

    /// Signs and checks with the PKCS#8 P-256 key `pem` (from `origin`, named in
    /// errors).
    pub fn from_pem(
        pem: &str,
        origin: &str,
        service: &str,
        lifetime: Duration,
    ) -> Result<Tokens, TokenError> {
        let err = |why: String| TokenError::Key {
            path: origin.to_string(),
            why,
        };
        let signing: SigningKey = p256::pkcs8::DecodePrivateKey::from_pkcs8_pem(pem)
            .map_err(|e| err(format!("not a PKCS#8 P-256 key: {e}")))?;
        let public = signing
            .verifying_key()
            .to_public_key_der()
            .map_err(|e| err(e.to_string()))?;
        let public_pem = signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| err(e.to_string()))?;
        let kid = hex(&Sha256::digest(public.as_bytes())[..12]);
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[service]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY;
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        Ok(Tokens {
            encoding: EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| err(e.to_string()))?,
            decoding: DecodingKey::from_ec_pem(public_pem.as_bytes())
                .map_err(|e| err(e.to_string()))?,
            kid,
            service: service.to_string(),
            lifetime,
            validation,
            cache: RwLock::new(HashMap::new()),
        })
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// Signs a token for `who` with `access`.
    pub fn issue(
        &self,
        who: &Principal,
        access: Vec<ResourceActions>,
    ) -> Result<String, TokenError> {
        let now = now();
        let claims = Claims {
            iss: ISSUER.to_string(),
            sub: who.name().to_string(),
            aud: self.service.clone(),
            exp: now + self.lifetime.as_secs(),
            nbf: now,
            iat: now,
            jti: crate::password::new_secret(),
            access,
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, &claims, &self.encoding)?)
    }

    /// Checks `token`'s signature, issuer, audience and times, from the cache when it
    /// was checked before.
    pub fn verify(&self, token: &str) -> Result<Arc<Claims>, TokenError> {
        let now = now();
        if let Ok(cache) = self.cache.read() {
            if let Some(c) = cache.get(token) {
                if c.exp + LEEWAY > now {
                    return Ok(c.clone());
                }
            }
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)?;
        let claims = Arc::new(data.claims);
        if let Ok(mut cache) = self.cache.write() {
            if cache.len() >= CACHE_CAPACITY {
                cache.retain(|_, c| c.exp + LEEWAY > now);
                if cache.len() >= CACHE_CAPACITY {
                    cache.clear();
                }
            }
            cache.insert(token.to_string(), claims.clone());
        }
        Ok(claims)
    }
}

/// Writes a new key with mode 0600 (temporary file, fsync, rename) and returns its PEM.
/// A new P-256 signing key, PKCS#8 PEM.
pub fn new_key_pem() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    let key = loop {
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
        if let Ok(k) = SigningKey::from_slice(&bytes) {
            break k;
        }
    };
    Ok(key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(std::io::Error::other)?
        .to_string())
}

fn create_key(path: &Path) -> std::io::Result<String> {
    let pem = new_key_pem()?;
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(pem.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    Ok(pem)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::tests::account;
    use crate::directory::{AccountKind, Visibility};

    fn tokens(dir: &Path) -> Tokens {
        Tokens::load_or_create(
            &dir.join("auth/token.key"),
            "berth-test",
            Duration::from_secs(300),
        )
        .unwrap()
    }

    fn scope(s: &str) -> ResourceActions {
        ResourceActions::parse_scope(s).unwrap()
    }

    #[test]
    fn key_is_created_private_and_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tokens(tmp.path());
        let mode = fs::metadata(tmp.path().join("auth/token.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let t = a
            .issue(&Principal::Account("alice".into()), vec![])
            .unwrap();
        // A second load (a restart) reads the same key and accepts the token.
        let b = tokens(tmp.path());
        assert_eq!(b.verify(&t).unwrap().sub, "alice");
    }

    #[test]
    fn tampered_foreign_and_expired_tokens_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tokens(tmp.path());
        let good = t
            .issue(
                &Principal::Account("alice".into()),
                vec![scope("repository:a/b:pull")],
            )
            .unwrap();
        assert!(t.verify(&good).unwrap().allows("a/b", Action::Pull));
        assert!(!t.verify(&good).unwrap().allows("a/b", Action::Push));
        assert!(!t.verify(&good).unwrap().allows("a/c", Action::Pull));

        // Change the payload, keep the signature.
        let parts: Vec<&str> = good.split('.').collect();
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut claims: serde_json::Value =
            serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
        claims["access"][0]["actions"] = serde_json::json!(["pull", "push"]);
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            b64.encode(serde_json::to_vec(&claims).unwrap()),
            parts[2]
        );
        assert!(t.verify(&forged).is_err());

        // Signed by another key.
        let other = tokens(tempfile::tempdir().unwrap().path());
        let foreign = other
            .issue(&Principal::Account("alice".into()), vec![])
            .unwrap();
        assert!(t.verify(&foreign).is_err());

        // Expired long ago.
        let old = Claims {
            iss: ISSUER.into(),
            sub: "alice".into(),
            aud: "berth-test".into(),
            exp: 1000,
            nbf: 0,
            iat: 0,
            jti: "x".into(),
            access: vec![],
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(t.kid.clone());
        let expired = jsonwebtoken::encode(&header, &old, &t.encoding).unwrap();
        assert!(t.verify(&expired).is_err());

        // Wrong audience.
        let mut aud = old.clone();
        aud.exp = now() + 100;
        aud.aud = "another-registry".into();
        let wrong = jsonwebtoken::encode(&header, &aud, &t.encoding).unwrap();
        assert!(t.verify(&wrong).is_err());

        for garbage in ["", "a.b.c", "Bearer", &"x".repeat(10_000)] {
            assert!(t.verify(garbage).is_err());
        }
    }

    #[test]
    fn scopes_parse() {
        let s = scope("repository:myorg/app:pull,push");
        assert_eq!(s.kind, "repository");
        assert_eq!(s.name, "myorg/app");
        assert_eq!(s.actions, ["pull", "push"]);
        assert_eq!(scope("registry:catalog:*").actions, ["*"]);
        assert_eq!(
            scope("repository:localhost:5000/a:pull").name,
            "localhost:5000/a"
        );
        assert!(ResourceActions::parse_scope("repository").is_err());
        assert!(ResourceActions::parse_scope(":a:pull").is_err());
    }

    #[test]
    fn grants_are_the_intersection_of_request_and_rights() {
        let mut d = Directory::default();
        d.accounts
            .insert("alice".into(), account(AccountKind::User));
        d.visibility.insert("pub/app".into(), Visibility::Public);
        let alice = Principal::Account("alice".into());
        let got = grant(
            &d,
            &alice,
            &[
                scope("repository:alice/app:pull,push"),
                scope("repository:pub/app:pull,push"),
                scope("repository:bob/app:pull"),
                scope("registry:catalog:*"),
                scope("repository:alice/app:delete"),
            ],
        );
        assert_eq!(
            got,
            vec![
                ResourceActions {
                    kind: "repository".into(),
                    name: "alice/app".into(),
                    actions: vec!["pull".into(), "push".into(), "delete".into()]
                },
                ResourceActions {
                    kind: "repository".into(),
                    name: "pub/app".into(),
                    actions: vec!["pull".into()]
                },
                ResourceActions {
                    kind: "registry".into(),
                    name: "catalog".into(),
                    actions: vec!["*".into()]
                },
            ]
        );
        assert!(grant(
            &d,
            &Principal::Anonymous,
            &[scope("repository:alice/app:pull")]
        )
        .is_empty());
    }
}
