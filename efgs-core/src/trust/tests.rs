use super::*;
#[test]
fn canonical_pem_wraps_at_64() {
    let der = vec![0u8; 100];
    let pem = canonical_pem(&der);
    let lines: Vec<&str> = pem.lines().collect();
    assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
    assert_eq!(lines[1].len(), 64);
    assert_eq!(lines[2].len(), 64);
    assert_eq!(lines[3].len(), 136 - 128);
    assert_eq!(lines[4], "-----END CERTIFICATE-----");
    assert!(pem.ends_with("-----\n"));
    assert_eq!(first_certificate_der(&pem).unwrap(), der);
}

#[test]
fn pem_scanner_is_lenient_about_layout_and_skips_other_blocks() {
    let text = "junk\r\n-----BEGIN EC PARAMETERS-----\r\nBggqhkjOPQMBBw==\r\n-----END EC PARAMETERS-----\r\n\
                -----BEGIN CERTIFICATE-----\r\nAAEC\r\nAw==\r\n-----END CERTIFICATE-----\r\n";
    assert_eq!(first_certificate_der(text).unwrap(), vec![0, 1, 2, 3]);
    assert!(matches!(
        first_certificate_der("no pem here"),
        Err(TrustError::NoPemCertificate)
    ));
    assert!(matches!(
        first_certificate_der("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n"),
        Err(TrustError::NoPemCertificate)
    ));
}

#[test]
fn digest_from_signature_algorithm() {
    assert_eq!(
        DigestAlgorithm::from_signature_algorithm(&rfc5912::SHA_256_WITH_RSA_ENCRYPTION).unwrap(),
        DigestAlgorithm::Sha256
    );
    assert_eq!(
        DigestAlgorithm::from_signature_algorithm(&rfc5912::ECDSA_WITH_SHA_384).unwrap(),
        DigestAlgorithm::Sha384
    );
    assert_eq!(
        DigestAlgorithm::from_signature_algorithm(&rfc5912::SHA_512_WITH_RSA_ENCRYPTION).unwrap(),
        DigestAlgorithm::Sha512
    );
    assert_eq!(
        DigestAlgorithm::from_signature_algorithm(&rfc5912::RSA_ENCRYPTION).unwrap(),
        DigestAlgorithm::Sha256
    );
    assert!(
        DigestAlgorithm::from_signature_algorithm(&rfc5912::SHA_1_WITH_RSA_ENCRYPTION).is_err()
    );
    assert!(DigestAlgorithm::from_signature_algorithm(&ECDSA_WITH_SHA_1).is_err());
}

#[test]
fn zero_byte_warning() {
    let zero = Thumbprint::parse_hex(&format!("00{}", "ab".repeat(31))).unwrap();
    let nibble = Thumbprint::parse_hex(&format!("0a{}", "ab".repeat(31))).unwrap();
    assert!(thumbprint_starts_with_zero_byte(&zero));
    assert!(!thumbprint_starts_with_zero_byte(&nibble));
}

#[test]
fn empty_anchor_list_is_refused() {
    assert!(matches!(
        TrustAnchors::new(Vec::new()),
        Err(TrustError::NoTrustAnchor)
    ));
}
