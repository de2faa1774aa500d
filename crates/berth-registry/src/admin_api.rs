//! `/api/v1/`: administration over HTTP, for `berth registry --url …` and for scripts.
//! The routes and the rules live in `berth_auth` (`api` and `admin`); this module
//! authenticates the caller (Basic credentials only: an access token is for content,
//! and must not be enough to change who may see it) and answers in JSON.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_auth::api::{self, ApiParseError, Call};
use berth_auth::{Actor, AdminError, Level, Principal};
use serde_json::{json, Value};

use crate::access::{self, credentials, Credentials};
use crate::metrics::RouteLabel;
use crate::routes::query_pairs;
use crate::Registry;

/// Largest request body (an htpasswd import of many users fits).
const MAX_BODY: usize = 4 * 1024 * 1024;
/// Repositories listed at most by one search.
const MAX_LISTED: usize = 1000;

pub(crate) async fn endpoint(State(reg): State<Arc<Registry>>, req: Request) -> Response {
    let mut resp = handle(reg, req).await.unwrap_or_else(|e| e);
    resp.extensions_mut().insert(RouteLabel("api"));
    resp
}

fn error(status: StatusCode, message: impl ToString) -> Response {
    (status, axum::Json(json!({ "error": message.to_string() }))).into_response()
}

async fn handle(reg: Arc<Registry>, req: Request) -> Result<Response, Response> {
    let from = access::peer(req.extensions());
    let (parts, body) = req.into_parts();
    let unauthorized = || {
        let mut r = error(StatusCode::UNAUTHORIZED, "log in with Basic credentials");
        r.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Basic realm=\"berth\""),
        );
        r
    };
    if from_another_site(&parts.method, &parts.uri, &parts.headers) {
        return Err(error(
            StatusCode::FORBIDDEN,
            "a change from another site's page is refused (the API is for clients, not browsers)",
        ));
    }
    let who = match credentials(&parts.headers).map_err(|_| unauthorized())? {
        Credentials::Basic(user, password) => access::login(&reg, &user, &password, &from)
            .await
            .map_err(|e| {
                if e.code == crate::error::Code::TooManyRequests {
                    // A lockout is not a wrong password: said as one, an admin
                    // retries and lengthens it.
                    let wait = e.into_response().headers().get(RETRY_AFTER).cloned();
                    let mut r = error(
                        StatusCode::TOO_MANY_REQUESTS,
                        "too many failed logins from this address or for this account",
                    );
                    if let Some(w) = wait {
                        r.headers_mut().insert(RETRY_AFTER, w);
                    }
                    r
                } else {
                    unauthorized()
                }
            })?,
        _ => return Err(unauthorized()),
    };
    let path = parts.uri.path().strip_prefix("/api/v1/").unwrap_or("");
    if path == "vulndb/import" {
        // Streamed to a file, not buffered: vulnerability data is large.
        return crate::catalog_api::import_vulns(&reg, &who, parts.method.as_str(), body).await;
    }
    let bytes = axum::body::to_bytes(Body::new(body), MAX_BODY)
        .await
        .map_err(|_| error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"))?;
    if path == "gc" {
        return collect_garbage(&reg, &who, parts.method.as_str(), &bytes).await;
    }
    if path.starts_with("catalog/") {
        return crate::catalog_api::admin(&reg, &who, parts.method.as_str(), path, &bytes).await;
    }
    let mut call = api::parse(parts.method.as_str(), path, &bytes).map_err(|e| match e {
        ApiParseError::NotFound => error(StatusCode::NOT_FOUND, e),
        ApiParseError::Invalid(_) => error(StatusCode::BAD_REQUEST, e),
    })?;
    // Query parameters (`?q=` of a search) complete, never override, path and body.
    for (k, v) in query_pairs(parts.uri.query()) {
        call.params.entry(k).or_insert(Value::String(v));
    }
    let actor = Actor {
        principal: who,
        local: false,
        from,
    };
    match call.change() {
        Some(change) => {
            let change = change.map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
            if let berth_auth::Change::OrgCreate { name } = &change {
                refuse_taken_namespace(&reg, &actor, name).await?;
            }
            let r = reg.clone();
            let outcome =
                tokio::task::spawn_blocking(move || r.auth.store().apply(&actor, &change))
                    .await
                    .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))?
                    .map_err(admin_error)?;
            Ok((StatusCode::OK, axum::Json(outcome)).into_response())
        }
        None => query(&reg, &actor.principal, &call).await,
    }
}

/// Whether a change is one a browser sends for another site's page: a form posted
/// cross-site carries the Basic credentials the browser keeps for this one (after a
/// user once typed them at its prompt), so without this any page could, say, found a
/// superuser. Browsers say where a request comes from (`Sec-Fetch-Site`, and `Origin`
/// on every non-GET); command-line clients say neither. Reads are not
/// counted: another site cannot read their answers.
fn from_another_site(method: &Method, uri: &axum::http::Uri, headers: &HeaderMap) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return false;
    }
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    // A browser that says where the request comes from is believed; an older one
    // says it by `Origin` alone, compared with the host asked (HTTP/2 has no `Host`).
    if let Some(site) = text("sec-fetch-site") {
        return !matches!(site, "same-origin" | "none");
    }
    text("origin").is_some_and(|origin| {
        let host = text("host")
            .or_else(|| uri.authority().map(|a| a.as_str()))
            .unwrap_or_default();
        origin
            .split_once("://")
            .is_none_or(|(_, h)| !h.eq_ignore_ascii_case(host))
    })
}

/// `POST /api/v1/gc` (superusers): retention and one garbage collection now,
/// answered with its report. Body (all optional): `{"dry_run": bool, "grace": "1h", "repo": "name",
/// "keep_untagged": bool}`; unset fields take the server's settings.
async fn collect_garbage(
    reg: &Arc<Registry>,
    who: &Principal,
    method: &str,
    body: &[u8],
) -> Result<Response, Response> {
    if method != "POST" {
        return Err(error(StatusCode::METHOD_NOT_ALLOWED, "gc takes POST"));
    }
    let (dir, _) = reg
        .auth
        .directory()
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    if !dir.is_superuser(who) {
        return Err(error(
            StatusCode::FORBIDDEN,
            format!("{who} may not collect garbage (superusers only)"),
        ));
    }
    let req = GcRequest::parse(body).map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
    let mut opts = reg.gc_options();
    if let Some(g) = req.grace {
        opts.grace = g;
    }
    if let Some(r) = req.repo {
        opts.repo = Some(r);
    }
    if let Some(k) = req.keep_untagged {
        opts.keep_untagged = k;
    }
    let dry_run = req.dry_run.unwrap_or(false);
    let report = reg
        .collect_garbage(opts, dry_run)
        .await
        .map_err(|e| e.into_response())?;
    Ok((StatusCode::OK, axum::Json(report.to_json())).into_response())
}

/// The body of `POST /api/v1/gc`, read strictly: a field of the wrong type or one gc
/// does not take is refused (400, naming the field), never ignored. Ignoring them
/// turned `{"dry_run": "true", "repo": "org/app"}` into a real collection of the whole
/// registry. `null` leaves a field unset.
#[derive(Debug, Default, PartialEq)]
struct GcRequest {
    dry_run: Option<bool>,
    grace: Option<std::time::Duration>,
    repo: Option<String>,
    keep_untagged: Option<bool>,
}

impl GcRequest {
    const FIELDS: &'static str = "dry_run, grace, repo, keep_untagged";

    fn parse(body: &[u8]) -> Result<GcRequest, String> {
        let mut req = GcRequest::default();
        if body.is_empty() {
            return Ok(req);
        }
        let fields = match serde_json::from_slice(body).map_err(|e| e.to_string())? {
            Value::Object(fields) => fields,
            Value::Null => return Ok(req),
            _ => return Err(format!("the body must be a JSON object ({})", Self::FIELDS)),
        };
        let boolean = |name: &str, v: &Value| {
            v.as_bool()
                .ok_or_else(|| format!("{name}: true or false, not {v}"))
        };
        for (name, v) in &fields {
            if v.is_null() {
                continue;
            }
            match name.as_str() {
                "dry_run" => req.dry_run = Some(boolean(name, v)?),
                "keep_untagged" => req.keep_untagged = Some(boolean(name, v)?),
                "grace" => {
                    let g = v
                        .as_str()
                        .ok_or_else(|| format!("grace: a duration such as \"1h\", not {v}"))?;
                    let d =
                        humantime::parse_duration(g).map_err(|e| format!("grace {g:?}: {e}"))?;
                    let d =
                        berth_store::gc::check_grace(d).map_err(|e| format!("grace {g:?}: {e}"))?;
                    req.grace = Some(d);
                }
                "repo" => {
                    let r = v
                        .as_str()
                        .ok_or_else(|| format!("repo: a repository name, not {v}"))?;
                    let name: berth_image::RepositoryName =
                        r.parse().map_err(|e| format!("repo {r:?}: {e}"))?;
                    req.repo = Some(name.to_string());
                }
                other => {
                    return Err(format!(
                        "unknown field {other:?}: gc takes {}",
                        Self::FIELDS
                    ))
                }
            }
        }
        Ok(req)
    }
}

/// An organization named like a namespace that already holds repositories would make
/// its founder admin of them: only a superuser may do that.
async fn refuse_taken_namespace(
    reg: &Arc<Registry>,
    actor: &Actor,
    name: &str,
) -> Result<(), Response> {
    let (dir, _) = reg
        .auth
        .directory()
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    // A superuser may; anyone but a user is refused by the directory (403) before
    // anything is looked up, so that the answer tells them nothing.
    if dir.is_superuser(&actor.principal) || !dir.is_user(&actor.principal) {
        return Ok(());
    }
    let (r, ns) = (reg.clone(), name.to_string());
    let taken = tokio::task::spawn_blocking(move || -> Result<bool, berth_store::StoreError> {
        let inside = format!("{ns}/");
        Ok(r.meta.repository_exists(&ns)?
            || r.meta
                .repositories(Some(&inside), 1)?
                .first()
                .is_some_and(|n| n.starts_with(&inside)))
    })
    .await
    .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))?
    .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    if taken {
        return Err(admin_error(AdminError::InUse(name.to_string())));
    }
    Ok(())
}

/// The setting shown for `name` (a namespace: its own; a repository: the one in force),
/// to whoever may read there; else the status and message of the error answer (403,
/// or 400 for a bad name).
fn readable_setting<'d, T>(
    dir: &'d berth_auth::Directory,
    who: &Principal,
    name: &str,
    of_namespace: impl FnOnce(&'d berth_auth::Directory, &str) -> Option<T>,
    for_repository: impl FnOnce(&'d berth_auth::Directory, &str) -> Option<T>,
) -> Result<Option<T>, (StatusCode, String)> {
    let target = berth_auth::names::Target::parse(name)
        .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
    let (may_read, setting) = match &target {
        berth_auth::names::Target::Namespace(ns) => (
            dir.namespace_level(who, ns).is_some(),
            of_namespace(dir, ns),
        ),
        berth_auth::names::Target::Repository(r) => (
            dir.level(who, r.as_str()).is_some(),
            for_repository(dir, r.as_str()),
        ),
    };
    if !may_read {
        return Err((StatusCode::FORBIDDEN, format!("{who} may not see this")));
    }
    Ok(setting)
}

/// `GET /api/v1/usage[?namespace=]`: bytes of distinct blobs and manifests per
/// namespace, with the quota where one is set. A superuser sees every namespace; others the namespaces
/// they administer.
async fn usage(
    reg: &Arc<Registry>,
    dir: &Arc<berth_auth::Directory>,
    who: &Principal,
    namespace: Option<&str>,
) -> Result<Value, Response> {
    if let Some(ns) = namespace {
        berth_auth::names::check_account(ns).map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
        if !dir.is_superuser(who) && dir.namespace_level(who, ns) != Some(Level::Admin) {
            return Err(error(
                StatusCode::FORBIDDEN,
                format!("{who} may not see the usage of {ns}"),
            ));
        }
    }
    let (r, d, w, ns) = (
        reg.clone(),
        dir.clone(),
        who.clone(),
        namespace.map(str::to_owned),
    );
    tokio::task::spawn_blocking(move || {
        crate::policy::usage_json(r.meta.as_ref(), &d, ns.as_deref(), |n| {
            d.is_superuser(&w) || d.namespace_level(&w, n) == Some(Level::Admin)
        })
    })
    .await
    .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))?
    .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))
}

fn admin_error(e: AdminError) -> Response {
    let status = match &e {
        AdminError::Denied(_) => StatusCode::FORBIDDEN,
        AdminError::NotFound(_) => StatusCode::NOT_FOUND,
        AdminError::Exists(_) | AdminError::InUse(_) => StatusCode::CONFLICT,
        AdminError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        AdminError::Name(_)
        | AdminError::Password(_)
        | AdminError::Invalid(_)
        | AdminError::Trust(_)
        | AdminError::Policy(_)
        | AdminError::Replication(_) => StatusCode::BAD_REQUEST,
    };
    error(status, e)
}

/// The read-only calls.
async fn query(reg: &Arc<Registry>, who: &Principal, call: &Call) -> Result<Response, Response> {
    let (dir, _) = reg
        .auth
        .directory()
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    let denied = || error(StatusCode::FORBIDDEN, format!("{who} may not see this"));
    let body = match call.op {
        "whoami" => json!({
            "name": who.name(),
            "superuser": dir.is_superuser(who),
        }),
        "user-list" => {
            if !dir.is_superuser(who) {
                return Err(denied());
            }
            dir.describe_users()
        }
        "audit" => {
            if !dir.is_superuser(who) {
                return Err(denied());
            }
            let limit = call
                .param("limit")
                .and_then(|n| n.parse().ok())
                .unwrap_or(100usize)
                .min(10_000);
            let entries = reg
                .auth
                .store()
                .audit_trail(limit)
                .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))?;
            json!({ "changes": entries })
        }
        "token-list" => {
            // One's own sessions; a superuser's question may name anyone, or no one
            // (everyone's).
            let account = match call.param("account") {
                Some(a) if a == who.name() || dir.is_superuser(who) => Some(a.to_string()),
                Some(_) => return Err(denied()),
                None if dir.is_superuser(who) => None,
                None => Some(who.name().to_string()),
            };
            let tokens = reg
                .auth
                .store()
                .refresh_tokens(account.as_deref())
                .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))?;
            json!({ "tokens": tokens })
        }
        "org-show" => {
            let org = call.param("name").unwrap_or_default();
            if dir.namespace_level(who, org) != Some(Level::Admin) {
                return Err(denied());
            }
            dir.describe_org(org)
                .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("{org} does not exist")))?
        }
        "repository-list" => {
            let q = call.param("q").unwrap_or_default().to_string();
            let (r, d, w) = (reg.clone(), dir.clone(), who.clone());
            let repos = tokio::task::spawn_blocking(move || {
                crate::listing::repositories_where(&r, None, MAX_LISTED, |name| {
                    name.contains(&q) && d.level(&w, name).is_some()
                })
                .map(|listed| listed.names)
            })
            .await
            .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))?
            .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))?;
            let repos: Vec<Value> = repos
                .into_iter()
                .map(|n| json!({ "name": n, "visibility": dir.visibility(&n).as_str() }))
                .collect();
            json!({ "repositories": repos })
        }
        "trust-show" => {
            let name = call.param("name").unwrap_or_default();
            // Keys are public; the setting is shown to whoever may read there.
            let setting = readable_setting(
                &dir,
                who,
                name,
                |d, ns| d.trust_setting(ns),
                |d, r| d.trust_for(r),
            )
            .map_err(|(s, m)| error(s, m))?;
            setting.map(|t| t.describe()).ok_or_else(|| {
                error(
                    StatusCode::NOT_FOUND,
                    format!("no trust setting applies to {name}"),
                )
            })?
        }
        "immutable-show" => {
            let name = call.param("name").unwrap_or_default();
            let setting = readable_setting(
                &dir,
                who,
                name,
                |d, ns| d.immutable_of_namespace(ns),
                |d, r| d.immutable_for(r),
            )
            .map_err(|(s, m)| error(s, m))?;
            let s = setting.ok_or_else(|| {
                error(
                    StatusCode::NOT_FOUND,
                    format!("no immutable-tags setting applies to {name}"),
                )
            })?;
            s.describe()
        }
        "retention-show" => {
            let name = call.param("name").unwrap_or_default();
            let setting = readable_setting(
                &dir,
                who,
                name,
                |d, ns| d.retention_setting(ns),
                |d, r| d.retention_for(r).map(|(rule, _)| rule),
            )
            .map_err(|(s, m)| error(s, m))?;
            let rule = setting.ok_or_else(|| {
                error(
                    StatusCode::NOT_FOUND,
                    format!("no retention setting applies to {name}"),
                )
            })?;
            crate::retention::describe(&dir, name, rule)
        }
        "usage" => usage(reg, &dir, who, call.param("namespace")).await?,
        // Rules hold where content goes and as whom: superusers only.
        "replication-list" | "replication-show" | "replication-run" => {
            if !dir.is_superuser(who) {
                return Err(denied());
            }
            let show = |rule: &berth_auth::ReplicationRule| {
                let mut v = rule.describe();
                v["status"] = json!(reg.replication_status(&rule.name));
                v
            };
            let name = call.param("name").unwrap_or_default();
            let found = dir.replication_rules().iter().find(|r| r.name == name);
            let missing = || error(StatusCode::NOT_FOUND, format!("no replication rule {name}"));
            match call.op {
                "replication-list" => {
                    json!({ "rules": dir.replication_rules().iter().map(|r| show(r)).collect::<Vec<_>>() })
                }
                "replication-show" => show(found.ok_or_else(missing)?),
                _ => {
                    if !reg.replicate_now(name) {
                        return Err(missing());
                    }
                    return Ok(
                        (StatusCode::ACCEPTED, axum::Json(json!({ "started": name })))
                            .into_response(),
                    );
                }
            }
        }
        _ => return Err(error(StatusCode::NOT_FOUND, "no such query")),
    };
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}
