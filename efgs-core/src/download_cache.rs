//! The download response cache (ADR 0011).
//!
//! A download batch never changes once it is cut: the same batch, asked for by the same
//! country in the same format, always encodes to the same bytes until the retention job deletes
//! its keys. The gateway therefore keeps the encoded body (`Bytes`, shared without copying) per
//! (batch tag, caller's country, format) and serves repeated downloads from it; the caller is
//! still authenticated, the batch row (and so its `nextBatchTag` link) is still read from the
//! store and a download statistics row is still written on every request.
//!
//! The whole batch is also kept, once per format, with the position of each upload's keys
//! (ADR 0034): a country's body is cut from it by copying, not encoded again.
//!
//! Bounds: an entry is served for at most [`DownloadCachePolicy::ttl`] after it was filled
//! (so a retention run on another instance reaches this instance's downloads within the TTL; a
//! run on this instance clears the cache at once), and the bodies held never exceed
//! [`DownloadCachePolicy::max_bytes`] (the oldest entries go first). `max_bytes = 0` turns the
//! cache off.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use time::{Duration, OffsetDateTime};

use crate::media::BodyFormat;
use crate::single_flight::{SingleFlight, Turn};
use crate::tag::BatchTag;

/// Limits of the download response cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownloadCachePolicy {
    /// Upper bound on the encoded bodies held, in bytes; 0 disables the cache. Default 64 MiB
    /// (a full 5000-key batch is about 210 KB in protobuf and 560 KB in JSON).
    pub max_bytes: usize,
    /// How long an entry is served after it was filled. Default 60 s.
    pub ttl: Duration,
}

impl Default for DownloadCachePolicy {
    fn default() -> Self {
        DownloadCachePolicy {
            max_bytes: 64 * 1024 * 1024,
            ttl: Duration::seconds(60),
        }
    }
}

/// What a cached download is found by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct CacheKey {
    pub(crate) tag: BatchTag,
    /// The caller's country; `None` for the whole batch, every country's keys, kept with its
    /// [`Segment`]s so that each country's body is cut from it.
    pub(crate) country: Option<Box<str>>,
    pub(crate) format: BodyFormat,
}

/// An encoded download body and how many keys it holds.
#[derive(Debug, Clone)]
pub(crate) struct CachedBody {
    pub(crate) body: Bytes,
    pub(crate) number_of_keys: u64,
    /// For a whole batch: where each upload's keys are in `body`, in order.
    pub(crate) segments: Option<Arc<[Segment]>>,
}

/// One upload's keys inside the encoding of a whole batch.
///
/// A protobuf `repeated` field is encoded element by element with nothing around it, so the
/// encoding of a batch is the concatenation of the encodings of its uploads' keys, and a
/// country's download (the batch without that country's uploads) is the concatenation of the
/// other uploads' segments: byte for byte what encoding its keys gives. In JSON the keys are
/// the elements of one array, `{"keys": [k1,k2]}` (`{}` for none): a segment is its keys with
/// the commas between them, and a country's body is the other segments joined by commas
/// inside the same frame.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    /// The uploader's country.
    pub(crate) country: Box<str>,
    /// Where the segment's bytes are in the whole body.
    pub(crate) range: Range<usize>,
    /// Keys in the segment.
    pub(crate) keys: u64,
}

/// How the JSON body of a download starts when it has keys.
pub(crate) const JSON_KEYS_START: &str = "{\"keys\": [";
/// How it ends.
pub(crate) const JSON_KEYS_END: &str = "]}";
/// The JSON body without keys.
pub(crate) const JSON_NO_KEYS: &str = "{}";

impl CachedBody {
    /// A body without segments.
    pub(crate) fn plain(body: Bytes, number_of_keys: u64) -> Self {
        CachedBody {
            body,
            number_of_keys,
            segments: None,
        }
    }

    /// A whole batch's body in `format` without the keys uploaded by `country`: the whole
    /// body shared when `country` uploaded none of them, the other segments copied together
    /// otherwise (see [`Segment`]). `None` for a body without segments.
    pub(crate) fn without(&self, country: &str, format: BodyFormat) -> Option<CachedBody> {
        let segments = self.segments.as_ref()?;
        if !segments.iter().any(|s| &*s.country == country) {
            return Some(CachedBody::plain(self.body.clone(), self.number_of_keys));
        }
        let others = || segments.iter().filter(|s| &*s.country != country);
        let mut out = Vec::with_capacity(
            others().map(|s| s.range.len() + 1).sum::<usize>() + JSON_KEYS_START.len() + 2,
        );
        let mut keys = 0;
        for (i, s) in others().enumerate() {
            if format == BodyFormat::Json {
                out.extend_from_slice(if i == 0 { JSON_KEYS_START } else { "," }.as_bytes());
            }
            out.extend_from_slice(self.body.get(s.range.clone())?);
            keys += s.keys;
        }
        if format == BodyFormat::Json {
            out.extend_from_slice(
                if keys == 0 {
                    JSON_NO_KEYS
                } else {
                    JSON_KEYS_END
                }
                .as_bytes(),
            );
        }
        Some(CachedBody::plain(out.into(), keys))
    }
}

#[derive(Debug)]
struct Entry {
    value: CachedBody,
    filled: OffsetDateTime,
    /// Insertion order, for eviction (the smallest goes first).
    seq: u64,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<CacheKey, Entry>,
    bytes: usize,
    next_seq: u64,
}

/// The cache itself; cheap to share behind an `Arc`.
#[derive(Debug)]
pub(crate) struct DownloadCache {
    policy: DownloadCachePolicy,
    inner: RwLock<Inner>,
    /// Bodies being encoded: concurrent misses of one key share one encoding.
    encoding: SingleFlight<CacheKey, CachedBody>,
}

impl DownloadCache {
    pub(crate) fn new(policy: DownloadCachePolicy) -> Self {
        DownloadCache {
            policy,
            inner: RwLock::default(),
            encoding: SingleFlight::default(),
        }
    }

    /// After a miss: encode the body ([`Turn::Lead`]) or wait for the request that already
    /// does ([`Turn::Wait`]).
    pub(crate) fn turn(&self, key: &CacheKey) -> Turn<'_, CacheKey, CachedBody> {
        self.encoding.turn(key)
    }

    fn fresh(&self, filled: OffsetDateTime, now: OffsetDateTime) -> bool {
        // A clock that went backwards makes the entry stale rather than immortal.
        filled <= now && now - filled < self.policy.ttl
    }

    /// The body cached under `key`, if it was filled less than the TTL before `now`.
    pub(crate) fn get(&self, key: &CacheKey, now: OffsetDateTime) -> Option<CachedBody> {
        if self.policy.max_bytes == 0 {
            return None;
        }
        let inner = self.inner.read().ok()?;
        let e = inner.entries.get(key)?;
        self.fresh(e.filled, now).then(|| e.value.clone())
    }

    /// Remembers `value` under `key` as filled at `now`, evicting stale and then the oldest
    /// entries to stay within the byte budget. A body larger than the whole budget is not kept.
    pub(crate) fn put(&self, key: CacheKey, value: CachedBody, now: OffsetDateTime) {
        let size = value.body.len();
        if size > self.policy.max_bytes {
            return;
        }
        let Ok(mut inner) = self.inner.write() else {
            return;
        };
        if let Some(old) = inner.entries.remove(&key) {
            inner.bytes -= old.value.body.len();
        }
        if inner.bytes + size > self.policy.max_bytes {
            let before = inner.entries.len();
            inner.entries.retain(|_, e| self.fresh(e.filled, now));
            if inner.entries.len() != before {
                inner.bytes = inner.entries.values().map(|e| e.value.body.len()).sum();
            }
        }
        while inner.bytes + size > self.policy.max_bytes {
            let Some(oldest) = inner
                .entries
                .iter()
                .min_by_key(|(_, e)| e.seq)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(e) = inner.entries.remove(&oldest) {
                inner.bytes -= e.value.body.len();
            }
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.bytes += size;
        inner.entries.insert(
            key,
            Entry {
                value,
                filled: now,
                seq,
            },
        );
    }

    /// Forgets every entry (after a retention run on this instance).
    pub(crate) fn clear(&self) {
        if let Ok(mut inner) = self.inner.write() {
            inner.entries.clear();
            inner.bytes = 0;
        }
    }

    /// Bytes held (for tests).
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.inner.read().map(|i| i.bytes).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T: OffsetDateTime = datetime!(2026-11-28 10:00 UTC);

    fn key(seq: u32, country: &str, format: BodyFormat) -> CacheKey {
        CacheKey {
            tag: BatchTag::parse(&format!("20261128-{seq}")).unwrap(),
            country: Some(country.into()),
            format,
        }
    }

    fn body(len: usize, fill: u8) -> CachedBody {
        CachedBody::plain(Bytes::from(vec![fill; len]), len as u64)
    }

    fn cache(max_bytes: usize) -> DownloadCache {
        DownloadCache::new(DownloadCachePolicy {
            max_bytes,
            ttl: Duration::seconds(60),
        })
    }

    #[test]
    fn entries_are_per_tag_country_and_format() {
        let c = cache(1000);
        c.put(key(1, "FR", BodyFormat::Protobuf), body(10, 1), T);
        c.put(key(1, "DE", BodyFormat::Protobuf), body(10, 2), T);
        c.put(key(1, "FR", BodyFormat::Json), body(10, 3), T);
        c.put(key(2, "FR", BodyFormat::Protobuf), body(10, 4), T);
        let got = |k| c.get(&k, T).map(|b| b.body[0]);
        assert_eq!(got(key(1, "FR", BodyFormat::Protobuf)), Some(1));
        assert_eq!(got(key(1, "DE", BodyFormat::Protobuf)), Some(2));
        assert_eq!(got(key(1, "FR", BodyFormat::Json)), Some(3));
        assert_eq!(got(key(2, "FR", BodyFormat::Protobuf)), Some(4));
        assert_eq!(got(key(1, "IT", BodyFormat::Protobuf)), None);
        assert_eq!(c.bytes(), 40);
    }

    #[test]
    fn entries_expire_after_the_ttl_and_when_the_clock_goes_back() {
        let c = cache(1000);
        let k = key(1, "FR", BodyFormat::Protobuf);
        c.put(k.clone(), body(10, 1), T);
        assert!(c.get(&k, T + Duration::seconds(59)).is_some());
        assert!(c.get(&k, T + Duration::seconds(60)).is_none());
        assert!(c.get(&k, T - Duration::seconds(1)).is_none());
    }

    #[test]
    fn the_byte_budget_evicts_the_oldest_first() {
        let c = cache(30);
        for (i, fill) in [1u32, 2, 3].into_iter().zip(1u8..) {
            c.put(key(i, "FR", BodyFormat::Protobuf), body(10, fill), T);
        }
        c.put(key(4, "FR", BodyFormat::Protobuf), body(15, 4), T);
        assert!(c.get(&key(1, "FR", BodyFormat::Protobuf), T).is_none());
        assert!(c.get(&key(2, "FR", BodyFormat::Protobuf), T).is_none());
        assert!(c.get(&key(3, "FR", BodyFormat::Protobuf), T).is_some());
        assert!(c.get(&key(4, "FR", BodyFormat::Protobuf), T).is_some());
        assert_eq!(c.bytes(), 25);
    }

    #[test]
    fn stale_entries_go_before_fresh_ones() {
        let c = cache(30);
        c.put(key(1, "FR", BodyFormat::Protobuf), body(10, 1), T);
        let later = T + Duration::seconds(30);
        c.put(key(2, "FR", BodyFormat::Protobuf), body(10, 2), later);
        c.put(key(3, "FR", BodyFormat::Protobuf), body(10, 3), later);
        // At T + 70 s the first entry is stale; the others are fresh.
        let now = T + Duration::seconds(70);
        c.put(key(4, "FR", BodyFormat::Protobuf), body(10, 4), now);
        assert!(c.get(&key(2, "FR", BodyFormat::Protobuf), now).is_some());
        assert!(c.get(&key(3, "FR", BodyFormat::Protobuf), now).is_some());
        assert!(c.get(&key(4, "FR", BodyFormat::Protobuf), now).is_some());
        assert_eq!(c.bytes(), 30);
    }

    #[test]
    fn replacing_an_entry_keeps_the_byte_count_right() {
        let c = cache(100);
        let k = key(1, "FR", BodyFormat::Protobuf);
        c.put(k.clone(), body(40, 1), T);
        c.put(k.clone(), body(30, 2), T);
        assert_eq!(c.bytes(), 30);
        assert_eq!(c.get(&k, T).map(|b| b.body[0]), Some(2));
    }

    #[test]
    fn too_large_bodies_and_a_zero_budget_are_not_kept() {
        let c = cache(10);
        let k = key(1, "FR", BodyFormat::Protobuf);
        c.put(k.clone(), body(11, 1), T);
        assert!(c.get(&k, T).is_none());
        assert_eq!(c.bytes(), 0);
        let off = cache(0);
        off.put(k.clone(), body(0, 1), T);
        assert!(off.get(&k, T).is_none());
    }

    #[test]
    fn clear_forgets_everything() {
        let c = cache(100);
        let k = key(1, "FR", BodyFormat::Protobuf);
        c.put(k.clone(), body(10, 1), T);
        c.clear();
        assert!(c.get(&k, T).is_none());
        assert_eq!(c.bytes(), 0);
    }
}
