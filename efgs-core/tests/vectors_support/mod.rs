//! The committed test vectors of `efgs-core/tests/data/vectors/` (see the README there): the one
//! place that knows where they are. A missing or unreadable vector fails the test with its path;
//! no test skips because a vector is absent.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

/// The vector directory, inside this repository.
pub const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/vectors");

/// The path of a vector, `name` relative to [`DIR`] (e.g. `generated/batch3.pb`).
pub fn path(name: &str) -> PathBuf {
    PathBuf::from(DIR).join(name)
}

/// The bytes of a vector; panics, naming the path, when it cannot be read.
#[track_caller]
pub fn read(name: &str) -> Vec<u8> {
    let path = path(name);
    match std::fs::read(&path) {
        Ok(data) => data,
        Err(e) => panic!(
            "test vector {} cannot be read ({e}); the vectors are committed under \
             efgs-core/tests/data/vectors/",
            path.display()
        ),
    }
}

/// A vector as UTF-8 text.
#[track_caller]
pub fn read_string(name: &str) -> String {
    match String::from_utf8(read(name)) {
        Ok(text) => text,
        Err(e) => panic!("test vector {name}: {e}"),
    }
}

/// `generated/vectors.json`, parsed.
#[track_caller]
pub fn vectors_json() -> serde_json::Value {
    match serde_json::from_slice(&read("generated/vectors.json")) {
        Ok(value) => value,
        Err(e) => panic!("test vector generated/vectors.json: {e}"),
    }
}
