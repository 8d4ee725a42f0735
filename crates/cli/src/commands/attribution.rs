//! `sendtime events attribution`: Braze sends, by what their `message_extras` say they
//! showed, joined with the opens, clicks and purchases that followed; written as Markdown
//! (stdout unless `--out-md`), JSON and an SVG chart. Streamed: memory holds one window of
//! sends, not the file.

use anyhow::{bail, Context};
use clap::Args;
use sendtime_braze::attribution::{
    attribute, markdown, svg, Credit, Report, Settings, DEFAULT_WINDOW_HOURS,
};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Progress goes to stderr every this many events.
const PROGRESS_EVERY: u64 = 1_000_000;

/// Flags of `sendtime events attribution`.
#[derive(Debug, Args)]
pub struct AttributionArgs {
    /// Engagement events, JSON Lines in time order (`events import --from currents` writes
    /// them; sends carry the templates' `message_extras` as `extras`).
    #[arg(long)]
    pub events: PathBuf,
    /// Write the report as Markdown here (default: print it on stdout).
    #[arg(long)]
    pub out_md: Option<PathBuf>,
    /// Write the report as JSON here (stable field names, for tools).
    #[arg(long)]
    pub out_json: Option<PathBuf>,
    /// Write the chart here (SVG): click rate by position and item source, rates by stage.
    #[arg(long)]
    pub chart: Option<PathBuf>,
    /// Hours after a send during which its opens, clicks and purchases count, 1–720
    /// (default: Braze's default conversion deadline, 3 days).
    #[arg(long, default_value_t = DEFAULT_WINDOW_HOURS)]
    pub window_hours: u32,
    /// What a purchase must follow to convert a send: `click` (a click on it) or `open` (an
    /// open of it or a click).
    #[arg(long, default_value = "click")]
    pub credit: Credit,
}

impl AttributionArgs {
    /// Reads the events once, then writes the report where the flags say.
    pub fn run(self) -> anyhow::Result<()> {
        let settings = Settings {
            window_hours: self.window_hours,
            credit: self.credit,
        };
        settings.check().map_err(anyhow::Error::msg)?;
        let started = Instant::now();
        let report = self.read(settings)?;
        self.write(&report)?;
        summary(&report, started.elapsed().as_secs_f64());
        Ok(())
    }

    /// The report of `--events`; an unusable line is named by its number.
    fn read(&self, settings: Settings) -> anyhow::Result<Report> {
        let file = File::open(&self.events)
            .with_context(|| format!("cannot open --events {}", self.events.display()))?;
        let input = BufReader::with_capacity(1 << 20, file);
        let progress = |events: u64, live: u64| {
            eprintln!("read {events} events; {live} sends in the window");
        };
        attribute(input, settings, PROGRESS_EVERY, progress)
            .with_context(|| format!("in --events {}", self.events.display()))
    }

    /// Markdown (file or stdout), JSON and chart.
    fn write(&self, report: &Report) -> anyhow::Result<()> {
        let name = self.events.file_name().map_or_else(
            || self.events.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let md = markdown(report, &name);
        match &self.out_md {
            Some(path) => write_file(path, "--out-md", md.as_bytes())?,
            None => print!("{md}"),
        }
        if let Some(path) = &self.out_json {
            let json = serde_json::to_string_pretty(report)? + "\n";
            write_file(path, "--out-json", json.as_bytes())?;
        }
        if let Some(path) = &self.chart {
            if path.extension().is_some_and(|e| e != "svg") {
                bail!(
                    "--chart {} must end in .svg (the chart is SVG)",
                    path.display()
                );
            }
            let chart = svg(report)?;
            write_file(path, "--chart", chart.as_bytes())?;
        }
        Ok(())
    }
}

fn write_file(path: &Path, flag: &str, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {flag} {}", path.display()))
}

/// One line on stderr: what was read and what it came to.
fn summary(report: &Report, seconds: f64) {
    let s = &report.sends;
    let t = &report.sendtime;
    let u = &report.unattributed;
    eprintln!(
        "attributed {} events in {seconds:.1} s: {} sends ({} with sendtime extras, {} other), {} unique opens, {} unique clicks, {} conversions; unattributed: {} opens, {} clicks, {} purchases; at most {} sends held at once",
        report.input.events,
        s.total,
        s.with_sendtime_extras,
        s.without_sendtime_extras,
        t.unique_opens,
        t.unique_clicks,
        t.conversions,
        u.opens,
        u.clicks,
        u.purchases,
        report.input.peak_sends_in_window
    );
}
