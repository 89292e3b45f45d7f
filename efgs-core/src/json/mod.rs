//! The reference's JSON format for a `DiagnosisKeyBatch` (protocol.md §1.0, "JSON wire format").
//!
//! This is not proto3 canonical JSON: it is what protobuf-java-format 1.4 `JsonFormat` prints
//! and parses, with the reference's `ProtobufConverter` writing and reading bytes as standard
//! Base64.
//!
//! # Output ([`to_reference_json`])
//!
//! `{"keys": [{…},{…}]}`: `": "` between a name and its value, no space after the commas that
//! separate fields and elements, fields in field-number order, proto3 defaults (0, empty bytes,
//! empty string, empty list, report type 0) left out, an empty batch as `{}`. `uint32` values are
//! printed unsigned, `int32`/`sint32` signed; bytes as standard Base64 with padding; strings
//! escaped like `JsonFormat.escapeText` (`\b \f \n \r \t \\ \"`, other characters below U+0020
//! as `\u00xx` with lowercase hex, characters outside the BMP as two `\uxxxx` surrogate escapes,
//! everything else verbatim in UTF-8). The name of field 8 is `days_since_onset_of_symptoms`.
//!
//! **Unknown report types** are printed as a bare JSON number, e.g. `"reportType": 7`.
//! The reference printer would write the name protobuf-java makes up for an unknown proto3
//! enum value (`EnumDescriptor.findValueByNumberCreatingIfUnknown` names it
//! `UNKNOWN_ENUM_VALUE_ReportType_7`, quoted), which no parser, the reference's included,
//! accepts back. In practice the reference never prints one (its download path maps the stored
//! report type to a Java enum first). Since efgs-rs passes unknown numbers through
//! (decisions.md item 5), it prints the number, which [`from_reference_json`] and
//! proto3-JSON parsers read back.
//!
//! # Input ([`from_reference_json`])
//!
//! A hand-written, iterative tokenizer with the reference's leniencies:
//! - field names bare (`keyData`) or double-quoted; single-quoted names are rejected;
//! - unknown names are skipped, with their value (objects and arrays included, nested up to
//!   [`MAX_NESTING_DEPTH`] levels);
//! - `daysSinceOnsetOfSymptoms` is an alias of `days_since_onset_of_symptoms`
//!   (decisions.md item 6; the reference silently skipped it);
//! - `reportType` by name (bare or double-quoted) or by number; any 32-bit number is kept
//!   (decisions.md item 5; the reference rejected numbers outside the enum);
//! - integers with the protobuf text-format rules: optional sign, `0x` hex, leading-`0` octal,
//!   range checked for the field type (`uint32` rejects any `-`); a double-quoted integer is
//!   read as decimal (`"42"`), and `""` as 0, like the reference;
//! - bytes as standard Base64 with Java's `Base64.getDecoder()` rules: padding optional but, when
//!   present, correct; no whitespace, no URL-safe characters; errors say
//!   "Invalid Base64 in JSON object";
//! - string values double- or single-quoted, with the escapes `\b \f \n \r \t \\ \" \' \/ \uXXXX`
//!   (`\/` is accepted although the reference did not); an unquoted number is accepted as a
//!   string value, verbatim, as the reference did;
//! - `null` as a scalar value means "not set"; a scalar field given a list takes the last
//!   element, a repeated field given a single value gets one element; commas between fields and
//!   list elements may be left out, a trailing comma is allowed in lists but not in objects;
//! - `#` starts a comment up to the end of the line (the reference tokenizer's whitespace rule);
//! - anything after the closing `}` is an error.
//!
//! Field numbers used as names (`"1": …`) are rejected with [`JsonError::FieldNumberName`]: the
//! reference mapped them onto the field with that number using other value rules (for example
//! C-escaped bytes instead of Base64); numbers that name no field are skipped like other unknown
//! names.

use crate::model::{CountryCode, DiagnosisKey, DiagnosisKeyBatch, ReportType};
use base64::Engine as _;
use std::fmt::Write as _;

/// How deep objects and arrays inside skipped (unknown) values may nest.
pub const MAX_NESTING_DEPTH: usize = 64;

/// Reason text of a Base64 error, as the reference words it.
pub const INVALID_BASE64: &str = "Invalid Base64 in JSON object";

/// Errors of the JSON decoder. Each carries the byte offset in the body where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JsonError {
    /// The body is not valid UTF-8.
    #[error("Failed to read request: invalid UTF-8 at byte {position}")]
    InvalidUtf8 {
        /// Byte offset of the first invalid byte.
        position: usize,
    },
    /// A token other than the expected one.
    #[error("Failed to read request: at byte {position}: expected {expected}, found {found:?}")]
    Unexpected {
        /// Byte offset of the token.
        position: usize,
        /// What the parser expected.
        expected: &'static str,
        /// The token found: a structural character, or only the kind of a name, number or
        /// string (never its text, which could be key data).
        found: String,
    },
    /// The body ended early.
    #[error(
        "Failed to read request: at byte {position}: unexpected end of input, expected {expected}"
    )]
    UnexpectedEnd {
        /// Byte offset of the end.
        position: usize,
        /// What the parser expected.
        expected: &'static str,
    },
    /// A quoted string is unterminated or has a bad escape sequence.
    #[error("Failed to read request: at byte {position}: {reason}")]
    InvalidString {
        /// Byte offset of the string.
        position: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An integer that does not parse or is out of range for its field.
    #[error(
        "Failed to read request: at byte {position}: couldn't parse integer {text:?} for {field}: {reason}"
    )]
    InvalidInteger {
        /// Byte offset of the value.
        position: usize,
        /// The field name.
        field: &'static str,
        /// The value text (shortened).
        text: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A report type name that `Efgs.proto` does not define.
    #[error(
        "Failed to read request: at byte {position}: Enum type \"eu.interop.ReportType\" has no value named \"{name}\""
    )]
    UnknownEnumName {
        /// Byte offset of the value.
        position: usize,
        /// The name given (shortened).
        name: String,
    },
    /// A bytes field whose value is not valid standard Base64.
    #[error("Invalid Base64 in JSON object")]
    InvalidBase64 {
        /// Byte offset of the value.
        position: usize,
        /// The field name.
        field: &'static str,
    },
    /// Unknown values nest deeper than [`MAX_NESTING_DEPTH`].
    #[error("Failed to read request: at byte {position}: nesting deeper than {limit} levels")]
    TooDeep {
        /// Byte offset of the opening bracket that was one too many.
        position: usize,
        /// The limit.
        limit: usize,
    },
    /// A key lists more visited countries than the validation allows
    /// ([`crate::validate::MAX_VISITED_COUNTRIES`]): decoding stops there, so such a body
    /// never allocates its whole list.
    #[error("Validation of diagnosis key failed: Too many visited countries (at most 300).")]
    TooManyVisitedCountries {
        /// Byte offset of the entry that was one too many.
        position: usize,
    },
    /// A field number used as a field name (not supported, see the module documentation).
    #[error(
        "Failed to read request: at byte {position}: field numbers as names are not supported: {name:?}"
    )]
    FieldNumberName {
        /// Byte offset of the name.
        position: usize,
        /// The name.
        name: String,
    },
    /// Something follows the closing `}`.
    #[error(
        "Failed to read request: at byte {position}: Expecting the end of the stream, but there seems to be more data"
    )]
    TrailingContent {
        /// Byte offset of the first extra token.
        position: usize,
    },
}

impl JsonError {
    /// A stable machine code for this kind.
    pub fn code(&self) -> &'static str {
        match self {
            JsonError::InvalidUtf8 { .. } => "json-invalid-utf8",
            JsonError::Unexpected { .. } => "json-unexpected-token",
            JsonError::UnexpectedEnd { .. } => "json-unexpected-end",
            JsonError::InvalidString { .. } => "json-invalid-string",
            JsonError::InvalidInteger { .. } => "json-invalid-integer",
            JsonError::UnknownEnumName { .. } => "json-unknown-enum-name",
            JsonError::InvalidBase64 { .. } => "json-invalid-base64",
            JsonError::TooDeep { .. } => "json-too-deep",
            JsonError::TooManyVisitedCountries { .. } => "too-many-visited-countries",
            JsonError::FieldNumberName { .. } => "json-field-number-name",
            JsonError::TrailingContent { .. } => "json-trailing-content",
        }
    }

    /// Byte offset in the body where the error was found.
    pub fn position(&self) -> usize {
        match self {
            JsonError::InvalidUtf8 { position }
            | JsonError::Unexpected { position, .. }
            | JsonError::UnexpectedEnd { position, .. }
            | JsonError::InvalidString { position, .. }
            | JsonError::InvalidInteger { position, .. }
            | JsonError::UnknownEnumName { position, .. }
            | JsonError::InvalidBase64 { position, .. }
            | JsonError::TooDeep { position, .. }
            | JsonError::TooManyVisitedCountries { position }
            | JsonError::FieldNumberName { position, .. }
            | JsonError::TrailingContent { position } => *position,
        }
    }
}

mod output;
#[allow(unused_imports)]
pub use output::*;
mod input;
#[allow(unused_imports)]
pub use input::*;
#[cfg(test)]
mod tests;
