//! Entry point of the `sendtime` binary.

use clap::Parser;
use sendtime_cli::{telemetry, Cli};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let _log = telemetry::init(cli.log_format, cli.is_server());
    match cli.run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
