//! The storage conformance suite against the memory store: `memory::<behaviour>`.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use efgs_core::store::DynInspectableStore;
use efgs_store_memory::MemoryStore;
use efgs_testkit::conformance::StoreFactory;

/// One memory store per test. A memory store cannot outlive its handle, so "reopening" it
/// hands out the same store again.
#[derive(Default)]
struct MemoryFactory {
    store: Arc<MemoryStore>,
}

#[async_trait::async_trait]
impl StoreFactory for MemoryFactory {
    async fn open(&self) -> Arc<DynInspectableStore> {
        self.store.clone()
    }
}

efgs_testkit::conformance_tests!(memory, async { Some(MemoryFactory::default()) });
