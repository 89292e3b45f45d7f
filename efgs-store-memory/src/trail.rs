//! The audit trail in memory: the records in sequence order, the chain head (kept when
//! retention removes every record) and the push cursors, behind a lock of their own so
//! appends never wait for uploads.

use std::collections::{BTreeMap, VecDeque};
use std::sync::MutexGuard;

use async_trait::async_trait;
use efgs_core::store::{AuditTrailStore, StoreError, TrailEvent, TrailRecord, to_store_precision};
use efgs_core::trail::GENESIS;
use time::OffsetDateTime;

use crate::MemoryStore;

/// The trail's state.
#[derive(Debug)]
pub(crate) struct Trail {
    records: VecDeque<TrailRecord>,
    head: (u64, [u8; 32]),
    cursors: BTreeMap<String, Cursor>,
}

impl Default for Trail {
    fn default() -> Self {
        Trail {
            records: VecDeque::new(),
            head: (0, GENESIS),
            cursors: BTreeMap::new(),
        }
    }
}

#[derive(Debug)]
struct Cursor {
    acked: u64,
    owner: String,
    until: OffsetDateTime,
}

impl MemoryStore {
    fn trail(&self) -> MutexGuard<'_, Trail> {
        self.trail.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Trail {
    /// Index of the first record with a sequence number above `seq`.
    fn after(&self, seq: u64) -> usize {
        self.records.partition_point(|r| r.seq <= seq)
    }
}

#[async_trait]
impl AuditTrailStore for MemoryStore {
    async fn append_audit_events(&self, events: Vec<TrailEvent>) -> Result<u64, StoreError> {
        let mut t = self.trail();
        for e in &events {
            let (seq, prev) = t.head;
            let r = TrailRecord::chain(seq, prev, e);
            t.head = (r.seq, r.hash);
            t.records.push_back(r);
        }
        Ok(t.head.0)
    }

    async fn audit_records_after(
        &self,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<TrailRecord>, StoreError> {
        let t = self.trail();
        let start = t.after(after_seq);
        Ok(t.records.range(start..).take(limit).cloned().collect())
    }

    async fn audit_records_between(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<TrailRecord>, StoreError> {
        let (from, to) = (to_store_precision(from), to_store_precision(to));
        let t = self.trail();
        let start = t.after(after_seq);
        Ok(t.records
            .range(start..)
            .filter(|r| r.at >= from && r.at < to)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn delete_audit_records_before(&self, cutoff: OffsetDateTime) -> Result<u64, StoreError> {
        let cutoff = to_store_precision(cutoff);
        let mut t = self.trail();
        let before = t.records.len();
        t.records.retain(|r| r.at >= cutoff);
        Ok((before - t.records.len()) as u64)
    }

    async fn claim_audit_push(
        &self,
        sink: &str,
        owner: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Option<u64>, StoreError> {
        let mut t = self.trail();
        let c = t.cursors.entry(sink.to_owned()).or_insert_with(|| Cursor {
            acked: 0,
            owner: owner.to_owned(),
            until,
        });
        if c.owner == owner || c.until < now {
            c.owner = owner.to_owned();
            c.until = until;
            Ok(Some(c.acked))
        } else {
            Ok(None)
        }
    }

    async fn ack_audit_push(
        &self,
        sink: &str,
        owner: &str,
        seq: u64,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut t = self.trail();
        match t.cursors.get_mut(sink) {
            Some(c) if c.owner == owner => {
                c.acked = c.acked.max(seq);
                c.until = until;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
