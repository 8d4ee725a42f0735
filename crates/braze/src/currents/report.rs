//! What an import read, dropped (and why) and wrote: counted as it goes, printed at the end.

use sendtime_targeting::events::EventType;
use std::collections::BTreeMap;
use std::fmt;

/// At most this many bad records and unreadable files are listed by name (all are counted).
pub const EXAMPLES: usize = 10;

/// Counts of one import run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportReport {
    /// The source read.
    pub source: String,
    /// Per mapped Braze event type: files read and records in them.
    pub read: BTreeMap<String, (u64, u64)>,
    /// Files skipped because an earlier run read them (same key and ETag/size).
    pub already_read: u64,
    /// Files of event types this import does not map (not opened), per type.
    pub unmapped_files: BTreeMap<String, u64>,
    /// Files whose key has no `event_type=` segment (not opened), and a few of their keys.
    pub no_event_type: (u64, Vec<String>),
    /// Files that could not be read to their end (not marked read: a re-run retries them).
    pub unreadable: (u64, Vec<String>),
    /// Dropped: the same event id twice in this run.
    pub duplicates: u64,
    /// Dropped: event ids an earlier run already wrote.
    pub duplicates_earlier: u64,
    /// Dropped: Apple Mail Privacy Protection / Google machine opens.
    pub machine_opens: u64,
    /// Dropped: suspected bot clicks.
    pub bot_clicks: u64,
    /// Dropped: custom events other than `ecommerce.order_placed`, per name.
    pub other_custom_events: BTreeMap<String, u64>,
    /// Dropped: purchases in currencies without a known exponent, per code.
    pub unsupported_currency: BTreeMap<String, u64>,
    /// Dropped: unusable records, and a few of them as `location record N: why`.
    pub bad: (u64, Vec<String>),
    /// Sends kept without extras because their `message_extras` was not a JSON object.
    pub extras_unreadable: u64,
    /// New events written, per sendtime event type.
    pub written: BTreeMap<EventType, u64>,
    /// Events in the output after this run (earlier runs' included).
    pub total: u64,
    /// The first and last event time written in the whole output.
    pub span: Option<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)>,
    /// Sort runs spilled to temporary files.
    pub sort_runs: usize,
    /// The most bytes the sort buffer held.
    pub sort_peak_bytes: usize,
}

impl ImportReport {
    /// New events written.
    pub fn written_total(&self) -> u64 {
        self.written.values().sum()
    }

    /// Records read from mapped files.
    pub fn records_read(&self) -> u64 {
        self.read.values().map(|(_, r)| r).sum()
    }

    /// Every dropped record, whatever the reason.
    pub fn dropped_total(&self) -> u64 {
        self.duplicates
            + self.duplicates_earlier
            + self.machine_opens
            + self.bot_clicks
            + self.other_custom_events.values().sum::<u64>()
            + self.unsupported_currency.values().sum::<u64>()
            + self.bad.0
    }

    pub(crate) fn note(list: &mut (u64, Vec<String>), what: String) {
        list.0 += 1;
        if list.1.len() < EXAMPLES {
            list.1.push(what);
        }
    }
}

fn counts<K: fmt::Display>(map: &BTreeMap<K, u64>) -> String {
    map.iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn more(list: &(u64, Vec<String>)) -> String {
    let shown = list.1.len() as u64;
    if list.0 > shown {
        format!("\n    … and {} more", list.0 - shown)
    } else {
        String::new()
    }
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let files: u64 = self.read.values().map(|(n, _)| n).sum();
        writeln!(
            f,
            "read {files} file(s), {} record(s) from {} ({} file(s) already read by an earlier run, skipped)",
            self.records_read(),
            self.source,
            self.already_read
        )?;
        for (event_type, (n, records)) in &self.read {
            writeln!(f, "  {event_type}: {n} file(s), {records} record(s)")?;
        }
        if !self.unmapped_files.is_empty() {
            writeln!(
                f,
                "not read: {} file(s) of event types this import does not map ({})",
                self.unmapped_files.values().sum::<u64>(),
                counts(&self.unmapped_files)
            )?;
        }
        if self.no_event_type.0 > 0 {
            writeln!(
                f,
                "not read: {} file(s) without an event_type= segment in their key (e.g. {}){}",
                self.no_event_type.0,
                self.no_event_type.1.join(", "),
                more(&self.no_event_type)
            )?;
        }
        writeln!(f, "dropped {} record(s):", self.dropped_total())?;
        writeln!(
            f,
            "  duplicate event ids: {} in this run, {} already written by an earlier run",
            self.duplicates, self.duplicates_earlier
        )?;
        writeln!(f, "  machine opens (machine_open): {}", self.machine_opens)?;
        writeln!(
            f,
            "  suspected bot clicks (is_suspected_bot_click): {}",
            self.bot_clicks
        )?;
        writeln!(
            f,
            "  custom events other than ecommerce.order_placed: {}{}",
            self.other_custom_events.values().sum::<u64>(),
            if self.other_custom_events.is_empty() {
                String::new()
            } else {
                format!(" ({})", counts(&self.other_custom_events))
            }
        )?;
        writeln!(
            f,
            "  purchases in unsupported currencies: {}{}",
            self.unsupported_currency.values().sum::<u64>(),
            if self.unsupported_currency.is_empty() {
                String::new()
            } else {
                format!(" ({})", counts(&self.unsupported_currency))
            }
        )?;
        writeln!(f, "  bad records: {}", self.bad.0)?;
        for example in &self.bad.1 {
            writeln!(f, "    {example}")?;
        }
        if self.bad.0 > self.bad.1.len() as u64 {
            writeln!(f, "{}", more(&self.bad).trim_start_matches('\n'))?;
        }
        if self.extras_unreadable > 0 {
            writeln!(
                f,
                "kept {} send(s) without extras: their message_extras was not a JSON object",
                self.extras_unreadable
            )?;
        }
        if self.unreadable.0 > 0 {
            writeln!(
                f,
                "UNREADABLE: {} file(s) not read to their end (not marked read; a re-run retries them):",
                self.unreadable.0
            )?;
            for example in &self.unreadable.1 {
                writeln!(f, "    {example}")?;
            }
        }
        let written: BTreeMap<String, u64> = self
            .written
            .iter()
            .map(|(k, n)| (format!("{k:?}").to_lowercase(), *n))
            .collect();
        write!(
            f,
            "wrote {} new event(s) ({}); the output holds {} event(s) in time order",
            self.written_total(),
            counts(&written),
            self.total
        )?;
        if let Some((first, last)) = self.span {
            write!(f, " from {} to {}", first.to_rfc3339(), last.to_rfc3339())?;
        }
        write!(
            f,
            "\nsort: {} run(s) spilled to disk, buffer peak {:.1} MiB",
            self.sort_runs,
            self.sort_peak_bytes as f64 / (1024.0 * 1024.0)
        )
    }
}
