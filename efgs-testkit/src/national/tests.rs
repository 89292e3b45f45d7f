#![allow(clippy::unwrap_used)]
use super::*;
use efgs_core::validate::{ValidationPolicy, validate_batch};
use time::macros::datetime;

#[test]
fn random_keys_pass_validation_all_day_long() {
    for now in [
        datetime!(2026-11-28 00:00 UTC),
        datetime!(2026-11-28 12:34:56 UTC),
        datetime!(2026-11-28 23:59:59 UTC),
    ] {
        let keys = random_keys("DE", 500, now, &["FR", "NL", "IT"]);
        assert_eq!(keys.len(), 500);
        let batch = DiagnosisKeyBatch { keys };
        validate_batch(&batch, now, &ValidationPolicy::default()).unwrap();
        let distinct: HashSet<_> = batch.keys.iter().map(|k| k.key_data.clone()).collect();
        assert_eq!(distinct.len(), 500);
        assert!(batch.keys.iter().all(|k| k.origin == "DE"));
        assert!(batch.keys.iter().any(|k| !k.visited_countries.is_empty()));
    }
}

#[test]
fn url_encode_keeps_only_unreserved() {
    assert_eq!(url_encode("a+b/c= d\n-._~"), "a%2Bb%2Fc%3D%20d%0A-._~");
}
