//! Work in flight over real HTTP, with the store slowed down by `SlowStore` (a decorator over
//! the real memory or PostgreSQL store): graceful shutdown finishes an upload whose database
//! write is still running and the upload is stored; a slow upload holds up nobody else; two
//! uploads racing for one batchTag end as the store contract says (one stored; the other a
//! replay or 409), with the gateway's pre-check passed by both.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod support;

use std::sync::Arc;
use std::time::Duration;

use efgs_core::media::BodyFormat;
use efgs_core::store::{DynInspectableStore, UploadStore as _};
use efgs_store_memory::MemoryStore;
use efgs_testkit::federation::Federation;
use efgs_testkit::slow::SlowStore;
use support::Backend;
use time::macros::datetime;

const PB: BodyFormat = BodyFormat::Protobuf;
const PB_V1: &str = "application/protobuf; version=1.0";
const WAIT: Duration = Duration::from_secs(10);

http_tests!(
    inflight_shutdown_finishes_upload_whose_store_write_is_running,
    inflight_slow_upload_holds_up_no_download,
    inflight_same_tag_same_content_race_stores_once,
    inflight_same_tag_other_content_race_gives_409,
);

/// The backend's real store under a `SlowStore`, and a DE/FR federation over it.
async fn slow_federation(b: &Backend) -> (Federation, SlowStore) {
    let inner: Arc<DynInspectableStore> = match b {
        Backend::Memory => Arc::new(MemoryStore::new()),
        Backend::Postgres(schema) => schema.store().await.unwrap(),
    };
    let slow = SlowStore::new(inner);
    let fed = Federation::builder()
        .countries(["DE", "FR"])
        .start_at(datetime!(2026-11-28 10:00 UTC))
        .store(Arc::new(slow.clone()))
        .build()
        .await
        .unwrap();
    (fed, slow)
}

/// Shutdown begins while the upload's `insert_upload` is waiting: the server finishes it,
/// answers 201, and the keys are in the store afterwards; new connections are refused.
async fn inflight_shutdown_finishes_upload_whose_store_write_is_running(b: Backend) {
    let (fed, slow) = slow_federation(&b).await;
    let store = Arc::clone(fed.store());
    let addr = fed.addr();
    let de = fed["DE"].clone();
    let keys = de.keys(7);
    slow.set_delay("insert_upload", Duration::from_millis(500));
    let upload = tokio::spawn({
        let keys = keys.clone();
        async move { de.upload(&keys, "in-flight-1", PB).await.unwrap() }
    });
    assert!(slow.wait_for_calls("insert_upload", 1, WAIT).await);
    tokio::time::timeout(WAIT, fed.shutdown())
        .await
        .expect("shutdown waits for the upload, not for ever")
        .unwrap();
    let r = upload.await.unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    let info = store
        .upload_info("DE", "in-flight-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.number_of_keys, 7);
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed after shutdown"
    );
}

/// While one upload's store write takes a second, downloads of another country are served.
async fn inflight_slow_upload_holds_up_no_download(b: Backend) {
    let (fed, slow) = slow_federation(&b).await;
    let keys = fed["DE"].keys(3);
    let r = fed["DE"].upload(&keys, "first", PB).await.unwrap();
    assert_eq!(r.status, 201);
    fed.run_batching_now().await.unwrap();
    slow.set_delay("insert_upload", Duration::from_millis(1500));
    let de = fed["DE"].clone();
    let upload = tokio::spawn(async move {
        let more = de.keys(2);
        de.upload(&more, "second", PB).await.unwrap()
    });
    assert!(slow.wait_for_calls("insert_upload", 2, WAIT).await);
    for _ in 0..3 {
        let d = fed["FR"]
            .download(fed.today(), None, Some(PB_V1))
            .await
            .unwrap();
        assert_eq!((d.status, &d.keys), (200, &keys));
    }
    assert!(
        !upload.is_finished(),
        "the downloads finished while the slow upload was still running"
    );
    assert_eq!(upload.await.unwrap().status, 201);
    fed.shutdown().await.unwrap();
}

/// Two identical uploads under one tag, both past the gateway's "tag already used?" check
/// before either is stored: both get 201 (one stored, one a replay) and the keys are stored
/// once.
async fn inflight_same_tag_same_content_race_stores_once(b: Backend) {
    let (fed, slow) = slow_federation(&b).await;
    let de = fed["DE"].clone();
    let keys = de.keys(4);
    let signature = de.sign(&keys).unwrap();
    let send = || {
        de.upload_request(keys.clone())
            .tag("race")
            .format(PB)
            .signature(signature.clone())
            .send()
    };
    // Long enough for both requests to pass the pre-check before the first insert ends,
    // even on a loaded machine.
    slow.set_delay("insert_upload", Duration::from_millis(1500));
    let (a, b2) = tokio::join!(send(), send());
    let (a, b2) = (a.unwrap(), b2.unwrap());
    assert_eq!(
        (a.status, b2.status),
        (201, 201),
        "{} / {}",
        a.text(),
        b2.text()
    );
    assert_eq!(slow.calls("insert_upload"), 2, "both reached the store");
    let pending = fed.store().key_counts().await.unwrap().pending;
    assert_eq!(pending, 4, "stored once");
    fed.shutdown().await.unwrap();
}

/// Two different uploads under one tag, both past the gateway's check: one 201, one 409 with
/// the reference's message, and only the winner's keys are stored.
async fn inflight_same_tag_other_content_race_gives_409(b: Backend) {
    let (fed, slow) = slow_federation(&b).await;
    let de = &fed["DE"];
    let (k1, k2) = (de.keys(3), de.keys(5));
    // Long enough for both requests to pass the pre-check before the first insert ends,
    // even on a loaded machine.
    slow.set_delay("insert_upload", Duration::from_millis(1500));
    let (a, b2) = tokio::join!(de.upload(&k1, "race", PB), de.upload(&k2, "race", PB));
    let (a, b2) = (a.unwrap(), b2.unwrap());
    let mut statuses = [a.status, b2.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409], "{} / {}", a.text(), b2.text());
    let loser = if a.status == 409 { &a } else { &b2 };
    assert!(
        loser.text().contains("BatchTag already exists."),
        "{}",
        loser.text()
    );
    assert_eq!(slow.calls("insert_upload"), 2, "both reached the store");
    let winner_keys = if a.status == 201 { 3 } else { 5 };
    let pending = fed.store().key_counts().await.unwrap().pending;
    assert_eq!(pending, winner_keys);
    fed.shutdown().await.unwrap();
}
