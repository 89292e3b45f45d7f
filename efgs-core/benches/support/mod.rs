//! Shared inputs of the efgs-core benchmarks: realistic diagnosis keys and a P-256 signer.
//!
//! Included by each bench target with `#[path = "support/mod.rs"] mod support;` (a directory
//! without `main.rs` is not a bench target of its own).
#![allow(dead_code, clippy::unwrap_used, clippy::disallowed_methods)]

pub(crate) mod cpu;

use std::ops::RangeInclusive;

use efgs_core::DiagnosisKey;
use efgs_core::validate::{INTERVAL_SECONDS, MAX_ROLLING_PERIOD};
use time::OffsetDateTime;
use time::macros::datetime;

/// The instant every benchmark validates and signs at.
pub(crate) const NOW: OffsetDateTime = datetime!(2026-05-04 10:17:00 UTC);

/// Keys per upload: the reference's maximum upload batch size.
pub(crate) const BATCH_KEYS: usize = efgs_core::model::MAX_KEYS_PER_BATCH;

/// A self-signed P-256 signing certificate of `C=DE`, valid 2020-01-01 to 2120-01-01 (made with
/// the OpenSSL CLI; the same pair is embedded in the crate README's doctest).
pub(crate) const SIGNER_CERT_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIB0jCCAXigAwIBAgIBATAKBggqhkjOPQQDAjBRMQswCQYDVQQGEwJERTEeMBwG
A1UECgwVZWZncy1ycyBkb2N1bWVudGF0aW9uMSIwIAYDVQQDDBlERSBiYXRjaCBz
aWduZXIgKGV4YW1wbGUpMCAXDTIwMDEwMTAwMDAwMFoYDzIxMjAwMTAxMDAwMDAw
WjBRMQswCQYDVQQGEwJERTEeMBwGA1UECgwVZWZncy1ycyBkb2N1bWVudGF0aW9u
MSIwIAYDVQQDDBlERSBiYXRjaCBzaWduZXIgKGV4YW1wbGUpMFkwEwYHKoZIzj0C
AQYIKoZIzj0DAQcDQgAExDuA6I4HC5ZFaM/dvoQvHQ77Kr4q8+o+g3t3r/cSnmWt
stEdxpwdqMqoHueZW7Bpj5pvWOfbU79EiqmzBHS6UKM/MD0wDAYDVR0TAQH/BAIw
ADAOBgNVHQ8BAf8EBAMCB4AwHQYDVR0OBBYEFPKMGIHZdY4G0SZ0t07j98/JOsCQ
MAoGCCqGSM49BAMCA0gAMEUCIQCGeUa+Pkb5M3Jaskk0a3cBVrdBdbsznH6FDgFX
Dkr5vwIgcaWGLuMJ2hpgKLTmEksiq4fVKGwydlaiH9wk0qBJUDs=
-----END CERTIFICATE-----
";

/// The PKCS#8 private key of [`SIGNER_CERT_PEM`] (a published test key: never use it anywhere
/// real).
pub(crate) const SIGNER_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgbjztmB9UH9GkUAX8
ldr+3W5HRbPODBwAbNTfCR7WJoShRANCAATEO4DojgcLlkVoz92+hC8dDvsqvirz
6j6De3ev9xKeZa2y0R3GnB2oyqge55lbsGmPmm9Y59tTv0SKqbMEdLpQ
-----END PRIVATE KEY-----
";

/// Countries the light-profile keys visit.
const COUNTRIES: [&str; 12] = [
    "AT", "BE", "CZ", "DE", "DK", "ES", "FR", "IE", "IT", "LV", "NL", "PL",
];

/// The 27 EU member states (ISO 3166-1 alpha-2, Greece as `GR`), in the order a backend that
/// sends "every participating country" lists them.
pub(crate) const EU_COUNTRIES: [&str; 27] = [
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IT",
    "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
];

/// The data profile of a benchmark input (docs/performance.md names it with every figure).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Profile {
    /// What Ireland, Switzerland and Germany send: every key lists all 27 EU countries as
    /// visited countries; report types CONFIRMED_TEST, CONFIRMED_CLINICAL_DIAGNOSIS and
    /// SELF_REPORT mixed; transmission risk 0..=8; DSOS -14..=14. The default.
    Realistic,
    /// The earlier, easier profile: 1-5 visited countries per key, report type CONFIRMED_TEST.
    Light,
}

impl Profile {
    /// `EFGS_BENCH_PROFILE=light` selects [`Profile::Light`]; anything else the realistic one.
    pub(crate) fn from_env() -> Profile {
        match std::env::var("EFGS_BENCH_PROFILE").as_deref() {
            Ok("light") => Profile::Light,
            _ => Profile::Realistic,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Profile::Realistic => "realistic (27 visited countries per key)",
            Profile::Light => "light (1-5 visited countries per key)",
        }
    }

    /// `n` keys of this profile (deterministic).
    pub(crate) fn keys(self, n: usize) -> Vec<DiagnosisKey> {
        match self {
            Profile::Realistic => realistic_keys(n),
            Profile::Light => keys(n, 1..=5),
        }
    }
}

/// `n` keys of the realistic profile: 16 random bytes of keyData, rolling start at UTC midnight
/// of one of the last 14 days, rolling period 144, transmission risk 0..=8, all 27 EU countries
/// visited, origin `DE`, report type 1-3, days since onset -14..=14.
pub(crate) fn realistic_keys(n: usize) -> Vec<DiagnosisKey> {
    let mut rng = XorShift(0x0fed_cba9_8765_4321);
    let today = NOW.unix_timestamp() / 86_400 * 86_400 / INTERVAL_SECONDS;
    let visited: Vec<efgs_core::CountryCode> = EU_COUNTRIES.iter().map(|c| (*c).into()).collect();
    (0..n)
        .map(|_| {
            let mut key_data = Vec::with_capacity(16);
            key_data.extend_from_slice(&rng.next().to_le_bytes());
            key_data.extend_from_slice(&rng.next().to_le_bytes());
            let days_back = rng.below(14) as i64;
            DiagnosisKey {
                key_data: key_data.into(),
                rolling_start_interval_number: u32::try_from(today - days_back * 144).unwrap(),
                rolling_period: MAX_ROLLING_PERIOD as u32,
                transmission_risk_level: rng.below(9) as i32,
                visited_countries: visited.clone().into(),
                origin: "DE".into(),
                report_type: 1 + rng.below(3) as i32,
                days_since_onset_of_symptoms: rng.below(29) as i32 - 14,
            }
        })
        .collect()
}

/// A deterministic xorshift64 generator (benchmarks must not depend on the run).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `n` keys as a member state uploads them at [`NOW`]: 16 random bytes of keyData, a rolling
/// start at UTC midnight of one of the last 14 days (valid at [`NOW`]), rolling period 144,
/// transmission risk level 0..=8, `visited` (a count drawn from the range) distinct visited
/// countries, origin `DE`, report type CONFIRMED_TEST, days since onset -14..=14.
pub(crate) fn keys(n: usize, visited: RangeInclusive<usize>) -> Vec<DiagnosisKey> {
    let mut rng = XorShift(0x1234_5678_9abc_def0);
    let today = NOW.unix_timestamp() / 86_400 * 86_400 / INTERVAL_SECONDS;
    let (lo, hi) = (*visited.start() as u64, *visited.end() as u64);
    (0..n)
        .map(|_| {
            let mut key_data = Vec::with_capacity(16);
            key_data.extend_from_slice(&rng.next().to_le_bytes());
            key_data.extend_from_slice(&rng.next().to_le_bytes());
            let days_back = rng.below(14) as i64;
            let count = (lo + rng.below(hi - lo + 1)) as usize;
            let first = rng.below(COUNTRIES.len() as u64) as usize;
            DiagnosisKey {
                key_data: key_data.into(),
                rolling_start_interval_number: u32::try_from(today - days_back * 144).unwrap(),
                rolling_period: MAX_ROLLING_PERIOD as u32,
                transmission_risk_level: rng.below(9) as i32,
                visited_countries: (0..count)
                    .map(|i| COUNTRIES[(first + i) % COUNTRIES.len()].into())
                    .collect(),
                origin: "DE".into(),
                report_type: 1,
                days_since_onset_of_symptoms: rng.below(29) as i32 - 14,
            }
        })
        .collect()
}
