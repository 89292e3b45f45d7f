#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod audit;
pub mod batch_signature;
pub mod batching;
pub mod callback;
pub mod callback_url;
pub mod canonical;
pub mod cert;
pub mod country;
pub mod download;
pub mod download_cache;
pub mod error;
pub mod gateway;

#[doc = include_str!("guide.md")]
pub mod guide {}

pub mod identity;
pub mod json;
pub mod key_fields;
pub mod media;
pub mod model;
pub mod proto;
pub mod retention;
mod row_cache;
mod single_flight;
pub mod store;
pub mod tag;
pub mod trail;
pub mod trust;
pub mod validate;

pub use country::CountryCode;
pub use error::{BoxError, Error};
pub use model::{DiagnosisKey, DiagnosisKeyBatch, ReportType};
