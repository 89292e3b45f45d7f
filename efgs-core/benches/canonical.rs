//! Canonical batch bytes and duplicate hashes for one full upload (5000 keys).
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use efgs_core::canonical::{DuplicateHasher, canonical_batch_bytes};

#[path = "support/mod.rs"]
mod support;

fn bench(c: &mut Criterion) {
    // The realistic profile (27 visited countries per key) unless EFGS_BENCH_PROFILE=light.
    let profile = support::Profile::from_env();
    eprintln!("canonical: profile {}", profile.name());
    let keys = profile.keys(support::BATCH_KEYS);
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
