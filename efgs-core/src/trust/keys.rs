//! Digests and keys.

use super::*;

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

    pub(super) fn pkcs1v15(self) -> rsa::Pkcs1v15Sign {
        match self {
            DigestAlgorithm::Sha256 => rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
            DigestAlgorithm::Sha384 => rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
            DigestAlgorithm::Sha512 => rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
        }
    }
}

/// A trust anchor's public key.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum AnchorKey {
    Rsa(rsa::PublicKey),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
}

impl AnchorKey {
    pub(super) fn from_spki(spki: &spki::SubjectPublicKeyInfoOwned) -> Result<Self, TrustError> {
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

    pub(super) fn verify(&self, hash: DigestAlgorithm, message: &[u8], signature: &[u8]) -> bool {
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

    pub(super) fn java_name(&self) -> &'static str {
        match self {
            AnchorKey::Rsa(_) => "RSA",
            AnchorKey::P256(_) | AnchorKey::P384(_) => "ECDSA",
        }
    }
}
