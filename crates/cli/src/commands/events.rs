//! `sendtime events import`: engagement events from what a CRM team already runs into the
//! events format `audience` reads — today Braze Currents' Avro files, from a local folder or
//! `s3://bucket/prefix`. Incremental: a re-run over the same source adds only new events.
//! `sendtime events send` (in `events_send.rs`) posts a file of events to the API.

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use sendtime_braze::currents::{Importer, DEFAULT_SORT_MEMORY_MB};
use sendtime_objects::{Object, Objects, S3Config, Source};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Instant;

/// The `sendtime events` subcommands.
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Import engagement events (Braze Currents' Avro files, local or s3://) into --out,
    /// in time order; a re-run adds only what is new.
    Import(ImportArgs),
    /// Attribution: sends joined, by the `message_extras` their templates recorded, with the
    /// opens, clicks and purchases that followed; per block, stage, source and position.
    Attribution(crate::commands::attribution::AttributionArgs),
    /// Backfill or replay a JSON Lines file of events through the API's POST /v1/events:
    /// paced, batched, retried, resumable (a killed run resends nothing answered).
    Send(crate::commands::events_send::SendArgs),
}

impl EventsCommand {
    /// Runs the chosen subcommand.
    pub async fn run(self) -> anyhow::Result<()> {
        match self {
            EventsCommand::Import(args) => args.run().await,
            EventsCommand::Attribution(args) => args.run(),
            EventsCommand::Send(args) => args.run().await,
        }
    }
}

/// Where imported events come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImportFormat {
    /// Braze Currents for data storage: Avro object container files under
    /// `…/event_type=…/date=…/`.
    Currents,
}

/// `sendtime events import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The format of SOURCE.
    #[arg(long, value_enum)]
    pub from: ImportFormat,
    /// A local folder (read recursively) or file, or s3://bucket/prefix (every object under it).
    #[arg(value_name = "SOURCE")]
    pub source: String,
    /// The events file (JSON Lines, time order). Its state files sit beside it
    /// (`OUT.currents-state.json`, `OUT.currents-ids`): a re-run adds only new events.
    #[arg(long)]
    pub out: PathBuf,
    /// S3 endpoint for an S3-compatible store or an emulator (path-style addressing).
    #[arg(long, env = "SENDTIME_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// AWS region of the bucket (default: the SDK's chain; us-east-1 with --s3-endpoint).
    #[arg(long)]
    pub region: Option<String>,
    /// Memory for sorting events into time order, in MiB; more events spill to temporary
    /// files and are merged.
    #[arg(long, default_value_t = DEFAULT_SORT_MEMORY_MB as u64, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub sort_memory_mb: u64,
}

impl ImportArgs {
    /// Lists the source, reads every new file of a mapped event type, writes `--out` and
    /// prints what was read, dropped and written. Fails (after writing) when a file could
    /// not be read to its end.
    pub async fn run(self) -> anyhow::Result<()> {
        let started = Instant::now();
        let source = self.source()?;
        let objects = Objects::new(
            source.clone(),
            &S3Config {
                endpoint: self.s3_endpoint.clone(),
                region: self.region.clone(),
            },
        )
        .await;
        let listed = objects
            .list()
            .await
            .with_context(|| format!("cannot list SOURCE {source}"))?;
        let mut importer = Importer::open(
            &self.out,
            &source.to_string(),
            (self.sort_memory_mb as usize) << 20,
        )?;
        let progress = progress_bar(listed.len() as u64);
        for object in &listed {
            progress.inc(1);
            let Some(planned) = importer.plan(&object.key, &identity(object)) else {
                continue;
            };
            let location = object.location(&source);
            let input = objects
                .open(object)
                .await
                .with_context(|| format!("cannot open {location}"))?;
            importer.read(&planned, &location, input)?;
        }
        progress.finish_and_clear();
        let report = importer.finish()?;
        println!("{report}");
        println!(
            "into {} in {:.1} s",
            self.out.display(),
            started.elapsed().as_secs_f64()
        );
        if report.unreadable.0 > 0 {
            bail!(
                "{} file(s) could not be read to their end (listed above); the rest was imported",
                report.unreadable.0
            );
        }
        Ok(())
    }

    /// SOURCE parsed; a local path made absolute, so that the state's keys do not depend on
    /// the directory the command runs from.
    fn source(&self) -> anyhow::Result<Source> {
        let source = Source::from_str(&self.source).context("SOURCE")?;
        Ok(match source {
            Source::Local(path) => Source::Local(
                std::fs::canonicalize(&path)
                    .with_context(|| format!("SOURCE {} cannot be read", path.display()))?,
            ),
            s3 => s3,
        })
    }
}

/// What identifies one version of an object: its S3 ETag, or a local file's size.
fn identity(object: &Object) -> String {
    object
        .etag
        .clone()
        .unwrap_or_else(|| format!("size:{}", object.size))
}

fn progress_bar(files: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(files),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} files {elapsed_precise}")
    {
        bar.set_style(style);
    }
    bar
}
