//! DN, thumbprint header, certificate and trust-list entry parsing: never panic; results are
//! well formed (`efgs_fuzz::checks::identity`; the first byte picks the parser).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    efgs_fuzz::checks::identity(data);
});
