//! Events applied to DynamoDB: for the one row an event may change, a strongly consistent
//! `GetItem`, the domain's rule, and — only when the row changed — one `PutItem` conditioned
//! on the row being as it was read (optimistic locking on a numeric `rev`), retried on a
//! conflict. Every call asks for its consumed capacity, totalled for the benchmark.
//!
//! A row `data load` wrote has no `rev` (`BatchWriteItem` writes it whole, unconditionally):
//! ingest's first write to it is conditioned on `rev` still being absent. Known gap: a
//! `data load` that rewrites the same row between ingest's read and write (milliseconds)
//! also leaves no `rev`, so that write wins and the reload of that one row is replaced by
//! the older load plus the event; the next load restores it. Conditioning on every attribute
//! as read would close it, at the price of sending the row twice on every first write.
//!
//! AWS facts relied on:
//!
//! > "Each item includes a version attribute that increments with every update. When updating
//! > an item, you include a condition expression that checks whether the version number
//! > matches the value your application last read. If another process modified the item in
//! > the meantime, the condition fails and DynamoDB returns a
//! > `ConditionalCheckFailedException`."
//! > — <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/BestPractices_OptimisticLocking.html>
//!
//! > "A *strongly consistent* read request of an item up to 4 KB requires one read unit. …
//! > Item sizes for reads are rounded up to the next 4 KB multiple. … If you perform a read
//! > operation on an item that doesn't exist, DynamoDB will still consume read throughput"
//! > — <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html>
//!
//! > "For items up to 1 KB in size, one WCU can perform one standard write request per
//! > second. Items larger than 1 KB require additional WCUs."
//! > — <https://aws.amazon.com/dynamodb/pricing/provisioned/>
//!
//! The units counted are the ones DynamoDB reports (`ReturnConsumedCapacity::Total`; DynamoDB
//! Local reports them too, checked by the tests). A `PutItem` whose condition fails returns
//! an error without `ConsumedCapacity`, so those writes are not in the total; they are
//! counted as conflicts instead ([`DynamoStore::ingest_conflicts`]). Assumption, from AWS's
//! write-capacity page as commonly summarised: a failed conditional write is billed like a
//! write of the larger of the stored and the new item.

use crate::error::map_sdk_error;
use crate::keys::{item_pk, user_pk, PK, REV, SK_CART, SK_ITEM, SK_PROFILE, SK_RECS};
use crate::read::{decode, item_key, AttrMap};
use crate::write::{backoff, encode};
use crate::DynamoStore;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ConsumedCapacity, ReturnConsumedCapacity};
use sendtime_domain::ingest::{
    apply_to_item, apply_to_user, Event, IngestLimits, Outcome, Row, Target, UserRecords,
};
use sendtime_domain::Item;
use sendtime_store::{ApplyError, EventsApply, Record, StoreError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Read-apply-write rounds per event before a conflict is reported as retryable.
pub const APPLY_ATTEMPTS: u32 = 8;

/// Running totals of what ingest consumed (capacity units as DynamoDB reports them).
#[derive(Debug, Default)]
pub(crate) struct IngestCounters {
    /// (read units, write units).
    capacity: Mutex<(f64, f64)>,
    /// Conditional writes that lost to another writer (each re-read and re-applied).
    conflicts: AtomicU64,
}

impl IngestCounters {
    fn add_read(&self, consumed: Option<&ConsumedCapacity>) {
        let units = consumed.and_then(|c| c.capacity_units()).unwrap_or(0.0);
        let mut total = self.capacity.lock().unwrap_or_else(|p| p.into_inner());
        total.0 += units;
    }

    fn add_write(&self, consumed: Option<&ConsumedCapacity>) {
        let units = consumed.and_then(|c| c.capacity_units()).unwrap_or(0.0);
        let mut total = self.capacity.lock().unwrap_or_else(|p| p.into_inner());
        total.1 += units;
    }
}

impl DynamoStore {
    /// (read units, write units) consumed by [`EventsApply::apply_event`] since this store
    /// was built, as DynamoDB reported them (`ReturnConsumedCapacity::Total`).
    pub fn ingest_capacity(&self) -> (f64, f64) {
        *self
            .ingest
            .capacity
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Conditional writes of ingest that found the row changed since it was read (each was
    /// re-read and re-applied, up to [`APPLY_ATTEMPTS`] rounds an event).
    pub fn ingest_conflicts(&self) -> u64 {
        self.ingest.conflicts.load(Ordering::Relaxed)
    }
}

/// The row as read: whether it existed, and its `rev` when ingest wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadState {
    /// No such row.
    Absent,
    /// The row exists without `rev`: written by `data load`, never by ingest since.
    Loaded,
    /// The row exists, last written by ingest at this `rev`.
    Rev(u64),
}

impl ReadState {
    fn of(item: Option<&AttrMap>) -> Result<Self, String> {
        let Some(item) = item else {
            return Ok(Self::Absent);
        };
        match item.get(REV) {
            None => Ok(Self::Loaded),
            Some(AttributeValue::N(n)) => n
                .parse()
                .map(Self::Rev)
                .map_err(|e| format!("`{REV}` is not a whole number ({e})")),
            Some(_) => Err(format!("`{REV}` is not a number")),
        }
    }

    /// The `rev` the new row is written with.
    fn next_rev(self) -> u64 {
        match self {
            Self::Rev(n) => n.saturating_add(1),
            Self::Absent | Self::Loaded => 1,
        }
    }

    /// The condition that the row is still as read, with its placeholders' names and values.
    pub(crate) fn condition(self) -> (&'static str, Vec<(&'static str, &'static str)>, AttrMap) {
        match self {
            Self::Absent => (
                "attribute_not_exists(#pk)",
                vec![("#pk", PK)],
                AttrMap::new(),
            ),
            Self::Loaded => (
                "attribute_exists(#pk) AND attribute_not_exists(#rev)",
                vec![("#pk", PK), ("#rev", REV)],
                AttrMap::new(),
            ),
            Self::Rev(n) => (
                "#rev = :rev",
                vec![("#rev", REV)],
                AttrMap::from([(":rev".to_owned(), AttributeValue::N(n.to_string()))]),
            ),
        }
    }
}

/// The record to write back when an event changed one (`None` when it changed nothing).
fn changed_record(records: UserRecords, row: Row) -> Option<Record> {
    match row {
        Row::Profile => records.profile.map(Record::User),
        Row::Cart => records.cart.map(Record::Cart),
        Row::Recs => records.recs.map(Record::Recs),
        Row::Item => None,
    }
}

/// What one read-apply round decided.
enum Round {
    /// Nothing to write (or the event was refused).
    Done(Result<Outcome, ApplyError>),
    /// Write this item under this condition.
    Write(Outcome, AttrMap, ReadState),
}

#[async_trait]
impl EventsApply for DynamoStore {
    /// Read (consistent `GetItem`), apply, and write back only a changed row with one
    /// conditional `PutItem`; on a conflict, again from the read, up to [`APPLY_ATTEMPTS`]
    /// rounds, then a retryable [`StoreError::Unavailable`].
    async fn apply_event(
        &self,
        event: &Event,
        limits: &IngestLimits,
    ) -> Result<Outcome, ApplyError> {
        let (pk, sk) = row_key(event);
        let key = format!("{pk}/{sk}");
        for attempt in 0..APPLY_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            let stored = self.read_row(&pk, sk).await?;
            let (outcome, item, state) = match self.apply_round(event, limits, stored, &key)? {
                Round::Done(result) => return result,
                Round::Write(outcome, item, state) => (outcome, item, state),
            };
            if self.write_row(item, state).await? {
                return Ok(outcome);
            }
            self.ingest.conflicts.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(key = %key, attempt, "row changed since read; applying again");
        }
        Err(ApplyError::Store(StoreError::unavailable(
            format!("PutItem {key}: the row kept changing"),
            Conflict {
                key,
                attempts: APPLY_ATTEMPTS,
            },
        )))
    }
}

/// A row other writers changed between every read and write of ours.
#[derive(Debug, thiserror::Error)]
#[error("{key} changed under {attempts} read-apply-write rounds in a row; send the event again")]
struct Conflict {
    key: String,
    attempts: u32,
}

/// The (pk, sk) of the one row `event` may change.
fn row_key(event: &Event) -> (String, &'static str) {
    match event.target() {
        Target::Item(item) => (item_pk(item), SK_ITEM),
        Target::User(user) => {
            let sk = match event.row() {
                Row::Cart => SK_CART,
                Row::Recs => SK_RECS,
                Row::Profile | Row::Item => SK_PROFILE,
            };
            (user_pk(user), sk)
        }
    }
}

impl DynamoStore {
    /// One strongly consistent `GetItem` of the row (its capacity counted).
    async fn read_row(&self, pk: &str, sk: &str) -> Result<Option<AttrMap>, StoreError> {
        self.count_round_trip();
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(item_key(pk, sk)))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| map_sdk_error("GetItem", self.operation_timeout, e))?;
        self.ingest.add_read(out.consumed_capacity());
        Ok(out.item)
    }

    /// Decodes the row, applies the event, and encodes the row to write if it changed.
    fn apply_round(
        &self,
        event: &Event,
        limits: &IngestLimits,
        stored: Option<AttrMap>,
        key: &str,
    ) -> Result<Round, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            key: key.to_owned(),
            reason,
        };
        let state = ReadState::of(stored.as_ref()).map_err(corrupt)?;
        let (outcome, record) = match event.row() {
            Row::Item => {
                let mut item: Option<Item> = stored.map(|s| decode(s, key)).transpose()?;
                let outcome = match apply_to_item(&mut item, event) {
                    Ok(outcome) => outcome,
                    Err(refused) => return Ok(Round::Done(Err(ApplyError::Refused(refused)))),
                };
                (outcome, item.map(Record::Item))
            }
            row => {
                let mut records = UserRecords::default();
                if let Some(stored) = stored {
                    match row {
                        Row::Profile => records.profile = Some(decode(stored, key)?),
                        Row::Cart => records.cart = Some(decode(stored, key)?),
                        Row::Recs => records.recs = Some(decode(stored, key)?),
                        Row::Item => {}
                    }
                }
                let outcome = apply_to_user(&mut records, event, limits);
                let record = match outcome {
                    Outcome::Changed(changed) => changed_record(records, changed),
                    Outcome::Unchanged(_) => None,
                };
                (outcome, record)
            }
        };
        let Outcome::Changed(_) = outcome else {
            return Ok(Round::Done(Ok(outcome)));
        };
        let Some(record) = record else {
            return Err(corrupt(format!(
                "the `{}` rule reported a change but left no record",
                event.kind().as_str()
            )));
        };
        let mut item = encode(&record).map_err(corrupt)?;
        item.insert(
            REV.to_owned(),
            AttributeValue::N(state.next_rev().to_string()),
        );
        Ok(Round::Write(outcome, item, state))
    }

    /// One `PutItem` conditioned on the row being as read; false when the condition failed.
    async fn write_row(&self, item: AttrMap, state: ReadState) -> Result<bool, StoreError> {
        let (condition, names, values) = state.condition();
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        for (placeholder, name) in names {
            put = put.expression_attribute_names(placeholder, name);
        }
        if !values.is_empty() {
            put = put.set_expression_attribute_values(Some(values));
        }
        self.count_round_trip();
        match put.send().await {
            Ok(out) => {
                self.ingest.add_write(out.consumed_capacity());
                Ok(true)
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(map_sdk_error("PutItem", self.operation_timeout, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_read_state_writes_under_the_condition_that_the_row_is_still_as_read() {
        // GIVEN the three states a row can be read in
        // WHEN the write's condition and next rev are built
        // THEN a missing row must still be missing, a loaded row must still lack a rev, and
        // an ingested row must still carry the rev read; the new rev is one more
        let (absent, names, values) = ReadState::Absent.condition();
        assert_eq!(absent, "attribute_not_exists(#pk)");
        assert_eq!(names, [("#pk", "pk")]);
        assert!(values.is_empty());
        assert_eq!(ReadState::Absent.next_rev(), 1);

        let (loaded, names, _) = ReadState::Loaded.condition();
        assert_eq!(
            loaded,
            "attribute_exists(#pk) AND attribute_not_exists(#rev)"
        );
        assert_eq!(names, [("#pk", "pk"), ("#rev", "rev")]);
        assert_eq!(ReadState::Loaded.next_rev(), 1);

        let (rev, names, values) = ReadState::Rev(41).condition();
        assert_eq!(rev, "#rev = :rev");
        assert_eq!(names, [("#rev", "rev")]);
        assert_eq!(values.get(":rev"), Some(&AttributeValue::N("41".into())));
        assert_eq!(ReadState::Rev(41).next_rev(), 42);
    }

    #[test]
    fn a_row_is_read_as_absent_loaded_or_at_its_rev_and_a_bad_rev_is_named() {
        // GIVEN rows without rev, with a numeric rev, and with a rev of the wrong type
        let loaded = AttrMap::from([(PK.to_owned(), AttributeValue::S("USER#u".into()))]);
        let mut ingested = loaded.clone();
        ingested.insert(REV.to_owned(), AttributeValue::N("7".into()));
        let mut bad = loaded.clone();
        bad.insert(REV.to_owned(), AttributeValue::S("seven".into()));
        // WHEN their state is read THEN each is told apart, and the bad one names `rev`
        assert_eq!(ReadState::of(None), Ok(ReadState::Absent));
        assert_eq!(ReadState::of(Some(&loaded)), Ok(ReadState::Loaded));
        assert_eq!(ReadState::of(Some(&ingested)), Ok(ReadState::Rev(7)));
        assert!(ReadState::of(Some(&bad)).unwrap_err().contains("`rev`"));
    }
}
