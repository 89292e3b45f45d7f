//! The ledgers: what each simulated country sent, what the gateway acknowledged, and what the
//! country received, kept by the clients alone, and the verdict computed from them.
//!
//! Every key the simulation makes names itself in its 16 `keyData` bytes ([`KeyId`]): the
//! run, the origin country's index and a per-origin sequence number, then 6 bytes of noise.
//! A ledger therefore needs no copy of the keys: one bit per key and origin.

use std::collections::BTreeMap;

use serde::Serialize;

/// The identity a simulated key carries in its `keyData`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyId {
    /// The run (keys of other runs on the same gateway are ignored).
    pub run: u32,
    /// Index of the origin country in the federation.
    pub origin: u16,
    /// Sequence number of the key within its origin.
    pub seq: u32,
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl KeyId {
    /// The 16 `keyData` bytes: run, origin, sequence (big-endian), then 6 bytes derived from
    /// them (so two ids never share bytes).
    pub fn key_data(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&self.run.to_be_bytes());
        b[4..6].copy_from_slice(&self.origin.to_be_bytes());
        b[6..10].copy_from_slice(&self.seq.to_be_bytes());
        let noise = splitmix(
            (u64::from(self.run) << 32) ^ (u64::from(self.origin) << 40) ^ u64::from(self.seq),
        );
        b[10..].copy_from_slice(&noise.to_be_bytes()[..6]);
        b
    }

    /// Reads an id back from `keyData`; `None` for keys this scheme did not make (wrong
    /// length or noise).
    pub fn parse(key_data: &[u8]) -> Option<KeyId> {
        let b: &[u8; 16] = key_data.try_into().ok()?;
        let id = KeyId {
            run: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            origin: u16::from_be_bytes([b[4], b[5]]),
            seq: u32::from_be_bytes([b[6], b[7], b[8], b[9]]),
        };
        (id.key_data() == *b).then_some(id)
    }
}

/// A growable bit set of sequence numbers.
#[derive(Clone, Debug, Default)]
pub struct Bits {
    words: Vec<u64>,
    count: u64,
}

impl Bits {
    /// Sets bit `i`; `true` when it was not set before.
    pub fn insert(&mut self, i: u32) -> bool {
        let w = (i / 64) as usize;
        if w >= self.words.len() {
            self.words.resize(w + 1, 0);
        }
        let mask = 1u64 << (i % 64);
        let fresh = self.words[w] & mask == 0;
        if fresh {
            self.words[w] |= mask;
            self.count += 1;
        }
        fresh
    }

    /// Whether bit `i` is set.
    pub fn contains(&self, i: u32) -> bool {
        self.words
            .get((i / 64) as usize)
            .is_some_and(|w| w & (1u64 << (i % 64)) != 0)
    }

    /// Bits set.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Whether no bit is set.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bits set here and not in `other`.
    pub fn missing_from(&self, other: &Bits) -> u64 {
        self.words
            .iter()
            .enumerate()
            .map(|(i, w)| u64::from((w & !other.words.get(i).copied().unwrap_or(0)).count_ones()))
            .sum()
    }

    /// Bits set in both.
    pub fn intersection(&self, other: &Bits) -> u64 {
        self.words
            .iter()
            .zip(&other.words)
            .map(|(a, b)| u64::from((a & b).count_ones()))
            .sum()
    }
}

/// One country's ledger, written only by that country's simulated backend.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    /// The country.
    pub country: String,
    /// Its index (the `origin` of its [`KeyId`]s).
    pub index: u16,
    /// Keys put into upload requests (each distinct upload counted once, retries not).
    pub sent: u64,
    /// Upload requests sent, retries and replays included.
    pub upload_requests: u64,
    /// Uploads acknowledged (201, first answer or replay).
    pub acked_uploads: u64,
    /// Own keys the gateway acknowledged (201).
    pub acked: Bits,
    /// Keys answered 207 (already stored): not acknowledged by that upload.
    pub refused_as_duplicate: u64,
    /// Keys received, per origin index.
    pub received: BTreeMap<u16, Bits>,
    /// Keys received a second (or later) time.
    pub duplicates: u64,
    /// Own keys received (the gateway must filter them out).
    pub own_received: u64,
    /// Keys of this run whose origin index the federation does not know, or keys of other runs.
    pub foreign: u64,
    /// Download batches read (200 answers).
    pub batches_read: u64,
    /// Callback notifications received (downloading on callback).
    pub notifications: u64,
    /// Notifications announcing a batch already read.
    pub repeated_notifications: u64,
    /// Batches read because a notification announced them.
    pub read_on_callback: u64,
    /// Uploads of other countries whose signature was re-verified through the audit endpoint.
    pub audits_passed: u64,
    /// Audit checks that failed and unexpected upload answers, with the reason.
    pub problems: Vec<String>,
    /// Transport errors and unexpected answers (retried or not).
    pub errors: u64,
}

impl Ledger {
    /// An empty ledger.
    pub fn new(country: &str, index: u16) -> Self {
        Ledger {
            country: country.to_owned(),
            index,
            ..Ledger::default()
        }
    }

    /// Records a received key of `run`; returns `false` when it was a duplicate.
    pub fn receive(&mut self, run: u32, key_data: &[u8]) -> bool {
        match KeyId::parse(key_data) {
            Some(id) if id.run == run => {
                if id.origin == self.index {
                    self.own_received += 1;
                    return true;
                }
                let fresh = self.received.entry(id.origin).or_default().insert(id.seq);
                if !fresh {
                    self.duplicates += 1;
                }
                fresh
            }
            _ => {
                self.foreign += 1;
                true
            }
        }
    }

    /// Keys received in total (duplicates not counted).
    pub fn received_keys(&self) -> u64 {
        self.received.values().map(Bits::len).sum()
    }
}

/// One country's line of the verdict.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct CountryVerdict {
    /// The country.
    pub country: String,
    /// Keys sent in uploads.
    pub sent: u64,
    /// Own keys acknowledged.
    pub acknowledged: u64,
    /// Keys received from other countries (distinct).
    pub received: u64,
    /// Keys the other countries had acknowledged (what this country must receive).
    pub expected: u64,
    /// Acknowledged keys of other countries this country never received.
    pub lost: u64,
    /// Keys received more than once.
    pub duplicates: u64,
    /// Own keys received.
    pub own_received: u64,
    /// Keys received that no country had acknowledged (stored after a lost answer, say):
    /// reported, not a failure.
    pub unacknowledged_received: u64,
}

/// The verdict over all ledgers.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Verdict {
    /// Per country.
    pub countries: Vec<CountryVerdict>,
    /// Acknowledged keys lost, summed over receivers.
    pub lost: u64,
    /// Keys delivered twice to one country, summed.
    pub duplicates: u64,
    /// Own keys delivered back, summed.
    pub own_received: u64,
}

impl Verdict {
    /// Computes the verdict from the ledgers only.
    pub fn from_ledgers(ledgers: &[Ledger]) -> Verdict {
        let mut v = Verdict::default();
        let empty = Bits::default();
        for me in ledgers {
            let mut c = CountryVerdict {
                country: me.country.clone(),
                sent: me.sent,
                acknowledged: me.acked.len(),
                received: me.received_keys(),
                duplicates: me.duplicates,
                own_received: me.own_received,
                ..CountryVerdict::default()
            };
            for other in ledgers.iter().filter(|o| o.index != me.index) {
                let got = me.received.get(&other.index).unwrap_or(&empty);
                c.expected += other.acked.len();
                c.lost += other.acked.missing_from(got);
                c.unacknowledged_received += got.missing_from(&other.acked);
            }
            v.lost += c.lost;
            v.duplicates += c.duplicates;
            v.own_received += c.own_received;
            v.countries.push(c);
        }
        v
    }

    /// Whether nothing acknowledged was lost and nothing was delivered twice or back to its
    /// origin.
    pub fn holds(&self) -> bool {
        self.lost == 0 && self.duplicates == 0 && self.own_received == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_round_trip_and_reject_other_bytes() {
        let id = KeyId {
            run: 7,
            origin: 3,
            seq: 123_456,
        };
        assert_eq!(KeyId::parse(&id.key_data()), Some(id));
        let mut b = id.key_data();
        b[15] ^= 1;
        assert_eq!(KeyId::parse(&b), None);
        assert_eq!(KeyId::parse(&[0u8; 15]), None);
    }

    #[test]
    fn the_verdict_sees_loss_and_duplicates() {
        let mut a = Ledger::new("AA", 0);
        let mut b = Ledger::new("BB", 1);
        for s in 0..10 {
            a.acked.insert(s);
        }
        for s in 0..9 {
            let id = KeyId {
                run: 1,
                origin: 0,
                seq: s,
            };
            assert!(b.receive(1, &id.key_data()));
        }
        let v = Verdict::from_ledgers(&[a.clone(), b.clone()]);
        assert_eq!(v.lost, 1);
        assert!(!v.holds());
        let last = KeyId {
            run: 1,
            origin: 0,
            seq: 9,
        };
        b.receive(1, &last.key_data());
        assert!(Verdict::from_ledgers(&[a.clone(), b.clone()]).holds());
        assert!(!b.receive(1, &last.key_data()));
        let v = Verdict::from_ledgers(&[a, b]);
        assert_eq!((v.lost, v.duplicates), (0, 1));
        assert!(!v.holds());
    }
}
