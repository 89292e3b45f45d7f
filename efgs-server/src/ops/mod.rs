//! Operations: the audit trail ([`Trail`]), its push to log management ([`push`]), the
//! metrics ([`Metrics`]) and the private metrics and health listener ([`listener`]).
//!
//! # Hook for other features
//!
//! A feature adds events to the trail through [`Ops::trail`] (events stamped by
//! [`Trail::event`], written by [`Trail::record`], which returns once they are stored), and
//! counts through [`Metrics`]. The callback feature records `callback.subscription` (request
//! events, [`request`]) and `callback.delivery` ([`callback`]), and counts
//! [`Metrics::callback`] (`delivery`, `retry`, `suspension`); docs/operations.md lists them.

pub(crate) mod callback;
pub(crate) mod cli;
pub(crate) mod listener;
pub(crate) mod metrics;
pub(crate) mod push;
pub(crate) mod request;
pub(crate) mod start;
pub(crate) mod trail;

use std::sync::Arc;

pub(crate) use metrics::Metrics;
pub(crate) use trail::Trail;

/// What the handlers, jobs and listeners share for operations.
#[derive(Clone, Debug)]
pub(crate) struct Ops {
    /// The audit trail.
    pub(crate) trail: Trail,
    /// The metrics.
    pub(crate) metrics: Arc<Metrics>,
}

/// The version running and the git revision it was built from (`EFGS_GIT_REVISION` at build
/// time; `unknown` without it).
pub(crate) fn build_info() -> (&'static str, &'static str) {
    (
        env!("CARGO_PKG_VERSION"),
        option_env!("EFGS_GIT_REVISION").unwrap_or("unknown"),
    )
}
