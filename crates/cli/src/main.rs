//! Entry point of the `sendtime` binary.

use clap::Parser;
use sendtime_cli::{telemetry, Cli};
use std::process::ExitCode;

/// mimalloc, not the system allocator: a request allocates a few dozen short-lived buffers
/// on the server (and a campaign send per call on the client), and glibc's malloc/free was
/// a tenth of a request's CPU (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
