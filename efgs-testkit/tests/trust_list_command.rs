//! `efgs-server trust-list revoke|import|readmit` exactly as the operator runs them
//! ([`efgs_server::run`], all of the binary's `main`), beside `efgs-server serve`, on
//! PostgreSQL (issue 9): a certificate revoked with the command stays revoked when the server
//! restarts and when its entry is imported again; an entry that would change a thumbprint's
//! type is refused; only `trust-list readmit <thumbprint>` clears the revocation, logged with
//! the thumbprint and the OS user, and the running server honours it within one second.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use efgs_core::model::CertificateType;
use efgs_core::store::TrustListStore as _;
use efgs_testkit::federation::{PostgresSchema, TestClock};
use efgs_testkit::harness::{CapturedLog, Serving, gateway_env, gateway_files, run_command, serve};
use efgs_testkit::national::NationalBackend;
use efgs_testkit::pki::Pki;

const PB_V1: &str = "application/protobuf; version=1.0";
const OPERATOR: &str = "efgs-operator-test";

/// One gateway's files (PKI, trust list, secrets) and `EFGS_*` settings on `schema`.
struct Gateway {
    dir: tempfile::TempDir,
    pki: Pki,
    schema: PostgresSchema,
}

impl Gateway {
    fn new(schema: PostgresSchema) -> Gateway {
        let (dir, pki) = gateway_files().unwrap();
        Gateway { dir, pki, schema }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn env(&self, listen: SocketAddr) -> Vec<(String, String)> {
        let mut env = gateway_env(self.dir.path(), &self.schema, listen, OPERATOR);
        env.extend(
            [
                ("EFGS_BATCHING_CHECK_SECS", "86400"),
                ("EFGS_RETENTION_INTERVAL_SECS", "86400"),
                ("PATH", "/usr/bin:/bin"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        env
    }

    /// Runs `efgs-server <args>` to completion.
    async fn command(&self, args: &[&str]) -> ExitCode {
        run_command(args, |listen| self.env(listen)).await.unwrap()
    }

    /// Starts `efgs-server serve` on a free port and waits until it listens.
    async fn serve(&self) -> Serving {
        serve(|listen| self.env(listen)).await.unwrap()
    }
}

trait ServingExt {
    async fn probe(&self, gw: &Gateway, country: &str) -> u16;
    async fn stop(self);
}

impl ServingExt for Serving {
    /// The status of DE's download of today (404 "no batch yet" once authenticated).
    async fn probe(&self, gw: &Gateway, country: &str) -> u16 {
        let clock = TestClock::system();
        let backend =
            NationalBackend::new(&self.base, gw.pki.country(country).unwrap(), clock.as_fn())
                .unwrap();
        backend
            .download(clock.today(), None, Some(PB_V1))
            .await
            .unwrap()
            .status
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        let code = tokio::time::timeout(Duration::from_secs(40), self.task)
            .await
            .expect("serve stops at shutdown")
            .unwrap();
        assert_eq!(code, ExitCode::SUCCESS);
    }
}

#[tokio::test]
async fn revoke_restart_import_and_readmit_with_the_commands() {
    let Some(support::Backend::Postgres(schema)) =
        support::Backend::postgres("revoke_restart_import_and_readmit_with_the_commands").await
    else {
        return;
    };
    let gw = Gateway::new(schema.clone());
    let log = CapturedLog::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let de = gw.pki.country("DE").unwrap().clone();
    let de_auth = de.auth_thumbprint.to_string();

    // serve imports trust.import_dir at start; DE is admitted.
    let server = gw.serve().await;
    assert_eq!(
        server.probe(&gw, "DE").await,
        404,
        "authenticated, no batch yet"
    );

    // trust-list revoke: honoured by the running server within one second (its trust-list
    // change stamp, ADR 0030), logged with the operator.
    log.clear();
    assert_eq!(
        gw.command(&["trust-list", "revoke", &de_auth]).await,
        ExitCode::SUCCESS
    );
    let text = log.text();
    assert!(
        text.contains("trust-list entry revoked") && text.contains(&de_auth),
        "{text}"
    );
    assert!(
        text.contains(OPERATOR),
        "the log does not name the OS user: {text}"
    );
    let start = Instant::now();
    while server.probe(&gw, "DE").await != 403 {
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "DE is still admitted"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // A restart imports the same directory again: DE stays revoked, and the start-up log
    // says so.
    server.stop().await;
    log.clear();
    let server = gw.serve().await;
    let text = log.text();
    assert!(
        text.contains("trust-list entry kept revoked") && text.contains(&de_auth),
        "the start-up log does not report the entry kept revoked: {text}"
    );
    assert_eq!(
        server.probe(&gw, "DE").await,
        403,
        "the restart re-admitted a revoked certificate"
    );
    assert_eq!(server.probe(&gw, "FR").await, 404);

    // trust-list import: succeeds, keeps DE revoked and says so.
    log.clear();
    assert_eq!(
        gw.command(&["trust-list", "import", &gw.path("trust-list")])
            .await,
        ExitCode::SUCCESS
    );
    assert!(
        log.text().contains("trust-list entry kept revoked"),
        "{}",
        log.text()
    );
    assert_eq!(server.probe(&gw, "DE").await, 403);

    // An entry that would turn DE's AUTHENTICATION certificate into a SIGNING one is refused
    // with the reason, and the stored entry stays as it was.
    let store = schema.store().await.unwrap();
    let before = store.list_trust_entries().await.unwrap();
    let retyped = gw
        .pki
        .sign_entry(&de.auth_cert_pem, "DE", CertificateType::Signing)
        .unwrap();
    std::fs::write(gw.dir.path().join("retyped.json"), retyped.to_json()).unwrap();
    log.clear();
    assert_eq!(
        gw.command(&["trust-list", "import", &gw.path("retyped.json")])
            .await,
        ExitCode::FAILURE
    );
    let text = log.text();
    assert!(
        text.contains("trust-list entry refused")
            && text.contains("cannot change its country or type"),
        "{text}"
    );
    assert_eq!(store.list_trust_entries().await.unwrap(), before);

    // trust-list readmit: refused for a malformed or unknown thumbprint.
    assert_eq!(
        gw.command(&["trust-list", "readmit", "not-a-thumbprint"])
            .await,
        ExitCode::FAILURE
    );
    assert_eq!(
        gw.command(&["trust-list", "readmit", &"ab".repeat(32)])
            .await,
        ExitCode::FAILURE
    );
    assert_eq!(server.probe(&gw, "DE").await, 403);

    // trust-list readmit DE: logged with the thumbprint and the operator, honoured by the
    // running server within one second.
    log.clear();
    assert_eq!(
        gw.command(&["trust-list", "readmit", &de_auth]).await,
        ExitCode::SUCCESS
    );
    let text = log.text();
    let line = text
        .lines()
        .find(|l| l.contains("re-admitted"))
        .unwrap_or_else(|| panic!("no re-admission logged: {text}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains(&de_auth), "{line}");
    assert!(line.contains(OPERATOR), "{line}");
    let start = Instant::now();
    while server.probe(&gw, "DE").await != 404 {
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "DE is still refused"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !store
            .trust_entry(&de.auth_thumbprint)
            .await
            .unwrap()
            .unwrap()
            .revoked
    );

    // Re-admitting again changes nothing; a restart keeps DE admitted.
    assert_eq!(
        gw.command(&["trust-list", "readmit", &de_auth]).await,
        ExitCode::SUCCESS
    );
    server.stop().await;
    let server = gw.serve().await;
    assert_eq!(server.probe(&gw, "DE").await, 404);
    server.stop().await;
    let _ = schema.drop_schema().await;
}

/// `trust-list readmit` needs a persistent store, as `import` and `revoke` do.
#[tokio::test]
async fn readmit_on_the_memory_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(["DE"], time::OffsetDateTime::now_utc()).unwrap();
    let anchor = dir.path().join("anchor.pem");
    std::fs::write(&anchor, &pki.anchor_pem).unwrap();
    let thumbprint = pki.country("DE").unwrap().auth_thumbprint.to_string();
    let code = efgs_server::run(
        ["efgs-server", "trust-list", "readmit", &thumbprint].map(OsString::from),
        [("EFGS_TRUST_ANCHORS", anchor.display().to_string())],
        std::future::pending(),
    )
    .await;
    assert_eq!(code, ExitCode::FAILURE);
}
