//! The verifier against an independent producer (the OpenSSL CLI, run at test time), and our
//! `BatchSigner` output against `openssl cms -verify`.
//!
//! The OpenSSL CLI is required: when it is missing these tests fail with a clear message,
//! they never skip.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use der::Decode as _;
use efgs_core::batch_signature::{
    BatchSigner, EcCurve, HashAlgorithm, SignatureError, SignaturePolicy, SignatureScheme,
    VerifiedSigner, verify_detached,
};
use efgs_core::cert::Thumbprint;
use time::{Duration, OffsetDateTime};

mod vectors_support;

// ---------------------------------------------------------------------------------------------
// OpenSSL plumbing

/// A temporary directory removed on drop.
struct Tmp(PathBuf);

impl Tmp {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "efgs-cms-openssl-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Tmp(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    fn write(&self, name: &str, data: impl AsRef<[u8]>) {
        std::fs::write(self.path(name), data).unwrap();
    }
    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run_openssl(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "these tests need the OpenSSL command-line tool (`openssl` on PATH, e.g. the \
                 Debian package `openssl`); running it failed: {e}"
            )
        })
}

/// Runs `openssl` and insists on success.
fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = run_openssl(dir, args);
    assert!(
        out.status.success(),
        "openssl {} failed:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A certificate with its private key, both PEM, and the certificate DER.
#[derive(Clone)]
struct Cred {
    cert_pem: String,
    key_pem: String,
    cert_der: Vec<u8>,
}

impl Cred {
    fn validity(&self) -> (OffsetDateTime, OffsetDateTime) {
        let c = x509_cert::Certificate::from_der(&self.cert_der).unwrap();
        let v = c.tbs_certificate().validity();
        let t = |t: x509_cert::time::Time| {
            OffsetDateTime::from_unix_timestamp(t.to_unix_duration().as_secs() as i64).unwrap()
        };
        (t(v.not_before), t(v.not_after))
    }
    /// A verification time safely inside the validity.
    fn now(&self) -> OffsetDateTime {
        self.validity().0 + Duration::hours(1)
    }
    fn thumbprint(&self) -> Thumbprint {
        Thumbprint::of_der(&self.cert_der)
    }
    fn put(&self, t: &Tmp, stem: &str) {
        t.write(&format!("{stem}.pem"), &self.cert_pem);
        t.write(&format!("{stem}.key"), &self.key_pem);
    }
}

fn read_cred(t: &Tmp, cert: &str, key: &str) -> Cred {
    let cert_der = openssl(&t.0, &["x509", "-in", cert, "-outform", "DER"]);
    Cred {
        cert_pem: String::from_utf8(t.read(cert)).unwrap(),
        key_pem: String::from_utf8(t.read(key)).unwrap(),
        cert_der,
    }
}

/// A self-signed certificate (`openssl req -x509`) with a fresh key.
fn self_signed(key_args: &[&str], subj: &str) -> Cred {
    let t = Tmp::new();
    let mut args = vec!["req", "-x509"];
    args.extend_from_slice(key_args);
    args.extend_from_slice(&[
        "-nodes", "-keyout", "k.pem", "-out", "c.pem", "-days", "30", "-subj", subj,
    ]);
    openssl(&t.0, &args);
    read_cred(&t, "c.pem", "k.pem")
}

const RSA2048: &[&str] = &["-newkey", "rsa:2048"];
const RSA3072: &[&str] = &["-newkey", "rsa:3072"];
const RSA4096: &[&str] = &["-newkey", "rsa:4096"];
const P256: &[&str] = &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];
const P384: &[&str] = &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"];

macro_rules! cached_cred {
    ($name:ident, $args:expr, $subj:expr) => {
        fn $name() -> &'static Cred {
            static C: OnceLock<Cred> = OnceLock::new();
            C.get_or_init(|| self_signed($args, $subj))
        }
    };
}

cached_cred!(rsa2048, RSA2048, "/C=DE/O=Test Org/CN=rsa2048");
cached_cred!(rsa3072, RSA3072, "/C=DE/O=Test Org/CN=rsa3072");
cached_cred!(rsa4096, RSA4096, "/C=DE/O=Test Org/CN=rsa4096");
cached_cred!(p256, P256, "/C=DE/O=Test Org/CN=p256");
cached_cred!(p384, P384, "/C=DE/O=Test Org/CN=p384");

/// Canonical batch bytes (protocol §4.1) of the generated 3-key vector.
fn content() -> Vec<u8> {
    vectors_support::read("generated/batch3.canonical.txt")
}

/// `openssl cms -sign -binary -outform DER -nosmimecap` plus `extra`.
fn cms_sign(cred: &Cred, content: &[u8], extra: &[&str]) -> Vec<u8> {
    let t = Tmp::new();
    cred.put(&t, "signer");
    t.write("content.bin", content);
    let mut args = vec![
        "cms",
        "-sign",
        "-binary",
        "-outform",
        "DER",
        "-nosmimecap",
        "-in",
        "content.bin",
        "-signer",
        "signer.pem",
        "-inkey",
        "signer.key",
        "-out",
        "sig.der",
    ];
    args.extend_from_slice(extra);
    openssl(&t.0, &args);
    t.read("sig.der")
}

fn b64(der: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(der)
}

fn verify(
    der: &[u8],
    content: &[u8],
    now: OffsetDateTime,
) -> Result<VerifiedSigner, SignatureError> {
    verify_detached(&b64(der), content, now, &SignaturePolicy::default())
}

// ---------------------------------------------------------------------------------------------
// An independent BER walker (test side) to find the signature value inside a SignedData.

/// (tag, content start, content end, next element) of the TLV at `pos`.
fn tlv_at(buf: &[u8], pos: usize) -> (u8, usize, usize, usize) {
    let tag = buf[pos];
    let mut p = pos + 1;
    let l = buf[p];
    p += 1;
    if l == 0x80 {
        let start = p;
        let mut q = p;
        while !(buf[q] == 0 && buf[q + 1] == 0) {
            q = tlv_at(buf, q).3;
        }
        (tag, start, q, q + 2)
    } else if l < 0x80 {
        (tag, p, p + l as usize, p + l as usize)
    } else {
        let n = (l & 0x7f) as usize;
        let len = buf[p..p + n]
            .iter()
            .fold(0usize, |a, b| a << 8 | *b as usize);
        p += n;
        (tag, p, p + len, p + len)
    }
}

fn kids(
    buf: &[u8],
    (_, start, end, _): (u8, usize, usize, usize),
) -> Vec<(u8, usize, usize, usize)> {
    let mut out = Vec::new();
    let mut p = start;
    while p < end {
        let t = tlv_at(buf, p);
        p = t.3;
        out.push(t);
    }
    out
}

/// Byte range of the first SignerInfo's signature value.
fn signature_value(der: &[u8]) -> std::ops::Range<usize> {
    let ci = tlv_at(der, 0);
    let explicit = kids(der, ci)[1];
    let sd = kids(der, explicit)[0];
    let infos = *kids(der, sd).last().unwrap();
    let si = kids(der, infos)[0];
    let sig = kids(der, si).into_iter().find(|t| t.0 == 0x04).unwrap();
    sig.1..sig.2
}

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

use HashAlgorithm::{Sha256, Sha384, Sha512};

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
