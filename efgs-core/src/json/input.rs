use super::*;
use crate::key_fields::ListInterner;
use crate::model::KeyData;

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
pub(super) enum Kind {
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
pub(super) struct Token<'a> {
    kind: Kind,
    text: &'a str,
    pos: usize,
}

pub(super) struct Parser<'a> {
    src: &'a str,
    /// Where scanning for the token after `cur` starts.
    next: usize,
    cur: Token<'a>,
    /// Visited-country lists shared between keys (ADR 0033).
    lists: ListInterner,
}

/// Which integer type a field has.
#[derive(Clone, Copy)]
pub(super) enum IntType {
    U32,
    I32,
}

pub(super) const MAX_SHOWN: usize = 40;

pub(super) fn shorten(s: &str) -> String {
    match s.char_indices().nth(MAX_SHOWN) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// The field number named by an all-digit name, if it could name a field (1..=8).
pub(super) fn field_number(name: &str) -> Option<u32> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let trimmed = name.trim_start_matches('0');
    if trimmed.len() > 2 {
        return None;
    }
    trimmed.parse::<u32>().ok().filter(|n| (1..=8).contains(n))
}

pub(super) fn is_name_char(b: u8) -> bool {
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
            lists: ListInterner::new(),
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
        let unterminated = || JsonError::InvalidString {
            position: start,
            reason: "String missing ending quote",
        };
        let mut i = start + 1;
        loop {
            match b.get(i) {
                None | Some(b'\n') => return Err(unterminated()),
                Some(&c) if c == quote => return Ok(i + 1),
                Some(b'\\') => match b.get(i + 1) {
                    None | Some(b'\n') => return Err(unterminated()),
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
            // Only the kind of a word, number or string, never its text: a misplaced value
            // can be key data, and this message reaches the log and the answer.
            let found = match self.cur.kind {
                Kind::Char => shorten(self.cur.text),
                Kind::Ident => "a name".to_owned(),
                Kind::Number => "a number".to_owned(),
                Kind::Str(_) => "a string".to_owned(),
                Kind::Eof => "the end".to_owned(),
            };
            JsonError::Unexpected {
                position: self.cur.pos,
                expected,
                found,
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
        self.lists.start();
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
            "visitedCountries" if p.two_letter_list() => Ok(()),
            "visitedCountries" => p.one_or_list(|p| {
                let position = p.cur.pos;
                if let Some(s) = p.country_value()? {
                    // Stop as soon as the list is longer than validation allows.
                    if p.lists.len() >= crate::validate::MAX_VISITED_COUNTRIES {
                        return Err(JsonError::TooManyVisitedCountries { position });
                    }
                    p.lists.push(s);
                }
                Ok(())
            }),
            "origin" => p.one_or_list(|p| {
                if let Some(s) = p.country_value()? {
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
        key.visited_countries = self.lists.finish();
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

    /// A country: a string value (the reference's `consumeString`: quoted, or an unquoted
    /// number taken verbatim), `None` for `null`. An unescaped quoted string of at most 8 ASCII
    /// bytes is taken without allocating.
    /// Reads the usual form of `visitedCountries`, a list of two-letter strings such as
    /// `["AT", "BE"]` (printable ASCII, no escapes, plain whitespace), straight from the bytes
    /// into [`Self::lists`], and returns `true`. On anything else, or a list longer than
    /// validation allows, it consumes nothing and returns `false`: the general path then reads
    /// the value, with the same result for what this one accepts.
    fn two_letter_list(&mut self) -> bool {
        if !self.is_char(b'[') {
            return false;
        }
        let b = self.src.as_bytes();
        let plain = |c: u8| (0x20..0x7f).contains(&c) && c != b'"' && c != b'\\';
        let space = |i: &mut usize| {
            while matches!(b.get(*i), Some(b' ' | b'\n' | b'\r' | b'\t')) {
                *i += 1;
            }
        };
        let mark = self.lists.len();
        let mut i = self.next;
        space(&mut i);
        if b.get(i) == Some(&b']') {
            i += 1;
        } else {
            loop {
                match b.get(i..i + 4) {
                    Some(&[b'"', x, y, b'"']) if plain(x) && plain(y) => {
                        if self.lists.len() >= crate::validate::MAX_VISITED_COUNTRIES {
                            self.lists.truncate(mark);
                            return false;
                        }
                        self.lists.push(CountryCode::from_ascii_pair(x, y));
                        i += 4;
                    }
                    _ => {
                        self.lists.truncate(mark);
                        return false;
                    }
                }
                space(&mut i);
                match b.get(i) {
                    Some(b',') => {
                        i += 1;
                        space(&mut i);
                    }
                    Some(b']') => {
                        i += 1;
                        break;
                    }
                    _ => {
                        self.lists.truncate(mark);
                        return false;
                    }
                }
            }
        }
        let saved = (self.next, self.cur);
        self.next = i;
        if self.advance().is_err() {
            // The error is the general path's to report.
            (self.next, self.cur) = saved;
            self.lists.truncate(mark);
            return false;
        }
        true
    }

    fn country_value(&mut self) -> Result<Option<CountryCode>, JsonError> {
        if self.take_null()? {
            return Ok(None);
        }
        let t = self.cur;
        if let Kind::Str(_) = t.kind {
            let inner = &t.text[1..t.text.len() - 1];
            if let Some(code) = CountryCode::from_ascii(inner.as_bytes())
                && !inner.contains('\\')
            {
                self.advance()?;
                return Ok(Some(code));
            }
        }
        self.string_token()
            .map(|s| Some(CountryCode::from_text(&s)))
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
    fn bytes_value(&mut self, field: &'static str) -> Result<KeyData, JsonError> {
        let pos = self.cur.pos;
        let t = self.cur;
        // The usual case, a quoted string without escapes, is decoded from the body in place.
        let text: std::borrow::Cow<'a, str> = match t.kind {
            Kind::Str(_) if !t.text[1..t.text.len() - 1].contains('\\') => {
                self.advance()?;
                std::borrow::Cow::Borrowed(&t.text[1..t.text.len() - 1])
            }
            _ => std::borrow::Cow::Owned(self.string_token()?),
        };
        java_base64_key(text.as_bytes()).ok_or(JsonError::InvalidBase64 {
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
pub(super) fn unescape(inner: &str, pos: usize) -> Result<String, JsonError> {
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

pub(super) fn hex4(chars: &mut std::str::Chars<'_>) -> Option<u16> {
    let mut v = 0u16;
    for _ in 0..4 {
        v = v * 16 + chars.next()?.to_digit(16)? as u16;
    }
    Some(v)
}

/// A number token with protobuf text-format rules: optional sign, then `0x`/`0X` hex, a leading
/// `0` for octal, or decimal. The value is exact for up to 20 digits; larger is out of range.
pub(super) fn parse_text_format_int(text: &str) -> Result<i128, &'static str> {
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
pub(super) fn parse_quoted_int(inner: &str) -> Result<i128, &'static str> {
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

pub(super) fn parse_digits(digits: &str, radix: u32) -> Result<i128, &'static str> {
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
pub(super) fn is_java_double(text: &str) -> bool {
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
pub(super) fn java_base64_decode(src: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(src.len() / 4 * 3 + 2);
    java_base64_decode_with(src, |b| out.extend_from_slice(b))?;
    Some(out)
}

/// [`java_base64_decode`] of a `keyData` value: inline (no allocation) when it has at most 24
/// characters, which decode to at most 18 bytes (a 16-byte key has 24).
fn java_base64_key(src: &[u8]) -> Option<KeyData> {
    if src.len() > 24 {
        return java_base64_decode(src).map(KeyData::from);
    }
    let (mut buf, mut n, mut fits) = ([0u8; 18], 0usize, true);
    java_base64_decode_with(src, |b| match buf.get_mut(n..n + b.len()) {
        Some(dst) => {
            dst.copy_from_slice(b);
            n += b.len();
        }
        None => fits = false,
    })?;
    fits.then(|| KeyData::from_slice(&buf[..n]))
}

/// The decoding of [`java_base64_decode`], handing the bytes to `out` as they are decoded.
fn java_base64_decode_with(src: &[u8], mut out: impl FnMut(&[u8])) -> Option<()> {
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
    let (mut bits, mut shift, mut i) = (0u32, 18i32, 0usize);
    while let Some(&c) = src.get(i) {
        i += 1;
        if let Some(v) = value(c) {
            bits |= v << shift;
            shift -= 6;
            if shift < 0 {
                out(&[(bits >> 16) as u8, (bits >> 8) as u8, bits as u8]);
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
        6 => out(&[(bits >> 16) as u8]),
        0 => out(&[(bits >> 16) as u8, (bits >> 8) as u8]),
        12 => return None,
        _ => {}
    }
    (i == src.len()).then_some(())
}
