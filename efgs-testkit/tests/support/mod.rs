//! Shared by the HTTP test files: the server launcher (efgs-server's API served by its own
//! connection handling), the per-backend test macro, PostgreSQL schemas, and raw HTTP and TLS
//! helpers.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;

use efgs_core::DiagnosisKey;
use efgs_core::store::{DynStore, RetentionStore as _};
use efgs_server::api::{AppState, ClientAuth, api};
use efgs_server::net::{NetLimits, serve_connections, server_tls_config_from_der};
use efgs_testkit::federation::{
    BoxError, Federation, FederationBuilder, ServeGateway, ServerAuth, ServerSetup,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// efgs-server's API under its own connection handling (`net::serve_connections`, as
/// `serve_with` uses it), so every request carries its `ConnectionInfo`.
pub fn server() -> impl ServeGateway {
    |setup: ServerSetup| async move {
        let (auth, tls) = match setup.auth {
            ServerAuth::ProxyHeaders { trusted } => (ClientAuth::ProxyHeaders { trusted }, None),
            ServerAuth::MutualTls {
                cert_chain_der,
                key_der,
            } => {
                let chain = cert_chain_der
                    .into_iter()
                    .map(CertificateDer::from)
                    .collect();
                let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der));
                let tls = server_tls_config_from_der(chain, key, None)
                    .map_err(|e| Box::new(e) as BoxError)?;
                (ClientAuth::MutualTls, Some(tls))
            }
        };
        let state = AppState {
            gateway: setup.gateway,
            auth,
            body_limit: setup.body_limit,
            clock: setup.clock,
        };
        serve_connections(
            setup.listener,
            tls,
            api(state),
            &NetLimits::default(),
            setup.shutdown,
        )
        .await;
        Ok::<(), BoxError>(())
    }
}

// ---------------------------------------------------------------------------------------------
// Storage backends
// ---------------------------------------------------------------------------------------------

/// The variable naming the PostgreSQL test database.
pub const URL_VAR: &str = "EFGS_TEST_DATABASE_URL";

fn flag(name: &str) -> bool {
    match std::env::var(name) {
        Ok(v) => !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"),
        Err(_) => false,
    }
}

/// Whether PostgreSQL tests must run (and fail rather than skip).
pub fn postgres_required() -> bool {
    flag("CI") || flag("EFGS_REQUIRE_POSTGRES")
}

/// Which store a test federation uses.
#[derive(Clone, Debug)]
pub enum Backend {
    /// A fresh memory store.
    Memory,
    /// A fresh schema on the PostgreSQL test database.
    Postgres {
        /// The database URL.
        url: String,
        /// The schema.
        schema: String,
    },
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).unwrap();
    hex::encode(b)
}

async fn raw_pg(url: &str) -> Result<tokio_postgres::Client, String> {
    let mut cfg: tokio_postgres::Config = url.parse().map_err(|e| format!("bad {URL_VAR}: {e}"))?;
    cfg.connect_timeout(std::time::Duration::from_secs(5));
    let (client, conn) = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        cfg.connect(tokio_postgres::NoTls),
    )
    .await
    .map_err(|_| "connecting timed out".to_owned())?
    .map_err(|e| format!("cannot connect: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

fn skip_or_fail(test: &str, why: &str) -> Option<Backend> {
    if postgres_required() {
        panic!(
            "{test}: PostgreSQL is required (CI or EFGS_REQUIRE_POSTGRES is set) but {why}; \
             start a cluster with `eval \"$(scripts/pg-test-cluster.sh start)\"`"
        );
    }
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED PostgreSQL HTTP tests ({test}, ...): {why}; they pass without running. \
             Set {URL_VAR} (e.g. `eval \"$(scripts/pg-test-cluster.sh start)\"`)."
        );
    });
    None
}

impl Backend {
    /// A fresh schema on the test database, or `None` (after saying why) when PostgreSQL is
    /// not configured and not required.
    pub async fn postgres(test: &str) -> Option<Backend> {
        let url = match std::env::var(URL_VAR) {
            Ok(u) if !u.is_empty() => u,
            _ => return skip_or_fail(test, &format!("{URL_VAR} is not set")),
        };
        if let Err(e) = raw_pg(&url).await {
            return skip_or_fail(test, &format!("the database is unreachable ({e})"));
        }
        Some(Backend::Postgres {
            url,
            schema: format!("http_{}", random_hex(8)),
        })
    }

    /// The store for this backend (PostgreSQL: connects and migrates the schema).
    pub async fn store(&self) -> Arc<DynStore> {
        match self {
            Backend::Memory => Arc::new(efgs_store_memory::MemoryStore::new()),
            Backend::Postgres { url, schema } => {
                let keys = efgs_store_postgres::EncryptionKeys::single(1, [0x42; 32]).unwrap();
                let cfg = efgs_store_postgres::PgConfig::new(url.clone(), keys)
                    .with_schema(schema.clone())
                    .with_pool_size(8);
                Arc::new(
                    efgs_store_postgres::PgStore::connect(&cfg)
                        .await
                        .unwrap_or_else(|e| panic!("connect to schema {schema}: {e:?}")),
                )
            }
        }
    }

    /// A federation builder with the server and this backend's store.
    pub async fn builder(&self) -> FederationBuilder {
        Federation::builder()
            .server(server())
            .store(self.store().await)
    }

    /// A federation of `countries` with defaults.
    pub async fn federation(&self, countries: &[&str]) -> Federation {
        self.builder()
            .await
            .countries(countries.iter().copied())
            .build()
            .await
            .unwrap()
    }

    /// Drops the schema (PostgreSQL).
    pub async fn cleanup(&self) {
        if let Backend::Postgres { url, schema } = self {
            if flag("EFGS_TEST_KEEP_SCHEMA") {
                eprintln!("keeping schema {schema}");
                return;
            }
            if let Ok(c) = raw_pg(url).await {
                let _ = c
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .await;
            }
        }
    }
}

/// One test per behaviour and backend: `memory::<name>` and `postgres::<name>`. Each name is
/// an `async fn <name>(backend: Backend)` of the including file.
macro_rules! http_tests {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::support::Backend::Memory).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(backend) =
                        crate::support::Backend::postgres(stringify!($name)).await
                    else {
                        return;
                    };
                    super::$name(backend.clone()).await;
                    backend.cleanup().await;
                }
            )*
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The number of stored keys.
pub async fn stored_keys(fed: &Federation) -> u64 {
    fed.store().key_counts().await.unwrap().stored
}

/// A raw HTTP/1.1 exchange on a fresh connection (`Connection: close` is added): for header
/// spellings a client library would normalise. Returns status, header block and body.
pub async fn raw_http(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = head.trim_end_matches("\r\n").to_owned();
    req.push_str(&format!(
        "\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    s.write_all(req.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    (status, head, buf[split + 4..].to_vec())
}

/// Keys sorted by their bytes (for set comparisons).
pub fn sorted(mut keys: Vec<DiagnosisKey>) -> Vec<DiagnosisKey> {
    keys.sort_by(|a, b| a.key_data.cmp(&b.key_data));
    keys
}

/// The 207 body as (201, 409, 500) index lists.
pub fn multi_status_lists(body: &serde_json::Value) -> (Vec<u64>, Vec<u64>, Vec<u64>) {
    let list = |k: &str| -> Vec<u64> {
        body.get(k)
            .and_then(|v| v.as_array())
            .unwrap_or_else(|| panic!("207 body without \"{k}\": {body}"))
            .iter()
            .map(|i| i.as_u64().unwrap())
            .collect()
    };
    (list("201"), list("409"), list("500"))
}

/// The download batch tag `yyyyMMdd-n` of `date`.
pub fn tag(date: time::Date, n: u32) -> String {
    efgs_core::tag::BatchTag { date, seq: n }.to_string()
}
