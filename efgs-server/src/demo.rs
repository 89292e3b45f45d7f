//! `efgs-server demo`: a throw-away federation on the memory store, served by this server's
//! API and connection handling, with simulated national backends from efgs-testkit.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use efgs_testkit::demo::{DemoOptions, run_demo};
use efgs_testkit::federation::{BoxError, ServeGateway, ServerAuth, ServerSetup};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::api::{AppState, ClientAuth, api};
use crate::net::{NetLimits, serve_connections, server_tls_config_from_der};

/// Arguments of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Countries of the demo federation (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "DE,FR,NL,IT,ES")]
    pub countries: Vec<String>,
    /// Upload rounds.
    #[arg(long, default_value_t = 10)]
    pub rounds: usize,
    /// Seconds between rounds.
    #[arg(long, default_value_t = 1)]
    pub round_interval_secs: u64,
    /// Address to serve the demo gateway on.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Keep the gateway running after the demo and print ready-to-paste curl commands.
    #[arg(long)]
    pub keep_running: bool,
}

/// efgs-server's API under its own connection handling, for a federation's gateway.
pub fn gateway_server() -> impl ServeGateway {
    |setup: ServerSetup| async move {
        let (auth, tls) = match setup.auth {
            ServerAuth::ProxyHeaders { trusted } => (ClientAuth::ProxyHeaders { trusted }, None),
            ServerAuth::MutualTls {
                cert_chain_der,
                key_der,
            } => {
                let chain = cert_chain_der
                    .into_iter()
                    .map(CertificateDer::from)
                    .collect();
                let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der));
                let tls = server_tls_config_from_der(chain, key, None)
                    .map_err(|e| Box::new(e) as BoxError)?;
                (ClientAuth::MutualTls, Some(tls))
            }
        };
        let state = AppState {
            gateway: setup.gateway,
            auth,
            body_limit: setup.body_limit,
            clock: setup.clock,
        };
        serve_connections(
            setup.listener,
            tls,
            api(state),
            &NetLimits::default(),
            setup.shutdown,
        )
        .await;
        Ok::<(), BoxError>(())
    }
}

/// Runs the demo; exit 0 only if every country received exactly the others' keys.
pub async fn demo(args: DemoArgs) -> ExitCode {
    let mut opts = DemoOptions::new(gateway_server());
    opts.countries = args.countries;
    opts.rounds = args.rounds;
    opts.round_interval = Duration::from_secs(args.round_interval_secs);
    opts.bind = args.listen;
    opts.keep_running = args.keep_running;
    match run_demo(opts).await {
        Ok(report) if report.ok() => ExitCode::SUCCESS,
        Ok(report) => {
            eprintln!("efgs demo: FAILED\n{report}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("efgs demo: {e}");
            ExitCode::FAILURE
        }
    }
}
