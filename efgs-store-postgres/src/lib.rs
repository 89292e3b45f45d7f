//! PostgreSQL storage backend for efgs-rs.
//!
//! - tokio-postgres behind a deadpool connection pool;
//! - SQL migrations embedded in the crate and applied on connect ([`PgBatchStore::connect`]);
//! - the keys of an upload written with binary COPY inside the upload's transaction;
//! - uniqueness promises enforced by database constraints;
//! - download batch creation serialised across instances with an advisory lock, so tags stay
//!   dense;
//! - key payloads encrypted with AES-256-GCM (fresh nonce per row, key id for rotation);
//! - transient failures (pool timeout, lost connection, serialization failure, shutdown)
//!   reported as `StoreError::Unavailable` so callers can answer 503 and retry.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod config;
mod crypto;
mod db;
mod error;
mod migrate;

pub use config::{EncryptionKeys, KeyConfigError, KeyId, PgConfig};
mod store;

pub use store::PgStore;
