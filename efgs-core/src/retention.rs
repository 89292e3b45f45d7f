//! Data retention (protocol §8, decisions item 13).
//!
//! Keys are personal data and are kept only as long as they can be downloaded: a daily job
//! deletes every key created strictly before [`key_cutoff`] (00:00 UTC of today minus
//! [`RetentionPolicy::key_max_age_days`]). Batch metadata without personal data (batch rows,
//! upload and download statistics, cleanup reports) may be kept until [`metadata_cutoff`], so a
//! late audit or download still answers 404/410 correctly instead of finding nothing.
//!
//! With the default 2 days, a key created on day D survives until the job that runs on day
//! D + 3 at 00:00, i.e. 2 to 3 days, exactly as in the reference. Note the job's schedule is
//! the server's business; the cutoff depends only on the UTC date of `now`.

use time::{Duration, OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// How long data is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Keys older than this many days (counted from today's 00:00 UTC) are deleted. Default 2,
    /// the download window of the reference in production.
    pub key_max_age_days: u32,
    /// Batch metadata older than this many days may be deleted. Default 30.
    pub metadata_max_age_days: u32,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            key_max_age_days: 2,
            metadata_max_age_days: 30,
        }
    }
}

/// 00:00 UTC of `now`'s UTC date minus `days` days; saturates at the earliest representable
/// instant (nothing is old enough to delete) instead of panicking on absurd configurations.
fn midnight_minus_days(now: OffsetDateTime, days: u32) -> OffsetDateTime {
    let today = now.to_offset(UtcOffset::UTC).date();
    today
        .checked_sub(Duration::days(i64::from(days)))
        .map(|d| d.midnight().assume_utc())
        .unwrap_or_else(|| PrimitiveDateTime::MIN.assume_utc())
}

/// The key cutoff at `now`: 00:00 UTC of today (UTC) minus `key_max_age_days` days. Keys with
/// `created_at` strictly before it are deleted ([`is_expired`]); a key created exactly at the
/// cutoff is kept (protocol §8, §12 item 78).
pub fn key_cutoff(now: OffsetDateTime, policy: &RetentionPolicy) -> OffsetDateTime {
    midnight_minus_days(now, policy.key_max_age_days)
}

/// The metadata cutoff at `now`: 00:00 UTC of today (UTC) minus `metadata_max_age_days` days.
/// Batch metadata created strictly before it may be deleted.
pub fn metadata_cutoff(now: OffsetDateTime, policy: &RetentionPolicy) -> OffsetDateTime {
    midnight_minus_days(now, policy.metadata_max_age_days)
}

/// Whether a record created at `created_at` is past `cutoff` (strictly before it).
pub fn is_expired(created_at: OffsetDateTime, cutoff: OffsetDateTime) -> bool {
    created_at < cutoff
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn absurd_age_saturates() {
        let p = RetentionPolicy {
            key_max_age_days: u32::MAX,
            metadata_max_age_days: u32::MAX,
        };
        let now = datetime!(2024-01-15 12:00 UTC);
        assert_eq!(key_cutoff(now, &p), PrimitiveDateTime::MIN.assume_utc());
        assert_eq!(
            metadata_cutoff(now, &p),
            PrimitiveDateTime::MIN.assume_utc()
        );
    }
}
