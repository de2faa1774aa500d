//! Errors that say what failed: which image, blob or registry, and why.

use berth_image::Digest;

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The registry does not have it (`404`): the command line exits with 2.
    #[error("{what}: not found")]
    NotFound { what: String },
    #[error("{registry}: authentication required or invalid username/password")]
    Unauthorized { registry: String },
    #[error("{what}: access denied")]
    Denied { what: String },
    #[error("{url}: HTTP {status}{}", detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Status {
        url: String,
        status: u16,
        detail: Option<String>,
    },
    #[error("{url}: {source}")]
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
    /// Whether the thing asked for does not exist (skopeo's exit status 2).
    pub fn is_not_found(&self) -> bool {
        matches!(self, RemoteError::NotFound { .. })
    }
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
