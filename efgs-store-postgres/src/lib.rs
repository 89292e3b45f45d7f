//! efgs-store-postgres: filled in by its issue.
