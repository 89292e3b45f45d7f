//! Shared by the HTTP test files: the per-backend test macro (each federation serves
//! efgs-server through its composition root), PostgreSQL schemas, and raw HTTP and TLS
//! helpers.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;

use efgs_core::DiagnosisKey;
use efgs_core::store::StoreInspect as _;
use efgs_testkit::federation::{Federation, FederationBuilder, PostgresSchema, TEST_DATABASE_URL};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

pub use efgs_core::BoxError;

pub mod attack;

// ---------------------------------------------------------------------------------------------
// Storage backends
// ---------------------------------------------------------------------------------------------

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
    Postgres(PostgresSchema),
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
             Set {TEST_DATABASE_URL} (e.g. `eval \"$(scripts/pg-test-cluster.sh start)\"`)."
        );
    });
    None
}

impl Backend {
    /// A fresh schema on the test database, or `None` (after saying why) when PostgreSQL is
    /// not configured and not required.
    pub async fn postgres(test: &str) -> Option<Backend> {
        match PostgresSchema::from_env().await {
            Ok(Some(schema)) => Some(Backend::Postgres(schema)),
            Ok(None) => skip_or_fail(test, &format!("{TEST_DATABASE_URL} is not set")),
            Err(e) => skip_or_fail(test, &format!("the database is unusable ({e})")),
        }
    }

    /// A federation builder on this backend's store.
    pub async fn builder(&self) -> FederationBuilder {
        let b = Federation::builder();
        match self {
            Backend::Memory => b,
            Backend::Postgres(schema) => b.postgres(schema),
        }
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

    /// Drops the schema (PostgreSQL), unless `EFGS_TEST_KEEP_SCHEMA` is set.
    pub async fn cleanup(&self) {
        if let Backend::Postgres(schema) = self {
            if flag("EFGS_TEST_KEEP_SCHEMA") {
                eprintln!("keeping schema {}", schema.schema());
                return;
            }
            let _ = schema.drop_schema().await;
        }
    }
}

/// One test per behaviour and backend: `memory::<name>` and `postgres::<name>`. Each name is
/// an `async fn <name>(backend: Backend)` of the including file.
#[allow(unused_macros)]
macro_rules! http_tests {
    ($($(#[$attr:meta])* $name:ident),* $(,)?) => {
        mod memory {
            $(
                $(#[$attr])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::support::Backend::Memory).await;
                }
            )*
        }
        mod postgres {
            $(
                $(#[$attr])*
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

// ---------------------------------------------------------------------------------------------
// TLS client (mutual TLS mode)
// ---------------------------------------------------------------------------------------------

/// A response read by [`TlsClient::request`].
#[derive(Debug)]
pub struct TlsResponse {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: hyper::HeaderMap,
    /// Body.
    pub body: Vec<u8>,
}

impl TlsResponse {
    /// A header value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// An HTTP/1.1 client over rustls (ring) trusting one CA, optionally presenting a client
/// certificate (DER certificate and PKCS#8 DER key).
#[derive(Clone)]
pub struct TlsClient {
    config: Arc<rustls::ClientConfig>,
}

impl TlsClient {
    /// A client trusting `ca_der`, presenting `client` if given.
    pub fn new(ca_der: &[u8], client: Option<(&[u8], &[u8])>) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(ca_der.to_vec())).unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        let config = match client {
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    vec![CertificateDer::from(cert.to_vec())],
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.to_vec())),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        TlsClient {
            config: Arc::new(config),
        }
    }

    /// One request on a fresh connection to `addr` (server name `localhost`).
    pub async fn request(
        &self,
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<TlsResponse, BoxError> {
        use http_body_util::BodyExt as _;
        let tcp = TcpStream::connect(addr).await?;
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(&self.config));
        let name = rustls::pki_types::ServerName::try_from("localhost")?.to_owned();
        let tls = connector.connect(name, tcp).await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(http_body_util::Full::new(hyper::body::Bytes::from(body)))?;
        let res = sender.send_request(req).await?;
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await?.to_bytes().to_vec();
        Ok(TlsResponse {
            status,
            headers,
            body,
        })
    }
}

/// Every audit-trail record stored in `store`, in order.
pub async fn stored(
    store: &efgs_core::store::DynInspectableStore,
) -> Vec<efgs_core::store::TrailRecord> {
    store.audit_records_after(0, usize::MAX).await.unwrap()
}

/// Fails unless `records` form one unbroken hash chain.
pub fn assert_chain(records: &[efgs_core::store::TrailRecord]) {
    let mut v = efgs_core::trail::ChainVerifier::new();
    for r in records {
        v.push(r).unwrap_or_else(|b| panic!("chain broken: {b}"));
    }
}
