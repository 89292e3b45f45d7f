//! Canonical bytes and payload hashes against the test vectors in tests/data/vectors (protocol
//! §4.1, §11, §12 items 63, 64, 68).
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use efgs_core::DiagnosisKey;
use efgs_core::canonical::{
    DuplicateHasher, canonical_batch_bytes, canonical_key_string, payload_hash_reference,
    payload_sha256, write_canonical_key,
};

mod vectors_support;

use vectors_support::read;

#[allow(clippy::too_many_arguments)]
fn key(
    key_data: &[u8],
    rsin: u32,
    rp: u32,
    trl: i32,
    visited: &[&str],
    origin: &str,
    report_type: i32,
    dsos: i32,
) -> DiagnosisKey {
    DiagnosisKey {
        key_data: key_data.to_vec().into(),
        rolling_start_interval_number: rsin,
        rolling_period: rp,
        transmission_risk_level: trl,
        visited_countries: visited.iter().map(|s| (*s).into()).collect(),
        origin: origin.into(),
        report_type,
        days_since_onset_of_symptoms: dsos,
    }
}

/// `[b0,b1,…]` as decimal bytes.
fn parse_bytes(field: &str) -> Result<Vec<u8>, String> {
    let inner = field
        .strip_prefix('[')
        .and_then(|f| f.strip_suffix(']'))
        .ok_or_else(|| format!("not a list: {field}"))?;
    if inner.is_empty() {
        return Ok(Vec::new());
    }
    inner
        .split(',')
        .map(|b| b.trim().parse::<u8>().map_err(|e| format!("{b}: {e}")))
        .collect()
}

fn parse_be32(field: &str) -> Result<[u8; 4], String> {
    parse_bytes(field)?
        .try_into()
        .map_err(|v: Vec<u8>| format!("{} bytes, want 4", v.len()))
}

fn parse_strings(field: &str) -> Result<Vec<String>, String> {
    let inner = field
        .strip_prefix('[')
        .and_then(|f| f.strip_suffix(']'))
        .ok_or_else(|| format!("not a list: {field}"))?;
    Ok(if inner.is_empty() {
        Vec::new()
    } else {
        inner.split(',').map(|s| s.trim().to_owned()).collect()
    })
}

/// Checks one line; `Err` describes the first mismatch.
fn check_csharp_line(line: &str) -> Result<(), String> {
    let f: Vec<&str> = line.split('|').collect();
    if f.len() != 17 {
        return Err(format!("{} fields, want 17", f.len()));
    }
    let key_data = parse_bytes(f[0])?;
    let rsin = parse_be32(f[2])?;
    let rp = parse_be32(f[4])?;
    let trl = parse_be32(f[6])?;
    let visited = parse_strings(f[8])?;
    let origin = parse_strings(f[10])?;
    let report_type = parse_be32(f[12])?;
    let dsos = parse_be32(f[14])?;
    if origin.len() != 1 {
        return Err(format!("origin list {:?}", origin));
    }
    // Each per-field Base64 column.
    let columns: [(&str, Vec<u8>, &str); 8] = [
        ("keyData", key_data.clone(), f[1]),
        ("rsin", rsin.to_vec(), f[3]),
        ("rp", rp.to_vec(), f[5]),
        ("trl", trl.to_vec(), f[7]),
        ("visited", visited.join(",").into_bytes(), f[9]),
        ("origin", origin[0].clone().into_bytes(), f[11]),
        ("reportType", report_type.to_vec(), f[13]),
        ("dsos", dsos.to_vec(), f[15]),
    ];
    for (name, raw, want) in &columns {
        let got = STANDARD.encode(raw);
        if got != *want {
            return Err(format!("column {name}: {got} != {want}"));
        }
    }
    let k = DiagnosisKey {
        key_data: key_data.into(),
        rolling_start_interval_number: u32::from_be_bytes(rsin),
        rolling_period: u32::from_be_bytes(rp),
        transmission_risk_level: i32::from_be_bytes(trl),
        visited_countries: visited.iter().map(Into::into).collect(),
        origin: origin[0].as_str().into(),
        report_type: i32::from_be_bytes(report_type),
        days_since_onset_of_symptoms: i32::from_be_bytes(dsos),
    };
    let canonical = canonical_key_string(&k);
    let got = STANDARD.encode(canonical.as_bytes());
    if got != f[16] {
        return Err(format!(
            "field 17: canonical {canonical}, Base64 {got} != {}",
            f[16]
        ));
    }
    let mut buf = Vec::new();
    write_canonical_key(&k, &mut buf);
    if buf != canonical.as_bytes() {
        return Err("write_canonical_key differs from canonical_key_string".to_owned());
    }
    Ok(())
}

#[test]
fn csharp_cross_language_all_5000_lines() {
    let text = String::from_utf8(read("CSharpTestdata.txt")).unwrap();
    let mut count = 0usize;
    let mut failures = Vec::new();
    for (n, line) in text.lines().enumerate() {
        count += 1;
        if let Err(e) = check_csharp_line(line) {
            failures.push(format!("line {}: {e}", n + 1));
        }
    }
    assert_eq!(count, 5000, "CSharpTestdata.txt line count");
    assert!(
        failures.is_empty(),
        "{} of {count} lines mismatch; first: {}",
        failures.len(),
        failures[0]
    );
}

#[test]
fn bin_vectors_canonical_strings() {
    // keyData "123" (3 bytes), TRL -22, UK,NL,FR, origin DE, reportType 1, DSOS 0.
    let cases: [(u32, &str); 3] = [
        (
            5,
            "MTIz.AAAABQ==.AAAABQ==.////6g==.VUssTkwsRlI=.REU=.AAAAAQ==.AAAAAA==.",
        ),
        (
            2_147_483_647,
            "MTIz.f////w==.f////w==.////6g==.VUssTkwsRlI=.REU=.AAAAAQ==.AAAAAA==.",
        ),
        (
            4_294_967_295,
            "MTIz./////w==./////w==.////6g==.VUssTkwsRlI=.REU=.AAAAAQ==.AAAAAA==.",
        ),
    ];
    for (v, want) in cases {
        let k = key(b"123", v, v, -22, &["UK", "NL", "FR"], "DE", 1, 0);
        let s = canonical_key_string(&k);
        assert_eq!(s, want, "RSIN = RP = {v}");
        // The Java test decodes offsets 5..12 and 14..21.
        let rsin = STANDARD.decode(&s[5..13]).unwrap();
        let rp = STANDARD.decode(&s[14..22]).unwrap();
        assert_eq!(rsin, v.to_be_bytes());
        assert_eq!(rp, v.to_be_bytes());
        assert_eq!(
            canonical_batch_bytes(std::slice::from_ref(&k)),
            want.as_bytes()
        );
    }
}

fn testdata_key() -> DiagnosisKey {
    key(
        &hex::decode("0e0f0b0e0c0f0f100e0f0b0e0c0f0f10").unwrap(),
        2,
        1,
        3,
        &["DE", "FR", "PL"],
        "DE",
        2,
        42,
    )
}

#[test]
fn testdata_key_canonical_and_payload_hash() {
    let k = testdata_key();
    assert_eq!(
        canonical_key_string(&k),
        "Dg8LDgwPDxAODwsODA8PEA==.AAAAAg==.AAAAAQ==.AAAAAw==.REUsRlIsUEw=.REU=.AAAAAg==.AAAAKg==."
    );
    assert_eq!(
        payload_hash_reference(&k),
        "6c50e8474f965e2c7fa4033b7b46293559bd9ea0749fc2ca873ab2b11bb2ad7f"
    );
    assert_eq!(
        hex::encode(payload_sha256(&k)),
        "6c50e8474f965e2c7fa4033b7b46293559bd9ea0749fc2ca873ab2b11bb2ad7f"
    );
}

#[test]
fn four_key_sort_order_matches_java() {
    let keys: Vec<DiagnosisKey> = ["978", "D189", "ABC", "123"]
        .iter()
        .map(|d| {
            key(
                d.as_bytes(),
                2,
                1,
                3,
                &["CA", "CB", "CC", "CD"],
                "DE",
                1,
                42,
            )
        })
        .collect();
    let want = "OTc4.AAAAAg==.AAAAAQ==.AAAAAw==.Q0EsQ0IsQ0MsQ0Q=.REU=.AAAAAQ==.AAAAKg==.\
MTIz.AAAAAg==.AAAAAQ==.AAAAAw==.Q0EsQ0IsQ0MsQ0Q=.REU=.AAAAAQ==.AAAAKg==.\
QUJD.AAAAAg==.AAAAAQ==.AAAAAw==.Q0EsQ0IsQ0MsQ0Q=.REU=.AAAAAQ==.AAAAKg==.\
RDE4OQ==.AAAAAg==.AAAAAQ==.AAAAAw==.Q0EsQ0IsQ0MsQ0Q=.REU=.AAAAAQ==.AAAAKg==.";
    let got = canonical_batch_bytes(&keys);
    assert_eq!(String::from_utf8(got).unwrap(), want);
    // Every permutation of the input gives the same bytes.
    let mut perm = keys.clone();
    for _ in 0..24 {
        perm.rotate_left(1);
        perm.swap(0, 2);
        assert_eq!(
            String::from_utf8(canonical_batch_bytes(&perm)).unwrap(),
            want
        );
    }
}

struct Batch3 {
    keys: Vec<DiagnosisKey>,
    per_key_canonical: Vec<String>,
    per_key_hash: Vec<String>,
    canonical_sha256: String,
}

fn batch3() -> Batch3 {
    let v: serde_json::Value = serde_json::from_slice(&read("generated/vectors.json")).unwrap();
    let b = &v["batch3"];
    let keys = b["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| DiagnosisKey {
            key_data: STANDARD
                .decode(k["keyData"].as_str().unwrap())
                .unwrap()
                .into(),
            rolling_start_interval_number: u32::try_from(
                k["rollingStartIntervalNumber"].as_u64().unwrap(),
            )
            .unwrap(),
            rolling_period: u32::try_from(k["rollingPeriod"].as_u64().unwrap()).unwrap(),
            transmission_risk_level: i32::try_from(k["transmissionRiskLevel"].as_i64().unwrap())
                .unwrap(),
            visited_countries: k["visitedCountries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().into())
                .collect(),
            origin: k["origin"].as_str().unwrap().into(),
            report_type: i32::try_from(k["reportType"].as_i64().unwrap()).unwrap(),
            days_since_onset_of_symptoms: i32::try_from(
                k["daysSinceOnsetOfSymptoms"].as_i64().unwrap(),
            )
            .unwrap(),
        })
        .collect();
    let strings = |name: &str| -> Vec<String> {
        b[name]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    };
    Batch3 {
        keys,
        per_key_canonical: strings("per_key_canonical"),
        per_key_hash: strings("per_key_payload_hash_java"),
        canonical_sha256: b["canonical_sha256"].as_str().unwrap().to_owned(),
    }
}

#[test]
fn batch3_per_key_canonical_and_hashes() {
    let b = batch3();
    assert_eq!(b.keys.len(), 3);
    assert_eq!(b.per_key_canonical.len(), 3);
    for (i, k) in b.keys.iter().enumerate() {
        assert_eq!(canonical_key_string(k), b.per_key_canonical[i], "key {i}");
        assert_eq!(payload_hash_reference(k), b.per_key_hash[i], "key {i}");
    }
}

#[test]
fn batch3_sorted_batch_bytes() {
    let b = batch3();
    let want = read("generated/batch3.canonical.txt");
    let got = canonical_batch_bytes(&b.keys);
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want)
    );
    assert_eq!(hex::encode(sha2_256(&got)), b.canonical_sha256);
    let mut rev = b.keys.clone();
    rev.reverse();
    assert_eq!(canonical_batch_bytes(&rev), want);
}

fn sha2_256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(data).into()
}

#[test]
fn duplicate_hasher_matches_python_hmac() {
    // Computed with Python's hmac/hashlib over the vectors.json per-key canonical strings.
    let b = batch3();
    let hasher = DuplicateHasher::new(b"efgs-duplicate-secret-0123456789");
    let want = [
        "42516ae944cfcf5d8c7ade8b1f308b4e26c3cc7b0ea53270e19b3412c7e7edc6",
        "162249c3fade0ecc670e28bb423877f2d1384b0f18c095ae65d5a2a586dcf976",
        "f56d66409dbb06b63f048b586c9530bddb72f80660a160fed0397f23ee4193e4",
    ];
    for (i, k) in b.keys.iter().enumerate() {
        assert_eq!(hex::encode(hasher.hash(k)), want[i], "key {i}");
    }
    let all: Vec<String> = hasher.hash_all(&b.keys).iter().map(hex::encode).collect();
    assert_eq!(all, want);
    // A secret longer than the SHA-256 block is hashed first (RFC 2104).
    assert_eq!(
        hex::encode(DuplicateHasher::new(&[b'x'; 100]).hash(&b.keys[0])),
        "22bf60a628aaa50527fc0a432fc35332457fab6dc6638dc52425cdf376f10cf1"
    );
}
