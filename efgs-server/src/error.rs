//! The one table that maps efgs-core's upload outcomes and error kinds to HTTP statuses, and
//! the RFC 9457 problem+json envelope every error answer uses.
//!
//! The table has two halves, both exhaustive matches over core enums without wildcard arms
//! (ADR 0012): [`upload_response`] answers every [`UploadOutcome`] (201, 201, 409, 207) and
//! [`answer_for`] every [`Error`]. A new outcome or error variant does not compile until it
//! has a status here. Concerns whose every variant gets the same answer (JSON, signature,
//! trust, callback URL, batch tag) are matched as a whole.
//!
//! Bodies carry a stable machine `code`, the reference's reason text in `message` (Denmark
//! parses `{"message":"Could not find any batches for given date"}`) and `detail`. 5xx answers
//! carry no internal detail.

use bytes::Bytes;
use efgs_core::Error;
use efgs_core::audit::AuditError;
use efgs_core::callback::CallbackError;
use efgs_core::download::DownloadError;
use efgs_core::gateway::RequestError;
use efgs_core::identity::IdentityErrorKind;
use efgs_core::media::MediaTypeError;
use efgs_core::proto::ProtoError;
use efgs_core::store::{BATCH_TAG_EXISTS_REASON, KeyConflicts, StoreError, UploadOutcome};
use efgs_core::validate::ValidationError;
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

/// The status table, outcome half: the response to every outcome of an upload, logged once
/// here. Stored and replayed: 201 with the `batchTag` header; the tag already used by the
/// caller's country for other content: 409 problem; duplicate keys: 207 with the index map.
pub(crate) fn upload_response(outcome: &UploadOutcome, path: &str) -> Response {
    match outcome {
        UploadOutcome::Stored(r) => {
            tracing::info!(country = %r.country, keys = r.number_of_keys, "upload stored");
            created(&r.batch_tag)
        }
        UploadOutcome::Replayed(r) => {
            tracing::info!(country = %r.country, "upload replayed (idempotent)");
            created(&r.batch_tag)
        }
        UploadOutcome::BatchTagExists { country, .. } => {
            let status = StatusCode::CONFLICT;
            tracing::info!(
                status = status.as_u16(),
                code = outcome.code(),
                %country,
                "upload refused: batchTag already used for other content"
            );
            problem(
                status,
                outcome.code(),
                BATCH_TAG_EXISTS_REASON,
                None,
                Some(path),
            )
        }
        UploadOutcome::DuplicateKeys(map) => {
            tracing::info!(
                code = outcome.code(),
                conflicts = map.conflict.len(),
                "upload rejected with 207"
            );
            multi_status(map)
        }
    }
}

/// 201 with the upload's `batchTag` header and no body.
fn created(batch_tag: &str) -> Response {
    let mut res = Response::new(Bytes::new().into());
    *res.status_mut() = StatusCode::CREATED;
    if let Ok(v) = HeaderValue::from_str(batch_tag) {
        res.headers_mut().insert("batchTag", v);
    }
    res
}

/// The status table, error half: one place decides the status of every error kind.
pub(crate) fn answer_for(err: &Error) -> ErrorAnswer {
    use StatusCode as S;
    let (status, code, message): (StatusCode, &'static str, String) = match err {
        Error::Proto(e) => match e {
            ProtoError::TooManyKeys { .. } => (
                S::PAYLOAD_TOO_LARGE,
                e.code(),
                "Too many diagnosis keys".to_owned(),
            ),
            ProtoError::EmptyBody | ProtoError::Malformed { .. } | ProtoError::Key { .. } => {
                (S::BAD_REQUEST, e.code(), e.to_string())
            }
        },
        // Every JSON decoding error is a 400 with its own text.
        Error::Json(e) => (S::BAD_REQUEST, e.code(), e.to_string()),
        Error::MediaType(e) => {
            let status = match e {
                MediaTypeError::ContentTypeMissing
                | MediaTypeError::UnsupportedContentType { .. }
                | MediaTypeError::AcceptVersionMissing
                | MediaTypeError::AcceptVersionInvalid { .. }
                | MediaTypeError::AcceptVersionIncompatible { .. } => S::UNSUPPORTED_MEDIA_TYPE,
                MediaTypeError::NotAcceptable { .. }
                | MediaTypeError::ContentTypeVersionIncompatible { .. } => S::NOT_ACCEPTABLE,
                MediaTypeError::ContentTypeVersionMissing
                | MediaTypeError::ContentTypeVersionInvalid { .. } => S::BAD_REQUEST,
            };
            (status, e.code(), e.to_string())
        }
        Error::Validation(e) => {
            let status = match e {
                ValidationError::TooManyKeys { .. } => S::PAYLOAD_TOO_LARGE,
                ValidationError::EmptyKeyData { .. }
                | ValidationError::KeyDataLength { .. }
                | ValidationError::RollingStartIntervalNumber { .. }
                | ValidationError::RollingPeriod { .. }
                | ValidationError::TransmissionRiskLevel { .. }
                | ValidationError::TooManyVisitedCountries { .. }
                | ValidationError::InvalidVisitedCountry { .. }
                | ValidationError::OriginNotAscii { .. }
                | ValidationError::BatchTagEmpty
                | ValidationError::BatchTagTooLong { .. }
                | ValidationError::BatchTagCharacter { .. }
                | ValidationError::BatchSignatureEmpty
                | ValidationError::BatchSignatureTooLong { .. }
                | ValidationError::OriginMismatch { .. } => S::BAD_REQUEST,
            };
            (status, e.code(), e.to_string())
        }
        // Every signature failure is the reference's 400 "Invalid signature".
        Error::Signature(e) => (S::BAD_REQUEST, e.code(), "Invalid signature".to_owned()),
        // Every trust-list failure is a 400 with its own text.
        Error::Trust(e) => (S::BAD_REQUEST, e.code(), e.to_string()),
        Error::Identity(e) => {
            let (status, message) = match e.kind() {
                IdentityErrorKind::BadRequest => (S::BAD_REQUEST, e.to_string()),
                IdentityErrorKind::Forbidden => (S::FORBIDDEN, e.to_string()),
                IdentityErrorKind::Unauthenticated => (S::FORBIDDEN, String::new()),
            };
            (status, e.code(), message)
        }
        // Every refused callback URL is the reference's 400.
        Error::CallbackUrl(e) => (
            S::BAD_REQUEST,
            e.code(),
            "Callback URL is invalid".to_owned(),
        ),
        Error::Callback(e) => {
            let status = match e {
                CallbackError::MissingUrl
                | CallbackError::IdEmpty
                | CallbackError::IdTooLong { .. }
                | CallbackError::IdCharacter => S::BAD_REQUEST,
                CallbackError::NotFound => S::NOT_FOUND,
            };
            (status, e.code(), e.to_string())
        }
        // Every malformed download batch tag names no batch.
        Error::Tag(e) => (S::NOT_FOUND, e.code(), e.to_string()),
        Error::Download(e) => {
            let status = match e {
                DownloadError::TooOld { .. } => S::GONE,
                DownloadError::NoBatchForDate { .. } | DownloadError::UnknownBatchTag { .. } => {
                    S::NOT_FOUND
                }
                DownloadError::InvalidDate { .. } | DownloadError::DateAfterBatch { .. } => {
                    S::BAD_REQUEST
                }
            };
            (status, e.code(), e.to_string())
        }
        Error::Audit(e) => {
            let status = match e {
                AuditError::TooOld { .. } => S::GONE,
                AuditError::UnknownBatchTag { .. }
                | AuditError::DateMismatch { .. }
                | AuditError::NoKeys { .. } => S::NOT_FOUND,
            };
            (status, e.code(), e.to_string())
        }
        Error::Request(e) => match e {
            RequestError::MissingHeader(_) => (S::BAD_REQUEST, e.code(), e.to_string()),
            RequestError::UntrustedSigner(_) => {
                (S::BAD_REQUEST, e.code(), "Invalid signature".to_owned())
            }
        },
        Error::Store(e) => match e {
            StoreError::Unavailable { .. } => (
                S::SERVICE_UNAVAILABLE,
                e.code(),
                "Service temporarily unavailable, retry later".to_owned(),
            ),
            StoreError::NotFound { .. } => (S::NOT_FOUND, e.code(), e.to_string()),
            StoreError::AlreadyExists { .. } => {
                (S::CONFLICT, e.code(), BATCH_TAG_EXISTS_REASON.to_owned())
            }
            StoreError::Backend { .. } => (
                S::INTERNAL_SERVER_ERROR,
                e.code(),
                "Internal Server Error.".to_owned(),
            ),
        },
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
pub(crate) fn multi_status(map: &KeyConflicts) -> Response {
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

#[cfg(test)]
mod tests {
    use super::*;
    use efgs_core::store::UploadReceipt;
    use http_body_util::BodyExt as _;

    const PATH: &str = "/diagnosiskeys/upload";

    async fn body(res: Response) -> Vec<u8> {
        res.into_body().collect().await.unwrap().to_bytes().to_vec()
    }

    #[tokio::test]
    async fn every_upload_outcome_has_its_answer() {
        let receipt = UploadReceipt {
            country: "DE".into(),
            batch_tag: "t1".into(),
            number_of_keys: 2,
            created_at: time::OffsetDateTime::UNIX_EPOCH,
        };
        for outcome in [
            UploadOutcome::Stored(receipt.clone()),
            UploadOutcome::Replayed(receipt),
        ] {
            let res = upload_response(&outcome, PATH);
            assert_eq!(res.status(), StatusCode::CREATED);
            assert_eq!(res.headers()["batchTag"], "t1");
            assert!(body(res).await.is_empty());
        }

        let taken = UploadOutcome::BatchTagExists {
            country: "DE".into(),
            batch_tag: "t1".into(),
        };
        let res = upload_response(&taken, PATH);
        assert_eq!(res.status(), StatusCode::CONFLICT);
        assert_eq!(
            res.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let problem: serde_json::Value = serde_json::from_slice(&body(res).await).unwrap();
        assert_eq!(problem["code"], "batch-tag-exists");
        assert_eq!(problem["message"], "BatchTag already exists.");
        assert_eq!(problem["instance"], PATH);
        assert!(problem.get("detail").is_none(), "{problem}");

        let duplicates = UploadOutcome::DuplicateKeys(KeyConflicts {
            ok: vec![0, 2],
            conflict: vec![1],
            failed: vec![],
        });
        let res = upload_response(&duplicates, PATH);
        assert_eq!(res.status(), StatusCode::MULTI_STATUS);
        assert_eq!(body(res).await, br#"{"500":[],"201":[0,2],"409":[1]}"#);
    }

    #[test]
    fn storage_failures_are_503_and_500_without_detail() {
        let unavailable = Error::Store(StoreError::Unavailable {
            source: "pool timeout".into(),
        });
        let a = answer_for(&unavailable);
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(a.code, "storage-unavailable");
        let failed = Error::Store(StoreError::Backend {
            backend: "postgres",
            source: "corrupt row".into(),
        });
        let a = answer_for(&failed);
        assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(a.message, "Internal Server Error.");
    }
}
