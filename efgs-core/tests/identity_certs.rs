//! Identity from a client certificate (mTLS, `X-SSL-Client-Cert`) and the authorisation
//! decision against the trust list (protocol §2 steps 6-7, decisions item 2).
#![allow(clippy::unwrap_used)]

mod trust_support;

use efgs_core::cert::Thumbprint;
use efgs_core::identity::{
    ClientIdentity, IdentityError, IdentityErrorKind, NOT_AUTHORIZED_REASON, NotAuthorizedReason,
    REVOKED_REASON, authorise, identity_from_cert_header, identity_from_certificate,
    identity_from_headers,
};
use efgs_core::trust::{TrustAnchor, TrustAnchors};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use trust_support::{KeySpec, TempDir, vectors};

// ------------------------------------------------------------------------------ certificates

#[test]
fn identity_from_openssl_pem_and_der() {
    let dir = TempDir::new("idcert");
    dir.self_signed(
        "client",
        KeySpec::Rsa(2048),
        "/C=DK/O=Test Firma/CN=dk-backend",
        "-sha256",
    );
    dir.openssl(&[
        "x509",
        "-in",
        "client.pem",
        "-outform",
        "DER",
        "-out",
        "client.der",
    ]);
    let fp = dir.fingerprint("client.pem");

    let from_pem = identity_from_certificate(&dir.read("client.pem")).unwrap();
    assert_eq!(from_pem.thumbprint.as_str(), fp);
    assert_eq!(from_pem.country, "DK");

    let from_der = identity_from_certificate(&dir.read("client.der")).unwrap();
    assert_eq!(from_der, from_pem);

    // The same identity as the proxy headers would give (nginx: `$ssl_client_fingerprint` is
    // SHA-1, so proxies send SHA-256 themselves; the DN is `$ssl_client_s_dn`).
    let dn = String::from_utf8(dir.openssl(&[
        "x509",
        "-in",
        "client.pem",
        "-noout",
        "-subject",
        "-nameopt",
        "RFC2253",
    ]))
    .unwrap();
    let dn = dn.trim().trim_start_matches("subject=");
    let from_headers = identity_from_headers(Some(&fp.to_uppercase()), Some(dn)).unwrap();
    assert_eq!(from_headers, from_pem);
}

#[test]
fn identity_from_ec_certificate_with_several_countries() {
    let dir = TempDir::new("idmulti");
    dir.self_signed(
        "client",
        KeySpec::Ec("P-256"),
        "/C=FR/O=x/C=BE/CN=multi",
        "-sha256",
    );
    let id = identity_from_certificate(&dir.read("client.pem")).unwrap();
    assert_eq!(id.country, "FR");
}

#[test]
fn certificate_without_country_is_400() {
    let dir = TempDir::new("idnoc");
    dir.self_signed(
        "client",
        KeySpec::Ec("P-256"),
        "/O=Test/CN=no-country",
        "-sha256",
    );
    let err = identity_from_certificate(&dir.read("client.pem")).unwrap_err();
    assert!(matches!(err, IdentityError::MissingCountry));
    assert_eq!(err.kind(), IdentityErrorKind::BadRequest);
}

#[test]
fn unreadable_certificates() {
    for bad in [
        &b""[..],
        b"garbage",
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        b"\x30\x03\x02\x01\x01",
    ] {
        let err = identity_from_certificate(bad).unwrap_err();
        assert!(matches!(err, IdentityError::UnreadableCertificate));
        assert_eq!(err.kind(), IdentityErrorKind::Unauthenticated);
    }
}

#[test]
fn nginx_escaped_cert_header() {
    let v = vectors();
    let c = v.cert("auth_de_rsa");
    // nginx's $ssl_client_escaped_cert: everything but unreserved characters escaped.
    let escaped = utf8_percent_encode(&c.pem, NON_ALPHANUMERIC).to_string();
    assert!(escaped.contains("%2B") || escaped.contains("%2F"));
    let id = identity_from_cert_header(&escaped).unwrap();
    assert_eq!(id.thumbprint.as_str(), c.thumbprint);
    assert_eq!(id.country, "DE");

    // Only spaces and newlines escaped, '+' left literal: it stays Base64.
    let light = c.pem.replace(' ', "%20").replace('\n', "%0A");
    assert!(light.contains('+'));
    assert_eq!(identity_from_cert_header(&light).unwrap(), id);

    // A form encoder's '+' for the spaces of the BEGIN/END lines.
    let form = c.pem.replace(' ', "+").replace('\n', "%0A");
    assert_eq!(identity_from_cert_header(&form).unwrap(), id);

    for bad in ["", "%zz", "not a certificate", "%FF%FE"] {
        let err = identity_from_cert_header(bad).unwrap_err();
        assert!(matches!(err, IdentityError::UnreadableCertificate), "{bad}");
    }
}

// ------------------------------------------------------------------------------ authorise

fn anchors() -> TrustAnchors {
    TrustAnchors::single(TrustAnchor::from_pem(&vectors().trust_anchor_pem).unwrap())
}

fn reason(r: Result<(), IdentityError>) -> NotAuthorizedReason {
    match r {
        Err(IdentityError::NotAuthorized { reason }) => reason,
        other => panic!("expected NotAuthorized, got {other:?}"),
    }
}

#[test]
fn authorise_ok() {
    let v = vectors();
    let c = v.cert("auth_de_rsa");
    let id = identity_from_certificate(c.pem.as_bytes()).unwrap();
    authorise(&id, Some(&c.entry()), &anchors()).unwrap();
    // Via the Base64 header form too.
    let id =
        identity_from_headers(Some(&c.thumbprint_b64), Some("CN=auth-de,O=Test Org,C=DE")).unwrap();
    authorise(&id, Some(&c.entry()), &anchors()).unwrap();
}

#[test]
fn authorise_unknown() {
    let id = identity_from_headers(Some(&"ab".repeat(32)), Some("C=DE")).unwrap();
    let r = authorise(&id, None, &anchors());
    let err = r.as_ref().unwrap_err();
    assert_eq!(err.to_string(), NOT_AUTHORIZED_REASON);
    assert_eq!(err.kind(), IdentityErrorKind::Forbidden);
    assert_eq!(err.code(), "not-authorized");
    assert_eq!(reason(r), NotAuthorizedReason::UnknownThumbprint);
}

#[test]
fn authorise_wrong_type() {
    let v = vectors();
    let c = v.cert("sign_de_rsa");
    let id = identity_from_certificate(c.pem.as_bytes()).unwrap();
    assert_eq!(
        reason(authorise(&id, Some(&c.entry()), &anchors())),
        NotAuthorizedReason::WrongType
    );
}

#[test]
fn authorise_wrong_country() {
    let v = vectors();
    let c = v.cert("auth_de_rsa");
    let id = ClientIdentity {
        thumbprint: Thumbprint::parse_hex(&c.thumbprint).unwrap(),
        country: "NL".into(),
    };
    assert_eq!(
        reason(authorise(&id, Some(&c.entry()), &anchors())),
        NotAuthorizedReason::CountryMismatch
    );
}

#[test]
fn authorise_mismatched_thumbprint() {
    let v = vectors();
    let id = identity_from_certificate(v.cert("sign_de_ec").pem.as_bytes()).unwrap();
    assert_eq!(
        reason(authorise(
            &id,
            Some(&v.cert("auth_de_rsa").entry()),
            &anchors()
        )),
        NotAuthorizedReason::ThumbprintMismatch
    );
}

#[test]
fn authorise_revoked() {
    let v = vectors();
    let c = v.cert("auth_de_rsa");
    let id = identity_from_certificate(c.pem.as_bytes()).unwrap();
    let mut e = c.entry();
    e.revoked = true;
    let err = authorise(&id, Some(&e), &anchors()).unwrap_err();
    assert!(matches!(err, IdentityError::Revoked));
    assert_eq!(err.to_string(), REVOKED_REASON);
    assert_eq!(err.kind(), IdentityErrorKind::Forbidden);
    assert_eq!(err.code(), "certificate-revoked");
}

#[test]
fn authorise_tampered_entries_count_as_not_found() {
    let v = vectors();
    let c = v.cert("auth_de_rsa");
    let id = identity_from_certificate(c.pem.as_bytes()).unwrap();
    let anchors = anchors();

    // Swapped signature.
    let mut e = c.entry();
    e.signature = v.cert("sign_de_rsa").ta_signature.clone();
    assert_eq!(
        reason(authorise(&id, Some(&e), &anchors)),
        NotAuthorizedReason::IntegrityCheckFailed("signature-mismatch")
    );
    // ... even when also revoked: integrity comes first.
    e.revoked = true;
    assert_eq!(
        reason(authorise(&id, Some(&e), &anchors)),
        NotAuthorizedReason::IntegrityCheckFailed("signature-mismatch")
    );

    // Swapped PEM (thumbprint of the entry still the client's).
    let mut e = c.entry();
    e.pem = v.cert("sign_de_rsa").pem.clone();
    assert_eq!(
        reason(authorise(&id, Some(&e), &anchors)),
        NotAuthorizedReason::IntegrityCheckFailed("thumbprint-mismatch")
    );

    // Changed line endings.
    let mut e = c.entry();
    e.pem = e.pem.replace('\n', "\r\n");
    assert_eq!(
        reason(authorise(&id, Some(&e), &anchors)),
        NotAuthorizedReason::IntegrityCheckFailed("signature-mismatch")
    );

    // Invalid Base64 (a 500 in the reference).
    let mut e = c.entry();
    e.signature = "%%%".into();
    assert_eq!(
        reason(authorise(&id, Some(&e), &anchors)),
        NotAuthorizedReason::IntegrityCheckFailed("invalid-signature-encoding")
    );

    // Signed by another anchor.
    let dir = TempDir::new("authz");
    dir.self_signed("ta2", KeySpec::Rsa(2048), "/C=DE/CN=TA2", "-sha256");
    let other = TrustAnchors::single(TrustAnchor::from_pem(&dir.read_string("ta2.pem")).unwrap());
    assert_eq!(
        reason(authorise(&id, Some(&c.entry()), &other)),
        NotAuthorizedReason::IntegrityCheckFailed("signature-mismatch")
    );
}
