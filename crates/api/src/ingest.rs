//! The one ingest handler behind every way in (`POST /v1/events`, the ingest function's SQS
//! batches, `sendtime events send`): a batch of raw events validated one by one against an
//! injected clock, the valid ones applied through the store's
//! [`sendtime_store::EventsApply`], and a result per event — applied, unchanged (a duplicate
//! or stale event), rejected (bad input: never retried) or failed (the store: retry it;
//! applying again is safe).
//!
//! A process that applies an event drops what it holds about that user or item at once
//! ([`crate::ingest::Invalidate`]); other processes see it when their cache entry expires.

use futures::stream::{self, StreamExt};
use sendtime_domain::ingest::{EventError, IngestLimits, Outcome, RawEvent, Target};
use sendtime_domain::Clock;
use sendtime_store::{ApplyError, EventsApply};
use serde::Serialize;
use std::sync::Arc;

/// The variable (and `sendtime serve --write-key-sha256`) holding the hex SHA-256 digests of
/// the write keys, comma-separated (several during a rotation).
pub const WRITE_KEY_SHA256_VAR: &str = "SENDTIME_WRITE_KEY_SHA256";

/// Most events in one batch (an HTTP request or an SQS message).
pub const MAX_BATCH_EVENTS: usize = 500;
/// Largest batch body in bytes: an SQS queue's largest message by default (256 KiB), so any
/// batch the API takes can also travel through a queue left at its defaults.
///
/// > "MaximumMessageSize – The limit of how many bytes a message can contain before Amazon
/// > SQS rejects it. … Default: 262,144 (256 KiB)."
/// > — <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SetQueueAttributes.html>
///
/// (A queue may now be set to take up to 1 MiB — "The maximum size is 1 MiB or 1,048,576
/// bytes", <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html>
/// — but the default is what a producer can count on.)
pub const MAX_BATCH_BYTES: usize = 256 * 1024;
/// Events of one batch applied at once (each is one read and at most one write).
pub const APPLY_CONCURRENCY: usize = 16;

/// Told about every record an applied event changed, so cached copies are dropped at once.
pub trait Invalidate: Send + Sync {
    /// The records of `target` changed.
    fn changed(&self, target: Target<'_>);
}

/// Nothing cached: nothing to drop.
impl Invalidate for () {
    fn changed(&self, _: Target<'_>) {}
}

/// What happened to one event of a batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Applied: `record` changed.
    Applied,
    /// Nothing changed: `reason` says why (`duplicate`, `stale`, `unknown_item`).
    Unchanged,
    /// Refused: bad input (`error`); sending it again gives the same answer.
    Rejected,
    /// The store failed (`error`); nothing was written, sending it again is safe.
    Failed,
}

/// An error of one event: a stable code and a message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventFailure {
    /// Stable code: [`EventError::CODES`], `unknown_item`, or `store_unavailable`.
    pub code: String,
    /// What was wrong.
    pub message: String,
}

/// The result of one event, in the batch's order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventResult {
    /// The event's position in the batch (0-based).
    pub index: usize,
    /// The event's `id`, when it had a readable one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// What happened.
    pub status: Status,
    /// The record changed (`profile`, `cart`, `recs`, `item`), when applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<&'static str>,
    /// Why nothing changed, when unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// What was wrong, when rejected or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<EventFailure>,
}

impl EventResult {
    /// Whether the event should be sent again (the store failed).
    pub fn retryable(&self) -> bool {
        self.status == Status::Failed
    }
}

/// A whole batch refused before any event was looked at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The body is larger than [`MAX_BATCH_BYTES`].
    #[error("the batch is larger than {MAX_BATCH_BYTES} bytes")]
    TooLarge,
    /// More than [`MAX_BATCH_EVENTS`] events.
    #[error("the batch has more than {MAX_BATCH_EVENTS} events")]
    TooManyEvents,
    /// Not a JSON object with an `events` array (or a JSON array of events, or one event).
    #[error(
        "the body must be JSON: {{\"events\": [ … ]}}, an array of events, or one event ({0})"
    )]
    InvalidBody(String),
}

/// One batch's events: each still raw JSON, so one malformed event is that event's error.
pub fn parse_batch(body: &[u8]) -> Result<Vec<serde_json::Value>, BatchError> {
    if body.len() > MAX_BATCH_BYTES {
        return Err(BatchError::TooLarge);
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| BatchError::InvalidBody(e.to_string()))?;
    let events = match value {
        serde_json::Value::Array(events) => events,
        serde_json::Value::Object(mut map) => match map.remove("events") {
            Some(serde_json::Value::Array(events)) => events,
            Some(_) => {
                return Err(BatchError::InvalidBody(
                    "`events` must be an array".to_owned(),
                ))
            }
            None if map.contains_key("type") => vec![serde_json::Value::Object(map)],
            None => return Err(BatchError::InvalidBody("no `events` array".to_owned())),
        },
        _ => {
            return Err(BatchError::InvalidBody(
                "expected an object or an array".to_owned(),
            ))
        }
    };
    if events.len() > MAX_BATCH_EVENTS {
        return Err(BatchError::TooManyEvents);
    }
    Ok(events)
}

/// Applies batches: validation against the clock, the store's rules, cache invalidation.
pub struct Ingest {
    store: Arc<dyn EventsApply>,
    invalidate: Arc<dyn Invalidate>,
    clock: Arc<dyn Clock>,
    limits: IngestLimits,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("limits", &self.limits)
            .finish()
    }
}

impl Ingest {
    /// Applies events to `store`, validated against `clock`, telling `invalidate` what changed.
    pub fn new(
        store: Arc<dyn EventsApply>,
        invalidate: Arc<dyn Invalidate>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            invalidate,
            clock,
            limits: IngestLimits::default(),
        }
    }

    /// The same, with other limits.
    pub fn with_limits(mut self, limits: IngestLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The limits events are validated and applied with.
    pub fn limits(&self) -> &IngestLimits {
        &self.limits
    }

    /// Applies every valid event of the batch (up to [`APPLY_CONCURRENCY`] at once); a result
    /// per event, in the batch's order. Never fails as a whole.
    pub async fn apply_batch(&self, events: Vec<serde_json::Value>) -> Vec<EventResult> {
        let now = self.clock.now();
        stream::iter(events.into_iter().enumerate())
            .map(|(index, value)| self.apply_one(index, value, now))
            .buffered(APPLY_CONCURRENCY)
            .collect()
            .await
    }

    async fn apply_one(
        &self,
        index: usize,
        value: serde_json::Value,
        now: chrono::DateTime<chrono::Utc>,
    ) -> EventResult {
        let id = value
            .get("id")
            .and_then(|v| v.as_str())
            .filter(|s| s.len() <= sendtime_domain::ingest::event::MAX_ID_BYTES)
            .map(str::to_owned);
        let mut result = EventResult {
            index,
            id,
            status: Status::Rejected,
            record: None,
            reason: None,
            error: None,
        };
        let raw: RawEvent = match serde_json::from_value(value) {
            Ok(raw) => raw,
            Err(e) => {
                result.error = Some(failure(&EventError {
                    code: "invalid_event",
                    message: format!("not an event object: {e}"),
                }));
                return result;
            }
        };
        let event = match raw.validate(now, &self.limits) {
            Ok(event) => event,
            Err(e) => {
                result.error = Some(failure(&e));
                return result;
            }
        };
        match self.store.apply_event(&event, &self.limits).await {
            Ok(Outcome::Changed(row)) => {
                self.invalidate.changed(event.target());
                result.status = Status::Applied;
                result.record = Some(row.as_str());
            }
            Ok(Outcome::Unchanged(skip)) => {
                result.status = Status::Unchanged;
                result.reason = Some(skip.as_str());
            }
            Err(ApplyError::Refused(e)) => result.error = Some(failure(&e)),
            Err(ApplyError::Store(e)) => {
                tracing::warn!(error = %e, kind = event.kind().as_str(), "event not applied");
                result.status = Status::Failed;
                result.error = Some(EventFailure {
                    code: "store_unavailable".to_owned(),
                    message: "the store failed; nothing was written, send the event again"
                        .to_owned(),
                });
            }
        }
        result
    }
}

fn failure(e: &EventError) -> EventFailure {
    EventFailure {
        code: e.code.to_owned(),
        message: e.message.clone(),
    }
}

/// Counts of a batch's results, for the answer's summary and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Applied.
    pub applied: usize,
    /// Unchanged (duplicate or stale).
    pub unchanged: usize,
    /// Rejected (bad input).
    pub rejected: usize,
    /// Failed (store; retry).
    pub failed: usize,
}

impl Summary {
    /// Counts `results`.
    pub fn of(results: &[EventResult]) -> Self {
        let mut s = Self::default();
        for r in results {
            match r.status {
                Status::Applied => s.applied += 1,
                Status::Unchanged => s.unchanged += 1,
                Status::Rejected => s.rejected += 1,
                Status::Failed => s.failed += 1,
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sendtime_domain::FixedClock;
    use sendtime_store::MemoryStore;
    use serde_json::json;

    fn ingest(store: Arc<MemoryStore>) -> Ingest {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-07T12:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        Ingest::new(store, Arc::new(()), Arc::new(FixedClock(now)))
    }

    #[tokio::test]
    async fn valid_events_apply_and_invalid_ones_are_rejected_each_with_its_result() {
        let clock = Arc::new(FixedClock(chrono::Utc::now()));
        let store = Arc::new(MemoryStore::new(clock));
        let body = json!({"events": [
            {"id": "e1", "type": "cart_updated", "user_id": "u1", "time": "2026-12-07T11:00:00Z",
             "properties": {"products": [{"product_id": "i1", "quantity": 2}]}},
            {"id": "e2", "type": "nope", "user_id": "u1", "time": "2026-12-07T11:00:00Z"},
            "not an object",
            {"id": "e1", "type": "cart_updated", "user_id": "u1", "time": "2026-12-07T11:00:00Z",
             "properties": {"products": [{"product_id": "i1", "quantity": 2}]}},
            {"id": "e3", "type": "item_updated", "time": "2026-12-07T11:00:00Z",
             "properties": {"item_id": "nowhere", "price": 100}}
        ]});
        let events = parse_batch(body.to_string().as_bytes()).unwrap();
        let results = ingest(store).apply_batch(events).await;
        let statuses: Vec<_> = results
            .iter()
            .map(|r| (&r.status, r.error.as_ref().map(|e| e.code.as_str())))
            .collect();
        assert_eq!(
            statuses,
            [
                (&Status::Applied, None),
                (&Status::Rejected, Some("unknown_type")),
                (&Status::Rejected, Some("invalid_event")),
                (&Status::Unchanged, None),
                (&Status::Rejected, Some("unknown_item")),
            ]
        );
        assert_eq!(results[3].reason, Some("duplicate"));
        assert_eq!(
            Summary::of(&results),
            Summary {
                applied: 1,
                unchanged: 1,
                rejected: 3,
                failed: 0
            }
        );
    }

    #[test]
    fn oversized_and_malformed_batches_are_refused_whole() {
        assert_eq!(
            parse_batch(&vec![b' '; MAX_BATCH_BYTES + 1]),
            Err(BatchError::TooLarge)
        );
        let many = json!({"events": vec![json!({}); MAX_BATCH_EVENTS + 1]}).to_string();
        assert_eq!(parse_batch(many.as_bytes()), Err(BatchError::TooManyEvents));
        assert!(matches!(parse_batch(b"{"), Err(BatchError::InvalidBody(_))));
        assert!(matches!(parse_batch(b"3"), Err(BatchError::InvalidBody(_))));
        assert_eq!(parse_batch(br#"[{"type":"x"}]"#).unwrap().len(), 1);
        assert_eq!(parse_batch(br#"{"type":"x"}"#).unwrap().len(), 1);
    }
}
