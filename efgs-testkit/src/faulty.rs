//! `FaultyStore`: a decorator over any store that can be switched to fail every call with
//! [`StoreError::Unavailable`] (a database outage), for testing the server's 503 answers and
//! its recovery without mocks of our own components.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use efgs_core::cert::Thumbprint;
use efgs_core::model::DiagnosisKey;
use efgs_core::store::{
    AuditGroup, BatchInfo, BatchStore, CleanupReport, CreatedBatch, DownloadStat, DynStore,
    KeyCounts, KeyStore, NewUpload, PendingSummary, RetentionStore, StatsStore, StoreError,
    TrustEntry, TrustListStore, UploadInfo, UploadOutcome, UploadStat, UploadStore, Upserted,
};
use efgs_core::tag::BatchTag;
use time::OffsetDateTime;

/// A store whose every call fails with `Unavailable` while [`FaultyStore::set_down`] is on.
#[derive(Debug, Clone)]
pub struct FaultyStore {
    inner: Arc<DynStore>,
    down: Arc<AtomicBool>,
}

#[derive(Debug, thiserror::Error)]
#[error("simulated outage")]
struct Outage;

impl FaultyStore {
    /// Wraps `inner`; it starts up.
    pub fn new(inner: Arc<DynStore>) -> Self {
        FaultyStore {
            inner,
            down: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Starts or ends the simulated outage.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable {
                source: Box::new(Outage),
            })
        } else {
            Ok(())
        }
    }
}

macro_rules! faulty {
    ($trait:ident { $( fn $name:ident(&self $(, $arg:ident : $ty:ty)* ) -> $ret:ty; )* }) => {
        #[async_trait]
        impl $trait for FaultyStore {
            $( async fn $name(&self $(, $arg: $ty)*) -> $ret {
                self.check()?;
                self.inner.$name($($arg),*).await
            } )*
        }
    };
}

faulty!(TrustListStore {
    fn upsert_trust_entry(&self, entry: TrustEntry) -> Result<Upserted, StoreError>;
    fn trust_entry(&self, thumbprint: &Thumbprint) -> Result<Option<TrustEntry>, StoreError>;
    fn revoke_trust_entry(&self, thumbprint: &Thumbprint) -> Result<(), StoreError>;
    fn list_trust_entries(&self) -> Result<Vec<TrustEntry>, StoreError>;
});

faulty!(UploadStore {
    fn insert_upload(&self, upload: NewUpload) -> Result<UploadOutcome, StoreError>;
    fn upload_info(&self, country: &str, batch_tag: &str) -> Result<Option<UploadInfo>, StoreError>;
});

faulty!(BatchStore {
    fn pending_summary(&self) -> Result<PendingSummary, StoreError>;
    fn create_next_batch(&self, now: OffsetDateTime, max_keys: usize)
        -> Result<Option<CreatedBatch>, StoreError>;
    fn batch_by_tag(&self, tag: &BatchTag) -> Result<Option<BatchInfo>, StoreError>;
    fn first_batch_at_or_after(&self, instant: OffsetDateTime)
        -> Result<Option<BatchInfo>, StoreError>;
    fn latest_batch(&self) -> Result<Option<BatchInfo>, StoreError>;
});

faulty!(KeyStore {
    fn batch_keys(&self, tag: &BatchTag, exclude_uploader_country: Option<&str>)
        -> Result<Vec<DiagnosisKey>, StoreError>;
    fn audit_groups(&self, tag: &BatchTag) -> Result<Vec<AuditGroup>, StoreError>;
});

faulty!(StatsStore {
    fn record_download(&self, stat: DownloadStat) -> Result<(), StoreError>;
    fn upload_stats(&self, since: OffsetDateTime) -> Result<Vec<UploadStat>, StoreError>;
    fn download_stats(&self, since: OffsetDateTime) -> Result<Vec<DownloadStat>, StoreError>;
    fn cleanup_stats(&self, since: OffsetDateTime) -> Result<Vec<CleanupReport>, StoreError>;
});

faulty!(RetentionStore {
    fn delete_keys_before(&self, cutoff: OffsetDateTime, now: OffsetDateTime)
        -> Result<CleanupReport, StoreError>;
    fn delete_batches_before(&self, cutoff: OffsetDateTime) -> Result<u64, StoreError>;
    fn key_counts(&self) -> Result<KeyCounts, StoreError>;
});
