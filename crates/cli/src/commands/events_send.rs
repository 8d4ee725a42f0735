//! `sendtime events send FILE`: backfill or replay a JSON Lines file of events through the
//! API's `POST /v1/events`, with the campaign sender's pacing, retries and resume
//! ([`sendtime_campaign::events_send`]); every line accounted for once in the summary.

use anyhow::{bail, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use sendtime_api::ingest::{MAX_BATCH_BYTES, MAX_BATCH_EVENTS};
use sendtime_campaign::events_send::{
    self, EventsProgress, EventsSendConfig, EventsSendError, Report,
};
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// `sendtime events send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// JSON Lines of events, one event object a line (the `POST /v1/events` format).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Base URL of the API, e.g. http://127.0.0.1:3000; batches go to URL/v1/events.
    #[arg(long, env = "SENDTIME_API_URL")]
    pub url: String,
    /// The API's write key, sent as x-sendtime-key (never logged, never in the URL).
    #[arg(long, env = "SENDTIME_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Events per second, retries included: `500/s` or `500`.
    #[arg(long, default_value = "1000/s", value_parser = parse_rate)]
    pub rate: f64,
    /// Most events in one batch (the API takes up to 500, and 256 KiB).
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Most batches in flight (halved on 429/503/timeouts, grown back on answers).
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// The state file: one line per line of FILE once answered; a killed run resumes from
    /// it. Default: `FILE.send-state.jsonl`. Remove it (or choose another) to send FILE again.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Per-attempt timeout in ms.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// Attempts per event, the first included.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub max_attempts: u32,
}

/// A bar of lines answered on a terminal; a plain line every 5 s otherwise. Runs until the
/// task is aborted.
async fn show_progress(lines: u64, progress: Arc<EventsProgress>) {
    let tty = std::io::stderr().is_terminal();
    let bar = tty.then(|| {
        let style = ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{bar:40}] {pos}/{len} lines ({per_sec}, eta {eta}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        ProgressBar::new(lines).with_style(style.progress_chars("=> "))
    });
    let started = std::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(if tty { 200 } else { 5_000 }));
    loop {
        tick.tick().await;
        let done = progress.done.load(Ordering::Relaxed);
        let message = format!(
            "{} requests, {} rejected or failed",
            progress.requests.load(Ordering::Relaxed),
            progress.problems.load(Ordering::Relaxed)
        );
        match &bar {
            Some(bar) => {
                bar.set_position(done);
                bar.set_message(message);
            }
            None if started.elapsed() > Duration::from_secs(1) => eprintln!(
                "progress: {done}/{lines} lines, {message}, {:.0} s",
                started.elapsed().as_secs_f64()
            ),
            None => {}
        }
    }
}

/// Lines in `file` (a last line without a newline counts), for the progress display.
fn count_lines(file: &Path) -> anyhow::Result<u64> {
    let mut input = std::fs::File::open(file)
        .with_context(|| format!("cannot read FILE {}", file.display()))?;
    let (mut lines, mut last) = (0u64, b'\n');
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = input
            .read(&mut buf)
            .with_context(|| format!("cannot read FILE {}", file.display()))?;
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
        last = buf[n - 1];
    }
    Ok(lines + u64::from(last != b'\n'))
}

/// `--rate`: events per second, `N/s` or `N`, above zero.
fn parse_rate(text: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches("/s").trim();
    match number.parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 => Ok(n),
        _ => Err(format!(
            "{text:?} is not a rate: give events per second, e.g. 500/s"
        )),
    }
}

impl SendArgs {
    /// Checks the flags, sends FILE, prints the summary (JSON on stdout, the lines to fix on
    /// stderr); an error names how many events were rejected or failed.
    pub async fn run(self) -> anyhow::Result<()> {
        let config = self.config()?;
        let state = self.state_path();
        let lines = count_lines(&self.file)?;
        let progress = Arc::new(EventsProgress::default());
        let shown = progress.clone();
        let reporter = tokio::spawn(show_progress(lines, shown));
        let result = events_send::run(config, &self.file, &state, progress).await;
        reporter.abort();
        let _ = reporter.await;
        let report = match result {
            Ok(report) => report,
            Err(EventsSendError::Stopped { reason, report }) => {
                self.print(&report, &state)?;
                bail!(
                    "{reason}; {} line(s) unanswered: run the same command again to send them",
                    report.unanswered
                );
            }
            Err(e) => return Err(e.into()),
        };
        self.print(&report, &state)?;
        if report.rejected + report.failed > 0 {
            bail!(
                "{} event(s) rejected and {} failed after {} attempt(s) (the first are listed \
                 above by FILE:line; all are in --state {}); run the same command again to \
                 retry the failed ones",
                report.rejected,
                report.failed,
                self.max_attempts,
                state.display()
            );
        }
        Ok(())
    }

    fn config(&self) -> anyhow::Result<EventsSendConfig> {
        if !(1..=MAX_BATCH_EVENTS).contains(&self.batch) {
            bail!("--batch must be from 1 to {MAX_BATCH_EVENTS} (the API's limit)");
        }
        if self.concurrency == 0 {
            bail!("--concurrency must be at least 1");
        }
        let url = self.url.trim_end_matches('/').to_owned();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("--url must start with http:// or https://");
        }
        let Some(key) = self.key.clone().filter(|k| !k.is_empty()) else {
            bail!("the API's write key is needed: pass --key or set SENDTIME_KEY");
        };
        Ok(EventsSendConfig {
            base_url: url,
            api_key: Some(key),
            events_per_second: self.rate,
            batch_events: self.batch,
            max_batch_bytes: MAX_BATCH_BYTES,
            concurrency: self.concurrency,
            timeout: Duration::from_millis(self.timeout_ms.max(1)),
            max_attempts: self.max_attempts,
            backoff_base: Duration::from_millis(100),
            backoff_cap: Duration::from_secs(5),
        })
    }

    /// `FILE.send-state.jsonl`, beside the file, unless `--state` says otherwise.
    fn state_path(&self) -> PathBuf {
        self.state.clone().unwrap_or_else(|| {
            let mut name = self.file.clone().into_os_string();
            name.push(".send-state.jsonl");
            PathBuf::from(name)
        })
    }

    /// The summary: one JSON line on stdout; the counts and the lines to fix on stderr.
    fn print(&self, report: &Report, state: &Path) -> anyhow::Result<()> {
        let file = self.file.display();
        eprintln!(
            "{} line(s) of {file}: {} applied, {} unchanged, {} rejected, {} failed, {} blank, \
             {} unanswered ({} answered by an earlier run; state {})",
            report.lines,
            report.applied,
            report.unchanged,
            report.rejected,
            report.failed,
            report.blank,
            report.unanswered,
            report.answered_earlier,
            state.display()
        );
        eprintln!(
            "this run: {} event(s) sent in {} request(s), {} resent, {:.1} s ({:.0} events/s); \
             refusals: {:?}",
            report.sent,
            report.requests,
            report.resent,
            report.seconds,
            report.events_per_second,
            report.refusals
        );
        if report.state_torn_bytes > 0 {
            eprintln!(
                "--state {}: dropped a line cut by a crash ({} bytes); its event is sent again",
                state.display(),
                report.state_torn_bytes
            );
        }
        for (what, list) in [
            ("rejected", &report.first_rejected),
            ("failed", &report.first_failed),
        ] {
            for p in list {
                eprintln!("{file}:{}: {what}: {}: {}", p.line, p.code, p.message);
            }
        }
        println!(
            "{}",
            serde_json::to_string(report).context("writing the summary")?
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_events_per_second_with_or_without_the_unit() {
        // GIVEN rates as written WHEN parsed THEN numbers above zero are taken, others named
        assert_eq!(parse_rate("500/s"), Ok(500.0));
        assert_eq!(parse_rate("2.5"), Ok(2.5));
        for bad in ["0", "-1/s", "fast", "NaN"] {
            assert!(parse_rate(bad).unwrap_err().contains("events per second"));
        }
    }

    #[test]
    fn lines_are_counted_with_or_without_a_last_newline() {
        // GIVEN files of three lines, the last ended or not, and an empty one
        let dir = std::env::temp_dir().join(format!("sendtime-count-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cases: [(&str, u64); 3] = [("a\n\nc\n", 3), ("a\n\nc", 3), ("", 0)];
        for (i, (text, want)) in cases.into_iter().enumerate() {
            let path = dir.join(format!("{i}.jsonl"));
            std::fs::write(&path, text).unwrap();
            // WHEN counted THEN each line counts once
            assert_eq!(count_lines(&path).unwrap(), want, "{text:?}");
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn the_batch_flags_help_names_the_apis_limits_as_they_are() {
        // GIVEN the flag's help, which states the API's limits in words
        use clap::Args as _;
        let command = SendArgs::augment_args(clap::Command::new("send"));
        let help = command
            .get_arguments()
            .find(|a| a.get_id() == "batch")
            .and_then(|a| a.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        // WHEN compared with the constants THEN both numbers are the API's own
        assert!(
            help.contains(&format!("up to {MAX_BATCH_EVENTS}")),
            "{help}"
        );
        assert!(
            help.contains(&format!("{} KiB", MAX_BATCH_BYTES / 1024)),
            "{help}"
        );
    }
}
