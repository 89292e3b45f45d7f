//! Server configuration.
//!
//! # Sources and precedence
//!
//! 1. Built-in defaults ([`Config::default`]).
//! 2. An optional TOML file (`--config FILE` or `EFGS_CONFIG`). Unknown keys are refused.
//!    Relative paths in the file are relative to the file's directory.
//! 3. Environment overrides: every setting `section.name` can be set with the variable
//!    `EFGS_SECTION_NAME` (dots become underscores, upper case; e.g. `database.url` is
//!    `EFGS_DATABASE_URL`, `listen` is `EFGS_LISTEN`). Lists are comma-separated
//!    (`EFGS_AUTH_TRUSTED_PROXIES=127.0.0.0/8,::1/128`), maps are `id=value` pairs separated
//!    by commas (`EFGS_ENCRYPTION_KEY_FILES=1=/run/secrets/enc-1,2=/run/secrets/enc-2`), and an
//!    empty value unsets an optional setting. Relative paths are relative to the working
//!    directory. An `EFGS_*` variable that names no setting is refused (a typo in a security
//!    setting must not pass silently), except `EFGS_CONFIG`.
//! 4. Secrets from files: `database.url_file`, `database.password_file`,
//!    `encryption.key_files`, `duplicate_hash.secret_file` and `audit.http_token_file`. Each secret file, and the TLS
//!    private key, must not be accessible by "others" (mode `& 0o007 == 0`). One trailing line
//!    break is ignored. Setting both a secret and its `_file` variant is refused.
//!
//! [`SETTINGS`] lists every setting with its help text; `efgs-server --help` and
//! `docs/CONFIGURATION.md` are generated from it ([`settings_help`]).
//!
//! # Refusals
//!
//! [`Config::validate`] refuses unsafe or inconsistent settings with a [`ConfigError`] whose
//! message starts with the setting's name ([`ConfigError::setting`]):
//! - `upload.max_keys` above `batching.max_keys` (an upload is never split across batches);
//! - no trust anchor, or one that cannot be read or parsed (`trust.anchors`);
//! - an encryption key that does not decode to 32 bytes, a missing active key, or (with
//!   `storage = "postgres"`) no encryption key at all (`encryption.*`);
//! - a duplicate-hash secret shorter than 32 bytes, or none with PostgreSQL;
//! - `auth.trusted_proxies` empty or containing a range broader than `/8` (IPv4) or `/16`
//!   (IPv6), which includes `0.0.0.0/0` and `::/0`: header mode must never trust every address.
//!   IPv4-mapped IPv6 ranges (`::ffff:0:0/96`) are judged as the IPv4 range they denote;
//! - `auth.mode = "mtls"` without `auth.tls_cert` / `auth.tls_key`, or with files rustls cannot
//!   load;
//! - `retention.key_days` shorter than `download.max_age_days`, metadata kept shorter than keys,
//!   zero sizes and zero timeouts, an unparsable `log.filter`;
//! - `download.cache_ttl_secs` outside 1 to 3600 (a cached download outlives a retention run on
//!   another instance by at most that long).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use efgs_core::BoxError;
pub(crate) use efgs_core::callback_url::IpCidr;
use serde::Deserialize;

/// The environment variable naming the configuration file.
pub(crate) const CONFIG_FILE_ENV: &str = "EFGS_CONFIG";

/// Length in bytes of an encryption key (AES-256-GCM).
pub(crate) const ENCRYPTION_KEY_LEN: usize = 32;

/// Minimum length in bytes of the duplicate-detection HMAC secret.
pub(crate) const MIN_DUPLICATE_HASH_SECRET_LEN: usize = 32;

/// Shortest accepted IPv4 prefix in `auth.trusted_proxies`.
pub(crate) const MIN_TRUSTED_PREFIX_V4: u8 = 8;

/// Shortest accepted IPv6 prefix in `auth.trusted_proxies`.
pub(crate) const MIN_TRUSTED_PREFIX_V6: u8 = 16;

// ---------------------------------------------------------------------------------------------
// The configuration types
// ---------------------------------------------------------------------------------------------

/// The complete server configuration. `Debug` redacts every secret.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub(crate) struct Config {
    /// Address and port to listen on.
    pub(crate) listen: SocketAddr,
    /// Storage backend.
    pub(crate) storage: StorageKind,
    /// PostgreSQL connection.
    pub(crate) database: DatabaseConfig,
    /// Client authentication.
    pub(crate) auth: AuthConfig,
    /// Trust anchor and trust list.
    pub(crate) trust: TrustConfig,
    /// Upload limits.
    pub(crate) upload: UploadConfig,
    /// Download window.
    pub(crate) download: DownloadConfig,
    /// The batching job.
    pub(crate) batching: BatchingConfig,
    /// The retention job.
    pub(crate) retention: RetentionConfig,
    /// Batch signature policy.
    pub(crate) signature: SignatureConfig,
    /// Encryption of key payloads at rest.
    pub(crate) encryption: EncryptionConfig,
    /// The duplicate-detection HMAC.
    pub(crate) duplicate_hash: DuplicateHashConfig,
    /// Connection handling.
    pub(crate) http: HttpConfig,
    /// Logging.
    pub(crate) log: LogConfig,
    /// The audit trail and its push to log management.
    pub(crate) audit: AuditConfig,
    /// The private metrics and health listener.
    pub(crate) metrics: MetricsConfig,
    /// Callback delivery.
    pub(crate) callback: CallbackConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8090)),
            storage: StorageKind::Memory,
            database: DatabaseConfig::default(),
            auth: AuthConfig::default(),
            trust: TrustConfig::default(),
            upload: UploadConfig::default(),
            download: DownloadConfig::default(),
            batching: BatchingConfig::default(),
            retention: RetentionConfig::default(),
            signature: SignatureConfig::default(),
            encryption: EncryptionConfig::default(),
            duplicate_hash: DuplicateHashConfig::default(),
            http: HttpConfig::default(),
            log: LogConfig::default(),
            audit: AuditConfig::default(),
            metrics: MetricsConfig::default(),
            callback: CallbackConfig::default(),
        }
    }
}

/// The storage backends. Every backend is listed even when this build cannot use it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub(crate) enum StorageKind {
    /// Everything in process memory; lost on restart. For tests and demos.
    Memory,
    /// PostgreSQL (`database.*`).
    Postgres,
}

impl StorageKind {
    /// The configuration spelling.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            StorageKind::Memory => "memory",
            StorageKind::Postgres => "postgres",
        }
    }
}

/// PostgreSQL connection settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub(crate) struct DatabaseConfig {
    /// Connection URL or key/value string; `Debug` masks its password.
    pub(crate) url: Option<DatabaseUrl>,
    /// File holding the connection URL.
    pub(crate) url_file: Option<PathBuf>,
    /// Password, when not part of the URL.
    pub(crate) password: Option<Secret>,
    /// File holding the password.
    pub(crate) password_file: Option<PathBuf>,
    /// Schema holding the tables (created if missing); unset: the server's `search_path`.
    pub(crate) schema: Option<String>,
    /// TLS to the database.
    pub(crate) sslmode: SslMode,
    /// CA certificates (PEM) the database's certificate must chain to (`verify-full`).
    pub(crate) ca_file: Option<PathBuf>,
    /// Maximum pool connections.
    pub(crate) pool_size: u32,
    /// Seconds to wait for a pooled connection before the request gets 503.
    pub(crate) connect_timeout_secs: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: None,
            url_file: None,
            password: None,
            password_file: None,
            schema: None,
            sslmode: SslMode::Disable,
            ca_file: None,
            pool_size: 16,
            connect_timeout_secs: 5,
        }
    }
}

/// TLS to the database (libpq's `sslmode` names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS, the server's certificate not checked.
    Require,
    /// TLS, the certificate checked against `database.ca_file` and the host name.
    VerifyFull,
}

impl SslMode {
    /// The configuration spelling.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Require => "require",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// How clients authenticate (decisions item 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub(crate) enum AuthMode {
    /// Behind a TLS-terminating proxy that sends `X-SSL-Client-SHA256` / `X-SSL-Client-DN`
    /// (optionally `X-SSL-Client-Cert`); honoured only from `auth.trusted_proxies`.
    ProxyHeaders,
    /// The server terminates TLS itself and requires a client certificate.
    Mtls,
}

impl AuthMode {
    /// The configuration spelling.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AuthMode::ProxyHeaders => "proxy-headers",
            AuthMode::Mtls => "mtls",
        }
    }
}

/// Client authentication settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub(crate) struct AuthConfig {
    /// The authentication mode.
    pub(crate) mode: AuthMode,
    /// Proxy-headers mode: peer addresses whose certificate headers are honoured.
    pub(crate) trusted_proxies: Vec<IpCidr>,
    /// Proxy-headers mode: whether `X-SSL-Client-Cert` is honoured.
    pub(crate) proxy_cert_header: bool,
    /// mTLS mode: the server's certificate chain (PEM, leaf first).
    pub(crate) tls_cert: Option<PathBuf>,
    /// mTLS mode: the server's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub(crate) tls_key: Option<PathBuf>,
    /// mTLS mode, optional: CA certificates (PEM) client certificates must chain to. Without it
    /// any client certificate (also self-signed) completes the handshake and authorisation is
    /// left to the thumbprint lookup.
    pub(crate) client_ca: Option<PathBuf>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            mode: AuthMode::ProxyHeaders,
            trusted_proxies: vec![IpCidr::LOOPBACK_V4, IpCidr::LOOPBACK_V6],
            proxy_cert_header: false,
            tls_cert: None,
            tls_key: None,
            client_ca: None,
        }
    }
}

/// Trust anchor and trust list settings.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub(crate) struct TrustConfig {
    /// PEM files with the trust anchor certificate(s) that sign trust-list entries.
    pub(crate) anchors: Vec<PathBuf>,
    /// Optional directory of signed trust-list entries imported at start.
    pub(crate) import_dir: Option<PathBuf>,
}

/// Upload limits.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub(crate) struct UploadConfig {
    /// Maximum keys per upload (413 above).
    pub(crate) max_keys: usize,
    /// Maximum request body size in bytes (413 above, without reading the rest).
    pub(crate) max_body_bytes: u64,
    /// Bytes all uploads in flight may hold together (503 above).
    pub(crate) max_in_flight_bytes: u64,
}

impl Default for UploadConfig {
    fn default() -> Self {
        UploadConfig {
            max_keys: 5000,
            max_body_bytes: 16 * 1024 * 1024,
            max_in_flight_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Download settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub(crate) struct DownloadConfig {
    /// Days back that download and audit serve.
    pub(crate) max_age_days: u32,
    /// Upper bound on cached download bodies in bytes (0: no cache).
    pub(crate) cache_max_bytes: u64,
    /// Seconds a cached download body is served after it was encoded.
    pub(crate) cache_ttl_secs: u64,
}

impl Default for DownloadConfig {
    fn default() -> Self {
        DownloadConfig {
            max_age_days: 2,
            cache_max_bytes: 64 * 1024 * 1024,
            cache_ttl_secs: 60,
        }
    }
}

/// Batching job settings (decisions item 12).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub(crate) struct BatchingConfig {
    /// Maximum keys per download batch.
    pub(crate) max_keys: usize,
    /// Cut a batch once the oldest pending upload is this old (seconds).
    pub(crate) interval_secs: u64,
    /// How often each instance checks whether a batch is due (seconds).
    pub(crate) check_secs: u64,
    /// Upper bound on one batching run (seconds).
    pub(crate) run_limit_secs: u64,
}

impl Default for BatchingConfig {
    fn default() -> Self {
        BatchingConfig {
            max_keys: 5000,
            interval_secs: 300,
            check_secs: 10,
            run_limit_secs: 1200,
        }
    }
}

/// Retention job settings (decisions item 13).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub(crate) struct RetentionConfig {
    /// Keys are deleted when older than this many days.
    pub(crate) key_days: u32,
    /// Batch metadata (no personal data) is kept this many days.
    pub(crate) metadata_days: u32,
    /// How often the cleanup runs (seconds).
    pub(crate) interval_secs: u64,
    /// Upper bound on one cleanup run (seconds).
    pub(crate) run_limit_secs: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            key_days: 2,
            metadata_days: 30,
            interval_secs: 3600,
            run_limit_secs: 1800,
        }
    }
}

/// Callback delivery settings (protocol §7, decisions items 8-10).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub(crate) struct CallbackConfig {
    /// PEM certificate chain the gateway presents to callback receivers.
    pub(crate) client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    pub(crate) client_key: Option<PathBuf>,
    /// Non-public networks callbacks may nevertheless reach.
    pub(crate) allow_cidrs: Vec<IpCidr>,
    /// Seconds one delivery attempt may take (connect, TLS, answer).
    pub(crate) timeout_secs: u64,
    /// Retries after a failed attempt before the subscription is suspended.
    pub(crate) max_retries: u32,
    /// Seconds between a failed attempt and the next.
    pub(crate) retry_interval_secs: u64,
    /// Milliseconds between two looks for due deliveries (batches cut by other instances).
    pub(crate) poll_millis: u64,
    /// Seconds a claimed delivery stays leased to this instance.
    pub(crate) lease_secs: u64,
    /// Deliveries in flight at once per instance.
    pub(crate) concurrency: usize,
}

impl Default for CallbackConfig {
    fn default() -> Self {
        CallbackConfig {
            client_cert: None,
            client_key: None,
            allow_cidrs: Vec::new(),
            timeout_secs: 10,
            max_retries: 5,
            retry_interval_secs: 300,
            poll_millis: 1000,
            lease_secs: 60,
            concurrency: 32,
        }
    }
}

/// Batch signature policy (decisions item 4).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub(crate) struct SignatureConfig {
    /// Accept SHA-1 based batch signatures.
    pub(crate) allow_sha1: bool,
}

/// Encryption at rest (decisions item 11).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub(crate) struct EncryptionConfig {
    /// Id of the key used for new rows.
    pub(crate) active_key: Option<String>,
    /// Keys by id: 32 bytes as 64 hex characters or Base64.
    pub(crate) keys: BTreeMap<String, Secret>,
    /// Key files by id (32 raw bytes, or hex / Base64 text).
    pub(crate) key_files: BTreeMap<String, PathBuf>,
}

/// The duplicate-detection HMAC secret (decisions item 11).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub(crate) struct DuplicateHashConfig {
    /// The secret (at least 32 bytes).
    pub(crate) secret: Option<Secret>,
    /// File holding the secret.
    pub(crate) secret_file: Option<PathBuf>,
}

/// Connection handling (see [`crate::net`]).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub(crate) struct HttpConfig {
    /// Maximum simultaneous connections; further ones wait in the listen backlog.
    pub(crate) max_connections: usize,
    /// Seconds allowed for the TLS handshake.
    pub(crate) tls_handshake_timeout_secs: u64,
    /// Seconds allowed for a request's header block (and for the first request after connect).
    pub(crate) header_timeout_secs: u64,
    /// Seconds a connection may stay without a request in flight.
    pub(crate) idle_timeout_secs: u64,
    /// Seconds allowed between two pieces of a request body.
    pub(crate) body_read_timeout_secs: u64,
    /// Seconds in-flight requests get to finish at shutdown.
    pub(crate) shutdown_grace_secs: u64,
    /// Maximum size of a request's header block in bytes.
    pub(crate) max_header_bytes: usize,
    /// Seconds one request may take from arrival until its response is completely sent.
    pub(crate) request_timeout_secs: u64,
    /// Seconds allowed to send a ready response.
    pub(crate) response_timeout_secs: u64,
    /// Maximum simultaneous connections from one client address (0: no limit).
    pub(crate) max_connections_per_address: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_connections: 1024,
            tls_handshake_timeout_secs: 10,
            header_timeout_secs: 30,
            idle_timeout_secs: 60,
            body_read_timeout_secs: 30,
            shutdown_grace_secs: 30,
            max_header_bytes: 64 * 1024,
            request_timeout_secs: 120,
            response_timeout_secs: 60,
            max_connections_per_address: 64,
        }
    }
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// The configuration spelling.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// Logging settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub(crate) struct LogConfig {
    /// Output format.
    pub(crate) format: LogFormat,
    /// `tracing` filter directives (`EnvFilter` syntax).
    pub(crate) filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            filter: "info".to_owned(),
        }
    }
}

/// The audit trail (docs/operations.md, ADR 0017-0019).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub(crate) struct AuditConfig {
    /// Whether events are written to the trail.
    pub(crate) enabled: bool,
    /// Days events are kept.
    pub(crate) retention_days: u32,
    /// Syslog collector: `tcp://host:port` or `tls://host:port`.
    pub(crate) syslog: Option<String>,
    /// HTTP collector receiving JSON lines: `http://...` or `https://...`.
    pub(crate) http_url: Option<String>,
    /// File holding the bearer token sent to the HTTP collector.
    pub(crate) http_token_file: Option<PathBuf>,
    /// The token read from `http_token_file` by the loader (never from the TOML file).
    #[serde(skip)]
    pub(crate) http_token: Option<Secret>,
    /// CA certificates (PEM) the collectors' TLS certificates must chain to.
    pub(crate) ca_file: Option<PathBuf>,
    /// Milliseconds between delivery attempts while a collector is unreachable or caught up.
    pub(crate) push_retry_ms: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            enabled: true,
            retention_days: 396,
            syslog: None,
            http_url: None,
            http_token_file: None,
            http_token: None,
            ca_file: None,
            push_retry_ms: 2000,
        }
    }
}

/// The private metrics and health listener.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub(crate) struct MetricsConfig {
    /// Address of the listener; unset: no listener.
    pub(crate) listen: Option<SocketAddr>,
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why the configuration was refused. Every message starts with the setting (or environment
/// variable, or file) it is about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("configuration file {path}: {source}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML for the configuration (unknown keys included).
    ///
    /// The message names the line and column but never quotes the file: the offending line may
    /// hold a secret.
    #[error("configuration file {path}, line {line}, column {column}: {message}")]
    Parse {
        /// The file (or `<string>`).
        path: PathBuf,
        /// 1-based line of the error (0 when the parser gave no position).
        line: usize,
        /// 1-based column of the error (0 when the parser gave no position).
        column: usize,
        /// The parser's message with every quoted value replaced by `"…"`.
        message: String,
    },
    /// An `EFGS_*` variable has a value that does not parse.
    #[error("{var}: {reason}")]
    Env {
        /// The variable.
        var: String,
        /// What is wrong.
        reason: String,
    },
    /// An `EFGS_*` variable names no setting.
    #[error("{var}: no such setting (`efgs-server --help` lists every EFGS_* variable)")]
    UnknownEnv {
        /// The variable.
        var: String,
    },
    /// A file named by a setting could not be read.
    #[error("{setting}: cannot read {path}: {source}")]
    ReadSettingFile {
        /// The setting.
        setting: String,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A secret file is accessible by others.
    #[error(
        "{setting}: {path} is accessible by other users (mode {mode:04o}); run `chmod o-rwx` on it"
    )]
    SecretPermissions {
        /// The setting.
        setting: String,
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A secret was given both inline and as a file.
    #[error("{setting} and {file_setting} are both set; set only one")]
    Conflict {
        /// The inline setting.
        setting: String,
        /// The file setting.
        file_setting: String,
    },
    /// A file named by a setting does not hold what the setting needs.
    #[error("{setting}: {}: {source}", .path.display())]
    SettingFile {
        /// The setting.
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// Why its content was refused.
        source: BoxError,
    },
    /// The TLS material could not be loaded (the error names the setting).
    #[error("{}: {source}", .source.setting())]
    Tls {
        /// The TLS layer's error.
        #[from]
        source: crate::net::TlsSetupError,
    },
    /// A setting's value was refused by the part that uses it.
    #[error("{setting}: {source}")]
    Refused {
        /// The setting.
        setting: String,
        /// Why.
        source: BoxError,
    },
    /// A setting is unsafe, inconsistent or out of range.
    #[error("{setting}: {reason}")]
    Invalid {
        /// The setting.
        setting: String,
        /// What is wrong and what to do.
        reason: String,
    },
}

impl ConfigError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            ConfigError::ReadFile { .. } => "config-read-file",
            ConfigError::Parse { .. } => "config-parse",
            ConfigError::Env { .. } => "config-env",
            ConfigError::UnknownEnv { .. } => "config-unknown-env",
            ConfigError::ReadSettingFile { .. } => "config-read-setting-file",
            ConfigError::SecretPermissions { .. } => "config-secret-permissions",
            ConfigError::Conflict { .. } => "config-conflict",
            ConfigError::SettingFile { .. } => "config-setting-file",
            ConfigError::Tls { source } => source.code(),
            ConfigError::Refused { .. } => "config-refused",
            ConfigError::Invalid { .. } => "config-invalid",
        }
    }

    /// The setting or environment variable the error is about, when it is about one.
    pub fn setting(&self) -> Option<&str> {
        match self {
            ConfigError::ReadFile { .. } | ConfigError::Parse { .. } => None,
            ConfigError::Env { var, .. } | ConfigError::UnknownEnv { var } => Some(var),
            ConfigError::ReadSettingFile { setting, .. }
            | ConfigError::SecretPermissions { setting, .. }
            | ConfigError::Conflict { setting, .. }
            | ConfigError::Refused { setting, .. }
            | ConfigError::Invalid { setting, .. } => Some(setting),
            ConfigError::SettingFile { setting, .. } => Some(setting),
            ConfigError::Tls { source } => Some(source.setting()),
        }
    }
}

pub(crate) fn invalid(setting: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting: setting.to_owned(),
        reason: reason.into(),
    }
}

/// `setting` refused with the error of the part that uses it (kept as the source).
pub(crate) fn invalid_because(
    setting: &str,
    source: impl std::error::Error + Send + Sync + 'static,
) -> ConfigError {
    ConfigError::Refused {
        setting: setting.to_owned(),
        source: Box::new(source),
    }
}

mod load;
mod secrets;
mod table;
#[cfg(test)]
mod tests;

pub(crate) use secrets::{DatabaseUrl, Secret, check_secret_permissions, decode_key};
use secrets::{read_secret_bytes, read_secret_text, strip_line_break};
#[cfg(test)]
use table::settings_markdown;
pub(crate) use table::{SETTINGS, settings_help};
#[cfg(test)]
mod load_tests;
