//! Secret values and secret files.

use super::*;

// ---------------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------------

/// A secret string. `Debug` never shows it.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub(crate) struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub(crate) fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value. Never log it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// A database connection string. `Debug` and [`DatabaseUrl::redacted`] mask its password.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub(crate) struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Wraps a connection string.
    pub(crate) fn new(value: impl Into<String>) -> Self {
        DatabaseUrl(value.into())
    }

    /// The full connection string, password included. Never log it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// The connection string with any password replaced by `[redacted]`: the userinfo password
    /// of a URL, every `password=` query parameter of a URL, and every `password` keyword of the
    /// key/value form (`password = 'quoted \' value'` included, as libpq parses it).
    pub(crate) fn redacted(&self) -> String {
        let s = &self.0;
        let is_url = ["postgres://", "postgresql://"]
            .iter()
            .any(|p| s.len() >= p.len() && s[..p.len()].eq_ignore_ascii_case(p));
        match s.find("://") {
            Some(scheme_end) if is_url => redact_url(s, scheme_end + 3),
            _ => redact_key_value(s),
        }
    }
}

/// A URL: the userinfo password, then each `password=` query parameter up to `&` or `#`.
fn redact_url(s: &str, rest_start: usize) -> String {
    let mut s = s.to_owned();
    let authority_end = s[rest_start..]
        .find(['/', '?', '#'])
        .map_or(s.len(), |i| rest_start + i);
    if let Some(at) = s[rest_start..authority_end].rfind('@') {
        let at = rest_start + at;
        if let Some(colon) = s[rest_start..at].find(':') {
            s.replace_range(rest_start + colon + 1..at, "[redacted]");
        }
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s.as_str();
    while let Some(pos) = find_ascii_ci(rest, "password=") {
        let value_start = pos + "password=".len();
        out.push_str(&rest[..value_start]);
        out.push_str("[redacted]");
        let tail = &rest[value_start..];
        rest = &tail[tail.find(['&', '#']).unwrap_or(tail.len())..];
    }
    out.push_str(rest);
    out
}

/// The key/value form: `keyword = value` pairs separated by white space, where a value is
/// either unquoted (up to white space) or single-quoted with `\` escapes.
fn redact_key_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = find_ascii_ci(rest, "password") {
        let at_word_start = pos == 0 || rest.as_bytes()[pos - 1].is_ascii_whitespace();
        let after_key = &rest[pos + "password".len()..];
        let after_eq = after_key.trim_start().strip_prefix('=');
        match after_eq {
            Some(after_eq) if at_word_start => {
                let value = after_eq.trim_start();
                out.push_str(&rest[..pos]);
                out.push_str("password=[redacted]");
                rest = &value[value_len(value)..];
            }
            _ => {
                out.push_str(&rest[..pos + "password".len()]);
                rest = after_key;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Length in bytes of the value at the start of `v`: a single-quoted string with `\` escapes
/// (an unterminated one runs to the end), or everything up to white space.
fn value_len(v: &str) -> usize {
    if let Some(inner) = v.strip_prefix('\'') {
        let mut escaped = false;
        for (i, c) in inner.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '\'' => return i + 2,
                _ => {}
            }
        }
        v.len()
    } else {
        v.find(|c: char| c.is_ascii_whitespace()).unwrap_or(v.len())
    }
}

fn find_ascii_ci(haystack: &str, needle: &str) -> Option<usize> {
    haystack
        .as_bytes()
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({:?})", self.redacted())
    }
}

pub(crate) fn decode_key(s: &str) -> Result<[u8; ENCRYPTION_KEY_LEN], String> {
    let s = s.trim();
    // Hex when it looks like hex (a 32-byte key in Base64 is 43 characters or has padding, so
    // it never does); Base64 otherwise.
    let bytes = if s.len().is_multiple_of(2) && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(s).map_err(|e| e.to_string())?
    } else {
        use base64::engine::general_purpose::{
            STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
        };
        [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|e| e.decode(s).ok())
            .ok_or_else(|| {
                "not 64 hex characters and not Base64; generate one with \
                 `openssl rand -hex 32`"
                    .to_owned()
            })?
    };
    <[u8; ENCRYPTION_KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
        format!(
            "decodes to {} bytes; an encryption key must be exactly {ENCRYPTION_KEY_LEN} bytes \
             (64 hex characters)",
            bytes.len()
        )
    })
}

pub(super) fn strip_line_break(s: &str) -> &str {
    s.strip_suffix("\r\n")
        .or_else(|| s.strip_suffix('\n'))
        .unwrap_or(s)
}

/// Refuses a secret file that other users can access (Unix permission bits `& 0o007`).
pub(crate) fn check_secret_permissions(setting: &str, path: &Path) -> Result<(), ConfigError> {
    let meta = std::fs::metadata(path).map_err(|source| ConfigError::ReadSettingFile {
        setting: setting.to_owned(),
        path: path.to_owned(),
        source,
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o007 != 0 {
            return Err(ConfigError::SecretPermissions {
                setting: setting.to_owned(),
                path: path.to_owned(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    Ok(())
}

pub(super) fn read_secret_bytes(setting: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    check_secret_permissions(setting, path)?;
    let bytes = std::fs::read(path).map_err(|source| ConfigError::ReadSettingFile {
        setting: setting.to_owned(),
        path: path.to_owned(),
        source,
    })?;
    if bytes.is_empty() {
        return Err(invalid(setting, format!("{} is empty", path.display())));
    }
    Ok(bytes)
}

pub(super) fn read_secret_text(setting: &str, path: &Path) -> Result<String, ConfigError> {
    let bytes = read_secret_bytes(setting, path)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| invalid(setting, format!("{} is not UTF-8 text", path.display())))?;
    let text = strip_line_break(&text);
    if text.is_empty() {
        return Err(invalid(setting, format!("{} is empty", path.display())));
    }
    Ok(text.to_owned())
}
