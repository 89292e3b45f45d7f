//! Download statistics written off the request's path (ADR 0030).
//!
//! `record_download` puts the row on a bounded queue and returns; one background task per
//! store handle takes what is queued (up to [`BATCH_ROWS`] rows) and writes it with one
//! `INSERT … SELECT FROM unnest(…)`, in the order the rows were recorded. When
//! [`QUEUE_ROWS`] rows wait, `record_download` waits for room (at most the pool's wait
//! timeout, then `Unavailable`): rows are never dropped to make room. `flush` queues a marker
//! behind the rows recorded so far and returns once the task wrote everything before it: the
//! server calls it at graceful shutdown, and the inspection reads call it first, so a handle
//! reads its own rows. A failed write is retried with the same rows (backing off up to one
//! second); a flush waiting for it is answered `Unavailable` instead of waiting. When the last
//! handle is dropped the task writes what is queued and ends.

use std::sync::Arc;
use std::time::Duration;

use efgs_core::store::{DownloadStat, StoreError, to_store_precision};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use crate::db::Db;
use crate::error::PgError;
use crate::store::cached;

/// Rows the queue holds before `record_download` waits (about 100 bytes each).
pub(crate) const QUEUE_ROWS: usize = 8192;
/// Rows written by one statement at most.
pub(crate) const BATCH_ROWS: usize = 2048;
/// Write attempts for the rows still queued after the last handle was dropped.
const FINAL_ATTEMPTS: u32 = 5;

enum Item {
    Row(DownloadStat),
    Flush(oneshot::Sender<Result<(), String>>),
}

/// The sending side, held by every clone of the store.
#[derive(Debug)]
pub(crate) struct StatsQueue {
    tx: mpsc::Sender<Item>,
    wait: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Failed(String);

fn unavailable(why: impl Into<String>) -> StoreError {
    StoreError::Unavailable {
        source: Box::new(Failed(why.into())),
    }
}

impl StatsQueue {
    /// Starts the writer task on `db`; `wait` bounds how long a full queue blocks a caller.
    pub(crate) fn start(db: Arc<Db>, wait: Duration) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_ROWS);
        tokio::spawn(writer(db, rx));
        StatsQueue { tx, wait }
    }

    pub(crate) async fn record(&self, stat: DownloadStat) -> Result<(), StoreError> {
        match tokio::time::timeout(self.wait, self.tx.send(Item::Row(stat))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(unavailable("the statistics writer stopped")),
            Err(_) => Err(unavailable(
                "download statistics are not being written fast enough",
            )),
        }
    }

    pub(crate) async fn flush(&self) -> Result<(), StoreError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Item::Flush(ack))
            .await
            .map_err(|_| unavailable("the statistics writer stopped"))?;
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(why)) => Err(unavailable(why)),
            Err(_) => Err(unavailable("the statistics writer stopped")),
        }
    }
}

async fn writer(db: Arc<Db>, mut rx: mpsc::Receiver<Item>) {
    let mut rows: Vec<DownloadStat> = Vec::new();
    let mut acks: Vec<oneshot::Sender<Result<(), String>>> = Vec::new();
    let mut open = true;
    let mut failures = 0u32;
    while open || !rows.is_empty() {
        if rows.is_empty() && acks.is_empty() {
            match rx.recv().await {
                Some(item) => take(item, &mut rows, &mut acks),
                None => open = false,
            }
        }
        while open && rows.len() < BATCH_ROWS {
            match rx.try_recv() {
                Ok(item) => take(item, &mut rows, &mut acks),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => open = false,
            }
        }
        if rows.is_empty() {
            for ack in acks.drain(..) {
                let _ = ack.send(Ok(()));
            }
            continue;
        }
        match insert(&db, &rows).await {
            Ok(()) => {
                failures = 0;
                rows.clear();
                // Items are taken in queue order: every flush marker taken so far stands
                // behind rows that are all written now.
                for ack in acks.drain(..) {
                    let _ = ack.send(Ok(()));
                }
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, rows = rows.len(), "writing download statistics failed; retrying");
                for ack in acks.drain(..) {
                    let _ = ack.send(Err(format!("writing download statistics failed: {e}")));
                }
                if !open && failures >= FINAL_ATTEMPTS {
                    tracing::error!(
                        rows = rows.len(),
                        "download statistics rows lost: the database did not accept them"
                    );
                    rows.clear();
                    continue;
                }
                let backoff = Duration::from_millis(50u64 << failures.min(4));
                tokio::time::sleep(backoff).await;
            }
        }
    }
}

fn take(
    item: Item,
    rows: &mut Vec<DownloadStat>,
    acks: &mut Vec<oneshot::Sender<Result<(), String>>>,
) {
    match item {
        Item::Row(stat) => rows.push(stat),
        Item::Flush(ack) => acks.push(ack),
    }
}

async fn insert(db: &Db, rows: &[DownloadStat]) -> Result<(), PgError> {
    let mut countries = Vec::with_capacity(rows.len());
    let mut tags = Vec::with_capacity(rows.len());
    let mut keys = Vec::with_capacity(rows.len());
    let mut times: Vec<OffsetDateTime> = Vec::with_capacity(rows.len());
    for r in rows {
        countries.push(r.country.to_string());
        tags.push(r.batch_tag.to_string());
        keys.push(i64::try_from(r.number_of_keys).unwrap_or(i64::MAX));
        times.push(to_store_precision(r.requested_at));
    }
    let client = db.client().await?;
    client
        .execute(
            &cached(
                &client,
                "INSERT INTO download_stats (country, batch_tag, number_of_keys, requested_at) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::timestamptz[])",
            )
            .await?,
            &[&countries, &tags, &keys, &times],
        )
        .await?;
    Ok(())
}
