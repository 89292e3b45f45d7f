//! `ChaosStore`: a decorator over any store that fails or delays chosen operations at chosen
//! rates, deterministically from a seed: before the call (the operation did not happen), or
//! after it (the operation happened but the caller is told it failed, as when a database
//! commits and the connection drops before the answer arrives).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use efgs_core::cert::Thumbprint;
use efgs_core::model::DiagnosisKey;
use efgs_core::store::{
    AuditGroup, AuditTrailStore, BatchInfo, BatchStore, CallbackStore, CallbackTask, CleanupReport,
    CreatedBatch, DownloadStat, DynInspectableStore, KeyCounts, KeyStore, NewUpload,
    PendingSummary, Readmission, RetentionStore, StatsStore, StoreError, StoreInspect,
    Subscription, SubscriptionUpsert, TaskClaim, TaskFinish, TaskResult, TrailEvent, TrailRecord,
    TrustEntry, TrustListStore, UploadInfo, UploadOutcome, UploadStat, UploadStore, Upserted,
};
use efgs_core::tag::BatchTag;
use time::OffsetDateTime;

/// What happens to calls of one method.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Chaos {
    /// Share of calls that fail before reaching the store.
    pub fail_before: f64,
    /// Share of calls that reach the store and then report failure.
    pub fail_after: f64,
    /// Wait before every call.
    pub delay: Duration,
}

/// A store with faults; see the module documentation.
#[derive(Debug, Clone)]
pub struct ChaosStore {
    inner: Arc<DynInspectableStore>,
    plan: Arc<HashMap<&'static str, Chaos>>,
    seed: u64,
    counter: Arc<AtomicU64>,
    injected: Arc<AtomicU64>,
}

#[derive(Debug, thiserror::Error)]
#[error("simulated store fault")]
struct Fault;

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl ChaosStore {
    /// Wraps `inner` with `plan` (method name, e.g. `"insert_upload"`, to its faults).
    pub fn new(
        inner: Arc<DynInspectableStore>,
        plan: HashMap<&'static str, Chaos>,
        seed: u64,
    ) -> Self {
        ChaosStore {
            inner,
            plan: Arc::new(plan),
            seed,
            counter: Arc::default(),
            injected: Arc::default(),
        }
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    fn roll(&self, rate: f64) -> bool {
        if rate <= 0.0 {
            return false;
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let hit = (mix(self.seed ^ n) >> 11) as f64 / (1u64 << 53) as f64 <= rate;
        if hit {
            self.injected.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }

    async fn before(&self, method: &'static str) -> Result<Chaos, StoreError> {
        let chaos = self.plan.get(method).copied().unwrap_or_default();
        if !chaos.delay.is_zero() {
            tokio::time::sleep(chaos.delay).await;
        }
        if self.roll(chaos.fail_before) {
            return Err(fault());
        }
        Ok(chaos)
    }

    fn after<T>(&self, chaos: Chaos, r: Result<T, StoreError>) -> Result<T, StoreError> {
        match r {
            Ok(_) if self.roll(chaos.fail_after) => Err(fault()),
            r => r,
        }
    }
}

fn fault() -> StoreError {
    StoreError::Unavailable {
        source: Box::new(Fault),
    }
}

macro_rules! chaos {
    ($trait:ident { $( fn $name:ident(&self $(, $arg:ident : $ty:ty)* ) -> $ret:ty; )* }) => {
        #[async_trait]
        impl $trait for ChaosStore {
            $( async fn $name(&self $(, $arg: $ty)*) -> $ret {
                let chaos = self.before(stringify!($name)).await?;
                let r = self.inner.$name($($arg),*).await;
                self.after(chaos, r)
            } )*
        }
    };
}

efgs_core::__for_each_store_trait!(chaos);
