//! Canonical batch bytes and duplicate hashes for one full upload (5000 keys).
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use efgs_core::DiagnosisKey;
use efgs_core::canonical::{DuplicateHasher, canonical_batch_bytes};

/// Realistic keys: random 16-byte keyData, 10 visited countries, origin DE.
fn keys(n: usize) -> Vec<DiagnosisKey> {
    let mut state = 0x1234_5678_9abc_def0u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let countries = ["AT", "BE", "DE", "DK", "ES", "FR", "IE", "IT", "NL", "PL"];
    (0..n)
        .map(|_| {
            let mut key_data = Vec::with_capacity(16);
            key_data.extend_from_slice(&next().to_le_bytes());
            key_data.extend_from_slice(&next().to_le_bytes());
            DiagnosisKey {
                key_data,
                rolling_start_interval_number: 2_990_000 + (next() % 2000) as u32,
                rolling_period: 144,
                transmission_risk_level: (next() % 9) as i32,
                visited_countries: countries.iter().map(|c| (*c).to_owned()).collect(),
                origin: "DE".into(),
                report_type: 1,
                days_since_onset_of_symptoms: (next() % 29) as i32 - 14,
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let keys = keys(5000);
    let mut group = c.benchmark_group("canonical");
    group.throughput(Throughput::Elements(keys.len() as u64));
    group.bench_function("canonical_5000", |b| {
        b.iter(|| canonical_batch_bytes(black_box(&keys)))
    });
    let hasher = DuplicateHasher::new(&[7u8; 32]);
    group.bench_function("hash_all_5000", |b| {
        b.iter(|| hasher.hash_all(black_box(&keys)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
