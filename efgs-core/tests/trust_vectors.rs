//! Trust-list entries against the generated vectors (vectors.json): the reference's
//! `CertificateService` checks (protocol §4.4, §12 item 88) and the entry file format.
#![allow(clippy::unwrap_used)]

mod trust_support;

use efgs_core::cert::Thumbprint;
use efgs_core::model::CertificateType;
use efgs_core::trust::{TrustAnchor, TrustAnchors, TrustError, TrustListEntry, canonical_pem};
use time::macros::datetime;
use trust_support::vectors;

fn anchors() -> TrustAnchors {
    TrustAnchors::single(TrustAnchor::from_pem(&vectors().trust_anchor_pem).unwrap())
}

#[test]
fn anchor_is_sha256_with_rsa() {
    let a = TrustAnchor::from_pem(&vectors().trust_anchor_pem).unwrap();
    assert_eq!(a.algorithm_name(), "SHA256withRSA");
    assert_eq!(
        a.subject().to_string(),
        "CN=EFGS-TrustAnchor TEST,O=TrustAnchor Test Org,C=DE"
    );
    assert_eq!(a.not_after(), datetime!(2120-01-01 00:00 UTC));
}

#[test]
fn every_vector_certificate_verifies_and_thumbprints_match() {
    let v = vectors();
    let anchors = anchors();
    for c in &v.certs {
        let entry = c.entry();
        let verified = entry
            .verify(&anchors)
            .unwrap_or_else(|e| panic!("{}: {e}", c.name));
        assert_eq!(verified.thumbprint().as_str(), c.thumbprint, "{}", c.name);
        assert_eq!(Thumbprint::of_der(verified.der()).as_str(), c.thumbprint);
        // The Base64 thumbprint (auth header form) is the same digest.
        assert_eq!(
            efgs_core::identity::normalise_thumbprint(&c.thumbprint_b64)
                .unwrap()
                .as_str(),
            c.thumbprint
        );
        assert_eq!(verified.not_before(), datetime!(2020-01-01 00:00 UTC));
        assert_eq!(verified.not_after(), datetime!(2120-01-01 00:00 UTC));
        assert!(verified.is_valid_at(datetime!(2026-06-01 00:00 UTC)));
        assert!(!verified.is_valid_at(datetime!(2019-12-31 23:59:59 UTC)));
        assert!(verified.pem_is_canonical(), "{}", c.name);
        let (country, _) = c.country_and_type();
        assert!(
            verified
                .subject()
                .to_string()
                .contains(&format!("C={country}"))
        );
        verified.check_subject_country().unwrap();
        entry.verify_for_import(&anchors).unwrap();
    }
}

#[test]
fn swapped_pem_is_not_found() {
    let v = vectors();
    let mut e = v.cert("auth_de_rsa").entry();
    e.pem = v.cert("sign_de_rsa").pem.clone();
    let err = e.verify(&anchors()).unwrap_err();
    assert!(
        matches!(err, TrustError::ThumbprintMismatch { .. }),
        "{err:?}"
    );
    assert!(err.is_integrity_failure());
}

#[test]
fn swapped_thumbprint_is_not_found() {
    let v = vectors();
    let mut e = v.cert("sign_de_ec").entry();
    e.thumbprint = Thumbprint::parse_hex(&v.cert("sign_nl_ec").thumbprint).unwrap();
    let err = e.verify(&anchors()).unwrap_err();
    assert!(
        matches!(err, TrustError::ThumbprintMismatch { .. }),
        "{err:?}"
    );
    assert_eq!(err.code(), "thumbprint-mismatch");
}

#[test]
fn swapped_pem_and_thumbprint_still_fails_on_signature() {
    let v = vectors();
    let mut e = v.cert("auth_de_rsa").entry();
    let other = v.cert("sign_de_rsa");
    e.pem = other.pem.clone();
    e.thumbprint = Thumbprint::parse_hex(&other.thumbprint).unwrap();
    let err = e.verify(&anchors()).unwrap_err();
    assert!(matches!(err, TrustError::SignatureMismatch), "{err:?}");
}

#[test]
fn swapped_signature_is_not_found() {
    let v = vectors();
    let mut e = v.cert("auth_de_rsa").entry();
    e.signature = v.cert("sign_de_rsa").ta_signature.clone();
    let err = e.verify(&anchors()).unwrap_err();
    assert!(matches!(err, TrustError::SignatureMismatch), "{err:?}");
    assert!(err.is_integrity_failure());
    assert_eq!(err.code(), "signature-mismatch");
}

#[test]
fn changed_line_ending_is_not_found() {
    let v = vectors();
    let anchors = anchors();
    let c = v.cert("sign_de_ec");
    // CRLF everywhere: same certificate, same thumbprint, different signed bytes.
    let mut e = c.entry();
    e.pem = c.pem.replace('\n', "\r\n");
    let err = e.verify(&anchors).unwrap_err();
    assert!(matches!(err, TrustError::SignatureMismatch), "{err:?}");
    // A single extra trailing newline is enough.
    let mut e = c.entry();
    e.pem.push('\n');
    assert!(matches!(
        e.verify(&anchors),
        Err(TrustError::SignatureMismatch)
    ));
    // And without the trailing newline.
    let mut e = c.entry();
    e.pem.pop();
    assert!(matches!(
        e.verify(&anchors),
        Err(TrustError::SignatureMismatch)
    ));
}

#[test]
fn flipped_signature_bit_is_not_found() {
    use base64::Engine as _;
    let v = vectors();
    let mut e = v.cert("auth_de_rsa").entry();
    let mut sig = base64::engine::general_purpose::STANDARD
        .decode(&e.signature)
        .unwrap();
    sig[10] ^= 1;
    e.signature = base64::engine::general_purpose::STANDARD.encode(sig);
    assert!(matches!(
        e.verify(&anchors()),
        Err(TrustError::SignatureMismatch)
    ));
}

#[test]
fn empty_and_garbage_fields_are_not_found() {
    let v = vectors();
    let anchors = anchors();
    let base = v.cert("auth_de_rsa").entry();

    let mut e = base.clone();
    e.signature.clear();
    assert!(matches!(
        e.verify(&anchors),
        Err(TrustError::EmptySignature)
    ));

    let mut e = base.clone();
    e.pem.clear();
    assert!(matches!(
        e.verify(&anchors),
        Err(TrustError::EmptyCertificate)
    ));

    let mut e = base.clone();
    e.pem = "not a pem".into();
    assert!(matches!(
        e.verify(&anchors),
        Err(TrustError::NoPemCertificate)
    ));

    let mut e = base.clone();
    e.pem = "-----BEGIN CERTIFICATE-----\nAAECAw==\n-----END CERTIFICATE-----\n".into();
    assert!(matches!(
        e.verify(&anchors),
        Err(TrustError::InvalidCertificate(_))
    ));

    // The reference answered 500 for invalid Base64; for us it is an integrity failure.
    let mut e = base.clone();
    e.signature = "not*base64".into();
    let err = e.verify(&anchors).unwrap_err();
    assert!(
        matches!(err, TrustError::InvalidSignatureEncoding),
        "{err:?}"
    );
    assert!(err.is_integrity_failure());

    for e in [
        TrustError::EmptySignature,
        TrustError::EmptyCertificate,
        TrustError::NoPemCertificate,
        TrustError::SignatureMismatch,
        TrustError::InvalidSignatureEncoding,
    ] {
        assert!(e.is_integrity_failure());
    }
    assert!(!TrustError::NoTrustAnchor.is_integrity_failure());
    assert!(!TrustError::KeyMismatch.is_integrity_failure());
}

#[test]
fn first_certificate_block_is_the_one_checked() {
    // Reference: the first certificate object of the PEM is used; text around it is signed too.
    let v = vectors();
    let c = v.cert("auth_de_rsa");
    let mut e = c.entry();
    e.pem = format!("{}{}", c.pem, v.cert("sign_de_rsa").pem);
    // Thumbprint matches the first block, but the signed bytes changed.
    assert!(matches!(
        e.verify(&anchors()),
        Err(TrustError::SignatureMismatch)
    ));
}

#[test]
fn entry_with_a_foreign_anchor_fails_and_rotation_accepts_either() {
    let v = vectors();
    let real = TrustAnchor::from_pem(&v.trust_anchor_pem).unwrap();
    let dir = trust_support::TempDir::new("rotation");
    dir.self_signed(
        "other",
        trust_support::KeySpec::Rsa(2048),
        "/C=DE/CN=Other TA",
        "-sha256",
    );
    let other = TrustAnchor::from_pem(&dir.read_string("other.pem")).unwrap();
    let e = v.cert("sign_nl_ec").entry();
    assert!(matches!(
        e.verify(&TrustAnchors::single(other.clone())),
        Err(TrustError::SignatureMismatch)
    ));
    let both = TrustAnchors::new(vec![other, real.clone()]).unwrap();
    e.verify(&both).unwrap();
    let which = both.verify(e.pem.as_bytes(), &b64(&e.signature)).unwrap();
    assert_eq!(which.thumbprint(), real.thumbprint());
}

fn b64(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

#[test]
fn import_check_refuses_a_foreign_country() {
    let v = vectors();
    let anchors = anchors();
    let mut e = v.cert("auth_de_rsa").entry();
    e.country = "NL".into();
    // The reference's integrity check passes: the signature covers only the PEM.
    let verified = e.verify(&anchors).unwrap();
    let err = verified.check_subject_country().unwrap_err();
    match &err {
        TrustError::SubjectCountryMismatch { entry, subject } => {
            assert_eq!(entry, "NL");
            assert_eq!(subject, &vec!["DE".to_owned()]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.code(), "subject-country-mismatch");
    assert!(e.verify_for_import(&anchors).is_err());
}

#[test]
fn revoked_flag_is_not_part_of_the_integrity_check() {
    let v = vectors();
    let mut e = v.cert("auth_de_rsa").entry();
    e.revoked = true;
    assert!(e.verify(&anchors()).unwrap().revoked());
}

#[test]
fn serde_round_trip_and_field_names() {
    let v = vectors();
    let mut e = v.cert("sign_de_ec").entry();
    e.revoked = true;
    let json = e.to_json();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let obj = value.as_object().unwrap();
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "certificate",
            "country",
            "revoked",
            "signature",
            "thumbprint",
            "type"
        ]
    );
    assert_eq!(obj["type"], "SIGNING");
    assert_eq!(obj["country"], "DE");
    assert_eq!(
        obj["certificate"].as_str().unwrap(),
        v.cert("sign_de_ec").pem
    );
    assert_eq!(obj["thumbprint"], v.cert("sign_de_ec").thumbprint.as_str());
    assert_eq!(obj["revoked"], true);

    let back = TrustListEntry::parse_json(&json).unwrap();
    assert_eq!(back, vec![e.clone()]);
    // The exact PEM bytes survive the round trip, so the signature still verifies.
    back[0].verify(&anchors()).unwrap();

    // An array of entries.
    let all: Vec<TrustListEntry> = v.certs.iter().map(|c| c.entry()).collect();
    let json = serde_json::to_string(&all).unwrap();
    let back = TrustListEntry::parse_json(&json).unwrap();
    assert_eq!(back, all);
    for e in &back {
        e.verify(&anchors()).unwrap();
    }
}

#[test]
fn entry_file_parsing_rules() {
    let v = vectors();
    let c = v.cert("auth_de_rsa");
    let obj = |extra: &str, ty: &str, tp: &str| {
        format!(
            r#"{{"country":"DE","type":"{ty}","thumbprint":"{tp}","certificate":{},"signature":"{}"{extra}}}"#,
            serde_json::to_string(&c.pem).unwrap(),
            c.ta_signature
        )
    };
    // revoked defaults to false; thumbprint in upper case is stored lowercase.
    let e = TrustListEntry::parse_json(&obj("", "AUTHENTICATION", &c.thumbprint.to_uppercase()))
        .unwrap()
        .remove(0);
    assert!(!e.revoked);
    assert_eq!(e.cert_type, CertificateType::Authentication);
    assert_eq!(e.thumbprint.as_str(), c.thumbprint);
    e.verify(&anchors()).unwrap();
    // Unknown type names fail to load (§12 item 89).
    for bad in ["authentication", "SIGN", ""] {
        let err = TrustListEntry::parse_json(&obj("", bad, &c.thumbprint)).unwrap_err();
        assert_eq!(err.code(), "invalid-entry-json");
    }
    // Short or non-hex thumbprints.
    assert!(TrustListEntry::parse_json(&obj("", "SIGNING", "abcd")).is_err());
    assert!(TrustListEntry::parse_json(&obj("", "SIGNING", &"zz".repeat(32))).is_err());
    // Unknown fields are refused.
    assert!(TrustListEntry::parse_json(&obj(r#","host":null"#, "SIGNING", &c.thumbprint)).is_err());
    // Missing fields are refused.
    assert!(TrustListEntry::parse_json(r#"{"country":"DE"}"#).is_err());
    assert!(TrustListEntry::parse_json("not json").is_err());
    // CALLBACK is a valid type.
    let e = TrustListEntry::parse_json(&obj(r#","revoked":true"#, "CALLBACK", &c.thumbprint))
        .unwrap()
        .remove(0);
    assert_eq!(e.cert_type, CertificateType::Callback);
    assert!(e.revoked);
}

#[test]
fn canonical_pem_reproduces_the_vector_pems() {
    let v = vectors();
    let anchors = anchors();
    for c in &v.certs {
        let der = c.entry().verify(&anchors).unwrap().der().to_vec();
        assert_eq!(canonical_pem(&der), c.pem, "{}", c.name);
    }
}
