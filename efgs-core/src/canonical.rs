//! Canonical batch bytes (protocol §4.1) and the per-key duplicate hashes.
//!
//! The batch signature of an upload is a detached CMS signature over these bytes, so they must
//! be byte-for-byte those of the reference's `BatchSignatureUtils` (decisions.md, "Kept
//! exactly").
//!
//! # Per-key string
//!
//! Eight segments, each followed by `.` (so every key's string ends in `.`):
//!
//! 1. Base64 of `keyData` (raw bytes, any length);
//! 2. Base64 of the 4 big-endian bytes of `rollingStartIntervalNumber` (raw 32 bits);
//! 3. the same for `rollingPeriod`;
//! 4. the same for `transmissionRiskLevel` (two's complement);
//! 5. Base64 of `visitedCountries` joined with `,`, as US-ASCII;
//! 6. Base64 of `origin` as US-ASCII;
//! 7. Base64 of the 4 big-endian bytes of the raw `reportType` number (unknown numbers too);
//! 8. Base64 of the 4 big-endian bytes of `daysSinceOnsetOfSymptoms` (two's complement, **not**
//!    the zigzag wire form).
//!
//! Base64 is the standard RFC 4648 alphabet with `=` padding. US-ASCII is Java's
//! `String.getBytes(US_ASCII)`: every Unicode scalar value outside ASCII becomes one `?`
//! (a character outside the BMP, a surrogate pair in Java, also becomes a single `?`).
//!
//! # Batch bytes
//!
//! The per-key strings are sorted by the Base64 encoding of each **whole** per-key string
//! (byte-wise, as Java's `String.compareTo` on ASCII) and concatenated without separator.
//! This is neither the order of the raw strings nor the order of the keyData.
//!
//! # Duplicate hashes
//!
//! [`payload_sha256`] and [`payload_hash_reference`] reproduce the reference's `payload_hash`
//! column (SHA-256 over the per-key bytes, hex without leading zeros). efgs-rs stores a keyed
//! hash instead ([`DuplicateHasher`], decisions item 11), so that a database dump alone cannot
//! confirm that a given key was uploaded.

use std::cmp::Ordering;
use std::fmt;

use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::model::{CountryCode, DiagnosisKey};

type HmacSha256 = hmac::Hmac<Sha256>;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Base64 of one group of one to three bytes, padded with `=` to four characters.
#[inline]
fn encode_group(group: &[u8]) -> [u8; 4] {
    let b0 = u32::from(group.first().copied().unwrap_or(0));
    let b1 = u32::from(group.get(1).copied().unwrap_or(0));
    let b2 = u32::from(group.get(2).copied().unwrap_or(0));
    let n = (b0 << 16) | (b1 << 8) | b2;
    let c = |shift: u32| ALPHABET[((n >> shift) & 0x3f) as usize];
    match group.len() {
        1 => [c(18), c(12), b'=', b'='],
        2 => [c(18), c(12), c(6), b'='],
        _ => [c(18), c(12), c(6), c(0)],
    }
}

/// Appends the padded Base64 of `input` to `out`.
#[inline]
fn encode_into(input: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + input.len().div_ceil(3) * 4, 0);
    for (slot, group) in out[start..].chunks_exact_mut(4).zip(input.chunks(3)) {
        slot.copy_from_slice(&encode_group(group));
    }
}

/// Appends Base64 of a 32-bit value's big-endian bytes: always six characters and `==`.
#[inline]
fn encode_be32(value: u32, out: &mut Vec<u8>) {
    let b = value.to_be_bytes();
    let head = encode_group(&b[..3]);
    let tail = encode_group(&b[3..]);
    out.extend_from_slice(&head);
    out.extend_from_slice(&tail);
}

/// A streaming Base64 encoder for byte sequences produced piecewise (the US-ASCII strings).
struct StreamEncoder<'a> {
    out: &'a mut Vec<u8>,
    pending: [u8; 3],
    len: usize,
}

impl<'a> StreamEncoder<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        StreamEncoder {
            out,
            pending: [0; 3],
            len: 0,
        }
    }

    #[inline]
    fn push(&mut self, byte: u8) {
        self.pending[self.len] = byte;
        self.len += 1;
        if self.len == 3 {
            self.out.extend_from_slice(&encode_group(&self.pending));
            self.len = 0;
        }
    }

    #[inline]
    fn push_slice(&mut self, mut bytes: &[u8]) {
        while self.len != 0 {
            match bytes.split_first() {
                Some((&b, rest)) => {
                    self.push(b);
                    bytes = rest;
                }
                None => return,
            }
        }
        let whole = bytes.len() / 3 * 3;
        encode_into(&bytes[..whole], self.out);
        for &b in &bytes[whole..] {
            self.push(b);
        }
    }

    fn finish(self) {
        if self.len != 0 {
            self.out
                .extend_from_slice(&encode_group(&self.pending[..self.len]));
        }
    }
}

/// Appends the canonical bytes of one key (its eight `.`-terminated Base64 segments) to `out`.
///
/// This is the allocation-free form of [`canonical_key_string`]; the bytes are always ASCII.
pub fn write_canonical_key(key: &DiagnosisKey, out: &mut Vec<u8>) {
    // 4 fixed segments of 9, plus dots and the variable parts.
    out.reserve(
        40 + key.key_data.len().div_ceil(3) * 4
            + 4 * (key
                .visited_countries
                .iter()
                .map(|c| c.len() + 1)
                .sum::<usize>()
                / 3
                + 1)
            + 4 * (key.origin.len() / 3 + 1)
            + 18,
    );
    encode_into(&key.key_data, out);
    out.push(b'.');
    encode_be32(key.rolling_start_interval_number, out);
    out.push(b'.');
    encode_be32(key.rolling_period, out);
    out.push(b'.');
    encode_be32(
        u32::from_be_bytes(key.transmission_risk_level.to_be_bytes()),
        out,
    );
    out.push(b'.');
    // Country codes hold the US-ASCII bytes already (an odd string's as `?`, see
    // `crate::country`). The joined list is usually short (27 two-letter countries: 80 bytes):
    // join it on the stack and encode it in one go; otherwise stream it.
    let mut joined = [0u8; 256];
    match join_codes(&key.visited_countries, &mut joined) {
        Some(n) => encode_into(&joined[..n], out),
        None => {
            let mut visited = StreamEncoder::new(out);
            for (i, country) in key.visited_countries.iter().enumerate() {
                if i > 0 {
                    visited.push(b',');
                }
                visited.push_slice(country.as_bytes());
            }
            visited.finish();
        }
    }
    out.push(b'.');
    encode_into(key.origin.as_bytes(), out);
    out.push(b'.');
    encode_be32(u32::from_be_bytes(key.report_type.to_be_bytes()), out);
    out.push(b'.');
    encode_be32(
        u32::from_be_bytes(key.days_since_onset_of_symptoms.to_be_bytes()),
        out,
    );
    out.push(b'.');
}

/// `countries` joined with `,` into `buf` if they fit; the joined length.
#[inline]
fn join_codes(countries: &[CountryCode], buf: &mut [u8]) -> Option<usize> {
    let mut n = 0usize;
    for (i, country) in countries.iter().enumerate() {
        if i > 0 {
            *buf.get_mut(n)? = b',';
            n += 1;
        }
        let c = country.as_bytes();
        buf.get_mut(n..n + c.len())?.copy_from_slice(c);
        n += c.len();
    }
    Some(n)
}

/// The canonical string of one key, e.g.
/// `Dg8LDgwPDxAODwsODA8PEA==.AAAAAg==.AAAAAQ==.AAAAAw==.REUsRlIsUEw=.REU=.AAAAAg==.AAAAKg==.`
pub fn canonical_key_string(key: &DiagnosisKey) -> String {
    let mut buf = Vec::with_capacity(128);
    write_canonical_key(key, &mut buf);
    // Only Base64 characters and '.' are ever written.
    buf.into_iter().map(char::from).collect()
}

/// Compares the Base64 encodings of `a` and `b` without materialising them, starting at raw
/// offset `start` (a multiple of 3 before which the encodings are known to be equal).
///
/// Base64 maps every 3-byte group to exactly 4 characters, so comparing the encodings is
/// comparing the encoded groups one after the other; a proper prefix sorts first.
fn cmp_base64_from(a: &[u8], b: &[u8], start: usize) -> Ordering {
    let mut i = start;
    loop {
        match (a.get(i..), b.get(i..)) {
            (Some(ra), Some(rb)) if !ra.is_empty() && !rb.is_empty() => {
                let ga = encode_group(&ra[..ra.len().min(3)]);
                let gb = encode_group(&rb[..rb.len().min(3)]);
                match ga.cmp(&gb) {
                    Ordering::Equal => i += 3,
                    other => return other,
                }
            }
            _ => {
                return a
                    .len()
                    .saturating_sub(i)
                    .min(1)
                    .cmp(&b.len().saturating_sub(i).min(1));
            }
        }
    }
}

/// Number of raw bytes whose encoding fills the sort prefix (16 Base64 characters).
const PREFIX_RAW: usize = 12;

/// The first 16 Base64 characters of `raw` as a big-endian integer (zero-filled if shorter), so
/// that comparing prefixes compares the first 16 characters of the encodings.
fn base64_prefix(raw: &[u8]) -> u128 {
    let mut chars = [0u8; 16];
    for (slot, group) in chars
        .chunks_exact_mut(4)
        .zip(raw[..raw.len().min(PREFIX_RAW)].chunks(3))
    {
        slot.copy_from_slice(&encode_group(group));
    }
    u128::from_be_bytes(chars)
}

/// The canonical batch bytes the batch signature covers: every key's canonical string, sorted
/// by the Base64 of the whole string, concatenated.
///
/// Every key's string is built once into one buffer; the sort compares a precomputed 16-character
/// prefix of each string's Base64 and, only on a tie, the remaining Base64 groups computed on the
/// fly (no allocation per comparison). Identical keys give identical strings, so their relative
/// order does not matter.
pub fn canonical_batch_bytes(keys: &[DiagnosisKey]) -> Vec<u8> {
    canonical_batch_with(keys, |_| {})
}

/// [`canonical_batch_bytes`] and every key's [`DuplicateHasher::hash`] (in key order) in one
/// pass: each key's canonical string is written once and both the batch bytes and the key's
/// HMAC are computed from it (the upload path of `Gateway::upload`).
pub fn canonical_batch_bytes_and_hashes(
    keys: &[DiagnosisKey],
    hasher: &DuplicateHasher,
) -> (Vec<u8>, Vec<[u8; 32]>) {
    let mut hashes = Vec::with_capacity(keys.len());
    let bytes = canonical_batch_with(keys, |key_bytes| hashes.push(hasher.hash_bytes(key_bytes)));
    (bytes, hashes)
}

/// The canonical batch bytes, calling `each` with every key's canonical bytes in key order.
fn canonical_batch_with(keys: &[DiagnosisKey], mut each: impl FnMut(&[u8])) -> Vec<u8> {
    struct Entry {
        prefix: u128,
        start: usize,
        end: usize,
    }

    let mut raw = Vec::with_capacity(keys.len() * 128);
    let mut entries = Vec::with_capacity(keys.len());
    for key in keys {
        let start = raw.len();
        write_canonical_key(key, &mut raw);
        let end = raw.len();
        each(&raw[start..end]);
        entries.push(Entry {
            prefix: base64_prefix(&raw[start..end]),
            start,
            end,
        });
    }
    entries.sort_unstable_by(|x, y| {
        x.prefix.cmp(&y.prefix).then_with(|| {
            let a = &raw[x.start..x.end];
            let b = &raw[y.start..y.end];
            let from = if a.len() >= PREFIX_RAW && b.len() >= PREFIX_RAW {
                PREFIX_RAW
            } else {
                0
            };
            cmp_base64_from(a, b, from)
        })
    });
    let mut out = Vec::with_capacity(raw.len());
    for e in &entries {
        out.extend_from_slice(&raw[e.start..e.end]);
    }
    out
}

/// SHA-256 over one key's canonical bytes: the reference's `payload_hash` as raw bytes.
pub fn payload_sha256(key: &DiagnosisKey) -> [u8; 32] {
    let mut buf = Vec::with_capacity(128);
    write_canonical_key(key, &mut buf);
    Sha256::digest(&buf).into()
}

/// The reference's `payload_hash` text: lowercase hex of [`payload_sha256`] with leading zero
/// nibbles dropped (Java `new BigInteger(1, hash).toString(16)`; an all-zero hash gives `"0"`).
pub fn payload_hash_reference(key: &DiagnosisKey) -> String {
    let hex = hex::encode(payload_sha256(key));
    let trimmed = hex.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// Keyed duplicate-detection hash (decisions item 11): HMAC-SHA256 with a server secret over each
/// key's canonical bytes.
///
/// Equal keys (all eight fields) give equal hashes; without the secret, the hash of a guessed key
/// cannot be computed. Use a secret of at least 32 random bytes and keep it stable: changing it
/// makes every stored hash unmatchable. `Debug` never shows the secret.
#[derive(Clone)]
pub struct DuplicateHasher {
    /// The HMAC state after absorbing the key's inner pad, cloned for every hash.
    keyed: HmacSha256,
}

impl DuplicateHasher {
    /// Prepares the HMAC key schedule for `secret` (any length, as HMAC allows).
    pub fn new(secret: &[u8]) -> Self {
        // RFC 2104 key normalisation: keys longer than the block are hashed, then zero-padded
        // to the 64-byte block. Doing it here keeps construction infallible.
        let mut block = [0u8; 64];
        if secret.len() > block.len() {
            block[..32].copy_from_slice(&Sha256::digest(secret));
        } else {
            block[..secret.len()].copy_from_slice(secret);
        }
        let keyed = HmacSha256::new(&block.into());
        block.fill(0);
        DuplicateHasher { keyed }
    }

    /// HMAC-SHA256(secret, canonical bytes of `key`).
    pub fn hash(&self, key: &DiagnosisKey) -> [u8; 32] {
        let mut buf = Vec::with_capacity(128);
        self.hash_with(key, &mut buf)
    }

    /// [`hash`](Self::hash) of every key, in order, reusing one buffer and the prepared key
    /// schedule.
    pub fn hash_all(&self, keys: &[DiagnosisKey]) -> Vec<[u8; 32]> {
        let mut buf = Vec::with_capacity(256);
        keys.iter().map(|k| self.hash_with(k, &mut buf)).collect()
    }

    fn hash_with(&self, key: &DiagnosisKey, buf: &mut Vec<u8>) -> [u8; 32] {
        buf.clear();
        write_canonical_key(key, buf);
        self.hash_bytes(buf)
    }

    /// HMAC-SHA256(secret, `canonical`), from the prepared key schedule.
    fn hash_bytes(&self, canonical: &[u8]) -> [u8; 32] {
        let mut mac = self.keyed.clone();
        mac.update(canonical);
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for DuplicateHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DuplicateHasher")
            .field("secret", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    #[test]
    fn encoder_matches_base64_crate() {
        let data: Vec<u8> = (0..=255u8).cycle().take(700).collect();
        for len in 0..data.len() {
            let mut out = Vec::new();
            encode_into(&data[..len], &mut out);
            assert_eq!(out, STANDARD.encode(&data[..len]).into_bytes(), "len {len}");
            for split in [0, 1, 2, 5, len / 2] {
                let split = split.min(len);
                let mut out = Vec::new();
                let mut s = StreamEncoder::new(&mut out);
                s.push_slice(&data[..split]);
                s.push_slice(&data[split..len]);
                s.finish();
                assert_eq!(
                    out,
                    STANDARD.encode(&data[..len]).into_bytes(),
                    "len {len} split {split}"
                );
            }
        }
    }

    #[test]
    fn be32_segments() {
        let mut out = Vec::new();
        encode_be32(0xFFFF_FFFF, &mut out);
        encode_be32(u32::from_be_bytes((-22i32).to_be_bytes()), &mut out);
        assert_eq!(out, b"/////w==////6g==");
    }

    #[test]
    fn lazy_compare_equals_materialised_compare() {
        let samples: Vec<Vec<u8>> = vec![
            vec![],
            b"a".to_vec(),
            b"ab".to_vec(),
            b"abc".to_vec(),
            b"abcd".to_vec(),
            b"abcde".to_vec(),
            b"ab?".to_vec(),
            b"ab>".to_vec(),
            b"aa\xff".to_vec(),
            vec![0xfb, 0xff],
            vec![0xfb, 0xff, 0x00],
            vec![0xf8],
            vec![0x00; 13],
            vec![0x00; 12],
            b"0123456789ab".to_vec(),
            b"0123456789abc".to_vec(),
            b"0123456789abd".to_vec(),
        ];
        for a in &samples {
            for b in &samples {
                let want = STANDARD.encode(a).cmp(&STANDARD.encode(b));
                assert_eq!(cmp_base64_from(a, b, 0), want, "{a:?} vs {b:?}");
                let (pa, pb) = (base64_prefix(a), base64_prefix(b));
                if pa != pb {
                    assert_eq!(pa.cmp(&pb), want, "prefix {a:?} vs {b:?}");
                }
            }
        }
    }

    #[test]
    fn payload_hash_reference_drops_leading_zeros() {
        // Search a key whose SHA-256 starts with a zero nibble, then check the trimming.
        let mut key = DiagnosisKey::default();
        for i in 0u32.. {
            key.rolling_period = i;
            let full = hex::encode(payload_sha256(&key));
            if full.starts_with('0') {
                let r = payload_hash_reference(&key);
                assert_eq!(r, full.trim_start_matches('0'));
                assert!(r.len() < 64);
                break;
            }
        }
    }

    #[test]
    fn hmac_long_secret_matches_crate_normalisation() {
        let key = DiagnosisKey::default();
        for len in [0usize, 1, 32, 64, 65, 200] {
            let secret = vec![0x5au8; len];
            let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&secret).unwrap();
            mac.update(canonical_key_string(&key).as_bytes());
            let want: [u8; 32] = mac.finalize().into_bytes().into();
            assert_eq!(
                DuplicateHasher::new(&secret).hash(&key),
                want,
                "secret len {len}"
            );
        }
    }

    #[test]
    fn one_pass_equals_separate_bytes_and_hashes() {
        let mut keys = Vec::new();
        for i in 0..50u8 {
            let mut k = DiagnosisKey {
                key_data: vec![i; 16].into(),
                rolling_period: u32::from(i),
                origin: "DE".into(),
                ..DiagnosisKey::default()
            };
            k.visited_countries = match i % 5 {
                0 => vec![].into(),
                1 => vec!["FR".into(), "NL".into()].into(),
                2 => (0..27).map(|c| format!("C{c}").into()).collect(),
                3 => vec!["ÆØ".into(), "x,y".into()].into(),
                _ => (0..100).map(|c| format!("LONG{c:04}").into()).collect(),
            };
            keys.push(k);
        }
        let h = DuplicateHasher::new(b"k");
        let (bytes, hashes) = canonical_batch_bytes_and_hashes(&keys, &h);
        assert_eq!(bytes, canonical_batch_bytes(&keys));
        assert_eq!(hashes, h.hash_all(&keys));
        for k in &keys {
            let mut streamed = Vec::new();
            let mut enc = StreamEncoder::new(&mut streamed);
            for (i, c) in k.visited_countries.iter().enumerate() {
                if i > 0 {
                    enc.push(b',');
                }
                enc.push_slice(c.as_bytes());
            }
            enc.finish();
            let text = canonical_key_string(k);
            let segment = text.split('.').nth(4).unwrap();
            assert_eq!(segment.as_bytes(), &streamed[..]);
        }
    }

    #[test]
    fn debug_redacts_secret() {
        let h = DuplicateHasher::new(b"super-secret-value");
        let s = format!("{h:?}");
        assert!(!s.contains("super"), "{s}");
        assert!(s.contains("redacted"));
    }
}
