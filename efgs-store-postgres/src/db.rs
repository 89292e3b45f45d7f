//! The connection pool, and connecting (schema, migrations).

use crate::config::PgConfig;
use crate::crypto::Ciphers;
use crate::error::PgError;
use crate::migrate;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use std::str::FromStr;
use tokio_postgres::NoTls;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// Pool plus ciphers: what every store operation needs.
pub(crate) struct Db {
    pub(crate) pool: Pool,
    pub(crate) ring: Ciphers,
    pub(crate) schema: Option<String>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = self.pool.status();
        f.debug_struct("Db")
            .field("schema", &self.schema)
            .field("pool_max_size", &status.max_size)
            .field("pool_size", &status.size)
            .field("pool_available", &status.available)
            .field("keys", &self.ring)
            .finish()
    }
}

impl Db {
    /// Builds the pool, creates the schema if configured, and applies the migrations.
    pub(crate) async fn connect(cfg: &PgConfig) -> Result<Db, PgError> {
        if let Some(schema) = &cfg.schema
            && !migrate::valid_schema_name(schema)
        {
            return Err(PgError::Config(format!(
                "schema name {schema:?} is not 1..=63 lowercase letters, digits or '_' \
                 (not starting with a digit or pg_)"
            )));
        }
        if cfg.pool_size == 0 {
            return Err(PgError::Config("pool size must be at least 1".into()));
        }
        let mut pg = tokio_postgres::Config::from_str(&cfg.url)
            .map_err(|e| PgError::Config(format!("database URL: {e}")))?;
        pg.connect_timeout(cfg.connect_timeout);
        if let Some(password) = &cfg.password {
            pg.password(password.as_bytes());
        }
        if pg.get_application_name().is_none() {
            pg.application_name("efgs-rs");
        }
        if let Some(schema) = &cfg.schema {
            let mut options = pg.get_options().map(str::to_owned).unwrap_or_default();
            if !options.is_empty() {
                options.push(' ');
            }
            options.push_str(&format!("-c search_path={schema}"));
            pg.options(options);
        }
        // Verified: a connection returned to the pool right before its server went away
        // (failover, admin shutdown) is caught at checkout, not by the next caller.
        let manager_config = || ManagerConfig {
            recycling_method: RecyclingMethod::Verified,
        };
        // The TLS setting wins over any `sslmode` in the URL.
        let manager = match crate::tls::client_config(&cfg.tls)? {
            None => {
                pg.ssl_mode(SslMode::Disable);
                Manager::from_config(pg, NoTls, manager_config())
            }
            Some(client) => {
                pg.ssl_mode(SslMode::Require);
                Manager::from_config(pg, MakeRustlsConnect::new(client), manager_config())
            }
        };
        let pool = Pool::builder(manager)
            .max_size(cfg.pool_size)
            .wait_timeout(Some(cfg.wait_timeout))
            .create_timeout(Some(cfg.connect_timeout))
            .recycle_timeout(Some(cfg.connect_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| PgError::Config(format!("connection pool: {e}")))?;
        let db = Db {
            pool,
            ring: Ciphers::new(&cfg.encryption),
            schema: cfg.schema.clone(),
        };
        let mut client = db.client().await?;
        migrate::migrate(&mut client, db.schema.as_deref()).await?;
        Ok(db)
    }

    /// A pooled connection.
    pub(crate) async fn client(&self) -> Result<Object, PgError> {
        Ok(self.pool.get().await?)
    }
}
