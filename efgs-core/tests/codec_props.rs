//! Property tests: round trips of both codecs, agreement of the batch decoder with prost's own,
//! and decoders that return errors (never panic) on arbitrary input.
#![allow(clippy::unwrap_used)]

use efgs_core::json::{from_reference_json, to_reference_json};
use efgs_core::media::{BodyFormat, accepts_json, negotiate_download, negotiate_upload};
use efgs_core::proto::{
    ProtoError, decode_batch, decode_body, decode_body_with_limit, encode_batch,
};
use efgs_core::{DiagnosisKey, DiagnosisKeyBatch, Error};
use proptest::prelude::*;
use prost::Message as _;

fn any_key() -> impl Strategy<Value = DiagnosisKey> {
    (
        prop::collection::vec(any::<u8>(), 0..40),
        prop_oneof![any::<u32>(), Just(0u32), Just(u32::MAX), Just(1u32 << 31)],
        any::<u32>(),
        prop_oneof![
            any::<i32>(),
            Just(0),
            Just(i32::MIN),
            Just(i32::MAX),
            -30..30i32
        ],
        // Runs of two-letter codes (the decoder's fast path) broken by other strings.
        prop::collection::vec(
            prop_oneof![
                4 => "[A-Z]{2}",
                1 => any::<String>(),
                1 => "[ -~]{0,3}",
                1 => "[\\x{80}-\\x{7ff}]{1,2}",
            ],
            0..8,
        ),
        prop_oneof![any::<String>(), "[A-Z]{2}", Just(String::new())],
        prop_oneof![0..6i32, any::<i32>()],
        prop_oneof![any::<i32>(), Just(i32::MIN), -20..20i32],
    )
        .prop_map(
            |(key_data, rsin, rp, trl, visited, origin, rt, dsos)| DiagnosisKey {
                key_data: key_data.into(),
                rolling_start_interval_number: rsin,
                rolling_period: rp,
                transmission_risk_level: trl,
                visited_countries: visited.into_iter().map(Into::into).collect(),
                origin: origin.into(),
                report_type: rt,
                days_since_onset_of_symptoms: dsos,
            },
        )
}

fn any_batch() -> impl Strategy<Value = DiagnosisKeyBatch> {
    prop::collection::vec(any_key(), 0..6).prop_map(|keys| DiagnosisKeyBatch { keys })
}

/// Token soup that looks like the JSON grammar, to reach deep parser states.
fn json_like() -> impl Strategy<Value = String> {
    let atoms = prop_oneof![
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just(":".to_owned()),
        Just(",".to_owned()),
        Just("\"keys\"".to_owned()),
        Just("keys".to_owned()),
        Just("\"keyData\"".to_owned()),
        Just("\"origin\"".to_owned()),
        Just("\"reportType\"".to_owned()),
        Just("\"rollingPeriod\"".to_owned()),
        Just("\"visitedCountries\"".to_owned()),
        Just("\"daysSinceOnsetOfSymptoms\"".to_owned()),
        Just("\"x\"".to_owned()),
        Just("null".to_owned()),
        Just("'a'".to_owned()),
        Just("\"\\u".to_owned()),
        Just("\\".to_owned()),
        Just("\"".to_owned()),
        Just("#".to_owned()),
        Just("\n".to_owned()),
        Just(" ".to_owned()),
        "-?(0x)?[0-9a-f]{0,12}",
        "\"[A-Za-z0-9+/=_-]{0,8}\"",
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(atoms, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn protobuf_round_trip(batch in any_batch()) {
        let bytes = encode_batch(&batch);
        prop_assert_eq!(decode_batch(&bytes).unwrap(), batch.clone());
        if !bytes.is_empty() {
            prop_assert_eq!(decode_body(BodyFormat::Protobuf, &bytes).unwrap(), batch);
        }
    }

    #[test]
    fn json_round_trip(batch in any_batch()) {
        let json = to_reference_json(&batch);
        let back = from_reference_json(json.as_bytes());
        prop_assert!(back.is_ok(), "{json}: {back:?}");
        prop_assert_eq!(back.unwrap(), batch.clone());
        prop_assert_eq!(decode_body(BodyFormat::Json, json.as_bytes()).unwrap(), batch);
    }

    #[test]
    fn json_output_is_valid_json_with_proto_names(batch in any_batch()) {
        // serde_json as an independent JSON grammar check of the printer (not of the parser).
        let json = to_reference_json(&batch);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        if batch.keys.is_empty() {
            prop_assert_eq!(json, "{}");
        } else {
            prop_assert_eq!(v["keys"].as_array().unwrap().len(), batch.keys.len());
            for (k, jv) in batch.keys.iter().zip(v["keys"].as_array().unwrap()) {
                prop_assert_eq!(jv.get("origin").and_then(|o| o.as_str()).unwrap_or(""), &*k.origin.text());
                prop_assert_eq!(
                    jv.get("days_since_onset_of_symptoms").and_then(|o| o.as_i64()).unwrap_or(0),
                    i64::from(k.days_since_onset_of_symptoms)
                );
                prop_assert_eq!(
                    jv.get("rollingStartIntervalNumber").and_then(|o| o.as_u64()).unwrap_or(0),
                    u64::from(k.rolling_start_interval_number)
                );
            }
        }
    }

    #[test]
    fn batch_decoder_agrees_with_prost(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let ours = decode_batch(&bytes);
        let prost = DiagnosisKeyBatch::decode(bytes.as_slice());
        match (&ours, &prost) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            (Err(_), Err(_)) => {}
            _ => prop_assert!(false, "ours {:?} vs prost {:?} on {:02x?}", ours, prost, bytes),
        }
    }

    #[test]
    fn batch_decoder_agrees_with_prost_on_mutated_valid(batch in any_batch(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
        let mut bytes = encode_batch(&batch);
        if !bytes.is_empty() {
            for (i, b) in flips {
                let i = i.index(bytes.len());
                bytes[i] = b;
            }
        }
        let ours = decode_batch(&bytes);
        let prost = DiagnosisKeyBatch::decode(bytes.as_slice());
        match (&ours, &prost) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            (Err(_), Err(_)) => {}
            _ => prop_assert!(false, "ours {:?} vs prost {:?}", ours, prost),
        }
    }

    #[test]
    fn key_limit_counts_all_keys(batch in any_batch(), limit in 0usize..8) {
        let bytes = encode_batch(&batch);
        prop_assume!(!bytes.is_empty());
        for format in [BodyFormat::Protobuf, BodyFormat::Json] {
            let body = efgs_core::proto::encode_body(format, &batch);
            match decode_body_with_limit(format, &body, limit) {
                Ok(b) => {
                    prop_assert!(batch.keys.len() <= limit);
                    prop_assert_eq!(&b, &batch);
                }
                Err(Error::Proto(ProtoError::TooManyKeys { count, limit: l })) => {
                    prop_assert_eq!(count, batch.keys.len());
                    prop_assert_eq!(l, limit);
                    prop_assert!(count > limit);
                }
                Err(e) => prop_assert!(false, "{e:?}"),
            }
        }
    }

    #[test]
    fn decoders_never_panic_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode_batch(&bytes);
        let _ = from_reference_json(&bytes);
        let _ = decode_body(BodyFormat::Protobuf, &bytes);
        let _ = decode_body(BodyFormat::Json, &bytes);
    }

    #[test]
    fn json_decoder_never_panics_on_json_like(s in json_like()) {
        if let Err(e) = from_reference_json(s.as_bytes()) {
            prop_assert!(e.position() <= s.len());
            let _ = e.to_string();
        }
    }

    #[test]
    fn json_decoder_never_panics_on_mutated_valid(batch in any_batch(), cut in any::<prop::sample::Index>(), insert in any::<String>()) {
        let mut json = to_reference_json(&batch);
        let mut at = cut.index(json.len() + 1);
        while !json.is_char_boundary(at) {
            at -= 1;
        }
        json.insert_str(at, &insert);
        let _ = from_reference_json(json.as_bytes());
        json.truncate(at);
        let r = from_reference_json(json.as_bytes());
        if at < to_reference_json(&batch).len() {
            prop_assert!(r.is_err(), "a truncated body must not parse: {json}");
        }
    }

    /// The JSON decoder reads a plain list of two-letter visited countries on a fast path
    /// (ADR 0033). Whatever the list's layout, it must decode exactly as the general path
    /// does: the same list with its first code written with a `\u` escape (which the fast
    /// path never takes) gives the same result, or an error of the same kind.
    #[test]
    fn json_visited_fast_path_agrees_with_the_general_path(
        codes in prop::collection::vec("[ -!#-\\[\\]-~]{2}|[A-Z]{3}|\u{e9}X", 1..40),
        seps in prop::collection::vec(prop_oneof![
            8 => Just(",".to_owned()),
            1 => Just(" , ".to_owned()),
            1 => Just(",\n\t".to_owned()),
            1 => Just(" ".to_owned()),
            1 => Just(",,".to_owned()),
            1 => Just(", # note\n".to_owned()),
        ], 40),
        open in prop_oneof![Just("["), Just("[ "), Just("[\n")],
        close in prop_oneof![Just("]"), Just(" ]"), Just(",]"), Just("")],
    ) {
        let list = |first_escaped: bool| {
            let mut out = open.to_owned();
            for (i, c) in codes.iter().enumerate() {
                if i > 0 {
                    out.push_str(&seps[i]);
                }
                let json = serde_json::to_string(c).unwrap();
                if i == 0 && first_escaped {
                    let mut chars = c.chars();
                    let first = chars.next().unwrap();
                    let rest = serde_json::to_string(chars.as_str()).unwrap();
                    out.push_str(&format!("\"\\u{:04x}{}", u32::from(first), &rest[1..]));
                } else {
                    out.push_str(&json);
                }
            }
            out.push_str(close);
            format!(r#"{{"keys":[{{"keyData":"AAAAAAAAAAAAAAAAAAAAAA==","visitedCountries":{out},"origin":"DE"}}]}}"#)
        };
        let (fast, general) = (list(false), list(true));
        match (decode_body(BodyFormat::Json, fast.as_bytes()), decode_body(BodyFormat::Json, general.as_bytes())) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b, "{}", fast),
            (Err(Error::Json(a)), Err(Error::Json(b))) => prop_assert_eq!(a.code(), b.code(), "{}", fast),
            (a, b) => prop_assert!(false, "{fast}: {a:?} but {general}: {b:?}"),
        }
    }

    /// Both encoders copy a visited-country list shared by consecutive keys instead of
    /// encoding it again (ADR 0033): the bytes must be prost's own and the reference JSON,
    /// whatever the pattern of shared and different lists.
    #[test]
    fn encoders_with_shared_lists_agree_with_prost(batch in any_batch(), same in prop::collection::vec(any::<bool>(), 6)) {
        let mut batch = batch;
        let n = batch.keys.len();
        for (i, &share) in same.iter().enumerate().take(n).skip(1) {
            if share {
                batch.keys[i].visited_countries = batch.keys[i - 1].visited_countries.clone();
            }
        }
        let bytes = batch.encode_to_vec();
        prop_assert_eq!(encode_batch(&batch), bytes.clone());
        let decoded = decode_batch(&bytes).unwrap();
        prop_assert_eq!(encode_batch(&decoded), bytes);
        let json = to_reference_json(&batch);
        prop_assert_eq!(to_reference_json(&decoded), json.clone());
        let from_json = from_reference_json(json.as_bytes()).unwrap();
        prop_assert_eq!(to_reference_json(&from_json), json);
        prop_assert_eq!(encode_batch(&from_json), encode_batch(&batch));
    }

    #[test]
    fn media_negotiation_never_panics(ct in any::<String>(), accept in any::<String>(), soup in "[ ,;=\"\\\\a-z/*.0-9qQ]{0,40}") {
        let _ = negotiate_upload(Some(&ct), Some(&accept));
        let _ = negotiate_upload(Some(&soup), Some(&soup));
        let _ = negotiate_download(Some(&accept));
        let _ = negotiate_download(Some(&soup));
        let _ = accepts_json(Some(&accept));
        let _ = accepts_json(Some(&soup));
    }
}

#[test]
fn malformed_protobuf_is_an_error() {
    for bad in [
        &[0x0a][..],                     // key field without length
        &[0x0a, 0x05, 0x01],             // length past the end
        &[0x08, 0x01],                   // field 1 as varint
        &[0x0a, 0x02, 0x0a, 0x05],       // key: keyData length past the key's end
        &[0x0a, 0x03, 0x32, 0x01, 0xff], // key: origin not UTF-8
        &[0x00],                         // tag 0
        &[0xff; 11],                     // overlong varint
        &[0x13],                         // start group, never ended
        &[0x14],                         // end group without start
        &[0x0f],                         // wire type 7
    ] {
        assert!(decode_batch(bad).is_err(), "{bad:02x?}");
        assert!(
            DiagnosisKeyBatch::decode(bad).is_err(),
            "prost agrees on {bad:02x?}"
        );
    }
    // Unknown fields (and balanced groups) are skipped, like protobuf-java.
    let with_unknown = [
        0x10, 0x05, 0x1b, 0x08, 0x01, 0x1c, 0x0a, 0x00, 0x25, 1, 2, 3, 4,
    ];
    assert_eq!(
        decode_batch(&with_unknown).unwrap().keys,
        vec![DiagnosisKey::default()]
    );
    assert_eq!(
        DiagnosisKeyBatch::decode(&with_unknown[..])
            .unwrap()
            .keys
            .len(),
        1
    );
}
