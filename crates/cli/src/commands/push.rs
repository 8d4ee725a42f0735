//! `sendtime audience push`: send scores out to Braze as the custom attributes
//! `sendtime_score` and `sendtime_scored_at`, through `POST /users/track` (`--to braze`:
//! paced by Braze's rate-limit headers, retried, resumable, unchanged scores skipped) or as
//! Cloud Data Ingestion JSON Lines (`--to cdi`).

use anyhow::{bail, Context};
use clap::builder::TypedValueParser;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use sendtime_braze::track::{self, cdi, state::PushedLog, ApiKey, PushConfig, PushReport};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the scores go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Destination {
    /// `POST /users/track` of a Braze workspace (`--endpoint`, `--api-key`).
    Braze,
    /// Cloud Data Ingestion JSON Lines files for an S3 source (`--out`).
    Cdi,
}

/// Flags of `sendtime audience push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// Where to write the scores.
    #[arg(long, value_enum)]
    pub to: Destination,
    /// Score records written by `audience score --out`.
    #[arg(long)]
    pub scores: PathBuf,
    /// The workspace's REST endpoint, e.g. https://rest.iad-01.braze.com (--to braze).
    #[arg(long, env = "SENDTIME_BRAZE_ENDPOINT")]
    pub endpoint: Option<String>,
    /// A REST API key with the users.track permission (--to braze); never printed.
    #[arg(long, env = "SENDTIME_BRAZE_API_KEY", hide_env_values = true)]
    pub api_key: Option<ApiKey>,
    /// Objects per request: 75 is Braze's cap; some contracts allow 50.
    #[arg(long, default_value_t = track::push::MAX_BATCH, value_parser = clap::value_parser!(u16).range(1..=75).map(usize::from))]
    pub batch_size: usize,
    /// Requests in flight at once (the rate limit is kept whatever this is).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=512).map(usize::from))]
    pub concurrency: usize,
    /// Attempts per batch on 5xx answers and connection errors.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_attempts: u32,
    /// What Braze accepted, per user: the checkpoint a rerun resumes from, and what makes an
    /// unchanged score skip. Default: `<scores>.braze-state.jsonl`.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// The CDI file (--to cdi); split into FILE, FILE.1, … (numbered before the extension).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Largest CDI file, bytes (Braze refuses files over 512 MB).
    #[arg(long, default_value_t = cdi::DEFAULT_MAX_FILE_BYTES, value_parser = clap::value_parser!(u64).range(1024..=cdi::DEFAULT_MAX_FILE_BYTES))]
    pub max_file_bytes: u64,
}

impl PushArgs {
    /// Reads the scores and writes them to the destination.
    pub fn run(self) -> anyhow::Result<()> {
        let scores = self.read_scores()?;
        match self.to {
            Destination::Cdi => self.write_cdi(&scores),
            Destination::Braze => {
                let handle = tokio::runtime::Handle::try_current()
                    .context("audience push needs the tokio runtime of `sendtime`")?;
                tokio::task::block_in_place(|| handle.block_on(self.push(scores)))
            }
        }
    }

    /// The scores file's updates; its bad lines are printed by number and counted.
    fn read_scores(&self) -> anyhow::Result<Vec<track::ScoreUpdate>> {
        let file = File::open(&self.scores)
            .with_context(|| format!("cannot open --scores {}", self.scores.display()))?;
        let read = track::read_scores(BufReader::with_capacity(1 << 20, file))
            .with_context(|| format!("cannot read --scores {}", self.scores.display()))?;
        for bad in read.bad.iter().take(20) {
            eprintln!(
                "--scores {}: line {} skipped: {}",
                self.scores.display(),
                bad.line,
                bad.reason
            );
        }
        if read.bad.len() > 20 {
            eprintln!("… and {} more bad lines", read.bad.len() - 20);
        }
        eprintln!(
            "read {} scores from {} ({} bad lines skipped)",
            read.updates.len(),
            self.scores.display(),
            read.bad.len()
        );
        if read.updates.is_empty() {
            bail!(
                "--scores {}: no score records to push",
                self.scores.display()
            );
        }
        Ok(read.updates)
    }

    fn write_cdi(&self, scores: &[track::ScoreUpdate]) -> anyhow::Result<()> {
        let Some(out) = &self.out else {
            bail!("--to cdi needs --out FILE (the JSON Lines file for the S3 source)");
        };
        let written = cdi::write(out, scores, self.max_file_bytes)?;
        for (path, lines, bytes) in &written.files {
            eprintln!(
                "wrote {} ({lines} users, {bytes} bytes; every line validated)",
                path.display()
            );
        }
        eprintln!(
            "{} users in {} CDI file(s): upload them to the S3 source folder",
            scores.len(),
            written.files.len()
        );
        Ok(())
    }

    fn state_path(&self) -> PathBuf {
        self.state
            .clone()
            .unwrap_or_else(|| default_state(&self.scores))
    }

    async fn push(&self, scores: Vec<track::ScoreUpdate>) -> anyhow::Result<()> {
        let (Some(endpoint), Some(key)) = (&self.endpoint, &self.api_key) else {
            bail!("--to braze needs --endpoint (or SENDTIME_BRAZE_ENDPOINT) and --api-key (or SENDTIME_BRAZE_API_KEY)");
        };
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        let state = self.state_path();
        let mut log = PushedLog::open(&state, &endpoint)?;
        if log.dropped_torn_line {
            eprintln!(
                "--state {}: dropped a line cut by a crash; its users are sent again",
                state.display()
            );
        }
        let mut config = PushConfig::new(endpoint.clone(), key.clone());
        config.batch_size = self.batch_size;
        config.concurrency = self.concurrency;
        config.max_attempts = self.max_attempts;
        let to_send = scores.iter().filter(|u| !log.is_unchanged(u)).count() as u64;
        eprintln!(
            "pushing {to_send} of {} users to {endpoint}/users/track ({} unchanged since the last push; state {})",
            scores.len(),
            scores.len() as u64 - to_send,
            state.display()
        );
        let bar = progress_bar(to_send);
        let result = track::push(&config, scores, &mut log, &|n| bar.inc(n)).await;
        bar.finish_and_clear();
        let report = result?;
        log.finish(&endpoint)
            .with_context(|| format!("cannot finish --state {}", state.display()))?;
        print_report(&report);
        if report.failed > 0 {
            bail!(
                "{} users were not written ({}); run the same command again to send them",
                report.failed,
                report.failures.first().map(String::as_str).unwrap_or("")
            );
        }
        Ok(())
    }
}

/// `<scores>.braze-state.jsonl`, beside the scores.
fn default_state(scores: &Path) -> PathBuf {
    let mut name = scores.file_name().unwrap_or_default().to_os_string();
    name.push(".braze-state.jsonl");
    scores.with_file_name(name)
}

fn progress_bar(len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{bar:40}] {pos}/{len} users ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn print_report(r: &PushReport) {
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    eprintln!(
        "accepted {} users in {} batches ({} requests: {} answered 429, {} 5xx or no answer) in {:.1} s: {:.0} users/s, {:.0} requests/s",
        r.accepted,
        r.batches,
        r.requests,
        r.rate_limited,
        r.transient,
        secs,
        r.accepted as f64 / secs,
        r.requests as f64 / secs
    );
    if !r.refused.is_empty() {
        eprintln!(
            "Braze refused {} users (not recorded: the next push sends them again):",
            r.refused.len()
        );
        for (user, why) in r.refused.iter().take(50) {
            eprintln!("  {user}: {why}");
        }
        if r.refused.len() > 50 {
            eprintln!("  … and {} more", r.refused.len() - 50);
        }
    }
    for e in &r.unattributed_errors {
        eprintln!("Braze reported an error naming no user: {e}");
    }
    println!(
        "{{\"users\":{},\"unchanged\":{},\"accepted\":{},\"refused\":{},\"failed\":{},\"requests\":{},\"rate_limited\":{},\"transient\":{},\"seconds\":{:.3}}}",
        r.users, r.unchanged, r.accepted, r.refused.len(), r.failed, r.requests, r.rate_limited, r.transient, secs
    );
}
