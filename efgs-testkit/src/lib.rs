//! efgs-testkit: filled in by its issue.
