//! `GET /diagnosiskeys/audit/download/{date}/{batchTag}` over real HTTP (protocol §1.4, §6,
//! §12 items 24-28; clients.md §5).
#![allow(clippy::unwrap_used)]

#[macro_use]
mod support;

use efgs_core::DiagnosisKey;
use efgs_core::media::BodyFormat;
use efgs_core::model::CertificateType;
use efgs_testkit::demo::reverify;
use efgs_testkit::federation::Federation;
use support::{Backend, tag};
use time::macros::datetime;
use time::{Date, Duration, OffsetDateTime};

const PB: BodyFormat = BodyFormat::Protobuf;
const T0: OffsetDateTime = datetime!(2026-11-28 10:00 UTC);
const D0: Date = T0.date();

http_tests!(
    audit_entry_after_batching,
    audit_uses_batch_day_not_upload_day,
    audit_no_batches_404,
    audit_unknown_tag_yesterday_404,
    audit_two_months_ago_410,
    audit_date_other_than_batch_day_404,
    audit_amounts_order_and_signatures_reverify,
    audit_certificates_exactly_as_onboarded,
    audit_without_accept_200,
    audit_accept_protobuf_406,
    audit_any_country_may_audit,
    audit_after_retention_410,
);

async fn fed_at(b: &Backend, countries: &[&str], t: OffsetDateTime) -> Federation {
    b.builder()
        .await
        .countries(countries.iter().copied())
        .start_at(t)
        .setting("download.max_age_days", "14")
        .setting("retention.key_days", "14")
        .build()
        .await
        .unwrap()
}

/// Uploads `n` keys from `country`; returns the keys and the signature sent.
async fn put(fed: &Federation, country: &str, n: usize, t: &str) -> (Vec<DiagnosisKey>, String) {
    let b = &fed[country];
    let keys = b.keys(n);
    let r = b.upload(&keys, t, PB).await.unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    (keys, r.signature.unwrap())
}

/// §12 item 24: upload 3 keys, batch, audit today / `yyyyMMdd-1`: one entry with country,
/// amount 3, the auth thumbprint, both certificates and operator signatures, and the upload's
/// signature.
async fn audit_entry_after_batching(b: Backend) {
    let fed = fed_at(&b, &["DE"], T0).await;
    let (_, sig) = put(&fed, "DE", 3, "up-1").await;
    fed.run_batching_now().await.unwrap();
    let r = fed["DE"].audit(D0, &tag(D0, 1)).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.entries.len(), 1);
    let e = &r.entries[0];
    let creds = fed["DE"].credentials();
    assert_eq!(e.country, "DE");
    assert_eq!(e.amount, 3);
    assert_eq!(e.uploader_thumbprint, creds.auth_thumbprint.as_str());
    assert_eq!(
        e.uploader_signing_thumbprint,
        creds.sign_thumbprint.as_str()
    );
    assert!(e.uploader_operator_signature.is_some());
    assert!(e.signing_certificate_operator_signature.is_some());
    assert!(e.uploader_certificate.is_some());
    assert!(e.signing_certificate.is_some());
    assert_eq!(e.batch_signature, sig);
    assert!(
        e.uploaded_time.starts_with("2026-11-28T10:00") && e.uploaded_time.ends_with('Z'),
        "{}",
        e.uploaded_time
    );
    // The field order of the reference.
    let text = String::from_utf8(r.body.clone()).unwrap();
    let order = [
        "country",
        "uploadedTime",
        "uploaderCertificate",
        "uploaderThumbprint",
        "uploaderOperatorSignature",
        "signingCertificate",
        "uploaderSigningThumbprint",
        "signingCertificateOperatorSignature",
        "amount",
        "batchSignature",
    ];
    let pos: Vec<usize> = order
        .iter()
        .map(|f| text.find(&format!("\"{f}\"")).unwrap())
        .collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{text}");
}

/// §12 item 25: keys uploaded yesterday, batched today: the audit of today's batch with
/// today's date still answers (the date check uses the batch day).
async fn audit_uses_batch_day_not_upload_day(b: Backend) {
    let fed = fed_at(&b, &["DE"], datetime!(2026-11-28 23:58 UTC)).await;
    put(&fed, "DE", 3, "late").await;
    fed.clock().set(datetime!(2026-11-29 00:01 UTC));
    fed.run_batching_now().await.unwrap();
    let d1 = D0 + Duration::days(1);
    let r = fed["DE"].audit(d1, &tag(d1, 1)).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.entries[0].amount, 3);
    assert!(r.entries[0].uploaded_time.starts_with("2026-11-28T23:58"));
}

/// §12 item 26: no data: 404.
async fn audit_no_batches_404(b: Backend) {
    let fed = fed_at(&b, &["DE"], T0).await;
    let r = fed["DE"].audit(D0, &tag(D0, 1)).await.unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(
        r.message().as_deref(),
        Some("Could not find batch with given BatchTag")
    );
}

/// §12 item 27: yesterday's date with `<yesterday>-1` (no such batch): 404.
async fn audit_unknown_tag_yesterday_404(b: Backend) {
    let fed = fed_at(&b, &["DE"], T0).await;
    put(&fed, "DE", 1, "a").await;
    fed.run_batching_now().await.unwrap();
    let y = D0 - Duration::days(1);
    let r = fed["DE"].audit(y, &tag(y, 1)).await.unwrap();
    assert_eq!(r.status, 404);
}

/// §12 item 28: a date two months ago: 410.
async fn audit_two_months_ago_410(b: Backend) {
    let fed = fed_at(&b, &["DE"], T0).await;
    let old = D0 - Duration::days(61);
    let r = fed["DE"].audit(old, &tag(old, 1)).await.unwrap();
    assert_eq!(r.status, 410);
    assert_eq!(r.message().as_deref(), Some("Requested date is too old!"));
}

/// Protocol §1.4 step 4: the date must equal the batch's day: 404 "Given date does not match
/// the requested batch" for the day before and the day after.
async fn audit_date_other_than_batch_day_404(b: Backend) {
    let fed = fed_at(&b, &["DE"], T0).await;
    put(&fed, "DE", 1, "a").await;
    fed.run_batching_now().await.unwrap();
    fed.clock().advance(Duration::days(1));
    let t = tag(D0, 1);
    for d in [D0 - Duration::days(1), D0 + Duration::days(1)] {
        let r = fed["DE"].audit(d, &t).await.unwrap();
        assert_eq!(r.status, 404, "{d}");
        assert_eq!(
            r.message().as_deref(),
            Some("Given date does not match the requested batch")
        );
    }
    assert_eq!(fed["DE"].audit(D0, &t).await.unwrap().status, 200);
}

/// clients.md §5 (ES, IT, FI): entries are ordered by first key, `amount` counts every upload
/// including the caller's own, and slicing the caller's download with the foreign amounts
/// re-verifies each upload's signature.
async fn audit_amounts_order_and_signatures_reverify(b: Backend) {
    let fed = fed_at(&b, &["DE", "FR", "NL", "IT"], T0).await;
    let plan = [
        ("DE", 3),
        ("FR", 5),
        ("NL", 1),
        ("DE", 4),
        ("IT", 7),
        ("FR", 2),
    ];
    for (i, (c, n)) in plan.iter().enumerate() {
        put(&fed, c, *n, &format!("{c}-{i}")).await;
    }
    fed.run_batching_now().await.unwrap();
    let t = tag(D0, 1);
    let anchors = fed.pki().anchors().unwrap();
    for me in ["DE", "FR", "NL", "IT"] {
        let a = fed[me].audit(D0, &t).await.unwrap();
        assert_eq!(a.status, 200);
        let got: Vec<(&str, u64)> = a
            .entries
            .iter()
            .map(|e| (e.country.as_str(), e.amount))
            .collect();
        let want: Vec<(&str, u64)> = plan.iter().map(|(c, n)| (*c, *n as u64)).collect();
        assert_eq!(got, want, "as seen by {me}");
        let d = fed[me]
            .download(D0, Some(&t), Some(PB.content_type()))
            .await
            .unwrap();
        let foreign = plan.iter().filter(|(c, _)| *c != me).count();
        assert_eq!(
            reverify(me, &d.keys, &a.entries, &anchors, fed.now()),
            Ok(foreign),
            "{me}"
        );
    }
}

/// clients.md §5: the certificates are the PEM texts exactly as the trust anchor signed them
/// (64-column Base64, LF, trailing newline; Italy compares strings), with their operator
/// signatures.
async fn audit_certificates_exactly_as_onboarded(b: Backend) {
    let fed = fed_at(&b, &["DE", "FR"], T0).await;
    put(&fed, "DE", 2, "a").await;
    fed.run_batching_now().await.unwrap();
    let r = fed["FR"].audit(D0, &tag(D0, 1)).await.unwrap();
    let e = &r.entries[0];
    let creds = fed["DE"].credentials();
    let sign = creds.entry(CertificateType::Signing).unwrap();
    let auth = creds.entry(CertificateType::Authentication).unwrap();
    assert_eq!(e.signing_certificate.as_deref(), Some(sign.pem.as_str()));
    assert_eq!(
        e.signing_certificate_operator_signature.as_deref(),
        Some(sign.signature.as_str())
    );
    assert_eq!(e.uploader_certificate.as_deref(), Some(auth.pem.as_str()));
    assert_eq!(
        e.uploader_operator_signature.as_deref(),
        Some(auth.signature.as_str())
    );
    let pem = e.signing_certificate.as_deref().unwrap();
    assert!(pem.ends_with("-----END CERTIFICATE-----\n") && !pem.contains('\r'));
    let body: Vec<&str> = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(body[..body.len() - 1].iter().all(|l| l.len() == 64));
    assert_eq!(pem, sign.pem);
}

/// clients.md §5: Italy sends no `Accept` at all.
async fn audit_without_accept_200(b: Backend) {
    let fed = fed_at(&b, &["DE", "IT"], T0).await;
    put(&fed, "DE", 2, "a").await;
    fed.run_batching_now().await.unwrap();
    let r = fed["IT"]
        .audit_request(D0, &tag(D0, 1))
        .no_accept()
        .send()
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(
        r.content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("application/json"))
    );
}

/// Protocol §1.4: the route produces JSON only: `Accept: application/protobuf; version=1.0`
/// is 406.
async fn audit_accept_protobuf_406(b: Backend) {
    let fed = fed_at(&b, &["DE"], T0).await;
    put(&fed, "DE", 2, "a").await;
    fed.run_batching_now().await.unwrap();
    let r = fed["DE"]
        .audit_request(D0, &tag(D0, 1))
        .accept("application/protobuf; version=1.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status, 406);
}

/// Protocol §1.4 step 6: any authenticated country may audit any batch.
async fn audit_any_country_may_audit(b: Backend) {
    let fed = fed_at(&b, &["DE", "FR"], T0).await;
    put(&fed, "DE", 2, "a").await;
    fed.run_batching_now().await.unwrap();
    let r = fed["FR"].audit(D0, &tag(D0, 1)).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.entries[0].country, "DE");
}

/// Protocol §1.4 step 5: a batch whose keys retention deleted: 404 "Batchtag not found".
async fn audit_after_retention_410(b: Backend) {
    // With the default settings keys live 2 days and audits reach 2 days back, so the
    // server refuses settings that would delete keys still auditable: once retention has
    // deleted a day's keys, audits of that day are out of the window.
    let fed = b
        .builder()
        .await
        .countries(["DE"])
        .start_at(T0)
        .build()
        .await
        .unwrap();
    put(&fed, "DE", 2, "a").await;
    fed.run_batching_now().await.unwrap();
    let r = fed["DE"].audit(D0, &tag(D0, 1)).await.unwrap();
    assert_eq!(r.status, 200);
    fed.clock().advance(Duration::days(3));
    let report = fed.gateway().cleanup(fed.now()).await.unwrap();
    assert_eq!(report.deleted, 2);
    let r = fed["DE"].audit(D0, &tag(D0, 1)).await.unwrap();
    assert_eq!(r.status, 410);
}
