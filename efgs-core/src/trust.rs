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
// PEM helpers
// ---------------------------------------------------------------------------------------------

/// One PEM block: its label and decoded body.
struct PemBlock {
    label: String,
    der: Vec<u8>,
}

/// Iterates over the PEM blocks of `text`, leniently: any line ending, whitespace inside the
/// Base64 body, text between blocks. Blocks whose body is not Base64 yield `None` entries.
fn pem_blocks(text: &str) -> impl Iterator<Item = Option<PemBlock>> + '_ {
    const BEGIN: &str = "-----BEGIN ";
    const DASHES: &str = "-----";
    let mut rest = text;
    std::iter::from_fn(move || {
        let start = rest.find(BEGIN)?;
        let after_begin = &rest[start + BEGIN.len()..];
        let Some(label_end) = after_begin.find(DASHES) else {
            rest = "";
            return None;
        };
        let label = &after_begin[..label_end];
        let body_and_more = &after_begin[label_end + DASHES.len()..];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = body_and_more.find(&end_marker) else {
            rest = "";
            return Some(None);
        };
        let body = &body_and_more[..end];
        rest = &body_and_more[end + end_marker.len()..];
        if label.contains('\n') || body.contains(':') {
            // A broken BEGIN line, or RFC 1421 headers (encrypted legacy keys).
            return Some(None);
        }
        let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        Some(B64.decode(compact.as_bytes()).ok().map(|der| PemBlock {
            label: label.to_owned(),
            der,
        }))
    })
}

/// The DER of the first `CERTIFICATE` block of a PEM text.
pub(crate) fn first_certificate_der(text: &str) -> Result<Vec<u8>, TrustError> {
    for block in pem_blocks(text).flatten() {
        if block.label == "CERTIFICATE" {
            return Ok(block.der);
        }
    }
    Err(TrustError::NoPemCertificate)
}

/// Every `CERTIFICATE` block of a PEM text, in order.
fn all_certificate_ders(text: &str) -> Result<Vec<Vec<u8>>, TrustError> {
    let mut out = Vec::new();
    for block in pem_blocks(text) {
        match block {
            Some(b) if b.label == "CERTIFICATE" => out.push(b.der),
            Some(_) => {}
            None => return Err(TrustError::NoPemCertificate),
        }
    }
    if out.is_empty() {
        return Err(TrustError::NoPemCertificate);
    }
    Ok(out)
}

/// Renders a DER certificate as PEM the way BouncyCastle and OpenSSL do: 64-column Base64,
/// LF line endings, a trailing newline (clients.md §5: Italy compares these strings).
pub fn canonical_pem(der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 60);
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // Base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// True when a thumbprint starts with a zero byte (`00…`): clients that recompute thumbprints
/// the reference way (big integer to hex) produce 62 characters for it and will not match
/// (decisions item 1). The onboarding CLI should warn.
pub fn thumbprint_starts_with_zero_byte(thumbprint: &Thumbprint) -> bool {
    thumbprint.as_str().starts_with("00")
}

fn time_to_offset(t: &x509_cert::time::Time) -> time::OffsetDateTime {
    let secs = t.to_unix_duration().as_secs();
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .unwrap_or(time::PrimitiveDateTime::MAX.assume_utc())
}

// ---------------------------------------------------------------------------------------------
// Digests and keys
// ---------------------------------------------------------------------------------------------

/// The digest a trust anchor signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DigestAlgorithm {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl DigestAlgorithm {
    /// The digest named by a certificate's `signatureAlgorithm`: SHA-256/384/512 for the
    /// `…WithRSAEncryption` and `ecdsa-with-…` algorithms, SHA-256 for anything else (for
    /// instance `rsaEncryption` or RSASSA-PSS). SHA-1, MD5 and SHA-224 are refused.
    pub fn from_signature_algorithm(oid: &ObjectIdentifier) -> Result<Self, TrustError> {
        let oid = *oid;
        if oid == rfc5912::SHA_384_WITH_RSA_ENCRYPTION || oid == rfc5912::ECDSA_WITH_SHA_384 {
            Ok(DigestAlgorithm::Sha384)
        } else if oid == rfc5912::SHA_512_WITH_RSA_ENCRYPTION || oid == rfc5912::ECDSA_WITH_SHA_512
        {
            Ok(DigestAlgorithm::Sha512)
        } else if oid == rfc5912::SHA_1_WITH_RSA_ENCRYPTION
            || oid == ECDSA_WITH_SHA_1
            || oid == rfc5912::DSA_WITH_SHA_1
            || oid == rfc5912::MD_5_WITH_RSA_ENCRYPTION
            || oid == rfc5912::SHA_224_WITH_RSA_ENCRYPTION
            || oid == rfc5912::ECDSA_WITH_SHA_224
        {
            Err(TrustError::UnsupportedAnchorDigest { algorithm: oid })
        } else {
            Ok(DigestAlgorithm::Sha256)
        }
    }

    /// Hashes `data`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            DigestAlgorithm::Sha256 => sha2::Sha256::digest(data).to_vec(),
            DigestAlgorithm::Sha384 => sha2::Sha384::digest(data).to_vec(),
            DigestAlgorithm::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    /// The name as in Java's algorithm names (`SHA256`, …).
    pub fn java_name(self) -> &'static str {
        match self {
            DigestAlgorithm::Sha256 => "SHA256",
            DigestAlgorithm::Sha384 => "SHA384",
            DigestAlgorithm::Sha512 => "SHA512",
        }
    }

    fn pkcs1v15(self) -> rsa::Pkcs1v15Sign {
        match self {
            DigestAlgorithm::Sha256 => rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
            DigestAlgorithm::Sha384 => rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
            DigestAlgorithm::Sha512 => rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
        }
    }
}

/// A trust anchor's public key.
#[derive(Clone, Debug, PartialEq)]
enum AnchorKey {
    Rsa(rsa::PublicKey),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
}

impl AnchorKey {
    fn from_spki(spki: &spki::SubjectPublicKeyInfoOwned) -> Result<Self, TrustError> {
        use rsa::traits::PublicKeyParts as _;
        let alg = spki.algorithm.oid;
        if alg == rfc5912::RSA_ENCRYPTION {
            let spki_der = spki.to_der().map_err(|_| TrustError::InvalidAnchorKey)?;
            let key = <rsa::PublicKey as spki::DecodePublicKey>::from_public_key_der(&spki_der)
                .map_err(|_| TrustError::InvalidAnchorKey)?;
            let bits = key.n().bit_width_vartime() as usize;
            if bits < MIN_RSA_BITS {
                return Err(TrustError::WeakAnchorKey { bits });
            }
            Ok(AnchorKey::Rsa(key))
        } else if alg == rfc5912::ID_EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
                .ok_or(TrustError::InvalidAnchorKey)?;
            let point = spki.subject_public_key.raw_bytes();
            if curve == rfc5912::SECP_256_R_1 {
                p256::ecdsa::VerifyingKey::from_sec1_bytes(point)
                    .map(AnchorKey::P256)
                    .map_err(|_| TrustError::InvalidAnchorKey)
            } else if curve == rfc5912::SECP_384_R_1 {
                p384::ecdsa::VerifyingKey::from_sec1_bytes(point)
                    .map(AnchorKey::P384)
                    .map_err(|_| TrustError::InvalidAnchorKey)
            } else {
                Err(TrustError::UnsupportedAnchorKey { algorithm: curve })
            }
        } else {
            Err(TrustError::UnsupportedAnchorKey { algorithm: alg })
        }
    }

    fn verify(&self, hash: DigestAlgorithm, message: &[u8], signature: &[u8]) -> bool {
        use signature::hazmat::PrehashVerifier as _;
        let prehash = hash.digest(message);
        match self {
            AnchorKey::Rsa(key) => key.verify(hash.pkcs1v15(), &prehash, signature).is_ok(),
            AnchorKey::P256(key) => p256::ecdsa::Signature::from_der(signature)
                .is_ok_and(|sig| key.verify_prehash(&prehash, &sig).is_ok()),
            AnchorKey::P384(key) => p384::ecdsa::Signature::from_der(signature)
                .is_ok_and(|sig| key.verify_prehash(&prehash, &sig).is_ok()),
        }
    }

    fn java_name(&self) -> &'static str {
        match self {
            AnchorKey::Rsa(_) => "RSA",
            AnchorKey::P256(_) | AnchorKey::P384(_) => "ECDSA",
        }
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
// Signing
// ---------------------------------------------------------------------------------------------

/// A trust anchor's private key.
enum SigningKey {
    Rsa(rsa::PrivateKey),
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
}

impl SigningKey {
    fn from_pem(text: &str) -> Result<Self, TrustError> {
        let mut saw_block = false;
        for block in pem_blocks(text) {
            let Some(block) = block else {
                if text.contains("Proc-Type: 4,ENCRYPTED") {
                    return Err(TrustError::EncryptedPrivateKey);
                }
                return Err(TrustError::InvalidPrivateKey {
                    reason: "malformed PEM block",
                });
            };
            saw_block = true;
            match block.label.as_str() {
                "PRIVATE KEY" => return Self::from_pkcs8(&block.der),
                "RSA PRIVATE KEY" => {
                    return <rsa::PrivateKey as rsa::pkcs1::DecodeRsaPrivateKey>::from_pkcs1_der(
                        &block.der,
                    )
                    .map(SigningKey::Rsa)
                    .map_err(|_| TrustError::InvalidPrivateKey {
                        reason: "malformed PKCS#1 RSA key",
                    });
                }
                "EC PRIVATE KEY" => return Self::from_sec1(&block.der),
                "ENCRYPTED PRIVATE KEY" => return Err(TrustError::EncryptedPrivateKey),
                _ => {} // e.g. "EC PARAMETERS" before a SEC1 key
            }
        }
        Err(TrustError::InvalidPrivateKey {
            reason: if saw_block {
                "no private key block (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)"
            } else {
                "no PEM block"
            },
        })
    }

    fn from_pkcs8(der: &[u8]) -> Result<Self, TrustError> {
        let info =
            pkcs8::PrivateKeyInfoRef::from_der(der).map_err(|_| TrustError::InvalidPrivateKey {
                reason: "malformed PKCS#8 structure",
            })?;
        let alg = info.algorithm.oid;
        if alg == rfc5912::RSA_ENCRYPTION {
            <rsa::PrivateKey as pkcs8::DecodePrivateKey>::from_pkcs8_der(der)
                .map(SigningKey::Rsa)
                .map_err(|_| TrustError::InvalidPrivateKey {
                    reason: "malformed PKCS#8 RSA key",
                })
        } else if alg == rfc5912::ID_EC_PUBLIC_KEY {
            let curve = info
                .algorithm
                .parameters
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
                .ok_or(TrustError::InvalidPrivateKey {
                    reason: "EC key without a named curve",
                })?;
            let bad = || TrustError::InvalidPrivateKey {
                reason: "malformed PKCS#8 EC key",
            };
            if curve == rfc5912::SECP_256_R_1 {
                <p256::ecdsa::SigningKey as pkcs8::DecodePrivateKey>::from_pkcs8_der(der)
                    .map(SigningKey::P256)
                    .map_err(|_| bad())
            } else if curve == rfc5912::SECP_384_R_1 {
                <p384::ecdsa::SigningKey as pkcs8::DecodePrivateKey>::from_pkcs8_der(der)
                    .map(SigningKey::P384)
                    .map_err(|_| bad())
            } else {
                Err(TrustError::UnsupportedAnchorKey { algorithm: curve })
            }
        } else {
            Err(TrustError::UnsupportedAnchorKey { algorithm: alg })
        }
    }

    fn from_sec1(der: &[u8]) -> Result<Self, TrustError> {
        let bad = || TrustError::InvalidPrivateKey {
            reason: "malformed SEC1 EC key",
        };
        let key = sec1::EcPrivateKey::from_der(der).map_err(|_| bad())?;
        let curve = key
            .parameters
            .as_ref()
            .and_then(|p| p.named_curve())
            .ok_or(TrustError::InvalidPrivateKey {
                reason: "SEC1 EC key without a named curve",
            })?;
        if curve == rfc5912::SECP_256_R_1 {
            p256::SecretKey::from_sec1_der(der)
                .map(|k| SigningKey::P256(k.into()))
                .map_err(|_| bad())
        } else if curve == rfc5912::SECP_384_R_1 {
            p384::SecretKey::from_sec1_der(der)
                .map(|k| SigningKey::P384(k.into()))
                .map_err(|_| bad())
        } else {
            Err(TrustError::UnsupportedAnchorKey { algorithm: curve })
        }
    }

    fn matches(&self, public: &AnchorKey) -> bool {
        match (self, public) {
            (SigningKey::Rsa(k), AnchorKey::Rsa(p)) => k.as_public_key() == p,
            (SigningKey::P256(k), AnchorKey::P256(p)) => k.verifying_key() == p,
            (SigningKey::P384(k), AnchorKey::P384(p)) => k.verifying_key() == p,
            _ => false,
        }
    }

    fn sign(&self, hash: DigestAlgorithm, message: &[u8]) -> Result<Vec<u8>, TrustError> {
        use signature::hazmat::PrehashSigner as _;
        let prehash = hash.digest(message);
        match self {
            // PKCS#1 v1.5 is deterministic; rsa uses the OS RNG only to blind the private-key
            // operation, which does not change the output.
            SigningKey::Rsa(k) => k
                .sign(hash.pkcs1v15(), &prehash)
                .map_err(|_| TrustError::SigningFailed),
            // RFC 6979 deterministic nonces: no randomness needed.
            SigningKey::P256(k) => {
                let sig: p256::ecdsa::Signature = k
                    .sign_prehash(&prehash)
                    .map_err(|_| TrustError::SigningFailed)?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
            SigningKey::P384(k) => {
                let sig: p384::ecdsa::Signature = k
                    .sign_prehash(&prehash)
                    .map_err(|_| TrustError::SigningFailed)?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
        }
    }
}

/// The operator's signing side of a trust anchor: its certificate and private key. Used
/// offline (an onboarding CLI) to produce [`TrustListEntry`] values that the gateway verifies.
pub struct TrustAnchorSigner {
    anchor: TrustAnchor,
    key: SigningKey,
}

impl TrustAnchorSigner {
    /// From the anchor certificate PEM and its unencrypted private key PEM (PKCS#8
    /// `PRIVATE KEY` with RSA or EC, PKCS#1 `RSA PRIVATE KEY`, or SEC1 `EC PRIVATE KEY`).
    /// The key must belong to the certificate.
    pub fn from_pem(certificate_pem: &str, private_key_pem: &str) -> Result<Self, TrustError> {
        let anchor = TrustAnchor::from_pem(certificate_pem)?;
        let key = SigningKey::from_pem(private_key_pem)?;
        if !key.matches(&anchor.key) {
            return Err(TrustError::KeyMismatch);
        }
        Ok(TrustAnchorSigner { anchor, key })
    }

    /// The anchor this signer signs for (to configure the verifying side).
    pub fn anchor(&self) -> &TrustAnchor {
        &self.anchor
    }

    /// Signs raw bytes as an entry signature (PKCS#1 v1.5 or DER ECDSA, with the anchor's
    /// digest), i.e. what `openssl dgst -<digest> -sign ta.key` produces.
    pub fn sign_bytes(&self, message: &[u8]) -> Result<Vec<u8>, TrustError> {
        self.key.sign(self.anchor.hash, message)
    }

    /// Produces a trust-list entry for the first certificate of `pem`.
    ///
    /// The text that is signed and stored is the certificate's [canonical
    /// rendering](canonical_pem) (64-column Base64, LF, trailing newline), not `pem` verbatim:
    /// clients compare the audit's certificate strings with that rendering (clients.md §5),
    /// and nothing else in `pem` (a chain, a private key pasted by mistake) is ever stored.
    /// The certificate subject must carry exactly one `C`, equal to `country`.
    pub fn sign_entry(
        &self,
        pem: &str,
        country: &str,
        cert_type: CertificateType,
    ) -> Result<TrustListEntry, TrustError> {
        let der = first_certificate_der(pem)?;
        Certificate::from_der(&der).map_err(TrustError::InvalidCertificate)?;
        self.sign_pem_exact(&canonical_pem(&der), country, cert_type)
    }

    /// Like [`sign_entry`](Self::sign_entry) but signs and stores `pem` byte for byte, as the
    /// reference's `create_certificate_signature.sh` does.
    pub fn sign_pem_exact(
        &self,
        pem: &str,
        country: &str,
        cert_type: CertificateType,
    ) -> Result<TrustListEntry, TrustError> {
        let der = first_certificate_der(pem)?;
        let certificate = Certificate::from_der(&der).map_err(TrustError::InvalidCertificate)?;
        let subject = countries_in(certificate.tbs_certificate().subject());
        if subject.len() != 1 || subject[0] != country {
            return Err(TrustError::SubjectCountryMismatch {
                entry: country.to_owned(),
                subject,
            });
        }
        let signature = self.sign_bytes(pem.as_bytes())?;
        Ok(TrustListEntry {
            country: country.to_owned(),
            cert_type,
            pem: pem.to_owned(),
            signature: B64.encode(signature),
            thumbprint: Thumbprint::of_der(&der),
            revoked: false,
        })
    }
}

impl fmt::Debug for TrustAnchorSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustAnchorSigner")
            .field("anchor", &self.anchor)
            .field("key", &"<redacted>")
            .finish()
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

#[cfg(test)]
mod tests {
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
            DigestAlgorithm::from_signature_algorithm(&rfc5912::SHA_256_WITH_RSA_ENCRYPTION)
                .unwrap(),
            DigestAlgorithm::Sha256
        );
        assert_eq!(
            DigestAlgorithm::from_signature_algorithm(&rfc5912::ECDSA_WITH_SHA_384).unwrap(),
            DigestAlgorithm::Sha384
        );
        assert_eq!(
            DigestAlgorithm::from_signature_algorithm(&rfc5912::SHA_512_WITH_RSA_ENCRYPTION)
                .unwrap(),
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
}
