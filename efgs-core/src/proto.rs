//! Protobuf codec of `DiagnosisKeyBatch`, and the body-level decode/encode for both formats.
//!
//! Decoding walks the batch's top-level fields itself and hands each key to prost, so a body can
//! be decoded with a key limit ([`decode_body_with_limit`]): keys past the limit are decoded (so
//! a malformed body is still reported as malformed, as in the reference where decoding comes
//! before the 413 check) but not kept, which bounds the memory an oversized upload can take.
//! Results equal prost's own `DiagnosisKeyBatch::decode` (a property test checks this).
//!
//! Behaviour that differs from protobuf-java: a known field sent with the wrong wire type is an
//! error here (prost), whereas protobuf-java keeps it as an unknown field.

use crate::key_fields::ListInterner;
use crate::media::BodyFormat;
use crate::model::{CountryCode, DiagnosisKey, DiagnosisKeyBatch, KeyData};
use prost::Message as _;

/// Errors of body decoding.
///
/// Not `#[non_exhaustive]`: the server's status table matches its variants (ADR 0012).
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// The request body has 0 bytes (the reference: a missing required body, 400).
    #[error("Request body is missing")]
    EmptyBody,
    /// The batch framing is not valid protobuf.
    #[error("Failed to read request: invalid protobuf at byte {offset}: {reason}")]
    Malformed {
        /// Byte offset of the field that could not be read.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A diagnosis key is not valid protobuf.
    #[error("Failed to read request: invalid diagnosis key at byte {offset}: {source}")]
    Key {
        /// Byte offset of the key's bytes in the body.
        offset: usize,
        /// prost's description.
        source: prost::DecodeError,
    },
    /// The body holds more keys than allowed ([`decode_body_with_limit`]); the reference's
    /// 413 "Too many diagnosis keys".
    #[error("Too many diagnosis keys")]
    TooManyKeys {
        /// Number of keys in the body.
        count: usize,
        /// The limit.
        limit: usize,
    },
}

impl ProtoError {
    /// A stable machine code for this kind.
    pub fn code(&self) -> &'static str {
        match self {
            ProtoError::EmptyBody => "empty-body",
            ProtoError::Malformed { .. } => "protobuf-malformed",
            ProtoError::Key { .. } => "protobuf-invalid-key",
            ProtoError::TooManyKeys { .. } => "too-many-keys",
        }
    }
}

/// Decodes a protobuf `DiagnosisKeyBatch`. 0 bytes decode to an empty batch (use
/// [`decode_body`] for request bodies, where 0 bytes are an error). Never panics.
pub fn decode_batch(bytes: &[u8]) -> Result<DiagnosisKeyBatch, ProtoError> {
    match decode_limited(bytes, usize::MAX, usize::MAX) {
        Ok((batch, _)) => Ok(batch),
        Err(DecodeStop::Proto(e)) => Err(e),
        // Unreachable with no limit; reported as the decoding error it would be.
        Err(DecodeStop::TooManyVisited { .. }) => Err(malformed(0, "too many visited countries")),
    }
}

/// Encodes a batch in the protobuf wire format (proto3: default values left out).
pub fn encode_batch(batch: &DiagnosisKeyBatch) -> Vec<u8> {
    // The same bytes as prost's `encode_to_vec`, with a visited-country list shared between
    // keys encoded once (a property test checks the equality).
    let mut out = Vec::with_capacity(
        batch
            .keys
            .first()
            .map_or(0, |k| k.encoded_len() + 3)
            .saturating_mul(batch.keys.len())
            .min(64 << 20),
    );
    let mut memo = crate::model::VisitedMemo::default();
    for key in &batch.keys {
        memo.encode_batch_entry(key, &mut out);
    }
    out
}

/// Decodes a request body in the negotiated format. An empty body (0 bytes) is
/// [`ProtoError::EmptyBody`] for both formats.
pub fn decode_body(format: BodyFormat, bytes: &[u8]) -> Result<DiagnosisKeyBatch, crate::Error> {
    decode_body_with_limit(format, bytes, usize::MAX)
}

/// Like [`decode_body`], but a body with more than `max_keys` keys is
/// [`ProtoError::TooManyKeys`] (reported only when the whole body decodes, so a malformed body
/// stays a decoding error), and at most `max_keys` keys are held in memory meanwhile. A key
/// with more visited countries than [`crate::validate::MAX_VISITED_COUNTRIES`] stops decoding
/// at once (protobuf: `ValidationError::TooManyVisitedCountries`; JSON:
/// `JsonError::TooManyVisitedCountries`), before its list is allocated.
pub fn decode_body_with_limit(
    format: BodyFormat,
    bytes: &[u8],
    max_keys: usize,
) -> Result<DiagnosisKeyBatch, crate::Error> {
    if bytes.is_empty() {
        return Err(ProtoError::EmptyBody.into());
    }
    let (batch, count) = match format {
        BodyFormat::Protobuf => {
            match decode_limited(bytes, max_keys, crate::validate::MAX_VISITED_COUNTRIES) {
                Ok(decoded) => decoded,
                Err(DecodeStop::Proto(e)) => return Err(e.into()),
                Err(DecodeStop::TooManyVisited { index, count }) => {
                    return Err(crate::validate::ValidationError::TooManyVisitedCountries {
                        index,
                        count,
                    }
                    .into());
                }
            }
        }
        BodyFormat::Json => crate::json::parse_limited(bytes, max_keys)?,
    };
    if count > max_keys {
        return Err(ProtoError::TooManyKeys {
            count,
            limit: max_keys,
        }
        .into());
    }
    Ok(batch)
}

/// Encodes a response body in the negotiated format.
pub fn encode_body(format: BodyFormat, batch: &DiagnosisKeyBatch) -> Vec<u8> {
    match format {
        BodyFormat::Protobuf => encode_batch(batch),
        BodyFormat::Json => crate::json::to_reference_json(batch).into_bytes(),
    }
}

const WIRE_VARINT: u64 = 0;
const WIRE_FIXED64: u64 = 1;
const WIRE_LEN: u64 = 2;
const WIRE_START_GROUP: u64 = 3;
const WIRE_END_GROUP: u64 = 4;
const WIRE_FIXED32: u64 = 5;
/// prost's default recursion limit, applied to nested groups in skipped fields.
const MAX_GROUP_DEPTH: usize = 100;

/// The `visitedCountries` field of `DiagnosisKey`.
const VISITED_COUNTRIES_FIELD: u32 = 5;

/// Why [`decode_limited`] stopped.
enum DecodeStop {
    /// The bytes are not a batch.
    Proto(ProtoError),
    /// Key `index` lists `count` visited countries, more than the limit.
    TooManyVisited { index: usize, count: usize },
}

impl From<ProtoError> for DecodeStop {
    fn from(e: ProtoError) -> Self {
        DecodeStop::Proto(e)
    }
}

/// How many times `field` occurs at the top level of a message (no allocation).
fn count_field(body: &[u8], field: u32) -> Result<usize, ProtoError> {
    let mut r = Reader {
        bytes: body,
        pos: 0,
    };
    let mut n = 0usize;
    while !r.at_end() {
        let start = r.pos;
        let (f, wire) = r.key()?;
        if f == field {
            n += 1;
        }
        r.skip(f, wire, start)?;
    }
    Ok(n)
}

/// Decodes the batch keeping the first `max_keys` keys; returns it with the total key count.
/// A key with more than `max_visited` visited countries stops decoding.
fn decode_limited(
    bytes: &[u8],
    max_keys: usize,
    max_visited: usize,
) -> Result<(DiagnosisKeyBatch, usize), DecodeStop> {
    let mut r = Reader { bytes, pos: 0 };
    // A key takes at least 2 bytes; cap the guess so a small limit stays small.
    let mut keys = Vec::with_capacity(
        (bytes.len() / 48)
            .min(max_keys)
            .min(crate::model::MAX_KEYS_PER_BATCH),
    );
    let mut count = 0usize;
    // Keys of one upload usually list the same visited countries: they share one list.
    let mut lists = ListInterner::new();
    while !r.at_end() {
        let start = r.pos;
        let (field, wire) = r.key()?;
        if field == 1 {
            if wire != WIRE_LEN {
                return Err(malformed(start, "invalid wire type for field keys").into());
            }
            let body_offset;
            let body = {
                let len = r.len()?;
                body_offset = r.pos;
                r.take(len)?
            };
            let key = match decode_key_fast(body, &mut lists, max_visited) {
                Some(key) => key,
                None => {
                    // Anything the fast path does not take (unknown fields, wrong wire types,
                    // invalid UTF-8, too many visited countries, malformed bytes) goes the
                    // general way, which gives prost's result or error.
                    // Count the visited countries before decoding, so that a key with more than
                    // validation allows is refused without allocating its list.
                    let visited = count_field(body, VISITED_COUNTRIES_FIELD)?;
                    if visited > max_visited {
                        return Err(DecodeStop::TooManyVisited {
                            index: count,
                            count: visited,
                        });
                    }
                    DiagnosisKey::decode(body).map_err(|source| ProtoError::Key {
                        offset: body_offset,
                        source,
                    })?
                }
            };
            if count < max_keys {
                keys.push(key);
            }
            count += 1;
        } else {
            r.skip(field, wire, start)?;
        }
    }
    Ok((DiagnosisKeyBatch { keys }, count))
}

/// Decodes one well-formed `DiagnosisKey` the way prost does (proto3: the last value of a
/// scalar field wins, integers truncated as prost casts them, `sint32` zigzag) without
/// allocating: key data inline, the visited-country list shared with the previous key's when
/// equal (`lists`, ADR 0033). Returns `None` for anything
/// else: an unknown field, a wrong wire type, invalid UTF-8, more than `max_visited` visited
/// countries or malformed bytes; the caller then decodes the key with prost (same result,
/// prost's error).
fn decode_key_fast(
    body: &[u8],
    lists: &mut ListInterner,
    max_visited: usize,
) -> Option<DiagnosisKey> {
    let mut r = Reader {
        bytes: body,
        pos: 0,
    };
    let mut key = DiagnosisKey::default();
    lists.start();
    while !r.at_end() {
        let (field, wire) = r.key().ok()?;
        match (field, wire) {
            (1, WIRE_LEN) => {
                let len = r.len().ok()?;
                key.key_data = KeyData::from_slice(r.take(len).ok()?);
            }
            (2, WIRE_VARINT) => key.rolling_start_interval_number = r.varint().ok()? as u32,
            (3, WIRE_VARINT) => key.rolling_period = r.varint().ok()? as u32,
            (4, WIRE_VARINT) => key.transmission_risk_level = r.varint().ok()? as i32,
            (5, WIRE_LEN) => {
                if lists.len() >= max_visited {
                    return None;
                }
                let len = r.len().ok()?;
                lists.push(CountryCode::from_utf8(r.take(len).ok()?)?);
                // The usual case, a run of two-letter codes (field 5, length 2, two ASCII
                // bytes), is read four bytes at a time.
                while let Some(&[0x2a, 2, a, b]) = r.bytes.get(r.pos..r.pos + 4) {
                    if !(a.is_ascii() && b.is_ascii()) {
                        break;
                    }
                    if lists.len() >= max_visited {
                        return None;
                    }
                    lists.push(CountryCode::from_ascii_pair(a, b));
                    r.pos += 4;
                }
            }
            (6, WIRE_LEN) => {
                let len = r.len().ok()?;
                key.origin = CountryCode::from_utf8(r.take(len).ok()?)?;
            }
            (7, WIRE_VARINT) => key.report_type = r.varint().ok()? as i32,
            (8, WIRE_VARINT) => {
                let v = r.varint().ok()? as u32;
                key.days_since_onset_of_symptoms = ((v >> 1) as i32) ^ (-((v & 1) as i32));
            }
            _ => return None,
        }
    }
    key.visited_countries = lists.finish();
    Some(key)
}

fn malformed(offset: usize, reason: &'static str) -> ProtoError {
    ProtoError::Malformed { offset, reason }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn varint(&mut self) -> Result<u64, ProtoError> {
        let start = self.pos;
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&b) = self.bytes.get(self.pos) else {
                return Err(malformed(start, "truncated varint"));
            };
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(malformed(start, "invalid varint"));
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err(malformed(start, "invalid varint"))
    }

    /// A field key: (field number, wire type).
    fn key(&mut self) -> Result<(u32, u64), ProtoError> {
        let start = self.pos;
        let key = self.varint()?;
        if key > u64::from(u32::MAX) {
            return Err(malformed(start, "invalid key value"));
        }
        let wire = key & 7;
        if wire > WIRE_FIXED32 {
            return Err(malformed(start, "invalid wire type"));
        }
        let field = (key >> 3) as u32;
        if field == 0 {
            return Err(malformed(start, "invalid tag value: 0"));
        }
        Ok((field, wire))
    }

    fn len(&mut self) -> Result<usize, ProtoError> {
        let start = self.pos;
        let len = self.varint()?;
        usize::try_from(len).map_err(|_| malformed(start, "buffer underflow"))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], ProtoError> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| malformed(self.pos, "buffer underflow"))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// Skips the value of an unknown field (groups included, iteratively).
    fn skip(&mut self, field: u32, wire: u64, start: usize) -> Result<(), ProtoError> {
        let mut groups: Vec<u32> = Vec::new();
        let (mut field, mut wire, mut start) = (field, wire, start);
        loop {
            match wire {
                WIRE_VARINT => {
                    self.varint()?;
                }
                WIRE_FIXED64 => {
                    self.take(8)?;
                }
                WIRE_LEN => {
                    let len = self.len()?;
                    self.take(len)?;
                }
                WIRE_FIXED32 => {
                    self.take(4)?;
                }
                WIRE_START_GROUP => {
                    if groups.len() >= MAX_GROUP_DEPTH {
                        return Err(malformed(start, "recursion limit reached"));
                    }
                    groups.push(field);
                }
                WIRE_END_GROUP => match groups.pop() {
                    Some(open) if open == field => {}
                    _ => return Err(malformed(start, "unexpected end group tag")),
                },
                _ => return Err(malformed(start, "invalid wire type")),
            }
            if groups.is_empty() {
                return Ok(());
            }
            start = self.pos;
            if self.at_end() {
                return Err(malformed(start, "truncated group"));
            }
            (field, wire) = self.key()?;
        }
    }
}
