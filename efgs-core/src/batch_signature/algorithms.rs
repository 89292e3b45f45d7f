//! Algorithm identifiers, the algorithm policy of decisions item 4, public keys and the raw
//! signature check.

use const_oid::ObjectIdentifier as Oid;
use sha2::Digest;

use super::SignatureError;
use super::ber::{BerError, Tlv, tag};

pub(crate) mod oid {
    use const_oid::ObjectIdentifier as Oid;

    pub(crate) const ID_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.1");
    pub(crate) const ID_SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");

    pub(crate) const CONTENT_TYPE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.3");
    pub(crate) const MESSAGE_DIGEST: Oid = Oid::new_unwrap("1.2.840.113549.1.9.4");
    pub(crate) const SIGNING_TIME: Oid = Oid::new_unwrap("1.2.840.113549.1.9.5");
    pub(crate) const CMS_ALGORITHM_PROTECTION: Oid = Oid::new_unwrap("1.2.840.113549.1.9.52");

    pub(crate) const SHA1: Oid = Oid::new_unwrap("1.3.14.3.2.26");
    pub(crate) const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
    pub(crate) const SHA384: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.2");
    pub(crate) const SHA512: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.3");

    pub(crate) const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
    pub(crate) const SHA1_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.5");
    pub(crate) const RSASSA_PSS: Oid = Oid::new_unwrap("1.2.840.113549.1.1.10");
    pub(crate) const SHA256_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.11");
    pub(crate) const SHA384_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.12");
    pub(crate) const SHA512_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.13");
    pub(crate) const MGF1: Oid = Oid::new_unwrap("1.2.840.113549.1.1.8");

    pub(crate) const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
    pub(crate) const ECDSA_WITH_SHA1: Oid = Oid::new_unwrap("1.2.840.10045.4.1");
    pub(crate) const ECDSA_WITH_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");
    pub(crate) const ECDSA_WITH_SHA384: Oid = Oid::new_unwrap("1.2.840.10045.4.3.3");
    pub(crate) const ECDSA_WITH_SHA512: Oid = Oid::new_unwrap("1.2.840.10045.4.3.4");
    pub(crate) const SECP256R1: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
    pub(crate) const SECP384R1: Oid = Oid::new_unwrap("1.3.132.0.34");
}

/// A digest algorithm the verifier knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HashAlgorithm {
    /// SHA-1 (only accepted with [`SignaturePolicy::allow_sha1`](super::SignaturePolicy)).
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl HashAlgorithm {
    /// The algorithm named by a digest OID, if supported.
    pub(crate) fn from_oid(oid: &Oid) -> Option<Self> {
        Some(match *oid {
            oid::SHA1 => HashAlgorithm::Sha1,
            oid::SHA256 => HashAlgorithm::Sha256,
            oid::SHA384 => HashAlgorithm::Sha384,
            oid::SHA512 => HashAlgorithm::Sha512,
            _ => return None,
        })
    }

    /// The digest OID.
    pub(crate) fn oid(self) -> Oid {
        match self {
            HashAlgorithm::Sha1 => oid::SHA1,
            HashAlgorithm::Sha256 => oid::SHA256,
            HashAlgorithm::Sha384 => oid::SHA384,
            HashAlgorithm::Sha512 => oid::SHA512,
        }
    }

    /// The digest of `data`.
    pub(crate) fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            HashAlgorithm::Sha1 => sha1::Sha1::digest(data).to_vec(),
            HashAlgorithm::Sha256 => sha2::Sha256::digest(data).to_vec(),
            HashAlgorithm::Sha384 => sha2::Sha384::digest(data).to_vec(),
            HashAlgorithm::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    /// The conventional name.
    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha1 => "SHA-1",
            HashAlgorithm::Sha256 => "SHA-256",
            HashAlgorithm::Sha384 => "SHA-384",
            HashAlgorithm::Sha512 => "SHA-512",
        }
    }
}

impl std::fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An elliptic curve the verifier knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EcCurve {
    /// NIST P-256 (secp256r1, prime256v1).
    P256,
    /// NIST P-384 (secp384r1).
    P384,
}

/// The signature scheme a SignerInfo was checked with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SignatureScheme {
    /// RSASSA-PKCS1-v1_5.
    RsaPkcs1v15 {
        /// The hash inside the signature.
        hash: HashAlgorithm,
        /// The modulus size in bits.
        key_bits: usize,
    },
    /// RSASSA-PSS with MGF1 over the same hash.
    RsaPss {
        /// The hash (and MGF1 hash).
        hash: HashAlgorithm,
        /// The salt length from the parameters.
        salt_len: usize,
        /// The modulus size in bits.
        key_bits: usize,
    },
    /// ECDSA with a DER `Ecdsa-Sig-Value`.
    Ecdsa {
        /// The curve of the signer key.
        curve: EcCurve,
        /// The hash of the signed message.
        hash: HashAlgorithm,
    },
}

impl SignatureScheme {
    /// The hash that goes into the signature.
    pub fn hash(&self) -> HashAlgorithm {
        match *self {
            SignatureScheme::RsaPkcs1v15 { hash, .. }
            | SignatureScheme::RsaPss { hash, .. }
            | SignatureScheme::Ecdsa { hash, .. } => hash,
        }
    }
}

/// An `AlgorithmIdentifier` as received.
#[derive(Clone, Debug)]
pub(crate) struct AlgId<'a> {
    pub(crate) oid: Oid,
    /// The parameters TLV, if present.
    pub(crate) params: Option<Tlv<'a>>,
}

impl<'a> AlgId<'a> {
    pub(crate) fn parse(t: &Tlv<'a>) -> Result<Self, BerError> {
        let t = t.expect(tag::SEQUENCE, "expected an AlgorithmIdentifier")?;
        let kids = t.children()?;
        let (first, rest) = kids
            .split_first()
            .ok_or(BerError("empty AlgorithmIdentifier"))?;
        if rest.len() > 1 {
            return Err(BerError("AlgorithmIdentifier with extra fields"));
        }
        Ok(AlgId {
            oid: first.oid()?,
            params: rest.first().copied(),
        })
    }

    /// Absent parameters and NULL count as the same (as BouncyCastle's `isEquivalent`).
    pub(crate) fn equivalent(&self, other: &AlgId<'_>) -> bool {
        fn norm<'x>(p: &Option<Tlv<'x>>) -> Option<&'x [u8]> {
            match p {
                Some(t) if t.ident == [tag::NULL] && t.value.is_empty() => None,
                Some(t) => Some(t.raw),
                None => None,
            }
        }
        self.oid == other.oid && norm(&self.params) == norm(&other.params)
    }
}

/// A signer's public key.
pub(crate) enum PublicKey {
    Rsa {
        key: rsa::PublicKey,
        bits: usize,
        /// The SPKI said id-RSASSA-PSS: only PSS signatures are allowed.
        pss_only: bool,
    },
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
}

impl PublicKey {
    /// Reads the key of a certificate (SPKI), rejecting algorithms outside the policy.
    pub(crate) fn from_spki(
        spki: &spki::SubjectPublicKeyInfoOwned,
        min_rsa_bits: usize,
    ) -> Result<Self, SignatureError> {
        let alg = spki.algorithm.oid;
        let bits = spki
            .subject_public_key
            .as_bytes()
            .ok_or(SignatureError::InvalidPublicKey)?;
        match alg {
            oid::RSA_ENCRYPTION | oid::RSASSA_PSS => {
                use rsa::pkcs1::DecodeRsaPublicKey;
                use rsa::traits::PublicKeyParts;
                let key = rsa::PublicKey::from_pkcs1_der(bits)
                    .map_err(|_| SignatureError::InvalidPublicKey)?;
                let n_bits = key.n().bit_width() as usize;
                if n_bits < min_rsa_bits {
                    return Err(SignatureError::WeakKey {
                        bits: n_bits,
                        min_bits: min_rsa_bits,
                    });
                }
                Ok(PublicKey::Rsa {
                    key,
                    bits: n_bits,
                    pss_only: alg == oid::RSASSA_PSS,
                })
            }
            oid::EC_PUBLIC_KEY => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.decode_as::<Oid>().ok())
                    .ok_or(SignatureError::InvalidPublicKey)?;
                match curve {
                    oid::SECP256R1 => p256::ecdsa::VerifyingKey::from_sec1_bytes(bits)
                        .map(PublicKey::P256)
                        .map_err(|_| SignatureError::InvalidPublicKey),
                    oid::SECP384R1 => p384::ecdsa::VerifyingKey::from_sec1_bytes(bits)
                        .map(PublicKey::P384)
                        .map_err(|_| SignatureError::InvalidPublicKey),
                    other => Err(SignatureError::UnsupportedAlgorithm {
                        what: "elliptic curve",
                        oid: other.to_string(),
                    }),
                }
            }
            other => Err(SignatureError::UnsupportedAlgorithm {
                what: "certificate public key",
                oid: other.to_string(),
            }),
        }
    }
}

fn require_allowed(hash: HashAlgorithm, allow_sha1: bool) -> Result<HashAlgorithm, SignatureError> {
    if hash == HashAlgorithm::Sha1 && !allow_sha1 {
        Err(SignatureError::Sha1Disabled)
    } else {
        Ok(hash)
    }
}

/// The digest algorithm of a SignerInfo, checked against the policy.
pub(crate) fn digest_algorithm(
    alg: &AlgId<'_>,
    allow_sha1: bool,
) -> Result<HashAlgorithm, SignatureError> {
    let hash =
        HashAlgorithm::from_oid(&alg.oid).ok_or_else(|| SignatureError::UnsupportedAlgorithm {
            what: "digest algorithm",
            oid: alg.oid.to_string(),
        })?;
    require_allowed(hash, allow_sha1)
}

/// Works out the signature scheme from the SignerInfo's signature algorithm, the digest
/// algorithm (used when the signature OID names no hash) and the signer key.
pub(crate) fn signature_scheme(
    sig_alg: &AlgId<'_>,
    digest: HashAlgorithm,
    key: &PublicKey,
    allow_sha1: bool,
) -> Result<SignatureScheme, SignatureError> {
    let unsupported = || SignatureError::UnsupportedAlgorithm {
        what: "signature algorithm",
        oid: sig_alg.oid.to_string(),
    };
    let rsa_hash = match sig_alg.oid {
        oid::RSA_ENCRYPTION => Some(digest),
        oid::SHA1_WITH_RSA => Some(HashAlgorithm::Sha1),
        oid::SHA256_WITH_RSA => Some(HashAlgorithm::Sha256),
        oid::SHA384_WITH_RSA => Some(HashAlgorithm::Sha384),
        oid::SHA512_WITH_RSA => Some(HashAlgorithm::Sha512),
        _ => None,
    };
    let ec_hash = match sig_alg.oid {
        oid::EC_PUBLIC_KEY => Some(digest),
        oid::ECDSA_WITH_SHA1 => Some(HashAlgorithm::Sha1),
        oid::ECDSA_WITH_SHA256 => Some(HashAlgorithm::Sha256),
        oid::ECDSA_WITH_SHA384 => Some(HashAlgorithm::Sha384),
        oid::ECDSA_WITH_SHA512 => Some(HashAlgorithm::Sha512),
        _ => None,
    };
    match key {
        PublicKey::Rsa { bits, pss_only, .. } => {
            if let Some(hash) = rsa_hash {
                if *pss_only {
                    return Err(SignatureError::KeyAlgorithmMismatch);
                }
                return Ok(SignatureScheme::RsaPkcs1v15 {
                    hash: require_allowed(hash, allow_sha1)?,
                    key_bits: *bits,
                });
            }
            if sig_alg.oid == oid::RSASSA_PSS {
                let (hash, salt_len) = pss_params(sig_alg.params.as_ref())?;
                return Ok(SignatureScheme::RsaPss {
                    hash: require_allowed(hash, allow_sha1)?,
                    salt_len,
                    key_bits: *bits,
                });
            }
            if ec_hash.is_some() {
                return Err(SignatureError::KeyAlgorithmMismatch);
            }
            Err(unsupported())
        }
        PublicKey::P256(_) | PublicKey::P384(_) => {
            let curve = match key {
                PublicKey::P384(_) => EcCurve::P384,
                _ => EcCurve::P256,
            };
            if let Some(hash) = ec_hash {
                return Ok(SignatureScheme::Ecdsa {
                    curve,
                    hash: require_allowed(hash, allow_sha1)?,
                });
            }
            if rsa_hash.is_some() || sig_alg.oid == oid::RSASSA_PSS {
                return Err(SignatureError::KeyAlgorithmMismatch);
            }
            Err(unsupported())
        }
    }
}

/// Reads `RSASSA-PSS-params` (RFC 4055): hash (default SHA-1), MGF1 with the same hash, salt
/// length (default 20) and trailer field 1.
fn pss_params(params: Option<&Tlv<'_>>) -> Result<(HashAlgorithm, usize), SignatureError> {
    let bad = |_: BerError| SignatureError::InvalidPssParameters {
        reason: "malformed",
    };
    let mut hash = HashAlgorithm::Sha1;
    let mut mgf_hash = HashAlgorithm::Sha1;
    let mut salt_len = 20usize;
    let Some(params) = params.filter(|p| p.ident != [tag::NULL]) else {
        return Ok((hash, salt_len));
    };
    let seq = params
        .expect(tag::SEQUENCE, "bad PSS parameters")
        .map_err(bad)?;
    let unsupported_hash = |oid: &Oid| SignatureError::UnsupportedAlgorithm {
        what: "RSASSA-PSS hash",
        oid: oid.to_string(),
    };
    for field in seq.children().map_err(bad)? {
        let inner = Tlv::read_exact(field.value).map_err(bad)?;
        match field.ident {
            [0xa0] => {
                let alg = AlgId::parse(&inner).map_err(bad)?;
                hash =
                    HashAlgorithm::from_oid(&alg.oid).ok_or_else(|| unsupported_hash(&alg.oid))?;
            }
            [0xa1] => {
                let alg = AlgId::parse(&inner).map_err(bad)?;
                if alg.oid != oid::MGF1 {
                    return Err(SignatureError::UnsupportedAlgorithm {
                        what: "RSASSA-PSS mask generation function",
                        oid: alg.oid.to_string(),
                    });
                }
                let h = alg
                    .params
                    .as_ref()
                    .ok_or(SignatureError::InvalidPssParameters {
                        reason: "MGF1 without a hash",
                    })
                    .and_then(|p| AlgId::parse(p).map_err(bad))?;
                mgf_hash =
                    HashAlgorithm::from_oid(&h.oid).ok_or_else(|| unsupported_hash(&h.oid))?;
            }
            [0xa2] => {
                let n = inner.small_uint().map_err(bad)?;
                salt_len = usize::try_from(n).ok().filter(|n| *n <= 1024).ok_or(
                    SignatureError::InvalidPssParameters {
                        reason: "salt length out of range",
                    },
                )?;
            }
            [0xa3] => {
                if inner.small_uint().map_err(bad)? != 1 {
                    return Err(SignatureError::InvalidPssParameters {
                        reason: "trailer field is not 1",
                    });
                }
            }
            _ => {
                return Err(SignatureError::InvalidPssParameters {
                    reason: "unknown field",
                });
            }
        }
    }
    if mgf_hash != hash {
        return Err(SignatureError::InvalidPssParameters {
            reason: "MGF1 hash differs from the signature hash",
        });
    }
    Ok((hash, salt_len))
}

macro_rules! with_hash {
    ($hash:expr, $d:ident => $body:expr) => {
        match $hash {
            HashAlgorithm::Sha1 => {
                type $d = sha1::Sha1;
                $body
            }
            HashAlgorithm::Sha256 => {
                type $d = sha2::Sha256;
                $body
            }
            HashAlgorithm::Sha384 => {
                type $d = sha2::Sha384;
                $body
            }
            HashAlgorithm::Sha512 => {
                type $d = sha2::Sha512;
                $body
            }
        }
    };
}

/// Checks `signature` over `message` (hashed here with the scheme's hash).
pub(crate) fn verify_signature(
    key: &PublicKey,
    scheme: &SignatureScheme,
    message: &[u8],
    signature: &[u8],
) -> Result<(), SignatureError> {
    let hashed = scheme.hash().digest(message);
    verify_prehashed(key, scheme, &hashed, signature)
}

/// Checks `signature` over an already computed hash.
pub(crate) fn verify_prehashed(
    key: &PublicKey,
    scheme: &SignatureScheme,
    hashed: &[u8],
    signature: &[u8],
) -> Result<(), SignatureError> {
    use signature::hazmat::PrehashVerifier;
    let ok = match (key, scheme) {
        (PublicKey::Rsa { key, .. }, SignatureScheme::RsaPkcs1v15 { hash, .. }) => {
            with_hash!(hash, D => key.verify(rsa::Pkcs1v15Sign::new::<D>(), hashed, signature).is_ok())
        }
        (PublicKey::Rsa { key, .. }, SignatureScheme::RsaPss { hash, salt_len, .. }) => {
            with_hash!(hash, D => key.verify(rsa::pss::Pss::<D>::new_with_salt(*salt_len), hashed, signature).is_ok())
        }
        (PublicKey::P256(vk), SignatureScheme::Ecdsa { .. }) => {
            p256::ecdsa::Signature::from_der(signature)
                .is_ok_and(|sig| vk.verify_prehash(hashed, &sig).is_ok())
        }
        (PublicKey::P384(vk), SignatureScheme::Ecdsa { .. }) => {
            p384::ecdsa::Signature::from_der(signature)
                .is_ok_and(|sig| vk.verify_prehash(hashed, &sig).is_ok())
        }
        _ => return Err(SignatureError::KeyAlgorithmMismatch),
    };
    if ok {
        Ok(())
    } else {
        Err(SignatureError::BadSignature)
    }
}
