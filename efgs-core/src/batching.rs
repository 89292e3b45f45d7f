//! The batching planner (protocol §5, decisions item 12): when a batch should be cut, which
//! pending uploads form the next download batch, and its tag and instant. Every store's
//! [`crate::store::BatchStore::create_next_batch`] calls [`plan_batch`]; the gateway's batching
//! step calls [`should_cut`].
//!
//! Pending uploads are considered in the order they were stored. The planner is greedy with no
//! skipping ahead: it takes uploads while the running key count stays within the limit and the
//! format version matches the first one. An upload is never split. A single upload larger than
//! the limit (impossible when the configured upload maximum is at most the batch maximum, which
//! the server enforces at start) forms a batch on its own rather than blocking the queue.

use std::borrow::Borrow;

use crate::model::FormatVersion;
use crate::store::{PendingSummary, to_store_precision};
use crate::tag::BatchTag;
use time::{Duration, OffsetDateTime};

/// What the planner needs to know about one pending (not yet batched) upload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingUpload {
    /// Number of keys in the upload.
    pub key_count: usize,
    /// The upload's payload format version.
    pub format: FormatVersion,
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

/// The greedy rule: how many of the leading uploads go into the next batch, their keys and
/// their common format. Reads the uploads only up to the first one it does not take.
fn greedy<I>(pending: I, max_keys: usize) -> Option<(usize, usize, FormatVersion)>
where
    I: IntoIterator,
    I::Item: Borrow<PendingUpload>,
{
    let mut pending = pending.into_iter();
    let first = *pending.next()?.borrow();
    let mut total = first.key_count;
    let mut taken = 1usize;
    if total < max_keys {
        for upload in pending {
            let upload = upload.borrow();
            if upload.format != first.format || total.saturating_add(upload.key_count) > max_keys {
                break;
            }
            total = total.saturating_add(upload.key_count);
            taken += 1;
            if total >= max_keys {
                break;
            }
        }
    }
    Some((taken, total, first.format))
}

/// At most this many leading pending uploads are read by the planner for `max_keys`, when no
/// pending upload is empty (stores never keep empty uploads pending): a store may fetch just
/// this prefix of its queue.
pub fn planner_lookahead(max_keys: usize) -> usize {
    max_keys.saturating_add(1)
}

/// The next download batch, as [`plan_batch`] plans it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchPlan {
    /// How many of the leading pending uploads the batch claims (at least 1).
    pub uploads: usize,
    /// Number of keys in them.
    pub number_of_keys: u64,
    /// Their format version (one batch never mixes versions).
    pub format: FormatVersion,
    /// The new batch's tag.
    pub tag: BatchTag,
    /// The new batch's creation instant, at store precision.
    pub created_at: OffsetDateTime,
}

/// Plans the next download batch, the rule behind
/// [`crate::store::BatchStore::create_next_batch`]: `latest` is the most recently created batch
/// (its tag and instant), `pending` the pending uploads in upload order (read lazily, only as
/// far as the greedy rule looks), `now` the caller's instant. `None` when nothing is pending.
///
/// The batch claims the leading uploads the greedy rule of the [module documentation](self)
/// takes (at least one). It is created at
/// `t = max(now, latest.created_at)` (microseconds, UTC; if the clock went backwards the batch
/// is dated at the latest batch's instant, so `created_at` never decreases along the chain)
/// and tagged `BatchTag::next(latest, t)` (dense `yyyyMMdd-N` per UTC day).
pub fn plan_batch<I>(
    latest: Option<(BatchTag, OffsetDateTime)>,
    pending: I,
    now: OffsetDateTime,
    max_keys: usize,
) -> Option<BatchPlan>
where
    I: IntoIterator,
    I::Item: Borrow<PendingUpload>,
{
    let (uploads, keys, format) = greedy(pending, max_keys)?;
    let now = to_store_precision(now);
    let created_at = match latest {
        Some((_, t)) if t > now => t,
        _ => now,
    };
    Some(BatchPlan {
        uploads,
        number_of_keys: keys as u64,
        format,
        tag: BatchTag::next(latest.as_ref().map(|(t, _)| t), created_at),
        created_at,
    })
}

/// Whether a batch should be cut now (decisions item 12): as soon as a full batch's worth of
/// keys is pending, or the oldest pending upload has waited for the batch interval. Nothing
/// pending: never.
pub fn should_cut(pending: &PendingSummary, now: OffsetDateTime, policy: &BatchingPolicy) -> bool {
    let Some(oldest) = pending.oldest else {
        return false;
    };
    let full = usize::try_from(pending.keys).map_or(true, |k| k >= policy.max_keys);
    full || now - oldest >= policy.interval
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    /// How many of the leading `pending` uploads go into the next batch (0: none pending).
    fn plan_next_batch(pending: &[PendingUpload], max_keys: usize) -> usize {
        greedy(pending, max_keys).map_or(0, |(taken, _, _)| taken)
    }

    fn up(n: usize, major: u16, minor: u16) -> PendingUpload {
        PendingUpload {
            key_count: n,
            format: FormatVersion { major, minor },
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
        let young = PendingSummary {
            uploads: 1,
            keys: 10,
            oldest: Some(t0),
        };
        assert!(!should_cut(&young, t0 + Duration::seconds(299), &policy));
        assert!(should_cut(&young, t0 + Duration::seconds(300), &policy));
        let full = PendingSummary {
            keys: 5000,
            ..young
        };
        assert!(should_cut(&full, t0, &policy));
        let none = PendingSummary::default();
        assert!(!should_cut(&none, t0, &policy));
        assert!(!should_cut(&none, t0 + Duration::days(1), &policy));
    }

    #[test]
    fn plan_dates_and_tags_the_batch() {
        let t0 = datetime!(2026-11-28 10:00:00.123456789 UTC);
        let pending = [up(3, 1, 0), up(4, 1, 0), up(1, 1, 1)];
        let first = plan_batch(None, pending, t0, 5000).unwrap();
        assert_eq!(first.uploads, 2);
        assert_eq!(first.number_of_keys, 7);
        assert_eq!(first.format, FormatVersion::V1_0);
        assert_eq!(first.tag.to_string(), "20261128-1");
        assert_eq!(first.created_at, datetime!(2026-11-28 10:00:00.123456 UTC));
        // The clock went backwards: dated at the latest batch, next number of its day.
        let latest = Some((first.tag, first.created_at));
        let back = plan_batch(latest, [up(1, 1, 1)], t0 - Duration::hours(1), 5000).unwrap();
        assert_eq!(back.created_at, first.created_at);
        assert_eq!(back.tag.to_string(), "20261128-2");
        // A new UTC day restarts the numbers.
        let next_day = plan_batch(latest, [up(1, 1, 0)], t0 + Duration::days(1), 5000).unwrap();
        assert_eq!(next_day.tag.to_string(), "20261129-1");
        assert_eq!(plan_batch(latest, [] as [PendingUpload; 0], t0, 5000), None);
        assert_eq!(planner_lookahead(usize::MAX), usize::MAX);
    }

    #[test]
    fn planner_reads_no_further_than_it_takes() {
        // An iterator that panics past the first upload the planner does not take.
        let pending = [up(2, 1, 0), up(2, 1, 0), up(9, 1, 0)];
        let mut read = 0;
        let counted = pending.iter().inspect(|_| read += 1);
        assert_eq!(greedy(counted, 5).map(|g| g.0), Some(2));
        assert_eq!(read, 3);
        let mut read = 0;
        let counted = pending.iter().inspect(|_| read += 1);
        assert_eq!(greedy(counted, 4).map(|g| g.0), Some(2));
        assert_eq!(read, 2, "a full batch stops reading");
    }
}
