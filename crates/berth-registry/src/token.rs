//! The token endpoint (`/token`), as docker, podman, skopeo and buildah use it:
//!
//! - `GET /token?service=…&scope=…[&scope=…][&offline_token=true]`, with Basic
//!   credentials or none (anonymous), answers `{token, access_token, expires_in,
//!   issued_at[, refresh_token]}`;
//! - `POST /token` with an OAuth2 form: `grant_type=password` (`username`,
//!   `password`, `access_type=offline` for a refresh token) or
//!   `grant_type=refresh_token` (`refresh_token`); `scope` is space-separated.
//!
//! The token grants what was asked *and* allowed; asking for more is not an error.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_auth::{Principal, ResourceActions};
use serde_json::json;

use crate::access::{credentials, login, peer, too_many_requests, Credentials};
use crate::error::{ApiError, ApiResult, Code};
use crate::metrics::RouteLabel;
use crate::routes::{query_get, query_pairs};
use crate::Registry;

/// Largest form accepted on `POST /token`.
const MAX_FORM: usize = 64 * 1024;

pub(crate) async fn endpoint(State(reg): State<Arc<Registry>>, req: Request) -> Response {
    let mut resp = issue(reg, req).await.unwrap_or_else(|e| e.into_response());
    resp.extensions_mut().insert(RouteLabel("token"));
    resp
}

async fn issue(reg: Arc<Registry>, req: Request) -> ApiResult {
    let from = peer(req.extensions());
    if let Err(wait) = reg
        .auth
        .limits()
        .token_request(&from, std::time::Instant::now())
    {
        return Err(too_many_requests(
            wait,
            "too many token requests from this address",
        ));
    }
    let (parts, body) = req.into_parts();
    // (who, requested scopes, whether to hand out a refresh token)
    let (who, scopes, offline) = match parts.method {
        Method::GET => {
            let q = query_pairs(parts.uri.query());
            let scopes: Vec<String> = q
                .iter()
                .filter(|(k, _)| k == "scope")
                .flat_map(|(_, v)| v.split(' ').map(str::to_string))
                .collect();
            let offline = query_get(&q, "offline_token") == Some("true");
            let who = match credentials(&parts.headers)? {
                Credentials::None => Principal::Anonymous,
                Credentials::Basic(user, password) => login(&reg, &user, &password, &from).await?,
                Credentials::Bearer(_) => {
                    return Err(ApiError::new(Code::Unauthorized)
                        .detail("use Basic credentials or a refresh token to get a token"))
                }
            };
            (who, scopes, offline)
        }
        Method::POST => {
            let bytes = axum::body::to_bytes(Body::new(body), MAX_FORM)
                .await
                .map_err(|_| invalid("the form is too large"))?;
            let form: Vec<(String, String)> = form_urlencoded::parse(&bytes).into_owned().collect();
            let field = |k: &str| query_get(&form, k);
            let scopes: Vec<String> = field("scope")
                .map(|s| {
                    s.split(' ')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            match field("grant_type") {
                Some("password") => {
                    let user = field("username").ok_or_else(|| invalid("username is missing"))?;
                    let password =
                        field("password").ok_or_else(|| invalid("password is missing"))?;
                    let who = login(&reg, user, password, &from).await?;
                    (who, scopes, field("access_type") == Some("offline"))
                }
                Some("refresh_token") => {
                    let token = field("refresh_token")
                        .ok_or_else(|| invalid("refresh_token is missing"))?
                        .to_string();
                    let r = reg.clone();
                    let who = reg
                        .blocking(move |_| r.auth.refresh(&token).map_err(ApiError::internal))
                        .await?;
                    let Some(who) = who else {
                        tracing::warn!(target: "berth::audit", from = %from, reason = "unknown or expired refresh token", "authentication failed");
                        return Err(
                            ApiError::new(Code::Unauthorized).detail("invalid refresh token")
                        );
                    };
                    (who, scopes, false)
                }
                _ => return Err(invalid("grant_type must be password or refresh_token")),
            }
        }
        _ => {
            return Err(ApiError::new(Code::Unsupported)
                .detail("use GET or POST")
                .status(StatusCode::METHOD_NOT_ALLOWED))
        }
    };
    let requested: Vec<ResourceActions> = scopes
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| ResourceActions::parse_scope(s))
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(&e.to_string()))?;
    let (dir, _) = reg.auth.directory().map_err(ApiError::from)?;
    let access = berth_auth::token::grant(&dir, &who, &requested);
    let token = reg
        .auth
        .tokens()
        .issue(&who, access)
        .map_err(ApiError::internal)?;
    let lifetime = reg.auth.tokens().lifetime().as_secs();
    let mut body = json!({
        "token": token,
        "access_token": token,
        "expires_in": lifetime,
        "issued_at": humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
    });
    if let (true, Principal::Account(name)) = (offline, &who) {
        let (r, name) = (reg.clone(), name.clone());
        let refresh = reg
            .blocking(move |_| r.auth.new_refresh_token(&name).map_err(ApiError::internal))
            .await?;
        body["refresh_token"] = refresh.into();
    }
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

fn invalid(why: &str) -> ApiError {
    ApiError::new(Code::Unsupported)
        .status(StatusCode::BAD_REQUEST)
        .detail(why)
}
