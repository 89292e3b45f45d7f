//! PEM helpers.

use super::*;

/// One PEM block: its label and decoded body.
pub(super) struct PemBlock {
    pub(super) label: String,
    pub(super) der: Vec<u8>,
}

/// Iterates over the PEM blocks of `text`, leniently: any line ending, whitespace inside the
/// Base64 body, text between blocks. Blocks whose body is not Base64 yield `None` entries.
pub(super) fn pem_blocks(text: &str) -> impl Iterator<Item = Option<PemBlock>> + '_ {
    const BEGIN: &str = "-----BEGIN ";
    const DASHES: &str = "-----";
    let mut rest = text;
    std::iter::from_fn(move || {
        let start = rest.find(BEGIN)?;
        let after_begin = &rest[start + BEGIN.len()..];
        let Some(label_end) = after_begin.find(DASHES) else {
            rest = "";
            return None;
        };
        let label = &after_begin[..label_end];
        let body_and_more = &after_begin[label_end + DASHES.len()..];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = body_and_more.find(&end_marker) else {
            rest = "";
            return Some(None);
        };
        let body = &body_and_more[..end];
        rest = &body_and_more[end + end_marker.len()..];
        if label.contains('\n') || body.contains(':') {
            // A broken BEGIN line, or RFC 1421 headers (encrypted legacy keys).
            return Some(None);
        }
        let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        Some(B64.decode(compact.as_bytes()).ok().map(|der| PemBlock {
            label: label.to_owned(),
            der,
        }))
    })
}

/// The DER of the first `CERTIFICATE` block of a PEM text.
pub(crate) fn first_certificate_der(text: &str) -> Result<Vec<u8>, TrustError> {
    for block in pem_blocks(text).flatten() {
        if block.label == "CERTIFICATE" {
            return Ok(block.der);
        }
    }
    Err(TrustError::NoPemCertificate)
}

/// Every `CERTIFICATE` block of a PEM text, in order.
pub(super) fn all_certificate_ders(text: &str) -> Result<Vec<Vec<u8>>, TrustError> {
    let mut out = Vec::new();
    for block in pem_blocks(text) {
        match block {
            Some(b) if b.label == "CERTIFICATE" => out.push(b.der),
            Some(_) => {}
            None => return Err(TrustError::NoPemCertificate),
        }
    }
    if out.is_empty() {
        return Err(TrustError::NoPemCertificate);
    }
    Ok(out)
}

/// Renders a DER certificate as PEM the way BouncyCastle and OpenSSL do: 64-column Base64,
/// LF line endings, a trailing newline (clients.md §5: Italy compares these strings).
pub fn canonical_pem(der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 60);
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // Base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// True when a thumbprint starts with a zero byte (`00…`): clients that recompute thumbprints
/// the reference way (big integer to hex) produce 62 characters for it and will not match
/// (decisions item 1). The onboarding CLI should warn.
pub fn thumbprint_starts_with_zero_byte(thumbprint: &Thumbprint) -> bool {
    thumbprint.as_str().starts_with("00")
}

pub(super) fn time_to_offset(t: &x509_cert::time::Time) -> time::OffsetDateTime {
    let secs = t.to_unix_duration().as_secs();
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .unwrap_or(time::PrimitiveDateTime::MAX.assume_utc())
}
