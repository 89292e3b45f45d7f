//! Operations (issue 11): the audit trail, its push to log management, the metrics and the
//! health endpoints, over the real server.
//!
//! - One event of each type ends up in the stored trail and at a syslog and an HTTP collector
//!   on loopback, in order, chain intact; changing one stored event makes
//!   `efgs-server audit-log verify` name it (PostgreSQL).
//! - Collectors that go down during a run of uploads and come back receive every event exactly
//!   once, in order.
//! - `/metrics` counters move with an upload; `/readyz` answers 503 while PostgreSQL (a
//!   private cluster this test starts and stops) is down and 200 once it is back.
//! - No event of a full upload/download/audit run holds key data, a signature or a secret.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use efgs_core::media::BodyFormat;
use efgs_core::model::CertificateType;
use efgs_core::store::{DynInspectableStore, TrustListStore as _};
use efgs_testkit::callbacks::{Answer, Receiver, gateway_client_cert, receiver_cert};
use efgs_testkit::collector::{Collector, CollectorKind};
use efgs_testkit::federation::{Federation, PostgresSchema, TestClock};
use efgs_testkit::harness::{
    CapturedLog, Serving, free_port, gateway_env, gateway_files, run_command, serve,
};
use efgs_testkit::national::{Identity, NationalBackend};
use efgs_testkit::pki::{Pki, trust_entry};
use support::{Backend, assert_chain, stored};

const PB: BodyFormat = BodyFormat::Protobuf;
const PB_V1: &str = "application/protobuf; version=1.0";
const OPERATOR: &str = "efgs-ops-test";

http_tests!(
    collectors_going_down_receive_every_event_exactly_once,
    no_event_holds_key_data_a_signature_or_a_secret,
);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The event name of a line.
fn name(line: &str) -> &str {
    line.split(' ').nth(2).unwrap_or("")
}

/// Waits until `done` holds, failing after `limit` with `what`.
async fn until(limit: Duration, what: &str, mut done: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < limit, "{what} not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until both collectors hold as many messages as the store has events, then a little
/// longer (a duplicate would arrive in that time), and checks they hold exactly the stored
/// trail, in order.
async fn assert_collectors_hold_the_trail(store: &DynInspectableStore, collectors: &[&Collector]) {
    // A running gateway keeps appending (its jobs run every second): compare what was stored
    // up to a head read first, and what each collector received up to that head.
    let head = store.append_audit_events(Vec::new()).await.unwrap();
    for c in collectors {
        until(
            Duration::from_secs(20),
            "delivery of every event",
            async || c.seqs().len() as u64 >= head,
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut records = stored(store).await;
    assert!(records.len() as u64 >= head, "{} < {head}", records.len());
    assert_chain(&records);
    records.truncate(head as usize);
    let lines: Vec<String> = records.iter().map(|r| r.line.clone()).collect();
    for c in collectors {
        let seqs = c.seqs();
        assert_eq!(
            seqs,
            (1..=seqs.len() as u64).collect::<Vec<_>>(),
            "every event exactly once, in order"
        );
        let mut received = c.lines();
        received.truncate(head as usize);
        assert_eq!(received, lines, "the collector holds the stored lines");
    }
}

// ---------------------------------------------------------------------------------------------
// The operator's process: `efgs-server serve` and the commands, on PostgreSQL
// ---------------------------------------------------------------------------------------------

struct Gateway {
    dir: tempfile::TempDir,
    pki: Pki,
    schema: PostgresSchema,
    extra: Vec<(String, String)>,
}

impl Gateway {
    fn new(schema: PostgresSchema, extra: Vec<(String, String)>) -> Gateway {
        let (dir, pki) = gateway_files().unwrap();
        Gateway {
            dir,
            pki,
            schema,
            extra,
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn env(&self, listen: SocketAddr) -> Vec<(String, String)> {
        let mut env = gateway_env(self.dir.path(), &self.schema, listen, OPERATOR);
        env.extend(self.extra.iter().cloned());
        env
    }

    async fn command(&self, args: &[&str]) -> ExitCode {
        run_command(args, |listen| self.env(listen)).await.unwrap()
    }

    async fn serve(&self) -> Serving {
        serve(|listen| self.env(listen)).await.unwrap()
    }
}

#[tokio::test]
async fn every_event_type_reaches_the_trail_and_both_collectors_and_verify_names_a_change() {
    let Some(Backend::Postgres(schema)) =
        Backend::postgres("every_event_type_reaches_the_trail_and_both_collectors").await
    else {
        return;
    };
    let syslog = Collector::start(CollectorKind::Syslog).await.unwrap();
    let http = Collector::start(CollectorKind::Http).await.unwrap();
    let setting = |k: &str, v: String| (k.to_owned(), v);
    // Callbacks: the gateway's client certificate, 127.0.0.1 allowed, suspension at the first
    // failure.
    let cb_dir = tempfile::tempdir().unwrap();
    let (_, cb_cert, cb_key) =
        gateway_client_cert(cb_dir.path(), time::OffsetDateTime::now_utc()).unwrap();
    let gw = Gateway::new(
        schema.clone(),
        vec![
            setting("EFGS_CALLBACK_CLIENT_CERT", cb_cert.display().to_string()),
            setting("EFGS_CALLBACK_CLIENT_KEY", cb_key.display().to_string()),
            setting("EFGS_CALLBACK_ALLOW_CIDRS", "127.0.0.1/32".into()),
            setting("EFGS_CALLBACK_POLL_MILLIS", "100".into()),
            setting("EFGS_CALLBACK_MAX_RETRIES", "0".into()),
            setting("EFGS_AUDIT_SYSLOG", syslog.url()),
            setting("EFGS_AUDIT_HTTP_URL", http.url()),
            setting("EFGS_AUDIT_PUSH_RETRY_MS", "50".into()),
            setting("EFGS_BATCHING_INTERVAL_SECS", "0".into()),
            setting("EFGS_BATCHING_CHECK_SECS", "1".into()),
            setting("EFGS_RETENTION_INTERVAL_SECS", "1".into()),
        ],
    );
    let log = CapturedLog::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let store = schema.store().await.unwrap();

    let Serving { base, stop, task } = gw.serve().await;
    let clock = TestClock::system();
    let backend = |c: &str| {
        NationalBackend::new(&base, gw.pki.country(c).unwrap(), clock.as_fn())
            .unwrap()
            .with_visited_pool(["DE", "FR"])
    };
    let (de, fr) = (backend("DE"), backend("FR"));
    // Callback subscriptions: DE's receiver answers 200, FR's 500 (suspended at once); one
    // subscription created and deleted.
    let mut receivers = Vec::new();
    for country in ["DE", "FR"] {
        let cert = receiver_cert(&["127.0.0.1"], country, clock.now()).unwrap();
        let entry = gw
            .pki
            .sign_entry(&cert.cert_pem, country, CertificateType::Callback)
            .unwrap();
        let _ = store
            .upsert_trust_entry(trust_entry(&entry, clock.now()))
            .await
            .unwrap();
        receivers.push(
            Receiver::start(SocketAddr::from(([127, 0, 0, 1], 0)), cert)
                .await
                .unwrap(),
        );
    }
    receivers[1].set_default(Answer::Status(500));
    for (b, id, r) in [
        (&de, "ops-cb", &receivers[0]),
        (&fr, "ops-cb", &receivers[1]),
    ] {
        let put = b.callback_put(id, Some(&r.url("127.0.0.1"))).await.unwrap();
        assert_eq!(put.status, 200, "{}", String::from_utf8_lossy(&put.body));
    }
    let gone = de
        .callback_put("ops-cb-gone", Some("https://127.0.0.1/gone"))
        .await
        .unwrap();
    assert_eq!(gone.status, 200);
    assert_eq!(de.callback_delete("ops-cb-gone").await.unwrap().status, 200);
    let keys = de.keys(10);
    assert_eq!(de.upload(&keys, "ops-1", PB).await.unwrap().status, 201);
    let refused = fr
        .download_request(clock.today())
        .identity(Identity::raw(
            Some(&"ab".repeat(32)),
            Some("C=FR, CN=intruder"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status, 403);
    // The batching job cuts a batch within a second or two.
    let mut tag = String::new();
    until(Duration::from_secs(10), "a batch", async || {
        let r = fr.download(clock.today(), None, Some(PB_V1)).await.unwrap();
        if r.status == 200 {
            tag = r.batch_tag.clone().unwrap();
        }
        r.status == 200
    })
    .await;
    assert_eq!(fr.audit(clock.today(), &tag).await.unwrap().status, 200);
    until(
        Duration::from_secs(10),
        "a callback delivered and one suspended",
        async || {
            let records = stored(&store).await;
            let has = |outcome: &str| {
                records.iter().any(|r| {
                    name(&r.line) == "callback.delivery"
                        && r.line.contains(&format!("outcome={outcome}"))
                })
            };
            has("delivered") && has("suspended")
        },
    )
    .await;
    until(Duration::from_secs(10), "a retention run", async || {
        stored(&store)
            .await
            .iter()
            .any(|r| name(&r.line) == "retention.run")
    })
    .await;
    // The operator's commands.
    let fr_auth = gw.pki.country("FR").unwrap().auth_thumbprint.to_string();
    assert_eq!(
        gw.command(&["trust-list", "revoke", &fr_auth]).await,
        ExitCode::SUCCESS
    );
    assert_eq!(
        gw.command(&["trust-list", "readmit", &fr_auth]).await,
        ExitCode::SUCCESS
    );
    assert_eq!(
        gw.command(&["trust-list", "import", &gw.path("trust-list")])
            .await,
        ExitCode::SUCCESS
    );

    assert_collectors_hold_the_trail(store.as_ref(), &[&syslog, &http]).await;
    let records = stored(&store).await;
    let names: std::collections::BTreeSet<&str> = records.iter().map(|r| name(&r.line)).collect();
    for expected in [
        "config.loaded",
        "trust.import",
        "auth.success",
        "auth.failure",
        "upload",
        "download",
        "audit.query",
        "batch.cut",
        "retention.run",
        "trust.revoke",
        "trust.readmit",
        "callback.subscription",
        "callback.delivery",
    ] {
        assert!(names.contains(expected), "no {expected} event in {names:?}");
    }
    let line = |pred: &dyn Fn(&str) -> bool| {
        records
            .iter()
            .find(|r| pred(&r.line))
            .unwrap_or_else(|| panic!("no such line"))
            .clone()
    };
    let upload = line(&|l| name(l) == "upload");
    let de_creds = gw.pki.country("DE").unwrap();
    for field in [
        "country=DE".to_owned(),
        "batch_tag=ops-1".to_owned(),
        "keys=10".to_owned(),
        format!("signer={}", de_creds.sign_thumbprint),
        "outcome=stored".to_owned(),
        "status=201".to_owned(),
    ] {
        assert!(
            upload.line.contains(&field),
            "{field} missing: {}",
            upload.line
        );
    }
    let failure = line(&|l| name(l) == "auth.failure");
    assert!(
        failure
            .line
            .contains(&format!("thumbprint={}", "ab".repeat(32))),
        "{}",
        failure.line
    );
    assert!(
        failure.line.contains("subject=\"C=FR, CN=intruder\""),
        "{}",
        failure.line
    );
    assert!(failure.line.contains("status=403"), "{}", failure.line);
    let revoke = line(&|l| name(l) == "trust.revoke");
    assert!(
        revoke.line.contains(&format!("os_user={OPERATOR}")),
        "{}",
        revoke.line
    );
    let config = line(&|l| name(l) == "config.loaded");
    assert!(config.line.contains("version=") && config.line.contains("duplicate_hash.secret="));

    // verify: intact, then names the changed event.
    assert_eq!(
        gw.command(&["audit-log", "verify"]).await,
        ExitCode::SUCCESS
    );
    assert!(log.text().contains("audit trail intact"), "{}", log.text());
    let (client, conn) = tokio_postgres::connect(schema.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .execute(
            &format!(
                "UPDATE {}.audit_events SET line = replace(line, 'keys=10', 'keys=9') WHERE seq = $1",
                schema.schema()
            ),
            &[&i64::try_from(upload.seq).unwrap()],
        )
        .await
        .unwrap();
    assert_eq!(
        gw.command(&["audit-log", "verify"]).await,
        ExitCode::FAILURE
    );
    let text = log.text();
    assert!(
        text.contains(&format!("event {} was altered", upload.seq)),
        "verify does not name event {}: {text}",
        upload.seq
    );
    // export writes the events of a time range as lines.
    let out = gw.path("export.log");
    let from = records[0].at.date().to_string();
    let to = (records[0].at.date() + time::Duration::days(1)).to_string();
    assert_eq!(
        gw.command(&[
            "audit-log",
            "export",
            "--from",
            &from,
            "--to",
            &to,
            "--out",
            &out
        ])
        .await,
        ExitCode::SUCCESS
    );
    let exported = std::fs::read_to_string(&out).unwrap();
    // The gateway's jobs keep appending: at least every event read above is exported.
    assert!(
        exported.lines().count() >= records.len(),
        "{} exported, {} stored before",
        exported.lines().count(),
        records.len()
    );
    assert!(
        exported.contains("keys=9"),
        "the export shows the stored (changed) line"
    );

    let _ = stop.send(());
    assert_eq!(task.await.unwrap(), ExitCode::SUCCESS);
}

// ---------------------------------------------------------------------------------------------
// Collector outage
// ---------------------------------------------------------------------------------------------

/// A DE+FR federation on `b` pushing its trail to both collectors, retrying every 50 ms.
async fn pushing_to(b: &Backend, syslog: &Collector, http: &Collector) -> Federation {
    b.builder()
        .await
        .countries(["DE", "FR"])
        .setting("audit.syslog", syslog.url())
        .setting("audit.http_url", http.url())
        .setting("audit.push_retry_ms", "50")
        .build()
        .await
        .unwrap()
}

/// DE uploads five keys under `tag` (201 expected), then the test pauses 20 ms.
async fn upload_five(fed: &Federation, tag: &str) {
    let de = &fed["DE"];
    let r = de.upload(&de.keys(5), tag, PB).await.unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    tokio::time::sleep(Duration::from_millis(20)).await;
}

async fn collectors_going_down_receive_every_event_exactly_once(b: Backend) {
    let mut syslog = Collector::start(CollectorKind::Syslog).await.unwrap();
    let mut http = Collector::start(CollectorKind::Http).await.unwrap();
    let fed = pushing_to(&b, &syslog, &http).await;
    for i in 0..24 {
        match i {
            6 => {
                // The syslog collector shuts down; the HTTP one crashes.
                syslog.stop().await;
                http.crash().await;
            }
            16 => {
                syslog.restart().await.unwrap();
                http.restart().await.unwrap();
            }
            _ => {}
        }
        upload_five(&fed, &format!("outage-{i}")).await;
    }
    assert_collectors_hold_the_trail(fed.store().as_ref(), &[&syslog, &http]).await;
    fed.shutdown().await.unwrap();
}

/// Several instances push one trail without duplicates (build point 3): two gateways on one
/// PostgreSQL, both configured with the same collectors, serve uploads alternately; each
/// collector receives every stored event exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_push_one_trail_without_duplicates() {
    let Some(b) = Backend::postgres("two_instances_push_one_trail_without_duplicates").await else {
        return;
    };
    let syslog = Collector::start(CollectorKind::Syslog).await.unwrap();
    let http = Collector::start(CollectorKind::Http).await.unwrap();
    let first = pushing_to(&b, &syslog, &http).await;
    let second = first.instance().await.unwrap();
    for i in 0..12 {
        let fed = if i % 2 == 0 { &first } else { &second };
        upload_five(fed, &format!("two-{i}")).await;
    }
    assert_collectors_hold_the_trail(first.store().as_ref(), &[&syslog, &http]).await;
    second.shutdown().await.unwrap();
    first.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// No key data, signature or secret
// ---------------------------------------------------------------------------------------------

/// A run of 20 or more Base64 characters that is not plain hexadecimal (thumbprints and
/// hashes are hex): what key data, signatures or secrets would look like.
fn base64_run(line: &str) -> Option<&str> {
    line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '/'))
        .find(|t| t.len() >= 20 && !t.chars().all(|c| c.is_ascii_hexdigit()) && !t.starts_with('/'))
}

async fn no_event_holds_key_data_a_signature_or_a_secret(b: Backend) {
    let fed = b.federation(&["DE", "FR"]).await;
    let (de, fr) = (&fed["DE"], &fed["FR"]);
    let keys = de.keys(50);
    let signature = de.sign(&keys).unwrap();
    let r = de
        .upload_request(keys.clone())
        .tag("secrets-1")
        .signature(signature.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status, 201);
    let bad = de
        .upload_request(de.keys(3))
        .tag("secrets-2")
        .signature(signature.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status, 400, "a signature over other keys");
    let batches = fed.run_batching_now().await.unwrap();
    let tag = batches[0].batch.tag.to_string();
    assert_eq!(
        fr.download(fed.today(), None, Some(PB_V1))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(fr.audit(fed.today(), &tag).await.unwrap().status, 200);
    let intruder = fr
        .download_request(fed.today())
        .identity(Identity::raw(Some("not a thumbprint"), Some("C=FR")))
        .send()
        .await
        .unwrap();
    assert_eq!(intruder.status, 403);

    let records = stored(fed.store()).await;
    assert!(records.len() >= 8, "{records:?}");
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut secrets: Vec<String> = vec![
        signature[..40].to_owned(),
        "efgs-testkit duplicate hash secret".to_owned(),
        hex::encode([0x42; 32]),
        b64.encode([0x42; 32]),
    ];
    for k in &keys {
        secrets.push(b64.encode(&k.key_data));
        secrets.push(hex::encode(&k.key_data));
    }
    for r in &records {
        for s in &secrets {
            assert!(
                !r.line.contains(s.as_str()),
                "event {} holds {s}: {}",
                r.seq,
                r.line
            );
        }
        if let Some(run) = base64_run(&r.line) {
            panic!("event {} holds a Base64 run {run}: {}", r.seq, r.line);
        }
    }
    assert!(
        records
            .iter()
            .any(|r| r.line.contains("duplicate_hash.secret=[redacted]")),
        "the configuration event shows secrets redacted"
    );
    fed.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Metrics and readiness, with a private PostgreSQL cluster this test stops and starts
// ---------------------------------------------------------------------------------------------

/// A private cluster from scripts/pg-test-cluster.sh (own state file and port).
struct PrivateCluster {
    state: tempfile::TempDir,
    port: u16,
    url: String,
}

impl PrivateCluster {
    fn script(&self, cmd: &str) -> std::process::Output {
        std::process::Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../scripts/pg-test-cluster.sh"
            ))
            .arg(cmd)
            .env("EFGS_PG_STATE_FILE", self.state.path().join("state"))
            .env("EFGS_PG_PORT", self.port.to_string())
            .output()
            .unwrap()
    }

    fn start() -> Option<PrivateCluster> {
        let mut c = PrivateCluster {
            state: tempfile::tempdir().unwrap(),
            port: 20000 + (std::process::id() % 20000) as u16,
            url: String::new(),
        };
        let out = c.script("start");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let url = stdout
            .lines()
            .find_map(|l| l.strip_prefix("export EFGS_TEST_DATABASE_URL='"))
            .map(|u| u.trim_end_matches('\'').to_owned());
        match url {
            Some(url) if out.status.success() => {
                c.url = url;
                Some(c)
            }
            _ => {
                let why = String::from_utf8_lossy(&out.stderr).into_owned();
                assert!(
                    !support::postgres_required(),
                    "a private PostgreSQL cluster is required but did not start: {why}"
                );
                eprintln!("SKIPPED: no private PostgreSQL cluster ({why})");
                None
            }
        }
    }

    fn halt(&self) {
        assert!(self.script("halt").status.success(), "pg_ctl stop");
    }

    fn resume(&self) {
        let out = self.script("resume");
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = self.script("stop");
    }
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let (status, _, body) = support::raw_http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        b"",
    )
    .await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The value of the sample `series` (name and labels exactly as exposed), 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_with_an_upload_and_readyz_follows_the_database() {
    let cluster = tokio::task::spawn_blocking(PrivateCluster::start)
        .await
        .unwrap();
    let Some(cluster) = cluster else {
        return;
    };
    let schema = PostgresSchema::new(cluster.url.clone()).await.unwrap();
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
    let fed = Federation::builder()
        .postgres(&schema)
        .countries(["DE", "FR"])
        .setting("metrics.listen", metrics.to_string())
        .setting("database.connect_timeout_secs", "1")
        .build()
        .await
        .unwrap();
    // The listener starts with `serve`, right after the federation is built.
    until(
        Duration::from_secs(10),
        "the metrics listener",
        async || tokio::net::TcpStream::connect(metrics).await.is_ok(),
    )
    .await;
    let (status, before) = get(metrics, "/metrics").await;
    assert_eq!(status, 200);
    for family in [
        "efgs_build_info{",
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "efgs_db_pool_connections{state=\"max\"} 8",
        "efgs_pending_keys 0",
    ] {
        assert!(before.contains(family), "{family} missing:\n{before}");
    }
    let de = &fed["DE"];
    assert_eq!(
        de.upload(&de.keys(20), "metrics-1", PB)
            .await
            .unwrap()
            .status,
        201
    );
    let bad = de
        .upload_request(de.keys(2))
        .tag("metrics-2")
        .signature("AAAA")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status, 400);
    let (_, after) = get(metrics, "/metrics").await;
    let upload_201 = "efgs_http_requests_total{route=\"upload\",status=\"201\"}";
    assert_eq!(sample(&before, upload_201), 0.0);
    assert_eq!(sample(&after, upload_201), 1.0, "{after}");
    assert_eq!(
        sample(&after, "efgs_upload_keys_total{country=\"DE\"}"),
        20.0
    );
    assert_eq!(sample(&after, "efgs_pending_keys"), 20.0);
    assert!(
        sample(&after, "efgs_audit_events_total")
            >= sample(&before, "efgs_audit_events_total") + 4.0,
        "{after}"
    );
    assert!(
        after.contains("efgs_signature_failures_total{reason="),
        "{after}"
    );
    assert_eq!(get(metrics, "/readyz").await.0, 200);
    assert_eq!(get(metrics, "/livez").await.0, 200);

    let cluster = Arc::new(cluster);
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.halt()).await.unwrap();
    until(
        Duration::from_secs(15),
        "/readyz 503 with the database down",
        async || get(metrics, "/readyz").await.0 == 503,
    )
    .await;
    assert_eq!(get(metrics, "/livez").await.0, 200, "alive while not ready");
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.resume())
        .await
        .unwrap();
    until(
        Duration::from_secs(20),
        "/readyz 200 with the database back",
        async || get(metrics, "/readyz").await.0 == 200,
    )
    .await;
    assert_eq!(
        de.upload(&de.keys(5), "metrics-3", PB)
            .await
            .unwrap()
            .status,
        201,
        "serving again without a restart"
    );
    fed.shutdown().await.unwrap();
}
