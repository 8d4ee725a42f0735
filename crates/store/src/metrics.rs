//! Per-request counters. The HTTP layer opens a scope around each request; the cache and
//! the adapters add to it, so one log line can say how many cache hits, misses, store
//! loads and round trips that one request cost. Outside a scope, recording is a no-op.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// One request's counters, added to by the cache and the adapters inside a [`scope`].
#[derive(Debug, Default)]
pub struct RequestCounters {
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    store_loads: AtomicU64,
    round_trips: AtomicU64,
    store_errors: AtomicU64,
}

/// A plain copy of the counters, for logs and metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RequestCounts {
    /// Lookups answered from the cache.
    pub cache_hits: u64,
    /// Lookups the cache could not answer.
    pub cache_misses: u64,
    /// Calls the cache made to the store behind it.
    pub store_loads: u64,
    /// Requests the adapters sent to their backend (SDK retries excluded).
    pub round_trips: u64,
    /// Failed store calls counted with [`record_store_error`].
    pub store_errors: u64,
}

impl RequestCounters {
    /// The counters' current values.
    pub fn snapshot(&self) -> RequestCounts {
        RequestCounts {
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
            cache_misses: self.cache_misses.load(Ordering::Relaxed),
            store_loads: self.store_loads.load(Ordering::Relaxed),
            round_trips: self.round_trips.load(Ordering::Relaxed),
            store_errors: self.store_errors.load(Ordering::Relaxed),
        }
    }
}

tokio::task_local! {
    static CURRENT: Arc<RequestCounters>;
}

/// Runs `f` with `counters` as the current request's counters.
pub async fn scope<F: Future>(counters: Arc<RequestCounters>, f: F) -> F::Output {
    CURRENT.scope(counters, f).await
}

/// `f` in the current request's scope, if there is one: for work a request spawns. The
/// scope is taken now, when called inside the request, not when the future first runs.
pub fn in_current_scope<F: Future>(f: F) -> impl Future<Output = F::Output> {
    let counters = CURRENT.try_with(Arc::clone).ok();
    async move {
        match counters {
            Some(counters) => CURRENT.scope(counters, f).await,
            None => f.await,
        }
    }
}

fn add(pick: impl FnOnce(&RequestCounters) -> &AtomicU64, n: u64) {
    let _ = CURRENT.try_with(|c| pick(c).fetch_add(n, Ordering::Relaxed));
}

/// Adds `n` cache hits to the current request's counters; a no-op outside a scope.
pub fn record_cache_hits(n: u64) {
    add(|c| &c.cache_hits, n);
}
/// Adds `n` cache misses to the current request's counters; a no-op outside a scope.
pub fn record_cache_misses(n: u64) {
    add(|c| &c.cache_misses, n);
}
/// Counts one call from the cache to the store behind it; a no-op outside a scope.
pub fn record_store_load() {
    add(|c| &c.store_loads, 1);
}
/// Adapters call this once per request sent to their backend.
pub fn record_round_trip() {
    add(|c| &c.round_trips, 1);
}
/// Counts one failed store call in the current request; a no-op outside a scope.
pub fn record_store_error() {
    add(|c| &c.store_errors, 1);
}
