//! efgs-testkit: shared test support for efgs-rs.
//!
//! - [`conformance`]: the storage conformance suite, one `pub async fn` per behaviour, and the
//!   [`conformance_tests!`] macro that turns it into one named test per behaviour and backend.
//! - [`generate`]: a small deterministic generator of keys and uploads.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod conformance;
pub mod generate;
