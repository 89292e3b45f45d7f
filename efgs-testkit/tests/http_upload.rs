//! `POST /diagnosiskeys/upload` over real HTTP (protocol §1.2, §12 items 1-12; decisions 3-5;
//! clients.md §2).
#![allow(clippy::unwrap_used)]

#[macro_use]
mod support;

use base64::Engine as _;
use efgs_core::DiagnosisKey;
use efgs_core::media::BodyFormat;
use efgs_core::model::CertificateType;
use efgs_core::store::{StoreInspect as _, TrustListStore as _};
use efgs_testkit::national::Identity;
use support::{Backend, multi_status_lists, raw_http, stored_keys};
use time::Duration;

const PB: BodyFormat = BodyFormat::Protobuf;

http_tests!(
    upload_protobuf_201_stores_keys_and_statistics,
    upload_stores_as_many_keys_as_sent,
    upload_without_batch_signature_400,
    upload_with_garbage_signature_400,
    upload_signature_over_other_keys_400,
    upload_origin_not_signer_country_400,
    upload_origin_not_uploader_country_400,
    upload_duplicate_key_207_nothing_stored,
    upload_duplicate_inside_batch_207,
    upload_tag_free_again_after_207,
    upload_same_tag_other_payload_409,
    upload_identical_replay_201_stored_once,
    upload_tags_unique_per_country,
    upload_5000_keys_201,
    upload_5001_keys_413,
    upload_json_201_and_keys_round_trip,
    upload_json_invalid_base64_400,
    upload_unknown_thumbprint_403,
    upload_header_names_case_insensitive,
    upload_without_batch_tag_400,
    upload_client_batch_tags_accepted,
    upload_batch_tag_over_64_chars_400,
    upload_invalid_key_rejects_whole_batch_400,
    upload_trl_unknown_and_large_dsos_accepted,
    upload_empty_json_batch_201_stores_nothing,
    upload_revoked_signing_certificate_400,
    upload_unlisted_signing_certificate_400,
    upload_body_over_limit_413,
    upload_empty_protobuf_body_400,
);

/// §12 item 1: 3 keys, protobuf, valid signature: 201 with the `batchTag` header and an empty
/// body; 3 keys stored and one upload statistics row.
async fn upload_protobuf_201_stores_keys_and_statistics(b: Backend) {
    let fed = b.federation(&["DE", "FR"]).await;
    let de = &fed["DE"];
    let r = de.upload(&de.keys(3), "de-batch-1", PB).await.unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.batch_tag.as_deref(), Some("de-batch-1"));
    assert!(r.body.is_empty(), "a 201 has an empty body");
    assert_eq!(stored_keys(&fed).await, 3);
    let stats = fed
        .store()
        .upload_stats(fed.now() - Duration::days(1))
        .await
        .unwrap();
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].country, "DE");
    assert_eq!(stats[0].number_of_keys, 3);
    assert_eq!(stats[0].batch_tag, "de-batch-1");
}

/// §12 item 4: the stored key count equals the batch size.
async fn upload_stores_as_many_keys_as_sent(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let de = &fed["DE"];
    assert_eq!(de.upload(&de.keys(57), "a", PB).await.unwrap().status, 201);
    assert_eq!(de.upload(&de.keys(8), "b", PB).await.unwrap().status, 201);
    assert_eq!(stored_keys(&fed).await, 65);
}

/// §12 item 2.
async fn upload_without_batch_signature_400(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let de = &fed["DE"];
    let r = de
        .upload_request(de.keys(3))
        .tag("t")
        .no_signature()
        .send()
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(stored_keys(&fed).await, 0);
}

/// §12 item 3: `batchSignature: invalidSignature`.
async fn upload_with_garbage_signature_400(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let de = &fed["DE"];
    let r = de
        .upload_request(de.keys(3))
        .tag("t")
        .signature("invalidSignature")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.message().as_deref(), Some("Invalid signature"));
    assert_eq!(stored_keys(&fed).await, 0);
}

/// A signature over a subset of the batch does not cover it (§12 item 54 end to end).
async fn upload_signature_over_other_keys_400(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let de = &fed["DE"];
    let keys = de.keys(4);
    let sig = de.sign(&keys[..3]).unwrap();
    let r = de
        .upload_request(keys)
        .tag("t")
        .signature(sig)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.message().as_deref(), Some("Invalid signature"));
    assert_eq!(stored_keys(&fed).await, 0);
}

/// §12 item 5: keys whose origin is not the signing certificate's country: 400, nothing
/// stored.
async fn upload_origin_not_signer_country_400(b: Backend) {
    let fed = b.federation(&["DE", "FR"]).await;
    let de = &fed["DE"];
    let mut keys = de.keys(3);
    keys[1].origin = "CA".into();
    let r = de.upload(&keys, "t", PB).await.unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(stored_keys(&fed).await, 0);
}

/// Protocol §1.2 step 7: keys of another origin, validly signed by that country's SIGNING
/// certificate, uploaded by DE: 400 "One or more keys are not originated from uploader
/// country".
async fn upload_origin_not_uploader_country_400(b: Backend) {
    let fed = b.federation(&["DE", "FR"]).await;
    let fr_keys = fed["FR"].keys(3);
    let sig = fed["FR"].sign(&fr_keys).unwrap();
    let r = fed["DE"]
        .upload_request(fr_keys)
        .tag("t")
        .signature(sig)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(
        r.message().as_deref(),
        Some("One or more keys are not originated from uploader country")
    );
    assert_eq!(stored_keys(&fed).await, 0);
}

/// §12 item 6: [k1] then [k1, k2] under another tag: 207 `{"201":[1],"409":[0],"500":[]}`,
/// every index in exactly one list, and still only 1 key stored (nothing of the second
/// upload).
async fn upload_duplicate_key_207_nothing_stored(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let de = &fed["DE"];
    let keys = de.keys(2);
    assert_eq!(de.upload(&keys[..1], "A", PB).await.unwrap().status, 201);
    let r = de.upload(&keys, "B", PB).await.unwrap();
    assert_eq!(r.status, 207, "{}", r.text());
    assert!(
        r.content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("application/json"))
    );
    let (ok, conflict, failed) = multi_status_lists(&r.json());
    assert_eq!(ok, vec![1]);
    assert_eq!(conflict, vec![0]);
    assert!(failed.is_empty());
    assert_eq!(r.batch_tag, None, "a 207 carries no batchTag header");
    assert_eq!(stored_keys(&fed).await, 1);
}

/// Two identical keys inside one upload: the later one is 409, nothing stored.
async fn upload_duplicate_inside_batch_207(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let de = &fed["DE"];
    let mut keys = de.keys(3);
    keys.push(keys[1].clone());
    let r = de.upload(&keys, "dup", PB).await.unwrap();
    assert_eq!(r.status, 207);
    let (ok, conflict, failed) = multi_status_lists(&r.json());
    assert_eq!(conflict, vec![3]);
    let mut all: Vec<u64> = ok.iter().chain(&conflict).chain(&failed).copied().collect();
    all.sort_unstable();
    assert_eq!(all, vec![0, 1, 2, 3], "every index in exactly one list");
    assert_eq!(stored_keys(&fed).await, 0);
}

/// After a 207 the batchTag is not consumed: the corrected batch goes up under the same tag
/// (Finland re-sends that way).
async fn upload_tag_free_again_after_207(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let de = &fed["DE"];
    let keys = de.keys(3);
    assert_eq!(de.upload(&keys[..1], "A", PB).await.unwrap().status, 201);
    assert_eq!(de.upload(&keys, "B", PB).await.unwrap().status, 207);
    let r = de.upload(&keys[1..], "B", PB).await.unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.batch_tag.as_deref(), Some("B"));
    assert_eq!(stored_keys(&fed).await, 3);
}

/// §12 item 7 (decisions 3): a different payload under a used tag is 409 "BatchTag already
/// exists." and nothing more is stored.
async fn upload_same_tag_other_payload_409(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let de = &fed["DE"];
    assert_eq!(de.upload(&de.keys(1), "A", PB).await.unwrap().status, 201);
    let r = de.upload(&de.keys(1), "A", PB).await.unwrap();
    assert_eq!(r.status, 409);
    assert_eq!(r.message().as_deref(), Some("BatchTag already exists."));
    assert_eq!(stored_keys(&fed).await, 1);
}

/// Decisions 3: re-sending the byte-identical upload (same keys, same signature) is 201 with
/// the tag, and nothing is stored twice; the same keys with a fresh signature are 409.
async fn upload_identical_replay_201_stored_once(b: Backend) {
    let fed = b.federation(&["DE", "FR"]).await;
    let de = &fed["DE"];
    let keys = de.keys(5);
    let sig = de.sign(&keys).unwrap();
    let send = || {
        de.upload_request(keys.clone())
            .tag("nl-style-content-tag")
            .signature(sig.clone())
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status, 201);
    let again = send().await.unwrap();
    assert_eq!(again.status, 201, "{}", again.text());
    assert_eq!(again.batch_tag.as_deref(), Some("nl-style-content-tag"));
    assert_eq!(stored_keys(&fed).await, 5);
    let stats = fed
        .store()
        .upload_stats(fed.now() - Duration::days(1))
        .await
        .unwrap();
    assert_eq!(stats.len(), 1);
    // One batch holds the keys once.
    fed.run_batching_now().await.unwrap();
    let got = fed["FR"].download_all(fed.today()).await.unwrap();
    assert_eq!(got.iter().map(|d| d.keys.len()).sum::<usize>(), 5);
    // Other signature bytes (another signing time) over the same keys: a different payload.
    fed.clock().advance(Duration::seconds(1));
    let other = de.upload(&keys, "nl-style-content-tag", PB).await.unwrap();
    assert_eq!(other.status, 409);
}

/// Decisions 3: two countries may use the same tag (IE/MT/DK short numeric tags).
async fn upload_tags_unique_per_country(b: Backend) {
    let fed = b.federation(&["DE", "IE", "MT"]).await;
    for c in ["DE", "IE", "MT"] {
        let r = fed[c].upload(&fed[c].keys(2), "1234", PB).await.unwrap();
        assert_eq!(r.status, 201, "{c}: {}", r.text());
    }
    assert_eq!(stored_keys(&fed).await, 6);
    // Audit groups keep them apart.
    fed.run_batching_now().await.unwrap();
    let tag = support::tag(fed.today(), 1);
    let audit = fed["DE"].audit(fed.today(), &tag).await.unwrap();
    assert_eq!(audit.status, 200);
    let mut countries: Vec<_> = audit.entries.iter().map(|e| e.country.clone()).collect();
    countries.sort();
    assert_eq!(countries, ["DE", "IE", "MT"]);
    assert!(audit.entries.iter().all(|e| e.amount == 2));
}

/// §12 item 8.
async fn upload_5000_keys_201(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let de = &fed["DE"];
    let r = de.upload(&de.keys(5000), "big", PB).await.unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(stored_keys(&fed).await, 5000);
}

/// §12 item 9: 5001 keys: 413 "Too many diagnosis keys".
async fn upload_5001_keys_413(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let de = &fed["DE"];
    let r = de.upload(&de.keys(5001), "big", PB).await.unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(r.message().as_deref(), Some("Too many diagnosis keys"));
    assert_eq!(stored_keys(&fed).await, 0);
}

/// The body exactly as the reference's JSON printer writes it, built here by hand.
fn java_json(keys: &[DiagnosisKey]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let items: Vec<String> = keys
        .iter()
        .map(|k| {
            let visited: Vec<String> = k
                .visited_countries
                .iter()
                .map(|v| format!("\"{v}\""))
                .collect();
            format!(
                "{{\"keyData\": \"{}\",\"rollingStartIntervalNumber\": {},\"rollingPeriod\": {},\
                 \"transmissionRiskLevel\": {},\"visitedCountries\": [{}],\"origin\": \"{}\",\
                 \"reportType\": \"CONFIRMED_TEST\",\"days_since_onset_of_symptoms\": {}}}",
                b64.encode(&k.key_data),
                k.rolling_start_interval_number,
                k.rolling_period,
                k.transmission_risk_level,
                visited.join(","),
                k.origin,
                k.days_since_onset_of_symptoms
            )
        })
        .collect();
    format!("{{\"keys\": [{}]}}", items.join(","))
}

fn nonzero(mut keys: Vec<DiagnosisKey>) -> Vec<DiagnosisKey> {
    // The printer leaves out zero values; keep every field present for the hand-written body.
    for (i, k) in keys.iter_mut().enumerate() {
        k.transmission_risk_level = 3;
        k.days_since_onset_of_symptoms = i32::try_from(i).unwrap() + 1;
        k.visited_countries = vec!["FR".into(), "NL".into()].into();
    }
    keys
}

/// §12 item 10: a JSON upload in the reference's format is 201 and the keys come back
/// unchanged in a download.
async fn upload_json_201_and_keys_round_trip(b: Backend) {
    let fed = b.federation(&["DE", "FR"]).await;
    let de = &fed["DE"];
    let keys = nonzero(de.keys(3));
    let r = de
        .upload_request(keys.clone())
        .tag("json-1")
        .format(BodyFormat::Json)
        .body(java_json(&keys).into_bytes())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(stored_keys(&fed).await, 3);
    fed.run_batching_now().await.unwrap();
    let got = fed["FR"]
        .download(fed.today(), None, Some(PB.content_type()))
        .await
        .unwrap();
    assert_eq!(got.status, 200);
    assert_eq!(got.keys, keys);
}

/// §12 item 11: `"keyData": "invalidBase64"`: 400.
async fn upload_json_invalid_base64_400(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let de = &fed["DE"];
    let keys = nonzero(de.keys(1));
    let body = java_json(&keys).replace(
        &base64::engine::general_purpose::STANDARD.encode(&keys[0].key_data),
        "invalidBase64",
    );
    let r = de
        .upload_request(keys)
        .tag("t")
        .format(BodyFormat::Json)
        .body(body.into_bytes())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(stored_keys(&fed).await, 0);
}

/// §12 item 12: thumbprint header `trashHash`: 403.
async fn upload_unknown_thumbprint_403(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let de = &fed["DE"];
    let r = de
        .upload_request(de.keys(1))
        .tag("t")
        .identity(Identity::raw(Some("trashHash"), Some("C=DE")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(stored_keys(&fed).await, 0);
}

/// clients.md §2: `BatchTag` / `BatchSignature` spelled as NL and CZ do, byte for byte on
/// the wire (a raw HTTP/1.1 request, so no client library lower-cases them).
async fn upload_header_names_case_insensitive(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let de = &fed["DE"];
    let keys = de.keys(2);
    let sig = de.sign(&keys).unwrap();
    let body = efgs_testkit::national::encode_body(&keys, PB);
    let creds = de.credentials();
    let head = format!(
        "POST /diagnosiskeys/upload HTTP/1.1\r\nContent-Type: application/protobuf; version=1.0\r\n\
         X-SSL-CLIENT-SHA256: {}\r\nx-ssl-client-dn: {}\r\nBatchTag: Mixed-Case-1\r\n\
         BatchSignature: {sig}\r\n",
        creds.auth_thumbprint.as_str(),
        creds.auth_dn
    );
    let (status, head, _) = raw_http(fed.addr(), &head, &body).await;
    assert_eq!(status, 201, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("batchtag: mixed-case-1"),
        "{head}"
    );
    assert_eq!(stored_keys(&fed).await, 2);
}

/// Protocol §1.2 step 1: no `batchTag`: 400.
async fn upload_without_batch_tag_400(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let de = &fed["DE"];
    let r = de.upload_request(de.keys(1)).send().await.unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(stored_keys(&fed).await, 0);
}

/// clients.md §2: batch tags seen in the wild (with `+ / =`, 64 hex characters, ...) are
/// accepted and echoed.
async fn upload_client_batch_tags_accepted(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let de = &fed["DE"];
    let tags = [
        "2020-9-1-Ab3+/w==-0".to_owned(),
        "a".repeat(64),
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".to_owned(),
        "ES-202011051230-a1B2-0".to_owned(),
        "20201105-3".to_owned(),
        "20201105-fi-17".to_owned(),
        "20201105-1a2b3c4".to_owned(),
        "1604570000000".to_owned(),
        "1234".to_owned(),
        "2676000".to_owned(),
    ];
    for tag in &tags {
        let r = de.upload(&de.keys(1), tag, PB).await.unwrap();
        assert_eq!(r.status, 201, "{tag}: {}", r.text());
        assert_eq!(r.batch_tag.as_deref(), Some(tag.as_str()));
    }
    assert_eq!(stored_keys(&fed).await, tags.len() as u64);
}

/// Decisions 5: a batchTag over 64 characters is a 400 with a reason, not a database error.
async fn upload_batch_tag_over_64_chars_400(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let de = &fed["DE"];
    let r = de.upload(&de.keys(1), &"x".repeat(65), PB).await.unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(stored_keys(&fed).await, 0);
}

/// Protocol §3 / clients.md §2: one key outside the rolling-start window rejects the whole
/// batch with 400 and the reference's reason text.
async fn upload_invalid_key_rejects_whole_batch_400(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let de = &fed["DE"];
    let mut keys = de.keys(5);
    keys[3].rolling_start_interval_number -= 16 * 144;
    let r = de.upload(&keys, "t", PB).await.unwrap();
    assert_eq!(r.status, 400);
    let body = r.text();
    assert!(
        body.contains("Invalid rolling start interval number."),
        "{body}"
    );
    assert_eq!(stored_keys(&fed).await, 0);
}

/// clients.md §2 (MUST): TRL 0x7FFFFFFF is accepted (FI, DK, CH send it always), and DSOS is
/// not range-checked (values up to ~4014 and `Integer.MAX_VALUE` occur).
async fn upload_trl_unknown_and_large_dsos_accepted(b: Backend) {
    let fed = b.federation(&["DE", "FR"]).await;
    let de = &fed["DE"];
    let mut keys = de.keys(3);
    keys[0].transmission_risk_level = 0x7FFF_FFFF;
    keys[1].days_since_onset_of_symptoms = 4014;
    keys[2].days_since_onset_of_symptoms = i32::MAX;
    let r = de.upload(&keys, "t", PB).await.unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    fed.run_batching_now().await.unwrap();
    let got = fed["FR"].download_all(fed.today()).await.unwrap();
    assert_eq!(got[0].keys, keys);
}

/// Protocol §1.2 edge case: an empty JSON batch `{}` with a signature over empty content is
/// 201 and stores nothing.
async fn upload_empty_json_batch_201_stores_nothing(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let de = &fed["DE"];
    let r = de
        .upload_request(Vec::new())
        .tag("empty")
        .format(BodyFormat::Json)
        .body(b"{}".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(stored_keys(&fed).await, 0);
}

/// A revoked SIGNING certificate no longer signs valid uploads (400), from the next request
/// on.
async fn upload_revoked_signing_certificate_400(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let de = &fed["DE"];
    assert_eq!(de.upload(&de.keys(1), "a", PB).await.unwrap().status, 201);
    fed.revoke(&de.credentials().sign_thumbprint).await.unwrap();
    let r = de.upload(&de.keys(1), "b", PB).await.unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.message().as_deref(), Some("Invalid signature"));
    assert_eq!(stored_keys(&fed).await, 1);
}

/// A signing certificate that is not on the trust list (or only as AUTHENTICATION) is 400.
async fn upload_unlisted_signing_certificate_400(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let de = &fed["DE"];
    // Sign with the AUTHENTICATION certificate: on the list, but not as SIGNING.
    let creds = de.credentials();
    let signer = efgs_core::batch_signature::BatchSigner::from_pem(
        &creds.auth_cert_pem,
        &creds.auth_key_pem,
    )
    .unwrap();
    let keys = de.keys(2);
    let sig = signer
        .sign(
            &efgs_core::canonical::canonical_batch_bytes(&keys),
            fed.now(),
        )
        .unwrap();
    let r = de
        .upload_request(keys)
        .tag("t")
        .signature(sig)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    let auth_entry = fed
        .store()
        .trust_entry(&creds.auth_thumbprint)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(auth_entry.cert_type, CertificateType::Authentication);
    assert_eq!(stored_keys(&fed).await, 0);
}

/// Decisions 5: a body over the configured limit is 413 without being stored.
async fn upload_body_over_limit_413(b: Backend) {
    let fed = b
        .builder()
        .await
        .countries(["DE"])
        .body_limit(1024)
        .build()
        .await
        .unwrap();
    let de = &fed["DE"];
    let r = de.upload(&de.keys(100), "t", PB).await.unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(stored_keys(&fed).await, 0);
}

/// Protocol §1.0: an empty protobuf body (0 bytes) is 400.
async fn upload_empty_protobuf_body_400(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let de = &fed["DE"];
    let r = de
        .upload_request(Vec::new())
        .tag("t")
        .body(Vec::new())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status, 400);
}
