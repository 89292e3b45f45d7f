//! Callback delivery benchmark (issue 10): 100 HTTPS receivers on loopback (mutual TLS, each
//! with its own registered certificate), one subscription each.
//!
//! - **Freshness:** batches cut one at a time, 250 ms apart; for every (batch, receiver) the
//!   delay from the cut returning to the request arriving at the receiver; p50 / p99 / max.
//! - **Throughput:** 20 batches cut back to back; deliveries per second until all
//!   2,000 arrived.
//!
//! Runs on the memory store, and on PostgreSQL too when `EFGS_TEST_DATABASE_URL` is set.
//! `cargo bench -p efgs-testkit --bench callbacks`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use efgs_core::model::CertificateType;
use efgs_testkit::callbacks::{
    Receiver, TestResolver, cut_one_batch, gateway_client_cert, receiver_cert,
};
use efgs_testkit::federation::{Federation, PostgresSchema, TestClock};

const RECEIVERS: usize = 100;
const FRESHNESS_BATCHES: u64 = 10;
const BURST_BATCHES: u64 = 20;

async fn cut(fed: &Federation, n: u64) -> (String, Instant) {
    let b = cut_one_batch(fed, "bench", 50_000 + n).await.unwrap();
    (b.batch.tag.to_string(), Instant::now())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn run(label: &str, schema: Option<&PostgresSchema>) {
    let dir = tempfile::tempdir().unwrap();
    let now = time::OffsetDateTime::now_utc();
    let (_client, cert, key) = gateway_client_cert(dir.path(), now).unwrap();
    let mut b = Federation::builder()
        .countries(["DE", "FR"])
        .clock(TestClock::system())
        .resolver(TestResolver::new())
        .setting("callback.client_cert", cert.display().to_string())
        .setting("callback.client_key", key.display().to_string())
        .setting("callback.allow_cidrs", "127.0.0.1/32")
        .setting("callback.concurrency", "100")
        .setting("callback.poll_millis", "1000");
    if let Some(schema) = schema {
        b = b.postgres(schema).setting("database.pool_size", "16");
    }
    let fed = b.build().await.unwrap();
    let mut receivers = Vec::with_capacity(RECEIVERS);
    for i in 0..RECEIVERS {
        let cert = receiver_cert(&["127.0.0.1"], "FR", fed.now()).unwrap();
        fed.register(&cert.cert_pem, "FR", CertificateType::Callback)
            .await
            .unwrap();
        let r = Receiver::start(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0), cert)
            .await
            .unwrap();
        let put = fed["FR"]
            .callback_put(&format!("r{i}"), Some(&r.url("127.0.0.1")))
            .await
            .unwrap();
        assert_eq!(put.status, 200);
        receivers.push(r);
    }

    // Freshness.
    let mut cuts = Vec::new();
    for n in 0..FRESHNESS_BATCHES {
        cuts.push(cut(&fed, n).await);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let expected = FRESHNESS_BATCHES as usize;
    let deadline = Instant::now() + Duration::from_secs(60);
    while receivers.iter().any(|r| r.deliveries().len() < expected) {
        assert!(Instant::now() < deadline, "freshness deliveries incomplete");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut delays = Vec::new();
    for r in &receivers {
        for d in r.requests() {
            let tag = d.batch_tag.clone().unwrap();
            let (_, cut_at) = cuts.iter().find(|(t, _)| *t == tag).unwrap();
            delays.push(d.at.saturating_duration_since(*cut_at));
        }
    }
    delays.sort();

    // Throughput.
    let start = Instant::now();
    for n in 0..BURST_BATCHES {
        let _ = cut(&fed, 1_000 + n).await;
    }
    let total = (FRESHNESS_BATCHES + BURST_BATCHES) as usize;
    let deadline = Instant::now() + Duration::from_secs(120);
    while receivers.iter().any(|r| r.deliveries().len() < total) {
        assert!(Instant::now() < deadline, "burst deliveries incomplete");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = start.elapsed();
    let burst = RECEIVERS * BURST_BATCHES as usize;
    for (i, r) in receivers.iter().enumerate() {
        assert_eq!(
            r.requests().len(),
            total,
            "receiver {i}: every batch exactly once"
        );
    }
    println!(
        "CALLBACKS {label}: {RECEIVERS} receivers; cut-to-delivery over {} deliveries: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; burst of {BURST_BATCHES} batches: {burst} deliveries in {:.2} s = {:.0} deliveries/s",
        delays.len(),
        percentile(&delays, 0.50).as_secs_f64() * 1e3,
        percentile(&delays, 0.99).as_secs_f64() * 1e3,
        delays.last().unwrap().as_secs_f64() * 1e3,
        elapsed.as_secs_f64(),
        burst as f64 / elapsed.as_secs_f64(),
    );
    drop(receivers);
    fed.shutdown().await.unwrap();
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        run("memory", None).await;
        match PostgresSchema::from_env().await {
            Ok(Some(schema)) => {
                run("postgres", Some(&schema)).await;
                let _ = schema.drop_schema().await;
            }
            _ => println!("CALLBACKS postgres: skipped (EFGS_TEST_DATABASE_URL not set)"),
        }
    });
}
