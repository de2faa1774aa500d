//! Errors on the wire: the OCI Distribution Spec's error codes, each with its status.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_store::StoreError;

/// The spec's error codes (plus the Docker API's `SIZE_INVALID` and pagination code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    PaginationNumberInvalid,
    RangeInvalid,
    Unavailable,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BlobUnknown => "BLOB_UNKNOWN",
            Code::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Code::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Code::DigestInvalid => "DIGEST_INVALID",
            Code::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Code::ManifestInvalid => "MANIFEST_INVALID",
            Code::ManifestUnknown => "MANIFEST_UNKNOWN",
            Code::NameInvalid => "NAME_INVALID",
            Code::NameUnknown => "NAME_UNKNOWN",
            Code::SizeInvalid => "SIZE_INVALID",
            Code::Unauthorized => "UNAUTHORIZED",
            Code::Denied => "DENIED",
            Code::Unsupported => "UNSUPPORTED",
            Code::TooManyRequests => "TOOMANYREQUESTS",
            Code::PaginationNumberInvalid => "PAGINATION_NUMBER_INVALID",
            Code::RangeInvalid => "RANGE_INVALID",
            Code::Unavailable => "UNAVAILABLE",
        }
    }

    /// The status a code is answered with unless a handler says otherwise.
    pub fn status(self) -> StatusCode {
        match self {
            Code::BlobUnknown
            | Code::BlobUploadUnknown
            | Code::ManifestUnknown
            | Code::NameUnknown => StatusCode::NOT_FOUND,
            Code::Unauthorized => StatusCode::UNAUTHORIZED,
            Code::Denied => StatusCode::FORBIDDEN,
            Code::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
            Code::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Code::RangeInvalid => StatusCode::RANGE_NOT_SATISFIABLE,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn message(self) -> &'static str {
        match self {
            Code::BlobUnknown => "blob unknown to registry",
            Code::BlobUploadInvalid => "blob upload invalid",
            Code::BlobUploadUnknown => "blob upload unknown to registry",
            Code::DigestInvalid => "provided digest did not match uploaded content",
            Code::ManifestBlobUnknown => "manifest references a blob unknown to the repository",
            Code::ManifestInvalid => "manifest invalid",
            Code::ManifestUnknown => "manifest unknown",
            Code::NameInvalid => "invalid repository name",
            Code::NameUnknown => "repository name not known to registry",
            Code::SizeInvalid => "provided length did not match content length",
            Code::Unauthorized => "authentication required",
            Code::Denied => "requested access to the resource is denied",
            Code::Unsupported => "the operation is unsupported",
            Code::TooManyRequests => "too many requests",
            Code::PaginationNumberInvalid => "invalid number of results requested",
            Code::RangeInvalid => "invalid content range",
            Code::Unavailable => "service unavailable",
        }
    }
}

/// An error answer: a code, a status, and a detail for the client's user.
#[derive(Debug)]
pub struct ApiError {
    pub code: Code,
    pub status: StatusCode,
    pub detail: Option<String>,
    /// The `message`, when the code's generic one would not tell the user why (clients
    /// show the code and message, not the detail: `denied: <message>`).
    pub message: Option<String>,
    /// Extra headers (e.g. `Content-Range` on a 416).
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(code: Code) -> ApiError {
        ApiError {
            code,
            status: code.status(),
            detail: None,
            message: None,
            headers: Vec::new(),
        }
    }

    pub fn detail(mut self, detail: impl ToString) -> ApiError {
        self.detail = Some(detail.to_string());
        self
    }

    pub fn message(mut self, message: impl ToString) -> ApiError {
        self.message = Some(message.to_string());
        self
    }

    pub fn status(mut self, status: StatusCode) -> ApiError {
        self.status = status;
        self
    }

    pub fn header(mut self, name: header::HeaderName, value: HeaderValue) -> ApiError {
        self.headers.push((name, value));
        self
    }

    /// A failure of the server itself: logged in full, reported without internals.
    pub fn internal(err: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %err, "internal error");
        ApiError::new(Code::Unavailable)
            .status(StatusCode::INTERNAL_SERVER_ERROR)
            .detail("internal error; see the registry's log")
    }
}

/// `CODE: message (detail)`, for logs and for callers that keep errors as text.
impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code.as_str())?;
        if let Some(m) = &self.message {
            write!(f, ": {m}")?;
        }
        if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

impl From<berth_auth::StoreError> for ApiError {
    /// The access-control directory could not be read: unreachable (PostgreSQL
    /// restarting) is the client's to retry, anything else is ours.
    fn from(e: berth_auth::StoreError) -> ApiError {
        if e.is_unreachable() {
            tracing::error!(error = %e, "access-control database unreachable");
            return ApiError::new(Code::Unavailable)
                .message("the registry's metadata database is unreachable")
                .detail("retry in a moment");
        }
        ApiError::internal(e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        // A full or read-only disk is the operator's to fix and the client's to retry:
        // said as such (507 / 503), not as an internal error. Nothing was committed.
        if e.is_storage_full() {
            tracing::error!(error = %e, "storage full");
            return ApiError::new(Code::Unavailable)
                .status(StatusCode::INSUFFICIENT_STORAGE)
                .message("the registry's storage is full")
                .detail("nothing was stored; retry once the registry has space again");
        }
        if e.is_read_only() {
            tracing::error!(error = %e, "storage read-only");
            return ApiError::new(Code::Unavailable)
                .status(StatusCode::SERVICE_UNAVAILABLE)
                .message("the registry's storage is read-only")
                .detail("nothing was stored; retry once the registry can write again");
        }
        if let StoreError::Object { .. } = e {
            tracing::error!(error = %e, "object storage failed");
            return ApiError::new(Code::Unavailable)
                .message("the registry's object storage is unavailable")
                .detail("retry in a moment");
        }
        if e.is_unreachable() {
            tracing::error!(error = %e, "metadata database unreachable");
            return ApiError::new(Code::Unavailable)
                .message("the registry's metadata database is unreachable")
                .detail("nothing was stored; retry in a moment");
        }
        match e {
            StoreError::MissingBlob(d) => ApiError::new(Code::ManifestBlobUnknown).detail(d),
            StoreError::MissingManifest(d) => ApiError::new(Code::ManifestUnknown)
                .status(StatusCode::BAD_REQUEST)
                .detail(format!("child manifest {d} is not in this repository")),
            StoreError::DigestMismatch { expected, actual } => ApiError::new(Code::DigestInvalid)
                .detail(format!("content digest is {actual}, expected {expected}")),
            StoreError::SizeMismatch { expected, actual } => ApiError::new(Code::SizeInvalid)
                .detail(format!("content is {actual} bytes, expected {expected}")),
            // The collector removed the file as the link was made: retryable.
            e @ StoreError::BlobVanished(_) => ApiError::new(Code::Unavailable).detail(e),
            // What a chunk at a stale offset gets: the client asks where the session
            // is and goes on from there (or starts the blob again).
            e @ StoreError::UploadChanged(_) => ApiError::new(Code::BlobUploadInvalid)
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .detail(e),
            e @ (StoreError::TagImmutable(_)
            | StoreError::ChildOfImmutable { .. }
            | StoreError::BlobOfImmutable { .. }
            | StoreError::QuotaExceeded { .. }) => ApiError::new(Code::Denied).message(e),
            other => ApiError::internal(other),
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> ApiError {
        ApiError::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "errors": [{
                "code": self.code.as_str(),
                "message": self.message.as_deref().unwrap_or(self.code.message()),
                "detail": self.detail,
            }]
        });
        let mut resp = (self.status, axum::Json(body)).into_response();
        for (k, v) in self.headers {
            resp.headers_mut().insert(k, v);
        }
        resp
    }
}

pub type ApiResult<T = Response> = Result<T, ApiError>;

/// An error and its causes on one line, `a: b: c`, for logs and details naming what
/// failed elsewhere (an upstream, a replication target). A cause whose text is already
/// there (an error that prints its source itself) is not repeated; a transport error
/// names only the URL, its causes say why.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !text.contains(&s) {
            text = format!("{text}: {s}");
        }
        cause = c.source();
    }
    text
}
