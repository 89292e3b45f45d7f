//! Callback URL policy (to be filled in).

/// Errors of this concern.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallbackUrlError {}
