//! Ingest and read benchmark of the PostgreSQL store (prints numbers; `harness = false`).
//!
//! ```text
//! eval "$(scripts/pg-test-cluster.sh start)"
//! cargo bench -p efgs-store-postgres --bench ingest
//! ```
//!
//! In one run, on one fresh schema, interleaved upload by upload:
//! - **raw COPY**: the key rows of each 5000-key upload (same columns, same duplicate hashes,
//!   same payload sizes) written with binary COPY, one transaction per upload, into
//!   `raw_keys`, a table created `LIKE keys INCLUDING ALL` (the same indexes and constraints);
//! - **store ingest**: `PgStore::insert_upload` of the same uploads (sealing every key with
//!   AES-256-GCM, the upload and statistics rows, the COPY, one transaction per upload).
//!
//! It prints keys/s for both and the ratio (target: the store reaches at least 40% of the raw
//! COPY rate), then the time to read one 5000-key batch for a country
//! (`KeyStore::batch_keys`, decrypting and decoding every key).
//!
//! Settings: `EFGS_BENCH_UPLOADS` (default 20 uploads of 5000 keys), `EFGS_BENCH_READS`
//! (default 20 reads). Without `EFGS_TEST_DATABASE_URL` it prints a message and exits 0
//! (exit 1 when `CI` or `EFGS_REQUIRE_POSTGRES` is set).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use efgs_core::store::{BatchStore, KeyStore, NewUpload, UploadOutcome, UploadStore};
use prost::Message;
use time::OffsetDateTime;
use time::macros::datetime;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

const KEYS_PER_UPLOAD: u64 = 5000;
/// The 27 EU member states, as efgs_testkit::generate::EU_COUNTRIES (not a dependency here).
const EU_COUNTRIES: [&str; 27] = [
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IT",
    "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
];
const T0: OffsetDateTime = datetime!(2026-11-28 10:00 UTC);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One raw key row: the shape of a `keys` row.
struct RawRow {
    position: i32,
    hash: Vec<u8>,
    nonce: Vec<u8>,
    payload: Vec<u8>,
}

fn random(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).unwrap();
    b
}

/// The rows the store writes for `upload`, with random bytes where the store has ciphertext.
fn raw_rows(upload: &NewUpload) -> Vec<RawRow> {
    let mut rows: Vec<RawRow> = upload
        .keys
        .iter()
        .enumerate()
        .map(|(i, k)| RawRow {
            position: i as i32,
            hash: k.hash.to_vec(),
            nonce: random(12),
            payload: random(k.key.encoded_len() + 16),
        })
        .collect();
    rows.sort_by(|a, b| a.hash.cmp(&b.hash));
    rows
}

async fn raw_copy(client: &mut tokio_postgres::Client, upload_id: i64, rows: &[RawRow]) {
    let tx = client.transaction().await.unwrap();
    let sink = tx
        .copy_in(
            "COPY raw_keys (upload_id, position, dup_hash, key_id, nonce, payload) \
             FROM STDIN (FORMAT binary)",
        )
        .await
        .unwrap();
    let writer = BinaryCopyInWriter::new(
        sink,
        &[
            Type::INT8,
            Type::INT4,
            Type::BYTEA,
            Type::INT2,
            Type::BYTEA,
            Type::BYTEA,
        ],
    );
    tokio::pin!(writer);
    let key_id: i16 = 1;
    for r in rows {
        writer
            .as_mut()
            .write(&[
                &upload_id,
                &r.position,
                &r.hash,
                &key_id,
                &r.nonce,
                &r.payload,
            ])
            .await
            .unwrap();
    }
    writer.finish().await.unwrap();
    tx.commit().await.unwrap();
}

fn rate(keys: u64, d: Duration) -> f64 {
    keys as f64 / d.as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let uploads = env_usize("EFGS_BENCH_UPLOADS", 20).max(1);
    let reads = env_usize("EFGS_BENCH_READS", 20).max(1);
    let Some(db) = support::database("bench ingest").await else {
        return;
    };
    let store = db.store().await;
    let mut raw = db.raw().await;
    raw.batch_execute("CREATE TABLE raw_keys (LIKE keys INCLUDING ALL)")
        .await
        .unwrap();

    println!(
        "PostgreSQL ingest bench: {uploads} uploads x {KEYS_PER_UPLOAD} keys, schema {}",
        db.schema
    );
    // Warm-up (not measured): one upload each way.
    // The realistic profile (every key lists the 27 EU countries) unless
    // EFGS_BENCH_PROFILE=light (the tests' keys as they are).
    let realistic = std::env::var("EFGS_BENCH_PROFILE").as_deref() != Ok("light");
    println!(
        "profile: {}",
        if realistic {
            "realistic (27 visited countries per key)"
        } else {
            "light (tests' keys)"
        }
    );
    let gen_upload = |i: u64| {
        let keys = (0..KEYS_PER_UPLOAD)
            .map(|n| {
                let mut k = support::key(i, n, "DE");
                if realistic {
                    k.visited_countries = EU_COUNTRIES.iter().map(|c| (*c).into()).collect();
                }
                k
            })
            .collect();
        support::upload(
            "DE",
            &format!("bench-{i}"),
            keys,
            T0 + Duration::from_secs(i),
        )
    };
    let warm = gen_upload(1_000_000);
    raw_copy(&mut raw, 1_000_000, &raw_rows(&warm)).await;
    let r = store.insert_upload(warm).await.unwrap();
    assert!(matches!(r, UploadOutcome::Stored(_)));

    let mut t_raw = Duration::ZERO;
    let mut t_store = Duration::ZERO;
    for i in 0..uploads as u64 {
        let upload = gen_upload(i);
        let rows = raw_rows(&upload);
        // Alternate which side goes first, so neither always meets a warmer cache.
        let raw_first = i % 2 == 0;
        if raw_first {
            let t = Instant::now();
            raw_copy(&mut raw, i as i64, &rows).await;
            t_raw += t.elapsed();
        }
        let t = Instant::now();
        let r = store.insert_upload(upload).await.unwrap();
        t_store += t.elapsed();
        assert!(matches!(r, UploadOutcome::Stored(_)));
        if !raw_first {
            let t = Instant::now();
            raw_copy(&mut raw, i as i64, &rows).await;
            t_raw += t.elapsed();
        }
    }
    let total = uploads as u64 * KEYS_PER_UPLOAD;
    let raw_rate = rate(total, t_raw);
    let store_rate = rate(total, t_store);
    println!(
        "raw binary COPY (same rows, same indexes): {total} keys in {:.3} s = {:.0} keys/s",
        t_raw.as_secs_f64(),
        raw_rate
    );
    println!(
        "store ingest (PgStore::insert_upload):     {total} keys in {:.3} s = {:.0} keys/s",
        t_store.as_secs_f64(),
        store_rate
    );
    let ratio = store_rate / raw_rate;
    println!(
        "store / raw COPY = {:.1}% (target >= 40%): {}",
        ratio * 100.0,
        if ratio >= 0.4 { "PASS" } else { "BELOW TARGET" }
    );

    // Read: one batch per upload (5000 keys each); read one for another country.
    let mut tags = Vec::new();
    while let Some(b) = store
        .create_next_batch(T0 + Duration::from_secs(3600), KEYS_PER_UPLOAD as usize)
        .await
        .unwrap()
    {
        tags.push(b.batch.tag);
    }
    let tag = tags[tags.len() / 2];
    let mut times = Vec::with_capacity(reads);
    for _ in 0..reads {
        let t = Instant::now();
        let keys = store.batch_keys(&tag, Some("FR")).await.unwrap();
        times.push(t.elapsed());
        assert_eq!(keys.len() as u64, KEYS_PER_UPLOAD);
    }
    times.sort();
    println!(
        "read one {KEYS_PER_UPLOAD}-key batch for a country (batch_keys {tag}, {reads} reads): \
         median {:.2} ms, min {:.2} ms, max {:.2} ms",
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3
    );
    drop(store);
    drop(raw);
}
