//! Storage traits: the boundary between the federation rules and a database.
//!
//! A backend implements seven object-safe traits, one per concern, and gets [`Store`] (their
//! union) for free:
//!
//! | trait | concern |
//! |---|---|
//! | [`TrustListStore`] | trust-list entries (certificates, operator signatures, revocation) |
//! | [`UploadStore`] | atomic, all-or-nothing uploads with per-country `batchTag` uniqueness |
//! | [`BatchStore`] | claiming pending uploads into dense `yyyyMMdd-N` download batches |
//! | [`KeyStore`] | a batch's keys for download, and its per-upload audit groups |
//! | [`StatsStore`] | writing download statistics rows (upload rows come with the upload) |
//! | [`RetentionStore`] | deleting old keys and old batch metadata |
//! | [`CallbackStore`] | callback subscriptions and their leased, ordered delivery state |
//!
//! An eighth trait, [`StoreInspect`], reads what the gateway never reads (statistics rows, key
//! counts, the end of the batch chain): the conformance suite, the tests and tools use it
//! through [`InspectableStore`]; the gateway holds only a [`Store`].
//!
//! The protocol rules a store applies are functions of efgs-core, called by every backend:
//! [`UploadOutcome::for_taken_tag`] (the `batchTag` rule), [`KeyConflicts::find`] (the 207
//! rule), [`Upserted::for_stored`] (the trust-list upsert rule: revocation is one-way) and [`crate::batching::plan_batch`] (which uploads form the next batch, its tag and
//! instant). A backend contributes atomicity and persistence, not rules.
//!
//! The server holds an `Arc<`[`DynStore`]`>`. Every trait has forwarding impls for `Arc<T>` and
//! `Box<T>`, so `Arc<MemoryStore>` and `Arc<dyn Store>` are stores too. Constructors are not in
//! the traits: each backend crate has its own (`MemoryStore::new()`, `PgStore::connect(..)`).
//!
//! # Contracts common to every method
//!
//! - **Serialisable.** Every method behaves as if it ran alone, at one instant, between the
//!   calls that completed before it started and those that start after it returned; concurrent
//!   calls behave as if run one at a time in some order. A method either takes full effect or
//!   none (it returns an error and nothing changed).
//! - **Durable acknowledgement.** Once a writing method returned `Ok`, its effect is visible to
//!   every later call, including through a new handle opened on the same storage (a reopened
//!   PostgreSQL pool). A method that returned `Err` had no effect.
//! - **No clock.** Stores never read the clock; every timestamp they record comes in as a
//!   parameter. Stores keep timestamps at **microsecond** precision: every timestamp, stored
//!   or used in a comparison, is first truncated toward the past to whole microseconds
//!   ([`to_store_precision`]); timestamps come back in UTC.
//! - **Upload order.** Each stored upload gets a sequence number when it is stored, increasing
//!   with each stored upload. Pending uploads, a batch's keys and its audit groups follow that
//!   order (then the key position within the upload). Under concurrent inserts the numbers
//!   follow the order in which the inserts took effect, except that a backend may number an
//!   upload before it commits; such an upload simply joins a later batch.
//! - **Outcomes and errors.** The expected results of an upload (stored, replayed, tag already
//!   used, duplicate keys) are [`UploadOutcome`] values returned in `Ok`, those of a
//!   trust-list upsert (inserted, replaced, unchanged, kept revoked, refused for another
//!   country or type) [`Upserted`] values. [`StoreError`] describes storage failures only;
//!   backend-specific errors only appear as its `source`.

use std::collections::HashSet;
use std::fmt::Debug;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::BoxError;
use crate::cert::Thumbprint;
use crate::model::{CertificateType, DiagnosisKey, FormatVersion};
use crate::tag::BatchTag;
pub use crate::trail::{Event as TrailEvent, Record as TrailRecord};

/// The per-key duplicate-detection hash chosen by the caller (decisions item 11: an
/// HMAC-SHA256 over the key's canonical bytes). Stores treat it as opaque and unique.
pub type KeyHash = [u8; 32];

/// The [`BuildHasher`] for sets and maps keyed by [`KeyHash`]: the hashes are already uniformly
/// distributed (HMAC-SHA256 output), so it folds their four words instead of running SipHash
/// over 32 bytes. Not for attacker-chosen keys of any other kind.
#[derive(Clone, Copy, Debug, Default)]
pub struct KeyHashState;

/// The [`Hasher`] of [`KeyHashState`].
#[derive(Debug, Default)]
pub struct KeyHashHasher(u64);

impl BuildHasher for KeyHashState {
    type Hasher = KeyHashHasher;
    fn build_hasher(&self) -> KeyHashHasher {
        KeyHashHasher(0)
    }
}

impl Hasher for KeyHashHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_usize(&mut self, _: usize) {
        // The length prefix of a fixed-size array carries no information.
    }
}

/// A storage failure. Expected protocol outcomes of an upload are not errors: they are
/// [`UploadOutcome`] values.
///
/// Not `#[non_exhaustive]`: the server's status table matches every variant, so a new one
/// cannot compile without a status (ADR 0012).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The record a method must change does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. `"trust-list entry"`.
        what: &'static str,
    },
    /// A uniqueness rule of the storage was violated (for example by a concurrent writer).
    #[error("{what} already exists")]
    AlreadyExists {
        /// What already exists.
        what: &'static str,
    },
    /// The backend cannot be reached right now (pool timeout, connection refused, failover);
    /// retrying later may succeed.
    #[error("storage unavailable")]
    Unavailable {
        /// The backend's error.
        #[source]
        source: BoxError,
    },
    /// The backend failed in a way retrying will not fix (schema mismatch, corrupt row,
    /// undecryptable payload, a bug).
    #[error("{backend} storage failed")]
    Backend {
        /// Which backend, e.g. `"postgres"`.
        backend: &'static str,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
}

impl StoreError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::NotFound { .. } => "not-found",
            StoreError::AlreadyExists { .. } => "already-exists",
            StoreError::Unavailable { .. } => "storage-unavailable",
            StoreError::Backend { .. } => "storage-failed",
        }
    }

    /// Whether the same call may succeed if retried later (only [`StoreError::Unavailable`]).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

/// Per-index outcome of an upload refused for duplicate keys
/// ([`UploadOutcome::DuplicateKeys`]): the body of the 207 answer.
///
/// Every index `0..len()` of the upload (positions as received) is in exactly one of the three
/// lists, each sorted ascending. Nothing of the upload was stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyConflicts {
    /// Keys that would have been stored (`"201"`).
    pub ok: Vec<usize>,
    /// Keys whose hash is already stored, or repeats an earlier key of the same upload
    /// (the earlier one is in `ok`); `"409"`.
    pub conflict: Vec<usize>,
    /// Keys the backend could not store for another reason attributable to that key
    /// (`"500"`). Always empty from [`KeyConflicts::find`]: a failure of the whole upload is a
    /// [`StoreError::Backend`].
    pub failed: Vec<usize>,
}

impl KeyConflicts {
    /// Number of keys in the upload.
    pub fn len(&self) -> usize {
        self.ok.len() + self.conflict.len() + self.failed.len()
    }

    /// Whether the upload had no keys (never the case for a real rejection).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The duplicate rule of an upload (protocol §1.2, the 207 answer), the one implementation
    /// every store calls: the key at index `i` conflicts when its hash is already stored
    /// (`is_stored`) or repeats the hash of an earlier key of the same upload (the earlier one
    /// stays in `ok`). `None` when no key conflicts, so the upload may be stored.
    ///
    /// `is_stored` is asked once per key, in upload order; a store answers from its own state,
    /// read in the same atomic step as the insert that follows.
    pub fn find(hashes: &[KeyHash], mut is_stored: impl FnMut(&KeyHash) -> bool) -> Option<Self> {
        let mut seen: HashSet<&KeyHash, KeyHashState> =
            HashSet::with_capacity_and_hasher(hashes.len(), KeyHashState);
        let mut out = KeyConflicts::default();
        for (i, h) in hashes.iter().enumerate() {
            // Both checks run for every key: `is_stored` sees every hash in order.
            let stored = is_stored(h);
            if !seen.insert(h) || stored {
                out.conflict.push(i);
            } else {
                out.ok.push(i);
            }
        }
        (!out.conflict.is_empty()).then_some(out)
    }
}

// ---------------------------------------------------------------------------------------------
// Trust list
// ---------------------------------------------------------------------------------------------

/// One trust-list row (protocol §10): a certificate of a country, with the trust anchor's
/// operator signature over its PEM text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustEntry {
    /// SHA-256 thumbprint of the certificate's DER; unique across all types.
    pub thumbprint: Thumbprint,
    /// The country the certificate belongs to (two letters).
    pub country: String,
    /// What the certificate may be used for.
    pub cert_type: CertificateType,
    /// The certificate as PEM text, exactly as signed by the trust anchor.
    pub pem: String,
    /// Base64 trust-anchor signature over the exact bytes of `pem`.
    pub signature: String,
    /// Whether the certificate was revoked.
    pub revoked: bool,
    /// When the entry was created or last replaced.
    pub created_at: OffsetDateTime,
}

impl TrustEntry {
    /// The row for a signed trust-list entry, stored at `created_at`.
    pub fn from_entry(entry: &crate::trust::TrustListEntry, created_at: OffsetDateTime) -> Self {
        TrustEntry {
            thumbprint: entry.thumbprint.clone(),
            country: entry.country.clone(),
            cert_type: entry.cert_type,
            pem: entry.pem.clone(),
            signature: entry.signature.clone(),
            revoked: entry.revoked,
            created_at,
        }
    }

    /// The signed entry this row holds (to check it against the trust anchors).
    pub fn to_entry(&self) -> crate::trust::TrustListEntry {
        crate::trust::TrustListEntry {
            country: self.country.clone(),
            cert_type: self.cert_type,
            pem: self.pem.clone(),
            signature: self.signature.clone(),
            thumbprint: self.thumbprint.clone(),
            revoked: self.revoked,
        }
    }
}

/// What [`TrustListStore::upsert_trust_entry`] did with an entry: the outcome of the upsert
/// rule ([`Upserted::for_stored`]). Every variant is an expected outcome, not a failure;
/// storage failures are [`StoreError`]s.
///
/// Not `#[non_exhaustive]`: the import reports every variant, and a new one must not compile
/// without being reported.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum Upserted {
    /// No entry had this thumbprint: the entry was stored as given.
    Inserted,
    /// The entry with this thumbprint (same country and type, not revoked) was replaced: its
    /// PEM, signature and `created_at` are the new ones, and it is revoked if the new entry is.
    Replaced,
    /// The same entry is already stored (same country, type, PEM, signature and revoked
    /// flag): nothing changed, `created_at` included. Importing the same entries again is
    /// idempotent.
    Unchanged,
    /// The stored entry is revoked and the new one is not: the stored entry was left exactly
    /// as it was. Revocation is one-way; only [`TrustListStore::readmit_trust_entry`] clears
    /// it.
    KeptRevoked,
    /// The stored entry with this thumbprint has another country or type: the upsert was
    /// refused and the stored entry left as it was (a certificate cannot change owner or
    /// purpose; it needs a new certificate).
    Conflict {
        /// The stored entry's country.
        country: String,
        /// The stored entry's type.
        cert_type: CertificateType,
    },
}

impl Upserted {
    /// The upsert rule, the one implementation every store calls, in the same atomic step as
    /// the write that follows: what upserting `new` does when `stored` is the entry with the
    /// same thumbprint (if any). The store writes `new` (with `created_at` at store precision)
    /// exactly when the outcome [`Upserted::writes`]; otherwise nothing changes.
    ///
    /// 1. No stored entry: [`Upserted::Inserted`].
    /// 2. Another country or type: [`Upserted::Conflict`] with the stored ones.
    /// 3. The stored entry is revoked: [`Upserted::KeptRevoked`] unless `new` is revoked too
    ///    ([`Upserted::Unchanged`]); a revoked entry is never changed by an upsert.
    /// 4. Same PEM, signature and revoked flag: [`Upserted::Unchanged`].
    /// 5. Otherwise [`Upserted::Replaced`] (a re-signed entry, or `new` revokes it).
    pub fn for_stored(stored: Option<&TrustEntry>, new: &TrustEntry) -> Self {
        let Some(stored) = stored else {
            return Upserted::Inserted;
        };
        if stored.country != new.country || stored.cert_type != new.cert_type {
            return Upserted::Conflict {
                country: stored.country.clone(),
                cert_type: stored.cert_type,
            };
        }
        if stored.revoked {
            return if new.revoked {
                Upserted::Unchanged
            } else {
                Upserted::KeptRevoked
            };
        }
        if stored.pem == new.pem && stored.signature == new.signature && !new.revoked {
            Upserted::Unchanged
        } else {
            Upserted::Replaced
        }
    }

    /// Whether the store writes the new entry ([`Upserted::Inserted`], [`Upserted::Replaced`]).
    pub fn writes(&self) -> bool {
        matches!(self, Upserted::Inserted | Upserted::Replaced)
    }

    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Upserted::Inserted => "inserted",
            Upserted::Replaced => "replaced",
            Upserted::Unchanged => "unchanged",
            Upserted::KeptRevoked => "kept-revoked",
            Upserted::Conflict { .. } => "country-or-type-differs",
        }
    }
}

/// What [`TrustListStore::readmit_trust_entry`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Readmission {
    /// The entry was revoked and is not any more.
    Readmitted,
    /// The entry was not revoked: nothing changed.
    NotRevoked,
}

/// Trust-list entries. Stores keep rows as given; checking the operator signature and the
/// revoked flag is the caller's job (`efgs_core::trust`).
///
/// **Revocation is one-way.** Once an entry is revoked, no upsert clears the flag (whatever
/// the new entry says, however often it is imported, re-signed or not); only
/// [`TrustListStore::readmit_trust_entry`], the operator's explicit command naming the
/// thumbprint, does. A thumbprint never changes country or type.
#[async_trait]
pub trait TrustListStore: Send + Sync + Debug + 'static {
    /// Applies the upsert rule [`Upserted::for_stored`] to `entry` and the stored entry with
    /// the same thumbprint, atomically (a concurrent revocation is never lost): inserts it,
    /// replaces the stored one, or leaves the stored one as it was, and returns which.
    /// Thumbprints are unique across types.
    async fn upsert_trust_entry(&self, entry: TrustEntry) -> Result<Upserted, StoreError>;

    /// The entry with this thumbprint, revoked or not; `None` if there is none.
    async fn trust_entry(&self, thumbprint: &Thumbprint) -> Result<Option<TrustEntry>, StoreError>;

    /// Marks the entry revoked (idempotent). [`StoreError::NotFound`] if there is no entry
    /// with this thumbprint.
    async fn revoke_trust_entry(&self, thumbprint: &Thumbprint) -> Result<(), StoreError>;

    /// Clears the revoked flag of the entry (the operator's `trust-list readmit`), changing
    /// nothing else; [`Readmission::NotRevoked`] (and no change) when it was not revoked.
    /// [`StoreError::NotFound`] if there is no entry with this thumbprint.
    async fn readmit_trust_entry(&self, thumbprint: &Thumbprint)
    -> Result<Readmission, StoreError>;

    /// All entries, revoked ones included, ordered by country, then type name
    /// ([`CertificateType::as_str`]: `AUTHENTICATION` < `CALLBACK` < `SIGNING`), then
    /// thumbprint (byte-wise, as with SQL `COLLATE "C"`).
    async fn list_trust_entries(&self) -> Result<Vec<TrustEntry>, StoreError>;

    /// The trust list's change stamp (see [`STAMP_LAG`]): `Some(s)` where `s` changes
    /// whenever an entry is inserted, replaced, revoked, re-admitted or deleted, through any
    /// handle on the same data. `None` (the default): the store keeps no stamp, and the
    /// gateway reads the trust list on every request.
    async fn trust_list_stamp(&self) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }
}

/// How long a change written through one store handle may take to change the stamps
/// ([`TrustListStore::trust_list_stamp`], [`BatchStore::batch_stamp`]) another handle on the
/// same data returns: one second.
///
/// The stamp contract, for both stamps: a change written through a handle changes the stamp
/// that handle returns at once (the next call after the write returns a different value);
/// written through another handle (another instance, the operator's command), within
/// `STAMP_LAG`. A handle that cannot tell (its database is unreachable for longer) returns an
/// error instead of an old stamp. When a call returned `Some(s)`, every read through the
/// same handle that starts afterwards sees at least the data that stamp stands for. Stamps
/// never repeat an earlier value on one handle (they grow). So a reader may keep what it read
/// while the stamp stays the same (`efgs_core::gateway` does, for authentication and the
/// batch rows of downloads) and still see every change within `STAMP_LAG`.
pub const STAMP_LAG: std::time::Duration = std::time::Duration::from_secs(1);

/// Helpers over [`TrustListStore`], implemented for every store.
#[async_trait]
pub trait TrustListStoreExt: TrustListStore {
    /// The entry with this thumbprint if it also has this country and type (revoked or not):
    /// the reference's lookup by (thumbprint, country, type).
    async fn trust_entry_for(
        &self,
        thumbprint: &Thumbprint,
        country: &str,
        cert_type: CertificateType,
    ) -> Result<Option<TrustEntry>, StoreError> {
        Ok(self
            .trust_entry(thumbprint)
            .await?
            .filter(|e| e.country == country && e.cert_type == cert_type))
    }
}

impl<T: TrustListStore + ?Sized> TrustListStoreExt for T {}

// ---------------------------------------------------------------------------------------------
// Uploads
// ---------------------------------------------------------------------------------------------

/// One key of an upload with its duplicate-detection hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewKey {
    /// The key as received (and validated).
    pub key: DiagnosisKey,
    /// The caller's duplicate-detection hash of the key; unique among all stored keys.
    pub hash: KeyHash,
}

/// An upload to store: everything the server accepted for one `POST /diagnosiskeys/upload`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewUpload {
    /// The uploader's country (auth DN `C`).
    pub country: String,
    /// The client's `batchTag` header; unique per country (decisions item 3).
    pub batch_tag: String,
    /// The `batchSignature` header verbatim (Base64 CMS), returned by audit.
    pub batch_signature: String,
    /// Thumbprint of the uploader's authentication certificate.
    pub uploader_thumbprint: Thumbprint,
    /// Thumbprint of the certificate that signed the batch.
    pub signing_thumbprint: Thumbprint,
    /// The payload format version (from the Content-Type).
    pub format: FormatVersion,
    /// The one timestamp of all keys of this upload (protocol §1.2).
    pub created_at: OffsetDateTime,
    /// The caller's digest over the signature and the canonical bytes, identifying the
    /// upload's content for idempotent replay.
    pub content_digest: [u8; 32],
    /// The keys, in the order received.
    pub keys: Vec<NewKey>,
}

/// The upload a stored or replayed [`UploadOutcome`] refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadReceipt {
    /// The uploader's country.
    pub country: String,
    /// The upload's `batchTag`.
    pub batch_tag: String,
    /// Number of keys of the stored upload.
    pub number_of_keys: u64,
    /// The stored upload's timestamp (the original one for a replay).
    pub created_at: OffsetDateTime,
}

/// The reference's reason text for [`UploadOutcome::BatchTagExists`] (the 409 answer).
pub const BATCH_TAG_EXISTS_REASON: &str = "BatchTag already exists.";

/// What became of an upload: the result of [`UploadStore::insert_upload`] and of
/// [`crate::gateway::Gateway::upload`]. Every variant is an expected protocol outcome, not a
/// failure; storage failures are [`StoreError`]s.
///
/// Not `#[non_exhaustive]`: the server answers every variant with its own status (201, 201,
/// 409, 207), and a new variant must not compile without one (ADR 0012).
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum UploadOutcome {
    /// The upload was stored now (201).
    Stored(UploadReceipt),
    /// The same country already stored this `batchTag` with the same content digest; nothing
    /// was stored now. The receipt describes the earlier upload (201, idempotent replay,
    /// decisions item 3).
    Replayed(UploadReceipt),
    /// The same country already stored a *different* upload (another content digest) under
    /// this `batchTag`; nothing was stored (409 [`BATCH_TAG_EXISTS_REASON`]). Tags are scoped
    /// per country: another country's tag never gives this.
    BatchTagExists {
        /// The uploading country.
        country: String,
        /// The upload's `batchTag`.
        batch_tag: String,
    },
    /// Some keys are already stored or repeated inside the upload: nothing was stored and the
    /// tag stays unused, so a corrected upload may reuse it (207 with the per-index lists).
    DuplicateKeys(KeyConflicts),
}

impl UploadOutcome {
    /// The `batchTag` rule (decisions item 3, ADR 0003), the one implementation the gateway's
    /// early check and every store's atomic check call: an upload with `content_digest` under
    /// a (country, tag) already taken by `earlier` (whose digest is `earlier_digest`) is a
    /// [`UploadOutcome::Replayed`] of `earlier` when the digests are equal, otherwise
    /// [`UploadOutcome::BatchTagExists`].
    pub fn for_taken_tag(
        earlier: UploadReceipt,
        earlier_digest: &[u8; 32],
        content_digest: &[u8; 32],
    ) -> Self {
        if earlier_digest == content_digest {
            UploadOutcome::Replayed(earlier)
        } else {
            UploadOutcome::BatchTagExists {
                country: earlier.country,
                batch_tag: earlier.batch_tag,
            }
        }
    }

    /// Stable machine code (`"batch-tag-exists"` and `"duplicate-keys"` are the codes of the
    /// 409 and 207 answers).
    pub fn code(&self) -> &'static str {
        match self {
            UploadOutcome::Stored(_) => "stored",
            UploadOutcome::Replayed(_) => "replayed",
            UploadOutcome::BatchTagExists { .. } => "batch-tag-exists",
            UploadOutcome::DuplicateKeys(_) => "duplicate-keys",
        }
    }
}

/// A stored upload, as [`UploadStore::upload_info`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadInfo {
    /// The uploader's country.
    pub country: String,
    /// The upload's `batchTag`.
    pub batch_tag: String,
    /// Number of keys stored with the upload (retention deletes whole uploads).
    pub number_of_keys: u64,
    /// The upload's format version.
    pub format: FormatVersion,
    /// The upload's timestamp.
    pub created_at: OffsetDateTime,
    /// The content digest given at upload.
    pub content_digest: [u8; 32],
    /// The download batch holding the upload's keys, once batched (`None` while pending and
    /// for an empty upload).
    pub download_batch: Option<BatchTag>,
}

impl UploadInfo {
    /// The receipt of this upload (what a replay of it answers).
    pub fn receipt(&self) -> UploadReceipt {
        UploadReceipt {
            country: self.country.clone(),
            batch_tag: self.batch_tag.clone(),
            number_of_keys: self.number_of_keys,
            created_at: self.created_at,
        }
    }
}

/// Uploads: all keys of one upload are stored atomically, together with the upload's record
/// and its upload statistics row.
#[async_trait]
pub trait UploadStore: Send + Sync + Debug + 'static {
    /// Stores an upload, all or nothing. In this order:
    ///
    /// 1. If this country already stored an upload with this `batch_tag`: the result is
    ///    [`UploadOutcome::for_taken_tag`] (with the same `content_digest`
    ///    [`UploadOutcome::Replayed`], otherwise [`UploadOutcome::BatchTagExists`]) and nothing
    ///    is stored. Tags are scoped per country: another country's tag never conflicts.
    /// 2. If any key's hash is already stored, or repeats the hash of an earlier key of this
    ///    upload ([`KeyConflicts::find`]), the result is [`UploadOutcome::DuplicateKeys`]
    ///    listing **every** index, nothing is stored and the tag stays unused (a corrected
    ///    upload may reuse it).
    /// 3. Otherwise the keys (in the order given), the upload record and an [`UploadStat`]
    ///    row (`number_of_keys` = keys stored, `created_at` = the upload's) are stored in one
    ///    atomic step and the result is [`UploadOutcome::Stored`]. The keys become pending.
    ///
    /// **Empty uploads** (no keys) are recorded like any other: the tag is taken (a replay is
    /// [`UploadOutcome::Replayed`], different content under the tag is `BatchTagExists`) and
    /// a statistics row with 0 keys is written; they are never pending, belong to no batch
    /// and have no audit group. (The reference stored nothing and left the tag free; we
    /// identify uploads by (country, tag), decisions item 3.)
    ///
    /// Concurrent inserts behave as if run one at a time: of two concurrent uploads with the
    /// same (country, tag), exactly one is `Stored` and the other is `Replayed` or
    /// `BatchTagExists`; of two concurrent uploads sharing a key hash, at most one is stored.
    /// `Err` is a storage failure only ([`StoreError`]).
    /// The tag stays taken as long as the upload's record exists (until retention deletes
    /// the upload, see [`RetentionStore::delete_keys_before`]).
    async fn insert_upload(&self, upload: NewUpload) -> Result<UploadOutcome, StoreError>;

    /// The stored upload of this country with this tag, if any.
    async fn upload_info(
        &self,
        country: &str,
        batch_tag: &str,
    ) -> Result<Option<UploadInfo>, StoreError>;
}

// ---------------------------------------------------------------------------------------------
// Download batches
// ---------------------------------------------------------------------------------------------

/// A download batch's metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchInfo {
    /// The batch's `yyyyMMdd-N` tag.
    pub tag: BatchTag,
    /// When the batch was created.
    pub created_at: OffsetDateTime,
    /// The tag of the batch created right after this one (`nextBatchTag`), if any yet.
    pub link: Option<BatchTag>,
    /// Number of keys put into the batch when it was created (retention does not change it).
    pub number_of_keys: u64,
}

/// What [`BatchStore::create_next_batch`] created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreatedBatch {
    /// The new batch (its `link` is `None`).
    pub batch: BatchInfo,
    /// The batch that was the most recent one before and now links to the new one.
    pub previous: Option<BatchTag>,
    /// Number of uploads claimed into the batch.
    pub uploads: u64,
}

/// Summary of the pending (stored, not yet batched, non-empty) uploads; the batching job
/// decides from it whether to cut a batch ([`crate::batching::should_cut`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PendingSummary {
    /// Number of pending uploads.
    pub uploads: u64,
    /// Number of keys in them.
    pub keys: u64,
    /// The smallest `created_at` among them.
    pub oldest: Option<OffsetDateTime>,
}

/// Download batches: creating them from pending uploads, and finding them.
#[async_trait]
pub trait BatchStore: Send + Sync + Debug + 'static {
    /// Counts the pending uploads (empty uploads are never pending).
    async fn pending_summary(&self) -> Result<PendingSummary, StoreError>;

    /// Creates the next download batch, atomically, or returns `None` if nothing is pending.
    ///
    /// The uploads, the tag and the instant are those of [`crate::batching::plan_batch`],
    /// given the most recently created batch and the pending uploads in upload order:
    ///
    /// - **Which uploads:** the leading pending uploads, as many as the planner takes with
    ///   `max_keys` (greedy, never mixing format versions, never splitting an upload). All
    ///   their keys join the batch.
    /// - **Tag:** `BatchTag::next(latest, t)` where `latest` is the most recently created
    ///   batch and `t = max(now, latest.created_at)`: if the clock went backwards, the batch
    ///   is dated at the latest batch's instant, so tags stay unique and dense (`N` grows by
    ///   one per batch per UTC day) and `created_at` never decreases along the chain.
    /// - **Link:** the most recent batch before (of any day) gets `link` = the new tag.
    /// - `number_of_keys` = keys claimed; `created_at` = `t` (microseconds, UTC).
    ///
    /// Safe with any number of concurrent callers, also from several processes on one
    /// database: their batches form one chain, every pending key ends up in exactly one
    /// batch, and no upload is split or claimed twice.
    async fn create_next_batch(
        &self,
        now: OffsetDateTime,
        max_keys: usize,
    ) -> Result<Option<CreatedBatch>, StoreError>;

    /// The batch with this tag, if it exists.
    async fn batch_by_tag(&self, tag: &BatchTag) -> Result<Option<BatchInfo>, StoreError>;

    /// The batch with the smallest `created_at` that is at or after `instant` (ties: the one
    /// created first); used for a download without a `batchTag` header (the batch may be from
    /// a later day).
    async fn first_batch_at_or_after(
        &self,
        instant: OffsetDateTime,
    ) -> Result<Option<BatchInfo>, StoreError>;

    /// The batch metadata's change stamp (see [`STAMP_LAG`]): `Some(s)` where `s` changes
    /// whenever a batch is created, linked or deleted, through any handle on the same data.
    /// `None` (the default): the store keeps no stamp, and the gateway reads the batch row on
    /// every download.
    async fn batch_stamp(&self) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }
}

// ---------------------------------------------------------------------------------------------
// Keys of a batch: download and audit
// ---------------------------------------------------------------------------------------------

/// One upload's share of a download batch (protocol §1.4 / §6): the stored part of an
/// `AuditEntry`; certificates come from the trust list.
///
/// An upload is identified by (`country`, `batch_tag`) (decisions item 3; the reference grouped
/// by tag alone): two countries using the same tag in one batch are two groups. `amount` counts
/// all the upload's keys in the batch, so clients re-verifying upload signatures can slice the
/// batch's keys (in [`KeyStore::batch_keys`] order, their own country's included) by it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditGroup {
    /// The uploader's country.
    pub country: String,
    /// The upload's `batchTag`.
    pub batch_tag: String,
    /// The upload's timestamp (`uploadedTime`).
    pub uploaded_at: OffsetDateTime,
    /// Thumbprint of the uploader's authentication certificate.
    pub uploader_thumbprint: Thumbprint,
    /// Thumbprint of the batch-signing certificate.
    pub signing_thumbprint: Thumbprint,
    /// The `batchSignature` header as uploaded.
    pub batch_signature: String,
    /// Number of the upload's keys in this download batch (still stored).
    pub amount: u64,
}

/// Reading the keys of a download batch.
#[async_trait]
pub trait KeyStore: Send + Sync + Debug + 'static {
    /// The keys of the batch, in upload order and then in the order each upload gave them
    /// (so each upload's keys are contiguous), leaving out keys uploaded by
    /// `exclude_uploader_country` (the caller's own country; by uploader, not by origin).
    /// Keys come back exactly as uploaded. Keys deleted by retention are gone. An unknown
    /// tag gives an empty list (callers check the batch with [`BatchStore::batch_by_tag`]).
    async fn batch_keys(
        &self,
        tag: &BatchTag,
        exclude_uploader_country: Option<&str>,
    ) -> Result<Vec<DiagnosisKey>, StoreError>;

    /// One group per upload with keys still stored in the batch, in upload order (the order
    /// of their first keys in [`KeyStore::batch_keys`]); all countries included. An unknown
    /// tag or a batch whose keys are gone gives an empty list.
    async fn audit_groups(&self, tag: &BatchTag) -> Result<Vec<AuditGroup>, StoreError>;
}

// ---------------------------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------------------------

/// One stored upload (reference table `diagnosiskeyuploadbatch`). Written by
/// [`UploadStore::insert_upload`]; never deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadStat {
    /// The uploader's country.
    pub country: String,
    /// The upload's `batchTag`.
    pub batch_tag: String,
    /// Number of keys stored.
    pub number_of_keys: u64,
    /// The upload's timestamp.
    pub created_at: OffsetDateTime,
}

/// One download (reference table `diagnosiskeydownload`). Never deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DownloadStat {
    /// The downloading country.
    pub country: String,
    /// The batch served.
    pub batch_tag: BatchTag,
    /// Number of keys returned.
    pub number_of_keys: u64,
    /// When the download was served.
    pub requested_at: OffsetDateTime,
}

/// One retention run (reference table `diagnosiskeycleanup`), also the result of
/// [`RetentionStore::delete_keys_before`]. Never deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CleanupReport {
    /// When the cleanup ran.
    pub ran_at: OffsetDateTime,
    /// Keys created before this instant were deleted.
    pub cutoff: OffsetDateTime,
    /// Number of keys deleted.
    pub deleted: u64,
    /// Number of keys stored just before.
    pub keys_before: u64,
    /// Number of keys stored just after.
    pub keys_after: u64,
}

/// Writing statistics rows. Upload rows are written by [`UploadStore::insert_upload`] and
/// cleanup rows by [`RetentionStore::delete_keys_before`]; [`StoreInspect`] reads them all.
#[async_trait]
pub trait StatsStore: Send + Sync + Debug + 'static {
    /// Records a served download.
    ///
    /// Unlike every other write, a store may return before the row is durable, to keep the
    /// write off the download's path: it then holds at most a bounded number of rows (waiting
    /// here while that many are unwritten, so none is dropped), writes them within a second,
    /// and writes all of them in [`StatsStore::flush_download_stats`]. Reads through the same
    /// handle ([`StoreInspect::download_stats`]) see every row recorded before them.
    async fn record_download(&self, stat: DownloadStat) -> Result<(), StoreError>;

    /// Writes every download row recorded through this handle so far and returns when they
    /// are durable (the server calls it at graceful shutdown, after the last request). The
    /// default does nothing: for stores whose [`StatsStore::record_download`] writes at once.
    async fn flush_download_stats(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Retention
// ---------------------------------------------------------------------------------------------

/// Deleting old data (protocol §8, decisions item 13).
#[async_trait]
pub trait RetentionStore: Send + Sync + Debug + 'static {
    /// Deletes, atomically, every key with `created_at < cutoff`, batched or not, together
    /// with the records of the uploads they belonged to (all keys of an upload share one
    /// timestamp, so uploads go as a whole; empty uploads older than the cutoff go too, and
    /// their tags become free again). Writes a [`CleanupReport`] row (`ran_at` = `now`) and
    /// returns it. Batch metadata and statistics rows are kept.
    async fn delete_keys_before(
        &self,
        cutoff: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<CleanupReport, StoreError>;

    /// Deletes the metadata of batches with `created_at < cutoff` that no longer hold any
    /// key; returns how many. The most recent batch is always kept (it anchors the tag
    /// sequence and the chain). Links pointing to a deleted batch cannot exist (links point
    /// forward, to newer batches).
    async fn delete_batches_before(&self, cutoff: OffsetDateTime) -> Result<u64, StoreError>;
}

// ---------------------------------------------------------------------------------------------
// Callback subscriptions and their delivery state
// ---------------------------------------------------------------------------------------------

/// A callback subscription (protocol §1.5-§1.7, §7; decisions items 8-10): one per
/// (country, `callbackId`), with its delivery state.
///
/// Delivery is a per-subscription cursor over the download batches in cut order: the
/// subscription's delivery tasks are the batches cut after [`Subscription::created_at`] that are
/// not delivered yet, always sent oldest first, one at a time (the reference's `not_before`
/// chain). A subscription created while batches exist starts after the latest of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    /// The subscribing country (the caller's, two letters).
    pub country: String,
    /// The caller's id of the subscription (at most 32 characters).
    pub callback_id: String,
    /// The callback URL exactly as the caller sent it.
    pub url: String,
    /// When the subscription was first created (a later PUT does not change it).
    pub created_at: OffsetDateTime,
    /// Failed attempts at the subscription's current task.
    pub retries: u32,
    /// When the current task may be attempted again after a failure (`None`: at once).
    pub next_attempt_at: Option<OffsetDateTime>,
    /// When the subscription was suspended after its last allowed failure (`None`: active).
    /// A suspended subscription gets nothing until a PUT re-activates it.
    pub suspended_at: Option<OffsetDateTime>,
}

/// What [`CallbackStore::upsert_subscription`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum SubscriptionUpsert {
    /// A new subscription, starting after the latest batch cut so far.
    Created,
    /// The subscription existed and was active: its URL is the new one (the same or not);
    /// when the URL changed, its retry count and wait were reset.
    Updated,
    /// The subscription was suspended: it is active again with the new URL, its retry count
    /// and wait reset, and delivery resumes with its first undelivered batch.
    Reactivated,
}

impl SubscriptionUpsert {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            SubscriptionUpsert::Created => "created",
            SubscriptionUpsert::Updated => "updated",
            SubscriptionUpsert::Reactivated => "reactivated",
        }
    }
}

/// A request to lease due delivery tasks ([`CallbackStore::claim_callback_tasks`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskClaim {
    /// Who takes the leases (one id per server instance and start).
    pub holder: String,
    /// The current instant.
    pub now: OffsetDateTime,
    /// When the leases taken now expire; another holder may take the task over afterwards.
    pub lease_until: OffsetDateTime,
    /// At most this many tasks.
    pub limit: usize,
}

/// A leased delivery task: the next undelivered batch of one subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallbackTask {
    /// The subscription's country.
    pub country: String,
    /// The subscription's id.
    pub callback_id: String,
    /// The subscription's URL when the task was claimed (as the caller sent it).
    pub url: String,
    /// The batch to announce.
    pub batch: BatchInfo,
    /// The store's position of the batch in cut order (opaque; increases with each batch).
    pub position: u64,
    /// Failed attempts at this task so far.
    pub retries: u32,
}

/// What became of a delivery attempt ([`CallbackStore::finish_callback_task`]); decided by
/// [`crate::callback::RetryPolicy::after_failure`] for failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskResult {
    /// The receiver answered 2xx: the subscription moves on to its next batch, its retry
    /// count reset.
    Delivered,
    /// The attempt failed: try again at `not_before`, with `retries` failures counted.
    Retry {
        /// Failures so far, this one included.
        retries: u32,
        /// Earliest next attempt.
        not_before: OffsetDateTime,
    },
    /// The attempt failed and no retry is left: the subscription is suspended at `at`.
    Suspend {
        /// Failures so far, this one included.
        retries: u32,
        /// The instant of suspension.
        at: OffsetDateTime,
    },
}

/// What [`CallbackStore::finish_callback_task`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum TaskFinish {
    /// The result was recorded and the lease released.
    Recorded,
    /// Nothing changed: the lease is not the holder's any more (it expired and another holder
    /// took the task over, or the subscription was deleted or delivered meanwhile).
    LeaseLost,
}

/// Callback subscriptions and their delivery state (decisions items 8-10).
///
/// **Exactly one holder at a time.** A subscription is leased to at most one holder whose lease
/// has not expired; only that holder's [`CallbackStore::finish_callback_task`] changes its
/// delivery state. Leases of a holder that died expire and the task is claimed again, by any
/// holder (several server instances on one database deliver each task once).
#[async_trait]
pub trait CallbackStore: Send + Sync + Debug + 'static {
    /// Creates the subscription (country, `callback_id`) with `url`, starting after the latest
    /// batch, or replaces the URL of an existing one (its `created_at` and its position are
    /// kept). See [`SubscriptionUpsert`] for the retry state.
    async fn upsert_subscription(
        &self,
        country: &str,
        callback_id: &str,
        url: &str,
        now: OffsetDateTime,
    ) -> Result<SubscriptionUpsert, StoreError>;

    /// The subscriptions of `country`, in creation order.
    async fn list_subscriptions(&self, country: &str) -> Result<Vec<Subscription>, StoreError>;

    /// Deletes the subscription (country, `callback_id`) with its delivery state; `false` when
    /// there is none.
    async fn delete_subscription(
        &self,
        country: &str,
        callback_id: &str,
    ) -> Result<bool, StoreError>;

    /// Leases up to `claim.limit` due tasks to `claim.holder` until `claim.lease_until`, and
    /// returns them: for each active subscription whose lease is free or expired
    /// (`lease_until <= now`), whose retry wait is over (`next_attempt_at <= now`), and which
    /// has a batch after its position, the first such batch. Subscriptions in creation order.
    async fn claim_callback_tasks(
        &self,
        claim: &TaskClaim,
    ) -> Result<Vec<CallbackTask>, StoreError>;

    /// Records `result` for `task` and releases the lease, if `holder` still holds the lease
    /// of the task's subscription and the subscription is still at the task's batch;
    /// otherwise changes nothing ([`TaskFinish::LeaseLost`]).
    async fn finish_callback_task(
        &self,
        task: &CallbackTask,
        holder: &str,
        result: TaskResult,
    ) -> Result<TaskFinish, StoreError>;
}

// ---------------------------------------------------------------------------------------------
// Inspection (tests, the conformance suite, tools)
// ---------------------------------------------------------------------------------------------

/// Numbers of stored keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyCounts {
    /// All stored keys.
    pub stored: u64,
    /// Keys of pending (not yet batched) uploads.
    pub pending: u64,
}

/// Reading what the gateway never reads: the statistics rows, key counts and the end of the
/// batch chain. Every backend implements it so that the conformance suite can check the
/// contracts of the other traits through it; the gateway and the server hold a [`Store`],
/// which does not include it. Same common contracts as every other method.
#[async_trait]
pub trait StoreInspect: Send + Sync + Debug + 'static {
    /// The most recently created batch (the end of the chain), if any.
    async fn latest_batch(&self) -> Result<Option<BatchInfo>, StoreError>;

    /// Upload statistics rows with `created_at >= since`, in the order they were written.
    async fn upload_stats(&self, since: OffsetDateTime) -> Result<Vec<UploadStat>, StoreError>;

    /// Download statistics rows with `requested_at >= since`, in the order they were written.
    async fn download_stats(&self, since: OffsetDateTime) -> Result<Vec<DownloadStat>, StoreError>;

    /// Cleanup statistics rows with `ran_at >= since`, in the order they were written.
    async fn cleanup_stats(&self, since: OffsetDateTime) -> Result<Vec<CleanupReport>, StoreError>;

    /// Counts the stored keys.
    async fn key_counts(&self) -> Result<KeyCounts, StoreError>;
}

// ---------------------------------------------------------------------------------------------
// The audit trail (ADR 0017, 0018, 0019)
// ---------------------------------------------------------------------------------------------

/// The operator's audit trail ([`crate::trail`]): an append-only, hash-chained log of events,
/// and the delivery cursor of each push sink.
///
/// Contracts:
/// - [`append_audit_events`](Self::append_audit_events) chains the events, in the order given,
///   after the last record ever appended (also when retention removed every record): dense
///   sequence numbers from 1, each [`Record`](crate::trail::Record) made with
///   [`Record::chain`](crate::trail::Record::chain). Appends by many instances on one store are
///   serialised, so the chain stays linear. All of one call or nothing; durable once `Ok`.
/// - A push sink's cursor (the last sequence number its collector acknowledged) moves only
///   forward and only for the holder of the sink's lease: one pusher per sink among all
///   instances, another may take over once the lease has expired.
#[async_trait]
pub trait AuditTrailStore: Send + Sync + Debug + 'static {
    /// Appends `events` to the chain; returns the sequence number of the last record (the
    /// current last one when `events` is empty, 0 when nothing was ever appended).
    async fn append_audit_events(
        &self,
        events: Vec<crate::trail::Event>,
    ) -> Result<u64, StoreError>;

    /// Up to `limit` records with a sequence number above `after_seq`, in order.
    async fn audit_records_after(
        &self,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<TrailRecord>, StoreError>;

    /// Up to `limit` records with a sequence number above `after_seq` and an instant in
    /// `from..to` (`to` excluded), in sequence order.
    async fn audit_records_between(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<TrailRecord>, StoreError>;

    /// Deletes the records older than `cutoff` (the chain head stays, so numbering and
    /// chaining continue); returns how many.
    async fn delete_audit_records_before(&self, cutoff: OffsetDateTime) -> Result<u64, StoreError>;

    /// Takes or renews the lease of push sink `sink` for `owner` until `until`, when it is
    /// free, expired at `now`, or already `owner`'s. Returns the sink's cursor (0 for a new
    /// sink) when `owner` holds the lease, `None` when another owner does.
    async fn claim_audit_push(
        &self,
        sink: &str,
        owner: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Option<u64>, StoreError>;

    /// Moves sink `sink`'s cursor forward to `seq` and renews the lease until `until`, if
    /// `owner` still holds the lease; returns whether it did (false: the lease was lost, the
    /// cursor is unchanged).
    async fn ack_audit_push(
        &self,
        sink: &str,
        owner: &str,
        seq: u64,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError>;
}

// ---------------------------------------------------------------------------------------------
// The union, and forwarding impls
// ---------------------------------------------------------------------------------------------

/// Every storage concern in one trait object: what the server holds. Implemented for every
/// type implementing all the concern traits.
pub trait Store:
    TrustListStore
    + UploadStore
    + BatchStore
    + KeyStore
    + StatsStore
    + RetentionStore
    + AuditTrailStore
    + CallbackStore
{
}

impl<T> Store for T where
    T: TrustListStore
        + UploadStore
        + BatchStore
        + KeyStore
        + StatsStore
        + RetentionStore
        + AuditTrailStore
        + CallbackStore
        + ?Sized
{
}

/// The store trait object.
pub type DynStore = dyn Store;

/// A [`Store`] that can also be inspected ([`StoreInspect`]): what the conformance suite and
/// test harnesses hold. `Arc<dyn InspectableStore>` coerces to `Arc<`[`DynStore`]`>` for the
/// gateway. Implemented for every type implementing both.
pub trait InspectableStore: Store + StoreInspect {}

impl<T> InspectableStore for T where T: Store + StoreInspect + ?Sized {}

/// The inspectable store trait object.
pub type DynInspectableStore = dyn InspectableStore;

/// Forwards a trait's methods through `Arc<T>` and `Box<T>`.
macro_rules! forward {
    ($trait:ident { $( fn $name:ident(&self $(, $arg:ident : $ty:ty)* ) -> $ret:ty; )* }) => {
        #[async_trait]
        impl<T: $trait + ?Sized> $trait for Arc<T> {
            $( async fn $name(&self $(, $arg: $ty)*) -> $ret { (**self).$name($($arg),*).await } )*
        }
        #[async_trait]
        impl<T: $trait + ?Sized> $trait for Box<T> {
            $( async fn $name(&self $(, $arg: $ty)*) -> $ret { (**self).$name($($arg),*).await } )*
        }
    };
}

/// Calls `$m!(Trait { fn method(&self, ..) -> Ret; ... })` once for every storage trait
/// ([`StoreInspect`] included), with
/// the complete method list: the one place that lists them, for decorators such as the
/// `Arc`/`Box` forwarding below and efgs-testkit's `FaultyStore`. The expansion site must have
/// the traits and the types of [`crate::store`] in scope.
#[doc(hidden)]
#[macro_export]
macro_rules! __for_each_store_trait {
    ($m:ident) => {
        $m!(TrustListStore {
            fn upsert_trust_entry(&self, entry: TrustEntry) -> Result<Upserted, StoreError>;
            fn trust_entry(&self, thumbprint: &Thumbprint) -> Result<Option<TrustEntry>, StoreError>;
            fn revoke_trust_entry(&self, thumbprint: &Thumbprint) -> Result<(), StoreError>;
            fn readmit_trust_entry(&self, thumbprint: &Thumbprint) -> Result<Readmission, StoreError>;
            fn list_trust_entries(&self) -> Result<Vec<TrustEntry>, StoreError>;
            fn trust_list_stamp(&self) -> Result<Option<u64>, StoreError>;
        });

        $m!(UploadStore {
            fn insert_upload(&self, upload: NewUpload) -> Result<UploadOutcome, StoreError>;
            fn upload_info(&self, country: &str, batch_tag: &str) -> Result<Option<UploadInfo>, StoreError>;
        });

        $m!(BatchStore {
            fn pending_summary(&self) -> Result<PendingSummary, StoreError>;
            fn create_next_batch(&self, now: OffsetDateTime, max_keys: usize)
                -> Result<Option<CreatedBatch>, StoreError>;
            fn batch_by_tag(&self, tag: &BatchTag) -> Result<Option<BatchInfo>, StoreError>;
            fn first_batch_at_or_after(&self, instant: OffsetDateTime)
                -> Result<Option<BatchInfo>, StoreError>;
            fn batch_stamp(&self) -> Result<Option<u64>, StoreError>;
        });

        $m!(KeyStore {
            fn batch_keys(&self, tag: &BatchTag, exclude_uploader_country: Option<&str>)
                -> Result<Vec<DiagnosisKey>, StoreError>;
            fn audit_groups(&self, tag: &BatchTag) -> Result<Vec<AuditGroup>, StoreError>;
        });

        $m!(StatsStore {
            fn record_download(&self, stat: DownloadStat) -> Result<(), StoreError>;
            fn flush_download_stats(&self) -> Result<(), StoreError>;
        });

        $m!(RetentionStore {
            fn delete_keys_before(&self, cutoff: OffsetDateTime, now: OffsetDateTime)
                -> Result<CleanupReport, StoreError>;
            fn delete_batches_before(&self, cutoff: OffsetDateTime) -> Result<u64, StoreError>;
        });

        $m!(AuditTrailStore {
            fn append_audit_events(&self, events: Vec<TrailEvent>) -> Result<u64, StoreError>;
            fn audit_records_after(&self, after_seq: u64, limit: usize)
                -> Result<Vec<TrailRecord>, StoreError>;
            fn audit_records_between(&self, from: OffsetDateTime, to: OffsetDateTime, after_seq: u64, limit: usize)
                -> Result<Vec<TrailRecord>, StoreError>;
            fn delete_audit_records_before(&self, cutoff: OffsetDateTime) -> Result<u64, StoreError>;
            fn claim_audit_push(&self, sink: &str, owner: &str, now: OffsetDateTime, until: OffsetDateTime)
                -> Result<Option<u64>, StoreError>;
            fn ack_audit_push(&self, sink: &str, owner: &str, seq: u64, until: OffsetDateTime)
                -> Result<bool, StoreError>;
        });

        $m!(CallbackStore {
            fn upsert_subscription(&self, country: &str, callback_id: &str, url: &str, now: OffsetDateTime)
                -> Result<SubscriptionUpsert, StoreError>;
            fn list_subscriptions(&self, country: &str) -> Result<Vec<Subscription>, StoreError>;
            fn delete_subscription(&self, country: &str, callback_id: &str) -> Result<bool, StoreError>;
            fn claim_callback_tasks(&self, claim: &TaskClaim) -> Result<Vec<CallbackTask>, StoreError>;
            fn finish_callback_task(&self, task: &CallbackTask, holder: &str, result: TaskResult)
                -> Result<TaskFinish, StoreError>;
        });

        $m!(StoreInspect {
            fn latest_batch(&self) -> Result<Option<BatchInfo>, StoreError>;
            fn upload_stats(&self, since: OffsetDateTime) -> Result<Vec<UploadStat>, StoreError>;
            fn download_stats(&self, since: OffsetDateTime) -> Result<Vec<DownloadStat>, StoreError>;
            fn cleanup_stats(&self, since: OffsetDateTime) -> Result<Vec<CleanupReport>, StoreError>;
            fn key_counts(&self) -> Result<KeyCounts, StoreError>;
        });
    };
}

__for_each_store_trait!(forward);

/// Truncates a timestamp to whole microseconds (toward the past) in UTC: the precision every
/// store keeps. Backends apply it to every timestamp they record.
pub fn to_store_precision(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(time::UtcOffset::UTC);
    let nanos = t.nanosecond();
    t.replace_nanosecond(nanos - nanos % 1000).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn precision_truncates_toward_the_past() {
        let t = datetime!(2026-11-28 10:00:00.123456789 +01:00);
        assert_eq!(
            to_store_precision(t),
            datetime!(2026-11-28 09:00:00.123456 UTC)
        );
        let neg = datetime!(1960-01-01 00:00:00.000000999 UTC);
        assert_eq!(to_store_precision(neg), datetime!(1960-01-01 00:00 UTC));
    }

    #[test]
    fn error_codes_and_transience() {
        let e = StoreError::Unavailable {
            source: "pool timeout".into(),
        };
        assert!(e.is_transient());
        assert_eq!(e.code(), "storage-unavailable");
        assert!(!StoreError::NotFound { what: "x" }.is_transient());
    }

    #[test]
    fn duplicate_rule_lists_stored_and_repeated_keys() {
        let h = |b: u8| [b; 32];
        let hashes = [h(1), h(2), h(1), h(3), h(2)];
        // Hash 3 is stored; the second 1 and the second 2 repeat earlier keys.
        let mut asked = Vec::new();
        let c = KeyConflicts::find(&hashes, |k| {
            asked.push(k[0]);
            k == &h(3)
        })
        .unwrap();
        assert_eq!(c.ok, vec![0, 1]);
        assert_eq!(c.conflict, vec![2, 3, 4]);
        assert!(c.failed.is_empty());
        assert_eq!(asked, vec![1, 2, 1, 3, 2], "asked once per key, in order");
        assert_eq!(KeyConflicts::find(&[h(1), h(2)], |_| false), None);
        assert_eq!(KeyConflicts::find(&[], |_| true), None);
    }

    #[test]
    fn tag_rule_replays_equal_content_only() {
        let earlier = UploadReceipt {
            country: "DE".into(),
            batch_tag: "t".into(),
            number_of_keys: 3,
            created_at: datetime!(2026-11-28 10:00 UTC),
        };
        assert_eq!(
            UploadOutcome::for_taken_tag(earlier.clone(), &[1; 32], &[1; 32]),
            UploadOutcome::Replayed(earlier.clone())
        );
        let taken = UploadOutcome::for_taken_tag(earlier, &[1; 32], &[2; 32]);
        assert_eq!(
            taken,
            UploadOutcome::BatchTagExists {
                country: "DE".into(),
                batch_tag: "t".into()
            }
        );
        assert_eq!(taken.code(), "batch-tag-exists");
    }

    fn trust(country: &str, cert_type: CertificateType, revoked: bool) -> TrustEntry {
        TrustEntry {
            thumbprint: Thumbprint::from_digest(&[1; 32]),
            country: country.to_owned(),
            cert_type,
            pem: "pem".to_owned(),
            signature: "sig".to_owned(),
            revoked,
            created_at: datetime!(2026-11-28 10:00 UTC),
        }
    }

    #[test]
    fn upsert_rule_never_clears_a_revocation_nor_changes_country_or_type() {
        use CertificateType::{Authentication as Auth, Signing};
        let active = trust("DE", Auth, false);
        let revoked = trust("DE", Auth, true);
        let rule = Upserted::for_stored;
        assert_eq!(rule(None, &active), Upserted::Inserted);
        assert_eq!(rule(None, &revoked), Upserted::Inserted);
        let mut later = active.clone();
        later.created_at = datetime!(2026-11-29 10:00 UTC);
        assert_eq!(rule(Some(&active), &later), Upserted::Unchanged);
        let mut resigned = later.clone();
        resigned.signature = "other".to_owned();
        assert_eq!(rule(Some(&active), &resigned), Upserted::Replaced);
        assert_eq!(rule(Some(&active), &revoked), Upserted::Replaced);
        // A revoked entry stays as it is, re-signed or not.
        assert_eq!(rule(Some(&revoked), &active), Upserted::KeptRevoked);
        assert_eq!(rule(Some(&revoked), &resigned), Upserted::KeptRevoked);
        assert_eq!(rule(Some(&revoked), &revoked), Upserted::Unchanged);
        // Country or type never change, revoked or not.
        for stored in [&active, &revoked] {
            for new in [trust("FR", Auth, false), trust("DE", Signing, false)] {
                let out = rule(Some(stored), &new);
                assert_eq!(
                    out,
                    Upserted::Conflict {
                        country: "DE".to_owned(),
                        cert_type: Auth
                    }
                );
                assert!(!out.writes());
                assert_eq!(out.code(), "country-or-type-differs");
            }
        }
        assert!(Upserted::Inserted.writes() && Upserted::Replaced.writes());
        assert!(!Upserted::Unchanged.writes() && !Upserted::KeptRevoked.writes());
    }

    #[derive(Debug)]
    struct Nothing;

    #[async_trait]
    impl TrustListStore for Nothing {
        async fn upsert_trust_entry(&self, _: TrustEntry) -> Result<Upserted, StoreError> {
            Ok(Upserted::Inserted)
        }
        async fn trust_entry(&self, _: &Thumbprint) -> Result<Option<TrustEntry>, StoreError> {
            Ok(None)
        }
        async fn revoke_trust_entry(&self, _: &Thumbprint) -> Result<(), StoreError> {
            Err(StoreError::NotFound {
                what: "trust-list entry",
            })
        }
        async fn readmit_trust_entry(&self, _: &Thumbprint) -> Result<Readmission, StoreError> {
            Err(StoreError::NotFound {
                what: "trust-list entry",
            })
        }
        async fn list_trust_entries(&self) -> Result<Vec<TrustEntry>, StoreError> {
            Ok(Vec::new())
        }
    }

    #[test]
    fn traits_are_object_safe_and_forward() {
        fn takes(_: &dyn TrustListStore) {}
        let a: Arc<dyn TrustListStore> = Arc::new(Nothing);
        takes(&a);
        let b: Box<dyn TrustListStore> = Box::new(Nothing);
        takes(&b);
        fn is_store(_: Option<&DynStore>) {}
        is_store(None);
    }
}
