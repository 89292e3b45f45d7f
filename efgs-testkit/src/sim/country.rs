//! One simulated national backend inside a run: its upload habits, its key sequence, its
//! download cursor and its [`Ledger`].

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use efgs_core::DiagnosisKey;
use efgs_core::batch_signature::BatchSigner;
use efgs_core::canonical::canonical_batch_bytes;
use efgs_core::media::BodyFormat;
use efgs_core::tag::BatchTag;
use efgs_core::trust::TrustAnchors;
use sha2::{Digest, Sha256};
use time::{Date, OffsetDateTime};

use super::ledger::{KeyId, Ledger};
use super::link::{Audited, Link, Served, UploadAnswer};
use crate::pki::CountryCredentials;

/// How a country mints its upload `batchTag`s (clients.md §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TagStyle {
    /// CWA/CH: `2020-9-1-Ab3+/w==-0`.
    Cwa,
    /// NL: 64 hex characters derived from the content.
    Nl,
    /// ES: `ES-202011051230-a1B2-0`.
    Es,
    /// IT: `20201105-3`.
    It,
    /// FI: `20201105-fi-17`.
    Fi,
    /// CZ: `20201105-1a2b3c4`.
    Cz,
    /// DK: milliseconds since the epoch.
    Dk,
    /// IE/MT: a short number.
    Ie,
}

impl TagStyle {
    const ALL: [TagStyle; 8] = [
        TagStyle::Cwa,
        TagStyle::Nl,
        TagStyle::Es,
        TagStyle::It,
        TagStyle::Fi,
        TagStyle::Cz,
        TagStyle::Dk,
        TagStyle::Ie,
    ];
}

/// A country's upload and download habits.
#[derive(Clone, Debug)]
pub struct Habit {
    /// How tags look.
    pub tag_style: TagStyle,
    /// Smallest and largest upload (keys).
    pub batch_size: (usize, usize),
    /// Upload body format.
    pub upload_format: BodyFormat,
    /// Download `Accept`.
    pub download_format: BodyFormat,
}

impl Habit {
    /// The habit of the country at `index`: tag styles, batch sizes (CWA 140-4000, ES up to
    /// 5000, FI 200-5000, CH up to 4000, IE up to 1000) and formats rotate through the
    /// federation, capped to `max_batch`.
    pub fn for_index(index: usize, max_batch: usize) -> Habit {
        let tag_style = TagStyle::ALL[index % TagStyle::ALL.len()];
        let (lo, hi) = match tag_style {
            TagStyle::Cwa => (140, 4000),
            TagStyle::Es => (1000, 5000),
            TagStyle::Fi => (200, 5000),
            TagStyle::Ie => (140, 1000),
            _ => (500, 5000),
        };
        let hi = hi.min(max_batch).max(1);
        let lo = lo.min(hi);
        // IE, CZ, DK download JSON; the rest protobuf. Uploads: every third country JSON.
        let download_format = if matches!(tag_style, TagStyle::Ie | TagStyle::Cz | TagStyle::Dk) {
            BodyFormat::Json
        } else {
            BodyFormat::Protobuf
        };
        let upload_format = if index % 3 == 2 {
            BodyFormat::Json
        } else {
            BodyFormat::Protobuf
        };
        Habit {
            tag_style,
            batch_size: (lo, hi),
            upload_format,
            download_format,
        }
    }
}

/// Client-side faults, as rates in `0.0..=1.0` per upload.
#[derive(Clone, Debug, Default)]
pub struct ClientFaults {
    /// The first attempt is dropped mid-upload (HTTP: the connection is closed after a few
    /// milliseconds, whatever the gateway did); the client retries with the same tag.
    pub drop_rate: f64,
    /// After a 201, the same upload is sent again under the same tag (expects 201 replay).
    pub replay_rate: f64,
    /// An upload also carries a few keys already acknowledged (expects 207, then the client
    /// re-sends the new keys in a new batch, as CWA does).
    pub duplicate_rate: f64,
}

/// Counters the engine reads while countries run (progress bar, drain, timeline).
#[derive(Debug)]
pub struct Shared {
    /// Keys acknowledged, per country index.
    pub acked: Vec<AtomicU64>,
    /// Distinct keys received, per country index.
    pub received: Vec<AtomicU64>,
    /// Upload batch sizes sent (for the chart).
    pub upload_sizes: std::sync::Mutex<Vec<u32>>,
    /// Download batch sizes as read (for the chart).
    pub download_sizes: std::sync::Mutex<Vec<u32>>,
}

impl Shared {
    /// Counters for `n` countries.
    pub fn new(n: usize) -> Self {
        Shared {
            acked: (0..n).map(|_| AtomicU64::new(0)).collect(),
            received: (0..n).map(|_| AtomicU64::new(0)).collect(),
            upload_sizes: std::sync::Mutex::default(),
            download_sizes: std::sync::Mutex::default(),
        }
    }

    /// Total keys acknowledged.
    pub fn acked_total(&self) -> u64 {
        self.acked.iter().map(|a| a.load(Ordering::Relaxed)).sum()
    }

    /// Total distinct keys received.
    pub fn received_total(&self) -> u64 {
        self.received
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .sum()
    }

    /// Whether every country received every key the others had acknowledged so far.
    pub fn complete(&self) -> bool {
        let total = self.acked_total();
        self.acked
            .iter()
            .zip(&self.received)
            .all(|(a, r)| r.load(Ordering::Relaxed) >= total - a.load(Ordering::Relaxed))
    }
}

/// A simulated country in a run.
pub struct Country {
    /// Its credentials.
    pub creds: Arc<CountryCredentials>,
    signer: Arc<BatchSigner>,
    /// Its habits.
    pub habit: Habit,
    /// Its ledger.
    pub ledger: Ledger,
    run: u32,
    next_seq: u32,
    uploads: u64,
    rng: u64,
    visited: Arc<Vec<String>>,
    faults: ClientFaults,
    /// The last acknowledged upload's keys (for the duplicate fault).
    last_acked: Vec<DiagnosisKey>,
    /// Keys owed (accumulated, not yet uploaded).
    pub owed: usize,
    first_date: Date,
    cursor: Option<String>,
    /// Where a poll stopped by its limit goes on.
    resume: Option<String>,
    seen: HashSet<String>,
    audit_every: u64,
    anchors: Arc<TrustAnchors>,
    shared: Arc<Shared>,
    retry_pause: Duration,
    max_attempts: u32,
}

impl std::fmt::Debug for Country {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Country")
            .field("country", &self.creds.country)
            .finish_non_exhaustive()
    }
}

fn splitmix(z: &mut u64) -> u64 {
    *z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut x = *z;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Settings of a country in a run.
#[derive(Clone, Debug)]
pub struct CountrySetup {
    /// The run id carried in every key.
    pub run: u32,
    /// The seed of the run.
    pub seed: u64,
    /// Countries listed as visited in every key.
    pub visited: Arc<Vec<String>>,
    /// Client faults.
    pub faults: ClientFaults,
    /// The date downloading starts from.
    pub first_date: Date,
    /// Audit every n-th batch read (1 = all, 0 = none).
    pub audit_every: u64,
    /// The federation's trust anchors (for the audit's operator signatures).
    pub anchors: Arc<TrustAnchors>,
    /// Pause between retries.
    pub retry_pause: Duration,
    /// Most attempts per upload.
    pub max_attempts: u32,
    /// Largest upload.
    pub max_batch: usize,
}

/// Why a country could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("{country}: {source}")]
pub struct SetupError {
    country: String,
    #[source]
    source: efgs_core::batch_signature::SignatureError,
}

impl Country {
    /// A country at `index` with `creds`.
    pub fn new(
        index: u16,
        creds: Arc<CountryCredentials>,
        setup: &CountrySetup,
        shared: Arc<Shared>,
    ) -> Result<Country, SetupError> {
        let signer =
            BatchSigner::from_pem(&creds.sign_cert_pem, &creds.sign_key_pem).map_err(|source| {
                SetupError {
                    country: creds.country.clone(),
                    source,
                }
            })?;
        Ok(Country {
            ledger: Ledger::new(&creds.country, index),
            signer: Arc::new(signer),
            habit: Habit::for_index(usize::from(index), setup.max_batch),
            creds,
            run: setup.run,
            next_seq: 0,
            uploads: 0,
            rng: setup.seed ^ (u64::from(index) << 32) ^ 0x5eed,
            visited: setup.visited.clone(),
            faults: setup.faults.clone(),
            last_acked: Vec::new(),
            owed: 0,
            first_date: setup.first_date,
            cursor: None,
            resume: None,
            seen: HashSet::new(),
            audit_every: setup.audit_every,
            anchors: setup.anchors.clone(),
            shared,
            retry_pause: setup.retry_pause,
            max_attempts: setup.max_attempts,
        })
    }

    /// The country code.
    pub fn code(&self) -> &str {
        &self.creds.country
    }

    fn chance(&mut self, rate: f64) -> bool {
        rate > 0.0 && (splitmix(&mut self.rng) >> 11) as f64 / (1u64 << 53) as f64 <= rate
    }

    /// A batch size drawn from the habit.
    pub fn next_batch_size(&mut self) -> usize {
        let (lo, hi) = self.habit.batch_size;
        lo + (splitmix(&mut self.rng) % (hi - lo + 1) as u64) as usize
    }

    /// `n` new keys valid at `now`.
    fn make_keys(&mut self, n: usize, now: OffsetDateTime) -> Vec<DiagnosisKey> {
        let utc = now.to_offset(time::UtcOffset::UTC);
        let midnight = utc.replace_time(time::Time::MIDNIGHT).unix_timestamp() / 600;
        (0..n)
            .map(|_| {
                let id = KeyId {
                    run: self.run,
                    origin: self.ledger.index,
                    seq: self.next_seq,
                };
                self.next_seq += 1;
                let r = splitmix(&mut self.rng);
                let day = (r % 14) as i64;
                DiagnosisKey {
                    key_data: id.key_data().to_vec().into(),
                    rolling_start_interval_number: u32::try_from(midnight - day * 144).unwrap_or(0),
                    rolling_period: 144,
                    transmission_risk_level: ((r >> 8) % 9) as i32,
                    visited_countries: self.visited.iter().map(Into::into).collect(),
                    origin: self.creds.country.as_str().into(),
                    report_type: efgs_core::ReportType::ConfirmedTest as i32,
                    days_since_onset_of_symptoms: ((r >> 16) % 29) as i32 - 14,
                }
            })
            .collect()
    }

    fn mint_tag(&mut self, now: OffsetDateTime, body: &[u8]) -> String {
        self.uploads += 1;
        let n = self.uploads;
        let run = self.run;
        let d = now.date();
        let ymd = format!("{:04}{:02}{:02}", d.year(), u8::from(d.month()), d.day());
        let c = self.creds.country.clone();
        match self.habit.tag_style {
            TagStyle::Cwa => format!(
                "{}-{}-{}-{:08x}+/{:x}==-{n}",
                d.year(),
                u8::from(d.month()),
                d.day(),
                run,
                n % 7
            ),
            TagStyle::Nl => {
                let mut h = Sha256::new();
                h.update(run.to_be_bytes());
                h.update(n.to_be_bytes());
                h.update(body);
                hex::encode(h.finalize())
            }
            TagStyle::Es => format!(
                "{c}-{ymd}{:02}{:02}-{:08x}-{n}",
                now.hour(),
                now.minute(),
                run
            ),
            TagStyle::It => format!("{ymd}-{run:x}{n}"),
            TagStyle::Fi => format!("{ymd}-{}-{run:x}-{n}", c.to_ascii_lowercase()),
            TagStyle::Cz => format!("{ymd}-{run:08x}{n:x}"),
            TagStyle::Dk => format!(
                "{}{:06}",
                (now.unix_timestamp_nanos() / 1_000_000) as i64,
                (u64::from(run) * 1000 + n) % 1_000_000
            ),
            TagStyle::Ie => format!("{}", u64::from(run % 100_000) * 1_000_000 + n),
        }
    }

    /// Uploads `n` new keys at the link's time (with the configured faults and retries);
    /// returns whether they were acknowledged.
    pub async fn upload(&mut self, link: &dyn Link, n: usize) -> bool {
        if n == 0 {
            return true;
        }
        let now = link.now();
        let keys = self.make_keys(n, now);
        if !self.last_acked.is_empty() && self.chance(self.faults.duplicate_rate) {
            // A batch that repeats a few acknowledged keys: 207, nothing stored.
            let mut with_dups = keys.clone();
            let repeat: Vec<DiagnosisKey> = self.last_acked.iter().take(3).cloned().collect();
            with_dups.extend(repeat.iter().cloned());
            self.ledger.sent += with_dups.len() as u64;
            match self.send(link, &with_dups, now, false).await {
                Some(UploadAnswer::Duplicates) => {
                    self.ledger.refused_as_duplicate += repeat.len() as u64;
                    self.ledger.sent -= keys.len() as u64; // sent again below
                }
                Some(UploadAnswer::Accepted) => {
                    self.ledger.errors += 1;
                    self.ledger
                        .problems
                        .push("an upload repeating acknowledged keys was accepted".to_owned());
                    self.ack(&with_dups);
                    return true;
                }
                _ => {}
            }
        }
        self.ledger.sent += keys.len() as u64;
        let replay = self.chance(self.faults.replay_rate);
        match self.send(link, &keys, now, replay).await {
            Some(UploadAnswer::Accepted) => {
                self.ack(&keys);
                self.last_acked = keys;
                true
            }
            _ => false,
        }
    }

    fn ack(&mut self, keys: &[DiagnosisKey]) {
        let mut fresh = 0;
        for k in keys {
            if let Some(id) = KeyId::parse(&k.key_data)
                && id.origin == self.ledger.index
                && self.ledger.acked.insert(id.seq)
            {
                fresh += 1;
            }
        }
        self.ledger.acked_uploads += 1;
        self.shared.acked[usize::from(self.ledger.index)].fetch_add(fresh, Ordering::Relaxed);
    }

    /// Sends one upload until it gets a definite answer; `None` when it never did.
    async fn send(
        &mut self,
        link: &dyn Link,
        keys: &[DiagnosisKey],
        now: OffsetDateTime,
        replay: bool,
    ) -> Option<UploadAnswer> {
        let format = self.habit.upload_format;
        let signature = match self.signer.sign(&canonical_batch_bytes(keys), now) {
            Ok(s) => s,
            Err(e) => {
                self.ledger.errors += 1;
                self.ledger.problems.push(format!("signing: {e}"));
                return None;
            }
        };
        let body = bytes::Bytes::from(crate::national::encode_body(keys, format));
        if let Ok(mut s) = self.shared.upload_sizes.lock() {
            s.push(keys.len() as u32);
        }
        let mut tag = self.mint_tag(now, &body);
        let mut drop_first = self.chance(self.faults.drop_rate);
        let mut fresh_tag = true;
        for attempt in 0..self.max_attempts {
            self.ledger.upload_requests += 1;
            let abort = drop_first.then_some(Duration::from_millis(2));
            drop_first = false;
            match link
                .upload(self.code(), &tag, &signature, format, body.clone(), abort)
                .await
            {
                Ok(UploadAnswer::TagTaken) if fresh_tag => {
                    // Another run (or country habit) used the tag: mint another.
                    tag = self.mint_tag(now, &body);
                }
                Ok(UploadAnswer::Accepted) => {
                    if replay {
                        self.ledger.upload_requests += 1;
                        match link
                            .upload(self.code(), &tag, &signature, format, body.clone(), None)
                            .await
                        {
                            Ok(UploadAnswer::Accepted) | Err(_) => {}
                            Ok(other) => {
                                self.ledger.errors += 1;
                                self.ledger
                                    .problems
                                    .push(format!("replay of {tag} answered {other:?}"));
                            }
                        }
                    }
                    return Some(UploadAnswer::Accepted);
                }
                Ok(answer) => {
                    if !matches!(answer, UploadAnswer::Duplicates) {
                        self.ledger.errors += 1;
                        self.ledger
                            .problems
                            .push(format!("upload {tag} answered {answer:?}"));
                    }
                    return Some(answer);
                }
                Err(_) => {
                    // Retry the same bytes under the same tag (idempotent replay).
                    fresh_tag = false;
                    self.ledger.errors += 1;
                    if !self.retry_pause.is_zero() {
                        tokio::time::sleep(self.retry_pause * (attempt + 1).min(10)).await;
                    }
                }
            }
        }
        self.ledger.problems.push(format!(
            "upload {tag}: no answer after {} attempts",
            self.max_attempts
        ));
        None
    }

    /// Reads every batch not read yet, following `nextBatchTag` from the first batch of the
    /// start date (or from the last batch read, fetched again for its link, as IE, NL, DK and
    /// CH do); audits every `audit_every`-th new batch. Returns the new batches read.
    pub async fn poll(&mut self, link: &dyn Link) -> u64 {
        self.poll_at_most(link, u64::MAX).await
    }

    /// [`Self::poll`], returning after `limit` new batches (the next call goes on from the
    /// `nextBatchTag` of the last one), so a caller sharing the country with an uploader can
    /// let it in between.
    pub async fn poll_at_most(&mut self, link: &dyn Link, limit: u64) -> u64 {
        let format = self.habit.download_format;
        let mut read = 0;
        let resume = self.resume.take();
        let mut first = resume.is_none() && self.cursor.is_none();
        let mut next: Option<String> = resume.or_else(|| self.cursor.clone());
        loop {
            let date = match &next {
                Some(t) => match BatchTag::parse(t) {
                    Ok(t) => t.date,
                    Err(_) => return read,
                },
                None => self.first_date,
            };
            let answer = link
                .download(self.code(), date, next.as_deref(), format)
                .await;
            let served = match answer {
                Ok(Some(s)) => s,
                Ok(None) => return read,
                Err(_) => {
                    self.ledger.errors += 1;
                    return read;
                }
            };
            if first || !self.seen.contains(&served.tag) {
                first = false;
                read += 1;
                self.take(link, date, &served).await;
            }
            self.cursor = Some(served.tag.clone());
            match served.next {
                Some(n) if read >= limit => {
                    self.resume = Some(n);
                    return read;
                }
                Some(n) => next = Some(n),
                None => return read,
            }
        }
    }

    /// Records a batch read: its keys in the ledger (reading only their `keyData`), and its
    /// audit when it is due (decoding it in full).
    async fn take(&mut self, link: &dyn Link, date: Date, served: &Served) {
        self.seen.insert(served.tag.clone());
        self.ledger.batches_read += 1;
        let audit =
            self.audit_every > 0 && self.ledger.batches_read.is_multiple_of(self.audit_every);
        let run = self.run;
        let mut fresh = 0;
        let (count, keys) = if audit {
            match served.keys() {
                Ok(keys) => {
                    for k in &keys {
                        if self.ledger.receive(run, &k.key_data) {
                            fresh += 1;
                        }
                    }
                    (keys.len() as u64, Some(keys))
                }
                Err(e) => {
                    self.ledger.errors += 1;
                    self.ledger
                        .problems
                        .push(format!("batch {}: {e}", served.tag));
                    (0, None)
                }
            }
        } else {
            let ledger = &mut self.ledger;
            match served.for_each_key_data(|kd| {
                if ledger.receive(run, kd) {
                    fresh += 1;
                }
            }) {
                Ok(n) => (n, None),
                Err(e) => {
                    self.ledger.errors += 1;
                    self.ledger.problems.push(e.to_string());
                    (0, None)
                }
            }
        };
        if let Ok(mut s) = self.shared.download_sizes.lock() {
            s.push(count as u32);
        }
        self.shared.received[usize::from(self.ledger.index)].fetch_add(fresh, Ordering::Relaxed);
        if let Some(keys) = keys {
            self.audit(link, date, &served.tag, &keys).await;
        }
    }

    /// Downloads on callback: reads exactly the batch a notification announced (`batchTag`
    /// and `date`, as CWA does), unless it was read already. Returns whether it was read.
    pub async fn fetch_announced(&mut self, link: &dyn Link, date: &str, tag: &str) -> bool {
        self.ledger.notifications += 1;
        if self.seen.contains(tag) {
            self.ledger.repeated_notifications += 1;
            return false;
        }
        let parsed = time::Date::parse(
            date,
            time::macros::format_description!("[year]-[month]-[day]"),
        );
        let Ok(date) = parsed else {
            self.ledger.errors += 1;
            self.ledger
                .problems
                .push(format!("callback for {tag} with a bad date {date}"));
            return false;
        };
        let format = self.habit.download_format;
        for attempt in 0..self.max_attempts.min(10) {
            match link.download(self.code(), date, Some(tag), format).await {
                Ok(Some(served)) => {
                    self.ledger.read_on_callback += 1;
                    self.take(link, date, &served).await;
                    return true;
                }
                Ok(None) => break,
                Err(_) => {
                    self.ledger.errors += 1;
                    tokio::time::sleep(Duration::from_millis(100) * (attempt + 1)).await;
                }
            }
        }
        self.ledger
            .problems
            .push(format!("announced batch {tag} of {date} could not be read"));
        false
    }

    async fn audit(&mut self, link: &dyn Link, date: Date, tag: &str, keys: &[DiagnosisKey]) {
        // The audit date is the batch's creation day (clients.md §5).
        let date = BatchTag::parse(tag).map(|t| t.date).unwrap_or(date);
        // A transport failure (an instance restarting, say) is retried like an upload.
        let mut answer = link.audit(self.code(), date, tag).await;
        for attempt in 1..5u32 {
            if answer.is_ok() {
                break;
            }
            self.ledger.errors += 1;
            tokio::time::sleep(Duration::from_millis(100) * attempt).await;
            answer = link.audit(self.code(), date, tag).await;
        }
        match answer {
            Ok(Audited::Entries(entries)) => {
                match crate::demo::reverify(self.code(), keys, &entries, &self.anchors, link.now())
                {
                    Ok(n) => self.ledger.audits_passed += n as u64,
                    Err(e) => self.ledger.problems.push(format!("audit {tag}: {e}")),
                }
            }
            Ok(Audited::Status(404, _)) if keys.is_empty() => {}
            Ok(Audited::Status(s, m)) => self.ledger.problems.push(format!("audit {tag}: {s} {m}")),
            Err(e) => {
                self.ledger.errors += 1;
                self.ledger.problems.push(format!("audit {tag}: {e}"));
            }
        }
    }
}
