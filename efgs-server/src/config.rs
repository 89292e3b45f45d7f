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
//!    by commas (`EFGS_ENCRYPTION_KEY_FILES=k1=/run/secrets/k1,k2=/run/secrets/k2`), and an
//!    empty value unsets an optional setting. Relative paths are relative to the working
//!    directory. An `EFGS_*` variable that names no setting is refused (a typo in a security
//!    setting must not pass silently), except `EFGS_CONFIG` and the `EFGS_TEST_*` /
//!    `EFGS_REQUIRE_*` / `EFGS_PG_*` variables used by test suites and the test cluster script.
//! 4. Secrets from files: `database.url_file`, `database.password_file`,
//!    `encryption.key_files` and `duplicate_hash.secret_file`. Each secret file, and the TLS
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
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
pub use efgs_core::callback_url::IpCidr;
use serde::Deserialize;

use crate::jobs::JobSchedule;
use crate::net::NetLimits;

/// The environment variable naming the configuration file.
pub const CONFIG_FILE_ENV: &str = "EFGS_CONFIG";

/// Length in bytes of an encryption key (AES-256-GCM).
pub const ENCRYPTION_KEY_LEN: usize = 32;

/// Minimum length in bytes of the duplicate-detection HMAC secret.
pub const MIN_DUPLICATE_HASH_SECRET_LEN: usize = 32;

/// Shortest accepted IPv4 prefix in `auth.trusted_proxies`.
pub const MIN_TRUSTED_PREFIX_V4: u8 = 8;

/// Shortest accepted IPv6 prefix in `auth.trusted_proxies`.
pub const MIN_TRUSTED_PREFIX_V6: u8 = 16;

// ---------------------------------------------------------------------------------------------
// The configuration types
// ---------------------------------------------------------------------------------------------

/// The complete server configuration. `Debug` redacts every secret.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct Config {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// Storage backend.
    pub storage: StorageKind,
    /// PostgreSQL connection.
    pub database: DatabaseConfig,
    /// Client authentication.
    pub auth: AuthConfig,
    /// Trust anchor and trust list.
    pub trust: TrustConfig,
    /// Upload limits.
    pub upload: UploadConfig,
    /// Download window.
    pub download: DownloadConfig,
    /// The batching job.
    pub batching: BatchingConfig,
    /// The retention job.
    pub retention: RetentionConfig,
    /// Batch signature policy.
    pub signature: SignatureConfig,
    /// Encryption of key payloads at rest.
    pub encryption: EncryptionConfig,
    /// The duplicate-detection HMAC.
    pub duplicate_hash: DuplicateHashConfig,
    /// Connection handling.
    pub http: HttpConfig,
    /// Logging.
    pub log: LogConfig,
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
        }
    }
}

/// The storage backends. Every backend is listed even when this build cannot use it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum StorageKind {
    /// Everything in process memory; lost on restart. For tests and demos.
    Memory,
    /// PostgreSQL (`database.*`).
    Postgres,
}

impl StorageKind {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
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
pub struct DatabaseConfig {
    /// Connection URL or key/value string; `Debug` masks its password.
    pub url: Option<DatabaseUrl>,
    /// File holding the connection URL.
    pub url_file: Option<PathBuf>,
    /// Password, when not part of the URL.
    pub password: Option<Secret>,
    /// File holding the password.
    pub password_file: Option<PathBuf>,
    /// Maximum pool connections.
    pub pool_size: u32,
    /// Seconds to wait for a pooled connection before the request gets 503.
    pub connect_timeout_secs: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: None,
            url_file: None,
            password: None,
            password_file: None,
            pool_size: 16,
            connect_timeout_secs: 5,
        }
    }
}

/// How clients authenticate (decisions item 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum AuthMode {
    /// Behind a TLS-terminating proxy that sends `X-SSL-Client-SHA256` / `X-SSL-Client-DN`
    /// (optionally `X-SSL-Client-Cert`); honoured only from `auth.trusted_proxies`.
    ProxyHeaders,
    /// The server terminates TLS itself and requires a client certificate.
    Mtls,
}

impl AuthMode {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
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
pub struct AuthConfig {
    /// The authentication mode.
    pub mode: AuthMode,
    /// Proxy-headers mode: peer addresses whose certificate headers are honoured.
    pub trusted_proxies: Vec<IpCidr>,
    /// mTLS mode: the server's certificate chain (PEM, leaf first).
    pub tls_cert: Option<PathBuf>,
    /// mTLS mode: the server's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub tls_key: Option<PathBuf>,
    /// mTLS mode, optional: CA certificates (PEM) client certificates must chain to. Without it
    /// any client certificate (also self-signed) completes the handshake and authorisation is
    /// left to the thumbprint lookup.
    pub client_ca: Option<PathBuf>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            mode: AuthMode::ProxyHeaders,
            trusted_proxies: vec![IpCidr::LOOPBACK_V4, IpCidr::LOOPBACK_V6],
            tls_cert: None,
            tls_key: None,
            client_ca: None,
        }
    }
}

impl AuthConfig {
    /// Whether `peer` is a trusted proxy (IPv4-mapped IPv6 peers match IPv4 ranges).
    pub fn is_trusted_proxy(&self, peer: IpAddr) -> bool {
        efgs_core::callback_url::any_contains(&self.trusted_proxies, peer)
    }
}

/// Trust anchor and trust list settings.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct TrustConfig {
    /// PEM files with the trust anchor certificate(s) that sign trust-list entries.
    pub anchors: Vec<PathBuf>,
    /// Optional directory of signed trust-list entries imported at start.
    pub import_dir: Option<PathBuf>,
}

/// Upload limits.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct UploadConfig {
    /// Maximum keys per upload (413 above).
    pub max_keys: usize,
    /// Maximum request body size in bytes (413 above, without reading the rest).
    pub max_body_bytes: u64,
}

impl Default for UploadConfig {
    fn default() -> Self {
        UploadConfig {
            max_keys: 5000,
            max_body_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Download settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct DownloadConfig {
    /// Days back that download and audit serve.
    pub max_age_days: u32,
    /// Upper bound on cached download bodies in bytes (0: no cache).
    pub cache_max_bytes: u64,
    /// Seconds a cached download body is served after it was encoded.
    pub cache_ttl_secs: u64,
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
pub struct BatchingConfig {
    /// Maximum keys per download batch.
    pub max_keys: usize,
    /// Cut a batch once the oldest pending upload is this old (seconds).
    pub interval_secs: u64,
    /// How often each instance checks whether a batch is due (seconds).
    pub check_secs: u64,
    /// Upper bound on one batching run (seconds).
    pub run_limit_secs: u64,
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
pub struct RetentionConfig {
    /// Keys are deleted when older than this many days.
    pub key_days: u32,
    /// Batch metadata (no personal data) is kept this many days.
    pub metadata_days: u32,
    /// How often the cleanup runs (seconds).
    pub interval_secs: u64,
    /// Upper bound on one cleanup run (seconds).
    pub run_limit_secs: u64,
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

/// Batch signature policy (decisions item 4).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct SignatureConfig {
    /// Accept SHA-1 based batch signatures.
    pub allow_sha1: bool,
}

/// Encryption at rest (decisions item 11).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct EncryptionConfig {
    /// Id of the key used for new rows.
    pub active_key: Option<String>,
    /// Keys by id: 32 bytes as 64 hex characters or Base64.
    pub keys: BTreeMap<String, Secret>,
    /// Key files by id (32 raw bytes, or hex / Base64 text).
    pub key_files: BTreeMap<String, PathBuf>,
}

/// The duplicate-detection HMAC secret (decisions item 11).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct DuplicateHashConfig {
    /// The secret (at least 32 bytes).
    pub secret: Option<Secret>,
    /// File holding the secret.
    pub secret_file: Option<PathBuf>,
}

/// Connection handling (see [`crate::net`]).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct HttpConfig {
    /// Maximum simultaneous connections; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// Seconds allowed for the TLS handshake.
    pub tls_handshake_timeout_secs: u64,
    /// Seconds allowed for a request's header block (and for the first request after connect).
    pub header_timeout_secs: u64,
    /// Seconds a connection may stay without a request in flight.
    pub idle_timeout_secs: u64,
    /// Seconds allowed between two pieces of a request body.
    pub body_read_timeout_secs: u64,
    /// Seconds in-flight requests get to finish at shutdown.
    pub shutdown_grace_secs: u64,
    /// Maximum size of a request's header block in bytes.
    pub max_header_bytes: usize,
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
        }
    }
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
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
pub struct LogConfig {
    /// Output format.
    pub format: LogFormat,
    /// `tracing` filter directives (`EnvFilter` syntax).
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            filter: "info".to_owned(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------------

/// A secret string. `Debug` never shows it.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// A database connection string. `Debug` and [`DatabaseUrl::redacted`] mask its password.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Wraps a connection string.
    pub fn new(value: impl Into<String>) -> Self {
        DatabaseUrl(value.into())
    }

    /// The full connection string, password included. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The connection string with any password replaced by `[redacted]`: the userinfo password
    /// of a URL and every `password=` parameter (URL query or key/value form).
    pub fn redacted(&self) -> String {
        let mut s = self.0.clone();
        if let Some(scheme_end) = s.find("://") {
            let rest_start = scheme_end + 3;
            let authority_end = s[rest_start..]
                .find(['/', '?', '#'])
                .map_or(s.len(), |i| rest_start + i);
            if let Some(at) = s[rest_start..authority_end].rfind('@') {
                let at = rest_start + at;
                if let Some(colon) = s[rest_start..at].find(':') {
                    s.replace_range(rest_start + colon + 1..at, "[redacted]");
                }
            }
        }
        let mut out = String::with_capacity(s.len());
        let mut rest = s.as_str();
        while let Some(pos) = find_ascii_ci(rest, "password=") {
            let value_start = pos + "password=".len();
            out.push_str(&rest[..value_start]);
            out.push_str("[redacted]");
            let tail = &rest[value_start..];
            let end = tail.find([' ', '&', '#']).unwrap_or(tail.len());
            rest = &tail[end..];
        }
        out.push_str(rest);
        out
    }
}

fn find_ascii_ci(haystack: &str, needle: &str) -> Option<usize> {
    haystack
        .as_bytes()
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({:?})", self.redacted())
    }
}

/// The decoded encryption keys. `Debug` shows only the ids.
#[derive(Clone)]
#[non_exhaustive]
pub struct KeyRing {
    /// Id of the key used for new rows.
    pub active: String,
    /// Every key by id (the active one included); old ids decrypt existing rows.
    pub keys: BTreeMap<String, [u8; ENCRYPTION_KEY_LEN]>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("active", &self.active)
            .field("ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
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
    /// The configuration file is not valid TOML for [`Config`] (unknown keys included).
    #[error("configuration file {path}: {source}")]
    Parse {
        /// The file (or `<string>`).
        path: PathBuf,
        /// The parser's message, with line and column.
        source: Box<toml::de::Error>,
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
            | ConfigError::Invalid { setting, .. } => Some(setting),
        }
    }
}

fn invalid(setting: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting: setting.to_owned(),
        reason: reason.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// The settings table: environment names, help text, display
// ---------------------------------------------------------------------------------------------

/// One documented setting.
#[derive(Clone, Copy)]
pub struct Setting {
    /// Dotted key as in the TOML file (`database.url`).
    pub key: &'static str,
    /// What it does, its unit and its constraints.
    pub help: &'static str,
    apply: fn(&mut Config, &str) -> Result<(), String>,
    show: fn(&Config) -> String,
}

impl Setting {
    /// The environment variable: `EFGS_` + key with dots as underscores, upper case.
    pub fn env_var(&self) -> String {
        env_name(self.key)
    }

    /// The setting's value in `cfg`, as it would be written in the environment; secrets are
    /// shown as `[redacted]`.
    pub fn show(&self, cfg: &Config) -> String {
        (self.show)(cfg)
    }
}

impl fmt::Debug for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Setting").field("key", &self.key).finish()
    }
}

fn env_name(key: &str) -> String {
    format!("EFGS_{}", key.replace('.', "_").to_ascii_uppercase())
}

/// A value settable from the environment and printable in help and `--check` output.
trait EnvValue: Sized {
    fn parse_env(s: &str) -> Result<Self, String>;
    fn show(&self) -> String;
}

macro_rules! env_value_via_fromstr {
    ($($t:ty),*) => {$(
        impl EnvValue for $t {
            fn parse_env(s: &str) -> Result<Self, String> {
                s.trim().parse::<$t>().map_err(|e| format!("`{s}`: {e}"))
            }
            fn show(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
env_value_via_fromstr!(u32, u64, usize, SocketAddr);

impl EnvValue for bool {
    fn parse_env(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(format!("`{s}` is not a boolean (true/false)")),
        }
    }
    fn show(&self) -> String {
        self.to_string()
    }
}

impl EnvValue for String {
    fn parse_env(s: &str) -> Result<Self, String> {
        Ok(s.to_owned())
    }
    fn show(&self) -> String {
        self.clone()
    }
}

macro_rules! env_value_enum {
    ($t:ty { $($name:literal => $v:expr),* }) => {
        impl EnvValue for $t {
            fn parse_env(s: &str) -> Result<Self, String> {
                match s.trim() {
                    $($name => Ok($v),)*
                    _ => Err(format!("`{s}`: expected one of {}", [$($name),*].join(", "))),
                }
            }
            fn show(&self) -> String {
                self.as_str().to_owned()
            }
        }
    };
}
env_value_enum!(StorageKind { "memory" => StorageKind::Memory, "postgres" => StorageKind::Postgres });
env_value_enum!(AuthMode { "proxy-headers" => AuthMode::ProxyHeaders, "mtls" => AuthMode::Mtls });
env_value_enum!(LogFormat { "text" => LogFormat::Text, "json" => LogFormat::Json });

impl EnvValue for PathBuf {
    fn parse_env(s: &str) -> Result<Self, String> {
        Ok(PathBuf::from(s))
    }
    fn show(&self) -> String {
        self.display().to_string()
    }
}

impl EnvValue for Secret {
    fn parse_env(s: &str) -> Result<Self, String> {
        Ok(Secret::new(s))
    }
    fn show(&self) -> String {
        "[redacted]".to_owned()
    }
}

impl EnvValue for DatabaseUrl {
    fn parse_env(s: &str) -> Result<Self, String> {
        Ok(DatabaseUrl::new(s))
    }
    fn show(&self) -> String {
        self.redacted()
    }
}

impl EnvValue for IpCidr {
    fn parse_env(s: &str) -> Result<Self, String> {
        IpCidr::parse(s).map_err(|e| e.to_string())
    }
    fn show(&self) -> String {
        self.to_string()
    }
}

impl<T: EnvValue> EnvValue for Option<T> {
    fn parse_env(s: &str) -> Result<Self, String> {
        if s.trim().is_empty() {
            Ok(None)
        } else {
            T::parse_env(s).map(Some)
        }
    }
    fn show(&self) -> String {
        self.as_ref().map_or_else(String::new, T::show)
    }
}

impl<T: EnvValue> EnvValue for Vec<T> {
    fn parse_env(s: &str) -> Result<Self, String> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(T::parse_env)
            .collect()
    }
    fn show(&self) -> String {
        self.iter().map(T::show).collect::<Vec<_>>().join(",")
    }
}

impl<T: EnvValue> EnvValue for BTreeMap<String, T> {
    fn parse_env(s: &str) -> Result<Self, String> {
        let mut map = BTreeMap::new();
        for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| "expected `id=value` pairs separated by commas".to_owned())?;
            let k = k.trim();
            if k.is_empty() {
                return Err("empty id in `id=value` pair".to_owned());
            }
            if map.insert(k.to_owned(), T::parse_env(v.trim())?).is_some() {
                return Err(format!("id `{k}` given twice"));
            }
        }
        Ok(map)
    }
    fn show(&self) -> String {
        self.iter()
            .map(|(k, v)| format!("{k}={}", v.show()))
            .collect::<Vec<_>>()
            .join(",")
    }
}

macro_rules! settings {
    ($( $key:literal => $($field:ident).+ : $help:literal ;)*) => {
        /// Every setting, in documentation order. Each can be written in the TOML file under its
        /// dotted key and overridden by its environment variable ([`Setting::env_var`]).
        pub static SETTINGS: &[Setting] = &[$(
            Setting {
                key: $key,
                help: $help,
                apply: |c: &mut Config, v: &str| {
                    c.$($field).+ = EnvValue::parse_env(v)?;
                    Ok(())
                },
                show: |c: &Config| EnvValue::show(&c.$($field).+),
            },
        )*];
    };
}

settings! {
    "listen" => listen:
        "Address and port to listen on, e.g. `0.0.0.0:8090` or `[::]:8090`.";
    "storage" => storage:
        "Storage backend: `memory` (tests and demos; lost on restart) or `postgres`.";
    "database.url" => database.url:
        "PostgreSQL connection URL or key/value string (storage = postgres). Prefer `database.url_file`.";
    "database.url_file" => database.url_file:
        "File holding `database.url` (must not be readable by others).";
    "database.password" => database.password:
        "Database password when it is not part of the URL. Prefer `database.password_file`.";
    "database.password_file" => database.password_file:
        "File holding `database.password` (must not be readable by others).";
    "database.pool_size" => database.pool_size:
        "Maximum number of pooled database connections (>= 1).";
    "database.connect_timeout_secs" => database.connect_timeout_secs:
        "Seconds to wait for a database connection before a request gets 503 with Retry-After.";
    "auth.mode" => auth.mode:
        "Client authentication: `proxy-headers` (X-SSL-Client-SHA256 / X-SSL-Client-DN / X-SSL-Client-Cert from a TLS-terminating proxy) or `mtls` (this server terminates TLS and requires client certificates).";
    "auth.trusted_proxies" => auth.trusted_proxies:
        "proxy-headers mode: CIDR ranges whose certificate headers are honoured; requests with those headers from anywhere else get 403. Ranges broader than /8 (IPv4) or /16 (IPv6) are refused.";
    "auth.tls_cert" => auth.tls_cert:
        "mtls mode: PEM file with the server certificate chain, leaf first.";
    "auth.tls_key" => auth.tls_key:
        "mtls mode: PEM file with the server private key (PKCS#8, PKCS#1 or SEC1; must not be readable by others).";
    "auth.client_ca" => auth.client_ca:
        "mtls mode, optional: PEM file with CA certificates client certificates must chain to. Unset: any client certificate, also self-signed, completes the handshake and the trust list decides.";
    "trust.anchors" => trust.anchors:
        "PEM file(s) with the trust anchor certificate(s) that sign trust-list entries (required).";
    "trust.import_dir" => trust.import_dir:
        "Optional directory of signed trust-list entries imported at start.";
    "upload.max_keys" => upload.max_keys:
        "Maximum keys per upload; more gives 413. Must not exceed batching.max_keys.";
    "upload.max_body_bytes" => upload.max_body_bytes:
        "Maximum request body in bytes; larger bodies get 413 without being read whole.";
    "download.max_age_days" => download.max_age_days:
        "Days back that download and audit serve (older dates give 410).";
    "download.cache_max_bytes" => download.cache_max_bytes:
        "Upper bound on the download bodies kept encoded in memory, in bytes (a 5000-key batch is about 210 KB in protobuf, 560 KB in JSON); 0 turns the cache off. Batches never change, so repeated downloads are served from memory (see docs/adr/0011).";
    "download.cache_ttl_secs" => download.cache_ttl_secs:
        "Seconds a cached download body is served after it was encoded (1 to 3600): the longest a retention run on another instance takes to reach this instance's downloads.";
    "batching.max_keys" => batching.max_keys:
        "Maximum keys per download batch.";
    "batching.interval_secs" => batching.interval_secs:
        "A batch is cut once the oldest pending upload is this many seconds old (or batching.max_keys are pending).";
    "batching.check_secs" => batching.check_secs:
        "How often each server instance checks whether a batch is due, in seconds.";
    "batching.run_limit_secs" => batching.run_limit_secs:
        "Upper bound on one batching run, in seconds.";
    "retention.key_days" => retention.key_days:
        "Keys older than this many days are deleted (>= download.max_age_days).";
    "retention.metadata_days" => retention.metadata_days:
        "Batch metadata without personal data is kept this many days (>= retention.key_days), so late audits still answer correctly.";
    "retention.interval_secs" => retention.interval_secs:
        "How often the retention cleanup runs, in seconds.";
    "retention.run_limit_secs" => retention.run_limit_secs:
        "Upper bound on one cleanup run, in seconds.";
    "signature.allow_sha1" => signature.allow_sha1:
        "Accept batch signatures that use SHA-1 (off: such uploads get 400).";
    "encryption.active_key" => encryption.active_key:
        "Id of the encryption key used for new rows (required with storage = postgres).";
    "encryption.keys" => encryption.keys:
        "Encryption keys by id, each 32 bytes as 64 hex characters or Base64 (`id=key,...`). Prefer `encryption.key_files`.";
    "encryption.key_files" => encryption.key_files:
        "Encryption key files by id (`id=/path,...`); a file holds 32 raw bytes or hex / Base64 text and must not be readable by others.";
    "duplicate_hash.secret" => duplicate_hash.secret:
        "Secret (>= 32 bytes) for the HMAC that detects duplicate keys (required with storage = postgres). Prefer `duplicate_hash.secret_file`.";
    "duplicate_hash.secret_file" => duplicate_hash.secret_file:
        "File holding `duplicate_hash.secret` (must not be readable by others).";
    "http.max_connections" => http.max_connections:
        "Maximum simultaneous client connections; further connections wait in the listen backlog until one closes.";
    "http.tls_handshake_timeout_secs" => http.tls_handshake_timeout_secs:
        "Seconds allowed for a TLS handshake (mtls mode).";
    "http.header_timeout_secs" => http.header_timeout_secs:
        "Seconds allowed to receive a request's header block, and the first request after connecting.";
    "http.idle_timeout_secs" => http.idle_timeout_secs:
        "Seconds a connection may stay open without a request in flight.";
    "http.body_read_timeout_secs" => http.body_read_timeout_secs:
        "Seconds allowed between two pieces of a request body.";
    "http.shutdown_grace_secs" => http.shutdown_grace_secs:
        "At shutdown, seconds in-flight requests get to finish before connections are closed.";
    "http.max_header_bytes" => http.max_header_bytes:
        "Maximum size of a request header block in bytes (the batch signature travels in a header).";
    "log.format" => log.format:
        "Log format: `text` or `json`.";
    "log.filter" => log.filter:
        "Log filter in tracing `EnvFilter` syntax, e.g. `info` or `info,efgs_server=debug`.";
}

/// The settings reference used by `efgs-server --help` and `docs/CONFIGURATION.md`: every
/// setting with its environment variable, default and help text.
pub fn settings_help() -> String {
    let defaults = Config::default();
    let mut out = String::from(
        "SETTINGS (TOML key / environment variable [default]):\n\
         Precedence: built-in default < TOML file (--config / EFGS_CONFIG) < EFGS_* environment.\n\
         Lists are comma-separated in the environment; maps are `id=value,...`; an empty value\n\
         unsets an optional setting. Secret files must not be readable by other users.\n",
    );
    for s in SETTINGS {
        let default = s.show(&defaults);
        out.push_str(&format!(
            "\n  {} / {}{}\n      {}\n",
            s.key,
            s.env_var(),
            if default.is_empty() {
                String::new()
            } else {
                format!(" [default: {default}]")
            },
            s.help
        ));
    }
    out
}

/// `docs/CONFIGURATION.md`, generated from [`SETTINGS`].
pub fn settings_markdown() -> String {
    let defaults = Config::default();
    let mut out = String::from(
        "# efgs-server configuration\n\n\
         Generated from `efgs_server::config::SETTINGS` (a test keeps this file in sync).\n\n\
         Sources, lowest precedence first: built-in defaults, the TOML file given by `--config` or\n\
         `EFGS_CONFIG` (unknown keys are refused; relative paths are relative to the file), then\n\
         `EFGS_*` environment variables (`section.name` is `EFGS_SECTION_NAME`; lists are\n\
         comma-separated, maps are `id=value,...`, an empty value unsets an optional setting; an\n\
         `EFGS_*` variable that names no setting is refused, except `EFGS_CONFIG`, `EFGS_TEST_*`,\n\
         `EFGS_PG_*` and `EFGS_REQUIRE_*`), then secrets read from the `*_file` settings. Secret files and the\n\
         TLS key must not be accessible by other users. `efgs-server serve --check` prints the\n\
         effective configuration with secrets redacted.\n\n\
         Start-up refuses unsafe or inconsistent settings with a message naming the setting:\n\
         `upload.max_keys` above `batching.max_keys`; no readable, parsable `trust.anchors`;\n\
         encryption keys that are not 32 bytes, or none with PostgreSQL; a duplicate-hash secret\n\
         under 32 bytes; `auth.trusted_proxies` empty or with a range broader than /8 (IPv4) or\n\
         /16 (IPv6), such as `0.0.0.0/0`; mtls mode without a loadable certificate and key;\n\
         `retention.key_days` below `download.max_age_days`; zero sizes or timeouts.\n\n\
         | TOML key | Environment | Default | Meaning |\n|---|---|---|---|\n",
    );
    for s in SETTINGS {
        out.push_str(&format!(
            "| `{}` | `{}` | {} | {} |\n",
            s.key,
            s.env_var(),
            match s.show(&defaults) {
                d if d.is_empty() => "–".to_owned(),
                d => format!("`{d}`"),
            },
            s.help.replace('|', "\\|")
        ));
    }
    out
}

/// Environment variables starting with `EFGS_` that are not settings but are allowed.
fn is_non_setting_env(var: &str) -> bool {
    var == CONFIG_FILE_ENV
        || var.starts_with("EFGS_TEST_")
        || var.starts_with("EFGS_REQUIRE_")
        || var.starts_with("EFGS_PG_")
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

impl Config {
    /// Loads the configuration: defaults, the TOML file if given, `EFGS_*` overrides from
    /// `env` (pass `std::env::vars_os()`), secrets from files; then [`Config::validate`].
    pub fn load<I, K, V>(file: Option<&Path>, env: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        let mut cfg = match file {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        cfg.apply_env(env)?;
        cfg.load_secret_files()?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads a TOML file; relative paths in it become relative to its directory.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            path: path.to_owned(),
            source,
        })?;
        let mut cfg = Self::parse_toml(&text, path)?;
        if let Some(dir) = path.parent() {
            cfg.rebase_paths(dir);
        }
        Ok(cfg)
    }

    /// Parses TOML text (no path rebasing, no environment, no validation).
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        Self::parse_toml(text, Path::new("<string>"))
    }

    fn parse_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(e),
        })
    }

    fn rebase_paths(&mut self, base: &Path) {
        let rebase = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        let rebase_opt = |p: &mut Option<PathBuf>| {
            if let Some(p) = p {
                rebase(p);
            }
        };
        rebase_opt(&mut self.database.url_file);
        rebase_opt(&mut self.database.password_file);
        rebase_opt(&mut self.auth.tls_cert);
        rebase_opt(&mut self.auth.tls_key);
        rebase_opt(&mut self.auth.client_ca);
        self.trust.anchors.iter_mut().for_each(rebase);
        rebase_opt(&mut self.trust.import_dir);
        self.encryption.key_files.values_mut().for_each(rebase);
        rebase_opt(&mut self.duplicate_hash.secret_file);
    }

    /// Applies `EFGS_*` overrides. Variables not starting with `EFGS_` are ignored; an `EFGS_*`
    /// variable that names no setting is refused (see the module documentation).
    pub fn apply_env<I, K, V>(&mut self, env: I) -> Result<(), ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        // Apply in table order so that the outcome does not depend on the environment's order.
        let mut given: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in env {
            let Some(var) = k.as_ref().to_str() else {
                continue;
            };
            if !var.starts_with("EFGS_") || is_non_setting_env(var) {
                continue;
            }
            let value = v.as_ref().to_str().ok_or_else(|| ConfigError::Env {
                var: var.to_owned(),
                reason: "value is not valid UTF-8".to_owned(),
            })?;
            given.insert(var.to_owned(), value.to_owned());
        }
        for s in SETTINGS {
            let var = s.env_var();
            if let Some(value) = given.remove(&var) {
                (s.apply)(self, &value).map_err(|reason| ConfigError::Env { var, reason })?;
            }
        }
        match given.into_keys().next() {
            Some(var) => Err(ConfigError::UnknownEnv { var }),
            None => Ok(()),
        }
    }

    /// Reads every `*_file` secret into its setting, checking file permissions.
    pub fn load_secret_files(&mut self) -> Result<(), ConfigError> {
        if let Some(path) = &self.database.url_file {
            if self.database.url.is_some() {
                return Err(conflict("database.url", "database.url_file"));
            }
            let text = read_secret_text("database.url_file", path)?;
            self.database.url = Some(DatabaseUrl::new(text));
        }
        if let Some(path) = &self.database.password_file {
            if self.database.password.is_some() {
                return Err(conflict("database.password", "database.password_file"));
            }
            let text = read_secret_text("database.password_file", path)?;
            self.database.password = Some(Secret::new(text));
        }
        if let Some(path) = &self.duplicate_hash.secret_file {
            if self.duplicate_hash.secret.is_some() {
                return Err(conflict(
                    "duplicate_hash.secret",
                    "duplicate_hash.secret_file",
                ));
            }
            let text = read_secret_text("duplicate_hash.secret_file", path)?;
            self.duplicate_hash.secret = Some(Secret::new(text));
        }
        for (id, path) in &self.encryption.key_files {
            let setting = format!("encryption.key_files.{id}");
            if self.encryption.keys.contains_key(id) {
                return Err(ConfigError::Conflict {
                    setting: format!("encryption.keys.{id}"),
                    file_setting: setting,
                });
            }
            let bytes = read_secret_bytes(&setting, path)?;
            // 32 raw bytes, or hex / Base64 text (a text key is never exactly 32 bytes long).
            let value = if bytes.len() == ENCRYPTION_KEY_LEN {
                hex::encode(&bytes)
            } else {
                let text = String::from_utf8(bytes).map_err(|_| {
                    invalid(
                        &setting,
                        "file is neither 32 raw bytes nor hex / Base64 text",
                    )
                })?;
                strip_line_break(&text).to_owned()
            };
            self.encryption.keys.insert(id.clone(), Secret::new(value));
        }
        Ok(())
    }

    /// Checks the configuration for unsafe and inconsistent settings (see the module
    /// documentation). Reads the trust anchors and, in mtls mode, the TLS files.
    pub fn validate(&self) -> Result<(), ConfigError> {
        // Sizes and counts.
        nonzero("upload.max_keys", self.upload.max_keys as u64)?;
        nonzero("upload.max_body_bytes", self.upload.max_body_bytes)?;
        nonzero("batching.max_keys", self.batching.max_keys as u64)?;
        if self.upload.max_keys > self.batching.max_keys {
            return Err(invalid(
                "upload.max_keys",
                format!(
                    "{} exceeds batching.max_keys ({}): an upload is never split across \
                     download batches, so it must fit in one",
                    self.upload.max_keys, self.batching.max_keys
                ),
            ));
        }
        nonzero(
            "download.max_age_days",
            u64::from(self.download.max_age_days),
        )?;
        if !(1..=3600).contains(&self.download.cache_ttl_secs) {
            return Err(invalid(
                "download.cache_ttl_secs",
                format!(
                    "{} is outside 1 to 3600: cached downloads would outlive a retention run \
                     on another instance by that long",
                    self.download.cache_ttl_secs
                ),
            ));
        }
        if usize::try_from(self.download.cache_max_bytes).is_err() {
            return Err(invalid(
                "download.cache_max_bytes",
                format!(
                    "{} does not fit this platform",
                    self.download.cache_max_bytes
                ),
            ));
        }
        if self.retention.key_days < self.download.max_age_days {
            return Err(invalid(
                "retention.key_days",
                format!(
                    "{} is shorter than download.max_age_days ({}): keys would be deleted \
                     while still downloadable",
                    self.retention.key_days, self.download.max_age_days
                ),
            ));
        }
        if self.retention.metadata_days < self.retention.key_days {
            return Err(invalid(
                "retention.metadata_days",
                format!(
                    "{} is shorter than retention.key_days ({})",
                    self.retention.metadata_days, self.retention.key_days
                ),
            ));
        }
        for (setting, v) in [
            ("batching.interval_secs", self.batching.interval_secs),
            ("batching.check_secs", self.batching.check_secs),
            ("batching.run_limit_secs", self.batching.run_limit_secs),
            ("retention.interval_secs", self.retention.interval_secs),
            ("retention.run_limit_secs", self.retention.run_limit_secs),
            ("http.max_connections", self.http.max_connections as u64),
            (
                "http.tls_handshake_timeout_secs",
                self.http.tls_handshake_timeout_secs,
            ),
            ("http.header_timeout_secs", self.http.header_timeout_secs),
            ("http.idle_timeout_secs", self.http.idle_timeout_secs),
            (
                "http.body_read_timeout_secs",
                self.http.body_read_timeout_secs,
            ),
            (
                "database.connect_timeout_secs",
                self.database.connect_timeout_secs,
            ),
        ] {
            nonzero(setting, v)?;
        }
        if !(8 * 1024..=1024 * 1024).contains(&self.http.max_header_bytes) {
            return Err(invalid(
                "http.max_header_bytes",
                format!("{} is outside 8192..=1048576", self.http.max_header_bytes),
            ));
        }

        // Trust anchors.
        self.trust_anchors_der()?;
        if let Some(dir) = &self.trust.import_dir
            && !dir.is_dir()
        {
            return Err(invalid(
                "trust.import_dir",
                format!("{} is not a readable directory", dir.display()),
            ));
        }

        // Storage and secrets.
        let postgres = self.storage == StorageKind::Postgres;
        if postgres {
            if self.database.url.is_none() {
                return Err(invalid(
                    "database.url",
                    "required with storage = postgres (or set database.url_file)",
                ));
            }
            nonzero("database.pool_size", u64::from(self.database.pool_size))?;
        }
        let ring = self.encryption_keys()?;
        if postgres && ring.is_none() {
            return Err(invalid(
                "encryption.active_key",
                "required with storage = postgres, together with encryption.keys or \
                 encryption.key_files: key payloads are encrypted at rest",
            ));
        }
        match &self.duplicate_hash.secret {
            Some(secret) if secret.expose().len() < MIN_DUPLICATE_HASH_SECRET_LEN => {
                return Err(invalid(
                    "duplicate_hash.secret",
                    format!(
                        "{} bytes is too short; use at least {MIN_DUPLICATE_HASH_SECRET_LEN} \
                         random bytes",
                        secret.expose().len()
                    ),
                ));
            }
            None if postgres => {
                return Err(invalid(
                    "duplicate_hash.secret",
                    "required with storage = postgres (or set duplicate_hash.secret_file)",
                ));
            }
            _ => {}
        }

        // Authentication.
        match self.auth.mode {
            AuthMode::ProxyHeaders => {
                if self.auth.trusted_proxies.is_empty() {
                    return Err(invalid(
                        "auth.trusted_proxies",
                        "is empty: no request could authenticate in proxy-headers mode",
                    ));
                }
                for cidr in &self.auth.trusted_proxies {
                    let min = if cidr.addr().is_ipv4() {
                        MIN_TRUSTED_PREFIX_V4
                    } else {
                        MIN_TRUSTED_PREFIX_V6
                    };
                    if cidr.prefix() < min {
                        return Err(invalid(
                            "auth.trusted_proxies",
                            format!(
                                "{cidr} is broader than /{min}: certificate headers would be \
                                 trusted from (nearly) every address; list the proxies' own \
                                 addresses"
                            ),
                        ));
                    }
                }
            }
            AuthMode::Mtls => {
                let cert =
                    self.auth.tls_cert.as_deref().ok_or_else(|| {
                        invalid("auth.tls_cert", "required with auth.mode = mtls")
                    })?;
                let key = self
                    .auth
                    .tls_key
                    .as_deref()
                    .ok_or_else(|| invalid("auth.tls_key", "required with auth.mode = mtls"))?;
                check_secret_permissions("auth.tls_key", key)?;
                crate::net::server_tls_config(cert, key, self.auth.client_ca.as_deref())
                    .map_err(|e| invalid(e.setting(), e.to_string()))?;
            }
        }

        // Logging.
        tracing_subscriber::EnvFilter::try_new(&self.log.filter)
            .map_err(|e| invalid("log.filter", e.to_string()))?;
        Ok(())
    }

    /// The DER certificates of `trust.anchors`, in order. Each file must hold at least one
    /// PEM `CERTIFICATE` that parses as X.509.
    pub fn trust_anchors_der(&self) -> Result<Vec<Vec<u8>>, ConfigError> {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject as _;
        use x509_cert::der::Decode as _;
        const SETTING: &str = "trust.anchors";
        if self.trust.anchors.is_empty() {
            return Err(invalid(
                SETTING,
                "no trust anchor configured; set it to the PEM file of the certificate that \
                 signs trust-list entries",
            ));
        }
        let mut out = Vec::new();
        for path in &self.trust.anchors {
            let pem = std::fs::read(path).map_err(|source| ConfigError::ReadSettingFile {
                setting: SETTING.to_owned(),
                path: path.clone(),
                source,
            })?;
            let mut found = 0usize;
            for item in CertificateDer::pem_slice_iter(&pem) {
                let cert = item.map_err(|e| {
                    invalid(SETTING, format!("{}: invalid PEM: {e}", path.display()))
                })?;
                x509_cert::Certificate::from_der(cert.as_ref()).map_err(|e| {
                    invalid(
                        SETTING,
                        format!("{}: certificate does not parse: {e}", path.display()),
                    )
                })?;
                out.push(cert.as_ref().to_vec());
                found += 1;
            }
            if found == 0 {
                return Err(invalid(
                    SETTING,
                    format!("{}: no PEM CERTIFICATE found", path.display()),
                ));
            }
        }
        Ok(out)
    }

    /// The decoded encryption keys, `None` when none are configured.
    pub fn encryption_keys(&self) -> Result<Option<KeyRing>, ConfigError> {
        let enc = &self.encryption;
        let mut keys = BTreeMap::new();
        for (id, value) in &enc.keys {
            let setting = format!("encryption.keys.{id}");
            if id.is_empty()
                || id.len() > 32
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            {
                return Err(invalid(
                    &setting,
                    "key id must be 1..=32 characters of A-Z a-z 0-9 . _ -",
                ));
            }
            keys.insert(
                id.clone(),
                decode_key(value.expose()).map_err(|r| invalid(&setting, r))?,
            );
        }
        match (&enc.active_key, keys.is_empty()) {
            (None, true) => Ok(None),
            (None, false) => Err(invalid(
                "encryption.active_key",
                "required when encryption keys are configured",
            )),
            (Some(active), _) if !keys.contains_key(active) => Err(invalid(
                "encryption.active_key",
                format!("`{active}` is not in encryption.keys / encryption.key_files"),
            )),
            (Some(active), _) => Ok(Some(KeyRing {
                active: active.clone(),
                keys,
            })),
        }
    }

    /// The duplicate-detection HMAC secret, when configured.
    pub fn duplicate_hash_secret(&self) -> Option<&[u8]> {
        self.duplicate_hash
            .secret
            .as_ref()
            .map(|s| s.expose().as_bytes())
    }

    /// Connection handling limits derived from `http.*` and `upload.max_body_bytes`.
    pub fn net_limits(&self) -> NetLimits {
        let h = &self.http;
        NetLimits {
            max_connections: h.max_connections,
            tls_handshake_timeout: Duration::from_secs(h.tls_handshake_timeout_secs),
            header_read_timeout: Duration::from_secs(h.header_timeout_secs),
            idle_timeout: Duration::from_secs(h.idle_timeout_secs),
            body_read_timeout: Duration::from_secs(h.body_read_timeout_secs),
            max_body_bytes: Some(self.upload.max_body_bytes),
            shutdown_grace: Duration::from_secs(h.shutdown_grace_secs),
            max_header_bytes: h.max_header_bytes,
            ..NetLimits::default()
        }
    }

    /// The batching job's schedule: a check every `batching.check_secs`, each run bounded by
    /// `batching.run_limit_secs` (whether a batch is due is decided by the run, from
    /// `batching.interval_secs` and `batching.max_keys`).
    pub fn batching_schedule(&self) -> JobSchedule {
        JobSchedule::new(
            "batching",
            Duration::from_secs(self.batching.check_secs),
            Duration::from_secs(self.batching.run_limit_secs),
        )
    }

    /// The retention job's schedule: every `retention.interval_secs`, bounded by
    /// `retention.run_limit_secs`, the first run shortly after start.
    pub fn retention_schedule(&self) -> JobSchedule {
        JobSchedule::new(
            "retention",
            Duration::from_secs(self.retention.interval_secs),
            Duration::from_secs(self.retention.run_limit_secs),
        )
        .first_run_after(
            Duration::from_secs(60).min(Duration::from_secs(self.retention.interval_secs)),
        )
    }

    /// Every setting with its effective value (secrets redacted), one `key = value` per line.
    pub fn effective_settings(&self) -> String {
        SETTINGS
            .iter()
            .map(|s| format!("{} = {}\n", s.key, s.show(self)))
            .collect()
    }
}

fn nonzero(setting: &str, v: u64) -> Result<(), ConfigError> {
    if v == 0 {
        Err(invalid(setting, "must be greater than 0"))
    } else {
        Ok(())
    }
}

fn conflict(setting: &str, file_setting: &str) -> ConfigError {
    ConfigError::Conflict {
        setting: setting.to_owned(),
        file_setting: file_setting.to_owned(),
    }
}

fn decode_key(s: &str) -> Result<[u8; ENCRYPTION_KEY_LEN], String> {
    let s = s.trim();
    // Hex when it looks like hex (a 32-byte key in Base64 is 43 characters or has padding, so
    // it never does); Base64 otherwise.
    let bytes = if s.len().is_multiple_of(2) && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(s).map_err(|e| e.to_string())?
    } else {
        use base64::engine::general_purpose::{
            STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
        };
        [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|e| e.decode(s).ok())
            .ok_or_else(|| {
                "not 64 hex characters and not Base64; generate one with \
                 `openssl rand -hex 32`"
                    .to_owned()
            })?
    };
    <[u8; ENCRYPTION_KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
        format!(
            "decodes to {} bytes; an encryption key must be exactly {ENCRYPTION_KEY_LEN} bytes \
             (64 hex characters)",
            bytes.len()
        )
    })
}

fn strip_line_break(s: &str) -> &str {
    s.strip_suffix("\r\n")
        .or_else(|| s.strip_suffix('\n'))
        .unwrap_or(s)
}

/// Refuses a secret file that other users can access (Unix permission bits `& 0o007`).
pub fn check_secret_permissions(setting: &str, path: &Path) -> Result<(), ConfigError> {
    let meta = std::fs::metadata(path).map_err(|source| ConfigError::ReadSettingFile {
        setting: setting.to_owned(),
        path: path.to_owned(),
        source,
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o007 != 0 {
            return Err(ConfigError::SecretPermissions {
                setting: setting.to_owned(),
                path: path.to_owned(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    Ok(())
}

fn read_secret_bytes(setting: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    check_secret_permissions(setting, path)?;
    let bytes = std::fs::read(path).map_err(|source| ConfigError::ReadSettingFile {
        setting: setting.to_owned(),
        path: path.to_owned(),
        source,
    })?;
    if bytes.is_empty() {
        return Err(invalid(setting, format!("{} is empty", path.display())));
    }
    Ok(bytes)
}

fn read_secret_text(setting: &str, path: &Path) -> Result<String, ConfigError> {
    let bytes = read_secret_bytes(setting, path)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| invalid(setting, format!("{} is not UTF-8 text", path.display())))?;
    let text = strip_line_break(&text);
    if text.is_empty() {
        return Err(invalid(setting, format!("{} is empty", path.display())));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_redaction() {
        let u = DatabaseUrl::new("postgres://efgs:s3cr3t@db.example:5432/efgs?sslmode=require");
        assert_eq!(
            u.redacted(),
            "postgres://efgs:[redacted]@db.example:5432/efgs?sslmode=require"
        );
        let u = DatabaseUrl::new("host=db user=efgs password=s3cr3t dbname=efgs");
        assert_eq!(
            u.redacted(),
            "host=db user=efgs password=[redacted] dbname=efgs"
        );
        let u = DatabaseUrl::new("postgres://db/efgs?user=x&Password=s3cr3t&a=b");
        assert!(!u.redacted().contains("s3cr3t"));
        assert!(!format!("{u:?}").contains("s3cr3t"));
        let u = DatabaseUrl::new("postgres://efgs@db/efgs");
        assert_eq!(u.redacted(), "postgres://efgs@db/efgs");
    }

    #[test]
    fn key_decoding() {
        let hex32 = "00".repeat(32);
        assert_eq!(decode_key(&hex32).unwrap(), [0u8; 32]);
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert_eq!(decode_key(&b64).unwrap(), [7u8; 32]);
        assert!(
            decode_key(&"00".repeat(16))
                .unwrap_err()
                .contains("16 bytes")
        );
        assert!(decode_key("not a key!").is_err());
    }

    #[test]
    fn env_names_are_unique_and_derived() {
        let mut seen = std::collections::BTreeSet::new();
        for s in SETTINGS {
            assert!(seen.insert(s.env_var()), "duplicate {}", s.env_var());
        }
        assert!(seen.contains("EFGS_DATABASE_URL"));
        assert!(seen.contains("EFGS_LISTEN"));
        assert!(seen.contains("EFGS_LOG_FORMAT"));
    }

    #[test]
    fn every_setting_round_trips_through_env() {
        // Each setting's shown default parses back through its own environment variable.
        let d = Config::default();
        for s in SETTINGS {
            let mut c = Config::default();
            let shown = s.show(&d);
            if shown.contains("[redacted]") {
                continue;
            }
            (s.apply)(&mut c, &shown).unwrap_or_else(|e| panic!("{}: {e}", s.key));
            assert_eq!(s.show(&c), shown, "{}", s.key);
        }
    }
}
