//! The batch3 CMS vectors (protocol §11.3): six OpenSSL-made signatures over the canonical
//! bytes of `batch3`, checked against their documented outcomes (also confirmed with
//! BouncyCastle 1.72).
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use efgs_core::batch_signature::{
    HashAlgorithm, SignatureError, SignaturePolicy, SignatureScheme, VerifiedSigner,
    ensure_signer_country, verify_detached, verify_detached_der,
};
use prost::Message as _;
use time::OffsetDateTime;
use time::macros::datetime;

mod vectors_support;

const NOW: OffsetDateTime = datetime!(2026-11-28 12:00:00 UTC);

struct Vectors {
    json: serde_json::Value,
    canonical: Vec<u8>,
    keys: Vec<efgs_core::DiagnosisKey>,
}

fn vectors() -> Vectors {
    let json = vectors_support::vectors_json();
    let canonical = vectors_support::read("generated/batch3.canonical.txt");
    let pb = vectors_support::read("generated/batch3.pb");
    let keys = efgs_core::DiagnosisKeyBatch::decode(pb.as_slice())
        .unwrap()
        .keys;
    assert_eq!(keys.len(), 3);
    Vectors {
        json,
        canonical,
        keys,
    }
}

impl Vectors {
    fn sig(&self, name: &str) -> &str {
        self.json["batch3"]["signatures"][name].as_str().unwrap()
    }
    fn thumbprint(&self, cert: &str) -> &str {
        self.json["certificates"][cert]["thumbprint"]
            .as_str()
            .unwrap()
    }
    fn cert_der(&self, cert: &str) -> Vec<u8> {
        let pem = self.json["certificates"][cert]["pem"].as_str().unwrap();
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap()
    }
    fn verify(&self, name: &str) -> Result<VerifiedSigner, SignatureError> {
        verify_detached(
            self.sig(name),
            &self.canonical,
            NOW,
            &SignaturePolicy::default(),
        )
    }
}

#[test]
fn every_signature_has_an_expectation() {
    let v = vectors();
    let sigs = v.json["batch3"]["signatures"].as_object().unwrap();
    let expected = v.json["batch3"]["expected"].as_object().unwrap();
    assert_eq!(sigs.len(), 6);
    let mut a: Vec<_> = sigs.keys().collect();
    let mut b: Vec<_> = expected.keys().collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

#[test]
fn sign_de_rsa_is_valid_and_returns_its_thumbprint() {
    let v = vectors();
    let s = v.verify("sign_de_rsa").unwrap();
    assert_eq!(s.thumbprint.as_str(), v.thumbprint("sign_de_rsa"));
    assert_eq!(s.certificate_der, v.cert_der("sign_de_rsa"));
    assert_eq!(s.country, "DE");
    assert!(s.signed_attributes);
    assert!(s.signing_time.is_some());
    assert_eq!(s.digest_algorithm, HashAlgorithm::Sha256);
    assert!(matches!(
        s.signature_scheme,
        SignatureScheme::RsaPkcs1v15 {
            hash: HashAlgorithm::Sha256,
            key_bits: 2048
        }
    ));
    assert_eq!(s.not_before, datetime!(2020-01-01 00:00:00 UTC));
    assert_eq!(s.not_after, datetime!(2120-01-01 00:00:00 UTC));
    ensure_signer_country(&v.keys, &s).unwrap();
}

#[test]
fn sign_de_ec_is_valid() {
    let v = vectors();
    let s = v.verify("sign_de_ec").unwrap();
    assert_eq!(s.thumbprint.as_str(), v.thumbprint("sign_de_ec"));
    assert_eq!(s.country, "DE");
    assert!(matches!(
        s.signature_scheme,
        SignatureScheme::Ecdsa {
            hash: HashAlgorithm::Sha256,
            ..
        }
    ));
    ensure_signer_country(&v.keys, &s).unwrap();
}

#[test]
fn sign_de_rsa_noattr_is_valid_without_signed_attributes() {
    let v = vectors();
    let s = v.verify("sign_de_rsa_noattr").unwrap();
    assert_eq!(s.thumbprint.as_str(), v.thumbprint("sign_de_rsa"));
    assert!(!s.signed_attributes);
    assert!(s.signing_time.is_none());
    ensure_signer_country(&v.keys, &s).unwrap();
}

#[test]
fn sign_nl_ec_verifies_but_fails_the_country_rule() {
    let v = vectors();
    let s = v.verify("sign_nl_ec").unwrap();
    assert_eq!(s.thumbprint.as_str(), v.thumbprint("sign_nl_ec"));
    assert_eq!(s.country, "NL");
    let err = ensure_signer_country(&v.keys, &s).unwrap_err();
    match &err {
        SignatureError::CountryMismatch {
            index,
            origin,
            certificate_country,
        } => {
            assert_eq!(*index, 0);
            assert_eq!(origin, "DE");
            assert_eq!(certificate_country, "NL");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(err.code(), "signature-country-mismatch");
    // An empty batch passes the country rule (§4.3).
    ensure_signer_country(&[], &s).unwrap();
}

#[test]
fn sign_de_ec_nocerts_has_no_signer_certificate() {
    let v = vectors();
    let err = v.verify("sign_de_ec_nocerts").unwrap_err();
    assert!(
        matches!(err, SignatureError::SignerCertificateMissing),
        "{err:?}"
    );
}

#[test]
fn sign_de_ec_wrong_content_is_a_digest_mismatch() {
    let v = vectors();
    let err = v.verify("sign_de_ec_wrong_content").unwrap_err();
    assert!(matches!(err, SignatureError::DigestMismatch), "{err:?}");
    // ... and it does verify over the bytes it was made for (the first key alone).
    let first = v.json["batch3"]["per_key_canonical"][0].as_str().unwrap();
    verify_detached(
        v.sig("sign_de_ec_wrong_content"),
        first.as_bytes(),
        NOW,
        &SignaturePolicy::default(),
    )
    .unwrap();
}

#[test]
fn vectors_fail_on_changed_content() {
    let v = vectors();
    for name in [
        "sign_de_rsa",
        "sign_de_ec",
        "sign_nl_ec",
        "sign_de_rsa_noattr",
    ] {
        for pos in [0, v.canonical.len() / 2, v.canonical.len() - 1] {
            let mut c = v.canonical.clone();
            c[pos] ^= 0x01;
            let err =
                verify_detached(v.sig(name), &c, NOW, &SignaturePolicy::default()).unwrap_err();
            let expect_digest = name != "sign_de_rsa_noattr";
            assert!(
                if expect_digest {
                    matches!(err, SignatureError::DigestMismatch)
                } else {
                    matches!(err, SignatureError::BadSignature)
                },
                "{name} at {pos}: {err:?}"
            );
        }
        // Subset of the batch (§12 item 54) and an appended byte.
        let err = verify_detached(
            v.sig(name),
            &v.canonical[..v.canonical.len() - 1],
            NOW,
            &SignaturePolicy::default(),
        );
        assert!(err.is_err(), "{name}");
    }
}

#[test]
fn vectors_respect_the_validity_window_strictly() {
    let v = vectors();
    let p = SignaturePolicy::default();
    let sig = v.sig("sign_de_ec");
    let nb = datetime!(2020-01-01 00:00:00 UTC);
    let na = datetime!(2120-01-01 00:00:00 UTC);
    for (now, ok) in [
        (nb, false),
        (nb + time::Duration::seconds(1), true),
        (na - time::Duration::seconds(1), true),
        (na, false),
    ] {
        let r = verify_detached(sig, &v.canonical, now, &p);
        assert_eq!(r.is_ok(), ok, "{now}: {r:?}");
    }
    assert!(matches!(
        verify_detached(sig, &v.canonical, nb, &p),
        Err(SignatureError::CertificateNotYetValid { .. })
    ));
    assert!(matches!(
        verify_detached(sig, &v.canonical, na, &p),
        Err(SignatureError::CertificateExpired { .. })
    ));
}

#[test]
fn base64_rules() {
    let v = vectors();
    let p = SignaturePolicy::default();
    let sig = v.sig("sign_de_ec");
    // Unpadded is fine.
    let unpadded = sig.trim_end_matches('=');
    assert_ne!(unpadded.len(), sig.len(), "vector should have padding");
    verify_detached(unpadded, &v.canonical, NOW, &p).unwrap();
    // Garbage around it (§12 item 53).
    let wrapped = format!("XYZ{sig}ABCD");
    let err = verify_detached(&wrapped, &v.canonical, NOW, &p).unwrap_err();
    assert!(
        matches!(
            err,
            SignatureError::Base64 { .. } | SignatureError::Parse { .. }
        ),
        "{err:?}"
    );
    // Whitespace, URL-safe alphabet and empty input are refused.
    let with_newline = format!("{}\n{}", &sig[..64], &sig[64..]);
    assert!(matches!(
        verify_detached(&with_newline, &v.canonical, NOW, &p),
        Err(SignatureError::Base64 { .. })
    ));
    let urlsafe = sig.replace('+', "-").replace('/', "_");
    if urlsafe != sig {
        assert!(matches!(
            verify_detached(&urlsafe, &v.canonical, NOW, &p),
            Err(SignatureError::Base64 { .. })
        ));
    }
    assert!(matches!(
        verify_detached("", &v.canonical, NOW, &p),
        Err(SignatureError::Empty)
    ));
    assert!(matches!(
        verify_detached("AAAA", &v.canonical, NOW, &p),
        Err(SignatureError::Parse { .. })
    ));
}

fn der_of(v: &Vectors, name: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(v.sig(name))
        .unwrap()
}

#[test]
fn trailing_bytes_and_truncation_are_refused() {
    let v = vectors();
    let p = SignaturePolicy::default();
    let der = der_of(&v, "sign_de_rsa");
    let mut longer = der.clone();
    longer.push(0);
    assert!(matches!(
        verify_detached_der(&longer, &v.canonical, NOW, &p),
        Err(SignatureError::Parse { .. })
    ));
    for cut in [1, 10, der.len() / 2, der.len() - 1] {
        assert!(
            matches!(
                verify_detached_der(&der[..cut], &v.canonical, NOW, &p),
                Err(SignatureError::Parse { .. })
            ),
            "cut at {cut}"
        );
    }
}

/// Re-encodes a vector with the `cms` crate after editing it.
fn edited(
    v: &Vectors,
    name: &str,
    edit: impl FnOnce(&mut cms::signed_data::SignedData),
) -> Vec<u8> {
    use der::{Decode, Encode};
    let ci = cms::content_info::ContentInfo::from_der(&der_of(v, name)).unwrap();
    let mut sd: cms::signed_data::SignedData = ci.content.decode_as().unwrap();
    edit(&mut sd);
    cms::content_info::ContentInfo {
        content_type: ci.content_type,
        content: der::Any::encode_from(&sd).unwrap(),
    }
    .to_der()
    .unwrap()
}

#[test]
fn no_signer_info_is_refused() {
    let v = vectors();
    let der = edited(&v, "sign_de_ec", |sd| {
        sd.signer_infos = cms::signed_data::SignerInfos::try_from(Vec::new()).unwrap();
    });
    let err =
        verify_detached_der(&der, &v.canonical, NOW, &SignaturePolicy::default()).unwrap_err();
    assert!(matches!(err, SignatureError::NoSignerInfo), "{err:?}");
}

#[test]
fn extra_certificates_are_ignored_and_the_matching_one_is_used() {
    use der::Decode;
    let v = vectors();
    // Put the NL and auth certificates next to the DE EC signer.
    let der = edited(&v, "sign_de_ec", |sd| {
        let mut certs: Vec<cms::cert::CertificateChoices> =
            sd.certificates.clone().unwrap().0.into_vec();
        for other in ["sign_nl_ec", "auth_de_rsa"] {
            certs.push(cms::cert::CertificateChoices::Certificate(
                x509_cert::Certificate::from_der(&v.cert_der(other)).unwrap(),
            ));
        }
        sd.certificates = Some(cms::signed_data::CertificateSet::try_from(certs).unwrap());
    });
    let s = verify_detached_der(&der, &v.canonical, NOW, &SignaturePolicy::default()).unwrap();
    assert_eq!(s.thumbprint.as_str(), v.thumbprint("sign_de_ec"));
}

#[test]
fn a_signer_certificate_that_is_not_the_signer_key_fails() {
    use der::Decode;
    let v = vectors();
    // Replace the embedded DE EC certificate by the NL one with the DE certificate's issuer and
    // serial: simplest is to swap the certificate and the SignerIdentifier together.
    let nl = x509_cert::Certificate::from_der(&v.cert_der("sign_nl_ec")).unwrap();
    let der = edited(&v, "sign_de_ec", |sd| {
        sd.certificates = Some(
            cms::signed_data::CertificateSet::try_from(vec![
                cms::cert::CertificateChoices::Certificate(nl.clone()),
            ])
            .unwrap(),
        );
        let mut infos = sd.signer_infos.0.clone().into_vec();
        infos[0].sid = cms::signed_data::SignerIdentifier::IssuerAndSerialNumber(
            cms::cert::IssuerAndSerialNumber {
                issuer: nl.tbs_certificate().issuer().clone(),
                serial_number: nl.tbs_certificate().serial_number().clone(),
            },
        );
        sd.signer_infos = cms::signed_data::SignerInfos::try_from(infos).unwrap();
    });
    let err =
        verify_detached_der(&der, &v.canonical, NOW, &SignaturePolicy::default()).unwrap_err();
    assert!(matches!(err, SignatureError::BadSignature), "{err:?}");
}

#[test]
fn a_manipulated_certificate_changes_the_thumbprint() {
    // §12 item 50: a certificate altered outside the signed key still verifies
    // cryptographically here, but no longer has the registered thumbprint.
    let v = vectors();
    let mut der = der_of(&v, "sign_de_ec");
    let cert = v.cert_der("sign_de_ec");
    let at = der
        .windows(cert.len())
        .position(|w| w == cert.as_slice())
        .unwrap();
    // The last byte of the certificate is inside its own signature value.
    der[at + cert.len() - 1] ^= 0x01;
    let s = verify_detached_der(&der, &v.canonical, NOW, &SignaturePolicy::default()).unwrap();
    assert_ne!(s.thumbprint.as_str(), v.thumbprint("sign_de_ec"));
    assert_eq!(
        s.thumbprint,
        efgs_core::cert::Thumbprint::of_der(&s.certificate_der)
    );
}

#[test]
fn error_codes_are_distinct_and_kebab_case() {
    let v = vectors();
    let mut codes = std::collections::BTreeSet::new();
    for name in ["sign_de_ec_nocerts", "sign_de_ec_wrong_content"] {
        let e = v.verify(name).unwrap_err();
        assert!(!e.to_string().is_empty());
        codes.insert(e.code());
    }
    assert_eq!(codes.len(), 2);
    for c in codes {
        assert!(c.chars().all(|c| c.is_ascii_lowercase() || c == '-'), "{c}");
    }
}
