//! `sendtime campaign send` and `sendtime campaign plan`.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use sendtime_campaign::audience::{self, Format};
use sendtime_campaign::plan::{self, Channel, Front, PlanInput};
use sendtime_campaign::send::{self, Progress, SendConfig};
use sendtime_domain::BlockKind;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// The `sendtime campaign` subcommands.
#[derive(Debug, Subcommand)]
pub enum CampaignCommand {
    /// Fetch blocks for a whole audience at send time, paced and adaptive; resumable.
    Send(SendArgs),
    /// Size a campaign against Braze's and AWS's limits before sending it.
    Plan(PlanArgs),
}

impl CampaignCommand {
    /// Runs the chosen campaign subcommand.
    pub async fn run(self) -> anyhow::Result<()> {
        match self {
            Self::Send(a) => a.run().await,
            Self::Plan(a) => a.run(),
        }
    }
}

/// Flags of `sendtime campaign send`: target, audience, rate, result log and retry bounds.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// Base URL of the API, e.g. https://abc.execute-api.ap-northeast-2.amazonaws.com
    #[arg(long, env = "SENDTIME_API_URL")]
    pub base_url: String,
    /// Audience file: CSV (user id in the first column) or JSON Lines (.jsonl, {"user_id":…}).
    #[arg(
        long,
        conflicts_with = "synthetic",
        required_unless_present = "synthetic"
    )]
    pub audience: Option<PathBuf>,
    /// Instead of a file, the synthetic audience u000001…uN (what `data generate` creates).
    #[arg(long)]
    pub synthetic: Option<usize>,
    /// Blocks to fetch per recipient, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "recommendations")]
    pub blocks: Vec<String>,
    /// Campaign rate in messages (recipients) per minute, as in Braze.
    #[arg(long)]
    pub rate: f64,
    /// Result log (JSON Lines, one line per recipient and block); also the checkpoint.
    #[arg(long, short)]
    pub out: PathBuf,
    /// Continue the send recorded in --out after a crash: done keys are skipped.
    #[arg(long)]
    pub resume: bool,
    /// API key, sent as x-sendtime-key (never logged, never in the URL).
    #[arg(long, env = "SENDTIME_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Per-call timeout in ms (Braze waits 2,000).
    #[arg(long, default_value_t = 2_000)]
    pub timeout_ms: u64,
    /// Attempts per call, the first included.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub max_attempts: u32,
    /// Largest number of calls in flight.
    #[arg(long, default_value_t = 256)]
    pub max_concurrency: usize,
    /// Calls in flight at the start (adapts from there).
    #[arg(long, default_value_t = 16)]
    pub initial_concurrency: usize,
    /// Write the summary as JSON to this file too.
    #[arg(long)]
    pub summary: Option<PathBuf>,
    /// Exit non-zero when more than this share (0–1) of this run's keys did not end `ok`.
    #[arg(long, default_value_t = 0.0)]
    pub max_failure_rate: f64,
}

impl SendArgs {
    /// Validates the flags, reads the audience, sends, prints the summary to stderr; failed calls
    /// are in the result log, and more of them than `--max-failure-rate` is an error (exit 1)
    /// naming the base URL and what failed.
    pub async fn run(self) -> anyhow::Result<()> {
        if !(self.rate.is_finite() && self.rate > 0.0) {
            bail!("--rate must be a positive number of messages per minute");
        }
        if !(0.0..=1.0).contains(&self.max_failure_rate) {
            bail!("--max-failure-rate must be a share from 0 to 1");
        }
        parse_blocks(&self.blocks)?;
        if self.max_concurrency == 0 || self.initial_concurrency == 0 {
            bail!("--max-concurrency and --initial-concurrency must be at least 1");
        }
        let url = self.base_url.trim_end_matches('/').to_owned();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("--base-url must start with http:// or https://");
        }
        let audience = read_audience(self.audience.as_deref(), self.synthetic)?;
        if audience.users.is_empty() {
            bail!("the audience is empty");
        }
        if audience.duplicates > 0 {
            eprintln!(
                "{} duplicate recipient(s) in the audience: each is sent once",
                audience.duplicates
            );
        }
        let (log, done) = sendtime_campaign::output::open(&self.out, self.resume)?;
        if self.resume {
            eprintln!(
                "resuming: {} result(s) already in {}",
                done.len(),
                self.out.display()
            );
        }
        let mut config = SendConfig::new(url, self.blocks.clone(), self.rate);
        config.timeout = Duration::from_millis(self.timeout_ms.max(1));
        config.max_attempts = self.max_attempts;
        config.max_concurrency = self.max_concurrency;
        config.initial_concurrency = self.initial_concurrency.min(self.max_concurrency);
        config.slow = config.timeout / 2;
        config.api_key = self.api_key.clone();
        let progress = Arc::new(Progress::default());
        let reporter = tokio::spawn(report_progress(progress.clone()));
        let summary = send::run(config, &audience.users, &done, log, progress).await?;
        reporter.abort();
        let _ = reporter.await;

        eprintln!(
            "sent {} call(s) for {} recipient(s) × {} block(s) in {:.1} s ({} skipped as already done)",
            summary.keys_this_run, summary.recipients, self.blocks.len(), summary.seconds, summary.keys_skipped_resumed
        );
        eprintln!(
            "achieved {:.0} requests/s ({:.0} msgs/min) of {:.0} requests/s targeted; {} attempt(s), {} retr(ies)",
            summary.requests_per_second, summary.messages_per_minute, summary.target_requests_per_second, summary.attempts, summary.retries
        );
        eprintln!(
            "latency of successful calls: p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            summary.latency_ms_p50,
            summary.latency_ms_p95,
            summary.latency_ms_p99,
            summary.latency_ms_max
        );
        eprintln!(
            "outcomes: {}; by status: {}; concurrency {:.0}..{:.0}, final {:.0}",
            fmt_map(&summary.outcomes),
            fmt_map(&summary.statuses),
            summary.concurrency_min,
            summary.concurrency_max,
            summary.concurrency_final
        );
        if !summary.os_errors.is_empty() {
            eprintln!(
                "connections to {} failed: {}",
                summary.base_url,
                fmt_map(&summary.os_errors)
            );
        }
        if let Some(path) = &self.summary {
            std::fs::write(path, serde_json::to_vec_pretty(&summary)?)
                .with_context(|| format!("cannot write --summary {}", path.display()))?;
        }
        let ok = summary.outcomes.get("ok").copied().unwrap_or(0);
        let failed = (summary.keys_this_run as u64).saturating_sub(ok);
        let share = failed as f64 / summary.keys_this_run.max(1) as f64;
        if share > self.max_failure_rate {
            let os = if summary.os_errors.is_empty() {
                String::new()
            } else {
                format!("; OS errors: {}", fmt_map(&summary.os_errors))
            };
            bail!(
                "{failed} of {} key(s) failed calling {} (by status: {}{os}): more than --max-failure-rate {}; the result log {} says which",
                summary.keys_this_run,
                summary.base_url,
                fmt_map(&summary.statuses),
                self.max_failure_rate,
                self.out.display()
            );
        }
        Ok(())
    }
}

/// The audience of `--audience FILE` (CSV or JSON Lines; every unusable line reported, up
/// to 20 printed) or `--synthetic N`.
pub(crate) fn read_audience(
    path: Option<&std::path::Path>,
    synthetic: Option<usize>,
) -> anyhow::Result<audience::Audience> {
    Ok(match (path, synthetic) {
        (_, Some(n)) => audience::synthetic(n),
        (Some(path), None) => {
            let file = std::fs::File::open(path)
                .with_context(|| format!("cannot open --audience {}", path.display()))?;
            let format = Format::from_path(&path.to_string_lossy());
            match audience::read(std::io::BufReader::new(file), format) {
                Ok(a) => a,
                Err(errors) => {
                    for e in errors.iter().take(20) {
                        eprintln!("--audience {}: {e}", path.display());
                    }
                    bail!(
                        "--audience {}: {} unusable line(s); fix them and run again",
                        path.display(),
                        errors.len()
                    );
                }
            }
        }
        (None, None) => bail!("give --audience FILE or --synthetic N"),
    })
}

/// `--blocks` names as blocks of the registry; an unknown name fails naming the known ones.
pub(crate) fn parse_blocks(names: &[String]) -> anyhow::Result<Vec<BlockKind>> {
    names
        .iter()
        .map(|b| {
            b.parse::<BlockKind>().map_err(|_| {
                anyhow::anyhow!(
                    "--blocks: unknown block '{b}' (known: {})",
                    BlockKind::names()
                )
            })
        })
        .collect()
}

/// `--channel email=0.7,push=0.3` as (channel, share) pairs; a bare name is share 1.
pub(crate) fn parse_channels(parts: &[String]) -> anyhow::Result<Vec<(Channel, f64)>> {
    let mut channels = Vec::new();
    for part in parts {
        let (name, share) = part.split_once('=').unwrap_or((part.as_str(), "1"));
        let channel: Channel = name
            .trim()
            .parse()
            .map_err(|e: String| anyhow::anyhow!("--channel: {e}"))?;
        let share: f64 = share.trim().parse().map_err(|_| {
            anyhow::anyhow!("--channel {part}: the share must be a number like 0.7")
        })?;
        channels.push((channel, share));
    }
    Ok(channels)
}

fn fmt_map(m: &std::collections::BTreeMap<String, u64>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A send's progress: calls done of all, with the outcome counts.
async fn report_progress(progress: Arc<Progress>) {
    show_progress(move || {
        let (ok, failed) = (
            progress.ok.load(Ordering::Relaxed),
            progress.failed.load(Ordering::Relaxed),
        );
        (
            progress.total.load(Ordering::Relaxed),
            progress.done.load(Ordering::Relaxed),
            format!("ok {ok}, failed {failed}"),
        )
    })
    .await
}

/// A progress bar with rate and ETA on a terminal; a plain line every 5 s otherwise. `read`
/// gives (calls in all, calls done, a status message); runs until the task is aborted.
pub(crate) async fn show_progress(read: impl Fn() -> (u64, u64, String)) {
    let tty = std::io::stderr().is_terminal();
    let bar = tty.then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed_precise} [{bar:40}] {pos}/{len} calls ({per_sec}, eta {eta}) {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar
    });
    let started = std::time::Instant::now();
    let mut tick = tokio::time::interval(if tty {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(5)
    });
    loop {
        tick.tick().await;
        let (total, done, message) = read();
        match &bar {
            Some(bar) => {
                bar.set_length(total);
                bar.set_position(done);
                bar.set_message(message);
            }
            None if started.elapsed() > Duration::from_secs(1) => {
                eprintln!(
                    "progress: {done}/{total} calls, {message}, {:.0} s",
                    started.elapsed().as_secs_f64()
                );
            }
            None => {}
        }
    }
}

/// Flags of `sendtime campaign plan`: audience, channel mix, rate or window, and assumptions.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Recipients in the audience.
    #[arg(long)]
    pub audience: u64,
    /// Channel mix as name=share, e.g. email=0.7,push=0.3 (email 3 calls per message, push/sms/kakao 1).
    #[arg(long, default_value = "email=1", value_delimiter = ',')]
    pub channel: Vec<String>,
    /// Blocks (connected-content calls) per message.
    #[arg(long, default_value_t = 1)]
    pub blocks: u32,
    /// Braze rate limit in messages per minute.
    #[arg(
        long,
        conflicts_with = "window_hours",
        required_unless_present = "window_hours"
    )]
    pub rate: Option<f64>,
    /// Or: the send window in hours; the rate is audience / window.
    #[arg(long)]
    pub window_hours: Option<f64>,
    /// Mean function duration per call in ms. Default: the CPU per call measured by
    /// scripts/bench.sh, scaled to --memory-mb's CPU share, plus a 5 ms DynamoDB read for each
    /// user not in --cache-hit-ratio (about 5.5 ms at 256 MB); measure yours with `loadtest`.
    #[arg(long)]
    pub latency_ms: Option<f64>,
    /// Peak-to-average ratio inside a minute (Braze front-loads each minute).
    #[arg(long, default_value_t = 2.0)]
    pub burst_factor: f64,
    /// Lambda memory in MB (cost).
    #[arg(long, default_value_t = 256)]
    pub memory_mb: u32,
    /// Share of calls served from the function cache without a DynamoDB read.
    #[arg(long, default_value_t = 0.0)]
    pub cache_hit_ratio: f64,
    /// What fronts the functions (template.yaml's FrontDoor): http-api ($1.00 per million
    /// calls, 10,000 rps) or function-url (no per-call charge, Lambda's 10 rps per concurrency).
    #[arg(long, default_value = "http-api", value_parser = parse_front)]
    pub front: Front,
    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

fn parse_front(s: &str) -> Result<Front, String> {
    s.parse()
}

impl PlanArgs {
    /// Computes the plan and prints it as a table, or as JSON with `--json`; errors on bad input.
    pub fn run(self) -> anyhow::Result<()> {
        let channels = parse_channels(&self.channel)?;
        let rate = match (self.rate, self.window_hours) {
            (Some(r), _) => r,
            (None, Some(h)) if h > 0.0 => (self.audience as f64 / (h * 60.0)).ceil(),
            _ => bail!("--window-hours must be above zero (or give --rate)"),
        };
        let mut input = PlanInput::new(self.audience, channels, rate);
        input.blocks = self.blocks;
        input.latency_ms = self.latency_ms.unwrap_or_else(|| {
            sendtime_campaign::plan::duration::default_latency_ms(
                self.memory_mb,
                self.cache_hit_ratio,
            )
        });
        input.burst_factor = self.burst_factor;
        input.lambda_memory_mb = self.memory_mb;
        input.cache_hit_ratio = self.cache_hit_ratio;
        input.front = self.front;
        let plan = plan::plan(input)?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&plan)?);
        } else {
            print!("{}", plan::render(&plan));
        }
        Ok(())
    }
}
