//! The operations settings (`audit.*`, `metrics.*`) resolved: the collectors' addresses and
//! TLS client configuration, read once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use rustls_pki_types::ServerName;

use crate::config::{AuditConfig, ConfigError, MetricsConfig, Secret, invalid, invalid_because};

/// The audit trail, its push and the metrics listener.
#[derive(Clone, Debug)]
pub(crate) struct OpsSettings {
    /// Whether events are written (`audit.enabled`).
    pub(crate) trail: bool,
    /// How long events are kept (`audit.retention_days`).
    pub(crate) trail_retention: time::Duration,
    /// The collectors the trail is pushed to.
    pub(crate) sinks: Vec<SinkSettings>,
    /// Delay between delivery attempts (`audit.push_retry_ms`).
    pub(crate) push_retry: Duration,
    /// The metrics listener (`metrics.listen`).
    pub(crate) metrics_listen: Option<SocketAddr>,
}

/// A collector.
#[derive(Clone, Debug)]
pub(crate) struct SinkSettings {
    /// `syslog` or `http`: the name of its cursor.
    pub(crate) name: &'static str,
    /// What it speaks.
    pub(crate) kind: SinkKind,
    /// Where it listens.
    pub(crate) host: String,
    /// Its port.
    pub(crate) port: u16,
    /// TLS to it, with the roots of `audit.ca_file`.
    pub(crate) tls: Option<SinkTls>,
    /// The bearer token sent with every POST (`audit.http_token_file`; HTTP only).
    pub(crate) token: Option<Secret>,
}

/// The collector's protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SinkKind {
    /// RFC 5424 over TCP, octet-counted (RFC 6587).
    Syslog,
    /// HTTP POST of JSON lines to this path (and query).
    Http {
        /// The request target.
        path: String,
    },
}

/// TLS to a collector.
#[derive(Clone)]
pub(crate) struct SinkTls {
    /// The client configuration (ring provider, the CA file's roots).
    pub(crate) config: Arc<ClientConfig>,
    /// The name the certificate must carry.
    pub(crate) server_name: ServerName<'static>,
    /// The CA file, for display.
    ca_file: PathBuf,
}

impl std::fmt::Debug for SinkTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkTls")
            .field("server_name", &self.server_name)
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

/// Resolves `audit.*` and `metrics.*`; `listen` is the public address the metrics listener
/// must not share.
pub(crate) fn ops_settings(
    audit: AuditConfig,
    metrics: MetricsConfig,
    listen: SocketAddr,
) -> Result<OpsSettings, ConfigError> {
    let AuditConfig {
        enabled,
        retention_days,
        syslog,
        http_url,
        http_token_file: _, // read into `http_token` by the loader
        http_token,
        ca_file,
        push_retry_ms,
    } = audit;
    let MetricsConfig {
        listen: metrics_listen,
    } = metrics;
    if retention_days == 0 {
        return Err(invalid("audit.retention_days", "must be at least 1"));
    }
    if push_retry_ms == 0 {
        return Err(invalid("audit.push_retry_ms", "must be at least 1"));
    }
    if let Some(m) = metrics_listen
        && m.port() == listen.port()
        && (m.ip() == listen.ip() || m.ip().is_unspecified() || listen.ip().is_unspecified())
    {
        return Err(invalid(
            "metrics.listen",
            format!("{m} is the public listen address; the metrics listener must be private"),
        ));
    }
    let roots = ca_file.as_deref().map(roots).transpose()?;
    let mut sinks = Vec::new();
    if let Some(url) = syslog.filter(|s| !s.trim().is_empty()) {
        sinks.push(sink(
            "audit.syslog",
            "syslog",
            &url,
            ca_file.as_deref(),
            roots.as_ref(),
        )?);
    }
    if let Some(url) = http_url.filter(|s| !s.trim().is_empty()) {
        let mut http = sink(
            "audit.http_url",
            "http",
            &url,
            ca_file.as_deref(),
            roots.as_ref(),
        )?;
        if let Some(token) = &http_token {
            check_token(token)?;
        }
        http.token = http_token;
        sinks.push(http);
    } else if http_token.is_some() {
        return Err(invalid(
            "audit.http_token_file",
            "is set but audit.http_url is not: there is no collector to send it to",
        ));
    }
    if !enabled && !sinks.is_empty() {
        return Err(invalid(
            "audit.enabled",
            "is off but audit.syslog or audit.http_url is set: there would be nothing to push",
        ));
    }
    Ok(OpsSettings {
        trail: enabled,
        trail_retention: time::Duration::days(i64::from(retention_days)),
        sinks,
        push_retry: Duration::from_millis(push_retry_ms),
        metrics_listen,
    })
}

fn roots(path: &Path) -> Result<rustls::RootCertStore, ConfigError> {
    let mut store = rustls::RootCertStore::empty();
    for der in super::pem_certificates("audit.ca_file", path)? {
        store
            .add(der.into())
            .map_err(|e| invalid_because("audit.ca_file", e))?;
    }
    Ok(store)
}

fn sink(
    setting: &'static str,
    name: &'static str,
    url: &str,
    ca_file: Option<&Path>,
    roots: Option<&rustls::RootCertStore>,
) -> Result<SinkSettings, ConfigError> {
    let uri: http::Uri = url
        .trim()
        .parse()
        .map_err(|e| invalid_because(setting, e))?;
    let scheme = uri.scheme_str().unwrap_or("");
    let (kind, tls, default_port) = match (setting, scheme) {
        ("audit.syslog", "tcp") => (SinkKind::Syslog, false, 514),
        ("audit.syslog", "tls") => (SinkKind::Syslog, true, 6514),
        ("audit.http_url", "http" | "https") => (
            SinkKind::Http {
                path: uri
                    .path_and_query()
                    .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
            },
            scheme == "https",
            if scheme == "https" { 443 } else { 80 },
        ),
        ("audit.syslog", _) => {
            return Err(invalid(
                setting,
                "must be tcp://host:port or tls://host:port",
            ));
        }
        _ => return Err(invalid(setting, "must be an http:// or https:// URL")),
    };
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| invalid(setting, "has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let tls = if tls {
        let (Some(roots), Some(ca_file)) = (roots, ca_file) else {
            return Err(invalid(
                "audit.ca_file",
                format!("required with a TLS collector ({setting})"),
            ));
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid_because(setting, e))?
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        Some(SinkTls {
            config: Arc::new(config),
            server_name: ServerName::try_from(host.clone())
                .map_err(|e| invalid_because(setting, e))?,
            ca_file: ca_file.to_owned(),
        })
    } else {
        None
    };
    Ok(SinkSettings {
        name,
        kind,
        port: uri.port_u16().unwrap_or(default_port),
        host,
        tls,
        token: None,
    })
}

/// A bearer token must be a visible-ASCII `token68` (RFC 6750 §2.1), so that it travels in
/// the header unchanged. The message never shows the token.
fn check_token(token: &Secret) -> Result<(), ConfigError> {
    let t = token.expose();
    let ok = t.bytes().all(|b| {
        b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
    });
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "audit.http_token_file",
            "the token must be one line of letters, digits and `-._~+/=` (RFC 6750 token68)",
        ))
    }
}
