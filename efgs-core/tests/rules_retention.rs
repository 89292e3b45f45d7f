#![allow(clippy::unwrap_used)]
//! Retention cutoffs (protocol §8, §12 items 78-79; decisions item 13).

use efgs_core::retention::{RetentionPolicy, is_expired, key_cutoff, metadata_cutoff};
use time::macros::{datetime, time};
use time::{Duration, OffsetDateTime};

const PROD: RetentionPolicy = RetentionPolicy {
    key_max_age_days: 2,
    metadata_max_age_days: 30,
};
const TEST: RetentionPolicy = RetentionPolicy {
    key_max_age_days: 14,
    metadata_max_age_days: 30,
};

#[test]
fn defaults() {
    assert_eq!(RetentionPolicy::default(), PROD);
}

#[test]
fn key_cutoff_mid_day() {
    assert_eq!(
        key_cutoff(datetime!(2024-01-15 10:30 UTC), &PROD),
        datetime!(2024-01-13 00:00 UTC)
    );
}

#[test]
fn key_cutoff_just_after_midnight() {
    assert_eq!(
        key_cutoff(datetime!(2024-01-15 00:00:00.000_001 UTC), &PROD),
        datetime!(2024-01-13 00:00 UTC)
    );
    assert_eq!(
        key_cutoff(datetime!(2024-01-15 00:00 UTC), &PROD),
        datetime!(2024-01-13 00:00 UTC)
    );
}

#[test]
fn key_cutoff_just_before_midnight() {
    assert_eq!(
        key_cutoff(datetime!(2024-01-14 23:59:59.999_999_999 UTC), &PROD),
        datetime!(2024-01-12 00:00 UTC)
    );
}

#[test]
fn key_cutoff_uses_utc_date_of_offset_now() {
    // 00:30 in Berlin (+01:00) is still the previous UTC day.
    assert_eq!(
        key_cutoff(datetime!(2024-01-15 00:30 +1), &PROD),
        datetime!(2024-01-12 00:00 UTC)
    );
    // 23:30 in New York (-05:00) is already the next UTC day.
    assert_eq!(
        key_cutoff(datetime!(2024-01-14 23:30 -5), &PROD),
        datetime!(2024-01-13 00:00 UTC)
    );
}

#[test]
fn key_cutoff_across_month_and_leap_day() {
    assert_eq!(
        key_cutoff(datetime!(2024-03-01 08:00 UTC), &PROD),
        datetime!(2024-02-28 00:00 UTC)
    );
    assert_eq!(
        key_cutoff(datetime!(2024-01-01 08:00 UTC), &PROD),
        datetime!(2023-12-30 00:00 UTC)
    );
}

#[test]
fn key_at_cutoff_is_kept_and_just_before_is_deleted() {
    let cutoff = key_cutoff(datetime!(2024-01-15 00:00 UTC), &PROD);
    assert!(!is_expired(cutoff, cutoff));
    assert!(is_expired(cutoff - Duration::nanoseconds(1), cutoff));
    assert!(!is_expired(cutoff + Duration::nanoseconds(1), cutoff));
}

#[test]
fn metadata_cutoff_30_days() {
    assert_eq!(
        metadata_cutoff(datetime!(2024-01-15 10:30 UTC), &PROD),
        datetime!(2023-12-16 00:00 UTC)
    );
    assert_eq!(
        metadata_cutoff(datetime!(2024-01-14 23:59:59.999 UTC), &PROD),
        datetime!(2023-12-15 00:00 UTC)
    );
}

#[test]
fn metadata_outlives_keys() {
    let now = datetime!(2024-01-15 00:00 UTC);
    assert!(metadata_cutoff(now, &PROD) < key_cutoff(now, &PROD));
}

/// §12 item 78, with max age 14: keys at −1 d 14:00 and −14 d 14:00 are kept, keys at −15 d are
/// deleted; the statistics row says deleted 5, before 12, after 7.
#[test]
fn cleanup_item_78_data() {
    let now = datetime!(2024-01-15 00:00:01 UTC);
    let at =
        |days: i64| -> OffsetDateTime { (now - Duration::days(days)).replace_time(time!(14:00)) };
    let mut keys: Vec<OffsetDateTime> = Vec::new();
    keys.extend(std::iter::repeat_n(at(1), 4));
    keys.extend(std::iter::repeat_n(at(14), 3));
    keys.extend(std::iter::repeat_n(at(15), 5));

    let cutoff = key_cutoff(now, &TEST);
    assert_eq!(cutoff, datetime!(2024-01-01 00:00 UTC));
    let before = keys.len() as u64;
    keys.retain(|&k| !is_expired(k, cutoff));
    let after = keys.len() as u64;
    assert_eq!((before - after, before, after), (5, 12, 7));
    assert!(keys.iter().all(|&k| k == at(1) || k == at(14)));
}

#[test]
fn cleanup_item_78_late_in_the_day() {
    // The same data, with the job running late on the same UTC day, gives the same cutoff.
    let now = datetime!(2024-01-15 23:59:59 UTC);
    assert_eq!(key_cutoff(now, &TEST), datetime!(2024-01-01 00:00 UTC));
}

#[test]
fn zero_days_deletes_everything_before_today() {
    let p = RetentionPolicy {
        key_max_age_days: 0,
        metadata_max_age_days: 0,
    };
    let now = datetime!(2024-01-15 12:00 UTC);
    assert_eq!(key_cutoff(now, &p), datetime!(2024-01-15 00:00 UTC));
    assert!(is_expired(
        datetime!(2024-01-14 23:59:59 UTC),
        key_cutoff(now, &p)
    ));
    assert!(!is_expired(
        datetime!(2024-01-15 00:00 UTC),
        key_cutoff(now, &p)
    ));
}
