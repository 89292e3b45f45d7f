//! The gateway's use cases (upload, download, audit, authentication, batching, retention),
//! written against the storage traits of [`crate::store`].
//!
//! Everything the outside world decides comes in as a parameter: the instant (`now`), the
//! request's header values and body bytes, and the policies in [`GatewayPolicy`]. Expected
//! protocol outcomes are values ([`UploadOutcome`]); failures are [`crate::Error`]s. The HTTP
//! layer maps both to statuses with one table and does nothing else.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::Error;
use crate::audit::{self, AuditEntry, AuditError};
use crate::batch_signature::{self, SignaturePolicy};
use crate::batching::{self, BatchingPolicy};
use crate::canonical::{self, DuplicateHasher};
use crate::cert::Thumbprint;
use crate::download::{self, DownloadError, DownloadPolicy};
use crate::download_cache::{CacheKey, CachedBody, DownloadCache, DownloadCachePolicy, Segment};
use crate::identity::{self, ClientIdentity};
use crate::media::BodyFormat;
use crate::model::{CertificateType, DiagnosisKeyBatch, FormatVersion};
use crate::retention::{self, RetentionPolicy};
use crate::row_cache::StampedCache;
use crate::single_flight::Turn;
use crate::store::{
    BatchInfo, CleanupReport, CreatedBatch, DownloadStat, DynStore, NewKey, NewUpload, TrustEntry,
    TrustListStoreExt, UploadOutcome,
};
use crate::tag::BatchTag;
use crate::trust::TrustAnchors;
use crate::validate::{self, ValidationPolicy};

/// Every policy value of the gateway, with the reference's production defaults.
#[derive(Clone, Debug, Default)]
pub struct GatewayPolicy {
    /// Upload validation (keys per upload, ...).
    pub validation: ValidationPolicy,
    /// Accepted signature algorithms.
    pub signature: SignaturePolicy,
    /// Download and audit window.
    pub download: DownloadPolicy,
    /// Limits of the download response cache.
    pub download_cache: DownloadCachePolicy,
    /// Download batch size and interval.
    pub batching: BatchingPolicy,
    /// Retention of keys and batch metadata.
    pub retention: RetentionPolicy,
    /// Callback URL addresses and delivery retries.
    pub callback: crate::callback::CallbackPolicy,
}

/// A request-level problem that belongs to no single concern module. The expected outcomes
/// of an upload (replay, tag already used, duplicate keys) are not errors but
/// [`UploadOutcome`]s.
///
/// Not `#[non_exhaustive]`: the server's status table matches every variant (ADR 0012).
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// A required header is absent. Status 400.
    #[error("Required request header '{0}' is not present")]
    MissingHeader(&'static str),
    /// The signer certificate is not a valid, non-revoked SIGNING entry of its country on the
    /// trust list. Status 400 "Invalid signature".
    #[error("Invalid signature: the signing certificate is not trusted ({0})")]
    UntrustedSigner(&'static str),
}

impl RequestError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            RequestError::MissingHeader(_) => "missing-header",
            RequestError::UntrustedSigner(_) => "untrusted-signer",
        }
    }
}

/// What the client presented to identify itself.
#[derive(Clone, Copy, Debug)]
pub enum Credentials<'a> {
    /// Headers set by a trusted TLS-terminating proxy.
    ProxyHeaders {
        /// `X-SSL-Client-SHA256`.
        thumbprint: Option<&'a str>,
        /// `X-SSL-Client-DN`.
        dn: Option<&'a str>,
        /// `X-SSL-Client-Cert` (URL-encoded PEM), only when the operator turned it on; when
        /// present the SHA-256 header, if any, must name the same certificate.
        certificate: Option<&'a str>,
    },
    /// An identity header arrived more than once (403).
    RepeatedHeader(&'static str),
    /// The client certificate of a TLS connection this server terminated (DER).
    TlsCertificate(&'a [u8]),
    /// Nothing usable (for example identity headers from an untrusted address).
    None,
}

/// An upload request as the HTTP layer received it.
#[derive(Clone, Copy, Debug)]
pub struct UploadRequest<'a> {
    /// `batchTag` header.
    pub batch_tag: Option<&'a str>,
    /// `batchSignature` header.
    pub batch_signature: Option<&'a str>,
    /// The negotiated body format and payload version.
    pub format: BodyFormat,
    /// The payload format version from the Content-Type.
    pub version: FormatVersion,
    /// The body bytes.
    pub body: &'a [u8],
}

/// A served download batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DownloadResponse {
    /// The tag of the batch actually served (`batchTag` header).
    pub batch_tag: BatchTag,
    /// Its link (`nextBatchTag` header; `None` is sent as the literal `null`).
    pub next_batch_tag: Option<BatchTag>,
    /// The body format the batch is encoded in.
    pub format: BodyFormat,
    /// The encoded body: the batch's keys minus the caller's own country's, in insertion
    /// order ([`crate::proto::encode_body`]); possibly shared with other responses.
    pub body: Bytes,
    /// How many keys the body holds.
    pub number_of_keys: u64,
}

impl DownloadResponse {
    /// The `nextBatchTag` header value (`null` when there is no next batch).
    pub fn next_batch_tag_header(&self) -> String {
        download::next_batch_tag_header(self.next_batch_tag.as_ref())
    }
}

/// The federation gateway: policies, trust anchors and a store.
#[derive(Clone)]
pub struct Gateway {
    store: Arc<DynStore>,
    anchors: Arc<TrustAnchors>,
    hasher: Arc<DuplicateHasher>,
    policy: Arc<GatewayPolicy>,
    integrity: Arc<IntegrityCache>,
    downloads: Arc<DownloadCache>,
    rows: Arc<RowCaches>,
    on_batch: Option<BatchListener>,
}

/// The rows every request reads, kept while the store's change stamps stay the same (ADR
/// 0030): a cached download and its authentication then need no database round trip.
#[derive(Debug)]
struct RowCaches {
    /// AUTHENTICATION lookups by (thumbprint, country), with the certificate's validity
    /// period when the row passed its integrity check.
    auth: StampedCache<(Thumbprint, String), Option<Arc<AuthRow>>>,
    /// Batch rows by tag or by the instant of a download without `batchTag`.
    batches: StampedCache<BatchLookup, Option<BatchInfo>>,
}

impl RowCaches {
    /// At most this many rows per cache (a trust-list row is a few KB, a batch row 100 bytes).
    const MAX_ENTRIES: usize = 1024;
}

impl Default for RowCaches {
    fn default() -> Self {
        RowCaches {
            auth: StampedCache::new(Self::MAX_ENTRIES),
            batches: StampedCache::new(Self::MAX_ENTRIES),
        }
    }
}

/// An AUTHENTICATION trust-list row and, when it passed its integrity check, its
/// certificate's validity period.
#[derive(Debug)]
struct AuthRow {
    entry: TrustEntry,
    validity: Option<identity::Validity>,
}

/// How a download finds its batch.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum BatchLookup {
    Tag(BatchTag),
    FirstAtOrAfter(OffsetDateTime),
}

/// Called after this gateway cut a download batch (the server wakes its callback delivery).
pub type BatchListener = Arc<dyn Fn(&CreatedBatch) + Send + Sync>;

/// Remembers trust-list rows whose trust-anchor signature and thumbprint were already checked,
/// keyed by a digest of the row's signed content (thumbprint, country, type, PEM, signature):
/// a changed row is checked again, and the revoked flag (not covered by the signature) is
/// always read fresh from the store, so a revocation still takes effect on the next request.
#[derive(Debug, Default)]
struct IntegrityCache {
    /// Rows that passed, by content digest, with their certificate's validity period.
    verified: std::sync::RwLock<std::collections::HashMap<[u8; 32], identity::Validity>>,
}

impl IntegrityCache {
    const MAX_ENTRIES: usize = 4096;

    fn digest(e: &TrustEntry) -> [u8; 32] {
        let mut h = Sha256::new();
        for part in [
            e.thumbprint.as_str().as_bytes(),
            e.country.as_bytes(),
            e.cert_type.as_str().as_bytes(),
            e.pem.as_bytes(),
            e.signature.as_bytes(),
        ] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        h.finalize().into()
    }

    /// Whether the row passes its integrity check (cached when it does).
    fn check(&self, e: &TrustEntry, anchors: &TrustAnchors) -> bool {
        self.validity(e, anchors).is_some()
    }

    /// The validity period of the row's certificate when the row passes its integrity check
    /// (cached when it does), else `None`.
    fn validity(&self, e: &TrustEntry, anchors: &TrustAnchors) -> Option<identity::Validity> {
        let d = Self::digest(e);
        if let Ok(set) = self.verified.read()
            && let Some(v) = set.get(&d)
        {
            return Some(*v);
        }
        e.to_entry().verify(anchors).ok()?;
        let validity = identity::certificate_validity(e.pem.as_bytes())?;
        if let Ok(mut set) = self.verified.write() {
            if set.len() >= Self::MAX_ENTRIES {
                set.clear();
            }
            set.insert(d, validity);
        }
        Some(validity)
    }
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("store", &self.store)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway over `store`, checking trust-list rows against `anchors`.
    /// `hasher` computes the per-key duplicate hash (keep its secret stable for a database).
    pub fn new(
        store: Arc<DynStore>,
        anchors: TrustAnchors,
        hasher: DuplicateHasher,
        policy: GatewayPolicy,
    ) -> Self {
        Gateway {
            store,
            anchors: Arc::new(anchors),
            hasher: Arc::new(hasher),
            integrity: Arc::default(),
            downloads: Arc::new(DownloadCache::new(policy.download_cache)),
            rows: Arc::default(),
            policy: Arc::new(policy),
            on_batch: None,
        }
    }

    /// Calls `listener` after every batch this gateway (or a clone made afterwards) cuts, so
    /// callback delivery can start at once instead of at its next poll.
    #[must_use]
    pub fn with_batch_listener(mut self, listener: BatchListener) -> Self {
        self.on_batch = Some(listener);
        self
    }

    /// The validity period of a trust-list row's certificate when the row passes its
    /// trust-anchor check (cached), else `None`.
    pub(crate) fn intact_validity(&self, e: &TrustEntry) -> Option<identity::Validity> {
        self.integrity.validity(e, &self.anchors)
    }

    /// The store behind the gateway.
    pub fn store(&self) -> &Arc<DynStore> {
        &self.store
    }

    /// The policies in force.
    pub fn policy(&self) -> &GatewayPolicy {
        &self.policy
    }

    /// The trust anchors in force.
    pub fn anchors(&self) -> &TrustAnchors {
        &self.anchors
    }

    /// Identifies and authorises a caller (protocol §2): the certificate thumbprint and country
    /// must be a valid, non-revoked AUTHENTICATION entry on the trust list. The row is kept
    /// while the store's trust-list stamp stays the same
    /// ([`crate::store::TrustListStore::trust_list_stamp`]), so a revocation written through
    /// this gateway's store takes effect on the next request, and one written by another
    /// instance or the operator's command within [`crate::store::STAMP_LAG`]; a store without
    /// stamps is read on every request.
    pub async fn authenticate(
        &self,
        credentials: Credentials<'_>,
        now: OffsetDateTime,
    ) -> Result<ClientIdentity, Error> {
        let id = match credentials {
            Credentials::ProxyHeaders {
                thumbprint,
                dn,
                certificate,
            } => identity::identity_from_proxy_headers(thumbprint, dn, certificate)?,
            Credentials::RepeatedHeader(header) => {
                return Err(identity::IdentityError::RepeatedHeader { header }.into());
            }
            Credentials::TlsCertificate(der) => identity::identity_from_certificate(der)?,
            Credentials::None => identity::identity_from_headers(None, None)?,
        };
        let row = self.auth_row(&id).await?;
        let entry = row.as_deref().map(|r| &r.entry);
        // Integrity established once per row content (cached); the revoked flag, which the
        // signature does not cover, and the validity period are decided per request.
        let validity = row.as_deref().and_then(|r| r.validity);
        match (entry, validity) {
            // `trust_entry_for` matched thumbprint, country and type.
            (Some(e), Some(validity)) => {
                if e.revoked {
                    return Err(identity::IdentityError::Revoked.into());
                }
                validity.check(now)?;
            }
            _ => {
                let entry = entry.map(TrustEntry::to_entry);
                identity::authorise(&id, entry.as_ref(), &self.anchors)?;
                // Authorised but the certificate's validity period is unreadable.
                return Err(identity::IdentityError::OutsideValidity.into());
            }
        }
        Ok(id)
    }

    /// The caller's AUTHENTICATION row, from the row cache while the trust-list stamp stays
    /// the same, else from the store.
    async fn auth_row(&self, id: &ClientIdentity) -> Result<Option<Arc<AuthRow>>, Error> {
        let stamp = self.store.trust_list_stamp().await?;
        let key = (id.thumbprint.clone(), id.country.clone());
        if let Some(s) = stamp
            && let Some(hit) = self.rows.auth.get(s, &key)
        {
            return Ok(hit);
        }
        let row = self
            .store
            .trust_entry_for(&id.thumbprint, &id.country, CertificateType::Authentication)
            .await?
            .map(|entry| {
                let validity = self.integrity.validity(&entry, &self.anchors);
                Arc::new(AuthRow { entry, validity })
            });
        if let Some(s) = stamp {
            self.rows.auth.put(s, key, row.clone());
        }
        Ok(row)
    }

    /// A download's batch row, from the row cache while the batch stamp stays the same, else
    /// from the store.
    async fn batch_row(&self, lookup: BatchLookup) -> Result<Option<BatchInfo>, Error> {
        let stamp = self.store.batch_stamp().await?;
        if let Some(s) = stamp
            && let Some(hit) = self.rows.batches.get(s, &lookup)
        {
            return Ok(hit);
        }
        let row = match &lookup {
            BatchLookup::Tag(tag) => self.store.batch_by_tag(tag).await?,
            BatchLookup::FirstAtOrAfter(t) => self.store.first_batch_at_or_after(*t).await?,
        };
        if let Some(s) = stamp {
            self.rows.batches.put(s, lookup, row.clone());
        }
        Ok(row)
    }

    /// Handles `POST /diagnosiskeys/upload` for an authenticated caller (protocol §1.2 with
    /// decisions items 3-5): headers, body, validation, 413, batchTag reuse, signature, origins,
    /// then one atomic insert. A byte-identical replay of a stored upload succeeds without
    /// storing anything twice.
    ///
    /// `Ok` carries every expected outcome: stored, replayed, tag already used by this country
    /// for other content, duplicate keys (see [`UploadOutcome`]); `Err` is a refused request
    /// or a storage failure.
    pub async fn upload(
        &self,
        who: &ClientIdentity,
        req: UploadRequest<'_>,
        now: OffsetDateTime,
    ) -> Result<UploadOutcome, Error> {
        Ok(self.upload_signed(who, req, now).await?.0)
    }

    /// [`Gateway::upload`], also naming the thumbprint of the certificate that signed the
    /// batch (for the audit trail): `None` when the signature was not checked (the `batchTag`
    /// was already taken: a replay or a reused tag).
    pub async fn upload_signed(
        &self,
        who: &ClientIdentity,
        req: UploadRequest<'_>,
        now: OffsetDateTime,
    ) -> Result<(UploadOutcome, Option<crate::cert::Thumbprint>), Error> {
        let batch_tag = req
            .batch_tag
            .ok_or(RequestError::MissingHeader("batchTag"))?;
        let signature = req
            .batch_signature
            .ok_or(RequestError::MissingHeader("batchSignature"))?;
        validate::validate_batch_tag(batch_tag)?;
        validate::validate_batch_signature_header(signature)?;
        // Holds at most max_keys keys in memory; more is 413 once the body decoded.
        let batch = crate::proto::decode_body_with_limit(
            req.format,
            req.body,
            self.policy.validation.max_keys,
        )?;
        validate::validate_batch(&batch, now, &self.policy.validation)?;

        // The canonical bytes and the duplicate hashes in one pass (each key's string once).
        let (canonical, hashes) =
            canonical::canonical_batch_bytes_and_hashes(&batch.keys, &self.hasher);
        let digest = content_digest(signature, &canonical);
        // The batchTag rule, before the signature checks (ADR 0003: a replay skips them, a
        // reused tag is answered 409 whatever its signature). The store applies the same rule
        // again inside its atomic insert, for uploads racing under one tag.
        if let Some(existing) = self.store.upload_info(&who.country, batch_tag).await? {
            return Ok((
                UploadOutcome::for_taken_tag(existing.receipt(), &existing.content_digest, &digest),
                None,
            ));
        }

        // The cheap check first: the claimed signer must be a trusted SIGNING entry before a
        // public-key operation is spent on its signature (hardening issue, low items).
        let claim = batch_signature::signer_claim(signature)?;
        self.check_signer_trusted(&claim.thumbprint, &claim.country)
            .await?;
        let signer =
            batch_signature::verify_detached(signature, &canonical, now, &self.policy.signature)?;
        batch_signature::ensure_signer_country(&batch.keys, &signer)?;
        // Every origin equals both the signer's and the caller's country, which ties the two
        // together; an empty batch has no origin, so it is tied directly (protocol §4.3).
        if batch.keys.is_empty() && signer.country != who.country {
            return Err(batch_signature::SignatureError::SignerNotUploader {
                certificate_country: signer.country,
                uploader_country: who.country.clone(),
            }
            .into());
        }
        validate::check_origins(&batch.keys, &who.country)?;

        let keys = batch
            .keys
            .into_iter()
            .zip(hashes)
            .map(|(key, hash)| NewKey { key, hash })
            .collect();
        let upload = NewUpload {
            country: who.country.clone(),
            batch_tag: batch_tag.to_owned(),
            batch_signature: signature.to_owned(),
            uploader_thumbprint: who.thumbprint.clone(),
            signing_thumbprint: signer.thumbprint.clone(),
            format: req.version,
            created_at: now,
            content_digest: digest,
            keys,
        };
        Ok((
            self.store.insert_upload(upload).await?,
            Some(signer.thumbprint),
        ))
    }

    async fn check_signer_trusted(
        &self,
        thumbprint: &Thumbprint,
        country: &str,
    ) -> Result<(), Error> {
        let entry = self
            .store
            .trust_entry_for(thumbprint, country, CertificateType::Signing)
            .await?
            .ok_or(RequestError::UntrustedSigner("not on the trust list"))?;
        if entry.revoked {
            return Err(RequestError::UntrustedSigner("revoked").into());
        }
        if !self.integrity.check(&entry, &self.anchors) {
            return Err(RequestError::UntrustedSigner(
                "trust-list entry failed its integrity check",
            )
            .into());
        }
        Ok(())
    }

    /// Handles `GET /diagnosiskeys/download/{date}` (protocol §1.3): the batch named by the
    /// `batchTag` header, or the first batch created at or after 00:00 UTC of `date`, without
    /// the caller's own country's keys, encoded in `format`. Writes a download statistics row.
    ///
    /// The encoded body is cached per (batch, caller's country, format) within the limits of
    /// [`GatewayPolicy::download_cache`] (see [`crate::download_cache`]); the batch row (and
    /// so the `nextBatchTag` link) is kept while the store's batch stamp stays the same
    /// ([`crate::store::BatchStore::batch_stamp`]: a batch cut by this gateway is linked at
    /// once, one cut by another instance within [`crate::store::STAMP_LAG`]); the statistics
    /// row is recorded on every request (a store may write it off the request's path,
    /// [`crate::store::StatsStore::record_download`]).
    pub async fn download(
        &self,
        who: &ClientIdentity,
        date: &str,
        batch_tag: Option<&str>,
        format: BodyFormat,
        now: OffsetDateTime,
    ) -> Result<DownloadResponse, Error> {
        let date = download::parse_path_date(date)?;
        download::check_requested_date(date, now, &self.policy.download)?;
        let batch = match batch_tag {
            None => self
                .batch_row(BatchLookup::FirstAtOrAfter(
                    download::first_batch_threshold(date),
                ))
                .await?
                .ok_or(DownloadError::NoBatchForDate { date })?,
            Some(raw) => {
                let unknown = || DownloadError::UnknownBatchTag {
                    tag: raw.chars().take(64).collect(),
                };
                let tag = BatchTag::parse(raw.trim()).map_err(|_| unknown())?;
                self.batch_row(BatchLookup::Tag(tag))
                    .await?
                    .ok_or_else(unknown)?
            }
        };
        download::check_batch_day(batch.created_at, date)?;
        let key = CacheKey {
            tag: batch.tag,
            country: Some(who.country.as_str().into()),
            format,
        };
        let cached = self
            .cached(key, now, || {
                self.encode_download(&batch.tag, who, format, now)
            })
            .await?;
        self.store
            .record_download(DownloadStat {
                country: who.country.clone(),
                batch_tag: batch.tag,
                number_of_keys: cached.number_of_keys,
                requested_at: now,
            })
            .await?;
        Ok(DownloadResponse {
            batch_tag: batch.tag,
            next_batch_tag: batch.link,
            format,
            body: cached.body,
            number_of_keys: cached.number_of_keys,
        })
    }

    /// The body cached under `key`, or `encode`'s, which is then cached; concurrent misses
    /// of one key share one encoding.
    async fn cached<F: Future<Output = Result<CachedBody, Error>>>(
        &self,
        key: CacheKey,
        now: OffsetDateTime,
        encode: impl Fn() -> F,
    ) -> Result<CachedBody, Error> {
        if let Some(hit) = self.downloads.get(&key, now) {
            return Ok(hit);
        }
        Ok(match self.downloads.turn(&key) {
            Turn::Lead(lead) => {
                let fresh = encode().await?;
                self.downloads.put(key, fresh.clone(), now);
                lead.finish(fresh.clone());
                fresh
            }
            Turn::Wait(wait) => match wait.await {
                Some(shared) => shared,
                // The encoding request failed or went away: do it here.
                None => encode().await?,
            },
        })
    }

    /// The body of a download: the batch's keys without the caller's country's, encoded.
    ///
    /// With the cache on, the body is cut from the whole batch's encoding in that format,
    /// cached once per batch with each upload's segment ([`Self::whole_batch`]): every
    /// country's download of a batch then costs a copy, not an encoding of every key.
    async fn encode_download(
        &self,
        tag: &BatchTag,
        who: &ClientIdentity,
        format: BodyFormat,
        now: OffsetDateTime,
    ) -> Result<CachedBody, Error> {
        if self.policy.download_cache.max_bytes > 0 {
            let key = CacheKey {
                tag: *tag,
                country: None,
                format,
            };
            let whole = self
                .cached(key, now, || self.whole_batch(tag, format))
                .await?;
            if let Some(body) = whole.without(&who.country, format) {
                return Ok(body);
            }
        }
        let keys = self.store.batch_keys(tag, Some(&who.country)).await?;
        let n = keys.len() as u64;
        Ok(CachedBody::plain(
            Bytes::from(crate::proto::encode_body(
                format,
                &DiagnosisKeyBatch { keys },
            )),
            n,
        ))
    }

    /// The encoding of every key of the batch in `format`, with each upload's segment
    /// ([`crate::download_cache::Segment`]), found from [`KeyStore::audit_groups`] (one group
    /// per upload, in the order of the keys). Without segments if the groups do not add up to
    /// the keys (retention ran in between): the caller then encodes its download itself.
    async fn whole_batch(&self, tag: &BatchTag, format: BodyFormat) -> Result<CachedBody, Error> {
        let keys = self.store.batch_keys(tag, None).await?;
        let groups = self.store.audit_groups(tag).await?;
        if groups.iter().map(|g| g.amount).sum::<u64>() != keys.len() as u64 {
            return Ok(CachedBody::plain(Bytes::new(), 0));
        }
        let mut body = WholeBody::new(format, &keys);
        let mut segments: Vec<Segment> = Vec::with_capacity(groups.len());
        let mut rest = keys.iter();
        for g in groups {
            let range = body.keys(rest.by_ref().take(usize::try_from(g.amount).unwrap_or(0)));
            match segments.last_mut() {
                // Consecutive uploads of one country make one segment.
                Some(last) if *last.country == *g.country => {
                    last.range.end = range.end;
                    last.keys += g.amount;
                }
                _ if range.is_empty() => {}
                _ => segments.push(Segment {
                    country: g.country.into(),
                    range,
                    keys: g.amount,
                }),
            }
        }
        Ok(CachedBody {
            body: body.finish(),
            number_of_keys: keys.len() as u64,
            segments: Some(segments.into()),
        })
    }

    /// Handles `GET /diagnosiskeys/audit/download/{date}/{batchTag}` (protocol §1.4): one entry
    /// per upload inside the batch, ordered by first key, with the certificates and operator
    /// signatures from the trust list (`null` where a row is missing or fails its check).
    pub async fn audit(
        &self,
        date: &str,
        batch_tag: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<AuditEntry>, Error> {
        let date = download::parse_path_date(date)?;
        audit::check_audit_date(date, now, &self.policy.download)?;
        let unknown = || AuditError::UnknownBatchTag {
            tag: batch_tag.chars().take(64).collect(),
        };
        let tag = BatchTag::parse(batch_tag).map_err(|_| unknown())?;
        let batch = self.store.batch_by_tag(&tag).await?.ok_or_else(unknown)?;
        audit::check_audit_batch_day(batch.created_at, date)?;
        let groups = self.store.audit_groups(&tag).await?;
        if groups.is_empty() {
            return Err(AuditError::NoKeys {
                tag: tag.to_string(),
            }
            .into());
        }
        let mut out = Vec::with_capacity(groups.len());
        // One lookup per distinct certificate, not two per upload: a batch of many small
        // uploads by a few countries names a few certificates many times.
        let mut entries: HashMap<(Thumbprint, String, CertificateType), Option<TrustEntry>> =
            HashMap::new();
        for g in groups {
            let mut lookup = async |thumbprint: &Thumbprint, cert_type| -> Result<_, Error> {
                let k = (thumbprint.clone(), g.country.clone(), cert_type);
                if let Some(found) = entries.get(&k) {
                    return Ok(found.clone());
                }
                let found = self
                    .verified_entry(thumbprint, &g.country, cert_type)
                    .await?;
                entries.insert(k, found.clone());
                Ok(found)
            };
            let auth = lookup(&g.uploader_thumbprint, CertificateType::Authentication).await?;
            let sign = lookup(&g.signing_thumbprint, CertificateType::Signing).await?;
            out.push(AuditEntry {
                country: g.country,
                uploaded_time: g.uploaded_at,
                uploader_certificate: auth.as_ref().map(|e| e.pem.clone()),
                uploader_thumbprint: g.uploader_thumbprint,
                uploader_operator_signature: auth.map(|e| e.signature),
                signing_certificate: sign.as_ref().map(|e| e.pem.clone()),
                uploader_signing_thumbprint: g.signing_thumbprint,
                signing_certificate_operator_signature: sign.map(|e| e.signature),
                amount: g.amount,
                batch_signature: g.batch_signature,
            });
        }
        Ok(out)
    }

    async fn verified_entry(
        &self,
        thumbprint: &crate::cert::Thumbprint,
        country: &str,
        cert_type: CertificateType,
    ) -> Result<Option<TrustEntry>, Error> {
        let entry = self
            .store
            .trust_entry_for(thumbprint, country, cert_type)
            .await?;
        Ok(entry.filter(|e| self.integrity.check(e, &self.anchors)))
    }

    /// One batching step (decisions item 12): when a full batch is pending or the oldest
    /// pending upload has waited for the interval, cut the next download batch.
    /// Returns `None` when there is nothing to cut yet. Safe with several instances.
    pub async fn batch_step(&self, now: OffsetDateTime) -> Result<Option<CreatedBatch>, Error> {
        let pending = self.store.pending_summary().await?;
        if !batching::should_cut(&pending, now, &self.policy.batching) {
            return Ok(None);
        }
        let made = self
            .store
            .create_next_batch(now, self.policy.batching.max_keys)
            .await?;
        if let (Some(b), Some(listener)) = (&made, &self.on_batch) {
            listener(b);
        }
        Ok(made)
    }

    /// Cuts every batch that is due now (until [`Self::batch_step`] returns `None` or
    /// `max_batches` were made); returns the batches created.
    pub async fn batch_all_due(
        &self,
        now: OffsetDateTime,
        max_batches: usize,
    ) -> Result<Vec<CreatedBatch>, Error> {
        let mut made = Vec::new();
        while made.len() < max_batches {
            match self.batch_step(now).await? {
                Some(b) => made.push(b),
                None => break,
            }
        }
        Ok(made)
    }

    /// The retention job (decisions item 13): deletes keys older than the download window and
    /// batch metadata older than the metadata window. Returns the key cleanup report. Clears
    /// this gateway's download cache, so deleted keys are not served from it any more.
    pub async fn cleanup(&self, now: OffsetDateTime) -> Result<CleanupReport, Error> {
        let cutoff = retention::key_cutoff(now, &self.policy.retention);
        let report = self.store.delete_keys_before(cutoff, now).await;
        self.downloads.clear();
        self.rows.batches.clear();
        let report = report?;
        let meta = retention::metadata_cutoff(now, &self.policy.retention);
        self.store.delete_batches_before(meta).await?;
        Ok(report)
    }
}

/// The digest that identifies an upload's content for idempotent replay: SHA-256 over the
/// `batchSignature` header, a separator, and the canonical batch bytes.
pub fn content_digest(batch_signature: &str, canonical: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(batch_signature.as_bytes());
    h.update([0u8]);
    h.update(canonical);
    h.finalize().into()
}

/// The encoding of a whole batch being written, upload by upload ([`Gateway::whole_batch`]).
enum WholeBody {
    Protobuf(Vec<u8>, crate::model::VisitedMemo),
    Json {
        out: String,
        first: bool,
        memo: crate::json::VisitedJson,
    },
}

impl WholeBody {
    fn new(format: BodyFormat, keys: &[crate::model::DiagnosisKey]) -> Self {
        match format {
            // Sized from the first key: the keys of a batch are usually alike.
            BodyFormat::Protobuf => WholeBody::Protobuf(
                Vec::with_capacity(
                    keys.first()
                        .map_or(0, |k| prost::Message::encoded_len(k) + 3)
                        .saturating_mul(keys.len())
                        .min(64 << 20),
                ),
                crate::model::VisitedMemo::default(),
            ),
            BodyFormat::Json => {
                let mut out = String::with_capacity(16 + keys.len() * 300);
                out.push_str(if keys.is_empty() {
                    crate::download_cache::JSON_NO_KEYS
                } else {
                    crate::download_cache::JSON_KEYS_START
                });
                WholeBody::Json {
                    out,
                    first: true,
                    memo: Default::default(),
                }
            }
        }
    }

    /// Appends `keys`; returns where they are (separators before them excluded).
    fn keys<'k>(
        &mut self,
        keys: impl Iterator<Item = &'k crate::model::DiagnosisKey>,
    ) -> std::ops::Range<usize> {
        match self {
            WholeBody::Protobuf(body, memo) => {
                let start = body.len();
                for k in keys {
                    memo.encode_batch_entry(k, body);
                }
                start..body.len()
            }
            WholeBody::Json { out, first, memo } => {
                let mut start = None;
                for k in keys {
                    if !*first {
                        out.push(',');
                    }
                    *first = false;
                    start.get_or_insert(out.len());
                    crate::json::write_key(out, k, memo);
                }
                let end = out.len();
                start.unwrap_or(end)..end
            }
        }
    }

    fn finish(self) -> Bytes {
        match self {
            WholeBody::Protobuf(body, _) => body.into(),
            WholeBody::Json { mut out, first, .. } => {
                if !first {
                    out.push_str(crate::download_cache::JSON_KEYS_END);
                }
                out.into()
            }
        }
    }
}
