//! The batching planner (protocol §5, decisions item 12): which pending uploads form the next
//! download batch, and when a batch should be cut.
//!
//! Pending uploads are considered in the order they were stored. The planner is greedy with no
//! skipping ahead: it takes uploads while the running key count stays within the limit and the
//! format version matches the first one. An upload is never split. A single upload larger than
//! the limit (impossible when the configured upload maximum is at most the batch maximum, which
//! the server enforces at start) forms a batch on its own rather than blocking the queue.

use crate::model::FormatVersion;
use time::{Duration, OffsetDateTime};

/// What the planner needs to know about one pending (not yet batched) upload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingUpload {
    /// Number of keys in the upload.
    pub key_count: usize,
    /// The upload's payload format version.
    pub format: FormatVersion,
    /// When the upload was stored.
    pub created_at: OffsetDateTime,
}

/// Batching settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchingPolicy {
    /// Maximum keys per download batch (reference `doclimit`, 5000).
    pub max_keys: usize,
    /// Cut a batch once the oldest pending upload is at least this old (default 300 s).
    pub interval: Duration,
}

impl Default for BatchingPolicy {
    fn default() -> Self {
        BatchingPolicy {
            max_keys: crate::model::MAX_KEYS_PER_BATCH,
            interval: Duration::seconds(300),
        }
    }
}

/// How many of the leading `pending` uploads (in storage order) go into the next batch.
/// Returns 0 only when `pending` is empty.
pub fn plan_next_batch(pending: &[PendingUpload], max_keys: usize) -> usize {
    let Some(first) = pending.first() else {
        return 0;
    };
    let mut total = 0usize;
    let mut taken = 0usize;
    for upload in pending {
        if upload.format != first.format {
            break;
        }
        if taken > 0 && total.saturating_add(upload.key_count) > max_keys {
            break;
        }
        total = total.saturating_add(upload.key_count);
        taken += 1;
        if total >= max_keys {
            break;
        }
    }
    taken
}

/// Whether a batch should be cut now (decisions item 12): as soon as a full batch's worth of
/// keys is pending, or the oldest pending upload has waited for the batch interval.
pub fn should_cut(pending: &[PendingUpload], now: OffsetDateTime, policy: &BatchingPolicy) -> bool {
    let Some(oldest) = pending.iter().map(|p| p.created_at).min() else {
        return false;
    };
    let total: usize = pending.iter().map(|p| p.key_count).sum();
    total >= policy.max_keys || now - oldest >= policy.interval
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn up(n: usize, major: u16, minor: u16) -> PendingUpload {
        PendingUpload {
            key_count: n,
            format: FormatVersion { major, minor },
            created_at: datetime!(2026-11-28 10:00 UTC),
        }
    }

    /// Runs the planner to exhaustion and returns the key counts of each batch.
    fn plan_all(mut pending: Vec<PendingUpload>, limit: usize) -> Vec<usize> {
        let mut out = Vec::new();
        while !pending.is_empty() {
            let n = plan_next_batch(&pending, limit);
            assert!(n > 0);
            out.push(pending.drain(..n).map(|p| p.key_count).sum());
        }
        out
    }

    #[test]
    fn greedy_grouping_never_skips_ahead() {
        // protocol §12 item 75: limit 9, uploads 5/5/5/5/3 give 5, 5, 5, 8.
        let pending = [5, 5, 5, 5, 3].map(|n| up(n, 1, 0)).to_vec();
        assert_eq!(plan_all(pending, 9), vec![5, 5, 5, 8]);
    }

    #[test]
    fn formats_are_never_mixed() {
        // protocol §12 item 76: 1.0, 1.0, 1.1, 1.0 give three batches.
        let pending = vec![up(1, 1, 0), up(1, 1, 0), up(1, 1, 1), up(1, 1, 0)];
        assert_eq!(plan_all(pending, 5000), vec![2, 1, 1]);
    }

    #[test]
    fn exact_fit_and_oversized() {
        assert_eq!(plan_next_batch(&[up(5000, 1, 0), up(1, 1, 0)], 5000), 1);
        assert_eq!(
            plan_next_batch(&[up(2500, 1, 0), up(2500, 1, 0), up(1, 1, 0)], 5000),
            2
        );
        assert_eq!(plan_next_batch(&[up(6000, 1, 0), up(1, 1, 0)], 5000), 1);
        assert_eq!(plan_next_batch(&[], 5000), 0);
        // Empty uploads travel with the batch they are in.
        assert_eq!(plan_next_batch(&[up(0, 1, 0), up(3, 1, 0)], 5000), 2);
    }

    #[test]
    fn cut_when_full_or_old() {
        let policy = BatchingPolicy::default();
        let t0 = datetime!(2026-11-28 10:00 UTC);
        let young = [up(10, 1, 0)];
        assert!(!should_cut(&young, t0 + Duration::seconds(299), &policy));
        assert!(should_cut(&young, t0 + Duration::seconds(300), &policy));
        assert!(should_cut(&[up(5000, 1, 0)], t0, &policy));
        assert!(!should_cut(&[], t0 + Duration::days(1), &policy));
    }
}
