//! Conformance behaviours of the audit trail (`AuditTrailStore`, ADR 0017-0019).

use std::sync::Arc;

use efgs_core::store::{DynInspectableStore, TrailRecord};
use efgs_core::trail::{ChainVerifier, Event, GENESIS, Level, chain_hash};

use super::{StoreFactory, at};

fn event(t: i64, name: &str, i: u64) -> Event {
    Event::new(at(t), Level::Info, name).field("i", i)
}

async fn all(store: &DynInspectableStore) -> Vec<TrailRecord> {
    store.audit_records_after(0, usize::MAX).await.unwrap()
}

fn assert_chain(records: &[TrailRecord]) {
    let mut v = ChainVerifier::new();
    for r in records {
        v.push(r)
            .unwrap_or_else(|b| panic!("stored chain broken: {b}"));
    }
}

/// Appends chain the events in the order given, with dense numbers from 1 after the genesis
/// hash; the records carry the events' lines and instants.
pub async fn trail_append_chains_events_in_order(store: Arc<DynInspectableStore>) {
    assert_eq!(store.append_audit_events(Vec::new()).await.unwrap(), 0);
    assert!(all(&store).await.is_empty());
    let first: Vec<Event> = (0..3).map(|i| event(10, "upload", i)).collect();
    assert_eq!(store.append_audit_events(first.clone()).await.unwrap(), 3);
    let second = vec![event(20, "download", 3), event(21, "audit.query", 4)];
    assert_eq!(store.append_audit_events(second.clone()).await.unwrap(), 5);
    assert_eq!(store.append_audit_events(Vec::new()).await.unwrap(), 5);
    let records = all(&store).await;
    let events: Vec<Event> = first.into_iter().chain(second).collect();
    assert_eq!(records.len(), 5);
    assert_eq!(records[0].prev_hash, GENESIS);
    for (i, (r, e)) in records.iter().zip(&events).enumerate() {
        assert_eq!(r.seq, i as u64 + 1);
        assert_eq!(r.line, e.line());
        assert_eq!(r.at, e.at);
        assert_eq!(r.hash, chain_hash(&r.prev_hash, r.seq, &r.line));
    }
    assert_chain(&records);
}

/// Reads page by sequence number and filter by instant (`from` included, `to` excluded).
pub async fn trail_reads_page_by_sequence_and_instant(store: Arc<DynInspectableStore>) {
    let events: Vec<Event> = (0..10).map(|i| event(i as i64 * 10, "upload", i)).collect();
    store.append_audit_events(events).await.unwrap();
    let page = store.audit_records_after(3, 4).await.unwrap();
    assert_eq!(
        page.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![4, 5, 6, 7]
    );
    assert!(store.audit_records_after(10, 5).await.unwrap().is_empty());
    let between = store
        .audit_records_between(at(20), at(60), 0, 100)
        .await
        .unwrap();
    assert_eq!(
        between.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![3, 4, 5, 6],
        "from included, to excluded"
    );
    let paged = store
        .audit_records_between(at(20), at(60), 4, 1)
        .await
        .unwrap();
    assert_eq!(paged.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![5]);
}

/// Concurrent appends (as by several instances) keep one linear chain: every event stored
/// once, numbers dense, each record linked to the one before.
pub async fn trail_concurrent_appends_stay_linear(store: Arc<DynInspectableStore>) {
    let mut tasks = Vec::new();
    for t in 0..6u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..10u64 {
                let n = 1 + (i % 3);
                let events = (0..n)
                    .map(|k| event(5, "upload", t * 1000 + i * 10 + k))
                    .collect();
                store.append_audit_events(events).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let records = all(&store).await;
    let expected: u64 = 6 * (0..10u64).map(|i| 1 + i % 3).sum::<u64>();
    assert_eq!(records.len() as u64, expected);
    assert_chain(&records);
    let mut seen: Vec<&str> = records.iter().map(|r| r.line.as_str()).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), records.len(), "every event stored once");
}

/// Retention deletes the records before the cutoff; the rest still verifies, and numbering and
/// chaining continue after the last record ever appended, also when none is left.
pub async fn trail_retention_keeps_the_chain_going(store: Arc<DynInspectableStore>) {
    let events: Vec<Event> = (0..4).map(|i| event(i as i64 * 100, "upload", i)).collect();
    store.append_audit_events(events).await.unwrap();
    assert_eq!(store.delete_audit_records_before(at(150)).await.unwrap(), 2);
    let kept = all(&store).await;
    assert_eq!(kept.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![3, 4]);
    assert_chain(&kept);
    assert_eq!(
        store.delete_audit_records_before(at(1000)).await.unwrap(),
        2
    );
    assert!(all(&store).await.is_empty());
    let last = kept[1].clone();
    assert_eq!(
        store
            .append_audit_events(vec![event(2000, "retention.run", 9)])
            .await
            .unwrap(),
        5
    );
    let next = all(&store).await;
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].seq, 5);
    assert_eq!(
        next[0].prev_hash, last.hash,
        "links to the deleted record 4"
    );
}

/// A push sink's cursor moves only for the lease holder and only forward; another owner takes
/// the lease once it expired, starting from the cursor.
pub async fn trail_push_cursor_is_leased(store: Arc<DynInspectableStore>) {
    let (t0, t1, t2) = (at(0), at(30), at(60));
    assert_eq!(
        store.claim_audit_push("syslog", "a", t0, t1).await.unwrap(),
        Some(0)
    );
    assert_eq!(
        store
            .claim_audit_push("syslog", "b", at(10), at(40))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .claim_audit_push("http", "b", at(10), at(40))
            .await
            .unwrap(),
        Some(0),
        "sinks are independent"
    );
    assert!(store.ack_audit_push("syslog", "a", 3, t1).await.unwrap());
    assert!(
        !store.ack_audit_push("syslog", "b", 7, t1).await.unwrap(),
        "not b's lease"
    );
    assert!(store.ack_audit_push("syslog", "a", 2, t1).await.unwrap());
    assert_eq!(
        store
            .claim_audit_push("syslog", "a", at(20), t1)
            .await
            .unwrap(),
        Some(3),
        "never backwards"
    );
    // a's lease runs out at t1.
    assert_eq!(
        store
            .claim_audit_push("syslog", "b", at(31), t2)
            .await
            .unwrap(),
        Some(3)
    );
    assert!(
        !store.ack_audit_push("syslog", "a", 5, t2).await.unwrap(),
        "a lost the lease"
    );
    assert!(store.ack_audit_push("syslog", "b", 5, t2).await.unwrap());
    assert_eq!(
        store
            .claim_audit_push("syslog", "b", at(40), t2)
            .await
            .unwrap(),
        Some(5)
    );
}

/// A reopened store continues the chain and keeps the push cursors.
pub async fn reopened_store_continues_the_audit_chain(factory: &dyn StoreFactory) {
    let store = factory.open().await;
    store
        .append_audit_events(vec![event(1, "upload", 1), event(2, "upload", 2)])
        .await
        .unwrap();
    assert_eq!(
        store
            .claim_audit_push("syslog", "a", at(0), at(30))
            .await
            .unwrap(),
        Some(0)
    );
    assert!(
        store
            .ack_audit_push("syslog", "a", 2, at(30))
            .await
            .unwrap()
    );
    drop(store);
    let store = factory.open().await;
    assert_eq!(
        store
            .append_audit_events(vec![event(3, "upload", 3)])
            .await
            .unwrap(),
        3
    );
    assert_chain(&all(&store).await);
    assert_eq!(
        store
            .claim_audit_push("syslog", "a", at(1), at(30))
            .await
            .unwrap(),
        Some(2)
    );
}
