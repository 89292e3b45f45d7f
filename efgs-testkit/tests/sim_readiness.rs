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
