//! The command line: `serve [--check]`, `migrate`,
//! `trust-list sign|import|revoke|readmit|list`, `audit-log verify|export`.
//! [`run`] is all of `main`, so tests run the binary's exact path in-process.

use std::ffi::OsString;
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
use efgs_core::cert::Thumbprint;
use efgs_core::model::CertificateType;
use efgs_core::store::Readmission;
use efgs_core::trail::{Level, names};
use efgs_core::trust::{TrustAnchorSigner, thumbprint_starts_with_zero_byte};
use time::OffsetDateTime;

use crate::config::settings_help;
use crate::server::{ImportReport, ServeError, Server, import_trust_entries, open_store};
use crate::settings::Settings;

/// Exit code of a refused configuration (`EX_CONFIG`).
const EX_CONFIG: u8 = 78;

#[derive(Parser)]
#[command(
    name = "efgs-server",
    version = concat!(env!("CARGO_PKG_VERSION"), " (git ", env!("BUILD_GIT_REVISION"), ")"),
    about = "European Federation Gateway Service server"
)]
struct Cli {
    /// TOML configuration file (optional; EFGS_* environment variables override it).
    #[arg(long, short, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the gateway (the default).
    Serve {
        /// Validate the configuration, print it with secrets redacted, and exit.
        #[arg(long)]
        check: bool,
    },
    /// Apply the database migrations (PostgreSQL) and exit.
    Migrate,
    /// Manage the trust list.
    #[command(subcommand)]
    TrustList(TrustListCommand),
    /// Check or export the audit trail.
    #[command(subcommand)]
    AuditLog(crate::ops::cli::AuditLogCommand),
}

/// `efgs-server trust-list ...`
#[derive(Debug, Subcommand)]
enum TrustListCommand {
    /// Sign a certificate as a trust-list entry with the trust anchor's private key (offline;
    /// needs no configuration). Writes the entry as JSON.
    Sign(SignArgs),
    /// Import signed entries (a JSON file or a directory of them) into the configured store.
    /// Idempotent; entries whose signature, thumbprint or country do not check, or whose
    /// thumbprint is stored with another country or type, are refused. A revoked certificate
    /// stays revoked (see `readmit`).
    Import {
        /// File or directory.
        path: PathBuf,
    },
    /// Revoke a certificate by thumbprint (64 hex characters); effective on the next request
    /// of every instance. No import or restart undoes it; only `readmit` does.
    Revoke {
        /// The certificate's SHA-256 thumbprint.
        thumbprint: String,
    },
    /// Re-admit a revoked certificate by thumbprint (64 hex characters): the only way to clear
    /// a revocation. Logged as a warning with the thumbprint and the OS user.
    Readmit {
        /// The certificate's SHA-256 thumbprint.
        thumbprint: String,
    },
    /// List the entries of the configured store.
    List,
}

/// Arguments of `trust-list sign`.
#[derive(Debug, Args)]
struct SignArgs {
    /// The trust anchor certificate (PEM).
    #[arg(long, value_name = "PEM")]
    anchor_cert: PathBuf,
    /// The trust anchor private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "PEM")]
    anchor_key: PathBuf,
    /// The certificate to put on the trust list (PEM).
    #[arg(long, value_name = "PEM")]
    cert: PathBuf,
    /// The country the certificate belongs to (must equal its subject's C).
    #[arg(long)]
    country: String,
    /// AUTHENTICATION, SIGNING or CALLBACK.
    #[arg(long = "type", value_name = "TYPE")]
    cert_type: String,
    /// Output file (default: standard output).
    #[arg(long, short)]
    out: Option<PathBuf>,
}

/// Why an operator command failed.
#[derive(Debug, thiserror::Error)]
enum CommandError {
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--type must be AUTHENTICATION, SIGNING or CALLBACK")]
    CertType,
    #[error("trust anchor: {0}")]
    Anchor(#[source] efgs_core::trust::TrustError),
    #[error("{}: {source}", .path.display())]
    Entry {
        path: PathBuf,
        source: efgs_core::trust::TrustError,
    },
    #[error("thumbprint must be 64 hex characters")]
    Thumbprint,
    #[error(
        "storage = memory keeps nothing after this command exits; trust-list changes need \
         storage = postgres (at start, the memory store imports trust.import_dir instead)"
    )]
    MemoryStore,
    #[error("{refused} trust-list entries refused")]
    Refused { refused: usize },
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error("{0}")]
    AuditLog(String),
}

/// Runs the command line `args` (program name first) with the `EFGS_*` settings of `env`;
/// `serve` runs until `shutdown` completes. Exit codes: 0 success, 78 refused configuration,
/// 1 any other failure.
pub async fn run<A, E, K, V>(args: A, env: E, shutdown: impl Future<Output = ()>) -> ExitCode
where
    A: IntoIterator<Item = OsString>,
    E: IntoIterator<Item = (K, V)>,
    K: AsRef<std::ffi::OsStr>,
    V: AsRef<std::ffi::OsStr>,
{
    let env: Vec<(OsString, OsString)> = env
        .into_iter()
        .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
        .collect();
    let help = settings_help();
    let cmd = Cli::command()
        .after_long_help(help.clone())
        .mut_subcommand("serve", |s| s.after_long_help(help));
    let cli = match cmd
        .try_get_matches_from(args)
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let command = cli.command.unwrap_or(Command::Serve { check: false });
    if let Command::TrustList(TrustListCommand::Sign(args)) = &command {
        return report(sign_entry(args));
    }
    let config_file = cli.config.or_else(|| {
        env.iter()
            .find(|(k, _)| k == crate::config::CONFIG_FILE_ENV)
            .map(|(_, v)| PathBuf::from(v))
            .filter(|p| !p.as_os_str().is_empty())
    });
    let operator = os_user(&env);
    let settings = match Settings::load(config_file.as_deref(), env) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("efgs-server: configuration refused: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    if let Err(e) = crate::init_tracing(&settings) {
        // Already installed (an embedding process or a test): keep that one.
        eprintln!("efgs-server: logging not initialised again: {e}");
    }
    let serving = matches!(command, Command::Serve { check: false });
    let result: Result<(), CommandError> = match command {
        Command::Serve { check: true } => {
            print!("{}", settings.effective_settings());
            Ok(())
        }
        Command::Serve { check: false } => serve(settings, shutdown).await.map_err(Into::into),
        Command::Migrate => open_store(&settings)
            .await
            .map(|_| println!("migrations applied"))
            .map_err(Into::into),
        Command::TrustList(tl) => trust_list(settings, tl, operator.as_deref()).await,
        Command::AuditLog(cmd) => crate::ops::cli::audit_log(&settings, cmd)
            .await
            .map_err(|e| CommandError::AuditLog(e.to_string())),
    };
    let code = match &result {
        Ok(()) => return ExitCode::SUCCESS,
        Err(CommandError::Serve(ServeError::Config(_))) => ExitCode::from(EX_CONFIG),
        Err(_) => ExitCode::FAILURE,
    };
    if let Err(e) = result {
        if serving {
            let code = match &e {
                CommandError::Serve(s) => s.code(),
                _ => "command",
            };
            tracing::error!(code, "{}", chain(&e));
        } else {
            eprintln!("efgs-server: {}", chain(&e));
        }
    }
    code
}

/// The error and its sources, `: `-separated (a source whose text the message already
/// contains is not repeated).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

fn report(result: Result<(), CommandError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("efgs-server: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
    let server = Server::builder(settings).build().await?;
    let listener = server.bind().await?;
    server.serve(listener, shutdown).await
}

fn read(path: &PathBuf) -> Result<String, CommandError> {
    std::fs::read_to_string(path).map_err(|source| CommandError::Io {
        path: path.clone(),
        source,
    })
}

/// `trust-list sign`.
fn sign_entry(args: &SignArgs) -> Result<(), CommandError> {
    let cert_type = CertificateType::parse(&args.cert_type).ok_or(CommandError::CertType)?;
    let signer = TrustAnchorSigner::from_pem(&read(&args.anchor_cert)?, &read(&args.anchor_key)?)
        .map_err(CommandError::Anchor)?;
    let entry = signer
        .sign_entry(&read(&args.cert)?, &args.country, cert_type)
        .map_err(|source| CommandError::Entry {
            path: args.cert.clone(),
            source,
        })?;
    if thumbprint_starts_with_zero_byte(&entry.thumbprint) {
        eprintln!(
            "warning: thumbprint {} starts with 00: clients that recompute thumbprints the \
             reference way produce 62 characters for it",
            entry.thumbprint
        );
    }
    let json = entry.to_json();
    match &args.out {
        Some(p) => std::fs::write(p, format!("{json}\n")).map_err(|source| CommandError::Io {
            path: p.clone(),
            source,
        }),
        None => {
            println!("{json}");
            Ok(())
        }
    }
}

/// The operator running a command, for the log: `USER`, else `LOGNAME`, of `env`.
fn os_user(env: &[(OsString, OsString)]) -> Option<String> {
    ["USER", "LOGNAME"].iter().find_map(|name| {
        env.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.to_string_lossy().into_owned())
            .filter(|v| !v.is_empty())
    })
}

/// `trust-list import|revoke|readmit|list`; `operator` is the OS user, for the log.
async fn trust_list(
    settings: Settings,
    cmd: TrustListCommand,
    operator: Option<&str>,
) -> Result<(), CommandError> {
    let changes = matches!(
        cmd,
        TrustListCommand::Import { .. }
            | TrustListCommand::Revoke { .. }
            | TrustListCommand::Readmit { .. }
    );
    if changes && settings.is_memory_store() {
        return Err(CommandError::MemoryStore);
    }
    let store = open_store(&settings).await?;
    match cmd {
        TrustListCommand::Sign(args) => sign_entry(&args),
        TrustListCommand::Import { path } => {
            let report = import_trust_entries(
                store.as_ref(),
                &settings.anchors,
                &path,
                OffsetDateTime::now_utc(),
            )
            .await?;
            report.log();
            crate::ops::cli::record(&settings, store.as_ref(), |t| {
                crate::ops::start::import_event(t, &path, &report, operator.unwrap_or("-"))
            })
            .await?;
            println!(
                "imported: {} inserted, {} replaced, {} unchanged, {} kept revoked, {} refused",
                report.inserted,
                report.replaced,
                report.unchanged,
                report.kept_revoked.len(),
                report.refused.len()
            );
            for what in &report.kept_revoked {
                println!("kept revoked {what}: {}", ImportReport::READMIT_HINT);
            }
            for (what, why) in &report.refused {
                println!("refused {what}: {why}");
            }
            match report.refused.len() {
                0 => Ok(()),
                refused => Err(CommandError::Refused { refused }),
            }
        }
        TrustListCommand::Revoke { thumbprint } => {
            let t = Thumbprint::parse_hex(&thumbprint).ok_or(CommandError::Thumbprint)?;
            store
                .revoke_trust_entry(&t)
                .await
                .map_err(ServeError::Store)?;
            tracing::warn!(thumbprint = %t, os_user = operator, "trust-list entry revoked");
            crate::ops::cli::record(&settings, store.as_ref(), |tr| {
                tr.event(Level::Warn, names::TRUST_REVOKE)
                    .field("thumbprint", t.clone())
                    .field("os_user", operator.unwrap_or("-"))
            })
            .await?;
            println!("revoked {t}");
            Ok(())
        }
        TrustListCommand::Readmit { thumbprint } => {
            let t = Thumbprint::parse_hex(&thumbprint).ok_or(CommandError::Thumbprint)?;
            match store
                .readmit_trust_entry(&t)
                .await
                .map_err(ServeError::Store)?
            {
                Readmission::Readmitted => {
                    tracing::warn!(
                        thumbprint = %t,
                        os_user = operator,
                        "revoked trust-list entry re-admitted"
                    );
                    crate::ops::cli::record(&settings, store.as_ref(), |tr| {
                        tr.event(Level::Warn, names::TRUST_READMIT)
                            .field("thumbprint", t.clone())
                            .field("os_user", operator.unwrap_or("-"))
                    })
                    .await?;
                    println!("re-admitted {t}");
                }
                Readmission::NotRevoked => println!("{t} is not revoked; nothing changed"),
            }
            Ok(())
        }
        TrustListCommand::List => {
            for e in store
                .list_trust_entries()
                .await
                .map_err(ServeError::Store)?
            {
                let ok = e.to_entry().verify(&settings.anchors).is_ok();
                println!(
                    "{} {} {:<14} {}{}",
                    e.thumbprint,
                    e.country,
                    e.cert_type,
                    if e.revoked { "revoked" } else { "active" },
                    if ok { "" } else { " INTEGRITY-CHECK-FAILED" }
                );
            }
            Ok(())
        }
    }
}
