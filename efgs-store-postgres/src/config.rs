//! Connection, pool and encryption settings.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Settings of a [`PgStore`](crate::PgStore).
///
/// `Debug` redacts the password of the URL and every encryption key.
#[derive(Clone)]
pub struct PgConfig {
    /// A libpq-style URL (`postgres://user:password@host:port/db?...`) or key-value string.
    pub url: String,
    /// The password, when it is not part of [`Self::url`]; it wins over one in the URL.
    pub password: Option<String>,
    /// Schema holding the tables. `None` uses the server's default `search_path` (normally
    /// `public`). When set, the schema is created if missing and every pooled connection runs
    /// with `search_path` set to it.
    pub schema: Option<String>,
    /// Maximum number of pooled connections.
    pub pool_size: usize,
    /// How long establishing one connection may take.
    pub connect_timeout: Duration,
    /// How long a caller waits for a free pooled connection before the store reports
    /// `Unavailable`.
    pub wait_timeout: Duration,
    /// Keys that encrypt the key payload at rest.
    pub encryption: EncryptionKeys,
    /// TLS to the database server (overrides any `sslmode` in [`Self::url`]).
    pub tls: PgTls,
}

/// TLS to the database server, with rustls (ring provider).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PgTls {
    /// Plain TCP (libpq `sslmode=disable`).
    #[default]
    Disable,
    /// TLS required, the server's certificate not checked (libpq `sslmode=require`): protects
    /// against eavesdropping, not against an impostor.
    Require,
    /// TLS required; the server's certificate must chain to one of these CA certificates (DER)
    /// and name the host of the URL (libpq `sslmode=verify-full`).
    VerifyFull {
        /// The trusted CA certificates, DER.
        roots: Vec<Vec<u8>>,
    },
}

impl PgConfig {
    /// Settings with the defaults: public schema, 16 connections, 5 s connect and 5 s wait timeout.
    pub fn new(url: impl Into<String>, encryption: EncryptionKeys) -> Self {
        PgConfig {
            url: url.into(),
            password: None,
            tls: PgTls::Disable,
            schema: None,
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            wait_timeout: Duration::from_secs(5),
            encryption,
        }
    }

    /// Uses the given schema (created if missing) instead of the default `search_path`.
    pub fn with_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// Sets the password (when it is not part of the URL).
    pub fn with_password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Sets how long establishing a connection, and waiting for a pooled one, may take.
    pub fn with_timeouts(mut self, connect: Duration, wait: Duration) -> Self {
        self.connect_timeout = connect;
        self.wait_timeout = wait;
        self
    }

    /// Sets TLS to the database server.
    pub fn with_tls(mut self, tls: PgTls) -> Self {
        self.tls = tls;
        self
    }

    /// Sets the pool size.
    pub fn with_pool_size(mut self, pool_size: usize) -> Self {
        self.pool_size = pool_size;
        self
    }
}

impl fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConfig")
            .field("url", &redact_url(&self.url))
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("wait_timeout", &self.wait_timeout)
            .field("encryption", &self.encryption)
            .field("tls", &self.tls)
            .finish()
    }
}

/// Replaces the password of a `postgres://user:password@host` URL, or of a
/// `password=...` pair in a key-value connection string, with `***`.
pub(crate) fn redact_url(url: &str) -> String {
    if let Some(scheme_end) = url.find("://") {
        let rest = &url[scheme_end + 3..];
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        if let Some(at) = authority.rfind('@') {
            let userinfo = &authority[..at];
            if let Some(colon) = userinfo.find(':') {
                return format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &rest[at..]
                );
            }
        }
        return url.to_owned();
    }
    // Key-value form: redact the value of every `password=` pair.
    url.split_whitespace()
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// An identifier of one encryption key, stored next to every row it encrypted so keys can be
/// rotated: new rows use the active key; rows under older keys stay readable while those keys
/// are configured.
pub type KeyId = i16;

/// The AES-256 keys of the key-payload encryption (decisions item 11) and which one encrypts
/// new rows. `Debug` shows key ids only.
#[derive(Clone, PartialEq, Eq)]
pub struct EncryptionKeys {
    pub(crate) keys: BTreeMap<KeyId, [u8; 32]>,
    pub(crate) active: KeyId,
}

/// Invalid encryption key settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyConfigError {
    /// The active key id has no key.
    #[error("the active encryption key id {0} has no key")]
    MissingActiveKey(KeyId),
    /// A key id was given twice.
    #[error("encryption key id {0} is given twice")]
    DuplicateKeyId(KeyId),
    /// A key id is negative.
    #[error("encryption key id {0} is negative")]
    NegativeKeyId(KeyId),
}

impl KeyConfigError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            KeyConfigError::MissingActiveKey(_) => "missing-active-key",
            KeyConfigError::DuplicateKeyId(_) => "duplicate-key-id",
            KeyConfigError::NegativeKeyId(_) => "negative-key-id",
        }
    }
}

impl EncryptionKeys {
    /// A key ring with a single key, which is active.
    pub fn single(id: KeyId, key: [u8; 32]) -> Result<Self, KeyConfigError> {
        Self::new(id, [(id, key)])
    }

    /// A key ring: `active` encrypts new rows; every key in `keys` decrypts rows stored under
    /// its id. Key ids are non-negative and unique.
    pub fn new(
        active: KeyId,
        keys: impl IntoIterator<Item = (KeyId, [u8; 32])>,
    ) -> Result<Self, KeyConfigError> {
        let mut map = BTreeMap::new();
        for (id, key) in keys {
            if id < 0 {
                return Err(KeyConfigError::NegativeKeyId(id));
            }
            if map.insert(id, key).is_some() {
                return Err(KeyConfigError::DuplicateKeyId(id));
            }
        }
        if !map.contains_key(&active) {
            return Err(KeyConfigError::MissingActiveKey(active));
        }
        Ok(EncryptionKeys { keys: map, active })
    }

    /// The id of the key that encrypts new rows.
    pub fn active(&self) -> KeyId {
        self.active
    }

    /// All configured key ids, ascending.
    pub fn ids(&self) -> impl Iterator<Item = KeyId> + '_ {
        self.keys.keys().copied()
    }
}

impl fmt::Debug for EncryptionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKeys")
            .field("active", &self.active)
            .field("ids", &self.keys.keys().collect::<Vec<_>>())
            .field("keys", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn debug_redacts_password_and_keys() {
        let keys = EncryptionKeys::new(2, [(1, [0xAB; 32]), (2, [0xCD; 32])]).unwrap();
        let cfg = PgConfig::new(
            "postgres://efgs:s3cret@db.example:5432/efgs?sslmode=require",
            keys,
        );
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("s3cret"), "{dbg}");
        assert!(
            dbg.contains("postgres://efgs:***@db.example:5432/efgs"),
            "{dbg}"
        );
        assert!(!dbg.contains("171") && !dbg.contains("ab, ab") && !dbg.contains("0xab"));
        assert!(!dbg.to_lowercase().contains("abab"), "{dbg}");
        assert!(dbg.contains("active: 2"), "{dbg}");
    }

    #[test]
    fn redacts_key_value_form() {
        assert_eq!(
            redact_url("host=db user=efgs password=hunter2 dbname=x"),
            "host=db user=efgs password=*** dbname=x"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1:5/postgres"),
            "postgres://postgres@127.0.0.1:5/postgres"
        );
    }

    #[test]
    fn key_ring_rules() {
        assert_eq!(
            EncryptionKeys::new(3, [(1, [0; 32])]),
            Err(KeyConfigError::MissingActiveKey(3))
        );
        assert_eq!(
            EncryptionKeys::new(1, [(1, [0; 32]), (1, [1; 32])]),
            Err(KeyConfigError::DuplicateKeyId(1))
        );
        assert_eq!(
            EncryptionKeys::single(-1, [0; 32]),
            Err(KeyConfigError::NegativeKeyId(-1))
        );
        let ring = EncryptionKeys::new(1, [(0, [0; 32]), (1, [1; 32])]).unwrap();
        assert_eq!(ring.ids().collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(ring.active(), 1);
    }
}
