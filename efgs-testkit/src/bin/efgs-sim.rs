//! `efgs-sim`: simulated federations against the real gateway. The default subcommand,
//! `demo`, runs a throw-away federation on the memory store and exits 0 when every country
//! received exactly the other countries' keys.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use efgs_testkit::demo::{DemoOptions, run_demo};
use efgs_testkit::sim::country::ClientFaults;
use efgs_testkit::sim::readiness::{ReadinessOptions, check_readiness};
use efgs_testkit::sim::run::{
    HttpOptions, MAX_COUNTRIES, RunOptions, StoreFaults, Target, country_codes, run_http,
    run_in_process,
};
use efgs_testkit::sim::{pkidir, report::SimReport};
use time::{Date, OffsetDateTime};

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
    /// Run a whole federation with ledgers: in process (efgs-core on the memory store with a
    /// virtual clock; the default) or over HTTP (`--serve` starts gateways on loopback,
    /// `--gateway` uses running ones). Prints a report per country, writes report.txt,
    /// report.json and chart.svg to `--out`, and exits 1 when an acknowledged key was lost,
    /// delivered twice to one country or returned to its origin, or an audit check failed.
    Run(RunArgs),
    /// Write a throw-away PKI directory (trust anchor, signed trust-list entries, the
    /// countries' certificates and keys) for `run --gateway` and `readiness`: configure the
    /// gateway with `trust.anchors = DIR/trust-anchor.pem` and import `DIR/trust-list/`.
    Pki(PkiArgs),
    /// Peer readiness check of a connecting member state: as the peer, download the
    /// candidate's batches, re-verify each upload through the audit endpoint, check its
    /// signer is registered to the candidate and every key passes validation, and (given the
    /// candidate's delivery log) that its callback endpoint was notified of every batch; writes
    /// readiness-CANDIDATE.md and .json to `--out`; exits 1 when not ready.
    Readiness(ReadinessArgs),
    /// How wall time and peak memory grow with the number of countries: runs `efgs-sim run`
    /// (in process) once per size, each in its own process, and writes growth.md (a table)
    /// and growth.svg (a log-log chart) to `--out`, with each run's report in
    /// `--out/countries-N/`; exits 1 when a run's verdict failed.
    Growth(GrowthArgs),
}

/// Arguments of `growth`.
#[derive(Debug, Args)]
struct GrowthArgs {
    /// The sizes (comma-separated numbers of countries, 2 to 500).
    #[arg(long, value_delimiter = ',', default_value = "10,100,500")]
    countries: Vec<usize>,
    /// Keys each country uploads per virtual day.
    #[arg(long, default_value_t = 200)]
    keys_per_day: usize,
    /// Virtual days.
    #[arg(long, default_value_t = 1)]
    days: u32,
    /// Visited countries listed in every key.
    #[arg(long, default_value_t = 5)]
    visited: usize,
    /// Audit every n-th batch each country reads (0: never).
    #[arg(long, default_value_t = 10)]
    audit_every: u64,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Directory for growth.md, growth.svg and the runs' reports.
    #[arg(long, default_value = "efgs-sim-growth")]
    out: PathBuf,
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

/// The store of gateways `run --serve` starts.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Serve {
    /// The memory store.
    Memory,
    /// PostgreSQL at `--database-url` (a fresh schema, dropped afterwards).
    Postgres,
}

/// Arguments of `run`.
#[derive(Debug, Args)]
struct RunArgs {
    /// Countries in the federation (2 to 500): the EU 27 first, then AA, AB, ...
    #[arg(long, default_value_t = 27)]
    countries: usize,
    /// In process: keys each country uploads per virtual day.
    #[arg(long, default_value_t = 25_000)]
    keys_per_day: usize,
    /// In process: virtual days to run.
    #[arg(long, default_value_t = 14)]
    days: u32,
    /// Seed of every random choice (habits, key fields, faults).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Largest upload in keys (habits draw 140..=5000 within this cap).
    #[arg(long, default_value_t = 5000)]
    max_batch: usize,
    /// Visited countries listed in every key (the realistic profile is 27).
    #[arg(long, default_value_t = 27)]
    visited: usize,
    /// In process: virtual minutes per step (must divide 1440).
    #[arg(long, default_value_t = 60)]
    tick_minutes: u32,
    /// Audit every n-th batch each country reads and re-verify its uploads (0: never).
    #[arg(long, default_value_t = 1)]
    audit_every: u64,
    /// Over HTTP against gateways efgs-sim starts on loopback, on this store.
    #[arg(long, value_enum, conflicts_with = "gateway")]
    serve: Option<Serve>,
    /// With --serve: gateway instances on the one store (the countries spread over them).
    #[arg(long, default_value_t = 1)]
    instances: usize,
    /// With --serve postgres: the database (a fresh schema is created and dropped).
    #[arg(long, env = "EFGS_TEST_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Over HTTP against running gateways (comma-separated base URLs) whose trust list holds
    /// the entries of --pki.
    #[arg(long, value_delimiter = ',', requires = "pki")]
    gateway: Vec<String>,
    /// With --gateway: the PKI directory written by `efgs-sim pki`.
    #[arg(long)]
    pki: Option<PathBuf>,
    /// Over HTTP: seconds the countries upload.
    #[arg(long, default_value_t = 60)]
    duration_secs: u64,
    /// Over HTTP: keys per second each country aims at (0: as fast as it can).
    #[arg(long, default_value_t = 0.0)]
    keys_per_sec: f64,
    /// Over HTTP: milliseconds between a country's download polls.
    #[arg(long, default_value_t = 500)]
    poll_ms: u64,
    /// With --serve: download on callback instead of polling. Each country runs an HTTPS
    /// callback endpoint on 127.0.0.1 with its own certificate (registered as its CALLBACK
    /// certificate; the gateways get `callback.allow_cidrs = 127.0.0.1/32` and a callback
    /// client certificate), subscribes it before the first upload and reads exactly the
    /// batches announced; the delivery logs are written to --out as callbacks-XX.jsonl.
    #[arg(long, requires = "serve")]
    on_callback: bool,
    /// Over HTTP: most seconds to wait after the uploads for every country to catch up.
    #[arg(long, default_value_t = 60)]
    drain_secs: u64,
    /// Over HTTP: request timeout in seconds.
    #[arg(long, default_value_t = 30)]
    timeout_secs: u64,
    /// With --serve: restart the first gateway instance this many seconds into the run.
    #[arg(long)]
    restart_after_secs: Option<u64>,
    /// Fault: share of upload inserts, batch cuts and batch reads the store fails
    /// (in process, and --serve memory).
    #[arg(long, default_value_t = 0.0)]
    store_fail_rate: f64,
    /// Fault: share of upload inserts the store commits and then reports failed (a lost
    /// acknowledgement; the client retries with the same tag).
    #[arg(long, default_value_t = 0.0)]
    store_lost_ack_rate: f64,
    /// Fault: milliseconds the store waits before every upload insert and batch read.
    #[arg(long, default_value_t = 0)]
    store_delay_ms: u64,
    /// Fault: share of uploads whose first attempt the client drops mid-upload (over HTTP the
    /// connection is closed after 2 ms) and retries with the same tag.
    #[arg(long, default_value_t = 0.0)]
    drop_rate: f64,
    /// Fault: share of acknowledged uploads the client sends again under the same tag.
    #[arg(long, default_value_t = 0.0)]
    replay_rate: f64,
    /// Fault: share of uploads that also carry 3 keys already acknowledged (207, then resent).
    #[arg(long, default_value_t = 0.0)]
    duplicate_rate: f64,
    /// Fault (in process): jump the virtual clock 3 hours across the first midnight.
    #[arg(long)]
    clock_jump: bool,
    /// Every fault at once, at modest rates (store failures and lost acknowledgements 2%,
    /// drops 5%, replays 5%, duplicates 5%, the clock jump; over --serve postgres a restart
    /// halfway).
    #[arg(long)]
    faults: bool,
    /// Directory for report.txt, report.json and chart.svg.
    #[arg(long, default_value = "efgs-sim-report")]
    out: PathBuf,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// Arguments of `pki`.
#[derive(Debug, Args)]
struct PkiArgs {
    /// Number of countries (the EU 27 first, then AA, AB, ...).
    #[arg(long, default_value_t = 27, conflicts_with = "country")]
    countries: usize,
    /// Explicit country codes instead (comma-separated).
    #[arg(long, value_delimiter = ',')]
    country: Vec<String>,
    /// The directory to write.
    #[arg(long)]
    out: PathBuf,
}

/// Arguments of `readiness`.
#[derive(Debug, Args)]
struct ReadinessArgs {
    /// The acceptance gateway's base URL.
    #[arg(long)]
    gateway: String,
    /// The PKI directory holding the peer's credentials and the trust anchor
    /// (`efgs-sim pki` layout: sim-pki.json).
    #[arg(long)]
    pki: PathBuf,
    /// The peer country running the check (its credentials must be in --pki).
    #[arg(long)]
    peer: String,
    /// The connecting country to check.
    #[arg(long)]
    candidate: String,
    /// First date to check (yyyy-MM-dd; default yesterday, UTC).
    #[arg(long)]
    from: Option<String>,
    /// Last date to check (yyyy-MM-dd; default today, UTC).
    #[arg(long)]
    to: Option<String>,
    /// Request timeout in seconds.
    #[arg(long, default_value_t = 30)]
    timeout_secs: u64,
    /// The candidate's callback delivery log (JSON Lines, one `{"batchTag": ..., "date":
    /// ..., "receivedAt": ...}` per notification its endpoint received, as `run
    /// --on-callback` writes them). The callback check compares it with the batches the peer
    /// downloaded: every batch from the first to the last logged one must have been notified.
    /// Without it the check is skipped (a peer cannot see another country's callbacks).
    #[arg(long)]
    callback_log: Option<PathBuf>,
    /// Directory for readiness-CANDIDATE.md and .json.
    #[arg(long, default_value = ".")]
    out: PathBuf,
}

/// `efgs-sim --help`: the overview, then every subcommand's options.
fn full_help() -> String {
    use clap::CommandFactory as _;
    let mut cmd = Cli::command();
    let mut out = cmd.render_long_help().to_string();
    for sub in cmd.get_subcommands_mut() {
        if sub.get_name() == "help" {
            continue;
        }
        let name = sub.get_name().to_owned();
        out.push_str(&format!("\n\n===== efgs-sim {name} =====\n\n"));
        out.push_str(&sub.render_long_help().to_string());
    }
    out
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if matches!(args.as_slice(), [a] if a == "--help" || a == "-h") {
        println!("{}", full_help());
        return ExitCode::SUCCESS;
    }
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Demo(DemoArgs::default())) {
        Command::Demo(args) => demo(args).await,
        Command::Run(args) => run(args).await,
        Command::Pki(args) => pki(args),
        Command::Readiness(args) => readiness(args).await,
        Command::Growth(args) => growth(args),
    }
}

fn growth(a: GrowthArgs) -> ExitCode {
    use efgs_testkit::sim::growth;
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("efgs-sim growth: {e}");
            return ExitCode::from(2);
        }
    };
    let mut rows = Vec::new();
    for n in &a.countries {
        let dir = a.out.join(format!("countries-{n}"));
        eprintln!("efgs-sim growth: {n} countries ...");
        let status = std::process::Command::new(&exe)
            .args(["run", "--quiet", "--countries", &n.to_string()])
            .args(["--days", &a.days.to_string()])
            .args(["--keys-per-day", &a.keys_per_day.to_string()])
            .args(["--visited", &a.visited.to_string()])
            .args(["--audit-every", &a.audit_every.to_string()])
            .args(["--seed", &a.seed.to_string()])
            .arg("--out")
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .status();
        let pass = match status {
            Ok(s) if s.code() == Some(0) || s.code() == Some(1) => s.success(),
            Ok(s) => {
                eprintln!("efgs-sim growth: the run of {n} countries ended with {s}");
                return ExitCode::from(2);
            }
            Err(e) => {
                eprintln!("efgs-sim growth: {e}");
                return ExitCode::from(2);
            }
        };
        match growth::row_from_report(*n, &dir.join("report.json"), pass) {
            Ok(r) => rows.push(r),
            Err(e) => {
                eprintln!("efgs-sim growth: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let title = format!(
        "efgs-sim in process, {} day(s) x {} keys/country/day, {} visited",
        a.days, a.keys_per_day, a.visited
    );
    let table = growth::table(&rows);
    print!("{table}");
    let written = std::fs::create_dir_all(&a.out)
        .and_then(|()| std::fs::write(a.out.join("growth.md"), format!("{title}\n\n{table}")))
        .and_then(|()| std::fs::write(a.out.join("growth.svg"), growth::svg(&rows, &title)));
    if let Err(e) = written {
        eprintln!("efgs-sim growth: cannot write to {}: {e}", a.out.display());
        return ExitCode::from(2);
    }
    println!(
        "table: {}, chart: {}",
        a.out.join("growth.md").display(),
        a.out.join("growth.svg").display()
    );
    if rows.iter().all(|r| r.pass) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
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

async fn run(a: RunArgs) -> ExitCode {
    let rate = |r: f64, all: f64| if a.faults { r.max(all) } else { r };
    let mut opts = RunOptions {
        countries: a.countries,
        keys_per_day: a.keys_per_day,
        days: a.days,
        seed: a.seed,
        max_batch: a.max_batch,
        visited: a.visited,
        tick_minutes: a.tick_minutes,
        audit_every: a.audit_every,
        client_faults: ClientFaults {
            drop_rate: rate(a.drop_rate, 0.05),
            replay_rate: rate(a.replay_rate, 0.05),
            duplicate_rate: rate(a.duplicate_rate, 0.05),
        },
        store_faults: StoreFaults {
            fail_rate: rate(a.store_fail_rate, 0.02),
            lost_ack_rate: rate(a.store_lost_ack_rate, 0.02),
            delay: Duration::from_millis(a.store_delay_ms),
        },
        clock_jump: a.clock_jump || a.faults,
        progress: !a.quiet,
        ..RunOptions::default()
    };
    if opts.countries > MAX_COUNTRIES {
        eprintln!("efgs-sim run: at most {MAX_COUNTRIES} countries");
        return ExitCode::from(2);
    }
    let http = if let Some(serve) = a.serve {
        let postgres = match serve {
            Serve::Memory => None,
            Serve::Postgres => match &a.database_url {
                Some(u) => Some(u.clone()),
                None => {
                    eprintln!("efgs-sim run: --serve postgres needs --database-url");
                    return ExitCode::from(2);
                }
            },
        };
        if postgres.is_some() {
            // The store decorator wraps the memory store only.
            opts.store_faults = StoreFaults::default();
        }
        let restart = a
            .restart_after_secs
            .or((a.faults && postgres.is_some()).then_some(a.duration_secs / 2));
        Some(Target::Serve {
            postgres,
            instances: a.instances,
            restart_after: restart.map(Duration::from_secs),
        })
    } else if !a.gateway.is_empty() {
        match a.pki.clone() {
            Some(pki) => Some(Target::External {
                urls: a.gateway.clone(),
                pki,
            }),
            None => {
                eprintln!("efgs-sim run: --gateway needs --pki");
                return ExitCode::from(2);
            }
        }
    } else {
        None
    };
    let result = match http {
        None => run_in_process(&opts).await,
        Some(target) => {
            let h = HttpOptions {
                target,
                duration: Duration::from_secs(a.duration_secs),
                keys_per_sec: a.keys_per_sec,
                poll_interval: Duration::from_millis(a.poll_ms),
                drain: Duration::from_secs(a.drain_secs),
                timeout: Duration::from_secs(a.timeout_secs),
                on_callback: a.on_callback,
                callback_log_dir: a.on_callback.then(|| a.out.clone()),
            };
            run_http(&opts, &h).await
        }
    };
    match result {
        Ok(report) => finish_run(&report, &a.out),
        Err(e) => {
            eprintln!("efgs-sim run: {e} ({})", e.code());
            ExitCode::from(2)
        }
    }
}

fn finish_run(report: &SimReport, out: &std::path::Path) -> ExitCode {
    print!("{report}");
    match report.write(out) {
        Ok(()) => println!(
            "report: {}, {}, {}",
            out.join("report.txt").display(),
            out.join("report.json").display(),
            out.join("chart.svg").display()
        ),
        Err(e) => eprintln!(
            "efgs-sim run: cannot write the report to {}: {e}",
            out.display()
        ),
    }
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn pki(a: PkiArgs) -> ExitCode {
    let codes = if a.country.is_empty() {
        country_codes(a.countries.min(MAX_COUNTRIES))
    } else {
        a.country
    };
    let now = OffsetDateTime::now_utc();
    let made = efgs_testkit::pki::Pki::generate(&codes, now)
        .map_err(|e| e.to_string())
        .and_then(|p| pkidir::write(&p, &a.out).map_err(|e| e.to_string()));
    match made {
        Ok(()) => {
            println!(
                "wrote {} countries to {}: trust anchor {}, entries in {}",
                codes.len(),
                a.out.display(),
                a.out.join("trust-anchor.pem").display(),
                a.out.join("trust-list").display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("efgs-sim pki: {e}");
            ExitCode::from(2)
        }
    }
}

fn parse_date(s: &str) -> Result<Date, String> {
    Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|e| format!("{s}: {e}"))
}

async fn readiness(a: ReadinessArgs) -> ExitCode {
    let today = OffsetDateTime::now_utc().date();
    let dates = (|| -> Result<(Date, Date), String> {
        let from = match &a.from {
            Some(s) => parse_date(s)?,
            None => today.previous_day().unwrap_or(today),
        };
        let to = match &a.to {
            Some(s) => parse_date(s)?,
            None => today,
        };
        Ok((from, to))
    })();
    let (from, to) = match dates {
        Ok(d) => d,
        Err(e) => {
            eprintln!("efgs-sim readiness: {e}");
            return ExitCode::from(2);
        }
    };
    let pki = match pkidir::read(&a.pki) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("efgs-sim readiness: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(peer) = pki.country(&a.peer).cloned() else {
        eprintln!(
            "efgs-sim readiness: no credentials for {} in {}",
            a.peer,
            a.pki.display()
        );
        return ExitCode::from(2);
    };
    let opts = ReadinessOptions {
        gateway: a.gateway,
        peer,
        anchors_pem: pki.anchor_pem.clone(),
        candidate: a.candidate,
        from,
        to,
        timeout: Duration::from_secs(a.timeout_secs),
        callback_log: a.callback_log,
    };
    match check_readiness(&opts).await {
        Ok(report) => {
            print!("{}", report.markdown());
            if let Err(e) = report.write(&a.out) {
                eprintln!("efgs-sim readiness: cannot write the report: {e}");
                return ExitCode::from(2);
            }
            if report.ready {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("efgs-sim readiness: {e} ({})", e.code());
            ExitCode::from(2)
        }
    }
}
