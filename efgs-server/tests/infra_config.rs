//! Configuration: file + environment + secret files, refusals naming their setting, redaction,
//! generated documentation, `--help`.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use efgs_server::config::{AuthMode, Config, ConfigError, SETTINGS, StorageKind};

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

fn load(file: &Path, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::load(Some(file), env.iter().copied())
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
active_key = "k1"
keys = { k1 = "0000000000000000000000000000000000000000000000000000000000000000" }
[duplicate_hash]
secret = "0123456789abcdef0123456789abcdef"
"#;

#[test]
fn defaults_with_a_trust_anchor_are_valid() {
    let d = Dir::new();
    let cfg = load(&d.config(""), &[]).unwrap();
    assert_eq!(cfg.listen.to_string(), "127.0.0.1:8090");
    assert_eq!(cfg.storage, StorageKind::Memory);
    assert_eq!(cfg.auth.mode, AuthMode::ProxyHeaders);
    assert!(cfg.auth.is_trusted_proxy("127.0.0.1".parse().unwrap()));
    assert!(cfg.auth.is_trusted_proxy("::1".parse().unwrap()));
    assert!(
        cfg.auth
            .is_trusted_proxy("::ffff:127.0.0.1".parse().unwrap())
    );
    assert!(!cfg.auth.is_trusted_proxy("10.0.0.1".parse().unwrap()));
    assert_eq!(cfg.upload.max_keys, 5000);
    assert_eq!(cfg.batching.max_keys, 5000);
    assert_eq!(cfg.upload.max_body_bytes, 16 * 1024 * 1024);
    assert_eq!(cfg.download.max_age_days, 2);
    assert_eq!(cfg.batching.interval_secs, 300);
    assert_eq!(cfg.retention.key_days, 2);
    assert_eq!(cfg.retention.metadata_days, 30);
    assert!(!cfg.signature.allow_sha1);
    assert_eq!(cfg.trust_anchors_der().unwrap().len(), 1);
    assert_eq!(cfg.net_limits().max_body_bytes, Some(16 * 1024 * 1024));
    assert_eq!(cfg.batching_schedule().run_limit.as_secs(), 1200);
    assert_eq!(cfg.retention_schedule().every.as_secs(), 3600);
}

#[test]
fn postgres_configuration_loads_and_decodes_keys() {
    let d = Dir::new();
    let cfg = load(&d.config(PG_SECRETS), &[]).unwrap();
    let ring = cfg.encryption_keys().unwrap().unwrap();
    assert_eq!(ring.active, "k1");
    assert_eq!(ring.keys["k1"], [0u8; 32]);
    assert_eq!(cfg.duplicate_hash_secret().unwrap().len(), 32);
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
            ("EFGS_TEST_DATABASE_URL", "ignored"),
        ],
    )
    .unwrap();
    assert_eq!(cfg.listen.port(), 2000);
    assert_eq!(cfg.upload.max_keys, 200);
    assert!(cfg.auth.is_trusted_proxy("192.0.2.9".parse().unwrap()));
    assert!(cfg.auth.is_trusted_proxy("2001:db8::1".parse().unwrap()));
    assert!(!cfg.auth.is_trusted_proxy("10.0.0.1".parse().unwrap()));
    assert!(cfg.signature.allow_sha1);
    assert_eq!(cfg.log.format, efgs_server::config::LogFormat::Json);
}

#[test]
fn environment_alone_configures_everything() {
    let d = Dir::new();
    let anchor = d.anchor.display().to_string();
    let cfg = Config::load(
        None,
        [
            ("EFGS_TRUST_ANCHORS", anchor.as_str()),
            ("EFGS_STORAGE", "postgres"),
            ("EFGS_DATABASE_URL", "postgres://localhost/efgs"),
            ("EFGS_ENCRYPTION_ACTIVE_KEY", "a"),
            (
                "EFGS_ENCRYPTION_KEYS",
                "a=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=,b=1111111111111111111111111111111111111111111111111111111111111111",
            ),
            ("EFGS_DUPLICATE_HASH_SECRET", "0123456789abcdef0123456789abcdef"),
        ],
    )
    .unwrap();
    let ring = cfg.encryption_keys().unwrap().unwrap();
    assert_eq!(ring.keys.len(), 2);
    assert_eq!(ring.keys["b"], [0x11; 32]);
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
    let (setting, _) = refused_setting(Config::load(None, NO_ENV));
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
        &[(
            "EFGS_ENCRYPTION_KEYS",
            "k1=00112233445566778899aabbccddeeff",
        )],
    ));
    assert_eq!(setting, "encryption.keys.k1");
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
    let policy = efgs_server::app::policy(&cfg);
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
        ("EFGS_BATCHING_INTERVAL_SECS", "batching.interval_secs"),
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
    let files = format!("k1={}", key.display());
    let env = [
        ("EFGS_STORAGE", "postgres"),
        ("EFGS_DATABASE_URL_FILE", url.to_str().unwrap()),
        ("EFGS_ENCRYPTION_ACTIVE_KEY", "k1"),
        ("EFGS_ENCRYPTION_KEY_FILES", files.as_str()),
        ("EFGS_DUPLICATE_HASH_SECRET_FILE", secret.to_str().unwrap()),
    ];
    let cfg = load(&d.config(""), &env).unwrap();
    assert_eq!(
        cfg.duplicate_hash_secret().unwrap(),
        b"0123456789abcdef0123456789abcdef-extra"
    );
    assert_eq!(
        cfg.encryption_keys().unwrap().unwrap().keys["k1"],
        [0x42; 32]
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
    assert_eq!(e.setting(), Some("encryption.key_files.k1"));

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
    let cfg = load(
        &d.config(PG_SECRETS),
        &[
            ("EFGS_DATABASE_URL", "postgres://efgs:hunter2-db@db/efgs"),
            ("EFGS_DATABASE_PASSWORD", "hunter2-pw"),
            (
                "EFGS_ENCRYPTION_KEYS",
                "k1=abababababababababababababababababababababababababababababababab",
            ),
            (
                "EFGS_DUPLICATE_HASH_SECRET",
                "hunter2-hmac-0123456789abcdefghijk",
            ),
        ],
    )
    .unwrap();
    let debug = format!("{cfg:?} {:?}", cfg.encryption_keys().unwrap());
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
    assert!(shown.contains("encryption.keys = k1=[redacted]"), "{shown}");
}

#[test]
fn configuration_doc_is_generated_from_the_settings_table() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/CONFIGURATION.md");
    let expected = efgs_server::config::settings_markdown();
    if std::env::var_os("EFGS_TEST_UPDATE_DOCS").is_some() {
        std::fs::write(path, &expected).unwrap();
    }
    let actual = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/CONFIGURATION.md is out of date; run with EFGS_TEST_UPDATE_DOCS=1"
    );
}

fn run(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_efgs-server"))
        .args(args)
        .env_remove("EFGS_CONFIG")
        .output()
        .unwrap()
}

#[test]
fn help_lists_every_setting() {
    for args in [&["--help"][..], &["serve", "--help"][..]] {
        let out = run(args);
        assert!(out.status.success());
        let help = String::from_utf8(out.stdout).unwrap();
        for s in SETTINGS {
            assert!(
                help.contains(&s.env_var()),
                "{args:?} lacks {}",
                s.env_var()
            );
            assert!(help.contains(s.key), "{args:?} lacks {}", s.key);
        }
        assert!(help.contains("EFGS_CONFIG"));
    }
}

#[test]
fn commands_needing_configuration_exit_78_without_it() {
    for args in [&["migrate"][..], &["trust-list", "list"][..]] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_efgs-server"))
            .args(args)
            .env_remove("EFGS_TRUST_ANCHORS")
            .env_remove("EFGS_CONFIG")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(78), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("trust.anchors"),
            "{args:?}"
        );
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_efgs-server"))
        .args(["serve", "--check"])
        .env_remove("EFGS_TRUST_ANCHORS")
        .env("EFGS_CONFIG", "/nonexistent/efgs.toml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/efgs.toml"));
}

#[test]
fn serve_check_prints_redacted_effective_settings() {
    let d = Dir::new();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_efgs-server"))
        .args([
            "--config",
            d.config(PG_SECRETS).to_str().unwrap(),
            "serve",
            "--check",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("storage = postgres"));
    assert!(text.contains("duplicate_hash.secret = [redacted]"));
    assert!(!text.contains("0123456789abcdef0123456789abcdef"));
}
