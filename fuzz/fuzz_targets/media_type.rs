//! Content negotiation on arbitrary header values: never panics, and agrees with itself
//! (`efgs_fuzz::checks::media_type`; first line Content-Type, rest Accept).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    efgs_fuzz::checks::media_type(data);
});
