//! The audit trail on PostgreSQL (migration 0002): appends lock the one-row chain head
//! (`SELECT ... FOR UPDATE`), so concurrent instances append one after the other and the chain
//! stays linear (ADR 0018); push cursors are rows whose lease an `INSERT ... ON CONFLICT DO
//! UPDATE ... WHERE` takes over only when expired (ADR 0019).

use async_trait::async_trait;
use efgs_core::store::{AuditTrailStore, StoreError, TrailEvent, TrailRecord, to_store_precision};
use time::OffsetDateTime;
use tokio_postgres::Row;

use crate::error::PgError;
use crate::store::{PgStore, cached};

const RECORD_COLUMNS: &str = "seq, at, line, prev_hash, hash";

fn hash32(row: &Row, i: usize) -> Result<[u8; 32], PgError> {
    let v: Vec<u8> = row.try_get(i)?;
    <[u8; 32]>::try_from(v.as_slice()).map_err(PgError::corrupt("audit hash"))
}

fn seq(v: i64) -> Result<u64, PgError> {
    u64::try_from(v).map_err(PgError::corrupt("audit sequence number"))
}

fn record(row: &Row) -> Result<TrailRecord, PgError> {
    Ok(TrailRecord {
        seq: seq(row.try_get(0)?)?,
        at: row.try_get(1)?,
        line: row.try_get(2)?,
        prev_hash: hash32(row, 3)?,
        hash: hash32(row, 4)?,
    })
}

fn param(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl PgStore {
    async fn append_inner(&self, events: Vec<TrailEvent>) -> Result<u64, PgError> {
        let mut client = self.db.client().await?;
        let tx = client.transaction().await?;
        let head = tx
            .query_one(
                &cached(
                    &tx,
                    "SELECT seq, hash FROM audit_chain_head WHERE id = 1 FOR UPDATE",
                )
                .await?,
                &[],
            )
            .await?;
        let (mut last, mut prev) = (seq(head.try_get(0)?)?, hash32(&head, 1)?);
        if events.is_empty() {
            return Ok(last);
        }
        let (mut seqs, mut ats, mut lines, mut prevs, mut hashes) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for e in &events {
            let r = TrailRecord::chain(last, prev, e);
            (last, prev) = (r.seq, r.hash);
            seqs.push(param(r.seq));
            ats.push(r.at);
            lines.push(r.line);
            prevs.push(r.prev_hash.to_vec());
            hashes.push(r.hash.to_vec());
        }
        tx.execute(
            &cached(
                &tx,
                "INSERT INTO audit_events (seq, at, line, prev_hash, hash) \
                 SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], \
                 $4::bytea[], $5::bytea[])",
            )
            .await?,
            &[&seqs, &ats, &lines, &prevs, &hashes],
        )
        .await?;
        tx.execute(
            &cached(
                &tx,
                "UPDATE audit_chain_head SET seq = $1, hash = $2 WHERE id = 1",
            )
            .await?,
            &[&param(last), &prev.to_vec()],
        )
        .await?;
        tx.commit().await?;
        Ok(last)
    }

    async fn records_inner(
        &self,
        range: Option<(OffsetDateTime, OffsetDateTime)>,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<TrailRecord>, PgError> {
        let client = self.db.client().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = match range {
            None => {
                client
                    .query(
                        &cached(
                            &client,
                            &format!(
                                "SELECT {RECORD_COLUMNS} FROM audit_events WHERE seq > $1 \
                                 ORDER BY seq LIMIT $2"
                            ),
                        )
                        .await?,
                        &[&param(after_seq), &limit],
                    )
                    .await?
            }
            Some((from, to)) => {
                client
                    .query(
                        &cached(
                            &client,
                            &format!(
                                "SELECT {RECORD_COLUMNS} FROM audit_events WHERE seq > $1 \
                                 AND at >= $2 AND at < $3 ORDER BY seq LIMIT $4"
                            ),
                        )
                        .await?,
                        &[
                            &param(after_seq),
                            &to_store_precision(from),
                            &to_store_precision(to),
                            &limit,
                        ],
                    )
                    .await?
            }
        };
        rows.iter().map(record).collect()
    }

    async fn delete_trail_inner(&self, cutoff: OffsetDateTime) -> Result<u64, PgError> {
        let client = self.db.client().await?;
        Ok(client
            .execute(
                &cached(&client, "DELETE FROM audit_events WHERE at < $1").await?,
                &[&to_store_precision(cutoff)],
            )
            .await?)
    }

    async fn claim_inner(
        &self,
        sink: &str,
        owner: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Option<u64>, PgError> {
        let client = self.db.client().await?;
        let row = client
            .query_opt(
                &cached(
                    &client,
                    "INSERT INTO audit_push (sink, acked_seq, owner, lease_until) \
                     VALUES ($1, 0, $2, $4) \
                     ON CONFLICT (sink) DO UPDATE SET owner = excluded.owner, \
                     lease_until = excluded.lease_until \
                     WHERE audit_push.owner = excluded.owner OR audit_push.lease_until < $3 \
                     RETURNING acked_seq",
                )
                .await?,
                &[&sink, &owner, &now, &until],
            )
            .await?;
        row.map(|r| seq(r.try_get(0)?)).transpose()
    }

    async fn ack_inner(
        &self,
        sink: &str,
        owner: &str,
        acked: u64,
        until: OffsetDateTime,
    ) -> Result<bool, PgError> {
        let client = self.db.client().await?;
        let n = client
            .execute(
                &cached(
                    &client,
                    "UPDATE audit_push SET acked_seq = greatest(acked_seq, $3), \
                     lease_until = $4 WHERE sink = $1 AND owner = $2",
                )
                .await?,
                &[&sink, &owner, &param(acked), &until],
            )
            .await?;
        Ok(n == 1)
    }
}

#[async_trait]
impl AuditTrailStore for PgStore {
    async fn append_audit_events(&self, events: Vec<TrailEvent>) -> Result<u64, StoreError> {
        Ok(self.append_inner(events).await?)
    }

    async fn audit_records_after(
        &self,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<TrailRecord>, StoreError> {
        Ok(self.records_inner(None, after_seq, limit).await?)
    }

    async fn audit_records_between(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<TrailRecord>, StoreError> {
        Ok(self
            .records_inner(Some((from, to)), after_seq, limit)
            .await?)
    }

    async fn delete_audit_records_before(&self, cutoff: OffsetDateTime) -> Result<u64, StoreError> {
        Ok(self.delete_trail_inner(cutoff).await?)
    }

    async fn claim_audit_push(
        &self,
        sink: &str,
        owner: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Option<u64>, StoreError> {
        Ok(self.claim_inner(sink, owner, now, until).await?)
    }

    async fn ack_audit_push(
        &self,
        sink: &str,
        owner: &str,
        seq: u64,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        Ok(self.ack_inner(sink, owner, seq, until).await?)
    }
}

/// The connection pool's state, for the metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStatus {
    /// Most connections the pool opens.
    pub max_size: usize,
    /// Connections open.
    pub size: usize,
    /// Connections open and idle.
    pub available: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
}

impl PgStore {
    /// The connection pool's state now.
    pub fn pool_status(&self) -> PoolStatus {
        let s = self.db.pool.status();
        PoolStatus {
            max_size: s.max_size,
            size: s.size,
            available: s.available,
            waiting: s.waiting,
        }
    }
}
