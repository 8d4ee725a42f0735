//! `sendtime loadtest`: an open-model generator sized to campaigns. The shape is data
//! ([`shape`]), every call has an intended send time and its latency counts from it, results
//! are data ([`results`]) merged across shards, judged by an SLO and reported.

/// The chart of a run: latency percentiles and throughput per second, as SVG.
pub mod chart;
/// The Markdown report of a run.
pub mod report;
/// Results, merging and the SLO verdict.
pub mod results;
/// The open-model executor.
pub mod run;
/// Load shapes: explicit plans, campaigns, scale, duration and shards.
pub mod shape;
