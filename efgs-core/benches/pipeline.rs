//! The gateway's upload pipeline for one full 5000-key protobuf upload, stage by stage and end to
//! end, as `Gateway::upload` runs it before the storage calls: protobuf decode, validation,
//! canonical bytes (with the sort), the content digest, the P-256 CMS verification, the origin
//! checks and the per-key duplicate hashes.
//!
//! `cargo bench -p efgs-core --bench pipeline`; results are in docs/performance.md. The input
//! is the realistic profile (every key lists all 27 EU countries as visited countries);
//! `EFGS_BENCH_PROFILE=light` runs the earlier 1-5-country profile.
#![allow(missing_docs, clippy::unwrap_used, clippy::disallowed_methods)]

use std::hint::black_box;

use criterion::measurement::Measurement;
use criterion::{Criterion, Throughput};
use efgs_core::batch_signature::{
    BatchSigner, SignaturePolicy, ensure_signer_country, verify_detached,
};
use efgs_core::canonical::{
    DuplicateHasher, canonical_batch_bytes, canonical_batch_bytes_and_hashes,
};
use efgs_core::gateway::content_digest;
use efgs_core::media::BodyFormat;
use efgs_core::model::DiagnosisKeyBatch;
use efgs_core::proto::{decode_body, encode_batch};
use efgs_core::store::NewKey;
use efgs_core::validate::{ValidationPolicy, check_origins, validate_batch};

#[path = "support/mod.rs"]
mod support;

use support::{NOW, Profile};

/// Everything the uploading member state sends, prepared once.
struct Upload {
    body: Vec<u8>,
    /// The same keys in the reference's JSON format (as Ireland uploads).
    body_json: Vec<u8>,
    batch: DiagnosisKeyBatch,
    canonical: Vec<u8>,
    signature: String,
}

fn upload(profile: Profile) -> Upload {
    let batch = DiagnosisKeyBatch {
        keys: profile.keys(support::BATCH_KEYS),
    };
    let body = encode_batch(&batch);
    let body_json = efgs_core::proto::encode_body(BodyFormat::Json, &batch);
    let canonical = canonical_batch_bytes(&batch.keys);
    let signer = BatchSigner::from_pem(support::SIGNER_CERT_PEM, support::SIGNER_KEY_PEM).unwrap();
    let signature = signer.sign(&canonical, NOW).unwrap();
    Upload {
        body,
        body_json,
        batch,
        canonical,
        signature,
    }
}

/// The upload path up to the storage call: what `Gateway::upload` computes from the body and
/// the headers (the trust-list lookup and the insert are the store's, measured elsewhere).
fn pipeline(
    format: BodyFormat,
    body: &[u8],
    signature: &str,
    validation: &ValidationPolicy,
    sig_policy: &SignaturePolicy,
    hasher: &DuplicateHasher,
) -> ([u8; 32], Vec<NewKey>) {
    let batch = decode_body(format, body).unwrap();
    validate_batch(&batch, NOW, validation).unwrap();
    let (canonical, hashes) = canonical_batch_bytes_and_hashes(&batch.keys, hasher);
    let digest = content_digest(signature, &canonical);
    let signer = verify_detached(signature, &canonical, NOW, sig_policy).unwrap();
    ensure_signer_country(&batch.keys, &signer).unwrap();
    check_origins(&batch.keys, "DE").unwrap();
    let keys = batch
        .keys
        .into_iter()
        .zip(hashes)
        .map(|(key, hash)| NewKey { key, hash })
        .collect();
    (digest, keys)
}

fn bench<M: Measurement>(c: &mut Criterion<M>) {
    // The realistic profile by default; EFGS_BENCH_PROFILE=light for the 1-5-country case.
    let profile = Profile::from_env();
    let up = upload(profile);
    let n = up.batch.keys.len() as u64;
    let validation = ValidationPolicy::default();
    let sig_policy = SignaturePolicy::default();
    let hasher = DuplicateHasher::new(&[7u8; 32]);
    let signer = verify_detached(&up.signature, &up.canonical, NOW, &sig_policy).unwrap();
    eprintln!(
        "upload_5000: profile {}, {n} keys, protobuf body {} bytes, JSON body {} bytes, canonical bytes {}, batchSignature {} chars",
        profile.name(),
        up.body.len(),
        up.body_json.len(),
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
    group.bench_function("canonical_and_hashes", |b| {
        b.iter(|| canonical_batch_bytes_and_hashes(black_box(&up.batch.keys), &hasher))
    });
    group.bench_function("end_to_end", |b| {
        b.iter(|| {
            pipeline(
                BodyFormat::Protobuf,
                black_box(&up.body),
                black_box(&up.signature),
                &validation,
                &sig_policy,
                &hasher,
            )
        })
    });
    group.bench_function("decode_json", |b| {
        b.iter(|| decode_body(BodyFormat::Json, black_box(&up.body_json)).unwrap())
    });
    group.bench_function("end_to_end_json", |b| {
        b.iter(|| {
            pipeline(
                BodyFormat::Json,
                black_box(&up.body_json),
                black_box(&up.signature),
                &validation,
                &sig_policy,
                &hasher,
            )
        })
    });
    group.finish();
}

/// `EFGS_BENCH_CLOCK=cpu` measures the benchmark thread's CPU time instead of wall-clock time
/// (for a machine shared with other work; throughput is then keys per CPU-second).
fn main() {
    if std::env::var("EFGS_BENCH_CLOCK").as_deref() == Ok("cpu") {
        let mut c = Criterion::default()
            .with_measurement(support::cpu::ThreadCpu)
            .configure_from_args();
        bench(&mut c);
        c.final_summary();
    } else {
        let mut c = Criterion::default().configure_from_args();
        bench(&mut c);
        c.final_summary();
    }
}
