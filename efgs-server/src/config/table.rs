//! The settings table: environment names, help text, display.

use super::*;

// ---------------------------------------------------------------------------------------------
// The settings table: environment names, help text, display
// ---------------------------------------------------------------------------------------------

/// One documented setting.
#[derive(Clone, Copy)]
pub(crate) struct Setting {
    /// Dotted key as in the TOML file (`database.url`).
    pub(crate) key: &'static str,
    /// What it does, its unit and its constraints.
    pub(crate) help: &'static str,
    pub(super) apply: fn(&mut Config, &str) -> Result<(), String>,
    show: fn(&Config) -> String,
}

impl Setting {
    /// The environment variable: `EFGS_` + key with dots as underscores, upper case.
    pub(crate) fn env_var(&self) -> String {
        env_name(self.key)
    }

    /// The setting's value in `cfg`, as it would be written in the environment; secrets are
    /// shown as `[redacted]`.
    pub(crate) fn show(&self, cfg: &Config) -> String {
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
env_value_enum!(SslMode { "disable" => SslMode::Disable, "require" => SslMode::Require, "verify-full" => SslMode::VerifyFull });
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
        pub(crate) static SETTINGS: &[Setting] = &[$(
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
    "database.schema" => database.schema:
        "Schema holding the tables, created if missing (for example when several gateways share one database); unset: the role's default `search_path`.";
    "database.sslmode" => database.sslmode:
        "TLS to the database: `disable`, `require` (encrypted, the server's certificate not checked) or `verify-full` (the certificate must chain to `database.ca_file` and name the host of `database.url`). Overrides any `sslmode` in the URL.";
    "database.ca_file" => database.ca_file:
        "PEM file with the CA certificate(s) the database's certificate must chain to (required with `database.sslmode = verify-full`).";
    "database.pool_size" => database.pool_size:
        "Maximum number of pooled database connections (>= 1).";
    "database.connect_timeout_secs" => database.connect_timeout_secs:
        "Seconds allowed to open a database connection, and to wait for a pooled one before a request gets 503 with Retry-After.";
    "auth.mode" => auth.mode:
        "Client authentication: `proxy-headers` (X-SSL-Client-SHA256 / X-SSL-Client-DN / X-SSL-Client-Cert from a TLS-terminating proxy) or `mtls` (this server terminates TLS and requires client certificates).";
    "auth.trusted_proxies" => auth.trusted_proxies:
        "proxy-headers mode: CIDR ranges whose certificate headers are honoured; requests with those headers from anywhere else get 403. Ranges broader than /8 (IPv4) or /16 (IPv6) are refused.";
    "auth.proxy_cert_header" => auth.proxy_cert_header:
        "proxy-headers mode: honour `X-SSL-Client-Cert` (URL-encoded PEM, e.g. nginx `$ssl_client_escaped_cert`). Off: only X-SSL-Client-SHA256 / X-SSL-Client-DN count, so a proxy that does not set or overwrite the certificate header cannot let a client present another country's certificate. When both the certificate and the SHA-256 header arrive they must name the same certificate; any identity header sent twice gets 403.";
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
    "upload.max_in_flight_bytes" => upload.max_in_flight_bytes:
        "Bytes that all uploads being received and processed may hold together (each counts its Content-Length, or upload.max_body_bytes without one); beyond it an upload gets 503 with Retry-After before its body is read. At least upload.max_body_bytes.";
    "download.max_age_days" => download.max_age_days:
        "Days back that download and audit serve (older dates give 410).";
    "download.cache_max_bytes" => download.cache_max_bytes:
        "Upper bound on the download bodies kept encoded in memory, in bytes (a 5000-key batch is about 210 KB in protobuf, 560 KB in JSON); 0 turns the cache off. Batches never change, so repeated downloads are served from memory (see docs/adr/0011).";
    "download.cache_ttl_secs" => download.cache_ttl_secs:
        "Seconds a cached download body is served after it was encoded (1 to 3600): the longest a retention run on another instance takes to reach this instance's downloads.";
    "batching.max_keys" => batching.max_keys:
        "Maximum keys per download batch.";
    "batching.interval_secs" => batching.interval_secs:
        "A batch is cut once the oldest pending upload is this many seconds old (or batching.max_keys are pending); 0 cuts at every check anything is pending.";
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
    "http.request_timeout_secs" => http.request_timeout_secs:
        "Seconds one request may take from its arrival until its response is completely sent; beyond it the connection is dropped (slow bodies, clients that do not read their responses).";
    "http.response_timeout_secs" => http.response_timeout_secs:
        "Seconds allowed to send a ready response completely (a client that stops reading, or an HTTP/2 flow-control window kept at zero, loses its connection).";
    "http.max_connections_per_address" => http.max_connections_per_address:
        "Maximum simultaneous connections from one client address; further ones are closed at once (0: no limit). The trusted proxies of proxy-headers mode are exempt.";
    "log.format" => log.format:
        "Log format: `text` or `json`.";
    "log.filter" => log.filter:
        "Log filter in tracing `EnvFilter` syntax, e.g. `info` or `info,efgs_server=debug`.";
    "audit.enabled" => audit.enabled:
        "Write the audit trail: one hash-chained event per security- or data-relevant action, stored before the action is answered (docs/operations.md). Off: no events, no push.";
    "audit.retention_days" => audit.retention_days:
        "Days audit-trail events are kept (default about 13 months; the trail holds no personal data). The retention job deletes older events.";
    "audit.syslog" => audit.syslog:
        "Push the trail to a syslog collector (RFC 5424, octet-counted framing over TCP): `tcp://host:port`, or `tls://host:port` (certificate checked against audit.ca_file). Delivery resumes from the last acknowledged event.";
    "audit.http_url" => audit.http_url:
        "Push the trail as JSON lines (application/x-ndjson) by HTTP POST to this `http://` or `https://` URL; a 2xx answer acknowledges the events sent.";
    "audit.http_token_file" => audit.http_token_file:
        "File holding a bearer token sent to audit.http_url as `Authorization: Bearer <token>` (must not be readable by others; one trailing line break is ignored). Unset: no Authorization header.";
    "audit.ca_file" => audit.ca_file:
        "PEM file with the CA certificate(s) the collectors' TLS certificates must chain to (required with `tls://` or `https://`).";
    "audit.push_retry_ms" => audit.push_retry_ms:
        "Milliseconds a pusher waits before trying again after a collector failed, and between looks for new events once caught up.";
    "metrics.listen" => metrics.listen:
        "Address of the private listener serving `/metrics` (Prometheus text), `/livez` and `/readyz`, e.g. `127.0.0.1:9090`; unset: none. Must differ from `listen`; never expose it publicly.";
    "callback.client_cert" => callback.client_cert:
        "PEM file with the certificate chain (leaf first) the gateway presents to callback receivers (mutual TLS). Unset: no callbacks are delivered (subscriptions are still accepted).";
    "callback.client_key" => callback.client_key:
        "PEM file with the private key of callback.client_cert (PKCS#8, PKCS#1 or SEC1; must not be readable by others).";
    "callback.allow_cidrs" => callback.allow_cidrs:
        "Comma-separated CIDR ranges callback URLs may resolve to although they are not public (private deployments, tests); empty: only public addresses. Checked at PUT and before every delivery.";
    "callback.timeout_secs" => callback.timeout_secs:
        "Seconds one callback attempt may take: connecting, the TLS handshake and the receiver's answer.";
    "callback.max_retries" => callback.max_retries:
        "Retries after a failed callback attempt; after the last one the subscription is suspended (a PUT re-activates it). Later batches of that subscription wait meanwhile.";
    "callback.retry_interval_secs" => callback.retry_interval_secs:
        "Seconds between a failed callback attempt and the next.";
    "callback.poll_millis" => callback.poll_millis:
        "Milliseconds between two looks for due callbacks (batches cut by another instance, retries that became due); a batch cut by this instance is announced at once.";
    "callback.lease_secs" => callback.lease_secs:
        "Seconds a claimed callback stays leased to this instance; an instance that died loses its leases after this long and another takes them over. More than callback.timeout_secs.";
    "callback.concurrency" => callback.concurrency:
        "Callback attempts in flight at once per instance (each to a different subscription).";
}

/// The settings reference used by `efgs-server --help` and `docs/CONFIGURATION.md`: every
/// setting with its environment variable, default and help text.
pub(crate) fn settings_help() -> String {
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
#[cfg(test)]
pub(crate) fn settings_markdown() -> String {
    let defaults = Config::default();
    let mut out = String::from(
        "# efgs-server configuration\n\n\
         Generated from `efgs_server::config::SETTINGS` (a test keeps this file in sync).\n\n\
         Sources, lowest precedence first: built-in defaults, the TOML file given by `--config` or\n\
         `EFGS_CONFIG` (unknown keys are refused; relative paths are relative to the file), then\n\
         `EFGS_*` environment variables (`section.name` is `EFGS_SECTION_NAME`; lists are\n\
         comma-separated, maps are `id=value,...`, an empty value unsets an optional setting; an\n\
         `EFGS_*` variable that names no setting is refused, except `EFGS_CONFIG`), then secrets read from the `*_file` settings. Secret files and the\n\
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
pub(super) fn is_non_setting_env(var: &str) -> bool {
    var == CONFIG_FILE_ENV
}
