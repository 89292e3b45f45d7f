//! A small BER/DER TLV reader and DER writer.
//!
//! The CMS skeleton is walked with this reader instead of `der`'s derived decoders because the
//! verifier needs things a decode/re-encode round trip loses: the received bytes of the signed
//! attributes and of each certificate, and the received order of `SET OF` elements (der sorts
//! them on decode). It accepts BER: indefinite lengths, non-minimal length octets and
//! constructed string encodings, with a nesting limit.

use std::borrow::Cow;

/// Maximum nesting depth accepted while scanning BER.
const MAX_DEPTH: usize = 48;

/// Why a TLV could not be read. Kept internal; callers turn it into a `SignatureError::Parse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BerError(pub(crate) &'static str);

pub(crate) type BerResult<T> = Result<T, BerError>;

/// Universal tag numbers used here.
pub(crate) mod tag {
    pub(crate) const BOOLEAN: u8 = 0x01;
    pub(crate) const INTEGER: u8 = 0x02;
    pub(crate) const BIT_STRING: u8 = 0x03;
    pub(crate) const OCTET_STRING: u8 = 0x04;
    pub(crate) const NULL: u8 = 0x05;
    pub(crate) const OID: u8 = 0x06;
    pub(crate) const UTC_TIME: u8 = 0x17;
    pub(crate) const GENERALIZED_TIME: u8 = 0x18;
    pub(crate) const SEQUENCE: u8 = 0x30;
    pub(crate) const SET: u8 = 0x31;
}

/// One decoded TLV, borrowing from the input.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tlv<'a> {
    /// The identifier octets as received (one byte for tag numbers below 31).
    pub(crate) ident: &'a [u8],
    /// The whole encoding: identifier, length, contents and (if indefinite) the end-of-contents.
    pub(crate) raw: &'a [u8],
    /// The contents octets (for an indefinite length: everything before the end-of-contents).
    pub(crate) value: &'a [u8],
    depth: usize,
}

impl<'a> Tlv<'a> {
    /// Reads one complete TLV from the start of `input`; returns it and the rest.
    pub(crate) fn read(input: &'a [u8]) -> BerResult<(Tlv<'a>, &'a [u8])> {
        read_at_depth(input, 0)
    }

    /// Reads exactly one TLV spanning all of `input`.
    pub(crate) fn read_exact(input: &'a [u8]) -> BerResult<Tlv<'a>> {
        let (tlv, rest) = Self::read(input)?;
        if !rest.is_empty() {
            return Err(BerError("trailing data after the encoding"));
        }
        Ok(tlv)
    }

    /// The first identifier octet.
    pub(crate) fn tag_byte(&self) -> u8 {
        self.ident[0]
    }

    /// Whether the constructed bit is set.
    pub(crate) fn constructed(&self) -> bool {
        self.ident[0] & 0x20 != 0
    }

    /// The identifier octet with the constructed bit cleared (low tag numbers only).
    fn base_tag(&self) -> Option<u8> {
        (self.ident.len() == 1).then_some(self.ident[0] & !0x20)
    }

    /// Is this a universal-class string type that BER may send in constructed form?
    fn is_universal_string_type(&self) -> bool {
        matches!(
            self.base_tag(),
            Some(0x03 | 0x04 | 0x0c | 0x12..=0x16 | 0x19..=0x1e)
        )
    }

    /// Checks the tag (exact identifier octet) and returns self.
    pub(crate) fn expect(self, tag: u8, what: &'static str) -> BerResult<Self> {
        if self.ident == [tag] {
            Ok(self)
        } else {
            Err(BerError(what))
        }
    }

    /// The elements of a constructed encoding, in received order.
    pub(crate) fn children(&self) -> BerResult<Vec<Tlv<'a>>> {
        if !self.constructed() {
            return Err(BerError("expected a constructed encoding"));
        }
        let mut out = Vec::new();
        let mut rest = self.value;
        while !rest.is_empty() {
            let (child, r) = read_at_depth(rest, self.depth + 1)?;
            out.push(child);
            rest = r;
        }
        Ok(out)
    }

    /// The contents of a string type (OCTET STRING, or an IMPLICIT-tagged one), joining the
    /// segments of a BER constructed encoding.
    pub(crate) fn octets(&self) -> BerResult<Cow<'a, [u8]>> {
        if !self.constructed() {
            return Ok(Cow::Borrowed(self.value));
        }
        let mut out = Vec::new();
        for seg in self.children()? {
            if seg.base_tag() != Some(tag::OCTET_STRING) {
                return Err(BerError("bad segment in a constructed string"));
            }
            out.extend_from_slice(&seg.octets()?);
        }
        Ok(Cow::Owned(out))
    }

    /// The object identifier of an OID TLV.
    pub(crate) fn oid(&self) -> BerResult<const_oid::ObjectIdentifier> {
        if self.ident != [tag::OID] {
            return Err(BerError("expected an OBJECT IDENTIFIER"));
        }
        const_oid::ObjectIdentifier::from_bytes(self.value)
            .map_err(|_| BerError("malformed OBJECT IDENTIFIER"))
    }

    /// A small non-negative INTEGER.
    pub(crate) fn small_uint(&self) -> BerResult<u64> {
        if self.ident != [tag::INTEGER] || self.value.is_empty() {
            return Err(BerError("expected an INTEGER"));
        }
        if self.value[0] & 0x80 != 0 {
            return Err(BerError("negative INTEGER"));
        }
        let digits: &[u8] = {
            let mut v = self.value;
            while v.len() > 1 && v[0] == 0 {
                v = &v[1..];
            }
            v
        };
        if digits.len() > 8 {
            return Err(BerError("INTEGER too large"));
        }
        Ok(digits
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    /// Appends the DER encoding of this TLV to `out`: definite minimal lengths, primitive
    /// strings, canonical BOOLEAN; `SET` elements are sorted only when `sort_sets`.
    pub(crate) fn write_der(&self, out: &mut Vec<u8>, sort_sets: bool) -> BerResult<()> {
        if self.constructed() && self.is_universal_string_type() {
            let content = self.flatten_string()?;
            out.push(self.ident[0] & !0x20);
            push_len(out, content.len());
            out.extend_from_slice(&content);
            return Ok(());
        }
        if self.constructed() {
            let sort = sort_sets && self.ident == [tag::SET];
            return self.write_der_constructed(out, self.ident, sort_sets, sort);
        }
        out.extend_from_slice(self.ident);
        if self.ident == [tag::BOOLEAN] && self.value.len() == 1 && self.value[0] != 0 {
            push_len(out, 1);
            out.push(0xff);
        } else {
            push_len(out, self.value.len());
            out.extend_from_slice(self.value);
        }
        Ok(())
    }

    /// Appends the DER encoding of this constructed TLV's contents re-tagged as a `SET`
    /// (used for the `[0] IMPLICIT` signed attributes), sorting its elements when `sort`.
    pub(crate) fn write_der_as_set(&self, out: &mut Vec<u8>, sort: bool) -> BerResult<()> {
        self.write_der_constructed(out, &[tag::SET], sort, sort)
    }

    fn write_der_constructed(
        &self,
        out: &mut Vec<u8>,
        ident: &[u8],
        sort_sets: bool,
        sort_here: bool,
    ) -> BerResult<()> {
        let mut parts = Vec::new();
        for child in self.children()? {
            let mut enc = Vec::new();
            child.write_der(&mut enc, sort_sets)?;
            parts.push(enc);
        }
        if sort_here {
            parts.sort();
        }
        let len = parts.iter().map(Vec::len).sum();
        out.extend_from_slice(ident);
        push_len(out, len);
        for p in parts {
            out.extend_from_slice(&p);
        }
        Ok(())
    }

    /// The contents of a constructed string encoding, joined (BIT STRING keeps one
    /// unused-bits octet, taken from the last segment).
    fn flatten_string(&self) -> BerResult<Vec<u8>> {
        let is_bits = self.base_tag() == Some(tag::BIT_STRING);
        let mut data = Vec::new();
        let mut unused = 0u8;
        let mut stack = vec![*self];
        // Depth-first, in order: expand constructed segments in place.
        let mut leaves = Vec::new();
        while let Some(t) = stack.pop() {
            if t.constructed() {
                let mut kids = t.children()?;
                kids.reverse();
                stack.extend(kids);
            } else {
                leaves.push(t);
            }
        }
        for (i, leaf) in leaves.iter().enumerate() {
            if is_bits {
                let (&u, rest) = leaf
                    .value
                    .split_first()
                    .ok_or(BerError("empty BIT STRING segment"))?;
                if i + 1 < leaves.len() && u != 0 {
                    return Err(BerError("unused bits in a non-final BIT STRING segment"));
                }
                unused = u;
                data.extend_from_slice(rest);
            } else {
                data.extend_from_slice(leaf.value);
            }
        }
        if is_bits {
            data.insert(0, unused);
        }
        Ok(data)
    }
}

fn read_at_depth(input: &[u8], depth: usize) -> BerResult<(Tlv<'_>, &[u8])> {
    if depth > MAX_DEPTH {
        return Err(BerError("nesting too deep"));
    }
    let first = *input.first().ok_or(BerError("unexpected end of data"))?;
    // Identifier octets.
    let mut pos = 1usize;
    if first & 0x1f == 0x1f {
        loop {
            let b = *input
                .get(pos)
                .ok_or(BerError("unexpected end of data in a tag"))?;
            pos += 1;
            if pos > 5 {
                return Err(BerError("tag number too large"));
            }
            if b & 0x80 == 0 {
                break;
            }
        }
    } else if first == 0 {
        return Err(BerError("unexpected end-of-contents octets"));
    }
    let ident_len = pos;
    let constructed = first & 0x20 != 0;
    // Length octets.
    let l0 = *input
        .get(pos)
        .ok_or(BerError("unexpected end of data in a length"))?;
    pos += 1;
    if l0 == 0x80 {
        if !constructed {
            return Err(BerError("indefinite length on a primitive encoding"));
        }
        let start = pos;
        let mut rest = &input[pos..];
        loop {
            if rest.len() >= 2 && rest[0] == 0 && rest[1] == 0 {
                let content_end = input.len() - rest.len();
                let end = content_end + 2;
                let tlv = Tlv {
                    ident: &input[..ident_len],
                    raw: &input[..end],
                    value: &input[start..content_end],
                    depth,
                };
                return Ok((tlv, &input[end..]));
            }
            let (_, r) = read_at_depth(rest, depth + 1)?;
            rest = r;
        }
    }
    let len = if l0 & 0x80 == 0 {
        usize::from(l0)
    } else {
        let n = usize::from(l0 & 0x7f);
        if n == 0x7f || n > 4 {
            return Err(BerError("length too large"));
        }
        let bytes = input
            .get(pos..pos + n)
            .ok_or(BerError("unexpected end of data in a length"))?;
        pos += n;
        bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    let end = pos
        .checked_add(len)
        .filter(|e| *e <= input.len())
        .ok_or(BerError("length exceeds the available data"))?;
    let tlv = Tlv {
        ident: &input[..ident_len],
        raw: &input[..end],
        value: &input[pos..end],
        depth,
    };
    Ok((tlv, &input[end..]))
}

/// Appends a minimal DER length.
pub(crate) fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        // Truncation is impossible: len < 0x80.
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        let n = bytes.len() - skip;
        out.push(0x80 | n as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// A DER TLV with the given one-octet tag.
pub(crate) fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    push_len(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

/// A DER TLV whose contents are the concatenation of `parts`.
pub(crate) fn der_cat(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len = parts.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(len + 6);
    out.push(tag);
    push_len(&mut out, len);
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

/// The DER encoding of an OID.
pub(crate) fn der_oid(oid: &const_oid::ObjectIdentifier) -> Vec<u8> {
    der(tag::OID, oid.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_definite_and_indefinite() {
        // SEQUENCE (indefinite) { INTEGER 5, OCTET STRING (constructed, indefinite) "ab" "c" }
        let ber = [
            0x30, 0x80, 0x02, 0x01, 0x05, 0x24, 0x80, 0x04, 0x02, b'a', b'b', 0x04, 0x01, b'c',
            0x00, 0x00, 0x00, 0x00,
        ];
        let t = Tlv::read_exact(&ber).unwrap();
        assert_eq!(t.raw.len(), ber.len());
        let kids = t.children().unwrap();
        assert_eq!(kids.len(), 2);
        assert_eq!(kids[0].small_uint().unwrap(), 5);
        assert_eq!(&*kids[1].octets().unwrap(), b"abc");
        let mut out = Vec::new();
        t.write_der(&mut out, false).unwrap();
        assert_eq!(
            out,
            [0x30, 0x08, 0x02, 0x01, 0x05, 0x04, 0x03, b'a', b'b', b'c']
        );
    }

    #[test]
    fn non_minimal_length_is_normalised_and_sets_sort_on_request() {
        let ber = [0x31, 0x81, 0x06, 0x02, 0x01, 0x09, 0x02, 0x01, 0x01];
        let t = Tlv::read_exact(&ber).unwrap();
        let mut keep = Vec::new();
        t.write_der(&mut keep, false).unwrap();
        assert_eq!(keep, [0x31, 0x06, 0x02, 0x01, 0x09, 0x02, 0x01, 0x01]);
        let mut sorted = Vec::new();
        t.write_der(&mut sorted, true).unwrap();
        assert_eq!(sorted, [0x31, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x09]);
    }

    #[test]
    fn rejects_truncation_depth_and_trailing_data() {
        assert!(Tlv::read_exact(&[0x30, 0x05, 0x02]).is_err());
        assert!(Tlv::read_exact(&[0x02, 0x01, 0x01, 0x00]).is_err());
        assert!(Tlv::read_exact(&[0x04, 0x80, 0x00, 0x00]).is_err());
        assert!(Tlv::read_exact(&[0x30, 0x80, 0x02, 0x01, 0x01]).is_err());
        let mut deep = [0x30, 0x80].repeat(MAX_DEPTH + 2);
        deep.extend(vec![0u8; 2 * (MAX_DEPTH + 2)]);
        assert!(Tlv::read_exact(&deep).is_err());
        let mut ok = [0x30, 0x80].repeat(10);
        ok.extend(vec![0u8; 20]);
        assert!(Tlv::read_exact(&ok).is_ok());
    }

    #[test]
    fn der_lengths() {
        let mut v = Vec::new();
        push_len(&mut v, 0x7f);
        push_len(&mut v, 0x80);
        push_len(&mut v, 0x1234);
        assert_eq!(v, [0x7f, 0x81, 0x80, 0x82, 0x12, 0x34]);
    }
}
