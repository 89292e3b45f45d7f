//! Detached CMS verification cost for a full upload: P-256 (ECDSA, SHA-256) with signed
//! attributes over the canonical bytes of 5000 keys (~650 KB).
//!
//! Run with `cargo bench -p efgs-core --bench cms`.

use std::hint::black_box;

use base64::Engine as _;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use efgs_core::batch_signature::{BatchSigner, SignaturePolicy, verify_detached};
use sha2::Digest as _;
use time::macros::datetime;

/// Throw-away benchmark key (P-256, self-signed, C=DE, valid 2026-11-28 .. 2126-11-04).
/// Test material only: it signs nothing but benchmark bytes.
const KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgJdd9JXmoUu5ME1cE
XE5fKUCALbjRR9+WYVzDvQmYS3WhRANCAASP0wfTtZE25l9tz2Ne4di+hHLpaWHJ
Z4iyPd1rgZKjLhhfdWX51ueOR2iDoJdbTm6W8vPPdTOou58TeT+76KuC
-----END PRIVATE KEY-----
";
const CERT_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIB2jCCAYGgAwIBAgIUeEgPz/oc8at4Q+bT35DlxeKpdrAwCgYIKoZIzj0EAwIw
QjELMAkGA1UEBhMCREUxFjAUBgNVBAoMDWVmZ3MtcnMgYmVuY2gxGzAZBgNVBAMM
EmJlbmNoLXNpZ25pbmctcDI1NjAgFw0yNjExMjgyMTMwMzRaGA8yMTI2MTEwNDIx
MzAzNFowQjELMAkGA1UEBhMCREUxFjAUBgNVBAoMDWVmZ3MtcnMgYmVuY2gxGzAZ
BgNVBAMMEmJlbmNoLXNpZ25pbmctcDI1NjBZMBMGByqGSM49AgEGCCqGSM49AwEH
A0IABI/TB9O1kTbmX23PY17h2L6EculpYclniLI93WuBkqMuGF91ZfnW545HaIOg
l1tObpby8891M6i7nxN5P7voq4KjUzBRMB0GA1UdDgQWBBRWGKuHyHJxG6ERJASJ
9WgYho3mnjAfBgNVHSMEGDAWgBRWGKuHyHJxG6ERJASJ9WgYho3mnjAPBgNVHRMB
Af8EBTADAQH/MAoGCCqGSM49BAMCA0cAMEQCIDyspV9kQFoWXO2SeN6KlJ7EqeDx
cmJiTOmIFjhNAVJgAiA+VeToThO+k3MhD+JRCvYC4Zt8Vum3HQAJDZIhgpubWw==
-----END CERTIFICATE-----
";

/// Canonical-form bytes (protocol §4.1) for `n` pseudo-random keys, sorted as the reference
/// sorts them; 14 visited countries per key gives about 132 bytes per key.
fn canonical_batch(n: usize) -> Vec<u8> {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut keys: Vec<String> = (0..n)
        .map(|_| {
            let mut key = [0u8; 16];
            key[..8].copy_from_slice(&next().to_be_bytes());
            key[8..].copy_from_slice(&next().to_be_bytes());
            let rsin = 2_900_000u32 + (next() % 2016) as u32;
            format!(
                "{}.{}.{}.{}.{}.{}.{}.{}.",
                b64(&key),
                b64(&rsin.to_be_bytes()),
                b64(&144u32.to_be_bytes()),
                b64(&((next() % 9) as u32).to_be_bytes()),
                b64(b"AT,BE,CY,CZ,DK,EE,ES,FI,FR,IE,IT,LV,NL,PL"),
                b64(b"DE"),
                b64(&1u32.to_be_bytes()),
                b64(&((next() % 15) as i32).to_be_bytes()),
            )
        })
        .collect();
    keys.sort_by_cached_key(|k| b64(k.as_bytes()));
    keys.concat().into_bytes()
}

fn bench(c: &mut Criterion) {
    let signer = BatchSigner::from_pem(CERT_PEM, KEY_PEM).expect("benchmark key");
    let now = datetime!(2027-01-01 00:00:00 UTC);
    let policy = SignaturePolicy::default();
    let content = canonical_batch(5000);
    let signature = signer.sign(&content, now).expect("sign");
    verify_detached(&signature, &content, now, &policy).expect("benchmark signature verifies");

    let mut g = c.benchmark_group("cms");
    g.throughput(Throughput::Bytes(content.len() as u64));
    g.bench_function(
        format!("verify_detached_p256_5000_keys_{}_bytes", content.len()),
        |b| b.iter(|| verify_detached(black_box(&signature), black_box(&content), now, &policy)),
    );
    g.bench_function("sha256_of_the_same_content", |b| {
        b.iter(|| sha2::Sha256::digest(black_box(&content)))
    });
    g.finish();

    let small = canonical_batch(1);
    let small_sig = signer.sign(&small, now).expect("sign");
    c.bench_function("cms/verify_detached_p256_1_key", |b| {
        b.iter(|| verify_detached(black_box(&small_sig), black_box(&small), now, &policy))
    });
    c.bench_function("cms/sign_p256_5000_keys", |b| {
        b.iter(|| signer.sign(black_box(&content), now))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
