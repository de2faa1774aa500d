//! Cookies and cross-site request forgery checks.
//!
//! Every POST form carries a `csrf` field: for a signed-in visitor the session's
//! token (bound to the session on the server), for the sign-in form the value of the
//! `berth_csrf` cookie set with the form (double submit: another site can make a
//! browser send the cookie, not read it into a field). All cookies are `HttpOnly`,
//! `SameSite=Strict`, and `Secure` when the registry is served over TLS. Tokens are
//! compared in constant time.

use axum::http::{header, HeaderMap, HeaderValue};
use subtle::ConstantTimeEq;

pub(crate) const SESSION_COOKIE: &str = "berth_session";
pub(crate) const CSRF_COOKIE: &str = "berth_csrf";

/// The value of cookie `name` in the request, if sent once or more (the first).
pub(crate) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// `Set-Cookie` for `name=value` (`value` is one of our hex tokens, or empty with
/// `clear` to remove the cookie).
pub(crate) fn set_cookie(name: &str, value: &str, secure: bool, clear: bool) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if secure {
        c.push_str("; Secure");
    }
    if clear {
        c.push_str("; Max-Age=0");
    }
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Whether a submitted token matches the expected one, in constant time; an empty
/// expected token never matches.
pub(crate) fn matches(expected: &str, submitted: &str) -> bool {
    !expected.is_empty()
        && expected.len() == submitted.len()
        && bool::from(expected.as_bytes().ct_eq(submitted.as_bytes()))
}

/// Where to go after signing in: a local path (one `/` then not `/` or `\`), else `/`.
pub(crate) fn local_path(next: &str) -> &str {
    let b = next.as_bytes();
    let local = b.first() == Some(&b'/')
        && !matches!(b.get(1), Some(b'/' | b'\\'))
        && next.len() <= 2048
        && !next.bytes().any(|c| c.is_ascii_control() || c == b'\\');
    if local {
        next
    } else {
        "/"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_from_every_header() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; berth_csrf=xyz"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("berth_session=s1"));
        assert_eq!(cookie(&h, CSRF_COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("s1"));
        assert_eq!(cookie(&h, "b"), None);
    }

    #[test]
    fn cookie_flags() {
        let c = set_cookie(SESSION_COOKIE, "ab", true, false);
        assert_eq!(
            c,
            "berth_session=ab; Path=/; HttpOnly; SameSite=Strict; Secure"
        );
        let c = set_cookie(SESSION_COOKIE, "", false, true);
        assert_eq!(
            c,
            "berth_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
        );
    }

    #[test]
    fn tokens_must_match_exactly() {
        assert!(matches("abc", "abc"));
        assert!(!matches("abc", "abd"));
        assert!(!matches("abc", "ab"));
        assert!(!matches("", ""));
    }

    #[test]
    fn next_is_a_local_path_or_home() {
        assert_eq!(local_path("/repository/a/b?tag=1"), "/repository/a/b?tag=1");
        for bad in [
            "//evil.example/",
            "/\\evil.example",
            "https://evil.example/",
            "",
            "evil",
            "/a\nb",
            "/a\\b",
        ] {
            assert_eq!(local_path(bad), "/", "{bad:?}");
        }
    }
}
