//! `/signin` and `/signout`. The password is checked by the function `/token` uses
//! (`access::login`: the same accounts, the same per-account and per-address
//! lockouts, one argon2 check per core), after `/token`'s per-address request rate;
//! a wrong password and an unknown user get the same answer.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_auth::Principal;
use berth_web::SigninForm;

use super::csrf::{self, CSRF_COOKIE, SESSION_COOKIE};
use super::session::{self, is_token, token};
use super::{failure, finish, html, Visitor};
use crate::access::{login, peer};
use crate::error::{ApiError, Code};
use crate::routes::{query_get, query_pairs};
use crate::Registry;

/// Largest sign-in or sign-out form accepted.
const MAX_FORM: usize = 16 * 1024;
/// What a wrong password and an unknown user both get.
const WRONG: &str = "Wrong user name or password";
const EXPIRED: &str = "This form has expired (or came from another site). Please submit it again.";

/// The form page with its double-submit token (also set as the `berth_csrf` cookie).
fn form_page(
    reg: &Registry,
    v: &Visitor,
    status: StatusCode,
    csrf_token: String,
    next: &str,
    username: &str,
    error: Option<String>,
) -> Response {
    let form = SigninForm {
        csrf: csrf_token,
        next: csrf::local_path(next).to_string(),
        username: username.to_string(),
        error,
    };
    // The header's sign-in link leads to the same place as this form.
    let chrome = berth_web::Chrome {
        here: form.next.clone(),
        ..v.chrome()
    };
    let mut resp = html(status, berth_web::signin(&chrome, &form));
    resp.headers_mut().append(
        header::SET_COOKIE,
        csrf::set_cookie(CSRF_COOKIE, &form.csrf, reg.config().tls, false),
    );
    resp
}

/// `GET /signin?next=PATH`.
pub(crate) async fn form(State(reg): State<Arc<Registry>>, req: Request) -> Response {
    let v = match Visitor::of(&reg, &req) {
        Ok(v) => v,
        Err(e) => return finish(e.into_response()),
    };
    let q = query_pairs(req.uri().query());
    // The cookie's token is kept while it has the right shape, so two open tabs
    // both work.
    let t = csrf::cookie(req.headers(), CSRF_COOKIE)
        .filter(|c| is_token(c))
        .map_or_else(token, String::from);
    let next = query_get(&q, "next").unwrap_or("/");
    form_page(&reg, &v, StatusCode::OK, t, next, "", None)
}

/// The form's fields, percent-decoded; none when the body is too large.
async fn fields(body: Body) -> Option<Vec<(String, String)>> {
    let bytes = axum::body::to_bytes(body, MAX_FORM).await.ok()?;
    Some(form_urlencoded::parse(&bytes).into_owned().collect())
}

/// `POST /signin`: CSRF, then the password; a session and `303` to `next`.
pub(crate) async fn submit(State(reg): State<Arc<Registry>>, req: Request) -> Response {
    let v = match Visitor::of(&reg, &req) {
        Ok(v) => v,
        Err(e) => return finish(e.into_response()),
    };
    let from = peer(req.extensions());
    let cookie = csrf::cookie(req.headers(), CSRF_COOKIE)
        .unwrap_or("")
        .to_string();
    let old_session = csrf::cookie(req.headers(), SESSION_COOKIE).map(String::from);
    let Some(form) = fields(req.into_body()).await else {
        return form_page(
            &reg,
            &v,
            StatusCode::PAYLOAD_TOO_LARGE,
            token(),
            "/",
            "",
            Some("The form is too large.".into()),
        );
    };
    let field = |k: &str| query_get(&form, k).unwrap_or("");
    let (user, password, next) = (field("username"), field("password"), field("next"));
    if !is_token(&cookie) || !csrf::matches(&cookie, field("csrf")) {
        return form_page(
            &reg,
            &v,
            StatusCode::FORBIDDEN,
            token(),
            next,
            user,
            Some(EXPIRED.into()),
        );
    }
    if let Err(wait) = reg
        .auth
        .limits()
        .token_request(&from, std::time::Instant::now())
    {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        return too_many(&reg, &v, cookie, next, user, secs);
    }
    // A wrong password and an unknown user get the same page.
    let wrong = |cookie| {
        form_page(
            &reg,
            &v,
            StatusCode::UNAUTHORIZED,
            cookie,
            next,
            user,
            Some(WRONG.into()),
        )
    };
    match login(&reg, user, password, &from).await {
        Ok(Principal::Account(name)) => {
            if let Some(old) = old_session {
                reg.ui.end(&old);
            }
            // Read from the database after the login, which may have replaced an
            // imported bcrypt hash that the directory's snapshot still holds.
            let stamp = match session::fresh_stamp(reg.auth.store(), &name) {
                Ok(stamp) => stamp,
                Err(e) => return failure(&v, ApiError::from(e)),
            };
            let Some(stamp) = stamp else {
                return wrong(cookie);
            };
            let (id, _) = reg.ui.create(&name, &stamp);
            tracing::info!(target: "berth::audit", user = %name, from = %from, "signed in to the web pages");
            let mut resp = StatusCode::SEE_OTHER.into_response();
            let h = resp.headers_mut();
            h.insert(
                header::LOCATION,
                HeaderValue::from_str(csrf::local_path(next))
                    .unwrap_or_else(|_| HeaderValue::from_static("/")),
            );
            h.append(
                header::SET_COOKIE,
                csrf::set_cookie(SESSION_COOKIE, &id, reg.config().tls, false),
            );
            finish(resp)
        }
        Ok(Principal::Anonymous) => wrong(cookie),
        Err(e) if e.code == Code::TooManyRequests => {
            let secs = e
                .headers
                .iter()
                .find(|(k, _)| k == header::RETRY_AFTER)
                .and_then(|(_, v)| v.to_str().ok()?.parse().ok())
                .unwrap_or(60);
            too_many(&reg, &v, cookie, next, user, secs)
        }
        Err(e) if e.code == Code::Unauthorized => wrong(cookie),
        Err(e) => failure(&v, e),
    }
}

/// `429` with the form, saying when to try again.
fn too_many(
    reg: &Registry,
    v: &Visitor,
    cookie: String,
    next: &str,
    user: &str,
    secs: u64,
) -> Response {
    let msg = format!(
        "Too many failed sign-ins. Try again in {secs} second{}.",
        if secs == 1 { "" } else { "s" }
    );
    let mut resp = form_page(
        reg,
        v,
        StatusCode::TOO_MANY_REQUESTS,
        cookie,
        next,
        user,
        Some(msg),
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    resp
}

/// `POST /signout`: ends the session (its CSRF token must come with the form).
pub(crate) async fn signout(State(reg): State<Arc<Registry>>, req: Request) -> Response {
    let v = match Visitor::of(&reg, &req) {
        Ok(v) => v,
        Err(e) => return finish(e.into_response()),
    };
    let form = fields(req.into_body()).await.unwrap_or_default();
    let submitted = query_get(&form, "csrf").unwrap_or("");
    let Some((id, session)) = &v.session else {
        return html(
            StatusCode::FORBIDDEN,
            berth_web::error_page(&v.chrome(), "Form expired", EXPIRED),
        );
    };
    if !csrf::matches(&session.csrf, submitted) {
        return html(
            StatusCode::FORBIDDEN,
            berth_web::error_page(&v.chrome(), "Form expired", EXPIRED),
        );
    }
    reg.ui.end(id);
    let mut resp = StatusCode::SEE_OTHER.into_response();
    resp.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/"));
    resp.headers_mut().append(
        header::SET_COOKIE,
        csrf::set_cookie(SESSION_COOKIE, "", reg.config().tls, true),
    );
    finish(resp)
}
