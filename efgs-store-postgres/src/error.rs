//! The backend's private error type and its mapping into the shared `StoreError`.

use crate::crypto::CryptoError;
use deadpool_postgres::PoolError;
use efgs_core::BoxError;
use tokio_postgres::error::SqlState;

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
