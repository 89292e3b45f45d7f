//! A federation on one machine: a throw-away PKI, a store holding its trust list, a
//! [`Gateway`], the real HTTP server on `127.0.0.1:0`, and one [`NationalBackend`] per
//! country.
//!
//! ```ignore
//! let fed = Federation::builder()
//!     .server(my_server)            // how to serve the gateway over HTTP, see ServeGateway
//!     .countries(["DE", "FR", "NL"])
//!     .build()
//!     .await?;
//! fed["DE"].upload(&fed["DE"].keys(10), "tag-1", BodyFormat::Protobuf).await?;
//! fed.run_batching_now().await?;
//! let batches = fed["FR"].download_all(fed.today()).await?;
//! ```
//!
//! **Why the server comes in as a parameter.** efgs-server depends on this crate (its `demo`
//! subcommand runs [`crate::demo`]), so this crate cannot depend on efgs-server. The server
//! side is therefore given as a [`ServeGateway`]: any `Fn(ServerSetup) -> impl Future` that
//! builds efgs-server's `AppState` from the [`ServerSetup`] and serves `api(state)` with the
//! same connection handling as the binary (so every request carries its `ConnectionInfo`).
//!
//! The store is a fresh `MemoryStore` unless one is given; [`PostgresSchema`] gives a fresh
//! schema on the PostgreSQL database named by `EFGS_TEST_DATABASE_URL`
//! ([`FederationBuilder::postgres`]).
//!
//! The clock is a [`TestClock`] shared by the server (`AppState.clock`), the batching hook and
//! the national backends (signing time, key validity), so tests can cross midnight.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use efgs_core::callback_url::IpCidr;
use efgs_core::canonical::DuplicateHasher;
use efgs_core::cert::Thumbprint;
use efgs_core::gateway::{Gateway, GatewayPolicy};
use efgs_core::store::{CreatedBatch, DynInspectableStore, StoreError};
use efgs_store_memory::MemoryStore;
use time::{Date, Duration, OffsetDateTime};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::national::{Identity, NationalBackend, NationalError};
use crate::pki::{GeneratedCert, Pki, PkiError, trust_entry};

/// The instant source shared by server, batching and backends (the same shape as
/// efgs-server's `api::Clock`).
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// A boxed error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

// ---------------------------------------------------------------------------------------------
// Clock
// ---------------------------------------------------------------------------------------------

/// A controllable clock: frozen at an instant that tests set and advance, or following the
/// system time (the demo).
#[derive(Clone, Debug)]
pub struct TestClock {
    // None: system time.
    inner: Arc<Mutex<Option<OffsetDateTime>>>,
}

impl TestClock {
    /// A clock frozen at `t`.
    pub fn frozen(t: OffsetDateTime) -> Self {
        TestClock {
            inner: Arc::new(Mutex::new(Some(t))),
        }
    }

    /// A clock following the system time (until [`Self::set`] or [`Self::advance`]).
    pub fn system() -> Self {
        TestClock {
            inner: Arc::new(Mutex::new(None)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<OffsetDateTime>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current instant.
    pub fn now(&self) -> OffsetDateTime {
        self.lock().unwrap_or_else(OffsetDateTime::now_utc)
    }

    /// Freezes the clock at `t`.
    pub fn set(&self, t: OffsetDateTime) {
        *self.lock() = Some(t);
    }

    /// Moves the clock by `d` (freezing a system clock at now + `d`); returns the new time.
    pub fn advance(&self, d: Duration) -> OffsetDateTime {
        let mut g = self.lock();
        let t = g.unwrap_or_else(OffsetDateTime::now_utc) + d;
        *g = Some(t);
        t
    }

    /// The UTC date now.
    pub fn today(&self) -> Date {
        self.now().to_offset(time::UtcOffset::UTC).date()
    }

    /// As the server's clock function.
    pub fn as_fn(&self) -> Clock {
        let c = self.clone();
        Arc::new(move || c.now())
    }
}

// ---------------------------------------------------------------------------------------------
// Serving
// ---------------------------------------------------------------------------------------------

/// How the served gateway authenticates callers.
#[derive(Clone)]
pub enum ServerAuth {
    /// Identity headers from a TLS-terminating proxy, honoured only from `trusted`
    /// (efgs-server `ClientAuth::ProxyHeaders`).
    ProxyHeaders {
        /// The proxies' networks.
        trusted: Vec<IpCidr>,
    },
    /// The server terminates TLS and requires client certificates (efgs-server
    /// `ClientAuth::MutualTls`), with this server identity; any client certificate passes
    /// the handshake and is then looked up on the trust list.
    MutualTls {
        /// The server certificate chain (DER, leaf first).
        cert_chain_der: Vec<Vec<u8>>,
        /// The server's private key (PKCS#8 DER).
        key_der: Vec<u8>,
    },
}

impl std::fmt::Debug for ServerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerAuth::ProxyHeaders { trusted } => f
                .debug_struct("ProxyHeaders")
                .field("trusted", trusted)
                .finish(),
            ServerAuth::MutualTls { cert_chain_der, .. } => f
                .debug_struct("MutualTls")
                .field("certificates", &cert_chain_der.len())
                .field("key", &"<redacted>")
                .finish(),
        }
    }
}

/// Everything a [`ServeGateway`] needs to serve one federation's gateway.
pub struct ServerSetup {
    /// The gateway (efgs-server `AppState.gateway`).
    pub gateway: Gateway,
    /// The clock (`AppState.clock`).
    pub clock: Clock,
    /// Authentication (`AppState.auth`, and TLS for mutual TLS).
    pub auth: ServerAuth,
    /// Request body limit in bytes (`AppState.body_limit`).
    pub body_limit: u64,
    /// The bound listener to serve on.
    pub listener: TcpListener,
    /// Completes when the server should shut down gracefully.
    pub shutdown: BoxFuture<()>,
}

impl std::fmt::Debug for ServerSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSetup")
            .field("auth", &self.auth)
            .field("body_limit", &self.body_limit)
            .field("listener", &self.listener.local_addr().ok())
            .finish_non_exhaustive()
    }
}

/// Serves a gateway over HTTP until the setup's shutdown future completes. Implemented for
/// every `Fn(ServerSetup) -> impl Future<Output = Result<(), BoxError>>`.
pub trait ServeGateway: Send + Sync + 'static {
    /// Serves `setup.gateway` on `setup.listener`.
    fn serve(&self, setup: ServerSetup) -> BoxFuture<Result<(), BoxError>>;
}

impl<F, Fut> ServeGateway for F
where
    F: Fn(ServerSetup) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    fn serve(&self, setup: ServerSetup) -> BoxFuture<Result<(), BoxError>> {
        Box::pin(self(setup))
    }
}

// ---------------------------------------------------------------------------------------------
// Builder
// ---------------------------------------------------------------------------------------------

/// Why a federation could not be built or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FederationError {
    /// No [`ServeGateway`] was given.
    #[error("no server given: call FederationBuilder::server")]
    NoServer,
    /// The PKI could not be generated.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The store refused the trust list.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The listen address could not be bound.
    #[error("bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A national backend could not be set up.
    #[error(transparent)]
    National(#[from] NationalError),
    /// The server failed.
    #[error("server: {0}")]
    Server(BoxError),
    /// The server task panicked or was cancelled.
    #[error("server task: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// The PostgreSQL test database could not be used.
    #[error("PostgreSQL: {0}")]
    Postgres(String),
}

impl FederationError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            FederationError::NoServer => "federation-no-server",
            FederationError::Pki(e) => e.code(),
            FederationError::Store(e) => e.code(),
            FederationError::Bind { .. } => "federation-bind",
            FederationError::National(e) => e.code(),
            FederationError::Server(_) => "federation-server",
            FederationError::Join(_) => "federation-join",
            FederationError::Postgres(_) => "federation-postgres",
        }
    }
}

/// How the national backends present their identity in proxy-header mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BackendIdentity {
    /// `X-SSL-Client-SHA256` (hex) and `X-SSL-Client-DN`.
    #[default]
    Headers,
    /// `X-SSL-Client-Cert` (URL-encoded PEM).
    CertHeader,
}

/// The policy federations use unless told otherwise: the production defaults, except that a
/// batch is cut as soon as anything is pending (batching interval 0), so
/// [`Federation::run_batching`] batches every stored upload.
pub fn default_policy() -> GatewayPolicy {
    let mut p = GatewayPolicy::default();
    p.batching.interval = Duration::ZERO;
    p
}

/// Loopback, IPv4 and IPv6: the default trusted proxies.
pub fn loopback() -> Vec<IpCidr> {
    ["127.0.0.0/8", "::1/128"]
        .iter()
        .filter_map(|c| IpCidr::parse(c).ok())
        .collect()
}

/// Builds a [`Federation`]; see [`Federation::builder`].
#[must_use = "a builder does nothing until built"]
pub struct FederationBuilder {
    countries: Vec<String>,
    clock: Option<TestClock>,
    policy: GatewayPolicy,
    mutual_tls: bool,
    trusted: Vec<IpCidr>,
    store: Option<Arc<DynInspectableStore>>,
    bind: SocketAddr,
    body_limit: u64,
    server: Option<Arc<dyn ServeGateway>>,
    identity: BackendIdentity,
    duplicate_secret: Vec<u8>,
}

impl std::fmt::Debug for FederationBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FederationBuilder")
            .field("countries", &self.countries)
            .field("mutual_tls", &self.mutual_tls)
            .field("bind", &self.bind)
            .finish_non_exhaustive()
    }
}

impl Default for FederationBuilder {
    fn default() -> Self {
        FederationBuilder {
            countries: Vec::new(),
            clock: None,
            policy: default_policy(),
            mutual_tls: false,
            trusted: loopback(),
            store: None,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            body_limit: 16 * 1024 * 1024,
            server: None,
            identity: BackendIdentity::Headers,
            duplicate_secret: b"efgs-testkit duplicate hash secret".to_vec(),
        }
    }
}

impl FederationBuilder {
    /// The server implementation (required).
    pub fn server(mut self, server: impl ServeGateway) -> Self {
        self.server = Some(Arc::new(server));
        self
    }

    /// The server implementation, shared.
    pub fn server_arc(mut self, server: Arc<dyn ServeGateway>) -> Self {
        self.server = Some(server);
        self
    }

    /// Adds these countries (two-letter codes).
    pub fn countries<I, S>(mut self, countries: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.countries.extend(countries.into_iter().map(Into::into));
        self
    }

    /// Adds one country.
    pub fn country(mut self, country: impl Into<String>) -> Self {
        self.countries.push(country.into());
        self
    }

    /// The clock (default: frozen at the current system time, whole seconds).
    pub fn clock(mut self, clock: TestClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// A clock frozen at `t`.
    pub fn start_at(self, t: OffsetDateTime) -> Self {
        self.clock(TestClock::frozen(t))
    }

    /// The gateway policy (default: [`default_policy`]).
    pub fn policy(mut self, policy: GatewayPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Changes the gateway policy in place.
    pub fn with_policy(mut self, f: impl FnOnce(&mut GatewayPolicy)) -> Self {
        f(&mut self.policy);
        self
    }

    /// The proxies whose identity headers are honoured (default: loopback).
    pub fn trusted_proxies(mut self, trusted: Vec<IpCidr>) -> Self {
        self.trusted = trusted;
        self
    }

    /// Serve with TLS and required client certificates instead of proxy headers.
    pub fn mutual_tls(mut self) -> Self {
        self.mutual_tls = true;
        self
    }

    /// The store (default: a fresh [`MemoryStore`]).
    pub fn store(mut self, store: Arc<DynInspectableStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// A store on `schema` (PostgreSQL) instead of the memory store.
    pub async fn postgres(self, schema: &PostgresSchema) -> Result<Self, FederationError> {
        Ok(self.store(schema.store().await?))
    }

    /// The listen address (default `127.0.0.1:0`).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// The request body limit (default 16 MiB).
    pub fn body_limit(mut self, bytes: u64) -> Self {
        self.body_limit = bytes;
        self
    }

    /// How backends present their identity in proxy-header mode.
    pub fn backend_identity(mut self, identity: BackendIdentity) -> Self {
        self.identity = identity;
        self
    }

    /// Builds the PKI, fills the store's trust list, starts the server and the backends.
    pub async fn build(self) -> Result<Federation, FederationError> {
        let server = self.server.ok_or(FederationError::NoServer)?;
        let clock = self.clock.unwrap_or_else(|| {
            let now = OffsetDateTime::now_utc();
            TestClock::frozen(now.replace_nanosecond(0).unwrap_or(now))
        });
        let start = clock.now();
        let pki = Pki::generate(&self.countries, start)?;
        let store: Arc<DynInspectableStore> = match self.store {
            Some(s) => s,
            None => Arc::new(MemoryStore::new()),
        };
        for entry in pki.entries() {
            store.upsert_trust_entry(trust_entry(entry, start)).await?;
        }
        let gateway = Gateway::new(
            store.clone(),
            pki.anchors()?,
            DuplicateHasher::new(&self.duplicate_secret),
            self.policy,
        );
        let listener =
            TcpListener::bind(self.bind)
                .await
                .map_err(|source| FederationError::Bind {
                    addr: self.bind,
                    source,
                })?;
        let addr = listener
            .local_addr()
            .map_err(|source| FederationError::Bind {
                addr: self.bind,
                source,
            })?;
        let (auth, tls) = if self.mutual_tls {
            let (ca, leaf) = pki.tls_server()?;
            let auth = ServerAuth::MutualTls {
                cert_chain_der: vec![leaf.cert_der.clone()],
                key_der: leaf.key_der.clone(),
            };
            (auth, Some(TlsServer { ca, leaf }))
        } else {
            (
                ServerAuth::ProxyHeaders {
                    trusted: self.trusted,
                },
                None,
            )
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let base_url = format!("{scheme}://{addr}");
        let (stop, stopped) = oneshot::channel::<()>();
        let setup = ServerSetup {
            gateway: gateway.clone(),
            clock: clock.as_fn(),
            auth,
            body_limit: self.body_limit,
            listener,
            shutdown: Box::pin(async move {
                // A dropped sender also stops the server.
                let _ = stopped.await;
            }),
        };
        let task = tokio::spawn(server.serve(setup));

        let mut backends = BTreeMap::new();
        for (country, creds) in &pki.countries {
            let identity = match (self.mutual_tls, self.identity) {
                (true, _) => Identity::None,
                (false, BackendIdentity::Headers) => Identity::headers(creds),
                (false, BackendIdentity::CertHeader) => Identity::cert_header(creds),
            };
            let backend = NationalBackend::new(&base_url, creds, clock.as_fn())?
                .with_identity(identity)
                .with_visited_pool(pki.countries.keys().cloned());
            backends.insert(country.clone(), backend);
        }
        Ok(Federation {
            base_url,
            addr,
            pki,
            gateway,
            store,
            clock,
            backends,
            tls,
            stop: Some(stop),
            task: Some(task),
        })
    }
}

/// The gateway's TLS identity in mutual-TLS mode.
#[derive(Clone, Debug)]
pub struct TlsServer {
    /// The CA clients must trust.
    pub ca: GeneratedCert,
    /// The server certificate (for `localhost` and `127.0.0.1`).
    pub leaf: GeneratedCert,
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------------------------

/// The variable naming the PostgreSQL database for tests and federations
/// (`postgres://user@host:port/db`).
pub const TEST_DATABASE_URL: &str = "EFGS_TEST_DATABASE_URL";

/// A fresh, uniquely named schema on a PostgreSQL database, for one federation (or test).
/// The store creates and migrates it on first connect; [`Self::drop_schema`] removes it.
#[derive(Clone)]
pub struct PostgresSchema {
    url: String,
    schema: String,
}

impl std::fmt::Debug for PostgresSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password.
        f.debug_struct("PostgresSchema")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

async fn pg_client(url: &str) -> Result<tokio_postgres::Client, FederationError> {
    let err = |e: String| FederationError::Postgres(e);
    let mut cfg: tokio_postgres::Config = url
        .parse()
        .map_err(|e| err(format!("invalid {TEST_DATABASE_URL}: {e}")))?;
    cfg.connect_timeout(std::time::Duration::from_secs(5));
    let (client, conn) = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        cfg.connect(tokio_postgres::NoTls),
    )
    .await
    .map_err(|_| err("connecting timed out".to_owned()))?
    .map_err(|e| err(format!("cannot connect: {e}")))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

impl PostgresSchema {
    /// A new schema name on `url`, after checking that the database answers.
    pub async fn new(url: impl Into<String>) -> Result<Self, FederationError> {
        let url = url.into();
        pg_client(&url).await?;
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).map_err(|e| FederationError::Postgres(e.to_string()))?;
        Ok(PostgresSchema {
            url,
            schema: format!("fed_{}", hex::encode(suffix)),
        })
    }

    /// [`Self::new`] on the database named by [`TEST_DATABASE_URL`]; `None` when the variable
    /// is unset or empty.
    pub async fn from_env() -> Result<Option<Self>, FederationError> {
        match std::env::var(TEST_DATABASE_URL) {
            Ok(url) if !url.is_empty() => Ok(Some(Self::new(url).await?)),
            _ => Ok(None),
        }
    }

    /// The schema name.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// A store on this schema (a new pool; creates and migrates the schema). The key payload
    /// is encrypted under a fixed test key.
    pub async fn store(&self) -> Result<Arc<DynInspectableStore>, FederationError> {
        let keys = efgs_store_postgres::EncryptionKeys::single(1, [0x42; 32])
            .map_err(|e| FederationError::Postgres(e.to_string()))?;
        let cfg = efgs_store_postgres::PgConfig::new(self.url.clone(), keys)
            .with_schema(self.schema.clone())
            .with_pool_size(8);
        let store = efgs_store_postgres::PgStore::connect(&cfg).await?;
        Ok(Arc::new(store))
    }

    /// Drops the schema and everything in it.
    pub async fn drop_schema(&self) -> Result<(), FederationError> {
        pg_client(&self.url)
            .await?
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema))
            .await
            .map_err(|e| FederationError::Postgres(e.to_string()))
    }
}

// ---------------------------------------------------------------------------------------------
// Federation
// ---------------------------------------------------------------------------------------------

/// A running federation; see the [module documentation](self). Dropping it stops the server.
pub struct Federation {
    base_url: String,
    addr: SocketAddr,
    pki: Pki,
    gateway: Gateway,
    store: Arc<DynInspectableStore>,
    clock: TestClock,
    backends: BTreeMap<String, NationalBackend>,
    tls: Option<TlsServer>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), BoxError>>>,
}

impl std::fmt::Debug for Federation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Federation")
            .field("base_url", &self.base_url)
            .field("countries", &self.backends.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Federation {
    /// A builder.
    pub fn builder() -> FederationBuilder {
        FederationBuilder::default()
    }

    /// The gateway's base URL (`http://127.0.0.1:<port>`, or `https://` with mutual TLS).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The address the gateway listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The PKI.
    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// The gateway (the same one the server uses).
    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// The store.
    pub fn store(&self) -> &Arc<DynInspectableStore> {
        &self.store
    }

    /// The clock shared by server, batching and backends.
    pub fn clock(&self) -> &TestClock {
        &self.clock
    }

    /// The current time of the federation.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// Today's UTC date on the federation clock.
    pub fn today(&self) -> Date {
        self.clock.today()
    }

    /// The TLS server identity (mutual-TLS mode only).
    pub fn tls(&self) -> Option<&TlsServer> {
        self.tls.as_ref()
    }

    /// The backend of `country`.
    pub fn backend(&self, country: &str) -> Option<&NationalBackend> {
        self.backends.get(country)
    }

    /// Every backend, by country code.
    pub fn backends(&self) -> impl Iterator<Item = &NationalBackend> {
        self.backends.values()
    }

    /// Replaces the backend of its country (e.g. with a TLS client).
    pub fn set_backend(&mut self, backend: NationalBackend) {
        self.backends.insert(backend.country().to_owned(), backend);
    }

    /// The country codes.
    pub fn countries(&self) -> impl Iterator<Item = &str> {
        self.backends.keys().map(String::as_str)
    }

    /// Cuts every download batch due at `now` (the server's batching job).
    pub async fn run_batching(
        &self,
        now: OffsetDateTime,
    ) -> Result<Vec<CreatedBatch>, efgs_core::Error> {
        self.gateway.batch_all_due(now, usize::MAX).await
    }

    /// [`Self::run_batching`] at the clock's time.
    pub async fn run_batching_now(&self) -> Result<Vec<CreatedBatch>, efgs_core::Error> {
        self.run_batching(self.clock.now()).await
    }

    /// Revokes the trust-list entry with this thumbprint (takes effect on the next request).
    pub async fn revoke(&self, thumbprint: &Thumbprint) -> Result<(), StoreError> {
        self.store.revoke_trust_entry(thumbprint).await
    }

    /// Stops the server gracefully and waits for it.
    pub async fn shutdown(mut self) -> Result<(), FederationError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await?.map_err(FederationError::Server),
            None => Ok(()),
        }
    }
}

impl std::ops::Index<&str> for Federation {
    type Output = NationalBackend;

    /// The backend of a country. Panics when the federation has no such country.
    fn index(&self, country: &str) -> &NationalBackend {
        match self.backends.get(country) {
            Some(b) => b,
            None => panic!("the federation has no country {country}"),
        }
    }
}

impl Drop for Federation {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
