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
//! **The real server, built the operator's way.** The federation writes its PKI to a
//! temporary directory (trust anchor, signed trust-list entries, the TLS identity in mutual-TLS
//! mode), loads [`efgs_server::Settings`] from `EFGS_*` settings naming those files, and starts
//! [`efgs_server::Server`]: the composition root `efgs-server serve` runs, including the
//! trust-list import at start. Only the clock (and, when given, the store) are injected.
//!
//! [`Federation::instance`] starts a second server from the same settings and files on the
//! same store (several instances behind a load balancer), and [`Federation::restart`] stops
//! the server and starts a new one that way (a restart, importing `trust.import_dir` again).
//!
//! The store is a fresh `MemoryStore` unless one is given; [`PostgresSchema`] gives a fresh
//! schema on the PostgreSQL database named by `EFGS_TEST_DATABASE_URL`
//! ([`FederationBuilder::postgres`]).
//!
//! The clock is a [`TestClock`] shared by the server, the batching hook and the national
//! backends (signing time, key validity), so tests can cross midnight. The server's own
//! batching and retention jobs are scheduled once a day, so tests cut batches when they say
//! ([`Federation::run_batching`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use efgs_core::callback_url::{IpCidr, Resolver};
use efgs_core::cert::Thumbprint;
use efgs_core::gateway::Gateway;
use efgs_core::model::CertificateType;
use efgs_core::store::{
    CreatedBatch, DynInspectableStore, DynStore, StoreError, TrustListStore as _,
};
use efgs_store_memory::MemoryStore;
use time::{Date, Duration, OffsetDateTime};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::harness::write_private;
use crate::national::{Identity, NationalBackend, NationalError};
use crate::pki::{GeneratedCert, Pki, PkiError};

pub use efgs_server::Clock;

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
// Builder
// ---------------------------------------------------------------------------------------------

/// Why a federation could not be built or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FederationError {
    /// The settings were refused.
    #[error("settings: {0}")]
    Settings(#[from] efgs_server::ConfigError),
    /// The federation's files could not be written.
    #[error("files: {0}")]
    Files(#[from] std::io::Error),
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
    Server(#[from] efgs_server::ServeError),
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
            FederationError::Settings(e) => e.code(),
            FederationError::Files(_) => "federation-files",
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

/// The settings federations use unless told otherwise (as `EFGS_*` variables over the
/// production defaults): a batch is cut as soon as anything is pending
/// (`batching.interval_secs = 0`), so [`Federation::run_batching`] batches every stored
/// upload, and the server's own jobs run once a day, so they never race a test.
pub const DEFAULT_SETTINGS: &[(&str, &str)] = &[
    ("batching.interval_secs", "0"),
    ("batching.check_secs", "86400"),
    ("retention.interval_secs", "86400"),
];

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
    settings: Vec<(String, String)>,
    mutual_tls: bool,
    trusted: Vec<IpCidr>,
    store: Option<Arc<DynInspectableStore>>,
    bind: SocketAddr,
    postgres: Option<PostgresSchema>,
    identity: BackendIdentity,
    duplicate_secret: Vec<u8>,
    resolver: Option<Arc<dyn Resolver>>,
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
            settings: DEFAULT_SETTINGS
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            mutual_tls: false,
            trusted: loopback(),
            store: None,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            postgres: None,
            identity: BackendIdentity::Headers,
            duplicate_secret: b"efgs-testkit duplicate hash secret".to_vec(),
            resolver: None,
        }
    }
}

impl FederationBuilder {
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

    /// Sets a server setting by its TOML key (`download.max_age_days`), as the operator
    /// would with its `EFGS_*` variable; later calls win. See [`DEFAULT_SETTINGS`].
    pub fn setting(mut self, key: &str, value: impl Into<String>) -> Self {
        self.settings.push((key.to_owned(), value.into()));
        self
    }

    /// Callback delivery to receivers on 127.0.0.1 (admitted by `callback.allow_cidrs`) with the
    /// gateway client certificate `cert` and key `key`, tasks polled every 100 ms, and test
    /// timings: attempt timeout 2 s, lease 3 s, retry interval 1 s. Settings given later
    /// override these.
    pub fn loopback_callbacks(self, cert: &std::path::Path, key: &std::path::Path) -> Self {
        self.setting("callback.client_cert", cert.display().to_string())
            .setting("callback.client_key", key.display().to_string())
            .setting("callback.allow_cidrs", "127.0.0.1/32")
            .setting("callback.poll_millis", "100")
            .setting("callback.timeout_secs", "2")
            .setting("callback.lease_secs", "3")
            .setting("callback.retry_interval_secs", "1")
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

    /// The store, instead of the one the settings name (decorators over a real store, or a
    /// store shared with another federation).
    pub fn store(mut self, store: Arc<DynInspectableStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// PostgreSQL on `schema` instead of the memory store, configured through the settings
    /// (`storage`, `database.url`, `database.schema`, `encryption.*`).
    pub fn postgres(mut self, schema: &PostgresSchema) -> Self {
        self.postgres = Some(schema.clone());
        self
    }

    /// The listen address (default `127.0.0.1:0`).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// The request body limit (`upload.max_body_bytes`, default 16 MiB).
    pub fn body_limit(self, bytes: u64) -> Self {
        self.setting("upload.max_body_bytes", bytes.to_string())
    }

    /// Resolves callback host names with `resolver` (one the test controls) instead of the
    /// system resolver; instances started with [`Federation::instance`] share it.
    pub fn resolver(mut self, resolver: Arc<dyn Resolver>) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// How backends present their identity in proxy-header mode.
    pub fn backend_identity(mut self, identity: BackendIdentity) -> Self {
        self.identity = identity;
        self
    }

    /// Builds the PKI, writes its files, starts the server (which imports the trust list)
    /// and the backends.
    pub async fn build(self) -> Result<Federation, FederationError> {
        let clock = self.clock.clone().unwrap_or_else(|| {
            let now = OffsetDateTime::now_utc();
            TestClock::frozen(now.replace_nanosecond(0).unwrap_or(now))
        });
        let start = clock.now();
        let pki = Pki::generate(&self.countries, start)?;
        let files = tempfile::tempdir()?;
        let mut env = self.settings_env(&pki, &files)?;
        let tls = if self.mutual_tls {
            let (ca, leaf) = pki.tls_server()?;
            let cert = files.path().join("server.pem");
            let key = files.path().join("server.key");
            std::fs::write(&cert, &leaf.cert_pem)?;
            write_private(&key, leaf.key_pem.as_bytes())?;
            env.push(setting("auth.mode", "mtls"));
            env.push(setting("auth.tls_cert", cert.display().to_string()));
            env.push(setting("auth.tls_key", key.display().to_string()));
            Some(TlsServer { ca, leaf })
        } else {
            None
        };
        // The store the tests inspect: the one given; for PostgreSQL a second handle on the
        // schema the server opens from its settings; else a memory store handed to the server.
        let injected = match (&self.store, &self.postgres) {
            (Some(store), _) => Some(store.clone()),
            (None, Some(_)) => None,
            (None, None) => Some(Arc::new(MemoryStore::new()) as Arc<DynInspectableStore>),
        };
        let launch = Launch {
            env,
            injected: injected.clone(),
            mutual_tls: self.mutual_tls,
            identity: self.identity,
            bind: self.bind,
            resolver: self.resolver.clone(),
        };
        let running = launch.start(&pki, &clock).await?;
        let store = match (injected, &self.postgres) {
            (Some(store), _) => store,
            (None, Some(schema)) => schema.store().await?,
            (None, None) => unreachable!("a store is injected unless PostgreSQL is configured"),
        };
        Ok(Federation {
            base_url: running.base_url,
            addr: running.addr,
            pki,
            gateway: running.gateway,
            store,
            clock,
            backends: running.backends,
            tls,
            launch: Arc::new(launch),
            _files: Arc::new(files),
            stop: Some(running.stop),
            task: Some(running.task),
        })
    }

    /// The `EFGS_*` settings: the builder's, the listen address, the trusted proxies, the
    /// duplicate-hash secret, the trust anchor and the trust-list entries (written to `files`),
    /// and PostgreSQL when asked for.
    fn settings_env(
        &self,
        pki: &Pki,
        files: &tempfile::TempDir,
    ) -> Result<Vec<(String, String)>, FederationError> {
        let anchor = files.path().join("trust-anchor.pem");
        std::fs::write(&anchor, &pki.anchor_pem)?;
        let entries = files.path().join("trust-list");
        std::fs::create_dir(&entries)?;
        for (i, entry) in pki.entries().enumerate() {
            std::fs::write(entries.join(format!("{i:04}.json")), entry.to_json())?;
        }
        let secret = files.path().join("duplicate-hash.secret");
        write_private(&secret, &self.duplicate_secret)?;
        let trusted: Vec<String> = self.trusted.iter().map(ToString::to_string).collect();
        let mut env = vec![
            setting("listen", self.bind.to_string()),
            setting("trust.anchors", anchor.display().to_string()),
            setting("trust.import_dir", entries.display().to_string()),
            setting("auth.trusted_proxies", trusted.join(",")),
            setting("duplicate_hash.secret_file", secret.display().to_string()),
        ];
        if self.identity == BackendIdentity::CertHeader {
            env.push(setting("auth.proxy_cert_header", "true"));
        }
        if let Some(pg) = &self.postgres {
            env.extend([
                setting("storage", "postgres"),
                setting("database.url", pg.url.clone()),
                setting("database.schema", pg.schema.clone()),
                setting("database.pool_size", "8"),
                setting("encryption.active_key", "1"),
                setting(
                    "encryption.keys",
                    format!("1={}", hex::encode(TEST_ENCRYPTION_KEY)),
                ),
            ]);
        }
        env.extend(self.settings.iter().map(|(k, v)| setting(k, v.clone())));
        Ok(env)
    }
}

/// How a federation's server is started: its `EFGS_*` settings (naming the federation's
/// files) and the store handed to it, kept so that [`Federation::instance`] and
/// [`Federation::restart`] start more servers exactly the same way.
struct Launch {
    env: Vec<(String, String)>,
    injected: Option<Arc<DynInspectableStore>>,
    mutual_tls: bool,
    identity: BackendIdentity,
    bind: SocketAddr,
    resolver: Option<Arc<dyn Resolver>>,
}

/// A started server and its backends.
struct Running {
    base_url: String,
    addr: SocketAddr,
    gateway: Gateway,
    backends: BTreeMap<String, NationalBackend>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), efgs_server::ServeError>>,
}

impl Launch {
    /// Loads the settings, builds the server the operator's way (opening the store unless one
    /// is injected, importing `trust.import_dir`), serves it and makes one backend per
    /// country of `pki`.
    async fn start(&self, pki: &Pki, clock: &TestClock) -> Result<Running, FederationError> {
        let settings = efgs_server::Settings::load(None, self.env.clone())?;
        let mut server = efgs_server::Server::builder(settings).clock(clock.as_fn());
        if let Some(store) = &self.injected {
            server = server.store(store.clone() as Arc<DynStore>);
        }
        if let Some(resolver) = &self.resolver {
            server = server.resolver(Arc::clone(resolver));
        }
        let server = server.build().await?;
        let gateway = server.gateway().clone();
        let listener = server.bind().await?;
        let addr = listener
            .local_addr()
            .map_err(|source| FederationError::Bind {
                addr: self.bind,
                source,
            })?;
        let scheme = if self.mutual_tls { "https" } else { "http" };
        let base_url = format!("{scheme}://{addr}");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(listener, async move {
            // A dropped sender also stops the server.
            let _ = stopped.await;
        }));
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
        Ok(Running {
            base_url,
            addr,
            gateway,
            backends,
            stop,
            task,
        })
    }
}

/// `key`'s environment variable and `value`.
fn setting(key: &str, value: impl Into<String>) -> (String, String) {
    (
        format!("EFGS_{}", key.replace('.', "_").to_ascii_uppercase()),
        value.into(),
    )
}

/// The encryption key of federations and [`PostgresSchema::store`] on PostgreSQL.
const TEST_ENCRYPTION_KEY: [u8; 32] = [0x42; 32];

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

    /// The database URL (it may carry a password: never log it).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The schema name.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// A store on this schema (a new pool; creates and migrates the schema). The key payload
    /// is encrypted under a fixed test key.
    pub async fn store(&self) -> Result<Arc<DynInspectableStore>, FederationError> {
        let keys = efgs_store_postgres::EncryptionKeys::single(1, TEST_ENCRYPTION_KEY)
            .map_err(|e| FederationError::Postgres(e.to_string()))?;
        let cfg = efgs_store_postgres::PgConfig::new(self.url.clone(), keys)
            .with_schema(self.schema.clone())
            .with_pool_size(8);
        let store = efgs_store_postgres::PgStore::connect(&cfg)
            .await
            .map_err(StoreError::from)?;
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
    launch: Arc<Launch>,
    _files: Arc<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), efgs_server::ServeError>>>,
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

    /// Puts `cert_pem` on the trust list as `country`'s certificate of type `cert_type`: an
    /// entry signed by this federation's trust anchor, written straight into the store (as
    /// an operator's `trust-list import` would), created now.
    pub async fn register(
        &self,
        cert_pem: &str,
        country: &str,
        cert_type: CertificateType,
    ) -> Result<(), FederationError> {
        let entry = self.pki.sign_entry(cert_pem, country, cert_type)?;
        let _ = self
            .store
            .upsert_trust_entry(crate::pki::trust_entry(&entry, self.now()))
            .await?;
        Ok(())
    }

    /// Revokes the trust-list entry with this thumbprint and returns once the server's store
    /// handle has seen the change (at once on the memory store; on PostgreSQL, where the tests
    /// write through a second handle, within `efgs_core::store::STAMP_LAG`): it takes effect
    /// on the next request.
    pub async fn revoke(&self, thumbprint: &Thumbprint) -> Result<(), StoreError> {
        self.store.revoke_trust_entry(thumbprint).await?;
        self.server_sees_trust_list().await
    }

    /// Re-admits the revoked trust-list entry with this thumbprint (the operator's
    /// `trust-list readmit`); returns once the server's store handle has seen it, as
    /// [`Self::revoke`].
    pub async fn readmit(
        &self,
        thumbprint: &Thumbprint,
    ) -> Result<efgs_core::store::Readmission, StoreError> {
        let r = self.store.readmit_trust_entry(thumbprint).await?;
        self.server_sees_trust_list().await?;
        Ok(r)
    }

    /// Waits until the trust-list stamp of the server's store handle reached the one of
    /// [`Self::store`] (they are one value on one database), at most twice the stamp lag: after
    /// a trust-list write through [`Self::store`], the server's next request sees it (on the
    /// memory store, which both share, at once; ADR 0030).
    pub async fn server_sees_trust_list(&self) -> Result<(), StoreError> {
        let Some(want) = self.store.trust_list_stamp().await? else {
            return Ok(());
        };
        let start = std::time::Instant::now();
        while start.elapsed() < 2 * efgs_core::store::STAMP_LAG {
            match self.gateway.store().trust_list_stamp().await? {
                Some(got) if got < want => {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
                _ => return Ok(()),
            }
        }
        Ok(())
    }

    /// Starts another instance of the gateway beside this one: a new server built the
    /// operator's way from the same settings (the same trust anchors, the same
    /// `trust.import_dir`, which it imports again at start) on the same store, listening on
    /// a new port, with its own backends for the same countries. Both serve until stopped;
    /// the files stay until the last of them is dropped.
    pub async fn instance(&self) -> Result<Federation, FederationError> {
        let running = self.launch.start(&self.pki, &self.clock).await?;
        Ok(Federation {
            base_url: running.base_url,
            addr: running.addr,
            pki: self.pki.clone(),
            gateway: running.gateway,
            store: self.store.clone(),
            clock: self.clock.clone(),
            backends: running.backends,
            tls: self.tls.clone(),
            launch: self.launch.clone(),
            _files: self._files.clone(),
            stop: Some(running.stop),
            task: Some(running.task),
        })
    }

    /// Restarts the gateway: stops this server gracefully, then starts a new one as
    /// [`Federation::instance`] does (same settings and store, `trust.import_dir` imported
    /// again). The new server listens on a new port; the returned federation's backends use
    /// it (backends replaced with [`Federation::set_backend`] are made anew).
    pub async fn restart(mut self) -> Result<Federation, FederationError> {
        self.stop_server().await?;
        self.instance().await
    }

    async fn stop_server(&mut self) -> Result<(), FederationError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => Ok(task.await??),
            None => Ok(()),
        }
    }

    /// Stops the server gracefully and waits for it.
    pub async fn shutdown(mut self) -> Result<(), FederationError> {
        self.stop_server().await
    }

    /// Kills the server: its task is aborted at once, as if the process died (no graceful
    /// shutdown; work in flight, callback deliveries included, is dropped mid-way).
    pub async fn kill(mut self) {
        self.stop = None;
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
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
