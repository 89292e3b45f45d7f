//! Shared helpers for the trust_* and identity_* integration tests: the generated vectors and
//! an OpenSSL CLI wrapper working in a private temporary directory.
#![allow(dead_code, clippy::unwrap_used, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use efgs_core::cert::Thumbprint;
use efgs_core::model::CertificateType;
use efgs_core::trust::TrustListEntry;

#[path = "../vectors_support/mod.rs"]
mod vectors_support;

/// One certificate of vectors.json.
#[derive(Clone, Debug)]
pub struct VectorCert {
    pub name: String,
    pub pem: String,
    pub thumbprint: String,
    pub thumbprint_b64: String,
    pub ta_signature: String,
}

pub struct Vectors {
    pub trust_anchor_pem: String,
    pub certs: Vec<VectorCert>,
}

pub fn vectors() -> Vectors {
    let v = vectors_support::vectors_json();
    let mut certs = Vec::new();
    for (name, c) in v["certificates"].as_object().unwrap() {
        let s = |k: &str| c[k].as_str().unwrap().to_owned();
        certs.push(VectorCert {
            name: name.clone(),
            pem: s("pem"),
            thumbprint: s("thumbprint"),
            thumbprint_b64: s("thumbprint_b64"),
            ta_signature: s("ta_signature"),
        });
    }
    assert_eq!(certs.len(), 4, "vectors.json should hold 4 certificates");
    Vectors {
        trust_anchor_pem: v["trust_anchor_pem"].as_str().unwrap().to_owned(),
        certs,
    }
}

impl Vectors {
    pub fn cert(&self, name: &str) -> &VectorCert {
        self.certs.iter().find(|c| c.name == name).unwrap()
    }
}

impl VectorCert {
    /// Country and type implied by the vector's name (`auth_de_rsa`, `sign_nl_ec`, ...).
    pub fn country_and_type(&self) -> (String, CertificateType) {
        let mut parts = self.name.split('_');
        let t = match parts.next().unwrap() {
            "auth" => CertificateType::Authentication,
            "sign" => CertificateType::Signing,
            other => panic!("unknown vector kind {other}"),
        };
        (parts.next().unwrap().to_uppercase(), t)
    }

    /// The trust-list entry the reference's tools would have written for this certificate.
    pub fn entry(&self) -> TrustListEntry {
        let (country, cert_type) = self.country_and_type();
        TrustListEntry {
            country,
            cert_type,
            pem: self.pem.clone(),
            signature: self.ta_signature.clone(),
            thumbprint: Thumbprint::parse_hex(&self.thumbprint).unwrap(),
            revoked: false,
        }
    }
}

/// A private temporary directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "efgs-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }

    pub fn read_string(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }

    pub fn write(&self, name: &str, data: impl AsRef<[u8]>) {
        std::fs::write(self.path(name), data).unwrap();
    }

    /// Runs `openssl` with `args` in this directory; panics with its stderr on failure.
    pub fn openssl(&self, args: &[&str]) -> Vec<u8> {
        let out = self.openssl_status(args);
        assert!(
            out.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Runs `openssl` and returns the whole output, whatever the exit status.
    pub fn openssl_status(&self, args: &[&str]) -> std::process::Output {
        Command::new("openssl")
            .args(args)
            .current_dir(&self.0)
            .output()
            .expect("the openssl CLI must be installed")
    }

    /// A self-signed certificate `<name>.pem` with key `<name>.key` (PKCS#8, unencrypted).
    /// `key` is e.g. `rsa:2048` or `ec` with `ec_paramgen_curve:P-256` via [`KeySpec`].
    pub fn self_signed(&self, name: &str, key: KeySpec, subject: &str, md: &str) {
        let keyout = format!("{name}.key");
        let out = format!("{name}.pem");
        let mut args = vec![
            "req", "-x509", "-nodes", "-days", "30", "-subj", subject, "-keyout", &keyout, "-out",
            &out, md,
        ];
        match key {
            KeySpec::Rsa(bits) => {
                args.push("-newkey");
                args.push(match bits {
                    2048 => "rsa:2048",
                    3072 => "rsa:3072",
                    1024 => "rsa:1024",
                    _ => panic!("unsupported size"),
                });
            }
            KeySpec::Ec(curve) => {
                args.extend(["-newkey", "ec", "-pkeyopt"]);
                args.push(match curve {
                    "P-256" => "ec_paramgen_curve:P-256",
                    "P-384" => "ec_paramgen_curve:P-384",
                    "P-521" => "ec_paramgen_curve:P-521",
                    _ => panic!("unsupported curve"),
                });
            }
        }
        self.openssl(&args);
    }

    /// SHA-256 fingerprint as the reference's tool computes it (lowercase, no colons).
    pub fn fingerprint(&self, pem_name: &str) -> String {
        let out = self.openssl(&["x509", "-in", pem_name, "-noout", "-fingerprint", "-sha256"]);
        let text = String::from_utf8(out).unwrap();
        let value = text.trim().split('=').nth(1).unwrap();
        value.replace(':', "").to_lowercase()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(Clone, Copy, Debug)]
pub enum KeySpec {
    Rsa(u32),
    Ec(&'static str),
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}
