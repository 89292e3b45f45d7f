//! Simulated federations at scale (`efgs-sim run`, `efgs-sim readiness`).
//!
//! - [`growth`]: the table and chart of `efgs-sim growth`.
//! - [`ledger`]: what each country sent, had acknowledged and received, and the verdict
//!   computed from the ledgers alone.
//! - [`country`]: one simulated national backend in a run (habits, faults, retries, download
//!   cursor, audit re-verification).
//! - [`light`]: reading only the `keyData` of a download body, for the ledger.
//! - [`link`]: how a country reaches the gateway: in process or over HTTP.
//! - [`callback`]: downloading on callback: the countries' callback endpoints and their
//!   delivery logs.
//! - [`chaos`]: a store decorator that fails or delays chosen operations.
//! - [`run`]: the in-process and HTTP runs.
//! - [`report`]: the per-country report, JSON and SVG chart.
//! - [`pkidir`]: a PKI directory for runs against a gateway efgs-sim did not start.
//! - [`readiness`]: the peer check of a connecting member state.
//! - [`progress`]: the progress bar.

pub mod callback;
pub mod chaos;
pub mod country;
pub mod growth;
pub mod ledger;
pub mod light;
pub mod link;
pub mod pkidir;
pub mod progress;
pub mod readiness;
pub mod report;
pub mod run;
