//! HTTP load bench of efgs-server on the memory store (docs/performance.md, "HTTP (efgs-server)").
//!
//! Modes (the first argument that does not start with `--`; `cargo bench` adds `--bench`):
//!
//! - `upload` (default): 8 countries, 5000-key uploads signed in advance. Measures, in one run,
//!   `Gateway::upload` in-process (one task, then 8 concurrent tasks, each on a fresh memory-store
//!   gateway with the same trust list) and the same uploads over HTTP from 8 concurrent clients
//!   (one per country, each under its own identity) against efgs-server's API, and prints keys/s
//!   and the ratios.
//! - `upload-postgres`: the same uploads over HTTP from 8 clients into a gateway on PostgreSQL
//!   (a fresh schema on `EFGS_TEST_DATABASE_URL`), and the key rows it stored written again by
//!   binary COPY from 8 connections (one transaction per upload) into a table `LIKE keys
//!   INCLUDING ALL` in the same cluster; prints both rates, the ratio and the cluster's
//!   `fsync` / `synchronous_commit` / `full_page_writes` (the goal is stated for them on).
//! - `serve-download <body-file>`: starts the gateway (memory store, one 5000-key batch uploaded
//!   by DE and batched), downloads it once as FR, writes the exact response body to
//!   `<body-file>`, prints `KEY=value` lines (URL, identity headers, PID, ...) and `READY`, then
//!   serves until SIGTERM/SIGINT. Used by scripts/bench-http.sh (wrk against it and nginx).
//!   With `EFGS_BENCH_STORE=postgres` the gateway uses a fresh schema on
//!   `EFGS_TEST_DATABASE_URL` (dropped at the end) instead of the memory store.
//! - `serve-download-uncached <body-file>`: the same with the download response cache turned
//!   off (`download.cache_max_bytes = 0`): every request reads the keys from the store and
//!   encodes them, as before the cache existed (the "before" of docs/performance.md).
//!
//! Keys follow the realistic profile (every key lists all 27 EU countries as visited countries,
//! `efgs_testkit::generate::Profile`); `EFGS_BENCH_PROFILE=light` uses the light one.
//!
//! Environment: `EFGS_BENCH_KEYS` (keys per upload, default 5000), `EFGS_BENCH_UPLOADS`
//! (uploads per client per round, default 20), `EFGS_BENCH_ROUNDS` (default 3),
//! `EFGS_BENCH_PORT` (serve-download listen port, default 0 = any), `EFGS_BENCH_WORKERS` (tokio
//! worker threads, default one per CPU as in efgs-server).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use efgs_core::canonical::DuplicateHasher;
use efgs_core::gateway::{Credentials, Gateway, UploadRequest};
use efgs_core::media::BodyFormat;
use efgs_core::model::FormatVersion;
use efgs_core::store::{DynStore, UploadOutcome, Upserted};
use efgs_store_memory::MemoryStore;
use efgs_testkit::federation::{Federation, PostgresSchema};
use efgs_testkit::generate::{Profile, profile_keys};
use efgs_testkit::national::{HEADER_DN, HEADER_THUMBPRINT, encode_body};
use efgs_testkit::pki::trust_entry;
use time::OffsetDateTime;

const COUNTRIES: [&str; 8] = ["DE", "FR", "NL", "IT", "ES", "BE", "AT", "PL"];
/// Must match efgs-testkit's federation default (the in-process gateways use the same hasher).
const DUPLICATE_SECRET: &[u8] = b"efgs-testkit duplicate hash secret";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    // Default: as many workers as CPUs, like efgs-server's `#[tokio::main]`.
    if let Ok(n) = std::env::var("EFGS_BENCH_WORKERS") {
        rt.worker_threads(n.parse().unwrap());
    }
    let rt = rt.enable_all().build().expect("tokio runtime");
    match args.first().map(String::as_str) {
        None | Some("upload") => rt.block_on(upload_bench()),
        Some("upload-postgres") => rt.block_on(upload_postgres_bench()),
        Some(mode @ ("serve-download" | "serve-download-uncached")) => {
            let path = args
                .get(1)
                .expect("usage: http_load serve-download[-uncached] <body-file>");
            rt.block_on(serve_download(path, mode == "serve-download-uncached"));
        }
        Some(other) => {
            eprintln!(
                "unknown mode {other:?}: expected `upload`, `upload-postgres` or `serve-download <file>`"
            );
            std::process::exit(2);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Upload
// ---------------------------------------------------------------------------------------------

/// One upload as the national backend sends it, signed in advance.
#[derive(Clone)]
struct Prepared {
    tag: String,
    signature: String,
    body: Bytes,
    keys: usize,
}

/// One client (country): its identity headers and its uploads.
struct Client {
    country: String,
    thumbprint: String,
    dn: String,
    uploads: Vec<Prepared>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Measured {
    keys: usize,
    uploads: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Measured {
    fn keys_per_sec(&self) -> f64 {
        self.keys as f64 / self.elapsed.as_secs_f64()
    }

    fn line(&self, label: &str) -> String {
        let mut l = self.latencies.clone();
        l.sort();
        format!(
            "{label:<34} {:>10.0} keys/s  {:>3} uploads in {:>7.3} s  per upload p50 {:>7.2} ms  p99 {:>7.2} ms",
            self.keys_per_sec(),
            self.uploads,
            self.elapsed.as_secs_f64(),
            percentile(&l, 0.5).as_secs_f64() * 1e3,
            percentile(&l, 0.99).as_secs_f64() * 1e3,
        )
    }
}

async fn fresh_gateway(fed: &Federation) -> Gateway {
    let store: Arc<DynStore> = Arc::new(MemoryStore::new());
    let start = fed.pki().created_at;
    for entry in fed.pki().entries() {
        let out = store
            .upsert_trust_entry(trust_entry(entry, start))
            .await
            .unwrap();
        assert_eq!(out, Upserted::Inserted);
    }
    Gateway::new(
        store,
        fed.pki().anchors().unwrap(),
        DuplicateHasher::new(DUPLICATE_SECRET),
        fed.gateway().policy().clone(),
    )
}

/// `Gateway::upload` in-process (with the per-request `authenticate`, as the HTTP handler
/// runs it), one upload after the other per client, the clients as concurrent tasks.
async fn in_process(gateway: &Gateway, clients: &[Arc<Client>], now: OffsetDateTime) -> Measured {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in clients {
        let c = Arc::clone(c);
        let g = gateway.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for up in &c.uploads {
                let t = Instant::now();
                let who = g
                    .authenticate(
                        Credentials::ProxyHeaders {
                            thumbprint: Some(&c.thumbprint),
                            dn: Some(&c.dn),
                            certificate: None,
                        },
                        now,
                    )
                    .await
                    .unwrap();
                let req = UploadRequest {
                    batch_tag: Some(&up.tag),
                    batch_signature: Some(&up.signature),
                    format: BodyFormat::Protobuf,
                    version: FormatVersion::V1_0,
                    body: &up.body,
                };
                let out = g.upload(&who, req, now).await.unwrap();
                assert!(matches!(out, UploadOutcome::Stored(_)), "{}", c.country);
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    collect(start, clients, tasks).await
}

/// The same uploads over HTTP, one reqwest client (connection pool) per country.
async fn over_http(base_url: &str, clients: &[Arc<Client>]) -> Measured {
    let http: Vec<reqwest::Client> = clients
        .iter()
        .map(|_| reqwest::Client::builder().no_proxy().build().unwrap())
        .collect();
    let url = format!("{base_url}/diagnosiskeys/upload");
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (c, h) in clients.iter().zip(http) {
        let c = Arc::clone(c);
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for up in &c.uploads {
                let t = Instant::now();
                let res = h
                    .post(&url)
                    .header("Content-Type", BodyFormat::Protobuf.content_type())
                    .header(HEADER_THUMBPRINT, &c.thumbprint)
                    .header(HEADER_DN, &c.dn)
                    .header("batchTag", &up.tag)
                    .header("batchSignature", &up.signature)
                    .body(up.body.clone())
                    .send()
                    .await
                    .unwrap();
                let status = res.status().as_u16();
                let body = res.bytes().await.unwrap();
                assert_eq!(
                    status,
                    201,
                    "{} {}: {}",
                    c.country,
                    up.tag,
                    String::from_utf8_lossy(&body)
                );
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    collect(start, clients, tasks).await
}

async fn collect(
    start: Instant,
    clients: &[Arc<Client>],
    tasks: Vec<tokio::task::JoinHandle<Vec<Duration>>>,
) -> Measured {
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed();
    Measured {
        keys: clients
            .iter()
            .flat_map(|c| &c.uploads)
            .map(|u| u.keys)
            .sum(),
        uploads: latencies.len(),
        elapsed,
        latencies,
    }
}

fn prepare(fed: &Federation, round: usize, per_client: usize, n_keys: usize) -> Vec<Arc<Client>> {
    let profile = Profile::from_env();
    fed.backends()
        .enumerate()
        .map(|(ci, b)| {
            let creds = b.credentials();
            let uploads = (0..per_client)
                .map(|i| {
                    // Distinct keys per (round, client, upload).
                    let seed = ((round as u64) << 40) ^ ((ci as u64) << 32) ^ i as u64;
                    let keys = profile_keys(profile, b.country(), n_keys, b.now(), seed);
                    let signature = b.sign(&keys).unwrap();
                    Prepared {
                        tag: format!("bench-{round}-{i}"),
                        signature,
                        body: Bytes::from(encode_body(&keys, BodyFormat::Protobuf)),
                        keys: keys.len(),
                    }
                })
                .collect();
            Arc::new(Client {
                country: b.country().to_owned(),
                thumbprint: creds.auth_thumbprint.as_str().to_owned(),
                dn: creds.auth_dn.clone(),
                uploads,
            })
        })
        .collect()
}

async fn upload_bench() {
    let n_keys = env_usize("EFGS_BENCH_KEYS", 5000);
    let per_client = env_usize("EFGS_BENCH_UPLOADS", 20);
    let rounds = env_usize("EFGS_BENCH_ROUNDS", 3);
    let fed = Federation::builder()
        .countries(COUNTRIES)
        .build()
        .await
        .expect("federation");
    let now = fed.now();
    println!("profile: {}", Profile::from_env().name());
    println!(
        "http_load upload: {} clients (countries {}), {n_keys} keys per upload, {per_client} uploads per client per round, {rounds} rounds; tokio multi-thread runtime, {} workers; gateway {}",
        COUNTRIES.len(),
        COUNTRIES.join(","),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        fed.base_url()
    );

    // Warm-up (connections, allocator, code): one upload per client each way.
    let warm = prepare(&fed, 999, 1, n_keys);
    let _ = over_http(fed.base_url(), &warm).await;
    let _ = in_process(&fresh_gateway(&fed).await, &warm, now).await;

    let t = Instant::now();
    let sets: Vec<Vec<Arc<Client>>> = (0..rounds)
        .map(|r| prepare(&fed, r, per_client, n_keys))
        .collect();
    let body_bytes = sets[0][0].uploads[0].body.len();
    println!(
        "pre-signed {} uploads in {:.2} s (protobuf body {body_bytes} bytes each); load average {}",
        rounds * per_client * COUNTRIES.len(),
        t.elapsed().as_secs_f64(),
        loadavg()
    );

    let mut totals = [(0usize, Duration::ZERO); 3];
    for (r, clients) in sets.iter().enumerate() {
        let load0 = loadavg();
        // One task at a time: the in-process rate of one core.
        let seq = {
            let g = fresh_gateway(&fed).await;
            // The clients' uploads one after the other in one task.
            let start = Instant::now();
            let mut lat = Vec::new();
            for c in clients {
                let m = in_process(&g, std::slice::from_ref(c), now).await;
                lat.extend(m.latencies);
            }
            Measured {
                keys: clients
                    .iter()
                    .flat_map(|c| &c.uploads)
                    .map(|u| u.keys)
                    .sum(),
                uploads: lat.len(),
                elapsed: start.elapsed(),
                latencies: lat,
            }
        };
        let par = in_process(&fresh_gateway(&fed).await, clients, now).await;
        let http = over_http(fed.base_url(), clients).await;
        println!("round {r} (load average {load0} -> {})", loadavg());
        println!("  {}", seq.line("in-process Gateway::upload, 1 task"));
        println!("  {}", par.line("in-process Gateway::upload, 8 tasks"));
        println!("  {}", http.line("HTTP, 8 clients"));
        println!(
            "  ratio HTTP(8) / in-process(1 task) = {:.2}; HTTP(8) / in-process(8 tasks) = {:.2}",
            http.keys_per_sec() / seq.keys_per_sec(),
            http.keys_per_sec() / par.keys_per_sec()
        );
        for (i, m) in [seq, par, http].iter().enumerate() {
            totals[i].0 += m.keys;
            totals[i].1 += m.elapsed;
        }
    }
    let rate = |i: usize| totals[i].0 as f64 / totals[i].1.as_secs_f64();
    println!("all rounds:");
    println!(
        "  in-process Gateway::upload, 1 task : {:>10.0} keys/s",
        rate(0)
    );
    println!(
        "  in-process Gateway::upload, 8 tasks: {:>10.0} keys/s",
        rate(1)
    );
    println!(
        "  HTTP, 8 clients                    : {:>10.0} keys/s",
        rate(2)
    );
    println!(
        "  ratio HTTP(8) / in-process(1 task) = {:.2} (target >= 0.50); HTTP(8) / in-process(8 tasks) = {:.2}",
        rate(2) / rate(0),
        rate(2) / rate(1)
    );
    println!("load average at the end {}", loadavg());
    fed.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Upload into PostgreSQL against a raw binary COPY of the same rows
// ---------------------------------------------------------------------------------------------

/// A connection to the bench schema (`search_path` set), for the raw side.
async fn raw_client(schema: &PostgresSchema) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(schema.url(), tokio_postgres::NoTls)
        .await
        .expect("connect to EFGS_TEST_DATABASE_URL");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
        .batch_execute(&format!("SET search_path TO {}", schema.schema()))
        .await
        .unwrap();
    client
}

/// The `keys` rows the gateway stored for `country`'s uploads tagged `bench-{round}-*`, one
/// binary COPY image per upload, exactly as PostgreSQL holds them.
async fn stored_rows(db: &tokio_postgres::Client, country: &str, round: usize) -> Vec<Vec<u8>> {
    use futures_util::TryStreamExt as _;
    let ids: Vec<i64> = db
        .query(
            "SELECT id FROM uploads WHERE country = $1 AND batch_tag LIKE $2 ORDER BY id",
            &[&country, &format!("bench-{round}-%")],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut images = Vec::new();
    for id in ids {
        let stream = db
            .copy_out(&format!(
                "COPY (SELECT * FROM keys WHERE upload_id = {id}) TO STDOUT (FORMAT binary)"
            ))
            .await
            .unwrap();
        let chunks: Vec<Bytes> = stream.try_collect().await.unwrap();
        images.push(chunks.concat());
    }
    images
}

/// Writes `images` (one upload each) into `raw_keys` with binary COPY, one transaction per
/// upload, from one connection per client, all clients at once.
async fn raw_copy(conns: &[Arc<tokio_postgres::Client>], images: &[Vec<Vec<u8>>]) -> Duration {
    use futures_util::SinkExt as _;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (c, imgs) in conns.iter().zip(images) {
        let c = Arc::clone(c);
        let imgs = imgs.clone();
        tasks.push(tokio::spawn(async move {
            for img in imgs {
                c.batch_execute("BEGIN").await.unwrap();
                let sink = c
                    .copy_in("COPY raw_keys FROM STDIN (FORMAT binary)")
                    .await
                    .unwrap();
                futures_util::pin_mut!(sink);
                sink.send(Bytes::from(img)).await.unwrap();
                sink.finish().await.unwrap();
                c.batch_execute("COMMIT").await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

/// `upload-postgres`: the same signed uploads over HTTP from 8 clients into a gateway on
/// PostgreSQL, and the key rows it stored written again by binary COPY (8 connections, one
/// transaction per upload) into `raw_keys`, a table `LIKE keys INCLUDING ALL` (the same
/// indexes) in the same schema: the ">= 0.80 of a raw COPY" in one run.
async fn upload_postgres_bench() {
    let n_keys = env_usize("EFGS_BENCH_KEYS", 5000);
    let per_client = env_usize("EFGS_BENCH_UPLOADS", 10);
    let rounds = env_usize("EFGS_BENCH_ROUNDS", 4);
    let Some(schema) = PostgresSchema::from_env().await.unwrap() else {
        eprintln!("upload-postgres needs EFGS_TEST_DATABASE_URL");
        std::process::exit(1);
    };
    let fed = Federation::builder()
        .countries(COUNTRIES)
        .postgres(&schema)
        .setting("upload.max_in_flight_bytes", "1000000000")
        .build()
        .await
        .expect("federation");
    let db = raw_client(&schema).await;
    let mut durability = Vec::new();
    for name in ["fsync", "synchronous_commit", "full_page_writes"] {
        let v: String = db
            .query_one(&format!("SHOW {name}"), &[])
            .await
            .unwrap()
            .get(0);
        durability.push(format!("{name}={v}"));
    }
    db.batch_execute("CREATE TABLE raw_keys (LIKE keys INCLUDING ALL)")
        .await
        .unwrap();
    let mut conns = Vec::new();
    for _ in COUNTRIES {
        conns.push(Arc::new(raw_client(&schema).await));
    }
    println!("profile: {}", Profile::from_env().name());
    println!(
        "http_load upload-postgres: {} clients, {n_keys} keys per upload, {per_client} uploads per client per round, {rounds} rounds; PostgreSQL {}; schema {}",
        COUNTRIES.len(),
        durability.join(" "),
        schema.schema()
    );
    let warm = prepare(&fed, 999, 1, n_keys);
    let _ = over_http(fed.base_url(), &warm).await;
    let sets: Vec<Vec<Arc<Client>>> = (0..rounds)
        .map(|r| prepare(&fed, r, per_client, n_keys))
        .collect();
    let (mut http_total, mut raw_total, mut keys_total) = (Duration::ZERO, Duration::ZERO, 0usize);
    let mut wal_http = 0i64;
    for (r, clients) in sets.iter().enumerate() {
        let load0 = loadavg();
        let wal0 = wal_lsn(&db).await;
        let http = over_http(fed.base_url(), clients).await;
        wal_http += wal_since(&db, &wal0).await;
        let mut images = Vec::new();
        for c in clients {
            images.push(stored_rows(&db, &c.country, r).await);
        }
        let rows: usize = images.iter().flatten().count();
        assert_eq!(
            rows,
            clients.len() * per_client,
            "every upload's rows found"
        );
        let raw = raw_copy(&conns, &images).await;
        let raw_rate = http.keys as f64 / raw.as_secs_f64();
        println!(
            "round {r} (load average {load0} -> {}): HTTP {:>8.0} keys/s (p99 per upload {:.1} ms), raw COPY {:>8.0} keys/s, ratio {:.2}",
            loadavg(),
            http.keys_per_sec(),
            {
                let mut l = http.latencies.clone();
                l.sort();
                percentile(&l, 0.99).as_secs_f64() * 1e3
            },
            raw_rate,
            http.keys_per_sec() / raw_rate
        );
        http_total += http.elapsed;
        raw_total += raw;
        keys_total += http.keys;
    }
    let http_rate = keys_total as f64 / http_total.as_secs_f64();
    let raw_rate = keys_total as f64 / raw_total.as_secs_f64();
    println!(
        "all rounds: HTTP into PostgreSQL {http_rate:.0} keys/s, raw binary COPY of the same rows {raw_rate:.0} keys/s, ratio {:.2} (goal >= 0.80)",
        http_rate / raw_rate
    );
    // What a stored key costs on disk: the key table with its indexes, and the WAL written
    // by the HTTP uploads (every table they touch), per key.
    let row = db
        .query_one(
            "SELECT pg_total_relation_size('keys')::bigint, count(*)::bigint FROM keys",
            &[],
        )
        .await
        .unwrap();
    let (bytes, rows): (i64, i64) = (row.get(0), row.get(1));
    println!(
        "disk: keys table with indexes {:.0} bytes per key ({rows} keys, {:.1} MB); WAL written by the HTTP uploads {:.0} bytes per key",
        bytes as f64 / rows as f64,
        bytes as f64 / 1e6,
        wal_http as f64 / keys_total as f64
    );
    fed.shutdown().await.unwrap();
    schema.drop_schema().await.unwrap();
}

async fn wal_lsn(db: &tokio_postgres::Client) -> String {
    db.query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .unwrap()
        .get(0)
}

async fn wal_since(db: &tokio_postgres::Client, lsn: &str) -> i64 {
    db.query_one(
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::text::pg_lsn)::bigint",
        &[&lsn],
    )
    .await
    .unwrap()
    .get(0)
}

// ---------------------------------------------------------------------------------------------
// Download server for wrk
// ---------------------------------------------------------------------------------------------

async fn serve_download(path: &str, uncached: bool) {
    let port = env_usize("EFGS_BENCH_PORT", 0) as u16;
    let n_keys = env_usize("EFGS_BENCH_KEYS", 5000);
    let mut builder = Federation::builder();
    if uncached {
        builder = builder.setting("download.cache_max_bytes", "0");
    }
    // EFGS_BENCH_AUDIT=off: without the audit trail (each download otherwise waits until its
    // event is stored), to measure what the trail costs a download.
    if std::env::var("EFGS_BENCH_AUDIT").as_deref() == Ok("off") {
        builder = builder.setting("audit.enabled", "false");
    }
    // EFGS_BENCH_STORE=postgres: a fresh schema on EFGS_TEST_DATABASE_URL instead of memory.
    let schema = if std::env::var("EFGS_BENCH_STORE").as_deref() == Ok("postgres") {
        let schema = efgs_testkit::federation::PostgresSchema::from_env()
            .await
            .expect("database")
            .expect("EFGS_BENCH_STORE=postgres needs EFGS_TEST_DATABASE_URL");
        builder = builder.postgres(&schema);
        Some(schema)
    } else {
        None
    };
    let fed = builder
        .countries(["DE", "FR"])
        .bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .build()
        .await
        .expect("federation");
    let de = &fed["DE"];
    let up = de
        .upload(
            &profile_keys(Profile::from_env(), "DE", n_keys, de.now(), 1),
            "bench-download",
            BodyFormat::Protobuf,
        )
        .await
        .unwrap();
    assert_eq!(up.status, 201, "{}", up.text());
    let batches = fed.run_batching_now().await.unwrap();
    assert_eq!(batches.len(), 1);
    let fr = &fed["FR"];
    let accept = BodyFormat::Protobuf.content_type();
    let dl = fr.download(fed.today(), None, Some(accept)).await.unwrap();
    assert_eq!(dl.status, 200, "{}", dl.text());
    assert_eq!(dl.keys.len(), n_keys);
    std::fs::write(path, &dl.body).unwrap();
    let creds = fr.credentials();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "URL={}/diagnosiskeys/download/{}",
        fed.base_url(),
        fed.today()
    )
    .unwrap();
    writeln!(out, "THUMBPRINT={}", creds.auth_thumbprint.as_str()).unwrap();
    writeln!(out, "DN={}", creds.auth_dn).unwrap();
    writeln!(out, "ACCEPT={accept}").unwrap();
    writeln!(out, "BYTES={}", dl.body.len()).unwrap();
    writeln!(out, "KEYS={}", dl.keys.len()).unwrap();
    writeln!(out, "PID={}", std::process::id()).unwrap();
    writeln!(out, "READY").unwrap();
    out.flush().unwrap();
    drop(out);

    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    fed.shutdown().await.unwrap();
    if let Some(schema) = schema {
        schema.drop_schema().await.unwrap();
    }
}
