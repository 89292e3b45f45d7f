//! Mutual TLS mode (decisions 2): the server terminates TLS and requires client certificates;
//! self-signed national certificates pass the handshake and are authorised by the trust list.
//! These federations run on the real clock (rustls checks the server certificate against it).
#![allow(clippy::unwrap_used)]

#[macro_use]
mod support;

use efgs_core::media::BodyFormat;
use efgs_core::store::TrustListStore as _;
use efgs_testkit::federation::Federation;
use efgs_testkit::national::{decode_download, encode_body};
use efgs_testkit::pki::CertSpec;
use support::{Backend, TlsClient, stored_keys};

const PB_V1: &str = "application/protobuf; version=1.0";

http_tests!(
    mtls_self_signed_client_certificate_uploads_and_downloads,
    mtls_unregistered_client_certificate_403,
    mtls_identity_headers_ignored,
    mtls_without_client_certificate_refused,
    mtls_revoked_client_certificate_403,
    mtls_expired_client_certificate_403,
);

async fn mtls_fed(b: &Backend, countries: &[&str]) -> Federation {
    b.builder()
        .await
        .countries(countries.iter().copied())
        .mutual_tls()
        .build()
        .await
        .unwrap()
}

fn client_for(fed: &Federation, country: &str) -> TlsClient {
    let creds = fed[country].credentials();
    TlsClient::new(
        &fed.tls().unwrap().ca.cert_der,
        Some((&creds.auth_cert_der, &creds.auth_key_der)),
    )
}

async fn upload(
    fed: &Federation,
    client: &TlsClient,
    country: &str,
    n: usize,
) -> (u16, Vec<efgs_core::DiagnosisKey>) {
    let keys = fed[country].keys(n);
    let sig = fed[country].sign(&keys).unwrap();
    let r = client
        .request(
            fed.addr(),
            "POST",
            "/diagnosiskeys/upload",
            &[
                ("content-type", PB_V1),
                ("batchTag", "tls-1"),
                ("batchSignature", &sig),
            ],
            encode_body(&keys, BodyFormat::Protobuf),
        )
        .await
        .unwrap();
    (r.status, keys)
}

async fn download(
    fed: &Federation,
    client: &TlsClient,
    extra: &[(&str, &str)],
) -> support::TlsResponse {
    let mut headers = vec![("accept", PB_V1)];
    headers.extend_from_slice(extra);
    client
        .request(
            fed.addr(),
            "GET",
            &format!("/diagnosiskeys/download/{}", fed.today()),
            &headers,
            Vec::new(),
        )
        .await
        .unwrap()
}

/// A self-signed AUTHENTICATION certificate on the trust list uploads over mTLS; another
/// country downloads the keys over mTLS.
async fn mtls_self_signed_client_certificate_uploads_and_downloads(b: Backend) {
    let fed = mtls_fed(&b, &["DE", "FR"]).await;
    assert!(fed.base_url().starts_with("https://"));
    let (status, keys) = upload(&fed, &client_for(&fed, "DE"), "DE", 3).await;
    assert_eq!(status, 201);
    fed.run_batching_now().await.unwrap();
    let r = download(&fed, &client_for(&fed, "FR"), &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("batchTag").map(str::len), Some(10));
    assert_eq!(
        decode_download(r.header("content-type"), &r.body).unwrap(),
        keys
    );
}

/// A self-signed certificate that is not on the trust list passes the handshake and is then
/// refused: 403.
async fn mtls_unregistered_client_certificate_403(b: Backend) {
    let fed = mtls_fed(&b, &["DE"]).await;
    let stranger = CertSpec {
        client_auth: true,
        ..CertSpec::new(Some("DE"), "stranger", fed.now())
    }
    .generate()
    .unwrap();
    let client = TlsClient::new(
        &fed.tls().unwrap().ca.cert_der,
        Some((&stranger.cert_der, &stranger.key_der)),
    );
    let r = download(&fed, &client, &[]).await;
    assert_eq!(r.status, 403);
    let (status, _) = upload(&fed, &client, "DE", 1).await;
    assert_eq!(status, 403);
    assert_eq!(stored_keys(&fed).await, 0);
}

/// In mTLS mode the identity headers are ignored: FR's connection sending DE's headers is
/// still FR (it receives DE's keys, which DE itself would not).
async fn mtls_identity_headers_ignored(b: Backend) {
    let fed = mtls_fed(&b, &["DE", "FR"]).await;
    let (status, keys) = upload(&fed, &client_for(&fed, "DE"), "DE", 2).await;
    assert_eq!(status, 201);
    fed.run_batching_now().await.unwrap();
    let de = fed["DE"].credentials();
    let r = download(
        &fed,
        &client_for(&fed, "FR"),
        &[
            ("X-SSL-Client-SHA256", de.auth_thumbprint.as_str()),
            ("X-SSL-Client-DN", &de.auth_dn),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        decode_download(r.header("content-type"), &r.body).unwrap(),
        keys
    );
}

/// A client without a certificate gets no answer.
async fn mtls_without_client_certificate_refused(b: Backend) {
    let fed = mtls_fed(&b, &["DE"]).await;
    let client = TlsClient::new(&fed.tls().unwrap().ca.cert_der, None);
    let r = client
        .request(
            fed.addr(),
            "GET",
            &format!("/diagnosiskeys/download/{}", fed.today()),
            &[("accept", PB_V1)],
            Vec::new(),
        )
        .await;
    assert!(r.is_err(), "{r:?}");
}

/// Revoking the client certificate refuses its next request: 403.
async fn mtls_revoked_client_certificate_403(b: Backend) {
    let fed = mtls_fed(&b, &["DE"]).await;
    let client = client_for(&fed, "DE");
    assert_eq!(download(&fed, &client, &[]).await.status, 404);
    fed.revoke(&fed["DE"].credentials().auth_thumbprint)
        .await
        .unwrap();
    assert_eq!(download(&fed, &client, &[]).await.status, 403);
}

/// Issue 9: an expired AUTHENTICATION certificate on the trust list completes the handshake
/// (no client CA configured) and is then refused: 403.
async fn mtls_expired_client_certificate_403(b: Backend) {
    let fed = mtls_fed(&b, &["DE"]).await;
    let now = fed.now();
    let expired = CertSpec {
        client_auth: true,
        ..CertSpec::new(Some("DE"), "expired", now).validity(
            now - time::Duration::days(30),
            now - time::Duration::days(1),
        )
    }
    .generate()
    .unwrap();
    let entry = fed
        .pki()
        .sign_entry(
            &expired.cert_pem,
            "DE",
            efgs_core::model::CertificateType::Authentication,
        )
        .unwrap();
    let _ = fed
        .store()
        .upsert_trust_entry(efgs_testkit::pki::trust_entry(&entry, now))
        .await
        .unwrap();
    let client = TlsClient::new(
        &fed.tls().unwrap().ca.cert_der,
        Some((&expired.cert_der, &expired.key_der)),
    );
    assert_eq!(download(&fed, &client, &[]).await.status, 403);
    let (status, _) = upload(&fed, &client, "DE", 1).await;
    assert_eq!(status, 403);
    assert_eq!(stored_keys(&fed).await, 0);
}
