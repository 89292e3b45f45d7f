//! A simulated national backend: speaks real HTTP to a gateway the way the member states'
//! servers do (clients.md).
//!
//! Identity travels as a TLS-terminating proxy would forward it: `X-SSL-Client-SHA256` (hex)
//! and `X-SSL-Client-DN` (`C=DE,O=...,CN=...`), or `X-SSL-Client-Cert` (URL-encoded PEM); see
//! [`Identity`]. Uploads are signed with the country's SIGNING certificate over the canonical
//! batch bytes. Every request can be bent for negative tests through the request builders
//! ([`UploadBuilder`], [`DownloadBuilder`], [`AuditBuilder`]).

use std::collections::HashSet;
use std::fmt::Display;
use std::sync::Arc;

use efgs_core::DiagnosisKey;
use efgs_core::batch_signature::{BatchSigner, SignatureError};
use efgs_core::canonical::canonical_batch_bytes;
use efgs_core::media::BodyFormat;
use efgs_core::model::DiagnosisKeyBatch;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::federation::Clock;
use crate::pki::CountryCredentials;

/// `X-SSL-Client-SHA256`.
pub const HEADER_THUMBPRINT: &str = "X-SSL-Client-SHA256";
/// `X-SSL-Client-DN`.
pub const HEADER_DN: &str = "X-SSL-Client-DN";
/// `X-SSL-Client-Cert`.
pub const HEADER_CERT: &str = "X-SSL-Client-Cert";
/// The literal `nextBatchTag` value that ends a chain.
pub const NO_NEXT_BATCH: &str = "null";

/// Why a national backend operation failed (not an HTTP status: those are in the results).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NationalError {
    /// The HTTP exchange failed (connect, I/O, invalid header value).
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    /// Signing the batch failed.
    #[error("signing: {0}")]
    Sign(#[from] SignatureError),
    /// A header value could not be built.
    #[error("header {name}: invalid value")]
    Header {
        /// The header name.
        name: String,
    },
    /// A 200 body did not decode in its announced format.
    #[error("{what}: cannot decode the body: {reason}")]
    Decode {
        /// The operation.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The gateway answered with a status the operation does not expect.
    #[error("{what}: unexpected status {status}: {body}")]
    UnexpectedStatus {
        /// The operation.
        what: String,
        /// The status.
        status: u16,
        /// The response body (lossy UTF-8, truncated).
        body: String,
    },
    /// Following `nextBatchTag` came back to a batch already seen.
    #[error("the batch chain loops at {0}")]
    ChainLoop(String),
}

impl NationalError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            NationalError::Http(_) => "national-http",
            NationalError::Sign(_) => "national-sign",
            NationalError::Header { .. } => "national-header",
            NationalError::Decode { .. } => "national-decode",
            NationalError::UnexpectedStatus { .. } => "national-unexpected-status",
            NationalError::ChainLoop(_) => "national-chain-loop",
        }
    }
}

/// How a backend identifies itself to the gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// `X-SSL-Client-SHA256` and `X-SSL-Client-DN`, each sent only when `Some`.
    Headers {
        /// The thumbprint header value.
        thumbprint: Option<String>,
        /// The DN header value.
        dn: Option<String>,
    },
    /// `X-SSL-Client-Cert` with this (already URL-encoded) value.
    CertHeader(String),
    /// No identity headers (anonymous, or mutual TLS where the connection carries it).
    None,
}

impl Identity {
    /// Hex thumbprint and DN of the country's AUTHENTICATION certificate.
    pub fn headers(creds: &CountryCredentials) -> Self {
        Identity::Headers {
            thumbprint: Some(creds.auth_thumbprint.as_str().to_owned()),
            dn: Some(creds.auth_dn.clone()),
        }
    }

    /// The thumbprint and DN given.
    pub fn raw(thumbprint: Option<&str>, dn: Option<&str>) -> Self {
        Identity::Headers {
            thumbprint: thumbprint.map(str::to_owned),
            dn: dn.map(str::to_owned),
        }
    }

    /// The URL-encoded PEM of the country's AUTHENTICATION certificate (nginx
    /// `$ssl_client_escaped_cert`).
    pub fn cert_header(creds: &CountryCredentials) -> Self {
        Identity::CertHeader(url_encode(&creds.auth_cert_pem))
    }

    fn apply(&self, mut req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Identity::Headers { thumbprint, dn } => {
                if let Some(t) = thumbprint {
                    req = req.header(HEADER_THUMBPRINT, t);
                }
                if let Some(d) = dn {
                    req = req.header(HEADER_DN, d);
                }
                req
            }
            Identity::CertHeader(v) => req.header(HEADER_CERT, v),
            Identity::None => req,
        }
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The backend
// ---------------------------------------------------------------------------------------------

/// A simulated national backend of one country.
#[derive(Clone)]
pub struct NationalBackend {
    country: String,
    base_url: String,
    client: reqwest::Client,
    identity: Identity,
    signer: Arc<BatchSigner>,
    clock: Clock,
    credentials: Arc<CountryCredentials>,
    visited_pool: Vec<String>,
}

impl std::fmt::Debug for NationalBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NationalBackend")
            .field("country", &self.country)
            .field("base_url", &self.base_url)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// A plain-HTTP client that ignores proxy environment variables.
pub fn plain_client() -> Result<reqwest::Client, NationalError> {
    Ok(reqwest::Client::builder().no_proxy().build()?)
}

impl NationalBackend {
    /// A backend for `creds` talking to `base_url` (e.g. `http://127.0.0.1:8090`), sending
    /// the proxy headers of its AUTHENTICATION certificate, reading the time from `clock`.
    pub fn new(
        base_url: impl Into<String>,
        creds: &CountryCredentials,
        clock: Clock,
    ) -> Result<Self, NationalError> {
        let signer = BatchSigner::from_pem(&creds.sign_cert_pem, &creds.sign_key_pem)?;
        Ok(NationalBackend {
            country: creds.country.clone(),
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            client: plain_client()?,
            identity: Identity::headers(creds),
            signer: Arc::new(signer),
            clock,
            credentials: Arc::new(creds.clone()),
            visited_pool: Vec::new(),
        })
    }

    /// With another identity (e.g. [`Identity::cert_header`], or [`Identity::None`] for
    /// mutual TLS).
    pub fn with_identity(mut self, identity: Identity) -> Self {
        self.identity = identity;
        self
    }

    /// With another HTTP client (e.g. one presenting a TLS client certificate).
    pub fn with_client(mut self, client: reqwest::Client) -> Self {
        self.client = client;
        self
    }

    /// With another base URL.
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into().trim_end_matches('/').to_owned();
        self
    }

    /// Generated keys list random subsets of these countries as visited.
    pub fn with_visited_pool<I, S>(mut self, countries: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.visited_pool = countries.into_iter().map(Into::into).collect();
        self
    }

    /// The country code.
    pub fn country(&self) -> &str {
        &self.country
    }

    /// The gateway base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The HTTP client.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The identity sent with every request.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The country's credentials.
    pub fn credentials(&self) -> &CountryCredentials {
        &self.credentials
    }

    /// The batch signer.
    pub fn signer(&self) -> &BatchSigner {
        &self.signer
    }

    /// The backend's current time.
    pub fn now(&self) -> OffsetDateTime {
        (self.clock)()
    }

    /// `n` fresh random keys valid now, with this country as origin.
    pub fn keys(&self, n: usize) -> Vec<DiagnosisKey> {
        let pool: Vec<&str> = self.visited_pool.iter().map(String::as_str).collect();
        random_keys(&self.country, n, self.now(), &pool)
    }

    /// The `batchSignature` value for `keys`: a detached CMS over their canonical bytes,
    /// signed now.
    pub fn sign(&self, keys: &[DiagnosisKey]) -> Result<String, NationalError> {
        Ok(self.signer.sign(&canonical_batch_bytes(keys), self.now())?)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// An upload of `keys`, to be adjusted before [`UploadBuilder::send`]. Defaults: no
    /// `batchTag` (set one with [`UploadBuilder::tag`]), protobuf, signed by this backend,
    /// this backend's identity.
    pub fn upload_request(&self, keys: Vec<DiagnosisKey>) -> UploadBuilder<'_> {
        UploadBuilder {
            backend: self,
            keys,
            batch_tag: None,
            format: BodyFormat::Protobuf,
            signature: SignatureMode::Sign,
            content_type: ContentTypeMode::FromFormat,
            accept: None,
            body: None,
            identity: None,
            headers: Vec::new(),
        }
    }

    /// Uploads `keys` under `batch_tag` in `format`, signed by this backend.
    pub async fn upload(
        &self,
        keys: &[DiagnosisKey],
        batch_tag: &str,
        format: BodyFormat,
    ) -> Result<UploadResult, NationalError> {
        self.upload_request(keys.to_vec())
            .tag(batch_tag)
            .format(format)
            .send()
            .await
    }

    /// A download of `date` (`yyyy-MM-dd`, or anything for negative tests), to be adjusted
    /// before [`DownloadBuilder::send`]. Defaults: no `batchTag`, `Accept:
    /// application/protobuf; version=1.0`.
    pub fn download_request(&self, date: impl Display) -> DownloadBuilder<'_> {
        DownloadBuilder {
            backend: self,
            date: date.to_string(),
            batch_tag: None,
            accept: Some(BodyFormat::Protobuf.content_type().to_owned()),
            identity: None,
            headers: Vec::new(),
        }
    }

    /// Downloads a batch of `date`: the one named `batch_tag`, or the first of the date. With
    /// `accept` `None` no `Accept` header is sent.
    pub async fn download(
        &self,
        date: impl Display,
        batch_tag: Option<&str>,
        accept: Option<&str>,
    ) -> Result<DownloadResult, NationalError> {
        let mut b = self.download_request(date);
        b.batch_tag = batch_tag.map(str::to_owned);
        b.accept = accept.map(str::to_owned);
        b.send().await
    }

    /// Downloads every batch from the first of `date` on, following `nextBatchTag` until
    /// `null` (so into later days, as the chain does), in protobuf. A 404 for the first
    /// request (no batch yet) gives an empty list; any other non-200 answer is an error.
    pub async fn download_all(
        &self,
        date: impl Display,
    ) -> Result<Vec<DownloadResult>, NationalError> {
        self.download_all_as(date, BodyFormat::Protobuf).await
    }

    /// [`Self::download_all`] with the given body format.
    pub async fn download_all_as(
        &self,
        date: impl Display,
        format: BodyFormat,
    ) -> Result<Vec<DownloadResult>, NationalError> {
        let date = date.to_string();
        let accept = Some(format.content_type());
        let first = self.download(&date, None, accept).await?;
        if first.status == 404 {
            return Ok(Vec::new());
        }
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let mut current = first;
        loop {
            if current.status != 200 {
                return Err(NationalError::UnexpectedStatus {
                    what: format!("download {date}"),
                    status: current.status,
                    body: body_text(&current.body),
                });
            }
            let tag = current.batch_tag.clone().unwrap_or_default();
            if !seen.insert(tag.clone()) {
                return Err(NationalError::ChainLoop(tag));
            }
            let next = current.next().map(str::to_owned);
            out.push(current);
            match next {
                Some(next) => current = self.download(&date, Some(&next), accept).await?,
                None => return Ok(out),
            }
        }
    }

    /// An audit request, to be adjusted before [`AuditBuilder::send`]. Default: `Accept:
    /// application/json`.
    pub fn audit_request(&self, date: impl Display, batch_tag: &str) -> AuditBuilder<'_> {
        AuditBuilder {
            backend: self,
            date: date.to_string(),
            batch_tag: batch_tag.to_owned(),
            accept: Some("application/json".to_owned()),
            identity: None,
        }
    }

    /// Audits the download batch `batch_tag` of `date`.
    pub async fn audit(
        &self,
        date: impl Display,
        batch_tag: &str,
    ) -> Result<AuditResult, NationalError> {
        self.audit_request(date, batch_tag).send().await
    }
}

fn with_headers(
    mut req: reqwest::RequestBuilder,
    headers: &[(String, String)],
) -> Result<reqwest::RequestBuilder, NationalError> {
    for (k, v) in headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| NationalError::Header { name: k.clone() })?;
        let value =
            HeaderValue::from_str(v).map_err(|_| NationalError::Header { name: k.clone() })?;
        req = req.header(name, value);
    }
    Ok(req)
}

#[derive(Clone, Debug)]
enum SignatureMode {
    Sign,
    Value(String),
    Omit,
}

#[derive(Clone, Debug)]
enum ContentTypeMode {
    FromFormat,
    Value(String),
    Omit,
}

/// An upload being prepared; see [`NationalBackend::upload_request`].
#[derive(Debug)]
#[must_use = "an upload does nothing until sent"]
pub struct UploadBuilder<'a> {
    backend: &'a NationalBackend,
    keys: Vec<DiagnosisKey>,
    batch_tag: Option<String>,
    format: BodyFormat,
    signature: SignatureMode,
    content_type: ContentTypeMode,
    accept: Option<String>,
    body: Option<Vec<u8>>,
    identity: Option<Identity>,
    headers: Vec<(String, String)>,
}

impl UploadBuilder<'_> {
    /// The `batchTag` header.
    pub fn tag(mut self, tag: &str) -> Self {
        self.batch_tag = Some(tag.to_owned());
        self
    }

    /// The body format (and, unless overridden, the `Content-Type`).
    pub fn format(mut self, format: BodyFormat) -> Self {
        self.format = format;
        self
    }

    /// Sends this `batchSignature` instead of signing.
    pub fn signature(mut self, signature: impl Into<String>) -> Self {
        self.signature = SignatureMode::Value(signature.into());
        self
    }

    /// Sends no `batchSignature`.
    pub fn no_signature(mut self) -> Self {
        self.signature = SignatureMode::Omit;
        self
    }

    /// Sends this `Content-Type`.
    pub fn content_type(mut self, value: &str) -> Self {
        self.content_type = ContentTypeMode::Value(value.to_owned());
        self
    }

    /// Sends no `Content-Type`.
    pub fn no_content_type(mut self) -> Self {
        self.content_type = ContentTypeMode::Omit;
        self
    }

    /// Sends this `Accept`.
    pub fn accept(mut self, value: &str) -> Self {
        self.accept = Some(value.to_owned());
        self
    }

    /// Sends these body bytes instead of the encoded keys (the signature still covers the
    /// keys).
    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = Some(body);
        self
    }

    /// Identifies as `identity` for this request.
    pub fn identity(mut self, identity: Identity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sends the upload.
    pub async fn send(self) -> Result<UploadResult, NationalError> {
        let b = self.backend;
        let signature = match self.signature {
            SignatureMode::Sign => Some(b.sign(&self.keys)?),
            SignatureMode::Value(v) => Some(v),
            SignatureMode::Omit => None,
        };
        let body = match self.body {
            Some(body) => body,
            None => encode_body(&self.keys, self.format),
        };
        let mut req = b.client.post(b.url("/diagnosiskeys/upload")).body(body);
        req = self.identity.as_ref().unwrap_or(&b.identity).apply(req);
        match &self.content_type {
            ContentTypeMode::FromFormat => {
                req = req.header("Content-Type", self.format.content_type());
            }
            ContentTypeMode::Value(v) => req = req.header("Content-Type", v),
            ContentTypeMode::Omit => {}
        }
        if let Some(a) = &self.accept {
            req = req.header("Accept", a);
        }
        if let Some(t) = &self.batch_tag {
            req = req.header("batchTag", t);
        }
        if let Some(s) = &signature {
            req = req.header("batchSignature", s);
        }
        req = with_headers(req, &self.headers)?;
        let res = req.send().await?;
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = res.bytes().await?.to_vec();
        Ok(UploadResult {
            status,
            batch_tag: header(&headers, "batchTag"),
            content_type: header(&headers, "content-type"),
            headers,
            body,
            signature,
        })
    }
}

/// Decodes a download body by its `Content-Type`.
pub fn decode_download(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Vec<DiagnosisKey>, NationalError> {
    let is_json = content_type.is_some_and(|c| c.trim_start().starts_with("application/json"));
    let batch = if is_json {
        efgs_core::json::from_reference_json(body).map_err(|e| NationalError::Decode {
            what: "download",
            reason: e.to_string(),
        })?
    } else {
        efgs_core::proto::decode_batch(body).map_err(|e| NationalError::Decode {
            what: "download",
            reason: e.to_string(),
        })?
    };
    Ok(batch.keys)
}

/// A download being prepared; see [`NationalBackend::download_request`].
#[derive(Debug)]
#[must_use = "a download does nothing until sent"]
pub struct DownloadBuilder<'a> {
    backend: &'a NationalBackend,
    date: String,
    batch_tag: Option<String>,
    accept: Option<String>,
    identity: Option<Identity>,
    headers: Vec<(String, String)>,
}

impl DownloadBuilder<'_> {
    /// The `batchTag` header.
    pub fn tag(mut self, tag: &str) -> Self {
        self.batch_tag = Some(tag.to_owned());
        self
    }

    /// Sends this `Accept`.
    pub fn accept(mut self, value: &str) -> Self {
        self.accept = Some(value.to_owned());
        self
    }

    /// Sends no `Accept`.
    pub fn no_accept(mut self) -> Self {
        self.accept = None;
        self
    }

    /// Identifies as `identity` for this request.
    pub fn identity(mut self, identity: Identity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sends the download; a 200 body is decoded into [`DownloadResult::keys`].
    pub async fn send(self) -> Result<DownloadResult, NationalError> {
        let b = self.backend;
        let mut req = b
            .client
            .get(b.url(&format!("/diagnosiskeys/download/{}", self.date)));
        req = self.identity.as_ref().unwrap_or(&b.identity).apply(req);
        if let Some(a) = &self.accept {
            req = req.header("Accept", a);
        }
        if let Some(t) = &self.batch_tag {
            req = req.header("batchTag", t);
        }
        req = with_headers(req, &self.headers)?;
        let res = req.send().await?;
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = res.bytes().await?.to_vec();
        let content_type = header(&headers, "content-type");
        let keys = if status == 200 {
            decode_download(content_type.as_deref(), &body)?
        } else {
            Vec::new()
        };
        Ok(DownloadResult {
            status,
            batch_tag: header(&headers, "batchTag"),
            next_batch_tag: header(&headers, "nextBatchTag"),
            content_type,
            headers,
            body,
            keys,
        })
    }
}

/// An audit request being prepared; see [`NationalBackend::audit_request`].
#[derive(Debug)]
#[must_use = "an audit request does nothing until sent"]
pub struct AuditBuilder<'a> {
    backend: &'a NationalBackend,
    date: String,
    batch_tag: String,
    accept: Option<String>,
    identity: Option<Identity>,
}

impl AuditBuilder<'_> {
    /// Sends this `Accept`.
    pub fn accept(mut self, value: &str) -> Self {
        self.accept = Some(value.to_owned());
        self
    }

    /// Sends no `Accept`.
    pub fn no_accept(mut self) -> Self {
        self.accept = None;
        self
    }

    /// Identifies as `identity` for this request.
    pub fn identity(mut self, identity: Identity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Sends the request; a 200 body is parsed into [`AuditResult::entries`].
    pub async fn send(self) -> Result<AuditResult, NationalError> {
        let b = self.backend;
        let mut req = b.client.get(b.url(&format!(
            "/diagnosiskeys/audit/download/{}/{}",
            self.date, self.batch_tag
        )));
        req = self.identity.as_ref().unwrap_or(&b.identity).apply(req);
        if let Some(a) = &self.accept {
            req = req.header("Accept", a);
        }
        let res = req.send().await?;
        let status = res.status().as_u16();
        let content_type = header(res.headers(), "content-type");
        let body = res.bytes().await?.to_vec();
        let entries = if status == 200 {
            serde_json::from_slice(&body).map_err(|e| NationalError::Decode {
                what: "audit",
                reason: e.to_string(),
            })?
        } else {
            Vec::new()
        };
        Ok(AuditResult {
            status,
            content_type,
            body,
            entries,
        })
    }
}

mod callbacks;
pub use callbacks::CallbackAnswer;
mod keys;
#[allow(unused_imports)]
pub use keys::*;
mod results;
#[allow(unused_imports)]
pub use results::*;
#[cfg(test)]
mod tests;
