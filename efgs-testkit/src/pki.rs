//! A throw-away PKI for demos and tests, generated in pure Rust (rcgen with ring; no OpenSSL).
//!
//! [`Pki::generate`] creates a trust anchor (a self-signed ECDSA P-256 certificate) and, per
//! country, an AUTHENTICATION and a SIGNING certificate (self-signed P-256, subject
//! `C=<country>, O=efgs-testkit <country>, CN=<country> <purpose>`), each with a trust-list
//! entry signed by the anchor through [`TrustAnchorSigner`], exactly as an operator would
//! onboard them. Certificates are valid from one day before `now` to two years after it.
//!
//! [`CertSpec`] makes other certificates for negative tests (expired, not yet valid, without a
//! country, unknown to the trust list), and [`Pki::tls_server`] a server certificate for the
//! gateway's own TLS endpoint.

use std::collections::BTreeMap;

use efgs_core::cert::Thumbprint;
use efgs_core::model::CertificateType;
use efgs_core::store::TrustEntry;
use efgs_core::trust::{TrustAnchorSigner, TrustAnchors, TrustError, TrustListEntry};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use time::{Duration, OffsetDateTime};

/// Why a certificate or trust-list entry could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// rcgen refused the parameters or failed to generate a key.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// The trust anchor could not sign an entry.
    #[error("trust-list entry: {0}")]
    Trust(#[from] TrustError),
    /// The system random source failed.
    #[error("random source: {0}")]
    Random(String),
    /// A country code is not two ASCII letters.
    #[error("country code {0:?} is not two ASCII letters")]
    BadCountry(String),
}

impl PkiError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            PkiError::Generate(_) => "pki-generate",
            PkiError::Trust(_) => "pki-trust",
            PkiError::Random(_) => "pki-random",
            PkiError::BadCountry(_) => "pki-bad-country",
        }
    }
}

/// A generated certificate with its private key.
#[derive(Clone)]
pub struct GeneratedCert {
    /// The certificate, PEM (`CERTIFICATE`).
    pub cert_pem: String,
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// The private key, PKCS#8 PEM (`PRIVATE KEY`).
    pub key_pem: String,
    /// The private key, PKCS#8 DER.
    pub key_der: Vec<u8>,
    /// SHA-256 of the certificate DER.
    pub thumbprint: Thumbprint,
}

impl std::fmt::Debug for GeneratedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedCert")
            .field("thumbprint", &self.thumbprint)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Parameters of a certificate made by [`CertSpec::generate`].
#[derive(Clone, Debug)]
pub struct CertSpec {
    /// Subject `C` (none when `None`).
    pub country: Option<String>,
    /// Subject `O` (none when `None`).
    pub organization: Option<String>,
    /// Subject `CN`.
    pub common_name: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// Subject alternative names (DNS names or IP literals).
    pub subject_alt_names: Vec<String>,
    /// Whether the certificate is a CA (basic constraints `cA`).
    pub ca: bool,
    /// Add the TLS client-authentication extended key usage.
    pub client_auth: bool,
    /// Add the TLS server-authentication extended key usage.
    pub server_auth: bool,
}

impl CertSpec {
    /// A self-signed end-entity certificate for `country` with common name `cn`, valid from
    /// one day before `now` to two years after it.
    pub fn new(country: Option<&str>, cn: &str, now: OffsetDateTime) -> Self {
        CertSpec {
            country: country.map(str::to_owned),
            organization: country.map(|c| format!("efgs-testkit {c}")),
            common_name: cn.to_owned(),
            not_before: now - Duration::days(1),
            not_after: now + Duration::days(730),
            subject_alt_names: Vec::new(),
            ca: false,
            client_auth: false,
            server_auth: false,
        }
    }

    /// With another validity window.
    pub fn validity(mut self, not_before: OffsetDateTime, not_after: OffsetDateTime) -> Self {
        self.not_before = not_before;
        self.not_after = not_after;
        self
    }

    /// The subject DN as the proxy header would carry it: `C=..,O=..,CN=..` (the parts that
    /// are present, in this order).
    pub fn dn_header(&self) -> String {
        let mut parts = Vec::new();
        if let Some(c) = &self.country {
            parts.push(format!("C={c}"));
        }
        if let Some(o) = &self.organization {
            parts.push(format!("O={o}"));
        }
        parts.push(format!("CN={}", self.common_name));
        parts.join(",")
    }

    fn params(&self) -> Result<CertificateParams, PkiError> {
        let mut params = CertificateParams::new(self.subject_alt_names.clone())?;
        let mut dn = DistinguishedName::new();
        if let Some(c) = &self.country {
            dn.push(DnType::CountryName, c.as_str());
        }
        if let Some(o) = &self.organization {
            dn.push(DnType::OrganizationName, o.as_str());
        }
        dn.push(DnType::CommonName, self.common_name.as_str());
        params.distinguished_name = dn;
        params.not_before = whole_seconds(self.not_before);
        params.not_after = whole_seconds(self.not_after);
        params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
        if self.ca {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
        } else {
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        }
        if self.client_auth {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        if self.server_auth {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        Ok(params)
    }

    /// Generates a fresh P-256 key and a self-signed certificate.
    pub fn generate(&self) -> Result<GeneratedCert, PkiError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let cert = self.params()?.self_signed(&key)?;
        Ok(finish(cert.der().to_vec(), &key))
    }

    /// Generates a fresh P-256 key and a certificate issued by `issuer` (which must have been
    /// generated from `issuer_spec`).
    pub fn generate_signed_by(
        &self,
        issuer_spec: &CertSpec,
        issuer: &GeneratedCert,
    ) -> Result<GeneratedCert, PkiError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let issuer_key = KeyPair::from_pem(&issuer.key_pem)?;
        let issuer = Issuer::new(issuer_spec.params()?, issuer_key);
        let cert = self.params()?.signed_by(&key, &issuer)?;
        Ok(finish(cert.der().to_vec(), &key))
    }
}

fn finish(cert_der: Vec<u8>, key: &KeyPair) -> GeneratedCert {
    GeneratedCert {
        cert_pem: pem_encode("CERTIFICATE", &cert_der),
        thumbprint: Thumbprint::of_der(&cert_der),
        cert_der,
        key_pem: key.serialize_pem(),
        key_der: key.serialize_der(),
    }
}

/// PEM with 64-column Base64 and LF line endings.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn whole_seconds(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}

fn random_serial() -> Result<[u8; 16], PkiError> {
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial).map_err(|e| PkiError::Random(e.to_string()))?;
    // Positive and without a leading zero byte (a DER INTEGER of exactly 16 bytes).
    serial[0] = (serial[0] & 0x7f) | 0x10;
    Ok(serial)
}

/// One country's certificates, keys and trust-list entries.
#[derive(Clone)]
pub struct CountryCredentials {
    /// Two-letter country code.
    pub country: String,
    /// The AUTHENTICATION (TLS client) certificate, PEM.
    pub auth_cert_pem: String,
    /// Its private key, PKCS#8 PEM.
    pub auth_key_pem: String,
    /// Its thumbprint (what the proxy sends as `X-SSL-Client-SHA256`).
    pub auth_thumbprint: Thumbprint,
    /// Its subject DN as the proxy sends it in `X-SSL-Client-DN` (`C=..,O=..,CN=..`).
    pub auth_dn: String,
    /// The AUTHENTICATION certificate, DER.
    pub auth_cert_der: Vec<u8>,
    /// Its private key, PKCS#8 DER.
    pub auth_key_der: Vec<u8>,
    /// The SIGNING (batch signature) certificate, PEM.
    pub sign_cert_pem: String,
    /// Its private key, PKCS#8 PEM.
    pub sign_key_pem: String,
    /// Its thumbprint.
    pub sign_thumbprint: Thumbprint,
    /// The trust-list entries: AUTHENTICATION first, then SIGNING.
    pub entries: Vec<TrustListEntry>,
}

impl std::fmt::Debug for CountryCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountryCredentials")
            .field("country", &self.country)
            .field("auth_thumbprint", &self.auth_thumbprint)
            .field("sign_thumbprint", &self.sign_thumbprint)
            .finish_non_exhaustive()
    }
}

impl CountryCredentials {
    /// The trust-list entry of the given type.
    pub fn entry(&self, cert_type: CertificateType) -> Option<&TrustListEntry> {
        self.entries.iter().find(|e| e.cert_type == cert_type)
    }
}

/// A trust anchor and the credentials of a set of countries.
#[derive(Clone)]
pub struct Pki {
    /// The trust anchor certificate, PEM.
    pub anchor_pem: String,
    /// The trust anchor's private key, PKCS#8 PEM.
    pub anchor_key_pem: String,
    /// When the PKI was made (validity windows are relative to it).
    pub created_at: OffsetDateTime,
    /// Per-country credentials, by country code.
    pub countries: BTreeMap<String, CountryCredentials>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("countries", &self.countries.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn check_country(country: &str) -> Result<(), PkiError> {
    if country.len() == 2 && country.bytes().all(|b| b.is_ascii_alphabetic()) {
        Ok(())
    } else {
        Err(PkiError::BadCountry(country.to_owned()))
    }
}

impl Pki {
    /// A new trust anchor and credentials for `countries`, valid from `now − 1 day` to
    /// `now + 2 years`.
    pub fn generate<I, S>(countries: I, now: OffsetDateTime) -> Result<Pki, PkiError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut spec = CertSpec::new(None, "efgs-testkit trust anchor", now);
        spec.organization = Some("efgs-testkit operator".to_owned());
        spec.ca = true;
        let anchor = spec.generate()?;
        let mut pki = Pki {
            anchor_pem: anchor.cert_pem,
            anchor_key_pem: anchor.key_pem,
            created_at: now,
            countries: BTreeMap::new(),
        };
        for c in countries {
            pki.add_country(c.as_ref())?;
        }
        Ok(pki)
    }

    /// The operator's signer for trust-list entries.
    pub fn signer(&self) -> Result<TrustAnchorSigner, PkiError> {
        Ok(TrustAnchorSigner::from_pem(
            &self.anchor_pem,
            &self.anchor_key_pem,
        )?)
    }

    /// The gateway's trust anchors (the anchor certificate only).
    pub fn anchors(&self) -> Result<TrustAnchors, PkiError> {
        Ok(TrustAnchors::from_pem_bundle(&self.anchor_pem)?)
    }

    /// Generates (or replaces) the credentials of `country`.
    pub fn add_country(&mut self, country: &str) -> Result<&CountryCredentials, PkiError> {
        check_country(country)?;
        let signer = self.signer()?;
        let now = self.created_at;
        let auth_spec = CertSpec {
            client_auth: true,
            ..CertSpec::new(Some(country), &format!("{country} national backend"), now)
        };
        let auth = auth_spec.generate()?;
        let sign_spec = CertSpec::new(Some(country), &format!("{country} batch signing"), now);
        let sign = sign_spec.generate()?;
        let entries = vec![
            signer.sign_entry(&auth.cert_pem, country, CertificateType::Authentication)?,
            signer.sign_entry(&sign.cert_pem, country, CertificateType::Signing)?,
        ];
        let creds = CountryCredentials {
            country: country.to_owned(),
            auth_cert_pem: auth.cert_pem,
            auth_key_pem: auth.key_pem,
            auth_thumbprint: auth.thumbprint,
            auth_dn: auth_spec.dn_header(),
            auth_cert_der: auth.cert_der,
            auth_key_der: auth.key_der,
            sign_cert_pem: sign.cert_pem,
            sign_key_pem: sign.key_pem,
            sign_thumbprint: sign.thumbprint,
            entries,
        };
        self.countries.insert(country.to_owned(), creds);
        self.countries
            .get(country)
            .ok_or_else(|| PkiError::BadCountry(country.to_owned()))
    }

    /// The credentials of `country`.
    pub fn country(&self, country: &str) -> Option<&CountryCredentials> {
        self.countries.get(country)
    }

    /// Every trust-list entry, country by country.
    pub fn entries(&self) -> impl Iterator<Item = &TrustListEntry> {
        self.countries.values().flat_map(|c| c.entries.iter())
    }

    /// Signs a trust-list entry for an arbitrary certificate (for tests that onboard extra
    /// certificates).
    pub fn sign_entry(
        &self,
        cert_pem: &str,
        country: &str,
        cert_type: CertificateType,
    ) -> Result<TrustListEntry, PkiError> {
        Ok(self.signer()?.sign_entry(cert_pem, country, cert_type)?)
    }

    /// A TLS server identity for the gateway: a CA (returned first) and a leaf certificate
    /// for `localhost` and `127.0.0.1` issued by it. Clients trust the CA.
    pub fn tls_server(&self) -> Result<(GeneratedCert, GeneratedCert), PkiError> {
        let now = self.created_at;
        let ca_spec = CertSpec {
            ca: true,
            ..CertSpec::new(None, "efgs-testkit TLS CA", now)
        };
        let ca = ca_spec.generate()?;
        let leaf_spec = CertSpec {
            subject_alt_names: vec!["localhost".to_owned(), "127.0.0.1".to_owned()],
            server_auth: true,
            ..CertSpec::new(None, "efgs-testkit gateway", now)
        };
        let leaf = leaf_spec.generate_signed_by(&ca_spec, &ca)?;
        Ok((ca, leaf))
    }
}

/// The store row for a trust-list entry.
pub fn trust_entry(entry: &TrustListEntry, created_at: OffsetDateTime) -> TrustEntry {
    TrustEntry {
        thumbprint: entry.thumbprint.clone(),
        country: entry.country.clone(),
        cert_type: entry.cert_type,
        pem: entry.pem.clone(),
        signature: entry.signature.clone(),
        revoked: entry.revoked,
        created_at,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use efgs_core::batch_signature::{BatchSigner, SignaturePolicy, verify_detached};
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-28 10:00 UTC);

    #[test]
    fn entries_verify_against_the_anchor_and_name_their_country() {
        let pki = Pki::generate(["DE", "FR"], NOW).unwrap();
        let anchors = pki.anchors().unwrap();
        assert_eq!(pki.entries().count(), 4);
        for (country, creds) in &pki.countries {
            assert_eq!(creds.entries.len(), 2);
            for e in &creds.entries {
                let v = e.verify_for_import(&anchors).unwrap();
                assert_eq!(v.country(), country);
                assert!(v.is_valid_at(NOW));
                assert!(!v.is_valid_at(NOW + Duration::days(731)));
                assert!(!v.is_valid_at(NOW - Duration::days(2)));
            }
            assert_eq!(
                creds
                    .entry(CertificateType::Authentication)
                    .unwrap()
                    .thumbprint,
                creds.auth_thumbprint
            );
            assert_eq!(
                creds.entry(CertificateType::Signing).unwrap().thumbprint,
                creds.sign_thumbprint
            );
            assert_eq!(
                creds.auth_dn,
                format!("C={country},O=efgs-testkit {country},CN={country} national backend")
            );
        }
        // An anchor of another PKI does not vouch for these entries.
        let other = Pki::generate(["DE"], NOW).unwrap();
        let e = &pki.country("DE").unwrap().entries[0];
        assert!(e.verify(&other.anchors().unwrap()).is_err());
    }

    #[test]
    fn signing_credentials_sign_verifiable_batches() {
        let pki = Pki::generate(["NL"], NOW).unwrap();
        let nl = pki.country("NL").unwrap();
        let signer = BatchSigner::from_pem(&nl.sign_cert_pem, &nl.sign_key_pem).unwrap();
        assert_eq!(signer.thumbprint(), nl.sign_thumbprint);
        let sig = signer.sign(b"abc.", NOW).unwrap();
        let v = verify_detached(&sig, b"abc.", NOW, &SignaturePolicy::default()).unwrap();
        assert_eq!(v.country, "NL");
        assert_eq!(v.thumbprint, nl.sign_thumbprint);
        assert!(verify_detached(&sig, b"abd.", NOW, &SignaturePolicy::default()).is_err());
    }

    #[test]
    fn bad_country_codes_are_refused() {
        assert!(matches!(
            Pki::generate(["DEU"], NOW),
            Err(PkiError::BadCountry(_))
        ));
    }

    #[test]
    fn tls_leaf_is_issued_by_the_ca() {
        let pki = Pki::generate(Vec::<&str>::new(), NOW).unwrap();
        let (ca, leaf) = pki.tls_server().unwrap();
        use der::Decode as _;
        let ca_cert = x509_cert::Certificate::from_der(&ca.cert_der).unwrap();
        let leaf_cert = x509_cert::Certificate::from_der(&leaf.cert_der).unwrap();
        assert_eq!(
            leaf_cert.tbs_certificate().issuer(),
            ca_cert.tbs_certificate().subject()
        );
        assert_ne!(ca.thumbprint, leaf.thumbprint);
    }
}
