//! A small in-process federation run (`efgs-sim run`, scale run (a) in miniature), asserted
//! from the ledgers: every key a country had acknowledged reached every other country once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use efgs_testkit::sim::run::{RunOptions, run_in_process};
use time::macros::datetime;

fn small() -> RunOptions {
    RunOptions {
        countries: 5,
        keys_per_day: 1200,
        days: 2,
        tick_minutes: 240,
        visited: 5,
        max_batch: 600,
        start: datetime!(2026-11-28 00:00 UTC),
        ..RunOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_key_reaches_every_other_country_once() {
    let report = run_in_process(&small()).await.unwrap();
    println!("{report}");
    assert!(report.ok(), "{report}");
    assert_eq!(report.countries.len(), 5);
    let total: u64 = report.countries.iter().map(|c| c.keys_acked).sum();
    // Every key of every day was acknowledged (no faults).
    assert_eq!(total, 5 * 2 * 1200);
    for c in &report.countries {
        assert_eq!(c.keys_acked, 2 * 1200, "{}", c.country);
        assert_eq!(c.keys_expected, total - c.keys_acked);
        assert_eq!(c.keys_received, c.keys_expected, "{}", c.country);
        assert_eq!((c.lost, c.duplicates), (0, 0));
        assert!(c.batches_read > 2, "{}", c.country);
        assert!(c.audits_passed > 0, "{}", c.country);
        assert!(c.problems.is_empty(), "{:?}", c.problems);
    }
    // Batch cuts spread over both days: the chain was followed across midnight.
    assert!(report.timeline.last().unwrap().t >= 44.0);
    let dir = tempfile::tempdir().unwrap();
    report.write(dir.path()).unwrap();
    let svg = std::fs::read_to_string(dir.path().join("chart.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("polyline"));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(json["verdict"]["lost"], 0);
    assert_eq!(json["countries"].as_array().unwrap().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_gives_the_same_exchange() {
    let a = run_in_process(&small()).await.unwrap();
    let b = run_in_process(&small()).await.unwrap();
    // Countries upload concurrently, so compare the sizes as a multiset.
    let sizes = |r: &efgs_testkit::sim::report::SimReport| {
        let mut s = r.upload_sizes.clone();
        s.sort_unstable();
        s
    };
    assert_eq!(sizes(&a), sizes(&b));
    let mut other = small();
    other.seed = 2;
    let c = run_in_process(&other).await.unwrap();
    assert_ne!(sizes(&a), sizes(&c));
}
