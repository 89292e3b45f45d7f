//! PostgreSQL-specific behaviour beyond the shared conformance suite: encryption at rest,
//! key rotation, migrations, constraints, error kinds, and batching across instances.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use efgs_core::store::{
    BatchStore, KeyStore, StoreError, StoreInspect, UploadOutcome, UploadStore,
};
use efgs_store_postgres::{EncryptionKeys, PgConfig, PgStore};
use support::{database, key, upload};
use time::OffsetDateTime;
use time::macros::datetime;

const T0: OffsetDateTime = datetime!(2026-11-28 10:00 UTC);

macro_rules! db_or_skip {
    ($name:expr) => {
        match database($name).await {
            Some(db) => db,
            None => return,
        }
    };
}

/// Finds the psql binary (PATH, then the Debian server directories).
fn psql() -> Option<std::path::PathBuf> {
    let from_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("psql"))
            .find(|p| p.is_file())
    });
    from_path.or_else(|| {
        let mut found: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin/psql"))
            .filter(|p| p.is_file())
            .collect();
        found.sort();
        found.pop()
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The stored key rows hide the key data and metadata: neither the raw column bytes nor psql's
/// rendering of the rows contains the 16-byte key data or a distinctive visited country; each
/// row has its own nonce and the active key id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rows_hold_no_plaintext() {
    let db = db_or_skip!("key_rows_hold_no_plaintext");
    let store = db.store().await;
    // Debug output names key ids only.
    let dbg = format!("{store:?}");
    assert!(dbg.contains("active: 1") && !dbg.contains("17, 17") && !dbg.contains("0x11"));
    let mut keys: Vec<_> = (0..200).map(|n| key(1, n, "DE")).collect();
    for k in &mut keys {
        k.visited_countries = vec!["QXZQXZQX".into()].into();
    }
    let r = store
        .insert_upload(upload("DE", "plain", keys.clone(), T0))
        .await
        .unwrap();
    assert!(matches!(r, UploadOutcome::Stored(_)));

    // Raw bytes of every column.
    let raw = db.raw().await;
    let rows = raw
        .query(
            "SELECT upload_id::text::bytea, position::text::bytea, dup_hash, key_id::text::bytea, \
                    nonce, payload FROM keys",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 200);
    let mut blob = Vec::new();
    let mut nonces = HashSet::new();
    for row in &rows {
        for i in 0..6 {
            let v: Vec<u8> = row.get(i);
            blob.extend_from_slice(&v);
            blob.push(0);
        }
        let nonce: Vec<u8> = row.get(4);
        assert_eq!(nonce.len(), 12);
        assert!(nonces.insert(nonce), "nonce reused");
    }
    let key_ids = raw
        .query("SELECT DISTINCT key_id FROM keys", &[])
        .await
        .unwrap();
    assert_eq!(key_ids.len(), 1);
    assert_eq!(
        key_ids[0].get::<_, i16>(0),
        1,
        "rows must be sealed under the active key"
    );
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    for k in &keys {
        assert!(
            !contains(&blob, &k.key_data),
            "plaintext key data in a key row"
        );
    }
    assert!(
        !contains(&blob, b"QXZQXZQX"),
        "plaintext visited country in a key row"
    );

    // What an operator sees with psql.
    match psql() {
        Some(psql) => {
            let out = std::process::Command::new(psql)
                .arg(&db.url)
                .args(["-X", "-A", "-t", "-c"])
                .arg(format!("SELECT k::text FROM {}.keys k", db.schema))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "psql failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8(out.stdout).unwrap();
            assert_eq!(text.lines().count(), 200, "psql output: {text}");
            for k in &keys {
                assert!(!text.contains(&hex(&k.key_data)), "psql shows key data");
            }
            assert!(!text.contains("QXZQXZQX") && !text.contains(&hex(b"QXZQXZQX")));
        }
        None if support::required() => panic!("psql not found (install postgresql-client)"),
        None => eprintln!("psql not found; checked the raw rows only"),
    }

    // And the store still reads them back exactly.
    let b = store.create_next_batch(T0, 5000).await.unwrap().unwrap();
    assert_eq!(store.batch_keys(&b.batch.tag, None).await.unwrap(), keys);
}

/// Rows sealed under an older key stay readable after rotation, `reencrypt_keys` moves them to
/// the active key, after which the old key can be dropped; a store without the needed key
/// reports a backend error, not garbage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation() {
    let db = db_or_skip!("key_rotation");
    let old = EncryptionKeys::single(0, [0x22; 32]).unwrap();
    let store = db
        .store_with(PgConfig {
            encryption: old,
            ..db.config()
        })
        .await;
    let keys: Vec<_> = (0..50).map(|n| key(2, n, "FR")).collect();
    let _ = store
        .insert_upload(upload("FR", "r", keys.clone(), T0))
        .await
        .unwrap();
    let tag = store
        .create_next_batch(T0, 5000)
        .await
        .unwrap()
        .unwrap()
        .batch
        .tag;
    drop(store);

    // Rotated: key 1 active, key 0 still configured.
    let store = db.store().await;
    assert_eq!(store.batch_keys(&tag, None).await.unwrap(), keys);
    // A store that only knows the new key cannot read the old rows yet.
    let only_new = EncryptionKeys::single(1, [0x11; 32]).unwrap();
    let new_only = db
        .store_with(PgConfig {
            encryption: only_new.clone(),
            ..db.config()
        })
        .await;
    let err = new_only.batch_keys(&tag, None).await.unwrap_err();
    assert!(matches!(err, StoreError::Backend { .. }), "got {err:?}");
    assert!(!err.is_transient());

    assert_eq!(store.reencrypt_keys(20).await.unwrap(), 20);
    assert_eq!(store.reencrypt_keys(1000).await.unwrap(), 30);
    assert_eq!(store.reencrypt_keys(1000).await.unwrap(), 0);
    assert_eq!(new_only.batch_keys(&tag, None).await.unwrap(), keys);
    // A key under the same id but different bytes fails authentication.
    let wrong = EncryptionKeys::single(1, [0x33; 32]).unwrap();
    let wrong = db
        .store_with(PgConfig {
            encryption: wrong,
            ..db.config()
        })
        .await;
    assert!(matches!(
        wrong.batch_keys(&tag, None).await,
        Err(StoreError::Backend { .. })
    ));
}

/// A payload moved into another row (another duplicate hash) fails authentication.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapped_payloads_are_detected() {
    let db = db_or_skip!("swapped_payloads_are_detected");
    let store = db.store().await;
    let keys: Vec<_> = (0..2).map(|n| key(3, n, "IT")).collect();
    let _ = store
        .insert_upload(upload("IT", "s", keys, T0))
        .await
        .unwrap();
    let tag = store
        .create_next_batch(T0, 5000)
        .await
        .unwrap()
        .unwrap()
        .batch
        .tag;
    let raw = db.raw().await;
    raw.batch_execute(
        "UPDATE keys k SET payload = o.payload, nonce = o.nonce FROM keys o \
         WHERE k.upload_id = o.upload_id AND k.position <> o.position",
    )
    .await
    .unwrap();
    let err = store.batch_keys(&tag, None).await.unwrap_err();
    assert!(matches!(err, StoreError::Backend { .. }), "got {err:?}");
}

/// The uniqueness promises hold in the database itself, not only in the store's code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constraints_enforce_the_promises() {
    let db = db_or_skip!("constraints_enforce_the_promises");
    let store = db.store().await;
    let _ = store
        .insert_upload(upload("DE", "c", vec![key(4, 0, "DE")], T0))
        .await
        .unwrap();
    let _ = store.create_next_batch(T0, 5000).await.unwrap().unwrap();
    let raw = db.raw().await;
    let unique = |r: Result<u64, tokio_postgres::Error>| {
        let e = r.expect_err("the database accepted a duplicate");
        assert_eq!(
            e.code(),
            Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION),
            "{e}"
        );
    };
    unique(
        raw.execute(
            "INSERT INTO uploads (country, batch_tag, batch_signature, uploader_thumbprint, \
               signer_thumbprint, format_major, format_minor, content_digest, key_count, created_at) \
             SELECT country, batch_tag, batch_signature, uploader_thumbprint, signer_thumbprint, \
               format_major, format_minor, content_digest, key_count, created_at FROM uploads",
            &[],
        )
        .await,
    );
    unique(
        raw.execute(
            "INSERT INTO keys (upload_id, position, dup_hash, key_id, nonce, payload) \
             SELECT upload_id, position + 1, dup_hash, key_id, nonce, payload FROM keys",
            &[],
        )
        .await,
    );
    unique(
        raw.execute(
            "INSERT INTO batches (tag, batch_date, seq, created_at, key_count, format_major, format_minor) \
             SELECT tag, batch_date, seq + 1, created_at, key_count, format_major, format_minor FROM batches",
            &[],
        )
        .await,
    );
    unique(
        raw.execute(
            "INSERT INTO batches (tag, batch_date, seq, created_at, key_count, format_major, format_minor) \
             SELECT tag || 'x', batch_date, seq, created_at, key_count, format_major, format_minor FROM batches",
            &[],
        )
        .await,
    );
}

/// Concurrent connects migrate once; reconnecting applies nothing; a database migrated by an
/// unknown version, or with an edited migration, is refused (not reported as transient).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrations_apply_once_and_refuse_unknown_versions() {
    let db = db_or_skip!("migrations_apply_once_and_refuse_unknown_versions");
    let db = Arc::new(db);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let db = db.clone();
        tasks.spawn(async move { db.store().await });
    }
    while let Some(r) = tasks.join_next().await {
        drop(r.unwrap());
    }
    let raw = db.raw().await;
    let n: i64 = raw
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    let versions: i64 = raw
        .query_one("SELECT count(DISTINCT version) FROM schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, versions);
    assert!(n >= 1);
    drop(db.store().await);
    let again: i64 = raw
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(again, n);

    let original: Vec<u8> = raw
        .query_one(
            "SELECT checksum FROM schema_migrations WHERE version = 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    raw.execute(
        "UPDATE schema_migrations SET checksum = '\\x00' WHERE version = 1",
        &[],
    )
    .await
    .unwrap();
    let err = StoreError::from(PgStore::connect(&db.config()).await.unwrap_err());
    assert!(
        matches!(err, StoreError::Backend { .. }),
        "edited migration gave {err:?}"
    );
    raw.execute(
        "UPDATE schema_migrations SET checksum = $1 WHERE version = 1",
        &[&original],
    )
    .await
    .unwrap();
    drop(db.store().await);
    raw.batch_execute(
        "INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, 'future', '\\x00')",
    )
    .await
    .unwrap();
    let err = StoreError::from(PgStore::connect(&db.config()).await.unwrap_err());
    assert!(matches!(err, StoreError::Backend { .. }), "got {err:?}");
    assert!(!err.is_transient());
}

/// The migrations also apply to a database that holds data from an earlier schema version
/// (here: re-running the migration check on a populated schema changes nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_to_a_populated_schema_keeps_data() {
    let db = db_or_skip!("reconnect_to_a_populated_schema_keeps_data");
    let store = db.store().await;
    let keys: Vec<_> = (0..10).map(|n| key(5, n, "NL")).collect();
    let _ = store
        .insert_upload(upload("NL", "p", keys.clone(), T0))
        .await
        .unwrap();
    drop(store);
    let store = db.store().await;
    let tag = store
        .create_next_batch(T0, 5000)
        .await
        .unwrap()
        .unwrap()
        .batch
        .tag;
    assert_eq!(store.batch_keys(&tag, None).await.unwrap(), keys);
}

/// An unreachable database is `Unavailable` (callers answer 503 and retry).
#[tokio::test]
async fn unreachable_database_is_unavailable() {
    // Port 1 on loopback: nothing listens there.
    let cfg = PgConfig {
        connect_timeout: Duration::from_secs(2),
        wait_timeout: Duration::from_secs(2),
        ..PgConfig::new(
            "postgres://postgres@127.0.0.1:1/postgres",
            support::test_keys(),
        )
    };
    let err = StoreError::from(PgStore::connect(&cfg).await.unwrap_err());
    assert!(matches!(err, StoreError::Unavailable { .. }), "got {err:?}");
    assert!(err.is_transient());
}

/// Invalid settings are a backend error, not transient.
#[tokio::test]
async fn invalid_settings_are_not_transient() {
    for cfg in [
        PgConfig::new(
            "postgres://postgres@127.0.0.1:1/postgres",
            support::test_keys(),
        )
        .with_schema("Bad-Name"),
        PgConfig::new("not a url at all ===", support::test_keys()),
        PgConfig::new(
            "postgres://postgres@127.0.0.1:1/postgres",
            support::test_keys(),
        )
        .with_pool_size(0),
    ] {
        let err = StoreError::from(PgStore::connect(&cfg).await.unwrap_err());
        assert!(matches!(err, StoreError::Backend { .. }), "got {err:?}");
    }
}

/// A pool with no free connection within the wait timeout, and a backend terminated by the
/// administrator mid-query, are both `Unavailable`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pool_timeout_and_terminated_backend_are_unavailable() {
    let db = db_or_skip!("pool_timeout_and_terminated_backend_are_unavailable");
    let cfg = PgConfig {
        pool_size: 1,
        wait_timeout: Duration::from_millis(300),
        ..db.config()
    };
    let store = db.store_with(cfg).await;
    // Block the store's only connection behind a table lock.
    let mut locker = db.raw().await;
    let tx = locker.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE uploads IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let blocked = {
        let s = store.clone();
        tokio::spawn(async move { s.pending_summary().await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let err = store.key_counts().await.unwrap_err();
    assert!(
        matches!(err, StoreError::Unavailable { .. }),
        "pool timeout gave {err:?}"
    );

    // Terminate the blocked backend, as a failover or an administrator would.
    let admin = db.raw().await;
    let mut killed = 0;
    for _ in 0..50 {
        killed = admin
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE wait_event_type = 'Lock' AND query LIKE '%FROM uploads WHERE batch_id IS NULL%'",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0);
        if killed > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(killed, 1, "the blocked query was not found");
    let err = blocked.await.unwrap().unwrap_err();
    assert!(
        matches!(err, StoreError::Unavailable { .. }),
        "terminated backend gave {err:?}"
    );
    tx.rollback().await.unwrap();
    // The pool replaces the dead connection.
    assert_eq!(store.key_counts().await.unwrap().stored, 0);
}

/// Two server instances (two pools) batching at once on one database: one dense chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batching_across_instances_keeps_tags_dense() {
    let db = db_or_skip!("batching_across_instances_keeps_tags_dense");
    let a = db.store().await;
    let b = db.store().await;
    for i in 0..200u64 {
        let s = if i % 2 == 0 { &a } else { &b };
        let _ = s
            .insert_upload(upload("DE", &format!("x{i}"), vec![key(6, i, "DE")], T0))
            .await
            .unwrap();
    }
    let mut tasks = tokio::task::JoinSet::new();
    for s in [a.clone(), b.clone(), a.clone(), b.clone()] {
        tasks.spawn(async move {
            let mut n = Vec::new();
            while let Some(c) = s.create_next_batch(T0, 7).await.unwrap() {
                n.push(c.batch.tag.seq);
            }
            n
        });
    }
    let mut seqs = Vec::new();
    while let Some(r) = tasks.join_next().await {
        seqs.extend(r.unwrap());
    }
    seqs.sort_unstable();
    let n = seqs.len() as u32;
    assert_eq!(n, 200u32.div_ceil(7));
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>());
    assert_eq!(a.key_counts().await.unwrap().pending, 0);
}

/// Download statistics rows are queued and written off the caller's path (ADR 0030), but none
/// is dropped: more rows than the queue holds, recorded at once from several tasks, are all
/// stored once flushed, and one task's rows keep their order. Another handle sees them after
/// the recording handle's flush.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_download_statistics_are_all_written() {
    use efgs_core::store::{DownloadStat, StatsStore};
    use efgs_core::tag::BatchTag;
    let db = db_or_skip!("queued_download_statistics_are_all_written");
    let a = db.store().await;
    let b = db.store().await;
    let tasks = 4u64;
    let per_task = 3000u64;
    let mut set = tokio::task::JoinSet::new();
    for t in 0..tasks {
        let a = a.clone();
        set.spawn(async move {
            for i in 0..per_task {
                a.record_download(DownloadStat {
                    country: ["DE", "FR", "IT", "NL"][t as usize].to_owned(),
                    batch_tag: BatchTag {
                        date: T0.date(),
                        seq: 1,
                    },
                    number_of_keys: i,
                    requested_at: T0,
                })
                .await
                .unwrap();
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    a.flush_download_stats().await.unwrap();
    let rows = b.download_stats(T0).await.unwrap();
    assert_eq!(rows.len() as u64, tasks * per_task);
    for country in ["DE", "FR", "IT", "NL"] {
        let keys: Vec<u64> = rows
            .iter()
            .filter(|r| r.country == country)
            .map(|r| r.number_of_keys)
            .collect();
        assert_eq!(keys, (0..per_task).collect::<Vec<_>>(), "{country}");
    }
}

/// A handle that cannot read the change stamps any more does not keep answering from its last
/// poll: within a second the stamps are `Unavailable` (so the gateway answers 503 instead of
/// trusting a trust list that may have been revoked meanwhile).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stamps_are_unavailable_once_the_database_is_gone() {
    use efgs_core::store::{STAMP_LAG, TrustListStore};
    let db = db_or_skip!("stamps_are_unavailable_once_the_database_is_gone");
    let store = db.store().await;
    assert!(store.trust_list_stamp().await.unwrap().is_some());
    assert!(store.batch_stamp().await.unwrap().is_some());
    store.close();
    tokio::time::sleep(STAMP_LAG).await;
    let r = store.trust_list_stamp().await;
    assert!(
        matches!(r, Err(StoreError::Unavailable { .. })),
        "got {r:?}"
    );
    let r = store.batch_stamp().await;
    assert!(
        matches!(r, Err(StoreError::Unavailable { .. })),
        "got {r:?}"
    );
}
