//! Loading: defaults < TOML file < environment < secret files, and the checks.

use super::table::is_non_setting_env;
use super::*;

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

impl Config {
    /// Loads the configuration: defaults, the TOML file if given, `EFGS_*` overrides from
    /// `env` (pass `std::env::vars_os()`), secrets from files; then [`Config::validate`].
    pub(crate) fn load<I, K, V>(file: Option<&Path>, env: I) -> Result<Config, ConfigError>
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
    pub(crate) fn from_file(path: &Path) -> Result<Config, ConfigError> {
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

    pub(super) fn parse_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| parse_error(text, path, &e))
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
        rebase_opt(&mut self.database.ca_file);
        rebase_opt(&mut self.auth.tls_cert);
        rebase_opt(&mut self.auth.tls_key);
        rebase_opt(&mut self.auth.client_ca);
        self.trust.anchors.iter_mut().for_each(rebase);
        rebase_opt(&mut self.trust.import_dir);
        self.encryption.key_files.values_mut().for_each(rebase);
        rebase_opt(&mut self.duplicate_hash.secret_file);
        rebase_opt(&mut self.audit.ca_file);
        rebase_opt(&mut self.audit.http_token_file);
        rebase_opt(&mut self.callback.client_cert);
        rebase_opt(&mut self.callback.client_key);
    }

    /// Applies `EFGS_*` overrides. Variables not starting with `EFGS_` are ignored; an `EFGS_*`
    /// variable that names no setting is refused (see the module documentation).
    pub(crate) fn apply_env<I, K, V>(&mut self, env: I) -> Result<(), ConfigError>
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
    pub(crate) fn load_secret_files(&mut self) -> Result<(), ConfigError> {
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
        if let Some(path) = &self.audit.http_token_file {
            let text = read_secret_text("audit.http_token_file", path)?;
            self.audit.http_token = Some(Secret::new(text));
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
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        // Sizes and counts.
        nonzero("upload.max_keys", self.upload.max_keys as u64)?;
        nonzero("upload.max_body_bytes", self.upload.max_body_bytes)?;
        if self.upload.max_in_flight_bytes < self.upload.max_body_bytes {
            return Err(invalid(
                "upload.max_in_flight_bytes",
                format!(
                    "{} is below upload.max_body_bytes ({}): an upload of the largest allowed \
                     size could never be received",
                    self.upload.max_in_flight_bytes, self.upload.max_body_bytes
                ),
            ));
        }
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
            ("http.request_timeout_secs", self.http.request_timeout_secs),
            (
                "http.response_timeout_secs",
                self.http.response_timeout_secs,
            ),
            (
                "database.connect_timeout_secs",
                self.database.connect_timeout_secs,
            ),
        ] {
            nonzero(setting, v)?;
        }
        for (setting, v) in [
            ("callback.timeout_secs", self.callback.timeout_secs),
            ("callback.poll_millis", self.callback.poll_millis),
            ("callback.lease_secs", self.callback.lease_secs),
            ("callback.concurrency", self.callback.concurrency as u64),
        ] {
            nonzero(setting, v)?;
        }
        if self.callback.lease_secs <= self.callback.timeout_secs {
            return Err(invalid(
                "callback.lease_secs",
                "must be greater than callback.timeout_secs (a lease must outlast an attempt)",
            ));
        }
        if self.callback.client_cert.is_some() != self.callback.client_key.is_some() {
            return Err(invalid(
                "callback.client_key",
                "callback.client_cert and callback.client_key are set together",
            ));
        }
        if !(8 * 1024..=1024 * 1024).contains(&self.http.max_header_bytes) {
            return Err(invalid(
                "http.max_header_bytes",
                format!("{} is outside 8192..=1048576", self.http.max_header_bytes),
            ));
        }

        // Trust anchors: read and parsed once, by `Settings`.
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
        // Encryption keys: decoded once, by `Settings`.
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
            // TLS material: loaded once, by `Settings`.
            AuthMode::Mtls => {}
        }

        // Logging.
        tracing_subscriber::EnvFilter::try_new(&self.log.filter)
            .map_err(|e| invalid_because("log.filter", e))?;
        Ok(())
    }

    /// The DER certificates of `trust.anchors`, in order. Each file must hold at least one
    /// PEM `CERTIFICATE` that parses as X.509.
    pub(crate) fn effective_settings(&self) -> String {
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

/// A TOML error without the file's text: `toml`'s own `Display` quotes the offending line, and
/// serde's messages quote the offending value (`invalid type: string "…"`), either of which may be
/// a secret (hardening issue, low item; `config::tests::parse_errors_do_not_echo_the_file`).
fn parse_error(text: &str, path: &Path, e: &toml::de::Error) -> ConfigError {
    let (line, column) = e.span().map_or((0, 0), |span| {
        let before = &text.as_bytes()[..span.start.min(text.len())];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        (line, before.len() - line_start + 1)
    });
    ConfigError::Parse {
        path: path.to_owned(),
        line,
        column,
        message: without_quoted_values(e.message()),
    }
}

/// `message` with the contents of every `"…"` replaced by `…` (serde quotes values with double
/// quotes; key names, which it quotes with backticks, stay).
fn without_quoted_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quote: Option<char> = None;
    for c in message.chars() {
        match quote {
            Some(q) if c == q => {
                out.push('…');
                out.push(c);
                quote = None;
            }
            Some(_) => {}
            None => {
                out.push(c);
                if c == '"' {
                    quote = Some(c);
                }
            }
        }
    }
    if quote.is_some() {
        out.push('…');
    }
    out
}
