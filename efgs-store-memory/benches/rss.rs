//! Resident memory of the memory store per key (prints numbers; `harness = false`).
//!
//! ```text
//! cargo bench -p efgs-store-memory --bench rss
//! ```
//!
//! Inserts `EFGS_BENCH_UPLOADS` (default 200) uploads of 5000 keys of the realistic profile
//! (`efgs_testkit::generate::Profile`, 27 visited countries per key; `EFGS_BENCH_PROFILE=light`
//! for the light one) into one `MemoryStore`, each upload generated just before its insert and
//! dropped after it, and prints the process's VmRSS before and after and the difference per
//! key (the store's keys, duplicate-hash index and upload rows; goal <= 300 bytes per
//! realistic key). Linux only (reads `/proc/self/status`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use efgs_core::store::{UploadOutcome, UploadStore};
use efgs_store_memory::MemoryStore;
use efgs_testkit::generate::{self, BASE, KeyGen, Profile};

const KEYS: usize = 5000;

fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let uploads: usize = std::env::var("EFGS_BENCH_UPLOADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let profile = Profile::from_env();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut kg = KeyGen::new(11);
    // Warm up the allocator and the generator with one upload into a store that is dropped.
    {
        let warm = MemoryStore::new();
        let up = generate::upload("DE", "warm", kg.keys_of(profile, "DE", KEYS), BASE);
        let out = rt.block_on(warm.insert_upload(up)).unwrap();
        assert!(matches!(out, UploadOutcome::Stored(_)));
    }
    let store = MemoryStore::new();
    let before = status_kb("VmRSS:");
    let mut body_bytes = 0usize;
    for i in 0..uploads {
        let keys = kg.keys_of(profile, "DE", KEYS);
        body_bytes += efgs_core::proto::encode_batch(&efgs_core::model::DiagnosisKeyBatch {
            keys: keys.clone(),
        })
        .len();
        let up = generate::upload("DE", &format!("rss-{i}"), keys, BASE);
        let out = rt.block_on(store.insert_upload(up)).unwrap();
        assert!(matches!(out, UploadOutcome::Stored(_)));
    }
    let after = status_kb("VmRSS:");
    let keys = (uploads * KEYS) as f64;
    println!("memory store RSS, profile {}", profile.name());
    println!(
        "{} keys in {uploads} uploads; protobuf {:.0} bytes per key",
        uploads * KEYS,
        body_bytes as f64 / keys
    );
    println!(
        "VmRSS before {before} kB, after {after} kB, VmHWM {} kB",
        status_kb("VmHWM:")
    );
    println!(
        "resident memory per key: {:.0} bytes (goal <= 300)",
        (after.saturating_sub(before) * 1024) as f64 / keys
    );
    drop(store);
}
