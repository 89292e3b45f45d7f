//! The trail writer: events are appended in batches off the request path, and each caller
//! waits until the batch holding its events is stored (group commit, ADR 0017): an action is
//! answered only once its event is durable, and concurrent requests share one append.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use efgs_core::store::DynStore;
use efgs_core::trail::{Event, Level};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::ops::Metrics;
use crate::server::Clock;

/// Most events appended in one store call.
const MAX_BATCH: usize = 1024;
/// Requests whose events wait to be appended before further ones wait for room.
const QUEUE: usize = 4096;

/// The events could not be stored (the store failed); the action must not be reported as done.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the audit trail cannot be written")]
pub(crate) struct TrailUnavailable;

struct Job {
    events: Vec<Event>,
    done: oneshot::Sender<Result<(), TrailUnavailable>>,
}

/// A handle on the trail writer (cheap to clone); a no-op when `audit.enabled` is off.
#[derive(Clone)]
pub(crate) struct Trail {
    tx: Option<mpsc::Sender<Job>>,
    clock: Clock,
    appended: Arc<Notify>,
}

impl std::fmt::Debug for Trail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trail")
            .field("enabled", &self.tx.is_some())
            .finish_non_exhaustive()
    }
}

impl Trail {
    /// A trail that records nothing.
    pub(crate) fn off(clock: Clock) -> Self {
        Trail {
            tx: None,
            clock,
            appended: Arc::new(Notify::new()),
        }
    }

    /// Starts the writer on `store`; it ends when every handle is dropped.
    pub(crate) fn start(
        store: Arc<DynStore>,
        metrics: Arc<Metrics>,
        clock: Clock,
    ) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let appended = Arc::new(Notify::new());
        let task = tokio::spawn(write(rx, store, metrics, appended.clone()));
        (
            Trail {
                tx: Some(tx),
                clock,
                appended,
            },
            task,
        )
    }

    /// Whether events are recorded.
    pub(crate) fn is_on(&self) -> bool {
        self.tx.is_some()
    }

    /// Notified after every append (the pushers wait on it when caught up).
    pub(crate) fn appended(&self) -> Arc<Notify> {
        self.appended.clone()
    }

    /// A new event named `name`, stamped now.
    pub(crate) fn event(&self, level: Level, name: &str) -> Event {
        Event::new((self.clock)(), level, name)
    }

    /// Stores `events` in order; returns once they are durable.
    pub(crate) async fn record(&self, events: Vec<Event>) -> Result<(), TrailUnavailable> {
        let Some(tx) = &self.tx else {
            return Ok(());
        };
        if events.is_empty() {
            return Ok(());
        }
        let (done, stored) = oneshot::channel();
        tx.send(Job { events, done })
            .await
            .map_err(|_| TrailUnavailable)?;
        stored.await.map_err(|_| TrailUnavailable)?
    }
}

async fn write(
    mut rx: mpsc::Receiver<Job>,
    store: Arc<DynStore>,
    metrics: Arc<Metrics>,
    appended: Arc<Notify>,
) {
    let mut failing = false;
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        let mut count = jobs[0].events.len();
        while count < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => {
                    count += job.events.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let mut events = Vec::with_capacity(count);
        let mut waiters = Vec::with_capacity(jobs.len());
        for job in jobs {
            events.extend(job.events);
            waiters.push(job.done);
        }
        let result = match store.append_audit_events(events).await {
            Ok(last) => {
                if failing {
                    tracing::info!("audit trail writable again");
                    failing = false;
                }
                metrics
                    .trail_events
                    .fetch_add(count as u64, Ordering::Relaxed);
                metrics.trail_last_seq.fetch_max(last, Ordering::Relaxed);
                appended.notify_waiters();
                Ok(())
            }
            Err(e) => {
                metrics.trail_failures.fetch_add(1, Ordering::Relaxed);
                if !failing {
                    tracing::error!(code = e.code(), error = %e, "audit trail append failed; the actions waiting for it are answered 503");
                    failing = true;
                }
                Err(TrailUnavailable)
            }
        };
        for w in waiters {
            let _ = w.send(result);
        }
    }
}
