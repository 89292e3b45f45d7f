//! `SlowStore`: a decorator over any store that waits before chosen calls and counts every
//! call, for tests of work in flight (graceful shutdown finishing an upload whose database
//! write is still running, concurrent requests while one is slow) against a real store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

#[derive(Debug, Default)]
struct State {
    delays: HashMap<&'static str, Duration>,
    calls: HashMap<&'static str, u64>,
}

/// A store whose methods named in [`SlowStore::set_delay`] sleep that long before calling the
/// wrapped store (the wait comes first, so the call is "in flight" for the whole delay).
#[derive(Debug, Clone)]
pub struct SlowStore {
    inner: Arc<DynInspectableStore>,
    state: Arc<Mutex<State>>,
}

impl SlowStore {
    /// Wraps `inner`; no delays at first.
    pub fn new(inner: Arc<DynInspectableStore>) -> Self {
        SlowStore {
            inner,
            state: Arc::default(),
        }
    }

    /// Makes every later call of the trait method `method` (e.g. `"insert_upload"`) wait
    /// `delay` first; `Duration::ZERO` removes the delay.
    pub fn set_delay(&self, method: &'static str, delay: Duration) {
        if let Ok(mut s) = self.state.lock() {
            s.delays.insert(method, delay);
        }
    }

    /// How many calls of `method` have started (including ones still waiting).
    pub fn calls(&self, method: &str) -> u64 {
        self.state
            .lock()
            .map(|s| s.calls.get(method).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Waits until `method` has been called `n` times, polling every millisecond; `false`
    /// after `timeout`.
    pub async fn wait_for_calls(&self, method: &str, n: u64, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.calls(method) < n {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        true
    }

    async fn enter(&self, method: &'static str) {
        let delay = match self.state.lock() {
            Ok(mut s) => {
                *s.calls.entry(method).or_insert(0) += 1;
                s.delays.get(method).copied().unwrap_or(Duration::ZERO)
            }
            Err(_) => Duration::ZERO,
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
}

macro_rules! slow {
    ($trait:ident { $( fn $name:ident(&self $(, $arg:ident : $ty:ty)* ) -> $ret:ty; )* }) => {
        #[async_trait]
        impl $trait for SlowStore {
            $( async fn $name(&self $(, $arg: $ty)*) -> $ret {
                self.enter(stringify!($name)).await;
                self.inner.$name($($arg),*).await
            } )*
        }
    };
}

efgs_core::__for_each_store_trait!(slow);
