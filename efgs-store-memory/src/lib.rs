//! efgs-store-memory: filled in by its issue.
