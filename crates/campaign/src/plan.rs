//! Sizing a campaign (BRIEF §3–4, seed 001): audience × calls per recipient × rate gives
//! the request rate, Braze's front-loaded burst, Lambda concurrency (Little's law), DynamoDB
//! reads, cost and duration, checked against default AWS quotas and Braze's 72 h horizon.

use serde::Serialize;

mod render;
pub use render::render;

/// Prices in USD (us-east-1, on-demand, published list prices; no free tier).
pub mod price {
    /// API Gateway HTTP API, per million requests (first 300 M a month).
    pub const HTTP_API_PER_MILLION: f64 = 1.00;
    /// Lambda Function URLs: no charge beyond the function's own requests and duration.
    pub const FUNCTION_URL_PER_MILLION: f64 = 0.0;
    /// Lambda requests, per million.
    pub const LAMBDA_REQUESTS_PER_MILLION: f64 = 0.20;
    /// Lambda arm64 compute, per GB-second.
    pub const LAMBDA_ARM_GB_SECOND: f64 = 0.000_013_333_4;
    /// DynamoDB on-demand, per million read request units.
    pub const DYNAMODB_PER_MILLION_RRU: f64 = 0.125;
}

/// Default AWS quotas per region/account (BRIEF §4).
pub mod quota {
    /// API Gateway requests per second per account and region.
    pub const API_GATEWAY_RPS: f64 = 10_000.0;
    /// Lambda concurrent executions per account and region.
    pub const LAMBDA_CONCURRENCY: f64 = 1_000.0;
    /// Synchronous requests per second Lambda allows per unit of concurrency quota: a
    /// Function URL's request-rate ceiling is 10 × 1,000 = 10,000 rps by default, raised with
    /// the concurrency quota (behind API Gateway its own 10,000 rps binds first).
    pub const LAMBDA_RPS_PER_CONCURRENCY: f64 = 10.0;
    /// New execution environments per function per 10 s.
    pub const LAMBDA_SCALE_PER_10S: f64 = 1_000.0;
    /// Read request units a new on-demand table serves at once.
    pub const DYNAMODB_NEW_TABLE_RRU: f64 = 12_000.0;
    /// Braze aborts messages still queued after this many minutes (72 h).
    pub const BRAZE_HORIZON_MINUTES: f64 = 72.0 * 60.0;
    /// Braze's campaign rate limit ceiling (messages per minute).
    pub const BRAZE_MAX_RATE: f64 = 500_000.0;
}

/// Function duration, from what `scripts/bench.sh` measures (docs/benchmarks.md,
/// [performance]) and what it cannot (DynamoDB in region).
pub mod duration {
    /// Server CPU per assembled block on the development machine: the costliest block
    /// (recommendations, every request assembling from warm caches) at 2,000 calls/s, where
    /// each request is served alone as in a Lambda environment (72.5 µs), rounded up.
    pub const MEASURED_CPU_US_PER_CALL: f64 = 75.0;
    /// Lambda gives a function one full vCPU at this memory size and a proportional share
    /// below it.
    pub const LAMBDA_MB_PER_VCPU: f64 = 1_769.0;
    /// One DynamoDB `Query` for a user not in the function's cache, in the same region
    /// (assumed: single-digit milliseconds; measure the deployed stack with `sendtime loadtest`).
    pub const DYNAMODB_READ_MS: f64 = 5.0;

    /// Mean duration of one call at `memory_mb` when `cache_hit_ratio` of the users are in the
    /// function's cache: the measured CPU, scaled to the function's CPU share, plus the
    /// DynamoDB read of every other call.
    pub fn default_latency_ms(memory_mb: u32, cache_hit_ratio: f64) -> f64 {
        let cpu_share = (f64::from(memory_mb.max(1)) / LAMBDA_MB_PER_VCPU).min(1.0);
        MEASURED_CPU_US_PER_CALL / 1000.0 / cpu_share
            + DYNAMODB_READ_MS * (1.0 - cache_hit_ratio.clamp(0.0, 1.0))
    }

    /// What Lambda bills for a call of `latency_ms`: whole milliseconds, at least one.
    pub fn billed_ms(latency_ms: f64) -> f64 {
        latency_ms.ceil().max(1.0)
    }
}

/// Calls a message causes per block, by channel: an email renders HTML, plain text and AMP
/// separately; push, SMS and KakaoTalk render once.
pub fn calls_per_message(channel: Channel) -> f64 {
    match channel {
        Channel::Email => 3.0,
        Channel::Push | Channel::Sms | Channel::Kakao => 1.0,
    }
}

/// What fronts the functions (template.yaml's `FrontDoor`): it sets the per-call price and
/// the request-rate quota that binds first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Front {
    /// API Gateway HTTP API: $1.00 per million calls, 10,000 rps per account by default.
    #[default]
    HttpApi,
    /// Lambda Function URLs: no per-call charge; Lambda's 10 rps per unit of concurrency
    /// quota; our key check is the only gate.
    FunctionUrl,
}

impl std::str::FromStr for Front {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "http-api" => Ok(Self::HttpApi),
            "function-url" => Ok(Self::FunctionUrl),
            other => Err(format!(
                "unknown front door '{other}' (http-api, function-url)"
            )),
        }
    }
}

impl Front {
    /// Price per million calls of the front itself.
    pub fn price_per_million(self) -> f64 {
        match self {
            Self::HttpApi => price::HTTP_API_PER_MILLION,
            Self::FunctionUrl => price::FUNCTION_URL_PER_MILLION,
        }
    }

    /// The request-rate quota the front hits first, and its name in the checks.
    pub fn rps_quota(self) -> (&'static str, f64) {
        match self {
            Self::HttpApi => ("API Gateway 10,000 rps", quota::API_GATEWAY_RPS),
            Self::FunctionUrl => (
                "Lambda 10,000 rps (10 × concurrency)",
                quota::LAMBDA_RPS_PER_CONCURRENCY * quota::LAMBDA_CONCURRENCY,
            ),
        }
    }

    /// The cost line's label.
    pub fn cost_label(self) -> &'static str {
        match self {
            Self::HttpApi => "cost: API Gateway (HTTP API)",
            Self::FunctionUrl => "cost: Function URL (no charge)",
        }
    }
}

/// A Braze message channel; it sets the calls a message makes per block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// Email: HTML, plain text and AMP render separately, 3 calls per block.
    Email,
    /// Push notification: 1 call per block.
    Push,
    /// SMS: 1 call per block.
    Sms,
    /// KakaoTalk: 1 call per block.
    Kakao,
}

impl std::str::FromStr for Channel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "email" => Ok(Self::Email),
            "push" => Ok(Self::Push),
            "sms" => Ok(Self::Sms),
            "kakao" => Ok(Self::Kakao),
            other => Err(format!(
                "unknown channel '{other}' (email, push, sms, kakao)"
            )),
        }
    }
}

/// What a campaign plan is computed from; [`PlanInput::new`] fills in the defaults.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanInput {
    /// Recipients in the campaign; must be above zero.
    pub audience: u64,
    /// (channel, share of the audience); shares sum to 1.
    pub channels: Vec<(Channel, f64)>,
    /// Blocks (connected-content calls) per rendered message.
    pub blocks: u32,
    /// Braze rate limit, messages per minute.
    pub rate_per_minute: f64,
    /// Mean Lambda duration per call, ms (by default [`duration::default_latency_ms`]; a
    /// `sendtime loadtest` of the deployed stack measures it).
    pub latency_ms: f64,
    /// Peak-to-average ratio inside a minute (Braze sends as fast as it can early on).
    pub burst_factor: f64,
    /// Lambda memory size, MB (prices the GB-seconds).
    pub lambda_memory_mb: u32,
    /// Read request units per call (one eventually consistent Query of ≤ 4 KB = 0.5).
    pub rru_per_call: f64,
    /// Share of calls answered from the function's cache without a DynamoDB read.
    pub cache_hit_ratio: f64,
    /// What fronts the functions.
    pub front: Front,
}

impl PlanInput {
    /// The defaults behind `sendtime campaign plan` (a warm function reading one partition).
    pub fn new(audience: u64, channels: Vec<(Channel, f64)>, rate_per_minute: f64) -> Self {
        Self {
            audience,
            channels,
            blocks: 1,
            rate_per_minute,
            latency_ms: duration::default_latency_ms(256, 0.0),
            burst_factor: 2.0,
            lambda_memory_mb: 256,
            rru_per_call: 0.5,
            cache_hit_ratio: 0.0,
            front: Front::HttpApi,
        }
    }
}

/// One quota or horizon check of a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// What was checked, e.g. "Lambda 1,000 concurrent".
    pub name: &'static str,
    /// True when the plan stays within the limit.
    pub ok: bool,
    /// The planned figure checked, ready to print.
    pub detail: String,
}

/// A campaign's load, cost, duration and quota checks, as computed by [`plan()`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// The input the plan was computed from.
    pub input: PlanInput,
    /// API calls per recipient: channel-weighted calls per message × blocks.
    pub calls_per_message: f64,
    /// API calls over the campaign: audience × `calls_per_message`.
    pub total_calls: f64,
    /// Minutes Braze takes to reach everyone at the requested rate.
    pub minutes_to_finish: f64,
    /// Mean API requests per second at the requested rate.
    pub average_rps: f64,
    /// Peak requests per second: `average_rps` × burst factor.
    pub burst_rps: f64,
    /// Mean Lambda concurrency (Little's law: `average_rps` × latency).
    pub lambda_concurrency_average: f64,
    /// Peak Lambda concurrency: `burst_rps` × latency.
    pub lambda_concurrency_burst: f64,
    /// Seconds Lambda needs to scale one function from zero to its burst concurrency.
    pub lambda_scale_up_seconds: f64,
    /// DynamoDB read request units per second at the burst, net of cache hits.
    pub dynamodb_rru_per_second_burst: f64,
    /// DynamoDB read request units over the campaign, net of cache hits.
    pub dynamodb_rru_total: f64,
    /// The front door's cost (API Gateway, or nothing for Function URLs).
    pub cost_api_gateway: f64,
    /// Lambda cost, USD: requests plus arm64 GB-seconds of the billed (whole-ms) duration.
    pub cost_lambda: f64,
    /// DynamoDB on-demand read cost, USD.
    pub cost_dynamodb: f64,
    /// Front door, Lambda and DynamoDB costs together, USD.
    pub cost_total: f64,
    /// Lowest rate that finishes inside Braze's 72 h horizon.
    pub minimum_rate_per_minute: f64,
    /// Highest rate whose burst stays inside every default quota.
    pub maximum_safe_rate_per_minute: f64,
    /// What to set in Braze: the requested rate if safe, else the safe maximum, rounded down.
    pub recommended_rate_per_minute: f64,
    /// Every quota and horizon check, in display order.
    pub checks: Vec<Check>,
}

/// An input [`plan()`] refuses; the message names the CLI flag to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    /// The audience is zero.
    #[error("--audience must be above zero")]
    EmptyAudience,
    /// The rate is not above zero (or is NaN).
    #[error("--rate must be above zero (messages per minute)")]
    NoRate,
    /// No channels, a share not above zero, or shares not summing to 1; holds the sum.
    #[error("--channel shares must be positive and sum to 1 (got {0})")]
    Shares(f64),
    /// The latency is not above zero (or is NaN).
    #[error("--latency-ms must be above zero")]
    NoLatency,
}

/// Computes a campaign's plan; errors on an empty audience, no rate or latency, or bad shares.
pub fn plan(input: PlanInput) -> Result<Plan, PlanError> {
    if input.audience == 0 {
        return Err(PlanError::EmptyAudience);
    }
    if input.rate_per_minute.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return Err(PlanError::NoRate);
    }
    if input.latency_ms.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return Err(PlanError::NoLatency);
    }
    let share_sum: f64 = input.channels.iter().map(|(_, s)| s).sum();
    if input.channels.is_empty()
        || input.channels.iter().any(|(_, s)| *s <= 0.0)
        || (share_sum - 1.0).abs() > 1e-6
    {
        return Err(PlanError::Shares(share_sum));
    }
    let calls_per_message = input
        .channels
        .iter()
        .map(|(c, s)| calls_per_message(*c) * s)
        .sum::<f64>()
        * f64::from(input.blocks.max(1));
    let audience = input.audience as f64;
    let total_calls = audience * calls_per_message;
    let minutes_to_finish = audience / input.rate_per_minute;
    let average_rps = input.rate_per_minute / 60.0 * calls_per_message;
    let burst_rps = average_rps * input.burst_factor;
    let latency_s = input.latency_ms / 1000.0;
    let lambda_concurrency_average = average_rps * latency_s;
    let lambda_concurrency_burst = burst_rps * latency_s;
    let lambda_scale_up_seconds =
        ((lambda_concurrency_burst / quota::LAMBDA_SCALE_PER_10S).ceil() - 1.0).max(0.0) * 10.0;
    let reads_per_call = input.rru_per_call * (1.0 - input.cache_hit_ratio.clamp(0.0, 1.0));
    let dynamodb_rru_per_second_burst = burst_rps * reads_per_call;
    let dynamodb_rru_total = total_calls * reads_per_call;

    let millions = total_calls / 1e6;
    let cost_api_gateway = millions * input.front.price_per_million();
    // Lambda bills each call's duration in whole milliseconds.
    let billed_s = duration::billed_ms(input.latency_ms) / 1000.0;
    let gb_seconds = total_calls * billed_s * f64::from(input.lambda_memory_mb) / 1024.0;
    let cost_lambda =
        millions * price::LAMBDA_REQUESTS_PER_MILLION + gb_seconds * price::LAMBDA_ARM_GB_SECOND;
    let cost_dynamodb = dynamodb_rru_total / 1e6 * price::DYNAMODB_PER_MILLION_RRU;

    let minimum_rate_per_minute = audience / quota::BRAZE_HORIZON_MINUTES;
    // The largest burst every quota allows, turned back into messages per minute.
    let (rps_quota_name, rps_quota) = input.front.rps_quota();
    let mut max_burst_rps = rps_quota.min(quota::LAMBDA_CONCURRENCY / latency_s);
    if reads_per_call > 0.0 {
        max_burst_rps = max_burst_rps.min(quota::DYNAMODB_NEW_TABLE_RRU / reads_per_call);
    }
    let maximum_safe_rate_per_minute =
        (max_burst_rps / input.burst_factor / calls_per_message * 60.0).min(quota::BRAZE_MAX_RATE);
    let wanted = input.rate_per_minute.min(maximum_safe_rate_per_minute);
    let recommended_rate_per_minute = round_down_nicely(wanted).max(minimum_rate_per_minute.ceil());

    let checks = vec![
        Check {
            name: rps_quota_name,
            ok: burst_rps <= rps_quota,
            detail: format!("burst {burst_rps:.0} rps"),
        },
        Check {
            name: "Lambda 1,000 concurrent",
            ok: lambda_concurrency_burst <= quota::LAMBDA_CONCURRENCY,
            detail: format!("burst {lambda_concurrency_burst:.0} concurrent"),
        },
        Check {
            name: "Lambda scaling (+1,000 per 10 s)",
            ok: lambda_scale_up_seconds == 0.0,
            detail: if lambda_scale_up_seconds == 0.0 {
                "burst concurrency reachable at once".to_owned()
            } else {
                format!("{lambda_scale_up_seconds:.0} s to scale to the burst: early calls queue or throttle")
            },
        },
        Check {
            name: "DynamoDB new on-demand table 12,000 RRU/s",
            ok: dynamodb_rru_per_second_burst <= quota::DYNAMODB_NEW_TABLE_RRU,
            detail: format!("burst {dynamodb_rru_per_second_burst:.0} RRU/s"),
        },
        Check {
            name: "Braze 72 h horizon",
            ok: minutes_to_finish <= quota::BRAZE_HORIZON_MINUTES,
            detail: format!(
                "finishes in {}; needs at least {:.0} msgs/min",
                human_minutes(minutes_to_finish),
                minimum_rate_per_minute.ceil()
            ),
        },
        Check {
            name: "Braze rate limit ≤ 500,000 msgs/min",
            ok: input.rate_per_minute <= quota::BRAZE_MAX_RATE,
            detail: format!("{:.0} msgs/min", input.rate_per_minute),
        },
    ];
    Ok(Plan {
        calls_per_message,
        total_calls,
        minutes_to_finish,
        average_rps,
        burst_rps,
        lambda_concurrency_average,
        lambda_concurrency_burst,
        lambda_scale_up_seconds,
        dynamodb_rru_per_second_burst,
        dynamodb_rru_total,
        cost_api_gateway,
        cost_lambda,
        cost_dynamodb,
        cost_total: cost_api_gateway + cost_lambda + cost_dynamodb,
        minimum_rate_per_minute,
        maximum_safe_rate_per_minute,
        recommended_rate_per_minute,
        checks,
        input,
    })
}

/// Rounds down to two significant digits (123,456 → 120,000) so the number is one a person
/// types into Braze.
fn round_down_nicely(x: f64) -> f64 {
    if x < 100.0 {
        return x.floor();
    }
    let magnitude = 10f64.powi(x.log10().floor() as i32 - 1);
    (x / magnitude).floor() * magnitude
}

/// Formats minutes for people: "12.5 min" under an hour, "3.2 h" under 48 h, else "4.0 days".
pub fn human_minutes(minutes: f64) -> String {
    if minutes < 60.0 {
        format!("{minutes:.1} min")
    } else if minutes < 48.0 * 60.0 {
        format!("{:.1} h", minutes / 60.0)
    } else {
        format!("{:.1} days", minutes / 1440.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-6 * b.abs().max(1.0)
    }

    #[test]
    fn default_latency_is_the_measured_cpu_at_the_memory_size_plus_a_dynamodb_read() {
        // 75 µs of a full core at 256 MB (a 256/1,769 share) = 0.518 ms, plus 5 ms per read
        let at_256 = duration::default_latency_ms(256, 0.0);
        assert!(close(at_256, 0.075 * 1_769.0 / 256.0 + 5.0), "{at_256}");
        assert!(close(
            PlanInput::new(1, vec![(Channel::Email, 1.0)], 1.0).latency_ms,
            at_256
        ));
        // half the users cached: half the reads; 1,769 MB and up: the CPU at full speed
        assert!(close(duration::default_latency_ms(1_769, 0.5), 0.075 + 2.5));
        assert!(close(duration::default_latency_ms(4_096, 1.0), 0.075));
        // billed in whole milliseconds, at least one
        assert!(close(duration::billed_ms(at_256), 6.0));
        assert!(close(duration::billed_ms(0.075), 1.0));
        assert!(close(duration::billed_ms(20.0), 20.0));
        // 10M emails at the defaults: 30M calls × 6 ms billed × 0.25 GB = 45,000 GB-s
        let p = plan(PlanInput::new(
            10_000_000,
            vec![(Channel::Email, 1.0)],
            100_000.0,
        ))
        .unwrap();
        assert!(close(p.cost_lambda, 6.0 + 45_000.0 * 0.000_013_333_4));
    }

    #[test]
    fn ten_million_emails_at_100k_per_minute_by_hand() {
        // 10M × 3 calls = 30M calls; 100,000/60 × 3 = 5,000 rps, burst 10,000 (BRIEF §4);
        // concurrency 10,000 × 0.020 s = 200; 100 minutes;
        // HTTP API 30 × $1 = $30; Lambda 30 × $0.20 + 30M × 0.02 s × 0.25 GB × $0.0000133334
        // = $6 + $2.00001; DynamoDB 30M × 0.5 RRU = 15M RRU × $0.125/M = $1.875.
        // (A function of 20 ms: slower than the default, see the test above.)
        let mut input = PlanInput::new(10_000_000, vec![(Channel::Email, 1.0)], 100_000.0);
        input.latency_ms = 20.0;
        let p = plan(input).unwrap();
        assert!(close(p.calls_per_message, 3.0));
        assert!(close(p.total_calls, 30_000_000.0));
        assert!(close(p.average_rps, 5_000.0));
        assert!(close(p.burst_rps, 10_000.0));
        assert!(close(p.lambda_concurrency_burst, 200.0));
        assert!(close(p.lambda_concurrency_average, 100.0));
        assert!(close(p.minutes_to_finish, 100.0));
        assert!(close(p.dynamodb_rru_total, 15_000_000.0));
        assert!(close(p.dynamodb_rru_per_second_burst, 5_000.0));
        assert!(close(p.cost_api_gateway, 30.0));
        assert!(close(p.cost_lambda, 6.0 + 150_000.0 * 0.000_013_333_4));
        assert!(close(p.cost_dynamodb, 1.875));
        assert!(p.checks.iter().all(|c| c.ok), "{:#?}", p.checks);
        // 72 h minimum: 10M / 4,320 = 2,314.8 msgs/min
        assert!(close(p.minimum_rate_per_minute, 10_000_000.0 / 4_320.0));
        // Safe maximum: API Gateway's 10,000 rps is the binding quota → 100,000 msgs/min.
        assert!(close(p.maximum_safe_rate_per_minute, 100_000.0));
        assert!(close(p.recommended_rate_per_minute, 100_000.0));
    }

    #[test]
    fn braze_maximum_rate_breaks_the_default_quotas() {
        // 500,000 msgs/min × 3 / 60 = 25,000 rps, burst 50,000 (BRIEF §4); a 20 ms function.
        let mut input = PlanInput::new(10_000_000, vec![(Channel::Email, 1.0)], 500_000.0);
        input.latency_ms = 20.0;
        let p = plan(input).unwrap();
        assert!(close(p.average_rps, 25_000.0));
        assert!(close(p.burst_rps, 50_000.0));
        assert!(close(p.lambda_concurrency_burst, 1_000.0));
        let failed: Vec<&str> = p.checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
        assert_eq!(
            failed,
            [
                "API Gateway 10,000 rps",
                "DynamoDB new on-demand table 12,000 RRU/s"
            ]
        );
        assert!(close(p.recommended_rate_per_minute, 100_000.0));
    }

    #[test]
    fn a_low_rate_risks_brazes_72_hour_abort() {
        // 10M at 2,000/min takes 5,000 min > 4,320 min.
        let p = plan(PlanInput::new(
            10_000_000,
            vec![(Channel::Push, 1.0)],
            2_000.0,
        ))
        .unwrap();
        let horizon = p
            .checks
            .iter()
            .find(|c| c.name == "Braze 72 h horizon")
            .unwrap();
        assert!(!horizon.ok);
        assert!(close(p.minutes_to_finish, 5_000.0));
        assert_eq!(p.recommended_rate_per_minute, 2_315.0);
    }

    #[test]
    fn channel_mix_and_blocks_multiply_calls() {
        // 60% email (3) + 40% push (1) = 2.2 calls per block; 2 blocks = 4.4.
        let mut input = PlanInput::new(
            1_000_000,
            vec![(Channel::Email, 0.6), (Channel::Push, 0.4)],
            60_000.0,
        );
        input.blocks = 2;
        let p = plan(input).unwrap();
        assert!(close(p.calls_per_message, 4.4));
        assert!(close(p.average_rps, 4_400.0));
        assert!(close(p.total_calls, 4_400_000.0));
    }

    #[test]
    fn slow_functions_hit_the_lambda_concurrency_quota() {
        // burst 10,000 rps × 0.25 s = 2,500 concurrent > 1,000; 20 s to scale to it.
        let mut input = PlanInput::new(10_000_000, vec![(Channel::Email, 1.0)], 100_000.0);
        input.latency_ms = 250.0;
        let p = plan(input).unwrap();
        assert!(close(p.lambda_concurrency_burst, 2_500.0));
        assert!(close(p.lambda_scale_up_seconds, 20.0));
        // 1,000 / 0.25 = 4,000 rps burst → 2,000 avg → 40,000 msgs/min
        assert!(close(p.maximum_safe_rate_per_minute, 40_000.0));
    }

    #[test]
    fn bad_inputs_name_their_flag() {
        let err = plan(PlanInput::new(0, vec![(Channel::Email, 1.0)], 1.0)).unwrap_err();
        assert!(err.to_string().contains("--audience"));
        let err = plan(PlanInput::new(1, vec![(Channel::Email, 0.5)], 1.0)).unwrap_err();
        assert!(err.to_string().contains("--channel"));
        let err = plan(PlanInput::new(1, vec![(Channel::Email, 1.0)], 0.0)).unwrap_err();
        assert!(err.to_string().contains("--rate"));
    }

    #[test]
    fn ten_million_emails_behind_function_urls_by_hand() {
        // Same campaign as above without API Gateway: the $30 of HTTP API goes; Lambda
        // $6 + 150,000 GB-s × $0.0000133334 = $8.00001, DynamoDB $1.875: $9.87501 in all,
        // per million calls 9.87501 / 30 = $0.32917.
        let mut input = PlanInput::new(10_000_000, vec![(Channel::Email, 1.0)], 100_000.0);
        input.front = Front::FunctionUrl;
        input.latency_ms = 20.0;
        let p = plan(input).unwrap();
        assert!(close(p.cost_api_gateway, 0.0));
        assert!(close(p.cost_lambda, 6.0 + 150_000.0 * 0.000_013_333_4));
        assert!(close(
            p.cost_total,
            6.0 + 150_000.0 * 0.000_013_333_4 + 1.875
        ));
        assert!(close(p.cost_total / 30.0, 0.329_167));
        // The binding request-rate quota is Lambda's 10 rps × 1,000 concurrency = 10,000
        // rps: the burst of 10,000 fits exactly, so 100,000 msgs/min stays the safe maximum.
        assert_eq!(p.checks[0].name, "Lambda 10,000 rps (10 × concurrency)");
        assert!(p.checks.iter().all(|c| c.ok), "{:#?}", p.checks);
        assert!(close(p.maximum_safe_rate_per_minute, 100_000.0));
        assert!(render(&p).contains("cost: Function URL (no charge)"));

        // At Braze's maximum: Lambda's request rate and DynamoDB fail, API Gateway is gone.
        let mut input = PlanInput::new(10_000_000, vec![(Channel::Email, 1.0)], 500_000.0);
        input.front = Front::FunctionUrl;
        let p = plan(input).unwrap();
        let failed: Vec<&str> = p.checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
        assert_eq!(
            failed,
            [
                "Lambda 10,000 rps (10 × concurrency)",
                "DynamoDB new on-demand table 12,000 RRU/s"
            ]
        );
    }

    #[test]
    fn front_doors_parse_by_their_template_names() {
        assert_eq!("http-api".parse::<Front>(), Ok(Front::HttpApi));
        assert_eq!("function-url".parse::<Front>(), Ok(Front::FunctionUrl));
        assert!("alb".parse::<Front>().unwrap_err().contains("function-url"));
    }

    #[test]
    fn rounding_is_to_two_significant_digits() {
        assert_eq!(round_down_nicely(123_456.0), 120_000.0);
        assert_eq!(round_down_nicely(99_999.0), 99_000.0);
        assert_eq!(round_down_nicely(57.9), 57.0);
    }
}
