#![allow(clippy::unwrap_used)]
//! Audit rules (protocol §1.4, §6, §12 items 24-28; clients.md §5).

use efgs_core::audit::{
    AuditEntry, AuditError, check_audit_batch_day, check_audit_date, format_uploaded_time,
};
use efgs_core::cert::Thumbprint;
use efgs_core::download::DownloadPolicy;
use time::macros::{date, datetime};
use time::{Duration, OffsetDateTime};

fn now() -> OffsetDateTime {
    datetime!(2024-01-15 10:30:00 UTC)
}

// Grouping a batch's keys by upload (items 24-28: one group per (country, batchTag) in batch
// order, the caller's own uploads included, amounts that slice the downloaded keys) is a store
// contract: `KeyStore::audit_groups`, checked for every backend by the conformance behaviours
// `audit_groups_describe_each_upload_in_order`, `audit_groups_slice_the_batch_keys_per_upload`
// and `audit_groups_skip_deleted_uploads` (efgs-testkit/src/conformance.rs).

// --- entry JSON ---------------------------------------------------------------------------------

fn tp(c: char) -> Thumbprint {
    Thumbprint::parse_hex(&c.to_string().repeat(64)).unwrap()
}

#[test]
fn entry_json_field_order_and_values() {
    let e = AuditEntry {
        country: "DE".into(),
        uploaded_time: datetime!(2020-07-31 11:24:43.08 UTC),
        uploader_certificate: Some(
            "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n".into(),
        ),
        uploader_thumbprint: tp('a'),
        uploader_operator_signature: Some("c2ln".into()),
        signing_certificate: Some("PEM2".into()),
        uploader_signing_thumbprint: tp('b'),
        signing_certificate_operator_signature: Some("c2lnMg==".into()),
        amount: 3,
        batch_signature: "MIAGCSqGSIb3DQEHAqCAMIACAQEx".into(),
    };
    let a = "a".repeat(64);
    let b = "b".repeat(64);
    let expected = format!(
        concat!(
            r#"{{"country":"DE","uploadedTime":"2020-07-31T11:24:43.08Z","#,
            r#""uploaderCertificate":"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n","#,
            r#""uploaderThumbprint":"{a}","uploaderOperatorSignature":"c2ln","#,
            r#""signingCertificate":"PEM2","uploaderSigningThumbprint":"{b}","#,
            r#""signingCertificateOperatorSignature":"c2lnMg==","amount":3,"#,
            r#""batchSignature":"MIAGCSqGSIb3DQEHAqCAMIACAQEx"}}"#
        ),
        a = a,
        b = b
    );
    assert_eq!(serde_json::to_string(&e).unwrap(), expected);
}

#[test]
fn entry_json_nulls() {
    let e = AuditEntry {
        country: "DK".into(),
        uploaded_time: datetime!(2024-01-15 00:00 UTC),
        uploader_certificate: None,
        uploader_thumbprint: tp('0'),
        uploader_operator_signature: None,
        signing_certificate: None,
        uploader_signing_thumbprint: tp('f'),
        signing_certificate_operator_signature: None,
        amount: 5000,
        batch_signature: "sig".into(),
    };
    let expected = format!(
        concat!(
            r#"[{{"country":"DK","uploadedTime":"2024-01-15T00:00:00Z","uploaderCertificate":null,"#,
            r#""uploaderThumbprint":"{z}","uploaderOperatorSignature":null,"signingCertificate":null,"#,
            r#""uploaderSigningThumbprint":"{f}","signingCertificateOperatorSignature":null,"#,
            r#""amount":5000,"batchSignature":"sig"}}]"#
        ),
        z = "0".repeat(64),
        f = "f".repeat(64)
    );
    assert_eq!(serde_json::to_string(&vec![e]).unwrap(), expected);
}

// --- uploadedTime ----------------------------------------------------------------------------------

#[test]
fn uploaded_time_reference_example() {
    assert_eq!(
        format_uploaded_time(datetime!(2020-07-31 11:24:43.08 UTC)),
        "2020-07-31T11:24:43.08Z"
    );
}

#[test]
fn uploaded_time_whole_seconds_have_no_fraction() {
    assert_eq!(
        format_uploaded_time(datetime!(2020-07-31 11:24:00 UTC)),
        "2020-07-31T11:24:00Z"
    );
}

#[test]
fn uploaded_time_millis_micros_nanos() {
    assert_eq!(
        format_uploaded_time(datetime!(2020-07-31 11:24:43.086 UTC)),
        "2020-07-31T11:24:43.086Z"
    );
    assert_eq!(
        format_uploaded_time(datetime!(2020-07-31 11:24:43.123_456 UTC)),
        "2020-07-31T11:24:43.123456Z"
    );
    assert_eq!(
        format_uploaded_time(datetime!(2020-07-31 11:24:43.100_000_001 UTC)),
        "2020-07-31T11:24:43.100000001Z"
    );
}

#[test]
fn uploaded_time_converts_offset_to_utc() {
    assert_eq!(
        format_uploaded_time(datetime!(2020-08-01 01:24:43.5 +2)),
        "2020-07-31T23:24:43.5Z"
    );
}

#[test]
fn uploaded_time_parses_back() {
    let t = datetime!(2020-07-31 11:24:43.08 UTC);
    let s = format_uploaded_time(t);
    let back = OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339).unwrap();
    assert_eq!(back, t);
}

// --- checks ------------------------------------------------------------------------------------------

#[test]
fn audit_date_two_months_ago_is_410_item_28() {
    let p = DownloadPolicy { max_age_days: 14 };
    match check_audit_date(date!(2023 - 11 - 15), now(), &p) {
        Err(e @ AuditError::TooOld { .. }) => {
            assert_eq!(e.to_string(), "Requested date is too old!");
            assert_eq!(e.code(), "date-too-old");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn audit_date_window_edges() {
    let p = DownloadPolicy::default();
    assert!(check_audit_date(date!(2024 - 01 - 13), now(), &p).is_ok());
    assert!(check_audit_date(date!(2024 - 01 - 16), now(), &p).is_ok());
    assert!(check_audit_date(date!(2024 - 01 - 12), now(), &p).is_err());
}

#[test]
fn audit_batch_day_equal_passes() {
    assert!(check_audit_batch_day(datetime!(2024-01-15 00:00 UTC), date!(2024 - 01 - 15)).is_ok());
    assert!(
        check_audit_batch_day(datetime!(2024-01-15 23:59:59.99 UTC), date!(2024 - 01 - 15)).is_ok()
    );
}

#[test]
fn audit_batch_day_later_batch_is_404() {
    // Unlike download, a batch from a later day does not match.
    match check_audit_batch_day(datetime!(2024-01-15 00:05 UTC), date!(2024 - 01 - 14)) {
        Err(e @ AuditError::DateMismatch { .. }) => {
            assert_eq!(
                e.to_string(),
                "Given date does not match the requested batch"
            );
            assert_eq!(e.code(), "date-mismatch");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn audit_batch_day_earlier_batch_is_404() {
    let created = now() - Duration::days(1);
    assert!(matches!(
        check_audit_batch_day(created, now().date()),
        Err(AuditError::DateMismatch { .. })
    ));
}

#[test]
fn audit_batch_day_is_utc() {
    // 2024-01-15 00:30 +02:00 is 2024-01-14 in UTC.
    assert!(check_audit_batch_day(datetime!(2024-01-15 00:30 +2), date!(2024 - 01 - 14)).is_ok());
}

#[test]
fn audit_reason_texts() {
    let e = AuditError::UnknownBatchTag {
        tag: "20240114-1".into(),
    };
    assert_eq!(e.to_string(), "Could not find batch with given BatchTag");
    assert_eq!(e.code(), "unknown-batch-tag");
    let e = AuditError::NoKeys {
        tag: "20240114-1".into(),
    };
    assert_eq!(e.to_string(), "Batchtag not found");
    assert_eq!(e.code(), "batch-has-no-keys");
}
