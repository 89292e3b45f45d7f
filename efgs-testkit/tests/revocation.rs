//! Revocation is one-way and reaches every instance (issue 9, build point 1): a revoked
//! certificate stays revoked when the gateway restarts and imports the same `trust.import_dir`
//! again; only a re-admission (the operator's `trust-list readmit`) clears it; a revocation or
//! re-admission written through one instance is honoured by another instance on the same store
//! within one second.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod support;

use std::time::{Duration, Instant};

use efgs_core::cert::Thumbprint;
use efgs_core::media::BodyFormat;
use efgs_core::store::{Readmission, TrustListStore as _};
use efgs_testkit::federation::Federation;
use support::{Backend, stored_keys};

const PB: BodyFormat = BodyFormat::Protobuf;
const PB_V1: &str = "application/protobuf; version=1.0";

http_tests!(
    revoked_authentication_certificate_stays_revoked_after_restart,
    revoked_signing_certificate_stays_revoked_after_restart,
    revocation_and_readmission_reach_another_instance_within_one_second,
    revocation_reaches_cached_downloads_of_another_instance_within_one_second,
);

/// The status of a download of today by `country` (404 "no batch yet" once authenticated),
/// and the problem message.
async fn probe(fed: &Federation, country: &str) -> (u16, Option<String>) {
    let r = fed[country]
        .download(fed.today(), None, Some(PB_V1))
        .await
        .unwrap();
    (r.status, r.message())
}

async fn is_revoked(fed: &Federation, t: &Thumbprint) -> bool {
    fed.store()
        .trust_entry(t)
        .await
        .unwrap()
        .expect("the entry is on the trust list")
        .revoked
}

/// Polls `country`'s probe on `fed` until it answers `status`; returns how long that took,
/// failing after `limit`.
async fn until_status(fed: &Federation, country: &str, status: u16, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let (got, _) = probe(fed, country).await;
        if got == status {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{country} still gets {got} (not {status}) after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The measured High: DE's AUTHENTICATION certificate is revoked, the gateway restarts
/// with the same `trust.import_dir` (whose entry says `revoked: false`), and DE is still
/// refused with 403; FR is not affected. Re-admitting the thumbprint lets DE in again, and a
/// further restart keeps it admitted.
async fn revoked_authentication_certificate_stays_revoked_after_restart(b: Backend) {
    let fed = b.federation(&["DE", "FR"]).await;
    let de_auth = fed["DE"].credentials().auth_thumbprint.clone();
    assert_eq!(
        probe(&fed, "DE").await.0,
        404,
        "authenticated, no batch yet"
    );
    fed.revoke(&de_auth).await.unwrap();
    assert_eq!(probe(&fed, "DE").await.0, 403);

    let fed = fed.restart().await.unwrap();
    let (status, message) = probe(&fed, "DE").await;
    assert_eq!(status, 403, "the restart re-admitted a revoked certificate");
    assert_eq!(message.as_deref(), Some("Client certificate is revoked"));
    assert!(is_revoked(&fed, &de_auth).await);
    let de = &fed["DE"];
    assert_eq!(de.upload(&de.keys(1), "t1", PB).await.unwrap().status, 403);
    assert_eq!(probe(&fed, "FR").await.0, 404, "FR is not affected");

    assert_eq!(
        fed.readmit(&de_auth).await.unwrap(),
        Readmission::Readmitted
    );
    assert_eq!(probe(&fed, "DE").await.0, 404, "re-admitted");
    let de = &fed["DE"];
    assert_eq!(de.upload(&de.keys(1), "t2", PB).await.unwrap().status, 201);

    let fed = fed.restart().await.unwrap();
    assert_eq!(
        probe(&fed, "DE").await.0,
        404,
        "still admitted after a restart"
    );
    assert!(!is_revoked(&fed, &de_auth).await);
    assert_eq!(stored_keys(&fed).await, 1);
    fed.shutdown().await.unwrap();
}

/// A revoked SIGNING certificate stays revoked across a restart: uploads it signs get 400
/// "Invalid signature" and store nothing, until it is re-admitted.
async fn revoked_signing_certificate_stays_revoked_after_restart(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let de_sign = fed["DE"].credentials().sign_thumbprint.clone();
    let de = &fed["DE"];
    assert_eq!(de.upload(&de.keys(1), "a", PB).await.unwrap().status, 201);
    fed.revoke(&de_sign).await.unwrap();

    let fed = fed.restart().await.unwrap();
    assert!(is_revoked(&fed, &de_sign).await);
    let de = &fed["DE"];
    let r = de.upload(&de.keys(1), "b", PB).await.unwrap();
    assert_eq!(r.status, 400, "the restart re-admitted a revoked signer");
    assert_eq!(r.message().as_deref(), Some("Invalid signature"));
    assert_eq!(stored_keys(&fed).await, 1);

    assert_eq!(
        fed.readmit(&de_sign).await.unwrap(),
        Readmission::Readmitted
    );
    let r = de.upload(&de.keys(1), "c", PB).await.unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(stored_keys(&fed).await, 2);
    fed.shutdown().await.unwrap();
}

/// Two instances on one store (the second imports the same `trust.import_dir` at its start).
/// A revocation written through the first instance's store handle is honoured by the second
/// within one second, for authentication and for batch signatures; so is a re-admission
/// written through the second and honoured by the first. The gateway reads the entry from the
/// store on every request (no cache of the revoked flag), so in practice it is the next
/// request.
async fn revocation_and_readmission_reach_another_instance_within_one_second(b: Backend) {
    let one = b.federation(&["DE", "FR"]).await;
    let two = one.instance().await.unwrap();
    assert_ne!(one.addr(), two.addr());
    let limit = Duration::from_secs(1);
    let de_auth = one["DE"].credentials().auth_thumbprint.clone();
    let de_sign = one["DE"].credentials().sign_thumbprint.clone();
    for fed in [&one, &two] {
        assert_eq!(probe(fed, "DE").await.0, 404, "{}", fed.base_url());
    }

    // Revoked through instance one (its gateway's own store handle: its pool on PostgreSQL).
    one.gateway()
        .store()
        .revoke_trust_entry(&de_auth)
        .await
        .unwrap();
    let took = until_status(&two, "DE", 403, limit).await;
    assert_eq!(
        probe(&two, "DE").await.1.as_deref(),
        Some("Client certificate is revoked")
    );
    assert_eq!(probe(&one, "DE").await.0, 403);
    assert_eq!(probe(&two, "FR").await.0, 404);

    // Re-admitted through instance two.
    assert_eq!(
        two.gateway()
            .store()
            .readmit_trust_entry(&de_auth)
            .await
            .unwrap(),
        Readmission::Readmitted
    );
    let back = until_status(&one, "DE", 404, limit).await;

    // A revoked signer, revoked through one, refused by two.
    one.gateway()
        .store()
        .revoke_trust_entry(&de_sign)
        .await
        .unwrap();
    let start = Instant::now();
    let de = &two["DE"];
    let r = de.upload(&de.keys(1), "after-revoke", PB).await.unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(start.elapsed() < limit);
    assert_eq!(stored_keys(&two).await, 0);
    eprintln!("revocation reached the other instance after {took:?}, re-admission after {back:?}");
    two.shutdown().await.unwrap();
    one.shutdown().await.unwrap();
}

/// The download path keeps the caller's trust-list row and the batch row in memory while the
/// store's change stamps stay the same (ADR 0030): a cached download needs no database round
/// trip. A revocation written through instance one still refuses FR's cached download on
/// instance two within one second (and on instance one at once), and the re-admission lets
/// FR in again within one second; meanwhile DE's cached downloads keep being served. A batch
/// cut on instance one is linked in instance two's answer within one second.
async fn revocation_reaches_cached_downloads_of_another_instance_within_one_second(b: Backend) {
    let one = b.federation(&["DE", "FR", "IT"]).await;
    let two = one.instance().await.unwrap();
    let limit = Duration::from_secs(1);
    let it = &one["IT"];
    let r = it.upload(&it.keys(3), "it-1", PB).await.unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    let t1 = one.run_batching_now().await.unwrap()[0]
        .batch
        .tag
        .to_string();
    let get = async |fed: &Federation, country: &str| {
        let r = fed[country]
            .download(fed.today(), Some(&t1), Some(PB_V1))
            .await
            .unwrap();
        (r.status, r.next_batch_tag)
    };
    for fed in [&one, &two] {
        for country in ["FR", "DE"] {
            // Twice: the second answer comes from the caches.
            for _ in 0..2 {
                assert_eq!(get(fed, country).await, (200, Some("null".to_owned())));
            }
        }
    }

    let fr_auth = one["FR"].credentials().auth_thumbprint.clone();
    one.gateway()
        .store()
        .revoke_trust_entry(&fr_auth)
        .await
        .unwrap();
    assert_eq!(get(&one, "FR").await.0, 403, "the revoking instance");
    let start = Instant::now();
    while get(&two, "FR").await.0 != 403 {
        assert!(
            start.elapsed() < limit,
            "FR still served by two after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = start.elapsed();
    assert_eq!(get(&two, "DE").await.0, 200);

    assert_eq!(
        two.gateway()
            .store()
            .readmit_trust_entry(&fr_auth)
            .await
            .unwrap(),
        Readmission::Readmitted
    );
    assert_eq!(get(&two, "FR").await.0, 200, "the re-admitting instance");
    let start = Instant::now();
    while get(&one, "FR").await.0 != 200 {
        assert!(
            start.elapsed() < limit,
            "FR still refused by one after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let r = it.upload(&it.keys(2), "it-2", PB).await.unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    let t2 = one.run_batching_now().await.unwrap()[0]
        .batch
        .tag
        .to_string();
    assert_eq!(get(&one, "DE").await, (200, Some(t2.clone())));
    let start = Instant::now();
    while get(&two, "DE").await.1.as_deref() != Some(t2.as_str()) {
        assert!(
            start.elapsed() < limit,
            "two does not link {t2} after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("revocation reached the other instance's cached downloads after {took:?}");
    two.shutdown().await.unwrap();
    one.shutdown().await.unwrap();
}
