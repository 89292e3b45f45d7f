//! Producing a detached CMS batch signature, as a member state's backend does.

use base64::Engine as _;
use der::Decode;
use time::OffsetDateTime;
use x509_cert::Certificate;

use super::algorithms::{HashAlgorithm, PublicKey, oid};
use super::ber::{self, Tlv, der, der_cat, der_oid, tag};
use super::{SignatureError, SignaturePolicy, asn1_time};
use crate::BoxError;
use crate::cert::Thumbprint;

/// Why the certificate or the private key given to [`BatchSigner`] could not be read: the
/// `source` of [`SignatureError::InvalidSignerInput`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignerInputError {
    /// A PEM block has no matching `-----END` line.
    #[error("unterminated PEM block {label}")]
    UnterminatedPem {
        /// The block's label.
        label: String,
    },
    /// The PEM block has headers (`Proc-Type`, `DEK-Info`): an encrypted legacy key.
    #[error("encrypted PEM keys are not supported")]
    EncryptedPem,
    /// Only an `ENCRYPTED PRIVATE KEY` block was found.
    #[error("encrypted PKCS#8 keys are not supported")]
    EncryptedPkcs8,
    /// A PEM block's body is not Base64.
    #[error("bad Base64 in PEM block {label}: {source}")]
    PemBase64 {
        /// The block's label.
        label: String,
        /// The decoder's error.
        #[source]
        source: base64::DecodeError,
    },
    /// No PEM block with a wanted label.
    #[error("no PEM block labelled {wanted} (found: {found})")]
    NoPemBlock {
        /// The labels looked for, `/`-separated.
        wanted: String,
        /// The labels found, comma-separated, or `none`.
        found: String,
    },
    /// The certificate is not DER X.509.
    #[error("not a DER X.509 certificate: {0}")]
    Certificate(#[source] der::Error),
    /// The certificate's issuer and serial number could not be read.
    #[error("cannot read issuer and serial: {0}")]
    IssuerAndSerial(&'static str),
    /// The key bytes are not a key of the expected kind.
    #[error("{what}: {source}")]
    Key {
        /// What was expected, e.g. `"not a PKCS#1 RSA key"`, `"bad SEC1 P-256 key"`.
        what: &'static str,
        /// The decoder's error.
        #[source]
        source: BoxError,
    },
    /// A PKCS#8 EC key does not name its curve.
    #[error("PKCS#8 EC key without a named curve")]
    NoNamedCurve,
    /// A SEC1 key names no curve and the certificate key is not EC.
    #[error("SEC1 key without a curve")]
    Sec1WithoutCurve,
    /// An EC curve other than P-256 and P-384.
    #[error("unsupported curve {0}")]
    UnsupportedCurve(const_oid::ObjectIdentifier),
    /// A PKCS#8 key of an algorithm other than RSA and EC.
    #[error("unsupported key algorithm {0}")]
    UnsupportedKeyAlgorithm(const_oid::ObjectIdentifier),
}

/// `map_err` helper: a key decoder's error under `what`.
fn key_error<E>(what: &'static str) -> impl FnOnce(E) -> SignerInputError
where
    E: std::error::Error + Send + Sync + 'static,
{
    move |e| SignerInputError::Key {
        what,
        source: Box::new(e),
    }
}

enum PrivateKey {
    Rsa(Box<rsa::PrivateKey>),
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
}

impl PrivateKey {
    fn kind(&self) -> &'static str {
        match self {
            PrivateKey::Rsa(_) => "RSA",
            PrivateKey::P256(_) => "ECDSA P-256",
            PrivateKey::P384(_) => "ECDSA P-384",
        }
    }
}

/// Signs canonical batch bytes with a signing certificate and its private key, producing the
/// `batchSignature` header value: Base64 of a DER detached SignedData (version 1, one
/// SignerInfo by issuer and serial number, the certificate embedded, signed attributes
/// content-type, signing-time and message-digest).
///
/// Algorithms: RSA keys sign `sha256WithRSAEncryption` (PKCS#1 v1.5, SHA-256); P-256 keys
/// `ecdsa-with-SHA256`; P-384 keys `ecdsa-with-SHA384` with a SHA-384 digest algorithm (OpenSSL
/// hashes the signed attributes with the digest algorithm, so the two are kept equal). Both
/// schemes are deterministic, so no random number generator is taken.
///
/// `Debug` shows the certificate thumbprint and key type, never key material.
pub struct BatchSigner {
    certificate_der: Vec<u8>,
    issuer_and_serial: Vec<u8>,
    key: PrivateKey,
}

impl std::fmt::Debug for BatchSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchSigner")
            .field("certificate", &self.thumbprint())
            .field("key", &format_args!("{} <redacted>", self.key.kind()))
            .finish()
    }
}

impl BatchSigner {
    /// From a PEM certificate (the first `CERTIFICATE` block) and a PEM private key: PKCS#8
    /// `PRIVATE KEY` (RSA or EC), PKCS#1 `RSA PRIVATE KEY` or SEC1 `EC PRIVATE KEY` (other
    /// blocks such as `EC PARAMETERS` are skipped). Checks that the key belongs to the
    /// certificate.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, SignatureError> {
        let cert = pem_block(cert_pem, &["CERTIFICATE"]).map_err(bad_input("certificate"))?;
        let (label, key) = pem_block_labelled(
            key_pem,
            &["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"],
        )
        .map_err(bad_input("private key"))?;
        let format = match label {
            "PRIVATE KEY" => KeyFormat::Pkcs8,
            "RSA PRIVATE KEY" => KeyFormat::Pkcs1,
            _ => KeyFormat::Sec1,
        };
        Self::build(cert, &key, Some(format))
    }

    /// From a DER certificate and a DER private key (PKCS#8, PKCS#1 or SEC1, tried in this
    /// order). Checks that the key belongs to the certificate.
    pub fn from_der(cert_der: &[u8], key_der: &[u8]) -> Result<Self, SignatureError> {
        Self::build(cert_der.to_vec(), key_der, None)
    }

    fn build(
        certificate_der: Vec<u8>,
        key_der: &[u8],
        format: Option<KeyFormat>,
    ) -> Result<Self, SignatureError> {
        let cert = Certificate::from_der(&certificate_der)
            .map_err(|e| bad_input("certificate")(SignerInputError::Certificate(e)))?;
        let cert_key = PublicKey::from_spki(
            cert.tbs_certificate().subject_public_key_info(),
            SignaturePolicy::default().min_rsa_bits,
        )?;
        let key = read_private_key(key_der, format, &cert_key)?;
        let matches = match (&key, &cert_key) {
            (PrivateKey::Rsa(k), PublicKey::Rsa { key: pk, .. }) => k.to_public_key() == *pk,
            (PrivateKey::P256(k), PublicKey::P256(pk)) => k.verifying_key() == pk,
            (PrivateKey::P384(k), PublicKey::P384(pk)) => k.verifying_key() == pk,
            _ => false,
        };
        if !matches {
            return Err(SignatureError::KeyMismatch);
        }
        let issuer_and_serial = issuer_and_serial(&certificate_der)
            .map_err(|e| bad_input("certificate")(SignerInputError::IssuerAndSerial(e.0)))?;
        Ok(BatchSigner {
            certificate_der,
            issuer_and_serial,
            key,
        })
    }

    /// The signing certificate (DER), as embedded in every signature.
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate_der
    }

    /// The thumbprint of the signing certificate.
    pub fn thumbprint(&self) -> Thumbprint {
        Thumbprint::of_der(&self.certificate_der)
    }

    /// Signs `content` (the canonical batch bytes) with signing time `now`; returns the
    /// Base64 (standard, padded) of the DER SignedData.
    pub fn sign(&self, content: &[u8], now: OffsetDateTime) -> Result<String, SignatureError> {
        Ok(base64::engine::general_purpose::STANDARD.encode(self.sign_der(content, now)?))
    }

    /// As [`Self::sign`], returning the DER bytes.
    pub fn sign_der(&self, content: &[u8], now: OffsetDateTime) -> Result<Vec<u8>, SignatureError> {
        let mut attrs = self.standard_attributes(content, now)?;
        attrs.sort(); // DER SET OF order
        let parts: Vec<&[u8]> = attrs.iter().map(Vec::as_slice).collect();
        let set = der_cat(tag::SET, &parts);
        let mut sent = set.clone();
        sent[0] = 0xa0; // [0] IMPLICIT in the SignerInfo
        self.assemble(&set, &sent)
    }

    /// The hash this signer uses (digest algorithm and signature hash).
    pub(crate) fn hash(&self) -> HashAlgorithm {
        match self.key {
            PrivateKey::P384(_) => HashAlgorithm::Sha384,
            _ => HashAlgorithm::Sha256,
        }
    }

    /// The DER `AlgorithmIdentifier`s of the digest and of the signature.
    pub(crate) fn algorithm_identifiers(&self) -> (Vec<u8>, Vec<u8>) {
        let hash = self.hash();
        let digest_alg = der(tag::SEQUENCE, &der_oid(&hash.oid()));
        let (sig_alg, sig_params): (_, &[u8]) = match (&self.key, hash) {
            (PrivateKey::Rsa(_), _) => (oid::SHA256_WITH_RSA, &[tag::NULL, 0]),
            (_, HashAlgorithm::Sha384) => (oid::ECDSA_WITH_SHA384, &[]),
            _ => (oid::ECDSA_WITH_SHA256, &[]),
        };
        (
            digest_alg,
            der_cat(tag::SEQUENCE, &[&der_oid(&sig_alg), sig_params]),
        )
    }

    /// The three signed attributes (content-type, signing-time, message-digest), each a DER
    /// `Attribute`, unsorted.
    pub(crate) fn standard_attributes(
        &self,
        content: &[u8],
        now: OffsetDateTime,
    ) -> Result<Vec<Vec<u8>>, SignatureError> {
        let signing_time = asn1_time::encode(now).ok_or(SignatureError::SigningFailed {
            reason: "signing time out of range",
        })?;
        Ok(vec![
            attribute(&oid::CONTENT_TYPE, &der_oid(&oid::ID_DATA)),
            attribute(&oid::SIGNING_TIME, &signing_time),
            attribute(
                &oid::MESSAGE_DIGEST,
                &der(tag::OCTET_STRING, &self.hash().digest(content)),
            ),
        ])
    }

    /// Signs `signed` (the DER SET OF attributes) and builds the ContentInfo, embedding
    /// `sent` (normally the same bytes with tag `[0]`) as the SignerInfo's signed attributes.
    pub(crate) fn assemble(&self, signed: &[u8], sent: &[u8]) -> Result<Vec<u8>, SignatureError> {
        let (digest_alg, sig_alg) = self.algorithm_identifiers();
        let signature = self.raw_sign(&self.hash().digest(signed))?;
        let signer_info = der_cat(
            tag::SEQUENCE,
            &[
                &der(tag::INTEGER, &[1]),
                &self.issuer_and_serial,
                &digest_alg,
                sent,
                &sig_alg,
                &der(tag::OCTET_STRING, &signature),
            ],
        );
        let signed_data = der_cat(
            tag::SEQUENCE,
            &[
                &der(tag::INTEGER, &[1]),
                &der(tag::SET, &digest_alg),
                &der(tag::SEQUENCE, &der_oid(&oid::ID_DATA)),
                &der(0xa0, &self.certificate_der),
                &der(tag::SET, &signer_info),
            ],
        );
        Ok(der_cat(
            tag::SEQUENCE,
            &[&der_oid(&oid::ID_SIGNED_DATA), &der(0xa0, &signed_data)],
        ))
    }

    fn raw_sign(&self, hashed: &[u8]) -> Result<Vec<u8>, SignatureError> {
        use signature::hazmat::PrehashSigner;
        let failed = SignatureError::SigningFailed {
            reason: "the private-key operation failed",
        };
        match &self.key {
            PrivateKey::Rsa(k) => {
                // PKCS#1 v1.5 is deterministic; the crate blinds the private operation itself.
                k.sign(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), hashed)
                    .map_err(|_| failed)
            }
            PrivateKey::P256(k) => {
                let sig: p256::ecdsa::Signature = k.sign_prehash(hashed).map_err(|_| failed)?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
            PrivateKey::P384(k) => {
                let sig: p384::ecdsa::Signature = k.sign_prehash(hashed).map_err(|_| failed)?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
        }
    }
}

/// A DER `Attribute` with one value.
pub(crate) fn attribute(ty: &const_oid::ObjectIdentifier, value: &[u8]) -> Vec<u8> {
    der_cat(tag::SEQUENCE, &[&der_oid(ty), &der(tag::SET, value)])
}

#[derive(Clone, Copy)]
enum KeyFormat {
    Pkcs8,
    Pkcs1,
    Sec1,
}

/// `map_err` helper: [`SignatureError::InvalidSignerInput`] for `what`.
fn bad_input(what: &'static str) -> impl Fn(SignerInputError) -> SignatureError {
    move |source| SignatureError::InvalidSignerInput { what, source }
}

fn read_private_key(
    der: &[u8],
    format: Option<KeyFormat>,
    cert_key: &PublicKey,
) -> Result<PrivateKey, SignatureError> {
    let read = |f: KeyFormat| match f {
        KeyFormat::Pkcs8 => read_pkcs8(der),
        KeyFormat::Pkcs1 => {
            use rsa::pkcs1::DecodeRsaPrivateKey;
            rsa::PrivateKey::from_pkcs1_der(der)
                .map(|k| PrivateKey::Rsa(Box::new(k)))
                .map_err(key_error("not a PKCS#1 RSA key"))
        }
        KeyFormat::Sec1 => read_sec1(der, cert_key),
    };
    // Without a PEM label, the formats in this order; the last one's error is reported.
    match format {
        Some(f) => read(f),
        None => read(KeyFormat::Pkcs8)
            .or_else(|_| read(KeyFormat::Pkcs1))
            .or_else(|_| read(KeyFormat::Sec1)),
    }
    .map_err(bad_input("private key"))
}

fn read_pkcs8(der: &[u8]) -> Result<PrivateKey, SignerInputError> {
    use rsa::pkcs8::DecodePrivateKey;
    let info =
        pkcs8::PrivateKeyInfoRef::try_from(der).map_err(key_error("not a PKCS#8 private key"))?;
    match info.algorithm.oid {
        oid::RSA_ENCRYPTION => rsa::PrivateKey::from_pkcs8_der(der)
            .map(|k| PrivateKey::Rsa(Box::new(k)))
            .map_err(key_error("bad PKCS#8 RSA key")),
        oid::EC_PUBLIC_KEY => {
            let curve = info
                .algorithm
                .parameters
                .and_then(|p| p.decode_as::<const_oid::ObjectIdentifier>().ok())
                .ok_or(SignerInputError::NoNamedCurve)?;
            match curve {
                oid::SECP256R1 => p256::SecretKey::from_pkcs8_der(der)
                    .map(|k| PrivateKey::P256(k.into()))
                    .map_err(key_error("bad PKCS#8 P-256 key")),
                oid::SECP384R1 => p384::SecretKey::from_pkcs8_der(der)
                    .map(|k| PrivateKey::P384(k.into()))
                    .map_err(key_error("bad PKCS#8 P-384 key")),
                other => Err(SignerInputError::UnsupportedCurve(other)),
            }
        }
        other => Err(SignerInputError::UnsupportedKeyAlgorithm(other)),
    }
}

fn read_sec1(der: &[u8], cert_key: &PublicKey) -> Result<PrivateKey, SignerInputError> {
    let ec = sec1::EcPrivateKey::try_from(der).map_err(key_error("not a SEC1 EC key"))?;
    let curve = match ec.parameters.and_then(|p| p.named_curve()) {
        Some(c) => c,
        None => match cert_key {
            PublicKey::P256(_) => oid::SECP256R1,
            PublicKey::P384(_) => oid::SECP384R1,
            PublicKey::Rsa { .. } => return Err(SignerInputError::Sec1WithoutCurve),
        },
    };
    match curve {
        oid::SECP256R1 => p256::SecretKey::from_sec1_der(der)
            .map(|k| PrivateKey::P256(k.into()))
            .map_err(key_error("bad SEC1 P-256 key")),
        oid::SECP384R1 => p384::SecretKey::from_sec1_der(der)
            .map(|k| PrivateKey::P384(k.into()))
            .map_err(key_error("bad SEC1 P-384 key")),
        other => Err(SignerInputError::UnsupportedCurve(other)),
    }
}

/// The DER `IssuerAndSerialNumber` built from the certificate's own encodings.
fn issuer_and_serial(cert: &[u8]) -> Result<Vec<u8>, ber::BerError> {
    let cert = Tlv::read_exact(cert)?.expect(tag::SEQUENCE, "certificate")?;
    let tbs = cert
        .children()?
        .into_iter()
        .next()
        .ok_or(ber::BerError("empty certificate"))?;
    let fields = tbs.children()?;
    let mut it = fields.iter().skip_while(|t| t.ident == [0xa0]);
    let serial = it.next().ok_or(ber::BerError("no serial number"))?;
    let _sig = it.next();
    let issuer = it.next().ok_or(ber::BerError("no issuer"))?;
    Ok(der_cat(tag::SEQUENCE, &[issuer.raw, serial.raw]))
}

/// The first PEM block with one of `labels`, decoded.
fn pem_block(text: &str, labels: &[&str]) -> Result<Vec<u8>, SignerInputError> {
    pem_block_labelled(text, labels).map(|(_, d)| d)
}

fn pem_block_labelled<'l>(
    text: &str,
    labels: &[&'l str],
) -> Result<(&'l str, Vec<u8>), SignerInputError> {
    let mut lines = text.lines().map(str::trim);
    let mut seen = Vec::new();
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut body = String::new();
        let mut closed = false;
        let mut has_headers = false;
        for l in lines.by_ref() {
            if l == end {
                closed = true;
                break;
            }
            if l.contains(':') {
                has_headers = true;
            }
            body.push_str(l);
        }
        if !closed {
            return Err(SignerInputError::UnterminatedPem {
                label: label.to_owned(),
            });
        }
        if let Some(wanted) = labels.iter().find(|w| **w == label) {
            if has_headers {
                return Err(SignerInputError::EncryptedPem);
            }
            let der = base64::engine::general_purpose::STANDARD
                .decode(body.as_bytes())
                .map_err(|source| SignerInputError::PemBase64 {
                    label: label.to_owned(),
                    source,
                })?;
            return Ok((wanted, der));
        }
        seen.push(label.to_owned());
    }
    if seen.iter().any(|l| l == "ENCRYPTED PRIVATE KEY") {
        return Err(SignerInputError::EncryptedPkcs8);
    }
    Err(SignerInputError::NoPemBlock {
        wanted: labels.join(" / "),
        found: if seen.is_empty() {
            "none".to_owned()
        } else {
            seen.join(", ")
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_scanner_skips_other_blocks_and_reports_labels() {
        let text = "junk\n-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n-----BEGIN EC PRIVATE KEY-----\nAAEC\nAw==\n-----END EC PRIVATE KEY-----\n";
        let (label, der) = pem_block_labelled(text, &["PRIVATE KEY", "EC PRIVATE KEY"]).unwrap();
        assert_eq!(label, "EC PRIVATE KEY");
        assert_eq!(der, [0, 1, 2, 3]);
        let err = pem_block(text, &["CERTIFICATE"]).unwrap_err().to_string();
        assert!(err.contains("EC PARAMETERS"), "{err}");
        let enc =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAEC\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert!(
            pem_block(enc, &["PRIVATE KEY"])
                .unwrap_err()
                .to_string()
                .contains("encrypted")
        );
    }
}
