//! `sendtime loadtest` (an open-model load test sized to a campaign or a plan, against
//! `sendtime serve` or a deployed `ApiUrl`) and `sendtime loadtest merge` (shards' results
//! into one report and verdict). Writes `results.json`, `report.md` and `chart.svg`; the SLO
//! verdict decides the exit code.

use crate::commands::campaign::{parse_blocks, parse_channels, read_audience, show_progress};
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use sendtime_campaign::caller::CallerConfig;
use sendtime_campaign::loadtest::results::{Results, Slo, Verdict};
use sendtime_campaign::loadtest::run::{self, Load, LoadProgress, RunConfig};
use sendtime_campaign::loadtest::shape::{self, CampaignShape, Shard};
use sendtime_campaign::loadtest::{chart, report};
use sendtime_domain::UserId;
use sendtime_store::{ParsedRecords, Record};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// `sendtime loadtest [flags]` runs a load test; `sendtime loadtest merge` merges shards.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct LoadtestArgs {
    /// `merge`, or nothing to run a load test.
    #[command(subcommand)]
    pub command: Option<LoadtestCommand>,
    /// The load test's flags.
    #[command(flatten)]
    pub run: RunArgs,
}

/// The subcommands of `sendtime loadtest`.
#[derive(Debug, Subcommand)]
pub enum LoadtestCommand {
    /// Merge the results.json of shards run side by side into one report and verdict.
    Merge(MergeArgs),
}

impl LoadtestArgs {
    /// Runs the load test or the merge.
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Some(LoadtestCommand::Merge(m)) => m.run(),
            None => self.run.run().await,
        }
    }
}

/// The SLO a run is judged by (each bound a flag).
#[derive(Debug, Clone, Args)]
pub struct SloArgs {
    /// p99 latency bound, ms, counted from each call's intended send time.
    #[arg(long, default_value_t = 500.0)]
    pub slo_p99_ms: f64,
    /// Most 5xx, timeouts, connection errors and in-flight-cap drops allowed.
    #[arg(long, default_value_t = 0)]
    pub slo_max_errors: u64,
    /// Most 429s allowed.
    #[arg(long, default_value_t = 0)]
    pub slo_max_429: u64,
    /// Shortfall of the achieved rate below the target allowed, as a fraction.
    #[arg(long, default_value_t = 0.02)]
    pub slo_rate_tolerance: f64,
}

impl SloArgs {
    fn slo(&self) -> Slo {
        Slo {
            p99_ms: self.slo_p99_ms,
            max_errors: self.slo_max_errors,
            max_throttled: self.slo_max_429,
            rate_tolerance: self.slo_rate_tolerance,
        }
    }
}

/// Flags of a load test run.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Base URL of the API: `http://127.0.0.1:3000` for `sendtime serve`, or a deployed ApiUrl.
    #[arg(long, env = "SENDTIME_API_URL", required = true)]
    pub base_url: Option<String>,
    /// The caller key, sent in the x-sendtime-key header.
    #[arg(long, env = "SENDTIME_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// An explicit plan, e.g. "500/s for 1m, ramp to 5000/s over 2m, 5000/s for 5m".
    #[arg(long, conflicts_with_all = ["audience", "rate"], required_unless_present = "audience")]
    pub plan: Option<String>,
    /// A campaign: recipients (with --rate and --channel).
    #[arg(long, requires = "rate")]
    pub audience: Option<u64>,
    /// A campaign's Braze rate limit, messages per minute.
    #[arg(long)]
    pub rate: Option<f64>,
    /// A campaign's channel mix as name=share (email renders 3 calls per block, the others 1).
    #[arg(long, default_value = "email=1", value_delimiter = ',')]
    pub channel: Vec<String>,
    /// A campaign's peak-to-average rate inside each minute (as in `campaign plan`).
    #[arg(long, default_value_t = 2.0)]
    pub burst_factor: f64,
    /// Blocks to call, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "recommendations")]
    pub blocks: Vec<String>,
    /// Replay the shape at this multiple of its rates, same timing (0.1: a tenth of the calls
    /// per second; a campaign keeps its minutes and reaches a tenth of its audience).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Cut the schedule after this long, e.g. 60s or 5m.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// User ids from an audience file (CSV or JSON Lines), cycled.
    #[arg(long, conflicts_with_all = ["data", "synthetic"])]
    pub users: Option<PathBuf>,
    /// User ids from a dataset (`sendtime data generate` output), cycled.
    #[arg(long, conflicts_with = "synthetic")]
    pub data: Option<PathBuf>,
    /// Synthetic user ids u000001…uN (what `data generate` and `serve`'s demo data hold);
    /// the default, with N = the audience or 1,000.
    #[arg(long)]
    pub synthetic: Option<usize>,
    /// This machine's share of the schedule, i/n (run n machines with 1/n … n/n, then merge).
    #[arg(long, default_value = "1/1", value_parser = parse_shard)]
    pub shard: Shard,
    /// Cap on calls in flight; calls due beyond it are counted as in_flight_cap, not sent.
    #[arg(long, default_value_t = 2_000)]
    pub max_in_flight: usize,
    /// Per-call timeout, ms (Braze waits 2,000).
    #[arg(long, default_value_t = 2_000)]
    pub timeout_ms: u64,
    /// Directory for results.json, report.md and chart.svg.
    #[arg(long, default_value = "loadtest-out")]
    pub out: PathBuf,
    /// The SLO.
    #[command(flatten)]
    pub slo: SloArgs,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    shape::parse_duration(text)
}

fn parse_shard(text: &str) -> Result<Shard, String> {
    Shard::parse(text).map_err(|e| e.0)
}

impl RunArgs {
    /// Builds the schedule, runs it with a progress display, writes the outputs, and fails
    /// when the verdict does.
    pub async fn run(self) -> anyhow::Result<()> {
        let config = self.config()?;
        eprintln!(
            "loadtest: {} against {} (scale {}, shard {}), {} block(s), in-flight cap {}",
            config.shape_text,
            config.caller.base_url,
            config.scale,
            config.shard,
            config.blocks.len(),
            config.max_in_flight
        );
        let progress = Arc::new(LoadProgress::default());
        let reporter = tokio::spawn(report_progress(progress.clone()));
        let results = run::run(config, progress).await?;
        reporter.abort();
        let _ = reporter.await;
        finish(&results, &self.slo.slo(), &self.out)
    }

    fn config(&self) -> anyhow::Result<RunConfig> {
        let base_url = self.base_url.clone().unwrap_or_default();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            bail!("--base-url must start with http:// or https://");
        }
        if !(self.scale.is_finite() && self.scale > 0.0) {
            bail!("--scale must be a positive number");
        }
        if self.max_in_flight == 0 {
            bail!("--max-in-flight must be at least 1");
        }
        let blocks = parse_blocks(&self.blocks)?;
        let (load, shape_text) = match (&self.plan, self.audience, self.rate) {
            (Some(plan), _, _) => (
                Load::Plan(shape::parse_plan(plan).context("--plan")?),
                format!("plan: {plan}"),
            ),
            (None, Some(audience), Some(rate)) => {
                let shape = CampaignShape {
                    audience,
                    channels: parse_channels(&self.channel)?,
                    rate_per_minute: rate,
                    burst_factor: self.burst_factor,
                };
                shape.profile().context("campaign")?;
                let text = format!(
                    "campaign: {audience} recipients ({}) at {rate} msgs/min, burst ×{}",
                    self.channel.join(","),
                    self.burst_factor
                );
                (Load::Campaign(shape), text)
            }
            _ => bail!("give --plan, or --audience with --rate"),
        };
        let users = self.users(self.audience)?;
        Ok(RunConfig {
            caller: CallerConfig {
                base_url,
                api_key: self.api_key.clone(),
                headers: Vec::new(),
                timeout: Duration::from_millis(self.timeout_ms.max(1)),
                max_idle_per_host: self.max_in_flight,
            },
            blocks,
            users,
            load,
            scale: self.scale,
            duration: self.duration,
            shard: self.shard,
            max_in_flight: self.max_in_flight,
            shape_text,
        })
    }

    fn users(&self, audience: Option<u64>) -> anyhow::Result<Vec<UserId>> {
        if let Some(path) = &self.data {
            let file = std::fs::File::open(path)
                .with_context(|| format!("cannot open --data {}", path.display()))?;
            let parsed = ParsedRecords::read(std::io::BufReader::new(file));
            let users: Vec<UserId> = parsed
                .records
                .into_iter()
                .filter_map(|r| match r {
                    Record::User(u) => Some(u.user_id),
                    _ => None,
                })
                .collect();
            if users.is_empty() {
                bail!("--data {} holds no user records", path.display());
            }
            return Ok(users);
        }
        let synthetic = match (&self.users, self.synthetic) {
            (Some(_), _) => None,
            (None, Some(n)) => Some(n),
            (None, None) => Some(audience.map_or(1_000, |a| a.min(10_000_000) as usize)),
        };
        let users = read_audience(self.users.as_deref(), synthetic)?.users;
        if users.is_empty() {
            bail!("no user ids to call");
        }
        Ok(users)
    }
}

/// Flags of `sendtime loadtest merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The shards' results.json files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Directory for the merged results.json, report.md and chart.svg.
    #[arg(long, default_value = "loadtest-merged")]
    pub out: PathBuf,
    /// The SLO.
    #[command(flatten)]
    pub slo: SloArgs,
}

impl MergeArgs {
    /// Merges the files (counts and histograms add exactly) and writes one report.
    pub fn run(self) -> anyhow::Result<()> {
        let mut merged: Option<Results> = None;
        for path in &self.files {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let shard: Results = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a loadtest results.json", path.display()))?;
            match &mut merged {
                None => merged = Some(shard),
                Some(m) => m.merge(&shard),
            }
        }
        let merged = merged.context("no files to merge")?;
        finish(&merged, &self.slo.slo(), &self.out)
    }
}

/// Writes results.json, chart.svg and report.md into `out`, prints the verdict, and fails
/// when it does.
fn finish(results: &Results, slo: &Slo, out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create --out {}", out.display()))?;
    let verdict = slo.judge(results);
    let write = |name: &str, bytes: &[u8]| -> anyhow::Result<PathBuf> {
        let path = out.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    };
    write("results.json", &serde_json::to_vec(results)?)?;
    let chart_file = match chart::svg(results) {
        Ok(svg) => {
            write("chart.svg", svg.as_bytes())?;
            Some("chart.svg")
        }
        Err(e) => {
            eprintln!("loadtest: no chart: {e}");
            None
        }
    };
    let report = write(
        "report.md",
        report::markdown(results, &verdict, chart_file).as_bytes(),
    )?;
    print_verdict(results, &verdict);
    eprintln!("loadtest: report {}", report.display());
    if !verdict.pass {
        bail!("the SLO verdict failed");
    }
    Ok(())
}

fn print_verdict(results: &Results, verdict: &Verdict) {
    let latency = results.latency();
    eprintln!(
        "loadtest: {} calls, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (from intended send time); {:.1} of {:.1} calls/s",
        results.total(),
        latency.quantile_ms(0.5),
        latency.quantile_ms(0.99),
        latency.max_ms(),
        results.achieved_rate(),
        results.target_rate()
    );
    for c in &verdict.checks {
        eprintln!(
            "  {} {:<70} {}",
            if c.ok { "ok  " } else { "FAIL" },
            c.name,
            c.detail
        );
    }
    eprintln!("  verdict: {}", if verdict.pass { "PASS" } else { "FAIL" });
}

/// A load test's progress: calls done of those scheduled, the current p99, errors and calls
/// over the in-flight cap.
async fn report_progress(progress: Arc<LoadProgress>) {
    show_progress(move || {
        let p = &progress;
        (
            p.scheduled.load(Ordering::Relaxed),
            p.done.load(Ordering::Relaxed),
            format!(
                "p99 {:.1} ms, errors {}, over cap {}",
                p.recent_p99_micros.load(Ordering::Relaxed) as f64 / 1000.0,
                p.errors.load(Ordering::Relaxed),
                p.capped.load(Ordering::Relaxed)
            ),
        )
    })
    .await
}
