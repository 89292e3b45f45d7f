//! Download rules for `GET /diagnosiskeys/download/{date}` (protocol §1.3).
//!
//! The route runs these checks in order; each is a pure function here, the store lookups
//! between them are the server's job:
//!
//! 1. [`parse_path_date`]: the `{date}` path segment must be `yyyy-MM-dd` (400).
//! 2. [`check_requested_date`]: a date older than the download window is gone (410). Future
//!    dates pass (clients near midnight ask for tomorrow's UTC date and must get 404 from the
//!    lookup, not 400; clients.md §4).
//! 3. Without a `batchTag` header, the store returns the first batch created at or after
//!    [`first_batch_threshold`] (see there for the "at or after" decision); none gives
//!    [`DownloadError::NoBatchForDate`] (404).
//! 4. An unknown tag gives [`DownloadError::UnknownBatchTag`] (404).
//! 5. [`check_batch_day`]: a batch from a UTC day *before* the requested date gives 400; a batch
//!    from a later day is fine (links cross days).
//! 6. Keys are returned in insertion order without the keys the caller's own country uploaded
//!    (by uploader, not by `origin` or `visitedCountries`: protocol §1.3 step 5, §14 item 7;
//!    [`crate::store::KeyStore::batch_keys`] applies it), and the `nextBatchTag` header is the
//!    batch link or the literal `null` ([`next_batch_tag_header`]).

use time::{Date, Duration, OffsetDateTime, UtcOffset};

use crate::tag::BatchTag;

/// The value of the `nextBatchTag` header when there is no next batch. Clients compare with this
/// literal string (clients.md §1), so it is part of the wire contract.
pub const NO_NEXT_BATCH: &str = "null";

/// Configuration of the download (and audit) window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownloadPolicy {
    /// How many days back from today (UTC) a date may be requested
    /// (`efgs.download-settings.max-age-in-days`; 2 in production, 14 in the reference tests).
    pub max_age_days: u32,
}

impl Default for DownloadPolicy {
    fn default() -> Self {
        DownloadPolicy { max_age_days: 2 }
    }
}

impl DownloadPolicy {
    /// The oldest date that may still be requested at `now`: the UTC date of
    /// `now − max_age_days`. A window larger than the calendar allows saturates at
    /// [`Date::MIN`] (everything is allowed) instead of panicking.
    pub fn oldest_date(&self, now: OffsetDateTime) -> Date {
        now.to_offset(UtcOffset::UTC)
            .date()
            .checked_sub(Duration::days(i64::from(self.max_age_days)))
            .unwrap_or(Date::MIN)
    }
}

/// Errors of the download rules. The `Display` text of each variant is the reference's exact
/// reason text; the server maps [`DownloadError::code`] to the status noted on each variant.
///
/// Not `#[non_exhaustive]`: the server's status table matches its variants (ADR 0012).
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The `{date}` path segment is not a `yyyy-MM-dd` calendar date. Status 400.
    #[error("Invalid date in path, expected yyyy-MM-dd")]
    InvalidDate {
        /// The path segment as received (truncated to 32 characters).
        input: String,
    },
    /// The requested date lies before the download window. Status 410.
    #[error("Requested date is too old!")]
    TooOld {
        /// The requested date.
        date: Date,
        /// The oldest date still allowed at the time of the request.
        oldest: Date,
    },
    /// No batch was created at or after 00:00 UTC of the requested date. Status 404.
    #[error("Could not find any batches for given date")]
    NoBatchForDate {
        /// The requested date.
        date: Date,
    },
    /// The `batchTag` header names no existing batch. Status 404.
    #[error("Could not find batch with given BatchTag")]
    UnknownBatchTag {
        /// The tag as requested.
        tag: String,
    },
    /// The batch was created on a UTC day before the requested date. Status 400. (The
    /// reference's text really says "does is not".)
    #[error("Given date does is not after or equals the requested batchTag")]
    DateAfterBatch {
        /// The requested date.
        date: Date,
        /// The UTC day the batch was created.
        batch_day: Date,
    },
}

impl DownloadError {
    /// A stable kebab-case machine code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            DownloadError::InvalidDate { .. } => "invalid-date",
            DownloadError::TooOld { .. } => "date-too-old",
            DownloadError::NoBatchForDate { .. } => "no-batch-for-date",
            DownloadError::UnknownBatchTag { .. } => "unknown-batch-tag",
            DownloadError::DateAfterBatch { .. } => "date-after-batch",
        }
    }
}

/// Parses the `{date}` path segment strictly as `yyyy-MM-dd`: exactly four year digits, two
/// month digits and two day digits separated by `-`, forming a real calendar date. No sign,
/// no offset suffix, no whitespace.
pub fn parse_path_date(s: &str) -> Result<Date, DownloadError> {
    let invalid = || DownloadError::InvalidDate {
        input: s.chars().take(32).collect(),
    };
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(invalid());
    }
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        b[range].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let (Some(year), Some(month), Some(day)) = (digits(0..4), digits(5..7), digits(8..10)) else {
        return Err(invalid());
    };
    let month = u8::try_from(month)
        .ok()
        .and_then(|m| time::Month::try_from(m).ok())
        .ok_or_else(invalid)?;
    let day = u8::try_from(day).map_err(|_| invalid())?;
    let year = i32::try_from(year).map_err(|_| invalid())?;
    Date::from_calendar_date(year, month, day).map_err(|_| invalid())
}

/// Step 1 of the download: a date before `(now − max_age_days)` as a UTC date is gone
/// ([`DownloadError::TooOld`], 410). Today, the window's days and any future date pass.
pub fn check_requested_date(
    date: Date,
    now: OffsetDateTime,
    policy: &DownloadPolicy,
) -> Result<(), DownloadError> {
    let oldest = policy.oldest_date(now);
    if date < oldest {
        Err(DownloadError::TooOld { date, oldest })
    } else {
        Ok(())
    }
}

/// 00:00:00 UTC of `date`: the lower bound for the first batch served for `date` when no
/// `batchTag` header is given.
///
/// **Decision: at or after, not strictly after.** The reference selects the batch with the
/// smallest `created_at` *strictly greater* than this instant, so a batch created exactly at
/// 00:00:00.000 would belong to no date: it is skipped for its own day and only reachable by
/// asking for the day before. efgs-rs treats the threshold as inclusive: stores return the
/// batch with the smallest `created_at >= first_batch_threshold(date)` (see
/// [`batch_serves_date`]). For every other instant both rules agree, and the batch found always
/// passes [`check_batch_day`].
pub fn first_batch_threshold(date: Date) -> OffsetDateTime {
    date.midnight().assume_utc()
}

/// Whether a batch created at `batch_created` is a candidate for the first batch of `date`
/// (created at or after 00:00 UTC of that day; see [`first_batch_threshold`]). The first
/// batch is the candidate with the smallest creation time.
pub fn batch_serves_date(batch_created: OffsetDateTime, date: Date) -> bool {
    batch_created >= first_batch_threshold(date)
}

/// Step 4 of the download: the batch's UTC creation day must not be earlier than the requested
/// date ([`DownloadError::DateAfterBatch`], 400). A batch from the same or a later day passes.
pub fn check_batch_day(batch_created: OffsetDateTime, date: Date) -> Result<(), DownloadError> {
    let batch_day = batch_created.to_offset(UtcOffset::UTC).date();
    if batch_day < date {
        Err(DownloadError::DateAfterBatch { date, batch_day })
    } else {
        Ok(())
    }
}

/// The `nextBatchTag` header value: the batch's link, or the literal [`NO_NEXT_BATCH`]
/// (`"null"`) when there is none.
pub fn next_batch_tag_header(link: Option<&BatchTag>) -> String {
    match link {
        Some(tag) => tag.to_string(),
        None => NO_NEXT_BATCH.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn huge_window_saturates() {
        let p = DownloadPolicy {
            max_age_days: u32::MAX,
        };
        assert_eq!(p.oldest_date(datetime!(2024-01-15 12:00 UTC)), Date::MIN);
        assert!(check_requested_date(Date::MIN, datetime!(2024-01-15 12:00 UTC), &p).is_ok());
    }

    #[test]
    fn non_utc_now_uses_utc_day() {
        // 2024-01-15 01:00 +02:00 is 2024-01-14 23:00 UTC: the window starts at 2024-01-12.
        let now = datetime!(2024-01-15 01:00 +2);
        let p = DownloadPolicy::default();
        assert!(check_requested_date(date!(2024 - 01 - 12), now, &p).is_ok());
        assert!(check_requested_date(date!(2024 - 01 - 11), now, &p).is_err());
    }
}
