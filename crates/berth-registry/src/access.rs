//! Access control on the wire: who is calling (anonymous, Basic credentials, or a
//! bearer token), whether that caller may do what the request needs, and the answers
//! the Docker token flow expects when not (`401` with a `WWW-Authenticate: Bearer`
//! challenge naming the scope, or `403 DENIED`).
//!
//! A bearer token carries its grants; checking it is a cached signature check. Basic
//! credentials are checked against the directory snapshot (password checks cached).
//! While access control does not apply (no users, `--auth auto`), every request passes
//! and credentials are ignored, as docker-registry does without an `auth` section.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use base64::Engine;
use berth_auth::{Action, Claims, Directory, Level, Lockout, Principal, ResourceActions};

use crate::error::{ApiError, ApiResult, Code};
use crate::Registry;

/// Credentials longer than this are refused without being decoded.
const MAX_AUTHORIZATION: usize = 16 * 1024;

/// What a caller may do, decided once per request.
pub(crate) struct Caller {
    pub principal: Principal,
    grants: Grants,
    dir: Arc<Directory>,
    /// Whether access control applies at all.
    pub enforced: bool,
}

enum Grants {
    /// The token's `access` claim, and nothing else.
    Token(Arc<Claims>),
    /// Anonymous or Basic: the directory's rules for the principal.
    Directory,
}

impl Caller {
    /// Whether the caller may do `action` on `repo`.
    pub fn may(&self, repo: &str, action: Action) -> bool {
        if !self.enforced {
            return true;
        }
        match &self.grants {
            // The token says what was granted when it was issued; the directory says
            // what still is (a revoked grant, a deleted account or a repository made
            // private ends a token's access at once, not when it expires).
            Grants::Token(claims) => {
                claims.allows(repo, action)
                    && self
                        .dir
                        .level(&self.principal, repo)
                        .is_some_and(|l| l >= action.level())
            }
            Grants::Directory => self.level(repo).is_some_and(|l| l >= action.level()),
        }
    }

    /// A caller known by other means than this request's credentials (a web page's
    /// session, whose password was checked at sign-in): the directory's rules for
    /// `principal`, as for Basic credentials.
    pub fn of(reg: &Registry, principal: Principal) -> ApiResult<Caller> {
        let (dir, enforced) = reg.auth.directory().map_err(ApiError::from)?;
        Ok(Caller {
            principal,
            grants: Grants::Directory,
            dir,
            enforced,
        })
    }

    /// What the directory grants the caller on `repo` right now, whatever its token
    /// says: used for listings, which a token cannot enumerate.
    pub fn level(&self, repo: &str) -> Option<Level> {
        if !self.enforced {
            return Some(Level::Admin);
        }
        self.dir.level(&self.principal, repo)
    }
}

/// The client's address, for the audit log.
pub(crate) fn peer(headers_ext: &axum::http::Extensions) -> String {
    headers_ext
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_string(), |c| c.0.ip().to_string())
}

/// Credentials parsed from an `Authorization` header.
pub(crate) enum Credentials<'a> {
    None,
    Basic(String, String),
    Bearer(&'a str),
}

/// Reads the `Authorization` header. Malformed credentials are an error, not anonymity:
/// a client that meant to log in must learn that it did not.
pub(crate) fn credentials(headers: &HeaderMap) -> ApiResult<Credentials<'_>> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(Credentials::None);
    };
    let bad = |why: &str| unauthorized().detail(why);
    if value.len() > MAX_AUTHORIZATION {
        return Err(bad("Authorization header too long"));
    }
    let value = value
        .to_str()
        .map_err(|_| bad("Authorization header is not text"))?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| bad("Basic credentials are not base64"))?;
        let text =
            String::from_utf8(decoded).map_err(|_| bad("Basic credentials are not UTF-8"))?;
        let (user, password) = text
            .split_once(':')
            .ok_or_else(|| bad("Basic credentials lack a ':'"))?;
        return Ok(Credentials::Basic(user.to_string(), password.to_string()));
    }
    if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        return Ok(Credentials::Bearer(rest));
    }
    Err(bad("unsupported Authorization scheme"))
}

/// Decides who is calling. Bad credentials are `401 UNAUTHORIZED`, logged.
pub(crate) async fn identify(
    reg: &Arc<Registry>,
    headers: &HeaderMap,
    ext: &axum::http::Extensions,
) -> ApiResult<Caller> {
    let (dir, enforced) = reg.auth.directory().map_err(ApiError::from)?;
    let caller = |principal, grants| Caller {
        principal,
        grants,
        dir: dir.clone(),
        enforced,
    };
    if !enforced {
        return Ok(caller(Principal::Anonymous, Grants::Directory));
    }
    match credentials(headers).inspect_err(|e| {
        audit_failure("", &peer(ext), e.detail.as_deref().unwrap_or(""));
    })? {
        Credentials::None => Ok(caller(Principal::Anonymous, Grants::Directory)),
        Credentials::Basic(user, password) => {
            let who = login(reg, &user, &password, &peer(ext)).await?;
            Ok(caller(who, Grants::Directory))
        }
        Credentials::Bearer(token) => match reg.auth.tokens().verify(token) {
            Ok(claims) => Ok(caller(claims.principal(), Grants::Token(claims))),
            Err(e) => {
                audit_failure("", &peer(ext), &e.to_string());
                Err(unauthorized().detail("invalid or expired token"))
            }
        },
    }
}

/// Checks a password off the async threads (argon2 is slow on purpose). A failure
/// waits a little more, which slows guessing without holding a thread.
pub(crate) async fn login(
    reg: &Arc<Registry>,
    user: &str,
    password: &str,
    from: &str,
) -> ApiResult<Principal> {
    let limits = reg.auth.limits();
    let locked = match limits.check_login(user, from, Instant::now()) {
        Err(wait) => Some(wait),
        // A lockout another replica started (or this one, before a restart).
        Ok(()) => {
            let (r, u, f) = (reg.clone(), user.to_string(), from.to_string());
            reg.blocking(move |_| r.auth.store().shared_lockout(&u, &f))
                .await?
                .map(|until| until.saturating_sub(berth_store::unix_now().max(0) as u64))
                .filter(|secs| *secs > 0)
                .map(Duration::from_secs)
        }
    };
    if let Some(wait) = locked {
        audit_failure(user, from, "locked out after repeated failures");
        return Err(too_many_requests(wait, "too many failed logins"));
    }
    let (r, u, p) = (reg.clone(), user.to_string(), password.to_string());
    // A password check costs tens of milliseconds and ~19 MiB (argon2, on purpose): at
    // most one per core at a time, so a flood of logins queues instead of taking every
    // thread and all memory.
    let _turn = password_checks()
        .acquire()
        .await
        .map_err(ApiError::internal)?;
    let who = reg
        .blocking(move |_| {
            let (dir, _) = r.auth.directory().map_err(ApiError::from)?;
            Ok::<_, ApiError>(r.auth.authenticate(&dir, &u, &p))
        })
        .await?;
    match who {
        Some(who) => {
            limits.record_success(user, from);
            Ok(who)
        }
        None => {
            audit_failure(user, from, "wrong password or unknown account");
            let lockouts = limits.record_failure(user, from, Instant::now());
            share_lockouts(reg, &lockouts).await;
            for lockout in lockouts {
                let (what, seconds) = match &lockout {
                    Lockout::Account { name, for_ } => (format!("account {name}"), for_.as_secs()),
                    Lockout::Source { address, for_ } => {
                        (format!("address {address}"), for_.as_secs())
                    }
                    Lockout::Pair {
                        name,
                        address,
                        for_,
                    } => (format!("account {name} from {address}"), for_.as_secs()),
                };
                tracing::warn!(
                    target: "berth::audit",
                    user,
                    from,
                    locked = %what,
                    seconds,
                    "locked out after repeated failed logins"
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            Err(ApiError::new(Code::Unauthorized).detail("invalid username or password"))
        }
    }
}

/// Writes the lockouts this failure started where every replica checks them. A
/// failed write is logged: the lockout still holds here.
async fn share_lockouts(reg: &Arc<Registry>, lockouts: &[Lockout]) {
    if lockouts.is_empty() {
        return;
    }
    let now = berth_store::unix_now().max(0) as u64;
    let rows: Vec<(&'static str, String, u64)> = lockouts
        .iter()
        .map(|l| match l {
            Lockout::Account { name, for_ } => ("account", name.clone(), now + for_.as_secs()),
            Lockout::Source { address, for_ } => ("source", address.clone(), now + for_.as_secs()),
            Lockout::Pair {
                name,
                address,
                for_,
            } => (
                "pair",
                Lockout::pair_name(name, address),
                now + for_.as_secs(),
            ),
        })
        .collect();
    let r = reg.clone();
    let shared = reg
        .blocking(move |_| {
            let rows: Vec<(&str, &str, u64)> =
                rows.iter().map(|(k, n, u)| (*k, n.as_str(), *u)).collect();
            r.auth.store().share_lockouts(&rows)
        })
        .await;
    if let Err(e) = shared {
        tracing::warn!(target: "berth::audit", error = %e, "a lockout could not be shared with other replicas");
    }
}

/// `429 TOOMANYREQUESTS` with `Retry-After` (whole seconds, at least 1).
pub(crate) fn too_many_requests(wait: Duration, why: &str) -> ApiError {
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    ApiError::new(Code::TooManyRequests)
        .detail(format!("{why}; retry in {secs} s"))
        .header(header::RETRY_AFTER, HeaderValue::from(secs))
}

/// The password checks allowed at once: one per core.
fn password_checks() -> &'static tokio::sync::Semaphore {
    static CHECKS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    CHECKS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::sync::Semaphore::new(cores)
    })
}

fn audit_failure(user: &str, from: &str, reason: &str) {
    tracing::warn!(target: "berth::audit", user, from, reason, "authentication failed");
}

fn unauthorized() -> ApiError {
    ApiError::new(Code::Unauthorized)
}

/// Checks that `caller` may do `action` on `repo`; otherwise the answer that tells the
/// client what to do next.
pub(crate) fn require(
    reg: &Registry,
    caller: &Caller,
    headers: &HeaderMap,
    ext: &axum::http::Extensions,
    repo: &str,
    action: Action,
) -> ApiResult<()> {
    if caller.may(repo, action) {
        return Ok(());
    }
    // Ask for pull with push, as docker and podman do, so one token serves both.
    let actions: &[Action] = match action {
        Action::Pull => &[Action::Pull],
        Action::Push => &[Action::Pull, Action::Push],
        Action::Delete => &[Action::Delete],
    };
    let scope = ResourceActions::scope_string(repo, actions);
    let held = caller.level(repo);
    tracing::info!(
        target: "berth::audit",
        user = %caller.principal,
        from = %peer(ext),
        repository = repo,
        action = action.as_str(),
        "access denied"
    );
    match (&caller.principal, &caller.grants) {
        (Principal::Anonymous, _) => Err(unauthorized()
            .detail(format!("{} on {repo} needs a login", action.as_str()))
            .header(
                header::WWW_AUTHENTICATE,
                challenge(reg, headers, Some(&scope), None),
            )),
        // The account may do it, but this token was not issued for it: ask for
        // another token (the token spec's insufficient_scope).
        (Principal::Account(_), Grants::Token(_)) if held.is_some_and(|l| l >= action.level()) => {
            Err(unauthorized()
                .detail(format!("the token does not grant {scope}"))
                .header(
                    header::WWW_AUTHENTICATE,
                    challenge(reg, headers, Some(&scope), Some("insufficient_scope")),
                ))
        }
        (Principal::Account(name), _) => Err(ApiError::new(Code::Denied)
            .status(StatusCode::FORBIDDEN)
            .detail(format!("{name} may not {} {repo}", action.as_str()))),
    }
}

/// `401` for the base endpoint (`GET /v2/`) and the API when nobody logged in.
pub(crate) fn login_required(reg: &Registry, headers: &HeaderMap) -> ApiError {
    unauthorized().header(
        header::WWW_AUTHENTICATE,
        challenge(reg, headers, None, None),
    )
}

/// `Bearer realm="…/token",service="…"[,scope="…"][,error="…"]`.
fn challenge(
    reg: &Registry,
    headers: &HeaderMap,
    scope: Option<&str>,
    error: Option<&str>,
) -> HeaderValue {
    let realm = match &reg.config().token_realm {
        Some(r) => r.clone(),
        None => {
            let scheme = if reg.config().tls { "https" } else { "http" };
            format!("{scheme}://{}/token", host(headers))
        }
    };
    let mut v = format!(
        "Bearer realm=\"{realm}\",service=\"{}\"",
        reg.auth.tokens().service()
    );
    if let Some(s) = scope {
        v.push_str(&format!(",scope=\"{s}\""));
    }
    if let Some(e) = error {
        v.push_str(&format!(",error=\"{e}\""));
    }
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
}

/// The `Host` the client used, if it is a plain host[:port]; the realm must point back
/// at this server as the client reaches it (and the web pages' pull commands name it).
pub(crate) fn host(headers: &HeaderMap) -> &str {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost")
}
