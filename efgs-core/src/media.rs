//! Content-Type and Accept negotiation, with the outcomes of the reference (protocol.md §1.0).
//!
//! Everything here is pure string handling; the server maps each [`MediaTypeError`] kind to its
//! status in its one table. The kinds and the reference status they stand for:
//!
//! | kind | reference status | when |
//! |---|---|---|
//! | [`MediaTypeError::ContentTypeMissing`] | 415 (routing) | upload without `Content-Type` |
//! | [`MediaTypeError::UnsupportedContentType`] | 415 (routing) | upload type not protobuf/json, or unparsable |
//! | [`MediaTypeError::NotAcceptable`] | 406 (routing) | `Accept` matches nothing the route produces |
//! | [`MediaTypeError::ContentTypeVersionMissing`] | 400 | upload `Content-Type` without `version` |
//! | [`MediaTypeError::ContentTypeVersionInvalid`] | 400 | upload `version` not `major.minor` |
//! | [`MediaTypeError::ContentTypeVersionIncompatible`] | 406 | upload `version` other than 1.0 |
//! | [`MediaTypeError::AcceptVersionMissing`] | 415 | download `Accept` type without `version` |
//! | [`MediaTypeError::AcceptVersionInvalid`] | 415 | download `Accept` version not `major.minor` |
//! | [`MediaTypeError::AcceptVersionIncompatible`] | 415 | download `Accept` version other than 1.0 |
//!
//! [`MediaTypeError::is_routing`] tells which of them the reference raises while routing, i.e.
//! before authentication.
//!
//! Parsing is tolerant: type, subtype and parameter names are case-insensitive, spaces around
//! `;` and `=` are ignored, parameter values may be quoted, and an `Accept` header may list
//! several entries with q-values (entries with `q=0` are ignored; the others are tried in order
//! of decreasing q, ties in header order). Malformed `Accept` entries are skipped.
//!
//! Deliberate differences from the reference (decisions.md item 6 and leniency):
//! - On download a missing `Accept`, an empty one, `*/*` and `application/*` select
//!   protobuf 1.0 (the reference answers 415).
//! - With several `Accept` entries the first entry that succeeds wins; an entry with a bad or
//!   missing version does not stop the search. The error of the first matching-but-failing entry
//!   is returned only when no entry succeeds. For a single entry this equals the reference.
//! - Quoted parameter values (`version="1.0"`) are unquoted (Spring would compare the quotes).

use crate::model::FormatVersion;

/// `Content-Type` of protobuf responses (decisions.md item 6).
pub const PROTOBUF_V1: &str = "application/protobuf; version=1.0";
/// `Content-Type` of JSON responses (decisions.md item 6).
pub const JSON_V1: &str = "application/json; version=1.0";
/// The `Accept` header value answered by `OPTIONS /diagnosiskeys` (protocol.md §1.1).
pub const OPTIONS_ACCEPT: &str = "application/json; version=1.0, application/protobuf; version=1.0";

/// The reason text of a missing `version` parameter.
pub const VERSION_REQUIRED: &str = "Version parameter of Content-Type is required!";
/// The reason text of a version other than 1.0.
pub const VERSION_NOT_COMPATIBLE: &str = "Protocol version is not compatible!";
/// SemVer parse error: not exactly two dot-separated parts.
pub const SEMVER_PARTS: &str =
    "Version can just contain a major and minor version splitted by a dot!";
/// SemVer parse error: a part is not a 32-bit integer.
pub const SEMVER_NUMBER: &str = "Given version string has an invalid number format!";

/// The two body encodings of a `DiagnosisKeyBatch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BodyFormat {
    /// `application/protobuf; version=1.0`: the protobuf wire format.
    Protobuf,
    /// `application/json; version=1.0`: the reference's JSON format ([`crate::json`]).
    Json,
}

impl BodyFormat {
    /// The `Content-Type` to answer with for this format.
    pub fn content_type(self) -> &'static str {
        match self {
            BodyFormat::Protobuf => PROTOBUF_V1,
            BodyFormat::Json => JSON_V1,
        }
    }
}

/// A `Content-Type` or `Accept` header the route cannot use. Each variant is one status kind;
/// see the module documentation for the table.
///
/// Not `#[non_exhaustive]`: the server's status table matches its variants (ADR 0012).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaTypeError {
    /// The upload has no `Content-Type` header (reference: 415 at routing).
    #[error("Content-Type is missing")]
    ContentTypeMissing,
    /// The upload's `Content-Type` is neither `application/protobuf` nor `application/json`,
    /// or cannot be parsed (reference: 415 at routing).
    #[error("Content-Type '{content_type}' is not supported")]
    UnsupportedContentType {
        /// The header value as received.
        content_type: String,
    },
    /// The `Accept` header allows nothing the route produces (reference: 406 at routing).
    #[error("Could not find acceptable representation")]
    NotAcceptable {
        /// The header value as received.
        accept: String,
    },
    /// The upload's `Content-Type` has no `version` parameter (reference: 400).
    #[error("Version parameter of Content-Type is required!")]
    ContentTypeVersionMissing,
    /// The upload's `version` is not `major.minor` (reference: 400 with the SemVer message).
    #[error("{reason}")]
    ContentTypeVersionInvalid {
        /// The version parameter as received (unquoted).
        version: String,
        /// The reference's SemVer parse message ([`SEMVER_PARTS`] or [`SEMVER_NUMBER`]).
        reason: &'static str,
    },
    /// The upload's version is not 1.0 (reference: 406).
    #[error("Protocol version is not compatible!")]
    ContentTypeVersionIncompatible {
        /// The version parameter as received (unquoted).
        version: String,
    },
    /// The download `Accept` type matched but has no `version` (reference: 415).
    #[error("Version parameter of Content-Type is required!")]
    AcceptVersionMissing,
    /// The download `Accept` version is not `major.minor` (reference: 415 with the SemVer message).
    #[error("{reason}")]
    AcceptVersionInvalid {
        /// The version parameter as received (unquoted).
        version: String,
        /// The reference's SemVer parse message ([`SEMVER_PARTS`] or [`SEMVER_NUMBER`]).
        reason: &'static str,
    },
    /// The download `Accept` version is not 1.0 (reference: 415).
    #[error("Protocol version is not compatible!")]
    AcceptVersionIncompatible {
        /// The version parameter as received (unquoted).
        version: String,
    },
}

impl MediaTypeError {
    /// A stable machine code for this kind.
    pub fn code(&self) -> &'static str {
        match self {
            MediaTypeError::ContentTypeMissing => "content-type-missing",
            MediaTypeError::UnsupportedContentType { .. } => "unsupported-content-type",
            MediaTypeError::NotAcceptable { .. } => "not-acceptable",
            MediaTypeError::ContentTypeVersionMissing => "content-type-version-missing",
            MediaTypeError::ContentTypeVersionInvalid { .. } => "content-type-version-invalid",
            MediaTypeError::ContentTypeVersionIncompatible { .. } => {
                "content-type-version-incompatible"
            }
            MediaTypeError::AcceptVersionMissing => "accept-version-missing",
            MediaTypeError::AcceptVersionInvalid { .. } => "accept-version-invalid",
            MediaTypeError::AcceptVersionIncompatible { .. } => "accept-version-incompatible",
        }
    }

    /// True for the kinds the reference raises while routing, before authentication
    /// (missing or unsupported `Content-Type`, unacceptable `Accept`).
    pub fn is_routing(&self) -> bool {
        matches!(
            self,
            MediaTypeError::ContentTypeMissing
                | MediaTypeError::UnsupportedContentType { .. }
                | MediaTypeError::NotAcceptable { .. }
        )
    }
}

/// Negotiates an upload (`POST /diagnosiskeys/upload`): the body format and its version from
/// `Content-Type`, and that `Accept` (if any) allows the JSON the route answers with.
///
/// Order of checks as in the reference: `Content-Type` type (415), `Accept` (406), then the
/// `version` parameter (400 missing, 400 unparsable, 406 not 1.0). The reference authenticates
/// between the first two and the version check; [`route_upload`] does the first two alone.
pub fn negotiate_upload(
    content_type: Option<&str>,
    accept: Option<&str>,
) -> Result<(BodyFormat, FormatVersion), MediaTypeError> {
    let (format, media) = route_upload_inner(content_type, accept)?;
    let version = match media.param("version") {
        None => return Err(MediaTypeError::ContentTypeVersionMissing),
        Some(v) => v,
    };
    match check_version(version) {
        Ok(v) => Ok((format, v)),
        Err(VersionProblem::Invalid(reason)) => Err(MediaTypeError::ContentTypeVersionInvalid {
            version: version.to_owned(),
            reason,
        }),
        Err(VersionProblem::Incompatible) => Err(MediaTypeError::ContentTypeVersionIncompatible {
            version: version.to_owned(),
        }),
    }
}

/// The routing part of [`negotiate_upload`]: `Content-Type` type (415) and `Accept` (406),
/// without looking at the version. The reference runs these before authentication.
pub fn route_upload(
    content_type: Option<&str>,
    accept: Option<&str>,
) -> Result<BodyFormat, MediaTypeError> {
    route_upload_inner(content_type, accept).map(|(f, _)| f)
}

fn route_upload_inner(
    content_type: Option<&str>,
    accept: Option<&str>,
) -> Result<(BodyFormat, MediaType), MediaTypeError> {
    let raw = content_type.ok_or(MediaTypeError::ContentTypeMissing)?;
    let unsupported = || MediaTypeError::UnsupportedContentType {
        content_type: raw.to_owned(),
    };
    let media = MediaType::parse(raw).ok_or_else(unsupported)?;
    let format = match (media.type_.as_str(), media.subtype.as_str()) {
        ("application", "protobuf") => BodyFormat::Protobuf,
        ("application", "json") => BodyFormat::Json,
        _ => return Err(unsupported()),
    };
    accepts_json(accept)?;
    Ok((format, media))
}

/// Negotiates the body of a download (`GET /diagnosiskeys/download/{date}`) from `Accept`.
///
/// A missing or empty `Accept`, `*/*` and `application/*` give protobuf (decisions.md item 6).
/// `application/protobuf` or `application/json` need `version=1.0` (otherwise the 415 kinds
/// [`MediaTypeError::AcceptVersionMissing`], [`MediaTypeError::AcceptVersionInvalid`],
/// [`MediaTypeError::AcceptVersionIncompatible`]); any other type is
/// [`MediaTypeError::NotAcceptable`] (406 at routing).
pub fn negotiate_download(accept: Option<&str>) -> Result<BodyFormat, MediaTypeError> {
    let Some(raw) = accept else {
        return Ok(BodyFormat::Protobuf);
    };
    let Some(entries) = parse_accept(raw) else {
        return Ok(BodyFormat::Protobuf);
    };
    let mut first_error = None;
    for media in &entries {
        let format = match (media.type_.as_str(), media.subtype.as_str()) {
            ("*", "*") | ("application", "*") => return Ok(BodyFormat::Protobuf),
            ("application", "protobuf") => BodyFormat::Protobuf,
            ("application", "json") => BodyFormat::Json,
            _ => continue,
        };
        let outcome = match media.param("version") {
            None => Err(MediaTypeError::AcceptVersionMissing),
            Some(version) => match check_version(version) {
                Ok(_) => Ok(format),
                Err(VersionProblem::Invalid(reason)) => Err(MediaTypeError::AcceptVersionInvalid {
                    version: version.to_owned(),
                    reason,
                }),
                Err(VersionProblem::Incompatible) => {
                    Err(MediaTypeError::AcceptVersionIncompatible {
                        version: version.to_owned(),
                    })
                }
            },
        };
        match outcome {
            Ok(f) => return Ok(f),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(
        first_error.unwrap_or_else(|| MediaTypeError::NotAcceptable {
            accept: raw.to_owned(),
        }),
    )
}

/// Checks the `Accept` of a route that produces JSON only (audit, callback list, and the upload's
/// result map): a missing or empty header, `*/*`, `application/*` and `application/json` (with
/// any or no parameters) are fine; anything else is [`MediaTypeError::NotAcceptable`].
pub fn accepts_json(accept: Option<&str>) -> Result<(), MediaTypeError> {
    let Some(raw) = accept else {
        return Ok(());
    };
    let Some(entries) = parse_accept(raw) else {
        return Ok(());
    };
    let ok = entries.iter().any(|m| {
        matches!(
            (m.type_.as_str(), m.subtype.as_str()),
            ("*", "*") | ("application", "*") | ("application", "json")
        )
    });
    if ok {
        Ok(())
    } else {
        Err(MediaTypeError::NotAcceptable {
            accept: raw.to_owned(),
        })
    }
}

enum VersionProblem {
    Invalid(&'static str),
    Incompatible,
}

/// Parses `major.minor` like the reference's `SemVerUtils` (Java `split("\\.")`, which drops
/// trailing empty parts, then `Integer.parseInt` on each) and requires exactly 1.0.
fn check_version(version: &str) -> Result<FormatVersion, VersionProblem> {
    let mut parts: Vec<&str> = version.split('.').collect();
    if version.contains('.') {
        while parts.last() == Some(&"") {
            parts.pop();
        }
    }
    let [major, minor] = parts.as_slice() else {
        return Err(VersionProblem::Invalid(SEMVER_PARTS));
    };
    let major = java_parse_int(major).ok_or(VersionProblem::Invalid(SEMVER_NUMBER))?;
    let minor = java_parse_int(minor).ok_or(VersionProblem::Invalid(SEMVER_NUMBER))?;
    let supported = FormatVersion::V1_0;
    if i64::from(major) == i64::from(supported.major)
        && i64::from(minor) == i64::from(supported.minor)
    {
        Ok(supported)
    } else {
        Err(VersionProblem::Incompatible)
    }
}

/// `Integer.parseInt(s)` for ASCII input: optional sign, at least one digit, fits in i32.
fn java_parse_int(s: &str) -> Option<i32> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<i32>().ok()
}

/// A parsed media type or media range: lowercase type and subtype, parameters with lowercase
/// names and unquoted values, and the q-value.
#[derive(Debug, Clone)]
struct MediaType {
    type_: String,
    subtype: String,
    params: Vec<(String, String)>,
    q: f32,
}

impl MediaType {
    /// The last value of a parameter (Spring keeps the last one of duplicates).
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn parse(raw: &str) -> Option<MediaType> {
        let mut parts = split_outside_quotes(raw, b';').into_iter();
        let full = parts.next()?.trim();
        let (type_, subtype) = full.split_once('/')?;
        let (type_, subtype) = (type_.trim(), subtype.trim());
        if !is_token(type_) || !is_token(subtype) || (type_ == "*" && subtype != "*") {
            return None;
        }
        let mut params = Vec::new();
        let mut q = 1.0f32;
        for part in parts {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (name, value) = part.split_once('=')?;
            let name = name.trim().to_ascii_lowercase();
            if !is_token(&name) {
                return None;
            }
            let value = unquote(value.trim())?;
            if name == "q" {
                q = value
                    .parse::<f32>()
                    .ok()
                    .filter(|q| (0.0..=1.0).contains(q))?;
            }
            params.push((name, value));
        }
        Some(MediaType {
            type_: type_.to_ascii_lowercase(),
            subtype: subtype.to_ascii_lowercase(),
            params,
            q,
        })
    }
}

/// Parses an `Accept` header into its usable entries, best first. `None` when the header holds
/// no entries at all (empty or only separators), which counts as a missing header.
fn parse_accept(raw: &str) -> Option<Vec<MediaType>> {
    let items: Vec<&str> = split_outside_quotes(raw, b',')
        .into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if items.is_empty() {
        return None;
    }
    let mut entries: Vec<MediaType> = items
        .into_iter()
        .filter_map(MediaType::parse)
        .filter(|m| m.q > 0.0)
        .collect();
    // Stable: equal q keeps header order.
    entries.sort_by(|a, b| b.q.total_cmp(&a.q));
    Some(entries)
}

/// RFC 9110 `tchar`s (plus nothing else).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// A parameter value: a token (possibly empty) or a quoted string with `\` escapes.
fn unquote(value: &str) -> Option<String> {
    let Some(inner) = value.strip_prefix('"') else {
        return (value.is_empty() || is_token(value)).then(|| value.to_owned());
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return chars.as_str().is_empty().then_some(out),
            '\\' => out.push(chars.next()?),
            c => out.push(c),
        }
    }
    None
}

/// Splits on `sep` where it is not inside a double-quoted string.
fn split_outside_quotes(s: &str, sep: u8) -> Vec<&str> {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let (mut start, mut in_quotes, mut escaped) = (0usize, false, false);
    for (i, &b) in bytes.iter().enumerate() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_quotes = false;
            }
        } else if b == b'"' {
            in_quotes = true;
        } else if b == sep {
            // `sep` is ASCII, so `i` is a char boundary.
            out.push(&s[start..i]);
            start = i + 1;
        }
    }
    out.push(&s[start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_parsing_follows_semverutils() {
        // protocol.md §12 item 95: "1.0" parses, "1.2.3.4" and "nonSem.VerString" do not.
        assert!(check_version("1.0").is_ok());
        assert!(check_version("01.00").is_ok());
        assert!(check_version("+1.0").is_ok());
        assert!(
            check_version("1.0.").is_ok(),
            "Java split drops trailing empty parts"
        );
        assert!(matches!(
            check_version("1.2.3.4"),
            Err(VersionProblem::Invalid(SEMVER_PARTS))
        ));
        assert!(matches!(
            check_version("nonSem.VerString"),
            Err(VersionProblem::Invalid(SEMVER_NUMBER))
        ));
        assert!(matches!(
            check_version("1"),
            Err(VersionProblem::Invalid(SEMVER_PARTS))
        ));
        assert!(matches!(
            check_version(""),
            Err(VersionProblem::Invalid(SEMVER_PARTS))
        ));
        assert!(matches!(
            check_version("."),
            Err(VersionProblem::Invalid(SEMVER_PARTS))
        ));
        assert!(matches!(
            check_version(".0"),
            Err(VersionProblem::Invalid(SEMVER_NUMBER))
        ));
        assert!(matches!(
            check_version("1.99999999999"),
            Err(VersionProblem::Invalid(SEMVER_NUMBER))
        ));
        assert!(matches!(
            check_version("1.1"),
            Err(VersionProblem::Incompatible)
        ));
        assert!(matches!(
            check_version("0.1"),
            Err(VersionProblem::Incompatible)
        ));
        assert!(matches!(
            check_version("-1.0"),
            Err(VersionProblem::Incompatible)
        ));
        assert!(matches!(
            check_version("65537.0"),
            Err(VersionProblem::Incompatible)
        ));
    }

    #[test]
    fn media_type_parsing() {
        let m = MediaType::parse(" Application/JSON ; Version = \"1.0\" ;charset=utf-8").unwrap();
        assert_eq!(
            (m.type_.as_str(), m.subtype.as_str()),
            ("application", "json")
        );
        assert_eq!(m.param("version"), Some("1.0"));
        assert_eq!(m.param("charset"), Some("utf-8"));
        assert!(MediaType::parse("application").is_none());
        assert!(MediaType::parse("*/json").is_none());
        assert!(MediaType::parse("application/json; version").is_none());
        assert!(MediaType::parse("application/json; q=2").is_none());
        assert!(MediaType::parse("application/json; v=\"unterminated").is_none());
        assert_eq!(
            split_outside_quotes("a;b=\"x;y\";c", b';'),
            vec!["a", "b=\"x;y\"", "c"]
        );
    }
}
