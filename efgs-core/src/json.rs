//! JSON codec in the reference's format (to be filled in).

/// Errors of this concern.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JsonError {}
