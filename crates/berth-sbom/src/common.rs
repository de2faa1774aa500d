//! What both formats need: the document's date, its content-derived identity, the
//! image's package-url, and purls made safe to write.

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS, NON_ALPHANUMERIC};
use sha2::{Digest as _, Sha256};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use crate::SbomSubject;

/// The tool that wrote the document, as both formats name it.
pub(crate) const TOOL_NAME: &str = "berth";
pub(crate) const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The document's date: `created` when it is an RFC 3339 time, else now; in UTC,
/// to the second (`2024-05-01T10:20:30Z`), the form SPDX asks for and CycloneDX's
/// `date-time` accepts.
pub(crate) fn timestamp(created: Option<&str>) -> String {
    let t = created
        .and_then(|c| OffsetDateTime::parse(c.trim(), &Rfc3339).ok())
        .unwrap_or_else(OffsetDateTime::now_utc)
        .to_offset(UtcOffset::UTC);
    let t = t.replace_nanosecond(0).unwrap_or(t);
    // Formatting a UTC time of years 0..=9999 cannot fail; a year outside that range
    // (a config's nonsense date) is dated now instead.
    t.format(&Rfc3339).unwrap_or_else(|_| {
        let now = OffsetDateTime::now_utc();
        now.replace_nanosecond(0)
            .unwrap_or(now)
            .format(&Rfc3339)
            .unwrap_or_default()
    })
}

/// A name-based (version 5) UUID of the document's content: the same document has
/// the same identity, a different one (other packages, another date, another berth)
/// a different one. `doc` is the document without the field that will hold it.
pub(crate) fn content_uuid(kind: &str, doc: &serde_json::Value) -> uuid::Uuid {
    // serde_json's maps are ordered, so the bytes are stable for equal documents.
    let bytes = serde_json::to_vec(doc).unwrap_or_default();
    let hash = Sha256::digest(&bytes);
    let name = format!("berth-sbom:{kind}:sha256:{}", hex(&hash));
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, name.as_bytes())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Characters a purl component keeps as they are (the rest is percent-encoded).
const PURL_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'.')
    .remove(b'-')
    .remove(b'_')
    .remove(b'~');
/// As [`PURL_COMPONENT`], keeping `/` (a `repository_url` value).
const PURL_PATH: &AsciiSet = &PURL_COMPONENT.remove(b'/');

/// The image's package-url: `pkg:oci/NAME@DIGEST?repository_url=REPO[&tag=TAG]`,
/// NAME being the repository's last segment, lower-cased as the purl spec asks.
pub(crate) fn image_purl(image: &SbomSubject) -> String {
    let (repo, tag) = split_tag(&image.name);
    let last = repo.rsplit('/').next().unwrap_or(repo).to_lowercase();
    let mut purl = format!(
        "pkg:oci/{}@{}",
        utf8_percent_encode(&last, PURL_COMPONENT),
        utf8_percent_encode(&image.digest, PURL_COMPONENT)
    );
    if !repo.is_empty() {
        purl.push_str("?repository_url=");
        purl.extend(utf8_percent_encode(repo, PURL_PATH));
        if let Some(tag) = tag {
            purl.push_str("&tag=");
            purl.extend(utf8_percent_encode(tag, PURL_COMPONENT));
        }
    }
    purl
}

/// `host:5000/org/app:v1` -> (`host:5000/org/app`, `v1`); a digest (`@…`) is dropped.
fn split_tag(name: &str) -> (&str, Option<&str>) {
    let name = name.split_once('@').map_or(name, |(n, _)| n);
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[slash..].rfind(':') {
        Some(i) => (&name[..slash + i], Some(&name[slash + i + 1..])),
        None => (name, None),
    }
}

/// `s` as one URI path segment run (its `/` kept, anything not unreserved encoded).
pub(crate) fn uri_path(s: &str) -> String {
    utf8_percent_encode(s, PURL_PATH).to_string()
}

/// Bytes a purl never holds raw: controls, space, and non-ASCII.
const PURL_UNSAFE: &AsciiSet = &CONTROLS.add(b' ');

/// `purl` with any space, control or non-ASCII character percent-encoded: both
/// formats want a locator without spaces, and a well-formed purl passes unchanged.
pub(crate) fn clean_purl(purl: &str) -> String {
    utf8_percent_encode(purl, PURL_UNSAFE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(name: &str) -> SbomSubject {
        SbomSubject {
            name: name.into(),
            digest: "sha256:abc".into(),
            created: None,
        }
    }

    #[test]
    fn timestamps_are_utc_seconds() {
        assert_eq!(
            timestamp(Some("2024-01-02T03:04:05.123456789Z")),
            "2024-01-02T03:04:05Z"
        );
        assert_eq!(
            timestamp(Some("2024-01-02T03:04:05+02:00")),
            "2024-01-02T01:04:05Z"
        );
        // Not a date: now, in the same shape.
        let now = timestamp(Some("yesterday"));
        assert_eq!(now.len(), 20, "{now}");
        assert!(now.ends_with('Z'));
    }

    #[test]
    fn image_purls() {
        assert_eq!(
            image_purl(&subject("localhost:5000/Org/App:v1.2")),
            "pkg:oci/app@sha256%3Aabc?repository_url=localhost%3A5000/Org/App&tag=v1.2"
        );
        assert_eq!(
            image_purl(&subject("docker.io/library/debian")),
            "pkg:oci/debian@sha256%3Aabc?repository_url=docker.io/library/debian"
        );
        assert_eq!(image_purl(&subject("")), "pkg:oci/@sha256%3Aabc");
    }

    #[test]
    fn purls_lose_spaces_and_non_ascii() {
        let good = "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12";
        assert_eq!(clean_purl(good), good);
        assert_eq!(
            clean_purl("pkg:apk/alpine/my pkg@1-r0"),
            "pkg:apk/alpine/my%20pkg@1-r0"
        );
        assert_eq!(clean_purl("pkg:deb/debian/é@1"), "pkg:deb/debian/%C3%A9@1");
    }

    #[test]
    fn content_uuids_follow_content() {
        let a = content_uuid("spdx", &serde_json::json!({"a": 1}));
        assert_eq!(a, content_uuid("spdx", &serde_json::json!({"a": 1})));
        assert_ne!(a, content_uuid("spdx", &serde_json::json!({"a": 2})));
        assert_eq!(a.get_version_num(), 5);
    }
}
