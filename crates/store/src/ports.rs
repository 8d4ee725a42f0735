//! Capability-sized store traits. Each read trait matches one DynamoDB read action, and the
//! write trait the one write action, so a signature and an IAM policy say the same thing.

use crate::error::StoreError;
use crate::record::Record;
use async_trait::async_trait;
use sendtime_domain::ingest::{Event, EventError, IngestLimits, Outcome};
use sendtime_domain::{Catalog, CopyRecord, ItemId, PopularList, PopularScope, UserId};
use std::sync::Arc;
use std::time::Instant;

pub use sendtime_domain::UserData;

/// Reads a user's profile, recommendation list and cart (DynamoDB `Query`).
///
/// An unknown user is `Ok(UserData::default())`, not an error. Expired recommendation lists
/// are filtered out at read time (DynamoDB's TTL deletion can lag by days). Shared (`Arc`):
/// a cache hands out the same records to every request.
#[async_trait]
pub trait UserDataGet: Send + Sync {
    /// The user's records.
    async fn user_data(&self, user_id: &UserId) -> Result<Arc<UserData>, StoreError>;

    /// The user's records as of every write acknowledged before this call (DynamoDB: a
    /// strongly consistent read): what a cache reads right after an event changed the user,
    /// so it does not keep the records from before the write. The default is
    /// [`UserDataGet::user_data`], right for a store whose every read is consistent (the
    /// embedded store).
    async fn user_data_consistent(&self, user_id: &UserId) -> Result<Arc<UserData>, StoreError> {
        self.user_data(user_id).await
    }

    /// The user's records and until when this store will keep handing out these very records
    /// (a cache entry's expiry), so what is built from them may be reused until then: `None`
    /// — the default, a store without a cache — means every read may differ.
    async fn user_data_leased(
        &self,
        user_id: &UserId,
    ) -> Result<(Arc<UserData>, Option<Instant>), StoreError> {
        Ok((self.user_data(user_id).await?, None))
    }

    /// Changes whenever user records held for reuse are dropped early (invalidated): a lease
    /// taken under another generation is void.
    fn user_generation(&self) -> u64 {
        0
    }

    /// The user's records as last read, if still held past their freshness (a cache's
    /// last-known-good copy): what a degraded answer is built from when the store fails.
    /// Never reads the store; `None` — the default — when nothing is held.
    fn held_user_data(&self, _user_id: &UserId) -> Option<Arc<UserData>> {
        None
    }

    /// Whether this store's entry for `user_id` holds these very records (a cache's entry,
    /// not yet dropped by [`UserDataGet::forget_user`] or replaced): what is built from them
    /// may be reused while it does, and within the lease they came with. `false` — the
    /// default — for a store that holds nothing.
    fn holds(&self, _user_id: &UserId, _data: &Arc<UserData>) -> bool {
        false
    }

    /// Drops every copy of `user_id`'s records held for reuse (an event changed them): the
    /// next read goes to the store. Nothing to drop by default.
    fn forget_user(&self, _user_id: &UserId) {}
}

/// Reads catalog items by id (DynamoDB `BatchGetItem`). Unknown ids are simply absent from
/// the answer. Implementations may split large requests but must return all found items.
#[async_trait]
pub trait ItemsGet: Send + Sync {
    async fn items(&self, ids: &[ItemId]) -> Result<Catalog, StoreError>;

    /// Those of `ids` whose last read copy is still held (see
    /// [`UserDataGet::held_user_data`]); never reads the store. Empty by default.
    fn held_items(&self, _ids: &[ItemId]) -> Catalog {
        Catalog::default()
    }

    /// Drops every copy of item `id` held for reuse, and whatever holds one (a cached popular
    /// list read with its items): an event changed it. Nothing to drop by default.
    fn forget_item(&self, _id: &ItemId) {}
}

/// Reads one popular list (DynamoDB `GetItem`); `None` when there is none for that scope.
/// Shared (`Arc`), like user data.
#[async_trait]
pub trait PopularGet: Send + Sync {
    async fn popular(&self, scope: &PopularScope) -> Result<Option<Arc<PopularList>>, StoreError>;

    /// The list of `scope` as last read, if still held (see [`UserDataGet::held_user_data`]);
    /// never reads the store. `None` by default.
    fn held_popular(&self, _scope: &PopularScope) -> Option<Arc<PopularList>> {
        None
    }
}

/// Reads every copy record (DynamoDB `Query` of the copy partition): the marketer's words
/// over the built-in defaults. A few dozen small records; read whole and cached.
#[async_trait]
pub trait CopyGet: Send + Sync {
    /// Every copy record, in key order.
    async fn copy_records(&self) -> Result<Arc<[CopyRecord]>, StoreError>;
}

/// Everything a block handler reads.
pub trait BlockStore: UserDataGet + ItemsGet + PopularGet + CopyGet {}
impl<T: UserDataGet + ItemsGet + PopularGet + CopyGet> BlockStore for T {}

/// What a bulk write did: every record is either written or listed in `failed`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PutReport {
    /// Records written, overwrites of an existing key included.
    pub written: usize,
    /// (record description, why it failed)
    pub failed: Vec<(String, String)>,
    /// Record writes sent again: throttled, unprocessed or failed retryably the time before.
    pub retried: usize,
    /// Batches the store refused for throttling.
    pub throttled: usize,
}

impl PutReport {
    /// Adds another report's written count and failures to this one.
    pub fn merge(&mut self, other: PutReport) {
        self.written += other.written;
        self.failed.extend(other.failed);
        self.retried += other.retried;
        self.throttled += other.throttled;
    }
}

/// Writes records, overwriting any record with the same key (so a re-run is idempotent).
/// Implementations decide the batch size; callers bound concurrency.
#[async_trait]
pub trait RecordsPut: Send + Sync {
    async fn put_records(&self, records: &[Record]) -> Result<PutReport, StoreError>;
}

/// Why an event was not applied: the rules refused it (nothing written), or the store failed
/// (retryable or not, as [`StoreError`] says).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The rules refused the event (e.g. an `item_updated` that cannot make a new item).
    #[error(transparent)]
    Refused(#[from] EventError),
    /// The store failed; nothing or the whole change was written, never part of it.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Applies validated events with the domain's rules ([`sendtime_domain::ingest`]): reads the
/// one record an event may change, applies the event, and writes the record back only if
/// it changed and nobody changed it meanwhile (DynamoDB: a strongly consistent `GetItem`, then
/// a `PutItem` conditioned on what was read, retried on a conflict).
#[async_trait]
pub trait EventsApply: Send + Sync {
    /// Applies one event: the record it changed, or why nothing changed.
    async fn apply_event(
        &self,
        event: &Event,
        limits: &IngestLimits,
    ) -> Result<Outcome, ApplyError>;
}
