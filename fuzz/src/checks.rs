//! The property of each stateless fuzz target, as a plain function over the input bytes.
//!
//! Shared by the targets (`fuzz_targets/*.rs`) and by `efgs-core/tests/fuzz_corpus.rs`, which
//! includes this file with `#[path]` to replay the committed corpus on stable. Therefore it
//! uses only `std`, `efgs_core`, `base64` and `time` (all available to efgs-core's tests).
//! A violated property panics.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use efgs_core::DiagnosisKey;
use efgs_core::batch_signature::{
    SignatureError, SignaturePolicy, VerifiedSigner, verify_detached, verify_detached_der,
};
use efgs_core::canonical::{canonical_batch_bytes, canonical_key_string, write_canonical_key};
use efgs_core::cert::Thumbprint;
use efgs_core::download::parse_path_date;
use efgs_core::identity::{
    country_from_dn, identity_from_cert_header, identity_from_certificate, normalise_thumbprint,
};
use efgs_core::json::{from_reference_json, to_reference_json};
use efgs_core::media::{
    BodyFormat, accepts_json, negotiate_download, negotiate_upload, route_upload,
};
use efgs_core::proto::{decode_batch, decode_body_with_limit, encode_batch};
use efgs_core::tag::BatchTag;
use efgs_core::trust::{TrustAnchors, TrustListEntry};
use time::OffsetDateTime;

// ---------------------------------------------------------------------------------------------
// decode_proto, decode_json, media_type
// ---------------------------------------------------------------------------------------------

/// `decode_proto`: protobuf batch decoding never panics; whatever decodes re-encodes and decodes
/// to the same batch, and survives the JSON codec.
pub fn decode_proto(data: &[u8]) {
    let _ = decode_body_with_limit(BodyFormat::Protobuf, data, 2);
    let Ok(batch) = decode_batch(data) else {
        return;
    };
    let again = decode_batch(&encode_batch(&batch)).expect("re-encoded batch decodes");
    assert_eq!(again, batch);
    let json = to_reference_json(&batch);
    assert_eq!(
        from_reference_json(json.as_bytes()).expect("printed JSON parses"),
        batch
    );
}

/// `decode_json`: lenient JSON decoding never panics (hostile nesting included); errors point
/// inside the input; whatever parses prints and parses back to the same batch.
pub fn decode_json(data: &[u8]) {
    let _ = decode_body_with_limit(BodyFormat::Json, data, 2);
    match from_reference_json(data) {
        Err(e) => assert!(e.position() <= data.len()),
        Ok(batch) => {
            let json = to_reference_json(&batch);
            assert_eq!(
                from_reference_json(json.as_bytes()).expect("printed JSON parses"),
                batch
            );
            assert_eq!(
                decode_batch(&encode_batch(&batch)).expect("protobuf round trip"),
                batch
            );
        }
    }
}

/// `media_type`: content negotiation on arbitrary header values never panics and agrees with
/// itself (`route_upload` is the routing prefix of `negotiate_upload`). Input: first line is
/// the `Content-Type`, the rest the `Accept` header (absent without a newline).
pub fn media_type(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let (content_type, accept) = match s.split_once('\n') {
        Some((ct, acc)) => (Some(ct), Some(acc)),
        None => (Some(s), None),
    };
    let full = negotiate_upload(content_type, accept);
    let routed = route_upload(content_type, accept);
    match (&full, &routed) {
        (Ok((f, _)), Ok(g)) => assert_eq!(f, g),
        (Err(e), Err(r)) => assert_eq!(e, r),
        (Err(e), Ok(_)) => assert!(!e.is_routing()),
        (Ok(_), Err(r)) => panic!("routing failed but negotiation passed: {r:?}"),
    }
    let _ = negotiate_download(accept);
    let _ = negotiate_download(content_type);
    let _ = accepts_json(accept);
}

// ---------------------------------------------------------------------------------------------
// batch_tag
// ---------------------------------------------------------------------------------------------

/// `batch_tag`: `BatchTag::parse` and `parse_path_date` never panic; both are strict, so
/// whatever parses prints back to exactly the input (and parses to the same value again);
/// `BatchTag::next` on the tag's own day is the next number.
pub fn batch_tag(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match BatchTag::parse(s) {
        Ok(tag) => {
            let printed = tag.to_string();
            assert_eq!(printed, s, "a parsed tag prints as its input");
            assert_eq!(BatchTag::parse(&printed).expect("printed tag parses"), tag);
            assert_eq!(s.parse::<BatchTag>().expect("FromStr agrees"), tag);
            assert!(tag.seq >= 1);
            let same_day = tag.date.midnight().assume_utc();
            let next = BatchTag::next(Some(&tag), same_day);
            assert_eq!(next.date, tag.date);
            assert_eq!(next.seq, tag.seq.saturating_add(1));
        }
        Err(e) => assert_eq!(e.code(), "malformed-batch-tag"),
    }
    match parse_path_date(s) {
        Ok(date) => {
            let printed = format!(
                "{:04}-{:02}-{:02}",
                date.year(),
                u8::from(date.month()),
                date.day()
            );
            assert_eq!(printed, s, "a parsed path date prints as its input");
        }
        Err(e) => assert_eq!(e.code(), "invalid-date"),
    }
}

// ---------------------------------------------------------------------------------------------
// canonical
// ---------------------------------------------------------------------------------------------

/// Java `String.getBytes(US_ASCII)`: one `?` per non-ASCII scalar value.
fn us_ascii(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| if c.is_ascii() { c as u8 } else { b'?' })
        .collect()
}

/// The per-key canonical string written out naively from protocol §4.1 (an independent
/// implementation to compare `efgs_core::canonical` with).
pub fn naive_key_string(key: &DiagnosisKey) -> String {
    let be = |v: u32| STANDARD.encode(v.to_be_bytes());
    let be_i = |v: i32| STANDARD.encode(v.to_be_bytes());
    let segments = [
        STANDARD.encode(&key.key_data),
        be(key.rolling_start_interval_number),
        be(key.rolling_period),
        be_i(key.transmission_risk_level),
        STANDARD.encode(us_ascii(
            &key.visited_countries
                .iter()
                .map(|c| c.text().into_owned())
                .collect::<Vec<_>>()
                .join(","),
        )),
        STANDARD.encode(us_ascii(&key.origin.text())),
        be_i(key.report_type),
        be_i(key.days_since_onset_of_symptoms),
    ];
    let mut out = String::new();
    for s in segments {
        out.push_str(&s);
        out.push('.');
    }
    out
}

/// The canonical batch bytes written out naively: per-key strings sorted by the Base64 of each
/// whole string, concatenated.
pub fn naive_batch_bytes(keys: &[DiagnosisKey]) -> Vec<u8> {
    let mut strings: Vec<String> = keys.iter().map(naive_key_string).collect();
    strings.sort_by_cached_key(|s| STANDARD.encode(s));
    strings.concat().into_bytes()
}

/// `canonical`: for any protobuf-decodable batch, the canonical bytes do not panic, equal the
/// naive reading of protocol §4.1 (per key and for the sorted batch) and do not depend on the
/// order of the keys (reversed, rotated).
pub fn canonical(data: &[u8]) {
    let Ok(batch) = decode_batch(data) else {
        return;
    };
    // A country longer than 8 characters is held only in part (efgs_core::country, ADR 0031):
    // validation refuses such a key before any canonical bytes are computed.
    let mut keys = batch.keys;
    keys.retain(|k| {
        !k.origin.is_too_long() && !k.visited_countries.iter().any(|c| c.is_too_long())
    });
    for key in &keys {
        let s = canonical_key_string(key);
        assert_eq!(s, naive_key_string(key), "per-key canonical string");
        let mut buf = Vec::new();
        write_canonical_key(key, &mut buf);
        assert_eq!(buf, s.as_bytes());
    }
    let bytes = canonical_batch_bytes(&keys);
    assert_eq!(
        bytes,
        naive_batch_bytes(&keys),
        "sorted canonical batch bytes"
    );

    let mut reversed = keys.clone();
    reversed.reverse();
    assert_eq!(
        canonical_batch_bytes(&reversed),
        bytes,
        "reversed key order"
    );
    if keys.len() > 1 {
        let mut rotated = keys.clone();
        rotated.rotate_left(1);
        assert_eq!(canonical_batch_bytes(&rotated), bytes, "rotated key order");
    }
}

// ---------------------------------------------------------------------------------------------
// cms_verify
// ---------------------------------------------------------------------------------------------

/// The fixed verification instant of `cms_verify`: 2030-01-01T00:00:00Z (inside the validity of
/// the seed certificates).
pub fn cms_now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_893_456_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The `cms_verify` input layout: bytes 0-1 are the content length `n` (little endian), then
/// `n` bytes of detached content (fewer if the input ends first), then the CMS DER/BER bytes.
/// `None` for inputs shorter than 2 bytes.
pub fn split_cms_input(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = data.split_first_chunk::<2>()?;
    let n = usize::from(u16::from_le_bytes(*len)).min(rest.len());
    Some(rest.split_at(n))
}

/// `cms_verify`: `verify_detached_der` at [`cms_now`] with the default policy never panics and
/// agrees with the Base64 entry point. An accepted signature is consistent (thumbprint of the
/// certificate as received, validity around `now`, signing time inside the validity, a
/// country), is also accepted by a more lenient policy, and is bound to its content: the same
/// CMS over different content is refused. Returns the outcome (`None` if the input is too
/// short to split) so the corpus test can check known seeds.
pub fn cms_verify(data: &[u8]) -> Option<Result<VerifiedSigner, SignatureError>> {
    let (content, cms) = split_cms_input(data)?;
    let now = cms_now();
    let policy = SignaturePolicy::default();
    let result = verify_detached_der(cms, content, now, &policy);

    let b64 = verify_detached(&STANDARD.encode(cms), content, now, &policy);
    match (&result, &b64) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "Base64 entry point agrees"),
        (Err(a), Err(b)) => assert_eq!(a.code(), b.code(), "Base64 entry point agrees"),
        _ => panic!("DER and Base64 entry points disagree: {result:?} vs {b64:?}"),
    }

    if let Ok(signer) = &result {
        assert_eq!(
            signer.thumbprint,
            Thumbprint::of_der(&signer.certificate_der)
        );
        assert!(signer.not_before < now && now < signer.not_after);
        assert!(!signer.country.is_empty());
        if let Some(t) = signer.signing_time {
            assert!(signer.not_before <= t && t <= signer.not_after);
        }
        let lenient = SignaturePolicy {
            allow_sha1: true,
            min_rsa_bits: 1024,
        };
        assert_eq!(
            verify_detached_der(cms, content, now, &lenient).expect("lenient policy accepts"),
            *signer
        );
        let mut longer = content.to_vec();
        longer.push(0);
        assert!(
            verify_detached_der(cms, &longer, now, &policy).is_err(),
            "accepted over different (longer) content"
        );
        if let Some((first, rest)) = content.split_first() {
            let mut flipped = vec![first ^ 1];
            flipped.extend_from_slice(rest);
            assert!(
                verify_detached_der(cms, &flipped, now, &policy).is_err(),
                "accepted over different (flipped) content"
            );
        }
    }
    Some(result)
}

// ---------------------------------------------------------------------------------------------
// identity
// ---------------------------------------------------------------------------------------------

/// Java's `String.trim` set: every character up to and including U+0020.
fn is_java_space(c: char) -> bool {
    c <= ' '
}

/// `identity`: the first byte picks the parser (modulo 5), the rest is its input:
/// 0 `country_from_dn`, 1 `normalise_thumbprint`, 2 `identity_from_cert_header`,
/// 3 `identity_from_certificate` (raw bytes), 4 trust-list entry JSON and PEM bundle. None
/// panics; whatever succeeds is well formed (see the assertions).
pub fn identity(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if selector % 5 == 3 {
        if let Ok(id) = identity_from_certificate(rest) {
            assert!(!id.country.is_empty());
            assert_eq!(id.thumbprint.as_str().len(), 64);
        }
        return;
    }
    let Ok(s) = std::str::from_utf8(rest) else {
        return;
    };
    match selector % 5 {
        0 => {
            if let Ok(c) = country_from_dn(s) {
                assert!(!c.is_empty(), "empty country accepted");
                assert!(
                    !c.starts_with(is_java_space) && !c.ends_with(is_java_space),
                    "country not trimmed: {c:?}"
                );
                assert!(!c.contains(',') && !c.contains('='), "country {c:?}");
            }
        }
        1 => {
            if let Some(t) = normalise_thumbprint(s) {
                let hex = t.as_str();
                assert_eq!(hex.len(), 64);
                assert!(hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
                assert_eq!(normalise_thumbprint(hex), Some(t.clone()), "idempotent");
                assert_eq!(Thumbprint::parse_hex(hex), Some(t));
            }
        }
        2 => {
            if let Ok(id) = identity_from_cert_header(s) {
                assert!(!id.country.is_empty());
            }
        }
        _ => {
            if let Ok(entries) = TrustListEntry::parse_json(s) {
                for entry in entries {
                    let again = TrustListEntry::parse_json(&entry.to_json())
                        .expect("a printed entry parses");
                    assert_eq!(again, vec![entry], "entry JSON round trip");
                }
            }
            let _ = TrustAnchors::from_pem_bundle(s);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// signing_time
// ---------------------------------------------------------------------------------------------

/// `signing_time`: the signing-time parser on any value. Byte 0 picks the type (even: UTCTime,
/// odd: GeneralizedTime), the rest (at most 127 bytes) is the value. Never panics (the
/// hardening issue's `99991231235959-2359` overflowed the instant); an accepted value is ASCII,
/// lies in the type's year range (one day of zone offset either side), and the instant it
/// names, written back as a GeneralizedTime in UTC, parses to itself.
pub fn signing_time(data: &[u8]) -> Option<OffsetDateTime> {
    let (kind, value) = data.split_first()?;
    let value = &value[..value.len().min(127)];
    let tag = if kind % 2 == 0 { 0x17 } else { 0x18 };
    let mut der = vec![tag, value.len() as u8];
    der.extend_from_slice(value);
    let t = efgs_core::batch_signature::parse_signing_time_der(&der)?;
    assert!(value.is_ascii(), "accepted a non-ASCII time");
    let years = if tag == 0x17 { 1949..=2050 } else { -1..=10000 };
    assert!(years.contains(&t.year()), "year {} out of range", t.year());
    let back = format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}.{:09}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond()
    );
    if (0..=9999).contains(&t.year()) {
        let mut der = vec![0x18, back.len() as u8];
        der.extend_from_slice(back.as_bytes());
        assert_eq!(
            efgs_core::batch_signature::parse_signing_time_der(&der),
            Some(t),
            "{back} does not parse back"
        );
    }
    Some(t)
}
