//! What a load test measured, as data: counts and latency histograms per block and status
//! class, a per-second timeline, and what was asked for. Written as JSON (`results.json`),
//! merged exactly across shards (counts add, histograms add), and judged against the SLO.

use crate::caller::StatusClass;
use crate::stats::Latency;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Version of the results file format.
pub const FORMAT_VERSION: u32 = 1;

/// One (block, class) cell: how many calls, and their latency from the intended send time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// Calls in this cell.
    pub count: u64,
    /// Their latency, measured from the intended send time (calls never sent, at the
    /// in-flight cap, have none).
    pub latency: Latency,
}

/// One second of the run, by offset from its start.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Second {
    /// Calls whose intended send time fell in this second.
    pub scheduled: u64,
    /// Of those, calls actually sent (the rest hit the in-flight cap).
    pub sent: u64,
    /// Calls whose answer (or failure) came in this second.
    pub answered: u64,
    /// Latency of the calls scheduled in this second, from their intended send time.
    pub latency: Latency,
}

/// What was run: enough to read the report without the command line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The API's base URL (no key, no query string).
    pub base_url: String,
    /// The load shape in words (`campaign: 1,000,000 recipients …` or the plan's text).
    pub shape: String,
    /// The rate factor applied to the shape (1 = as given).
    pub scale: f64,
    /// Which shards these results hold (`1/1` for a whole run, `1,2/2` once merged).
    pub shards: String,
    /// Blocks called.
    pub blocks: Vec<String>,
    /// Calls the schedule held for this run (this shard's share, after `--duration`).
    pub scheduled_calls: u64,
    /// Seconds from the first to the last intended send time.
    pub schedule_seconds: f64,
    /// Seconds from the start to the last answer.
    pub elapsed_seconds: f64,
    /// The cap on calls in flight.
    pub max_in_flight: u64,
    /// Per-call timeout, ms.
    pub timeout_ms: u64,
    /// When the run started (RFC 3339).
    pub started_at: String,
}

/// Everything a load test measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// [`FORMAT_VERSION`].
    pub version: u32,
    /// What was run.
    pub run: RunInfo,
    /// Cells by block name, then by status class.
    pub by_block: BTreeMap<String, BTreeMap<StatusClass, Cell>>,
    /// The per-second timeline.
    pub timeline: Vec<Second>,
}

impl Results {
    /// Calls of `class`, all blocks together.
    pub fn count(&self, class: StatusClass) -> u64 {
        self.by_block
            .values()
            .filter_map(|cells| cells.get(&class))
            .map(|c| c.count)
            .sum()
    }

    /// Calls of every class (sent or not).
    pub fn total(&self) -> u64 {
        self.by_block
            .values()
            .flat_map(|cells| cells.values())
            .map(|c| c.count)
            .sum()
    }

    /// Latency of every call that got an answer or timed out, all blocks and classes.
    pub fn latency(&self) -> Latency {
        let mut all = Latency::new();
        for cell in self.by_block.values().flat_map(|c| c.values()) {
            all.merge(&cell.latency);
        }
        all
    }

    /// Latency of one block's calls, every class.
    pub fn block_latency(&self, block: &str) -> Latency {
        let mut all = Latency::new();
        for cell in self
            .by_block
            .get(block)
            .into_iter()
            .flat_map(|c| c.values())
        {
            all.merge(&cell.latency);
        }
        all
    }

    /// The schedule's rate: scheduled calls per second of schedule.
    pub fn target_rate(&self) -> f64 {
        self.run.scheduled_calls as f64 / self.run.schedule_seconds.max(1.0)
    }

    /// Calls answered (any HTTP status) per second, first intended send to last answer.
    pub fn achieved_rate(&self) -> f64 {
        let answered = self.total()
            - self.count(StatusClass::InFlightCap)
            - self.count(StatusClass::ConnectError);
        answered as f64
            / self
                .run
                .elapsed_seconds
                .max(self.run.schedule_seconds)
                .max(1.0)
    }

    /// Adds `other` (another shard of the same plan): counts and histograms add exactly, the
    /// timelines add second by second, the schedule's size adds and its span is the longest.
    pub fn merge(&mut self, other: &Results) {
        for (block, cells) in &other.by_block {
            let mine = self.by_block.entry(block.clone()).or_default();
            for (class, cell) in cells {
                let m = mine.entry(*class).or_default();
                m.count += cell.count;
                m.latency.merge(&cell.latency);
            }
        }
        if self.timeline.len() < other.timeline.len() {
            self.timeline
                .resize_with(other.timeline.len(), Second::default);
        }
        for (mine, theirs) in self.timeline.iter_mut().zip(&other.timeline) {
            mine.scheduled += theirs.scheduled;
            mine.sent += theirs.sent;
            mine.answered += theirs.answered;
            mine.latency.merge(&theirs.latency);
        }
        let run = &mut self.run;
        run.scheduled_calls += other.run.scheduled_calls;
        run.schedule_seconds = run.schedule_seconds.max(other.run.schedule_seconds);
        run.elapsed_seconds = run.elapsed_seconds.max(other.run.elapsed_seconds);
        run.max_in_flight += other.run.max_in_flight;
        for block in &other.run.blocks {
            if !run.blocks.contains(block) {
                run.blocks.push(block.clone());
            }
        }
        run.shards = merge_shards(&run.shards, &other.run.shards);
    }
}

/// `1/2` + `2/2` → `1,2/2`.
fn merge_shards(a: &str, b: &str) -> String {
    let parts = |s: &str| -> (Vec<String>, String) {
        match s.split_once('/') {
            Some((i, n)) => (i.split(',').map(str::to_owned).collect(), n.to_owned()),
            None => (vec![s.to_owned()], String::new()),
        }
    };
    let (mut ia, na) = parts(a);
    let (ib, _) = parts(b);
    for i in ib {
        if !ia.contains(&i) {
            ia.push(i);
        }
    }
    ia.sort_by_key(|i| i.parse::<u32>().unwrap_or(u32::MAX));
    format!("{}/{na}", ia.join(","))
}

/// The service-level objective a run is judged by; each bound is a flag.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slo {
    /// p99 latency (from the intended send time) must be below this, ms.
    pub p99_ms: f64,
    /// At most this many 5xx, timeouts, connection and transport errors.
    pub max_errors: u64,
    /// At most this many 429s.
    pub max_throttled: u64,
    /// The achieved rate must be at least (1 − this) × the target rate.
    pub rate_tolerance: f64,
}

impl Default for Slo {
    fn default() -> Self {
        Self {
            p99_ms: 500.0,
            max_errors: 0,
            max_throttled: 0,
            rate_tolerance: 0.02,
        }
    }
}

/// One line of the verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// What is checked.
    pub name: String,
    /// Whether it holds.
    pub ok: bool,
    /// The measured value against the bound.
    pub detail: String,
}

/// The verdict: every check, and whether all hold (the exit code).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// Each check.
    pub checks: Vec<Check>,
    /// All checks hold.
    pub pass: bool,
}

impl Slo {
    /// Judges `results`.
    pub fn judge(&self, results: &Results) -> Verdict {
        let p99 = results.latency().quantile_ms(0.99);
        let errors = [
            StatusClass::ServerError,
            StatusClass::Timeout,
            StatusClass::ConnectError,
            StatusClass::TransportError,
            StatusClass::InFlightCap,
        ]
        .iter()
        .map(|c| results.count(*c))
        .sum::<u64>();
        let throttled = results.count(StatusClass::Throttled);
        let (target, achieved) = (results.target_rate(), results.achieved_rate());
        let checks = vec![
            Check {
                name: format!("p99 < {} ms (from the intended send time)", self.p99_ms),
                ok: p99 < self.p99_ms,
                detail: format!("p99 {p99:.1} ms"),
            },
            Check {
                name: format!(
                    "≤ {} 5xx, timeouts, connection errors and calls over the in-flight cap",
                    self.max_errors
                ),
                ok: errors <= self.max_errors,
                detail: format!("{errors}"),
            },
            Check {
                name: format!("≤ {} 429", self.max_throttled),
                ok: throttled <= self.max_throttled,
                detail: format!("{throttled}"),
            },
            Check {
                name: format!(
                    "achieved rate within {:.0}% of the target",
                    self.rate_tolerance * 100.0
                ),
                ok: achieved >= target * (1.0 - self.rate_tolerance),
                detail: format!("{achieved:.1} of {target:.1} calls/s"),
            },
        ];
        let pass = checks.iter().all(|c| c.ok);
        Verdict { checks, pass }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn shard(ms: &[u64], shards: &str) -> Results {
        let mut r = Results {
            version: FORMAT_VERSION,
            run: RunInfo {
                shards: shards.into(),
                scheduled_calls: ms.len() as u64,
                schedule_seconds: 10.0,
                elapsed_seconds: 10.2,
                blocks: vec!["cart".into()],
                ..RunInfo::default()
            },
            ..Results::default()
        };
        let cell = r
            .by_block
            .entry("cart".into())
            .or_default()
            .entry(StatusClass::Success)
            .or_default();
        let mut second = Second::default();
        for m in ms {
            cell.count += 1;
            cell.latency.record(Duration::from_millis(*m));
            second.scheduled += 1;
            second.sent += 1;
            second.answered += 1;
            second.latency.record(Duration::from_millis(*m));
        }
        r.timeline.push(second);
        r
    }

    #[test]
    fn merged_shards_add_counts_and_histograms_exactly() {
        let a: Vec<u64> = (1..=500).map(|i| i * 3 % 700 + 1).collect();
        let b: Vec<u64> = (1..=500).map(|i| i * 7 % 900 + 1).collect();
        let mut merged = shard(&a, "1/2");
        merged.merge(&shard(&b, "2/2"));
        let all: Vec<u64> = a.iter().chain(&b).copied().collect();
        let whole = shard(&all, "1/1");
        assert_eq!(merged.total(), whole.total());
        assert_eq!(merged.run.scheduled_calls, 1_000);
        assert_eq!(merged.run.shards, "1,2/2");
        assert_eq!(merged.timeline[0], whole.timeline[0]);
        for q in [0.5, 0.9, 0.99] {
            assert_eq!(
                merged.latency().quantile_ms(q),
                whole.latency().quantile_ms(q)
            );
        }
        // and through the file format
        let json = serde_json::to_string(&merged).unwrap();
        assert_eq!(serde_json::from_str::<Results>(&json).unwrap(), merged);
    }

    #[test]
    fn the_verdict_checks_each_bound() {
        let r = shard(&[10; 100], "1/1");
        let v = Slo::default().judge(&r);
        assert!(v.pass, "{v:?}");
        let slow = shard(&[900; 100], "1/1");
        let v = Slo::default().judge(&slow);
        assert!(!v.pass && !v.checks[0].ok && v.checks[1].ok);
        let mut errors = shard(&[10; 100], "1/1");
        errors.by_block.get_mut("cart").unwrap().insert(
            StatusClass::ServerError,
            Cell {
                count: 1,
                latency: Latency::new(),
            },
        );
        assert!(!Slo::default().judge(&errors).checks[1].ok);
        let lenient = Slo {
            max_errors: 1,
            ..Slo::default()
        };
        assert!(lenient.judge(&errors).checks[1].ok);
    }
}
