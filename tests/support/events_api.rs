//! A small `POST /v1/events` server for client tests (`events send`): the key checked as the
//! route does (a write key passes, a read key is 403, none 401), then the API's own batch
//! handler — `sendtime_api::ingest::{parse_batch, Ingest}` over a `MemoryStore`, exactly what
//! the route calls — with faults injected on demand: 429 (`Retry-After: 0`) or 503 for some
//! requests, store failures for some events (their results say `failed`), a late answer.
//! It counts how often each event id reached the handler in a batch it applied.

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sendtime_api::ingest::{parse_batch, BatchError, Ingest, Summary};
use sendtime_domain::ingest::{Event, IngestLimits, Outcome};
use sendtime_domain::SystemClock;
use sendtime_store::{ApplyError, EventsApply, MemoryStore, StoreError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The key that may write.
pub const WRITE_KEY: &str = "test-write-key";
/// A read key: refused with 403.
pub const READ_KEY: &str = "test-read-key";

/// What the test server is told to do wrong.
#[derive(Clone, Copy, Default)]
pub struct Faults {
    /// Every n-th request is answered 429 (with `Retry-After: 0`).
    pub throttle_every: Option<u64>,
    /// Every n-th request is answered 503.
    pub unavailable_every: Option<u64>,
    /// Every n-th event applied fails in the store (the answer says `failed` for it).
    pub store_fails_every: Option<u64>,
    /// Each batch is answered this late after it was applied.
    pub delay: Duration,
}

/// A store whose every n-th apply fails before writing, as a throttled DynamoDB would.
struct FlakyStore {
    inner: Arc<MemoryStore>,
    every: Option<u64>,
    applies: AtomicU64,
}

#[async_trait]
impl EventsApply for FlakyStore {
    async fn apply_event(
        &self,
        event: &Event,
        limits: &IngestLimits,
    ) -> Result<Outcome, ApplyError> {
        let n = self.applies.fetch_add(1, Ordering::Relaxed) + 1;
        if self.every.is_some_and(|every| n.is_multiple_of(every)) {
            return Err(ApplyError::Store(StoreError::Throttled));
        }
        self.inner.apply_event(event, limits).await
    }
}

struct ServerState {
    ingest: Ingest,
    faults: Faults,
    requests: AtomicU64,
    /// Times each event id reached the handler in a batch it applied.
    applied_posts: Mutex<HashMap<String, u32>>,
    /// (when, events) of every batch applied.
    batches: Mutex<Vec<(Instant, usize)>>,
}

/// The running server (on a loopback port, until the test's runtime ends).
pub struct Server {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The store the handler applies to.
    pub store: Arc<MemoryStore>,
    state: Arc<ServerState>,
}

impl Server {
    /// Starts a server with these faults.
    pub async fn start(faults: Faults) -> Self {
        let store = Arc::new(MemoryStore::new(Arc::new(SystemClock)));
        let flaky = Arc::new(FlakyStore {
            inner: store.clone(),
            every: faults.store_fails_every,
            applies: AtomicU64::new(0),
        });
        let state = Arc::new(ServerState {
            ingest: Ingest::new(flaky, Arc::new(()), Arc::new(SystemClock)),
            faults,
            requests: AtomicU64::new(0),
            applied_posts: Mutex::new(HashMap::new()),
            batches: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new()
            .route("/v1/events", axum::routing::post(post_events))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, store, state }
    }

    /// Times each event id reached the handler in a batch it applied.
    pub fn posts_of(&self) -> HashMap<String, u32> {
        self.state.applied_posts.lock().unwrap().clone()
    }

    /// (when, events) of every batch applied.
    pub fn batches(&self) -> Vec<(Instant, usize)> {
        self.state.batches.lock().unwrap().clone()
    }
}

fn error(status: StatusCode, code: &str) -> Response {
    let body = serde_json::json!({"error": {"code": code, "message": code}});
    (status, axum::Json(body)).into_response()
}

/// `POST /v1/events` as the route serves it — the key checked, then `parse_batch` and
/// `Ingest::apply_batch` — with the injected faults before.
async fn post_events(
    State(s): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let n = s.requests.fetch_add(1, Ordering::Relaxed) + 1;
    match headers.get("x-sendtime-key").and_then(|v| v.to_str().ok()) {
        Some(WRITE_KEY) => {}
        Some(READ_KEY) => return error(StatusCode::FORBIDDEN, "forbidden"),
        _ => return error(StatusCode::UNAUTHORIZED, "unauthorized"),
    }
    if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/json") {
        return error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "not_json");
    }
    if s.faults.throttle_every.is_some_and(|e| n.is_multiple_of(e)) {
        let mut r = error(StatusCode::TOO_MANY_REQUESTS, "throttled");
        r.headers_mut()
            .insert("retry-after", axum::http::HeaderValue::from_static("0"));
        return r;
    }
    if s.faults
        .unavailable_every
        .is_some_and(|e| n.is_multiple_of(e))
    {
        return error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    }
    let events = match parse_batch(&body) {
        Ok(events) => events,
        Err(BatchError::TooLarge) => return error(StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        Err(_) => return error(StatusCode::BAD_REQUEST, "invalid_body"),
    };
    {
        let mut posts = s.applied_posts.lock().unwrap();
        for e in &events {
            if let Some(id) = e.get("id").and_then(|v| v.as_str()) {
                *posts.entry(id.to_owned()).or_default() += 1;
            }
        }
        s.batches
            .lock()
            .unwrap()
            .push((Instant::now(), events.len()));
    }
    let results = s.ingest.apply_batch(events).await;
    // Applied, then answered late: a client killed meanwhile never learns of it.
    tokio::time::sleep(s.faults.delay).await;
    let summary = Summary::of(&results);
    axum::Json(serde_json::json!({"results": results, "summary": summary})).into_response()
}
