//! The gateway's upload pipeline for one full 5000-key protobuf upload, stage by stage and end to
//! end, as `Gateway::upload` runs it before the storage calls: protobuf decode, validation,
//! canonical bytes (with the sort), the content digest, the P-256 CMS verification, the origin
//! checks and the per-key duplicate hashes.
//!
//! `cargo bench -p efgs-core --bench pipeline`; results are in docs/performance.md.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use efgs_core::batch_signature::{
    BatchSigner, SignaturePolicy, ensure_signer_country, verify_detached,
};
use efgs_core::canonical::{DuplicateHasher, canonical_batch_bytes};
use efgs_core::gateway::content_digest;
use efgs_core::media::BodyFormat;
use efgs_core::model::DiagnosisKeyBatch;
use efgs_core::proto::{decode_body, encode_batch};
use efgs_core::store::NewKey;
use efgs_core::validate::{ValidationPolicy, check_origins, validate_batch};

#[path = "support/mod.rs"]
mod support;

use support::NOW;

/// Everything the uploading member state sends, prepared once.
struct Upload {
    body: Vec<u8>,
    batch: DiagnosisKeyBatch,
    canonical: Vec<u8>,
    signature: String,
}

fn upload() -> Upload {
    let batch = DiagnosisKeyBatch {
        keys: support::keys(support::BATCH_KEYS, 1..=5),
    };
    let body = encode_batch(&batch);
    let canonical = canonical_batch_bytes(&batch.keys);
    let signer = BatchSigner::from_pem(support::SIGNER_CERT_PEM, support::SIGNER_KEY_PEM).unwrap();
    let signature = signer.sign(&canonical, NOW).unwrap();
    Upload {
        body,
        batch,
        canonical,
        signature,
    }
}

/// The upload path up to the storage call: what `Gateway::upload` computes from the body and
/// the headers (the trust-list lookup and the insert are the store's, measured elsewhere).
fn pipeline(
    body: &[u8],
    signature: &str,
    validation: &ValidationPolicy,
    sig_policy: &SignaturePolicy,
    hasher: &DuplicateHasher,
) -> ([u8; 32], Vec<NewKey>) {
    let batch = decode_body(BodyFormat::Protobuf, body).unwrap();
    validate_batch(&batch, NOW, validation).unwrap();
    let canonical = canonical_batch_bytes(&batch.keys);
    let digest = content_digest(signature, &canonical);
    let signer = verify_detached(signature, &canonical, NOW, sig_policy).unwrap();
    ensure_signer_country(&batch.keys, &signer).unwrap();
    check_origins(&batch.keys, "DE").unwrap();
    let hashes = hasher.hash_all(&batch.keys);
    let keys = batch
        .keys
        .into_iter()
        .zip(hashes)
        .map(|(key, hash)| NewKey { key, hash })
        .collect();
    (digest, keys)
}

fn bench(c: &mut Criterion) {
    let up = upload();
    let n = up.batch.keys.len() as u64;
    let validation = ValidationPolicy::default();
    let sig_policy = SignaturePolicy::default();
    let hasher = DuplicateHasher::new(&[7u8; 32]);
    let signer = verify_detached(&up.signature, &up.canonical, NOW, &sig_policy).unwrap();
    eprintln!(
        "upload_5000: {n} keys, protobuf body {} bytes, canonical bytes {}, batchSignature {} chars",
        up.body.len(),
        up.canonical.len(),
        up.signature.len()
    );

    let mut group = c.benchmark_group("upload_5000");
    group.throughput(Throughput::Elements(n));
    group.bench_function("decode", |b| {
        b.iter(|| decode_body(BodyFormat::Protobuf, black_box(&up.body)).unwrap())
    });
    group.bench_function("validate", |b| {
        b.iter(|| validate_batch(black_box(&up.batch), NOW, &validation).unwrap())
    });
    group.bench_function("canonical_bytes", |b| {
        b.iter(|| canonical_batch_bytes(black_box(&up.batch.keys)))
    });
    group.bench_function("content_digest", |b| {
        b.iter(|| content_digest(black_box(&up.signature), black_box(&up.canonical)))
    });
    group.bench_function("cms_verify_p256", |b| {
        b.iter(|| {
            verify_detached(
                black_box(&up.signature),
                black_box(&up.canonical),
                NOW,
                &sig_policy,
            )
            .unwrap()
        })
    });
    group.bench_function("origin_checks", |b| {
        b.iter(|| {
            ensure_signer_country(black_box(&up.batch.keys), &signer).unwrap();
            check_origins(black_box(&up.batch.keys), "DE").unwrap();
        })
    });
    group.bench_function("duplicate_hashes", |b| {
        b.iter(|| hasher.hash_all(black_box(&up.batch.keys)))
    });
    group.bench_function("end_to_end", |b| {
        b.iter(|| {
            pipeline(
                black_box(&up.body),
                black_box(&up.signature),
                &validation,
                &sig_policy,
                &hasher,
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
