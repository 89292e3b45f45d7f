//! efgs-server library: filled in by its issue.
