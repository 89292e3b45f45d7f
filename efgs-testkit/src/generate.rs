//! A small deterministic generator of diagnosis keys and uploads for tests.
//!
//! Keys are valid per protocol §3 around [`BASE`] and unique per (seed, counter); hashes and
//! content digests are SHA-256 over the prost encoding (the server uses an HMAC over the
//! canonical bytes; stores treat both as opaque).

use efgs_core::DiagnosisKey;
use efgs_core::cert::Thumbprint;
use efgs_core::model::FormatVersion;
use efgs_core::store::{KeyHash, NewKey, NewUpload};
use prost::Message;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::macros::datetime;

/// The instant tests are anchored at (a whole second, UTC).
pub const BASE: OffsetDateTime = datetime!(2026-11-28 10:00 UTC);

/// The countries the suite uploads from.
pub const COUNTRIES: [&str; 8] = ["DE", "FR", "IT", "ES", "NL", "DK", "IE", "FI"];

/// The 27 EU member states (ISO 3166-1 alpha-2, Greece as `GR`), in the order a backend that
/// sends "every participating country" lists them.
pub const EU_COUNTRIES: [&str; 27] = [
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IT",
    "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
];

/// The shape of generated keys. Benchmarks use [`Profile::Realistic`] (the default); the
/// correctness tests keep the light keys of [`KeyGen::new`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Profile {
    /// What Ireland, Switzerland and Germany send: 16-byte keyData, every key with all 27 EU
    /// countries ([`EU_COUNTRIES`]) as visited countries, rolling start at UTC midnight of one
    /// of the last 14 days, transmission risk 0..=8, report types CONFIRMED_TEST,
    /// CONFIRMED_CLINICAL_DIAGNOSIS and SELF_REPORT mixed, days since onset -14..=14.
    #[default]
    Realistic,
    /// The earlier, easier shape: 0-3 visited countries per key, report type CONFIRMED_TEST.
    Light,
}

impl Profile {
    /// `light` or `realistic` (case-insensitive); `None` for anything else.
    pub fn parse(s: &str) -> Option<Profile> {
        match s.to_ascii_lowercase().as_str() {
            "realistic" => Some(Profile::Realistic),
            "light" => Some(Profile::Light),
            _ => None,
        }
    }

    /// `EFGS_BENCH_PROFILE` (`realistic` or `light`), [`Profile::Realistic`] when unset.
    ///
    /// # Panics
    ///
    /// On any other value, so that a typo does not silently measure the wrong profile.
    pub fn from_env() -> Profile {
        match std::env::var("EFGS_BENCH_PROFILE") {
            Ok(v) => Profile::parse(&v)
                .unwrap_or_else(|| panic!("EFGS_BENCH_PROFILE={v:?}: expected realistic or light")),
            Err(_) => Profile::Realistic,
        }
    }

    /// The name used in docs/performance.md.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Realistic => "realistic (27 visited countries per key)",
            Profile::Light => "light (0-3 visited countries per key)",
        }
    }
}

/// `n` keys of `profile` with `origin`, valid at `now` (rolling start at UTC midnight of one of
/// the last 14 days), distinct per `seed`.
pub fn profile_keys(
    profile: Profile,
    origin: &str,
    n: usize,
    now: OffsetDateTime,
    seed: u64,
) -> Vec<DiagnosisKey> {
    let utc = now.to_offset(time::UtcOffset::UTC);
    let midnight = utc.replace_time(time::Time::MIDNIGHT).unix_timestamp() / 600;
    let visited: Vec<efgs_core::CountryCode> = EU_COUNTRIES.iter().map(|c| (*c).into()).collect();
    let mut g = KeyGen::new(seed);
    (0..n)
        .map(|_| {
            let mut k = g.key(origin);
            let a = splitmix(u64::from(k.rolling_start_interval_number) ^ seed);
            let day = i64::try_from(a % 14).unwrap_or(0);
            k.rolling_start_interval_number = u32::try_from(midnight - day * 144).unwrap_or(0);
            if profile == Profile::Realistic {
                k.visited_countries = visited.clone().into();
                k.report_type = 1 + i32::try_from(a % 3).unwrap_or(0);
            }
            k
        })
        .collect()
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Deterministic key generator: the same seed gives the same keys, different seeds give
/// different keys.
#[derive(Clone, Debug)]
pub struct KeyGen {
    seed: u64,
    counter: u64,
}

impl KeyGen {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        KeyGen { seed, counter: 0 }
    }

    /// The next key, with `origin` as its origin.
    pub fn key(&mut self, origin: &str) -> DiagnosisKey {
        let n = self.counter;
        self.counter += 1;
        let a = splitmix(self.seed.wrapping_mul(0x1000_0000_01b3) ^ n);
        let b = splitmix(a ^ self.seed);
        let mut key_data = Vec::with_capacity(16);
        key_data.extend_from_slice(&a.to_be_bytes());
        key_data.extend_from_slice(&b.to_be_bytes());
        // 2026-11-28 00:00 UTC in 10-minute intervals, minus up to 14 days.
        let rsin = 2_961_792u32 - u32::try_from(a % (14 * 144)).unwrap_or(0);
        let visited = match b % 4 {
            0 => Vec::new(),
            1 => vec!["DE".into()],
            2 => vec!["DE".into(), "FR".into()],
            _ => vec!["IT".into(), "ES".into(), "NL".into()],
        };
        DiagnosisKey {
            key_data: key_data.into(),
            rolling_start_interval_number: rsin,
            rolling_period: 144,
            transmission_risk_level: i32::try_from(b % 9).unwrap_or(0),
            visited_countries: visited.into(),
            origin: origin.into(),
            report_type: 1,
            days_since_onset_of_symptoms: i32::try_from(a % 29).unwrap_or(0) - 14,
        }
    }

    /// The next key of the realistic profile ([`Profile::Realistic`]) valid around [`BASE`]:
    /// [`KeyGen::key`] with all 27 EU countries visited and a mix of report types.
    pub fn realistic_key(&mut self, origin: &str) -> DiagnosisKey {
        let mut k = self.key(origin);
        k.visited_countries = EU_COUNTRIES.iter().map(|c| (*c).into()).collect();
        k.report_type = 1 + i32::from(k.key_data[0] % 3);
        k
    }

    /// The next `n` keys of `profile` ([`KeyGen::key`] for [`Profile::Light`]).
    pub fn keys_of(&mut self, profile: Profile, origin: &str, n: usize) -> Vec<DiagnosisKey> {
        match profile {
            Profile::Realistic => (0..n).map(|_| self.realistic_key(origin)).collect(),
            Profile::Light => self.keys(origin, n),
        }
    }

    /// The next `n` keys (light profile).
    pub fn keys(&mut self, origin: &str, n: usize) -> Vec<DiagnosisKey> {
        (0..n).map(|_| self.key(origin)).collect()
    }
}

/// The test duplicate-detection hash of a key: SHA-256 of its protobuf encoding.
pub fn key_hash(key: &DiagnosisKey) -> KeyHash {
    Sha256::digest(key.encode_to_vec()).into()
}

/// A stand-in `batchSignature` for keys: depends on every key, so different keys give a
/// different signature.
pub fn signature_for(country: &str, keys: &[DiagnosisKey]) -> String {
    let mut h = Sha256::new();
    h.update(country.as_bytes());
    for k in keys {
        let enc = k.encode_to_vec();
        h.update((enc.len() as u64).to_be_bytes());
        h.update(&enc);
    }
    let digest: [u8; 32] = h.finalize().into();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("MIAGCSqGSIb3DQEHAqCAMIACAQEx{hex}")
}

/// The test content digest: SHA-256 over the signature and the keys' encodings.
pub fn content_digest(signature: &str, keys: &[DiagnosisKey]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((signature.len() as u64).to_be_bytes());
    h.update(signature.as_bytes());
    for k in keys {
        let enc = k.encode_to_vec();
        h.update((enc.len() as u64).to_be_bytes());
        h.update(&enc);
    }
    h.finalize().into()
}

/// A deterministic certificate thumbprint for a country and a role (`"auth"`, `"sign"`, ...).
pub fn thumbprint(country: &str, role: &str) -> Thumbprint {
    let d: [u8; 32] = Sha256::digest(format!("{country}/{role}")).into();
    Thumbprint::from_digest(&d)
}

/// An upload of `keys` by `country` under `batch_tag` at `created_at`, format 1.0, with
/// hashes, signature, digest and thumbprints derived deterministically.
pub fn upload(
    country: &str,
    batch_tag: &str,
    keys: Vec<DiagnosisKey>,
    created_at: OffsetDateTime,
) -> NewUpload {
    let batch_signature = signature_for(country, &keys);
    let content_digest = content_digest(&batch_signature, &keys);
    NewUpload {
        country: country.to_owned(),
        batch_tag: batch_tag.to_owned(),
        batch_signature,
        uploader_thumbprint: thumbprint(country, "auth"),
        signing_thumbprint: thumbprint(country, "sign"),
        format: FormatVersion::V1_0,
        created_at,
        content_digest,
        keys: keys
            .into_iter()
            .map(|key| NewKey {
                hash: key_hash(&key),
                key,
            })
            .collect(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_distinct() {
        let a = KeyGen::new(1).keys("DE", 100);
        assert_eq!(a, KeyGen::new(1).keys("DE", 100));
        let b = KeyGen::new(2).keys("DE", 100);
        let mut all: Vec<_> = a.iter().chain(&b).map(|k| k.key_data.clone()).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 200);
        assert!(a.iter().all(|k| k.key_data.len() == 16));
    }

    #[test]
    fn realistic_profile_is_valid_and_lists_every_eu_country() {
        use efgs_core::model::DiagnosisKeyBatch;
        use efgs_core::validate::{ValidationPolicy, validate_batch};
        let now = datetime!(2026-11-28 23:59:59 UTC);
        for profile in [Profile::Realistic, Profile::Light] {
            let keys = profile_keys(profile, "IE", 5000, now, 3);
            assert_eq!(keys.len(), 5000);
            let mut data: Vec<_> = keys.iter().map(|k| k.key_data.clone()).collect();
            data.sort();
            data.dedup();
            assert_eq!(data.len(), 5000);
            let batch = DiagnosisKeyBatch { keys };
            validate_batch(&batch, now, &ValidationPolicy::default()).unwrap();
            if profile == Profile::Realistic {
                assert!(
                    batch
                        .keys
                        .iter()
                        .all(|k| k.visited_countries == EU_COUNTRIES)
                );
                for rt in 1..=3 {
                    assert!(batch.keys.iter().any(|k| k.report_type == rt), "{rt}");
                }
            }
        }
        let mut g = KeyGen::new(9);
        let k = g.realistic_key("DE");
        assert_eq!(k.visited_countries.len(), 27);
        assert_eq!(Profile::parse("Light"), Some(Profile::Light));
        assert_eq!(Profile::parse("x"), None);
    }
}
