//! A Braze `POST /users/track` emulator for `audience push` tests: it keeps Braze's
//! documented rules, injects the faults Braze documents, and records every request and
//! every object it accepted, so a test can check what a push did from the server's side.
//!
//! The rules, each from Braze's documentation:
//! - the rate limit, counted per workspace window: "`/users/track` Requests: 3,000 requests
//!   per three seconds" (https://www.braze.com/docs/api/api_limits/); the window and limit are
//!   configurable so a test stays fast. Every request counts, refused ones included
//!   (assumption: Braze does not say whether a 429'd request counts);
//! - the headers on every answer: "Every single API request sent to Braze returns the
//!   following information in the response headers: `X-RateLimit-Limit` … `X-RateLimit-Remaining`
//!   … `X-RateLimit-Reset` The time at which the current rate limit window resets in UTC
//!   epoch seconds" and "HTTP headers will be returned in all lowercase characters"
//!   (same page). Windows here are fixed and aligned to multiples of their length in epoch
//!   seconds (assumption: Braze does not say how its windows are aligned);
//! - past the limit: "`429 Rate Limited` Over rate limit" (https://www.braze.com/docs/api/errors/);
//! - the object cap: "Each `/users/track` request can contain up to 75 total objects combined
//!   across attributes, events, and purchases"
//!   (https://www.braze.com/docs/api/endpoints/user_data/post_user_track/), and over it
//!   "`400 Max Input Length Exceeded` Caused by calling more than 75 external ids when
//!   hitting the User Track endpoint" (https://www.braze.com/docs/api/errors/);
//! - auth: "Authorization: Bearer YOUR_REST_API_KEY" (post_user_track), else "`401
//!   Unauthorized` Unknown or missing REST API Key" (errors);
//! - success is `201` (assumption from public clients' fixtures, e.g. dietdoctor/go-braze)
//!   with `{"message": "success", "attributes_processed": n}`, and a user Braze will not take
//!   is a non-fatal error beside the success: "If your message is successful but has
//!   non-fatal errors … `"errors": [{ <minor error message> }]`" and "any data not affected by
//!   an error in the `errors` array will still be processed" (post_user_track); the error
//!   used is the one that page names: "provided external_id is blacklisted and disallowed";
//! - `5XX`: "You should retry your request with exponential backoff" (errors): injected
//!   every `fail_every`-th request as `503`; extra `429`s are injected every
//!   `throttle_every`-th request.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// What the emulator enforces and injects.
#[derive(Debug, Clone)]
pub struct TrackServerConfig {
    /// Requests allowed per window (Braze: 3,000).
    pub limit: u32,
    /// Window length, seconds (Braze: 3).
    pub window_secs: u64,
    /// Objects allowed per request (Braze: 75).
    pub max_objects: usize,
    /// Every n-th request is answered `503`.
    pub fail_every: Option<u64>,
    /// Every n-th request is answered `429` although the window has room.
    pub throttle_every: Option<u64>,
    /// Users whose objects get a non-fatal error in a `201`.
    pub blocklisted: HashSet<String>,
    /// The REST API key the server accepts.
    pub api_key: String,
    /// Keep every accepted object (off for the million-user benchmark: counts only).
    pub record: bool,
}

impl Default for TrackServerConfig {
    fn default() -> Self {
        Self {
            limit: 3_000,
            window_secs: 3,
            max_objects: 75,
            fail_every: None,
            throttle_every: None,
            blocklisted: HashSet::new(),
            api_key: "test-rest-key".into(),
            record: true,
        }
    }
}

/// One object the emulator accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// `external_id`.
    pub external_id: String,
    /// `sendtime_score`.
    pub score: Option<f64>,
    /// `sendtime_scored_at`.
    pub scored_at: Option<String>,
    /// `_update_existing_only`.
    pub update_existing_only: Option<bool>,
}

/// What the emulator saw.
#[derive(Debug, Clone, Default)]
pub struct TrackLog {
    /// Requests received.
    pub requests: u64,
    /// Requests received per window (keyed by the window's start, epoch seconds).
    pub windows: BTreeMap<u64, u32>,
    /// Requests answered 429 because their window was spent.
    pub limited: u64,
    /// Requests answered 429 by injection.
    pub injected_429: u64,
    /// Requests answered 503 by injection.
    pub injected_5xx: u64,
    /// Requests answered 400 for carrying more objects than the cap.
    pub over_cap: u64,
    /// Requests answered 401.
    pub unauthorized: u64,
    /// The most objects any request carried.
    pub largest_request: usize,
    /// Objects accepted.
    pub objects: u64,
    /// Objects refused with a non-fatal error.
    pub refused: u64,
    /// Objects without `"_update_existing_only": true`.
    pub without_update_only: u64,
    /// Every accepted object, when recording.
    pub written: Vec<Written>,
}

impl TrackLog {
    /// The most requests any window received.
    pub fn busiest_window(&self) -> u32 {
        self.windows.values().copied().max().unwrap_or(0)
    }
}

struct Emulator {
    config: TrackServerConfig,
    log: Mutex<TrackLog>,
}

/// A running emulator; stops when dropped.
pub struct TrackServer {
    /// The REST endpoint to give `--endpoint`: `http://127.0.0.1:{port}`.
    pub url: String,
    emulator: Arc<Emulator>,
    task: tokio::task::JoinHandle<()>,
}

impl TrackServer {
    /// Starts the emulator on a free port.
    pub async fn start(config: TrackServerConfig) -> TrackServer {
        let emulator = Arc::new(Emulator {
            config,
            log: Mutex::new(TrackLog::default()),
        });
        let app = axum::Router::new()
            .route("/users/track", axum::routing::post(track))
            .with_state(emulator.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TrackServer {
            url,
            emulator,
            task,
        }
    }

    /// A copy of what the emulator saw so far.
    pub fn log(&self) -> TrackLog {
        self.emulator.log.lock().expect("log").clone()
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &TrackServerConfig {
        &self.emulator.config
    }
}

impl Drop for TrackServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn json(status: StatusCode, headers: HeaderMap, body: serde_json::Value) -> Response {
    (status, headers, axum::Json(body)).into_response()
}

async fn track(State(em): State<Arc<Emulator>>, headers: HeaderMap, body: Bytes) -> Response {
    let config = &em.config;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let window = now - now % config.window_secs;
    let mut log = em.log.lock().expect("log");
    log.requests += 1;
    let n = log.requests;
    let count = {
        let c = log.windows.entry(window).or_insert(0);
        *c += 1;
        *c
    };
    let mut rate = HeaderMap::new();
    let header = |v: u64| HeaderValue::from_str(&v.to_string()).expect("header");
    rate.insert("x-ratelimit-limit", header(u64::from(config.limit)));
    rate.insert(
        "x-ratelimit-remaining",
        header(u64::from(config.limit.saturating_sub(count))),
    );
    rate.insert("x-ratelimit-reset", header(window + config.window_secs));
    if count > config.limit {
        log.limited += 1;
        return json(
            StatusCode::TOO_MANY_REQUESTS,
            rate,
            serde_json::json!({"message": "Rate Limited"}),
        );
    }
    let bearer = format!("Bearer {}", config.api_key);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(bearer.as_str()) {
        log.unauthorized += 1;
        return json(
            StatusCode::UNAUTHORIZED,
            rate,
            serde_json::json!({"message": "Unknown or missing REST API Key"}),
        );
    }
    let parsed: Option<Vec<serde_json::Value>> = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("attributes").and_then(|a| a.as_array()).cloned());
    let Some(objects) = parsed else {
        return json(
            StatusCode::BAD_REQUEST,
            rate,
            serde_json::json!({"message": "Bad Request"}),
        );
    };
    log.largest_request = log.largest_request.max(objects.len());
    if objects.len() > config.max_objects {
        log.over_cap += 1;
        return json(
            StatusCode::BAD_REQUEST,
            rate,
            serde_json::json!({"message": "Max Input Length Exceeded"}),
        );
    }
    if config.throttle_every.is_some_and(|k| n % k == 0) {
        log.injected_429 += 1;
        return json(
            StatusCode::TOO_MANY_REQUESTS,
            rate,
            serde_json::json!({"message": "Rate Limited"}),
        );
    }
    if config.fail_every.is_some_and(|k| n % k == 0) {
        log.injected_5xx += 1;
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            rate,
            serde_json::json!({"message": "Service Unavailable"}),
        );
    }
    let mut errors = Vec::new();
    for (index, object) in objects.iter().enumerate() {
        let id = object
            .get("external_id")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        let update_only = object
            .get("_update_existing_only")
            .and_then(|v| v.as_bool());
        if update_only != Some(true) {
            log.without_update_only += 1;
        }
        if config.blocklisted.contains(id) {
            log.refused += 1;
            errors.push(serde_json::json!({
                "type": "provided external_id is blacklisted and disallowed",
                "input_array": "attributes",
                "index": index,
            }));
            continue;
        }
        log.objects += 1;
        if config.record {
            log.written.push(Written {
                external_id: id.to_owned(),
                score: object.get("sendtime_score").and_then(|v| v.as_f64()),
                scored_at: object
                    .get("sendtime_scored_at")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned),
                update_existing_only: update_only,
            });
        }
    }
    let mut answer = serde_json::json!({
        "message": "success",
        "attributes_processed": objects.len() - errors.len(),
    });
    if !errors.is_empty() {
        answer["errors"] = serde_json::Value::Array(errors);
    }
    json(StatusCode::CREATED, rate, answer)
}
