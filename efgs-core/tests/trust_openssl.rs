//! Trust-anchor signatures cross-checked with the OpenSSL CLI at test time: what the
//! reference's `create_certificate_signature.sh` makes (`openssl dgst -sha256 -sign`) must
//! verify with us, and what `TrustAnchorSigner` makes must verify with `openssl dgst -verify`.
#![allow(clippy::unwrap_used)]

mod trust_support;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use efgs_core::cert::Thumbprint;
use efgs_core::model::CertificateType;
use efgs_core::trust::{
    DigestAlgorithm, TrustAnchor, TrustAnchorSigner, TrustAnchors, TrustError, TrustListEntry,
    thumbprint_starts_with_zero_byte,
};
use trust_support::{KeySpec, TempDir};

/// A directory with an anchor `ta.pem`/`ta.key`, its public key `ta_pub.pem`, and a client
/// certificate `client.pem` (C=DE).
fn setup(tag: &str, anchor: KeySpec, md: &str) -> TempDir {
    let dir = TempDir::new(tag);
    dir.self_signed(
        "ta",
        anchor,
        "/C=DE/O=TrustAnchor Dev Org/CN=EFGS-TrustAnchor DEV",
        md,
    );
    let pubkey = dir.openssl(&["x509", "-in", "ta.pem", "-pubkey", "-noout"]);
    dir.write("ta_pub.pem", pubkey);
    dir.self_signed(
        "client",
        KeySpec::Ec("P-256"),
        "/C=DE/O=Test Firma GmbH/CN=client",
        "-sha256",
    );
    dir
}

/// The row the reference's tool would write for `client.pem`.
fn tool_entry(dir: &TempDir, dgst: &str) -> TrustListEntry {
    dir.openssl(&[
        "dgst",
        dgst,
        "-sign",
        "ta.key",
        "-out",
        "sig.bin",
        "client.pem",
    ]);
    TrustListEntry {
        country: "DE".into(),
        cert_type: CertificateType::Authentication,
        pem: dir.read_string("client.pem"),
        signature: STANDARD.encode(dir.read("sig.bin")),
        thumbprint: Thumbprint::parse_hex(&dir.fingerprint("client.pem")).unwrap(),
        revoked: false,
    }
}

fn openssl_verifies(dir: &TempDir, dgst: &str, entry: &TrustListEntry) -> bool {
    dir.write("signed.pem", &entry.pem);
    dir.write("our_sig.bin", STANDARD.decode(&entry.signature).unwrap());
    let out = dir.openssl_status(&[
        "dgst",
        dgst,
        "-verify",
        "ta_pub.pem",
        "-signature",
        "our_sig.bin",
        "signed.pem",
    ]);
    out.status.success()
}

fn round_trip(tag: &str, anchor: KeySpec, md: &str, dgst: &str, expect: DigestAlgorithm) {
    let dir = setup(tag, anchor, md);
    let ta = TrustAnchor::from_pem(&dir.read_string("ta.pem")).unwrap();
    assert_eq!(ta.digest_algorithm(), expect);
    let anchors = TrustAnchors::single(ta);

    // OpenSSL signs, we verify.
    let entry = tool_entry(&dir, dgst);
    let verified = entry.verify(&anchors).unwrap();
    assert_eq!(verified.thumbprint(), &entry.thumbprint);
    verified.check_subject_country().unwrap();
    // ... and reject a modified text.
    let mut tampered = entry.clone();
    tampered.pem = tampered.pem.replace('\n', "\r\n");
    assert!(matches!(
        tampered.verify(&anchors),
        Err(TrustError::SignatureMismatch)
    ));

    // We sign, OpenSSL verifies.
    let signer =
        TrustAnchorSigner::from_pem(&dir.read_string("ta.pem"), &dir.read_string("ta.key"))
            .unwrap();
    let ours = signer
        .sign_entry(
            &dir.read_string("client.pem"),
            "DE",
            CertificateType::Authentication,
        )
        .unwrap();
    assert_eq!(ours.thumbprint, entry.thumbprint);
    assert_eq!(ours.pem, entry.pem, "OpenSSL's PEM is already canonical");
    assert!(!ours.revoked);
    assert!(
        openssl_verifies(&dir, dgst, &ours),
        "openssl rejected our signature"
    );
    ours.verify(&anchors).unwrap();
    // OpenSSL does reject a wrong signature (the check above can fail).
    let mut wrong = ours.clone();
    wrong.pem.push('\n');
    assert!(!openssl_verifies(&dir, dgst, &wrong));
}

#[test]
fn rsa_anchor_sha256_both_ways() {
    round_trip(
        "rsa256",
        KeySpec::Rsa(2048),
        "-sha256",
        "-sha256",
        DigestAlgorithm::Sha256,
    );
}

#[test]
fn p256_anchor_sha256_both_ways() {
    round_trip(
        "p256",
        KeySpec::Ec("P-256"),
        "-sha256",
        "-sha256",
        DigestAlgorithm::Sha256,
    );
}

#[test]
fn p384_anchor_sha384_both_ways() {
    round_trip(
        "p384",
        KeySpec::Ec("P-384"),
        "-sha384",
        "-sha384",
        DigestAlgorithm::Sha384,
    );
}

#[test]
fn rsa_anchor_sha512_both_ways() {
    round_trip(
        "rsa512",
        KeySpec::Rsa(3072),
        "-sha512",
        "-sha512",
        DigestAlgorithm::Sha512,
    );
}

#[test]
fn hash_follows_the_anchor_certificate_not_the_signer() {
    // A SHA-384 anchor does not accept a SHA-256 signature (Java's getSigAlgName rule).
    let dir = setup("mismatch", KeySpec::Rsa(2048), "-sha384");
    let anchors = TrustAnchors::single(TrustAnchor::from_pem(&dir.read_string("ta.pem")).unwrap());
    let entry = tool_entry(&dir, "-sha256");
    assert!(matches!(
        entry.verify(&anchors),
        Err(TrustError::SignatureMismatch)
    ));
    let entry = tool_entry(&dir, "-sha384");
    entry.verify(&anchors).unwrap();
}

#[test]
fn private_key_formats() {
    let dir = setup("keyfmt", KeySpec::Rsa(2048), "-sha256");
    let cert = dir.read_string("ta.pem");
    // PKCS#8 (OpenSSL 3 default) and PKCS#1.
    let pkcs8 = dir.read_string("ta.key");
    assert!(pkcs8.starts_with("-----BEGIN PRIVATE KEY-----"));
    let pkcs1 = String::from_utf8(dir.openssl(&["rsa", "-in", "ta.key", "-traditional"])).unwrap();
    assert!(pkcs1.contains("-----BEGIN RSA PRIVATE KEY-----"));
    let client = dir.read_string("client.pem");
    let a = TrustAnchorSigner::from_pem(&cert, &pkcs8)
        .unwrap()
        .sign_entry(&client, "DE", CertificateType::Signing)
        .unwrap();
    let b = TrustAnchorSigner::from_pem(&cert, &pkcs1)
        .unwrap()
        .sign_entry(&client, "DE", CertificateType::Signing)
        .unwrap();
    // PKCS#1 v1.5 is deterministic.
    assert_eq!(a.signature, b.signature);
    assert!(openssl_verifies(&dir, "-sha256", &b));

    // Encrypted keys are refused with a clear error.
    let enc = String::from_utf8(dir.openssl(&[
        "pkey",
        "-in",
        "ta.key",
        "-aes256",
        "-passout",
        "pass:secret",
    ]))
    .unwrap();
    assert!(matches!(
        TrustAnchorSigner::from_pem(&cert, &enc),
        Err(TrustError::EncryptedPrivateKey)
    ));
    // A key that is not the anchor's.
    assert!(matches!(
        TrustAnchorSigner::from_pem(&cert, &dir.read_string("client.key")),
        Err(TrustError::KeyMismatch)
    ));
    assert!(matches!(
        TrustAnchorSigner::from_pem(&cert, "garbage"),
        Err(TrustError::InvalidPrivateKey { .. })
    ));
}

#[test]
fn sec1_ec_keys_with_parameters_block() {
    let dir = TempDir::new("sec1");
    dir.openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-out",
        "ta.key",
    ]);
    let key = dir.read_string("ta.key");
    assert!(key.starts_with("-----BEGIN EC PARAMETERS-----"));
    assert!(key.contains("-----BEGIN EC PRIVATE KEY-----"));
    dir.openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        "ta.key",
        "-days",
        "30",
        "-subj",
        "/C=DE/CN=TA",
        "-sha256",
        "-out",
        "ta.pem",
    ]);
    dir.write(
        "ta_pub.pem",
        dir.openssl(&["x509", "-in", "ta.pem", "-pubkey", "-noout"]),
    );
    dir.self_signed(
        "client",
        KeySpec::Rsa(2048),
        "/C=FR/O=Test/CN=client-fr",
        "-sha256",
    );
    let signer = TrustAnchorSigner::from_pem(&dir.read_string("ta.pem"), &key).unwrap();
    let entry = signer
        .sign_entry(
            &dir.read_string("client.pem"),
            "FR",
            CertificateType::Callback,
        )
        .unwrap();
    assert!(openssl_verifies(&dir, "-sha256", &entry));
    entry
        .verify(&TrustAnchors::single(signer.anchor().clone()))
        .unwrap();
}

#[test]
fn sign_entry_checks_country_and_canonicalises() {
    let dir = setup("canon", KeySpec::Ec("P-256"), "-sha256");
    let signer =
        TrustAnchorSigner::from_pem(&dir.read_string("ta.pem"), &dir.read_string("ta.key"))
            .unwrap();
    let anchors = TrustAnchors::single(signer.anchor().clone());
    let client = dir.read_string("client.pem");

    // Wrong country: refused.
    let err = signer
        .sign_entry(&client, "NL", CertificateType::Authentication)
        .unwrap_err();
    assert!(matches!(err, TrustError::SubjectCountryMismatch { .. }));

    // CRLF input with a private key after it: only the canonical certificate is signed.
    let messy = format!(
        "{}{}",
        client.replace('\n', "\r\n"),
        dir.read_string("client.key")
    );
    let e = signer
        .sign_entry(&messy, "DE", CertificateType::Authentication)
        .unwrap();
    assert_eq!(e.pem, client);
    assert!(!e.pem.contains("PRIVATE"));
    assert!(e.verify(&anchors).unwrap().pem_is_canonical());

    // The exact variant signs the text as given.
    let crlf = client.replace('\n', "\r\n");
    let e = signer
        .sign_pem_exact(&crlf, "DE", CertificateType::Authentication)
        .unwrap();
    assert_eq!(e.pem, crlf);
    let v = e.verify(&anchors).unwrap();
    assert!(!v.pem_is_canonical());
    assert!(openssl_verifies(&dir, "-sha256", &e));
}

#[test]
fn unsupported_anchors_are_refused() {
    let dir = TempDir::new("weak");
    dir.self_signed("rsa1024", KeySpec::Rsa(1024), "/C=DE/CN=weak", "-sha256");
    assert!(matches!(
        TrustAnchor::from_pem(&dir.read_string("rsa1024.pem")),
        Err(TrustError::WeakAnchorKey { bits: 1024 })
    ));
    dir.self_signed("p521", KeySpec::Ec("P-521"), "/C=DE/CN=p521", "-sha256");
    assert!(matches!(
        TrustAnchor::from_pem(&dir.read_string("p521.pem")),
        Err(TrustError::UnsupportedAnchorKey { .. })
    ));
    dir.self_signed("sha1", KeySpec::Rsa(2048), "/C=DE/CN=sha1", "-sha1");
    let err = TrustAnchor::from_pem(&dir.read_string("sha1.pem")).unwrap_err();
    assert!(
        matches!(err, TrustError::UnsupportedAnchorDigest { .. }),
        "{err:?}"
    );
    assert_eq!(err.code(), "unsupported-anchor-digest");
}

#[test]
fn anchor_bundle_holds_several_anchors() {
    let dir = TempDir::new("bundle");
    dir.self_signed("a", KeySpec::Rsa(2048), "/C=DE/CN=A", "-sha256");
    dir.self_signed("b", KeySpec::Ec("P-256"), "/C=DE/CN=B", "-sha256");
    let bundle = format!("{}\n{}", dir.read_string("a.pem"), dir.read_string("b.pem"));
    let anchors = TrustAnchors::from_pem_bundle(&bundle).unwrap();
    assert_eq!(anchors.anchors().len(), 2);
    assert_eq!(anchors.anchors()[1].algorithm_name(), "SHA256withECDSA");
    // An entry signed by the second anchor verifies against the bundle.
    dir.self_signed("client", KeySpec::Ec("P-256"), "/C=DE/CN=c", "-sha256");
    let signer =
        TrustAnchorSigner::from_pem(&dir.read_string("b.pem"), &dir.read_string("b.key")).unwrap();
    let e = signer
        .sign_entry(
            &dir.read_string("client.pem"),
            "DE",
            CertificateType::Signing,
        )
        .unwrap();
    e.verify(&anchors).unwrap();
    assert!(matches!(
        TrustAnchors::from_pem_bundle("nothing"),
        Err(TrustError::NoPemCertificate)
    ));
}

#[test]
fn zero_byte_thumbprint_warning_matches_openssl_fingerprint() {
    let dir = setup("fp", KeySpec::Ec("P-256"), "-sha256");
    let fp = dir.fingerprint("client.pem");
    let t = Thumbprint::parse_hex(&fp).unwrap();
    assert_eq!(thumbprint_starts_with_zero_byte(&t), fp.starts_with("00"));
}
