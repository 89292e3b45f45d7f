//! Results.

use super::*;

pub(super) fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

pub(super) fn body_text(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    s.chars().take(2000).collect()
}

pub(super) fn body_json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap_or(serde_json::Value::Null)
}

pub(super) fn body_message(body: &[u8]) -> Option<String> {
    body_json(body)
        .get("message")
        .and_then(|m| m.as_str())
        .map(str::to_owned)
}

/// The answer to an upload.
#[derive(Clone, Debug)]
pub struct UploadResult {
    /// HTTP status.
    pub status: u16,
    /// The `batchTag` response header.
    pub batch_tag: Option<String>,
    /// The `Content-Type` response header.
    pub content_type: Option<String>,
    /// All response headers.
    pub headers: HeaderMap,
    /// The response body.
    pub body: Vec<u8>,
    /// The `batchSignature` header that was sent (if any).
    pub signature: Option<String>,
}

impl UploadResult {
    /// The body as JSON (`Value::Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        body_json(&self.body)
    }

    /// The `message` of an error body.
    pub fn message(&self) -> Option<String> {
        body_message(&self.body)
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The answer to a download.
#[derive(Clone, Debug)]
pub struct DownloadResult {
    /// HTTP status.
    pub status: u16,
    /// The `batchTag` response header.
    pub batch_tag: Option<String>,
    /// The `nextBatchTag` response header (`null` ends the chain).
    pub next_batch_tag: Option<String>,
    /// The `Content-Type` response header.
    pub content_type: Option<String>,
    /// All response headers.
    pub headers: HeaderMap,
    /// The response body.
    pub body: Vec<u8>,
    /// The keys (decoded from a 200 body by its content type; empty otherwise).
    pub keys: Vec<DiagnosisKey>,
}

impl DownloadResult {
    /// The body as JSON (`Value::Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        body_json(&self.body)
    }

    /// The `message` of an error body.
    pub fn message(&self) -> Option<String> {
        body_message(&self.body)
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The next tag to request, if the chain goes on.
    pub fn next(&self) -> Option<&str> {
        self.next_batch_tag
            .as_deref()
            .filter(|t| *t != NO_NEXT_BATCH && !t.is_empty())
    }
}

/// One audit entry as a client reads it (protocol §1.4).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditRecord {
    /// Uploader country.
    pub country: String,
    /// ISO-8601 UTC time of the upload.
    pub uploaded_time: String,
    /// PEM of the uploader's AUTHENTICATION certificate.
    pub uploader_certificate: Option<String>,
    /// The uploader's authentication thumbprint.
    pub uploader_thumbprint: String,
    /// Operator signature of the AUTHENTICATION entry.
    pub uploader_operator_signature: Option<String>,
    /// PEM of the SIGNING certificate.
    pub signing_certificate: Option<String>,
    /// The signing certificate's thumbprint.
    pub uploader_signing_thumbprint: String,
    /// Operator signature of the SIGNING entry.
    pub signing_certificate_operator_signature: Option<String>,
    /// Keys of this upload inside the batch.
    pub amount: u64,
    /// The `batchSignature` given at upload.
    pub batch_signature: String,
}

/// The answer to an audit request.
#[derive(Clone, Debug)]
pub struct AuditResult {
    /// HTTP status.
    pub status: u16,
    /// The `Content-Type` response header.
    pub content_type: Option<String>,
    /// The response body.
    pub body: Vec<u8>,
    /// The entries (parsed from a 200 body; empty otherwise).
    pub entries: Vec<AuditRecord>,
}

impl AuditResult {
    /// The body as JSON (`Value::Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The `message` of an error body.
    pub fn message(&self) -> Option<String> {
        self.json()
            .get("message")
            .and_then(|m| m.as_str())
            .map(str::to_owned)
    }
}
