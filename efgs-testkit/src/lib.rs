//! efgs-testkit: shared test support for efgs-rs.
//!
//! - [`conformance`]: the storage conformance suite, one `pub async fn` per behaviour, and the
//!   [`conformance_tests!`] macro that turns it into one named test per behaviour and backend.
//! - [`generate`]: a small deterministic generator of keys and uploads.
//! - [`pki`]: a throw-away PKI (trust anchor, per-country certificates, signed trust-list
//!   entries).
//! - [`national`]: a simulated national backend speaking real HTTP to a gateway.
//! - [`federation`]: a whole federation on one machine (PKI, store, gateway, HTTP server,
//!   backends) with a controllable clock.
//! - [`demo`]: the `efgs-server demo` run: several countries exchanging keys end to end.
//! - [`sim`]: simulated federations at scale with faults and ledgers (`efgs-sim run`), and
//!   the peer readiness check (`efgs-sim readiness`).
//! - [`callbacks`]: callback receivers over mutual TLS on loopback and a resolver the test
//!   controls.
//! - [`faulty`], [`slow`]: store decorators that fail every call on demand, or delay and count
//!   chosen calls, over any real store.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod callbacks;
pub mod collector;
pub mod conformance;
pub mod demo;
pub mod faulty;
pub mod federation;
pub mod generate;
pub mod harness;
pub mod national;
pub mod pki;
pub mod sim;
pub mod slow;
