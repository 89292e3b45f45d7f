//! efgs-server: the HTTP server of the European Federation Gateway Service.
//!
//! One composition root: [`Settings`] (the configuration, parsed and resolved once) builds a
//! [`Server`] ([`Server::builder`]), which serves the API and runs the background jobs.
//! [`run`] is the whole command line (`main` calls it), so tests run exactly what the binary
//! runs. Everything else is internal:
//!
//! - `config`: the configuration document (defaults < TOML < `EFGS_*` environment < secret
//!   files) and its checks; `settings`: its resolution into each part's own settings type.
//! - `server`: the composition root; `cli`: the commands.
//! - `api`: the routes; `error`: the one status table; `net`: listener, TLS, HTTP/1.1 + HTTP/2
//!   connection handling and limits; `jobs`: the periodic job runner (batching, retention);
//!   `callback`: the callback delivery worker and its TLS client.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod api;
mod callback;
mod cli;
mod config;
mod error;
mod jobs;
mod net;
mod ops;
mod server;
mod settings;

pub use callback::SystemResolver;
pub use cli::run;
pub use config::ConfigError;
pub use net::TlsSetupError;
pub use server::{Clock, ServeError, Server, ServerBuilder, system_clock};
pub use settings::Settings;

use crate::config::LogFormat;

/// The version of this build (the workspace's semantic version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git revision this build was made from (12 hex digits), or `unknown` when it was built
/// outside a git checkout (see `build.rs`).
pub const GIT_REVISION: &str = env!("BUILD_GIT_REVISION");

/// Installs the global tracing subscriber: `log.filter` (EnvFilter syntax) in `log.format`. Returns an error when a subscriber is already installed.
pub(crate) fn init_tracing(
    settings: &Settings,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let filter = log_filter(&settings.log.filter)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match settings.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    }
}

/// The log filter for `log.filter` (tracing `EnvFilter` syntax), as the server installs it: the
/// PostgreSQL driver, which logs statement parameters (batch signatures among them) at debug,
/// is capped at info whatever the filter says.
pub fn log_filter(
    filter: &str,
) -> Result<tracing_subscriber::EnvFilter, Box<dyn std::error::Error + Send + Sync>> {
    Ok(tracing_subscriber::EnvFilter::try_new(filter)?
        .add_directive("tokio_postgres=info".parse()?))
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
