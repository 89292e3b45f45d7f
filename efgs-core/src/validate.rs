//! Upload validation: the reference's key rules (protocol §3), the upload size limit, our input
//! limits (decisions item 5), the upload headers and the origin rule (§1.2 step 7).
//!
//! # Order of the checks in [`validate_batch`]
//!
//! 1. The reference's per-key rules, key by key in body order; within a key: keyData empty,
//!    keyData not 16 bytes, rolling start interval number, rolling period, transmission risk
//!    level. The first failure stops validation.
//! 2. More than [`ValidationPolicy::max_keys`] keys: [`ValidationError::TooManyKeys`] (413). As
//!    in the reference this comes *after* the key rules.
//! 3. Our input limits (decisions item 5), key by key: at most
//!    [`MAX_VISITED_COUNTRIES`] visited countries, each at most [`MAX_VISITED_COUNTRY_LEN`]
//!    ASCII bytes, then an ASCII origin of at most 8 bytes (a longer one can be no uploader's
//!    country: [`ValidationError::OriginMismatch`], ADR 0031).
//!
//! Step 3 runs last so that every batch the reference rejects gets the reference's status and
//! reason; our additional limits only turn what would have been a database error (a 207 with
//! every index under "409") into a clear 400.
//!
//! DSOS and reportType are never range-checked (clients send DSOS values up to ~4000 and
//! `i32::MAX`; unknown report types pass through unchanged).
//!
//! # Messages
//!
//! `Display` of every key-level variant is the reference's full text, e.g.
//! `Validation of diagnosis key failed: Invalid rolling period.` ([`KEY_REASON_PREFIX`] followed
//! by [`ValidationError::reason`]). The reference answered such a 400 with
//! `{"message": "uploadDiagnosisKeys.body: <text>, uploadDiagnosisKeys.body: One or more
//! diagnosis keys are not valid"}` (in no fixed order); [`DEFAULT_KEY_MESSAGE`] is that second
//! text.

use time::OffsetDateTime;

use crate::model::{DiagnosisKey, DiagnosisKeyBatch, MAX_KEYS_PER_BATCH};

/// The prefix of every per-key reason text of the reference.
pub const KEY_REASON_PREFIX: &str = "Validation of diagnosis key failed: ";

/// The default constraint message the reference adds next to every per-key reason.
pub const DEFAULT_KEY_MESSAGE: &str = "One or more diagnosis keys are not valid";

/// Required length of `keyData` in bytes.
pub const KEY_DATA_LEN: usize = 16;
/// Largest valid rolling period (one day of 10-minute intervals).
pub const MAX_ROLLING_PERIOD: i32 = 144;
/// Largest transmission risk level of the 0..=8 range.
pub const MAX_TRANSMISSION_RISK_LEVEL: i32 = 8;
/// The transmission risk level meaning "unknown"; always valid.
pub const TRANSMISSION_RISK_LEVEL_UNKNOWN: i32 = i32::MAX;
/// Days before today's UTC midnight that a rolling start interval may lie.
pub const ROLLING_START_MAX_AGE_DAYS: i64 = 15;
/// Seconds per rolling interval.
pub const INTERVAL_SECONDS: i64 = 600;
/// Most visited countries per key (decisions item 5).
pub const MAX_VISITED_COUNTRIES: usize = 300;
/// Longest visited country in bytes (decisions item 5).
pub const MAX_VISITED_COUNTRY_LEN: usize = 8;
/// Longest upload `batchTag` in characters (the reference's column size).
pub const MAX_BATCH_TAG_LEN: usize = 64;
/// Longest upload `batchSignature` header in bytes (32 KiB, decisions item 5).
pub const MAX_BATCH_SIGNATURE_LEN: usize = 32 * 1024;

/// Limits that operators may configure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationPolicy {
    /// Most keys per upload (`maximum-upload-batch-size`, default 5000); more gives 413.
    pub max_keys: usize,
}

impl Default for ValidationPolicy {
    fn default() -> Self {
        ValidationPolicy {
            max_keys: MAX_KEYS_PER_BATCH,
        }
    }
}

/// Why an upload was refused before its signature was checked.
///
/// All variants map to 400 except [`TooManyKeys`](Self::TooManyKeys) (413). `index` fields are
/// 0-based positions of the key in the batch as received.
///
/// Not `#[non_exhaustive]`: the server's status table matches its variants (ADR 0012).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// keyData is empty.
    #[error("Validation of diagnosis key failed: The keydata is empty or null.")]
    EmptyKeyData {
        /// Position of the key.
        index: usize,
    },
    /// keyData is not exactly 16 bytes.
    #[error("Validation of diagnosis key failed: The keydata is not 16 bytes.")]
    KeyDataLength {
        /// Position of the key.
        index: usize,
        /// The received length.
        len: usize,
    },
    /// The rolling start interval number (read as a signed 32-bit number, as the reference
    /// does) lies outside `[min, max]`.
    #[error("Validation of diagnosis key failed: Invalid rolling start interval number.")]
    RollingStartIntervalNumber {
        /// Position of the key.
        index: usize,
        /// The received value, as signed (values of 2^31 and above are negative).
        value: i32,
        /// Smallest valid value at the time of validation.
        min: i64,
        /// Largest valid value at the time of validation.
        max: i64,
    },
    /// The rolling period (signed) is outside 1..=144.
    #[error("Validation of diagnosis key failed: Invalid rolling period.")]
    RollingPeriod {
        /// Position of the key.
        index: usize,
        /// The received value, as signed.
        value: i32,
    },
    /// The transmission risk level is neither in 0..=8 nor `0x7FFFFFFF`.
    #[error("Validation of diagnosis key failed: Invalid transmission risk level.")]
    TransmissionRiskLevel {
        /// Position of the key.
        index: usize,
        /// The received value.
        value: i32,
    },
    /// More visited countries than [`MAX_VISITED_COUNTRIES`] (decisions item 5).
    #[error("Validation of diagnosis key failed: Too many visited countries (at most 300).")]
    TooManyVisitedCountries {
        /// Position of the key.
        index: usize,
        /// The received number of entries.
        count: usize,
    },
    /// A visited country is longer than [`MAX_VISITED_COUNTRY_LEN`] bytes or not ASCII
    /// (decisions item 5).
    #[error(
        "Validation of diagnosis key failed: Invalid visited country (at most 8 ASCII characters)."
    )]
    InvalidVisitedCountry {
        /// Position of the key.
        index: usize,
        /// Position of the entry in the key's visitedCountries.
        position: usize,
    },
    /// The origin is not ASCII (decisions item 5).
    #[error("Validation of diagnosis key failed: The origin is not ASCII.")]
    OriginNotAscii {
        /// Position of the key.
        index: usize,
    },
    /// More keys than the policy allows (413).
    #[error("Too many diagnosis keys")]
    TooManyKeys {
        /// Number of keys received.
        count: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The `batchTag` header is empty.
    #[error("Invalid batchTag: it must not be empty.")]
    BatchTagEmpty,
    /// The `batchTag` header is longer than [`MAX_BATCH_TAG_LEN`].
    #[error("Invalid batchTag: it must be at most 64 characters long.")]
    BatchTagTooLong {
        /// Received length in bytes.
        len: usize,
    },
    /// The `batchTag` header contains a byte outside printable ASCII without space
    /// (`0x21..=0x7E`).
    #[error("Invalid batchTag: only printable ASCII characters without spaces are allowed.")]
    BatchTagCharacter {
        /// Byte offset of the first offending character.
        position: usize,
    },
    /// The `batchSignature` header is empty.
    #[error("Invalid signature: the batchSignature header is empty.")]
    BatchSignatureEmpty,
    /// The `batchSignature` header exceeds [`MAX_BATCH_SIGNATURE_LEN`].
    #[error("Invalid signature: the batchSignature header is longer than 32768 bytes.")]
    BatchSignatureTooLong {
        /// Received length in bytes.
        len: usize,
    },
    /// A key's origin differs from the uploader's country (reference step 7, 400).
    #[error("One or more keys are not originated from uploader country")]
    OriginMismatch {
        /// Position of the first key with another origin.
        index: usize,
    },
}

impl ValidationError {
    /// Stable machine code of the variant.
    pub fn code(&self) -> &'static str {
        match self {
            ValidationError::EmptyKeyData { .. } => "key-data-empty",
            ValidationError::KeyDataLength { .. } => "key-data-length",
            ValidationError::RollingStartIntervalNumber { .. } => "rolling-start-interval-number",
            ValidationError::RollingPeriod { .. } => "rolling-period",
            ValidationError::TransmissionRiskLevel { .. } => "transmission-risk-level",
            ValidationError::TooManyVisitedCountries { .. } => "too-many-visited-countries",
            ValidationError::InvalidVisitedCountry { .. } => "invalid-visited-country",
            ValidationError::OriginNotAscii { .. } => "origin-not-ascii",
            ValidationError::TooManyKeys { .. } => "too-many-keys",
            ValidationError::BatchTagEmpty => "batch-tag-empty",
            ValidationError::BatchTagTooLong { .. } => "batch-tag-too-long",
            ValidationError::BatchTagCharacter { .. } => "batch-tag-character",
            ValidationError::BatchSignatureEmpty => "batch-signature-empty",
            ValidationError::BatchSignatureTooLong { .. } => "batch-signature-too-long",
            ValidationError::OriginMismatch { .. } => "origin-mismatch",
        }
    }

    /// The position of the offending key, for the variants about one key.
    pub fn key_index(&self) -> Option<usize> {
        match self {
            ValidationError::EmptyKeyData { index }
            | ValidationError::KeyDataLength { index, .. }
            | ValidationError::RollingStartIntervalNumber { index, .. }
            | ValidationError::RollingPeriod { index, .. }
            | ValidationError::TransmissionRiskLevel { index, .. }
            | ValidationError::TooManyVisitedCountries { index, .. }
            | ValidationError::InvalidVisitedCountry { index, .. }
            | ValidationError::OriginNotAscii { index }
            | ValidationError::OriginMismatch { index } => Some(*index),
            _ => None,
        }
    }

    /// For per-key variants, the reason text after [`KEY_REASON_PREFIX`] (e.g.
    /// `"Invalid rolling period."`); `None` for the others, whose whole text is `Display`.
    pub fn reason(&self) -> Option<&'static str> {
        Some(match self {
            ValidationError::EmptyKeyData { .. } => "The keydata is empty or null.",
            ValidationError::KeyDataLength { .. } => "The keydata is not 16 bytes.",
            ValidationError::RollingStartIntervalNumber { .. } => {
                "Invalid rolling start interval number."
            }
            ValidationError::RollingPeriod { .. } => "Invalid rolling period.",
            ValidationError::TransmissionRiskLevel { .. } => "Invalid transmission risk level.",
            ValidationError::TooManyVisitedCountries { .. } => {
                "Too many visited countries (at most 300)."
            }
            ValidationError::InvalidVisitedCountry { .. } => {
                "Invalid visited country (at most 8 ASCII characters)."
            }
            ValidationError::OriginNotAscii { .. } => "The origin is not ASCII.",
            _ => return None,
        })
    }

    /// Whether the upload is refused for its size (413) rather than its content (400).
    pub fn is_too_large(&self) -> bool {
        matches!(self, ValidationError::TooManyKeys { .. })
    }
}

/// The valid rolling start interval numbers at `now` (inclusive bounds, protocol §3):
/// `min = floor((UTC midnight of now − 15 days) / 600 s)`, `max = floor(now / 600 s) + 1`.
pub fn rolling_start_window(now: OffsetDateTime) -> (i64, i64) {
    let now = now.to_offset(time::UtcOffset::UTC);
    let midnight = now.replace_time(time::Time::MIDNIGHT).unix_timestamp();
    let min = (midnight - ROLLING_START_MAX_AGE_DAYS * 86_400).div_euclid(INTERVAL_SECONDS);
    let max = now.unix_timestamp().div_euclid(INTERVAL_SECONDS) + 1;
    (min, max)
}

/// Reads a `uint32` field as Java's signed `int`.
fn as_java_int(v: u32) -> i32 {
    i32::from_be_bytes(v.to_be_bytes())
}

/// The reference's rules for one key (§3), in the reference's order.
fn check_key_reference(
    index: usize,
    key: &DiagnosisKey,
    window: (i64, i64),
) -> Result<(), ValidationError> {
    if key.key_data.is_empty() {
        return Err(ValidationError::EmptyKeyData { index });
    }
    if key.key_data.len() != KEY_DATA_LEN {
        return Err(ValidationError::KeyDataLength {
            index,
            len: key.key_data.len(),
        });
    }
    let rsin = as_java_int(key.rolling_start_interval_number);
    let (min, max) = window;
    if !(min..=max).contains(&i64::from(rsin)) {
        return Err(ValidationError::RollingStartIntervalNumber {
            index,
            value: rsin,
            min,
            max,
        });
    }
    let rp = as_java_int(key.rolling_period);
    if !(1..=MAX_ROLLING_PERIOD).contains(&rp) {
        return Err(ValidationError::RollingPeriod { index, value: rp });
    }
    let trl = key.transmission_risk_level;
    if !((0..=MAX_TRANSMISSION_RISK_LEVEL).contains(&trl) || trl == TRANSMISSION_RISK_LEVEL_UNKNOWN)
    {
        return Err(ValidationError::TransmissionRiskLevel { index, value: trl });
    }
    Ok(())
}

/// Our input limits for one key (decisions item 5).
fn check_key_limits(index: usize, key: &DiagnosisKey) -> Result<(), ValidationError> {
    if key.visited_countries.len() > MAX_VISITED_COUNTRIES {
        return Err(ValidationError::TooManyVisitedCountries {
            index,
            count: key.visited_countries.len(),
        });
    }
    if let Some(position) = key.visited_countries.iter().position(|c| !c.is_valid()) {
        return Err(ValidationError::InvalidVisitedCountry { index, position });
    }
    if !key.origin.is_ascii() {
        return Err(ValidationError::OriginNotAscii { index });
    }
    // A country is at most 8 bytes (ADR 0031): a longer origin is no uploader's country. Said
    // here, before the signature check, because such an origin has no canonical bytes.
    if key.origin.is_too_long() {
        return Err(ValidationError::OriginMismatch { index });
    }
    Ok(())
}

/// Validates an upload's keys at `now` (see the module documentation for the order of checks).
///
/// An empty batch is valid, as in the reference.
pub fn validate_batch(
    batch: &DiagnosisKeyBatch,
    now: OffsetDateTime,
    policy: &ValidationPolicy,
) -> Result<(), ValidationError> {
    let window = rolling_start_window(now);
    for (index, key) in batch.keys.iter().enumerate() {
        check_key_reference(index, key, window)?;
    }
    if batch.keys.len() > policy.max_keys {
        return Err(ValidationError::TooManyKeys {
            count: batch.keys.len(),
            max: policy.max_keys,
        });
    }
    for (index, key) in batch.keys.iter().enumerate() {
        check_key_limits(index, key)?;
    }
    Ok(())
}

/// Checks an upload's `batchTag` header: 1..=64 characters, each printable ASCII `0x21..=0x7E`.
///
/// Space is refused: HTTP strips leading and trailing spaces from header values, so such tags
/// cannot round-trip, and no known client uses spaces (tags seen in the wild use letters, digits
/// and `+ / = -`).
pub fn validate_batch_tag(tag: &str) -> Result<(), ValidationError> {
    if tag.is_empty() {
        return Err(ValidationError::BatchTagEmpty);
    }
    if tag.len() > MAX_BATCH_TAG_LEN {
        return Err(ValidationError::BatchTagTooLong { len: tag.len() });
    }
    if let Some(position) = tag.bytes().position(|b| !(0x21..=0x7E).contains(&b)) {
        return Err(ValidationError::BatchTagCharacter { position });
    }
    Ok(())
}

/// Checks the size of an upload's `batchSignature` header: non-empty, at most 32 KiB. Its
/// content is checked by the signature verifier.
pub fn validate_batch_signature_header(sig: &str) -> Result<(), ValidationError> {
    if sig.is_empty() {
        return Err(ValidationError::BatchSignatureEmpty);
    }
    if sig.len() > MAX_BATCH_SIGNATURE_LEN {
        return Err(ValidationError::BatchSignatureTooLong { len: sig.len() });
    }
    Ok(())
}

/// Checks that every key's origin is exactly `country`, the uploader's country (reference upload
/// step 7). The error names the first key that differs.
pub fn check_origins(keys: &[DiagnosisKey], country: &str) -> Result<(), ValidationError> {
    match keys
        .iter()
        .position(|k| !(k.origin.is_valid() && k.origin == country))
    {
        Some(index) => Err(ValidationError::OriginMismatch { index }),
        None => Ok(()),
    }
}
