//! One structured log line per request, and optionally one CloudWatch Embedded Metric Format
//! record: route template (never the raw path, which holds the user id), status, latency,
//! cache hits and misses, store loads and round trips, and the block's `source`/`degraded`.
//! No headers, no query strings, no bodies.

use crate::service::AnswerCacheUse;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use sendtime_domain::{BlockKind, ItemSource};
use sendtime_store::metrics::{self, RequestCounters, RequestCounts};
use std::cell::Cell;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The caller's request id (the Lambda request id under Lambda); set by the entry point.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// What the handler tells the telemetry about the block it answered.
#[derive(Debug, Clone, Copy)]
pub struct BlockMeta {
    /// The block answered.
    pub block: BlockKind,
    /// Source of the block's first item; `None` when it has no items.
    pub source: Option<ItemSource>,
    /// True when the store could not be read and the block is fallback content.
    pub degraded: bool,
    /// Whether the block said to send (false: the template aborts).
    pub eligible: bool,
    /// Whether the answer came from the answer cache.
    pub answer_cache: crate::service::AnswerCacheUse,
}

/// What the handler tells the request's log line: the route template it matched and the
/// block it answered.
#[derive(Debug, Clone, Copy, Default)]
struct Answered {
    route: Option<&'static str>,
    block: Option<BlockMeta>,
}

tokio::task_local! {
    /// What the current request matched and answered, set by the handler.
    static ANSWERED: Cell<Answered>;
}

/// Tells the current request's log line which block it answered and how; a no-op outside
/// the telemetry layer (a task-local slot: no response extension to allocate).
pub fn record_block(meta: BlockMeta) {
    let _ = ANSWERED.try_with(|slot| {
        slot.set(Answered {
            block: Some(meta),
            ..slot.get()
        })
    });
}

/// Tells the current request's log line the route template it matched (never the raw path).
pub fn record_route(route: &'static str) {
    let _ = ANSWERED.try_with(|slot| {
        slot.set(Answered {
            route: Some(route),
            ..slot.get()
        })
    });
}

/// How request telemetry is emitted; the default is the log line only, no EMF.
#[derive(Debug, Clone, Copy, Default)]
pub struct TelemetryOptions {
    /// Print one EMF JSON record per request to stdout (Lambda ships it to CloudWatch).
    pub emf: bool,
}

pub(crate) async fn observe(
    State(options): State<TelemetryOptions>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let request_id = request.extensions().get::<RequestId>().map(|r| r.0.clone());
    let counters = Arc::new(RequestCounters::default());
    let (response, answered) = ANSWERED
        .scope(Cell::new(Answered::default()), async {
            let response = metrics::scope(counters.clone(), next.run(request)).await;
            (response, ANSWERED.with(Cell::get))
        })
        .await;
    let meta = answered.block;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let counts = counters.snapshot();
    let status = response.status().as_u16();
    tracing::info!(
        request_id = request_id.as_deref(),
        route = answered.route.unwrap_or("unmatched"),
        block = meta.map(|m| m.block.as_str()),
        status,
        latency_ms = (latency_ms * 1000.0).round() / 1000.0,
        cache_hits = counts.cache_hits,
        cache_misses = counts.cache_misses,
        store_loads = counts.store_loads,
        round_trips = counts.round_trips,
        store_errors = counts.store_errors,
        source = meta.and_then(|m| m.source).map(source_name),
        degraded = meta.map(|m| m.degraded),
        eligible = meta.map(|m| m.eligible),
        answer_cache = meta.map(|m| m.answer_cache.as_str()),
        "request"
    );
    if options.emf {
        println!("{}", emf_record(meta, status, latency_ms, counts));
    }
    response
}

fn source_name(s: ItemSource) -> &'static str {
    match s {
        ItemSource::Personalized => "personalized",
        ItemSource::CategoryPopular => "category_popular",
        ItemSource::Popular => "popular",
        ItemSource::Cart => "cart",
        ItemSource::History => "history",
    }
}

/// One EMF record: metrics `latency`, `cache_hits`, `cache_misses`, `fallback` (1 when the
/// block was served from popular lists only or degraded) and `store_errors`, by `block`.
/// Hit ratio and fallback rate are metric math over these in CloudWatch.
pub fn emf_record(
    meta: Option<BlockMeta>,
    status: u16,
    latency_ms: f64,
    counts: RequestCounts,
) -> String {
    let block = meta.map(|m| m.block.as_str()).unwrap_or("none");
    let fallback = meta
        .map(|m| m.degraded || m.source == Some(ItemSource::Popular))
        .unwrap_or(false);
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    serde_json::json!({
        "_aws": {
            "Timestamp": timestamp,
            "CloudWatchMetrics": [{
                "Namespace": "sendtime",
                "Dimensions": [["block"]],
                "Metrics": [
                    {"Name": "latency", "Unit": "Milliseconds"},
                    {"Name": "cache_hits", "Unit": "Count"},
                    {"Name": "cache_misses", "Unit": "Count"},
                    {"Name": "fallback", "Unit": "Count"},
                    {"Name": "store_errors", "Unit": "Count"},
                    {"Name": "answer_cache_hits", "Unit": "Count"}
                ]
            }]
        },
        "block": block,
        "status": status,
        "latency": (latency_ms * 1000.0).round() / 1000.0,
        "cache_hits": counts.cache_hits,
        "cache_misses": counts.cache_misses,
        "fallback": u8::from(fallback),
        "store_errors": counts.store_errors,
        "answer_cache_hits": u8::from(meta.is_some_and(|m| m.answer_cache == AnswerCacheUse::Hit)),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_record_declares_its_metrics_and_carries_their_values() {
        let meta = BlockMeta {
            block: BlockKind::Recommendations,
            source: Some(ItemSource::Popular),
            degraded: false,
            eligible: true,
            answer_cache: AnswerCacheUse::Hit,
        };
        let counts = RequestCounts {
            cache_hits: 3,
            cache_misses: 1,
            ..RequestCounts::default()
        };
        let v: serde_json::Value =
            serde_json::from_str(&emf_record(Some(meta), 200, 1.5, counts)).unwrap();
        let declared = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(declared["Namespace"], "sendtime");
        for m in declared["Metrics"].as_array().unwrap() {
            let name = m["Name"].as_str().unwrap();
            assert!(v.get(name).is_some(), "metric {name} has no value");
        }
        assert_eq!(v["block"], "recommendations");
        assert_eq!(v["cache_hits"], 3);
        assert_eq!(v["fallback"], 1);
        assert_eq!(v["answer_cache_hits"], 1);
        assert_eq!(v["latency"], 1.5);
    }
}
