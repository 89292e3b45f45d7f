//! The federation's data model: `Efgs.proto` of the reference, as prost messages.
//!
//! Field numbers and wire types are exactly those of `eu.interop.DiagnosisKeyBatch`:
//! `uint32` rolling start and period, `int32` transmission risk level, `sint32` days since
//! onset of symptoms. `report_type` is kept as the raw `i32` so numbers outside
//! [`ReportType`] travel through decoding, canonical bytes and encoding unchanged.

/// One GAEN temporary exposure key with the EFGS metadata (`eu.interop.DiagnosisKey`).
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct DiagnosisKey {
    /// The 16-byte temporary exposure key.
    #[prost(bytes = "vec", tag = "1")]
    pub key_data: Vec<u8>,
    /// Start of the key's validity in 10-minute intervals since the Unix epoch.
    #[prost(uint32, tag = "2")]
    pub rolling_start_interval_number: u32,
    /// Number of 10-minute intervals the key was valid (1..=144).
    #[prost(uint32, tag = "3")]
    pub rolling_period: u32,
    /// Transmission risk level (0..=8, or `0x7FFF_FFFF` for "unknown").
    #[prost(int32, tag = "4")]
    pub transmission_risk_level: i32,
    /// Countries the key's owner visited (free strings, as uploaded).
    #[prost(string, repeated, tag = "5")]
    pub visited_countries: Vec<String>,
    /// Country of origin; must equal the uploader's country.
    #[prost(string, tag = "6")]
    pub origin: String,
    /// Report type number; see [`ReportType`]. Unknown numbers are kept as they are.
    #[prost(enumeration = "ReportType", tag = "7")]
    pub report_type: i32,
    /// Days since onset of symptoms (`sint32` on the wire).
    #[prost(sint32, tag = "8")]
    pub days_since_onset_of_symptoms: i32,
}

/// A batch of diagnosis keys (`eu.interop.DiagnosisKeyBatch`): the upload and download body.
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct DiagnosisKeyBatch {
    /// The keys, in wire order.
    #[prost(message, repeated, tag = "1")]
    pub keys: Vec<DiagnosisKey>,
}

/// The report types named by `Efgs.proto`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ReportType {
    /// `UNKNOWN` (0), the proto3 default.
    Unknown = 0,
    /// `CONFIRMED_TEST` (1).
    ConfirmedTest = 1,
    /// `CONFIRMED_CLINICAL_DIAGNOSIS` (2).
    ConfirmedClinicalDiagnosis = 2,
    /// `SELF_REPORT` (3).
    SelfReport = 3,
    /// `RECURSIVE` (4).
    Recursive = 4,
    /// `REVOKED` (5).
    Revoked = 5,
}

impl ReportType {
    /// The enum value name as written in `Efgs.proto` (and in the reference's JSON).
    pub fn proto_name(self) -> &'static str {
        match self {
            ReportType::Unknown => "UNKNOWN",
            ReportType::ConfirmedTest => "CONFIRMED_TEST",
            ReportType::ConfirmedClinicalDiagnosis => "CONFIRMED_CLINICAL_DIAGNOSIS",
            ReportType::SelfReport => "SELF_REPORT",
            ReportType::Recursive => "RECURSIVE",
            ReportType::Revoked => "REVOKED",
        }
    }

    /// Looks a value up by its `Efgs.proto` name.
    pub fn from_proto_name(name: &str) -> Option<Self> {
        Some(match name {
            "UNKNOWN" => ReportType::Unknown,
            "CONFIRMED_TEST" => ReportType::ConfirmedTest,
            "CONFIRMED_CLINICAL_DIAGNOSIS" => ReportType::ConfirmedClinicalDiagnosis,
            "SELF_REPORT" => ReportType::SelfReport,
            "RECURSIVE" => ReportType::Recursive,
            "REVOKED" => ReportType::Revoked,
            _ => return None,
        })
    }
}

/// Maximum number of keys in one upload and in one download batch (reference default).
pub const MAX_KEYS_PER_BATCH: usize = 5000;

/// The payload format version of an upload (`Content-Type: …; version=major.minor`).
///
/// The batcher never mixes versions in one download batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FormatVersion {
    /// Major version.
    pub major: u16,
    /// Minor version.
    pub minor: u16,
}

impl FormatVersion {
    /// Version 1.0, the only one the federation speaks.
    pub const V1_0: FormatVersion = FormatVersion { major: 1, minor: 0 };
}

impl std::fmt::Display for FormatVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The three kinds of certificates on the trust list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CertificateType {
    /// Identifies a national backend's TLS client (the auth headers / mTLS).
    Authentication,
    /// Signs upload batches (CMS `batchSignature`).
    Signing,
    /// Identifies a national backend's callback receiver.
    Callback,
}

impl CertificateType {
    /// The name used on the trust list and in the reference database.
    pub fn as_str(self) -> &'static str {
        match self {
            CertificateType::Authentication => "AUTHENTICATION",
            CertificateType::Signing => "SIGNING",
            CertificateType::Callback => "CALLBACK",
        }
    }

    /// Parses the exact names `AUTHENTICATION`, `SIGNING`, `CALLBACK`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "AUTHENTICATION" => Some(CertificateType::Authentication),
            "SIGNING" => Some(CertificateType::Signing),
            "CALLBACK" => Some(CertificateType::Callback),
            _ => None,
        }
    }
}

impl std::fmt::Display for CertificateType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
