//! The efgs-server binary: command line, configuration, tracing, serve.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
use efgs_server::config::{Config, settings_help};
use warp::Filter as _;

#[derive(Parser)]
#[command(version, about = "European Federation Gateway Service server")]
struct Cli {
    /// TOML configuration file (optional; EFGS_* environment variables override it).
    #[arg(long, short, global = true, env = "EFGS_CONFIG", value_name = "FILE")]
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
    /// Apply database migrations.
    Migrate,
    /// Manage the trust list.
    #[command(subcommand)]
    TrustList(TrustList),
    /// Run a local demo federation.
    Demo,
}

#[derive(Subcommand)]
enum TrustList {
    /// Sign a certificate entry with the trust anchor key.
    Sign,
    /// Import signed entries.
    Import,
    /// Revoke a certificate.
    Revoke,
    /// List entries.
    List,
}

#[tokio::main]
async fn main() -> ExitCode {
    let help = settings_help();
    let cmd = Cli::command()
        .after_long_help(help.clone())
        .mut_subcommand("serve", |s| s.after_long_help(help));
    let cli = match Cli::from_arg_matches(&cmd.get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let check = match cli.command.unwrap_or(Command::Serve { check: false }) {
        Command::Serve { check } => check,
        Command::Migrate | Command::TrustList(_) | Command::Demo => {
            eprintln!("efgs-server: not implemented yet");
            return ExitCode::from(2);
        }
    };
    let cfg = match Config::load(cli.config.as_deref(), std::env::vars_os()) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("efgs-server: configuration refused: {e}");
            return ExitCode::from(78); // EX_CONFIG
        }
    };
    if check {
        print!("{}", cfg.effective_settings());
        return ExitCode::SUCCESS;
    }
    if let Err(e) = efgs_server::init_tracing(&cfg) {
        eprintln!("efgs-server: cannot initialise logging: {e}");
        return ExitCode::FAILURE;
    }
    let result = async {
        let listener = efgs_server::bind(&cfg).await?;
        let routes = warp::path("healthz").and(warp::path::end()).map(|| "ok");
        efgs_server::serve_with(&cfg, listener, routes, efgs_server::shutdown_signal()).await
    };
    match result.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(code = e.code(), "{e}");
            ExitCode::FAILURE
        }
    }
}
