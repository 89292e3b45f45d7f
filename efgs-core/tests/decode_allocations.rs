//! Decoding allocates per batch, not per key (issue 12 point 2, ADR 0033): a realistic batch
//! of 5,000 keys with all 27 EU countries as visited countries decodes, in both body formats,
//! with a number of heap allocations that does not grow with the number of keys.
//!
//! The allocations are counted by a global allocator wrapper, so this file holds one test: a
//! second test running on another thread would be counted too.

use efgs_core::media::BodyFormat;
use efgs_core::model::{CountryCode, DiagnosisKey, DiagnosisKeyBatch};
use efgs_core::proto::{decode_body, encode_body};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const EU: [&str; 27] = [
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IT",
    "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
];

fn batch(keys: usize) -> DiagnosisKeyBatch {
    let visited: Vec<CountryCode> = EU.iter().map(|c| CountryCode::from(*c)).collect();
    DiagnosisKeyBatch {
        keys: (0..keys)
            .map(|i| {
                let mut data = [0u8; 16];
                data[..8].copy_from_slice(&(i as u64).to_be_bytes());
                DiagnosisKey {
                    key_data: data.into(),
                    rolling_start_interval_number: 2_950_000 + (i % 14) as u32 * 144,
                    rolling_period: 144,
                    transmission_risk_level: (i % 9) as i32,
                    visited_countries: visited.clone().into(),
                    origin: "DE".into(),
                    report_type: 1 + (i % 3) as i32,
                    days_since_onset_of_symptoms: (i % 29) as i32 - 14,
                }
            })
            .collect(),
    }
}

/// Heap allocations (and reallocations) made while decoding `body`; the decoded batch must
/// equal `want`.
fn allocations(format: BodyFormat, body: &[u8], want: &DiagnosisKeyBatch) -> usize {
    let region = Region::new(GLOBAL);
    let decoded = decode_body(format, body).expect("a valid body");
    let change = region.change();
    let n = change.allocations + change.reallocations;
    assert_eq!(&decoded, want, "{format:?}");
    assert!(
        decoded.keys.iter().all(|k| k.visited_countries.is_shared()),
        "{format:?}: decoded lists are shared"
    );
    n
}

#[test]
fn decoding_a_realistic_batch_allocates_per_batch_not_per_key() {
    for format in [BodyFormat::Protobuf, BodyFormat::Json] {
        let small = batch(50);
        let large = batch(5000);
        let (small_body, large_body) = (encode_body(format, &small), encode_body(format, &large));
        let a_small = allocations(format, &small_body, &small);
        let a_large = allocations(format, &large_body, &large);
        println!("{format:?}: 50 keys {a_small} allocations, 5000 keys {a_large}");
        // Per key, there would be at least 5,000 (one per key) or 135,000 (one per country).
        assert!(
            a_large <= 20,
            "{format:?}: {a_large} allocations for 5,000 keys"
        );
        assert!(
            a_large <= a_small + 16, // the key vector grows by doubling
            "{format:?}: {a_small} allocations for 50 keys, {a_large} for 5,000"
        );
    }
}
