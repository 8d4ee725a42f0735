//! The send engine: one GET per (recipient, block), paced by the campaign rate, limited by
//! an adaptive concurrency window, retried with jittered exponential backoff on 5xx,
//! timeouts and connection errors, honouring `Retry-After` on 429/503, and ending with one
//! result per key in the result log.

use crate::caller::{Caller, CallerConfig, CallerError, Outcome, StatusClass, Target};
use crate::limiter::{Limiter, LimiterConfig};
use crate::output::{ResultLog, ResultRecord};
use crate::pacer::Pacer;
use crate::stats::Latency;
use crate::timer::on_own_thread;
use rand::Rng;
use sendtime_domain::{BlockKind, UserId};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How a send runs: target, blocks, rate, timeout, retries and concurrency bounds.
#[derive(Debug, Clone)]
pub struct SendConfig {
    /// e.g. `https://api.example.com` — requests go to `{base_url}/v1/users/{id}/{block}`.
    pub base_url: String,
    /// Block names fetched for every recipient, one GET each (checked against the registry
    /// when the send starts).
    pub blocks: Vec<String>,
    /// The caller key, sent in the key header; never logged.
    pub api_key: Option<String>,
    /// Extra headers; never logged.
    pub headers: Vec<(String, String)>,
    /// Braze-style campaign rate: recipients (messages) per minute.
    pub rate_per_minute: f64,
    /// Per-attempt timeout (Braze waits 2 s).
    pub timeout: Duration,
    /// Attempts per key, the first included.
    pub max_attempts: u32,
    /// Starting concurrency window (requests in flight).
    pub initial_concurrency: usize,
    /// Cap on the concurrency window; also the HTTP pool's idle connections per host.
    pub max_concurrency: usize,
    /// Backoff scale: a retry waits a random 0..=min(base × 2^attempts, cap).
    pub backoff_base: Duration,
    /// Longest backoff wait; a `Retry-After` (up to 300 s) is honoured instead when given.
    pub backoff_cap: Duration,
    /// A success slower than this shrinks the concurrency window.
    pub slow: Duration,
}

impl SendConfig {
    /// A config with the defaults: 2 s timeout, 4 attempts, concurrency 16 up to 256, no headers.
    pub fn new(base_url: impl Into<String>, blocks: Vec<String>, rate_per_minute: f64) -> Self {
        Self {
            base_url: base_url.into(),
            blocks,
            api_key: None,
            headers: Vec::new(),
            rate_per_minute,
            timeout: Duration::from_secs(2),
            max_attempts: 4,
            initial_concurrency: 16,
            max_concurrency: 256,
            backoff_base: Duration::from_millis(100),
            backoff_cap: Duration::from_secs(5),
            slow: Duration::from_millis(1_000),
        }
    }

    /// HTTP attempts per second the pacer allows: messages/min × blocks / 60.
    pub fn requests_per_second(&self) -> f64 {
        self.rate_per_minute * self.blocks.len().max(1) as f64 / 60.0
    }
}

/// Live counters for a progress display.
#[derive(Debug, Default)]
pub struct Progress {
    /// Keys (recipient × block) in the send, resumed ones included.
    pub total: AtomicU64,
    /// Keys with a final outcome, resumed ones included.
    pub done: AtomicU64,
    /// Keys finished in this run with a 2xx.
    pub ok: AtomicU64,
    /// Keys finished in this run without a 2xx (client error or gave up).
    pub failed: AtomicU64,
    /// HTTP attempts made in this run, retries included.
    pub attempts: AtomicU64,
}

/// What a finished send did, returned by [`run`].
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The API the send called (`--base-url`).
    pub base_url: String,
    /// Recipients in the audience.
    pub recipients: usize,
    /// (recipient, block) keys in the send: recipients × blocks.
    pub keys_total: usize,
    /// Keys already in the result log from an earlier run, not sent again.
    pub keys_skipped_resumed: usize,
    /// Keys given a final outcome in this run.
    pub keys_this_run: usize,
    /// Keys per outcome (`ok`, `client_error`, `failed`) in this run.
    pub outcomes: BTreeMap<String, u64>,
    /// Keys per final HTTP status, or per error kind when no response came.
    pub statuses: BTreeMap<String, u64>,
    /// Failed connections by the operating system's error class (`connection refused`,
    /// `timed out`…): what the `connect_error`s were.
    pub os_errors: BTreeMap<String, u64>,
    /// HTTP attempts in this run, retries included.
    pub attempts: u64,
    /// Attempts beyond each key's first: attempts − keys this run.
    pub retries: u64,
    /// Wall-clock duration of this run, seconds.
    pub seconds: f64,
    /// Achieved HTTP attempts per second.
    pub requests_per_second: f64,
    /// Achieved recipients per minute (keys this run ÷ blocks).
    pub messages_per_minute: f64,
    /// The paced rate asked for: messages/min × blocks / 60.
    pub target_requests_per_second: f64,
    /// Median latency of successful keys' last attempt, ms (0 when none succeeded).
    pub latency_ms_p50: f64,
    /// 95th percentile latency of successful keys, ms.
    pub latency_ms_p95: f64,
    /// 99th percentile latency of successful keys, ms.
    pub latency_ms_p99: f64,
    /// Slowest successful key, ms.
    pub latency_ms_max: f64,
    /// Lowest concurrency window reached.
    pub concurrency_min: f64,
    /// Highest concurrency window reached.
    pub concurrency_max: f64,
    /// The concurrency window when the send ended.
    pub concurrency_final: f64,
    /// (seconds since start, concurrency limit) at every change.
    pub concurrency_timeline: Vec<(f64, f64)>,
}

/// Why a send could not start or could not record its results.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The HTTP caller could not be built.
    #[error(transparent)]
    Caller(#[from] CallerError),
    /// Appending to or syncing the result log failed.
    #[error("writing the result log failed: {0}")]
    Output(#[from] std::io::Error),
    /// The engine thread could not be started, or stopped without an answer.
    #[error("the send's thread failed: {0}")]
    Engine(std::io::Error),
    /// A block name is not in the registry.
    #[error("--blocks: unknown block '{0}' (known: {known})", known = BlockKind::names())]
    UnknownBlock(String),
}

/// The final outcome of one (recipient, block) key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOutcome {
    /// A 2xx answer.
    Ok,
    /// A 4xx other than 429: the request is wrong, so it is not retried.
    ClientError,
    /// Gave up after the last attempt (5xx, 429, timeouts, connection errors).
    Failed,
}

impl KeyOutcome {
    /// The name in the result log and the summary: `ok`, `client_error`, `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::ClientError => "client_error",
            Self::Failed => "failed",
        }
    }
}

struct Attempted {
    outcome: KeyOutcome,
    record: ResultRecord,
    latency: Duration,
}

/// Sends every (recipient, block) not in `done`, appending results to `log`.
pub async fn run(
    config: SendConfig,
    recipients: &[UserId],
    done: &HashSet<(String, String)>,
    log: ResultLog,
    progress: Arc<Progress>,
) -> Result<Summary, SendError> {
    let blocks: Vec<BlockKind> = config
        .blocks
        .iter()
        .map(|b| b.parse().map_err(|_| SendError::UnknownBlock(b.clone())))
        .collect::<Result<_, _>>()?;
    let keys_total = recipients.len() * blocks.len();
    let todo: Vec<(UserId, BlockKind)> = recipients
        .iter()
        .flat_map(|u| blocks.iter().map(move |b| (u, *b)))
        .filter(|(u, b)| !done.contains(&(u.as_str().to_owned(), b.as_str().to_owned())))
        .map(|(u, b)| (u.clone(), b))
        .collect();
    progress.total.store(keys_total as u64, Ordering::Relaxed);
    progress
        .done
        .store((keys_total - todo.len()) as u64, Ordering::Relaxed);
    let recipients = recipients.len();
    on_own_thread("campaign-send", move || {
        engine(config, recipients, keys_total, todo, log, progress)
    })
    .await
    .map_err(SendError::Engine)?
}

/// The send itself, on the engine's one thread: a dispatcher task takes each key's pacing
/// slot and concurrency permit and spawns its fetch; this future logs the outcomes.
async fn engine(
    config: SendConfig,
    recipients: usize,
    keys_total: usize,
    todo: Vec<(UserId, BlockKind)>,
    mut log: ResultLog,
    progress: Arc<Progress>,
) -> Result<Summary, SendError> {
    let caller = Caller::new(&CallerConfig {
        base_url: config.base_url.clone(),
        api_key: config.api_key.clone(),
        headers: config.headers.clone(),
        timeout: config.timeout,
        max_idle_per_host: config.max_concurrency,
    })?;
    let config = Arc::new(config);
    let pacer = Arc::new(Pacer::new(config.requests_per_second()));
    let limiter = Limiter::new(LimiterConfig {
        initial: config.initial_concurrency as f64,
        max: config.max_concurrency as f64,
        slow: config.slow,
        cooldown: Duration::from_millis(200),
    });
    let to_send = todo.len();

    let started = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Attempted>(1024);
    let dispatcher = {
        let (limiter, pacer, caller, config, progress) = (
            limiter.clone(),
            pacer.clone(),
            caller.clone(),
            config.clone(),
            progress.clone(),
        );
        tokio::task::spawn_local(async move {
            for (user, block) in todo {
                // The pacing slot first, then a permit: waiting for the schedule must not
                // count as being in flight, or the window would look busy when it is idle.
                pacer.acquire().await;
                let permit = limiter.acquire().await;
                let (limiter, pacer, caller, config, tx, progress) = (
                    limiter.clone(),
                    pacer.clone(),
                    caller.clone(),
                    config.clone(),
                    tx.clone(),
                    progress.clone(),
                );
                tokio::task::spawn_local(async move {
                    let target = caller.target(&user, block);
                    let key = Key {
                        user: user.as_str(),
                        block: block.as_str(),
                        target: &target,
                    };
                    let result = fetch(&caller, &config, &pacer, &limiter, &progress, key).await;
                    drop(permit);
                    let _ = tx.send(result).await;
                });
            }
        })
    };

    let mut latency = Latency::new();
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    // HTTP statuses counted by number, named once at the end.
    let mut by_code: BTreeMap<u16, u64> = BTreeMap::new();
    let mut received = 0usize;
    let mut batch = Vec::with_capacity(256);
    while received < to_send {
        // Every outcome waiting is logged, then handed to the OS in one write.
        if rx.recv_many(&mut batch, 256).await == 0 {
            break;
        }
        for a in batch.drain(..) {
            received += 1;
            log.push(&a.record)?;
            count(&mut outcomes, a.outcome.as_str());
            match (a.record.status, &a.record.error) {
                (Some(s), _) => *by_code.entry(s).or_default() += 1,
                (None, Some(e)) => count(&mut statuses, e),
                (None, None) => count(&mut statuses, "none"),
            }
            if a.outcome == KeyOutcome::Ok {
                latency.record(a.latency);
                progress.ok.fetch_add(1, Ordering::Relaxed);
            } else {
                progress.failed.fetch_add(1, Ordering::Relaxed);
            }
            progress.done.fetch_add(1, Ordering::Relaxed);
        }
        log.flush()?;
    }
    let _ = dispatcher.await;
    log.finish()?;
    for (code, n) in by_code {
        *statuses.entry(code.to_string()).or_default() += n;
    }
    let seconds = started.elapsed().as_secs_f64();
    let attempts = progress.attempts.load(Ordering::Relaxed);
    let timeline: Vec<(f64, f64)> = limiter
        .timeline()
        .into_iter()
        .map(|(t, l)| (t.as_secs_f64(), l))
        .collect();
    let ms = |q: f64| latency.quantile_ms(q);
    Ok(Summary {
        base_url: config.base_url.clone(),
        os_errors: caller.os_errors(),
        recipients,
        keys_total,
        keys_skipped_resumed: keys_total - to_send,
        keys_this_run: received,
        outcomes,
        statuses,
        attempts,
        retries: attempts.saturating_sub(received as u64),
        seconds,
        requests_per_second: attempts as f64 / seconds.max(1e-9),
        messages_per_minute: received as f64
            / config.blocks.len().max(1) as f64
            / seconds.max(1e-9)
            * 60.0,
        target_requests_per_second: config.requests_per_second(),
        latency_ms_p50: ms(0.50),
        latency_ms_p95: ms(0.95),
        latency_ms_p99: ms(0.99),
        latency_ms_max: latency.max_ms(),
        concurrency_min: timeline.iter().map(|t| t.1).fold(f64::INFINITY, f64::min),
        concurrency_max: timeline.iter().map(|t| t.1).fold(0.0, f64::max),
        concurrency_final: limiter.limit(),
        concurrency_timeline: timeline,
    })
}

/// Adds one to `key`'s count, allocating its name only the first time.
fn count(map: &mut BTreeMap<String, u64>, key: &str) {
    match map.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            map.insert(key.to_owned(), 1);
        }
    }
}

fn backoff(config: &SendConfig, attempt: u32) -> Duration {
    jittered_backoff(config.backoff_base, config.backoff_cap, attempt)
}

/// The wait before retry number `attempt`: a random 0..=min(`base` × 2^attempt, `cap`)
/// ("full jitter", so retries of many keys spread out instead of coming back together).
pub fn jittered_backoff(base: Duration, cap: Duration, attempt: u32) -> Duration {
    let cap = base.saturating_mul(1u32 << attempt.min(16)).min(cap);
    Duration::from_micros(rand::rng().random_range(0..=cap.as_micros() as u64))
}

/// The key a task fetches, borrowed for its whole life.
struct Key<'a> {
    user: &'a str,
    block: &'a str,
    target: &'a Target,
}

/// One key to its final outcome: attempts paced, retried on 5xx, 429, timeouts and
/// connection errors with backoff or the server's `Retry-After`, feeding the AIMD window.
async fn fetch(
    caller: &Caller,
    config: &SendConfig,
    pacer: &Pacer,
    limiter: &Limiter,
    progress: &Progress,
    key: Key<'_>,
) -> Attempted {
    let mut attempt = 0;
    loop {
        attempt += 1;
        if attempt > 1 {
            // Retries take a pacing slot too (the first attempt's was taken by the dispatcher).
            pacer.acquire().await;
        }
        progress.attempts.fetch_add(1, Ordering::Relaxed);
        let t0 = Instant::now();
        let outcome = caller.call(key.target, true).await;
        let latency = t0.elapsed();
        let last = attempt >= config.max_attempts;
        let done = |outcome: KeyOutcome, status: Option<u16>, error: Option<String>| Attempted {
            outcome,
            record: ResultRecord {
                user_id: key.user.to_owned(),
                block: key.block.to_owned(),
                outcome: outcome.as_str().to_owned(),
                status,
                attempts: attempt,
                latency_ms: (latency.as_secs_f64() * 1e6).round() / 1e3,
                eligible: None,
                stage: None,
                source: None,
                error,
            },
            latency,
        };
        let class = outcome.class();
        let wait = match outcome {
            Outcome::Answered { status, answer } => {
                limiter.on_success(latency);
                let mut result = done(KeyOutcome::Ok, Some(status), None);
                let answer = answer.unwrap_or_default();
                result.record.eligible = answer.eligible;
                result.record.stage = answer.stage;
                result.record.source = answer.source;
                return result;
            }
            Outcome::Refused {
                status,
                retry_after,
                code,
            } => {
                if status == 429 || status == 503 {
                    limiter.on_overload();
                }
                let retryable = matches!(class, StatusClass::Throttled | StatusClass::ServerError);
                if !retryable || last {
                    let code = code.unwrap_or_else(|| format!("http_{status}"));
                    let outcome = if retryable {
                        KeyOutcome::Failed
                    } else {
                        KeyOutcome::ClientError
                    };
                    return done(outcome, Some(status), Some(code));
                }
                match retry_after {
                    Some(d) => {
                        pacer.pause_until(Instant::now() + d);
                        d
                    }
                    None => backoff(config, attempt),
                }
            }
            Outcome::NoAnswer(class) => {
                limiter.on_overload();
                if last {
                    return done(KeyOutcome::Failed, None, Some(class.as_str().to_owned()));
                }
                backoff(config, attempt)
            }
        };
        tokio::time::sleep(wait).await;
    }
}
