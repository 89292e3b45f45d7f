//! `GET /diagnosiskeys/download/{date}` over real HTTP (protocol §1.3, §5, §12 items 13-23;
//! clients.md §1 and §4; decisions 6 and ADR 0005).
#![allow(clippy::unwrap_used)]

#[macro_use]
mod support;

use efgs_core::DiagnosisKey;
use efgs_core::media::BodyFormat;
use efgs_core::store::StoreInspect as _;
use efgs_testkit::federation::Federation;
use support::{Backend, tag};
use time::macros::datetime;
use time::{Date, Duration, OffsetDateTime};

const PB: BodyFormat = BodyFormat::Protobuf;
const PB_V1: &str = "application/protobuf; version=1.0";
const JSON_V1: &str = "application/json; version=1.0";
/// A fixed start: the federation's clock, certificates and keys are all relative to it.
const T0: OffsetDateTime = datetime!(2026-11-28 10:00 UTC);
const D0: Date = T0.date();

http_tests!(
    download_date_before_window_410,
    download_unknown_tag_404,
    download_tag_of_earlier_day_400,
    download_by_tag_headers_and_link,
    download_last_batch_next_is_literal_null,
    download_keys_in_upload_order,
    download_only_the_requested_batch,
    download_without_tag_serves_first_batch_of_date,
    download_excludes_callers_own_country,
    download_json,
    download_writes_statistics_row,
    download_tags_dense_from_1,
    download_tags_restart_after_midnight_and_link_across_days,
    download_chain_followed_across_midnight,
    download_only_own_keys_200_empty_protobuf,
    download_only_own_keys_200_empty_json_object,
    download_no_batch_for_date_404_message,
    download_tomorrow_404,
    download_empty_batch_tag_header_404,
    download_invalid_date_400,
    download_protobuf_schema_headers,
    download_first_batch_may_be_from_later_day,
    download_batch_cut_at_midnight_belongs_to_that_date,
    download_json_omits_defaults_and_empty_lists,
    download_repeated_gives_same_answer,
    download_unbatched_keys_invisible,
    download_cached_bodies_are_per_country_and_format,
    download_bodies_cut_from_the_whole_batch_equal_their_own_encoding,
    download_cached_body_gets_the_current_next_batch_tag,
    download_cached_body_still_writes_statistics_row_each_time,
    download_cached_body_still_refuses_revoked_certificate,
    download_retention_on_this_instance_reaches_cached_body_at_once,
    download_retention_on_another_instance_reaches_cached_body_within_ttl,
    download_statistics_are_all_written_by_a_graceful_shutdown,
);

async fn fed_at(b: &Backend, countries: &[&str], t: OffsetDateTime, max_age: u32) -> Federation {
    b.builder()
        .await
        .countries(countries.iter().copied())
        .start_at(t)
        .setting("download.max_age_days", max_age.to_string())
        .setting("retention.key_days", max_age.max(2).to_string())
        .build()
        .await
        .unwrap()
}

/// Uploads `n` keys from `country` under a fresh tag and returns them.
async fn put(fed: &Federation, country: &str, n: usize) -> Vec<DiagnosisKey> {
    let b = &fed[country];
    let keys = b.keys(n);
    let t = format!("{country}-{}", keys_tag(&keys));
    let r = b.upload(&keys, &t, PB).await.unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    keys
}

fn keys_tag(keys: &[DiagnosisKey]) -> String {
    keys.first()
        .map(|k| hex_of(&k.key_data))
        .unwrap_or_else(|| "empty".to_owned())
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Cuts one batch and returns its tag.
async fn cut(fed: &Federation) -> String {
    let made = fed.run_batching_now().await.unwrap();
    assert_eq!(made.len(), 1, "exactly one batch expected");
    made[0].batch.tag.to_string()
}

/// §12 item 13: today − (maxAge + 1) is 410 "Requested date is too old!"; today − maxAge is
/// inside the window.
async fn download_date_before_window_410(b: Backend) {
    let fed = fed_at(&b, &["DE", "FR"], T0, 2).await;
    let fr = &fed["FR"];
    let r = fr
        .download(D0 - Duration::days(3), None, Some(PB_V1))
        .await
        .unwrap();
    assert_eq!(r.status, 410);
    assert_eq!(r.message().as_deref(), Some("Requested date is too old!"));
    let r = fr
        .download(D0 - Duration::days(2), None, Some(PB_V1))
        .await
        .unwrap();
    assert_eq!(r.status, 404, "inside the window: no batch, not too old");
}

/// §12 item 14: unknown tag (malformed or well-formed): 404 "Could not find batch with given
/// BatchTag".
async fn download_unknown_tag_404(b: Backend) {
    let fed = fed_at(&b, &["DE", "FR"], T0, 14).await;
    put(&fed, "DE", 1).await;
    cut(&fed).await;
    for t in ["xxx", &tag(D0, 7)] {
        let r = fed["FR"].download(D0, Some(t), Some(PB_V1)).await.unwrap();
        assert_eq!(r.status, 404, "{t}");
        assert_eq!(
            r.message().as_deref(),
            Some("Could not find batch with given BatchTag")
        );
    }
}

/// §12 item 15: a batch created 5 days ago, requested for the date 3 days ago: 400.
async fn download_tag_of_earlier_day_400(b: Backend) {
    let fed = fed_at(&b, &["DE", "FR"], T0, 14).await;
    put(&fed, "DE", 2).await;
    let t = cut(&fed).await;
    fed.clock().advance(Duration::days(5));
    let r = fed["FR"]
        .download(D0 + Duration::days(2), Some(&t), Some(PB_V1))
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(
        r.message().as_deref(),
        Some("Given date does is not after or equals the requested batchTag")
    );
    // The batch's own day still works.
    let r = fed["FR"].download(D0, Some(&t), Some(PB_V1)).await.unwrap();
    assert_eq!(r.status, 200);
}

/// §12 item 16 and clients.md §1/§4: tag1 linked to tag2: 200, `Content-Type:
/// application/protobuf; version=1.0`, `batchTag: tag1`, `nextBatchTag: tag2`.
async fn download_by_tag_headers_and_link(b: Backend) {
    let fed = fed_at(&b, &["DE", "FR"], T0, 14).await;
    put(&fed, "DE", 2).await;
    let t1 = cut(&fed).await;
    put(&fed, "DE", 2).await;
    let t2 = cut(&fed).await;
    let r = fed["FR"]
        .download(D0, Some(&t1), Some(PB_V1))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type.as_deref(), Some(PB_V1));
    assert_eq!(r.batch_tag.as_deref(), Some(t1.as_str()));
    assert_eq!(r.next_batch_tag.as_deref(), Some(t2.as_str()));
}

/// §12 item 17 and clients.md §1 (MUST): the last batch's `nextBatchTag` is the literal
/// `null`.
async fn download_last_batch_next_is_literal_null(b: Backend) {
    let fed = fed_at(&b, &["DE", "FR"], T0, 14).await;
    put(&fed, "DE", 2).await;
    let t1 = cut(&fed).await;
    let r = fed["FR"]
        .download(D0, Some(&t1), Some(PB_V1))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.next_batch_tag.as_deref(), Some("null"));
    let r = fed["FR"].download(D0, None, Some(JSON_V1)).await.unwrap();
    assert_eq!(r.next_batch_tag.as_deref(), Some("null"));
}

/// §12 item 18 and clients.md §5: keys come back in insertion order, each upload's keys
/// contiguous and in the order given.
async fn download_keys_in_upload_order(b: Backend) {
    let fed = fed_at(&b, &["DE", "NL", "FR"], T0, 14).await;
    let mut expected = Vec::new();
    for c in ["DE", "NL", "DE", "NL"] {
        expected.extend(put(&fed, c, 4).await);
    }
    cut(&fed).await;
    let r = fed["FR"].download(D0, None, Some(PB_V1)).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.keys, expected);
}

/// §12 item 19: only the requested batch's keys (2 of 4 spread over two batches).
async fn download_only_the_requested_batch(b: Backend) {
    let fed = fed_at(&b, &["DE", "FR"], T0, 14).await;
    let first = put(&fed, "DE", 2).await;
    let t1 = cut(&fed).await;
    let second = put(&fed, "DE", 2).await;
    let t2 = cut(&fed).await;
    let r1 = fed["FR"]
        .download(D0, Some(&t1), Some(PB_V1))
        .await
        .unwrap();
    let r2 = fed["FR"]
        .download(D0, Some(&t2), Some(PB_V1))
        .await
        .unwrap();
    assert_eq!(r1.keys, first);
    assert_eq!(r2.keys, second);
}

/// §12 item 20: without `batchTag`, the first batch created after the date's 00:00 UTC is
/// served, with its headers and only its keys.
async fn download_without_tag_serves_first_batch_of_date(b: Backend) {
    let fed = fed_at(&b, &["DE", "FR"], T0, 14).await;
    put(&fed, "DE", 1).await;
    let y1 = cut(&fed).await;
    fed.clock().set(datetime!(2026-11-29 09:00 UTC));
    let d1 = D0 + Duration::days(1);
    let keys = put(&fed, "DE", 3).await;
    let t1 = cut(&fed).await;
    put(&fed, "DE", 2).await;
    let t2 = cut(&fed).await;
    assert_eq!(t1, tag(d1, 1));
    let r = fed["FR"].download(d1, None, Some(PB_V1)).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.batch_tag.as_deref(), Some(t1.as_str()));
    assert_eq!(r.next_batch_tag.as_deref(), Some(t2.as_str()));
    assert_eq!(r.keys, keys);
    let r = fed["FR"].download(D0, None, Some(PB_V1)).await.unwrap();
    assert_eq!(r.batch_tag.as_deref(), Some(y1.as_str()));
    assert_eq!(r.next_batch_tag.as_deref(), Some(t1.as_str()));
}

/// §12 item 21: keys uploaded by the caller's country are left out (by uploader).
async fn download_excludes_callers_own_country(b: Backend) {
    let fed = fed_at(&b, &["DE", "DK"], T0, 14).await;
    let de = put(&fed, "DE", 2).await;
    let dk = put(&fed, "DK", 2).await;
    let t = cut(&fed).await;
    let r = fed["DE"].download(D0, Some(&t), Some(PB_V1)).await.unwrap();
    assert_eq!(r.keys, dk);
    let r = fed["DK"].download(D0, Some(&t), Some(PB_V1)).await.unwrap();
    assert_eq!(r.keys, de);
}

/// §12 item 22: `Accept: application/json; version=1.0`: 200, `Content-Type:
/// application/json; version=1.0`, Base64 keyData, parses back to the keys in order.
async fn download_json(b: Backend) {
    let fed = fed_at(&b, &["DE", "FR"], T0, 14).await;
    let keys = put(&fed, "DE", 2).await;
    cut(&fed).await;
    let r = fed["FR"].download(D0, None, Some(JSON_V1)).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type.as_deref(), Some(JSON_V1));
    let text = r.text();
    use base64::Engine as _;
    for k in &keys {
        let b64 = base64::engine::general_purpose::STANDARD.encode(&k.key_data);
        assert!(text.contains(&format!("\"keyData\": \"{b64}\"")), "{text}");
    }
    assert!(text.starts_with("{\"keys\": [{"), "{text}");
    assert_eq!(r.keys, keys);
}

/// §12 item 23: a download writes one statistics row for the caller.
async fn download_writes_statistics_row(b: Backend) {
    let fed = fed_at(&b, &["DE", "FR"], T0, 14).await;
    put(&fed, "DE", 3).await;
    let t = cut(&fed).await;
    let r = fed["FR"].download(D0, None, Some(PB_V1)).await.unwrap();
    assert_eq!(r.status, 200);
    // The server's store handle may write the row off the request's path (ADR 0030).
    fed.gateway().store().flush_download_stats().await.unwrap();
    let stats = fed
        .store()
        .download_stats(T0 - Duration::days(1))
        .await
        .unwrap();
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].country, "FR");
    assert_eq!(stats[0].batch_tag.to_string(), t);
    assert_eq!(stats[0].number_of_keys, 3);
}

/// clients.md §1 (MUST): tags are `yyyyMMdd-N`, N from 1, +1 per batch, no gaps; each links to
/// the next.
async fn download_tags_dense_from_1(b: Backend) {
    let fed = fed_at(&b, &["DE", "FR"], T0, 14).await;
    let mut tags = Vec::new();
    for _ in 0..4 {
        put(&fed, "DE", 1).await;
        tags.push(cut(&fed).await);
        fed.clock().advance(Duration::minutes(5));
    }
    assert_eq!(
        tags,
        ["20261128-1", "20261128-2", "20261128-3", "20261128-4"]
    );
    let chain = fed["FR"].download_all(D0).await.unwrap();
    let served: Vec<_> = chain.iter().map(|d| d.batch_tag.clone().unwrap()).collect();
    assert_eq!(served, tags);
}

/// clients.md §1: N restarts at 1 on a new UTC day and yesterday's last batch links to
/// today's first.
async fn download_tags_restart_after_midnight_and_link_across_days(b: Backend) {
    let fed = fed_at(&b, &["DE", "FR"], datetime!(2026-11-28 23:50 UTC), 14).await;
    put(&fed, "DE", 1).await;
    assert_eq!(cut(&fed).await, "20261128-1");
    fed.clock().set(datetime!(2026-11-28 23:59:59 UTC));
    put(&fed, "DE", 1).await;
    assert_eq!(cut(&fed).await, "20261128-2");
    fed.clock().set(datetime!(2026-11-29 00:00:01 UTC));
    put(&fed, "DE", 1).await;
    assert_eq!(cut(&fed).await, "20261129-1");
    let r = fed["FR"]
        .download(D0, Some("20261128-2"), Some(PB_V1))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.next_batch_tag.as_deref(), Some("20261129-1"));
}

/// Protocol §1.3 / clients.md §4: following `nextBatchTag` from yesterday runs on into today;
/// today without a tag starts at today's `-1`.
async fn download_chain_followed_across_midnight(b: Backend) {
    let fed = fed_at(&b, &["DE", "FR"], datetime!(2026-11-28 22:00 UTC), 14).await;
    let mut all = Vec::new();
    for t in [
        datetime!(2026-11-28 22:00 UTC),
        datetime!(2026-11-28 23:30 UTC),
        datetime!(2026-11-29 00:30 UTC),
        datetime!(2026-11-29 01:30 UTC),
    ] {
        fed.clock().set(t);
        all.extend(put(&fed, "DE", 2).await);
        cut(&fed).await;
    }
    let chain = fed["FR"].download_all(D0).await.unwrap();
    let tags: Vec<_> = chain.iter().map(|d| d.batch_tag.clone().unwrap()).collect();
    assert_eq!(
        tags,
        ["20261128-1", "20261128-2", "20261129-1", "20261129-2"]
    );
    let keys: Vec<_> = chain.into_iter().flat_map(|d| d.keys).collect();
    assert_eq!(keys, all);
    let today = fed["FR"]
        .download(D0 + Duration::days(1), None, Some(PB_V1))
        .await
        .unwrap();
    assert_eq!(today.batch_tag.as_deref(), Some("20261129-1"));
}

/// clients.md §4: a batch holding only the caller's keys: 200 with an empty protobuf body,
/// still with `batchTag` and `nextBatchTag`.
async fn download_only_own_keys_200_empty_protobuf(b: Backend) {
    let fed = fed_at(&b, &["DE", "FR"], T0, 14).await;
    put(&fed, "DE", 3).await;
    let t = cut(&fed).await;
    let r = fed["DE"].download(D0, None, Some(PB_V1)).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty(), "{:?}", r.body);
    assert_eq!(r.batch_tag.as_deref(), Some(t.as_str()));
    assert_eq!(r.next_batch_tag.as_deref(), Some("null"));
    assert_eq!(r.content_type.as_deref(), Some(PB_V1));
}

/// clients.md §4: the same in JSON is `{}`.
async fn download_only_own_keys_200_empty_json_object(b: Backend) {
    let fed = fed_at(&b, &["DE", "FR"], T0, 14).await;
    put(&fed, "DE", 3).await;
    cut(&fed).await;
    let r = fed["DE"].download(D0, None, Some(JSON_V1)).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "{}");
    assert_eq!(r.content_type.as_deref(), Some(JSON_V1));
}

/// clients.md §4 (Denmark): no batch for the date: 404 with `message` exactly "Could not find
/// any batches for given date".
async fn download_no_batch_for_date_404_message(b: Backend) {
    let fed = fed_at(&b, &["DK", "FR"], T0, 14).await;
    let r = fed["DK"].download(D0, None, Some(JSON_V1)).await.unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json()["message"].as_str(),
        Some("Could not find any batches for given date")
    );
}

/// clients.md §4: tomorrow's UTC date (IT and ES use local time near midnight) is 404, not
/// 400, even when today has batches.
async fn download_tomorrow_404(b: Backend) {
    let fed = fed_at(&b, &["DE", "IT"], datetime!(2026-11-28 23:30 UTC), 14).await;
    put(&fed, "DE", 1).await;
    cut(&fed).await;
    let r = fed["IT"]
        .download(D0 + Duration::days(1), None, Some(PB_V1))
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(
        r.message().as_deref(),
        Some("Could not find any batches for given date")
    );
}

/// Protocol §1.3 step 3: an empty `batchTag` header is 404.
async fn download_empty_batch_tag_header_404(b: Backend) {
    let fed = fed_at(&b, &["DE", "FR"], T0, 14).await;
    put(&fed, "DE", 1).await;
    cut(&fed).await;
    let r = fed["FR"].download(D0, Some(""), Some(PB_V1)).await.unwrap();
    assert_eq!(r.status, 404);
}

/// Protocol §1.3: a path date that is not `yyyy-MM-dd` is 400 (after authentication).
async fn download_invalid_date_400(b: Backend) {
    let fed = fed_at(&b, &["FR"], T0, 14).await;
    for d in ["s", "2026-13-01", "28-11-2026", "20261128"] {
        let r = fed["FR"].download(d, None, Some(PB_V1)).await.unwrap();
        assert_eq!(r.status, 400, "{d}");
    }
}

/// Protocol §1.0: `X-Protobuf-Schema: Efgs.proto` and `X-Protobuf-Message:
/// eu.interop.DiagnosisKeyBatch` on both formats.
async fn download_protobuf_schema_headers(b: Backend) {
    let fed = fed_at(&b, &["DE", "FR"], T0, 14).await;
    put(&fed, "DE", 1).await;
    cut(&fed).await;
    for accept in [PB_V1, JSON_V1] {
        let r = fed["FR"].download(D0, None, Some(accept)).await.unwrap();
        let h = |n: &str| {
            r.headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        assert_eq!(h("X-Protobuf-Schema").as_deref(), Some("Efgs.proto"));
        assert_eq!(
            h("X-Protobuf-Message").as_deref(),
            Some("eu.interop.DiagnosisKeyBatch")
        );
    }
}

/// Protocol §1.3 step 2: with no batch on the date, the first batch of a later day is served.
async fn download_first_batch_may_be_from_later_day(b: Backend) {
    let fed = fed_at(&b, &["DE", "FR"], T0, 14).await;
    fed.clock().set(datetime!(2026-11-29 10:00 UTC));
    let keys = put(&fed, "DE", 2).await;
    cut(&fed).await;
    let r = fed["FR"].download(D0, None, Some(PB_V1)).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.batch_tag.as_deref(), Some("20261129-1"));
    assert_eq!(r.keys, keys);
}

/// ADR 0005: a batch cut at exactly 00:00:00 UTC is the first batch of its own date.
async fn download_batch_cut_at_midnight_belongs_to_that_date(b: Backend) {
    let fed = fed_at(&b, &["DE", "FR"], datetime!(2026-11-28 23:59 UTC), 14).await;
    put(&fed, "DE", 1).await;
    fed.clock().set(datetime!(2026-11-29 00:00 UTC));
    assert_eq!(cut(&fed).await, "20261129-1");
    let r = fed["FR"]
        .download(D0 + Duration::days(1), None, Some(PB_V1))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.batch_tag.as_deref(), Some("20261129-1"));
}

/// clients.md §4: zero values are omitted in JSON (clients default them) and an empty visited
/// list never comes back as `[""]`.
async fn download_json_omits_defaults_and_empty_lists(b: Backend) {
    let fed = fed_at(&b, &["DE", "FR"], T0, 14).await;
    let de = &fed["DE"];
    let mut keys = de.keys(1);
    keys[0].visited_countries = Default::default();
    keys[0].transmission_risk_level = 0;
    keys[0].days_since_onset_of_symptoms = 0;
    assert_eq!(de.upload(&keys, "zeros", PB).await.unwrap().status, 201);
    cut(&fed).await;
    let json = fed["FR"].download(D0, None, Some(JSON_V1)).await.unwrap();
    let text = json.text();
    for absent in [
        "visitedCountries",
        "transmissionRiskLevel",
        "days_since_onset_of_symptoms",
    ] {
        assert!(!text.contains(absent), "{absent} in {text}");
    }
    assert_eq!(json.keys, keys);
    let pb = fed["FR"].download(D0, None, Some(PB_V1)).await.unwrap();
    assert_eq!(pb.keys[0].visited_countries, Vec::<String>::new());
}

/// clients.md §4: repeated downloads are normal and give the same answer.
async fn download_repeated_gives_same_answer(b: Backend) {
    let fed = fed_at(&b, &["DE", "FR"], T0, 14).await;
    put(&fed, "DE", 5).await;
    let t = cut(&fed).await;
    let a = fed["FR"].download(D0, Some(&t), Some(PB_V1)).await.unwrap();
    let b2 = fed["FR"].download(D0, Some(&t), Some(PB_V1)).await.unwrap();
    assert_eq!(a.status, 200);
    assert_eq!(a.body, b2.body);
    assert_eq!(a.next_batch_tag, b2.next_batch_tag);
}

/// Protocol §5: keys not yet batched are never downloadable.
async fn download_unbatched_keys_invisible(b: Backend) {
    let fed = fed_at(&b, &["DE", "FR"], T0, 14).await;
    put(&fed, "DE", 5).await;
    let r = fed["FR"].download(D0, None, Some(PB_V1)).await.unwrap();
    assert_eq!(r.status, 404);
    put(&fed, "DE", 1).await;
    cut(&fed).await;
    let r = fed["FR"].download(D0, None, Some(PB_V1)).await.unwrap();
    assert_eq!(r.keys.len(), 6);
}

// ---------------------------------------------------------------------------------------------
// The download response cache (ADR 0011): encoded bodies are reused per (batch, caller's
// country, format); everything else still happens per request.
// ---------------------------------------------------------------------------------------------

/// Each caller gets its own view of a batch, in the format it asked for, also when another
/// country's or another format's body of the same batch is already cached.
async fn download_cached_bodies_are_per_country_and_format(b: Backend) {
    let fed = fed_at(&b, &["DE", "FR", "IT"], T0, 14).await;
    let de = put(&fed, "DE", 2).await;
    let fr = put(&fed, "FR", 3).await;
    let it = put(&fed, "IT", 4).await;
    let t = cut(&fed).await;
    let without = |own: &[DiagnosisKey]| -> Vec<DiagnosisKey> {
        [&de, &fr, &it]
            .into_iter()
            .filter(|ks| ks.as_slice() != own)
            .flat_map(|ks| ks.iter().cloned())
            .collect()
    };
    for round in 0..2 {
        for (country, own) in [("FR", &fr), ("DE", &de), ("IT", &it)] {
            for accept in [PB_V1, JSON_V1] {
                let r = fed[country]
                    .download(D0, Some(&t), Some(accept))
                    .await
                    .unwrap();
                assert_eq!(r.status, 200, "{country} {accept} round {round}");
                assert_eq!(r.content_type.as_deref(), Some(accept));
                assert_eq!(r.keys, without(own), "{country} {accept} round {round}");
            }
        }
    }
}

/// With the cache on, a body is cut from the whole batch's encoding in its format (each
/// upload's segment encoded once); it must be byte for byte the encoding of the caller's keys,
/// in protobuf and JSON, with the cache on and off, for interleaved uploads of several
/// countries, for a country that uploaded nothing to the batch and for one whose keys are all
/// of it.
async fn download_bodies_cut_from_the_whole_batch_equal_their_own_encoding(b: Backend) {
    for cache in ["67108864", "0"] {
        let fed = b
            .builder()
            .await
            .countries(["DE", "FR", "IT", "NL"])
            .start_at(T0)
            .setting("download.cache_max_bytes", cache)
            .build()
            .await
            .unwrap();
        let mut uploaded = Vec::new();
        for (country, n) in [
            ("DE", 3),
            ("FR", 2),
            ("FR", 1),
            ("DE", 4),
            ("IT", 2),
            ("DE", 1),
        ] {
            uploaded.push((country, put(&fed, country, n).await));
        }
        let mixed = cut(&fed).await;
        uploaded.push(("NL", put(&fed, "NL", 2).await));
        let only_nl = cut(&fed).await;
        for (t, batch) in [(&mixed, &uploaded[..6]), (&only_nl, &uploaded[6..])] {
            for round in 0..2 {
                for country in ["NL", "DE", "FR", "IT"] {
                    for (accept, format) in [(PB_V1, PB), (JSON_V1, BodyFormat::Json)] {
                        let r = fed[country]
                            .download(D0, Some(t), Some(accept))
                            .await
                            .unwrap();
                        let what = format!("{t} {country} {accept} cache {cache} round {round}");
                        assert_eq!(r.status, 200, "{what}");
                        let want: Vec<DiagnosisKey> = batch
                            .iter()
                            .filter(|(c, _)| *c != country)
                            .flat_map(|(_, ks)| ks.iter().cloned())
                            .collect();
                        let encoded = efgs_core::proto::encode_body(
                            format,
                            &efgs_core::DiagnosisKeyBatch { keys: want.clone() },
                        );
                        assert_eq!(r.keys, want, "{what}");
                        assert!(
                            r.body == encoded,
                            "{what}: bytes differ:\n{}\n{}",
                            String::from_utf8_lossy(&r.body),
                            String::from_utf8_lossy(&encoded)
                        );
                    }
                }
            }
        }
        fed.shutdown().await.unwrap();
    }
}

/// The body may be cached, the `nextBatchTag` link is not: once the next batch is cut, a
/// repeated download of the earlier one names it.
async fn download_cached_body_gets_the_current_next_batch_tag(b: Backend) {
    let fed = fed_at(&b, &["DE", "FR"], T0, 14).await;
    let keys = put(&fed, "DE", 2).await;
    let t1 = cut(&fed).await;
    let r = fr_gets(&fed, D0, &t1).await;
    assert_eq!(r.next_batch_tag.as_deref(), Some("null"));
    put(&fed, "DE", 1).await;
    let t2 = cut(&fed).await;
    let r = fr_gets(&fed, D0, &t1).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.keys, keys);
    assert_eq!(r.next_batch_tag.as_deref(), Some(t2.as_str()));
}

/// Every download writes its statistics row, also when the body comes from the cache.
async fn download_cached_body_still_writes_statistics_row_each_time(b: Backend) {
    let fed = fed_at(&b, &["DE", "FR"], T0, 14).await;
    put(&fed, "DE", 3).await;
    let t = cut(&fed).await;
    for _ in 0..3 {
        let r = fed["FR"].download(D0, None, Some(PB_V1)).await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.keys.len(), 3);
    }
    fed.gateway().store().flush_download_stats().await.unwrap();
    let stats = fed
        .store()
        .download_stats(T0 - Duration::days(1))
        .await
        .unwrap();
    assert_eq!(stats.len(), 3);
    for s in &stats {
        assert_eq!((s.country.as_str(), s.number_of_keys), ("FR", 3));
        assert_eq!(s.batch_tag.to_string(), t);
    }
}

/// Authentication runs before the cache: a revoked certificate gets 403 on the next request
/// even though its country's body is cached.
async fn download_cached_body_still_refuses_revoked_certificate(b: Backend) {
    let fed = fed_at(&b, &["DE", "FR"], T0, 14).await;
    put(&fed, "DE", 2).await;
    cut(&fed).await;
    let fr = &fed["FR"];
    let r = fr.download(D0, None, Some(PB_V1)).await.unwrap();
    assert_eq!(r.status, 200);
    fed.revoke(&fr.credentials().auth_thumbprint).await.unwrap();
    let r = fr.download(D0, None, Some(PB_V1)).await.unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.keys.is_empty());
}

/// Keys uploaded at 23:50 and batched just after midnight belong to the next day's batch,
/// which stays downloadable after the retention job deleted them (the key cutoff is by
/// upload time). The job on this instance clears the cache: the next download has no keys.
async fn download_retention_on_this_instance_reaches_cached_body_at_once(b: Backend) {
    let (fed, d1, t) = cached_batch_past_key_retention(&b).await;
    let report = fed.gateway().cleanup(fed.now()).await.unwrap();
    assert_eq!(report.deleted, 2);
    let r = fr_gets(&fed, d1, &t).await;
    assert_eq!(r.status, 200);
    assert!(r.keys.is_empty(), "deleted keys served from the cache");
    assert!(r.body.is_empty());
}

/// The same job run by another instance on the same database cannot clear this instance's
/// cache: the deleted keys stop being served once `download_cache.ttl` has passed.
async fn download_retention_on_another_instance_reaches_cached_body_within_ttl(b: Backend) {
    let (fed, d1, t) = cached_batch_past_key_retention(&b).await;
    let ttl = fed.gateway().policy().download_cache.ttl;
    let other = efgs_core::gateway::Gateway::new(
        fed.store().clone(),
        fed.gateway().anchors().clone(),
        efgs_core::canonical::DuplicateHasher::new(b"another instance"),
        fed.gateway().policy().clone(),
    );
    let report = other.cleanup(fed.now()).await.unwrap();
    assert_eq!(report.deleted, 2);
    fed.clock().advance(ttl);
    let r = fr_gets(&fed, d1, &t).await;
    assert_eq!(r.status, 200);
    assert!(r.keys.is_empty(), "deleted keys served after the TTL");
}

fn date_of(tag: &str) -> Date {
    let format = time::macros::format_description!("[year][month][day]");
    Date::parse(&tag[..8], &format).unwrap()
}

/// FR downloads batch `tag` of `date` as protobuf.
async fn fr_gets(
    fed: &Federation,
    date: Date,
    tag: &str,
) -> efgs_testkit::national::DownloadResult {
    fed["FR"]
        .download(date, Some(tag), Some(PB_V1))
        .await
        .unwrap()
}

/// DE uploads 2 keys at 23:50, the batch is cut at 00:05 the next day (d1), and at 10:00 two
/// days later FR downloads it (so its body is cached) while the keys are already past the key
/// cutoff (d1 00:00) but the batch is still inside the 2-day window. Returns the federation,
/// d1 and the tag.
async fn cached_batch_past_key_retention(b: &Backend) -> (Federation, Date, String) {
    let fed = fed_at(b, &["DE", "FR"], datetime!(2026-11-28 23:50 UTC), 2).await;
    let keys = put(&fed, "DE", 2).await;
    fed.clock().set(datetime!(2026-11-29 00:05 UTC));
    let t = cut(&fed).await;
    let d1 = date_of(&t);
    fed.clock().set(datetime!(2026-12-01 10:00 UTC));
    let r = fr_gets(&fed, d1, &t).await;
    assert_eq!((r.status, &r.keys), (200, &keys));
    (fed, d1, t)
}

/// Download statistics are written off the request's path (ADR 0030) but none is lost: the
/// rows of downloads answered just before a graceful shutdown are all stored once the server
/// has stopped, read through another store handle (PostgreSQL) or the same store (memory).
async fn download_statistics_are_all_written_by_a_graceful_shutdown(b: Backend) {
    let fed = fed_at(&b, &["DE", "FR", "IT"], T0, 14).await;
    put(&fed, "DE", 3).await;
    let t = cut(&fed).await;
    let store = fed.store().clone();
    let mut served = 0;
    for round in 0..20 {
        let (fr, it) = tokio::join!(
            fed["FR"].download(D0, None, Some(PB_V1)),
            fed["IT"].download(D0, Some(&t), Some(JSON_V1)),
        );
        for r in [fr.unwrap(), it.unwrap()] {
            assert_eq!(r.status, 200, "round {round}");
            served += 1;
        }
    }
    fed.shutdown().await.unwrap();
    let stats = store.download_stats(T0 - Duration::days(1)).await.unwrap();
    assert_eq!(stats.len(), served);
    for country in ["FR", "IT"] {
        let rows: Vec<_> = stats.iter().filter(|s| s.country == country).collect();
        assert_eq!(rows.len(), served / 2, "{country}");
        assert!(
            rows.iter()
                .all(|s| s.number_of_keys == 3 && s.batch_tag.to_string() == t)
        );
    }
}
