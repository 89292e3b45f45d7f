//! `efgs-sim readiness`: a peer (NL) checks a connecting country (FR) against a gateway.
//! FR's own uploads pass; an upload of FR's signed with DE's SIGNING certificate (written
//! into the store directly: the gateway itself would refuse it, the peer check must not rely
//! on that) fails with that reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use efgs_core::media::BodyFormat;
use efgs_core::model::FormatVersion;
use efgs_core::store::{NewKey, NewUpload, UploadStore as _};
use efgs_testkit::federation::Federation;
use efgs_testkit::generate::key_hash;
use efgs_testkit::sim::readiness::{Outcome, ReadinessOptions, check_readiness};

async fn federation() -> Federation {
    Federation::builder()
        .countries(["DE", "FR", "NL"])
        .build()
        .await
        .unwrap()
}

fn options(fed: &Federation) -> ReadinessOptions {
    ReadinessOptions {
        gateway: fed.base_url().to_owned(),
        peer: fed.pki().country("NL").unwrap().clone(),
        anchors_pem: fed.pki().anchor_pem.clone(),
        candidate: "FR".to_owned(),
        from: fed.today().previous_day().unwrap(),
        to: fed.today(),
        timeout: Duration::from_secs(10),
        callback_log: None,
    }
}

fn result(report: &efgs_testkit::sim::readiness::ReadinessReport, name: &str) -> Outcome {
    report
        .checks
        .iter()
        .find(|c| c.name == name)
        .map(|c| c.result)
        .unwrap()
}

#[tokio::test]
async fn a_candidate_whose_uploads_check_out_is_ready() {
    let fed = federation().await;
    for (i, format) in [BodyFormat::Protobuf, BodyFormat::Json]
        .into_iter()
        .enumerate()
    {
        let r = fed["FR"]
            .upload(&fed["FR"].keys(150), &format!("fr-{i}"), format)
            .await
            .unwrap();
        assert_eq!(r.status, 201);
    }
    let r = fed["DE"]
        .upload(&fed["DE"].keys(40), "de-1", BodyFormat::Protobuf)
        .await
        .unwrap();
    assert_eq!(r.status, 201);
    fed.run_batching_now().await.unwrap();

    let report = check_readiness(&options(&fed)).await.unwrap();
    println!("{}", report.markdown());
    assert!(report.ready, "{:#?}", report.checks);
    assert_eq!(report.candidate_uploads, 2);
    assert_eq!(report.candidate_keys, 300);
    for name in [
        "download",
        "audit-signature",
        "signer-registered",
        "key-validation",
    ] {
        assert_eq!(result(&report, name), Outcome::Pass, "{name}");
    }
    assert_eq!(result(&report, "callback"), Outcome::Skipped);
    assert_eq!(report.checked_by, "NL");
    let dir = tempfile::tempdir().unwrap();
    report.write(dir.path()).unwrap();
    let md = std::fs::read_to_string(dir.path().join("readiness-FR.md")).unwrap();
    assert!(md.contains("**Result: READY**") && md.contains(fed.base_url()));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("readiness-FR.json")).unwrap())
            .unwrap();
    assert_eq!(json["ready"], true);
    assert_eq!(json["checks"].as_array().unwrap().len(), 5);

    // A country with no uploads in the range is not ready.
    let mut other = options(&fed);
    other.candidate = "IT".to_owned();
    let report = check_readiness(&other).await.unwrap();
    assert!(!report.ready);
    assert_eq!(result(&report, "download"), Outcome::Fail);
}

#[tokio::test]
async fn uploads_signed_with_another_countrys_certificate_fail() {
    let fed = federation().await;
    let good = fed["FR"]
        .upload(&fed["FR"].keys(100), "fr-good", BodyFormat::Protobuf)
        .await
        .unwrap();
    assert_eq!(good.status, 201);
    // FR's keys signed by DE, stored as FR's upload.
    let keys = fed["FR"].keys(120);
    let signature = fed["DE"].sign(&keys).unwrap();
    let fr = fed.pki().country("FR").unwrap();
    let de = fed.pki().country("DE").unwrap();
    let upload = NewUpload {
        country: "FR".to_owned(),
        batch_tag: "fr-forged".to_owned(),
        batch_signature: signature.clone(),
        uploader_thumbprint: fr.auth_thumbprint.clone(),
        signing_thumbprint: de.sign_thumbprint.clone(),
        format: FormatVersion::V1_0,
        created_at: fed.now(),
        content_digest: [7u8; 32],
        keys: keys
            .into_iter()
            .map(|key| NewKey {
                hash: key_hash(&key),
                key,
            })
            .collect(),
    };
    let _ = fed.store().insert_upload(upload).await.unwrap();
    fed.run_batching_now().await.unwrap();

    let report = check_readiness(&options(&fed)).await.unwrap();
    println!("{}", report.markdown());
    assert!(!report.ready);
    assert_eq!(report.candidate_uploads, 2);
    // The signature itself is sound; its signer is not FR's.
    assert_eq!(result(&report, "audit-signature"), Outcome::Pass);
    assert_eq!(result(&report, "signer-registered"), Outcome::Fail);
    let forged: Vec<_> = report
        .uploads
        .iter()
        .filter(|u| !u.failures.is_empty())
        .collect();
    assert_eq!(forged.len(), 1);
    assert_eq!(forged[0].keys, 120);
    assert_eq!(
        forged[0].signer_thumbprint.as_deref(),
        Some(de.sign_thumbprint.as_str())
    );
    assert!(
        forged[0]
            .failures
            .iter()
            .any(|f| f.contains("signed by a certificate of DE")),
        "{:?}",
        forged[0].failures
    );
    assert!(report.markdown().contains("**Result: NOT READY**"));
}

/// The callback check (ADR 0032): FR subscribes its own HTTPS endpoint (its CALLBACK
/// certificate on the trust list, 127.0.0.1 admitted by `callback.allow_cidrs`); three
/// batches are cut and announced. FR's delivery log passes; the same log without the middle
/// notification fails naming that batch; an endpoint that logged nothing fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_candidates_callback_log_is_checked_against_the_batches() {
    use efgs_core::model::CertificateType;
    use efgs_core::store::TrustListStore as _;
    use efgs_testkit::sim::callback::{CallbackEndpoint, write_log};

    let files = tempfile::tempdir().unwrap();
    let now = time::OffsetDateTime::now_utc();
    let (_, cert, key) = efgs_testkit::callbacks::gateway_client_cert(files.path(), now).unwrap();
    let fed = Federation::builder()
        .countries(["DE", "FR", "NL"])
        .clock(efgs_testkit::federation::TestClock::system())
        .setting("callback.client_cert", cert.display().to_string())
        .setting("callback.client_key", key.display().to_string())
        .setting("callback.allow_cidrs", "127.0.0.1/32")
        .setting("callback.poll_millis", "100")
        .build()
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let endpoint = CallbackEndpoint::start([127, 0, 0, 1].into(), "FR", fed.now(), tx)
        .await
        .unwrap();
    let entry = fed
        .pki()
        .sign_entry(&endpoint.cert().cert_pem, "FR", CertificateType::Callback)
        .unwrap();
    let _ = fed
        .store()
        .upsert_trust_entry(efgs_testkit::pki::trust_entry(&entry, fed.now()))
        .await
        .unwrap();
    let put = fed["FR"]
        .callback_put("fr-readiness", Some(&endpoint.url()))
        .await
        .unwrap();
    assert_eq!(put.status, 200, "{}", String::from_utf8_lossy(&put.body));
    let mut cut_tags = Vec::new();
    for i in 0..3 {
        let r = fed["FR"]
            .upload(
                &fed["FR"].keys(50),
                &format!("fr-cb-{i}"),
                BodyFormat::Protobuf,
            )
            .await
            .unwrap();
        assert_eq!(r.status, 201);
        let cut = fed
            .run_batching(fed.now() + time::Duration::hours(1))
            .await
            .unwrap();
        assert_eq!(cut.len(), 1);
        cut_tags.push(cut[0].batch.tag.to_string());
    }
    let mut log = Vec::new();
    while log.len() < 3 {
        let n = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("three notifications within 20 s")
            .unwrap();
        log.push(n.delivery);
    }
    let check = |path: std::path::PathBuf| {
        let mut o = options(&fed);
        o.callback_log = Some(path);
        o
    };
    let full = files.path().join("full.jsonl");
    write_log(&full, &log).unwrap();
    let report = check_readiness(&check(full)).await.unwrap();
    println!("{}", report.markdown());
    assert!(report.ready, "{:#?}", report.checks);
    assert_eq!(result(&report, "callback"), Outcome::Pass);

    // The middle batch's notification never arrived. (The endpoint passes a notification on
    // after its connection is closed, so the channel's order need not be the delivery order:
    // the gap is chosen by tag.)
    let middle = &cut_tags[1];
    let gap_log: Vec<_> = log
        .iter()
        .filter(|d| &d.batch_tag != middle)
        .cloned()
        .collect();
    assert_eq!(gap_log.len(), 2, "{log:?}");
    let gap = files.path().join("gap.jsonl");
    write_log(&gap, &gap_log).unwrap();
    let report = check_readiness(&check(gap)).await.unwrap();
    assert!(!report.ready);
    assert_eq!(result(&report, "callback"), Outcome::Fail);
    let c = report.checks.iter().find(|c| c.name == "callback").unwrap();
    assert!(
        c.details
            .iter()
            .any(|d| d.contains(middle.as_str()) && d.contains("was not notified")),
        "{:?}",
        c.details
    );

    // An endpoint that received nothing.
    let empty = files.path().join("empty.jsonl");
    write_log(&empty, &[]).unwrap();
    let report = check_readiness(&check(empty)).await.unwrap();
    assert!(!report.ready);
    assert_eq!(result(&report, "callback"), Outcome::Fail);
    fed.shutdown().await.unwrap();
}
