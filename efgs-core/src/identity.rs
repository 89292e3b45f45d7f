//! Client identity: who is calling, from the proxy's certificate headers or from the TLS
//! client certificate, and whether the trust list lets them in (protocol §2).
//!
//! The steps, as the reference's authentication filter runs them:
//! 1. the thumbprint header is normalised ([`normalise_thumbprint`]) and the DN header read;
//!    if either is missing the request is refused without a reason (403,
//!    [`IdentityErrorKind::Unauthenticated`]);
//! 2. the country is the first `C` of the URL-decoded DN ([`country_from_dn`]); none is a 400
//!    "Client Certificate must contain country property";
//! 3. the trust-list entry with that thumbprint, that country and type AUTHENTICATION must
//!    exist and pass the trust-anchor integrity check, else 403 "Client is not authorized to
//!    access the service"; a revoked entry is 403 "Client certificate is revoked"
//!    ([`authorise`]). The lookup itself is the store's business.
//!
//! Where we differ from the reference (decisions items 1 and 2): thumbprints are always 64
//! lowercase hex characters (hex input of either case is lowercased; Base64 must be of exactly
//! 32 bytes; a `+` in URL-encoded Base64 is kept, not turned into a space); a malformed `%`
//! escape in the DN is a 400, not a 500; an empty `C=` value counts as no `C` (400); and the
//! identity can also come from the certificate itself ([`identity_from_certificate`], for
//! mTLS, and [`identity_from_cert_header`] for nginx's `$ssl_client_escaped_cert`).

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use der::Decode as _;

use crate::cert::{Thumbprint, countries_in};
use crate::model::CertificateType;
use crate::trust::{TrustAnchors, TrustListEntry, first_certificate_der};

/// Strict standard Base64, padding optional.
const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The reference's reason text for a DN without `C`.
pub const MISSING_COUNTRY_REASON: &str = "Client Certificate must contain country property";
/// The reference's reason text for an unknown (or tampered) certificate.
pub const NOT_AUTHORIZED_REASON: &str = "Client is not authorized to access the service";
/// The reference's reason text for a revoked certificate.
pub const REVOKED_REASON: &str = "Client certificate is revoked";

/// Which HTTP outcome an [`IdentityError`] stands for.
///
/// Not `#[non_exhaustive]`: the server's status table matches its variants (ADR 0012).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IdentityErrorKind {
    /// Credentials missing or unreadable: 403 without a reason text.
    Unauthenticated,
    /// The credentials are malformed in a way the client must fix: 400 with the reason.
    BadRequest,
    /// Known credentials, access refused: 403 with the reason.
    Forbidden,
}

/// Why an otherwise well-formed identity was not authorised (for logs; the client only sees
/// [`NOT_AUTHORIZED_REASON`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NotAuthorizedReason {
    /// No trust-list entry for the thumbprint.
    UnknownThumbprint,
    /// The entry is for another thumbprint (a lookup bug, never a client error).
    ThumbprintMismatch,
    /// The entry belongs to another country.
    CountryMismatch,
    /// The entry is not an AUTHENTICATION certificate.
    WrongType,
    /// The entry failed the trust-anchor integrity check (see the `code()` of the
    /// [`crate::trust::TrustError`] for which step).
    IntegrityCheckFailed(&'static str),
}

/// Errors of this concern.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The thumbprint header is absent.
    #[error("client certificate thumbprint missing")]
    MissingThumbprint,
    /// The thumbprint header is neither 64 hex characters nor Base64 of 32 bytes.
    #[error("client certificate thumbprint unreadable")]
    UnreadableThumbprint,
    /// The distinguished-name header is absent.
    #[error("client certificate distinguished name missing")]
    MissingDn,
    /// The client certificate (mTLS or `X-SSL-Client-Cert`) is absent or does not parse.
    #[error("client certificate unreadable")]
    UnreadableCertificate,
    /// The DN header has a malformed `%` escape (the reference answered 500).
    #[error("Client Certificate distinguished name is not valid URL encoding: {reason}")]
    MalformedDn {
        /// What was wrong.
        reason: &'static str,
    },
    /// The DN (or certificate subject) has no `C`.
    #[error("Client Certificate must contain country property")]
    MissingCountry,
    /// No valid AUTHENTICATION entry for this thumbprint and country.
    #[error("Client is not authorized to access the service")]
    NotAuthorized {
        /// Why, for the log.
        reason: NotAuthorizedReason,
    },
    /// The entry is revoked.
    #[error("Client certificate is revoked")]
    Revoked,
    /// The AUTHENTICATION certificate is expired or not yet valid.
    #[error("Client certificate is outside its validity period")]
    OutsideValidity,
    /// An identity header arrived more than once (a proxy that appends instead of replacing).
    #[error("client certificate header {header} sent more than once")]
    RepeatedHeader {
        /// The header.
        header: &'static str,
    },
    /// `X-SSL-Client-Cert` and `X-SSL-Client-SHA256` name different certificates.
    #[error("client certificate headers name different certificates")]
    ConflictingHeaders,
}

impl IdentityError {
    /// A stable machine code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            IdentityError::MissingThumbprint => "missing-thumbprint",
            IdentityError::UnreadableThumbprint => "unreadable-thumbprint",
            IdentityError::MissingDn => "missing-dn",
            IdentityError::UnreadableCertificate => "unreadable-client-certificate",
            IdentityError::MalformedDn { .. } => "malformed-dn",
            IdentityError::MissingCountry => "missing-country",
            IdentityError::NotAuthorized { .. } => "not-authorized",
            IdentityError::Revoked => "certificate-revoked",
            IdentityError::OutsideValidity => "certificate-outside-validity",
            IdentityError::RepeatedHeader { .. } => "repeated-identity-header",
            IdentityError::ConflictingHeaders => "conflicting-identity-headers",
        }
    }

    /// The HTTP outcome: 403 without reason, 400, or 403 with reason.
    pub fn kind(&self) -> IdentityErrorKind {
        match self {
            IdentityError::MissingThumbprint
            | IdentityError::UnreadableThumbprint
            | IdentityError::MissingDn
            | IdentityError::UnreadableCertificate
            | IdentityError::RepeatedHeader { .. }
            | IdentityError::ConflictingHeaders => IdentityErrorKind::Unauthenticated,
            IdentityError::MalformedDn { .. } | IdentityError::MissingCountry => {
                IdentityErrorKind::BadRequest
            }
            IdentityError::NotAuthorized { .. }
            | IdentityError::Revoked
            | IdentityError::OutsideValidity => IdentityErrorKind::Forbidden,
        }
    }
}

/// The authenticated caller: certificate thumbprint and country.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientIdentity {
    /// SHA-256 of the client certificate's DER.
    pub thumbprint: Thumbprint,
    /// The country from the DN (first `C`).
    pub country: String,
}

/// Normalises the `X-SSL-Client-SHA256` header (decisions item 1):
/// - exactly 64 hex characters, either case, are lowercased;
/// - otherwise, if the value contains `%` it is percent-decoded (only `%XX`; a `+` stays a
///   `+`, since it is a Base64 character), then decoded as strict standard Base64 (padding
///   optional), which must give exactly 32 bytes;
/// - anything else (including malformed escapes and Base64 of another length) is `None`.
pub fn normalise_thumbprint(header: &str) -> Option<Thumbprint> {
    if let Some(t) = Thumbprint::parse_hex(header) {
        return Some(t);
    }
    let decoded;
    let b64 = if header.contains('%') {
        decoded = percent_decode(header, false).ok()?;
        decoded.as_slice()
    } else {
        header.as_bytes()
    };
    let bytes = B64.decode(b64).ok()?;
    let digest: [u8; 32] = bytes.try_into().ok()?;
    Some(Thumbprint::from_digest(&digest))
}

/// Decodes `%XX` escapes (and, for form decoding, `+` as a space) into bytes.
fn percent_decode(s: &str, plus_is_space: bool) -> Result<Vec<u8>, &'static str> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or("incomplete % escape")?;
                let hi = (hex[0] as char).to_digit(16).ok_or("non-hex % escape")?;
                let lo = (hex[1] as char).to_digit(16).ok_or("non-hex % escape")?;
                // Two hex digits are at most 0xFF.
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(u8::MAX));
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Java's `String.trim`: strips every character up to and including U+0020.
fn java_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

/// The country of an `X-SSL-Client-DN` header value (protocol §2 steps 3-5):
/// - URL form decoding: `%XX` escapes, `+` is a space (invalid UTF-8 is replaced, as Java
///   does); a malformed escape is [`IdentityError::MalformedDn`] (400);
/// - split on `,`; each part split on `=` as Java's `String.split` does (trailing empty pieces
///   dropped, so `U=` gives one piece); parts that do not give exactly two pieces are skipped;
/// - key upper-cased and trimmed, value trimmed; the **first** occurrence of a key wins;
/// - no `C`, or an empty one, is [`IdentityError::MissingCountry`] (400).
///
/// Values containing `,` or `=` are not supported (as in the reference).
pub fn country_from_dn(dn: &str) -> Result<String, IdentityError> {
    let decoded =
        percent_decode(dn, true).map_err(|reason| IdentityError::MalformedDn { reason })?;
    let decoded = String::from_utf8_lossy(&decoded);
    for part in decoded.split(',') {
        let mut pieces: Vec<&str> = part.split('=').collect();
        while pieces.last().is_some_and(|p| p.is_empty()) {
            pieces.pop();
        }
        let [key, value] = pieces.as_slice() else {
            continue;
        };
        if java_trim(key).to_uppercase() == "C" {
            // First occurrence wins: later C's are ignored.
            let value = java_trim(value);
            return if value.is_empty() {
                Err(IdentityError::MissingCountry)
            } else {
                Ok(value.to_owned())
            };
        }
    }
    Err(IdentityError::MissingCountry)
}

/// The identity from the proxy's headers (`X-SSL-Client-SHA256`, `X-SSL-Client-DN`).
/// A missing header or an unreadable thumbprint is [`IdentityErrorKind::Unauthenticated`]
/// (checked before the DN is parsed, as in the reference); a DN without `C` is a 400.
pub fn identity_from_headers(
    thumbprint: Option<&str>,
    dn: Option<&str>,
) -> Result<ClientIdentity, IdentityError> {
    let thumbprint = thumbprint.ok_or(IdentityError::MissingThumbprint)?;
    let dn = dn.ok_or(IdentityError::MissingDn)?;
    let thumbprint = normalise_thumbprint(thumbprint).ok_or(IdentityError::UnreadableThumbprint)?;
    let country = country_from_dn(dn)?;
    Ok(ClientIdentity {
        thumbprint,
        country,
    })
}

/// The identity from a client certificate, PEM text (first `CERTIFICATE` block) or DER: the
/// thumbprint of the DER as received, the country of the subject's first `C` (one `C` is the
/// normal case; nginx renders the DN header in reverse RDN order, so with several `C`s the
/// header route may pick another one).
pub fn identity_from_certificate(cert: &[u8]) -> Result<ClientIdentity, IdentityError> {
    let der = match std::str::from_utf8(cert) {
        Ok(text) if text.contains("-----BEGIN") => {
            first_certificate_der(text).map_err(|_| IdentityError::UnreadableCertificate)?
        }
        _ => cert.to_vec(),
    };
    let certificate =
        x509_cert::Certificate::from_der(&der).map_err(|_| IdentityError::UnreadableCertificate)?;
    let country = countries_in(certificate.tbs_certificate().subject())
        .into_iter()
        .map(|c| java_trim(&c).to_owned())
        .next()
        .filter(|c| !c.is_empty())
        .ok_or(IdentityError::MissingCountry)?;
    Ok(ClientIdentity {
        thumbprint: Thumbprint::of_der(&der),
        country,
    })
}

/// The identity from an `X-SSL-Client-Cert` header: the URL-encoded PEM of nginx's
/// `$ssl_client_escaped_cert`. Only `%XX` escapes are decoded (a `+` is Base64); a proxy
/// that form-encoded the spaces of the BEGIN/END lines as `+` is tolerated too.
pub fn identity_from_cert_header(value: &str) -> Result<ClientIdentity, IdentityError> {
    let decoded = percent_decode(value, false).map_err(|_| IdentityError::UnreadableCertificate)?;
    let text = String::from_utf8(decoded).map_err(|_| IdentityError::UnreadableCertificate)?;
    let text = text
        .replace("-----BEGIN+CERTIFICATE-----", "-----BEGIN CERTIFICATE-----")
        .replace("-----END+CERTIFICATE-----", "-----END CERTIFICATE-----");
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(IdentityError::UnreadableCertificate);
    }
    identity_from_certificate(text.as_bytes())
}

/// A certificate's validity period (`notBefore`, `notAfter`), from PEM or DER; `None` when it
/// does not parse.
pub fn certificate_validity(cert: &[u8]) -> Option<Validity> {
    let der = match std::str::from_utf8(cert) {
        Ok(text) if text.contains("-----BEGIN") => first_certificate_der(text).ok()?,
        _ => cert.to_vec(),
    };
    let certificate = x509_cert::Certificate::from_der(&der).ok()?;
    let validity = certificate.tbs_certificate().validity();
    let instant = |t: x509_cert::time::Time| {
        let secs = i64::try_from(t.to_unix_duration().as_secs()).ok()?;
        time::OffsetDateTime::from_unix_timestamp(secs).ok()
    };
    Some(Validity {
        not_before: instant(validity.not_before)?,
        not_after: instant(validity.not_after)?,
    })
}

/// A certificate's validity period, both ends included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// `notBefore`.
    pub not_before: time::OffsetDateTime,
    /// `notAfter`.
    pub not_after: time::OffsetDateTime,
}

impl Validity {
    /// [`IdentityError::OutsideValidity`] unless `now` lies in the period.
    pub fn check(&self, now: time::OffsetDateTime) -> Result<(), IdentityError> {
        if now < self.not_before || now > self.not_after {
            Err(IdentityError::OutsideValidity)
        } else {
            Ok(())
        }
    }
}

/// The identity from a trusted proxy's headers: `X-SSL-Client-Cert` when given (the caller
/// passes it only when the operator turned it on), else `X-SSL-Client-SHA256` and
/// `X-SSL-Client-DN`. When the certificate and the thumbprint header both arrive they must name
/// the same certificate ([`IdentityError::ConflictingHeaders`]).
pub fn identity_from_proxy_headers(
    thumbprint: Option<&str>,
    dn: Option<&str>,
    certificate: Option<&str>,
) -> Result<ClientIdentity, IdentityError> {
    let Some(cert) = certificate else {
        return identity_from_headers(thumbprint, dn);
    };
    let id = identity_from_cert_header(cert)?;
    if let Some(t) = thumbprint
        && normalise_thumbprint(t).as_ref() != Some(&id.thumbprint)
    {
        return Err(IdentityError::ConflictingHeaders);
    }
    Ok(id)
}

/// The authorisation decision for an identified client (protocol §2 steps 6-7), given the
/// trust-list entry the store found for its thumbprint (or `None`).
///
/// The entry must be for the same thumbprint and country, of type AUTHENTICATION, and pass
/// [`TrustListEntry::verify`]; anything else is [`IdentityError::NotAuthorized`] (a failed
/// integrity check counts as not found). A revoked entry is [`IdentityError::Revoked`].
pub fn authorise(
    identity: &ClientIdentity,
    entry: Option<&TrustListEntry>,
    anchors: &TrustAnchors,
) -> Result<(), IdentityError> {
    let not_authorized = |reason| Err(IdentityError::NotAuthorized { reason });
    let Some(entry) = entry else {
        return not_authorized(NotAuthorizedReason::UnknownThumbprint);
    };
    if entry.thumbprint != identity.thumbprint {
        return not_authorized(NotAuthorizedReason::ThumbprintMismatch);
    }
    if entry.country != identity.country {
        return not_authorized(NotAuthorizedReason::CountryMismatch);
    }
    if entry.cert_type != CertificateType::Authentication {
        return not_authorized(NotAuthorizedReason::WrongType);
    }
    if let Err(e) = entry.verify(anchors) {
        return not_authorized(NotAuthorizedReason::IntegrityCheckFailed(e.code()));
    }
    if entry.revoked {
        return Err(IdentityError::Revoked);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoder() {
        assert_eq!(percent_decode("a%3Db+c", true).unwrap(), b"a=b c");
        assert_eq!(percent_decode("a%3db+c", false).unwrap(), b"a=b+c");
        assert!(percent_decode("%zz", true).is_err());
        assert!(percent_decode("abc%4", true).is_err());
        assert!(percent_decode("%", true).is_err());
    }

    #[test]
    fn java_split_semantics() {
        assert_eq!(country_from_dn("C=DE").unwrap(), "DE");
        assert_eq!(country_from_dn("U=,C=DE").unwrap(), "DE");
        assert_eq!(country_from_dn("C==,C=FR").unwrap(), "FR");
        assert!(matches!(
            country_from_dn("C=DE=X"),
            Err(IdentityError::MissingCountry)
        ));
    }
}
