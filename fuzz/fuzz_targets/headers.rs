//! The HTTP header parsers the registry and the client run on what the other side sent:
//! `Content-Range` (chunk uploads), `Range` (blob GETs), `Authorization`,
//! `WWW-Authenticate` (the client reading a registry's challenge), and `/v2/` routing.
#![no_main]
use axum::http::{header, HeaderMap, HeaderValue};
use berth_registry::fuzzing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = HeaderValue::from_bytes(data) {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_RANGE, value.clone());
        if let Ok(Some((start, end))) = fuzzing::content_range(&headers) {
            assert!(start <= end, "Content-Range {start}-{end} accepted");
        }
        headers.insert(header::AUTHORIZATION, value);
        let _ = fuzzing::authorization(&headers);
    }
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    for size in [0, 1, 2, 511, 4096, u64::MAX] {
        if let Some((start, len)) = fuzzing::range(s, size) {
            assert!(len > 0, "an empty range served for {s:?}");
            assert!(
                start.checked_add(len).is_some_and(|end| end <= size),
                "range {start}+{len} of {size} bytes for {s:?}"
            );
        }
    }
    let _ = berth_remote::challenge::parse(s);
    let _ = fuzzing::route(s);
});
