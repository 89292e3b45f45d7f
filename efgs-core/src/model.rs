//! The federation's data model: `Efgs.proto` of the reference, as prost messages.
//!
//! Field numbers and wire types are exactly those of `eu.interop.DiagnosisKeyBatch`:
//! `uint32` rolling start and period, `int32` transmission risk level, `sint32` days since
//! onset of symptoms. `report_type` is kept as the raw `i32` so numbers outside
//! [`ReportType`] travel through decoding, canonical bytes and encoding unchanged.

pub use crate::country::CountryCode;
pub use crate::key_fields::{CountryList, KeyData};

/// One GAEN temporary exposure key with the EFGS metadata (`eu.interop.DiagnosisKey`).
///
/// Implements [`prost::Message`] by hand (the countries are [`CountryCode`]s, not strings);
/// the wire form is exactly that of the derived message.
#[derive(Clone, PartialEq, Eq, Hash, Default, Debug)]
pub struct DiagnosisKey {
    /// The 16-byte temporary exposure key (inline, see [`KeyData`]).
    pub key_data: KeyData,
    /// Start of the key's validity in 10-minute intervals since the Unix epoch.
    pub rolling_start_interval_number: u32,
    /// Number of 10-minute intervals the key was valid (1..=144).
    pub rolling_period: u32,
    /// Transmission risk level (0..=8, or `0x7FFF_FFFF` for "unknown").
    pub transmission_risk_level: i32,
    /// Countries the key's owner visited (not range-checked, as uploaded). Decoded keys of one
    /// batch share equal lists (see [`CountryList`]).
    pub visited_countries: CountryList,
    /// Country of origin; must equal the uploader's country.
    pub origin: CountryCode,
    /// Report type number; see [`ReportType`]. Unknown numbers are kept as they are.
    pub report_type: i32,
    /// Days since onset of symptoms (`sint32` on the wire).
    pub days_since_onset_of_symptoms: i32,
}

/// Wire length of a length-delimited field with a one-byte key and `len` bytes.
fn len_field(len: usize) -> usize {
    1 + prost::encoding::encoded_len_varint(len as u64) + len
}

fn encode_country(tag: u32, code: &CountryCode, buf: &mut impl prost::bytes::BufMut) {
    use prost::encoding::{WireType, encode_key, encode_varint};
    encode_key(tag, WireType::LengthDelimited, buf);
    if code.is_valid() {
        // A valid code is its ASCII bytes (the usual case, without building a string).
        let bytes = code.as_bytes();
        encode_varint(bytes.len() as u64, buf);
        buf.put_slice(bytes);
    } else {
        let text = code.text();
        encode_varint(text.len() as u64, buf);
        buf.put_slice(text.as_bytes());
    }
}

/// Encoded length of a country's string.
fn country_len(code: &CountryCode) -> usize {
    if code.is_valid() {
        code.as_bytes().len()
    } else {
        code.text().len()
    }
}

fn merge_country(
    wire_type: prost::encoding::WireType,
    buf: &mut impl prost::bytes::Buf,
    ctx: prost::encoding::DecodeContext,
) -> Result<CountryCode, prost::DecodeError> {
    let mut text = String::new();
    prost::encoding::string::merge(wire_type, &mut text, buf, ctx)?;
    Ok(CountryCode::from_text(&text))
}

impl prost::Message for DiagnosisKey {
    fn encode_raw(&self, buf: &mut impl prost::bytes::BufMut) {
        self.encode_fields(None, buf);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: prost::encoding::WireType,
        buf: &mut impl prost::bytes::Buf,
        ctx: prost::encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        use prost::encoding::{bytes, int32, sint32, skip_field, uint32};
        const NAME: &str = "DiagnosisKey";
        match tag {
            1 => {
                let mut data = Vec::new();
                match bytes::merge(wire_type, &mut data, buf, ctx) {
                    Ok(()) => {
                        self.key_data = KeyData::from(data);
                        Ok(())
                    }
                    Err(mut e) => {
                        e.push(NAME, "key_data");
                        Err(e)
                    }
                }
            }
            2 => uint32::merge(wire_type, &mut self.rolling_start_interval_number, buf, ctx)
                .map_err(|mut e| {
                    e.push(NAME, "rolling_start_interval_number");
                    e
                }),
            3 => uint32::merge(wire_type, &mut self.rolling_period, buf, ctx).map_err(|mut e| {
                e.push(NAME, "rolling_period");
                e
            }),
            4 => int32::merge(wire_type, &mut self.transmission_risk_level, buf, ctx).map_err(
                |mut e| {
                    e.push(NAME, "transmission_risk_level");
                    e
                },
            ),
            5 => match merge_country(wire_type, buf, ctx) {
                Ok(code) => {
                    self.visited_countries.push(code);
                    Ok(())
                }
                Err(mut e) => {
                    e.push(NAME, "visited_countries");
                    Err(e)
                }
            },
            6 => match merge_country(wire_type, buf, ctx) {
                Ok(code) => {
                    self.origin = code;
                    Ok(())
                }
                Err(mut e) => {
                    e.push(NAME, "origin");
                    Err(e)
                }
            },
            7 => int32::merge(wire_type, &mut self.report_type, buf, ctx).map_err(|mut e| {
                e.push(NAME, "report_type");
                e
            }),
            8 => sint32::merge(wire_type, &mut self.days_since_onset_of_symptoms, buf, ctx)
                .map_err(|mut e| {
                    e.push(NAME, "days_since_onset_of_symptoms");
                    e
                }),
            _ => skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        self.encoded_len_except_visited()
            + self
                .visited_countries
                .iter()
                .map(|code| len_field(country_len(code)))
                .sum::<usize>()
    }

    fn clear(&mut self) {
        *self = DiagnosisKey::default();
    }
}

impl DiagnosisKey {
    /// Writes the key's fields; the visited countries as `visited` when given (their fields
    /// already encoded, [`VisitedMemo`]), from the list otherwise.
    fn encode_fields(&self, visited: Option<&[u8]>, buf: &mut impl prost::bytes::BufMut) {
        use prost::encoding::{int32, sint32, uint32};
        if !self.key_data.is_empty() {
            prost::encoding::encode_key(1, prost::encoding::WireType::LengthDelimited, buf);
            prost::encoding::encode_varint(self.key_data.len() as u64, buf);
            buf.put_slice(&self.key_data);
        }
        if self.rolling_start_interval_number != 0 {
            uint32::encode(2, &self.rolling_start_interval_number, buf);
        }
        if self.rolling_period != 0 {
            uint32::encode(3, &self.rolling_period, buf);
        }
        if self.transmission_risk_level != 0 {
            int32::encode(4, &self.transmission_risk_level, buf);
        }
        match visited {
            Some(bytes) => buf.put_slice(bytes),
            None => {
                for code in &self.visited_countries {
                    encode_country(5, code, buf);
                }
            }
        }
        if self.origin != CountryCode::EMPTY {
            encode_country(6, &self.origin, buf);
        }
        if self.report_type != 0 {
            int32::encode(7, &self.report_type, buf);
        }
        if self.days_since_onset_of_symptoms != 0 {
            sint32::encode(8, &self.days_since_onset_of_symptoms, buf);
        }
    }

    /// Encoded length of every field but the visited countries.
    fn encoded_len_except_visited(&self) -> usize {
        use prost::encoding::{int32, sint32, uint32};
        let mut n = 0;
        if !self.key_data.is_empty() {
            n += len_field(self.key_data.len());
        }
        if self.rolling_start_interval_number != 0 {
            n += uint32::encoded_len(2, &self.rolling_start_interval_number);
        }
        if self.rolling_period != 0 {
            n += uint32::encoded_len(3, &self.rolling_period);
        }
        if self.transmission_risk_level != 0 {
            n += int32::encoded_len(4, &self.transmission_risk_level);
        }
        if self.origin != CountryCode::EMPTY {
            n += len_field(country_len(&self.origin));
        }
        if self.report_type != 0 {
            n += int32::encoded_len(7, &self.report_type);
        }
        if self.days_since_onset_of_symptoms != 0 {
            n += sint32::encoded_len(8, &self.days_since_onset_of_symptoms);
        }
        n
    }
}

/// The encoded visited-country fields of the last shared list seen: keys of one batch share
/// their list (ADR 0033), so a batch's keys are encoded with the list's bytes copied instead
/// of encoding 27 countries per key. Gives the same bytes as [`prost::Message::encode`].
#[derive(Debug, Default)]
pub(crate) struct VisitedMemo {
    list: Option<CountryList>,
    bytes: Vec<u8>,
}

impl VisitedMemo {
    /// Appends `key` as field 1 of a `DiagnosisKeyBatch` (tag, length, fields).
    pub(crate) fn encode_batch_entry(&mut self, key: &DiagnosisKey, buf: &mut Vec<u8>) {
        let list = &key.visited_countries;
        let same = self.list.as_ref().is_some_and(|l| l.same_shared(list));
        if !same {
            self.bytes.clear();
            for code in list {
                encode_country(5, code, &mut self.bytes);
            }
            self.list = list.is_shared().then(|| list.clone());
        }
        let len = key.encoded_len_except_visited() + self.bytes.len();
        prost::encoding::encode_key(1, prost::encoding::WireType::LengthDelimited, buf);
        prost::encoding::encode_varint(len as u64, buf);
        key.encode_fields(Some(&self.bytes), buf);
    }
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
