//! `BatchTag::parse` and `parse_path_date`: never panic; whatever parses prints back to the
//! input (`efgs_fuzz::checks::batch_tag`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    efgs_fuzz::checks::batch_tag(data);
});
