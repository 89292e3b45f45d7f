//! Signatures that must verify (and fail after tampering), including a CA-issued signer.

use super::*;

// ---------------------------------------------------------------------------------------------
// Variants that must verify, and fail after tampering.

fn check_variant(cred: &Cred, extra: &[&str]) -> VerifiedSigner {
    let content = content();
    let der = cms_sign(cred, &content, extra);
    if extra.contains(&"-stream") {
        assert_eq!(
            &der[..2],
            &[0x30, 0x80],
            "-stream should give BER indefinite length"
        );
    } else {
        assert_ne!(der[1], 0x80);
    }
    let now = cred.now();
    let s = verify(&der, &content, now).unwrap_or_else(|e| panic!("{extra:?}: {e:?}"));
    assert_eq!(s.thumbprint, cred.thumbprint());
    assert_eq!(s.certificate_der, cred.cert_der);
    assert_eq!(s.country, "DE");
    let attrs = !extra.contains(&"-noattr");
    assert_eq!(s.signed_attributes, attrs);
    assert_eq!(s.signing_time.is_some(), attrs);

    // One flipped byte of content.
    for pos in [0, content.len() / 3, content.len() - 1] {
        let mut c = content.clone();
        c[pos] ^= 0x20;
        let err = verify(&der, &c, now).unwrap_err();
        if attrs {
            assert!(
                matches!(err, SignatureError::DigestMismatch),
                "{extra:?}: {err:?}"
            );
        } else {
            assert!(
                matches!(err, SignatureError::BadSignature),
                "{extra:?}: {err:?}"
            );
        }
    }
    // One flipped byte inside the signature value.
    let range = signature_value(&der);
    assert!(range.len() >= 64, "{range:?}");
    for pos in [range.start + range.len() / 2, range.end - 1] {
        let mut d = der.clone();
        d[pos] ^= 0x01;
        let err = verify(&d, &content, now).unwrap_err();
        assert!(
            matches!(err, SignatureError::BadSignature),
            "{extra:?} at {pos}: {err:?}"
        );
    }
    s
}

fn pkcs1(s: &VerifiedSigner, hash: HashAlgorithm, bits: usize) {
    assert_eq!(
        s.signature_scheme,
        SignatureScheme::RsaPkcs1v15 {
            hash,
            key_bits: bits
        }
    );
}

fn pss(s: &VerifiedSigner, hash: HashAlgorithm, salt_len: usize, bits: usize) {
    assert_eq!(
        s.signature_scheme,
        SignatureScheme::RsaPss {
            hash,
            salt_len,
            key_bits: bits
        }
    );
}

fn ecdsa(s: &VerifiedSigner, curve: EcCurve, hash: HashAlgorithm) {
    assert_eq!(s.signature_scheme, SignatureScheme::Ecdsa { curve, hash });
}

const PSS: [&str; 2] = ["-keyopt", "rsa_padding_mode:pss"];

#[test]
fn rsa2048_pkcs1_sha256() {
    pkcs1(&check_variant(rsa2048(), &["-md", "sha256"]), Sha256, 2048);
}

#[test]
fn rsa2048_pkcs1_sha384_and_sha512() {
    pkcs1(&check_variant(rsa2048(), &["-md", "sha384"]), Sha384, 2048);
    pkcs1(&check_variant(rsa2048(), &["-md", "sha512"]), Sha512, 2048);
}

#[test]
fn rsa3072_pkcs1() {
    pkcs1(&check_variant(rsa3072(), &[]), Sha256, 3072);
}

#[test]
fn rsa4096_pkcs1() {
    pkcs1(&check_variant(rsa4096(), &[]), Sha256, 4096);
}

#[test]
fn rsa2048_pss_max_salt() {
    // OpenSSL 3 signs with the maximum salt: emLen - hLen - 2.
    pss(&check_variant(rsa2048(), &PSS), Sha256, 256 - 32 - 2, 2048);
}

#[test]
fn rsa3072_pss_max_salt() {
    pss(&check_variant(rsa3072(), &PSS), Sha256, 350, 3072);
}

#[test]
fn rsa4096_pss_sha512() {
    let s = check_variant(rsa4096(), &["-md", "sha512", PSS[0], PSS[1]]);
    pss(&s, Sha512, 512 - 64 - 2, 4096);
}

#[test]
fn rsa2048_pss_digest_length_salt() {
    // The salt length Python `cryptography` and BouncyCastle use.
    let s = check_variant(
        rsa2048(),
        &[PSS[0], PSS[1], "-keyopt", "rsa_pss_saltlen:digest"],
    );
    pss(&s, Sha256, 32, 2048);
}

#[test]
fn rsa2048_pss_without_signed_attributes() {
    let s = check_variant(rsa2048(), &["-noattr", PSS[0], PSS[1]]);
    pss(&s, Sha256, 222, 2048);
}

#[test]
fn p256_sha256_sha384_sha512() {
    ecdsa(&check_variant(p256(), &[]), EcCurve::P256, Sha256);
    ecdsa(
        &check_variant(p256(), &["-md", "sha384"]),
        EcCurve::P256,
        Sha384,
    );
    ecdsa(
        &check_variant(p256(), &["-md", "sha512"]),
        EcCurve::P256,
        Sha512,
    );
}

#[test]
fn p384_sha256_and_sha384() {
    ecdsa(&check_variant(p384(), &[]), EcCurve::P384, Sha256);
    ecdsa(
        &check_variant(p384(), &["-md", "sha384"]),
        EcCurve::P384,
        Sha384,
    );
}

#[test]
fn without_signed_attributes() {
    pkcs1(&check_variant(rsa2048(), &["-noattr"]), Sha256, 2048);
    ecdsa(&check_variant(p256(), &["-noattr"]), EcCurve::P256, Sha256);
    ecdsa(
        &check_variant(p384(), &["-noattr", "-md", "sha384"]),
        EcCurve::P384,
        Sha384,
    );
}

#[test]
fn subject_key_identifier_signer_id() {
    pkcs1(&check_variant(rsa2048(), &["-keyid"]), Sha256, 2048);
    ecdsa(&check_variant(p256(), &["-keyid"]), EcCurve::P256, Sha256);
    ecdsa(
        &check_variant(p384(), &["-keyid", "-noattr"]),
        EcCurve::P384,
        Sha256,
    );
}

#[test]
fn ber_indefinite_length_from_stream() {
    pkcs1(&check_variant(rsa2048(), &["-stream"]), Sha256, 2048);
    ecdsa(&check_variant(p256(), &["-stream"]), EcCurve::P256, Sha256);
    ecdsa(
        &check_variant(p384(), &["-stream", "-noattr", "-md", "sha384"]),
        EcCurve::P384,
        Sha384,
    );
    // (OpenSSL 3.0 cannot combine -stream with -keyopt, so no PSS here.)
    pkcs1(
        &check_variant(rsa3072(), &["-stream", "-keyid"]),
        Sha256,
        3072,
    );
}

// ---------------------------------------------------------------------------------------------
// A CA-issued signer: only the leaf counts, the CA certificate is just an extra certificate.

#[test]
fn ca_issued_signer_certificate() {
    let ca = rsa2048();
    let t = Tmp::new();
    ca.put(&t, "ca");
    openssl(
        &t.0,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/C=DE/O=Leaf Org/CN=leaf",
        ],
    );
    t.write(
        "ext.cnf",
        "subjectKeyIdentifier=hash\nbasicConstraints=CA:FALSE\n",
    );
    openssl(
        &t.0,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "20",
            "-extfile",
            "ext.cnf",
            "-out",
            "leaf.pem",
        ],
    );
    let leaf = read_cred(&t, "leaf.pem", "leaf.key");
    let ca_path = t.path("ca.pem");
    let ca_path = ca_path.to_str().unwrap();
    for extra in [
        vec![],
        vec!["-certfile", ca_path],
        vec!["-certfile", ca_path, "-keyid"],
        vec!["-certfile", ca_path, "-stream"],
    ] {
        let s = check_variant(&leaf, &extra);
        assert_eq!(s.thumbprint, leaf.thumbprint());
        assert_ne!(s.thumbprint, ca.thumbprint());
        ecdsa(&s, EcCurve::P256, Sha256);
    }
}
