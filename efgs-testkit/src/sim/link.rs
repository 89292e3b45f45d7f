//! How a simulated country reaches the gateway: [`InProcess`] calls efgs-core's use cases on
//! a store with a virtual clock; [`Http`] speaks the wire protocol to one or several gateway
//! instances. The simulation logic above ([`super::country`]) is the same for both.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use efgs_core::DiagnosisKey;
use efgs_core::gateway::{Credentials, Gateway, UploadRequest};
use efgs_core::identity::ClientIdentity;
use efgs_core::media::BodyFormat;
use efgs_core::model::FormatVersion;
use efgs_core::store::{StoreError, UploadOutcome};
use time::{Date, OffsetDateTime};

use crate::national::{AuditRecord, HEADER_DN, HEADER_THUMBPRINT, NO_NEXT_BATCH, decode_download};
use crate::pki::CountryCredentials;

/// The answer to an upload, as the client's ledger needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UploadAnswer {
    /// 201: stored now or an identical replay.
    Accepted,
    /// 409: the tag was used for other content.
    TagTaken,
    /// 207: some keys were already stored; nothing was stored.
    Duplicates,
    /// Any other refusal (4xx), with its status and stable code or message.
    Refused {
        /// HTTP status (or the status the server would map the error to).
        status: u16,
        /// Why.
        reason: String,
    },
}

/// A transport failure the client may retry (timeouts, dropped connections, 5xx).
#[derive(Clone, Debug, thiserror::Error)]
#[error("{0}")]
pub struct Transient(pub String);

/// One served download batch, still encoded: a client reads only the `keyData` for its
/// ledger ([`Served::for_each_key_data`]) unless it audits the batch ([`Served::keys`]).
#[derive(Clone, Debug)]
pub struct Served {
    /// Its `batchTag`.
    pub tag: String,
    /// Its `nextBatchTag` (`None` for `null`).
    pub next: Option<String>,
    /// Whether the body is JSON (else protobuf).
    pub json: bool,
    /// The body as served.
    pub body: bytes::Bytes,
}

impl Served {
    /// Every key, decoded in full.
    pub fn keys(&self) -> Result<Vec<DiagnosisKey>, Transient> {
        let content_type = if self.json {
            "application/json"
        } else {
            "application/protobuf"
        };
        decode_download(Some(content_type), &self.body).map_err(|e| Transient(e.to_string()))
    }

    /// Calls `f` with each key's `keyData` without decoding the rest; returns the number of
    /// keys.
    pub fn for_each_key_data(&self, f: impl FnMut(&[u8])) -> Result<u64, Transient> {
        let n = if self.json {
            super::light::json_key_data(&self.body, f)
        } else {
            super::light::protobuf_key_data(&self.body, f)
        };
        n.ok_or_else(|| Transient(format!("batch {}: the body does not scan", self.tag)))
    }
}

fn is_json(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|c| c.trim_start().starts_with("application/json"))
}

/// An audit answer.
#[derive(Clone, Debug)]
pub enum Audited {
    /// 200 with entries.
    Entries(Vec<AuditRecord>),
    /// Any other answer.
    Status(u16, String),
}

/// How one country's requests reach the gateway.
#[async_trait]
pub trait Link: Send + Sync {
    /// `POST /diagnosiskeys/upload` as `country`.
    async fn upload(
        &self,
        country: &str,
        tag: &str,
        signature: &str,
        format: BodyFormat,
        body: bytes::Bytes,
        abort_after: Option<Duration>,
    ) -> Result<UploadAnswer, Transient>;

    /// `GET /diagnosiskeys/download/{date}` (with `batchTag` when given); `Ok(None)` for 404.
    async fn download(
        &self,
        country: &str,
        date: Date,
        tag: Option<&str>,
        format: BodyFormat,
    ) -> Result<Option<Served>, Transient>;

    /// `GET /diagnosiskeys/audit/download/{date}/{tag}`.
    async fn audit(&self, country: &str, date: Date, tag: &str) -> Result<Audited, Transient>;

    /// The time the gateway (and the clients) go by.
    fn now(&self) -> OffsetDateTime;
}

// ---------------------------------------------------------------------------------------------
// In-process
// ---------------------------------------------------------------------------------------------

/// efgs-core's use cases called directly, with the virtual clock.
pub struct InProcess {
    gateway: Gateway,
    identities: std::collections::HashMap<String, ClientIdentity>,
    clock: crate::federation::TestClock,
}

impl std::fmt::Debug for InProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcess").finish_non_exhaustive()
    }
}

fn transient_or(e: efgs_core::Error) -> Result<u16, Transient> {
    match &e {
        efgs_core::Error::Store(StoreError::Unavailable { .. }) => Err(Transient(e.to_string())),
        efgs_core::Error::Store(_) => Err(Transient(format!("store: {e}"))),
        _ => Ok(0),
    }
}

impl InProcess {
    /// Authenticates every country once through [`Gateway::authenticate`] (the identity
    /// headers a proxy would forward) and keeps the identities.
    pub async fn new(
        gateway: Gateway,
        countries: &[&CountryCredentials],
        clock: crate::federation::TestClock,
    ) -> Result<Self, efgs_core::Error> {
        let mut identities = std::collections::HashMap::new();
        for c in countries {
            let id = gateway
                .authenticate(
                    Credentials::ProxyHeaders {
                        thumbprint: Some(c.auth_thumbprint.as_str()),
                        dn: Some(&c.auth_dn),
                        certificate: None,
                    },
                    clock.now(),
                )
                .await?;
            identities.insert(c.country.clone(), id);
        }
        Ok(InProcess {
            gateway,
            identities,
            clock,
        })
    }

    fn who(&self, country: &str) -> Result<&ClientIdentity, Transient> {
        self.identities
            .get(country)
            .ok_or_else(|| Transient(format!("no identity for {country}")))
    }
}

#[async_trait]
impl Link for InProcess {
    async fn upload(
        &self,
        country: &str,
        tag: &str,
        signature: &str,
        format: BodyFormat,
        body: bytes::Bytes,
        abort_after: Option<Duration>,
    ) -> Result<UploadAnswer, Transient> {
        let who = self.who(country)?;
        let req = UploadRequest {
            batch_tag: Some(tag),
            batch_signature: Some(signature),
            format,
            version: FormatVersion::V1_0,
            body: &body,
        };
        let outcome = self.gateway.upload(who, req, self.clock.now()).await;
        if abort_after.is_some() {
            // A dropped connection: the gateway did its work, the client never hears of it.
            return Err(Transient("connection dropped mid-upload".to_owned()));
        }
        match outcome {
            Ok(UploadOutcome::Stored(_) | UploadOutcome::Replayed(_)) => Ok(UploadAnswer::Accepted),
            Ok(UploadOutcome::BatchTagExists { .. }) => Ok(UploadAnswer::TagTaken),
            Ok(UploadOutcome::DuplicateKeys(_)) => Ok(UploadAnswer::Duplicates),
            Err(e) => transient_or_refused(e),
        }
    }

    async fn download(
        &self,
        country: &str,
        date: Date,
        tag: Option<&str>,
        format: BodyFormat,
    ) -> Result<Option<Served>, Transient> {
        let who = self.who(country)?;
        let date = date.to_string();
        match self
            .gateway
            .download(who, &date, tag, format, self.clock.now())
            .await
        {
            Ok(r) => Ok(Some(Served {
                tag: r.batch_tag.to_string(),
                next: r.next_batch_tag.map(|t| t.to_string()),
                json: is_json(Some(r.format.content_type())),
                body: r.body,
            })),
            Err(efgs_core::Error::Download(
                efgs_core::download::DownloadError::NoBatchForDate { .. },
            )) => Ok(None),
            Err(e) => transient_or(e).map(|_| None),
        }
    }

    async fn audit(&self, _country: &str, date: Date, tag: &str) -> Result<Audited, Transient> {
        match self
            .gateway
            .audit(&date.to_string(), tag, self.clock.now())
            .await
        {
            Ok(entries) => {
                // Through the wire form, as a client reads it.
                let json = serde_json::to_vec(&entries).map_err(|e| Transient(e.to_string()))?;
                let parsed = serde_json::from_slice(&json).map_err(|e| Transient(e.to_string()))?;
                Ok(Audited::Entries(parsed))
            }
            Err(e) => {
                let text = e.to_string();
                transient_or(e).map(|_| Audited::Status(400, text))
            }
        }
    }

    fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }
}

fn transient_or_refused(e: efgs_core::Error) -> Result<UploadAnswer, Transient> {
    let reason = e.to_string();
    transient_or(e).map(|_| UploadAnswer::Refused {
        status: 400,
        reason,
    })
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

/// The gateway instances' base URLs, shared so a restarted instance can be swapped in.
pub type Urls = Arc<RwLock<Vec<String>>>;

/// Request latencies in microseconds, by country and operation.
pub type Latencies = std::collections::HashMap<(String, &'static str), Vec<u32>>;

/// The wire protocol over HTTP, identity as a TLS-terminating proxy forwards it.
#[derive(Clone)]
pub struct Http {
    urls: Urls,
    client: reqwest::Client,
    identities: Arc<std::collections::HashMap<String, (String, String)>>,
    timeout: Duration,
    latencies: Arc<std::sync::Mutex<Latencies>>,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http").finish_non_exhaustive()
    }
}

impl Http {
    /// A link to the gateways at `urls` for these countries (`X-SSL-Client-SHA256` and
    /// `X-SSL-Client-DN` of each AUTHENTICATION certificate); requests time out after
    /// `timeout`.
    pub fn new(
        urls: Urls,
        countries: &[&CountryCredentials],
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(4)
            .build()?;
        let identities = countries
            .iter()
            .map(|c| {
                (
                    c.country.clone(),
                    (c.auth_thumbprint.as_str().to_owned(), c.auth_dn.clone()),
                )
            })
            .collect();
        Ok(Http {
            urls,
            client,
            identities: Arc::new(identities),
            timeout,
            latencies: Arc::default(),
        })
    }

    fn base(&self, country: &str, salt: usize) -> String {
        let urls = self.urls.read().unwrap_or_else(|p| p.into_inner());
        if urls.is_empty() {
            return String::new();
        }
        let h = country
            .bytes()
            .fold(salt, |a, b| a.wrapping_mul(31) + usize::from(b));
        urls[h % urls.len()].clone()
    }

    fn request(&self, country: &str, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self.identities.get(country) {
            Some((t, dn)) => req.header(HEADER_THUMBPRINT, t).header(HEADER_DN, dn),
            None => req,
        }
    }

    fn record(&self, country: &str, what: &'static str, started: Instant) {
        let us = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
        if let Ok(mut l) = self.latencies.lock() {
            l.entry((country.to_owned(), what)).or_default().push(us);
        }
    }

    /// `PUT /diagnosiskeys/callback/{id}?url=<url>` as `country` on every instance's URL in
    /// turn until one answers; returns the status and body of the answer.
    pub async fn subscribe_callback(
        &self,
        country: &str,
        id: &str,
        url: &str,
    ) -> Result<(u16, String), Transient> {
        let encoded: String = url
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let target = format!(
            "{}/diagnosiskeys/callback/{id}?url={encoded}",
            self.base(country, 0)
        );
        let res = self
            .request(country, self.client.put(target))
            .timeout(self.timeout)
            .send()
            .await
            .map_err(transient)?;
        let status = res.status().as_u16();
        let text = res.text().await.map_err(transient)?;
        Ok((status, text))
    }

    /// The latencies recorded (microseconds), by country and operation (`upload`,
    /// `download`, `audit`); drains them.
    pub fn take_latencies(&self) -> Latencies {
        self.latencies
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }
}

fn transient(e: reqwest::Error) -> Transient {
    Transient(format!("HTTP: {e}"))
}

fn header(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[async_trait]
impl Link for Http {
    async fn upload(
        &self,
        country: &str,
        tag: &str,
        signature: &str,
        format: BodyFormat,
        body: bytes::Bytes,
        abort_after: Option<Duration>,
    ) -> Result<UploadAnswer, Transient> {
        let started = Instant::now();
        let url = format!("{}/diagnosiskeys/upload", self.base(country, tag.len()));
        let req = self
            .request(country, self.client.post(url))
            .header("Content-Type", format.content_type())
            .header("batchTag", tag)
            .header("batchSignature", signature)
            .timeout(abort_after.unwrap_or(self.timeout))
            .body(body);
        let res = req.send().await.map_err(transient)?;
        let status = res.status().as_u16();
        let text = res.text().await.map_err(transient)?;
        self.record(country, "upload", started);
        match status {
            201 => Ok(UploadAnswer::Accepted),
            207 => Ok(UploadAnswer::Duplicates),
            409 => Ok(UploadAnswer::TagTaken),
            s if s >= 500 || s == 429 || s == 408 => Err(Transient(format!("upload: {s}"))),
            s => Ok(UploadAnswer::Refused {
                status: s,
                reason: text.chars().take(300).collect(),
            }),
        }
    }

    async fn download(
        &self,
        country: &str,
        date: Date,
        tag: Option<&str>,
        format: BodyFormat,
    ) -> Result<Option<Served>, Transient> {
        let started = Instant::now();
        let url = format!(
            "{}/diagnosiskeys/download/{date}",
            self.base(country, tag.map_or(0, str::len))
        );
        let mut req = self
            .request(country, self.client.get(url))
            .header("Accept", format.content_type())
            .timeout(self.timeout);
        if let Some(t) = tag {
            req = req.header("batchTag", t);
        }
        let res = req.send().await.map_err(transient)?;
        let status = res.status().as_u16();
        let batch_tag = header(&res, "batchTag");
        let next = header(&res, "nextBatchTag");
        let content_type = header(&res, "content-type");
        let body = res.bytes().await.map_err(transient)?;
        self.record(country, "download", started);
        match status {
            200 => Ok(Some(Served {
                tag: batch_tag.ok_or_else(|| Transient("no batchTag header".to_owned()))?,
                next: next.filter(|n| n != NO_NEXT_BATCH && !n.is_empty()),
                json: is_json(content_type.as_deref()),
                body,
            })),
            404 if tag.is_none() => Ok(None),
            s => Err(Transient(format!(
                "download {date} {}: {s} {}",
                tag.unwrap_or("(first)"),
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(200)
                    .collect::<String>()
            ))),
        }
    }

    async fn audit(&self, country: &str, date: Date, tag: &str) -> Result<Audited, Transient> {
        let started = Instant::now();
        let url = format!(
            "{}/diagnosiskeys/audit/download/{date}/{tag}",
            self.base(country, 0)
        );
        let res = self
            .request(country, self.client.get(url))
            .header("Accept", "application/json")
            .timeout(self.timeout)
            .send()
            .await
            .map_err(transient)?;
        let status = res.status().as_u16();
        let body = res.bytes().await.map_err(transient)?;
        self.record(country, "audit", started);
        match status {
            200 => Ok(Audited::Entries(
                serde_json::from_slice(&body).map_err(|e| Transient(format!("audit body: {e}")))?,
            )),
            s if s >= 500 => Err(Transient(format!("audit: {s}"))),
            s => Ok(Audited::Status(
                s,
                String::from_utf8_lossy(&body).chars().take(200).collect(),
            )),
        }
    }

    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}
