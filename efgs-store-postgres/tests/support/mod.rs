//! Shared by the integration tests and the bench: one fresh schema per test on the database
//! named by `EFGS_TEST_DATABASE_URL`.
//!
//! Without the variable, or when the database cannot be reached, a test prints why and
//! returns early (it shows as passed) — unless `CI` or `EFGS_REQUIRE_POSTGRES` is set, in which
//! case it panics. The schema is dropped when the [`TestDb`] is dropped (set
//! `EFGS_TEST_KEEP_SCHEMA=1` to keep it for inspection).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use efgs_core::cert::Thumbprint;
use efgs_core::model::{DiagnosisKey, FormatVersion};
use efgs_core::store::{NewKey, NewUpload};
use efgs_store_postgres::{EncryptionKeys, PgConfig, PgStore};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// The variable naming the test database.
pub const URL_VAR: &str = "EFGS_TEST_DATABASE_URL";

fn flag(name: &str) -> bool {
    match std::env::var(name) {
        Ok(v) => !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"),
        Err(_) => false,
    }
}

/// Whether PostgreSQL tests must run (and fail rather than skip).
pub fn required() -> bool {
    flag("CI") || flag("EFGS_REQUIRE_POSTGRES")
}

fn skip_or_fail(test: &str, why: &str) -> Option<TestDb> {
    if required() {
        panic!(
            "{test}: PostgreSQL is required (CI or EFGS_REQUIRE_POSTGRES is set) but {why}; \
             start a cluster with `eval \"$(scripts/pg-test-cluster.sh start)\"`"
        );
    }
    // Once per test binary, and past the test harness's output capture.
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED PostgreSQL tests ({test}, ...): {why}; they pass without running. \
             Set {URL_VAR} (e.g. `eval \"$(scripts/pg-test-cluster.sh start)\"`)."
        );
    });
    None
}

/// The encryption keys the tests use: key 1 active, key 0 for older rows.
pub fn test_keys() -> EncryptionKeys {
    EncryptionKeys::new(1, [(0, [0x22; 32]), (1, [0x11; 32])]).unwrap()
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A fresh, empty schema on the test database.
#[derive(Debug)]
pub struct TestDb {
    pub url: String,
    pub schema: String,
}

/// Connects a plain client to `url` with a timeout.
pub async fn raw_client(url: &str, schema: Option<&str>) -> Result<tokio_postgres::Client, String> {
    let mut cfg: tokio_postgres::Config = url.parse().map_err(|e| format!("bad {URL_VAR}: {e}"))?;
    cfg.connect_timeout(Duration::from_secs(5));
    if let Some(s) = schema {
        cfg.options(format!("-c search_path={s}"));
    }
    let (client, conn) =
        tokio::time::timeout(Duration::from_secs(10), cfg.connect(tokio_postgres::NoTls))
            .await
            .map_err(|_| "connecting timed out".to_owned())?
            .map_err(|e| format!("cannot connect: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// A fresh schema, or `None` (after printing why) when PostgreSQL is not configured or not
/// reachable and not required.
pub async fn database(test: &str) -> Option<TestDb> {
    let url = match std::env::var(URL_VAR) {
        Ok(u) if !u.is_empty() => u,
        _ => return skip_or_fail(test, &format!("{URL_VAR} is not set")),
    };
    let client = match raw_client(&url, None).await {
        Ok(c) => c,
        Err(e) => return skip_or_fail(test, &format!("the database is unreachable ({e})")),
    };
    let schema = format!("t_{}", random_hex(8));
    if let Err(e) = client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
    {
        return skip_or_fail(test, &format!("cannot create a schema ({e})"));
    }
    Some(TestDb { url, schema })
}

impl TestDb {
    /// Store settings for this schema.
    pub fn config(&self) -> PgConfig {
        PgConfig::new(self.url.clone(), test_keys())
            .with_schema(self.schema.clone())
            .with_pool_size(8)
    }

    /// Opens a new store (new pool) on this schema.
    pub async fn store(&self) -> PgStore {
        self.store_with(self.config()).await
    }

    /// Opens a store with other settings on this schema.
    pub async fn store_with(&self, cfg: PgConfig) -> PgStore {
        PgStore::connect(&cfg)
            .await
            .unwrap_or_else(|e| panic!("connect to schema {}: {e:?}", self.schema))
    }

    /// A plain client with `search_path` set to this schema.
    pub async fn raw(&self) -> tokio_postgres::Client {
        raw_client(&self.url, Some(&self.schema)).await.unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if flag("EFGS_TEST_KEEP_SCHEMA") {
            eprintln!("keeping schema {}", self.schema);
            return;
        }
        let url = self.url.clone();
        let schema = self.schema.clone();
        // Drop runs inside the test's runtime: use a thread with its own runtime.
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(c) = raw_client(&url, None).await {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(30),
                        c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")),
                    )
                    .await;
                }
            });
        });
        let _ = handle.join();
    }
}

/// A simple deterministic key: `key_data` is SHA-256(seed, n) truncated to 16 bytes.
pub fn key(seed: u64, n: u64, origin: &str) -> DiagnosisKey {
    let d = Sha256::digest(format!("{seed}/{n}").as_bytes());
    DiagnosisKey {
        key_data: d[..16].to_vec().into(),
        rolling_start_interval_number: 2_961_792 - (n % 2016) as u32,
        rolling_period: 144,
        transmission_risk_level: (n % 9) as i32,
        visited_countries: vec!["DE".into(), "FR".into()].into(),
        origin: origin.into(),
        report_type: 1,
        days_since_onset_of_symptoms: (n % 29) as i32 - 14,
    }
}

/// The duplicate hash the tests use: SHA-256 of the protobuf encoding.
pub fn hash(k: &DiagnosisKey) -> [u8; 32] {
    use prost::Message;
    Sha256::digest(k.encode_to_vec()).into()
}

/// An upload of `keys` from `country` under `tag`.
pub fn upload(country: &str, tag: &str, keys: Vec<DiagnosisKey>, at: OffsetDateTime) -> NewUpload {
    let mut digest = Sha256::new();
    for k in &keys {
        digest.update(hash(k));
    }
    NewUpload {
        country: country.into(),
        batch_tag: tag.into(),
        batch_signature: "MIAGCSqGSIb3DQEHAqCAMIACAQE=".into(),
        uploader_thumbprint: Thumbprint::from_digest(&[0xA1; 32]),
        signing_thumbprint: Thumbprint::from_digest(&[0xB2; 32]),
        format: FormatVersion::V1_0,
        created_at: at,
        content_digest: digest.finalize().into(),
        keys: keys
            .into_iter()
            .map(|k| NewKey {
                hash: hash(&k),
                key: k,
            })
            .collect(),
    }
}
