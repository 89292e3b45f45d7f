//! `efgs-server serve` exactly as the operator runs it: [`efgs_server::run`] (all of the
//! binary's `main`) with a TOML file plus `EFGS_*` variables, on PostgreSQL with a role that
//! must give a password, which reaches the server only through `database.password_file`.
//! National backends then upload and download over HTTP while the server's own batching job
//! cuts the batches. A wrong password makes the command fail, naming the setting.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use efgs_core::media::BodyFormat;
use efgs_testkit::federation::TestClock;
use efgs_testkit::harness::{CapturedLog, PasswordRole, free_port, gateway_files, write_private};
use efgs_testkit::national::NationalBackend;
use efgs_testkit::pki::Pki;
use tokio::sync::oneshot;

struct Files {
    dir: tempfile::TempDir,
    pki: Pki,
}

impl Files {
    /// The PKI, the TOML file and the secret files of one gateway.
    fn new(url: &str, schema: &str) -> Files {
        let (dir, pki) = gateway_files().unwrap();
        let p = dir.path();
        std::fs::write(
            p.join("efgs.toml"),
            format!(
                r#"storage = "postgres"

[database]
url = "{url}"
schema = "{schema}"
pool_size = 4
connect_timeout_secs = 5

[trust]
anchors = ["anchor.pem"]
import_dir = "trust-list"

[batching]
interval_secs = 0
check_secs = 1
"#
            ),
        )
        .unwrap();
        Files { dir, pki }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// The command line and environment of `efgs-server --config efgs.toml serve`.
    fn command(&self, listen: SocketAddr) -> (Vec<OsString>, Vec<(String, String)>) {
        let args = ["efgs-server", "--config", &self.path("efgs.toml"), "serve"]
            .map(OsString::from)
            .to_vec();
        let env = vec![
            ("EFGS_LISTEN".to_owned(), listen.to_string()),
            (
                "EFGS_DATABASE_PASSWORD_FILE".to_owned(),
                self.path("db-password"),
            ),
            ("EFGS_ENCRYPTION_ACTIVE_KEY".to_owned(), "1".to_owned()),
            (
                "EFGS_ENCRYPTION_KEY_FILES".to_owned(),
                format!("1={}", self.path("enc-1.key")),
            ),
            (
                "EFGS_DUPLICATE_HASH_SECRET_FILE".to_owned(),
                self.path("dup-hash"),
            ),
            ("PATH".to_owned(), "/usr/bin:/bin".to_owned()),
        ];
        (args, env)
    }
}

async fn wait_listening(addr: SocketAddr) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("efgs-server serve did not listen on {addr} within 10 s");
}

#[tokio::test]
async fn serve_from_toml_and_env_with_password_file_uploads_and_downloads() {
    let Some(support::Backend::Postgres(admin)) =
        support::Backend::postgres("serve_from_toml_and_env_with_password_file").await
    else {
        return;
    };
    let role = PasswordRole::create(admin.url()).await.unwrap();
    let (password, schema) = (&role.password, &role.schema);
    // No password in the URL: it comes from database.password_file only.
    let url = role.url.clone();
    let files = Files::new(&url, schema);

    // A wrong password: the command fails and names the setting.
    write_private(&files.dir.path().join("db-password"), b"not the password\n").unwrap();
    let (args, env) = files.command(SocketAddr::from(([127, 0, 0, 1], free_port().unwrap())));
    let log = CapturedLog::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let code = {
        let _guard = tracing::subscriber::set_default(subscriber);
        efgs_server::run(args, env, std::future::pending()).await
    };
    assert_ne!(code, ExitCode::SUCCESS);
    let text = log.text();
    assert!(
        text.contains("database.password_file"),
        "the error does not name the setting: {text}"
    );
    assert!(
        !text.contains("not the password"),
        "the log shows the password: {text}"
    );

    // The right password, from the file only.
    write_private(
        &files.dir.path().join("db-password"),
        format!("{password}\n").as_bytes(),
    )
    .unwrap();
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
    let (args, env) = files.command(listen);
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(efgs_server::run(args, env, async move {
        let _ = stopped.await;
    }));
    wait_listening(listen).await;

    let base = format!("http://{listen}");
    let clock = TestClock::system();
    let backend = |c: &str| {
        NationalBackend::new(&base, files.pki.country(c).unwrap(), clock.as_fn())
            .unwrap()
            .with_visited_pool(["DE", "FR"])
    };
    let (de, fr) = (backend("DE"), backend("FR"));
    let keys = de.keys(25);
    let up = de
        .upload(&keys, "serve-1", BodyFormat::Protobuf)
        .await
        .unwrap();
    assert_eq!(up.status, 201, "{}", up.text());

    // The server's own batching job (every second, interval 0) cuts the batch.
    let today = clock.today();
    let mut received = Vec::new();
    for _ in 0..100 {
        let chain = fr.download_all(today).await.unwrap();
        received = chain
            .iter()
            .flat_map(|d| efgs_core::proto::decode_batch(&d.body).unwrap().keys)
            .collect();
        if !received.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(support::sorted(received), support::sorted(keys));

    stop.send(()).unwrap();
    let code = tokio::time::timeout(Duration::from_secs(40), server)
        .await
        .expect("serve stops at shutdown")
        .unwrap();
    assert_eq!(code, ExitCode::SUCCESS);
}
