//! Keys.

use super::*;

pub(super) fn random_bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    if getrandom::fill(&mut b).is_err() {
        // A test helper: fall back to a time-seeded mix rather than failing the caller.
        let mut z = OffsetDateTime::now_utc().unix_timestamp_nanos() as u64;
        for x in &mut b {
            z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut y = z;
            y = (y ^ (y >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            y = (y ^ (y >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            *x = (y ^ (y >> 31)) as u8;
        }
    }
    b
}

/// `n` random keys that pass upload validation at `now`: 16 random bytes, a rolling start at
/// UTC midnight of one of the last 14 days, rolling period 144, TRL 0..=8, report type
/// CONFIRMED_TEST, DSOS −14..=14, visited countries a random subset of `visited_pool`, and
/// origin `origin`.
pub fn random_keys(
    origin: &str,
    n: usize,
    now: OffsetDateTime,
    visited_pool: &[&str],
) -> Vec<DiagnosisKey> {
    let utc = now.to_offset(time::UtcOffset::UTC);
    let midnight_interval = utc.replace_time(time::Time::MIDNIGHT).unix_timestamp() / 600;
    let entropy = random_bytes(n * 24);
    entropy
        .chunks_exact(24)
        .map(|c| {
            let day = i64::from(c[16] % 14);
            let rsin = u32::try_from(midnight_interval - day * 144).unwrap_or(0);
            let visited = visited_pool
                .iter()
                .enumerate()
                .filter(|(i, _)| c[17 + (i % 5)] & (1 << (i / 5 % 8)) != 0)
                .map(|(_, v)| (*v).into())
                .collect();
            DiagnosisKey {
                key_data: c[..16].to_vec().into(),
                rolling_start_interval_number: rsin,
                rolling_period: 144,
                transmission_risk_level: i32::from(c[22] % 9),
                visited_countries: visited,
                origin: origin.into(),
                report_type: efgs_core::ReportType::ConfirmedTest as i32,
                days_since_onset_of_symptoms: i32::from(c[23] % 29) - 14,
            }
        })
        .collect()
}

/// Encodes keys as an upload body.
pub fn encode_body(keys: &[DiagnosisKey], format: BodyFormat) -> Vec<u8> {
    efgs_core::proto::encode_body(
        format,
        &DiagnosisKeyBatch {
            keys: keys.to_vec(),
        },
    )
}
