//! The efgs-server binary: command line, configuration, tracing, then one library call.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
use efgs_server::cli;
use efgs_server::config::{Config, settings_help};

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
    /// Apply the database migrations (PostgreSQL) and exit.
    Migrate,
    /// Manage the trust list.
    #[command(subcommand)]
    TrustList(cli::TrustListCommand),
    /// Run a demo federation: a throw-away trust anchor and certificates for several
    /// countries, the gateway on the memory store, simulated national backends uploading
    /// signed batches and downloading each other's keys over real HTTP; exits 0 when every
    /// country received exactly the other countries' keys.
    Demo(efgs_server::demo::DemoArgs),
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
    let command = cli.command.unwrap_or(Command::Serve { check: false });
    if let Command::Demo(args) = command {
        return efgs_server::demo::demo(args).await;
    }
    if let Command::TrustList(cli::TrustListCommand::Sign(args)) = &command {
        return cli::sign_entry(args);
    }
    let cfg = match Config::load(cli.config.as_deref(), std::env::vars_os()) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("efgs-server: configuration refused: {e}");
            return ExitCode::from(78); // EX_CONFIG
        }
    };
    if let Err(e) = efgs_server::init_tracing(&cfg) {
        eprintln!("efgs-server: cannot initialise logging: {e}");
        return ExitCode::FAILURE;
    }
    match command {
        Command::Serve { check: true } => {
            print!("{}", cfg.effective_settings());
            ExitCode::SUCCESS
        }
        Command::Serve { check: false } => cli::serve(&cfg).await,
        Command::Migrate => cli::migrate(&cfg).await,
        Command::TrustList(tl) => cli::trust_list(&cfg, tl).await,
        Command::Demo(_) => ExitCode::FAILURE,
    }
}
