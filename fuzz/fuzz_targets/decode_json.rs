//! Lenient JSON decoding: never panics (hostile nesting included); errors point inside the
//! input; whatever parses prints and parses back to the same batch.
#![no_main]

use efgs_core::json::{from_reference_json, to_reference_json};
use efgs_core::media::BodyFormat;
use efgs_core::proto::{decode_batch, decode_body_with_limit, encode_batch};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match from_reference_json(data) {
        Err(e) => assert!(e.position() <= data.len()),
        Ok(batch) => {
            let json = to_reference_json(&batch);
            assert_eq!(
                from_reference_json(json.as_bytes()).expect("printed JSON parses"),
                batch
            );
            assert_eq!(
                decode_batch(&encode_batch(&batch)).expect("protobuf round trip"),
                batch
            );
        }
    }
    let _ = decode_body_with_limit(BodyFormat::Json, data, 2);
});
