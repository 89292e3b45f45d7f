//! Certificate helpers shared by the CMS verifier, the trust list and client identity.

use sha2::{Digest, Sha256};

/// A certificate thumbprint: SHA-256 over the DER, as 64 lowercase hex characters
/// (decisions item 1; the reference dropped leading zeros, we never do).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Thumbprint(String);

impl Thumbprint {
    /// The thumbprint of a DER certificate, hashed as received.
    pub fn of_der(der: &[u8]) -> Self {
        Thumbprint(hex::encode(Sha256::digest(der)))
    }

    /// From the 32 raw digest bytes.
    pub fn from_digest(digest: &[u8; 32]) -> Self {
        Thumbprint(hex::encode(digest))
    }

    /// Parses 64 hex characters in either case; the result is lowercase.
    pub fn parse_hex(s: &str) -> Option<Self> {
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Some(Thumbprint(s.to_ascii_lowercase()))
        } else {
            None
        }
    }

    /// The 64 lowercase hex characters.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Thumbprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for Thumbprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Thumbprint({})", self.0)
    }
}

/// The values of every `C` (countryName, 2.5.4.6) attribute in a distinguished name, in order.
pub fn countries_in(name: &x509_cert::name::Name) -> Vec<String> {
    let mut out = Vec::new();
    for atv in name.iter() {
        if atv.oid == const_oid::db::rfc4519::C
            && let Some(s) = any_to_string(&atv.value)
        {
            out.push(s);
        }
    }
    out
}

/// The single `C` of a certificate subject, or `None` when it has none or several
/// (protocol §4.2 step 6).
pub fn single_country(name: &x509_cert::name::Name) -> Option<String> {
    let cs = countries_in(name);
    if cs.len() == 1 {
        cs.into_iter().next()
    } else {
        None
    }
}

fn any_to_string(value: &der::Any) -> Option<String> {
    use der::asn1::{Ia5StringRef, PrintableStringRef, Utf8StringRef};
    if let Ok(s) = value.decode_as::<PrintableStringRef<'_>>() {
        return Some(s.as_str().to_owned());
    }
    if let Ok(s) = value.decode_as::<Utf8StringRef<'_>>() {
        return Some(s.as_str().to_owned());
    }
    if let Ok(s) = value.decode_as::<Ia5StringRef<'_>>() {
        return Some(s.as_str().to_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_keeps_leading_zeros_and_lowercases() {
        let t = Thumbprint::from_digest(&[0u8; 32]);
        assert_eq!(t.as_str().len(), 64);
        let up = "AB".repeat(32);
        assert_eq!(
            Thumbprint::parse_hex(&up).unwrap().as_str(),
            "ab".repeat(32)
        );
        assert!(Thumbprint::parse_hex("abc").is_none());
        assert!(Thumbprint::parse_hex(&"zz".repeat(32)).is_none());
    }
}
