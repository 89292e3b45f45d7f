//! Ingest rate of the memory store: 5000-key uploads into a growing store (up to 1M keys,
//! then a fresh one), timed around `insert_upload` only. Also times batching and download of
//! a full 5000-key batch. Throughput is reported in keys per second. Keys follow the realistic
//! profile (27 visited countries each); `EFGS_BENCH_PROFILE=light` for the light one.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use efgs_core::store::{BatchStore, KeyStore, UploadStore};
use efgs_store_memory::MemoryStore;
use efgs_testkit::generate::{self, BASE, KeyGen, Profile};

const KEYS: usize = 5000;
const UPLOADS_PER_STORE: u64 = 200;

fn ingest(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("memory");
    g.throughput(Throughput::Elements(KEYS as u64));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(5));

    g.bench_function("insert_upload_5000_keys", |b| {
        b.iter_custom(|iters| {
            let mut store = MemoryStore::new();
            let mut kg = KeyGen::new(1);
            let mut total = Duration::ZERO;
            for i in 0..iters {
                if i % UPLOADS_PER_STORE == 0 {
                    store = MemoryStore::new();
                }
                let up = generate::upload(
                    "DE",
                    &format!("t{i}"),
                    kg.keys_of(Profile::from_env(), "DE", KEYS),
                    BASE,
                );
                let start = Instant::now();
                let r = rt.block_on(store.insert_upload(up)).unwrap();
                total += start.elapsed();
                let _ = black_box(r);
            }
            total
        })
    });

    g.bench_function("batch_and_download_5000_keys", |b| {
        b.iter_custom(|iters| {
            let mut kg = KeyGen::new(2);
            let mut total = Duration::ZERO;
            for i in 0..iters {
                let store = MemoryStore::new();
                let up = generate::upload(
                    "DE",
                    &format!("t{i}"),
                    kg.keys_of(Profile::from_env(), "DE", KEYS),
                    BASE,
                );
                let _ = rt.block_on(store.insert_upload(up)).unwrap();
                let start = Instant::now();
                let made = rt
                    .block_on(store.create_next_batch(BASE, KEYS))
                    .unwrap()
                    .unwrap();
                let keys = rt
                    .block_on(store.batch_keys(&made.batch.tag, Some("FR")))
                    .unwrap();
                total += start.elapsed();
                black_box(keys);
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, ingest);
criterion_main!(benches);
