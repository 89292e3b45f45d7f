//! Fault scenarios (`efgs-sim run --faults`): a store that fails and loses acknowledgements,
//! clients that drop connections mid-upload, replay tags and send duplicates, a clock jump
//! across midnight, and a gateway restarted mid-run on PostgreSQL. The verdict, computed
//! from the ledgers only, must still hold.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use efgs_testkit::sim::country::ClientFaults;
use efgs_testkit::sim::run::{
    HttpOptions, RunOptions, StoreFaults, Target, run_http, run_in_process,
};
use support::Backend;
use time::macros::datetime;

fn faults() -> (ClientFaults, StoreFaults) {
    (
        ClientFaults {
            drop_rate: 0.15,
            replay_rate: 0.15,
            duplicate_rate: 0.15,
        },
        StoreFaults {
            fail_rate: 0.05,
            lost_ack_rate: 0.1,
            delay: Duration::ZERO,
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_faults_lose_nothing_and_deliver_nothing_twice() {
    let (client, store) = faults();
    let opts = RunOptions {
        countries: 4,
        keys_per_day: 1200,
        days: 2,
        tick_minutes: 240,
        visited: 4,
        max_batch: 500,
        client_faults: client,
        store_faults: store,
        clock_jump: true,
        start: datetime!(2026-11-28 00:00 UTC),
        ..RunOptions::default()
    };
    let report = run_in_process(&opts).await.unwrap();
    println!("{report}");
    assert!(report.ok(), "{report}");
    assert!(report.store_faults > 0, "faults were injected");
    assert!(
        report.events.iter().any(|e| e.starts_with("clock jumped")),
        "{:?}",
        report.events
    );
    let refused: u64 = report
        .countries
        .iter()
        .map(|c| c.refused_as_duplicate)
        .sum();
    assert!(refused > 0, "duplicate uploads were answered 207");
    for c in &report.countries {
        assert!(
            c.upload_requests > c.uploads_acked,
            "{}: retries happened",
            c.country
        );
        assert_eq!(
            c.keys_acked,
            2 * 1200,
            "{}: every key ends up acknowledged",
            c.country
        );
        assert_eq!(c.keys_received, c.keys_expected, "{}", c.country);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_faults_on_the_memory_store_lose_nothing() {
    let (client, store) = faults();
    let opts = RunOptions {
        countries: 4,
        visited: 4,
        max_batch: 400,
        client_faults: client,
        store_faults: store,
        ..RunOptions::default()
    };
    let http = HttpOptions {
        target: Target::Serve {
            postgres: None,
            instances: 2,
            restart_after: None,
        },
        duration: Duration::from_secs(3),
        keys_per_sec: 1000.0,
        poll_interval: Duration::from_millis(200),
        drain: Duration::from_secs(20),
        timeout: Duration::from_secs(10),
        ..HttpOptions::default()
    };
    let report = run_http(&opts, &http).await.unwrap();
    println!("{report}");
    assert!(report.ok(), "{report}");
    assert!(report.store_faults > 0);
    assert!(report.acked() > 0);
    for c in &report.countries {
        assert_eq!(c.keys_received, c.keys_expected, "{}", c.country);
        assert!(c.keys_expected > 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_restarted_mid_run_on_postgres_loses_nothing() {
    let Some(backend) = Backend::postgres("a_gateway_restarted_mid_run_on_postgres").await else {
        return;
    };
    let Backend::Postgres(schema) = &backend else {
        unreachable!()
    };
    let opts = RunOptions {
        countries: 4,
        visited: 4,
        max_batch: 500,
        client_faults: ClientFaults {
            drop_rate: 0.1,
            replay_rate: 0.1,
            duplicate_rate: 0.1,
        },
        ..RunOptions::default()
    };
    let http = HttpOptions {
        target: Target::Serve {
            postgres: Some(schema.url().to_owned()),
            instances: 2,
            restart_after: Some(Duration::from_millis(1500)),
        },
        duration: Duration::from_secs(4),
        keys_per_sec: 800.0,
        poll_interval: Duration::from_millis(200),
        drain: Duration::from_secs(30),
        timeout: Duration::from_secs(10),
        ..HttpOptions::default()
    };
    let report = run_http(&opts, &http).await.unwrap();
    println!("{report}");
    backend.cleanup().await;
    assert!(report.ok(), "{report}");
    assert!(
        report.events.iter().any(|e| e.contains("restarted")),
        "{:?}",
        report.events
    );
    for c in &report.countries {
        assert_eq!(c.keys_received, c.keys_expected, "{}", c.country);
        assert!(c.keys_expected > 0);
    }
}
