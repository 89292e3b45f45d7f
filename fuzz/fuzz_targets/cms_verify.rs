//! Detached CMS verification at a fixed instant: never panics; an accepted signature is
//! consistent and bound to its content (`efgs_fuzz::checks::cms_verify`). Input: 2 bytes
//! content length (little endian), the content, then the CMS bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = efgs_fuzz::checks::cms_verify(data);
});
