//! The `sendtime` command line: `serve` (the local server, embedded demo data by default or
//! DynamoDB), `data generate` and `data load`, `copy`, `campaign send` and `campaign plan`,
//! `audience score|select|evaluate|push`, `events import|attribution`, `loadtest`, and
//! `baseline` (a fixed-body server, the benchmarks' limit). Each subcommand is a clap `Args`
//! struct that owns its `run()`.
//! `events send` posts a JSON Lines file of events to the API (paced, retried, resumable).

/// One clap type per subcommand, each owning its `run()`.
pub mod commands;
/// The deterministic synthetic dataset behind `data generate` and `serve`'s demo data.
pub mod datagen;
/// JSON Lines output files: created buffered, one value a line.
pub mod jsonl;
/// The HTTP/1.1 server of `serve` and `baseline`: header timeout, connection cap, drain.
pub mod server;
/// Logging set-up: text or JSON lines on stderr, filtered by `SENDTIME_LOG`.
pub mod telemetry;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "sendtime",
    version,
    about = "Connected-content personalization API: serve, load and plan send-time content blocks"
)]
/// The parsed `sendtime` command line: one subcommand plus the global `--log-format`.
pub struct Cli {
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
    /// Log format: `text` for people, `json` for machines (CloudWatch).
    #[arg(
        long,
        global = true,
        env = "SENDTIME_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: telemetry::LogFormat,
}

/// The top-level subcommands of `sendtime`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the blocks over HTTP (embedded demo data unless --table is given).
    Serve(commands::serve::ServeArgs),
    /// Generate or load datasets.
    #[command(subcommand)]
    Data(commands::data::DataCommand),
    /// The words around each block (copy), per stage, channel and language: slots, list, get, put.
    #[command(subcommand)]
    Copy(commands::copy::CopyCommand),
    /// Send-time campaign tools: send to an audience, plan a send.
    #[command(subcommand)]
    Campaign(commands::campaign::CampaignCommand),
    /// Who is worth a message: score users from engagement events, select, evaluate.
    #[command(subcommand)]
    Audience(commands::audience::AudienceCommand),
    /// Engagement events: import Braze Currents' files (local or s3://), attribute sends.
    #[command(subcommand)]
    Events(commands::events::EventsCommand),
    /// Load-test the API at a campaign's size (open model, SLO verdict); `merge` for shards.
    Loadtest(commands::loadtest::LoadtestArgs),
    /// Answer every GET with one file's bytes on serve's HTTP stack (the benchmarks' limit).
    Baseline(commands::baseline::BaselineArgs),
}

impl Cli {
    /// Whether the command is a long-running server (one log line per request: batched).
    pub fn is_server(&self) -> bool {
        matches!(self.command, Command::Serve(_) | Command::Baseline(_))
    }

    /// Runs the chosen subcommand to completion (the caller sets up logging first).
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Serve(args) => args.run().await,
            Command::Data(cmd) => cmd.run().await,
            Command::Copy(cmd) => cmd.run().await,
            Command::Campaign(cmd) => cmd.run().await,
            Command::Audience(cmd) => cmd.run(),
            Command::Events(cmd) => cmd.run().await,
            Command::Loadtest(args) => args.run().await,
            Command::Baseline(args) => args.run().await,
        }
    }
}
