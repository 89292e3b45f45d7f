//! Codec against the test vectors (tests/data/vectors): the three `.bin` batches from the Java
//! repository and the generated `batch3` (protobuf and the Java-printed JSON).
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use efgs_core::json::{from_reference_json, to_reference_json};
use efgs_core::media::BodyFormat;
use efgs_core::proto::{ProtoError, decode_batch, decode_body, encode_batch, encode_body};
use efgs_core::{DiagnosisKey, DiagnosisKeyBatch, Error};

mod vectors_support;

use vectors_support::{read, vectors_json};

/// The key of the three `.bin` files with the given RSIN = RP (tests/data/vectors/README.md).
fn bin_key(rsin_rp: u32) -> DiagnosisKey {
    DiagnosisKey {
        key_data: b"123".to_vec().into(),
        rolling_start_interval_number: rsin_rp,
        rolling_period: rsin_rp,
        transmission_risk_level: -22,
        visited_countries: vec!["UK".into(), "NL".into(), "FR".into()].into(),
        origin: "DE".into(),
        report_type: 1,
        days_since_onset_of_symptoms: 0,
    }
}

fn check_bin(file: &str, rsin_rp: u32) {
    let bytes = read(file);
    let batch = decode_batch(&bytes).unwrap();
    assert_eq!(batch.keys, vec![bin_key(rsin_rp)], "{file}");
    assert_eq!(
        encode_batch(&batch),
        bytes,
        "{file} re-encodes to the same bytes"
    );
    let via_body = decode_body(BodyFormat::Protobuf, &bytes).unwrap();
    assert_eq!(via_body, batch);
}

#[test]
fn bin_small_int() {
    check_bin("diagnosisKeyBatchSmallInt.bin", 5);
}

#[test]
fn bin_max_val_int() {
    check_bin("diagnosisKeyBatchMaxValInt.bin", 2_147_483_647);
}

#[test]
fn bin_max_val_uint() {
    check_bin("diagnosisKeyBatchMaxValUint.bin", 4_294_967_295);
}

/// batch3's keys as listed in vectors.json (independent of the protobuf file).
fn batch3_expected() -> DiagnosisKeyBatch {
    let v = vectors_json();
    let keys = v["batch3"]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| DiagnosisKey {
            key_data: base64::engine::general_purpose::STANDARD
                .decode(k["keyData"].as_str().unwrap())
                .unwrap()
                .into(),
            rolling_start_interval_number: k["rollingStartIntervalNumber"].as_u64().unwrap() as u32,
            rolling_period: k["rollingPeriod"].as_u64().unwrap() as u32,
            transmission_risk_level: k["transmissionRiskLevel"].as_i64().unwrap() as i32,
            visited_countries: k["visitedCountries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().into())
                .collect(),
            origin: k["origin"].as_str().unwrap().into(),
            report_type: k["reportType"].as_i64().unwrap() as i32,
            days_since_onset_of_symptoms: k["daysSinceOnsetOfSymptoms"].as_i64().unwrap() as i32,
        })
        .collect();
    DiagnosisKeyBatch { keys }
}

fn java_json() -> String {
    vectors_json()["batch3"]["java_json"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn batch3_protobuf_decodes_to_listed_keys_and_reencodes() {
    let bytes = read("generated/batch3.pb");
    let batch = decode_batch(&bytes).unwrap();
    let expected = batch3_expected();
    assert_eq!(batch.keys.len(), 3);
    assert_eq!(batch, expected);
    assert_eq!(encode_batch(&batch), bytes);
    assert_eq!(encode_body(BodyFormat::Protobuf, &batch), bytes);
}

#[test]
fn batch3_prints_java_json_byte_for_byte() {
    let batch = decode_batch(&read("generated/batch3.pb")).unwrap();
    assert_eq!(to_reference_json(&batch), java_json());
    assert_eq!(
        encode_body(BodyFormat::Json, &batch),
        java_json().into_bytes()
    );
}

#[test]
fn batch3_java_json_parses_back() {
    let expected = batch3_expected();
    assert_eq!(
        from_reference_json(java_json().as_bytes()).unwrap(),
        expected
    );
    assert_eq!(
        decode_body(BodyFormat::Json, java_json().as_bytes()).unwrap(),
        expected
    );
}

#[test]
fn protocol_md_example_key_prints_like_java() {
    // protocol.md §1.0: TestData's key, with the reference's exact output.
    let key = DiagnosisKey {
        key_data: hex::decode("0e0f0b0e0c0f0f100e0f0b0e0c0f0f10")
            .unwrap()
            .into(),
        rolling_start_interval_number: 2,
        rolling_period: 1,
        transmission_risk_level: 3,
        visited_countries: vec!["DE".into(), "FR".into(), "PL".into()].into(),
        origin: "DE".into(),
        report_type: 2,
        days_since_onset_of_symptoms: 42,
    };
    let batch = DiagnosisKeyBatch { keys: vec![key] };
    assert_eq!(
        to_reference_json(&batch),
        r#"{"keys": [{"keyData": "Dg8LDgwPDxAODwsODA8PEA==","rollingStartIntervalNumber": 2,"rollingPeriod": 1,"transmissionRiskLevel": 3,"visitedCountries": ["DE","FR","PL"],"origin": "DE","reportType": "CONFIRMED_CLINICAL_DIAGNOSIS","days_since_onset_of_symptoms": 42}]}"#
    );
}

#[test]
fn bin_vectors_print_unsigned_and_signed_like_java() {
    let batch = decode_batch(&read("diagnosisKeyBatchMaxValUint.bin")).unwrap();
    assert_eq!(
        to_reference_json(&batch),
        r#"{"keys": [{"keyData": "MTIz","rollingStartIntervalNumber": 4294967295,"rollingPeriod": 4294967295,"transmissionRiskLevel": -22,"visitedCountries": ["UK","NL","FR"],"origin": "DE","reportType": "CONFIRMED_TEST"}]}"#
    );
    let back = from_reference_json(to_reference_json(&batch).as_bytes()).unwrap();
    assert_eq!(back, batch);
}

#[test]
fn empty_batch_is_empty_protobuf_and_braces_json() {
    let empty = DiagnosisKeyBatch::default();
    assert_eq!(encode_batch(&empty), Vec::<u8>::new());
    assert_eq!(to_reference_json(&empty), "{}");
    assert_eq!(from_reference_json(b"{}").unwrap(), empty);
    assert_eq!(decode_body(BodyFormat::Json, b"{}").unwrap(), empty);
}

#[test]
fn defaults_are_omitted_in_json() {
    let batch = DiagnosisKeyBatch {
        keys: vec![DiagnosisKey::default()],
    };
    assert_eq!(to_reference_json(&batch), r#"{"keys": [{}]}"#);
    assert_eq!(from_reference_json(br#"{"keys": [{}]}"#).unwrap(), batch);
}

#[test]
fn empty_body_is_missing_body_in_both_formats() {
    for format in [BodyFormat::Protobuf, BodyFormat::Json] {
        let err = decode_body(format, b"").unwrap_err();
        assert!(
            matches!(err, Error::Proto(ProtoError::EmptyBody)),
            "{format:?}: {err:?}"
        );
        assert_eq!(err.to_string(), "Request body is missing");
    }
    // decode_batch itself accepts 0 bytes: it is the empty batch.
    assert_eq!(decode_batch(b"").unwrap(), DiagnosisKeyBatch::default());
}

#[test]
fn content_types_of_formats() {
    assert_eq!(
        BodyFormat::Protobuf.content_type(),
        "application/protobuf; version=1.0"
    );
    assert_eq!(
        BodyFormat::Json.content_type(),
        "application/json; version=1.0"
    );
}
