//! PostgreSQL storage backend for efgs-rs: [`PgStore`] implements every trait of
//! `efgs_core::store`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use efgs_store_postgres::{EncryptionKeys, PgConfig, PgStore};
//! let keys = EncryptionKeys::new(2, [(1, [0x11; 32]), (2, [0x22; 32])])?;
//! let store = PgStore::connect(&PgConfig::new("postgres://efgs@db/efgs", keys)).await?;
//! # drop(store); Ok(()) }
//! ```
//!
//! # Design
//!
//! - **Driver and pool:** tokio-postgres behind a deadpool pool (verified recycling, so a
//!   connection that died during a failover is replaced at checkout). No driver, pool or SQL
//!   type appears in the public API; errors leave the crate as `StoreError`.
//! - **Migrations:** SQL files in `migrations/`, embedded with `include_str!`, applied by
//!   [`PgStore::connect`] under an advisory lock (several instances may start at once), recorded
//!   with a SHA-256 checksum in `schema_migrations`. Forward-only; a database migrated by an
//!   unknown (newer) version, or whose recorded checksum differs, is refused.
//! - **Uploads:** one transaction per upload: the upload row and its statistics row in one
//!   statement (`INSERT … ON CONFLICT (country, batch_tag) DO NOTHING`, which waits for a
//!   concurrent insert of the same tag), then the keys with **binary COPY**. Key rows are sent
//!   sorted by duplicate hash, so concurrent uploads sharing keys lock index entries in one order
//!   and cannot deadlock. A unique violation on the duplicate hash rolls everything back and one
//!   `SELECT … = ANY(hashes)` reads the stored hashes for `KeyConflicts::find`, which builds the
//!   per-index 201/409 lists. Deadlocks and serialization failures are retried (3 attempts).
//! - **Promises as constraints:** `UNIQUE (country, batch_tag)` on uploads, `UNIQUE (dup_hash)`
//!   on keys, `UNIQUE (tag)` and `UNIQUE (batch_date, seq)` on batches, `UNIQUE (thumbprint)` on
//!   the trust list.
//! - **Protocol rules from efgs-core:** the `batchTag` rule (`UploadOutcome::for_taken_tag`),
//!   the duplicate rule behind the 207 lists (`KeyConflicts::find`), the trust-list upsert
//!   rule (`Upserted::for_stored`: revocation is one-way, a thumbprint keeps its country and
//!   type; applied under a `SELECT … FOR UPDATE` row lock) and the batch planner
//!   (`batching::plan_batch`) are efgs-core functions, shared with every backend; this crate
//!   supplies the rows they read and the transactions around them.
//! - **Batching:** `create_next_batch` runs in one transaction holding a transaction-level
//!   advisory lock (per schema), so batches from any number of instances form one dense chain:
//!   it reads the latest batch and the leading pending uploads (id order, as many as
//!   `batching::planner_lookahead` says the planner may read), applies
//!   `efgs_core::batching::plan_batch` (uploads, tag, instant), inserts the batch, links the
//!   previous batch and claims the uploads. Retention takes the same lock.
//! - **Encryption at rest** (decisions item 11): each key row holds one AES-256-GCM blob of the
//!   protobuf-encoded `DiagnosisKey`, a fresh random 96-bit nonce, and the id of the key that
//!   sealed it; the associated data binds the blob to the row's duplicate hash and key id. Only
//!   the upload id, position, duplicate hash (an HMAC chosen by the caller), nonce and key id
//!   are in clear. Rotation: configure the new key as active and keep the old one until
//!   [`PgStore::reencrypt_keys`] returns 0.
//! - **Transient failures** (pool wait timeout, refused or lost connections, SQLSTATE class 08,
//!   `57P01`–`57P03`, `53300`, `40001`, `40P01`, `55P03`, `57014`) become
//!   `StoreError::Unavailable`, so callers answer 503 and retry; other failures are
//!   `StoreError::Backend`.
//!
//! # Tests and benches
//!
//! `tests/conformance.rs` runs the shared suite (`postgres::<behaviour>`), `tests/pg_backend.rs`
//! the PostgreSQL-specific checks, each test in a fresh schema on `EFGS_TEST_DATABASE_URL`.
//! Without that variable they pass without running (printing why), unless `CI` or
//! `EFGS_REQUIRE_POSTGRES` is set. `scripts/pg-test-cluster.sh start` starts a private cluster
//! and prints the variable; `benches/ingest.rs` compares ingest with a raw COPY.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod config;
mod crypto;
mod db;
mod error;
mod migrate;
mod stamps;
mod stats;
mod store;
mod tls;
mod trail;

pub use config::{EncryptionKeys, KeyConfigError, KeyId, PgConfig, PgTls};
pub use error::ConnectError;
pub use store::PgStore;
pub use trail::PoolStatus;
