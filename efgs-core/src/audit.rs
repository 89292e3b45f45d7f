//! Audit rules for `GET /diagnosiskeys/audit/download/{date}/{batchTag}` (protocol §1.4, §6).
//!
//! Order of checks on the route: the path date is parsed like the download's
//! ([`crate::download::parse_path_date`]), then [`check_audit_date`] (410), the batch lookup
//! ([`AuditError::UnknownBatchTag`], 404), [`check_audit_batch_day`] (404; here the dates must be
//! *equal*), and finally the batch's audit groups, one per upload
//! ([`crate::store::KeyStore::audit_groups`], [`crate::store::AuditGroup`]); no keys left gives
//! [`AuditError::NoKeys`] (404).
//!
//! Every upload is identified by (uploader country, uploader batchTag) (decisions item 3; the
//! reference grouped by batchTag alone because tags were global), so two countries using the
//! same tag in one batch give two groups.

use serde::{Serialize, Serializer};
use time::{Date, OffsetDateTime, UtcOffset};

use crate::cert::Thumbprint;
use crate::download::DownloadPolicy;

/// One element of the audit answer: one upload inside the requested download batch.
///
/// Serialises to JSON with exactly the reference's field names and order (protocol §1.4):
/// `country, uploadedTime, uploaderCertificate, uploaderThumbprint, uploaderOperatorSignature,
/// signingCertificate, uploaderSigningThumbprint, signingCertificateOperatorSignature, amount,
/// batchSignature`. Missing certificates and operator signatures are written as `null`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// Uploader country.
    pub country: String,
    /// When the upload was stored (the smallest `created_at` of its keys), rendered by
    /// [`format_uploaded_time`].
    #[serde(serialize_with = "serialize_uploaded_time")]
    pub uploaded_time: OffsetDateTime,
    /// PEM of the uploader's AUTHENTICATION certificate, exactly as signed by the trust
    /// anchor, or `None` if the row is gone or fails its integrity check.
    pub uploader_certificate: Option<String>,
    /// Thumbprint of the authentication certificate the upload came in with.
    #[serde(serialize_with = "serialize_thumbprint")]
    pub uploader_thumbprint: Thumbprint,
    /// Base64 trust-anchor signature of the authentication certificate row, or `None`.
    pub uploader_operator_signature: Option<String>,
    /// PEM of the SIGNING certificate that signed the upload, or `None`.
    pub signing_certificate: Option<String>,
    /// Thumbprint of the signing certificate found in the batch signature.
    #[serde(serialize_with = "serialize_thumbprint")]
    pub uploader_signing_thumbprint: Thumbprint,
    /// Base64 trust-anchor signature of the signing certificate row, or `None`.
    pub signing_certificate_operator_signature: Option<String>,
    /// Number of the upload's keys in this download batch.
    pub amount: u64,
    /// The `batchSignature` header exactly as given at upload.
    pub batch_signature: String,
}

fn serialize_thumbprint<S: Serializer>(t: &Thumbprint, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(t.as_str())
}

fn serialize_uploaded_time<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_uploaded_time(*t))
}

/// Renders `uploadedTime` as the reference does: Jackson writes the `ZonedDateTime` with
/// `ISO_OFFSET_DATE_TIME` in UTC, i.e. `yyyy-MM-ddTHH:mm:ss`, then a fraction of 1 to 9 digits
/// with trailing zeros removed (none at all when it is zero), then `Z`:
/// `2020-07-31T11:24:43.08Z`, `2020-07-31T11:24:43Z`, `2020-07-31T11:24:43.123456789Z`.
///
/// **Decision:** this follows the reference's serializer rather than `Instant.toString` (which
/// pads the fraction to 3, 6 or 9 digits, giving `.080Z`); the example in the reference docs is
/// `.08Z`. Every ISO-8601 parser clients use (Java `Instant.parse`, `ZonedDateTime.parse`,
/// `OffsetDateTime.parse`) accepts either. Years outside 0..=9999 (impossible for real data)
/// are written with a sign, as Java does.
pub fn format_uploaded_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    let year = t.year();
    let mut out = if (0..=9999).contains(&year) {
        format!("{year:04}")
    } else {
        format!("{year:+05}")
    };
    out.push_str(&format!(
        "-{:02}-{:02}T{:02}:{:02}:{:02}",
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    ));
    let nanos = t.nanosecond();
    if nanos != 0 {
        let digits = format!("{nanos:09}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Errors of the audit rules. The `Display` text of each variant is the reference's exact
/// reason text; the server maps [`AuditError::code`] to the status noted on each variant.
///
/// Not `#[non_exhaustive]`: the server's status table matches its variants (ADR 0012).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The requested date lies before the download window. Status 410.
    #[error("Requested date is too old!")]
    TooOld {
        /// The requested date.
        date: Date,
        /// The oldest date still allowed at the time of the request.
        oldest: Date,
    },
    /// The batch tag in the path names no existing batch. Status 404.
    #[error("Could not find batch with given BatchTag")]
    UnknownBatchTag {
        /// The tag as requested.
        tag: String,
    },
    /// The batch was not created on the requested UTC day. Status 404.
    #[error("Given date does not match the requested batch")]
    DateMismatch {
        /// The requested date.
        date: Date,
        /// The UTC day the batch was created.
        batch_day: Date,
    },
    /// The batch has no keys (left); for example they were already deleted by retention.
    /// Status 404.
    #[error("Batchtag not found")]
    NoKeys {
        /// The batch tag.
        tag: String,
    },
}

impl AuditError {
    /// A stable kebab-case machine code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            AuditError::TooOld { .. } => "date-too-old",
            AuditError::UnknownBatchTag { .. } => "unknown-batch-tag",
            AuditError::DateMismatch { .. } => "date-mismatch",
            AuditError::NoKeys { .. } => "batch-has-no-keys",
        }
    }
}

/// Step 1 of the audit: same window as the download ([`DownloadPolicy`]); a date before
/// `(now − max_age_days)` as a UTC date gives [`AuditError::TooOld`] (410).
pub fn check_audit_date(
    date: Date,
    now: OffsetDateTime,
    policy: &DownloadPolicy,
) -> Result<(), AuditError> {
    let oldest = policy.oldest_date(now);
    if date < oldest {
        Err(AuditError::TooOld { date, oldest })
    } else {
        Ok(())
    }
}

/// The batch's UTC creation day must *equal* the requested date, otherwise
/// [`AuditError::DateMismatch`] (404). Note the contrast with
/// [`crate::download::check_batch_day`], which allows later days.
pub fn check_audit_batch_day(batch_created: OffsetDateTime, date: Date) -> Result<(), AuditError> {
    let batch_day = batch_created.to_offset(UtcOffset::UTC).date();
    if batch_day == date {
        Ok(())
    } else {
        Err(AuditError::DateMismatch { date, batch_day })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn fraction_digits() {
        assert_eq!(
            format_uploaded_time(datetime!(2020-07-31 11:24:43.5 UTC)),
            "2020-07-31T11:24:43.5Z"
        );
        assert_eq!(
            format_uploaded_time(datetime!(2020-07-31 11:24:43.000_000_001 UTC)),
            "2020-07-31T11:24:43.000000001Z"
        );
    }
}
