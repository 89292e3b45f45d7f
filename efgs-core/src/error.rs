//! The crate's top-level error, wrapping the error of each concern.

/// Any efgs-core error. Each concern has its own enum; this one wraps them so callers
/// (the server's one status table) can match on the kind.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {}
