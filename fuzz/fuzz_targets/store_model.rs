//! Model-based check of `efgs_store_memory::MemoryStore` through the `efgs_core::store` traits
//! (OpenDAL `ReadChecker` idea): an `Arbitrary` sequence of actions (uploads, clock moves,
//! batch cuts, batch reads and lookups, download statistics, retention) runs against the store
//! and against a small reference model written from the trait contracts; every answer must
//! equal the model's. Time comes only from the input (a fixed base plus `Advance` steps, which
//! may go backwards).
//!
//! The model: uploads identified by (country, tag), answered `BatchTagExists` or replayed by
//! content digest; duplicate key hashes (stored or repeated in the upload) refuse the whole
//! upload with every index listed; non-empty uploads are pending in upload order; a cut takes
//! the leading pending uploads greedily (never mixing formats, never splitting) and gets the
//! dense tag `yyyyMMdd-N` of `max(now, latest batch)`; the previous batch links to it; batch
//! keys come in upload then key order without the excluded uploader's; retention deletes whole
//! uploads older than the cutoff and frees their tags and hashes.
#![no_main]

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::task::{Context, Poll, Waker};

use arbitrary::Arbitrary;
use efgs_core::DiagnosisKey;
use efgs_core::cert::Thumbprint;
use efgs_core::model::FormatVersion;
use efgs_core::store::{
    AuditGroup, BatchInfo, BatchStore, CleanupReport, CreatedBatch, DownloadStat, KeyConflicts,
    KeyCounts, KeyStore, NewKey, NewUpload, PendingSummary, RetentionStore, StatsStore,
    StoreInspect, UploadInfo, UploadOutcome, UploadReceipt, UploadStat, UploadStore,
};
use efgs_core::tag::BatchTag;
use efgs_store_memory::MemoryStore;
use libfuzzer_sys::fuzz_target;
use time::{Duration, OffsetDateTime};

const COUNTRIES: [&str; 3] = ["DE", "FR", "NL"];
/// 2026-11-28T10:00:00Z.
const BASE_UNIX: i64 = 1_796_464_800;
const MAX_ACTIONS: usize = 64;
const MAX_KEYS_PER_UPLOAD: usize = 12;
/// Key ids are taken modulo this, so duplicates are frequent.
const KEY_IDS: u8 = 32;
const TWO_DAYS: i64 = 2 * 86_400;

#[derive(Arbitrary, Debug)]
enum Action {
    /// An upload of the keys with these ids by `COUNTRIES[country % 3]` under tag
    /// `t{tag % 6}`, format 1.1 if `minor` else 1.0, content digest `[content % 4; 32]`.
    Upload {
        country: u8,
        tag: u8,
        keys: Vec<u8>,
        minor: bool,
        content: u8,
    },
    /// Moves the clock by `seconds` (within ±2 days, backwards too) and sets the nanoseconds.
    Advance { seconds: i32, nanos: u32 },
    /// `create_next_batch(now, max_keys % 8)`.
    Cut { max_keys: u8 },
    /// `batch_keys` and `audit_groups` of a known batch (or an unknown tag).
    ReadBatch { batch: u8, exclude: Option<u8> },
    /// `batch_by_tag`, and `upload_info` of one (country, tag).
    Lookup { batch: u8, country: u8, tag: u8 },
    /// `first_batch_at_or_after(now - back)`.
    FirstAtOrAfter { back: u32 },
    /// `record_download` of a batch (or an unknown tag) at `now`.
    RecordDownload { country: u8, batch: u8, keys: u8 },
    /// The three statistics readers with `since = now - back`.
    ReadStats { back: u32 },
    /// `delete_keys_before(now - back, now)`.
    Retention { back: u32 },
}

/// Polls a future that never waits (the memory store does not await anything) to completion.
fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a MemoryStore method returned Pending"),
    }
}

/// Store precision: whole microseconds, toward the past (all instants here are after 1970).
fn micros(t: OffsetDateTime) -> OffsetDateTime {
    let n = t.nanosecond();
    t.replace_nanosecond(n - n % 1000)
        .expect("valid nanosecond")
}

fn back(now: OffsetDateTime, seconds: u32) -> OffsetDateTime {
    now - Duration::seconds(i64::from(seconds) % (2 * TWO_DAYS))
}

fn key(id: u8) -> DiagnosisKey {
    DiagnosisKey {
        key_data: [id; 16].into(),
        rolling_start_interval_number: 2_900_000 + u32::from(id),
        rolling_period: 144,
        transmission_risk_level: i32::from(id % 8),
        visited_countries: vec!["DE".into(), "FR".into()].into(),
        // The origin differs from the uploader for some keys: exclusion is by uploader.
        origin: COUNTRIES[usize::from(id) % 3].into(),
        report_type: 1,
        days_since_onset_of_symptoms: i32::from(id) - 14,
    }
}

fn country_index(c: &str) -> u8 {
    COUNTRIES.iter().position(|x| *x == c).unwrap_or(0) as u8
}

fn uploader_thumbprint(c: &str) -> Thumbprint {
    Thumbprint::from_digest(&[country_index(c) + 1; 32])
}

fn signing_thumbprint(c: &str) -> Thumbprint {
    Thumbprint::from_digest(&[country_index(c) + 101; 32])
}

#[derive(Debug)]
struct MUpload {
    country: &'static str,
    tag: String,
    keys: Vec<u8>,
    format: FormatVersion,
    created_at: OffsetDateTime,
    digest: [u8; 32],
    signature: String,
    batch: Option<BatchTag>,
    deleted: bool,
}

impl MUpload {
    fn receipt(&self) -> UploadReceipt {
        UploadReceipt {
            country: self.country.to_owned(),
            batch_tag: self.tag.clone(),
            number_of_keys: self.keys.len() as u64,
            created_at: self.created_at,
        }
    }

    fn info(&self) -> UploadInfo {
        UploadInfo {
            country: self.country.to_owned(),
            batch_tag: self.tag.clone(),
            number_of_keys: self.keys.len() as u64,
            format: self.format,
            created_at: self.created_at,
            content_digest: self.digest,
            download_batch: self.batch,
        }
    }
}

#[derive(Debug)]
struct MBatch {
    info: BatchInfo,
    /// Indices into `Model::uploads`, in upload order.
    uploads: Vec<usize>,
}

#[derive(Debug)]
struct Model {
    now: OffsetDateTime,
    uploads: Vec<MUpload>,
    by_tag: BTreeMap<(&'static str, String), usize>,
    hashes: HashSet<u8>,
    pending: Vec<usize>,
    batches: Vec<MBatch>,
    upload_stats: Vec<UploadStat>,
    download_stats: Vec<DownloadStat>,
    cleanups: Vec<CleanupReport>,
}

impl Model {
    fn new() -> Self {
        Model {
            now: OffsetDateTime::from_unix_timestamp(BASE_UNIX).expect("valid base"),
            uploads: Vec::new(),
            by_tag: BTreeMap::new(),
            hashes: HashSet::new(),
            pending: Vec::new(),
            batches: Vec::new(),
            upload_stats: Vec::new(),
            download_stats: Vec::new(),
            cleanups: Vec::new(),
        }
    }

    /// A known batch's tag (by index modulo the count), or a tag no batch has.
    fn pick_tag(&self, b: u8) -> BatchTag {
        match self.batches.len() {
            0 => BatchTag {
                date: self.now.date(),
                seq: 1000 + u32::from(b),
            },
            n => self.batches[usize::from(b) % n].info.tag,
        }
    }

    fn live_keys(&self) -> u64 {
        self.uploads
            .iter()
            .filter(|u| !u.deleted)
            .map(|u| u.keys.len() as u64)
            .sum()
    }

    fn pending_summary(&self) -> PendingSummary {
        PendingSummary {
            uploads: self.pending.len() as u64,
            keys: self
                .pending
                .iter()
                .map(|&i| self.uploads[i].keys.len() as u64)
                .sum(),
            oldest: self
                .pending
                .iter()
                .map(|&i| self.uploads[i].created_at)
                .min(),
        }
    }

    fn key_counts(&self) -> KeyCounts {
        KeyCounts {
            stored: self.live_keys(),
            pending: self.pending_summary().keys,
        }
    }

    fn upload(
        &mut self,
        country: &'static str,
        tag: String,
        ids: Vec<u8>,
        format: FormatVersion,
        digest: [u8; 32],
    ) -> UploadOutcome {
        if let Some(&i) = self.by_tag.get(&(country, tag.clone())) {
            let earlier = &self.uploads[i];
            return if earlier.digest == digest {
                UploadOutcome::Replayed(earlier.receipt())
            } else {
                UploadOutcome::BatchTagExists {
                    country: country.to_owned(),
                    batch_tag: tag,
                }
            };
        }
        let mut seen = HashSet::new();
        let mut conflicts = KeyConflicts::default();
        for (i, id) in ids.iter().enumerate() {
            if self.hashes.contains(id) || !seen.insert(*id) {
                conflicts.conflict.push(i);
            } else {
                conflicts.ok.push(i);
            }
        }
        if !conflicts.conflict.is_empty() {
            return UploadOutcome::DuplicateKeys(conflicts);
        }
        let created_at = micros(self.now);
        self.hashes.extend(ids.iter().copied());
        let index = self.uploads.len();
        let upload = MUpload {
            country,
            signature: format!("sig-{country}-{tag}-{}", digest[0]),
            tag: tag.clone(),
            keys: ids,
            format,
            created_at,
            digest,
            batch: None,
            deleted: false,
        };
        self.upload_stats.push(UploadStat {
            country: country.to_owned(),
            batch_tag: tag.clone(),
            number_of_keys: upload.keys.len() as u64,
            created_at,
        });
        if !upload.keys.is_empty() {
            self.pending.push(index);
        }
        let receipt = upload.receipt();
        self.uploads.push(upload);
        self.by_tag.insert((country, tag), index);
        UploadOutcome::Stored(receipt)
    }

    fn cut(&mut self, max_keys: usize) -> Option<CreatedBatch> {
        let first = *self.pending.first()?;
        let format = self.uploads[first].format;
        let (mut taken, mut total) = (0usize, 0usize);
        for &i in &self.pending {
            let u = &self.uploads[i];
            if u.format != format || (taken > 0 && total + u.keys.len() > max_keys) {
                break;
            }
            total += u.keys.len();
            taken += 1;
            if total >= max_keys {
                break;
            }
        }
        let claimed: Vec<usize> = self.pending.drain(..taken).collect();
        let latest = self.batches.last().map(|b| b.info.created_at);
        let t = latest.map_or(micros(self.now), |l| l.max(micros(self.now)));
        let seq = 1 + self
            .batches
            .iter()
            .filter(|b| b.info.tag.date == t.date())
            .count();
        let tag = BatchTag {
            date: t.date(),
            seq: u32::try_from(seq).expect("few batches"),
        };
        let previous = self.batches.last_mut().map(|b| {
            b.info.link = Some(tag);
            b.info.tag
        });
        for &i in &claimed {
            self.uploads[i].batch = Some(tag);
        }
        let info = BatchInfo {
            tag,
            created_at: t,
            link: None,
            number_of_keys: total as u64,
        };
        self.batches.push(MBatch {
            info: info.clone(),
            uploads: claimed,
        });
        Some(CreatedBatch {
            batch: info,
            previous,
            uploads: taken as u64,
        })
    }

    /// (uploader, key) of a batch, in upload then key order; deleted uploads are gone.
    fn batch_keys(&self, tag: &BatchTag) -> Vec<(&'static str, DiagnosisKey)> {
        self.batches
            .iter()
            .filter(|b| b.info.tag == *tag)
            .flat_map(|b| &b.uploads)
            .map(|&i| &self.uploads[i])
            .filter(|u| !u.deleted)
            .flat_map(|u| u.keys.iter().map(|&id| (u.country, key(id))))
            .collect()
    }

    fn audit_groups(&self, tag: &BatchTag) -> Vec<AuditGroup> {
        self.batches
            .iter()
            .filter(|b| b.info.tag == *tag)
            .flat_map(|b| &b.uploads)
            .map(|&i| &self.uploads[i])
            .filter(|u| !u.deleted && !u.keys.is_empty())
            .map(|u| AuditGroup {
                country: u.country.to_owned(),
                batch_tag: u.tag.clone(),
                uploaded_at: u.created_at,
                uploader_thumbprint: uploader_thumbprint(u.country),
                signing_thumbprint: signing_thumbprint(u.country),
                batch_signature: u.signature.clone(),
                amount: u.keys.len() as u64,
            })
            .collect()
    }

    fn retention(&mut self, cutoff: OffsetDateTime) -> CleanupReport {
        let cutoff = micros(cutoff);
        let keys_before = self.live_keys();
        let mut deleted = 0;
        for (i, u) in self.uploads.iter_mut().enumerate() {
            if u.deleted || u.created_at >= cutoff {
                continue;
            }
            u.deleted = true;
            deleted += u.keys.len() as u64;
            self.by_tag.remove(&(u.country, u.tag.clone()));
            for id in &u.keys {
                self.hashes.remove(id);
            }
            self.pending.retain(|&p| p != i);
        }
        let report = CleanupReport {
            ran_at: micros(self.now),
            cutoff,
            deleted,
            keys_before,
            keys_after: keys_before - deleted,
        };
        self.cleanups.push(report);
        report
    }
}

fn run(actions: &[Action]) {
    let store = MemoryStore::new();
    let mut m = Model::new();
    for action in actions.iter().take(MAX_ACTIONS) {
        match action {
            Action::Upload {
                country,
                tag,
                keys,
                minor,
                content,
            } => {
                let country = COUNTRIES[usize::from(*country) % 3];
                let tag = format!("t{}", tag % 6);
                let ids: Vec<u8> = keys
                    .iter()
                    .take(MAX_KEYS_PER_UPLOAD)
                    .map(|k| k % KEY_IDS)
                    .collect();
                let format = FormatVersion {
                    major: 1,
                    minor: u16::from(*minor),
                };
                let digest = [content % 4; 32];
                let upload = NewUpload {
                    country: country.to_owned(),
                    batch_tag: tag.clone(),
                    batch_signature: format!("sig-{country}-{tag}-{}", digest[0]),
                    uploader_thumbprint: uploader_thumbprint(country),
                    signing_thumbprint: signing_thumbprint(country),
                    format,
                    created_at: m.now,
                    content_digest: digest,
                    keys: ids
                        .iter()
                        .map(|&id| NewKey {
                            key: key(id),
                            hash: [id; 32],
                        })
                        .collect(),
                };
                let got = block_on(store.insert_upload(upload)).expect("insert_upload");
                let want = m.upload(country, tag.clone(), ids, format, digest);
                assert_eq!(got, want, "insert_upload");
                let info = block_on(store.upload_info(country, &tag)).expect("upload_info");
                let want = m.by_tag.get(&(country, tag)).map(|&i| m.uploads[i].info());
                assert_eq!(info, want);
            }
            Action::Advance { seconds, nanos } => {
                m.now += Duration::seconds(i64::from(*seconds) % TWO_DAYS);
                m.now = m
                    .now
                    .replace_nanosecond(nanos % 1_000_000_000)
                    .expect("valid nanosecond");
            }
            Action::Cut { max_keys } => {
                let max_keys = usize::from(max_keys % 8);
                let got = block_on(store.create_next_batch(m.now, max_keys)).expect("cut");
                assert_eq!(got, m.cut(max_keys), "create_next_batch({max_keys})");
            }
            Action::ReadBatch { batch, exclude } => {
                let tag = m.pick_tag(*batch);
                let exclude = exclude.map(|c| COUNTRIES[usize::from(c) % 3]);
                let got = block_on(store.batch_keys(&tag, exclude)).expect("batch_keys");
                let all = m.batch_keys(&tag);
                // Exclusion is by uploader, not by the key's origin.
                let want: Vec<DiagnosisKey> = all
                    .into_iter()
                    .filter(|(uploader, _)| Some(*uploader) != exclude)
                    .map(|(_, k)| k)
                    .collect();
                assert_eq!(got, want, "batch_keys({tag}, {exclude:?})");
                let groups = block_on(store.audit_groups(&tag)).expect("audit_groups");
                assert_eq!(groups, m.audit_groups(&tag), "audit_groups({tag})");
            }
            Action::Lookup {
                batch,
                country,
                tag,
            } => {
                let t = m.pick_tag(*batch);
                let got = block_on(store.batch_by_tag(&t)).expect("batch_by_tag");
                let want = m
                    .batches
                    .iter()
                    .find(|b| b.info.tag == t)
                    .map(|b| b.info.clone());
                assert_eq!(got, want, "batch_by_tag({t})");
                let country = COUNTRIES[usize::from(*country) % 3];
                let tag = format!("t{}", tag % 6);
                let info = block_on(store.upload_info(country, &tag)).expect("upload_info");
                let want = m.by_tag.get(&(country, tag)).map(|&i| m.uploads[i].info());
                assert_eq!(info, want);
            }
            Action::FirstAtOrAfter { back: b } => {
                let instant = back(m.now, *b);
                let got = block_on(store.first_batch_at_or_after(instant)).expect("first");
                let threshold = micros(instant);
                let want = m
                    .batches
                    .iter()
                    .find(|b| b.info.created_at >= threshold)
                    .map(|b| b.info.clone());
                assert_eq!(got, want, "first_batch_at_or_after({instant})");
            }
            Action::RecordDownload {
                country,
                batch,
                keys,
            } => {
                let stat = DownloadStat {
                    country: COUNTRIES[usize::from(*country) % 3].to_owned(),
                    batch_tag: m.pick_tag(*batch),
                    number_of_keys: u64::from(*keys),
                    requested_at: m.now,
                };
                block_on(store.record_download(stat.clone())).expect("record_download");
                m.download_stats.push(DownloadStat {
                    requested_at: micros(m.now),
                    ..stat
                });
            }
            Action::ReadStats { back: b } => {
                let since = back(m.now, *b);
                let threshold = micros(since);
                let got = block_on(store.download_stats(since)).expect("download_stats");
                let want: Vec<DownloadStat> = m
                    .download_stats
                    .iter()
                    .filter(|s| s.requested_at >= threshold)
                    .cloned()
                    .collect();
                assert_eq!(got, want, "download_stats({since})");
                let got = block_on(store.upload_stats(since)).expect("upload_stats");
                let want: Vec<UploadStat> = m
                    .upload_stats
                    .iter()
                    .filter(|s| s.created_at >= threshold)
                    .cloned()
                    .collect();
                assert_eq!(got, want, "upload_stats({since})");
                let got = block_on(store.cleanup_stats(since)).expect("cleanup_stats");
                let want: Vec<CleanupReport> = m
                    .cleanups
                    .iter()
                    .filter(|c| c.ran_at >= threshold)
                    .copied()
                    .collect();
                assert_eq!(got, want, "cleanup_stats({since})");
            }
            Action::Retention { back: b } => {
                let cutoff = back(m.now, *b);
                let got =
                    block_on(store.delete_keys_before(cutoff, m.now)).expect("delete_keys_before");
                assert_eq!(got, m.retention(cutoff), "delete_keys_before({cutoff})");
            }
        }
        // After every step: the summaries agree.
        let pending = block_on(store.pending_summary()).expect("pending_summary");
        assert_eq!(pending, m.pending_summary(), "pending_summary");
        let counts = block_on(store.key_counts()).expect("key_counts");
        assert_eq!(counts, m.key_counts(), "key_counts");
        let latest = block_on(store.latest_batch()).expect("latest_batch");
        assert_eq!(
            latest,
            m.batches.last().map(|b| b.info.clone()),
            "latest_batch"
        );
    }
    // At the end: every batch, its metadata (links included) and keys.
    for b in &m.batches {
        let tag = b.info.tag;
        let got = block_on(store.batch_by_tag(&tag)).expect("batch_by_tag");
        assert_eq!(
            got.as_ref(),
            Some(&b.info),
            "batch_by_tag({tag}) at the end"
        );
        let got = block_on(store.batch_keys(&tag, None)).expect("batch_keys");
        let want: Vec<DiagnosisKey> = m.batch_keys(&tag).into_iter().map(|(_, k)| k).collect();
        assert_eq!(got, want, "batch_keys({tag}) at the end");
    }
    // Tags are dense per day, in creation order.
    for pair in m.batches.windows(2) {
        let (a, b) = (&pair[0].info, &pair[1].info);
        assert!(a.created_at <= b.created_at);
        if a.tag.date == b.tag.date {
            assert_eq!(b.tag.seq, a.tag.seq + 1);
        } else {
            assert!(a.tag.date < b.tag.date && b.tag.seq == 1);
        }
    }
}

fuzz_target!(|actions: Vec<Action>| {
    run(&actions);
});
