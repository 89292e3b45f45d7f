//! Compact storage of one upload's keys: no heap allocation per key.
//!
//! A key is one fixed-size [`Row`] (44 bytes): its scalar fields, its keyData as a range
//! of the upload's byte arena, and its visited-country list and origin as indexes into the
//! upload's tables of distinct lists and origins (a list is shared with the keys read back, as
//! decoded keys share it: ADR 0033). Keys of one upload almost always share their
//! list (a backend sends the same participating countries with every key) and always share
//! their origin, so the tables stay tiny. Any key round-trips exactly, odd ones included
//! (keyData of any length, unusual visited-country strings), as the conformance suite demands.

use std::collections::HashMap;
use std::sync::Arc;

use efgs_core::model::{CountryList, KeyData};
use efgs_core::{CountryCode, DiagnosisKey};

/// One key's fixed-size row.
#[derive(Debug, Clone, Copy)]
struct Row {
    /// Offset of the keyData in [`CompactKeys::data`].
    data_start: u32,
    /// Length of the keyData.
    data_len: u32,
    rolling_start_interval_number: u32,
    rolling_period: u32,
    transmission_risk_level: i32,
    report_type: i32,
    days_since_onset_of_symptoms: i32,
    /// Index into [`CompactKeys::lists`].
    visited: u32,
    /// Index into [`CompactKeys::origins`].
    origin: u32,
}

/// The keys of one upload, in upload order.
#[derive(Debug, Default)]
pub(crate) struct CompactKeys {
    rows: Vec<Row>,
    /// Every key's keyData, back to back.
    data: Vec<u8>,
    /// The distinct visited-country lists of the upload.
    lists: Vec<Arc<[CountryCode]>>,
    /// The distinct origins of the upload.
    origins: Vec<CountryCode>,
}

/// Why keys could not be stored compactly.
#[derive(Debug, thiserror::Error)]
#[error("upload too large for the compact key storage")]
pub(crate) struct TooLarge;

impl CompactKeys {
    /// Stores `keys` (consumed; their heap blocks are freed as they are packed).
    pub(crate) fn pack(
        keys: impl ExactSizeIterator<Item = DiagnosisKey>,
    ) -> Result<Self, TooLarge> {
        let mut out = CompactKeys {
            rows: Vec::with_capacity(keys.len()),
            data: Vec::with_capacity(keys.len() * efgs_core::validate::KEY_DATA_LEN),
            lists: Vec::new(),
            origins: Vec::new(),
        };
        let mut list_index: HashMap<CountryList, u32> = HashMap::new();
        let mut origin_index: HashMap<CountryCode, u32> = HashMap::new();
        let mut last_list: Option<(CountryList, u32)> = None;
        for k in keys {
            let data_start = u32::try_from(out.data.len()).map_err(|_| TooLarge)?;
            let data_len = u32::try_from(k.key_data.len()).map_err(|_| TooLarge)?;
            out.data.extend_from_slice(&k.key_data);
            let visited = match &last_list {
                // Decoded keys of one upload share one list: no hashing of its countries.
                Some((list, i)) if list.same_shared(&k.visited_countries) => *i,
                _ => {
                    let i = match list_index.get(&k.visited_countries) {
                        Some(&i) => i,
                        None => {
                            let i = u32::try_from(out.lists.len()).map_err(|_| TooLarge)?;
                            let list = k.visited_countries.clone().into_shared();
                            out.lists.push(list.clone());
                            list_index.insert(CountryList::shared(list), i);
                            i
                        }
                    };
                    last_list = Some((k.visited_countries.clone(), i));
                    i
                }
            };
            let origin = match origin_index.get(&k.origin) {
                Some(&i) => i,
                None => {
                    let i = u32::try_from(out.origins.len()).map_err(|_| TooLarge)?;
                    out.origins.push(k.origin);
                    origin_index.insert(k.origin, i);
                    i
                }
            };
            out.rows.push(Row {
                data_start,
                data_len,
                rolling_start_interval_number: k.rolling_start_interval_number,
                rolling_period: k.rolling_period,
                transmission_risk_level: k.transmission_risk_level,
                report_type: k.report_type,
                days_since_onset_of_symptoms: k.days_since_onset_of_symptoms,
                visited,
                origin,
            });
        }
        out.data.shrink_to_fit();
        Ok(out)
    }

    /// Number of keys.
    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no keys.
    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Appends every key, as it was stored, to `out`.
    pub(crate) fn unpack_into(&self, out: &mut Vec<DiagnosisKey>) {
        out.reserve(self.rows.len());
        for r in &self.rows {
            let start = r.data_start as usize;
            let end = start + r.data_len as usize;
            out.push(DiagnosisKey {
                key_data: KeyData::from_slice(self.data.get(start..end).unwrap_or_default()),
                rolling_start_interval_number: r.rolling_start_interval_number,
                rolling_period: r.rolling_period,
                transmission_risk_level: r.transmission_risk_level,
                visited_countries: self
                    .lists
                    .get(r.visited as usize)
                    .map(|l| CountryList::shared(l.clone()))
                    .unwrap_or_default(),
                origin: self
                    .origins
                    .get(r.origin as usize)
                    .copied()
                    .unwrap_or_default(),
                report_type: r.report_type,
                days_since_onset_of_symptoms: r.days_since_onset_of_symptoms,
            });
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key(data: &[u8], visited: &[&str], origin: &str, n: i32) -> DiagnosisKey {
        DiagnosisKey {
            key_data: data.to_vec().into(),
            rolling_start_interval_number: 2_961_792 + n as u32,
            rolling_period: 144,
            transmission_risk_level: n % 9,
            visited_countries: visited.iter().map(|c| (*c).into()).collect(),
            origin: origin.into(),
            report_type: n % 6,
            days_since_onset_of_symptoms: -n,
        }
    }

    #[test]
    fn round_trips_every_key_in_order() {
        let keys = vec![
            key(&[1; 16], &["FR", "NL"], "DE", 1),
            key(&[], &[], "", 2),
            key(&[2; 40], &["", "a,b", "\u{0}", "ÆØÅ"], "DE", 3),
            key(&[3; 16], &["FR", "NL"], "DE", 4),
            key(&[4; 1], &["NL", "FR"], "XX", i32::MAX),
        ];
        let packed = CompactKeys::pack(keys.clone().into_iter()).unwrap();
        assert_eq!(packed.len(), 5);
        assert!(!packed.is_empty());
        // Equal lists and origins are shared.
        assert_eq!(packed.lists.len(), 4);
        assert_eq!(packed.origins.len(), 3);
        let mut out = Vec::new();
        packed.unpack_into(&mut out);
        assert_eq!(out, keys);
        let empty = CompactKeys::pack(Vec::new().into_iter()).unwrap();
        assert!(empty.is_empty());
    }
}
