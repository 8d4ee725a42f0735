//! `sendtime data generate` and `sendtime data load`.

use crate::datagen::{self, DatasetSpec};
use crate::jsonl;
use anyhow::{bail, Context};
use chrono::{DateTime, SubsecRound, Utc};
use clap::{Args, Subcommand};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use sendtime_dynamo::{record_key, DynamoConfig, DynamoStore};
use sendtime_store::{ParsedRecords, PutReport, Record, RecordsPut};
use sendtime_targeting::synth::SynthSpec;
use std::collections::HashMap;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// The `sendtime data` subcommands.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Write a deterministic synthetic dataset as JSON Lines.
    Generate(GenerateArgs),
    /// Load a JSON Lines dataset into a DynamoDB table (created if missing).
    Load(LoadArgs),
}

impl DataCommand {
    /// Runs the chosen data subcommand.
    pub async fn run(self) -> anyhow::Result<()> {
        match self {
            DataCommand::Generate(args) => args.run(),
            DataCommand::Load(args) => args.run().await,
        }
    }
}

/// The size and seed of a synthetic dataset: shared by `data generate` and `serve`'s demo data.
#[derive(Debug, Clone, Args)]
pub struct DatasetArgs {
    /// Number of users to generate.
    #[arg(long, default_value_t = 1_000)]
    pub users: usize,
    /// Number of catalog items to generate.
    #[arg(long, default_value_t = 400)]
    pub items: usize,
    /// Random seed: the same seed and sizes give the same dataset.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

impl DatasetArgs {
    /// The dataset these flags describe, with ages measured from `as_of`.
    pub fn spec(&self, as_of: DateTime<Utc>) -> DatasetSpec {
        DatasetSpec {
            users: self.users,
            items: self.items,
            seed: self.seed,
            as_of,
        }
    }
}

/// `sendtime data generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Size and seed of the generated dataset.
    #[command(flatten)]
    pub dataset: DatasetArgs,
    /// Instant the ages are measured from (RFC 3339); default: now. Pass the same value to
    /// `sendtime serve --now` to see the same stages.
    #[arg(long)]
    pub as_of: Option<DateTime<Utc>>,
    /// Output file; default: standard output.
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Also write the users' engagement events (sent, opened, clicked, visits, purchases;
    /// JSON Lines in time order, ending at --as-of) here, for `sendtime audience`.
    #[arg(long)]
    pub events: Option<PathBuf>,
    /// Also write each send's hidden open propensity (the evaluation's oracle) here.
    #[arg(long, requires = "events")]
    pub truth: Option<PathBuf>,
    /// Campaigns in the events' history (evenly spaced).
    #[arg(long, default_value_t = SynthSpec::DEFAULT_CAMPAIGNS as u16, value_parser = clap::value_parser!(u16).range(1..=200))]
    pub campaigns: u16,
    /// Days of events before --as-of.
    #[arg(long, default_value_t = SynthSpec::DEFAULT_DAYS, value_parser = clap::value_parser!(u32).range(7..=3650))]
    pub history_days: u32,
}

impl GenerateArgs {
    /// Writes the dataset as JSON Lines to `--out` or stdout, and a one-line summary to stderr.
    pub fn run(self) -> anyhow::Result<()> {
        let spec = self
            .dataset
            .spec(self.as_of.unwrap_or_else(|| Utc::now().trunc_subsecs(0)));
        let records = datagen::generate(&spec);
        let sink: Box<dyn Write> = match &self.out {
            Some(path) => Box::new(
                std::fs::File::create(path)
                    .with_context(|| format!("cannot create --out {}", path.display()))?,
            ),
            None => Box::new(std::io::stdout().lock()),
        };
        let mut out = BufWriter::new(sink);
        for record in &records {
            jsonl::write_line(&mut out, record)?;
        }
        out.flush()?;
        eprintln!(
            "generated {} records ({} users, {} items, seed {}, as of {})",
            records.len(),
            spec.users,
            spec.items,
            spec.seed,
            spec.as_of.to_rfc3339()
        );
        if let Some(events) = &self.events {
            self.write_events(&spec, events)?;
        }
        Ok(())
    }

    /// The engagement events of the same users (and, with --truth, their propensities).
    fn write_events(&self, spec: &DatasetSpec, path: &Path) -> anyhow::Result<()> {
        if u32::from(self.campaigns) >= self.history_days {
            bail!(
                "--campaigns {} do not fit in --history-days {}: at most one campaign a day",
                self.campaigns,
                self.history_days
            );
        }
        let mut events = jsonl::create(path)?;
        let mut truth = self.truth.as_deref().map(jsonl::create).transpose()?;
        let synth = SynthSpec {
            days: self.history_days,
            campaigns: usize::from(self.campaigns),
            ..SynthSpec::new(spec.users, spec.seed, spec.as_of)
        };
        let summary = sendtime_targeting::synth::generate::<anyhow::Error>(
            &synth,
            |e| jsonl::write_line(&mut events, e),
            |row| match truth.as_mut() {
                Some(out) => jsonl::write_line(out, row),
                None => Ok(()),
            },
        )?;
        events.flush()?;
        if let Some(out) = truth.as_mut() {
            out.flush()?;
        }
        eprintln!(
            "generated {} events ({} sends, {} opens, {} campaigns over {} days) into {}",
            summary.events,
            summary.sends,
            summary.opens,
            self.campaigns,
            self.history_days,
            path.display()
        );
        Ok(())
    }
}

/// Flags of `sendtime data load`: target table, input file, concurrency and checks.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Table to load into.
    #[arg(long, env = "SENDTIME_TABLE")]
    pub table: String,
    /// DynamoDB endpoint, e.g. http://127.0.0.1:8000 for DynamoDB Local.
    #[arg(long, env = "SENDTIME_DYNAMODB_ENDPOINT")]
    pub dynamodb_endpoint: Option<String>,
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,
    /// Dataset file (JSON Lines); `-` reads standard input.
    #[arg(long, short, default_value = "-")]
    pub file: String,
    /// Batches of 25 in flight at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Fail instead of creating the table when it is missing.
    #[arg(long)]
    pub no_create_table: bool,
    /// Skip reading back every key after the load.
    #[arg(long)]
    pub no_verify: bool,
}

/// The outcome of a load, for callers (and tests) that want numbers rather than text.
#[derive(Debug, Default)]
pub struct LoadSummary {
    /// Records parsed from the input, duplicates included.
    pub parsed: usize,
    /// Input lines that did not parse (nothing written for them).
    pub bad_lines: Vec<sendtime_store::RecordError>,
    /// Records superseded by a later line with the same key (the last line wins).
    pub duplicates: usize,
    /// The writes; superseded duplicates count as written, failures are listed with their cause.
    pub report: PutReport,
    /// Keys not found on read-back (failed writes excluded); empty when not verifying.
    pub missing: Vec<String>,
    /// Records already past their TTL when loaded (not read back).
    pub expired: usize,
}

impl LoadArgs {
    /// Loads `--file` into the table (created unless `--no-create-table`) and reads it back;
    /// errors if any line, write or read-back failed.
    pub async fn run(self) -> anyhow::Result<()> {
        let input: Box<dyn BufRead> = if self.file == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            Box::new(std::io::BufReader::new(
                std::fs::File::open(&self.file)
                    .with_context(|| format!("cannot open --file {}", self.file))?,
            ))
        };
        let parsed = ParsedRecords::read(input);
        let mut config = DynamoConfig::new(self.table.clone());
        config.endpoint = self.dynamodb_endpoint.clone();
        config.region = self.region.clone();
        // Bulk writes may wait on throttling; give each call more room than a request would.
        config.operation_timeout = std::time::Duration::from_secs(20);
        config.attempt_timeout = std::time::Duration::from_secs(5);
        config.connect_timeout = std::time::Duration::from_secs(3);
        // One SDK attempt per call: the store's own loop retries throttled, unprocessed and
        // failed batches with jittered backoff, and counts what it re-sent for the report.
        config.max_attempts = 1;
        let store = Arc::new(sendtime_dynamo::connect(&config).await);
        if self.no_create_table {
            if !store.warm_up().await.context("could not reach DynamoDB")? {
                bail!("table '{}' does not exist (drop --no-create-table to create it)", self.table);
            }
        } else if store
            .create_table_if_missing()
            .await
            .with_context(|| format!("could not create table '{}' (check --dynamodb-endpoint / --region and credentials)", self.table))?
        {
            eprintln!("created table '{}'", self.table);
        }
        let started = Instant::now();
        let summary = load(store, parsed, self.concurrency as usize, !self.no_verify).await?;
        let elapsed = started.elapsed().as_secs_f64();
        for bad in summary.bad_lines.iter().take(20) {
            eprintln!("unreadable {bad}");
        }
        for (what, why) in summary.report.failed.iter().take(20) {
            eprintln!("not written: {what}: {why}");
        }
        eprintln!(
            "loaded {} of {} records into '{}' in {:.1} s ({:.0} records/s){}",
            summary.report.written,
            summary.parsed,
            self.table,
            elapsed,
            summary.report.written as f64 / elapsed.max(0.001),
            if summary.duplicates > 0 {
                format!(
                    "; {} duplicate keys, the last line of each kept",
                    summary.duplicates
                )
            } else {
                String::new()
            }
        );
        if summary.report.retried > 0 || summary.report.throttled > 0 {
            eprintln!(
                "retried {} record write(s); DynamoDB throttled {} batch(es)",
                summary.report.retried, summary.report.throttled
            );
        }
        if summary.expired > 0 {
            eprintln!(
                "{} recommendation list(s) were already expired: written, but TTL may delete them, so they are not read back",
                summary.expired
            );
        }
        if !self.no_verify && summary.missing.is_empty() && summary.report.failed.is_empty() {
            eprintln!("verified: every written key reads back");
        }
        for what in summary.missing.iter().take(20) {
            eprintln!("missing after load: {what}");
        }
        let failures =
            summary.bad_lines.len() + summary.report.failed.len() + summary.missing.len();
        if failures > 0 {
            bail!(
                "{} unreadable line(s), {} record(s) not written, {} missing on read-back",
                summary.bad_lines.len(),
                summary.report.failed.len(),
                summary.missing.len()
            );
        }
        Ok(())
    }
}

/// Loads parsed records with bounded concurrency, then optionally reads every key back.
pub async fn load(
    store: Arc<DynamoStore>,
    parsed: ParsedRecords,
    concurrency: usize,
    verify: bool,
) -> anyhow::Result<LoadSummary> {
    let parsed_count = parsed.records.len();
    // The last line for a key wins, as it would if the file were written row by row.
    let mut last_index: HashMap<(String, String), usize> = HashMap::new();
    for (i, r) in parsed.records.iter().enumerate() {
        last_index.insert(record_key(r), i);
    }
    let records: Vec<Record> = parsed
        .records
        .into_iter()
        .enumerate()
        .filter(|(i, r)| last_index.get(&record_key(r)) == Some(i))
        .map(|(_, r)| r)
        .collect();
    let duplicates = parsed_count - records.len();
    let now = chrono::Utc::now();
    let expired = records
        .iter()
        .filter(|r| sendtime_dynamo::is_expired(r, now))
        .count();

    let bar = ProgressBar::new(records.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{bar:40}] {pos}/{len} records ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let mut report = PutReport {
        written: duplicates,
        ..PutReport::default()
    };
    let batches: Vec<Vec<Record>> = records.chunks(25).map(|c| c.to_vec()).collect();
    let mut results = futures::stream::iter(batches)
        .map(|batch| {
            let store = store.clone();
            async move {
                let outcome = store.put_records(&batch).await;
                (batch, outcome)
            }
        })
        .buffer_unordered(concurrency.max(1));
    while let Some((batch, outcome)) = results.next().await {
        bar.inc(batch.len() as u64);
        match outcome {
            Ok(r) => report.merge(r),
            Err(e) => report
                .failed
                .extend(batch.iter().map(|r| (r.describe(), e.to_string()))),
        }
    }
    bar.finish_and_clear();
    let missing = if verify {
        store
            .missing_records(&records)
            .await
            .context("could not read back the loaded keys")?
            .into_iter()
            .filter(|d| !report.failed.iter().any(|(f, _)| f == d))
            .collect()
    } else {
        Vec::new()
    };
    Ok(LoadSummary {
        parsed: parsed_count,
        bad_lines: parsed.errors,
        duplicates,
        report,
        missing,
        expired,
    })
}
