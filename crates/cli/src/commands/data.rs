//! `sendtime data generate` and `sendtime data load`.

use crate::datagen::{self, DatasetSpec};
use crate::jsonl;
use anyhow::{bail, Context};
use chrono::{DateTime, SubsecRound, Utc};
use clap::{Args, Subcommand};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use sendtime_dynamo::{record_key, DynamoConfig, DynamoStore};
use sendtime_objects::{Objects, S3Config, Source};
use sendtime_store::lists::{ListFormat, ListReader, ListTimes};
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

/// Flags of `sendtime data load`: what to read and in which format, where to write it
/// (a DynamoDB table or a dataset file), concurrency and checks.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// What to read: a file, a folder (every file under it), `s3://bucket/prefix` (every
    /// object under it) or `-` (standard input).
    #[arg(value_name = "SOURCE", conflicts_with = "file")]
    pub source: Option<String>,
    /// The same as SOURCE (kept for scripts that name it).
    #[arg(long, short)]
    pub file: Option<String>,
    /// The input's format: `dataset` (sendtime's JSON Lines records), `personalize` (Amazon
    /// Personalize batch inference output, unchanged) or `csv` (`user_id,item_id,rank`).
    #[arg(long, value_enum, default_value_t = LoadFormat::Dataset)]
    pub format: LoadFormat,
    /// When the lists of a `personalize` or `csv` input were made (RFC 3339); default: now.
    #[arg(long)]
    pub generated_at: Option<DateTime<Utc>>,
    /// How long those lists count from --generated-at (`7d`, `36h`, `90m`); past it a user's
    /// list is absent (popular items instead) and DynamoDB's TTL deletes it.
    #[arg(long, default_value = "7d", value_parser = parse_ttl)]
    pub ttl: chrono::Duration,
    /// Table to load into (created if missing).
    #[arg(long, env = "SENDTIME_TABLE", required_unless_present = "out")]
    pub table: Option<String>,
    /// Write the records to this dataset file (for `serve --data`) instead of a table.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// DynamoDB endpoint, e.g. http://127.0.0.1:8000 for DynamoDB Local.
    #[arg(long, env = "SENDTIME_DYNAMODB_ENDPOINT")]
    pub dynamodb_endpoint: Option<String>,
    /// S3 endpoint for an `s3://` SOURCE, e.g. an S3 emulator (path-style addressing).
    #[arg(long, env = "SENDTIME_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// AWS region (DynamoDB and S3).
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,
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

/// The input formats of `sendtime data load`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LoadFormat {
    /// sendtime's dataset: JSON Lines records tagged by `kind`.
    Dataset,
    /// Amazon Personalize batch inference output (JSON Lines), read unchanged into `recs`.
    Personalize,
    /// `user_id,item_id,rank` rows (rank 1 is best) into `recs`.
    Csv,
}

/// `7d`, `36h`, `90m` or `3600s` as a positive duration.
fn parse_ttl(raw: &str) -> Result<chrono::Duration, String> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let n: i64 = number
        .parse()
        .map_err(|_| format!("'{raw}' is not a duration such as 7d, 36h, 90m or 3600s"))?;
    let d = match unit {
        "d" => chrono::Duration::try_days(n),
        "h" => chrono::Duration::try_hours(n),
        "m" => chrono::Duration::try_minutes(n),
        "s" | "" => chrono::Duration::try_seconds(n),
        _ => None,
    };
    match d {
        Some(d) if n > 0 && d <= chrono::Duration::days(3_650) => Ok(d),
        _ => Err(format!(
            "'{raw}' is not a duration from 1s to 3650d such as 7d, 36h, 90m or 3600s"
        )),
    }
}

/// The records read from a load's source, with what could not be read.
#[derive(Debug, Default)]
pub struct LoadInput {
    /// The records, in source order (of one key the last wins when written).
    pub records: Vec<Record>,
    /// Lines that could not be used, each named by file and line (the first 1,000).
    pub problems: Vec<String>,
    /// Unusable lines in all: the load fails after writing the good records.
    pub unreadable: usize,
    /// What was read, for the report (one line per fact).
    pub notes: Vec<String>,
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
    /// Reads the source in its format, then writes every record to the table (created unless
    /// `--no-create-table`) and reads it back, or to `--out`; errors if any line, write or
    /// read-back failed (after writing everything that could be).
    pub async fn run(self) -> anyhow::Result<()> {
        let input = self.read_input().await?;
        for note in &input.notes {
            eprintln!("{note}");
        }
        for problem in input.problems.iter().take(20) {
            eprintln!("{problem}");
        }
        if input.problems.len() > 20 {
            eprintln!(
                "… {} more line(s) named above were not shown",
                input.problems.len() - 20
            );
        }
        match (&self.out, &self.table) {
            (Some(_), Some(table)) => bail!(
                "both --out and --table '{table}' given (SENDTIME_TABLE may be set): choose one"
            ),
            (Some(out), None) => write_dataset(out, input),
            (None, Some(table)) => self.load_table(table, input).await,
            (None, None) => {
                bail!("say where to load: --table NAME (or SENDTIME_TABLE) or --out FILE")
            }
        }
    }

    /// Every record of the source: each file or object read in key order, in `--format`.
    async fn read_input(&self) -> anyhow::Result<LoadInput> {
        let generated_at = self
            .generated_at
            .unwrap_or_else(|| Utc::now().trunc_subsecs(0));
        let times = ListTimes {
            generated_at,
            expires_at: generated_at + self.ttl,
        };
        let mut lists = match self.format {
            LoadFormat::Dataset => None,
            LoadFormat::Personalize => Some(ListReader::new(ListFormat::Personalize, times)),
            LoadFormat::Csv => Some(ListReader::new(ListFormat::Csv, times)),
        };
        let mut input = LoadInput::default();
        let source = self
            .source
            .as_deref()
            .or(self.file.as_deref())
            .unwrap_or("-");
        if source == "-" {
            read_one(
                "standard input",
                std::io::stdin().lock(),
                &mut lists,
                &mut input,
            )?;
        } else {
            let source: Source = source.parse()?;
            let config = S3Config {
                endpoint: self.s3_endpoint.clone(),
                region: self.region.clone(),
            };
            let objects = Objects::new(source.clone(), &config).await;
            let listed = objects.list().await?;
            let mut read = 0usize;
            for object in &listed {
                let location = object.location(&source);
                if is_marker(&object.key) {
                    input
                        .notes
                        .push(format!("skipped {location}: a marker file, not data"));
                    continue;
                }
                let stream = objects.open(object).await?;
                read_one(&location, stream, &mut lists, &mut input)?;
                read += 1;
            }
            if read == 0 {
                bail!("{source}: no files to read");
            }
            input
                .notes
                .push(format!("read {read} file(s) from {source}"));
        }
        if let Some(reader) = lists {
            lists_into(reader, self.format, times, &mut input);
        }
        Ok(input)
    }

    /// Writes the records to the table and reads them back, reporting as it goes.
    async fn load_table(&self, table: &str, input: LoadInput) -> anyhow::Result<()> {
        let store = self.connect(table).await?;
        let started = Instant::now();
        let parsed = ParsedRecords {
            records: input.records,
            errors: Vec::new(),
        };
        let summary = load(store, parsed, self.concurrency as usize, !self.no_verify).await?;
        let elapsed = started.elapsed().as_secs_f64();
        report_load(&summary, table, elapsed, self.no_verify);
        let failures = input.unreadable + summary.report.failed.len() + summary.missing.len();
        if failures > 0 {
            bail!(
                "{} unreadable line(s), {} record(s) not written, {} missing on read-back",
                input.unreadable,
                summary.report.failed.len(),
                summary.missing.len()
            );
        }
        Ok(())
    }

    /// The table's store, the table created unless `--no-create-table`.
    async fn connect(&self, table: &str) -> anyhow::Result<Arc<DynamoStore>> {
        let mut config = DynamoConfig::new(table.to_owned());
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
                bail!("table '{table}' does not exist (drop --no-create-table to create it)");
            }
        } else if store
            .create_table_if_missing()
            .await
            .with_context(|| format!("could not create table '{table}' (check --dynamodb-endpoint / --region and credentials)"))?
        {
            eprintln!("created table '{table}'");
        }
        Ok(store)
    }
}

/// Object names that mark a finished job rather than hold data (`_SUCCESS`, `_manifest…`).
fn is_marker(key: &str) -> bool {
    let name = key.rsplit('/').next().unwrap_or(key);
    name.starts_with('_') || name.starts_with('.')
}

/// Reads one file or object: dataset lines into records, list lines into `lists`.
fn read_one(
    name: &str,
    stream: impl BufRead,
    lists: &mut Option<ListReader>,
    input: &mut LoadInput,
) -> anyhow::Result<()> {
    match lists {
        Some(reader) => reader
            .read(name, stream)
            .with_context(|| format!("cannot read {name}")),
        None => {
            let parsed = ParsedRecords::read(stream);
            input.unreadable += parsed.errors.len();
            input.problems.extend(
                parsed
                    .errors
                    .iter()
                    .take(1_000usize.saturating_sub(input.problems.len()))
                    .map(|e| format!("{name}:{}: unreadable: {}", e.line, e.reason)),
            );
            input.records.extend(parsed.records);
            Ok(())
        }
    }
}

/// The lists a reader kept, as `recs` records, with its counts in the report.
fn lists_into(reader: ListReader, format: LoadFormat, times: ListTimes, input: &mut LoadInput) {
    let (lists, stats, problems, _) = reader.finish();
    let name = match format {
        LoadFormat::Personalize => "Personalize batch output",
        _ => "CSV",
    };
    input.notes.push(format!(
        "{name}: {} list(s) from {} line(s) ({} empty), generated {} and expiring {}; {} line(s) the batch job failed for (no list: those users get popular items); {} duplicate(s) (the later user line, the best item rank kept); {} item id(s) refused; {} unreadable line(s)",
        lists.len(),
        stats.lines,
        stats.empty_lists,
        times.generated_at.to_rfc3339(),
        times.expires_at.to_rfc3339(),
        stats.job_errors,
        stats.duplicates,
        stats.items_refused,
        stats.unreadable,
    ));
    input.unreadable += stats.unreadable;
    input
        .problems
        .extend(problems.iter().map(ToString::to_string));
    input.records.extend(lists.into_iter().map(Record::Recs));
}

/// Writes the records as a dataset file for `serve --data` (the last line of a key wins there
/// as in a table); errors after writing if any line was unreadable.
fn write_dataset(path: &Path, input: LoadInput) -> anyhow::Result<()> {
    let mut out = jsonl::create(path)?;
    for record in &input.records {
        jsonl::write_line(&mut out, record)?;
    }
    out.flush()
        .with_context(|| format!("cannot write --out {}", path.display()))?;
    eprintln!(
        "wrote {} records to {}",
        input.records.len(),
        path.display()
    );
    if input.unreadable > 0 {
        bail!("{} unreadable line(s) (named above)", input.unreadable);
    }
    Ok(())
}

/// The load's report on stderr: written, duplicates, retries, expired lists, read-back.
fn report_load(summary: &LoadSummary, table: &str, elapsed: f64, no_verify: bool) {
    for (what, why) in summary.report.failed.iter().take(20) {
        eprintln!("not written: {what}: {why}");
    }
    eprintln!(
        "loaded {} of {} records into '{}' in {:.1} s ({:.0} records/s){}",
        summary.report.written,
        summary.parsed,
        table,
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
    if !no_verify && summary.missing.is_empty() && summary.report.failed.is_empty() {
        eprintln!("verified: every written key reads back");
    }
    for what in summary.missing.iter().take(20) {
        eprintln!("missing after load: {what}");
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
