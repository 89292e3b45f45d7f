//! `FaultyStore`: a decorator over any store that can be switched to fail every call with
//! [`StoreError::Unavailable`] (a database outage), for testing the server's 503 answers and
//! its recovery without mocks of our own components.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use efgs_core::cert::Thumbprint;
use efgs_core::model::DiagnosisKey;
use efgs_core::store::{
    AuditGroup, AuditTrailStore, BatchInfo, BatchStore, CleanupReport, CreatedBatch, DownloadStat,
    DynInspectableStore, KeyCounts, KeyStore, NewUpload, PendingSummary, Readmission,
    RetentionStore, StatsStore, StoreError, StoreInspect, TrailEvent, TrailRecord, TrustEntry,
    TrustListStore, UploadInfo, UploadOutcome, UploadStat, UploadStore, Upserted,
};
use efgs_core::store::{
    CallbackStore, CallbackTask, Subscription, SubscriptionUpsert, TaskClaim, TaskFinish,
    TaskResult,
};
use efgs_core::tag::BatchTag;
use time::OffsetDateTime;

/// A store whose every call fails with `Unavailable` while [`FaultyStore::set_down`] is on.
#[derive(Debug, Clone)]
pub struct FaultyStore {
    inner: Arc<DynInspectableStore>,
    down: Arc<AtomicBool>,
}

#[derive(Debug, thiserror::Error)]
#[error("simulated outage")]
struct Outage;

impl FaultyStore {
    /// Wraps `inner`; it starts up.
    pub fn new(inner: Arc<DynInspectableStore>) -> Self {
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

efgs_core::__for_each_store_trait!(faulty);
