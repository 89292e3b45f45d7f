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

use crate::model::{DiagnosisKey, DiagnosisKeyBatch, ReportType};
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
        /// The token found (shortened).
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
            | JsonError::FieldNumberName { position, .. }
            | JsonError::TrailingContent { position } => *position,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Output

/// Prints a batch exactly as the reference does (see the module documentation).
pub fn to_reference_json(batch: &DiagnosisKeyBatch) -> String {
    let mut out = String::with_capacity(2 + batch.keys.len() * 280);
    out.push('{');
    if !batch.keys.is_empty() {
        out.push_str("\"keys\": [");
        for (i, key) in batch.keys.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_key(&mut out, key);
        }
        out.push(']');
    }
    out.push('}');
    out
}

fn write_key(out: &mut String, key: &DiagnosisKey) {
    out.push('{');
    let mut first = true;
    let mut field = |out: &mut String, name: &str| {
        if !first {
            out.push(',');
        }
        first = false;
        out.push('"');
        out.push_str(name);
        out.push_str("\": ");
    };
    if !key.key_data.is_empty() {
        field(out, "keyData");
        out.push('"');
        base64::engine::general_purpose::STANDARD.encode_string(&key.key_data, out);
        out.push('"');
    }
    // `write!` into a String cannot fail.
    if key.rolling_start_interval_number != 0 {
        field(out, "rollingStartIntervalNumber");
        let _ = write!(out, "{}", key.rolling_start_interval_number);
    }
    if key.rolling_period != 0 {
        field(out, "rollingPeriod");
        let _ = write!(out, "{}", key.rolling_period);
    }
    if key.transmission_risk_level != 0 {
        field(out, "transmissionRiskLevel");
        let _ = write!(out, "{}", key.transmission_risk_level);
    }
    if !key.visited_countries.is_empty() {
        field(out, "visitedCountries");
        out.push('[');
        for (i, c) in key.visited_countries.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_string(out, c);
        }
        out.push(']');
    }
    if !key.origin.is_empty() {
        field(out, "origin");
        write_string(out, &key.origin);
    }
    if key.report_type != 0 {
        field(out, "reportType");
        match ReportType::try_from(key.report_type) {
            Ok(rt) => {
                out.push('"');
                out.push_str(rt.proto_name());
                out.push('"');
            }
            Err(_) => {
                let _ = write!(out, "{}", key.report_type);
            }
        }
    }
    if key.days_since_onset_of_symptoms != 0 {
        field(out, "days_since_onset_of_symptoms");
        let _ = write!(out, "{}", key.days_since_onset_of_symptoms);
    }
    out.push('}');
}

/// A quoted string, escaped like protobuf-java-format's `escapeText`.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) > 0xFFFF => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{:04x}", unit);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

// ---------------------------------------------------------------------------------------------
// Input

/// Parses the reference's JSON format leniently (see the module documentation).
pub fn from_reference_json(bytes: &[u8]) -> Result<DiagnosisKeyBatch, JsonError> {
    parse_limited(bytes, usize::MAX).map(|(batch, _)| batch)
}

/// Parses like [`from_reference_json`] but keeps at most `max_keys` keys; the keys after those
/// are still parsed and checked, then dropped. Returns the batch and the total number of keys.
pub(crate) fn parse_limited(
    bytes: &[u8],
    max_keys: usize,
) -> Result<(DiagnosisKeyBatch, usize), JsonError> {
    let src = std::str::from_utf8(bytes).map_err(|e| JsonError::InvalidUtf8 {
        position: e.valid_up_to(),
    })?;
    let mut p = Parser::new(src)?;
    let mut batch = DiagnosisKeyBatch::default();
    let mut count = 0usize;
    p.expect_char(b'{', "\"{\"")?;
    p.object_members(|p, name, pos| match name {
        "keys" => p.keys_value(&mut batch.keys, &mut count, max_keys),
        n if field_number(n) == Some(1) => Err(JsonError::FieldNumberName {
            position: pos,
            name: shorten(n),
        }),
        _ => p.skip_value(),
    })?;
    if p.cur.kind != Kind::Eof {
        return Err(JsonError::TrailingContent {
            position: p.cur.pos,
        });
    }
    Ok((batch, count))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Eof,
    /// `[A-Za-z_][0-9A-Za-z_+-]*`
    Ident,
    /// `.?[0-9+-][0-9A-Za-z_.+-]*`
    Number,
    /// A double- or single-quoted string, quotes included.
    Str(u8),
    /// Any other single character.
    Char,
}

#[derive(Clone, Copy, Debug)]
struct Token<'a> {
    kind: Kind,
    text: &'a str,
    pos: usize,
}

struct Parser<'a> {
    src: &'a str,
    /// Where scanning for the token after `cur` starts.
    next: usize,
    cur: Token<'a>,
}

/// Which integer type a field has.
#[derive(Clone, Copy)]
enum IntType {
    U32,
    I32,
}

const MAX_SHOWN: usize = 40;

fn shorten(s: &str) -> String {
    match s.char_indices().nth(MAX_SHOWN) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// The field number named by an all-digit name, if it could name a field (1..=8).
fn field_number(name: &str) -> Option<u32> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let trimmed = name.trim_start_matches('0');
    if trimmed.len() > 2 {
        return None;
    }
    trimmed.parse::<u32>().ok().filter(|n| (1..=8).contains(n))
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'.'
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Result<Self, JsonError> {
        let mut p = Parser {
            src,
            next: 0,
            cur: Token {
                kind: Kind::Eof,
                text: "",
                pos: 0,
            },
        };
        p.advance()?;
        Ok(p)
    }

    fn skip_whitespace(&mut self) {
        let b = self.src.as_bytes();
        while let Some(&c) = b.get(self.next) {
            match c {
                b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' => self.next += 1,
                b'#' => {
                    while let Some(&c) = b.get(self.next) {
                        if c == b'\n' || c == b'\r' {
                            break;
                        }
                        self.next += 1;
                    }
                }
                _ => break,
            }
        }
    }

    /// Moves `cur` to the next token.
    fn advance(&mut self) -> Result<(), JsonError> {
        self.skip_whitespace();
        let b = self.src.as_bytes();
        let start = self.next;
        let Some(&c) = b.get(start) else {
            self.cur = Token {
                kind: Kind::Eof,
                text: "",
                pos: b.len(),
            };
            return Ok(());
        };
        let scan = |mut i: usize, ok: fn(u8) -> bool| {
            while b.get(i).is_some_and(|&c| ok(c)) {
                i += 1;
            }
            i
        };
        let number_tail =
            |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'+' | b'-');
        let number_head = |c: Option<&u8>| matches!(c, Some(b'0'..=b'9' | b'+' | b'-'));
        let (kind, end) = match c {
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => (
                Kind::Ident,
                scan(start + 1, |c| {
                    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'+' | b'-')
                }),
            ),
            b'0'..=b'9' | b'+' | b'-' => (Kind::Number, scan(start + 1, number_tail)),
            b'.' if number_head(b.get(start + 1)) => (Kind::Number, scan(start + 2, number_tail)),
            b'"' | b'\'' => (Kind::Str(c), self.scan_string(start, c)?),
            _ => {
                let len = self.src[start..].chars().next().map_or(1, char::len_utf8);
                (Kind::Char, start + len)
            }
        };
        // Every end above is at an ASCII byte or a whole character, so slicing cannot fail.
        let text = self.src.get(start..end).unwrap_or("");
        self.cur = Token {
            kind,
            text,
            pos: start,
        };
        self.next = end;
        Ok(())
    }

    /// Returns the end (exclusive) of the quoted string starting at `start`.
    fn scan_string(&self, start: usize, quote: u8) -> Result<usize, JsonError> {
        let b = self.src.as_bytes();
        let unterminated = JsonError::InvalidString {
            position: start,
            reason: "String missing ending quote",
        };
        let mut i = start + 1;
        loop {
            match b.get(i) {
                None | Some(b'\n') => return Err(unterminated),
                Some(&c) if c == quote => return Ok(i + 1),
                Some(b'\\') => match b.get(i + 1) {
                    None | Some(b'\n') => return Err(unterminated),
                    Some(&c) if c < 0x80 => i += 2,
                    // A non-ASCII character after `\` is an invalid escape, found when unescaping;
                    // step over the backslash only so `i` stays on a char boundary.
                    Some(_) => i += 1,
                },
                Some(_) => i += 1,
            }
        }
    }

    fn is_char(&self, c: u8) -> bool {
        self.cur.kind == Kind::Char && self.cur.text.as_bytes() == [c]
    }

    fn unexpected(&self, expected: &'static str) -> JsonError {
        if self.cur.kind == Kind::Eof {
            JsonError::UnexpectedEnd {
                position: self.cur.pos,
                expected,
            }
        } else {
            JsonError::Unexpected {
                position: self.cur.pos,
                expected,
                found: shorten(self.cur.text),
            }
        }
    }

    fn expect_char(&mut self, c: u8, expected: &'static str) -> Result<(), JsonError> {
        if self.is_char(c) {
            self.advance()
        } else {
            Err(self.unexpected(expected))
        }
    }

    /// A field name: a bare or double-quoted run of `[A-Za-z0-9_.]` (the reference's
    /// `consumeIdentifier`). Returns the name and its position.
    fn name(&mut self) -> Result<(&'a str, usize), JsonError> {
        self.identifier("field name")
    }

    /// What [`Self::name`] reads, for any identifier (field names, enum value names).
    fn identifier(&mut self, expected: &'static str) -> Result<(&'a str, usize), JsonError> {
        let t = self.cur;
        let name = match t.kind {
            Kind::Ident | Kind::Number => t.text,
            Kind::Str(b'"') => &t.text[1..t.text.len() - 1],
            Kind::Str(_) => {
                return Err(JsonError::Unexpected {
                    position: t.pos,
                    expected: "a bare or double-quoted name (single quotes are not accepted)",
                    found: shorten(t.text),
                });
            }
            _ => return Err(self.unexpected(expected)),
        };
        if !name.bytes().all(is_name_char) {
            return Err(self.unexpected(expected));
        }
        self.advance()?;
        Ok((name, t.pos))
    }

    /// The members of an object whose `{` was consumed, up to and including its `}`.
    fn object_members(
        &mut self,
        mut member: impl FnMut(&mut Self, &'a str, usize) -> Result<(), JsonError>,
    ) -> Result<(), JsonError> {
        loop {
            if self.is_char(b'}') {
                return self.advance();
            }
            let (name, pos) = self.name()?;
            self.expect_char(b':', "\":\"")?;
            member(self, name, pos)?;
            if self.is_char(b',') {
                self.advance()?;
                if self.is_char(b'}') {
                    return Err(self.unexpected("field name"));
                }
            }
        }
    }

    /// Calls `value` once for a single value, or once per element for a `[…]` list
    /// (commas optional, trailing comma allowed, like the reference).
    fn one_or_list(
        &mut self,
        mut value: impl FnMut(&mut Self) -> Result<(), JsonError>,
    ) -> Result<(), JsonError> {
        if !self.is_char(b'[') {
            return value(self);
        }
        self.advance()?;
        loop {
            if self.is_char(b']') {
                return self.advance();
            }
            if self.cur.kind == Kind::Eof {
                return Err(self.unexpected("\"]\""));
            }
            value(self)?;
            if self.is_char(b',') {
                self.advance()?;
            }
        }
    }

    fn keys_value(
        &mut self,
        keys: &mut Vec<DiagnosisKey>,
        count: &mut usize,
        max_keys: usize,
    ) -> Result<(), JsonError> {
        self.one_or_list(|p| {
            let key = p.key_object()?;
            if *count < max_keys {
                keys.push(key);
            }
            *count += 1;
            Ok(())
        })
    }

    fn key_object(&mut self) -> Result<DiagnosisKey, JsonError> {
        self.expect_char(b'{', "\"{\" (a diagnosis key)")?;
        let mut key = DiagnosisKey::default();
        self.object_members(|p, name, pos| match name {
            "keyData" => {
                key.key_data = p.bytes_value("keyData")?;
                Ok(())
            }
            "rollingStartIntervalNumber" => p.one_or_list(|p| {
                if let Some(v) = p.int_value("rollingStartIntervalNumber", IntType::U32)? {
                    // In range for u32 by construction.
                    key.rolling_start_interval_number = v as u32;
                }
                Ok(())
            }),
            "rollingPeriod" => p.one_or_list(|p| {
                if let Some(v) = p.int_value("rollingPeriod", IntType::U32)? {
                    key.rolling_period = v as u32;
                }
                Ok(())
            }),
            "transmissionRiskLevel" => p.one_or_list(|p| {
                if let Some(v) = p.int_value("transmissionRiskLevel", IntType::I32)? {
                    key.transmission_risk_level = v as i32;
                }
                Ok(())
            }),
            "visitedCountries" => p.one_or_list(|p| {
                if let Some(s) = p.string_value()? {
                    key.visited_countries.push(s);
                }
                Ok(())
            }),
            "origin" => p.one_or_list(|p| {
                if let Some(s) = p.string_value()? {
                    key.origin = s;
                }
                Ok(())
            }),
            "reportType" => p.one_or_list(|p| {
                if let Some(v) = p.enum_value()? {
                    key.report_type = v;
                }
                Ok(())
            }),
            "days_since_onset_of_symptoms" | "daysSinceOnsetOfSymptoms" => p.one_or_list(|p| {
                if let Some(v) = p.int_value("days_since_onset_of_symptoms", IntType::I32)? {
                    key.days_since_onset_of_symptoms = v as i32;
                }
                Ok(())
            }),
            n if field_number(n).is_some() => Err(JsonError::FieldNumberName {
                position: pos,
                name: shorten(n),
            }),
            _ => p.skip_value(),
        })?;
        Ok(key)
    }

    /// Consumes `null` if it is the current token.
    fn take_null(&mut self) -> Result<bool, JsonError> {
        if self.cur.kind == Kind::Ident && self.cur.text == "null" {
            self.advance()?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// A string value (the reference's `consumeString`): quoted, or an unquoted number taken
    /// verbatim. `None` for `null`.
    fn string_value(&mut self) -> Result<Option<String>, JsonError> {
        if self.take_null()? {
            return Ok(None);
        }
        self.string_token().map(Some)
    }

    fn string_token(&mut self) -> Result<String, JsonError> {
        let t = self.cur;
        let s = match t.kind {
            Kind::Str(_) => unescape(&t.text[1..t.text.len() - 1], t.pos)?,
            Kind::Ident | Kind::Number if is_java_double(t.text) => t.text.to_owned(),
            _ => return Err(self.unexpected("string")),
        };
        self.advance()?;
        Ok(s)
    }

    /// A bytes value: a string holding standard Base64 (never a list, never `null`).
    fn bytes_value(&mut self, field: &'static str) -> Result<Vec<u8>, JsonError> {
        let pos = self.cur.pos;
        let text = self.string_token()?;
        java_base64_decode(text.as_bytes()).ok_or(JsonError::InvalidBase64 {
            position: pos,
            field,
        })
    }

    /// An integer of the given type; `None` for `null`.
    fn int_value(&mut self, field: &'static str, ty: IntType) -> Result<Option<i64>, JsonError> {
        if self.take_null()? {
            return Ok(None);
        }
        let t = self.cur;
        let invalid = |reason: &'static str| JsonError::InvalidInteger {
            position: t.pos,
            field,
            text: shorten(t.text),
            reason,
        };
        let value = match t.kind {
            Kind::Number => parse_text_format_int(t.text),
            Kind::Str(b'"') => parse_quoted_int(&t.text[1..t.text.len() - 1]),
            _ => Err("not an integer"),
        }
        .map_err(invalid)?;
        let in_range = match ty {
            IntType::U32 => (0..=i128::from(u32::MAX)).contains(&value),
            IntType::I32 => (i128::from(i32::MIN)..=i128::from(i32::MAX)).contains(&value),
        };
        // Like the reference, an unquoted `-` is refused for unsigned fields even on `-0`.
        let negative_unsigned =
            matches!(ty, IntType::U32) && t.kind == Kind::Number && t.text.starts_with('-');
        if !in_range || negative_unsigned {
            return Err(invalid(match ty {
                IntType::U32 => "out of range for 32-bit unsigned integer",
                IntType::I32 => "out of range for 32-bit signed integer",
            }));
        }
        self.advance()?;
        // In range for i64 as checked above.
        Ok(Some(value as i64))
    }

    /// A report type: a number (any 32-bit value) or a known name; `None` for `null`.
    fn enum_value(&mut self) -> Result<Option<i32>, JsonError> {
        if self.cur.kind == Kind::Number {
            return Ok(self
                .int_value("reportType", IntType::I32)?
                .map(|v| v as i32));
        }
        if self.take_null()? {
            return Ok(None);
        }
        let (name, pos) = self.identifier("report type name or number")?;
        match ReportType::from_proto_name(name) {
            Some(rt) => Ok(Some(rt as i32)),
            None => Err(JsonError::UnknownEnumName {
                position: pos,
                name: shorten(name),
            }),
        }
    }

    /// Skips one value of any shape, iteratively, with a nesting limit.
    fn skip_value(&mut self) -> Result<(), JsonError> {
        // The closing brackets of the open objects and arrays.
        let mut open: Vec<u8> = Vec::new();
        'value: loop {
            // At a value.
            match self.cur.kind {
                Kind::Char if self.is_char(b'{') || self.is_char(b'[') => {
                    if open.len() >= MAX_NESTING_DEPTH {
                        return Err(JsonError::TooDeep {
                            position: self.cur.pos,
                            limit: MAX_NESTING_DEPTH,
                        });
                    }
                    let object = self.is_char(b'{');
                    open.push(if object { b'}' } else { b']' });
                    self.advance()?;
                    if object {
                        if self.is_char(b'}') {
                            self.advance()?;
                            open.pop();
                        } else {
                            self.name()?;
                            self.expect_char(b':', "\":\"")?;
                            continue 'value;
                        }
                    } else if self.is_char(b']') {
                        self.advance()?;
                        open.pop();
                    } else {
                        continue 'value;
                    }
                }
                Kind::Str(_) => {
                    unescape(&self.cur.text[1..self.cur.text.len() - 1], self.cur.pos)?;
                    self.advance()?;
                }
                Kind::Ident | Kind::Number => self.advance()?,
                _ => return Err(self.unexpected("value")),
            }
            // After a value: close what ends here, or move to the next element.
            loop {
                let Some(&close) = open.last() else {
                    return Ok(());
                };
                if self.is_char(close) {
                    self.advance()?;
                    open.pop();
                } else if self.is_char(b',') {
                    self.advance()?;
                    if self.is_char(close) {
                        // Trailing comma.
                        continue;
                    }
                    if close == b'}' {
                        self.name()?;
                        self.expect_char(b':', "\":\"")?;
                    }
                    continue 'value;
                } else {
                    return Err(self.unexpected(if close == b'}' {
                        "\",\" or \"}\""
                    } else {
                        "\",\" or \"]\""
                    }));
                }
            }
        }
    }
}

/// Unescapes the inside of a quoted string (the reference's `unescapeText`, plus `\/`).
fn unescape(inner: &str, pos: usize) -> Result<String, JsonError> {
    if !inner.contains('\\') {
        return Ok(inner.to_owned());
    }
    let bad = |reason| JsonError::InvalidString {
        position: pos,
        reason,
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = chars
            .next()
            .ok_or(bad("Invalid escape sequence: '\\' at end of string."))?;
        match e {
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            '\\' => out.push('\\'),
            '"' => out.push('"'),
            '\'' => out.push('\''),
            '/' => out.push('/'),
            'u' => {
                let unit = hex4(&mut chars).ok_or(bad("Invalid escape sequence: bad '\\u'"))?;
                let c = match unit {
                    0xD800..=0xDBFF => {
                        let rest = chars.as_str();
                        let low = rest
                            .strip_prefix("\\u")
                            .and_then(|r| hex4(&mut r.chars()))
                            .filter(|l| (0xDC00..=0xDFFF).contains(l))
                            .ok_or(bad("unpaired surrogate in '\\u' escape"))?;
                        // Skip the `\uXXXX` of the low surrogate (6 ASCII bytes).
                        chars = rest[6..].chars();
                        char::from_u32(
                            0x10000
                                + ((u32::from(unit) - 0xD800) << 10)
                                + (u32::from(low) - 0xDC00),
                        )
                    }
                    0xDC00..=0xDFFF => None,
                    u => char::from_u32(u32::from(u)),
                };
                out.push(c.ok_or(bad("unpaired surrogate in '\\u' escape"))?);
            }
            _ => return Err(bad("Invalid escape sequence")),
        }
    }
    Ok(out)
}

fn hex4(chars: &mut std::str::Chars<'_>) -> Option<u16> {
    let mut v = 0u16;
    for _ in 0..4 {
        v = v * 16 + chars.next()?.to_digit(16)? as u16;
    }
    Some(v)
}

/// A number token with protobuf text-format rules: optional sign, then `0x`/`0X` hex, a leading
/// `0` for octal, or decimal. The value is exact for up to 20 digits; larger is out of range.
fn parse_text_format_int(text: &str) -> Result<i128, &'static str> {
    let (negative, rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, digits) =
        if let Some(h) = rest.strip_prefix("0x").or_else(|| rest.strip_prefix("0X")) {
            (16, h)
        } else if rest.len() > 1 && rest.starts_with('0') {
            (8, &rest[1..])
        } else {
            (10, rest)
        };
    let value = parse_digits(digits, radix)?;
    Ok(if negative { -value } else { value })
}

/// A double-quoted integer: the reference reads it as decimal (`"42"`, `"-5"`), `""` as 0.
fn parse_quoted_int(inner: &str) -> Result<i128, &'static str> {
    if inner.is_empty() {
        return Ok(0);
    }
    let (negative, digits) = match inner.as_bytes().first() {
        Some(b'-') => (true, &inner[1..]),
        Some(b'+') => (false, &inner[1..]),
        _ => (false, inner),
    };
    let value = parse_digits(digits, 10)?;
    Ok(if negative { -value } else { value })
}

fn parse_digits(digits: &str, radix: u32) -> Result<i128, &'static str> {
    if digits.is_empty() {
        return Err("no digits");
    }
    let mut value: i128 = 0;
    for c in digits.chars() {
        let d = c.to_digit(radix).ok_or("invalid digit")?;
        // Saturate far above any 32-bit range; the caller's range check rejects it.
        value = (value * i128::from(radix) + i128::from(d)).min(1 << 64);
    }
    Ok(value)
}

/// Whether Java's `Double.parseDouble` accepts the token (the reference accepted such unquoted
/// tokens as string values).
fn is_java_double(text: &str) -> bool {
    let s = text.strip_prefix(['+', '-']).unwrap_or(text);
    if s == "NaN" || s == "Infinity" {
        return true;
    }
    let s = s.strip_suffix(['f', 'F', 'd', 'D']).unwrap_or(s);
    let b = s.as_bytes();
    let mut i = 0;
    let count = |i: &mut usize, ok: fn(&u8) -> bool| {
        let start = *i;
        while b.get(*i).is_some_and(ok) {
            *i += 1;
        }
        *i - start
    };
    let hex = s.starts_with("0x") || s.starts_with("0X");
    if hex {
        i = 2;
        let mut n = count(&mut i, u8::is_ascii_hexdigit);
        if b.get(i) == Some(&b'.') {
            i += 1;
            n += count(&mut i, u8::is_ascii_hexdigit);
        }
        if n == 0 || !matches!(b.get(i), Some(b'p' | b'P')) {
            return false;
        }
    } else {
        let mut n = count(&mut i, u8::is_ascii_digit);
        if b.get(i) == Some(&b'.') {
            i += 1;
            n += count(&mut i, u8::is_ascii_digit);
        }
        if n == 0 {
            return false;
        }
        if !matches!(b.get(i), Some(b'e' | b'E')) {
            return i == b.len();
        }
    }
    // Exponent.
    i += 1;
    if matches!(b.get(i), Some(b'+' | b'-')) {
        i += 1;
    }
    count(&mut i, u8::is_ascii_digit) > 0 && i == b.len()
}

/// Java's `Base64.getDecoder().decode`: standard alphabet, padding optional but correct when
/// present, nothing after the padding, unused trailing bits ignored.
fn java_base64_decode(src: &[u8]) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    }
    let mut out = Vec::with_capacity(src.len() / 4 * 3 + 2);
    let (mut bits, mut shift, mut i) = (0u32, 18i32, 0usize);
    while let Some(&c) = src.get(i) {
        i += 1;
        if let Some(v) = value(c) {
            bits |= v << shift;
            shift -= 6;
            if shift < 0 {
                out.extend_from_slice(&[(bits >> 16) as u8, (bits >> 8) as u8, bits as u8]);
                shift = 18;
                bits = 0;
            }
            continue;
        }
        if c != b'=' {
            return None;
        }
        // `=` right at a quantum start, or a single `=` after two characters, is wrong.
        if shift == 18 {
            return None;
        }
        if shift == 6 {
            if src.get(i) != Some(&b'=') {
                return None;
            }
            i += 1;
        }
        break;
    }
    match shift {
        6 => out.push((bits >> 16) as u8),
        0 => out.extend_from_slice(&[(bits >> 16) as u8, (bits >> 8) as u8]),
        12 => return None,
        _ => {}
    }
    (i == src.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_follows_java_rules() {
        let ok = |s: &str, v: &[u8]| {
            assert_eq!(java_base64_decode(s.as_bytes()).as_deref(), Some(v), "{s}")
        };
        let bad = |s: &str| assert_eq!(java_base64_decode(s.as_bytes()), None, "{s}");
        ok("", b"");
        ok("QQ==", b"A");
        ok("QQ", b"A");
        ok("QUI=", b"AB");
        ok("QUI", b"AB");
        ok("QUJD", b"ABC");
        ok("QR==", b"A"); // unused bits ignored, like Java
        bad("QQ=");
        bad("Q");
        bad("Q=");
        bad("=");
        bad("QUJD=");
        bad("QQ==QQ==");
        bad("QQ== ");
        bad(" QQ==");
        bad("QU JD");
        bad("_-8=");
        bad("invalidBase64");
    }

    #[test]
    fn java_double_tokens() {
        for t in [
            "1",
            "-1",
            "1.5",
            ".5",
            "1.",
            "1e5",
            "1E-5",
            "1d",
            "2F",
            "NaN",
            "-Infinity",
            "0x1p3",
            "0x.8P-1",
        ] {
            assert!(is_java_double(t), "{t}");
        }
        for t in [
            "", "-", ".", "e5", "1e", "1x", "0x1", "abc", "1..2", "DE", "1-2",
        ] {
            assert!(!is_java_double(t), "{t}");
        }
    }

    #[test]
    fn integers() {
        assert_eq!(parse_text_format_int("0x10"), Ok(16));
        assert_eq!(parse_text_format_int("-0x10"), Ok(-16));
        assert_eq!(parse_text_format_int("010"), Ok(8));
        assert_eq!(parse_text_format_int("0"), Ok(0));
        assert_eq!(parse_text_format_int("+7"), Ok(7));
        assert!(parse_text_format_int("09").is_err());
        assert!(parse_text_format_int("0x").is_err());
        assert!(parse_text_format_int("-").is_err());
        assert!(parse_text_format_int("1.0").is_err());
        assert!(parse_text_format_int("1e3").is_err());
        assert_eq!(parse_quoted_int("010"), Ok(10));
        assert_eq!(parse_quoted_int(""), Ok(0));
        assert!(parse_quoted_int("0x10").is_err());
        assert!(parse_text_format_int(&"9".repeat(100)).unwrap() > i128::from(u32::MAX));
    }
}
