//! Every documented setting has an effect: changed alone, it changes what [`Settings`] hands to
//! the part that uses it (store, TLS layer, use cases, connection handling, jobs, logging).
//! Together with the field-by-field resolution in `settings.rs`, a setting that is parsed but
//! never passed on fails here.

use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::config::{SETTINGS, Secret};

fn private(path: &Path, content: &[u8]) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn self_signed(dir: &Path, name: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let cert_path = dir.join(format!("{name}.pem"));
    let key_path = dir.join(format!("{name}.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    private(&key_path, key.serialize_pem().as_bytes());
    (
        cert_path.display().to_string(),
        key_path.display().to_string(),
    )
}

/// What each part receives from the settings (secrets included, for comparison only).
fn received(s: &Settings) -> String {
    let store = match &s.store {
        StoreSettings::Memory => "memory".to_owned(),
        StoreSettings::Postgres(pg) => {
            format!(
                "{pg:?} password={:?} encryption={:?}",
                pg.password,
                pg.encryption.ids().collect::<Vec<_>>()
            ) + &format!(
                " keys={:?}",
                pg.encryption == efgs_store_postgres::EncryptionKeys::single(1, [0; 32]).unwrap()
            )
        }
    };
    let auth = match &s.auth {
        AuthSettings::ProxyHeaders {
            trusted,
            cert_header,
        } => format!("proxy {trusted:?} cert header {cert_header}"),
        AuthSettings::Mtls { tls } => format!("mtls {tls:?}"),
    };
    format!(
        "listen={} store={store} auth={auth} anchors={:?} import={:?} policy={:?} dup={:?} \
         body={} in_flight={} net={:?} batching={:?} retention={:?} log={:?} ops={:?} \
         delivery={:?} callback_key={:?} audit_tokens={:?}",
        s.listen,
        s.anchors,
        s.import_dir,
        s.policy,
        s.duplicate_hash_secret.as_ref().map(Secret::expose),
        s.body_limit,
        s.uploads_in_flight,
        s.net,
        s.batching_job,
        s.retention_job,
        s.log,
        s.ops,
        s.delivery,
        s.delivery
            .client
            .as_ref()
            .map(|c| c.key.secret_der().to_vec()),
        s.ops
            .sinks
            .iter()
            .map(|k| k.token.as_ref().map(Secret::expose))
            .collect::<Vec<_>>(),
    )
}

/// A setting, the environment it is changed from, and the variables that change it.
type Case<'a> = (
    &'a str,
    &'a BTreeMap<&'a str, String>,
    Vec<(&'a str, String)>,
);

#[test]
fn every_setting_changes_what_its_part_receives() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (anchor, _) = self_signed(d, "anchor");
    let (anchor2, _) = self_signed(d, "anchor2");
    let (tls_cert, tls_key) = self_signed(d, "server");
    let (tls_cert2, tls_key2) = self_signed(d, "server2");
    let (client_ca, _) = self_signed(d, "client-ca");
    std::fs::create_dir(d.join("entries")).unwrap();
    let file = |name: &str, content: &[u8]| {
        let p = d.join(name);
        private(&p, content);
        p.display().to_string()
    };
    let url_file = file("url", b"postgres://efgs@db.example/other");
    let password_file = file("password", b"from-a-file");
    let key_file = file("key-2", &[0x22; 32]);
    let dup_file = file("dup", b"another duplicate-hash secret, 32+ bytes");
    let zero_key = "00".repeat(32);

    // The base each group of settings is changed from.
    let memory = BTreeMap::from([("EFGS_TRUST_ANCHORS", anchor.clone())]);
    let mut postgres = memory.clone();
    postgres.extend([
        ("EFGS_STORAGE", "postgres".to_owned()),
        (
            "EFGS_DATABASE_URL",
            "postgres://efgs@db.example/efgs".to_owned(),
        ),
        ("EFGS_ENCRYPTION_ACTIVE_KEY", "1".to_owned()),
        ("EFGS_ENCRYPTION_KEYS", format!("1={zero_key}")),
        (
            "EFGS_DUPLICATE_HASH_SECRET",
            "a duplicate-hash secret of 32 bytes or more".to_owned(),
        ),
    ]);
    let mut verify_full = postgres.clone();
    verify_full.extend([
        ("EFGS_DATABASE_SSLMODE", "verify-full".to_owned()),
        ("EFGS_DATABASE_CA_FILE", anchor.clone()),
    ]);
    let token_file = file("audit-token", b"a-bearer-token.of_the~collector\n");
    let mut http_sink = memory.clone();
    http_sink.insert(
        "EFGS_AUDIT_HTTP_URL",
        "http://127.0.0.1:8080/events".to_owned(),
    );
    let mut tls_sink = memory.clone();
    tls_sink.extend([
        ("EFGS_AUDIT_SYSLOG", "tls://localhost:6514".to_owned()),
        ("EFGS_AUDIT_CA_FILE", anchor.clone()),
    ]);
    // The certificate and key must match (checked at start), so each case changes the pair.
    let (callback_cert, callback_key) = self_signed(d, "callback");
    let (callback_cert2, callback_key2) = self_signed(d, "callback2");
    let mut callback = memory.clone();
    callback.extend([
        ("EFGS_CALLBACK_CLIENT_CERT", callback_cert),
        ("EFGS_CALLBACK_CLIENT_KEY", callback_key),
    ]);
    let mut mtls = memory.clone();
    mtls.extend([
        ("EFGS_AUTH_MODE", "mtls".to_owned()),
        ("EFGS_AUTH_TLS_CERT", tls_cert),
        ("EFGS_AUTH_TLS_KEY", tls_key),
    ]);

    // (setting, base, changes): the changes set the setting (and, for a `_file` variant, drop
    // the inline value it replaces).
    let cases: Vec<Case<'_>> = vec![
        (
            "listen",
            &memory,
            vec![("EFGS_LISTEN", "127.0.0.1:9999".into())],
        ),
        (
            "storage",
            &postgres,
            vec![("EFGS_STORAGE", "memory".into())],
        ),
        (
            "database.url",
            &postgres,
            vec![("EFGS_DATABASE_URL", "postgres://x@db/y".into())],
        ),
        (
            "database.url_file",
            &postgres,
            vec![
                ("EFGS_DATABASE_URL", String::new()),
                ("EFGS_DATABASE_URL_FILE", url_file),
            ],
        ),
        (
            "database.password",
            &postgres,
            vec![("EFGS_DATABASE_PASSWORD", "inline".into())],
        ),
        (
            "database.password_file",
            &postgres,
            vec![("EFGS_DATABASE_PASSWORD_FILE", password_file)],
        ),
        (
            "database.schema",
            &postgres,
            vec![("EFGS_DATABASE_SCHEMA", "efgs_a".into())],
        ),
        (
            "database.sslmode",
            &postgres,
            vec![("EFGS_DATABASE_SSLMODE", "require".into())],
        ),
        (
            "database.ca_file",
            &verify_full,
            vec![("EFGS_DATABASE_CA_FILE", client_ca.clone())],
        ),
        (
            "database.pool_size",
            &postgres,
            vec![("EFGS_DATABASE_POOL_SIZE", "3".into())],
        ),
        (
            "database.connect_timeout_secs",
            &postgres,
            vec![("EFGS_DATABASE_CONNECT_TIMEOUT_SECS", "9".into())],
        ),
        (
            "auth.mode",
            &mtls,
            vec![("EFGS_AUTH_MODE", "proxy-headers".into())],
        ),
        (
            "auth.trusted_proxies",
            &memory,
            vec![("EFGS_AUTH_TRUSTED_PROXIES", "10.1.0.0/16".into())],
        ),
        (
            "auth.proxy_cert_header",
            &memory,
            vec![("EFGS_AUTH_PROXY_CERT_HEADER", "true".into())],
        ),
        (
            "auth.tls_cert",
            &mtls,
            vec![
                ("EFGS_AUTH_TLS_CERT", tls_cert2.clone()),
                ("EFGS_AUTH_TLS_KEY", tls_key2.clone()),
            ],
        ),
        (
            "auth.tls_key",
            &mtls,
            vec![
                ("EFGS_AUTH_TLS_CERT", tls_cert2),
                ("EFGS_AUTH_TLS_KEY", tls_key2),
            ],
        ),
        (
            "auth.client_ca",
            &mtls,
            vec![("EFGS_AUTH_CLIENT_CA", client_ca.clone())],
        ),
        (
            "trust.anchors",
            &memory,
            vec![("EFGS_TRUST_ANCHORS", anchor2)],
        ),
        (
            "trust.import_dir",
            &memory,
            vec![(
                "EFGS_TRUST_IMPORT_DIR",
                d.join("entries").display().to_string(),
            )],
        ),
        (
            "upload.max_keys",
            &memory,
            vec![("EFGS_UPLOAD_MAX_KEYS", "100".into())],
        ),
        (
            "upload.max_body_bytes",
            &memory,
            vec![("EFGS_UPLOAD_MAX_BODY_BYTES", "1000".into())],
        ),
        (
            "upload.max_in_flight_bytes",
            &memory,
            vec![("EFGS_UPLOAD_MAX_IN_FLIGHT_BYTES", "20000000".into())],
        ),
        (
            "download.max_age_days",
            &memory,
            vec![("EFGS_DOWNLOAD_MAX_AGE_DAYS", "1".into())],
        ),
        (
            "download.cache_max_bytes",
            &memory,
            vec![("EFGS_DOWNLOAD_CACHE_MAX_BYTES", "0".into())],
        ),
        (
            "download.cache_ttl_secs",
            &memory,
            vec![("EFGS_DOWNLOAD_CACHE_TTL_SECS", "5".into())],
        ),
        (
            "batching.max_keys",
            &memory,
            vec![("EFGS_BATCHING_MAX_KEYS", "6000".into())],
        ),
        (
            "batching.interval_secs",
            &memory,
            vec![("EFGS_BATCHING_INTERVAL_SECS", "7".into())],
        ),
        (
            "batching.check_secs",
            &memory,
            vec![("EFGS_BATCHING_CHECK_SECS", "7".into())],
        ),
        (
            "batching.run_limit_secs",
            &memory,
            vec![("EFGS_BATCHING_RUN_LIMIT_SECS", "7".into())],
        ),
        (
            "retention.key_days",
            &memory,
            vec![("EFGS_RETENTION_KEY_DAYS", "3".into())],
        ),
        (
            "retention.metadata_days",
            &memory,
            vec![("EFGS_RETENTION_METADATA_DAYS", "40".into())],
        ),
        (
            "retention.interval_secs",
            &memory,
            vec![("EFGS_RETENTION_INTERVAL_SECS", "7".into())],
        ),
        (
            "retention.run_limit_secs",
            &memory,
            vec![("EFGS_RETENTION_RUN_LIMIT_SECS", "7".into())],
        ),
        (
            "signature.allow_sha1",
            &memory,
            vec![("EFGS_SIGNATURE_ALLOW_SHA1", "true".into())],
        ),
        (
            "encryption.active_key",
            &postgres,
            vec![
                (
                    "EFGS_ENCRYPTION_KEYS",
                    format!("1={zero_key},2={}", "11".repeat(32)),
                ),
                ("EFGS_ENCRYPTION_ACTIVE_KEY", "2".into()),
            ],
        ),
        (
            "encryption.keys",
            &postgres,
            vec![("EFGS_ENCRYPTION_KEYS", format!("1={}", "11".repeat(32)))],
        ),
        (
            "encryption.key_files",
            &postgres,
            vec![("EFGS_ENCRYPTION_KEY_FILES", format!("2={key_file}"))],
        ),
        (
            "duplicate_hash.secret",
            &memory,
            vec![(
                "EFGS_DUPLICATE_HASH_SECRET",
                "an explicit duplicate-hash secret, 32+".into(),
            )],
        ),
        (
            "duplicate_hash.secret_file",
            &postgres,
            vec![
                ("EFGS_DUPLICATE_HASH_SECRET", String::new()),
                ("EFGS_DUPLICATE_HASH_SECRET_FILE", dup_file),
            ],
        ),
        (
            "http.max_connections",
            &memory,
            vec![("EFGS_HTTP_MAX_CONNECTIONS", "7".into())],
        ),
        (
            "http.tls_handshake_timeout_secs",
            &memory,
            vec![("EFGS_HTTP_TLS_HANDSHAKE_TIMEOUT_SECS", "7".into())],
        ),
        (
            "http.header_timeout_secs",
            &memory,
            vec![("EFGS_HTTP_HEADER_TIMEOUT_SECS", "7".into())],
        ),
        (
            "http.idle_timeout_secs",
            &memory,
            vec![("EFGS_HTTP_IDLE_TIMEOUT_SECS", "7".into())],
        ),
        (
            "http.body_read_timeout_secs",
            &memory,
            vec![("EFGS_HTTP_BODY_READ_TIMEOUT_SECS", "7".into())],
        ),
        (
            "http.shutdown_grace_secs",
            &memory,
            vec![("EFGS_HTTP_SHUTDOWN_GRACE_SECS", "7".into())],
        ),
        (
            "http.max_header_bytes",
            &memory,
            vec![("EFGS_HTTP_MAX_HEADER_BYTES", "9000".into())],
        ),
        (
            "http.request_timeout_secs",
            &memory,
            vec![("EFGS_HTTP_REQUEST_TIMEOUT_SECS", "7".into())],
        ),
        (
            "http.response_timeout_secs",
            &memory,
            vec![("EFGS_HTTP_RESPONSE_TIMEOUT_SECS", "7".into())],
        ),
        (
            "http.max_connections_per_address",
            &memory,
            vec![("EFGS_HTTP_MAX_CONNECTIONS_PER_ADDRESS", "7".into())],
        ),
        (
            "log.format",
            &memory,
            vec![("EFGS_LOG_FORMAT", "json".into())],
        ),
        (
            "log.filter",
            &memory,
            vec![("EFGS_LOG_FILTER", "debug".into())],
        ),
        (
            "audit.enabled",
            &memory,
            vec![("EFGS_AUDIT_ENABLED", "false".into())],
        ),
        (
            "audit.retention_days",
            &memory,
            vec![("EFGS_AUDIT_RETENTION_DAYS", "30".into())],
        ),
        (
            "audit.syslog",
            &memory,
            vec![("EFGS_AUDIT_SYSLOG", "tcp://127.0.0.1:6514".into())],
        ),
        (
            "audit.http_url",
            &memory,
            vec![("EFGS_AUDIT_HTTP_URL", "http://127.0.0.1:8080/events".into())],
        ),
        (
            "audit.http_token_file",
            &http_sink,
            vec![("EFGS_AUDIT_HTTP_TOKEN_FILE", token_file.clone())],
        ),
        (
            "audit.ca_file",
            &tls_sink,
            vec![("EFGS_AUDIT_CA_FILE", client_ca.clone())],
        ),
        (
            "audit.push_retry_ms",
            &memory,
            vec![("EFGS_AUDIT_PUSH_RETRY_MS", "50".into())],
        ),
        (
            "metrics.listen",
            &memory,
            vec![("EFGS_METRICS_LISTEN", "127.0.0.1:9090".into())],
        ),
        (
            "callback.client_cert",
            &callback,
            vec![
                ("EFGS_CALLBACK_CLIENT_CERT", callback_cert2.clone()),
                ("EFGS_CALLBACK_CLIENT_KEY", callback_key2.clone()),
            ],
        ),
        (
            "callback.client_key",
            &callback,
            vec![
                ("EFGS_CALLBACK_CLIENT_KEY", callback_key2),
                ("EFGS_CALLBACK_CLIENT_CERT", callback_cert2),
            ],
        ),
        (
            "callback.allow_cidrs",
            &memory,
            vec![("EFGS_CALLBACK_ALLOW_CIDRS", "127.0.0.1/32,::1".into())],
        ),
        (
            "callback.timeout_secs",
            &memory,
            vec![("EFGS_CALLBACK_TIMEOUT_SECS", "7".into())],
        ),
        (
            "callback.max_retries",
            &memory,
            vec![("EFGS_CALLBACK_MAX_RETRIES", "2".into())],
        ),
        (
            "callback.retry_interval_secs",
            &memory,
            vec![("EFGS_CALLBACK_RETRY_INTERVAL_SECS", "7".into())],
        ),
        (
            "callback.poll_millis",
            &memory,
            vec![("EFGS_CALLBACK_POLL_MILLIS", "250".into())],
        ),
        (
            "callback.lease_secs",
            &memory,
            vec![("EFGS_CALLBACK_LEASE_SECS", "70".into())],
        ),
        (
            "callback.concurrency",
            &memory,
            vec![("EFGS_CALLBACK_CONCURRENCY", "7".into())],
        ),
    ];
    let load = |env: &BTreeMap<&str, String>| {
        Settings::load(None, env.iter().map(|(k, v)| (*k, v.as_str())))
    };
    let documented: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
    let tested: Vec<&str> = cases.iter().map(|c| c.0).collect();
    assert_eq!(
        tested, documented,
        "every setting, in table order, has a case"
    );
    for (key, base, changes) in &cases {
        let before = received(&load(base).unwrap_or_else(|e| panic!("{key} base: {e}")));
        let mut env = (*base).clone();
        env.extend(changes.iter().cloned());
        let after = load(&env).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_ne!(received(&after), before, "{key} has no effect");
    }
}

#[test]
fn the_audit_http_token_file_is_refused_unless_it_is_private_non_empty_and_needed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (anchor, _) = self_signed(d, "anchor");
    let good = d.join("token");
    private(&good, b"tok-1\n");
    let empty = d.join("empty");
    private(&empty, b"\n");
    let spaced = d.join("spaced");
    private(&spaced, b"two words");
    let open = d.join("open");
    std::fs::write(&open, b"tok-2").unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let missing = d.join("missing");
    let load = |url: Option<&str>, file: &Path| {
        let mut env = vec![
            ("EFGS_TRUST_ANCHORS", anchor.clone()),
            ("EFGS_AUDIT_HTTP_TOKEN_FILE", file.display().to_string()),
        ];
        if let Some(u) = url {
            env.push(("EFGS_AUDIT_HTTP_URL", u.to_owned()));
        }
        Settings::load(None, env)
    };
    let url = Some("http://127.0.0.1:8080/events");
    let s = load(url, &good).unwrap();
    assert_eq!(
        s.ops.sinks[0].token.as_ref().map(Secret::expose),
        Some("tok-1")
    );
    assert!(
        !format!("{:?}", s.ops).contains("tok-1"),
        "the token is never shown"
    );
    for (why, url, file) in [
        ("empty", url, &empty),
        ("not a token68", url, &spaced),
        ("readable by others", url, &open),
        ("unreadable", url, &missing),
        ("no audit.http_url", None, &good),
    ] {
        let e = match load(url, file) {
            Ok(_) => panic!("{why}: accepted"),
            Err(e) => e,
        };
        assert_eq!(e.setting(), Some("audit.http_token_file"), "{why}: {e}");
        assert!(!e.to_string().contains("tok-"), "{why}: {e}");
    }
}
