//! Campaign tools. [`plan`] sizes a send against Braze's and AWS's limits before it happens;
//! [`send`] fetches every recipient's blocks at send time, paced by a rate, with adaptive
//! concurrency, retries, and a checkpoint so a crash loses and duplicates nothing.

/// Reading the recipients of a send from CSV or JSON Lines, or making N synthetic ids.
pub mod audience;
/// The one HTTP caller of our API (lean keep-alive HTTP/1.1, prebuilt targets, typed outcomes).
pub mod caller;
/// `events send`: a JSON Lines file of events posted to `/v1/events` in paced, retried,
/// checkpointed batches.
pub mod events_send;
/// [`limiter::Limiter`]: the adaptive (AIMD) concurrency window of a send.
pub mod limiter;
/// `sendtime loadtest`: open-model load generation sized to campaigns, reports, verdicts.
pub mod loadtest;
/// Numbers for people: thousands separators and fixed decimals.
pub mod numbers;
/// The result log, one JSON line per (recipient, block), which doubles as the checkpoint.
pub mod output;
/// [`pacer::Pacer`]: the fixed-interval schedule every HTTP attempt of a send waits for.
pub mod pacer;
/// Sizing a campaign before it runs: rates, Lambda and DynamoDB load, cost, quota checks.
pub mod plan;
/// The send engine: paced, retried GETs per (recipient, block), logged to the result log.
pub mod send;
/// Latency statistics: one mergeable HDR histogram type.
pub mod stats;
/// Sub-millisecond waits ([`timer::PreciseTimer`]) and the engine thread of a generator.
pub mod timer;
