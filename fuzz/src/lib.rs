//! Support for the efgs-rs fuzz targets.
//!
//! [`checks`] holds one function per stateless target: the property the target asserts, over
//! the raw input bytes. The targets in `fuzz_targets/` are one-line wrappers around them, and
//! `efgs-core/tests/fuzz_corpus.rs` includes the same file (`#[path]`, no dependency on this
//! crate) to replay the committed corpus on stable.

pub mod checks;
