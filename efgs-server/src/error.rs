//! The one table that maps efgs-core error kinds to HTTP statuses, and the RFC 9457
//! problem+json envelope every error answer uses.
//!
//! Bodies carry a stable machine `code`, the reference's reason text in `message` (Denmark
//! parses `{"message":"Could not find any batches for given date"}`) and `detail`. 5xx answers
//! carry no internal detail.

use efgs_core::Error;
use efgs_core::gateway::RequestError;
use efgs_core::identity::IdentityErrorKind;
use efgs_core::media::MediaTypeError;
use efgs_core::store::StoreError;
use serde::Serialize;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

/// Seconds a client should wait before retrying after a 503.
pub(crate) const RETRY_AFTER_SECONDS: u32 = 5;

/// How an error is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ErrorAnswer {
    /// HTTP status.
    pub(crate) status: StatusCode,
    /// Stable machine code.
    pub(crate) code: &'static str,
    /// The reference's reason text.
    pub(crate) message: String,
}

/// The status table: one place decides the status of every error kind.
pub(crate) fn answer_for(err: &Error) -> ErrorAnswer {
    use StatusCode as S;
    let (status, code, message): (StatusCode, &'static str, String) = match err {
        Error::Proto(e @ efgs_core::proto::ProtoError::TooManyKeys { .. }) => (
            S::PAYLOAD_TOO_LARGE,
            e.code(),
            "Too many diagnosis keys".to_owned(),
        ),
        Error::Proto(e) => (S::BAD_REQUEST, e.code(), e.to_string()),
        Error::Json(e) => (S::BAD_REQUEST, e.code(), e.to_string()),
        Error::MediaType(e) => {
            let status = match e {
                MediaTypeError::ContentTypeMissing
                | MediaTypeError::UnsupportedContentType { .. } => S::UNSUPPORTED_MEDIA_TYPE,
                MediaTypeError::NotAcceptable { .. }
                | MediaTypeError::ContentTypeVersionIncompatible { .. } => S::NOT_ACCEPTABLE,
                MediaTypeError::ContentTypeVersionMissing
                | MediaTypeError::ContentTypeVersionInvalid { .. } => S::BAD_REQUEST,
                _ => S::UNSUPPORTED_MEDIA_TYPE,
            };
            (status, e.code(), e.to_string())
        }
        Error::Validation(e) => {
            let status = if e.is_too_large() {
                S::PAYLOAD_TOO_LARGE
            } else {
                S::BAD_REQUEST
            };
            (status, e.code(), e.to_string())
        }
        Error::Signature(e) => (S::BAD_REQUEST, e.code(), "Invalid signature".to_owned()),
        Error::Trust(e) => (S::BAD_REQUEST, e.code(), e.to_string()),
        Error::Identity(e) => {
            let (status, message) = match e.kind() {
                IdentityErrorKind::BadRequest => (S::BAD_REQUEST, e.to_string()),
                IdentityErrorKind::Forbidden => (S::FORBIDDEN, e.to_string()),
                _ => (S::FORBIDDEN, String::new()),
            };
            (status, e.code(), message)
        }
        Error::CallbackUrl(e) => (
            S::BAD_REQUEST,
            e.code(),
            "Callback URL is invalid".to_owned(),
        ),
        Error::Tag(e) => (S::NOT_FOUND, e.code(), e.to_string()),
        Error::Download(e) => {
            use efgs_core::download::DownloadError as D;
            let status = match e {
                D::TooOld { .. } => S::GONE,
                D::NoBatchForDate { .. } | D::UnknownBatchTag { .. } => S::NOT_FOUND,
                _ => S::BAD_REQUEST,
            };
            (status, e.code(), e.to_string())
        }
        Error::Audit(e) => {
            use efgs_core::audit::AuditError as A;
            let status = match e {
                A::TooOld { .. } => S::GONE,
                _ => S::NOT_FOUND,
            };
            (status, e.code(), e.to_string())
        }
        Error::Request(e) => {
            let status = match e {
                RequestError::MissingHeader(_) => S::BAD_REQUEST,
                RequestError::KeyConflicts(_) => S::MULTI_STATUS,
                RequestError::BatchTagExists => S::CONFLICT,
                RequestError::UntrustedSigner(_) => S::BAD_REQUEST,
                _ => S::BAD_REQUEST,
            };
            let message = match e {
                RequestError::UntrustedSigner(_) => "Invalid signature".to_owned(),
                other => other.to_string(),
            };
            (status, e.code(), message)
        }
        Error::Store(e) => match e {
            StoreError::Unavailable { .. } => (
                S::SERVICE_UNAVAILABLE,
                e.code(),
                "Service temporarily unavailable, retry later".to_owned(),
            ),
            StoreError::NotFound { .. } => (S::NOT_FOUND, e.code(), e.to_string()),
            StoreError::AlreadyExists { .. } | StoreError::BatchTagExists { .. } => {
                (S::CONFLICT, e.code(), "BatchTag already exists.".to_owned())
            }
            StoreError::DuplicateKeys(_) => (S::MULTI_STATUS, e.code(), e.to_string()),
            _ => (
                S::INTERNAL_SERVER_ERROR,
                e.code(),
                "Internal Server Error.".to_owned(),
            ),
        },
        _ => (
            S::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal Server Error.".to_owned(),
        ),
    };
    ErrorAnswer {
        status,
        code,
        message,
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    type_: &'a str,
    title: &'a str,
    status: u16,
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    instance: Option<&'a str>,
}

/// An RFC 9457 problem+json response.
pub(crate) fn problem(
    status: StatusCode,
    code: &str,
    message: &str,
    detail: Option<&str>,
    instance: Option<&str>,
) -> Response {
    let body = Problem {
        type_: "about:blank",
        title: status.canonical_reason().unwrap_or(""),
        status: status.as_u16(),
        code,
        message,
        detail,
        instance,
    };
    let json = serde_json::to_vec(&body).unwrap_or_default();
    let mut res = Response::new(json.into());
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    }
    res
}

/// The response for an efgs-core error, logged once here (at the boundary).
pub(crate) fn error_response(err: &Error, path: &str) -> Response {
    let a = answer_for(err);
    if let Error::Request(RequestError::KeyConflicts(map)) = err {
        tracing::info!(
            code = a.code,
            conflicts = map.conflict.len(),
            "upload rejected with 207"
        );
        return multi_status(map);
    }
    if a.status.is_server_error() {
        tracing::error!(code = a.code, error = %err, "request failed");
        return problem(a.status, a.code, &a.message, None, Some(path));
    }
    tracing::info!(status = a.status.as_u16(), code = a.code, error = %err, "request refused");
    let detail = err.to_string();
    let detail = (detail != a.message && !detail.is_empty()).then_some(detail.as_str());
    problem(a.status, a.code, &a.message, detail, Some(path))
}

/// The 207 body: every key index in exactly one of `"500"`, `"201"`, `"409"` (the reference's
/// order), nothing stored.
pub(crate) fn multi_status(map: &efgs_core::store::KeyConflicts) -> Response {
    let body = format!(
        "{{\"500\":{},\"201\":{},\"409\":{}}}",
        json_list(&map.failed),
        json_list(&map.ok),
        json_list(&map.conflict)
    );
    let mut res = Response::new(body.into());
    *res.status_mut() = StatusCode::MULTI_STATUS;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

fn json_list(v: &[usize]) -> String {
    let items: Vec<String> = v.iter().map(|i| i.to_string()).collect();
    format!("[{}]", items.join(","))
}
