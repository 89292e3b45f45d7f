//! The storage conformance suite against PostgreSQL: `postgres::<behaviour>`.
//!
//! Each test gets a fresh schema on `EFGS_TEST_DATABASE_URL` (see `support`); every `open` of
//! its factory connects a new pool to that schema, as a restarted server would. Without the
//! variable the tests print why and pass without running, unless `CI` or
//! `EFGS_REQUIRE_POSTGRES` is set, in which case they fail.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use efgs_core::store::DynInspectableStore;
use efgs_testkit::conformance::StoreFactory;

/// Opens stores on one test's schema.
struct PgFactory {
    db: support::TestDb,
}

#[async_trait::async_trait]
impl StoreFactory for PgFactory {
    async fn open(&self) -> Arc<DynInspectableStore> {
        Arc::new(self.db.store().await)
    }
}

async fn factory() -> Option<PgFactory> {
    let db = support::database("postgres conformance").await?;
    Some(PgFactory { db })
}

efgs_testkit::conformance_tests!(postgres, factory());
