//! The backend's private error type and its mapping into the shared `StoreError`.

use crate::crypto::CryptoError;
use deadpool_postgres::PoolError;
use efgs_core::BoxError;
use tokio_postgres::error::SqlState;

/// Why [`PgStore::connect`](crate::PgStore::connect) failed, in the terms of the settings an
/// operator has to change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The settings cannot work (schema name, pool size, unparsable URL).
    #[error("invalid connection settings: {reason}")]
    Settings {
        /// What is wrong.
        reason: String,
    },
    /// The server refused the user name or password (SQLSTATE 28P01 / 28000).
    #[error("the database refused the credentials: {source}")]
    Credentials {
        /// The driver's error.
        source: efgs_core::store::StoreError,
    },
    /// The TLS handshake with the server failed (no TLS offered, certificate not trusted or
    /// not for this host).
    #[error("TLS to the database failed: {source}")]
    Tls {
        /// The driver's error.
        source: efgs_core::store::StoreError,
    },
    /// Anything else: unreachable server, migrations.
    #[error(transparent)]
    Store(#[from] efgs_core::store::StoreError),
}

impl From<ConnectError> for efgs_core::store::StoreError {
    fn from(e: ConnectError) -> Self {
        match e {
            ConnectError::Store(s)
            | ConnectError::Credentials { source: s }
            | ConnectError::Tls { source: s } => s,
            ConnectError::Settings { .. } => efgs_core::store::StoreError::Backend {
                backend: "postgres",
                source: Box::new(e),
            },
        }
    }
}

impl From<PgError> for ConnectError {
    fn from(e: PgError) -> Self {
        match e {
            PgError::Config(reason) => ConnectError::Settings { reason },
            // The server refused the password, or asked for one that was not given (a
            // client-side error without SQLSTATE).
            e if matches!(
                e.sql_state(),
                Some(&SqlState::INVALID_PASSWORD | &SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
            ) || (e.sql_state().is_none() && e.to_string().contains("password missing")) =>
            {
                ConnectError::Credentials { source: e.into() }
            }
            e if e.is_tls() => ConnectError::Tls { source: e.into() },
            e => ConnectError::Store(e.into()),
        }
    }
}

/// Everything that can go wrong inside this crate. Never leaves it: callers see `StoreError`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PgError {
    /// No pooled connection could be had (timeout, closed pool, connect failure).
    #[error("connection pool: {0}")]
    Pool(#[from] PoolError),
    /// The driver or the server reported an error.
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
    /// Sealing or opening a key payload failed.
    #[error("key payload encryption: {0}")]
    Crypto(#[from] CryptoError),
    /// A stored row breaks an invariant of the schema.
    #[error("stored data is corrupt: {0}")]
    Corrupt(&'static str),
    /// A stored value does not convert to its type.
    #[error("stored data is corrupt: {what}")]
    CorruptValue {
        /// Which value.
        what: &'static str,
        /// The conversion's error.
        #[source]
        source: BoxError,
    },
    /// A value to store does not fit its column.
    #[error("{what} out of range")]
    OutOfRange {
        /// Which value.
        what: &'static str,
        /// The conversion's error.
        #[source]
        source: std::num::TryFromIntError,
    },
    /// A diagnosis key could not be encoded for sealing.
    #[error("diagnosis key does not encode")]
    Encode(#[from] prost::EncodeError),
    /// The database was migrated by a different build of this crate.
    #[error("database schema: {0}")]
    Schema(String),
    /// Invalid settings.
    #[error("configuration: {0}")]
    Config(String),
}

impl PgError {
    /// A stored value `what` that failed to convert with `source`.
    pub(crate) fn corrupt<E>(what: &'static str) -> impl FnOnce(E) -> PgError
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        move |source| PgError::CorruptValue {
            what,
            source: Box::new(source),
        }
    }

    /// The server's SQLSTATE, if the server reported one.
    pub(crate) fn sql_state(&self) -> Option<&SqlState> {
        match self {
            PgError::Db(e) => e.code(),
            PgError::Pool(PoolError::Backend(e)) => e.code(),
            _ => None,
        }
    }

    /// Whether the error comes from the TLS layer (rustls) or the server refused TLS.
    pub(crate) fn is_tls(&self) -> bool {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(s) = source {
            let in_io = s
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
                .is_some_and(|inner| inner.is::<rustls::Error>());
            if in_io
                || s.is::<rustls::Error>()
                || s.to_string().contains("server does not support TLS")
            {
                return true;
            }
            source = s.source();
        }
        false
    }

    /// Whether the error is a unique violation.
    pub(crate) fn is_unique_violation(&self) -> bool {
        self.sql_state() == Some(&SqlState::UNIQUE_VIOLATION)
    }

    /// The name of the violated constraint, for constraint violations.
    pub(crate) fn constraint(&self) -> Option<&str> {
        match self {
            PgError::Db(e) => e.as_db_error().and_then(|d| d.constraint()),
            _ => None,
        }
    }

    /// Whether retrying later may succeed: the database or the pool is temporarily unable to
    /// serve (connection trouble, server shutting down, too many connections, serialization
    /// failure, deadlock).
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            PgError::Pool(PoolError::Timeout(_) | PoolError::Closed) => true,
            PgError::Pool(PoolError::Backend(e)) => db_error_is_transient(e),
            PgError::Pool(PoolError::PostCreateHook(_) | PoolError::NoRuntimeSpecified) => false,
            PgError::Db(e) => db_error_is_transient(e),
            PgError::Crypto(_)
            | PgError::Corrupt(_)
            | PgError::CorruptValue { .. }
            | PgError::OutOfRange { .. }
            | PgError::Encode(_)
            | PgError::Schema(_)
            | PgError::Config(_) => false,
        }
    }
}

/// SQLSTATEs after which a retry may succeed.
fn state_is_transient(state: &SqlState) -> bool {
    let code = state.code();
    // Class 08: connection exception.
    code.starts_with("08")
        || matches!(
            code,
            "40001" // serialization_failure
                | "40P01" // deadlock_detected
                | "57P01" // admin_shutdown
                | "57P02" // crash_shutdown
                | "57P03" // cannot_connect_now
                | "53300" // too_many_connections
                | "55P03" // lock_not_available
                | "57014" // query_canceled (statement timeout)
        )
}

fn db_error_is_transient(e: &tokio_postgres::Error) -> bool {
    if let Some(state) = e.code() {
        return state_is_transient(state);
    }
    // No SQLSTATE: the connection closed, an I/O error, a connect timeout. Conversion and
    // protocol errors (programming mistakes) are not transient.
    if e.is_closed() {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_states() {
        for s in [
            SqlState::CONNECTION_EXCEPTION,
            SqlState::CONNECTION_FAILURE,
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::TOO_MANY_CONNECTIONS,
        ] {
            assert!(state_is_transient(&s), "{s:?}");
        }
        for s in [
            SqlState::UNIQUE_VIOLATION,
            SqlState::SYNTAX_ERROR,
            SqlState::UNDEFINED_TABLE,
            SqlState::FOREIGN_KEY_VIOLATION,
        ] {
            assert!(!state_is_transient(&s), "{s:?}");
        }
    }

    #[test]
    fn pool_timeouts_are_transient() {
        let e = PgError::Pool(PoolError::Timeout(deadpool_postgres::TimeoutType::Wait));
        assert!(e.is_transient());
        assert!(PgError::Pool(PoolError::Closed).is_transient());
        assert!(!PgError::Corrupt("x").is_transient());
    }
}
