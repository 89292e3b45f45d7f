//! Verification of a detached CMS SignedData (protocol §4.2, decisions item 4).

use base64::Engine as _;
use der::{Decode, Encode};
use time::OffsetDateTime;
use x509_cert::Certificate;
use x509_cert::ext::pkix::SubjectKeyIdentifier;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;

use super::algorithms::{self, AlgId, PublicKey, oid};
use super::ber::{BerError, Tlv, tag};
use super::{SignatureError, SignaturePolicy, SignerClaim, VerifiedSigner, asn1_time};

/// Standard alphabet; padding optional; no whitespace; non-zero trailing bits tolerated (as
/// `java.util.Base64`).
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

impl From<BerError> for SignatureError {
    fn from(e: BerError) -> Self {
        SignatureError::Parse { what: e.0 }
    }
}

/// Verifies a detached CMS signature given as the `batchSignature` header value (standard
/// Base64, padding optional, no whitespace) over `content` (the canonical batch bytes) at
/// `now`. See the [module documentation](super) for the rules.
pub fn verify_detached(
    signature_b64: &str,
    content: &[u8],
    now: OffsetDateTime,
    policy: &SignaturePolicy,
) -> Result<VerifiedSigner, SignatureError> {
    let bytes = BASE64
        .decode(signature_b64)
        .map_err(|source| SignatureError::Base64 { source })?;
    verify_detached_der(&bytes, content, now, policy)
}

/// As [`verify_detached`], for the already decoded DER/BER bytes of the `ContentInfo`.
pub fn verify_detached_der(
    cms: &[u8],
    content: &[u8],
    now: OffsetDateTime,
    policy: &SignaturePolicy,
) -> Result<VerifiedSigner, SignatureError> {
    let (si, cert_der, cert) = signer_parts(cms)?;
    let tbs = cert.tbs_certificate();

    // Step 5: validity, strictly.
    let not_before = to_offset(tbs.validity().not_before)?;
    let not_after = to_offset(tbs.validity().not_after)?;
    if now <= not_before {
        return Err(SignatureError::CertificateNotYetValid { not_before });
    }
    if now >= not_after {
        return Err(SignatureError::CertificateExpired { not_after });
    }

    // Step 6: exactly one C.
    let country = signer_country(tbs.subject())?;

    // Algorithm policy (decisions item 4).
    let key = PublicKey::from_spki(tbs.subject_public_key_info(), policy.min_rsa_bits)?;
    let digest_alg = algorithms::digest_algorithm(&si.digest_alg, policy.allow_sha1)?;
    let scheme =
        algorithms::signature_scheme(&si.signature_alg, digest_alg, &key, policy.allow_sha1)?;

    // Step 9: signed attributes and the signature itself.
    let mut signing_time = None;
    match &si.signed_attrs {
        Some(attrs_tlv) => {
            let attrs = SignedAttrs::parse(attrs_tlv)?;
            // content-type = id-data
            let ct = attrs.single_value(&oid::CONTENT_TYPE, "content-type")?;
            let ct = ct
                .ok_or(SignatureError::AttributeMissing {
                    attribute: "content-type",
                })?
                .oid()
                .map_err(|_| SignatureError::AttributeInvalid {
                    attribute: "content-type",
                    reason: "not an OBJECT IDENTIFIER",
                })?;
            if ct != oid::ID_DATA {
                return Err(SignatureError::ContentTypeNotData {
                    content_type: ct.to_string(),
                });
            }
            // exactly one message-digest, equal to the content digest
            let md = attrs
                .single_value(&oid::MESSAGE_DIGEST, "message-digest")?
                .ok_or(SignatureError::AttributeMissing {
                    attribute: "message-digest",
                })?;
            if md.base_is(tag::OCTET_STRING).is_none() {
                return Err(SignatureError::AttributeInvalid {
                    attribute: "message-digest",
                    reason: "not an OCTET STRING",
                });
            }
            let md = md.octets()?;
            if *md != *digest_alg.digest(content) {
                return Err(SignatureError::DigestMismatch);
            }
            // signing-time within the certificate validity (BouncyCastle: inclusive bounds)
            if let Some(st) = attrs.single_value(&oid::SIGNING_TIME, "signing-time")? {
                let t = asn1_time::parse(&st).ok_or(SignatureError::AttributeInvalid {
                    attribute: "signing-time",
                    reason: "not a valid UTCTime or GeneralizedTime",
                })?;
                if t < not_before || t > not_after {
                    return Err(SignatureError::SigningTimeOutsideValidity { signing_time: t });
                }
                signing_time = Some(t);
            }
            // CMSAlgorithmProtection must agree
            if let Some(ap) =
                attrs.single_value(&oid::CMS_ALGORITHM_PROTECTION, "CMS algorithm protection")?
            {
                check_algorithm_protection(&ap, &si)?;
            }

            // The signature covers the DER SET OF: the received bytes with the tag patched,
            // unless they arrived in a BER form.
            let mut received = attrs_tlv.raw.to_vec();
            received[0] = tag::SET;
            let as_der = |sort: bool| -> Result<Vec<u8>, SignatureError> {
                let mut out = Vec::with_capacity(attrs_tlv.raw.len());
                attrs_tlv.write_der_as_set(&mut out, sort)?;
                Ok(out)
            };
            let primary = if as_der(false)? == received {
                received
            } else {
                as_der(true)?
            };
            let result = algorithms::verify_signature(&key, &scheme, &primary, &si.signature);
            if matches!(result, Err(SignatureError::BadSignature)) {
                let sorted = as_der(true)?;
                if sorted != primary {
                    algorithms::verify_signature(&key, &scheme, &sorted, &si.signature)?;
                } else {
                    result?;
                }
            } else {
                result?;
            }
        }
        None => {
            algorithms::verify_signature(&key, &scheme, content, &si.signature)?;
        }
    }

    Ok(VerifiedSigner {
        certificate_der: cert_der.to_vec(),
        thumbprint: crate::cert::Thumbprint::of_der(cert_der),
        country,
        subject: tbs.subject().to_string(),
        not_before,
        not_after,
        digest_algorithm: digest_alg,
        signature_scheme: scheme,
        signing_time,
        signed_attributes: si.signed_attrs.is_some(),
    })
}

/// Who claims to have signed a `batchSignature` header value: the thumbprint and country of
/// the signer certificate, found exactly as [`verify_detached`] finds it, with the same errors,
/// but without checking validity, algorithms or the signature itself.
///
/// It is cheap (parsing only), so a caller can look the signer up on the trust list before it
/// spends a public-key operation on a signature by a certificate it would refuse anyway (the
/// gateway does; hardening issue, low items). A `SignerClaim` proves nothing: only
/// [`verify_detached`] does.
pub fn signer_claim(signature_b64: &str) -> Result<SignerClaim, SignatureError> {
    let bytes = BASE64
        .decode(signature_b64)
        .map_err(|source| SignatureError::Base64 { source })?;
    let (_, cert_der, cert) = signer_parts(&bytes)?;
    Ok(SignerClaim {
        thumbprint: crate::cert::Thumbprint::of_der(cert_der),
        country: signer_country(cert.tbs_certificate().subject())?,
    })
}

/// Steps 1-4: ContentInfo, SignedData, the first SignerInfo and its certificate.
fn signer_parts(cms: &[u8]) -> Result<(SignerInfoParts<'_>, &[u8], Certificate), SignatureError> {
    if cms.is_empty() {
        return Err(SignatureError::Empty);
    }
    let signed_data = parse_content_info(cms)?;
    let sd = parse_signed_data(&signed_data)?;
    let si_tlv = sd
        .signer_infos
        .first()
        .ok_or(SignatureError::NoSignerInfo)?;
    let si = parse_signer_info(si_tlv)?;
    // Step 4: the signer certificate, by SignerIdentifier.
    let (cert_der, cert) = sd
        .certificates
        .iter()
        .filter_map(|raw| decode_certificate(raw).map(|c| (*raw, c)))
        .find(|(_, c)| si.sid.matches(c))
        .ok_or(SignatureError::SignerCertificateMissing)?;
    Ok((si, cert_der, cert))
}

/// Step 6: the subject's single `C`.
fn signer_country(subject: &Name) -> Result<String, SignatureError> {
    let countries = crate::cert::countries_in(subject);
    match crate::cert::single_country(subject) {
        Some(c) => Ok(c),
        None if countries.is_empty() => Err(SignatureError::CountryMissing),
        None => Err(SignatureError::CountryAmbiguous { countries }),
    }
}

fn to_offset(t: x509_cert::time::Time) -> Result<OffsetDateTime, SignatureError> {
    i64::try_from(t.to_unix_duration().as_secs())
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .ok_or(SignatureError::Parse {
            what: "certificate validity out of range",
        })
}

impl Tlv<'_> {
    /// `Some(())` when this is the given universal string type, primitive or constructed.
    fn base_is(&self, t: u8) -> Option<()> {
        (self.ident.len() == 1 && self.ident[0] & !0x20 == t).then_some(())
    }
}

/// ContentInfo → the SignedData TLV.
fn parse_content_info(bytes: &[u8]) -> Result<Tlv<'_>, SignatureError> {
    let ci = Tlv::read_exact(bytes)?.expect(tag::SEQUENCE, "ContentInfo is not a SEQUENCE")?;
    let kids = ci.children()?;
    let (ct, rest) = kids.split_first().ok_or(BerError("empty ContentInfo"))?;
    let ct = ct.oid()?;
    if ct != oid::ID_SIGNED_DATA {
        return Err(SignatureError::NotSignedData {
            content_type: ct.to_string(),
        });
    }
    match rest {
        [explicit] => {
            let explicit = explicit.expect(0xa0, "ContentInfo content is not [0]")?;
            Ok(Tlv::read_exact(explicit.value)?)
        }
        _ => Err(BerError("ContentInfo without exactly one content").into()),
    }
}

struct SignedDataParts<'a> {
    certificates: Vec<&'a [u8]>,
    signer_infos: Vec<Tlv<'a>>,
}

fn parse_signed_data<'a>(sd: &Tlv<'a>) -> Result<SignedDataParts<'a>, SignatureError> {
    let sd = sd.expect(tag::SEQUENCE, "SignedData is not a SEQUENCE")?;
    let kids = sd.children()?;
    let mut it = kids.into_iter().peekable();
    let version = it.next().ok_or(BerError("SignedData too short"))?;
    version.small_uint()?;
    it.next()
        .ok_or(BerError("SignedData too short"))?
        .expect(tag::SET, "digestAlgorithms is not a SET")?;
    let encap = it
        .next()
        .ok_or(BerError("SignedData too short"))?
        .expect(tag::SEQUENCE, "encapContentInfo is not a SEQUENCE")?;
    let econtent_type = encap
        .children()?
        .first()
        .ok_or(BerError("empty encapContentInfo"))?
        .oid()?;
    if econtent_type != oid::ID_DATA {
        return Err(SignatureError::EncapsulatedContentNotData {
            content_type: econtent_type.to_string(),
        });
    }
    let mut certificates = Vec::new();
    if let Some(certs) = it.next_if(|t| t.ident == [0xa0]) {
        for choice in certs.children()? {
            // CertificateChoices: only the plain `Certificate` alternative is used.
            if choice.ident == [tag::SEQUENCE] {
                certificates.push(choice.raw);
            }
        }
    }
    // CRLs are ignored (§4.2: none expected).
    let _ = it.next_if(|t| t.ident == [0xa1]);
    let signer_infos = it
        .next()
        .ok_or(BerError("SignedData without signerInfos"))?
        .expect(tag::SET, "signerInfos is not a SET")?
        .children()?;
    if it.next().is_some() {
        return Err(BerError("unexpected field after signerInfos").into());
    }
    Ok(SignedDataParts {
        certificates,
        signer_infos,
    })
}

enum SignerId {
    IssuerSerial { issuer: Name, serial: Vec<u8> },
    KeyId(Vec<u8>),
}

impl SignerId {
    fn matches(&self, cert: &Certificate) -> bool {
        let tbs = cert.tbs_certificate();
        match self {
            SignerId::IssuerSerial { issuer, serial } => {
                tbs.issuer() == issuer
                    && tbs
                        .serial_number()
                        .to_der()
                        .is_ok_and(|s| s.as_slice() == serial.as_slice())
            }
            SignerId::KeyId(id) => match tbs.get_extension::<SubjectKeyIdentifier>() {
                Ok(Some((_, ski))) => ski.0.as_bytes() == id.as_slice(),
                // No extension: RFC 5280 method 1 (SHA-1 of the key bits), as BouncyCastle.
                _ => {
                    use sha1::Digest;
                    let bits = tbs.subject_public_key_info().subject_public_key.raw_bytes();
                    sha1::Sha1::digest(bits).as_slice() == id.as_slice()
                }
            },
        }
    }
}

struct SignerInfoParts<'a> {
    sid: SignerId,
    digest_alg: AlgId<'a>,
    signed_attrs: Option<Tlv<'a>>,
    signature_alg: AlgId<'a>,
    signature: Vec<u8>,
}

fn parse_signer_info<'a>(si: &Tlv<'a>) -> Result<SignerInfoParts<'a>, SignatureError> {
    let si = si.expect(tag::SEQUENCE, "SignerInfo is not a SEQUENCE")?;
    let kids = si.children()?;
    let mut it = kids.into_iter().peekable();
    let short = || BerError("SignerInfo too short");
    it.next().ok_or_else(short)?.small_uint()?;
    let sid_tlv = it.next().ok_or_else(short)?;
    let sid = match sid_tlv.ident {
        [tag::SEQUENCE] => {
            let parts = sid_tlv.children()?;
            let [issuer, serial] = parts.as_slice() else {
                return Err(BerError("malformed IssuerAndSerialNumber").into());
            };
            let mut issuer_der = Vec::new();
            issuer.write_der(&mut issuer_der, false)?;
            let issuer = Name::from_der(&issuer_der).map_err(|_| SignatureError::Parse {
                what: "malformed issuer name in SignerInfo",
            })?;
            let serial = serial.expect(tag::INTEGER, "serial number is not an INTEGER")?;
            let mut serial_der = Vec::new();
            serial.write_der(&mut serial_der, false)?;
            // Normalise through the same decoder the certificate's serial went through.
            let serial = SerialNumber::<x509_cert::certificate::Rfc5280>::from_der(&serial_der)
                .and_then(|s| s.to_der())
                .map_err(|_| SignatureError::Parse {
                    what: "malformed serial number in SignerInfo",
                })?;
            SignerId::IssuerSerial { issuer, serial }
        }
        [0x80] | [0xa0] => SignerId::KeyId(sid_tlv.octets()?.into_owned()),
        _ => return Err(BerError("unknown SignerIdentifier").into()),
    };
    let digest_alg = AlgId::parse(&it.next().ok_or_else(short)?)?;
    let signed_attrs = it.next_if(|t| t.ident == [0xa0]);
    let signature_alg = AlgId::parse(&it.next().ok_or_else(short)?)?;
    let sig = it.next().ok_or_else(short)?;
    if sig.base_is(tag::OCTET_STRING).is_none() {
        return Err(BerError("signature is not an OCTET STRING").into());
    }
    let signature = sig.octets()?.into_owned();
    let _unsigned = it.next_if(|t| t.ident == [0xa1]);
    if it.next().is_some() {
        return Err(BerError("unexpected field in SignerInfo").into());
    }
    Ok(SignerInfoParts {
        sid,
        digest_alg,
        signed_attrs,
        signature_alg,
        signature,
    })
}

/// A certificate from the `certificates` set: DER, or BER as a fallback.
fn decode_certificate(raw: &[u8]) -> Option<Certificate> {
    Certificate::from_der(raw)
        .or_else(|_| Certificate::from_ber(raw))
        .ok()
}

struct SignedAttrs<'a> {
    attrs: Vec<(const_oid::ObjectIdentifier, Vec<Tlv<'a>>)>,
}

impl<'a> SignedAttrs<'a> {
    fn parse(t: &Tlv<'a>) -> Result<Self, SignatureError> {
        let mut attrs = Vec::new();
        for a in t.children()? {
            let a = a.expect(tag::SEQUENCE, "attribute is not a SEQUENCE")?;
            let parts = a.children()?;
            let [ty, values] = parts.as_slice() else {
                return Err(BerError("malformed attribute").into());
            };
            let values = values
                .expect(tag::SET, "attribute values are not a SET")?
                .children()?;
            attrs.push((ty.oid()?, values));
        }
        if attrs.is_empty() {
            return Err(BerError("empty signed attributes").into());
        }
        Ok(SignedAttrs { attrs })
    }

    /// The single value of an attribute that may occur at most once with exactly one value.
    fn single_value(
        &self,
        oid: &const_oid::ObjectIdentifier,
        name: &'static str,
    ) -> Result<Option<Tlv<'a>>, SignatureError> {
        let mut found = self.attrs.iter().filter(|(o, _)| o == oid);
        let Some((_, values)) = found.next() else {
            return Ok(None);
        };
        if found.next().is_some() {
            return Err(SignatureError::AttributeInvalid {
                attribute: name,
                reason: "attribute occurs more than once",
            });
        }
        match values.as_slice() {
            [v] => Ok(Some(*v)),
            _ => Err(SignatureError::AttributeInvalid {
                attribute: name,
                reason: "attribute must have exactly one value",
            }),
        }
    }
}

/// RFC 6211 `CMSAlgorithmProtection ::= SEQUENCE { digestAlgorithm, signatureAlgorithm [1]
/// IMPLICIT OPTIONAL, macAlgorithm [2] IMPLICIT OPTIONAL }`: for SignedData the digest and
/// signature algorithms must be there and equal the SignerInfo's (absent parameters = NULL).
fn check_algorithm_protection(
    ap: &Tlv<'_>,
    si: &SignerInfoParts<'_>,
) -> Result<(), SignatureError> {
    let malformed = |_| SignatureError::AttributeInvalid {
        attribute: "CMS algorithm protection",
        reason: "malformed",
    };
    let seq = ap
        .expect(tag::SEQUENCE, "not a SEQUENCE")
        .map_err(malformed)?;
    let kids = seq.children().map_err(malformed)?;
    let (digest, rest) = kids.split_first().ok_or(SignatureError::AttributeInvalid {
        attribute: "CMS algorithm protection",
        reason: "malformed",
    })?;
    let digest = AlgId::parse(digest).map_err(malformed)?;
    let [sig] = rest else {
        // missing signature algorithm, or a MAC algorithm
        return Err(SignatureError::AlgorithmProtectionMismatch);
    };
    if sig.ident != [0xa1] {
        return Err(SignatureError::AlgorithmProtectionMismatch);
    }
    // [1] IMPLICIT AlgorithmIdentifier: read its contents as a SEQUENCE's.
    let mut as_seq = Vec::new();
    as_seq.push(tag::SEQUENCE);
    super::ber::push_len(&mut as_seq, sig.value.len());
    as_seq.extend_from_slice(sig.value);
    let sig_tlv = Tlv::read_exact(&as_seq).map_err(malformed)?;
    let sig_alg = AlgId::parse(&sig_tlv).map_err(malformed)?;
    if digest.equivalent(&si.digest_alg) && sig_alg.equivalent(&si.signature_alg) {
        Ok(())
    } else {
        Err(SignatureError::AlgorithmProtectionMismatch)
    }
}
