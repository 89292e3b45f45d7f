//! Protobuf batch decoding: never panics; whatever decodes re-encodes and decodes to the same
//! batch, and survives the JSON codec.
#![no_main]

use efgs_core::json::{from_reference_json, to_reference_json};
use efgs_core::media::BodyFormat;
use efgs_core::proto::{decode_batch, decode_body_with_limit, encode_batch};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(batch) = decode_batch(data) else {
        return;
    };
    let again = decode_batch(&encode_batch(&batch)).expect("re-encoded batch decodes");
    assert_eq!(again, batch);
    let json = to_reference_json(&batch);
    assert_eq!(
        from_reference_json(json.as_bytes()).expect("printed JSON parses"),
        batch
    );
    let _ = decode_body_with_limit(BodyFormat::Protobuf, data, 2);
});
