//! One batch to the end: posted, its answer read (a result per event), retried as a whole on
//! 429, 5xx, no answer or an unreadable answer, and event by event on `failed` results,
//! split on 413, stopped on a refusal retrying cannot mend; each event's final record sent
//! to the state file's writer.

use super::batch::{body_of, Pending};
use super::{EventsSendConfig, LineRecord, LineStatus, Shared, EVENTS_PATH};
use crate::caller::{Outcome, StatusClass};
use crate::send::jittered_backoff;
use serde::Deserialize;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The API's answer to a batch (`sendtime_api::ingest`'s `EventResult`s), as far as it is
/// read here.
#[derive(Deserialize)]
struct Answer {
    results: Vec<AnsweredEvent>,
}

#[derive(Deserialize)]
struct AnsweredEvent {
    index: usize,
    status: LineStatus,
    #[serde(default)]
    record: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    error: Option<AnsweredError>,
}

#[derive(Deserialize)]
struct AnsweredError {
    code: String,
    message: String,
}

/// The results of a batch of `n` in the batch's order; `None` unless there is exactly one
/// per event.
fn read_answer(body: &[u8], n: usize) -> Option<Vec<AnsweredEvent>> {
    let answer: Answer = serde_json::from_slice(body).ok()?;
    let mut slots: Vec<Option<AnsweredEvent>> = (0..n).map(|_| None).collect();
    for r in answer.results {
        let slot = slots.get_mut(r.index)?;
        if slot.is_some() {
            return None;
        }
        *slot = Some(r);
    }
    slots.into_iter().collect()
}

/// What a batch's answer means for its events.
enum Next {
    /// Send these again after the wait.
    Retry(Vec<Pending>, Duration),
    /// Too large for the API: send each half on its own.
    Split(Vec<Pending>),
    /// Every event has its final outcome, or the send stopped.
    Done,
}

/// One batch to the end: every event's final record sent to the log, or none when the send
/// stops (those lines stay unanswered and the next run sends them). Batches refused as a
/// whole (429, 5xx, no answer, an unreadable answer) and the events the API answered
/// `failed` are sent again, with backoff or the server's `Retry-After`, up to the attempts.
pub(super) async fn deliver(shared: &Shared, batch: Vec<Pending>, tx: &mpsc::Sender<LineRecord>) {
    let mut queue = VecDeque::from([(batch, 0u32)]);
    while let Some((mut pending, mut attempt)) = queue.pop_front() {
        loop {
            if shared.stopped() || pending.is_empty() {
                break;
            }
            attempt += 1;
            if attempt > 1 {
                // Retries take pacing slots too: the rate bounds what the API receives.
                shared.pacer.acquire_many(pending.len() as u32).await;
                shared
                    .resent
                    .set(shared.resent.get() + pending.len() as u64);
            }
            match post(shared, pending, attempt, tx).await {
                Next::Retry(again, wait) => {
                    pending = again;
                    tokio::time::sleep(wait).await;
                }
                Next::Split(mut whole) => {
                    let half = whole.split_off(whole.len() / 2);
                    queue.push_front((half, attempt - 1));
                    queue.push_front((whole, attempt - 1));
                    break;
                }
                Next::Done => break,
            }
        }
    }
}

/// One post of `pending`, its final records sent to the log; what to do next.
async fn post(
    shared: &Shared,
    pending: Vec<Pending>,
    attempt: u32,
    tx: &mpsc::Sender<LineRecord>,
) -> Next {
    let config = &shared.config;
    shared.requests.set(shared.requests.get() + 1);
    shared.progress.requests.fetch_add(1, Ordering::Relaxed);
    let started = Instant::now();
    let posted = shared
        .caller
        .post_json(&shared.target, body_of(&pending))
        .await;
    let latency = started.elapsed();
    let last = attempt >= config.max_attempts;
    let backoff = || jittered_backoff(config.backoff_base, config.backoff_cap, attempt);
    let give_up = |code: String, message: String| {
        let records = pending.iter().map(|p| {
            final_record(
                p,
                attempt,
                LineStatus::Failed,
                None,
                Some((&code, &message)),
            )
        });
        records.collect::<Vec<_>>()
    };
    match posted.outcome {
        Outcome::Answered { .. } => {
            shared.limiter.on_success(latency);
            let Some(results) = read_answer(&posted.body, pending.len()) else {
                shared.refused("unreadable_answer".to_owned());
                if last {
                    let message = "the API's answer had no result per event".to_owned();
                    log_all(tx, give_up("unreadable_answer".to_owned(), message)).await;
                    return Next::Done;
                }
                return Next::Retry(pending, backoff());
            };
            let mut again = Vec::new();
            for (event, result) in pending.into_iter().zip(results) {
                if result.status == LineStatus::Failed && !last {
                    again.push(event);
                    continue;
                }
                let detail = result.record.or(result.reason);
                let error = result.error.as_ref().map(|e| (&e.code, &e.message));
                let record = final_record(&event, attempt, result.status, detail, error);
                let _ = tx.send(record).await;
            }
            if again.is_empty() {
                Next::Done
            } else {
                Next::Retry(again, backoff())
            }
        }
        Outcome::Refused {
            status,
            retry_after,
            code,
        } => {
            shared.refused(status.to_string());
            if status == 429 || status == 503 {
                shared.limiter.on_overload();
            }
            // 429 is how the front door throttles: "Exceeding the throttling limit or quota
            // returns a "429 Too Many Requests" or "Limit Exceeded" error response."
            // — https://aws.amazon.com/premiumsupport/knowledge-center/api-gateway-429-limit/
            // 5xx (the function failed or timed out) is retried too: events carry their id and
            // the store applies each once, so a batch applied before its answer was lost is
            // answered `unchanged` the second time.
            match StatusClass::of_status(status) {
                StatusClass::Throttled | StatusClass::ServerError if last => {
                    let code = code.unwrap_or_else(|| format!("http_{status}"));
                    let message = format!("the API answered {status} to every attempt");
                    log_all(tx, give_up(code, message)).await;
                    Next::Done
                }
                StatusClass::Throttled | StatusClass::ServerError => {
                    let wait = match retry_after {
                        Some(wait) => {
                            shared.pacer.pause_until(Instant::now() + wait);
                            wait
                        }
                        None => backoff(),
                    };
                    Next::Retry(pending, wait)
                }
                _ if status == 413 && pending.len() > 1 => Next::Split(pending),
                _ if status == 413 => {
                    let message = "the API refused the event as too large".to_owned();
                    let event = &pending[0];
                    let record = final_record(
                        event,
                        attempt,
                        LineStatus::Rejected,
                        None,
                        Some((&"too_large".to_owned(), &message)),
                    );
                    let _ = tx.send(record).await;
                    Next::Done
                }
                _ => {
                    let mut stop = shared.stop.borrow_mut();
                    stop.get_or_insert_with(|| refusal(config, status, code.as_deref()));
                    Next::Done
                }
            }
        }
        Outcome::NoAnswer(class) => {
            shared.refused(class.as_str().to_owned());
            shared.limiter.on_overload();
            if last {
                let message = format!("no answer from {} ({})", config.base_url, class.as_str());
                log_all(tx, give_up(class.as_str().to_owned(), message)).await;
                return Next::Done;
            }
            Next::Retry(pending, backoff())
        }
    }
}

async fn log_all(tx: &mpsc::Sender<LineRecord>, records: Vec<LineRecord>) {
    for record in records {
        let _ = tx.send(record).await;
    }
}

fn final_record(
    event: &Pending,
    attempts: u32,
    status: LineStatus,
    detail: Option<String>,
    error: Option<(&String, &String)>,
) -> LineRecord {
    LineRecord {
        line: event.line,
        id: event.id.clone(),
        status,
        detail,
        code: error.map(|e| e.0.clone()),
        message: error.map(|e| e.1.clone()),
        attempts,
    }
}

/// Why the send stops: what the API said, and what fixes it.
fn refusal(config: &EventsSendConfig, status: u16, code: Option<&str>) -> String {
    let url = format!("{}{EVENTS_PATH}", config.base_url.trim_end_matches('/'));
    let code = code.map(|c| format!(" ({c})")).unwrap_or_default();
    let fix = match status {
        401 => "the API wants its write key: pass it with --key or SENDTIME_KEY",
        403 => "this key may not write events (a read key?): pass the write key with --key or SENDTIME_KEY",
        404 | 405 => "is --url the API's base URL, and does it serve POST /v1/events?",
        _ => "the API refused the batch; fix what it names and run the same command again",
    };
    format!("POST {url} answered {status}{code}: {fix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_used_only_with_exactly_one_result_per_event() {
        // GIVEN answers to a batch of two WHEN read THEN only a complete one is used, in order
        let ok = br#"{"results":[{"index":1,"status":"failed","error":{"code":"store_unavailable","message":"m"}},{"index":0,"status":"applied","record":"cart"}],"summary":{}}"#;
        let results = read_answer(ok, 2).unwrap();
        assert_eq!(results[0].status, LineStatus::Applied);
        assert_eq!(results[0].record.as_deref(), Some("cart"));
        assert_eq!(results[1].status, LineStatus::Failed);
        let missing = br#"{"results":[{"index":0,"status":"applied"}]}"#;
        assert!(read_answer(missing, 2).is_none());
        let twice =
            br#"{"results":[{"index":0,"status":"applied"},{"index":0,"status":"applied"}]}"#;
        assert!(read_answer(twice, 2).is_none());
        assert!(read_answer(b"<html>", 2).is_none());
    }
}
