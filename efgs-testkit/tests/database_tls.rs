//! TLS to PostgreSQL (`database.sslmode`, `database.ca_file`) through the composition root,
//! against the test cluster, which runs with `ssl=on` and a throw-away CA
//! (`EFGS_TEST_DATABASE_CA`, scripts/pg-test-cluster.sh).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use efgs_testkit::federation::PostgresSchema;

/// How many of the gateway's connections (application `efgs-rs`) to `schema` use TLS, and how
/// many do not.
async fn tls_connections(admin_url: &str) -> (i64, i64) {
    let (admin, conn) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let row = admin
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl) \
             FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'efgs-rs-tls-test'",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

fn write(dir: &std::path::Path, name: &str, content: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p.display().to_string()
}

/// The gateway's settings on `schema` with these database TLS settings.
fn settings(
    schema: &PostgresSchema,
    dir: &std::path::Path,
    tls: &[(&str, String)],
) -> Result<efgs_server::Settings, efgs_server::ConfigError> {
    let key = rcgen::KeyPair::generate().unwrap();
    let anchor = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let anchor = write(dir, "anchor.pem", anchor.pem().as_bytes());
    let separator = if schema.url().contains('?') { '&' } else { '?' };
    let url = format!(
        "{}{separator}application_name=efgs-rs-tls-test",
        schema.url()
    );
    let mut env: Vec<(&str, String)> = vec![
        ("EFGS_TRUST_ANCHORS", anchor),
        ("EFGS_STORAGE", "postgres".into()),
        ("EFGS_DATABASE_URL", url),
        ("EFGS_DATABASE_SCHEMA", schema.schema().to_owned()),
        ("EFGS_DATABASE_POOL_SIZE", "2".into()),
        ("EFGS_ENCRYPTION_ACTIVE_KEY", "1".into()),
        ("EFGS_ENCRYPTION_KEYS", format!("1={}", "ab".repeat(32))),
        (
            "EFGS_DUPLICATE_HASH_SECRET",
            "a duplicate-hash secret of 32 bytes or more".into(),
        ),
    ];
    env.extend(tls.iter().cloned());
    efgs_server::Settings::load(None, env)
}

/// Builds the gateway (opens the store) with these database TLS settings.
async fn build(
    schema: &PostgresSchema,
    dir: &std::path::Path,
    tls: &[(&str, String)],
) -> Result<efgs_server::Server, efgs_server::ServeError> {
    let settings = settings(schema, dir, tls).expect("settings");
    efgs_server::Server::builder(settings).build().await
}

#[tokio::test]
async fn verify_full_connects_with_the_ca_and_refuses_a_wrong_ca() {
    let Some(support::Backend::Postgres(schema)) =
        support::Backend::postgres("verify_full_connects_with_the_ca_and_refuses_a_wrong_ca").await
    else {
        return;
    };
    let ca = std::env::var("EFGS_TEST_DATABASE_CA")
        .expect("EFGS_TEST_DATABASE_CA (scripts/pg-test-cluster.sh) names the cluster's CA");
    let dir = tempfile::tempdir().unwrap();

    // verify-full with the cluster's CA: connected (and migrated) over TLS only.
    let server = build(
        &schema,
        dir.path(),
        &[
            ("EFGS_DATABASE_SSLMODE", "verify-full".into()),
            ("EFGS_DATABASE_CA_FILE", ca.clone()),
        ],
    )
    .await
    .expect("verify-full with the right CA connects");
    let (tls, plain) = tls_connections(schema.url()).await;
    assert!(
        tls >= 1,
        "no TLS connection of the gateway ({tls} TLS, {plain} plain)"
    );
    assert_eq!(plain, 0);
    drop(server);

    // verify-full with another CA: refused at start, naming the settings.
    let other_key = rcgen::KeyPair::generate().unwrap();
    let other_ca = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .self_signed(&other_key)
        .unwrap();
    let wrong = write(dir.path(), "wrong-ca.pem", other_ca.pem().as_bytes());
    let err = build(
        &schema,
        dir.path(),
        &[
            ("EFGS_DATABASE_SSLMODE", "verify-full".into()),
            ("EFGS_DATABASE_CA_FILE", wrong),
        ],
    )
    .await
    .expect_err("a wrong CA must be refused");
    let text = err.to_string();
    assert!(text.contains("database.ca_file"), "{text}");
    assert_eq!(err.code(), "config-refused", "{text}");

    // verify-full without a CA file: refused by the settings, naming the setting.
    let e = settings(
        &schema,
        dir.path(),
        &[("EFGS_DATABASE_SSLMODE", "verify-full".into())],
    )
    .expect_err("verify-full needs database.ca_file");
    assert_eq!(e.setting(), Some("database.ca_file"));

    // require: encrypted without checking the certificate.
    let server = build(
        &schema,
        dir.path(),
        &[("EFGS_DATABASE_SSLMODE", "require".into())],
    )
    .await
    .expect("require connects");
    drop(server);
    schema.drop_schema().await.unwrap();
}
