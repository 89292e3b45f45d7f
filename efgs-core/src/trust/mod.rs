//! The trust list: certificates the operator vouches for, signed by a trust anchor.
//!
//! Every certificate the gateway honours (a national backend's AUTHENTICATION, SIGNING or
//! CALLBACK certificate) is a [`TrustListEntry`]: the exact PEM text, its SHA-256 thumbprint,
//! the owning country, the type, a revoked flag and a Base64 signature by a trust anchor over
//! the PEM text's bytes (protocol §4.4, §10). The signature lets the gateway notice rows that
//! were written into its database by anybody but the operator: an entry whose integrity check
//! fails is treated exactly as if it did not exist.
//!
//! # Trust anchors
//!
//! A [`TrustAnchor`] is a certificate (normally self-signed) whose public key signs entries. It
//! verifies with the anchor's own key type (RSA PKCS#1 v1.5 or ECDSA P-256/P-384 with a DER
//! signature) and the hash named by the anchor certificate's `signatureAlgorithm`
//! (`sha256WithRSAEncryption` and `ecdsa-with-SHA256` give SHA-256, `…SHA384` SHA-384,
//! `…SHA512` SHA-512, anything else SHA-256; SHA-1 is refused). That is exactly what
//! `openssl dgst -sha256 -sign ta.key -out sig.bin client.pem` produces for a SHA-256 anchor,
//! and what the reference's `create_certificate_signature.sh` stores. [`TrustAnchors`] holds
//! one or more anchors so that an anchor can be rotated: an entry verifies if any anchor
//! verifies it.
//!
//! # Entry files
//!
//! The operator signs entries offline ([`TrustAnchorSigner`]) and imports them as JSON, one
//! object per entry or an array of them ([`TrustListEntry::parse_json`]):
//!
//! ```json
//! {
//!   "country": "DE",
//!   "type": "AUTHENTICATION",
//!   "thumbprint": "98b6066b9afcdea8f929e4dc85239eae125fb09191e12e423171c8f879ca6bce",
//!   "certificate": "-----BEGIN CERTIFICATE-----\nMIID…\n-----END CERTIFICATE-----\n",
//!   "signature": "WRzCDljc2ngx…",
//!   "revoked": false
//! }
//! ```
//!
//! | field | meaning |
//! |---|---|
//! | `country` | owning country, as in the certificate subject's `C` (two letters) |
//! | `type` | `AUTHENTICATION`, `SIGNING` or `CALLBACK` (exact spelling) |
//! | `thumbprint` | SHA-256 of the certificate's DER, 64 hex characters (stored lowercase) |
//! | `certificate` | the PEM text, **byte for byte as signed** (line endings matter) |
//! | `signature` | Base64 of the trust-anchor signature over the bytes of `certificate` |
//! | `revoked` | optional, default `false`; not covered by the signature |
//!
//! Unknown fields are refused, so a typo cannot silently drop information.
//!
//! # Subject country
//!
//! The reference never compares an entry's `country` with the certificate's subject. Lookups
//! are by (thumbprint, country, type) with the country taken from the client's DN or the
//! signing certificate, so a mismatched entry can never match and is merely useless.
//! [`TrustListEntry::verify`] therefore keeps the reference's integrity rules only, and
//! [`VerifiedEntry::check_subject_country`] is a separate, stricter check (the subject must
//! carry exactly one `C`, equal to the entry's country). [`TrustListEntry::verify_for_import`]
//! runs both and is what an import should use; [`TrustAnchorSigner::sign_entry`] refuses to
//! sign a mismatched entry.

use std::fmt;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use const_oid::ObjectIdentifier;
use const_oid::db::rfc5912;
use der::{Decode as _, Encode as _};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use x509_cert::Certificate;
use x509_cert::name::Name;

use crate::cert::{Thumbprint, countries_in};
use crate::model::CertificateType;

/// Standard Base64 alphabet, padding optional on input, written with padding.
const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// `ecdsa-with-SHA1` (not in const-oid's database).
const ECDSA_WITH_SHA_1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.1");

/// Smallest RSA trust-anchor modulus accepted (decisions item 4).
pub const MIN_RSA_BITS: usize = 2048;

/// Errors of this concern.
///
/// Two families: *integrity* failures of an entry ([`TrustError::is_integrity_failure`]),
/// which callers treat as "no such entry" (protocol §4.4), and configuration errors about
/// anchors, keys and files, which an operator must fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// The entry carries no trust-anchor signature.
    #[error("trust-list entry has no signature")]
    EmptySignature,
    /// The entry carries no certificate text.
    #[error("trust-list entry has no certificate")]
    EmptyCertificate,
    /// The text holds no `CERTIFICATE` PEM block (or its Base64 body is invalid).
    #[error("no PEM CERTIFICATE block found")]
    NoPemCertificate,
    /// The PEM block is not a DER X.509 certificate.
    #[error("certificate does not parse: {0}")]
    InvalidCertificate(#[source] der::Error),
    /// The entry's thumbprint is not the SHA-256 of its certificate.
    #[error("thumbprint {entry} does not match the certificate ({actual})")]
    ThumbprintMismatch {
        /// Thumbprint stated by the entry.
        entry: Thumbprint,
        /// Thumbprint of the certificate it carries.
        actual: Thumbprint,
    },
    /// The entry's signature is not valid Base64 (the reference answered 500 here).
    #[error("trust-anchor signature is not valid Base64")]
    InvalidSignatureEncoding,
    /// No configured trust anchor verifies the signature.
    #[error("trust-anchor signature does not verify")]
    SignatureMismatch,
    /// The certificate subject's country differs from the entry's (import check).
    #[error("entry country {entry} does not match the certificate subject's C {subject:?}")]
    SubjectCountryMismatch {
        /// Country stated by the entry.
        entry: String,
        /// Every `C` of the certificate subject, in order.
        subject: Vec<String>,
    },
    /// An empty list of trust anchors was configured.
    #[error("no trust anchor configured")]
    NoTrustAnchor,
    /// The anchor's public key algorithm (or curve) is not supported.
    #[error("unsupported trust-anchor key algorithm {algorithm}")]
    UnsupportedAnchorKey {
        /// The SPKI algorithm OID, or the curve OID for EC keys.
        algorithm: ObjectIdentifier,
    },
    /// The anchor certificate's signature algorithm names a digest we refuse (SHA-1, MD5, SHA-224).
    #[error("trust-anchor signature algorithm {algorithm} uses a digest that is not accepted")]
    UnsupportedAnchorDigest {
        /// The certificate's `signatureAlgorithm` OID.
        algorithm: ObjectIdentifier,
    },
    /// The anchor's RSA key is too short.
    #[error("trust-anchor RSA key has {bits} bits, at least {MIN_RSA_BITS} are required")]
    WeakAnchorKey {
        /// Modulus length in bits.
        bits: usize,
    },
    /// The anchor's public key bytes are malformed.
    #[error("trust-anchor public key is malformed")]
    InvalidAnchorKey,
    /// The private key text could not be read.
    #[error("private key is not readable: {reason}")]
    InvalidPrivateKey {
        /// What was wrong.
        reason: &'static str,
    },
    /// The private key is password-protected; decrypt it first.
    #[error("encrypted private keys are not supported; decrypt the key first")]
    EncryptedPrivateKey,
    /// The private key does not belong to the anchor certificate.
    #[error("private key does not match the trust-anchor certificate")]
    KeyMismatch,
    /// The signing operation itself failed.
    #[error("signing failed")]
    SigningFailed,
    /// An entry file is not valid JSON of the documented shape.
    #[error("invalid trust-list entry file: {0}")]
    InvalidEntryJson(#[source] serde_json::Error),
}

impl TrustError {
    /// A stable machine code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            TrustError::EmptySignature => "empty-signature",
            TrustError::EmptyCertificate => "empty-certificate",
            TrustError::NoPemCertificate => "no-pem-certificate",
            TrustError::InvalidCertificate(_) => "invalid-certificate",
            TrustError::ThumbprintMismatch { .. } => "thumbprint-mismatch",
            TrustError::InvalidSignatureEncoding => "invalid-signature-encoding",
            TrustError::SignatureMismatch => "signature-mismatch",
            TrustError::SubjectCountryMismatch { .. } => "subject-country-mismatch",
            TrustError::NoTrustAnchor => "no-trust-anchor",
            TrustError::UnsupportedAnchorKey { .. } => "unsupported-anchor-key",
            TrustError::UnsupportedAnchorDigest { .. } => "unsupported-anchor-digest",
            TrustError::WeakAnchorKey { .. } => "weak-anchor-key",
            TrustError::InvalidAnchorKey => "invalid-anchor-key",
            TrustError::InvalidPrivateKey { .. } => "invalid-private-key",
            TrustError::EncryptedPrivateKey => "encrypted-private-key",
            TrustError::KeyMismatch => "key-mismatch",
            TrustError::SigningFailed => "signing-failed",
            TrustError::InvalidEntryJson(_) => "invalid-entry-json",
        }
    }

    /// True for the failures of an entry's integrity check (protocol §4.4 steps 1-5), which
    /// make the entry count as "not present". False for configuration errors.
    pub fn is_integrity_failure(&self) -> bool {
        matches!(
            self,
            TrustError::EmptySignature
                | TrustError::EmptyCertificate
                | TrustError::NoPemCertificate
                | TrustError::InvalidCertificate(_)
                | TrustError::ThumbprintMismatch { .. }
                | TrustError::InvalidSignatureEncoding
                | TrustError::SignatureMismatch
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Trust anchors
// ---------------------------------------------------------------------------------------------

/// One trust-anchor certificate and the way it verifies entry signatures.
#[derive(Clone)]
pub struct TrustAnchor {
    der: Vec<u8>,
    certificate: Certificate,
    thumbprint: Thumbprint,
    key: AnchorKey,
    hash: DigestAlgorithm,
}

impl TrustAnchor {
    /// From the first `CERTIFICATE` block of a PEM text.
    pub fn from_pem(pem: &str) -> Result<Self, TrustError> {
        Self::from_der(&first_certificate_der(pem)?)
    }

    /// From a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, TrustError> {
        let certificate = Certificate::from_der(der).map_err(TrustError::InvalidCertificate)?;
        let hash =
            DigestAlgorithm::from_signature_algorithm(&certificate.signature_algorithm().oid)?;
        let key = AnchorKey::from_spki(certificate.tbs_certificate().subject_public_key_info())?;
        Ok(TrustAnchor {
            der: der.to_vec(),
            thumbprint: Thumbprint::of_der(der),
            certificate,
            key,
            hash,
        })
    }

    /// Verifies a raw signature (PKCS#1 v1.5 bytes, or a DER ECDSA signature) over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), TrustError> {
        if self.key.verify(self.hash, message, signature) {
            Ok(())
        } else {
            Err(TrustError::SignatureMismatch)
        }
    }

    /// The digest entries are signed with.
    pub fn digest_algorithm(&self) -> DigestAlgorithm {
        self.hash
    }

    /// The signature algorithm in Java's naming, e.g. `SHA256withRSA`, `SHA384withECDSA`.
    pub fn algorithm_name(&self) -> String {
        format!("{}with{}", self.hash.java_name(), self.key.java_name())
    }

    /// The anchor certificate's thumbprint.
    pub fn thumbprint(&self) -> &Thumbprint {
        &self.thumbprint
    }

    /// The anchor certificate's DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The parsed anchor certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    /// The anchor certificate's subject.
    pub fn subject(&self) -> &Name {
        self.certificate.tbs_certificate().subject()
    }

    /// End of the anchor certificate's validity (informational: like the reference, entry
    /// verification does not look at the anchor's validity, so an operator must rotate in time).
    pub fn not_after(&self) -> time::OffsetDateTime {
        time_to_offset(&self.certificate.tbs_certificate().validity().not_after)
    }
}

impl fmt::Debug for TrustAnchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustAnchor")
            .field("subject", &self.subject().to_string())
            .field("thumbprint", &self.thumbprint)
            .field("algorithm", &self.algorithm_name())
            .finish()
    }
}

/// The configured trust anchors (at least one). Several are allowed so that the anchor can be
/// rotated: entries signed by the old and by the new anchor verify during the changeover.
#[derive(Clone, Debug)]
pub struct TrustAnchors(Vec<TrustAnchor>);

impl TrustAnchors {
    /// From a non-empty list.
    pub fn new(anchors: Vec<TrustAnchor>) -> Result<Self, TrustError> {
        if anchors.is_empty() {
            Err(TrustError::NoTrustAnchor)
        } else {
            Ok(TrustAnchors(anchors))
        }
    }

    /// One anchor.
    pub fn single(anchor: TrustAnchor) -> Self {
        TrustAnchors(vec![anchor])
    }

    /// Every `CERTIFICATE` block of a PEM bundle, in order.
    pub fn from_pem_bundle(pem: &str) -> Result<Self, TrustError> {
        let anchors = all_certificate_ders(pem)?
            .iter()
            .map(|der| TrustAnchor::from_der(der))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(anchors)
    }

    /// The anchors, in configuration order.
    pub fn anchors(&self) -> &[TrustAnchor] {
        &self.0
    }

    /// Verifies a raw signature over `message`; returns the first anchor that accepts it.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<&TrustAnchor, TrustError> {
        self.0
            .iter()
            .find(|a| a.verify(message, signature).is_ok())
            .ok_or(TrustError::SignatureMismatch)
    }
}

// ---------------------------------------------------------------------------------------------
// Entries
// ---------------------------------------------------------------------------------------------

/// One trust-list row: a certificate the operator vouches for. See the [module
/// documentation](self) for the JSON file format.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustListEntry {
    /// Owning country (two letters).
    pub country: String,
    /// What the certificate may be used for.
    #[serde(rename = "type", with = "cert_type_serde")]
    pub cert_type: CertificateType,
    /// The PEM text exactly as signed (line endings matter).
    #[serde(rename = "certificate")]
    pub pem: String,
    /// Base64 trust-anchor signature over the bytes of `pem`.
    pub signature: String,
    /// SHA-256 of the certificate's DER.
    #[serde(with = "thumbprint_serde")]
    pub thumbprint: Thumbprint,
    /// Revoked certificates are kept on the list but refused.
    #[serde(default)]
    pub revoked: bool,
}

impl TrustListEntry {
    /// The integrity check of protocol §4.4, with the same order of steps:
    /// 1. `signature` and `pem` are non-empty;
    /// 2. `pem` holds a `CERTIFICATE` block (the first one is used) that parses as X.509;
    /// 3. SHA-256 of that certificate's DER equals `thumbprint`;
    /// 4. the Base64 `signature` verifies, with one of `anchors`, over the exact bytes of `pem`.
    ///
    /// Every failure is an [integrity failure](TrustError::is_integrity_failure): the caller
    /// treats the entry as absent. The revoked flag and the subject country are not looked at.
    pub fn verify(&self, anchors: &TrustAnchors) -> Result<VerifiedEntry, TrustError> {
        if self.signature.is_empty() {
            return Err(TrustError::EmptySignature);
        }
        if self.pem.is_empty() {
            return Err(TrustError::EmptyCertificate);
        }
        let der = first_certificate_der(&self.pem)?;
        let certificate = Certificate::from_der(&der).map_err(TrustError::InvalidCertificate)?;
        let actual = Thumbprint::of_der(&der);
        if actual != self.thumbprint {
            return Err(TrustError::ThumbprintMismatch {
                entry: self.thumbprint.clone(),
                actual,
            });
        }
        let signature = B64
            .decode(self.signature.trim().as_bytes())
            .map_err(|_| TrustError::InvalidSignatureEncoding)?;
        anchors.verify(self.pem.as_bytes(), &signature)?;
        Ok(VerifiedEntry {
            entry: self.clone(),
            der,
            certificate,
        })
    }

    /// [`verify`](Self::verify), then [`VerifiedEntry::check_subject_country`]: what an
    /// operator import should run before accepting an entry.
    pub fn verify_for_import(&self, anchors: &TrustAnchors) -> Result<VerifiedEntry, TrustError> {
        let verified = self.verify(anchors)?;
        verified.check_subject_country()?;
        Ok(verified)
    }

    /// Parses an entry file: one JSON object, or a JSON array of them.
    pub fn parse_json(text: &str) -> Result<Vec<TrustListEntry>, TrustError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(TrustError::InvalidEntryJson)?;
        // Deserialise by shape so that errors name the offending field.
        if value.is_array() {
            serde_json::from_value(value).map_err(TrustError::InvalidEntryJson)
        } else {
            let one: TrustListEntry =
                serde_json::from_value(value).map_err(TrustError::InvalidEntryJson)?;
            Ok(vec![one])
        }
    }

    /// The entry as a pretty-printed JSON object (the file format).
    pub fn to_json(&self) -> String {
        // Serialising plain strings and a bool cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// An entry that passed [`TrustListEntry::verify`], with its parsed certificate.
#[derive(Clone, Debug)]
pub struct VerifiedEntry {
    entry: TrustListEntry,
    der: Vec<u8>,
    certificate: Certificate,
}

impl VerifiedEntry {
    /// The entry as stored.
    pub fn entry(&self) -> &TrustListEntry {
        &self.entry
    }

    /// The certificate's DER (as decoded from the PEM; the thumbprint is over these bytes).
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The parsed certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    /// The certificate's subject.
    pub fn subject(&self) -> &Name {
        self.certificate.tbs_certificate().subject()
    }

    /// Start of the certificate's validity.
    pub fn not_before(&self) -> time::OffsetDateTime {
        time_to_offset(&self.certificate.tbs_certificate().validity().not_before)
    }

    /// End of the certificate's validity.
    pub fn not_after(&self) -> time::OffsetDateTime {
        time_to_offset(&self.certificate.tbs_certificate().validity().not_after)
    }

    /// Whether `now` lies within the validity window (bounds inclusive, as RFC 5280 says).
    pub fn is_valid_at(&self, now: time::OffsetDateTime) -> bool {
        self.not_before() <= now && now <= self.not_after()
    }

    /// The entry's thumbprint.
    pub fn thumbprint(&self) -> &Thumbprint {
        &self.entry.thumbprint
    }

    /// The entry's country.
    pub fn country(&self) -> &str {
        &self.entry.country
    }

    /// The entry's certificate type.
    pub fn cert_type(&self) -> CertificateType {
        self.entry.cert_type
    }

    /// The entry's revoked flag.
    pub fn revoked(&self) -> bool {
        self.entry.revoked
    }

    /// Whether the PEM text is the canonical rendering ([`canonical_pem`]) of the certificate,
    /// the form clients compare audit certificates against (clients.md §5).
    pub fn pem_is_canonical(&self) -> bool {
        self.entry.pem == canonical_pem(&self.der)
    }

    /// The stricter import check the reference lacks: the certificate subject must carry
    /// exactly one `C`, equal to the entry's country. (SIGNING certificates need exactly one
    /// `C` anyway, protocol §4.2; for AUTHENTICATION it keeps the DN header's first `C`
    /// unambiguous.)
    pub fn check_subject_country(&self) -> Result<(), TrustError> {
        let subject = countries_in(self.subject());
        if subject.len() == 1 && subject[0] == self.entry.country {
            Ok(())
        } else {
            Err(TrustError::SubjectCountryMismatch {
                entry: self.entry.country.clone(),
                subject,
            })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// serde helpers for types defined elsewhere
// ---------------------------------------------------------------------------------------------

mod cert_type_serde {
    use crate::model::CertificateType;
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(t: &CertificateType, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(t.as_str())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<CertificateType, D::Error> {
        let s = String::deserialize(d)?;
        CertificateType::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown certificate type {s:?} (expected AUTHENTICATION, SIGNING or CALLBACK)"
            ))
        })
    }
}

mod thumbprint_serde {
    use crate::cert::Thumbprint;
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(t: &Thumbprint, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(t.as_str())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Thumbprint, D::Error> {
        let s = String::deserialize(d)?;
        Thumbprint::parse_hex(&s).ok_or_else(|| {
            serde::de::Error::custom("thumbprint must be 64 hex characters (SHA-256 of the DER)")
        })
    }
}

mod pem;
#[allow(unused_imports)]
pub use pem::*;
mod keys;
#[allow(unused_imports)]
pub use keys::*;
mod signing;
#[allow(unused_imports)]
pub use signing::*;
#[cfg(test)]
mod tests;
