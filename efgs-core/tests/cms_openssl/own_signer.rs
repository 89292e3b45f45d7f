//! Our `BatchSigner` output, checked by `openssl cms -verify` and by our verifier.

use super::*;

// ---------------------------------------------------------------------------------------------
// Our signer, checked by `openssl cms -verify` and by our verifier.

fn openssl_accepts(der: &[u8], content: &[u8]) -> bool {
    let t = Tmp::new();
    t.write("sig.der", der);
    t.write("content.bin", content);
    let out = run_openssl(
        &t.0,
        &[
            "cms",
            "-verify",
            "-binary",
            "-noverify",
            "-inform",
            "DER",
            "-in",
            "sig.der",
            "-content",
            "content.bin",
            "-purpose",
            "any",
            "-out",
            "out.bin",
        ],
    );
    out.status.success()
}

fn check_own_signer(cred: &Cred, expect: SignatureScheme) {
    let signer = BatchSigner::from_pem(&cred.cert_pem, &cred.key_pem).unwrap();
    assert_eq!(signer.thumbprint(), cred.thumbprint());
    assert_eq!(signer.certificate_der(), cred.cert_der.as_slice());
    let content = content();
    let now = cred.now();
    let b64sig = signer.sign(&content, now).unwrap();
    let der = base64::engine::general_purpose::STANDARD
        .decode(&b64sig)
        .unwrap();
    assert!(
        openssl_accepts(&der, &content),
        "openssl cms -verify refused our signature"
    );
    let mut other = content.clone();
    other[0] ^= 1;
    assert!(
        !openssl_accepts(&der, &other),
        "openssl accepted changed content"
    );

    let s = verify_detached(&b64sig, &content, now, &SignaturePolicy::default()).unwrap();
    assert_eq!(s.thumbprint, cred.thumbprint());
    assert_eq!(s.signature_scheme, expect);
    assert_eq!(s.signing_time, Some(now.replace_nanosecond(0).unwrap()));
    assert!(s.signed_attributes);

    // Deterministic (PKCS#1 v1.5 and RFC 6979 ECDSA).
    assert_eq!(signer.sign(&content, now).unwrap(), b64sig);
}

#[test]
fn own_signatures_verify_with_openssl_rsa() {
    check_own_signer(
        rsa2048(),
        SignatureScheme::RsaPkcs1v15 {
            hash: Sha256,
            key_bits: 2048,
        },
    );
    check_own_signer(
        rsa3072(),
        SignatureScheme::RsaPkcs1v15 {
            hash: Sha256,
            key_bits: 3072,
        },
    );
}

#[test]
fn own_signatures_verify_with_openssl_p256() {
    check_own_signer(
        p256(),
        SignatureScheme::Ecdsa {
            curve: EcCurve::P256,
            hash: Sha256,
        },
    );
}

#[test]
fn own_signatures_verify_with_openssl_p384() {
    check_own_signer(
        p384(),
        SignatureScheme::Ecdsa {
            curve: EcCurve::P384,
            hash: Sha384,
        },
    );
}

#[test]
fn signer_reads_pkcs1_sec1_and_der_keys() {
    let t = Tmp::new();
    rsa2048().put(&t, "rsa");
    p256().put(&t, "ec");
    openssl(
        &t.0,
        &["rsa", "-in", "rsa.key", "-traditional", "-out", "rsa1.key"],
    );
    openssl(&t.0, &["ec", "-in", "ec.key", "-out", "sec1.key"]);
    openssl(
        &t.0,
        &[
            "pkcs8", "-topk8", "-nocrypt", "-in", "ec.key", "-outform", "DER", "-out", "ec8.der",
        ],
    );
    let rsa1 = String::from_utf8(t.read("rsa1.key")).unwrap();
    assert!(rsa1.contains("BEGIN RSA PRIVATE KEY"));
    let sec1 = String::from_utf8(t.read("sec1.key")).unwrap();
    assert!(sec1.contains("BEGIN EC PRIVATE KEY"));
    let content = content();
    for (cred, key) in [(rsa2048(), &rsa1), (p256(), &sec1)] {
        let s = BatchSigner::from_pem(&cred.cert_pem, key).unwrap();
        let der = s.sign_der(&content, cred.now()).unwrap();
        assert!(openssl_accepts(&der, &content));
    }
    let s = BatchSigner::from_der(&p256().cert_der, &t.read("ec8.der")).unwrap();
    verify(
        &s.sign_der(&content, p256().now()).unwrap(),
        &content,
        p256().now(),
    )
    .unwrap();

    // `openssl ecparam -genkey` writes EC PARAMETERS before the key.
    openssl(
        &t.0,
        &[
            "ecparam",
            "-genkey",
            "-name",
            "secp384r1",
            "-out",
            "p384.key",
        ],
    );
    openssl(
        &t.0,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "p384.key",
            "-out",
            "p384.pem",
            "-days",
            "5",
            "-subj",
            "/C=DE/CN=ecparam",
        ],
    );
    let cred = read_cred(&t, "p384.pem", "p384.key");
    assert!(cred.key_pem.contains("EC PARAMETERS"));
    let s = BatchSigner::from_pem(&cred.cert_pem, &cred.key_pem).unwrap();
    let der = s.sign_der(&content, cred.now()).unwrap();
    assert!(openssl_accepts(&der, &content));
}

#[test]
fn signer_refuses_a_key_of_another_certificate() {
    for (cert, key) in [
        (rsa2048(), rsa3072()),
        (p256(), p384()),
        (p384(), p256()),
        (rsa2048(), p256()),
    ] {
        let err = BatchSigner::from_pem(&cert.cert_pem, &key.key_pem).unwrap_err();
        assert!(matches!(err, SignatureError::KeyMismatch), "{err:?}");
    }
    let err = BatchSigner::from_pem("no pem here", &p256().key_pem).unwrap_err();
    assert!(matches!(
        err,
        SignatureError::InvalidSignerInput {
            what: "certificate",
            ..
        }
    ));
    let err = BatchSigner::from_pem(&p256().cert_pem, &p256().cert_pem).unwrap_err();
    assert!(matches!(
        err,
        SignatureError::InvalidSignerInput {
            what: "private key",
            ..
        }
    ));
}

#[test]
fn signer_debug_output_has_no_key_material() {
    for cred in [rsa2048(), p256()] {
        let s = BatchSigner::from_pem(&cred.cert_pem, &cred.key_pem).unwrap();
        let dbg = format!("{s:?} {s:#?}");
        assert!(dbg.contains("redacted"), "{dbg}");
        assert!(dbg.contains(cred.thumbprint().as_str()), "{dbg}");
        for line in cred.key_pem.lines().filter(|l| !l.starts_with("-----")) {
            assert!(!dbg.contains(&line[..16]), "{dbg}");
        }
        let key_der = base64::engine::general_purpose::STANDARD
            .decode(
                cred.key_pem
                    .lines()
                    .filter(|l| !l.starts_with("-----"))
                    .collect::<String>(),
            )
            .unwrap();
        // Not even the hex of a chunk of the private key.
        let hex_chunk = hex::encode(&key_der[key_der.len() - 24..key_der.len() - 12]);
        assert!(!dbg.to_lowercase().contains(&hex_chunk), "{dbg}");
    }
}

// ---------------------------------------------------------------------------------------------
// Property: sign then verify, for random content.

mod property {
    use super::*;
    use proptest::prelude::*;

    fn signer() -> &'static BatchSigner {
        static S: OnceLock<BatchSigner> = OnceLock::new();
        S.get_or_init(|| BatchSigner::from_pem(&p256().cert_pem, &p256().key_pem).unwrap())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        #[test]
        fn sign_then_verify(content in proptest::collection::vec(any::<u8>(), 0..3000),
                            flip in any::<prop::sample::Index>()) {
            let now = p256().now();
            let sig = signer().sign(&content, now).unwrap();
            let s = verify_detached(&sig, &content, now, &SignaturePolicy::default()).unwrap();
            prop_assert_eq!(s.thumbprint, p256().thumbprint());
            if !content.is_empty() {
                let mut c = content.clone();
                c[flip.index(content.len())] ^= 0x01;
                prop_assert!(matches!(
                    verify_detached(&sig, &c, now, &SignaturePolicy::default()),
                    Err(SignatureError::DigestMismatch)
                ));
            }
        }
    }
}
