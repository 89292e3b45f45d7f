//! The efgs-server binary: everything happens in [`efgs_server::run`].

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    efgs_server::run(
        std::env::args_os(),
        std::env::vars_os(),
        efgs_server::shutdown_signal(),
    )
    .await
}
