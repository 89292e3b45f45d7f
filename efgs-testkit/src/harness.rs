//! Small pieces the command-line and log tests share: private files, a free loopback port, a
//! log buffer, and a PostgreSQL login role with a password (the test cluster of
//! `scripts/pg-test-cluster.sh` guards the database [`PASSWORD_DB`] with SCRAM passwords).

use std::sync::{Arc, Mutex};

use efgs_core::BoxError;

use crate::federation::PostgresSchema;

/// The database the test cluster guards with SCRAM passwords.
pub const PASSWORD_DB: &str = "efgs_password";

/// Writes a file only its owner can read (the server refuses secret files others can read).
pub fn write_private(path: &std::path::Path, content: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, content)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Log output collected in memory: give clones of it to a `tracing_subscriber` writer.
#[derive(Clone, Debug, Default)]
pub struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl CapturedLog {
    /// Everything written so far, as text (lossy).
    pub fn text(&self) -> String {
        self.0
            .lock()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Forgets everything written so far.
    pub fn clear(&self) {
        if let Ok(mut b) = self.0.lock() {
            b.clear();
        }
    }
}

impl std::io::Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A login role with a password that may create schemas in [`PASSWORD_DB`], and a schema name
/// of its own. [`PasswordRole::drop_role`] removes both.
#[derive(Debug)]
pub struct PasswordRole {
    /// The role's name (`role_<schema>`).
    pub role: String,
    /// Its password.
    pub password: String,
    /// The schema reserved for it (created by whoever connects first).
    pub schema: String,
    /// `postgres://<role>@127.0.0.1:<port>/efgs_password`, without the password.
    pub url: String,
    admin_url: String,
}

impl PasswordRole {
    /// Creates the role (and [`PASSWORD_DB`] if missing) as the cluster's superuser at
    /// `admin_url` (a `postgres://…@127.0.0.1:<port>/…` URL).
    pub async fn create(admin_url: &str) -> Result<PasswordRole, BoxError> {
        let (admin, conn) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        let exists = admin
            .query_opt(
                "SELECT 1 FROM pg_database WHERE datname = $1",
                &[&PASSWORD_DB],
            )
            .await?
            .is_some();
        if !exists {
            // Two test binaries may race here; a duplicate is fine.
            let _ = admin
                .batch_execute(&format!("CREATE DATABASE {PASSWORD_DB}"))
                .await;
        }
        let schema = PostgresSchema::new(admin_url).await?.schema().to_owned();
        let role = format!("role_{schema}");
        let password = format!("Pw-{schema}-s3cr3t");
        admin
            .batch_execute(&format!("CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
            .await?;
        // Tests running at once grant on the same database row: PostgreSQL may answer "tuple
        // concurrently updated"; try again.
        let grant = format!("GRANT CREATE ON DATABASE {PASSWORD_DB} TO {role}");
        let mut attempt = 0;
        while let Err(e) = admin.batch_execute(&grant).await {
            attempt += 1;
            if attempt >= 20 {
                return Err(e.into());
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let port = admin_url
            .rsplit(':')
            .next()
            .and_then(|rest| rest.split('/').next())
            .ok_or("the admin URL names no port")?;
        Ok(PasswordRole {
            url: format!("postgres://{role}@127.0.0.1:{port}/{PASSWORD_DB}"),
            role,
            password,
            schema,
            admin_url: admin_url.to_owned(),
        })
    }

    /// Drops the role's schema and the role (best effort).
    pub async fn drop_role(&self) {
        let mut cfg: tokio_postgres::Config = match self.url.parse() {
            Ok(cfg) => cfg,
            Err(_) => return,
        };
        cfg.password(&self.password);
        if let Ok((client, conn)) = cfg.connect(tokio_postgres::NoTls).await {
            tokio::spawn(conn);
            let _ = client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema))
                .await;
        }
        if let Ok((admin, conn)) =
            tokio_postgres::connect(&self.admin_url, tokio_postgres::NoTls).await
        {
            tokio::spawn(conn);
            let _ = admin
                .batch_execute(&format!(
                    "REVOKE CREATE ON DATABASE {PASSWORD_DB} FROM {role}; DROP ROLE IF EXISTS {role}",
                    role = self.role
                ))
                .await;
        }
    }
}

/// A gateway's files for the command-line tests, in a new temporary directory: a PKI for
/// DE and FR, `anchor.pem`, one trust-list entry per certificate in `trust-list/`, and the
/// private secret files `enc-1.key` (AES key of encryption key id 1) and `dup-hash`.
pub fn gateway_files() -> Result<(tempfile::TempDir, crate::pki::Pki), BoxError> {
    let dir = tempfile::tempdir()?;
    let pki = crate::pki::Pki::generate(["DE", "FR"], time::OffsetDateTime::now_utc())?;
    let p = dir.path();
    std::fs::write(p.join("anchor.pem"), &pki.anchor_pem)?;
    std::fs::create_dir(p.join("trust-list"))?;
    for (i, entry) in pki.entries().enumerate() {
        std::fs::write(p.join(format!("trust-list/{i}.json")), entry.to_json())?;
    }
    write_private(&p.join("enc-1.key"), &[0x17; 32])?;
    write_private(
        &p.join("dup-hash"),
        b"a duplicate-hash secret of 32+ bytes\n",
    )?;
    Ok((dir, pki))
}

/// The `EFGS_*` environment of a gateway on PostgreSQL `schema` whose files
/// [`gateway_files`] wrote to `dir`, listening on `listen`, run by the OS user `operator`.
pub fn gateway_env(
    dir: &std::path::Path,
    schema: &PostgresSchema,
    listen: std::net::SocketAddr,
    operator: &str,
) -> Vec<(String, String)> {
    let path = |name: &str| dir.join(name).display().to_string();
    [
        ("EFGS_STORAGE", "postgres".to_owned()),
        ("EFGS_DATABASE_URL", schema.url().to_owned()),
        ("EFGS_DATABASE_SCHEMA", schema.schema().to_owned()),
        ("EFGS_DATABASE_POOL_SIZE", "4".to_owned()),
        ("EFGS_ENCRYPTION_ACTIVE_KEY", "1".to_owned()),
        (
            "EFGS_ENCRYPTION_KEY_FILES",
            format!("1={}", path("enc-1.key")),
        ),
        ("EFGS_DUPLICATE_HASH_SECRET_FILE", path("dup-hash")),
        ("EFGS_TRUST_ANCHORS", path("anchor.pem")),
        ("EFGS_TRUST_IMPORT_DIR", path("trust-list")),
        ("EFGS_LISTEN", listen.to_string()),
        ("USER", operator.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Runs `efgs-server <args>` to completion through `efgs_server::run`, with the environment
/// `env` makes for a free loopback listen address (the operator's way, no process spawned).
pub async fn run_command(
    args: &[&str],
    env: impl FnOnce(std::net::SocketAddr) -> Vec<(String, String)>,
) -> Result<std::process::ExitCode, BoxError> {
    let argv: Vec<std::ffi::OsString> = std::iter::once("efgs-server")
        .chain(args.iter().copied())
        .map(std::ffi::OsString::from)
        .collect();
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()?));
    Ok(efgs_server::run(argv, env(listen), std::future::pending()).await)
}

/// A running `efgs-server serve` started by [`serve`].
#[derive(Debug)]
pub struct Serving {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// Send (or drop) to shut the server down gracefully.
    pub stop: tokio::sync::oneshot::Sender<()>,
    /// The server's run, ending with its exit code.
    pub task: tokio::task::JoinHandle<std::process::ExitCode>,
}

/// Starts `efgs-server serve` through `efgs_server::run` on a free loopback port, with the
/// environment `env` makes for that address, and waits (up to 10 s) until it listens.
pub async fn serve(
    env: impl FnOnce(std::net::SocketAddr) -> Vec<(String, String)>,
) -> Result<Serving, BoxError> {
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(efgs_server::run(
        vec!["efgs-server".into(), "serve".into()],
        env(listen),
        async move {
            let _ = stopped.await;
        },
    ));
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(listen).await.is_ok() {
            return Ok(Serving {
                base: format!("http://{listen}"),
                stop,
                task,
            });
        }
        if task.is_finished() {
            return Err("efgs-server serve ended before it listened".into());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Err(format!("efgs-server serve did not listen on {listen} within 10 s").into())
}
