//! The storage conformance suite: every backend must pass every behaviour.
//!
//! Each behaviour is a `pub async fn` that panics with a clear message when the store breaks
//! the contract documented in [`efgs_core::store`]. Most take a fresh, empty store as
//! `Arc<`[`DynInspectableStore`]`>` (an `Arc` so they can spawn concurrent tasks); the ones that reopen
//! the storage take a [`StoreFactory`]. The suite reads what the gateway never reads
//! (statistics, key counts, the latest batch) through [`efgs_core::store::StoreInspect`]. Run them on a multi-threaded tokio runtime (the
//! [`conformance_tests!`](crate::conformance_tests) macro does).
//!
//! A backend's `tests/conformance.rs` invokes the macro once:
//!
//! ```ignore
//! efgs_testkit::conformance_tests!(memory, async { Some(MemoryFactory::default()) });
//! ```
//!
//! which expands to `mod memory { #[tokio::test] async fn <behaviour>() … }`, one named test
//! per behaviour (`memory::upload_identical_replay_is_idempotent`, …). The second argument is
//! evaluated once per test and must be a future yielding `Option<impl StoreFactory>`; `None`
//! skips that test (a backend whose database is not configured prints why, and panics instead
//! when it is required, e.g. under `EFGS_REQUIRE_POSTGRES`). The invoking crate needs `tokio`
//! (features `macros`, `rt-multi-thread`) as a dev-dependency.

#![allow(
    clippy::unwrap_used,
    reason = "a conformance suite: a failing store call is a test failure"
)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use efgs_core::DiagnosisKey;
use efgs_core::cert::Thumbprint;
use efgs_core::model::{CertificateType, FormatVersion};
use efgs_core::store::{
    BatchInfo, CleanupReport, CreatedBatch, DownloadStat, DynInspectableStore, KeyConflicts,
    KeyCounts, NewUpload, PendingSummary, Readmission, StoreError, TrustEntry, TrustListStoreExt,
    UploadOutcome, UploadReceipt, UploadStat, Upserted,
};
use efgs_core::store::{CallbackTask, SubscriptionUpsert, TaskClaim, TaskFinish, TaskResult};
use efgs_core::tag::BatchTag;
use time::macros::datetime;
use time::{Duration, OffsetDateTime, UtcOffset};

use crate::generate::{self, BASE, COUNTRIES, KeyGen};

/// Opens the store of one test.
#[async_trait]
pub trait StoreFactory: Send + Sync {
    /// The first call returns a handle on new, empty storage (its own database schema, its
    /// own memory store). Every later call on the same factory opens a **new** handle on that
    /// same storage, as a restarted server would (a new connection pool; for the memory store,
    /// which cannot outlive its handle, the same store).
    async fn open(&self) -> Arc<DynInspectableStore>;
}

/// Behaviours taking a fresh store.
pub const STORE_BEHAVIOURS: &[&str] = &[
    "trust_upsert_then_get_roundtrip",
    "trust_upsert_of_a_resigned_entry_replaces_it",
    "trust_plain_reimport_is_idempotent",
    "trust_lookup_needs_matching_country_and_type",
    "trust_thumbprint_is_unique_across_types",
    "trust_upsert_changing_country_or_type_is_refused",
    "trust_revoke_is_idempotent_and_keeps_the_rest",
    "trust_revoke_unknown_is_not_found",
    "trust_reimport_of_a_revoked_entry_keeps_it_revoked",
    "trust_upsert_may_revoke_but_never_readmits",
    "trust_readmit_clears_only_the_revoked_flag",
    "trust_readmit_unknown_is_not_found",
    "trust_concurrent_reimports_never_undo_a_revocation",
    "trust_list_is_ordered_and_includes_revoked",
    "upload_then_download_roundtrip",
    "upload_receipt_and_info_describe_the_upload",
    "upload_identical_replay_is_idempotent",
    "upload_same_tag_different_content_is_batch_tag_exists",
    "upload_tags_are_scoped_per_country",
    "upload_duplicate_of_stored_key_rejects_whole_upload",
    "upload_repeated_key_within_upload_reports_later_index",
    "upload_conflict_lists_cover_every_index",
    "upload_failing_half_way_leaves_no_trace",
    "upload_tag_check_precedes_duplicate_check",
    "upload_replay_after_batching_is_still_replayed",
    "upload_empty_is_recorded_but_never_pending",
    "upload_keys_roundtrip_exactly",
    "timestamps_are_kept_to_the_microsecond",
    "concurrent_uploads_from_several_countries_lose_nothing",
    "concurrent_identical_uploads_store_once",
    "concurrent_uploads_same_tag_one_wins",
    "concurrent_uploads_sharing_a_key_store_at_most_one",
    "batching_with_nothing_pending_creates_nothing",
    "first_batch_gets_dash_one_without_link",
    "next_batch_same_day_links_previous",
    "tag_sequence_restarts_each_utc_day_and_links_across_days",
    "batching_is_greedy_and_never_skips_ahead",
    "batching_never_mixes_formats",
    "oversized_upload_forms_its_own_batch",
    "clock_going_backwards_keeps_tags_unique_and_dense",
    "pending_summary_counts_pending_uploads",
    "unknown_batch_tag_finds_nothing",
    "first_batch_at_or_after_includes_the_instant_and_later_days",
    "concurrent_batchers_claim_every_upload_once",
    "batch_keys_follow_upload_then_key_order",
    "own_country_exclusion_is_by_uploader_not_origin",
    "batch_keys_hold_only_that_batch",
    "audit_groups_describe_each_upload_in_order",
    "audit_groups_slice_the_batch_keys_per_upload",
    "audit_groups_skip_deleted_uploads",
    "upload_stats_are_written_only_for_stored_uploads",
    "download_stats_roundtrip_with_since_filter",
    "cleanup_stats_are_written_per_run",
    "retention_deletes_exactly_the_keys_before_cutoff",
    "retention_frees_tags_and_hashes_of_deleted_uploads",
    "retention_keeps_batch_metadata",
    "retention_deletes_old_pending_uploads",
    "delete_batches_before_removes_only_old_empty_batches",
    "trail_append_chains_events_in_order",
    "trail_reads_page_by_sequence_and_instant",
    "trail_concurrent_appends_stay_linear",
    "trail_retention_keeps_the_chain_going",
    "trail_push_cursor_is_leased",
    "callback_subscriptions_upsert_list_and_scope_by_country",
    "callback_delete_is_scoped_by_country",
    "callback_tasks_follow_cut_order_one_at_a_time",
    "callback_expired_lease_is_taken_over_and_the_old_holder_loses",
    "callback_failure_waits_then_suspends_until_a_put",
    "callback_concurrent_claims_lease_each_task_once",
];

/// Behaviours taking a [`StoreFactory`].
pub const FACTORY_BEHAVIOURS: &[&str] = &[
    "reopened_store_sees_acknowledged_data",
    "reopened_store_continues_the_batch_chain",
    "reopened_store_keeps_a_revocation_against_reimport",
    "reopened_store_continues_the_audit_chain",
    "change_stamps_follow_writes_through_every_handle",
];

/// Expands the suite into one `#[tokio::test]` per behaviour inside `mod $backend`.
///
/// `$factory` is an expression evaluated once per test, in the scope of the invoking file
/// (via `use super::*`), yielding a future of `Option<impl StoreFactory>`; `None` skips.
#[macro_export]
macro_rules! conformance_tests {
    ($backend:ident, $factory:expr) => {
        $crate::__conformance_tests! {
            $backend, $factory,
            store: [
                trust_upsert_then_get_roundtrip,
                trust_upsert_of_a_resigned_entry_replaces_it,
                trust_plain_reimport_is_idempotent,
                trust_lookup_needs_matching_country_and_type,
                trust_thumbprint_is_unique_across_types,
                trust_upsert_changing_country_or_type_is_refused,
                trust_revoke_is_idempotent_and_keeps_the_rest,
                trust_revoke_unknown_is_not_found,
                trust_reimport_of_a_revoked_entry_keeps_it_revoked,
                trust_upsert_may_revoke_but_never_readmits,
                trust_readmit_clears_only_the_revoked_flag,
                trust_readmit_unknown_is_not_found,
                trust_concurrent_reimports_never_undo_a_revocation,
                trust_list_is_ordered_and_includes_revoked,
                upload_then_download_roundtrip,
                upload_receipt_and_info_describe_the_upload,
                upload_identical_replay_is_idempotent,
                upload_same_tag_different_content_is_batch_tag_exists,
                upload_tags_are_scoped_per_country,
                upload_duplicate_of_stored_key_rejects_whole_upload,
                upload_repeated_key_within_upload_reports_later_index,
                upload_conflict_lists_cover_every_index,
                upload_failing_half_way_leaves_no_trace,
                upload_tag_check_precedes_duplicate_check,
                upload_replay_after_batching_is_still_replayed,
                upload_empty_is_recorded_but_never_pending,
                upload_keys_roundtrip_exactly,
                timestamps_are_kept_to_the_microsecond,
                concurrent_uploads_from_several_countries_lose_nothing,
                concurrent_identical_uploads_store_once,
                concurrent_uploads_same_tag_one_wins,
                concurrent_uploads_sharing_a_key_store_at_most_one,
                batching_with_nothing_pending_creates_nothing,
                first_batch_gets_dash_one_without_link,
                next_batch_same_day_links_previous,
                tag_sequence_restarts_each_utc_day_and_links_across_days,
                batching_is_greedy_and_never_skips_ahead,
                batching_never_mixes_formats,
                oversized_upload_forms_its_own_batch,
                clock_going_backwards_keeps_tags_unique_and_dense,
                pending_summary_counts_pending_uploads,
                unknown_batch_tag_finds_nothing,
                first_batch_at_or_after_includes_the_instant_and_later_days,
                concurrent_batchers_claim_every_upload_once,
                batch_keys_follow_upload_then_key_order,
                own_country_exclusion_is_by_uploader_not_origin,
                batch_keys_hold_only_that_batch,
                audit_groups_describe_each_upload_in_order,
                audit_groups_slice_the_batch_keys_per_upload,
                audit_groups_skip_deleted_uploads,
                upload_stats_are_written_only_for_stored_uploads,
                download_stats_roundtrip_with_since_filter,
                cleanup_stats_are_written_per_run,
                retention_deletes_exactly_the_keys_before_cutoff,
                retention_frees_tags_and_hashes_of_deleted_uploads,
                retention_keeps_batch_metadata,
                retention_deletes_old_pending_uploads,
                delete_batches_before_removes_only_old_empty_batches,
                trail_append_chains_events_in_order,
                trail_reads_page_by_sequence_and_instant,
                trail_concurrent_appends_stay_linear,
                trail_retention_keeps_the_chain_going,
                trail_push_cursor_is_leased,
                callback_subscriptions_upsert_list_and_scope_by_country,
                callback_delete_is_scoped_by_country,
                callback_tasks_follow_cut_order_one_at_a_time,
                callback_expired_lease_is_taken_over_and_the_old_holder_loses,
                callback_failure_waits_then_suspends_until_a_put,
                callback_concurrent_claims_lease_each_task_once,
            ],
            factory: [
                reopened_store_sees_acknowledged_data,
                reopened_store_continues_the_batch_chain,
                reopened_store_keeps_a_revocation_against_reimport,
                reopened_store_continues_the_audit_chain,
                change_stamps_follow_writes_through_every_handle,
            ],
        }
    };
}

/// Implementation detail of [`conformance_tests!`](crate::conformance_tests).
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    (
        $backend:ident, $factory:expr,
        store: [$($s:ident),* $(,)?],
        factory: [$($f:ident),* $(,)?] $(,)?
    ) => {
        mod $backend {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $s() {
                    if let Some(factory) = ($factory).await {
                        let store = $crate::conformance::StoreFactory::open(&factory).await;
                        $crate::conformance::$s(store).await;
                    }
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $f() {
                    if let Some(factory) = ($factory).await {
                        $crate::conformance::$f(&factory).await;
                    }
                }
            )*

            /// The macro and the published behaviour lists name the same behaviours.
            #[test]
            fn suite_lists_every_behaviour() {
                let store: &[&str] = &[$(stringify!($s)),*];
                let factory: &[&str] = &[$(stringify!($f)),*];
                assert_eq!(store, $crate::conformance::STORE_BEHAVIOURS);
                assert_eq!(factory, $crate::conformance::FACTORY_BEHAVIOURS);
            }
        }
    };
}

#[path = "conformance_trail.rs"]
mod trail;
pub use trail::*;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn at(secs: i64) -> OffsetDateTime {
    BASE + Duration::seconds(secs)
}

fn tag(s: &str) -> BatchTag {
    BatchTag::parse(s).unwrap_or_else(|e| panic!("bad tag in test: {e}"))
}

async fn stored(store: &DynInspectableStore, upload: NewUpload) -> UploadReceipt {
    let what = format!("{}/{}", upload.country, upload.batch_tag);
    match store.insert_upload(upload).await {
        Ok(UploadOutcome::Stored(r)) => r,
        other => panic!("upload {what}: expected Stored, got {other:?}"),
    }
}

async fn conflicts(store: &DynInspectableStore, upload: NewUpload) -> KeyConflicts {
    match store.insert_upload(upload).await {
        Ok(UploadOutcome::DuplicateKeys(c)) => c,
        other => panic!("expected DuplicateKeys, got {other:?}"),
    }
}

async fn next_batch(
    store: &DynInspectableStore,
    now: OffsetDateTime,
    max_keys: usize,
) -> CreatedBatch {
    store
        .create_next_batch(now, max_keys)
        .await
        .unwrap_or_else(|e| panic!("create_next_batch failed: {e:?}"))
        .unwrap_or_else(|| panic!("create_next_batch: expected a batch, nothing was pending"))
}

async fn batch_all(
    store: &DynInspectableStore,
    now: OffsetDateTime,
    max_keys: usize,
) -> Vec<CreatedBatch> {
    let mut out = Vec::new();
    while let Some(b) = store.create_next_batch(now, max_keys).await.unwrap() {
        out.push(b);
        assert!(out.len() < 100_000, "batching does not terminate");
    }
    out
}

async fn keys_of(
    store: &DynInspectableStore,
    t: &BatchTag,
    exclude: Option<&str>,
) -> Vec<DiagnosisKey> {
    store.batch_keys(t, exclude).await.unwrap()
}

async fn batch(store: &DynInspectableStore, t: &BatchTag) -> BatchInfo {
    store
        .batch_by_tag(t)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("batch {t} not found"))
}

async fn counts(store: &DynInspectableStore) -> KeyCounts {
    store.key_counts().await.unwrap()
}

/// Everything observable about uploads without knowing their tags.
#[derive(Debug, PartialEq)]
struct Snapshot {
    counts: KeyCounts,
    pending: PendingSummary,
    upload_stats: Vec<UploadStat>,
    latest: Option<BatchInfo>,
}

async fn snapshot(store: &DynInspectableStore) -> Snapshot {
    Snapshot {
        counts: counts(store).await,
        pending: store.pending_summary().await.unwrap(),
        upload_stats: store
            .upload_stats(OffsetDateTime::UNIX_EPOCH)
            .await
            .unwrap(),
        latest: store.latest_batch().await.unwrap(),
    }
}

fn entry(n: u8, country: &str, cert_type: CertificateType) -> TrustEntry {
    TrustEntry {
        thumbprint: Thumbprint::from_digest(&[n; 32]),
        country: country.to_owned(),
        cert_type,
        pem: format!("-----BEGIN CERTIFICATE-----\nMIIB{n:03}\n-----END CERTIFICATE-----\n"),
        signature: format!("c2lnbmF0dXJl{n:03}=="),
        revoked: false,
        created_at: BASE,
    }
}

/// Upserts an entry whose thumbprint is new.
async fn inserted(store: &DynInspectableStore, e: TrustEntry) {
    let what = e.thumbprint.to_string();
    let out = store.upsert_trust_entry(e).await.unwrap();
    assert_eq!(out, Upserted::Inserted, "upsert of the new entry {what}");
}

const MIN_TIME: OffsetDateTime = datetime!(1970-01-01 00:00 UTC);

// ---------------------------------------------------------------------------------------------
// Trust list
// ---------------------------------------------------------------------------------------------

/// An inserted entry comes back field by field; an unknown thumbprint gives `None`.
pub async fn trust_upsert_then_get_roundtrip(store: Arc<DynInspectableStore>) {
    let e = entry(1, "DE", CertificateType::Authentication);
    assert_eq!(
        store.upsert_trust_entry(e.clone()).await.unwrap(),
        Upserted::Inserted
    );
    assert_eq!(store.trust_entry(&e.thumbprint).await.unwrap(), Some(e));
    let unknown = Thumbprint::from_digest(&[9; 32]);
    assert_eq!(store.trust_entry(&unknown).await.unwrap(), None);
}

/// A re-signed entry (same thumbprint, country and type; other PEM text and signature)
/// replaces the stored one: PEM, signature and `created_at` are the new ones.
pub async fn trust_upsert_of_a_resigned_entry_replaces_it(store: Arc<DynInspectableStore>) {
    let e = entry(1, "DE", CertificateType::Authentication);
    inserted(&store, e.clone()).await;
    let mut e2 = e.clone();
    e2.pem = "-----BEGIN CERTIFICATE-----\nother\n-----END CERTIFICATE-----\n".to_owned();
    e2.signature = "b3RoZXI=".to_owned();
    e2.created_at = at(60);
    assert_eq!(
        store.upsert_trust_entry(e2.clone()).await.unwrap(),
        Upserted::Replaced
    );
    assert_eq!(
        store.trust_entry(&e.thumbprint).await.unwrap(),
        Some(e2.clone())
    );
    assert_eq!(store.list_trust_entries().await.unwrap(), vec![e2]);
}

/// Upserting the entry already stored (a plain re-import at the next start, with a later
/// `created_at`) is `Unchanged` and changes nothing, `created_at` included.
pub async fn trust_plain_reimport_is_idempotent(store: Arc<DynInspectableStore>) {
    let e = entry(1, "DE", CertificateType::Signing);
    let other = entry(2, "FR", CertificateType::Authentication);
    inserted(&store, e.clone()).await;
    inserted(&store, other.clone()).await;
    let before = store.list_trust_entries().await.unwrap();
    for n in 1..=3 {
        let mut again = e.clone();
        again.created_at = at(60 * n);
        assert_eq!(
            store.upsert_trust_entry(again).await.unwrap(),
            Upserted::Unchanged,
            "re-import {n}"
        );
    }
    assert_eq!(store.list_trust_entries().await.unwrap(), before);
    assert_eq!(store.trust_entry(&e.thumbprint).await.unwrap(), Some(e));
}

/// The (thumbprint, country, type) lookup finds the entry only when all three match.
pub async fn trust_lookup_needs_matching_country_and_type(store: Arc<DynInspectableStore>) {
    let e = entry(2, "DE", CertificateType::Signing);
    inserted(&store, e.clone()).await;
    let tp = &e.thumbprint.clone();
    assert_eq!(
        store
            .trust_entry_for(tp, "DE", CertificateType::Signing)
            .await
            .unwrap(),
        Some(e)
    );
    assert_eq!(
        store
            .trust_entry_for(tp, "FR", CertificateType::Signing)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .trust_entry_for(tp, "DE", CertificateType::Authentication)
            .await
            .unwrap(),
        None
    );
}

/// One thumbprint is one entry, whatever its type: registering it again as another type is
/// refused (`Conflict` naming the stored type) and the one entry stays.
pub async fn trust_thumbprint_is_unique_across_types(store: Arc<DynInspectableStore>) {
    let auth = entry(3, "DE", CertificateType::Authentication);
    let sign = entry(3, "DE", CertificateType::Signing);
    inserted(&store, auth.clone()).await;
    assert_eq!(
        store.upsert_trust_entry(sign.clone()).await.unwrap(),
        Upserted::Conflict {
            country: "DE".to_owned(),
            cert_type: CertificateType::Authentication
        }
    );
    let list = store.list_trust_entries().await.unwrap();
    assert_eq!(list, vec![auth.clone()]);
    assert_eq!(
        store
            .trust_entry_for(&sign.thumbprint, "DE", CertificateType::Signing)
            .await
            .unwrap(),
        None
    );
}

/// An upsert that would change the country, the type or both of a stored thumbprint is
/// refused with the stored country and type, and the stored entry stays exactly as it was,
/// revoked or not.
pub async fn trust_upsert_changing_country_or_type_is_refused(store: Arc<DynInspectableStore>) {
    let active = entry(1, "DE", CertificateType::Signing);
    let revoked = entry(2, "IT", CertificateType::Authentication);
    inserted(&store, active.clone()).await;
    inserted(&store, revoked.clone()).await;
    store.revoke_trust_entry(&revoked.thumbprint).await.unwrap();
    let before = store.list_trust_entries().await.unwrap();
    for stored in [&active, &revoked] {
        let changes = [
            ("FR", stored.cert_type),
            (stored.country.as_str(), CertificateType::Callback),
            ("FR", CertificateType::Callback),
        ];
        for (country, cert_type) in changes {
            let mut new = entry(0, country, cert_type);
            new.thumbprint = stored.thumbprint.clone();
            new.created_at = at(60);
            assert_eq!(
                store.upsert_trust_entry(new).await.unwrap(),
                Upserted::Conflict {
                    country: stored.country.clone(),
                    cert_type: stored.cert_type
                },
                "{} {} -> {country} {cert_type}",
                stored.country,
                stored.cert_type
            );
        }
    }
    assert_eq!(store.list_trust_entries().await.unwrap(), before);
}

/// Revoking sets the flag, changes nothing else, and may be repeated.
pub async fn trust_revoke_is_idempotent_and_keeps_the_rest(store: Arc<DynInspectableStore>) {
    let e = entry(4, "IT", CertificateType::Signing);
    let other = entry(5, "IT", CertificateType::Signing);
    inserted(&store, e.clone()).await;
    inserted(&store, other.clone()).await;
    store.revoke_trust_entry(&e.thumbprint).await.unwrap();
    let mut expected = e.clone();
    expected.revoked = true;
    assert_eq!(
        store.trust_entry(&e.thumbprint).await.unwrap(),
        Some(expected.clone())
    );
    store.revoke_trust_entry(&e.thumbprint).await.unwrap();
    assert_eq!(
        store.trust_entry(&e.thumbprint).await.unwrap(),
        Some(expected)
    );
    assert_eq!(
        store.trust_entry(&other.thumbprint).await.unwrap(),
        Some(other)
    );
}

/// Revoking an unknown thumbprint is `NotFound` and creates nothing.
pub async fn trust_revoke_unknown_is_not_found(store: Arc<DynInspectableStore>) {
    let tp = Thumbprint::from_digest(&[7; 32]);
    let r = store.revoke_trust_entry(&tp).await;
    assert!(matches!(r, Err(StoreError::NotFound { .. })), "got {r:?}");
    assert!(store.list_trust_entries().await.unwrap().is_empty());
}

/// Revocation is one-way: upserting a revoked entry again as not revoked (a re-import at the
/// next start, also re-signed with another PEM text and signature) is `KeptRevoked` and leaves
/// the stored entry exactly as it was.
pub async fn trust_reimport_of_a_revoked_entry_keeps_it_revoked(store: Arc<DynInspectableStore>) {
    let e = entry(4, "DE", CertificateType::Authentication);
    inserted(&store, e.clone()).await;
    store.revoke_trust_entry(&e.thumbprint).await.unwrap();
    let mut expected = e.clone();
    expected.revoked = true;
    let mut plain = e.clone();
    plain.created_at = at(60);
    let mut resigned = plain.clone();
    resigned.pem = "-----BEGIN CERTIFICATE-----\nresigned\n-----END CERTIFICATE-----\n".to_owned();
    resigned.signature = "cmVzaWduZWQ=".to_owned();
    for new in [plain, resigned] {
        assert_eq!(
            store.upsert_trust_entry(new).await.unwrap(),
            Upserted::KeptRevoked
        );
        assert_eq!(
            store.trust_entry(&e.thumbprint).await.unwrap(),
            Some(expected.clone())
        );
    }
    // A revoked entry imported as revoked changes nothing either.
    let mut revoked = e.clone();
    revoked.revoked = true;
    revoked.created_at = at(120);
    assert_eq!(
        store.upsert_trust_entry(revoked).await.unwrap(),
        Upserted::Unchanged
    );
    assert_eq!(store.list_trust_entries().await.unwrap(), vec![expected]);
}

/// An upsert may revoke (an entry imported with `revoked: true`), but the next upsert of the
/// entry as not revoked does not undo it.
pub async fn trust_upsert_may_revoke_but_never_readmits(store: Arc<DynInspectableStore>) {
    let e = entry(5, "FR", CertificateType::Signing);
    inserted(&store, e.clone()).await;
    let mut revoking = e.clone();
    revoking.revoked = true;
    revoking.created_at = at(60);
    assert_eq!(
        store.upsert_trust_entry(revoking.clone()).await.unwrap(),
        Upserted::Replaced
    );
    assert_eq!(
        store.trust_entry(&e.thumbprint).await.unwrap(),
        Some(revoking.clone())
    );
    let mut active = e.clone();
    active.created_at = at(120);
    assert_eq!(
        store.upsert_trust_entry(active).await.unwrap(),
        Upserted::KeptRevoked
    );
    assert_eq!(
        store.trust_entry(&e.thumbprint).await.unwrap(),
        Some(revoking)
    );
}

/// Re-admitting clears the revoked flag and nothing else; re-admitting an entry that is not
/// revoked is `NotRevoked` and changes nothing. After a re-admission, imports behave as for
/// any active entry.
pub async fn trust_readmit_clears_only_the_revoked_flag(store: Arc<DynInspectableStore>) {
    let e = entry(6, "NL", CertificateType::Authentication);
    let other = entry(7, "NL", CertificateType::Authentication);
    inserted(&store, e.clone()).await;
    inserted(&store, other.clone()).await;
    store.revoke_trust_entry(&e.thumbprint).await.unwrap();
    store.revoke_trust_entry(&other.thumbprint).await.unwrap();
    assert_eq!(
        store.readmit_trust_entry(&e.thumbprint).await.unwrap(),
        Readmission::Readmitted
    );
    assert_eq!(
        store.trust_entry(&e.thumbprint).await.unwrap(),
        Some(e.clone())
    );
    let mut other_revoked = other.clone();
    other_revoked.revoked = true;
    assert_eq!(
        store.trust_entry(&other.thumbprint).await.unwrap(),
        Some(other_revoked)
    );
    assert_eq!(
        store.readmit_trust_entry(&e.thumbprint).await.unwrap(),
        Readmission::NotRevoked
    );
    assert_eq!(
        store.trust_entry(&e.thumbprint).await.unwrap(),
        Some(e.clone())
    );
    let mut again = e.clone();
    again.created_at = at(60);
    assert_eq!(
        store.upsert_trust_entry(again).await.unwrap(),
        Upserted::Unchanged
    );
    store.revoke_trust_entry(&e.thumbprint).await.unwrap();
    assert_eq!(
        store.upsert_trust_entry(e.clone()).await.unwrap(),
        Upserted::KeptRevoked,
        "revoked again after a re-admission"
    );
}

/// Re-admitting an unknown thumbprint is `NotFound` and creates nothing.
pub async fn trust_readmit_unknown_is_not_found(store: Arc<DynInspectableStore>) {
    let tp = Thumbprint::from_digest(&[8; 32]);
    let r = store.readmit_trust_entry(&tp).await;
    assert!(matches!(r, Err(StoreError::NotFound { .. })), "got {r:?}");
    assert!(store.list_trust_entries().await.unwrap().is_empty());
}

/// Upserts racing a revocation (several instances re-importing at start while the operator
/// revokes): every upsert that starts after the revocation returned is `KeptRevoked`, and the
/// entry ends revoked.
pub async fn trust_concurrent_reimports_never_undo_a_revocation(store: Arc<DynInspectableStore>) {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let e = entry(9, "DE", CertificateType::Signing);
    inserted(&store, e.clone()).await;
    let revoked = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for t in 0..8u8 {
        let (store, revoked, done, base) =
            (store.clone(), revoked.clone(), done.clone(), e.clone());
        tasks.push(tokio::spawn(async move {
            // Upserts before the revocation, then at least five that start after it.
            let mut after = 0;
            for i in 0..10_000u32 {
                // Alternate between two signatures, so that an upsert of an active entry
                // writes.
                let mut new = base.clone();
                new.signature = format!("c2lnbmF0dXJl{}", (u32::from(t) + i) % 2);
                new.created_at = at(i64::from(i));
                let after_revoke = revoked.load(Ordering::SeqCst);
                let out = store.upsert_trust_entry(new).await.unwrap();
                done.fetch_add(1, Ordering::SeqCst);
                if after_revoke {
                    assert_eq!(out, Upserted::KeptRevoked, "task {t}, upsert {i}");
                    after += 1;
                    if after == 5 {
                        return;
                    }
                } else {
                    assert!(
                        matches!(
                            out,
                            Upserted::Replaced | Upserted::Unchanged | Upserted::KeptRevoked
                        ),
                        "task {t}, upsert {i}: {out:?}"
                    );
                }
                tokio::task::yield_now().await;
            }
            panic!("task {t}: the revocation never came");
        }));
    }
    while done.load(Ordering::SeqCst) < 24 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    store.revoke_trust_entry(&e.thumbprint).await.unwrap();
    revoked.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    let stored = store.trust_entry(&e.thumbprint).await.unwrap().unwrap();
    assert!(
        stored.revoked,
        "a concurrent re-import undid the revocation"
    );
    assert_eq!(
        (stored.country.as_str(), stored.cert_type),
        ("DE", CertificateType::Signing)
    );
}

/// The list holds revoked entries too, ordered by country, type name, thumbprint.
pub async fn trust_list_is_ordered_and_includes_revoked(store: Arc<DynInspectableStore>) {
    let entries = [
        entry(0x30, "FR", CertificateType::Signing),
        entry(0x21, "DE", CertificateType::Signing),
        entry(0x40, "DE", CertificateType::Callback),
        entry(0x12, "DE", CertificateType::Authentication),
        entry(0x0a, "DE", CertificateType::Authentication),
        entry(0x01, "IT", CertificateType::Authentication),
    ];
    for e in &entries {
        inserted(&store, e.clone()).await;
    }
    store
        .revoke_trust_entry(&entries[1].thumbprint)
        .await
        .unwrap();
    let list = store.list_trust_entries().await.unwrap();
    let got: Vec<(String, &str, String, bool)> = list
        .iter()
        .map(|e| {
            (
                e.country.clone(),
                e.cert_type.as_str(),
                e.thumbprint.to_string(),
                e.revoked,
            )
        })
        .collect();
    let tp = |n: u8| Thumbprint::from_digest(&[n; 32]).to_string();
    assert_eq!(
        got,
        vec![
            ("DE".to_owned(), "AUTHENTICATION", tp(0x0a), false),
            ("DE".to_owned(), "AUTHENTICATION", tp(0x12), false),
            ("DE".to_owned(), "CALLBACK", tp(0x40), false),
            ("DE".to_owned(), "SIGNING", tp(0x21), true),
            ("FR".to_owned(), "SIGNING", tp(0x30), false),
            ("IT".to_owned(), "AUTHENTICATION", tp(0x01), false),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Uploads
// ---------------------------------------------------------------------------------------------

/// Stored keys come back in one batch, exactly; the uploader's own country gets none.
pub async fn upload_then_download_roundtrip(store: Arc<DynInspectableStore>) {
    let keys = KeyGen::new(1).keys("DE", 3);
    stored(&store, generate::upload("DE", "de-1", keys.clone(), BASE)).await;
    let b = next_batch(&store, at(10), 5000).await;
    assert_eq!(keys_of(&store, &b.batch.tag, None).await, keys);
    assert_eq!(keys_of(&store, &b.batch.tag, Some("FR")).await, keys);
    assert!(keys_of(&store, &b.batch.tag, Some("DE")).await.is_empty());
}

/// The receipt and `upload_info` report what was stored; info is per (country, tag).
pub async fn upload_receipt_and_info_describe_the_upload(store: Arc<DynInspectableStore>) {
    let keys = KeyGen::new(2).keys("NL", 4);
    let mut up = generate::upload("NL", "nl-tag", keys, at(5));
    up.format = FormatVersion { major: 1, minor: 1 };
    let digest = up.content_digest;
    let r = stored(&store, up).await;
    assert_eq!(
        r,
        UploadReceipt {
            country: "NL".to_owned(),
            batch_tag: "nl-tag".to_owned(),
            number_of_keys: 4,
            created_at: at(5),
        }
    );
    let info = store
        .upload_info("NL", "nl-tag")
        .await
        .unwrap()
        .expect("upload info");
    assert_eq!(info.country, "NL");
    assert_eq!(info.batch_tag, "nl-tag");
    assert_eq!(info.number_of_keys, 4);
    assert_eq!(info.format, FormatVersion { major: 1, minor: 1 });
    assert_eq!(info.created_at, at(5));
    assert_eq!(info.content_digest, digest);
    assert_eq!(info.download_batch, None);
    assert_eq!(store.upload_info("DE", "nl-tag").await.unwrap(), None);
    assert_eq!(store.upload_info("NL", "other").await.unwrap(), None);
    let b = next_batch(&store, at(10), 5000).await;
    let info = store
        .upload_info("NL", "nl-tag")
        .await
        .unwrap()
        .expect("upload info");
    assert_eq!(info.download_batch, Some(b.batch.tag));
}

/// Re-sending a byte-identical upload is `Replayed` with the first receipt and stores nothing.
pub async fn upload_identical_replay_is_idempotent(store: Arc<DynInspectableStore>) {
    let keys = KeyGen::new(3).keys("FI", 5);
    let first = stored(&store, generate::upload("FI", "fi-17", keys.clone(), at(1))).await;
    // A replay arrives later: its timestamp differs, its content does not.
    let again = store
        .insert_upload(generate::upload("FI", "fi-17", keys, at(100)))
        .await
        .unwrap();
    assert_eq!(again, UploadOutcome::Replayed(first.clone()));
    assert_eq!(
        counts(&store).await,
        KeyCounts {
            stored: 5,
            pending: 5
        }
    );
    assert_eq!(store.upload_stats(MIN_TIME).await.unwrap().len(), 1);
    let b = next_batch(&store, at(200), 5000).await;
    assert_eq!(b.batch.number_of_keys, 5);
}

/// A different payload under a used tag of the same country is `BatchTagExists`, storing
/// nothing.
pub async fn upload_same_tag_different_content_is_batch_tag_exists(
    store: Arc<DynInspectableStore>,
) {
    let mut g = KeyGen::new(4);
    stored(
        &store,
        generate::upload("IT", "20201105-3", g.keys("IT", 2), BASE),
    )
    .await;
    let before = snapshot(&store).await;
    let r = store
        .insert_upload(generate::upload("IT", "20201105-3", g.keys("IT", 3), at(1)))
        .await;
    match r {
        Ok(UploadOutcome::BatchTagExists { country, batch_tag }) => {
            assert_eq!((country.as_str(), batch_tag.as_str()), ("IT", "20201105-3"));
        }
        other => panic!("expected BatchTagExists, got {other:?}"),
    }
    assert_eq!(snapshot(&store).await, before);
}

/// Two countries may use the same tag.
pub async fn upload_tags_are_scoped_per_country(store: Arc<DynInspectableStore>) {
    let mut g = KeyGen::new(5);
    stored(
        &store,
        generate::upload("IE", "1234", g.keys("IE", 2), BASE),
    )
    .await;
    stored(
        &store,
        generate::upload("MT", "1234", g.keys("MT", 3), BASE),
    )
    .await;
    assert_eq!(counts(&store).await.stored, 5);
    assert_eq!(
        store
            .upload_info("IE", "1234")
            .await
            .unwrap()
            .map(|i| i.number_of_keys),
        Some(2)
    );
    assert_eq!(
        store
            .upload_info("MT", "1234")
            .await
            .unwrap()
            .map(|i| i.number_of_keys),
        Some(3)
    );
}

/// The reference case: `[k1]` stored, then `[k1, k2]` gives 201 = `[1]`, 409 = `[0]`, and still one
/// key stored; the rejected tag can then be used.
pub async fn upload_duplicate_of_stored_key_rejects_whole_upload(store: Arc<DynInspectableStore>) {
    let mut g = KeyGen::new(6);
    let k1 = g.key("DE");
    let k2 = g.key("DE");
    stored(&store, generate::upload("DE", "a", vec![k1.clone()], BASE)).await;
    let c = conflicts(
        &store,
        generate::upload("DE", "b", vec![k1, k2.clone()], at(1)),
    )
    .await;
    assert_eq!(
        c,
        KeyConflicts {
            ok: vec![1],
            conflict: vec![0],
            failed: vec![]
        }
    );
    assert_eq!(counts(&store).await.stored, 1);
    assert_eq!(store.upload_info("DE", "b").await.unwrap(), None);
    stored(&store, generate::upload("DE", "b", vec![k2], at(2))).await;
    assert_eq!(counts(&store).await.stored, 2);
}

/// A key repeated inside one upload: the later occurrence is the conflict.
pub async fn upload_repeated_key_within_upload_reports_later_index(
    store: Arc<DynInspectableStore>,
) {
    let mut g = KeyGen::new(7);
    let (k1, k2, k3) = (g.key("ES"), g.key("ES"), g.key("ES"));
    let up = generate::upload(
        "ES",
        "es",
        vec![k1.clone(), k2.clone(), k1.clone(), k3, k2],
        BASE,
    );
    let c = conflicts(&store, up).await;
    assert_eq!(
        c,
        KeyConflicts {
            ok: vec![0, 1, 3],
            conflict: vec![2, 4],
            failed: vec![]
        }
    );
    assert_eq!(counts(&store).await, KeyCounts::default());
    // None of the keys was kept: each can be stored now.
    stored(&store, generate::upload("ES", "es", vec![k1], at(1))).await;
}

/// With many duplicates spread over a large upload, every index is in exactly one list.
pub async fn upload_conflict_lists_cover_every_index(store: Arc<DynInspectableStore>) {
    let mut g = KeyGen::new(8);
    let old = g.keys("DK", 100);
    stored(&store, generate::upload("DK", "old", old.clone(), BASE)).await;
    let mut keys = Vec::new();
    let mut expected_conflict = Vec::new();
    let mut fresh_seen: Vec<DiagnosisKey> = Vec::new();
    for i in 0..600usize {
        if i % 3 == 0 {
            keys.push(old[i % 100].clone());
            expected_conflict.push(i);
        } else if i % 7 == 0 && !fresh_seen.is_empty() {
            keys.push(fresh_seen[i % fresh_seen.len()].clone());
            expected_conflict.push(i);
        } else {
            let k = g.key("DK");
            fresh_seen.push(k.clone());
            keys.push(k);
        }
    }
    let c = conflicts(&store, generate::upload("DK", "new", keys, at(1))).await;
    assert_eq!(c.len(), 600);
    assert!(c.failed.is_empty());
    assert_eq!(c.conflict, expected_conflict);
    let expected_ok: Vec<usize> = (0..600)
        .filter(|i| !expected_conflict.contains(i))
        .collect();
    assert_eq!(c.ok, expected_ok);
    assert_eq!(counts(&store).await.stored, 100);
}

/// An upload that fails at its last key leaves nothing: no keys, no hashes, no record, no
/// statistics row, nothing pending, and the same tag works afterwards.
pub async fn upload_failing_half_way_leaves_no_trace(store: Arc<DynInspectableStore>) {
    let mut g = KeyGen::new(9);
    let a = g.keys("DE", 10);
    stored(&store, generate::upload("DE", "a", a.clone(), BASE)).await;
    let before = snapshot(&store).await;
    let mut b = g.keys("DE", 2000);
    b.push(a[9].clone());
    let c = conflicts(&store, generate::upload("DE", "b", b.clone(), at(1))).await;
    assert_eq!(c.conflict, vec![2000]);
    assert_eq!(c.ok.len(), 2000);
    assert_eq!(snapshot(&store).await, before);
    assert_eq!(store.upload_info("DE", "b").await.unwrap(), None);
    b.pop();
    stored(&store, generate::upload("DE", "b", b.clone(), at(2))).await;
    let batch = next_batch(&store, at(3), 5000).await;
    let mut expected = a;
    expected.extend(b);
    assert_eq!(keys_of(&store, &batch.batch.tag, None).await, expected);
}

/// The tag rule is checked before the duplicate rule: a used tag with other content is
/// `BatchTagExists` even when its keys are duplicates; identical content is `Replayed`.
pub async fn upload_tag_check_precedes_duplicate_check(store: Arc<DynInspectableStore>) {
    let mut g = KeyGen::new(10);
    let (k1, k2, k3) = (g.key("CZ"), g.key("CZ"), g.key("CZ"));
    let first = stored(
        &store,
        generate::upload("CZ", "t", vec![k1.clone(), k2.clone()], BASE),
    )
    .await;
    let r = store
        .insert_upload(generate::upload("CZ", "t", vec![k1.clone(), k3], at(1)))
        .await;
    assert!(
        matches!(r, Ok(UploadOutcome::BatchTagExists { .. })),
        "got {r:?}"
    );
    let r = store
        .insert_upload(generate::upload("CZ", "t", vec![k1, k2], at(2)))
        .await
        .unwrap();
    assert_eq!(r, UploadOutcome::Replayed(first));
}

/// A replay after the upload was batched is still `Replayed` and makes nothing pending.
pub async fn upload_replay_after_batching_is_still_replayed(store: Arc<DynInspectableStore>) {
    let keys = KeyGen::new(11).keys("NL", 3);
    let first = stored(&store, generate::upload("NL", "nl", keys.clone(), BASE)).await;
    next_batch(&store, at(1), 5000).await;
    let r = store
        .insert_upload(generate::upload("NL", "nl", keys, at(2)))
        .await
        .unwrap();
    assert_eq!(r, UploadOutcome::Replayed(first));
    assert_eq!(
        store.pending_summary().await.unwrap(),
        PendingSummary::default()
    );
    assert_eq!(store.create_next_batch(at(3), 5000).await.unwrap(), None);
}

/// An empty upload takes its tag and writes a statistics row, but is never pending and
/// never part of a batch or an audit.
pub async fn upload_empty_is_recorded_but_never_pending(store: Arc<DynInspectableStore>) {
    let r = stored(&store, generate::upload("IE", "empty", Vec::new(), BASE)).await;
    assert_eq!(r.number_of_keys, 0);
    let again = store
        .insert_upload(generate::upload("IE", "empty", Vec::new(), at(1)))
        .await;
    assert_eq!(again.unwrap(), UploadOutcome::Replayed(r));
    let other = generate::upload("IE", "empty", KeyGen::new(12).keys("IE", 1), at(2));
    let res = store.insert_upload(other).await;
    assert!(
        matches!(res, Ok(UploadOutcome::BatchTagExists { .. })),
        "got {res:?}"
    );
    assert_eq!(
        store.pending_summary().await.unwrap(),
        PendingSummary::default()
    );
    assert_eq!(store.create_next_batch(at(3), 5000).await.unwrap(), None);
    let stats = store.upload_stats(MIN_TIME).await.unwrap();
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].number_of_keys, 0);
    let info = store
        .upload_info("IE", "empty")
        .await
        .unwrap()
        .expect("info");
    assert_eq!((info.number_of_keys, info.download_batch), (0, None));

    stored(
        &store,
        generate::upload("IE", "full", KeyGen::new(13).keys("IE", 2), at(4)),
    )
    .await;
    let b = next_batch(&store, at(5), 5000).await;
    assert_eq!(b.uploads, 1);
    let groups = store.audit_groups(&b.batch.tag).await.unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].batch_tag, "full");
    let info = store
        .upload_info("IE", "empty")
        .await
        .unwrap()
        .expect("info");
    assert_eq!(info.download_batch, None);
}

/// Keys come back exactly as uploaded, including extreme numbers, unknown report types,
/// empty and odd visited-country strings (commas, NUL, empty elements) and empty origin.
pub async fn upload_keys_roundtrip_exactly(store: Arc<DynInspectableStore>) {
    let mut g = KeyGen::new(14);
    let mut keys = Vec::new();
    let mut k = g.key("CH");
    k.rolling_start_interval_number = u32::MAX;
    k.rolling_period = u32::MAX;
    k.transmission_risk_level = i32::MAX;
    k.days_since_onset_of_symptoms = i32::MIN;
    k.report_type = 7;
    k.visited_countries = vec![].into();
    keys.push(k);
    let mut k = g.key("CH");
    k.rolling_start_interval_number = 0;
    k.rolling_period = 0;
    k.transmission_risk_level = i32::MIN;
    k.days_since_onset_of_symptoms = i32::MAX;
    k.report_type = -1;
    k.visited_countries = vec!["".into()].into();
    keys.push(k);
    let mut k = g.key("CH");
    k.visited_countries = vec!["A,B".into(), "".into(), "x\0y".into(), ",".into()].into();
    k.origin = "".into();
    k.key_data = vec![0; 16].into();
    keys.push(k);
    let mut k = g.key("CH");
    k.visited_countries = (0..300).map(|i| format!("C{i:03}").into()).collect();
    k.key_data = vec![0xff; 16].into();
    k.report_type = 5;
    keys.push(k);
    stored(&store, generate::upload("CH", "odd", keys.clone(), BASE)).await;
    let b = next_batch(&store, at(1), 5000).await;
    assert_eq!(keys_of(&store, &b.batch.tag, None).await, keys);
}

/// Timestamps are truncated to whole microseconds and come back in UTC, wherever they are
/// stored.
pub async fn timestamps_are_kept_to_the_microsecond(store: Arc<DynInspectableStore>) {
    let local = UtcOffset::from_hms(2, 0, 0).unwrap_or(UtcOffset::UTC);
    let t_up = (BASE + Duration::nanoseconds(123_456_789)).to_offset(local);
    let want_up = BASE + Duration::microseconds(123_456);
    let r = stored(
        &store,
        generate::upload("DE", "ts", KeyGen::new(15).keys("DE", 1), t_up),
    )
    .await;
    assert_eq!(r.created_at, want_up);
    assert_eq!(r.created_at.offset(), UtcOffset::UTC);
    let info = store.upload_info("DE", "ts").await.unwrap().expect("info");
    assert_eq!(info.created_at, want_up);
    assert_eq!(
        store.upload_stats(MIN_TIME).await.unwrap()[0].created_at,
        want_up
    );
    let pending = store.pending_summary().await.unwrap();
    assert_eq!(pending.oldest, Some(want_up));

    let t_batch = at(10) + Duration::nanoseconds(999_999_999);
    let b = next_batch(&store, t_batch, 5000).await;
    let want_batch = at(10) + Duration::microseconds(999_999);
    assert_eq!(b.batch.created_at, want_batch);
    assert_eq!(batch(&store, &b.batch.tag).await.created_at, want_batch);
    let groups = store.audit_groups(&b.batch.tag).await.unwrap();
    assert_eq!(groups[0].uploaded_at, want_up);
    // The stored instant itself is found; an instant 1 µs later is not.
    let found = store.first_batch_at_or_after(want_batch).await.unwrap();
    assert_eq!(found.map(|b| b.tag), Some(b.batch.tag));
    let later = store
        .first_batch_at_or_after(want_batch + Duration::microseconds(1))
        .await;
    assert_eq!(later.unwrap(), None);
}

/// Many uploads from several countries at once: all stored, none lost or duplicated, each
/// upload contiguous and in order in the batches.
pub async fn concurrent_uploads_from_several_countries_lose_nothing(
    store: Arc<DynInspectableStore>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    let mut expected: HashMap<(String, String), Vec<DiagnosisKey>> = HashMap::new();
    for (ci, country) in COUNTRIES.iter().enumerate() {
        for u in 0..25u64 {
            let keys = KeyGen::new(1000 + ci as u64 * 100 + u).keys(country, 20);
            let tag = format!("{country}-{u}");
            expected.insert((country.to_string(), tag.clone()), keys.clone());
            let s = store.clone();
            let up = generate::upload(country, &tag, keys, at(u as i64));
            tasks.spawn(async move { s.insert_upload(up).await });
        }
    }
    while let Some(r) = tasks.join_next().await {
        let r = r.expect("task panicked");
        assert!(matches!(r, Ok(UploadOutcome::Stored(_))), "got {r:?}");
    }
    assert_eq!(
        counts(&store).await,
        KeyCounts {
            stored: 4000,
            pending: 4000
        }
    );
    assert_eq!(store.upload_stats(MIN_TIME).await.unwrap().len(), 200);

    let batches = batch_all(&store, at(100), 1000).await;
    let mut seen = 0usize;
    for b in &batches {
        let keys = keys_of(&store, &b.batch.tag, None).await;
        assert_eq!(keys.len() as u64, b.batch.number_of_keys);
        let groups = store.audit_groups(&b.batch.tag).await.unwrap();
        let mut offset = 0usize;
        for g in groups {
            let want = expected
                .remove(&(g.country.clone(), g.batch_tag.clone()))
                .unwrap_or_else(|| panic!("upload {}/{} seen twice", g.country, g.batch_tag));
            let n = g.amount as usize;
            assert_eq!(
                &keys[offset..offset + n],
                &want[..],
                "upload not contiguous"
            );
            offset += n;
        }
        assert_eq!(offset, keys.len());
        seen += keys.len();
    }
    assert_eq!(seen, 4000);
    assert!(
        expected.is_empty(),
        "uploads never batched: {}",
        expected.len()
    );
}

/// The same upload sent 16 times at once is stored once; the rest are replays.
pub async fn concurrent_identical_uploads_store_once(store: Arc<DynInspectableStore>) {
    let keys = KeyGen::new(16).keys("NL", 50);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let s = store.clone();
        let up = generate::upload("NL", "same", keys.clone(), BASE);
        tasks.spawn(async move { s.insert_upload(up).await });
    }
    let (mut st, mut re) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        match r.expect("task panicked") {
            Ok(UploadOutcome::Stored(_)) => st += 1,
            Ok(UploadOutcome::Replayed(_)) => re += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((st, re), (1, 15));
    assert_eq!(counts(&store).await.stored, 50);
    assert_eq!(store.upload_stats(MIN_TIME).await.unwrap().len(), 1);
}

/// 16 different uploads under one (country, tag) at once: one wins, the others are
/// `BatchTagExists`, and only the winner's keys are stored.
pub async fn concurrent_uploads_same_tag_one_wins(store: Arc<DynInspectableStore>) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..16u64 {
        let s = store.clone();
        let up = generate::upload(
            "ES",
            "race",
            KeyGen::new(100 + i).keys("ES", 10 + i as usize),
            BASE,
        );
        tasks.spawn(async move { s.insert_upload(up).await });
    }
    let mut winners = Vec::new();
    let mut losers = 0;
    while let Some(r) = tasks.join_next().await {
        match r.expect("task panicked") {
            Ok(UploadOutcome::Stored(r)) => winners.push(r),
            Ok(UploadOutcome::BatchTagExists { .. }) => losers += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((winners.len(), losers), (1, 15));
    assert_eq!(counts(&store).await.stored, winners[0].number_of_keys);
}

/// 16 uploads with different tags sharing one key: exactly one is stored; each other one
/// reports the shared key (index 0) as the conflict.
pub async fn concurrent_uploads_sharing_a_key_store_at_most_one(store: Arc<DynInspectableStore>) {
    let shared = KeyGen::new(17).key("FR");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..16u64 {
        let s = store.clone();
        let keys = vec![shared.clone(), KeyGen::new(200 + i).key("FR")];
        let up = generate::upload("FR", &format!("fr-{i}"), keys, BASE);
        tasks.spawn(async move { s.insert_upload(up).await });
    }
    let (mut st, mut dup) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        match r.expect("task panicked") {
            Ok(UploadOutcome::Stored(_)) => st += 1,
            Ok(UploadOutcome::DuplicateKeys(c)) => {
                assert_eq!(
                    c,
                    KeyConflicts {
                        ok: vec![1],
                        conflict: vec![0],
                        failed: vec![]
                    }
                );
                dup += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((st, dup), (1, 15));
    assert_eq!(counts(&store).await.stored, 2);
}

// ---------------------------------------------------------------------------------------------
// Batching
// ---------------------------------------------------------------------------------------------

/// Nothing pending, no batch; also once everything is batched.
pub async fn batching_with_nothing_pending_creates_nothing(store: Arc<DynInspectableStore>) {
    assert_eq!(store.create_next_batch(BASE, 5000).await.unwrap(), None);
    assert_eq!(store.latest_batch().await.unwrap(), None);
    stored(
        &store,
        generate::upload("DE", "x", KeyGen::new(18).keys("DE", 2), BASE),
    )
    .await;
    next_batch(&store, at(1), 5000).await;
    assert_eq!(store.create_next_batch(at(2), 5000).await.unwrap(), None);
    assert_eq!(
        store.latest_batch().await.unwrap().map(|b| b.tag),
        Some(tag("20261128-1"))
    );
}

/// The first batch ever is `yyyyMMdd-1` with no link and no previous batch (§12 item 73).
pub async fn first_batch_gets_dash_one_without_link(store: Arc<DynInspectableStore>) {
    stored(
        &store,
        generate::upload("DE", "x", KeyGen::new(19).keys("DE", 3), BASE),
    )
    .await;
    let b = next_batch(&store, at(30), 5000).await;
    let info = BatchInfo {
        tag: tag("20261128-1"),
        created_at: at(30),
        link: None,
        number_of_keys: 3,
    };
    assert_eq!(
        b,
        CreatedBatch {
            batch: info.clone(),
            previous: None,
            uploads: 1
        }
    );
    assert_eq!(batch(&store, &info.tag).await, info);
    assert_eq!(store.latest_batch().await.unwrap(), Some(info));
    assert_eq!(
        counts(&store).await,
        KeyCounts {
            stored: 3,
            pending: 0
        }
    );
    assert_eq!(
        store.pending_summary().await.unwrap(),
        PendingSummary::default()
    );
}

/// A second batch the same UTC day is `-2`, and `-1` now links to it (§12 item 74).
pub async fn next_batch_same_day_links_previous(store: Arc<DynInspectableStore>) {
    let mut g = KeyGen::new(20);
    stored(&store, generate::upload("DE", "a", g.keys("DE", 1), BASE)).await;
    let b1 = next_batch(&store, at(1), 5000).await;
    stored(&store, generate::upload("DE", "b", g.keys("DE", 2), at(2))).await;
    let b2 = next_batch(&store, at(3), 5000).await;
    assert_eq!(b2.batch.tag, tag("20261128-2"));
    assert_eq!(b2.previous, Some(b1.batch.tag));
    assert_eq!(b2.batch.link, None);
    assert_eq!(batch(&store, &b1.batch.tag).await.link, Some(b2.batch.tag));
    assert_eq!(batch(&store, &b2.batch.tag).await.link, None);
    assert_eq!(
        store.latest_batch().await.unwrap().map(|b| b.tag),
        Some(b2.batch.tag)
    );
}

/// N restarts at 1 each UTC day (a non-UTC `now` counts by its UTC day) and the last batch
/// of a day links to the first of the next.
pub async fn tag_sequence_restarts_each_utc_day_and_links_across_days(
    store: Arc<DynInspectableStore>,
) {
    let mut g = KeyGen::new(21);
    let plus1 = UtcOffset::from_hms(1, 0, 0).unwrap_or(UtcOffset::UTC);
    let times = [
        datetime!(2026-11-28 23:58 UTC),
        // 23:59:30 UTC written at +01:00: still 28 November in UTC.
        datetime!(2026-11-29 00:59:30 +01:00),
        datetime!(2026-11-29 00:00:01 UTC),
        datetime!(2026-11-29 08:00 UTC).to_offset(plus1),
    ];
    let want = ["20261128-1", "20261128-2", "20261129-1", "20261129-2"];
    let mut tags = Vec::new();
    for (i, t) in times.iter().enumerate() {
        stored(
            &store,
            generate::upload("DE", &format!("d{i}"), g.keys("DE", 1), *t),
        )
        .await;
        let b = next_batch(&store, *t, 5000).await;
        assert_eq!(b.batch.created_at, t.to_offset(UtcOffset::UTC));
        tags.push(b.batch.tag);
    }
    let got: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
    assert_eq!(got, want);
    for w in tags.windows(2) {
        assert_eq!(batch(&store, &w[0]).await.link, Some(w[1]));
    }
}

/// Limit 9 and uploads of 5, 5, 5, 5, 3 keys give batches of 5, 5, 5, 8 (§12 item 75).
pub async fn batching_is_greedy_and_never_skips_ahead(store: Arc<DynInspectableStore>) {
    let mut g = KeyGen::new(22);
    for (i, n) in [5, 5, 5, 5, 3].into_iter().enumerate() {
        stored(
            &store,
            generate::upload("DE", &format!("u{i}"), g.keys("DE", n), at(i as i64)),
        )
        .await;
    }
    let batches = batch_all(&store, at(10), 9).await;
    let sizes: Vec<u64> = batches.iter().map(|b| b.batch.number_of_keys).collect();
    assert_eq!(sizes, vec![5, 5, 5, 8]);
    let tags: Vec<String> = batches.iter().map(|b| b.batch.tag.to_string()).collect();
    assert_eq!(
        tags,
        ["20261128-1", "20261128-2", "20261128-3", "20261128-4"]
    );
    let ups: Vec<u64> = batches.iter().map(|b| b.uploads).collect();
    assert_eq!(ups, vec![1, 1, 1, 2]);
}

/// Formats 1.0, 1.0, 1.1, 1.0 give three batches (§12 item 76).
pub async fn batching_never_mixes_formats(store: Arc<DynInspectableStore>) {
    let mut g = KeyGen::new(23);
    let formats = [(1, 0), (1, 0), (1, 1), (1, 0)];
    let countries = ["DE", "PL", "ES", "BG"];
    for (i, ((major, minor), c)) in formats.iter().zip(countries).enumerate() {
        let mut up = generate::upload(c, "t", g.keys(c, 2), at(i as i64));
        up.format = FormatVersion {
            major: *major,
            minor: *minor,
        };
        stored(&store, up).await;
    }
    let batches = batch_all(&store, at(10), 5000).await;
    let mut got = Vec::new();
    for b in &batches {
        let groups = store.audit_groups(&b.batch.tag).await.unwrap();
        got.push(groups.iter().map(|g| g.country.clone()).collect::<Vec<_>>());
    }
    assert_eq!(got, vec![vec!["DE", "PL"], vec!["ES"], vec!["BG"]]);
}

/// An upload larger than the batch limit is batched alone, whole.
pub async fn oversized_upload_forms_its_own_batch(store: Arc<DynInspectableStore>) {
    let mut g = KeyGen::new(24);
    stored(&store, generate::upload("DE", "big", g.keys("DE", 6), BASE)).await;
    stored(
        &store,
        generate::upload("DE", "small", g.keys("DE", 1), at(1)),
    )
    .await;
    let batches = batch_all(&store, at(2), 4).await;
    let sizes: Vec<u64> = batches.iter().map(|b| b.batch.number_of_keys).collect();
    assert_eq!(sizes, vec![6, 1]);
}

/// If `now` goes backwards (even across midnight), tags stay unique and dense and
/// `created_at` never decreases along the chain.
pub async fn clock_going_backwards_keeps_tags_unique_and_dense(store: Arc<DynInspectableStore>) {
    let mut g = KeyGen::new(25);
    let t1 = datetime!(2026-11-29 00:10 UTC);
    stored(&store, generate::upload("DE", "a", g.keys("DE", 1), BASE)).await;
    let b1 = next_batch(&store, t1, 5000).await;
    assert_eq!(b1.batch.tag, tag("20261129-1"));
    stored(&store, generate::upload("DE", "b", g.keys("DE", 1), BASE)).await;
    let b2 = next_batch(&store, datetime!(2026-11-28 23:50 UTC), 5000).await;
    assert_eq!(b2.batch.tag, tag("20261129-2"));
    assert!(b2.batch.created_at >= b1.batch.created_at);
    assert_eq!(b2.previous, Some(b1.batch.tag));
    stored(&store, generate::upload("DE", "c", g.keys("DE", 1), BASE)).await;
    let b3 = next_batch(&store, datetime!(2026-11-29 00:20 UTC), 5000).await;
    assert_eq!(b3.batch.tag, tag("20261129-3"));
    assert_eq!(b3.batch.created_at, datetime!(2026-11-29 00:20 UTC));
    assert_eq!(batch(&store, &b2.batch.tag).await.link, Some(b3.batch.tag));
}

/// The pending summary counts pending uploads and keys and gives the oldest timestamp.
pub async fn pending_summary_counts_pending_uploads(store: Arc<DynInspectableStore>) {
    assert_eq!(
        store.pending_summary().await.unwrap(),
        PendingSummary::default()
    );
    let mut g = KeyGen::new(26);
    stored(&store, generate::upload("DE", "a", g.keys("DE", 2), at(5))).await;
    stored(&store, generate::upload("FR", "b", g.keys("FR", 3), at(1))).await;
    stored(&store, generate::upload("IT", "c", g.keys("IT", 4), at(3))).await;
    let s = store.pending_summary().await.unwrap();
    assert_eq!(
        s,
        PendingSummary {
            uploads: 3,
            keys: 9,
            oldest: Some(at(1))
        }
    );
    assert_eq!(
        counts(&store).await,
        KeyCounts {
            stored: 9,
            pending: 9
        }
    );
    let b = next_batch(&store, at(10), 5).await;
    assert_eq!(b.batch.number_of_keys, 5);
    let s = store.pending_summary().await.unwrap();
    assert_eq!(
        s,
        PendingSummary {
            uploads: 1,
            keys: 4,
            oldest: Some(at(3))
        }
    );
    assert_eq!(
        counts(&store).await,
        KeyCounts {
            stored: 9,
            pending: 4
        }
    );
}

/// An unknown tag finds no batch, no keys, no audit groups.
pub async fn unknown_batch_tag_finds_nothing(store: Arc<DynInspectableStore>) {
    stored(
        &store,
        generate::upload("DE", "a", KeyGen::new(27).keys("DE", 2), BASE),
    )
    .await;
    next_batch(&store, at(1), 5000).await;
    let unknown = tag("20261128-2");
    assert_eq!(store.batch_by_tag(&unknown).await.unwrap(), None);
    assert!(keys_of(&store, &unknown, None).await.is_empty());
    assert!(store.audit_groups(&unknown).await.unwrap().is_empty());
    assert_eq!(store.batch_by_tag(&tag("20261127-1")).await.unwrap(), None);
}

/// The first batch at or after an instant: the instant itself counts; the batch may be from
/// a later day; none after the last.
pub async fn first_batch_at_or_after_includes_the_instant_and_later_days(
    store: Arc<DynInspectableStore>,
) {
    let mut g = KeyGen::new(28);
    let d1_10 = datetime!(2026-11-28 10:00 UTC);
    let d1_12 = datetime!(2026-11-28 12:00 UTC);
    let d3_09 = datetime!(2026-11-30 09:00 UTC);
    for (i, t) in [d1_10, d1_12, d3_09].into_iter().enumerate() {
        stored(
            &store,
            generate::upload("DE", &format!("u{i}"), g.keys("DE", 1), t),
        )
        .await;
        next_batch(&store, t, 5000).await;
    }
    let find = |t: OffsetDateTime| {
        let s = store.clone();
        async move {
            s.first_batch_at_or_after(t)
                .await
                .unwrap()
                .map(|b| b.tag.to_string())
        }
    };
    assert_eq!(
        find(datetime!(2026-11-28 00:00 UTC)).await.as_deref(),
        Some("20261128-1")
    );
    assert_eq!(find(d1_10).await.as_deref(), Some("20261128-1"));
    assert_eq!(find(d1_12).await.as_deref(), Some("20261128-2"));
    let just_after = d1_12 + Duration::microseconds(1);
    assert_eq!(find(just_after).await.as_deref(), Some("20261130-1"));
    assert_eq!(
        find(datetime!(2026-11-29 00:00 UTC)).await.as_deref(),
        Some("20261130-1")
    );
    assert_eq!(find(d3_09 + Duration::microseconds(1)).await, None);
    assert_eq!(
        find(datetime!(2000-01-01 00:00 UTC)).await.as_deref(),
        Some("20261128-1")
    );
}

/// 4 batchers racing over 10,000 pending uploads: tags dense and unique, one chain, every
/// key in exactly one batch, no upload split, every batch within the limit.
pub async fn concurrent_batchers_claim_every_upload_once(store: Arc<DynInspectableStore>) {
    const UPLOADS: u64 = 10_000;
    const MAX_KEYS: usize = 400;
    // Upload concurrently from 8 writers (small uploads of 1 to 3 keys).
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..8u64 {
        let s = store.clone();
        writers.spawn(async move {
            let mut expected = Vec::new();
            let mut g = KeyGen::new(50_000 + w);
            for i in (w..UPLOADS).step_by(8) {
                let country = COUNTRIES[(i % 8) as usize];
                let keys = g.keys(country, 1 + (i % 3) as usize);
                let tag = format!("b-{i}");
                expected.push(((country.to_owned(), tag.clone()), keys.clone()));
                stored(
                    &s,
                    generate::upload(country, &tag, keys, at((i / 100) as i64)),
                )
                .await;
            }
            expected
        });
    }
    let mut expected: HashMap<(String, String), Vec<DiagnosisKey>> = HashMap::new();
    while let Some(r) = writers.join_next().await {
        expected.extend(r.expect("writer panicked"));
    }
    let total_keys: u64 = expected.values().map(|k| k.len() as u64).sum();
    assert_eq!(
        counts(&store).await,
        KeyCounts {
            stored: total_keys,
            pending: total_keys
        }
    );

    let now = datetime!(2026-11-28 12:00 UTC);
    let mut batchers = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let s = store.clone();
        batchers.spawn(async move {
            let mut made = Vec::new();
            while let Some(b) = s.create_next_batch(now, MAX_KEYS).await.unwrap() {
                made.push(b);
            }
            made
        });
    }
    let mut made: Vec<CreatedBatch> = Vec::new();
    while let Some(r) = batchers.join_next().await {
        made.extend(r.expect("batcher panicked"));
    }
    assert_eq!(
        store.pending_summary().await.unwrap(),
        PendingSummary::default()
    );

    // Dense, unique tags of one day.
    let mut seqs: Vec<u32> = made.iter().map(|b| b.batch.tag.seq).collect();
    seqs.sort_unstable();
    let n = made.len() as u32;
    assert_eq!(
        seqs,
        (1..=n).collect::<Vec<_>>(),
        "tags not dense and unique"
    );
    assert!(made.iter().all(|b| b.batch.tag.date == now.date()));
    // One chain from -1 to -n.
    let mut cur = store
        .first_batch_at_or_after(MIN_TIME)
        .await
        .unwrap()
        .expect("a batch");
    let mut chain = vec![cur.tag];
    while let Some(next) = cur.link {
        cur = batch(&store, &next).await;
        chain.push(cur.tag);
        assert!(chain.len() <= n as usize, "chain loops");
    }
    let want: Vec<BatchTag> = (1..=n)
        .map(|seq| BatchTag {
            date: now.date(),
            seq,
        })
        .collect();
    assert_eq!(chain, want);
    assert_eq!(
        store.latest_batch().await.unwrap().map(|b| b.tag),
        want.last().copied()
    );
    // `previous` of each created batch is the one before it in the chain.
    let prev: BTreeMap<u32, Option<BatchTag>> =
        made.iter().map(|b| (b.batch.tag.seq, b.previous)).collect();
    for (seq, p) in prev {
        let expect = (seq > 1).then(|| BatchTag {
            date: now.date(),
            seq: seq - 1,
        });
        assert_eq!(p, expect);
    }
    // Every key in exactly one batch; uploads whole and contiguous.
    let mut seen_keys: HashSet<Vec<u8>> = HashSet::new();
    let mut sum = 0u64;
    for t in &chain {
        let info = batch(&store, t).await;
        assert!(info.number_of_keys as usize <= MAX_KEYS);
        sum += info.number_of_keys;
        let keys = keys_of(&store, t, None).await;
        assert_eq!(keys.len() as u64, info.number_of_keys);
        for k in &keys {
            assert!(seen_keys.insert(k.key_data.to_vec()), "key in two batches");
        }
        let mut offset = 0;
        for g in store.audit_groups(t).await.unwrap() {
            let want = expected
                .remove(&(g.country.clone(), g.batch_tag.clone()))
                .unwrap_or_else(|| panic!("upload {}/{} in two batches", g.country, g.batch_tag));
            let len = want.len();
            assert_eq!(g.amount as usize, len, "upload split");
            assert_eq!(&keys[offset..offset + len], &want[..]);
            offset += len;
        }
        assert_eq!(offset, keys.len());
    }
    assert_eq!(sum, total_keys);
    assert!(
        expected.is_empty(),
        "{} uploads never batched",
        expected.len()
    );
}

// ---------------------------------------------------------------------------------------------
// Keys and audit
// ---------------------------------------------------------------------------------------------

/// Keys come in upload order, then in the order given within each upload.
pub async fn batch_keys_follow_upload_then_key_order(store: Arc<DynInspectableStore>) {
    let mut g = KeyGen::new(30);
    let a = g.keys("DE", 3);
    let b = g.keys("FR", 2);
    let c = g.keys("DE", 2);
    stored(&store, generate::upload("DE", "a", a.clone(), at(3))).await;
    stored(&store, generate::upload("FR", "b", b.clone(), at(1))).await;
    stored(&store, generate::upload("DE", "c", c.clone(), at(2))).await;
    let t = next_batch(&store, at(10), 5000).await.batch.tag;
    let all: Vec<DiagnosisKey> = [a.clone(), b.clone(), c.clone()].concat();
    assert_eq!(keys_of(&store, &t, None).await, all);
    assert_eq!(keys_of(&store, &t, Some("DE")).await, b);
    assert_eq!(keys_of(&store, &t, Some("FR")).await, [a, c].concat());
}

/// The own-country filter is on the uploader's country, not on the keys' origin.
pub async fn own_country_exclusion_is_by_uploader_not_origin(store: Arc<DynInspectableStore>) {
    let mut g = KeyGen::new(31);
    let foreign_origin = g.keys("FR", 2); // uploaded by DE, origin FR
    let fr = g.keys("FR", 1);
    stored(
        &store,
        generate::upload("DE", "a", foreign_origin.clone(), BASE),
    )
    .await;
    stored(&store, generate::upload("FR", "b", fr.clone(), BASE)).await;
    let t = next_batch(&store, at(1), 5000).await.batch.tag;
    assert_eq!(keys_of(&store, &t, Some("DE")).await, fr);
    assert_eq!(keys_of(&store, &t, Some("FR")).await, foreign_origin);
    assert_eq!(keys_of(&store, &t, Some("XX")).await.len(), 3);
}

/// A batch's keys are only its own.
pub async fn batch_keys_hold_only_that_batch(store: Arc<DynInspectableStore>) {
    let mut g = KeyGen::new(32);
    let a = g.keys("DE", 4);
    let b = g.keys("DE", 4);
    stored(&store, generate::upload("DE", "a", a.clone(), BASE)).await;
    let t1 = next_batch(&store, at(1), 5000).await.batch.tag;
    stored(&store, generate::upload("DE", "b", b.clone(), at(2))).await;
    let t2 = next_batch(&store, at(3), 5000).await.batch.tag;
    assert_eq!(keys_of(&store, &t1, None).await, a);
    assert_eq!(keys_of(&store, &t2, None).await, b);
    // A batch of the caller's own uploads only is empty for the caller.
    assert!(keys_of(&store, &t1, Some("DE")).await.is_empty());
}

/// One audit group per upload, in upload order, with every field as uploaded.
pub async fn audit_groups_describe_each_upload_in_order(store: Arc<DynInspectableStore>) {
    let mut g = KeyGen::new(33);
    let ups = [
        generate::upload("DE", "de-a", g.keys("DE", 3), at(3)),
        generate::upload("FR", "fr-b", g.keys("FR", 2), at(1)),
        generate::upload("DE", "de-c", g.keys("DE", 1), at(2)),
    ];
    for u in &ups {
        stored(&store, u.clone()).await;
    }
    let t = next_batch(&store, at(10), 5000).await.batch.tag;
    let groups = store.audit_groups(&t).await.unwrap();
    assert_eq!(groups.len(), 3);
    for (g, u) in groups.iter().zip(&ups) {
        assert_eq!(g.country, u.country);
        assert_eq!(g.batch_tag, u.batch_tag);
        assert_eq!(g.uploaded_at, u.created_at);
        assert_eq!(g.uploader_thumbprint, u.uploader_thumbprint);
        assert_eq!(g.signing_thumbprint, u.signing_thumbprint);
        assert_eq!(g.batch_signature, u.batch_signature);
        assert_eq!(g.amount, u.keys.len() as u64);
    }
}

/// Two countries using the same tag in one batch are two uploads, so two groups (decisions
/// item 3); every country's uploads are listed (the auditor's own too), and the groups'
/// amounts, in order, slice the batch's keys (`batch_keys` without exclusion) into exactly
/// each upload's keys: what clients re-verifying upload signatures rely on.
pub async fn audit_groups_slice_the_batch_keys_per_upload(store: Arc<DynInspectableStore>) {
    let mut g = KeyGen::new(36);
    let ups = [
        generate::upload("IE", "1234", g.keys("IE", 2), at(1)),
        generate::upload("MT", "1234", g.keys("MT", 1), at(2)),
        generate::upload("ES", "a", g.keys("ES", 3), at(3)),
        generate::upload("IE", "5678", g.keys("IE", 1), at(4)),
    ];
    for u in &ups {
        stored(&store, u.clone()).await;
    }
    let t = next_batch(&store, at(10), 5000).await.batch.tag;
    let groups = store.audit_groups(&t).await.unwrap();
    let ids: Vec<(&str, &str, u64)> = groups
        .iter()
        .map(|g| (g.country.as_str(), g.batch_tag.as_str(), g.amount))
        .collect();
    assert_eq!(
        ids,
        [
            ("IE", "1234", 2),
            ("MT", "1234", 1),
            ("ES", "a", 3),
            ("IE", "5678", 1)
        ]
    );
    let all = keys_of(&store, &t, None).await;
    let mut pos = 0usize;
    for (group, upload) in groups.iter().zip(&ups) {
        let n = usize::try_from(group.amount).unwrap();
        let want: Vec<DiagnosisKey> = upload.keys.iter().map(|k| k.key.clone()).collect();
        assert_eq!(all[pos..pos + n], want[..], "slice of {}", group.batch_tag);
        pos += n;
    }
    assert_eq!(pos, all.len(), "the amounts cover the batch");
}

/// Uploads deleted by retention leave the audit; a batch with no keys left has no groups.
pub async fn audit_groups_skip_deleted_uploads(store: Arc<DynInspectableStore>) {
    let mut g = KeyGen::new(34);
    stored(
        &store,
        generate::upload("DE", "old", g.keys("DE", 2), at(-3600)),
    )
    .await;
    stored(
        &store,
        generate::upload("FR", "new", g.keys("FR", 3), at(0)),
    )
    .await;
    let t = next_batch(&store, at(10), 5000).await.batch.tag;
    store.delete_keys_before(at(-1), at(20)).await.unwrap();
    let groups = store.audit_groups(&t).await.unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!((groups[0].batch_tag.as_str(), groups[0].amount), ("new", 3));
    store.delete_keys_before(at(1), at(30)).await.unwrap();
    assert!(store.audit_groups(&t).await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------------------------

/// Upload rows are written for stored uploads only (not replays, not rejected ones), in
/// order, and filtered by `since`.
pub async fn upload_stats_are_written_only_for_stored_uploads(store: Arc<DynInspectableStore>) {
    let mut g = KeyGen::new(35);
    let k = g.keys("DE", 2);
    stored(&store, generate::upload("DE", "a", k.clone(), at(1))).await;
    let _ = store
        .insert_upload(generate::upload("DE", "a", k.clone(), at(2)))
        .await
        .unwrap();
    let _ = store
        .insert_upload(generate::upload("DE", "a", g.keys("DE", 1), at(3)))
        .await;
    let _ = store
        .insert_upload(generate::upload("DE", "b", k, at(4)))
        .await;
    stored(&store, generate::upload("FR", "c", g.keys("FR", 5), at(5))).await;
    let rows = store.upload_stats(MIN_TIME).await.unwrap();
    let row = |c: &str, t: &str, n: u64, s: i64| UploadStat {
        country: c.to_owned(),
        batch_tag: t.to_owned(),
        number_of_keys: n,
        created_at: at(s),
    };
    assert_eq!(rows, vec![row("DE", "a", 2, 1), row("FR", "c", 5, 5)]);
    assert_eq!(
        store.upload_stats(at(2)).await.unwrap(),
        vec![row("FR", "c", 5, 5)]
    );
    assert_eq!(store.upload_stats(at(5)).await.unwrap().len(), 1);
    assert!(store.upload_stats(at(6)).await.unwrap().is_empty());
}

/// Download rows come back as recorded, in order, filtered by `since`.
pub async fn download_stats_roundtrip_with_since_filter(store: Arc<DynInspectableStore>) {
    let rows: Vec<DownloadStat> = (0..5)
        .map(|i| DownloadStat {
            country: COUNTRIES[i as usize].to_owned(),
            batch_tag: BatchTag {
                date: BASE.date(),
                seq: 1 + i as u32,
            },
            number_of_keys: 10 * i as u64,
            requested_at: at(i * 60),
        })
        .collect();
    for r in &rows {
        store.record_download(r.clone()).await.unwrap();
    }
    assert_eq!(store.download_stats(MIN_TIME).await.unwrap(), rows);
    assert_eq!(
        store.download_stats(at(120)).await.unwrap(),
        rows[2..].to_vec()
    );
    assert!(store.download_stats(at(241)).await.unwrap().is_empty());
}

/// Each retention run writes one cleanup row equal to its report.
pub async fn cleanup_stats_are_written_per_run(store: Arc<DynInspectableStore>) {
    let mut g = KeyGen::new(36);
    stored(
        &store,
        generate::upload("DE", "a", g.keys("DE", 5), at(-100)),
    )
    .await;
    stored(&store, generate::upload("DE", "b", g.keys("DE", 7), at(0))).await;
    let r1 = store.delete_keys_before(at(-50), at(1000)).await.unwrap();
    let r2 = store.delete_keys_before(at(-50), at(2000)).await.unwrap();
    assert_eq!(
        r1,
        CleanupReport {
            ran_at: at(1000),
            cutoff: at(-50),
            deleted: 5,
            keys_before: 12,
            keys_after: 7
        }
    );
    assert_eq!((r2.deleted, r2.keys_before, r2.keys_after), (0, 7, 7));
    assert_eq!(store.cleanup_stats(MIN_TIME).await.unwrap(), vec![r1, r2]);
    assert_eq!(store.cleanup_stats(at(1500)).await.unwrap(), vec![r2]);
}

// ---------------------------------------------------------------------------------------------
// Retention
// ---------------------------------------------------------------------------------------------

/// Exactly the keys created before the cutoff are deleted, batched or not; a key at the
/// cutoff stays (§12 item 78 shape).
pub async fn retention_deletes_exactly_the_keys_before_cutoff(store: Arc<DynInspectableStore>) {
    let mut g = KeyGen::new(37);
    let cutoff = datetime!(2026-11-26 00:00 UTC);
    let us = Duration::microseconds(1);
    let old_batched = g.keys("DE", 2);
    let edge_batched = g.keys("FR", 3);
    let at_cutoff = g.keys("IT", 4);
    let new_batched = g.keys("ES", 1);
    let old_pending = g.keys("NL", 2);
    let new_pending = g.keys("DK", 1);
    stored(
        &store,
        generate::upload("DE", "a", old_batched, cutoff - Duration::days(1)),
    )
    .await;
    stored(
        &store,
        generate::upload("FR", "b", edge_batched, cutoff - us),
    )
    .await;
    stored(
        &store,
        generate::upload("IT", "c", at_cutoff.clone(), cutoff),
    )
    .await;
    stored(
        &store,
        generate::upload("ES", "d", new_batched.clone(), cutoff + Duration::hours(1)),
    )
    .await;
    let t = next_batch(&store, cutoff + Duration::hours(2), 5000)
        .await
        .batch
        .tag;
    stored(
        &store,
        generate::upload("NL", "e", old_pending, cutoff - Duration::hours(5)),
    )
    .await;
    stored(
        &store,
        generate::upload("DK", "f", new_pending.clone(), cutoff + us),
    )
    .await;
    assert_eq!(
        counts(&store).await,
        KeyCounts {
            stored: 13,
            pending: 3
        }
    );

    let now = cutoff + Duration::days(2);
    let r = store.delete_keys_before(cutoff, now).await.unwrap();
    assert_eq!((r.deleted, r.keys_before, r.keys_after), (7, 13, 6));
    assert_eq!(
        counts(&store).await,
        KeyCounts {
            stored: 6,
            pending: 1
        }
    );
    assert_eq!(
        keys_of(&store, &t, None).await,
        [at_cutoff, new_batched].concat()
    );
    for (c, tg) in [("DE", "a"), ("FR", "b"), ("NL", "e")] {
        assert_eq!(
            store.upload_info(c, tg).await.unwrap(),
            None,
            "{c}/{tg} kept"
        );
    }
    for (c, tg) in [("IT", "c"), ("ES", "d"), ("DK", "f")] {
        assert!(
            store.upload_info(c, tg).await.unwrap().is_some(),
            "{c}/{tg} deleted"
        );
    }
    let t2 = next_batch(&store, now, 5000).await.batch.tag;
    assert_eq!(keys_of(&store, &t2, None).await, new_pending);
}

/// Once an upload is deleted its tag and its keys' hashes are free again.
pub async fn retention_frees_tags_and_hashes_of_deleted_uploads(store: Arc<DynInspectableStore>) {
    let keys = KeyGen::new(38).keys("DE", 3);
    stored(&store, generate::upload("DE", "t", keys.clone(), at(-10))).await;
    stored(&store, generate::upload("DE", "empty", Vec::new(), at(-10))).await;
    next_batch(&store, at(-5), 5000).await;
    store.delete_keys_before(at(0), at(1)).await.unwrap();
    assert_eq!(counts(&store).await.stored, 0);
    stored(&store, generate::upload("DE", "t", keys, at(2))).await;
    stored(
        &store,
        generate::upload("DE", "empty", KeyGen::new(39).keys("DE", 1), at(2)),
    )
    .await;
    assert_eq!(counts(&store).await.stored, 4);
}

/// Deleting keys keeps the batches: metadata, links and `number_of_keys` unchanged; their
/// key lists become empty.
pub async fn retention_keeps_batch_metadata(store: Arc<DynInspectableStore>) {
    let mut g = KeyGen::new(40);
    stored(&store, generate::upload("DE", "a", g.keys("DE", 2), at(0))).await;
    let b1 = next_batch(&store, at(1), 5000).await;
    stored(&store, generate::upload("DE", "b", g.keys("DE", 3), at(2))).await;
    let b2 = next_batch(&store, at(3), 5000).await;
    store.delete_keys_before(at(100), at(100)).await.unwrap();
    let mut i1 = b1.batch.clone();
    i1.link = Some(b2.batch.tag);
    assert_eq!(batch(&store, &b1.batch.tag).await, i1);
    assert_eq!(batch(&store, &b2.batch.tag).await, b2.batch);
    assert!(keys_of(&store, &b1.batch.tag, None).await.is_empty());
    assert_eq!(
        store.first_batch_at_or_after(at(0)).await.unwrap(),
        Some(i1)
    );
}

/// Old pending uploads are deleted too and never batched.
pub async fn retention_deletes_old_pending_uploads(store: Arc<DynInspectableStore>) {
    let mut g = KeyGen::new(41);
    stored(
        &store,
        generate::upload("DE", "old", g.keys("DE", 4), at(-100)),
    )
    .await;
    store.delete_keys_before(at(0), at(1)).await.unwrap();
    assert_eq!(
        store.pending_summary().await.unwrap(),
        PendingSummary::default()
    );
    assert_eq!(counts(&store).await, KeyCounts::default());
    assert_eq!(store.create_next_batch(at(2), 5000).await.unwrap(), None);
}

/// `delete_batches_before` removes old batches without keys, keeps those with keys and
/// always keeps the most recent one, so the tag sequence continues.
pub async fn delete_batches_before_removes_only_old_empty_batches(store: Arc<DynInspectableStore>) {
    let mut g = KeyGen::new(42);
    let day =
        |d: i64, h: i64| datetime!(2026-11-01 00:00 UTC) + Duration::days(d) + Duration::hours(h);
    stored(
        &store,
        generate::upload("DE", "u1", g.keys("DE", 1), day(0, 1)),
    )
    .await;
    let b1 = next_batch(&store, day(0, 2), 5000).await.batch.tag;
    stored(
        &store,
        generate::upload("DE", "u2", g.keys("DE", 1), day(0, 3)),
    )
    .await;
    let b2 = next_batch(&store, day(0, 4), 5000).await.batch.tag;
    stored(
        &store,
        generate::upload("DE", "u3", g.keys("DE", 1), day(5, 1)),
    )
    .await;
    let b3 = next_batch(&store, day(5, 2), 5000).await.batch.tag;
    // Created early, batched late: its batch is the most recent one.
    stored(
        &store,
        generate::upload("DE", "u4", g.keys("DE", 1), day(0, 5)),
    )
    .await;
    let b4 = next_batch(&store, day(6, 1), 5000).await.batch.tag;
    let r = store
        .delete_keys_before(day(1, 0), day(7, 0))
        .await
        .unwrap();
    assert_eq!(r.deleted, 3);
    let removed = store.delete_batches_before(day(10, 0)).await.unwrap();
    assert_eq!(removed, 2);
    assert_eq!(store.batch_by_tag(&b1).await.unwrap(), None);
    assert_eq!(store.batch_by_tag(&b2).await.unwrap(), None);
    assert_eq!(batch(&store, &b3).await.link, Some(b4));
    assert!(store.batch_by_tag(&b4).await.unwrap().is_some());
    assert_eq!(
        store
            .first_batch_at_or_after(day(0, 0))
            .await
            .unwrap()
            .map(|b| b.tag),
        Some(b3)
    );
    assert_eq!(store.delete_batches_before(day(10, 0)).await.unwrap(), 0);
    stored(
        &store,
        generate::upload("DE", "u5", g.keys("DE", 1), day(6, 2)),
    )
    .await;
    let b5 = next_batch(&store, day(6, 3), 5000).await;
    assert_eq!(b5.batch.tag.to_string(), "20261107-2");
    assert_eq!(b5.previous, Some(b4));
}

// ---------------------------------------------------------------------------------------------
// Reopening
// ---------------------------------------------------------------------------------------------

/// Everything acknowledged before is visible through a newly opened handle.
pub async fn reopened_store_sees_acknowledged_data(factory: &dyn StoreFactory) {
    let store = factory.open().await;
    let mut g = KeyGen::new(43);
    let e = entry(1, "DE", CertificateType::Signing);
    inserted(&store, e.clone()).await;
    inserted(&store, entry(2, "FR", CertificateType::Authentication)).await;
    store
        .revoke_trust_entry(&entry(2, "FR", CertificateType::Authentication).thumbprint)
        .await
        .unwrap();
    let old = g.keys("DE", 3);
    let batched = g.keys("FR", 4);
    let pending = g.keys("IT", 2);
    stored(&store, generate::upload("DE", "old", old, at(-1000))).await;
    stored(
        &store,
        generate::upload("FR", "batched", batched.clone(), at(0)),
    )
    .await;
    let b = next_batch(&store, at(1), 5000).await;
    let up = generate::upload("IT", "pending", pending.clone(), at(2));
    let digest = up.content_digest;
    stored(&store, up).await;
    let dl = DownloadStat {
        country: "DE".to_owned(),
        batch_tag: b.batch.tag,
        number_of_keys: 4,
        requested_at: at(3),
    };
    store.record_download(dl.clone()).await.unwrap();
    let report = store.delete_keys_before(at(-500), at(4)).await.unwrap();
    let trust = store.list_trust_entries().await.unwrap();
    let ustats = store.upload_stats(MIN_TIME).await.unwrap();
    drop(store);

    let store = factory.open().await;
    assert_eq!(store.list_trust_entries().await.unwrap(), trust);
    assert_eq!(store.trust_entry(&e.thumbprint).await.unwrap(), Some(e));
    assert_eq!(store.latest_batch().await.unwrap(), Some(b.batch.clone()));
    assert_eq!(keys_of(&store, &b.batch.tag, None).await, batched);
    assert_eq!(
        counts(&store).await,
        KeyCounts {
            stored: 6,
            pending: 2
        }
    );
    let info = store
        .upload_info("IT", "pending")
        .await
        .unwrap()
        .expect("info");
    assert_eq!(info.content_digest, digest);
    assert_eq!(store.upload_info("DE", "old").await.unwrap(), None);
    assert_eq!(store.upload_stats(MIN_TIME).await.unwrap(), ustats);
    assert_eq!(store.download_stats(MIN_TIME).await.unwrap(), vec![dl]);
    assert_eq!(store.cleanup_stats(MIN_TIME).await.unwrap(), vec![report]);
    // Uniqueness survives the reopen.
    let r = store
        .insert_upload(generate::upload("IT", "pending", pending, at(5)))
        .await
        .unwrap();
    assert!(matches!(r, UploadOutcome::Replayed(_)), "got {r:?}");
    let dup = generate::upload("FR", "again", batched[..1].to_vec(), at(5));
    assert_eq!(conflicts(&store, dup).await.conflict, vec![0]);
}

/// After a reopen the next batch continues the tag sequence and links from the last one.
pub async fn reopened_store_continues_the_batch_chain(factory: &dyn StoreFactory) {
    let store = factory.open().await;
    let mut g = KeyGen::new(44);
    stored(&store, generate::upload("DE", "a", g.keys("DE", 1), at(0))).await;
    let b1 = next_batch(&store, at(1), 5000).await;
    stored(&store, generate::upload("DE", "b", g.keys("DE", 1), at(2))).await;
    drop(store);
    let store = factory.open().await;
    assert_eq!(store.pending_summary().await.unwrap().uploads, 1);
    let b2 = next_batch(&store, at(3), 5000).await;
    assert_eq!(b2.batch.tag, tag("20261128-2"));
    assert_eq!(b2.previous, Some(b1.batch.tag));
    assert_eq!(batch(&store, &b1.batch.tag).await.link, Some(b2.batch.tag));
}

/// A revocation survives a reopen (a restart), and re-importing the entry through the new
/// handle keeps it revoked.
pub async fn reopened_store_keeps_a_revocation_against_reimport(factory: &dyn StoreFactory) {
    let store = factory.open().await;
    let e = entry(1, "DE", CertificateType::Authentication);
    inserted(&store, e.clone()).await;
    store.revoke_trust_entry(&e.thumbprint).await.unwrap();
    drop(store);
    let store = factory.open().await;
    let mut reimport = e.clone();
    reimport.created_at = at(60);
    assert_eq!(
        store.upsert_trust_entry(reimport).await.unwrap(),
        Upserted::KeptRevoked
    );
    let mut expected = e;
    expected.revoked = true;
    assert_eq!(
        store.trust_entry(&expected.thumbprint).await.unwrap(),
        Some(expected)
    );
}

/// Which change stamp.
#[derive(Clone, Copy, Debug)]
enum Stamp {
    TrustList,
    Batches,
}

async fn stamp(store: &Arc<DynInspectableStore>, which: Stamp) -> Option<u64> {
    match which {
        Stamp::TrustList => store.trust_list_stamp().await.unwrap(),
        Stamp::Batches => store.batch_stamp().await.unwrap(),
    }
}

/// Waits until `store`'s stamp is at least `want`, failing after `STAMP_LAG`.
async fn stamp_reaches(store: &Arc<DynInspectableStore>, which: Stamp, want: u64) {
    let start = std::time::Instant::now();
    loop {
        let got = stamp(store, which).await.unwrap();
        if got >= want {
            return;
        }
        assert!(
            start.elapsed() < efgs_core::store::STAMP_LAG,
            "{which:?} stamp still {got} (not {want}) after the stamp lag"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// The change stamps (`efgs_core::store::STAMP_LAG`): a trust-list or batch write through one
/// handle changes that handle's stamp before the write returns, and another handle's within
/// the stamp lag; stamps only grow. A store without stamps (`None`) has nothing to show.
pub async fn change_stamps_follow_writes_through_every_handle(factory: &dyn StoreFactory) {
    let a = factory.open().await;
    let b = factory.open().await;
    let (Some(t0), Some(s0)) = (
        stamp(&a, Stamp::TrustList).await,
        stamp(&a, Stamp::Batches).await,
    ) else {
        return;
    };
    let e = entry(1, "DE", CertificateType::Authentication);
    inserted(&a, e.clone()).await;
    let t1 = stamp(&a, Stamp::TrustList).await.unwrap();
    assert!(t1 > t0, "insert: {t0} -> {t1}");
    stamp_reaches(&b, Stamp::TrustList, t1).await;
    b.revoke_trust_entry(&e.thumbprint).await.unwrap();
    let t2 = stamp(&b, Stamp::TrustList).await.unwrap();
    assert!(t2 > t1, "revoke: {t1} -> {t2}");
    stamp_reaches(&a, Stamp::TrustList, t2).await;
    assert!(a.trust_entry(&e.thumbprint).await.unwrap().unwrap().revoked);
    assert_eq!(
        a.readmit_trust_entry(&e.thumbprint).await.unwrap(),
        Readmission::Readmitted
    );
    let t3 = stamp(&a, Stamp::TrustList).await.unwrap();
    assert!(t3 > t2, "readmit: {t2} -> {t3}");
    assert_eq!(
        stamp(&a, Stamp::Batches).await,
        Some(s0),
        "no batch written"
    );

    let mut g = KeyGen::new(77);
    stored(&a, generate::upload("DE", "s", g.keys("DE", 2), at(0))).await;
    let made = b.create_next_batch(at(1), 5000).await.unwrap().unwrap();
    let s1 = stamp(&b, Stamp::Batches).await.unwrap();
    assert!(s1 > s0, "batch cut: {s0} -> {s1}");
    stamp_reaches(&a, Stamp::Batches, s1).await;
    assert_eq!(
        a.batch_by_tag(&made.batch.tag)
            .await
            .unwrap()
            .map(|i| i.tag),
        Some(made.batch.tag)
    );
    assert!(stamp(&a, Stamp::TrustList).await.unwrap() >= t3);
}

// ---------------------------------------------------------------------------------------------
// Callback subscriptions and delivery tasks
// ---------------------------------------------------------------------------------------------

/// Cuts one batch holding one fresh upload of `country` at `t`; returns its tag.
async fn cut_one(
    store: &DynInspectableStore,
    name: &str,
    seed: u64,
    t: OffsetDateTime,
) -> BatchTag {
    stored(
        store,
        generate::upload("DE", name, KeyGen::new(seed).keys("DE", 1), t),
    )
    .await;
    next_batch(store, t, 5000).await.batch.tag
}

fn claim(holder: &str, now: OffsetDateTime, lease_secs: i64, limit: usize) -> TaskClaim {
    TaskClaim {
        holder: holder.to_owned(),
        now,
        lease_until: now + Duration::seconds(lease_secs),
        limit,
    }
}

async fn claimed(store: &DynInspectableStore, c: &TaskClaim) -> Vec<CallbackTask> {
    store.claim_callback_tasks(c).await.unwrap()
}

async fn deliver(store: &DynInspectableStore, t: &CallbackTask, holder: &str) {
    assert_eq!(
        store
            .finish_callback_task(t, holder, TaskResult::Delivered)
            .await
            .unwrap(),
        TaskFinish::Recorded,
        "{holder} delivering {} to {}",
        t.batch.tag,
        t.callback_id
    );
}

/// PUT semantics (protocol §1.6): an upsert per (country, callbackId); a second PUT replaces
/// the URL and keeps one row and its creation time; another country's same id is separate;
/// lists are per country in creation order.
pub async fn callback_subscriptions_upsert_list_and_scope_by_country(
    store: Arc<DynInspectableStore>,
) {
    let up = |c: &'static str, id: &'static str, url: &'static str, t: i64| {
        let store = store.clone();
        async move { store.upsert_subscription(c, id, url, at(t)).await.unwrap() }
    };
    assert_eq!(
        up("DE", "b", "https://b.example/1", 1).await,
        SubscriptionUpsert::Created
    );
    assert_eq!(
        up("DE", "a", "https://a.example/", 2).await,
        SubscriptionUpsert::Created
    );
    assert_eq!(
        up("FR", "b", "https://fr.example/", 3).await,
        SubscriptionUpsert::Created
    );
    assert_eq!(
        up("DE", "b", "https://b.example/2", 4).await,
        SubscriptionUpsert::Updated
    );
    assert_eq!(
        up("DE", "b", "https://b.example/2", 5).await,
        SubscriptionUpsert::Updated
    );
    let de = store.list_subscriptions("DE").await.unwrap();
    let ids: Vec<(&str, &str)> = de
        .iter()
        .map(|s| (s.callback_id.as_str(), s.url.as_str()))
        .collect();
    assert_eq!(
        ids,
        [("b", "https://b.example/2"), ("a", "https://a.example/")],
        "creation order, second PUT replaced the URL"
    );
    assert_eq!(de[0].created_at, at(1), "an update keeps the creation time");
    assert!(
        de.iter()
            .all(|s| s.country == "DE" && s.suspended_at.is_none())
    );
    let fr = store.list_subscriptions("FR").await.unwrap();
    assert_eq!(fr.len(), 1);
    assert_eq!(fr[0].url, "https://fr.example/");
    assert!(store.list_subscriptions("PL").await.unwrap().is_empty());
}

/// DELETE (protocol §1.7): only the caller's country's subscription of that id goes; an
/// unknown id, or another country's, deletes nothing.
pub async fn callback_delete_is_scoped_by_country(store: Arc<DynInspectableStore>) {
    for c in ["DE", "FR"] {
        let _ = store
            .upsert_subscription(c, "x", "https://x.example/", at(1))
            .await
            .unwrap();
    }
    assert!(!store.delete_subscription("PL", "x").await.unwrap());
    assert!(!store.delete_subscription("DE", "y").await.unwrap());
    assert!(store.delete_subscription("DE", "x").await.unwrap());
    assert!(!store.delete_subscription("DE", "x").await.unwrap());
    assert!(store.list_subscriptions("DE").await.unwrap().is_empty());
    assert_eq!(store.list_subscriptions("FR").await.unwrap().len(), 1);
}

/// A subscription gets every batch cut after it was created, oldest first, one task at a
/// time (the next one only after the previous was delivered), each once; a leased task is not
/// handed out again while its lease lasts.
pub async fn callback_tasks_follow_cut_order_one_at_a_time(store: Arc<DynInspectableStore>) {
    let before = cut_one(&store, "b0", 501, at(1)).await;
    let _ = store
        .upsert_subscription("FR", "cb", "https://fr.example/", at(2))
        .await
        .unwrap();
    assert!(
        claimed(&store, &claim("h", at(3), 60, 10)).await.is_empty(),
        "a subscription starts after the batches cut before it ({before})"
    );
    let mut tags = Vec::new();
    for i in 0..3 {
        tags.push(cut_one(&store, &format!("b{}", i + 1), 510 + i, at(10 + i as i64)).await);
    }
    let mut got = Vec::new();
    for round in 0..3 {
        let now = at(20 + round);
        let tasks = claimed(&store, &claim("h", now, 60, 10)).await;
        assert_eq!(tasks.len(), 1, "one task at a time per subscription");
        assert!(
            claimed(&store, &claim("other", now, 60, 10))
                .await
                .is_empty(),
            "a leased task is not handed out again"
        );
        let t = &tasks[0];
        assert_eq!((t.country.as_str(), t.callback_id.as_str()), ("FR", "cb"));
        assert_eq!(t.url, "https://fr.example/");
        assert_eq!(t.retries, 0);
        got.push(t.batch.tag);
        deliver(&store, t, "h").await;
        assert_eq!(
            store
                .finish_callback_task(t, "h", TaskResult::Delivered)
                .await
                .unwrap(),
            TaskFinish::LeaseLost,
            "a task is recorded once"
        );
    }
    assert_eq!(got, tags, "cut order");
    assert!(
        claimed(&store, &claim("h", at(30), 60, 10))
            .await
            .is_empty()
    );
}

/// A lease that expired (its holder died) is taken over by another holder; the old holder's
/// late result then changes nothing.
pub async fn callback_expired_lease_is_taken_over_and_the_old_holder_loses(
    store: Arc<DynInspectableStore>,
) {
    let _ = store
        .upsert_subscription("PL", "1", "https://pl.example/", at(0))
        .await
        .unwrap();
    let tag1 = cut_one(&store, "l1", 601, at(1)).await;
    let a = claimed(&store, &claim("A", at(2), 10, 5)).await;
    assert_eq!(a.len(), 1);
    assert!(
        claimed(&store, &claim("B", at(11), 10, 5)).await.is_empty(),
        "lease still held"
    );
    let b = claimed(&store, &claim("B", at(12), 10, 5)).await;
    assert_eq!(b.len(), 1, "the expired lease is taken over");
    assert_eq!(b[0].batch.tag, tag1);
    assert_eq!(
        store
            .finish_callback_task(&a[0], "A", TaskResult::Delivered)
            .await
            .unwrap(),
        TaskFinish::LeaseLost,
        "the old holder lost the lease"
    );
    deliver(&store, &b[0], "B").await;
    assert!(claimed(&store, &claim("A", at(30), 10, 5)).await.is_empty());
}

/// A failed attempt makes the task wait until `not_before` (later batches wait too); the last
/// failure suspends the subscription, which then gets nothing; a PUT re-activates it and
/// delivery resumes with its first undelivered batch.
pub async fn callback_failure_waits_then_suspends_until_a_put(store: Arc<DynInspectableStore>) {
    let _ = store
        .upsert_subscription("DE", "s", "https://de.example/", at(0))
        .await
        .unwrap();
    let first = cut_one(&store, "f1", 701, at(1)).await;
    let second = cut_one(&store, "f2", 702, at(2)).await;
    let t = claimed(&store, &claim("h", at(3), 60, 5)).await.remove(0);
    assert_eq!(t.batch.tag, first);
    let retry = TaskResult::Retry {
        retries: 1,
        not_before: at(100),
    };
    assert_eq!(
        store.finish_callback_task(&t, "h", retry).await.unwrap(),
        TaskFinish::Recorded
    );
    assert!(
        claimed(&store, &claim("h", at(99), 60, 5)).await.is_empty(),
        "waits for its retry, and the later batch waits with it"
    );
    let t = claimed(&store, &claim("h", at(100), 60, 5)).await.remove(0);
    assert_eq!((t.batch.tag, t.retries), (first, 1));
    let suspend = TaskResult::Suspend {
        retries: 2,
        at: at(101),
    };
    assert_eq!(
        store.finish_callback_task(&t, "h", suspend).await.unwrap(),
        TaskFinish::Recorded
    );
    let s = &store.list_subscriptions("DE").await.unwrap()[0];
    assert_eq!(
        (s.suspended_at, s.retries),
        (Some(at(101)), 2),
        "suspended, not deleted"
    );
    assert!(
        claimed(&store, &claim("h", at(10_000), 60, 5))
            .await
            .is_empty()
    );
    assert_eq!(
        store
            .upsert_subscription("DE", "s", "https://de.example/", at(10_001))
            .await
            .unwrap(),
        SubscriptionUpsert::Reactivated
    );
    let s = &store.list_subscriptions("DE").await.unwrap()[0];
    assert_eq!(
        (s.suspended_at, s.retries, s.next_attempt_at),
        (None, 0, None)
    );
    let t = claimed(&store, &claim("h", at(10_002), 60, 5))
        .await
        .remove(0);
    assert_eq!(
        (t.batch.tag, t.retries),
        (first, 0),
        "resumes at the first undelivered"
    );
    deliver(&store, &t, "h").await;
    let t = claimed(&store, &claim("h", at(10_003), 60, 5))
        .await
        .remove(0);
    assert_eq!(t.batch.tag, second);
}

/// Concurrent claimers (several instances) lease each due task to exactly one of them.
pub async fn callback_concurrent_claims_lease_each_task_once(store: Arc<DynInspectableStore>) {
    for i in 0..20 {
        let _ = store
            .upsert_subscription("DE", &format!("s{i}"), "https://de.example/", at(0))
            .await
            .unwrap();
    }
    let tag1 = cut_one(&store, "c1", 801, at(1)).await;
    let mut tasks = tokio::task::JoinSet::new();
    for h in 0..8 {
        let store = store.clone();
        tasks.spawn(async move {
            let mut mine = Vec::new();
            for _ in 0..5 {
                let got = claimed(&store, &claim(&format!("h{h}"), at(2), 60, 3)).await;
                mine.extend(got.into_iter().map(|t| t.callback_id));
            }
            mine
        });
    }
    let mut all = Vec::new();
    while let Some(r) = tasks.join_next().await {
        all.extend(r.unwrap());
    }
    all.sort();
    let mut expected: Vec<String> = (0..20).map(|i| format!("s{i}")).collect();
    expected.sort();
    assert_eq!(
        all, expected,
        "every subscription's task ({tag1}) leased exactly once"
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn behaviour_lists_are_unique_and_large_enough() {
        let mut all: Vec<&str> = super::STORE_BEHAVIOURS.to_vec();
        all.extend_from_slice(super::FACTORY_BEHAVIOURS);
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
        assert!(n >= 40);
    }
}
