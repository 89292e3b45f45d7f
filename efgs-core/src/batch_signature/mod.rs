//! CMS batch signatures: verifying a member state's detached `batchSignature` (protocol §4.2,
//! decisions item 4) and producing one ([`BatchSigner`]).
//!
//! # Verification
//!
//! [`verify_detached`] takes the Base64 header value, the canonical batch bytes (§4.1), the
//! current time and a [`SignaturePolicy`], and returns the [`VerifiedSigner`]: the signer
//! certificate as received, its thumbprint and its single country. The caller then looks the
//! thumbprint up on the trust list (SIGNING, that country, not revoked) and checks every key's
//! origin with [`ensure_signer_country`]. There is no chain validation: the trust list pins
//! exact certificates (decisions, "Kept exactly").
//!
//! What is accepted:
//! - `ContentInfo` → `SignedData`, DER or BER (indefinite lengths, as BouncyCastle's
//!   `getEncoded()` and `openssl cms -sign -stream` emit). Any encapsulated content is ignored;
//!   the detached content is always the canonical bytes.
//! - The first `SignerInfo`; its certificate is found in `certificates` by issuer and serial
//!   number or by subject key identifier.
//! - RSA PKCS#1 v1.5 and RSASSA-PSS (salt length from the parameters, MGF1 with the same
//!   hash) with at least [`SignaturePolicy::min_rsa_bits`], ECDSA on P-256 and P-384; digests
//!   SHA-256/384/512, SHA-1 only with [`SignaturePolicy::allow_sha1`].
//! - The hash inside the signature comes from the signature algorithm OID when it names one
//!   (`sha256WithRSAEncryption`, `ecdsa-with-SHA384`, …), else from the digest algorithm
//!   (OpenSSL writes `rsaEncryption`).
//! - Signed attributes: content-type must be id-data, exactly one message-digest equal to the
//!   content digest, signing-time (if present) within the certificate validity, and a
//!   CMSAlgorithmProtection attribute (if present) must agree with the algorithms used. The
//!   signature covers the received `[0]` bytes with the tag changed to `SET` (re-encoded to
//!   DER only if they arrived in a BER form; if that fails and the set was not in DER order,
//!   the DER-sorted form is tried too, which is what BouncyCastle hashes).
//!
//! Every failure is a distinct [`SignatureError`]; the server answers all of them with 400
//! "Invalid signature", the detail is for logs and problem details.

mod algorithms;
mod asn1_time;
mod ber;
mod sign;
#[cfg(test)]
mod tests;
mod verify;

pub use algorithms::{EcCurve, HashAlgorithm, SignatureScheme};
pub use sign::{BatchSigner, SignerInputError};
pub use verify::{signer_claim, verify_detached, verify_detached_der};

use time::OffsetDateTime;

/// Parses the DER of a UTCTime or GeneralizedTime exactly as the signing-time attribute is
/// parsed; `None` where verification would answer `signature-attribute-invalid`. For the
/// `signing_time` fuzz target and its corpus test, not a stable API.
#[doc(hidden)]
pub fn parse_signing_time_der(der: &[u8]) -> Option<OffsetDateTime> {
    asn1_time::parse(&ber::Tlv::read_exact(der).ok()?)
}

/// Which algorithms the verifier accepts beyond the fixed list of decisions item 4.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignaturePolicy {
    /// Accept SHA-1 (as message digest or signature hash). Off by default; one client library
    /// was seen signing with `sha1WithRSAEncryption`.
    pub allow_sha1: bool,
    /// Smallest accepted RSA modulus, in bits (default 2048).
    pub min_rsa_bits: usize,
}

impl Default for SignaturePolicy {
    fn default() -> Self {
        SignaturePolicy {
            allow_sha1: false,
            min_rsa_bits: 2048,
        }
    }
}

/// Who a `batchSignature` says signed it, before anything is verified ([`signer_claim`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignerClaim {
    /// SHA-256 of the signer certificate as received.
    pub thumbprint: crate::cert::Thumbprint,
    /// The single `C` of the certificate subject.
    pub country: String,
}

/// The outcome of a successful [`verify_detached`]: who signed, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedSigner {
    /// The signer certificate exactly as it was received inside the SignedData.
    pub certificate_der: Vec<u8>,
    /// SHA-256 of [`Self::certificate_der`]; the trust-list lookup key.
    pub thumbprint: crate::cert::Thumbprint,
    /// The single `C` of the certificate subject.
    pub country: String,
    /// The certificate subject, RFC 4514 string (for logs).
    pub subject: String,
    /// Certificate `notBefore`.
    pub not_before: OffsetDateTime,
    /// Certificate `notAfter`.
    pub not_after: OffsetDateTime,
    /// The SignerInfo's digest algorithm (message-digest attribute).
    pub digest_algorithm: HashAlgorithm,
    /// The signature scheme the signature was checked with.
    pub signature_scheme: SignatureScheme,
    /// The signing-time attribute, if there was one.
    pub signing_time: Option<OffsetDateTime>,
    /// Whether the SignerInfo carried signed attributes.
    pub signed_attributes: bool,
}

/// Why a batch signature was not accepted (or could not be made).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The header value is not standard Base64.
    #[error("batch signature is not valid Base64: {source}")]
    Base64 {
        /// The decoder's complaint.
        #[source]
        source: base64::DecodeError,
    },
    /// The header value decodes to nothing.
    #[error("batch signature is empty")]
    Empty,
    /// The bytes are not a well-formed CMS structure.
    #[error("batch signature is not a well-formed CMS structure: {what}")]
    Parse {
        /// What was wrong.
        what: &'static str,
    },
    /// The ContentInfo holds something other than SignedData (e.g. EnvelopedData).
    #[error("CMS content type {content_type} is not SignedData")]
    NotSignedData {
        /// The received content type OID.
        content_type: String,
    },
    /// The SignedData encapsulates a content type other than id-data.
    #[error("encapsulated content type {content_type} is not id-data")]
    EncapsulatedContentNotData {
        /// The received eContentType OID.
        content_type: String,
    },
    /// The SignedData has no SignerInfo.
    #[error("SignedData has no SignerInfo")]
    NoSignerInfo,
    /// No certificate in the SignedData matches the SignerInfo's signer identifier.
    #[error("no certificate in the SignedData matches the signer")]
    SignerCertificateMissing,
    /// The signer certificate's validity starts after `now`.
    #[error("signer certificate is not yet valid (notBefore {not_before})")]
    CertificateNotYetValid {
        /// Certificate `notBefore`.
        not_before: OffsetDateTime,
    },
    /// The signer certificate's validity ended before `now`.
    #[error("signer certificate has expired (notAfter {not_after})")]
    CertificateExpired {
        /// Certificate `notAfter`.
        not_after: OffsetDateTime,
    },
    /// The signer certificate subject has no `C`.
    #[error("signer certificate subject has no country (C)")]
    CountryMissing,
    /// The signer certificate subject has more than one `C`.
    #[error("signer certificate subject has several countries: {}", countries.join(", "))]
    CountryAmbiguous {
        /// Every `C` value, in order.
        countries: Vec<String>,
    },
    /// An algorithm outside the policy of decisions item 4 (DSA, EdDSA, SHA-224, other curves…).
    #[error("unsupported {what}: {oid}")]
    UnsupportedAlgorithm {
        /// Which algorithm slot (digest algorithm, signature algorithm, curve, …).
        what: &'static str,
        /// The OID received.
        oid: String,
    },
    /// SHA-1 was used and the policy does not allow it.
    #[error("SHA-1 is not accepted by the signature policy")]
    Sha1Disabled,
    /// RSA key below the policy minimum.
    #[error("RSA key of {bits} bits is below the minimum of {min_bits}")]
    WeakKey {
        /// Modulus size of the key.
        bits: usize,
        /// Policy minimum.
        min_bits: usize,
    },
    /// The signature algorithm does not fit the certificate's key type.
    #[error("signature algorithm does not match the signer key type")]
    KeyAlgorithmMismatch,
    /// RSASSA-PSS parameters are malformed or inconsistent.
    #[error("invalid RSASSA-PSS parameters: {reason}")]
    InvalidPssParameters {
        /// What was wrong.
        reason: &'static str,
    },
    /// The certificate's public key could not be read.
    #[error("signer certificate public key is invalid")]
    InvalidPublicKey,
    /// A required signed attribute is missing.
    #[error("signed attribute {attribute} is missing")]
    AttributeMissing {
        /// Attribute name.
        attribute: &'static str,
    },
    /// A signed attribute is duplicated, multi-valued or malformed.
    #[error("signed attribute {attribute} is invalid: {reason}")]
    AttributeInvalid {
        /// Attribute name.
        attribute: &'static str,
        /// What was wrong.
        reason: &'static str,
    },
    /// The content-type signed attribute is not id-data.
    #[error("content-type attribute {content_type} is not id-data")]
    ContentTypeNotData {
        /// The OID in the attribute.
        content_type: String,
    },
    /// The message-digest attribute does not match the digest of the batch bytes.
    #[error("message digest does not match the batch content")]
    DigestMismatch,
    /// The signing-time attribute lies outside the certificate validity (BouncyCastle rule).
    #[error("signing time {signing_time} is outside the signer certificate validity")]
    SigningTimeOutsideValidity {
        /// The signing time received.
        signing_time: OffsetDateTime,
    },
    /// The CMSAlgorithmProtection attribute disagrees with the SignerInfo algorithms.
    #[error("CMS algorithm protection attribute does not match the algorithms used")]
    AlgorithmProtectionMismatch,
    /// The cryptographic signature check failed.
    #[error("signature verification failed")]
    BadSignature,
    /// A key's origin differs from the signer certificate's country (§4.2 step 8).
    #[error(
        "key {index} has origin {origin:?} but the signer certificate country is {certificate_country}"
    )]
    CountryMismatch {
        /// Position of the key in the batch.
        index: usize,
        /// The key's origin.
        origin: String,
        /// The certificate's country.
        certificate_country: String,
    },
    /// An empty batch signed by a certificate of another country than the caller's (with keys,
    /// [`SignatureError::CountryMismatch`] or the origin rule catches this).
    #[error(
        "the signer certificate country {certificate_country} is not the uploader's country {uploader_country}"
    )]
    SignerNotUploader {
        /// The certificate's country.
        certificate_country: String,
        /// The authenticated caller's country.
        uploader_country: String,
    },
    /// Signing: the certificate or key PEM/DER could not be read.
    #[error("cannot read {what}: {source}")]
    InvalidSignerInput {
        /// "certificate" or "private key".
        what: &'static str,
        /// What was wrong.
        #[source]
        source: SignerInputError,
    },
    /// Signing: the private key does not belong to the certificate.
    #[error("private key does not match the certificate")]
    KeyMismatch,
    /// Signing: the signature or encoding could not be produced.
    #[error("signing failed: {reason}")]
    SigningFailed {
        /// What went wrong.
        reason: &'static str,
    },
}

impl SignatureError {
    /// A stable kebab-case machine code for problem details and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            SignatureError::Base64 { .. } => "signature-base64",
            SignatureError::Empty => "signature-empty",
            SignatureError::Parse { .. } => "signature-malformed",
            SignatureError::NotSignedData { .. } => "signature-not-signed-data",
            SignatureError::EncapsulatedContentNotData { .. } => "signature-econtent-not-data",
            SignatureError::NoSignerInfo => "signature-no-signer-info",
            SignatureError::SignerCertificateMissing => "signature-signer-certificate-missing",
            SignatureError::CertificateNotYetValid { .. } => "signature-certificate-not-yet-valid",
            SignatureError::CertificateExpired { .. } => "signature-certificate-expired",
            SignatureError::CountryMissing => "signature-country-missing",
            SignatureError::CountryAmbiguous { .. } => "signature-country-ambiguous",
            SignatureError::UnsupportedAlgorithm { .. } => "signature-unsupported-algorithm",
            SignatureError::Sha1Disabled => "signature-sha1-disabled",
            SignatureError::WeakKey { .. } => "signature-weak-key",
            SignatureError::KeyAlgorithmMismatch => "signature-key-algorithm-mismatch",
            SignatureError::InvalidPssParameters { .. } => "signature-invalid-pss-parameters",
            SignatureError::InvalidPublicKey => "signature-invalid-public-key",
            SignatureError::AttributeMissing { .. } => "signature-attribute-missing",
            SignatureError::AttributeInvalid { .. } => "signature-attribute-invalid",
            SignatureError::ContentTypeNotData { .. } => "signature-content-type-not-data",
            SignatureError::DigestMismatch => "signature-digest-mismatch",
            SignatureError::SigningTimeOutsideValidity { .. } => {
                "signature-signing-time-outside-validity"
            }
            SignatureError::AlgorithmProtectionMismatch => {
                "signature-algorithm-protection-mismatch"
            }
            SignatureError::BadSignature => "signature-bad-signature",
            SignatureError::CountryMismatch { .. } => "signature-country-mismatch",
            SignatureError::SignerNotUploader { .. } => "signature-signer-not-uploader",
            SignatureError::InvalidSignerInput { .. } => "signer-invalid-input",
            SignatureError::KeyMismatch => "signer-key-mismatch",
            SignatureError::SigningFailed { .. } => "signer-failed",
        }
    }
}

/// Checks that every key's `origin` equals the signer certificate's country (§4.2 step 8).
/// An empty batch passes.
pub fn ensure_signer_country(
    keys: &[crate::DiagnosisKey],
    signer: &VerifiedSigner,
) -> Result<(), SignatureError> {
    match keys
        .iter()
        .position(|k| !(k.origin.is_valid() && k.origin == signer.country))
    {
        None => Ok(()),
        Some(index) => Err(SignatureError::CountryMismatch {
            index,
            origin: keys[index].origin.text().into_owned(),
            certificate_country: signer.country.clone(),
        }),
    }
}
