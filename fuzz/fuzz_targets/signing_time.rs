//! The CMS signing-time parser on any UTCTime/GeneralizedTime value: never panics, and what it
//! accepts is a representable instant that round-trips (`efgs_fuzz::checks::signing_time`).
//! Input: byte 0 even for UTCTime, odd for GeneralizedTime; the rest is the value.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = efgs_fuzz::checks::signing_time(data);
});
