//! A PKI directory for runs against a gateway the simulation did not start
//! (`efgs-sim pki --out DIR`, then `efgs-sim run --gateway URL --pki DIR`).
//!
//! Layout:
//! - `trust-anchor.pem`: the operator's trust anchor (`trust.anchors` of the gateway);
//! - `trust-list/XX-auth.json`, `trust-list/XX-sign.json`: entries signed by the anchor, for
//!   `efgs-server trust-list import` or `trust.import_dir`;
//! - `sim-pki.json`: everything efgs-sim needs to act as the countries (certificates, private
//!   keys, thumbprints, DNs). Throw-away test keys: never use such a directory in production.

use std::collections::BTreeMap;
use std::path::Path;

use efgs_core::cert::Thumbprint;
use efgs_core::model::CertificateType;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::pki::{CountryCredentials, Pki};

/// Why a PKI directory could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiDirError {
    /// File access failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// `sim-pki.json` is not what efgs-sim wrote.
    #[error("sim-pki.json: {0}")]
    Format(String),
}

#[derive(Serialize, Deserialize)]
struct FileCountry {
    country: String,
    auth_cert_pem: String,
    auth_key_pem: String,
    auth_thumbprint: String,
    auth_dn: String,
    sign_cert_pem: String,
    sign_key_pem: String,
    sign_thumbprint: String,
    entries: Vec<efgs_core::trust::TrustListEntry>,
}

#[derive(Serialize, Deserialize)]
struct FilePki {
    anchor_pem: String,
    anchor_key_pem: String,
    created_at: i64,
    countries: Vec<FileCountry>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiDirError + '_ {
    move |source| PkiDirError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes `pki` into `dir` (see the module documentation).
pub fn write(pki: &Pki, dir: &Path) -> Result<(), PkiDirError> {
    let list = dir.join("trust-list");
    std::fs::create_dir_all(&list).map_err(io(&list))?;
    let anchor = dir.join("trust-anchor.pem");
    std::fs::write(&anchor, &pki.anchor_pem).map_err(io(&anchor))?;
    for (code, c) in &pki.countries {
        for e in &c.entries {
            let kind = match e.cert_type {
                CertificateType::Authentication => "auth",
                _ => "sign",
            };
            let p = list.join(format!("{code}-{kind}.json"));
            std::fs::write(&p, e.to_json()).map_err(io(&p))?;
        }
    }
    let file = FilePki {
        anchor_pem: pki.anchor_pem.clone(),
        anchor_key_pem: pki.anchor_key_pem.clone(),
        created_at: pki.created_at.unix_timestamp(),
        countries: pki
            .countries
            .values()
            .map(|c| FileCountry {
                country: c.country.clone(),
                auth_cert_pem: c.auth_cert_pem.clone(),
                auth_key_pem: c.auth_key_pem.clone(),
                auth_thumbprint: c.auth_thumbprint.as_str().to_owned(),
                auth_dn: c.auth_dn.clone(),
                sign_cert_pem: c.sign_cert_pem.clone(),
                sign_key_pem: c.sign_key_pem.clone(),
                sign_thumbprint: c.sign_thumbprint.as_str().to_owned(),
                entries: c.entries.clone(),
            })
            .collect(),
    };
    let p = dir.join("sim-pki.json");
    let text =
        serde_json::to_string_pretty(&file).map_err(|e| PkiDirError::Format(e.to_string()))?;
    std::fs::write(&p, text).map_err(io(&p))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).map_err(io(&p))?;
    }
    Ok(())
}

/// Reads a PKI written by [`write()`].
pub fn read(dir: &Path) -> Result<Pki, PkiDirError> {
    let p = dir.join("sim-pki.json");
    let text = std::fs::read_to_string(&p).map_err(io(&p))?;
    let file: FilePki =
        serde_json::from_str(&text).map_err(|e| PkiDirError::Format(e.to_string()))?;
    let thumb = |s: &str| {
        Thumbprint::parse_hex(s).ok_or_else(|| PkiDirError::Format(format!("thumbprint {s}")))
    };
    let mut countries = BTreeMap::new();
    for c in file.countries {
        let auth_cert_der = der_of(&c.auth_cert_pem)?;
        let auth_key_der = der_of(&c.auth_key_pem)?;
        countries.insert(
            c.country.clone(),
            CountryCredentials {
                auth_thumbprint: thumb(&c.auth_thumbprint)?,
                sign_thumbprint: thumb(&c.sign_thumbprint)?,
                country: c.country,
                auth_cert_pem: c.auth_cert_pem,
                auth_key_pem: c.auth_key_pem,
                auth_dn: c.auth_dn,
                auth_cert_der,
                auth_key_der,
                sign_cert_pem: c.sign_cert_pem,
                sign_key_pem: c.sign_key_pem,
                entries: c.entries,
            },
        );
    }
    Ok(Pki {
        anchor_pem: file.anchor_pem,
        anchor_key_pem: file.anchor_key_pem,
        created_at: OffsetDateTime::from_unix_timestamp(file.created_at)
            .map_err(|e| PkiDirError::Format(e.to_string()))?,
        countries,
    })
}

fn der_of(pem: &str) -> Result<Vec<u8>, PkiDirError> {
    use base64::Engine as _;
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|e| PkiDirError::Format(format!("PEM: {e}")))
}
