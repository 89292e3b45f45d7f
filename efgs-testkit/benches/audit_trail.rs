//! Upload throughput over HTTP with the audit trail and its push on, against the trail off, in
//! the same run (issue 11, docs/performance.md "Audit trail").
//!
//! Two gateways built through efgs-server's composition root: `off` (`audit.enabled = false`)
//! and `on` (the trail, pushed to a syslog and an HTTP collector on loopback). 8 countries, each
//! a client posting 5000-key uploads (every key visiting all 27 EU countries), signed in
//! advance; rounds alternate which gateway goes first. Prints keys/s per round, the totals and
//! the ratio on/off, then how long the collectors took to receive every event.
//!
//! Environment: `EFGS_BENCH_KEYS` (default 5000), `EFGS_BENCH_UPLOADS` (uploads per client per
//! round, default 10), `EFGS_BENCH_ROUNDS` (default 6), `EFGS_BENCH_STORE=postgres` (a fresh
//! schema on `EFGS_TEST_DATABASE_URL` for each gateway instead of memory stores).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use efgs_core::media::BodyFormat;
use efgs_testkit::collector::{Collector, CollectorKind};
use efgs_testkit::federation::{Federation, PostgresSchema};
use efgs_testkit::national::{HEADER_DN, HEADER_THUMBPRINT, encode_body};

const COUNTRIES: [&str; 8] = ["DE", "FR", "NL", "IT", "ES", "BE", "AT", "PL"];
const EU27: [&str; 27] = [
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IT",
    "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Upload {
    tag: String,
    signature: String,
    body: Bytes,
    keys: usize,
}

struct Client {
    thumbprint: String,
    dn: String,
    uploads: Vec<Upload>,
}

fn prepare(fed: &Federation, round: usize, per_client: usize, n_keys: usize) -> Vec<Arc<Client>> {
    fed.backends()
        .map(|b| {
            let uploads = (0..per_client)
                .map(|i| {
                    let mut keys = b.keys(n_keys);
                    for k in &mut keys {
                        k.visited_countries = EU27.iter().map(|c| (*c).into()).collect();
                    }
                    Upload {
                        tag: format!("trail-{round}-{i}"),
                        signature: b.sign(&keys).unwrap(),
                        body: Bytes::from(encode_body(&keys, BodyFormat::Protobuf)),
                        keys: keys.len(),
                    }
                })
                .collect();
            let creds = b.credentials();
            Arc::new(Client {
                thumbprint: creds.auth_thumbprint.as_str().to_owned(),
                dn: creds.auth_dn.clone(),
                uploads,
            })
        })
        .collect()
}

/// Posts every client's uploads (clients concurrent, each one upload after the other);
/// returns keys and elapsed time.
async fn run(base: &str, clients: &[Arc<Client>]) -> (usize, Duration) {
    let url = format!("{base}/diagnosiskeys/upload");
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in clients {
        let c = Arc::clone(c);
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let h = reqwest::Client::builder().no_proxy().build().unwrap();
            let mut keys = 0;
            for up in &c.uploads {
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
                assert_eq!(res.status().as_u16(), 201);
                keys += up.keys;
            }
            keys
        }));
    }
    let mut keys = 0;
    for t in tasks {
        keys += t.await.unwrap();
    }
    (keys, start.elapsed())
}

async fn gateway(settings: &[(&str, String)], schemas: &mut Vec<PostgresSchema>) -> Federation {
    let mut b = Federation::builder()
        .countries(COUNTRIES)
        .setting("upload.max_in_flight_bytes", "1000000000");
    if std::env::var("EFGS_BENCH_STORE").as_deref() == Ok("postgres") {
        let schema = PostgresSchema::from_env()
            .await
            .unwrap()
            .expect("EFGS_TEST_DATABASE_URL");
        b = b.postgres(&schema);
        schemas.push(schema);
    }
    for (k, v) in settings {
        b = b.setting(k, v.clone());
    }
    b.build().await.unwrap()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(bench());
}

async fn bench() {
    let n_keys = env_usize("EFGS_BENCH_KEYS", 5000);
    let per_client = env_usize("EFGS_BENCH_UPLOADS", 10);
    let rounds = env_usize("EFGS_BENCH_ROUNDS", 6);
    let syslog = Collector::start(CollectorKind::Syslog).await.unwrap();
    let http = Collector::start(CollectorKind::Http).await.unwrap();
    let mut schemas = Vec::new();
    let off = gateway(&[("audit.enabled", "false".to_owned())], &mut schemas).await;
    let on = gateway(
        &[
            ("audit.syslog", syslog.url()),
            ("audit.http_url", http.url()),
            ("audit.push_retry_ms", "100".to_owned()),
        ],
        &mut schemas,
    )
    .await;
    println!(
        "audit_trail: {} clients, {n_keys} keys per upload (27 visited countries each), {per_client} uploads per client per round, {rounds} rounds; store {}",
        COUNTRIES.len(),
        if schemas.is_empty() {
            "memory"
        } else {
            "postgres"
        },
    );
    // Warm-up.
    let _ = run(off.base_url(), &prepare(&off, 999, 1, n_keys)).await;
    let _ = run(on.base_url(), &prepare(&on, 999, 1, n_keys)).await;
    type Round = (Vec<Arc<Client>>, Vec<Arc<Client>>);
    let sets: Vec<Round> = (0..rounds)
        .map(|r| {
            (
                prepare(&off, r, per_client, n_keys),
                prepare(&on, r, per_client, n_keys),
            )
        })
        .collect();
    let (mut total_off, mut total_on) = ((0usize, Duration::ZERO), (0usize, Duration::ZERO));
    for (r, (a, b)) in sets.iter().enumerate() {
        let mut measure = async |which: &str| {
            let (k, d) = if which == "off" {
                run(off.base_url(), a).await
            } else {
                run(on.base_url(), b).await
            };
            let t = if which == "off" {
                &mut total_off
            } else {
                &mut total_on
            };
            t.0 += k;
            t.1 += d;
            println!(
                "round {r} {which:<3} {:>10.0} keys/s  ({k} keys in {:.3} s)",
                k as f64 / d.as_secs_f64(),
                d.as_secs_f64()
            );
        };
        if r % 2 == 0 {
            measure("off").await;
            measure("on").await;
        } else {
            measure("on").await;
            measure("off").await;
        }
    }
    let rate = |t: (usize, Duration)| t.0 as f64 / t.1.as_secs_f64();
    let (r_off, r_on) = (rate(total_off), rate(total_on));
    println!("total off {r_off:>10.0} keys/s");
    println!("total on  {r_on:>10.0} keys/s (trail + syslog + HTTP push)");
    println!(
        "ratio on/off {:.3} ({:+.1} %)",
        r_on / r_off,
        (r_on / r_off - 1.0) * 100.0
    );
    let head = on.store().append_audit_events(Vec::new()).await.unwrap();
    let t = Instant::now();
    while (syslog.seqs().len() as u64) < head || (http.seqs().len() as u64) < head {
        assert!(t.elapsed() < Duration::from_secs(60), "collectors behind");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "{head} events; both collectors complete {:.0} ms after the last upload",
        t.elapsed().as_secs_f64() * 1e3
    );
    off.shutdown().await.unwrap();
    on.shutdown().await.unwrap();
    for s in schemas {
        let _ = s.drop_schema().await;
    }
}
