//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the checks the fuzz
//! targets make, on stable, as part of `cargo test`.
//!
//! The checks live in `fuzz/src/checks.rs`, included here by path: efgs-core does not depend on
//! the fuzz crate, and the file uses only efgs-core's own dependencies. The `store_model`
//! target needs `efgs-store-memory` and is not replayed here. Every replayed corpus directory
//! must exist and be non-empty; a few named seeds also have a known outcome checked here.
#![allow(clippy::unwrap_used)]

#[path = "../../fuzz/src/checks.rs"]
#[allow(unreachable_pub, dead_code)]
mod checks;
mod vectors_support;

use std::path::PathBuf;

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus")).join(target)
}

/// Every file of the target's corpus (hidden files skipped), sorted by name; panics if the
/// directory is missing or empty.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus directory {}: {e}", dir.display()))
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.file_type().unwrap().is_file())
        .map(|entry| entry.file_name().into_string().unwrap())
        .filter(|name| !name.starts_with('.'))
        .map(|name| {
            let data = std::fs::read(dir.join(&name)).unwrap();
            (name, data)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {} is empty", dir.display());
    files
}

/// Runs `check` on every file of the corpus; the name is printed first so a failing file is
/// named in the test output.
fn replay(target: &str, mut check: impl FnMut(&[u8])) -> usize {
    let files = corpus(target);
    for (name, data) in &files {
        eprintln!("{target}/{name}");
        check(data);
    }
    files.len()
}

/// The content of a named seed.
fn seed(target: &str, name: &str) -> Vec<u8> {
    let path = corpus_dir(target).join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("seed {}: {e}", path.display()))
}

#[test]
fn decode_proto_corpus() {
    assert!(replay("decode_proto", checks::decode_proto) >= 4);
}

#[test]
fn decode_json_corpus() {
    assert!(replay("decode_json", checks::decode_json) >= 3);
}

#[test]
fn media_type_corpus() {
    assert!(replay("media_type", checks::media_type) >= 5);
}

#[test]
fn batch_tag_corpus() {
    replay("batch_tag", checks::batch_tag);
    let text = |name| String::from_utf8(seed("batch_tag", name)).unwrap();
    for name in ["tag_first", "tag_max_seq", "tag_year_zero", "tag_leap_day"] {
        let s = text(name);
        assert!(
            efgs_core::tag::BatchTag::parse(&s).is_ok(),
            "{name}: {s:?} parses"
        );
    }
    let s = text("tag_leading_zero");
    assert!(efgs_core::tag::BatchTag::parse(&s).is_err(), "{s:?}");
    for name in ["date", "date_leap"] {
        let s = text(name);
        assert!(efgs_core::download::parse_path_date(&s).is_ok(), "{s:?}");
    }
    for name in ["date_not_leap", "date_sign"] {
        let s = text(name);
        assert!(efgs_core::download::parse_path_date(&s).is_err(), "{s:?}");
    }
}

#[test]
fn canonical_corpus() {
    replay("canonical", checks::canonical);
}

/// The naive §4.1 oracle of the `canonical` check reproduces the Java-checked vector, so the
/// check compares against something right.
#[test]
fn canonical_oracle_matches_vector() {
    let pb = vectors_support::read("generated/batch3.pb");
    let expected = vectors_support::read("generated/batch3.canonical.txt");
    let batch = efgs_core::proto::decode_batch(&pb).unwrap();
    assert_eq!(checks::naive_batch_bytes(&batch.keys), expected);
    assert_eq!(seed("canonical", "batch3.pb"), pb);
}

#[test]
fn identity_corpus() {
    replay("identity", checks::identity);
}

#[test]
fn cms_verify_corpus() {
    let mut outcomes = Vec::new();
    let n = replay("cms_verify", |data| {
        outcomes.push(checks::cms_verify(data).expect("every seed has a length prefix"));
    });
    assert_eq!(outcomes.len(), n);
}

/// The named CMS seeds have the outcomes their producers intended (tests/data/vectors/README.md for the
/// `vector_` ones; the `openssl_` ones are OpenSSL CLI signatures by C=DE certificates).
#[test]
fn cms_verify_seed_outcomes() {
    let verify = |name: &str| checks::cms_verify(&seed("cms_verify", name)).unwrap();
    for name in [
        "openssl_ec_attr",
        "openssl_ec_noattr",
        "openssl_ec_keyid_sha384",
        "openssl_rsa_attr",
        "openssl_rsa_ber",
        "openssl_rsa_pss",
        "vector_sign_de_rsa",
        "vector_sign_de_ec",
        "vector_sign_de_rsa_noattr",
    ] {
        let signer = verify(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(signer.country, "DE", "{name}");
    }
    assert_eq!(verify("vector_sign_nl_ec").unwrap().country, "NL");
    assert_eq!(
        verify("vector_sign_de_ec_nocerts").unwrap_err().code(),
        "signature-signer-certificate-missing"
    );
    assert_eq!(
        verify("vector_sign_de_ec_wrong_content")
            .unwrap_err()
            .code(),
        "signature-digest-mismatch"
    );
    // Found by the fuzzer: a signing-time with a multi-byte character where the seconds are
    // made the time parser slice inside a character and panic.
    assert_eq!(
        verify("regression_signing_time_multibyte")
            .unwrap_err()
            .code(),
        "signature-attribute-invalid"
    );
    // Found by review (hardening issue): `openssl_ec_attr` with its signing time replaced by
    // the GeneralizedTime 99991231235959-2359, whose instant in UTC lies after year 9999; the
    // conversion panicked and the upload's connection closed without an answer.
    assert_eq!(
        verify("regression_signing_time_overflow")
            .unwrap_err()
            .code(),
        "signature-attribute-invalid"
    );
    // Representable signing times spliced in the same way parse; the changed signed
    // attributes then fail the signature (and nothing panics on the way).
    for name in [
        "signing_time_generalized_fraction",
        "signing_time_utc_offset",
    ] {
        assert_eq!(
            verify(name).unwrap_err().code(),
            "signature-bad-signature",
            "{name}"
        );
    }
}

#[test]
fn signing_time_corpus() {
    let mut accepted = std::collections::BTreeMap::new();
    let n = replay("signing_time", |data| {
        accepted.insert(data.to_vec(), checks::signing_time(data));
    });
    assert!(n >= 10);
    let outcome = |name: &str| checks::signing_time(&seed("signing_time", name));
    for refused in [
        "overflow_late",
        "generalized_local_refused",
        "utc_truncated",
        "multibyte",
    ] {
        assert_eq!(outcome(refused), None, "{refused}");
    }
    let t = |name: &str| outcome(name).unwrap_or_else(|| panic!("{name} refused"));
    assert_eq!(t("utc_z"), time::macros::datetime!(2026-11-29 12:00 UTC));
    // Year 0000 at +23:59 is still representable (the year before: -0001).
    assert_eq!(
        t("overflow_early"),
        time::macros::datetime!(-0001-12-31 0:01 UTC)
    );
    assert_eq!(
        t("utc_no_seconds_offset"),
        time::macros::datetime!(2050-01-01 01:29 UTC)
    );
    assert_eq!(
        t("generalized_long_fraction"),
        time::macros::datetime!(2030-01-01 00:00:00.123456789 UTC)
    );
    assert_eq!(
        t("leap_day"),
        time::macros::datetime!(2024-02-29 23:59:59.999 UTC)
    );
}

#[test]
fn cms_input_layout() {
    assert_eq!(checks::split_cms_input(b"\x00"), None);
    assert_eq!(
        checks::split_cms_input(b"\x03\x00abcDER"),
        Some((&b"abc"[..], &b"DER"[..]))
    );
    // A length beyond the input takes what is there; the CMS part is then empty.
    assert_eq!(
        checks::split_cms_input(b"\xff\xffab"),
        Some((&b"ab"[..], &b""[..]))
    );
}
