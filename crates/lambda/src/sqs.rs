//! The ingest function's SQS side: each message of a batch Lambda read from the ingest queue
//! carries a batch of events (or an EventBridge event whose `detail` is one), applied by the
//! one ingest handler; the function answers which messages must come back.
//!
//! AWS's rule, from "Handling errors for an SQS event source in Lambda"
//! (<https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html>): "To avoid
//! reprocessing successfully processed messages in a failed batch, you can configure your
//! event source mapping to make only the failed messages visible again. This is called a
//! partial batch response. To turn on partial batch responses, specify
//! `ReportBatchItemFailures` for the `FunctionResponseTypes` action when configuring your
//! event source mapping." The answer is `{"batchItemFailures": [{"itemIdentifier":
//! "<messageId>"}, …]}`; an empty list lets Lambda delete the whole batch. A record with no
//! `messageId` cannot be named (SQS always sends one; assumption: an empty identifier's
//! meaning is not relied on), so a failure there fails the whole invocation instead.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::stream::{self, StreamExt};
use sendtime_api::ingest::MAX_BATCH_BYTES;
use sendtime_api::ingest::{parse_batch, BatchError, EventResult, Ingest, Status, Summary};
use serde::Deserialize;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The `eventSource` of every record Lambda reads from an SQS queue.
pub const SQS_EVENT_SOURCE: &str = "aws:sqs";

/// Messages of one invocation applied at once (each applies up to
/// [`sendtime_api::ingest::APPLY_CONCURRENCY`] events at once).
pub const MESSAGES_AT_ONCE: usize = 4;

/// Whether a Lambda payload is an SQS event: a `Records` array whose records all say
/// `"eventSource": "aws:sqs"` (anything else is an HTTP request for `lambda_http`).
pub fn is_sqs_event(payload: &str) -> bool {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "Records")]
        records: Vec<ProbeRecord>,
    }
    #[derive(Deserialize)]
    struct ProbeRecord {
        #[serde(rename = "eventSource")]
        event_source: Option<String>,
    }
    serde_json::from_str::<Probe>(payload).is_ok_and(|probe| {
        !probe.records.is_empty()
            && probe
                .records
                .iter()
                .all(|r| r.event_source.as_deref() == Some(SQS_EVENT_SOURCE))
    })
}

/// The events one message body carries: any batch form [`parse_batch`] takes (`{"events":
/// […]}`, an array, one event), or an EventBridge event (`detail-type`, `detail`, … as an
/// EventBridge rule with an SQS target delivers it) whose `detail` is one of those forms.
pub fn message_events(body: &str) -> Result<Vec<serde_json::Value>, BatchError> {
    if body.len() > MAX_BATCH_BYTES {
        return Err(BatchError::TooLarge);
    }
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| BatchError::InvalidBody(e.to_string()))?;
    match value {
        serde_json::Value::Object(mut envelope)
            if envelope.contains_key("detail-type") && envelope.contains_key("detail") =>
        {
            let detail = envelope.remove("detail").unwrap_or_default();
            let bytes =
                serde_json::to_vec(&detail).map_err(|e| BatchError::InvalidBody(e.to_string()))?;
            parse_batch(&bytes)
        }
        _ => parse_batch(body.as_bytes()),
    }
}

/// How long before the invocation's deadline the function stops starting messages and
/// answers: messages not finished by then go back to the queue, rather than Lambda ending
/// the invocation at its timeout and returning the whole batch.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(2);

/// What became of one message.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageOutcome {
    /// The body is no batch (or too large): nothing was applied.
    Unreadable(BatchError),
    /// The batch was read: a result per event.
    Applied(Vec<EventResult>),
    /// Not done before the invocation's deadline (less [`DEADLINE_MARGIN`]): some of its
    /// events may have been applied; all are applied again when it comes back (idempotent).
    OutOfTime,
}

impl MessageOutcome {
    /// Whether the message goes back to the queue: unreadable, or any event rejected or
    /// failed.
    ///
    /// Failed events (the store) succeed when sent again. Rejected events and unreadable
    /// bodies never will, and are reported all the same: after the queue's `maxReceiveCount`
    /// receives, SQS moves the message to the dead-letter queue, where its alarm fires and
    /// someone can read what was sent, rather than the bad input being deleted unseen.
    /// Re-applying the message's other events on each receive is safe: every ingest rule is
    /// idempotent and order-free, so they answer `unchanged` (`duplicate`) and write nothing.
    pub fn goes_back(&self) -> bool {
        match self {
            Self::Unreadable(_) | Self::OutOfTime => true,
            Self::Applied(results) => results
                .iter()
                .any(|r| r.status == Status::Rejected || r.retryable()),
        }
    }

    /// The first error's code, for the log line (never the body: it holds user ids).
    pub fn first_error(&self) -> Option<&str> {
        match self {
            Self::Unreadable(BatchError::TooLarge) => Some("batch_too_large"),
            Self::Unreadable(BatchError::TooManyEvents) => Some("batch_too_large"),
            Self::Unreadable(BatchError::InvalidBody(_)) => Some("invalid_body"),
            Self::OutOfTime => Some("out_of_time"),
            Self::Applied(results) => results
                .iter()
                .find_map(|r| r.error.as_ref().map(|e| e.code.as_str())),
        }
    }
}

/// Applies one message's body, unless `deadline` comes first.
pub async fn apply_message(
    ingest: &Ingest,
    body: Option<&str>,
    deadline: Instant,
) -> MessageOutcome {
    if Instant::now() >= deadline {
        return MessageOutcome::OutOfTime;
    }
    let apply = async {
        match message_events(body.unwrap_or_default()) {
            Ok(events) => MessageOutcome::Applied(ingest.apply_batch(events).await),
            Err(e) => MessageOutcome::Unreadable(e),
        }
    };
    tokio::time::timeout_at(deadline.into(), apply)
        .await
        .unwrap_or(MessageOutcome::OutOfTime)
}

/// Below this a deadline is no Unix time of an invocation's end (it is September 2001).
const UNIX_MS_FLOOR: u64 = 1_000_000_000_000;

/// The instant to answer by: the invocation's deadline less [`DEADLINE_MARGIN`]; now, if that
/// has passed. "Lambda-Runtime-Deadline-Ms – The date that the function times out in Unix
/// time milliseconds" (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>).
/// cargo-lambda's emulator sends its timeout there instead (seen: `600000`), so a value
/// below `UNIX_MS_FLOOR` (10^12) is read as milliseconds from now (assumption: only emulators
/// send such values).
pub fn answer_by(deadline_ms: u64) -> Instant {
    let left = if deadline_ms < UNIX_MS_FLOOR {
        Duration::from_millis(deadline_ms)
    } else {
        (UNIX_EPOCH + Duration::from_millis(deadline_ms))
            .duration_since(SystemTime::now())
            .unwrap_or_default()
    };
    Instant::now() + left.saturating_sub(DEADLINE_MARGIN)
}

/// Counts of one invocation, logged once per invocation (nothing dropped unseen).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SqsSummary {
    /// Messages in the batch.
    pub messages: usize,
    /// Messages reported back (they return to the queue).
    pub messages_back: usize,
    /// Messages whose body was no batch.
    pub unreadable: usize,
    /// Messages not done before the deadline.
    pub out_of_time: usize,
    /// The events of the readable messages, by what became of them.
    pub events: Summary,
}

/// A record that must go back but has no `messageId` to name it by (never sent by SQS):
/// the invocation fails, so the whole batch returns, the only safe answer.
#[derive(Debug, thiserror::Error)]
#[error("an SQS record without a messageId failed ({code}); failing the invocation so the whole batch is received again")]
pub struct UnnamedFailure {
    /// The first error's code.
    pub code: String,
}

/// Applies every message of `event` (up to [`MESSAGES_AT_ONCE`] at once) by `deadline` and
/// answers the messages that go back ([`MessageOutcome::goes_back`]), with the counts.
pub async fn apply_sqs_event(
    ingest: &Ingest,
    event: SqsEvent,
    deadline: Instant,
) -> Result<(SqsBatchResponse, SqsSummary), UnnamedFailure> {
    let outcomes: Vec<(SqsMessage, MessageOutcome)> = stream::iter(event.records)
        .map(|message| async move {
            let outcome = apply_message(ingest, message.body.as_deref(), deadline).await;
            (message, outcome)
        })
        .buffered(MESSAGES_AT_ONCE)
        .collect()
        .await;
    let mut response = SqsBatchResponse::default();
    let mut summary = SqsSummary {
        messages: outcomes.len(),
        ..SqsSummary::default()
    };
    for (message, outcome) in &outcomes {
        match outcome {
            MessageOutcome::Applied(results) => {
                let counts = Summary::of(results);
                summary.events.applied += counts.applied;
                summary.events.unchanged += counts.unchanged;
                summary.events.rejected += counts.rejected;
                summary.events.failed += counts.failed;
            }
            MessageOutcome::Unreadable(_) => summary.unreadable += 1,
            MessageOutcome::OutOfTime => summary.out_of_time += 1,
        }
        if !outcome.goes_back() {
            continue;
        }
        let code = outcome.first_error().unwrap_or("unknown").to_owned();
        let Some(id) = message.message_id.as_deref().filter(|id| !id.is_empty()) else {
            return Err(UnnamedFailure { code });
        };
        tracing::warn!(
            message_id = id,
            receive_count = message
                .attributes
                .get("ApproximateReceiveCount")
                .map(String::as_str)
                .unwrap_or("?"),
            error = code,
            "message goes back to the queue"
        );
        summary.messages_back += 1;
        response.add_failure(id);
    }
    Ok((response, summary))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sendtime_domain::FixedClock;
    use sendtime_store::MemoryStore;
    use serde_json::json;
    use std::sync::Arc;

    fn now() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339("2026-12-07T12:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc)
    }

    fn ingest() -> Ingest {
        let clock = Arc::new(FixedClock(now()));
        Ingest::new(
            Arc::new(MemoryStore::new(clock.clone())),
            Arc::new(()),
            clock,
        )
    }

    fn cart(id: &str, user: &str) -> serde_json::Value {
        json!({"id": id, "type": "cart_updated", "user_id": user, "time": "2026-12-07T11:00:00Z",
               "properties": {"products": [{"product_id": "i1", "quantity": 1}]}})
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    fn record(id: &str, body: &str) -> serde_json::Value {
        json!({"messageId": id, "receiptHandle": format!("rh-{id}"), "body": body,
               "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
               "eventSource": "aws:sqs",
               "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:sendtime-dev-ingest",
               "awsRegion": "us-east-1"})
    }

    #[test]
    fn sqs_payloads_are_told_from_http_ones_by_their_event_source() {
        // GIVEN an SQS event, an API Gateway v2 request, and records of another source
        let sqs = json!({"Records": [record("m1", "{}")]}).to_string();
        let http = json!({"version": "2.0", "rawPath": "/v1/events", "requestContext": {}});
        let s3 = json!({"Records": [{"eventSource": "aws:s3"}]});
        // WHEN probed THEN only the SQS one is SQS
        assert!(is_sqs_event(&sqs));
        assert!(!is_sqs_event(&http.to_string()));
        assert!(!is_sqs_event(&s3.to_string()));
        assert!(!is_sqs_event(r#"{"Records": []}"#));
    }

    #[test]
    fn a_body_is_any_batch_form_or_an_eventbridge_event_carrying_one() {
        // GIVEN the three batch forms, and EventBridge envelopes around two of them
        let one = cart("e1", "u1");
        let forms = [
            json!({"events": [one.clone()]}),
            json!([one.clone()]),
            one.clone(),
            json!({"version": "0", "id": "eb-1", "detail-type": "sendtime.events",
                   "source": "shop", "detail": {"events": [one.clone()]}}),
            json!({"version": "0", "id": "eb-2", "detail-type": "cart_updated",
                   "source": "shop", "detail": one.clone()}),
        ];
        // WHEN read THEN each is the one event
        for form in forms {
            assert_eq!(
                message_events(&form.to_string()).unwrap(),
                vec![one.clone()]
            );
        }
        // AND bodies that are no batch are refused whole, saying why
        assert!(matches!(
            message_events("not json"),
            Err(BatchError::InvalidBody(_))
        ));
        assert!(matches!(
            message_events(r#"{"detail-type": "x", "detail": 3}"#),
            Err(BatchError::InvalidBody(_))
        ));
        assert_eq!(
            message_events(&" ".repeat(MAX_BATCH_BYTES + 1)),
            Err(BatchError::TooLarge)
        );
    }

    #[tokio::test]
    async fn only_messages_with_a_bad_or_failed_event_go_back() {
        // GIVEN a batch: two good messages, one unreadable, one with a rejected event
        let good = json!({"events": [cart("e1", "u1"), cart("e2", "u2")]}).to_string();
        let also_good = json!([cart("e3", "u3")]).to_string();
        let rejected = json!([cart("e4", "u4"), {"id": "e5", "type": "nope", "user_id": "u5",
                              "time": "2026-12-07T11:00:00Z"}])
        .to_string();
        let event: SqsEvent = serde_json::from_value(json!({"Records": [
            record("m-good", &good), record("m-bad-json", "{\"events\": [}"),
            record("m-rejected", &rejected), record("m-also-good", &also_good)
        ]}))
        .unwrap();
        // WHEN applied
        let ingest = ingest();
        let (response, summary) = apply_sqs_event(&ingest, event, later()).await.unwrap();
        // THEN exactly the unreadable and the rejected message go back
        let back: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(back, ["m-bad-json", "m-rejected"]);
        // AND every valid event was applied, the bad one counted
        assert_eq!(
            summary,
            SqsSummary {
                messages: 4,
                messages_back: 2,
                unreadable: 1,
                out_of_time: 0,
                events: Summary {
                    applied: 4,
                    unchanged: 0,
                    rejected: 1,
                    failed: 0
                }
            }
        );
        // AND redelivering the rejected message changes nothing and sends it back again
        let again: SqsEvent =
            serde_json::from_value(json!({"Records": [record("m-rejected", &rejected)]})).unwrap();
        let (response, summary) = apply_sqs_event(&ingest, again, later()).await.unwrap();
        assert_eq!(response.batch_item_failures.len(), 1);
        assert_eq!((summary.events.applied, summary.events.unchanged), (0, 1));
    }

    #[tokio::test]
    async fn a_failing_record_without_a_message_id_fails_the_whole_invocation() {
        // GIVEN a bad record that has no messageId (SQS always sends one)
        let event: SqsEvent = serde_json::from_value(
            json!({"Records": [{"body": "nonsense", "eventSource": "aws:sqs"}]}),
        )
        .unwrap();
        // WHEN applied THEN the invocation fails (the whole batch comes back)
        let err = apply_sqs_event(&ingest(), event, later())
            .await
            .unwrap_err();
        assert_eq!(err.code, "invalid_body");
        // AND an empty batch is a success with nothing to report
        let empty = SqsEvent::default();
        let (response, summary) = apply_sqs_event(&ingest(), empty, later()).await.unwrap();
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(summary.messages, 0);
    }

    #[tokio::test]
    async fn messages_not_done_by_the_deadline_go_back_and_the_answer_comes_in_time() {
        // GIVEN two good messages and an invocation whose deadline (less the margin) has passed
        let body = json!([cart("e1", "u1")]).to_string();
        let event: SqsEvent =
            serde_json::from_value(json!({"Records": [record("m1", &body), record("m2", &body)]}))
                .unwrap();
        let deadline_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
            + 1_000;
        let by = answer_by(deadline_ms);
        assert!(by <= Instant::now(), "1 s left is inside the 2 s margin");
        // WHEN applied
        let clock = Arc::new(FixedClock(now()));
        let store = Arc::new(MemoryStore::new(clock.clone()));
        let ingest = Ingest::new(store.clone(), Arc::new(()), clock);
        let (response, summary) = apply_sqs_event(&ingest, event, by).await.unwrap();
        // THEN both go back, counted, and nothing was written
        let back: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(back, ["m1", "m2"]);
        assert_eq!((summary.out_of_time, summary.events.applied), (2, 0));
        use sendtime_store::UserDataGet;
        let u1 = sendtime_domain::UserId::parse("u1").unwrap();
        assert!(store.user_data(&u1).await.unwrap().cart.is_none());
        // AND a deadline a minute away leaves 58 s to work in
        let minute = deadline_ms + 59_000;
        let left = answer_by(minute).saturating_duration_since(Instant::now());
        assert!(
            left > Duration::from_secs(57) && left <= Duration::from_secs(58),
            "{left:?}"
        );
        // AND so does the emulator's relative 60000
        let left = answer_by(60_000).saturating_duration_since(Instant::now());
        assert!(
            left > Duration::from_secs(57) && left <= Duration::from_secs(58),
            "{left:?}"
        );
    }
}
