//! Canonical bytes against an independent, straightforward construction (protocol §4.1, §12
//! items 63, 65, 67), plus property tests.
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use efgs_core::DiagnosisKey;
use efgs_core::canonical::{
    DuplicateHasher, canonical_batch_bytes, canonical_key_string, payload_sha256,
    write_canonical_key,
};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// The independent construction: owned Strings, the base64 crate, and Java's US-ASCII encoder
// emulated over UTF-16 code units.

/// Java `String.getBytes(US_ASCII)`: works on UTF-16 units; an unmappable character (a BMP char
/// or a whole surrogate pair) becomes one `?`.
fn java_us_ascii(s: &str) -> Vec<u8> {
    let units: Vec<u16> = s.encode_utf16().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < units.len() {
        let u = units[i];
        if u < 0x80 {
            out.push(u as u8);
            i += 1;
        } else if (0xD800..0xDC00).contains(&u)
            && units
                .get(i + 1)
                .is_some_and(|n| (0xDC00..0xE000).contains(n))
        {
            out.push(b'?');
            i += 2;
        } else {
            out.push(b'?');
            i += 1;
        }
    }
    out
}

fn reference_key(k: &DiagnosisKey) -> String {
    let segments = [
        STANDARD.encode(&k.key_data),
        STANDARD.encode(k.rolling_start_interval_number.to_be_bytes()),
        STANDARD.encode(k.rolling_period.to_be_bytes()),
        STANDARD.encode(k.transmission_risk_level.to_be_bytes()),
        STANDARD.encode(java_us_ascii(
            &k.visited_countries
                .iter()
                .map(|c| c.text().into_owned())
                .collect::<Vec<_>>()
                .join(","),
        )),
        STANDARD.encode(java_us_ascii(&k.origin.text())),
        STANDARD.encode(k.report_type.to_be_bytes()),
        STANDARD.encode(k.days_since_onset_of_symptoms.to_be_bytes()),
    ];
    let mut s = String::new();
    for seg in segments {
        s.push_str(&seg);
        s.push('.');
    }
    s
}

fn reference_batch(keys: &[DiagnosisKey]) -> Vec<u8> {
    let mut strings: Vec<String> = keys.iter().map(reference_key).collect();
    strings.sort_by_key(|s| STANDARD.encode(s.as_bytes()));
    strings.concat().into_bytes()
}

// ---------------------------------------------------------------------------------------------
// A seeded PRNG (splitmix64), so failures are reproducible.

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn u32(&mut self) -> u32 {
        self.next() as u32
    }
    /// Mostly full-range values, sometimes edge values.
    fn int(&mut self) -> u32 {
        match self.below(6) {
            0 => [
                0,
                1,
                5,
                144,
                0x7FFF_FFFF,
                0x8000_0000,
                0xFFFF_FFFF,
                0xFFFF_FFEA,
            ][self.below(8) as usize],
            1 => self.below(300) as u32,
            _ => self.u32(),
        }
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
    fn string(&mut self, max_len: u64) -> String {
        const CHARS: &[char] = &[
            'A',
            'Z',
            'a',
            'D',
            'E',
            '0',
            '9',
            ',',
            '.',
            ' ',
            '?',
            '\u{0}',
            '\u{7f}',
            'é',
            '\u{80}',
            '€',
            '\u{ffff}',
            '😀',
            '\u{10ffff}',
            'ß',
        ];
        let len = self.below(max_len + 1);
        (0..len)
            .map(|_| {
                if self.below(3) == 0 {
                    CHARS[self.below(CHARS.len() as u64) as usize]
                } else {
                    char::from(b'A' + self.below(26) as u8)
                }
            })
            .collect()
    }
    fn key(&mut self) -> DiagnosisKey {
        let key_len = match self.below(4) {
            0 => self.below(40) as usize,
            _ => 16,
        };
        let visited_n = self.below(12) as usize;
        DiagnosisKey {
            key_data: self.bytes(key_len).into(),
            rolling_start_interval_number: self.int(),
            rolling_period: self.int(),
            transmission_risk_level: self.int() as i32,
            visited_countries: (0..visited_n).map(|_| self.string(4).into()).collect(),
            origin: self.string(3).into(),
            report_type: self.int() as i32,
            days_since_onset_of_symptoms: self.int() as i32,
        }
    }
}

#[test]
fn hundred_thousand_random_keys_match_reference_construction() {
    let mut rng = Rng(0x5EED_0001);
    let mut buf = Vec::new();
    for i in 0..100_000 {
        let k = rng.key();
        let want = reference_key(&k);
        let got = canonical_key_string(&k);
        assert_eq!(got, want, "key #{i}: {k:?}");
        buf.clear();
        write_canonical_key(&k, &mut buf);
        assert_eq!(buf, want.as_bytes(), "key #{i} (write_canonical_key)");
    }
}

#[test]
fn random_batches_match_reference_sort() {
    let mut rng = Rng(0x5EED_0002);
    for round in 0..2_000 {
        let n = 1 + rng.below(40) as usize;
        let mut keys: Vec<DiagnosisKey> = Vec::with_capacity(n);
        for _ in 0..n {
            let k = match rng.below(5) {
                // An exact duplicate of an earlier key.
                0 if !keys.is_empty() => keys[rng.below(keys.len() as u64) as usize].clone(),
                // Same keyData as an earlier key, other fields random: the sort has to look
                // past the first 16 Base64 characters.
                1 if !keys.is_empty() => {
                    let mut k = rng.key();
                    k.key_data = keys[rng.below(keys.len() as u64) as usize].key_data.clone();
                    k
                }
                // Short keyData sharing a prefix, so the strings differ early but not at once.
                2 => {
                    let mut k = rng.key();
                    k.key_data = vec![b'A'; rng.below(5) as usize].into();
                    k
                }
                _ => rng.key(),
            };
            keys.push(k);
        }
        assert_eq!(
            canonical_batch_bytes(&keys),
            reference_batch(&keys),
            "round {round}: {keys:?}"
        );
    }
}

#[test]
fn full_size_batch_matches_reference() {
    let mut rng = Rng(0x5EED_0003);
    let keys: Vec<DiagnosisKey> = (0..5000).map(|_| rng.key()).collect();
    assert_eq!(canonical_batch_bytes(&keys), reference_batch(&keys));
}

#[test]
fn us_ascii_replacement_examples() {
    let k = DiagnosisKey {
        visited_countries: vec!["DÉ".into(), "😀".into(), "a€b".into()].into(),
        origin: "Ö".into(),
        ..Default::default()
    };
    let s = canonical_key_string(&k);
    let seg: Vec<&str> = s.split('.').collect();
    assert_eq!(STANDARD.decode(seg[4]).unwrap(), b"D?,?,a?b");
    assert_eq!(STANDARD.decode(seg[5]).unwrap(), b"?");
    // Empty visited list: empty segment.
    let empty = DiagnosisKey::default();
    assert_eq!(
        canonical_key_string(&empty),
        ".AAAAAA==.AAAAAA==.AAAAAA==...AAAAAA==.AAAAAA==."
    );
}

#[test]
fn invalid_utf8_key_data_is_handled_as_bytes() {
    // Two distinct invalid-UTF-8 byte arrays (§12 item 67).
    let a: Vec<u8> = vec![
        0xC3, 0x28, 0xFF, 0xFE, 0x80, 0x81, 0x82, 0x83, 0, 1, 2, 3, 4, 5, 6, 7,
    ];
    let b: Vec<u8> = vec![
        0xC3, 0x28, 0xFE, 0xFF, 0x80, 0x81, 0x82, 0x83, 0, 1, 2, 3, 4, 5, 6, 7,
    ];
    assert!(std::str::from_utf8(&a).is_err() && std::str::from_utf8(&b).is_err());
    // A lossy string round trip would make them collide.
    assert_eq!(String::from_utf8_lossy(&a), String::from_utf8_lossy(&b));
    let ka = DiagnosisKey {
        key_data: a.clone().into(),
        ..Default::default()
    };
    let kb = DiagnosisKey {
        key_data: b.clone().into(),
        ..Default::default()
    };
    assert_ne!(
        canonical_batch_bytes(std::slice::from_ref(&ka)),
        canonical_batch_bytes(std::slice::from_ref(&kb))
    );
    assert_ne!(payload_sha256(&ka), payload_sha256(&kb));
    let seg = canonical_key_string(&ka);
    assert_eq!(
        STANDARD.decode(seg.split('.').next().unwrap()).unwrap(),
        a,
        "keyData segment is the raw bytes"
    );
}

// ---------------------------------------------------------------------------------------------
// Property tests.

fn any_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Z]{0,3}",
        any::<String>().prop_map(|s| s.chars().take(6).collect()),
    ]
}

fn any_key() -> impl Strategy<Value = DiagnosisKey> {
    (
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 16),
            proptest::collection::vec(any::<u8>(), 0..24),
            proptest::collection::vec(0u8..2, 0..6),
        ],
        any::<u32>(),
        any::<u32>(),
        any::<i32>(),
        proptest::collection::vec(any_string(), 0..5),
        any_string(),
        any::<i32>(),
        any::<i32>(),
    )
        .prop_map(
            |(key_data, rsin, rp, trl, visited, origin, rt, dsos)| DiagnosisKey {
                key_data: key_data.into(),
                rolling_start_interval_number: rsin,
                rolling_period: rp,
                transmission_risk_level: trl,
                visited_countries: visited.into_iter().map(Into::into).collect(),
                origin: origin.into(),
                report_type: rt,
                days_since_onset_of_symptoms: dsos,
            },
        )
}

fn keys_and_shuffle() -> impl Strategy<Value = (Vec<DiagnosisKey>, Vec<DiagnosisKey>)> {
    proptest::collection::vec(any_key(), 0..30).prop_flat_map(|keys| {
        // Duplicate some keys so ties are exercised too.
        let mut with_dups = keys.clone();
        with_dups.extend(keys.iter().step_by(3).cloned());
        let shuffled = Just(with_dups.clone()).prop_shuffle();
        (Just(with_dups), shuffled)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn batch_bytes_independent_of_key_order((keys, shuffled) in keys_and_shuffle()) {
        let a = canonical_batch_bytes(&keys);
        prop_assert_eq!(&a, &canonical_batch_bytes(&shuffled));
        prop_assert_eq!(&a, &reference_batch(&keys));
    }

    #[test]
    fn per_key_matches_reference(k in any_key()) {
        prop_assert_eq!(canonical_key_string(&k), reference_key(&k));
    }

    #[test]
    fn duplicate_hasher_equal_keys_equal_hashes(
        k in any_key(),
        s1 in proptest::collection::vec(any::<u8>(), 0..80),
        s2 in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        let h1 = DuplicateHasher::new(&s1);
        prop_assert_eq!(h1.hash(&k), h1.hash(&k.clone()));
        prop_assert_eq!(h1.hash_all(std::slice::from_ref(&k)), vec![h1.hash(&k)]);
        if s1 != s2 {
            prop_assert_ne!(h1.hash(&k), DuplicateHasher::new(&s2).hash(&k));
        }
        // The keyed hash is not the plain payload hash.
        prop_assert_ne!(h1.hash(&k), payload_sha256(&k));
    }

    #[test]
    fn duplicate_hasher_differs_when_any_field_differs(k in any_key(), field in 0usize..8) {
        let h = DuplicateHasher::new(b"secret");
        let mut other = k.clone();
        match field {
            0 => other.key_data = [&other.key_data[..], &[0]].concat().into(),
            1 => other.rolling_start_interval_number ^= 1,
            2 => other.rolling_period ^= 1,
            3 => other.transmission_risk_level ^= 1,
            4 => other.visited_countries.push("X".into()),
            5 => other.origin = format!("{}X", other.origin.text()).into(),
            6 => other.report_type ^= 1,
            _ => other.days_since_onset_of_symptoms ^= 1,
        }
        prop_assert_ne!(h.hash(&k), h.hash(&other));
    }
}

#[test]
fn hash_all_equals_hash_in_order() {
    let mut rng = Rng(0x5EED_0004);
    let keys: Vec<DiagnosisKey> = (0..500).map(|_| rng.key()).collect();
    let h = DuplicateHasher::new(b"0123456789abcdef0123456789abcdef");
    let all = h.hash_all(&keys);
    assert_eq!(all.len(), keys.len());
    for (k, got) in keys.iter().zip(&all) {
        assert_eq!(*got, h.hash(k));
    }
    assert!(h.hash_all(&[]).is_empty());
}
