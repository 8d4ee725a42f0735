//! A push: the users whose score changed since Braze last accepted one, in batches of at
//! most 75 (Braze: "Each `/users/track` request can contain up to 75 total objects combined
//! across attributes, events, and purchases", and for some contracts "Each request may batch
//! up to 50 updates" — https://www.braze.com/docs/api/endpoints/user_data/post_user_track/),
//! sent by a few concurrent requests through the [`RateGate`], each batch retried until Braze
//! accepts it or it runs out of attempts, and logged to the state once accepted.

use super::attributes::{request_body, ScoreUpdate};
use super::client::{Answer, ApiKey, TrackClient};
use super::rate::RateGate;
use super::state::PushedLog;
use futures::StreamExt;
use rand::Rng;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The most objects one `/users/track` request may carry.
pub const MAX_BATCH: usize = 75;

/// How a push runs.
#[derive(Debug, Clone)]
pub struct PushConfig {
    /// The workspace's REST endpoint, e.g. `https://rest.iad-01.braze.com`.
    pub endpoint: String,
    /// A REST API key with the `users.track` permission.
    pub api_key: ApiKey,
    /// Objects per request, 1–75.
    pub batch_size: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Attempts per batch on `5xx` and connection errors (429s have their own, larger cap).
    pub max_attempts: u32,
    /// First backoff after a failure; doubled each time, jittered.
    pub backoff_base: Duration,
    /// Longest backoff.
    pub backoff_cap: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl PushConfig {
    /// Defaults for `endpoint` and `api_key`: 75 a batch, 32 in flight, 8 attempts.
    pub fn new(endpoint: impl Into<String>, api_key: ApiKey) -> Self {
        Self {
            endpoint: endpoint.into(),
            api_key,
            batch_size: MAX_BATCH,
            concurrency: 32,
            max_attempts: 8,
            backoff_base: Duration::from_millis(100),
            backoff_cap: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
        }
    }
}

/// Why a push stopped before the end.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// A status retrying cannot fix (bad key, bad request): nothing more is sent.
    #[error("Braze answered {status} to POST {url}: {message}{hint}")]
    Fatal {
        /// The HTTP status.
        status: u16,
        /// The URL posted to.
        url: String,
        /// Braze's message.
        message: String,
        /// What to check.
        hint: &'static str,
    },
    /// The configuration cannot work.
    #[error("{0}")]
    Config(String),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// The state log could not be written: the push stops rather than lose track.
    #[error("cannot append to the push state: {0}")]
    State(#[from] std::io::Error),
}

/// What a push did.
#[derive(Debug, Default)]
pub struct PushReport {
    /// Users in the scores.
    pub users: usize,
    /// Users skipped: Braze last accepted the same score and time.
    pub unchanged: usize,
    /// Users Braze accepted in this run.
    pub accepted: usize,
    /// Users Braze refused inside an accepted request, with its words (not logged: the
    /// next push sends them again).
    pub refused: Vec<(String, String)>,
    /// Errors of accepted requests that named no object.
    pub unattributed_errors: Vec<String>,
    /// Users of batches that ran out of attempts (not logged: the next push sends them).
    pub failed: usize,
    /// Why those batches gave up, one line each.
    pub failures: Vec<String>,
    /// Batches sent.
    pub batches: usize,
    /// HTTP requests made, retries included.
    pub requests: u64,
    /// `429` answers.
    pub rate_limited: u64,
    /// `5xx` answers and requests with no answer.
    pub transient: u64,
    /// Wall time of the sending.
    pub elapsed: Duration,
}

struct Shared {
    client: TrackClient,
    gate: RateGate,
    config: PushConfig,
    requests: AtomicU64,
    rate_limited: AtomicU64,
    transient: AtomicU64,
}

enum Outcome {
    Accepted {
        batch: Vec<ScoreUpdate>,
        errors: Vec<super::client::ObjectError>,
    },
    GaveUp {
        users: usize,
        reason: String,
    },
    Fatal(PushError),
}

/// Pushes every user of `updates` whose values differ from what `log` says Braze last
/// accepted; calls `progress` with the number of users each finished batch held.
pub async fn push(
    config: &PushConfig,
    updates: Vec<ScoreUpdate>,
    log: &mut PushedLog,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<PushReport, PushError> {
    if !(1..=MAX_BATCH).contains(&config.batch_size) {
        return Err(PushError::Config(format!(
            "--batch-size must be 1–{MAX_BATCH} (Braze takes at most {MAX_BATCH} objects a request), got {}",
            config.batch_size
        )));
    }
    let mut report = PushReport {
        users: updates.len(),
        ..PushReport::default()
    };
    let to_send: Vec<ScoreUpdate> = updates
        .into_iter()
        .filter(|u| !log.is_unchanged(u))
        .collect();
    report.unchanged = report.users - to_send.len();
    let shared = Shared {
        client: TrackClient::new(
            &config.endpoint,
            config.api_key.clone(),
            config.timeout,
            config.concurrency,
        )?,
        gate: RateGate::default(),
        config: config.clone(),
        requests: AtomicU64::new(0),
        rate_limited: AtomicU64::new(0),
        transient: AtomicU64::new(0),
    };
    let started = Instant::now();
    let mut batches = Vec::with_capacity(to_send.len().div_ceil(config.batch_size));
    let mut rest = to_send.into_iter();
    loop {
        let batch: Vec<ScoreUpdate> = rest.by_ref().take(config.batch_size).collect();
        if batch.is_empty() {
            break;
        }
        batches.push(batch);
    }
    report.batches = batches.len();
    let mut outcomes = futures::stream::iter(batches)
        .map(|batch| send_batch(&shared, batch))
        .buffer_unordered(config.concurrency.max(1));
    let mut fatal = None;
    while let Some(outcome) = outcomes.next().await {
        match outcome {
            Outcome::Accepted { batch, errors } => {
                let done = batch.len() as u64;
                record_accepted(&mut report, log, batch, errors)?;
                progress(done);
            }
            Outcome::GaveUp { users, reason } => {
                report.failed += users;
                report.failures.push(reason);
                progress(users as u64);
            }
            Outcome::Fatal(e) => {
                fatal = Some(e);
                break;
            }
        }
    }
    drop(outcomes);
    report.requests = shared.requests.load(Ordering::Relaxed);
    report.rate_limited = shared.rate_limited.load(Ordering::Relaxed);
    report.transient = shared.transient.load(Ordering::Relaxed);
    report.elapsed = started.elapsed();
    match fatal {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// Logs the batch's users Braze did not refuse; keeps the refused ones in the report.
fn record_accepted(
    report: &mut PushReport,
    log: &mut PushedLog,
    batch: Vec<ScoreUpdate>,
    errors: Vec<super::client::ObjectError>,
) -> std::io::Result<()> {
    let mut refused = vec![false; batch.len()];
    for e in errors {
        match e.index.filter(|i| *i < batch.len()) {
            Some(i) => {
                refused[i] = true;
                report
                    .refused
                    .push((batch[i].external_id.clone(), e.message));
            }
            None => report.unattributed_errors.push(e.message),
        }
    }
    let kept = batch
        .iter()
        .zip(&refused)
        .filter(|(_, r)| !**r)
        .map(|(u, _)| u);
    log.append(kept)?;
    report.accepted += refused.iter().filter(|r| !**r).count();
    Ok(())
}

async fn send_batch(shared: &Shared, batch: Vec<ScoreUpdate>) -> Outcome {
    let config = &shared.config;
    let body = match request_body(&batch) {
        Ok(b) => b,
        Err(e) => {
            return Outcome::GaveUp {
                users: batch.len(),
                reason: format!("cannot encode a batch: {e}"),
            }
        }
    };
    let (mut failures, mut limited) = (0u32, 0u32);
    loop {
        shared.gate.acquire().await;
        let (answer, headers, answered) = shared.client.post(body.clone()).await;
        shared.requests.fetch_add(1, Ordering::Relaxed);
        match answer {
            Answer::Accepted { errors } => {
                shared.gate.answered(headers, false, None);
                return Outcome::Accepted { batch, errors };
            }
            Answer::RateLimited { retry_after } => {
                shared.gate.answered(headers, true, retry_after);
                shared.rate_limited.fetch_add(1, Ordering::Relaxed);
                limited += 1;
                if limited > config.max_attempts.saturating_mul(4) {
                    return Outcome::GaveUp {
                        users: batch.len(),
                        reason: format!("{limited} answers of 429 in a row"),
                    };
                }
                if retry_after.is_none() {
                    tokio::time::sleep(backoff(config, limited)).await;
                }
            }
            Answer::Transient { reason } => {
                if answered {
                    shared.gate.answered(headers, false, None);
                } else {
                    shared.gate.unanswered();
                }
                shared.transient.fetch_add(1, Ordering::Relaxed);
                failures += 1;
                tracing::debug!(attempt = failures, %reason, "users/track attempt failed");
                if failures >= config.max_attempts {
                    return Outcome::GaveUp {
                        users: batch.len(),
                        reason: format!("gave up after {failures} attempts, the last: {reason}"),
                    };
                }
                tokio::time::sleep(backoff(config, failures)).await;
            }
            Answer::Fatal { status, message } => {
                shared.gate.answered(headers, false, None);
                let hint = match status {
                    401 | 403 | 404 => " — check --api-key (a REST API key of this workspace with the users.track permission) and --endpoint",
                    400 => " — check --batch-size (at most 75, or 50 on some contracts)",
                    _ => "",
                };
                return Outcome::Fatal(PushError::Fatal {
                    status,
                    url: shared.client.url().to_owned(),
                    message,
                    hint,
                });
            }
        }
    }
}

/// Jittered exponential backoff: half of `base × 2^(attempt-1)` (capped) plus a random
/// part up to the other half, so retries of many batches spread out.
fn backoff(config: &PushConfig, attempt: u32) -> Duration {
    let exp = config
        .backoff_base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(config.backoff_cap);
    let half = exp / 2;
    half + half.mul_f64(rand::rng().random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_stops_at_the_cap() {
        // GIVEN 100 ms base, 1 s cap
        let mut config = PushConfig::new("http://x", ApiKey::new("k"));
        config.backoff_base = Duration::from_millis(100);
        config.backoff_cap = Duration::from_secs(1);
        // THEN attempt n waits between half and all of min(100 ms × 2^(n-1), 1 s)
        for (attempt, full) in [(1, 100), (2, 200), (3, 400), (5, 1000), (30, 1000)] {
            for _ in 0..50 {
                let d = backoff(&config, attempt).as_millis();
                assert!((full / 2..=full).contains(&d), "attempt {attempt}: {d} ms");
            }
        }
    }
}
