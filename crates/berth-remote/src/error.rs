//! Errors that say what failed: which image, blob or registry, and why.

use berth_image::Digest;

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The registry does not have it (`404`): the command line exits with 2.
    #[error("{what}: not found")]
    NotFound { what: String },
    #[error("{registry}: authentication required or invalid username/password")]
    Unauthorized { registry: String },
    /// `403`, with the registry's own explanation when it gave one (berth's registry
    /// says which limit or rule refused: "… has 32 signatures, the most one manifest
    /// may carry").
    #[error("{what}: access denied{}", reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default())]
    Denied {
        what: String,
        reason: Option<String>,
    },
    #[error("{url}: HTTP {status}{}", detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Status {
        url: String,
        status: u16,
        detail: Option<String>,
    },
    /// A TLS handshake answered with plain HTTP: the registry serves HTTP only.
    /// Worded as Go's net/http (and so podman and skopeo) words it.
    #[error("{url}: http: server gave HTTP response to HTTPS client")]
    PlainHttp { url: String },
    /// The server's certificate was refused: why, in words (`certificate_problem`).
    #[error("{url}: {problem}")]
    Certificate { url: String, problem: String },
    /// The request could not be sent or its answer read. The cause is the error's
    /// source only, not also in its message: `{:#}` prints each cause once (it printed
    /// `error sending request for url (X)` twice when both had it).
    #[error("{url}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{what}: content has digest {actual}, expected {expected}")]
    Digest {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{what}: larger than {limit} bytes")]
    TooLarge { what: String, limit: usize },
    #[error("{0}")]
    Invalid(String),
}

impl RemoteError {
    /// A request to `url` failed with `e`; reqwest's own copy of the URL is left out of
    /// the cause, since the message names it.
    pub(crate) fn transport(url: impl Into<String>, e: reqwest::Error) -> RemoteError {
        RemoteError::Transport {
            url: url.into(),
            source: e.without_url(),
        }
    }

    /// Whether the thing asked for does not exist (skopeo's exit status 2).
    pub fn is_not_found(&self) -> bool {
        matches!(self, RemoteError::NotFound { .. })
    }
}

/// Whether a request failed because the server answered the TLS handshake with
/// something that is not TLS, as an HTTP server does (rustls sees an invalid record
/// type where Go sees the bytes `HTTP/`).
pub(crate) fn answered_without_tls(e: &reqwest::Error) -> bool {
    matches!(
        tls_error(e),
        Some(rustls::Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType
        ))
    )
}

/// Whether a request failed because nothing answered yet: the connection was refused
/// or timed out. Not a name that does not resolve, nor a certificate refused (reqwest
/// calls those connect errors too): asking again changes neither, as containers/common
/// does not retry them.
pub(crate) fn refused_or_timed_out(e: &reqwest::Error) -> bool {
    use std::io::ErrorKind::{ConnectionRefused, ConnectionReset, TimedOut};
    e.is_timeout()
        || causes(e).any(|c| {
            c.downcast_ref::<std::io::Error>().is_some_and(|io| {
                matches!(io.kind(), ConnectionRefused | ConnectionReset | TimedOut)
            })
        })
}

/// The TLS error under a request's failure, if it is one.
fn tls_error(e: &reqwest::Error) -> Option<&rustls::Error> {
    causes(e).find_map(|c| c.downcast_ref::<rustls::Error>())
}

/// A request's failure and its causes, outermost first. An io::Error's `source` skips
/// the error it wraps (the TLS error sits in an io::Error in an io::Error): the walk
/// steps into it instead.
fn causes(e: &reqwest::Error) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
    let first: &(dyn std::error::Error + 'static) = e;
    std::iter::successors(Some(first), |c| {
        match c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => c.source(),
        }
    })
}

/// A refused server certificate in words, as Go's x509 package says them (podman and
/// skopeo show those), with what to do where there is something to do; rustls' own
/// are debug dumps (`invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))`).
pub(crate) fn certificate_problem(e: &reqwest::Error, host: &str) -> Option<String> {
    use rustls::CertificateError as C;
    let rustls::Error::InvalidCertificate(c) = tls_error(e)? else {
        return None;
    };
    let trust = format!(
        "trust it with --cert-dir DIR holding its ca.crt, or /etc/containers/certs.d/{host}/"
    );
    Some(match c {
        C::UnknownIssuer => format!("x509: certificate signed by unknown authority ({trust})"),
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            format!("x509: certificate is not valid for {host}")
        }
        C::Expired | C::ExpiredContext { .. } => "x509: certificate has expired".into(),
        C::NotValidYet | C::NotValidYetContext { .. } => {
            "x509: certificate is not valid yet".into()
        }
        C::Revoked => "x509: certificate has been revoked".into(),
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
            "x509: certificate specifies an incompatible key usage".into()
        }
        C::Other(o) if o.to_string().contains("CaUsedAsEndEntity") => format!(
            "x509: the server's certificate is a CA certificate (CA:TRUE), taken as the \
             server's only when trusted byte for byte ({trust})"
        ),
        other => format!("x509: {other:?}"),
    })
}

/// Why a registry refused, from the first error of its error body: the `detail`
/// string, else a `message` that says more than the code's stock words (berth and
/// Quay put the reason there: "tag v1 of myorg/app is immutable"), as skopeo shows it.
pub(crate) fn registry_detail_text(body: &[u8]) -> Option<String> {
    /// distribution's words for DENIED, and the bare ones: they add nothing.
    const STOCK: [&str; 3] = ["requested access to the resource is denied", "denied", ""];
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let e = v.get("errors")?.get(0)?;
    let said = e.get("detail").and_then(|d| d.as_str()).or_else(|| {
        e.get("message")
            .and_then(|m| m.as_str())
            .filter(|m| !STOCK.contains(&m.trim().to_ascii_lowercase().as_str()))
    })?;
    // Another party's words on our terminal: no control characters, bounded.
    let text: String = said.chars().filter(|c| !c.is_control()).take(512).collect();
    (!text.is_empty()).then_some(text)
}

/// The first error of a registry's `{"errors":[{code,message,detail}]}` body, as text.
pub(crate) fn registry_detail(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let e = v.get("errors")?.get(0)?;
    let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
    let message = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
    let detail = match e.get("detail") {
        Some(serde_json::Value::String(s)) => format!(" ({s})"),
        _ => String::new(),
    };
    Some(
        format!("{code}: {message}{detail}")
            .trim_start_matches(": ")
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_denial_carries_the_registrys_reason_without_control_characters() {
        let body = br#"{"errors":[{"code":"DENIED","message":"denied","detail":"r@d has 32 signatures\u001b[2J"}]}"#;
        let e = RemoteError::Denied {
            what: "r".into(),
            reason: registry_detail_text(body),
        };
        assert_eq!(e.to_string(), "r: access denied (r@d has 32 signatures[2J)");
        // No detail: a message that says why stands in; the stock words do not.
        let body = br#"{"errors":[{"code":"DENIED","message":"tag v1 of a/b is immutable"}]}"#;
        assert_eq!(
            registry_detail_text(body).as_deref(),
            Some("tag v1 of a/b is immutable")
        );
        // No detail (or one that is not a string): the bare words.
        for body in [
            &br#"{"errors":[{"code":"DENIED"}]}"#[..],
            br#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#,
            b"not json",
        ] {
            let e = RemoteError::Denied {
                what: "r".into(),
                reason: registry_detail_text(body),
            };
            assert_eq!(e.to_string(), "r: access denied");
        }
    }
}
