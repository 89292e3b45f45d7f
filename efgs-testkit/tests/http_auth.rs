//! Client authentication over real HTTP (protocol §2, §12 items 36-46; decisions 1-2;
//! clients.md §6): proxy headers, the certificate header, trusted proxies, revocation and the
//! trust-list integrity check.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod support;

use base64::Engine as _;
use efgs_core::callback_url::IpCidr;
use efgs_core::media::BodyFormat;
use efgs_core::model::CertificateType;
use efgs_core::store::{TrustListStore as _, Upserted};
use efgs_testkit::federation::{BackendIdentity, Federation};
use efgs_testkit::national::{Identity, url_encode};
use efgs_testkit::pki::{CertSpec, trust_entry};
use support::{Backend, stored_keys, tag};

const PB: BodyFormat = BodyFormat::Protobuf;
const PB_V1: &str = "application/protobuf; version=1.0";

http_tests!(
    auth_dn_missing_403,
    auth_thumbprint_missing_403,
    auth_both_missing_403,
    auth_random_thumbprint_403,
    auth_valid_headers_identity_recorded,
    auth_url_encoded_dn_accepted,
    auth_base64_url_encoded_thumbprint_normalised,
    auth_base64_thumbprint_normalised,
    auth_dn_without_country_400,
    auth_malformed_dn_parts_ignored,
    auth_duplicate_dn_keys_first_wins,
    auth_uppercase_hex_thumbprint_accepted,
    auth_thumbprint_of_other_country_403,
    auth_signing_certificate_cannot_authenticate_403,
    auth_unregistered_certificate_403,
    auth_entry_failing_integrity_check_403,
    auth_cert_header_accepted,
    auth_cert_header_unregistered_403,
    auth_headers_from_untrusted_address_403,
    auth_revoked_certificate_refused_on_next_request,
    auth_entry_tampered_after_use_refused_on_next_request,
    auth_cert_header_ignored_unless_enabled,
    auth_cert_and_thumbprint_headers_must_agree_403,
    auth_repeated_identity_header_403,
    auth_expired_or_future_certificate_403,
);

/// A download of an invalid date (`/download/s`, as the reference's filter tests use): 403
/// when authentication fails, 400 (bad date) when it passes.
async fn probe(fed: &Federation, identity: Identity) -> (u16, Option<String>) {
    let r = fed["DE"]
        .download_request("s")
        .identity(identity)
        .send()
        .await
        .unwrap();
    (r.status, r.message())
}

fn hex_thumb(fed: &Federation) -> String {
    fed["DE"].credentials().auth_thumbprint.as_str().to_owned()
}

fn dn(fed: &Federation) -> String {
    fed["DE"].credentials().auth_dn.clone()
}

/// Uploads 1 DE key with `identity`; returns the status.
async fn upload_as(fed: &Federation, identity: Identity, t: &str) -> u16 {
    let de = &fed["DE"];
    let r = de
        .upload_request(de.keys(1))
        .tag(t)
        .identity(identity)
        .send()
        .await
        .unwrap();
    r.status
}

/// The uploader thumbprint the audit shows for the first batch.
async fn audited_thumbprint(fed: &Federation) -> String {
    fed.run_batching_now().await.unwrap();
    let a = fed["DE"]
        .audit(fed.today(), &tag(fed.today(), 1))
        .await
        .unwrap();
    assert_eq!(a.status, 200);
    a.entries[0].uploader_thumbprint.clone()
}

/// §12 item 36.
async fn auth_dn_missing_403(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let t = hex_thumb(&fed);
    assert_eq!(probe(&fed, Identity::raw(Some(&t), None)).await.0, 403);
}

/// §12 item 37.
async fn auth_thumbprint_missing_403(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let d = dn(&fed);
    assert_eq!(probe(&fed, Identity::raw(None, Some(&d))).await.0, 403);
}

/// §12 item 38.
async fn auth_both_missing_403(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    assert_eq!(probe(&fed, Identity::None).await.0, 403);
}

/// §12 item 39: thumbprint `randomString`.
async fn auth_random_thumbprint_403(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let d = dn(&fed);
    assert_eq!(
        probe(&fed, Identity::raw(Some("randomString"), Some(&d)))
            .await
            .0,
        403
    );
}

/// §12 item 40: valid headers authenticate as DE; the hex thumbprint is what the upload
/// records.
async fn auth_valid_headers_identity_recorded(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let (t, d) = (hex_thumb(&fed), dn(&fed));
    assert_eq!(probe(&fed, Identity::raw(Some(&t), Some(&d))).await.0, 400);
    assert_eq!(
        upload_as(&fed, Identity::raw(Some(&t), Some(&d)), "a").await,
        201
    );
    assert_eq!(audited_thumbprint(&fed).await, t);
}

/// §12 item 41: a URL-encoded DN (`%3d`, `%2c`, `%20`) gives country DE.
async fn auth_url_encoded_dn_accepted(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let t = hex_thumb(&fed);
    let d =
        "ST%3dSome-State%2c%20C%3dDE%2c%20O%3dInternet%20Widgits%20Pty%20Ltd%2c%20CN%3dTest%20Cert";
    assert_eq!(
        upload_as(&fed, Identity::raw(Some(&t), Some(d)), "a").await,
        201
    );
}

fn b64_thumb(fed: &Federation) -> String {
    let raw = hex::decode(hex_thumb(fed)).unwrap();
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// §12 item 42: the Base64 thumbprint, URL-encoded, normalises to the hex thumbprint.
async fn auth_base64_url_encoded_thumbprint_normalised(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let t = url_encode(&b64_thumb(&fed));
    assert!(t.contains('%'));
    let d = dn(&fed);
    assert_eq!(
        upload_as(&fed, Identity::raw(Some(&t), Some(&d)), "a").await,
        201
    );
    assert_eq!(audited_thumbprint(&fed).await, hex_thumb(&fed));
}

/// §12 item 43: the Base64 thumbprint, not URL-encoded, normalises to the hex thumbprint.
async fn auth_base64_thumbprint_normalised(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let t = b64_thumb(&fed);
    let d = dn(&fed);
    assert_eq!(
        upload_as(&fed, Identity::raw(Some(&t), Some(&d)), "a").await,
        201
    );
    assert_eq!(audited_thumbprint(&fed).await, hex_thumb(&fed));
}

/// §12 item 44: a DN without `C`: 400 "Client Certificate must contain country property".
async fn auth_dn_without_country_400(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let t = hex_thumb(&fed);
    let (status, message) = probe(
        &fed,
        Identity::raw(Some(&t), Some("O=Test Firma GmbH,U=Abteilung XYZ,TR=test")),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        message.as_deref(),
        Some("Client Certificate must contain country property")
    );
}

/// §12 item 45: `O=Test Firma GmbH,C=DE,U=,TR,TT=43` gives country DE.
async fn auth_malformed_dn_parts_ignored(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let t = hex_thumb(&fed);
    let d = "O=Test Firma GmbH,C=DE,U=,TR,TT=43";
    assert_eq!(
        upload_as(&fed, Identity::raw(Some(&t), Some(d)), "a").await,
        201
    );
}

/// §12 item 46: duplicate keys in the DN are fine; the first `C` wins.
async fn auth_duplicate_dn_keys_first_wins(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let t = hex_thumb(&fed);
    let d = "O=Test Firma GmbH,C=DE,O=Test Firma GmbH,C=FR";
    assert_eq!(
        upload_as(&fed, Identity::raw(Some(&t), Some(d)), "a").await,
        201
    );
}

/// Decisions 1: hex in upper case is accepted and recorded in lower case.
async fn auth_uppercase_hex_thumbprint_accepted(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let t = hex_thumb(&fed).to_ascii_uppercase();
    let d = dn(&fed);
    assert_eq!(
        upload_as(&fed, Identity::raw(Some(&t), Some(&d)), "a").await,
        201
    );
    assert_eq!(audited_thumbprint(&fed).await, hex_thumb(&fed));
}

/// Protocol §2 step 6: the DE certificate presented with `C=FR` is not FR's: 403.
async fn auth_thumbprint_of_other_country_403(b: Backend) {
    let fed = b.federation(&["DE", "FR"]).await;
    let t = hex_thumb(&fed);
    let (status, message) = probe(&fed, Identity::raw(Some(&t), Some("C=FR"))).await;
    assert_eq!(status, 403);
    assert_eq!(
        message.as_deref(),
        Some("Client is not authorized to access the service")
    );
}

/// Protocol §2 step 6: only AUTHENTICATION entries authenticate; the SIGNING certificate's
/// thumbprint is 403.
async fn auth_signing_certificate_cannot_authenticate_403(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let t = fed["DE"].credentials().sign_thumbprint.as_str().to_owned();
    let d = dn(&fed);
    assert_eq!(probe(&fed, Identity::raw(Some(&t), Some(&d))).await.0, 403);
}

/// A well-formed thumbprint of a certificate not on the trust list: 403.
async fn auth_unregistered_certificate_403(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let stranger = CertSpec::new(Some("DE"), "stranger", fed.now())
        .generate()
        .unwrap();
    let d = dn(&fed);
    let (status, message) = probe(
        &fed,
        Identity::raw(Some(stranger.thumbprint.as_str()), Some(&d)),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        message.as_deref(),
        Some("Client is not authorized to access the service")
    );
}

/// Protocol §4.4: an entry whose operator signature does not verify counts as absent: 403.
async fn auth_entry_failing_integrity_check_403(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let spec = CertSpec::new(Some("DE"), "tampered", fed.now());
    let cert = spec.generate().unwrap();
    let mut entry = fed
        .pki()
        .sign_entry(&cert.cert_pem, "DE", CertificateType::Authentication)
        .unwrap();
    // Another entry's signature: valid Base64, wrong message.
    entry.signature = fed["DE"].credentials().entries[1].signature.clone();
    let out = fed
        .store()
        .upsert_trust_entry(trust_entry(&entry, fed.now()))
        .await
        .unwrap();
    assert_eq!(out, Upserted::Inserted);
    let (status, _) = probe(
        &fed,
        Identity::raw(Some(cert.thumbprint.as_str()), Some(&spec.dn_header())),
    )
    .await;
    assert_eq!(status, 403);
}

/// Decisions 2: `X-SSL-Client-Cert` (URL-encoded PEM) identifies the caller; a whole
/// federation works with it.
async fn auth_cert_header_accepted(b: Backend) {
    let fed = b
        .builder()
        .await
        .countries(["DE", "FR"])
        .backend_identity(BackendIdentity::CertHeader)
        .build()
        .await
        .unwrap();
    assert!(matches!(fed["DE"].identity(), Identity::CertHeader(_)));
    let keys = fed["DE"].keys(3);
    assert_eq!(fed["DE"].upload(&keys, "a", PB).await.unwrap().status, 201);
    fed.run_batching_now().await.unwrap();
    let r = fed["FR"]
        .download(fed.today(), None, Some(PB_V1))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.keys, keys);
    assert_eq!(audited_thumbprint(&fed).await, hex_thumb(&fed));
}

/// Decisions 2: a certificate header for a certificate not on the list: 403.
async fn auth_cert_header_unregistered_403(b: Backend) {
    let fed = b
        .builder()
        .await
        .countries(["DE"])
        .setting("auth.proxy_cert_header", "true")
        .build()
        .await
        .unwrap();
    let stranger = CertSpec::new(Some("DE"), "stranger", fed.now())
        .generate()
        .unwrap();
    let (status, _) = probe(&fed, Identity::CertHeader(url_encode(&stranger.cert_pem))).await;
    assert_eq!(status, 403);
}

/// Decisions 2 / clients.md §6: identity headers from an address that is not a trusted
/// proxy are ignored (403), while OPTIONS still answers.
async fn auth_headers_from_untrusted_address_403(b: Backend) {
    let fed = b
        .builder()
        .await
        .countries(["DE"])
        .trusted_proxies(vec![IpCidr::parse("10.0.0.0/8").unwrap()])
        .build()
        .await
        .unwrap();
    let de = &fed["DE"];
    let r = de.download(fed.today(), None, Some(PB_V1)).await.unwrap();
    assert_eq!(r.status, 403);
    let u = de.upload(&de.keys(1), "a", PB).await.unwrap();
    assert_eq!(u.status, 403);
    assert_eq!(stored_keys(&fed).await, 0);
    let o = de
        .client()
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/diagnosiskeys", fed.base_url()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(o.status().as_u16(), 200);
}

/// Protocol §2 step 7: a revoked certificate is refused from the next request on: 403
/// "Client certificate is revoked".
async fn auth_revoked_certificate_refused_on_next_request(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let de = &fed["DE"];
    let before = de.download(fed.today(), None, Some(PB_V1)).await.unwrap();
    assert_eq!(before.status, 404, "authenticated, no batch yet");
    fed.revoke(&de.credentials().auth_thumbprint).await.unwrap();
    let after = de.download(fed.today(), None, Some(PB_V1)).await.unwrap();
    assert_eq!(after.status, 403);
    assert_eq!(
        after.message().as_deref(),
        Some("Client certificate is revoked")
    );
    let u = de.upload(&de.keys(1), "a", PB).await.unwrap();
    assert_eq!(u.status, 403);
}

/// The gateway remembers rows whose integrity it checked, keyed by their signed content: a row
/// changed in the store after it was used (here: another entry's operator signature) is checked
/// again and refused on the next request.
async fn auth_entry_tampered_after_use_refused_on_next_request(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let de = &fed["DE"];
    let before = de.download(fed.today(), None, Some(PB_V1)).await.unwrap();
    assert_eq!(before.status, 404, "authenticated, no batch yet");
    let creds = de.credentials();
    let mut auth = creds
        .entries
        .iter()
        .find(|e| e.cert_type == CertificateType::Authentication)
        .unwrap()
        .clone();
    let other = creds
        .entries
        .iter()
        .find(|e| e.cert_type == CertificateType::Signing)
        .unwrap();
    auth.signature = other.signature.clone();
    let out = fed
        .store()
        .upsert_trust_entry(trust_entry(&auth, fed.now()))
        .await
        .unwrap();
    assert_eq!(
        out,
        Upserted::Replaced,
        "a re-signed entry replaces the row"
    );
    // Written through another store handle (PostgreSQL): seen within the stamp lag (ADR 0030).
    fed.server_sees_trust_list().await.unwrap();
    let after = de.download(fed.today(), None, Some(PB_V1)).await.unwrap();
    assert_eq!(after.status, 403);
    assert_eq!(
        after.message().as_deref(),
        Some("Client is not authorized to access the service")
    );
}

/// Issue 9: `X-SSL-Client-Cert` counts only when `auth.proxy_cert_header` is on. By default a
/// client (through a proxy that sets only the SHA-256/DN headers) cannot present another
/// country's certificate PEM, which the audit endpoint hands out, to act as that country.
async fn auth_cert_header_ignored_unless_enabled(b: Backend) {
    let fed = b.federation(&["DE", "FR"]).await;
    let fr_cert = url_encode(&fed["FR"].credentials().auth_cert_pem);
    let de = &fed["DE"];
    // DE's own keys, DE's headers, FR's certificate header: the caller is DE (201), not FR
    // (which would refuse DE's keys with 400).
    let r = de
        .upload_request(de.keys(2))
        .tag("beside-fr-cert")
        .header("X-SSL-Client-Cert", &fr_cert)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    // Only the certificate header: not honoured, so no identity (403).
    let (status, _) = probe(&fed, Identity::CertHeader(fr_cert)).await;
    assert_eq!(status, 403);
}

/// Issue 9: with the certificate header on, a certificate header and a SHA-256 header that name
/// different certificates get 403.
async fn auth_cert_and_thumbprint_headers_must_agree_403(b: Backend) {
    let fed = b
        .builder()
        .await
        .countries(["DE", "FR"])
        .setting("auth.proxy_cert_header", "true")
        .build()
        .await
        .unwrap();
    let fr_cert = url_encode(&fed["FR"].credentials().auth_cert_pem);
    let de_cert = url_encode(&fed["DE"].credentials().auth_cert_pem);
    let r = fed["DE"]
        .download_request("s")
        .header("X-SSL-Client-Cert", &fr_cert)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    // The same certificate in both: accepted (400 for the bad date comes after auth).
    let r = fed["DE"]
        .download_request("s")
        .header("X-SSL-Client-Cert", &de_cert)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(stored_keys(&fed).await, 0);
}

/// Issue 9: an identity header sent twice (a proxy that appends) gets 403, whichever comes
/// first.
async fn auth_repeated_identity_header_403(b: Backend) {
    let fed = b.federation(&["DE", "FR"]).await;
    let fr = fed["FR"].credentials().clone();
    for (name, value) in [
        (
            "X-SSL-Client-SHA256",
            fr.auth_thumbprint.as_str().to_owned(),
        ),
        ("X-SSL-Client-DN", fr.auth_dn.clone()),
    ] {
        let r = fed["DE"]
            .download_request("s")
            .header(name, &value)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status, 403, "{name} twice");
    }
    assert_eq!(
        upload_as(
            &fed,
            Identity::headers(&fed["DE"].credentials().clone()),
            "ok"
        )
        .await,
        201
    );
}

/// Issue 9: an AUTHENTICATION certificate outside its validity period gets 403 (proxy mode).
async fn auth_expired_or_future_certificate_403(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let now = fed.now();
    for (name, from, to) in [
        (
            "expired",
            now - time::Duration::days(30),
            now - time::Duration::days(1),
        ),
        (
            "future",
            now + time::Duration::days(1),
            now + time::Duration::days(30),
        ),
    ] {
        let spec = CertSpec {
            client_auth: true,
            ..CertSpec::new(Some("DE"), name, now).validity(from, to)
        };
        let cert = spec.generate().unwrap();
        let entry = fed
            .pki()
            .sign_entry(&cert.cert_pem, "DE", CertificateType::Authentication)
            .unwrap();
        let _ = fed
            .store()
            .upsert_trust_entry(trust_entry(&entry, now))
            .await
            .unwrap();
        let (status, message) = probe(
            &fed,
            Identity::raw(Some(cert.thumbprint.as_str()), Some(&spec.dn_header())),
        )
        .await;
        assert_eq!(status, 403, "{name}");
        assert_eq!(
            message.as_deref(),
            Some("Client certificate is outside its validity period"),
            "{name}"
        );
    }
}
