//! efgs-server: the HTTP server of the European Federation Gateway Service.
//!
//! - [`config`]: typed configuration from a TOML file, `EFGS_*` environment overrides and
//!   secret files, with start-up refusals that name the setting.
//! - [`net`]: listener, TLS (mTLS with rustls), HTTP/1.1 + HTTP/2 connection handling, limits,
//!   graceful shutdown, and the request body limit filter.
//! - [`jobs`]: the periodic background job runner (batching, retention).
//!
//! Routes are a warp filter served by [`serve_with`] (or [`net::serve_connections`]); every
//! request carries a [`net::ConnectionInfo`] extension. `api(state)` (the EFGS routes) plugs in
//! here.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod demo;
pub mod error;
pub mod jobs;
pub mod net;

use std::future::Future;

use tokio::net::TcpListener;
use warp::{Filter, Reply};

use crate::config::{AuthMode, Config, ConfigError, LogFormat};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store could not be opened or failed.
    #[error("storage: {0}")]
    Store(#[source] efgs_core::store::StoreError),
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
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

/// Binds `cfg.listen`.
pub async fn bind(cfg: &Config) -> Result<TcpListener, ServeError> {
    TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: cfg.listen,
            source,
        })
}

/// Serves `filter` on `listener` with the connection handling of `cfg` (TLS in mtls mode,
/// [`Config::net_limits`]) until `shutdown` completes, then shuts down gracefully.
pub async fn serve_with<F>(
    cfg: &Config,
    listener: TcpListener,
    filter: F,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError>
where
    F: Filter + Clone + Send + Sync + 'static,
    F::Extract: Reply,
{
    let tls = match cfg.auth.mode {
        AuthMode::ProxyHeaders => None,
        AuthMode::Mtls => {
            let missing = |setting: &str| ConfigError::Invalid {
                setting: setting.to_owned(),
                reason: "required with auth.mode = mtls".to_owned(),
            };
            let cert = cfg
                .auth
                .tls_cert
                .as_deref()
                .ok_or_else(|| missing("auth.tls_cert"))?;
            let key = cfg
                .auth
                .tls_key
                .as_deref()
                .ok_or_else(|| missing("auth.tls_key"))?;
            Some(
                net::server_tls_config(cert, key, cfg.auth.client_ca.as_deref()).map_err(|e| {
                    ConfigError::Invalid {
                        setting: e.setting().to_owned(),
                        reason: e.to_string(),
                    }
                })?,
            )
        }
    };
    let local = listener
        .local_addr()
        .map_or_else(|_| cfg.listen.to_string(), |a| a.to_string());
    tracing::info!(
        listen = %local,
        auth = cfg.auth.mode.as_str(),
        storage = cfg.storage.as_str(),
        "serving"
    );
    net::serve_connections(listener, tls, filter, &cfg.net_limits(), shutdown).await;
    Ok(())
}

/// Installs the global tracing subscriber: `cfg.log.filter` (EnvFilter syntax) in
/// `cfg.log.format`. Returns an error when a subscriber is already installed.
pub fn init_tracing(cfg: &Config) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.log.filter)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cfg.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    }
}

/// Completes on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received");
}
