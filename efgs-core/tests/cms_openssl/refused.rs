//! What the verifier refuses: validity, countries, algorithms, structures.

use super::*;

// ---------------------------------------------------------------------------------------------
// Rejections.

#[test]
fn expired_and_not_yet_valid_certificates() {
    let cred = p256();
    let content = content();
    let der = cms_sign(cred, &content, &[]);
    let (nb, na) = cred.validity();
    for now in [nb - Duration::days(1), nb - Duration::seconds(1), nb] {
        assert!(
            matches!(
                verify(&der, &content, now),
                Err(SignatureError::CertificateNotYetValid { not_before }) if not_before == nb
            ),
            "{now}"
        );
    }
    for now in [na, na + Duration::seconds(1), na + Duration::days(400)] {
        assert!(
            matches!(
                verify(&der, &content, now),
                Err(SignatureError::CertificateExpired { not_after }) if not_after == na
            ),
            "{now}"
        );
    }
    verify(&der, &content, nb + Duration::seconds(1)).unwrap();
    verify(&der, &content, na - Duration::seconds(1)).unwrap();
}

#[test]
fn subject_without_country_or_with_two() {
    let content = content();
    let none = self_signed(P256, "/O=Test Org/CN=no-country");
    let der = cms_sign(&none, &content, &[]);
    let err = verify(&der, &content, none.now()).unwrap_err();
    assert!(matches!(err, SignatureError::CountryMissing), "{err:?}");

    let two = self_signed(P256, "/C=DE/C=NL/O=Test Org/CN=two-countries");
    let der = cms_sign(&two, &content, &[]);
    match verify(&der, &content, two.now()).unwrap_err() {
        SignatureError::CountryAmbiguous { countries } => assert_eq!(countries, ["DE", "NL"]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn sha1_only_with_the_policy_switch() {
    let content = content();
    for (cred, extra) in [
        (rsa2048(), &["-md", "sha1"][..]),
        (rsa2048(), &["-md", "sha1", "-noattr"][..]),
        (p256(), &["-md", "sha1"][..]),
    ] {
        let der = cms_sign(cred, &content, extra);
        let err = verify(&der, &content, cred.now()).unwrap_err();
        assert!(
            matches!(err, SignatureError::Sha1Disabled),
            "{extra:?}: {err:?}"
        );
        let policy = SignaturePolicy {
            allow_sha1: true,
            ..SignaturePolicy::default()
        };
        let s = verify_detached(&b64(&der), &content, cred.now(), &policy).unwrap();
        assert_eq!(s.digest_algorithm, HashAlgorithm::Sha1);
        assert_eq!(s.signature_scheme.hash(), HashAlgorithm::Sha1);
        // ... and still checks the content.
        let mut c = content.clone();
        c[5] ^= 1;
        assert!(verify_detached(&b64(&der), &c, cred.now(), &policy).is_err());
    }
}

#[test]
fn rsa_1024_is_a_weak_key() {
    let cred = self_signed(&["-newkey", "rsa:1024"], "/C=DE/CN=rsa1024");
    let content = content();
    let der = cms_sign(&cred, &content, &[]);
    let err = verify(&der, &content, cred.now()).unwrap_err();
    assert!(
        matches!(
            err,
            SignatureError::WeakKey {
                bits: 1024,
                min_bits: 2048
            }
        ),
        "{err:?}"
    );
    let lax = SignaturePolicy {
        min_rsa_bits: 1024,
        ..SignaturePolicy::default()
    };
    verify_detached(&b64(&der), &content, cred.now(), &lax).unwrap();
}

#[test]
fn dsa_is_unsupported() {
    let t = Tmp::new();
    openssl(
        &t.0,
        &[
            "genpkey",
            "-genparam",
            "-algorithm",
            "DSA",
            "-pkeyopt",
            "dsa_paramgen_bits:2048",
            "-out",
            "p.pem",
        ],
    );
    openssl(
        &t.0,
        &[
            "req",
            "-x509",
            "-newkey",
            "dsa:p.pem",
            "-nodes",
            "-keyout",
            "k.pem",
            "-out",
            "c.pem",
            "-days",
            "30",
            "-subj",
            "/C=DE/CN=dsa",
        ],
    );
    let cred = read_cred(&t, "c.pem", "k.pem");
    let content = content();
    let der = cms_sign(&cred, &content, &[]);
    let err = verify(&der, &content, cred.now()).unwrap_err();
    assert!(
        matches!(err, SignatureError::UnsupportedAlgorithm { .. }),
        "{err:?}"
    );
}

#[test]
fn enveloped_data_is_not_signed_data() {
    let cred = rsa2048();
    let t = Tmp::new();
    cred.put(&t, "r");
    t.write("content.bin", content());
    openssl(
        &t.0,
        &[
            "cms",
            "-encrypt",
            "-binary",
            "-in",
            "content.bin",
            "-outform",
            "DER",
            "-out",
            "e.der",
            "r.pem",
        ],
    );
    let err = verify(&t.read("e.der"), &content(), cred.now()).unwrap_err();
    match err {
        SignatureError::NotSignedData { content_type } => {
            assert_eq!(content_type, "1.2.840.113549.1.7.3")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn signature_without_certificates_has_no_signer() {
    for cred in [rsa2048(), p256()] {
        let der = cms_sign(cred, &content(), &["-nocerts"]);
        let err = verify(&der, &content(), cred.now()).unwrap_err();
        assert!(
            matches!(err, SignatureError::SignerCertificateMissing),
            "{err:?}"
        );
    }
}

#[test]
fn garbage_wrapped_base64_is_refused() {
    let cred = p256();
    let der = cms_sign(cred, &content(), &[]);
    let good = b64(&der);
    verify_detached(&good, &content(), cred.now(), &SignaturePolicy::default()).unwrap();
    for bad in [
        format!("XYZ{good}ABCD"),
        format!("XYZ{good}"),
        format!("{good}ABCD"),
        format!(" {good}"),
        format!("{good}\n"),
        format!("{}!{}", &good[..10], &good[10..]),
    ] {
        assert!(
            verify_detached(&bad, &content(), cred.now(), &SignaturePolicy::default()).is_err(),
            "{bad}"
        );
    }
}
