//! Signed-attribute edge cases, built with the signer's internals and a P-256 key made by
//! the OpenSSL CLI (which must be installed: the test fails otherwise).

use std::process::Command;
use std::sync::OnceLock;

use time::OffsetDateTime;

use super::ber::{der, der_cat, der_oid, tag};
use super::sign::attribute;
use super::*;
use crate::batch_signature::algorithms::oid;

const CONTENT: &[u8] =
    b"AAECAwQFBgcICQoLDA0ODw==.ACky4A==.AAAAkA==.f////w==..REU=.AAAAAQ==.////8g==.";

struct Fixture {
    signer: BatchSigner,
    now: OffsetDateTime,
    not_after: OffsetDateTime,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("efgs-cms-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "k.pem",
                "-out",
                "c.pem",
                "-days",
                "30",
                "-subj",
                "/C=DE/CN=unit",
            ])
            .current_dir(&dir)
            .output()
            .expect("the OpenSSL CLI (`openssl`) is required by these tests but could not be run");
        assert!(
            out.status.success(),
            "openssl req failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cert = std::fs::read_to_string(dir.join("c.pem")).unwrap();
        let key = std::fs::read_to_string(dir.join("k.pem")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let signer = BatchSigner::from_pem(&cert, &key).unwrap();
        // Learn the validity from a normal signature.
        let probe = verify_detached_der(
            &signer
                .sign_der(CONTENT, OffsetDateTime::UNIX_EPOCH)
                .unwrap(),
            CONTENT,
            OffsetDateTime::UNIX_EPOCH,
            &SignaturePolicy::default(),
        );
        let Err(SignatureError::CertificateNotYetValid { not_before }) = probe else {
            panic!("unexpected {probe:?}");
        };
        let now = not_before + time::Duration::hours(1);
        let not_after = verify_detached_der(
            &signer.sign_der(CONTENT, now).unwrap(),
            CONTENT,
            now,
            &SignaturePolicy::default(),
        )
        .unwrap()
        .not_after;
        Fixture {
            signer,
            now,
            not_after,
        }
    })
}

/// Builds a signature whose SignerInfo carries `sent` (tag [0], definite or BER indefinite)
/// while the signature covers the DER SET of `signed`.
fn build(sent: &[Vec<u8>], signed: &[Vec<u8>], ber_sent: bool) -> Vec<u8> {
    let f = fixture();
    let parts: Vec<&[u8]> = signed.iter().map(Vec::as_slice).collect();
    let signed_set = der_cat(tag::SET, &parts);
    let sent_parts: Vec<&[u8]> = sent.iter().map(Vec::as_slice).collect();
    let sent_bytes = if ber_sent {
        let mut v = vec![0xa0, 0x80];
        for p in &sent_parts {
            v.extend_from_slice(p);
        }
        v.extend_from_slice(&[0, 0]);
        v
    } else {
        der_cat(0xa0, &sent_parts)
    };
    f.signer.assemble(&signed_set, &sent_bytes).unwrap()
}

fn verify(der: &[u8]) -> Result<VerifiedSigner, SignatureError> {
    verify_detached_der(der, CONTENT, fixture().now, &SignaturePolicy::default())
}

fn standard() -> Vec<Vec<u8>> {
    let f = fixture();
    f.signer.standard_attributes(CONTENT, f.now).unwrap()
}

fn sorted(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort();
    v
}

fn protection(digest_alg: &[u8], sig_alg: Option<&[u8]>) -> Vec<u8> {
    let mut value = digest_alg.to_vec();
    if let Some(sig) = sig_alg {
        // [1] IMPLICIT AlgorithmIdentifier: the SEQUENCE contents under tag 0xA1.
        value.extend(der(0xa1, &sig[2..]));
    }
    attribute(&oid::CMS_ALGORITHM_PROTECTION, &der(tag::SEQUENCE, &value))
}

#[test]
fn baseline_sorted_der_verifies() {
    let s = verify(&build(&sorted(standard()), &sorted(standard()), false)).unwrap();
    assert_eq!(s.country, "DE");
    assert_eq!(
        s.signing_time,
        Some(fixture().now.replace_nanosecond(0).unwrap())
    );
}

#[test]
fn unsorted_attributes_signed_as_received_verify() {
    let a = standard();
    let order = vec![a[2].clone(), a[0].clone(), a[1].clone()];
    assert_ne!(order, sorted(a.clone()));
    verify(&build(&order, &order, false)).unwrap();
}

#[test]
fn unsorted_attributes_signed_in_der_order_verify() {
    let a = standard();
    let order = vec![a[2].clone(), a[0].clone(), a[1].clone()];
    verify(&build(&order, &sorted(a), false)).unwrap();
}

#[test]
fn attributes_signed_in_some_other_order_fail() {
    let a = standard();
    let sent = vec![a[2].clone(), a[0].clone(), a[1].clone()];
    let signed = vec![a[1].clone(), a[2].clone(), a[0].clone()];
    assert!(matches!(
        verify(&build(&sent, &signed, false)),
        Err(SignatureError::BadSignature)
    ));
}

#[test]
fn ber_indefinite_signed_attributes_are_re_encoded_to_der() {
    let a = standard();
    verify(&build(&sorted(a.clone()), &sorted(a.clone()), true)).unwrap();
    let unsorted = vec![a[2].clone(), a[1].clone(), a[0].clone()];
    verify(&build(&unsorted, &sorted(a.clone()), true)).unwrap();
    // Signing the BER bytes themselves is not what RFC 5652 asks for.
    let mut ber_set = vec![0x31, 0x80];
    for p in sorted(a.clone()) {
        ber_set.extend(p);
    }
    ber_set.extend([0, 0]);
    let mut sent = ber_set.clone();
    sent[0] = 0xa0;
    let der = fixture().signer.assemble(&ber_set, &sent).unwrap();
    assert!(matches!(verify(&der), Err(SignatureError::BadSignature)));
}

#[test]
fn algorithm_protection_is_tolerated_when_it_agrees() {
    let (digest_alg, sig_alg) = fixture().signer.algorithm_identifiers();
    let mut a = standard();
    a.push(protection(&digest_alg, Some(&sig_alg)));
    verify(&build(&sorted(a.clone()), &sorted(a), false)).unwrap();
    // Absent parameters and NULL are equivalent.
    let digest_null = der_cat(tag::SEQUENCE, &[&der_oid(&oid::SHA256), &[tag::NULL, 0]]);
    let mut a = standard();
    a.push(protection(&digest_null, Some(&sig_alg)));
    verify(&build(&sorted(a.clone()), &sorted(a), false)).unwrap();
}

#[test]
fn algorithm_protection_must_agree() {
    let (_, sig_alg) = fixture().signer.algorithm_identifiers();
    let sha384 = der(tag::SEQUENCE, &der_oid(&oid::SHA384));
    let mut a = standard();
    a.push(protection(&sha384, Some(&sig_alg)));
    assert!(matches!(
        verify(&build(&sorted(a.clone()), &sorted(a), false)),
        Err(SignatureError::AlgorithmProtectionMismatch)
    ));
    let (digest_alg, _) = fixture().signer.algorithm_identifiers();
    let mut a = standard();
    a.push(protection(&digest_alg, None));
    assert!(matches!(
        verify(&build(&sorted(a.clone()), &sorted(a), false)),
        Err(SignatureError::AlgorithmProtectionMismatch)
    ));
    let other_sig = der(tag::SEQUENCE, &der_oid(&oid::ECDSA_WITH_SHA512));
    let mut a = standard();
    a.push(protection(&digest_alg, Some(&other_sig)));
    assert!(matches!(
        verify(&build(&sorted(a.clone()), &sorted(a), false)),
        Err(SignatureError::AlgorithmProtectionMismatch)
    ));
}

#[test]
fn content_type_must_be_id_data_and_present() {
    let mut a = standard();
    a[0] = attribute(&oid::CONTENT_TYPE, &der_oid(&oid::ID_SIGNED_DATA));
    assert!(matches!(
        verify(&build(&sorted(a.clone()), &sorted(a), false)),
        Err(SignatureError::ContentTypeNotData { .. })
    ));
    let mut a = standard();
    a.remove(0);
    assert!(matches!(
        verify(&build(&sorted(a.clone()), &sorted(a), false)),
        Err(SignatureError::AttributeMissing {
            attribute: "content-type"
        })
    ));
}

#[test]
fn exactly_one_message_digest_is_required() {
    let mut a = standard();
    a.push(a[2].clone());
    assert!(matches!(
        verify(&build(&a, &a, false)),
        Err(SignatureError::AttributeInvalid {
            attribute: "message-digest",
            ..
        })
    ));
    let mut a = standard();
    a.remove(2);
    assert!(matches!(
        verify(&build(&sorted(a.clone()), &sorted(a), false)),
        Err(SignatureError::AttributeMissing {
            attribute: "message-digest"
        })
    ));
    // Two values in one attribute.
    let d = der(tag::OCTET_STRING, &HashAlgorithm::Sha256.digest(CONTENT));
    let mut a = standard();
    a[2] = attribute(&oid::MESSAGE_DIGEST, &[d.clone(), d].concat());
    assert!(matches!(
        verify(&build(&sorted(a.clone()), &sorted(a), false)),
        Err(SignatureError::AttributeInvalid {
            attribute: "message-digest",
            ..
        })
    ));
}

#[test]
fn signing_time_is_checked() {
    let f = fixture();
    let mut a = standard();
    a[1] = attribute(&oid::SIGNING_TIME, &der(tag::UTC_TIME, b"not a time"));
    assert!(matches!(
        verify(&build(&sorted(a.clone()), &sorted(a), false)),
        Err(SignatureError::AttributeInvalid {
            attribute: "signing-time",
            ..
        })
    ));
    let late = f.not_after + time::Duration::days(1);
    let der = f.signer.sign_der(CONTENT, late).unwrap();
    assert!(matches!(
        verify(&der),
        Err(SignatureError::SigningTimeOutsideValidity { signing_time }) if signing_time == late.replace_nanosecond(0).unwrap()
    ));
}

#[test]
fn unknown_signed_attributes_are_tolerated() {
    let mut a = standard();
    a.push(attribute(
        &const_oid::ObjectIdentifier::new_unwrap("1.2.3.4.5"),
        &der(0x0c, b"hello"),
    ));
    verify(&build(&sorted(a.clone()), &sorted(a), false)).unwrap();
}
