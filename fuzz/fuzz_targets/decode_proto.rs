//! Protobuf batch decoding: never panics; whatever decodes re-encodes and decodes to the same
//! batch, and survives the JSON codec (`efgs_fuzz::checks::decode_proto`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    efgs_fuzz::checks::decode_proto(data);
});
