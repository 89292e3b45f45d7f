//! The demo run (`efgs-server demo`) end to end, and its audit re-verification.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use efgs_core::media::BodyFormat;
use efgs_testkit::demo::{DemoOptions, reverify, run_demo};
use support::{Backend, tag};

/// Five countries, three rounds of mixed protobuf/JSON uploads: every country receives
/// exactly the others' keys and re-verifies the foreign uploads of one batch from the audit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_exchanges_keys_between_five_countries() {
    let mut opts = DemoOptions::new();
    opts.rounds = 3;
    opts.round_interval = Duration::from_millis(10);
    opts.keys_per_upload = (5, 60);
    opts.quiet = false;
    let report = run_demo(opts).await.unwrap();
    assert!(report.ok(), "{report}");
    assert_eq!(report.rounds, 3);
    assert_eq!(report.countries.len(), 5);
    assert!(!report.batches.is_empty());
    let total: usize = report.countries.iter().map(|c| c.uploaded_keys).sum();
    for c in &report.countries {
        assert_eq!(c.uploads, 3, "{}", c.country);
        assert_eq!(c.expected_keys, total - c.uploaded_keys);
        assert_eq!(c.downloaded_keys, c.expected_keys);
        assert!(c.download_batches >= 1);
        assert!(c.audited_uploads >= 1, "{}", c.country);
    }
    let table = report.to_string();
    assert!(table.contains("DE") && table.contains("ok"), "{table}");
}

/// The ES/IT/FI re-verification fails when the downloaded keys are reordered across uploads
/// or an audit amount is off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_reverify_detects_altered_keys() {
    let fed = Backend::Memory.federation(&["DE", "FR", "NL"]).await;
    for (c, n) in [("DE", 3), ("NL", 4)] {
        let keys = fed[c].keys(n);
        let r = fed[c]
            .upload(&keys, "t", BodyFormat::Protobuf)
            .await
            .unwrap();
        assert_eq!(r.status, 201);
    }
    fed.run_batching_now().await.unwrap();
    let t = tag(fed.today(), 1);
    let d = fed["FR"]
        .download(
            fed.today(),
            Some(&t),
            Some(BodyFormat::Protobuf.content_type()),
        )
        .await
        .unwrap();
    let a = fed["FR"].audit(fed.today(), &t).await.unwrap();
    let anchors = fed.pki().anchors().unwrap();
    assert_eq!(
        reverify("FR", &d.keys, &a.entries, &anchors, fed.now()),
        Ok(2)
    );
    let mut swapped = d.keys.clone();
    swapped.swap(2, 3);
    assert!(reverify("FR", &swapped, &a.entries, &anchors, fed.now()).is_err());
    let mut entries = a.entries.clone();
    entries[0].amount += 1;
    assert!(reverify("FR", &d.keys, &entries, &anchors, fed.now()).is_err());
    // DE's own view: its keys are not in its download, only NL's upload is checked.
    let de = fed["DE"]
        .download(
            fed.today(),
            Some(&t),
            Some(BodyFormat::Protobuf.content_type()),
        )
        .await
        .unwrap();
    assert_eq!(
        reverify("DE", &de.keys, &a.entries, &anchors, fed.now()),
        Ok(1)
    );
}
