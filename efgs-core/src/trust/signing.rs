//! Signing.

use super::*;

/// A trust anchor's private key.
pub(super) enum SigningKey {
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
