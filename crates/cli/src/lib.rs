//! The `sendtime` command line: `serve` (the local server, embedded demo data by default or
//! DynamoDB), `data generate` and `data load`, `campaign send` and `campaign plan`. Each subcommand is a clap `Args` struct that
//! owns its `run()`.

pub mod commands;
pub mod datagen;
pub mod telemetry;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "sendtime",
    version,
    about = "Connected-content personalization API: serve, load and plan send-time content blocks"
)]
pub struct Cli {
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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the blocks over HTTP (embedded demo data unless --table is given).
    Serve(commands::serve::ServeArgs),
    /// Generate or load datasets.
    #[command(subcommand)]
    Data(commands::data::DataCommand),
    /// Send-time campaign tools: send to an audience, plan a send.
    #[command(subcommand)]
    Campaign(commands::campaign::CampaignCommand),
}

impl Cli {
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Serve(args) => args.run().await,
            Command::Data(cmd) => cmd.run().await,
            Command::Campaign(cmd) => cmd.run().await,
        }
    }
}
