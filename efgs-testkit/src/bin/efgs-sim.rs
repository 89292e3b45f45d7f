//! `efgs-sim`: simulated federations against the real gateway. The default subcommand,
//! `demo`, runs a throw-away federation on the memory store and exits 0 when every country
//! received exactly the other countries' keys.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use efgs_testkit::demo::{DemoOptions, run_demo};

#[derive(Parser)]
#[command(name = "efgs-sim", version, about = "Simulated EFGS federations")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a demo federation (the default): a throw-away trust anchor and certificates for
    /// several countries, the gateway (efgs-server's composition root, memory store) on
    /// loopback, simulated national backends uploading signed batches and downloading each
    /// other's keys over real HTTP; exits 0 when every country received exactly the other
    /// countries' keys and every audit re-verified.
    Demo(DemoArgs),
}

/// Arguments of `demo`.
#[derive(Debug, Args)]
struct DemoArgs {
    /// Countries of the demo federation (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "DE,FR,NL,IT,ES")]
    countries: Vec<String>,
    /// Upload rounds.
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// Seconds between rounds.
    #[arg(long, default_value_t = 1)]
    round_interval_secs: u64,
    /// Address to serve the demo gateway on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Keep the gateway running after the demo and print ready-to-paste curl commands.
    #[arg(long)]
    keep_running: bool,
}

impl Default for DemoArgs {
    fn default() -> Self {
        DemoArgs {
            countries: ["DE", "FR", "NL", "IT", "ES"].map(str::to_owned).to_vec(),
            rounds: 10,
            round_interval_secs: 1,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            keep_running: false,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Demo(DemoArgs::default())) {
        Command::Demo(args) => demo(args).await,
    }
}

async fn demo(args: DemoArgs) -> ExitCode {
    let mut opts = DemoOptions::new();
    opts.countries = args.countries;
    opts.rounds = args.rounds;
    opts.round_interval = Duration::from_secs(args.round_interval_secs);
    opts.bind = args.listen;
    opts.keep_running = args.keep_running;
    match run_demo(opts).await {
        Ok(report) if report.ok() => ExitCode::SUCCESS,
        Ok(report) => {
            eprintln!("efgs-sim demo: FAILED\n{report}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("efgs-sim demo: {e}");
            ExitCode::FAILURE
        }
    }
}
