//! The composition root: one way to build and run the gateway from [`Settings`].
//!
//! `efgs-server serve`, the operator commands, `efgs-sim`, and every HTTP test build the
//! gateway here, so the path the operator runs is the path the tests run:
//!
//! ```no_run
//! # async fn run() -> Result<(), efgs_server::ServeError> {
//! use efgs_server::{Server, Settings};
//! let settings = Settings::load(Some("efgs.toml".as_ref()), std::env::vars_os())?;
//! let server = Server::builder(settings).build().await?;
//! let listener = server.bind().await?;
//! server.serve(listener, efgs_server::shutdown_signal()).await
//! # }
//! ```
//!
//! [`ServerBuilder`] has three overrides, all for tests and simulations: the clock (to cross
//! midnight on a driven clock), the store (decorators that fail or delay calls over a real
//! store, or one memory store shared by two instances) and the resolver of callback host names
//! (one the test controls, to show that a name changing its address cannot reach a refused
//! one). Everything else comes from the settings.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use efgs_core::canonical::DuplicateHasher;
use efgs_core::gateway::Gateway;
use efgs_core::store::{DynStore, StoreError, TrustEntry, Upserted};
use efgs_core::trust::{TrustAnchors, TrustListEntry};
use efgs_store_memory::MemoryStore;
use efgs_store_postgres::{ConnectError, PgStore};
use time::OffsetDateTime;
use tokio::net::TcpListener;

use crate::api::{AppState, ClientAuth, UploadBudget, api};
use crate::callback::{Delivery, SystemResolver, holder_id};
use crate::config::{ConfigError, invalid, invalid_because};
use crate::jobs::Jobs;
use crate::net::serve_connections;
use crate::ops::Ops;
use crate::settings::{AuthSettings, Settings, StoreSettings};
use efgs_core::callback_url::Resolver;
use efgs_core::trail::{Level, names};

/// The instant source of the gateway: the system clock in production, a driven one in tests.
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(OffsetDateTime::now_utc)
}

/// Why the server could not start or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store failed.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// A file could not be read.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The listen address could not be bound.
    #[error("listen: cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl ServeError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            ServeError::Config(e) => e.code(),
            ServeError::Bind { .. } => "listen-bind",
            ServeError::Store(e) => e.code(),
            ServeError::Io { .. } => "io",
        }
    }
}

/// Builds a [`Server`]: the settings, plus a driven clock or a given store for tests.
#[must_use]
pub struct ServerBuilder {
    settings: Settings,
    clock: Option<Clock>,
    store: Option<Arc<DynStore>>,
    resolver: Option<Arc<dyn Resolver>>,
}

impl std::fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("settings", &self.settings)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl ServerBuilder {
    /// Uses `clock` instead of the system clock (request handling, trust-list import, jobs).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Uses `store` instead of opening the one the settings name.
    pub fn store(mut self, store: Arc<DynStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Resolves callback host names with `resolver` instead of the system resolver, at PUT and
    /// before every delivery.
    pub fn resolver(mut self, resolver: Arc<dyn Resolver>) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// Opens the store (applying PostgreSQL migrations), imports `trust.import_dir` and
    /// assembles the gateway. Nothing is served yet.
    pub async fn build(self) -> Result<Server, ServeError> {
        let ServerBuilder {
            settings,
            clock,
            store,
            resolver,
        } = self;
        let resolver = resolver.unwrap_or_else(|| Arc::new(SystemResolver));
        let wake = Arc::new(tokio::sync::Notify::new());
        let clock = clock.unwrap_or_else(system_clock);
        let (store, pg) = match store {
            Some(store) => (store, None),
            None => open_store_with_pool(&settings).await?,
        };
        let gateway = Gateway::new(
            store,
            settings.anchors.clone(),
            hasher(&settings)?,
            settings.policy.clone(),
        )
        .with_batch_listener({
            let wake = Arc::clone(&wake);
            Arc::new(move |_| wake.notify_one())
        });
        let mut imported = None;
        if let Some(dir) = &settings.import_dir {
            let report =
                import_trust_entries(gateway.store().as_ref(), gateway.anchors(), dir, clock())
                    .await?;
            report.log();
            imported = Some((dir.clone(), report));
        }
        Ok(Server {
            settings,
            gateway,
            clock,
            pg,
            imported,
            resolver,
            wake,
        })
    }
}

/// The gateway, assembled and ready to serve.
pub struct Server {
    settings: Settings,
    gateway: Gateway,
    clock: Clock,
    pg: Option<PgStore>,
    imported: Option<(std::path::PathBuf, ImportReport)>,
    resolver: Arc<dyn Resolver>,
    wake: Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("settings", &self.settings)
            .field("gateway", &self.gateway)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A builder for a server under `settings`.
    pub fn builder(settings: Settings) -> ServerBuilder {
        ServerBuilder {
            settings,
            clock: None,
            store: None,
            resolver: None,
        }
    }

    /// The use cases (and, through them, the store), for operator commands and tests.
    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// Binds the `listen` address.
    pub async fn bind(&self) -> Result<TcpListener, ServeError> {
        let addr = self.settings.listen;
        TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })
    }

    /// Serves the API on `listener` (TLS in mtls mode) and runs the batching and retention
    /// jobs until `shutdown` completes; then stops accepting, lets requests in flight finish
    /// within `http.shutdown_grace_secs`, and stops the jobs.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ServeError> {
        let Server {
            settings,
            gateway,
            clock,
            pg,
            imported,
            resolver,
            wake,
        } = self;
        let running = crate::ops::start::start(
            &settings,
            gateway.store().clone(),
            pg,
            clock.clone(),
            imported,
        )
        .await?;
        let ops = running.ops.clone();
        let jobs = spawn_jobs(&settings, &gateway, clock.clone(), &ops);
        let stop_delivery = tokio_util::sync::CancellationToken::new();
        // In a JoinSet: if this future is dropped (the process "dies" in a test), the worker and
        // its attempts in flight are dropped with it.
        let mut delivery = tokio::task::JoinSet::new();
        delivery.spawn(
            Delivery {
                gateway: gateway.clone(),
                resolver: Arc::clone(&resolver),
                clock: clock.clone(),
                settings: settings.delivery.clone(),
                holder: holder_id(),
                wake,
                ops: ops.clone(),
            }
            .run(stop_delivery.clone()),
        );
        let (auth, tls) = match &settings.auth {
            AuthSettings::ProxyHeaders {
                trusted,
                cert_header,
            } => (
                ClientAuth::ProxyHeaders {
                    trusted: trusted.clone(),
                    cert_header: *cert_header,
                },
                None,
            ),
            AuthSettings::Mtls { tls } => (ClientAuth::MutualTls, Some(Arc::clone(tls))),
        };
        let local = listener
            .local_addr()
            .map_or_else(|_| settings.listen.to_string(), |a| a.to_string());
        tracing::info!(
            version = crate::VERSION,
            revision = crate::GIT_REVISION,
            listen = %local,
            auth = if tls.is_some() { "mtls" } else { "proxy-headers" },
            storage = if settings.is_memory_store() { "memory" } else { "postgres" },
            "serving"
        );
        let store_after_serving = Arc::clone(gateway.store());
        let state = AppState {
            gateway,
            auth,
            body_limit: settings.body_limit,
            uploads_in_flight: Arc::new(UploadBudget::new(settings.uploads_in_flight)),
            clock,
            ops,
            resolver,
        };
        serve_connections(listener, tls, api(state), &settings.net, shutdown).await;
        flush_download_stats(&store_after_serving, settings.net.shutdown_grace).await;
        stop_delivery.cancel();
        jobs.shutdown(settings.net.shutdown_grace).await;
        while delivery.join_next().await.is_some() {}
        running.shutdown().await;
        Ok(())
    }
}

/// Writes the download statistics rows the store may still hold (after the last request), so
/// a graceful shutdown loses no count; gives up after `grace`.
async fn flush_download_stats(store: &Arc<DynStore>, grace: Duration) {
    match tokio::time::timeout(grace, store.flush_download_stats()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "download statistics not written at shutdown"),
        Err(_) => tracing::error!("download statistics not written within the shutdown grace"),
    }
}

/// Opens the store the settings name (applying PostgreSQL migrations).
pub(crate) async fn open_store(settings: &Settings) -> Result<Arc<DynStore>, ServeError> {
    Ok(open_store_with_pool(settings).await?.0)
}

/// Opens the store the settings name, and the PostgreSQL handle (for the pool metrics).
pub(crate) async fn open_store_with_pool(
    settings: &Settings,
) -> Result<(Arc<DynStore>, Option<PgStore>), ServeError> {
    match &settings.store {
        StoreSettings::Memory => Ok((Arc::new(MemoryStore::new()), None)),
        StoreSettings::Postgres(pg) => match PgStore::connect(pg).await {
            Ok(store) => Ok((Arc::new(store.clone()), Some(store))),
            Err(ConnectError::Credentials { source }) => Err(invalid_because(
                if pg.password.is_some() {
                    "database.password / database.password_file"
                } else {
                    "database.url"
                },
                source,
            )
            .into()),
            Err(ConnectError::Tls { source }) => {
                Err(invalid_because("database.sslmode / database.ca_file", source).into())
            }
            Err(ConnectError::Settings { reason }) => Err(invalid("database.url", reason).into()),
            Err(e) => Err(ServeError::Store(e.into())),
        },
    }
}

/// The duplicate-hash secret: the configured one, or (memory store only) a random one.
fn hasher(settings: &Settings) -> Result<DuplicateHasher, ConfigError> {
    match &settings.duplicate_hash_secret {
        Some(secret) => Ok(DuplicateHasher::new(secret.expose().as_bytes())),
        None if settings.is_memory_store() => {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret)
                .map_err(|e| invalid_because("duplicate_hash.secret", e))?;
            Ok(DuplicateHasher::new(&secret))
        }
        None => Err(invalid(
            "duplicate_hash.secret",
            "required with storage = postgres (keep it stable for the database)",
        )),
    }
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ImportReport {
    /// Entries inserted.
    pub(crate) inserted: usize,
    /// Entries replaced (already present, re-signed, or revoked by the entry).
    pub(crate) replaced: usize,
    /// Entries already stored exactly so: nothing changed.
    pub(crate) unchanged: usize,
    /// Entries whose stored entry is revoked and stays revoked, as `file (thumbprint)`: an
    /// import never re-admits (`trust-list readmit` does).
    pub(crate) kept_revoked: Vec<String>,
    /// Entries refused, with the file and reason (bad signature, thumbprint or country; a
    /// thumbprint already stored with another country or type).
    pub(crate) refused: Vec<(String, String)>,
}

impl ImportReport {
    /// How to clear a revocation, for the reports.
    pub(crate) const READMIT_HINT: &'static str = "an import never re-admits a revoked certificate: `efgs-server trust-list readmit \
         <thumbprint>` does";

    /// Logs the report: one `info` line with the counts, one `warn` line per entry kept
    /// revoked and per entry refused.
    pub(crate) fn log(&self) {
        tracing::info!(
            inserted = self.inserted,
            replaced = self.replaced,
            unchanged = self.unchanged,
            kept_revoked = self.kept_revoked.len(),
            refused = self.refused.len(),
            "trust list imported"
        );
        for what in &self.kept_revoked {
            tracing::warn!(entry = %what, hint = Self::READMIT_HINT, "trust-list entry kept revoked");
        }
        for (what, why) in &self.refused {
            tracing::warn!(entry = %what, reason = %why, "trust-list entry refused");
        }
    }
}

/// Imports signed trust-list entries from a JSON file or every `*.json` file of a directory.
/// Entries whose signature, thumbprint or subject country do not check are refused with the
/// reason, and so are entries whose thumbprint is stored with another country or type (the
/// stored entry stays as it was). A revoked entry stays revoked, whatever the file says.
/// Importing the same entries again changes nothing.
pub(crate) async fn import_trust_entries(
    store: &DynStore,
    anchors: &TrustAnchors,
    path: &Path,
    now: OffsetDateTime,
) -> Result<ImportReport, ServeError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ServeError::Io { path, source }
    };
    let mut files = Vec::new();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).map_err(io(path))?.flatten() {
            let p = entry.path();
            if p.extension().is_some_and(|x| x == "json") {
                files.push(p);
            }
        }
        files.sort();
    } else {
        files.push(path.to_owned());
    }
    let mut report = ImportReport::default();
    for file in files {
        let name = file.display().to_string();
        let text = std::fs::read_to_string(&file).map_err(io(&file))?;
        let entries = match TrustListEntry::parse_json(&text) {
            Ok(e) => e,
            Err(e) => {
                report.refused.push((name, e.to_string()));
                continue;
            }
        };
        for entry in entries {
            let what = format!("{name} ({})", entry.thumbprint);
            if let Err(e) = entry.verify_for_import(anchors) {
                report.refused.push((what, e.to_string()));
                continue;
            }
            match store
                .upsert_trust_entry(TrustEntry::from_entry(&entry, now))
                .await?
            {
                Upserted::Inserted => report.inserted += 1,
                Upserted::Replaced => report.replaced += 1,
                Upserted::Unchanged => report.unchanged += 1,
                Upserted::KeptRevoked => report.kept_revoked.push(what),
                Upserted::Conflict { country, cert_type } => report.refused.push((
                    what,
                    format!(
                        "the thumbprint is on the trust list as {country} {cert_type}, the \
                         entry says {} {}: a certificate cannot change its country or type \
                         (the stored entry is unchanged)",
                        entry.country, entry.cert_type
                    ),
                )),
            }
        }
    }
    Ok(report)
}

/// Starts the batching and retention jobs for `gateway`; each batch cut and retention run is
/// an audit event, and the retention run also deletes audit events older than
/// `audit.retention_days`.
fn spawn_jobs(settings: &Settings, gateway: &Gateway, clock: Clock, ops: &Ops) -> Jobs {
    let mut jobs = Jobs::new();
    let g = gateway.clone();
    let c = clock.clone();
    let o = ops.clone();
    jobs.spawn(settings.batching_job.clone(), move |ctx| {
        let g = g.clone();
        let c = c.clone();
        let o = o.clone();
        async move {
            while !ctx.should_stop(Duration::from_secs(1)) {
                let started = std::time::Instant::now();
                match g.batch_step(c()).await {
                    Ok(Some(b)) => {
                        o.metrics.batch_cut(started.elapsed().as_secs_f64());
                        tracing::info!(tag = %b.batch.tag, keys = b.batch.number_of_keys, "batch created");
                        let event = o
                            .trail
                            .event(Level::Info, names::BATCH_CUT)
                            .field("batch_tag", b.batch.tag)
                            .field("keys", b.batch.number_of_keys)
                            .field("uploads", b.uploads)
                            .field(
                                "previous",
                                b.previous.map_or_else(|| "-".to_owned(), |t| t.to_string()),
                            );
                        if o.trail.record(vec![event]).await.is_err() {
                            // The batch exists; its event is missing. Logged once by the writer.
                            tracing::warn!(tag = %b.batch.tag, "batch cut not in the audit trail");
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "batching failed; retrying at the next run");
                        return Err(e);
                    }
                }
            }
            Ok(())
        }
    });
    let g = gateway.clone();
    let o = ops.clone();
    let trail_retention = settings.ops.trail_retention;
    jobs.spawn(settings.retention_job.clone(), move |_ctx| {
        let g = g.clone();
        let c = clock.clone();
        let o = o.clone();
        async move {
            let now = c();
            let r = match g.cleanup(now).await {
                Ok(r) => {
                    tracing::info!(deleted = r.deleted, "retention cleanup done");
                    r
                }
                Err(e) => {
                    tracing::warn!(error = %e, "retention cleanup failed; retrying at the next run");
                    return Err(e);
                }
            };
            let trail_deleted = if o.trail.is_on() {
                g.store()
                    .delete_audit_records_before(now - trail_retention)
                    .await?
            } else {
                0
            };
            let event = o
                .trail
                .event(Level::Info, names::RETENTION_RUN)
                .field("keys_deleted", r.deleted)
                .field("keys_before", r.keys_before)
                .field("keys_after", r.keys_after)
                .field("cutoff", efgs_core::trail::timestamp(r.cutoff))
                .field("trail_deleted", trail_deleted);
            let _ = o.trail.record(vec![event]).await;
            let unix = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).unwrap_or(0);
            o.metrics
                .retention_last_success
                .store(unix, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        }
    });
    jobs
}
