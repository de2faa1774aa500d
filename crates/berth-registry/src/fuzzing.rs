//! Entry points for the fuzz targets in `fuzz/` (not an API: hidden from the docs).
//! The header parsers are private to their handlers; these call them as they are,
//! so that a fuzz target checks the code that runs, not a copy.

use axum::http::HeaderMap;

/// `Content-Range` of a chunk upload: `Some((start, end))`, or the 416 the client gets.
pub fn content_range(headers: &HeaderMap) -> Result<Option<(u64, u64)>, crate::ApiError> {
    crate::uploads::content_range(headers)
}

/// `Range` of a blob GET against a blob of `size` bytes: `(start, length)`.
pub fn range(value: &str, size: u64) -> Option<(u64, u64)> {
    crate::blobs::parse_range(value, size)
}

/// `Authorization`: `Ok(None)` without one, the user name of Basic credentials, or the
/// token of Bearer ones.
pub fn authorization(headers: &HeaderMap) -> Result<Option<String>, crate::ApiError> {
    use crate::access::Credentials;
    Ok(match crate::access::credentials(headers)? {
        Credentials::None => None,
        Credentials::Basic(user, _) => Some(user),
        Credentials::Bearer(token) => Some(token.to_string()),
    })
}

/// Whether a `/v2/…` path (after `/v2/`) names an endpoint.
pub fn route(rest: &str) -> bool {
    crate::routes::Endpoint::parse(rest).is_some()
}
