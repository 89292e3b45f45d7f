//! Typed settings: the configuration document ([`Config`]: defaults < TOML file < `EFGS_*`
//! environment < secret files) resolved once into what each part of the server consumes.
//!
//! Resolving reads every file a setting names exactly once: the trust anchors are parsed into
//! [`TrustAnchors`], the TLS material into a rustls `ServerConfig` (the TLS layer's own
//! settings type), the encryption keys into the PostgreSQL store's [`PgConfig`] (the store's
//! own settings type, with the password and timeouts). Every section of the document is taken
//! apart field by field with no `..` rest pattern, so a setting that is parsed but not passed on
//! does not compile.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use efgs_core::batch_signature::SignaturePolicy;
use efgs_core::batching::BatchingPolicy;
use efgs_core::callback_url::IpCidr;
use efgs_core::download::DownloadPolicy;
use efgs_core::download_cache::DownloadCachePolicy;
use efgs_core::gateway::GatewayPolicy;
use efgs_core::retention::RetentionPolicy;
use efgs_core::trust::{TrustAnchor, TrustAnchors};
use efgs_core::validate::ValidationPolicy;
use efgs_store_postgres::{EncryptionKeys, KeyId, PgConfig, PgTls};
use rustls::ServerConfig;

use crate::callback::{ClientCredentials, DeliverySettings};
use crate::config::{
    AuthConfig, AuthMode, BatchingConfig, CallbackConfig, Config, ConfigError, DatabaseConfig,
    DownloadConfig, DuplicateHashConfig, EncryptionConfig, HttpConfig, LogConfig, RetentionConfig,
    Secret, SignatureConfig, SslMode, StorageKind, TrustConfig, UploadConfig, invalid,
    invalid_because,
};
use crate::jobs::JobSchedule;
use crate::net::{NetLimits, server_tls_config};
use efgs_core::callback::{CallbackPolicy, RetryPolicy};
use efgs_core::callback_url::AddressPolicy;

/// The server's settings, resolved once from the configuration: every file a setting names is
/// read here, once, into the settings type of the part that uses it. Build them with
/// [`Settings::load`].
#[derive(Clone)]
pub struct Settings {
    pub(crate) listen: SocketAddr,
    pub(crate) store: StoreSettings,
    pub(crate) auth: AuthSettings,
    pub(crate) anchors: TrustAnchors,
    pub(crate) import_dir: Option<PathBuf>,
    pub(crate) policy: GatewayPolicy,
    pub(crate) duplicate_hash_secret: Option<Secret>,
    pub(crate) body_limit: u64,
    pub(crate) uploads_in_flight: u64,
    pub(crate) net: NetLimits,
    pub(crate) batching_job: JobSchedule,
    pub(crate) retention_job: JobSchedule,
    pub(crate) log: LogConfig,
    pub(crate) ops: OpsSettings,
    pub(crate) delivery: crate::callback::DeliverySettings,
    document: Config,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The document's Debug redacts every secret.
        f.debug_struct("Settings")
            .field("document", &self.document)
            .finish_non_exhaustive()
    }
}

/// Where the data lives.
#[derive(Clone, Debug)]
pub(crate) enum StoreSettings {
    /// In memory, lost at exit.
    Memory,
    /// PostgreSQL, with everything the connection needs.
    Postgres(Box<PgConfig>),
}

/// How clients authenticate, with the TLS material loaded.
#[derive(Clone)]
pub(crate) enum AuthSettings {
    /// Identity headers honoured from these proxies only.
    ProxyHeaders {
        trusted: Vec<IpCidr>,
        cert_header: bool,
    },
    /// This server terminates TLS and requires client certificates.
    Mtls { tls: Arc<ServerConfig> },
}

impl Settings {
    /// Loads and resolves the configuration: the TOML `file` if given, `EFGS_*` variables
    /// from `env` (pass `std::env::vars_os()`), secret files, every check, then the files the
    /// settings name (trust anchors, TLS material, keys). Every refusal names its setting.
    pub fn load<I, K, V>(file: Option<&std::path::Path>, env: I) -> Result<Settings, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<std::ffi::OsStr>,
        V: AsRef<std::ffi::OsStr>,
    {
        Settings::resolve(Config::load(file, env)?)
    }

    /// The address to listen on (`listen`).
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// The use-case policies (`upload.*`, `download.*`, `batching.*`, `retention.*`,
    /// `signature.*`).
    pub fn policy(&self) -> &GatewayPolicy {
        &self.policy
    }

    /// Every setting with its effective value (secrets redacted), one `key = value` per line:
    /// what `efgs-server serve --check` prints.
    pub fn effective_settings(&self) -> String {
        self.document.effective_settings()
    }

    /// Whether the data is kept in memory only (lost at exit).
    pub fn is_memory_store(&self) -> bool {
        matches!(self.store, StoreSettings::Memory)
    }

    #[cfg(test)]
    pub(crate) fn document(&self) -> &Config {
        &self.document
    }

    fn resolve(document: Config) -> Result<Settings, ConfigError> {
        let Config {
            listen,
            storage,
            database,
            auth,
            trust,
            upload,
            download,
            batching,
            retention,
            signature,
            encryption,
            duplicate_hash,
            http,
            log,
            audit,
            metrics,
            callback,
        } = document.clone();
        let ops = ops_settings(audit, metrics, listen)?;

        let store = match storage {
            StorageKind::Memory => StoreSettings::Memory,
            StorageKind::Postgres => StoreSettings::Postgres(Box::new(pg_config(
                database,
                encryption_keys(encryption)?.ok_or_else(|| {
                    invalid(
                        "encryption.active_key",
                        "required with storage = postgres, together with encryption.keys or \
                         encryption.key_files: key payloads are encrypted at rest",
                    )
                })?,
            )?)),
        };
        let auth = auth_settings(auth)?;
        let TrustConfig {
            anchors,
            import_dir,
        } = trust;
        let anchors = trust_anchors(&anchors)?;
        let UploadConfig {
            max_keys,
            max_body_bytes,
            max_in_flight_bytes,
        } = upload;
        let mut policy = gateway_policy(max_keys, download, &batching, &retention, signature);
        let (callback_policy, delivery) = callback_settings(callback)?;
        policy.callback = callback_policy;
        let DuplicateHashConfig {
            secret,
            secret_file: _, // read into `secret` by the loader
        } = duplicate_hash;
        let (batching_job, retention_job) = job_schedules(batching, retention);
        let net = net_limits(http, max_body_bytes, &auth);
        Ok(Settings {
            listen,
            store,
            auth,
            anchors,
            import_dir,
            policy,
            duplicate_hash_secret: secret,
            body_limit: max_body_bytes,
            uploads_in_flight: max_in_flight_bytes,
            net,
            batching_job,
            retention_job,
            log,
            ops,
            delivery,
            document,
        })
    }
}

fn pg_config(database: DatabaseConfig, keys: EncryptionKeys) -> Result<PgConfig, ConfigError> {
    let DatabaseConfig {
        url,
        url_file: _, // read into `url` by the loader
        password,
        password_file: _, // read into `password` by the loader
        schema,
        sslmode,
        ca_file,
        pool_size,
        connect_timeout_secs,
    } = database;
    let url = url.ok_or_else(|| {
        invalid(
            "database.url",
            "required with storage = postgres (or set database.url_file)",
        )
    })?;
    let timeout = Duration::from_secs(connect_timeout_secs);
    let mut pg = PgConfig::new(url.expose(), keys)
        .with_pool_size(usize::try_from(pool_size).unwrap_or(usize::MAX))
        .with_timeouts(timeout, timeout);
    if let Some(password) = password {
        pg = pg.with_password(password.expose());
    }
    if let Some(schema) = schema {
        pg = pg.with_schema(schema);
    }
    let tls = match (sslmode, ca_file) {
        (SslMode::Disable, _) => PgTls::Disable,
        (SslMode::Require, _) => PgTls::Require,
        (SslMode::VerifyFull, Some(ca)) => PgTls::VerifyFull {
            roots: pem_certificates("database.ca_file", &ca)?,
        },
        (SslMode::VerifyFull, None) => {
            return Err(invalid(
                "database.ca_file",
                "required with database.sslmode = verify-full",
            ));
        }
    };
    Ok(pg.with_tls(tls))
}

/// The encryption keys (`encryption.*`), `None` when none are configured. Key ids are numbers
/// 0..=32767: each stored row records the id of the key that sealed it.
fn encryption_keys(enc: EncryptionConfig) -> Result<Option<EncryptionKeys>, ConfigError> {
    let EncryptionConfig {
        active_key,
        keys,
        key_files: _, // read into `keys` by the loader
    } = enc;
    let parse_id = |setting: &str, id: &str| {
        id.trim()
            .parse::<KeyId>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| {
                invalid(
                    setting,
                    format!(
                        "key id `{id}` must be a number from 0 to 32767 (for example 1, 2, ...)"
                    ),
                )
            })
    };
    let mut decoded = Vec::new();
    for (id, value) in &keys {
        let setting = format!("encryption.keys.{id}");
        let key = crate::config::decode_key(value.expose()).map_err(|r| invalid(&setting, r))?;
        decoded.push((parse_id(&setting, id)?, key));
    }
    match (active_key, decoded.is_empty()) {
        (None, true) => Ok(None),
        (None, false) => Err(invalid(
            "encryption.active_key",
            "required when encryption keys are configured",
        )),
        (Some(active), _) => {
            let active_id = parse_id("encryption.active_key", &active)?;
            EncryptionKeys::new(active_id, decoded)
                .map(Some)
                .map_err(|e| invalid_because("encryption.active_key", e))
        }
    }
}

fn auth_settings(auth: AuthConfig) -> Result<AuthSettings, ConfigError> {
    let AuthConfig {
        mode,
        trusted_proxies,
        proxy_cert_header,
        tls_cert,
        tls_key,
        client_ca,
    } = auth;
    Ok(match mode {
        AuthMode::ProxyHeaders => AuthSettings::ProxyHeaders {
            trusted: trusted_proxies,
            cert_header: proxy_cert_header,
        },
        AuthMode::Mtls => {
            let cert = tls_cert
                .ok_or_else(|| invalid("auth.tls_cert", "required with auth.mode = mtls"))?;
            let key =
                tls_key.ok_or_else(|| invalid("auth.tls_key", "required with auth.mode = mtls"))?;
            crate::config::check_secret_permissions("auth.tls_key", &key)?;
            AuthSettings::Mtls {
                tls: server_tls_config(&cert, &key, client_ca.as_deref())?,
            }
        }
    })
}

/// The DER certificates of a PEM file named by `setting` (at least one).
fn pem_certificates(setting: &'static str, path: &Path) -> Result<Vec<Vec<u8>>, ConfigError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    let pem = std::fs::read(path).map_err(|source| ConfigError::ReadSettingFile {
        setting: setting.to_owned(),
        path: path.to_owned(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConfigError::SettingFile {
            setting,
            path: path.to_owned(),
            source: Box::new(e),
        })?;
    if certs.is_empty() {
        return Err(invalid(
            setting,
            format!("{}: no PEM CERTIFICATE found", path.display()),
        ));
    }
    Ok(certs)
}

/// The trust anchors (`trust.anchors`): each file must hold at least one PEM `CERTIFICATE`.
fn trust_anchors(files: &[PathBuf]) -> Result<TrustAnchors, ConfigError> {
    const SETTING: &str = "trust.anchors";
    if files.is_empty() {
        return Err(invalid(
            SETTING,
            "no trust anchor configured; set it to the PEM file of the certificate that \
             signs trust-list entries",
        ));
    }
    let mut anchors = Vec::new();
    for path in files {
        for der in pem_certificates(SETTING, path)? {
            anchors.push(
                TrustAnchor::from_der(&der).map_err(|e| ConfigError::SettingFile {
                    setting: SETTING,
                    path: path.clone(),
                    source: Box::new(e),
                })?,
            );
        }
    }
    TrustAnchors::new(anchors).map_err(|e| invalid_because(SETTING, e))
}

/// The callback policy (addresses, retries) for the gateway and the delivery settings for the
/// worker; the client certificate and key are read here, once.
fn callback_settings(
    callback: CallbackConfig,
) -> Result<(CallbackPolicy, DeliverySettings), ConfigError> {
    let CallbackConfig {
        client_cert,
        client_key,
        allow_cidrs,
        timeout_secs,
        max_retries,
        retry_interval_secs,
        poll_millis,
        lease_secs,
        concurrency,
    } = callback;
    let client = match (client_cert, client_key) {
        (Some(cert), Some(key)) => {
            use rustls_pki_types::pem::PemObject as _;
            crate::config::check_secret_permissions("callback.client_key", &key)?;
            let chain = pem_certificates("callback.client_cert", &cert)?
                .into_iter()
                .map(rustls_pki_types::CertificateDer::from)
                .collect();
            let key = rustls_pki_types::PrivateKeyDer::from_pem_file(&key)
                .map_err(|e| invalid_because("callback.client_key", e))?;
            let credentials = ClientCredentials { chain, key };
            // The pair must match: refuse at start, not at the first delivery.
            crate::callback::client_config(&credentials, std::collections::HashSet::new())
                .map_err(|e| invalid_because("callback.client_key", e))?;
            Some(credentials)
        }
        _ => None,
    };
    let policy = CallbackPolicy {
        addresses: AddressPolicy {
            allowed: allow_cidrs,
        },
        retry: RetryPolicy {
            max_retries,
            interval: Duration::from_secs(retry_interval_secs),
        },
    };
    let delivery = DeliverySettings {
        client,
        timeout: Duration::from_secs(timeout_secs),
        poll: Duration::from_millis(poll_millis),
        lease: Duration::from_secs(lease_secs),
        concurrency,
    };
    Ok((policy, delivery))
}

fn gateway_policy(
    max_keys: usize,
    download: DownloadConfig,
    batching: &BatchingConfig,
    retention: &RetentionConfig,
    signature: SignatureConfig,
) -> GatewayPolicy {
    let DownloadConfig {
        max_age_days,
        cache_max_bytes,
        cache_ttl_secs,
    } = download;
    let SignatureConfig { allow_sha1 } = signature;
    let secs = |s: u64| time::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX));
    GatewayPolicy {
        validation: ValidationPolicy { max_keys },
        signature: SignaturePolicy {
            allow_sha1,
            ..SignaturePolicy::default()
        },
        download: DownloadPolicy { max_age_days },
        download_cache: DownloadCachePolicy {
            max_bytes: usize::try_from(cache_max_bytes).unwrap_or(usize::MAX),
            ttl: secs(cache_ttl_secs),
        },
        batching: BatchingPolicy {
            max_keys: batching.max_keys,
            interval: secs(batching.interval_secs),
        },
        retention: RetentionPolicy {
            key_max_age_days: retention.key_days,
            metadata_max_age_days: retention.metadata_days,
        },
        callback: CallbackPolicy::default(),
    }
}

/// The batching job checks every `batching.check_secs`; the retention job runs every
/// `retention.interval_secs` (the first run one interval after start).
fn job_schedules(
    batching: BatchingConfig,
    retention: RetentionConfig,
) -> (JobSchedule, JobSchedule) {
    let BatchingConfig {
        max_keys: _,      // in the batching policy
        interval_secs: _, // in the batching policy
        check_secs,
        run_limit_secs,
    } = batching;
    let RetentionConfig {
        key_days: _,      // in the retention policy
        metadata_days: _, // in the retention policy
        interval_secs,
        run_limit_secs: retention_limit,
    } = retention;
    let batching = JobSchedule::new(
        "batching",
        Duration::from_secs(check_secs),
        Duration::from_secs(run_limit_secs),
    );
    let retention = JobSchedule::new(
        "retention",
        Duration::from_secs(interval_secs),
        Duration::from_secs(retention_limit),
    );
    (batching, retention)
}

/// The connection limits; the per-address limit exempts the trusted proxies.
fn net_limits(http: HttpConfig, max_body_bytes: u64, auth: &AuthSettings) -> NetLimits {
    let HttpConfig {
        max_connections,
        tls_handshake_timeout_secs,
        header_timeout_secs,
        idle_timeout_secs,
        body_read_timeout_secs,
        shutdown_grace_secs,
        max_header_bytes,
        request_timeout_secs,
        response_timeout_secs,
        max_connections_per_address,
    } = http;
    NetLimits {
        max_connections,
        tls_handshake_timeout: Duration::from_secs(tls_handshake_timeout_secs),
        header_read_timeout: Duration::from_secs(header_timeout_secs),
        idle_timeout: Duration::from_secs(idle_timeout_secs),
        body_read_timeout: Duration::from_secs(body_read_timeout_secs),
        max_body_bytes: Some(max_body_bytes),
        shutdown_grace: Duration::from_secs(shutdown_grace_secs),
        max_header_bytes,
        request_timeout: Duration::from_secs(request_timeout_secs),
        response_timeout: Duration::from_secs(response_timeout_secs),
        max_connections_per_address,
        per_address_exempt: match auth {
            AuthSettings::ProxyHeaders { trusted, .. } => trusted.clone(),
            AuthSettings::Mtls { .. } => Vec::new(),
        },
        ..NetLimits::default()
    }
}

mod ops;
use ops::ops_settings;
pub(crate) use ops::{OpsSettings, SinkKind, SinkSettings};

#[cfg(test)]
mod tests;
