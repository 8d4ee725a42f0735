//! The Markdown report of a run, for people: what was run, the SLO verdict, calls by status
//! class, latency per block (from the intended send time), target against achieved rate, and
//! the chart when there is one.

use super::results::{Results, Verdict};
use crate::caller::StatusClass;
use crate::numbers::{decimals, group};
use crate::stats::Latency;
use std::fmt::Write as _;

/// Every status class, in the order the report lists them.
const CLASSES: [StatusClass; 8] = [
    StatusClass::Success,
    StatusClass::ClientError,
    StatusClass::Throttled,
    StatusClass::ServerError,
    StatusClass::Timeout,
    StatusClass::ConnectError,
    StatusClass::TransportError,
    StatusClass::InFlightCap,
];

/// The Markdown report of `results` judged as `verdict`; `chart_file` (a path relative to the
/// report, e.g. `chart.svg`) is embedded as an image when given.
pub fn markdown(results: &Results, verdict: &Verdict, chart_file: Option<&str>) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_report(&mut out, results, verdict, chart_file);
    out
}

/// Writes the whole report into `out`.
fn write_report(
    out: &mut String,
    results: &Results,
    verdict: &Verdict,
    chart_file: Option<&str>,
) -> std::fmt::Result {
    let run = &results.run;
    writeln!(out, "# Load test report\n")?;
    let failed = verdict.checks.iter().filter(|c| !c.ok).count();
    if verdict.pass {
        writeln!(
            out,
            "**PASS**: all {} checks of the SLO hold.\n",
            verdict.checks.len()
        )?;
    } else {
        writeln!(
            out,
            "**FAIL**: {failed} of {} checks of the SLO fail.\n",
            verdict.checks.len()
        )?;
    }

    writeln!(out, "## What was run\n")?;
    writeln!(out, "| | |\n|---|---|")?;
    let mut row = |k: &str, v: String| writeln!(out, "| {k} | {} |", cell(&v));
    row("base URL", format!("`{}`", run.base_url))?;
    row("shape", run.shape.clone())?;
    row("scale", scale_text(run.scale))?;
    row("shards", run.shards.clone())?;
    row("blocks", run.blocks.join(", "))?;
    row("scheduled calls", group(run.scheduled_calls as f64))?;
    row("schedule", seconds(run.schedule_seconds))?;
    row("elapsed", seconds(run.elapsed_seconds))?;
    row(
        "in-flight cap",
        format!("{} calls", group(run.max_in_flight as f64)),
    )?;
    row("timeout", format!("{} ms", group(run.timeout_ms as f64)))?;
    row("started", run.started_at.clone())?;

    writeln!(out, "\n## SLO verdict\n")?;
    writeln!(out, "| | check | measured |\n|---|---|---|")?;
    for c in &verdict.checks {
        writeln!(
            out,
            "| {} | {} | {} |",
            if c.ok { "ok" } else { "**FAIL**" },
            cell(&c.name),
            cell(&c.detail)
        )?;
    }

    writeln!(out, "\n## Calls by status class\n")?;
    writeln!(out, "| class | calls | share |\n|---|---:|---:|")?;
    let total = results.total();
    for class in CLASSES {
        let n = results.count(class);
        if n > 0 {
            writeln!(
                out,
                "| {} | {} | {} |",
                class.as_str(),
                group(n as f64),
                share(n, total)
            )?;
        }
    }
    writeln!(
        out,
        "| **total** | **{}** | {} |",
        group(total as f64),
        if total > 0 { "100 %" } else { "–" }
    )?;

    writeln!(out, "\n## Latency per block (ms)\n")?;
    writeln!(
        out,
        "Milliseconds from each call's **intended send time** (its place in the schedule), not \
         from when it left: coordinated-omission corrected, so a server's queue, or the \
         generator falling behind, shows up here instead of hiding. Calls over the in-flight \
         cap were never sent and have no latency; they are counted above.\n"
    )?;
    writeln!(
        out,
        "| block | calls | p50 | p90 | p99 | p99.9 | max |\n|---|---:|---:|---:|---:|---:|---:|"
    )?;
    let mut blocks: Vec<&String> = results.by_block.keys().collect();
    for b in &run.blocks {
        if !blocks.contains(&b) {
            blocks.push(b);
        }
    }
    for block in &blocks {
        latency_row(out, &cell(block), &results.block_latency(block))?;
    }
    if blocks.len() != 1 {
        latency_row(out, "**all blocks**", &results.latency())?;
    }

    writeln!(out, "\n## Rate\n")?;
    let (target, achieved) = (results.target_rate(), results.achieved_rate());
    writeln!(out, "| | calls/s |\n|---|---:|")?;
    writeln!(
        out,
        "| target (scheduled calls over the schedule) | {} |",
        rate(target)
    )?;
    writeln!(
        out,
        "| achieved (answered calls over the elapsed time) | {} |",
        rate(achieved)
    )?;
    if target > 0.0 {
        writeln!(
            out,
            "| achieved / target | {} |",
            format_args!("{:.1} %", achieved / target * 100.0)
        )?;
    }

    if let Some(file) = chart_file {
        writeln!(out, "\n## Timeline\n")?;
        writeln!(
            out,
            "Per second since the start: latency from the intended send time (p50, p99, max) \
             above, calls scheduled, sent and answered below.\n"
        )?;
        writeln!(out, "![latency and throughput per second]({file})")?;
    }
    Ok(())
}

/// One row of the latency table.
fn latency_row(out: &mut String, name: &str, l: &Latency) -> std::fmt::Result {
    if l.count() == 0 {
        return writeln!(out, "| {name} | 0 | – | – | – | – | – |");
    }
    writeln!(
        out,
        "| {name} | {} | {} | {} | {} | {} | {} |",
        group(l.count() as f64),
        ms(l.quantile_ms(0.5)),
        ms(l.quantile_ms(0.9)),
        ms(l.quantile_ms(0.99)),
        ms(l.quantile_ms(0.999)),
        ms(l.max_ms())
    )
}

/// What the scale factor did to the shape.
fn scale_text(scale: f64) -> String {
    if !scale.is_finite() || scale <= 0.0 || (scale - 1.0).abs() < 1e-9 {
        return "×1 (the shape as given)".into();
    }
    format!(
        "×{scale}: every rate of the shape multiplied by {scale}, on the same timing (a \
         campaign's minutes stay minutes and it reaches that share of its audience)"
    )
}

/// Seconds, with minutes and hours beside when long.
fn seconds(s: f64) -> String {
    let base = format!("{} s", decimals(s, 1));
    if s < 60.0 || !s.is_finite() {
        return base;
    }
    let total = s.round() as u64;
    let (h, m, sec) = (total / 3600, total / 60 % 60, total % 60);
    if h > 0 {
        format!("{base} ({h} h {m} min {sec} s)")
    } else {
        format!("{base} ({m} min {sec} s)")
    }
}

/// Milliseconds: 2 decimals below 10 ms, 1 above.
fn ms(x: f64) -> String {
    decimals(x, if x < 10.0 { 2 } else { 1 })
}

/// Calls per second: 1 decimal below 1,000, whole above.
fn rate(x: f64) -> String {
    decimals(x, if x < 1000.0 { 1 } else { 0 })
}

/// `n` as a percentage of `total`, 2 decimals.
fn share(n: u64, total: u64) -> String {
    if total == 0 {
        return "–".into();
    }
    format!("{:.2} %", n as f64 / total as f64 * 100.0)
}

/// Text safe in a table cell: pipes escaped, line breaks as spaces.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadtest::results::{Cell, RunInfo, Slo};
    use std::time::Duration;

    fn cell_of(ms: &[u64], count: u64) -> Cell {
        let mut c = Cell {
            count,
            ..Cell::default()
        };
        for m in ms {
            c.latency.record(Duration::from_millis(*m));
        }
        c
    }

    fn results() -> Results {
        let mut r = Results {
            run: RunInfo {
                base_url: "https://api.example.com".into(),
                shape: "campaign: 1,000,000 recipients | push".into(),
                scale: 0.5,
                shards: "1,2/2".into(),
                blocks: vec!["cart".into(), "dormancy".into()],
                scheduled_calls: 1_203,
                schedule_seconds: 100.0,
                elapsed_seconds: 100.5,
                max_in_flight: 2_000,
                timeout_ms: 5_000,
                started_at: "2026-11-22T17:00:00Z".into(),
            },
            ..Results::default()
        };
        // cart: 1,000 successes at 1..=1000 ms, 3 server errors at 40 ms
        let cart = r.by_block.entry("cart".into()).or_default();
        let ms: Vec<u64> = (1..=1000).collect();
        cart.insert(StatusClass::Success, cell_of(&ms, 1_000));
        cart.insert(StatusClass::ServerError, cell_of(&[40, 40, 40], 3));
        // dormancy: 150 successes at 5 ms, 50 throttled at 2 ms
        let dormancy = r.by_block.entry("dormancy".into()).or_default();
        dormancy.insert(StatusClass::Success, cell_of(&[5; 150], 150));
        dormancy.insert(StatusClass::Throttled, cell_of(&[2; 50], 50));
        r
    }

    #[test]
    fn the_report_holds_the_run_the_verdict_the_classes_and_the_percentiles() {
        let r = results();
        let verdict = Slo::default().judge(&r);
        let md = markdown(&r, &verdict, Some("chart.svg"));
        assert!(md.starts_with("# Load test report"));
        assert!(md.contains("**FAIL**: 3 of 4 checks of the SLO fail."));
        // what was run
        for row in [
            "| base URL | `https://api.example.com` |",
            "| shape | campaign: 1,000,000 recipients \\| push |",
            "| scale | ×0.5: every rate of the shape multiplied by 0.5, on the same timing (a \
             campaign's minutes stay minutes and it reaches that share of its audience) |",
            "| shards | 1,2/2 |",
            "| blocks | cart, dormancy |",
            "| scheduled calls | 1,203 |",
            "| schedule | 100.0 s (1 min 40 s) |",
            "| elapsed | 100.5 s (1 min 41 s) |",
            "| in-flight cap | 2,000 calls |",
            "| timeout | 5,000 ms |",
            "| started | 2026-11-22T17:00:00Z |",
        ] {
            assert!(md.contains(row), "no {row:?}");
        }
        // the verdict, one row per check
        assert!(md.contains("| **FAIL** | p99 < 500 ms (from the intended send time) | p99 "));
        assert!(md.contains("connection errors and calls over the in-flight cap | 3 |"));
        assert!(md.contains("| **FAIL** | ≤ 0 429 | 50 |"));
        assert!(
            md.contains("| ok | achieved rate within 2% of the target | 12.0 of 12.0 calls/s |")
        );
        // classes
        assert!(md.contains("| 2xx | 1,150 | 95.59 % |"));
        assert!(md.contains("| 429 | 50 | 4.16 % |"));
        assert!(md.contains("| 5xx | 3 | 0.25 % |"));
        assert!(md.contains("| **total** | **1,203** | 100 % |"));
        assert!(
            !md.contains("| in_flight_cap |"),
            "classes without calls are left out"
        );
        // latency: cart is 1..=1000 ms plus three at 40 ms (HDR, 0.1 % precision)
        assert!(md.contains("coordinated-omission corrected"));
        let cart = md.lines().find(|l| l.starts_with("| cart |")).unwrap();
        let cols: Vec<&str> = cart.split('|').map(str::trim).collect();
        assert_eq!(cols[2], "1,003");
        for (col, want) in [(3, 499.0), (4, 900.0), (7, 1000.0)] {
            let got: f64 = cols[col].replace(',', "").parse().unwrap();
            assert!((got - want).abs() <= 2.0, "column {col}: {got} vs {want}");
        }
        assert!(md.contains("| dormancy | 200 | 5.00 | 5.00 | 5.00 | 5.00 | 5.00 |"));
        assert!(md.contains("| **all blocks** | 1,203 |"));
        // rate and chart
        assert!(md.contains("| target (scheduled calls over the schedule) | 12.0 |"));
        assert!(md.contains("| achieved / target | 99.5 % |"));
        assert!(md.contains("![latency and throughput per second](chart.svg)"));
    }

    #[test]
    fn an_empty_run_reports_without_dividing_by_zero() {
        let r = Results::default();
        let verdict = Slo::default().judge(&r);
        let md = markdown(&r, &verdict, None);
        assert!(md.contains("# Load test report"));
        assert!(md.contains("| scale | ×1 (the shape as given) |"));
        assert!(md.contains("| **total** | **0** | – |"));
        assert!(md.contains("| target (scheduled calls over the schedule) | 0.0 |"));
        assert!(!md.contains("achieved / target"));
        assert!(!md.contains("NaN") && !md.contains("inf"));
        assert!(!md.contains("!["));
    }

    #[test]
    fn a_passing_run_says_so() {
        let mut r = results();
        r.by_block.remove("dormancy");
        r.by_block
            .get_mut("cart")
            .unwrap()
            .remove(&StatusClass::ServerError);
        r.by_block
            .get_mut("cart")
            .unwrap()
            .insert(StatusClass::Success, cell_of(&[3; 1_000], 1_000));
        r.run.scheduled_calls = 1_000;
        r.run.blocks = vec!["cart".into()];
        let md = markdown(&r, &Slo::default().judge(&r), None);
        assert!(
            md.contains("**PASS**: all 4 checks of the SLO hold."),
            "{md}"
        );
        assert!(md.contains("| ok | p99 < 500 ms (from the intended send time) | p99 3.0 ms |"));
        assert!(md.contains("| 2xx | 1,000 | 100.00 % |"));
        assert!(!md.contains("all blocks"));
    }

    #[test]
    fn numbers_are_for_people() {
        assert_eq!(decimals(1_234_567.891, 2), "1,234,567.89");
        assert_eq!(decimals(-1_234.5, 1), "-1,234.5");
        assert_eq!(decimals(-0.001, 1), "0.0");
        assert_eq!(ms(3.456), "3.46");
        assert_eq!(ms(12_345.67), "12,345.7");
        assert_eq!(rate(12_345.6), "12,346");
        assert_eq!(seconds(3_725.0), "3,725.0 s (1 h 2 min 5 s)");
        assert_eq!(share(1, 3), "33.33 %");
        assert_eq!(scale_text(2.0).split(':').next(), Some("×2"));
        assert!(scale_text(2.0).contains("on the same timing"));
    }
}
