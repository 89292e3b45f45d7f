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

use HashAlgorithm::{Sha256, Sha384, Sha512};
use base64::Engine as _;
use der::Decode as _;
use efgs_core::batch_signature::{
    BatchSigner, EcCurve, HashAlgorithm, SignatureError, SignaturePolicy, SignatureScheme,
    VerifiedSigner, verify_detached,
};
use efgs_core::cert::Thumbprint;
use time::{Duration, OffsetDateTime};

#[path = "../vectors_support/mod.rs"]
mod vectors_support;

mod accepted;
mod own_signer;
mod refused;

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
