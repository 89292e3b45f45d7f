//! The two variable-length fields of a [`crate::model::DiagnosisKey`], held so that decoding a
//! batch allocates per batch, not per key (ADR 0033):
//!
//! - [`KeyData`]: the temporary exposure key, inline when it has at most 16 bytes (every valid
//!   key: [`crate::validate::KEY_DATA_LEN`]), on the heap only for the longer keys validation
//!   refuses anyway.
//! - [`CountryList`]: the visited countries. Keys of one upload nearly always list the same
//!   countries (the full list of participating countries, for most backends); the decoders
//!   share one list between consecutive keys that have the same one, so a batch of 5,000 keys
//!   with 27 visited countries each holds one list, not 5,000. A list built by hand, or grown
//!   field by field, is an ordinary owned vector.
//!
//! Both dereference to slices and compare, hash and print as the slices do, so code reading
//! keys does not see the difference.

use crate::country::CountryCode;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

/// Both types read as the slice they hold: they dereference to it, and compare, hash and print
/// as it does.
macro_rules! slice_like {
    ($t:ty, $elem:ty) => {
        impl Deref for $t {
            type Target = [$elem];
            #[inline]
            fn deref(&self) -> &[$elem] {
                self.as_slice()
            }
        }

        impl AsRef<[$elem]> for $t {
            fn as_ref(&self) -> &[$elem] {
                self.as_slice()
            }
        }

        impl PartialEq for $t {
            fn eq(&self, other: &Self) -> bool {
                self.as_slice() == other.as_slice()
            }
        }

        impl Eq for $t {}

        impl Hash for $t {
            fn hash<H: Hasher>(&self, state: &mut H) {
                self.as_slice().hash(state)
            }
        }

        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.as_slice().fmt(f)
            }
        }
    };
}

slice_like!(KeyData, u8);
slice_like!(CountryList, CountryCode);

/// Bytes held inline by [`KeyData`].
const INLINE: usize = 16;

/// The `keyData` of a diagnosis key: inline up to 16 bytes, on the heap beyond.
#[derive(Clone)]
pub struct KeyData(KeyRepr);

#[derive(Clone)]
enum KeyRepr {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl KeyData {
    /// Empty key data (proto3 default).
    pub const EMPTY: KeyData = KeyData(KeyRepr::Inline {
        len: 0,
        bytes: [0; INLINE],
    });

    /// Copies `bytes`; allocates only when they are longer than 16.
    #[inline]
    pub fn from_slice(bytes: &[u8]) -> KeyData {
        if bytes.len() <= INLINE {
            let mut inline = [0u8; INLINE];
            inline[..bytes.len()].copy_from_slice(bytes);
            KeyData(KeyRepr::Inline {
                len: bytes.len() as u8,
                bytes: inline,
            })
        } else {
            KeyData(KeyRepr::Heap(bytes.into()))
        }
    }

    /// The bytes.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            KeyRepr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            KeyRepr::Heap(b) => b,
        }
    }
}

impl Default for KeyData {
    fn default() -> Self {
        KeyData::EMPTY
    }
}

impl PartialOrd for KeyData {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for KeyData {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_slice().cmp(other.as_slice())
    }
}

impl From<&[u8]> for KeyData {
    fn from(bytes: &[u8]) -> Self {
        KeyData::from_slice(bytes)
    }
}

impl From<Vec<u8>> for KeyData {
    fn from(bytes: Vec<u8>) -> Self {
        if bytes.len() <= INLINE {
            KeyData::from_slice(&bytes)
        } else {
            KeyData(KeyRepr::Heap(bytes.into_boxed_slice()))
        }
    }
}

impl FromIterator<u8> for KeyData {
    fn from_iter<I: IntoIterator<Item = u8>>(iter: I) -> Self {
        KeyData::from(iter.into_iter().collect::<Vec<u8>>())
    }
}

impl<const N: usize> From<[u8; N]> for KeyData {
    fn from(bytes: [u8; N]) -> Self {
        KeyData::from_slice(&bytes)
    }
}

impl<const N: usize> From<&[u8; N]> for KeyData {
    fn from(bytes: &[u8; N]) -> Self {
        KeyData::from_slice(bytes)
    }
}

impl PartialEq<[u8]> for KeyData {
    fn eq(&self, other: &[u8]) -> bool {
        self.as_slice() == other
    }
}

impl PartialEq<&[u8]> for KeyData {
    fn eq(&self, other: &&[u8]) -> bool {
        self.as_slice() == *other
    }
}

impl PartialEq<Vec<u8>> for KeyData {
    fn eq(&self, other: &Vec<u8>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<const N: usize> PartialEq<[u8; N]> for KeyData {
    fn eq(&self, other: &[u8; N]) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<const N: usize> PartialEq<&[u8; N]> for KeyData {
    fn eq(&self, other: &&[u8; N]) -> bool {
        self.as_slice() == other.as_slice()
    }
}

/// The `visitedCountries` of a diagnosis key: a list shared between keys, or owned.
#[derive(Clone)]
pub struct CountryList(ListRepr);

#[derive(Clone)]
enum ListRepr {
    Owned(Vec<CountryCode>),
    Shared(Arc<[CountryCode]>),
}

impl CountryList {
    /// An empty list (no allocation).
    pub const fn new() -> CountryList {
        CountryList(ListRepr::Owned(Vec::new()))
    }

    /// A list sharing `codes` (cloning it is a reference count, not a copy).
    pub fn shared(codes: Arc<[CountryCode]>) -> CountryList {
        CountryList(ListRepr::Shared(codes))
    }

    /// The countries.
    #[inline]
    pub fn as_slice(&self) -> &[CountryCode] {
        match &self.0 {
            ListRepr::Owned(v) => v,
            ListRepr::Shared(a) => a,
        }
    }

    /// The list as a vector to change (a shared list is copied first).
    pub fn to_mut(&mut self) -> &mut Vec<CountryCode> {
        if let ListRepr::Shared(a) = &self.0 {
            self.0 = ListRepr::Owned(a.to_vec());
        }
        match &mut self.0 {
            ListRepr::Owned(v) => v,
            // Replaced just above.
            ListRepr::Shared(_) => unreachable!("a shared list was made owned"),
        }
    }

    /// Appends a country (a shared list is copied first).
    pub fn push(&mut self, code: CountryCode) {
        self.to_mut().push(code);
    }

    /// The list as a shared slice (an owned list is moved into one).
    pub fn into_shared(self) -> Arc<[CountryCode]> {
        match self.0 {
            ListRepr::Owned(v) => v.into(),
            ListRepr::Shared(a) => a,
        }
    }

    /// Whether both lists are the same shared list (a pointer comparison: `false` does not
    /// mean the countries differ).
    pub fn same_shared(&self, other: &CountryList) -> bool {
        matches!((&self.0, &other.0), (ListRepr::Shared(a), ListRepr::Shared(b)) if Arc::ptr_eq(a, b))
    }

    /// Whether the list is shared with other keys (as the decoders produce it).
    pub fn is_shared(&self) -> bool {
        matches!(self.0, ListRepr::Shared(_))
    }
}

impl Default for CountryList {
    fn default() -> Self {
        CountryList::new()
    }
}

impl From<Vec<CountryCode>> for CountryList {
    fn from(codes: Vec<CountryCode>) -> Self {
        CountryList(ListRepr::Owned(codes))
    }
}

impl From<&[CountryCode]> for CountryList {
    fn from(codes: &[CountryCode]) -> Self {
        CountryList(ListRepr::Owned(codes.to_vec()))
    }
}

impl From<Arc<[CountryCode]>> for CountryList {
    fn from(codes: Arc<[CountryCode]>) -> Self {
        CountryList::shared(codes)
    }
}

impl FromIterator<CountryCode> for CountryList {
    fn from_iter<I: IntoIterator<Item = CountryCode>>(iter: I) -> Self {
        CountryList(ListRepr::Owned(iter.into_iter().collect()))
    }
}

impl<'a> IntoIterator for &'a CountryList {
    type Item = &'a CountryCode;
    type IntoIter = std::slice::Iter<'a, CountryCode>;
    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

impl<U> PartialEq<Vec<U>> for CountryList
where
    CountryCode: PartialEq<U>,
{
    fn eq(&self, other: &Vec<U>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<U> PartialEq<[U]> for CountryList
where
    CountryCode: PartialEq<U>,
{
    fn eq(&self, other: &[U]) -> bool {
        self.as_slice() == other
    }
}

impl<U, const N: usize> PartialEq<[U; N]> for CountryList
where
    CountryCode: PartialEq<U>,
{
    fn eq(&self, other: &[U; N]) -> bool {
        self.as_slice() == other.as_slice()
    }
}

/// Shares visited-country lists between the keys of one batch while decoding: the list of
/// the previous key is reused when the next key has the same one (ADR 0033).
#[derive(Default)]
pub(crate) struct ListInterner {
    /// Countries of the key being decoded.
    scratch: Vec<CountryCode>,
    /// The list handed out last.
    last: Option<Arc<[CountryCode]>>,
}

impl ListInterner {
    /// A new interner; the scratch list grows once to the longest list seen.
    pub(crate) fn new() -> ListInterner {
        ListInterner::default()
    }

    /// Starts the next key's list.
    #[inline]
    pub(crate) fn start(&mut self) {
        self.scratch.clear();
    }

    /// Length of the list being built.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.scratch.len()
    }

    /// Drops the countries added after the first `len` (a fast path giving up).
    #[inline]
    pub(crate) fn truncate(&mut self, len: usize) {
        self.scratch.truncate(len);
    }

    /// Adds a country to the list being built.
    #[inline]
    pub(crate) fn push(&mut self, code: CountryCode) {
        self.scratch.push(code);
    }

    /// The finished list: the previous key's list when it is the same, a new shared list
    /// otherwise. An empty list allocates nothing.
    pub(crate) fn finish(&mut self) -> CountryList {
        if self.scratch.is_empty() {
            return CountryList::new();
        }
        if let Some(last) = &self.last
            && **last == *self.scratch
        {
            return CountryList::shared(last.clone());
        }
        let list: Arc<[CountryCode]> = Arc::from(self.scratch.as_slice());
        self.last = Some(list.clone());
        CountryList::shared(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_data_is_inline_up_to_16_bytes_and_compares_as_its_bytes() {
        let short = KeyData::from_slice(&[1, 2, 3]);
        assert_eq!(&*short, &[1, 2, 3]);
        assert!(matches!(short.0, KeyRepr::Inline { len: 3, .. }));
        let full = KeyData::from([7u8; 16]);
        assert!(matches!(full.0, KeyRepr::Inline { len: 16, .. }));
        let long = KeyData::from(vec![9u8; 17]);
        assert!(matches!(long.0, KeyRepr::Heap(_)));
        assert_eq!(long.len(), 17);
        assert_eq!(long, vec![9u8; 17]);
        assert_ne!(KeyData::from_slice(&[0]), KeyData::EMPTY);
        assert!(KeyData::default().is_empty());
        assert_eq!(format!("{:?}", short), "[1, 2, 3]");
        assert!(KeyData::from_slice(&[1]) < KeyData::from_slice(&[1, 0]));
    }

    #[test]
    fn interner_shares_equal_consecutive_lists() {
        let (de, fr) = (CountryCode::from("DE"), CountryCode::from("FR"));
        let mut i = ListInterner::new();
        let mut list = |codes: &[CountryCode]| {
            i.start();
            for c in codes {
                i.push(*c);
            }
            i.finish()
        };
        let a = list(&[de, fr]);
        let b = list(&[de, fr]);
        let c = list(&[fr]);
        let empty = list(&[]);
        assert!(a.is_shared() && !empty.is_shared());
        let (ListRepr::Shared(x), ListRepr::Shared(y)) = (&a.0, &b.0) else {
            panic!("decoded lists are shared");
        };
        assert!(Arc::ptr_eq(x, y));
        assert_eq!(c, vec![fr]);
        assert_eq!(a, vec![de, fr]);
        let mut grown = b.clone();
        grown.push(de);
        assert_eq!(grown, vec![de, fr, de]);
        assert_eq!(b, vec![de, fr], "the shared list is unchanged");
    }
}
