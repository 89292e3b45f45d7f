//! Store rows kept while the store's change stamp stays the same (ADR 0030).
//!
//! The gateway reads the same few rows on every request: the caller's trust-list entry and
//! the row of the batch being downloaded. A [`StampedCache`] keeps what it read under the
//! stamp the store returned *before* the read ([`crate::store::TrustListStore::trust_list_stamp`],
//! [`crate::store::BatchStore::batch_stamp`]); a lookup under another stamp forgets everything.
//! A row read after a change but kept under the older stamp is forgotten at the next stamp,
//! never served past it: so a cached row is at most as old as the stamp, and the stamp follows
//! every change within [`crate::store::STAMP_LAG`].

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::RwLock;

#[derive(Debug)]
struct Inner<K, V> {
    stamp: Option<u64>,
    rows: HashMap<K, V>,
}

/// Rows by key, valid for one stamp; at most `max_entries` of them (all are forgotten when a
/// new one would exceed it).
#[derive(Debug)]
pub(crate) struct StampedCache<K, V> {
    inner: RwLock<Inner<K, V>>,
    max_entries: usize,
}

impl<K: Eq + Hash, V: Clone> StampedCache<K, V> {
    pub(crate) fn new(max_entries: usize) -> Self {
        StampedCache {
            inner: RwLock::new(Inner {
                stamp: None,
                rows: HashMap::new(),
            }),
            max_entries,
        }
    }

    /// The row kept for `key` under `stamp`.
    pub(crate) fn get(&self, stamp: u64, key: &K) -> Option<V> {
        let inner = self.inner.read().ok()?;
        if inner.stamp != Some(stamp) {
            return None;
        }
        inner.rows.get(key).cloned()
    }

    /// Keeps `row`, read after the store returned `stamp`. A newer stamp than the one held
    /// forgets every row first; an older one keeps nothing.
    pub(crate) fn put(&self, stamp: u64, key: K, row: V) {
        if self.max_entries == 0 {
            return;
        }
        let Ok(mut inner) = self.inner.write() else {
            return;
        };
        match inner.stamp {
            Some(held) if held == stamp => {}
            Some(held) if held > stamp => return,
            _ => {
                inner.rows.clear();
                inner.stamp = Some(stamp);
            }
        }
        if inner.rows.len() >= self.max_entries && !inner.rows.contains_key(&key) {
            inner.rows.clear();
        }
        inner.rows.insert(key, row);
    }

    /// Forgets every row.
    pub(crate) fn clear(&self) {
        if let Ok(mut inner) = self.inner.write() {
            inner.rows.clear();
            inner.stamp = None;
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.read().map(|i| i.rows.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_served_only_under_the_stamp_they_were_read_at() {
        let c = StampedCache::new(10);
        c.put(1, "a", 10);
        assert_eq!(c.get(1, &"a"), Some(10));
        assert_eq!(c.get(2, &"a"), None);
        assert_eq!(c.get(1, &"b"), None);
    }

    #[test]
    fn a_newer_stamp_forgets_and_an_older_one_keeps_nothing() {
        let c = StampedCache::new(10);
        c.put(1, "a", 10);
        c.put(2, "b", 20);
        assert_eq!(c.get(2, &"a"), None, "row of stamp 1 kept under 2");
        assert_eq!(c.get(2, &"b"), Some(20));
        // A request that read its stamp before the change finishes late.
        c.put(1, "a", 11);
        assert_eq!(c.get(1, &"a"), None);
        assert_eq!(c.get(2, &"a"), None);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn the_entry_bound_holds_and_zero_keeps_nothing() {
        let c = StampedCache::new(2);
        c.put(1, 1, ());
        c.put(1, 2, ());
        c.put(1, 2, ());
        assert_eq!(c.len(), 2);
        c.put(1, 3, ());
        assert_eq!(c.len(), 1);
        assert_eq!(c.get(1, &3), Some(()));
        let off = StampedCache::new(0);
        off.put(1, 1, ());
        assert_eq!(off.get(1, &1), None);
        c.clear();
        assert_eq!(c.get(1, &3), None);
    }
}
