//! The configuration loader: file + environment + secret files, refusals naming their
//! setting, redaction, generated documentation.

use std::path::{Path, PathBuf};

use efgs_core::callback_url::any_contains;
use efgs_store_postgres::{EncryptionKeys, PgConfig};

use super::{AuthMode, Config, ConfigError, StorageKind, settings_markdown};
use crate::settings::{AuthSettings, Settings, StoreSettings};

const NO_ENV: [(&str, &str); 0] = [];

struct Dir {
    dir: tempfile::TempDir,
    anchor: PathBuf,
}

impl Dir {
    fn new() -> Dir {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let anchor = dir.path().join("anchor.pem");
        std::fs::write(&anchor, cert.pem()).unwrap();
        Dir { dir, anchor }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `efgs.toml` with the trust anchor plus `extra`.
    fn config(&self, extra: &str) -> PathBuf {
        let p = self.path("efgs.toml");
        std::fs::write(
            &p,
            format!("{extra}\n[trust]\nanchors = [\"anchor.pem\"]\n"),
        )
        .unwrap();
        p
    }

    fn secret(&self, name: &str, content: &[u8], mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let p = self.path(name);
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }
}

/// Loads and resolves, as `efgs-server` does.
fn settings(file: &Path, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    Settings::load(Some(file), env.iter().copied())
}

/// [`settings`], returning the document for inspection.
fn load(file: &Path, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    settings(file, env).map(|s| s.document().clone())
}

fn postgres(s: &Settings) -> &PgConfig {
    match &s.store {
        StoreSettings::Postgres(pg) => pg,
        StoreSettings::Memory => panic!("not postgres"),
    }
}

fn trusts(s: &Settings, ip: &str) -> bool {
    match &s.auth {
        AuthSettings::ProxyHeaders { trusted, .. } => any_contains(trusted, ip.parse().unwrap()),
        AuthSettings::Mtls { .. } => panic!("not proxy-headers"),
    }
}

fn refused_setting(r: Result<Config, ConfigError>) -> (String, String) {
    let e = r.expect_err("configuration should be refused");
    let msg = e.to_string();
    let setting = e.setting().unwrap_or_default().to_owned();
    assert!(
        msg.starts_with(&setting),
        "message does not start with {setting}: {msg}"
    );
    (setting, msg)
}

const PG_SECRETS: &str = r#"
storage = "postgres"
[database]
url = "postgres://efgs:pw@localhost/efgs"
[encryption]
active_key = "1"
keys = { 1 = "0000000000000000000000000000000000000000000000000000000000000000" }
[duplicate_hash]
secret = "0123456789abcdef0123456789abcdef"
"#;

#[test]
fn defaults_with_a_trust_anchor_are_valid() {
    let d = Dir::new();
    let s = settings(&d.config(""), &[]).unwrap();
    let cfg = s.document();
    assert_eq!(cfg.listen.to_string(), "127.0.0.1:8090");
    assert_eq!(cfg.storage, StorageKind::Memory);
    assert_eq!(cfg.auth.mode, AuthMode::ProxyHeaders);
    assert!(trusts(&s, "127.0.0.1"));
    assert!(trusts(&s, "::1"));
    assert!(trusts(&s, "::ffff:127.0.0.1"));
    assert!(!trusts(&s, "10.0.0.1"));
    assert_eq!(cfg.upload.max_keys, 5000);
    assert_eq!(cfg.batching.max_keys, 5000);
    assert_eq!(cfg.upload.max_body_bytes, 16 * 1024 * 1024);
    assert_eq!(cfg.download.max_age_days, 2);
    assert_eq!(cfg.batching.interval_secs, 300);
    assert_eq!(cfg.retention.key_days, 2);
    assert_eq!(cfg.retention.metadata_days, 30);
    assert!(!cfg.signature.allow_sha1);
    assert_eq!(s.net.max_body_bytes, Some(16 * 1024 * 1024));
    assert_eq!(s.body_limit, 16 * 1024 * 1024);
    assert_eq!(s.batching_job.run_limit.as_secs(), 1200);
    assert_eq!(s.batching_job.every.as_secs(), 10);
    assert_eq!(s.retention_job.every.as_secs(), 3600);
    assert_eq!(s.policy.batching.interval, time::Duration::seconds(300));
    assert!(s.is_memory_store());
}

#[test]
fn postgres_configuration_loads_and_decodes_keys() {
    let d = Dir::new();
    let s = settings(&d.config(PG_SECRETS), &[]).unwrap();
    let pg = postgres(&s);
    assert_eq!(pg.encryption, EncryptionKeys::single(1, [0u8; 32]).unwrap());
    assert_eq!(pg.url, "postgres://efgs:pw@localhost/efgs");
    assert_eq!(pg.password, None);
    assert_eq!(pg.connect_timeout.as_secs(), 5);
    assert_eq!(s.duplicate_hash_secret.as_ref().unwrap().expose().len(), 32);
}

#[test]
fn database_password_schema_and_timeout_reach_the_store_settings() {
    let d = Dir::new();
    let pw = d.secret("db-password", b"s3cret\n", 0o600);
    let s = settings(
        &d.config(PG_SECRETS),
        &[
            ("EFGS_DATABASE_PASSWORD_FILE", pw.to_str().unwrap()),
            ("EFGS_DATABASE_SCHEMA", "efgs_acc"),
            ("EFGS_DATABASE_CONNECT_TIMEOUT_SECS", "7"),
            ("EFGS_DATABASE_POOL_SIZE", "3"),
        ],
    )
    .unwrap();
    let pg = postgres(&s);
    assert_eq!(pg.password.as_deref(), Some("s3cret"));
    assert_eq!(pg.schema.as_deref(), Some("efgs_acc"));
    assert_eq!(pg.connect_timeout.as_secs(), 7);
    assert_eq!(pg.wait_timeout.as_secs(), 7);
    assert_eq!(pg.pool_size, 3);
    assert!(!format!("{s:?}").contains("s3cret"));
    let s = settings(
        &d.config(PG_SECRETS),
        &[("EFGS_DATABASE_PASSWORD", "inline")],
    )
    .unwrap();
    assert_eq!(postgres(&s).password.as_deref(), Some("inline"));
}

#[test]
fn encryption_key_ids_are_numbers() {
    let d = Dir::new();
    let key = "00".repeat(32);
    let keys = format!("k1={key}");
    let (setting, msg) = refused_setting(load(
        &d.config(PG_SECRETS),
        &[
            ("EFGS_ENCRYPTION_KEYS", keys.as_str()),
            ("EFGS_ENCRYPTION_ACTIVE_KEY", "k1"),
        ],
    ));
    assert_eq!(setting, "encryption.keys.k1");
    assert!(msg.contains("number"), "{msg}");
    let keys = format!("1={key},2={}", "11".repeat(32));
    let s = settings(
        &d.config(PG_SECRETS),
        &[
            ("EFGS_ENCRYPTION_KEYS", keys.as_str()),
            ("EFGS_ENCRYPTION_ACTIVE_KEY", "2"),
        ],
    )
    .unwrap();
    assert_eq!(postgres(&s).encryption.active(), 2);
    assert_eq!(postgres(&s).encryption.ids().collect::<Vec<_>>(), [1, 2]);
}

#[test]
fn environment_overrides_the_file() {
    let d = Dir::new();
    let file = d.config(
        "listen = \"127.0.0.1:1000\"\n[upload]\nmax_keys = 100\n[auth]\ntrusted_proxies = [\"10.0.0.0/8\"]\n",
    );
    let cfg = load(&file, &[]).unwrap();
    assert_eq!(cfg.listen.port(), 1000);
    assert_eq!(cfg.upload.max_keys, 100);
    let cfg = load(
        &file,
        &[
            ("EFGS_LISTEN", "127.0.0.1:2000"),
            ("EFGS_UPLOAD_MAX_KEYS", "200"),
            ("EFGS_AUTH_TRUSTED_PROXIES", "192.0.2.0/24, 2001:db8::/32"),
            ("EFGS_SIGNATURE_ALLOW_SHA1", "true"),
            ("EFGS_LOG_FORMAT", "json"),
            ("PATH", "/usr/bin"),
            ("EFGS_CONFIG", "ignored-here"),
        ],
    )
    .unwrap();
    assert_eq!(cfg.listen.port(), 2000);
    assert_eq!(cfg.upload.max_keys, 200);
    let s = settings(
        &file,
        &[("EFGS_AUTH_TRUSTED_PROXIES", "192.0.2.0/24, 2001:db8::/32")],
    )
    .unwrap();
    assert!(trusts(&s, "192.0.2.9"));
    assert!(trusts(&s, "2001:db8::1"));
    assert!(!trusts(&s, "10.0.0.1"));
    // Test-suite variables are not settings: production code knows none of them.
    let e = load(&file, &[("EFGS_TEST_DATABASE_URL", "postgres://x")]).unwrap_err();
    assert_eq!(e.setting(), Some("EFGS_TEST_DATABASE_URL"));
    assert!(cfg.signature.allow_sha1);
    assert_eq!(cfg.log.format, super::LogFormat::Json);
}

#[test]
fn environment_alone_configures_everything() {
    let d = Dir::new();
    let anchor = d.anchor.display().to_string();
    let s = Settings::load(
        None,
        [
            ("EFGS_TRUST_ANCHORS", anchor.as_str()),
            ("EFGS_STORAGE", "postgres"),
            ("EFGS_DATABASE_URL", "postgres://localhost/efgs"),
            ("EFGS_ENCRYPTION_ACTIVE_KEY", "1"),
            (
                "EFGS_ENCRYPTION_KEYS",
                "1=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=,2=1111111111111111111111111111111111111111111111111111111111111111",
            ),
            ("EFGS_DUPLICATE_HASH_SECRET", "0123456789abcdef0123456789abcdef"),
        ],
    )
    .unwrap();
    assert_eq!(
        postgres(&s).encryption,
        EncryptionKeys::new(1, [(1, [0; 32]), (2, [0x11; 32])]).unwrap()
    );
}

#[test]
fn unknown_file_key_is_refused() {
    let d = Dir::new();
    let e = load(&d.config("[upload]\nmax_key = 5\n"), &[]).unwrap_err();
    assert_eq!(e.code(), "config-parse");
    assert!(e.to_string().contains("max_key"), "{e}");
}

#[test]
fn unknown_environment_setting_is_refused() {
    let d = Dir::new();
    let (setting, _) = refused_setting(load(
        &d.config(""),
        &[("EFGS_AUTH_TRUSTED_PROXY", "10.0.0.0/8")],
    ));
    assert_eq!(setting, "EFGS_AUTH_TRUSTED_PROXY");
}

#[test]
fn bad_environment_value_names_the_variable() {
    let d = Dir::new();
    for (var, value) in [
        ("EFGS_UPLOAD_MAX_KEYS", "many"),
        ("EFGS_STORAGE", "mysql"),
        ("EFGS_AUTH_TRUSTED_PROXIES", "10.0.0.1/8"),
        ("EFGS_LISTEN", "localhost"),
        ("EFGS_ENCRYPTION_KEYS", "novalue"),
    ] {
        let (setting, msg) = refused_setting(load(&d.config(""), &[(var, value)]));
        assert_eq!(setting, var, "{msg}");
    }
}

#[test]
fn refuses_upload_max_above_batch_max() {
    let d = Dir::new();
    let (setting, msg) = refused_setting(load(&d.config(""), &[("EFGS_UPLOAD_MAX_KEYS", "6000")]));
    assert_eq!(setting, "upload.max_keys");
    assert!(msg.contains("batching.max_keys"), "{msg}");
}

#[test]
fn refuses_missing_trust_anchor() {
    let (setting, _) = refused_setting(Settings::load(None, NO_ENV).map(|s| s.document().clone()));
    assert_eq!(setting, "trust.anchors");
}

#[test]
fn refuses_unreadable_trust_anchor() {
    let d = Dir::new();
    let (setting, msg) = refused_setting(load(
        &d.config(""),
        &[("EFGS_TRUST_ANCHORS", "/nonexistent/anchor.pem")],
    ));
    assert_eq!(setting, "trust.anchors");
    assert!(msg.contains("/nonexistent/anchor.pem"), "{msg}");
}

#[test]
fn refuses_unparsable_trust_anchor() {
    let d = Dir::new();
    let junk = d.path("junk.pem");
    std::fs::write(
        &junk,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let (setting, _) = refused_setting(load(
        &d.config(""),
        &[("EFGS_TRUST_ANCHORS", junk.to_str().unwrap())],
    ));
    assert_eq!(setting, "trust.anchors");
    std::fs::write(&junk, "no pem here").unwrap();
    let (setting, msg) = refused_setting(load(
        &d.config(""),
        &[("EFGS_TRUST_ANCHORS", junk.to_str().unwrap())],
    ));
    assert_eq!(setting, "trust.anchors");
    assert!(msg.contains("no PEM CERTIFICATE"), "{msg}");
}

#[test]
fn refuses_encryption_key_of_wrong_size() {
    let d = Dir::new();
    let (setting, msg) = refused_setting(load(
        &d.config(PG_SECRETS),
        &[("EFGS_ENCRYPTION_KEYS", "1=00112233445566778899aabbccddeeff")],
    ));
    assert_eq!(setting, "encryption.keys.1");
    assert!(msg.contains("32 bytes"), "{msg}");
}

#[test]
fn refuses_postgres_without_encryption_key() {
    let d = Dir::new();
    let (setting, _) = refused_setting(load(
        &d.config(PG_SECRETS),
        &[
            ("EFGS_ENCRYPTION_KEYS", ""),
            ("EFGS_ENCRYPTION_ACTIVE_KEY", ""),
        ],
    ));
    assert_eq!(setting, "encryption.active_key");
}

#[test]
fn refuses_active_key_that_is_not_configured() {
    let d = Dir::new();
    let (setting, _) = refused_setting(load(
        &d.config(PG_SECRETS),
        &[("EFGS_ENCRYPTION_ACTIVE_KEY", "k2")],
    ));
    assert_eq!(setting, "encryption.active_key");
}

#[test]
fn refuses_postgres_without_database_url() {
    let d = Dir::new();
    let (setting, _) = refused_setting(load(&d.config(PG_SECRETS), &[("EFGS_DATABASE_URL", "")]));
    assert_eq!(setting, "database.url");
}

#[test]
fn refuses_header_mode_trusting_every_address() {
    let d = Dir::new();
    for proxies in [
        "0.0.0.0/0",
        "::/0",
        "127.0.0.0/8,0.0.0.0/0",
        "10.0.0.0/7",
        "2000::/3",
        "::ffff:0:0/96",
    ] {
        let (setting, msg) = refused_setting(load(
            &d.config(""),
            &[("EFGS_AUTH_TRUSTED_PROXIES", proxies)],
        ));
        assert_eq!(setting, "auth.trusted_proxies", "{proxies}: {msg}");
    }
    // The limits themselves are accepted.
    load(
        &d.config(""),
        &[("EFGS_AUTH_TRUSTED_PROXIES", "10.0.0.0/8,fd00::/16")],
    )
    .unwrap();
    // In file form too.
    let (setting, _) = refused_setting(load(
        &d.config("[auth]\ntrusted_proxies = [\"0.0.0.0/0\"]\n"),
        &[],
    ));
    assert_eq!(setting, "auth.trusted_proxies");
}

#[test]
fn refuses_empty_trusted_proxies() {
    let d = Dir::new();
    let (setting, _) = refused_setting(load(&d.config(""), &[("EFGS_AUTH_TRUSTED_PROXIES", "")]));
    assert_eq!(setting, "auth.trusted_proxies");
}

#[test]
fn mtls_mode_with_cert_and_key_works_without_them_is_refused() {
    let d = Dir::new();
    let (setting, _) = refused_setting(load(&d.config(""), &[("EFGS_AUTH_MODE", "mtls")]));
    assert_eq!(setting, "auth.tls_cert");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let cert_path = d.path("server.pem");
    std::fs::write(&cert_path, cert.pem()).unwrap();
    let (setting, _) = refused_setting(load(
        &d.config(""),
        &[
            ("EFGS_AUTH_MODE", "mtls"),
            ("EFGS_AUTH_TLS_CERT", cert_path.to_str().unwrap()),
        ],
    ));
    assert_eq!(setting, "auth.tls_key");
    let key_path = d.secret("server.key", key.serialize_pem().as_bytes(), 0o644);
    let env = [
        ("EFGS_AUTH_MODE", "mtls"),
        ("EFGS_AUTH_TLS_CERT", cert_path.to_str().unwrap()),
        ("EFGS_AUTH_TLS_KEY", key_path.to_str().unwrap()),
    ];
    let e = load(&d.config(""), &env).unwrap_err();
    assert_eq!(e.code(), "config-secret-permissions");
    assert_eq!(e.setting(), Some("auth.tls_key"));
    d.secret("server.key", key.serialize_pem().as_bytes(), 0o600);
    let cfg = load(&d.config(""), &env).unwrap();
    assert_eq!(cfg.auth.mode, AuthMode::Mtls);
    // A key that does not match the certificate.
    let other = rcgen::KeyPair::generate().unwrap();
    d.secret("server.key", other.serialize_pem().as_bytes(), 0o600);
    let (setting, _) = refused_setting(load(&d.config(""), &env));
    assert_eq!(setting, "auth.tls_key");
}

#[test]
fn refuses_short_duplicate_hash_secret() {
    let d = Dir::new();
    let (setting, _) = refused_setting(load(
        &d.config(""),
        &[("EFGS_DUPLICATE_HASH_SECRET", "short")],
    ));
    assert_eq!(setting, "duplicate_hash.secret");
}

#[test]
fn refuses_postgres_without_duplicate_hash_secret() {
    let d = Dir::new();
    let (setting, _) = refused_setting(load(
        &d.config(PG_SECRETS),
        &[("EFGS_DUPLICATE_HASH_SECRET", "")],
    ));
    assert_eq!(setting, "duplicate_hash.secret");
}

#[test]
fn refuses_retention_shorter_than_download_window() {
    let d = Dir::new();
    let (setting, _) =
        refused_setting(load(&d.config(""), &[("EFGS_DOWNLOAD_MAX_AGE_DAYS", "14")]));
    assert_eq!(setting, "retention.key_days");
    let (setting, _) = refused_setting(load(
        &d.config(""),
        &[("EFGS_RETENTION_METADATA_DAYS", "1")],
    ));
    assert_eq!(setting, "retention.metadata_days");
}

#[test]
fn download_cache_settings_and_their_bounds() {
    let d = Dir::new();
    let cfg = load(
        &d.config("[download]\ncache_max_bytes = 0\ncache_ttl_secs = 3600\n"),
        &[],
    )
    .unwrap();
    assert_eq!(cfg.download.cache_max_bytes, 0);
    let policy = settings(
        &d.config("[download]\ncache_max_bytes = 0\ncache_ttl_secs = 3600\n"),
        &[],
    )
    .unwrap()
    .policy;
    assert_eq!(policy.download_cache.max_bytes, 0);
    assert_eq!(policy.download_cache.ttl, time::Duration::hours(1));
    for ttl in ["0", "3601"] {
        let (setting, reason) = refused_setting(load(
            &d.config(""),
            &[("EFGS_DOWNLOAD_CACHE_TTL_SECS", ttl)],
        ));
        assert_eq!(setting, "download.cache_ttl_secs");
        assert!(reason.contains(ttl), "{reason}");
    }
}

#[test]
fn refuses_zero_limits_and_bad_log_filter() {
    let d = Dir::new();
    for (var, setting) in [
        ("EFGS_HTTP_MAX_CONNECTIONS", "http.max_connections"),
        ("EFGS_HTTP_HEADER_TIMEOUT_SECS", "http.header_timeout_secs"),
        ("EFGS_UPLOAD_MAX_BODY_BYTES", "upload.max_body_bytes"),
        ("EFGS_RETENTION_INTERVAL_SECS", "retention.interval_secs"),
    ] {
        let (got, _) = refused_setting(load(&d.config(""), &[(var, "0")]));
        assert_eq!(got, setting);
    }
    let (got, _) = refused_setting(load(&d.config(""), &[("EFGS_LOG_FILTER", "info,[[[")]));
    assert_eq!(got, "log.filter");
}

#[test]
fn secret_files_are_read_and_permission_checked() {
    let d = Dir::new();
    let secret = d.secret("dup", b"0123456789abcdef0123456789abcdef-extra\n", 0o640);
    let key = d.secret("k1.key", &[0x42u8; 32], 0o600);
    let url = d.secret("url", b"postgres://efgs:pw@db/efgs\n", 0o400);
    let files = format!("1={}", key.display());
    let env = [
        ("EFGS_STORAGE", "postgres"),
        ("EFGS_DATABASE_URL_FILE", url.to_str().unwrap()),
        ("EFGS_ENCRYPTION_ACTIVE_KEY", "1"),
        ("EFGS_ENCRYPTION_KEY_FILES", files.as_str()),
        ("EFGS_DUPLICATE_HASH_SECRET_FILE", secret.to_str().unwrap()),
    ];
    let s = settings(&d.config(""), &env).unwrap();
    let cfg = s.document();
    assert_eq!(
        s.duplicate_hash_secret.as_ref().unwrap().expose(),
        "0123456789abcdef0123456789abcdef-extra"
    );
    assert_eq!(
        postgres(&s).encryption,
        EncryptionKeys::single(1, [0x42; 32]).unwrap()
    );
    assert_eq!(
        cfg.database.url.as_ref().unwrap().expose(),
        "postgres://efgs:pw@db/efgs"
    );

    // World-readable secret files are refused, naming the setting.
    d.secret("dup", b"0123456789abcdef0123456789abcdef", 0o644);
    let e = load(&d.config(""), &env).unwrap_err();
    assert_eq!(e.code(), "config-secret-permissions");
    assert_eq!(e.setting(), Some("duplicate_hash.secret_file"));
    assert!(e.to_string().contains("0644"), "{e}");
    d.secret("dup", b"0123456789abcdef0123456789abcdef", 0o600);
    d.secret("k1.key", &[0x42u8; 32], 0o604);
    let e = load(&d.config(""), &env).unwrap_err();
    assert_eq!(e.setting(), Some("encryption.key_files.1"));

    // Inline value and file together are refused.
    d.secret("k1.key", &[0x42u8; 32], 0o600);
    let mut both = env.to_vec();
    both.push((
        "EFGS_DUPLICATE_HASH_SECRET",
        "0123456789abcdef0123456789abcdef",
    ));
    let e = load(&d.config(""), &both).unwrap_err();
    assert_eq!(e.code(), "config-conflict");
    assert_eq!(e.setting(), Some("duplicate_hash.secret"));
}

#[test]
fn relative_paths_in_the_file_are_relative_to_it() {
    let d = Dir::new();
    d.secret("dup.secret", b"0123456789abcdef0123456789abcdef", 0o600);
    let cfg = Config::load(
        Some(&d.config("[duplicate_hash]\nsecret_file = \"dup.secret\"\n")),
        NO_ENV,
    )
    .unwrap();
    assert_eq!(cfg.trust.anchors, vec![d.anchor.clone()]);
    assert_eq!(cfg.duplicate_hash.secret_file, Some(d.path("dup.secret")));
}

#[test]
fn debug_and_effective_settings_redact_secrets() {
    let d = Dir::new();
    let s = settings(
        &d.config(PG_SECRETS),
        &[
            ("EFGS_DATABASE_URL", "postgres://efgs:hunter2-db@db/efgs"),
            ("EFGS_DATABASE_PASSWORD", "hunter2-pw"),
            (
                "EFGS_ENCRYPTION_KEYS",
                "1=abababababababababababababababababababababababababababababababab",
            ),
            (
                "EFGS_DUPLICATE_HASH_SECRET",
                "hunter2-hmac-0123456789abcdefghijk",
            ),
        ],
    )
    .unwrap();
    let cfg = s.document();
    let debug = format!("{cfg:?} {s:?} {:?}", postgres(&s));
    let shown = cfg.effective_settings();
    for secret in ["hunter2", "abababab"] {
        assert!(!debug.contains(secret), "Debug leaks {secret}: {debug}");
        assert!(!shown.contains(secret), "settings leak {secret}: {shown}");
    }
    assert!(
        debug.contains("postgres://efgs:[redacted]@db/efgs"),
        "{debug}"
    );
    assert!(
        shown.contains("database.url = postgres://efgs:[redacted]@db/efgs"),
        "{shown}"
    );
    assert!(shown.contains("encryption.keys = 1=[redacted]"), "{shown}");
}

#[test]
fn configuration_doc_is_generated_from_the_settings_table() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/CONFIGURATION.md");
    let expected = settings_markdown();
    if std::env::var_os("EFGS_TEST_UPDATE_DOCS").is_some() {
        std::fs::write(path, &expected).unwrap();
    }
    let actual = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/CONFIGURATION.md is out of date; run with EFGS_TEST_UPDATE_DOCS=1"
    );
}
