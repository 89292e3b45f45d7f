#![allow(clippy::unwrap_used)]
//! Download rules (protocol §1.3, §12 items 13-23, 90).

use efgs_core::download::{
    DownloadError, DownloadPolicy, NO_NEXT_BATCH, batch_serves_date, check_batch_day,
    check_requested_date, first_batch_threshold, next_batch_tag_header, parse_path_date,
};
use time::macros::{date, datetime};
use time::{Date, Duration, OffsetDateTime};

const PROD: DownloadPolicy = DownloadPolicy { max_age_days: 2 };
const TEST: DownloadPolicy = DownloadPolicy { max_age_days: 14 };

fn now() -> OffsetDateTime {
    datetime!(2024-01-15 10:30:00 UTC)
}

fn assert_too_old(r: Result<(), DownloadError>) {
    match r {
        Err(e @ DownloadError::TooOld { .. }) => {
            assert_eq!(e.to_string(), "Requested date is too old!");
            assert_eq!(e.code(), "date-too-old");
        }
        other => panic!("expected TooOld, got {other:?}"),
    }
}

// --- 410 window -------------------------------------------------------------------------

#[test]
fn window_2_days_today_passes() {
    assert!(check_requested_date(date!(2024 - 01 - 15), now(), &PROD).is_ok());
}

#[test]
fn window_2_days_minus_1_passes() {
    assert!(check_requested_date(date!(2024 - 01 - 14), now(), &PROD).is_ok());
}

#[test]
fn window_2_days_minus_2_passes() {
    assert!(check_requested_date(date!(2024 - 01 - 13), now(), &PROD).is_ok());
}

#[test]
fn window_2_days_minus_3_is_gone() {
    assert_too_old(check_requested_date(date!(2024 - 01 - 12), now(), &PROD));
}

#[test]
fn window_2_days_far_past_is_gone() {
    assert_too_old(check_requested_date(date!(2023 - 11 - 15), now(), &PROD));
}

#[test]
fn window_at_first_and_last_instant_of_day() {
    // The window depends on the UTC date only.
    let first = datetime!(2024-01-15 00:00:00 UTC);
    let last = datetime!(2024-01-15 23:59:59.999_999_999 UTC);
    for n in [first, last] {
        assert!(check_requested_date(date!(2024 - 01 - 13), n, &PROD).is_ok());
        assert_too_old(check_requested_date(date!(2024 - 01 - 12), n, &PROD));
    }
}

#[test]
fn window_uses_utc_date_of_offset_now() {
    // 2024-01-16 00:30 +01:00 is still 2024-01-15 in UTC.
    let n = datetime!(2024-01-16 00:30 +1);
    assert!(check_requested_date(date!(2024 - 01 - 13), n, &PROD).is_ok());
}

#[test]
fn future_date_passes_date_check() {
    assert!(check_requested_date(date!(2024 - 01 - 16), now(), &PROD).is_ok());
    assert!(check_requested_date(date!(2030 - 01 - 01), now(), &PROD).is_ok());
}

#[test]
fn tomorrow_passes_and_finds_no_batch_so_404() {
    // Clients near midnight ask for tomorrow (clients.md §4): the date check passes, and the
    // store lookup finds no batch at or after tomorrow 00:00 -> NoBatchForDate (404).
    let tomorrow = date!(2024 - 01 - 16);
    assert!(check_requested_date(tomorrow, now(), &PROD).is_ok());
    let batches = [
        datetime!(2024-01-15 09:00 UTC),
        datetime!(2024-01-15 10:00 UTC),
    ];
    assert!(!batches.iter().any(|&b| batch_serves_date(b, tomorrow)));
    let e = DownloadError::NoBatchForDate { date: tomorrow };
    assert_eq!(e.to_string(), "Could not find any batches for given date");
    assert_eq!(e.code(), "no-batch-for-date");
}

#[test]
fn window_14_days_item_13_max_age_plus_1_is_gone() {
    // §12 item 13: date = today - (maxAge + 1) -> 410.
    let d = now().date() - Duration::days(15);
    assert_too_old(check_requested_date(d, now(), &TEST));
}

#[test]
fn window_14_days_max_age_passes() {
    let d = now().date() - Duration::days(14);
    assert!(check_requested_date(d, now(), &TEST).is_ok());
}

#[test]
fn window_14_days_item_28_two_months_ago_is_gone() {
    let d = date!(2023 - 11 - 15);
    assert_too_old(check_requested_date(d, now(), &TEST));
}

#[test]
fn too_old_reports_oldest_allowed_date() {
    match check_requested_date(date!(2024 - 01 - 01), now(), &PROD) {
        Err(DownloadError::TooOld { date, oldest }) => {
            assert_eq!(date, date!(2024 - 01 - 01));
            assert_eq!(oldest, date!(2024 - 01 - 13));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn default_policy_is_2_days() {
    assert_eq!(DownloadPolicy::default(), PROD);
}

// --- first batch for a date ----------------------------------------------------------------

#[test]
fn threshold_is_midnight_utc() {
    assert_eq!(
        first_batch_threshold(date!(2024 - 01 - 14)),
        datetime!(2024-01-14 00:00 UTC)
    );
}

#[test]
fn batch_exactly_at_midnight_serves_that_date() {
    // Our decision: at or after (the reference's "strictly greater" would skip it).
    assert!(batch_serves_date(
        datetime!(2024-01-14 00:00 UTC),
        date!(2024 - 01 - 14)
    ));
    assert!(!batch_serves_date(
        datetime!(2024-01-13 23:59:59.999_999_999 UTC),
        date!(2024 - 01 - 14)
    ));
}

#[test]
fn first_batch_of_date_item_90() {
    // §12 item 90: the first batch at/after 00:00 today is the earliest of today's batches;
    // asked for a later day with all batches earlier, there is none.
    let today = date!(2024 - 01 - 15);
    let batches = [
        ("20240114-7", datetime!(2024-01-14 23:55 UTC)),
        ("20240115-1", datetime!(2024-01-15 00:05 UTC)),
        ("20240115-2", datetime!(2024-01-15 00:10 UTC)),
    ];
    let first = batches
        .iter()
        .filter(|(_, c)| batch_serves_date(*c, today))
        .min_by_key(|(_, c)| *c)
        .map(|(t, _)| *t);
    assert_eq!(first, Some("20240115-1"));
    let none = batches
        .iter()
        .find(|(_, c)| batch_serves_date(*c, date!(2024 - 01 - 16)));
    assert!(none.is_none());
}

#[test]
fn first_batch_may_come_from_a_later_day() {
    // No batch on the 14th: the first one of the 15th is served for the 14th, and passes the
    // batch-day rule (later day allowed).
    let requested = date!(2024 - 01 - 14);
    let created = datetime!(2024-01-15 00:05 UTC);
    assert!(batch_serves_date(created, requested));
    assert!(check_batch_day(created, requested).is_ok());
}

// --- batch-day rule -------------------------------------------------------------------------

#[test]
fn batch_day_item_15_created_5_days_ago_requested_3_days_ago_is_400() {
    let created = now() - Duration::days(5);
    let requested = (now() - Duration::days(3)).date();
    match check_batch_day(created, requested) {
        Err(e @ DownloadError::DateAfterBatch { .. }) => {
            assert_eq!(
                e.to_string(),
                "Given date does is not after or equals the requested batchTag"
            );
            assert_eq!(e.code(), "date-after-batch");
        }
        other => panic!("expected DateAfterBatch, got {other:?}"),
    }
}

#[test]
fn batch_day_same_day_passes() {
    assert!(check_batch_day(datetime!(2024-01-13 23:59 UTC), date!(2024 - 01 - 13)).is_ok());
    assert!(check_batch_day(datetime!(2024-01-13 00:00 UTC), date!(2024 - 01 - 13)).is_ok());
}

#[test]
fn batch_day_later_day_passes() {
    assert!(check_batch_day(datetime!(2024-01-15 00:01 UTC), date!(2024 - 01 - 13)).is_ok());
}

#[test]
fn batch_day_one_day_earlier_fails() {
    assert!(matches!(
        check_batch_day(datetime!(2024-01-12 23:59:59 UTC), date!(2024 - 01 - 13)),
        Err(DownloadError::DateAfterBatch { batch_day, .. }) if batch_day == date!(2024 - 01 - 12)
    ));
}

#[test]
fn batch_day_is_utc_day() {
    // 2024-01-13 00:30 +02:00 is 2024-01-12 22:30 UTC: an earlier day than the 13th.
    assert!(check_batch_day(datetime!(2024-01-13 00:30 +2), date!(2024 - 01 - 13)).is_err());
}

// --- reason texts ---------------------------------------------------------------------------

#[test]
fn unknown_batch_tag_text() {
    let e = DownloadError::UnknownBatchTag { tag: "xxx".into() };
    assert_eq!(e.to_string(), "Could not find batch with given BatchTag");
    assert_eq!(e.code(), "unknown-batch-tag");
}

// --- path date -------------------------------------------------------------------------------

#[test]
fn path_date_valid() {
    assert_eq!(
        parse_path_date("2024-01-15").unwrap(),
        date!(2024 - 01 - 15)
    );
    assert_eq!(
        parse_path_date("2024-02-29").unwrap(),
        date!(2024 - 02 - 29)
    );
    assert_eq!(
        parse_path_date("0001-01-01").unwrap(),
        date!(0001 - 01 - 01)
    );
    assert_eq!(
        parse_path_date("9999-12-31").unwrap(),
        date!(9999 - 12 - 31)
    );
}

#[test]
fn path_date_invalid() {
    for s in [
        "",
        "s",
        "2024-1-15",
        "2024-01-5",
        "24-01-15",
        "20240115",
        "2024/01/15",
        "2024-13-01",
        "2024-00-10",
        "2024-01-00",
        "2024-01-32",
        "2023-02-29",
        "+2024-01-15",
        "2024-01-15Z",
        "2024-01-15+01:00",
        " 2024-01-15",
        "2024-01-15 ",
        "2024-0a-15",
        "２０２４-01-15",
        "2024-01-1５",
    ] {
        match parse_path_date(s) {
            Err(e @ DownloadError::InvalidDate { .. }) => assert_eq!(e.code(), "invalid-date"),
            other => panic!("{s:?} gave {other:?}"),
        }
    }
}

#[test]
fn path_date_error_truncates_input() {
    let long = "9".repeat(1000);
    match parse_path_date(&long) {
        Err(DownloadError::InvalidDate { input }) => assert_eq!(input.len(), 32),
        other => panic!("{other:?}"),
    }
}

#[test]
fn path_date_roundtrips_every_day_of_2024() {
    let mut d: Date = date!(2024 - 01 - 01);
    while d.year() == 2024 {
        let s = format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day());
        assert_eq!(parse_path_date(&s).unwrap(), d);
        d = d.next_day().unwrap();
    }
}

// --- headers and filtering ---------------------------------------------------------------------

#[test]
fn next_batch_tag_literal_null() {
    assert_eq!(next_batch_tag_header(None), "null");
    assert_eq!(NO_NEXT_BATCH, "null");
}

#[test]
fn next_batch_tag_link() {
    let link = efgs_core::tag::BatchTag::parse("20240115-2").unwrap();
    assert_eq!(next_batch_tag_header(Some(&link)), "20240115-2");
}

// Own-country exclusion (items 18, 21: by uploader, not origin, insertion order kept) is a
// store contract: `KeyStore::batch_keys`, checked for every backend by the conformance
// behaviours `batch_keys_follow_upload_then_key_order`,
// `own_country_exclusion_is_by_uploader_not_origin` and `batch_keys_hold_only_that_batch`
// (efgs-testkit/src/conformance.rs).
