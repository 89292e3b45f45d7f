//! [`PgStore`]: the storage traits of `efgs_core::store` on PostgreSQL.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use efgs_core::batching::{PendingUpload, plan_batch, planner_lookahead};
use efgs_core::cert::Thumbprint;
use efgs_core::model::{CertificateType, DiagnosisKey, FormatVersion};
use efgs_core::store::{
    AuditGroup, BatchInfo, BatchStore, CleanupReport, CreatedBatch, DownloadStat, KeyConflicts,
    KeyCounts, KeyHash, KeyStore, NewUpload, PendingSummary, Readmission, RetentionStore,
    StatsStore, StoreError, StoreInspect, TrustEntry, TrustListStore, UploadInfo, UploadOutcome,
    UploadReceipt, UploadStat, UploadStore, Upserted, to_store_precision,
};
use efgs_core::store::{
    CallbackStore, CallbackTask, Subscription, SubscriptionUpsert, TaskClaim, TaskFinish,
    TaskResult,
};
use efgs_core::tag::BatchTag;
use prost::Message;
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use crate::config::PgConfig;
use crate::crypto::Ciphers;
use crate::db::Db;
use crate::error::{ConnectError, PgError};
use crate::migrate::LOCK_CLASS;
use crate::stamps::{Kind as StampKind, Stamps};
use crate::stats::StatsQueue;

/// How often an upload or batch transaction is retried after a deadlock or serialization
/// failure before the caller gets `Unavailable`.
const MAX_ATTEMPTS: usize = 3;

/// The PostgreSQL store. Cheap to clone (the pool is shared).
///
/// Open it with [`PgStore::connect`]; it implements every trait of `efgs_core::store`.
#[derive(Clone, Debug)]
pub struct PgStore {
    pub(crate) db: Arc<Db>,
    /// The change stamps, polled in the background (`crate::stamps`).
    stamps: Arc<Stamps>,
    /// Download statistics rows on their way to the database (`crate::stats`).
    stats: Arc<StatsQueue>,
}

impl PgStore {
    /// Connects: builds the pool, creates the configured schema if missing, and applies the
    /// embedded migrations (serialised across instances). Fails with
    /// `StoreError::Unavailable` when the database cannot be reached, and with
    /// `StoreError::Backend` for invalid settings or a database migrated by an unknown
    /// (newer) version.
    pub async fn connect(cfg: &PgConfig) -> Result<Self, ConnectError> {
        let db = Arc::new(Db::connect(cfg).await?);
        let stamps = Arc::new(Stamps::new());
        crate::stamps::spawn_poller(Arc::downgrade(&db), Arc::downgrade(&stamps));
        let stats = Arc::new(StatsQueue::start(Arc::clone(&db), cfg.wait_timeout));
        Ok(PgStore { db, stamps, stats })
    }

    /// After a write of `certificates` or `batches` through this handle: reads the stamps, so
    /// this handle's next stamp reflects the write (if that fails, the next stamp call reads
    /// them itself).
    async fn after_stamped_write(&self) {
        if self.stamps.poll(&self.db).await.is_err() {
            self.stamps.invalidate();
        }
    }

    async fn stamp(&self, kind: StampKind) -> Result<Option<u64>, StoreError> {
        Ok(Some(self.stamps.current(&self.db, kind).await?))
    }

    /// Closes the pool: waiting and later calls fail with `Unavailable`.
    pub fn close(&self) {
        self.db.pool.close();
    }

    /// Re-encrypts up to `limit` key rows sealed under a key id other than the active one,
    /// so that an old encryption key can be removed from the configuration afterwards.
    /// Returns how many rows were re-encrypted (0 when none is left). Each call is one
    /// transaction.
    pub async fn reencrypt_keys(&self, limit: usize) -> Result<u64, StoreError> {
        Ok(self.reencrypt_inner(limit).await?)
    }

    async fn reencrypt_inner(&self, limit: usize) -> Result<u64, PgError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut client = self.db.client().await?;
        let tx = client.transaction().await?;
        let active = self.db.ring.active();
        let rows = tx
            .query(
                &cached(
                    &tx,
                    "SELECT upload_id, position, dup_hash, key_id, nonce, payload FROM keys \
                 WHERE key_id <> $1 LIMIT $2 FOR UPDATE SKIP LOCKED",
                )
                .await?,
                &[&active, &limit],
            )
            .await?;
        let update = tx
            .prepare("UPDATE keys SET key_id = $3, nonce = $4, payload = $5 WHERE upload_id = $1 AND position = $2")
            .await?;
        let nonces = Ciphers::nonces(rows.len())?;
        for (row, nonce) in rows.iter().zip(nonces) {
            let upload_id: i64 = row.try_get(0)?;
            let position: i32 = row.try_get(1)?;
            let hash: &[u8] = row.try_get(2)?;
            let plain =
                self.db
                    .ring
                    .open(row.try_get(3)?, row.try_get(4)?, hash, row.try_get(5)?)?;
            let sealed = self.db.ring.seal_with_nonce(hash, &plain, nonce)?;
            tx.execute(
                &update,
                &[
                    &upload_id,
                    &position,
                    &sealed.key_id,
                    &&sealed.nonce[..],
                    &sealed.ciphertext,
                ],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(rows.len() as u64)
    }
}

impl From<PgError> for StoreError {
    fn from(e: PgError) -> Self {
        if e.is_transient() {
            return StoreError::Unavailable {
                source: Box::new(e),
            };
        }
        if e.is_unique_violation() {
            let what = match e.constraint() {
                Some("certificates_thumbprint_key") => "trust-list entry",
                Some("batches_tag_key" | "batches_date_seq_key") => "download batch",
                Some("uploads_country_tag_key") => "upload",
                Some("keys_dup_hash_key") => "diagnosis key",
                Some("callback_subscriptions_country_id_key") => "callback subscription",
                _ => "record",
            };
            return StoreError::AlreadyExists { what };
        }
        StoreError::Backend {
            backend: "postgres",
            source: Box::new(e),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Row helpers
// ---------------------------------------------------------------------------------------------

fn thumbprint(row: &Row, idx: usize) -> Result<Thumbprint, PgError> {
    let s: &str = row.try_get(idx)?;
    Thumbprint::parse_hex(s).ok_or(PgError::Corrupt("thumbprint"))
}

fn batch_tag(s: &str) -> Result<BatchTag, PgError> {
    BatchTag::parse(s).map_err(PgError::corrupt("download batch tag"))
}

fn count(row: &Row, idx: usize) -> Result<u64, PgError> {
    let n: i64 = row.try_get(idx)?;
    u64::try_from(n).map_err(PgError::corrupt("negative count"))
}

fn key_count(row: &Row, idx: usize) -> Result<u64, PgError> {
    let n: i32 = row.try_get(idx)?;
    u64::try_from(n).map_err(PgError::corrupt("negative key count"))
}

fn to_i64(n: u64) -> Result<i64, PgError> {
    i64::try_from(n).map_err(|source| PgError::OutOfRange {
        what: "count",
        source,
    })
}

fn format_version(row: &Row, major: usize, minor: usize) -> Result<FormatVersion, PgError> {
    let ma: i32 = row.try_get(major)?;
    let mi: i32 = row.try_get(minor)?;
    Ok(FormatVersion {
        major: u16::try_from(ma).map_err(PgError::corrupt("format version"))?,
        minor: u16::try_from(mi).map_err(PgError::corrupt("format version"))?,
    })
}

/// `SELECT tag, created_at, next_tag, key_count` → `BatchInfo`.
fn batch_info(row: &Row) -> Result<BatchInfo, PgError> {
    let tag: &str = row.try_get(0)?;
    let link: Option<&str> = row.try_get(2)?;
    Ok(BatchInfo {
        tag: batch_tag(tag)?,
        created_at: row.try_get(1)?,
        link: link.map(batch_tag).transpose()?,
        number_of_keys: key_count(row, 3)?,
    })
}

const BATCH_COLUMNS: &str = "tag, created_at, next_tag, key_count";

/// Prepares `sql` through the connection's statement cache (saves a round trip per call).
pub(crate) async fn cached<C: GenericClient>(
    client: &C,
    sql: &str,
) -> Result<tokio_postgres::Statement, PgError> {
    Ok(client.prepare_cached(sql).await?)
}

/// Takes the advisory lock that serialises batch creation and retention within the schema.
async fn lock_batching(tx: &impl GenericClient) -> Result<(), PgError> {
    tx.execute(
        &cached(
            tx,
            "SELECT pg_advisory_xact_lock($1, hashtext('batching:' || current_schema()))",
        )
        .await?,
        &[&LOCK_CLASS],
    )
    .await?;
    Ok(())
}

/// Whether an error inside a transaction is worth retrying the whole transaction.
fn retry_in_place(e: &PgError) -> bool {
    use tokio_postgres::error::SqlState;
    matches!(
        e.sql_state(),
        Some(s) if *s == SqlState::T_R_DEADLOCK_DETECTED || *s == SqlState::T_R_SERIALIZATION_FAILURE
    )
}

// ---------------------------------------------------------------------------------------------
// Trust list
// ---------------------------------------------------------------------------------------------

const TRUST_COLUMNS: &str = "thumbprint, country, cert_type, pem, signature, revoked, created_at";

fn trust_entry(row: &Row) -> Result<TrustEntry, PgError> {
    let cert_type: &str = row.try_get(2)?;
    Ok(TrustEntry {
        thumbprint: thumbprint(row, 0)?,
        country: row.try_get(1)?,
        cert_type: CertificateType::parse(cert_type).ok_or(PgError::Corrupt("certificate type"))?,
        pem: row.try_get(3)?,
        signature: row.try_get(4)?,
        revoked: row.try_get(5)?,
        created_at: row.try_get(6)?,
    })
}

impl PgStore {
    /// One transaction: insert the entry if its thumbprint is new, otherwise lock the stored
    /// row (a concurrent revocation waits, and is never overwritten), apply
    /// `Upserted::for_stored` and write only what the rule says.
    async fn upsert_trust(&self, mut entry: TrustEntry) -> Result<Upserted, PgError> {
        entry.created_at = to_store_precision(entry.created_at);
        let mut client = self.db.client().await?;
        let tx = client.transaction().await?;
        let params: [&(dyn ToSql + Sync); 7] = [
            &entry.thumbprint.as_str(),
            &entry.country,
            &entry.cert_type.as_str(),
            &entry.pem,
            &entry.signature,
            &entry.revoked,
            &entry.created_at,
        ];
        // Waits for a concurrent insert of the same thumbprint to commit or roll back.
        let insert = cached(
            &tx,
            "INSERT INTO certificates \
               (thumbprint, country, cert_type, pem, signature, revoked, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (thumbprint) DO NOTHING",
        )
        .await?;
        if tx.execute(&insert, &params).await? == 1 {
            tx.commit().await?;
            return Ok(Upserted::Inserted);
        }
        let row = tx
            .query_opt(
                &cached(
                    &tx,
                    &format!(
                        "SELECT {TRUST_COLUMNS} FROM certificates WHERE thumbprint = $1 \
                         FOR UPDATE"
                    ),
                )
                .await?,
                &[&entry.thumbprint.as_str()],
            )
            .await?;
        let stored = row.as_ref().map(trust_entry).transpose()?;
        let outcome = Upserted::for_stored(stored.as_ref(), &entry);
        match (&outcome, stored) {
            // Deleted between the two statements (never by this crate): store it now. A
            // concurrent insert in between is a unique violation (`AlreadyExists`).
            (Upserted::Inserted, _) => {
                tx.execute(
                    &cached(
                        &tx,
                        "INSERT INTO certificates \
                           (thumbprint, country, cert_type, pem, signature, revoked, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .await?,
                    &params,
                )
                .await?;
            }
            // Country and type are equal (the rule refuses any change); a revoked flag
            // stays set even if the rule were ever wrong.
            (Upserted::Replaced, _) => {
                tx.execute(
                    &cached(
                        &tx,
                        "UPDATE certificates SET pem = $2, signature = $3, \
                           revoked = revoked OR $4, created_at = $5 \
                         WHERE thumbprint = $1",
                    )
                    .await?,
                    &[
                        &entry.thumbprint.as_str(),
                        &entry.pem,
                        &entry.signature,
                        &entry.revoked,
                        &entry.created_at,
                    ],
                )
                .await?;
            }
            _ => {}
        }
        tx.commit().await?;
        Ok(outcome)
    }

    /// Clears the revoked flag under a row lock; `None` when there is no such entry.
    async fn readmit_trust(&self, thumbprint: &Thumbprint) -> Result<Option<Readmission>, PgError> {
        let mut client = self.db.client().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_opt(
                &cached(
                    &tx,
                    "SELECT revoked FROM certificates WHERE thumbprint = $1 FOR UPDATE",
                )
                .await?,
                &[&thumbprint.as_str()],
            )
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let revoked: bool = row.try_get(0)?;
        if !revoked {
            return Ok(Some(Readmission::NotRevoked));
        }
        tx.execute(
            &cached(
                &tx,
                "UPDATE certificates SET revoked = false WHERE thumbprint = $1",
            )
            .await?,
            &[&thumbprint.as_str()],
        )
        .await?;
        tx.commit().await?;
        Ok(Some(Readmission::Readmitted))
    }
}

impl PgStore {
    async fn revoke_trust(&self, thumbprint: &Thumbprint) -> Result<(), StoreError> {
        let client = self.db.client().await?;
        let n = client
            .execute(
                &cached(
                    &client,
                    "UPDATE certificates SET revoked = true WHERE thumbprint = $1",
                )
                .await?,
                &[&thumbprint.as_str()],
            )
            .await
            .map_err(PgError::from)?;
        if n == 0 {
            return Err(StoreError::NotFound {
                what: "trust-list entry",
            });
        }
        Ok(())
    }
}

#[async_trait]
impl TrustListStore for PgStore {
    async fn upsert_trust_entry(&self, entry: TrustEntry) -> Result<Upserted, StoreError> {
        let r = self.upsert_trust(entry).await;
        self.after_stamped_write().await;
        Ok(r?)
    }

    async fn trust_list_stamp(&self) -> Result<Option<u64>, StoreError> {
        self.stamp(StampKind::TrustList).await
    }

    async fn trust_entry(&self, thumbprint: &Thumbprint) -> Result<Option<TrustEntry>, StoreError> {
        let client = self.db.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {TRUST_COLUMNS} FROM certificates WHERE thumbprint = $1"
            ))
            .await
            .map_err(PgError::from)?;
        let row = client
            .query_opt(&stmt, &[&thumbprint.as_str()])
            .await
            .map_err(PgError::from)?;
        Ok(row.as_ref().map(trust_entry).transpose()?)
    }

    async fn revoke_trust_entry(&self, thumbprint: &Thumbprint) -> Result<(), StoreError> {
        let r = self.revoke_trust(thumbprint).await;
        self.after_stamped_write().await;
        r
    }

    async fn readmit_trust_entry(
        &self,
        thumbprint: &Thumbprint,
    ) -> Result<Readmission, StoreError> {
        let r = self.readmit_trust(thumbprint).await;
        self.after_stamped_write().await;
        r?.ok_or(StoreError::NotFound {
            what: "trust-list entry",
        })
    }

    async fn list_trust_entries(&self) -> Result<Vec<TrustEntry>, StoreError> {
        let client = self.db.client().await?;
        let rows = client
            .query(
                &cached(
                    &client,
                    &format!(
                        "SELECT {TRUST_COLUMNS} FROM certificates ORDER BY country COLLATE \"C\", \
                     cert_type COLLATE \"C\", thumbprint COLLATE \"C\""
                    ),
                )
                .await?,
                &[],
            )
            .await
            .map_err(PgError::from)?;
        Ok(rows.iter().map(trust_entry).collect::<Result<_, _>>()?)
    }
}

// ---------------------------------------------------------------------------------------------
// Uploads
// ---------------------------------------------------------------------------------------------

/// A key row ready for COPY.
struct KeyRow {
    position: i32,
    hash: KeyHash,
    key_id: i16,
    nonce: [u8; crate::crypto::NONCE_LEN],
    payload: Vec<u8>,
}

/// The result of one attempt at storing an upload.
enum Attempt {
    Done(UploadOutcome),
    Retry,
}

/// The upload's key hashes, in upload order.
fn hashes_of(upload: &NewUpload) -> Vec<KeyHash> {
    upload.keys.iter().map(|k| k.hash).collect()
}

/// The duplicate rule ([`KeyConflicts::find`]) against the `stored` subset of the hashes.
fn conflicts_of(hashes: &[KeyHash], stored: &HashSet<Vec<u8>>) -> Option<KeyConflicts> {
    KeyConflicts::find(hashes, |h| stored.contains(&h[..]))
}

impl PgStore {
    /// Seals every key (AES-256-GCM, fresh nonce each) and sorts the rows by hash, so that
    /// concurrent uploads sharing keys take the index locks in one order and cannot deadlock.
    fn seal_rows(&self, upload: &NewUpload) -> Result<Vec<KeyRow>, PgError> {
        let nonces = Ciphers::nonces(upload.keys.len())?;
        let mut rows = Vec::with_capacity(upload.keys.len());
        let mut plain = Vec::with_capacity(128);
        for (i, (key, nonce)) in upload.keys.iter().zip(nonces).enumerate() {
            plain.clear();
            key.key.encode(&mut plain)?;
            let sealed = self.db.ring.seal_with_nonce(&key.hash, &plain, nonce)?;
            rows.push(KeyRow {
                position: i32::try_from(i).map_err(|source| PgError::OutOfRange {
                    what: "key position",
                    source,
                })?,
                hash: key.hash,
                key_id: sealed.key_id,
                nonce: sealed.nonce,
                payload: sealed.ciphertext,
            });
        }
        rows.sort_unstable_by_key(|r| r.hash);
        Ok(rows)
    }

    /// The stored subset of the upload's key hashes.
    async fn stored_hashes(
        client: &impl GenericClient,
        upload: &NewUpload,
    ) -> Result<HashSet<Vec<u8>>, PgError> {
        let hashes: Vec<&[u8]> = upload.keys.iter().map(|k| &k.hash[..]).collect();
        let rows = client
            .query(
                &cached(client, "SELECT dup_hash FROM keys WHERE dup_hash = ANY($1)").await?,
                &[&hashes],
            )
            .await?;
        rows.iter()
            .map(|r| r.try_get::<_, Vec<u8>>(0).map_err(PgError::from))
            .collect()
    }

    /// The stored upload under (country, tag): `content_digest, key_count, created_at`.
    async fn upload_by_tag(
        client: &impl GenericClient,
        upload: &NewUpload,
    ) -> Result<Option<Row>, PgError> {
        Ok(client
            .query_opt(
                &cached(
                    client,
                    "SELECT content_digest, key_count, created_at FROM uploads \
                 WHERE country = $1 AND batch_tag = $2",
                )
                .await?,
                &[&upload.country, &upload.batch_tag],
            )
            .await?)
    }

    /// The outcome when (country, tag) is already taken by the upload in `row`: the tag rule
    /// ([`UploadOutcome::for_taken_tag`]).
    fn taken(upload: &NewUpload, row: &Row) -> Result<UploadOutcome, PgError> {
        let digest: &[u8] = row.try_get(0)?;
        let digest: [u8; 32] = digest
            .try_into()
            .map_err(PgError::corrupt("content digest"))?;
        let earlier = UploadReceipt {
            country: upload.country.clone(),
            batch_tag: upload.batch_tag.clone(),
            number_of_keys: key_count(row, 1)?,
            created_at: row.try_get(2)?,
        };
        Ok(UploadOutcome::for_taken_tag(
            earlier,
            &digest,
            &upload.content_digest,
        ))
    }

    /// An upload repeating a key within itself can never be stored: report the tag rule
    /// first, then every index, reading both in one snapshot.
    async fn reject_repeats(
        &self,
        upload: &NewUpload,
        hashes: &[KeyHash],
        repeats: KeyConflicts,
    ) -> Result<UploadOutcome, PgError> {
        let mut client = self.db.client().await?;
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        if let Some(row) = Self::upload_by_tag(&tx, upload).await? {
            return Self::taken(upload, &row);
        }
        let stored = Self::stored_hashes(&tx, upload).await?;
        tx.commit().await?;
        // The repeats are conflicts whatever is stored; stored keys add to them.
        let conflicts = conflicts_of(hashes, &stored).unwrap_or(repeats);
        Ok(UploadOutcome::DuplicateKeys(conflicts))
    }

    /// One attempt at storing an upload whose keys are already sealed.
    async fn try_store(
        &self,
        upload: &NewUpload,
        hashes: &[KeyHash],
        rows: &[KeyRow],
        created_at: OffsetDateTime,
    ) -> Result<Attempt, PgError> {
        let mut client = self.db.client().await?;
        let tx = client.transaction().await?;
        // The upload row and its statistics row in one statement. ON CONFLICT waits for a
        // concurrent insert of the same (country, tag) to commit or roll back.
        let insert = tx
            .prepare_cached(
                "WITH u AS ( \
                   INSERT INTO uploads (country, batch_tag, batch_signature, uploader_thumbprint, \
                     signer_thumbprint, format_major, format_minor, content_digest, key_count, \
                     created_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                   ON CONFLICT (country, batch_tag) DO NOTHING \
                   RETURNING id, country, batch_tag, key_count, created_at), \
                 s AS ( \
                   INSERT INTO upload_stats (country, batch_tag, number_of_keys, created_at) \
                   SELECT country, batch_tag, key_count, created_at FROM u) \
                 SELECT id FROM u",
            )
            .await?;
        let n_keys = i32::try_from(rows.len()).map_err(|source| PgError::OutOfRange {
            what: "number of keys in one upload",
            source,
        })?;
        let params: [&(dyn ToSql + Sync); 10] = [
            &upload.country,
            &upload.batch_tag,
            &upload.batch_signature,
            &upload.uploader_thumbprint.as_str(),
            &upload.signing_thumbprint.as_str(),
            &i32::from(upload.format.major),
            &i32::from(upload.format.minor),
            &&upload.content_digest[..],
            &n_keys,
            &created_at,
        ];
        let Some(row) = tx.query_opt(&insert, &params).await? else {
            // The tag is taken by a committed upload.
            let existing = Self::upload_by_tag(&tx, upload).await?;
            tx.rollback().await?;
            return match existing {
                Some(row) => Ok(Attempt::Done(Self::taken(upload, &row)?)),
                // Deleted again in between (retention): try again.
                None => Ok(Attempt::Retry),
            };
        };
        let upload_id: i64 = row.try_get(0)?;
        if !rows.is_empty() {
            match copy_keys(&tx, upload_id, rows).await {
                Ok(()) => {}
                Err(e) if e.is_unique_violation() => {
                    tx.rollback().await?;
                    let stored = Self::stored_hashes(&client, upload).await?;
                    return Ok(match conflicts_of(hashes, &stored) {
                        Some(c) => Attempt::Done(UploadOutcome::DuplicateKeys(c)),
                        // The conflicting key was deleted in between: try again.
                        None => Attempt::Retry,
                    });
                }
                Err(e) => return Err(e),
            }
        }
        tx.commit().await?;
        Ok(Attempt::Done(UploadOutcome::Stored(UploadReceipt {
            country: upload.country.clone(),
            batch_tag: upload.batch_tag.clone(),
            number_of_keys: rows.len() as u64,
            created_at,
        })))
    }
}

/// Writes the key rows of one upload with binary COPY.
async fn copy_keys(
    tx: &deadpool_postgres::Transaction<'_>,
    upload_id: i64,
    rows: &[KeyRow],
) -> Result<(), PgError> {
    let stmt = tx
        .prepare_cached(
            "COPY keys (upload_id, position, dup_hash, key_id, nonce, payload) \
             FROM STDIN (FORMAT binary)",
        )
        .await?;
    let sink = tx.copy_in(&stmt).await?;
    let writer = BinaryCopyInWriter::new(
        sink,
        &[
            Type::INT8,
            Type::INT4,
            Type::BYTEA,
            Type::INT2,
            Type::BYTEA,
            Type::BYTEA,
        ],
    );
    tokio::pin!(writer);
    for r in rows {
        writer
            .as_mut()
            .write(&[
                &upload_id,
                &r.position,
                &&r.hash[..],
                &r.key_id,
                &&r.nonce[..],
                &r.payload,
            ])
            .await?;
    }
    writer.finish().await?;
    Ok(())
}

#[async_trait]
impl UploadStore for PgStore {
    async fn insert_upload(&self, upload: NewUpload) -> Result<UploadOutcome, StoreError> {
        let hashes = hashes_of(&upload);
        // Repeats inside the upload: the duplicate rule with nothing stored.
        if let Some(repeats) = KeyConflicts::find(&hashes, |_| false) {
            return Ok(self.reject_repeats(&upload, &hashes, repeats).await?);
        }
        let rows = self.seal_rows(&upload)?;
        let created_at = to_store_precision(upload.created_at);
        let mut last: Option<PgError> = None;
        for _ in 0..MAX_ATTEMPTS {
            match self.try_store(&upload, &hashes, &rows, created_at).await {
                Ok(Attempt::Done(outcome)) => return Ok(outcome),
                Ok(Attempt::Retry) => {}
                Err(e) if retry_in_place(&e) => last = Some(e),
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Unavailable {
            source: match last {
                Some(e) => Box::new(e),
                None => "the upload kept racing with concurrent deletions".into(),
            },
        })
    }

    async fn upload_info(
        &self,
        country: &str,
        batch_tag_: &str,
    ) -> Result<Option<UploadInfo>, StoreError> {
        let client = self.db.client().await?;
        let row = client
            .query_opt(
                &cached(
                    &client,
                    "SELECT u.key_count, u.format_major, u.format_minor, u.created_at, \
                        u.content_digest, b.tag \
                 FROM uploads u LEFT JOIN batches b ON b.id = u.batch_id \
                 WHERE u.country = $1 AND u.batch_tag = $2",
                )
                .await?,
                &[&country, &batch_tag_],
            )
            .await
            .map_err(PgError::from)?;
        let Some(row) = row else { return Ok(None) };
        let digest: &[u8] = row.try_get(4).map_err(PgError::from)?;
        let tag: Option<&str> = row.try_get(5).map_err(PgError::from)?;
        Ok(Some(UploadInfo {
            country: country.to_owned(),
            batch_tag: batch_tag_.to_owned(),
            number_of_keys: key_count(&row, 0)?,
            format: format_version(&row, 1, 2)?,
            created_at: row.try_get(3).map_err(PgError::from)?,
            content_digest: digest
                .try_into()
                .map_err(PgError::corrupt("content digest"))?,
            download_batch: tag.map(batch_tag).transpose()?,
        }))
    }
}

// ---------------------------------------------------------------------------------------------
// Download batches
// ---------------------------------------------------------------------------------------------

impl PgStore {
    async fn try_create_batch(
        &self,
        now: OffsetDateTime,
        max_keys: usize,
    ) -> Result<Option<CreatedBatch>, PgError> {
        let mut client = self.db.client().await?;
        let tx = client.transaction().await?;
        lock_batching(&tx).await?;
        // After the lock, every statement sees the batches of earlier lock holders.
        let latest = tx
            .query_opt(
                &cached(
                    &tx,
                    "SELECT id, tag, created_at FROM batches ORDER BY id DESC LIMIT 1",
                )
                .await?,
                &[],
            )
            .await?;
        let limit = i64::try_from(planner_lookahead(max_keys)).unwrap_or(i64::MAX);
        let pending = tx
            .query(
                &cached(
                    &tx,
                    "SELECT id, key_count, format_major, format_minor FROM uploads \
                 WHERE batch_id IS NULL AND key_count > 0 ORDER BY id LIMIT $1",
                )
                .await?,
                &[&limit],
            )
            .await?;
        let mut plan = Vec::with_capacity(pending.len());
        for row in &pending {
            plan.push(PendingUpload {
                key_count: usize::try_from(key_count(row, 1)?)
                    .map_err(PgError::corrupt("key count"))?,
                format: format_version(row, 2, 3)?,
            });
        }
        let (previous_id, latest) = match &latest {
            Some(row) => {
                let id: i64 = row.try_get(0)?;
                let created: OffsetDateTime = row.try_get(2)?;
                (Some(id), Some((batch_tag(row.try_get(1)?)?, created)))
            }
            None => (None, None),
        };
        let Some(next) = plan_batch(latest, &plan, now, max_keys) else {
            tx.rollback().await?;
            return Ok(None);
        };
        let ids: Vec<i64> = pending
            .iter()
            .take(next.uploads)
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        let previous_tag = latest.map(|(t, _)| t);
        let (tag, at, keys, format) = (next.tag, next.created_at, next.number_of_keys, next.format);
        let tag_text = tag.to_string();
        let seq = i32::try_from(tag.seq).map_err(|source| PgError::OutOfRange {
            what: "batch sequence number",
            source,
        })?;
        let row = tx
            .query_one(
                &cached(
                    &tx,
                    "INSERT INTO batches (tag, batch_date, seq, created_at, key_count, \
                   format_major, format_minor) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                )
                .await?,
                &[
                    &tag_text,
                    &tag.date,
                    &seq,
                    &at,
                    &i32::try_from(keys).map_err(|source| PgError::OutOfRange {
                        what: "batch key count",
                        source,
                    })?,
                    &i32::from(format.major),
                    &i32::from(format.minor),
                ],
            )
            .await?;
        let batch_id: i64 = row.try_get(0)?;
        if let Some(prev) = previous_id {
            tx.execute(
                &cached(&tx, "UPDATE batches SET next_tag = $2 WHERE id = $1").await?,
                &[&prev, &tag_text],
            )
            .await?;
        }
        let claimed = tx
            .execute(
                &cached(
                    &tx,
                    "UPDATE uploads SET batch_id = $1 WHERE id = ANY($2) AND batch_id IS NULL",
                )
                .await?,
                &[&batch_id, &ids],
            )
            .await?;
        if claimed != ids.len() as u64 {
            // Cannot happen while batching and retention share the lock.
            return Err(PgError::Corrupt(
                "pending uploads changed under the batching lock",
            ));
        }
        tx.commit().await?;
        Ok(Some(CreatedBatch {
            batch: BatchInfo {
                tag,
                created_at: at,
                link: None,
                number_of_keys: keys,
            },
            previous: previous_tag,
            uploads: ids.len() as u64,
        }))
    }
}

#[async_trait]
impl BatchStore for PgStore {
    async fn pending_summary(&self) -> Result<PendingSummary, StoreError> {
        let client = self.db.client().await?;
        let row = client
            .query_one(
                &cached(
                    &client,
                    "SELECT count(*), coalesce(sum(key_count), 0)::int8, min(created_at) \
                 FROM uploads WHERE batch_id IS NULL AND key_count > 0",
                )
                .await?,
                &[],
            )
            .await
            .map_err(PgError::from)?;
        Ok(PendingSummary {
            uploads: count(&row, 0)?,
            keys: count(&row, 1)?,
            oldest: row.try_get(2).map_err(PgError::from)?,
        })
    }

    async fn create_next_batch(
        &self,
        now: OffsetDateTime,
        max_keys: usize,
    ) -> Result<Option<CreatedBatch>, StoreError> {
        let mut last = None;
        for _ in 0..MAX_ATTEMPTS {
            match self.try_create_batch(now, max_keys).await {
                Ok(r) => {
                    if r.is_some() {
                        self.after_stamped_write().await;
                    }
                    return Ok(r);
                }
                Err(e) if retry_in_place(&e) => last = Some(e),
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Unavailable {
            source: match last {
                Some(e) => Box::new(e),
                None => "batch creation kept failing".into(),
            },
        })
    }

    async fn batch_stamp(&self) -> Result<Option<u64>, StoreError> {
        self.stamp(StampKind::Batches).await
    }

    async fn batch_by_tag(&self, tag: &BatchTag) -> Result<Option<BatchInfo>, StoreError> {
        let client = self.db.client().await?;
        let row = client
            .query_opt(
                &cached(
                    &client,
                    &format!("SELECT {BATCH_COLUMNS} FROM batches WHERE tag = $1"),
                )
                .await?,
                &[&tag.to_string()],
            )
            .await
            .map_err(PgError::from)?;
        Ok(row.as_ref().map(batch_info).transpose()?)
    }

    async fn first_batch_at_or_after(
        &self,
        instant: OffsetDateTime,
    ) -> Result<Option<BatchInfo>, StoreError> {
        let client = self.db.client().await?;
        let row = client
            .query_opt(
                &cached(
                    &client,
                    &format!(
                        "SELECT {BATCH_COLUMNS} FROM batches WHERE created_at >= $1 \
                     ORDER BY created_at, id LIMIT 1"
                    ),
                )
                .await?,
                &[&to_store_precision(instant)],
            )
            .await
            .map_err(PgError::from)?;
        Ok(row.as_ref().map(batch_info).transpose()?)
    }
}

// ---------------------------------------------------------------------------------------------
// Keys of a batch
// ---------------------------------------------------------------------------------------------

#[async_trait]
impl KeyStore for PgStore {
    async fn batch_keys(
        &self,
        tag: &BatchTag,
        exclude_uploader_country: Option<&str>,
    ) -> Result<Vec<DiagnosisKey>, StoreError> {
        let client = self.db.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT k.dup_hash, k.key_id, k.nonce, k.payload \
                 FROM batches b \
                 JOIN uploads u ON u.batch_id = b.id \
                 JOIN keys k ON k.upload_id = u.id \
                 WHERE b.tag = $1 AND ($2::text IS NULL OR u.country <> $2) \
                 ORDER BY u.id, k.position",
            )
            .await
            .map_err(PgError::from)?;
        let rows = client
            .query(&stmt, &[&tag.to_string(), &exclude_uploader_country])
            .await
            .map_err(PgError::from)?;
        let mut keys = Vec::with_capacity(rows.len());
        for row in &rows {
            keys.push(self.open_key(row)?);
        }
        Ok(keys)
    }

    async fn audit_groups(&self, tag: &BatchTag) -> Result<Vec<AuditGroup>, StoreError> {
        let client = self.db.client().await?;
        let rows = client
            .query(
                &cached(
                    &client,
                    "SELECT u.country, u.batch_tag, u.created_at, u.uploader_thumbprint, \
                        u.signer_thumbprint, u.batch_signature, u.key_count \
                 FROM batches b JOIN uploads u ON u.batch_id = b.id \
                 WHERE b.tag = $1 AND u.key_count > 0 ORDER BY u.id",
                )
                .await?,
                &[&tag.to_string()],
            )
            .await
            .map_err(PgError::from)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(AuditGroup {
                country: row.try_get(0).map_err(PgError::from)?,
                batch_tag: row.try_get(1).map_err(PgError::from)?,
                uploaded_at: row.try_get(2).map_err(PgError::from)?,
                uploader_thumbprint: thumbprint(row, 3)?,
                signing_thumbprint: thumbprint(row, 4)?,
                batch_signature: row.try_get(5).map_err(PgError::from)?,
                amount: key_count(row, 6)?,
            });
        }
        Ok(out)
    }
}

impl PgStore {
    /// Decrypts and decodes one `dup_hash, key_id, nonce, payload` row.
    fn open_key(&self, row: &Row) -> Result<DiagnosisKey, PgError> {
        let hash: &[u8] = row.try_get(0)?;
        let plain = self
            .db
            .ring
            .open(row.try_get(1)?, row.try_get(2)?, hash, row.try_get(3)?)?;
        DiagnosisKey::decode(plain.as_slice()).map_err(PgError::corrupt("key payload"))
    }

    /// Runs a statistics query whose only parameter is the `since` instant.
    async fn rows_since(&self, sql: &str, since: OffsetDateTime) -> Result<Vec<Row>, StoreError> {
        let client = self.db.client().await?;
        let statement = cached(&client, sql).await?;
        Ok(client
            .query(&statement, &[&to_store_precision(since)])
            .await
            .map_err(PgError::from)?)
    }
}

// ---------------------------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------------------------

#[async_trait]
impl StatsStore for PgStore {
    /// Queues the row for the background writer (`crate::stats`).
    async fn record_download(&self, stat: DownloadStat) -> Result<(), StoreError> {
        self.stats.record(stat).await
    }

    async fn flush_download_stats(&self) -> Result<(), StoreError> {
        self.stats.flush().await
    }
}

// ---------------------------------------------------------------------------------------------
// Retention
// ---------------------------------------------------------------------------------------------

impl PgStore {
    async fn delete_keys_inner(
        &self,
        cutoff: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<CleanupReport, PgError> {
        let cutoff = to_store_precision(cutoff);
        let ran_at = to_store_precision(now);
        let mut client = self.db.client().await?;
        let tx = client.transaction().await?;
        lock_batching(&tx).await?;
        // One statement, one snapshot: the counts before and the deleted count agree.
        let row = tx
            .query_one(
                &cached(&tx, "WITH del AS (DELETE FROM uploads WHERE created_at < $1 RETURNING id, key_count), \
                      dk AS (DELETE FROM keys WHERE upload_id IN (SELECT id FROM del)) \
                 SELECT (SELECT coalesce(sum(key_count), 0) FROM uploads)::int8, \
                        (SELECT coalesce(sum(key_count), 0) FROM del)::int8").await?,
                &[&cutoff],
            )
            .await?;
        let keys_before = count(&row, 0)?;
        let deleted = count(&row, 1)?;
        let keys_after = keys_before
            .checked_sub(deleted)
            .ok_or(PgError::Corrupt("deleted more keys than stored"))?;
        let report = CleanupReport {
            ran_at,
            cutoff,
            deleted,
            keys_before,
            keys_after,
        };
        tx.execute(
            &cached(
                &tx,
                "INSERT INTO cleanup_stats (ran_at, cutoff, deleted, keys_before, keys_after) \
             VALUES ($1, $2, $3, $4, $5)",
            )
            .await?,
            &[
                &ran_at,
                &cutoff,
                &to_i64(deleted)?,
                &to_i64(keys_before)?,
                &to_i64(keys_after)?,
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(report)
    }

    async fn delete_batches_inner(&self, cutoff: OffsetDateTime) -> Result<u64, PgError> {
        let mut client = self.db.client().await?;
        let tx = client.transaction().await?;
        lock_batching(&tx).await?;
        let n = tx
            .execute(
                &cached(
                    &tx,
                    "DELETE FROM batches b WHERE b.created_at < $1 \
                   AND b.id <> (SELECT max(id) FROM batches) \
                   AND NOT EXISTS (SELECT 1 FROM uploads u WHERE u.batch_id = b.id)",
                )
                .await?,
                &[&to_store_precision(cutoff)],
            )
            .await?;
        tx.commit().await?;
        Ok(n)
    }
}

#[async_trait]
impl RetentionStore for PgStore {
    async fn delete_keys_before(
        &self,
        cutoff: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<CleanupReport, StoreError> {
        Ok(self.delete_keys_inner(cutoff, now).await?)
    }

    async fn delete_batches_before(&self, cutoff: OffsetDateTime) -> Result<u64, StoreError> {
        let r = self.delete_batches_inner(cutoff).await;
        self.after_stamped_write().await;
        Ok(r?)
    }
}

// ---------------------------------------------------------------------------------------------
// Inspection
// ---------------------------------------------------------------------------------------------

#[async_trait]
impl StoreInspect for PgStore {
    async fn latest_batch(&self) -> Result<Option<BatchInfo>, StoreError> {
        let client = self.db.client().await?;
        let row = client
            .query_opt(
                &cached(
                    &client,
                    &format!("SELECT {BATCH_COLUMNS} FROM batches ORDER BY id DESC LIMIT 1"),
                )
                .await?,
                &[],
            )
            .await
            .map_err(PgError::from)?;
        Ok(row.as_ref().map(batch_info).transpose()?)
    }

    async fn upload_stats(&self, since: OffsetDateTime) -> Result<Vec<UploadStat>, StoreError> {
        let rows = self
            .rows_since(
                "SELECT country, batch_tag, number_of_keys, created_at FROM upload_stats \
                 WHERE created_at >= $1 ORDER BY id",
                since,
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(UploadStat {
                country: row.try_get(0).map_err(PgError::from)?,
                batch_tag: row.try_get(1).map_err(PgError::from)?,
                number_of_keys: count(row, 2)?,
                created_at: row.try_get(3).map_err(PgError::from)?,
            });
        }
        Ok(out)
    }

    async fn download_stats(&self, since: OffsetDateTime) -> Result<Vec<DownloadStat>, StoreError> {
        // This handle's own rows first (they may still be queued).
        self.stats.flush().await?;
        let rows = self
            .rows_since(
                "SELECT country, batch_tag, number_of_keys, requested_at FROM download_stats \
                 WHERE requested_at >= $1 ORDER BY id",
                since,
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(DownloadStat {
                country: row.try_get(0).map_err(PgError::from)?,
                batch_tag: batch_tag(row.try_get(1).map_err(PgError::from)?)?,
                number_of_keys: count(row, 2)?,
                requested_at: row.try_get(3).map_err(PgError::from)?,
            });
        }
        Ok(out)
    }

    async fn cleanup_stats(&self, since: OffsetDateTime) -> Result<Vec<CleanupReport>, StoreError> {
        let rows = self
            .rows_since(
                "SELECT ran_at, cutoff, deleted, keys_before, keys_after FROM cleanup_stats \
                 WHERE ran_at >= $1 ORDER BY id",
                since,
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(CleanupReport {
                ran_at: row.try_get(0).map_err(PgError::from)?,
                cutoff: row.try_get(1).map_err(PgError::from)?,
                deleted: count(row, 2)?,
                keys_before: count(row, 3)?,
                keys_after: count(row, 4)?,
            });
        }
        Ok(out)
    }

    async fn key_counts(&self) -> Result<KeyCounts, StoreError> {
        let client = self.db.client().await?;
        let row = client
            .query_one(
                &cached(
                    &client,
                    "SELECT coalesce(sum(key_count), 0)::int8, \
                        coalesce(sum(key_count) FILTER (WHERE batch_id IS NULL), 0)::int8 \
                 FROM uploads",
                )
                .await?,
                &[],
            )
            .await
            .map_err(PgError::from)?;
        Ok(KeyCounts {
            stored: count(&row, 0)?,
            pending: count(&row, 1)?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Callback subscriptions
// ---------------------------------------------------------------------------------------------

fn retries_of(row: &Row, idx: usize) -> Result<u32, PgError> {
    let n: i32 = row.try_get(idx)?;
    u32::try_from(n).map_err(PgError::corrupt("negative retry count"))
}

fn to_i32(n: u32) -> Result<i32, PgError> {
    i32::try_from(n).map_err(|source| PgError::OutOfRange {
        what: "retry count",
        source,
    })
}

impl PgStore {
    async fn upsert_subscription_inner(
        &self,
        country: &str,
        callback_id: &str,
        url: &str,
        now: OffsetDateTime,
    ) -> Result<SubscriptionUpsert, PgError> {
        let client = self.db.client().await?;
        // One statement: insert at the latest batch, or update the URL (resetting the retry
        // state when the URL changes or the subscription was suspended). `xmax = 0` tells an
        // insert from an update; `was_suspended` is read from the row before the update.
        let row = client
            .query_one(
                &cached(
                    &client,
                    "WITH before AS ( \
                       SELECT suspended_at IS NOT NULL AS was_suspended FROM callback_subscriptions \
                       WHERE country = $1 AND callback_id = $2) \
                     INSERT INTO callback_subscriptions (country, callback_id, url, created_at, position) \
                     VALUES ($1, $2, $3, $4, coalesce((SELECT max(id) FROM batches), 0)) \
                     ON CONFLICT (country, callback_id) DO UPDATE SET \
                       url = EXCLUDED.url, \
                       retries = CASE WHEN callback_subscriptions.suspended_at IS NOT NULL \
                                        OR callback_subscriptions.url <> EXCLUDED.url \
                                      THEN 0 ELSE callback_subscriptions.retries END, \
                       next_attempt_at = CASE WHEN callback_subscriptions.suspended_at IS NOT NULL \
                                        OR callback_subscriptions.url <> EXCLUDED.url \
                                      THEN NULL ELSE callback_subscriptions.next_attempt_at END, \
                       suspended_at = NULL \
                     RETURNING (xmax = 0) AS inserted, \
                       coalesce((SELECT was_suspended FROM before), false) AS was_suspended",
                )
                .await?,
                &[&country, &callback_id, &url, &to_store_precision(now)],
            )
            .await?;
        let inserted: bool = row.try_get(0)?;
        let was_suspended: bool = row.try_get(1)?;
        Ok(if inserted {
            SubscriptionUpsert::Created
        } else if was_suspended {
            SubscriptionUpsert::Reactivated
        } else {
            SubscriptionUpsert::Updated
        })
    }

    async fn claim_callback_tasks_inner(
        &self,
        claim: &TaskClaim,
    ) -> Result<Vec<CallbackTask>, PgError> {
        let client = self.db.client().await?;
        let limit = i64::try_from(claim.limit).unwrap_or(i64::MAX);
        // Lock due subscriptions (skipping those another instance is claiming right now), lease
        // them, and return each with the first batch after its position, in one statement.
        let rows = client
            .query(
                &cached(
                    &client,
                    "WITH due AS ( \
                       SELECT s.id FROM callback_subscriptions s \
                       WHERE s.suspended_at IS NULL \
                         AND (s.lease_until IS NULL OR s.lease_until <= $1) \
                         AND (s.next_attempt_at IS NULL OR s.next_attempt_at <= $1) \
                         AND EXISTS (SELECT 1 FROM batches b WHERE b.id > s.position) \
                       ORDER BY s.id LIMIT $4 \
                       FOR UPDATE SKIP LOCKED), \
                     leased AS ( \
                       UPDATE callback_subscriptions s SET lease_holder = $2, lease_until = $3 \
                       FROM due WHERE s.id = due.id \
                       RETURNING s.id, s.country, s.callback_id, s.url, s.retries, s.position) \
                     SELECT l.country, l.callback_id, l.url, l.retries, \
                            b.id, b.tag, b.created_at, b.next_tag, b.key_count \
                     FROM leased l CROSS JOIN LATERAL ( \
                       SELECT id, tag, created_at, next_tag, key_count FROM batches \
                       WHERE id > l.position ORDER BY id LIMIT 1) b \
                     ORDER BY l.id",
                )
                .await?,
                &[
                    &to_store_precision(claim.now),
                    &claim.holder,
                    &to_store_precision(claim.lease_until),
                    &limit,
                ],
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let position: i64 = row.try_get(4)?;
            let tag: &str = row.try_get(5)?;
            let link: Option<&str> = row.try_get(7)?;
            out.push(CallbackTask {
                country: row.try_get(0)?,
                callback_id: row.try_get(1)?,
                url: row.try_get(2)?,
                retries: retries_of(row, 3)?,
                position: u64::try_from(position).map_err(PgError::corrupt("batch id"))?,
                batch: BatchInfo {
                    tag: batch_tag(tag)?,
                    created_at: row.try_get(6)?,
                    link: link.map(batch_tag).transpose()?,
                    number_of_keys: key_count(row, 8)?,
                },
            });
        }
        Ok(out)
    }

    async fn finish_inner(
        &self,
        task: &CallbackTask,
        holder: &str,
        result: TaskResult,
    ) -> Result<TaskFinish, PgError> {
        let client = self.db.client().await?;
        let position = to_i64(task.position)?;
        let (delivered, retries, next_attempt, suspended): (
            bool,
            i32,
            Option<OffsetDateTime>,
            Option<OffsetDateTime>,
        ) = match result {
            TaskResult::Delivered => (true, 0, None, None),
            TaskResult::Retry {
                retries,
                not_before,
            } => (
                false,
                to_i32(retries)?,
                Some(to_store_precision(not_before)),
                None,
            ),
            TaskResult::Suspend { retries, at } => {
                (false, to_i32(retries)?, None, Some(to_store_precision(at)))
            }
        };
        let n = client
            .execute(
                &cached(
                    &client,
                    "UPDATE callback_subscriptions SET \
                       position = CASE WHEN $5 THEN $4 ELSE position END, \
                       retries = $6, next_attempt_at = $7, suspended_at = $8, \
                       lease_holder = NULL, lease_until = NULL \
                     WHERE country = $1 AND callback_id = $2 AND lease_holder = $3 \
                       AND position < $4",
                )
                .await?,
                &[
                    &task.country,
                    &task.callback_id,
                    &holder,
                    &position,
                    &delivered,
                    &retries,
                    &next_attempt,
                    &suspended,
                ],
            )
            .await?;
        Ok(if n == 1 {
            TaskFinish::Recorded
        } else {
            TaskFinish::LeaseLost
        })
    }
}

#[async_trait]
impl CallbackStore for PgStore {
    async fn upsert_subscription(
        &self,
        country: &str,
        callback_id: &str,
        url: &str,
        now: OffsetDateTime,
    ) -> Result<SubscriptionUpsert, StoreError> {
        let mut last = None;
        for _ in 0..MAX_ATTEMPTS {
            match self
                .upsert_subscription_inner(country, callback_id, url, now)
                .await
            {
                Ok(r) => return Ok(r),
                // Two first PUTs racing on the unique key: the loser updates on the retry.
                Err(e) if e.is_unique_violation() || retry_in_place(&e) => last = Some(e),
                Err(e) => return Err(e.into()),
            }
        }
        Err(match last {
            Some(e) => e.into(),
            None => StoreError::Unavailable {
                source: "subscription upsert kept failing".into(),
            },
        })
    }

    async fn list_subscriptions(&self, country: &str) -> Result<Vec<Subscription>, StoreError> {
        let client = self.db.client().await?;
        let rows = client
            .query(
                &cached(
                    &client,
                    "SELECT country, callback_id, url, created_at, retries, next_attempt_at, \
                     suspended_at FROM callback_subscriptions WHERE country = $1 ORDER BY id",
                )
                .await?,
                &[&country],
            )
            .await
            .map_err(PgError::from)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(Subscription {
                country: row.try_get(0).map_err(PgError::from)?,
                callback_id: row.try_get(1).map_err(PgError::from)?,
                url: row.try_get(2).map_err(PgError::from)?,
                created_at: row.try_get(3).map_err(PgError::from)?,
                retries: retries_of(row, 4)?,
                next_attempt_at: row.try_get(5).map_err(PgError::from)?,
                suspended_at: row.try_get(6).map_err(PgError::from)?,
            });
        }
        Ok(out)
    }

    async fn delete_subscription(
        &self,
        country: &str,
        callback_id: &str,
    ) -> Result<bool, StoreError> {
        let client = self.db.client().await?;
        let n = client
            .execute(
                &cached(
                    &client,
                    "DELETE FROM callback_subscriptions WHERE country = $1 AND callback_id = $2",
                )
                .await?,
                &[&country, &callback_id],
            )
            .await
            .map_err(PgError::from)?;
        Ok(n > 0)
    }

    async fn claim_callback_tasks(
        &self,
        claim: &TaskClaim,
    ) -> Result<Vec<CallbackTask>, StoreError> {
        Ok(self.claim_callback_tasks_inner(claim).await?)
    }

    async fn finish_callback_task(
        &self,
        task: &CallbackTask,
        holder: &str,
        result: TaskResult,
    ) -> Result<TaskFinish, StoreError> {
        Ok(self.finish_inner(task, holder, result).await?)
    }
}
