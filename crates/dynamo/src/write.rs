//! Bulk writes with `BatchWriteItem`: 25 records per call, `UnprocessedItems` re-sent with
//! jittered exponential backoff, and every record accounted for as written or failed.

use crate::error::map_sdk_error;
use crate::keys::{record_key, KIND, PK, SK, TTL_ATTRIBUTE};
use crate::read::{item_key, BATCH_GET_MAX};
use crate::DynamoStore;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use rand::Rng;
use sendtime_store::{PutReport, Record, RecordsPut, StoreError};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// DynamoDB's limit of requests per `BatchWriteItem`.
pub const BATCH_WRITE_MAX: usize = 25;
/// Attempts per batch before its leftovers are reported as failed.
const WRITE_ATTEMPTS: u32 = 8;

/// Whether DynamoDB's TTL may already delete this record.
pub fn is_expired(record: &Record, now: chrono::DateTime<chrono::Utc>) -> bool {
    matches!(record, Record::Recs(r) if !r.is_live(now))
}

/// Full-jitter exponential backoff: uniform in [0, min(2 s, 50 ms · 2^attempt)].
pub(crate) fn backoff(attempt: u32) -> Duration {
    let cap = Duration::from_millis(50)
        .saturating_mul(1u32 << attempt.min(6))
        .min(Duration::from_secs(2));
    let millis = cap.as_millis() as u64;
    Duration::from_millis(rand::rng().random_range(0..=millis))
}

/// A record as its DynamoDB item: its fields, `pk`, `sk`, `kind`, and `ttl` for a list.
pub(crate) fn encode(record: &Record) -> Result<HashMap<String, AttributeValue>, String> {
    let mut item: HashMap<String, AttributeValue> = match record {
        Record::User(r) => serde_dynamo::to_item(r),
        Record::Item(r) => serde_dynamo::to_item(r),
        Record::Recs(r) => serde_dynamo::to_item(r),
        Record::Cart(r) => serde_dynamo::to_item(r),
        Record::Popular(r) => serde_dynamo::to_item(r),
        Record::Copy(r) => serde_dynamo::to_item(r),
        Record::Score(r) => serde_dynamo::to_item(r),
    }
    .map_err(|e| e.to_string())?;
    let (pk, sk) = record_key(record);
    let kind = match record {
        Record::User(_) => "user",
        Record::Item(_) => "item",
        Record::Recs(r) => {
            item.insert(
                TTL_ATTRIBUTE.to_owned(),
                AttributeValue::N(r.expires_at.timestamp().to_string()),
            );
            "recs"
        }
        Record::Cart(_) => "cart",
        Record::Popular(_) => "popular",
        Record::Copy(_) => "copy",
        Record::Score(_) => "score",
    };
    item.insert(PK.to_owned(), AttributeValue::S(pk));
    item.insert(SK.to_owned(), AttributeValue::S(sk));
    item.insert(KIND.to_owned(), AttributeValue::S(kind.to_owned()));
    Ok(item)
}

fn key_of(item: &HashMap<String, AttributeValue>) -> (String, String) {
    let get = |n: &str| {
        item.get(n)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    };
    (get(PK), get(SK))
}

#[async_trait]
impl RecordsPut for DynamoStore {
    async fn put_records(&self, records: &[Record]) -> Result<PutReport, StoreError> {
        let mut report = PutReport::default();
        for chunk in records.chunks(BATCH_WRITE_MAX) {
            report.merge(self.write_batch(chunk).await);
        }
        Ok(report)
    }
}

impl DynamoStore {
    /// Writes ≤ 25 records. Never fails as a whole: what could not be written is listed.
    async fn write_batch(&self, records: &[Record]) -> PutReport {
        let mut report = PutReport::default();
        // DynamoDB rejects a batch that names one key twice; the last record wins, as it
        // would if the two were written one after the other.
        let mut by_key: HashMap<(String, String), (String, HashMap<String, AttributeValue>)> =
            HashMap::new();
        let mut order = Vec::new();
        for record in records {
            match encode(record) {
                Ok(item) => {
                    let key = key_of(&item);
                    if by_key
                        .insert(key.clone(), (record.describe(), item))
                        .is_some()
                    {
                        report.written += 1; // superseded by the later record of the same key
                    } else {
                        order.push(key);
                    }
                }
                Err(reason) => report.failed.push((record.describe(), reason)),
            }
        }
        let mut pending: Vec<WriteRequest> = Vec::with_capacity(order.len());
        for key in &order {
            let Some((describe, item)) = by_key.get(key) else {
                continue;
            };
            match PutRequest::builder().set_item(Some(item.clone())).build() {
                Ok(put) => pending.push(WriteRequest::builder().put_request(put).build()),
                Err(e) => report.failed.push((describe.clone(), e.to_string())),
            }
        }
        let describe = |req: &WriteRequest| {
            req.put_request()
                .map(|p| key_of(p.item()))
                .and_then(|k| by_key.get(&k).map(|(d, _)| d.clone()))
                .unwrap_or_else(|| "unknown record".to_owned())
        };

        let mut attempt = 0;
        while !pending.is_empty() {
            if attempt > 0 {
                report.retried += pending.len();
                tokio::time::sleep(backoff(attempt)).await;
            }
            attempt += 1;
            let sent = pending.len();
            self.count_round_trip();
            let result = self
                .client
                .batch_write_item()
                .request_items(&self.table, pending.clone())
                .send()
                .await;
            match result {
                Ok(out) => {
                    let left = out
                        .unprocessed_items
                        .and_then(|mut u| u.remove(&self.table))
                        .unwrap_or_default();
                    report.written += sent - left.len();
                    pending = left;
                }
                Err(e) => {
                    let err = map_sdk_error("BatchWriteItem", self.operation_timeout, e);
                    if matches!(err, StoreError::Throttled) {
                        report.throttled += 1;
                    }
                    if !err.is_retryable() {
                        report
                            .failed
                            .extend(pending.iter().map(|r| (describe(r), err.to_string())));
                        pending.clear();
                    }
                }
            }
            if attempt >= WRITE_ATTEMPTS && !pending.is_empty() {
                let reason = format!("still unprocessed after {WRITE_ATTEMPTS} attempts");
                report
                    .failed
                    .extend(pending.iter().map(|r| (describe(r), reason.clone())));
                pending.clear();
            }
        }
        report
    }

    /// Reads back the keys of `records` and returns the descriptions of those not found:
    /// how `sendtime data load` proves it wrote what it says. Recommendation lists already
    /// expired are not checked: DynamoDB's TTL may delete them at any moment after the write.
    pub async fn missing_records(&self, records: &[Record]) -> Result<Vec<String>, StoreError> {
        let now = self.clock.now();
        let mut wanted: HashMap<(String, String), String> = HashMap::new();
        for r in records.iter().filter(|r| !is_expired(r, now)) {
            let (pk, sk) = record_key(r);
            wanted.insert((pk, sk), r.describe());
        }
        let keys: Vec<&(String, String)> = wanted.keys().collect();
        let mut present: HashSet<(String, String)> = HashSet::with_capacity(keys.len());
        for chunk in keys.chunks(BATCH_GET_MAX) {
            let request = chunk.iter().map(|(pk, sk)| item_key(pk, sk)).collect();
            for item in self.batch_get(request, Some("pk, sk")).await? {
                present.insert(key_of(&item));
            }
        }
        let mut missing: Vec<String> = wanted
            .into_iter()
            .filter(|(k, _)| !present.contains(k))
            .map(|(_, d)| d)
            .collect();
        missing.sort();
        Ok(missing)
    }
}
