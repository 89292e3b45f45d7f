//! Secrets test (issue 9 point 9): a representative run (uploads in both formats, a replay,
//! refusals of every kind, batching, downloads in both formats, audits) with logging at
//! `debug` for every crate (the way `efgs-server` installs it with `log.filter = "debug"`:
//! `tracing` events and `log` records), collecting every log line and every response body
//! except the payloads a route exists to hand out (the keys of a 200 download, the signatures
//! of a 200 audit). None may contain key data (hex or Base64 of any uploaded key), private key
//! text, a batchSignature, the database password, the encryption key or the duplicate-hash
//! secret.
//!
//! The subscriber is global to this test binary; both tests check the combined log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

use std::sync::OnceLock;

use base64::Engine as _;
use efgs_core::DiagnosisKey;
use efgs_core::media::BodyFormat;
use efgs_testkit::federation::{Federation, FederationBuilder};
use efgs_testkit::harness::{CapturedLog, PasswordRole};
use efgs_testkit::national::{Identity, encode_body};
use efgs_testkit::pki::CertSpec;
use support::Backend;

http_tests!(
    secrets_never_logged_nor_answered,
    json_errors_do_not_echo_key_data,
);

/// The scenario on PostgreSQL with every log line checked, the database driver's included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_driver_logs_no_secrets() {
    let Some(backend) = Backend::postgres("postgres_driver_logs_no_secrets").await else {
        return;
    };
    run(&backend, Scenario::Representative, Lines::All).await;
    backend.cleanup().await;
}

/// Which requests a run makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    /// Uploads, refusals, batching, downloads, audits.
    Representative,
    /// JSON uploads malformed around the key data.
    MalformedJson,
}

/// Which log lines a run checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lines {
    /// Every line.
    All,
    /// Every line but those of the PostgreSQL driver (`tokio_postgres`), checked by
    /// [`postgres_driver_logs_no_secrets`].
    ButDriver,
}

/// The federation's duplicate-hash secret (efgs_testkit::federation's default).
const DUPLICATE_SECRET: &str = "efgs-testkit duplicate hash secret";
/// The encryption key of the PostgreSQL run.
const ENCRYPTION_KEY: [u8; 32] = [
    0x5e, 0xc7, 0x3e, 0x70, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc,
    0xdd, 0xee, 0xf0, 0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87, 0x96, 0xa5, 0xb4, 0xc3,
];

/// Installs the global subscriber (once): every crate at `debug`, text without colours, into
/// a buffer.
fn log() -> &'static CapturedLog {
    static LOG: OnceLock<CapturedLog> = OnceLock::new();
    LOG.get_or_init(|| {
        let captured = CapturedLog::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            // `log.filter = debug`, installed the way efgs-server installs it.
            .with_env_filter(efgs_server::log_filter("debug").unwrap())
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init()
            .expect("the only subscriber of this test binary");
        captured
    })
}

/// The secrets of one run, by what they are.
#[derive(Default)]
struct Secrets(Vec<(String, String)>);

impl Secrets {
    fn add(&mut self, what: impl Into<String>, value: impl Into<String>) {
        let value = value.into();
        if value.len() >= 8 {
            self.0.push((what.into(), value));
        }
    }

    fn keys(&mut self, keys: &[DiagnosisKey]) {
        use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
        for k in keys {
            let hex = hex::encode(&k.key_data);
            self.add("key data (hex)", hex.clone());
            self.add("key data (HEX)", hex.to_ascii_uppercase());
            self.add("key data (Base64)", STANDARD_NO_PAD.encode(&k.key_data));
            self.add("key data (Base64 URL)", URL_SAFE_NO_PAD.encode(&k.key_data));
            self.add("key data (Base64 padded)", STANDARD.encode(&k.key_data));
            // The bytes as Rust's Debug would print them.
            self.add("key data (Debug)", format!("{:?}", k.key_data));
        }
    }

    /// A PKCS#8 PEM private key: its Base64 body, the body's first two lines (the private
    /// scalar lies in them; later lines hold the public key, which certificates show), and
    /// the P-256 scalar in hex and Base64.
    fn private_key(&mut self, what: &str, pem: &str) {
        let lines: Vec<&str> = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        self.add(format!("{what} (PEM body)"), lines.concat());
        for line in lines.iter().take(2) {
            self.add(format!("{what} (PEM line)"), *line);
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(lines.concat())
            .unwrap();
        // ECPrivateKey: version 1, then the OCTET STRING of the scalar.
        if let Some(at) = der
            .windows(5)
            .position(|w| w == [0x02, 0x01, 0x01, 0x04, 0x20])
        {
            let scalar = &der[at + 5..at + 37];
            self.add(format!("{what} (scalar hex)"), hex::encode(scalar));
            self.add(
                format!("{what} (scalar Base64)"),
                base64::engine::general_purpose::STANDARD_NO_PAD.encode(scalar),
            );
        }
    }

    fn signature(&mut self, signature: &str) {
        self.add("batchSignature", signature);
        // Any 40-character window (so a shortened echo is found too).
        let mid = signature.len() / 2;
        if signature.len() > 100 {
            self.add("batchSignature (middle)", &signature[mid - 20..mid + 20]);
        }
    }

    /// Every secret found in `text`, with where.
    fn find_in(&self, where_: &str, text: &str, out: &mut Vec<String>) {
        for (what, value) in &self.0 {
            if let Some(at) = text.find(value.as_str()) {
                let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
                let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
                let line: String = text[line_start..line_end].chars().take(400).collect();
                out.push(format!("{what} in {where_}: {line}"));
            }
        }
    }
}

/// Response bodies collected during the run.
#[derive(Default)]
struct Bodies(Vec<(String, Vec<u8>)>);

impl Bodies {
    fn add(&mut self, what: &str, status: u16, body: &[u8]) {
        self.0.push((format!("{what} ({status})"), body.to_vec()));
    }
}

/// The representative scenario; on PostgreSQL the driver's own lines are left to
/// [`postgres_driver_logs_no_secrets`].
async fn secrets_never_logged_nor_answered(b: Backend) {
    run(&b, Scenario::Representative, Lines::ButDriver).await;
}

/// JSON uploads malformed right at the key data (unquoted Base64): the error names the
/// position, not the key.
async fn json_errors_do_not_echo_key_data(b: Backend) {
    run(&b, Scenario::MalformedJson, Lines::All).await;
}

/// Log events (an event's continuation lines joined to it) and their targets.
fn events(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let starts_event = line.len() > 5
            && line.as_bytes()[..4].iter().all(u8::is_ascii_digit)
            && line.as_bytes()[4] == b'-';
        if starts_event || out.is_empty() {
            let target = line
                .split_whitespace()
                .nth(2)
                .unwrap_or_default()
                .trim_end_matches(':')
                .to_owned();
            out.push((target, line.to_owned()));
        } else if let Some(last) = out.last_mut() {
            last.1.push('\n');
            last.1.push_str(line);
        }
    }
    out
}

async fn run(b: &Backend, scenario: Scenario, lines: Lines) {
    let log = log();
    let mut secrets = Secrets::default();
    secrets.add("duplicate-hash secret", DUPLICATE_SECRET);
    let mut builder: FederationBuilder =
        efgs_testkit::federation::Federation::builder().countries(["DE", "FR", "NL"]);
    let mut pg = None;
    if let Backend::Postgres(schema) = b {
        // The test's own administration (CREATE ROLE ... PASSWORD) is not the gateway's log.
        let quiet = tracing::subscriber::set_default(tracing::subscriber::NoSubscriber::default());
        let role = PasswordRole::create(schema.url()).await.unwrap();
        drop(quiet);
        let (url, password) = (role.url.clone(), role.password.clone());
        secrets.add("database password", password.clone());
        let hex_key = hex::encode(ENCRYPTION_KEY);
        secrets.add("encryption key (hex)", hex_key.clone());
        secrets.add("encryption key (HEX)", hex_key.to_ascii_uppercase());
        secrets.add(
            "encryption key (Base64)",
            base64::engine::general_purpose::STANDARD.encode(ENCRYPTION_KEY),
        );
        builder = builder
            .setting("storage", "postgres")
            .setting("database.url", url.clone())
            .setting("database.password", password.clone())
            .setting("database.schema", role.schema.clone())
            .setting("database.pool_size", "4")
            .setting("encryption.active_key", "1")
            .setting("encryption.keys", format!("1={hex_key}"));
        pg = Some(role);
    }
    let fed = builder.build().await.unwrap();
    secrets.private_key("trust anchor key", &fed.pki().anchor_key_pem);
    for c in fed.pki().countries.values() {
        secrets.private_key(
            &format!("{} AUTHENTICATION key", c.country),
            &c.auth_key_pem,
        );
        secrets.private_key(&format!("{} SIGNING key", c.country), &c.sign_key_pem);
    }
    let mut bodies = Bodies::default();
    match scenario {
        Scenario::Representative => run_scenario(&fed, &mut secrets, &mut bodies).await,
        Scenario::MalformedJson => malformed_json(&fed, &mut secrets, &mut bodies).await,
    }
    fed.shutdown().await.unwrap();
    if let Some(role) = &pg {
        let quiet = tracing::subscriber::set_default(tracing::subscriber::NoSubscriber::default());
        role.drop_role().await;
        drop(quiet);
    }

    let text = log.text();
    assert!(text.contains("request refused"), "the log was not captured");
    let mut found = Vec::new();
    let mut checked = 0;
    for (target, event) in events(&text) {
        if lines == Lines::ButDriver && target.starts_with("tokio_postgres") {
            continue;
        }
        checked += 1;
        secrets.find_in("the log", &event, &mut found);
    }
    for (what, body) in &bodies.0 {
        secrets.find_in(what, &String::from_utf8_lossy(body), &mut found);
    }
    eprintln!(
        "PENTEST secrets [{} {scenario:?} {lines:?}]: {checked} log events ({} bytes), {} response bodies, {} secret values, {} found",
        match b {
            Backend::Memory => "memory",
            Backend::Postgres(_) => "postgres",
        },
        text.len(),
        bodies.0.len(),
        secrets.0.len(),
        found.len()
    );
    found.sort();
    found.dedup();
    assert!(
        found.is_empty(),
        "{} secrets leaked, e.g.:\n{}",
        found.len(),
        found
            .iter()
            .take(12)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// JSON uploads whose key data is malformed: unquoted Base64, in the first and in a later
/// key.
async fn malformed_json(fed: &Federation, secrets: &mut Secrets, bodies: &mut Bodies) {
    let de = &fed["DE"];
    let keys = de.keys(3);
    secrets.keys(&keys);
    let json = String::from_utf8(encode_body(&keys, BodyFormat::Json)).unwrap();
    for (i, k) in keys.iter().enumerate().take(2) {
        let b64 = base64::engine::general_purpose::STANDARD.encode(&k.key_data);
        let body = json.replacen(&format!("\"{b64}\""), &b64, 1);
        let r = de
            .upload_request(keys.clone())
            .tag("m-1")
            .format(BodyFormat::Json)
            .body(body.into_bytes())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status, 400, "unquoted key data of key {i}");
        secrets.signature(r.signature.as_deref().unwrap());
        bodies.add(&format!("unquoted key data of key {i}"), r.status, &r.body);
    }
}

/// Uploads, refusals, batching, downloads and audits; records the secrets and the bodies.
async fn run_scenario(fed: &Federation, secrets: &mut Secrets, bodies: &mut Bodies) {
    const PB: BodyFormat = BodyFormat::Protobuf;
    const JSON: BodyFormat = BodyFormat::Json;
    let de = &fed["DE"];
    let fr = &fed["FR"];
    let nl = &fed["NL"];

    // Uploads in both formats, a replay, 409, 207.
    let k1 = de.keys(5);
    let k2 = fr.keys(5);
    secrets.keys(&k1);
    secrets.keys(&k2);
    for (who, keys, tag, format) in [(de, &k1, "s-1", PB), (fr, &k2, "s-2", JSON)] {
        let r = who.upload(keys, tag, format).await.unwrap();
        assert_eq!(r.status, 201, "{}", r.text());
        secrets.signature(r.signature.as_deref().unwrap());
        bodies.add("upload", r.status, &r.body);
    }
    let r = de.upload(&k1, "s-1", PB).await.unwrap();
    assert_eq!(r.status, 201, "replay");
    bodies.add("replay", r.status, &r.body);
    let k3 = de.keys(3);
    secrets.keys(&k3);
    let r = de.upload(&k3, "s-1", PB).await.unwrap();
    assert_eq!(r.status, 409);
    secrets.signature(r.signature.as_deref().unwrap());
    bodies.add("409", r.status, &r.body);
    let mut dup = k1[..2].to_vec();
    dup.extend(k3.clone());
    let r = de.upload(&dup, "s-3", JSON).await.unwrap();
    assert_eq!(r.status, 207, "{}", r.text());
    secrets.signature(r.signature.as_deref().unwrap());
    bodies.add("207", r.status, &r.body);

    // Refusals carrying keys and signatures.
    let k4 = de.keys(4);
    secrets.keys(&k4);
    let old_signature = de.sign(&k1).unwrap();
    let r = de
        .upload_request(k4.clone())
        .tag("s-4")
        .signature(old_signature)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status, 400, "replayed signature");
    bodies.add("replayed signature", r.status, &r.body);
    let mut short = de.keys(2);
    short[1].key_data = short[1].key_data[..15].into();
    secrets.keys(&short);
    let r = de
        .upload_request(short)
        .tag("s-5")
        .format(JSON)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status, 400, "15-byte key");
    secrets.signature(r.signature.as_deref().unwrap());
    bodies.add("15-byte key", r.status, &r.body);
    let k5 = fr.keys(3);
    secrets.keys(&k5);
    let r = de.upload(&k5, "s-6", PB).await.unwrap();
    assert_eq!(r.status, 400, "foreign origin");
    secrets.signature(r.signature.as_deref().unwrap());
    bodies.add("foreign origin", r.status, &r.body);
    let sig_other = fr.sign(&k4).unwrap();
    secrets.signature(&sig_other);
    let r = de
        .upload_request(k4.clone())
        .tag("s-7")
        .signature(sig_other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status, 400, "signed by FR");
    bodies.add("signed by FR", r.status, &r.body);
    // Malformed JSON around key data: a stray token after it, a number instead (unquoted key
    // data: `json_errors_do_not_echo_key_data`).
    let k6 = de.keys(2);
    secrets.keys(&k6);
    let json = String::from_utf8(encode_body(&k6, JSON)).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&k6[0].key_data);
    for (what, body) in [
        (
            "token after key data",
            json.replacen(&format!("\"{b64}\""), &format!("\"{b64}\" x"), 1),
        ),
        (
            "key data as a number",
            json.replacen(&format!("\"{b64}\""), "1e999", 1),
        ),
    ] {
        let r = de
            .upload_request(k6.clone())
            .tag("s-8")
            .format(JSON)
            .body(body.into_bytes())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status, 400, "{what}");
        secrets.signature(r.signature.as_deref().unwrap());
        bodies.add(what, r.status, &r.body);
    }
    // A protobuf body cut inside a key.
    let pb = encode_body(&k6, PB);
    let r = de
        .upload_request(k6.clone())
        .tag("s-9")
        .body(pb[..pb.len() - 5].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status, 400, "cut protobuf");
    bodies.add("cut protobuf", r.status, &r.body);
    let r = de
        .upload_request(k6.clone())
        .tag("bad tag")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    bodies.add("bad tag", r.status, &r.body);

    // Identities refused.
    let stranger = CertSpec::new(Some("NL"), "stranger", fed.now())
        .generate()
        .unwrap();
    secrets.private_key("stranger key", &stranger.key_pem);
    let r = nl
        .download_request(fed.today())
        .identity(Identity::raw(
            Some(stranger.thumbprint.as_str()),
            Some("C=NL"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    bodies.add("unknown certificate", r.status, &r.body);
    let r = nl
        .upload_request(nl.keys(1))
        .tag("s-10")
        .identity(Identity::CertHeader(
            "-----BEGIN%20CERTIFICATE-----%0AAAAA".into(),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    secrets.signature(r.signature.as_deref().unwrap());
    bodies.add("broken certificate header", r.status, &r.body);

    // Batching, downloads and audits.
    fed.run_batching_now().await.unwrap();
    for format in [PB, JSON] {
        let all = nl.download_all_as(fed.today(), format).await.unwrap();
        assert!(!all.is_empty());
    }
    let tag = support::tag(fed.today(), 1);
    let a = nl.audit(fed.today(), &tag).await.unwrap();
    assert_eq!(a.status, 200);
    for (what, r) in [
        (
            "unknown batch",
            nl.download(fed.today(), Some("20200101-9"), None).await,
        ),
        ("bad date", nl.download("2020-13-45", None, None).await),
        ("too old", nl.download("2001-01-01", None, None).await),
    ] {
        let r = r.unwrap();
        assert!(r.status >= 400, "{what}");
        bodies.add(what, r.status, &r.body);
    }
    for (what, r) in [
        (
            "audit unknown tag",
            nl.audit(fed.today(), "20200101-1").await,
        ),
        ("audit bad date", nl.audit("yesterday", &tag).await),
    ] {
        let r = r.unwrap();
        assert!(r.status >= 400, "{what}");
        bodies.add(what, r.status, &r.body);
    }
    // Revoked, then refused.
    fed.revoke(&nl.credentials().auth_thumbprint).await.unwrap();
    let r = nl.download(fed.today(), None, None).await.unwrap();
    assert_eq!(r.status, 403);
    bodies.add("revoked", r.status, &r.body);
}
