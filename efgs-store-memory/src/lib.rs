//! efgs-store-memory: a complete in-memory backend for the efgs-core storage traits.
//!
//! [`MemoryStore`] keeps everything in one process behind a single `std::sync::RwLock`: every
//! trait method runs as one critical section (reading methods share it, changing methods hold
//! it alone), so it is serialisable and atomic exactly as the [`efgs_core::store`] contracts
//! require (the lock is never held across an `.await`; the methods do not await at all). The
//! download statistics rows, written on every download and read by nothing else in a request,
//! have a lock of their own so downloads do not serialise on the main one. It enforces the same uniqueness and ordering rules as the
//! PostgreSQL backend and passes the same conformance suite (`efgs_testkit::conformance`), so
//! tests and single-instance deployments can rely on it. Nothing is persisted: dropping the
//! last handle drops the data ("reopening" a memory store means cloning its `Arc`).
//!
//! The protocol rules come from efgs-core, as for every backend: the `batchTag` rule
//! (`UploadOutcome::for_taken_tag`), the duplicate rule (`KeyConflicts::find`), the
//! trust-list upsert rule (`Upserted::for_stored`) and the batch planner
//! (`batching::plan_batch`); this crate adds the state and the lock. Duplicate
//! detection is O(1) per key (a hash set of the callers' key hashes); keys are packed into
//! fixed-size rows without a heap block per key (`compact`; about 150 bytes of resident
//! memory per key with 27 visited countries, indexes included). See `benches/ingest.rs` for
//! the ingest rate and `benches/rss.rs` for the memory per key.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod compact;

use compact::CompactKeys;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use efgs_core::DiagnosisKey;
use efgs_core::batching::{PendingUpload, plan_batch};
use efgs_core::cert::Thumbprint;
use efgs_core::model::FormatVersion;
use efgs_core::store::{
    AuditGroup, BatchInfo, BatchStore, CleanupReport, CreatedBatch, DownloadStat, KeyConflicts,
    KeyCounts, KeyHash, KeyHashState, KeyStore, NewUpload, PendingSummary, Readmission,
    RetentionStore, StatsStore, StoreError, StoreInspect, TrustEntry, TrustListStore, UploadInfo,
    UploadOutcome, UploadReceipt, UploadStat, UploadStore, Upserted, to_store_precision,
};
use efgs_core::store::{
    CallbackStore, CallbackTask, Subscription, SubscriptionUpsert, TaskClaim, TaskFinish,
    TaskResult,
};
use efgs_core::tag::BatchTag;
use time::OffsetDateTime;

/// An in-memory store implementing every efgs-core storage trait. Cheap to create; share it
/// as `Arc<MemoryStore>` (or `Arc<dyn Store>`).
#[derive(Default)]
pub struct MemoryStore {
    state: RwLock<State>,
    download_stats: Mutex<DownloadStats>,
    trail: Mutex<trail::Trail>,
    /// Change stamps ([`TrustListStore::trust_list_stamp`], [`BatchStore::batch_stamp`]),
    /// bumped after every change (so a reader that saw a stamp sees at least its data).
    trust_stamp: AtomicU64,
    batch_stamp: AtomicU64,
}

mod trail;

/// Download statistics rows, one per download served, kept for ever: stored compactly (the
/// country as an index into the distinct countries seen, the instant as Unix microseconds),
/// about a third of the memory of a `Vec<DownloadStat>`.
#[derive(Debug, Default)]
struct DownloadStats {
    countries: Vec<String>,
    rows: Vec<StatRow>,
}

/// Failures of this backend; they reach callers as the `source` of a `StoreError::Backend`.
#[derive(Debug, thiserror::Error)]
enum MemoryError {
    /// More distinct downloading countries than the compact statistics rows can index.
    #[error("too many distinct countries in the download statistics")]
    TooManyCountries(#[source] std::num::TryFromIntError),
    /// A download instant outside the range of the compact statistics rows.
    #[error("download time out of range")]
    TimeOutOfRange(#[source] std::num::TryFromIntError),
    /// An upload beyond what the compact key rows can address (4 GiB of keyData).
    #[error(transparent)]
    TooLarge(#[from] compact::TooLarge),
}

impl From<MemoryError> for StoreError {
    fn from(e: MemoryError) -> Self {
        StoreError::Backend {
            backend: "memory",
            source: Box::new(e),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct StatRow {
    country: u32,
    batch_tag: BatchTag,
    number_of_keys: u64,
    requested_at_micros: i64,
}

impl DownloadStats {
    fn push(&mut self, stat: DownloadStat) -> Result<(), StoreError> {
        let country = match self.countries.iter().position(|c| *c == stat.country) {
            Some(i) => i,
            None => {
                self.countries.push(stat.country);
                self.countries.len() - 1
            }
        };
        let micros = to_store_precision(stat.requested_at).unix_timestamp_nanos() / 1000;
        self.rows.push(StatRow {
            country: u32::try_from(country).map_err(MemoryError::TooManyCountries)?,
            batch_tag: stat.batch_tag,
            number_of_keys: stat.number_of_keys,
            requested_at_micros: i64::try_from(micros).map_err(MemoryError::TimeOutOfRange)?,
        });
        Ok(())
    }

    fn since(&self, since: OffsetDateTime) -> Vec<DownloadStat> {
        let since = to_store_precision(since).unix_timestamp_nanos() / 1000;
        self.rows
            .iter()
            .filter(|r| i128::from(r.requested_at_micros) >= since)
            .filter_map(|r| {
                Some(DownloadStat {
                    country: self.countries.get(r.country as usize)?.clone(),
                    batch_tag: r.batch_tag,
                    number_of_keys: r.number_of_keys,
                    requested_at: OffsetDateTime::from_unix_timestamp_nanos(
                        i128::from(r.requested_at_micros) * 1000,
                    )
                    .ok()?,
                })
            })
            .collect()
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print keys; a summary is enough.
        let s = self.read();
        f.debug_struct("MemoryStore")
            .field("uploads", &s.uploads.len())
            .field("keys", &s.key_count)
            .field("batches", &s.batches.len())
            .field("trust_entries", &s.trust.len())
            .finish()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    // A panic while holding a lock cannot leave a half-applied change behind: every method
    // validates before it mutates, so the state is consistent even if poisoned.

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(stamp: &AtomicU64) {
        stamp.fetch_add(1, Ordering::SeqCst);
    }

    fn download_stats_lock(&self) -> MutexGuard<'_, DownloadStats> {
        self.download_stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug)]
struct Upload {
    country: String,
    batch_tag: String,
    batch_signature: String,
    uploader_thumbprint: Thumbprint,
    signing_thumbprint: Thumbprint,
    format: FormatVersion,
    created_at: OffsetDateTime,
    content_digest: [u8; 32],
    /// The keys, packed (no heap block per key).
    keys: CompactKeys,
    hashes: Vec<KeyHash>,
    batch: Option<BatchTag>,
}

impl Upload {
    fn receipt(&self) -> UploadReceipt {
        UploadReceipt {
            country: self.country.clone(),
            batch_tag: self.batch_tag.clone(),
            number_of_keys: self.keys.len() as u64,
            created_at: self.created_at,
        }
    }
}

#[derive(Debug)]
struct Batch {
    info: BatchInfo,
    /// Sequence numbers of the uploads in the batch, ascending.
    uploads: Vec<u64>,
}

#[derive(Default)]
struct State {
    trust: BTreeMap<Thumbprint, TrustEntry>,
    /// Uploads by sequence number (upload order).
    uploads: BTreeMap<u64, Upload>,
    next_upload: u64,
    by_tag: HashMap<(String, String), u64>,
    hashes: HashSet<KeyHash, KeyHashState>,
    /// Pending (non-empty, not yet batched) uploads.
    pending: BTreeSet<u64>,
    pending_keys: u64,
    key_count: u64,
    /// Batches by creation sequence.
    batches: BTreeMap<u64, Batch>,
    next_batch: u64,
    batch_by_tag: HashMap<BatchTag, u64>,
    upload_stats: Vec<UploadStat>,
    cleanup_stats: Vec<CleanupReport>,
    /// Callback subscriptions by creation sequence.
    subscriptions: BTreeMap<u64, Sub>,
    next_subscription: u64,
}

/// A callback subscription and its delivery state.
#[derive(Debug, Clone)]
struct Sub {
    sub: Subscription,
    /// Sequence number (in `batches`) of the last batch delivered, or of the latest batch when
    /// the subscription was created; `None` before any batch.
    position: Option<u64>,
    lease_holder: Option<String>,
    lease_until: Option<OffsetDateTime>,
}

impl Sub {
    fn next_batch<'a>(&self, batches: &'a BTreeMap<u64, Batch>) -> Option<(u64, &'a Batch)> {
        let mut after = match self.position {
            Some(p) => batches.range(p + 1..),
            None => batches.range(..),
        };
        after.next().map(|(seq, b)| (*seq, b))
    }
}

impl State {
    fn latest_batch(&self) -> Option<&Batch> {
        self.batches.last_key_value().map(|(_, b)| b)
    }

    fn batch(&self, tag: &BatchTag) -> Option<&Batch> {
        self.batch_by_tag
            .get(tag)
            .and_then(|seq| self.batches.get(seq))
    }

    fn remove_upload(&mut self, seq: u64) {
        if let Some(u) = self.uploads.remove(&seq) {
            for h in &u.hashes {
                self.hashes.remove(h);
            }
            self.by_tag.remove(&(u.country, u.batch_tag));
            let n = u.keys.len() as u64;
            self.key_count -= n;
            if self.pending.remove(&seq) {
                self.pending_keys -= n;
            }
        }
    }
}

#[async_trait]
impl TrustListStore for MemoryStore {
    async fn upsert_trust_entry(&self, mut entry: TrustEntry) -> Result<Upserted, StoreError> {
        entry.created_at = to_store_precision(entry.created_at);
        let mut s = self.write();
        let outcome = Upserted::for_stored(s.trust.get(&entry.thumbprint), &entry);
        if outcome.writes() {
            s.trust.insert(entry.thumbprint.clone(), entry);
            Self::bump(&self.trust_stamp);
        }
        Ok(outcome)
    }

    async fn trust_entry(&self, thumbprint: &Thumbprint) -> Result<Option<TrustEntry>, StoreError> {
        Ok(self.read().trust.get(thumbprint).cloned())
    }

    async fn revoke_trust_entry(&self, thumbprint: &Thumbprint) -> Result<(), StoreError> {
        match self.write().trust.get_mut(thumbprint) {
            Some(e) => {
                e.revoked = true;
                Self::bump(&self.trust_stamp);
                Ok(())
            }
            None => Err(StoreError::NotFound {
                what: "trust-list entry",
            }),
        }
    }

    async fn readmit_trust_entry(
        &self,
        thumbprint: &Thumbprint,
    ) -> Result<Readmission, StoreError> {
        match self.write().trust.get_mut(thumbprint) {
            Some(e) if e.revoked => {
                e.revoked = false;
                Self::bump(&self.trust_stamp);
                Ok(Readmission::Readmitted)
            }
            Some(_) => Ok(Readmission::NotRevoked),
            None => Err(StoreError::NotFound {
                what: "trust-list entry",
            }),
        }
    }

    async fn trust_list_stamp(&self) -> Result<Option<u64>, StoreError> {
        Ok(Some(self.trust_stamp.load(Ordering::SeqCst)))
    }

    async fn list_trust_entries(&self) -> Result<Vec<TrustEntry>, StoreError> {
        let mut all: Vec<TrustEntry> = self.read().trust.values().cloned().collect();
        all.sort_by(|a, b| {
            (&a.country, a.cert_type.as_str(), &a.thumbprint).cmp(&(
                &b.country,
                b.cert_type.as_str(),
                &b.thumbprint,
            ))
        });
        Ok(all)
    }
}

#[async_trait]
impl UploadStore for MemoryStore {
    async fn insert_upload(&self, upload: NewUpload) -> Result<UploadOutcome, StoreError> {
        // Everything that does not need the state happens before taking the lock.
        let NewUpload {
            country,
            batch_tag,
            batch_signature,
            uploader_thumbprint,
            signing_thumbprint,
            format,
            created_at,
            content_digest,
            keys: new_keys,
        } = upload;
        let created_at = to_store_precision(created_at);
        let hashes: Vec<KeyHash> = new_keys.iter().map(|k| k.hash).collect();
        let keys =
            CompactKeys::pack(new_keys.into_iter().map(|k| k.key)).map_err(MemoryError::from)?;
        let tag_key = (country, batch_tag);

        let mut s = self.write();
        let s = &mut *s;
        if let Some(seq) = s.by_tag.get(&tag_key) {
            let earlier = &s.uploads[seq];
            return Ok(UploadOutcome::for_taken_tag(
                earlier.receipt(),
                &earlier.content_digest,
                &content_digest,
            ));
        }
        if let Some(conflicts) = KeyConflicts::find(&hashes, |h| s.hashes.contains(h)) {
            return Ok(UploadOutcome::DuplicateKeys(conflicts));
        }
        s.hashes.extend(hashes.iter().copied());

        let n = keys.len() as u64;
        let seq = s.next_upload;
        s.next_upload += 1;
        let (country, batch_tag) = tag_key;
        s.upload_stats.push(UploadStat {
            country: country.clone(),
            batch_tag: batch_tag.clone(),
            number_of_keys: n,
            created_at,
        });
        s.by_tag.insert((country.clone(), batch_tag.clone()), seq);
        let upload = Upload {
            country,
            batch_tag,
            batch_signature,
            uploader_thumbprint,
            signing_thumbprint,
            format,
            created_at,
            content_digest,
            keys,
            hashes,
            batch: None,
        };
        let receipt = upload.receipt();
        s.uploads.insert(seq, upload);
        s.key_count += n;
        if n > 0 {
            s.pending.insert(seq);
            s.pending_keys += n;
        }
        Ok(UploadOutcome::Stored(receipt))
    }

    async fn upload_info(
        &self,
        country: &str,
        batch_tag: &str,
    ) -> Result<Option<UploadInfo>, StoreError> {
        let s = self.read();
        let key = (country.to_owned(), batch_tag.to_owned());
        Ok(s.by_tag.get(&key).map(|seq| {
            let u = &s.uploads[seq];
            UploadInfo {
                country: u.country.clone(),
                batch_tag: u.batch_tag.clone(),
                number_of_keys: u.keys.len() as u64,
                format: u.format,
                created_at: u.created_at,
                content_digest: u.content_digest,
                download_batch: u.batch,
            }
        }))
    }
}

#[async_trait]
impl BatchStore for MemoryStore {
    async fn pending_summary(&self) -> Result<PendingSummary, StoreError> {
        let s = self.read();
        Ok(PendingSummary {
            uploads: s.pending.len() as u64,
            keys: s.pending_keys,
            oldest: s.pending.iter().map(|seq| s.uploads[seq].created_at).min(),
        })
    }

    async fn create_next_batch(
        &self,
        now: OffsetDateTime,
        max_keys: usize,
    ) -> Result<Option<CreatedBatch>, StoreError> {
        let mut s = self.write();
        let s = &mut *s;

        let latest = s.latest_batch().map(|b| (b.info.tag, b.info.created_at));
        let uploads = &s.uploads;
        let pending = s.pending.iter().map(|seq| {
            let u = &uploads[seq];
            PendingUpload {
                key_count: u.keys.len(),
                format: u.format,
            }
        });
        let Some(plan) = plan_batch(latest, pending, now, max_keys) else {
            return Ok(None);
        };
        let tag = plan.tag;
        let claimed: Vec<u64> = s.pending.iter().take(plan.uploads).copied().collect();
        for seq in &claimed {
            s.pending.remove(seq);
            if let Some(u) = s.uploads.get_mut(seq) {
                u.batch = Some(tag);
            }
        }
        s.pending_keys -= plan.number_of_keys;

        let previous = latest.map(|(t, _)| t);
        if let Some(prev) = s.batches.values_mut().next_back() {
            prev.info.link = Some(tag);
        }
        let info = BatchInfo {
            tag,
            created_at: plan.created_at,
            link: None,
            number_of_keys: plan.number_of_keys,
        };
        let bseq = s.next_batch;
        s.next_batch += 1;
        s.batch_by_tag.insert(tag, bseq);
        s.batches.insert(
            bseq,
            Batch {
                info: info.clone(),
                uploads: claimed,
            },
        );
        Self::bump(&self.batch_stamp);
        Ok(Some(CreatedBatch {
            batch: info,
            previous,
            uploads: plan.uploads as u64,
        }))
    }

    async fn batch_by_tag(&self, tag: &BatchTag) -> Result<Option<BatchInfo>, StoreError> {
        Ok(self.read().batch(tag).map(|b| b.info.clone()))
    }

    async fn batch_stamp(&self) -> Result<Option<u64>, StoreError> {
        Ok(Some(self.batch_stamp.load(Ordering::SeqCst)))
    }

    async fn first_batch_at_or_after(
        &self,
        instant: OffsetDateTime,
    ) -> Result<Option<BatchInfo>, StoreError> {
        let instant = to_store_precision(instant);
        let s = self.read();
        // created_at never decreases along the creation order, but do not rely on it.
        Ok(s.batches
            .values()
            .filter(|b| b.info.created_at >= instant)
            .min_by_key(|b| b.info.created_at)
            .map(|b| b.info.clone()))
    }
}

#[async_trait]
impl KeyStore for MemoryStore {
    async fn batch_keys(
        &self,
        tag: &BatchTag,
        exclude_uploader_country: Option<&str>,
    ) -> Result<Vec<DiagnosisKey>, StoreError> {
        let s = self.read();
        let Some(batch) = s.batch(tag) else {
            return Ok(Vec::new());
        };
        let uploads: Vec<&Upload> = batch
            .uploads
            .iter()
            .filter_map(|seq| s.uploads.get(seq))
            .filter(|u| exclude_uploader_country != Some(u.country.as_str()))
            .collect();
        let mut out = Vec::with_capacity(uploads.iter().map(|u| u.keys.len()).sum());
        for u in uploads {
            u.keys.unpack_into(&mut out);
        }
        Ok(out)
    }

    async fn audit_groups(&self, tag: &BatchTag) -> Result<Vec<AuditGroup>, StoreError> {
        let s = self.read();
        let Some(batch) = s.batch(tag) else {
            return Ok(Vec::new());
        };
        Ok(batch
            .uploads
            .iter()
            .filter_map(|seq| s.uploads.get(seq))
            .filter(|u| !u.keys.is_empty())
            .map(|u| AuditGroup {
                country: u.country.clone(),
                batch_tag: u.batch_tag.clone(),
                uploaded_at: u.created_at,
                uploader_thumbprint: u.uploader_thumbprint.clone(),
                signing_thumbprint: u.signing_thumbprint.clone(),
                batch_signature: u.batch_signature.clone(),
                amount: u.keys.len() as u64,
            })
            .collect())
    }
}

#[async_trait]
impl StatsStore for MemoryStore {
    async fn record_download(&self, stat: DownloadStat) -> Result<(), StoreError> {
        self.download_stats_lock().push(stat)
    }
}

#[async_trait]
impl RetentionStore for MemoryStore {
    async fn delete_keys_before(
        &self,
        cutoff: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<CleanupReport, StoreError> {
        let cutoff = to_store_precision(cutoff);
        let ran_at = to_store_precision(now);
        let mut s = self.write();
        let keys_before = s.key_count;
        let old: Vec<u64> = s
            .uploads
            .iter()
            .filter(|(_, u)| u.created_at < cutoff)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in old {
            s.remove_upload(seq);
        }
        let report = CleanupReport {
            ran_at,
            cutoff,
            deleted: keys_before - s.key_count,
            keys_before,
            keys_after: s.key_count,
        };
        s.cleanup_stats.push(report);
        Ok(report)
    }

    async fn delete_batches_before(&self, cutoff: OffsetDateTime) -> Result<u64, StoreError> {
        let cutoff = to_store_precision(cutoff);
        let mut s = self.write();
        let s = &mut *s;
        let latest = s.batches.last_key_value().map(|(seq, _)| *seq);
        let gone: Vec<u64> = s
            .batches
            .iter()
            .filter(|(seq, b)| {
                Some(**seq) != latest
                    && b.info.created_at < cutoff
                    && !b.uploads.iter().any(|u| s.uploads.contains_key(u))
            })
            .map(|(seq, _)| *seq)
            .collect();
        for seq in &gone {
            if let Some(b) = s.batches.remove(seq) {
                s.batch_by_tag.remove(&b.info.tag);
            }
        }
        Self::bump(&self.batch_stamp);
        Ok(gone.len() as u64)
    }
}

#[async_trait]
impl StoreInspect for MemoryStore {
    async fn latest_batch(&self) -> Result<Option<BatchInfo>, StoreError> {
        Ok(self.read().latest_batch().map(|b| b.info.clone()))
    }

    async fn upload_stats(&self, since: OffsetDateTime) -> Result<Vec<UploadStat>, StoreError> {
        let since = to_store_precision(since);
        Ok(self
            .read()
            .upload_stats
            .iter()
            .filter(|r| r.created_at >= since)
            .cloned()
            .collect())
    }

    async fn download_stats(&self, since: OffsetDateTime) -> Result<Vec<DownloadStat>, StoreError> {
        Ok(self.download_stats_lock().since(since))
    }

    async fn cleanup_stats(&self, since: OffsetDateTime) -> Result<Vec<CleanupReport>, StoreError> {
        let since = to_store_precision(since);
        Ok(self
            .read()
            .cleanup_stats
            .iter()
            .filter(|r| r.ran_at >= since)
            .copied()
            .collect())
    }

    async fn key_counts(&self) -> Result<KeyCounts, StoreError> {
        let s = self.read();
        Ok(KeyCounts {
            stored: s.key_count,
            pending: s.pending_keys,
        })
    }
}

#[async_trait]
impl CallbackStore for MemoryStore {
    async fn upsert_subscription(
        &self,
        country: &str,
        callback_id: &str,
        url: &str,
        now: OffsetDateTime,
    ) -> Result<SubscriptionUpsert, StoreError> {
        let mut s = self.write();
        let s = &mut *s;
        if let Some(e) = s
            .subscriptions
            .values_mut()
            .find(|e| e.sub.country == country && e.sub.callback_id == callback_id)
        {
            let outcome = if e.sub.suspended_at.is_some() {
                SubscriptionUpsert::Reactivated
            } else {
                SubscriptionUpsert::Updated
            };
            if e.sub.suspended_at.is_some() || e.sub.url != url {
                e.sub.retries = 0;
                e.sub.next_attempt_at = None;
                e.sub.suspended_at = None;
            }
            url.clone_into(&mut e.sub.url);
            return Ok(outcome);
        }
        let position = s.batches.last_key_value().map(|(seq, _)| *seq);
        let seq = s.next_subscription;
        s.next_subscription += 1;
        s.subscriptions.insert(
            seq,
            Sub {
                sub: Subscription {
                    country: country.to_owned(),
                    callback_id: callback_id.to_owned(),
                    url: url.to_owned(),
                    created_at: to_store_precision(now),
                    retries: 0,
                    next_attempt_at: None,
                    suspended_at: None,
                },
                position,
                lease_holder: None,
                lease_until: None,
            },
        );
        Ok(SubscriptionUpsert::Created)
    }

    async fn list_subscriptions(&self, country: &str) -> Result<Vec<Subscription>, StoreError> {
        Ok(self
            .read()
            .subscriptions
            .values()
            .filter(|e| e.sub.country == country)
            .map(|e| e.sub.clone())
            .collect())
    }

    async fn delete_subscription(
        &self,
        country: &str,
        callback_id: &str,
    ) -> Result<bool, StoreError> {
        let mut s = self.write();
        let found = s
            .subscriptions
            .iter()
            .find(|(_, e)| e.sub.country == country && e.sub.callback_id == callback_id)
            .map(|(seq, _)| *seq);
        Ok(found.is_some_and(|seq| s.subscriptions.remove(&seq).is_some()))
    }

    async fn claim_callback_tasks(
        &self,
        claim: &TaskClaim,
    ) -> Result<Vec<CallbackTask>, StoreError> {
        let now = to_store_precision(claim.now);
        let until = to_store_precision(claim.lease_until);
        let mut s = self.write();
        let s = &mut *s;
        let mut out = Vec::new();
        for e in s.subscriptions.values_mut() {
            if out.len() >= claim.limit {
                break;
            }
            let due = e.sub.suspended_at.is_none()
                && e.lease_until.is_none_or(|t| t <= now)
                && e.sub.next_attempt_at.is_none_or(|t| t <= now);
            if !due {
                continue;
            }
            let Some((seq, batch)) = e.next_batch(&s.batches) else {
                continue;
            };
            e.lease_holder = Some(claim.holder.clone());
            e.lease_until = Some(until);
            out.push(CallbackTask {
                country: e.sub.country.clone(),
                callback_id: e.sub.callback_id.clone(),
                url: e.sub.url.clone(),
                batch: batch.info.clone(),
                position: seq,
                retries: e.sub.retries,
            });
        }
        Ok(out)
    }

    async fn finish_callback_task(
        &self,
        task: &CallbackTask,
        holder: &str,
        result: TaskResult,
    ) -> Result<TaskFinish, StoreError> {
        let mut s = self.write();
        let Some(e) = s.subscriptions.values_mut().find(|e| {
            e.sub.country == task.country
                && e.sub.callback_id == task.callback_id
                && e.lease_holder.as_deref() == Some(holder)
                && e.position.is_none_or(|p| p < task.position)
        }) else {
            return Ok(TaskFinish::LeaseLost);
        };
        e.lease_holder = None;
        e.lease_until = None;
        match result {
            TaskResult::Delivered => {
                e.position = Some(task.position);
                e.sub.retries = 0;
                e.sub.next_attempt_at = None;
            }
            TaskResult::Retry {
                retries,
                not_before,
            } => {
                e.sub.retries = retries;
                e.sub.next_attempt_at = Some(to_store_precision(not_before));
            }
            TaskResult::Suspend { retries, at } => {
                e.sub.retries = retries;
                e.sub.next_attempt_at = None;
                e.sub.suspended_at = Some(to_store_precision(at));
            }
        }
        Ok(TaskFinish::Recorded)
    }
}
