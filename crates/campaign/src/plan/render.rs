//! The table `sendtime campaign plan` prints for people (`--json` prints the [`Plan`] itself).

use super::{human_minutes, Plan};
use crate::numbers::group;

/// The human-readable table `sendtime campaign plan` prints.
pub fn render(plan: &Plan) -> String {
    let i = &plan.input;
    let mix: Vec<String> = i
        .channels
        .iter()
        .map(|(c, s)| {
            format!(
                "{} {:.0}%",
                serde_json::to_value(c)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                s * 100.0
            )
        })
        .collect();
    let mut out = String::new();
    let mut row = |k: &str, v: String| out.push_str(&format!("  {k:<34} {v}\n"));
    row(
        "audience",
        format!(
            "{} recipients ({})",
            group(i.audience as f64),
            mix.join(", ")
        ),
    );
    row("rate", format!("{} msgs/min", group(i.rate_per_minute)));
    row(
        "calls per message",
        format!("{:.2} ({} block(s))", plan.calls_per_message, i.blocks),
    );
    row("total calls", group(plan.total_calls));
    row("time to finish", human_minutes(plan.minutes_to_finish));
    row(
        "average request rate",
        format!("{} rps", group(plan.average_rps)),
    );
    row(
        "burst request rate",
        format!(
            "{} rps (×{} front-loaded minute)",
            group(plan.burst_rps),
            i.burst_factor
        ),
    );
    row(
        "Lambda concurrency",
        format!(
            "{} average, {} burst (at {:.2} ms, billed {} ms)",
            group(plan.lambda_concurrency_average.ceil()),
            group(plan.lambda_concurrency_burst.ceil()),
            i.latency_ms,
            crate::plan::duration::billed_ms(i.latency_ms)
        ),
    );
    row(
        "DynamoDB reads",
        format!(
            "{} RRU/s burst, {} RRU total",
            group(plan.dynamodb_rru_per_second_burst),
            group(plan.dynamodb_rru_total)
        ),
    );
    row(
        i.front.cost_label(),
        format!("${:.2}", plan.cost_api_gateway),
    );
    row("cost: Lambda (arm64)", format!("${:.2}", plan.cost_lambda));
    row(
        "cost: DynamoDB (on-demand)",
        format!("${:.2}", plan.cost_dynamodb),
    );
    row("cost: total", format!("${:.2}", plan.cost_total));
    out.push_str("\n  checks\n");
    for c in &plan.checks {
        out.push_str(&format!(
            "  {} {:<42} {}\n",
            if c.ok { "ok  " } else { "FAIL" },
            c.name,
            c.detail
        ));
    }
    out.push_str(&format!(
        "\n  recommended Braze rate limit: {} msgs/min (safe maximum {}, 72 h minimum {})\n",
        group(plan.recommended_rate_per_minute),
        group(plan.maximum_safe_rate_per_minute.floor()),
        group(plan.minimum_rate_per_minute.ceil())
    ));
    out
}
