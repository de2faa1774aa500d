//! The web pages of `berth serve` (unless `--ui off`): search, repositories, images,
//! sign-in. This module is the HTTP side: routes, who is looking (a session cookie),
//! CSRF checks, and fetching through the same functions the catalog API uses, with
//! the same access rules; `berth_web` renders.
//!
//! - `/` search; `/repository/NAME` a repository; `/repository/NAME/manifest/DIGEST`
//!   and `/repository/NAME?tag=TAG` an image; `…/manifest/DIGEST/sbom` its SBOM
//!   (`pages`).
//! - `/signin` (GET the form, POST it), `/signout` (POST) (`signin`).
//! - `/static/berth.css`, `/static/berth.js` (embedded).
//!
//! A visitor is anonymous or the account of a live session; either way a
//! repository it may not read is a 404 page exactly like one that does not exist,
//! and search shows (and counts) only what it may read. Every answer carries a
//! Content-Security-Policy that allows nothing inline and nothing from elsewhere.

mod csrf;
mod pages;
mod session;
mod signin;

use std::sync::Arc;

use axum::extract::{Path, Request};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use berth_auth::Principal;
use berth_web::Chrome;

pub(crate) use session::Sessions;

use crate::access::Caller;
use crate::error::ApiError;
use crate::metrics::RouteLabel;
use crate::Registry;

const CSP: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// The pages' routes, merged into the registry's router when the UI is on.
pub(crate) fn routes() -> Router<Arc<Registry>> {
    Router::new()
        .route("/", get(pages::search))
        .route("/signin", get(signin::form).post(signin::submit))
        .route("/signout", post(signin::signout))
        .route("/repository/{*path}", get(pages::repository))
        .route("/static/{file}", get(asset))
}

/// Who is looking at a page, decided once per request.
pub(crate) struct Visitor {
    pub caller: Caller,
    /// The live session and its cookie value, when signed in.
    pub session: Option<(String, session::Session)>,
    /// This page's path and query (where sign-in comes back to).
    pub here: String,
}

impl Visitor {
    /// The session named by the request's cookie, if live; else anonymous. A
    /// session's account is checked against the directory on every request, as
    /// Basic credentials are: a revoked grant counts at once.
    pub(crate) fn of(reg: &Registry, req: &Request) -> Result<Visitor, ApiError> {
        let mut session = csrf::cookie(req.headers(), csrf::SESSION_COOKIE)
            .and_then(|id| reg.ui.get(id).map(|s| (id.to_string(), s)));
        if let Some((id, s)) = &session {
            // The password changed, or the account is gone (or made again): over. The
            // snapshot may be a moment behind the database (a hash upgraded at this
            // session's sign-in): a difference is read again from the database.
            let (dir, _) = reg.auth.directory().map_err(ApiError::from)?;
            let same = |stamp: Option<String>| stamp.as_deref() == Some(s.stamp.as_str());
            if !same(session::stamp(&dir, &s.user))
                && !same(session::fresh_stamp(reg.auth.store(), &s.user).map_err(ApiError::from)?)
            {
                reg.ui.end(id);
                session = None;
            }
        }
        let principal = match &session {
            Some((_, s)) => Principal::Account(s.user.clone()),
            None => Principal::Anonymous,
        };
        Ok(Visitor {
            caller: Caller::of(reg, principal)?,
            session,
            here: req
                .uri()
                .path_and_query()
                .map_or("/".into(), |p| p.as_str().to_string()),
        })
    }

    pub(crate) fn chrome(&self) -> Chrome {
        Chrome {
            user: self.session.as_ref().map(|(_, s)| s.user.clone()),
            csrf: self.session.as_ref().map(|(_, s)| s.csrf.clone()),
            here: self.here.clone(),
        }
    }
}

/// Headers every answer of the pages carries.
fn harden(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// An HTML page. Pages show what this visitor may read: never cached by others.
pub(crate) fn html(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    finish(resp)
}

/// The security headers and the metrics label on any answer of the pages.
pub(crate) fn finish(mut resp: Response) -> Response {
    harden(resp.headers_mut());
    resp.extensions_mut().insert(RouteLabel("ui"));
    resp
}

/// The 404 page: the same whether the thing is missing or hidden from this visitor.
pub(crate) fn not_found(v: &Visitor) -> Response {
    html(StatusCode::NOT_FOUND, berth_web::not_found(&v.chrome()))
}

/// A failure of ours, as a page (details in the log, as `ApiError::internal` does).
pub(crate) fn failure(v: &Visitor, e: ApiError) -> Response {
    let status = e.status;
    html(
        status,
        berth_web::error_page(
            &v.chrome(),
            "Something went wrong",
            "The registry could not answer this page; its log says why.",
        ),
    )
}

/// `/static/FILE`: the embedded stylesheet and script. They change only with the
/// binary, so browsers may keep them a day without asking.
async fn asset(Path(file): Path<String>) -> Response {
    let Some((content_type, body)) = berth_web::assets::get(&file) else {
        return finish(StatusCode::NOT_FOUND.into_response());
    };
    finish(
        (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, "public, max-age=86400"),
            ],
            body,
        )
            .into_response(),
    )
}

/// The registry as clients reach it, for pull commands: the `Host` header when it
/// is a plain host[:port].
pub(crate) fn host(headers: &HeaderMap) -> String {
    crate::access::host(headers).to_string()
}
