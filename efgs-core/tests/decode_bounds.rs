//! Issue 9: the visited-country limit stops decoding as soon as it is exceeded, in protobuf and
//! JSON, so a body of keys with 10,000 visited countries each is refused without allocating
//! those lists.
#![allow(clippy::unwrap_used)]

use efgs_core::json::to_reference_json;
use efgs_core::media::BodyFormat;
use efgs_core::model::{DiagnosisKey, DiagnosisKeyBatch};
use efgs_core::proto::{decode_body_with_limit, encode_batch};
use efgs_core::validate::MAX_VISITED_COUNTRIES;

fn key(visited: usize) -> DiagnosisKey {
    DiagnosisKey {
        key_data: vec![7; 16].into(),
        rolling_start_interval_number: 2_800_000,
        rolling_period: 144,
        transmission_risk_level: 2,
        visited_countries: (0..visited)
            .map(|i| format!("C{}", i % 100).into())
            .collect(),
        origin: "DE".into(),
        ..DiagnosisKey::default()
    }
}

fn code(e: &efgs_core::Error) -> &'static str {
    match e {
        efgs_core::Error::Validation(v) => v.code(),
        efgs_core::Error::Json(j) => j.code(),
        other => panic!("unexpected error {other}"),
    }
}

#[test]
fn too_many_visited_countries_stop_decoding_in_both_formats() {
    // One ordinary key, then a key with 10,000 visited countries, then more ordinary keys.
    let batch = DiagnosisKeyBatch {
        keys: vec![key(27), key(10_000), key(27)],
    };
    let pb = encode_batch(&batch);
    let e = decode_body_with_limit(BodyFormat::Protobuf, &pb, 5000).unwrap_err();
    assert_eq!(code(&e), "too-many-visited-countries", "{e}");
    assert!(e.to_string().contains("Too many visited countries"), "{e}");
    let json = to_reference_json(&batch);
    let e = decode_body_with_limit(BodyFormat::Json, json.as_bytes(), 5000).unwrap_err();
    assert_eq!(code(&e), "too-many-visited-countries", "{e}");

    // Exactly the limit still decodes (validation decides the rest).
    let ok = DiagnosisKeyBatch {
        keys: vec![key(MAX_VISITED_COUNTRIES)],
    };
    let decoded = decode_body_with_limit(BodyFormat::Protobuf, &encode_batch(&ok), 5000).unwrap();
    assert_eq!(
        decoded.keys[0].visited_countries.len(),
        MAX_VISITED_COUNTRIES
    );
    let decoded =
        decode_body_with_limit(BodyFormat::Json, to_reference_json(&ok).as_bytes(), 5000).unwrap();
    assert_eq!(
        decoded.keys[0].visited_countries.len(),
        MAX_VISITED_COUNTRIES
    );
}

#[test]
fn five_thousand_keys_with_ten_thousand_countries_are_refused_at_the_first_key() {
    // A batch is its keys' field-1 records one after the other: encode one, repeat it.
    let one = encode_batch(&DiagnosisKeyBatch {
        keys: vec![key(10_000)],
    });
    let pb = one.repeat(5000);
    let t = std::time::Instant::now();
    let e = decode_body_with_limit(BodyFormat::Protobuf, &pb, 5000).unwrap_err();
    assert_eq!(code(&e), "too-many-visited-countries");
    // Refused at the first key: far less work than decoding the body (no timing assertion;
    // printed for the record).
    println!(
        "protobuf body of {} bytes refused in {:?}",
        pb.len(),
        t.elapsed()
    );
}
