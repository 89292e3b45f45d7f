//! A small HTTP federation run (scale run (b) in miniature): gateways efgs-sim starts on
//! loopback, two instances on one store, and a run against a gateway it did not start
//! (`--gateway URL --pki DIR`), asserted from the ledgers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use efgs_testkit::federation::Federation;
use efgs_testkit::sim::pkidir;
use efgs_testkit::sim::run::{HttpOptions, RunOptions, Target, run_http};

fn opts(countries: usize) -> RunOptions {
    RunOptions {
        countries,
        visited: 5,
        max_batch: 1000,
        ..RunOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_memory_deliver_every_key_once() {
    let http = HttpOptions {
        target: Target::Serve {
            postgres: None,
            instances: 2,
            restart_after: None,
        },
        duration: Duration::from_secs(3),
        keys_per_sec: 2000.0,
        poll_interval: Duration::from_millis(200),
        drain: Duration::from_secs(20),
        timeout: Duration::from_secs(10),
        ..HttpOptions::default()
    };
    let report = run_http(&opts(5), &http).await.unwrap();
    println!("{report}");
    assert!(report.ok(), "{report}");
    assert_eq!(report.gateways.len(), 2);
    for c in &report.countries {
        assert!(c.keys_acked > 0);
        assert_eq!(c.keys_received, c.keys_expected, "{}", c.country);
        assert!(c.audits_passed > 0, "{}", c.country);
        let up = c.upload_latency.as_ref().unwrap();
        assert!(up.count > 0 && up.p50_ms > 0.0 && up.p99_ms >= up.p50_ms);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_given_by_url_and_pki_directory() {
    // The operator's side: a gateway whose trust list holds the entries of the PKI
    // directory (here the federation's own PKI, written the way `efgs-sim pki` writes it).
    let fed = Federation::builder()
        .countries(["AT", "BE", "BG"])
        .clock(efgs_testkit::federation::TestClock::system())
        .setting("batching.check_secs", "1")
        .build()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    pkidir::write(fed.pki(), dir.path()).unwrap();
    let read = pkidir::read(dir.path()).unwrap();
    assert_eq!(read.countries.len(), 3);
    assert_eq!(
        read.country("BE").unwrap().auth_thumbprint,
        fed.pki().country("BE").unwrap().auth_thumbprint
    );
    let http = HttpOptions {
        target: Target::External {
            urls: vec![fed.base_url().to_owned()],
            pki: dir.path().to_owned(),
        },
        duration: Duration::from_secs(2),
        keys_per_sec: 1500.0,
        poll_interval: Duration::from_millis(200),
        drain: Duration::from_secs(20),
        timeout: Duration::from_secs(10),
        ..HttpOptions::default()
    };
    let report = run_http(&opts(3), &http).await.unwrap();
    println!("{report}");
    assert!(report.ok(), "{report}");
    assert_eq!(report.countries.len(), 3);
    for c in &report.countries {
        assert_eq!(c.keys_received, c.keys_expected, "{}", c.country);
        assert!(c.keys_expected > 0);
    }
    fed.shutdown().await.unwrap();
}

/// Downloading on callback (HTTP, two instances on one store): every country subscribes its
/// own HTTPS endpoint and reads only the batches announced to it; the ledgers show every
/// acknowledged key arrived once, and every batch read was read on a notification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn countries_download_on_callback() {
    let out = tempfile::tempdir().unwrap();
    let http = HttpOptions {
        target: Target::Serve {
            postgres: None,
            instances: 2,
            restart_after: None,
        },
        duration: Duration::from_secs(3),
        keys_per_sec: 1500.0,
        drain: Duration::from_secs(30),
        timeout: Duration::from_secs(10),
        on_callback: true,
        callback_log_dir: Some(out.path().to_owned()),
        ..HttpOptions::default()
    };
    let report = run_http(&opts(4), &http).await.unwrap();
    println!("{report}");
    assert!(report.ok(), "{report}");
    assert!(report.setup.contains("on callback"));
    for c in &report.countries {
        assert!(c.keys_expected > 0, "{}", c.country);
        assert_eq!(c.keys_received, c.keys_expected, "{}", c.country);
        assert!(c.notifications > 0, "{}", c.country);
        // No polling: every batch read was one a notification announced.
        assert_eq!(c.read_on_callback, c.batches_read, "{}", c.country);
        assert!(c.audits_passed > 0, "{}", c.country);
        let log = efgs_testkit::sim::callback::read_log(
            &out.path().join(format!("callbacks-{}.jsonl", c.country)),
        )
        .unwrap();
        assert_eq!(log.len() as u64, c.notifications, "{}", c.country);
    }
}
