//! A storage outage over real HTTP: requests get 503 with Retry-After and a problem body while
//! the store is unavailable, and the server answers normally again as soon as it returns,
//! without a restart (issue: robustness). The outage is injected with `FaultyStore` over the
//! real memory store.
#![allow(clippy::unwrap_used)]

#[allow(unused_macros)]
mod support;

use std::sync::Arc;

use efgs_core::media::BodyFormat;
use efgs_core::store::DynInspectableStore;
use efgs_store_memory::MemoryStore;
use efgs_testkit::faulty::FaultyStore;
use efgs_testkit::federation::Federation;
use time::macros::datetime;

const PB_V1: &str = "application/protobuf; version=1.0";

async fn federation(store: &FaultyStore) -> Federation {
    let dynamic: Arc<DynInspectableStore> = Arc::new(store.clone());
    Federation::builder()
        .countries(["DE", "FR"])
        .start_at(datetime!(2026-11-28 10:00 UTC))
        .store(dynamic)
        .build()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn outage_gives_503_with_retry_after_and_recovers() {
    let inner: Arc<DynInspectableStore> = Arc::new(MemoryStore::new());
    let store = FaultyStore::new(inner);
    let fed = federation(&store).await;
    let de = &fed["DE"];
    let fr = &fed["FR"];
    let keys = de.keys(3);
    let up = de
        .upload(&keys, "outage-1", BodyFormat::Protobuf)
        .await
        .unwrap();
    assert_eq!(up.status, 201);
    fed.run_batching_now().await.unwrap();
    let today = fed.clock().today();

    store.set_down(true);
    let r = fr.download(today, None, Some(PB_V1)).await.unwrap();
    assert_eq!(r.status, 503);
    assert!(
        r.headers.get("retry-after").is_some(),
        "503 needs Retry-After"
    );
    let problem: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(problem["code"], "storage-unavailable");
    assert_eq!(problem["status"], 503);
    let up = de
        .upload(&de.keys(2), "outage-2", BodyFormat::Protobuf)
        .await
        .unwrap();
    assert_eq!(up.status, 503);

    store.set_down(false);
    let r = fr.download(today, None, Some(PB_V1)).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(!r.body.is_empty());
    let up = de
        .upload(&de.keys(2), "outage-2", BodyFormat::Protobuf)
        .await
        .unwrap();
    assert_eq!(
        up.status, 201,
        "the tag refused during the outage is still free"
    );
    fed.shutdown().await.unwrap();
}
