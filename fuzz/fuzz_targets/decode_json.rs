//! Lenient JSON decoding: never panics (hostile nesting included); errors point inside the
//! input; whatever parses prints and parses back to the same batch
//! (`efgs_fuzz::checks::decode_json`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    efgs_fuzz::checks::decode_json(data);
});
