//! Upload validation (protocol §3, §12 items 69-72, decisions item 5).
#![allow(clippy::unwrap_used)]

use efgs_core::model::MAX_KEYS_PER_BATCH;
use efgs_core::validate::{
    KEY_REASON_PREFIX, ValidationError, ValidationPolicy, check_origins, rolling_start_window,
    validate_batch, validate_batch_signature_header, validate_batch_tag,
};
use efgs_core::{DiagnosisKey, DiagnosisKeyBatch};
use time::OffsetDateTime;
use time::macros::datetime;

/// 2026-11-28T12:00:00Z; UTC midnight is 1795824000 s = interval 2993040.
const NOON: OffsetDateTime = datetime!(2026-11-28 12:00:00 UTC);
/// One second after UTC midnight of the same day.
const JUST_AFTER_MIDNIGHT: OffsetDateTime = datetime!(2026-11-28 00:00:01 UTC);

// Values computed independently (Python datetime) for 2026-11-28.
const MIDNIGHT_INTERVAL: u32 = 2_993_040;
const MIN_RSIN: u32 = 2_990_880; // (midnight - 15 d) / 600
const MAX_RSIN_NOON: u32 = 2_993_113; // 1795867200 / 600 + 1
const MAX_RSIN_AFTER_MIDNIGHT: u32 = 2_993_041; // 1795824001 / 600 + 1

fn valid_key(rsin: u32) -> DiagnosisKey {
    DiagnosisKey {
        key_data: (0u8..16).collect(),
        rolling_start_interval_number: rsin,
        rolling_period: 144,
        transmission_risk_level: 3,
        visited_countries: vec!["FR".into(), "NL".into()].into(),
        origin: "DE".into(),
        report_type: 1,
        days_since_onset_of_symptoms: 4000,
    }
}

fn one(key: DiagnosisKey) -> DiagnosisKeyBatch {
    DiagnosisKeyBatch { keys: vec![key] }
}

fn check(key: DiagnosisKey, now: OffsetDateTime) -> Result<(), ValidationError> {
    validate_batch(&one(key), now, &ValidationPolicy::default())
}

fn assert_reason(err: ValidationError, reason: &str, code: &str) {
    assert_eq!(err.to_string(), format!("{KEY_REASON_PREFIX}{reason}"));
    assert_eq!(err.reason(), Some(reason));
    assert_eq!(err.code(), code);
    assert_eq!(err.key_index(), Some(0));
    assert!(!err.is_too_large());
}

#[test]
fn window_matches_independent_computation() {
    assert_eq!(
        rolling_start_window(NOON),
        (i64::from(MIN_RSIN), i64::from(MAX_RSIN_NOON))
    );
    assert_eq!(
        rolling_start_window(JUST_AFTER_MIDNIGHT),
        (i64::from(MIN_RSIN), i64::from(MAX_RSIN_AFTER_MIDNIGHT))
    );
    // The window follows the UTC day, whatever offset `now` carries: 01:00+02:00 on the 28th
    // is 23:00 UTC on the 27th.
    let offset = datetime!(2026-11-28 01:00:00 +02:00);
    assert_eq!(
        rolling_start_window(offset),
        (i64::from(MIN_RSIN - 144), 1_795_820_400 / 600 + 1)
    );
}

#[test]
fn valid_key_passes() {
    check(valid_key(MIDNIGHT_INTERVAL), NOON).unwrap();
    check(valid_key(MIDNIGHT_INTERVAL), JUST_AFTER_MIDNIGHT).unwrap();
    validate_batch(
        &DiagnosisKeyBatch::default(),
        NOON,
        &ValidationPolicy::default(),
    )
    .unwrap();
}

// §12 item 69.
#[test]
fn transmission_risk_level() {
    for trl in [-1, 9, 100, i32::MIN, i32::MAX - 1] {
        let mut k = valid_key(MIDNIGHT_INTERVAL);
        k.transmission_risk_level = trl;
        assert_reason(
            check(k, NOON).unwrap_err(),
            "Invalid transmission risk level.",
            "transmission-risk-level",
        );
    }
    for trl in [0, 4, 8, 2_147_483_647] {
        let mut k = valid_key(MIDNIGHT_INTERVAL);
        k.transmission_risk_level = trl;
        check(k, NOON).unwrap_or_else(|e| panic!("TRL {trl}: {e}"));
    }
}

// §12 item 70.
#[test]
fn key_data_length() {
    let mut k = valid_key(MIDNIGHT_INTERVAL);
    k.key_data = Default::default();
    assert_reason(
        check(k, NOON).unwrap_err(),
        "The keydata is empty or null.",
        "key-data-empty",
    );
    for len in [1usize, 4, 15, 17, 32] {
        let mut k = valid_key(MIDNIGHT_INTERVAL);
        k.key_data = vec![7; len].into();
        let err = check(k, NOON).unwrap_err();
        assert!(
            matches!(err, ValidationError::KeyDataLength { len: l, .. } if l == len),
            "{err:?}"
        );
        assert_reason(err, "The keydata is not 16 bytes.", "key-data-length");
    }
}

// §12 item 71, at noon and just after midnight.
#[test]
fn rolling_start_interval_number_reference_cases() {
    for now in [NOON, JUST_AFTER_MIDNIGHT] {
        let ts = now.unix_timestamp();
        let now_plus_day = u32::try_from((ts + 86_400) / 600).unwrap();
        let midnight_minus_16 = MIDNIGHT_INTERVAL - 16 * 144;
        let midnight_minus_14 = MIDNIGHT_INTERVAL - 14 * 144;
        for bad in [0, now_plus_day, midnight_minus_16] {
            assert_reason(
                check(valid_key(bad), now).unwrap_err(),
                "Invalid rolling start interval number.",
                "rolling-start-interval-number",
            );
        }
        for good in [MIDNIGHT_INTERVAL, midnight_minus_14] {
            check(valid_key(good), now).unwrap_or_else(|e| panic!("RSIN {good} at {now}: {e}"));
        }
    }
}

#[test]
fn rolling_start_interval_number_boundaries() {
    for (now, max) in [
        (NOON, MAX_RSIN_NOON),
        (JUST_AFTER_MIDNIGHT, MAX_RSIN_AFTER_MIDNIGHT),
    ] {
        check(valid_key(MIN_RSIN), now).unwrap();
        check(valid_key(max), now).unwrap();
        for bad in [MIN_RSIN - 1, max + 1] {
            let err = check(valid_key(bad), now).unwrap_err();
            assert_eq!(
                err,
                ValidationError::RollingStartIntervalNumber {
                    index: 0,
                    value: i32::try_from(bad).unwrap(),
                    min: i64::from(MIN_RSIN),
                    max: i64::from(max),
                }
            );
        }
    }
    // Values of 2^31 and above are negative as Java ints, hence invalid.
    for bad in [0x8000_0000u32, 0xFFFF_FFFF, 0x7FFF_FFFF] {
        let err = check(valid_key(bad), NOON).unwrap_err();
        assert_eq!(err.code(), "rolling-start-interval-number", "RSIN {bad:#x}");
    }
    let err = check(valid_key(0x8000_0000), NOON).unwrap_err();
    assert!(matches!(
        err,
        ValidationError::RollingStartIntervalNumber {
            value: i32::MIN,
            ..
        }
    ));
}

// §12 item 72.
#[test]
fn rolling_period() {
    for rp in [0u32, 145, 1000, 0x8000_0000, 0xFFFF_FFFF] {
        let mut k = valid_key(MIDNIGHT_INTERVAL);
        k.rolling_period = rp;
        assert_reason(
            check(k, NOON).unwrap_err(),
            "Invalid rolling period.",
            "rolling-period",
        );
    }
    for rp in [1u32, 72, 144] {
        let mut k = valid_key(MIDNIGHT_INTERVAL);
        k.rolling_period = rp;
        check(k, NOON).unwrap();
    }
}

#[test]
fn dsos_report_type_and_visited_are_not_range_checked() {
    let mut k = valid_key(MIDNIGHT_INTERVAL);
    k.days_since_onset_of_symptoms = i32::MAX;
    k.report_type = 7;
    k.visited_countries = vec![].into();
    check(k.clone(), NOON).unwrap();
    k.days_since_onset_of_symptoms = i32::MIN;
    k.report_type = -3;
    check(k, NOON).unwrap();
}

#[test]
fn first_failing_rule_of_a_key_wins() {
    // Empty keyData, bad RSIN, bad RP, bad TRL: the keyData reason.
    let mut k = valid_key(0);
    k.key_data = Default::default();
    k.rolling_period = 0;
    k.transmission_risk_level = -1;
    assert_eq!(check(k.clone(), NOON).unwrap_err().code(), "key-data-empty");
    k.key_data = vec![1; 16].into();
    assert_eq!(
        check(k.clone(), NOON).unwrap_err().code(),
        "rolling-start-interval-number"
    );
    k.rolling_start_interval_number = MIDNIGHT_INTERVAL;
    assert_eq!(check(k.clone(), NOON).unwrap_err().code(), "rolling-period");
    k.rolling_period = 1;
    assert_eq!(
        check(k, NOON).unwrap_err().code(),
        "transmission-risk-level"
    );
}

#[test]
fn invalid_key_number_three_reports_index_three() {
    let mut keys: Vec<DiagnosisKey> = (0..6).map(|_| valid_key(MIDNIGHT_INTERVAL)).collect();
    keys[3].rolling_period = 145;
    keys[5].key_data = Default::default(); // later failures are not reached
    let err = validate_batch(
        &DiagnosisKeyBatch { keys },
        NOON,
        &ValidationPolicy::default(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        ValidationError::RollingPeriod {
            index: 3,
            value: 145
        }
    );
    assert_eq!(err.key_index(), Some(3));
    assert_eq!(
        err.to_string(),
        "Validation of diagnosis key failed: Invalid rolling period."
    );
}

#[test]
fn too_many_keys_after_key_rules() {
    assert_eq!(ValidationPolicy::default().max_keys, 5000);
    let policy = ValidationPolicy::default();
    let mut batch = DiagnosisKeyBatch {
        keys: vec![valid_key(MIDNIGHT_INTERVAL); MAX_KEYS_PER_BATCH],
    };
    validate_batch(&batch, NOON, &policy).unwrap();
    batch.keys.push(valid_key(MIDNIGHT_INTERVAL));
    let err = validate_batch(&batch, NOON, &policy).unwrap_err();
    assert_eq!(
        err,
        ValidationError::TooManyKeys {
            count: 5001,
            max: 5000
        }
    );
    assert_eq!(err.to_string(), "Too many diagnosis keys");
    assert_eq!(err.code(), "too-many-keys");
    assert!(err.is_too_large());
    assert_eq!(err.key_index(), None);
    assert_eq!(err.reason(), None);
    // An invalid key is reported before the size (reference order).
    batch.keys[4000].transmission_risk_level = 9;
    let err = validate_batch(&batch, NOON, &policy).unwrap_err();
    assert_eq!(
        err,
        ValidationError::TransmissionRiskLevel {
            index: 4000,
            value: 9
        }
    );
    // The limit is configurable.
    let small = ValidationPolicy { max_keys: 2 };
    let three = DiagnosisKeyBatch {
        keys: vec![valid_key(MIDNIGHT_INTERVAL); 3],
    };
    assert!(
        validate_batch(&three, NOON, &small)
            .unwrap_err()
            .is_too_large()
    );
}

#[test]
fn visited_country_and_origin_limits() {
    let policy = ValidationPolicy::default();
    // 300 entries of 8 ASCII bytes: fine.
    let mut k = valid_key(MIDNIGHT_INTERVAL);
    k.visited_countries = vec!["ABCDEFGH".into(); 300].into();
    check(k.clone(), NOON).unwrap();
    // 301 entries.
    k.visited_countries.push("DE".into());
    let err = check(k, NOON).unwrap_err();
    assert_eq!(
        err,
        ValidationError::TooManyVisitedCountries {
            index: 0,
            count: 301
        }
    );
    assert_reason(
        err,
        "Too many visited countries (at most 300).",
        "too-many-visited-countries",
    );
    // 9 bytes, or non-ASCII.
    for (bad, position) in [("ABCDEFGHI", 1usize), ("DÉ", 1)] {
        let mut k = valid_key(MIDNIGHT_INTERVAL);
        k.visited_countries = vec!["FR".into(), bad.into()].into();
        let err = check(k, NOON).unwrap_err();
        assert_eq!(
            err,
            ValidationError::InvalidVisitedCountry { index: 0, position },
            "{bad}"
        );
        assert_reason(
            err,
            "Invalid visited country (at most 8 ASCII characters).",
            "invalid-visited-country",
        );
    }
    // Non-ASCII origin.
    let mut k = valid_key(MIDNIGHT_INTERVAL);
    k.origin = "DÉ".into();
    assert_reason(
        check(k, NOON).unwrap_err(),
        "The origin is not ASCII.",
        "origin-not-ascii",
    );
    // Our limits come after the reference's rules of all keys and after the key count: a
    // batch the reference rejects gets the reference's answer.
    let mut keys = vec![valid_key(MIDNIGHT_INTERVAL); 3];
    keys[0].visited_countries = vec!["TOO-LONG-X".into()].into();
    keys[2].rolling_period = 0;
    let err = validate_batch(&DiagnosisKeyBatch { keys: keys.clone() }, NOON, &policy).unwrap_err();
    assert_eq!(err.code(), "rolling-period");
    assert_eq!(err.key_index(), Some(2));
    keys[2].rolling_period = 1;
    let err = validate_batch(
        &DiagnosisKeyBatch { keys: keys.clone() },
        NOON,
        &ValidationPolicy { max_keys: 2 },
    )
    .unwrap_err();
    assert_eq!(err.code(), "too-many-keys");
    let err = validate_batch(&DiagnosisKeyBatch { keys }, NOON, &policy).unwrap_err();
    assert_eq!(
        err,
        ValidationError::InvalidVisitedCountry {
            index: 0,
            position: 0
        }
    );
}

#[test]
fn batch_tag_limits() {
    // Tags seen in the wild (clients.md §2).
    let sixty_four_hex = "0123456789abcdef".repeat(4);
    for ok in [
        "2020-9-1-Ab3+/w==-0",
        sixty_four_hex.as_str(),
        "ES-202011051230-a1B2-0",
        "20201105-3",
        "20201105-fi-17",
        "20201105-1a2b3c4",
        "1604570000000",
        "1234",
        "2676000",
        "!",
        "~",
    ] {
        validate_batch_tag(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    assert_eq!(validate_batch_tag(""), Err(ValidationError::BatchTagEmpty));
    let too_long = "a".repeat(65);
    assert_eq!(
        validate_batch_tag(&too_long),
        Err(ValidationError::BatchTagTooLong { len: 65 })
    );
    for (bad, position) in [
        ("a b", 1usize),
        (" ab", 0),
        ("ab\t", 2),
        ("ab\u{7f}", 2),
        ("tag\n", 3),
        ("ä", 0),
    ] {
        let err = validate_batch_tag(bad).unwrap_err();
        assert_eq!(
            err,
            ValidationError::BatchTagCharacter { position },
            "{bad:?}"
        );
        assert_eq!(err.code(), "batch-tag-character");
    }
    assert_eq!(
        validate_batch_tag("").unwrap_err().code(),
        "batch-tag-empty"
    );
    assert_eq!(
        validate_batch_tag(&too_long).unwrap_err().code(),
        "batch-tag-too-long"
    );
}

#[test]
fn batch_signature_header_limits() {
    validate_batch_signature_header("MIAGCSqGSIb3DQEHAqCAMIACAQEx").unwrap();
    validate_batch_signature_header(&"A".repeat(32 * 1024)).unwrap();
    assert_eq!(
        validate_batch_signature_header(""),
        Err(ValidationError::BatchSignatureEmpty)
    );
    let err = validate_batch_signature_header(&"A".repeat(32 * 1024 + 1)).unwrap_err();
    assert_eq!(
        err,
        ValidationError::BatchSignatureTooLong { len: 32 * 1024 + 1 }
    );
    assert_eq!(err.code(), "batch-signature-too-long");
    assert_eq!(
        validate_batch_signature_header("").unwrap_err().code(),
        "batch-signature-empty"
    );
}

#[test]
fn origins_must_equal_uploader_country() {
    let keys = vec![valid_key(MIDNIGHT_INTERVAL); 4];
    check_origins(&keys, "DE").unwrap();
    check_origins(&[], "DE").unwrap();
    let mut mixed = keys.clone();
    mixed[2].origin = "CA".into();
    mixed[3].origin = "FR".into();
    let err = check_origins(&mixed, "DE").unwrap_err();
    assert_eq!(err, ValidationError::OriginMismatch { index: 2 });
    assert_eq!(
        err.to_string(),
        "One or more keys are not originated from uploader country"
    );
    assert_eq!(err.code(), "origin-mismatch");
    assert_eq!(err.key_index(), Some(2));
    // Exact comparison: no case folding.
    assert!(check_origins(&keys, "de").is_err());
}

#[test]
fn codes_are_distinct_kebab_case() {
    let errs = [
        ValidationError::EmptyKeyData { index: 0 },
        ValidationError::KeyDataLength { index: 0, len: 1 },
        ValidationError::RollingStartIntervalNumber {
            index: 0,
            value: 0,
            min: 1,
            max: 2,
        },
        ValidationError::RollingPeriod { index: 0, value: 0 },
        ValidationError::TransmissionRiskLevel { index: 0, value: 9 },
        ValidationError::TooManyVisitedCountries {
            index: 0,
            count: 301,
        },
        ValidationError::InvalidVisitedCountry {
            index: 0,
            position: 0,
        },
        ValidationError::OriginNotAscii { index: 0 },
        ValidationError::TooManyKeys { count: 2, max: 1 },
        ValidationError::BatchTagEmpty,
        ValidationError::BatchTagTooLong { len: 65 },
        ValidationError::BatchTagCharacter { position: 0 },
        ValidationError::BatchSignatureEmpty,
        ValidationError::BatchSignatureTooLong { len: 1 },
        ValidationError::OriginMismatch { index: 0 },
    ];
    let mut codes: Vec<&str> = errs.iter().map(|e| e.code()).collect();
    for c in &codes {
        assert!(
            c.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
            "{c}"
        );
    }
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), errs.len());
    // Per-key reasons: Display is prefix + reason.
    for e in &errs {
        if let Some(r) = e.reason() {
            assert_eq!(e.to_string(), format!("{KEY_REASON_PREFIX}{r}"));
        }
    }
}
