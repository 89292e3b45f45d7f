//! The change stamps of `efgs_core::store` on PostgreSQL (migration 0004, ADR 0030).
//!
//! Triggers bump a counter in `change_stamps` in the same transaction as every statement that
//! writes `certificates` or `batches`. Each store handle polls that table every
//! [`POLL_EVERY`] in a background task and answers `trust_list_stamp` / `batch_stamp` from the
//! last poll, without a round trip; after a write through this handle it polls at once, so the
//! handle's own writes change its stamps before the write returns. A poll older than
//! [`FRESH_FOR`] (the task fell behind, or the database did not answer) is not trusted: the
//! next stamp call polls itself and fails with `Unavailable` if the database does not answer.
//! So a change made anywhere reaches every handle's stamps within `FRESH_FOR` plus one poll,
//! well inside `efgs_core::store::STAMP_LAG` (one second).

use std::sync::Weak;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::db::Db;
use crate::error::PgError;
use crate::store::cached;

/// How often the background task reads the stamps.
pub(crate) const POLL_EVERY: Duration = Duration::from_millis(200);
/// How long a poll is trusted (counted from the moment it was sent).
pub(crate) const FRESH_FOR: Duration = Duration::from_millis(600);

/// Which stamp.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    /// `certificates` (the trust list).
    TrustList,
    /// `batches` (download batch metadata).
    Batches,
}

/// The last stamps read, and when.
#[derive(Debug)]
pub(crate) struct Stamps {
    trust_list: AtomicU64,
    batches: AtomicU64,
    base: Instant,
    /// Nanoseconds after `base` at which the last successful poll was sent, plus one; 0 when
    /// there is none (or after a failed poll following a write).
    polled: AtomicU64,
}

impl Stamps {
    pub(crate) fn new() -> Self {
        Stamps {
            trust_list: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            base: Instant::now(),
            polled: AtomicU64::new(0),
        }
    }

    fn fresh(&self) -> bool {
        let polled = self.polled.load(Ordering::Acquire);
        if polled == 0 {
            return false;
        }
        let sent = self.base + Duration::from_nanos(polled - 1);
        sent.elapsed() < FRESH_FOR
    }

    /// Forgets when the last poll was made: the next stamp call polls itself.
    pub(crate) fn invalidate(&self) {
        self.polled.store(0, Ordering::Release);
    }

    fn get(&self, kind: Kind) -> u64 {
        match kind {
            Kind::TrustList => self.trust_list.load(Ordering::Acquire),
            Kind::Batches => self.batches.load(Ordering::Acquire),
        }
    }

    /// Reads the stamps (one query) and records them.
    pub(crate) async fn poll(&self, db: &Db) -> Result<(), PgError> {
        let sent = self.base.elapsed();
        let client = db.client().await?;
        let rows = client
            .query(
                &cached(&client, "SELECT name, stamp FROM change_stamps").await?,
                &[],
            )
            .await?;
        for row in &rows {
            let name: &str = row.try_get(0)?;
            let stamp: i64 = row.try_get(1)?;
            let stamp = u64::try_from(stamp).unwrap_or(0);
            let slot = match name {
                "certificates" => &self.trust_list,
                "batches" => &self.batches,
                _ => continue,
            };
            // Stamps only grow; a slower, older poll finishing late never moves one back.
            slot.fetch_max(stamp, Ordering::AcqRel);
        }
        let at = u64::try_from(sent.as_nanos()).unwrap_or(u64::MAX - 1) + 1;
        self.polled.fetch_max(at, Ordering::AcqRel);
        Ok(())
    }

    /// The stamp of `kind`: from the last poll while it is fresh, else after polling now.
    pub(crate) async fn current(&self, db: &Db, kind: Kind) -> Result<u64, PgError> {
        if !self.fresh() {
            self.poll(db).await?;
        }
        Ok(self.get(kind))
    }
}

/// Polls every [`POLL_EVERY`] until the store is dropped.
pub(crate) fn spawn_poller(db: Weak<Db>, stamps: Weak<Stamps>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(POLL_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (Some(db), Some(stamps)) = (db.upgrade(), stamps.upgrade()) else {
                break;
            };
            if let Err(e) = stamps.poll(&db).await {
                tracing::debug!(error = %e, "reading the change stamps failed");
            }
        }
    });
}
