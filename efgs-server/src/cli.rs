//! The operator commands behind `efgs-server` (serve, migrate, trust-list ...).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use efgs_core::cert::Thumbprint;
use efgs_core::model::CertificateType;
use efgs_core::trust::{TrustAnchorSigner, thumbprint_starts_with_zero_byte};
use time::OffsetDateTime;

use crate::app;
use crate::config::Config;

/// `efgs-server trust-list ...`
#[derive(Debug, Subcommand)]
pub enum TrustListCommand {
    /// Sign a certificate as a trust-list entry with the trust anchor's private key (offline;
    /// needs no configuration). Writes the entry as JSON.
    Sign(SignArgs),
    /// Import signed entries (a JSON file or a directory of them) into the configured store.
    /// Idempotent; entries whose signature, thumbprint or country do not check are refused.
    Import {
        /// File or directory.
        path: PathBuf,
    },
    /// Revoke a certificate by thumbprint (64 hex characters); effective on the next request.
    Revoke {
        /// The certificate's SHA-256 thumbprint.
        thumbprint: String,
    },
    /// List the entries of the configured store.
    List,
}

/// Arguments of `trust-list sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The trust anchor certificate (PEM).
    #[arg(long, value_name = "PEM")]
    pub anchor_cert: PathBuf,
    /// The trust anchor private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "PEM")]
    pub anchor_key: PathBuf,
    /// The certificate to put on the trust list (PEM).
    #[arg(long, value_name = "PEM")]
    pub cert: PathBuf,
    /// The country the certificate belongs to (must equal its subject's C).
    #[arg(long)]
    pub country: String,
    /// AUTHENTICATION, SIGNING or CALLBACK.
    #[arg(long = "type", value_name = "TYPE")]
    pub cert_type: String,
    /// Output file (default: standard output).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
}

fn read(path: &PathBuf) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// `trust-list sign`.
pub fn sign_entry(args: &SignArgs) -> ExitCode {
    let run = || -> Result<String, String> {
        let cert_type = CertificateType::parse(&args.cert_type)
            .ok_or("--type must be AUTHENTICATION, SIGNING or CALLBACK")?;
        let signer =
            TrustAnchorSigner::from_pem(&read(&args.anchor_cert)?, &read(&args.anchor_key)?)
                .map_err(|e| format!("trust anchor: {e}"))?;
        let entry = signer
            .sign_entry(&read(&args.cert)?, &args.country, cert_type)
            .map_err(|e| format!("{}: {e}", args.cert.display()))?;
        if thumbprint_starts_with_zero_byte(&entry.thumbprint) {
            eprintln!(
                "warning: thumbprint {} starts with 00: clients that recompute thumbprints the \
                 reference way produce 62 characters for it",
                entry.thumbprint
            );
        }
        Ok(entry.to_json())
    };
    match run() {
        Ok(json) => {
            let written = match &args.out {
                Some(p) => std::fs::write(p, format!("{json}\n")).map_err(|e| e.to_string()),
                None => {
                    println!("{json}");
                    Ok(())
                }
            };
            match written {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("efgs-server: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("efgs-server: trust-list sign refused: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `serve`.
pub async fn serve(cfg: &Config) -> ExitCode {
    let result = async {
        let listener = crate::bind(cfg).await?;
        app::serve(cfg, listener, crate::shutdown_signal()).await
    };
    match result.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(code = e.code(), "{e}");
            eprintln!("efgs-server: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `migrate`.
pub async fn migrate(cfg: &Config) -> ExitCode {
    match app::open_store(cfg).await {
        Ok(_) => {
            println!("migrations applied ({})", cfg.storage.as_str());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("efgs-server: migrate failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `trust-list import|revoke|list`.
pub async fn trust_list(cfg: &Config, cmd: TrustListCommand) -> ExitCode {
    let run = async {
        let anchors = app::trust_anchors(cfg)?;
        let store = app::open_store(cfg).await?;
        match cmd {
            TrustListCommand::Sign(_) => Ok(true),
            TrustListCommand::Import { path } => {
                let report = app::import_trust_entries(
                    store.as_ref(),
                    &anchors,
                    &path,
                    OffsetDateTime::now_utc(),
                )
                .await?;
                println!(
                    "imported: {} inserted, {} already present, {} refused",
                    report.inserted,
                    report.replaced,
                    report.refused.len()
                );
                for (what, why) in &report.refused {
                    println!("refused {what}: {why}");
                }
                Ok(report.refused.is_empty())
            }
            TrustListCommand::Revoke { thumbprint } => {
                let Some(t) = Thumbprint::parse_hex(&thumbprint) else {
                    eprintln!("efgs-server: thumbprint must be 64 hex characters");
                    return Ok(false);
                };
                store
                    .revoke_trust_entry(&t)
                    .await
                    .map_err(crate::ServeError::Store)?;
                println!("revoked {t}");
                Ok(true)
            }
            TrustListCommand::List => {
                for e in store
                    .list_trust_entries()
                    .await
                    .map_err(crate::ServeError::Store)?
                {
                    let ok = e.to_entry().verify(&anchors).is_ok();
                    println!(
                        "{} {} {:<14} {}{}",
                        e.thumbprint,
                        e.country,
                        e.cert_type,
                        if e.revoked { "revoked" } else { "active" },
                        if ok { "" } else { " INTEGRITY-CHECK-FAILED" }
                    );
                }
                Ok(true)
            }
        }
    };
    let result: Result<bool, crate::ServeError> = run.await;
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("efgs-server: {e}");
            ExitCode::FAILURE
        }
    }
}
