//! [`CountryCode`]: a visited country or origin, held inline (no heap, `Copy`).
//!
//! decisions.md item 5 allows each visited country up to 8 ASCII bytes, not range-checked, and
//! passes it through byte for byte (ADR 0031). So a code is 0 to 8 ASCII bytes kept inline.
//!
//! Decoders never refuse a string here: a string that does not fit (longer than 8 characters, or
//! not ASCII) becomes an *invalid* code, which [`crate::validate::validate_batch`] refuses in its
//! step 3, after the reference's rules, exactly as it refused the string before. An invalid code
//! keeps the Java US-ASCII form of the string's first 8 characters (each non-ASCII character as
//! one `?`) and whether it was longer or not ASCII; encoding writes a string that decodes to the
//! same code again (`?` from a non-ASCII character written as U+FFFD), so codec round trips hold.
//! Canonical bytes of a non-ASCII string of at most 8 characters are still exactly the
//! reference's (they only ever see the US-ASCII form); a longer string is refused before any
//! canonical bytes are computed by the gateway.

use std::borrow::Cow;
use std::fmt;

/// Longest country code in bytes (decisions item 5).
pub const MAX_COUNTRY_LEN: usize = 8;

/// Flag: the string had a character outside ASCII (kept as `?`).
const NON_ASCII: u8 = 0x40;
/// Flag: the string had more than [`MAX_COUNTRY_LEN`] characters (the first 8 are kept).
const TOO_LONG: u8 = 0x80;
/// Mask of the length in `meta`.
const LEN_MASK: u8 = 0x0f;

/// A country as it appears in `visitedCountries` and `origin`: 0 to 8 ASCII bytes inline.
///
/// `Copy`, 9 bytes, no heap. Usually two capital letters (`DE`), but not range-checked: any
/// ASCII string of at most 8 bytes (empty, lower case, `A,B`, NUL) is a valid code and passes
/// through unchanged. See the module documentation for strings that do not fit.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct CountryCode {
    /// Length (low 4 bits) and the flags [`NON_ASCII`], [`TOO_LONG`].
    meta: u8,
    /// The bytes; those past the length are 0.
    bytes: [u8; MAX_COUNTRY_LEN],
}

impl CountryCode {
    /// The empty code (proto3 default).
    pub const EMPTY: CountryCode = CountryCode {
        meta: 0,
        bytes: [0; MAX_COUNTRY_LEN],
    };

    /// A valid code from at most 8 ASCII bytes; `None` otherwise.
    #[inline]
    pub const fn from_ascii(bytes: &[u8]) -> Option<CountryCode> {
        if bytes.len() > MAX_COUNTRY_LEN {
            return None;
        }
        let mut out = [0u8; MAX_COUNTRY_LEN];
        let mut i = 0;
        while i < bytes.len() {
            if !bytes[i].is_ascii() {
                return None;
            }
            out[i] = bytes[i];
            i += 1;
        }
        Some(CountryCode {
            meta: bytes.len() as u8,
            bytes: out,
        })
    }

    /// The valid code of two ASCII bytes (the caller has checked that both are ASCII; other
    /// bytes are masked to ASCII).
    #[inline]
    pub(crate) const fn from_ascii_pair(a: u8, b: u8) -> CountryCode {
        let mut bytes = [0u8; MAX_COUNTRY_LEN];
        bytes[0] = a & 0x7f;
        bytes[1] = b & 0x7f;
        CountryCode { meta: 2, bytes }
    }

    /// The code of a decoded string: valid if it is at most 8 ASCII bytes, otherwise an invalid
    /// code (see the module documentation). Never fails.
    #[inline]
    pub fn from_text(text: &str) -> CountryCode {
        match CountryCode::from_ascii(text.as_bytes()) {
            Some(code) => code,
            None => CountryCode::from_odd_text(text),
        }
    }

    /// The code of a decoded string's UTF-8 bytes; `None` if they are not UTF-8.
    #[inline]
    pub fn from_utf8(bytes: &[u8]) -> Option<CountryCode> {
        match CountryCode::from_ascii(bytes) {
            Some(code) => Some(code),
            None => std::str::from_utf8(bytes)
                .ok()
                .map(CountryCode::from_odd_text),
        }
    }

    #[cold]
    fn from_odd_text(text: &str) -> CountryCode {
        let mut out = CountryCode::EMPTY;
        let mut n = 0usize;
        for ch in text.chars() {
            let b = if ch.is_ascii() {
                ch as u8
            } else {
                out.meta |= NON_ASCII;
                b'?'
            };
            if n < MAX_COUNTRY_LEN {
                out.bytes[n] = b;
                n += 1;
            } else {
                out.meta |= TOO_LONG;
            }
        }
        out.meta |= n as u8;
        out
    }

    /// Whether the code is at most 8 ASCII bytes (decisions item 5).
    #[inline]
    pub const fn is_valid(&self) -> bool {
        self.meta & (NON_ASCII | TOO_LONG) == 0
    }

    /// Whether the decoded string was ASCII (any length).
    #[inline]
    pub const fn is_ascii(&self) -> bool {
        self.meta & NON_ASCII == 0
    }

    /// Whether the decoded string had more than 8 characters.
    #[inline]
    pub const fn is_too_long(&self) -> bool {
        self.meta & TOO_LONG != 0
    }

    /// Number of bytes held (at most 8).
    #[inline]
    pub const fn len(&self) -> usize {
        (self.meta & LEN_MASK) as usize
    }

    /// Whether the code is empty.
    #[inline]
    pub const fn is_empty(&self) -> bool {
        self.meta & LEN_MASK == 0
    }

    /// The bytes: the code itself if valid; for an invalid code its first 8 characters in
    /// US-ASCII form.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len()]
    }

    /// [`as_bytes`](Self::as_bytes) as text (always ASCII).
    #[inline]
    pub fn as_str(&self) -> &str {
        // Only ASCII bytes are ever stored.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// The string to encode: the code itself if valid; for an invalid code a string that
    /// decodes to the same code.
    #[inline]
    pub fn text(&self) -> Cow<'_, str> {
        if self.is_valid() {
            return Cow::Borrowed(self.as_str());
        }
        let mut s = String::with_capacity(4 * MAX_COUNTRY_LEN + 4);
        let non_ascii = !self.is_ascii();
        for &b in self.as_bytes() {
            if non_ascii && b == b'?' {
                s.push('\u{FFFD}');
            } else {
                s.push(char::from(b));
            }
        }
        if self.is_too_long() {
            s.push(if non_ascii { '\u{FFFD}' } else { '?' });
        }
        Cow::Owned(s)
    }
}

impl fmt::Debug for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.text().as_ref(), f)
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

impl From<&str> for CountryCode {
    fn from(text: &str) -> Self {
        CountryCode::from_text(text)
    }
}

impl From<&String> for CountryCode {
    fn from(text: &String) -> Self {
        CountryCode::from_text(text)
    }
}

impl From<String> for CountryCode {
    fn from(text: String) -> Self {
        CountryCode::from_text(&text)
    }
}

/// `code == s` is `code == CountryCode::from_text(s)`: for a valid code, exactly its string;
/// an invalid code equals every string with the same code (use [`CountryCode::is_valid`] where
/// that matters, as the origin checks do).
impl PartialEq<str> for CountryCode {
    fn eq(&self, other: &str) -> bool {
        *self == CountryCode::from_text(other)
    }
}

impl PartialEq<&str> for CountryCode {
    fn eq(&self, other: &&str) -> bool {
        *self == **other
    }
}

impl PartialEq<String> for CountryCode {
    fn eq(&self, other: &String) -> bool {
        *self == **other
    }
}

impl PartialEq<CountryCode> for &str {
    fn eq(&self, other: &CountryCode) -> bool {
        *other == **self
    }
}

impl PartialEq<CountryCode> for str {
    fn eq(&self, other: &CountryCode) -> bool {
        *other == *self
    }
}

impl PartialEq<CountryCode> for String {
    fn eq(&self, other: &CountryCode) -> bool {
        *other == **self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_codes_are_their_bytes() {
        for s in ["", "DE", "ABCDEFGH", "A,B", "x\0y", "de"] {
            let c = CountryCode::from_text(s);
            assert!(c.is_valid(), "{s:?}");
            assert_eq!(c.as_str(), s);
            assert_eq!(c, s);
            assert_eq!(c.text(), s);
            assert_eq!(CountryCode::from_utf8(s.as_bytes()), Some(c));
        }
        assert_eq!(std::mem::size_of::<CountryCode>(), 9);
    }

    #[test]
    fn odd_strings_are_invalid_and_round_trip() {
        for (s, ascii, long, bytes) in [
            ("ABCDEFGHI", true, true, "ABCDEFGH"),
            ("DÉ", false, false, "D?"),
            ("😀", false, false, "?"),
            ("a?b€", false, false, "a?b?"),
            ("ÆØÅÆØÅÆØÅ", false, true, "????????"),
            ("ABCDEFGH?", true, true, "ABCDEFGH"),
        ] {
            let c = CountryCode::from_text(s);
            assert!(!c.is_valid(), "{s}");
            assert_eq!(c.is_ascii(), ascii, "{s}");
            assert_eq!(c.is_too_long(), long, "{s}");
            assert_eq!(c.as_str(), bytes, "{s}");
            assert_eq!(c, s);
            assert_ne!(c, CountryCode::from_ascii(c.as_bytes()).unwrap());
            assert_eq!(CountryCode::from_text(&c.text()), c, "{s}");
        }
        assert_eq!(CountryCode::from_utf8(&[0xff]), None);
    }
}
