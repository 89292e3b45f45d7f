//! The lenient JSON input grammar of protocol.md §1.0 ("Input") plus decisions.md item 6,
//! each rule with positive and negative cases.
#![allow(clippy::unwrap_used)]

use efgs_core::json::{JsonError, MAX_NESTING_DEPTH, from_reference_json, to_reference_json};
use efgs_core::media::BodyFormat;
use efgs_core::proto::{ProtoError, decode_body_with_limit};
use efgs_core::{DiagnosisKey, DiagnosisKeyBatch, Error};

fn parse(s: &str) -> Result<DiagnosisKeyBatch, JsonError> {
    from_reference_json(s.as_bytes())
}

/// Parses a body holding one key object given as `{…}` and returns the key.
fn key(obj: &str) -> DiagnosisKey {
    let batch = parse(&format!("{{\"keys\": [{obj}]}}")).unwrap_or_else(|e| panic!("{obj}: {e}"));
    assert_eq!(batch.keys.len(), 1, "{obj}");
    batch.keys.into_iter().next().unwrap()
}

fn key_err(obj: &str) -> JsonError {
    match parse(&format!("{{\"keys\": [{obj}]}}")) {
        Ok(b) => panic!("{obj} parsed: {b:?}"),
        Err(e) => e,
    }
}

#[test]
fn names_bare_or_double_quoted() {
    assert_eq!(key(r#"{origin: "DE"}"#).origin, "DE");
    assert_eq!(key(r#"{"origin": "DE"}"#).origin, "DE");
    assert_eq!(
        parse(r#"{keys: [{rollingPeriod: 3}]}"#).unwrap().keys[0].rolling_period,
        3
    );
}

#[test]
fn single_quoted_names_rejected() {
    assert!(matches!(
        key_err(r#"{'origin': "DE"}"#),
        JsonError::Unexpected { .. }
    ));
    assert!(matches!(
        parse(r#"{'keys': []}"#),
        Err(JsonError::Unexpected { position: 1, .. })
    ));
    // Names must be identifier-like even when quoted.
    assert!(
        key_err(r#"{"ori gin": "DE"}"#)
            .to_string()
            .contains("field name")
    );
    assert!(matches!(
        key_err(r#"{ori-gin: "DE"}"#),
        JsonError::Unexpected { .. }
    ));
}

#[test]
fn unknown_names_skipped_including_nested() {
    let k = key(
        r#"{"foo": 1, "bar": {"x": [1, {"y": null}, "s"], "z": {}}, "baz": [], "qux": true,
            "origin": "DE", "n": -1.5e3, "t": 'single', "e": {"a": [[[]]]}}"#,
    );
    assert_eq!(k.origin, "DE");
    let b = parse(r#"{"version": "1.0", "keys": [{"rollingPeriod": 1}], "extra": {"keys": 5}}"#)
        .unwrap();
    assert_eq!(b.keys.len(), 1);
    assert_eq!(b.keys[0].rolling_period, 1);
}

#[test]
fn skipped_values_must_still_be_well_formed() {
    assert!(key_err(r#"{"foo": {"a" 1}}"#).to_string().contains("\":\""));
    assert!(matches!(
        key_err(r#"{"foo": [1 2]}"#),
        JsonError::Unexpected { .. }
    ));
    assert!(matches!(
        key_err(r#"{"foo": {'a': 1}}"#),
        JsonError::Unexpected { .. }
    ));
    assert!(matches!(
        key_err(r#"{"foo": "bad \q escape"}"#),
        JsonError::InvalidString { .. }
    ));
    assert!(matches!(
        key_err(r#"{"foo": }"#),
        JsonError::Unexpected { .. }
    ));
    assert!(matches!(
        parse(r#"{"foo": [1, 2"#),
        Err(JsonError::UnexpectedEnd { .. })
    ));
}

#[test]
fn hostile_nesting_is_an_error_not_a_stack_overflow() {
    let deep = format!(
        "{{\"x\": {}1{}}}",
        "[".repeat(1_000_000),
        "]".repeat(1_000_000)
    );
    assert!(matches!(
        parse(&deep),
        Err(JsonError::TooDeep {
            limit: MAX_NESTING_DEPTH,
            ..
        })
    ));
    let deep_obj = format!("{{{}", "\"a\": {".repeat(500_000));
    assert!(matches!(parse(&deep_obj), Err(JsonError::TooDeep { .. })));
    // Up to the limit is fine.
    let ok = format!(
        "{{\"x\": {}1{}}}",
        "[".repeat(MAX_NESTING_DEPTH),
        "]".repeat(MAX_NESTING_DEPTH)
    );
    assert_eq!(parse(&ok).unwrap(), DiagnosisKeyBatch::default());
    let too_deep = format!(
        "{{\"x\": {}1{}}}",
        "[".repeat(MAX_NESTING_DEPTH + 1),
        "]".repeat(MAX_NESTING_DEPTH + 1)
    );
    assert!(matches!(parse(&too_deep), Err(JsonError::TooDeep { .. })));
}

#[test]
fn camel_case_dsos_alias_accepted() {
    // decisions.md item 6.
    assert_eq!(
        key(r#"{"daysSinceOnsetOfSymptoms": 7}"#).days_since_onset_of_symptoms,
        7
    );
    assert_eq!(
        key(r#"{"days_since_onset_of_symptoms": -7}"#).days_since_onset_of_symptoms,
        -7
    );
    // Other spellings are unknown names, skipped.
    assert_eq!(
        key(r#"{"DaysSinceOnsetOfSymptoms": 7}"#).days_since_onset_of_symptoms,
        0
    );
    assert_eq!(
        key(r#"{"daysSinceOnsetOfSymptom": 7}"#).days_since_onset_of_symptoms,
        0
    );
}

#[test]
fn enums_by_name_or_number() {
    assert_eq!(key(r#"{"reportType": "CONFIRMED_TEST"}"#).report_type, 1);
    assert_eq!(key(r#"{"reportType": REVOKED}"#).report_type, 5);
    assert_eq!(key(r#"{"reportType": 3}"#).report_type, 3);
    assert_eq!(key(r#"{"reportType": 0x2}"#).report_type, 2);
    assert_eq!(key(r#"{"reportType": "UNKNOWN"}"#).report_type, 0);
    assert_eq!(key(r#"{"reportType": null}"#).report_type, 0);
    // Unknown numbers are kept (decisions.md item 5).
    assert_eq!(key(r#"{"reportType": 7}"#).report_type, 7);
    assert_eq!(key(r#"{"reportType": -1}"#).report_type, -1);
    // Unknown names, names in the wrong case, quoted numbers and out-of-range numbers fail.
    assert!(matches!(
        key_err(r#"{"reportType": "POSITIVE"}"#),
        JsonError::UnknownEnumName { .. }
    ));
    assert!(matches!(
        key_err(r#"{"reportType": "confirmed_test"}"#),
        JsonError::UnknownEnumName { .. }
    ));
    assert!(matches!(
        key_err(r#"{"reportType": "1"}"#),
        JsonError::UnknownEnumName { .. }
    ));
    assert!(matches!(
        key_err(r#"{"reportType": 'REVOKED'}"#),
        JsonError::Unexpected { .. }
    ));
    assert!(matches!(
        key_err(r#"{"reportType": 2147483648}"#),
        JsonError::InvalidInteger { .. }
    ));
    assert!(matches!(
        key_err(r#"{"reportType": 1.0}"#),
        JsonError::InvalidInteger { .. }
    ));
}

#[test]
fn integers_follow_text_format_rules() {
    assert_eq!(key(r#"{"rollingPeriod": 0x10}"#).rolling_period, 16);
    assert_eq!(key(r#"{"rollingPeriod": 0X1f}"#).rolling_period, 31);
    assert_eq!(key(r#"{"rollingPeriod": 010}"#).rolling_period, 8);
    assert_eq!(key(r#"{"rollingPeriod": 0}"#).rolling_period, 0);
    assert_eq!(key(r#"{"rollingPeriod": +144}"#).rolling_period, 144);
    assert_eq!(
        key(r#"{"transmissionRiskLevel": -0x10}"#).transmission_risk_level,
        -16
    );
    assert_eq!(
        key(r#"{"transmissionRiskLevel": -010}"#).transmission_risk_level,
        -8
    );
    // A double-quoted number is decimal, like the reference ("" is 0).
    assert_eq!(key(r#"{"rollingPeriod": "42"}"#).rolling_period, 42);
    assert_eq!(key(r#"{"rollingPeriod": "010"}"#).rolling_period, 10);
    assert_eq!(
        key(r#"{"transmissionRiskLevel": "-5"}"#).transmission_risk_level,
        -5
    );
    assert_eq!(key(r#"{"rollingPeriod": ""}"#).rolling_period, 0);
    assert_eq!(key(r#"{"rollingPeriod": null}"#).rolling_period, 0);
    for bad in [
        "09", "0x", "1.5", "1e3", "abc", "true", "'5'", "\"0x10\"", "-", "1_000", "[1, x]",
    ] {
        let e = key_err(&format!(r#"{{"rollingPeriod": {bad}}}"#));
        assert!(
            matches!(
                e,
                JsonError::InvalidInteger { .. } | JsonError::Unexpected { .. }
            ),
            "{bad}: {e:?}"
        );
    }
}

#[test]
fn integer_ranges_per_field_type() {
    // uint32
    assert_eq!(
        key(r#"{"rollingStartIntervalNumber": 4294967295}"#).rolling_start_interval_number,
        u32::MAX
    );
    assert_eq!(
        key(r#"{"rollingStartIntervalNumber": 0xFFFFFFFF}"#).rolling_start_interval_number,
        u32::MAX
    );
    for bad in [
        "4294967296",
        "-1",
        "-0",
        "0x100000000",
        "99999999999999999999999999",
    ] {
        let e = key_err(&format!(r#"{{"rollingStartIntervalNumber": {bad}}}"#));
        assert!(
            matches!(
                e,
                JsonError::InvalidInteger {
                    field: "rollingStartIntervalNumber",
                    ..
                }
            ),
            "{bad}"
        );
    }
    // int32 and sint32
    assert_eq!(
        key(r#"{"transmissionRiskLevel": 2147483647}"#).transmission_risk_level,
        i32::MAX
    );
    assert_eq!(
        key(r#"{"transmissionRiskLevel": -2147483648}"#).transmission_risk_level,
        i32::MIN
    );
    assert_eq!(
        key(r#"{"days_since_onset_of_symptoms": -2147483648}"#).days_since_onset_of_symptoms,
        i32::MIN
    );
    for field in ["transmissionRiskLevel", "days_since_onset_of_symptoms"] {
        for bad in ["2147483648", "-2147483649", "4294967295", "0x80000000"] {
            let e = key_err(&format!(r#"{{"{field}": {bad}}}"#));
            assert!(
                matches!(e, JsonError::InvalidInteger { .. }),
                "{field} {bad}"
            );
        }
    }
}

#[test]
fn bytes_are_standard_base64() {
    assert_eq!(key(r#"{"keyData": "MTIz"}"#).key_data, b"123");
    assert_eq!(key(r#"{"keyData": "QQ=="}"#).key_data, b"A");
    // Missing padding accepted.
    assert_eq!(key(r#"{"keyData": "QQ"}"#).key_data, b"A");
    assert_eq!(key(r#"{"keyData": "QUI"}"#).key_data, b"AB");
    assert_eq!(
        key(r#"{"keyData": "Dg8LDgwPDxAODwsODA8PEA"}"#)
            .key_data
            .len(),
        16
    );
    assert_eq!(key(r#"{"keyData": ""}"#).key_data, b"");
    assert_eq!(key(r#"{"keyData": '+/+/'}"#).key_data, [0xfb, 0xff, 0xbf]);
    // protocol.md §12 item 11, whitespace, URL-safe alphabet, wrong padding.
    for bad in [
        "invalidBase64",
        "MTIz ",
        " MTIz",
        "MT Iz",
        "MTIz\\n",
        "-_-_",
        "QQ=",
        "Q",
        "QQ==QQ==",
        "QUJD=",
    ] {
        let e = key_err(&format!(r#"{{"keyData": "{bad}"}}"#));
        assert!(
            matches!(
                e,
                JsonError::InvalidBase64 {
                    field: "keyData",
                    ..
                }
            ),
            "{bad}: {e:?}"
        );
        assert_eq!(e.to_string(), "Invalid Base64 in JSON object");
    }
    // keyData must be a string.
    assert!(matches!(
        key_err(r#"{"keyData": null}"#),
        JsonError::Unexpected { .. }
    ));
    assert!(matches!(
        key_err(r#"{"keyData": ["MTIz"]}"#),
        JsonError::Unexpected { .. }
    ));
}

#[test]
fn strings_and_escapes() {
    let k = key(
        r#"{"origin": "D\u0045", "visitedCountries": ["a\"b", 'c\'d', "\\\/\b\f\n\r\t", "\ud83d\ude00", "ü"]}"#,
    );
    assert_eq!(k.origin, "DE");
    assert_eq!(
        k.visited_countries,
        ["a\"b", "c'd", "\\/\u{8}\u{c}\n\r\t", "😀", "ü"]
    );
    // An unquoted number is taken verbatim as a string, like the reference.
    assert_eq!(
        key(r#"{"visitedCountries": [419, 001]}"#).visited_countries,
        ["419", "001"]
    );
    // A single string for a repeated field, a list for a single one (last wins), nulls skipped.
    assert_eq!(
        key(r#"{"visitedCountries": "DE"}"#).visited_countries,
        ["DE"]
    );
    assert_eq!(key(r#"{"origin": ["FR", "DE"]}"#).origin, "DE");
    assert_eq!(
        key(r#"{"visitedCountries": ["DE", null, "FR",]}"#).visited_countries,
        ["DE", "FR"]
    );
    assert_eq!(
        key(r#"{"visitedCountries": []}"#).visited_countries,
        Vec::<String>::new()
    );
    for bad in [
        r#""\x41""#,
        r#""\ud83d""#,
        r#""\ude00x""#,
        r#""\u12""#,
        "DE",
        "true",
        "\"unterminated",
    ] {
        let e = key_err(&format!(r#"{{"origin": {bad}}}"#));
        assert!(
            matches!(
                e,
                JsonError::InvalidString { .. } | JsonError::Unexpected { .. }
            ),
            "{bad}: {e:?}"
        );
    }
    // Raw newline inside a string is not allowed; raw tab is.
    assert!(matches!(
        key_err("{\"origin\": \"D\nE\"}"),
        JsonError::InvalidString { .. }
    ));
    assert_eq!(key("{\"origin\": \"D\tE\"}").origin, "D\tE");
}

#[test]
fn separators_like_the_reference() {
    // Commas between fields and list elements may be missing; trailing commas allowed in lists.
    let k = key(r#"{"rollingPeriod": 1 "origin": "DE"}"#);
    assert_eq!((k.rolling_period, k.origin.as_str()), (1, "DE"));
    let b = parse(r#"{"keys": [{"rollingPeriod": 1} {"rollingPeriod": 2},]}"#).unwrap();
    assert_eq!(b.keys.len(), 2);
    // A single key object instead of a list.
    assert_eq!(
        parse(r#"{"keys": {"rollingPeriod": 1}}"#)
            .unwrap()
            .keys
            .len(),
        1
    );
    // Trailing comma in an object is an error; so is a missing colon.
    assert!(
        key_err(r#"{"rollingPeriod": 1,}"#)
            .to_string()
            .contains("field name")
    );
    assert!(parse(r#"{"keys": [],}"#).is_err());
    assert!(
        key_err(r#"{"rollingPeriod" 1}"#)
            .to_string()
            .contains("\":\"")
    );
    // keys must hold objects.
    assert!(parse(r#"{"keys": null}"#).is_err());
    assert!(parse(r#"{"keys": [1]}"#).is_err());
    // Whitespace of any kind and # comments between tokens.
    let b = parse("\t\r\n{ # comment\n \"keys\" :\x0b[ {\x0c} ] }\n# end").unwrap();
    assert_eq!(b.keys.len(), 1);
}

#[test]
fn trailing_content_rejected() {
    for bad in [r#"{}{}"#, r#"{} x"#, r#"{}}"#, r#"{"keys": []}]"#, "{},"] {
        assert!(
            matches!(parse(bad), Err(JsonError::TrailingContent { .. })),
            "{bad}"
        );
    }
    assert_eq!(
        parse(r#"{} x"#).unwrap_err(),
        JsonError::TrailingContent { position: 3 }
    );
    assert!(parse("{}  \n\t").is_ok());
}

#[test]
fn not_an_object_or_truncated() {
    for bad in [
        "",
        " ",
        "[]",
        "null",
        "\"keys\"",
        "{",
        "{\"keys\"",
        "{\"keys\":",
        "{\"keys\": [",
        "{\"keys\": [{",
    ] {
        let e = parse(bad).unwrap_err();
        assert!(
            matches!(
                e,
                JsonError::Unexpected { .. } | JsonError::UnexpectedEnd { .. }
            ),
            "{bad:?}: {e:?}"
        );
    }
    assert_eq!(
        parse("{\"keys\": [").unwrap_err(),
        JsonError::UnexpectedEnd {
            position: 10,
            expected: "\"]\""
        }
    );
    assert!(matches!(
        from_reference_json(b"{\"origin\": \"\xff\"}"),
        Err(JsonError::InvalidUtf8 { position: 12 })
    ));
}

#[test]
fn field_numbers_as_names_rejected_unless_no_such_field() {
    assert!(matches!(
        key_err(r#"{"6": "DE"}"#),
        JsonError::FieldNumberName { .. }
    ));
    assert!(matches!(
        key_err(r#"{"01": "MTIz"}"#),
        JsonError::FieldNumberName { .. }
    ));
    assert!(matches!(
        parse(r#"{"1": "x"}"#),
        Err(JsonError::FieldNumberName { .. })
    ));
    // Numbers that name no field are unknown names.
    assert_eq!(
        key(r#"{"9": 1, "0": 2, "123456789012": 3}"#),
        DiagnosisKey::default()
    );
    assert_eq!(parse(r#"{"2": []}"#).unwrap(), DiagnosisKeyBatch::default());
}

#[test]
fn errors_carry_position_and_code() {
    let body = r#"{"keys": [{"rollingPeriod": 0x1g}]}"#;
    let e = parse(body).unwrap_err();
    assert_eq!(e.position(), body.find("0x1g").unwrap());
    assert_eq!(e.code(), "json-invalid-integer");
    assert!(e.to_string().contains("rollingPeriod"), "{e}");
}

#[test]
fn later_duplicates_win_repeated_fields_append() {
    let k = key(
        r#"{"rollingPeriod": 1, "rollingPeriod": 2, "visitedCountries": ["A"], "visitedCountries": ["B"]}"#,
    );
    assert_eq!(k.rolling_period, 2);
    assert_eq!(k.visited_countries, ["A", "B"]);
    let b = parse(r#"{"keys": [{"rollingPeriod": 1}], "keys": [{"rollingPeriod": 2}]}"#).unwrap();
    assert_eq!(b.keys.len(), 2);
}

#[test]
fn printer_escapes_like_escape_text() {
    // Countries are at most 8 ASCII bytes (ADR 0031): the escapes spread over three.
    let key = DiagnosisKey {
        visited_countries: vec!["a\"b\\c".into(), "\u{8}\u{c}\n\r\t".into()].into(),
        origin: "\u{1}\u{1f}\u{7f}/".into(),
        report_type: 9,
        ..DiagnosisKey::default()
    };
    let json = to_reference_json(&DiagnosisKeyBatch {
        keys: vec![key.clone()],
    });
    assert_eq!(
        json,
        "{\"keys\": [{\"visitedCountries\": [\"a\\\"b\\\\c\",\"\\b\\f\\n\\r\\t\"],\"origin\": \"\\u0001\\u001f\u{7f}/\",\"reportType\": 9}]}"
    );
    assert_eq!(parse(&json).unwrap().keys, vec![key]);
}

#[test]
fn body_key_limit_keeps_413_after_decoding() {
    let body = r#"{"keys": [{"rollingPeriod": 1}, {"rollingPeriod": 2}, {"rollingPeriod": 3}]}"#;
    let b = decode_body_with_limit(BodyFormat::Json, body.as_bytes(), 3).unwrap();
    assert_eq!(b.keys.len(), 3);
    match decode_body_with_limit(BodyFormat::Json, body.as_bytes(), 2) {
        Err(Error::Proto(ProtoError::TooManyKeys { count: 3, limit: 2 })) => {}
        other => panic!("{other:?}"),
    }
    // A malformed key after the limit is still a decoding error (400 before 413).
    let bad = r#"{"keys": [{}, {}, {"rollingPeriod": -1}]}"#;
    assert!(matches!(
        decode_body_with_limit(BodyFormat::Json, bad.as_bytes(), 1),
        Err(Error::Json(JsonError::InvalidInteger { .. }))
    ));
}
