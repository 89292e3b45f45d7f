//! Reading only the `keyData` of a download body, for the ledger: a simulated country needs
//! nothing else of a batch it does not audit, and decoding whole keys (27 visited-country
//! strings each) for every one of ~300 million deliveries would make the simulator, not the
//! gateway, the bottleneck of a large run. Batches that are audited are decoded in full
//! ([`super::link::Served::keys`]).
//!
//! The scanners accept exactly the encodings the gateway writes (protobuf
//! `DiagnosisKeyBatch`, the reference JSON); anything they cannot follow is an error, and a
//! key they misread would show in the verdict as lost (its id would not parse).

use base64::Engine as _;

fn varint(b: &[u8], i: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    let mut shift = 0u32;
    loop {
        let byte = *b.get(*i)?;
        *i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
}

/// The length-delimited field at `i` (after its tag): returns the slice and moves past it.
fn delimited<'a>(b: &'a [u8], i: &mut usize) -> Option<&'a [u8]> {
    let len = usize::try_from(varint(b, i)?).ok()?;
    let end = i.checked_add(len)?;
    let out = b.get(*i..end)?;
    *i = end;
    Some(out)
}

fn skip(b: &[u8], i: &mut usize, wire: u64) -> Option<()> {
    match wire {
        0 => varint(b, i).map(|_| ()),
        1 => {
            *i = i.checked_add(8).filter(|e| *e <= b.len())?;
            Some(())
        }
        2 => delimited(b, i).map(|_| ()),
        5 => {
            *i = i.checked_add(4).filter(|e| *e <= b.len())?;
            Some(())
        }
        _ => None,
    }
}

/// Calls `f` with the `keyData` of every key of a protobuf `DiagnosisKeyBatch` (field 1:
/// repeated `DiagnosisKey`, whose field 1 is `keyData`); returns the number of keys.
pub fn protobuf_key_data(body: &[u8], mut f: impl FnMut(&[u8])) -> Option<u64> {
    let mut i = 0;
    let mut n = 0;
    while i < body.len() {
        let tag = varint(body, &mut i)?;
        if tag == (1 << 3 | 2) {
            let key = delimited(body, &mut i)?;
            // The gateway writes keyData first and once: take it without walking the key's
            // other fields (27 visited countries in a realistic key).
            if let [0x0a, len, rest @ ..] = key
                && *len < 0x80
                && let Some(key_data) = rest.get(..usize::from(*len))
            {
                n += 1;
                f(key_data);
                continue;
            }
            let mut j = 0;
            let mut key_data: &[u8] = &[];
            while j < key.len() {
                let t = varint(key, &mut j)?;
                if t == (1 << 3 | 2) {
                    key_data = delimited(key, &mut j)?;
                } else {
                    skip(key, &mut j, t & 7)?;
                }
            }
            n += 1;
            f(key_data);
        } else {
            skip(body, &mut i, tag & 7)?;
        }
    }
    Some(n)
}

/// Calls `f` with the decoded `keyData` of every key of a reference-JSON batch (`{"keys":
/// [{"keyData": "<base64>", ...}, ...]}`); returns the number of `keyData` values.
pub fn json_key_data(body: &[u8], mut f: impl FnMut(&[u8])) -> Option<u64> {
    const NAME: &[u8] = b"\"keyData\"";
    let finder = memchr::memmem::Finder::new(NAME);
    let mut n = 0;
    let mut i = 0;
    let mut buf = [0u8; 64];
    while let Some(at) = body.get(i..).and_then(|rest| finder.find(rest)) {
        i += at + NAME.len();
        // `: "`, any spacing.
        while body
            .get(i)
            .is_some_and(|c| c.is_ascii_whitespace() || *c == b':')
        {
            i += 1;
        }
        if body.get(i) != Some(&b'"') {
            return None;
        }
        i += 1;
        let len = body.get(i..)?.iter().position(|c| *c == b'"')?;
        let text = &body[i..i + len];
        i += len + 1;
        let written = base64::engine::general_purpose::STANDARD
            .decode_slice(text, &mut buf)
            .ok()?;
        n += 1;
        f(&buf[..written]);
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use efgs_core::DiagnosisKey;
    use efgs_core::media::BodyFormat;

    fn keys() -> Vec<DiagnosisKey> {
        (0..3u8)
            .map(|i| DiagnosisKey {
                key_data: vec![i; 16].into(),
                rolling_start_interval_number: 2_000_000 + u32::from(i),
                rolling_period: 144,
                transmission_risk_level: 3,
                visited_countries: vec!["DE".into(), "FR".into()].into(),
                origin: "NL".into(),
                report_type: 1,
                days_since_onset_of_symptoms: -2,
            })
            .collect()
    }

    #[test]
    fn both_encodings_yield_every_key_data_in_order() {
        for format in [BodyFormat::Protobuf, BodyFormat::Json] {
            let body = crate::national::encode_body(&keys(), format);
            let mut seen = Vec::new();
            let n = match format {
                BodyFormat::Json => json_key_data(&body, |k| seen.push(k.to_vec())),
                _ => protobuf_key_data(&body, |k| seen.push(k.to_vec())),
            };
            assert_eq!(n, Some(3), "{format:?}");
            assert_eq!(seen, vec![vec![0u8; 16], vec![1u8; 16], vec![2u8; 16]]);
        }
        assert_eq!(protobuf_key_data(&[0x0a, 0x05, 0x0a], |_| {}), None);
        assert_eq!(
            json_key_data(b"{\"keys\": [{\"keyData\": 5}]}", |_| {}),
            None
        );
        assert_eq!(json_key_data(b"{}", |_| {}), Some(0));
    }
}
