//! Canonical batch bytes of any protobuf-decodable batch: no panic, equal to a naive reading
//! of protocol §4.1, independent of key order (`efgs_fuzz::checks::canonical`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    efgs_fuzz::checks::canonical(data);
});
