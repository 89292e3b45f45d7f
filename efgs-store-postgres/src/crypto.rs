//! Encryption of the key payload at rest (decisions item 11).
//!
//! Each key row stores one AEAD blob: AES-256-GCM over the protobuf encoding of the whole
//! `DiagnosisKey` (key data and all metadata), with
//! - a fresh random 96-bit nonce per row (stored in the row's `nonce` column),
//! - the id of the key that sealed it (`key_id` column), so keys can be rotated,
//! - associated data `"efgs-rs/key/v1" || key_id (2 bytes, big endian) || dup_hash`, which binds
//!   the ciphertext to its row: a blob copied into another row (another duplicate hash) or
//!   relabelled with another key id fails to open.
//!
//! One blob per row rather than one per column: a single AEAD call and a single bytea column
//! per key make the bulk COPY faster, and nothing is gained by encrypting fields separately
//! (the store never filters on payload fields).

use crate::config::{EncryptionKeys, KeyId};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use std::collections::BTreeMap;

/// Length of the per-row nonce.
pub(crate) const NONCE_LEN: usize = 12;
const AAD_PREFIX: &[u8] = b"efgs-rs/key/v1";

/// Failures of sealing or opening a payload.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CryptoError {
    #[error("the operating system's random number generator failed: {0}")]
    Random(#[source] getrandom::Error),
    #[error("AES-GCM sealing failed")]
    Seal,
    #[error("row encrypted under key id {0}, which is not configured")]
    UnknownKeyId(KeyId),
    #[error("stored nonce has {0} bytes, expected 12")]
    BadNonce(usize),
    #[error("key payload failed authentication (wrong key, or the row was altered)")]
    Open,
}

/// A sealed payload, as stored in a key row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sealed {
    pub(crate) key_id: KeyId,
    pub(crate) nonce: [u8; NONCE_LEN],
    pub(crate) ciphertext: Vec<u8>,
}

/// The configured ciphers.
pub(crate) struct Ciphers {
    ciphers: BTreeMap<KeyId, Aes256Gcm>,
    active: KeyId,
}

impl std::fmt::Debug for Ciphers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ciphers")
            .field("active", &self.active)
            .field("ids", &self.ciphers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn aad(key_id: KeyId, dup_hash: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_PREFIX.len() + 2 + dup_hash.len());
    aad.extend_from_slice(AAD_PREFIX);
    aad.extend_from_slice(&key_id.to_be_bytes());
    aad.extend_from_slice(dup_hash);
    aad
}

impl Ciphers {
    pub(crate) fn new(keys: &EncryptionKeys) -> Self {
        let ciphers = keys
            .keys
            .iter()
            .map(|(id, key)| (*id, Aes256Gcm::new(&(*key).into())))
            .collect();
        Ciphers {
            ciphers,
            active: keys.active,
        }
    }

    /// The id new rows are sealed under.
    pub(crate) fn active(&self) -> KeyId {
        self.active
    }

    /// Fills `out` with fresh random nonces, one per row (one system call for all of them).
    pub(crate) fn nonces(count: usize) -> Result<Vec<[u8; NONCE_LEN]>, CryptoError> {
        let mut bytes = vec![0u8; count * NONCE_LEN];
        getrandom::fill(&mut bytes).map_err(CryptoError::Random)?;
        Ok(bytes
            .chunks_exact(NONCE_LEN)
            .map(|c| {
                let mut n = [0u8; NONCE_LEN];
                n.copy_from_slice(c);
                n
            })
            .collect())
    }

    /// Seals `plaintext` for the row whose duplicate hash is `dup_hash`, with the given fresh
    /// nonce, under the active key.
    pub(crate) fn seal_with_nonce(
        &self,
        dup_hash: &[u8],
        plaintext: &[u8],
        nonce: [u8; NONCE_LEN],
    ) -> Result<Sealed, CryptoError> {
        let key_id = self.active;
        let cipher = self
            .ciphers
            .get(&key_id)
            .ok_or(CryptoError::UnknownKeyId(key_id))?;
        let aad = aad(key_id, dup_hash);
        let ciphertext = cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::Seal)?;
        Ok(Sealed {
            key_id,
            nonce,
            ciphertext,
        })
    }

    /// Seals with a fresh random nonce.
    #[cfg(test)]
    pub(crate) fn seal(&self, dup_hash: &[u8], plaintext: &[u8]) -> Result<Sealed, CryptoError> {
        let nonce = Self::nonces(1)?.pop().ok_or(CryptoError::BadNonce(0))?;
        self.seal_with_nonce(dup_hash, plaintext, nonce)
    }

    /// Opens a stored blob.
    pub(crate) fn open(
        &self,
        key_id: KeyId,
        nonce: &[u8],
        dup_hash: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let cipher = self
            .ciphers
            .get(&key_id)
            .ok_or(CryptoError::UnknownKeyId(key_id))?;
        let nonce: [u8; NONCE_LEN] = nonce
            .try_into()
            .map_err(|_| CryptoError::BadNonce(nonce.len()))?;
        let aad = aad(key_id, dup_hash);
        cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::Open)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ring(active: KeyId) -> Ciphers {
        Ciphers::new(&EncryptionKeys::new(active, [(1, [7; 32]), (2, [9; 32])]).unwrap())
    }

    #[test]
    fn round_trip_and_fresh_nonces() {
        let r = ring(1);
        let a = r.seal(b"hash-a", b"payload").unwrap();
        let b = r.seal(b"hash-a", b"payload").unwrap();
        assert_ne!(a.nonce, b.nonce, "nonces must be fresh per row");
        assert_ne!(a.ciphertext, b.ciphertext);
        assert_eq!(a.ciphertext.len(), b"payload".len() + 16);
        assert_eq!(
            r.open(a.key_id, &a.nonce, b"hash-a", &a.ciphertext)
                .unwrap(),
            b"payload"
        );
    }

    #[test]
    fn bound_to_row_and_key() {
        let r = ring(1);
        let s = r.seal(b"hash-a", b"payload").unwrap();
        // Another row's hash.
        assert!(matches!(
            r.open(s.key_id, &s.nonce, b"hash-b", &s.ciphertext),
            Err(CryptoError::Open)
        ));
        // Relabelled key id.
        assert!(matches!(
            r.open(2, &s.nonce, b"hash-a", &s.ciphertext),
            Err(CryptoError::Open)
        ));
        // Unknown key id.
        assert!(matches!(
            r.open(5, &s.nonce, b"hash-a", &s.ciphertext),
            Err(CryptoError::UnknownKeyId(5))
        ));
        // Tampered ciphertext.
        let mut bad = s.ciphertext.clone();
        bad[0] ^= 1;
        assert!(r.open(s.key_id, &s.nonce, b"hash-a", &bad).is_err());
        assert!(matches!(
            r.open(s.key_id, &s.nonce[..11], b"hash-a", &s.ciphertext),
            Err(CryptoError::BadNonce(11))
        ));
    }

    #[test]
    fn rotation_keeps_old_rows_readable() {
        let old = ring(1).seal(b"h", b"old row").unwrap();
        let rotated = ring(2);
        let new = rotated.seal(b"h", b"new row").unwrap();
        assert_eq!(new.key_id, 2);
        assert_eq!(
            rotated
                .open(old.key_id, &old.nonce, b"h", &old.ciphertext)
                .unwrap(),
            b"old row"
        );
    }

    #[test]
    fn known_answer() {
        // Independent check of the construction: AES-256-GCM test case 16 of the GCM spec
        // (McGrew & Viega), key feffe9...; here with our AAD layout the ciphertext body is still
        // the plain CTR encryption, so it must equal the spec's ciphertext for the same nonce.
        let key: [u8; 32] =
            hex_arr("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
        let nonce: [u8; 12] = hex_arr("cafebabefacedbaddecaf888");
        let pt = hex_vec(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        );
        let ring = Ciphers::new(&EncryptionKeys::single(0, key).unwrap());
        let s = ring.seal_with_nonce(b"", &pt, nonce).unwrap();
        let expected_ct = hex_vec(
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
        );
        assert_eq!(&s.ciphertext[..pt.len()], &expected_ct[..]);
    }

    fn hex_vec(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn hex_arr<const N: usize>(s: &str) -> [u8; N] {
        hex_vec(s).try_into().unwrap()
    }
}
