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

#[test]
fn parse_errors_do_not_echo_the_file() {
    // A secret pasted into a setting of the wrong type, and a line the TOML parser cannot read.
    for text in [
        "[http]\nmax_connections = \"hunter2-s3cr3t\"\n",
        "[database]\nurl = postgres://efgs:hunter2-s3cr3t@db/efgs\n",
        "[database]\nurl = \"postgres://efgs:hunter2-s3cr3t@db/efgs\n",
    ] {
        let err = Config::parse_toml(text, Path::new("efgs.toml")).unwrap_err();
        let shown = err.to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
        assert!(shown.contains("line 2"), "{shown}");
        assert_eq!(err.code(), "config-parse");
    }
    // Key names stay, so the operator can still find the mistake.
    let err =
        Config::parse_toml("[http]\nmax_conections = 4\n", Path::new("efgs.toml")).unwrap_err();
    assert!(err.to_string().contains("max_conections"), "{err}");
}

#[test]
fn database_url_redaction_of_quoted_and_spaced_values() {
    for url in [
        "host=db password='hunter2 s3cr3t' dbname=efgs",
        "host=db password = hunter2 dbname=efgs",
        "host=db password='hunter2\\' s3cr3t' dbname=efgs",
        "host=db PASSWORD=hunter2",
        "postgres://db/efgs?password=hunter2%20s3cr3t#frag",
        "postgres://efgs:hunter2@db/efgs?password=hunter2",
        "postgresql://efgs:hunter2%40x@db:5432/efgs",
    ] {
        let u = DatabaseUrl::new(url);
        let shown = u.redacted();
        assert!(!shown.contains("hunter2"), "{url} -> {shown}");
        assert!(!shown.contains("s3cr3t"), "{url} -> {shown}");
        assert!(shown.contains("[redacted]"), "{url} -> {shown}");
    }
    // What is not a password stays readable.
    let u = DatabaseUrl::new("host=db user=efgs password='a b' dbname=efgs sslmode=require");
    assert_eq!(
        u.redacted(),
        "host=db user=efgs password=[redacted] dbname=efgs sslmode=require"
    );
}
