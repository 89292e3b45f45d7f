//! Download rules (to be filled in).

/// Errors of this concern.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DownloadError {}
