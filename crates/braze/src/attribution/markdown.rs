//! The report as Markdown for a CRM manager: one table per breakdown, every rate written as
//! `count / denominator (percent)`, revenue per currency in its own money format.

use super::report::{ItemRow, Report, Revenue, Row};
use super::{Credit, NO_CURRENCY};
use sendtime_domain::money::display_price;
use std::fmt::Write;

/// The report as a Markdown document titled after `source` (the events file's name).
pub fn markdown(report: &Report, source: &str) -> String {
    let mut out = String::new();
    header(&mut out, report, source);
    sends(&mut out, report);
    breakdowns(&mut out, report);
    positions(&mut out, report);
    item_sources(&mut out, report);
    unattributed(&mut out, report);
    out
}

/// `n / d (p %)`, or `n / 0` when nothing to divide by.
fn ratio(n: u64, d: u64) -> String {
    if d == 0 {
        return format!("{n} / 0");
    }
    format!("{n} / {d} ({:.1} %)", 100.0 * n as f64 / d as f64)
}

/// Revenue per currency, `–` when none.
fn money(revenue: &Revenue) -> String {
    if revenue.is_empty() {
        return "–".into();
    }
    revenue
        .iter()
        .map(|(currency, minor)| {
            if currency == NO_CURRENCY {
                format!("{minor} (no currency)")
            } else {
                display_price(*minor, currency)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A table cell: pipes escaped, line breaks flattened, `label` when empty.
fn cell(text: Option<&str>, label: &str) -> String {
    match text {
        Some(t) if !t.is_empty() => format!("`{}`", t.replace('|', "\\|").replace('\n', " ")),
        _ => label.to_owned(),
    }
}

fn header(out: &mut String, report: &Report, source: &str) {
    let input = &report.input;
    let _ = writeln!(out, "# Attribution of sends to what they showed\n");
    let span = match (input.first, input.last) {
        (Some(first), Some(last)) => format!(
            " from {} to {}",
            first.format("%Y-%m-%d %H:%M UTC"),
            last.format("%Y-%m-%d %H:%M UTC")
        ),
        _ => String::new(),
    };
    let types: Vec<String> = input
        .by_type
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(t, n)| format!("{t} {n}"))
        .collect();
    let _ = writeln!(
        out,
        "Events: {} read from `{}`{span} ({}).\n",
        input.events,
        source.replace('`', "'"),
        if types.is_empty() {
            "none".into()
        } else {
            types.join(", ")
        }
    );
    let after = match report.settings.conversion_credit {
        Credit::Click => "a click on it",
        Credit::Open => "an open of it or a click on it",
    };
    let _ = writeln!(
        out,
        "How sends are credited: an open or click belongs to the user's send with the same \
         `dispatch_id`, else to the user's latest earlier send of the same campaign. A purchase \
         converts a send when it comes within {} h of the send and after {after} (Braze's \
         default conversion deadline is 3 days); one purchase credits one send, the latest \
         eligible, and a send converts at most once. Rates are written as count / denominator.\n",
        report.settings.window_hours
    );
}

fn sends(out: &mut String, report: &Report) {
    let s = &report.sends;
    let t = &report.sendtime;
    let _ = writeln!(out, "## Sends\n");
    let _ = writeln!(out, "| sends | count / of |\n|---|---:|");
    let _ = writeln!(out, "| all | {} |", s.total);
    let _ = writeln!(
        out,
        "| with sendtime extras | {} |",
        ratio(s.with_sendtime_extras, s.total)
    );
    let _ = writeln!(
        out,
        "| without sendtime extras (other campaigns, reported apart) | {} |",
        ratio(s.without_sendtime_extras, s.total)
    );
    let _ = writeln!(
        out,
        "| sendtime sends with a fallback: at least one item from the global popular list | {} |",
        ratio(t.fallback_sends, t.sends)
    );
    let _ = writeln!(
        out,
        "| sendtime sends whose whole block came from the popular list (`sendtime_source` popular) | {} |",
        ratio(t.popular_block_sends, t.sends)
    );
    let _ = writeln!(
        out,
        "| sendtime sends with a degraded answer (store unreadable, fallback content) | {} |",
        ratio(t.degraded_sends, t.sends)
    );
    if !s.extras_problems.is_empty() {
        let _ = writeln!(
            out,
            "\nProblems in sends' extras (the sends are still counted):\n"
        );
        for (problem, n) in &s.extras_problems {
            let _ = writeln!(out, "- {problem}: {n} send(s)");
        }
    }
    out.push('\n');
}

const ROW_HEADER: &str = "sends | unique opens / sends | clicks | unique clicks / sends | conversions / sends | revenue | fallback / sends | degraded / sends |";
const ROW_RULE: &str = "---:|---:|---:|---:|---:|---|---:|---:|";

fn row_cells(r: &Row) -> String {
    format!(
        "{} | {} | {} |",
        other_cells(r),
        ratio(r.fallback_sends, r.sends),
        ratio(r.degraded_sends, r.sends)
    )
}

/// The cells of a row of sends that carry no extras: fallback and degraded do not apply.
fn other_cells(r: &Row) -> String {
    format!(
        "{} | {} | {} | {} | {} | {}",
        r.sends,
        ratio(r.unique_opens, r.sends),
        r.clicks,
        ratio(r.unique_clicks, r.sends),
        ratio(r.conversions, r.sends),
        money(&r.revenue)
    )
}

fn breakdowns(out: &mut String, report: &Report) {
    let _ = writeln!(out, "## By block\n");
    let _ = writeln!(out, "| block | {ROW_HEADER}\n|---|{ROW_RULE}");
    for b in &report.by_block {
        let name = cell(b.block.as_deref(), "(no block recorded)");
        let _ = writeln!(out, "| {name} | {}", row_cells(&b.row));
    }
    let _ = writeln!(
        out,
        "| **all sendtime sends** | {}",
        row_cells(&report.sendtime)
    );
    let _ = writeln!(
        out,
        "| other campaigns (no sendtime extras) | {} | – | – |\n",
        other_cells(&report.other_campaigns)
    );
    let _ = writeln!(out, "## By stage\n");
    let _ = writeln!(out, "| block | stage | {ROW_HEADER}\n|---|---|{ROW_RULE}");
    for s in &report.by_stage {
        let block = cell(s.block.as_deref(), "(no block recorded)");
        let stage = cell(s.stage.as_deref(), "(no stage)");
        let _ = writeln!(out, "| {block} | {stage} | {}", row_cells(&s.row));
    }
    let _ = writeln!(out, "\n## By answer source (`sendtime_source`)\n");
    let _ = writeln!(out, "| source | {ROW_HEADER}\n|---|{ROW_RULE}");
    for s in &report.by_source {
        let source = cell(s.source.as_deref(), "(no items)");
        let _ = writeln!(out, "| {source} | {}", row_cells(&s.row));
    }
    out.push('\n');
}

/// `shown | opened | clicks | unique clicks / shown | conversions | revenue`
fn item_cells(i: &ItemRow) -> String {
    let dash = || "–".to_owned();
    format!(
        "{} | {} | {} | {} | {} | {} |",
        i.shown.map_or_else(dash, |n| n.to_string()),
        i.opened.map_or_else(dash, |n| n.to_string()),
        i.clicks,
        match i.shown {
            Some(shown) => ratio(i.unique_clicks, shown),
            None => i.unique_clicks.to_string(),
        },
        i.conversions,
        money(&i.revenue)
    )
}

const ITEM_HEADER: &str = "sends showing an item | of them opened | clicks | unique clicks / sends showing | conversions (last click) | revenue (last click) |";
const ITEM_RULE: &str = "---:|---:|---:|---:|---:|---|";

fn positions(out: &mut String, report: &Report) {
    let _ = writeln!(out, "## By position\n");
    let _ = writeln!(
        out,
        "A click credits the position in its URL's `sendtime_pos` and the source shown there \
         (`sendtime_sources`); a conversion credits the position of its send's last click \
         before the purchase. \"unknown\": clicks without a position, and conversions whose \
         last click had none.\n"
    );
    let _ = writeln!(
        out,
        "| position | {ITEM_HEADER} sources shown |\n|---|{ITEM_RULE}---|"
    );
    for p in &report.by_position {
        let position = p
            .position
            .map_or_else(|| "unknown".to_owned(), |n| n.to_string());
        let shown: Vec<String> = p
            .by_source
            .iter()
            .map(|s| {
                let name = cell(s.source.as_deref(), "(not recorded)");
                format!("{name} {}", s.items.shown.unwrap_or(0))
            })
            .collect();
        let shown = if shown.is_empty() {
            "–".to_owned()
        } else {
            shown.join(", ")
        };
        let _ = writeln!(out, "| {position} | {} {shown} |", item_cells(&p.items));
    }
    out.push('\n');
}

fn item_sources(out: &mut String, report: &Report) {
    let _ = writeln!(
        out,
        "## By item source (`sendtime_sources`, every position)\n"
    );
    let _ = writeln!(
        out,
        "| source | {}\n|---|{ITEM_RULE}",
        ITEM_HEADER
            .replace("sends showing an item", "items shown")
            .replace("of them opened", "in opened sends")
            .replace("sends showing", "items shown")
    );
    for s in &report.by_item_source {
        let source = cell(s.source.as_deref(), "(past the recorded sources)");
        let _ = writeln!(out, "| {source} | {}", item_cells(&s.items));
    }
    out.push('\n');
}

fn unattributed(out: &mut String, report: &Report) {
    let u = &report.unattributed;
    let _ = writeln!(out, "## Not attributed\n");
    let _ = writeln!(
        out,
        "- opens matching no send of the user in the window: {}",
        u.opens
    );
    let _ = writeln!(
        out,
        "- clicks matching no send of the user in the window: {}",
        u.clicks
    );
    let _ = writeln!(
        out,
        "- purchases that converted no send: {} (revenue {})",
        u.purchases,
        money(&u.revenue)
    );
    let _ = writeln!(
        out,
        "- clicks whose `sendtime_pos` is not a position 1–63 (counted as unknown): {}",
        u.unreadable_positions
    );
    let _ = writeln!(
        out,
        "- clicks at a position past the send's `sendtime_sources` (no source): {}",
        u.positions_past_sources
    );
}
